/* SPDX-License-Identifier: MIT */
/* The poll(2) mask -> Ready mapping and the interest -> Ready mask, inline for the hot paths
 * (every CQE and every waiter check); core/ready.c exports them as urp_ready_from_*(). */
#ifndef URP_CORE_READY_H
#define URP_CORE_READY_H

#include <poll.h>
#include <stdbool.h>

#include "urpoll.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif

/*
 * The kernel reports POLLERR, POLLHUP and POLLRDHUP whether or not they were asked for. Closed
 * states are only ever reported, never invented: POLLRDHUP alone (no POLLIN) maps to nothing,
 * since a reader cannot observe the EOF until POLLIN says there is something to read.
 */
static inline unsigned urp__ready_from_poll(unsigned poll_mask)
{
	unsigned ready = 0;

	if ((poll_mask & POLLIN) || (poll_mask & POLLPRI))
		ready |= URP_READABLE;
	if (poll_mask & POLLOUT)
		ready |= URP_WRITABLE;
	if ((poll_mask & POLLHUP) || ((poll_mask & POLLIN) && (poll_mask & POLLRDHUP)))
		ready |= URP_READ_CLOSED;
	if ((poll_mask & POLLHUP) || ((poll_mask & POLLOUT) && (poll_mask & POLLERR)) ||
	    (poll_mask == POLLERR))
		ready |= URP_WRITE_CLOSED;
	if (poll_mask & POLLERR)
		ready |= URP_ERROR;
	if (poll_mask & POLLPRI)
		ready |= URP_PRIORITY;
	return ready;
}

/* An interest a registration or a waiter may ask for: some of URP_INTEREST_ALL, nothing else. */
static inline bool urp__interest_valid(unsigned interest)
{
	return interest != 0 && (interest & ~URP_INTEREST_ALL) == 0;
}

static inline unsigned urp__ready_from_interest(unsigned interest)
{
	unsigned ready = 0;

	if (interest & URP_READABLE)
		ready |= URP_READABLE | URP_READ_CLOSED;
	if (interest & URP_WRITABLE)
		ready |= URP_WRITABLE | URP_WRITE_CLOSED;
	if (interest & URP_PRIORITY)
		ready |= URP_PRIORITY | URP_READ_CLOSED;
	if (interest & URP_ERROR)
		ready |= URP_ERROR;
	return ready;
}

#endif
