/* SPDX-License-Identifier: MIT */
/*
 * What ring mode's two halves share, inside the driver: ring_mode.c (the provided-buffer ring,
 * the recv, an entry's lifetime, the turn's start, registration and takes) and ring_send.c (the
 * send queue and its calls). Everything here runs on the turning thread.
 */
#ifndef URP_URING_RING_MODE_H
#define URP_URING_RING_MODE_H

#include "../core/atomic.h"
#include "driver.h"

/* ---- ring_mode.c ---- */

static inline char *urp__buf_addr(const struct urp__bufring *ring, unsigned bid)
{
	return ring->mem + (size_t)bid * ring->size;
}

/* Back into the ring; the kernel sees it once the next turn starts. */
static inline void urp__buf_return(struct urp__bufring *ring, struct urp__rbuf *b)
{
	b->out = false;
	b->send.buf = NULL;
	b->pub.data = NULL;
	b->pub.len = 0;
	urp__count_local(&ring->out, (uint64_t)-1);
	io_uring_buf_ring_add(ring->br, urp__buf_addr(ring, b->bid), ring->size, b->bid, ring->mask,
			      (int)ring->returned++);
}

/* Its SQEs (recv, send) are due: prepared at the next turn's start (ring_mode.c's head comment
 * says why). */
static inline void urp__ring_flush_due(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	if (rr->rstate & URP__RING_FLUSH)
		return;
	rr->rstate |= URP__RING_FLUSH;
	rr->flush_prev = NULL;
	rr->flush_next = drv->flush;
	if (drv->flush)
		drv->flush->flush_prev = rr;
	drv->flush = rr;
}

/* The ring-mode registration behind io, on its driver's turning thread; NULL with *err
 * (-EINVAL: none, or not in ring mode; -EEXIST: not the turning thread). */
struct urp__ring_reg *urp__ring_entry(const struct urp_io *io, const char *call, int *err);

/* ---- ring_send.c ---- */

/* Prepare the queue head's SQE (at a turn's start); false when no SQE could be had. */
bool urp__send_prep(struct urp_driver *drv, struct urp__ring_reg *rr);
/* A send's (or a FIN's) completion; 1 when it Set the word. */
int urp__send_cqe(struct urp_driver *drv, struct urp__ring_reg *rr,
		  const struct io_uring_cqe *cqe);
/* Drop what is queued but the records the send in flight names (all of it with all). */
void urp__send_drop(struct urp_driver *drv, struct urp__ring_reg *rr, bool all);
/* The send in flight ended (or the ring exited): its vector, if any, goes back to the pool. */
void urp__sendv_done(struct urp_driver *drv, struct urp__ring_reg *rr);

#endif /* URP_URING_RING_MODE_H */
