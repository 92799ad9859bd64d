#!/usr/bin/env bash
# sysroot.sh ARCH — print the absolute path of the dependency sysroot for ARCH (amd64|arm64); builds nothing.
#
# Path: ${PGWARDEN_TOOLCHAIN_CACHE:-/var/cache/pgwarden-toolchain}/<key>/<ARCH>, where <key>
# is a short hash of versions.env, the build scripts and the C compiler version for ARCH. The
# sysroot is usable only once <path>/.complete exists (toolchain/build.sh ARCH makes it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arch=${1:-}
case $arch in
    amd64) triplet=x86_64-linux-gnu ;;
    arm64) triplet=aarch64-linux-gnu ;;
    *) echo "usage: $0 amd64|arm64" >&2; exit 2 ;;
esac

# The compiler for ARCH: plain gcc when ARCH is this machine's, else the cross gcc.
case $(uname -m) in
    x86_64) native=amd64 ;;
    aarch64) native=arm64 ;;
    *) native=unknown ;;
esac
if [ "$arch" = "$native" ]; then cc=gcc; else cc=$triplet-gcc; fi
ccver=$("$cc" --version 2>/dev/null | head -n 1 || true)
[ -n "$ccver" ] || ccver="$cc: not installed"

cache=${PGWARDEN_TOOLCHAIN_CACHE:-/var/cache/pgwarden-toolchain}
case $cache in /*) ;; *) cache=$PWD/$cache ;; esac
key=$( { cat "$here/versions.env" "$here/build.sh" "$here/sources.sh" "$here/common.sh"
         echo "$arch $ccver"; } | sha256sum | cut -c1-12)
echo "$cache/$key/$arch"
