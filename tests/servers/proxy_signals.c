// SPDX-License-Identifier: MIT
/*
 * proxy_signals: urpoll-proxy's signals, end to end (the fixture: tests/lib/proxy_util.h).
 * SIGTERM drains the open connections, refusing new ones, then exits 0, or cuts them 10 s later;
 * while a loop other than the first drains, a second SIGTERM still stops the proxy and SIGUSR1
 * still prints the stats.
 */
#include <sys/syscall.h>

#include "proxy_util.h"

TestSuite(proxy_signals, .init = suite_init, .fini = cleanup, .timeout = 120);

/* ---- SIGTERM ---- */

PROXY_TEST(proxy_signals, sigterm_drains_open_connections_then_exits_0)
{
	unsigned redis, raced = 0;
	char line[512], *at;
	int fd, late;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	kill(t.proxy->pid, SIGTERM);
	/* Draining: new clients are refused, the open one still works. A connect racing the
	 * listener's stop lands in its queue, and the proxy accepts it before it stops listening
	 * (a served connection, counted), or is reset; once the listener is gone, every connect
	 * is refused. */
	for (double end = now_s() + 5;
	     (late = connect_port(t.proxy_port)) != -ECONNREFUSED && now_s() < end;) {
		if (late >= 0) {
			raced++;
			close(late);
		}
		sleep_ms(20);
	}
	cr_assert_eq(late, -ECONNREFUSED, "a connect during the drain: %s",
		     late >= 0 ? "accepted" : strerror(-late));
	cr_assert(ping(fd));
	cr_assert_eq(proc_wait_exit(t.proxy, 0.5), -1, "exited with a connection open");
	close(fd);
	cr_assert_eq(proc_wait_exit(t.proxy, 5.0), 0);
	cr_assert(proxy_line(0, "exit: conns ", 1.0, line, sizeof(line)), "%s", t.proxy->text);
	at = strstr(line, "exit: conns ") + strlen("exit: conns ");
	cr_assert(strtoul(at, &at, 10) <= 1 + raced && !strncmp(at, " open 0 ", 8), "%s (%u raced)",
		  line, raced);
}

/* The drain's deadline (10 s, a timer on each loop): a connection that never ends does not
 * keep the proxy up for ever; it is cut at exit, and said so with --log. */
Test(proxy_signals, the_drain_ends_after_10_s_with_a_connection_still_open)
{
	char *extra[] = { "--log", NULL };
	unsigned redis;
	size_t from;
	int fd;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	from = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert_eq(proc_wait_exit(t.proxy, 3.0), -1, "the drain did not wait");
	cr_assert(ping(fd), "the connection does not work during the drain");
	cr_assert_eq(proc_wait_exit(t.proxy, 20.0), 0, "%s", t.proxy->text);
	cr_assert(proc_wait_output_from(t.proxy, from, "end stopped", 1.0), "%s", t.proxy->text);
	cr_assert_not_null(strstr(t.proxy->text + from, "exit: conns 1 open 1"), "%s",
			   t.proxy->text + from);
	close(fd);
}

/* ---- signals while a loop other than the first drains ---- */

/* The thread id of the proxy's loop index (0: the main thread; i: the one named "PROG/i"). */
static pid_t loop_thread(unsigned index)
{
	char comm[32], want[32];
	pid_t tids[256];
	int n;

	if (!index)
		return t.proxy->pid;
	snprintf(want, sizeof(want), "urpoll-proxy/%u", index);
	n = task_ids(t.proxy->pid, tids, 256);
	cr_assert_geq(n, 0, "the proxy is gone");
	for (int i = 0; i < n; i++)
		if (task_line(t.proxy->pid, tids[i], "comm", comm, sizeof(comm)) &&
		    !strcmp(comm, want))
			return tids[i];
	return -1;
}

/* The first number of /proc/PID/task/TID/FILE of the proxy, or -1. */
static long thread_number(pid_t tid, const char *file)
{
	char line[256];

	return task_line(t.proxy->pid, tid, file, line, sizeof(line)) ? strtol(line, NULL, 10) : -1;
}

/*
 * Which loop of a two-loop proxy serves connection fd: the one whose thread spends the CPU
 * time (/proc/PID/task/TID/schedstat, nanoseconds on a CPU) of 50 PINGs through it. The other
 * loop sleeps meanwhile (loop 0 wakes for the backend checks, every 2 s).
 */
static unsigned serving_loop(int fd, const pid_t *tids)
{
	for (unsigned attempt = 0; attempt < 5; attempt++) {
		long before[2], ran[2];

		for (unsigned i = 0; i < 2; i++)
			before[i] = thread_number(tids[i], "schedstat");
		for (unsigned n = 0; n < 50; n++)
			cr_assert(ping(fd));
		for (unsigned i = 0; i < 2; i++)
			ran[i] = thread_number(tids[i], "schedstat") - before[i];
		for (unsigned i = 0; i < 2; i++)
			if (ran[i] > 4 * ran[!i])
				return i;
		cr_log_info("loop threads ran %ld and %ld ns: no clear winner", ran[0], ran[1]);
	}
	cr_assert_fail("cannot tell which loop serves the connection");
	return 0;
}

/*
 * A proxy with two loops, draining after SIGTERM, whose first loop (the main thread) has
 * stopped for want of connections while the second still holds one; returns that connection.
 * Every signal after this one must be read by the second loop.
 */
static int drain_on_loop_1_only(void)
{
	char *two_threads[] = { "--threads", "2", NULL };
	double deadline;
	unsigned redis;
	pid_t tids[2];
	int fd;

	redis = redis_start();
	proxy_start(&redis, 1, two_threads);
	tids[0] = loop_thread(0);
	tids[1] = loop_thread(1);
	cr_assert_gt(tids[1], 0, "no thread urpoll-proxy/1");
	/* The kernel's SO_REUSEPORT hash picks the loop: connect until loop 1 has one. */
	for (unsigned tries = 0;; tries++) {
		cr_assert_lt(tries, 64, "64 connections, none on loop 1");
		fd = connect_port(t.proxy_port);
		cr_assert_geq(fd, 0);
		if (serving_loop(fd, tids) == 1)
			break;
		close(fd);
	}
	cr_assert_eq(proxy_wait_counter("open", 1, START_S), 1ull, "loop 0 still holds connections");
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	/* Loop 0 has none: it stops, and the main thread waits in pthread_join() (futex). */
	for (deadline = now_s() + START_S; thread_number(tids[0], "syscall") != SYS_futex;
	     sleep_ms(10))
		cr_assert_lt(now_s(), deadline, "loop 0 did not stop after SIGTERM");
	cr_assert(ping(fd), "the connection on loop 1 does not work during the drain");
	return fd;
}

PROXY_TEST(proxy_signals, a_second_sigterm_stops_the_proxy_while_loop_1_drains)
{
	int fd;

	skip_without_io_uring();
	fd = drain_on_loop_1_only();
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert_eq(proc_wait_exit(t.proxy, 1.0), 0,
		     "a second SIGTERM did not stop the proxy within 1 s: %s", t.proxy->text);
	cr_assert(proc_wait_output(t.proxy, "exit: conns", 1.0), "%s", t.proxy->text);
	close(fd);
}

PROXY_TEST(proxy_signals, sigusr1_prints_the_stats_while_loop_1_drains)
{
	size_t before;
	int fd;

	skip_without_io_uring();
	fd = drain_on_loop_1_only();
	before = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGUSR1), 0);
	cr_assert(proc_wait_output_from(t.proxy, before, "stats: conns", 2.0),
		  "no stats line within 2 s of SIGUSR1 during the drain: %s", t.proxy->text);
	close(fd);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0, "%s", t.proxy->text);
}
