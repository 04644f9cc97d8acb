// SPDX-License-Identifier: MIT
/*
 * uring_lifecycle: the life of a driver and its entries. Bad input, the registration limit,
 * setup tiers, entries made by a waker or whose poll failed, the counters, freeing a driver that
 * still has entries, and the error sentences. Shutdown is uring_shutdown's, deregistration and
 * close uring_deregister's.
 *
 * Leaks are caught by LeakSanitizer in the ASan build (make check runs it there).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "uring_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(uring_lifecycle, .init = setup, .fini = drv_teardown, .timeout = 120);

/* ---- bad input ---- */

Test(uring_lifecycle, bad_input_is_einval)
{
	struct urp_driver_opts opts = {0};
	struct urp_driver_info info;
	struct urp_driver *other = NULL;
	struct urp_stats st;
	struct urp_io *io = NULL;
	int sv[2];

	cr_assert_eq(urp_driver_new(NULL, NULL), -EINVAL);
	opts.flags = 0x100;
	cr_assert_eq(urp_driver_new(&other, &opts), -EINVAL, "unknown driver flag accepted");
	cr_assert_null(other);
	opts.flags = 0x80000000u;
	cr_assert_eq(urp_driver_new(&other, &opts), -EINVAL, "unknown driver flag accepted");
	opts = (struct urp_driver_opts){.cq_entries = 2};
	cr_assert_eq(urp_driver_new(&other, &opts), -EINVAL,
		     "2 CQ entries accepted without URP_DRIVER_OVERCOMMIT (room for 0 registrations)");
	opts = (struct urp_driver_opts){.cq_entries = 1, .flags = URP_DRIVER_OVERCOMMIT};
	cr_assert_eq(urp_driver_new(&other, &opts), -EINVAL, "1 CQ entry accepted");
	opts = (struct urp_driver_opts){.sq_entries = 1u << 20};
	cr_assert_eq(urp_driver_new(&other, &opts), -EINVAL, "a 1M-entry SQ accepted");
	cr_assert_null(other);

	drv = driver_new(NULL);
	unix_pair(sv);
	cr_assert_eq(urp_register(NULL, sv[0], URP_READABLE, &io), -EINVAL);
	cr_assert_eq(urp_register(drv, sv[0], URP_READABLE, NULL), -EINVAL);
	cr_assert_eq(urp_register(drv, -1, URP_READABLE, &io), -EINVAL);
	cr_assert_eq(urp_register(drv, -100, URP_READABLE, &io), -EINVAL);
	cr_assert_eq(urp_register(drv, sv[0], 0, &io), -EINVAL);
	cr_assert_eq(urp_register(drv, sv[0], 0x40, &io), -EINVAL);
	cr_assert_eq(urp_register(drv, sv[0], URP_READABLE | 0x100, &io), -EINVAL);
	/* READ_CLOSED and WRITE_CLOSED are ready bits, not interests. */
	cr_assert_eq(urp_register(drv, sv[0], URP_READ_CLOSED, &io), -EINVAL);
	cr_assert_eq(urp_register(drv, sv[0], URP_WRITE_CLOSED, &io), -EINVAL);
	cr_assert_null(io);

	cr_assert_eq(urp_deregister(NULL), -EINVAL);
	cr_assert_eq(urp_deregister_close(NULL), -EINVAL);
	cr_assert_eq(urp_driver_turn(NULL, 0), -EINVAL);
	cr_assert_eq(urp_driver_turn(drv, -2), -EINVAL);
	cr_assert_eq(urp_driver_unpark(NULL), -EINVAL);
	cr_assert_eq(urp_driver_stats(NULL, &st), -EINVAL);
	cr_assert_eq(urp_driver_stats(drv, NULL), -EINVAL);
	cr_assert_eq(urp_driver_info(NULL, &info), -EINVAL);
	cr_assert_eq(urp_driver_info(drv, NULL), -EINVAL);
	urp_driver_free(NULL);
	urp_driver_shutdown(NULL);

	/* Nothing was registered by any of that. */
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).live, 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---- registration limit ---- */

Test(uring_lifecycle, registration_limit_enospc)
{
	struct urp_driver_opts opts = {.sq_entries = 16, .cq_entries = 64};
	struct urp_driver_info info;
	struct thread_reg tr;
	struct urp_io **ios;
	unsigned max;
	int *fds, efd, ret;
	struct urp_io *io = NULL;

	drv = driver_new(&opts);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	max = info.max_registrations;
	cr_assert_geq(info.cq_entries, 64);
	cr_assert_eq(max, info.cq_entries / 2 - 1, "limit %u for %u CQ entries", max,
		     info.cq_entries);
	ios = calloc(max, sizeof(*ios));
	fds = calloc(max, sizeof(*fds));
	cr_assert(ios && fds);
	turn(drv, 0);
	for (unsigned i = 0; i < max; i++) {
		fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		cr_assert_geq(fds[i], 0);
		ios[i] = reg(fds[i], URP_READABLE);
	}
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ret = urp_register(drv, efd, URP_READABLE, &io);
	cr_assert_eq(ret, -ENOSPC, "registration %u of %u: %d", max + 1, max, ret);
	tr = (struct thread_reg){.drv = drv, .fd = efd, .interest = URP_READABLE};
	run_on_thread(register_main, &tr);
	cr_assert_eq(tr.ret, -ENOSPC, "from another thread: %d", tr.ret);
	cr_assert_eq(driver_stats(drv).live, max);

	/* Every registration within the limit works: all of them report a write. */
	for (unsigned i = 0; i < max; i++)
		write_all(fds[i], &(uint64_t){1}, sizeof(uint64_t));
	for (unsigned i = 0; i < max; i++) {
		turn_until_ready(drv, ios[i], URP_READABLE);
		assert_ready(ios[i], URP_READABLE, URP_ERROR);
	}
	cr_assert_eq(driver_stats(drv).cq_overflows, 0, "the limit is there to avoid overflow");

	/* A slot frees once an entry is gone. */
	cr_assert_eq(urp_deregister_close(ios[0]), 0);
	cr_assert_eq(turn_until_live(drv, max - 1), max - 1);
	ios[0] = reg(efd, URP_READABLE);
	cr_assert_eq(urp_register(drv, efd, URP_READABLE, &io), -ENOSPC);
	for (unsigned i = 0; i < max; i++)
		cr_assert_eq(urp_deregister_close(ios[i]), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	free(ios);
	free(fds);
}

Test(uring_lifecycle, overcommit_has_no_limit)
{
	struct urp_driver_opts opts = {
	    .sq_entries = 16, .cq_entries = 64, .flags = URP_DRIVER_OVERCOMMIT};
	struct urp_driver_opts plain = {.sq_entries = 16, .cq_entries = 64};
	struct urp_driver_info info;
	struct urp_io *ios[200];
	unsigned limit;
	int efd[200];

	drv = driver_new(&plain);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	limit = info.max_registrations;
	urp_driver_free(drv);

	drv = driver_new(&opts);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	cr_assert_gt(info.max_registrations, 200);
	cr_assert_lt(limit, 200);
	turn(drv, 0);
	for (int i = 0; i < 200; i++) {
		efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		cr_assert_geq(efd[i], 0);
		ios[i] = reg(efd[i], URP_READABLE);
	}
	cr_assert_eq(driver_stats(drv).live, 200);
	for (int i = 0; i < 200; i++)
		write_all(efd[i], &(uint64_t){1}, sizeof(uint64_t));
	for (int i = 0; i < 200; i++)
		turn_until_ready(drv, ios[i], URP_READABLE);
	for (int i = 0; i < 200; i++) {
		assert_ready(ios[i], URP_READABLE, URP_ERROR);
		cr_assert_eq(urp_deregister_close(ios[i]), 0);
	}
	cr_assert_eq(turn_until_live(drv, 0), 0);
}

/* ---- tiers ---- */

struct cross_reg {
	struct urp_driver *drv;
	int fd;
	struct urp_io *io;
	int ret;
	atomic_int woken;
	struct urp_readiness fut;
	atomic_bool done;
};

/* Register from another thread while the test thread turns, then wait for readiness there. */
static void *cross_main(void *arg)
{
	struct cross_reg *c = arg;
	struct urp_waker w = {.wake = count_wake, .arg = &c->woken};
	struct urp_event ev;

	c->ret = urp_register(c->drv, c->fd, URP_READABLE, &c->io);
	if (c->ret == 0) {
		urp_readiness_init(&c->fut, c->io, URP_READABLE);
		c->ret = urp_readiness_poll(&c->fut, &w, &ev);
		if (c->ret == -EAGAIN)
			c->ret = 0;
		else
			c->ret = -EPROTO; /* nothing was written yet: must pend */
	}
	atomic_store(&c->done, true);
	return NULL;
}

static void tier_end_to_end(unsigned flags, enum urp_tier tier, const char *name)
{
	struct urp_driver_opts opts = {.flags = flags};
	struct urp_driver_info info;
	struct cross_reg c = {0};
	struct urp_io *queued, *direct;
	struct urp_event ev;
	pthread_t thread;
	int a[2], b[2], x[2];

	drv = driver_new(&opts);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	cr_assert_eq(info.tier, tier, "tier %d (%s), wanted %d", info.tier, info.tier_name, tier);
	cr_assert_str_eq(info.tier_name, name);
	cr_assert_geq(info.cq_entries, 16384);
	cr_assert_geq(info.sq_entries, 256);
	cr_assert_eq(info.max_registrations, info.cq_entries / 2 - 1);

	unix_pair(a);
	unix_pair(b);
	unix_pair(x);
	write_all(a[1], "q", 1);
	queued = reg(a[0], URP_READABLE); /* before the first turn: through the queue */
	turn_until_ready(drv, queued, URP_READABLE);
	direct = reg(b[0], URP_READABLE | URP_WRITABLE); /* on the turning thread: armed now */
	turn_until_ready(drv, direct, URP_WRITABLE);
	write_all(b[1], "d", 1);
	turn_until_ready(drv, direct, URP_READABLE);

	c.drv = drv;
	c.fd = x[0];
	cr_assert_eq(pthread_create(&thread, NULL, cross_main, &c), 0);
	for (int i = 0; i < TURN_TRIES * 10 && !atomic_load(&c.done); i++)
		turn(drv, 10);
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert_eq(c.ret, 0, "cross-thread registration: %d", c.ret);
	write_all(x[1], "c", 1);
	turn_until_ready(drv, c.io, URP_READABLE);
	cr_assert_eq(atomic_load(&c.woken), 1, "the cross-thread future was not woken");
	cr_assert_eq(urp_readiness_poll(&c.fut, NULL, &ev), 0);
	cr_assert_eq(ev.ready & URP_READABLE, URP_READABLE);

	assert_ready(queued, URP_READABLE, URP_ERROR);
	assert_ready(direct, URP_READABLE | URP_WRITABLE, URP_ERROR);
	cr_assert_eq(urp_deregister_close(queued), 0);
	cr_assert_eq(urp_deregister_close(direct), 0);
	cr_assert_eq(urp_deregister_close(c.io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	cr_assert_eq(drain_fd(a[1]) + drain_fd(b[1]) + drain_fd(x[1]), 0);
	close(a[1]);
	close(b[1]);
	close(x[1]);
}

Test(uring_lifecycle, tier_defer_by_default)
{
	tier_end_to_end(0, URP_TIER_DEFER, "defer");
}

Test(uring_lifecycle, tier_coop_end_to_end)
{
	tier_end_to_end(URP_DRIVER_TIER_COOP, URP_TIER_COOP, "coop");
}

Test(uring_lifecycle, tier_basic_end_to_end)
{
	tier_end_to_end(URP_DRIVER_TIER_BASIC, URP_TIER_BASIC, "basic");
}

Test(uring_lifecycle, tier_basic_wins_over_coop)
{
	tier_end_to_end(URP_DRIVER_TIER_BASIC | URP_DRIVER_TIER_COOP, URP_TIER_BASIC, "basic");
}

/* ---- entries: made by a waker, failed polls, the counters ---- */

/* A waker registers a new entry from inside the turn: it is armed at once and works. */
static struct urp_io *chained_io;
static int chained_fd;

static void register_wake(void *arg)
{
	cr_assert_eq(urp_register(arg, chained_fd, URP_READABLE, &chained_io), 0);
}

Test(uring_lifecycle, waker_registers_new_entry)
{
	struct urp_waker w;
	struct urp_event ev;
	struct urp_io *io;
	int a[2], b[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(a);
	unix_pair(b);
	chained_fd = b[0];
	w = (struct urp_waker){.wake = register_wake, .arg = drv};
	io = reg(a[0], URP_READABLE);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &w, &ev), -EAGAIN);
	write_all(b[1], "b", 1); /* present when the chained entry is armed */
	write_all(a[1], "a", 1);
	for (int i = 0; i < TURN_TRIES && !chained_io; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_not_null(chained_io);
	turn_until_ready(drv, chained_io, URP_READABLE);
	assert_ready(chained_io, URP_READABLE, URP_ERROR);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(urp_deregister_close(chained_io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(a[1]);
	close(b[1]);
}

static ssize_t eagain_op(void *arg)
{
	(void)arg;
	return -EAGAIN;
}

/* A registration whose poll fails (the fd is not open) reports ERROR, counts a poll error and
 * shuts the entry down, instead of leaving its waiters asleep. It used to report ERROR and both
 * closed bits for good, so a task loop retrying an operation that answered EAGAIN spun. */
Test(uring_lifecycle, failed_poll_shuts_entry_down)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	close(sv[0]);
	io = reg(sv[0], URP_READABLE);
	turn_until_ready(drv, io, URP_ERROR);
	assert_ready(io, URP_ERROR, URP_READ_CLOSED | URP_WRITE_CLOSED);
	cr_assert(urp_word_shutdown(urp_io_word(io)), "a dead poll must shut its entry down");
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, eagain_op, NULL), -ESHUTDOWN);
	cr_assert_eq(driver_stats(drv).poll_errors, 1);
	/* And says why, where a driver shutdown would leave it 0. */
	cr_assert_eq(urp_io_poll_error(io), -EBADF);
	cr_assert_eq(urp_deregister(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* The counters add up: one turn per call, events as returned, one enter per turn here. */
Test(uring_lifecycle, stats_count_turns_events_and_enters)
{
	struct urp_stats before, after;
	atomic_int woken;
	struct urp_waker w = {.wake = count_wake, .arg = &woken};
	struct urp_event ev;
	struct urp_io *io;
	long events = 0;
	int sv[2];

	atomic_init(&woken, 0);
	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	io = reg(sv[0], URP_READABLE);
	settle(drv);
	before = driver_stats(drv);
	for (int round = 0; round < 20; round++) {
		cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &w, &ev), -EAGAIN);
		write_all(sv[1], "p", 1);
		for (int i = 0; i < TURN_TRIES && atomic_load(&woken) == round; i++)
			events += turn(drv, TURN_WAIT_MS);
		cr_assert_eq(atomic_load(&woken), round + 1);
		cr_assert_eq(drain_try_io(io, sv[0]), 1);
	}
	after = driver_stats(drv);
	cr_assert_eq((long)(after.events - before.events), events);
	cr_assert_geq(events, 20);
	cr_assert_eq(after.wakes - before.wakes, 20);
	cr_assert_eq(after.wake_batches - before.wake_batches, 20);
	cr_assert_eq(after.rearms, before.rearms, "a healthy poll ended");
	cr_assert_eq(after.extra_enters, before.extra_enters);
	cr_assert_eq(after.enters - before.enters, after.turns - before.turns,
		     "%llu enters for %llu turns",
		     (unsigned long long)(after.enters - before.enters),
		     (unsigned long long)(after.turns - before.turns));
	cr_assert_eq(after.stale_rejects, 0);
	cr_assert_eq(after.cq_overflows, 0);
	cr_assert_eq(after.live, 1);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* ---- urp_driver_free with entries still live ---- */

struct free_ctx {
	struct urp_driver *drv;
	int fd[2];
	struct urp_io *io[2];
	int ret;
};

static void *free_register_main(void *arg)
{
	struct free_ctx *f = arg;

	for (int i = 0; i < 2 && !f->ret; i++)
		f->ret = urp_register(f->drv, f->fd[i], URP_READABLE, &f->io[i]);
	return NULL;
}

/*
 * Free a driver holding: armed entries with waiters, entries queued from another thread,
 * entries deregistered but not yet removed, and deregister_close()d ones. Waiters are woken
 * (shutdown), the deregister_close()d fds are closed, and LeakSanitizer finds nothing.
 */
Test(uring_lifecycle, free_with_live_entries_releases_them)
{
	struct urp_readiness fut[4];
	struct urp_io *armed[4], *gone[2], *closing[2];
	int sv_armed[4][2], sv_gone[2][2], sv_closing[2][2], sv_queued[2][2];
	struct free_ctx f = {0};
	atomic_int woken;
	struct urp_waker w = {.wake = count_wake, .arg = &woken};
	struct urp_event ev;

	atomic_init(&woken, 0);
	drv = driver_new(NULL);
	turn(drv, 0);
	for (int i = 0; i < 4; i++) {
		unix_pair(sv_armed[i]);
		armed[i] = reg(sv_armed[i][0], URP_READABLE);
		urp_readiness_init(&fut[i], armed[i], URP_READABLE);
		cr_assert_eq(urp_readiness_poll(&fut[i], &w, &ev), -EAGAIN);
	}
	for (int i = 0; i < 2; i++) {
		unix_pair(sv_gone[i]);
		unix_pair(sv_closing[i]);
		unix_pair(sv_queued[i]);
		gone[i] = reg(sv_gone[i][0], URP_READABLE);
		closing[i] = reg(sv_closing[i][0], URP_READABLE);
	}
	turn(drv, 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(urp_deregister(gone[i]), 0);
		cr_assert_eq(urp_deregister_close(closing[i]), 0);
	}
	f.drv = drv;
	f.fd[0] = sv_queued[0][0];
	f.fd[1] = sv_queued[1][0];
	run_on_thread(free_register_main, &f);
	cr_assert_eq(f.ret, 0);
	cr_assert_eq(driver_stats(drv).live, 10);

	urp_driver_free(drv);
	drv = NULL;
	cr_assert_eq(atomic_load(&woken), 4, "%d of 4 waiters woken by urp_driver_free",
		     atomic_load(&woken));
	for (int i = 0; i < 2; i++) {
		struct pollfd pfd = {.fd = sv_closing[i][1], .events = POLLIN};
		char c;

		cr_assert_not(fd_is_open(sv_closing[i][0]), "deregister_close()d fd left open");
		/* The ring's teardown (which drops the polls' file references) runs async. */
		cr_assert_eq(poll(&pfd, 1, 5000), 1, "the peer saw no EOF");
		cr_assert_eq(read(sv_closing[i][1], &c, 1), 0, "the peer saw no EOF");
		cr_assert(fd_is_open(sv_gone[i][0]), "urp_deregister()ed fd closed by the driver");
		cr_assert(fd_is_open(sv_queued[i][0]), "a registered fd closed by the driver");
		close(sv_closing[i][1]);
		close(sv_gone[i][0]);
		close(sv_gone[i][1]);
		close(sv_queued[i][0]);
		close(sv_queued[i][1]);
	}
	for (int i = 0; i < 4; i++) {
		cr_assert(fd_is_open(sv_armed[i][0]));
		close(sv_armed[i][0]);
		close(sv_armed[i][1]);
	}
}

/* Freed by a thread other than the one that turned it: the entries still go, after their
 * waiters are woken by the shutdown. */
static void *turn_main(void *arg)
{
	struct urp_io *io = arg;

	for (int i = 0; i < TURN_TRIES && !(io_ready(io) & URP_READABLE); i++)
		cr_assert_geq(urp_driver_turn(drv, 10), 0);
	return NULL;
}

Test(uring_lifecycle, free_from_other_thread)
{
	atomic_int woken;
	struct urp_waker w = {.wake = count_wake, .arg = &woken};
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	atomic_init(&woken, 0);
	drv = driver_new(NULL);
	unix_pair(sv);
	write_all(sv[1], "x", 1);
	io = reg(sv[0], URP_READABLE);
	run_on_thread(turn_main, io);
	assert_ready(io, URP_READABLE, URP_ERROR);
	/* Registered for reading only: the writer slot waits for good. */
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_WRITE, &w, &ev), -EAGAIN);
	cr_assert_eq(urp_driver_turn(drv, 0), -EEXIST);
	urp_driver_free(drv);
	drv = NULL;
	cr_assert_eq(atomic_load(&woken), 1, "the waiter was not woken by urp_driver_free");
	cr_assert(fd_is_open(sv[0]), "a registered fd closed by the driver");
	close(sv[0]);
	close(sv[1]);
}

/* ---- error sentences ---- */

Test(uring_lifecycle, strerror_explains_setup_errors)
{
	static const int errs[] = {EPERM,  ENOSYS,    ENOMEM, EMFILE, ENFILE, EOPNOTSUPP,
				   ECHILD, ESHUTDOWN, ENOSPC, EEXIST, EBUSY};
	const char *seen[sizeof(errs) / sizeof(errs[0])];

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *s = urp_strerror(-errs[i]);

		cr_assert_not_null(s, "urp_strerror(-%d) is NULL", errs[i]);
		cr_assert_gt(strlen(s), 10, "urp_strerror(-%d) = \"%s\"", errs[i], s);
		cr_assert_str_eq(urp_strerror(errs[i]), s, "sign matters for %d", errs[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert(strcmp(seen[j], s) != 0, "-%d and -%d share a sentence", errs[j],
				  errs[i]);
		seen[i] = s;
	}
	cr_assert_not_null(urp_strerror(-123456));
	cr_assert_not_null(urp_strerror(0));
}
