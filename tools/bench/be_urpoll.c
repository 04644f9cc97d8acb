/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backend: one urp_driver, turned by the benchmark's thread.
 *
 * The driver idiom: a waker per direction queues the watch during urp_driver_turn(); then,
 * per queued watch, urp_io_poll_ready() takes the event (its tick), the callback consumes
 * until EAGAIN, urp_io_clear_readiness() clears what that event saw, and urp_io_poll_ready()
 * with the waker re-arms. A clear refused as stale (a completion landed after the snapshot)
 * keeps the readiness, so the next poll finds it and the watch is called again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <urpoll.h>

#include "bench.h"

struct bench_watch {
	struct bench_loop *lp;
	struct urp_io *io;
	int fd;
	unsigned events; /* BENCH_IN | BENCH_OUT */
	bench_cb cb;
	void *arg;
	bool queued, in_cb, dead;
	struct bench_watch *next_ready;
	struct bench_watch *prev, *next; /* every watch not yet freed, for close() */
};

struct bench_loop {
	struct urp_driver *drv;
	/* Watches to look at: a FIFO filled by wakers during the turn and by re-polls. */
	struct bench_watch *ready_head, *ready_last;
	struct bench_watch live;
};

static void watch_queue(struct bench_watch *w)
{
	struct bench_loop *lp = w->lp;

	if (w->queued)
		return;
	w->queued = true;
	w->next_ready = NULL;
	if (lp->ready_head)
		lp->ready_last->next_ready = w;
	else
		lp->ready_head = w;
	lp->ready_last = w;
}

static void watch_wake(void *arg)
{
	watch_queue(arg);
}

static void watch_unlink_free(struct bench_watch *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	free(w);
}

static int urpoll_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct urp_driver_opts opts = { .cq_entries = 16384 };
	struct bench_loop *lp;
	int ret;

	/* The CQ holds two completions per registration: grow it past the default's 8191. */
	while (opts.cq_entries / 2 - 1 < max_fds)
		opts.cq_entries *= 2;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	ret = urp_driver_new(&lp->drv, &opts);
	if (ret < 0) {
		fprintf(stderr, "%s: urp_driver_new: %s\n", bench_prog, urp_strerror(ret));
		free(lp);
		return ret;
	}
	lp->live.prev = lp->live.next = &lp->live;
	*lpp = lp;
	return 0;
}

/* Poll each watched direction; with the waker stored where it is not ready. Returns the
 * BENCH_* bits that are ready, with their events in evs[0] (read) and evs[1] (write). */
static unsigned watch_poll(struct bench_watch *w, struct urp_event evs[2])
{
	struct urp_waker waker = { watch_wake, w };
	unsigned ready = 0;

	if ((w->events & BENCH_IN) && urp_io_poll_ready(w->io, URP_DIR_READ, &waker, &evs[0]) == 0)
		ready |= BENCH_IN;
	if ((w->events & BENCH_OUT) &&
	    urp_io_poll_ready(w->io, URP_DIR_WRITE, &waker, &evs[1]) == 0)
		ready |= BENCH_OUT;
	return ready;
}

static int urpoll_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		      struct bench_watch **wp)
{
	unsigned interest = ((events & BENCH_IN) ? URP_READABLE : 0) |
			    ((events & BENCH_OUT) ? URP_WRITABLE : 0);
	struct urp_event evs[2];
	struct bench_watch *w;
	int ret;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct bench_watch){ .lp = lp, .fd = fd, .events = events, .cb = cb, .arg = arg };
	ret = urp_register(lp->drv, fd, interest, &w->io);
	if (ret < 0) {
		free(w);
		return ret;
	}
	w->prev = lp->live.prev;
	w->next = &lp->live;
	w->prev->next = w;
	lp->live.prev = w;
	if (watch_poll(w, evs))
		watch_queue(w);
	*wp = w;
	return 0;
}

static int urpoll_del(struct bench_loop *lp, struct bench_watch *w, bool close_fd)
{
	int ret;

	/* No waker may run with w as its argument once w is freed. */
	urp_io_clear_wakers(w->io);
	ret = close_fd ? urp_deregister_close(w->io) : urp_deregister(w->io);
	w->io = NULL;
	w->dead = true;
	if (!w->queued && !w->in_cb)
		watch_unlink_free(w);
	return ret;
}

/* Call w back for what is ready now; re-queue it when something is left (a stale clear). */
static bool watch_dispatch(struct bench_watch *w)
{
	struct urp_event evs[2];
	unsigned ready = watch_poll(w, evs);
	bool stale = false;

	if (!ready)
		return false;
	w->in_cb = true;
	w->cb(w->arg, ready);
	w->in_cb = false;
	if (w->dead) {
		if (!w->queued)
			watch_unlink_free(w);
		return true;
	}
	if ((ready & BENCH_IN) && urp_io_clear_readiness(w->io, &evs[0]) == -ESTALE)
		stale = true;
	if ((ready & BENCH_OUT) && urp_io_clear_readiness(w->io, &evs[1]) == -ESTALE)
		stale = true;
	/* Re-poll: stores the wakers, or finds readiness a stale clear kept (READ_CLOSED is
	 * never cleared either): the watch goes round again, after the ones already queued. */
	if (watch_poll(w, evs) || stale)
		watch_queue(w);
	return true;
}

static int urpoll_run_once(struct bench_loop *lp, int timeout_ms)
{
	struct bench_watch *w, *last;
	int ret, calls = 0;

	ret = urp_driver_turn(lp->drv, lp->ready_head ? 0 : timeout_ms);
	if (ret < 0)
		return ret;
	/* One pass over what is queued now: a watch re-queued by its dispatch waits for the
	 * next run_once, so a fd that stays ready (closed peer) cannot hold this call. */
	last = lp->ready_last;
	while ((w = lp->ready_head)) {
		bool end = w == last;

		lp->ready_head = w->next_ready;
		w->queued = false;
		if (w->dead)
			watch_unlink_free(w);
		else
			calls += watch_dispatch(w);
		if (end)
			break;
	}
	return calls;
}

static uint64_t urpoll_waits(struct bench_loop *lp)
{
	struct urp_stats st;

	return urp_driver_stats(lp->drv, &st) < 0 ? 0 : st.enters;
}

static void urpoll_close(struct bench_loop *lp)
{
	/* Frees every entry still registered; the watches are ours to free. */
	urp_driver_free(lp->drv);
	while (lp->live.next != &lp->live)
		watch_unlink_free(lp->live.next);
	free(lp);
}

const struct bench_backend be_urpoll = {
	.name = "urpoll",
	.open = urpoll_open,
	.add = urpoll_add,
	.del = urpoll_del,
	.run_once = urpoll_run_once,
	.waits = urpoll_waits,
	.close = urpoll_close,
};
