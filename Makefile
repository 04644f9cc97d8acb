# urpoll: one plain Makefile. `make help` lists the targets.
#
#   make                 library (shared + static) and tools, under build/
#   make check           install missing packages, then build and run every test:
#                        plain, ASan+UBSan, TSan, the Spin model, install and probe checks,
#                        every fuzz target over its seed corpus, urpoll-bench --smoke,
#                        the tools' command lines; fails when a process the tests started
#                        outlives them
#   make run             install missing packages, build, run the main job: urpoll-bench
#                        --quick, urpoll against epoll, then a traced pass when root
#   make fuzz            fuzz each libFuzzer target for FUZZ_SECONDS (default 60)
#   make bench-proxy     urpoll-proxy vs HAProxy vs direct (tools/bench-proxy.sh, docs/proxy.md)
#   make soak            the soak: SOAK_SECONDS=3600 under load, not part of check
#   make install         PREFIX=/usr/local DESTDIR=
#   SANITIZE=address,undefined | SANITIZE=thread   sanitizer builds (in their own build dir)
#   URP_PROBES=0         compile the USDT probes out
#   V=1                  show commands

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

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

CORE_SRCS := core/io.c core/readiness.c core/ready.c core/probes.c core/debug.c
URING_SRCS := uring/setup.c uring/driver.c uring/loop/loop.c uring/loop/timer.c uring/loop/spawn.c uring/loop/wait.c
LIB_SRCS := $(CORE_SRCS) $(URING_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)

SONAME := liburpoll.so.$(VERSION_MAJOR)
SHLIB := $(BUILD)/liburpoll.so.$(VERSION)
STLIB := $(BUILD)/liburpoll.a
PCFILE := $(BUILD)/urpoll.pc

URING_LIBS := $(shell $(PKG_CONFIG) --libs liburing 2>/dev/null || echo -luring)
CRITERION_LIBS := $(shell $(PKG_CONFIG) --libs criterion 2>/dev/null || echo -lcriterion)
TEST_CFLAGS :=
# Criterion's runner cannot start under TSan (tests/shim/criterion/criterion.h says why): TSan
# builds of the tests use that stand-in instead.
ifeq ($(SANITIZE),thread)
CRITERION_LIBS := -lm
TEST_CFLAGS := -Itests/shim
endif
TEST_NAMES := $(patsubst tests/%.c,%,$(wildcard tests/core_*.c tests/uring_*.c tests/loop_*.c \
	tests/echo_*.c tests/proxy_*.c tests/readme_*.c))
# Suites that also run under ThreadSanitizer: all of them (the single-threaded ones are cheap),
# but the proxy's: one loop per process there, and redis-benchmark, wrk and 5,000 connections
# under TSan would take most of `make check`.
THREADED_TESTS := $(filter-out proxy_e2e,$(TEST_NAMES))
# The debug checks of misuse exist in the debug (sanitizer) builds only.
ifneq ($(SANITIZE),)
TEST_NAMES += misuse_debug
THREADED_TESTS += misuse_debug
endif
TEST_BINS := $(TEST_NAMES:%=$(BUILD)/tests/%)

TOOLS := $(filter-out urpoll-trace,$(patsubst tools/%.c,%,$(wildcard tools/urpoll-*.c)))
TOOL_BINS := $(TOOLS:%=$(BUILD)/tools/%)
# The eBPF tracer links libbpf, not the library: its own rules below.
TRACE_BIN := $(BUILD)/tools/urpoll-trace

.PHONY: all lib tools tests check run deps install uninstall clean help \
	test-unit test-plain test-asan test-tsan test-model test-install test-probes test-readme \
	test-cxx bpf test-trace test-bench test-cli bench-proxy

all: lib tools

lib: $(SHLIB) $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so $(STLIB) $(PCFILE)

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

$(PCFILE): Makefile
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
		'Name: urpoll' 'Description: readiness poller driven by io_uring alone' \
		'Version: $(VERSION)' 'Libs: -L$${libdir} -lurpoll' 'Requires.private: liburing' 'Libs.private: -lpthread' \
		'Cflags: -I$${includedir}' > $@

# Tools and tests link the shared library, as users do.
LINK_LIB := -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -lurpoll

tools: $(TOOL_BINS) $(TRACE_BIN)

# What the servers share (tools/net.c: addresses and listeners; tools/acceptor.c: the listener
# task; tools/server.c: loops, threads and signals), compiled once per build directory and
# linked into each server.
SERVER_SRCS := tools/net.c tools/acceptor.c tools/server.c
SERVER_OBJS := $(SERVER_SRCS:%.c=$(BUILD)/obj/%.o)
SERVER_BINS := $(BUILD)/tools/urpoll-echo $(BUILD)/tools/urpoll-proxy

$(BUILD)/obj/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -c $< -o $@

$(SERVER_BINS): $(BUILD)/tools/%: tools/%.c $(SERVER_OBJS) $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -o $@ $< $(SERVER_OBJS) $(URP_LDFLAGS) $(LINK_LIB) \
		-lpthread

$(BUILD)/tools/%: tools/%.c $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -o $@ $< $(URP_LDFLAGS) $(LINK_LIB) -lpthread

tests: $(TEST_BINS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) $(TEST_CFLAGS) -o $@ $< $(URP_LDFLAGS) $(LINK_LIB) \
		$(CRITERION_LIBS) -lpthread

# urpoll-bench's histogram (tools/bench/hist.c) has its own suite. The tests pattern rule links
# only the library; this one compiles hist.c in instead (it needs nothing else).
BENCH_HIST_TEST := $(BUILD)/tests/bench_hist
TEST_NAMES += bench_hist
THREADED_TESTS += bench_hist
TEST_BINS += $(BENCH_HIST_TEST)
tests: $(BENCH_HIST_TEST)

$(BENCH_HIST_TEST): tests/bench_hist.c tools/bench/hist.c tools/bench/bench.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) $(TEST_CFLAGS) -Itools/bench -o $@ tests/bench_hist.c \
		tools/bench/hist.c $(URP_LDFLAGS) $(CRITERION_LIBS) -lm

# Fault injection (tests/uring_fault.c): the library's sources rebuilt with URP_FAULT, which
# routes every ring call through uring/fault.c (uring/ring.h), linked into the test binary
# directly since liburpoll.so exports no internal name. The library proper never contains
# uring/fault.c; in its build uring/ring.h compiles to the plain liburing calls.
FAULT_OBJS := $(LIB_SRCS:%.c=$(BUILD)/fault/obj/%.o) $(BUILD)/fault/obj/uring/fault.o

$(BUILD)/fault/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(LIB_CFLAGS) -DURP_FAULT -c $< -o $@

# An explicit rule, so it wins over the $(BUILD)/tests/% pattern rule.
$(BUILD)/tests/uring_fault: tests/uring_fault.c $(FAULT_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) $(TEST_CFLAGS) -DURP_FAULT -o $@ $< $(FAULT_OBJS) \
		$(URP_LDFLAGS) $(URING_LIBS) $(CRITERION_LIBS) -lpthread

# The servers' listener task against the injectable ring: uring_fault's objects plus
# tools/acceptor.c.
TEST_NAMES += acceptor_fault
THREADED_TESTS += acceptor_fault
TEST_BINS += $(BUILD)/tests/acceptor_fault
tests: $(BUILD)/tests/acceptor_fault

$(BUILD)/tests/acceptor_fault: tests/acceptor_fault.c $(FAULT_OBJS) $(BUILD)/obj/tools/acceptor.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) $(TEST_CFLAGS) -DURP_FAULT -o $@ $< $(FAULT_OBJS) \
		$(BUILD)/obj/tools/acceptor.o $(URP_LDFLAGS) $(URING_LIBS) $(CRITERION_LIBS) -lpthread

# The eBPF tracer: bpf/urpoll.bpf.c -> build/bpf/urpoll.bpf.o -> build/bpf/urpoll.skel.h,
# compiled into $(BUILD)/tools/urpoll-trace. The BPF outputs do not depend on SANITIZE or
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

# An explicit rule, so it wins over the $(BUILD)/tools/% pattern rule. The tracer does not link
# the library (the library never depends on the tracer, nor the tracer on it).
$(TRACE_BIN): tools/urpoll-trace.c bpf/urpoll_trace.h $(BPF_OUT)/urpoll.skel.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -I$(BPF_OUT) -Ibpf $(LIBBPF_CFLAGS) \
		-DURP_LIBDIR='"$(LIBDIR)"' -o $@ $< $(URP_LDFLAGS) $(LIBBPF_LIBS)

# urpoll-bench: the harness, the backends and the workloads of tools/bench/, one program. The
# peers are Debian's libev, libevent and libuv (tools/install-deps.sh installs them).
BENCH_SRCS := $(wildcard tools/bench/*.c)
BENCH_BIN := $(BUILD)/tools/urpoll-bench
# Here, not in the tools rule above: a prerequisite expands where it is read.
tools: $(BENCH_BIN)
# libevent before libev: Debian's libev.so also exports libevent's 1.x names (event_add,
# event_base_loop, ...), and the first library linked wins them. libevent_pthreads: wakeup's
# libevent waker calls event_active() from another thread.
BENCH_LIBS := $(shell $(PKG_CONFIG) --libs libevent libevent_pthreads libuv 2>/dev/null || \
	echo -levent_pthreads -levent -luv) -lev -lm

$(BENCH_BIN): $(BENCH_SRCS) tools/bench/bench.h include/urpoll.h $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -o $@ $(BENCH_SRCS) $(URP_LDFLAGS) $(LINK_LIB) \
		$(BENCH_LIBS) -lpthread

# Every workload on every backend in --smoke mode, its JSON checked (tests/bench_smoke.sh).
# Plain build only: it tests the harness, not the library. No timing is asserted.
test-bench: lib $(BENCH_BIN)
	$(Q)tests/bench_smoke.sh $(BUILD)

# The tools' command lines (tests/tools_cli.sh): exit status 0, 1 or 2, one-line errors that name
# the option, --help on stdout, output paths checked before a benchmark runs. Plain build only.
test-cli: lib tools
	$(Q)tests/tools_cli.sh $(BUILD)

# The traced workload: a plain program on the library (the tests pattern rule would also link
# Criterion, which it does not use).
$(BUILD)/tests/trace_workload: tests/trace_workload.c $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -o $@ $< $(URP_LDFLAGS) $(LINK_LIB) -lpthread

# Root, BTF, uprobes and tracefs (the tool mounts tracefs and bpffs when missing); the suite
# skips, saying which, without them. Plain build only: it tests the tool, not the library.
test-trace: lib $(TRACE_BIN) $(BUILD)/tests/trace_bpf \
		$(BUILD)/tests/trace_workload
	$(Q)tests/run-suite.sh $(BUILD) trace_bpf

# ---- fuzzing: libFuzzer targets in tests/fuzz/<target>.c, seed corpora in tests/fuzz/<target>/ ----
# Each target compiles the library's sources straight into the fuzzer (liburpoll.so hides the
# internal symbols, and the fuzzer wants them instrumented for coverage anyway), always with
# ASan and UBSan. `make fuzz` fuzzes each target for FUZZ_SECONDS, growing a working corpus in
# build/fuzz/corpus/<target>/ (crashes land in build/fuzz/<target>-crash-*); `make check` runs
# every seed file once (test-fuzz).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ready core_ops driver_ops driver_faults
FUZZ_OUT := build/fuzz
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_OUT)/%)
FUZZ_CFLAGS := -g -O1 -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -Iinclude -DURP_DEBUG \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_DEPS := tests/fuzz/fuzz_util.h tests/fuzz/driver_model.h include/urpoll.h $(wildcard core/*.h uring/*.h uring/loop/*.h)
FUZZ_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

.PHONY: fuzz test-fuzz

$(FUZZ_OUT)/ready: tests/fuzz/ready.c $(CORE_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRCS) -lpthread

# core_ops drives detached entries only, but urp_io_wait() (uring/wait.c) asks the driver who
# turns an entry's ring: it links the whole library.
$(FUZZ_OUT)/core_ops: tests/fuzz/core_ops.c $(LIB_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(URING_LIBS) -lpthread

# The driver targets share driver_model.c (entries, kernel model, public-API ops, properties).
# driver_faults is built like tests/uring_fault: the library's sources with URP_FAULT, so every
# ring call goes through uring/fault.c.
FUZZ_DRIVER_SRCS := tests/fuzz/driver_model.c $(LIB_SRCS)

$(FUZZ_OUT)/driver_ops: tests/fuzz/driver_ops.c $(FUZZ_DRIVER_SRCS) $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_DRIVER_SRCS) $(URING_LIBS) -lpthread

$(FUZZ_OUT)/driver_faults: tests/fuzz/driver_faults.c $(FUZZ_DRIVER_SRCS) uring/fault.c \
		$(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -DURP_FAULT -o $@ $< $(FUZZ_DRIVER_SRCS) uring/fault.c \
		$(URING_LIBS) -lpthread

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

deps:
	$(Q)tools/install-deps.sh

# urpoll-proxy against HAProxy and no proxy (docs/proxy.md): a few minutes, pinned with taskset.
bench-proxy: lib $(BUILD)/tools/urpoll-proxy
	$(Q)tools/bench-proxy.sh $(BUILD)

# The main job: a quick side-by-side of urpoll and raw epoll (tools/run-main.sh says how).
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/run-main.sh $(BUILD)

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
	$(Q)tests/install-test.sh $(BUILD)

# The README's echo example is tests/readme_echo.c between its markers, and compiles alone.
test-readme: lib
	$(Q)sed -n '/README:begin/,/README:end/{/README:/d;p}' tests/readme_echo.c \
		>$(BUILD)/readme-example.c
	$(Q)awk '/^<!-- example: tests\/readme_echo.c -->$$/ { f = 1; next } \
		f && /^```c$$/ { p = 1; next } p && /^```$$/ { exit } p' README.md \
		>$(BUILD)/readme-block.c
	$(Q)if cmp -s $(BUILD)/readme-example.c $(BUILD)/readme-block.c && \
		$(CC) -std=c11 $(WARNINGS) -Werror -Iinclude $(BUILD)/readme-example.c \
			-o $(BUILD)/readme-example $(LINK_LIB); then \
		tests/run-suite.sh --record readme pass; \
	else diff -u $(BUILD)/readme-block.c $(BUILD)/readme-example.c; \
		tests/run-suite.sh --record readme fail; exit 1; fi

# include/urpoll.h is valid C++ (11 and later): tests/cxx_header.cc compiled for each standard,
# linked against the library and run.
CXX ?= g++
CXX_STDS := c++11 c++17 c++20

test-cxx: lib
	$(Q)status=0; for std in $(CXX_STDS); do \
		if $(CXX) -std=$$std -Wall -Wextra -pedantic -Werror -Iinclude tests/cxx_header.cc \
			-o $(BUILD)/tests/cxx_header-$$std $(LINK_LIB) && \
		   $(BUILD)/tests/cxx_header-$$std; then \
			tests/run-suite.sh --record cxx/$$std pass; \
		else tests/run-suite.sh --record cxx/$$std fail; status=1; fi; \
	done; exit $$status

test-probes: lib
	$(Q)$(MAKE) --no-print-directory URP_PROBES=0 lib
	$(Q)tests/probes-test.sh $(SHLIB) build/noprobes/liburpoll.so.$(VERSION)

# The test run goes through tests/reaper.py, a child subreaper: a process the tests started
# and left running (a server's child, say) is reparented to it, printed, killed, and recorded
# as a failed "orphans" result, so it fails `make check` instead of living on.
# (CHECK_SUITES=... runs a part of the check the same way.)
REAPER := tests/reaper.py
CHECK_SUITES ?= test-plain test-asan test-tsan test-model test-install test-probes test-readme \
	test-cxx test-trace test-bench test-cli test-fuzz

check: deps
	$(Q)rm -f build/check-results
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(REAPER) --record orphans -- $(MAKE) --no-print-directory -k $(CHECK_SUITES); \
		status=$$?; tests/run-suite.sh --summary build/check-results; exit $$status

install: lib $(TRACE_BIN)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf liburpoll.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liburpoll.so
	install -m 0644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/urpoll.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(PCFILE) $(DESTDIR)$(PKGCONFIGDIR)/
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(TRACE_BIN) $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/liburpoll.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/liburpoll.so $(DESTDIR)$(LIBDIR)/liburpoll.a \
		$(DESTDIR)$(INCLUDEDIR)/urpoll.h $(DESTDIR)$(PKGCONFIGDIR)/urpoll.pc \
		$(DESTDIR)$(BINDIR)/urpoll-trace

clean:
	rm -rf build

help:
	@sed -n '3,17p' Makefile | sed 's/^# \{0,1\}//'

-include $(LIB_OBJS:.o=.d) $(FAULT_OBJS:.o=.d) $(TEST_BINS:=.d) $(TOOL_BINS:=.d) $(TRACE_BIN).d $(SERVER_OBJS:.o=.d) \
	$(BENCH_BIN).d

# The soak (not part of `make check`): `make soak [SOAK_SECONDS=N] [SOAK_ARGS=...]` runs
# tests/soak.c for SOAK_SECONDS after a 60 s warm-up and fails on a lost wakeup, an fd count
# that moved, or RSS grown beyond SOAK_RSS_KB. Sanitizer runtimes keep freed memory a while
# (ASan's quarantine, TSan's shadow), hence their larger allowance.
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

# A plain program, like trace_workload: the tests pattern rule would link Criterion.
$(BUILD)/tests/soak: tests/soak.c $(BUILD)/$(SONAME) $(BUILD)/liburpoll.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(URP_CFLAGS) -o $@ $< $(URP_LDFLAGS) $(LINK_LIB) -lpthread

-include $(BUILD)/tests/soak.d
