// SPDX-License-Identifier: MIT
/*
 * ring_fault: ring mode (docs/design.md, "Ring mode") against the injectable ring
 * (tests/lib/fault.c): the buffer ring's registration failing, and the kernel's recv and send
 * ending as it may (ran out of buffers, cancelled by a CQ overflow, failed), or no SQE for a
 * send or a recv. Every case ends with the entry delivering again or reporting the failure,
 * and nothing left behind (fault_teardown: no ring open; ASan in the sanitizer builds).
 * Built like uring_fault (Makefile, -DURP_FAULT).
 */
#include "fault_util.h"
#include "ring_util.h"

TestSuite(ring_fault, .init = urp__fault_reset, .fini = fault_teardown, .timeout = 30);

/* A request's token: the entry, and in its low two bits which request (uring/driver.h). */
static uint64_t recv_token(struct urp_io *io)
{
	return token(io) | 1;
}

static uint64_t send_token(struct urp_io *io)
{
	return token(io) | 2;
}

/* Write msg to the peer and take it whole from io. */
static void assert_receives(struct urp_io *io, int peer, const char *msg)
{
	char got[64];
	size_t len = 0;

	write_all(peer, msg, strlen(msg));
	cr_assert_eq(take_all(io, got, sizeof(got), &len, strlen(msg)), 1);
	cr_assert_eq(len, strlen(msg));
	cr_assert_arr_eq(got, msg, len);
}

static void ring_close(struct urp_io *io, int peer)
{
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0, "the entry was never freed");
	close(peer);
}

/* The buffer ring cannot be registered (the kernel is short of memory): the registration says
 * so, nothing stays set up, and the next registration tries again and works. */
Test(ring_fault, buf_ring_registration_failure_is_returned_and_tried_again)
{
	struct urp_driver_opts o = ring_opts(8, 4096, 0, 0);
	struct urp_io *io = NULL;
	int sv[2];

	drv = driver_new(&o);
	turn(drv, 0);
	unix_pair(sv);
	urp__fault_fail(URP__FAULT_BUF_RING, 0, 1, -ENOMEM);
	cr_assert_eq(urp_register_ring(drv, sv[0], &io), -ENOMEM);
	cr_assert_null(io);
	cr_assert_eq(driver_stats(drv).live, 0);
	io = ring_reg(sv[0]);
	cr_assert_eq(urp__fault_calls(URP__FAULT_BUF_RING), 2);
	assert_receives(io, sv[1], "after the retry");
	ring_close(io, sv[1]);
}

/* A recv that ends with -ENOBUFS though every buffer came back before it was reaped (the
 * caller released them in between): the entry must not wait for a release that never comes.
 * It is re-armed at the next turn, and counted. */
Test(ring_fault, enobufs_with_the_ring_full_again_rearms_at_once)
{
	struct urp_driver_opts o = ring_opts(4, 4096, 0, 0);
	struct urp_stats st0;
	struct urp_io *io;
	int sv[2];

	io = ring_pair(&o, sv);
	st0 = driver_stats(drv);
	urp__fault_poll_end(recv_token(io), -ENOBUFS);
	settle(drv);
	cr_assert_eq(driver_stats(drv).enobufs - st0.enobufs, 1);
	assert_receives(io, sv[1], "still receiving");
	cr_assert_geq(driver_stats(drv).rearms - st0.rearms, 1);
	ring_close(io, sv[1]);
}

/* The kernel ends the recv by itself (a CQ overflow, an outside cancel): -ECANCELED that the
 * driver did not ask for. Re-armed, as an ended poll is; nothing received is lost. */
Test(ring_fault, recv_ended_by_the_kernel_is_rearmed)
{
	struct urp_driver_opts o = ring_opts(8, 4096, 0, 0);
	struct urp_stats st0;
	struct urp_io *io;
	int sv[2];

	io = ring_pair(&o, sv);
	assert_receives(io, sv[1], "before");
	st0 = driver_stats(drv);
	urp__fault_poll_end(recv_token(io), -ECANCELED);
	settle(drv);
	cr_assert_eq(driver_stats(drv).rearms - st0.rearms, 1);
	assert_receives(io, sv[1], "after");
	cr_assert_eq(io_ready(io) & URP_ERROR, 0);
	ring_close(io, sv[1]);
}

/* The recv fails: ERROR and both closed bits, as a poll error reads; the take returns the
 * error; the entry deregisters cleanly. */
Test(ring_fault, recv_error_sets_error_and_the_take_returns_it)
{
	struct urp_driver_opts o = ring_opts(8, 4096, 0, 0);
	struct urp_buf *buf;
	struct urp_io *io;
	int sv[2];

	io = ring_pair(&o, sv);
	urp__fault_poll_end(recv_token(io), -ECONNRESET);
	turn_until_ready(drv, io, URP_ERROR);
	cr_assert_eq(io_ready(io) & (URP_ERROR | URP_READ_CLOSED | URP_WRITE_CLOSED),
		     URP_ERROR | URP_READ_CLOSED | URP_WRITE_CLOSED);
	cr_assert_eq(urp_io_take(io, &buf), -ECONNRESET);
	ring_close(io, sv[1]);
}

/* A send the kernel parked (the peer's buffer is full) fails: ERROR and WRITE_CLOSED, the sends
 * queued behind it are dropped (they could not go out in order), and the next send says why. */
Test(ring_fault, send_error_drops_the_queue_and_the_next_send_returns_it)
{
	struct urp_driver_opts o = ring_opts(8, 4096, 0, 1u << 20);
	static char blob[256 * 1024];
	int sv[2], small = 4096;
	struct urp_io *io;

	io = ring_pair(&o, sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	cr_assert_eq(urp_io_send(io, blob, sizeof(blob)), 0);
	cr_assert_eq(urp_io_send(io, "behind", 6), 0);
	settle(drv);
	cr_assert_gt(urp_io_send_queued(io), 6, "the peer took 256 KiB: nothing is parked");
	urp__fault_poll_end(send_token(io), -EIO);
	turn_until_ready(drv, io, URP_ERROR);
	cr_assert_eq(io_ready(io) & (URP_ERROR | URP_WRITE_CLOSED), URP_ERROR | URP_WRITE_CLOSED);
	cr_assert_eq(urp_io_send_queued(io), 0, "the sends behind the failed one stayed queued");
	cr_assert_eq(urp_io_send(io, "more", 4), -EIO);
	cr_assert_eq(urp_io_send_fin(io), -EIO);
	ring_close(io, sv[1]);
}

/* No SQE for a send (the SQ stays full through the driver's submits) at the turn's start, where
 * its SQE is prepared: the send waits for the next turn, and what is queued behind it goes out
 * after it, in order. */
Test(ring_fault, send_without_an_sqe_goes_out_next_turn_in_order)
{
	struct urp_driver_opts o = ring_opts(8, 4096, 0, 0);
	char got[16] = { 0 };
	struct urp_io *io;
	ssize_t n = 0;
	int sv[2];

	io = ring_pair(&o, sv);
	cr_assert_eq(urp_io_send(io, "first ", 6), 0);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	turn(drv, 0);
	cr_assert_eq(urp__fault_failed(URP__FAULT_SQE), 4);
	cr_assert_eq(urp_io_send(io, "second", 6), 0);
	for (int t = 0; t < TURN_TRIES && n < 12; t++) {
		ssize_t r;

		turn(drv, TURN_WAIT_MS / 10);
		r = recv(sv[1], got + n, sizeof(got) - 1 - (size_t)n, MSG_DONTWAIT);
		if (r > 0)
			n += r;
	}
	cr_assert_str_eq(got, "first second");
	cr_assert_eq(urp_io_send_queued(io), 0);
	ring_close(io, sv[1]);
}

/* No SQE for the recv at registration (prepared at the next turn's start): the entry fails as
 * a poll-mode one does (ERROR, shut down, the reason kept), instead of looking armed while
 * nothing receives. */
Test(ring_fault, recv_without_an_sqe_fails_the_entry)
{
	struct urp_driver_opts o = ring_opts(8, 4096, 0, 0);
	struct urp_buf *buf;
	struct urp_io *io;
	int sv[2];

	drv = driver_new(&o);
	turn(drv, 0);
	unix_pair(sv);
	io = ring_reg(sv[0]);
	urp__fault_fail(URP__FAULT_SQE, 0, 4, -EBUSY);
	turn(drv, 0);
	cr_assert_eq(driver_stats(drv).poll_errors, 1);
	assert_ready(io, URP_ERROR, 0);
	cr_assert(urp_word_shutdown(urp_io_word(io)));
	cr_assert_eq(urp_io_take(io, &buf), -ESHUTDOWN);
	cr_assert_lt(urp_io_poll_error(io), 0, "a failed recv must say why");
	ring_close(io, sv[1]);
}
