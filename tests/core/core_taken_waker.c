// SPDX-License-Identifier: MIT
/*
 * core_taken_waker: a waker already taken by a wake on another thread when its waiter goes (a
 * cancel, a clear, a Done, a slot replaced): the call returns only after the waker did
 * (docs/design.md, invariant 5).
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "core_util.h"

TestSuite(core_taken_waker, .init = io_setup, .fini = io_teardown, .timeout = 10);

/*
 * A wake takes a waker under the lock and calls it after unlocking. A cancel, clear or Done
 * that finds the waker already taken must not return before it was called: the caller may
 * free the waker's arg as soon as it returns (docs/design.md, invariant 5). The slow waker below
 * stands for a wake on another core that lost the race.
 */
struct slow_waker {
	atomic_int entered;
	atomic_int returned;
};

static void slow_wake(void *arg)
{
	struct slow_waker *s = arg;
	struct timespec pause = { 0, 200 * 1000 * 1000 };

	atomic_store(&s->entered, 1);
	nanosleep(&pause, NULL);
	atomic_store(&s->returned, 1);
}

static void *set_readable(void *arg)
{
	(void)arg;
	urp_io_set_readiness(io, URP_READABLE);
	return NULL;
}

static pthread_t start_slow_wake(struct slow_waker *s)
{
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, set_readable, NULL), 0);
	while (!atomic_load(&s->entered))
		sched_yield();
	return t;
}

Test(core_taken_waker, cancel_waits_for_taken_waker)
{
	struct slow_waker s = { 0 };
	struct urp_waker w = { slow_wake, &s };
	struct urp_readiness r;
	pthread_t t;

	wait_on(&r, URP_READABLE, &w);
	t = start_slow_wake(&s);
	urp_readiness_cancel(&r);
	cr_assert_eq(atomic_load(&s.returned), 1, "cancel returned while its waker was running");
	pthread_join(t, NULL);
}

Test(core_taken_waker, done_waits_for_taken_waker)
{
	struct slow_waker s = { 0 };
	struct urp_waker w = { slow_wake, &s };
	struct urp_readiness r;
	struct urp_event ev;
	pthread_t t;

	wait_on(&r, URP_READABLE, &w);
	t = start_slow_wake(&s);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(atomic_load(&s.returned), 1, "Done returned while its waker was running");
	pthread_join(t, NULL);
}

Test(core_taken_waker, clear_wakers_waits_for_taken_waker)
{
	struct slow_waker s = { 0 };
	struct urp_waker w = { slow_wake, &s };
	pthread_t t;

	slot_on(URP_DIR_READ, &w);
	t = start_slow_wake(&s);
	urp_io_clear_wakers(io);
	cr_assert_eq(atomic_load(&s.returned), 1, "clear returned while a slot waker was running");
	pthread_join(t, NULL);
}

Test(core_taken_waker, slot_replace_waits_for_taken_waker)
{
	struct slow_waker s = { 0 };
	struct urp_waker w = { slow_wake, &s };
	struct counter c = { 0 };
	struct urp_waker next = counting(&c);
	struct urp_event ev;
	pthread_t t;

	slot_on(URP_DIR_READ, &w);
	t = start_slow_wake(&s);
	/* Consume the readiness, then store a new waker in the slot whose old one is running. */
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &next, &ev), -EAGAIN);
	cr_assert_eq(atomic_load(&s.returned), 1, "replace returned while the old waker ran");
	pthread_join(t, NULL);
	/* next's counter lives on this stack: the teardown's shutdown must not call it. */
	urp_io_clear_wakers(io);
}
