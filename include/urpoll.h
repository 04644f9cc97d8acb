/* SPDX-License-Identifier: MIT */
/*
 * urpoll: a readiness poller driven by io_uring alone.
 *
 * The readiness core (tokio's ScheduledIo in C) and the io_uring driver that feeds it. Every
 * int function returns >= 0 on success and a negative errno on failure; bad arguments give
 * -EINVAL. Nothing here sets errno.
 */
#ifndef URPOLL_H
#define URPOLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library builds with -fvisibility=hidden: what is declared here is what it exports. */
#pragma GCC visibility push(default)

#define URPOLL_VERSION_MAJOR 0
#define URPOLL_VERSION_MINOR 1

/* Ready bits (what a file descriptor is); interest bits use the same values. */
#define URP_READABLE	 0x01u
#define URP_WRITABLE	 0x02u
#define URP_READ_CLOSED	 0x04u
#define URP_WRITE_CLOSED 0x08u
#define URP_PRIORITY	 0x10u
#define URP_ERROR	 0x20u
#define URP_READY_ALL	 0x3fu
/* Interest bits a registration or a waiter may ask for. */
#define URP_INTEREST_ALL (URP_READABLE | URP_WRITABLE | URP_PRIORITY | URP_ERROR)

/* Largest tick value; ticks count completions modulo URP_TICK_MAX + 1. */
#define URP_TICK_MAX 0x7fffu

/*
 * Ready bits for a poll(2) mask (the res of an io_uring poll CQE): READABLE for POLLIN or
 * POLLPRI, WRITABLE for POLLOUT, READ_CLOSED for POLLHUP or POLLIN|POLLRDHUP, WRITE_CLOSED for
 * POLLHUP, POLLOUT|POLLERR or POLLERR alone, ERROR for POLLERR, PRIORITY for POLLPRI.
 */
unsigned urp_ready_from_poll(unsigned poll_mask);
/* The ready bits an interest sees: the union over each interest bit given. */
unsigned urp_ready_from_interest(unsigned interest);

/* A snapshot of one entry: ready bits (masked by the caller's interest) and the tick they
 * were read at. Pass it back to urp_io_clear_readiness() after an operation hit EAGAIN. */
struct urp_event {
	unsigned ready;
	unsigned tick;
	bool shutdown;
};

/* A waker is copied when stored; arg must stay valid until the waker is called, replaced,
 * cleared, or its future cancelled. */
struct urp_waker {
	void (*wake)(void *arg);
	void *arg;
};

enum urp_direction { URP_DIR_READ, URP_DIR_WRITE };

struct urp_io;

/* ---- core: one readiness word and its waiters (works without any driver) ---- */

/* Allocate a detached entry (word 0, no waiters). Returns 0 or -ENOMEM / -EINVAL. */
int urp_io_new(struct urp_io **io);
/* Free a detached entry: shuts it down and wakes every waiter first. Safe to call from a
 * waker of the same entry; the memory goes when the last running wake returns. */
void urp_io_free(struct urp_io *io);
/* Driver side: OR ready into the word, advance the tick by one, then wake the waiters whose
 * interest overlaps ready (not the whole word). */
void urp_io_set_readiness(struct urp_io *io, unsigned ready);
/* Set the sticky shutdown bit and wake everything. Idempotent. */
void urp_io_shutdown(struct urp_io *io);
/* The raw packed word: shutdown bit 31 | tick bits 30..16 | readiness bits 15..0. */
uint32_t urp_io_word(const struct urp_io *io);
/* Snapshot the readiness seen by interest into *ev. Returns 0, or -EINVAL. */
int urp_io_ready_event(struct urp_io *io, unsigned interest, struct urp_event *ev);
/* Remove ev->ready (never READ_CLOSED or WRITE_CLOSED) if the word's tick still equals
 * ev->tick. Returns 0, -ESTALE when a newer completion arrived since the snapshot (nothing is
 * cleared; counted as a stale-event rejection), or -EINVAL. */
int urp_io_clear_readiness(struct urp_io *io, const struct urp_event *ev);
/* Single-waiter slot per direction. Returns 0 with *ev filled when the direction is ready or
 * the entry is shut down; otherwise stores a copy of *w (the last poller wins) and returns
 * -EAGAIN. w may be NULL to poll without registering. */
int urp_io_poll_ready(struct urp_io *io, enum urp_direction dir, const struct urp_waker *w,
		      struct urp_event *ev);
/* Drop the wakers stored in both direction slots. */
void urp_io_clear_wakers(struct urp_io *io);
/* Run op only if the entry looks ready for interest: -ESHUTDOWN or -EAGAIN without calling
 * op; otherwise op's result, and when op returns -EAGAIN the snapshot's bits are cleared
 * (tick-checked) before -EAGAIN is returned. */
ssize_t urp_io_try_io(struct urp_io *io, unsigned interest, ssize_t (*op)(void *arg), void *arg);

/*
 * The readiness future: caller-owned storage (no allocation), one per waiting task. Its size
 * is public so it can live on a stack or in a task; its fields are not.
 */
struct urp_readiness {
	_Alignas(8) unsigned char opaque[64];
};

/* Prepare r to wait on io for interest; does not touch io. */
void urp_readiness_init(struct urp_readiness *r, struct urp_io *io, unsigned interest);
/* Returns 0 with *ev once io is ready for the interest or shut down (ev->ready may be empty
 * when polled again later: loop), -EAGAIN while pending (w is stored, replacing the previous
 * one), -EINVAL on bad arguments. */
int urp_readiness_poll(struct urp_readiness *r, const struct urp_waker *w, struct urp_event *ev);
/* Unlink r if it is still waiting. Idempotent; r may be reused after urp_readiness_init(). */
void urp_readiness_cancel(struct urp_readiness *r);

/* ---- counters ---- */

/*
 * All monotonic except live.
 *   turns           urp_driver_turn() calls that reached the ring
 *   events          poll completions applied as Set
 *   stale_rejects   clears refused because a newer completion had arrived (any thread)
 *   wake_batches    non-empty flushes of the 32-waker array
 *   wakes           wakers called
 *   rearms          polls re-armed after they ended (CQE without IORING_CQE_F_MORE)
 *   cq_overflows    turns that found the CQ overflowed and flushed it
 *   unknown_tokens  CQEs whose token is no live entry: a bug metric, must stay 0
 *   live            registrations not yet freed
 *   enters          io_uring_enter calls (about one per turn)
 *   extra_enters    of those, calls beyond the turn's one (SQ full, overflow flush)
 *   poll_errors     polls that failed (res < 0, not a cancel); the entry reports ERROR
 *   oneshot_files   entries whose file cannot be polled (regular files): ready once, for good
 */
struct urp_stats {
	uint64_t turns, events, stale_rejects, wake_batches, wakes, rearms, cq_overflows,
		unknown_tokens, live;
	uint64_t enters, extra_enters, poll_errors, oneshot_files;
};

/* The process-wide counters of detached entries (urp_io_new): stale_rejects, wake_batches,
 * wakes and live; the driver fields stay 0. Returns 0 or -EINVAL. */
int urp_detached_stats(struct urp_stats *st);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* URPOLL_H */
