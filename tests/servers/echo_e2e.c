// SPDX-License-Identifier: MIT
/*
 * echo_e2e: urpoll-echo (tools/servers/echo/) end to end, run as a user runs it (the fixture:
 * tests/lib/echo_util.h): a thousand concurrent TCP connections and a hundred on a Unix socket
 * echoed byte for byte, two threads serving both, SIGTERM's exit and summary, IPv6 loopback, and
 * start-up errors. Back-pressure is echo_backpressure's, descriptors and limits echo_limits'.
 */
#include "echo_util.h"

TestSuite(echo_e2e, .init = suite_init, .fini = server_kill, .timeout = 60);

ECHO_TEST(echo_e2e, thousand_tcp_connections_echo_byte_for_byte)
{
	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	expect_all_echoed(&srv.tcp, 1000, 1);
	cr_assert_eq(wait_fds_back(BOUND_S), srv.baseline_fds,
		     "server descriptors after 1000 closed connections: %d, idle: %d",
		     count_fds(srv.pid), srv.baseline_fds);
	server_stop_ok();
}

ECHO_TEST(echo_e2e, hundred_unix_connections_echo_byte_for_byte)
{
	make_unix_path();
	server_start((const char *const[]){ "--unix", srv.unix_path, NULL });
	cr_assert(!srv.has_tcp, "--unix alone must not listen on TCP: %s", srv.text);
	expect_all_echoed(&srv.local, 100, 2);
	server_stop_ok();
	cr_assert_neq(access(srv.unix_path, F_OK), 0, "the socket file outlived the server");
}

/* Loop threads other than the main one: named "urpoll-echo/N" (sanitizers add threads). */
static int count_loop_threads(pid_t pid)
{
	char comm[32];
	pid_t tids[256];
	int n = task_ids(pid, tids, 256), loops = 0;

	cr_assert_geq(n, 0, "the server is gone");
	for (int i = 0; i < n; i++)
		loops += task_line(pid, tids[i], "comm", comm, sizeof(comm)) &&
			 !strncmp(comm, "urpoll-echo/", 12);
	return loops;
}

/* Two loops: one SO_REUSEPORT listener each on the TCP port, one Unix socket shared by both. */
ECHO_TEST(echo_e2e, two_threads_serve_tcp_and_unix)
{
	int loops;

	make_unix_path();
	server_start((const char *const[]){ "--listen", "127.0.0.1:0", "--unix", srv.unix_path,
					    "--threads", "2", NULL });
	cr_assert(srv.has_tcp && srv.has_unix, "%s", srv.text);
	loops = count_loop_threads(srv.pid);
	cr_assert_eq(loops, 1, "--threads 2 runs %d loop threads besides the main one", loops);
	expect_all_echoed(&srv.tcp, 600, 3);
	expect_all_echoed(&srv.local, 200, 4);
	cr_assert_eq(wait_fds_back(BOUND_S), srv.baseline_fds);
	server_stop_ok();
}

ECHO_TEST(echo_e2e, sigterm_exits_0_with_a_summary)
{
	unsigned long long conns, bytes, shed;
	struct client_stats cs;

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	cs = run_clients(&srv.tcp, 50, 5, &quick_clients);
	cr_assert_eq(cs.verified, 50, "first failure: %s", cs.first_failure);
	server_stop_ok();
	summary_counts(&conns, &bytes, &shed);
	cr_assert_eq(shed, 0, "summary: %s", srv.text);
	/* The round trip of server_start() is one more connection, 4 more bytes. */
	cr_assert_eq(conns, 51, "summary: %s", srv.text);
	cr_assert_eq(bytes, cs.bytes + 4, "summary: %s", srv.text);
	cr_assert(strstr(srv.text, " events, ") && strstr(srv.text, " stale rejections, ") &&
			  strstr(srv.text, " wake batches"),
		  "summary: %s", srv.text);
}

ECHO_TEST(echo_e2e, ipv6_loopback)
{
	struct sockaddr_in6 probe = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&probe, sizeof(probe)) < 0)
		cr_skip_test("missing prerequisite: IPv6 loopback (::1): %s", strerror(errno));
	close(fd);
	server_start((const char *const[]){ "--listen", "[::1]:0", NULL });
	cr_assert(strstr(srv.text, "listening on tcp [::1]:"), "%s", srv.text);
	expect_all_echoed(&srv.tcp, 100, 8);
	server_stop_ok();
}

/* Start-up errors: one line on stderr, a non-zero status, nothing left running. */
static void expect_startup_error(const char *const *args, int want_status, const char *want)
{
	char err[1024];
	ssize_t n = 0, r;
	int status;

	server_spawn(args, 0, true);
	cr_assert_eq(waitpid(srv.pid, &status, 0), srv.pid);
	srv.pid = -1;
	while (n < (ssize_t)sizeof(err) - 1 &&
	       (r = read(srv.err, err + n, sizeof(err) - 1 - (size_t)n)) > 0)
		n += r;
	err[n < 0 ? 0 : n] = '\0';
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == want_status,
		  "status %#x, want exit %d; stderr: %s", status, want_status, err);
	cr_assert(strstr(err, want), "stderr lacks \"%s\": %s", want, err);
	cr_assert(n > 0 && err[n - 1] == '\n' && !memchr(err, '\n', (size_t)n - 1),
		  "want exactly one line on stderr: %s", err);
	close(srv.out);
	close(srv.err);
	srv.out = srv.err = -1;
}

ECHO_TEST(echo_e2e, startup_errors_are_one_line_and_nonzero)
{
	struct sockaddr_in a;
	char spec[64];
	int fd;

	expect_startup_error((const char *const[]){ "--listen", "localhost", NULL }, 2,
			     "bad address");
	expect_startup_error((const char *const[]){ "--listen", "127.0.0.1:99999", NULL }, 2,
			     "bad address");
	expect_startup_error((const char *const[]){ "--threads", "0", NULL }, 2, "--threads");
	expect_startup_error((const char *const[]){ "--bogus", NULL }, 2, "unknown option");

	/* A port someone else listens on, with one loop and with SO_REUSEPORT loops. */
	fd = loopback_listener(&a, 1);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(a.sin_port));
	expect_startup_error((const char *const[]){ "--listen", spec, NULL }, 1, "in use");
	expect_startup_error((const char *const[]){ "--listen", spec, "--threads", "3", NULL }, 1,
			     "in use");
	close(fd);
}
