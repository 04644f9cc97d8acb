// SPDX-License-Identifier: MIT
/*
 * core_tryio: urp_io_try_io(), the snapshot / op / tick-checked clear pattern (urpoll.h;
 * docs/design.md, "The task loop", the idiom).
 */
#include "core_util.h"

TestSuite(core_tryio, .init = io_setup, .fini = io_teardown, .timeout = 10);

static uint64_t stale_rejects(void)
{
	return detached_stats().stale_rejects;
}

/* What the fake operation does when called. */
struct fake_op {
	int calls;
	ssize_t result;
	bool race; /* Set race_bits before returning: a completion racing op */
	unsigned race_bits;
};

static ssize_t run_fake_op(void *arg)
{
	struct fake_op *op = arg;

	op->calls++;
	if (op->race)
		urp_io_set_readiness(io, op->race_bits);
	return op->result;
}

Test(core_tryio, op_not_called_when_not_ready)
{
	struct fake_op op = {.result = 42};

	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(op.calls, 0, "op called on an entry with nothing ready");

	/* ready, but not for this interest */
	urp_io_set_readiness(io, URP_WRITABLE | URP_WRITE_CLOSED | URP_ERROR);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(op.calls, 0, "op called for READABLE on a writable entry");
	cr_assert_eq(urp_io_word(io),
		     (1u << WORD_TICK_SHIFT) | URP_WRITABLE | URP_WRITE_CLOSED | URP_ERROR);
}

Test(core_tryio, op_result_returned_when_ready)
{
	struct fake_op op = {.result = 42};

	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), 42);
	cr_assert_eq(op.calls, 1);
	cr_assert_eq(urp_io_word(io), (1u << WORD_TICK_SHIFT) | URP_READABLE,
		     "a successful op changed the word to %#x", urp_io_word(io));

	op.result = 0;
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), 0);
	cr_assert_eq(op.calls, 2);
	cr_assert_eq(urp_io_word(io), (1u << WORD_TICK_SHIFT) | URP_READABLE);
}

/* A closed state counts as ready: a read must run to see EOF. */
Test(core_tryio, op_called_on_read_closed)
{
	struct fake_op op = {.result = 0};

	urp_io_set_readiness(io, URP_READ_CLOSED);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), 0);
	cr_assert_eq(op.calls, 1);
}

/* Unlike tokio's try_io, a combined interest sees the union, not an empty mask. */
Test(core_tryio, combined_interest_runs_op)
{
	struct fake_op op = {.result = 7};

	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE | URP_WRITABLE, run_fake_op, &op), 7);
	cr_assert_eq(op.calls, 1);
}

Test(core_tryio, eagain_clears)
{
	struct fake_op op = {.result = -EAGAIN};
	uint64_t rejects;

	for (int i = 0; i < 3; i++)
		urp_io_set_readiness(io, URP_READABLE);
	rejects = stale_rejects();
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(op.calls, 1);
	cr_assert_eq(urp_io_word(io), 3u << WORD_TICK_SHIFT,
		     "after EAGAIN the word is %#x (want READABLE gone, tick 3)", urp_io_word(io));
	cr_assert_eq(stale_rejects(), rejects);

	/* now it is not ready: op is not called again */
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(op.calls, 1);
}

Test(core_tryio, eagain_clears_only_interest_bits)
{
	struct fake_op op = {.result = -EAGAIN};

	urp_io_set_readiness(io, URP_READABLE | URP_WRITABLE | URP_READ_CLOSED);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(urp_io_word(io), (1u << WORD_TICK_SHIFT) | URP_WRITABLE | URP_READ_CLOSED,
		     "word is %#x", urp_io_word(io));
	/* READ_CLOSED stays: op keeps being called */
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(op.calls, 2);
}

/* A completion lands while op runs: its edge must survive op's EAGAIN. */
Test(core_tryio, racing_set_survives_eagain)
{
	struct fake_op op = {.result = -EAGAIN, .race = true, .race_bits = URP_READABLE};
	uint64_t rejects;

	urp_io_set_readiness(io, URP_READABLE);
	rejects = stale_rejects();
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(op.calls, 1);
	cr_assert_eq(urp_io_word(io), (2u << WORD_TICK_SHIFT) | URP_READABLE,
		     "racing completion lost: word is %#x", urp_io_word(io));
	cr_assert_eq(stale_rejects() - rejects, 1, "stale clear not counted");

	/* still ready: the next try runs op */
	op.race = false;
	op.result = 5;
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), 5);
	cr_assert_eq(op.calls, 2);
}

/* Even an empty completion (the tick alone) racing op keeps the snapshot's bits. */
Test(core_tryio, racing_empty_set_survives_eagain)
{
	struct fake_op op = {.result = -EAGAIN, .race = true, .race_bits = 0};
	uint64_t rejects;

	urp_io_set_readiness(io, URP_READABLE);
	rejects = stale_rejects();
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -EAGAIN);
	cr_assert_eq(urp_io_word(io), (2u << WORD_TICK_SHIFT) | URP_READABLE, "word is %#x",
		     urp_io_word(io));
	cr_assert_eq(stale_rejects() - rejects, 1);
}

Test(core_tryio, op_error_not_cleared)
{
	struct fake_op op = {.result = -ECONNRESET};

	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, run_fake_op, &op), -ECONNRESET);
	cr_assert_eq(op.calls, 1);
	cr_assert_eq(urp_io_word(io), (1u << WORD_TICK_SHIFT) | URP_READABLE,
		     "an op error cleared readiness: word is %#x", urp_io_word(io));
}

Test(core_tryio, bad_args)
{
	struct fake_op op = {.result = 1};

	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(urp_io_try_io(NULL, URP_READABLE, run_fake_op, &op), -EINVAL);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, NULL, &op), -EINVAL);
	cr_assert_eq(op.calls, 0);
}
