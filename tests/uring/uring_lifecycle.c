// SPDX-License-Identifier: MIT
/*
 * uring_lifecycle: the life of a driver and its entries. Bad input, shutdown, the registration
 * limit, setup tiers, deregistration and close (fd reuse, deregister_close, EOF at the peer),
 * churn without growth, and freeing a driver that still has entries.
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

/* ---- shutdown ---- */

static void *shutdown_main(void *arg)
{
	urp_driver_shutdown(arg);
	return NULL;
}

Test(uring_lifecycle, register_after_shutdown_is_eshutdown)
{
	struct thread_reg tr = {.interest = URP_READABLE};
	struct urp_io *io = (struct urp_io *)&io;
	int sv[2];

	unix_pair(sv);
	/* Shut down before any turn, on the turning thread, and from another thread. */
	drv = driver_new(NULL);
	urp_driver_shutdown(drv);
	cr_assert_eq(urp_register(drv, sv[0], URP_READABLE, &io), -ESHUTDOWN);
	turn(drv, 0);
	cr_assert_eq(urp_register(drv, sv[0], URP_READABLE, &io), -ESHUTDOWN);
	urp_driver_free(drv);

	drv = driver_new(NULL);
	turn(drv, 0);
	urp_driver_shutdown(drv);
	cr_assert_eq(urp_register(drv, sv[0], URP_READABLE, &io), -ESHUTDOWN);
	tr.drv = drv;
	tr.fd = sv[0];
	run_on_thread(register_main, &tr);
	cr_assert_eq(tr.ret, -ESHUTDOWN);
	/* Idempotent. */
	urp_driver_shutdown(drv);
	urp_driver_free(drv);

	drv = driver_new(NULL);
	turn(drv, 0);
	run_on_thread(shutdown_main, drv);
	cr_assert_eq(urp_register(drv, sv[0], URP_READABLE, &io), -ESHUTDOWN);
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).live, 0, "a refused registration counts as live");
	close(sv[0]);
	close(sv[1]);
}

#define NSHUT 8

struct shut_fixture {
	int sv[NSHUT][2];
	struct urp_io *io[NSHUT];
	struct urp_readiness fut[NSHUT];
	atomic_int woken;
	int waiting; /* wakers stored */
};

/*
 * Entries 0..NSHUT-3 registered on the turning thread and armed, the last two from another
 * thread after that (queued until the next turn). Futures wait on every entry but the first,
 * whose reader slot waits instead.
 */
static void shut_prepare(struct shut_fixture *f)
{
	struct urp_waker waker = {.wake = count_wake, .arg = &f->woken};
	struct urp_event ev;

	atomic_init(&f->woken, 0);
	f->waiting = 0;
	turn(drv, 0);
	for (int i = 0; i < NSHUT; i++)
		unix_pair(f->sv[i]);
	for (int i = 0; i < NSHUT - 2; i++) {
		f->io[i] = reg(f->sv[i][0], URP_READABLE | URP_WRITABLE);
		turn_until_ready(drv, f->io[i], URP_WRITABLE);
	}
	for (int i = NSHUT - 2; i < NSHUT; i++) {
		struct thread_reg tr = {.drv = drv, .fd = f->sv[i][0], .interest = URP_READABLE};

		run_on_thread(register_main, &tr);
		cr_assert_eq(tr.ret, 0);
		f->io[i] = tr.io;
	}
	cr_assert_eq(urp_io_poll_ready(f->io[0], URP_DIR_READ, &waker, &ev), -EAGAIN);
	f->waiting++;
	for (int i = 1; i < NSHUT; i++) {
		urp_readiness_init(&f->fut[i], f->io[i], URP_READABLE);
		cr_assert_eq(urp_readiness_poll(&f->fut[i], &waker, &ev), -EAGAIN);
		f->waiting++;
	}
	for (int i = 0; i < NSHUT; i++)
		cr_assert_not(urp_word_shutdown(urp_io_word(f->io[i])));
}

/* Every entry shut down, every waiter woken and done with ev.shutdown. */
static void shut_check(struct shut_fixture *f)
{
	struct urp_event ev;

	for (int i = 0; i < NSHUT; i++)
		cr_assert(urp_word_shutdown(urp_io_word(f->io[i])), "entry %d (%s) not shut down", i,
			  i < NSHUT - 2 ? "armed" : "queued");
	cr_assert_eq(atomic_load(&f->woken), f->waiting, "%d of %d waiters woken",
		     atomic_load(&f->woken), f->waiting);
	cr_assert_eq(urp_io_poll_ready(f->io[0], URP_DIR_READ, NULL, &ev), 0);
	cr_assert(ev.shutdown);
	for (int i = 1; i < NSHUT; i++) {
		cr_assert_eq(urp_readiness_poll(&f->fut[i], NULL, &ev), 0, "future %d pending", i);
		cr_assert(ev.shutdown);
	}
}

static void shut_finish(struct shut_fixture *f)
{
	for (int i = 0; i < NSHUT; i++)
		cr_assert_eq(urp_deregister(f->io[i]), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	for (int i = 0; i < NSHUT; i++) {
		close(f->sv[i][0]);
		close(f->sv[i][1]);
	}
}

/* On the turning thread, everything is done before urp_driver_shutdown() returns. */
Test(uring_lifecycle, shutdown_on_turning_thread_wakes_before_return)
{
	struct shut_fixture f;
	struct urp_io *io;

	drv = driver_new(NULL);
	shut_prepare(&f);
	urp_driver_shutdown(drv);
	shut_check(&f);
	cr_assert_eq(urp_register(drv, f.sv[0][1], URP_READABLE, &io), -ESHUTDOWN);
	/* Readiness keeps flowing into shut-down entries; the bit stays. */
	write_all(f.sv[1][1], "x", 1);
	turn_until_ready(drv, f.io[1], URP_READABLE);
	cr_assert(urp_word_shutdown(urp_io_word(f.io[1])));
	shut_finish(&f);
}

/* From another thread, the bits are set and the waiters woken by the next turn. */
Test(uring_lifecycle, shutdown_from_other_thread_applies_at_next_turn)
{
	struct shut_fixture f;
	struct urp_io *io;

	drv = driver_new(NULL);
	shut_prepare(&f);
	run_on_thread(shutdown_main, drv);
	cr_assert_eq(urp_register(drv, f.sv[0][1], URP_READABLE, &io), -ESHUTDOWN);
	turn(drv, TURN_WAIT_MS);
	shut_check(&f);
	shut_finish(&f);
}

/* A waker run by the shutdown may deregister its entry (the woken task drops its I/O). */
static struct urp_io *drop_io[NSHUT];

static void drop_wake(void *arg)
{
	int i = (int)(intptr_t)arg;

	cr_assert_eq(urp_deregister(drop_io[i]), 0);
}

Test(uring_lifecycle, shutdown_waker_may_deregister)
{
	struct urp_readiness fut[NSHUT];
	struct urp_event ev;
	int sv[NSHUT][2];

	drv = driver_new(NULL);
	turn(drv, 0);
	for (int i = 0; i < NSHUT; i++) {
		struct urp_waker w = {.wake = drop_wake, .arg = (void *)(intptr_t)i};

		unix_pair(sv[i]);
		drop_io[i] = reg(sv[i][0], URP_READABLE);
		urp_readiness_init(&fut[i], drop_io[i], URP_READABLE);
		cr_assert_eq(urp_readiness_poll(&fut[i], &w, &ev), -EAGAIN);
	}
	urp_driver_shutdown(drv);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	for (int i = 0; i < NSHUT; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

static int gone_wakes;

static void gone_wake(void *arg)
{
	gone_wakes++;
}

/*
 * Bug (found by tests/fuzz/driver_ops): urp_driver_shutdown() called the waker of an entry
 * deregistered in the same turn, whose poll had not ended yet. The entry is gone for the caller,
 * who may have freed the waker's arg.
 */
Test(uring_lifecycle, shutdown_skips_deregistered_entries)
{
	struct urp_waker w = {.wake = gone_wake, .arg = NULL};
	struct urp_event ev;
	struct urp_io *io;
	int p[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	io = reg(p[0], URP_READABLE);
	turn(drv, 0);
	gone_wakes = 0;
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &w, &ev), -EAGAIN);
	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_shutdown(drv);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	cr_assert_eq(gone_wakes, 0, "the deregistered entry's waker ran %d times", gone_wakes);
	close(p[0]);
	close(p[1]);
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

Test(uring_lifecycle, close_reuse_no_stale_event)
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

Test(uring_lifecycle, close_reuse_from_other_thread_no_stale_event)
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

Test(uring_lifecycle, deregister_with_wakeup_pending_is_freed)
{
	deregister_pending(0, false, false);
}

Test(uring_lifecycle, deregister_with_hangup_pending_is_freed)
{
	deregister_pending(0, true, false);
}

Test(uring_lifecycle, deregister_close_with_wakeup_pending_closes)
{
	deregister_pending(0, false, true);
}

Test(uring_lifecycle, coop_deregister_with_wakeup_pending_is_freed)
{
	deregister_pending(URP_DRIVER_TIER_COOP, false, false);
}

/* close(fd) does not end an armed poll: the kernel keeps the file until the poll is removed,
 * which the next turn does after urp_deregister(). */
Test(uring_lifecycle, deregister_then_close_peer_sees_eof_after_turn)
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

Test(uring_lifecycle, deregister_close_closes_after_poll_is_gone)
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

Test(uring_lifecycle, deregister_close_from_other_thread)
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
Test(uring_lifecycle, deregister_close_before_first_turn)
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

Test(uring_lifecycle, waker_deregisters_its_entry)
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

/* Two entries on one fd are independent: entries are keyed by token, not by fd. */
Test(uring_lifecycle, two_entries_same_fd_independent)
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

Test(uring_lifecycle, churn_100k_no_growth)
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
Test(uring_lifecycle, deregister_hundreds_per_turn_frees_them_in_the_turn)
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
