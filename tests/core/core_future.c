// SPDX-License-Identifier: MIT
/*
 * core_future: the readiness future, Init -> Waiting -> Done, and its cancel (docs/design.md,
 * "Readiness future and slots").
 */
#include "core_util.h"

static unsigned word_tick(void)
{
	return urp_word_tick(urp_io_word(io));
}

static uint64_t wakes(void)
{
	return detached_stats().wakes;
}

TestSuite(core_future, .init = io_setup, .fini = io_teardown, .timeout = 10);

Test(core_future, init_ready_at_once)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev = {0};

	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0, "ready entry reported pending");
	cr_assert_eq(ev.ready, URP_READABLE, "ready %#x: not masked by interest", ev.ready);
	cr_assert_eq(ev.tick, 1u);
	cr_assert_not(ev.shutdown);
	/* ready at once: the waker was not stored */
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 0);
	urp_readiness_cancel(&r);
}

Test(core_future, init_does_not_touch_entry)
{
	struct urp_readiness r;
	uint64_t before = wakes();

	urp_io_set_readiness(io, URP_WRITABLE);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_io_word(io), (1u << 16) | URP_WRITABLE);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(wakes(), before, "a future never polled was woken");
	urp_readiness_cancel(&r);
}

Test(core_future, pending_then_ready)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN, "woken by nothing");
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 1);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE);
	cr_assert_eq(ev.tick, 1u);
	cr_assert_not(ev.shutdown);
	urp_readiness_cancel(&r);
}

Test(core_future, woken_by_read_closed)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_READ_CLOSED);
	cr_assert_eq(calls(&c), 1);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.ready, URP_READ_CLOSED);
	urp_readiness_cancel(&r);
}

Test(core_future, combined_interest_woken_by_either)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE | URP_WRITABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(calls(&c), 1);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.ready, URP_WRITABLE);
	urp_readiness_cancel(&r);
}

Test(core_future, waker_called_exactly_once)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_READABLE | URP_READ_CLOSED);
	cr_assert_eq(calls(&c), 1, "waker called %d times before the poll", calls(&c));
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_shutdown(io);
	cr_assert_eq(calls(&c), 1, "waker called %d times after the poll", calls(&c));
	urp_readiness_cancel(&r);
}

Test(core_future, repoll_replaces_waker)
{
	struct counter first = {0}, second = {0};
	struct urp_waker w1 = counting(&first), w2 = counting(&second);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w1, &ev), -EAGAIN);
	cr_assert_eq(urp_readiness_poll(&r, &w2, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&first), 0, "replaced waker was called");
	cr_assert_eq(calls(&second), 1, "new waker not called");
	cr_assert_eq(urp_readiness_poll(&r, &w2, &ev), 0);
	urp_readiness_cancel(&r);
}

/* urpoll.h, struct urp_waker: the library stores a copy; the caller's struct may change right after the poll. */
Test(core_future, waker_is_copied)
{
	struct counter given = {0}, later = {0};
	struct urp_waker w = counting(&given);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	w.arg = &later;
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&given), 1);
	cr_assert_eq(calls(&later), 0);
	urp_readiness_cancel(&r);
}

Test(core_future, cancel_while_waiting)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;
	uint64_t before;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_readiness_cancel(&r);
	before = wakes();
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_shutdown(io);
	cr_assert_eq(calls(&c), 0, "cancelled future's waker was called");
	cr_assert_eq(wakes(), before);
}

/* The node is unlinked from the middle of the list: its neighbours must still be woken. */
Test(core_future, cancel_middle_waiter)
{
	struct counter c[3] = {0};
	struct urp_waker w[3] = {counting(&c[0]), counting(&c[1]), counting(&c[2])};
	struct urp_readiness r[3];
	struct urp_event ev;

	for (int i = 0; i < 3; i++) {
		urp_readiness_init(&r[i], io, URP_READABLE);
		cr_assert_eq(urp_readiness_poll(&r[i], &w[i], &ev), -EAGAIN);
	}
	urp_readiness_cancel(&r[1]);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c[0]), 1);
	cr_assert_eq(calls(&c[1]), 0);
	cr_assert_eq(calls(&c[2]), 1);
	urp_readiness_cancel(&r[0]);
	urp_readiness_cancel(&r[2]);
}

Test(core_future, cancel_after_wake_before_poll)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 1);
	urp_readiness_cancel(&r);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 1);
	/* the entry is still usable */
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE);
	urp_readiness_cancel(&r);
}

Test(core_future, cancel_never_polled)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	urp_readiness_cancel(&r);
	urp_io_set_readiness(io, URP_READABLE);
	urp_readiness_init(&r, io, URP_WRITABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(calls(&c), 1, "future reused after cancel was not woken");
	urp_readiness_cancel(&r);
}

Test(core_future, cancel_twice)
{
	struct counter c = {0}, other = {0};
	struct urp_waker w = counting(&c), wo = counting(&other);
	struct urp_readiness r, ro;
	struct urp_event ev;

	urp_readiness_init(&ro, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&ro, &wo, &ev), -EAGAIN);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_readiness_cancel(&r);
	urp_readiness_cancel(&r);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 0);
	cr_assert_eq(calls(&other), 1, "cancelling twice damaged the waiter list");
	urp_readiness_cancel(&ro);
	urp_readiness_cancel(&ro);
}

Test(core_future, cancel_after_done)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_io_set_readiness(io, URP_READABLE);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	urp_readiness_cancel(&r);
	urp_readiness_cancel(&r);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 0);
}

/* Woken, then someone else clears before the poll: Done with nothing ready; callers loop. */
Test(core_future, done_may_return_empty)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev, other;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 1);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &other), 0);
	cr_assert_eq(urp_io_clear_readiness(io, &other), 0);

	ev = (struct urp_event){.ready = 0xdead, .tick = 0xdead, .shutdown = true};
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0, "Done must not go back to pending");
	cr_assert_eq(ev.ready, 0u, "Done returned stale readiness %#x", ev.ready);
	cr_assert_eq(ev.tick, 1u);
	cr_assert_not(ev.shutdown);
	urp_readiness_cancel(&r);

	/* the caller's loop: a fresh future waits again */
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(calls(&c), 2);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE);
	urp_readiness_cancel(&r);
}

Test(core_future, tick_equals_word_tick)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	for (int i = 0; i < 5; i++)
		urp_io_set_readiness(io, 0);
	urp_io_set_readiness(io, URP_READABLE);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.tick, 6u);
	cr_assert_eq(ev.tick, word_tick());
	urp_readiness_cancel(&r);

	/* Waiting -> Done: the tick at the poll, not at the wake */
	urp_readiness_init(&r, io, URP_WRITABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EAGAIN);
	urp_io_set_readiness(io, URP_WRITABLE);
	urp_io_set_readiness(io, URP_PRIORITY);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(ev.ready, URP_WRITABLE);
	cr_assert_eq(ev.tick, 8u);
	cr_assert_eq(ev.tick, word_tick());
	urp_readiness_cancel(&r);
}

/* The event a future hands out is good for a clear (the try_io pattern). */
Test(core_future, event_clears)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), (1u << 16) | URP_WRITABLE);
	urp_readiness_cancel(&r);
}

Test(core_future, poll_bad_args)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(NULL, &w, &ev), -EINVAL);
	cr_assert_eq(urp_readiness_poll(&r, &w, NULL), -EINVAL);
	urp_readiness_cancel(&r);
	urp_readiness_init(&r, NULL, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &w, &ev), -EINVAL);
}
