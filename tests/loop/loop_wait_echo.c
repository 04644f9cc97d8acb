// SPDX-License-Identifier: MIT
/*
 * loop_wait_echo: a thread-per-connection echo server on blocking waits (urp_io_wait), served by
 * a driver turning on its own thread (docs/threads.md): 50 connections, half on Unix sockets,
 * half on TCP over loopback, each served by a thread of its own that reads what is there, writes
 * it all back and waits whenever either side says EAGAIN; every byte comes back in order.
 */
#include <signal.h>

#include "loop_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_wait_echo, .init = setup, .timeout = 120);

#define NCONNS	   50
#define ECHO_BYTES (96 * 1024)

struct echo_conn {
	pthread_t thread;
	struct urp_io *io;
	int fd;	       /* server end, registered */
	int peer;      /* client end, driven by poll(2) on the test's thread */
	size_t echoed; /* server thread */
	int error;     /* server thread: first failure */
	char what[64];
	/* client side */
	size_t sent, received;
	bool eof, shut;
	unsigned rng;
};

static unsigned char echo_byte(int conn, size_t off)
{
	return (unsigned char)(off * 167u + (off >> 11) + (unsigned)conn * 29u + 1u);
}

static void echo_fail(struct echo_conn *c, int err, const char *what)
{
	if (!c->error) {
		c->error = err ? err : -1;
		snprintf(c->what, sizeof(c->what), "%s", what);
	}
}

/* The server: read what is there, write it all back, wait when either side says EAGAIN. */
static void *echo_server_main(void *arg)
{
	struct echo_conn *c = arg;
	char buf[4096];
	struct rw_op rd = {.fd = c->fd, .buf = buf, .len = sizeof(buf)};
	struct rw_op wr = {.fd = c->fd, .buf = buf};
	struct urp_event ev;
	size_t pending = 0;
	ssize_t n;
	int ret;

	for (;;) {
		if (pending) {
			n = urp_io_try_io(c->io, URP_WRITABLE, op_write, &wr);
			if (n > 0) {
				wr.buf += n;
				wr.len -= (size_t)n;
				pending -= (size_t)n;
				c->echoed += (size_t)n;
				continue;
			}
			if (n != -EAGAIN) {
				echo_fail(c, (int)n, "write");
				break;
			}
			ret = urp_io_wait(c->io, URP_WRITABLE, WAIT_MS, &ev);
			if (ret) {
				echo_fail(c, ret, "urp_io_wait(WRITABLE)");
				break;
			}
			continue;
		}
		n = urp_io_try_io(c->io, URP_READABLE, op_read, &rd);
		if (n > 0) {
			pending = (size_t)n;
			wr.buf = buf;
			wr.len = pending;
			continue;
		}
		if (n == 0) {
			/* The client half-closed: so do we, after everything went back. */
			if (shutdown(c->fd, SHUT_WR))
				echo_fail(c, -errno, "shutdown");
			break;
		}
		if (n != -EAGAIN) {
			echo_fail(c, (int)n, "read");
			break;
		}
		ret = urp_io_wait(c->io, URP_READABLE, WAIT_MS, &ev);
		if (ret) {
			echo_fail(c, ret, "urp_io_wait(READABLE)");
			break;
		}
	}
	return NULL;
}

/* The client side of one connection, one step: write a random-sized chunk, read what came. */
static void echo_client_step(struct echo_conn *c, int conn, short revents)
{
	unsigned char buf[8192];
	ssize_t n;

	if ((revents & POLLOUT) && c->sent < ECHO_BYTES) {
		size_t len;

		c->rng ^= c->rng << 13;
		c->rng ^= c->rng >> 17;
		c->rng ^= c->rng << 5;
		len = 1 + c->rng % sizeof(buf);
		if (len > ECHO_BYTES - c->sent)
			len = ECHO_BYTES - c->sent;
		for (size_t i = 0; i < len; i++)
			buf[i] = echo_byte(conn, c->sent + i);
		n = write(c->peer, buf, len);
		cr_assert(n > 0 || errno == EAGAIN, "conn %d: client write: %s", conn,
			  strerror(errno));
		if (n > 0)
			c->sent += (size_t)n;
	}
	if (c->sent == ECHO_BYTES && !c->shut) {
		cr_assert_eq(shutdown(c->peer, SHUT_WR), 0);
		c->shut = true;
	}
	if (revents & (POLLIN | POLLHUP)) {
		n = read(c->peer, buf, sizeof(buf));
		cr_assert(n >= 0 || errno == EAGAIN, "conn %d: client read: %s", conn,
			  strerror(errno));
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], echo_byte(conn, c->received + (size_t)i),
				     "conn %d: byte %zu came back as %#x, sent %#x", conn,
				     c->received + (size_t)i, buf[i],
				     echo_byte(conn, c->received + (size_t)i));
		if (n > 0)
			c->received += (size_t)n;
		if (n == 0)
			c->eof = true;
	}
}

Test(loop_wait_echo, thread_per_connection_echo_50_connections)
{
	struct urp_driver *d = spawn_or_fail();
	static struct echo_conn conns[NCONNS];
	struct pollfd pfd[NCONNS];
	double deadline;
	int open_conns = NCONNS;

	memset(conns, 0, sizeof(conns));
	for (int i = 0; i < NCONNS; i++) {
		struct echo_conn *c = &conns[i];
		int sv[2];

		/* Half on Unix sockets, half on TCP over loopback. */
		if (i % 2)
			tcp_pair(sv);
		else
			unix_pair(sv);
		c->fd = sv[1];
		c->peer = sv[0];
		c->rng = 0x2545f491u * (unsigned)(i + 1);
		c->io = reg_or_fail(d, c->fd, URP_READABLE | URP_WRITABLE);
		cr_assert_eq(pthread_create(&c->thread, NULL, echo_server_main, c), 0);
	}

	deadline = now_s() + 60;
	while (open_conns > 0) {
		int n;

		cr_assert_lt(now_s(), deadline, "echo not done after 60 s");
		for (int i = 0; i < NCONNS; i++) {
			struct echo_conn *c = &conns[i];

			pfd[i].fd = c->eof ? -1 : c->peer;
			pfd[i].events = (short)(POLLIN | (c->sent < ECHO_BYTES ? POLLOUT : 0));
			pfd[i].revents = 0;
		}
		n = poll(pfd, NCONNS, 1000);
		cr_assert_geq(n, 0, "poll: %s", strerror(errno));
		for (int i = 0; i < NCONNS; i++) {
			struct echo_conn *c = &conns[i];

			if (c->eof || !pfd[i].revents)
				continue;
			cr_assert_not(pfd[i].revents & (POLLERR | POLLNVAL), "conn %d: revents %#x",
				      i, pfd[i].revents);
			echo_client_step(c, i, pfd[i].revents);
			if (c->eof)
				open_conns--;
		}
	}

	for (int i = 0; i < NCONNS; i++) {
		struct echo_conn *c = &conns[i];

		cr_assert_eq(pthread_join(c->thread, NULL), 0);
		cr_assert_eq(c->error, 0, "conn %d: server %s: %d (%s)", i, c->what, c->error,
			     strerror(-c->error));
		cr_assert_eq(c->received, (size_t)ECHO_BYTES,
			     "conn %d: %zu bytes came back of %zu (server echoed %zu)", i,
			     c->received, (size_t)ECHO_BYTES, c->echoed);
		cr_assert_eq(c->echoed, (size_t)ECHO_BYTES);
		cr_assert_eq(urp_deregister(c->io), 0);
		close(c->fd);
		close(c->peer);
	}
	urp_driver_join(d);
}
