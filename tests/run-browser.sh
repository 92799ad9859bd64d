#!/usr/bin/env bash
# Browser tests of the dashboard (tests/browser): installs playwright-core with `npm ci`, runs the
# pytest driver (a real three-node cluster, Debian's Chromium) and tallies its checks into
# build/results/browser.count ("passed failed"); screenshots in build/results/screenshots/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
bin=$(realpath "${1:-build/dev/pgwarden}"); [ "$#" -gt 0 ] && shift
mkdir -p build/results
rm -f build/results/browser.json build/results/browser.count
if [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser: needs /usr/bin/chromium (toolchain/install-deps.sh test), node and npm"
  echo "0 1" > build/results/browser.count; echo "browser: 0 passed, 1 failed"; exit 1
fi
if ! (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error); then
  echo "browser: npm ci failed"
  echo "0 1" > build/results/browser.count; echo "browser: 0 passed, 1 failed"; exit 1
fi
PGWARDEN_BIN=$bin /usr/bin/python3 -m pytest -c tests/browser/pytest.ini tests/browser -q -s \
  --junitxml=build/results/browser.xml "$@"
rc=$?
/usr/bin/python3 - <<'PY' > build/results/browser.count
import json
try:
    checks = json.load(open("build/results/browser.json"))["checks"]
    ok = sum(1 for c in checks if c["ok"])
    print(ok, len(checks) - ok)
except Exception:
    print(0, 1)   # the cluster or the browser did not even get to the checks
PY
read -r p f < build/results/browser.count
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$p $f" > build/results/browser.count; fi
echo "browser: $p passed, $f failed"
[ "$rc" -eq 0 ] && [ "$f" -eq 0 ]
