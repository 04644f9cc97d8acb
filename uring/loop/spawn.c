/* SPDX-License-Identifier: MIT */
/*
 * A driver turned by a thread of its own, for blocking (thread-per-connection) users. The
 * thread and its stop flag live here, in a short list keyed by driver, not in the driver:
 * urp_driver_join() finds them there.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "../../core/atomic.h"
#include "../upcalls.h"

struct spawned {
	struct urp_driver *drv;
	pthread_t thread;
	uint32_t stop; /* urp_driver_join() asks the thread to stop (atomic) */
	struct spawned *next;
};

static pthread_mutex_t spawned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct spawned *spawned_list;

static void *spawn_main(void *arg)
{
	struct spawned *sp = arg;

	/* Pairs with the release store in urp_driver_join(). */
	while (!urp__load_acquire(&sp->stop))
		if (urp_driver_turn(sp->drv, -1) < 0)
			break;
	return NULL;
}

int urp_driver_spawn(struct urp_driver **out, const struct urp_driver_opts *opts)
{
	struct spawned *sp;
	int ret;

	if (!out)
		return -EINVAL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	ret = urp_driver_new(&sp->drv, opts);
	if (ret < 0) {
		free(sp);
		return ret;
	}
	if (pthread_create(&sp->thread, NULL, spawn_main, sp) != 0) {
		urp_driver_free(sp->drv);
		free(sp);
		return -EAGAIN;
	}
	pthread_mutex_lock(&spawned_lock);
	sp->next = spawned_list;
	spawned_list = sp;
	pthread_mutex_unlock(&spawned_lock);
	*out = sp->drv;
	return 0;
}

/* Take drv's entry off the list: NULL when drv was not spawned. */
static struct spawned *spawned_take(struct urp_driver *drv)
{
	struct spawned **pp, *sp = NULL;

	pthread_mutex_lock(&spawned_lock);
	for (pp = &spawned_list; *pp; pp = &(*pp)->next) {
		if ((*pp)->drv == drv) {
			sp = *pp;
			*pp = sp->next;
			break;
		}
	}
	pthread_mutex_unlock(&spawned_lock);
	return sp;
}

void urp_driver_join(struct urp_driver *drv)
{
	struct spawned *sp;

	if (!drv)
		return;
	sp = spawned_take(drv);
	if (sp) {
		urp__store_release(&sp->stop, 1);
		urp_driver_unpark(drv);
		pthread_join(sp->thread, NULL);
		free(sp);
	}
	urp_driver_free(drv);
}
