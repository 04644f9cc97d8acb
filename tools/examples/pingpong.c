/* SPDX-License-Identifier: MIT */
/*
 * urpoll-pingpong: messages bounce across N socketpairs on one thread turning one driver.
 * Shows the driver's idiom (poll_ready with a waker, try_io, re-poll) and how many syscalls the
 * poller itself makes: run it under `strace -c -f` and compare io_uring_enter with "turns".
 *
 *   urpoll-pingpong [-n PAIRS] [-m MESSAGES] [-s SIZE] [-t defer|coop|basic] [-h]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <urpoll.h>

#define PROG	  "urpoll-pingpong"
#define MAX_PAIRS 4096
#define MAX_SIZE  65536

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

static int usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: " PROG " [-n PAIRS] [-m MESSAGES] [-s SIZE] [-t TIER] [-h]\n"
		"\n"
		"Bounces one SIZE-byte message over each of PAIRS AF_UNIX socketpairs until\n"
		"MESSAGES deliveries in all, on one thread turning one urpoll driver: each end\n"
		"waits with poll_ready, reads with try_io until EAGAIN and echoes what it read.\n"
		"Prints one line: pairs, messages, the ring's tier, driver turns, io_uring_enter\n"
		"calls, readiness events, stale-event rejections and wakes. Under `strace -c -f`\n"
		"the poller makes no syscall but io_uring_enter, at most one per turn.\n"
		"\n"
		"  -n, --pairs PAIRS       socketpairs, 1 to %d (default 64)\n"
		"  -m, --messages N        deliveries before it stops, 1 to %u\n"
		"                          (default 200000)\n"
		"  -s, --size SIZE         bytes per message, 1 to %d (default 64)\n"
		"  -t, --tier TIER         the ring's setup tier: defer (SINGLE_ISSUER and\n"
		"                          DEFER_TASKRUN), coop (COOP_TASKRUN) or basic\n"
		"                          (default: the best the kernel accepts)\n"
		"  -h, --help              this text\n"
		"\n"
		"EXAMPLES:\n"
		"    " PROG "                  # 64 pairs, 200000 messages\n"
		"    " PROG " -n 256 -s 1024 -t coop\n"
		"    strace -c -f " PROG "     # count the poller's syscalls\n"
		"\n"
		"Exit status: 0 when every message arrived, 1 on a runtime error (no\n"
		"io_uring, a failed read or write), 2 on bad usage.\n",
		MAX_PAIRS, UINT_MAX, MAX_SIZE);
	return status;
}

/* The option getopt_long() has just returned with optarg, as the user spelled it: "--name"
 * (without "=value") or "-c". */
static const char *opt_name(int opt, char **argv)
{
	const char *token = optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1];
	static char name[64];

	if (token[0] == '-' && token[1] == '-')
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(token, "="), token);
	else
		snprintf(name, sizeof(name), "-%c", opt);
	return name;
}

/* optarg as a decimal in [min, max], or a line naming the option and false. */
static bool parse_count(int opt, char **argv, unsigned long min, unsigned long max,
			unsigned long *out)
{
	const char *digits = optarg + (optarg[0] == '-');
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(optarg, &end, 10);
	if (*optarg && !*end && !errno && optarg[0] != '-' && v >= min && v <= max) {
		*out = v;
		return true;
	}
	if (*digits && strspn(digits, "0123456789") == strlen(digits))
		fprintf(stderr, PROG ": %s: %s is out of range (%lu to %lu)\n", opt_name(opt, argv),
			optarg, min, max);
	else
		fprintf(stderr, PROG ": %s: '%s' is not a number (%lu to %lu)\n",
			opt_name(opt, argv), optarg, min, max);
	return false;
}

/* After getopt_long() with ":" leading its optstring: ':', '?' or -1 (an operand). */
static int usage_error(int opt, char **argv)
{
	const char *token = argv[optind - 1];

	if (opt == -1)
		fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", argv[optind]);
	else if (opt == ':' && token[0] == '-' && token[1] == '-')
		fprintf(stderr, PROG ": %s needs an argument (see --help)\n", token);
	else if (opt == ':')
		fprintf(stderr, PROG ": -%c needs an argument (see --help)\n", optopt);
	else if (optopt == 'h')
		fprintf(stderr, PROG ": --help takes no argument (see --help)\n");
	else if (optopt)
		fprintf(stderr, PROG ": unknown option '-%c' (see --help)\n", optopt);
	else
		fprintf(stderr, PROG ": unknown option '%.*s' (see --help)\n",
			(int)strcspn(token, "="), token);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "pairs", required_argument, NULL, 'n' },
		{ "messages", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "tier", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct urp_driver_opts opts = { 0 };
	unsigned long messages = 200000, pairs_arg = 64, size_arg = 64;
	struct urp_driver_info info;
	struct urp_stats st;
	struct urp_driver *drv;
	struct end *ends, *e;
	int pairs, opt, ret, i;

	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, ":n:m:s:t:h", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (!parse_count(opt, argv, 1, MAX_PAIRS, &pairs_arg))
				return 2;
			break;
		case 'm':
			if (!parse_count(opt, argv, 1, UINT_MAX, &messages))
				return 2;
			break;
		case 's':
			if (!parse_count(opt, argv, 1, MAX_SIZE, &size_arg))
				return 2;
			break;
		case 't':
			if (strcmp(optarg, "coop") == 0) {
				opts.flags = URP_DRIVER_TIER_COOP;
			} else if (strcmp(optarg, "basic") == 0) {
				opts.flags = URP_DRIVER_TIER_BASIC;
			} else if (strcmp(optarg, "defer") != 0) {
				fprintf(stderr,
					PROG ": %s: unknown tier '%s' (defer, coop or basic)\n",
					opt_name(opt, argv), optarg);
				return 2;
			}
			break;
		case 'h':
			return usage(0);
		default:
			return usage_error(opt, argv);
		}
	}
	if (optind < argc)
		return usage_error(-1, argv);
	pairs = (int)pairs_arg;
	pp.size = size_arg;
	ret = urp_driver_new(&drv, &opts);
	if (ret < 0) {
		fprintf(stderr, PROG ": %s\n", urp_strerror(ret));
		return 1;
	}
	pp.buf = calloc(1, pp.size);
	ends = calloc(2 * (size_t)pairs, sizeof(*ends));
	if (!pp.buf || !ends) {
		fprintf(stderr, PROG ": %s\n", strerror(ENOMEM));
		return 1;
	}
	for (i = 0; i < pairs; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
			perror(PROG ": socketpair");
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
			fprintf(stderr, PROG ": register: %s\n", urp_strerror(ret));
			return 1;
		}
		urp_io_poll_ready(ends[i].io, URP_DIR_READ, &w, &ev);
	}
	for (i = 0; i < pairs; i++)
		if (write(ends[2 * i].fd, pp.buf, pp.size) != (ssize_t)pp.size) {
			perror(PROG ": write");
			return 1;
		}

	while (pp.bounces < messages) {
		ret = urp_driver_turn(drv, 1000);
		if (ret < 0) {
			fprintf(stderr, PROG ": turn: %s\n", urp_strerror(ret));
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
				if (write(e->fd, pp.buf, (size_t)n) != n) {
					perror(PROG ": write");
					return 1;
				}
				pp.bounces++;
			}
			if (n != -EAGAIN) {
				fprintf(stderr, PROG ": read: %s\n", strerror((int)-n));
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
