/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the loop_* tests (the task loop, blocking waits, spawned drivers), on top of
 * uring_util.h: bounded waits on conditions, a spawned driver, a thread that runs urp_loop_run(),
 * and a way to see that a thread really is parked in the futex of urp_io_wait().
 *
 * Nothing here sleeps and hopes: WAIT_UNTIL() yields until its condition holds or its bound
 * passes, and the caller asserts the condition afterwards. Helper threads never assert (a
 * Criterion assertion must fail on the test's own thread); they record what they saw.
 */
#ifndef URP_TESTS_LOOP_UTIL_H
#define URP_TESTS_LOOP_UTIL_H

#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

#include <linux/futex.h>

#include "uring_util.h"

/* Generous bounds: reached only when something is broken (or a sanitizer is very slow). */
#define BOUND_S 10.0
#define WAIT_MS ((int)(BOUND_S * 1000)) /* the same, as a urp_io_wait() timeout */

/* Yield until cond holds or seconds pass; evaluates to cond's last value. */
#define WAIT_UNTIL(cond, seconds)                                                                  \
	({                                                                                         \
		double deadline_ = now_s() + (seconds);                                            \
		bool ok_;                                                                          \
		while (!(ok_ = (cond)) && now_s() < deadline_)                                     \
			sched_yield();                                                             \
		ok_;                                                                               \
	})

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Spin (no yield) until cond holds or seconds pass: for races whose window is a few hundred
 * nanoseconds wide, where a yield would let the other side through it. */
#define SPIN_UNTIL(cond, seconds)                                                                  \
	({                                                                                         \
		double deadline_ = now_s() + (seconds);                                            \
		bool ok_;                                                                          \
		unsigned spins_ = 0;                                                               \
		while (!(ok_ = (cond)) && (++spins_ & 1023 || now_s() < deadline_))                \
			cpu_relax();                                                               \
		ok_;                                                                               \
	})

static inline pid_t gettid_compat(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/*
 * 1 when thread tid sits in futex(FUTEX_WAIT_BITSET_PRIVATE) (where urp_io_wait() parks), 0
 * when it does not, -1 when /proc cannot tell (then callers go on without knowing).
 */
static inline int parked_in_futex(pid_t tid)
{
	char path[64], line[256];
	unsigned long op = 0;
	long nr;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	line[n] = '\0';
	/* "nr arg1 arg2 ...": the futex op is the second argument. "running" when on a CPU. */
	if (sscanf(line, "%ld %*s %lx", &nr, &op) != 2)
		return 0;
	return nr == SYS_futex && (op & ~(unsigned long)FUTEX_CLOCK_REALTIME) ==
				      (FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG);
}

/* Wait until thread tid is parked in a futex wait (bounded). False only when it provably is
 * not after the bound; true when it is, or when /proc cannot say. */
static inline bool wait_parked(pid_t tid)
{
	int state = parked_in_futex(tid);

	if (state < 0)
		return true;
	return WAIT_UNTIL(parked_in_futex(tid) == 1, BOUND_S);
}

/* ---- spawned drivers and loops ---- */

/* A driver turning on a thread of its own (urp_driver_spawn); urp_driver_join() ends it. */
static inline struct urp_driver *spawn_or_fail(void)
{
	struct urp_driver *d = NULL;
	int ret = urp_driver_spawn(&d, NULL);

	cr_assert_eq(ret, 0, "urp_driver_spawn: %d (%s)", ret, urp_strerror(ret));
	cr_assert_not_null(d);
	return d;
}

static inline struct urp_loop *loop_new_or_fail(void)
{
	struct urp_loop *loop = NULL;
	int ret = urp_loop_new(&loop, NULL);

	cr_assert_eq(ret, 0, "urp_loop_new: %d (%s)", ret, urp_strerror(ret));
	cr_assert_not_null(loop);
	cr_assert_not_null(urp_loop_driver(loop));
	return loop;
}

/*
 * A thread that calls urp_loop_run() up to rounds times: after each return it stores the result
 * and bumps returned, then waits for the test to allow the next round (go > returned).
 */
struct loop_runner {
	pthread_t thread;
	struct urp_loop *loop;
	int rounds;
	atomic_int go;	     /* rounds the test allows to start */
	atomic_int returned; /* urp_loop_run() calls that returned */
	atomic_int last_ret; /* the last one's result */
	atomic_int bad_ret;  /* the first result other than 0, or 0 */
};

static inline void *loop_runner_main(void *arg)
{
	struct loop_runner *lr = arg;

	for (int i = 0; i < lr->rounds; i++) {
		int ret;

		/* The test either allows the round or gives up (go < 0). */
		while (atomic_load(&lr->go) <= i) {
			if (atomic_load(&lr->go) < 0)
				return NULL;
			sched_yield();
		}
		ret = urp_loop_run(lr->loop);
		atomic_store(&lr->last_ret, ret);
		if (ret != 0 && atomic_load(&lr->bad_ret) == 0)
			atomic_store(&lr->bad_ret, ret);
		atomic_fetch_add(&lr->returned, 1);
	}
	return NULL;
}

/* Start a runner for rounds calls; the first one starts at once. */
static inline void loop_runner_start(struct loop_runner *lr, struct urp_loop *loop, int rounds)
{
	memset(lr, 0, sizeof(*lr));
	lr->loop = loop;
	lr->rounds = rounds;
	atomic_init(&lr->go, 1);
	atomic_init(&lr->returned, 0);
	atomic_init(&lr->last_ret, 0);
	atomic_init(&lr->bad_ret, 0);
	cr_assert_eq(pthread_create(&lr->thread, NULL, loop_runner_main, lr), 0);
}

/* urp_loop_stop() from this thread, then a bounded wait for urp_loop_run() to return 0. */
static inline void loop_runner_stop(struct loop_runner *lr)
{
	int target = atomic_load(&lr->returned) + 1;

	urp_loop_stop(lr->loop);
	cr_assert(WAIT_UNTIL(atomic_load(&lr->returned) >= target, BOUND_S),
		  "urp_loop_run() still running %.0f s after urp_loop_stop() from another thread",
		  BOUND_S);
	cr_assert_eq(atomic_load(&lr->last_ret), 0, "urp_loop_run: %d", atomic_load(&lr->last_ret));
}

/* Let the runner leave (no more rounds) and join it. */
static inline void loop_runner_join(struct loop_runner *lr)
{
	atomic_store(&lr->go, -1);
	cr_assert_eq(pthread_join(lr->thread, NULL), 0);
	cr_assert_eq(atomic_load(&lr->bad_ret), 0, "urp_loop_run returned %d",
		     atomic_load(&lr->bad_ret));
}

#endif /* URP_TESTS_LOOP_UTIL_H */
