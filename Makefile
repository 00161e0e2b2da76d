# Makefile for onedrivefs - works as is, no configure step needed.
#
# Knobs (on the command line, in the environment, or in config.mak):
#   PREFIX=/usr/local   where `make install` puts things (DESTDIR honoured)
#   CC=cc               compiler (gcc and clang are both kept warning-free)
#   SANITIZE=1          build with AddressSanitizer + UBSan (objects in build-asan/)
#   DEVELOPER=1         extra warnings on top of -Wall -Wextra -Werror
#   V=1                 show full command lines
#   PYTHON=...          python with pytest (default: Debian's /usr/bin/python3)
#   PYTEST_ARGS=...     extra pytest arguments, e.g. PYTEST_ARGS='-k read -x'
#   BENCH_ARGS=...      bench/run arguments, e.g. BENCH_ARGS='--latency-ms 20 read'
#   FUZZ_SECONDS=30     how long `make fuzz` runs each fuzz target
#   FUZZ_ARGS=...       extra libFuzzer arguments, e.g. FUZZ_ARGS='-jobs=2'
#
# Targets: all (default), check, check-unit, check-valgrind, demo, demo-stop,
#          bench (by hand only; see bench/README), fuzz (clang + libFuzzer;
#          see tests/fuzz/README), install, uninstall, clean.

-include config.mak.autogen
-include config.mak

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VERSION := 0.1.0

PKGS := fuse3 libcurl jansson sqlite3 libcrypto
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS))

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter
ifdef DEVELOPER
WARNINGS += -Wpointer-arith -Wvla -Wwrite-strings -Wcast-align
endif

BASE_CFLAGS := -std=gnu11 -g -O2 -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 \
	-DODFS_VERSION='"$(VERSION)"' -pthread $(WARNINGS) $(PKG_CFLAGS)
ALL_LDFLAGS := -pthread $(LDFLAGS)

ifdef SANITIZE
BUILD := build-asan
BASE_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_LDFLAGS += -fsanitize=address,undefined
else
BUILD := build
endif
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS)

ifndef V
QUIET_CC = @echo '   CC      ' $@;
QUIET_LINK = @echo '   LINK    ' $@;
QUIET_AR = @echo '   AR      ' $@;
endif

PROGRAM := onedrivefs
LIB_SRCS := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/%.o,$(LIB_SRCS))
LIB := $(BUILD)/libodfs.a
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

all: $(PROGRAM)

$(PROGRAM): $(BUILD)/main.o $(LIB) $(BUILD)/.flags
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $(BUILD)/main.o $(LIB) $(PKG_LIBS)

$(LIB): $(LIB_OBJS)
	$(QUIET_AR)rm -f $@ && ar rcs $@ $^

# Rebuild everything when the flags change (e.g. SANITIZE on and off).
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@

$(BUILD)/%.o: src/%.c $(wildcard src/*.h) $(BUILD)/.flags
	@mkdir -p $(BUILD)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -Isrc -c -o $@ $<

# tests/unit/fixture.c (shared set-up of the cache and content tests) is
# linked into every unit test; only those that call it pull in its code.
$(BUILD)/tests/fixture.o: tests/unit/fixture.c tests/unit/fixture.h $(wildcard src/*.h) \
		$(BUILD)/.flags
	@mkdir -p $(BUILD)/tests
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -Isrc -Itests/unit -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h tests/unit/fixture.h $(BUILD)/tests/fixture.o \
		$(LIB) $(BUILD)/.flags
	@mkdir -p $(BUILD)/tests
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -Isrc -Itests/unit -o $@ $< $(BUILD)/tests/fixture.o \
		$(LIB) $(ALL_LDFLAGS) $(PKG_LIBS)

check-unit: $(UNIT_BINS) check-fuzz-corpus
	@set -e; for t in $(UNIT_BINS); do $$t; done

check: all check-unit
	ODFS_BINARY=$(CURDIR)/$(PROGRAM) $(PYTHON) -m pytest -q tests $(PYTEST_ARGS)

check-valgrind: all
	ODFS_BINARY=$(CURDIR)/$(PROGRAM) ODFS_VALGRIND=1 $(PYTHON) -m pytest -q tests -m valgrind $(PYTEST_ARGS)

demo: all
	@$(PYTHON) tests/demo.py start

demo-stop:
	@$(PYTHON) tests/demo.py stop

bench: all
	$(PYTHON) bench/run $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(PROGRAM) $(DESTDIR)$(BINDIR)/$(PROGRAM)
	install -m 0644 man/onedrivefs.1 $(DESTDIR)$(MANDIR)/man1/onedrivefs.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/$(PROGRAM) $(DESTDIR)$(MANDIR)/man1/onedrivefs.1

# ---- Fuzzing ---------------------------------------------------------------
#
# `make fuzz`: each tests/fuzz/fuzz_<target>.c is built with clang and
# libFuzzer + ASan + UBSan in build-fuzz/, linked with only the src files it
# needs (FUZZ_SRCS_<target>, plus log.c), and run for FUZZ_SECONDS from its
# seed corpus.  A crash fails the run and leaves the input in
# build-fuzz/crashes/<target>/; inputs that found new code stay in
# build-fuzz/corpus/<target>/ for the next run.
# `make check-fuzz-corpus` (part of check-unit) replays the seed corpus and
# tests/fuzz/regressions/<target>/ through the same targets with $(CC).

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_ARGS ?=
FUZZ_BUILD := build-fuzz
FUZZ_TARGETS := graph_item graph_drive graph_time errmap auth_token config names extent

FUZZ_SRCS_graph_item := graph.c http.c http_state.c http_url.c auth.c auth_store.c config.c errmap.c item.c util.c
FUZZ_SRCS_graph_drive := $(FUZZ_SRCS_graph_item)
FUZZ_SRCS_graph_time := $(FUZZ_SRCS_graph_item)
FUZZ_SRCS_errmap := errmap.c names.c
FUZZ_SRCS_auth_token := auth.c auth_store.c http.c http_state.c http_url.c config.c errmap.c util.c
FUZZ_SRCS_config := config.c
FUZZ_SRCS_names := names.c
FUZZ_SRCS_extent := extent.c

FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link \
	$(FUZZ_SANITIZE) -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 \
	-DODFS_VERSION='"$(VERSION)"' -pthread $(WARNINGS) $(PKG_CFLAGS)
FUZZ_BINS := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_REPLAYS := $(patsubst %,$(BUILD)/tests/replay_%,$(FUZZ_TARGETS))

$(FUZZ_BUILD)/src/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(FUZZ_BUILD)/src
	$(QUIET_CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%.o: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(wildcard src/*.h)
	@mkdir -p $(FUZZ_BUILD)
	$(QUIET_CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc -Itests/fuzz -c -o $@ $<

# Per target: the libFuzzer binary, and the replay binary (built like the
# program, from the same few objects, so others' unfinished files do not matter).
define FUZZ_TARGET_RULES
$(FUZZ_BUILD)/fuzz_$(1): $(FUZZ_BUILD)/fuzz_$(1).o $(patsubst %.c,$(FUZZ_BUILD)/src/%.o,$(FUZZ_SRCS_$(1)) log.c)
	$$(QUIET_LINK)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SANITIZE) -pthread -o $$@ $$^ $(PKG_LIBS)

$(BUILD)/tests/replay_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/replay.c tests/fuzz/fuzz.h \
		$(patsubst %.c,$(BUILD)/%.o,$(FUZZ_SRCS_$(1)) log.c) $(BUILD)/.flags
	@mkdir -p $(BUILD)/tests
	$$(QUIET_LINK)$$(CC) $$(ALL_CFLAGS) -Isrc -Itests/fuzz -o $$@ tests/fuzz/fuzz_$(1).c \
		tests/fuzz/replay.c $(patsubst %.c,$(BUILD)/%.o,$(FUZZ_SRCS_$(1)) log.c) \
		$$(ALL_LDFLAGS) $(PKG_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_TARGET_RULES,$(t))))

# Every target runs even after a crash in another; the status says if any crashed.
fuzz: $(FUZZ_BINS)
	@failed=; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
		dirs="$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t"; \
		test ! -d tests/fuzz/regressions/$$t || dirs="$$dirs tests/fuzz/regressions/$$t"; \
		dict=; test ! -f tests/fuzz/$$t.dict || dict=-dict=tests/fuzz/$$t.dict; \
		echo "   FUZZ     $$t ($(FUZZ_SECONDS) s, log in $(FUZZ_BUILD)/$$t.log)"; \
		if $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-max_len=65536 -print_final_stats=0 $$dict \
			-artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ $(FUZZ_ARGS) $$dirs \
			>$(FUZZ_BUILD)/$$t.log 2>&1; then \
			grep -E '^Done [0-9]+ runs' $(FUZZ_BUILD)/$$t.log | sed 's/^/            /'; \
		else \
			tail -n 40 $(FUZZ_BUILD)/$$t.log; failed="$$failed $$t"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "fuzz: crash in:$$failed (inputs in $(FUZZ_BUILD)/crashes/; see tests/fuzz/README)" >&2; \
		exit 1; \
	fi

check-fuzz-corpus: $(FUZZ_REPLAYS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		regr=; test ! -d tests/fuzz/regressions/$$t || regr=tests/fuzz/regressions/$$t; \
		$(BUILD)/tests/replay_$$t tests/fuzz/corpus/$$t $$regr; \
	done

# ---- Model-based tester (tests/modelcheck.py; see tests/README) -------------
#
# `make check` runs a bounded model check (tests/test_modelcheck.py).  These
# run long ones by hand:
#   make check-long   consecutive seeds, MODELCHECK_OPS operations each, until
#                     MODELCHECK_TOTAL_OPS (default 100000) ran in total
#   make soak         the same with server faults injected at random, for
#                     SOAK_SECONDS (default 600)
# MODELCHECK_ARGS passes more options, e.g. MODELCHECK_ARGS='--seed 42 --keep'.

MODELCHECK_OPS ?= 5000
MODELCHECK_TOTAL_OPS ?= 100000
SOAK_SECONDS ?= 600
MODELCHECK = ODFS_BINARY=$(CURDIR)/$(PROGRAM) $(PYTHON) tests/modelcheck.py

check-long: all
	$(MODELCHECK) --ops $(MODELCHECK_OPS) --total-ops $(MODELCHECK_TOTAL_OPS) --progress 1000 $(MODELCHECK_ARGS)

soak: all
	$(MODELCHECK) --faults --ops 2000 --seconds $(SOAK_SECONDS) --progress 500 $(MODELCHECK_ARGS)

.PHONY: check-long soak

clean:
	rm -rf build build-asan build-fuzz $(PROGRAM) tests/__pycache__ tests/fakegraph/__pycache__ .pytest_cache

.PHONY: all check check-unit check-valgrind demo demo-stop bench install uninstall clean FORCE \
	fuzz check-fuzz-corpus
