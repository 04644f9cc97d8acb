/* SPDX-License-Identifier: MIT */
/*
 * urpoll-trace: count urpoll's stale-event rejections and wake batches with eBPF.
 *
 * Attaches bpf/urpoll.bpf.c to the library's USDT probes (urpoll:stale_reject,
 * urpoll:wake_batch) in every process that maps it, or in one (-p), and prints the totals and
 * two log2 histograms every interval, as text or NDJSON (-j). The counters live in the per-CPU
 * map urp_stats, whose BTF names every field, so `bpftool map dump name urp_stats` shows the
 * same numbers; --pin keeps the maps after the tool exits.
 *
 *   urpoll-trace [-p PID] [-l LIB] [-j] [--pin DIR] [--events] [-v] [interval] [count]
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/types.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "urpoll_trace.h"
#include "urpoll.skel.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
/* Where `make install` puts the library (the Makefile may pass its LIBDIR). */
#ifndef URP_LIBDIR
#define URP_LIBDIR "/usr/local/lib"
#endif

#define TRACEFS_DIR  "/sys/kernel/tracing"
#define BPFFS_DIR    "/sys/fs/bpf"
#define VMLINUX_BTF  "/sys/kernel/btf/vmlinux"
#define UPROBE_PMU   "/sys/bus/event_source/devices/uprobe/type"
#define LIB_SONAME   "liburpoll.so.0"
#define USDT_PROVIDER "urpoll"
/* With --events: about 26000 records of 40 bytes (with the ring's header) per interval. */
#define EVENTS_RING_BYTES (1u << 20)
#define STARS_MAX 40

static const char prog_name[] = "urpoll-trace";

static struct env {
	pid_t pid;
	const char *lib;
	bool json;
	const char *pin_dir;
	bool events;
	bool io_uring;
	bool verbose;
	double interval_s;
	unsigned long count;
} env = {
	.interval_s = 1.0,
};

struct totals {
	__u64 stale_rejects;
	__u64 wake_batches;
	__u64 wakes;
	__u64 lost_events;
	__u64 batch_hist[URP_TRACE_BATCH_SLOTS];
	__u64 lag_hist[URP_TRACE_LAG_SLOTS];
};

struct uring_totals {
	__u64 completions;
	__u64 cqe_overflows;
};

struct tracer {
	struct urpoll_bpf *skel;
	struct ring_buffer *ring;
	char lib[PATH_MAX];
	int ncpus;
	struct urp_trace_stats *percpu; /* ncpus values, as a per-CPU lookup returns them */
	struct urp_trace_uring *percpu_uring;
	struct totals prev;
	struct uring_totals prev_uring;
	unsigned long intervals;
	unsigned long events_read;
	struct timespec start, last;
	char pin_paths[3][PATH_MAX]; /* urp_stats first */
};

const char *argp_program_version = "urpoll-trace 0.1";
static const char doc[] =
	"Count urpoll's stale-event rejections and wake batches with eBPF (USDT probes).\n"
	"\n"
	"EXAMPLES:\n"
	"    urpoll-trace               # every process using the library, every second\n"
	"    urpoll-trace -p 1234 5 3   # process 1234 only, every 5 s, 3 times\n"
	"    urpoll-trace -j 0.5        # one JSON object per half second (NDJSON)\n"
	"    urpoll-trace --events      # also print each stale rejection\n"
	"    urpoll-trace --pin /sys/fs/bpf/urpoll   # maps outlive the tool\n"
	"\v"
	"Every interval (default 1 s; fractions allowed) prints the totals since attach, their "
	"rate over the interval, and two log2 histograms since attach:\n"
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
	"The numbers live in the per-CPU map urp_stats; its BTF names every field: "
	"`bpftool map dump name urp_stats` (sum the CPUs), or with --pin DIR "
	"`bpftool map dump pinned DIR/urp_stats` after the tool exits (rm -r DIR removes the "
	"pins).\n"
	"\n"
	"Cost: each traced probe hit takes a uprobe trap (measured 5-6 us on a 2-vCPU VM, see "
	"docs/tracing.md); processes not traced pay nothing (each probe is behind a semaphore the "
	"kernel sets only while attached). Needs root (or CAP_BPF and CAP_PERFMON), kernel BTF and uprobes; mounts "
	"tracefs and bpffs when missing. Uprobes attach to a file: after the library is rebuilt "
	"or reinstalled, restart the tool.\n";

enum {
	OPT_PIN = 0x100,
	OPT_EVENTS,
	OPT_IO_URING,
};

static const struct argp_option opts[] = {
	{ "pid", 'p', "PID", 0, "Trace this process only (its library is found in /proc/PID/maps)",
	  0 },
	{ "lib", 'l', "LIB", 0,
	  "The library (or statically linked program) carrying the probes; default: the "
	  "liburpoll.so.0 built next to this tool, else the installed one",
	  0 },
	{ "json", 'j', NULL, 0, "One JSON object per interval (NDJSON), same numbers", 0 },
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

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* One line on stderr, then exit 1: every error the user can act on goes through here. */
static void fail(const char *fmt, ...)
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

/* ---- prerequisites ---- */

static bool has_bpf_caps(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (geteuid() == 0)
		return true;
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return (data[CAP_BPF / 32].effective & (1u << (CAP_BPF % 32))) &&
	       (data[CAP_PERFMON / 32].effective & (1u << (CAP_PERFMON % 32)));
}

static bool fs_is(const char *dir, long magic)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && st.f_type == magic;
}

/* Mount fstype at dir unless it is there already. Returns 0 or -errno. */
static int ensure_mounted(const char *dir, const char *fstype, long magic)
{
	if (fs_is(dir, magic))
		return 0;
	if (mount(fstype, dir, fstype, 0, NULL) < 0)
		return -errno;
	if (env.verbose)
		fprintf(stderr, "%s: mounted %s at %s\n", prog_name, fstype, dir);
	return 0;
}

static void check_environment(void)
{
	int err;

	if (!has_bpf_caps())
		fail("needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs");
	if (access(VMLINUX_BTF, R_OK) < 0)
		fail("no kernel BTF at %s: needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
		     VMLINUX_BTF);
	if (access(UPROBE_PMU, R_OK) < 0)
		fail("the kernel has no uprobes (%s missing): USDT probes cannot be attached",
		     UPROBE_PMU);
	err = ensure_mounted(TRACEFS_DIR, "tracefs", TRACEFS_MAGIC);
	if (err)
		fail("tracefs is not mounted at %s and mounting it failed: %s "
		     "(mount -t tracefs tracefs %s)",
		     TRACEFS_DIR, strerror(-err), TRACEFS_DIR);
	/* bpffs is only needed to pin; without --pin a failed mount does not matter. */
	err = ensure_mounted(BPFFS_DIR, "bpf", BPF_FS_MAGIC);
	if (err && env.pin_dir)
		fail("bpffs is not mounted at %s and mounting it failed: %s (mount -t bpf bpf %s)",
		     BPFFS_DIR, strerror(-err), BPFFS_DIR);
}

/* ---- which library ---- */

static bool resolve(const char *path, char *out)
{
	return access(path, R_OK) == 0 && realpath(path, out) != NULL;
}

/* The library a running process maps: its first mapping whose file is liburpoll.so*. */
static void find_library_of(pid_t pid, char *out)
{
	char maps[64], line[PATH_MAX + 128], alt[PATH_MAX + 64];
	bool found = false, deleted = false;
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	f = fopen(maps, "r");
	if (!f && errno == ENOENT)
		fail("process %d not found", pid);
	if (!f)
		fail("cannot read %s: %s", maps, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/'), *base;

		if (!path)
			continue;
		path[strcspn(path, "\n")] = '\0';
		base = strrchr(path, '/') + 1;
		if (strncmp(base, "liburpoll.so", strlen("liburpoll.so")) != 0)
			continue;
		found = true;
		if (strstr(path, " (deleted)")) {
			deleted = true;
			continue;
		}
		/* A process in another mount namespace: reach its file through its root. */
		snprintf(alt, sizeof(alt), "/proc/%d/root%s", pid, path);
		if (resolve(path, out) || resolve(alt, out)) {
			fclose(f);
			return;
		}
	}
	fclose(f);
	if (deleted)
		fail("process %d maps a liburpoll.so that was deleted or replaced since it started; "
		     "restart it or pass -l",
		     pid);
	if (found)
		fail("process %d maps liburpoll.so, but the file cannot be opened", pid);
	fail("process %d does not map liburpoll.so (statically linked? pass -l /proc/%d/exe)", pid,
	     pid);
}

static void find_library(char *out)
{
	static const char *const installed[] = {
		URP_LIBDIR "/" LIB_SONAME,	   "/usr/local/lib/" LIB_SONAME,
		"/usr/local/lib64/" LIB_SONAME,	   "/usr/lib/" LIB_SONAME,
		"/usr/lib64/" LIB_SONAME,
	};
	char self[PATH_MAX], beside[PATH_MAX + 32];
	ssize_t n;
	size_t i;

	if (env.lib) {
		if (!resolve(env.lib, out))
			fail("library %s not found: %s", env.lib, strerror(errno));
		return;
	}
	if (env.pid) {
		find_library_of(env.pid, out);
		return;
	}
	/* build/tools/urpoll-trace -> build/liburpoll.so.0 */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(beside, sizeof(beside), "%s/../%s", self, LIB_SONAME);
		if (resolve(beside, out))
			return;
	}
	for (i = 0; i < sizeof(installed) / sizeof(installed[0]); i++)
		if (resolve(installed[i], out))
			return;
	fail("library not found: no %s beside this tool nor in %s; build it (make), install it "
	     "(make install), or pass -l LIB",
	     LIB_SONAME, URP_LIBDIR);
}

/* ---- pinning ---- */

/* mkdir -p, only on bpffs: a typo must not scatter directories elsewhere. */
static void make_pin_dir(const char *dir)
{
	char path[PATH_MAX], *slash;
	struct stat st;

	if (strlen(dir) >= sizeof(path) - 16)
		fail("--pin directory name too long");
	/* The deepest directory that exists decides which filesystem the pins land on. */
	strcpy(path, dir);
	while (stat(path, &st) < 0 && (slash = strrchr(path, '/')) && slash != path)
		*slash = '\0';
	if (!fs_is(path, BPF_FS_MAGIC))
		fail("%s is not on a bpf filesystem: pin under %s (mount -t bpf bpf %s)", dir,
		     BPFFS_DIR, BPFFS_DIR);
	strcpy(path, dir);
	for (slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			fail("cannot create %s: %s", path, strerror(errno));
		if (!slash)
			break;
		*slash = '/';
	}
}

/* The maps this run pins: urp_stats always, the others with their options. */
static int pinned_maps(struct tracer *t, struct bpf_map **maps)
{
	int n = 0;

	maps[n++] = t->skel->maps.urp_stats;
	if (env.events)
		maps[n++] = t->skel->maps.urp_events;
	if (env.io_uring)
		maps[n++] = t->skel->maps.urp_uring;
	return n;
}

/* Before loading: the directory is on bpffs and no earlier run's pins are in the way. */
static void check_pins(struct tracer *t)
{
	struct bpf_map *maps[3];
	int i, n = pinned_maps(t, maps);

	make_pin_dir(env.pin_dir);
	for (i = 0; i < n; i++) {
		snprintf(t->pin_paths[i], PATH_MAX, "%s/%s", env.pin_dir, bpf_map__name(maps[i]));
		if (access(t->pin_paths[i], F_OK) == 0)
			fail("%s exists (pinned by an earlier run): read it with `bpftool map dump "
			     "pinned %s`, then remove it (rm %s) or pin elsewhere",
			     t->pin_paths[i], t->pin_paths[i], t->pin_paths[i]);
	}
}

/* Once attached, so that no failure before leaves pins behind. */
static void pin_maps(struct tracer *t)
{
	struct bpf_map *maps[3];
	int i, n = pinned_maps(t, maps), err;

	for (i = 0; i < n; i++) {
		err = bpf_map__pin(maps[i], t->pin_paths[i]);
		if (err) {
			int failed = i;

			while (i--)
				unlink(t->pin_paths[i]);
			fail("cannot pin %s: %s", t->pin_paths[failed], strerror(-err));
		}
	}
}

/* ---- reading and printing ---- */

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void read_totals(struct tracer *t, struct totals *tot)
{
	__u32 key = 0;
	int cpu, i;

	memset(tot, 0, sizeof(*tot));
	if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.urp_stats), &key, t->percpu) < 0)
		fail("cannot read urp_stats: %s", strerror(errno));
	for (cpu = 0; cpu < t->ncpus; cpu++) {
		const struct urp_trace_stats *s = &t->percpu[cpu];

		tot->stale_rejects += s->stale_rejects;
		tot->wake_batches += s->wake_batches;
		tot->wakes += s->wakes;
		tot->lost_events += s->lost_events;
		for (i = 0; i < URP_TRACE_BATCH_SLOTS; i++)
			tot->batch_hist[i] += s->batch_hist[i];
		for (i = 0; i < URP_TRACE_LAG_SLOTS; i++)
			tot->lag_hist[i] += s->lag_hist[i];
	}
}

static void read_uring(struct tracer *t, struct uring_totals *tot)
{
	__u32 key = 0;
	int cpu;

	memset(tot, 0, sizeof(*tot));
	if (!env.io_uring)
		return;
	if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.urp_uring), &key, t->percpu_uring) < 0)
		fail("cannot read urp_uring: %s", strerror(errno));
	for (cpu = 0; cpu < t->ncpus; cpu++) {
		tot->completions += t->percpu_uring[cpu].completions;
		tot->cqe_overflows += t->percpu_uring[cpu].cqe_overflows;
	}
}

/* Slot i of a log2 histogram: [2^i, 2^(i+1)-1], except slot 0: [0, 1]. */
static void slot_range(int i, unsigned long long *low, unsigned long long *high)
{
	*low = i ? 1ull << i : 0;
	*high = (1ull << (i + 1)) - 1;
}

static int last_used_slot(const __u64 *vals, int n)
{
	int i, last = -1;

	for (i = 0; i < n; i++)
		if (vals[i])
			last = i;
	return last;
}

/* libbpf-tools' print_log2_hist: 78 columns while counts fit in 8 digits. */
static void print_log2_hist(const __u64 *vals, int n, const char *val_type)
{
	unsigned long long low, high;
	int last = last_used_slot(vals, n), i, stars;
	__u64 max = 0;

	if (last < 0) {
		printf("%5s%-19s : none\n", "", val_type);
		return;
	}
	for (i = 0; i <= last; i++)
		if (vals[i] > max)
			max = vals[i];
	printf("%5s%-19s : count    distribution\n", "", val_type);
	for (i = 0; i <= last; i++) {
		slot_range(i, &low, &high);
		printf("%10llu -> %-10llu : %-8llu |", low, high, (unsigned long long)vals[i]);
		stars = (int)(vals[i] * STARS_MAX / max);
		/* A non-empty slot shows at least one star. */
		if (vals[i] && !stars)
			stars = 1;
		printf("%.*s%*s|\n", stars, "****************************************",
		       STARS_MAX - stars, "");
	}
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(const char *str)
{
	putchar('"');
	for (; *str; str++) {
		unsigned char c = (unsigned char)*str;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_hist(const char *name, const __u64 *vals, int n)
{
	unsigned long long low, high;
	int last = last_used_slot(vals, n), i;

	printf(",\"%s\":[", name);
	for (i = 0; i <= last; i++) {
		slot_range(i, &low, &high);
		printf("%s{\"low\":%llu,\"high\":%llu,\"count\":%llu}", i ? "," : "", low, high,
		       (unsigned long long)vals[i]);
	}
	printf("]");
}

static void print_interval(struct tracer *t, bool final)
{
	struct uring_totals uring;
	struct totals tot;
	struct timespec now;
	char clock[16];
	time_t wall;
	double dt;

	read_totals(t, &tot);
	read_uring(t, &uring);
	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = seconds_between(&t->last, &now);
	if (dt <= 0)
		dt = 1e-9;
	t->intervals++;
	wall = time(NULL);
	strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&wall));

	if (env.json) {
		printf("{\"type\":\"interval\",\"time\":\"%s\",\"interval\":%lu,\"final\":%s,"
		       "\"elapsed_s\":%.3f,\"interval_s\":%.3f,\"pid\":%d,\"lib\":",
		       clock, t->intervals, final ? "true" : "false",
		       seconds_between(&t->start, &now), dt, env.pid);
		json_string(t->lib);
		printf(",\"stale_rejects\":%llu,\"wake_batches\":%llu,\"wakes\":%llu,"
		       "\"lost_events\":%llu",
		       (unsigned long long)tot.stale_rejects, (unsigned long long)tot.wake_batches,
		       (unsigned long long)tot.wakes, (unsigned long long)tot.lost_events);
		if (env.events)
			printf(",\"events_read\":%lu", t->events_read);
		printf(",\"delta\":{\"stale_rejects\":%llu,\"wake_batches\":%llu,\"wakes\":%llu}",
		       (unsigned long long)(tot.stale_rejects - t->prev.stale_rejects),
		       (unsigned long long)(tot.wake_batches - t->prev.wake_batches),
		       (unsigned long long)(tot.wakes - t->prev.wakes));
		if (env.io_uring)
			printf(",\"io_uring\":{\"completions\":%llu,\"cqe_overflows\":%llu}",
			       (unsigned long long)uring.completions,
			       (unsigned long long)uring.cqe_overflows);
		json_hist("batch_hist", tot.batch_hist, URP_TRACE_BATCH_SLOTS);
		json_hist("lag_hist", tot.lag_hist, URP_TRACE_LAG_SLOTS);
		printf("}\n");
	} else {
		if (env.pid)
			printf("\n%s  pid %d, since attach (%.1f s)\n", clock, env.pid,
			       seconds_between(&t->start, &now));
		else
			printf("\n%s  all processes, since attach (%.1f s)\n", clock,
			       seconds_between(&t->start, &now));
		printf("stale_rejects %llu  wake_batches %llu  wakes %llu  lost_events %llu\n",
		       (unsigned long long)tot.stale_rejects, (unsigned long long)tot.wake_batches,
		       (unsigned long long)tot.wakes, (unsigned long long)tot.lost_events);
		printf("per second:   %.0f stale_rejects  %.0f wake_batches  %.0f wakes\n",
		       (double)(tot.stale_rejects - t->prev.stale_rejects) / dt,
		       (double)(tot.wake_batches - t->prev.wake_batches) / dt,
		       (double)(tot.wakes - t->prev.wakes) / dt);
		if (env.io_uring)
			printf("io_uring:     completions %llu (%.0f/s)  cqe_overflows %llu\n",
			       (unsigned long long)uring.completions,
			       (double)(uring.completions - t->prev_uring.completions) / dt,
			       (unsigned long long)uring.cqe_overflows);
		print_log2_hist(tot.batch_hist, URP_TRACE_BATCH_SLOTS, "wakers/batch");
		print_log2_hist(tot.lag_hist, URP_TRACE_LAG_SLOTS, "stale lag (ticks)");
	}
	fflush(stdout);
	t->prev = tot;
	t->prev_uring = uring;
	t->last = now;
}

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct urp_trace_event *ev = data;
	struct tracer *t = ctx;
	unsigned lag;

	if (size < sizeof(*ev))
		return 0;
	t->events_read++;
	lag = (ev->current_tick - ev->event_tick) & URP_TRACE_TICK_MASK;
	if (env.json)
		printf("{\"type\":\"stale_reject\",\"ts_ns\":%llu,\"pid\":%u,\"tid\":%u,"
		       "\"token\":\"0x%llx\",\"event_tick\":%u,\"current_tick\":%u,\"lag\":%u}\n",
		       (unsigned long long)ev->ts_ns, ev->pid, ev->tid,
		       (unsigned long long)ev->token, ev->event_tick, ev->current_tick, lag);
	else
		printf("stale_reject  ts %llu.%09llu  pid %u tid %u  token 0x%llx  tick %u -> %u "
		       "(lag %u)\n",
		       (unsigned long long)ev->ts_ns / 1000000000ull,
		       (unsigned long long)ev->ts_ns % 1000000000ull, ev->pid, ev->tid,
		       (unsigned long long)ev->token, ev->event_tick, ev->current_tick, lag);
	return 0;
}

static void drain_events(struct tracer *t)
{
	int err;

	if (!t->ring)
		return;
	err = ring_buffer__consume(t->ring);
	if (err < 0)
		fail("cannot read urp_events: %s", strerror(-err));
}

/* ---- setup ---- */

static void load_and_attach(struct tracer *t)
{
	struct bpf_link *link;
	long page = sysconf(_SC_PAGESIZE);
	__u32 ring_bytes;
	int err;

	t->skel = urpoll_bpf__open();
	if (!t->skel)
		fail("cannot open the BPF object: %s", strerror(errno));
	t->skel->rodata->target_pid = env.pid;
	t->skel->rodata->events_enabled = env.events;
	/* The ring must exist for the program to load; off, it is one page nobody writes. */
	ring_bytes = env.events ? EVENTS_RING_BYTES : (__u32)page;
	if (ring_bytes < page)
		ring_bytes = page;
	t->skel->rodata->ring_wake_bytes = ring_bytes / 2;
	bpf_map__set_max_entries(t->skel->maps.urp_events, ring_bytes);
	bpf_program__set_autoload(t->skel->progs.urp_uring_complete, env.io_uring);
	bpf_program__set_autoload(t->skel->progs.urp_uring_overflow, env.io_uring);

	if (env.pin_dir)
		check_pins(t);
	err = urpoll_bpf__load(t->skel);
	if (err)
		fail("cannot load the BPF programs: %s%s", strerror(-err),
		     env.verbose ? "" : " (-v shows libbpf's reasons)");

	t->ncpus = libbpf_num_possible_cpus();
	if (t->ncpus <= 0)
		fail("cannot count the CPUs: %s", strerror(-t->ncpus));
	t->percpu = calloc(t->ncpus, sizeof(*t->percpu));
	t->percpu_uring = calloc(t->ncpus, sizeof(*t->percpu_uring));
	if (!t->percpu || !t->percpu_uring)
		fail("out of memory");


	/* pid -1: every process mapping the file, now or later (uprobes are per inode). */
	link = bpf_program__attach_usdt(t->skel->progs.urp_stale_reject, env.pid ? env.pid : -1,
					t->lib, USDT_PROVIDER, "stale_reject", NULL);
	if (link)
		t->skel->links.urp_stale_reject = link;
	if (link)
		link = bpf_program__attach_usdt(t->skel->progs.urp_wake_batch,
						env.pid ? env.pid : -1, t->lib, USDT_PROVIDER,
						"wake_batch", NULL);
	if (!link) {
		err = errno;
		if (env.pid && kill(env.pid, 0) < 0 && errno == ESRCH)
			fail("process %d is gone", env.pid);
		if (err == ENOENT)
			fail("%s has no urpoll USDT probes (built with URP_PROBES=0?)", t->lib);
		fail("cannot attach to the USDT probes in %s: %s%s", t->lib, strerror(err),
		     env.verbose ? "" : " (-v shows libbpf's reasons)");
	}
	t->skel->links.urp_wake_batch = link;

	if (env.io_uring) {
		link = bpf_program__attach(t->skel->progs.urp_uring_complete);
		if (link)
			t->skel->links.urp_uring_complete = link;
		if (link)
			link = bpf_program__attach(t->skel->progs.urp_uring_overflow);
		if (!link) {
			err = errno;
			fail("cannot attach the io_uring tracepoints: %s (does %s/events/io_uring "
			     "exist?)",
			     strerror(err), TRACEFS_DIR);
		}
		t->skel->links.urp_uring_overflow = link;
	}

	if (env.events) {
		t->ring = ring_buffer__new(bpf_map__fd(t->skel->maps.urp_events), handle_event, t,
					   NULL);
		if (!t->ring)
			fail("cannot open the ring buffer: %s", strerror(errno));
	}
	if (env.pin_dir)
		pin_maps(t);
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
	ring_buffer__free(t.ring);
	urpoll_bpf__destroy(t.skel);
	free(t.percpu);
	free(t.percpu_uring);
	return 0;
}
