// SPDX-License-Identifier: MIT
/*
 * echo_limits: urpoll-echo's descriptors and limits, end to end (the fixture:
 * tests/lib/echo_util.h). Every way a connection can end gives its descriptor back;
 * --max-conns holds the rest in the backlog, across two loops; out of descriptors (EMFILE) the
 * server sheds without spinning and recovers.
 */
#include "echo_util.h"

TestSuite(echo_limits, .init = suite_init, .fini = server_kill, .timeout = 60);

/*
 * Every way a connection can end gives its descriptor back: half-close, full close without
 * reading, reset with data unread on either side, connect-and-go.
 */
ECHO_TEST(echo_limits, descriptors_return_to_idle_after_every_kind_of_close)
{
	static char junk[256 * 1024];
	int fds[300];
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	int n;

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	for (int i = 0; i < 300; i++) {
		fds[i] = connect_to(&srv.tcp, true);
		if (i % 3 != 2)
			send(fds[i], junk, i % 3 ? sizeof(junk) : 100, MSG_NOSIGNAL);
	}
	/* Let the server take them all, then go: RST (with unread echo), close, close. */
	usleep(200000);
	for (int i = 0; i < 300; i++) {
		if (i % 3 == 1)
			setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(fds[i]);
	}
	expect_all_echoed(&srv.tcp, 200, 6);
	n = wait_fds_back(BOUND_S);
	cr_assert_eq(n, srv.baseline_fds, "server descriptors: %d, idle: %d", n,
		     srv.baseline_fds);
	server_stop_ok();
}

/*
 * Beyond --max-conns, clients wait in the backlog until a connection closes. Two loops: the
 * count is the process's, and a close on one loop resumes a listener paused on the other.
 */
ECHO_TEST(echo_limits, max_conns_holds_the_rest_in_the_backlog)
{
	int held[3], waiting[3], most = 0;
	char buf[8];

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", "--max-conns", "3",
					    "--threads", "2", NULL });
	for (int i = 0; i < 3; i++) {
		held[i] = connect_to(&srv.tcp, false);
		cr_assert_eq(write(held[i], "h", 1), 1);
		struct pollfd p = { .fd = held[i], .events = POLLIN };

		cr_assert(poll(&p, 1, (int)(BOUND_S * 1000)) == 1 && read(held[i], buf, 1) == 1,
			  "held connection %d not served", i);
	}
	for (int i = 0; i < 3; i++) {
		waiting[i] = connect_to(&srv.tcp, false);
		cr_assert_eq(write(waiting[i], "w", 1), 1);
		shutdown(waiting[i], SHUT_WR);
	}
	/* Settle: none of them may be served while three are open. */
	for (int i = 0; i < 3; i++) {
		struct pollfd p = { .fd = waiting[i], .events = POLLIN };

		cr_assert_eq(poll(&p, 1, i ? 50 : 300), 0,
			     "connection %d served beyond --max-conns 3", i);
	}
	most = count_fds(srv.pid);
	cr_assert_eq(most, srv.baseline_fds + 3, "server descriptors: %d, idle %d + 3", most,
		     srv.baseline_fds);
	for (int i = 0; i < 3; i++)
		close(held[i]);
	for (int i = 0; i < 3; i++) {
		ssize_t n = read_to_eof(waiting[i], buf, sizeof(buf), BOUND_S);

		cr_assert_eq(n, 1, "waiting connection %d: %zd", i, n);
		cr_assert_eq(buf[0], 'w');
		close(waiting[i]);
	}
	server_stop_ok();
}

/*
 * Out of descriptors (EMFILE, a 32-descriptor limit): the server sheds what it cannot take
 * (those clients see the connection closed at once), serves what it holds, does not spin, and
 * serves new clients once descriptors are free again.
 */
ECHO_TEST(echo_limits, emfile_sheds_without_spinning_and_recovers)
{
	enum { N = 40 };
	int fds[N], served = 0, shed = 0;
	unsigned long long conns, bytes, shed_counted;
	long ticks_before, ticks_after;
	char stat[1024], path[64];
	FILE *f;

	skip_without_io_uring();
	server_spawn((const char *const[]){ "--listen", "127.0.0.1:0", NULL }, 32, false);
	cr_assert(server_wait_output("listening on tcp", START_S), "%s", srv.text);
	server_parse_addresses();
	srv.baseline_fds = count_fds(srv.pid);
	for (int i = 0; i < N; i++)
		fds[i] = connect_to(&srv.tcp, false);
	usleep(300000);

	/* CPU time (utime + stime, in ticks) over a quiet half second: a spinning accept loop
	 * would burn all of it. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)srv.pid);
#define READ_TICKS(out)                                                                            \
	do {                                                                                       \
		unsigned long ut, st;                                                              \
		f = fopen(path, "r");                                                              \
		cr_assert_not_null(f);                                                             \
		cr_assert_not_null(fgets(stat, sizeof(stat), f));                                  \
		fclose(f);                                                                         \
		cr_assert_eq(sscanf(strrchr(stat, ')') + 2,                                        \
				    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,    \
				    &st),                                                          \
			     2);                                                                   \
		out = (long)(ut + st);                                                             \
	} while (0)
	READ_TICKS(ticks_before);
	usleep(500000);
	READ_TICKS(ticks_after);
	cr_assert_lt(ticks_after - ticks_before, sysconf(_SC_CLK_TCK) / 4,
		     "the server used %ld ticks of CPU in 0.5 s while out of descriptors",
		     ticks_after - ticks_before);

	for (int i = 0; i < N; i++) {
		char buf[8];
		ssize_t n;

		send(fds[i], "e", 1, MSG_NOSIGNAL);
		shutdown(fds[i], SHUT_WR);
		n = read_to_eof(fds[i], buf, sizeof(buf), BOUND_S);
		if (n == 1 && buf[0] == 'e')
			served++;
		else if (n == 0 || n == -ECONNRESET)
			shed++;
		else
			cr_assert_fail("connection %d: %zd", i, n);
		close(fds[i]);
	}
	cr_log_info("%d served, %d shed", served, shed);
	cr_assert_gt(served, 0);
	cr_assert_gt(shed, 0, "all %d connections served under a 32-descriptor limit?", N);
	cr_assert_eq(wait_fds_back(BOUND_S), srv.baseline_fds);
	expect_all_echoed(&srv.tcp, 10, 7);
	server_stop_ok();
	summary_counts(&conns, &bytes, &shed_counted);
	cr_assert_geq(conns, (unsigned long long)served + 10, "%s", srv.text);
	cr_assert_geq(shed_counted, (unsigned long long)shed, "%s", srv.text);
}
