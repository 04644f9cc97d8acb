/* SPDX-License-Identifier: MIT */
/*
 * What the driver offers the layer above it (uring/loop/: the task loop, timers, spawned
 * drivers, blocking waits), besides the public API. That layer includes this header and
 * urpoll.h only: it never reads the driver's fields. Not installed.
 */
#ifndef URP_URING_UPCALLS_H
#define URP_URING_UPCALLS_H

#include <stdbool.h>
#include <stdint.h>

#include "urpoll.h"

/* Whether the calling thread turns drv. */
bool urp__driver_on_thread(const struct urp_driver *drv);
/* Make the calling thread the one that turns drv (enabling the ring on it), as its first turn
 * would. Returns 0 when it is (or already was), -EEXIST when another thread is, or the error
 * of enabling the ring. */
int urp__driver_claim(struct urp_driver *drv);
/* urp_driver_turn() with the wait in nanoseconds (-1: no limit), for the loop's timers. */
int urp__driver_turn_ns(struct urp_driver *drv, int64_t timeout_ns);
/* The driver io is registered with, or NULL for a detached entry (urp_io_new()). */
struct urp_driver *urp__io_driver(const struct urp_io *io);

#endif /* URP_URING_UPCALLS_H */
