/* SPDX-License-Identifier: MIT */
/* acceptor: the listener task of the urpoll servers (see acceptor.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "net.h"
#include "server.h"

#define ACCEPT_BUDGET 64

/* Why an acceptor stopped accepting, and what resumes it. */
enum {
	RUNNING,
	PAUSED_FULL,   /* --max-conns reached: resumed by any slot given back */
	PAUSED_NOFILE, /* out of descriptors, none left to shed: resumed by a closed connection */
	STOPPED,       /* acceptor_stop(): never resumed */
};

/* Wake the acceptors paused for a reason this event removes. */
static void resume_acceptors(struct acceptor_group *g, bool closed)
{
	if (!atomic_load(&g->paused))
		return;
	for (struct acceptor *a = g->all; a; a = a->next) {
		int kind = atomic_load(&a->paused);

		if (kind == RUNNING || kind == STOPPED || (kind == PAUSED_NOFILE && !closed))
			continue;
		if (atomic_compare_exchange_strong(&a->paused, &kind, RUNNING)) {
			atomic_fetch_sub(&g->paused, 1);
			urp_task_wake(&a->task);
		}
	}
}

static bool take_slot(struct acceptor_group *g)
{
	if (atomic_fetch_add(&g->live, 1) < g->max_conns || !g->max_conns)
		return true;
	atomic_fetch_sub(&g->live, 1);
	return false;
}

void acceptor_release(struct acceptor_group *g, bool closed)
{
	atomic_fetch_sub(&g->live, 1);
	atomic_fetch_add(&g->slots_freed, 1);
	if (closed)
		atomic_fetch_add(&g->closes, 1);
	resume_acceptors(g, closed);
}

/*
 * Stop accepting until what kind waits for happens: a slot given back (PAUSED_FULL) or a
 * connection closed (PAUSED_NOFILE). No timer: whoever gives the slot back wakes the acceptor,
 * from whichever loop it runs on. seen is that event's counter (slots_freed or closes) as read
 * before the attempt that failed. Returns false when the event came meanwhile: retry at once.
 */
static bool acceptor_pause(struct acceptor *a, int kind, unsigned seen)
{
	struct acceptor_group *g = a->group;
	atomic_uint *counter = kind == PAUSED_FULL ? &g->slots_freed : &g->closes;
	int cur = kind;

	atomic_store(&a->paused, kind);
	atomic_fetch_add(&g->paused, 1);
	/* Dekker with acceptor_release(): it counts, then looks for paused acceptors; we publish
	 * the flag, then look at the count. One of us sees the other (all seq_cst). */
	if (atomic_load(counter) == seen)
		return true;
	if (atomic_compare_exchange_strong(&a->paused, &cur, RUNNING)) {
		atomic_fetch_sub(&g->paused, 1);
		return false;
	}
	return true; /* a closer took the flag: its wake is on its way */
}

static ssize_t accept_op(void *arg)
{
	struct acceptor *a = arg;
	int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * Out of descriptors: give the reserve descriptor up, accept the oldest pending connection and
 * close it at once (its client sees EOF instead of hanging in the backlog), then take the
 * reserve back. Each call shortens the backlog by one, and the accept goes through try_io, so
 * an empty backlog clears the readiness (accept4 fails with EMFILE before it looks at the
 * backlog: without the reserve, an empty backlog looks like a full one). Returns 0 when one
 * was shed, -EAGAIN when none is pending, or another -errno (no reserve: -EMFILE).
 */
static ssize_t shed_one(struct acceptor *a)
{
	ssize_t fd;

	if (a->reserve_fd < 0)
		return -EMFILE;
	close(a->reserve_fd);
	fd = urp_io_try_io(a->io, URP_READABLE, accept_op, a);
	if (fd >= 0) {
		close((int)fd);
		net_count(&a->shed, 1);
	}
	a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? 0 : fd;
}

static bool accept_retryable(ssize_t err)
{
	/* accept(2): errors of the connection being accepted, not of the listener. */
	switch (-err) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
	case ETIMEDOUT:
		return true;
	default:
		return false;
	}
}

/*
 * Before the close: the connections already queued, handed over as any other (or refused when
 * the group is full), rather than reset by the close. A server restarted through SO_REUSEPORT
 * then loses only those that land in the instant between the last accept and the close (none
 * when the kernel migrates them: net.ipv4.tcp_migrate_req).
 */
static void accept_queued(struct acceptor *a)
{
	for (;;) {
		int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && accept_retryable(-errno))
			continue;
		if (fd < 0)
			return;
		if (take_slot(a->group)) {
			a->on_accept(a, fd, a->arg);
		} else {
			close(fd);
			net_count(&a->refused, 1);
		}
	}
}

/* The acceptor's end, on its loop: the future, the registration and the socket go. */
static int acceptor_finish(struct acceptor *a)
{
	int kind = atomic_exchange(&a->paused, STOPPED);

	if (a->group->accept_on_stop && a->fd >= 0)
		accept_queued(a);
	if (kind == PAUSED_FULL || kind == PAUSED_NOFILE)
		atomic_fetch_sub(&a->group->paused, 1);
	if (a->waiting)
		urp_readiness_cancel(&a->ready);
	a->waiting = false;
	if (a->io)
		urp_deregister(a->io);
	a->io = NULL;
	/* New clients now see a refusal, not a backlog that nobody accepts from. */
	close(a->fd);
	a->fd = -1;
	return URP_TASK_DONE;
}

/*
 * The listener's entry is shut down: by the driver's shutdown (the server is stopping: nothing
 * to say), or because the driver's poll on the socket failed, which would otherwise leave the
 * server up and silently deaf to new clients. Returns 0 for run().
 */
static int acceptor_shut(struct acceptor *a)
{
	if (server_poll_failed(a->group->prog, a->io, "a listening socket") < 0)
		a->group->fatal();
	return 0;
}

/* A full group with refuse set: accept one and close it at once. */
static ssize_t refuse_one(struct acceptor *a)
{
	ssize_t fd = urp_io_try_io(a->io, URP_READABLE, accept_op, a);

	if (fd >= 0) {
		close((int)fd);
		net_count(&a->refused, 1);
		return 0;
	}
	return fd;
}

static int acceptor_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct acceptor *a = arg;
	struct acceptor_group *g = a->group;
	unsigned budget = ACCEPT_BUDGET, freed_seen, closes_seen;
	struct urp_event ev;
	ssize_t fd;

	if (atomic_load(&a->stop))
		return acceptor_finish(a);
	if (a->waiting) {
		/* A resume raced the future: keep waiting on it. */
		if (urp_readiness_poll(&a->ready, &waker, &ev) == -EAGAIN)
			return 0;
		a->waiting = false;
	}
	if (atomic_load(&a->paused))
		return 0;
	if (a->reserve_fd < 0)
		a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (;;) {
		if (!budget--) {
			urp_task_wake(task);
			return 0;
		}
		freed_seen = atomic_load(&g->slots_freed);
		closes_seen = atomic_load(&g->closes);
		if (!take_slot(g)) {
			if (g->refuse) {
				fd = refuse_one(a);
				if (fd == 0)
					continue;
			} else if (acceptor_pause(a, PAUSED_FULL, freed_seen)) {
				return 0;
			} else {
				continue;
			}
		} else {
			fd = urp_io_try_io(a->io, URP_READABLE, accept_op, a);
			if (fd >= 0) {
				a->on_accept(a, (int)fd, a->arg);
				continue;
			}
			acceptor_release(g, false);
		}
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
			if (!g->quiet && !atomic_exchange(&g->warned_nofile, true))
				fprintf(stderr,
					"%s: accept: %s: shedding or pausing new connections "
					"(raise ulimit -n)\n",
					g->prog, strerror((int)-fd));
			fd = shed_one(a);
			if (fd == 0)
				continue;
			if (fd != -EAGAIN && fd != -ESHUTDOWN && !accept_retryable(fd)) {
				/* Still out of descriptors: wait for one of ours to close. */
				if (acceptor_pause(a, PAUSED_NOFILE, closes_seen))
					return 0;
				continue;
			}
		}
		if (fd == -EAGAIN) {
			/* Drained. Wait for the next connection, unless one came meanwhile. */
			urp_readiness_init(&a->ready, a->io, URP_READABLE);
			if (urp_readiness_poll(&a->ready, &waker, &ev) == -EAGAIN) {
				a->waiting = true;
				return 0;
			}
			continue;
		}
		if (fd == -ESHUTDOWN)
			return acceptor_shut(a);
		if (accept_retryable(fd))
			continue;
		fprintf(stderr, "%s: accept: %s\n", g->prog, strerror((int)-fd));
		g->fatal();
		return 0;
	}
}

int acceptor_start(struct acceptor *a, struct acceptor_group *g, struct urp_loop *loop, int fd,
		   acceptor_fn on_accept, void *arg)
{
	int ret;

	*a = (struct acceptor){ .group = g, .loop = loop, .fd = fd, .on_accept = on_accept,
				.arg = arg };
	atomic_init(&a->paused, RUNNING);
	a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* Registered from here, armed on the loop's first turn on its thread. */
	ret = urp_register(urp_loop_driver(loop), fd, URP_READABLE, &a->io);
	if (ret < 0) {
		acceptor_free(a);
		return ret;
	}
	urp_task_init(&a->task, loop, acceptor_run, a);
	a->next = g->all;
	g->all = a;
	urp_task_wake(&a->task);
	return 0;
}

void acceptor_stop(struct acceptor *a)
{
	if (!atomic_exchange(&a->stop, true))
		urp_task_wake(&a->task);
}

void acceptor_free(struct acceptor *a)
{
	if (a->reserve_fd >= 0)
		close(a->reserve_fd);
	a->reserve_fd = -1;
}
