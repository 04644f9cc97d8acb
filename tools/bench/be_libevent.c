/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backend: libevent (Debian's libevent-dev, 2.1.12), one event_new(EV_READ |
 * EV_PERSIST | EV_ET) per fd on an event_base that must be the epoll backend.
 *
 * EV_ET: the callback contract is edge-triggered (bench.h), so the events are EPOLLET like the
 * epoll baseline's, and a drained fd costs nothing until it becomes ready again. EV_PERSIST:
 * the event stays added across callbacks, no event_add per event.
 *
 * No changelist (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST off, and IGNORE_ENV so that
 * EVENT_EPOLL_USE_CHANGELIST cannot turn it on): event_add and event_del make their
 * epoll_ctl at once. The changelist would defer them to the next dispatch, where an fd closed
 * and reused in between gets the old fd's operation; no precise timer either, so no timerfd.
 *
 * Waits: libevent 2.1 has no prepare/check hook and no iteration counter. Each dispatch of the
 * epoll backend is exactly one epoll_wait (epoll.c: epoll_dispatch), and event_base_loop
 * (EVLOOP_ONCE) dispatches until some callback ran. Every dispatch here runs a callback (EV_ET
 * reports only watched, ready fds; a timeout runs our timer's callback), so one
 * event_base_loop call is one epoll_wait; the count misses only a dispatch interrupted by a
 * signal (EINTR), which libevent repeats internally.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench.h"

struct bench_loop {
	struct event_base *base;
	struct event *timeout;
	uint64_t calls, waits;
};

struct bench_watch {
	struct event *ev;
	struct bench_loop *lp;
	bench_cb cb;
	void *arg;
};

static void libevent_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bench_watch *w = arg;

	(void)fd;
	w->lp->calls++;
	w->cb(w->arg, (what & EV_READ ? BENCH_IN : 0) | (what & EV_WRITE ? BENCH_OUT : 0));
}

static void libevent_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int libevent_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct event_config *cfg;
	struct bench_loop *lp;
	const char *method;
	int err = -ENOMEM;

	/* epoll's fd map grows by fd number on demand. */
	(void)max_fds;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	cfg = event_config_new();
	if (!cfg)
		goto out_free_lp;
	/* On Linux, only epoll offers both: edge triggering and O(1) add/del. */
	if (event_config_require_features(cfg, EV_FEATURE_ET | EV_FEATURE_O1) ||
	    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_IGNORE_ENV))
		goto out_free_cfg;
	lp->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	err = -ENOSYS;
	if (!lp->base)
		goto out_free_lp;
	method = event_base_get_method(lp->base);
	/* Debian's libev.so also exports libevent 1.x names (event_add, event_del,
	 * event_base_loop, event_base_free, ...): linked ahead of libevent, it takes those
	 * calls and answers "libev" here. Link libevent first; this base is libevent's, so leak
	 * it rather than hand it to libev's event_base_free. */
	if (!strcmp(method, "libev")) {
		err = -ELIBBAD;
		goto out_free_lp;
	}
	if (strcmp(method, "epoll"))
		goto out_free_base;
	err = -ENOMEM;
	lp->timeout = evtimer_new(lp->base, libevent_timeout_cb, lp);
	if (!lp->timeout)
		goto out_free_base;
	*lpp = lp;
	return 0;

out_free_base:
	event_base_free(lp->base);
	goto out_free_lp;
out_free_cfg:
	event_config_free(cfg);
out_free_lp:
	free(lp);
	return err;
}

static int libevent_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
			struct bench_watch **wp)
{
	short what = EV_PERSIST | EV_ET;
	struct bench_watch *w;

	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->lp = lp;
	w->cb = cb;
	w->arg = arg;
	if (events & BENCH_IN)
		what |= EV_READ;
	if (events & BENCH_OUT)
		what |= EV_WRITE;
	w->ev = event_new(lp->base, fd, what, libevent_event_cb, w);
	if (!w->ev) {
		free(w);
		return -ENOMEM;
	}
	if (event_add(w->ev, NULL)) {
		event_free(w->ev);
		free(w);
		/* libevent logs the epoll_ctl errno and keeps none of it. */
		return -EINVAL;
	}
	*wp = w;
	return 0;
}

static int libevent_del(struct bench_loop *lp, struct bench_watch *w, bool close_fd)
{
	int fd = event_get_fd(w->ev);

	/* event_free = event_del (epoll_ctl DEL, and off the active queue if w is ready but not
	 * yet called in this dispatch) + free. The DEL is needed even before a close: libevent's
	 * fd map must forget the fd before its number is reused. */
	(void)lp;
	event_free(w->ev);
	if (close_fd)
		close(fd);
	free(w);
	return 0;
}

static int libevent_run_once(struct bench_loop *lp, int timeout_ms)
{
	uint64_t calls0 = lp->calls;
	int flags = EVLOOP_ONCE;
	int ret;

	if (timeout_ms == 0) {
		/* Without EVLOOP_ONCE, NONBLOCK dispatches again after running callbacks. */
		flags |= EVLOOP_NONBLOCK;
	} else if (timeout_ms > 0) {
		struct timeval tv = { timeout_ms / 1000, timeout_ms % 1000 * 1000 };

		/* event_base_loopexit would allocate an event_once per call. */
		evtimer_add(lp->timeout, &tv);
	}
	ret = event_base_loop(lp->base, flags);
	if (timeout_ms > 0)
		evtimer_del(lp->timeout);
	if (ret < 0)
		return -EIO;
	/* 1: no event added, so libevent returned without dispatching. */
	if (ret == 0)
		lp->waits++;
	return (int)(lp->calls - calls0);
}

static uint64_t libevent_waits(struct bench_loop *lp)
{
	return lp->waits;
}

static void libevent_close(struct bench_loop *lp)
{
	event_free(lp->timeout);
	event_base_free(lp->base);
	free(lp);
}

const struct bench_backend be_libevent = {
	.name = "libevent",
	.open = libevent_open,
	.add = libevent_add,
	.del = libevent_del,
	.run_once = libevent_run_once,
	.waits = libevent_waits,
	.close = libevent_close,
};
