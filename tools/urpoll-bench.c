/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: side-by-side benchmarks of urpoll against raw epoll, in one invocation.
 *
 * Each workload runs on each backend, interleaved (urpoll epoll urpoll epoll ...), at least
 * five timed runs each after one untimed warm-up per backend; the table gives the median, the
 * min-max spread and the ratio against epoll. Only the readiness mechanism differs between the
 * backends: same fds, same producer, same consume logic (read until EAGAIN).
 *
 *   urpoll-bench [--quick] [--runs N] [--json FILE] [WORKLOAD...]
 *
 * First step of issue 6: workloads notify and pingpong (AF_UNIX, 64 B), backends urpoll and
 * epoll. Syscalls are the harness's own count of the calls it makes (io_uring_enter from
 * urp_driver_stats().enters; epoll_wait, read and write counted at each call site), not a
 * kernel tracepoint count.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <urpoll.h>

#define NOTIFY_FDS	1024
#define PINGPONG_SIZE	64
#define MAX_RUNS	101
/* A run that has not finished after this many seconds is a hang: SIGALRM ends the process. */
#define RUN_WATCHDOG_S	120

enum backend { BE_URPOLL, BE_EPOLL, BE_COUNT };
static const char *const backend_names[BE_COUNT] = { "urpoll", "epoll" };

/* One timed run. */
struct run_result {
	uint64_t events;   /* readiness events consumed (notify) or messages echoed (pingpong) */
	uint64_t wall_ns;
	uint64_t cpu_ns;   /* user + system of the whole process, getrusage */
	uint64_t waits;    /* io_uring_enter or epoll_wait calls */
	uint64_t syscalls; /* waits + read + write calls made by the harness */
	uint64_t vcsw;	   /* voluntary context switches: the thread blocked (getrusage) */
	uint64_t ivcsw;	   /* involuntary ones: preempted, e.g. by other load on the machine */
};

struct workload {
	const char *name;
	const char *what;
	const char *param_name;
	bool implemented;
	unsigned params[4];
	unsigned nparams;
	/* events per timed run, full and --quick */
	uint64_t events_full, events_quick;
	int (*run)(enum backend be, unsigned param, uint64_t events, struct run_result *res);
};

static const char *prog = "urpoll-bench";

/* ---- helpers ---- */

/* Voluntary and involuntary context switches at the last cpu_ns() call. */
static uint64_t ctx_switches[2];


static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	ctx_switches[0] = (uint64_t)ru.ru_nvcsw;
	ctx_switches[1] = (uint64_t)ru.ru_nivcsw;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* The timed region of one run: wall and CPU time, and context switches (from cpu_ns()). */
struct run_clock {
	uint64_t t0, c0, csw[2];
};

static void run_clock_start(struct run_clock *clk)
{
	clk->c0 = cpu_ns();
	memcpy(clk->csw, ctx_switches, sizeof(clk->csw));
	clk->t0 = now_ns();
}

static void run_clock_stop(const struct run_clock *clk, struct run_result *res, uint64_t events,
			   uint64_t waits, uint64_t syscalls)
{
	res->wall_ns = now_ns() - clk->t0;
	res->cpu_ns = cpu_ns() - clk->c0;
	res->vcsw = ctx_switches[0] - clk->csw[0];
	res->ivcsw = ctx_switches[1] - clk->csw[1];
	res->events = events;
	res->waits = waits;
	res->syscalls = syscalls;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static int driver_open(struct urp_driver **drv, unsigned registrations)
{
	struct urp_driver_opts opts = { 0 };
	int ret;

	/* The default CQ allows 8191 registrations; ask for room when more are needed. */
	opts.cq_entries = 16384;
	while (opts.cq_entries / 2 - 1 < registrations)
		opts.cq_entries *= 2;
	ret = urp_driver_new(drv, &opts);
	if (ret < 0)
		fprintf(stderr, "%s: urp_driver_new: %s\n", prog, urp_strerror(ret));
	return ret;
}

/* ---- urpoll side: the driver idiom of tools/urpoll-pingpong.c ---- */

struct uend {
	struct urp_io *io;
	int fd;
	bool queued;
	struct uend *next_ready;
};

/* Woken ends, a LIFO filled by wakers during urp_driver_turn(). */
static struct uend *uready;

static void uend_wake(void *arg)
{
	struct uend *e = arg;

	if (e->queued)
		return;
	e->queued = true;
	e->next_ready = uready;
	uready = e;
}

static uint64_t op_reads;
static char op_buf[PINGPONG_SIZE];

static ssize_t uend_read(void *arg)
{
	struct uend *e = arg;
	ssize_t n;

	op_reads++;
	n = read(e->fd, op_buf, sizeof(op_buf));
	return n < 0 ? -errno : n;
}

static int uend_register(struct urp_driver *drv, struct uend *e)
{
	struct urp_waker w = { uend_wake, e };
	struct urp_event ev;
	int ret;

	ret = urp_register(drv, e->fd, URP_READABLE, &e->io);
	if (ret < 0) {
		fprintf(stderr, "%s: urp_register: %s\n", prog, urp_strerror(ret));
		return ret;
	}
	if (urp_io_poll_ready(e->io, URP_DIR_READ, &w, &ev) == 0)
		uend_wake(e);
	return 0;
}

static void uends_free(struct urp_driver *drv, struct uend *ends, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (ends[i].io)
			urp_deregister_close(ends[i].io);
		else if (ends[i].fd >= 0)
			close(ends[i].fd);
	}
	urp_driver_turn(drv, 0);
	urp_driver_turn(drv, 0);
	urp_driver_free(drv);
	free(ends);
	uready = NULL;
}

/* ---- notify: K of 1,024 eventfds made ready per round, consumed, re-armed ---- */

/* Which eventfds a round makes ready: a window that moves by K each round, so every fd is
 * used and no fd is written twice in one round. */
static unsigned notify_pick(uint64_t round, unsigned k, unsigned j)
{
	return (unsigned)((round * k + j) % NOTIFY_FDS);
}

static int notify_urpoll(unsigned k, uint64_t events, struct run_result *res)
{
	const uint64_t one = 1;
	uint64_t rounds = (events + k - 1) / k, consumed = 0, writes = 0;
	struct run_clock clk;
	struct urp_driver *drv;
	struct urp_stats st0, st1;
	struct uend *ends;
	int ret = -ENOMEM;
	unsigned i;

	ret = driver_open(&drv, NOTIFY_FDS);
	if (ret < 0)
		return ret;
	ends = calloc(NOTIFY_FDS, sizeof(*ends));
	if (!ends) {
		urp_driver_free(drv);
		return -ENOMEM;
	}
	for (i = 0; i < NOTIFY_FDS; i++)
		ends[i].fd = -1;
	for (i = 0; i < NOTIFY_FDS; i++) {
		ends[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (ends[i].fd < 0) {
			ret = -errno;
			fprintf(stderr, "%s: eventfd: %s\n", prog, strerror(errno));
			goto out_free;
		}
		ret = uend_register(drv, &ends[i]);
		if (ret < 0)
			goto out_free;
	}
	/* Arm every poll before timing starts. */
	ret = urp_driver_turn(drv, 0);
	if (ret < 0)
		goto out_turn;
	uready = NULL;
	for (i = 0; i < NOTIFY_FDS; i++)
		ends[i].queued = false;
	op_reads = 0;
	urp_driver_stats(drv, &st0);
	run_clock_start(&clk);
	for (uint64_t round = 0; round < rounds; round++) {
		uint64_t goal = consumed + k;

		for (unsigned j = 0; j < k; j++) {
			writes++;
			if (write(ends[notify_pick(round, k, j)].fd, &one, sizeof(one)) != sizeof(one)) {
				ret = -errno;
				fprintf(stderr, "%s: eventfd write: %s\n", prog, strerror(errno));
				goto out_free;
			}
		}
		while (consumed < goal) {
			struct uend *e;

			ret = urp_driver_turn(drv, -1);
			if (ret < 0)
				goto out_turn;
			while ((e = uready)) {
				struct urp_waker w = { uend_wake, e };
				struct urp_event ev;
				ssize_t n;

				uready = e->next_ready;
				e->queued = false;
				while ((n = urp_io_try_io(e->io, URP_READABLE, uend_read, e)) > 0)
					consumed++;
				if (n != -EAGAIN) {
					ret = (int)n;
					fprintf(stderr, "%s: eventfd read: %s\n", prog,
						strerror((int)-n));
					goto out_free;
				}
				if (urp_io_poll_ready(e->io, URP_DIR_READ, &w, &ev) == 0)
					uend_wake(e);
			}
		}
	}
	urp_driver_stats(drv, &st1);
	run_clock_stop(&clk, res, consumed, st1.enters - st0.enters,
		       st1.enters - st0.enters + op_reads + writes);
	ret = 0;
	goto out_free;
out_turn:
	fprintf(stderr, "%s: urp_driver_turn: %s\n", prog, urp_strerror(ret));
out_free:
	uends_free(drv, ends, NOTIFY_FDS);
	return ret;
}

static int notify_epoll(unsigned k, uint64_t events, struct run_result *res)
{
	const uint64_t one = 1;
	uint64_t rounds = (events + k - 1) / k, consumed = 0, writes = 0, reads = 0, waits = 0;
	struct run_clock clk;
	uint64_t val;
	struct epoll_event evs[NOTIFY_FDS];
	int fds[NOTIFY_FDS], ep, ret = 0;
	unsigned i;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		fprintf(stderr, "%s: epoll_create1: %s\n", prog, strerror(errno));
		return -errno;
	}
	for (i = 0; i < NOTIFY_FDS; i++)
		fds[i] = -1;
	for (i = 0; i < NOTIFY_FDS; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = i };

		fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fds[i] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			ret = -errno;
			fprintf(stderr, "%s: eventfd/epoll_ctl: %s\n", prog, strerror(errno));
			goto out_close;
		}
	}
	run_clock_start(&clk);
	for (uint64_t round = 0; round < rounds; round++) {
		uint64_t goal = consumed + k;

		for (unsigned j = 0; j < k; j++) {
			writes++;
			if (write(fds[notify_pick(round, k, j)], &one, sizeof(one)) != sizeof(one)) {
				ret = -errno;
				fprintf(stderr, "%s: eventfd write: %s\n", prog, strerror(errno));
				goto out_close;
			}
		}
		while (consumed < goal) {
			int n = epoll_wait(ep, evs, NOTIFY_FDS, -1);

			waits++;
			if (n < 0) {
				if (errno == EINTR)
					continue;
				ret = -errno;
				fprintf(stderr, "%s: epoll_wait: %s\n", prog, strerror(errno));
				goto out_close;
			}
			for (int x = 0; x < n; x++) {
				int fd = fds[evs[x].data.u32];

				/* Edge-triggered: read until EAGAIN, as the urpoll side does. */
				for (;;) {
					reads++;
					if (read(fd, &val, sizeof(val)) < 0)
						break;
					consumed++;
				}
				if (errno != EAGAIN) {
					ret = -errno;
					fprintf(stderr, "%s: eventfd read: %s\n", prog,
						strerror(errno));
					goto out_close;
				}
			}
		}
	}
	run_clock_stop(&clk, res, consumed, waits, waits + reads + writes);
out_close:
	close_fds(fds, NOTIFY_FDS);
	close(ep);
	return ret;
}

static int notify_run(enum backend be, unsigned k, uint64_t events, struct run_result *res)
{
	return be == BE_URPOLL ? notify_urpoll(k, events, res) : notify_epoll(k, events, res);
}

/* ---- pingpong: one 64 B message in flight per AF_UNIX socketpair, echoed back ---- */

static int pairs_open(int *fds, unsigned pairs)
{
	for (unsigned i = 0; i < 2 * pairs; i++)
		fds[i] = -1;
	for (unsigned i = 0; i < pairs; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
			       &fds[2 * i]) < 0) {
			int err = errno;

			fprintf(stderr, "%s: socketpair: %s\n", prog, strerror(err));
			close_fds(fds, 2 * pairs);
			return -err;
		}
	}
	return 0;
}

static int pingpong_urpoll(unsigned pairs, uint64_t messages, struct run_result *res)
{
	uint64_t bounces = 0, writes = 0;
	struct run_clock clk;
	struct urp_stats st0, st1;
	struct urp_driver *drv;
	struct uend *ends;
	int *fds, ret;
	unsigned i;

	fds = calloc(2 * pairs, sizeof(*fds));
	ends = calloc(2 * pairs, sizeof(*ends));
	if (!fds || !ends) {
		free(fds);
		free(ends);
		return -ENOMEM;
	}
	ret = pairs_open(fds, pairs);
	if (ret < 0) {
		free(fds);
		free(ends);
		return ret;
	}
	for (i = 0; i < 2 * pairs; i++)
		ends[i].fd = fds[i];
	free(fds);
	ret = driver_open(&drv, 2 * pairs);
	if (ret < 0) {
		for (i = 0; i < 2 * pairs; i++)
			close(ends[i].fd);
		free(ends);
		return ret;
	}
	for (i = 0; i < 2 * pairs; i++) {
		ret = uend_register(drv, &ends[i]);
		if (ret < 0)
			goto out_free;
	}
	ret = urp_driver_turn(drv, 0);
	if (ret < 0)
		goto out_turn;
	op_reads = 0;
	urp_driver_stats(drv, &st0);
	run_clock_start(&clk);
	for (i = 0; i < pairs; i++) {
		writes++;
		if (write(ends[2 * i].fd, op_buf, PINGPONG_SIZE) != PINGPONG_SIZE) {
			ret = -EIO;
			fprintf(stderr, "%s: write: short or failed\n", prog);
			goto out_free;
		}
	}
	while (bounces < messages) {
		struct uend *e;

		ret = urp_driver_turn(drv, -1);
		if (ret < 0)
			goto out_turn;
		while ((e = uready)) {
			struct urp_waker w = { uend_wake, e };
			struct urp_event ev;
			ssize_t n;

			uready = e->next_ready;
			e->queued = false;
			while ((n = urp_io_try_io(e->io, URP_READABLE, uend_read, e)) > 0) {
				writes++;
				if (write(e->fd, op_buf, (size_t)n) != n) {
					ret = -EIO;
					fprintf(stderr, "%s: echo write: short or failed\n", prog);
					goto out_free;
				}
				bounces++;
			}
			if (n != -EAGAIN) {
				ret = (int)n;
				fprintf(stderr, "%s: read: %s\n", prog, strerror((int)-n));
				goto out_free;
			}
			if (urp_io_poll_ready(e->io, URP_DIR_READ, &w, &ev) == 0)
				uend_wake(e);
		}
	}
	urp_driver_stats(drv, &st1);
	run_clock_stop(&clk, res, bounces, st1.enters - st0.enters,
		       st1.enters - st0.enters + op_reads + writes);
	ret = 0;
	goto out_free;
out_turn:
	fprintf(stderr, "%s: urp_driver_turn: %s\n", prog, urp_strerror(ret));
out_free:
	uends_free(drv, ends, 2 * pairs);
	return ret;
}

static int pingpong_epoll(unsigned pairs, uint64_t messages, struct run_result *res)
{
	uint64_t bounces = 0, writes = 0, reads = 0, waits = 0;
	struct run_clock clk;
	struct epoll_event *evs;
	int *fds, ep, ret;
	unsigned i;

	fds = calloc(2 * pairs, sizeof(*fds));
	evs = calloc(1024, sizeof(*evs));
	if (!fds || !evs) {
		free(fds);
		free(evs);
		return -ENOMEM;
	}
	ret = pairs_open(fds, pairs);
	if (ret < 0)
		goto out_mem;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		ret = -errno;
		fprintf(stderr, "%s: epoll_create1: %s\n", prog, strerror(errno));
		goto out_fds;
	}
	for (i = 0; i < 2 * pairs; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = i };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			ret = -errno;
			fprintf(stderr, "%s: epoll_ctl: %s\n", prog, strerror(errno));
			goto out_ep;
		}
	}
	run_clock_start(&clk);
	for (i = 0; i < pairs; i++) {
		writes++;
		if (write(fds[2 * i], op_buf, PINGPONG_SIZE) != PINGPONG_SIZE) {
			ret = -EIO;
			fprintf(stderr, "%s: write: short or failed\n", prog);
			goto out_ep;
		}
	}
	while (bounces < messages) {
		int n = epoll_wait(ep, evs, 1024, -1);

		waits++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			fprintf(stderr, "%s: epoll_wait: %s\n", prog, strerror(errno));
			goto out_ep;
		}
		for (int x = 0; x < n; x++) {
			int fd = fds[evs[x].data.u32];
			ssize_t got;

			for (;;) {
				reads++;
				got = read(fd, op_buf, sizeof(op_buf));
				if (got <= 0)
					break;
				writes++;
				if (write(fd, op_buf, (size_t)got) != got) {
					ret = -EIO;
					fprintf(stderr, "%s: echo write: short or failed\n", prog);
					goto out_ep;
				}
				bounces++;
			}
			if (got == 0 || errno != EAGAIN) {
				ret = got == 0 ? -EPIPE : -errno;
				fprintf(stderr, "%s: read: %s\n", prog, strerror(-ret));
				goto out_ep;
			}
		}
	}
	run_clock_stop(&clk, res, bounces, waits, waits + reads + writes);
	ret = 0;
out_ep:
	close(ep);
out_fds:
	close_fds(fds, 2 * pairs);
out_mem:
	free(fds);
	free(evs);
	return ret;
}

static int pingpong_run(enum backend be, unsigned pairs, uint64_t messages,
			struct run_result *res)
{
	return be == BE_URPOLL ? pingpong_urpoll(pairs, messages, res) :
				 pingpong_epoll(pairs, messages, res);
}

/* ---- workloads ---- */

static const struct workload workloads[] = {
	{ "notify", "in-process readiness dispatch, no TCP: 1,024 eventfds, K made ready per "
		    "round; ns and CPU ns per readiness event consumed, syscalls per event",
	  "K", true, { 1, 16, 256 }, 3, 200000, 20000, notify_run },
	{ "pingpong", "echo of one 64 B message per AF_UNIX socketpair over N pairs, one thread; "
		      "requests/s, CPU us per request, syscalls per request",
	  "N", true, { 1, 16, 256 }, 3, 200000, 20000, pingpong_run },
	{ "churn", "register+deregister per second; accept-request-close per second", "", false,
	  { 0 }, 0, 0, 0, NULL },
	{ "idle", "latency and CPU per request with 1k-9k idle connections", "", false, { 0 }, 0,
	  0, 0, NULL },
	{ "wakeup", "cross-thread wake latency percentiles", "", false, { 0 }, 0, 0, 0, NULL },
	{ "word", "packed readiness word under cross-core contention, ns/event", "", false, { 0 },
	  0, 0, 0, NULL },
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

/* Aggregated runs of one (workload, param, backend). */
struct cell {
	const struct workload *wl;
	unsigned param;
	enum backend be;
	unsigned nruns;
	struct run_result runs[MAX_RUNS];
	/* per-event metrics, per run */
	double ns_ev[MAX_RUNS], cpu_ev[MAX_RUNS], sys_ev[MAX_RUNS], waits_ev[MAX_RUNS];
	double vcsw_ev[MAX_RUNS], ivcsw_ev[MAX_RUNS];
	double rate[MAX_RUNS]; /* events per second */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median, min and max of n values (n >= 1). */
static void summarize(const double *v, unsigned n, double *med, double *lo, double *hi)
{
	double s[MAX_RUNS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	*med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	*lo = s[0];
	*hi = s[n - 1];
}

static double median(const double *v, unsigned n)
{
	double m, lo, hi;

	summarize(v, n, &m, &lo, &hi);
	return m;
}

static void cell_add(struct cell *c, const struct run_result *r)
{
	unsigned i = c->nruns++;
	double ev = (double)r->events;

	c->runs[i] = *r;
	c->ns_ev[i] = (double)r->wall_ns / ev;
	c->cpu_ev[i] = (double)r->cpu_ns / ev;
	c->sys_ev[i] = (double)r->syscalls / ev;
	c->waits_ev[i] = (double)r->waits / ev;
	c->vcsw_ev[i] = (double)r->vcsw / ev;
	c->ivcsw_ev[i] = (double)r->ivcsw / ev;
	c->rate[i] = ev * 1e9 / (double)r->wall_ns;
}

static bool progress_tty;

static void progress(const struct workload *wl, unsigned param, enum backend be, int run,
		     unsigned runs)
{
	if (!progress_tty)
		return;
	if (run < 0)
		fprintf(stderr, "\r\033[K%s %s=%u %s warm-up", wl->name, wl->param_name, param,
			backend_names[be]);
	else
		fprintf(stderr, "\r\033[K%s %s=%u %s run %d/%u", wl->name, wl->param_name, param,
			backend_names[be], run + 1, runs);
}

static void print_header(const struct workload *wl)
{
	if (!strcmp(wl->name, "notify"))
		printf("\nnotify: ns per readiness event (lower is better); ratio = backend/epoll\n"
		       "%-8s %5s %-7s %10s %21s %8s %10s %8s %8s %8s %8s %8s\n", "workload",
		       "K", "backend", "ns/ev", "spread min-max", "x epoll", "cpu ns/ev", "x epoll",
		       "sys/ev", "wait/ev", "blk/ev", "pre/ev");
	else
		printf("\npingpong: requests/s (higher is better); ratio = backend/epoll\n"
		       "%-8s %5s %-7s %10s %21s %8s %10s %8s %8s %8s %8s %8s\n", "workload",
		       "N", "backend", "req/s", "spread min-max", "x epoll", "cpu us/req", "x epoll",
		       "sys/req", "wait/req", "blk/req", "pre/req");
}

static void print_row(const struct cell *c, const struct cell *base)
{
	double med, lo, hi, cpu = median(c->cpu_ev, c->nruns);
	double cpu_base = median(base->cpu_ev, base->nruns);

	if (!strcmp(c->wl->name, "notify")) {
		char spread[32];

		summarize(c->ns_ev, c->nruns, &med, &lo, &hi);
		snprintf(spread, sizeof(spread), "%.1f-%.1f", lo, hi);
		printf("%-8s %5u %-7s %10.1f %21s %8.2f %10.1f %8.2f %8.2f %8.3f %8.4f %8.4f\n",
		       c->wl->name, c->param, backend_names[c->be], med, spread,
		       med / median(base->ns_ev, base->nruns), cpu, cpu / cpu_base,
		       median(c->sys_ev, c->nruns), median(c->waits_ev, c->nruns),
		       median(c->vcsw_ev, c->nruns), median(c->ivcsw_ev, c->nruns));
	} else {
		char spread[32];

		summarize(c->rate, c->nruns, &med, &lo, &hi);
		snprintf(spread, sizeof(spread), "%.0f-%.0f", lo, hi);
		printf("%-8s %5u %-7s %10.0f %21s %8.2f %10.3f %8.2f %8.2f %8.3f %8.4f %8.4f\n",
		       c->wl->name, c->param, backend_names[c->be], med, spread,
		       med / median(base->rate, base->nruns), cpu / 1000, cpu / cpu_base,
		       median(c->sys_ev, c->nruns), median(c->waits_ev, c->nruns),
		       median(c->vcsw_ev, c->nruns), median(c->ivcsw_ev, c->nruns));
	}
}

static void json_cell(FILE *f, const struct cell *c, const struct cell *base, bool last)
{
	double med, lo, hi;

	summarize(c->ns_ev, c->nruns, &med, &lo, &hi);
	fprintf(f,
		"    {\"workload\": \"%s\", \"param\": \"%s\", \"value\": %u, \"backend\": \"%s\", "
		"\"runs\": %u,\n     \"ns_per_event\": {\"median\": %.2f, \"min\": %.2f, \"max\": "
		"%.2f},\n",
		c->wl->name, c->wl->param_name, c->param, backend_names[c->be], c->nruns, med, lo,
		hi);
	summarize(c->rate, c->nruns, &med, &lo, &hi);
	fprintf(f, "     \"events_per_s\": {\"median\": %.1f, \"min\": %.1f, \"max\": %.1f},\n",
		med, lo, hi);
	summarize(c->cpu_ev, c->nruns, &med, &lo, &hi);
	fprintf(f, "     \"cpu_ns_per_event\": {\"median\": %.2f, \"min\": %.2f, \"max\": %.2f},\n",
		med, lo, hi);
	fprintf(f,
		"     \"syscalls_per_event\": %.4f, \"waits_per_event\": %.4f,\n"
		"     \"voluntary_csw_per_event\": %.5f, \"involuntary_csw_per_event\": %.5f,\n"
		"     \"ratio_vs_epoll\": {\"ns_per_event\": %.4f, \"events_per_s\": %.4f, "
		"\"cpu_ns_per_event\": %.4f},\n     \"events\": [",
		median(c->sys_ev, c->nruns), median(c->waits_ev, c->nruns),
		median(c->vcsw_ev, c->nruns), median(c->ivcsw_ev, c->nruns),
		median(c->ns_ev, c->nruns) / median(base->ns_ev, base->nruns),
		median(c->rate, c->nruns) / median(base->rate, base->nruns),
		median(c->cpu_ev, c->nruns) / median(base->cpu_ev, base->nruns));
	for (unsigned i = 0; i < c->nruns; i++)
		fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)c->runs[i].events);
	fprintf(f, "]}%s\n", last ? "" : ",");
}

static int usage(int status)
{
	FILE *f = status ? stderr : stdout;

	fprintf(f,
		"usage: %s [--quick] [--runs N] [--json FILE] [WORKLOAD...]\n\n"
		"Runs each workload on the urpoll and epoll backends in the same invocation,\n"
		"interleaved (urpoll epoll urpoll epoll ...), one untimed warm-up each, then N timed\n"
		"runs (default 5, at least 5 for a report), and prints the median, the min-max\n"
		"spread and the ratio against raw epoll (edge-triggered, batched epoll_wait).\n\n"
		"  --quick      fewer events per run (about a tenth), for a run under ~20 s\n"
		"  --runs N     timed runs per backend and parameter (1..%d)\n"
		"  --json FILE  also write every cell, with its per-run event counts, as JSON\n"
		"  --help       this text\n\n"
		"Workloads (default: every implemented one):\n",
		prog, MAX_RUNS);
	for (unsigned i = 0; i < NWORKLOADS; i++)
		fprintf(f, "  %-9s %s%s\n", workloads[i].name,
			workloads[i].implemented ? "" : "(planned) ", workloads[i].what);
	fprintf(f, "\nSyscalls per event are the harness's own count of its calls (io_uring_enter\n"
		   "from urp_driver_stats, epoll_wait/read/write counted at the call site).\n"
		   "Peers libev, libevent and libuv are planned, not yet built in.\n");
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "runs", required_argument, NULL, 'r' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool selected[NWORKLOADS] = { false }, any = false, quick = false;
	const char *json_path = NULL;
	struct cell *cells;
	unsigned ncells = 0, runs = 5;
	int opt;

	while ((opt = getopt_long(argc, argv, "qr:j:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			quick = true;
			break;
		case 'r': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v < 1 || v > MAX_RUNS) {
				fprintf(stderr, "%s: --runs wants 1..%d, not '%s'\n", prog, MAX_RUNS,
					optarg);
				return 2;
			}
			runs = (unsigned)v;
			break;
		}
		case 'j':
			json_path = optarg;
			break;
		case 'h':
			return usage(0);
		default:
			return usage(2);
		}
	}
	for (int a = optind; a < argc; a++) {
		unsigned i;

		for (i = 0; i < NWORKLOADS; i++)
			if (!strcmp(argv[a], workloads[i].name))
				break;
		if (i == NWORKLOADS) {
			fprintf(stderr, "%s: unknown workload '%s' (see --help)\n", prog, argv[a]);
			return 2;
		}
		if (!workloads[i].implemented) {
			fprintf(stderr, "%s: workload '%s' is planned, not implemented yet\n", prog,
				argv[a]);
			return 2;
		}
		selected[i] = any = true;
	}
	for (unsigned i = 0; i < NWORKLOADS && !any; i++)
		selected[i] = workloads[i].implemented;

	cells = calloc(NWORKLOADS * 4 * BE_COUNT, sizeof(*cells));
	if (!cells) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	progress_tty = isatty(STDERR_FILENO);
	signal(SIGPIPE, SIG_IGN);
	{
		struct urp_driver_info info;
		struct urp_driver *drv;
		struct utsname un;
		int ret = urp_driver_new(&drv, NULL);

		if (ret < 0) {
			fprintf(stderr, "%s: urp_driver_new: %s\n", prog, urp_strerror(ret));
			return 1;
		}
		urp_driver_info(drv, &info);
		urp_driver_free(drv);
		uname(&un);
		printf("urpoll-bench: kernel %s, %ld CPUs online, urpoll tier %s, %u runs%s\n",
		       un.release, sysconf(_SC_NPROCESSORS_ONLN), info.tier_name, runs,
		       quick ? " (--quick)" : "");
	}

	for (unsigned w = 0; w < NWORKLOADS; w++) {
		const struct workload *wl = &workloads[w];
		uint64_t events = quick ? wl->events_quick : wl->events_full;

		if (!selected[w])
			continue;
		print_header(wl);
		fflush(stdout);
		for (unsigned p = 0; p < wl->nparams; p++) {
			struct cell *pc = &cells[ncells];

			for (int be = 0; be < BE_COUNT; be++)
				pc[be] = (struct cell){ .wl = wl, .param = wl->params[p],
							.be = (enum backend)be };
			/* run -1 is the untimed warm-up */
			for (int r = -1; r < (int)runs; r++) {
				for (int be = 0; be < BE_COUNT; be++) {
					struct run_result res = { 0 };
					uint64_t ev = r < 0 ? events / 10 + 1 : events;
					int ret;

					progress(wl, wl->params[p], (enum backend)be, r, runs);
					alarm(RUN_WATCHDOG_S);
					ret = wl->run((enum backend)be, wl->params[p], ev, &res);
					alarm(0);
					if (ret < 0) {
						fprintf(stderr, "\n%s: %s %s=%u on %s failed: %s\n",
							prog, wl->name, wl->param_name,
							wl->params[p], backend_names[be],
							strerror(-ret));
						return 1;
					}
					if (!res.events || !res.wall_ns) {
						fprintf(stderr, "\n%s: %s on %s measured nothing\n",
							prog, wl->name, backend_names[be]);
						return 1;
					}
					if (r >= 0)
						cell_add(&pc[be], &res);
				}
			}
			if (progress_tty)
				fprintf(stderr, "\r\033[K");
			for (int be = 0; be < BE_COUNT; be++)
				print_row(&pc[be], &pc[BE_EPOLL]);
			fflush(stdout);
			ncells += BE_COUNT;
		}
	}

	if (json_path) {
		FILE *f = fopen(json_path, "w");

		if (!f) {
			fprintf(stderr, "%s: %s: %s\n", prog, json_path, strerror(errno));
			return 1;
		}
		fprintf(f, "{\n  \"tool\": \"urpoll-bench\",\n  \"runs\": %u,\n  \"quick\": %s,\n"
			   "  \"results\": [\n",
			runs, quick ? "true" : "false");
		for (unsigned i = 0; i < ncells; i++) {
			const struct cell *base = &cells[i - cells[i].be + BE_EPOLL];

			json_cell(f, &cells[i], base, i + 1 == ncells);
		}
		fprintf(f, "  ]\n}\n");
		if (fclose(f) != 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, json_path, strerror(errno));
			return 1;
		}
	}
	free(cells);
	return 0;
}
