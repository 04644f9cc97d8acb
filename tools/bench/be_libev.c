/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backend: libev (Debian's libev-dev, 4.33), one ev_io watcher per fd.
 *
 * The loop is ev_loop_new(EVBACKEND_EPOLL): libev's own choice on Linux as well (linuxaio and
 * iouring are not among ev_recommended_backends()), forced so that an LIBEV_FLAGS environment
 * or a future default cannot change what is measured. A private loop, not the default one, so
 * libev installs no SIGCHLD watcher.
 *
 * libev's epoll backend is level-triggered (EPOLLIN/EPOLLOUT without EPOLLET): a callback that
 * drained its fd to EAGAIN (bench.h) simply sees it not reported again. Watcher changes are
 * queued and applied once per iteration (fd_reify), and a stopped watcher's epoll_ctl(DEL) is
 * deferred until epoll reports the fd again or it is closed, which is libev's normal behaviour.
 *
 * Waits: ev_iteration() counts loop iterations, and each iteration calls backend_poll, which
 * for epoll is exactly one epoll_wait (ev_epoll.c: epoll_poll), so the count is exact.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <ev.h>

#include "bench.h"

struct bench_loop {
	struct ev_loop *ev;
	ev_timer timeout;
	bool timed_out;
	unsigned watches;
	unsigned iter0; /* ev_iteration() at the last run_once, to widen it to 64 bits */
	uint64_t calls, waits;
};

struct bench_watch {
	ev_io io;
	bench_cb cb;
	void *arg;
};

static void libev_io_cb(struct ev_loop *ev, ev_io *io, int revents)
{
	struct bench_loop *lp = ev_userdata(ev);
	struct bench_watch *w =
		(struct bench_watch *)((char *)io - offsetof(struct bench_watch, io));

	lp->calls++;
	w->cb(w->arg, (revents & EV_READ ? BENCH_IN : 0) | (revents & EV_WRITE ? BENCH_OUT : 0));
}

static void libev_timeout_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
	struct bench_loop *lp = ev_userdata(ev);

	(void)t;
	(void)revents;
	lp->timed_out = true;
}

static int libev_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct bench_loop *lp;

	/* libev sizes its fd table on demand (anfds grows by fd number). */
	(void)max_fds;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	/* NOSIGMASK: no sigprocmask around signal bookkeeping; NOTIMERFD: no timerfd to detect
	 * wall-clock jumps (only periodic watchers care). */
	lp->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK | EVFLAG_NOTIMERFD);
	if (!lp->ev) {
		free(lp);
		return -ENOSYS;
	}
	ev_set_userdata(lp->ev, lp);
	ev_init(&lp->timeout, libev_timeout_cb);
	*lpp = lp;
	return 0;
}

static int libev_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		     struct bench_watch **wp)
{
	struct bench_watch *w = malloc(sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	ev_io_init(&w->io, libev_io_cb, fd,
		   (events & BENCH_IN ? EV_READ : 0) | (events & BENCH_OUT ? EV_WRITE : 0));
	ev_io_start(lp->ev, &w->io);
	lp->watches++;
	*wp = w;
	return 0;
}

static int libev_del(struct bench_loop *lp, struct bench_watch *w, bool close_fd)
{
	/* ev_io_stop also unqueues a pending event of w, so freeing it here is safe even from
	 * another watcher's callback in the same iteration. libev needs the stop before the close
	 * and nothing else: a closed fd leaves the epoll set by itself. */
	ev_io_stop(lp->ev, &w->io);
	if (close_fd)
		close(w->io.fd);
	free(w);
	lp->watches--;
	return 0;
}

static int libev_run_once(struct bench_loop *lp, int timeout_ms)
{
	uint64_t calls0 = lp->calls;

	if (timeout_ms == 0) {
		ev_run(lp->ev, EVRUN_NOWAIT);
	} else if (timeout_ms < 0 && !lp->watches) {
		/* Nothing could ever wake the loop: ev_run would return at once, forever. */
		return 0;
	} else {
		if (timeout_ms > 0) {
			lp->timed_out = false;
			/* The timer counts from ev_now(), the time cached at the last iteration. */
			ev_now_update(lp->ev);
			ev_timer_set(&lp->timeout, timeout_ms / 1e3, 0.);
			ev_timer_start(lp->ev, &lp->timeout);
		}
		/* One iteration may call nobody: an event for a watcher stopped since (libev drops
		 * it and fixes the epoll set). Block again, as the contract wants. */
		do
			ev_run(lp->ev, EVRUN_ONCE);
		while (lp->calls == calls0 && !lp->timed_out);
		if (timeout_ms > 0)
			ev_timer_stop(lp->ev, &lp->timeout);
	}
	lp->waits += ev_iteration(lp->ev) - lp->iter0;
	lp->iter0 = ev_iteration(lp->ev);
	return (int)(lp->calls - calls0);
}

static uint64_t libev_waits(struct bench_loop *lp)
{
	return lp->waits;
}

static void libev_close(struct bench_loop *lp)
{
	ev_loop_destroy(lp->ev);
	free(lp);
}

const struct bench_backend be_libev = {
	.name = "libev",
	.open = libev_open,
	.add = libev_add,
	.del = libev_del,
	.run_once = libev_run_once,
	.waits = libev_waits,
	.close = libev_close,
};
