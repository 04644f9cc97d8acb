// SPDX-License-Identifier: MIT
/*
 * core_shutdown: the sticky shutdown bit (docs/design.md, "The readiness word": Shutdown, and what it ends) and
 * urp_io_free()'s shutdown of a detached entry.
 */
#include "core_util.h"

TestSuite(core_shutdown, .init = io_setup, .fini = io_teardown, .timeout = 10);

#define NFUT 5

static const unsigned fut_interest[NFUT] = {
    URP_READABLE, URP_WRITABLE, URP_PRIORITY, URP_ERROR, URP_INTEREST_ALL,
};

struct waiters {
	struct counter fut[NFUT], reader, writer;
	struct urp_waker wf[NFUT], wr, ww;
	struct urp_readiness r[NFUT];
};

/* A pending future of every interest plus both slots. */
static void park_everyone(struct waiters *ws)
{
	struct urp_event ev;

	ws->wr = counting(&ws->reader);
	ws->ww = counting(&ws->writer);
	for (int i = 0; i < NFUT; i++) {
		ws->wf[i] = counting(&ws->fut[i]);
		urp_readiness_init(&ws->r[i], io, fut_interest[i]);
		cr_assert_eq(urp_readiness_poll(&ws->r[i], &ws->wf[i], &ev), -EAGAIN,
			     "future %d not pending", i);
	}
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &ws->wr, &ev), -EAGAIN);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_WRITE, &ws->ww, &ev), -EAGAIN);
}

static void check_everyone_woken_once(struct waiters *ws)
{
	for (int i = 0; i < NFUT; i++)
		cr_assert_eq(calls(&ws->fut[i]), 1, "future with interest %#x woken %d times",
			     fut_interest[i], calls(&ws->fut[i]));
	cr_assert_eq(calls(&ws->reader), 1, "reader slot woken %d times", calls(&ws->reader));
	cr_assert_eq(calls(&ws->writer), 1, "writer slot woken %d times", calls(&ws->writer));
}

Test(core_shutdown, wakes_every_waiter)
{
	struct waiters ws = {0};
	struct urp_stats before, after;
	struct urp_event ev;

	park_everyone(&ws);
	before = detached_stats();
	urp_io_shutdown(io);
	after = detached_stats();
	check_everyone_woken_once(&ws);
	cr_assert_eq(after.wakes - before.wakes, NFUT + 2);
	cr_assert_eq(after.wake_batches - before.wake_batches, 1);

	/* the woken futures complete with the shutdown flag */
	for (int i = 0; i < NFUT; i++) {
		cr_assert_eq(urp_readiness_poll(&ws.r[i], &ws.wf[i], &ev), 0);
		cr_assert(ev.shutdown, "future %d done without shutdown", i);
		cr_assert_eq(ev.ready, 0u);
		urp_readiness_cancel(&ws.r[i]);
	}
}

Test(core_shutdown, later_polls_report_shutdown)
{
	struct counter c = {0};
	struct urp_waker w = counting(&c);
	struct urp_readiness r;
	struct urp_event ev;

	urp_io_set_readiness(io, URP_WRITABLE);
	urp_io_shutdown(io);

	ev = (struct urp_event){0};
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &w, &ev), 0);
	cr_assert(ev.shutdown);
	cr_assert_eq(ev.ready, 0u);
	cr_assert_eq(ev.tick, 1u);

	ev = (struct urp_event){0};
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_WRITE, &w, &ev), 0);
	cr_assert(ev.shutdown);
	cr_assert_eq(ev.ready, URP_WRITABLE);

	for (unsigned i = 0; i < NFUT; i++) {
		ev = (struct urp_event){0};
		urp_readiness_init(&r, io, fut_interest[i]);
		cr_assert_eq(urp_readiness_poll(&r, &w, &ev), 0,
			     "future %#x pending after shutdown", fut_interest[i]);
		cr_assert(ev.shutdown);
		urp_readiness_cancel(&r);
	}

	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert(ev.shutdown);

	/* none of those polls stored a waker */
	urp_io_set_readiness(io, URP_READY_ALL);
	cr_assert_eq(calls(&c), 0);
}

Test(core_shutdown, second_shutdown_harmless)
{
	struct waiters ws = {0};
	struct urp_stats before, after;
	uint32_t word;

	park_everyone(&ws);
	urp_io_shutdown(io);
	word = urp_io_word(io);
	before = detached_stats();
	urp_io_shutdown(io);
	after = detached_stats();
	cr_assert_eq(urp_io_word(io), word, "second shutdown changed the word %#x -> %#x", word,
		     urp_io_word(io));
	cr_assert_eq(after.wakes, before.wakes);
	cr_assert_eq(after.wake_batches, before.wake_batches);
	check_everyone_woken_once(&ws);
	for (int i = 0; i < NFUT; i++)
		urp_readiness_cancel(&ws.r[i]);
}

Test(core_shutdown, clear_after_shutdown_keeps_bit31)
{
	struct urp_event ev;

	urp_io_set_readiness(io, URP_READABLE | URP_PRIORITY);
	urp_io_shutdown(io);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE | URP_PRIORITY, &ev), 0);
	cr_assert(ev.shutdown);
	cr_assert_eq(ev.tick, 1u);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0, "tick-matching clear refused");
	cr_assert_eq(urp_io_word(io), WORD_SHUTDOWN | (1u << WORD_TICK_SHIFT),
		     "word after clear is %#x", urp_io_word(io));
}

Test(core_shutdown, set_after_shutdown_keeps_bit31)
{
	urp_io_shutdown(io);
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(urp_io_word(io), WORD_SHUTDOWN | (1u << WORD_TICK_SHIFT) | URP_WRITABLE,
		     "word is %#x", urp_io_word(io));
	urp_io_set_readiness(io, 0);
	cr_assert_eq(urp_io_word(io), WORD_SHUTDOWN | (2u << WORD_TICK_SHIFT) | URP_WRITABLE,
		     "word is %#x", urp_io_word(io));
}

static ssize_t count_op(void *arg)
{
	atomic_int *op_calls = arg;

	atomic_fetch_add(op_calls, 1);
	return 1;
}

Test(core_shutdown, try_io_refused_without_op)
{
	atomic_int op_calls = 0;

	urp_io_shutdown(io);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, count_op, &op_calls), -ESHUTDOWN);
	/* ready bits do not change that */
	urp_io_set_readiness(io, URP_READY_ALL);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, count_op, &op_calls), -ESHUTDOWN);
	cr_assert_eq(urp_io_try_io(io, URP_INTEREST_ALL, count_op, &op_calls), -ESHUTDOWN);
	cr_assert_eq(atomic_load(&op_calls), 0, "op called %d times on a shut-down entry",
		     atomic_load(&op_calls));
}

Test(core_shutdown, free_wakes_every_waiter)
{
	struct waiters ws = {0};
	uint64_t live = detached_stats().live;

	park_everyone(&ws);
	urp_io_free(io);
	io = NULL;
	/* the futures' entry is gone: only the counters may be looked at */
	check_everyone_woken_once(&ws);
	cr_assert_eq(detached_stats().live, live - 1);
}
