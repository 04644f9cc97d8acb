/* SPDX-License-Identifier: MIT */
/* The driver's state, shared by the files of uring/. Not installed. */
#ifndef URP_URING_DRIVER_H
#define URP_URING_DRIVER_H

#include <liburing.h>
#include <pthread.h>
#include <stdint.h>

#include "../core/io.h"
#include "../core/stack.h"
#include "../core/word.h"
#include "upcalls.h"
#include "urpoll.h"

/*
 * Tokens (user_data) below URP__TOKEN_MIN are reserved; everything else is the address of a
 * registration, whose core entry comes first: as tokio's token is the address of its
 * ScheduledIo.
 */
#define URP__TOKEN_NONE	  0u /* SQEs whose completion nobody needs */
#define URP__TOKEN_UNPARK 1u /* the unpark eventfd's multishot poll */
#define URP__TOKEN_CTL	  2u /* poll removals */
#define URP__TOKEN_FAULT  3u /* tests/lib/fault.c's own SQEs (URP_FAULT builds); never reaped */
/* Task-work items one io_uring_enter runs under DEFER_TASKRUN (IO_LOCAL_TW_DEFAULT_MAX, 6.13+). */
#define URP__LOCAL_TW_MAX 20u
#define URP__TOKEN_MIN	  4096u

/* urp__reg.cmd: what other threads ask the driver to do with an entry. */
#define URP__CMD_ARM	0x1u
#define URP__CMD_REMOVE 0x2u
#define URP__CMD_CLOSE	0x4u
#define URP__CMD_QUEUED 0x8u /* on the command queue (set by whoever pushes it) */

/* urp__reg.state, driver thread only. */
#define URP__REG_GONE	    0x01u /* deregistered: free after the last poll's final CQE */
#define URP__REG_CLOSE	    0x02u /* close fd when freed */
#define URP__REG_FRESH	    0x04u /* armed, no CQE with F_MORE yet */
#define URP__REG_CANCEL_DUE 0x08u /* gone, its poll's cancel put off for want of an SQE */
#define URP__REG_LISTED	    0x10u /* on the driver's ready list (urp_driver_poll()) */
#define URP__REG_MAGIC	    0x75727030u /* "urp0": urp__reg.magic while the driver owns it */

/*
 * A registration: the core entry and what the driver keeps for it, in one cache pair (128
 * bytes on x86_64 and aarch64). A completion reads the token, then magic, polls_armed and
 * state, the word and the waiting bits, and takes a slot's waker: all within the pair.
 */
struct urp__reg {
	struct urp_io io;		/* first: the token is its address */
	int fd;
	uint8_t interest;		/* URP_READABLE | ... */
	uint8_t state;			/* URP__REG_*, driver thread only */
	uint8_t polls_armed;		/* polls in flight carrying this address */
	uint8_t cmd;			/* URP__CMD_* pending for the driver (atomic) */
	uint8_t poll_errno;		/* why the poll failed, once it did (atomic) */
	uint8_t seen;			/* urp__ready_from_interest(interest) */
	uint16_t arm_cq_full;		/* driver thread: drv->cq_full_seen when armed (mod 2^16) */
	uint32_t magic;			/* URP__REG_MAGIC while the driver owns it */
	struct urp__snode cmd_link;	/* the command queue; the slab's free list */
	struct urp__reg *rearm_next;	/* driver thread: the list of polls to re-arm */
	void *data;			/* the user's (urp_io_set_data()) */
} __attribute__((aligned(URP__CACHE_PAIR)));

_Static_assert(offsetof(struct urp__reg, io) == 0, "the token must be the core entry's address");
#if URP__CACHE_PAIR >= 128
_Static_assert(sizeof(struct urp__reg) == URP__CACHE_PAIR, "a registration spills its pair");
_Static_assert(offsetof(struct urp__reg, data) + sizeof(void *) <= URP__CACHE_PAIR,
	       "a completion's fields span two pairs");
#endif

static inline struct urp__reg *urp__reg_of(struct urp_io *io)
{
	return urp__container_of(io, struct urp__reg, io);
}

/*
 * The driver's allocator of registrations (uring/slab.c): cache-pair slots carved from 64 KiB
 * chunks, no header per slot (aligned_alloc() pays up to a pair of padding and a header per
 * call, and bypasses malloc's caches). Any thread allocates and frees, under a lock; chunks
 * go back when the driver is freed.
 */
struct urp__slab {
	struct urp__lock lock;
	struct urp__snode *free;  /* slots given back */
	char *bump, *bump_end;	  /* the rest of the newest chunk, never used yet */
	struct urp__snode *chunks; /* every chunk, linked through its first slot */
};

int urp__slab_alloc(struct urp__slab *slab, struct urp__reg **reg);
void urp__slab_free(struct urp__slab *slab, struct urp__reg *reg);
void urp__slab_destroy(struct urp__slab *slab);

struct urp__driver_counts {
	uint64_t turns, events, rearms, cq_overflows, unknown_tokens, enters, extra_enters,
		poll_errors, oneshot_files;
};

struct urp_driver {
	struct io_uring ring;
	struct urp_driver_info info;
	unsigned fork_gen;		/* urp__fork_gen() at creation */
	pthread_t thread;		/* the turning thread, once enabled */
	uint32_t claimed;		/* a thread enables or enabled the ring (atomic) */
	uint32_t enabled;		/* thread is set and the ring usable (atomic) */
	uint32_t shutdown;		/* no more registrations (atomic) */
	uint32_t shutdown_pending;	/* entries still to shut down on the next turn (atomic) */
	uint32_t notified;		/* an unpark write is on its way (atomic) */
	bool in_turn;
	bool shutting_down;		/* shutdown_entries() is walking drv->live */
	bool unpark_armed;
	bool put_off;			/* an SQE was missing: the next turn must not block */
	int unpark_fd;
	void *cmd_head;			/* urp__reg.cmd_link stack pushed by any thread (atomic) */
	unsigned cancels_due;		/* driver thread: entries whose cancelled poll has not ended */
	uint16_t cq_full_seen;		/* driver thread: reaps that found the CQ full or overflowed */
	uint64_t registered;		/* accepted, not yet freed (atomic): the limit */
	unsigned max_registrations;
	struct urp__list_head live;	/* driver thread: registered entries */
	struct urp__list_head dead;	/* driver thread: to free at the end of the turn */
	struct urp__reg *rearm;		/* driver thread: polls that ended, to re-arm */
	/* URP_DRIVER_READY_LIST: entries Set since urp_driver_poll() last handed them out, each
	 * once (URP__REG_LISTED), oldest first from ready_first (driver thread). */
	struct urp__reg **ready;
	unsigned ready_first, ready_len, ready_cap;
	bool ready_lost;		/* a Set could not be listed: hand out every live entry */
	struct urp__counters counters;	/* core counts: any thread; the entries' owner */
	struct urp__slab slab;		/* the registrations' memory */
	struct urp__driver_counts st;	/* driver thread writes, anyone reads */
};

/* setup.c */
int urp__ring_setup(struct urp_driver *drv, const struct urp_driver_opts *opts);
int urp__ring_enable(struct urp_driver *drv);
unsigned urp__fork_gen(void);

#endif /* URP_URING_DRIVER_H */
