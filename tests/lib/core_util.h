/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the core_* tests: the readiness word's fields, the suite's detached entry
 * (io, made and freed by the suite's .init and .fini), wakers that count their calls, the
 * detached entries' counters, and pending waiters (a future, a slot) on io.
 */
#ifndef URP_TESTS_CORE_UTIL_H
#define URP_TESTS_CORE_UTIL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#include "test_util.h"

/* The word's layout (docs/design.md, "The readiness word"), as the tests spell it. */
#define WORD_SHUTDOWN	(1u << 31)
#define WORD_TICK_SHIFT 16

/* ---- the suite's entry ---- */

static struct urp_io *io;

static inline void io_setup(void)
{
	cr_assert_eq(urp_io_new(&io), 0, "urp_io_new failed");
	cr_assert_not_null(io);
}

/* Tests that free the entry themselves leave io NULL. */
static inline void io_teardown(void)
{
	if (io)
		urp_io_free(io);
	io = NULL;
}

/* The counters of the detached entries (urp_io_new()). */
static inline struct urp_stats detached_stats(void)
{
	struct urp_stats st;

	cr_assert_eq(urp_detached_stats(&st), 0);
	return st;
}

/* ---- wakers that count ---- */

struct counter {
	atomic_int calls;
};

static inline struct urp_waker counting(struct counter *c)
{
	return (struct urp_waker){.wake = count_wake, .arg = &c->calls};
}

static inline int calls(struct counter *c)
{
	return atomic_load(&c->calls);
}

/* ---- pending waiters on io ---- */

/* Poll a fresh future on io and require it to be pending. */
static inline void wait_on(struct urp_readiness *r, unsigned interest, const struct urp_waker *w)
{
	struct urp_event ev;

	urp_readiness_init(r, io, interest);
	cr_assert_eq(urp_readiness_poll(r, w, &ev), -EAGAIN, "future (interest %#x) not pending",
		     interest);
}

/* Store w in io's slot dir and require it to be pending. */
static inline void slot_on(enum urp_direction dir, const struct urp_waker *w)
{
	struct urp_event ev;

	cr_assert_eq(urp_io_poll_ready(io, dir, w, &ev), -EAGAIN, "slot %d not pending", dir);
}

#endif /* URP_TESTS_CORE_UTIL_H */
