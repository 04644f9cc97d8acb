/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: the timed region (wall, CPU, context switches, syscalls, callgrind's window)
 * and the helpers every workload shares (the sockets are sockets.c's).
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <valgrind/callgrind.h>

#include "bench.h"

#define TRACEFS_DIR   "/sys/kernel/tracing"
#define TRACEFS_MAGIC 0x74726163
#define SYS_ENTER_ID  TRACEFS_DIR "/events/raw_syscalls/sys_enter/id"

const char *bench_prog = "urpoll-bench";

/* The raw_syscalls:sys_enter counter, -1 when syscalls are not counted. */
static int syscalls_fd = -1;

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_fail(int err, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", bench_prog, what, strerror(-err));
	return err;
}

void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* ---- syscall counting ---- */

static int read_sys_enter_id(unsigned long long *id)
{
	FILE *f = fopen(SYS_ENTER_ID, "r");
	int ret = 0;

	if (!f)
		return -errno;
	if (fscanf(f, "%llu", id) != 1)
		ret = -EIO;
	fclose(f);
	return ret;
}

static bool tracefs_mounted(void)
{
	struct statfs st;

	return statfs(TRACEFS_DIR, &st) == 0 && st.f_type == TRACEFS_MAGIC;
}

int bench_syscalls_open(char *why, size_t len)
{
	struct perf_event_attr attr = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof(attr) };
	unsigned long long id;
	int err;

	if (!tracefs_mounted() && mount("tracefs", TRACEFS_DIR, "tracefs", 0, NULL) < 0) {
		err = -errno;
		snprintf(why, len, "tracefs is not mounted at %s and mounting it failed: %s",
			 TRACEFS_DIR, strerror(-err));
		return err;
	}
	err = read_sys_enter_id(&id);
	if (err < 0) {
		snprintf(why, len, "%s: %s", SYS_ENTER_ID, strerror(-err));
		return err;
	}
	attr.config = id;
	/* Counts the threads (and children) started after this call too: a child's count is
	 * summed into this fd's read while the child runs, and folded in when it exits. */
	attr.inherit = 1;
	syscalls_fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (syscalls_fd < 0) {
		err = -errno;
		snprintf(why, len, "perf_event_open(raw_syscalls:sys_enter): %s%s", strerror(-err),
			 err == -EACCES || err == -EPERM ?
				 " (needs root or kernel.perf_event_paranoid <= -1)" :
				 "");
		return err;
	}
	return 0;
}

bool bench_syscalls_counted(void)
{
	return syscalls_fd >= 0;
}

static uint64_t syscalls_read(void)
{
	uint64_t count = 0;

	if (syscalls_fd >= 0 && read(syscalls_fd, &count, sizeof(count)) != sizeof(count))
		count = 0;
	return count;
}

/* ---- the timed region ---- */

static uint64_t cpu_ns(uint64_t *csw)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	csw[0] = (uint64_t)ru.ru_nvcsw;
	csw[1] = (uint64_t)ru.ru_nivcsw;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/*
 * The counter is read last at the start and first at the stop, so of the harness's own calls
 * only the stopping read(2) lands in the window (its sys_enter fires before it reads): one,
 * subtracted. Under callgrind the window is also the one instructions are counted in; zeroing
 * and dumping, rather than toggling collection, counts every thread (callgrind's collect state
 * is per thread).
 */
void run_clock_start(struct run_clock *clk)
{
	clk->c0 = cpu_ns(clk->csw);
	CALLGRIND_ZERO_STATS;
	clk->sys0 = syscalls_read();
	clk->t0 = now_ns();
}

void run_clock_stop(const struct run_clock *clk, struct run_result *res, uint64_t events,
		    uint64_t waits)
{
	uint64_t t1 = now_ns(), sys1 = syscalls_read(), csw[2];

	CALLGRIND_DUMP_STATS_AT("urpoll-bench timed run");
	res->wall_ns = t1 - clk->t0;
	res->syscalls = syscalls_fd >= 0 ? sys1 - clk->sys0 - 1 : 0;
	res->cpu_ns = cpu_ns(csw) - clk->c0;
	res->vcsw = csw[0] - clk->csw[0];
	res->ivcsw = csw[1] - clk->csw[1];
	res->events = events;
	res->waits = waits;
}

void run_clock_start_loop(struct run_clock *clk, const struct bench_backend *b,
			  struct bench_loop *lp)
{
	clk->b = b;
	clk->lp = lp;
	clk->waits0 = b->waits(lp);
	run_clock_start(clk);
}

void run_clock_stop_loop(const struct run_clock *clk, struct run_result *res, uint64_t events)
{
	run_clock_stop(clk, res, events, clk->b->waits(clk->lp) - clk->waits0);
}

int run_clock_arm(struct run_clock *clk, const struct bench_backend *b, struct bench_loop *lp)
{
	int ret = b->run_once(lp, 0);

	if (ret < 0)
		return ret;
	run_clock_start_loop(clk, b, lp);
	return 0;
}
