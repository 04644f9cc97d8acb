// SPDX-License-Identifier: MIT
/*
 * proxy_logs: urpoll-proxy's lines, end to end (the fixture: tests/lib/proxy_util.h). --log
 * writes one line per closed connection (time, client, backend, bytes each way, duration, how
 * it ended); the counters' lines carry the time (ISO 8601, UTC); SIGHUP is one line and no
 * harm.
 */
#include "proxy_util.h"

TestSuite(proxy_logs, .init = suite_init, .fini = cleanup, .timeout = 120);

/* The client address of fd as the proxy writes it: "127.0.0.1:PORT". */
static void local_text(int fd, char *buf, size_t size)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(buf, size, "127.0.0.1:%u", ntohs(a.sin_port));
}

/* The --log line of the client at fd (closed by the caller meanwhile), copied into line. */
static void close_line(const char *client, char *line, size_t size)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "close: client %s ", client);
	cr_assert(proxy_line(0, needle, START_S, line, size), "no line for %s: %s", client,
		  t.proxy->text);
	cr_assert(line_has_time(line), "no time: %s", line);
}

PROXY_TEST(proxy_logs, log_is_one_line_per_closed_connection)
{
	char *extra[] = { "--log", "--idle-timeout", "1", NULL };
	char client[3][32], line[512], want[128], byte;
	unsigned redis;
	int fd;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	/* A PING, then a clean close. */
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	local_text(fd, client[0], sizeof(client[0]));
	cr_assert(ping(fd));
	close(fd);
	close_line(client[0], line, sizeof(line));
	snprintf(want, sizeof(want), "backend 127.0.0.1:%u up 6 down 7 duration_ms ", redis);
	cr_assert_not_null(strstr(line, want), "%s", line);
	cr_assert_not_null(strstr(line, " retries 0 end closed"), "%s", line);
	/* Two PINGs, then quiet until the idle timeout. */
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	local_text(fd, client[1], sizeof(client[1]));
	cr_assert(ping(fd) && ping(fd));
	cr_assert_leq(read(fd, &byte, 1), 0);
	close(fd);
	close_line(client[1], line, sizeof(line));
	cr_assert_not_null(strstr(line, " up 12 down 14 "), "%s", line);
	cr_assert_not_null(strstr(line, " end idle-timeout"), "%s", line);
	/* A client that resets. */
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	local_text(fd, client[2], sizeof(client[2]));
	cr_assert(ping(fd));
	{
		struct linger rst = { .l_onoff = 1, .l_linger = 0 };

		cr_assert(write_all(fd, "PING\r\n", 6));
		sleep_ms(50); /* the answer is in our queue: the close resets */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(fd);
	}
	close_line(client[2], line, sizeof(line));
	/* ECONNRESET, or EPIPE should the reset meet the proxy's send. */
	cr_assert(strstr(line, " end client-error:ECONNRESET") ||
			  strstr(line, " end client-error:EPIPE"),
		  "%s", line);
	for (unsigned i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), "close: client %s ", client[i]);
		cr_assert_eq(proxy_count(0, want), 1u, "%s", t.proxy->text);
	}
}

PROXY_TEST(proxy_logs, a_client_turned_away_is_logged_as_no_backend)
{
	char *extra[] = { "--log", NULL }, client[32], line[512], byte;
	unsigned dead = free_port();
	int fd;

	skip_without_io_uring();
	proxy_start(&dead, 1, extra);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	local_text(fd, client, sizeof(client));
	cr_assert_eq(read(fd, &byte, 1), 0);
	close(fd);
	close_line(client, line, sizeof(line));
	cr_assert_not_null(strstr(line, " backend - up 0 down 0 "), "%s", line);
	cr_assert_not_null(strstr(line, " end no-backend"), "%s", line);
}

PROXY_TEST(proxy_logs, stats_lines_carry_an_iso_8601_utc_time)
{
	char *extra[] = { "--stats-interval", "1", NULL }, line[512];
	unsigned redis;
	size_t from;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	/* Every --stats-interval, */
	cr_assert(proxy_line(0, "stats: conns", START_S, line, sizeof(line)), "%s", t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
	/* on SIGUSR1, */
	from = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGUSR1), 0);
	cr_assert(proxy_line(from, "stats: conns", START_S, line, sizeof(line)), "%s",
		  t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
	/* and at exit. */
	from = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert(proxy_line(from, "exit: conns", START_S, line, sizeof(line)), "%s",
		  t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0);
}

PROXY_TEST(proxy_logs, sighup_is_one_line_and_no_harm)
{
	char line[512];
	unsigned redis;
	int fd;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	cr_assert_eq(kill(t.proxy->pid, SIGHUP), 0);
	cr_assert(proxy_line(0, "SIGHUP ignored: urpoll-proxy has no configuration to reload",
			     START_S, line, sizeof(line)),
		  "%s", t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
	cr_assert(ping(fd), "the open connection was harmed");
	close(fd);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd), "a new connection is not served");
	close(fd);
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0, "%s", t.proxy->text);
	cr_assert_eq(proxy_count(0, "SIGHUP"), 1u, "%s", t.proxy->text);
}
