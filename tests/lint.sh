#!/usr/bin/env bash
# Lint: clang-format check, cppcheck and the banned-API check over the project's C sources.
set -uo pipefail
mapfile -t files < <(find platform agent web tools tests/unit tests/fuzz -name '*.[ch]' 2>/dev/null | sort)
mapfile -t csrc < <(printf '%s\n' "${files[@]}" | grep '\.c$' | grep -v '^tests/')
status=0
if ! clang-format --dry-run -Werror "${files[@]}"; then
  echo "lint: clang-format: files need formatting (run: clang-format -i <file>)"; status=1
fi
if ! cppcheck --quiet --enable=warning,style,performance,portability --std=c11 \
    --error-exitcode=1 --inline-suppr --suppress=missingIncludeSystem \
    --suppress=unusedFunction -D_GNU_SOURCE -I. "${csrc[@]}"; then
  echo "lint: cppcheck found problems"; status=1
fi
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok|strncpy|stpcpy|tmpnam|mktemp)\s*\('
if grep -nE "$banned" "${files[@]}" | grep -v 'lint:allow'; then
  echo "lint: banned C APIs above (use snprintf, strtol-style parsing with range checks)"; status=1
fi
for f in "${files[@]}"; do
  head -n1 "$f" | grep -q '^/\* ' || { echo "lint: $f: first line must be a one-line role comment"; status=1; }
done
# Generated references (docs/*.md, README.md's generated blocks) must match the code's tables.
if ! make --no-print-directory -s docs-check; then
  echo "lint: docs-check failed: README.md or docs/ are stale (run: make docs), or docgen did not build"; status=1
fi
[ "$status" -eq 0 ] && echo "lint: OK (${#files[@]} files)"
exit "$status"
