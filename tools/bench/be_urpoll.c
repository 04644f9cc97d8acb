/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backend: one urp_driver, turned by the benchmark's thread.
 *
 * The loop idiom: the driver keeps the list of entries made ready (URP_DRIVER_READY_LIST), and
 * urp_driver_poll() hands them out after each turn with a snapshot of the word, as epoll_wait()
 * hands out events. The callback consumes until EAGAIN, then urp_io_clear_readiness() clears
 * what the snapshot saw, tick-checked: a completion that landed after the snapshot refuses the
 * clear (stale) and lists the entry again, so no edge is lost. No waker per event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <urpoll.h>

#include "bench.h"

/* Events taken from the driver per urp_driver_poll(). */
#define POLL_BATCH 64

/* 40 bytes, a 48-byte malloc chunk: the events watched are the registration's interest (the
 * snapshot shows nothing else), and a deleted watch has no io. */
struct bench_watch {
	struct urp_io *io; /* NULL once deleted */
	bench_cb cb;
	void *arg;
	struct bench_watch *prev, *next; /* live watches, or the dead ones to free */
};

struct bench_loop {
	struct urp_driver *drv;
	struct bench_watch live;
	/* Deleted during a poll's callbacks: a later event of the same batch may name them. */
	struct bench_watch *dead;
};

static void watch_unlink(struct bench_watch *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
}

static int urpoll_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct urp_driver_opts opts = { .cq_entries = 16384, .flags = URP_DRIVER_READY_LIST };
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

static int urpoll_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		      struct bench_watch **wp)
{
	unsigned interest = ((events & BENCH_IN) ? URP_READABLE : 0) |
			    ((events & BENCH_OUT) ? URP_WRITABLE : 0);
	struct bench_watch *w;
	int ret;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct bench_watch){ .cb = cb, .arg = arg };
	ret = urp_register(lp->drv, fd, interest, &w->io);
	if (ret < 0) {
		free(w);
		return ret;
	}
	/* Before the next turn, which is the first that can report the entry. */
	urp_io_set_data(w->io, w);
	w->prev = lp->live.prev;
	w->next = &lp->live;
	w->prev->next = w;
	lp->live.prev = w;
	*wp = w;
	return 0;
}

static int urpoll_del(struct bench_loop *lp, struct bench_watch *w, bool close_fd)
{
	int ret = close_fd ? urp_deregister_close(w->io) : urp_deregister(w->io);

	w->io = NULL;
	watch_unlink(w);
	w->next = lp->dead;
	lp->dead = w;
	return ret;
}

/* The snapshot shows only what the registration's interest sees: READABLE|READ_CLOSED for
 * BENCH_IN, WRITABLE|WRITE_CLOSED for BENCH_OUT (a hang-up shows as the closed bits). */
static unsigned bench_ready(unsigned ready)
{
	return ((ready & (URP_READABLE | URP_READ_CLOSED)) ? BENCH_IN : 0) |
	       ((ready & (URP_WRITABLE | URP_WRITE_CLOSED)) ? BENCH_OUT : 0);
}

static int urpoll_run_once(struct bench_loop *lp, int timeout_ms)
{
	struct urp_ready evs[POLL_BATCH];
	int n, i, calls = 0;

	n = urp_driver_poll(lp->drv, timeout_ms, evs, POLL_BATCH);
	for (i = 0; i < n; i++) {
		struct bench_watch *w = evs[i].data;
		unsigned ready = bench_ready(evs[i].ev.ready);

		if (!w->io || !ready)
			continue;
		w->cb(w->arg, ready);
		calls++;
		/* Consumed until EAGAIN: clear what the snapshot saw. Refused (stale) when a
		 * completion came meanwhile; the entry is then listed again. */
		if (w->io)
			urp_io_clear_readiness(w->io, &evs[i].ev);
	}
	while (lp->dead) {
		struct bench_watch *w = lp->dead;

		lp->dead = w->next;
		free(w);
	}
	return n < 0 ? n : calls;
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
	while (lp->live.next != &lp->live) {
		struct bench_watch *w = lp->live.next;

		watch_unlink(w);
		free(w);
	}
	while (lp->dead) {
		struct bench_watch *w = lp->dead;

		lp->dead = w->next;
		free(w);
	}
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
