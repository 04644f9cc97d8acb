/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: the sockets of the workloads: connected pairs (pingpong), loopback TCP listeners
 * and clients (churn-conn, idle).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

static int set_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ? -errno : 0;
}

int bench_listen(struct sockaddr_in *addr, unsigned backlog)
{
	socklen_t len = sizeof(*addr);
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*addr = (struct sockaddr_in){ .sin_family = AF_INET,
				      .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, (int)backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int bench_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int bench_connect(const struct sockaddr_in *addr, bool nonblock)
{
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -errno;
	err = set_nodelay(fd);
	if (!err && connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 &&
	    !(nonblock && errno == EINPROGRESS))
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* pair[0] connects to the listener lfd at addr, pair[1] is the accepted end. */
static int tcp_pair_open(int lfd, const struct sockaddr_in *addr, int *pair)
{
	int err;

	/* A blocking connect to loopback completes from the listen queue, before accept. */
	pair[0] = bench_connect(addr, false);
	if (pair[0] < 0)
		return bench_fail(pair[0], "connect");
	pair[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (pair[1] < 0)
		return bench_fail(-errno, "accept4");
	err = bench_nonblock(pair[0]);
	if (!err)
		err = bench_nonblock(pair[1]);
	if (!err)
		err = set_nodelay(pair[1]);
	return err < 0 ? bench_fail(err, "O_NONBLOCK/TCP_NODELAY") : 0;
}

int pairs_open(int *fds, unsigned pairs, bool tcp)
{
	struct sockaddr_in addr;
	int lfd = -1, err = 0;

	for (unsigned i = 0; i < 2 * pairs; i++)
		fds[i] = -1;
	if (tcp) {
		lfd = bench_listen(&addr, pairs < 4096 ? pairs : 4096);
		if (lfd < 0)
			return bench_fail(lfd, "tcp listener");
	}
	for (unsigned i = 0; i < pairs && !err; i++) {
		if (tcp)
			err = tcp_pair_open(lfd, &addr, &fds[2 * i]);
		else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				    &fds[2 * i]) < 0)
			err = bench_fail(-errno, "socketpair");
	}
	if (lfd >= 0)
		close(lfd);
	if (err)
		close_fds(fds, 2 * pairs);
	return err;
}
