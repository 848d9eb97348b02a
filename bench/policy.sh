#!/usr/bin/env bash
# The per-request cost of the policy check, and the proxy's throughput with policy on versus off.
#
#   sudo bench/policy.sh        (root: the throughput part runs bench/run.sh's namespace topology)
#
# 1. `interpose-policy-bench micro` (release): PolicyEngine.check per request, averaged over
#    BENCH_POLICY_ITERATIONS calls, with no policy and with 100 AuthorizationPolicy rules + 10
#    rate limits (PolicyBenchmark's config: every rule has from/to/when, the request is allowed
#    only by the last ALLOW rule, two Local limits select it). Two request forms: fixed attribute
#    values, and the proxy's own lazy view over an HTTP head. Median of BENCH_POLICY_REPEAT runs.
# 2. bench/run.sh with BENCH_CONFIGS="interpose interpose-policy": the same proxy, the same wrk and
#    hey load, without policy and with the same 100 rules + 10 limits arranged so that the app's
#    GET / is allowed only by the last rule.
# Results go between <!-- bench:policy:begin --> and <!-- bench:policy:end --> in docs/benchmarks.md.
#
# Knobs: BENCH_POLICY_ITERATIONS (default 2000000), BENCH_POLICY_REPEAT (3), BENCH_SCRATCH_PATH,
# and bench/run.sh's BENCH_RUNS / BENCH_DURATION / BENCH_HEY_RUNS (defaults 3 / 10 / 3).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source scripts/lib.sh
source bench/lib.sh
interpose_check_swift
DOC=${BENCH_DOC-docs/benchmarks.md}
ITER=${BENCH_POLICY_ITERATIONS:-2000000}
REPEAT=${BENCH_POLICY_REPEAT:-3}
build_args=(-c release)
[ -n "${BENCH_SCRATCH_PATH:-}" ] && build_args+=(--scratch-path "$BENCH_SCRATCH_PATH")
say "building interpose-policy-bench (release)"
swift build "${build_args[@]}" --product interpose-policy-bench >/dev/null || die "swift build --product interpose-policy-bench failed"
BIN="$(swift build "${build_args[@]}" --show-bin-path)"

empty=(); fixed=(); lazy=()
for r in $(seq "$REPEAT"); do
  out=$("$BIN/interpose-policy-bench" micro --rules 100 --limits 10 --iterations "$ITER")
  echo "$out" | sed 's/^/   /'
  empty+=("$(echo "$out" | awk '$1 == "no-policy-ns" { print $2 }')")
  fixed+=("$(echo "$out" | awk '$1 == "fixed-attributes-ns" { print $2 }')")
  lazy+=("$(echo "$out" | awk '$1 == "http-head-attributes-ns" { print $2 }')")
done
E=$(median "${empty[@]}"); F=$(median "${fixed[@]}"); L=$(median "${lazy[@]}")

say "throughput with policy off and on (bench/run.sh)"
BENCH_CONFIGS="interpose interpose-policy" BENCH_DOC='' BENCH_RUNS="${BENCH_RUNS:-3}" BENCH_HEY_RUNS="${BENCH_HEY_RUNS:-3}" \
  bash bench/run.sh
RUN_RES=/tmp/interpose-bench-last/results.md
[ -f "$RUN_RES" ] || die "bench/run.sh left no $RUN_RES"
row() { grep -F "| $1" "$RUN_RES" | head -1; }
rps() { row "$1" | awk -F'|' '{ gsub(/ /, "", $3); print $3 }'; }
cpu() { row "$1" | awk -F'|' '{ gsub(/ /, "", $9); print $9 }'; }
OFF_RPS=$(rps '**Interpose** (1 event loop)'); ON_RPS=$(rps '**Interpose** with policy')
OFF_CPU=$(cpu '**Interpose** (1 event loop)'); ON_CPU=$(cpu '**Interpose** with policy')
ADDED=$(awk -v f="$L" -v e="$E" 'BEGIN { printf "%.2f", (f - e) / 1000 }')
CPU_ADDED=$(awk -v a="$ON_CPU" -v b="$OFF_CPU" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", a - b }')

RES=$(mktemp)
{
  results_header "sudo bench/policy.sh" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" "release build"
  echo "- Check cost: \`interpose-policy-bench micro --rules 100 --limits 10 --iterations $ITER\`, median of $REPEAT runs; ns per \`PolicyEngine.check\`."
  echo "- Throughput: \`bench/run.sh\` with \`BENCH_CONFIGS=\"interpose interpose-policy\"\` (wrk -t1 -c32, the same topology, capture and origin as the main table)."
  echo
  echo "| check | ns per request |"
  echo "|---|---:|"
  echo "| no policy configured | $E |"
  echo "| 100 rules + 10 limits, fixed attribute values | $F |"
  echo "| 100 rules + 10 limits, the proxy's lazy view of an HTTP head | $L |"
  echo
  echo "| proxy | req/s | proxy CPU µs/req |"
  echo "|---|---:|---:|"
  echo "| Interpose, no policy | ${OFF_RPS:-n/a} | ${OFF_CPU:-n/a} |"
  echo "| Interpose, 100 AuthorizationPolicy rules + 10 rate limits | ${ON_RPS:-n/a} | ${ON_CPU:-n/a} |"
  echo
  echo "| target | measured | |"
  echo "|---|---:|---|"
  echo "| the check adds under 2 µs per request (100 rules, 10 limits) | $ADDED µs | $(awk -v a="$ADDED" 'BEGIN { print (a < 2 ? "met" : "**missed**") }') |"
  echo
  echo "The proxy's CPU per request grew by $CPU_ADDED µs with policy on (wrk's measurement, which includes noise of a few µs between runs)."
} >"$RES"
cat "$RES"
[ -n "$DOC" ] && doc_section "$DOC" policy "$RES" "Policy check (per request)"
rm -f "$RES"
