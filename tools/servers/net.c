/* SPDX-License-Identifier: MIT */
/* net: address literals, listener groups and limits for the urpoll servers (see net.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net.h"

bool net_parse_addr(const char *text, union sockaddr_any *addr, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2], *end;
	const char *colon;
	unsigned long port;
	size_t hlen;

	memset(addr, 0, sizeof(*addr));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':')
			return false;
		hlen = (size_t)(close - text - 1);
		if (hlen >= sizeof(host))
			return false;
		memcpy(host, text + 1, hlen);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return false;
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof(host))
			return false;
		memcpy(host, text, hlen);
	}
	host[hlen] = '\0';
	if (!colon[1])
		return false;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return false;
	if (text[0] == '[') {
		addr->in6.sin6_family = AF_INET6;
		addr->in6.sin6_port = htons((uint16_t)port);
		*len = sizeof(addr->in6);
		return inet_pton(AF_INET6, host, &addr->in6.sin6_addr) == 1;
	}
	addr->in.sin_family = AF_INET;
	addr->in.sin_port = htons((uint16_t)port);
	*len = sizeof(addr->in);
	return inet_pton(AF_INET, host, &addr->in.sin_addr) == 1;
}

const char *net_addr_str(const union sockaddr_any *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (addr->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &addr->in6.sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(addr->in6.sin6_port));
	} else {
		inet_ntop(AF_INET, &addr->in.sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(addr->in.sin_port));
	}
	return buf;
}

/* A bound, listening, non-blocking TCP socket, or -errno. */
static int tcp_listen(const union sockaddr_any *addr, socklen_t len, bool reuseport)
{
	int fd, one = 1, err;

	fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* REUSEADDR: restart while old connections sit in TIME_WAIT. REUSEPORT: one listener
	 * per loop on the same port, the kernel spreading connections over them. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, &addr->sa, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/*
 * SO_REUSEPORT lets any socket of the same user join the group, so a server already listening
 * there (another urpoll-echo --threads) would silently share our connections: unless the
 * caller wants exactly that (shared), a plain bind first makes it an "address in use" error.
 */
int net_tcp_listeners(union sockaddr_any *addr, socklen_t len, int *fds, unsigned n, bool shared)
{
	bool reuseport = n > 1 || shared;
	int fd;

	if (n > 1 && !shared && (addr->in.sin_port || addr->in6.sin6_port)) {
		fd = tcp_listen(addr, len, false);
		if (fd < 0)
			return fd;
		close(fd);
	}
	for (unsigned i = 0; i < n; i++) {
		fd = tcp_listen(addr, len, reuseport);
		if (fd < 0) {
			while (i--)
				close(fds[i]);
			return fd;
		}
		fds[i] = fd;
		if (i == 0 && getsockname(fd, &addr->sa, &len) < 0) {
			close(fd);
			return -errno;
		}
	}
	return 0;
}

bool net_parse_count(const char *text, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (!*text || *end || errno || text[0] == '-' || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

unsigned net_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	return rl.rlim_cur > 1000000 ? 1000000 : (unsigned)rl.rlim_cur;
}

unsigned net_cq_entries_for(unsigned regs)
{
	unsigned long want = 2ul * ((unsigned long)regs + 16), cq = 16384;

	while (cq < want && cq < 131072)
		cq <<= 1;
	return (unsigned)cq;
}

unsigned net_raise_nofile_cq_entries(unsigned max_conns, unsigned regs_per_conn, unsigned extra)
{
	unsigned regs = net_raise_nofile();

	if (max_conns && (unsigned long)regs_per_conn * max_conns < regs)
		regs = regs_per_conn * max_conns;
	return net_cq_entries_for(regs + extra);
}
