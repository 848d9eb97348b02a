#!/usr/bin/env bash
# The demo: two network namespaces, capture applied in one of them, and connections shown arriving
# at a listener on the capture ports with their original destination. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

interpose_root || die "the demo creates network namespaces and nftables rules: run it as root"
interpose_install_packages
interpose_check_swift
interpose_check_netns || die "the demo needs network namespaces"

say "building interpose-init and interpose-netcheck"
swift build --product interpose-init >/dev/null
swift build --product interpose-netcheck >/dev/null
BIN="$(swift build --show-bin-path)"
# Copied where any uid can run them (the demo dials as uid 1000 and 1337).
WORK="$(mktemp -d /tmp/interpose-demo.XXXXXX)"
chmod 755 "$WORK"
cp "$BIN/interpose-init" "$BIN/interpose-netcheck" "$WORK/"
INIT="$WORK/interpose-init"
CHECK="$WORK/interpose-netcheck"

APP=interpose-demo-app
PEER=interpose-demo-peer
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$APP" 2>/dev/null || true
  ip netns del "$PEER" 2>/dev/null || true
  ip link del idemo-a 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_existing() { ip netns del "$APP" 2>/dev/null || true; ip netns del "$PEER" 2>/dev/null || true; }
cleanup_existing

say "creating namespaces: $APP (the workload, with capture) and $PEER (a server)"
ip netns add "$APP"; ip netns add "$PEER"
for ns in "$APP" "$PEER"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0; done
ip link add idemo-a type veth peer name idemo-p
ip link set idemo-a netns "$APP" name eth0
ip link set idemo-p netns "$PEER" name eth0
ip -n "$APP" addr add 10.233.7.1/24 dev eth0
ip -n "$PEER" addr add 10.233.7.2/24 dev eth0
ip -n "$APP" addr add fd00:233:7::1/64 dev eth0 nodad
ip -n "$PEER" addr add fd00:233:7::2/64 dev eth0 nodad
for ns in "$APP" "$PEER"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done

say "what this kernel offers (interpose-init probe)"
ip netns exec "$APP" "$INIT" probe

say "applying capture in $APP (interpose-init apply --exclude-outbound-ports 9090)"
ip netns exec "$APP" "$INIT" apply --exclude-outbound-ports 9090
echo "rules installed: $(ip netns exec "$APP" nft list table inet interpose | grep -c 'counter') rules with counters, in table inet interpose"

start() { # ns ready-file args...
  local ns=$1 ready=$2; shift 2
  ip netns exec "$ns" "$CHECK" listen --seconds 120 --ready-file "$ready" "$@" >/dev/null &
  PIDS+=($!)
  for _ in $(seq 50); do [ -e "$ready" ] && return 0; sleep 0.1; done
  die "listener did not start: $*"
}
say "starting a stand-in proxy on 15001/15006 in $APP and a real server on 8080/9090 in $PEER"
start "$APP" "$WORK/proxy.ready" --name stand-in-proxy --port 15001 --port 15006
start "$PEER" "$WORK/server.ready" --name real-server --port 8080 --port 9090

show() { # title, then the dial command
  local title=$1; shift
  printf '\n  %s\n    ' "$title"
  "$@" || echo "(failed)"
}
as() { local uid=$1; shift; ip netns exec "$APP" setpriv --reuid "$uid" --regid "$uid" --clear-groups "$@"; }

say "connections and where they arrived"
show "app (uid 1000) -> 10.233.7.2:8080: captured, the proxy reads the original destination" as 1000 "$CHECK" dial 10.233.7.2:8080
show "app (uid 1000) -> [fd00:233:7::2]:8080: the same over IPv6" as 1000 "$CHECK" dial "[fd00:233:7::2]:8080"
show "proxy (uid 1337) -> 10.233.7.2:8080: the proxy's own traffic is never captured" as 1337 "$CHECK" dial 10.233.7.2:8080
show "app (uid 1000) -> 10.233.7.2:9090: an excluded port goes straight to the server" as 1000 "$CHECK" dial 10.233.7.2:9090
show "peer -> 10.233.7.1:8080 (inbound): captured on 15006 with its original destination" ip netns exec "$PEER" "$CHECK" dial 10.233.7.1:8080

say "verify: the live rules match the options"
ip netns exec "$APP" "$INIT" verify --exclude-outbound-ports 9090

say "cleanup: everything apply added is removed"
ip netns exec "$APP" "$INIT" cleanup
echo "tables left in $APP: $(ip netns exec "$APP" nft list tables | wc -l)"
say "done"
