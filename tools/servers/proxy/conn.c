/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: a connection, from the accept to the close. One task moves both directions
 * through two bounded buffers: a full buffer stops the reading of its source, so the kernel's
 * queues and the TCP window push back on the sender. A FIN is passed on once its direction's
 * buffer is flushed; an error on either side closes both. One library timer per connection
 * bounds the connect, then the quiet between two transfers (restarted on progress, which costs
 * O(1) when the deadline moves later). A backend that refuses, does not answer in time, or
 * fails before it sent a byte is marked down and the client goes to the next backend up, its
 * bytes replayed.
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

/* How a connection ended (--log's "end"). */
enum conn_end {
	END_CLOSED,	   /* both directions passed their FIN on */
	END_CLIENT_ERROR,  /* the client's socket failed */
	END_BACKEND_ERROR, /* the backend's, after it had answered (or its FIN came first) */
	END_IDLE_TIMEOUT,  /* --idle-timeout */
	END_NO_BACKEND,	   /* no backend up, or each one failed for this client */
	END_SHED,	   /* no descriptor left for the backend socket */
	END_POLL_ERROR,	   /* the driver's poll failed, or the loop shut down */
	END_SETUP_ERROR,   /* a registration or a timer could not be had */
	END_STOPPED,	   /* still open when the proxy exited */
};

/* Whether the driver's poll on either end failed (said on stderr): its -errno, or 0. */
static int conn_poll_failed(struct conn *c)
{
	int err = server_poll_failed(PROG, c->client.io, "a client connection");

	return err ? err : server_poll_failed(PROG, c->backend.io, "a backend connection");
}

/* --log: "close: client ADDR backend NAME up N down N duration_ms N retries N end HOW". */
static void conn_log(struct conn *c, enum conn_end why, int err)
{
	static const char *const ends[] = {
		[END_CLOSED] = "closed",	     [END_CLIENT_ERROR] = "client-error",
		[END_BACKEND_ERROR] = "backend-error", [END_IDLE_TIMEOUT] = "idle-timeout",
		[END_NO_BACKEND] = "no-backend",     [END_SHED] = "shed",
		[END_POLL_ERROR] = "poll-error",     [END_SETUP_ERROR] = "error",
		[END_STOPPED] = "stopped",
	};
	char peer[80] = "-", how[48], num[16];
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - c->start.tv_sec) * 1000LL + (now.tv_nsec - c->start.tv_nsec) / 1000000;
	if (c->peer.sa.sa_family == AF_INET || c->peer.sa.sa_family == AF_INET6)
		net_addr_str(&c->peer, peer, sizeof(peer));
	if (err && why != END_IDLE_TIMEOUT && why != END_NO_BACKEND && why != END_STOPPED)
		snprintf(how, sizeof(how), "%s:%s", ends[why], log_errno(-err, num, sizeof(num)));
	else
		snprintf(how, sizeof(how), "%s", ends[why]);
	log_line(stdout,
		 "close: client %s backend %s up %llu down %llu duration_ms %lld retries %u "
		 "end %s",
		 peer, c->backend_index >= 0 ? prx.backends[c->backend_index].text : "-",
		 (unsigned long long)c->up.in, (unsigned long long)c->down.in, ms, c->retries,
		 how);
}

/* Deregister and close an end; with a reset (SO_LINGER 0) when reset is set. */
static void end_close(struct end *e, bool reset)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	if (e->io) {
		urp_io_clear_wakers(e->io);
		urp_deregister(e->io);
		e->io = NULL;
	}
	if (e->fd >= 0) {
		if (reset)
			setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(e->fd);
		e->fd = -1;
	}
}

/*
 * Tear both sides down and free the connection; returns URP_TASK_DONE for its run(). The
 * descriptors are closed here, right after urp_deregister() (which allows it): a listener
 * paused on EMFILE is resumed by acceptor_release() and must find them free. An error closes
 * with a reset (SO_LINGER 0), so the other side learns that the stream broke rather than
 * seeing a clean end; a client turned away (no backend, no descriptor) gets a FIN.
 */
static int conn_finish(struct conn *c, enum conn_end why, int err)
{
	struct worker *w = c->worker;
	bool reset = why != END_CLOSED && why != END_NO_BACKEND && why != END_SHED;

	switch (why) {
	case END_IDLE_TIMEOUT:
		net_count(&w->n.timeouts, 1);
		break;
	case END_NO_BACKEND:
		net_count(&w->n.no_backend, 1);
		break;
	case END_SHED:
		net_count(&w->n.shed, 1);
		break;
	case END_CLOSED:
	case END_STOPPED:
		break;
	case END_POLL_ERROR:
		conn_poll_failed(c);
		/* fall through */
	default:
		net_count(&w->n.io_errors, 1);
	}
	if (prx.log)
		conn_log(c, why, err);
	urp_timer_stop(&c->timer);
	end_close(&c->client, reset);
	end_close(&c->backend, reset);
	if (c->linked) {
		server_link_del(&w->conns, &c->link);
		w->nconns--;
		net_count(&w->n.closed, 1);
	}
	free(c);
	acceptor_release(&prx.group, true);
	if (atomic_load(&prx.draining) && !w->nconns)
		urp_loop_stop(w->loop);
	return URP_TASK_DONE;
}

void conn_log_stopped(struct conn *c)
{
	if (prx.log)
		conn_log(c, END_STOPPED, 0);
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
 * then read more while there is room. Returns 1 on progress, 0 when blocked, or -errno with
 * *failed set to the end whose call failed.
 */
static int xfer_step(struct xfer *x, struct end *src, struct end *dst, _Atomic uint64_t *bytes,
		     struct end **failed)
{
	int progress = 0;
	ssize_t n;

	while (x->head < x->tail) {
		n = xfer_io(dst, URP_WRITABLE, end_send, x->data + x->head, x->tail - x->head);
		if (n == -EAGAIN)
			break;
		if (n == -EINTR)
			continue;
		if (n < 0) {
			*failed = dst;
			return (int)n;
		}
		x->head += (size_t)n;
		progress = 1;
	}
	/* Kept bytes stay until the backend answers, or until they fill the buffer: then a
	 * replay is no longer possible, and the buffer is the stream's again. */
	if (x->head == x->tail && (!x->keep || x->tail == XFER_BUF)) {
		x->keep = false;
		x->head = x->tail = 0;
	}
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
			x->in += (uint64_t)n;
			net_count(bytes, (uint64_t)n);
			return 1;
		}
		if (n == 0) {
			x->eof = true;
			return 1;
		}
		if (n != -EAGAIN && n != -EINTR) {
			*failed = src;
			return (int)n;
		}
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

static void conn_expired(struct urp_timer *t, void *arg)
{
	struct conn *c = arg;

	c->expired = true;
	urp_task_wake(&c->task);
}

/*
 * No descriptor left for the backend socket (EMFILE, or ENFILE for the whole system): shed the
 * client as the acceptor sheds those it cannot accept. Closed with a FIN, not a reset: nothing
 * broke, the proxy is full (a client that already sent bytes still sees a reset: the kernel
 * resets a close with unread data). Counted as shed, not as a connection (unless it was one
 * already, on a retry) nor as a connect error, and said once, with the limit to raise.
 */
static int conn_shed(struct conn *c, int err)
{
	struct rlimit rl;

	if (!prx.server.quiet && !atomic_exchange(&prx.warned_nofile, true)) {
		if (err == -ENFILE)
			fprintf(stderr,
				PROG ": out of descriptors creating a backend socket (%s): "
				     "shedding clients; raise the system's limit (fs.file-max)\n",
				strerror(-err));
		else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			fprintf(stderr,
				PROG ": out of descriptors creating a backend socket (%s): "
				     "shedding clients; raise ulimit -n (now %llu)\n",
				strerror(-err), (unsigned long long)rl.rlim_cur);
	}
	return conn_finish(c, END_SHED, err);
}

/* The client is served (a backend socket exists for it): counted, listed, registered. */
static int conn_link(struct conn *c)
{
	struct worker *w = c->worker;
	int one = 1;

	c->linked = true;
	server_link_add(&w->conns, &c->link);
	w->nconns++;
	net_count(&w->n.accepted, 1);
	setsockopt(c->client.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->client.inq = end_want_inq(c->client.fd);
	return urp_register(urp_loop_driver(w->loop), c->client.fd, URP_READABLE | URP_WRITABLE,
			    &c->client.io);
}

/* The next backend address to try for this client: another address of the same backend, or
 * the next backend up not tried yet. False when there is none. */
static bool conn_next_target(struct conn *c)
{
	struct backend *b;
	int i;

	if (c->backend_index >= 0 && c->addrs_left) {
		c->addrs_left--;
		c->addr = (c->addr + 1) % prx.backends[c->backend_index].naddrs;
		return true;
	}
	i = backend_pick(c->worker, c->tried);
	if (i < 0)
		return false;
	b = &prx.backends[i];
	c->tried |= 1ull << i;
	c->backend_index = i;
	c->addr = atomic_load_explicit(&b->pref, memory_order_relaxed) % b->naddrs;
	c->addrs_left = b->naddrs - 1;
	return true;
}

/* The connect to the current address failed (err): counted; once every address of the
 * backend has failed for this client, the backend is marked down. */
static void conn_failed(struct conn *c, int err, const char *what)
{
	struct worker *w = c->worker;
	unsigned i = (unsigned)c->backend_index;

	c->retries++;
	net_count(&w->n.connect_errors, 1);
	net_count(&w->n.backend[i].connect_errors, 1);
	if (!c->addrs_left)
		backend_down(i, err, what);
}

/*
 * Start a connect to the next backend address that takes one (a socket that fails at once is
 * a failed connect too). Returns 0 with the connect in flight, its timer running; or finishes
 * the connection (no backend left, no descriptor, no registration) and returns URP_TASK_DONE.
 */
static int conn_connect(struct conn *c)
{
	struct worker *w = c->worker;
	bool in_flight;
	int fd, ret;

	while (conn_next_target(c)) {
		fd = backend_socket(&prx.backends[c->backend_index], c->addr, &in_flight);
		if (fd == -EMFILE || fd == -ENFILE)
			return conn_shed(c, fd);
		if (fd < 0) {
			conn_failed(c, fd, "connect");
			continue;
		}
		if (c->retries)
			net_count(&w->n.retries, 1);
		c->backend.fd = fd;
		c->backend.inq = end_want_inq(fd);
		/* Connected at once or not, the first completion on the socket says so. */
		c->connecting = true;
		c->expired = false;
		ret = c->linked ? 0 : conn_link(c);
		if (ret == 0)
			ret = urp_register(urp_loop_driver(w->loop), fd, URP_READABLE | URP_WRITABLE,
					   &c->backend.io);
		if (ret == 0)
			ret = urp_timer_start(&c->timer, prx.connect_ms);
		/* -ENOSPC: more connections than the ring was sized for; -ENOMEM. */
		return ret < 0 ? conn_finish(c, END_SETUP_ERROR, ret) : 0;
	}
	return conn_finish(c, END_NO_BACKEND, 0);
}

/*
 * The backend failed before it sent a byte (a refused or timed-out connect, or a reset): mark
 * it, drop its socket and start over with the next one, replaying what the client sent (kept
 * in the up buffer until the backend answers) and its FIN. Returns as conn_connect().
 */
static int conn_retry(struct conn *c, int err, const char *what)
{
	conn_failed(c, err, what);
	end_close(&c->backend, true);
	c->up.head = 0;
	c->up.shut = false;
	c->down.head = c->down.tail = 0;
	return conn_connect(c);
}

/* Whether the backend's connect is done: 1 connected, 0 still in flight (the waker stored),
 * or -errno. */
static int conn_connected(struct conn *c, const struct urp_waker *waker)
{
	struct urp_event ev;

	if (urp_io_poll_ready(c->backend.io, URP_DIR_WRITE, waker, &ev) == -EAGAIN)
		return 0;
	if (ev.shutdown)
		return -ESHUTDOWN;
	return connect_result(c) ?: 1;
}

/* The backend took the connection: the connect timer becomes the idle timer. */
static void conn_established(struct conn *c)
{
	struct worker *w = c->worker;

	c->connecting = false;
	c->expired = false;
	backend_connected((unsigned)c->backend_index, c->addr);
	net_count(&w->n.backend[c->backend_index].conns, 1);
	/* Active (the connect timer): a move, no allocation. Inactive (it fired as the connect
	 * completed): a failure to start means no idle timeout for this one, nothing worse. */
	if (prx.idle_ms)
		urp_timer_start(&c->timer, prx.idle_ms);
	else
		urp_timer_stop(&c->timer);
}

/* A transfer failed on end failed (err): retry a backend that never answered (0: the connect
 * to the next one is in flight), else close (URP_TASK_DONE). */
static int conn_error(struct conn *c, struct end *failed, int err)
{
	if (err == -ESHUTDOWN)
		return conn_finish(c, END_POLL_ERROR, err);
	if (failed == &c->backend && c->up.keep)
		return conn_retry(c, err, "reset before any data");
	return conn_finish(c, failed == &c->client ? END_CLIENT_ERROR : END_BACKEND_ERROR, err);
}

static int conn_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct conn *c = arg;
	struct worker *w = c->worker;
	unsigned budget = CONN_BUDGET;
	struct end *failed = NULL;
	bool moved = false;
	int up, down, ret;

again:
	while (c->connecting) {
		ret = conn_connected(c, &waker);
		if (ret == 0 && !c->expired)
			return 0;
		if (ret == -ESHUTDOWN)
			return conn_finish(c, END_POLL_ERROR, ret);
		if (ret == 1) {
			conn_established(c);
			break;
		}
		if (conn_retry(c, ret ?: -ETIMEDOUT, ret ? "connect" : "connect timeout"))
			return URP_TASK_DONE;
	}
	if (c->expired)
		return conn_finish(c, END_IDLE_TIMEOUT, -ETIMEDOUT);
	for (;;) {
		if (!budget--) {
			urp_task_wake(task);
			break;
		}
		up = xfer_step(&c->up, &c->client, &c->backend, &w->n.bytes_up, &failed);
		down = up < 0 ? 0
			      : xfer_step(&c->down, &c->backend, &c->client, &w->n.bytes_down,
					  &failed);
		if (up < 0 || down < 0) {
			if (conn_error(c, failed, up < 0 ? up : down))
				return URP_TASK_DONE;
			goto again; /* the next backend's connect: wait for it */
		}
		/* The backend answered (or ended): nothing to replay any more. */
		if (c->up.keep && (c->down.in || c->down.eof))
			c->up.keep = false;
		if (c->up.shut && c->down.shut)
			return conn_finish(c, END_CLOSED, 0);
		if (up || down) {
			moved = true;
			continue;
		}
		/* Nothing to do: if the driver's poll on an end failed (it counts poll_errors),
		 * its slots would report ready for ever; socket errors came back above. */
		ret = conn_poll_failed(c);
		if (ret < 0)
			return conn_finish(c, END_POLL_ERROR, ret);
		/* Each slot has one user: the client's reader feeds up, its writer drains down,
		 * and the other way round for the backend. */
		if (xfer_wait(&c->up, &c->client, &c->backend, &waker) ||
		    xfer_wait(&c->down, &c->backend, &c->client, &waker))
			continue;
		break;
	}
	/* Once per run, not per transfer: an active timer moved later costs O(1). */
	if (moved && prx.idle_ms)
		urp_timer_start(&c->timer, prx.idle_ms);
	return 0;
}

void conn_start(struct acceptor *a, int fd, void *arg)
{
	struct worker *w = arg;
	socklen_t len = sizeof(union sockaddr_any);
	struct conn *c = malloc(sizeof(*c));

	if (!c) {
		close(fd);
		net_count(&w->n.io_errors, 1);
		acceptor_release(&prx.group, true);
		return;
	}
	/* Not the buffers: they are written before they are read, and untouched pages of an idle
	 * connection cost no memory. */
	memset(c, 0, offsetof(struct conn, buf));
	c->up.data = c->buf[0];
	c->down.data = c->buf[1];
	c->up.keep = true;
	c->worker = w;
	c->client.fd = fd;
	c->backend.fd = -1;
	c->backend_index = -1;
	urp_task_init(&c->task, w->loop, conn_run, c);
	urp_timer_init(&c->timer, w->loop, conn_expired, c);
	if (prx.log) {
		clock_gettime(CLOCK_MONOTONIC, &c->start);
		getpeername(fd, &c->peer.sa, &len);
	}
	if (conn_connect(c) == 0)
		urp_task_wake(&c->task);
}
