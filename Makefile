# urpoll: one plain Makefile. `make help` lists the targets.
#
#   make                 library (shared + static) and tools, under build/
#   make check           install missing packages, then build and run every test:
#                        plain, ASan+UBSan, TSan, the Spin model, install, dist and probe checks,
#                        every fuzz target over its seed corpus, urpoll-bench --smoke,
#                        the tools' command lines; fails when a process the tests started
#                        outlives them
#   make run             install missing packages, build, run the main job: urpoll-bench
#                        --quick, urpoll against epoll, then a traced pass when root
#   make fuzz            fuzz each libFuzzer target for FUZZ_SECONDS (default 60)
#   make bench-proxy     urpoll-proxy vs HAProxy vs direct (docs/proxy.md)
#   make soak            the soak: SOAK_SECONDS=3600 under load, not part of check
#   make install         the library, urpoll.h, urpoll.pc, the man pages, urpoll-trace, -proxy,
#                        -echo and -bench, LICENSE: PREFIX=/usr/local DESTDIR= (LIBDIR, ...)
#   make uninstall       remove what make install created, with the same PREFIX and DESTDIR
#   make dist            build/urpoll-VERSION.tar.gz, the tracked sources (test-dist checks it)
#   SANITIZE=address,undefined | SANITIZE=thread   sanitizer builds (in their own build dir)
#   URP_PROBES=0         compile the USDT probes out
#   V=1                  show commands
#
# Where things are: docs/design.md ("Layers") and the README's layout table. The library is
# core/ and uring/ (uring/loop/ the task layer); each program of tools/ is a folder, or a file
# of tools/examples/; each tests/GROUP/NAME.c is a suite, build/tests/NAME.

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
# LIBDIR is $(PREFIX)/lib, but with PREFIX=/usr on a multiarch system (Debian, Ubuntu: the
# compiler names a multiarch triplet and /usr/lib/<triplet> exists) it is /usr/lib/<triplet>,
# where the distribution puts its libraries and pkg-config looks first. -print-multiarch, not
# -dumpmachine: on i386 the triplet is i386-linux-gnu, the machine i686-linux-gnu. /usr/local
# keeps /usr/local/lib: Debian's ld.so.conf and pkg-config search it. Set LIBDIR to override.
MULTIARCH := $(if $(filter /usr /usr/,$(PREFIX)),$(shell t=$$($(CC) -print-multiarch \
	2>/dev/null) && [ -n "$$t" ] && [ -d "/usr/lib/$$t" ] && echo "$$t"))
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/urpoll

CC ?= gcc
PKG_CONFIG ?= pkg-config
SANITIZE ?=
comma := ,
URP_PROBES ?= 1

ifneq ($(SANITIZE),)
BUILD := build/san-$(subst $(comma),-,$(SANITIZE))
else ifeq ($(URP_PROBES),0)
BUILD := build/noprobes
else
BUILD := build
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	-Wno-unused-parameter
CFLAGS ?= -O2 -g
URP_CFLAGS := -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -Iinclude -MMD -MP
ifneq ($(SANITIZE),)
URP_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer \
	-DURP_DEBUG
URP_LDFLAGS += -fsanitize=$(SANITIZE)
endif
ifeq ($(URP_PROBES),0)
URP_CFLAGS += -DURP_NO_PROBES
endif
# Calls between the library's own exported functions bind locally (no PLT, inlinable): nobody
# interposes urp_* symbols.
LIB_CFLAGS := $(URP_CFLAGS) -fPIC -fvisibility=hidden -fno-semantic-interposition

# ---- the library: core/, uring/ and its task layer uring/loop/ ----

CORE_SRCS := $(wildcard core/*.c)
URING_SRCS := $(wildcard uring/*.c uring/loop/*.c)
LIB_SRCS := $(CORE_SRCS) $(URING_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)

SONAME := liburpoll.so.$(VERSION_MAJOR)
SHLIB := $(BUILD)/liburpoll.so.$(VERSION)
STLIB := $(BUILD)/liburpoll.a
# What depends on the install directories lives in $(INST) (see "install" below).
INST := $(BUILD)/install
PCFILE := $(INST)/urpoll.pc
# What a program linked against the shared library needs built.
LIB_DEP := $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so

URING_LIBS := $(shell $(PKG_CONFIG) --libs liburing 2>/dev/null || echo -luring)
CRITERION_LIBS := $(shell $(PKG_CONFIG) --libs criterion 2>/dev/null || echo -lcriterion)

.PHONY: all lib tools tests check run deps install uninstall clean help \
	test-unit test-plain test-asan test-tsan test-model test-install test-probes test-readme \
	test-cxx test-man bpf test-trace test-bench test-cli bench-proxy

all: lib tools

lib: $(SHLIB) $(LIB_DEP) $(STLIB) $(PCFILE)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(LIB_CFLAGS) -c $< -o $@

$(SHLIB): $(LIB_OBJS) core/urpoll.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=core/urpoll.map \
		-Wl,--no-undefined $(URP_LDFLAGS) -o $@ $(LIB_OBJS) $(URING_LIBS) -lpthread

$(BUILD)/$(SONAME): $(SHLIB)
	$(Q)ln -sf $(notdir $<) $@

$(BUILD)/liburpoll.so: $(BUILD)/$(SONAME)
	$(Q)ln -sf $(notdir $<) $@

$(STLIB): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# Made again whenever PREFIX, LIBDIR or INCLUDEDIR change ($(INST)/dirs).
$(PCFILE): Makefile $(INST)/dirs
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
		'Name: urpoll' 'Description: readiness poller driven by io_uring alone' \
		'Version: $(VERSION)' 'Libs: -L$${libdir} -lurpoll' 'Requires.private: liburing' 'Libs.private: -lpthread' \
		'Cflags: -I$${includedir}' > $@

# Tools and tests link the shared library, as users do.
LINK_LIB := -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -lurpoll

# ---- tools/: a folder per role, build/tools/urpoll-NAME per program ----

# Objects of the tools: the public API only (no -fvisibility games).
$(BUILD)/obj/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) $(TOOL_CFLAGS) -c $< -o $@

define link_tool
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_LDFLAGS) -o $@ $(filter %.o,$^) $(1)
endef

# tools/examples/NAME.c: one file, one program (urpoll-demo, urpoll-pingpong).
EXAMPLE_BINS := $(patsubst tools/examples/%.c,$(BUILD)/tools/urpoll-%,\
	$(wildcard tools/examples/*.c))

$(BUILD)/tools/urpoll-%: $(BUILD)/obj/tools/examples/%.o $(LIB_DEP)
	$(call link_tool,$(LINK_LIB) -lpthread)

# tools/servers/NAME/*.c: a server (urpoll-echo, urpoll-proxy), linked with what the servers
# share, tools/servers/*.c (addresses and listeners, the listener task, loops and signals).
SERVER_SHARED_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/servers/*.c))
SERVERS := $(patsubst tools/servers/%/,%,$(wildcard tools/servers/*/))
SERVER_BINS := $(SERVERS:%=$(BUILD)/tools/urpoll-%)

define server_rule
$(BUILD)/tools/urpoll-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/servers/$(1)/*.c)) \
		$(SERVER_SHARED_OBJS) $(LIB_DEP)
	$$(call link_tool,$$(LINK_LIB) -lpthread)
endef
$(foreach s,$(SERVERS),$(eval $(call server_rule,$(s))))

# tools/bench/: urpoll-bench, against Debian's libev, libevent and libuv. libevent before
# libev: Debian's libev.so also exports libevent's 1.x names (event_add, event_base_loop,
# ...), and the first library linked wins them. libevent_pthreads: wakeup's libevent waker
# calls event_active() from another thread.
BENCH_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/bench/*.c))
BENCH_BIN := $(BUILD)/tools/urpoll-bench
BENCH_LIBS := $(shell $(PKG_CONFIG) --libs libevent libevent_pthreads libuv 2>/dev/null || \
	echo -levent_pthreads -levent -luv) -lev -lm

$(BENCH_BIN): $(BENCH_OBJS) $(LIB_DEP)
	$(call link_tool,$(LINK_LIB) $(BENCH_LIBS) -lpthread)

# tools/trace/: urpoll-trace, the eBPF tracer. bpf/urpoll.bpf.c -> build/bpf/urpoll.bpf.o ->
# build/bpf/urpoll.skel.h, compiled in. It links libbpf, not the library (the library never
# depends on the tracer, nor the tracer on it). The BPF outputs do not depend on SANITIZE or
# URP_PROBES, so every build directory shares build/bpf/.
CLANG ?= clang
BPFTOOL ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_OUT := build/bpf
# The kernel's name for this architecture (__TARGET_ARCH_*), derived as libbpf-tools does.
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/i.86/x86/' -e 's/aarch64.*/arm64/' \
	-e 's/arm.*/arm/' -e 's/ppc64.*/powerpc/' -e 's/s390x/s390/' -e 's/riscv64/riscv/' \
	-e 's/loongarch64/loongarch/' -e 's/mips.*/mips/')
# <asm/types.h> and friends live in the multiarch directory (Debian: /usr/include/<triplet>).
BPF_MULTIARCH := $(shell $(CC) -dumpmachine)
BPF_CFLAGS := -g -O2 -Wall -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(BPF_OUT) -Ibpf \
	-I/usr/include/$(BPF_MULTIARCH)
LIBBPF_CFLAGS := $(shell $(PKG_CONFIG) --cflags libbpf 2>/dev/null)
LIBBPF_LIBS := $(shell $(PKG_CONFIG) --libs libbpf libelf zlib 2>/dev/null || echo -lbpf -lelf -lz)
TRACE_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/trace/*.c))
TRACE_BIN := $(BUILD)/tools/urpoll-trace

bpf: $(BPF_OUT)/urpoll.skel.h

# Through a temporary file, so a failed dump never leaves half a header behind.
$(BPF_OUT)/vmlinux.h: $(wildcard $(VMLINUX_BTF))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)test -r $(VMLINUX_BTF) || { echo "no kernel BTF at $(VMLINUX_BTF)" >&2; exit 1; }
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BPF_OUT)/urpoll.bpf.o: bpf/urpoll.bpf.c bpf/urpoll_trace.h $(BPF_OUT)/vmlinux.h
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp.o && mv $@.tmp.o $@

$(BPF_OUT)/urpoll.skel.h: $(BPF_OUT)/urpoll.bpf.o
	@$(if $(Q),echo "  GENSKEL $@")
	$(Q)$(BPFTOOL) gen skeleton $< name urpoll_bpf > $@.tmp && mv $@.tmp $@

$(TRACE_OBJS): TOOL_CFLAGS := -I$(BPF_OUT) -Ibpf $(LIBBPF_CFLAGS) -DURP_LIBDIR='"$(LIBDIR)"'
$(TRACE_OBJS): $(BPF_OUT)/urpoll.skel.h

$(TRACE_BIN): $(TRACE_OBJS)
	$(call link_tool,$(LIBBPF_LIBS))

TOOL_BINS := $(EXAMPLE_BINS) $(SERVER_BINS) $(BENCH_BIN) $(TRACE_BIN)
tools: $(TOOL_BINS)

# ---- tests/: a folder per role (tests/README.md), build/tests/NAME per suite ----

TEST_CFLAGS := -Itests/lib
# Criterion's runner cannot start under TSan (tests/lib/shim/criterion/criterion.h says why):
# TSan builds of the tests use that stand-in instead.
ifeq ($(SANITIZE),thread)
CRITERION_LIBS := -lm
TEST_CFLAGS += -Itests/lib/shim
endif

define link_suite
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) $(TEST_CFLAGS) $(2) -o $@ $< $(filter %.o,$^) \
		$(URP_LDFLAGS) $(1) $(CRITERION_LIBS) -lpthread
endef

# Suites on the shared library: core/ (the word, waiters, futures), uring/ (the driver),
# loop/ (tasks, timers, waits), servers/ (urpoll-echo, urpoll-proxy and the README's example
# end to end), and debug/ (the debug checks: sanitizer builds, which define URP_DEBUG, only).
LIB_SUITE_GROUPS := core uring loop servers $(if $(SANITIZE),debug)
define lib_suite_rule
$(BUILD)/tests/%: tests/$(1)/%.c $(LIB_DEP)
	$$(call link_suite,$$(LINK_LIB))
endef
$(foreach g,$(LIB_SUITE_GROUPS),$(eval $(call lib_suite_rule,$(g))))

# fault/: the driver against the injectable ring. The library's sources rebuilt with URP_FAULT,
# which routes every ring call through tests/lib/fault.c (uring/ring.h), linked in directly
# since liburpoll.so exports no internal name; plus the servers' shared objects (the listener
# task's own suite). The library proper never contains fault.c.
FAULT_OBJS := $(LIB_SRCS:%.c=$(BUILD)/fault/obj/%.o) $(BUILD)/fault/obj/tests/lib/fault.o

$(BUILD)/fault/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(LIB_CFLAGS) -DURP_FAULT -c $< -o $@

$(BUILD)/tests/%: tests/fault/%.c $(FAULT_OBJS) $(SERVER_SHARED_OBJS)
	$(call link_suite,$(URING_LIBS),-DURP_FAULT)

# bench/: urpoll-bench's histogram (tools/bench/hist.c) on its own, no library.
$(BUILD)/tests/%: tests/bench/%.c $(BUILD)/obj/tools/bench/hist.o
	$(call link_suite,-lm,-Itools/bench)

# trace/: urpoll-trace end to end (test-trace, plain build only).
$(BUILD)/tests/%: tests/trace/%.c $(LIB_DEP)
	$(call link_suite,$(LINK_LIB))

# progs/: plain programs on the library that the tests drive (trace_workload) or that run
# as tests of their own (soak).
$(BUILD)/tests/%: tests/progs/%.c $(LIB_DEP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -o $@ $< $(URP_LDFLAGS) $(LINK_LIB) -lpthread

UNIT_GROUPS := $(LIB_SUITE_GROUPS) fault bench
TEST_NAMES := $(notdir $(basename $(wildcard $(UNIT_GROUPS:%=tests/%/*.c))))
# Suites that also run under ThreadSanitizer: all of them (the single-threaded ones are cheap),
# but the proxy's (proxy_*): one loop per process there, and redis-benchmark, wrk and 5,000 connections
# under TSan would take most of `make check`.
THREADED_TESTS := $(filter-out proxy_%,$(TEST_NAMES))
TEST_BINS := $(TEST_NAMES:%=$(BUILD)/tests/%)
PROG_BINS := $(patsubst tests/progs/%.c,$(BUILD)/tests/%,$(wildcard tests/progs/*.c))
TRACE_TEST_BINS := $(patsubst tests/trace/%.c,$(BUILD)/tests/%,$(wildcard tests/trace/*.c))

tests: $(TEST_BINS)

# Every workload on every backend in --smoke mode, its JSON checked (tests/bench/bench_smoke.sh).
# Plain build only: it tests the harness, not the library. No timing is asserted.
test-bench: lib $(BENCH_BIN)
	$(Q)tests/bench/bench_smoke.sh $(BUILD)

# Root, BTF, uprobes and tracefs (the tool mounts tracefs and bpffs when missing); the suite
# skips, saying which, without them. Plain build only: it tests the tool, not the library.
test-trace: lib $(TRACE_BIN) $(TRACE_TEST_BINS) $(BUILD)/tests/trace_workload
	$(Q)tests/run-suite.sh $(BUILD) $(notdir $(TRACE_TEST_BINS))

# ---- fuzzing: libFuzzer targets in tests/fuzz/<target>.c, seed corpora in tests/fuzz/<target>/ ----
# Each target compiles the library's sources straight into the fuzzer (liburpoll.so hides the
# internal symbols, and the fuzzer wants them instrumented for coverage anyway), always with
# ASan and UBSan. `make fuzz` fuzzes each target for FUZZ_SECONDS, growing a working corpus in
# build/fuzz/corpus/<target>/ (crashes land in build/fuzz/<target>-crash-*); `make check` runs
# every seed file once (test-fuzz).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ready core_ops driver_ops driver_faults ring_ops
FUZZ_OUT := build/fuzz
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_OUT)/%)
FUZZ_CFLAGS := -g -O1 -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -Iinclude -DURP_DEBUG \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_DEPS := tests/fuzz/fuzz_util.h tests/fuzz/driver_model.h include/urpoll.h \
	$(wildcard core/*.h uring/*.h uring/loop/*.h)
FUZZ_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

.PHONY: fuzz test-fuzz

$(FUZZ_OUT)/ready: tests/fuzz/ready.c $(CORE_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRCS) -lpthread

# core_ops drives detached entries only, but urp_io_wait() (uring/loop/wait.c) asks the driver
# who turns an entry's ring: it links the whole library.
$(FUZZ_OUT)/core_ops: tests/fuzz/core_ops.c $(LIB_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(URING_LIBS) -lpthread

# The driver targets share driver_model.c (entries, kernel model, public-API ops, properties).
# driver_faults is built like tests/fault/: the library's sources with URP_FAULT, so every
# ring call goes through tests/lib/fault.c.
FUZZ_DRIVER_SRCS := tests/fuzz/driver_model.c $(LIB_SRCS)

$(FUZZ_OUT)/driver_ops: tests/fuzz/driver_ops.c $(FUZZ_DRIVER_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_DRIVER_SRCS) $(URING_LIBS) -lpthread

$(FUZZ_OUT)/driver_faults: tests/fuzz/driver_faults.c $(FUZZ_DRIVER_SRCS) tests/lib/fault.c \
		$(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -DURP_FAULT -o $@ $< $(FUZZ_DRIVER_SRCS) tests/lib/fault.c \
		$(URING_LIBS) -lpthread

# ring_ops drives ring mode (uring/ring_mode.c, ring_send.c) over real sockets with its own
# stream model (ring_model.c).
$(FUZZ_OUT)/ring_ops: tests/fuzz/ring_ops.c tests/fuzz/ring_model.c tests/fuzz/ring_model.h \
		$(LIB_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< tests/fuzz/ring_model.c $(LIB_SRCS) $(URING_LIBS) \
		-lpthread

fuzz: $(FUZZ_BINS)
	$(Q)for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_OUT)/corpus/$$t; \
		echo "== fuzz: $$t for $(FUZZ_SECONDS)s"; \
		$(FUZZ_ENV) $(FUZZ_OUT)/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_OUT)/$$t- $(FUZZ_OUT)/corpus/$$t tests/fuzz/$$t \
			>$(FUZZ_OUT)/$$t.fuzz.log 2>&1; rc=$$?; \
		grep -a '^#[0-9]*.*DONE\|^stat::number_of_executed_units\|^stat::average_exec_per_sec' \
			$(FUZZ_OUT)/$$t.fuzz.log; \
		if [ $$rc -ne 0 ]; then tail -40 $(FUZZ_OUT)/$$t.fuzz.log; exit 1; fi; \
	done

# A libFuzzer binary given files runs each once and exits non-zero on the first failure.
test-fuzz: $(FUZZ_BINS)
	$(Q)status=0; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz corpus: $$t"; \
		if $(FUZZ_ENV) $(FUZZ_OUT)/$$t tests/fuzz/$$t/* >$(FUZZ_OUT)/$$t.corpus.log 2>&1; then \
			tests/run-suite.sh --record fuzz/$$t pass; \
			echo "$$(ls tests/fuzz/$$t | wc -l) inputs passed"; \
		else tests/run-suite.sh --record fuzz/$$t fail; status=1; \
			tail -40 $(FUZZ_OUT)/$$t.corpus.log; fi; \
	done; exit $$status

# ---- running ----

deps:
	$(Q)tools/scripts/install-deps.sh

# urpoll-proxy against HAProxy and no proxy (docs/proxy.md): a few minutes, pinned with taskset.
bench-proxy: lib $(BUILD)/tools/urpoll-proxy
	$(Q)tools/scripts/bench-proxy.sh $(BUILD)

# The main job: a quick side-by-side of urpoll and raw epoll (tools/scripts/run-main.sh says how).
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/scripts/run-main.sh $(BUILD)

# The suites below are run by `make check` through tests/run-suite.sh, which prints one
# closing line: "check: N passed, N failed".
# Tools too: the end-to-end tests start them from the same build directory.
test-unit: tests tools
	$(Q)tests/run-suite.sh $(BUILD) $(or $(RUN_TESTS),$(TEST_NAMES))

test-plain:
	$(Q)$(MAKE) --no-print-directory test-unit

test-asan:
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined test-unit

# The driver stress test runs 5M events plain and under ASan, 500k under TSan (about 10x
# slower); the core stress test keeps its 2M everywhere.
test-tsan:
	$(Q)URP_DRIVER_STRESS_EVENTS=500000 $(MAKE) --no-print-directory SANITIZE=thread \
		RUN_TESTS="$(THREADED_TESTS)" test-unit

test-model:
	$(Q)if tests/model/run.sh $(BUILD); then tests/run-suite.sh --record model pass; \
	else tests/run-suite.sh --record model fail; exit 1; fi

test-install: lib $(TRACE_BIN)
	$(Q)tests/package/install-test.sh $(BUILD)

# The README's echo example is tests/servers/readme_echo.c between its markers, and compiles
# alone.
test-readme: lib
	$(Q)sed -n '/README:begin/,/README:end/{/README:/d;p}' tests/servers/readme_echo.c \
		>$(BUILD)/readme-example.c
	$(Q)awk '/^<!-- example: tests\/servers\/readme_echo.c -->$$/ { f = 1; next } \
		f && /^```c$$/ { p = 1; next } p && /^```$$/ { exit } p' README.md \
		>$(BUILD)/readme-block.c
	$(Q)if cmp -s $(BUILD)/readme-example.c $(BUILD)/readme-block.c && \
		$(CC) -std=c11 $(WARNINGS) -Werror -Iinclude $(BUILD)/readme-example.c \
			-o $(BUILD)/readme-example $(LINK_LIB); then \
		tests/run-suite.sh --record readme pass; \
	else diff -u $(BUILD)/readme-block.c $(BUILD)/readme-example.c; \
		tests/run-suite.sh --record readme fail; exit 1; fi

# include/urpoll.h is valid C++ (11 and later): tests/package/cxx_header.cc compiled for each
# standard, linked against the library and run.
CXX ?= g++
CXX_STDS := c++11 c++17 c++20

test-cxx: lib
	$(Q)mkdir -p $(BUILD)/tests; status=0; for std in $(CXX_STDS); do \
		if $(CXX) -std=$$std -Wall -Wextra -pedantic -Werror -Iinclude \
			tests/package/cxx_header.cc -o $(BUILD)/tests/cxx_header-$$std $(LINK_LIB) && \
		   $(BUILD)/tests/cxx_header-$$std; then \
			tests/run-suite.sh --record cxx/$$std pass; \
		else tests/run-suite.sh --record cxx/$$std fail; status=1; fi; \
	done; exit $$status

# The man pages (docs/man/): each renders without a groff warning; every exported call, inline
# helper and installed tool has one, with its prototype or every option of its --help
# (tests/package/man-test.sh).
test-man: lib $(TRACE_BIN) $(BENCH_BIN) $(SERVER_BINS)
	$(Q)tests/package/man-test.sh $(BUILD)

test-probes: lib
	$(Q)$(MAKE) --no-print-directory URP_PROBES=0 lib
	$(Q)tests/package/probes-test.sh $(SHLIB) build/noprobes/liburpoll.so.$(VERSION)

# The tools' command lines: exit codes, option errors, --help (tests/cli/tools_cli.sh).
test-cli: tools
	$(Q)tests/cli/tools_cli.sh $(BUILD)

# The test run goes through tests/reaper.py, a child subreaper: a process the tests started
# and left running (a server's child, say) is reparented to it, printed, killed, and recorded
# as a failed "orphans" result, so it fails `make check` instead of living on.
# (CHECK_SUITES=... runs a part of the check the same way.)
REAPER := tests/reaper.py
CHECK_SUITES ?= test-plain test-asan test-tsan test-model test-install test-probes test-readme \
	test-cxx test-man test-trace test-bench test-cli test-fuzz test-dist

check: deps
	$(Q)rm -f build/check-results
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(REAPER) --record orphans -- $(MAKE) --no-print-directory -k $(CHECK_SUITES); \
		status=$$?; [ $$status -eq 0 ] || tests/run-suite.sh --record make-check fail; \
		tests/run-suite.sh --summary build/check-results; exit $$status

# The soak (not part of `make check`): `make soak [SOAK_SECONDS=N] [SOAK_ARGS=...]` runs
# tests/progs/soak.c (its environment in soak_env.h) for SOAK_SECONDS after a 60 s warm-up and
# fails on a lost wakeup, an fd count that moved, or RSS grown beyond SOAK_RSS_KB. Sanitizer
# runtimes keep freed memory a while (ASan's quarantine, TSan's shadow), hence their larger
# allowance.
SOAK_SECONDS ?= 3600
SOAK_ARGS ?=
ifneq ($(SANITIZE),)
SOAK_RSS_KB ?= 131072
else
SOAK_RSS_KB ?= 4096
endif

.PHONY: soak
soak: $(BUILD)/tests/soak
	$(Q)$(BUILD)/tests/soak --seconds $(SOAK_SECONDS) --rss-tolerance-kb $(SOAK_RSS_KB) \
		$(SOAK_ARGS)

# ---- version ----

# VERSION_* name the library: its file and soname, urpoll.pc, the tarball of `make dist`.
# core/version.c gets them as URP_VERSION_* and asserts, at compile time, that they are the
# URPOLL_VERSION_* of include/urpoll.h, which urp_version_major() and friends return.
VERSION_CFLAGS := -DURP_VERSION_MAJOR=$(VERSION_MAJOR) -DURP_VERSION_MINOR=$(VERSION_MINOR) \
	-DURP_VERSION_PATCH=$(VERSION_PATCH)
# $(BUILD)/version holds VERSION and changes with it only, so that editing the Makefile does
# not rebuild the library.
$(BUILD)/obj/core/version.o $(BUILD)/fault/obj/core/version.o: LIB_CFLAGS += $(VERSION_CFLAGS)
$(BUILD)/obj/core/version.o $(BUILD)/fault/obj/core/version.o: $(BUILD)/version

$(BUILD)/version: FORCE
	$(call write_if_changed,'$(VERSION)')

# $(call write_if_changed,'LINE'...): a recipe that writes the lines to the target only when
# they differ from what it holds. It runs every time (the target depends on FORCE); make
# remakes what depends on the target only when the target's time moved.
define write_if_changed
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' $(1) >$@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
endef

.PHONY: FORCE
FORCE:

# ---- install ----
#
# make install [PREFIX=/usr/local] [DESTDIR=] [LIBDIR= INCLUDEDIR= BINDIR= PKGCONFIGDIR=
# MANDIR= DOCDIR=] puts
#   LIBDIR          liburpoll.so.VERSION, liburpoll.so.MAJOR and liburpoll.so (links), liburpoll.a
#   INCLUDEDIR      urpoll.h
#   PKGCONFIGDIR    urpoll.pc
#   BINDIR          urpoll-trace, urpoll-proxy, urpoll-echo, urpoll-bench (the examples stay)
#   MANDIR/manN     docs/man/manN/*.N (the .so link pages as files, as liburing does)
#   DOCDIR          LICENSE
# and then runs ldconfig when it installed into this system (no DESTDIR) as root, or says to
# (ld.so finds a new library in /usr/local/lib through its cache only).
#
# tools/scripts/install-files.sh records each directory it creates and each file it installs
# in a manifest, $(INST)/manifest_<DESTDIR and PREFIX, / as _>, kept across installs to the
# same place. `make uninstall` with the same DESTDIR and PREFIX removes the files listed, then
# the directories listed, deepest first and each only when empty: never a directory that was
# there before install, nor one that holds files of others.
#
# The tools under $(BUILD)/tools carry a RUNPATH to $(abspath $(BUILD)) (LINK_LIB), so that
# they, and the tests that start them, run from the build tree with the library beside them.
# The installed copies must not: install links them again, from the same objects, without it
# (libtool relinks at install time for the same reason). urpoll-trace does not link the
# library but names LIBDIR, where it looks for the library to trace: it is compiled again.
# All of it goes to $(INST), so an install never rebuilds what the tests run.

INST_TOOLS := trace proxy echo bench
INST_BINS := $(INST_TOOLS:%=$(INST)/bin/urpoll-%)
INST_LINK_LIB := -L$(BUILD) -lurpoll
INST_TRACE_OBJS := $(TRACE_OBJS:$(BUILD)/obj/%=$(INST)/obj/%)
INSTALL_MANIFEST := $(INST)/manifest$(subst /,_,$(abspath $(DESTDIR))$(PREFIX))
INSTALL_FILES := tools/scripts/install-files.sh $(INSTALL_MANIFEST)
LDCONFIG ?= ldconfig

# PREFIX, LIBDIR and INCLUDEDIR, which urpoll.pc and the installed urpoll-trace embed: the
# file changes when they do, and only then.
$(INST)/dirs: FORCE
	$(call write_if_changed,'PREFIX=$(PREFIX)' 'LIBDIR=$(LIBDIR)' 'INCLUDEDIR=$(INCLUDEDIR)')

# The link lines of $(BUILD)/tools (tools/ above) without the RUNPATH: keep them in step.
define inst_server_rule
$(INST)/bin/urpoll-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/servers/$(1)/*.c)) \
		$(SERVER_SHARED_OBJS) $(LIB_DEP)
	$$(call link_tool,$$(INST_LINK_LIB) -lpthread)
endef
$(foreach s,$(filter $(SERVERS),$(INST_TOOLS)),$(eval $(call inst_server_rule,$(s))))

$(INST)/bin/urpoll-bench: $(BENCH_OBJS) $(LIB_DEP)
	$(call link_tool,$(INST_LINK_LIB) $(BENCH_LIBS) -lpthread)

$(INST)/obj/tools/trace/%.o: tools/trace/%.c $(INST)/dirs $(BPF_OUT)/urpoll.skel.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -I$(BPF_OUT) -Ibpf $(LIBBPF_CFLAGS) \
		-DURP_LIBDIR='"$(LIBDIR)"' -c $< -o $@

$(INST)/bin/urpoll-trace: $(INST_TRACE_OBJS)
	$(call link_tool,$(LIBBPF_LIBS))

MAN_SECTIONS := 1 3 7 8
MAN_PAGES := $(foreach s,$(MAN_SECTIONS),$(wildcard docs/man/man$(s)/*.$(s)))

install: lib $(INST_BINS)
	$(Q)$(INSTALL_FILES) dir $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR) \
		$(MAN_SECTIONS:%=$(DESTDIR)$(MANDIR)/man%) $(DESTDIR)$(DOCDIR)
	$(Q)$(INSTALL_FILES) file 0755 $(DESTDIR)$(LIBDIR) $(SHLIB)
	$(Q)$(INSTALL_FILES) link liburpoll.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(Q)$(INSTALL_FILES) link $(SONAME) $(DESTDIR)$(LIBDIR)/liburpoll.so
	$(Q)$(INSTALL_FILES) file 0644 $(DESTDIR)$(LIBDIR) $(STLIB)
	$(Q)$(INSTALL_FILES) file 0644 $(DESTDIR)$(INCLUDEDIR) include/urpoll.h
	$(Q)$(INSTALL_FILES) file 0644 $(DESTDIR)$(PKGCONFIGDIR) $(PCFILE)
	$(Q)$(INSTALL_FILES) file 0755 $(DESTDIR)$(BINDIR) $(INST_BINS)
	$(Q)$(foreach s,$(MAN_SECTIONS),$(INSTALL_FILES) file 0644 $(DESTDIR)$(MANDIR)/man$(s) \
		$(filter docs/man/man$(s)/%,$(MAN_PAGES)) &&) :
	$(Q)$(INSTALL_FILES) file 0644 $(DESTDIR)$(DOCDIR) LICENSE
	$(Q)if [ -n "$(DESTDIR)" ]; then \
		echo "urpoll: staged under $(DESTDIR): run ldconfig once the files are in $(LIBDIR)"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "urpoll: not root: run 'sudo ldconfig', or set LD_LIBRARY_PATH=$(LIBDIR) if ld.so does not search it"; \
	elif ! command -v $(LDCONFIG) >/dev/null; then \
		echo "urpoll: no $(LDCONFIG) here: run ldconfig so that programs find $(SONAME) in $(LIBDIR)"; \
	else $(LDCONFIG) && { $(LDCONFIG) -p | grep -qF "=> $(LIBDIR)/$(SONAME)" || \
		echo "urpoll: ld.so does not search $(LIBDIR): add it to /etc/ld.so.conf.d/ and run ldconfig, or set LD_LIBRARY_PATH"; }; \
	fi

# Without a manifest (make clean since, or another DESTDIR or PREFIX), the files this version
# installs, and no directory.
uninstall:
	$(Q)if [ -f $(INSTALL_MANIFEST) ]; then $(INSTALL_FILES) uninstall; else \
		echo "urpoll: no $(INSTALL_MANIFEST): removing the files this version installs, no directory" >&2; \
		rm -f $(addprefix $(DESTDIR)$(LIBDIR)/,liburpoll.so.$(VERSION) $(SONAME) \
				liburpoll.so liburpoll.a) \
			$(DESTDIR)$(INCLUDEDIR)/urpoll.h $(DESTDIR)$(PKGCONFIGDIR)/urpoll.pc \
			$(INST_TOOLS:%=$(DESTDIR)$(BINDIR)/urpoll-%) $(DESTDIR)$(DOCDIR)/LICENSE \
			$(MAN_PAGES:docs/man/%=$(DESTDIR)$(MANDIR)/%); \
	fi
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v $(LDCONFIG) >/dev/null; then \
		$(LDCONFIG); fi

-include $(INST_TRACE_OBJS:.o=.d)

# ---- dist ----

# build/urpoll-VERSION.tar.gz: in a git checkout, the files git tracks at HEAD, under
# urpoll-VERSION/ (git archive dates every file at the commit and gzip -n adds no time: one
# commit, one tarball; what is not committed is not in it). Elsewhere (an unpacked tarball:
# its `make check` runs test-dist too), the files of this tree but build/.
# tests/package/dist-test.sh unpacks it into an empty directory and builds and tests it there
# (test-dist; `tests/package/dist-test.sh --full` runs the whole make check there).
DIST := build/urpoll-$(VERSION).tar.gz

.PHONY: dist test-dist
dist:
	@mkdir -p $(dir $(DIST))
	$(Q)rm -f $(DIST) $(DIST:.gz=)
	$(Q)if [ -e .git ]; then \
		[ -z "$$(git status --porcelain)" ] || \
			echo "make dist: what is not committed is not in $(DIST) (it archives HEAD)" >&2; \
		git archive --format=tar --prefix=urpoll-$(VERSION)/ -o $(DIST:.gz=) HEAD; \
	else \
		tar -cf $(DIST:.gz=) --exclude=./build --sort=name --owner=0 --group=0 \
			--numeric-owner --transform='s,^\.,urpoll-$(VERSION),' .; \
	fi && gzip -n -9 $(DIST:.gz=) && echo "$(DIST)"

test-dist: dist
	$(Q)tests/package/dist-test.sh $(DIST)

clean:
	rm -rf build

help:
	@sed -n '3,/^$$/{/^$$/!p}' Makefile | sed 's/^# \{0,1\}//'

-include $(LIB_OBJS:.o=.d) $(FAULT_OBJS:.o=.d) $(TEST_BINS:=.d) $(PROG_BINS:=.d) \
	$(TRACE_TEST_BINS:=.d) $(wildcard $(BUILD)/obj/tools/*/*.d $(BUILD)/obj/tools/*/*/*.d)
