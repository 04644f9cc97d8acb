/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backends urpoll and urpoll-ring: one urp_driver, turned by the benchmark's
 * thread.
 *
 * The loop idiom: the driver keeps the list of entries made ready (URP_DRIVER_READY_LIST), and
 * urp_driver_poll() hands them out after each turn with a snapshot of the word, as epoll_wait()
 * hands out events. The callback consumes until EAGAIN, then urp_io_clear_readiness() clears
 * what the snapshot saw, tick-checked: a completion that landed after the snapshot refuses the
 * clear (stale) and lists the entry again, so no edge is lost. No waker per event.
 *
 * urpoll-ring is the same loop with ring mode (urp_register_ring()) for the watches added with
 * BENCH_STREAM: io_uring receives into the driver's provided buffers and sends from per-socket
 * queues, and the workload takes and sends through struct bench_stream. The callback's takes
 * clear READABLE themselves (an empty take is the tick-checked clear), and WRITABLE is the
 * library's own "below the send mark", so the loop clears nothing on those watches; it calls
 * them for what they watch only, since every send completion that empties a queue Sets
 * WRITABLE. Each turn is one io_uring_enter(): the sends queued by the callbacks go out in it,
 * and it waits for the completions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <urpoll.h>

#include "bench.h"

/* Events taken from the driver per urp_driver_poll(). */
#define POLL_BATCH 64

/* urpoll-ring's buffers: see ring_open(). */
#define RING_BUF_SIZE  4096u
#define RING_BUF_MIN   64u
#define RING_MAX_COUNT 32768u /* the kernel's limit on a buffer ring, and on an SQ */

/* 40 bytes, a 48-byte malloc chunk: the events watched are the registration's interest (the
 * snapshot shows nothing else), and a deleted watch has no io. */
struct bench_watch {
	struct urp_io *io; /* NULL once deleted */
	bench_cb cb;
	void *arg;
	struct bench_watch *prev, *next; /* live watches, or the dead ones to free */
};

/* urpoll-ring's watches, all of them (a listener's too): the events the callback wants, which
 * a ring-mode entry's snapshot does not filter (WRITABLE is set whenever its send queue is
 * below the mark). */
struct ring_watch {
	struct bench_watch w;
	unsigned events; /* BENCH_IN, BENCH_OUT */
	bool stream;	 /* ring mode (BENCH_STREAM) */
};

struct bench_loop {
	struct urp_driver *drv;
	bool ring; /* urpoll-ring: every watch is a struct ring_watch */
	struct bench_watch live;
	/* Deleted during a poll's callbacks: a later event of the same batch may name them. */
	struct bench_watch *dead;
};

static void watch_unlink(struct bench_watch *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
}

static int loop_open(struct bench_loop **lpp, struct urp_driver_opts *opts, unsigned max_fds)
{
	struct bench_loop *lp;
	int ret;

	/* The CQ holds two completions per registration: grow it past the default's 8191. */
	while (opts->cq_entries / 2 - 1 < max_fds)
		opts->cq_entries *= 2;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	ret = urp_driver_new(&lp->drv, opts);
	if (ret < 0) {
		fprintf(stderr, "%s: urp_driver_new: %s\n", bench_prog, urp_strerror(ret));
		free(lp);
		return ret;
	}
	lp->live.prev = lp->live.next = &lp->live;
	*lpp = lp;
	return 0;
}

static int urpoll_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct urp_driver_opts opts = { .cq_entries = 16384, .flags = URP_DRIVER_READY_LIST };

	return loop_open(lpp, &opts, max_fds);
}

static unsigned pow2_at_least(unsigned n, unsigned min, unsigned max)
{
	unsigned p = min;

	while (p < n && p < max)
		p *= 2;
	return p;
}

/*
 * Ring mode's sizes for a loop of max_fds sockets (the library's defaults: 512 buffers of
 * 16 KiB, 8 queued per entry at most, a 64 KiB send mark).
 *   buf_count: one buffer per socket (at least 64), a power of two. In the workloads here a
 *     connection has one message in flight and holds at most two buffers (the request until
 *     its echo, sent back as it is, has gone out; the echo until the client releases it), and
 *     a released buffer reaches the kernel when the next turn starts; so the ring never runs
 *     dry (enobufs stays 0). With 512 at N = 4096, recvs end with -ENOBUFS and are re-armed
 *     some 23 times per buffer received (docs/benchmarks.md, "Ring mode").
 *   buf_size 4096: one page; a 64 B or 1 KiB message lands in one buffer, and the ring's memory
 *     is a page per socket (32 MiB at N = 4096) instead of 16 KiB per socket.
 *   buf_cap, send_hwm: the library's. A peer with one message in flight never reaches them.
 *   sq_entries: as many as sockets (at least the default 256): a turn may queue one send per
 *     socket, and a full SQ submits early, an io_uring_enter() more.
 */
static int ring_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct urp_driver_opts opts = {
		.cq_entries = 16384,
		.flags = URP_DRIVER_READY_LIST,
		.sq_entries = pow2_at_least(max_fds, 256, RING_MAX_COUNT),
		.buf_count = pow2_at_least(max_fds, RING_BUF_MIN, RING_MAX_COUNT),
		.buf_size = RING_BUF_SIZE,
	};
	int ret = loop_open(lpp, &opts, max_fds);

	if (ret == 0)
		(*lpp)->ring = true;
	return ret;
}

/* On a ring loop only; the watch is the ring_watch's first member. */
static struct ring_watch *ring_watch_of(struct bench_watch *w)
{
	return (struct ring_watch *)w;
}

static int urpoll_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		      struct bench_watch **wp)
{
	unsigned interest = ((events & BENCH_IN) ? URP_READABLE : 0) |
			    ((events & BENCH_OUT) ? URP_WRITABLE : 0);
	struct bench_watch *w;
	int ret;

	if ((events & BENCH_STREAM) && !lp->ring)
		return -EINVAL;
	w = calloc(1, lp->ring ? sizeof(struct ring_watch) : sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	if (events & BENCH_STREAM)
		ret = urp_register_ring(lp->drv, fd, &w->io);
	else
		ret = urp_register(lp->drv, fd, interest, &w->io);
	if (ret < 0) {
		free(w);
		return ret;
	}
	if (lp->ring) {
		ring_watch_of(w)->events = events & (BENCH_IN | BENCH_OUT);
		ring_watch_of(w)->stream = events & BENCH_STREAM;
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
 * BENCH_IN, WRITABLE|WRITE_CLOSED for BENCH_OUT (a hang-up shows as the closed bits). A
 * ring-mode entry's interest is both: the loop masks with the watch's events. */
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
		bool stream = false;

		if (lp->ring) {
			ready &= ring_watch_of(w)->events;
			stream = ring_watch_of(w)->stream;
		}
		if (!w->io || !ready)
			continue;
		w->cb(w->arg, ready);
		calls++;
		/* Consumed until EAGAIN: clear what the snapshot saw. Refused (stale) when a
		 * completion came meanwhile; the entry is then listed again. A ring-mode entry's
		 * empty take did its clear. */
		if (w->io && !stream)
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

/* ---- urpoll-ring's I/O ---- */

static int ring_take(struct bench_watch *w, struct bench_rx *rx)
{
	struct urp_buf *buf;
	int ret = urp_io_take(w->io, &buf);

	if (ret == 1)
		*rx = (struct bench_rx){ .data = buf->data, .len = buf->len, .buf = buf };
	return ret;
}

static void ring_release(struct bench_rx *rx)
{
	urp_buf_release(rx->buf);
}

static int ring_send(struct bench_watch *w, const void *data, size_t len)
{
	return urp_io_send(w->io, data, len);
}

static int ring_send_rx(struct bench_watch *w, struct bench_rx *rx)
{
	struct urp_buf *buf = rx->buf;

	buf->len = rx->len;
	return urp_io_send_buf(w->io, buf);
}

static size_t ring_queued(struct bench_watch *w)
{
	return urp_io_send_queued(w->io);
}

static const struct bench_stream ring_stream = {
	.take = ring_take,
	.release = ring_release,
	.send = ring_send,
	.send_rx = ring_send_rx,
	.queued = ring_queued,
};

const struct bench_backend be_urpoll = {
	.name = "urpoll",
	.open = urpoll_open,
	.add = urpoll_add,
	.del = urpoll_del,
	.run_once = urpoll_run_once,
	.waits = urpoll_waits,
	.close = urpoll_close,
};

const struct bench_backend be_urpoll_ring = {
	.name = "urpoll-ring",
	.open = ring_open,
	.add = urpoll_add,
	.del = urpoll_del,
	.run_once = urpoll_run_once,
	.waits = urpoll_waits,
	.close = urpoll_close,
	.stream = &ring_stream,
};
