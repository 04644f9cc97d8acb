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

/* The layout is public (urpoll.h: URP_WORD_*, urp_word_*()): the fields are checked here. */
_Static_assert((URP_WORD_READY_MASK & URP_WORD_TICK_MASK) == 0, "readiness and tick overlap");
_Static_assert((URP_WORD_TICK_MASK & URP_WORD_SHUTDOWN) == 0, "tick and shutdown overlap");
_Static_assert((URP_WORD_READY_MASK & URP_WORD_SHUTDOWN) == 0, "readiness and shutdown overlap");
_Static_assert((URP_WORD_READY_MASK | URP_WORD_TICK_MASK | URP_WORD_SHUTDOWN) == 0xffffffffu,
	       "the word's fields do not cover 32 bits");
_Static_assert((URP_WORD_TICK_MASK >> URP_WORD_TICK_SHIFT) == URP_TICK_MAX, "tick is not 15 bits");
_Static_assert(URP_WORD_SHUTDOWN == 1u << 31, "shutdown is not bit 31");
_Static_assert((URP_READY_ALL & ~URP_WORD_READY_MASK) == 0, "ready bits outside their field");

static inline uint32_t urp__word_pack(bool shutdown, unsigned tick, unsigned ready)
{
	return (shutdown ? URP_WORD_SHUTDOWN : 0) |
	       (((uint32_t)tick << URP_WORD_TICK_SHIFT) & URP_WORD_TICK_MASK) |
	       ((uint32_t)ready & URP_WORD_READY_MASK);
}

static inline unsigned urp__tick_next(unsigned tick)
{
	return (tick + 1) & URP_TICK_MAX;
}

/* Ready for mask: some of its bits are set, or the entry is shut down (which ends every wait). */
static inline bool urp__word_done(uint32_t w, unsigned mask)
{
	return (urp_word_ready(w) & mask) || urp_word_shutdown(w);
}

static inline void urp__word_event(uint32_t w, unsigned mask, struct urp_event *ev)
{
	ev->ready = urp_word_ready(w) & mask;
	ev->tick = urp_word_tick(w);
	ev->shutdown = urp_word_shutdown(w);
}

#endif /* URP_CORE_WORD_H */
