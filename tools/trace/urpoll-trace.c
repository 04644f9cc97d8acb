/* SPDX-License-Identifier: MIT */
/*
 * urpoll-trace: count urpoll's stale-event rejections and wake batches with eBPF.
 *
 * Attaches bpf/urpoll.bpf.c to the library's USDT probes (urpoll:stale_reject,
 * urpoll:wake_batch) in every process that maps it, or in one (-p), and prints the counts and
 * two log2 histograms of each interval (since attach with --cumulative), as text or NDJSON
 * (-j), libbpf-tools style (-T for timestamps). The counters live in the per-CPU map
 * urp_stats, whose BTF names every field, so bpftool shows the totals since attach; --pin
 * keeps the maps after the tool exits.
 *
 *   urpoll-trace [-p PID] [-l LIB] [-j] [-T] [--cumulative] [--pin DIR] [--events]
 *                [--io-uring] [-v] [interval] [count]
 *
 * This file: the options and the intervals; the BPF side is attach.c's, the printing output.c's
 * (trace.h).
 */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "trace.h"

const char prog_name[] = "urpoll-trace";

struct env env = {
	.interval_s = 1.0,
};

const char *argp_program_version = "urpoll-trace 0.1";
static const char doc[] =
	"Count urpoll's stale-event rejections and wake batches with eBPF (USDT probes).\n"
	"\n"
	"EXAMPLES:\n"
	"    urpoll-trace               # every process using the library, every second\n"
	"    urpoll-trace -p 1234 5 3   # process 1234 only, every 5 s, 3 times\n"
	"    urpoll-trace -T 10         # every 10 s, each report with its time\n"
	"    urpoll-trace --cumulative  # totals since attach, not per interval\n"
	"    urpoll-trace -j 0.5        # one JSON object per half second (NDJSON)\n"
	"    urpoll-trace --events      # also print each stale rejection\n"
	"    urpoll-trace -p 1234 --io-uring   # and the kernel's io_uring completions\n"
	"    urpoll-trace --pin /sys/fs/bpf/urpoll   # maps outlive the tool\n"
	"\v"
	"Every interval (default 1 s; fractions allowed) prints what happened in that interval "
	"(with --cumulative: since attach), the rate over the interval, and two log2 "
	"histograms:\n"
	"  stale_rejects  clears refused: a completion landed after the snapshot\n"
	"  wake_batches   non-empty flushes of the 32-waker wake array\n"
	"  wakes          wakers called (the sum of the batch sizes)\n"
	"  lost_events    --events records dropped because the ring buffer was full\n"
	"  wakers/batch   histogram of batch sizes (1..32)\n"
	"  stale lag      histogram of current - event tick (mod 32768), in ticks\n"
	"With -p the tool stops (after a final interval) when the process exits; Ctrl-C or "
	"SIGTERM prints the interval in progress and exits 0.\n"
	"Exit status: 0, 1 on a runtime error (privileges, BTF, uprobes, the library or the "
	"process not found), 2 on bad usage (checked before anything needs root).\n"
	"\n"
	"The numbers live in the per-CPU map urp_stats, never cleared (the tool prints "
	"differences): totals since attach, one value per CPU, its BTF naming every field. With "
	"--pin DIR: `bpftool map dump pinned DIR/urp_stats`, also after the tool exits (rm -r DIR "
	"removes the pins). Without, by id: `bpftool map dump id ID`, with the ID the tool prints "
	"at start; not by name: several tracers, or a pinned copy, make several maps named "
	"urp_stats (docs/tracing.md).\n"
	"\n"
	"Cost: each traced probe hit takes a uprobe trap (measured 5-6 us on a 2-vCPU VM, see "
	"docs/tracing.md); processes not traced pay nothing (each probe is behind a semaphore the "
	"kernel sets only while attached). Needs root: CAP_SYS_ADMIN, which Linux 6.16 and later "
	"require to attach uprobes whatever kernel.perf_event_paranoid says (CAP_BPF and "
	"CAP_PERFMON load the programs, and were enough before 6.16); kernel BTF and uprobes; "
	"mounts tracefs and bpffs when missing. Uprobes attach to a file: after the library is "
	"rebuilt or reinstalled, restart the tool.\n";

enum {
	OPT_PIN = 0x100,
	OPT_EVENTS,
	OPT_IO_URING,
	OPT_CUMULATIVE,
};

static const struct argp_option opts[] = {
	{ "pid", 'p', "PID", 0, "Trace this process only (its library is found in /proc/PID/maps)",
	  0 },
	{ "lib", 'l', "LIB", 0,
	  "The library (or statically linked program) carrying the probes; default: the "
	  "liburpoll.so.0 built next to this tool, else the installed one",
	  0 },
	{ "json", 'j', NULL, 0,
	  "One JSON object per interval (NDJSON), same numbers; \"cumulative\" says which", 0 },
	{ "timestamp", 'T', NULL, 0,
	  "Print the time (HH:MM:SS) of each interval; -j: a \"time\" field", 0 },
	{ "cumulative", OPT_CUMULATIVE, NULL, 0,
	  "Counts and histograms since attach, not per interval", 0 },
	{ "pin", OPT_PIN, "DIR", 0,
	  "Pin the maps in DIR (on bpffs, e.g. /sys/fs/bpf/urpoll) so they outlive the tool; "
	  "prints the bpftool command to read them; remove with rm -r DIR",
	  0 },
	{ "events", OPT_EVENTS, NULL, 0,
	  "Also record each stale rejection (pid, tid, token, ticks, time) in the ring buffer "
	  "urp_events and print them every interval; drops are counted in lost_events",
	  0 },
	{ "io-uring", OPT_IO_URING, NULL, 0,
	  "With -p: also count the process's io_uring completions and CQ overflows from the "
	  "kernel's tracepoints (io_uring:io_uring_complete, io_uring:io_uring_cqe_overflow)",
	  0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's messages", 0 },
	{ NULL, 'h', NULL, OPTION_HIDDEN, "Show the full help", 0 },
	{},
};

void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/*
 * Option key with its argument arg as the user spelled it: "--pid" (without "=value") or "-p".
 * argp has just read it with getopt_long(): state->next is past the argument's word.
 */
static const char *opt_spelled(const struct argp_state *state, int key, const char *arg)
{
	const char *token = state->argv[state->next - 1];
	static char name[64];

	if (arg == token)
		token = state->argv[state->next - 2];
	if (token[0] == '-' && token[1] == '-')
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(token, "="), token);
	else
		snprintf(name, sizeof(name), "-%c", key);
	return name;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	static int positional;
	char *end;
	long pid;

	switch (key) {
	case 'h':
		argp_state_help(state, stdout, ARGP_HELP_STD_HELP);
		break;
	case 'p':
		errno = 0;
		pid = strtol(arg, &end, 10);
		if (errno || *end || end == arg || pid <= 0 || pid > INT_MAX)
			argp_error(state, "%s: invalid PID '%s' (a process id, 1 or more)",
				   opt_spelled(state, key, arg), arg);
		env.pid = (pid_t)pid;
		break;
	case 'l':
		env.lib = arg;
		break;
	case 'j':
		env.json = true;
		break;
	case 'T':
		env.timestamp = true;
		break;
	case OPT_CUMULATIVE:
		env.cumulative = true;
		break;
	case OPT_PIN:
		if (arg[0] != '/')
			argp_error(state,
				   "%s: '%s' is not an absolute directory (e.g. " BPFFS_DIR
				   "/urpoll)",
				   opt_spelled(state, key, arg), arg);
		env.pin_dir = arg;
		break;
	case OPT_EVENTS:
		env.events = true;
		break;
	case OPT_IO_URING:
		env.io_uring = true;
		break;
	case 'v':
		env.verbose = true;
		break;
	case ARGP_KEY_END:
		if (env.io_uring && !env.pid)
			argp_error(state, "--io-uring needs -p PID: the io_uring tracepoints fire for "
					  "every ring on the machine");
		break;
	case ARGP_KEY_ARG:
		errno = 0;
		if (positional == 0) {
			env.interval_s = strtod(arg, &end);
			if (errno || *end || end == arg ||
			    !(env.interval_s >= 0.01 && env.interval_s <= 86400))
				argp_error(state,
					   "interval: '%s' is not a number of seconds from 0.01 "
					   "to 86400",
					   arg);
		} else if (positional == 1) {
			env.count = strtoul(arg, &end, 10);
			if (errno || *end || end == arg || arg[0] == '-' || env.count == 0)
				argp_error(state,
					   "count: '%s' is not a number of intervals, 1 or more",
					   arg);
		} else {
			argp_error(state, "unexpected argument '%s'", arg);
		}
		positional++;
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *format, va_list args)
{
	if (!env.verbose)
		return 0;
	return vfprintf(stderr, format, args);
}


static int open_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0 && errno == ESRCH)
		fail("process %d not found", pid);
	/* Before 5.3 there is no pidfd: the exit is then noticed by kill(pid, 0) each interval. */
	return fd;
}

static bool process_gone(pid_t pid, int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	char stat[64], state = 0;
	FILE *f;

	if (pidfd >= 0)
		return poll(&p, 1, 0) > 0;
	snprintf(stat, sizeof(stat), "/proc/%d/stat", pid);
	f = fopen(stat, "r");
	if (!f)
		return true;
	/* A zombie has exited too (kill(pid, 0) still succeeds on it). */
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = 0;
	fclose(f);
	return state == 'Z' || state == 'X';
}

static void ignore_signal(int sig)
{
}

static void add_seconds(struct timespec *ts, double s)
{
	long long ns = (long long)(s * 1e9);

	ts->tv_sec += (time_t)(ns / 1000000000LL);
	ts->tv_nsec += (long)(ns % 1000000000LL);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Milliseconds left until deadline, rounded up (0 once it has passed). */
static int ms_until(const struct timespec *deadline)
{
	struct timespec now;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL +
	     (deadline->tv_nsec - now.tv_nsec);
	return ns <= 0 ? 0 : (int)((ns + 999999) / 1000000);
}

int main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = opts,
		.parser = parse_arg,
		.args_doc = "[interval] [count]",
		.doc = doc,
	};
	static struct tracer t;
	struct timespec deadline;
	struct pollfd fds[3];
	int sigfd, pidfd = -1, nfds = 0, ring_idx = -1, pid_idx = -1;
	const char *why_stop = NULL;
	sigset_t stop_signals;
	__u32 map_id;
	int err, i;

	/* Usage errors exit 2 (argp's default is EX_USAGE, 64), and getopt's own messages name
	 * the tool as every other one does, not the path it was started by. */
	argp_err_exit_status = 2;
	argv[0] = (char *)prog_name;
	err = argp_parse(&argp, argc, argv, 0, NULL, NULL);
	if (err)
		return 2;
	libbpf_set_print(libbpf_print);

	check_environment();
	if (env.pid)
		pidfd = open_pidfd(env.pid);
	find_library(t.lib);

	/*
	 * Signals arrive through a descriptor, so none can slip between a check and a wait. A
	 * shell starts background jobs with SIGINT ignored, and an ignored signal never becomes
	 * pending: give both a handler first (it never runs while they are blocked).
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = ignore_signal }, NULL);
	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = ignore_signal }, NULL);
	sigprocmask(SIG_BLOCK, &stop_signals, NULL);
	sigfd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
	if (sigfd < 0)
		fail("signalfd: %s", strerror(errno));

	load_and_attach(&t);
	if (env.pid && process_gone(env.pid, pidfd))
		fail("process %d is gone", env.pid);

	clock_gettime(CLOCK_MONOTONIC, &t.start);
	t.last = t.start;
	/* By id or by pinned path: `bpftool map dump name urp_stats` mixes every map of that
	 * name, another tracer's or an earlier run's pinned copy (docs/tracing.md). */
	map_id = stats_map_id(&t);
	fprintf(stderr, "counters in map id %u: bpftool map dump id %u\n", map_id, map_id);
	if (env.pin_dir)
		fprintf(stderr, "maps pinned: bpftool map dump pinned %s\n", t.pin_paths[0]);
	/* Last: a script waits for this line before starting its workload. */
	if (env.pid)
		fprintf(stderr, "tracing urpoll in %s (pid %d), Ctrl-C to stop\n", t.lib, env.pid);
	else
		fprintf(stderr, "tracing urpoll in %s (pid all), Ctrl-C to stop\n", t.lib);

	fds[nfds++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
	if (pidfd >= 0) {
		pid_idx = nfds;
		fds[nfds++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
	}
	if (t.ring) {
		ring_idx = nfds;
		fds[nfds++] = (struct pollfd){ .fd = ring_buffer__epoll_fd(t.ring), .events = POLLIN };
	}

	deadline = t.start;
	add_seconds(&deadline, env.interval_s);
	for (;;) {
		int n = poll(fds, nfds, ms_until(&deadline));

		if (n < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		if (n > 0 && (fds[0].revents & POLLIN)) {
			why_stop = "";
			break;
		}
		if (env.pid && ((pid_idx >= 0 && (fds[pid_idx].revents & POLLIN)) ||
				(pidfd < 0 && process_gone(env.pid, pidfd)))) {
			why_stop = "exited";
			break;
		}
		/* Woken early: the ring is half full. */
		if (ring_idx >= 0 && (fds[ring_idx].revents & POLLIN))
			drain_events(&t);
		if (ms_until(&deadline) > 0)
			continue;
		drain_events(&t);
		print_interval(&t, env.count && t.intervals + 1 >= env.count);
		if (env.count && t.intervals >= env.count)
			goto out;
		add_seconds(&deadline, env.interval_s);
		/* Printing fell behind (a stopped terminal): skip, do not burst. */
		if (ms_until(&deadline) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &deadline);
			add_seconds(&deadline, env.interval_s);
		}
	}
	/* Stopped: the interval in progress is printed, then the totals stand as final. */
	drain_events(&t);
	print_interval(&t, true);
	if (why_stop && *why_stop)
		fprintf(stderr, "%s: process %d %s\n", prog_name, env.pid, why_stop);
out:
	if (env.pin_dir)
		fprintf(stderr,
			"%s: maps stay pinned in %s: bpftool map dump pinned %s; remove with "
			"rm -r %s\n",
			prog_name, env.pin_dir, t.pin_paths[0], env.pin_dir);
	for (i = 0; i < nfds; i++)
		if (fds[i].fd != sigfd && i != ring_idx)
			close(fds[i].fd);
	tracer_free(&t);
	return 0;
}
