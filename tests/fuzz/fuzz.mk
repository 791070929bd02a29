# fuzz.mk - libFuzzer targets for the parsers a hostile party reaches.
# Included from the top Makefile (include tests/fuzz/fuzz.mk), or used as
#     make -f Makefile -f tests/fuzz/fuzz.mk fuzz FUZZ_SECONDS=20
#   make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="fuzz_ctl_parse ..."]
#                    build every target, run each for N seconds (default 10)
#                    on a copy of its seed corpus, one summary line per target;
#                    fails if any target crashed (artefacts: build/fuzz/crashes/)
#   make fuzz-build  build only (build/fuzz/<target>)
#   make fuzz-clean  remove build/fuzz (objects, grown corpora, crashes)
# The project's sources are compiled again with clang and the sanitizers into
# build/fuzz/obj (never build/obj, which is gcc's); vmm/main.c is left out.
# Every variable here starts with FUZZ_ so as not to clash with the Makefile.

# Keep the including Makefile's default goal (its first target).
FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_CC      ?= clang
FUZZ_AR      ?= ar
FUZZ_SECONDS ?= 10
FUZZ_CFLAGS  := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 \
	-std=gnu11 -Wall -Wextra -Werror -I. -D_GNU_SOURCE -MMD -MP
FUZZ_LDLIBS  := -lseccomp -lpthread

FUZZ_DIR     := build/fuzz
FUZZ_OBJDIR  := $(FUZZ_DIR)/obj
FUZZ_LIB     := $(FUZZ_DIR)/libminivmm.a
FUZZ_PROJECT_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c devices/*.c mm/*.c vfio/*.c))
FUZZ_PROJECT_OBJS := $(FUZZ_PROJECT_SRCS:%.c=$(FUZZ_OBJDIR)/%.o)
FUZZ_COMMON_SRCS  := $(wildcard tests/fuzz/common/*.c)
FUZZ_COMMON_OBJS  := $(FUZZ_COMMON_SRCS:%.c=$(FUZZ_OBJDIR)/%.o)
FUZZ_TARGET_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS      ?= $(notdir $(FUZZ_TARGET_SRCS:.c=))
FUZZ_ALL_TARGETS  := $(notdir $(FUZZ_TARGET_SRCS:.c=))
FUZZ_BINS         := $(FUZZ_ALL_TARGETS:%=$(FUZZ_DIR)/%)

# Per-target link flags.  config_parse_virtio_mem() keeps an xstrdup() copy
# for the life of the process (its option strings point into it); the harness
# wraps xstrdup (and free, to see the copies the project frees itself) to
# free those copies after each input, or the leak checker would stop it.
FUZZ_LDFLAGS_fuzz_cmdline := -Wl,--wrap=xstrdup,--wrap=free

.PHONY: fuzz fuzz-deps fuzz-build fuzz-clean

# clang with libFuzzer's runtime (libclang-rt-dev), and what the sources link.
fuzz-deps:
	@scripts/install-deps clang libclang-rt-dev libseccomp-dev

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	@tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf $(FUZZ_DIR)

$(FUZZ_OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_PROJECT_OBJS)
	@rm -f $@
	$(FUZZ_AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_OBJDIR)/tests/fuzz/fuzz_%.o $(FUZZ_COMMON_OBJS) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LDFLAGS_fuzz_$*) -o $@ $^ $(FUZZ_LDLIBS)

# Keep the targets' objects (make would delete them as intermediate files).
.SECONDARY: $(FUZZ_ALL_TARGETS:%=$(FUZZ_OBJDIR)/tests/fuzz/%.o)

-include $(FUZZ_PROJECT_OBJS:.o=.d) $(FUZZ_COMMON_OBJS:.o=.d) \
	$(FUZZ_ALL_TARGETS:%=$(FUZZ_OBJDIR)/tests/fuzz/%.d)

.DEFAULT_GOAL := $(FUZZ_SAVED_GOAL)
