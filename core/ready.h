/* SPDX-License-Identifier: MIT */
/* The poll(2) mask -> Ready mapping and the interest -> Ready mask, inline for the hot paths
 * (every CQE and every waiter check); core/ready.c exports them as urp_ready_from_*(). */
#ifndef URP_CORE_READY_H
#define URP_CORE_READY_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "urpoll.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif

/*
 * The rules, clause by clause. The kernel reports POLLERR, POLLHUP and POLLRDHUP whether or not
 * they were asked for. Closed states are only ever reported, never invented: POLLRDHUP alone (no
 * POLLIN) maps to nothing, since a reader cannot observe the EOF until POLLIN says there is
 * something to read. A constant expression, so that it can fill the table below.
 */
#define URP__READY_FROM_POLL(m)                                                                    \
	((((m) & POLLIN) || ((m) & POLLPRI) ? URP_READABLE : 0u) |                                 \
	 ((m) & POLLOUT ? URP_WRITABLE : 0u) |                                                     \
	 (((m) & POLLHUP) || (((m) & POLLIN) && ((m) & POLLRDHUP)) ? URP_READ_CLOSED : 0u) |       \
	 (((m) & POLLHUP) || (((m) & POLLOUT) && ((m) & POLLERR)) || (m) == POLLERR                \
		  ? URP_WRITE_CLOSED                                                               \
		  : 0u) |                                                                          \
	 ((m) & POLLERR ? URP_ERROR : 0u) | ((m) & POLLPRI ? URP_PRIORITY : 0u))

/* The six bits the rules read, folded into a 6-bit index: POLLRDHUP (0x2000) into bit 5 (0x20,
 * POLLNVAL's place, which no rule reads). */
#define URP__POLL_SEEN	  (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP | POLLRDHUP)
#define URP__POLL_INDEX(m) (((m) & 0x1fu) | (((m) >> 8) & 0x20u))

_Static_assert(POLLIN == 0x1 && POLLPRI == 0x2 && POLLOUT == 0x4 && POLLERR == 0x8 &&
		       POLLHUP == 0x10 && POLLRDHUP == 0x2000,
	       "the poll bits the index folds are not Linux's");

/* URP__READY_FROM_POLL() of each index's mask (core/ready.c). */
extern const uint8_t urp__poll_ready[64];

/* A table read, instead of a dozen branches per CQE. The one rule that looks at the whole
 * mask, "exactly POLLERR", is mended when other bits (POLLRDNORM, ...) came along. */
static inline unsigned urp__ready_from_poll(unsigned poll_mask)
{
	unsigned index = URP__POLL_INDEX(poll_mask);

	if (__builtin_expect(index == POLLERR && poll_mask != POLLERR, 0))
		return URP_ERROR;
	return urp__poll_ready[index];
}

/* An interest a registration or a waiter may ask for: some of URP_INTEREST_ALL, nothing else. */
static inline bool urp__interest_valid(unsigned interest)
{
	return interest != 0 && (interest & ~URP_INTEREST_ALL) == 0;
}

/*
 * What an interest sees: READABLE -> READABLE|READ_CLOSED, WRITABLE -> WRITABLE|WRITE_CLOSED,
 * PRIORITY -> PRIORITY|READ_CLOSED, ERROR -> ERROR, the union for several. The interest bits are
 * the ready bits of the same name, so they pass through; READ_CLOSED (bit 2) comes from
 * READABLE (bit 0) or PRIORITY (bit 4), WRITE_CLOSED (bit 3) from WRITABLE (bit 1).
 */
static inline unsigned urp__ready_from_interest(unsigned interest)
{
	return (interest & URP_INTEREST_ALL) | (((interest | (interest >> 4)) & 1u) << 2) |
	       ((interest & URP_WRITABLE) << 2);
}

_Static_assert(URP_READABLE == 0x01 && URP_WRITABLE == 0x02 && URP_READ_CLOSED == 0x04 &&
		       URP_WRITE_CLOSED == 0x08 && URP_PRIORITY == 0x10 && URP_ERROR == 0x20,
	       "urp__ready_from_interest() shifts the bits where urpoll.h puts them");

#endif
