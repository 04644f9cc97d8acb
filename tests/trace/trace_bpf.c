// SPDX-License-Identifier: MIT
/*
 * trace_bpf: urpoll-trace, end to end (docs/tracing.md).
 *
 * Each test traces build/tests/trace_workload, which makes a known number of stale rejections
 * and wake batches and prints the library's own counters; the tracer's numbers must equal them
 * exactly. The workload runs on a private copy of the library (LD_LIBRARY_PATH beats the
 * tools' RUNPATH): uprobes are per file, so nothing else using build/liburpoll.so (other test
 * runs, other tests of this suite running in parallel) can add to the counts, even when the
 * tracer attaches to every process. The workload waits on stdin until the tracer says it is
 * attached, and the tracer's last interval is read after the workload has exited.
 *
 * Needs root, kernel BTF, uprobes and tracefs; skips, saying which, only when one is missing.
 */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

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

static void buf_add(struct buf *b, const char *data, size_t n)
{
	b->data = realloc(b->data, b->len + n + 1);
	cr_assert_not_null(b->data);
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static const char *buf_str(const struct buf *b)
{
	return b->data ? b->data : "";
}

static char build_dir[PATH_MAX];
static char work_dir[PATH_MAX];
static char private_lib[PATH_MAX + 32];

static void spawn(struct proc *p, char *const argv[], bool private_library)
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
static void pump(struct proc *p, int timeout_ms)
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

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait until text shows up on the process's stderr; fail if it exits or times out first. */
static void wait_for_stderr(struct proc *p, const char *text, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (!strstr(buf_str(&p->err_buf), text)) {
		cr_assert(p->err >= 0, "exited before printing \"%s\"; stderr: %s", text,
			  buf_str(&p->err_buf));
		cr_assert_lt(now_ms(), end, "no \"%s\" after %d ms; stderr: %s", text, timeout_ms,
			     buf_str(&p->err_buf));
		pump(p, 50);
	}
}

/* Wait for the exit; returns the exit code (fails the test on a signal or a timeout). */
static int wait_exit(struct proc *p, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (!p->reaped) {
		cr_assert_lt(now_ms(), end, "pid %d did not exit within %d ms; stderr: %s", p->pid,
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
static void release(struct proc *p)
{
	cr_assert_eq(write(p->in, "go\n", 3), 3, "write to pid %d: %s", p->pid, strerror(errno));
}

static void proc_free(struct proc *p)
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

static struct counts workload_counts(const struct proc *p)
{
	struct counts c;

	cr_assert_eq(sscanf(buf_str(&p->out_buf),
			    "stale_rejects=%llu wake_batches=%llu wakes=%llu events=%llu "
			    "cq_overflows=%llu",
			    &c.stale_rejects, &c.wake_batches, &c.wakes, &c.events, &c.cq_overflows),
		     5, "workload printed: %s", buf_str(&p->out_buf));
	return c;
}

static unsigned long long json_u64(const char *obj, const char *key)
{
	char pat[64];
	const char *at;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	at = strstr(obj, pat);
	cr_assert_not_null(at, "no \"%s\" in %s", key, obj);
	return strtoull(at + strlen(pat), NULL, 10);
}

/* The counts of a histogram array ("name":[{"low":..,"high":..,"count":N},...]), by slot. */
static int json_hist(const char *obj, const char *name, unsigned long long *slots, int max)
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

static unsigned long long sum(const unsigned long long *v, int n)
{
	unsigned long long s = 0;

	while (n--)
		s += v[n];
	return s;
}

/* A strict little JSON checker: returns the end of one value, or NULL. */
static const char *json_value(const char *s);

static const char *json_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static const char *json_string(const char *s)
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

static const char *json_value(const char *s)
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
static char *last_interval(const char *ndjson)
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
static void assert_counts_equal(const char *obj, struct counts want)
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

/* ---- fixture ---- */

static void copy_file(const char *from, const char *to)
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

static bool tracefs_ready(void)
{
	struct statfs st;

	if (statfs("/sys/kernel/tracing", &st) == 0 && st.f_type == TRACEFS_MAGIC)
		return true;
	return mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0;
}

static void setup(void)
{
	char self[PATH_MAX], lib[PATH_MAX + 32];
	ssize_t n;

	if (geteuid() != 0)
		cr_skip_test("needs root to load BPF programs");
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		cr_skip_test("no kernel BTF (/sys/kernel/btf/vmlinux)");
	if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0)
		cr_skip_test("the kernel has no uprobes");
	if (!tracefs_ready())
		cr_skip_test("tracefs is not mounted and cannot be mounted");

	/* build/tests/trace_bpf -> build/ */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	cr_assert_gt(n, 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	*strrchr(self, '/') = '\0';
	strcpy(build_dir, self);

	snprintf(work_dir, sizeof(work_dir), "/tmp/urp-trace-XXXXXX");
	cr_assert_not_null(mkdtemp(work_dir));
	snprintf(lib, sizeof(lib), "%s/liburpoll.so.0", build_dir);
	snprintf(private_lib, sizeof(private_lib), "%s/liburpoll.so.0", work_dir);
	copy_file(lib, private_lib);
}

static void teardown(void)
{
	if (private_lib[0])
		unlink(private_lib);
	if (work_dir[0])
		rmdir(work_dir);
}

static char *tool_path(const char *rel)
{
	static char paths[4][PATH_MAX + 64];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, PATH_MAX + 64, "%s/%s", build_dir, rel);
	return p;
}

static char *pid_str(pid_t pid)
{
	static char strs[4][16];
	static int next;
	char *p = strs[next++ % 4];

	snprintf(p, 16, "%d", pid);
	return p;
}

#define TRACER	 tool_path("tools/urpoll-trace")
#define WORKLOAD tool_path("tests/trace_workload")

static void start_tracer(struct proc *t, char *const argv[])
{
	spawn(t, argv, false);
	wait_for_stderr(t, ATTACHED, 20000);
}

/* Where the private library is loaded in pid (its mapping at file offset 0); waits for the
 * dynamic loader to map it. */
static unsigned long long library_base(pid_t pid)
{
	long long end = now_ms() + 10000;
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
		cr_assert_lt(now_ms(), end, "pid %d never mapped %s", pid, private_lib);
		usleep(10000);
	}
}

/* A workload on the private library, started with -w: it waits for release() with the
 * library mapped, so a tracer given its pid finds the library. */
static void spawn_workload(struct proc *p, char *const argv[])
{
	spawn(p, argv, true);
	library_base(p->pid);
}

/* ---- tests ---- */

TestSuite(trace_bpf, .init = setup, .fini = teardown, .timeout = 60);

/* Every process mapping the library: the totals and histograms equal the library's. */
Test(trace_bpf, all_processes_counts_equal_library)
{
	struct proc tracer, work;
	char *obj;

	start_tracer(&tracer, (char *[]){ TRACER, "-j", "-l", private_lib, "0.2", NULL });
	cr_assert(strstr(buf_str(&tracer.err_buf), "(pid all)"), "%s", buf_str(&tracer.err_buf));
	spawn(&work, (char *[]){ WORKLOAD, "-s", "1000", "-b", "100", "-m", "20000", NULL }, true);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	kill(tracer.pid, SIGINT);
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "SIGINT must exit 0; stderr: %s",
		     buf_str(&tracer.err_buf));
	obj = last_interval(buf_str(&tracer.out_buf));
	cr_assert(strstr(obj, "\"final\":true"), "SIGINT printed no final interval: %s", obj);
	assert_counts_equal(obj, workload_counts(&work));
	free(obj);
	proc_free(&work);
	proc_free(&tracer);
}

/* The detached part alone: every slot is known. Batches of 32, 32, 32, 4 per round; the
 * i-th stale rejection lags 2^(i % 15) ticks, so lands in slot i % 15. */
Test(trace_bpf, histograms_exact)
{
	unsigned long long batch[33], lag[16];
	struct proc tracer, work;
	int rounds = 50, stale = 1000, k;
	char *obj;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-s", "1000", "-b", "50", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-j", "-p", pid_str(work.pid), "0.2", NULL });
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	/* -p: the tracer ends by itself when its process exits, after a final interval. */
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert(strstr(buf_str(&tracer.err_buf), "exited"), "%s", buf_str(&tracer.err_buf));
	obj = last_interval(buf_str(&tracer.out_buf));
	assert_counts_equal(obj, workload_counts(&work));
	cr_assert_eq(json_hist(obj, "batch_hist", batch, 33), 6, "%s", obj);
	cr_assert_eq(batch[5], 3ull * rounds, "batches of 32: %s", obj);
	cr_assert_eq(batch[2], (unsigned long long)rounds, "batches of 4: %s", obj);
	cr_assert_eq(json_hist(obj, "lag_hist", lag, 16), LAG_SLOTS, "%s", obj);
	for (k = 0; k < LAG_SLOTS; k++)
		cr_assert_eq(lag[k], (unsigned long long)(stale / LAG_SLOTS + (k < stale % LAG_SLOTS)),
			     "lag slot %d: %s", k, obj);
	free(obj);
	proc_free(&work);
	proc_free(&tracer);
}

/* -p: a second process using the same library at the same time is not counted. */
Test(trace_bpf, pid_isolation)
{
	struct proc tracer, traced, other;
	struct counts want, noise;
	char *obj;

	spawn_workload(&traced,
		       (char *[]){ WORKLOAD, "-w", "-s", "300", "-b", "20", "-m", "5000", NULL });
	spawn_workload(&other,
		       (char *[]){ WORKLOAD, "-w", "-s", "700", "-b", "30", "-m", "5000", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-j", "-p", pid_str(traced.pid), "0.2", NULL });
	cr_assert(strstr(buf_str(&tracer.err_buf), pid_str(traced.pid)), "%s",
		  buf_str(&tracer.err_buf));
	release(&other);
	release(&traced);
	cr_assert_eq(wait_exit(&other, 30000), 0, "other: %s", buf_str(&other.err_buf));
	cr_assert_eq(wait_exit(&traced, 30000), 0, "traced: %s", buf_str(&traced.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	want = workload_counts(&traced);
	noise = workload_counts(&other);
	cr_assert_neq(want.stale_rejects, noise.stale_rejects);
	obj = last_interval(buf_str(&tracer.out_buf));
	assert_counts_equal(obj, want);
	free(obj);
	proc_free(&tracer);
	proc_free(&traced);
	proc_free(&other);
}

/* ---- the probes' semaphores, read from the traced process's memory ---- */

/* Link-time addresses of the two semaphores, from the library's USDT notes. */
static void semaphore_addrs(unsigned long long *stale, unsigned long long *wake)
{
	char cmd[PATH_MAX + 64], line[512], name[64] = "";
	unsigned long long addr;
	FILE *f;

	*stale = *wake = 0;
	snprintf(cmd, sizeof(cmd), "readelf -n %s", private_lib);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		const char *sem = strstr(line, "Semaphore: ");

		if (sscanf(line, " Name: %63s", name) == 1)
			continue;
		if (!sem || sscanf(sem, "Semaphore: %llx", &addr) != 1)
			continue;
		if (!strcmp(name, "stale_reject"))
			*stale = addr;
		else if (!strcmp(name, "wake_batch"))
			*wake = addr;
	}
	pclose(f);
	cr_assert(*stale && *wake, "no semaphores in the notes of %s", private_lib);
}

static unsigned semaphore(pid_t pid, unsigned long long base, unsigned long long addr)
{
	char mem[64];
	unsigned short value;
	int fd;

	snprintf(mem, sizeof(mem), "/proc/%d/mem", pid);
	fd = open(mem, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", mem, strerror(errno));
	cr_assert_eq(pread(fd, &value, sizeof(value), (off_t)(base + addr)), sizeof(value),
		     "read %s: %s", mem, strerror(errno));
	close(fd);
	return value;
}

/* Untraced processes pay nothing: the semaphores are 0 before tracing, set only in the traced
 * process while attached, and 0 again once the tracer has exited. */
Test(trace_bpf, semaphores_only_while_traced)
{
	unsigned long long stale, wake, base, other_base;
	struct proc tracer, traced, other;
	char *obj;

	semaphore_addrs(&stale, &wake);
	spawn_workload(&traced, (char *[]){ WORKLOAD, "-w", "-e", "-s", "40", "-b", "3", NULL });
	spawn_workload(&other, (char *[]){ WORKLOAD, "-w", NULL });
	base = library_base(traced.pid);
	other_base = library_base(other.pid);
	cr_assert_eq(semaphore(traced.pid, base, stale), 0);
	cr_assert_eq(semaphore(traced.pid, base, wake), 0);

	start_tracer(&tracer, (char *[]){ TRACER, "-j", "-p", pid_str(traced.pid), "0.2", NULL });
	cr_assert_gt(semaphore(traced.pid, base, stale), 0, "stale_reject semaphore not set");
	cr_assert_gt(semaphore(traced.pid, base, wake), 0, "wake_batch semaphore not set");
	cr_assert_eq(semaphore(other.pid, other_base, stale), 0, "untraced process pays");
	cr_assert_eq(semaphore(other.pid, other_base, wake), 0, "untraced process pays");

	release(&traced);
	while (!strstr(buf_str(&traced.out_buf), "wakes="))
		pump(&traced, 50);
	kill(tracer.pid, SIGINT);
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert_eq(semaphore(traced.pid, base, stale), 0, "left set after the tracer exited");
	cr_assert_eq(semaphore(traced.pid, base, wake), 0, "left set after the tracer exited");
	obj = last_interval(buf_str(&tracer.out_buf));
	assert_counts_equal(obj, workload_counts(&traced));
	free(obj);

	release(&traced);
	release(&other);
	cr_assert_eq(wait_exit(&traced, 10000), 0);
	cr_assert_eq(wait_exit(&other, 10000), 0);
	proc_free(&tracer);
	proc_free(&traced);
	proc_free(&other);
}

/* ---- pinned maps and bpftool ---- */

static char pin_dir[64];

static void remove_pins(void)
{
	char path[128];

	if (!pin_dir[0])
		return;
	snprintf(path, sizeof(path), "%s/urp_stats", pin_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/urp_events", pin_dir);
	unlink(path);
	rmdir(pin_dir);
}

static unsigned long long sum_field(const char *text, const char *field)
{
	unsigned long long total = 0;
	char pat[64];
	const char *at = text;
	int seen = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", field);
	while ((at = strstr(at, pat))) {
		at += strlen(pat);
		total += strtoull(at, NULL, 10);
		seen++;
	}
	cr_assert_gt(seen, 0, "no \"%s\" in %s", field, text);
	return total;
}

/* --pin keeps urp_stats after the tool exits; bpftool prints its named fields, and the per-CPU
 * values in `bpftool -j map dump pinned` sum to the same totals. */
Test(trace_bpf, pinned_maps_dump_with_bpftool, .fini = remove_pins)
{
	struct proc tracer, work, dump;
	char pinned[128], command[192];
	struct counts want;
	const char *end;

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/urp-test-%d", getpid());
	snprintf(pinned, sizeof(pinned), "%s/urp_stats", pin_dir);
	remove_pins();
	spawn_workload(&work,
		       (char *[]){ WORKLOAD, "-w", "-s", "123", "-b", "7", "-m", "2000", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-p", pid_str(work.pid), "--pin", pin_dir, "0.2",
					  NULL });
	snprintf(command, sizeof(command), "bpftool map dump pinned %s", pinned);
	cr_assert(strstr(buf_str(&tracer.err_buf), command), "does not print `%s`: %s", command,
		  buf_str(&tracer.err_buf));
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	want = workload_counts(&work);
	/* Text output too: the human format has the totals line. */
	cr_assert(strstr(buf_str(&tracer.out_buf), "stale_rejects"), "%s",
		  buf_str(&tracer.out_buf));
	cr_assert_eq(access(pinned, F_OK), 0, "%s gone after the tool exited", pinned);

	spawn(&dump, (char *[]){ "/bin/sh", "-c", command, NULL }, false);
	cr_assert_eq(wait_exit(&dump, 10000), 0, "%s: %s", command, buf_str(&dump.err_buf));
	cr_assert(strstr(buf_str(&dump.out_buf), "\"stale_rejects\": "),
		  "no named field stale_rejects: %s", buf_str(&dump.out_buf));
	cr_assert(strstr(buf_str(&dump.out_buf), "\"lag_hist\": "), "%s", buf_str(&dump.out_buf));
	proc_free(&dump);

	snprintf(command, sizeof(command), "bpftool -j map dump pinned %s", pinned);
	spawn(&dump, (char *[]){ "/bin/sh", "-c", command, NULL }, false);
	cr_assert_eq(wait_exit(&dump, 10000), 0, "%s: %s", command, buf_str(&dump.err_buf));
	end = json_value(buf_str(&dump.out_buf));
	cr_assert(end && !*json_ws(end), "bpftool -j output does not parse: %s",
		  buf_str(&dump.out_buf));
	cr_assert_eq(sum_field(buf_str(&dump.out_buf), "stale_rejects"), want.stale_rejects);
	cr_assert_eq(sum_field(buf_str(&dump.out_buf), "wake_batches"), want.wake_batches);
	cr_assert_eq(sum_field(buf_str(&dump.out_buf), "wakes"), want.wakes);
	proc_free(&dump);
	proc_free(&tracer);

	/* A second run does not silently reuse (or clobber) an earlier run's pins. */
	spawn(&tracer, (char *[]){ TRACER, "-l", private_lib, "--pin", pin_dir, NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert(strstr(buf_str(&tracer.err_buf), "exists"), "%s", buf_str(&tracer.err_buf));
	proc_free(&tracer);
	proc_free(&work);
}

/* --events: one ring record per stale rejection, in order, none lost. */
Test(trace_bpf, events_ring_records_each_stale_reject)
{
	struct proc tracer, work;
	const char *line;
	char *obj;
	int records = 0;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-s", "500", "-b", "5", NULL });
	start_tracer(&tracer,
		     (char *[]){ TRACER, "-j", "--events", "-p", pid_str(work.pid), "0.2", NULL });
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	obj = last_interval(buf_str(&tracer.out_buf));
	assert_counts_equal(obj, workload_counts(&work));
	cr_assert_eq(json_u64(obj, "events_read"), 500, "%s", obj);
	for (line = buf_str(&tracer.out_buf); (line = strstr(line, "\"type\":\"stale_reject\""));
	     line++) {
		cr_assert_eq(json_u64(line, "pid"), (unsigned long long)work.pid);
		/* The workload's i-th rejection lags 2^(i % 15) ticks; one thread, so in order. */
		cr_assert_eq(json_u64(line, "lag"), 1ull << (records % LAG_SLOTS), "record %d: %.200s",
			     records, line);
		records++;
	}
	cr_assert_eq(records, 500);
	free(obj);
	proc_free(&work);
	proc_free(&tracer);
}

/* --io-uring: the kernel posted at least one CQE per readiness event the driver applied (plus
 * the cancels and the unpark eventfd's), and as many overflows as the driver counted. */
Test(trace_bpf, io_uring_tracepoints_beside_library)
{
	unsigned long long completions;
	struct proc tracer, work;
	struct counts want;
	char *obj;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-m", "20000", "-n", "8", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-j", "--io-uring", "-p", pid_str(work.pid), "0.2",
					  NULL });
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	want = workload_counts(&work);
	obj = last_interval(buf_str(&tracer.out_buf));
	assert_counts_equal(obj, want);
	cr_assert_not_null(strstr(obj, "\"io_uring\":{"), "%s", obj);
	completions = json_u64(strstr(obj, "\"io_uring\":{"), "completions");
	cr_assert_geq(want.events, 20000);
	cr_assert_geq(completions, want.events, "%s", obj);
	/* 16 registrations: a cancel and a terminal CQE each at most, and the unpark poll. */
	cr_assert_leq(completions, want.events + 2 * 16 + 8, "%s", obj);
	cr_assert_eq(json_u64(strstr(obj, "\"io_uring\":{"), "cqe_overflows"), want.cq_overflows);
	free(obj);
	proc_free(&work);
	proc_free(&tracer);
}

/* One clear line and exit 1 for what a user gets wrong. */
Test(trace_bpf, clear_errors)
{
	struct proc tracer, other;
	pid_t gone;

	spawn(&tracer, (char *[]){ TRACER, "-l", "/nonexistent/liburpoll.so.0", NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "not found"), "%s", buf_str(&tracer.err_buf));
	cr_assert_eq(strchr(buf_str(&tracer.err_buf), '\n') + 1,
		     buf_str(&tracer.err_buf) + tracer.err_buf.len, "more than one line: %s",
		     buf_str(&tracer.err_buf));
	proc_free(&tracer);

	gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	spawn(&tracer, (char *[]){ TRACER, "-p", pid_str(gone), NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "not found"), "%s", buf_str(&tracer.err_buf));
	proc_free(&tracer);

	/* A process without the library: sleep(1). */
	spawn(&other, (char *[]){ "/bin/sleep", "30", NULL }, false);
	spawn(&tracer, (char *[]){ TRACER, "-p", pid_str(other.pid), NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "does not map liburpoll.so"), "%s",
		  buf_str(&tracer.err_buf));
	proc_free(&tracer);
	proc_free(&other);

	/* A file without the probes. */
	spawn(&tracer, (char *[]){ TRACER, "-l", WORKLOAD, NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "no urpoll USDT probes"), "%s",
		  buf_str(&tracer.err_buf));
	proc_free(&tracer);
}
