/* SPDX-License-Identifier: MIT */
/*
 * The driver's entries: registration, the command queue other threads reach the turning
 * thread through, removal (the cancels of an entry's requests) and freeing.
 *
 * An entry is freed only when the user deregistered it AND the final CQE (one without
 * IORING_CQE_F_MORE) of every request carrying its address has been reaped: close(fd) does not
 * cancel an armed poll or recv, so nothing else would be safe. Until then a deregistered entry
 * is gone for the caller: its completions are not applied and its wakers not called.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/atomic.h"
#include "../core/debug.h"
#include "../core/ready.h"
#include "driver.h"
#include "ring.h"

/* ---- the command queue: entries on an MPSC stack (core/stack.h), taken whole each turn ---- */

static void push_cmd(struct urp_driver *drv, struct urp__reg *reg, uint32_t bits)
{
	/* Already queued: the driver has yet to take its bits, and will see these too. */
	if (urp__fetch_or_u8(&reg->cmd, (uint8_t)(bits | URP__CMD_QUEUED)) & URP__CMD_QUEUED)
		return;
	urp__stack_push(&drv->cmd_head, &reg->cmd_link);
}

/* Take every queued entry, oldest first, with its command bits cleared and returned through
 * the callback. */
static void take_commands(struct urp_driver *drv,
			  void (*run)(struct urp_driver *drv, struct urp__reg *reg, uint32_t bits))
{
	struct urp__snode *node, *next;
	struct urp__reg *reg;

	for (node = urp__stack_take_fifo(&drv->cmd_head); node; node = next) {
		/* Read the link first: clearing QUEUED lets another thread push it again. */
		next = node->next;
		reg = urp__container_of(node, struct urp__reg, cmd_link);
		run(drv, reg, urp__xchg_u8(&reg->cmd, 0));
	}
}

void urp__retire(struct urp_driver *drv, struct urp__reg *reg)
{
	urp__list_del_init(&reg->io.link);
	urp__list_add_tail(&reg->io.link, &drv->dead);
}

static void go_live(struct urp_driver *drv, struct urp__reg *reg)
{
	urp__list_add_tail(&reg->io.link, &drv->live);
}

/* Returns the cancels submitted, or -EBUSY when they wait for the next turn. */
static int remove_poll(struct urp_driver *drv, struct urp__reg *reg)
{
	struct io_uring_sqe *sqe = NULL;
	int cancels = 1;

	if (reg->state & URP__REG_RING)
		cancels = urp__ring_remove(drv, reg);
	else
		sqe = urp__get_sqe(drv);
	if (cancels < 0 || (!sqe && !(reg->state & URP__REG_RING))) {
		/* Try again next turn, without blocking in this one: the kernel keeps the file
		 * open until the poll is gone. The entry stays gone meanwhile: its completions
		 * are not applied, its wakers (whose arg the caller may have freed) not called,
		 * and a poll ending now is neither re-armed (the fd may be closed already) nor
		 * freed (it is on the command queue). */
		drv->put_off = true;
		reg->state |= URP__REG_CANCEL_DUE;
		push_cmd(drv, reg, URP__CMD_REMOVE);
		return -EBUSY;
	}
	/* Not POLL_REMOVE: under DEFER_TASKRUN it fails with -EALREADY while a wake-up of the
	 * poll is pending (it cannot take the request), and the poll stays armed (kernel 6.18).
	 * ASYNC_CANCEL marks it cancelled; its pending task work then ends it with -ECANCELED. */
	if (sqe) {
		io_uring_prep_cancel64(sqe, (__u64)(uintptr_t)reg, 0);
		io_uring_sqe_set_data64(sqe, URP__TOKEN_CTL);
	}
	return cancels;
}

static void remove_entry(struct urp_driver *drv, struct urp__reg *reg, uint32_t bits)
{
	if (reg->state & URP__REG_GONE) {
		/* Deregistered twice, or the retry of a cancel that found no SQE. */
		if (!(reg->state & URP__REG_CANCEL_DUE))
			return;
		reg->state &= ~URP__REG_CANCEL_DUE;
	}
	reg->state |= URP__REG_GONE;
	if (bits & URP__CMD_CLOSE)
		reg->state |= URP__REG_CLOSE;
	if (!reg->polls_armed) {
		urp__retire(drv, reg);
	} else {
		int cancels = remove_poll(drv, reg);

		if (cancels > 0)
			drv->cancels_due += (unsigned)cancels;
	}
}

void urp__reg_request_ended(struct urp_driver *drv, struct urp__reg *reg)
{
	if (!(reg->state & URP__REG_GONE) || (reg->state & URP__REG_CANCEL_DUE))
		return;
	/* Its cancel went out and was counted as due. */
	if (drv->cancels_due)
		drv->cancels_due--;
	if (!reg->polls_armed)
		urp__retire(drv, reg);
}

static void run_command(struct urp_driver *drv, struct urp__reg *reg, uint32_t bits)
{
	if (bits & URP__CMD_ARM) {
		go_live(drv, reg);
		/* Registered while a shutdown was on its way: shut it down like the others. */
		if (urp__load_acquire(&drv->shutdown)) {
			urp__io_shutdown(&reg->io);
			urp__ready_add(drv, reg);
		} else if (!(bits & URP__CMD_REMOVE))
			urp__arm(drv, reg);
	}
	if (bits & URP__CMD_REMOVE)
		remove_entry(drv, reg, bits);
}

void urp__run_commands(struct urp_driver *drv)
{
	take_commands(drv, run_command);
}

void urp__free_entry(struct urp_driver *drv, struct urp__reg *reg)
{
	urp__list_del_init(&reg->io.link);
	if (reg->state & URP__REG_LISTED)
		urp__ready_remove(drv, reg);
	if (reg->state & URP__REG_RING)
		urp__ring_free_reg(drv, reg);
	if (reg->state & URP__REG_CLOSE)
		close(reg->fd);
	reg->magic = 0;
	urp__count_sub(&drv->registered, 1);
	urp__io_release(&reg->io);
}

void urp__free_dead(struct urp_driver *drv)
{
	while (!urp__list_empty(&drv->dead))
		urp__free_entry(drv, urp__container_of(drv->dead.next, struct urp__reg, io.link));
}

void urp__shutdown_entries(struct urp_driver *drv)
{
	struct urp__list_head *pos, *tmp;

	/* Wakers run here; they may deregister (queued) but not register (-ESHUTDOWN), and a
	 * nested urp_driver_shutdown() returns at once, so the list holds still. */
	drv->shutting_down = true;
	urp__list_for_each_safe(pos, tmp, &drv->live)
	{
		struct urp__reg *reg = urp__container_of(pos, struct urp__reg, io.link);

		/* Deregistered, waiting for its poll's final CQE: gone for the caller, whose
		 * waker's arg may already be freed. */
		if (!(reg->state & URP__REG_GONE)) {
			urp__io_shutdown(&reg->io);
			urp__ready_add(drv, reg);
		}
	}
	drv->shutting_down = false;
}

/* In urp_driver_free(): every queued entry becomes live (or gone), nothing is armed. */
static void adopt_command(struct urp_driver *drv, struct urp__reg *reg, uint32_t bits)
{
	if (bits & URP__CMD_ARM)
		go_live(drv, reg);
	if (bits & URP__CMD_CLOSE)
		reg->state |= URP__REG_CLOSE;
}

void urp__adopt_commands(struct urp_driver *drv)
{
	take_commands(drv, adopt_command);
}

/* ---- registration ---- */

static bool reserve(struct urp_driver *drv)
{
	uint64_t n = urp__count_read(&drv->registered);

	do {
		if (n >= drv->info.max_registrations)
			return false;
	} while (!urp__count_cas(&drv->registered, &n, n + 1));
	return true;
}

/* The counters' release: the last wake on a freed registration gives its slot back. */
void urp__reg_release(struct urp_io *io)
{
	struct urp_driver *drv = urp__owner_of(io);
	struct urp__reg *reg = urp__reg_of(io);

	urp__slab_free(reg->state & URP__REG_RING ? &drv->ring_slab : &drv->slab, reg);
}

int urp__register(struct urp_driver *drv, int fd, unsigned interest, bool ring,
		  struct urp_io **out)
{
	struct urp__reg *reg;
	void *slot;
	int ret;

	if (urp__driver_forked(drv))
		return -ECHILD;
	if (urp__load_acquire(&drv->shutdown))
		return -ESHUTDOWN;
	if (ring && urp__load_acquire(&drv->enabled) && !urp__driver_on_thread(drv))
		return -EEXIST;
	if (!reserve(drv))
		return -ENOSPC;
	ret = urp__slab_alloc(ring ? &drv->ring_slab : &drv->slab, &slot);
	if (ret < 0) {
		urp__count_sub(&drv->registered, 1);
		return ret;
	}
	reg = slot;
	urp__io_init(&reg->io, &drv->counters);
	reg->fd = fd;
	reg->interest = (uint8_t)interest;
	reg->seen = (uint8_t)urp__ready_from_interest(interest);
	reg->magic = URP__REG_MAGIC;
	if (ring) {
		struct urp__ring_reg *rr = urp__ring_reg_of(reg);

		reg->state = URP__REG_RING;
		rr->rq_head = rr->rq_tail = URP__BID_NONE;
		/* Nothing queued to send: below the mark. */
		urp__io_set_readiness(&reg->io, URP_WRITABLE);
	}
	*out = &reg->io;
	if (urp__driver_on_thread(drv)) {
		go_live(drv, reg);
		urp__arm(drv, reg);
		if (ring)
			urp__ready_add(drv, reg);
		return 0;
	}
	push_cmd(drv, reg, URP__CMD_ARM);
	urp_driver_unpark(drv);
	return 0;
}

int urp_register(struct urp_driver *drv, int fd, unsigned interest, struct urp_io **out)
{
	if (!drv || !out || fd < 0 || !urp__interest_valid(interest))
		return -EINVAL;
	return urp__register(drv, fd, interest, false, out);
}

static int deregister(struct urp_io *io, uint32_t bits)
{
	struct urp_driver *drv;
	struct urp__reg *reg;

	if (!io)
		return -EINVAL;
	urp__debug_io_usable(io, bits & URP__CMD_CLOSE ? "urp_deregister_close" : "urp_deregister");
	drv = urp__owner_of(io);
	reg = urp__reg_of(io);
	if (!drv || reg->magic != URP__REG_MAGIC)
		return -EINVAL;
	if (urp__driver_forked(drv))
		return -ECHILD;
	urp__debug_io_given_up(io, "urp_deregister");
	/* Always through the queue, even on the turning thread: a waker may deregister the very
	 * entry being dispatched, so entries change state only between completions. */
	push_cmd(drv, reg, bits);
	if (!urp__driver_on_thread(drv))
		urp_driver_unpark(drv);
	return 0;
}

int urp_deregister(struct urp_io *io)
{
	return deregister(io, URP__CMD_REMOVE);
}

int urp_deregister_close(struct urp_io *io)
{
	return deregister(io, URP__CMD_REMOVE | URP__CMD_CLOSE);
}
