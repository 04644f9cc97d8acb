// SPDX-License-Identifier: MIT
/*
 * uring_abi: the public structs that may grow keep URPOLL_0's sizes, with reserved room that
 * the library fills with zeros (outputs) or refuses when set (inputs), as liburing's
 * io_uring_params and the kernel's ABI structs do (STYLE.md, Code 13).
 */
#include <stddef.h>

#include "uring_util.h"

TestSuite(uring_abi, .fini = drv_teardown, .timeout = 30);

/* struct urp_stats grew a field per release and broke every binary built against the last. */
Test(uring_abi, stats_info_and_opts_have_room_to_grow)
{
	struct urp_stats st;
	struct urp_driver_info info;
	struct urp_driver_opts opts;

	cr_assert_eq(sizeof(st), 256);
	cr_assert_eq(sizeof(opts), 64);
	if (sizeof(void *) == 8)
		cr_assert_eq(sizeof(info), 128);
	/* Room enough for the counters and options planned (ring mode, timers). */
	cr_assert_geq(sizeof(st.reserved), 12 * sizeof(uint64_t));
	cr_assert_geq(sizeof(opts.reserved), 8 * sizeof(unsigned));
	cr_assert_geq(sizeof(info.reserved), 8 * sizeof(unsigned));
	cr_assert_eq(offsetof(struct urp_stats, reserved) + sizeof(st.reserved), sizeof(st));
	cr_assert_eq(offsetof(struct urp_driver_opts, reserved) + sizeof(opts.reserved),
		     sizeof(opts));
}

/* What the library writes it writes whole: reserved room reads as zeros, never as the
 * caller's garbage. */
Test(uring_abi, stats_and_info_fill_reserved_with_zeros)
{
	struct urp_driver_info info;
	struct urp_stats st;

	drv = driver_new(NULL);
	turn(drv, 0);
	memset(&st, 0xa5, sizeof(st));
	memset(&info, 0xa5, sizeof(info));
	cr_assert_eq(urp_driver_stats(drv, &st), 0);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	for (size_t i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++)
		cr_assert_eq(st.reserved[i], 0, "stats reserved[%zu]", i);
	for (size_t i = 0; i < sizeof(info.reserved) / sizeof(info.reserved[0]); i++)
		cr_assert_eq(info.reserved[i], 0, "info reserved[%zu]", i);
	cr_assert_eq(st.turns, 1);
	memset(&st, 0xa5, sizeof(st));
	cr_assert_eq(urp_detached_stats(&st), 0);
	for (size_t i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++)
		cr_assert_eq(st.reserved[i], 0, "detached stats reserved[%zu]", i);
}

/* An option this library does not know is refused, not ignored: a program built for a later
 * version learns it at once. */
Test(uring_abi, nonzero_reserved_opts_are_einval)
{
	struct urp_driver_opts opts = {0};
	struct urp_driver *d = NULL;

	for (size_t i = 0; i < sizeof(opts.reserved) / sizeof(opts.reserved[0]); i++) {
		opts.reserved[i] = 1;
		cr_assert_eq(urp_driver_new(&d, &opts), -EINVAL, "reserved[%zu] accepted", i);
		cr_assert_null(d);
		opts.reserved[i] = 0;
	}
	drv = driver_new(&opts);
}
