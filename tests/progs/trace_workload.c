/* SPDX-License-Identifier: MIT */
/*
 * trace_workload: a known number of stale rejections and wake batches, for the suites of
 * tests/trace/.
 *
 *   trace_workload [-w] [-e] [-P PHASES] [-s STALE] [-S STALE] [-b ROUNDS] [-m MESSAGES]
 *                  [-n PAIRS]
 *
 *   -w   wait for a line (or EOF) on stdin before working: the tracer attaches meanwhile
 *   -e   wait again after printing the counts, before exiting (the test reads the probes'
 *        semaphores while the process still lives)
 *   -s   STALE refused clears on a detached entry; the i-th lags by 2^(i % 15) ticks, so the
 *        lag histogram is known: slot k gets the i with i % 15 == k
 *   -S   STALE refused clears lagging one tick each, timed: a micro-benchmark of the probe
 *        site (snapshot, Set, refused clear), printed as ns per rejection on stderr
 *   -b   ROUNDS of 100 waiters woken by one Set: batches of 32, 32, 32 and 4 wakers
 *   -m   MESSAGES bounced over PAIRS socketpairs (default 8) through a driver: io_uring
 *        completions, wake batches of one, and whatever stale rejections the run makes
 *   -P   in PHASES phases instead, each started by a line on stdin: phase k (1..PHASES) makes
 *        k * STALE stale rejections and k * ROUNDS rounds of -b, then prints its own counts,
 *          phase k stale_rejects=N wake_batches=N wakes=N
 *        so that a tracer's intervals can be matched to known numbers (-S and -m are ignored)
 *
 * Prints the library's own counters (detached entries plus the driver), one line, last:
 *   stale_rejects=N wake_batches=N wakes=N events=N cq_overflows=N
 * (events and cq_overflows: the driver's, 0 without -m).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <urpoll.h>

#define ROUND_WAITERS 100
#define LAG_SLOTS     15

static void count_wake(void *arg)
{
	(*(unsigned long *)arg)++;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "trace_workload: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void wait_stdin(void)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin) && ferror(stdin))
		die("stdin", errno);
}

/* Each refused clear lags by 2^(i % 15) completions: snapshot, Set that many times, clear. */
static void make_stale_rejects(unsigned long n)
{
	struct urp_event ev;
	struct urp_io *io;
	unsigned long i, k;
	int ret;

	ret = urp_io_new(&io);
	if (ret < 0)
		die("urp_io_new", ret);
	urp_io_set_readiness(io, URP_READABLE);
	for (i = 0; i < n; i++) {
		urp_io_ready_event(io, URP_READABLE, &ev);
		for (k = 0; k < 1ul << (i % LAG_SLOTS); k++)
			urp_io_set_readiness(io, URP_READABLE);
		ret = urp_io_clear_readiness(io, &ev);
		if (ret != -ESTALE)
			die("clear was not refused", ret ? ret : EPROTO);
	}
	urp_io_free(io);
}

/* Snapshot, one Set, refused clear: the cheapest way to fire urpoll:stale_reject. */
static void time_stale_rejects(unsigned long n)
{
	struct timespec start, end;
	struct urp_event ev;
	struct urp_io *io;
	unsigned long i;
	int ret;

	ret = urp_io_new(&io);
	if (ret < 0)
		die("urp_io_new", ret);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < n; i++) {
		urp_io_ready_event(io, URP_READABLE, &ev);
		urp_io_set_readiness(io, URP_READABLE);
		ret = urp_io_clear_readiness(io, &ev);
		if (ret != -ESTALE)
			die("clear was not refused", ret ? ret : EPROTO);
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	urp_io_free(io);
	fprintf(stderr, "trace_workload: %lu stale rejections, %.1f ns each\n", n,
		((double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec)) /
			(double)n);
}

/* 100 futures on one entry, woken by one Set: the wake array holds 32. */
static void make_wake_batches(unsigned long rounds)
{
	static struct urp_readiness waiters[ROUND_WAITERS];
	unsigned long woken = 0, i;
	struct urp_waker w = { count_wake, &woken };
	struct urp_event ev;
	struct urp_io *io;
	int ret, j;

	ret = urp_io_new(&io);
	if (ret < 0)
		die("urp_io_new", ret);
	for (i = 0; i < rounds; i++) {
		for (j = 0; j < ROUND_WAITERS; j++) {
			urp_readiness_init(&waiters[j], io, URP_READABLE);
			ret = urp_readiness_poll(&waiters[j], &w, &ev);
			if (ret != -EAGAIN)
				die("waiter was not pending", ret ? ret : EPROTO);
		}
		urp_io_set_readiness(io, URP_READABLE);
		/* Not stale: nothing completed since this snapshot. */
		urp_io_ready_event(io, URP_READABLE, &ev);
		ret = urp_io_clear_readiness(io, &ev);
		if (ret < 0)
			die("clear", ret);
		for (j = 0; j < ROUND_WAITERS; j++)
			urp_readiness_cancel(&waiters[j]);
	}
	if (woken != rounds * ROUND_WAITERS)
		die("not every waiter was woken", EPROTO);
	urp_io_free(io);
}

struct end {
	struct urp_io *io;
	int fd;
	bool queued;
	struct end *next_ready;
};

static struct end *ready_list;
static char buf[64];

static void wake_end(void *arg)
{
	struct end *e = arg;

	if (e->queued)
		return;
	e->queued = true;
	e->next_ready = ready_list;
	ready_list = e;
}

static ssize_t read_op(void *arg)
{
	struct end *e = arg;
	ssize_t n = read(e->fd, buf, sizeof(buf));

	return n < 0 ? -errno : n;
}

/* Ping-pong through a driver (as tools/examples/pingpong.c); adds the driver's counters. */
static void make_driver_traffic(unsigned long messages, int pairs, struct urp_stats *total)
{
	unsigned long bounces = 0;
	struct urp_driver *drv;
	struct urp_stats st;
	struct end *ends, *e;
	int ret, i;

	ret = urp_driver_new(&drv, NULL);
	if (ret < 0)
		die("urp_driver_new", ret);
	ends = calloc(2 * (size_t)pairs, sizeof(*ends));
	if (!ends)
		die("calloc", ENOMEM);
	for (i = 0; i < pairs; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
			die("socketpair", errno);
		ends[2 * i].fd = sv[0];
		ends[2 * i + 1].fd = sv[1];
	}
	for (i = 0; i < 2 * pairs; i++) {
		struct urp_waker w = { wake_end, &ends[i] };
		struct urp_event ev;

		ret = urp_register(drv, ends[i].fd, URP_READABLE, &ends[i].io);
		if (ret < 0)
			die("urp_register", ret);
		urp_io_poll_ready(ends[i].io, URP_DIR_READ, &w, &ev);
	}
	for (i = 0; i < pairs; i++)
		if (write(ends[2 * i].fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			die("write", errno);
	while (bounces < messages) {
		ret = urp_driver_turn(drv, 1000);
		if (ret < 0)
			die("urp_driver_turn", ret);
		while ((e = ready_list)) {
			struct urp_waker w = { wake_end, e };
			struct urp_event ev;
			ssize_t n;

			ready_list = e->next_ready;
			e->queued = false;
			while ((n = urp_io_try_io(e->io, URP_READABLE, read_op, e)) > 0) {
				if (write(e->fd, buf, (size_t)n) != n)
					die("write", errno);
				bounces++;
			}
			if (n != -EAGAIN)
				die("read", (int)n);
			if (urp_io_poll_ready(e->io, URP_DIR_READ, &w, &ev) == 0)
				wake_end(e);
		}
	}
	/* No waker may be left for the shutdown in urp_driver_free() to call after the counters
	 * are read: it would be a batch the tracer sees and the printed counts miss. */
	for (i = 0; i < 2 * pairs; i++) {
		urp_io_clear_wakers(ends[i].io);
		urp_deregister_close(ends[i].io);
	}
	urp_driver_turn(drv, 0);
	/* Read after the last turn: nothing counts after this. */
	ret = urp_driver_stats(drv, &st);
	if (ret < 0)
		die("urp_driver_stats", ret);
	total->stale_rejects += st.stale_rejects;
	total->wake_batches += st.wake_batches;
	total->wakes += st.wakes;
	total->events += st.events;
	total->cq_overflows += st.cq_overflows;
	urp_driver_free(drv);
	free(ends);
}

/* -P: phase k makes k times the work, its counts printed as it ends. */
static void run_phases(unsigned long phases, unsigned long stale, unsigned long rounds)
{
	struct urp_stats before, after;
	unsigned long k;
	int ret;

	for (k = 1; k <= phases; k++) {
		wait_stdin();
		ret = urp_detached_stats(&before);
		if (ret < 0)
			die("urp_detached_stats", ret);
		make_stale_rejects(k * stale);
		make_wake_batches(k * rounds);
		ret = urp_detached_stats(&after);
		if (ret < 0)
			die("urp_detached_stats", ret);
		printf("phase %lu stale_rejects=%llu wake_batches=%llu wakes=%llu\n", k,
		       (unsigned long long)(after.stale_rejects - before.stale_rejects),
		       (unsigned long long)(after.wake_batches - before.wake_batches),
		       (unsigned long long)(after.wakes - before.wakes));
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	unsigned long stale = 0, timed_stale = 0, rounds = 0, messages = 0, phases = 0;
	bool wait_before = false, wait_after = false;
	struct urp_stats total = { 0 }, detached;
	int pairs = 8, opt, ret;

	while ((opt = getopt(argc, argv, "weP:s:S:b:m:n:")) != -1) {
		switch (opt) {
		case 'w':
			wait_before = true;
			break;
		case 'e':
			wait_after = true;
			break;
		case 'P':
			phases = strtoul(optarg, NULL, 0);
			break;
		case 's':
			stale = strtoul(optarg, NULL, 0);
			break;
		case 'S':
			timed_stale = strtoul(optarg, NULL, 0);
			break;
		case 'b':
			rounds = strtoul(optarg, NULL, 0);
			break;
		case 'm':
			messages = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			pairs = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-w] [-e] [-P PHASES] [-s STALE] [-S STALE] "
					"[-b ROUNDS] [-m MESSAGES] [-n PAIRS]\n",
				argv[0]);
			return 2;
		}
	}
	if (pairs < 1 || pairs > 1024)
		die("-n", EINVAL);
	if (wait_before)
		wait_stdin();
	if (phases) {
		run_phases(phases, stale, rounds);
	} else {
		make_stale_rejects(stale);
		if (timed_stale)
			time_stale_rejects(timed_stale);
		make_wake_batches(rounds);
		if (messages)
			make_driver_traffic(messages, pairs, &total);
	}
	ret = urp_detached_stats(&detached);
	if (ret < 0)
		die("urp_detached_stats", ret);
	total.stale_rejects += detached.stale_rejects;
	total.wake_batches += detached.wake_batches;
	total.wakes += detached.wakes;
	printf("stale_rejects=%llu wake_batches=%llu wakes=%llu events=%llu cq_overflows=%llu\n",
	       (unsigned long long)total.stale_rejects, (unsigned long long)total.wake_batches,
	       (unsigned long long)total.wakes, (unsigned long long)total.events,
	       (unsigned long long)total.cq_overflows);
	fflush(stdout);
	if (wait_after)
		wait_stdin();
	return 0;
}
