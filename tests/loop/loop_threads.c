// SPDX-License-Identifier: MIT
/*
 * loop_threads: the task loop woken and stopped from other threads (docs/design.md, "The task
 * loop"). A million wakes from 4 threads lose no run (every wake is followed by a run that
 * starts after it) and queue no task twice; a wake or a stop from another thread while the loop
 * goes idle is never lost, and the loop runs again after each stop.
 */
#include <signal.h>

#include "task_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_threads, .init = setup, .timeout = 120);

/* ---- a million wakes from 4 threads ---- */

#define STRESS_TASKS   64
#define STRESS_WAKERS  4
#define STRESS_DEFAULT 1000000L

struct stress_task {
	struct urp_task task;
	struct stress_task *next_task; /* woken from the loop thread now and then */
	atomic_long seq;	       /* remote wakes so far: bumped before each wake */
	atomic_long seen;	       /* highest seq read at the start of a run */
	atomic_long runs;
	atomic_long local_wakes; /* wakes from other tasks (the loop's thread) */
	atomic_int in_run;
	atomic_long overlaps;  /* runs that found another run of it in progress */
	atomic_long went_back; /* runs that read a seq below an earlier run's */
};

static int stress_run(struct urp_task *task, void *arg)
{
	struct stress_task *t = arg;
	long seq, runs;

	(void)task;
	if (atomic_exchange(&t->in_run, 1))
		atomic_fetch_add(&t->overlaps, 1);
	/* Read after the run started: every wake whose bump this misses must cause another run. */
	seq = atomic_load(&t->seq);
	if (seq < atomic_load(&t->seen))
		atomic_fetch_add(&t->went_back, 1);
	else
		atomic_store(&t->seen, seq);
	runs = atomic_fetch_add(&t->runs, 1) + 1;
	/* Mix in wakes from the loop's own thread (its local queue). */
	if (runs % 8 == 0) {
		atomic_fetch_add(&t->next_task->local_wakes, 1);
		urp_task_wake(&t->next_task->task);
	}
	atomic_store(&t->in_run, 0);
	return 0;
}

struct stress_waker {
	pthread_t thread;
	struct stress_task *tasks;
	long wakes;
	unsigned seed;
	unsigned pause_mask;
};

static void *stress_waker_main(void *arg)
{
	struct stress_waker *w = arg;
	unsigned x = w->seed;

	for (long i = 0; i < w->wakes; i++) {
		struct stress_task *t;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		t = &w->tasks[x % STRESS_TASKS];
		atomic_fetch_add(&t->seq, 1);
		urp_task_wake(&t->task);
		/* A pause of random length, so that wakes find their task idle, queued and
		 * running alike, not only queued. */
		for (unsigned spin = (x >> 8) & w->pause_mask; spin; spin--)
			cpu_relax();
	}
	return NULL;
}

static bool all_seen(struct stress_task *tasks)
{
	for (int i = 0; i < STRESS_TASKS; i++)
		if (atomic_load(&tasks[i].seen) != atomic_load(&tasks[i].seq))
			return false;
	return true;
}

Test(loop_threads, million_wakes_from_4_threads_no_lost_or_duplicate_runs)
{
	long total = env_count("URP_LOOP_STRESS_WAKES", STRESS_DEFAULT);
	struct urp_loop *loop = loop_new_or_fail();
	static struct stress_task tasks[STRESS_TASKS];
	struct stress_waker wakers[STRESS_WAKERS];
	long wakes = 0, runs = 0, local = 0;
	struct loop_runner lr;
	double t0 = now_s();

	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < STRESS_TASKS; i++) {
		tasks[i].next_task = &tasks[(i + 1) % STRESS_TASKS];
		urp_task_init(&tasks[i].task, loop, stress_run, &tasks[i]);
	}
	loop_runner_start(&lr, loop, 1);
	for (int i = 0; i < STRESS_WAKERS; i++) {
		wakers[i].tasks = tasks;
		wakers[i].wakes = total / STRESS_WAKERS + (i < total % STRESS_WAKERS);
		wakers[i].seed = 0x9e3779b9u * (unsigned)(i + 1);
		wakers[i].pause_mask = (unsigned)env_count("URP_LOOP_STRESS_PAUSE", 63);
		cr_assert_eq(pthread_create(&wakers[i].thread, NULL, stress_waker_main, &wakers[i]),
			     0);
	}
	for (int i = 0; i < STRESS_WAKERS; i++)
		cr_assert_eq(pthread_join(wakers[i].thread, NULL), 0);

	/* Every task must get to see its last wake: the run after it must start. */
	if (!WAIT_UNTIL(all_seen(tasks), BOUND_S)) {
		for (int i = 0; i < STRESS_TASKS; i++)
			cr_expect_eq(atomic_load(&tasks[i].seen), atomic_load(&tasks[i].seq),
				     "task %d: last wake (seq %ld) lost; its runs saw at most %ld "
				     "(%ld runs)",
				     i, atomic_load(&tasks[i].seq), atomic_load(&tasks[i].seen),
				     atomic_load(&tasks[i].runs));
		cr_assert_fail("lost wakes: a task woken from another thread never ran again");
	}
	loop_runner_stop(&lr);
	loop_runner_join(&lr);

	for (int i = 0; i < STRESS_TASKS; i++) {
		struct stress_task *t = &tasks[i];
		long seq = atomic_load(&t->seq), r = atomic_load(&t->runs);
		long lw = atomic_load(&t->local_wakes);

		cr_assert_eq(atomic_load(&t->overlaps), 0, "task %d ran twice at once (%ld times)",
			     i, atomic_load(&t->overlaps));
		cr_assert_eq(atomic_load(&t->went_back), 0, "task %d: a run read an older seq", i);
		cr_assert_leq(r, seq + lw,
			      "task %d ran %ld times for %ld wakes (%ld remote, %ld local): queued "
			      "twice",
			      i, r, seq + lw, seq, lw);
		cr_assert_geq(r, 1, "task %d never ran", i);
		wakes += seq;
		runs += r;
		local += lw;
	}
	cr_assert_eq(wakes, total);
	cr_log_info("%ld remote + %ld local wakes, %ld runs, in %.2f s", wakes, local, runs,
		    now_s() - t0);
	urp_loop_free(loop);
}

/* ---- the loop going idle: a wake or a stop from another thread is never lost ---- */

struct pingpong {
	struct urp_task task;
	atomic_long seq;
	atomic_long seen;
};

static int pingpong_run(struct urp_task *task, void *arg)
{
	struct pingpong *p = arg;

	(void)task;
	atomic_store(&p->seen, atomic_load(&p->seq));
	return 0;
}

/*
 * One wake at a time from this thread, the next one as soon as the previous run is seen (a
 * spin, not a sleep): the wake lands while the loop finishes its pass and heads for a blocking
 * turn. Every wake must get its run.
 */
Test(loop_threads, wake_from_another_thread_while_loop_goes_idle_is_never_lost)
{
	long rounds = env_count("URP_LOOP_PINGPONG_ROUNDS", 200000);
	struct urp_loop *loop = loop_new_or_fail();
	struct loop_runner lr;
	struct pingpong p;

	memset(&p, 0, sizeof(p));
	urp_task_init(&p.task, loop, pingpong_run, &p);
	loop_runner_start(&lr, loop, 1);
	for (long i = 1; i <= rounds; i++) {
		atomic_store(&p.seq, i);
		urp_task_wake(&p.task);
		cr_assert(SPIN_UNTIL(atomic_load(&p.seen) == i, BOUND_S),
			  "round %ld: the task woken from another thread never ran (the loop "
			  "stays parked in the driver with the task queued)",
			  i);
	}
	loop_runner_stop(&lr);
	loop_runner_join(&lr);
	urp_loop_free(loop);
}

/*
 * urp_loop_stop() from another thread right after a task ran, many times over one loop: each
 * urp_loop_run() returns 0, and the loop runs again.
 */
Test(loop_threads, stop_from_another_thread_and_run_again)
{
	int rounds = (int)env_count("URP_LOOP_STOP_ROUNDS", 2000);
	struct urp_loop *loop = loop_new_or_fail();
	struct loop_runner lr;
	struct ttask t;

	ttask_init(&t, loop, 0);
	loop_runner_start(&lr, loop, rounds);
	for (int i = 0; i < rounds; i++) {
		urp_task_wake(&t.task);
		cr_assert(SPIN_UNTIL(atomic_load(&t.runs) == i + 1, BOUND_S),
			  "round %d: the woken task did not run", i);
		/* Stop at once: the loop is between the task's run and its next turn. */
		urp_loop_stop(loop);
		cr_assert(
		    SPIN_UNTIL(atomic_load(&lr.returned) == i + 1, BOUND_S),
		    "round %d: urp_loop_run() still running %.0f s after urp_loop_stop() from "
		    "another thread",
		    i, BOUND_S);
		cr_assert_eq(atomic_load(&lr.last_ret), 0, "round %d: urp_loop_run: %d", i,
			     atomic_load(&lr.last_ret));
		atomic_fetch_add(&lr.go, 1);
	}
	loop_runner_join(&lr);
	cr_assert_eq(atomic_load(&t.runs), rounds);
	urp_loop_free(loop);
}
