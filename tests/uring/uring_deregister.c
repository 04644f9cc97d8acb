// SPDX-License-Identifier: MIT
/*
 * uring_deregister: urp_deregister() and urp_deregister_close(). An fd closed and its number
 * reused at once gets no stale event; an entry deregistered with a wake-up pending is still
 * freed and its file really closed; deregister_close closes only once the poll is gone, from
 * any thread, even before the first turn; a waker may deregister its own entry; two entries on
 * one fd are independent. Churn: 100k register/deregister cycles without growth, and hundreds
 * deregistered per turn freed in that turn.
 *
 * Leaks are caught by LeakSanitizer in the ASan build (make check runs it there); the churn test
 * also compares the resident set size in the plain build.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "uring_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(uring_deregister, .init = setup, .fini = drv_teardown, .timeout = 120);

/* ---- closing and fd reuse ---- */

/*
 * Deregister, close, and hand the fd number to a new socket registered at once. The old socket
 * stays open in the kernel until its poll is removed, and gets data meanwhile (before or after
 * the deregistration): none of it may reach the new entry, whose word shows only its own
 * arm-time readiness (WRITABLE). After the turn the old file is really closed (its peer sees
 * EOF) and the new entry works.
 */
static void reuse_round(int round)
{
	struct urp_io *old, *fresh;
	int o[2], n[2], num;
	char buf[8];
	int i;

	unix_pair(o);
	old = reg(o[0], URP_READABLE | URP_WRITABLE);
	if (round % 3 != 2) /* rounds 2, 5, ...: the old poll is not even submitted yet */
		turn_until_ready(drv, old, URP_WRITABLE);
	if (round % 3 == 1)
		write_all(o[1], "old", 3); /* an old completion on its way */
	num = o[0];
	cr_assert_eq(urp_deregister(old), 0);
	close(o[0]);

	unix_pair(n);
	if (n[0] != num) {
		cr_assert_eq(dup2(n[0], num), num);
		close(n[0]);
		n[0] = num;
	}
	fresh = reg(n[0], URP_READABLE | URP_WRITABLE);
	/* Rounds 0, 3, ...: the old file is held open by its poll, so the write lands. Rounds
	 * 2, 5, ...: it was never polled, so the close was real. */
	if (round % 3 == 0)
		write_all(o[1], "old", 3);
	else if (round % 3 == 2)
		cr_assert_eq(send(o[1], "old", 3, MSG_NOSIGNAL), -1, "old socket still open");

	turn_until_ready(drv, fresh, URP_WRITABLE);
	settle(drv);
	cr_assert_eq(io_ready(fresh), URP_WRITABLE, "round %d: new entry shows %#x", round,
		     io_ready(fresh));
	/* The old socket is gone for real: its peer reads EOF. */
	for (i = 0; i < TURN_TRIES && read(o[1], buf, sizeof(buf)) != 0; i++)
		turn(drv, 10);
	cr_assert_lt(i, TURN_TRIES, "round %d: the old socket never closed", round);

	write_all(n[1], "new", 3);
	turn_until_ready(drv, fresh, URP_READABLE);
	assert_ready(fresh, URP_READABLE | URP_WRITABLE,
		     URP_READ_CLOSED | URP_WRITE_CLOSED | URP_ERROR);
	cr_assert_eq(drain_try_io(fresh, n[0]), 3);
	cr_assert_eq(urp_deregister(fresh), 0);
	close(n[0]);
	close(n[1]);
	close(o[1]);
}

Test(uring_deregister, close_reuse_no_stale_event)
{
	drv = driver_new(NULL);
	turn(drv, 0);
	for (int round = 0; round < 150; round++)
		reuse_round(round);
	cr_assert_eq(turn_until_live(drv, 0), 0);
}

/* The same with the old entry deregistered and the new one registered by other threads. */
struct reuse_ctx {
	struct urp_driver *drv;
	struct urp_io *old, *fresh;
	int num, n[2];
	int ret;
};

static void *reuse_main(void *arg)
{
	struct reuse_ctx *r = arg;
	int n0;

	r->ret = urp_deregister(r->old);
	if (r->ret)
		return NULL;
	close(r->num);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, r->n) < 0) {
		r->ret = -errno;
		return NULL;
	}
	n0 = r->n[0];
	if (n0 != r->num) {
		if (dup2(n0, r->num) != r->num) {
			r->ret = -EBADF;
			return NULL;
		}
		close(n0);
		r->n[0] = r->num;
	}
	r->ret = urp_register(r->drv, r->num, URP_READABLE | URP_WRITABLE, &r->fresh);
	return NULL;
}

Test(uring_deregister, close_reuse_from_other_thread_no_stale_event)
{
	drv = driver_new(NULL);
	turn(drv, 0);
	for (int round = 0; round < 60; round++) {
		struct reuse_ctx r = {.drv = drv};
		int o[2];

		unix_pair(o);
		r.old = reg(o[0], URP_READABLE | URP_WRITABLE);
		turn_until_ready(drv, r.old, URP_WRITABLE);
		r.num = o[0];
		run_on_thread(reuse_main, &r);
		cr_assert_eq(r.ret, 0, "round %d: %d", round, r.ret);
		write_all(o[1], "old", 3);
		turn_until_ready(drv, r.fresh, URP_WRITABLE);
		settle(drv);
		cr_assert_eq(io_ready(r.fresh), URP_WRITABLE, "round %d: new entry shows %#x",
			     round, io_ready(r.fresh));
		write_all(r.n[1], "new", 3);
		turn_until_ready(drv, r.fresh, URP_READABLE);
		cr_assert_eq(drain_try_io(r.fresh, r.n[0]), 3);
		cr_assert_eq(urp_deregister(r.fresh), 0);
		close(r.n[0]);
		close(r.n[1]);
		close(o[1]);
	}
	cr_assert_eq(turn_until_live(drv, 0), 0);
}

/*
 * Turns until the peer of a closed socket sees the close: EOF, or ECONNRESET when data was left
 * unread in the closed socket. Returns the turns it took.
 */
static int turns_until_eof(int peer)
{
	char buf[64];
	ssize_t n;
	int i;

	for (i = 0; i < TURN_TRIES; i++) {
		n = read(peer, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return i;
		cr_assert(n < 0 && errno == EAGAIN, "peer read: %zd (%s)", n, strerror(errno));
		turn(drv, 10);
	}
	cr_assert_fail("the peer never saw the close: the file is still open");
	return i;
}

/*
 * Deregistered while a wake-up of its poll is pending (data or a hang-up arrived since the last
 * turn): the removal must still end the poll, so the entry is freed and the file really closes.
 * Under DEFER_TASKRUN, IORING_OP_POLL_REMOVE fails with -EALREADY while the poll's task work is
 * pending (it cannot take ownership), and the poll stays armed.
 */
static void deregister_pending(unsigned flags, bool hangup, bool close_it)
{
	struct urp_driver_opts opts = {.flags = flags};
	struct urp_io *io;
	int sv[2];

	drv = driver_new(&opts);
	turn(drv, 0);
	unix_pair(sv);
	io = reg(sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	settle(drv);
	if (hangup)
		cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
	else
		write_all(sv[1], "pending", 7);
	if (close_it) {
		cr_assert_eq(urp_deregister_close(io), 0);
	} else {
		cr_assert_eq(urp_deregister(io), 0);
		close(sv[0]);
	}
	cr_assert_eq(turn_until_live(drv, 0), 0,
		     "the entry was never freed: its poll outlived the removal");
	cr_assert_leq(turns_until_eof(sv[1]), 2);
	close(sv[1]);
}

Test(uring_deregister, deregister_with_wakeup_pending_is_freed)
{
	deregister_pending(0, false, false);
}

Test(uring_deregister, deregister_with_hangup_pending_is_freed)
{
	deregister_pending(0, true, false);
}

Test(uring_deregister, deregister_close_with_wakeup_pending_closes)
{
	deregister_pending(0, false, true);
}

Test(uring_deregister, coop_deregister_with_wakeup_pending_is_freed)
{
	deregister_pending(URP_DRIVER_TIER_COOP, false, false);
}

/* close(fd) does not end an armed poll: the kernel keeps the file until the poll is removed,
 * which the next turn does after urp_deregister(). */
Test(uring_deregister, deregister_then_close_peer_sees_eof_after_turn)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg(sv[0], URP_READABLE);
	turn(drv, 0);
	cr_assert_eq(urp_deregister(io), 0);
	close(sv[0]);
	cr_assert_leq(turns_until_eof(sv[1]), 2);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

Test(uring_deregister, deregister_close_closes_after_poll_is_gone)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg(sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert(fd_is_open(sv[0]), "closed before the poll was removed");
	/* "on the next turn, or the one after" */
	cr_assert_leq(turns_until_eof(sv[1]), 2);
	cr_assert_not(fd_is_open(sv[0]), "fd %d still open", sv[0]);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

static void *deregister_close_main(void *arg)
{
	cr_assert_eq(urp_deregister_close(arg), 0);
	return NULL;
}

Test(uring_deregister, deregister_close_from_other_thread)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg(sv[0], URP_READABLE);
	turn(drv, 0);
	run_on_thread(deregister_close_main, io);
	cr_assert_leq(turns_until_eof(sv[1]), 2);
	cr_assert_not(fd_is_open(sv[0]));
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* Registered and deregistered before the first turn: never armed, still freed and closed. */
Test(uring_deregister, deregister_close_before_first_turn)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg(sv[0], URP_READABLE);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_leq(turns_until_eof(sv[1]), 2);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* A waker deregisters its own entry while the turn dispatches it. */
static struct urp_io *self_io;

static void deregister_self_wake(void *arg)
{
	int *calls = arg;

	(*calls)++;
	cr_assert_eq(urp_deregister_close(self_io), 0);
}

Test(uring_deregister, waker_deregisters_its_entry)
{
	int calls = 0, sv[2];
	struct urp_waker w = {.wake = deregister_self_wake, .arg = &calls};
	struct urp_event ev;

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	self_io = reg(sv[0], URP_READABLE);
	cr_assert_eq(urp_io_poll_ready(self_io, URP_DIR_READ, &w, &ev), -EAGAIN);
	write_all(sv[1], "x", 1);
	for (int i = 0; i < TURN_TRIES && !calls; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_eq(calls, 1);
	cr_assert_leq(turns_until_eof(sv[1]), 2);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* Two entries on one fd are independent: entries are keyed by token, not by fd. */
Test(uring_deregister, two_entries_same_fd_independent)
{
	struct urp_io *a, *b;
	int sv[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	a = reg(sv[0], URP_READABLE);
	b = reg(sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, b, URP_WRITABLE);
	write_all(sv[1], "x", 1);
	turn_until_ready(drv, a, URP_READABLE);
	turn_until_ready(drv, b, URP_READABLE);
	assert_ready(a, URP_READABLE, URP_WRITABLE | URP_ERROR);
	assert_ready(b, URP_READABLE | URP_WRITABLE, URP_ERROR);

	/* b goes; a keeps working, and the fd stays open for it. */
	cr_assert_eq(urp_deregister(b), 0);
	cr_assert_eq(turn_until_live(drv, 1), 1);
	cr_assert_eq(drain_try_io(a, sv[0]), 1);
	write_all(sv[1], "y", 1);
	turn_until_ready(drv, a, URP_READABLE);
	cr_assert_eq(drain_try_io(a, sv[0]), 1);
	cr_assert_eq(urp_deregister_close(a), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* ---- churn ---- */

static long rss_pages(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
	fclose(f);
	return resident;
}

#define CHURN_BATCH 100

/* Register a batch of eventfds, turn (their polls go in), then deregister them all -- half
 * closed by us right after urp_deregister(), half by urp_deregister_close() -- and turn. */
static void churn(long cycles)
{
	struct urp_io *io[CHURN_BATCH];
	int fd[CHURN_BATCH];

	for (long done = 0; done < cycles; done += CHURN_BATCH) {
		for (int i = 0; i < CHURN_BATCH; i++) {
			fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			cr_assert_geq(fd[i], 0);
			io[i] = reg(fd[i], URP_READABLE | URP_WRITABLE);
			if (i % 4 == 0)
				write_all(fd[i], &(uint64_t){1}, sizeof(uint64_t));
		}
		turn(drv, 0);
		for (int i = 0; i < CHURN_BATCH; i++) {
			if (i % 2) {
				cr_assert_eq(urp_deregister(io[i]), 0);
				close(fd[i]);
			} else {
				cr_assert_eq(urp_deregister_close(io[i]), 0);
			}
		}
		/* Under DEFER_TASKRUN a turn runs a bounded amount of task work (20 items on 6.18),
		 * so a batch takes a few turns to end. */
		cr_assert_eq(turn_until_live(drv, 0), 0, "cycle %ld: entries never freed", done);
	}
}

Test(uring_deregister, churn_100k_no_growth)
{
	struct urp_stats st;
	long before, after;

	drv = driver_new(NULL);
	turn(drv, 0);
	churn(10000); /* warm-up: allocator caches, ring pages, fd table */
	cr_assert_eq(turn_until_live(drv, 0), 0);
	before = rss_pages();
	churn(100000);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	after = rss_pages();
	st = driver_stats(drv);
	cr_assert_eq(st.unknown_tokens, 0);
	cr_assert_eq(st.poll_errors, 0, "%llu polls failed", (unsigned long long)st.poll_errors);
	cr_log_info("RSS %ld -> %ld pages over 100k cycles", before, after);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* 100k leaked entries would be over 12 MiB; allow 2 MiB of noise. (ASan's quarantine
	 * holds freed memory, so its build relies on the leak check instead.) */
	cr_assert_lt((after - before) * sysconf(_SC_PAGESIZE), 2L << 20,
		     "RSS grew from %ld to %ld pages", before, after);
#endif
}

/*
 * Bug: under DEFER_TASKRUN a turn ran at most 20 task-work items, one per cancelled poll, so a
 * server replacing 256 registrations per turn freed 20 per turn and hit -ENOSPC after ~30
 * turns. Each turn must now free everything it deregistered.
 */
Test(uring_deregister, deregister_hundreds_per_turn_frees_them_in_the_turn)
{
	enum { POOL = 1024, PER_TURN = 256, ROUNDS = 100 };
	static struct urp_io *io[POOL];
	struct urp_stats st;
	unsigned next = 0;

	drv = driver_new(NULL);
	for (unsigned i = 0; i < POOL; i++) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		cr_assert_geq(fd, 0);
		cr_assert_eq(urp_register(drv, fd, URP_READABLE, &io[i]), 0);
	}
	turn(drv, 0);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned j = 0; j < PER_TURN; j++, next = (next + 1) % POOL) {
			int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), ret;

			cr_assert_geq(fd, 0);
			cr_assert_eq(urp_deregister_close(io[next]), 0);
			ret = urp_register(drv, fd, URP_READABLE, &io[next]);
			cr_assert_eq(ret, 0, "round %u: urp_register: %s", r, urp_strerror(ret));
		}
		turn(drv, 0);
		st = driver_stats(drv);
		cr_assert_eq(st.live, POOL, "round %u: %llu entries live after the turn, want %d", r,
			     (unsigned long long)st.live, POOL);
	}
	for (unsigned i = 0; i < POOL; i++)
		urp_deregister_close(io[i]);
	cr_assert_eq(turn_until_live(drv, 0), 0);
}
