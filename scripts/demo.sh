#!/usr/bin/env bash
# The demo: an application namespace with capture and the interpose proxy running examples/,
# backends reviews v1, v2 and v3 in their own namespaces. It sends traffic and shows the 90/10
# canary split, header routing of one user to v2, requests mirrored to v3, a REGISTRY_ONLY
# refusal, the metrics, and the flow engine (NFQUEUE verdicts from FlowPolicy: a denied and a
# bypassed destination, and the daemon's uid and capabilities), and per-request policy (a DENY and
# a rate limit). It cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

interpose_root || die "the demo creates network namespaces and nftables rules: run it as root"
interpose_install_packages
interpose_check_swift
interpose_check_netns || die "the demo needs network namespaces"

say "building interpose, interpose-init and interpose-netcheck (release)"
swift build -c release --product interpose >/dev/null
swift build -c release --product interpose-init >/dev/null
swift build -c release --product interpose-netcheck >/dev/null
BIN="$(swift build -c release --show-bin-path)"
WORK="$(mktemp -d /tmp/interpose-demo.XXXXXX)"
chmod 755 "$WORK"
cp "$BIN/interpose" "$BIN/interpose-init" "$BIN/interpose-netcheck" "$WORK/"
cp -r examples "$WORK/config"
chmod -R a+rX "$WORK"

APP=ipdemo-app
NS=(ipdemo-v1 ipdemo-v2 ipdemo-v3)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$APP" "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  cp "$WORK/interpose.log" /tmp/interpose-demo-last.log 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for ns in "$APP" "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done

say "namespaces: $APP (the workload: capture + interpose as uid 1337) and ${NS[*]} (reviews backends)"
ip netns add "$APP"
ip -n "$APP" link set lo up
for i in 1 2 3; do
  ns=${NS[$((i-1))]}
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "ipd-a$i" type veth peer name "ipd-b$i"
  ip link set "ipd-a$i" netns "$APP"
  ip link set "ipd-b$i" netns "$ns" name eth0
  ip -n "$APP" addr add "10.241.$i.1/24" dev "ipd-a$i"
  ip -n "$ns" addr add "10.241.$i.2/24" dev eth0
  ip -n "$APP" link set "ipd-a$i" up
  ip -n "$ns" link set eth0 up
done
# The service VIP 10.240.0.10 only needs a route; capture redirects it to the proxy.
ip -n "$APP" route add 10.240.0.0/16 dev ipd-a1
ip -n "$APP" route add 10.250.0.0/16 dev ipd-a1

wait_file() { for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done; die "timed out waiting for $1"; }
for i in 1 2 3; do
  ip netns exec "${NS[$((i-1))]}" "$WORK/interpose-netcheck" http-serve --port 9080 --name "v$i" --seconds 300 --ready-file "$WORK/v$i.ready" >/dev/null &
  PIDS+=($!)
  wait_file "$WORK/v$i.ready"
done

say "capture in $APP: interpose-init apply --queue 0 (uid 1337 is the proxy and is never captured; first SYNs go to NFQUEUE 0)"
ip netns exec "$APP" "$WORK/interpose-init" apply --inbound-ports '' --queue 0 | grep -v '^#' || true

say "starting interpose --queue 0 with examples/ (VirtualService, DestinationRule, ServiceEntry, Sidecar REGISTRY_ONLY, FlowPolicy)"
echo "   started as root, it drops at once to uid 1337 keeping only CAP_NET_ADMIN (for the flow engine)"
ip netns exec "$APP" "$WORK/interpose" run --config "$WORK/config" --queue 0 2>"$WORK/interpose.log" &
PIDS+=($!)
PROXY_PID=$!
for _ in $(seq 100); do
  ip netns exec "$APP" "$WORK/interpose-netcheck" http-get 127.0.0.1:15021 --path /healthz/ready 2>/dev/null | grep -q '^1 200' && break
  sleep 0.1
done

app() { ip netns exec "$APP" setpriv --reuid 1000 --regid 1000 --clear-groups "$WORK/interpose-netcheck" "$@"; }

say "1. the 90/10 canary: 1000 requests from the app over ONE keep-alive connection to reviews (10.240.0.10:9080)"
app http-get 10.240.0.10:9080 --host reviews:9080 --count 1000
echo "   (every request is routed on its own, so one long-lived connection is still split 90/10)"

say "2. header routing: the same requests as user jason all go to v2"
app http-get 10.240.0.10:9080 --host reviews:9080 --count 100 -H 'end-user: jason'

say "3. mirroring: v3 receives a copy of every canary request (responses discarded)"
sleep 0.5
printf '   requests served by v3 (mirror): '
ip netns exec "$APP" setpriv --reuid 1337 --regid 1337 --clear-groups "$WORK/interpose-netcheck" http-get 10.241.3.2:9080 --path /count --verbose | head -1 | awk '{print $2}'

say "4. REGISTRY_ONLY: a host outside the registry gets 502, a TCP connection to an unknown address is closed"
app http-get 10.250.0.1:80 --host example.org --count 1
if app dial 10.250.0.1:5432 --timeout-ms 1000 >/dev/null 2>&1; then echo "   unexpected: TCP went through"; else echo "   TCP to 10.250.0.1:5432: closed by the proxy (BlackHoleCluster)"; fi

say "5. the metrics (Istio's names and labels) on :15090/stats/prometheus"
ip netns exec "$APP" "$WORK/interpose-netcheck" http-get 127.0.0.1:15090 --path /stats/prometheus --verbose >/dev/null
ip netns exec "$APP" "$WORK/interpose" explain --config "$WORK/config" 'GET http://reviews:9080/' -H 'end-user: jason' | sed 's/^/   /'
say "explain shows why a request goes where it goes (above); the metrics:"
ip netns exec "$APP" bash -c "exec 3<>/dev/tcp/127.0.0.1/15090; printf 'GET /stats/prometheus HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' >&3; cat <&3" \
  | grep -E '^istio_requests_total|^istio_tcp_connections' | sed -E 's/source_[a-z_]+="[^"]*",//g; s/destination_(workload|principal|app|cluster|canonical_[a-z]+)="[^"]*",//g; s/connection_security_policy="[^"]*",?//; s/grpc_response_status="",//; s/,\}/}/' | sed 's/^/   /'

say "6. the flow engine: FlowPolicy decides on each new connection (NFQUEUE) before the proxy sees it"
if app dial 10.250.0.1:6379 --timeout-ms 1000 >/dev/null 2>&1; then echo "   unexpected: 10.250.0.1:6379 was reached"; else echo "   10.250.0.1:6379: refused at once (FlowPolicy demo/egress-guard, rule no-cache: DENY with a TCP reset)"; fi
printf '   10.241.3.2:9080 (rule v3-direct, BYPASS): '
app http-get 10.241.3.2:9080 --count 1 | tr -d '\n'; echo "  <- straight to v3, past the proxy"
echo "   verdicts given:"
ip netns exec "$APP" bash -c "exec 3<>/dev/tcp/127.0.0.1/15090; printf 'GET /stats/prometheus HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' >&3; cat <&3" \
  | grep -E '^interpose_flow_verdicts_total' | sed 's/^/   /'
echo "   the daemon's identity (/proc/$PROXY_PID/status):"
grep -E '^(Uid|Gid|Groups|CapPrm|CapEff):' "/proc/$PROXY_PID/status" | sed 's/^/   /'

say "7. policy per request (Mixer in process): a DENY on /admin/*, and 5 requests per second per API key"
app http-get 10.240.0.10:9080 --host reviews:9080 --path /admin/users --count 1 | sed 's/$/   <- AuthorizationPolicy demo\/no-admin (403 RBAC: access denied)/'
app http-get 10.240.0.10:9080 --host reviews:9080 --count 6 -H 'x-api-key: demo-key' | sed 's/flag=RL/flag=RL   <- RateLimitPolicy demo\/per-api-key (429 with retry-after)/'
ip netns exec "$APP" "$WORK/interpose" explain --config "$WORK/config" 'GET http://reviews:9080/admin/users' | sed -n '/^policy:/,$p' | sed 's/^/   /'

say "cleanup: interpose stops on SIGTERM; interpose-init cleanup removes the rules"
kill -TERM "$PROXY_PID" 2>/dev/null || true
ip netns exec "$APP" "$WORK/interpose-init" cleanup >/dev/null
say "done"
