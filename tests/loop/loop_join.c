// SPDX-License-Identifier: MIT
/*
 * loop_join: urp_driver_join() stops the driver's thread and frees everything: the thread, the
 * ring and the unpark eventfd, and the fds of deregister_close()d entries (LeakSanitizer in the
 * ASan build; thread and fd counts everywhere); also when it comes right after a turn woken by
 * an unpark.
 */
#include <signal.h>

#include "loop_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_join, .init = setup, .timeout = 120);

static int count_dir(const char *path)
{
	int n = dir_entries_below(path, INT_MAX);

	cr_assert_geq(n, 0, "opendir %s: %s", path, strerror(errno));
	/* The directory's own descriptor is one of /proc/self/fd's entries while we read it. */
	return strcmp(path, "/proc/self/fd") == 0 ? n - 1 : n;
}

struct join_job {
	struct urp_driver *drv;
	atomic_int done;
};

static void *join_main(void *arg)
{
	struct join_job *job = arg;

	urp_driver_join(job->drv);
	atomic_store(&job->done, 1);
	return NULL;
}

/* urp_driver_join() on a helper thread, bounded: false if it did not return. */
static bool join_bounded(struct urp_driver *d, bool spin)
{
	struct join_job job = {.drv = d};
	pthread_t thread;

	atomic_init(&job.done, 0);
	cr_assert_eq(pthread_create(&thread, NULL, join_main, &job), 0);
	if (!(spin ? SPIN_UNTIL(atomic_load(&job.done), BOUND_S)
		   : WAIT_UNTIL(atomic_load(&job.done), BOUND_S)))
		return false;
	cr_assert_eq(pthread_join(thread, NULL), 0);
	return true;
}

static void *noop_main(void *arg)
{
	return arg;
}

Test(loop_join, join_stops_the_thread_and_frees_everything)
{
	int threads_before, fds_before;
	struct urp_driver *d;
	struct urp_io *io[6];
	struct urp_event ev;
	int sv[6][2], ret;

	/* A first thread starts whatever helper threads a runtime adds (TSan has one). */
	run_on_thread(noop_main, NULL);
	threads_before = count_dir("/proc/self/task");
	fds_before = count_dir("/proc/self/fd");
	d = spawn_or_fail();
	cr_assert_eq(count_dir("/proc/self/task"), threads_before + 1, "no driver thread");
	for (int i = 0; i < 6; i++) {
		unix_pair(sv[i]);
		io[i] = reg_or_fail(d, sv[i][0], URP_READABLE);
	}
	/* The thread turns: a wait is served. */
	write_all(sv[0][1], "x", 1);
	ret = urp_io_wait(io[0], URP_READABLE, WAIT_MS, &ev);
	cr_assert_eq(ret, 0, "wait: %d", ret);
	/* 0, 1: deregistered; 2, 3: deregistered, the driver closes; 4, 5: still live. */
	cr_assert_eq(urp_deregister(io[0]), 0);
	cr_assert_eq(urp_deregister(io[1]), 0);
	cr_assert_eq(urp_deregister_close(io[2]), 0);
	cr_assert_eq(urp_deregister_close(io[3]), 0);

	cr_assert(join_bounded(d, false), "urp_driver_join() did not return");
	cr_assert_eq(count_dir("/proc/self/task"), threads_before,
		     "the driver thread outlived urp_driver_join()");
	for (int i = 2; i <= 3; i++)
		cr_assert_not(fd_is_open(sv[i][0]),
			      "fd of a deregister_close'd entry still open after join");
	for (int i = 0; i < 6; i++) {
		if (i != 2 && i != 3)
			close(sv[i][0]);
		close(sv[i][1]);
	}
	cr_assert_eq(count_dir("/proc/self/fd"), fds_before,
		     "descriptors left behind (the ring, the unpark eventfd?)");
}

/*
 * urp_driver_join() right after the driver thread finished a turn woken by an unpark: the stop
 * lands while the thread heads for its next blocking turn, and must still end it. The join runs
 * on this thread (no time lost creating one); a watchdog writes to a registered socket if it
 * has not returned after a while, which ends the blocking turn and records the hang.
 */
struct join_watchdog {
	pthread_t thread;
	int fd;
	atomic_int done;
	atomic_int rescued;
};

static void *join_watchdog_main(void *arg)
{
	struct join_watchdog *wd = arg;

	if (!WAIT_UNTIL(atomic_load(&wd->done), 2.0)) {
		atomic_store(&wd->rescued, 1);
		if (write(wd->fd, "x", 1) != 1)
			atomic_store(&wd->rescued, 2);
	}
	return NULL;
}

Test(loop_join, join_right_after_a_turn_returns)
{
	int rounds = (int)env_count("URP_JOIN_RACE_ROUNDS", 1000);

	for (int i = 0; i < rounds; i++) {
		struct urp_driver *d = spawn_or_fail();
		struct join_watchdog wd;
		uint64_t turns;
		int sv[2];

		unix_pair(sv);
		reg_or_fail(d, sv[0], URP_READABLE);
		memset(&wd, 0, sizeof(wd));
		wd.fd = sv[1];
		atomic_init(&wd.done, 0);
		atomic_init(&wd.rescued, 0);
		/* The first turn enables the ring and arms the poll; an unpark ends it. */
		cr_assert_eq(urp_driver_unpark(d), 0);
		cr_assert(WAIT_UNTIL(driver_stats(d).turns >= 1, BOUND_S),
			  "round %d: no first turn", i);
		cr_assert_eq(pthread_create(&wd.thread, NULL, join_watchdog_main, &wd), 0);
		turns = driver_stats(d).turns;
		cr_assert_eq(urp_driver_unpark(d), 0);
		cr_assert(SPIN_UNTIL(driver_stats(d).turns > turns, BOUND_S),
			  "round %d: the unpark did not end the blocking turn", i);
		urp_driver_join(d);
		atomic_store(&wd.done, 1);
		cr_assert_eq(pthread_join(wd.thread, NULL), 0);
		close(sv[0]);
		close(sv[1]);
		cr_assert_eq(atomic_load(&wd.rescued), 0,
			     "round %d: urp_driver_join() right after a turn hung until a socket "
			     "event ended the driver thread's blocking turn (its stop and unpark "
			     "were lost)",
			     i);
	}
}
