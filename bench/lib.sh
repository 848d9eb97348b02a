# Shared by bench/run.sh and bench/flow.sh: small numeric helpers and the wait for a quiet machine.
# shellcheck shell=bash

shell_word() { case "$1" in *[!A-Za-z0-9_./:=,+-]* | '') printf "'%s'" "${1//\'/\'\\\'\'}" ;; *) printf '%s' "$1" ;; esac; }
median() { printf '%s\n' "$@" | awk '/^-?[0-9.]+$/' | sort -g | awk '{a[NR]=$1} END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
verdict() { # value op limit; op is >=, <= or <
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { if (v == "n/a") { print "n/a"; exit } ok = (op == ">=" ? v >= l : (op == "<=" ? v <= l : v < l)); print (ok ? "met" : "**missed**") }'
}
# utime + stime of a process (all its threads), in clock ticks.
ticks_total() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Percent of all CPUs busy over $1 seconds (from /proc/stat).
cpu_busy_pct() {
  local _c u n s i w q sq st rest t1 i1 t2 i2
  read -r _c u n s i w q sq st rest </proc/stat; t1=$((u + n + s + i + w + q + sq + st)); i1=$((i + w))
  sleep "$1"
  read -r _c u n s i w q sq st rest </proc/stat; t2=$((u + n + s + i + w + q + sq + st)); i2=$((i + w))
  echo $(( (100 * ((t2 - t1) - (i2 - i1))) / (t2 - t1 > 0 ? t2 - t1 : 1) ))
}
# Swift toolchain processes and test bundles of someone else, as "pid ticks" lines (zombies excluded).
toolchain_snapshot() {
  local p
  for p in $(ps -eo pid=,stat=,comm=,args= | awk '$2 !~ /^Z/ && $3 != "awk" && ($3 ~ /^(swift-build|swift-frontend|swiftc|swift-driver|swift-test)$/ || /\.xctest/) { print $1 }'); do
    [ "$p" = "$$" ] && continue
    echo "$p $(ticks_total "$p" 2>/dev/null || echo gone)"
  done
}
# A build or test is busy when one of those processes used CPU between two snapshots, or one started
# or ended. A toolchain process that only sleeps (a hung swiftc next to its zombies) does not count.
toolchain_active() { # snapshot-before snapshot-after
  awk 'NR == FNR { a[$1] = $2; next } { if (!($1 in a) || $2 == "gone" || $2 - a[$1] > 2) f = 1; delete a[$1] } END { for (p in a) f = 1; exit !f }' \
    <(printf '%s\n' "$1" | sed '/^$/d') <(printf '%s\n' "$2" | sed '/^$/d')
}
# Waits (bounded by WAIT_QUIET seconds) until no Swift build or test of someone else is working and
# the machine is under 25 % busy. Sets LAST_BUSY, QUIET_NOTE and adds to WAITED_TOTAL.
wait_quiet() { # bounded; sets LAST_BUSY and QUIET_NOTE
  local waited=0 busy s1 s2 build
  while :; do
    s1=$(toolchain_snapshot); busy=$(cpu_busy_pct 2); s2=$(toolchain_snapshot)
    build=no; toolchain_active "$s1" "$s2" && build=yes
    if [ "$build" = no ] && [ "$busy" -lt 25 ]; then break; fi
    if [ "$waited" -ge "$WAIT_QUIET" ]; then
      say "still busy after ${WAIT_QUIET}s (CPU ${busy}%, a Swift build or test working: $build): measuring anyway"
      QUIET_NOTE="not quiet: waited ${WAIT_QUIET}s and measured with the machine ${busy}% busy (a Swift build or test working: $build)"
      LAST_BUSY=$busy
      WAITED_TOTAL=$((WAITED_TOTAL + waited))
      return 0
    fi
    [ $((waited % 30)) -eq 0 ] && say "waiting for the machine to be quiet (CPU ${busy}% busy; a Swift build or test working: $build)"
    sleep 3; waited=$((waited + 5))
  done
  LAST_BUSY=$busy
  QUIET_NOTE="quiet after waiting ${waited}s (CPU ${busy}% busy just before)"
  WAITED_TOTAL=$((WAITED_TOTAL + waited))
}
WAITED_TOTAL=0
# Whether a Swift build or test of someone else is working now (over one second).
others_busy() { local s1 s2; s1=$(toolchain_snapshot); sleep 1; s2=$(toolchain_snapshot); toolchain_active "$s1" "$s2"; }

# Puts FILE between <!-- bench:NAME:begin --> and <!-- bench:NAME:end --> in DOC, keeping a
# <!-- bench:NAME:notes --> line and what follows it up to the end marker (hand-written notes);
# appends the markers, under "## TITLE" when given, if DOC lacks them.
doc_section() { # doc name file [title]
  local doc=$1 name=$2 file=$3 title=${4:-}
  if [ -f "$doc" ] && grep -q "<!-- bench:$name:begin -->" "$doc" && grep -q "<!-- bench:$name:end -->" "$doc"; then
    awk -v f="$file" -v b="<!-- bench:$name:begin -->" -v e="<!-- bench:$name:end -->" -v n="<!-- bench:$name:notes -->" '
      index($0, b) == 1 { print; while ((getline l < f) > 0) print l; skip = 1; next }
      skip && index($0, n) == 1 { print ""; skip = 0 }
      index($0, e) == 1 { skip = 0 }
      !skip' "$doc" >"$doc.new"
    cat "$doc.new" >"$doc" && rm -f "$doc.new"
  else
    { [ -f "$doc" ] || echo "# Benchmarks"; echo; [ -n "$title" ] && printf '## %s\n\n' "$title"
      echo "<!-- bench:$name:begin -->"; cat "$file"; echo "<!-- bench:$name:end -->"; } >>"$doc"
  fi
  say "results written to $doc (between the bench:$name markers)"
}

# What the measured binaries are, for the report: BENCH_LABEL, the BENCH_BIN folder, or the commit here.
source_note() { # repository root
  if [ -n "${BENCH_LABEL:-}" ]; then
    echo "$BENCH_LABEL"
  elif [ -n "${BENCH_BIN:-}" ]; then
    echo "binaries from $BENCH_BIN"
  elif git -C "$1" rev-parse --short HEAD >/dev/null 2>&1; then
    local note; note="$(git -C "$1" rev-parse --short HEAD)"
    if [ -n "$(git -C "$1" status --porcelain -- Sources Package.swift 2>/dev/null)" ]; then note="$note with uncommitted changes in Sources/"; fi
    echo "$note"
  else
    echo "not a git checkout"
  fi
}

# One benchmark at a time (bench/run.sh, bench/flow.sh, bench/policy.sh's run): two would measure each
# other and delete each other's namespaces. Holds the lock on descriptor 9 until the script exits.
take_bench_lock() {
  exec 9>/tmp/interpose-bench.lock
  if ! flock -n 9; then
    say "another benchmark holds /tmp/interpose-bench.lock: waiting for it (up to ${WAIT_QUIET}s)"
    flock -w "$WAIT_QUIET" 9 || die "another benchmark still holds /tmp/interpose-bench.lock"
  fi
}

# The "Problems seen" list that ends a report (nothing when PROBLEMS is empty).
problems_section() {
  [ ${#PROBLEMS[@]} -gt 0 ] || return 0
  echo
  echo "Problems seen:"
  echo
  local p
  for p in "${PROBLEMS[@]}"; do echo "- $p"; done
}

# Prints the report, keeps a copy with the raw outputs, and puts it in the doc section NAME.
publish_report() { # report-file name [title]
  echo
  cat "$1"
  cp "$1" "$WORK/logs/results.md"
  if [ -n "$DOC" ]; then
    echo
    doc_section "$DOC" "$2" "$1" "${3:-}"
  fi
}

# The first lines of a results section: when, the command, what was measured, and the machine
# (CPU model, CPU count, kernel), then any extra machine facts given as arguments.
results_header() { # command-line source-note build-note [machine facts...]
  local command=$1 source=$2 build=$3; shift 3
  local cpu extra=""
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  [ $# -gt 0 ] && extra="; $*"
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`$command\`"
  echo "(Interpose: $source; $build)."
  echo
  echo "- Machine: $cpu, \`nproc\` $(nproc), kernel \`$(uname -r)\`$extra."
}

