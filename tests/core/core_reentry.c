// SPDX-License-Identifier: MIT
/*
 * core_reentry: wakers that call back into the entry that wakes them: cancel their own future or
 * another, poll it, register new waiters on it, run a Set on it, free it (docs/design.md, "The
 * readiness word": Wake; invariant 6). The lock must not be held around a waker, and the entry's
 * memory outlives every wake running on it.
 */
#include <stdbool.h>

#include "core_util.h"

TestSuite(core_reentry, .init = io_setup, .fini = io_teardown, .timeout = 10);

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

Test(core_reentry, waker_cancels_own_future)
{
	static struct reentrant re[100];
	struct urp_stats before, after;

	for (int i = 0; i < 100; i++) {
		struct urp_waker w = {wake_cancel_self, &re[i]};

		wait_on(&re[i].fut, URP_READABLE, &w);
	}
	before = detached_stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = detached_stats();
	for (int i = 0; i < 100; i++)
		cr_assert_eq(atomic_load(&re[i].calls), 1, "waiter %d called %d times", i,
			     atomic_load(&re[i].calls));
	cr_assert_eq(after.wakes - before.wakes, 100);
	for (int i = 0; i < 100; i++)
		urp_readiness_cancel(&re[i].fut); /* cancel after cancel: harmless */
}

/* Each waker also cancels its partner: a cancelled waiter must not be woken afterwards. */
Test(core_reentry, waker_cancels_other_future)
{
	static struct reentrant re[100];
	struct urp_stats before, after;
	int sum = 0;

	for (int i = 0; i < 100; i++) {
		struct urp_waker w = {wake_cancel_self, &re[i]};

		re[i].other = &re[(i + 50) % 100].fut;
		wait_on(&re[i].fut, URP_READABLE, &w);
	}
	before = detached_stats();
	urp_io_set_readiness(io, URP_READABLE);
	after = detached_stats();
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

Test(core_reentry, waker_polls_same_entry)
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

Test(core_reentry, waker_registers_on_same_entry)
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

Test(core_reentry, waker_sets_same_entry)
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

	live_before = detached_stats().live;
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
	cr_assert_eq(detached_stats().live, live_before - 1,
		     "entry freed from a waker was not released");
}

Test(core_reentry, waker_frees_entry_mid_wake)
{
	check_free_from_waker(100, false);
}

Test(core_reentry, waker_frees_entry_single_waiter)
{
	check_free_from_waker(1, false);
}

Test(core_reentry, waker_frees_entry_during_shutdown)
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

Test(core_reentry, slot_waker_frees_entry)
{
	struct slot_free sf = {.io = io};
	struct urp_waker w = {wake_slot_free, &sf};
	struct counter writer = {0};
	struct urp_waker ww = counting(&writer);
	uint64_t live_before = detached_stats().live;

	slot_on(URP_DIR_READ, &w);
	slot_on(URP_DIR_WRITE, &ww);
	io = NULL;
	urp_io_set_readiness(sf.io, URP_READABLE);
	cr_assert_eq(atomic_load(&sf.calls), 1);
	/* free shuts down and wakes all: the writer slot goes too */
	cr_assert_eq(calls(&writer), 1);
	cr_assert_eq(detached_stats().live, live_before - 1);
}
