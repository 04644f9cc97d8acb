/* SPDX-License-Identifier: MIT */
/* The driver's state, shared by the files of uring/. Not installed. */
#ifndef URP_URING_DRIVER_H
#define URP_URING_DRIVER_H

#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

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
#define URP__REG_RING	    0x20u /* ring mode: a struct urp__ring_reg */
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
	size_t slot;		   /* bytes per slot, a multiple of the cache pair */
	struct urp__snode *free;   /* slots given back */
	char *bump, *bump_end;	   /* the rest of the newest chunk, never used yet */
	struct urp__snode *chunks; /* every chunk, linked through its first slot */
};

void urp__slab_init(struct urp__slab *slab, size_t slot);
/* A zeroed slot, or -ENOMEM. */
int urp__slab_alloc(struct urp__slab *slab, void **slot);
void urp__slab_free(struct urp__slab *slab, void *slot);
void urp__slab_destroy(struct urp__slab *slab);

/* ---- ring mode (uring/ring_mode.c, uring/ring_send.c, uring/ring_mode.h) ---- */

/* Tokens carry the kind of request in the low bits a registration's alignment leaves free. */
#define URP__KIND_POLL 0u /* the poll of a poll-mode registration */
#define URP__KIND_RECV 1u /* the multishot recv of a ring-mode registration */
#define URP__KIND_SEND 2u /* its send (or shutdown) in flight */
#define URP__KIND_MASK 3u

/* urp__rbuf.next / urp__ring_reg queue ends: no buffer. */
#define URP__BID_NONE 0xffffu
/* The buffer group of the driver's provided-buffer ring. */
#define URP__BGID 7

/* One send queued on a ring-mode registration. */
struct urp__send {
	struct urp__send *next;
	const char *data;
	uint32_t len, off;	 /* off: sent so far */
	struct urp__rbuf *buf;	 /* a received buffer forwarded (this record is its own, and it
				    goes back to the ring once sent), or NULL: data was copied
				    into this allocation */
	bool fin;		 /* shutdown(SHUT_WR), after everything before it */
	int fin_res;		 /* a FIN: what shutdown() returned (a NOP's CQE completes it) */
};

/* A vectored send: the records at the head of an entry's queue, one sendmsg SQE. Kept until
 * its completion; a driver-wide free list, so that an idle entry holds none. */
#define URP__SENDV_MAX 8
struct urp__sendv {
	struct msghdr msg;
	struct iovec iov[URP__SENDV_MAX];
	struct urp__sendv *next; /* on the free list */
};

/* One buffer of the provided-buffer ring, by buffer id. */
struct urp__rbuf {
	struct urp_buf pub;	 /* what the caller sees */
	struct urp_driver *drv;
	uint16_t bid;
	uint16_t next;		 /* a queue of received buffers, URP__BID_NONE at its end */
	bool out;		 /* not in the ring: queued on an entry, taken, or being sent */
	struct urp__send send;	 /* its send when forwarded: no allocation per forward */
};

struct urp__bufring {
	struct io_uring_buf_ring *br;
	char *mem;		 /* count buffers of size bytes */
	struct urp__rbuf *bufs;	 /* count descriptors */
	unsigned count, size, mask;
	unsigned returned;	 /* added to the ring since the last advance */
	uint64_t out;		 /* handed to us by the kernel and not yet added back (counted:
				    urp_driver_stats() reads it from any thread) */
	struct urp__ring_reg *starved;	/* recvs ended for want of buffers, oldest first */
	struct urp__ring_reg *starved_last;
	unsigned cap, send_hwm;
	struct urp__sendv *sendv_free;	/* vectors not in flight */
	bool recv_limit;	 /* the kernel ends a multishot recv at a byte limit (6.17) */
};

/* urp__ring_reg.rstate, driver thread only */
#define URP__RECV_ARMED	  0x01u /* a multishot recv is in flight */
#define URP__RECV_PAUSED  0x02u /* stopped (limit or cancel) at buf_cap buffers queued */
#define URP__RECV_STARVED 0x04u /* ended with -ENOBUFS, on the starved list */
#define URP__RECV_DONE	  0x08u /* FIN or error: no more recvs */
#define URP__SEND_BUSY	  0x10u /* a send or shutdown is in flight */
#define URP__SEND_FIN	  0x20u /* a FIN is queued or sent: no more sends */
#define URP__RING_FLUSH	  0x40u /* on the flush list: its recv or send is due next turn */

/* A ring-mode registration: a registration and its queues, two cache pairs. */
struct urp__ring_reg {
	struct urp__reg reg;
	uint16_t rq_head, rq_tail, rq_count; /* buffers received, not taken */
	uint8_t rstate;
	uint8_t recv_err;	/* errno of the recv, once it failed */
	uint8_t send_err;	/* errno of a send, once one failed */
	uint8_t sq_inflight;	/* records at the queue's head the send in flight names */
	uint32_t sq_bytes;	/* bytes queued and not sent yet */
	struct urp__send *sq_head, *sq_tail;
	struct urp__sendv *sendv; /* the send in flight, when vectored */
	struct urp__ring_reg *starved_next;
	struct urp__ring_reg *flush_next, *flush_prev; /* on drv->flush (NULL-ended) */
} __attribute__((aligned(URP__CACHE_PAIR)));

_Static_assert(offsetof(struct urp__ring_reg, reg) == 0, "a ring registration is a registration");
_Static_assert(URP__KIND_MASK < URP__CACHE_PAIR, "the token's kind bits overlap the address");

static inline struct urp__ring_reg *urp__ring_reg_of(struct urp__reg *reg)
{
	return urp__container_of(reg, struct urp__ring_reg, reg);
}

struct urp_driver;
/* Check urp_driver_opts' ring-mode fields: 0 or -EINVAL. The ring is set up when the first
 * ring-mode registration comes. */
int urp__ring_opts_check(const struct urp_driver_opts *opts);
void urp__bufring_free(struct urp_driver *drv);
/* A completion of a ring-mode registration's recv or send. Returns 1 for a readiness event. */
int urp__ring_dispatch(struct urp_driver *drv, struct urp__reg *reg, unsigned kind,
		       const struct io_uring_cqe *cqe);
/* At the start of a turn, after its commands: buffers back into the kernel's view, starved
 * recvs re-armed, the SQEs of recvs and sends due prepared (none before: see ring_mode.c). */
void urp__ring_turn_start(struct urp_driver *drv);
/* A ring-mode registration is deregistered: cancel its requests, give its buffers back.
 * Returns how many cancels went out (0: none needed; -1: no SQE, retry next turn). */
int urp__ring_remove(struct urp_driver *drv, struct urp__reg *reg);
/* A ring-mode registration's recv is due (on registration): armed at the next turn's start. */
void urp__ring_arm(struct urp_driver *drv, struct urp__reg *reg);
/* Free what a ring-mode registration still holds as it is freed (its queued sends). */
void urp__ring_free_reg(struct urp_driver *drv, struct urp__reg *reg);

struct urp__driver_counts {
	uint64_t turns, events, rearms, cq_overflows, unknown_tokens, enters, extra_enters,
		poll_errors, oneshot_files;
	uint64_t recv_bufs, recv_bytes, enobufs, paused, sends, send_bytes;
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
	struct urp__slab ring_slab;	/* ring-mode registrations' memory */
	struct urp__bufring bufring;	/* ring mode: the provided-buffer ring (none: .br NULL) */
	struct urp__ring_reg *flush;	/* ring-mode entries whose recv or send SQE is due */
	int ring_mode;			/* 0: not set up yet; 1: ready; -EOPNOTSUPP: unavailable */
	struct urp_driver_opts ring_opts; /* the buffers asked for, set up at first use */
	struct urp__driver_counts st;	/* driver thread writes, anyone reads */
};

/* driver.c */
/* An SQE, submitting what is queued when the SQ is full (four tries), or NULL. */
struct io_uring_sqe *urp__get_sqe(struct urp_driver *drv);
/* Arm reg's request (its poll, or in ring mode its recv), on the turning thread. */
void urp__arm(struct urp_driver *drv, struct urp__reg *reg);
/* The entry's request failed for good (err) or could not be armed: ERROR, shut down. */
void urp__poll_failed(struct urp_driver *drv, struct urp__reg *reg, int err);
/* This process is a child of the one that created drv (fork()). */
bool urp__driver_forked(const struct urp_driver *drv);

/* entries.c */
/* The counters' release of registrations (their slot goes back to the slab). */
void urp__reg_release(struct urp_io *io);
/* urp_register() and urp_register_ring(). */
int urp__register(struct urp_driver *drv, int fd, unsigned interest, bool ring,
		  struct urp_io **out);
/* Run the commands other threads queued (registrations to arm, deregistrations). */
void urp__run_commands(struct urp_driver *drv);
/* In urp_driver_free(): queued entries become live (or gone), nothing is armed. */
void urp__adopt_commands(struct urp_driver *drv);
/* One of reg's requests ended (its count already dropped): a deregistered entry whose last
 * request ended goes. */
void urp__reg_request_ended(struct urp_driver *drv, struct urp__reg *reg);
/* reg's requests all ended after its deregistration: free it at the end of the turn. */
void urp__retire(struct urp_driver *drv, struct urp__reg *reg);
/* Shut every live entry down and wake its waiters (urp_driver_shutdown()). */
void urp__shutdown_entries(struct urp_driver *drv);
/* Free an entry / every entry whose requests all ended. */
void urp__free_entry(struct urp_driver *drv, struct urp__reg *reg);
void urp__free_dead(struct urp_driver *drv);

/* The driver an entry is registered with, or NULL for a detached entry: the counters it
 * counts into are its owner's. */
static inline struct urp_driver *urp__owner_of(const struct urp_io *io)
{
	if (io->counters->release != urp__reg_release)
		return NULL;
	return urp__container_of(io->counters, struct urp_driver, counters);
}

/* ready_list.c */
void urp__ready_add_room(struct urp_driver *drv, struct urp__reg *reg);
void urp__ready_remove(struct urp_driver *drv, struct urp__reg *reg);

/* reg's word was Set (or shut down): list it for urp_driver_poll(), once until handed out.
 * Without memory to list it, every live entry is handed out next time (ready_lost): events
 * may then be reported that are old, never lost. Inline: every completion passes here. */
static inline void urp__ready_add(struct urp_driver *drv, struct urp__reg *reg)
{
	unsigned end;

	if (!drv->ready || (reg->state & URP__REG_LISTED))
		return;
	end = drv->ready_first + drv->ready_len;
	if (__builtin_expect(end == drv->ready_cap, 0)) {
		urp__ready_add_room(drv, reg);
		return;
	}
	drv->ready[end] = reg;
	drv->ready_len++;
	reg->state |= URP__REG_LISTED;
}

/* setup.c */
int urp__ring_setup(struct urp_driver *drv, const struct urp_driver_opts *opts);
int urp__ring_enable(struct urp_driver *drv);
unsigned urp__fork_gen(void);

#endif /* URP_URING_DRIVER_H */
