// SPDX-License-Identifier: MIT
/*
 * uring_overflow: polls that end without IORING_CQE_F_MORE. A CQ far too small for the ready
 * fds (the kernel keeps the overflowed CQEs, IORING_FEAT_NODROP, and ends the polls they
 * belonged to: the driver must re-arm every one), and files that cannot be polled (a regular
 * file's poll ends at once, and so does that of a character device without a poll method such
 * as /dev/null: reported ready once, never re-armed in a loop; a character device that can be
 * polled, a pty, stays polled).
 *
 * Polls ended by the submitting thread's exit are not covered: every poll is submitted by the
 * turning thread, and once it exits nothing else may turn the driver (-EEXIST).
 */
#include <fcntl.h>
#include <stdlib.h>

#include "uring_util.h"

#define NPAIRS 300
#define ROUNDS 3


TestSuite(uring_overflow, .fini = drv_teardown, .timeout = 60);

/* Turn until every entry shows want; returns how many do. */
static int turn_until_all(struct urp_io **io, int n, unsigned want)
{
	int ready = 0;

	for (int t = 0; t < 20 * TURN_TRIES; t++) {
		ready = 0;
		for (int i = 0; i < n; i++)
			ready += (io_ready(io[i]) & want) == want;
		if (ready == n)
			break;
		turn(drv, 10);
	}
	return ready;
}

static int first_missing(struct urp_io **io, int n, unsigned want)
{
	for (int i = 0; i < n; i++) {
		if ((io_ready(io[i]) & want) != want)
			return i;
	}
	return -1;
}

/*
 * 300 socketpairs on a 16-entry CQ, all made readable at once, three times over: every entry
 * shows READABLE each time, overflow is counted, nothing is mistaken for an unpollable file.
 */
static void overflow_rounds(unsigned flags, unsigned interest)
{
	struct urp_driver_opts opts = {
	    .sq_entries = 16, .cq_entries = 16, .flags = URP_DRIVER_OVERCOMMIT | flags};
	struct urp_io *io[NPAIRS];
	int sv[NPAIRS][2], ready;
	struct urp_driver_info info;
	struct urp_stats st;

	drv = driver_new(&opts);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	cr_assert_leq(info.cq_entries, 32, "asked for 16 CQ entries, got %u", info.cq_entries);
	turn(drv, 0);
	for (int i = 0; i < NPAIRS; i++) {
		unix_pair(sv[i]);
		io[i] = reg_or_fail(drv, sv[i][0], interest);
	}
	if (interest & URP_WRITABLE) {
		/* 300 arm-time completions into 16 slots. */
		ready = turn_until_all(io, NPAIRS, URP_WRITABLE);
		cr_assert_eq(ready, NPAIRS, "%d of %d entries writable; first missing: %d", ready,
			     NPAIRS, first_missing(io, NPAIRS, URP_WRITABLE));
	}
	settle(drv);

	for (int round = 0; round < ROUNDS; round++) {
		/* A poll re-armed while its socket still held data may report that late (a CQE
		 * is a hint): clear such leftovers first, as a reader hitting EAGAIN would. */
		for (int i = 0; i < NPAIRS; i++)
			cr_assert_eq(drain_try_io(io[i], sv[i][0]), 0);
		for (int i = 0; i < NPAIRS; i++)
			write_all(sv[i][1], "r", 1);
		ready = turn_until_all(io, NPAIRS, URP_READABLE);
		st = driver_stats(drv);
		cr_assert_eq(ready, NPAIRS,
			     "round %d: %d of %d entries readable (first missing %d, word %#x); "
			     "cq_overflows %llu rearms %llu oneshot_files %llu",
			     round, ready, NPAIRS, first_missing(io, NPAIRS, URP_READABLE),
			     urp_io_word(io[first_missing(io, NPAIRS, URP_READABLE) < 0
						? 0
						: first_missing(io, NPAIRS, URP_READABLE)]),
			     (unsigned long long)st.cq_overflows, (unsigned long long)st.rearms,
			     (unsigned long long)st.oneshot_files);
		for (int i = 0; i < NPAIRS; i++) {
			assert_ready(io[i], URP_READABLE, URP_READ_CLOSED | URP_ERROR);
			cr_assert_eq(drain_try_io(io[i], sv[i][0]), 1);
		}
		settle(drv);
	}

	/* And one by one: each poll is alive (the burst rounds could hide a dead one behind a
	 * late hint). */
	settle(drv);
	for (int i = 0; i < NPAIRS; i++)
		cr_assert_eq(drain_try_io(io[i], sv[i][0]), 0);
	for (int i = 0; i < NPAIRS; i++) {
		write_all(sv[i][1], "1", 1);
		turn_until_ready(drv, io[i], URP_READABLE);
		assert_ready(io[i], URP_READABLE, URP_READ_CLOSED | URP_ERROR);
		cr_assert_eq(drain_try_io(io[i], sv[i][0]), 1);
	}

	st = driver_stats(drv);
	cr_assert_gt(st.cq_overflows, 0, "300 completions fit in a 16-entry CQ?");
	cr_assert_gt(st.rearms, 0, "overflowed polls were not re-armed");
	cr_assert_eq(st.oneshot_files, 0, "%llu sockets taken for unpollable files",
		     (unsigned long long)st.oneshot_files);
	cr_assert_eq(st.poll_errors, 0);
	cr_assert_eq(st.unknown_tokens, 0);
	for (int i = 0; i < NPAIRS; i++)
		cr_assert_eq(urp_deregister_close(io[i]), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	for (int i = 0; i < NPAIRS; i++)
		close(sv[i][1]);
}

Test(uring_overflow, cq_overflow_every_fd_still_delivers)
{
	overflow_rounds(0, URP_READABLE);
}

/* The polls overflow at arm time too (every socket is writable when armed). */
Test(uring_overflow, cq_overflow_at_arm_every_fd_still_delivers)
{
	overflow_rounds(0, URP_READABLE | URP_WRITABLE);
}

Test(uring_overflow, coop_cq_overflow_every_fd_still_delivers)
{
	overflow_rounds(URP_DRIVER_TIER_COOP, URP_READABLE | URP_WRITABLE);
}

Test(uring_overflow, basic_cq_overflow_every_fd_still_delivers)
{
	overflow_rounds(URP_DRIVER_TIER_BASIC, URP_READABLE | URP_WRITABLE);
}

/* ---- files that cannot be polled ---- */

static int temp_file(void)
{
	char path[] = "/tmp/uring_overflow.XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	write_all(fd, "file", 4);
	set_nonblock(fd);
	return fd;
}

/* fd (a file that cannot be polled) registered on a fresh driver: ready once with want, for
 * good, and the driver idles instead of re-arming it every turn. */
static void unpollable_file(int fd, unsigned flags, unsigned interest, unsigned want)
{
	struct urp_driver_opts opts = {.flags = flags};
	struct urp_stats before, after;
	struct urp_io *io;
	int sv[2];

	drv = driver_new(&opts);
	turn(drv, 0);
	io = reg_or_fail(drv, fd, interest);
	turn_until_ready(drv, io, want);
	for (int i = 0; i < TURN_TRIES && !driver_stats(drv).oneshot_files; i++)
		turn(drv, 10);
	settle(drv);
	assert_ready(io, want, ~want & URP_READY_ALL);
	before = driver_stats(drv);
	cr_assert_eq(before.oneshot_files, 1);
	cr_assert_eq(before.poll_errors, 0);

	/* Nothing more happens: no re-arm loop, non-blocking turns dispatch nothing, and a turn
	 * that may block does (it has nothing to return for). */
	for (int i = 0; i < 50; i++)
		cr_assert_eq(turn(drv, 0), 0, "turn %d dispatched events for a file", i);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(turn(drv, 20), 0, "a blocking turn dispatched events for a file");
	after = driver_stats(drv);
	cr_assert_eq(after.rearms, before.rearms, "the file's poll is re-armed forever");
	cr_assert_eq(after.events, before.events);
	assert_ready(io, want, ~want & URP_READY_ALL);

	/* And the driver still serves other fds. */
	unix_pair(sv);
	write_all(sv[1], "s", 1);
	{
		struct urp_io *sock = reg_or_fail(drv, sv[0], URP_READABLE);

		turn_until_ready(drv, sock, URP_READABLE);
		cr_assert_eq(urp_deregister_close(sock), 0);
	}
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	cr_assert_eq(driver_stats(drv).oneshot_files, 1);
	close(sv[1]);
}

static void regular_file(unsigned flags, unsigned interest, unsigned want)
{
	unpollable_file(temp_file(), flags, interest, want);
}

Test(uring_overflow, regular_file_reported_once)
{
	regular_file(0, URP_READABLE | URP_WRITABLE, URP_READABLE | URP_WRITABLE);
}

Test(uring_overflow, regular_file_read_interest_reported_once)
{
	regular_file(0, URP_READABLE, URP_READABLE);
}

Test(uring_overflow, coop_regular_file_reported_once)
{
	regular_file(URP_DRIVER_TIER_COOP, URP_READABLE | URP_WRITABLE,
		     URP_READABLE | URP_WRITABLE);
}

/* ---- character devices ---- */

static int open_device(const char *path, int flags)
{
	int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	return fd;
}

/* A tool started with >/dev/null that registers its stdout: the poll of a character device
 * without a poll method ends at once, every time. It used to be re-armed every turn, so an
 * idle driver spun at 100% CPU (~2M turns in 3 s). */
Test(uring_overflow, dev_null_does_not_spin_an_idle_driver)
{
	unpollable_file(open_device("/dev/null", O_RDWR), 0, URP_READABLE | URP_WRITABLE,
			URP_READABLE | URP_WRITABLE);
}

Test(uring_overflow, dev_null_stdout_write_interest_reported_once)
{
	unpollable_file(open_device("/dev/null", O_WRONLY), 0, URP_WRITABLE, URP_WRITABLE);
}

Test(uring_overflow, coop_dev_null_reported_once)
{
	unpollable_file(open_device("/dev/null", O_RDWR), URP_DRIVER_TIER_COOP,
			URP_READABLE | URP_WRITABLE, URP_READABLE | URP_WRITABLE);
}

Test(uring_overflow, basic_dev_null_reported_once)
{
	unpollable_file(open_device("/dev/null", O_RDWR), URP_DRIVER_TIER_BASIC,
			URP_READABLE | URP_WRITABLE, URP_READABLE | URP_WRITABLE);
}

Test(uring_overflow, dev_zero_reported_once)
{
	unpollable_file(open_device("/dev/zero", O_RDONLY), 0, URP_READABLE, URP_READABLE);
}

Test(uring_overflow, dev_full_reported_once)
{
	unpollable_file(open_device("/dev/full", O_RDWR), 0, URP_READABLE | URP_WRITABLE,
			URP_READABLE | URP_WRITABLE);
}

/* A character device that can be polled (a pty master) is not mistaken for one that cannot:
 * its poll stays armed, and each write on the other side is a new edge after a clear. */
Test(uring_overflow, pty_master_stays_polled)
{
	int master = open_device("/dev/ptmx", O_RDWR), slave;
	struct urp_stats st;
	struct urp_io *io;
	char name[64];

	cr_assert_eq(grantpt(master), 0);
	cr_assert_eq(unlockpt(master), 0);
	cr_assert_eq(ptsname_r(master, name, sizeof(name)), 0);
	slave = open_device(name, O_RDWR | O_NOCTTY);
	drv = driver_new(NULL);
	io = reg_or_fail(drv, master, URP_READABLE);
	settle(drv);
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(drain_try_io(io, master), 0);
		write_all(slave, "x\n", 2);
		turn_until_ready(drv, io, URP_READABLE);
		assert_ready(io, URP_READABLE, URP_ERROR);
		cr_assert_gt(drain_try_io(io, master), 0);
	}
	st = driver_stats(drv);
	cr_assert_eq(st.oneshot_files, 0, "a pty was taken for an unpollable file");
	cr_assert_eq(st.poll_errors, 0);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(slave);
}

/* Pollable character devices whose first completions overflow a tiny CQ: their fresh polls
 * end at once as an unpollable file's would, but the driver saw the CQ full and re-arms them
 * (taken for unpollable, they would keep their arm-time readiness for good and miss every
 * later edge). */
#define NPTYS 40

static void ptys_overflowed(unsigned flags)
{
	struct urp_driver_opts opts = {
	    .sq_entries = 16, .cq_entries = 16, .flags = URP_DRIVER_OVERCOMMIT | flags};
	int master[NPTYS], slave[NPTYS];
	struct urp_io *io[NPTYS];
	struct urp_stats st;
	char name[64];

	drv = driver_new(&opts);
	turn(drv, 0);
	for (int i = 0; i < NPTYS; i++) {
		master[i] = open_device("/dev/ptmx", O_RDWR);
		cr_assert_eq(grantpt(master[i]), 0);
		cr_assert_eq(unlockpt(master[i]), 0);
		cr_assert_eq(ptsname_r(master[i], name, sizeof(name)), 0);
		slave[i] = open_device(name, O_RDWR | O_NOCTTY);
		/* Writable when armed: 40 arm-time completions into 16 slots. */
		io[i] = reg_or_fail(drv, master[i], URP_READABLE | URP_WRITABLE);
	}
	cr_assert_eq(turn_until_all(io, NPTYS, URP_WRITABLE), NPTYS);
	settle(drv);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < NPTYS; i++)
			drain_try_io(io[i], master[i]);
		for (int i = 0; i < NPTYS; i++)
			write_all(slave[i], "x\n", 2);
		cr_assert_eq(turn_until_all(io, NPTYS, URP_READABLE), NPTYS,
			     "round %d: first pty missing its edge: %d", round,
			     first_missing(io, NPTYS, URP_READABLE));
		settle(drv);
	}
	st = driver_stats(drv);
	cr_assert_gt(st.cq_overflows, 0, "40 completions fit in a 16-entry CQ?");
	cr_assert_eq(st.oneshot_files, 0, "%llu ptys taken for unpollable files",
		     (unsigned long long)st.oneshot_files);
	for (int i = 0; i < NPTYS; i++)
		cr_assert_eq(urp_deregister_close(io[i]), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	for (int i = 0; i < NPTYS; i++)
		close(slave[i]);
}

Test(uring_overflow, pty_masters_under_cq_overflow_stay_polled)
{
	ptys_overflowed(0);
}

Test(uring_overflow, coop_pty_masters_under_cq_overflow_stay_polled)
{
	ptys_overflowed(URP_DRIVER_TIER_COOP);
}

Test(uring_overflow, basic_pty_masters_under_cq_overflow_stay_polled)
{
	ptys_overflowed(URP_DRIVER_TIER_BASIC);
}
