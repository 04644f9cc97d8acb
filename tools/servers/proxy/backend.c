/* SPDX-License-Identifier: MIT */
/* urpoll-proxy: connections to the backends (see proxy.h). */
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

/* A non-blocking TCP_NODELAY socket connecting to b: *in_flight, or connected already.
 * Returns the fd or -errno. */
static int backend_socket(const struct backend *b, bool *in_flight)
{
	int fd, one = 1, err;

	fd = socket(b->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*in_flight = false;
	if (connect(fd, &b->addr.sa, b->len) < 0) {
		if (errno != EINPROGRESS) {
			err = -errno;
			close(fd);
			return err;
		}
		*in_flight = true;
	}
	return fd;
}

int backend_connect(struct worker *w, bool *in_flight)
{
	return backend_socket(&prx.backends[w->next_backend++ % prx.nbackends], in_flight);
}

int backend_probe(const struct backend *b, int timeout_ms)
{
	socklen_t len = sizeof(int);
	struct pollfd p;
	bool in_flight;
	int fd, err = 0;

	fd = backend_socket(b, &in_flight);
	if (fd < 0)
		return fd;
	if (in_flight) {
		p = (struct pollfd){ .fd = fd, .events = POLLOUT };
		err = poll(&p, 1, timeout_ms) == 1 ? 0 : ETIMEDOUT;
		if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
	}
	close(fd);
	return -err;
}
