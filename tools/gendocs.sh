#!/usr/bin/env bash
# Generated references: docs/config.md, docs/ha-fsm.md and README.md's generated blocks.
# Usage: tools/gendocs.sh DOCGEN write|check   (make docs / make docs-check, from the repo root)
#   write  regenerates the files in place (only those whose content changed)
#   check  regenerates into a temporary folder and fails, with the diff, if anything differs
# A README block is the text between "<!-- BEGIN generated:NAME -->" and
# "<!-- END generated:NAME -->" lines; NAME is a docgen mode (api, ctl).
set -euo pipefail
docgen=${1:?usage: gendocs.sh DOCGEN write|check}
mode=${2:?usage: gendocs.sh DOCGEN write|check}
case "$mode" in write|check) ;; *) echo "gendocs: mode must be write or check" >&2; exit 64 ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/docs"
"$docgen" config > "$tmp/docs/config.md"
"$docgen" fsm > "$tmp/docs/ha-fsm.md"

# README.md with each generated block replaced by docgen's output.
cp README.md "$tmp/README.md"
for name in api ctl; do
  "$docgen" "$name" > "$tmp/block.$name"
  begin="<!-- BEGIN generated:$name -->"
  end="<!-- END generated:$name -->"
  if [ "$(grep -cxF "$begin" "$tmp/README.md")" != 1 ] ||
     [ "$(grep -cxF "$end" "$tmp/README.md")" != 1 ]; then
    echo "gendocs: README.md needs exactly one '$begin' and one '$end' line" >&2
    exit 1
  fi
  awk -v begin="$begin" -v end="$end" -v block="$tmp/block.$name" '
    $0 == begin { print; while ((getline line < block) > 0) print line; skip = 1; next }
    $0 == end   { skip = 0 }
    !skip       { print }' "$tmp/README.md" > "$tmp/README.next"
  mv "$tmp/README.next" "$tmp/README.md"
done

files=(docs/config.md docs/ha-fsm.md README.md)
if [ "$mode" = write ]; then
  mkdir -p docs
  for f in "${files[@]}"; do
    if ! cmp -s "$tmp/$f" "$f"; then
      cp "$tmp/$f" "$f.tmp" && mv "$f.tmp" "$f"
      echo "gendocs: wrote $f"
    fi
  done
  exit 0
fi
stale=0
for f in "${files[@]}"; do
  if [ ! -e "$f" ]; then
    echo "docs-check: $f is missing"; stale=1
  elif ! diff -u "$f" "$tmp/$f"; then
    stale=1
  fi
done
if [ "$stale" -ne 0 ]; then
  echo "docs-check: the generated references are stale (run: make docs)"
  exit 1
fi
echo "docs-check: OK (${files[*]})"
