# minivmm build.  `make` builds the static ./minivmm; `make test` runs unit and
# testbed tests; `make demo` boots the default guest in the testbed.
CC      ?= gcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -I. -MMD -MP -D_GNU_SOURCE
LDFLAGS ?=
LDLIBS  := -lpthread

BUILD   := build/obj
SRCS    := $(wildcard vmm/*.c devices/*.c mm/*.c vfio/*.c)
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/vmm/main.o,$(OBJS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

.PHONY: all unit test testbed-test demo clean format format-check deps

all: minivmm

minivmm: $(OBJS)
	$(CC) $(CFLAGS) -static $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

build/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d)

clean:
	rm -rf build/obj build/tests minivmm

format:
	clang-format -i $(SRCS) $(wildcard */*.h) $(UNIT_SRCS)

format-check:
	clang-format --dry-run --Werror $(SRCS) $(wildcard */*.h) $(UNIT_SRCS)
