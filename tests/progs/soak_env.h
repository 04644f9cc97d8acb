/* SPDX-License-Identifier: MIT */
/*
 * The soak's environment (soak.c is the load and its checks): the clock, output that survives
 * EINTR, the 1 kHz SIGALRM forwarded to every thread, the /proc readings (RSS, open fds), and
 * the command line.
 * One program includes it; its functions are static, as tests/lib's helpers are.
 */
#ifndef URP_TESTS_PROGS_SOAK_ENV_H
#define URP_TESTS_PROGS_SOAK_ENV_H

#include <dirent.h>
#include <getopt.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_TIDS 64

static atomic_ulong sig_received, sig_forwarded;
static pid_t tids[MAX_TIDS];
static atomic_int ntids;

static inline long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Sleep to an absolute CLOCK_MONOTONIC time: SIGALRM arrives 1000 times a second. */
static inline void sleep_until(long long ns)
{
	struct timespec ts = {ns / 1000000000ll, ns % 1000000000ll};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static inline void sleep_ms(unsigned ms)
{
	sleep_until(now_ns() + ms * 1000000ll);
}

/* stdio may give up on EINTR: format, then write(2) in a loop. */
static inline void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	size_t off = 0;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(buf))
		len = sizeof(buf) - 1;
	while (off < (size_t)len) {
		ssize_t n = write(STDOUT_FILENO, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += n;
	}
}

static inline void fail(const char *what, int err)
{
	say("soak: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(2);
}

/* ---- SIGALRM: setitimer's signal goes to one thread, which forwards it to all others ---- */

static inline void on_alarm(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	atomic_fetch_add_explicit(&sig_received, 1, memory_order_relaxed);
	if (si->si_code != SI_TKILL) {
		pid_t self = syscall(SYS_gettid), pid = getpid();
		int n = atomic_load(&ntids);

		for (int i = 0; i < n; i++) {
			if (tids[i] == self)
				continue;
			syscall(SYS_tgkill, pid, tids[i], SIGALRM);
			atomic_fetch_add_explicit(&sig_forwarded, 1, memory_order_relaxed);
		}
	}
	errno = saved;
}

static inline void add_tid(pid_t tid)
{
	int i = atomic_load(&ntids);

	if (i < MAX_TIDS) {
		tids[i] = tid;
		atomic_store(&ntids, i + 1);
	}
}

/* Only the main thread adds tids; the others report theirs before main goes on. */
static atomic_int reported_tid;

static inline void report_tid(void)
{
	atomic_store(&reported_tid, (int)syscall(SYS_gettid));
}

static inline void collect_tid(void)
{
	int tid;

	while (!(tid = atomic_exchange(&reported_tid, 0)))
		sleep_ms(1);
	add_tid(tid);
}

/* Spawned drivers' threads are the library's: find them as the tids that appear. */
static inline int list_tids(pid_t *out, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		fail("/proc/self/task", errno);
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			out[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

static inline void start_alarm(void)
{
	struct sigaction sa = {.sa_sigaction = on_alarm, .sa_flags = SA_SIGINFO};
	struct itimerval it = {{0, 1000}, {0, 1000}};

	/* No SA_RESTART: every blocking call sees EINTR, the library's io_uring_enter too. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		fail("sigaction", errno);
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		fail("setitimer", errno);
}

static inline void stop_alarm(void)
{
	struct itimerval it = {0};

	setitimer(ITIMER_REAL, &it, NULL);
}

/* ---- /proc readings ---- */


static inline long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static inline int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* ---- the command line ---- */

struct opts {
	unsigned seconds, slots, rate, churn, lost_after, warmup;
	unsigned long rss_tolerance_kb;
};

static struct opts opt = {
    .seconds = 3600,
    .slots = 4000,
    .rate = 20000,
    .churn = 200,
    .lost_after = 10,
    .warmup = 60,
    .rss_tolerance_kb = 4096,
};

static inline void usage(void)
{
	say("usage: soak [--seconds N] [--slots N] [--rate TOKENS_PER_S] [--churn PER_S] "
	    "[--lost-after S] [--warmup S] [--rss-tolerance-kb KB]\n");
	exit(2);
}

static inline void parse_args(int argc, char **argv, unsigned min_slots)
{
	static const struct option longopts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"slots", required_argument, NULL, 'n'},
	    {"rate", required_argument, NULL, 'r'},
	    {"churn", required_argument, NULL, 'c'},
	    {"lost-after", required_argument, NULL, 'l'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"rss-tolerance-kb", required_argument, NULL, 't'},
	    {0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		unsigned long v;
		char *end;

		if (c == '?')
			usage();
		v = strtoul(optarg, &end, 10);
		if (*end)
			usage();
		switch (c) {
		case 's':
			opt.seconds = v;
			break;
		case 'n':
			opt.slots = v;
			break;
		case 'r':
			opt.rate = v;
			break;
		case 'c':
			opt.churn = v;
			break;
		case 'l':
			opt.lost_after = v;
			break;
		case 'w':
			opt.warmup = v;
			break;
		case 't':
			opt.rss_tolerance_kb = v;
			break;
		}
	}
	if (optind != argc || opt.slots < min_slots || opt.lost_after == 0)
		usage();
}

#endif /* URP_TESTS_PROGS_SOAK_ENV_H */
