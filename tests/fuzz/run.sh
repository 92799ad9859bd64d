#!/usr/bin/env bash
# Runs the fuzz targets: `fuzz SECONDS NAME...` (libFuzzer) or `regress 0 NAME...` (corpus replay).
#
# fuzz:    build/fuzz/bin/NAME runs for SECONDS (restarted after a crash until the time is used;
#          new inputs go to build/fuzz/corpus/NAME, crashes to build/fuzz/crashes/NAME/), seeded
#          from tests/fuzz/corpus/NAME and tests/fuzz/regress/NAME. One line per target with its
#          executions and crashes; a table in build/results/fuzz.txt. Exits 1 if any crashed.
# regress: build/asan/fuzz/NAME (gcc, ASan + UBSan, no libFuzzer) replays every file of
#          tests/fuzz/corpus/NAME and tests/fuzz/regress/NAME, one child process per file.
#          Writes "passed failed" to build/results/fuzz-regress.count.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
mode=$1; seconds=$2; shift 2
mkdir -p build/results
total_p=0; total_f=0

if [ "$mode" = regress ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  for name in "$@"; do
    dirs=()
    for d in tests/fuzz/corpus/"$name" tests/fuzz/regress/"$name"; do [ -d "$d" ] && dirs+=("$d"); done
    log=build/results/fuzz-regress-$name.log
    build/asan/fuzz/"$name" -n "$name" "${dirs[@]}" >"$log" 2>&1
    line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "$log" | tail -n1)
    p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$line"); f=$(sed -n 's/.*, \([0-9]*\) failed/\1/p' <<<"$line")
    p=${p:-0}; f=${f:-1}   # no closing line: the driver itself died
    total_p=$((total_p + p)); total_f=$((total_f + f))
    if [ "$f" -eq 0 ]; then
      printf '  %-16s %4d inputs passed\n' "$name" "$p"
    else
      printf '  %-16s %4d passed, %d FAILED, log: %s\n' "$name" "$p" "$f" "$log"
      grep -E 'FAILED|ERROR|runtime error|property failed' "$log" | head -10 | sed 's/^/      /'
    fi
  done
  echo "$total_p $total_f" > build/results/fuzz-regress.count
  echo "fuzz-regress: $total_p passed, $total_f failed"
  [ "$total_f" -eq 0 ]
  exit
fi

[ "$mode" = fuzz ] || { echo "usage: $0 fuzz SECONDS NAME... | regress 0 NAME..." >&2; exit 64; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
report=build/results/fuzz.txt
printf '%-16s %8s %12s %8s %8s\n' target seconds executions crashes corpus > "$report"
any_crash=0
for name in "$@"; do
  work=build/fuzz/corpus/$name; crashes=build/fuzz/crashes/$name
  mkdir -p "$work" "$crashes"
  seeds=()
  for d in tests/fuzz/corpus/"$name" tests/fuzz/regress/"$name"; do [ -d "$d" ] && seeds+=("$d"); done
  log=build/results/fuzz-$name.log
  : > "$log"
  execs=0; runs=0; start=$(date +%s)
  before=$(find "$crashes" -type f | wc -l)
  while :; do
    left=$(( seconds - ($(date +%s) - start) ))
    if [ "$left" -le 0 ] || [ "$runs" -ge 20 ]; then break; fi
    runs=$((runs + 1))
    build/fuzz/bin/"$name" -max_total_time="$left" -print_final_stats=1 -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$crashes/" \
      "$work" "${seeds[@]}" >>"$log" 2>&1
    rc=$?
    # Executions of this run: the final stats line, else the last status line ("#1234 ...").
    n=$(tac "$log" | sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p;
                              s/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' | head -n1)
    execs=$((execs + ${n:-0}))
    echo "=== run $runs ended with status $rc" >>"$log"
    [ "$rc" -eq 0 ] && break
  done
  found=$(( $(find "$crashes" -type f | wc -l) - before ))
  [ "$found" -gt 0 ] && any_crash=1
  size=$(find "$work" -type f | wc -l)
  printf '%-16s %8d %12d %8d %8d\n' "$name" "$(( $(date +%s) - start ))" "$execs" "$found" "$size" >> "$report"
  printf 'fuzz %-16s %12d executions, %d crashes (corpus %d, log %s)\n' "$name" "$execs" "$found" "$size" "$log"
  if [ "$found" -gt 0 ]; then
    find "$crashes" -type f -printf '%T@ %p\n' | sort -n | tail -n "$found" | cut -d' ' -f2- | sed 's/^/    /'
  fi
done
echo; cat "$report"
[ "$any_crash" -eq 0 ]
