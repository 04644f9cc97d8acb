/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: a TCP proxy on the urpoll task loop.
 *
 * N loops, one per thread, each with its own ring and its own SO_REUSEPORT listener (the
 * layout of docs/threads.md). A client accepted on a loop gets its backend connection on the
 * same loop, and one task moves both directions through two bounded buffers: a full buffer
 * stops the reading of its source, so the kernel's queues and the TCP window push back on the
 * sender. A FIN is passed on once its direction's buffer is flushed; an error on either side
 * closes both. A timerfd per loop ticks every TICK_MS for the connect and idle timeouts, the
 * drain, and --stats-interval.
 *
 *   urpoll-proxy --listen ADDR:PORT --backend ADDR:PORT [--backend ...] [--threads N]
 *                [--max-conns N] [--idle-timeout SEC] [--connect-timeout SEC]
 *                [--stats-interval SEC] [-q]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <urpoll.h>

#include "../acceptor.h"
#include "../net.h"
#include "../server.h"

#define PROG "urpoll-proxy"

/* Bytes held per direction and connection: the most a connection ever buffers is twice this.
 * HAProxy's default tune.bufsize is the same. */
#define XFER_BUF     16384
/* Rounds of a connection task before it lets the others run. */
#define CONN_BUDGET  64
#define TICK_MS	     250
#define TICKS_PER_S  (1000 / TICK_MS)
#define MAX_THREADS  256
#define MAX_BACKENDS 64
/* After SIGINT or SIGTERM, open connections get this long to finish (a second signal: none). */
#define DRAIN_S	     10

/* One direction: bytes read from its source, not yet written to its sink: data[head..tail). */
struct xfer {
	char *data; /* XFER_BUF bytes, in the connection */
	size_t head, tail;
	bool eof;  /* the source sent its FIN */
	bool shut; /* and we passed it on to the sink */
};

struct end {
	int fd;
	struct urp_io *io;
	bool inq; /* TCP_INQ is on: each read says how many bytes it left queued */
};

struct conn {
	struct urp_task task;
	struct worker *worker;
	struct conn *prev, *next; /* the worker's open connections */
	struct end client, backend;
	uint32_t since;	  /* tick of the last progress (or of the connect) */
	bool connecting;  /* the backend's connect() is in flight */
	bool expired;	  /* set by the timer: a connect or idle timeout */
	struct xfer up;	  /* client -> backend */
	struct xfer down; /* backend -> client */
	char buf[2][XFER_BUF];
};

/* Counters of one loop: written by its thread only, read by the stats printer (relaxed). */
struct counters {
	_Atomic uint64_t accepted, closed, bytes_up, bytes_down, connect_errors, timeouts,
		io_errors, shed;
};

struct worker {
	struct urp_loop *loop;
	unsigned index;
	struct acceptor acceptor;
	struct conn *conns;
	unsigned nconns;
	unsigned next_backend; /* round robin, per loop */
	struct urp_task timer_task;
	struct urp_io *timer_io;
	int timer_fd;
	uint32_t now;	    /* ticks since start */
	uint32_t drain_end; /* tick the drain gives up at; 0: not draining yet */
	struct counters n;
};

struct backend {
	union sockaddr_any addr;
	socklen_t len;
	char text[64];
};

static struct {
	struct server server;
	unsigned idle_ticks, connect_ticks, stats_ticks; /* 0: none */
	struct backend backends[MAX_BACKENDS];
	unsigned nbackends;
	struct acceptor_group group;
	struct worker *workers;
	unsigned nworkers;
	atomic_bool draining;
	atomic_bool warned_nofile;
} prx;

/* ---- counters and shutdown ---- */

static void print_stats(const char *when)
{
	uint64_t sum[7] = { 0 }, shed = 0, refused = 0;
	struct urp_stats total;

	for (unsigned i = 0; i < prx.nworkers; i++) {
		struct worker *w = &prx.workers[i];
		_Atomic uint64_t *c[7] = { &w->n.accepted,   &w->n.closed,	   &w->n.bytes_up,
					   &w->n.bytes_down, &w->n.connect_errors, &w->n.timeouts,
					   &w->n.io_errors };

		for (unsigned k = 0; k < 7; k++)
			sum[k] += net_counted(c[k]);
		/* The acceptor's (accept() out of descriptors) and ours (socket() out of them). */
		shed += net_counted(&w->acceptor.shed) + net_counted(&w->n.shed);
		refused += net_counted(&w->acceptor.refused);
	}
	server_stats(&prx.server, &total);
	printf(PROG ": %s: conns %llu open %llu refused %llu shed %llu bytes_up %llu "
		    "bytes_down %llu connect_errors %llu timeouts %llu io_errors %llu events %llu "
		    "stale_rejects %llu wake_batches %llu\n",
	       when, (unsigned long long)sum[0], (unsigned long long)(sum[0] - sum[1]),
	       (unsigned long long)refused, (unsigned long long)shed, (unsigned long long)sum[2],
	       (unsigned long long)sum[3], (unsigned long long)sum[4], (unsigned long long)sum[5],
	       (unsigned long long)sum[6], (unsigned long long)total.events,
	       (unsigned long long)total.stale_rejects, (unsigned long long)total.wake_batches);
	server_stats_check(&prx.server, &total);
	fflush(stdout);
}

static void stop_failed(void)
{
	server_stop(&prx.server, 1);
}

/* First signal: stop accepting and let each loop finish its connections (its timer task
 * stops it once it has none, or DRAIN_S later). A second one: stop now. */
static void drain_all(void)
{
	if (atomic_exchange(&prx.draining, true)) {
		server_stop(&prx.server, 0);
		return;
	}
	for (unsigned i = 0; i < prx.nworkers; i++) {
		acceptor_stop(&prx.workers[i].acceptor);
		urp_task_wake(&prx.workers[i].timer_task);
	}
}

/* SIGUSR1: the counters; SIGINT or SIGTERM: the drain. */
static void on_signal(int signo)
{
	if (signo == SIGUSR1)
		print_stats("stats");
	else
		drain_all();
}

/* ---- connections ---- */

/*
 * Tear both sides down and free the connection; returns URP_TASK_DONE for its run(). The
 * descriptors are closed here, right after urp_deregister() (which allows it): a listener
 * paused on EMFILE is resumed by acceptor_release() and must find them free. An error closes
 * with a reset (SO_LINGER 0), so the other side learns that the stream broke rather than
 * seeing a clean end.
 */
static int conn_finish(struct conn *c, ssize_t err)
{
	struct worker *w = c->worker;
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	struct end *ends[2] = { &c->client, &c->backend };

	if (err == -ETIMEDOUT)
		net_count(&w->n.timeouts, 1);
	else if (err && c->connecting)
		net_count(&w->n.connect_errors, 1);
	else if (err)
		net_count(&w->n.io_errors, 1);
	for (unsigned i = 0; i < 2; i++) {
		struct end *e = ends[i];

		if (e->io) {
			urp_io_clear_wakers(e->io);
			urp_deregister(e->io);
		}
		if (e->fd >= 0) {
			if (err)
				setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
			close(e->fd);
		}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	net_count(&w->n.closed, 1);
	free(c);
	acceptor_release(&prx.group, true);
	if (atomic_load(&prx.draining) && !w->nconns)
		urp_loop_stop(w->loop);
	return URP_TASK_DONE;
}

/*
 * Have every read of fd report how many bytes it left queued (TCP_INQ, Linux 4.18): whether it
 * will.
 */
static bool end_want_inq(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_TCP, TCP_INQ, &one, sizeof(one)) == 0;
}

/* Whether the TCP_CM_INQ message of a read says that nothing is left to read. */
static bool read_drained(struct msghdr *msg)
{
	struct cmsghdr *cm;
	int inq;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_TCP && cm->cmsg_type == TCP_CM_INQ &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(inq))) {
			memcpy(&inq, CMSG_DATA(cm), sizeof(inq));
			return inq == 0;
		}
	}
	return false;
}

/*
 * recv once under the readiness snapshot of src. EAGAIN clears READABLE with the snapshot's
 * tick; a completion that came after the snapshot makes that clear fail (-ESTALE, counted as a
 * stale rejection), so no edge is lost. A short read clears it too, saving the EAGAIN syscall
 * of every request, but only when the kernel says the queue is empty (TCP_CM_INQ == 0): TCP
 * ends a read at the urgent mark with the bytes behind it still queued (tcp_recvmsg_locked():
 * "Stop if we have read anything"), and no completion comes for bytes that have already
 * arrived. The count includes an unread urgent byte and is 1 after a FIN (tcp_inq_hint()), so
 * 0 means a further read would fail with EAGAIN. Without the count (TCP_INQ refused, no control
 * message), only EAGAIN clears. The urgent byte itself is skipped, not passed on: SO_OOBINLINE
 * is off, as in HAProxy.
 */
static ssize_t xfer_recv(struct xfer *x, struct end *src)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = x->data + x->tail, .iov_len = XFER_BUF - x->tail };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct urp_event ev;
	ssize_t n;

	urp_io_ready_event(src->io, URP_READABLE, &ev);
	if (ev.shutdown)
		return -ESHUTDOWN;
	if (!ev.ready)
		return -EAGAIN;
	if (src->inq) {
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
	}
	n = recvmsg(src->fd, &msg, 0);
	if (n < 0)
		n = -errno;
	if (n == -EAGAIN || (n > 0 && (size_t)n < iov.iov_len && read_drained(&msg)))
		urp_io_clear_readiness(src->io, &ev);
	return n;
}

/*
 * send once under the readiness snapshot of dst. EAGAIN clears WRITABLE, and so does a short
 * send, which saves the EAGAIN of a full socket: a non-blocking tcp_sendmsg() that stops short
 * has set SOCK_NOSPACE on its way out (wait_for_space, and sk_stream_wait_memory() before its
 * EAGAIN), and while that flag is set, the ACKs that make room call sk_stream_write_space()
 * (tcp_check_space()), which wakes the poll: a completion always follows. (A send cut short
 * by an error is followed by that error's completion.)
 */
static ssize_t xfer_send(struct xfer *x, struct end *dst)
{
	size_t len = x->tail - x->head;
	struct urp_event ev;
	ssize_t n;

	urp_io_ready_event(dst->io, URP_WRITABLE, &ev);
	if (ev.shutdown)
		return -ESHUTDOWN;
	if (!ev.ready)
		return -EAGAIN;
	n = send(dst->fd, x->data + x->head, len, MSG_NOSIGNAL);
	if (n < 0)
		n = -errno;
	if (n == -EAGAIN || (n > 0 && (size_t)n < len))
		urp_io_clear_readiness(dst->io, &ev);
	return n;
}

/*
 * Move what one direction can: flush the buffer to the sink, pass the FIN on once it is empty,
 * then read more while there is room. Returns 1 on progress, 0 when blocked, or -errno.
 */
static int xfer_step(struct xfer *x, struct end *src, struct end *dst, _Atomic uint64_t *bytes)
{
	int progress = 0;
	ssize_t n;

	while (x->head < x->tail) {
		n = xfer_send(x, dst);
		if (n == -EAGAIN)
			break;
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		x->head += (size_t)n;
		net_count(bytes, (uint64_t)n);
		progress = 1;
	}
	if (x->head == x->tail)
		x->head = x->tail = 0;
	if (x->eof) {
		if (x->head == x->tail && !x->shut) {
			/* ENOTCONN: the sink already went away; its own error comes next. */
			shutdown(dst->fd, SHUT_WR);
			x->shut = true;
			progress = 1;
		}
		return progress;
	}
	if (x->tail < XFER_BUF) {
		n = xfer_recv(x, src);
		if (n > 0) {
			x->tail += (size_t)n;
			return 1;
		}
		if (n == 0) {
			x->eof = true;
			return 1;
		}
		if (n != -EAGAIN && n != -EINTR)
			return (int)n;
	}
	return progress;
}

/* The backend's connect() ended (its socket reported writable or an error): its outcome. */
static int connect_result(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->backend.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static int conn_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct conn *c = arg;
	struct worker *w = c->worker;
	unsigned budget = CONN_BUDGET;
	struct urp_event ev;
	int up, down, ret;

	if (c->expired)
		return conn_finish(c, -ETIMEDOUT);
	if (c->connecting) {
		if (urp_io_poll_ready(c->backend.io, URP_DIR_WRITE, &waker, &ev) == -EAGAIN)
			return 0;
		ret = ev.shutdown ? -ESHUTDOWN : connect_result(c);
		if (ret < 0)
			return conn_finish(c, ret);
		c->connecting = false;
		c->since = w->now;
	}
	for (;;) {
		if (!budget--) {
			urp_task_wake(task);
			return 0;
		}
		up = xfer_step(&c->up, &c->client, &c->backend, &w->n.bytes_up);
		if (up < 0)
			return conn_finish(c, up);
		down = xfer_step(&c->down, &c->backend, &c->client, &w->n.bytes_down);
		if (down < 0)
			return conn_finish(c, down);
		if (c->up.shut && c->down.shut)
			return conn_finish(c, 0);
		if (up || down) {
			c->since = w->now;
			continue;
		}
		/* ERROR with nothing to do: the poll itself failed (the driver counts poll_errors)
		 * and the slots would report ready for ever; socket errors came back above. */
		if ((urp_io_word(c->client.io) | urp_io_word(c->backend.io)) & URP_ERROR)
			return conn_finish(c, -EIO);
		/* Each slot has one user: the client's reader feeds up, its writer drains down,
		 * and the other way round for the backend. Ready meanwhile: go round again. */
		if (c->up.head < c->up.tail &&
		    urp_io_poll_ready(c->backend.io, URP_DIR_WRITE, &waker, &ev) == 0)
			continue;
		if (!c->up.eof && c->up.tail < XFER_BUF &&
		    urp_io_poll_ready(c->client.io, URP_DIR_READ, &waker, &ev) == 0)
			continue;
		if (c->down.head < c->down.tail &&
		    urp_io_poll_ready(c->client.io, URP_DIR_WRITE, &waker, &ev) == 0)
			continue;
		if (!c->down.eof && c->down.tail < XFER_BUF &&
		    urp_io_poll_ready(c->backend.io, URP_DIR_READ, &waker, &ev) == 0)
			continue;
		return 0;
	}
}

/* A non-blocking connect() to the next backend, in flight or done. Returns fd or -errno. */
static int backend_connect(struct worker *w, bool *in_flight)
{
	const struct backend *b = &prx.backends[w->next_backend++ % prx.nbackends];
	int fd, one = 1, err;

	fd = socket(b->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*in_flight = false;
	if (connect(fd, &b->addr.sa, b->len) < 0) {
		if (errno != EINPROGRESS) {
			err = -errno;
			close(fd);
			return err;
		}
		*in_flight = true;
	}
	return fd;
}

/*
 * No descriptor left for the backend socket (EMFILE, or ENFILE for the whole system): shed the
 * client as the acceptor sheds those it cannot accept. Closed with a FIN, not a reset: nothing
 * broke, the proxy is full (a client that already sent bytes still sees a reset: the kernel
 * resets a close with unread data). Counted as shed, not as a connection or a connect error,
 * and said once, with the limit to raise.
 */
static void conn_shed(struct worker *w, int fd, int err)
{
	struct rlimit rl;

	close(fd);
	net_count(&w->n.shed, 1);
	acceptor_release(&prx.group, true);
	if (prx.server.quiet || atomic_exchange(&prx.warned_nofile, true))
		return;
	if (err == -ENFILE)
		fprintf(stderr,
			PROG ": out of descriptors creating a backend socket (%s): shedding "
			     "clients; raise the system's limit (fs.file-max)\n",
			strerror(-err));
	else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fprintf(stderr,
			PROG ": out of descriptors creating a backend socket (%s): shedding "
			     "clients; raise ulimit -n (now %llu)\n",
			strerror(-err), (unsigned long long)rl.rlim_cur);
}

static void conn_start(struct acceptor *a, int fd, void *arg)
{
	struct worker *w = arg;
	struct urp_driver *drv = urp_loop_driver(w->loop);
	int one = 1, backend_fd, ret;
	bool in_flight = false;
	struct conn *c;

	backend_fd = backend_connect(w, &in_flight);
	if (backend_fd == -EMFILE || backend_fd == -ENFILE) {
		conn_shed(w, fd, backend_fd);
		return;
	}
	net_count(&w->n.accepted, 1);
	c = malloc(sizeof(*c));
	if (!c) {
		close(fd);
		if (backend_fd >= 0)
			close(backend_fd);
		net_count(&w->n.io_errors, 1);
		net_count(&w->n.closed, 1);
		acceptor_release(&prx.group, true);
		return;
	}
	/* Not the buffers: they are written before they are read, and untouched pages of an idle
	 * connection cost no memory. */
	memset(c, 0, offsetof(struct conn, buf));
	c->up.data = c->buf[0];
	c->down.data = c->buf[1];
	c->worker = w;
	c->client.fd = fd;
	c->backend.fd = -1;
	c->since = w->now;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	urp_task_init(&c->task, w->loop, conn_run, c);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->client.inq = end_want_inq(fd);
	if (backend_fd < 0) {
		c->connecting = true; /* counted as a connect error */
		conn_finish(c, backend_fd);
		return;
	}
	c->connecting = in_flight;
	c->backend.fd = backend_fd;
	c->backend.inq = end_want_inq(backend_fd);
	ret = urp_register(drv, c->client.fd, URP_READABLE | URP_WRITABLE, &c->client.io);
	if (ret == 0)
		ret = urp_register(drv, c->backend.fd, URP_READABLE | URP_WRITABLE, &c->backend.io);
	if (ret < 0) {
		/* -ENOSPC: more connections than the ring was sized for; -ENOMEM. */
		conn_finish(c, ret);
		return;
	}
	urp_task_wake(&c->task);
}

/* ---- the timer: timeouts, the drain, periodic stats ---- */

static ssize_t timer_read(void *arg)
{
	struct worker *w = arg;
	uint64_t ticks;
	ssize_t n = read(w->timer_fd, &ticks, sizeof(ticks));

	if (n < 0)
		return -errno;
	w->now += (uint32_t)ticks;
	return n;
}

static int timer_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct worker *w = arg;
	uint32_t before = w->now;
	struct urp_event ev;

	while (urp_io_try_io(w->timer_io, URP_READABLE, timer_read, w) > 0)
		;
	if (w->now != before) {
		for (struct conn *c = w->conns; c; c = c->next) {
			uint32_t limit = c->connecting ? prx.connect_ticks : prx.idle_ticks;

			if (limit && !c->expired && w->now - c->since >= limit) {
				c->expired = true;
				urp_task_wake(&c->task);
			}
		}
		if (prx.stats_ticks && w->index == 0 && w->now / prx.stats_ticks !=
		    before / prx.stats_ticks)
			print_stats("stats");
	}
	if (atomic_load(&prx.draining)) {
		if (!w->drain_end)
			w->drain_end = w->now + DRAIN_S * TICKS_PER_S;
		if (!w->nconns || (int32_t)(w->now - w->drain_end) >= 0)
			urp_loop_stop(w->loop);
	}
	if (urp_io_poll_ready(w->timer_io, URP_DIR_READ, &waker, &ev) == 0)
		urp_task_wake(task);
	return 0;
}

static int timer_start(struct worker *w)
{
	struct itimerspec every = {
		.it_interval = { .tv_nsec = TICK_MS * 1000000L },
		.it_value = { .tv_nsec = TICK_MS * 1000000L },
	};
	int ret;

	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->timer_fd < 0)
		return -errno;
	if (timerfd_settime(w->timer_fd, 0, &every, NULL) < 0)
		return -errno;
	ret = urp_register(urp_loop_driver(w->loop), w->timer_fd, URP_READABLE, &w->timer_io);
	if (ret < 0)
		return ret;
	urp_task_init(&w->timer_task, w->loop, timer_run, w);
	urp_task_wake(&w->timer_task);
	return 0;
}

/* ---- set-up ---- */

/* Whether a backend accepts a connection within timeout_ms: 0 or -errno. */
static int backend_probe(const struct backend *b, int timeout_ms)
{
	int fd, err = 0;
	socklen_t len = sizeof(err);
	struct pollfd p;

	fd = socket(b->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, &b->addr.sa, b->len) < 0) {
		err = errno;
		if (err == EINPROGRESS) {
			p = (struct pollfd){ .fd = fd, .events = POLLOUT };
			err = poll(&p, 1, timeout_ms) == 1 ? 0 : ETIMEDOUT;
			if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
	}
	close(fd);
	return -err;
}

static int usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: " PROG " --listen ADDR:PORT --backend ADDR:PORT [--backend ADDR:PORT ...]\n"
		"                    [--threads N] [--max-conns N] [--idle-timeout SEC]\n"
		"                    [--connect-timeout SEC] [--stats-interval SEC] [-q] [--help]\n"
		"\n"
		"A TCP proxy on the urpoll task loop: each client is connected to the next\n"
		"backend (round robin) and bytes flow both ways, at most 16 KiB buffered per\n"
		"direction. A half-close is passed on; an error or a timeout on either side\n"
		"closes both.\n"
		"\n"
		"  -l, --listen ADDR:PORT      where clients connect: IPV4:PORT or [IPV6]:PORT;\n"
		"                              port 0 picks a free port (printed on stdout)\n"
		"  -b, --backend ADDR:PORT     a backend (up to %d); each must accept a\n"
		"                              connection at start-up\n"
		"  -t, --threads N             N loops, one per thread, each with its own\n"
		"                              io_uring and SO_REUSEPORT listener (default 1)\n"
		"  -m, --max-conns N           at most N client connections in all; beyond it a\n"
		"                              new client is accepted and closed at once\n"
		"                              (default: as many as descriptors allow)\n"
		"  -i, --idle-timeout SEC      close both sides after SEC seconds without a byte\n"
		"                              moved (default 300; 0: never)\n"
		"  -c, --connect-timeout SEC   give up a backend connect after SEC (default 5)\n"
		"  -s, --stats-interval SEC    print the counters every SEC seconds\n"
		"                              (default 0: never)\n"
		"  -q, --quiet                 print errors only\n"
		"  -h, --help                  this text\n"
		"\n"
		"SIGUSR1 prints the counters (connections, bytes each way, errors, urpoll's\n"
		"stale-event rejections and wake batches). SIGINT or SIGTERM stops accepting\n"
		"and lets open connections finish for up to %d s (a second signal: at once),\n"
		"then prints them and exits 0. Out of descriptors (EMFILE), new clients are\n"
		"shed, never spun on.\n"
		"\n"
		"EXAMPLES:\n"
		"    " PROG " -l 127.0.0.1:6380 -b 127.0.0.1:6379      # one backend\n"
		"    " PROG " -l [::]:80 -b 10.0.0.1:80 -b 10.0.0.2:80 -t 2\n"
		"    " PROG " -l 127.0.0.1:0 -b 127.0.0.1:8080 -i 0 -s 10\n"
		"        # a free port, no idle timeout, counters every 10 s\n"
		"\n"
		"Exit status: 0 after a signal, 1 on a runtime error (port in use, backend\n"
		"unreachable, no io_uring), 2 on bad usage.\n",
		MAX_BACKENDS, DRAIN_S);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "stats-interval", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned nthreads = 1, limit, idle_s = 300, connect_s = 5, stats_s = 0;
	const unsigned max_s = 86400 * 365; /* the longest timeout or interval: a year */
	int listen_fds[MAX_THREADS], ret, opt, status = 1;
	struct urp_driver_opts dopts = { 0 };
	const char *listen_arg = NULL;
	union sockaddr_any addr;
	socklen_t addr_len = 0;

	for (unsigned i = 0; i < MAX_THREADS; i++)
		listen_fds[i] = -1;
	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, ":l:b:t:m:i:c:s:qh", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_arg = optarg;
			if (!net_parse_addr(optarg, &addr, &addr_len))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"bad listen address '%s' (expected "
							"IPV4:PORT or [IPV6]:PORT)",
							optarg);
			break;
		case 'b': {
			struct backend *b = &prx.backends[prx.nbackends];

			if (prx.nbackends == MAX_BACKENDS)
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"at most %d backends", MAX_BACKENDS);
			if (!net_parse_addr(optarg, &b->addr, &b->len))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"bad backend address '%s' (expected "
							"IPV4:PORT or [IPV6]:PORT)",
							optarg);
			net_addr_str(&b->addr, b->text, sizeof(b->text));
			prx.nbackends++;
			break;
		}
		case 't':
			if (!server_opt_count(PROG, opt, argv, 1, MAX_THREADS, "", &nthreads))
				return 2;
			break;
		case 'm':
			if (!server_opt_count(PROG, opt, argv, 1, UINT_MAX / 4, "",
					      &prx.group.max_conns))
				return 2;
			break;
		case 'i':
		case 'c':
		case 's':
			if (!server_opt_count(PROG, opt, argv, opt == 'c', max_s, "seconds",
					      opt == 'i'   ? &idle_s
					      : opt == 'c' ? &connect_s
							   : &stats_s))
				return 2;
			break;
		case 'q':
			prx.server.quiet = true;
			break;
		case 'h':
			return usage(0);
		default:
			return server_usage_error(PROG, opt, argv, options);
		}
	}
	if (optind < argc)
		return server_usage_error(PROG, -1, argv, options);
	if (!listen_arg || !prx.nbackends) {
		fprintf(stderr, PROG ": --listen and at least one --backend are needed (see --help)\n");
		return 2;
	}
	prx.idle_ticks = idle_s * TICKS_PER_S;
	prx.connect_ticks = connect_s * TICKS_PER_S;
	prx.stats_ticks = stats_s * TICKS_PER_S;
	prx.server.prog = PROG;
	prx.server.on_signal = on_signal;
	prx.group.prog = PROG;
	prx.group.quiet = prx.server.quiet;
	prx.group.refuse = true;
	prx.group.fatal = stop_failed;

	for (unsigned i = 0; i < prx.nbackends; i++) {
		ret = backend_probe(&prx.backends[i], (int)connect_s * 1000);
		if (ret < 0) {
			fprintf(stderr, PROG ": backend %s unreachable: %s\n",
				prx.backends[i].text, strerror(-ret));
			return 1;
		}
	}

	/* Each connection costs two descriptors and two registrations. */
	limit = net_raise_nofile();
	if (prx.group.max_conns && 2 * prx.group.max_conns < limit)
		limit = 2 * prx.group.max_conns;
	dopts.cq_entries = net_cq_entries_for(limit + 8);

	if (server_signals_open(&prx.server, SIGUSR1) < 0)
		return 1;

	ret = net_tcp_listeners(&addr, addr_len, listen_fds, nthreads);
	if (ret < 0) {
		fprintf(stderr, PROG ": cannot listen on %s: %s\n", listen_arg, strerror(-ret));
		goto out_close;
	}
	prx.workers = calloc(nthreads, sizeof(*prx.workers));
	if (!prx.workers) {
		fprintf(stderr, PROG ": %s\n", strerror(ENOMEM));
		goto out_close;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		prx.workers[i].timer_fd = -1;
		prx.workers[i].acceptor.reserve_fd = -1;
		prx.workers[i].acceptor.fd = -1;
	}
	prx.nworkers = nthreads;
	if (server_loops_new(&prx.server, nthreads, &dopts) < 0)
		goto out_free;
	for (unsigned i = 0; i < nthreads; i++) {
		struct worker *w = &prx.workers[i];

		w->loop = prx.server.loops[i].loop;
		w->index = i;
		w->next_backend = i;
		ret = acceptor_start(&w->acceptor, &prx.group, w->loop, listen_fds[i], conn_start,
				     w);
		listen_fds[i] = -1; /* the acceptor's now: it closes it on the drain */
		if (ret == 0)
			ret = timer_start(w);
		if (ret < 0) {
			fprintf(stderr, PROG ": set-up: %s\n", urp_strerror(ret));
			goto out_free;
		}
	}

	status = server_run(&prx.server, &addr, NULL);
	if (!prx.server.quiet)
		print_stats("exit");

out_free:
	/* Frees every entry still registered; then the descriptors are ours to close. */
	server_loops_free(&prx.server);
	for (unsigned i = 0; i < prx.nworkers; i++) {
		struct worker *w = &prx.workers[i];

		while (w->conns) {
			struct conn *c = w->conns;

			w->conns = c->next;
			close(c->client.fd);
			if (c->backend.fd >= 0)
				close(c->backend.fd);
			free(c);
		}
		if (w->acceptor.fd >= 0)
			close(w->acceptor.fd);
		acceptor_free(&w->acceptor);
	}
	for (unsigned i = 0; prx.workers && i < nthreads; i++)
		if (prx.workers[i].timer_fd >= 0)
			close(prx.workers[i].timer_fd);
	free(prx.workers);
out_close:
	for (unsigned i = 0; i < nthreads; i++)
		if (listen_fds[i] >= 0)
			close(listen_fds[i]);
	server_signals_close(&prx.server);
	return status;
}
