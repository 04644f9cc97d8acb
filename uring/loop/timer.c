/* SPDX-License-Identifier: MIT */
/*
 * The loop's timers: caller-owned struct urp_timer, a 4-ary min-heap of (deadline, start
 * sequence) per loop, used only on the loop's thread.
 *
 * Why a heap: deadlines in exact order (equal deadlines in start order) and never early, with
 * O(log4 n) start and stop; the nodes carry their key, so sifting reads the array, not the
 * timers (libev's "cache-friendly" heap does the same). Why 4-ary: half the depth of a binary
 * heap, and the four children of a node share a cache line pair.
 *
 * Restarting an active timer later (an idle timeout pushed back by every request) touches
 * only the timer: its node keeps the old, earlier key, and when that key comes up the timer is
 * put back with its real deadline. A deadline moved earlier is sifted up at once. So the
 * common restart is O(1), and an old key costs the loop at most one early wake-up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"

#define TIMER_IDLE UINT32_MAX /* timer.index when not in the heap */
#define ARITY	   4
/* Timeouts beyond this (INT64_MAX / 2 ns: 146 years) would overflow the clock's arithmetic. */
#define TIMEOUT_MAX_MS ((uint64_t)INT64_MAX / 2 / 1000000)

struct timer {
	struct urp_loop *loop;
	urp_timer_fn fn;
	void *arg;
	uint64_t deadline; /* ns, CLOCK_MONOTONIC: when it is due, while active */
	uint64_t seq;	   /* of the start that set deadline */
	uint32_t index;	   /* in the heap, or TIMER_IDLE */
};

_Static_assert(sizeof(struct timer) <= sizeof(struct urp_timer), "struct urp_timer too small");
_Static_assert(_Alignof(struct timer) <= _Alignof(struct urp_timer), "urp_timer under-aligned");

struct urp__timer_node {
	uint64_t key; /* a deadline of the timer: its current one, or an earlier one it left */
	uint64_t seq;
	struct timer *t;
};

static struct timer *to_timer(struct urp_timer *t)
{
	return (struct timer *)t->opaque;
}

uint64_t urp__timers_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool node_before(const struct urp__timer_node *a, const struct urp__timer_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void place(struct urp__timers *tm, uint32_t i, struct urp__timer_node node)
{
	tm->heap[i] = node;
	node.t->index = i;
}

static void sift_up(struct urp__timers *tm, uint32_t i, struct urp__timer_node node)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / ARITY;

		if (!node_before(&node, &tm->heap[parent]))
			break;
		place(tm, i, tm->heap[parent]);
		i = parent;
	}
	place(tm, i, node);
}

static void sift_down(struct urp__timers *tm, uint32_t i, struct urp__timer_node node)
{
	for (;;) {
		uint32_t first = i * ARITY + 1, best = first, end;

		if (first >= tm->nr)
			break;
		end = first + ARITY < tm->nr ? first + ARITY : tm->nr;
		for (uint32_t c = first + 1; c < end; c++)
			if (node_before(&tm->heap[c], &tm->heap[best]))
				best = c;
		if (!node_before(&tm->heap[best], &node))
			break;
		place(tm, i, tm->heap[best]);
		i = best;
	}
	place(tm, i, node);
}

/* Take node i out: the last node fills the hole and moves whichever way it must. */
static void heap_remove(struct urp__timers *tm, uint32_t i)
{
	struct urp__timer_node last = tm->heap[--tm->nr];

	tm->heap[i].t->index = TIMER_IDLE;
	if (i == tm->nr)
		return;
	if (i > 0 && node_before(&last, &tm->heap[(i - 1) / ARITY]))
		sift_up(tm, i, last);
	else
		sift_down(tm, i, last);
}

static int heap_reserve(struct urp__timers *tm)
{
	struct urp__timer_node *heap;
	uint32_t cap;

	if (tm->nr < tm->cap)
		return 0;
	if (tm->cap >= UINT32_MAX / 2)
		return -ENOMEM;
	cap = tm->cap ? tm->cap * 2 : 64;
	heap = realloc(tm->heap, (size_t)cap * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	tm->heap = heap;
	tm->cap = cap;
	return 0;
}

void urp__timers_free(struct urp__timers *tm)
{
	for (uint32_t i = 0; i < tm->nr; i++)
		tm->heap[i].t->index = TIMER_IDLE;
	free(tm->heap);
	memset(tm, 0, sizeof(*tm));
}

int64_t urp__timers_wait_ns(const struct urp__timers *tm)
{
	uint64_t now;

	if (!tm->nr)
		return -1;
	now = urp__timers_now();
	return tm->heap[0].key <= now ? 0 : (int64_t)(tm->heap[0].key - now);
}

void urp__timers_run(struct urp__timers *tm)
{
	/* Only starts made before this pass fire in it: a callback that restarts a timer (its
	 * own, with 0) must not keep the pass going for ever. A start made during the pass has
	 * a larger sequence and a deadline no earlier than now, so it sorts after every node
	 * that may still fire here: finding one on top ends the pass. */
	uint64_t now, fence = tm->seq;

	if (!tm->nr)
		return;
	now = urp__timers_now();
	while (tm->nr && tm->heap[0].key <= now && tm->heap[0].seq <= fence) {
		struct timer *t = tm->heap[0].t;

		if (t->deadline != tm->heap[0].key || t->seq != tm->heap[0].seq) {
			/* Restarted later since it was put in: back in, with its real deadline. */
			sift_down(tm, 0, (struct urp__timer_node){ t->deadline, t->seq, t });
			continue;
		}
		heap_remove(tm, 0);
		/* Inactive before its callback runs, which may start it again or free it. */
		t->fn((struct urp_timer *)t, t->arg);
	}
}

void urp_timer_init(struct urp_timer *ut, struct urp_loop *loop, urp_timer_fn fn, void *arg)
{
	struct timer *t;

	if (!ut)
		return;
	t = to_timer(ut);
	memset(ut, 0, sizeof(*ut));
	t->loop = loop;
	t->fn = fn;
	t->arg = arg;
	t->index = TIMER_IDLE;
}

int urp_timer_start(struct urp_timer *ut, uint64_t timeout_ms)
{
	struct urp__timers *tm;
	struct timer *t;
	uint64_t deadline;
	int ret;

	if (!ut)
		return -EINVAL;
	t = to_timer(ut);
	if (!t->loop || !t->fn || timeout_ms > TIMEOUT_MAX_MS)
		return -EINVAL;
	urp__loop_assert_thread(t->loop, "urp_timer_start");
	tm = &t->loop->timers;
	deadline = urp__timers_now() + timeout_ms * 1000000u;
	if (t->index != TIMER_IDLE) {
		struct urp__timer_node *node = &tm->heap[t->index];

		t->deadline = deadline;
		t->seq = ++tm->seq;
		/* Later (or as late): the node keeps its key and is put back when it comes up. */
		if (deadline >= node->key)
			return 0;
		sift_up(tm, t->index, (struct urp__timer_node){ deadline, t->seq, t });
		return 0;
	}
	ret = heap_reserve(tm);
	if (ret < 0)
		return ret;
	t->deadline = deadline;
	t->seq = ++tm->seq;
	tm->nr++;
	sift_up(tm, tm->nr - 1, (struct urp__timer_node){ deadline, t->seq, t });
	return 0;
}

void urp_timer_stop(struct urp_timer *ut)
{
	struct timer *t;

	if (!ut)
		return;
	t = to_timer(ut);
	if (t->index == TIMER_IDLE)
		return;
	urp__loop_assert_thread(t->loop, "urp_timer_stop");
	heap_remove(&t->loop->timers, t->index);
}

bool urp_timer_active(const struct urp_timer *ut)
{
	return ut && ((const struct timer *)ut->opaque)->index != TIMER_IDLE;
}
