/* SPDX-License-Identifier: MIT */
/*
 * The injectable ring: the URP_FAULT side of uring/ring.h. Each call either fails as
 * urp__fault_fail() asked or goes to liburing. The reap loop reads a copy of the CQ: CQEs are
 * taken from the kernel's ring one at a time (unless held), possibly doubled or rewritten, and
 * CQEs the kernel never posted are put in front. Built only into the fault-injection objects of
 * the suites of tests/fault/ (and the driver_faults fuzz target), never into liburpoll.
 */
#include <errno.h>
#include <string.h>

#include "../../uring/driver.h"
#include "fault.h"
#include "../../uring/ring.h"

/* Room for one reap: the rest waits in the kernel's ring for the next one, as it would if the
 * kernel had been slower. */
#define SHADOW_MAX 1024u
#define ADDED_MAX  64u

struct site_fault {
	unsigned calls;
	unsigned failed;
	unsigned skip;
	unsigned count;
	int err;
};

static struct {
	struct site_fault site[URP__FAULT_NR_SITES];
	int rings_open;
	unsigned hidden_features;
	bool hold;
	unsigned overflows;
	struct io_uring_cqe added[ADDED_MAX];
	unsigned nr_added;
	uint64_t dup_data;
	unsigned dup_count;
	/* urp__fault_poll_end(): 1 the cancel is to be queued, 2 it went out with an enter */
	int end_state;
	uint64_t end_data;
	int32_t end_res;
	struct io_uring_cqe shadow[SHADOW_MAX];
	unsigned shadow_len;
} fault;

void urp__fault_reset(void)
{
	int rings_open = fault.rings_open;

	memset(&fault, 0, sizeof(fault));
	fault.rings_open = rings_open;
}

void urp__fault_fail(enum urp__fault_site site, unsigned skip, unsigned count, int err)
{
	fault.site[site].skip = skip;
	fault.site[site].count = count;
	fault.site[site].err = err;
}

unsigned urp__fault_calls(enum urp__fault_site site)
{
	return fault.site[site].calls;
}

unsigned urp__fault_failed(enum urp__fault_site site)
{
	return fault.site[site].failed;
}

int urp__fault_rings_open(void)
{
	return fault.rings_open;
}

void urp__fault_hide_features(unsigned features)
{
	fault.hidden_features = features;
}

void urp__fault_cq_hold(bool hold)
{
	fault.hold = hold;
}

void urp__fault_cqe_add(uint64_t user_data, int32_t res, uint32_t flags)
{
	if (fault.nr_added == ADDED_MAX)
		return;
	fault.added[fault.nr_added++] =
		(struct io_uring_cqe){ .user_data = user_data, .res = res, .flags = flags };
}

void urp__fault_cqe_dup(uint64_t user_data, unsigned count)
{
	fault.dup_data = user_data;
	fault.dup_count = count;
}

void urp__fault_poll_end(uint64_t user_data, int32_t res)
{
	fault.end_state = 1;
	fault.end_data = user_data;
	fault.end_res = res;
}

void urp__fault_overflow(unsigned count)
{
	fault.overflows = count;
}

/* Counts the call; returns the error to inject, or 0 to go to the kernel. */
static int injected(enum urp__fault_site site)
{
	struct site_fault *f = &fault.site[site];

	f->calls++;
	if (!f->count)
		return 0;
	if (f->skip) {
		f->skip--;
		return 0;
	}
	f->count--;
	f->failed++;
	return f->err;
}

/* Queue the cancel of urp__fault_poll_end() into the SQEs this enter submits. */
static void queue_poll_end(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;

	if (fault.end_state != 1)
		return;
	sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, fault.end_data, 0);
	io_uring_sqe_set_data64(sqe, URP__TOKEN_FAULT);
	fault.end_state = 2;
}

int urp__ring_queue_init_params(unsigned entries, struct io_uring *ring,
				struct io_uring_params *p)
{
	int ret = injected(URP__FAULT_SETUP);

	if (ret)
		return ret;
	ret = io_uring_queue_init_params(entries, ring, p);
	if (ret == 0) {
		fault.rings_open++;
		p->features &= ~fault.hidden_features;
		ring->features &= ~fault.hidden_features;
	}
	return ret;
}

void urp__ring_queue_exit(struct io_uring *ring)
{
	fault.rings_open--;
	io_uring_queue_exit(ring);
}

struct io_uring_probe *urp__ring_get_probe(struct io_uring *ring)
{
	return injected(URP__FAULT_PROBE) ? NULL : io_uring_get_probe_ring(ring);
}

int urp__ring_enable_rings(struct io_uring *ring)
{
	int ret = injected(URP__FAULT_ENABLE);
	long sys;

	if (ret)
		return ret;
	sys = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
		      0);
	return sys < 0 ? -errno : 0;
}

int urp__ring_eventfd(void)
{
	int ret = injected(URP__FAULT_EVENTFD);

	if (ret)
		return ret;
	ret = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return ret < 0 ? -errno : ret;
}

struct io_uring_sqe *urp__ring_get_sqe(struct io_uring *ring)
{
	return injected(URP__FAULT_SQE) ? NULL : io_uring_get_sqe(ring);
}

int urp__ring_submit(struct io_uring *ring)
{
	int ret = injected(URP__FAULT_SUBMIT);

	if (ret)
		return ret;
	queue_poll_end(ring);
	return io_uring_submit(ring);
}

int urp__ring_submit_and_get_events(struct io_uring *ring)
{
	int ret = injected(URP__FAULT_ENTER);

	if (ret)
		return ret;
	queue_poll_end(ring);
	return io_uring_submit_and_get_events(ring);
}

int urp__ring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe,
				      unsigned wait_nr, struct __kernel_timespec *ts)
{
	int ret = injected(URP__FAULT_ENTER);

	if (ret)
		return ret;
	queue_poll_end(ring);
	return io_uring_submit_and_wait_timeout(ring, cqe, wait_nr, ts, NULL);
}

int urp__ring_get_events(struct io_uring *ring)
{
	int ret = injected(URP__FAULT_GET_EVENTS);

	return ret ? ret : io_uring_get_events(ring);
}

int urp__ring_register_buf_ring(struct io_uring *ring, struct io_uring_buf_reg *reg)
{
	int ret = injected(URP__FAULT_BUF_RING);

	return ret ? ret : io_uring_register_buf_ring(ring, reg, 0);
}

int urp__ring_unregister_buf_ring(struct io_uring *ring, int bgid)
{
	return io_uring_unregister_buf_ring(ring, bgid);
}

unsigned urp__ring_cq_ready(const struct io_uring *ring)
{
	return fault.nr_added + (fault.hold ? 0 : io_uring_cq_ready(ring));
}

bool urp__ring_cq_has_overflow(const struct io_uring *ring)
{
	if (fault.overflows) {
		fault.overflows--;
		return true;
	}
	return io_uring_cq_has_overflow(ring);
}

/* Move one kernel CQE into the copy, as the faults say. Returns false when there is none. */
static bool take_kernel_cqe(struct io_uring *ring)
{
	struct io_uring_cqe *kcqe, cqe;
	unsigned head;

	for (;;) {
		if (fault.hold || fault.shadow_len + 2 > SHADOW_MAX)
			return false;
		io_uring_for_each_cqe(ring, head, kcqe)
		{
			break;
		}
		if (!kcqe)
			return false;
		cqe = *kcqe;
		io_uring_cq_advance(ring, 1);
		if (cqe.user_data != URP__TOKEN_FAULT)
			break;
	}
	if (fault.end_state == 2 && cqe.user_data == fault.end_data &&
	    !(cqe.flags & IORING_CQE_F_MORE)) {
		cqe.res = fault.end_res;
		fault.end_state = 0;
	}
	fault.shadow[fault.shadow_len++] = cqe;
	if (fault.dup_count && cqe.user_data == fault.dup_data) {
		fault.dup_count--;
		fault.shadow[fault.shadow_len++] = cqe;
	}
	return true;
}

struct io_uring_cqe *urp__ring_cqe_at(struct io_uring *ring, unsigned index)
{
	if (index == 0 && fault.nr_added) {
		memcpy(fault.shadow, fault.added, fault.nr_added * sizeof(fault.added[0]));
		fault.shadow_len = fault.nr_added;
		fault.nr_added = 0;
	}
	/* Wakers may make the kernel post more while the loop runs: take them in this pass,
	 * as io_uring_for_each_cqe() re-reading the tail does. */
	if (index >= fault.shadow_len && !take_kernel_cqe(ring))
		return NULL;
	return &fault.shadow[index];
}

void urp__ring_cq_advance(struct io_uring *ring, unsigned nr)
{
	(void)ring;
	(void)nr;
	fault.shadow_len = 0;
}
