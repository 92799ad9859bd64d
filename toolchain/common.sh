# common.sh — shell helpers shared by toolchain/build.sh and toolchain/sources.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it

# A clean, predictable environment: nothing from the caller's shell or make leaks in
# (e.g. `make ARCH=arm64 CC=clang` puts CC=clang into MAKEFLAGS of every sub-make, and
# LIBRARY_PATH/CPATH silently add search dirs to every gcc call).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS CC CXX CPP CFLAGS CXXFLAGS \
      CPPFLAGS LDFLAGS LIBS AR RANLIB STRIP PKG_CONFIG_PATH PKG_CONFIG_LIBDIR \
      PKG_CONFIG_SYSROOT_DIR CMAKE_TOOLCHAIN_FILE CMAKE_PREFIX_PATH CMAKE_GENERATOR DESTDIR \
      LIBRARY_PATH CPATH C_INCLUDE_PATH GCC_EXEC_PREFIX COMPILER_PATH LD_LIBRARY_PATH
export LC_ALL=C TZ=UTC
umask 022

TOOLCHAIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091  # plain VAR=value lines
. "$TOOLCHAIN_DIR/versions.env"

TOOLCHAIN_CACHE=${PGWARDEN_TOOLCHAIN_CACHE:-/var/cache/pgwarden-toolchain}
case $TOOLCHAIN_CACHE in /*) ;; *) TOOLCHAIN_CACHE=$PWD/$TOOLCHAIN_CACHE ;; esac

case $(uname -m) in
    x86_64) NATIVE_ARCH=amd64 ;;
    aarch64) NATIVE_ARCH=arm64 ;;
    *) NATIVE_ARCH=unknown ;;
esac
JOBS=$(nproc)

LOG_LABEL=${LOG_LABEL:-toolchain}
say() { echo "$LOG_LABEL: $*"; }

# Seconds since the `date +%s%N` stamp $1, e.g. "12.3s".
elapsed() {
    local d=$(( $(date +%s%N) - $1 ))
    printf '%d.%01ds' $(( d / 1000000000 )) $(( d / 100000000 % 10 ))
}

# upstream 1:2.3-4 -> 2.3 (Debian version without epoch and revision).
upstream() { local v=${1#*:}; echo "${v%-*}"; }

# step LIB STEP DIR CMD... — run CMD in DIR, appending all output to $LOGS/LIB-STEP.log;
# on failure print the last 40 lines of that log and exit 1.
step() {
    local lib=$1 name=$2 dir=$3; shift 3
    local log="$LOGS/$lib-$name.log" t0
    t0=$(date +%s%N)
    echo "+ (cd $dir && $*)" >>"$log"
    if ! (cd "$dir" && "$@") >>"$log" 2>&1; then
        echo "$LOG_LABEL: FAILED: $lib $name: $*" >&2
        echo "---- last 40 lines of $log ----" >&2
        tail -n 40 "$log" >&2
        echo "---- (work dir kept: $(dirname "$LOGS")) ----" >&2
        exit 1
    fi
    echo "# took $(elapsed "$t0")" >>"$log"
}

# mkworkdir PATTERN — mktemp -d, but world-readable (it becomes a shared cache dir).
mkworkdir() {
    local d
    d=$(mktemp -d "$1")
    chmod 755 "$d"
    echo "$d"
}
