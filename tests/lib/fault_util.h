/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the suites of the injectable ring (uring_fault, cqe_fault), on top of
 * uring_util.h and fault.h: the suite's .fini (no ring left open), an entry's token, a
 * registered socketpair and the checks that it still delivers or that its poll failed.
 */
#ifndef URP_TESTS_FAULT_UTIL_H
#define URP_TESTS_FAULT_UTIL_H

#include <liburing.h>
#include <stdlib.h>

#include "fault.h"
#include "uring_util.h"

static inline void fault_teardown(void)
{
	drv_teardown();
	cr_assert_eq(urp__fault_rings_open(), 0, "a ring was set up and never exited");
	urp__fault_reset();
}

static inline uint64_t token(struct urp_io *io)
{
	return (uint64_t)(uintptr_t)io;
}

/* A socketpair whose sv[0] is registered on drv for reading, its poll armed. */
struct conn {
	int sv[2];
	struct urp_io *io;
};

static inline void conn_open(struct conn *c)
{
	unix_pair(c->sv);
	c->io = reg_or_fail(drv, c->sv[0], URP_READABLE);
	settle(drv);
}

static inline void conn_close(struct conn *c)
{
	cr_assert_eq(urp_deregister_close(c->io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0, "the entry was never freed");
	cr_assert_eq(drain_fd(c->sv[1]), 0);
	close(c->sv[1]);
}

/* The entry is alive and its poll armed: a byte written now shows as READABLE. */
static inline void assert_delivers(struct conn *c)
{
	drain_try_io(c->io, c->sv[0]);
	write_all(c->sv[1], "x", 1);
	turn_until_ready(drv, c->io, URP_READABLE);
	assert_ready(c->io, URP_READABLE, URP_ERROR);
	cr_assert_not(urp_word_shutdown(urp_io_word(c->io)));
	cr_assert_eq(drain_try_io(c->io, c->sv[0]), 1);
}

/* Free drv, which counted expect unknown tokens (drv_teardown() wants none). */
static inline void free_driver_expecting_unknown(uint64_t expect)
{
	struct urp_stats st = driver_stats(drv);

	cr_assert_eq(st.unknown_tokens, expect, "unknown_tokens %llu, injected %llu",
		     (unsigned long long)st.unknown_tokens, (unsigned long long)expect);
	urp_driver_free(drv);
	drv = NULL;
}

/* No SQE after four submits: the poll cannot be armed, so the entry reports ERROR and is shut
 * down (never left looking armed while nothing watches it). */
static inline void assert_failed_entry(struct urp_io *io)
{
	char buf[8];
	struct rw_op op = {.buf = buf, .len = sizeof(buf)};

	assert_ready(io, URP_ERROR, 0);
	cr_assert(urp_word_shutdown(urp_io_word(io)));
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, op_read, &op), -ESHUTDOWN);
	cr_assert_eq(op.calls, 0);
	cr_assert_lt(urp_io_poll_error(io), 0, "a failed poll must say why");
}

#endif /* URP_TESTS_FAULT_UTIL_H */
