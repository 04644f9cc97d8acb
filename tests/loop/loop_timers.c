// SPDX-License-Identifier: MIT
/*
 * loop_timers: the loop's timers (urp_timer_*; docs/design.md, "Timers").
 *
 * Order: callbacks in deadline order, equal deadlines in start order, never before their
 * deadline; a deadline moved later or earlier fires at its new time only. Stop: idempotent,
 * also from another timer's callback due in the same pass, and a stopped timer never fires.
 * Re-arm: from its own callback, 0 meaning the next pass (a timer restarting itself with 0
 * does not starve tasks). Scale: a million timers, half of them stopped. Sleep: an idle loop
 * with a pending timer blocks in one turn until it is due. Threads: tasks woken from other
 * threads start and stop timers (TSan). Lifetime: a stopped or fired timer may be freed, a
 * loop stopped with timers active returns and frees cleanly (ASan).
 *
 * Times are read with CLOCK_MONOTONIC only to check "never early"; no test asserts that
 * something was fast.
 */
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "loop_util.h"

TestSuite(loop_timers, .timeout = 60);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- a recording timer ---- */

#define LOG_MAX 64

struct rec {
	struct urp_timer timer;
	struct urp_loop *loop;
	int id;
	uint64_t started_ns, timeout_ms; /* of the last start */
	int fired;
	uint64_t fired_ns;
	int restarts;		 /* start itself again from its callback this many times */
	uint64_t restart_ms;	 /* with this timeout */
	struct rec *stop_other;	 /* stop this one from the callback */
	struct rec *start_other; /* start this one (0 ms) from the callback */
	bool stop_loop;		 /* urp_loop_stop() from the callback */
};

static int log_ids[LOG_MAX], nlog;

static void rec_start(struct rec *r, uint64_t timeout_ms)
{
	r->started_ns = mono_ns();
	r->timeout_ms = timeout_ms;
	cr_assert_eq(urp_timer_start(&r->timer, timeout_ms), 0);
	cr_assert(urp_timer_active(&r->timer));
}

static void rec_fire(struct urp_timer *t, void *arg)
{
	struct rec *r = arg;

	cr_assert_eq((void *)t, (void *)&r->timer);
	cr_assert_not(urp_timer_active(t), "a timer is inactive when its callback runs");
	r->fired++;
	r->fired_ns = mono_ns();
	cr_assert_geq(r->fired_ns, r->started_ns + r->timeout_ms * 1000000u,
		      "timer %d fired %.3f ms early", r->id,
		      (double)(r->started_ns + r->timeout_ms * 1000000u - r->fired_ns) / 1e6);
	if (nlog < LOG_MAX)
		log_ids[nlog++] = r->id;
	if (r->stop_other) {
		urp_timer_stop(&r->stop_other->timer);
		urp_timer_stop(&r->stop_other->timer); /* idempotent */
	}
	if (r->start_other)
		rec_start(r->start_other, 0);
	if (r->restarts > 0) {
		r->restarts--;
		rec_start(r, r->restart_ms);
	}
	if (r->stop_loop)
		urp_loop_stop(r->loop);
}

static void rec_init(struct rec *r, struct urp_loop *loop, int id)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->id = id;
	urp_timer_init(&r->timer, loop, rec_fire, r);
	cr_assert_not(urp_timer_active(&r->timer));
}

static struct urp_stats loop_stats(struct urp_loop *loop)
{
	struct urp_stats st;

	cr_assert_eq(urp_driver_stats(urp_loop_driver(loop), &st), 0);
	return st;
}

/* ---- order ---- */

Test(loop_timers, fire_in_deadline_order_equal_deadlines_in_start_order)
{
	struct urp_loop *loop = loop_new_or_fail();
	/* Started in this order with these timeouts: fire by deadline, then by start. */
	static const uint64_t timeouts[] = { 30, 10, 20, 10, 0, 30, 0, 20 };
	static const int want[] = { 4, 6, 1, 3, 2, 7, 0, 5 };
	struct rec r[8], last;

	nlog = 0;
	for (int i = 0; i < 8; i++)
		rec_init(&r[i], loop, i);
	/* Equal deadlines need equal start times: the clock must not move between starts. */
	for (int i = 0; i < 8; i++)
		rec_start(&r[i], timeouts[i]);
	rec_init(&last, loop, 99);
	last.stop_loop = true;
	rec_start(&last, 60);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_eq(nlog, 9);
	/* Equal timeouts started in different nanoseconds have different deadlines, ordered as
	 * started, so the expectation holds either way. */
	for (int i = 0; i < 8; i++)
		cr_assert_eq(log_ids[i], want[i], "fired #%d: timer %d, want %d", i, log_ids[i],
			     want[i]);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(r[i].fired, 1);
	urp_loop_free(loop);
}

/* A deadline moved later fires at its new time only (not at the old one); moved earlier, it
 * fires at the new, earlier time. */
Test(loop_timers, moved_deadlines_fire_once_at_their_new_time)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct rec later, earlier, last;

	nlog = 0;
	rec_init(&later, loop, 1);
	rec_init(&earlier, loop, 2);
	rec_init(&last, loop, 3);
	rec_start(&later, 10);
	rec_start(&later, 80); /* pushed back: must not fire at 10 ms */
	rec_start(&earlier, 500);
	rec_start(&earlier, 20); /* pulled in */
	last.stop_loop = true;
	rec_start(&last, 150);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_eq(nlog, 3);
	cr_assert_eq(log_ids[0], 2);
	cr_assert_eq(log_ids[1], 1);
	cr_assert_eq(log_ids[2], 3);
	cr_assert_eq(later.fired, 1);
	cr_assert_eq(earlier.fired, 1);
	urp_loop_free(loop);
}

/* ---- stop ---- */

Test(loop_timers, stopped_timers_never_fire_and_stop_is_idempotent)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct rec a, b, c, last;

	nlog = 0;
	rec_init(&a, loop, 1);
	rec_init(&b, loop, 2);
	rec_init(&c, loop, 3);
	rec_init(&last, loop, 4);
	urp_timer_stop(&a.timer); /* never started */
	rec_start(&a, 0);
	rec_start(&b, 5);
	rec_start(&c, 10);
	urp_timer_stop(&a.timer);
	urp_timer_stop(&a.timer);
	urp_timer_stop(&c.timer);
	cr_assert_not(urp_timer_active(&a.timer));
	cr_assert_not(urp_timer_active(&c.timer));
	cr_assert(urp_timer_active(&b.timer));
	last.stop_loop = true;
	rec_start(&last, 40);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_eq(a.fired + c.fired, 0);
	cr_assert_eq(b.fired, 1);
	cr_assert_not(urp_timer_active(&b.timer), "a fired timer stays inactive");
	urp_loop_free(loop);
}

/* Two timers due in the same pass: the first one's callback stops the second, which then
 * must not run (its stop returned before its turn came). */
Test(loop_timers, stop_from_another_timers_callback_in_the_same_pass)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct rec first, second, last;

	nlog = 0;
	rec_init(&first, loop, 1);
	rec_init(&second, loop, 2);
	rec_init(&last, loop, 3);
	first.stop_other = &second;
	rec_start(&first, 10);
	rec_start(&second, 10);
	/* Both are due before the loop first looks: one pass fires both. */
	usleep(30 * 1000);
	last.stop_loop = true;
	rec_start(&last, 20);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_eq(first.fired, 1);
	cr_assert_eq(second.fired, 0, "a timer stopped by another's callback still fired");
	urp_loop_free(loop);
}

/* ---- re-arm ---- */

Test(loop_timers, rearm_from_its_own_callback)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct rec r;

	nlog = 0;
	rec_init(&r, loop, 1);
	r.restarts = 5;
	r.restart_ms = 3;
	rec_start(&r, 3);
	while (r.fired < 6) {
		struct rec stop;

		rec_init(&stop, loop, 2);
		stop.stop_loop = true;
		rec_start(&stop, 50);
		cr_assert_eq(urp_loop_run(loop), 0);
		urp_timer_stop(&stop.timer);
	}
	cr_assert_eq(r.fired, 6);
	cr_assert_not(urp_timer_active(&r.timer));
	urp_loop_free(loop);
}

struct spinner {
	struct urp_task task;
	struct urp_loop *loop;
	int runs;
};

static int spinner_run(struct urp_task *task, void *arg)
{
	struct spinner *s = arg;

	if (++s->runs == 10)
		urp_loop_stop(s->loop);
	else
		urp_task_wake(task);
	return 0;
}

/* A timer restarting itself with 0 fires once per pass, not in a loop within one pass: the
 * tasks still run between its firings. */
Test(loop_timers, zero_timeout_fires_on_the_next_pass_without_starving_tasks)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct spinner s = { .loop = loop };
	struct rec r;

	rec_init(&r, loop, 1);
	r.restarts = 1000000;
	r.restart_ms = 0;
	rec_start(&r, 0);
	urp_task_init(&s.task, loop, spinner_run, &s);
	urp_task_wake(&s.task);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_eq(s.runs, 10);
	/* One firing per pass: at most one more than the passes the task ran in. */
	cr_assert_geq(r.fired, 9);
	cr_assert_leq(r.fired, 11, "%d firings in 10 passes", r.fired);
	urp_timer_stop(&r.timer);
	urp_loop_free(loop);
}

/* ---- scale ---- */

#define MANY 1000000

struct many {
	struct urp_timer timer;
	/* The deadline lies in [earliest, latest]: clock reads just before and after the
	 * start, plus the timeout. */
	uint64_t earliest, latest;
	bool fired;
};

static struct many *many;
static struct many *many_prev;
static uint32_t many_fired, many_misordered;
static bool many_early;

static void many_fire(struct urp_timer *t, void *arg)
{
	struct many *m = arg;

	if (mono_ns() < m->earliest)
		many_early = true;
	/* Deadline order: this one's deadline cannot be surely before the previous one's. */
	if (many_prev && m->latest < many_prev->earliest)
		many_misordered++;
	many_prev = m;
	m->fired = true;
	many_fired++;
}

static void many_start(struct many *m, uint64_t ms)
{
	m->earliest = mono_ns() + ms * 1000000u;
	cr_assert_eq(urp_timer_start(&m->timer, ms), 0);
	m->latest = mono_ns() + ms * 1000000u;
}

static void stop_loop_cb(struct urp_timer *t, void *arg)
{
	urp_loop_stop(arg);
}

Test(loop_timers, a_million_timers_half_stopped_fire_in_order)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct urp_timer end;
	uint32_t seed = 12345;

	many = calloc(MANY, sizeof(*many));
	cr_assert_not_null(many);
	many_prev = NULL;
	many_misordered = 0;
	many_early = false;
	many_fired = 0;
	for (uint32_t i = 0; i < MANY; i++) {
		seed = seed * 1103515245u + 12345u;
		urp_timer_init(&many[i].timer, loop, many_fire, &many[i]);
		many_start(&many[i], (seed >> 8) % 400);
	}
	for (uint32_t i = 0; i < MANY; i += 2)
		urp_timer_stop(&many[i].timer);
	/* Some of the stopped ones restarted, later: they fire once, at their new deadline. */
	for (uint32_t i = 0; i < MANY; i += 20)
		many_start(&many[i], 450);
	urp_timer_init(&end, loop, stop_loop_cb, loop);
	cr_assert_eq(urp_timer_start(&end, 600), 0);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_not(many_early, "a timer fired before its deadline");
	cr_assert_eq(many_misordered, 0, "timers fired out of deadline order");
	cr_assert_eq(many_fired, MANY / 2 + MANY / 20);
	for (uint32_t i = 0; i < MANY; i++)
		cr_assert_eq(many[i].fired, i % 2 == 1 || i % 20 == 0, "timer %u", i);
	urp_loop_free(loop);
	free(many);
}

/* ---- sleeping ---- */

/* An idle loop with one timer 300 ms away blocks until it is due: a few turns, not a poll
 * loop, and no CPU to speak of while it waits. */
Test(loop_timers, idle_loop_sleeps_until_the_deadline)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct timespec cpu0, cpu1;
	struct urp_stats st0, st1;
	struct rec r;

	rec_init(&r, loop, 1);
	r.stop_loop = true;
	st0 = loop_stats(loop);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
	rec_start(&r, 300);
	cr_assert_eq(urp_loop_run(loop), 0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
	st1 = loop_stats(loop);
	cr_assert_eq(r.fired, 1);
	/* The first turn arms the unpark poll and returns its completion-free result; the next
	 * one sleeps until the deadline. A polling loop would turn thousands of times. */
	cr_assert_leq(st1.turns - st0.turns, 4, "%llu turns for one timer",
		      (unsigned long long)(st1.turns - st0.turns));
	cr_assert_lt((cpu1.tv_sec - cpu0.tv_sec) * 1000000000L + (cpu1.tv_nsec - cpu0.tv_nsec),
		     100000000L, "the loop burnt CPU while it waited 300 ms");
	urp_loop_free(loop);
}

/* ---- threads ---- */

#define RELAY_WAKES 20000

/* A task woken from other threads starts and stops timers on the loop's thread. */
struct relay {
	struct urp_task task;
	struct urp_loop *loop;
	struct urp_timer timers[8];
	atomic_int runs;
	int fired;
	atomic_int done;
};

static void relay_fire(struct urp_timer *t, void *arg)
{
	struct relay *r = arg;

	r->fired++;
}

static int relay_run(struct urp_task *task, void *arg)
{
	struct relay *r = arg;
	int run = atomic_fetch_add(&r->runs, 1);

	urp_timer_start(&r->timers[run % 8], (uint64_t)(run % 3));
	urp_timer_stop(&r->timers[(run + 3) % 8]);
	if (atomic_load(&r->done) == 2 && !urp_timer_active(&r->timers[0]))
		urp_loop_stop(r->loop);
	return 0;
}

static void *relay_waker(void *arg)
{
	struct relay *r = arg;

	for (int i = 0; i < RELAY_WAKES; i++)
		urp_task_wake(&r->task);
	atomic_fetch_add(&r->done, 1);
	urp_task_wake(&r->task);
	return NULL;
}

static void relay_keepalive(struct urp_timer *t, void *arg)
{
	struct relay *r = arg;

	/* Keep waking the task until it stops the loop (both wakers done, timers[0] idle). Not
	 * "until timers[0] is idle": the run this wake causes may start timers[0] again (run % 8
	 * == 0), and its firing wakes nobody; the loop then waited for ever (seen once). */
	urp_task_wake(&r->task);
	urp_timer_start(t, 1);
}

Test(loop_timers, tasks_woken_from_other_threads_start_and_stop_timers)
{
	struct relay r = { 0 };
	struct urp_timer keepalive;
	pthread_t th[2];

	r.loop = loop_new_or_fail();
	for (int i = 0; i < 8; i++)
		urp_timer_init(&r.timers[i], r.loop, relay_fire, &r);
	urp_timer_init(&keepalive, r.loop, relay_keepalive, &r);
	cr_assert_eq(urp_timer_start(&keepalive, 1), 0);
	urp_task_init(&r.task, r.loop, relay_run, &r);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, relay_waker, &r), 0);
	cr_assert_eq(urp_loop_run(r.loop), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert_gt(atomic_load(&r.runs), 0);
	cr_assert_gt(r.fired, 0);
	for (int i = 0; i < 8; i++)
		urp_timer_stop(&r.timers[i]);
	urp_timer_stop(&keepalive);
	urp_loop_free(r.loop);
}

/* ---- lifetime and arguments ---- */

/* Timers freed once stopped or fired; a loop stopped with timers still active returns, and
 * freeing it drops them without calling them (ASan: no touch of the freed ones). */
Test(loop_timers, freed_after_stop_or_fire_and_loop_freed_with_timers_active)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct rec *gone = malloc(sizeof(*gone)), *fired = malloc(sizeof(*fired)), pending, last;

	cr_assert(gone && fired);
	rec_init(gone, loop, 1);
	rec_init(fired, loop, 2);
	rec_init(&pending, loop, 3);
	rec_init(&last, loop, 4);
	rec_start(gone, 5);
	urp_timer_stop(&gone->timer);
	free(gone);
	rec_start(fired, 0);
	rec_start(&pending, 100000);
	last.stop_loop = true;
	rec_start(&last, 20);
	cr_assert_eq(urp_loop_run(loop), 0);
	cr_assert_eq(fired->fired, 1);
	free(fired);
	cr_assert(urp_timer_active(&pending.timer), "the loop stopped with it active");
	urp_loop_free(loop);
	cr_assert_eq(pending.fired, 0);
}

Test(loop_timers, bad_arguments_einval)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct urp_timer t, none;

	memset(&none, 0, sizeof(none));
	cr_assert_eq(urp_timer_start(NULL, 1), -EINVAL);
	cr_assert_eq(urp_timer_start(&none, 1), -EINVAL, "an uninitialised timer started");
	urp_timer_init(&t, NULL, stop_loop_cb, NULL);
	cr_assert_eq(urp_timer_start(&t, 1), -EINVAL, "a timer without a loop started");
	urp_timer_init(&t, loop, NULL, NULL);
	cr_assert_eq(urp_timer_start(&t, 1), -EINVAL, "a timer without a callback started");
	urp_timer_init(&t, loop, stop_loop_cb, loop);
	cr_assert_eq(urp_timer_start(&t, UINT64_MAX), -EINVAL);
	cr_assert_not(urp_timer_active(&t));
	cr_assert_not(urp_timer_active(NULL));
	urp_timer_stop(NULL);
	urp_loop_free(loop);
}
