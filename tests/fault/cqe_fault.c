// SPDX-License-Identifier: MIT
/*
 * cqe_fault: completions injected through the injectable ring (uring/ring.h, tests/lib/fault.c)
 * and their documented outcome (docs/reliability.md). Ones a kernel can post (late, duplicated
 * wake-ups, polls that end, negative res) are applied or ignored as the kernel means them;
 * ones only a driver bug could cause (unknown tokens) are counted, one per CQE, without
 * touching memory the driver does not own. Built like uring_fault (Makefile, -DURP_FAULT).
 */
#include "fault_util.h"

TestSuite(cqe_fault, .init = urp__fault_reset, .fini = fault_teardown, .timeout = 30);

/* ---- completions: late, doubled, ended, negative ---- */

/* Completions held back arrive later, in order: nothing is lost meanwhile. */
Test(cqe_fault, late_cqe_delivered_when_it_arrives)
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
Test(cqe_fault, late_cqe_after_deregister_not_applied)
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
Test(cqe_fault, late_cqe_after_shutdown_keeps_shutdown)
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
Test(cqe_fault, duplicate_cqe_applied_twice_harmless)
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
Test(cqe_fault, duplicate_final_cqe_counted_unknown)
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
Test(cqe_fault, poll_end_with_mask_applied_and_rearmed)
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
Test(cqe_fault, poll_end_ecanceled_rearmed)
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
Test(cqe_fault, poll_end_negative_res_shuts_entry_down)
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
Test(cqe_fault, negative_res_with_more_ignored)
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

Test(cqe_fault, reserved_tokens_counted_unknown)
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
Test(cqe_fault, misaligned_token_counted_unknown_not_read)
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

Test(cqe_fault, other_drivers_entry_counted_unknown)
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
Test(cqe_fault, non_entry_memory_counted_unknown)
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
Test(cqe_fault, no_unknown_tokens_without_faults)
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
