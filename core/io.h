/* SPDX-License-Identifier: MIT */
/*
 * The entry behind struct urp_io, and what core/ offers a driver. Not installed: the layout may
 * change without notice.
 */
#ifndef URP_CORE_IO_H
#define URP_CORE_IO_H

#include <stdint.h>

#include "list.h"
#include "lock.h"
#include "urpoll.h"

/* Two cache lines: adjacent-line prefetch pulls pairs, so one line per entry still shares. */
#if defined(__x86_64__) || defined(__aarch64__) || defined(__powerpc64__)
#define URP__CACHE_PAIR 128
#elif defined(__s390x__)
#define URP__CACHE_PAIR 256
#elif defined(__arm__) || defined(__mips__) || defined(__sparc__) || defined(__hexagon__)
#define URP__CACHE_PAIR 32
#elif defined(__m68k__)
#define URP__CACHE_PAIR 16
#else
#define URP__CACHE_PAIR 64
#endif

/* Wakers collected under the lock before it is dropped to call them. */
#define URP__WAKE_BATCH 32

/*
 * urp_io.waiting: who may be waiting. Written under the lock; also read without it, after a
 * Set, to skip the lock when nobody can be waiting for the new bits (io_wake()).
 *
 *   | bit 0       | bit 1       | bit 2                                      |
 *   | READER slot | WRITER slot | LIST: a future may be linked               |
 *
 * READER/WRITER: the slot holds a waker (a wake that takes it clears the bit). LIST: set by a
 * future before it re-checks the word, cleared by whoever empties the list.
 */
#define URP__WAITING_READER 0x01u
#define URP__WAITING_WRITER 0x02u
#define URP__WAITING_LIST   0x04u

#define URP__CALLS_RELEASED 0x80000000u /* urp_io.calls: the owner released the entry */
#define URP__CALLS_MASK	    0x7fffffffu

/* What an entry counts into and who frees it: its driver's, or the process-wide set of detached
 * entries. One per owner, not per entry. The counts are updated from any thread (atomic). */
struct urp__counters {
	uint64_t stale_rejects;
	uint64_t wake_batches;
	uint64_t wakes;
	/* Frees io's memory once its owner released it and no wake runs on it any more. */
	void (*release)(struct urp_io *io);
};

/* A waiter on an entry's list (the readiness future's node). Linked while waiting; a wake
 * unlinks it with del_init under the lock, which is how its owner learns it was woken. */
struct urp__waiter {
	struct urp__list_head node;
	struct urp_waker waker;
	unsigned interest;
};

/*
 * The core entry: tokio's ScheduledIo. Like it, it keeps one link for its driver and nothing
 * else of the driver's: a driver embeds it first in a registration of its own (uring/driver.h:
 * struct urp__reg, reached with container_of), aligned and sized to the cache pair so that
 * entries never share one; detached entries (urp_io_new()) get a pair alone. The fields a
 * completion touches come first: the word, the waiting bits, the lock, the slots.
 */
struct urp_io {
	/* The packed word (core/word.h). Written only through CAS / fetch-or. */
	uint32_t readiness;
	/* URP__WAITING_* (atomic; written under lock). */
	uint32_t waiting;
	struct urp__lock lock;
	/* Wakes that took wakers and have not finished calling them (atomic), plus
	 * URP__CALLS_RELEASED once the owner let go: the last such wake then frees the entry. */
	uint32_t calls;
	struct urp_waker reader;
	struct urp_waker writer;
	struct urp__list_head waiters;
	struct urp__counters *counters;
	/* The driver's list of live registrations; unused by core. */
	struct urp__list_head link;
};

/* Set up a zeroed entry counting into counters. */
void urp__io_init(struct urp_io *io, struct urp__counters *counters);
/* The owner is done with io: free it (counters->release) now, or when the last wake running on
 * it returns. */
void urp__io_release(struct urp_io *io);
/*
 * Wait until no other thread is still calling wakers it took from io (wakes on this thread's
 * stack do not count: a waker may cancel its own future). After this, a waker that was taken
 * before the caller's unlink or clear has returned, so its arg may be invalidated. Wakers
 * must not block, so this is a short wait that only happens in that race window.
 */
void urp__io_wait_calls(struct urp_io *io);
/* Shutdown for the driver: urp_io_shutdown() without the debug build's check that the caller
 * still owns io (the driver applies completions to entries that a user may be deregistering on
 * another thread). */
void urp__io_shutdown(struct urp_io *io);

/* The waiting bits a wake of ready concerns: the list, and the slot of each direction it has
 * (READ: READABLE or READ_CLOSED, bits 0 and 2; WRITE: bits 1 and 3). */
static inline unsigned urp__waiting_for(unsigned ready)
{
	return URP__WAITING_LIST |
	       ((ready | (ready >> 2)) & (URP__WAITING_READER | URP__WAITING_WRITER));
}

/* The wake of urp__io_wake() when urp_io.waiting says someone may wait for want (core/io.c). */
void urp__io_wake_waiting(struct urp_io *io, unsigned ready, unsigned want, unsigned waiting);

/*
 * Wake(ready). Most completions find nobody waiting: the check is one load, inline. Sound
 * because the caller's update of the word and this load are sequentially consistent, as are a
 * waiter's publish and its re-check (core/io.c, the head comment).
 */
static inline void urp__io_wake(struct urp_io *io, unsigned ready)
{
	unsigned want = urp__waiting_for(ready);
	unsigned waiting = __atomic_load_n(&io->waiting, __ATOMIC_SEQ_CST);

	if (waiting & want)
		urp__io_wake_waiting(io, ready, want, waiting);
}

/*
 * Set(ready), then Wake(ready): one CAS ORs the bits in and advances the tick (mod 2^15),
 * keeping the shutdown bit; the word is updated before anyone is woken, and only the new bits
 * wake (a waiter for bits already set has seen them at its own check). Inline: the driver
 * runs it for every completion. urp_io_set_readiness() without the debug build's ownership
 * check.
 */
static inline void urp__io_set_readiness(struct urp_io *io, unsigned ready)
{
	uint32_t cur = __atomic_load_n(&io->readiness, __ATOMIC_RELAXED), next;

	ready &= URP_READY_ALL;
	/* Sequentially consistent: the load of urp_io.waiting in urp__io_wake() must not pass it. */
	do {
		next = ((cur + (1u << URP_WORD_TICK_SHIFT)) & URP_WORD_TICK_MASK) |
		       (cur & (URP_WORD_SHUTDOWN | URP_WORD_READY_MASK)) | ready;
	} while (!__atomic_compare_exchange_n(&io->readiness, &cur, next, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
	if (ready)
		urp__io_wake(io, ready);
}

#endif /* URP_CORE_IO_H */
