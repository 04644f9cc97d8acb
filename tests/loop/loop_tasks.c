// SPDX-License-Identifier: MIT
/*
 * loop_tasks: the order in which the single-thread task loop runs its tasks (docs/design.md,
 * "The task loop"). Tasks run in the order they were woken, once however often they were woken
 * before they ran, and a task woken while it runs runs again after the tasks already queued, so
 * two self-waking tasks alternate and a self-waking task cannot starve one woken from elsewhere.
 * Wakes and stops from other threads under load are loop_threads', the lifetime of tasks and
 * of runs loop_lifetime's, a task doing I/O loop_io's.
 */
#include <signal.h>

#include "task_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_tasks, .init = setup, .timeout = 120);

/* ---- FIFO order ---- */

#define NFIFO 8
static const int scrambled[NFIFO] = {5, 2, 7, 0, 3, 6, 1, 4};

Test(loop_tasks, fifo_order_woken_before_run)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask tasks[NFIFO], stopper;
	int want[NFIFO + 1];

	log_reset();
	for (int i = 0; i < NFIFO; i++)
		ttask_init(&tasks[i], loop, i);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	for (int i = 0; i < NFIFO; i++) {
		urp_task_wake(&tasks[scrambled[i]].task);
		want[i] = scrambled[i];
	}
	urp_task_wake(&stopper.task);
	want[NFIFO] = 100;
	cr_assert_eq(norder, 0, "a task ran before urp_loop_run()");

	run_here(loop);
	assert_order(want, NFIFO + 1);
	urp_loop_free(loop);
}

Test(loop_tasks, fifo_order_woken_from_a_task)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask tasks[NFIFO], starter, stopper, *wakes[NFIFO + 1];
	int want[NFIFO + 2];

	log_reset();
	for (int i = 0; i < NFIFO; i++)
		ttask_init(&tasks[i], loop, i);
	ttask_init(&starter, loop, 99);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	want[0] = 99;
	for (int i = 0; i < NFIFO; i++) {
		wakes[i] = &tasks[scrambled[i]];
		want[i + 1] = scrambled[i];
	}
	wakes[NFIFO] = &stopper;
	want[NFIFO + 1] = 100;
	starter.wakes = wakes;
	starter.nwakes = NFIFO + 1;
	urp_task_wake(&starter.task);

	run_here(loop);
	assert_order(want, NFIFO + 2);
	urp_loop_free(loop);
}

/* The loop runs on its own thread and idles in the driver while this thread wakes. */
Test(loop_tasks, fifo_order_woken_from_another_thread_while_running)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask tasks[NFIFO], stopper;
	struct loop_runner lr;
	int want[NFIFO + 1];

	log_reset();
	for (int i = 0; i < NFIFO; i++)
		ttask_init(&tasks[i], loop, i);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	loop_runner_start(&lr, loop, 1);
	for (int i = 0; i < NFIFO; i++) {
		urp_task_wake(&tasks[scrambled[i]].task);
		want[i] = scrambled[i];
	}
	urp_task_wake(&stopper.task);
	want[NFIFO] = 100;

	cr_assert(WAIT_UNTIL(atomic_load(&lr.returned) == 1, BOUND_S),
		  "the stopper task did not run (or the loop did not stop)");
	loop_runner_join(&lr);
	assert_order(want, NFIFO + 1);
	urp_loop_free(loop);
}

Test(loop_tasks, woken_before_run_start_run_once_it_starts)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask tasks[3];
	struct loop_runner lr;

	log_reset();
	for (int i = 0; i < 3; i++) {
		ttask_init(&tasks[i], loop, i);
		urp_task_wake(&tasks[i].task);
	}
	for (int i = 0; i < 3; i++)
		cr_assert_eq(atomic_load(&tasks[i].runs), 0, "task %d ran with no loop running", i);

	loop_runner_start(&lr, loop, 1);
	cr_assert(WAIT_UNTIL(atomic_load(&tasks[0].runs) && atomic_load(&tasks[1].runs) &&
				 atomic_load(&tasks[2].runs),
			     BOUND_S),
		  "tasks woken before urp_loop_run() did not run once it started (runs %d %d %d)",
		  atomic_load(&tasks[0].runs), atomic_load(&tasks[1].runs),
		  atomic_load(&tasks[2].runs));
	loop_runner_stop(&lr);
	loop_runner_join(&lr);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(atomic_load(&tasks[i].runs), 1, "task %d ran %d times", i,
			     atomic_load(&tasks[i].runs));
	assert_order((const int[]){0, 1, 2}, 3);
	urp_loop_free(loop);
}

/* ---- woken several times before it runs: runs once ---- */

Test(loop_tasks, woken_several_times_before_run_runs_once)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask a, b, c, stopper;

	log_reset();
	ttask_init(&a, loop, 0);
	ttask_init(&b, loop, 1);
	ttask_init(&c, loop, 2);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	urp_task_wake(&a.task);
	urp_task_wake(&b.task);
	urp_task_wake(&a.task);
	urp_task_wake(&c.task);
	urp_task_wake(&a.task);
	urp_task_wake(&b.task);
	urp_task_wake(&stopper.task);

	run_here(loop);
	assert_order((const int[]){0, 1, 2, 100}, 4);
	urp_loop_free(loop);
}

Test(loop_tasks, woken_several_times_from_a_task_runs_once)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask a, b, c, starter, stopper;
	struct ttask *wakes[] = {&a, &b, &a, &c, &a, &b, &c, &stopper};

	log_reset();
	ttask_init(&a, loop, 0);
	ttask_init(&b, loop, 1);
	ttask_init(&c, loop, 2);
	ttask_init(&starter, loop, 99);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	starter.wakes = wakes;
	starter.nwakes = (int)(sizeof(wakes) / sizeof(wakes[0]));
	urp_task_wake(&starter.task);

	run_here(loop);
	assert_order((const int[]){99, 0, 1, 2, 100}, 5);
	urp_loop_free(loop);
}

/* ---- woken while it runs: runs again, after the tasks already queued ---- */

Test(loop_tasks, woken_by_itself_while_running_runs_after_queued)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask a, b, c;

	log_reset();
	ttask_init(&a, loop, 0);
	ttask_init(&b, loop, 1);
	ttask_init(&c, loop, 2);
	a.self_wakes = 1;
	a.stop_on_run = 2;
	urp_task_wake(&a.task);
	urp_task_wake(&b.task);
	urp_task_wake(&c.task);

	run_here(loop);
	assert_order((const int[]){0, 1, 2, 0}, 4);
	urp_loop_free(loop);
}

/* A task whose first run has another thread wake it, and waits until that wake returned. */
struct remote_rewake {
	struct urp_task task;
	struct urp_loop *loop;
	struct remote_waker helper; /* the task asks it to wake it */
	atomic_int runs;
	bool task_timed_out;
};

static int rewake_run(struct urp_task *task, void *arg)
{
	struct remote_rewake *rr = arg;
	int run = atomic_fetch_add(&rr->runs, 1) + 1;

	(void)task;
	if (norder < LOG_MAX)
		order[norder++] = 0;
	if (run == 1) {
		if (!remote_wake(&rr->helper))
			rr->task_timed_out = true;
	} else {
		urp_loop_stop(rr->loop);
	}
	return 0;
}

Test(loop_tasks, woken_by_another_thread_while_running_runs_after_queued)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct remote_rewake rr;
	struct ttask b, c;

	log_reset();
	memset(&rr, 0, sizeof(rr));
	rr.loop = loop;
	atomic_init(&rr.runs, 0);
	urp_task_init(&rr.task, loop, rewake_run, &rr);
	ttask_init(&b, loop, 1);
	ttask_init(&c, loop, 2);
	remote_waker_start(&rr.helper, &rr.task);
	urp_task_wake(&rr.task);
	urp_task_wake(&b.task);
	urp_task_wake(&c.task);

	run_here(loop);
	remote_waker_join(&rr.helper);
	cr_assert_not(rr.helper.timed_out || rr.task_timed_out, "the helper's wake never came");
	assert_order((const int[]){0, 1, 2, 0}, 4);
	urp_loop_free(loop);
}

/* ---- FIFO across threads: a wake from another thread, then one from the loop's ---- */

struct cross_wake {
	struct urp_task task;	    /* the starter */
	struct remote_waker remote; /* wakes its task from the helper thread, first */
	struct ttask **local;	    /* then woken by the starter, on the loop's thread */
	int nlocal;
	bool timed_out;
};

static int cross_run(struct urp_task *task, void *arg)
{
	struct cross_wake *cw = arg;

	(void)task;
	if (norder < LOG_MAX)
		order[norder++] = 99;
	/* The remote wake has returned before any local wake below is made. */
	if (!remote_wake(&cw->remote))
		cw->timed_out = true;
	for (int i = 0; i < cw->nlocal; i++)
		urp_task_wake(&cw->local[i]->task);
	return 0;
}

/*
 * The header promises "in the order woken": a task whose wake from another thread returned
 * before a task on the loop's thread woke another must run first.
 */
Test(loop_tasks, wake_from_another_thread_runs_before_a_later_local_wake)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask x, b, stopper, *local[] = {&b, &stopper};
	struct cross_wake cw;

	log_reset();
	ttask_init(&x, loop, 0);
	ttask_init(&b, loop, 1);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	memset(&cw, 0, sizeof(cw));
	cw.local = local;
	cw.nlocal = 2;
	urp_task_init(&cw.task, loop, cross_run, &cw);
	remote_waker_start(&cw.remote, &x.task);
	urp_task_wake(&cw.task);

	run_here(loop);
	remote_waker_join(&cw.remote);
	cr_assert_not(cw.timed_out || cw.remote.timed_out, "the helper's wake never came");
	/* The stopper may leave x unrun in this pass: run once more to collect it. */
	if (atomic_load(&x.runs) == 0) {
		stopper.stop_on_run = 2;
		urp_task_wake(&stopper.task);
		run_here(loop);
	}
	urp_loop_free(loop);
	cr_assert_geq(norder, 4);
	cr_assert(order[1] == 0 && order[2] == 1,
		  "the task woken from another thread ran after a task woken later on the loop's "
		  "thread: order [%d %d %d %d], wanted [99 0 1 100]",
		  order[0], order[1], order[2], order[3]);
}

/* ---- fairness ---- */

#define ALTERNATE_RUNS 2000

Test(loop_tasks, two_self_waking_tasks_alternate)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask a, b;
	char around[512];

	log_reset();
	ttask_init(&a, loop, 0);
	ttask_init(&b, loop, 1);
	a.self_wakes = b.self_wakes = -1;
	a.stop_at_log = b.stop_at_log = ALTERNATE_RUNS;
	urp_task_wake(&a.task);
	urp_task_wake(&b.task);

	run_here(loop);
	cr_assert_geq(norder, ALTERNATE_RUNS);
	for (int i = 0; i < ALTERNATE_RUNS; i++) {
		int from = i < 8 ? 0 : i - 8;

		cr_assert_eq(order[i], i % 2, "run %d was task %d, wanted %d (runs %d.. [%s])", i,
			     order[i], i % 2, from,
			     ids_str(order + from, 16, around, sizeof(around)));
	}
	urp_loop_free(loop);
}

/* A guard: the self-waking task stops the loop after this many runs if nothing else did. */
#define STARVE_GUARD_RUNS 2000000

struct starve_helper {
	struct ttask *spinner, *victim;
	atomic_int runs_after_wake; /* spinner's runs once the wake of victim returned */
	bool timed_out;
};

static void *starve_helper_main(void *arg)
{
	struct starve_helper *h = arg;

	/* Let the spinner have the loop to itself for a while first. */
	if (!WAIT_UNTIL(atomic_load(&h->spinner->runs) >= 100, BOUND_S)) {
		h->timed_out = true;
		return NULL;
	}
	urp_task_wake(&h->victim->task);
	atomic_store(&h->runs_after_wake, atomic_load(&h->spinner->runs));
	return NULL;
}

/*
 * After the wake returns, the spinner may finish the pass under way (whose queue was taken
 * before the wake landed) and run once more in the next pass, which then runs the victim: at
 * most 2 spinner runs between the wake and the victim.
 */
Test(loop_tasks, self_waking_task_does_not_starve_a_remote_wake)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct starve_helper h;
	struct ttask spinner, victim;
	pthread_t helper;
	int before, seen;

	log_reset();
	ttask_init(&spinner, loop, 0);
	ttask_init(&victim, loop, 1);
	spinner.self_wakes = -1;
	spinner.stop_on_run = STARVE_GUARD_RUNS;
	victim.stop_on_run = 1;
	victim.watch = &spinner;
	memset(&h, 0, sizeof(h));
	h.spinner = &spinner;
	h.victim = &victim;
	atomic_init(&h.runs_after_wake, -1);
	cr_assert_eq(pthread_create(&helper, NULL, starve_helper_main, &h), 0);
	urp_task_wake(&spinner.task);

	run_here(loop);
	cr_assert_eq(pthread_join(helper, NULL), 0);
	cr_assert_not(h.timed_out, "the self-waking task did not reach 100 runs");
	cr_assert_eq(atomic_load(&victim.runs), 1,
		     "the task woken from another thread never ran: %d runs of the self-waking "
		     "task starved it",
		     atomic_load(&spinner.runs));
	before = atomic_load(&h.runs_after_wake);
	seen = atomic_load(&victim.watch_seen);
	cr_assert_leq(seen - before, 2,
		      "the self-waking task ran %d times between the remote wake and the woken "
		      "task's run (at most 2 expected)",
		      seen - before);
	urp_loop_free(loop);
}
