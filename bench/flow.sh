#!/usr/bin/env bash
# The flow engine (NFQUEUE verdicts) against a minimal C consumer: verdicts per second, and the
# latency a queued SYN adds to connect().
#
#   sudo bench/flow.sh           (root: it creates network namespaces and netfilter rules)
#
# 1. Verdict rate, closed loop, in the namespace ipflow-rate:
#      iptables-nft -t mangle -A OUTPUT -p udp --dport 9 -j NFQUEUE --queue-num 5   (no bypass)
#    bench/udp-flood.c sends UDP datagrams to 127.0.0.1:9 in a tight loop; every one waits in the
#    queue for a verdict while it counts against the sender's socket buffer, so a sender blocks
#    once about 256 are waiting and the rate is the consumer's. Two sender processes by default:
#    with one, the consumer sat idle 15-30 % of the time waiting for the blocked sender to wake up
#    (both under 100 % CPU), so the rate was the round trip's rather than the consumer's.
#    Consumers, one at a time:
#      c          bench/nfq-floor.c: one thread, blocking recv, one NF_ACCEPT verdict per packet
#                 (the reference floor of the issue)
#      c-batch    bench/nfq-floor.c --batch: the engine's batching (recv MSG_DONTWAIT while more
#                 is waiting, up to 64, then one NFQNL_MSG_VERDICT_BATCH), in C
#      interpose  interpose run --queue 5 (config: one Sidecar with ALLOW_ANY); its rate is the
#                 difference of interpose_flow_decision_seconds_count over the sender's window
#    Each consumer is measured with the sender on another CPU (split) and on the consumer's CPU
#    (same); BENCH_FLOW_RUNS runs of BENCH_FLOW_SECONDS each, the consumers interleaved run by run,
#    median packets/s.
# 2. Added connect() latency: ipflow-app (10.246.0.1/16) -- veth -- ipflow-peer (10.246.0.2/16, a
#    TCP listener on :7070 that accepts and closes, bench/connect-latency.c listen). In ipflow-app,
#    bench/connect-latency.c as uid 1000 does BENCH_FLOW_CONNECTS sequential connect()+close to
#    10.246.0.2:7070, each run from a source address of its own (10.246.x.y) and each connect from
#    a port of its own (so no SYN reuses a 4-tuple conntrack still holds: such a SYN need not be a
#    new flow and may skip the queue), and prints p50/p90/p99 of connect() in µs:
#      off        interpose-init apply --inbound-ports '' -o 7070   (port excluded: direct)
#      c          interpose-init apply --inbound-ports '' --queue 0, bench/nfq-floor.c --queue 0
#                 --mark-bypass (NF_ACCEPT with the bypass mark 0x00400000: past the proxy)
#      interpose  the same rules, interpose run --queue 0 with a FlowPolicy rule
#                 {name: bench-bypass, match: {destinationPorts: ["7070"]}, action: BYPASS}
#    each consumer on the client's CPU (same), on the other CPU (split), and on the other CPU kept
#    from idling by a SCHED_IDLE busy loop (awake): on this VM, waking an idle vCPU dominated the
#    split case's tail (the C floor's too), and awake shows the latency without it. Added = on - off.
#
# It prints Markdown and rewrites the part of docs/benchmarks.md between the markers
# <!-- bench:flow:begin --> and <!-- bench:flow:end --> (BENCH_DOC='' to skip); text after a
# <!-- bench:flow:notes --> line inside them is kept. Raw outputs: /tmp/interpose-bench-flow-last/.
#
# Knobs (environment):
#   BENCH_FLOW_RUNS      verdict-rate runs per measurement (median)  (default 3)
#   BENCH_FLOW_LAT_RUNS  connect-latency runs per configuration      (default 5)
#   BENCH_FLOW_SECONDS   seconds per verdict-rate run                (default 5)
#   BENCH_FLOW_SENDERS   udp-flood sender processes                  (default 2)
#   BENCH_FLOW_CONNECTS  connects per latency run (after 200 untimed) (default 5000)
#   BENCH_CLIENT_CPU / BENCH_PROXY_CPU  sender/client CPU and consumer CPU (default 0 / 1)
#   BENCH_BIN          use the interpose and interpose-init binaries in this directory instead of building
#   BENCH_LABEL        what the binaries are, for the report (default: the git commit here)
#   BENCH_SCRATCH_PATH swift build --scratch-path (e.g. .build-bench, to stay out of .build)
#   BENCH_WAIT_QUIET   seconds to wait for builds/tests of others to finish (default 900)
#   BENCH_DOC          the file whose flow section is rewritten (default docs/benchmarks.md)
#
# Runs take turns with bench/run.sh (flock on /tmp/interpose-bench.lock). With the defaults the
# measurements take about 2.5 minutes, plus any wait for a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=../scripts/lib.sh
source scripts/lib.sh
source bench/lib.sh
WAITED_TOTAL=0

RUNS=${BENCH_FLOW_RUNS:-3}
LAT_RUNS=${BENCH_FLOW_LAT_RUNS:-5}
SECONDS_PER_RUN=${BENCH_FLOW_SECONDS:-5}
SENDERS=${BENCH_FLOW_SENDERS:-2}
CONNECTS=${BENCH_FLOW_CONNECTS:-5000}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
WAIT_QUIET=${BENCH_WAIT_QUIET:-900}
DOC=${BENCH_DOC-docs/benchmarks.md}
COMMAND_LINE="bench/flow.sh${*:+ $*}"
for v in $(compgen -e | grep '^BENCH_' || true); do COMMAND_LINE="$v=$(shell_word "${!v}") $COMMAND_LINE"; done
COMMAND_LINE="sudo $COMMAND_LINE"

RATE_NS=ipflow-rate
APP=ipflow-app
PEER=ipflow-peer
VETH_APP=ipf-app
APP_IP=10.246.0.1
PEER_IP=10.246.0.2
PORT=7070
RATE_QUEUE=5
LAT_QUEUE=0
KEEP=/tmp/interpose-bench-flow-last
RATE_CONSUMERS="c c-batch interpose"
LAT_CONFIGS="off c:same c:split c:awake interpose:same interpose:split interpose:awake"

interpose_root || die "bench/flow.sh creates network namespaces and netfilter rules: run it as root"

# ---------------------------------------------------------------- helpers
# CPU ticks of every user-space process (kernel threads left out: they also carry our packets).
proc_snapshot() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk '{ pid = $1; sub(/^.*\) /, ""); if (pid != 2 && $2 != 2) print pid, $12 + $13 }'
}
# Ticks used between two snapshots by processes present in both, except ours ($$ and PIDS).
others_ticks() {
  awk -v ours="$$ ${PIDS[*]}" 'BEGIN { n = split(ours, o, " "); for (i = 1; i <= n; i++) skip[o[i]] = 1 }
    NR == FNR { a[$1] = $2; next } ($1 in a) && !($1 in skip) && $2 > a[$1] { t += $2 - a[$1] } END { print t + 0 }' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}
# Whether someone else disturbed a measurement between two pairs of snapshots (toolchain, all):
# a Swift build or test worked, or other processes used more than 0.1 s of CPU. Sets DISTURBED_BY.
disturbed() {
  DISTURBED_BY=""
  if toolchain_active "$1" "$2"; then DISTURBED_BY="a Swift build or test of someone else worked"; return 0; fi
  local t; t=$(others_ticks "$3" "$4")
  if [ "$t" -gt $((CLK_TCK / 10)) ]; then DISTURBED_BY="other processes used $(awk -v t="$t" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }') s of CPU"; return 0; fi
  return 1
}
fmt0() { awk -v v="${1:-n/a}" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else printf "%.0f", v }'; }
fmt1() { awk -v v="${1:-n/a}" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else printf "%.1f", v }'; }
minus() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", a - b }'; }
cpu_of() { case "$1" in same) echo "$2" ;; split | awake) echo "$3" ;; esac; }

# ---------------------------------------------------------------- cleanup
LOCKED=0  # the namespaces are ours to delete only once we hold the lock (another run may be using them)
PIDS=()   # our processes still running (a stopped one is taken out, so its pid is never signalled again)
WORK=""
forget_pid() { local keep=() p; for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  if [ "$LOCKED" = 1 ]; then
    for ns in "$RATE_NS" "$APP" "$PEER"; do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    wait 2>/dev/null
    [ -n "$WORK" ] && [ -x "$WORK/interpose-init" ] && ip netns exec "$APP" "$WORK/interpose-init" cleanup >/dev/null 2>&1
    for ns in "$RATE_NS" "$APP" "$PEER"; do ip netns del "$ns" 2>/dev/null; done
    ip link del "$VETH_APP" 2>/dev/null
  fi
  if [ -n "$WORK" ] && [ -d "$WORK/logs" ]; then
    rm -rf "$KEEP"; cp -r "$WORK/logs" "$KEEP" 2>/dev/null && echo "raw outputs kept in $KEEP" >&2
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup
interpose_install_packages
for c in taskset setpriv chrt cc curl iptables-nft; do command -v "$c" >/dev/null 2>&1 || die "$c is missing"; done
interpose_check_netns || die "bench/flow.sh needs network namespaces"
[ "$(nproc)" -ge 2 ] || die "bench/flow.sh compares the consumer on the sender's CPU and on another one: it needs 2 CPUs"

if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
  BUILD_NOTE="prebuilt binaries from $BIN"
else
  interpose_check_swift
  build_args=(-c release)
  [ -n "${BENCH_SCRATCH_PATH:-}" ] && build_args+=(--scratch-path "$BENCH_SCRATCH_PATH")
  say "building interpose and interpose-init (release)"
  for p in interpose interpose-init; do
    swift build "${build_args[@]}" --product "$p" >/dev/null || die "swift build --product $p failed"
  done
  BIN="$(swift build "${build_args[@]}" --show-bin-path)"
  BUILD_NOTE="built here (swift build -c release)"
fi
for b in interpose interpose-init; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done
grep -q -- '--queue' <<<"$("$BIN/interpose" run --help 2>&1 || true)" || die "$BIN/interpose has no --queue option (a build from before the flow engine?)"
SOURCE_NOTE=$(source_note "$ROOT")

# One benchmark at a time (shared with bench/run.sh): two would measure each other.
take_bench_lock
LOCKED=1

WORK="$(mktemp -d /tmp/interpose-bench-flow.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/logs" "$WORK/cfg-rate" "$WORK/cfg-lat"
cp "$BIN/interpose" "$BIN/interpose-init" "$WORK/"
for p in nfq-floor udp-flood connect-latency; do
  cc -O2 -Wall -o "$WORK/$p" "bench/$p.c" -lnetfilter_queue -lmnl || die "cc bench/$p.c failed"
done
SIDECAR='apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: bench
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY'
printf '%s\n' "$SIDECAR" >"$WORK/cfg-rate/sidecar.yaml"
printf '%s\n' "$SIDECAR" >"$WORK/cfg-lat/sidecar.yaml"
cat >"$WORK/cfg-lat/flowpolicy.yaml" <<EOF
apiVersion: interpose.dev/v1alpha1
kind: FlowPolicy
metadata:
  name: bench
  namespace: bench
spec:
  rules:
  - name: bench-bypass
    match:
      destinationPorts: ["$PORT"]
    action: BYPASS
EOF
chmod 755 "$WORK/cfg-rate" "$WORK/cfg-lat"
chmod 644 "$WORK"/cfg-*/*.yaml
chmod -R a+rX "$WORK"

say "namespaces $RATE_NS (verdict rate), $APP and $PEER (connect latency)"
for ns in "$RATE_NS" "$APP" "$PEER"; do ip netns del "$ns" 2>/dev/null || true; done
ip link del "$VETH_APP" 2>/dev/null || true
for ns in "$RATE_NS" "$APP" "$PEER"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip netns exec "$RATE_NS" iptables-nft -t mangle -A OUTPUT -p udp --dport 9 -j NFQUEUE --queue-num "$RATE_QUEUE"
ip link add "$VETH_APP" type veth peer name ipf-peer
ip link set "$VETH_APP" netns "$APP"
ip link set ipf-peer netns "$PEER" name eth0
ip -n "$APP" addr add "$APP_IP/16" dev "$VETH_APP"
ip -n "$PEER" addr add "$PEER_IP/16" dev eth0
ip -n "$APP" link set "$VETH_APP" up
ip -n "$PEER" link set eth0 up

# ---------------------------------------------------------------- consumers
CONS_PID=""
CONS_KIND=""
CONS_NS=""
queue_bound() { # ns, queue: the kernel lists the queue with a consumer
  ip netns exec "$1" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null | awk -v q="$2" '$1 == q { f = 1 } END { exit !f }'
}
# start_consumer KIND NS QUEUE CPU LOGNAME [extra nfq-floor flags]
start_consumer() {
  local kind=$1 ns=$2 q=$3 cpu=$4 log=$5; shift 5
  CONS_KIND=$kind; CONS_NS=$ns
  case "$kind" in
    c) ip netns exec "$ns" taskset -c "$cpu" "$WORK/nfq-floor" --queue "$q" "$@" >"$WORK/logs/$log.stdout" 2>"$WORK/logs/$log.stderr" & ;;
    c-batch) ip netns exec "$ns" taskset -c "$cpu" "$WORK/nfq-floor" --queue "$q" --batch "$@" >"$WORK/logs/$log.stdout" 2>"$WORK/logs/$log.stderr" & ;;
    interpose)
      local cfg="$WORK/cfg-rate"; [ "$ns" = "$APP" ] && cfg="$WORK/cfg-lat"
      ip netns exec "$ns" taskset -c "$cpu" "$WORK/interpose" run --config "$cfg" --queue "$q" >"$WORK/logs/$log.stdout" 2>"$WORK/logs/$log.stderr" & ;;
  esac
  CONS_PID=$!
  PIDS+=("$CONS_PID")
  for _ in $(seq 150); do
    kill -0 "$CONS_PID" 2>/dev/null || break
    if queue_bound "$ns" "$q"; then
      if [ "$kind" != interpose ] || ip netns exec "$ns" curl -sf --max-time 1 -o /dev/null http://127.0.0.1:15090/stats/prometheus; then
        return 0
      fi
    fi
    sleep 0.1
  done
  echo "--- $kind did not bind queue $q in $ns:" >&2; tail -20 "$WORK/logs/$log.stderr" >&2
  return 1
}
stop_consumer() {
  [ -n "$CONS_PID" ] || return 0
  kill -TERM "$CONS_PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$CONS_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CONS_PID" 2>/dev/null || true
  wait "$CONS_PID" 2>/dev/null || true
  forget_pid "$CONS_PID"
  CONS_PID=""
}
metrics() { ip netns exec "$CONS_NS" curl -s --max-time 3 http://127.0.0.1:15090/stats/prometheus; }
metric_sum() { # file, metric name, optional label filter (a substring): sum of the samples
  awk -v m="$2" -v f="${3:-}" '($1 == m || index($1, m "{") == 1) && (f == "" || index($1, f) > 0) { s += $NF } END { printf "%.0f\n", s }' "$1"
}
# Packets the running consumer has verdicted so far (interpose: decided; its metrics saved to $1).
consumer_count() {
  local snap=$1
  if [ "$CONS_KIND" = interpose ]; then
    metrics >"$snap"
    metric_sum "$snap" interpose_flow_decision_seconds_count
  else
    local out="$WORK/logs/$CURRENT_LOG.stdout" before
    before=$(grep -c '^count ' "$out" || true)
    kill -USR1 "$CONS_PID"
    for _ in $(seq 200); do [ "$(grep -c '^count ' "$out" || true)" -gt "$before" ] && break; sleep 0.01; done
    awk '/^count / { c = $2 } END { print c + 0 }' "$out"
  fi
}

PROBLEMS=()
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- 1. verdict rate
declare -A RATE CPU_PKT BATCHED CONS_PCT SEND_PCT
measure_rate() { # consumer placement run
  local kind=$1 pl=$2 r=$3 scpu log c0 c1 t0 t1 out sent secs m m1 b0 b1
  scpu=$(cpu_of "$pl" "$PROXY_CPU" "$CLIENT_CPU")
  log="rate.$kind.$pl.$r"; CURRENT_LOG=$log
  if ! start_consumer "$kind" "$RATE_NS" "$RATE_QUEUE" "$PROXY_CPU" "$log"; then
    PROBLEMS+=("verdict rate, $kind ($pl) run $r: the consumer did not start (see $KEEP/$log.stderr)"); stop_consumer; return 0
  fi
  # Warm-up, then the measured window.
  ip netns exec "$RATE_NS" taskset -c "$scpu" "$WORK/udp-flood" --seconds 0.5 --senders "$SENDERS" >"$WORK/logs/$log.warmup.txt" 2>&1 || true
  sleep 0.2
  local snap0 snap1 all0 all1
  snap0=$(toolchain_snapshot); all0=$(proc_snapshot)
  c0=$(consumer_count "$WORK/logs/$log.metrics.0.txt"); t0=$(ticks_total "$CONS_PID")
  out="$WORK/logs/$log.sender.txt"
  ip netns exec "$RATE_NS" taskset -c "$scpu" "$WORK/udp-flood" --seconds "$SECONDS_PER_RUN" --senders "$SENDERS" >"$out" 2>&1 || true
  c1=$(consumer_count "$WORK/logs/$log.metrics.1.txt"); t1=$(ticks_total "$CONS_PID")
  snap1=$(toolchain_snapshot); all1=$(proc_snapshot)
  if disturbed "$snap0" "$snap1" "$all0" "$all1"; then
    echo "$log: $DISTURBED_BY" >>"$WORK/logs/disturbed.txt"
    if [ "$ATTEMPT_FINAL" = 0 ]; then
      printf '   %-9s %-5s run %s: %s meanwhile: measured again\n' "$kind" "$pl" "$r" "$DISTURBED_BY"
      stop_consumer; return 3
    fi
    PROBLEMS+=("verdict rate, $kind ($pl) run $r: $DISTURBED_BY during it (kept: third attempt)")
  fi
  sent=$(awk '/^sent / { print $2 }' "$out"); secs=$(awk '/^sent / { print $4 }' "$out")
  local scpu_s; scpu_s=$(awk '/^sent / { for (i = 1; i < NF; i++) if ($(i+1) == "s" && $(i+2) ~ /^CPU/) print $i }' "$out")
  if ! kill -0 "$CONS_PID" 2>/dev/null || [ -z "$sent" ] || [ -z "$secs" ]; then
    PROBLEMS+=("verdict rate, $kind ($pl) run $r: the consumer died or the sender failed (see $KEEP/$log.*)"); stop_consumer; return 0
  fi
  local n=$((c1 - c0))
  local rate; rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  RATE[$kind.$pl]+="$rate "
  CPU_PKT[$kind.$pl]+="$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n }') "
  CONS_PCT[$kind.$pl]+="$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", 100 * d / hz / s }') "
  SEND_PCT[$kind.$pl]+="$(awk -v c="${scpu_s:-n/a}" -v s="$secs" 'BEGIN { if (c != "n/a") printf "%.0f", 100 * c / s }') "
  if [ "$kind" = interpose ]; then
    b0=$(metric_sum "$WORK/logs/$log.metrics.0.txt" interpose_flow_batched_verdicts_total)
    b1=$(metric_sum "$WORK/logs/$log.metrics.1.txt" interpose_flow_batched_verdicts_total)
    BATCHED[$kind.$pl]+="$(awk -v b=$((b1 - b0)) -v n="$n" 'BEGIN { if (n > 0) printf "%.1f", 100 * b / n }') "
    for m in interpose_flow_enobufs_total interpose_flow_queue_errors_total interpose_flow_stale_verdicts_total interpose_flow_watchdog_restarts_total; do
      m1=$(metric_sum "$WORK/logs/$log.metrics.1.txt" "$m")
      [ "${m1:-0}" -gt 0 ] && PROBLEMS+=("verdict rate, interpose ($pl) run $r: $m = $m1")
    done
  elif [ "$kind" = c-batch ]; then
    BATCHED[$kind.$pl]+="n/a "
  fi
  # Datagrams sent but not verdicted by the consumer: fail-open accepts (the kernel counts none of them).
  local gap=$((sent - n))
  if [ "${gap#-}" -gt $((sent / 100 + 300 * SENDERS)) ]; then
    PROBLEMS+=("verdict rate, $kind ($pl) run $r: the sender sent $sent datagrams, the consumer verdicted $n")
  fi
  printf '   %-9s %-5s run %s: %s packets/s verdicted (sender %s datagrams/s), consumer CPU %s µs/packet, consumer %s%% busy, sender %s%% busy\n' "$kind" "$pl" "$r" "$rate" \
    "$(awk -v n="$sent" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')" "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n }')" \
    "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", 100 * d / hz / s }')" "$(awk -v c="${scpu_s:-n/a}" -v s="$secs" 'BEGIN { if (c != "n/a") printf "%.0f", 100 * c / s }')"
  stop_consumer
}

# ---------------------------------------------------------------- 2. connect latency
declare -A LP50 LP90 LP99 LCOUNT LERR
RULES=""
apply_rules() { # off | on
  [ "$RULES" = "$1" ] && return 0
  ip netns exec "$APP" "$WORK/interpose-init" cleanup >>"$WORK/logs/interpose-init.txt" 2>&1 || true
  if [ "$1" = off ]; then
    ip netns exec "$APP" "$WORK/interpose-init" apply --inbound-ports '' -o "$PORT" >>"$WORK/logs/interpose-init.txt" 2>&1
  else
    ip netns exec "$APP" "$WORK/interpose-init" apply --inbound-ports '' --queue "$LAT_QUEUE" >>"$WORK/logs/interpose-init.txt" 2>&1
  fi
  { echo "--- rules $1:"; ip netns exec "$APP" nft list ruleset; ip netns exec "$APP" iptables-nft -t mangle -S; } >>"$WORK/logs/rules.txt" 2>&1
  RULES=$1
}
LAT_INDEX=0
measure_latency() { # config (off | KIND:PLACEMENT) run
  local cfg=$1 r=$2 kind pl log out c0 c1 ccpu src
  # Each run connects from an address of its own: a 4-tuple still in conntrack from an earlier
  # run is not "ct state new", so its SYN would skip the queue (and the nat rules).
  LAT_INDEX=$((LAT_INDEX + 1))
  src="10.246.$((1 + LAT_INDEX / 250)).$((1 + LAT_INDEX % 250))"
  ip -n "$APP" addr add "$src/16" dev "$VETH_APP"
  kind=${cfg%%:*}; pl=${cfg#*:}
  log="lat.${cfg/:/.}.$r"; CURRENT_LOG=$log
  local spin=""
  if [ "$cfg" = off ]; then
    apply_rules off
  else
    if [ "$pl" = awake ]; then
      # Keeps the consumer's CPU from idling; SCHED_IDLE: the consumer preempts it on every wake-up.
      taskset -c "$(cpu_of "$pl" "$CLIENT_CPU" "$PROXY_CPU")" chrt -i 0 sh -c 'while :; do :; done' &
      spin=$!; PIDS+=("$spin")
    fi
    apply_rules on
    ccpu=$(cpu_of "$pl" "$CLIENT_CPU" "$PROXY_CPU")
    local extra=(); [ "$kind" = c ] && extra=(--mark-bypass)
    if ! start_consumer "$kind" "$APP" "$LAT_QUEUE" "$ccpu" "$log" "${extra[@]}"; then
      PROBLEMS+=("connect latency, $cfg run $r: the consumer did not start (see $KEEP/$log.stderr)"); stop_consumer; return 0
    fi
    c0=$(consumer_count "$WORK/logs/$log.metrics.0.txt")
  fi
  out="$WORK/logs/$log.txt"
  local snap0 snap1 all0 all1
  snap0=$(toolchain_snapshot); all0=$(proc_snapshot)
  ip netns exec "$APP" setpriv --reuid 1000 --regid 1000 --clear-groups timeout 120 taskset -c "$CLIENT_CPU" \
    "$WORK/connect-latency" connect "$PEER_IP" "$PORT" --count "$CONNECTS" --bind "$src" >"$out" 2>&1 || true
  snap1=$(toolchain_snapshot); all1=$(proc_snapshot)
  if disturbed "$snap0" "$snap1" "$all0" "$all1"; then
    echo "$log: $DISTURBED_BY" >>"$WORK/logs/disturbed.txt"
    if [ "$ATTEMPT_FINAL" = 0 ]; then
      printf '   %-15s run %s: %s meanwhile: measured again\n' "$cfg" "$r" "$DISTURBED_BY"
      [ "$cfg" != off ] && stop_consumer
      if [ -n "$spin" ]; then kill -TERM "$spin" 2>/dev/null || true; wait "$spin" 2>/dev/null || true; forget_pid "$spin"; fi
      return 3
    fi
    PROBLEMS+=("connect latency, $cfg run $r: $DISTURBED_BY during it (kept: third attempt)")
  fi
  LP50[$cfg]+="$(awk '/^connects / { print $7 }' "$out") "
  LP90[$cfg]+="$(awk '/^connects / { print $9 }' "$out") "
  LP99[$cfg]+="$(awk '/^connects / { print $11 }' "$out") "
  local errs; errs=$(awk '/^connects / { print $4 }' "$out"); errs=${errs:-$CONNECTS}
  LERR[$cfg]=$(( ${LERR[$cfg]:-0} + errs ))
  [ "$errs" -gt 0 ] && PROBLEMS+=("connect latency, $cfg run $r: $errs connects failed: $(tail -2 "$out" | tr '\n' ' ')")
  if [ "$cfg" != off ]; then
    c1=$(consumer_count "$WORK/logs/$log.metrics.1.txt")
    local seen=$((c1 - c0)) want=$((CONNECTS + 200))
    LCOUNT[$cfg]+="$seen "
    # Every SYN must have gone through the consumer (and, for interpose, been bypassed by the rule).
    if [ "$seen" -lt "$want" ]; then PROBLEMS+=("connect latency, $cfg run $r: the consumer saw $seen SYNs for $want connects"); fi
    if [ "$kind" = interpose ]; then
      local by0 by1
      by0=$(metric_sum "$WORK/logs/$log.metrics.0.txt" interpose_flow_verdicts_total 'action="bypass"')
      by1=$(metric_sum "$WORK/logs/$log.metrics.1.txt" interpose_flow_verdicts_total 'action="bypass"')
      [ $((by1 - by0)) -lt "$want" ] && PROBLEMS+=("connect latency, $cfg run $r: $((by1 - by0)) bypass verdicts for $want connects")
    fi
    stop_consumer
  fi
  if [ -n "$spin" ]; then kill -TERM "$spin" 2>/dev/null || true; wait "$spin" 2>/dev/null || true; forget_pid "$spin"; fi
  printf '   %-15s run %s: %s (from %s)\n' "$cfg" "$r" "$(head -1 "$out")" "$src"
}

# ---------------------------------------------------------------- measure
# Runs a measurement again (up to 3 attempts) when a Swift build or test of someone else worked
# during it (the measurement returns 3); the third attempt is kept whatever happens.
ATTEMPT_FINAL=1
REPEATED=0
attempts() {
  local a rc
  for a in 1 2 3; do
    ATTEMPT_FINAL=0; [ "$a" = 3 ] && ATTEMPT_FINAL=1
    rc=0; "$@" || rc=$?
    [ "$rc" = 3 ] || return 0
    REPEATED=$((REPEATED + 1))
    wait_quiet
  done
}
QUIET_NOTE=""
wait_quiet
FIRST_QUIET_NOTE=$QUIET_NOTE
FIRST_WAITED=$WAITED_TOTAL
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)

ip netns exec "$PEER" taskset -c "$CLIENT_CPU" "$WORK/connect-latency" listen "$PORT" --seconds 3600 >"$WORK/logs/listener.txt" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$WORK/logs/listener.txt" && break; sleep 0.1; done

say "1. verdict rate: ${RUNS} x ${SECONDS_PER_RUN} s per consumer and placement, $SENDERS sender(s), consumer on CPU $PROXY_CPU"
for pl in split same; do
  say "   sender on CPU $(cpu_of "$pl" "$PROXY_CPU" "$CLIENT_CPU") ($pl)"
  for r in $(seq "$RUNS"); do
    wait_quiet
    case "$QUIET_NOTE" in not*) PROBLEMS+=("verdict rate ($pl) run $r: $QUIET_NOTE") ;; esac
    for kind in $RATE_CONSUMERS; do attempts measure_rate "$kind" "$pl" "$r"; done
  done
done

say "2. connect latency: ${LAT_RUNS} x $CONNECTS connects per configuration, client on CPU $CLIENT_CPU"
for r in $(seq "$LAT_RUNS"); do
  wait_quiet
  case "$QUIET_NOTE" in not*) PROBLEMS+=("connect latency run $r: $QUIET_NOTE") ;; esac
  for cfg in $LAT_CONFIGS; do attempts measure_latency "$cfg" "$r"; done
done
ELAPSED=$(( $(date +%s) - START ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
mr() { median ${RATE[$1]:-}; }
label_rate() {
  case "$1" in
    c) echo "C floor (\`bench/nfq-floor.c\`), one verdict per packet" ;;
    c-batch) echo "C floor \`--batch\` (batch verdicts, up to 64)" ;;
    interpose) echo "**Interpose** \`run --queue $RATE_QUEUE\`" ;;
  esac
}
RES="$WORK/results.md"
{
  results_header "$COMMAND_LINE" "$SOURCE_NOTE" "$BUILD_NOTE" \
    "libnetfilter_queue $(dpkg-query -W -f '${Version}' libnetfilter-queue1 2>/dev/null || echo '?'), libmnl $(dpkg-query -W -f '${Version}' libmnl0 2>/dev/null || echo '?')"
  echo "- Load: load average $LOAD_BEFORE before, $LOAD_AFTER after; before the first run: $FIRST_QUIET_NOTE. Measurements took ${ELAPSED} s, $((ELAPSED - WAITED_TOTAL + FIRST_WAITED)) s of them measuring (the rest waiting for the machine to be quiet); $REPEATED measurement(s) were repeated because someone else worked during them (a Swift build or test, or other processes using more than 0.1 s of CPU; a build that started during a run cut that run's rate by up to a third here)."
  echo "- Verdict rate: closed loop, \`iptables-nft -t mangle -A OUTPUT -p udp --dport 9 -j NFQUEUE --queue-num $RATE_QUEUE\` (no bypass), \`bench/udp-flood.c\` with $SENDERS sender processes to 127.0.0.1:9 (with one sender the consumer was idle 15-30 % of the time, waiting for the blocked sender to wake up); the consumer on CPU $PROXY_CPU, the sender on CPU $CLIENT_CPU (split) or on CPU $PROXY_CPU with the consumer (same). Packets/s: packets the consumer verdicted during the sender's window (nfq-floor's count; for Interpose the difference of \`interpose_flow_decision_seconds_count\`) divided by the window; median of $RUNS runs of $SECONDS_PER_RUN s after a 0.5 s warm-up, the consumers interleaved. CPU µs/packet: the consumer's utime+stime over the window per packet (system time includes the kernel's work after the verdict, done in the consumer's verdict call: the datagram's way on through OUTPUT and loopback); consumer and sender CPU %: their utime+stime over the window (100 = one CPU), which says who limited the rate; a datagram sent but never verdicted (fail-open) would be listed under the table. Both consumers use the same queue settings: copy range 128, queue length 4096, flags GSO, UID_GID and FAIL_OPEN."
  echo "- Connect latency: $CONNECTS sequential \`connect()\` + close (SO_LINGER 0) as uid 1000 to a listener on $PEER_IP:$PORT over a veth (\`bench/connect-latency.c\`, after 200 untimed), each run from a source address of its own (10.246.x.y) and each connect from a port of its own (the kernel's ephemeral ports came back 435 times in 5200 connects, and a SYN on a 4-tuple still in conntrack need not be a new flow: it may skip the queue), client and listener on CPU $CLIENT_CPU, the consumer on CPU $CLIENT_CPU (same), on CPU $PROXY_CPU (split), or on CPU $PROXY_CPU kept from idling by a SCHED_IDLE busy loop (awake: no wake-up of an idle vCPU); median over $LAT_RUNS runs of each percentile. Before each run the script waits until no Swift build or test works and the machine is under 25 % busy, and a measurement during which someone else worked (a Swift build or test used CPU, started or ended, or other processes used more than 0.1 s of CPU) is repeated, up to 3 attempts. Off: \`interpose-init apply --inbound-ports '' -o $PORT\` (the port is not captured: direct). On: \`interpose-init apply --inbound-ports '' --queue $LAT_QUEUE\`, the SYN goes through NFQUEUE $LAT_QUEUE and the consumer gives the bypass verdict (Interpose: a FlowPolicy rule \`{name: bench-bypass, match: {destinationPorts: [\"$PORT\"]}, action: BYPASS}\`; the C floor: \`--mark-bypass\`, NF_ACCEPT with mark 0x00400000), so the connection goes straight to the listener."
  echo
  echo "Verdict rate:"
  echo
  echo "| consumer | sender | packets/s (median) | runs | vs C floor | vs C batch | consumer CPU µs/packet | consumer CPU % | sender CPU % | batched % |"
  echo "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"
  for pl in split same; do
    for kind in $RATE_CONSUMERS; do
      k=$kind.$pl
      # shellcheck disable=SC2086
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label_rate "$kind")" \
        "$([ "$pl" = split ] && echo "other CPU" || echo "same CPU")" "$(fmt0 "$(mr "$k")")" "$(echo ${RATE[$k]:-n/a} | sed 's/ /, /g')" \
        "$(ratio "$(mr "$k")" "$(mr "c.$pl")")" "$(ratio "$(mr "$k")" "$(mr "c-batch.$pl")")" \
        "$(median ${CPU_PKT[$k]:-})" "$(median ${CONS_PCT[$k]:-})" "$(median ${SEND_PCT[$k]:-})" \
        "$([ "$kind" = interpose ] && median ${BATCHED[$k]:-} || echo "$([ "$kind" = c-batch ] && echo all || echo 0)")"
    done
  done
  echo
  echo "Connect latency (µs):"
  echo
  echo "| configuration | consumer | p50 | p90 | p99 | added p50 | added p99 | SYNs seen by the consumer | failed connects |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for cfg in $LAT_CONFIGS; do
    kind=${cfg%%:*}; pl=${cfg#*:}
    # shellcheck disable=SC2086
    p50=$(median ${LP50[$cfg]:-}); p90=$(median ${LP90[$cfg]:-}); p99=$(median ${LP99[$cfg]:-})
    case "$kind" in off) name="engine off (port excluded)" ;; c) name="on, C floor" ;; interpose) name="on, **Interpose**" ;; esac
    case "$pl" in same) where="client's CPU" ;; split) where="other CPU" ;; awake) where="other CPU, kept awake" ;; *) where="-" ;; esac
    # shellcheck disable=SC2086
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$where" "$(fmt1 "$p50")" "$(fmt1 "$p90")" "$(fmt1 "$p99")" \
      "$([ "$cfg" = off ] && echo - || minus "$p50" "$(median ${LP50[off]:-})")" "$([ "$cfg" = off ] && echo - || minus "$p99" "$(median ${LP99[off]:-})")" \
      "$([ "$cfg" = off ] && echo - || echo ${LCOUNT[$cfg]:-n/a} | sed 's/ /, /g')" "${LERR[$cfg]:-n/a}"
  done
  echo
  echo "Targets:"
  echo
  echo "| target | measured | |"
  echo "|---|---:|---|"
  for pl in split same; do
    t=$(ratio "$(mr "interpose.$pl")" "$(mr "c.$pl")")
    echo "| verdict rate at least 0.8x the C floor, sender on $([ "$pl" = split ] && echo "another CPU" || echo "the consumer's CPU") | ${t}x | $(verdict "$t" '>=' 0.8) |"
  done
  for pl in same split awake; do
    # shellcheck disable=SC2086
    a=$(minus "$(median ${LP99[interpose:$pl]:-})" "$(median ${LP99[off]:-})")
    case "$pl" in same) where="the client's CPU" ;; split) where="another CPU" ;; awake) where="another CPU kept awake" ;; esac
    # shellcheck disable=SC2086
    echo "| added connect p99 under 100 µs, engine on $where | $a µs (C floor: $(minus "$(median ${LP99[c:$pl]:-})" "$(median ${LP99[off]:-})") µs) | $(verdict "$a" '<' 100) |"
  done
  problems_section
} >"$RES"

publish_report "$RES" flow "Flow engine (NFQUEUE)"
