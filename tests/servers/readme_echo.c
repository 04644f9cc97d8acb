/* SPDX-License-Identifier: MIT */
/*
 * readme_echo: the echo server of README.md, compiled and run. The text between the README
 * markers is the README's code block, byte for byte, and a complete program on its own; here its
 * main() is renamed so that Criterion's runner keeps its own, and the test runs echo_serve() on
 * a thread with a listener on a free loopback port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define main readme_main
int readme_main(void);

/* README:begin */
#define _GNU_SOURCE 1 /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <urpoll.h>

struct conn { /* one task per connection */
	struct urp_task task;
	struct urp_io *io;
	int fd;
	bool eof;
	size_t off, len; /* buf[off..len) is still to be written back */
	char buf[16384];
};

/* The operation for try_io(): write back what is buffered, or read more. */
static ssize_t conn_io(void *arg)
{
	struct conn *c = arg;
	ssize_t n = c->off < c->len ? send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL)
				    : read(c->fd, c->buf, sizeof(c->buf));

	return n < 0 ? -errno : n;
}

/* Read, write it all back, repeat: nothing is read while bytes wait to go out (back-pressure).
 * try_io() clears the readiness it acted on when the call says EAGAIN; poll_ready() then stores
 * the task's waker, or finds the socket ready again already. */
static int conn_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct conn *c = arg;
	struct urp_event ev;
	ssize_t n;

	for (;;) {
		bool out = c->off < c->len;

		if (!out && c->eof) { /* the peer half-closed and has it all back: our FIN */
			shutdown(c->fd, SHUT_WR);
			break;
		}
		n = urp_io_try_io(c->io, out ? URP_WRITABLE : URP_READABLE, conn_io, c);
		if (n == -EAGAIN) {
			if (urp_io_poll_ready(c->io, out ? URP_DIR_WRITE : URP_DIR_READ, &waker,
					      &ev) < 0)
				return 0; /* run() again once the socket is ready */
		} else if (n < 0) {
			break; /* ECONNRESET, EPIPE, ...: close */
		} else if (out) {
			c->off += n;
		} else {
			c->off = 0;
			c->len = n;
			c->eof = n == 0;
		}
	}
	urp_io_clear_wakers(c->io);  /* nothing may wake a freed task */
	urp_deregister_close(c->io); /* the driver closes fd once its poll is gone */
	free(c);
	return URP_TASK_DONE;
}

struct listener {
	struct urp_task task;
	struct urp_loop *loop;
	struct urp_io *io;
	int fd;
};

static ssize_t do_accept(void *arg)
{
	int fd = accept4(((struct listener *)arg)->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int listener_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct listener *l = arg;
	struct urp_event ev;
	struct conn *c;
	ssize_t fd;

	for (;;) {
		fd = urp_io_try_io(l->io, URP_READABLE, do_accept, l);
		if (fd == -EAGAIN) {
			if (urp_io_poll_ready(l->io, URP_DIR_READ, &waker, &ev) < 0)
				return 0; /* run() again once a client waits */
		} else if (fd < 0) { /* EMFILE and friends: see tools/servers/echo/echo.c */
			if (fd != -ECONNABORTED)
				urp_loop_stop(l->loop);
			return 0;
		} else if (!(c = calloc(1, sizeof(*c))) ||
			   urp_register(urp_loop_driver(l->loop), fd, URP_READABLE | URP_WRITABLE,
					&c->io) < 0) {
			close(fd);
			free(c);
		} else {
			c->fd = fd;
			urp_task_init(&c->task, l->loop, conn_run, c);
			urp_task_wake(&c->task); /* its first run() */
		}
	}
}

/* Serve echo on listen_fd (listening, O_NONBLOCK) until urp_loop_stop(loop). */
static int echo_serve(struct urp_loop *loop, int listen_fd)
{
	struct listener l = { .loop = loop, .fd = listen_fd };
	int ret = urp_register(urp_loop_driver(loop), listen_fd, URP_READABLE, &l.io);

	if (ret < 0)
		return ret;
	urp_task_init(&l.task, loop, listener_run, &l);
	urp_task_wake(&l.task);
	ret = urp_loop_run(loop); /* this thread now turns the ring and runs the tasks */
	urp_io_clear_wakers(l.io);
	urp_deregister(l.io);
	return ret;
}

int main(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(7777),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ret;
	struct urp_loop *loop;

	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, SOMAXCONN)) {
		perror("echo: 127.0.0.1:7777");
		return 1;
	}
	ret = urp_loop_new(&loop, NULL);
	if (ret == 0) {
		ret = echo_serve(loop, fd);
		urp_loop_free(loop);
	}
	if (ret < 0)
		fprintf(stderr, "echo: %s\n", urp_strerror(ret));
	close(fd);
	return ret < 0;
}
/* README:end */

#undef main

struct server {
	struct urp_loop *loop;
	int fd;
	int ret;
};

static void *serve_thread(void *arg)
{
	struct server *s = arg;

	s->ret = echo_serve(s->loop, s->fd);
	return NULL;
}

TestSuite(readme_echo, .timeout = 30);

Test(readme_echo, serves_one_client, .timeout = 30)
{
	static const char msg[] = "hello through urpoll, twice over";
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	struct server s = { 0 };
	char got[sizeof(msg) * 2];
	size_t total = 0;
	pthread_t thread;
	int ret, fd;

	ret = urp_loop_new(&s.loop, NULL);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		cr_skip_test("missing prerequisite: io_uring (%s)", urp_strerror(ret));
	cr_assert_eq(ret, 0, "urp_loop_new: %s", urp_strerror(ret));
	s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(s.fd, 0);
	cr_assert_eq(bind(s.fd, (struct sockaddr *)&addr, len), 0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(s.fd, SOMAXCONN), 0);
	cr_assert_eq(getsockname(s.fd, (struct sockaddr *)&addr, &len), 0);
	cr_assert_eq(pthread_create(&thread, NULL, serve_thread, &s), 0);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, len), 0, "connect: %s",
		     strerror(errno));
	/* Two writes, then our FIN: everything must come back before the server's FIN. */
	cr_assert_eq(write(fd, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(write(fd, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		cr_assert_eq(poll(&p, 1, 10000), 1, "no echo or EOF within 10 s (%zu bytes)",
			     total);
		n = read(fd, got + total, sizeof(got) - total);
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;
		total += (size_t)n;
		cr_assert_leq(total, sizeof(got));
	}
	cr_assert_eq(total, sizeof(got), "%zu of %zu bytes came back", total, sizeof(got));
	cr_assert_eq(memcmp(got, msg, sizeof(msg)), 0);
	cr_assert_eq(memcmp(got + sizeof(msg), msg, sizeof(msg)), 0);
	close(fd);

	urp_loop_stop(s.loop);
	pthread_join(thread, NULL);
	cr_assert_eq(s.ret, 0, "echo_serve: %s", urp_strerror(s.ret));
	urp_loop_free(s.loop);
	close(s.fd);
}
