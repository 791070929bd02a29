# minivmm build.
#   make            build the static ./minivmm
#   make test       unit tests, then the testbed tests (installs what it needs)
#   make demo       boot the default guest in the testbed and show it working
#   make unit       unit tests only (no KVM needed)
#   make testbed-test [SCENARIOS="boot lifecycle"]
#   make bench      boot time, VMM memory and resize latency, in the testbed
#   make fuzz [FUZZ_SECONDS=N]  libFuzzer targets, N seconds each (tests/fuzz/fuzz.mk)
#   make format / format-check / clang-check, make clean
CC      ?= gcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -I. -MMD -MP -D_GNU_SOURCE
LDFLAGS ?=
LDLIBS  := -lseccomp -lpthread

BUILD   := build/obj
SRCS    := $(wildcard vmm/*.c devices/*.c mm/*.c vfio/*.c)
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/vmm/main.o,$(OBJS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
# Guest images the testbed tests boot besides the Debian kernel.
TEST_IMAGES := build/tests/images/triple-fault.bzImage
# Static programs scripts/testbed puts into the guest initramfs (/bin/...).
GUEST_TOOLS := build/tests/guest/edu-tool build/tests/guest/disk-check build/tests/guest/vmem-attack
# Static programs the testbed scenarios run on the test host (/t/bin/...).
L1_TOOLS := build/tests/l1/set-memlock

# Debian packages: what building, unit testing and the testbed need.
BUILD_DEPS := gcc make libc6-dev linux-libc-dev libseccomp-dev
UNIT_DEPS  := libcmocka-dev acpica-tools

.PHONY: all deps unit-deps unit test testbed-test testbed-prepare demo bench clean format \
	format-check \
	clang-check

all: minivmm

minivmm: $(OBJS)
	$(CC) $(CFLAGS) -static $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

build/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

# test_virtio_mem injects faults into the host calls of the plug path.
build/tests/test_virtio_mem: LDLIBS += -Wl,--wrap=mprotect,--wrap=madvise

build/tests/mkbzimage: tests/tools/mkbzimage.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

build/tests/guest/%: tests/guest/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -s $(LDFLAGS) -o $@ $<

build/tests/l1/%: tests/l1/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -s $(LDFLAGS) -o $@ $<

# ud2 with an empty IDT: #UD -> #GP -> #DF -> triple fault.
build/tests/images/triple-fault.bzImage: build/tests/mkbzimage
	@mkdir -p $(dir $@)
	$< $@ 0f0b

deps:
	@scripts/install-deps $(BUILD_DEPS)

unit-deps: deps
	@scripts/install-deps $(UNIT_DEPS)

unit: unit-deps
	@$(MAKE) --no-print-directory $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

testbed-prepare: deps
	@$(MAKE) --no-print-directory minivmm $(TEST_IMAGES) $(GUEST_TOOLS) $(L1_TOOLS)
	@scripts/testbed --prepare

testbed-test: testbed-prepare
	@tests/testbed/run $(SCENARIOS)

test: unit testbed-test

demo: testbed-prepare
	@scripts/demo

bench: testbed-prepare
	@scripts/testbed --timeout 600 --guest-init tests/guest/guest-test.sh \
		--copy tests/testbed/lib.sh:/t/lib.sh --copy tests/bench/bench.sh:/t/bench.sh \
		-- sh /t/bench.sh | grep "^BENCH"

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d)

include tests/fuzz/fuzz.mk

clean:
	rm -rf build/obj build/tests minivmm

FORMAT_FILES = $(SRCS) $(wildcard */*.h tests/unit/*.h) $(UNIT_SRCS) $(wildcard tests/tools/*.c tests/guest/*.c tests/l1/*.c) \
	$(wildcard tests/fuzz/*.c tests/fuzz/common/*.[ch])

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# The same warnings must be clean under clang (syntax and semantic checks only).
clang-check:
	@set -e; for f in $(SRCS) $(UNIT_SRCS) tests/tools/mkbzimage.c $(wildcard tests/guest/*.c tests/l1/*.c); do \
		clang -std=gnu11 -Wall -Wextra -Werror -I. -D_GNU_SOURCE -fsyntax-only $$f; done
	@echo "clang-check: $(words $(SRCS) $(UNIT_SRCS)) files clean"
