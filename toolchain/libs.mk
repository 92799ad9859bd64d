# libs.mk — make fragment: link lines and paths of the dependency sysroot that toolchain/build.sh builds.
#
# Defines variables and functions only (no rules, so it cannot change the default goal).
#   DEP_LIBS          all dependency libraries, in static link order (also fine for dynamic links)
#   TEST_LIBS         cmocka, for the unit-test binaries (put before $(DEP_LIBS))
#   dep_sysroot       $(call dep_sysroot,ARCH) -> absolute sysroot path (valid once
#                     $(call dep_sysroot,ARCH)/.complete exists: run $(DEP_BUILD) ARCH)
#   dep_cppflags      $(call dep_cppflags,ARCH) -> -I<sysroot>/include
#   dep_ldflags       $(call dep_ldflags,ARCH)  -> -L<sysroot>/lib
#   DEP_CC_<arch>, DEP_STRIP_<arch>, DEP_RUN_<arch>   compiler, strip, and how to run a binary
# Example:
#   include toolchain/libs.mk
#   SYSROOT := $(call dep_sysroot,$(ARCH))
#   $(SYSROOT)/.complete: ; $(DEP_BUILD) $(ARCH)
#   pgwarden: $(SYSROOT)/.complete $(OBJS)
#   	$(DEP_CC_$(ARCH)) -static -Wl,--gc-sections -o $@ $(OBJS) -L$(SYSROOT)/lib $(DEP_LIBS)
# Put -I/-L of the sysroot before any system path: a Debian libmicrohttpd-dev or
# libcurl*-dev in /usr would otherwise shadow the sysroot's headers or archives.

TOOLCHAIN_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
DEP_BUILD := $(TOOLCHAIN_DIR)/build.sh

# Each archive before the archives it uses: libpq -> pgcommon -> pgport -> OpenSSL;
# libcurl -> mbedTLS (tls -> x509 -> crypto). OpenSSL's libssl.a/libcrypto.a are
# Debian's (libssl-dev, libssl-dev:arm64) and found by gcc/aarch64-linux-gnu-gcc in the
# multiarch dirs; -lm -lpthread -ldl last (-ldl: libcrypto's DSO code; SQLite is built
# without load_extension).
DEP_LIBS := -lpq -lpgcommon_shlib -lpgport_shlib -lmicrohttpd -lcurl \
            -lmbedtls -lmbedx509 -lmbedcrypto -ljansson -lsqlite3 \
            -lssl -lcrypto -lm -lpthread -ldl
TEST_LIBS := -lcmocka

dep_sysroot = $(shell $(TOOLCHAIN_DIR)/sysroot.sh $(1))
dep_cppflags = -I$(call dep_sysroot,$(1))/include
dep_ldflags = -L$(call dep_sysroot,$(1))/lib

DEP_CC_amd64 := gcc
DEP_CC_arm64 := aarch64-linux-gnu-gcc
DEP_STRIP_amd64 := strip
DEP_STRIP_arm64 := aarch64-linux-gnu-strip
DEP_RUN_amd64 :=
# binfmt_misc is not registered on the build machines: call qemu explicitly.
DEP_RUN_arm64 := qemu-aarch64-static
