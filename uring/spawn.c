/* SPDX-License-Identifier: MIT */
/* A driver turned by a thread of its own, for blocking (thread-per-connection) users. */
#include <errno.h>
#include <pthread.h>

#include "../core/atomic.h"
#include "driver.h"

static void *spawn_main(void *arg)
{
	struct urp_driver *drv = arg;

	/* Pairs with the release store in urp_driver_join(). */
	while (!urp__load_acquire(&drv->spawn_stop))
		if (urp_driver_turn(drv, -1) < 0)
			break;
	return NULL;
}

int urp_driver_spawn(struct urp_driver **out, const struct urp_driver_opts *opts)
{
	struct urp_driver *drv;
	int ret;

	if (!out)
		return -EINVAL;
	ret = urp_driver_new(&drv, opts);
	if (ret < 0)
		return ret;
	if (pthread_create(&drv->spawned, NULL, spawn_main, drv) != 0) {
		urp_driver_free(drv);
		return -EAGAIN;
	}
	drv->has_spawned = true;
	*out = drv;
	return 0;
}

void urp_driver_join(struct urp_driver *drv)
{
	if (!drv)
		return;
	if (drv->has_spawned) {
		urp__store_release(&drv->spawn_stop, 1);
		urp_driver_unpark(drv);
		pthread_join(drv->spawned, NULL);
	}
	urp_driver_free(drv);
}
