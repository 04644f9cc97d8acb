/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backend: libuv (Debian's libuv1-dev, 1.44), one uv_poll_t per fd, the libuv
 * handle for readiness of an fd the application reads and writes itself.
 *
 * libuv's epoll is level-triggered: a callback that drained its fd to EAGAIN (bench.h) simply
 * sees it not reported again. uv_poll_init costs three syscalls per add (epoll_ctl ADD and DEL
 * to check the fd, ioctl FIONBIO), the EPOLL_CTL_ADD itself waits for the next uv_run, and
 * uv_close makes its EPOLL_CTL_DEL at once (twice, strace shows, the second one ENOENT): that
 * is what registering an fd costs a libuv user.
 *
 * uv_close frees nothing: the handle belongs to libuv until its close callback, which runs at
 * the end of the next loop iteration. So bench_del closes and returns, the close callback frees
 * the watch, and run_once runs pending closes like any iteration does. A closed handle is out
 * of the epoll set and out of the batch being dispatched (uv__platform_invalidate_fd), so its
 * callback is never called after bench_del, even from a callback of the same batch.
 *
 * Waits: libuv 1.44 has no loop counter (uv_metrics_info came in 1.45). One uv_run
 * (UV_RUN_ONCE or NOWAIT) of a live loop (uv_loop_alive: an active handle or a pending close)
 * is one uv__io_poll. That always makes an epoll_wait, since every loop watches its own signal
 * pipe (uv_loop_init starts it for the child watcher), plus one more after each full batch of
 * 1,024 events (it polls again without blocking), 48 waits at most. Every event of a batch is
 * one callback here, so min(1 + callbacks / 1024, 48) per uv_run is exact, except for a wait
 * interrupted by a signal or one that returned only events of handles closed since, both
 * repeated inside libuv uncounted. strace -c agreed with the count on ping-pong over 64 and
 * 1,500 socket pairs (the latter hitting the 48-batch cap) plus add/del churn.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"

/* uv__io_poll: struct epoll_event events[1024], and count = 48 full batches at most. */
#define LIBUV_BATCH	  1024
#define LIBUV_MAX_BATCHES 48

struct bench_loop {
	uv_loop_t uv;
	uv_timer_t timeout;
	bool timed_out;
	unsigned started; /* poll handles started */
	uint64_t calls, waits;
};

struct bench_watch {
	uv_poll_t poll;
	struct bench_loop *lp;
	int fd;
	bench_cb cb;
	void *arg;
};

static void libuv_poll_cb(uv_poll_t *poll, int status, int events)
{
	struct bench_watch *w = poll->data;
	unsigned ready =
		(events & UV_READABLE ? BENCH_IN : 0) | (events & UV_WRITABLE ? BENCH_OUT : 0);

	/* An error (EPOLLERR) comes as status < 0 with no events: let the callback's read or
	 * write find it, like the other backends' callbacks do. */
	if (status < 0)
		ready = BENCH_IN | BENCH_OUT;
	w->lp->calls++;
	w->cb(w->arg, ready);
}

static void libuv_timeout_cb(uv_timer_t *timer)
{
	struct bench_loop *lp = timer->data;

	lp->timed_out = true;
}

static void libuv_free_cb(uv_handle_t *handle)
{
	free(handle->data);
}

static int libuv_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct bench_loop *lp;
	int err;

	/* loop->watchers grows by fd number on demand. */
	(void)max_fds;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	err = uv_loop_init(&lp->uv);
	if (err)
		goto out_free_lp;
	err = uv_timer_init(&lp->uv, &lp->timeout);
	if (err)
		goto out_close_loop;
	lp->timeout.data = lp;
	*lpp = lp;
	return 0;

out_close_loop:
	uv_loop_close(&lp->uv);
out_free_lp:
	free(lp);
	return err;
}

static int libuv_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		     struct bench_watch **wp)
{
	struct bench_watch *w;
	int err;

	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->lp = lp;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	/* A previous handle on the same fd number may still be closing: uv_close already took
	 * it out of loop->watchers, so uv_poll_init does not see it as UV_EEXIST. */
	err = uv_poll_init(&lp->uv, &w->poll, fd);
	if (err) {
		free(w);
		return err;
	}
	w->poll.data = w;
	err = uv_poll_start(&w->poll,
			    (events & BENCH_IN ? UV_READABLE : 0) |
				    (events & BENCH_OUT ? UV_WRITABLE : 0),
			    libuv_poll_cb);
	if (err) {
		uv_close((uv_handle_t *)&w->poll, libuv_free_cb);
		return err;
	}
	lp->started++;
	*wp = w;
	return 0;
}

static int libuv_del(struct bench_loop *lp, struct bench_watch *w, bool close_fd)
{
	/* uv_close stops the poll, EPOLL_CTL_DEL at once, and leaves the fd to us: it can be
	 * closed (and its number reused) while the handle waits for its close callback. */
	uv_close((uv_handle_t *)&w->poll, libuv_free_cb);
	if (close_fd)
		close(w->fd);
	lp->started--;
	return 0;
}

static int libuv_run_once(struct bench_loop *lp, int timeout_ms)
{
	uint64_t calls0 = lp->calls;

	if (timeout_ms > 0) {
		lp->timed_out = false;
		/* Timers count from the loop time cached by the last uv_run, maybe long ago. */
		uv_update_time(&lp->uv);
		uv_timer_start(&lp->timeout, libuv_timeout_cb, timeout_ms, 0);
	}
	for (;;) {
		uint64_t before = lp->calls;
		bool polls = uv_loop_alive(&lp->uv);

		uv_run(&lp->uv, timeout_ms ? UV_RUN_ONCE : UV_RUN_NOWAIT);
		if (polls) {
			uint64_t batches = 1 + (lp->calls - before) / LIBUV_BATCH;

			lp->waits += batches < LIBUV_MAX_BATCHES ? batches : LIBUV_MAX_BATCHES;
		}
		/* An iteration may call nobody: it polled without blocking because a close was
		 * pending, or its only events were of handles closed since. Block again, as the
		 * contract wants, unless nothing can wake the loop. */
		if (lp->calls != calls0 || !timeout_ms || lp->timed_out)
			break;
		if (timeout_ms < 0 && !lp->started)
			break;
	}
	if (timeout_ms > 0)
		uv_timer_stop(&lp->timeout);
	return (int)(lp->calls - calls0);
}

static uint64_t libuv_waits(struct bench_loop *lp)
{
	return lp->waits;
}

static void libuv_close_walk_cb(uv_handle_t *handle, void *arg)
{
	(void)arg;
	if (uv_is_closing(handle))
		return;
	uv_close(handle, handle->type == UV_POLL ? libuv_free_cb : NULL);
}

static void libuv_close(struct bench_loop *lp)
{
	/* Watches the caller did not delete, and the timer; then one last iteration runs every
	 * close callback, so uv_loop_close finds no handle left. */
	uv_walk(&lp->uv, libuv_close_walk_cb, NULL);
	uv_run(&lp->uv, UV_RUN_DEFAULT);
	uv_loop_close(&lp->uv);
	free(lp);
}

const struct bench_backend be_libuv = {
	.name = "libuv",
	.open = libuv_open,
	.add = libuv_add,
	.del = libuv_del,
	.run_once = libuv_run_once,
	.waits = libuv_waits,
	.close = libuv_close,
};
