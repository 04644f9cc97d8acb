/* SPDX-License-Identifier: MIT */
/*
 * One readiness word and its waiters: tokio's ScheduledIo in C.
 *
 * Lost-wakeup freedom rests on two orders. A waiter loads the word, locks, publishes that it
 * waits (urp_io.waiting), and loads the word again. The driver updates the word, then looks at
 * urp_io.waiting and, if someone may wait for the new bits, locks to collect wakers. The
 * publish and the update are sequentially consistent read-modify-writes, each followed by a
 * sequentially consistent load of the other's word (Dekker): either the waiter's second load
 * sees the update, or the driver sees the waiter. (tests/model/: the fast path and its mutant.)
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

static void detached_release(struct urp_io *io);

/* Detached entries (urp_io_new) count here; each gets a cache pair to itself. */
static struct urp__counters detached_counters = { .release = detached_release };
static uint64_t detached_live;

struct detached {
	struct urp_io io;
} __attribute__((aligned(URP__CACHE_PAIR)));

_Static_assert(sizeof(struct detached) % URP__CACHE_PAIR == 0, "a detached entry shares a pair");

static uintptr_t io_token(const struct urp_io *io)
{
	return (uintptr_t)io;
}

void urp__io_init(struct urp_io *io, struct urp__counters *counters)
{
	urp__list_init(&io->waiters);
	urp__list_init(&io->link);
	urp__lock_init(&io->lock);
	io->counters = counters;
	urp__debug_io_born(io);
}

void urp__io_release(struct urp_io *io)
{
	/* Pairs with the release half of the decrement in calls_put(). */
	if (!(urp__fetch_or_acq_rel(&io->calls, URP__CALLS_RELEASED) & URP__CALLS_MASK)) {
		urp__debug_io_died(io);
		io->counters->release(io);
	}
}

/* One wake is done calling wakers it took from io. The last one after a release frees it. */
static void calls_put(struct urp_io *io)
{
	if (urp__fetch_sub_acq_rel(&io->calls, 1) == (URP__CALLS_RELEASED | 1)) {
		urp__debug_io_died(io);
		io->counters->release(io);
	}
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
	free(urp__container_of(io, struct detached, io));
}

int urp_io_new(struct urp_io **out)
{
	struct detached *d;

	if (!out)
		return -EINVAL;
	d = aligned_alloc(URP__CACHE_PAIR, sizeof(*d));
	if (!d)
		return -ENOMEM;
	memset(d, 0, sizeof(*d));
	urp__io_init(&d->io, &detached_counters);
	urp__count(&detached_live, 1);
	*out = &d->io;
	return 0;
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

static uint32_t io_load(const struct urp_io *io)
{
	/* Pairs with the release half of the CAS in urp__io_set_readiness(). */
	return urp__load_acquire(&io->readiness);
}

uint32_t urp_io_word(const struct urp_io *io)
{
	urp__debug_io_usable(io, "urp_io_word");
	return io_load(io);
}

/* ---- wake ---- */

_Static_assert(URP__WAITING_READER == URP_READABLE && URP__WAITING_WRITER == URP_WRITABLE &&
		       (URP_READ_CLOSED >> 2) == URP_READABLE && (URP_WRITE_CLOSED >> 2) == URP_WRITABLE,
	       "urp__waiting_for() folds the closed bits onto their direction's slot bit");

/* Take the wakers of the slots `slots` (URP__WAITING_READER/WRITER) names into the batch.
 * Returns the waiting bits to store. */
static inline __attribute__((always_inline)) unsigned __take_slots(struct urp_io *io,
								    unsigned slots, unsigned waiting,
								    struct urp_waker *batch,
								    unsigned *n)
{
	if ((slots & URP__WAITING_READER) && io->reader.wake) {
		batch[(*n)++] = io->reader;
		io->reader.wake = NULL;
	}
	if ((slots & URP__WAITING_WRITER) && io->writer.wake) {
		batch[(*n)++] = io->writer;
		io->writer.wake = NULL;
	}
	return waiting & ~slots;
}

/*
 * Collect, under the lock, the list's wakers ready concerns, after the n already in the batch,
 * at most URP__WAKE_BATCH in all. Returns how many the batch holds, and sets *more when it
 * filled up (others may still match).
 */
static unsigned __collect_list(struct urp_io *io, unsigned ready, struct urp_waker *batch,
			       unsigned n, bool *more)
{
	struct urp__list_head *pos, *tmp;

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
		if (w->waker.wake)
			batch[n++] = w->waker;
		w->waker.wake = NULL;
		w->waker.arg = NULL;
	}
	return n;
}

static inline __attribute__((always_inline)) void __count_batch(struct urp_io *io, unsigned n,
							    unsigned ready)
{
	urp__count(&io->counters->wake_batches, 1);
	urp__count(&io->counters->wakes, n);
	urp__probe_wake_batch(io_token(io), n, ready);
}

static inline __attribute__((always_inline)) void call_wakers(struct urp_io *io,
							  const struct urp_waker *batch,
							  unsigned n)
{
	struct wake_frame frame = { io, wake_frames };
	unsigned i;

	wake_frames = &frame;
	for (i = 0; i < n; i++)
		batch[i].wake(batch[i].arg);
	wake_frames = frame.outer;
}

/*
 * The wake of urp__io_wake_waiting() when futures may be linked: the slots and the list, in batches of up
 * to 32, the lock dropped to call each batch and taken again, restarting from the list head
 * (woken nodes are unlinked). Apart, so that the common wake (a slot's waker) keeps a small
 * frame.
 */
static void __attribute__((noinline)) io_wake_list(struct urp_io *io, unsigned ready,
						    unsigned slots)
{
	struct urp_waker batch[URP__WAKE_BATCH];
	unsigned waiting, n = 0;
	bool more;

	urp__lock(&io->lock);
	waiting = __take_slots(io, slots, urp__load_relaxed(&io->waiting), batch, &n);
	n = __collect_list(io, ready, batch, n, &more);
	if (urp__list_empty(&io->waiters))
		waiting &= ~URP__WAITING_LIST;
	urp__store_relaxed(&io->waiting, waiting);
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
		n = __collect_list(io, ready, batch, 0, &more);
		if (urp__list_empty(&io->waiters))
			urp__store_relaxed(&io->waiting,
					   urp__load_relaxed(&io->waiting) & ~URP__WAITING_LIST);
		if (n == 0) {
			urp__unlock(&io->lock);
			break;
		}
	}
	calls_put(io);
}

/*
 * The wake of urp__io_wake() when someone may wait for the bits: wake every waiter that ready
 * concerns, never calling a waker with the lock held: a woken task
 * may cancel, poll, deregister or free at once.
 *
 * Fast path: when urp_io.waiting says nobody waits for these bits, no lock is taken. Sound
 * because the caller's Set and this load are sequentially consistent, as are a waiter's
 * publish and its re-check (see the head of this file). The common wake, a slot's waker with
 * no future linked, takes at most two wakers and needs no batch array (io_wake_list() does).
 *
 * From the first waker taken until the last one returns, the wake holds one count in io->calls:
 * it keeps the entry's memory alive (a release defers the free to calls_put()), and lets a
 * cancel or clear wait for wakers already taken (urp__io_wait_calls()). After calls_put() the
 * wake touches nothing.
 */
void urp__io_wake_waiting(struct urp_io *io, unsigned ready, unsigned want, unsigned waiting)
{
	struct urp_waker batch[2];
	unsigned n = 0;

	if (!(waiting & URP__WAITING_LIST)) {
		urp__lock(&io->lock);
		waiting = urp__load_relaxed(&io->waiting);
		/* A future linked since the load above: the full wake. */
		if (!(waiting & URP__WAITING_LIST)) {
			urp__store_relaxed(&io->waiting,
					   __take_slots(io, waiting & want, waiting, batch, &n));
			if (n == 0) {
				urp__unlock(&io->lock);
				return;
			}
			urp__fetch_add_relaxed(&io->calls, 1);
			__count_batch(io, n, ready);
			urp__unlock(&io->lock);
			call_wakers(io, batch, n);
			calls_put(io);
			return;
		}
		urp__unlock(&io->lock);
	}
	io_wake_list(io, ready, want & (URP__WAITING_READER | URP__WAITING_WRITER));
}

void urp__io_shutdown(struct urp_io *io)
{
	urp__fetch_or_seq_cst(&io->readiness, URP_WORD_SHUTDOWN);
	urp__io_wake(io, URP_READY_ALL);
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

/* ---- the consumer's side ---- */

int urp_io_ready_event(struct urp_io *io, unsigned interest, struct urp_event *ev)
{
	if (!io || !ev || !urp__interest_valid(interest))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_ready_event");
	urp__word_event(io_load(io), urp__ready_from_interest(interest), ev);
	return 0;
}

/* A completion landed after the snapshot: its edge may be exactly the data the caller's EAGAIN
 * missed, and it will not be reported again. Count and probe the refusal. */
static int __attribute__((noinline, cold)) clear_refused(struct urp_io *io, unsigned tick,
							  uint32_t cur)
{
	urp__count(&io->counters->stale_rejects, 1);
	urp__probe_stale_reject(io_token(io), tick, urp_word_tick(cur));
	return -ESTALE;
}

/* Clear: remove ready (never the closed bits) if the tick is still tick. Returns 0 or -ESTALE. */
static inline __attribute__((always_inline)) int io_clear(struct urp_io *io, unsigned ready,
							   unsigned tick)
{
	/* Closed states are final: the kernel will not report them again, so never forget them. */
	uint32_t clear = ready & (URP_READY_ALL & ~(URP_READ_CLOSED | URP_WRITE_CLOSED));
	uint32_t cur = urp__load_relaxed(&io->readiness);

	do {
		if (urp_word_tick(cur) != tick)
			return clear_refused(io, tick, cur);
		if (!(cur & clear))
			return 0;
	} while (!urp__cas_acq_rel(&io->readiness, &cur, cur & ~clear));
	return 0;
}

int urp_io_clear_readiness(struct urp_io *io, const struct urp_event *ev)
{
	if (!io || !ev || ev->tick > URP_TICK_MAX)
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_clear_readiness");
	return io_clear(io, ev->ready, ev->tick);
}

static inline unsigned direction_mask(enum urp_direction dir)
{
	return dir == URP_DIR_READ ? URP__DIR_READ_MASK : URP__DIR_WRITE_MASK;
}

/*
 * Store w in dir's slot and publish it (URP__WAITING_*), then load the word again: a Set after
 * the caller's first load either shows in this load, or its wake sees the published bit and
 * finds the waker. Returns the word of the re-check.
 */
static inline __attribute__((always_inline)) uint32_t slot_wait(struct urp_io *io,
								 enum urp_direction dir,
								 const struct urp_waker *w)
{
	unsigned which = dir == URP_DIR_READ ? URP__WAITING_READER : URP__WAITING_WRITER;
	uint32_t word;

	urp__lock(&io->lock);
	*(dir == URP_DIR_READ ? &io->reader : &io->writer) = *w;
	urp__fetch_or_seq_cst(&io->waiting, which);
	word = urp__load_seq_cst(&io->readiness);
	urp__unlock(&io->lock);
	/* A waker that a wake took from this slot is replaced only once it returned: wait while
	 * wakes still call (rarely: by now they have). Pairs with calls_put()'s release. */
	if (__builtin_expect(urp__load_acquire(&io->calls) & URP__CALLS_MASK, 0))
		urp__io_wait_calls(io);
	return word;
}

int urp_io_poll_ready(struct urp_io *io, enum urp_direction dir, const struct urp_waker *w,
		      struct urp_event *ev)
{
	unsigned mask;
	uint32_t word;

	if (!io || !ev || (dir != URP_DIR_READ && dir != URP_DIR_WRITE))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_poll_ready");
	mask = direction_mask(dir);
	word = io_load(io);
	if (!urp__word_done(word, mask) && w)
		word = slot_wait(io, dir, w);
	urp__word_event(word, mask, ev);
	return urp__word_done(word, mask) ? 0 : -EAGAIN;
}

int urp_io_clear_poll(struct urp_io *io, enum urp_direction dir, const struct urp_waker *w,
		      struct urp_event *ev)
{
	unsigned mask;
	uint32_t word;

	if (!io || !ev || !w || ev->tick > URP_TICK_MAX ||
	    (dir != URP_DIR_READ && dir != URP_DIR_WRITE))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_clear_poll");
	mask = direction_mask(dir);
	/* Refused (stale): a newer completion kept the readiness, report it. */
	if (io_clear(io, ev->ready & mask, ev->tick) == 0)
		word = slot_wait(io, dir, w);
	else
		word = io_load(io);
	urp__word_event(word, mask, ev);
	return urp__word_done(word, mask) ? 0 : -EAGAIN;
}

void urp_io_clear_wakers(struct urp_io *io)
{
	if (!io)
		return;
	urp__debug_io_usable(io, "urp_io_clear_wakers");
	urp__lock(&io->lock);
	memset(&io->reader, 0, sizeof(io->reader));
	memset(&io->writer, 0, sizeof(io->writer));
	urp__store_relaxed(&io->waiting, urp__load_relaxed(&io->waiting) & URP__WAITING_LIST);
	urp__unlock(&io->lock);
	/* A waker a wake took may still run: return once it has. */
	urp__io_wait_calls(io);
}

ssize_t urp_io_try_io(struct urp_io *io, unsigned interest, ssize_t (*op)(void *arg), void *arg)
{
	unsigned ready;
	uint32_t word;
	ssize_t ret;

	if (!io || !op || !urp__interest_valid(interest))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_try_io");
	word = io_load(io);
	if (urp_word_shutdown(word))
		return -ESHUTDOWN;
	ready = urp_word_ready(word) & urp__ready_from_interest(interest);
	if (!ready)
		return -EAGAIN;
	ret = op(arg);
	/* Refused (-ESTALE) when a completion raced the operation: then the readiness stays and
	 * the caller simply tries again. */
	if (ret == -EAGAIN)
		io_clear(io, ready, urp_word_tick(word));
	return ret;
}
