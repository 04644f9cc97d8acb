/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the suites of ring mode (uring_ringmode, ring_fault), on top of
 * uring_util.h: driver options, a registration in ring mode, a registered socketpair, taking
 * everything queued, and a byte pattern to check streams against.
 */
#ifndef URP_TESTS_RING_UTIL_H
#define URP_TESTS_RING_UTIL_H

#include <stdlib.h>

#include "uring_util.h"

static inline struct urp_driver_opts ring_opts(unsigned count, unsigned size, unsigned cap,
					unsigned hwm)
{
	return (struct urp_driver_opts){
		.buf_count = count, .buf_size = size, .buf_cap = cap, .send_hwm = hwm
	};
}

static inline struct urp_io *ring_reg(int fd)
{
	struct urp_io *io = NULL;
	int ret = urp_register_ring(drv, fd, &io);

	cr_assert_eq(ret, 0, "urp_register_ring: %d (%s)", ret, urp_strerror(ret));
	return io;
}

/* A driver turned by this thread, and a socketpair whose sv[0] is registered in ring mode. */
static inline struct urp_io *ring_pair(const struct urp_driver_opts *opts, int sv[2])
{
	struct urp_io *io;

	drv = driver_new(opts);
	turn(drv, 0);
	unix_pair(sv);
	io = ring_reg(sv[0]);
	turn(drv, 0);
	return io;
}

/* Take until -EAGAIN (turning while nothing is queued, up to a bound), appending the data to
 * out; returns the last take's result (0: EOF, -EAGAIN, -errno). */
static inline int take_all(struct urp_io *io, char *out, size_t cap, size_t *len, size_t want)
{
	struct urp_buf *buf;
	int ret = -EAGAIN;

	for (int idle = 0; idle < TURN_TRIES && *len < want;) {
		ret = urp_io_take(io, &buf);
		if (ret == 1) {
			cr_assert_leq(*len + buf->len, cap);
			memcpy(out + *len, buf->data, buf->len);
			*len += buf->len;
			urp_buf_release(buf);
			idle = 0;
			continue;
		}
		if (ret != -EAGAIN)
			return ret;
		turn(drv, TURN_WAIT_MS / 10);
		idle++;
	}
	return ret;
}

static inline void fill_pattern(char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)((i * 131 + seed) & 0xff);
}

#endif /* URP_TESTS_RING_UTIL_H */
