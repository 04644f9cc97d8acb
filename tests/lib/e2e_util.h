/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the end-to-end tests of the servers (echo_*, proxy_*, through echo_util.h
 * and proxy_util.h), on top of test_util.h: the descriptor limit, the io_uring skip, process
 * groups (a started server stopped with all it started), a process's open descriptors and
 * threads, a socket's receive queue, the tools of this build, and reading a child's output until
 * a line shows up. Addresses are the servers' own union sockaddr_any (tools/servers/net.h; only
 * the type is used, nothing of net.c).
 */
#ifndef URP_TESTS_E2E_UTIL_H
#define URP_TESTS_E2E_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#include "../../tools/servers/net.h"
#include "test_util.h"

/* The soft limit on descriptors raised to the hard one; the processes started inherit it. */
static inline void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static inline void skip_without_io_uring(void)
{
	struct urp_driver *drv;
	int ret = urp_driver_new(&drv, NULL);

	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		cr_skip_test("missing prerequisite: io_uring (%s)", urp_strerror(ret));
	cr_assert_eq(ret, 0, "urp_driver_new: %s", urp_strerror(ret));
	urp_driver_free(drv);
}

/*
 * Every server a test starts leads a process group of its own (group_lead()), so that stopping
 * the server stops whatever it started too: nginx's workers, for one, outlive a master killed
 * alone, and nothing else would ever stop them. The test process is a child subreaper
 * (group_reaper(), in the suite's .init), so the members orphaned by the group's end are
 * reparented to it, and group_kill() reaps every one of them.
 */
static inline void group_reaper(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/*
 * Make the child pid (0: the calling child itself) the leader of a group of its own. Called on
 * both sides of the fork, so that the group exists whichever runs first: a kill of the group
 * must never miss a child that has not got round to it.
 */
static inline void group_lead(pid_t pid)
{
	setpgid(pid, pid);
}

/*
 * SIGKILL the group led by pid (a child of ours not reaped yet, so the group id is still its)
 * and reap its members. A member whose parent dies is reparented to us before that parent can
 * be reaped, so once waitpid() has nobody left in the group, the whole group is gone.
 */
static inline void group_kill(pid_t pid)
{
	kill(-pid, SIGKILL);
	while (waitpid(-pid, NULL, 0) > 0 || errno == EINTR)
		;
}

/* The descriptors pid holds open whose number is below limit, or -1 when it is gone. */
static inline int count_fds_below(pid_t pid, int limit)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	return dir_entries_below(path, limit);
}

/* The descriptors pid holds open, or -1 when it is gone. */
static inline int count_fds(pid_t pid)
{
	return count_fds_below(pid, INT_MAX);
}

/*
 * The receive queue (bytes its owner has not read yet) of the IPv4 TCP socket from local_port to
 * remote_port, from /proc/net/tcp; -1 when there is no such socket.
 */
static inline long tcp_rx_queue(unsigned local_port, unsigned remote_port)
{
	char line[512];
	long rx = -1;
	FILE *f = fopen("/proc/net/tcp", "r");

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, rport, state;
		unsigned long tx, rxq;

		if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &state, &tx,
			   &rxq) == 5 &&
		    lport == local_port && rport == remote_port) {
			rx = (long)rxq;
			break;
		}
	}
	fclose(f);
	return rx;
}

/* The thread ids of pid, at most max of them; -1 when it is gone. */
static inline int task_ids(pid_t pid, pid_t *tids, int max)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while (n < max && (de = readdir(dir)))
		if (de->d_name[0] != '.')
			tids[n++] = (pid_t)atoi(de->d_name);
	closedir(dir);
	return n;
}

/* The first line of /proc/PID/task/TID/FILE, without its newline; false when it is gone. */
static inline bool task_line(pid_t pid, pid_t tid, const char *file, char *line, size_t size)
{
	char path[128];
	bool ok;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid, file);
	f = fopen(path, "r");
	if (!f)
		return false;
	ok = fgets(line, (int)size, f) != NULL;
	fclose(f);
	if (ok)
		line[strcspn(line, "\n")] = '\0';
	return ok;
}

/*
 * The path of this build's tools/urpoll-NAME (BUILD/tests/TEST -> BUILD/tools/urpoll-NAME), which
 * must be there: the end-to-end tests run the tools of their own build.
 */
static inline char *tool_binary(const char *name)
{
	char rel[64];
	char *path;

	snprintf(rel, sizeof(rel), "tools/urpoll-%s", name);
	path = build_path(rel);
	cr_assert_eq(access(path, X_OK), 0,
		     "%s: %s (build the tools of this build first: make tools)", path,
		     strerror(errno));
	return path;
}

/*
 * Read fd into text (size bytes, *len of them used, kept NUL-terminated) until needle shows
 * up at or after offset from, fd ends, text is full, or seconds pass. Whether it showed up.
 */
static inline bool wait_output(int fd, char *text, size_t size, size_t *len, size_t from,
			       const char *needle, double seconds)
{
	double deadline = now_s() + seconds;

	while (!strstr(text + from, needle)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - now_s();
		ssize_t n;

		if (left <= 0 || *len + 1 >= size)
			return false;
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		n = read(fd, text + *len, size - 1 - *len);
		if (n <= 0)
			return false;
		*len += (size_t)n;
		text[*len] = '\0';
	}
	return true;
}

#endif /* URP_TESTS_E2E_UTIL_H */
