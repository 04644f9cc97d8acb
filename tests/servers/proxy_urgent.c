// SPDX-License-Identifier: MIT
/*
 * proxy_urgent: urgent data through urpoll-proxy, end to end (the fixture:
 * tests/lib/proxy_util.h; docs/reliability.md). TCP ends a read at the urgent mark with the
 * bytes behind it still queued and no new poll completion for them; the proxy must not take
 * that short read for a drained queue, from the client's side nor from the backend's. The
 * proxy is frozen (SIGSTOP) while a burst lands, so that one completion reports it all.
 */
#include "proxy_util.h"

TestSuite(proxy_urgent, .init = suite_init, .fini = cleanup, .timeout = 120);

/* The local port of socket fd. */
static unsigned local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* Whether every thread of pid is stopped (SIGSTOP), from /proc/pid/task/TID/stat. */
static bool all_threads_stopped(pid_t pid)
{
	char stat[512], *state;
	pid_t tids[256];
	int n = task_ids(pid, tids, 256);

	cr_assert_geq(n, 0, "pid %d is gone", (int)pid);
	for (int i = 0; i < n; i++) {
		if (!task_line(pid, tids[i], "stat", stat, sizeof(stat)) ||
		    !(state = strrchr(stat, ')')))
			continue;
		if (state[2] != 'T' && state[2] != 't')
			return false;
	}
	return true;
}

/*
 * Freeze the proxy (SIGSTOP, returning once every thread is stopped) or let it go on. Bytes
 * sent while it is frozen all wait in one socket queue, and one completion reports them: what a
 * busy proxy sees when a burst lands between two of its turns.
 */
static void proxy_freeze(bool freeze)
{
	double deadline = now_s() + START_S;

	cr_assert_eq(kill(t.proxy->pid, freeze ? SIGSTOP : SIGCONT), 0);
	while (freeze && !all_threads_stopped(t.proxy->pid)) {
		cr_assert_lt(now_s(), deadline, "the proxy did not stop");
		sleep_ms(1);
	}
}

/* Wait until the socket local_port -> remote_port holds want unread bytes: they all landed. */
static void wait_rx_queue(unsigned local_port, unsigned remote_port, long want)
{
	double deadline = now_s() + START_S;
	long rx;

	while ((rx = tcp_rx_queue(local_port, remote_port)) < want) {
		cr_assert_lt(now_s(), deadline, "socket %u -> %u holds %ld bytes, not %ld",
			     local_port, remote_port, rx, want);
		sleep_ms(1);
	}
}

/* Read len bytes from fd within seconds; the count read (fewer: EOF, error or time-out). */
static size_t read_within(int fd, void *buf, size_t len, double seconds)
{
	double deadline = now_s() + seconds;
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - now_s();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* before, one urgent byte ('!', MSG_OOB), after: three sends, three segments. */
static void send_around_urgent_byte(int fd, const char *before, const char *after)
{
	if (*before)
		cr_assert_eq(send(fd, before, strlen(before), 0), (ssize_t)strlen(before));
	cr_assert_eq(send(fd, "!", 1, MSG_OOB), 1);
	if (*after)
		cr_assert_eq(send(fd, after, strlen(after), 0), (ssize_t)strlen(after));
}

/* In-band bytes around the urgent one: in the middle, at the start, at the end of a burst. */
static const char *const urgent_splits[][2] = {
	{ "PI", "NG\r\n" },
	{ "", "PING\r\n" },
	{ "PING\r\n", "" },
};

/*
 * TCP ends a read at the urgent mark with the bytes behind it still queued, and no new poll
 * completion comes for them: a proxy that takes that short read for a drained queue holds
 * them until the client sends more. The urgent byte itself is dropped (SO_OOBINLINE is off),
 * so redis sees PING, not PI!NG.
 */
PROXY_TEST(proxy_urgent, an_urgent_byte_from_the_client_strands_no_bytes_behind_it)
{
	unsigned redis;
	char reply[8];

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	for (unsigned i = 0; i < sizeof(urgent_splits) / sizeof(urgent_splits[0]); i++) {
		const char *before = urgent_splits[i][0], *after = urgent_splits[i][1];
		int fd = connect_port(t.proxy_port);
		size_t got;

		cr_assert_geq(fd, 0);
		/* The backend connection is up: the burst below waits in the proxy alone. */
		cr_assert(ping(fd));
		proxy_freeze(true);
		send_around_urgent_byte(fd, before, after);
		wait_rx_queue(t.proxy_port, local_port(fd),
			      (long)(strlen(before) + 1 + strlen(after)));
		proxy_freeze(false);
		got = read_within(fd, reply, 7, 2.0);
		cr_assert(got == 7 && !memcmp(reply, "+PONG\r\n", 7),
			  "\"%s\" <urgent> \"%s\": %zu bytes of +PONG within 2 s: %.*s", before,
			  after, got, (int)got, reply);
		cr_assert(ping(fd), "the connection is out of step after the urgent byte");
		close(fd);
	}
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

/* The pipes between the test and its urgent backend: commands in, reports out. */
struct urgent_pipes {
	int to_child[2], from_child[2];
};

static void serve_urgent(int lfd, void *arg)
{
	const struct urgent_pipes *up = arg;

	for (;;) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
		unsigned port;
		char cmd;

		if (fd < 0)
			continue;
		port = ntohs(peer.sin_port);
		if (write(up->from_child[1], &port, sizeof(port)) != sizeof(port))
			_exit(1);
		while (read(up->to_child[0], &cmd, 1) == 1 && cmd != 'c') {
			const char *before = urgent_splits[(unsigned char)cmd][0];
			const char *after = urgent_splits[(unsigned char)cmd][1];

			/* The same splits as the client's, the other way. */
			if (*before)
				send(fd, before, strlen(before), 0);
			send(fd, "!", 1, MSG_OOB);
			if (*after)
				send(fd, after, strlen(after), 0);
			if (write(up->from_child[1], "d", 1) != 1)
				_exit(1);
		}
		send(fd, ".", 1, 0);
		close(fd);
	}
}

/*
 * A backend that sends an urgent byte on command, one connection at a time. Per connection it
 * writes to *status the proxy's port of that connection (an unsigned), then reads a command
 * from *control: an index into urgent_splits (send its bytes around an urgent byte, then write
 * 'd' to *status), or 'c' (send "." and close).
 */
static unsigned urgent_backend_start(int *control, int *status)
{
	struct urgent_pipes up;
	unsigned port;

	cr_assert_eq(pipe2(up.to_child, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(up.from_child, O_CLOEXEC), 0);
	port = backend_fork(serve_urgent, &up);
	close(up.to_child[0]);
	close(up.from_child[1]);
	*control = up.to_child[1];
	*status = up.from_child[0];
	return port;
}

/* Read exactly len bytes of a child's status pipe within START_S. */
static void read_status(int fd, void *buf, size_t len)
{
	cr_assert_eq(read_within(fd, buf, len, START_S), len, "the test backend said nothing");
}

PROXY_TEST(proxy_urgent, an_urgent_byte_from_the_backend_strands_no_bytes_behind_it)
{
	unsigned backend, port;
	int control, status;
	char got[16], done;

	skip_without_io_uring();
	backend = urgent_backend_start(&control, &status);
	proxy_start(&backend, 1, NULL);
	/* The proxy's start-up probe of the backend: done with. */
	read_status(status, &port, sizeof(port));
	cr_assert_eq(write(control, "c", 1), 1);
	for (unsigned char i = 0; i < sizeof(urgent_splits) / sizeof(urgent_splits[0]); i++) {
		const char *before = urgent_splits[i][0], *after = urgent_splits[i][1];
		size_t want = strlen(before) + strlen(after), n;
		int fd = connect_port(t.proxy_port);

		cr_assert_geq(fd, 0);
		read_status(status, &port, sizeof(port));
		proxy_freeze(true);
		cr_assert_eq(write(control, &i, 1), 1);
		read_status(status, &done, 1);
		wait_rx_queue(port, backend, (long)want + 1);
		proxy_freeze(false);
		n = read_within(fd, got, want, 2.0);
		cr_assert(n == want && !memcmp(got, before, strlen(before)) &&
				  !memcmp(got + strlen(before), after, strlen(after)),
			  "\"%s\" <urgent> \"%s\": %zu of %zu bytes within 2 s: %.*s", before,
			  after, n, want, (int)n, got);
		/* Then "." and EOF: the urgent byte was not passed on. */
		cr_assert_eq(write(control, "c", 1), 1);
		n = read_within(fd, got, sizeof(got), START_S);
		cr_assert(n == 1 && got[0] == '.', "after the reply: %zu bytes: %.*s", n, (int)n,
			  got);
		close(fd);
	}
	close(control);
	close(status);
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}
