// SPDX-License-Identifier: MIT
/*
 * uring_fault: every injection site of the injectable ring (uring/ring.h, uring/fault.c) and its
 * documented outcome (docs/reliability.md): an error returned (which errno), the fd still
 * delivering readiness afterwards (re-armed), or the event counted in urp_driver_stats() —
 * never a crash, a leaked ring or a lost event. Built from the library's sources with
 * URP_FAULT (Makefile), so the test reaches uring/fault.h; the shared library has no seam.
 *
 * Injected completions are ones a kernel can post (late, duplicated wake-ups, polls that end,
 * negative res) plus ones only a driver bug could cause (unknown tokens), which the driver must
 * count without touching memory it does not own.
 */
#include <liburing.h>
#include <stdlib.h>

#include "fault.h"
#include "uring_util.h"

static void fault_teardown(void)
{
	drv_teardown();
	cr_assert_eq(urp__fault_rings_open(), 0, "a ring was set up and never exited");
	urp__fault_reset();
}

TestSuite(uring_fault, .init = urp__fault_reset, .fini = fault_teardown, .timeout = 30);

static uint64_t token(struct urp_io *io)
{
	return (uint64_t)(uintptr_t)io;
}

/* A socketpair whose sv[0] is registered on drv for reading, its poll armed. */
struct conn {
	int sv[2];
	struct urp_io *io;
};

static void conn_open(struct conn *c)
{
	unix_pair(c->sv);
	c->io = reg_or_fail(drv, c->sv[0], URP_READABLE);
	settle(drv);
}

static void conn_close(struct conn *c)
{
	cr_assert_eq(urp_deregister_close(c->io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0, "the entry was never freed");
	cr_assert_eq(drain_fd(c->sv[1]), 0);
	close(c->sv[1]);
}

/* The entry is alive and its poll armed: a byte written now shows as READABLE. */
static void assert_delivers(struct conn *c)
{
	drain_try_io(c->io, c->sv[0]);
	write_all(c->sv[1], "x", 1);
	turn_until_ready(drv, c->io, URP_READABLE);
	assert_ready(c->io, URP_READABLE, URP_ERROR);
	cr_assert_not(urp_word_shutdown(urp_io_word(c->io)));
	cr_assert_eq(drain_try_io(c->io, c->sv[0]), 1);
}

/* Free drv, which counted expect unknown tokens (drv_teardown() wants none). */
static void free_driver_expecting_unknown(uint64_t expect)
{
	struct urp_stats st = driver_stats(drv);

	cr_assert_eq(st.unknown_tokens, expect, "unknown_tokens %llu, injected %llu",
		     (unsigned long long)st.unknown_tokens, (unsigned long long)expect);
	urp_driver_free(drv);
	drv = NULL;
}

/* ---- ring setup ---- */

/* A setup error that no other tier can cure is returned at once, and nothing is left open. */
static void setup_error_returned(int err)
{
	struct urp_driver *d = NULL;

	urp__fault_fail(URP__FAULT_SETUP, 0, 1, err);
	cr_assert_eq(urp_driver_new(&d, NULL), err);
	cr_assert_null(d);
	cr_assert_eq(urp__fault_calls(URP__FAULT_SETUP), 1, "another tier was tried after %d",
		     err);
	cr_assert_eq(urp__fault_rings_open(), 0);
	cr_assert_gt(strlen(urp_strerror(err)), 10);
	/* Nothing stays broken: the next driver is created. */
	drv = driver_new(NULL);
}

Test(uring_fault, setup_eperm_returned)
{
	setup_error_returned(-EPERM);
}

Test(uring_fault, setup_enosys_returned)
{
	setup_error_returned(-ENOSYS);
}

Test(uring_fault, setup_enomem_returned)
{
	setup_error_returned(-ENOMEM);
}

Test(uring_fault, setup_emfile_returned)
{
	setup_error_returned(-EMFILE);
}

Test(uring_fault, setup_enfile_returned)
{
	setup_error_returned(-ENFILE);
}

/* EINVAL means this tier's flags are unknown to the kernel: the next tier is tried. */
Test(uring_fault, setup_einval_falls_back_a_tier)
{
	struct urp_driver_info info;
	struct conn c;

	urp__fault_fail(URP__FAULT_SETUP, 0, 1, -EINVAL);
	drv = driver_new(NULL);
	cr_assert_eq(urp__fault_calls(URP__FAULT_SETUP), 2);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	cr_assert_eq(info.tier, URP_TIER_COOP, "tier %s", info.tier_name);
	conn_open(&c);
	assert_delivers(&c);
	conn_close(&c);
}

Test(uring_fault, setup_einval_on_every_tier_is_einval)
{
	struct urp_driver *d = NULL;

	urp__fault_fail(URP__FAULT_SETUP, 0, 3, -EINVAL);
	cr_assert_eq(urp_driver_new(&d, NULL), -EINVAL);
	cr_assert_eq(urp__fault_calls(URP__FAULT_SETUP), 3, "defer, coop and basic");
	cr_assert_eq(urp__fault_rings_open(), 0);
}

Test(uring_fault, probe_failure_is_eopnotsupp_ring_released)
{
	struct urp_driver *d = NULL;

	urp__fault_fail(URP__FAULT_PROBE, 0, 1, -ENOMEM);
	cr_assert_eq(urp_driver_new(&d, NULL), -EOPNOTSUPP);
	cr_assert_eq(urp__fault_rings_open(), 0);
}

Test(uring_fault, kernel_without_nodrop_is_eopnotsupp)
{
	struct urp_driver *d = NULL;

	urp__fault_hide_features(IORING_FEAT_NODROP);
	cr_assert_eq(urp_driver_new(&d, NULL), -EOPNOTSUPP);
	cr_assert_eq(urp__fault_rings_open(), 0);
}

/* Without EXT_ARG liburing waits with a timeout SQE whose CQE (user_data LIBURING_UDATA_TIMEOUT)
 * the reap loop would take for an entry's address. */
Test(uring_fault, kernel_without_ext_arg_is_eopnotsupp)
{
	struct urp_driver *d = NULL;

	urp__fault_hide_features(IORING_FEAT_EXT_ARG);
	cr_assert_eq(urp_driver_new(&d, NULL), -EOPNOTSUPP);
	cr_assert_eq(urp__fault_rings_open(), 0);
}

Test(uring_fault, eventfd_emfile_returned_ring_released)
{
	struct urp_driver *d = NULL;

	urp__fault_fail(URP__FAULT_EVENTFD, 0, 1, -EMFILE);
	cr_assert_eq(urp_driver_new(&d, NULL), -EMFILE);
	cr_assert_eq(urp__fault_rings_open(), 0);
}

/* The first turn enables the ring (tier defer); when that fails the driver stays unclaimed and
 * the next turn enables it, with the registration made before intact. */
Test(uring_fault, enable_failure_returned_then_retried)
{
	struct urp_driver_info info;
	struct conn c;

	drv = driver_new(NULL);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	cr_assert_eq(info.tier, URP_TIER_DEFER);
	unix_pair(c.sv);
	c.io = reg_or_fail(drv, c.sv[0], URP_READABLE);
	urp__fault_fail(URP__FAULT_ENABLE, 0, 1, -ENOMEM);
	cr_assert_eq(urp_driver_turn(drv, 0), -ENOMEM);
	turn(drv, 0);
	cr_assert_eq(urp__fault_calls(URP__FAULT_ENABLE), 2);
	assert_delivers(&c);
	conn_close(&c);
}

/* ---- io_uring_enter ---- */

static void enter_eintr(int timeout_ms)
{
	struct urp_stats st0, st;
	struct conn c;
	unsigned calls;

	drv = driver_new(NULL);
	conn_open(&c);
	write_all(c.sv[1], "x", 1);
	st0 = driver_stats(drv);
	calls = urp__fault_calls(URP__FAULT_ENTER);
	urp__fault_fail(URP__FAULT_ENTER, 0, 3, -EINTR);
	cr_assert_geq(urp_driver_turn(drv, timeout_ms), 0, "EINTR reached the caller");
	st = driver_stats(drv);
	cr_assert_eq(urp__fault_calls(URP__FAULT_ENTER) - calls, 4, "3 EINTR, then the enter");
	cr_assert_eq(st.enters - st0.enters, 4);
	turn_until_ready(drv, c.io, URP_READABLE);
	assert_ready(c.io, URP_READABLE, URP_ERROR);
	cr_assert_eq(drain_try_io(c.io, c.sv[0]), 1);
	conn_close(&c);
}

Test(uring_fault, enter_eintr_retried_nonblocking_turn)
{
	enter_eintr(0);
}

Test(uring_fault, enter_eintr_retried_timed_turn)
{
	enter_eintr(TURN_WAIT_MS);
}

Test(uring_fault, enter_eintr_retried_blocking_turn)
{
	enter_eintr(-1);
}

/* EBUSY/EAGAIN: the kernel could not take the SQEs now (CQ overflow backlog, memory). The turn
 * returns no error, the SQEs stay in the SQ, and the next enter submits them. */
static void enter_busy(int err)
{
	struct conn c;

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(c.sv);
	c.io = reg_or_fail(drv, c.sv[0], URP_READABLE);
	write_all(c.sv[1], "x", 1);
	urp__fault_fail(URP__FAULT_ENTER, 0, 1, err);
	cr_assert_eq(urp_driver_turn(drv, TURN_WAIT_MS), 0);
	cr_assert_eq(io_ready(c.io), 0, "the poll was armed by an enter that failed");
	turn_until_ready(drv, c.io, URP_READABLE);
	assert_ready(c.io, URP_READABLE, URP_ERROR);
	cr_assert_eq(drain_try_io(c.io, c.sv[0]), 1);
	assert_delivers(&c);
	conn_close(&c);
}

Test(uring_fault, enter_ebusy_not_an_error_sqes_go_next_turn)
{
	enter_busy(-EBUSY);
}

Test(uring_fault, enter_eagain_not_an_error_sqes_go_next_turn)
{
	enter_busy(-EAGAIN);
}

Test(uring_fault, enter_other_error_returned_next_turn_works)
{
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_fail(URP__FAULT_ENTER, 0, 1, -ENOMEM);
	cr_assert_eq(urp_driver_turn(drv, 0), -ENOMEM);
	assert_delivers(&c);
	conn_close(&c);
}

/* ---- a full submission queue ---- */

/* No SQE: submit what is queued (one extra enter, counted) and take one. */
Test(uring_fault, sq_full_submits_then_arms)
{
	struct urp_stats st0, st;
	struct conn c;

	drv = driver_new(NULL);
	turn(drv, 0);
	st0 = driver_stats(drv);
	urp__fault_fail(URP__FAULT_SQE, 0, 1, -EBUSY);
	unix_pair(c.sv);
	c.io = reg_or_fail(drv, c.sv[0], URP_READABLE);
	st = driver_stats(drv);
	cr_assert_eq(urp__fault_calls(URP__FAULT_SUBMIT), 1);
	cr_assert_eq(st.extra_enters - st0.extra_enters, 1);
	assert_delivers(&c);
	cr_assert_eq(driver_stats(drv).poll_errors, 0);
	conn_close(&c);
}

/* The submit made to free SQ space fails: ignored, the next try gets an SQE. */
Test(uring_fault, sq_full_submit_error_then_arms)
{
	struct conn c;

	drv = driver_new(NULL);
	turn(drv, 0);
	urp__fault_fail(URP__FAULT_SQE, 0, 2, -EBUSY);
	urp__fault_fail(URP__FAULT_SUBMIT, 0, 1, -EBUSY);
	unix_pair(c.sv);
	c.io = reg_or_fail(drv, c.sv[0], URP_READABLE);
	cr_assert_eq(urp__fault_calls(URP__FAULT_SUBMIT), 2);
	assert_delivers(&c);
	conn_close(&c);
}

/* No SQE after four submits: the poll cannot be armed, so the entry reports ERROR and is shut
 * down (never left looking armed while nothing watches it). */
static void assert_failed_entry(struct urp_io *io)
{
	char buf[8];
	struct rw_op op = {.buf = buf, .len = sizeof(buf)};

	assert_ready(io, URP_ERROR, 0);
	cr_assert(urp_word_shutdown(urp_io_word(io)));
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, op_read, &op), -ESHUTDOWN);
	cr_assert_eq(op.calls, 0);
	cr_assert_lt(urp_io_poll_error(io), 0, "a failed poll must say why");
}

Test(uring_fault, sq_full_persistently_shuts_entry_down)
{
	struct conn c;

	drv = driver_new(NULL);
	turn(drv, 0);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	unix_pair(c.sv);
	c.io = reg_or_fail(drv, c.sv[0], URP_READABLE);
	cr_assert_eq(driver_stats(drv).poll_errors, 1);
	assert_failed_entry(c.io);
	conn_close(&c);
}

Test(uring_fault, sq_full_at_rearm_shuts_entry_down)
{
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_poll_end(token(c.io), POLLIN);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	for (int i = 0; i < TURN_TRIES && !driver_stats(drv).poll_errors; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_eq(driver_stats(drv).poll_errors, 1);
	assert_failed_entry(c.io);
	conn_close(&c);
}

/* No SQE for the removal: retried on the next turn — and the turn that failed must not block,
 * or the fd stays open in the kernel until some unrelated completion. */
Test(uring_fault, sq_full_at_deregistration_turn_does_not_block)
{
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	cr_assert_eq(urp_deregister_close(c.io), 0);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	cr_assert_geq(urp_driver_turn(drv, -1), 0);
	cr_assert_eq(driver_stats(drv).live, 1, "removed without an SQE?");
	cr_assert_eq(turn_until_live(drv, 0), 0);
	cr_assert_eq(drain_fd(c.sv[1]), 0);
	close(c.sv[1]);
}

static int gone_wakes;

static void gone_wake(void *arg)
{
	gone_wakes++;
}

/*
 * Bug (found by tests/fuzz/driver_faults): a removal put off for want of an SQE made the
 * deregistered entry live again until the retry: a completion landing in that turn was applied
 * and called the caller's waker (whose arg the caller may have freed), and a poll ending in
 * that turn was re-armed on an fd the caller may have closed.
 */
Test(uring_fault, sq_full_at_deregistration_entry_stays_gone)
{
	struct urp_waker w = {.wake = gone_wake, .arg = NULL};
	struct urp_stats st0, st;
	struct urp_event ev;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	gone_wakes = 0;
	cr_assert_eq(urp_io_poll_ready(c.io, URP_DIR_READ, &w, &ev), -EAGAIN);
	st0 = driver_stats(drv);
	cr_assert_eq(urp_deregister(c.io), 0);
	write_all(c.sv[1], "x", 1);
	urp__fault_poll_end(token(c.io), POLLIN);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	for (int i = 0; i < TURN_TRIES && driver_stats(drv).live; i++)
		turn(drv, TURN_WAIT_MS);
	st = driver_stats(drv);
	cr_assert_eq(st.live, 0, "never freed");
	cr_assert_eq(gone_wakes, 0, "the deregistered entry's waker ran %d times", gone_wakes);
	cr_assert_eq(st.events, st0.events, "a deregistered entry's readiness was applied");
	cr_assert_eq(st.rearms, st0.rearms, "a deregistered entry's poll was re-armed");
	cr_assert_eq(st.poll_errors, 0);
	close(c.sv[0]);
	close(c.sv[1]);
}

/* No SQE for the unpark poll: a turn that cannot be unparked must not block. */
Test(uring_fault, sq_full_at_unpark_arm_turn_does_not_block)
{
	struct conn c;

	drv = driver_new(NULL);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	cr_assert_geq(urp_driver_turn(drv, -1), 0);
	/* Armed on the next turn: an unpark from another thread now ends a blocking turn. */
	turn(drv, 0);
	cr_assert_eq(urp_driver_unpark(drv), 0);
	cr_assert_geq(urp_driver_turn(drv, -1), 0);
	conn_open(&c);
	assert_delivers(&c);
	conn_close(&c);
}

/* ---- CQ overflow ---- */

Test(uring_fault, overflow_flag_flushed_and_counted)
{
	struct urp_stats st0, st;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	st0 = driver_stats(drv);
	urp__fault_overflow(2);
	urp__fault_fail(URP__FAULT_GET_EVENTS, 0, 1, -EINTR);
	write_all(c.sv[1], "x", 1);
	turn_until_ready(drv, c.io, URP_READABLE);
	st = driver_stats(drv);
	cr_assert_eq(st.cq_overflows - st0.cq_overflows, 2);
	cr_assert_eq(urp__fault_calls(URP__FAULT_GET_EVENTS), 2, "one flush failed, one more");
	cr_assert_eq(st.extra_enters - st0.extra_enters, 2);
	cr_assert_eq(drain_try_io(c.io, c.sv[0]), 1);
	assert_delivers(&c);
	conn_close(&c);
}

/* ---- completions: late, doubled, ended, negative ---- */

/* Completions held back arrive later, in order: nothing is lost meanwhile. */
Test(uring_fault, late_cqe_delivered_when_it_arrives)
{
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_cq_hold(true);
	write_all(c.sv[1], "x", 1);
	settle(drv);
	cr_assert_eq(io_ready(c.io), 0, "the hold let a CQE through");
	urp__fault_cq_hold(false);
	turn_until_ready(drv, c.io, URP_READABLE);
	assert_ready(c.io, URP_READABLE, URP_ERROR);
	cr_assert_eq(drain_try_io(c.io, c.sv[0]), 1);
	assert_delivers(&c);
	conn_close(&c);
}

/* A readiness CQE that lands after urp_deregister(): not applied, and the entry is freed only
 * after the poll's final CQE, which comes after it. */
Test(uring_fault, late_cqe_after_deregister_not_applied)
{
	struct urp_stats st0;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_cq_hold(true);
	write_all(c.sv[1], "x", 1);
	settle(drv);
	st0 = driver_stats(drv);
	cr_assert_eq(urp_deregister_close(c.io), 0);
	settle(drv);
	cr_assert_eq(driver_stats(drv).live, 1, "freed before its final CQE was reaped");
	urp__fault_cq_hold(false);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	cr_assert_eq(driver_stats(drv).events, st0.events,
		     "a deregistered entry's late readiness was applied");
	cr_assert_eq(drain_fd(c.sv[1]), 0);
	close(c.sv[1]);
}

/* A readiness CQE that lands after shutdown: applied, and the shutdown bit stays. */
Test(uring_fault, late_cqe_after_shutdown_keeps_shutdown)
{
	struct urp_stats st0;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_cq_hold(true);
	write_all(c.sv[1], "x", 1);
	settle(drv);
	urp_driver_shutdown(drv);
	cr_assert(urp_word_shutdown(urp_io_word(c.io)));
	st0 = driver_stats(drv);
	urp__fault_cq_hold(false);
	for (int i = 0; i < TURN_TRIES && driver_stats(drv).events == st0.events; i++)
		turn(drv, TURN_WAIT_MS);
	assert_ready(c.io, URP_READABLE, URP_ERROR);
	cr_assert(urp_word_shutdown(urp_io_word(c.io)), "a late Set dropped the shutdown bit");
	conn_close(&c);
}

/* A wake-up reported twice is two Sets of the same bits: two events, one byte to read. */
Test(uring_fault, duplicate_cqe_applied_twice_harmless)
{
	struct urp_stats st0, st;
	unsigned tick0;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	st0 = driver_stats(drv);
	tick0 = urp_word_tick(urp_io_word(c.io));
	urp__fault_cqe_dup(token(c.io), 1);
	write_all(c.sv[1], "x", 1);
	turn_until_ready(drv, c.io, URP_READABLE);
	settle(drv);
	st = driver_stats(drv);
	cr_assert_geq(st.events - st0.events, 2, "the duplicate was not applied");
	cr_assert_eq((urp_word_tick(urp_io_word(c.io)) - tick0) & URP_TICK_MAX, st.events - st0.events);
	cr_assert_eq(drain_try_io(c.io, c.sv[0]), 1);
	assert_delivers(&c);
	conn_close(&c);
}

/* A poll's final CQE twice in one reap: the second finds no poll armed and is counted as an
 * unknown token, not taken for the end of the re-armed poll. */
Test(uring_fault, duplicate_final_cqe_counted_unknown)
{
	struct urp_stats st0;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	st0 = driver_stats(drv);
	urp__fault_poll_end(token(c.io), POLLIN);
	urp__fault_cqe_dup(token(c.io), 1);
	for (int i = 0; i < TURN_TRIES && driver_stats(drv).rearms == st0.rearms; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_eq(driver_stats(drv).rearms - st0.rearms, 1);
	assert_delivers(&c);
	conn_close(&c);
	free_driver_expecting_unknown(1);
}

/* A poll ended by the kernel (as a CQ overflow ends it: final CQE with the mask, no F_MORE):
 * the mask is applied and the poll re-armed. */
Test(uring_fault, poll_end_with_mask_applied_and_rearmed)
{
	struct urp_stats st0, st;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	st0 = driver_stats(drv);
	urp__fault_poll_end(token(c.io), POLLIN);
	turn_until_ready(drv, c.io, URP_READABLE);
	st = driver_stats(drv);
	cr_assert_eq(st.rearms - st0.rearms, 1);
	cr_assert_eq(st.events - st0.events, 1);
	cr_assert_eq(st.poll_errors + st.oneshot_files, 0);
	assert_delivers(&c);
	conn_close(&c);
}

/* Cancelled by someone else (not a deregistration): re-armed, nothing applied. */
Test(uring_fault, poll_end_ecanceled_rearmed)
{
	struct urp_stats st0, st;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	st0 = driver_stats(drv);
	urp__fault_poll_end(token(c.io), -ECANCELED);
	for (int i = 0; i < TURN_TRIES && driver_stats(drv).rearms == st0.rearms; i++)
		turn(drv, TURN_WAIT_MS);
	st = driver_stats(drv);
	cr_assert_eq(st.rearms - st0.rearms, 1);
	cr_assert_eq(st.events, st0.events);
	cr_assert_eq(st.poll_errors, 0);
	assert_delivers(&c);
	conn_close(&c);
}

/* A poll that fails (res < 0, not a cancel): ERROR, shut down, counted; a completion for the
 * entry after that names no poll and is counted as an unknown token. */
Test(uring_fault, poll_end_negative_res_shuts_entry_down)
{
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_poll_end(token(c.io), -ENOMEM);
	for (int i = 0; i < TURN_TRIES && !driver_stats(drv).poll_errors; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_eq(driver_stats(drv).poll_errors, 1);
	assert_failed_entry(c.io);
	cr_assert_eq(urp_io_poll_error(c.io), -ENOMEM);
	urp__fault_cqe_add(token(c.io), POLLIN, IORING_CQE_F_MORE);
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).unknown_tokens, 1);
	conn_close(&c);
	free_driver_expecting_unknown(1);
}

/* A negative res with F_MORE (no kernel posts one: errors end a poll) is no event and does not
 * end the poll. */
Test(uring_fault, negative_res_with_more_ignored)
{
	struct urp_stats st0, st;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	st0 = driver_stats(drv);
	urp__fault_cqe_add(token(c.io), -EIO, IORING_CQE_F_MORE);
	turn(drv, 0);
	st = driver_stats(drv);
	cr_assert_eq(st.events, st0.events);
	cr_assert_eq(st.poll_errors + st.rearms - st0.rearms, 0);
	cr_assert_eq(io_ready(c.io), 0);
	assert_delivers(&c);
	conn_close(&c);
}

/* ---- unknown tokens: counted, one per CQE, never followed into memory that is no entry ---- */

Test(uring_fault, reserved_tokens_counted_unknown)
{
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	urp__fault_cqe_add(0, 0, 0);
	urp__fault_cqe_add(3, 0, 0);
	urp__fault_cqe_add(4095, POLLIN, IORING_CQE_F_MORE);
	/* The two reserved tokens in use are not unknown: a removal's result, an unpark. */
	urp__fault_cqe_add(2, -ENOENT, 0);
	urp__fault_cqe_add(1, POLLIN, IORING_CQE_F_MORE);
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).unknown_tokens, 3);
	assert_delivers(&c);
	conn_close(&c);
	free_driver_expecting_unknown(3);
}

/* Entries are cache-pair aligned: a token that is not cannot be one and is not read (the
 * all-ones token is liburing's LIBURING_UDATA_TIMEOUT). */
Test(uring_fault, misaligned_token_counted_unknown_not_read)
{
	struct conn c;
	uint32_t word;

	drv = driver_new(NULL);
	conn_open(&c);
	word = urp_io_word(c.io);
	urp__fault_cqe_add(token(c.io) + 8, POLLIN, IORING_CQE_F_MORE);
	urp__fault_cqe_add(LIBURING_UDATA_TIMEOUT, -ETIME, 0);
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).unknown_tokens, 2);
	cr_assert_eq(urp_io_word(c.io), word);
	assert_delivers(&c);
	conn_close(&c);
	free_driver_expecting_unknown(2);
}

Test(uring_fault, other_drivers_entry_counted_unknown)
{
	struct urp_driver *other = driver_new(NULL);
	struct urp_io *io;
	uint32_t word;
	int sv[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	turn(other, 0);
	unix_pair(sv);
	io = reg_or_fail(other, sv[0], URP_READABLE);
	turn(other, 0);
	word = urp_io_word(io);
	urp__fault_cqe_add(token(io), POLLIN, IORING_CQE_F_MORE);
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).unknown_tokens, 1);
	cr_assert_eq(urp_io_word(io), word, "applied to another driver's entry");
	cr_assert_eq(driver_stats(other).unknown_tokens, 0);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(other, 0), 0);
	urp_driver_free(other);
	close(sv[1]);
	free_driver_expecting_unknown(1);
}

/* Aligned memory that is no entry (its magic is not the driver's). */
Test(uring_fault, non_entry_memory_counted_unknown)
{
	static _Alignas(256) unsigned char fake[1024];

	drv = driver_new(NULL);
	turn(drv, 0);
	urp__fault_cqe_add((uint64_t)(uintptr_t)fake, POLLIN, IORING_CQE_F_MORE);
	turn(drv, 0);
	for (size_t i = 0; i < sizeof(fake); i++)
		cr_assert_eq(fake[i], 0, "byte %zu of the fake entry written", i);
	free_driver_expecting_unknown(1);
}

/* Normal runs: many events, many re-arms (polls ended by the kernel), no unknown token. */
Test(uring_fault, no_unknown_tokens_without_faults)
{
	struct conn c[8];
	struct urp_stats st;

	drv = driver_new(NULL);
	for (int i = 0; i < 8; i++)
		conn_open(&c[i]);
	for (int round = 0; round < 20; round++) {
		if (round % 5 == 0)
			urp__fault_poll_end(token(c[round % 8].io), POLLIN);
		for (int i = 0; i < 8; i++)
			assert_delivers(&c[i]);
	}
	st = driver_stats(drv);
	cr_assert_geq(st.events, 160);
	cr_assert_eq(st.rearms, 4);
	cr_assert_eq(st.unknown_tokens, 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(urp_deregister_close(c[i].io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	for (int i = 0; i < 8; i++)
		close(c[i].sv[1]);
}
