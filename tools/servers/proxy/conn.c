/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: a connection, from the accept to the close. One task moves both directions
 * through two bounded buffers: a full buffer stops the reading of its source, so the kernel's
 * queues and the TCP window push back on the sender. A FIN is passed on once its direction's
 * buffer is flushed; an error on either side closes both.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

/* Rounds of a connection task before it lets the others run. */
#define CONN_BUDGET 64

/* Whether the driver's poll on either end failed (said on stderr): its -errno, or 0. */
static int conn_poll_failed(struct conn *c)
{
	int err = server_poll_failed(PROG, c->client.io, "a client connection");

	return err ? err : server_poll_failed(PROG, c->backend.io, "a backend connection");
}

/*
 * Tear both sides down and free the connection; returns URP_TASK_DONE for its run(). The
 * descriptors are closed here, right after urp_deregister() (which allows it): a listener
 * paused on EMFILE is resumed by acceptor_release() and must find them free. An error closes
 * with a reset (SO_LINGER 0), so the other side learns that the stream broke rather than
 * seeing a clean end. -ESHUTDOWN: the loop is stopping, or a poll failed, which is said.
 */
static int conn_finish(struct conn *c, ssize_t err)
{
	struct worker *w = c->worker;
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	struct end *ends[2] = { &c->client, &c->backend };

	if (err == -ESHUTDOWN)
		conn_poll_failed(c);
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
	server_link_del(&w->conns, &c->link);
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
 * A transfer on an end: one recv or send of up to len bytes at buf. Returns the bytes moved or
 * -errno; *short_clears says whether a short transfer proves that the readiness it used is gone
 * (the kernel will signal again), so that xfer_io() may clear it without waiting for EAGAIN.
 */
typedef ssize_t (*xfer_op)(struct end *e, char *buf, size_t len, bool *short_clears);

/*
 * One read of src into buf. A short read may clear the readiness it used (*short_clears) only
 * when the kernel says the queue is empty (TCP_CM_INQ == 0): TCP ends a
 * read at the urgent mark with the bytes behind it still queued (tcp_recvmsg_locked(): "Stop if
 * we have read anything"), and no completion comes for bytes that have already arrived. The
 * count includes an unread urgent byte and is 1 after a FIN (tcp_inq_hint()), so 0 means a
 * further read would fail with EAGAIN. Without the count (TCP_INQ refused, no control message),
 * only EAGAIN clears. The urgent byte itself is skipped, not passed on: SO_OOBINLINE is off, as
 * in HAProxy.
 */
static ssize_t end_recv(struct end *src, char *buf, size_t len, bool *short_clears)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (src->inq) {
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
	}
	n = recvmsg(src->fd, &msg, 0);
	if (n < 0)
		return -errno;
	*short_clears = read_drained(&msg);
	return n;
}

/*
 * One send of buf to dst. A short send always leaves its readiness safe to clear, which saves
 * the EAGAIN of a full socket: a non-blocking tcp_sendmsg() that stops short has set
 * SOCK_NOSPACE on its way out (wait_for_space, and sk_stream_wait_memory() before its EAGAIN),
 * and while that flag is set, the ACKs that make room call sk_stream_write_space()
 * (tcp_check_space()), which wakes the poll: a completion always follows. (A send cut short by
 * an error is followed by that error's completion.)
 */
static ssize_t end_send(struct end *dst, char *buf, size_t len, bool *short_clears)
{
	ssize_t n = send(dst->fd, buf, len, MSG_NOSIGNAL);

	*short_clears = true;
	return n < 0 ? -errno : n;
}

/*
 * op (end_recv or end_send) once on e, of up to len bytes at buf, under the readiness snapshot
 * of interest (URP_READABLE or URP_WRITABLE). EAGAIN clears that readiness with the snapshot's
 * tick; a completion that came after the snapshot makes that clear fail (-ESTALE, counted as a
 * stale rejection), so no edge is lost. A short transfer clears it too when op says it may,
 * saving the EAGAIN syscall of every request. Returns op's bytes or -errno; -EAGAIN when not
 * ready, -ESHUTDOWN when the entry is shut down.
 */
static ssize_t xfer_io(struct end *e, unsigned interest, xfer_op op, char *buf, size_t len)
{
	bool short_clears = false;
	struct urp_event ev;
	ssize_t n;

	urp_io_ready_event(e->io, interest, &ev);
	if (ev.shutdown)
		return -ESHUTDOWN;
	if (!ev.ready)
		return -EAGAIN;
	n = op(e, buf, len, &short_clears);
	if (n == -EAGAIN || (n > 0 && (size_t)n < len && short_clears))
		urp_io_clear_readiness(e->io, &ev);
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
		n = xfer_io(dst, URP_WRITABLE, end_send, x->data + x->head, x->tail - x->head);
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
		n = xfer_io(src, URP_READABLE, end_recv, x->data + x->tail, XFER_BUF - x->tail);
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

/*
 * Store waker where direction x waits: in its sink's writer slot while it holds bytes, in its
 * source's reader slot while it has room and no FIN. Returns true when one of them is ready
 * meanwhile: go round again.
 */
static bool xfer_wait(struct xfer *x, struct end *src, struct end *dst,
		      const struct urp_waker *waker)
{
	struct urp_event ev;

	if (x->head < x->tail && urp_io_poll_ready(dst->io, URP_DIR_WRITE, waker, &ev) == 0)
		return true;
	return !x->eof && x->tail < XFER_BUF &&
	       urp_io_poll_ready(src->io, URP_DIR_READ, waker, &ev) == 0;
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
		/* Nothing to do: if the driver's poll on an end failed (it counts poll_errors),
		 * its slots would report ready for ever; socket errors came back above. */
		ret = conn_poll_failed(c);
		if (ret < 0)
			return conn_finish(c, ret);
		/* Each slot has one user: the client's reader feeds up, its writer drains down,
		 * and the other way round for the backend. */
		if (xfer_wait(&c->up, &c->client, &c->backend, &waker) ||
		    xfer_wait(&c->down, &c->backend, &c->client, &waker))
			continue;
		return 0;
	}
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

void conn_start(struct acceptor *a, int fd, void *arg)
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
	server_link_add(&w->conns, &c->link);
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
