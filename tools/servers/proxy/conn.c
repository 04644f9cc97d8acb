/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: a connection, from the accept to the close. One task moves both directions
 * (xfer_ring.c or xfer_readiness.c, as --io says), each bounded: a direction whose sink is
 * full stops reading its source, so the kernel's queues and the TCP window push back on the
 * sender. A FIN is passed on once everything before it was; an error on either side closes
 * both. One library timer per connection bounds the connect, then the quiet between two
 * transfers (restarted on progress, which costs O(1) when the deadline moves later). A backend
 * that refuses, does not answer in time, or fails before it sent a byte is marked down and the
 * client goes to the next backend up, its bytes replayed.
 *
 * In ring mode the backend socket is registered for a poll while its non-blocking connect is
 * in flight (ring mode has no "connected" event: WRITABLE there means "send queue below its
 * mark"), then deregistered and registered again in ring mode once connected; until then the
 * client's bytes wait in its entry (then in the kernel), untaken.
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
	if (c->peer.sa.sa_family == AF_INET || c->peer.sa.sa_family == AF_INET6) {
		union sockaddr_any addr = { 0 };

		memcpy(&addr, &c->peer, sizeof(c->peer));
		net_addr_str(&addr, peer, sizeof(peer));
	}
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
	if (prx.io == SERVER_IO_RING) {
		xfer_ring_drop(&c->up);
		xfer_ring_drop(&c->down);
	}
	end_close(&c->client, reset);
	end_close(&c->backend, reset);
	if (c->linked) {
		server_link_del(&w->conns, &c->link);
		w->nconns--;
		net_count(&w->n.closed, 1);
	}
	conn_free(c);
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

void conn_free(struct conn *c)
{
	if (prx.io == SERVER_IO_RING)
		xfer_keep_end(&c->up);
	free(c);
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
	if (prx.io == SERVER_IO_RING)
		return urp_register_ring(urp_loop_driver(w->loop), c->client.fd, &c->client.io);
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
		c->backend.inq = prx.io == SERVER_IO_READINESS && end_want_inq(fd);
		/* Connected at once or not, the first completion on the socket says so. */
		c->connecting = true;
		c->expired = false;
		ret = c->linked ? 0 : conn_link(c);
		/* Ring mode too: a poll tells when the connect is done (conn_established()). */
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
	/* Ring mode: what was queued for it goes back to the ring with its registration, and a
	 * pending buffer of the client's is in the kept bytes, replayed. */
	end_close(&c->backend, true);
	c->up.head = 0;
	c->up.shut = false;
	if (prx.io == SERVER_IO_READINESS) {
		c->down.head = c->down.tail = 0;
	} else {
		xfer_ring_drop(&c->up);
		xfer_ring_drop(&c->down);
	}
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

/*
 * The backend took the connection: the connect timer becomes the idle timer. Ring mode: the
 * backend's poll goes and its ring-mode registration comes, with the bytes kept for a replay
 * queued first when this is a retry. Returns 0 or -errno (no registration).
 */
static int conn_established(struct conn *c)
{
	struct worker *w = c->worker;
	int ret;

	if (prx.io == SERVER_IO_RING) {
		urp_io_clear_wakers(c->backend.io);
		urp_deregister(c->backend.io);
		c->backend.io = NULL;
		ret = urp_register_ring(urp_loop_driver(w->loop), c->backend.fd, &c->backend.io);
		if (ret == 0 && c->retries)
			ret = xfer_ring_replay(&c->up, &c->backend);
		if (ret < 0)
			return ret;
	}
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
	return 0;
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

static int conn_step(struct xfer *x, struct end *src, struct end *dst, _Atomic uint64_t *bytes,
		     struct end **failed)
{
	if (prx.io == SERVER_IO_RING)
		return xfer_ring_step(x, src, dst, bytes, failed);
	return xfer_readiness_step(x, src, dst, bytes, failed);
}

static bool conn_wait(struct xfer *x, struct end *src, struct end *dst,
		      const struct urp_waker *waker)
{
	if (prx.io == SERVER_IO_RING)
		return xfer_ring_wait(x, src, dst, waker);
	return xfer_readiness_wait(x, src, dst, waker);
}

/*
 * Both FINs were passed on: 1 once they are out. Readiness mode: at once (shutdown() was
 * called). Ring mode: once each end's queue, the FIN last, has gone out, for a deregistration
 * drops what is still queued: 0 until then (the waker stored), or -errno with *failed.
 */
static int conn_flushed(struct conn *c, const struct urp_waker *waker, struct end **failed)
{
	int ret;

	if (prx.io == SERVER_IO_READINESS)
		return 1;
	*failed = &c->client;
	ret = xfer_ring_flushed(&c->client, waker);
	if (ret <= 0)
		return ret;
	*failed = &c->backend;
	return xfer_ring_flushed(&c->backend, waker);
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
			ret = conn_established(c);
			if (ret < 0)
				return conn_finish(c, END_SETUP_ERROR, ret);
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
		up = conn_step(&c->up, &c->client, &c->backend, &w->n.bytes_up, &failed);
		down = up < 0 ? 0
			      : conn_step(&c->down, &c->backend, &c->client, &w->n.bytes_down,
					  &failed);
		if (up < 0 || down < 0) {
			if (conn_error(c, failed, up < 0 ? up : down))
				return URP_TASK_DONE;
			goto again; /* the next backend's connect: wait for it */
		}
		/* The backend answered (or ended): nothing to replay any more. */
		if (c->up.keep && (c->down.in || c->down.eof))
			xfer_keep_end(&c->up);
		if (c->up.shut && c->down.shut) {
			ret = conn_flushed(c, &waker, &failed);
			if (ret > 0)
				return conn_finish(c, END_CLOSED, 0);
			if (ret < 0)
				return conn_finish(c, failed == &c->client ? END_CLIENT_ERROR
									   : END_BACKEND_ERROR,
						   ret);
			break; /* woken once the FINs went out */
		}
		if (up || down) {
			moved = true;
			continue;
		}
		/* Nothing to do: if the driver's poll on an end failed (it counts poll_errors),
		 * its slots would report ready for ever; socket errors came back above. (Ring
		 * mode: a failed arm shuts the entry down, which the next take says.) */
		ret = prx.io == SERVER_IO_READINESS ? conn_poll_failed(c) : 0;
		if (ret < 0)
			return conn_finish(c, END_POLL_ERROR, ret);
		/* Each slot has one user: the client's reader feeds up, its writer drains down,
		 * and the other way round for the backend. */
		if (conn_wait(&c->up, &c->client, &c->backend, &waker) ||
		    conn_wait(&c->down, &c->backend, &c->client, &waker))
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
	socklen_t len = sizeof(union sockaddr_ip);
	/* Readiness mode: the two buffers; ring mode has none of its own (a replay's, for a
	 * while, allocated as it goes). */
	struct conn *c = malloc(sizeof(*c) + (prx.io == SERVER_IO_READINESS ? 2 * XFER_BUF : 0));

	if (!c) {
		close(fd);
		net_count(&w->n.io_errors, 1);
		acceptor_release(&prx.group, true);
		return;
	}
	/* Not the buffers: they are written before they are read, and untouched pages of an idle
	 * connection cost no memory. */
	memset(c, 0, sizeof(*c));
	if (prx.io == SERVER_IO_READINESS) {
		c->up.data = c->buf[0];
		c->down.data = c->buf[1];
	}
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
