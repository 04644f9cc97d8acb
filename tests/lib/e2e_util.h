/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the end-to-end tests of the servers (echo_e2e, proxy_e2e): the clock, the
 * descriptor limit, the io_uring skip, a process's open descriptors, a socket's receive queue,
 * reading a child's output until a line shows up, and stopping a started server with all it
 * started. Addresses are the servers' own union
 * sockaddr_any (tools/servers/net.h; only the type is used, nothing of net.c).
 */
#ifndef URP_TESTS_E2E_UTIL_H
#define URP_TESTS_E2E_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
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
		cr_skip_test("io_uring unavailable: %s", urp_strerror(ret));
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

/* The descriptors pid holds open, or -1 when it is gone. */
static inline int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
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
