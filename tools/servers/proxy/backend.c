/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: the backends (see proxy.h). Each is a name resolved once at start-up, to one
 * or more addresses; it is up or down. Loop 0 checks every backend as it starts, then every
 * --check-interval, with a non-blocking connect on its ring bounded by a timer (no thread, no
 * blocking call): a check that connects brings a down backend back, one that fails marks an
 * up one down. A client's failed connect marks its backend down at once (conn.c). Every change
 * of state is one line on stderr, with the time.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

int backend_parse(struct backend *b, const char *text, const char **why)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV },
			*res, *ai;
	char host[256], port[8];
	const char *colon, *host_start = text;
	size_t hlen;
	char *end;
	int ret;

	memset(b, 0, sizeof(*b));
	b->check.fd = -1;
	if (text[0] == '[') {
		colon = strchr(text, ']');
		if (!colon || colon[1] != ':') {
			*why = "expected [IPV6]:PORT";
			return -EINVAL;
		}
		host_start = text + 1;
		hlen = (size_t)(colon - host_start);
		colon++;
	} else {
		colon = strrchr(text, ':');
		if (!colon || memchr(text, ':', (size_t)(colon - text))) {
			*why = colon ? "an IPv6 address goes in brackets: [IPV6]:PORT" :
				       "no :PORT";
			return -EINVAL;
		}
		hlen = (size_t)(colon - text);
	}
	if (!hlen || hlen >= sizeof(host)) {
		*why = hlen ? "host name too long" : "no host";
		return -EINVAL;
	}
	errno = 0;
	if (!colon[1] || strlen(colon + 1) >= sizeof(port) || colon[1] == '-' || colon[1] == '+' ||
	    strtoul(colon + 1, &end, 10) > 65535 || *end || errno) {
		*why = "the port is not a number from 0 to 65535";
		return -EINVAL;
	}
	memcpy(host, host_start, hlen);
	host[hlen] = '\0';
	strcpy(port, colon + 1);
	if (text[0] == '[')
		hints.ai_flags |= AI_NUMERICHOST;
	/* No AI_ADDRCONFIG: with it, glibc drops the loopback addresses of a family that no
	 * other interface has, and localhost may resolve to nothing on a host without a network. */
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		*why = ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret);
		return text[0] == '[' && ret == EAI_NONAME ? -EINVAL : -ENOENT;
	}
	for (ai = res; ai && b->naddrs < MAX_ADDRS; ai = ai->ai_next) {
		bool seen = false;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(b->addrs[0]))
			continue;
		for (unsigned i = 0; i < b->naddrs; i++)
			seen |= b->lens[i] == ai->ai_addrlen &&
				!memcmp(&b->addrs[i], ai->ai_addr, ai->ai_addrlen);
		if (seen)
			continue;
		memcpy(&b->addrs[b->naddrs], ai->ai_addr, ai->ai_addrlen);
		b->lens[b->naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (!b->naddrs) {
		*why = "no IPv4 or IPv6 address";
		return -ENOENT;
	}
	snprintf(b->text, sizeof(b->text), "%s", text);
	atomic_init(&b->up, true);
	return 0;
}

int backend_pick(struct worker *w, uint64_t tried)
{
	for (unsigned k = 0; k < prx.nbackends; k++) {
		unsigned i = (w->next_backend + k) % prx.nbackends;

		if ((tried >> i & 1) ||
		    !atomic_load_explicit(&prx.backends[i].up, memory_order_relaxed))
			continue;
		w->next_backend = i + 1;
		return (int)i;
	}
	return -1;
}

int backend_socket(const struct backend *b, unsigned addr, bool *in_flight)
{
	const union sockaddr_any *sa = &b->addrs[addr];
	int fd, one = 1, err;

	fd = socket(sa->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*in_flight = false;
	if (connect(fd, &sa->sa, b->lens[addr]) < 0) {
		if (errno != EINPROGRESS) {
			err = -errno;
			close(fd);
			return err;
		}
		*in_flight = true;
	}
	return fd;
}

/* ---- up and down ---- */

void backend_down(unsigned i, int err, const char *what)
{
	struct backend *b = &prx.backends[i];

	/* Many clients of many loops may find it down at once: one line. */
	if (!atomic_exchange(&b->up, false))
		return;
	log_line(stderr, "backend %s down: %s: %s (checked again every %u s)", b->text, what,
		 strerror(-err), (unsigned)(prx.check_ms / 1000));
}

void backend_connected(unsigned i, unsigned addr)
{
	struct backend *b = &prx.backends[i];

	if (atomic_load_explicit(&b->pref, memory_order_relaxed) != addr)
		atomic_store_explicit(&b->pref, addr, memory_order_relaxed);
}

static void backend_up(unsigned i, unsigned addr)
{
	struct backend *b = &prx.backends[i];
	char text[80];

	backend_connected(i, addr);
	if (!atomic_exchange(&b->up, true))
		log_line(stderr, "backend %s up: %s accepts connections again", b->text,
			 net_addr_str(&b->addrs[addr], text, sizeof(text)));
}

/* ---- the checks, on loop 0 ---- */

/* The outcome of the non-blocking connect on fd once it reported (0 or -errno). */
static int connect_outcome(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static void check_end(struct backend_check *c)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	urp_timer_stop(&c->timer);
	if (c->io) {
		urp_io_clear_wakers(c->io);
		urp_deregister(c->io);
		c->io = NULL;
	}
	if (c->fd >= 0) {
		/* A reset: the backend need not keep a connection we never use. */
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(c->fd);
	}
	c->fd = -1;
}

/*
 * The first round is over: the proxy says it listens, then which backends start down (so that
 * the listening line comes first, and comes once the descriptors of the round are closed).
 */
static void startup_done(void)
{
	proxy_ready();
	for (unsigned i = 0; i < prx.nbackends; i++)
		if (prx.backends[i].check.startup_err)
			backend_down(i, prx.backends[i].check.startup_err, "start-up check");
}

/*
 * Backend i's check ended: up (err 0), down (every address failed: err of the last one), or
 * no verdict (verdict false).
 */
static void check_settle(unsigned i, bool verdict, int err)
{
	struct backend_check *c = &prx.backends[i].check;

	if (c->startup) {
		c->startup = false;
		c->startup_err = verdict ? err : 0;
		if (!err && verdict)
			backend_up(i, c->addr);
		if (!--prx.startup_pending)
			startup_done();
	} else if (verdict && !err) {
		backend_up(i, c->addr);
	} else if (verdict) {
		backend_down(i, err, "check");
	}
}

static void check_done(unsigned i, int err)
{
	check_settle(i, true, err);
}

/* Out of descriptors or memory: the check says nothing about the backend. */
static bool check_inconclusive(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

/*
 * Connect to the next address of backend i's check, until one is in flight (its task and
 * timer running) or none is left; then the check is done, failed with the last error (err:
 * the one before this call).
 */
static void check_connect(unsigned i, int err)
{
	struct backend *b = &prx.backends[i];
	struct backend_check *c = &b->check;
	bool in_flight;
	int fd = err;

	while (c->addrs_left) {
		c->addrs_left--;
		fd = backend_socket(b, c->addr, &in_flight);
		if (check_inconclusive(fd)) {
			check_settle(i, false, fd);
			return;
		}
		if (fd >= 0 && !in_flight) {
			close(fd);
			check_done(i, 0);
			return;
		}
		if (fd >= 0) {
			c->fd = fd;
			c->expired = false;
			fd = urp_register(urp_loop_driver(prx.workers[0].loop), fd, URP_WRITABLE,
					  &c->io);
			if (fd == 0)
				fd = urp_timer_start(&c->timer, prx.connect_ms);
			if (fd == 0) {
				urp_task_wake(&c->task);
				return;
			}
			check_end(c);
			check_settle(i, false, fd); /* -ENOSPC, -ENOMEM: no verdict either */
			return;
		}
		c->addr = (c->addr + 1) % b->naddrs;
	}
	check_done(i, fd);
}

static void check_start(unsigned i)
{
	struct backend *b = &prx.backends[i];

	b->check.addr = atomic_load(&b->pref) % b->naddrs;
	b->check.addrs_left = b->naddrs;
	check_connect(i, -EHOSTUNREACH);
}

static int check_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct backend *b = arg;
	struct backend_check *c = &b->check;
	unsigned i = (unsigned)(b - prx.backends);
	struct urp_event ev;
	int ret;

	if (c->fd < 0)
		return 0;
	if (urp_io_poll_ready(c->io, URP_DIR_WRITE, &waker, &ev) == -EAGAIN && !c->expired)
		return 0;
	ret = c->expired ? -ETIMEDOUT : ev.shutdown ? -ESHUTDOWN : connect_outcome(c->fd);
	check_end(c);
	if (ret == 0 || ret == -ESHUTDOWN) {
		check_settle(i, ret == 0, ret);
		return 0;
	}
	c->addr = (c->addr + 1) % b->naddrs;
	check_connect(i, ret);
	return 0;
}

static void check_expired(struct urp_timer *t, void *arg)
{
	struct backend_check *c = arg;

	c->expired = true;
	urp_task_wake(&c->task);
}

/* A round: check each backend that has no check in flight, and the next round in check_ms. */
static void check_round(struct urp_timer *t, void *arg)
{
	for (unsigned i = 0; i < prx.nbackends; i++)
		if (prx.backends[i].check.fd < 0)
			check_start(i);
	urp_timer_start(&prx.check_timer, prx.check_ms);
}

/* Loop 0's first pass: every backend checked at once (those that fail start down, a line
 * each, after the listening line), then a round every check_ms. */
static int check_first(struct urp_task *task, void *arg)
{
	prx.startup_pending = prx.nbackends;
	for (unsigned i = 0; i < prx.nbackends; i++)
		prx.backends[i].check.startup = true;
	for (unsigned i = 0; i < prx.nbackends; i++)
		check_start(i);
	urp_timer_start(&prx.check_timer, prx.check_ms);
	return URP_TASK_DONE;
}

void backend_checks_start(struct urp_loop *loop0)
{
	for (unsigned i = 0; i < prx.nbackends; i++) {
		struct backend_check *c = &prx.backends[i].check;

		c->fd = -1;
		urp_task_init(&c->task, loop0, check_run, &prx.backends[i]);
		urp_timer_init(&c->timer, loop0, check_expired, c);
	}
	urp_timer_init(&prx.check_timer, loop0, check_round, NULL);
	urp_task_init(&prx.check_task, loop0, check_first, NULL);
	urp_task_wake(&prx.check_task);
}

void backend_checks_free(void)
{
	for (unsigned i = 0; i < prx.nbackends; i++) {
		struct backend_check *c = &prx.backends[i].check;

		/* The loop is gone, and its registrations with it. */
		c->io = NULL;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
}
