/* SPDX-License-Identifier: MIT */
/* The task loop's state, shared by uring/loop.c and uring/timer.c. Not installed. */
#ifndef URP_URING_LOOP_H
#define URP_URING_LOOP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../../core/stack.h"
#include "timer.h"
#include "urpoll.h"

struct task;

struct urp_loop {
	struct urp_driver *drv;
	pthread_t thread;
	uint32_t running;	/* thread is set: urp_loop_run() runs (atomic) */
	uint32_t stop;		/* atomic */
	void *remote;		/* task.link stack pushed by other threads (atomic) */
	struct task *head;	/* loop thread: FIFO of queued tasks */
	struct task *tail;
	size_t queued;
	struct urp__timers timers; /* loop thread */
};

/* Debug builds: abort unless the caller is loop's thread, or loop does not run yet (its
 * timers and tasks may be set up before urp_loop_run() on the thread that will run it). */
#ifdef URP_DEBUG
void urp__loop_assert_thread(const struct urp_loop *loop, const char *call);
#else
#define urp__loop_assert_thread(loop, call) ((void)(loop))
#endif

#endif /* URP_URING_LOOP_H */
