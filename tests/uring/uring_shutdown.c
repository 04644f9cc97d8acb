// SPDX-License-Identifier: MIT
/*
 * uring_shutdown: urp_driver_shutdown(). New registrations are refused (-ESHUTDOWN) before any
 * turn, on the turning thread and from another; every entry, armed or queued, gets its shutdown
 * bit and every waiter is woken, before the call returns on the turning thread and at the next
 * turn from another; a waker it runs may deregister its entry, and an entry deregistered in the
 * same turn is skipped.
 */
#include <signal.h>

#include "uring_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(uring_shutdown, .init = setup, .fini = drv_teardown, .timeout = 120);

static void *shutdown_main(void *arg)
{
	urp_driver_shutdown(arg);
	return NULL;
}

Test(uring_shutdown, register_after_shutdown_is_eshutdown)
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
Test(uring_shutdown, shutdown_on_turning_thread_wakes_before_return)
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
Test(uring_shutdown, shutdown_from_other_thread_applies_at_next_turn)
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

Test(uring_shutdown, shutdown_waker_may_deregister)
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

/*
 * Bug (found by tests/fuzz/driver_ops): urp_driver_shutdown() called the waker of an entry
 * deregistered in the same turn, whose poll had not ended yet. The entry is gone for the caller,
 * who may have freed the waker's arg.
 */
Test(uring_shutdown, shutdown_skips_deregistered_entries)
{
	atomic_int gone_wakes;
	struct urp_waker w = {.wake = count_wake, .arg = &gone_wakes};
	struct urp_event ev;
	struct urp_io *io;
	int p[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	io = reg(p[0], URP_READABLE);
	turn(drv, 0);
	atomic_init(&gone_wakes, 0);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &w, &ev), -EAGAIN);
	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_shutdown(drv);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	cr_assert_eq(atomic_load(&gone_wakes), 0, "the deregistered entry's waker ran %d times",
		     atomic_load(&gone_wakes));
	close(p[0]);
	close(p[1]);
}
