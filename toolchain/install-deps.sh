#!/usr/bin/env bash
# install-deps.sh — idempotently install the Debian packages pgwarden needs, by group.
#
# Usage: toolchain/install-deps.sh [build|cross|test|lint|fuzz|demo|all]...   (default: build)
#   build  native compilers and tools to build the static dependency sysroot
#   cross  aarch64 cross compiler, arm64 libc/libssl (multiarch), qemu-user-static
#   test   PostgreSQL 15, etcd, pytest + psycopg2 for the integration tests; haproxy and
#          valgrind for the forwarder benchmark and its leak check; chromium (with node and npm,
#          which the machine provides) for the browser tests (tests/browser/package-lock.json)
#   lint   clang-format, cppcheck, shellcheck
#   fuzz   clang (bookworm's clang-14, with libFuzzer and the sanitizers) for `make fuzz`
#   demo   PostgreSQL 15 and etcd only, for `make demo` (a subset of test)
# A no-op (no apt-get at all) when every package of the requested groups is installed.
# Runs as root on Debian 12 (bookworm). "build" adds deb-src entries for bookworm and
# trixie (sources only: never a trixie "deb" entry, so no binary is ever upgraded to
# trixie); "cross" adds the arm64 dpkg architecture.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# Wait for the dpkg lock (another apt run on the machine) instead of failing at once.
APT_OPTS=(-q -o DPkg::Lock::Timeout=600)
SRC_LIST=/etc/apt/sources.list.d/pgwarden-src.sources
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

group_pkgs() {
    case $1 in
        build) echo build-essential dpkg-dev cmake tcl pkg-config bzip2 xz-utils file perl \
                    python3 autoconf automake libtool libssl-dev debian-archive-keyring ;;
        cross) echo gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross \
                    libssl-dev:arm64 qemu-user-static ;;
        test)  echo postgresql-15 postgresql-client-15 etcd-server etcd-client \
                    python3-pytest python3-pytest-timeout python3-psycopg2 sqlite3 \
                    procps iproute2 curl bc openssl haproxy valgrind wrk chromium systemd ;;
        lint)  echo clang-format cppcheck shellcheck ;;
        fuzz)  echo clang libclang-rt-14-dev ;;
        demo)  echo postgresql-15 postgresql-client-15 etcd-server etcd-client ;;
    esac
}

die() { echo "install-deps: $*" >&2; exit 1; }

# Seconds elapsed since $1 (a `date +%s%N` stamp), printed as e.g. 12.3s.
elapsed() {
    local d=$(( $(date +%s%N) - $1 ))
    printf '%d.%01ds' $(( d / 1000000000 )) $(( d / 100000000 % 10 ))
}

# Is package $1 installed? An unqualified name means the native (or "all") package:
# with libssl-dev:arm64 present, `dpkg-query -W libssl-dev` would list both arches.
# One dpkg-query for everything keeps the all-present case fast.
NATIVE_ARCH=$(dpkg --print-architecture)
declare -A INSTALLED
read_installed() {
    local name status
    INSTALLED=()
    while read -r name status; do
        [ "$status" = installed ] && INSTALLED[$name]=1
    done < <(dpkg-query -W -f='${Package}:${Architecture} ${db:Status-Status}\n')
}
installed() {
    case $1 in
        *:*) [ -n "${INSTALLED[$1]:-}" ] ;;
        *)   [ -n "${INSTALLED[$1:$NATIVE_ARCH]:-}" ] || [ -n "${INSTALLED[$1:all]:-}" ] ;;
    esac
}

# Expand and de-duplicate the requested groups.
groups=()
for g in "${@:-build}"; do
    case $g in
        all) names=(build cross test lint fuzz) ;;
        build|cross|test|lint|fuzz|demo) names=("$g") ;;
        *) die "unknown group '$g' (expected build, cross, test, lint, fuzz, demo or all)" ;;
    esac
    for x in "${names[@]}"; do
        case " ${groups[*]} " in *" $x "*) ;; *) groups+=("$x") ;; esac
    done
done

# deb-src for bookworm (postgresql-15, jansson) and trixie (sqlite3, mbedtls,
# libmicrohttpd, curl, cmocka). trixie's Release is signed by the trixie archive keys,
# which bookworm's debian-archive-keyring (2023.3+deb12u*) already holds, so the same
# keyring file verifies both suites.
SRC_WANT="# Added by pgwarden toolchain/install-deps.sh: source packages only (apt-get source).
# Never add \"Types: deb\" for trixie here: binaries must stay on bookworm.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm trixie
Components: main
Signed-By: $KEYRING"

src_ok() {
    [ -f "$SRC_LIST" ] && [ "$(cat "$SRC_LIST")" = "$SRC_WANT" ] || return 1
    local s   # source indexes present (not a fresh or cleaned list dir)?
    for s in bookworm trixie; do
        compgen -G "/var/lib/apt/lists/*_debian_dists_${s}_main_source_Sources*" >/dev/null || return 1
    done
}
arm64_ok() { dpkg --print-foreign-architectures | grep -x arm64 >/dev/null; }

has_group() { case " ${groups[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# plan — find what is missing (packages per group, deb-src, arm64) without changing anything.
declare -A missing
plan() {
    local g p m
    read_installed
    any_missing=0
    for g in "${groups[@]}"; do
        m=()
        for p in $(group_pkgs "$g"); do installed "$p" || m+=("$p"); done
        missing[$g]="${m[*]}"
        [ ${#m[@]} -eq 0 ] || any_missing=1
    done
    fix_src=0; fix_arm64=0
    if has_group build && ! src_ok; then fix_src=1; fi
    if has_group cross && ! arm64_ok; then fix_arm64=1; fi
    [ $any_missing -eq 1 ] || [ $fix_src -eq 1 ] || [ $fix_arm64 -eq 1 ]
}

if plan; then
    is_root || die "must run as root to install: ${missing[*]} (deb-src: $fix_src, arm64: $fix_arm64)"
    # Serialize with other runs of this script (e.g. amd64 and arm64 builds started
    # together), then look again: the other run may have done the work.
    lockdir=/run/lock; [ -d "$lockdir" ] || lockdir=/tmp
    exec 7>"$lockdir/pgwarden-install-deps.lock"
    flock 7
    plan || true
fi

need_update=$any_missing
if [ $fix_src -eq 1 ] && [ ! -e /usr/share/keyrings/debian-archive-trixie-automatic.gpg ]; then
    # An old keyring (early bookworm) cannot verify trixie: update it first (bookworm has
    # 2023.3+deb12u1 and later, which carry the trixie archive keys).
    t0=$(date +%s%N)
    log=/tmp/pgwarden-apt-keyring.log
    { apt-get "${APT_OPTS[@]}" update && apt-get "${APT_OPTS[@]}" install -y debian-archive-keyring; } \
        >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "updating debian-archive-keyring failed"; }
    echo "install-deps: updated debian-archive-keyring (trixie keys) in $(elapsed "$t0")"
fi
if [ $fix_src -eq 1 ]; then
    printf '%s\n' "$SRC_WANT" > "$SRC_LIST"
    need_update=1
fi
if [ $fix_arm64 -eq 1 ]; then
    dpkg --add-architecture arm64
    need_update=1
fi

if [ "$need_update" -eq 1 ]; then
    t0=$(date +%s%N)
    log=/tmp/pgwarden-apt-update.log
    apt-get "${APT_OPTS[@]}" update >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get update failed"; }
    echo "install-deps: apt-get update took $(elapsed "$t0")"
fi

for g in "${groups[@]}"; do
    if [ -z "${missing[$g]}" ]; then
        echo "install-deps: $g: all present"
        continue
    fi
    t0=$(date +%s%N)
    read -r -a m <<<"${missing[$g]}"
    log=/tmp/pgwarden-apt-install-$g.log
    if ! apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${m[@]}" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "$g: apt-get install failed (log: $log)"
    fi
    echo "install-deps: $g: installed ${m[*]} in $(elapsed "$t0")"
done
