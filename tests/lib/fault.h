/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for URP_FAULT builds only (uring/fault.c behind the seam of uring/ring.h):
 * fail a ring call with a chosen errno, keep the kernel's completions back, or deliver
 * completions the kernel did not post. The suites of tests/fault/ drive it; the library proper
 * never contains it. Not thread-safe: set faults while no other thread turns a driver.
 */
#ifndef URP_URING_FAULT_H
#define URP_URING_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#ifndef URP_FAULT
#error "uring/fault.h belongs to URP_FAULT builds"
#endif

/* Where a call can be made to fail. */
enum urp__fault_site {
	URP__FAULT_SETUP,      /* io_uring_queue_init_params(), each tier tried */
	URP__FAULT_PROBE,      /* io_uring_get_probe_ring(): NULL (err < 0 arms it, no errno) */
	URP__FAULT_ENABLE,     /* IORING_REGISTER_ENABLE_RINGS on the first turn */
	URP__FAULT_EVENTFD,    /* the unpark eventfd */
	URP__FAULT_SQE,	       /* io_uring_get_sqe(): NULL, SQ full (err < 0 arms it, no errno) */
	URP__FAULT_SUBMIT,     /* io_uring_submit() made to free SQ space */
	URP__FAULT_ENTER,      /* the turn's io_uring_enter (submit and wait, or get events) */
	URP__FAULT_GET_EVENTS, /* io_uring_get_events() flushing an overflow */
	URP__FAULT_BUF_RING,   /* io_uring_register_buf_ring() (ring mode's first registration) */
	URP__FAULT_NR_SITES
};

/* The calls at site after the next skip ones, count of them, return err (< 0) without reaching
 * the kernel; the sites that return a pointer return NULL instead, but still need err < 0 (0
 * injects nothing). A later call for the same site replaces this one. */
void urp__fault_fail(enum urp__fault_site site, unsigned skip, unsigned count, int err);
/* Calls made at site since the last reset, failed ones included. */
unsigned urp__fault_calls(enum urp__fault_site site);
/* Calls failed at site since the last reset. */
unsigned urp__fault_failed(enum urp__fault_site site);
/* Rings set up, minus rings exited: 0 when no failure path leaked one. */
int urp__fault_rings_open(void);
/* Clear these IORING_FEAT_* bits from what the kernel reports at setup (an older kernel). */
void urp__fault_hide_features(unsigned features);

/* While held, the kernel's CQEs stay in its ring: they arrive late, in order, once released. */
void urp__fault_cq_hold(bool hold);
/* A CQE the kernel never posted, reaped first at the next reap. */
void urp__fault_cqe_add(uint64_t user_data, int32_t res, uint32_t flags);
/* The next count kernel CQEs carrying user_data are reaped twice in a row. */
void urp__fault_cqe_dup(uint64_t user_data, unsigned count);
/*
 * End the kernel's poll carrying user_data at the next enter, as a CQ overflow or an outside
 * cancel does: an ASYNC_CANCEL the driver never sees, and the poll's last CQE (no F_MORE)
 * arrives carrying res instead of -ECANCELED. So the injected ending is one the kernel really
 * made: no poll stays armed behind the driver's back.
 */
void urp__fault_poll_end(uint64_t user_data, int32_t res);
/* io_uring_cq_has_overflow() says yes for the next count calls (IORING_SQ_CQ_OVERFLOW). */
void urp__fault_overflow(unsigned count);

/* Forget every fault and count, but not the rings still open (a harness may reset between
 * inputs while its driver lives on). */
void urp__fault_reset(void);

#endif /* URP_URING_FAULT_H */
