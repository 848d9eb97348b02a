#!/usr/bin/env bash
# Interpose against HAProxy and nginx as the sidecar, on one topology with the same capture rules.
#
#   sudo bench/run.sh            (root: it creates network namespaces and nftables rules)
#
# Topology, all inside two network namespaces this script creates and deletes:
#
#   ipbench-app  (the workload)                          ipbench-back  (the origin)
#     wrk / hey as uid 1000 --> http://10.245.0.10/         nginx, 1 worker, return 200 "ok\n"
#     interpose-init apply --inbound-ports ''                10.244.0.2:8080
#     the proxy as uid 1337 on :15001  -- veth 10.244.0.1 <-> 10.244.0.2 -->
#
# The VIP 10.245.0.10 has only a route (via the veth); the capture redirects every TCP
# connection of the app (any uid but 1337) to :15001, where exactly one proxy listens at a
# time, one worker each:
#   direct       B0: wrk as uid 1337 (never captured) straight to 10.244.0.2:8080, no proxy
#   interpose    interpose run --config bench/mesh.yaml (in a directory) --threads 1
#   interpose-policy  the same with 100 AuthorizationPolicy rules and 10 rate limits (bench/policy.sh;
#                not in the default list): every rule evaluated per request, the last one allows
#   haproxy      HAProxy, nbthread 1, mode http, http-reuse always     (bench/haproxy-http.cfg.tmpl)
#   nginx        nginx, worker_processes 1, proxy_pass, upstream keepalive 32 (bench/nginx-proxy.conf.tmpl)
#   haproxy-tcp  B2, the L4 floor: HAProxy mode tcp                      (bench/haproxy-tcp.cfg.tmpl)
#
# Per configuration: a warm-up, then BENCH_RUNS closed-loop runs of wrk -t1 -c32 (median req/s,
# and the proxy's utime+stime from /proc/PID/stat over each run divided by the requests
# completed), VmRSS idle and right after the last wrk run (and VmHWM), then BENCH_HEY_RUNS
# fixed-rate runs of hey -c 16 -q 63 (about 1000 req/s; median p50/p90/p99). The clients and the
# origin are pinned to CPU BENCH_CLIENT_CPU, the proxy to CPU BENCH_PROXY_CPU (taskset).
#
# It prints a Markdown table and rewrites the part of docs/benchmarks.md between the markers
# <!-- bench:results:begin --> and <!-- bench:results:end --> (BENCH_DOC='' to skip). The raw
# outputs (wrk, hey, every proxy's stderr) are kept in /tmp/interpose-bench-last/.
#
# Knobs (environment):
#   BENCH_CONFIGS      which configurations, in order   (default: direct interpose haproxy nginx haproxy-tcp)
#   BENCH_RUNS         wrk runs per configuration         (default 3)
#   BENCH_DURATION     seconds per wrk run                (default 10)
#   BENCH_WARMUP       seconds of wrk warm-up             (default 3)
#   BENCH_HEY_RUNS     hey runs per configuration         (default 3)
#   BENCH_HEY_DURATION seconds per hey run                (default 10)
#   BENCH_CONNS        wrk connections                    (default 32)
#   BENCH_CLIENT_CPU / BENCH_PROXY_CPU  (default 0 / 1; pinning is off with fewer than 2 CPUs)
#   BENCH_BIN          use the interpose binaries in this directory instead of building
#   BENCH_LABEL        what the binaries are, for the report (default: the git commit here)
#   BENCH_SCRATCH_PATH swift build --scratch-path (e.g. .build-bench, to stay out of .build)
#   BENCH_WAIT_QUIET   seconds to wait for builds/tests of others to finish (default 900)
#   BENCH_DOC          the file whose results section is rewritten (default docs/benchmarks.md)
#
# Runs take turns (flock on /tmp/interpose-bench.lock): a second run waits for the first.
# With the defaults the measurements take about 6 minutes (5 configurations x about 70 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=../scripts/lib.sh
source scripts/lib.sh
source bench/lib.sh
WAITED_TOTAL=0

CONFIGS=${BENCH_CONFIGS:-"direct interpose haproxy nginx haproxy-tcp"}
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
HEY_RUNS=${BENCH_HEY_RUNS:-3}
HEY_DURATION=${BENCH_HEY_DURATION:-10}
HEY_C=16
HEY_Q=63
CONNS=${BENCH_CONNS:-32}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
WAIT_QUIET=${BENCH_WAIT_QUIET:-900}
DOC=${BENCH_DOC-docs/benchmarks.md}
COMMAND_LINE="bench/run.sh${*:+ $*}"
for v in $(compgen -e | grep '^BENCH_' || true); do COMMAND_LINE="$v=$(shell_word "${!v}") $COMMAND_LINE"; done

APP=ipbench-app
BACK=ipbench-back
VETH_APP=ipb-app
VETH_BACK=ipb-back
APP_IP=10.244.0.1
ORIGIN_IP=10.244.0.2
ORIGIN_PORT=8080
VIP=10.245.0.10
VIP_URL="http://$VIP/"
DIRECT_URL="http://$ORIGIN_IP:$ORIGIN_PORT/"
KEEP=/tmp/interpose-bench-last

interpose_root || die "bench/run.sh creates network namespaces and nftables rules: run it as root"

# ---------------------------------------------------------------- packages
POLICY_RC_CREATED=0
install_bench_packages() {
  interpose_install_packages
  local want=() c
  declare -A pkg=([haproxy]=haproxy [nginx]=nginx [wrk]=wrk [hey]=hey [taskset]=util-linux [setpriv]=util-linux [getconf]=libc-bin)
  for c in haproxy nginx wrk hey taskset setpriv getconf; do
    command -v "$c" >/dev/null 2>&1 || want+=("${pkg[$c]}")
  done
  [ ${#want[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${want[*]} and no apt-get: install them by hand"
  say "installing Debian packages: ${want[*]}"
  # Keep the packages' own services (nginx and haproxy on the host's port 80) from starting.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null || die "apt-get install ${want[*]} failed"
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
}

# ---------------------------------------------------------------- helpers
# utime and stime (fields 14 and 15) of a process (all its threads), in clock ticks: "USER SYS".
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mb() { awk -v kb="${1:-}" 'BEGIN { if (kb == "" || kb == "n/a") print "n/a"; else printf "%.1f", kb / 1024 }'; }
as_uid() { local uid=$1; shift; setpriv --reuid "$uid" --regid "$uid" --clear-groups "$@"; }
in_app() { ip netns exec "$APP" "$@"; }

render() { # template, then NAME=value pairs for @NAME@
  local out; out=$(cat "$1"); shift
  local kv
  for kv in "$@"; do out=${out//@${kv%%=*}@/${kv#*=}}; done
  printf '%s\n' "$out"
}

wait_http_ok() { # uid url-host:port; waits until one GET answers 200
  local uid=$1 addr=$2
  for _ in $(seq 100); do
    if in_app setpriv --reuid "$uid" --regid "$uid" --clear-groups "$WORK/interpose-netcheck" http-get "$addr" --count 1 --timeout-ms 1000 2>/dev/null | grep -q '^1 200'; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- cleanup
PIDS=()
WORK=""
cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for ns in "$APP" "$BACK"; do
    # Anything of ours still running inside our namespaces (e.g. an nginx worker).
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  wait 2>/dev/null
  [ -n "$WORK" ] && [ -x "$WORK/interpose-init" ] && ip netns exec "$APP" "$WORK/interpose-init" cleanup >/dev/null 2>&1
  for ns in "$APP" "$BACK"; do ip netns del "$ns" 2>/dev/null; done
  ip link del "$VETH_APP" 2>/dev/null
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ -n "$WORK" ] && [ -d "$WORK/logs" ]; then
    rm -rf "$KEEP"; cp -r "$WORK/logs" "$KEEP" 2>/dev/null && echo "raw outputs kept in $KEEP"
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup
install_bench_packages
interpose_check_netns || die "bench/run.sh needs network namespaces"
PIN=1
CLIENT_PIN=(taskset -c "$CLIENT_CPU")
PROXY_PIN=(taskset -c "$PROXY_CPU")
if [ "$(nproc)" -lt 2 ]; then PIN=0; CLIENT_PIN=(); PROXY_PIN=(); say "fewer than 2 CPUs: no pinning"; fi

if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
  BUILD_NOTE="prebuilt binaries from $BIN"
else
  interpose_check_swift
  build_args=(-c release)
  [ -n "${BENCH_SCRATCH_PATH:-}" ] && build_args+=(--scratch-path "$BENCH_SCRATCH_PATH")
  say "building interpose, interpose-init and interpose-netcheck (release)"
  for p in interpose interpose-init interpose-netcheck interpose-policy-bench; do
    swift build "${build_args[@]}" --product "$p" >/dev/null || die "swift build --product $p failed"
  done
  BIN="$(swift build "${build_args[@]}" --show-bin-path)"
  BUILD_NOTE="built here (swift build -c release)"
fi
for b in interpose interpose-init interpose-netcheck; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done
SOURCE_NOTE=$(source_note "$ROOT")

# One run at a time: two runs would measure each other and delete each other's namespaces.
take_bench_lock

WORK="$(mktemp -d /tmp/interpose-bench.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/logs" "$WORK/mesh"
cp "$BIN/interpose" "$BIN/interpose-init" "$BIN/interpose-netcheck" "$WORK/"
cp bench/mesh.yaml "$WORK/mesh/"
if [[ " $CONFIGS " == *" interpose-policy "* ]]; then
  # 100 AuthorizationPolicy rules and 10 Local rate limits; only the last ALLOW rule admits the app's GET.
  mkdir -p "$WORK/mesh-policy"
  cp bench/mesh.yaml "$WORK/mesh-policy/"
  "$BIN/interpose-policy-bench" yaml --rules "${BENCH_POLICY_RULES:-100}" --limits "${BENCH_POLICY_LIMITS:-10}" --source-cidr 10.244.0.0/16 \
    >"$WORK/mesh-policy/policy.yaml" || die "interpose-policy-bench yaml failed"
fi
for d in origin nginx-proxy; do
  mkdir -p "$WORK/$d"/{client_body,proxy,fastcgi,uwsgi,scgi}
done
render bench/nginx-origin.conf.tmpl DIR="$WORK/origin" LISTEN="$ORIGIN_IP:$ORIGIN_PORT" >"$WORK/origin/nginx.conf"
render bench/nginx-proxy.conf.tmpl DIR="$WORK/nginx-proxy" ORIGIN="$ORIGIN_IP:$ORIGIN_PORT" >"$WORK/nginx-proxy/nginx.conf"
render bench/haproxy-http.cfg.tmpl ORIGIN="$ORIGIN_IP:$ORIGIN_PORT" >"$WORK/haproxy-http.cfg"
render bench/haproxy-tcp.cfg.tmpl ORIGIN="$ORIGIN_IP:$ORIGIN_PORT" >"$WORK/haproxy-tcp.cfg"
chown -R 1000:1000 "$WORK/origin"
chown -R 1337:1337 "$WORK/nginx-proxy" "$WORK/logs"
chmod -R a+rX "$WORK"

say "namespaces $APP (capture, the proxy, the clients) and $BACK (nginx origin on $ORIGIN_IP:$ORIGIN_PORT)"
for ns in "$APP" "$BACK"; do ip netns del "$ns" 2>/dev/null || true; done
ip link del "$VETH_APP" 2>/dev/null || true
ip netns add "$APP"
ip netns add "$BACK"
ip -n "$APP" link set lo up
ip -n "$BACK" link set lo up
ip link add "$VETH_APP" type veth peer name "$VETH_BACK"
ip link set "$VETH_APP" netns "$APP"
ip link set "$VETH_BACK" netns "$BACK" name eth0
ip -n "$APP" addr add "$APP_IP/24" dev "$VETH_APP"
ip -n "$BACK" addr add "$ORIGIN_IP/24" dev eth0
ip -n "$APP" link set "$VETH_APP" up
ip -n "$BACK" link set eth0 up
# The service VIP only needs a route; the capture redirects it to :15001.
ip -n "$APP" route add 10.245.0.0/16 dev "$VETH_APP"

ip netns exec "$BACK" setpriv --reuid 1000 --regid 1000 --clear-groups \
  "${CLIENT_PIN[@]}" nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" \
  >"$WORK/logs/origin.stderr" 2>&1 &
PIDS+=($!)
wait_http_ok 1337 "$ORIGIN_IP:$ORIGIN_PORT" || { cat "$WORK/logs/origin.stderr" "$WORK/origin/error.log" >&2; die "the nginx origin did not answer"; }

say "capture in $APP: interpose-init apply --inbound-ports '' (the same rules for every proxy)"
in_app "$WORK/interpose-init" apply --inbound-ports '' | sed 's/^/   /'

# ---------------------------------------------------------------- proxies
PROXY_MAIN=""   # the process started (signalled to stop)
PROXY_PID=""    # the process measured (for nginx: the worker)
start_proxy() {
  local cfg=$1 log="$WORK/logs/$1.stderr"
  PROXY_MAIN=""; PROXY_PID=""
  if [ -n "$(in_app ss -Htln 'sport = :15001')" ]; then
    echo "something still listens on :15001 in $APP: $(in_app ss -Htlnp 'sport = :15001')" >&2
    return 1
  fi
  case "$cfg" in
    direct) return 0 ;;
    interpose)
      ip netns exec "$APP" setpriv --reuid 1337 --regid 1337 --clear-groups "${PROXY_PIN[@]}" \
        "$WORK/interpose" run --config "$WORK/mesh" --threads 1 >"$WORK/logs/interpose.stdout" 2>"$log" & ;;
    interpose-policy)
      ip netns exec "$APP" setpriv --reuid 1337 --regid 1337 --clear-groups "${PROXY_PIN[@]}" \
        "$WORK/interpose" run --config "$WORK/mesh-policy" --threads 1 >"$WORK/logs/interpose-policy.stdout" 2>"$log" & ;;
    haproxy)
      ip netns exec "$APP" setpriv --reuid 1337 --regid 1337 --clear-groups "${PROXY_PIN[@]}" \
        haproxy -db -f "$WORK/haproxy-http.cfg" >"$log" 2>&1 & ;;
    haproxy-tcp)
      ip netns exec "$APP" setpriv --reuid 1337 --regid 1337 --clear-groups "${PROXY_PIN[@]}" \
        haproxy -db -f "$WORK/haproxy-tcp.cfg" >"$log" 2>&1 & ;;
    nginx)
      ip netns exec "$APP" setpriv --reuid 1337 --regid 1337 --clear-groups "${PROXY_PIN[@]}" \
        nginx -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log" >"$log" 2>&1 & ;;
    *) die "unknown configuration $cfg" ;;
  esac
  PROXY_MAIN=$!
  PIDS+=("$PROXY_MAIN")
  if ! wait_http_ok 1000 "$VIP:80"; then
    echo "--- $cfg stderr:" >&2; tail -20 "$log" >&2
    return 1
  fi
  PROXY_PID=$PROXY_MAIN
  if [ "$cfg" = nginx ]; then
    PROXY_PID=$(pgrep -P "$PROXY_MAIN" | head -1)
    [ -n "$PROXY_PID" ] || return 1
  fi
  # The measured process must be the proxy itself, running as uid 1337 in the app namespace.
  local comm uid
  comm=$(cat "/proc/$PROXY_PID/comm" 2>/dev/null || true)
  uid=$(awk '$1 == "Uid:" { print $2 }' "/proc/$PROXY_PID/status" 2>/dev/null || true)
  case "$cfg:$comm" in
    interpose*:interpose | haproxy*:haproxy | nginx:nginx) ;;
    *) echo "process $PROXY_PID is '$comm', not the $cfg proxy" >&2; return 1 ;;
  esac
  [ "$uid" = 1337 ] || { echo "process $PROXY_PID runs as uid '$uid', not 1337" >&2; return 1; }
  return 0
}
stop_proxy() {
  [ -n "$PROXY_MAIN" ] || return 0
  kill -TERM "$PROXY_MAIN" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$PROXY_MAIN" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PROXY_MAIN" 2>/dev/null || true
  wait "$PROXY_MAIN" 2>/dev/null || true
  [ -n "$PROXY_PID" ] && kill -KILL "$PROXY_PID" 2>/dev/null || true
  PROXY_MAIN=""; PROXY_PID=""
}

client() { # uid, then the command; pinned to the client CPU, bounded in time
  local uid=$1; shift
  in_app setpriv --reuid "$uid" --regid "$uid" --clear-groups timeout $((DURATION + HEY_DURATION + 30)) "${CLIENT_PIN[@]}" "$@"
}

# ---------------------------------------------------------------- measure
declare -A R_RPS R_P50 R_P90 R_P99 R_HEYRPS R_CPU R_CPU_US R_CPU_SYS R_RSS_IDLE R_RSS_LOAD R_HWM R_ERR R_BG R_NOTE
PROBLEMS=()

measure() {
  local cfg=$1 url uid log
  if [ "$cfg" = direct ]; then url=$DIRECT_URL; uid=1337; else url=$VIP_URL; uid=1000; fi
  wait_quiet
  R_BG[$cfg]=$LAST_BUSY
  case "$QUIET_NOTE" in not*) PROBLEMS+=("$cfg: $QUIET_NOTE") ;; esac
  if ! start_proxy "$cfg"; then
    R_NOTE[$cfg]="did not start"; PROBLEMS+=("$cfg: did not start or did not answer 200 (see $KEEP/$cfg.stderr)")
    stop_proxy; return 0
  fi
  local pid=$PROXY_PID
  R_RSS_IDLE[$cfg]=n/a; R_RSS_LOAD[$cfg]=n/a; R_HWM[$cfg]=n/a; R_CPU[$cfg]=n/a; R_CPU_US[$cfg]=n/a; R_CPU_SYS[$cfg]=n/a
  [ -n "$pid" ] && R_RSS_IDLE[$cfg]=$(status_kb "$pid" VmRSS)

  say "$cfg: warm-up ${WARMUP}s, then $RUNS x wrk -t1 -c$CONNS -d${DURATION}s $url"
  client "$uid" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >"$WORK/logs/$cfg.wrk.warmup.txt" 2>&1 || true
  local rps=() cpus=() cpu_us=() cpu_sys=() errs=0 r t0 t1 out reqs e alive=1
  for r in $(seq "$RUNS"); do
    out="$WORK/logs/$cfg.wrk.$r.txt"
    [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
    client "$uid" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" >"$out" 2>&1 || true
    if [ -n "$pid" ]; then
      if ! kill -0 "$pid" 2>/dev/null; then alive=0; PROBLEMS+=("$cfg: the proxy process $pid died during wrk run $r (see $KEEP/$cfg.stderr)"); break; fi
      t1=$(cpu_ticks "$pid")
    fi
    reqs=$(awk '/ requests in / { print $1 }' "$out")
    rps+=("$(awk '/^Requests\/sec:/ { print $2 }' "$out")")
    e=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    errs=$((errs + e))
    [ "$e" -gt 0 ] && PROBLEMS+=("$cfg: wrk run $r: $(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ' | tr '\n' ';')")
    if [ -n "$pid" ] && [ -n "$reqs" ] && [ "$reqs" -gt 0 ]; then
      local u0 s0 u1 s1
      read -r u0 s0 <<<"$t0"; read -r u1 s1 <<<"$t1"
      cpus+=("$(awk -v d=$((u1 + s1 - u0 - s0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')")
      cpu_us+=("$(awk -v d=$((u1 - u0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')")
      cpu_sys+=("$(awk -v d=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')")
    fi
    printf '   run %s: %s req/s, %s requests, errors %s%s\n' "$r" "${rps[-1]:-?}" "${reqs:-?}" "$e" \
      "$([ -n "$pid" ] && echo ", proxy CPU ${cpus[-1]:-?} µs/request (user ${cpu_us[-1]:-?}, system ${cpu_sys[-1]:-?})")"
  done
  if [ -n "$pid" ] && [ "$alive" = 1 ]; then
    R_RSS_LOAD[$cfg]=$(status_kb "$pid" VmRSS)
    R_HWM[$cfg]=$(status_kb "$pid" VmHWM)
    R_CPU[$cfg]=$(median "${cpus[@]}")
    R_CPU_US[$cfg]=$(median "${cpu_us[@]}")
    R_CPU_SYS[$cfg]=$(median "${cpu_sys[@]}")
  fi
  R_RPS[$cfg]=$(median "${rps[@]}")

  local p50s=() p90s=() p99s=() heyrps=()
  if [ "$alive" = 1 ]; then
    say "$cfg: $HEY_RUNS x hey -c $HEY_C -q $HEY_Q -z ${HEY_DURATION}s (about $((HEY_C * HEY_Q)) req/s)"
    for r in $(seq "$HEY_RUNS"); do
      out="$WORK/logs/$cfg.hey.$r.txt"
      client "$uid" hey -c "$HEY_C" -q "$HEY_Q" -z "${HEY_DURATION}s" "$url" >"$out" 2>&1 || true
      p50s+=("$(awk '$1 == "50%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$out")")
      p90s+=("$(awk '$1 == "90%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$out")")
      p99s+=("$(awk '$1 == "99%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$out")")
      heyrps+=("$(awk '/Requests\/sec:/ { print $2 }' "$out")")
      e=$(awk '/^Status code distribution:/ { s = 1; next } /^Error distribution:/ { s = 0; er = 1; next }
               s && /\[[0-9]+\]/ { code = $1; gsub(/[\[\]]/, "", code); if (code != "200") n += $2 }
               er && /\[[0-9]+\]/ { c = $1; gsub(/[\[\]]/, "", c); n += c }
               END { print n + 0 }' "$out")
      errs=$((errs + e))
      [ "$e" -gt 0 ] && PROBLEMS+=("$cfg: hey run $r: $e non-200 or failed requests: $(sed -n '/Status code distribution:/,$p' "$out" | tr -s ' \t' ' ' | tr '\n' ';' | cut -c1-400)")
      printf '   run %s: p50 %s ms, p90 %s ms, p99 %s ms at %s req/s, errors %s\n' "$r" "${p50s[-1]}" "${p90s[-1]}" "${p99s[-1]}" "${heyrps[-1]}" "$e"
      if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then alive=0; PROBLEMS+=("$cfg: the proxy process $pid died during hey run $r (see $KEEP/$cfg.stderr)"); break; fi
    done
  fi
  R_P50[$cfg]=$(median "${p50s[@]}"); R_P90[$cfg]=$(median "${p90s[@]}"); R_P99[$cfg]=$(median "${p99s[@]}")
  R_HEYRPS[$cfg]=$(median "${heyrps[@]}")
  R_ERR[$cfg]=$errs
  if others_busy; then PROBLEMS+=("$cfg: a Swift build or test of someone else was running at the end of this configuration's runs: its figures may be skewed"); fi
  [ "$alive" = 1 ] || R_NOTE[$cfg]="crashed"
  stop_proxy
}

CLK_TCK=$(getconf CLK_TCK)
QUIET_NOTE=""
wait_quiet
FIRST_QUIET_NOTE=$QUIET_NOTE
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TOP_BEFORE=$(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $2, $1 }')
START=$(date +%s)
for cfg in $CONFIGS; do measure "$cfg"; done
ELAPSED=$(( $(date +%s) - START ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
label() {
  case "$1" in
    direct) echo "B0 direct (no proxy)" ;;
    interpose) echo "**Interpose** (1 event loop)" ;;
    interpose-policy) echo "**Interpose** with policy (100 AuthorizationPolicy rules, 10 rate limits)" ;;
    haproxy) echo "HAProxy $(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }') http (nbthread 1)" ;;
    nginx) echo "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||; s| .*||') proxy (1 worker)" ;;
    haproxy-tcp) echo "B2 HAProxy tcp (nbthread 1)" ;;
    *) echo "$1" ;;
  esac
}

RES="$WORK/results.md"
{
  results_header "$COMMAND_LINE" "$SOURCE_NOTE" "$BUILD_NOTE"
  echo "- Load: load average $LOAD_BEFORE before, $LOAD_AFTER after; before the first configuration: $FIRST_QUIET_NOTE; busiest processes then (ps, lifetime %CPU): $TOP_BEFORE. The script waits before each configuration until no Swift build or test runs and the machine is under 25 % busy; \`background CPU %\` is that last 2 s sample."
  if [ "$PIN" = 1 ]; then
    echo "- Pinning: wrk, hey and the nginx origin on CPU $CLIENT_CPU, the proxy on CPU $PROXY_CPU (taskset)."
  else
    echo "- Pinning: none (fewer than 2 CPUs)."
  fi
  echo "- Throughput: \`wrk -t1 -c$CONNS -d${DURATION}s\`, median of $RUNS runs after a ${WARMUP} s warm-up; CPU µs/request: the proxy process's utime+stime (/proc/PID/stat, all threads) over each run divided by the requests wrk completed, median of the runs (user and system time also apart: system time includes the kernel's TCP work done in the proxy's context)."
  echo "- Latency: \`hey -c $HEY_C -q $HEY_Q -z ${HEY_DURATION}s\` (about $((HEY_C * HEY_Q)) req/s), median of $HEY_RUNS runs for each percentile."
  echo "- RSS: VmRSS of the proxy (for nginx its worker) after start and one request (idle), right after the last wrk run (load), and VmHWM (peak)."
  echo "- Measurements took ${ELAPSED} s."
  echo
  echo "| configuration | req/s | vs HAProxy | p50 ms | p90 ms | p99 ms | hey req/s | proxy CPU µs/req | user / system µs | RSS idle MB | RSS load MB | RSS peak MB | errors | background CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for cfg in $CONFIGS; do
    printf '| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$cfg")" "${R_NOTE[$cfg]:+ (${R_NOTE[$cfg]})}" \
      "$(awk -v v="${R_RPS[$cfg]:-n/a}" 'BEGIN { if (v == "n/a") print v; else printf "%.0f", v }')" \
      "$(ratio "${R_RPS[$cfg]:-}" "${R_RPS[haproxy]:-}")" \
      "${R_P50[$cfg]:-n/a}" "${R_P90[$cfg]:-n/a}" "${R_P99[$cfg]:-n/a}" \
      "$(awk -v v="${R_HEYRPS[$cfg]:-n/a}" 'BEGIN { if (v == "n/a") print v; else printf "%.0f", v }')" \
      "${R_CPU[$cfg]:-n/a}" "$([ "${R_CPU_US[$cfg]:-n/a}" = n/a ] && echo n/a || echo "${R_CPU_US[$cfg]} / ${R_CPU_SYS[$cfg]}")" "$(mb "${R_RSS_IDLE[$cfg]:-}")" "$(mb "${R_RSS_LOAD[$cfg]:-}")" "$(mb "${R_HWM[$cfg]:-}")" \
      "${R_ERR[$cfg]:-n/a}" "${R_BG[$cfg]:-n/a}"
  done
  if [[ " $CONFIGS " == *" interpose "* && " $CONFIGS " == *" haproxy "* ]]; then
    t=$(ratio "${R_RPS[interpose]:-}" "${R_RPS[haproxy]:-}")
    p=$(ratio "${R_P99[interpose]:-}" "${R_P99[haproxy]:-}")
    c=$(ratio "${R_CPU[interpose]:-}" "${R_CPU[haproxy]:-}")
    rl=$(mb "${R_HWM[interpose]:-}")
    echo
    echo "Interpose against HAProxy (http mode) and the targets:"
    echo
    echo "| figure | Interpose / HAProxy | target | |"
    echo "|---|---:|---|---|"
    echo "| throughput (wrk) | $t | at least 0.7 | $(verdict "$t" '>=' 0.7) |"
    echo "| p99 at about 1000 req/s | $p | at most 1.5 | $(verdict "$p" '<=' 1.5) |"
    echo "| CPU µs per request | $c | (lower is better) | |"
    echo "| RSS under load (peak) | $rl MB | below 40 MB | $(verdict "$rl" '<=' 40) |"
    if [[ " $CONFIGS " == *" nginx "* ]]; then
      echo
      echo "Interpose / nginx: throughput $(ratio "${R_RPS[interpose]:-}" "${R_RPS[nginx]:-}"), p99 $(ratio "${R_P99[interpose]:-}" "${R_P99[nginx]:-}"), CPU µs per request $(ratio "${R_CPU[interpose]:-}" "${R_CPU[nginx]:-}")."
    fi
  fi
  problems_section
} >"$RES"

publish_report "$RES" results
