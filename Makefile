# pgwarden: the only entry point. make | static ARCH= | test | unit | lint | demo | install | release | fuzz | clean
SHELL := /bin/bash
.DEFAULT_GOAL := all

VERSION      := $(shell cat VERSION)
GIT_REV      := $(shell git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)
ARCH         ?= amd64
NPROC        := $(shell nproc 2>/dev/null || echo 2)

# The sysroot path embeds a key of the pinned versions, so a version change means a new path.
SYSROOT_amd64 := $(shell toolchain/sysroot.sh amd64)
SYSROOT_arm64 := $(shell toolchain/sysroot.sh arm64)
TC_amd64      := $(SYSROOT_amd64)/.complete
TC_arm64      := $(SYSROOT_arm64)/.complete
CC_amd64     := gcc
CC_arm64     := aarch64-linux-gnu-gcc
STRIP_amd64  := strip
STRIP_arm64  := aarch64-linux-gnu-strip
include toolchain/libs.mk

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
           -Wformat=2 -Wno-format-nonliteral -Wno-format-zero-length
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) -MMD -MP -I. \
           -DPGW_VERSION='"$(VERSION)"' -DPGW_GIT_REV='"$(GIT_REV)"'

# Every .c under these folders is part of the program; agent/main.c holds main().
SRCS      := $(sort $(wildcard platform/*.c agent/*.c agent/*/*.c web/*.c))
LIB_SRCS  := $(filter-out agent/main.c,$(SRCS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRCS))

# The dashboard's assets (web/assets/) are embedded at build time by a host tool (tools/embed.c,
# native gcc) into one generated C file that is part of libpgwarden in every flavour.
ASSETS   := $(sort $(wildcard web/assets/*))
GEN_SRCS := build/gen/web_assets.c
build/host/embed: tools/embed.c
	@mkdir -p $(@D)
	gcc -std=c17 -O2 -Wall -Wextra -Werror $< -o $@
build/gen/web_assets.c: build/host/embed $(ASSETS)
	@mkdir -p build/gen/gz
	for f in $(ASSETS); do gzip -9 -n -c "$$f" > "build/gen/gz/$${f##*/}.gz" || exit 1; done
	build/host/embed $@ build/gen/gz $(ASSETS)

# ---- build flavours: dev (dynamic glibc, fast), asan (unit tests), static release per arch
# $(1)=flavour $(2)=arch $(3)=extra cflags $(4)=extra ldflags
define FLAVOUR
B_$(1) := build/$(1)
OBJS_$(1) := $$(patsubst %.c,build/$(1)/obj/%.o,$$(LIB_SRCS) $$(GEN_SRCS))
build/$(1)/obj/%.o: %.c $$(TC_$(2))
	@mkdir -p $$(@D)
	$$(CC_$(2)) $$(BASE_CFLAGS) $(3) -isystem $$(SYSROOT_$(2))/include -c $$< -o $$@
build/$(1)/libpgwarden.a: $$(OBJS_$(1))
	@rm -f $$@
	ar rcs $$@ $$^
build/$(1)/pgwarden: build/$(1)/obj/agent/main.o build/$(1)/libpgwarden.a
	$$(CC_$(2)) $(3) $$^ -o $$@ -L$$(SYSROOT_$(2))/lib $(4) $$(DEP_LIBS)
build/$(1)/tests/%: tests/unit/%.c build/$(1)/libpgwarden.a
	@mkdir -p $$(@D)
	$$(CC_$(2)) $$(BASE_CFLAGS) $(3) -Wno-missing-prototypes -isystem $$(SYSROOT_$(2))/include \
	  $$< build/$(1)/libpgwarden.a -o $$@ -L$$(SYSROOT_$(2))/lib $(4) $$(TEST_LIBS) $$(DEP_LIBS)
-include $$(OBJS_$(1):.o=.d) build/$(1)/obj/agent/main.d
endef

DEV_CFLAGS    := -O2 -g
# float-cast-overflow: part of clang's -fsanitize=undefined but not of gcc's (a double too large
# for an integer type, found by fuzzing web/snapshot.c).
ASAN_CFLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow \
                 -fno-sanitize-recover=all
ASAN_LDFLAGS  := -fsanitize=address,undefined,float-cast-overflow
STATIC_CFLAGS := -O2 -ffunction-sections -fdata-sections
STATIC_LDFLAGS := -static -Wl,--gc-sections

$(eval $(call FLAVOUR,dev,amd64,$(DEV_CFLAGS),))
$(eval $(call FLAVOUR,asan,amd64,$(ASAN_CFLAGS),$(ASAN_LDFLAGS)))
$(eval $(call FLAVOUR,amd64,amd64,$(STATIC_CFLAGS),$(STATIC_LDFLAGS)))
$(eval $(call FLAVOUR,arm64,arm64,$(STATIC_CFLAGS) -mno-outline-atomics,$(STATIC_LDFLAGS)))
$(eval $(call FLAVOUR,arm64-test,arm64,-O1 -g -mno-outline-atomics,-static))

# ---- fuzzing (issue #9): one libFuzzer target per parser of outside input (tests/fuzz/fuzz_*.c).
# `make fuzz` builds them with clang (libFuzzer + ASan + UBSan) against a clang-built libpgwarden
# (flavour "fuzz") and runs each for FUZZ_SECONDS; `make fuzz-regress` replays the checked-in
# corpora and crash inputs through the same targets built with gcc (ASan + UBSan, no libFuzzer).
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SECONDS ?= 60
CC_fuzz      := clang
SYSROOT_fuzz := $(SYSROOT_amd64)
TC_fuzz      := $(TC_amd64)
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=all
$(eval $(call FLAVOUR,fuzz,fuzz,$(FUZZ_CFLAGS),-fsanitize=address,undefined))
FUZZ_COMMON  := tests/fuzz/util.c tests/fuzz/fuzz.h
FUZZ_FLAGS    = $(filter-out -MMD -MP,$(BASE_CFLAGS)) -isystem $(SYSROOT_amd64)/include
build/fuzz/bin/%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) build/fuzz/libpgwarden.a
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< tests/fuzz/util.c \
	  build/fuzz/libpgwarden.a -o $@ -L$(SYSROOT_amd64)/lib $(DEP_LIBS)
build/asan/fuzz/%: tests/fuzz/fuzz_%.c tests/fuzz/driver.c $(FUZZ_COMMON) build/asan/libpgwarden.a
	@mkdir -p $(@D)
	$(CC_amd64) $(FUZZ_FLAGS) $(ASAN_CFLAGS) $< tests/fuzz/util.c tests/fuzz/driver.c \
	  build/asan/libpgwarden.a -o $@ -L$(SYSROOT_amd64)/lib $(ASAN_LDFLAGS) $(DEP_LIBS)

fuzz-build: $(addprefix build/fuzz/bin/,$(FUZZ_NAMES))
fuzz-regress-build: $(addprefix build/asan/fuzz/,$(FUZZ_NAMES))

# FUZZ_SECONDS per target, one at a time; FUZZ_TARGETS="a b" picks some. New crash inputs are
# left in build/fuzz/crashes/<target>/ (copy them to tests/fuzz/regress/<target>/ once fixed).
fuzz:
	toolchain/install-deps.sh build fuzz
	$(MAKE) --no-print-directory -j$(NPROC) fuzz-build
	tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(or $(FUZZ_TARGETS),$(FUZZ_NAMES))

fuzz-regress: fuzz-regress-build
	tests/fuzz/run.sh regress 0 $(FUZZ_NAMES)

# The toolchain (static libraries in a cache outside the tree) is built once per version key.
$(TC_amd64):
	toolchain/build.sh amd64
$(TC_arm64):
	toolchain/build.sh arm64
toolchain: $(TC_amd64) $(TC_arm64)

PHONY_TC := toolchain
.PHONY: $(PHONY_TC) faults fuzz fuzz-build fuzz-regress fuzz-regress-build tools browser bench bench-api bench-election bench-ha all deps static unit unit-amd64 unit-arm64 integration integration-asan test lint demo install clean release
all: build/dev/pgwarden
	@echo "built build/dev/pgwarden"

deps:
	toolchain/install-deps.sh build cross test lint

static: build/$(ARCH)/pgwarden
	$(STRIP_$(ARCH)) -o build/$(ARCH)/pgwarden.stripped build/$(ARCH)/pgwarden
	mv build/$(ARCH)/pgwarden.stripped build/$(ARCH)/pgwarden
	@file build/$(ARCH)/pgwarden; ls -l build/$(ARCH)/pgwarden

unit-amd64: $(addprefix build/asan/tests/,$(UNIT_NAMES))
	tests/run-unit.sh asan build/asan/tests $(UNIT_NAMES)

unit-arm64: $(addprefix build/arm64-test/tests/,$(UNIT_NAMES))
	tests/run-unit.sh qemu build/arm64-test/tests $(UNIT_NAMES)

unit: deps
	$(MAKE) unit-amd64 unit-arm64

# Small driver programs used by the integration tests (tests/tools/*.c).
TOOL_NAMES := $(patsubst tests/tools/%.c,%,$(wildcard tests/tools/*.c))
build/dev/tools/%: tests/tools/%.c build/dev/libpgwarden.a
	@mkdir -p $(@D)
	$(CC_amd64) $(BASE_CFLAGS) $(DEV_CFLAGS) -isystem $(SYSROOT_amd64)/include $< \
	  build/dev/libpgwarden.a -o $@ -L$(SYSROOT_amd64)/lib $(DEP_LIBS)
tools: $(addprefix build/dev/tools/,$(TOOL_NAMES))

integration: build/dev/pgwarden tools
	tests/run-integration.sh build/dev/pgwarden

# The integration suite against the ASan+UBSan build (issue #9). Every pgwarden process (they
# run as postgres) writes ASan/LSan reports to SAN_LOG_DIR; UBSan's go to the processes' stderr,
# which the harness copies there; any file in it fails the run (tests/run-integration.sh).
# test_valgrind.py is left out: valgrind cannot run an ASan binary (it runs in `integration`).
SAN_LOG_DIR := $(CURDIR)/build/results/sanitizer
integration-asan: build/asan/pgwarden tools
	rm -rf $(SAN_LOG_DIR) && mkdir -p $(SAN_LOG_DIR) && chmod 1777 $(SAN_LOG_DIR)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$(SAN_LOG_DIR)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PGWARDEN_SANITIZER_LOG_DIR=$(SAN_LOG_DIR) \
	  tests/run-integration.sh build/asan/pgwarden --ignore=tests/integration/test_valgrind.py

lint:
	tests/lint.sh

# Reference docs generated from the tables in the code (issue #10): tools/docgen.c prints them
# from libpgwarden's tables, tools/gendocs.sh writes docs/*.md and README.md's generated blocks.
# docs-check (part of lint) regenerates into a temporary folder and fails on any difference.
.PHONY: docs docs-check
build/dev/docgen: tools/docgen.c build/dev/libpgwarden.a
	$(CC_amd64) $(BASE_CFLAGS) $(DEV_CFLAGS) -isystem $(SYSROOT_amd64)/include $< \
	  build/dev/libpgwarden.a -o $@ -L$(SYSROOT_amd64)/lib $(DEP_LIBS)
docs: build/dev/docgen
	tools/gendocs.sh build/dev/docgen write
docs-check: build/dev/docgen
	tools/gendocs.sh build/dev/docgen check

# The dashboard in Debian's Chromium against a three-node cluster (issue #7); screenshots in
# build/results/screenshots/, checks in build/results/browser.json.
browser: build/dev/pgwarden
	tests/run-browser.sh build/dev/pgwarden

# The benchmark report (issue #10): write unavailability (tests/bench/ha_figures.py), forwarder vs
# HAProxy vs direct (tests/bench/proxy_bench.py), REST API throughput (bench-api) and footprint
# (tests/bench/footprint.py: static binary sizes, RSS and idle CPU per process), with shorter proxy
# runs and fewer sync-mode kills than the standalone benches (~15 min). Writes
# build/results/bench.{md,json} and bench-*.svg.
# BENCH_ARGS="--only proxy,api --reuse ..." (see tests/bench/report.py --help).
BENCH_ARGS ?=
bench: build/dev/pgwarden tools
	/usr/bin/python3 tests/bench/report.py $(BENCH_ARGS)

# REST API figure (issue #6): wrk against GET /primary, requests/s, p99, web RSS (needs wrk).
bench-api: build/dev/pgwarden tools
	cd tests/integration && /usr/bin/python3 -m pytest -q -s -m bench test_api.py

# Election figures (issue #3): failover after a leader SIGKILL, race latency, idle etcd load.
bench-election: build/dev/pgwarden
	/usr/bin/python3 tests/bench/election_figures.py

# HA figures (issue #4): write unavailability on leader PostgreSQL SIGKILL, node loss and
# switchover, rows lost in synchronous mode (a client writing every 20 ms). Options: see --help.
bench-ha: build/dev/pgwarden
	/usr/bin/python3 tests/bench/ha_figures.py

# Fault-injection suite (issue #9): 3 etcd members + 3 nodes, each in its own network namespace
# (root: netns, veth, bridge), clients writing through the forwarders. First the loss comparison
# with DELAY_MS (50) between nodes: FAULTS_DELAY (20) leader faults in asynchronous, then in
# synchronous mode (faults-async.*, faults-sync-delay.*); then FAULTS (100) random faults of every
# kind, partitions included, in synchronous mode (SEED), a checker and a report in
# build/results/faults.{json,txt,svg} (with the lost writes per mode of all three runs). A short
# run (12 faults) is a step of `make test`.
faults: build/dev/pgwarden
	rc=0; F=tests/faults/run.py; D=$(or $(DELAY_MS),50); N=$(or $(FAULTS_DELAY),20); \
	/usr/bin/python3 $$F --mode async --delay-ms $$D --kinds leader --faults $$N --out build/results/faults-async.json || rc=1; \
	/usr/bin/python3 $$F --mode sync --delay-ms $$D --kinds leader --faults $$N --out build/results/faults-sync-delay.json || rc=1; \
	/usr/bin/python3 $$F --faults $(or $(FAULTS),100) $(if $(SEED),--seed $(SEED)) || rc=1; exit $$rc

# Installs what is missing, builds, runs every test and prints "N passed, N failed".
test: deps
	tests/run-all.sh

# ---- demo, install, release (issue #10)

# A local cluster (3 etcd members, 3 nodes with PostgreSQL 15) in the foreground until Ctrl-C:
# installs what is missing, builds, runs. DEMO_DIR keeps the cluster between runs (reused; pass
# DEMO_ARGS=--reset to start over).
DEMO_DIR  ?= $(or $(PGWARDEN_DEMO_DIR),$(CURDIR)/build/demo)
DEMO_ARGS ?=
demo:
	toolchain/install-deps.sh build demo
	$(MAKE) --no-print-directory build/dev/pgwarden
	build/dev/pgwarden demo --dir $(DEMO_DIR) $(DEMO_ARGS)

# make install [DESTDIR=staging] [PREFIX=/usr/local] [ARCH=amd64] [INSTALL_BIN=path]: the stripped
# static binary, the systemd unit, the example config as /etc/pgwarden/pgwarden.conf (an existing
# one is kept) and the docs.
PREFIX      ?= /usr/local
DESTDIR     ?=
INSTALL_BIN ?= build/$(ARCH)/pgwarden
UNITDIR     ?= /lib/systemd/system
CONFDIR     ?= /etc/pgwarden
DOCDIR      ?= $(PREFIX)/share/doc/pgwarden
# The service runs as postgres and must read its config: group postgres when we may set it.
CONF_GROUP  ?= $(shell [ "$$(id -u)" = 0 ] && getent group postgres >/dev/null && echo postgres)
install: $(INSTALL_BIN)
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR) \
	  $(DESTDIR)$(DOCDIR)
	install -m 0755 -s --strip-program=$(STRIP_$(ARCH)) $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/bin/pgwarden
	sed -e 's|/usr/bin/pgwarden|$(PREFIX)/bin/pgwarden|g' -e 's|/etc/pgwarden/|$(CONFDIR)/|g' \
	  -e 's|/usr/share/doc/pgwarden|$(DOCDIR)|g' \
	  platform/pgwarden.service > $(DESTDIR)$(UNITDIR)/pgwarden.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/pgwarden.service.tmp
	mv $(DESTDIR)$(UNITDIR)/pgwarden.service.tmp $(DESTDIR)$(UNITDIR)/pgwarden.service
	@if [ -e $(DESTDIR)$(CONFDIR)/pgwarden.conf ]; then \
	  echo "install: kept the existing $(DESTDIR)$(CONFDIR)/pgwarden.conf"; \
	else \
	  install -m 0640 $(if $(CONF_GROUP),-g $(CONF_GROUP)) platform/pgwarden.conf.example \
	    $(DESTDIR)$(CONFDIR)/pgwarden.conf && \
	  echo "install: $(DESTDIR)$(CONFDIR)/pgwarden.conf (edit [node] name, [etcd] and passwords)"; \
	fi
	install -m 0644 README.md platform/pgwarden.conf.example $(DESTDIR)$(DOCDIR)/

# Both static release binaries, stripped, with their checksums, in build/release/.
RELEASE_DIR := build/release
release:
	toolchain/install-deps.sh build cross
	@# version.o embeds the git revision, which no prerequisite tracks: always rebuilt here.
	rm -f build/amd64/obj/agent/version.o build/arm64/obj/agent/version.o
	$(MAKE) --no-print-directory static ARCH=amd64
	$(MAKE) --no-print-directory static ARCH=arm64
	rm -rf $(RELEASE_DIR)
	mkdir -p $(RELEASE_DIR)
	cp build/amd64/pgwarden $(RELEASE_DIR)/pgwarden-$(VERSION)-linux-amd64
	cp build/arm64/pgwarden $(RELEASE_DIR)/pgwarden-$(VERSION)-linux-arm64
	cd $(RELEASE_DIR) && sha256sum pgwarden-$(VERSION)-linux-amd64 pgwarden-$(VERSION)-linux-arm64 > SHA256SUMS
	$(RELEASE_DIR)/pgwarden-$(VERSION)-linux-amd64 version | head -n1
	qemu-aarch64-static $(RELEASE_DIR)/pgwarden-$(VERSION)-linux-arm64 version | head -n1
	@file $(RELEASE_DIR)/pgwarden-$(VERSION)-linux-*; cat $(RELEASE_DIR)/SHA256SUMS

clean:
	rm -rf build
