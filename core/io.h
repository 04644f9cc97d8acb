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
#include "stack.h"
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

#define URP__CALLS_RELEASED    0x80000000u /* urp_io.calls: the owner released the entry */
#define URP__CALLS_MASK  0x7fffffffu
#define URP__SLOT_READ_TAKEN  0x1u
#define URP__SLOT_WRITE_TAKEN 0x2u

/* What an entry counts into: its driver's set, or the process-wide set of detached entries.
 * Updated from any thread, hence atomic. */
struct urp__counters {
	uint64_t stale_rejects;
	uint64_t wake_batches;
	uint64_t wakes;
};

/* A waiter on an entry's list (the readiness future's node). Linked while waiting; a wake
 * unlinks it with del_init under the lock, which is how its owner learns it was woken. */
struct urp__waiter {
	struct urp__list_head node;
	struct urp_waker waker;
	unsigned interest;
};

struct urp_io {
	/* The driver's list of live registrations; unused by core. */
	struct urp__list_head link;
	/* The packed word (core/word.h). Written only through CAS / fetch-or. */
	uint32_t readiness;
	/* Wakes that took wakers and have not finished calling them (atomic), plus
	 * URP__CALLS_RELEASED once the owner let go: the last such wake then frees the entry. */
	uint32_t calls;
	/* Guarded by lock: slots whose waker a wake took (URP__SLOT_*_TAKEN). */
	uint32_t slots_taken;
	struct urp__counters *counters;
	void (*release)(struct urp_io *io);
	struct urp__lock lock;
	struct urp__list_head waiters;
	struct urp_waker reader;
	struct urp_waker writer;
	/* Owned by the driver (uring/); core never touches them. */
	void *owner;
	struct urp__snode cmd_link; /* link in the driver's command queue */
	uint32_t cmd;		  /* commands pending for the driver (atomic) */
	uint32_t magic;		  /* set while the driver owns a live entry */
	uint32_t poll_errno;	  /* why the poll failed, once it did (atomic; urp_io_poll_error) */
	uint32_t arm_cq_full;	  /* driver thread: drv->cq_full_seen when the poll was armed */
	int fd;
	unsigned interest;
	unsigned driver_state;	  /* driver thread only */
	unsigned polls_armed;	  /* polls in flight carrying this address */
	struct urp_io *rearm_next; /* driver thread: link in the list of polls to re-arm */
} __attribute__((aligned(URP__CACHE_PAIR)));

_Static_assert(_Alignof(struct urp_io) == URP__CACHE_PAIR, "urp_io not cache-pair aligned");
_Static_assert(sizeof(struct urp_io) % URP__CACHE_PAIR == 0, "urp_io shares its last line");

/* Allocate a zeroed entry counting into counters; release is called to free its memory once
 * urp__io_release() was called and no wake still runs on it. Returns 0 or -ENOMEM. */
int urp__io_alloc(struct urp_io **io, struct urp__counters *counters,
		  void (*release)(struct urp_io *io));
/* Set and Shutdown for the driver: urp_io_set_readiness() and urp_io_shutdown() without the
 * debug build's check that the caller still owns io (the driver applies completions to
 * entries that a user may be deregistering on another thread). */
void urp__io_set_readiness(struct urp_io *io, unsigned ready);
void urp__io_shutdown(struct urp_io *io);
/* Free an entry's memory now (the release callbacks end here). */
void urp__io_destroy(struct urp_io *io);
/* The owner is done with io: free it now, or when the last wake running on it returns. */
void urp__io_release(struct urp_io *io);
/*
 * Wait until no other thread is still calling wakers it took from io (wakes on this thread's
 * stack do not count: a waker may cancel its own future). After this, a waker that was taken
 * before the caller's unlink or clear has returned, so its arg may be invalidated. Wakers
 * must not block, so this is a short wait that only happens in that race window.
 */
void urp__io_wait_calls(struct urp_io *io);

#endif /* URP_CORE_IO_H */
