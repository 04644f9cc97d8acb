/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: loopback TCP listeners and clients for the workloads that accept connections
 * (churn-conn, idle).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

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
	int one = 1, fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 &&
	     !(nonblock && errno == EINPROGRESS))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}
