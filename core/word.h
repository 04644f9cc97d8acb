/* SPDX-License-Identifier: MIT */
/*
 * The packed readiness word of one entry.
 *
 *   | bit 31       | bits 30..16  | bits 15..0                        |
 *   | shutdown (1) | tick (15)    | readiness (16; only low 6 used)   |
 *
 * The tick counts completions applied to the entry (mod 2^15). A consumer's clear carries the
 * tick of its snapshot and is refused unless all 15 bits still match: tokio 1.48 compares only
 * 8 bits, so 256 completions between snapshot and clear let a stale clear erase a fresh edge.
 */
#ifndef URP_CORE_WORD_H
#define URP_CORE_WORD_H

#include <stdbool.h>
#include <stdint.h>

#include "urpoll.h"

#define URP__READY_SHIFT    0
#define URP__READY_MASK	    0x0000ffffu
#define URP__TICK_SHIFT	    16
#define URP__TICK_MASK	    0x7fff0000u
#define URP__SHUTDOWN_SHIFT 31
#define URP__SHUTDOWN_MASK  0x80000000u

_Static_assert((URP__READY_MASK & URP__TICK_MASK) == 0, "readiness and tick overlap");
_Static_assert((URP__TICK_MASK & URP__SHUTDOWN_MASK) == 0, "tick and shutdown overlap");
_Static_assert((URP__READY_MASK & URP__SHUTDOWN_MASK) == 0, "readiness and shutdown overlap");
_Static_assert((URP__READY_MASK | URP__TICK_MASK | URP__SHUTDOWN_MASK) == 0xffffffffu,
	       "the word's fields do not cover 32 bits");
_Static_assert((URP__TICK_MASK >> URP__TICK_SHIFT) == URP_TICK_MAX, "tick is not 15 bits");
_Static_assert((URP_READY_ALL & ~URP__READY_MASK) == 0, "ready bits outside their field");

static inline unsigned urp__word_ready(uint32_t w)
{
	return (w & URP__READY_MASK) >> URP__READY_SHIFT;
}

static inline unsigned urp__word_tick(uint32_t w)
{
	return (w & URP__TICK_MASK) >> URP__TICK_SHIFT;
}

static inline bool urp__word_shutdown(uint32_t w)
{
	return (w & URP__SHUTDOWN_MASK) != 0;
}

static inline uint32_t urp__word_pack(bool shutdown, unsigned tick, unsigned ready)
{
	return ((uint32_t)shutdown << URP__SHUTDOWN_SHIFT) |
	       (((uint32_t)tick << URP__TICK_SHIFT) & URP__TICK_MASK) |
	       (((uint32_t)ready << URP__READY_SHIFT) & URP__READY_MASK);
}

static inline unsigned urp__tick_next(unsigned tick)
{
	return (tick + 1) & URP_TICK_MAX;
}

/* Ready for mask: some of its bits are set, or the entry is shut down (which ends every wait). */
static inline bool urp__word_done(uint32_t w, unsigned mask)
{
	return (urp__word_ready(w) & mask) || urp__word_shutdown(w);
}

static inline void urp__word_event(uint32_t w, unsigned mask, struct urp_event *ev)
{
	ev->ready = urp__word_ready(w) & mask;
	ev->tick = urp__word_tick(w);
	ev->shutdown = urp__word_shutdown(w);
}

#endif /* URP_CORE_WORD_H */
