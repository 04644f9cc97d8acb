/* SPDX-License-Identifier: MIT */
/*
 * The io_uring driver: multishot poll completions into the readiness words.
 *
 * One thread turns the ring. Each registration arms one multishot POLL_ADD whose user_data is
 * the entry's address; each completion is applied to the entry's word (Set) and wakes its
 * waiters, with no syscall per event beyond the one io_uring_enter per turn. Other threads
 * talk to the turning thread through a lock-free command queue and an eventfd unpark.
 *
 * Registration, the command queue and the entries' lifetime are uring/entries.c's; ring mode's
 * requests (recv, send) are uring/ring_mode.c's and ring_send.c's: dispatch() hands their
 * completions over.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/atomic.h"
#include "../core/debug.h"
#include "../core/ready.h"
#include "driver.h"
#include "ring.h"
#include "tsan.h"

bool urp__driver_forked(const struct urp_driver *drv)
{
	return drv->fork_gen != urp__fork_gen();
}

static bool on_driver_thread(const struct urp_driver *drv)
{
	/* Pairs with the release store in enable(). */
	return urp__load_acquire(&drv->enabled) && pthread_equal(pthread_self(), drv->thread);
}

bool urp__driver_on_thread(const struct urp_driver *drv)
{
	return on_driver_thread(drv);
}

struct urp_driver *urp__io_driver(const struct urp_io *io)
{
	return urp__owner_of(io);
}

/* ---- submission ---- */

struct io_uring_sqe *urp__get_sqe(struct urp_driver *drv)
{
	struct io_uring_sqe *sqe;
	int tries;

	for (tries = 0; tries < 4; tries++) {
		sqe = urp__ring_get_sqe(&drv->ring);
		if (sqe)
			return sqe;
		/* SQ full (a burst of registrations or re-arms): submit what is queued. */
		urp__ring_submit(&drv->ring);
		urp__count_local(&drv->st.enters, 1);
		urp__count_local(&drv->st.extra_enters, 1);
	}
	return NULL;
}

static unsigned poll_events(unsigned interest)
{
	unsigned events = 0;

	/* POLLERR and POLLHUP need no asking. POLLRDHUP makes a peer's FIN visible as
	 * READ_CLOSED together with POLLIN. */
	if (interest & URP_READABLE)
		events |= POLLIN | POLLRDHUP;
	if (interest & URP_WRITABLE)
		events |= POLLOUT;
	if (interest & URP_PRIORITY)
		events |= POLLPRI;
	return events;
}

/*
 * The poll is gone and will not be re-armed (it failed with err, or no SQE could be had): the
 * entry can never report readiness again. Say ERROR and shut it down, which wakes every waiter
 * and makes urp_io_try_io() answer -ESHUTDOWN: an entry left "ready" would have a task loop
 * spinning on an fd that keeps answering EAGAIN. The reason is stored first, so whoever sees
 * the shutdown bit can read it (urp_io_poll_error()).
 */
void urp__poll_failed(struct urp_driver *drv, struct urp__reg *reg, int err)
{
	urp__count_local(&drv->st.poll_errors, 1);
	/* Pairs with the acquire load in urp_io_poll_error(). */
	urp__store_release_u8(&reg->poll_errno, (uint8_t)-err);
	urp__io_set_readiness(&reg->io, URP_ERROR);
	urp__io_shutdown(&reg->io);
	urp__ready_add(drv, reg);
}

int urp_io_poll_error(const struct urp_io *io)
{
	if (!io)
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_poll_error");
	if (!urp__owner_of(io))
		return 0;
	/* Pairs with the release store in poll_failed(). */
	return -(int)urp__load_acquire_u8(&urp__reg_of((struct urp_io *)io)->poll_errno);
}

void urp__arm(struct urp_driver *drv, struct urp__reg *reg)
{
	struct io_uring_sqe *sqe;

	urp__debug_assert(on_driver_thread(drv), "arm", "not on the driver's thread");
	if (reg->state & URP__REG_RING) {
		urp__ring_arm(drv, reg);
		return;
	}
	sqe = urp__get_sqe(drv);
	if (!sqe) {
		urp__poll_failed(drv, reg, -EBUSY);
		return;
	}
	io_uring_prep_poll_multishot(sqe, reg->fd, poll_events(reg->interest));
	io_uring_sqe_set_data(sqe, reg);
	reg->polls_armed++;
	reg->state |= URP__REG_FRESH;
	reg->arm_cq_full = drv->cq_full_seen;
	/* Pairs with urp__tsan_acquire() in dispatch(). */
	urp__tsan_release(reg);
}

static void arm_unpark(struct urp_driver *drv)
{
	struct io_uring_sqe *sqe = urp__get_sqe(drv);

	/* Without an SQE this turn cannot be unparked: it must not block (submit_and_wait()),
	 * and the next turn arms the poll. */
	if (!sqe) {
		drv->put_off = true;
		return;
	}
	/* The eventfd is never read: a multishot poll completes on every write's wake-up,
	 * whatever the count, so an unpark costs the writer one write and the driver nothing. */
	io_uring_prep_poll_multishot(sqe, drv->unpark_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, URP__TOKEN_UNPARK);
	drv->unpark_armed = true;
}

/* ---- completion ---- */

/*
 * A fresh poll that ends at its first CQE with a mask either has no wait queue to sleep on, or
 * lost its CQE to a full CQ (any number of times in a row). No wait queue: the file has no
 * poll method, vfs_poll() answers DEFAULT_POLLMASK, and io_uring completes the multishot poll
 * at once without F_MORE (__io_arm_poll_handler(), kernel 6.18); reading such a file never
 * blocks, so its readiness is final. Regular files, directories and block devices never have a
 * poll method. Character devices may (a tty, /dev/random) or may not (/dev/null, /dev/zero,
 * /dev/full): for them the CQ tells, since the poll cannot have lost its CQE if the CQ was
 * never full since the poll was armed. Sockets, pipes and anonymous inodes (eventfd, timerfd,
 * signalfd) can always be polled, so an early end of theirs is re-armed. One fstat(), on this
 * rare path only: never per event.
 */
static bool unpollable(const struct urp_driver *drv, const struct urp__reg *reg)
{
	struct stat st;

	if (fstat(reg->fd, &st) < 0)
		return false;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode))
		return true;
	return S_ISCHR(st.st_mode) && reg->arm_cq_full == drv->cq_full_seen;
}

/* A poll ended (CQE without F_MORE). Unless a removal is pending, re-arm: the new poll
 * re-checks readiness, so nothing that happened meanwhile is lost. */
static void poll_ended(struct urp_driver *drv, struct urp__reg *reg, int res)
{
	bool fresh = reg->state & URP__REG_FRESH;

	reg->polls_armed--;
	reg->state &= ~URP__REG_FRESH;
	if (reg->state & URP__REG_GONE) {
		urp__reg_request_ended(drv, reg);
		return;
	}
	if (res < 0 && res != -ECANCELED) {
		urp__poll_failed(drv, reg, res);
		return;
	}
	/* Its readiness is final: the entry keeps it, without further polls. */
	if (res >= 0 && fresh && unpollable(drv, reg)) {
		urp__count_local(&drv->st.oneshot_files, 1);
		return;
	}
	/* Not yet: while an overflow is being flushed the CQ is full, and a new poll's first
	 * CQE would overflow and end it again, for ever. rearm_ended() runs after the reap. */
	reg->rearm_next = drv->rearm;
	drv->rearm = reg;
}

static void rearm_ended(struct urp_driver *drv)
{
	struct urp__reg *reg;

	while ((reg = drv->rearm)) {
		drv->rearm = reg->rearm_next;
		/* Deregistered since it ended: its last poll is gone, so it can go. */
		if (reg->state & URP__REG_GONE) {
			if (!reg->polls_armed)
				urp__retire(drv, reg);
			continue;
		}
		urp__arm(drv, reg);
		urp__count_local(&drv->st.rearms, 1);
	}
}

/* A CQE whose token is no entry's address: the unpark poll, a removal's result, or a bug. */
static void dispatch_reserved(struct urp_driver *drv, uint64_t token, bool more)
{
	if (token == URP__TOKEN_CTL)
		return;
	if (token != URP__TOKEN_UNPARK) {
		urp__count_local(&drv->st.unknown_tokens, 1);
		return;
	}
	/* The unpark that set the flag has landed: the next one must write again. Whoever
	 * unparked pushed before setting the flag, so the caller's checks after this turn (the
	 * command queue, a loop's queue, a stop flag) see it. */
	urp__xchg_seq_cst(&drv->notified, 0);
	if (!more) {
		drv->unpark_armed = false;
		arm_unpark(drv);
		urp__count_local(&drv->st.rearms, 1);
	}
}

/* Returns 1 when the CQE was a readiness event applied to an entry. */
static int dispatch(struct urp_driver *drv, const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	uint64_t token = cqe->user_data;
	unsigned kind = token & URP__KIND_MASK;
	struct urp__reg *reg;
	int events = 0;

	/* Registrations are cache-pair aligned (uring/slab.c), their kind of request in the low
	 * bits, and above the reserved tokens: anything else is not read as one (liburing's own
	 * LIBURING_UDATA_TIMEOUT is all ones). */
	if (token < URP__TOKEN_MIN || (token & (URP__CACHE_PAIR - 1) & ~URP__KIND_MASK)) {
		dispatch_reserved(drv, token, more);
		return 0;
	}
	reg = (struct urp__reg *)(uintptr_t)(token & ~(uint64_t)URP__KIND_MASK);
	/* Pairs with urp__tsan_release() in arm(), uring/ring_mode.c and ring_send.c. */
	urp__tsan_acquire(reg);
	/* Entries outlive their requests, so this only fails on a bug; the check is a
	 * plausibility test (magic, owner, mode: a poll's kind on a poll-mode entry, a recv's or
	 * a send's on a ring-mode one), and ASan builds catch the use-after-free it would be. */
	if (reg->magic != URP__REG_MAGIC || reg->io.counters != &drv->counters ||
	    !reg->polls_armed)
		goto unknown;
	if (kind != URP__KIND_POLL) {
		if (!(reg->state & URP__REG_RING) || kind > URP__KIND_SEND)
			goto unknown;
		return urp__ring_dispatch(drv, reg, kind, cqe);
	}
	if (reg->state & URP__REG_RING)
		goto unknown;
	if (cqe->res >= 0 && !(reg->state & URP__REG_GONE)) {
		urp__io_set_readiness(&reg->io, urp__ready_from_poll((unsigned)cqe->res));
		urp__ready_add(drv, reg);
		events = 1;
	}
	if (more) {
		if (reg->state & URP__REG_FRESH)
			reg->state &= ~URP__REG_FRESH;
	} else {
		poll_ended(drv, reg, cqe->res);
	}
	return events;
unknown:
	urp__count_local(&drv->st.unknown_tokens, 1);
	return 0;
}

static int reap(struct urp_driver *drv)
{
	struct urp__cq_walk walk;
	struct io_uring_cqe *cqe;
	int events = 0;

	urp__cq_walk_start(&drv->ring, &walk);
	while ((cqe = urp__cq_walk_next(&drv->ring, &walk)))
		events += dispatch(drv, cqe);
	urp__ring_cq_advance(&drv->ring, walk.seen);
	/* The head stays put during the pass, so a full pass means the kernel found the CQ full
	 * and may have overflowed CQEs that a flush inside the next enter delivers unseen. */
	if (walk.seen >= drv->info.cq_entries)
		drv->cq_full_seen++;
	return events;
}

static int reap_all(struct urp_driver *drv)
{
	int events = reap(drv);

	/* With IORING_FEAT_NODROP the kernel keeps CQEs that did not fit, and ends the polls
	 * they belong to (their final CQE lacks F_MORE): flush, reap, and re-arm them. */
	while (urp__ring_cq_has_overflow(&drv->ring)) {
		drv->cq_full_seen++;
		urp__count_local(&drv->st.cq_overflows, 1);
		urp__ring_get_events(&drv->ring);
		urp__count_local(&drv->st.enters, 1);
		urp__count_local(&drv->st.extra_enters, 1);
		events += reap(drv);
	}
	rearm_ended(drv);
	urp__count_local(&drv->st.events, (uint64_t)events);
	return events;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Submit and wait, once, for up to timeout_ns (-1: no limit): the timeout rides in EXT_ARG. A
 * signal (EINTR) re-enters with the time that is left, so callers never see it. */
static int submit_and_wait(struct urp_driver *drv, int64_t timeout_ns)
{
	int64_t deadline = timeout_ns > 0 ? now_ns() + timeout_ns : 0;
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	int64_t left;
	int ret;

	/* CQEs already waiting (posted inline while wakers ran), or work put off for lack of an
	 * SQE: do not block. */
	if (urp__ring_cq_ready(&drv->ring) || drv->put_off)
		timeout_ns = 0;
	drv->put_off = false;
	for (;;) {
		urp__count_local(&drv->st.enters, 1);
		if (timeout_ns == 0) {
			ret = urp__ring_submit_and_get_events(&drv->ring);
		} else if (timeout_ns < 0) {
			ret = urp__ring_submit_and_wait_timeout(&drv->ring, &cqe, 1, NULL);
		} else {
			left = deadline - now_ns();
			if (left < 0)
				left = 0;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			ret = urp__ring_submit_and_wait_timeout(&drv->ring, &cqe, 1, &ts);
		}
		if (ret != -EINTR)
			break;
	}
	/* -ETIME: the timeout expired. -EBUSY/-EAGAIN: the CQ is overflowing; reap it now. */
	if (ret == -ETIME || ret == -EBUSY || ret == -EAGAIN || ret >= 0)
		return 0;
	return ret;
}

/*
 * Under DEFER_TASKRUN one io_uring_enter runs at most 20 task-work items (IO_LOCAL_TW_DEFAULT_MAX,
 * kernel 6.13+; measured on 6.18), and the final CQE of each cancelled poll is one. A server that
 * deregisters hundreds of fds per turn would free 20 per turn and run into -ENOSPC. Those CQEs
 * are due (the cancels were submitted): wait for as many, which lets the kernel run that much
 * task work in one enter. The timeout is only a guard; the wait normally returns at once.
 */
static int reap_cancelled(struct urp_driver *drv)
{
	struct __kernel_timespec guard = { 0, 1000000 };
	unsigned want = drv->cancels_due;
	struct io_uring_cqe *cqe;

	if (want > drv->info.cq_entries / 2)
		want = drv->info.cq_entries / 2;
	urp__count_local(&drv->st.enters, 1);
	urp__count_local(&drv->st.extra_enters, 1);
	/* Timed out: fewer were due than counted. Never wait on a wrong count twice. */
	if (urp__ring_submit_and_wait_timeout(&drv->ring, &cqe, want, &guard) == -ETIME)
		drv->cancels_due = 0;
	return reap_all(drv);
}

static int enable(struct urp_driver *drv)
{
	int ret = urp__ring_enable(drv);

	if (ret < 0)
		return ret;
	drv->thread = pthread_self();
	urp__store_release(&drv->enabled, 1);
	arm_unpark(drv);
	return 0;
}

int urp__driver_claim(struct urp_driver *drv)
{
	uint32_t unclaimed = 0;
	int ret;

	if (urp__load_acquire(&drv->enabled))
		return pthread_equal(pthread_self(), drv->thread) ? 0 : -EEXIST;
	/* Two first turns may race: one claims the driver, the other finds it taken. */
	if (!urp__cas_acq_rel(&drv->claimed, &unclaimed, 1))
		return -EEXIST;
	ret = enable(drv);
	if (ret < 0)
		urp__store_release(&drv->claimed, 0);
	return ret;
}

int urp__driver_turn_ns(struct urp_driver *drv, int64_t timeout_ns)
{
	int ret, events;

	if (urp__driver_forked(drv))
		return -ECHILD;
	ret = urp__driver_claim(drv);
	if (ret < 0)
		return ret;
	if (drv->in_turn)
		return -EBUSY;
	drv->in_turn = true;

	urp__run_commands(drv);
	urp__ring_turn_start(drv);
	if (!drv->unpark_armed)
		arm_unpark(drv);
	if (urp__xchg_acq_rel(&drv->shutdown_pending, 0))
		urp__shutdown_entries(drv);
	ret = submit_and_wait(drv, timeout_ns);
	events = reap_all(drv);
	if (drv->cancels_due > URP__LOCAL_TW_MAX && drv->info.tier == URP_TIER_DEFER)
		events += reap_cancelled(drv);
	urp__free_dead(drv);
	urp__count_local(&drv->st.turns, 1);
	drv->in_turn = false;
	return ret < 0 ? ret : events;
}

int urp_driver_turn(struct urp_driver *drv, int timeout_ms)
{
	if (!drv || timeout_ms < -1)
		return -EINVAL;
	return urp__driver_turn_ns(drv, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000);
}

int urp_driver_unpark(struct urp_driver *drv)
{
	uint64_t one = 1;

	if (!drv)
		return -EINVAL;
	if (urp__driver_forked(drv))
		return -ECHILD;
	if (urp__xchg_seq_cst(&drv->notified, 1))
		return 0;
	/* EAGAIN: the counter is full, so the eventfd is readable anyway. */
	if (write(drv->unpark_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

void urp_driver_shutdown(struct urp_driver *drv)
{
	if (!drv || urp__driver_forked(drv))
		return;
	urp__xchg_acq_rel(&drv->shutdown, 1);
	if (!on_driver_thread(drv)) {
		urp__xchg_acq_rel(&drv->shutdown_pending, 1);
		urp_driver_unpark(drv);
		return;
	}
	if (drv->shutting_down)
		return;
	urp__run_commands(drv);
	urp__shutdown_entries(drv);
}

/* ---- lifetime and stats ---- */

int urp_driver_new(struct urp_driver **out, const struct urp_driver_opts *opts)
{
	struct urp_driver *drv;
	int ret;

	if (!out)
		return -EINVAL;
	drv = calloc(1, sizeof(*drv));
	if (!drv)
		return -ENOMEM;
	urp__list_init(&drv->live);
	urp__list_init(&drv->dead);
	urp__slab_init(&drv->slab, sizeof(struct urp__reg));
	urp__slab_init(&drv->ring_slab, sizeof(struct urp__ring_reg));
	drv->counters.release = urp__reg_release;
	ret = urp__ring_opts_check(opts);
	if (ret < 0)
		goto out_free;
	if (opts)
		drv->ring_opts = *opts;
	ret = urp__ring_setup(drv, opts);
	if (ret < 0)
		goto out_free;
	if (opts && (opts->flags & URP_DRIVER_READY_LIST)) {
		drv->ready_cap = 256;
		drv->ready = malloc(drv->ready_cap * sizeof(*drv->ready));
		if (!drv->ready) {
			ret = -ENOMEM;
			goto out_exit_ring;
		}
	}
	drv->unpark_fd = urp__ring_eventfd();
	if (drv->unpark_fd < 0) {
		ret = drv->unpark_fd;
		goto out_exit_ring;
	}
	*out = drv;
	return 0;

out_exit_ring:
	urp__ring_queue_exit(&drv->ring);
out_free:
	free(drv);
	return ret;
}

void urp_driver_free(struct urp_driver *drv)
{
	bool child;

	if (!drv)
		return;
	child = urp__driver_forked(drv);
	urp__xchg_acq_rel(&drv->shutdown, 1);
	urp__adopt_commands(drv);
	/* A child holds copies of the parent's entries: free them, wake nobody. */
	if (!child)
		urp__shutdown_entries(drv);
	/* Exiting the ring cancels every poll; no completion can name an entry after this. In
	 * a child it only unmaps the child's view and closes its copy of the fd. */
	urp__ring_queue_exit(&drv->ring);
	while (!urp__list_empty(&drv->live))
		urp__free_entry(drv, urp__container_of(drv->live.next, struct urp__reg, io.link));
	urp__free_dead(drv);
	free(drv->ready);
	urp__bufring_free(drv);
	urp__slab_destroy(&drv->slab);
	urp__slab_destroy(&drv->ring_slab);
	close(drv->unpark_fd);
	free(drv);
}

/* URPOLL_0's sizes: fields are added in place of reserved[], never beyond. */
_Static_assert(sizeof(struct urp_stats) == 256, "struct urp_stats changed size");
_Static_assert(sizeof(struct urp_driver_opts) == 64, "struct urp_driver_opts changed size");
#ifdef __LP64__
_Static_assert(sizeof(struct urp_driver_info) == 128, "struct urp_driver_info changed size");
#endif

int urp_driver_stats(struct urp_driver *drv, struct urp_stats *st)
{
	if (!drv || !st)
		return -EINVAL;
	if (urp__driver_forked(drv))
		return -ECHILD;
	memset(st, 0, sizeof(*st));
	st->turns = urp__count_read(&drv->st.turns);
	st->events = urp__count_read(&drv->st.events);
	st->stale_rejects = urp__count_read(&drv->counters.stale_rejects);
	st->wake_batches = urp__count_read(&drv->counters.wake_batches);
	st->wakes = urp__count_read(&drv->counters.wakes);
	st->rearms = urp__count_read(&drv->st.rearms);
	st->cq_overflows = urp__count_read(&drv->st.cq_overflows);
	st->unknown_tokens = urp__count_read(&drv->st.unknown_tokens);
	st->live = urp__count_read(&drv->registered);
	st->enters = urp__count_read(&drv->st.enters);
	st->extra_enters = urp__count_read(&drv->st.extra_enters);
	st->poll_errors = urp__count_read(&drv->st.poll_errors);
	st->oneshot_files = urp__count_read(&drv->st.oneshot_files);
	st->recv_bufs = urp__count_read(&drv->st.recv_bufs);
	st->recv_bytes = urp__count_read(&drv->st.recv_bytes);
	st->enobufs = urp__count_read(&drv->st.enobufs);
	st->paused = urp__count_read(&drv->st.paused);
	st->sends = urp__count_read(&drv->st.sends);
	st->send_bytes = urp__count_read(&drv->st.send_bytes);
	st->bufs_out = urp__count_read(&drv->bufring.out);
	return 0;
}
