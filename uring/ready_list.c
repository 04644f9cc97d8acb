/* SPDX-License-Identifier: MIT */
/*
 * The ready list (URP_DRIVER_READY_LIST): the entries whose word a completion Set since they
 * were last handed out, each once, for urp_driver_poll(), the driver's wait for ready fds. The turn
 * lists them (urp__ready_add(), inline in driver.h); the handout takes a snapshot of each word.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/atomic.h"
#include "../core/debug.h"
#include "../core/word.h"
#include "driver.h"

/* Room for one more at the end: move the list to the front, or grow it. */
static bool ready_room(struct urp_driver *drv)
{
	struct urp__reg **grown;
	unsigned cap;

	if (drv->ready_first + drv->ready_len < drv->ready_cap)
		return true;
	if (drv->ready_first) {
		memmove(drv->ready, drv->ready + drv->ready_first,
			drv->ready_len * sizeof(*drv->ready));
		drv->ready_first = 0;
		return true;
	}
	cap = drv->ready_cap * 2;
	grown = realloc(drv->ready, cap * sizeof(*drv->ready));
	if (!grown)
		return false;
	drv->ready = grown;
	drv->ready_cap = cap;
	return true;
}

/* The slow half of urp__ready_add(): the list is full. */
void urp__ready_add_room(struct urp_driver *drv, struct urp__reg *reg)
{
	if (!ready_room(drv)) {
		drv->ready_lost = true;
		return;
	}
	drv->ready[drv->ready_first + drv->ready_len++] = reg;
	reg->state |= URP__REG_LISTED;
}

/* reg is freed while listed (a turn that was not urp_driver_poll()'s freed it): unlist it. */
void urp__ready_remove(struct urp_driver *drv, struct urp__reg *reg)
{
	unsigned i, end = drv->ready_first + drv->ready_len;

	for (i = drv->ready_first; i < end; i++) {
		if (drv->ready[i] != reg)
			continue;
		memmove(drv->ready + i, drv->ready + i + 1, (end - i - 1) * sizeof(*drv->ready));
		drv->ready_len--;
		break;
	}
	reg->state &= ~URP__REG_LISTED;
}

/* The event of one listed entry: its word as the interest sees it. Returns false when there
 * is nothing left to report (cleared by another thread since). */
static inline bool ready_event(struct urp__reg *reg, struct urp_ready *out)
{
	urp__word_event(urp__load_acquire(&reg->io.readiness),
			reg->seen, &out->ev);
	out->io = &reg->io;
	out->data = urp__ptr_load_acquire(&reg->data);
	return out->ev.ready || out->ev.shutdown;
}

/* Hand out up to max listed entries, oldest first; deregistered ones drop out. */
static int ready_handout(struct urp_driver *drv, struct urp_ready *out, unsigned max)
{
	struct urp__list_head *pos;
	unsigned n = 0;

	while (drv->ready_len && n < max) {
		struct urp__reg *reg = drv->ready[drv->ready_first++];

		drv->ready_len--;
		reg->state &= ~URP__REG_LISTED;
		if (!(reg->state & URP__REG_GONE) && ready_event(reg, &out[n]))
			n++;
	}
	if (!drv->ready_len)
		drv->ready_first = 0;
	if (drv->ready_lost && n < max) {
		/* Some Set went unlisted: report every live entry that shows readiness. */
		drv->ready_lost = false;
		urp__list_for_each(pos, &drv->live)
		{
			struct urp__reg *reg = urp__container_of(pos, struct urp__reg, io.link);

			if (reg->state & (URP__REG_GONE | URP__REG_LISTED))
				continue;
			if (n == max) {
				drv->ready_lost = true;
				break;
			}
			if (ready_event(reg, &out[n]))
				n++;
		}
	}
	return (int)n;
}

int urp_driver_poll(struct urp_driver *drv, int timeout_ms, struct urp_ready *evs, unsigned max)
{
	int ret;

	if (!drv || !evs || !max || timeout_ms < -1 || !drv->ready)
		return -EINVAL;
	/* Listed entries waiting for room in evs: do not block. */
	ret = urp__driver_turn_ns(drv, drv->ready_len || drv->ready_lost || timeout_ms == 0 ? 0
				  : timeout_ms < 0					 ? -1
				  : (int64_t)timeout_ms * 1000000);
	if (ret < 0)
		return ret;
	return ready_handout(drv, evs, max);
}

int urp_io_set_data(struct urp_io *io, void *data)
{
	if (!io)
		return -EINVAL;
	urp__debug_io_usable(io, "urp_io_set_data");
	if (!urp__owner_of(io))
		return -EINVAL;
	/* Pairs with the acquire load in ready_event(). */
	urp__ptr_store_release(&urp__reg_of(io)->data, data);
	return 0;
}

void *urp_io_data(const struct urp_io *io)
{
	if (!io || !urp__owner_of(io))
		return NULL;
	urp__debug_io_usable(io, "urp_io_data");
	return urp__ptr_load_acquire(&urp__reg_of((struct urp_io *)io)->data);
}

