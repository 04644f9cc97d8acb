/* SPDX-License-Identifier: MIT */
/*
 * Blocking waits for thread-per-connection code: a readiness future whose waker is a futex on
 * the caller's stack. Safe because a cancel (and a Done) returns only after a waker already
 * taken has returned (core/io.c), so nothing writes the stack word after we leave. It lives
 * above the driver because it must know who turns the entry's ring.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../core/atomic.h"
#include "../../core/ready.h"
#include "../upcalls.h"

static void wake_thread(void *arg)
{
	uint32_t *word = arg;

	/* Pairs with the acquire load in park(). */
	urp__store_release(word, 1);
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleep until *word is set or the absolute CLOCK_MONOTONIC deadline passes (NULL: never).
 * Returns 0, or -ETIMEDOUT. */
static int park(uint32_t *word, const struct timespec *deadline)
{
	while (!urp__load_acquire(word)) {
		long ret = syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, 0, deadline, NULL,
				   FUTEX_BITSET_MATCH_ANY);

		if (ret < 0 && errno == ETIMEDOUT)
			return -ETIMEDOUT;
		/* EAGAIN: already set; EINTR: a signal, wait on. */
	}
	return 0;
}

int urp_io_wait(struct urp_io *io, unsigned interest, int timeout_ms, struct urp_event *ev)
{
	struct timespec deadline, *dl = NULL;
	struct urp_driver *drv;
	struct urp_readiness r;
	struct urp_waker waker;
	uint32_t woken;
	int ret;

	if (!io || !ev || timeout_ms < -1 || !urp__interest_valid(interest))
		return -EINVAL;
	/* Only the thread that turns the ring can make the entry ready: parked, it never would. */
	drv = urp__io_driver(io);
	if (drv && urp__driver_on_thread(drv))
		return -EDEADLK;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
		dl = &deadline;
	}
	waker = (struct urp_waker){ wake_thread, &woken };
	for (;;) {
		woken = 0;
		urp_readiness_init(&r, io, interest);
		ret = urp_readiness_poll(&r, &waker, ev);
		if (ret == -EAGAIN) {
			if (park(&woken, dl) < 0) {
				urp_readiness_cancel(&r);
				return -ETIMEDOUT;
			}
			ret = urp_readiness_poll(&r, &waker, ev);
		}
		if (ret < 0)
			return ret;
		if (ev->shutdown)
			return -ESHUTDOWN;
		/* Done may see the readiness cleared again by another consumer: wait anew. */
		if (ev->ready)
			return 0;
	}
}
