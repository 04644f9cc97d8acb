// SPDX-License-Identifier: MIT
/*
 * loop_tasks: the single-thread task loop (docs/design.md, "The task
 * loop").
 *
 * Order: tasks run in the order they were woken, once however often they were woken before
 * they ran, and a task woken while it runs runs again after the tasks already queued, so two
 * self-waking tasks alternate and a self-waking task cannot starve one woken from elsewhere.
 * Threads: a million wakes from 4 threads lose no run (every wake is followed by a run that
 * starts after it) and queue no task twice; a wake or a stop from another thread while the loop
 * goes idle is never lost. Lifetime: URP_TASK_DONE lets run() free its task (ASan catches a
 * later touch), stop works from a task and from another thread, and the loop runs again.
 * I/O: a task waiting with a readiness future and its waker reads everything a peer writes.
 *
 * The order log is written on the loop's thread only, and read after urp_loop_run() returned
 * (on the same thread, or after the runner thread reported its return).
 */
#include <signal.h>

#include "loop_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_tasks, .init = setup, .timeout = 120);

/* ---- a recording task ---- */

#define LOG_MAX 4096

static int order[LOG_MAX];
static int norder;

struct ttask {
	struct urp_task task;
	struct urp_loop *loop;
	int id;
	atomic_int runs;
	int self_wakes;	      /* wake itself from run() this many more times (-1: always) */
	int stop_on_run;      /* urp_loop_stop() in this run (1-based), 0: never */
	bool stop_each_run;   /* urp_loop_stop() in every run */
	struct ttask **wakes; /* woken, in this order, from its first run */
	int nwakes;
	struct ttask *watch; /* its run count is saved in watch_seen at the first run */
	atomic_int watch_seen;
	int stop_at_log; /* urp_loop_stop() once the log holds this many runs */
};

static int ttask_run(struct urp_task *task, void *arg)
{
	struct ttask *t = arg;
	int run = atomic_fetch_add(&t->runs, 1) + 1;

	if (norder < LOG_MAX)
		order[norder++] = t->id;
	if (run == 1) {
		for (int i = 0; i < t->nwakes; i++)
			urp_task_wake(&t->wakes[i]->task);
		if (t->watch)
			atomic_store(&t->watch_seen, atomic_load(&t->watch->runs));
	}
	if (t->self_wakes) {
		if (t->self_wakes > 0)
			t->self_wakes--;
		urp_task_wake(task);
	}
	if (t->stop_each_run || run == t->stop_on_run ||
	    (t->stop_at_log && norder == t->stop_at_log))
		urp_loop_stop(t->loop);
	return 0;
}

static void ttask_init(struct ttask *t, struct urp_loop *loop, int id)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->id = id;
	atomic_init(&t->runs, 0);
	atomic_init(&t->watch_seen, -1);
	urp_task_init(&t->task, loop, ttask_run, t);
}

static void log_reset(void)
{
	norder = 0;
}

static const char *ids_str(const int *ids, int n, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && len + 12 < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%d", i ? " " : "", ids[i]);
	if (n && len + 12 >= size)
		snprintf(buf + len, size - len, " ...");
	return buf;
}

/* The log is exactly want. */
static void assert_order(const int *want, int n)
{
	char got_s[512], want_s[512];
	bool same = norder == n;

	for (int i = 0; same && i < n; i++)
		same = order[i] == want[i];
	cr_assert(same, "tasks ran in the order [%s], wanted [%s]",
		  ids_str(order, norder, got_s, sizeof(got_s)),
		  ids_str(want, n, want_s, sizeof(want_s)));
}

static void run_here(struct urp_loop *loop)
{
	int ret = urp_loop_run(loop);

	cr_assert_eq(ret, 0, "urp_loop_run: %d (%s)", ret, urp_strerror(ret));
}

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
	pthread_t helper;
	atomic_int asked; /* the task asks the helper to wake it */
	atomic_int woken; /* the helper's urp_task_wake() returned */
	atomic_int runs;
	bool helper_timed_out;
	bool task_timed_out;
};

static void *rewake_helper_main(void *arg)
{
	struct remote_rewake *rr = arg;

	if (!WAIT_UNTIL(atomic_load(&rr->asked), BOUND_S)) {
		rr->helper_timed_out = true;
		return NULL;
	}
	urp_task_wake(&rr->task);
	atomic_store(&rr->woken, 1);
	return NULL;
}

static int rewake_run(struct urp_task *task, void *arg)
{
	struct remote_rewake *rr = arg;
	int run = atomic_fetch_add(&rr->runs, 1) + 1;

	(void)task;
	if (norder < LOG_MAX)
		order[norder++] = 0;
	if (run == 1) {
		atomic_store(&rr->asked, 1);
		if (!WAIT_UNTIL(atomic_load(&rr->woken), BOUND_S))
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
	atomic_init(&rr.asked, 0);
	atomic_init(&rr.woken, 0);
	atomic_init(&rr.runs, 0);
	urp_task_init(&rr.task, loop, rewake_run, &rr);
	ttask_init(&b, loop, 1);
	ttask_init(&c, loop, 2);
	cr_assert_eq(pthread_create(&rr.helper, NULL, rewake_helper_main, &rr), 0);
	urp_task_wake(&rr.task);
	urp_task_wake(&b.task);
	urp_task_wake(&c.task);

	run_here(loop);
	cr_assert_eq(pthread_join(rr.helper, NULL), 0);
	cr_assert_not(rr.helper_timed_out || rr.task_timed_out, "the helper's wake never came");
	assert_order((const int[]){0, 1, 2, 0}, 4);
	urp_loop_free(loop);
}

/* ---- FIFO across threads: a wake from another thread, then one from the loop's ---- */

struct cross_wake {
	struct urp_task task; /* the starter */
	struct ttask *remote; /* woken by the helper thread, first */
	struct ttask **local; /* then woken by the starter, on the loop's thread */
	int nlocal;
	atomic_int asked, woken;
	bool timed_out;
};

static void *cross_helper_main(void *arg)
{
	struct cross_wake *cw = arg;

	if (!WAIT_UNTIL(atomic_load(&cw->asked), BOUND_S)) {
		cw->timed_out = true;
		return NULL;
	}
	urp_task_wake(&cw->remote->task);
	atomic_store(&cw->woken, 1);
	return NULL;
}

static int cross_run(struct urp_task *task, void *arg)
{
	struct cross_wake *cw = arg;

	(void)task;
	if (norder < LOG_MAX)
		order[norder++] = 99;
	atomic_store(&cw->asked, 1);
	/* The remote wake has returned before any local wake below is made. */
	if (!WAIT_UNTIL(atomic_load(&cw->woken), BOUND_S))
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
	pthread_t helper;

	log_reset();
	ttask_init(&x, loop, 0);
	ttask_init(&b, loop, 1);
	ttask_init(&stopper, loop, 100);
	stopper.stop_on_run = 1;
	memset(&cw, 0, sizeof(cw));
	cw.remote = &x;
	cw.local = local;
	cw.nlocal = 2;
	atomic_init(&cw.asked, 0);
	atomic_init(&cw.woken, 0);
	urp_task_init(&cw.task, loop, cross_run, &cw);
	cr_assert_eq(pthread_create(&helper, NULL, cross_helper_main, &cw), 0);
	urp_task_wake(&cw.task);

	run_here(loop);
	cr_assert_eq(pthread_join(helper, NULL), 0);
	cr_assert_not(cw.timed_out, "the helper's wake never came");
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

Test(loop_tasks, million_wakes_from_4_threads_no_lost_or_duplicate_runs)
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
Test(loop_tasks, wake_from_another_thread_while_loop_goes_idle_is_never_lost)
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
Test(loop_tasks, stop_from_another_thread_and_run_again)
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

/* Stop from a task: the run returns 0 after the pass; a task woken during that pass waits for
 * the next urp_loop_run(), which runs it. */
Test(loop_tasks, stop_from_inside_a_task_and_run_again)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct ttask a, b, *wake_b[] = {&b};

	log_reset();
	ttask_init(&a, loop, 0);
	ttask_init(&b, loop, 1);
	a.stop_each_run = true;
	a.wakes = wake_b;
	a.nwakes = 1;
	b.stop_each_run = true;
	urp_task_wake(&a.task);

	run_here(loop);
	assert_order((const int[]){0}, 1);
	cr_assert_eq(atomic_load(&b.runs), 0, "a task woken in the stopping pass ran in it");

	run_here(loop);
	assert_order((const int[]){0, 1}, 2);

	urp_task_wake(&a.task);
	run_here(loop);
	assert_order((const int[]){0, 1, 0}, 3);
	cr_assert_eq(atomic_load(&a.runs), 2);
	cr_assert_eq(atomic_load(&b.runs), 1);
	urp_loop_free(loop);
}

Test(loop_tasks, bad_args)
{
	cr_assert_eq(urp_loop_new(NULL, NULL), -EINVAL);
	cr_assert_eq(urp_loop_run(NULL), -EINVAL);
	cr_assert_null(urp_loop_driver(NULL));
	urp_loop_stop(NULL);
	urp_loop_free(NULL);
}

/* ---- URP_TASK_DONE: run() frees its own task ---- */

enum done_mode { DONE_PLAIN, DONE_SELF_REWAKE, DONE_REMOTE_REWAKE };

struct done_task {
	struct urp_task task;
	enum done_mode mode;
	atomic_int *runs;
	atomic_int *asked, *woken; /* DONE_REMOTE_REWAKE: the helper wakes it during the run */
	bool *timed_out;
};

static int done_run(struct urp_task *task, void *arg)
{
	struct done_task *d = arg;

	atomic_fetch_add(d->runs, 1);
	if (d->mode == DONE_SELF_REWAKE)
		urp_task_wake(task);
	if (d->mode == DONE_REMOTE_REWAKE) {
		atomic_store(d->asked, 1);
		if (!WAIT_UNTIL(atomic_load(d->woken), BOUND_S))
			*d->timed_out = true;
	}
	/* The loop must not touch the task after this: ASan reports any access. */
	memset(d, 0x5a, sizeof(*d));
	free(d);
	return URP_TASK_DONE;
}

struct done_helper {
	struct done_task *task;
	atomic_int asked, woken;
	bool timed_out;
};

static void *done_helper_main(void *arg)
{
	struct done_helper *h = arg;

	if (!WAIT_UNTIL(atomic_load(&h->asked), BOUND_S)) {
		h->timed_out = true;
		return NULL;
	}
	urp_task_wake(&h->task->task);
	atomic_store(&h->woken, 1);
	return NULL;
}

static void done_frees_itself(enum done_mode mode)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct done_task *d = calloc(1, sizeof(*d));
	struct done_helper h;
	struct ttask ticker;
	pthread_t helper;
	atomic_int runs;

	cr_assert_not_null(d);
	atomic_init(&runs, 0);
	memset(&h, 0, sizeof(h));
	atomic_init(&h.asked, 0);
	atomic_init(&h.woken, 0);
	h.task = d;
	d->mode = mode;
	d->runs = &runs;
	d->asked = &h.asked;
	d->woken = &h.woken;
	d->timed_out = &h.timed_out;
	urp_task_init(&d->task, loop, done_run, d);
	/* A ticker keeps the loop going for a few more passes, in which a task re-queued by
	 * mistake would run again from freed memory. */
	log_reset();
	ttask_init(&ticker, loop, 1);
	ticker.self_wakes = 3;
	ticker.stop_on_run = 4;
	if (mode == DONE_REMOTE_REWAKE)
		cr_assert_eq(pthread_create(&helper, NULL, done_helper_main, &h), 0);
	urp_task_wake(&d->task);
	urp_task_wake(&ticker.task);

	run_here(loop);
	if (mode == DONE_REMOTE_REWAKE) {
		cr_assert_eq(pthread_join(helper, NULL), 0);
		cr_assert_not(h.timed_out, "the helper's wake never came");
	}
	cr_assert_eq(atomic_load(&runs), 1, "a task that returned URP_TASK_DONE ran %d times",
		     atomic_load(&runs));
	cr_assert_eq(atomic_load(&ticker.runs), 4);
	urp_loop_free(loop);
}

Test(loop_tasks, task_done_frees_itself)
{
	done_frees_itself(DONE_PLAIN);
}

Test(loop_tasks, task_done_frees_itself_when_it_woke_itself)
{
	done_frees_itself(DONE_SELF_REWAKE);
}

Test(loop_tasks, task_done_frees_itself_when_woken_by_another_thread_in_its_last_run)
{
	done_frees_itself(DONE_REMOTE_REWAKE);
}

/* ---- a task reading a socket: readiness future + task waker + try_io ---- */

#define READER_BYTES (1 << 20)

static unsigned char pattern_byte(size_t off)
{
	return (unsigned char)(off * 131u + (off >> 9) + 7u);
}

struct reader {
	struct urp_task task;
	struct urp_readiness fut;
	struct urp_io *io;
	int fd;
	bool waiting;	  /* fut is pending */
	size_t total;	  /* loop thread; read by the test once done */
	atomic_int parks; /* runs that ended with the future pending */
	atomic_int done;  /* EOF seen, entry deregistered */
	atomic_int error; /* first failure, as a negative code or a mismatch offset + 1 */
	char what[96];
};

static void reader_fail(struct reader *r, int code, const char *what)
{
	if (atomic_load(&r->error))
		return;
	snprintf(r->what, sizeof(r->what), "%s", what);
	atomic_store(&r->error, code ? code : -1);
}

/* The README idiom: wait with the future and the task's waker, then read through try_io. */
static int reader_run(struct urp_task *task, void *arg)
{
	struct reader *r = arg;
	struct urp_waker waker = urp_task_waker(task);
	unsigned char buf[4096];
	struct rw_op op = {.fd = r->fd, .buf = (char *)buf, .len = sizeof(buf)};
	struct urp_event ev;
	ssize_t n;
	int ret;

	if (atomic_load(&r->error) || atomic_load(&r->done))
		return 0;
	for (;;) {
		if (!r->waiting)
			urp_readiness_init(&r->fut, r->io, URP_READABLE);
		ret = urp_readiness_poll(&r->fut, &waker, &ev);
		if (ret == -EAGAIN) {
			r->waiting = true;
			atomic_fetch_add(&r->parks, 1);
			return 0;
		}
		r->waiting = false;
		if (ret < 0 || ev.shutdown) {
			reader_fail(r, ret ? ret : -ESHUTDOWN, "readiness future");
			return 0;
		}
		while ((n = urp_io_try_io(r->io, URP_READABLE, op_read, &op)) > 0) {
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] != pattern_byte(r->total + (size_t)i)) {
					reader_fail(r, (int)(r->total + (size_t)i) + 1,
						    "byte mismatch");
					return 0;
				}
			}
			r->total += (size_t)n;
		}
		if (n == 0) {
			ret = urp_deregister(r->io);
			if (ret)
				reader_fail(r, ret, "urp_deregister");
			atomic_store(&r->done, 1);
			return 0;
		}
		if (n != -EAGAIN) {
			reader_fail(r, (int)n, "try_io read");
			return 0;
		}
	}
}

Test(loop_tasks, task_with_readiness_future_reads_everything_a_peer_writes)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct loop_runner lr;
	struct reader r;
	unsigned char chunk[8192];
	unsigned x = 12345;
	size_t sent = 0;
	int sv[2];

	unix_pair(sv);
	memset(&r, 0, sizeof(r));
	r.fd = sv[0];
	r.io = reg_or_fail(urp_loop_driver(loop), sv[0], URP_READABLE);
	urp_task_init(&r.task, loop, reader_run, &r);
	loop_runner_start(&lr, loop, 1);
	urp_task_wake(&r.task);
	/* Nothing written yet: the task must end up waiting on its future. */
	cr_assert(WAIT_UNTIL(atomic_load(&r.parks) >= 1 || atomic_load(&r.error), BOUND_S),
		  "the reader task never waited on its future");
	cr_assert_eq(atomic_load(&r.error), 0, "%s: %d", r.what, atomic_load(&r.error));

	while (sent < READER_BYTES) {
		size_t len;
		ssize_t n;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		len = 1 + x % sizeof(chunk);
		if (len > READER_BYTES - sent)
			len = READER_BYTES - sent;
		for (size_t i = 0; i < len; i++)
			chunk[i] = pattern_byte(sent + i);
		n = write(sv[1], chunk, len);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = sv[1], .events = POLLOUT};

			cr_assert_eq(poll(&pfd, 1, (int)(BOUND_S * 1000)), 1,
				     "the reader task stopped reading (%zu of %zu bytes sent)",
				     sent, (size_t)READER_BYTES);
			continue;
		}
		cr_assert_gt(n, 0, "write: %s", strerror(errno));
		sent += (size_t)n;
	}
	cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);

	cr_assert(WAIT_UNTIL(atomic_load(&r.done) || atomic_load(&r.error), BOUND_S),
		  "the reader task did not see EOF");
	loop_runner_stop(&lr);
	loop_runner_join(&lr);
	cr_assert_eq(atomic_load(&r.error), 0, "%s: %d", r.what, atomic_load(&r.error));
	cr_assert_eq(r.total, (size_t)READER_BYTES, "read %zu of %zu bytes", r.total,
		     (size_t)READER_BYTES);
	cr_assert_geq(atomic_load(&r.parks), 1);
	close(sv[0]);
	close(sv[1]);
	urp_loop_free(loop);
}
