// SPDX-License-Identifier: MIT
/*
 * loop_lifetime: the lifetime of tasks and of urp_loop_run() (docs/design.md, "The task loop").
 * A stop from inside a task ends the run after the pass, and the loop runs again; URP_TASK_DONE
 * lets run() free its own task, also when it was woken again meanwhile, by itself or by another
 * thread (ASan catches a later touch); bad arguments are refused.
 */
#include <signal.h>
#include <stdlib.h>

#include "task_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_lifetime, .init = setup, .timeout = 120);

/* ---- stopping and running again ---- */

/* Stop from a task: the run returns 0 after the pass; a task woken during that pass waits for
 * the next urp_loop_run(), which runs it. */
Test(loop_lifetime, stop_from_inside_a_task_and_run_again)
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

/* A task deregisters a listening socket, closes it and stops the loop: once the run returns,
 * the driver's poll no longer holds the socket's file, so it no longer listens, though the loop
 * is not freed. (Without the stopping turn the cancel stayed queued until urp_loop_free(), and
 * the socket took connections nobody would accept.) */
struct closer {
	struct urp_task task;
	struct urp_loop *loop;
	struct urp_io *io;
	int fd;
};

static int closer_run(struct urp_task *task, void *arg)
{
	struct closer *c = arg;

	(void)task;
	cr_assert_eq(urp_deregister(c->io), 0);
	close(c->fd);
	urp_loop_stop(c->loop);
	return 0;
}

Test(loop_lifetime, deregistrations_of_the_stopping_pass_reach_the_kernel_before_run_returns)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct sockaddr_in addr;
	struct closer c = {.loop = loop};
	int fd;

	c.fd = loopback_listener(&addr, 16);
	cr_assert_eq(urp_register(urp_loop_driver(loop), c.fd, URP_READABLE, &c.io), 0);
	/* The poll reaches the kernel (this thread turns the loop's driver, as run_here() will). */
	cr_assert_geq(urp_driver_turn(urp_loop_driver(loop), 0), 0);
	urp_task_init(&c.task, loop, closer_run, &c);
	urp_task_wake(&c.task);
	run_here(loop);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), -1,
		     "the closed listener still took a connection after urp_loop_run() returned");
	cr_assert_eq(errno, ECONNREFUSED, "connect: %s", strerror(errno));
	close(fd);
	urp_loop_free(loop);
}

Test(loop_lifetime, bad_args)
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
	struct remote_waker *helper; /* DONE_REMOTE_REWAKE: wakes it during the run */
	bool *timed_out;
};

static int done_run(struct urp_task *task, void *arg)
{
	struct done_task *d = arg;

	atomic_fetch_add(d->runs, 1);
	if (d->mode == DONE_SELF_REWAKE)
		urp_task_wake(task);
	if (d->mode == DONE_REMOTE_REWAKE && !remote_wake(d->helper))
		*d->timed_out = true;
	/* The loop must not touch the task after this: ASan reports any access. */
	memset(d, 0x5a, sizeof(*d));
	free(d);
	return URP_TASK_DONE;
}

static void done_frees_itself(enum done_mode mode)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct done_task *d = calloc(1, sizeof(*d));
	struct remote_waker helper;
	bool timed_out = false;
	struct ttask ticker;
	atomic_int runs;

	cr_assert_not_null(d);
	atomic_init(&runs, 0);
	d->mode = mode;
	d->runs = &runs;
	d->helper = &helper;
	d->timed_out = &timed_out;
	urp_task_init(&d->task, loop, done_run, d);
	/* A ticker keeps the loop going for a few more passes, in which a task re-queued by
	 * mistake would run again from freed memory. */
	log_reset();
	ttask_init(&ticker, loop, 1);
	ticker.self_wakes = 3;
	ticker.stop_on_run = 4;
	if (mode == DONE_REMOTE_REWAKE)
		remote_waker_start(&helper, &d->task);
	urp_task_wake(&d->task);
	urp_task_wake(&ticker.task);

	run_here(loop);
	if (mode == DONE_REMOTE_REWAKE) {
		remote_waker_join(&helper);
		cr_assert_not(helper.timed_out || timed_out, "the helper's wake never came");
	}
	cr_assert_eq(atomic_load(&runs), 1, "a task that returned URP_TASK_DONE ran %d times",
		     atomic_load(&runs));
	cr_assert_eq(atomic_load(&ticker.runs), 4);
	urp_loop_free(loop);
}

Test(loop_lifetime, task_done_frees_itself)
{
	done_frees_itself(DONE_PLAIN);
}

Test(loop_lifetime, task_done_frees_itself_when_it_woke_itself)
{
	done_frees_itself(DONE_SELF_REWAKE);
}

Test(loop_lifetime, task_done_frees_itself_when_woken_by_another_thread_in_its_last_run)
{
	done_frees_itself(DONE_REMOTE_REWAKE);
}
