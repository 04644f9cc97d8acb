/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workloads `churn-reg` and `churn-conn`, written once on struct bench_backend.
 *
 * churn-reg: 1024 eventfds, each watched for BENCH_IN (never readable: no callback runs).
 * Operation i takes eventfd i mod 1024, deletes its watch and adds a new one, and every M
 * operations the loop runs once without blocking (run_once(loop, 0)), as a server's loop turns
 * between the accepts and closes it handles; the last partial batch is run too. So each watch
 * deleted is one that was really armed, M/1024 of the way through its 1024/M turns of life.
 * Unit: one registration = one del of a watched fd plus one add of it. For urpoll the M
 * registrations and M deregistrations of a batch go to the kernel in the turn's submission; for
 * epoll each is its own epoll_ctl.
 *
 * churn-conn: accept -> read one 64-byte request -> write a 64-byte reply -> close, over
 * loopback TCP. The server is the backend's loop on the calling thread: the listener is
 * watched, each accepted connection is added, served once and deleted with close_fd. The
 * client is a separate thread with its own plain epoll loop keeping C connections in flight
 * (non-blocking connect, write the request, read the reply, close, open the next), the same code
 * whatever the backend, so that only the server side changes between backends and its CPU time
 * (server_cpu_ns, the serving thread's own) holds no client work. Unit: one connection served.
 * The latency is the client's, from connect() to the whole reply read. The client counts the
 * syscalls it makes and they are taken out of the count, which is then the server's (the
 * client thread's start and end, a handful per run, stay in). On a backend that does the I/O
 * (urpoll-ring) the server takes the request and queues the reply instead of reading and
 * writing, and closes once the reply is out.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define CHURN_FDS     1024
#define CONN_MSG      64
#define CONN_BACKLOG  1024
/* The server loop's wait bound, so a dead client cannot hold it for ever. */
#define CONN_WAIT_MS  1000
#define CLIENT_EVENTS 64

/* ---- churn-reg ---- */

static void reg_cb(void *arg, unsigned events)
{
	uint64_t *calls = arg;

	(*calls)++;
}

static int churn_reg(enum backend be, unsigned batch, uint64_t events, struct run_result *res)
{
	const struct bench_backend *b = bench_backends[be];
	struct bench_watch *w[CHURN_FDS] = { NULL };
	int fds[CHURN_FDS];
	struct bench_loop *lp;
	struct run_clock clk;
	uint64_t i, calls = 0;
	unsigned j;
	int ret;

	/* A backend that does the I/O: its readiness loop is another's (bench.h). */
	if (!b || b->stream)
		return -EOPNOTSUPP;
	for (j = 0; j < CHURN_FDS; j++)
		fds[j] = -1;
	ret = b->open(&lp, CHURN_FDS);
	if (ret < 0)
		return bench_fail(ret, "churn-reg: open");
	for (j = 0; j < CHURN_FDS; j++) {
		fds[j] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fds[j] < 0) {
			ret = bench_fail(-errno, "churn-reg: eventfd");
			goto out_del;
		}
		ret = b->add(lp, fds[j], BENCH_IN, reg_cb, &calls, &w[j]);
		if (ret < 0) {
			w[j] = NULL;
			bench_fail(ret, "churn-reg: add");
			goto out_del;
		}
	}
	ret = run_clock_arm(&clk, b, lp);
	if (ret < 0)
		goto out_del;
	for (i = 0; i < events; i++) {
		j = (unsigned)(i % CHURN_FDS);
		ret = b->del(lp, w[j], false);
		if (ret >= 0)
			ret = b->add(lp, fds[j], BENCH_IN, reg_cb, &calls, &w[j]);
		if (ret < 0) {
			/* The old watch is released even when del fails; no new one. */
			w[j] = NULL;
			bench_fail(ret, "churn-reg: del/add");
			goto out_del;
		}
		if ((i + 1) % batch == 0 || i + 1 == events) {
			ret = b->run_once(lp, 0);
			if (ret < 0) {
				bench_fail(ret, "churn-reg: run_once");
				goto out_del;
			}
		}
	}
	run_clock_stop_loop(&clk, res, events);
	ret = calls ? bench_fail(-EPROTO, "churn-reg: a never-readable eventfd was called") : 0;

out_del:
	for (j = 0; j < CHURN_FDS; j++)
		if (w[j])
			b->del(lp, w[j], false);
	b->close(lp);
	close_fds(fds, CHURN_FDS);
	return ret;
}

/* ---- churn-conn: the server, on the backend ---- */

struct conn_server;

struct conn {
	struct conn_server *srv;
	struct bench_watch *w;
	int fd;
	unsigned got;
	bool replied; /* a backend that does the I/O: the reply is queued */
	char buf[CONN_MSG];
};

struct conn_server {
	const struct bench_backend *b;
	struct bench_loop *lp;
	int lfd;
	uint64_t served, target;
	int err;
};

static void conn_close(struct conn *c)
{
	c->srv->b->del(c->srv->lp, c->w, true);
	free(c);
}

static void conn_cb(void *arg, unsigned events)
{
	struct conn *c = arg;
	struct conn_server *srv = c->srv;
	ssize_t n;

	for (;;) {
		n = read(c->fd, c->buf + c->got, sizeof(c->buf) - c->got);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			srv->err = bench_fail(n ? -errno : -ECONNRESET, "churn-conn: request read");
			conn_close(c);
			return;
		}
		c->got += (unsigned)n;
		if (c->got == sizeof(c->buf))
			break;
	}
	/* The reply fits any socket buffer: one write. */
	n = write(c->fd, c->buf, sizeof(c->buf));
	if (n != (ssize_t)sizeof(c->buf))
		srv->err = bench_fail(n < 0 ? -errno : -EIO, "churn-conn: reply write");
	else
		srv->served++;
	conn_close(c);
}

/*
 * conn_cb() on a backend that does the I/O: take the request (a buffer that holds all of it is
 * the reply, sent back as it is, without a copy), then close once the reply is out: BENCH_OUT
 * comes when the send queue empties, and a close drops what is still queued.
 */
static void conn_stream_cb(void *arg, unsigned events)
{
	struct conn *c = arg;
	struct conn_server *srv = c->srv;
	const struct bench_stream *io = srv->b->stream;
	struct bench_rx rx;
	int ret;

	while (!c->replied) {
		ret = io->take(c->w, &rx);
		if (ret == -EAGAIN)
			return;
		if (ret <= 0) {
			srv->err = bench_fail(ret ? ret : -ECONNRESET, "churn-conn: request take");
			conn_close(c);
			return;
		}
		if (c->got == 0 && rx.len == sizeof(c->buf)) {
			ret = io->send_rx(c->w, &rx);
			if (ret < 0)
				io->release(&rx);
		} else if (rx.len > sizeof(c->buf) - c->got) {
			io->release(&rx);
			ret = -EPROTO;
		} else {
			memcpy(c->buf + c->got, rx.data, rx.len);
			c->got += (unsigned)rx.len;
			io->release(&rx);
			if (c->got < sizeof(c->buf))
				continue;
			ret = io->send(c->w, c->buf, sizeof(c->buf));
		}
		if (ret < 0) {
			srv->err = bench_fail(ret, "churn-conn: reply send");
			conn_close(c);
			return;
		}
		c->replied = true;
	}
	if (io->queued(c->w) == 0) {
		srv->served++;
		conn_close(c);
	}
}

static void listen_cb(void *arg, unsigned events)
{
	struct conn_server *srv = arg;
	struct conn *c;
	int fd, ret;

	for (;;) {
		fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN)
				return;
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			srv->err = bench_fail(-errno, "churn-conn: accept4");
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			srv->err = bench_fail(-ENOMEM, "churn-conn: connection");
			return;
		}
		c->srv = srv;
		c->fd = fd;
		if (srv->b->stream)
			ret = srv->b->add(srv->lp, fd, BENCH_IN | BENCH_OUT | BENCH_STREAM,
					  conn_stream_cb, c, &c->w);
		else
			ret = srv->b->add(srv->lp, fd, BENCH_IN, conn_cb, c, &c->w);
		if (ret < 0) {
			close(fd);
			free(c);
			srv->err = bench_fail(ret, "churn-conn: add");
			return;
		}
	}
}

/* ---- churn-conn: the client, plain epoll on its own thread ---- */

struct conn_client {
	struct sockaddr_in addr;
	unsigned inflight;
	uint64_t target, started, completed;
	struct hist *lat;
	uint64_t syscalls; /* the client's, taken out of the count: the server's are wanted */
	int ep;
	int err; /* read by the server thread after join, or as a stop flag */
};

struct client_conn {
	int fd;
	bool sent;
	unsigned got;
	uint64_t t0;
};

static int client_open(struct conn_client *cl, struct client_conn *cc)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = cc };

	cc->t0 = now_ns();
	/* socket, setsockopt, connect; then epoll_ctl. */
	cl->syscalls += 4;
	cc->fd = bench_connect(&cl->addr, true);
	if (cc->fd < 0)
		return bench_fail(cc->fd, "churn-conn: client connect");
	cc->sent = false;
	cc->got = 0;
	cl->started++;
	if (epoll_ctl(cl->ep, EPOLL_CTL_ADD, cc->fd, &ev) < 0)
		return bench_fail(-errno, "churn-conn: client epoll_ctl");
	return 0;
}

/* Advance one connection; 1 when it completed. */
static int client_step(struct conn_client *cl, struct client_conn *cc)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = cc };
	char buf[CONN_MSG] = { 0 };
	ssize_t n;

	if (!cc->sent) {
		/* Writable after a non-blocking connect: connected, or failed. */
		n = write(cc->fd, buf, sizeof(buf));
		/* With the epoll_ctl below. */
		cl->syscalls += 2;
		if (n != (ssize_t)sizeof(buf))
			return bench_fail(n < 0 ? -errno : -EIO, "churn-conn: client write");
		cc->sent = true;
		if (epoll_ctl(cl->ep, EPOLL_CTL_MOD, cc->fd, &ev) < 0)
			return bench_fail(-errno, "churn-conn: client epoll_ctl");
		return 0;
	}
	n = read(cc->fd, buf, sizeof(buf) - cc->got);
	cl->syscalls++;
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0)
		return bench_fail(n ? -errno : -ECONNRESET, "churn-conn: client read");
	cc->got += (unsigned)n;
	if (cc->got < sizeof(buf))
		return 0;
	if (cl->lat)
		hist_add(cl->lat, now_ns() - cc->t0);
	close(cc->fd);
	cl->syscalls++;
	cc->fd = -1;
	cl->completed++;
	return 1;
}

static void *client_main(void *arg)
{
	struct conn_client *cl = arg;
	struct epoll_event evs[CLIENT_EVENTS];
	struct client_conn *conns;
	unsigned i;
	int n, ret = 0;

	conns = calloc(cl->inflight, sizeof(*conns));
	if (!conns) {
		__atomic_store_n(&cl->err, -ENOMEM, __ATOMIC_RELEASE);
		return NULL;
	}
	for (i = 0; i < cl->inflight; i++)
		conns[i].fd = -1;
	for (i = 0; i < cl->inflight && cl->started < cl->target && !ret; i++)
		ret = client_open(cl, &conns[i]);
	while (!ret && cl->completed < cl->target) {
		/* Pairs with the server's release store of err when it gives up. */
		if (__atomic_load_n(&cl->err, __ATOMIC_ACQUIRE))
			break;
		n = epoll_wait(cl->ep, evs, CLIENT_EVENTS, CONN_WAIT_MS);
		cl->syscalls++;
		if (n < 0 && errno != EINTR) {
			ret = bench_fail(-errno, "churn-conn: client epoll_wait");
			break;
		}
		for (i = 0; i < (unsigned)(n > 0 ? n : 0) && !ret; i++) {
			struct client_conn *cc = evs[i].data.ptr;

			ret = client_step(cl, cc);
			if (ret == 1)
				ret = cl->started < cl->target ? client_open(cl, cc) : 0;
		}
	}
	for (i = 0; i < cl->inflight; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	free(conns);
	if (ret < 0)
		__atomic_store_n(&cl->err, ret, __ATOMIC_RELEASE);
	return NULL;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int churn_conn(enum backend be, unsigned inflight, uint64_t events, struct run_result *res)
{
	struct conn_server srv = { .b = bench_backends[be], .target = events };
	struct conn_client cl = { .inflight = inflight, .target = events, .lat = res->lat };
	struct bench_watch *lw;
	struct run_clock clk;
	uint64_t cpu0;
	pthread_t client;
	int ret;

	if (!srv.b)
		return -EOPNOTSUPP;
	srv.lfd = bench_listen(&cl.addr, CONN_BACKLOG);
	if (srv.lfd < 0)
		return bench_fail(srv.lfd, "churn-conn: listen");
	ret = bench_nonblock(srv.lfd);
	if (ret < 0)
		goto out_close_listener;
	cl.ep = epoll_create1(EPOLL_CLOEXEC);
	if (cl.ep < 0) {
		ret = bench_fail(-errno, "churn-conn: client epoll_create1");
		goto out_close_listener;
	}
	/* Room for the connections in flight and the ones whose close is still pending. */
	ret = srv.b->open(&srv.lp, 2 * inflight + 64);
	if (ret < 0) {
		bench_fail(ret, "churn-conn: open");
		goto out_close_ep;
	}
	ret = srv.b->add(srv.lp, srv.lfd, BENCH_IN, listen_cb, &srv, &lw);
	if (ret < 0) {
		bench_fail(ret, "churn-conn: add listener");
		goto out_close_loop;
	}

	run_clock_start_loop(&clk, srv.b, srv.lp);
	cpu0 = thread_cpu_ns();
	ret = pthread_create(&client, NULL, client_main, &cl);
	if (ret) {
		ret = bench_fail(-ret, "churn-conn: client thread");
		goto out_del_listener;
	}
	while (srv.served < events && !srv.err) {
		ret = srv.b->run_once(srv.lp, CONN_WAIT_MS);
		if (ret < 0) {
			srv.err = bench_fail(ret, "churn-conn: run_once");
			break;
		}
		/* Pairs with the client's release store of err. */
		if (__atomic_load_n(&cl.err, __ATOMIC_ACQUIRE))
			break;
	}
	res->server_cpu_ns = thread_cpu_ns() - cpu0;
	if (srv.err)
		__atomic_store_n(&cl.err, srv.err, __ATOMIC_RELEASE);
	pthread_join(client, NULL);
	run_clock_stop_loop(&clk, res, srv.served);
	if (res->syscalls >= cl.syscalls)
		res->syscalls -= cl.syscalls;
	res->bytes = 2 * CONN_MSG * srv.served;
	ret = srv.err ? srv.err : cl.err;

out_del_listener:
	srv.b->del(srv.lp, lw, false);
out_close_loop:
	/* Frees the watches of connections still open after an error. */
	srv.b->close(srv.lp);
out_close_ep:
	close(cl.ep);
out_close_listener:
	close(srv.lfd);
	return ret;
}

const struct workload wl_churn[] = {
	{
		.name = "churn-reg",
		.what = "del + add of a watched eventfd (pool of 1024), a non-blocking run_once "
			"every M of them: registrations per second",
		.unit = "registration",
		.param_name = "M",
		.params = { 1, 16, 256 },
		.nparams = 3,
		.events_full = 2000000,
		.events_quick = 200000,
		.events_smoke = 2000,
		.run = churn_reg,
		.metric = METRIC_UNITS_PER_S,
	},
	{
		.name = "churn-conn",
		.what = "TCP loopback accept, one 64 B request and reply, close; client thread "
			"(plain epoll) keeps C in flight: connections per second",
		.unit = "connection",
		.param_name = "C",
		.params = { 1, 16, 64 },
		.nparams = 3,
		.events_full = 50000,
		.events_quick = 5000,
		.events_smoke = 100,
		.run = churn_conn,
		.metric = METRIC_UNITS_PER_S,
	},
};
const unsigned wl_churn_count = sizeof(wl_churn) / sizeof(wl_churn[0]);
