// SPDX-License-Identifier: MIT
/*
 * core_wake: who a Set wakes, and in how many batches (docs/design.md, "The readiness word":
 * Wake; "Readiness future and slots"). Wakers that call back into the entry are core_reentry's,
 * wakers already taken when their waiter goes are core_taken_waker's.
 */
#include "core_util.h"

#define WAKE_ARRAY 32 /* docs/design.md: wakers are collected into a stack array of 32 */

TestSuite(core_wake, .init = io_setup, .fini = io_teardown, .timeout = 10);

Test(core_wake, readable_waiter_ignores_writable)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;

	wait_on(&r, URP_READABLE, &w);
	urp_io_set_readiness(io, URP_WRITABLE);
	urp_io_set_readiness(io, URP_WRITE_CLOSED | URP_ERROR);
	cr_assert_eq(calls(&c), 0, "READABLE waiter woken by WRITABLE");
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 1);
	urp_readiness_cancel(&r);
}

Test(core_wake, writable_waiter_woken_by_writable)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;

	wait_on(&r, URP_WRITABLE, &w);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 0, "WRITABLE waiter woken by READABLE");
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(calls(&c), 1);
	urp_readiness_cancel(&r);
}

Test(core_wake, waiter_woken_by_what_its_interest_sees)
{
	static const struct {
		unsigned interest, wakes, ignores;
	} rows[] = {
	    {URP_READABLE, URP_READ_CLOSED, URP_WRITABLE | URP_WRITE_CLOSED | URP_PRIORITY},
	    {URP_WRITABLE, URP_WRITE_CLOSED, URP_READABLE | URP_READ_CLOSED | URP_ERROR},
	    {URP_PRIORITY, URP_READ_CLOSED, URP_READABLE | URP_WRITABLE | URP_ERROR},
	    {URP_PRIORITY, URP_PRIORITY, URP_READABLE | URP_WRITE_CLOSED},
	    {URP_ERROR, URP_ERROR, URP_READY_ALL & ~URP_ERROR},
	    {URP_READABLE | URP_WRITABLE, URP_WRITABLE, URP_PRIORITY | URP_ERROR},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct counter c = {0};
		struct urp_waker w = counting(&c);
		struct urp_readiness r;

		io_teardown();
		io_setup();
		wait_on(&r, rows[i].interest, &w);
		urp_io_set_readiness(io, rows[i].ignores);
		cr_assert_eq(calls(&c), 0, "interest %#x woken by %#x", rows[i].interest,
			     rows[i].ignores);
		urp_io_set_readiness(io, rows[i].wakes);
		cr_assert_eq(calls(&c), 1, "interest %#x not woken by %#x", rows[i].interest,
			     rows[i].wakes);
		urp_readiness_cancel(&r);
	}
}

Test(core_wake, empty_set_wakes_nobody)
{
	struct counter c = {0}, reader = {0};
	struct urp_waker w = counting(&c), wr = counting(&reader);
	struct urp_readiness r;
	struct urp_stats before = detached_stats();

	wait_on(&r, URP_READABLE | URP_WRITABLE | URP_PRIORITY | URP_ERROR, &w);
	slot_on(URP_DIR_READ, &wr);
	urp_io_set_readiness(io, 0);
	cr_assert_eq(calls(&c), 0);
	cr_assert_eq(calls(&reader), 0);
	cr_assert_eq(detached_stats().wake_batches, before.wake_batches);
	urp_readiness_cancel(&r);
	urp_io_clear_wakers(io);
}

Test(core_wake, slot_last_poller_wins)
{
	struct counter first = {0}, second = {0};
	struct urp_waker w1 = counting(&first), w2 = counting(&second);

	slot_on(URP_DIR_READ, &w1);
	slot_on(URP_DIR_READ, &w2);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&first), 0, "replaced reader waker was called");
	cr_assert_eq(calls(&second), 1, "last reader waker not called");
}

Test(core_wake, slot_directions_independent)
{
	struct counter reader = {0}, writer = {0};
	struct urp_waker wr = counting(&reader), ww = counting(&writer);

	slot_on(URP_DIR_READ, &wr);
	slot_on(URP_DIR_WRITE, &ww);
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(calls(&reader), 0, "Set(WRITABLE) called the reader slot");
	cr_assert_eq(calls(&writer), 1);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&reader), 1);
	cr_assert_eq(calls(&writer), 1, "writer slot called twice");
}

/* A slot's waker is taken when called: a second Set finds the slot empty. */
Test(core_wake, slot_waker_called_once)
{
	struct counter reader = {0};
	struct urp_waker wr = counting(&reader);

	slot_on(URP_DIR_READ, &wr);
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_READ_CLOSED);
	cr_assert_eq(calls(&reader), 1);
}

Test(core_wake, slot_read_closed_wakes_reader)
{
	struct counter reader = {0}, writer = {0};
	struct urp_waker wr = counting(&reader), ww = counting(&writer);
	struct urp_event ev;

	slot_on(URP_DIR_READ, &wr);
	slot_on(URP_DIR_WRITE, &ww);
	urp_io_set_readiness(io, URP_READ_CLOSED);
	cr_assert_eq(calls(&reader), 1, "READ_CLOSED did not wake the reader slot");
	cr_assert_eq(calls(&writer), 0);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, NULL, &ev), 0);
	cr_assert_eq(ev.ready, URP_READ_CLOSED);
	cr_assert_eq(ev.tick, 1u);
	urp_io_clear_wakers(io);
}

Test(core_wake, slot_write_closed_wakes_writer)
{
	struct counter reader = {0}, writer = {0};
	struct urp_waker wr = counting(&reader), ww = counting(&writer);
	struct urp_event ev;

	slot_on(URP_DIR_READ, &wr);
	slot_on(URP_DIR_WRITE, &ww);
	urp_io_set_readiness(io, URP_WRITE_CLOSED);
	cr_assert_eq(calls(&writer), 1, "WRITE_CLOSED did not wake the writer slot");
	cr_assert_eq(calls(&reader), 0);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_WRITE, NULL, &ev), 0);
	cr_assert_eq(ev.ready, URP_WRITE_CLOSED);
	urp_io_clear_wakers(io);
}

/* Ready at once: the direction's bits (only) with the tick, and nothing is stored. */
Test(core_wake, slot_ready_at_once_stores_nothing)
{
	struct counter reader = {0};
	struct urp_waker wr = counting(&reader);
	struct urp_event ev;

	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE | URP_READ_CLOSED | URP_PRIORITY);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &wr, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE | URP_READ_CLOSED, "read slot returned %#x", ev.ready);
	cr_assert_eq(ev.tick, 1u);
	cr_assert_not(ev.shutdown);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_WRITE, &wr, &ev), 0);
	cr_assert_eq(ev.ready, URP_WRITABLE, "write slot returned %#x", ev.ready);

	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE);
	cr_assert_eq(calls(&reader), 0, "a waker given to a ready poll was stored");
}

Test(core_wake, slot_pending_then_ready)
{
	struct counter writer = {0};
	struct urp_waker ww = counting(&writer);
	struct urp_event ev;

	urp_io_set_readiness(io, URP_READABLE);
	slot_on(URP_DIR_WRITE, &ww);
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(calls(&writer), 1);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_WRITE, &ww, &ev), 0);
	cr_assert_eq(ev.ready, URP_WRITABLE);
	cr_assert_eq(ev.tick, 2u);
}

/* urpoll.h, struct urp_waker: the library keeps its own copy of the waker struct. */
Test(core_wake, slot_waker_is_copied)
{
	struct counter given = {0}, later = {0};
	struct urp_waker w = counting(&given);

	slot_on(URP_DIR_READ, &w);
	w.arg = &later;
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&given), 1);
	cr_assert_eq(calls(&later), 0);
}

Test(core_wake, clear_wakers_drops_both_slots)
{
	struct counter reader = {0}, writer = {0};
	struct urp_waker wr = counting(&reader), ww = counting(&writer);
	struct urp_stats before = detached_stats();

	slot_on(URP_DIR_READ, &wr);
	slot_on(URP_DIR_WRITE, &ww);
	urp_io_clear_wakers(io);
	urp_io_set_readiness(io, URP_READY_ALL);
	cr_assert_eq(calls(&reader), 0, "cleared reader waker was called");
	cr_assert_eq(calls(&writer), 0, "cleared writer waker was called");
	cr_assert_eq(detached_stats().wakes, before.wakes);
}

/* clear_wakers is about the slots only: list waiters stay. */
Test(core_wake, clear_wakers_keeps_futures)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;

	wait_on(&r, URP_READABLE, &w);
	urp_io_clear_wakers(io);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 1);
}

Test(core_wake, poll_ready_bad_args)
{
	struct urp_event ev;

	cr_assert_eq(urp_io_poll_ready(NULL, URP_DIR_READ, NULL, &ev), -EINVAL);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, NULL, NULL), -EINVAL);
	cr_assert_eq(urp_io_poll_ready(io, (enum urp_direction)7, NULL, &ev), -EINVAL);
}

/* n pending READABLE futures, one Set: every waker once, in ceil(n / 32) batches. */
static void check_batches(unsigned n, unsigned extra_slots)
{
	struct urp_readiness r[128];
	struct counter c[128] = {0};
	struct urp_waker w[128];
	struct urp_stats before, after;
	unsigned total = n + extra_slots, want_batches = (total + WAKE_ARRAY - 1) / WAKE_ARRAY;
	struct urp_event ev;

	cr_assert(n + 2 <= 128);
	for (unsigned i = 0; i < n + 2; i++)
		w[i] = counting(&c[i]);
	for (unsigned i = 0; i < n; i++)
		wait_on(&r[i], URP_READABLE, &w[i]);
	if (extra_slots > 0)
		slot_on(URP_DIR_READ, &w[n]);
	if (extra_slots > 1)
		slot_on(URP_DIR_WRITE, &w[n + 1]);

	before = detached_stats();
	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE);
	after = detached_stats();

	for (unsigned i = 0; i < total; i++)
		cr_assert_eq(calls(&c[i]), 1, "waker %u of %u called %d times", i, total,
			     calls(&c[i]));
	cr_assert_eq(after.wakes - before.wakes, total, "wakes delta %llu, want %u",
		     (unsigned long long)(after.wakes - before.wakes), total);
	cr_assert_eq(after.wake_batches - before.wake_batches, want_batches,
		     "%u wakers flushed in %llu batches, want %u", total,
		     (unsigned long long)(after.wake_batches - before.wake_batches), want_batches);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(urp_readiness_poll(&r[i], &w[i], &ev), 0, "future %u not done", i);
		cr_assert_eq(ev.ready, URP_READABLE);
		urp_readiness_cancel(&r[i]);
	}
}

Test(core_wake, wake_100_waiters_in_4_batches)
{
	check_batches(100, 0);
}

Test(core_wake, wake_32_waiters_in_1_batch)
{
	check_batches(32, 0);
}

Test(core_wake, wake_33_waiters_in_2_batches)
{
	check_batches(33, 0);
}

Test(core_wake, wake_64_waiters_in_2_batches)
{
	check_batches(64, 0);
}

Test(core_wake, wake_slots_share_batches)
{
	check_batches(31, 2);
}

Test(core_wake, set_without_waiter_adds_no_batch)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_stats before = detached_stats(), after;

	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_READY_ALL);
	after = detached_stats();
	cr_assert_eq(after.wake_batches, before.wake_batches, "a Set with no waiter made a batch");
	cr_assert_eq(after.wakes, before.wakes);

	/* a waiter that does not match is no waiter either */
	io_teardown();
	io_setup();
	wait_on(&r, URP_WRITABLE, &w);
	before = detached_stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = detached_stats();
	cr_assert_eq(after.wake_batches, before.wake_batches, "a Set waking nobody made a batch");
	cr_assert_eq(calls(&c), 0);
	urp_readiness_cancel(&r);
}

Test(core_wake, one_waiter_one_batch)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_stats before, after;

	wait_on(&r, URP_READABLE, &w);
	before = detached_stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = detached_stats();
	cr_assert_eq(after.wake_batches - before.wake_batches, 1);
	cr_assert_eq(after.wakes - before.wakes, 1);
	cr_assert_eq(calls(&c), 1);
}
