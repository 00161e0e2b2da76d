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
#
# Targets: all (default), check, check-unit, check-valgrind, demo, demo-stop,
#          bench (by hand only; see bench/README), install, uninstall, clean.

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

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB) $(BUILD)/.flags
	@mkdir -p $(BUILD)/tests
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -Isrc -Itests/unit -o $@ $< $(LIB) $(ALL_LDFLAGS) $(PKG_LIBS)

check-unit: $(UNIT_BINS)
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

clean:
	rm -rf build build-asan $(PROGRAM) tests/__pycache__ tests/fakegraph/__pycache__ .pytest_cache

.PHONY: all check check-unit check-valgrind demo demo-stop bench install uninstall clean FORCE
