#!/usr/bin/env bash
# Runs cmocka unit-test binaries (natively under ASan/UBSan, or arm64 ones under qemu) and tallies them.
set -uo pipefail
mode=$1; dir=$2; shift 2
mkdir -p build/results
passed=0; failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for name in "$@"; do
  bin=$dir/$name
  log=build/results/unit-$mode-$name.log
  case $mode in
    qemu) runner=(qemu-aarch64-static "$bin") ;;
    *) runner=("$bin") ;;
  esac
  start=$(date +%s.%N)
  timeout 300 "${runner[@]}" >"$log" 2>&1
  rc=$?
  secs=$(printf '%.2f' "$(echo "$(date +%s.%N) - $start" | bc)")
  p=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
  f=$(sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed, sanitizer report or timeout
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -eq 0 ]; then
    printf '  %-6s %-24s %3d passed (%ss)\n' "$mode" "$name" "$p" "$secs"
  else
    printf '  %-6s %-24s %3d passed, %d FAILED (exit %d), log: %s\n' "$mode" "$name" "$p" "$f" "$rc" "$log"
    grep -E 'FAILED|ERROR|Sanitizer|runtime error|Assertion' "$log" | head -20 | sed 's/^/      /'
  fi
done
echo "$passed $failed" > "build/results/unit-$mode.count"
echo "unit ($mode): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
