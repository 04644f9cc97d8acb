/* SPDX-License-Identifier: MIT */
/*
 * The loop's timers (uring/timer.c): a 4-ary min-heap of deadlines, kept by the loop and used
 * only on its thread. Not installed.
 */
#ifndef URP_URING_TIMER_H
#define URP_URING_TIMER_H

#include <stdint.h>

struct urp__timer_node;

struct urp__timers {
	struct urp__timer_node *heap; /* nr nodes in deadline order; cap allocated */
	uint32_t nr, cap;
	uint64_t seq; /* starts so far: orders equal deadlines, fences a firing pass */
};

/* The loop's clock: CLOCK_MONOTONIC in nanoseconds. */
uint64_t urp__timers_now(void);
void urp__timers_free(struct urp__timers *tm);
/* How long the loop may block: -1 without timers, else the nanoseconds until the earliest
 * deadline (0 when one is due). */
int64_t urp__timers_wait_ns(const struct urp__timers *tm);
/* Call the callback of every timer due now, in deadline order (equal deadlines in start
 * order). Timers started by those callbacks wait for the next call. */
void urp__timers_run(struct urp__timers *tm);

#endif /* URP_URING_TIMER_H */
