/* SPDX-License-Identifier: MIT */
/* The driver's state, shared by the files of uring/. Not installed. */
#ifndef URP_URING_DRIVER_H
#define URP_URING_DRIVER_H

#include <liburing.h>
#include <pthread.h>
#include <stdint.h>

#include "../core/io.h"
#include "upcalls.h"
#include "urpoll.h"

/*
 * Tokens (user_data) below URP__TOKEN_MIN are reserved; everything else is the address of a
 * struct urp_io, as tokio's token is the address of its ScheduledIo.
 */
#define URP__TOKEN_NONE	  0u /* SQEs whose completion nobody needs */
#define URP__TOKEN_UNPARK 1u /* the unpark eventfd's multishot poll */
#define URP__TOKEN_CTL	  2u /* poll removals */
#define URP__TOKEN_FAULT  3u /* tests/lib/fault.c's own SQEs (URP_FAULT builds); never reaped */
/* Task-work items one io_uring_enter runs under DEFER_TASKRUN (IO_LOCAL_TW_DEFAULT_MAX, 6.13+). */
#define URP__LOCAL_TW_MAX 20u
#define URP__TOKEN_MIN	  4096u

/* urp_io.cmd: what other threads ask the driver to do with an entry. */
#define URP__CMD_ARM	0x1u
#define URP__CMD_REMOVE 0x2u
#define URP__CMD_CLOSE	0x4u
#define URP__CMD_QUEUED 0x8u /* on the command queue (set by whoever pushes it) */

/* urp_io.driver_state, driver thread only. */
#define URP__REG_GONE	 0x01u /* deregistered: free after the last poll's final CQE */
#define URP__REG_CLOSE	 0x02u /* close fd when freed */
#define URP__REG_FRESH	 0x04u /* armed, no CQE with F_MORE yet */
#define URP__REG_CANCEL_DUE 0x08u /* gone, its poll's cancel put off for want of an SQE */
#define URP__REG_MAGIC	 0x75727030u /* "urp0": urp_io.magic while the driver owns it */

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
	void *cmd_head;			/* urp_io.cmd_link stack pushed by any thread (atomic) */
	unsigned cancels_due;		/* driver thread: entries whose cancelled poll has not ended */
	uint32_t cq_full_seen;		/* driver thread: reaps that found the CQ full or overflowed */
	uint64_t registered;		/* accepted, not yet freed (atomic): the limit */
	unsigned max_registrations;
	struct urp__list_head live;	/* driver thread: registered entries */
	struct urp__list_head dead;	/* driver thread: to free at the end of the turn */
	struct urp_io *rearm;		/* driver thread: polls that ended, to re-arm */
	struct urp__counters counters;	/* core counts: any thread */
	struct urp__driver_counts st;	/* driver thread writes, anyone reads */
};

/* setup.c */
int urp__ring_setup(struct urp_driver *drv, const struct urp_driver_opts *opts);
int urp__ring_enable(struct urp_driver *drv);
unsigned urp__fork_gen(void);

#endif /* URP_URING_DRIVER_H */
