#!/usr/bin/env bash
# Runs the whole test suite: unit tests, golden rulesets (checked with nft -c), and the privileged
# end-to-end tests in network namespaces (as root; elsewhere they are skipped with the reason printed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

interpose_check_swift
if interpose_root; then
  interpose_install_packages
  interpose_check_netns || die "the privileged tests need network namespaces"
else
  echo "note: not root: packages cannot be installed and the privileged namespace tests will be skipped" >&2
fi

say "building (debug, with tests)"
swift build --build-tests
say "running tests"
swift test --skip-build
