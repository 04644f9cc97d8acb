// SPDX-License-Identifier: MIT
/*
 * proxy_backends: urpoll-proxy's backends that come and go, end to end (the fixture:
 * tests/lib/proxy_util.h). A backend down at start-up is one timestamped line and gets no
 * client; real redis-servers killed and revived lose no client; a refused, timed-out or reset
 * connect marks its backend down and the client is served by the next one, its bytes replayed;
 * with every backend down, a new client reads a FIN and is counted; names (localhost) and
 * IPv6 literals resolve.
 */
#include "proxy_util.h"

TestSuite(proxy_backends, .init = suite_init, .fini = cleanup, .timeout = 120);

/* A client on a new connection: PING answered by +PONG, or the test fails naming i. */
static void client_pings(unsigned i)
{
	int fd = connect_port(t.proxy_port);

	cr_assert_geq(fd, 0, "client %u: connect: %s", i, strerror(-fd));
	cr_assert(ping(fd), "client %u: no +PONG (the proxy closed or reset it)", i);
	close(fd);
}

/* The tcp_port of the redis that answers INFO on a new connection through the proxy. */
static unsigned redis_behind_proxy(void)
{
	char reply[4096], *at = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = connect_port(t.proxy_port);

	cr_assert_geq(fd, 0);
	cr_assert(write_all(fd, "INFO server\r\n", 13));
	do {
		n = read(fd, reply + len, sizeof(reply) - 1 - len);
		cr_assert_gt(n, 0, "no INFO reply");
		len += (size_t)n;
		reply[len] = '\0';
		at = strstr(reply, "tcp_port:");
	} while (!at || !strstr(at, "\r\n"));
	close(fd);
	return (unsigned)strtoul(at + 9, NULL, 10);
}

/* Wait for the proxy's line "backend 127.0.0.1:PORT STATE" after offset from: it must carry
 * the time. Returns the offset just past it. */
static size_t wait_backend_line(size_t from, unsigned port, const char *state, double seconds)
{
	char needle[64], line[512];
	const char *at;

	snprintf(needle, sizeof(needle), "backend 127.0.0.1:%u %s", port, state);
	cr_assert(proxy_line(from, needle, seconds, line, sizeof(line)),
		  "no \"%s\" line within %.0f s: %s", needle, seconds, t.proxy->text + from);
	cr_assert(line_has_time(line), "no time at the start of: %s", line);
	at = strstr(t.proxy->text + from, needle);
	return (size_t)(at - t.proxy->text) + strlen(needle);
}

PROXY_TEST(proxy_backends, a_backend_down_at_start_is_one_timestamped_line_and_gets_no_client)
{
	unsigned ports[2];
	char needle[64];

	skip_without_io_uring();
	ports[0] = free_port(); /* nobody there: first in the round robin of loop 0 */
	ports[1] = redis_start();
	proxy_start(ports, 2, NULL);
	/* Said after the listening line, once the first check is over: already there. */
	wait_backend_line(0, ports[0], "down", 0.1);
	for (unsigned i = 0; i < 20; i++)
		client_pings(i);
	snprintf(needle, sizeof(needle), "backend 127.0.0.1:%u down", ports[0]);
	cr_assert_eq(proxy_count(0, needle), 1u, "%s", t.proxy->text);
	cr_assert_eq(proxy_counter("no_backend"), 0ull);
	cr_assert_eq(proxy_counter("retries"), 0ull, "a client was sent to the down backend");
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
	cr_assert_eq(proxy_counter("conns"), 20ull);
}

/*
 * Two redis-servers, each SIGKILLed then started again on its port, in turn: every client
 * connecting meanwhile is served (the first sent to a dead one is refused and retried on the
 * other), each change of state is one line with the time, and a revived backend gets clients
 * again.
 */
PROXY_TEST(proxy_backends, killing_and_reviving_backends_fails_no_client)
{
	char *extra[] = { "--check-interval", "1", NULL };
	struct proc *redis[2];
	unsigned ports[2], client = 0;
	size_t from = 0;

	skip_without_io_uring();
	for (unsigned i = 0; i < 2; i++) {
		ports[i] = free_port();
		redis[i] = redis_spawn(ports[i]);
	}
	proxy_start(ports, 2, extra);
	for (unsigned victim = 0; victim < 2; victim++) {
		bool seen[2] = { false, false };

		for (unsigned i = 0; i < 10; i++)
			client_pings(client++);
		proc_kill(redis[victim]);
		for (unsigned i = 0; i < 20; i++)
			client_pings(client++);
		from = wait_backend_line(from, ports[victim], "down", START_S);
		cr_assert_eq(redis_behind_proxy(), ports[!victim]);
		redis[victim] = redis_spawn(ports[victim]);
		from = wait_backend_line(from, ports[victim], "up", START_S);
		for (unsigned i = 0; i < 8; i++) {
			unsigned port = redis_behind_proxy();

			seen[port == ports[1]] = true;
		}
		cr_assert(seen[0] && seen[1], "round robin skips the revived backend");
	}
	for (unsigned i = 0; i < 2; i++) {
		char down[64], up[64];

		snprintf(down, sizeof(down), "backend 127.0.0.1:%u down", ports[i]);
		snprintf(up, sizeof(up), "backend 127.0.0.1:%u up", ports[i]);
		cr_assert_eq(proxy_count(0, down), 1u, "%s", t.proxy->text);
		cr_assert_eq(proxy_count(0, up), 1u, "%s", t.proxy->text);
	}
	cr_assert_eq(proxy_counter("no_backend"), 0ull);
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

/*
 * A backend that goes away while new clients keep coming, none of them mid-request on it (the
 * request in flight on a backend that dies is lost with it: proxy_limits): with --threads 2,
 * both loops find it down, and it is said once.
 */
PROXY_TEST(proxy_backends, new_clients_keep_being_served_while_a_backend_dies)
{
	char *extra[] = { "--threads", "2", "--check-interval", "1", NULL };
	struct hammer h = { .port = 0 };
	struct proc *victim;
	unsigned ports[2];
	char down[64];

	skip_without_io_uring();
	ports[0] = free_port();
	victim = redis_spawn(ports[0]);
	ports[1] = redis_start();
	proxy_start(ports, 2, extra);
	/* Stopped first, the victim answers nothing and reads nothing: the clients sent to it
	 * wait, connected (the kernel completes handshakes into its backlog) with their PING
	 * queued, so that no request is in its hands when it dies. */
	cr_assert_eq(kill(victim->pid, SIGSTOP), 0);
	hammer_start(&h, t.proxy_port);
	sleep_ms(200);
	proc_kill(victim);
	sleep_ms(500);
	hammer_stop(&h);
	/* Its death reset them before any byte came back: replayed to the other; the clients
	 * after them were refused by it, or never sent to it, once it was marked down. */
	cr_assert_eq(atomic_load(&h.failed), 0u, "%u of %u clients failed (last: %s)",
		     atomic_load(&h.failed), atomic_load(&h.served) + atomic_load(&h.failed),
		     strerror(h.last_error));
	cr_assert_gt(atomic_load(&h.served), 20u);
	wait_backend_line(0, ports[0], "down", START_S);
	snprintf(down, sizeof(down), "backend 127.0.0.1:%u down", ports[0]);
	cr_assert_eq(proxy_count(0, down), 1u, "%s", t.proxy->text);
	cr_assert_geq(proxy_counter("retries"), 1ull, "no client was sent to the stopped one");
}

PROXY_TEST(proxy_backends, with_every_backend_down_a_new_client_reads_a_fin_and_is_counted)
{
	char *extra[] = { "--check-interval", "1", NULL };
	unsigned dead = free_port();
	char byte;
	int fd;

	skip_without_io_uring();
	proxy_start(&dead, 1, extra);
	wait_backend_line(0, dead, "down", 0.1);
	for (unsigned i = 0; i < 3; i++) {
		fd = connect_port(t.proxy_port);
		cr_assert_geq(fd, 0);
		/* An end of file, not ECONNRESET. */
		cr_assert_eq(read(fd, &byte, 1), 0, "client %u: %s", i, strerror(errno));
		close(fd);
	}
	cr_assert_eq(proxy_counter("no_backend"), 3ull);
	cr_assert_eq(proxy_counter("conns"), 0ull);
	/* It comes back: the next client is served. */
	redis_spawn(dead);
	wait_backend_line(0, dead, "up", START_S);
	client_pings(0);
}

/*
 * A listener whose accept queue is full drops SYNs: a connect to it times out. The test fills
 * the queue of a backlog-0 listener once the proxy's first check has passed.
 */
PROXY_TEST(proxy_backends, a_connect_timeout_marks_the_backend_down_and_the_client_is_retried)
{
	char *extra[] = { "--connect-timeout", "1", "--check-interval", "60", NULL };
	struct sockaddr_in a;
	int hole = loopback_listener(&a, 0), filler;
	unsigned ports[2] = { ntohs(a.sin_port), 0 };
	char line[512], want[96];

	skip_without_io_uring();
	ports[1] = redis_start();
	proxy_start(ports, 2, extra);
	filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(filler, 0);
	connect(filler, (struct sockaddr *)&a, sizeof(a));
	sleep_ms(100);
	/* Loop 0 starts its round robin at the hole. */
	client_pings(0);
	snprintf(want, sizeof(want), "backend 127.0.0.1:%u down: connect timeout", ports[0]);
	cr_assert(proxy_line(0, want, 1.0, line, sizeof(line)), "%s", t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
	cr_assert_not_null(strstr(line, "timed out"), "%s", line);
	cr_assert_geq(proxy_counter("connect_errors"), 1ull);
	cr_assert_eq(proxy_counter("retries"), 1ull);
	close(filler);
	close(hole);
}

/* A backend that reads the request and resets: hangs up with SO_LINGER 0. */
static void serve_reset(int lfd, void *arg)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	char buf[256];

	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		if (read(fd, buf, sizeof(buf)) > 0) {
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			close(fd);
		} else {
			close(fd);
		}
	}
}

/* Whether fd has a byte to read within seconds. */
static bool readable_within(int fd, double seconds)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, (int)(seconds * 1000)) == 1;
}

/*
 * The task of a connection whose backend failed in mid-transfer used to return without waiting
 * for the next backend's connect: nothing woke it until the connect timer fired (60 s here),
 * so the answer must come well before.
 */
PROXY_TEST(proxy_backends, a_reset_before_any_data_is_retried_with_the_request_replayed)
{
	char *extra[] = { "--check-interval", "60", "--connect-timeout", "60", NULL };
	unsigned ports[2];
	char line[512], want[96], reply[8];
	int fd;

	skip_without_io_uring();
	ports[0] = backend_fork(serve_reset, NULL);
	ports[1] = redis_start();
	proxy_start(ports, 2, extra);
	/* Sent to the resetter first (loop 0's round robin), replayed to redis. */
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(write_all(fd, "PING\r\n", 6));
	cr_assert(readable_within(fd, 20.0), "no answer: the retry waits for a timer");
	cr_assert_eq(read_full(fd, reply, 7), 7u);
	cr_assert_eq(memcmp(reply, "+PONG\r\n", 7), 0, "the request was not replayed");
	cr_assert(ping(fd), "the connection does not go on with the next backend");
	close(fd);
	snprintf(want, sizeof(want), "backend 127.0.0.1:%u down: reset before any data",
		 ports[0]);
	cr_assert(proxy_line(0, want, 1.0, line, sizeof(line)), "%s", t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
	cr_assert_eq(proxy_counter("retries"), 1ull);
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

/* --backend localhost:PORT and [::1]:PORT: resolved at start-up, both served. */
PROXY_TEST(proxy_backends, localhost_and_ipv6_literals_resolve)
{
	char by_name[32], v6[32], *args[] = { "--listen", "127.0.0.1:0", "--backend", by_name,
					      "--backend", v6, NULL };
	unsigned ports[2];
	bool seen[2] = { false, false };

	skip_without_io_uring();
	ports[0] = redis_start();
	ports[1] = free_port();
	redis_spawn_on("::1", ports[1]);
	snprintf(by_name, sizeof(by_name), "localhost:%u", ports[0]);
	snprintf(v6, sizeof(v6), "[::1]:%u", ports[1]);
	proxy_start_args(args);
	for (unsigned i = 0; i < 8; i++)
		seen[redis_behind_proxy() == ports[1]] = true;
	cr_assert(seen[0] && seen[1], "not both backends served: %s", t.proxy->text);
	cr_assert_null(strstr(t.proxy->text, "down"), "%s", t.proxy->text);
}
