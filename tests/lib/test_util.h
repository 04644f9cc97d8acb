/* SPDX-License-Identifier: MIT */
/*
 * Helpers every group of suites may use, written once: the monotonic clock and a sleep, counts
 * from the environment, a waker that counts, loopback sockets (a listener, a port nobody
 * listens on), counting a directory of /proc, and the paths of what this build made beside the
 * running test.
 */
#ifndef URP_TESTS_TEST_UTIL_H
#define URP_TESTS_TEST_UTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* ---- time ---- */

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- the environment ---- */

/* A positive count from the environment variable name, or dflt when unset or not one. */
static inline long env_count(const char *name, long dflt)
{
	const char *env = getenv(name);
	char *end;
	long n;

	if (!env || !*env)
		return dflt;
	n = strtol(env, &end, 10);
	return (*end || n <= 0) ? dflt : n;
}

/* ---- wakers ---- */

/* A waker that counts its calls in the atomic_int at arg. */
static inline void count_wake(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* ---- loopback sockets ---- */

/* A TCP listener on 127.0.0.1, port chosen by the kernel, its address in *addr. */
static inline int loopback_listener(struct sockaddr_in *addr, int backlog)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0, "bind: %s",
		     strerror(errno));
	cr_assert_eq(listen(fd, backlog), 0, "listen: %s", strerror(errno));
	cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* A loopback port with nobody listening (bound once, then released). */
static inline struct sockaddr_in closed_port(void)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	close(fd);
	return addr;
}

/* ---- /proc ---- */

/*
 * How many entries (but . and ..) directory path holds whose name, as a number, is below limit
 * (INT_MAX: all of them); -1 when it cannot be read. Read on /proc/self/fd, the count includes
 * the directory's own descriptor.
 */
static inline int dir_entries_below(const char *path, int limit)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.' && atoi(de->d_name) < limit;
	closedir(dir);
	return n;
}

/* ---- the build ---- */

/*
 * BUILD/rel, where BUILD is the build directory of the running test (BUILD/tests/NAME): the
 * tools and programs it drives are those of its own build. The result stays valid for the next
 * three calls.
 */
static inline char *build_path(const char *rel)
{
	static char paths[4][PATH_MAX + 64];
	static unsigned next;
	char self[PATH_MAX], *p = paths[next++ % 4], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert_gt(n, 0, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	for (int up = 0; up < 2; up++) {
		slash = strrchr(self, '/');
		cr_assert_not_null(slash, "%s is not in BUILD/tests/", self);
		*slash = '\0';
	}
	snprintf(p, PATH_MAX + 64, "%s/%s", self, rel);
	return p;
}

#endif /* URP_TESTS_TEST_UTIL_H */
