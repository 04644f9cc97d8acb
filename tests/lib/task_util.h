/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the suites of the task loop (loop_tasks, loop_threads, loop_lifetime), on top
 * of loop_util.h: a recording task, whose runs append its id to one order log, and a thread that
 * wakes a task from outside the loop when asked.
 *
 * The order log is written on the loop's thread only, and read after urp_loop_run() returned
 * (on the same thread, or after the runner thread reported its return).
 */
#ifndef URP_TESTS_TASK_UTIL_H
#define URP_TESTS_TASK_UTIL_H

#include "loop_util.h"

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

static inline int ttask_run(struct urp_task *task, void *arg)
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

static inline void ttask_init(struct ttask *t, struct urp_loop *loop, int id)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->id = id;
	atomic_init(&t->runs, 0);
	atomic_init(&t->watch_seen, -1);
	urp_task_init(&t->task, loop, ttask_run, t);
}

static inline void log_reset(void)
{
	norder = 0;
}

static inline const char *ids_str(const int *ids, int n, char *buf, size_t size)
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
static inline void assert_order(const int *want, int n)
{
	char got_s[512], want_s[512];
	bool same = norder == n;

	for (int i = 0; same && i < n; i++)
		same = order[i] == want[i];
	cr_assert(same, "tasks ran in the order [%s], wanted [%s]",
		  ids_str(order, norder, got_s, sizeof(got_s)),
		  ids_str(want, n, want_s, sizeof(want_s)));
}

static inline void run_here(struct urp_loop *loop)
{
	int ret = urp_loop_run(loop);

	cr_assert_eq(ret, 0, "urp_loop_run: %d (%s)", ret, urp_strerror(ret));
}

/* ---- a wake from another thread ---- */

/*
 * A thread that wakes task once asked (remote_wake()), then reports that its urp_task_wake()
 * returned. timed_out: nobody asked within BOUND_S.
 */
struct remote_waker {
	pthread_t thread;
	struct urp_task *task;
	atomic_int asked;
	atomic_int woken;
	bool timed_out;
};

static inline void *remote_waker_main(void *arg)
{
	struct remote_waker *rw = arg;

	if (!WAIT_UNTIL(atomic_load(&rw->asked), BOUND_S)) {
		rw->timed_out = true;
		return NULL;
	}
	urp_task_wake(rw->task);
	atomic_store(&rw->woken, 1);
	return NULL;
}

static inline void remote_waker_start(struct remote_waker *rw, struct urp_task *task)
{
	memset(rw, 0, sizeof(*rw));
	rw->task = task;
	atomic_init(&rw->asked, 0);
	atomic_init(&rw->woken, 0);
	cr_assert_eq(pthread_create(&rw->thread, NULL, remote_waker_main, rw), 0);
}

/* Ask for the wake and wait (bounded) until it returned; false when it never came. Called on
 * the loop's thread, from a task: never asserts. */
static inline bool remote_wake(struct remote_waker *rw)
{
	atomic_store(&rw->asked, 1);
	return WAIT_UNTIL(atomic_load(&rw->woken), BOUND_S);
}

static inline void remote_waker_join(struct remote_waker *rw)
{
	cr_assert_eq(pthread_join(rw->thread, NULL), 0);
}

#endif /* URP_TESTS_TASK_UTIL_H */
