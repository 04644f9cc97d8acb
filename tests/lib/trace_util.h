/* SPDX-License-Identifier: MIT */
/*
 * The fixture of urpoll-trace's end-to-end suites (trace_*; docs/tracing.md): child processes
 * with captured output, parsing what the tools print (a strict JSON checker among it), and the
 * suite's set-up.
 *
 * Each test traces build/tests/trace_workload, which makes a known number of stale rejections
 * and wake batches and prints the library's own counters; the tracer's numbers must equal them
 * exactly: the sum of its intervals (per interval, the default), or its last interval
 * (--cumulative). The workload runs on a private copy of the library (LD_LIBRARY_PATH beats the
 * tools' RUNPATH): uprobes are per file, so nothing else using build/liburpoll.so (other test
 * runs, other tests running in parallel) can add to the counts, even when the tracer attaches
 * to every process. The workload waits on stdin until the tracer says it is attached, and the
 * tracer's last interval is read after the workload has exited.
 *
 * Needs root (with CAP_SYS_ADMIN, which uprobes need since Linux 6.16: a container's root may
 * lack it), kernel BTF, uprobes and tracefs; trace_setup() skips, saying which, only when one is
 * missing. Each suite: TestSuite(trace_NAME, .init = trace_setup, .fini = trace_teardown,
 * .timeout = 60).
 */
#ifndef URP_TESTS_TRACE_UTIL_H
#define URP_TESTS_TRACE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>

#include <criterion/criterion.h>

#include "test_util.h"

#define TRACEFS_MAGIC 0x74726163
#define ATTACHED      "tracing urpoll in "
#define LAG_SLOTS     15 /* the workload's i-th rejection lags 2^(i % 15) ticks */

/* ---- child processes with captured output ---- */

struct buf {
	char *data;
	size_t len;
};

struct proc {
	pid_t pid;
	int in; /* its stdin, -1 once closed */
	int out, err;
	struct buf out_buf, err_buf;
	int status; /* waitpid status, once reaped */
	bool reaped;
};

static inline void buf_add(struct buf *b, const char *data, size_t n)
{
	b->data = realloc(b->data, b->len + n + 1);
	cr_assert_not_null(b->data);
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static inline const char *buf_str(const struct buf *b)
{
	return b->data ? b->data : "";
}

/* The test's temporary directory and its private copy of the library (trace_setup()). */
static char work_dir[PATH_MAX];
static char private_lib[PATH_MAX + 32];

static inline void spawn(struct proc *p, char *const argv[], bool private_library)
{
	int in[2], out[2], err[2];

	memset(p, 0, sizeof(*p));
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	p->pid = fork();
	cr_assert_geq(p->pid, 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (private_library)
			setenv("LD_LIBRARY_PATH", work_dir, 1);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
}

/* Read what is there (waiting up to timeout_ms); reap the process once its pipes hit EOF. */
static inline void pump(struct proc *p, int timeout_ms)
{
	struct pollfd fds[2] = { { .fd = p->out, .events = POLLIN },
				 { .fd = p->err, .events = POLLIN } };
	char chunk[4096];
	int i;

	if (p->out < 0 && p->err < 0) {
		if (!p->reaped && waitpid(p->pid, &p->status, timeout_ms ? 0 : WNOHANG) == p->pid)
			p->reaped = true;
		return;
	}
	if (poll(fds, 2, timeout_ms) <= 0)
		return;
	for (i = 0; i < 2; i++) {
		int *fd = i ? &p->err : &p->out;
		ssize_t n;

		if (!fds[i].revents)
			continue;
		n = read(*fd, chunk, sizeof(chunk));
		if (n > 0) {
			buf_add(i ? &p->err_buf : &p->out_buf, chunk, (size_t)n);
		} else {
			close(*fd);
			*fd = -1;
			fds[i].fd = -1;
		}
	}
}

/* Wait until text shows up on the process's stderr; fail if it exits or times out first. */
static inline void wait_for_stderr(struct proc *p, const char *text, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;

	while (!strstr(buf_str(&p->err_buf), text)) {
		cr_assert(p->err >= 0, "exited before printing \"%s\"; stderr: %s", text,
			  buf_str(&p->err_buf));
		cr_assert_lt(now_s(), end, "no \"%s\" after %d ms; stderr: %s", text, timeout_ms,
			     buf_str(&p->err_buf));
		pump(p, 50);
	}
}

/* How many times needle occurs in hay. */
static inline int occurrences(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle))) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* Wait until text has shown up count times on the process's stdout. */
static inline void wait_for_stdout(struct proc *p, const char *text, int count, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;

	while (occurrences(buf_str(&p->out_buf), text) < count) {
		cr_assert(p->out >= 0, "exited before printing \"%s\" %d times; stdout: %s", text,
			  count, buf_str(&p->out_buf));
		cr_assert_lt(now_s(), end, "\"%s\" not %d times after %d ms; stdout: %s", text,
			     count, timeout_ms, buf_str(&p->out_buf));
		pump(p, 50);
	}
}

/* Wait for the exit; returns the exit code (fails the test on a signal or a timeout). */
static inline int wait_exit(struct proc *p, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;

	while (!p->reaped) {
		cr_assert_lt(now_s(), end, "pid %d did not exit within %d ms; stderr: %s", p->pid,
			     timeout_ms, buf_str(&p->err_buf));
		pump(p, 50);
	}
	if (p->in >= 0)
		close(p->in);
	p->in = -1;
	cr_assert(WIFEXITED(p->status), "pid %d died of signal %d; stderr: %s", p->pid,
		  WTERMSIG(p->status), buf_str(&p->err_buf));
	return WEXITSTATUS(p->status);
}

/* A workload started with -w (or -e) waits for one line per wait. */
static inline void release(struct proc *p)
{
	cr_assert_eq(write(p->in, "go\n", 3), 3, "write to pid %d: %s", p->pid, strerror(errno));
}

static inline void proc_free(struct proc *p)
{
	if (!p->reaped && p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	free(p->out_buf.data);
	free(p->err_buf.data);
	memset(p, 0, sizeof(*p));
}

/* ---- parsing what the tools print ---- */

struct counts {
	unsigned long long stale_rejects, wake_batches, wakes, events, cq_overflows;
};

/* The workload's last line: its totals (with -P, after a line per phase). */
static inline struct counts workload_counts(const struct proc *p)
{
	const char *out = buf_str(&p->out_buf), *line = out, *at;
	struct counts c;

	for (at = out; (at = strstr(at, "\nstale_rejects=")); at++)
		line = at + 1;
	cr_assert_eq(sscanf(line,
			    "stale_rejects=%llu wake_batches=%llu wakes=%llu events=%llu "
			    "cq_overflows=%llu",
			    &c.stale_rejects, &c.wake_batches, &c.wakes, &c.events, &c.cq_overflows),
		     5, "workload printed: %s", buf_str(&p->out_buf));
	return c;
}

static inline unsigned long long json_u64(const char *obj, const char *key)
{
	char pat[64];
	const char *at;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	at = strstr(obj, pat);
	cr_assert_not_null(at, "no \"%s\" in %s", key, obj);
	return strtoull(at + strlen(pat), NULL, 10);
}

/* The counts of a histogram array ("name":[{"low":..,"high":..,"count":N},...]), by slot. */
static inline int json_hist(const char *obj, const char *name, unsigned long long *slots, int max)
{
	char pat[64];
	const char *at, *end;
	int n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":[", name);
	at = strstr(obj, pat);
	cr_assert_not_null(at, "no %s in %s", name, obj);
	end = strchr(at, ']');
	cr_assert_not_null(end);
	memset(slots, 0, sizeof(*slots) * max);
	while ((at = strstr(at, "\"count\":")) && at < end) {
		cr_assert_lt(n, max);
		slots[n++] = strtoull(at + strlen("\"count\":"), NULL, 10);
		at++;
	}
	return n;
}

static inline unsigned long long sum(const unsigned long long *v, int n)
{
	unsigned long long s = 0;

	while (n--)
		s += v[n];
	return s;
}

/* A strict little JSON checker: returns the end of one value, or NULL. */
static inline const char *json_value(const char *s);

static inline const char *json_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static inline const char *json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	for (; *s && *s != '"'; s++) {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\' && !*++s)
			return NULL;
	}
	return *s == '"' ? s + 1 : NULL;
}

static inline const char *json_value(const char *s)
{
	char *end;

	s = json_ws(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';

		s = json_ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (close == '}') {
				s = json_string(json_ws(s));
				if (!s || *(s = json_ws(s)) != ':')
					return NULL;
				s++;
			}
			s = json_value(s);
			if (!s)
				return NULL;
			s = json_ws(s);
			if (*s == close)
				return s + 1;
			if (*s++ != ',')
				return NULL;
		}
	}
	if (*s == '"')
		return json_string(s);
	if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	strtod(s, &end);
	return end == s ? NULL : end;
}

/* Every line is one JSON object; returns the last line whose "type" is "interval". */
static inline char *last_interval(const char *ndjson)
{
	char *copy = strdup(ndjson), *line, *save = NULL, *last = NULL;
	int lines = 0;

	cr_assert_not_null(copy);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *end = json_value(line);

		cr_assert(end && !*json_ws(end) && line[0] == '{', "not one JSON object: %s",
			  line);
		lines++;
		if (strstr(line, "\"type\":\"interval\""))
			last = line;
	}
	cr_assert_not_null(last, "no interval object in %d lines: %s", lines, ndjson);
	last = strdup(last);
	free(copy);
	return last;
}

/* The tracer's final numbers equal the workload's; histograms sum to the totals. */
static inline void assert_counts_equal(const char *obj, struct counts want)
{
	unsigned long long batch[33], lag[16];
	int nb, nl;

	cr_assert_eq(json_u64(obj, "stale_rejects"), want.stale_rejects, "%s", obj);
	cr_assert_eq(json_u64(obj, "wake_batches"), want.wake_batches, "%s", obj);
	cr_assert_eq(json_u64(obj, "wakes"), want.wakes, "%s", obj);
	cr_assert_eq(json_u64(obj, "lost_events"), 0);
	nb = json_hist(obj, "batch_hist", batch, 33);
	nl = json_hist(obj, "lag_hist", lag, 16);
	cr_assert_eq(sum(batch, nb), want.wake_batches, "batch_hist does not sum: %s", obj);
	cr_assert_eq(sum(lag, nl), want.stale_rejects, "lag_hist does not sum: %s", obj);
}

/* One interval object of -j, or several added up. */
struct interval {
	unsigned long long stale_rejects, wake_batches, wakes, lost_events, events_read;
	unsigned long long completions, cqe_overflows; /* --io-uring */
	unsigned long long batch[33], lag[16];
	bool cumulative, final;
	int count; /* intervals added */
};

static inline void interval_parse(const char *obj, struct interval *iv)
{
	const char *uring = strstr(obj, "\"io_uring\":{");
	unsigned long long slots[33];
	int n, k;

	memset(iv, 0, sizeof(*iv));
	cr_assert(strstr(obj, "\"cumulative\":true") || strstr(obj, "\"cumulative\":false"),
		  "no \"cumulative\" in %s", obj);
	iv->cumulative = strstr(obj, "\"cumulative\":true") != NULL;
	iv->final = strstr(obj, "\"final\":true") != NULL;
	iv->stale_rejects = json_u64(obj, "stale_rejects");
	iv->wake_batches = json_u64(obj, "wake_batches");
	iv->wakes = json_u64(obj, "wakes");
	iv->lost_events = json_u64(obj, "lost_events");
	if (strstr(obj, "\"events_read\":"))
		iv->events_read = json_u64(obj, "events_read");
	if (uring) {
		iv->completions = json_u64(uring, "completions");
		iv->cqe_overflows = json_u64(uring, "cqe_overflows");
	}
	n = json_hist(obj, "batch_hist", slots, 33);
	for (k = 0; k < n; k++)
		iv->batch[k] = slots[k];
	n = json_hist(obj, "lag_hist", slots, 16);
	for (k = 0; k < n; k++)
		iv->lag[k] = slots[k];
	iv->count = 1;
}

static inline void interval_add(struct interval *to, const struct interval *iv)
{
	int k;

	to->stale_rejects += iv->stale_rejects;
	to->wake_batches += iv->wake_batches;
	to->wakes += iv->wakes;
	to->lost_events += iv->lost_events;
	to->events_read += iv->events_read;
	to->completions += iv->completions;
	to->cqe_overflows += iv->cqe_overflows;
	for (k = 0; k < 33; k++)
		to->batch[k] += iv->batch[k];
	for (k = 0; k < 16; k++)
		to->lag[k] += iv->lag[k];
	to->count += iv->count;
}

/*
 * The interval objects of an NDJSON output, in order, into ivs (at most max); every line must
 * be one JSON object. Returns how many.
 */
static inline int intervals_of(const char *ndjson, struct interval *ivs, int max)
{
	char *copy = strdup(ndjson), *line, *save = NULL;
	int n = 0;

	cr_assert_not_null(copy);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *end = json_value(line);

		cr_assert(end && !*json_ws(end) && line[0] == '{', "not one JSON object: %s",
			  line);
		if (!strstr(line, "\"type\":\"interval\""))
			continue;
		cr_assert_lt(n, max, "more than %d intervals", max);
		interval_parse(line, &ivs[n++]);
	}
	free(copy);
	cr_assert_gt(n, 0, "no interval object in: %s", ndjson);
	return n;
}

/* Every interval of a per-interval run (the default) added up: the totals since attach. */
static inline struct interval intervals_sum(const char *ndjson)
{
	static struct interval ivs[4096];
	struct interval total = { 0 };
	int n = intervals_of(ndjson, ivs, 4096), i;

	for (i = 0; i < n; i++) {
		cr_assert(!ivs[i].cumulative, "interval %d says cumulative without --cumulative",
			  i + 1);
		interval_add(&total, &ivs[i]);
	}
	cr_assert(ivs[n - 1].final, "the last interval is not final: %s", ndjson);
	total.final = true;
	return total;
}

/* The totals (intervals_sum() or a cumulative last interval) equal the workload's; the
 * histograms sum to them. */
static inline void assert_totals_equal(const struct interval *iv, struct counts want)
{
	cr_assert_eq(iv->stale_rejects, want.stale_rejects, "over %d intervals", iv->count);
	cr_assert_eq(iv->wake_batches, want.wake_batches, "over %d intervals", iv->count);
	cr_assert_eq(iv->wakes, want.wakes, "over %d intervals", iv->count);
	cr_assert_eq(iv->lost_events, 0);
	cr_assert_eq(sum(iv->batch, 33), want.wake_batches, "batch_hist does not sum");
	cr_assert_eq(sum(iv->lag, 16), want.stale_rejects, "lag_hist does not sum");
}

/* ---- fixture ---- */

static inline void copy_file(const char *from, const char *to)
{
	char chunk[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	cr_assert_geq(in, 0, "%s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	cr_assert_geq(out, 0, "%s: %s", to, strerror(errno));
	while ((n = read(in, chunk, sizeof(chunk))) > 0)
		cr_assert_eq(write(out, chunk, (size_t)n), n);
	close(in);
	close(out);
}

static inline bool tracefs_ready(void)
{
	struct statfs st;

	if (statfs("/sys/kernel/tracing", &st) == 0 && st.f_type == TRACEFS_MAGIC)
		return true;
	return mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0;
}

static inline bool has_sys_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	return syscall(SYS_capget, &hdr, data) == 0 &&
	       (data[CAP_SYS_ADMIN / 32].effective >> (CAP_SYS_ADMIN % 32) & 1);
}

/* .init: skip without root, BTF, uprobes or tracefs; copy the library into a temporary
 * directory. */
static inline void trace_setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("missing prerequisite: root (to load BPF programs)");
	if (!has_sys_admin())
		cr_skip_test("missing prerequisite: CAP_SYS_ADMIN (to attach uprobes; docs/tracing.md, "
			     "Privileges)");
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		cr_skip_test("missing prerequisite: kernel BTF (/sys/kernel/btf/vmlinux)");
	if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0)
		cr_skip_test("missing prerequisite: uprobes in this kernel");
	if (!tracefs_ready())
		cr_skip_test("missing prerequisite: tracefs (not mounted, and mounting it failed)");

	snprintf(work_dir, sizeof(work_dir), "/tmp/urp-trace-XXXXXX");
	cr_assert_not_null(mkdtemp(work_dir));
	snprintf(private_lib, sizeof(private_lib), "%s/liburpoll.so.0", work_dir);
	copy_file(build_path("liburpoll.so.0"), private_lib);
}

/* .fini: the private library and its directory removed. */
static inline void trace_teardown(void)
{
	if (private_lib[0])
		unlink(private_lib);
	if (work_dir[0])
		rmdir(work_dir);
}

static inline char *pid_str(pid_t pid)
{
	static char strs[4][16];
	static int next;
	char *p = strs[next++ % 4];

	snprintf(p, 16, "%d", pid);
	return p;
}

/* This build's tracer and workload (build_path(): valid for the next three calls). */
#define TRACER	 build_path("tools/urpoll-trace")
#define WORKLOAD build_path("tests/trace_workload")

static inline void start_tracer(struct proc *t, char *const argv[])
{
	spawn(t, argv, false);
	wait_for_stderr(t, ATTACHED, 20000);
}

/* Where the private library is loaded in pid (its mapping at file offset 0); waits for the
 * dynamic loader to map it. */
static inline unsigned long long library_base(pid_t pid)
{
	double end = now_s() + 10.0;
	char maps[64], line[PATH_MAX + 128];

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	for (;;) {
		unsigned long long start, offset;
		FILE *f = fopen(maps, "r");

		cr_assert_not_null(f, "%s: %s", maps, strerror(errno));
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			if (sscanf(line, "%llx-%*x %*s %llx", &start, &offset) == 2 && offset == 0 &&
			    strstr(line, private_lib)) {
				fclose(f);
				return start;
			}
		}
		fclose(f);
		cr_assert_lt(now_s(), end, "pid %d never mapped %s", pid, private_lib);
		usleep(10000);
	}
}

/* A workload on the private library, started with -w: it waits for release() with the
 * library mapped, so a tracer given its pid finds the library. */
static inline void spawn_workload(struct proc *p, char *const argv[])
{
	spawn(p, argv, true);
	library_base(p->pid);
}

#endif /* URP_TESTS_TRACE_UTIL_H */
