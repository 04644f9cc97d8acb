// SPDX-License-Identifier: MIT
/*
 * urpoll.h compiled as C++ (make check: -std=c++11, c++17 and c++20 with -Wall -Wextra
 * -pedantic -Werror), linked against the library and run: the caller-owned structs keep their
 * C sizes and alignments, and the core works from C++ code. Exits 0, or 1 with a message.
 */
#include <cerrno>
#include <cstdio>

#include <urpoll.h>

static_assert(sizeof(urp_readiness) == 64 && alignof(urp_readiness) == 8, "urp_readiness");
static_assert(sizeof(urp_task) == 48 && alignof(urp_task) == 8, "urp_task");
static_assert(sizeof(urp_stats) == 256, "urp_stats");

static int woken;

static void wake(void *arg)
{
	++*static_cast<int *>(arg);
}

int main()
{
	urp_io *io = nullptr;
	urp_readiness r;
	urp_event ev;
	urp_waker w = { wake, &woken };

	if (urp_io_new(&io) != 0) {
		std::fprintf(stderr, "cxx_header: urp_io_new failed\n");
		return 1;
	}
	urp_readiness_init(&r, io, URP_READABLE);
	if (urp_readiness_poll(&r, &w, &ev) != -EAGAIN) {
		std::fprintf(stderr, "cxx_header: a new entry is ready\n");
		return 1;
	}
	urp_io_set_readiness(io, URP_READABLE);
	if (woken != 1 || urp_readiness_poll(&r, &w, &ev) != 0 || !(ev.ready & URP_READABLE)) {
		std::fprintf(stderr, "cxx_header: the future was not woken\n");
		return 1;
	}
	urp_io_free(io);
	return 0;
}
