/* SPDX-License-Identifier: MIT */
/*
 * The task loop: a single-thread executor over one driver. Tasks are caller-owned; a woken task
 * is queued once, runs on the loop's thread in the order woken, and, if woken while it runs,
 * runs again after the tasks already queued (no task starves another).
 *
 * Task state (atomic):  IDLE -> QUEUED -> RUNNING -> IDLE
 *                                           |  wake
 *                                           v
 *                                RUNNING|NOTIFIED -> QUEUED (at the tail) after run()
 *
 * A task is on a queue only while QUEUED, so its one link serves both queues: the loop's own
 * FIFO (wakes on the loop thread) and a Treiber stack of wakes from other threads, taken whole
 * and reversed each pass, then unparking the driver.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/atomic.h"
#include "../../core/debug.h"
#include "../../core/list.h"
#include "../upcalls.h"
#include "loop.h"

#define TASK_IDLE     0u
#define TASK_QUEUED   1u
#define TASK_RUNNING  2u
#define TASK_NOTIFIED 4u

struct task {
	struct urp__snode link;	/* on the loop's FIFO, or on its stack of remote wakes */
	struct urp_loop *loop;
	urp_task_fn run;
	void *arg;
	uint32_t state;
};

_Static_assert(sizeof(struct task) <= sizeof(struct urp_task), "struct urp_task too small");
_Static_assert(_Alignof(struct task) <= _Alignof(struct urp_task), "urp_task under-aligned");

static struct task *to_task(struct urp_task *t)
{
	return (struct task *)t->opaque;
}

static bool on_loop_thread(const struct urp_loop *loop)
{
	/* Pairs with the release store in urp_loop_run(). */
	return urp__load_acquire(&loop->running) && pthread_equal(pthread_self(), loop->thread);
}

#ifdef URP_DEBUG
void urp__loop_assert_thread(const struct urp_loop *loop, const char *call)
{
	urp__debug_assert(!urp__load_acquire(&loop->running) || on_loop_thread(loop), call,
			  "called on a thread other than the one running the loop");
}
#endif

static void local_append(struct urp_loop *loop, struct task *task)
{
	task->link.next = NULL;
	if (loop->tail)
		loop->tail->link.next = &task->link;
	else
		loop->head = task;
	loop->tail = task;
	loop->queued++;
}

static void take_remote(struct urp_loop *loop);

static void enqueue(struct task *task)
{
	struct urp_loop *loop = task->loop;

	if (on_loop_thread(loop)) {
		/* Wakes from other threads that already returned come first: FIFO overall. */
		take_remote(loop);
		local_append(loop, task);
		return;
	}
	urp__stack_push(&loop->remote, &task->link);
	urp_driver_unpark(loop->drv);
}

void urp_task_init(struct urp_task *t, struct urp_loop *loop, urp_task_fn run, void *arg)
{
	struct task *task = to_task(t);

	memset(t, 0, sizeof(*t));
	task->loop = loop;
	task->run = run;
	task->arg = arg;
}

void urp_task_wake(struct urp_task *t)
{
	struct task *task = to_task(t);
	uint32_t cur, next;

	cur = urp__load_acquire(&task->state);
	do {
		if (cur == TASK_QUEUED || cur == (TASK_RUNNING | TASK_NOTIFIED))
			return;
		next = cur == TASK_IDLE ? TASK_QUEUED : TASK_RUNNING | TASK_NOTIFIED;
	} while (!urp__cas_acq_rel(&task->state, &cur, next));
	if (next == TASK_QUEUED)
		enqueue(task);
}

static void wake_task(void *arg)
{
	urp_task_wake(arg);
}

struct urp_waker urp_task_waker(struct urp_task *task)
{
	return (struct urp_waker){ wake_task, task };
}

static void take_remote(struct urp_loop *loop)
{
	struct urp__snode *node, *next;

	for (node = urp__stack_take_fifo(&loop->remote); node; node = next) {
		next = node->next;
		local_append(loop, urp__container_of(node, struct task, link));
	}
}

/* After run(): back to IDLE, or to the tail of the queue if woken meanwhile. */
static void task_ran(struct urp_loop *loop, struct task *task)
{
	uint32_t cur = urp__load_acquire(&task->state), next;

	do {
		next = cur & TASK_NOTIFIED ? TASK_QUEUED : TASK_IDLE;
	} while (!urp__cas_acq_rel(&task->state, &cur, next));
	if (next == TASK_QUEUED) {
		take_remote(loop);
		local_append(loop, task);
	}
}

/* Run the tasks queued when the pass began; those woken meanwhile wait for the next pass. */
static void run_pass(struct urp_loop *loop)
{
	size_t n = loop->queued;
	struct task *task;

	while (n-- && (task = loop->head)) {
		loop->head = task->link.next ? urp__container_of(task->link.next, struct task, link)
					     : NULL;
		if (!loop->head)
			loop->tail = NULL;
		loop->queued--;
		/* Only the loop moves a task out of QUEUED: wakes leave it alone. */
		urp__store_release(&task->state, TASK_RUNNING);
		if (task->run((struct urp_task *)task, task->arg) != URP_TASK_DONE)
			task_ran(loop, task);
	}
}

int urp_loop_run(struct urp_loop *loop)
{
	int ret = 0;

	if (!loop)
		return -EINVAL;
	/* The thread that first turned the driver owns it: run nothing elsewhere. Claimed before
	 * the first task runs, so that tasks see the thread that turns their driver (a blocking
	 * urp_io_wait() in a task is then -EDEADLK, not a hang). */
	ret = urp__driver_claim(loop->drv);
	if (ret < 0)
		return ret;
	loop->thread = pthread_self();
	urp__store_release(&loop->running, 1);
	for (;;) {
		take_remote(loop);
		run_pass(loop);
		/* Pairs with the release store in urp_loop_stop(). */
		if (urp__load_acquire(&loop->stop))
			break;
		/* Tasks waiting: poll the ring without blocking, then run them. Otherwise block
		 * until a completion, an unpark, or the earliest timer's deadline. */
		ret = urp__driver_turn_ns(loop->drv,
					  loop->head || urp__ptr_load_acquire(&loop->remote)
						  ? 0
						  : urp__timers_wait_ns(&loop->timers));
		if (ret < 0)
			break;
		urp__timers_run(&loop->timers);
	}
	/* Stopped: what the last pass asked of the driver (deregistrations, a close) reaches the
	 * kernel now, not whenever the loop next runs or is freed. A listening socket deregistered
	 * and closed by that pass stops listening before this returns. Tasks its wakers queue run
	 * in the next urp_loop_run(). */
	if (ret >= 0)
		ret = urp__driver_turn_ns(loop->drv, 0);
	urp__store_release(&loop->stop, 0);
	urp__store_release(&loop->running, 0);
	return ret < 0 ? ret : 0;
}

void urp_loop_stop(struct urp_loop *loop)
{
	if (!loop)
		return;
	urp__store_release(&loop->stop, 1);
	urp_driver_unpark(loop->drv);
}

struct urp_driver *urp_loop_driver(struct urp_loop *loop)
{
	return loop ? loop->drv : NULL;
}

int urp_loop_new(struct urp_loop **out, const struct urp_driver_opts *opts)
{
	struct urp_loop *loop;
	int ret;

	if (!out)
		return -EINVAL;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	ret = urp_driver_new(&loop->drv, opts);
	if (ret < 0) {
		free(loop);
		return ret;
	}
	*out = loop;
	return 0;
}

void urp_loop_free(struct urp_loop *loop)
{
	if (!loop)
		return;
	urp__timers_free(&loop->timers);
	urp_driver_free(loop->drv);
	free(loop);
}
