#!/usr/bin/env bash
# Runs the pytest integration suite (real etcd and PostgreSQL) against a pgwarden binary and tallies it.
set -uo pipefail
bin=$(realpath "$1"); shift
mkdir -p build/results
export PGWARDEN_BIN=$bin
/usr/bin/python3 -m pytest tests/integration -q -ra -p no:cacheprovider \
  --junitxml=build/results/integration.xml "$@"
rc=$?
/usr/bin/python3 - <<'PY' > build/results/integration.count
import xml.etree.ElementTree as ET
try:
    r = ET.parse("build/results/integration.xml").getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    total, fail = int(s.get("tests")), int(s.get("failures")) + int(s.get("errors"))
    skipped = int(s.get("skipped", 0))
    print(total - fail - skipped, fail + skipped)   # a skipped test counts as not passed
except Exception:
    print(0, 1)
PY
# Sanitizer builds (make integration-asan): a report of any pgwarden process fails the run.
if [ -n "${PGWARDEN_SANITIZER_LOG_DIR:-}" ]; then
  shopt -s nullglob
  reports=("$PGWARDEN_SANITIZER_LOG_DIR"/*)
  if [ "${#reports[@]}" -gt 0 ]; then
    echo "run-integration: ${#reports[@]} sanitizer report(s) in $PGWARDEN_SANITIZER_LOG_DIR:"
    for f in "${reports[@]}"; do
      echo "==== $f ($(date -u -r "$f" +%H:%M:%S))"
      head -c 20000 "$f"
    done
    read -r ok bad < build/results/integration.count
    echo "$ok $((bad + ${#reports[@]}))" > build/results/integration.count
    rc=1
  fi
fi
[ "$rc" -eq 0 ] && exit 0
# pytest exits 5 when nothing was collected: that is a failure too.
exit 1
