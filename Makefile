# connect-numbers: build, test, install. Everything but daemon/main.c goes
# into one static library that the daemon and every test link.

VERSION    := 0.1.0
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
UNITDIR    ?= /usr/lib/systemd/system
CATALOGDIR ?= /usr/lib/systemd/catalog
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/connect-numbers
DATADIR    ?= $(PREFIX)/share/connect-numbers
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DESTDIR    ?=

BUILD      ?= build
CC         ?= cc
PKGS       := libcurl openssl yaml-0.1 libsystemd jansson
# Stamps of packaging/install-deps.sh: the build needs only the compiler and
# the -dev packages; the test targets also install the test tools.
DEPS_OK    := $(BUILD)/.deps-ok
TEST_DEPS_OK := $(BUILD)/.test-deps-ok

ifeq ($(SANITIZE),1)
BUILD      := build-sanitize
DEPS_OK    := $(BUILD)/.deps-ok
TEST_DEPS_OK := $(BUILD)/.test-deps-ok
SANFLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN       := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes
ifneq ($(CI),)
WARN       += -Werror
endif

PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS     ?= -O2 -g
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -DVERSION=\"$(VERSION)\" $(WARN) $(SANFLAGS) $(CFLAGS) $(PKG_CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

LIB_SRCS   := $(filter-out daemon/main.c,$(wildcard daemon/*.c daemon/aws/*.c))
LIB_OBJS   := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
LIB        := $(BUILD)/libconnect-numbers.a
DAEMON     := $(BUILD)/connect-numbersd
TEST_SRCS  := $(wildcard tests/unit/test-*.c)
TEST_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRCS))

.PHONY: all test-deps check check-unit check-schema check-completion check-unit-file check-fake check-integration check-style check-system check-valgrind \
        check-fuzz demo install clean deps fuzz bench deb rpm
.DEFAULT_GOAL := all

all: $(DAEMON) daemon/connect-numbersd

# A stable path for people and scripts: daemon/connect-numbersd.
daemon/connect-numbersd: $(DAEMON)
	ln -sf ../$(DAEMON) $@

deps: $(DEPS_OK)
$(DEPS_OK): packaging/install-deps.sh
	sh packaging/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

test-deps: $(TEST_DEPS_OK)
$(TEST_DEPS_OK): packaging/install-deps.sh
	sh packaging/install-deps.sh --test
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: %.c $(DEPS_OK) $(wildcard daemon/*.h daemon/aws/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(DAEMON): $(BUILD)/daemon/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(TEST_DEPS_OK) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Idaemon -o $@ $< $(LIB) $(ALL_LDFLAGS) $(PKG_LIBS) $(CMOCKA_LIBS) -lm

# The fuzzers carry their own sanitizers, and valgrind does not mix with
# ASan: a short run of each fuzzer and the unit suite under valgrind, once
# (not again in the SANITIZE=1 round).
CHECK_ONCE := $(if $(filter 1,$(SANITIZE)),,check-valgrind check-fuzz)

check: all $(TEST_DEPS_OK) $(TEST_BINS) check-style check-unit-file check-unit check-schema check-completion check-fake check-integration $(CHECK_ONCE)
	@echo "make check: all suites passed"

check-style:
	sh tests/check-banned.sh
	sh tests/check-outside-docs.sh

check-unit-file: $(TEST_DEPS_OK)
	sh tests/check-unit-file.sh

check-unit: $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run-unit.sh $(TEST_BINS)

# The editor schema against the test YAML files and daemon/config.c. Debian's
# python3, where python3-jsonschema and python3-yaml are installed.
check-schema: $(TEST_DEPS_OK)
	/usr/bin/python3 tests/check-schema.py

check-completion: $(TEST_DEPS_OK)
	bash tests/check-completion.sh

check-fake: $(TEST_DEPS_OK)
	@sh tests/run-fake-tests.sh

check-integration: all $(TEST_DEPS_OK)
	@BUILD=$(BUILD) sh tests/run-integration.sh

check-valgrind: $(TEST_BINS) $(TEST_DEPS_OK)
	@VALGRIND=1 BUILD=$(BUILD) sh tests/run-unit.sh $(TEST_BINS)

check-system: all $(TEST_DEPS_OK)
	sh tests/system/run.sh

demo: all $(TEST_DEPS_OK)
	sh tests/demo.sh

fuzz: $(TEST_DEPS_OK)
	$(MAKE) -f tests/fuzz/Makefile FUZZ_SECONDS=$(FUZZ_SECONDS)

check-fuzz: $(TEST_DEPS_OK)
	$(MAKE) -f tests/fuzz/Makefile run FUZZ_SECONDS=$(or $(CHECK_FUZZ_SECONDS),15)

bench: all $(TEST_DEPS_OK)
	sh bench/run.sh

deb:
	sh packaging/build-deb.sh

rpm:
	sh packaging/build-rpm.sh

install: all
	install -D -m 0755 $(DAEMON) $(DESTDIR)$(SBINDIR)/connect-numbersd
	install -D -m 0644 systemd/connect-numbersd.service $(DESTDIR)$(UNITDIR)/connect-numbersd.service
	install -D -m 0644 systemd/connect-numbers.catalog $(DESTDIR)$(CATALOGDIR)/connect-numbers.catalog
	install -D -m 0644 config/numbers.example.yaml $(DESTDIR)$(DOCDIR)/numbers.example.yaml
	# The example's first line names this path for YAML language servers.
	install -D -m 0644 config/numbers.schema.json $(DESTDIR)$(DATADIR)/numbers.schema.json
	install -D -m 0644 packaging/bash-completion/connect-numbersd $(DESTDIR)$(BASHCOMPDIR)/connect-numbersd
	install -D -m 0644 systemd/credentials.conf.example $(DESTDIR)$(DOCDIR)/examples/credentials.conf
	# No numbers.yaml: the unit waits (ConditionPathExists) until the operator writes one.
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/connect-numbers
	for m in man/*.[0-9]; do [ -e "$$m" ] || continue; s=$${m##*.}; \
		install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$m); done

clean:
	rm -rf build build-sanitize build-fuzz daemon/connect-numbersd
