/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: the backend table. The peers (libev, libevent, libuv) are referenced weakly:
 * a build that leaves one out links, and the table holds NULL for it (shown as n/a).
 */
#include "bench.h"

extern const struct bench_backend be_libev __attribute__((weak));
extern const struct bench_backend be_libevent __attribute__((weak));
extern const struct bench_backend be_libuv __attribute__((weak));

const struct bench_backend *const bench_backends[BE_COUNT] = {
	[BE_URPOLL] = &be_urpoll,
	[BE_URPOLL_RING] = &be_urpoll_ring,
	[BE_EPOLL] = &be_epoll,
	[BE_LIBEV] = &be_libev,
	[BE_LIBEVENT] = &be_libevent,
	[BE_LIBUV] = &be_libuv,
};

const char *const bench_backend_names[BE_COUNT] = {
	[BE_URPOLL] = "urpoll",
	[BE_URPOLL_RING] = "urpoll-ring",
	[BE_EPOLL] = "epoll",
	[BE_LIBEV] = "libev",
	[BE_LIBEVENT] = "libevent",
	[BE_LIBUV] = "libuv",
};
