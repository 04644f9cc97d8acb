/* SPDX-License-Identifier: MIT */
/*
 * urpoll-pingpong: messages bounce across N socketpairs on one thread turning one driver.
 * Shows the driver's idiom (poll_ready with a waker, try_io, re-poll) and how many syscalls the
 * poller itself makes: run it under `strace -c -f` and compare io_uring_enter with "turns".
 *
 *   urpoll-pingpong [-n PAIRS] [-m MESSAGES] [-s SIZE] [-t defer|coop|basic]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <urpoll.h>

struct end {
	struct urp_io *io;
	int fd;
	bool queued;
	struct end *next_ready;
};

struct pingpong {
	struct end *ready;
	size_t size;
	unsigned long bounces;
	char *buf;
};

static struct pingpong pp;

static void wake_end(void *arg)
{
	struct end *e = arg;

	if (e->queued)
		return;
	e->queued = true;
	e->next_ready = pp.ready;
	pp.ready = e;
}

static ssize_t read_op(void *arg)
{
	struct end *e = arg;
	ssize_t n = read(e->fd, pp.buf, pp.size);

	return n < 0 ? -errno : n;
}

static int usage(const char *prog, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [-n PAIRS] [-m MESSAGES] [-s SIZE] [-t defer|coop|basic]\n\n"
		"Bounces one SIZE-byte message per socketpair (default 64 pairs, 64 bytes) until\n"
		"MESSAGES deliveries (default 200000), on one thread turning one urpoll driver.\n"
		"Prints turns, io_uring_enter calls and events, so `strace -c -f` can check that the\n"
		"poller makes no other syscall and at most one enter per turn. -t picks the\n"
		"ring setup tier (default: the best the kernel accepts).\n",
		prog);
	return status;
}

int main(int argc, char **argv)
{
	struct urp_driver_opts opts = { 0 };
	unsigned long messages = 200000;
	struct urp_driver_info info;
	struct urp_stats st;
	struct urp_driver *drv;
	struct end *ends, *e;
	int pairs = 64, opt, ret, i;

	pp.size = 64;
	while ((opt = getopt(argc, argv, "n:m:s:t:h")) != -1) {
		switch (opt) {
		case 'n':
			pairs = atoi(optarg);
			break;
		case 'm':
			messages = strtoul(optarg, NULL, 0);
			break;
		case 's':
			pp.size = strtoul(optarg, NULL, 0);
			break;
		case 't':
			if (strcmp(optarg, "coop") == 0)
				opts.flags = URP_DRIVER_TIER_COOP;
			else if (strcmp(optarg, "basic") == 0)
				opts.flags = URP_DRIVER_TIER_BASIC;
			else if (strcmp(optarg, "defer") != 0)
				return usage(argv[0], 2);
			break;
		case 'h':
			return usage(argv[0], 0);
		default:
			return usage(argv[0], 2);
		}
	}
	if (pairs < 1 || pairs > 4096 || pp.size < 1 || pp.size > 65536 || !messages)
		return usage(argv[0], 2);
	ret = urp_driver_new(&drv, &opts);
	if (ret < 0) {
		fprintf(stderr, "urpoll-pingpong: %s\n", urp_strerror(ret));
		return 1;
	}
	pp.buf = calloc(1, pp.size);
	ends = calloc(2 * (size_t)pairs, sizeof(*ends));
	if (!pp.buf || !ends)
		return 1;
	for (i = 0; i < pairs; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
			perror("urpoll-pingpong: socketpair");
			return 1;
		}
		ends[2 * i] = (struct end){ .fd = sv[0] };
		ends[2 * i + 1] = (struct end){ .fd = sv[1] };
	}
	for (i = 0; i < 2 * pairs; i++) {
		struct urp_waker w = { wake_end, &ends[i] };
		struct urp_event ev;

		ret = urp_register(drv, ends[i].fd, URP_READABLE, &ends[i].io);
		if (ret < 0) {
			fprintf(stderr, "urpoll-pingpong: register: %s\n", urp_strerror(ret));
			return 1;
		}
		urp_io_poll_ready(ends[i].io, URP_DIR_READ, &w, &ev);
	}
	for (i = 0; i < pairs; i++)
		if (write(ends[2 * i].fd, pp.buf, pp.size) != (ssize_t)pp.size)
			return 1;

	while (pp.bounces < messages) {
		ret = urp_driver_turn(drv, 1000);
		if (ret < 0) {
			fprintf(stderr, "urpoll-pingpong: turn: %s\n", urp_strerror(ret));
			return 1;
		}
		while ((e = pp.ready)) {
			struct urp_waker w = { wake_end, e };
			struct urp_event ev;
			ssize_t n;

			pp.ready = e->next_ready;
			e->queued = false;
			/* Read until EAGAIN: try_io clears the readiness with the snapshot's tick,
			 * then poll_ready stores the waker again (or finds new data at once). */
			while ((n = urp_io_try_io(e->io, URP_READABLE, read_op, e)) > 0) {
				/* Echo: back through the same socket to the other end. */
				if (write(e->fd, pp.buf, (size_t)n) != n)
					return 1;
				pp.bounces++;
			}
			if (n != -EAGAIN) {
				fprintf(stderr, "urpoll-pingpong: read: %s\n", strerror((int)-n));
				return 1;
			}
			if (urp_io_poll_ready(e->io, URP_DIR_READ, &w, &ev) == 0)
				wake_end(e);
		}
	}
	urp_driver_stats(drv, &st);
	urp_driver_info(drv, &info);
	printf("pairs=%d messages=%lu tier=%s turns=%llu enters=%llu events=%llu "
	       "stale_rejects=%llu wakes=%llu\n",
	       pairs, pp.bounces, info.tier_name, (unsigned long long)st.turns,
	       (unsigned long long)st.enters, (unsigned long long)st.events,
	       (unsigned long long)st.stale_rejects, (unsigned long long)st.wakes);
	for (i = 0; i < 2 * pairs; i++)
		urp_deregister_close(ends[i].io);
	urp_driver_turn(drv, 0);
	urp_driver_free(drv);
	free(ends);
	free(pp.buf);
	return 0;
}
