/* SPDX-License-Identifier: MIT */
/*
 * The readiness future: a caller-owned waiter node moving Init -> Waiting -> Done, for any
 * number of tasks waiting on one entry (tokio's Readiness future).
 */
#include <errno.h>
#include <string.h>

#include "atomic.h"
#include "debug.h"
#include "io.h"
#include "ready.h"
#include "word.h"

enum readiness_state { READINESS_INIT, READINESS_WAITING, READINESS_DONE };

struct readiness {
	struct urp__waiter waiter;
	struct urp_io *io;
	enum readiness_state state;
};

_Static_assert(sizeof(struct readiness) <= sizeof(struct urp_readiness),
	       "struct urp_readiness is too small for the future");
_Static_assert(_Alignof(struct readiness) <= _Alignof(struct urp_readiness),
	       "struct urp_readiness is not aligned enough for the future");

static struct readiness *to_readiness(struct urp_readiness *r)
{
	return (struct readiness *)r->opaque;
}

void urp_readiness_init(struct urp_readiness *r, struct urp_io *io, unsigned interest)
{
	struct readiness *rd = to_readiness(r);

	memset(rd, 0, sizeof(*rd));
	urp__list_init(&rd->waiter.node);
	rd->waiter.interest = interest;
	rd->io = io;
	rd->state = READINESS_INIT;
}

static void __waker_store(struct urp_waker *slot, const struct urp_waker *w)
{
	if (w)
		*slot = *w;
	else
		memset(slot, 0, sizeof(*slot));
}

int urp_readiness_poll(struct urp_readiness *r, const struct urp_waker *w, struct urp_event *ev)
{
	struct readiness *rd;
	struct urp_io *io;
	unsigned mask;
	uint32_t word;

	if (!r || !ev)
		return -EINVAL;
	rd = to_readiness(r);
	io = rd->io;
	if (!io || !urp__interest_valid(rd->waiter.interest))
		return -EINVAL;
	urp__debug_io_usable(io, "urp_readiness_poll");
	mask = urp__ready_from_interest(rd->waiter.interest);

	switch (rd->state) {
	case READINESS_INIT:
		/* Pairs with the release half of the CAS in urp__io_set_readiness(). */
		word = urp__load_acquire(&io->readiness);
		if (urp__word_done(word, mask))
			break;
		urp__lock(&io->lock);
		/* Publish, then re-check: a Set after our first load either shows in this load, or
		 * its wake sees the LIST bit, takes the lock after us and finds the node (the
		 * Dekker pair of core/io.c). Found ready: the bit may stay, a wake clears it. */
		urp__fetch_or_seq_cst(&io->waiting, URP__WAITING_LIST);
		word = urp__load_seq_cst(&io->readiness);
		if (urp__word_done(word, mask)) {
			urp__unlock(&io->lock);
			break;
		}
		__waker_store(&rd->waiter.waker, w);
		urp__list_add_tail(&rd->waiter.node, &io->waiters);
		rd->state = READINESS_WAITING;
		urp__unlock(&io->lock);
		return -EAGAIN;
	case READINESS_WAITING:
		urp__lock(&io->lock);
		if (!urp__list_empty(&rd->waiter.node)) {
			__waker_store(&rd->waiter.waker, w);
			urp__unlock(&io->lock);
			return -EAGAIN;
		}
		urp__unlock(&io->lock);
		/* Unlinked by a wake: done, once the waker it took has returned, so that the
		 * caller may drop the waker's arg as soon as it sees Done. */
		urp__io_wait_calls(io);
		break;
	case READINESS_DONE:
		break;
	}
	/* Done reports the current readiness, which may be empty again by now: callers loop. */
	rd->state = READINESS_DONE;
	urp__word_event(urp__load_acquire(&io->readiness), mask, ev);
	return 0;
}

void urp_readiness_cancel(struct urp_readiness *r)
{
	struct readiness *rd;
	bool woken;

	if (!r)
		return;
	rd = to_readiness(r);
	if (rd->state == READINESS_WAITING) {
		urp__debug_io_usable(rd->io, "urp_readiness_cancel");
		urp__lock(&rd->io->lock);
		woken = urp__list_empty(&rd->waiter.node);
		if (!woken) {
			urp__list_del_init(&rd->waiter.node);
			if (urp__list_empty(&rd->io->waiters))
				urp__store_relaxed(&rd->io->waiting, urp__load_relaxed(&rd->io->waiting) &
								      ~URP__WAITING_LIST);
		}
		urp__unlock(&rd->io->lock);
		/* A wake unlinked it already (del_init) and may still be calling its waker:
		 * return only once it has, so the caller may free the waker's arg. */
		if (woken)
			urp__io_wait_calls(rd->io);
	}
	memset(&rd->waiter.waker, 0, sizeof(rd->waiter.waker));
	rd->state = READINESS_INIT;
}
