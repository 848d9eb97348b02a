# Shared by scripts/demo.sh and scripts/test.sh: checks the machine and installs what is missing.
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the build, the tests and the demo use.
INTERPOSE_PACKAGES=(nftables iptables iproute2 util-linux libnetfilter-queue-dev libmnl-dev libcap-dev redis-server python3)
# Commands those packages provide, to see quickly whether anything is missing.
INTERPOSE_COMMANDS=(nft iptables-nft ip setpriv unshare redis-server)

interpose_root() {
  [ "$(id -u)" = 0 ]
}

interpose_install_packages() {
  local missing=()
  for c in "${INTERPOSE_COMMANDS[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  for h in /usr/include/libnetfilter_queue/libnetfilter_queue.h /usr/include/libmnl/libmnl.h /usr/include/sys/capability.h /usr/bin/python3; do
    [ -e "$h" ] || missing+=("$h")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! interpose_root; then
    die "missing: ${missing[*]}; run as root so the Debian packages can be installed (${INTERPOSE_PACKAGES[*]})"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]} and no apt-get: install ${INTERPOSE_PACKAGES[*]} by hand"
  say "installing Debian packages: ${INTERPOSE_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed (no network to the Debian mirror?)"
  apt-get install -y -qq --no-install-recommends "${INTERPOSE_PACKAGES[@]}" >/dev/null || die "apt-get install failed"
}

interpose_check_swift() {
  if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
  fi
  command -v swift >/dev/null 2>&1 || die "swift not found: install a Swift 6 toolchain (swift.org) and put it on PATH"
}

# Network namespaces need root and a kernel with them; say which is missing.
interpose_check_netns() {
  interpose_root || return 1
  local probe="interpose-probe-$$"
  if ! ip netns add "$probe" 2>/dev/null; then
    echo "cannot create a network namespace (ip netns add failed): the kernel or the container forbids it" >&2
    return 1
  fi
  ip netns del "$probe"
}
