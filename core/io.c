/* SPDX-License-Identifier: MIT */
/*
 * One readiness word and its waiters: tokio's ScheduledIo in C.
 *
 * Lost-wakeup freedom rests on two orders. A waiter loads the word, locks, registers, and
 * loads it again under the lock. The driver updates the word, then locks to collect wakers.
 * Either the waiter's second load sees the update, or the driver's collection sees the waiter.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "debug.h"
#include "io.h"
#include "probes.h"
#include "ready.h"
#include "word.h"

#define URP__DIR_READ_MASK  (URP_READABLE | URP_READ_CLOSED)
#define URP__DIR_WRITE_MASK (URP_WRITABLE | URP_WRITE_CLOSED)

/* Detached entries (urp_io_new) count here. */
static struct urp__counters detached_counters;
static uint64_t detached_live;

static uintptr_t io_token(const struct urp_io *io)
{
	return (uintptr_t)io;
}

int urp__io_alloc(struct urp_io **out, struct urp__counters *counters,
		  void (*release)(struct urp_io *io))
{
	struct urp_io *io;

	io = aligned_alloc(URP__CACHE_PAIR, sizeof(*io));
	if (!io)
		return -ENOMEM;
	memset(io, 0, sizeof(*io));
	urp__list_init(&io->link);
	urp__list_init(&io->waiters);
	urp__lock_init(&io->lock);
	io->counters = counters;
	io->release = release;
	io->fd = -1;
	urp__debug_io_born(io);
	*out = io;
	return 0;
}

void urp__io_destroy(struct urp_io *io)
{
	urp__debug_io_died(io);
	free(io);
}

void urp__io_release(struct urp_io *io)
{
	/* Pairs with the release half of the decrement in calls_put(). */
	if (!(urp__fetch_or_acq_rel(&io->calls, URP__CALLS_RELEASED) & URP__CALLS_MASK))
		io->release(io);
}

/* One wake is done calling wakers it took from io. The last one after a release frees it. */
static void calls_put(struct urp_io *io)
{
	if (urp__fetch_sub_acq_rel(&io->calls, 1) == (URP__CALLS_RELEASED | 1))
		io->release(io);
}

/* The wakes this thread is calling wakers for, innermost first (they nest: a waker may Set). */
struct wake_frame {
	const struct urp_io *io;
	struct wake_frame *outer;
};

/* initial-exec: a direct %fs access instead of a __tls_get_addr call on every wake (the
 * library is linked, not dlopen'ed late; glibc's static TLS surplus covers one pointer). */
static __thread struct wake_frame *wake_frames __attribute__((tls_model("initial-exec")));

void urp__io_wait_calls(struct urp_io *io)
{
	struct wake_frame *f;
	uint32_t own = 0;

	for (f = wake_frames; f; f = f->outer)
		own += f->io == io;
	/* Pairs with the release half of the decrement in calls_put(). */
	while ((urp__load_acquire(&io->calls) & URP__CALLS_MASK) > own)
		sched_yield();
}

static void detached_release(struct urp_io *io)
{
	urp__count_sub(&detached_live, 1);
	urp__io_destroy(io);
}

int urp_io_new(struct urp_io **io)
{
	int ret;

	if (!io)
		return -EINVAL;
	ret = urp__io_alloc(io, &detached_counters, detached_release);
	if (ret == 0)
		urp__count(&detached_live, 1);
	return ret;
}

void urp_io_free(struct urp_io *io)
{
	if (!io)
		return;
	urp__debug_io_given_up(io, "urp_io_free");
	urp__io_shutdown(io);
	urp__io_release(io);
}

int urp_detached_stats(struct urp_stats *st)
{
	if (!st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->stale_rejects = urp__count_read(&detached_counters.stale_rejects);
	st->wake_batches = urp__count_read(&detached_counters.wake_batches);
	st->wakes = urp__count_read(&detached_counters.wakes);
	st->live = urp__count_read(&detached_live);
	return 0;
}

uint32_t urp_io_word(const struct urp_io *io)
{
	urp__debug_io_usable(io, "urp_io_word");
	/* Pairs with the release half of the CAS in urp_io_set_readiness(). */
	return urp__load_acquire(&io->readiness);
}

static void __take_waker(struct urp_waker *slot, struct urp_waker *batch, unsigned *n)
{
	if (slot->wake)
		batch[(*n)++] = *slot;
	slot->wake = NULL;
	slot->arg = NULL;
}

static void __take_slot(struct urp_io *io, unsigned which, struct urp_waker *batch, unsigned *n)
{
	struct urp_waker *slot = which == URP__SLOT_READ_TAKEN ? &io->reader : &io->writer;

	if (slot->wake)
		io->slots_taken |= which;
	__take_waker(slot, batch, n);
}

/*
 * Collect, under the lock, the wakers ready concerns, at most URP__WAKE_BATCH of them. Returns
 * how many, and sets *more when the array filled up (others may still match).
 */
static unsigned __collect_wakers(struct urp_io *io, unsigned ready, bool first,
				 struct urp_waker *batch, bool *more)
{
	struct urp__list_head *pos, *tmp;
	unsigned n = 0;

	if (first && (ready & URP__DIR_READ_MASK))
		__take_slot(io, URP__SLOT_READ_TAKEN, batch, &n);
	if (first && (ready & URP__DIR_WRITE_MASK))
		__take_slot(io, URP__SLOT_WRITE_TAKEN, batch, &n);
	*more = false;
	urp__list_for_each_safe(pos, tmp, &io->waiters)
	{
		struct urp__waiter *w = urp__container_of(pos, struct urp__waiter, node);

		if (!(urp__ready_from_interest(w->interest) & ready))
			continue;
		if (n == URP__WAKE_BATCH) {
			*more = true;
			break;
		}
		urp__list_del_init(&w->node);
		__take_waker(&w->waker, batch, &n);
	}
	return n;
}

static void __count_batch(struct urp_io *io, unsigned n, unsigned ready)
{
	urp__count(&io->counters->wake_batches, 1);
	urp__count(&io->counters->wakes, n);
	urp__probe_wake_batch(io_token(io), n, ready);
}

static void call_wakers(struct urp_io *io, const struct urp_waker *batch, unsigned n)
{
	struct wake_frame frame = { io, wake_frames };
	unsigned i;

	wake_frames = &frame;
	for (i = 0; i < n; i++)
		batch[i].wake(batch[i].arg);
	wake_frames = frame.outer;
}

/*
 * Wake every waiter that ready concerns, never calling a waker with the lock held: a woken task
 * may cancel, poll, deregister or free at once. When the array fills, the lock is dropped to
 * call the batch and taken again, restarting from the list head (woken nodes are unlinked).
 *
 * From the first waker taken until the last one returns, the wake holds one count in io->calls:
 * it keeps the entry's memory alive (a release defers the free to calls_put()), and lets a
 * cancel or clear wait for wakers already taken (urp__io_wait_calls()). After calls_put() the
 * wake touches nothing.
 */
static void io_wake(struct urp_io *io, unsigned ready)
{
	struct urp_waker batch[URP__WAKE_BATCH];
	bool more;
	unsigned n;

	urp__lock(&io->lock);
	n = __collect_wakers(io, ready, true, batch, &more);
	if (n == 0) {
		urp__unlock(&io->lock);
		return;
	}
	urp__fetch_add_relaxed(&io->calls, 1);
	for (;;) {
		__count_batch(io, n, ready);
		urp__unlock(&io->lock);
		call_wakers(io, batch, n);
		if (!more)
			break;
		urp__lock(&io->lock);
		n = __collect_wakers(io, ready, false, batch, &more);
		if (n == 0) {
			urp__unlock(&io->lock);
			break;
		}
	}
	calls_put(io);
}

void urp__io_set_readiness(struct urp_io *io, unsigned ready)
{
	uint32_t cur, next;

	ready &= URP_READY_ALL;
	cur = urp__load_relaxed(&io->readiness);
	do {
		next = urp__word_pack(urp_word_shutdown(cur), urp__tick_next(urp_word_tick(cur)),
				      urp_word_ready(cur) | ready);
	} while (!urp__cas_acq_rel(&io->readiness, &cur, next));
	/* The word is updated before anyone is woken, and only the new bits wake: a waiter for
	 * bits already set has seen them at its own check. */
	if (ready)
		io_wake(io, ready);
}

void urp__io_shutdown(struct urp_io *io)
{
	urp__fetch_or_acq_rel(&io->readiness, URP_WORD_SHUTDOWN);
	io_wake(io, URP_READY_ALL);
}

void urp_io_set_readiness(struct urp_io *io, unsigned ready)
{
	urp__debug_io_usable(io, "urp_io_set_readiness");
	urp__io_set_readiness(io, ready);
}

void urp_io_shutdown(struct urp_io *io)
{
	urp__debug_io_usable(io, "urp_io_shutdown");
	urp__io_shutdown(io);
}

int urp_io_ready_event(struct urp_io *io, unsigned interest, struct urp_event *ev)
{
	if (!io || !ev || !urp__interest_valid(interest))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_ready_event");
	/* Pairs with the release half of the CAS in urp_io_set_readiness(). */
	urp__word_event(urp__load_acquire(&io->readiness), urp__ready_from_interest(interest), ev);
	return 0;
}

int urp_io_clear_readiness(struct urp_io *io, const struct urp_event *ev)
{
	unsigned clear;
	uint32_t cur;

	if (!io || !ev || ev->tick > URP_TICK_MAX)
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_clear_readiness");
	/* Closed states are final: the kernel will not report them again, so never forget them. */
	clear = ev->ready & URP_READY_ALL & ~(URP_READ_CLOSED | URP_WRITE_CLOSED);
	cur = urp__load_relaxed(&io->readiness);
	do {
		if (urp_word_tick(cur) != ev->tick) {
			/* A completion landed after the snapshot: its edge may be exactly the data
			 * the caller's EAGAIN missed, and it will not be reported again. */
			urp__count(&io->counters->stale_rejects, 1);
			urp__probe_stale_reject(io_token(io), ev->tick, urp_word_tick(cur));
			return -ESTALE;
		}
		if (!(urp_word_ready(cur) & clear))
			return 0;
	} while (!urp__cas_acq_rel(&io->readiness, &cur, cur & ~(uint32_t)clear));
	return 0;
}

static unsigned direction_mask(enum urp_direction dir)
{
	return dir == URP_DIR_READ ? URP__DIR_READ_MASK : URP__DIR_WRITE_MASK;
}

int urp_io_poll_ready(struct urp_io *io, enum urp_direction dir, const struct urp_waker *w,
		      struct urp_event *ev)
{
	unsigned mask, which, taken;
	struct urp_waker *slot;
	uint32_t word;

	if (!io || !ev || (dir != URP_DIR_READ && dir != URP_DIR_WRITE))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_poll_ready");
	mask = direction_mask(dir);
	/* Pairs with the release half of the CAS in urp_io_set_readiness(). */
	word = urp__load_acquire(&io->readiness);
	if (!urp__word_done(word, mask) && w) {
		which = dir == URP_DIR_READ ? URP__SLOT_READ_TAKEN : URP__SLOT_WRITE_TAKEN;
		slot = dir == URP_DIR_READ ? &io->reader : &io->writer;
		urp__lock(&io->lock);
		*slot = *w;
		taken = io->slots_taken & which;
		io->slots_taken &= ~which;
		/* Re-check under the lock: a Set that landed after our first load either shows
		 * here, or its wake takes the lock after us and finds the waker. */
		word = urp__load_acquire(&io->readiness);
		urp__unlock(&io->lock);
		/* The previous waker was taken by a wake: it is replaced only once it returned. */
		if (taken)
			urp__io_wait_calls(io);
	}
	urp__word_event(word, mask, ev);
	return urp__word_done(word, mask) ? 0 : -EAGAIN;
}

void urp_io_clear_wakers(struct urp_io *io)
{
	uint32_t taken;

	if (!io)
		return;
	urp__debug_io_usable(io, "urp_io_clear_wakers");
	urp__lock(&io->lock);
	memset(&io->reader, 0, sizeof(io->reader));
	memset(&io->writer, 0, sizeof(io->writer));
	taken = io->slots_taken;
	io->slots_taken = 0;
	urp__unlock(&io->lock);
	if (taken)
		urp__io_wait_calls(io);
}

ssize_t urp_io_try_io(struct urp_io *io, unsigned interest, ssize_t (*op)(void *arg), void *arg)
{
	struct urp_event ev;
	ssize_t ret;

	if (!op)
		return -EINVAL;
	ret = urp_io_ready_event(io, interest, &ev);
	if (ret < 0)
		return ret;
	if (ev.shutdown)
		return -ESHUTDOWN;
	if (!ev.ready)
		return -EAGAIN;
	ret = op(arg);
	if (ret == -EAGAIN) {
		/* Refused (-ESTALE) when a completion raced the operation: then the readiness
		 * stays and the caller simply tries again. */
		urp_io_clear_readiness(io, &ev);
		return -EAGAIN;
	}
	return ret;
}
