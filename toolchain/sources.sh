#!/usr/bin/env bash
# sources.sh — fetch and prepare the pinned Debian sources once; print the shared source dir (used by build.sh).
#
# Layout (outside the work tree):
#   $CACHE/dl/                Debian source files as apt downloaded them (kept across versions)
#   $CACHE/src/<srckey>/LIB/  unpacked trees (Debian patches applied), read-only once prepared
#   $CACHE/src/<srckey>/sqlite-amalgamation/   sqlite3.c/.h generated natively (needs tclsh);
#                             the full SQLite tree is removed afterwards
# <srckey> hashes versions.env, this script and common.sh. Both arches build out of tree
# from the same prepared sources. Needs `install-deps.sh build` (deb-src, dpkg-dev, tcl,
# autotools) to have run. Progress goes to stderr, the path alone to stdout.
set -euo pipefail

LOG_LABEL="toolchain sources"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

srckey=$(cat "$TOOLCHAIN_DIR/versions.env" "$TOOLCHAIN_DIR/sources.sh" "$TOOLCHAIN_DIR/common.sh" \
         | sha256sum | cut -c1-12)
src=$TOOLCHAIN_CACHE/src/$srckey
dl=$TOOLCHAIN_CACHE/dl
if [ -f "$src/.complete" ]; then echo "$src"; exit 0; fi

# From here on, all progress to stderr: stdout carries only the path.
exec 3>&1 1>&2

mkdir -p "$TOOLCHAIN_CACHE/src" "$dl"
exec 8>"$TOOLCHAIN_CACHE/src/.lock"    # one preparer at a time (e.g. amd64 and arm64 at once)
flock 8
if [ -f "$src/.complete" ]; then echo "$src" >&3; exit 0; fi

t_all=$(date +%s%N)
rm -rf "$TOOLCHAIN_CACHE/src/.tmp-"*  # leftovers of an interrupted run (we hold the lock)
tmp=$(mkworkdir "$TOOLCHAIN_CACHE/src/.tmp-$srckey.XXXXXX")
LOGS=$tmp/logs
mkdir -p "$LOGS"

# apt drops to user _apt for downloads; let it write (avoids the "unsandboxed" warning).
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi

# fetch LIB — put the pinned Debian source files of LIB into $dl unless already there.
fetch() {
    local lib=$1 pkg ver mode uver name
    pkg=${lib}_PKG; pkg=${!pkg}
    ver=${lib}_DEB; ver=${!ver}
    mode=${lib}_FETCH; mode=${!mode}
    uver=$(upstream "$ver")
    name=${lib,,}
    if [ "$mode" = deb ] && [ -f "$dl/${pkg}_${ver#*:}.dsc" ]; then return 0; fi
    if [ "$mode" = orig ] && compgen -G "$dl/${pkg}_$uver.orig.tar.*" >/dev/null; then return 0; fi
    if ! apt-cache showsrc "$pkg" 2>/dev/null | grep -x "Version: $ver" >/dev/null; then
        say "$pkg=$ver is not offered by apt (deb-src entries: toolchain/install-deps.sh build); it offers:"
        apt-cache showsrc "$pkg" 2>/dev/null | grep '^Version:' || true
        say "pin another version in toolchain/versions.env (${lib}_DEB)"
        exit 1
    fi
    if [ "$mode" = deb ]; then
        step "$name" fetch "$dl" apt-get source -q --download-only "$pkg=$ver"
    else
        # Only the upstream tarball is wanted: apt fails on missing Debian parts but
        # keeps the files it did download, each checked against the Sources index hash.
        (cd "$dl" && apt-get source -q --download-only "$pkg=$ver") >>"$LOGS/$name-fetch.log" 2>&1 || true
        if ! compgen -G "$dl/${pkg}_$uver.orig.tar.*" >/dev/null; then
            say "could not download the ${pkg}_$uver.orig tarball"
            tail -n 40 "$LOGS/$name-fetch.log"
            exit 1
        fi
    fi
}

# unpack LIB — unpack LIB into $tmp/LIB (Debian patches applied in "deb" mode).
unpack() {
    local lib=$1 pkg ver mode
    pkg=${lib}_PKG; pkg=${!pkg}
    ver=${lib}_DEB; ver=${!ver}
    mode=${lib}_FETCH; mode=${!mode}
    if [ "$mode" = deb ]; then
        # --no-check: no Debian developer keyring here; apt checked the hashes already.
        step "${lib,,}" unpack "$dl" dpkg-source --no-check -x "${pkg}_${ver#*:}.dsc" "$tmp/$lib"
    else
        mkdir -p "$tmp/$lib"
        step "${lib,,}" unpack "$dl" tar -xf "$(compgen -G "$dl/${pkg}_$(upstream "$ver").orig.tar.*" | head -n 1)" \
            -C "$tmp/$lib" --strip-components=1
    fi
}

t0=$(date +%s%N)
for lib in $TOOLCHAIN_LIBS; do fetch "$lib"; done
say "fetched in $(elapsed "$t0")"
t0=$(date +%s%N)
pids=()
for lib in $TOOLCHAIN_LIBS; do unpack "$lib" & pids+=($!); done   # decompression: 1 core each
for p in "${pids[@]}"; do wait "$p" || exit 1; done
rm -f "$tmp"/*.dsc "$tmp"/*.tar.* "$tmp"/*.asc   # dpkg-source -x copies these beside the tree
say "unpacked in $(elapsed "$t0")"

# SQLite: the full tree cannot be cross-built (lemon is built with the target $CC), so
# generate the amalgamation natively once (tclsh); each arch then compiles sqlite3.c.
gen_sqlite() {
    local t0 g=$tmp/sqlite-gen
    t0=$(date +%s%N)
    mkdir -p "$g" "$tmp/sqlite-amalgamation"
    step sqlite amalgamation "$g" env CC=gcc "$tmp/SQLITE/configure" --disable-tcl --disable-shared
    step sqlite amalgamation "$g" make -j"$JOBS" sqlite3.c
    cp "$g/sqlite3.c" "$g/sqlite3.h" "$g/sqlite3ext.h" "$tmp/sqlite-amalgamation/"
    rm -rf "$g" "$tmp/SQLITE"      # the full tree (150 MB, mostly tests and docs) is done with
    say "generated sqlite3.c in $(elapsed "$t0")"
}

# curl: Debian's patches edit configure.ac and Makefile.am, so regenerate (as Debian does).
gen_curl() {
    local t0
    t0=$(date +%s%N)
    step curl autoreconf "$tmp/CURL" autoreconf -fi
    say "autoreconf curl in $(elapsed "$t0")"
}

# Both are single-threaded: run them side by side.
gen_sqlite & p1=$!
gen_curl & p2=$!
rc=0
wait "$p1" || rc=1
wait "$p2" || rc=1
[ "$rc" -eq 0 ] || exit 1

# mbedTLS: thread-safe, like Debian's package; the installed mbedtls_config.h is this one,
# so headers and library agree.
step mbedtls config "$tmp/MBEDTLS" python3 scripts/config.py set MBEDTLS_THREADING_C
step mbedtls config "$tmp/MBEDTLS" python3 scripts/config.py set MBEDTLS_THREADING_PTHREAD

touch "$tmp/.complete"
rm -rf "$src"
mv "$tmp" "$src"            # commit point
say "prepared $src in $(elapsed "$t_all")"
echo "$src" >&3
