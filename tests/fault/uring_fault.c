// SPDX-License-Identifier: MIT
/*
 * uring_fault: every injection site of the injectable ring (uring/ring.h, tests/lib/fault.c) on
 * the way in, and its documented outcome (docs/reliability.md): the ring's setup, io_uring_enter,
 * a full submission queue and the CQ overflow flag. An error returned (which errno), the fd
 * still delivering readiness afterwards (re-armed), or the event counted in urp_driver_stats()
 * — never a crash, a leaked ring or a lost event. Built from the library's sources with
 * URP_FAULT (Makefile), so the test reaches uring/fault.h; the shared library has no seam.
 * The completions injected on the way out are cqe_fault's.
 */
#include "fault_util.h"

TestSuite(uring_fault, .init = urp__fault_reset, .fini = fault_teardown, .timeout = 30);

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

/*
 * Bug (found by tests/fuzz/driver_faults): a removal put off for want of an SQE made the
 * deregistered entry live again until the retry: a completion landing in that turn was applied
 * and called the caller's waker (whose arg the caller may have freed), and a poll ending in
 * that turn was re-armed on an fd the caller may have closed.
 */
Test(uring_fault, sq_full_at_deregistration_entry_stays_gone)
{
	atomic_int gone_wakes;
	struct urp_waker w = {.wake = count_wake, .arg = &gone_wakes};
	struct urp_stats st0, st;
	struct urp_event ev;
	struct conn c;

	drv = driver_new(NULL);
	conn_open(&c);
	atomic_init(&gone_wakes, 0);
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
	cr_assert_eq(atomic_load(&gone_wakes), 0, "the deregistered entry's waker ran %d times",
		     atomic_load(&gone_wakes));
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
