#!/usr/bin/env bash
# build.sh ARCH — build the pinned static dependency libraries for ARCH (amd64|arm64) into the cached sysroot.
#
# Cached: if "$(toolchain/sysroot.sh ARCH)/.complete" exists, prints where and exits at once.
# Otherwise: installs its Debian build deps (install-deps.sh build [cross]), has sources.sh
# fetch and prepare the pinned Debian sources once (shared by both arches), builds SQLite,
# mbedTLS, libmicrohttpd, libpq, libcurl, jansson and cmocka as -O2 -fPIC static libraries
# into a temp dir, and renames it to the sysroot only when everything succeeded
# (include/, lib/, versions.txt, logs/, .complete). Step logs go to files; on failure the
# last 40 lines of the failing step's log are printed and the exit status is non-zero.
# Environment: PGWARDEN_TOOLCHAIN_CACHE (default /var/cache/pgwarden-toolchain).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arch=${1:-}
case $arch in
    amd64|arm64) ;;
    *) echo "usage: $0 amd64|arm64" >&2; exit 2 ;;
esac

sysroot=$("$here/sysroot.sh" "$arch")
if [ -f "$sysroot/.complete" ]; then
    echo "toolchain $arch: cached at $sysroot"
    exit 0
fi

LOG_LABEL="toolchain $arch"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
T_START=$(date +%s%N)

case $arch in
    amd64) triplet=x86_64-linux-gnu ;;
    arm64) triplet=aarch64-linux-gnu ;;
esac
if [ "$arch" = "$NATIVE_ARCH" ]; then
    "$here/install-deps.sh" build
    tool_prefix=
    host_args=()
else
    if [ "$arch" != arm64 ] || [ "$NATIVE_ARCH" != amd64 ]; then
        echo "toolchain: cross builds only from amd64 to arm64" >&2
        exit 2
    fi
    "$here/install-deps.sh" build cross
    tool_prefix=$triplet-
    host_args=(--build=x86_64-linux-gnu --host="$triplet")
fi

# The compiler may have just been installed: the key includes its version.
sysroot=$("$here/sysroot.sh" "$arch")
keydir=$(dirname "$sysroot")
mkdir -p "$keydir"

# One build per arch and key at a time; whoever waited finds it complete.
exec 9>"$keydir/.$arch.lock"
flock 9
if [ -f "$sysroot/.complete" ]; then
    say "cached at $sysroot"
    exit 0
fi
say "building into $sysroot"

src=$("$here/sources.sh")

CC=${tool_prefix}gcc
AR=${tool_prefix}ar
RANLIB=${tool_prefix}ranlib
# Position-independent (links into PIE, shared/ASan test builds and the static release),
# one section per function/object for --gc-sections, and Debian's usual hardening.
CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections -fstack-protector-strong"
CPPFLAGS="-D_FORTIFY_SOURCE=2"
export CC AR RANLIB CFLAGS CPPFLAGS

# ---------------------------------------------------------------------------------------
# Per-library builds. $stage is the sysroot being built; $build holds the object dirs.

cmake_common() {   # common cmake arguments for a static, PIC, (cross-)build into $stage
    local args=(-G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release
        -DCMAKE_C_FLAGS="$CFLAGS $CPPFLAGS" -DCMAKE_C_FLAGS_RELEASE="-DNDEBUG"
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF
        -DCMAKE_INSTALL_PREFIX="$stage" -DCMAKE_INSTALL_LIBDIR=lib
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_AR="$(command -v "$AR")"
        -DCMAKE_RANLIB="$(command -v "$RANLIB")")
    if [ -n "$tool_prefix" ]; then
        args+=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
            -DCMAKE_FIND_ROOT_PATH="$stage" -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER)
    fi
    printf '%s\n' "${args[@]}"
}

# SQLite compile-time options (also written to versions.txt). The amalgamation is compiled
# without configure, so say what glibc has: without HAVE_USLEEP, sqlite3_sleep() and the
# busy timeout would sleep in whole seconds.
SQLITE_DEFS=(-DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_DQS=0
    -DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_DEFAULT_MEMSTATUS=0
    -DHAVE_USLEEP=1 -DHAVE_NANOSLEEP=1 -DHAVE_LOCALTIME_R=1 -DHAVE_GMTIME_R=1
    -DHAVE_FDATASYNC=1 -DHAVE_STRCHRNUL=1 -DHAVE_ISNAN=1 -DHAVE_POSIX_FALLOCATE=1)

build_SQLITE() {
    local b=$build/sqlite
    mkdir -p "$b"
    # shellcheck disable=SC2086  # CFLAGS/CPPFLAGS are word lists
    step sqlite compile "$b" "$CC" $CFLAGS $CPPFLAGS "${SQLITE_DEFS[@]}" \
        -c "$src/sqlite-amalgamation/sqlite3.c" -o sqlite3.o
    step sqlite archive "$b" "$AR" rcs libsqlite3.a sqlite3.o
    install -m 644 "$b/libsqlite3.a" "$stage/lib/"
    install -m 644 "$src/sqlite-amalgamation/sqlite3.h" "$src/sqlite-amalgamation/sqlite3ext.h" \
        "$stage/include/"
}

build_MBEDTLS() {
    local b=$build/mbedtls args
    mkdir -p "$b"
    mapfile -t args < <(cmake_common)
    step mbedtls configure "$b" cmake "${args[@]}" -S "$src/MBEDTLS" -B . \
        -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF -DGEN_FILES=OFF \
        -DUSE_STATIC_MBEDTLS_LIBRARY=ON -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
        -DMBEDTLS_FATAL_WARNINGS=OFF
    step mbedtls make "$b" cmake --build . -j "$JOBS"
    step mbedtls install "$b" cmake --install .
}

build_MHD() {
    local b=$build/mhd
    mkdir -p "$b"
    step mhd configure "$b" "$src/MHD/configure" "${host_args[@]}" --prefix="$stage" \
        --enable-static --disable-shared --with-pic \
        --disable-https --without-gnutls --disable-curl --disable-doc --disable-examples \
        --disable-tools
    step mhd make "$b" make -j"$JOBS" -C src/microhttpd
    step mhd install "$b" make -C src/microhttpd install
    step mhd install "$b" make -C src/include install
}

build_PG() {
    local b=$build/pg
    mkdir -p "$b"
    # --prefix/--sysconfdir as Debian's: libpq compiles in SYSCONFDIR (pg_service.conf).
    step pg configure "$b" "$src/PG/configure" "${host_args[@]}" \
        --prefix=/usr --sysconfdir=/etc/postgresql-common \
        --with-ssl=openssl --without-readline --without-zlib --without-icu \
        --without-gssapi --without-ldap --without-lz4 --without-zstd --disable-rpath \
        --disable-nls
    step pg make "$b" make -j"$JOBS" -C src/port
    step pg make "$b" make -j"$JOBS" -C src/common
    # all-static-lib: the shared libpq's "must not call exit" check fails with static libcrypto.
    step pg make "$b" make -j"$JOBS" -C src/interfaces/libpq all-static-lib
    install -m 644 "$b/src/interfaces/libpq/libpq.a" "$b/src/common/libpgcommon_shlib.a" \
        "$b/src/port/libpgport_shlib.a" "$stage/lib/"
    install -m 644 "$src/PG/src/interfaces/libpq/libpq-fe.h" \
        "$src/PG/src/interfaces/libpq/libpq-events.h" "$src/PG/src/include/postgres_ext.h" \
        "$b/src/include/pg_config_ext.h" "$stage/include/"
}

build_CURL() {
    local b=$build/curl
    mkdir -p "$b"
    # HTTP(S) only, TLS through the mbedTLS just built. The CA bundle path is Debian's
    # (cross builds skip its detection); pgwarden sets CURLOPT_CAINFO for etcd anyway.
    # --enable-unity (upstream-supported): ~3x less compile time than file by file.
    step curl configure "$b" "$src/CURL/configure" "${host_args[@]}" --prefix="$stage" \
        --disable-shared --enable-static --with-pic \
        --with-mbedtls="$stage" --without-openssl --without-gnutls --without-wolfssl \
        --without-rustls --without-bearssl \
        --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --with-ca-path=/etc/ssl/certs \
        --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
        --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
        --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-ipfs \
        --disable-manual --disable-docs --disable-ntlm --disable-alt-svc --disable-hsts \
        --disable-kerberos-auth --disable-negotiate-auth --disable-aws \
        --disable-websockets --disable-tls-srp --disable-ech --disable-httpsrr \
        --without-libpsl --without-libidn2 --without-nghttp2 --without-ngtcp2 \
        --without-nghttp3 --without-quiche --without-msh3 --without-brotli --without-zstd \
        --without-zlib --without-librtmp --without-libssh2 --without-libssh \
        --without-wolfssh --without-libgsasl --without-libuv \
        --enable-threaded-resolver --disable-ares --enable-unity
    step curl make "$b" make -j"$JOBS" -C lib
    step curl install "$b" make -C lib install
    step curl install "$b" make -C include install
}

build_JANSSON() {
    local b=$build/jansson args
    mkdir -p "$b"
    mapfile -t args < <(cmake_common)
    step jansson configure "$b" cmake "${args[@]}" -S "$src/JANSSON" -B . \
        -DJANSSON_BUILD_SHARED_LIBS=OFF -DJANSSON_BUILD_DOCS=OFF -DJANSSON_EXAMPLES=OFF \
        -DJANSSON_WITHOUT_TESTS=ON
    step jansson make "$b" cmake --build . -j "$JOBS"
    step jansson install "$b" cmake --install .
}

build_CMOCKA() {
    local b=$build/cmocka args
    mkdir -p "$b"
    mapfile -t args < <(cmake_common)
    step cmocka configure "$b" cmake "${args[@]}" -S "$src/CMOCKA" -B . \
        -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF -DPICKY_DEVELOPER=OFF
    step cmocka make "$b" cmake --build . -j "$JOBS"
    step cmocka install "$b" cmake --install .
}

# ---------------------------------------------------------------------------------------
rm -rf "$keydir/.$arch.tmp".*          # leftovers of an interrupted or failed build
tmp=$(mkworkdir "$keydir/.$arch.tmp.XXXXXX")
stage=$tmp/sysroot
build=$tmp/build
LOGS=$tmp/logs
mkdir -p "$stage/include" "$stage/lib" "$build" "$LOGS"

# build_group LIB... — build LIBs in order, printing the time each took.
build_group() {
    local lib t0 deb
    for lib in "$@"; do
        t0=$(date +%s%N)
        "build_$lib"
        deb=${lib}_DEB
        say "$(printf '%-8s %-7s' "${lib,,}" "$(upstream "${!deb}")") built in $(elapsed "$t0")"
    done
}

# Two independent chains side by side: much of each build (configure, the single
# sqlite3.c compile) runs on one core. curl needs mbedTLS first. Each chain runs in its
# own process group so that a failure (or Ctrl-C) stops the other one too.
set -m
build_group SQLITE PG & g1=$!
build_group MBEDTLS CURL MHD JANSSON CMOCKA & g2=$!
set +m
stop_groups() { kill -- "-$g1" "-$g2" 2>/dev/null || true; }
trap 'stop_groups; exit 130' INT TERM
for _ in 1 2; do
    if ! wait -n; then
        stop_groups
        wait || true
        exit 1
    fi
done
trap - INT TERM

# Keep only headers and static libraries: drop pkg-config/cmake files, binaries and docs
# (they would name the temp dir); pgwarden's Makefile uses toolchain/libs.mk instead.
rm -rf "${stage:?}/bin" "$stage/share" "$stage/lib/pkgconfig" "$stage/lib/cmake" "$stage/lib"/*.la

{
    echo "# pgwarden dependency sysroot for $arch, built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# name upstream-version debian-source=version suite fetch-mode"
    for lib in $TOOLCHAIN_LIBS; do
        pkg=${lib}_PKG; deb=${lib}_DEB; suite=${lib}_SUITE; mode=${lib}_FETCH
        printf '%s %s %s=%s %s %s\n' "${lib,,}" "$(upstream "${!deb}")" \
            "${!pkg}" "${!deb}" "${!suite}" "${!mode}"
    done
    ssl_ver=$(dpkg-query -W -f='${Version}' "libssl-dev:$arch" 2>/dev/null || echo unknown)
    echo "openssl $(upstream "$ssl_ver") libssl-dev:$arch=$ssl_ver binary (not built here)"
    echo "compiler $($CC --version | head -n 1)"
    echo "cflags $CFLAGS $CPPFLAGS"
    echo "sqlite-options ${SQLITE_DEFS[*]}"
} > "$stage/versions.txt"

mv "$LOGS" "$stage/logs"
touch "$stage/.complete"
rm -rf "$sysroot"          # an incomplete leftover (never a complete one: checked above)
mv "$stage" "$sysroot"     # the commit point: the sysroot appears complete, or not at all
rm -rf "$tmp"
say "done in $(elapsed "$T_START"): $sysroot"
