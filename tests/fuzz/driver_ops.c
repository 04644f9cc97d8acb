/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "driver_ops": op sequences on the public API over the real io_uring driver and
 * real file descriptors (pipes, socketpairs, eventfds), against a model of what the kernel
 * holds for each fd.
 *
 * One loop (and so one driver) per process, reused across inputs; it is freed and made anew
 * only after an input shut it down. Ops: register, write (the Set comes from the kernel),
 * read through try_io (the clear), hang up the peer, turn, poll_ready with a waker, a
 * readiness future, a task waiting on a future, urp_io_wait with timeout 0, cancel,
 * deregister (with or without the driver closing the fd; a write may follow it, so a late
 * completion races the removal), shutdown, and settle.
 *
 * Properties, checked at every settle (turns until they hold, within a bound):
 *   - no lost readiness: an entry whose fd the kernel holds readable (data queued, or peer
 *     gone) shows READABLE / READ_CLOSED in its word, one whose fd is writable shows WRITABLE;
 *   - no lost wakeup: a waker stored in a slot, a waiting future, a waiting task, on an entry
 *     now ready for it, has been called / is done / has run;
 *   - no waker is called more often than it was stored;
 *   - after shutdown every entry has the shutdown bit and every waiter was woken, and
 *     registrations fail with -ESHUTDOWN;
 * and at the end of each input, after deregistering everything: live returns to 0, no CQE
 * ever named an unknown token, and no file descriptor leaked. ASan catches a late completion
 * touching a freed entry. The entries, the kernel model, the ops and the properties are
 * driver_model.c's, shared with driver_faults (the same sequences with faults injected).
 */
#include "driver_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct urp_driver_opts opts = { .sq_entries = 64, .cq_entries = 256 };
	struct fuzz_in in = { data, size };
	struct urp_stats st;
	enum drv_model_op op;
	unsigned ops;

	drv_model_begin(&opts);
	for (ops = 0; ops < DRV_MODEL_MAX_OPS && fuzz_more(&in); ops++) {
		op = (enum drv_model_op)(fuzz_u8(&in) % OP_COUNT);
		drv_model_op(op, &model.ents[fuzz_u8(&in) % DRV_MODEL_ENTRIES], &in);
	}
	drv_model_settle();
	st = drv_model_finish();
	FUZZ_CHECK(st.unknown_tokens == 0, "%lu CQEs for unknown tokens",
		   (unsigned long)st.unknown_tokens);
	FUZZ_CHECK(st.poll_errors == 0, "%lu polls failed", (unsigned long)st.poll_errors);
	return 0;
}
