// SPDX-License-Identifier: MIT
/*
 * core_wake: who a Set wakes, in how many batches, and wakers that call back into the entry
 * (docs/design.md, "The readiness
 * word": Wake; "Readiness future and slots"; invariants 5 and 6).
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#define WAKE_ARRAY 32 /* docs/design.md: wakers are collected into a stack array of 32 */

struct counter {
	atomic_int calls;
};

static void count_wake(void *arg)
{
	struct counter *c = arg;

	atomic_fetch_add(&c->calls, 1);
}

static struct urp_waker counting(struct counter *c)
{
	return (struct urp_waker){.wake = count_wake, .arg = c};
}

static int calls(struct counter *c)
{
	return atomic_load(&c->calls);
}

static struct urp_stats stats(void)
{
	struct urp_stats st;

	cr_assert_eq(urp_detached_stats(&st), 0);
	return st;
}

static struct urp_io *io;

static void io_setup(void)
{
	cr_assert_eq(urp_io_new(&io), 0, "urp_io_new failed");
}

static void io_teardown(void)
{
	/* tests that free the entry themselves leave io NULL */
	if (io)
		urp_io_free(io);
	io = NULL;
}

TestSuite(core_wake, .init = io_setup, .fini = io_teardown, .timeout = 10);

/* Poll a fresh future on io and require it to be pending. */
static void wait_on(struct urp_readiness *r, unsigned interest, const struct urp_waker *w)
{
	struct urp_event ev;

	urp_readiness_init(r, io, interest);
	cr_assert_eq(urp_readiness_poll(r, w, &ev), -EAGAIN, "future (interest %#x) not pending",
		     interest);
}

static void slot_on(enum urp_direction dir, const struct urp_waker *w)
{
	struct urp_event ev;

	cr_assert_eq(urp_io_poll_ready(io, dir, w, &ev), -EAGAIN, "slot %d not pending", dir);
}

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
	struct urp_stats before = stats();

	wait_on(&r, URP_READABLE | URP_WRITABLE | URP_PRIORITY | URP_ERROR, &w);
	slot_on(URP_DIR_READ, &wr);
	urp_io_set_readiness(io, 0);
	cr_assert_eq(calls(&c), 0);
	cr_assert_eq(calls(&reader), 0);
	cr_assert_eq(stats().wake_batches, before.wake_batches);
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
	struct urp_stats before = stats();

	slot_on(URP_DIR_READ, &wr);
	slot_on(URP_DIR_WRITE, &ww);
	urp_io_clear_wakers(io);
	urp_io_set_readiness(io, URP_READY_ALL);
	cr_assert_eq(calls(&reader), 0, "cleared reader waker was called");
	cr_assert_eq(calls(&writer), 0, "cleared writer waker was called");
	cr_assert_eq(stats().wakes, before.wakes);
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

	before = stats();
	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE);
	after = stats();

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
	struct urp_stats before = stats(), after;

	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_READY_ALL);
	after = stats();
	cr_assert_eq(after.wake_batches, before.wake_batches, "a Set with no waiter made a batch");
	cr_assert_eq(after.wakes, before.wakes);

	/* a waiter that does not match is no waiter either */
	io_teardown();
	io_setup();
	wait_on(&r, URP_WRITABLE, &w);
	before = stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = stats();
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
	before = stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = stats();
	cr_assert_eq(after.wake_batches - before.wake_batches, 1);
	cr_assert_eq(after.wakes - before.wakes, 1);
	cr_assert_eq(calls(&c), 1);
}

/* ---- wakers that call back into the entry (the lock must not be held around a waker) ---- */

struct reentrant {
	struct urp_readiness fut;
	struct urp_readiness *other; /* another future to cancel, or NULL */
	atomic_int calls;
	int slot_rc, fut_rc;
	struct urp_event slot_ev, fut_ev;
};

static void wake_cancel_self(void *arg)
{
	struct reentrant *re = arg;

	atomic_fetch_add(&re->calls, 1);
	urp_readiness_cancel(&re->fut);
	if (re->other)
		urp_readiness_cancel(re->other);
}

Test(core_wake, waker_cancels_own_future)
{
	static struct reentrant re[100];
	struct urp_stats before, after;

	for (int i = 0; i < 100; i++) {
		struct urp_waker w = {wake_cancel_self, &re[i]};

		wait_on(&re[i].fut, URP_READABLE, &w);
	}
	before = stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = stats();
	for (int i = 0; i < 100; i++)
		cr_assert_eq(atomic_load(&re[i].calls), 1, "waiter %d called %d times", i,
			     atomic_load(&re[i].calls));
	cr_assert_eq(after.wakes - before.wakes, 100);
	for (int i = 0; i < 100; i++)
		urp_readiness_cancel(&re[i].fut); /* cancel after cancel: harmless */
}

/* Each waker also cancels its partner: a cancelled waiter must not be woken afterwards. */
Test(core_wake, waker_cancels_other_future)
{
	static struct reentrant re[100];
	struct urp_stats before, after;
	int sum = 0;

	for (int i = 0; i < 100; i++) {
		struct urp_waker w = {wake_cancel_self, &re[i]};

		re[i].other = &re[(i + 50) % 100].fut;
		wait_on(&re[i].fut, URP_READABLE, &w);
	}
	before = stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = stats();
	for (int i = 0; i < 100; i++) {
		int n = atomic_load(&re[i].calls);

		cr_assert(n <= 1, "waiter %d called %d times", i, n);
		sum += n;
	}
	for (int i = 0; i < 50; i++)
		cr_assert(atomic_load(&re[i].calls) + atomic_load(&re[i + 50].calls) >= 1,
			  "neither waiter %d nor its partner %d was woken", i, i + 50);
	cr_assert_eq(after.wakes - before.wakes, (uint64_t)sum, "wakes delta %llu, wakers run %d",
		     (unsigned long long)(after.wakes - before.wakes), sum);
	urp_io_set_readiness(io, URP_READABLE);
	for (int i = 0; i < 100; i++)
		cr_assert(atomic_load(&re[i].calls) <= 1, "waiter %d woken after cancel", i);
}

static struct urp_io *reentry_io;

static void wake_poll_same_entry(void *arg)
{
	struct reentrant *re = arg;
	struct urp_waker again = {wake_poll_same_entry, re};

	atomic_fetch_add(&re->calls, 1);
	re->slot_rc = urp_io_poll_ready(reentry_io, URP_DIR_READ, NULL, &re->slot_ev);
	re->fut_rc = urp_readiness_poll(&re->fut, &again, &re->fut_ev);
}

Test(core_wake, waker_polls_same_entry)
{
	static struct reentrant re[100];
	struct counter writer = {0};
	struct urp_waker ww = counting(&writer);
	struct urp_readiness wfut;

	reentry_io = io;
	for (int i = 0; i < 100; i++) {
		struct urp_waker w = {wake_poll_same_entry, &re[i]};

		re[i].slot_rc = re[i].fut_rc = 1;
		wait_on(&re[i].fut, URP_READABLE, &w);
	}
	wait_on(&wfut, URP_WRITABLE, &ww); /* stays linked while the batches run */
	urp_io_set_readiness(io, URP_READABLE);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(atomic_load(&re[i].calls), 1, "waiter %d called %d times", i,
			     atomic_load(&re[i].calls));
		cr_assert_eq(re[i].slot_rc, 0, "poll_ready from waker %d returned %d", i,
			     re[i].slot_rc);
		cr_assert_eq(re[i].slot_ev.ready, URP_READABLE);
		cr_assert_eq(re[i].fut_rc, 0, "own future polled from waker %d returned %d", i,
			     re[i].fut_rc);
		cr_assert_eq(re[i].fut_ev.ready, URP_READABLE);
		cr_assert_eq(re[i].fut_ev.tick, 1u);
	}
	cr_assert_eq(calls(&writer), 0);
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(calls(&writer), 1, "the WRITABLE waiter was lost during the batches");
}

/* A waker that registers new waiters (slot and future) on the entry it is being woken by. */
struct registrar {
	atomic_int calls;
	struct counter slot_counter, fut_counter;
	struct urp_readiness fut;
	int slot_rc, fut_rc;
};

static void wake_register(void *arg)
{
	struct registrar *rg = arg;
	struct urp_waker ws = counting(&rg->slot_counter), wf = counting(&rg->fut_counter);
	struct urp_event ev;

	if (atomic_fetch_add(&rg->calls, 1) != 0)
		return;
	rg->slot_rc = urp_io_poll_ready(reentry_io, URP_DIR_WRITE, &ws, &ev);
	urp_readiness_init(&rg->fut, reentry_io, URP_ERROR);
	rg->fut_rc = urp_readiness_poll(&rg->fut, &wf, &ev);
}

Test(core_wake, waker_registers_on_same_entry)
{
	struct registrar rg = {0};
	struct urp_waker w = {wake_register, &rg};
	struct urp_readiness r[40];

	reentry_io = io;
	for (int i = 0; i < 40; i++)
		wait_on(&r[i], URP_READABLE, &w);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(atomic_load(&rg.calls), 40);
	cr_assert_eq(rg.slot_rc, -EAGAIN);
	cr_assert_eq(rg.fut_rc, -EAGAIN);
	cr_assert_eq(calls(&rg.slot_counter), 0);
	cr_assert_eq(calls(&rg.fut_counter), 0);
	urp_io_set_readiness(io, URP_WRITABLE | URP_ERROR);
	cr_assert_eq(calls(&rg.slot_counter), 1, "writer slot set from a waker was lost");
	cr_assert_eq(calls(&rg.fut_counter), 1, "future registered from a waker was lost");
}

/* A waker that runs a Set on the same entry (a nested wake). */
struct nested_set {
	atomic_int calls;
};

static void wake_set_writable(void *arg)
{
	struct nested_set *ns = arg;

	if (atomic_fetch_add(&ns->calls, 1) == 0)
		urp_io_set_readiness(reentry_io, URP_WRITABLE);
}

Test(core_wake, waker_sets_same_entry)
{
	struct nested_set ns = {0};
	struct urp_waker w = {wake_set_writable, &ns};
	struct counter wc[40] = {0};
	struct urp_waker ww[40];
	struct urp_readiness rr[40], rw[40];

	reentry_io = io;
	for (int i = 0; i < 40; i++) {
		ww[i] = counting(&wc[i]);
		wait_on(&rr[i], URP_READABLE, &w);
		wait_on(&rw[i], URP_WRITABLE, &ww[i]);
	}
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(atomic_load(&ns.calls), 40);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(calls(&wc[i]), 1, "WRITABLE waiter %d called %d times", i,
			     calls(&wc[i]));
	cr_assert_eq(urp_io_word(io), (2u << 16) | URP_READABLE | URP_WRITABLE);
}

/* ---- a waker that frees the (detached) entry while the wake still has batches to go ---- */

struct free_ctx {
	struct urp_io *io;
	atomic_int freed;
	atomic_int calls[100];
};

struct free_waiter {
	struct free_ctx *ctx;
	int idx;
	struct urp_readiness fut;
};

static void wake_free_entry(void *arg)
{
	struct free_waiter *fw = arg;

	atomic_fetch_add(&fw->ctx->calls[fw->idx], 1);
	if (atomic_exchange(&fw->ctx->freed, 1) == 0)
		urp_io_free(fw->ctx->io);
}

static void check_free_from_waker(int n, bool by_shutdown)
{
	static struct free_ctx ctx;
	static struct free_waiter fw[100];
	uint64_t live_before;

	live_before = stats().live;
	ctx.io = io;
	for (int i = 0; i < n; i++) {
		struct urp_waker w = {wake_free_entry, &fw[i]};

		fw[i].ctx = &ctx;
		fw[i].idx = i;
		wait_on(&fw[i].fut, URP_READABLE, &w);
	}
	io = NULL; /* the waker owns it now */
	if (by_shutdown)
		urp_io_shutdown(ctx.io);
	else
		urp_io_set_readiness(ctx.io, URP_READABLE);
	/* the futures' entry is gone: they must not be touched any more */
	cr_assert_eq(atomic_load(&ctx.freed), 1, "no waker ran");
	for (int i = 0; i < n; i++)
		cr_assert_eq(atomic_load(&ctx.calls[i]), 1, "waiter %d called %d times", i,
			     atomic_load(&ctx.calls[i]));
	cr_assert_eq(stats().live, live_before - 1, "entry freed from a waker was not released");
}

Test(core_wake, waker_frees_entry_mid_wake)
{
	check_free_from_waker(100, false);
}

Test(core_wake, waker_frees_entry_single_waiter)
{
	check_free_from_waker(1, false);
}

Test(core_wake, waker_frees_entry_during_shutdown)
{
	check_free_from_waker(100, true);
}

struct slot_free {
	struct urp_io *io;
	atomic_int calls;
};

static void wake_slot_free(void *arg)
{
	struct slot_free *sf = arg;

	atomic_fetch_add(&sf->calls, 1);
	urp_io_free(sf->io);
}

Test(core_wake, slot_waker_frees_entry)
{
	struct slot_free sf = {.io = io};
	struct urp_waker w = {wake_slot_free, &sf};
	struct counter writer = {0};
	struct urp_waker ww = counting(&writer);
	uint64_t live_before = stats().live;

	slot_on(URP_DIR_READ, &w);
	slot_on(URP_DIR_WRITE, &ww);
	io = NULL;
	urp_io_set_readiness(sf.io, URP_READABLE);
	cr_assert_eq(atomic_load(&sf.calls), 1);
	/* free shuts down and wakes all: the writer slot goes too */
	cr_assert_eq(calls(&writer), 1);
	cr_assert_eq(stats().live, live_before - 1);
}

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

Test(core_wake, cancel_waits_for_taken_waker)
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

Test(core_wake, done_waits_for_taken_waker)
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

Test(core_wake, clear_wakers_waits_for_taken_waker)
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

Test(core_wake, slot_replace_waits_for_taken_waker)
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
