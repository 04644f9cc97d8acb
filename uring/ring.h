/* SPDX-License-Identifier: MIT */
/*
 * The seam between the driver and the kernel: every call the driver makes into liburing or
 * io_uring (and the eventfd it polls) goes through one of these names. uring/ calls liburing
 * directly only where it touches memory it owns: io_uring_prep_*() and io_uring_sqe_set_data*()
 * fill an SQE, io_uring_opcode_supported() and io_uring_free_probe() read and free a probe,
 * io_uring_buf_ring_*() fill the provided-buffer ring, and uring/ring_mode.c's probe turns a
 * small ring of its own.
 *
 * Normal builds: static inline pass-throughs, so the object code is the one liburing's own
 * inline functions give (compiled out; docs/design.md, "The injectable ring").
 * URP_FAULT builds (tests/fault/): out-of-line functions in tests/lib/fault.c that may fail
 * a call with a chosen errno or alter the completions the driver reaps (tests/lib/fault.h).
 *
 * Why not an ops table or ld --wrap: liburing 2.3 makes io_uring_get_sqe(), the CQ reads
 * (io_uring_for_each_cqe(), io_uring_cq_ready(), io_uring_cq_has_overflow()) and the CQ
 * advance inline over the shared rings, so --wrap cannot reach them, and a table would put an
 * indirect call on every SQE and CQE of the normal build.
 */
#ifndef URP_URING_RING_H
#define URP_URING_RING_H

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef URP_FAULT

int urp__ring_queue_init_params(unsigned entries, struct io_uring *ring,
				struct io_uring_params *p);
void urp__ring_queue_exit(struct io_uring *ring);
struct io_uring_probe *urp__ring_get_probe(struct io_uring *ring);
int urp__ring_enable_rings(struct io_uring *ring);
int urp__ring_eventfd(void);
struct io_uring_sqe *urp__ring_get_sqe(struct io_uring *ring);
int urp__ring_submit(struct io_uring *ring);
int urp__ring_submit_and_get_events(struct io_uring *ring);
int urp__ring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe,
				      unsigned wait_nr, struct __kernel_timespec *ts);
int urp__ring_get_events(struct io_uring *ring);
int urp__ring_register_buf_ring(struct io_uring *ring, struct io_uring_buf_reg *reg);
int urp__ring_unregister_buf_ring(struct io_uring *ring, int bgid);
unsigned urp__ring_cq_ready(const struct io_uring *ring);
bool urp__ring_cq_has_overflow(const struct io_uring *ring);
/* The reap loop reads a copy of the CQ that tests/lib/fault.c fills from the kernel's. */
struct io_uring_cqe *urp__ring_cqe_at(struct io_uring *ring, unsigned index);
void urp__ring_cq_advance(struct io_uring *ring, unsigned nr);

struct urp__cq_walk {
	unsigned seen;
};

static inline void urp__cq_walk_start(struct io_uring *ring, struct urp__cq_walk *w)
{
	(void)ring;
	w->seen = 0;
}

static inline struct io_uring_cqe *urp__cq_walk_next(struct io_uring *ring, struct urp__cq_walk *w)
{
	struct io_uring_cqe *cqe = urp__ring_cqe_at(ring, w->seen);

	if (cqe)
		w->seen++;
	return cqe;
}

#else /* !URP_FAULT */

static inline int urp__ring_queue_init_params(unsigned entries, struct io_uring *ring,
					      struct io_uring_params *p)
{
	return io_uring_queue_init_params(entries, ring, p);
}

static inline void urp__ring_queue_exit(struct io_uring *ring)
{
	io_uring_queue_exit(ring);
}

static inline struct io_uring_probe *urp__ring_get_probe(struct io_uring *ring)
{
	return io_uring_get_probe_ring(ring);
}

/* Debian's liburing 2.3 declares io_uring_enable_rings() but its shared object lacks it. */
static inline int urp__ring_enable_rings(struct io_uring *ring)
{
	long ret = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS,
			   NULL, 0);

	return ret < 0 ? -errno : 0;
}

static inline int urp__ring_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static inline struct io_uring_sqe *urp__ring_get_sqe(struct io_uring *ring)
{
	return io_uring_get_sqe(ring);
}

static inline int urp__ring_submit(struct io_uring *ring)
{
	return io_uring_submit(ring);
}

static inline int urp__ring_submit_and_get_events(struct io_uring *ring)
{
	return io_uring_submit_and_get_events(ring);
}

static inline int urp__ring_submit_and_wait_timeout(struct io_uring *ring,
						    struct io_uring_cqe **cqe, unsigned wait_nr,
						    struct __kernel_timespec *ts)
{
	return io_uring_submit_and_wait_timeout(ring, cqe, wait_nr, ts, NULL);
}

static inline int urp__ring_get_events(struct io_uring *ring)
{
	return io_uring_get_events(ring);
}

static inline int urp__ring_register_buf_ring(struct io_uring *ring, struct io_uring_buf_reg *reg)
{
	return io_uring_register_buf_ring(ring, reg, 0);
}

static inline int urp__ring_unregister_buf_ring(struct io_uring *ring, int bgid)
{
	return io_uring_unregister_buf_ring(ring, bgid);
}

static inline unsigned urp__ring_cq_ready(const struct io_uring *ring)
{
	return io_uring_cq_ready(ring);
}

static inline bool urp__ring_cq_has_overflow(const struct io_uring *ring)
{
	return io_uring_cq_has_overflow(ring);
}

static inline void urp__ring_cq_advance(struct io_uring *ring, unsigned nr)
{
	io_uring_cq_advance(ring, nr);
}

/*
 * The walk over the CQEs ready now, and over those posted while walking: wakers run inside
 * the walk and may make the kernel post more (a registration's arm when the SQ is full). It
 * keeps the ring's fields in locals and reads the tail again only when it catches up with it,
 * where io_uring_for_each_cqe() reads them all for every CQE (the body may write memory they
 * could alias). The driver never sets IORING_SETUP_CQE32, so a CQE is one slot. The head
 * moves once, at the end (urp__ring_cq_advance(ring, walk.seen)).
 */
struct urp__cq_walk {
	struct io_uring_cqe *cqes;
	const unsigned *ktail;
	unsigned head, tail, mask, seen;
};

static inline void urp__cq_walk_start(struct io_uring *ring, struct urp__cq_walk *w)
{
	w->cqes = ring->cq.cqes;
	w->ktail = ring->cq.ktail;
	w->mask = ring->cq.ring_mask;
	w->head = *ring->cq.khead;
	w->tail = io_uring_smp_load_acquire(w->ktail);
	w->seen = 0;
}

static inline struct io_uring_cqe *urp__cq_walk_next(struct io_uring *ring, struct urp__cq_walk *w)
{
	(void)ring;
	if (w->head == w->tail && w->head == (w->tail = io_uring_smp_load_acquire(w->ktail)))
		return NULL;
	w->seen++;
	return &w->cqes[w->head++ & w->mask];
}

#endif /* URP_FAULT */

#endif /* URP_URING_RING_H */
