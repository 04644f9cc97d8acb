/* SPDX-License-Identifier: MIT */
/*
 * urpoll: a readiness poller driven by io_uring alone.
 *
 * The readiness core (tokio's ScheduledIo in C) and the io_uring driver that feeds it. Every
 * int function returns >= 0 on success and a negative errno on failure; bad arguments give
 * -EINVAL. Nothing here reports through errno.
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

/* The version of this header; urp_version_major() and friends give the library's, which a
 * program may find newer than the header it was built against (the soname names the major:
 * liburpoll.so.MAJOR). The Makefile's VERSION_* must agree (core/version.c checks). */
#define URPOLL_VERSION_MAJOR 0
#define URPOLL_VERSION_MINOR 1
#define URPOLL_VERSION_PATCH 0

/* Alignment of the caller-owned opaque structs, spelled so that the header is C and C++. */
#ifdef __cplusplus
#define URP_ALIGNAS(n) alignas(n)
#else
#define URP_ALIGNAS(n) _Alignas(n)
#endif

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
 * The packed readiness word of an entry (urp_io_word()):
 *
 *   | bit 31       | bits 30..16  | bits 15..0                      |
 *   | shutdown (1) | tick (15)    | readiness (16; low 6 used)      |
 */
#define URP_WORD_READY_MASK 0x0000ffffu
#define URP_WORD_TICK_SHIFT 16
#define URP_WORD_TICK_MASK  0x7fff0000u
#define URP_WORD_SHUTDOWN   0x80000000u

static inline unsigned urp_word_ready(uint32_t word)
{
	return word & URP_WORD_READY_MASK;
}

static inline unsigned urp_word_tick(uint32_t word)
{
	return (word & URP_WORD_TICK_MASK) >> URP_WORD_TICK_SHIFT;
}

static inline bool urp_word_shutdown(uint32_t word)
{
	return (word & URP_WORD_SHUTDOWN) != 0;
}

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
/* The raw packed word (decode it with urp_word_ready(), urp_word_tick(), urp_word_shutdown()). */
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
/*
 * After an operation answered EAGAIN, urp_io_clear_readiness() then urp_io_poll_ready() in one
 * call: clear what *ev saw (ev->ready within dir's bits, tick-checked), then store a copy of w
 * in dir's slot and check again. Returns -EAGAIN when the waker is stored and the caller may
 * sleep, or 0 with *ev refreshed when dir is ready (the clear was refused because a newer
 * completion arrived, or one came before the waker was stored: go round again). -EINVAL on
 * bad arguments (w is required).
 */
int urp_io_clear_poll(struct urp_io *io, enum urp_direction dir, const struct urp_waker *w,
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
	URP_ALIGNAS(8) unsigned char opaque[64];
};

/* Prepare r to wait on io for interest; does not touch io. */
void urp_readiness_init(struct urp_readiness *r, struct urp_io *io, unsigned interest);
/* Returns 0 with *ev once io is ready for the interest or shut down (ev->ready may be empty
 * when polled again later: loop), -EAGAIN while pending (w is stored, replacing the previous
 * one), -EINVAL on bad arguments. */
int urp_readiness_poll(struct urp_readiness *r, const struct urp_waker *w, struct urp_event *ev);
/* Unlink r if it is still waiting. Idempotent; r may be reused after urp_readiness_init().
 * While r waits, its entry must be alive: cancel before urp_deregister() or urp_driver_free()
 * (which wakes every future with the shutdown bit before it frees the entry). */
void urp_readiness_cancel(struct urp_readiness *r);

/* ---- counters ---- */

/*
 * All monotonic except live and bufs_out.
 *   turns           urp_driver_turn() calls that reached the ring
 *   events          poll completions applied as Set
 *   stale_rejects   clears refused because a newer completion had arrived (any thread)
 *   wake_batches    non-empty flushes of the 32-waker array
 *   wakes           wakers called
 *   rearms          polls re-armed after they ended (CQE without IORING_CQE_F_MORE)
 *   cq_overflows    flushes of an overflowed CQ (a turn may need several)
 *   unknown_tokens  CQEs whose token is no live entry: a bug metric, must stay 0
 *   live            registrations not yet freed
 *   enters          io_uring_enter calls (about one per turn)
 *   extra_enters    of those, calls beyond the turn's one (SQ full, overflow flush)
 *   poll_errors     polls that failed (res < 0, not a cancel); the entry reports ERROR
 *   oneshot_files   entries whose file cannot be polled (regular files, directories, block
 *                   devices, character devices without a poll method such as /dev/null):
 *                   ready once, for good
 * Ring mode (urp_register_ring()):
 *   recv_bufs       buffers received (recv completions with data)
 *   recv_bytes      bytes in them
 *   enobufs         recvs that ended because the provided-buffer ring was empty, re-armed
 *                   once buffers came back
 *   paused          recvs paused because their entry held opts.buf_cap buffers
 *   sends           send completions with bytes: one per send request, which may carry
 *                   several queued sends (a short send's remainder is a request of its own)
 *   send_bytes      bytes sent
 *   bufs_out        buffers out of the ring now: queued on entries, taken and not released,
 *                   or being sent (0 once every buffer was released and every send done)
 *
 * The struct has room to grow: later versions add counters in place of reserved[], which the
 * library fills with zeros, so its size (256 bytes) stays that of URPOLL_0.
 */
struct urp_stats {
	uint64_t turns, events, stale_rejects, wake_batches, wakes, rearms, cq_overflows,
		unknown_tokens, live;
	uint64_t enters, extra_enters, poll_errors, oneshot_files;
	uint64_t recv_bufs, recv_bytes, enobufs, paused, sends, send_bytes, bufs_out;
	uint64_t reserved[12];
};

/* The process-wide counters of detached entries (urp_io_new): stale_rejects, wake_batches,
 * wakes and live; the driver fields stay 0. Returns 0 or -EINVAL. */
int urp_detached_stats(struct urp_stats *st);

/* ---- driver: one io_uring, turned by one thread ---- */

struct urp_driver;

/* urp_driver_opts.flags */
#define URP_DRIVER_TIER_COOP  0x1u /* skip the SINGLE_ISSUER|DEFER_TASKRUN tier */
#define URP_DRIVER_TIER_BASIC 0x2u /* plain ring: skip both tuned tiers */
#define URP_DRIVER_SQPOLL     0x4u /* opt-in kernel SQ polling thread (spins a core) */
#define URP_DRIVER_OVERCOMMIT 0x8u /* no registration limit: CQ overflow is recovered (and
				      counted), at the cost of extra enters and re-arms */
#define URP_DRIVER_READY_LIST 0x10u /* list the entries made ready, for urp_driver_poll() */

/* Zeroed fields take defaults: 256 SQ entries, 16384 CQ entries. Unless URP_DRIVER_OVERCOMMIT
 * is set, a driver accepts at most cq_entries / 2 - 1 registrations (-ENOSPC beyond), so the
 * CQ holds two completions per registration plus the unpark poll and never overflows. The CQ
 * is raised to the SQ's size; cq_entries below 4 is -EINVAL, except that with
 * URP_DRIVER_OVERCOMMIT 2 is allowed. reserved[] must be zero (-EINVAL otherwise): later
 * versions give it meaning, and an older library then refuses what it cannot honour. Zero the
 * whole struct ({ 0 } or designated initializers) and set what you need. */
struct urp_driver_opts {
	unsigned sq_entries;
	unsigned cq_entries;
	unsigned flags;
	/* Ring mode (urp_register_ring()); zeros take the defaults. */
	unsigned buf_count; /* buffers in the provided-buffer ring, a power of 2 (default 512) */
	unsigned buf_size;  /* bytes in each (default 16384) */
	unsigned buf_cap;   /* buffers one entry may hold queued before its recv pauses (8) */
	unsigned send_hwm;  /* bytes queued for sending above which WRITABLE clears (65536) */
	unsigned reserved[9];
};

/* Setup tiers, tried in order. */
enum urp_tier {
	URP_TIER_DEFER,	 /* SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL|CQSIZE */
	URP_TIER_COOP,	 /* COOP_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL|CQSIZE */
	URP_TIER_BASIC,	 /* CQSIZE */
	URP_TIER_SQPOLL, /* SQPOLL|CQSIZE, only when asked for */
};

/* What urp_driver_info() reports. Room to grow as struct urp_stats: 128 bytes in URPOLL_0,
 * reserved[] filled with zeros. */
struct urp_driver_info {
	enum urp_tier tier;
	const char *tier_name; /* "defer", "coop", "basic", "sqpoll" */
	unsigned setup_flags;  /* the IORING_SETUP_* flags in use */
	unsigned features;     /* the kernel's IORING_FEAT_* flags */
	unsigned sq_entries;
	unsigned cq_entries;
	unsigned max_registrations;
	unsigned reserved[23];
};

/*
 * Create a driver (opts may be NULL). The ring is turned by the first thread that calls
 * urp_driver_turn(); until then registrations queue. Returns 0, or:
 *   -EPERM   io_uring disabled (kernel.io_uring_disabled) or blocked by a seccomp filter
 *   -ENOSYS  no io_uring in this kernel (or hidden by seccomp)
 *   -ENOMEM, -EMFILE, -ENFILE   out of memory or descriptors
 *   -EACCES  io_uring refused by a security module
 *   -EOPNOTSUPP  the kernel lacks poll add, async cancel, IORING_FEAT_NODROP or
 *            IORING_FEAT_EXT_ARG
 *   -EINVAL  bad options (unknown flags, nonzero reserved[], sq_entries above 32768,
 *            cq_entries above 131072 or below the minimum)
 * urp_strerror() turns each into a sentence a user can act on.
 */
int urp_driver_new(struct urp_driver **drv, const struct urp_driver_opts *opts);
/* Shut down and free every entry still live, then the ring. Callable from any thread once no
 * other thread uses drv; in a forked child it frees only the child's copies. */
void urp_driver_free(struct urp_driver *drv);
/*
 * One turn: queue pending commands, submit and wait once for up to timeout_ms (-1: no limit,
 * 0: do not block), dispatch every completion (Set then Wake), re-arm polls that ended.
 * Returns the number of readiness events dispatched, or -ECHILD (after fork), -EEXIST (another
 * thread turns this driver), -EBUSY (called from inside a turn), -EINVAL, the error of enabling
 * the ring on the first turn, or an io_uring_enter() error other than the ones that are no
 * error (EINTR, retried; ETIME; EBUSY and EAGAIN, an overflow backlog): such a turn still
 * dispatches what completed, and reports the error instead of the count.
 */
int urp_driver_turn(struct urp_driver *drv, int timeout_ms);
/*
 * An event of urp_driver_poll(): an entry whose word a completion Set (or a shutdown reached)
 * since it was last handed out, its data (urp_io_set_data()), and a snapshot of its word taken
 * as it is handed out: the ready bits its registration's interest sees, the tick, shutdown.
 */
struct urp_ready {
	struct urp_io *io;
	void *data;
	struct urp_event ev;
};

/*
 * The wait for ready fds, for loops that call back per ready fd (the driver must be created
 * with URP_DRIVER_READY_LIST): one turn as urp_driver_turn() (wakers and futures still run),
 * then up to max entries made ready since they were last handed out, each once, oldest first
 * (the rest wait for the next call, which then does not block). The words still decide: the
 * caller acts on ev (an operation until EAGAIN), then clears with it
 * (urp_io_clear_readiness()); a completion after the snapshot makes that clear stale and lists
 * the entry again, so no edge is lost. No waker is stored or called for this. Returns the
 * number of events written to evs (0 after a timeout), or -EINVAL (not created with
 * URP_DRIVER_READY_LIST, bad arguments), or an error of urp_driver_turn(). On the turning
 * thread only, as urp_driver_turn().
 */
int urp_driver_poll(struct urp_driver *drv, int timeout_ms, struct urp_ready *evs, unsigned max);
/* Keep data with a registration, for urp_driver_poll()'s events. Set it before the entry can be
 * reported: on the turning thread right after urp_register(), or before the next turn. Returns
 * 0, or -EINVAL (NULL or detached io). */
int urp_io_set_data(struct urp_io *io, void *data);
/* The data of urp_io_set_data(), or NULL. */
void *urp_io_data(const struct urp_io *io);

/* ---- ring mode: io_uring does the I/O, the readiness words still decide ---- */

/*
 * A buffer received in ring mode: data and len are the caller's to read (and to shorten, to
 * send part of it); the rest is private. It belongs to the caller from urp_io_take() until
 * urp_buf_release() or urp_io_send_buf().
 */
struct urp_buf {
	void *data;
	size_t len;
};

/*
 * Register a connected stream socket (O_NONBLOCK) in ring mode. Instead of a poll, a multishot
 * recv picks buffers from the driver's provided-buffer ring (urp_driver_opts.buf_*): each
 * received buffer is queued on the entry and Sets READABLE (tick + 1) as a poll completion
 * would; a zero-length receive (the peer's FIN) Sets READ_CLOSED; an error Sets ERROR and both
 * closed bits. Take them with urp_io_take(). Sends are queued and go out with the next turn's
 * io_uring_enter(), whole and in order (urp_io_send(), urp_io_send_buf(), urp_io_send_fin());
 * WRITABLE means "fewer than opts.send_hwm bytes queued". When an entry holds opts.buf_cap
 * buffers its recv pauses (the data waits in the kernel) until urp_io_take() drains it. Returns
 * 0, or -EOPNOTSUPP (this kernel lacks buffer rings or multishot recv; urp_strerror() says so),
 * -EEXIST (not on the turning thread, once there is one), and urp_register()'s errors.
 * Ring mode calls run on the thread that turns the driver.
 */
int urp_register_ring(struct urp_driver *drv, int fd, struct urp_io **io);
/*
 * Take the oldest buffer received on io, without a syscall: returns 1 with *buf, 0 once the
 * peer's FIN came after the last buffer, -EAGAIN when none is queued (READABLE was cleared with
 * the snapshot's tick first: a receive that raced it keeps READABLE, as a stale clear does),
 * the recv's error (-ECONNRESET, ...), or -ESHUTDOWN, -EINVAL, -EEXIST (not the turning thread).
 */
int urp_io_take(struct urp_io *io, struct urp_buf **buf);
/* Give a taken buffer back to the driver's ring (on the next turn). */
void urp_buf_release(struct urp_buf *buf);
/*
 * Queue len bytes of data (copied) to be sent on io, after what is already queued. Returns 0,
 * -EAGAIN when opts.send_hwm bytes or more are queued already (wait for WRITABLE), the error a
 * send met (-EPIPE, -ECONNRESET, ...), -EPIPE after urp_io_send_fin(), or -ESHUTDOWN, -EINVAL,
 * -ENOMEM, -EEXIST.
 */
int urp_io_send(struct urp_io *io, const void *data, size_t len);
/* Queue a taken buffer (buf->data, buf->len: received on any entry of the same driver; it may
 * be trimmed, not moved outside its ring buffer: -EINVAL) to be sent on io without a copy; it
 * goes back to the ring once sent. Returns as urp_io_send(); on an error the buffer is still
 * the caller's. */
int urp_io_send_buf(struct urp_io *io, struct urp_buf *buf);
/* After what is queued has been sent, shut the socket down for writing (the peer reads EOF).
 * Returns 0, or the errors of urp_io_send() but -EAGAIN. */
int urp_io_send_fin(struct urp_io *io);
/* Bytes queued on io for sending, not yet sent (0 once everything, and the FIN, went out). */
size_t urp_io_send_queued(const struct urp_io *io);

/* Make the current or next turn return soon. Any thread; coalesced. Returns 0 or -errno. */
int urp_driver_unpark(struct urp_driver *drv);
/* Set the shutdown bit of every entry and wake all waiters; later registrations fail with
 * -ESHUTDOWN. On the turning thread this is done before it returns, otherwise on the next
 * turn. */
void urp_driver_shutdown(struct urp_driver *drv);
/* Copy drv's counters (struct urp_stats) into *st; any thread, at any time (each counter is
 * read atomically, the set is not a snapshot). Returns 0, -EINVAL, or -ECHILD after fork(). */
int urp_driver_stats(struct urp_driver *drv, struct urp_stats *st);
/* The setup tier, ring flags and sizes drv got from the kernel, into *info; any thread.
 * tier_name points at a static string. Returns 0 or -EINVAL. */
int urp_driver_info(struct urp_driver *drv, struct urp_driver_info *info);

/*
 * Watch fd for interest (URP_READABLE, URP_WRITABLE, URP_PRIORITY, URP_ERROR). Any thread: on
 * the turning thread the poll is armed at once, otherwise on the next turn. *io stays valid
 * until urp_deregister(). Returns 0, or -EINVAL, -ESHUTDOWN, -ENOSPC (registration limit, see
 * urp_driver_opts), -ENOMEM, -ECHILD.
 *
 * The library never reads or writes fd: completions are hints, and the operations you run when
 * it says ready must not block, so make fd O_NONBLOCK (or use MSG_DONTWAIT). A blocking fd is
 * not refused (checking would cost a syscall per registration); its first read that finds
 * nothing blocks your thread. A descriptor that is not open when the poll is armed fails
 * that poll: the entry reports URP_ERROR, is shut down (waiters wake, urp_io_try_io() answers
 * -ESHUTDOWN) and urp_io_poll_error() returns -EBADF. A file that cannot be polled at all (a
 * regular file, /dev/null) is ready once, for good (oneshot_files in struct urp_stats).
 */
int urp_register(struct urp_driver *drv, int fd, unsigned interest, struct urp_io **io);
/*
 * Stop watching: io is gone for the caller. Any thread. The entry is freed only after the
 * kernel returns the poll's last completion. The fd may be closed as soon as this returns, and
 * its number reused at once (entries are keyed by address, not by fd), but the kernel keeps the
 * file open until the poll is removed on the next turn.
 *
 * Rules: cancel every future and clear the slots that hold your wakers first (a waker left
 * behind may still be called until the next turn); call it once per registration; after it,
 * io must not be passed to any call. urp_driver_free() ends every registration the same way,
 * so futures waiting on its entries must be cancelled before it, not after. Debug builds
 * (-DURP_DEBUG) abort with a message naming the call and the rule when io is passed to a call
 * after it (a second deregistration, an operation, the cancel or poll of a future on it);
 * they cannot see a waker left in a slot.
 *
 * Returns 0, or -EINVAL (io NULL or detached), -ECHILD (after fork()).
 */
int urp_deregister(struct urp_io *io);
/* urp_deregister(), then the driver closes fd once its poll is gone (on the next turn, or the
 * one after), so a peer sees EOF without another call. Do not close fd yourself. */
int urp_deregister_close(struct urp_io *io);

/*
 * Why the driver stopped watching io: 0 while its poll is armed (and for a detached entry), or
 * the negative errno its poll failed with: -EBADF (fd was not open when the poll was armed),
 * -ENOMEM, -EBUSY (the submission queue stayed full), ... Once it is nonzero the entry has
 * URP_ERROR and the shutdown bit set for good. A task that gets -ESHUTDOWN from an entry whose
 * driver was not shut down learns the reason here. Any thread.
 */
int urp_io_poll_error(const struct urp_io *io);

/* A sentence for an error returned by urp_driver_new() and friends. Never NULL. */
const char *urp_strerror(int err);

/* ---- blocking waits and a driver on its own thread (thread-per-connection code) ---- */

/*
 * Park the calling thread until io is ready for interest (returns 0 with *ev), shut down
 * (-ESHUTDOWN), or timeout_ms passes (-ETIMEDOUT; -1 waits for ever). Another thread must turn
 * io's driver (see urp_driver_spawn()): on the thread that turns it (a task of its loop, a
 * waker) nothing could ever wake the wait, so it returns -EDEADLK at once. -EINVAL on bad
 * arguments. Signals do not end the wait.
 */
int urp_io_wait(struct urp_io *io, unsigned interest, int timeout_ms, struct urp_event *ev);

/* Create a driver and a thread that turns it until urp_driver_join(). Returns as
 * urp_driver_new(), or -EAGAIN when no thread can be started. */
int urp_driver_spawn(struct urp_driver **drv, const struct urp_driver_opts *opts);
/* Stop the thread of a spawned driver, then urp_driver_free() it. */
void urp_driver_join(struct urp_driver *drv);

/* ---- tasks: a single-thread loop over one driver ---- */

struct urp_loop;

/* A task: caller-owned storage, size public, fields private. run() is called on the loop's
 * thread each time the task was woken. It returns 0, or URP_TASK_DONE once the task has
 * finished: the loop then never touches it again, so run() may free it (first cancel every
 * future and clear every slot that holds its waker: those return only after a waker already
 * taken has returned). */
struct urp_task {
	URP_ALIGNAS(8) unsigned char opaque[48];
};
#define URP_TASK_DONE 1
typedef int (*urp_task_fn)(struct urp_task *task, void *arg);

/* A loop and its driver (opts as urp_driver_new()). Returns 0 or -errno. */
int urp_loop_new(struct urp_loop **loop, const struct urp_driver_opts *opts);
/* Free the loop and its driver (not while urp_loop_run() runs). Tasks and timers are the
 * caller's: timers still active are dropped without being called. */
void urp_loop_free(struct urp_loop *loop);
/* The loop's driver, to register fds with. */
struct urp_driver *urp_loop_driver(struct urp_loop *loop);
/*
 * Run on the calling thread (which then turns the driver) until urp_loop_stop(): run every
 * woken task once, in the order woken, then turn the driver (without blocking when tasks are
 * waiting, else until a completion or the earliest timer's deadline), then call the timers
 * that are due. A task woken while it runs runs again after the others. Active timers do not
 * keep it running after urp_loop_stop(); a last turn without blocking hands the kernel what
 * the final pass asked (deregistrations, closes) before it returns. Returns 0 once stopped, -EEXIST on a thread other
 * than the one that ran it first, or the driver's -errno.
 */
int urp_loop_run(struct urp_loop *loop);
/* Make urp_loop_run() return after the current pass. Any thread, also from a task. */
void urp_loop_stop(struct urp_loop *loop);

/* ---- timers: one-shot deadlines run by a loop ---- */

/* A timer: caller-owned storage, size public, fields private. */
struct urp_timer {
	URP_ALIGNAS(8) unsigned char opaque[64];
};
typedef void (*urp_timer_fn)(struct urp_timer *t, void *arg);

/* Prepare t to call fn(t, arg) on loop's thread when it fires. Does not start it. */
void urp_timer_init(struct urp_timer *t, struct urp_loop *loop, urp_timer_fn fn, void *arg);
/*
 * Arm t to fire once, timeout_ms after this call (CLOCK_MONOTONIC); on an active timer, move
 * its deadline. 0 fires on the next pass of the loop. Callbacks run on the loop's thread, in
 * deadline order (equal deadlines in start order), never before their deadline, at most one
 * turn late when the loop keeps up; the loop's blocking turn sleeps until the earliest one.
 * Call it on the loop's thread (from a task or a timer callback, any timer's, its own
 * included), or before urp_loop_run() on the thread that will run it. O(log n); restarting
 * an active timer later is O(1). Returns 0, -EINVAL (t not initialised, no callback,
 * timeout_ms beyond 146 years), or -ENOMEM (the loop's heap could not grow).
 */
int urp_timer_start(struct urp_timer *t, uint64_t timeout_ms);
/* Disarm t. Idempotent; once it returns, the stopped start's callback will not be called, and
 * t may be freed. Same threads as urp_timer_start(). */
void urp_timer_stop(struct urp_timer *t);
/* Whether t is armed: started and neither fired nor stopped since. A timer is no longer
 * active when its callback runs (the callback may start it again). */
bool urp_timer_active(const struct urp_timer *t);

/* Prepare a task on loop; it runs once woken. Does not schedule it. */
void urp_task_init(struct urp_task *task, struct urp_loop *loop, urp_task_fn run, void *arg);
/* Schedule task from any thread: queued once however often it is woken before it runs. */
void urp_task_wake(struct urp_task *task);
/* A waker that calls urp_task_wake(task), for futures, slots and urp_io_try_io() loops. */
struct urp_waker urp_task_waker(struct urp_task *task);

/* ---- the version ---- */

/* The version of the library the program runs with (URPOLL_VERSION_* give the header's). */
int urp_version_major(void);
int urp_version_minor(void);
int urp_version_patch(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* URPOLL_H */
