/* SPDX-License-Identifier: MIT */
/*
 * urpoll-echo: a TCP and Unix-socket echo server on the urpoll task loop.
 *
 * One task per connection, one listener task per listening socket and loop, and N loops, one
 * per thread, each with its own ring and (for TCP) its own SO_REUSEPORT listener: the
 * thread-per-core layout of docs/threads.md. A connection task waits with the reader and writer
 * slots (urp_io_poll_ready), a listener with a readiness future (urp_readiness); both move bytes
 * with urp_io_try_io() until EAGAIN, which clears the readiness they acted on.
 *
 *   urpoll-echo [--listen ADDR:PORT] [--unix PATH] [--threads N] [--max-conns N] [--pin] [-q]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <urpoll.h>

#define PROG "urpoll-echo"

/* Bytes a connection holds between reading and writing back: the most it ever buffers. */
#define CONN_BUF      16384
/* Rounds of a task before it lets the others run (it is queued again behind them). */
#define CONN_BUDGET   64
#define ACCEPT_BUDGET 64
#define MAX_THREADS   256
#define MAX_LISTENERS 2

struct worker;

/* Why a listener stopped accepting, and what resumes it. */
enum {
	RUNNING,
	PAUSED_FULL,   /* --max-conns reached: resumed by any slot given back */
	PAUSED_NOFILE, /* out of descriptors, none left to shed: resumed by a closed connection */
};

/* A listening socket as seen by one loop (the Unix socket is shared by every loop). */
struct listener {
	struct urp_task task;
	struct urp_readiness ready; /* the wait for the next connection */
	struct worker *worker;
	struct urp_io *io;
	int fd;
	bool tcp;
	bool waiting;	   /* ready is linked: poll it before initialising it again */
	atomic_int paused; /* RUNNING, or why it stopped accepting (see listener_pause()) */
};

struct conn {
	struct urp_task task;
	struct worker *worker;
	struct conn *prev, *next; /* the worker's open connections, for the exit */
	struct urp_io *io;
	int fd;
	bool eof;	   /* the peer half-closed: nothing more to read */
	size_t head, tail; /* buffered, not yet written back: buf[head..tail) */
	char buf[CONN_BUF];
};

/* One loop on one thread. Its counters are written by that thread only and read after join. */
struct worker {
	struct urp_loop *loop;
	pthread_t thread;
	unsigned index;
	struct listener listeners[MAX_LISTENERS];
	unsigned nlisteners;
	int reserve_fd; /* given up on EMFILE to shed one pending connection */
	struct conn *conns;
	uint64_t accepted, bytes, shed, errors;
	int status; /* urp_loop_run()'s result */
};

/* SIGINT and SIGTERM arrive on a signalfd watched by a task of the first loop. */
struct sigwatch {
	struct urp_task task;
	struct urp_io *io;
	int fd;
	struct signalfd_siginfo info;
};

static struct {
	bool quiet;
	bool pin;
	unsigned max_conns; /* 0: no limit */
	struct worker *workers;
	unsigned nworkers;
	struct sigwatch sig;
	atomic_uint live;	 /* connection slots taken, in every loop */
	atomic_uint slots_freed; /* slots given back so far: a pausing listener's re-check */
	atomic_uint closes;	 /* connections closed (descriptors freed) so far: the same */
	atomic_uint paused;	 /* listeners paused */
	atomic_bool warned_nofile;
	atomic_int exit_status;
} srv;

/* ---- shutdown ---- */

static void stop_all(int status)
{
	if (status)
		atomic_store(&srv.exit_status, status);
	for (unsigned i = 0; i < srv.nworkers; i++)
		urp_loop_stop(srv.workers[i].loop);
}

static ssize_t sig_read(void *arg)
{
	struct sigwatch *s = arg;
	ssize_t n = read(s->fd, &s->info, sizeof(s->info));

	return n < 0 ? -errno : n;
}

static int sigwatch_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct sigwatch *s = arg;
	struct urp_event ev;
	ssize_t n;

	for (;;) {
		n = urp_io_try_io(s->io, URP_READABLE, sig_read, s);
		if (n > 0) {
			stop_all(0);
			continue;
		}
		if (n != -EAGAIN)
			return 0;
		if (urp_io_poll_ready(s->io, URP_DIR_READ, &waker, &ev) == -EAGAIN)
			return 0;
	}
}

/* ---- connection slots: --max-conns and running out of descriptors ---- */

/* Wake the listeners paused for a reason this event removes. */
static void resume_listeners(bool closed)
{
	if (!atomic_load(&srv.paused))
		return;
	for (unsigned i = 0; i < srv.nworkers; i++) {
		struct worker *w = &srv.workers[i];

		for (unsigned j = 0; j < w->nlisteners; j++) {
			struct listener *l = &w->listeners[j];
			int kind = atomic_load(&l->paused);

			if (kind == RUNNING || (kind == PAUSED_NOFILE && !closed))
				continue;
			if (atomic_compare_exchange_strong(&l->paused, &kind, RUNNING)) {
				atomic_fetch_sub(&srv.paused, 1);
				urp_task_wake(&l->task);
			}
		}
	}
}

static bool take_slot(void)
{
	if (atomic_fetch_add(&srv.live, 1) < srv.max_conns || !srv.max_conns)
		return true;
	atomic_fetch_sub(&srv.live, 1);
	return false;
}

/* Give a slot back: a connection closed (closed: a descriptor is free too), or a reservation
 * went unused (another listener may have found the count full meanwhile). */
static void release_slot(bool closed)
{
	atomic_fetch_sub(&srv.live, 1);
	atomic_fetch_add(&srv.slots_freed, 1);
	if (closed)
		atomic_fetch_add(&srv.closes, 1);
	resume_listeners(closed);
}

/*
 * Stop accepting until what kind waits for happens: a slot given back (PAUSED_FULL) or a
 * connection closed (PAUSED_NOFILE). No timer: whoever gives the slot back wakes the listener,
 * from whichever loop it runs on. seen is that event's counter (slots_freed or closes) as read
 * before the attempt that failed. Returns false when the event came meanwhile: retry at once.
 */
static bool listener_pause(struct listener *l, int kind, unsigned seen)
{
	atomic_uint *counter = kind == PAUSED_FULL ? &srv.slots_freed : &srv.closes;
	int cur = kind;

	atomic_store(&l->paused, kind);
	atomic_fetch_add(&srv.paused, 1);
	/* Dekker with release_slot(): it counts, then looks for paused listeners; we publish the
	 * flag, then look at the count. One of us sees the other (all seq_cst). */
	if (atomic_load(counter) == seen)
		return true;
	if (atomic_compare_exchange_strong(&l->paused, &cur, RUNNING)) {
		atomic_fetch_sub(&srv.paused, 1);
		return false;
	}
	return true; /* a closer took the flag: its wake is on its way */
}

/* ---- connections ---- */

static ssize_t conn_recv(void *arg)
{
	struct conn *c = arg;
	ssize_t n = recv(c->fd, c->buf + c->tail, CONN_BUF - c->tail, 0);

	return n < 0 ? -errno : n;
}

static ssize_t conn_send(void *arg)
{
	struct conn *c = arg;
	ssize_t n = send(c->fd, c->buf + c->head, c->tail - c->head, MSG_NOSIGNAL);

	return n < 0 ? -errno : n;
}

/*
 * Tear the connection down and free it; returns URP_TASK_DONE for its run(). Its waker leaves
 * both slots first (no future is used). The descriptor is closed here, right after
 * urp_deregister() (which allows it), rather than by urp_deregister_close() on a later turn: a
 * listener paused on EMFILE is resumed below and must find the descriptor slot already free.
 */
static int conn_finish(struct conn *c, ssize_t err)
{
	struct worker *w = c->worker;

	if (err)
		w->errors++;
	urp_io_clear_wakers(c->io);
	urp_deregister(c->io);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	release_slot(true);
	return URP_TASK_DONE;
}

/*
 * Echo: write back what is buffered, read more while there is room, and wait for whichever
 * direction blocks. A full buffer stops the reading (the kernel's receive queue, then the
 * peer's send window, hold the rest: back-pressure, never unbounded memory). After the peer's
 * FIN, finish writing, then send ours.
 */
static int conn_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct conn *c = arg;
	unsigned budget = CONN_BUDGET;
	struct urp_event ev;
	ssize_t n;

	for (;;) {
		if (!budget--) {
			urp_task_wake(task);
			return 0;
		}
		while (c->head < c->tail) {
			n = urp_io_try_io(c->io, URP_WRITABLE, conn_send, c);
			if (n == -EAGAIN)
				break;
			if (n < 0 && n != -EINTR)
				return conn_finish(c, n);
			if (n > 0) {
				c->head += (size_t)n;
				c->worker->bytes += (uint64_t)n;
			}
		}
		if (c->head == c->tail)
			c->head = c->tail = 0;
		if (c->eof) {
			if (c->head == c->tail) {
				/* Everything is back with the peer: now our FIN. */
				shutdown(c->fd, SHUT_WR);
				return conn_finish(c, 0);
			}
		} else {
			if (c->tail == CONN_BUF && c->head > 0) {
				memmove(c->buf, c->buf + c->head, c->tail - c->head);
				c->tail -= c->head;
				c->head = 0;
			}
			if (c->tail < CONN_BUF) {
				n = urp_io_try_io(c->io, URP_READABLE, conn_recv, c);
				if (n > 0)
					c->tail += (size_t)n;
				else if (n == 0)
					c->eof = true;
				if (n >= 0 || n == -EINTR)
					continue;
				if (n != -EAGAIN)
					return conn_finish(c, n);
			}
		}
		/* ERROR with nothing to do: the poll itself failed (the driver counts poll_errors)
		 * and the slots would report ready for ever; the socket's own errors came back
		 * from recv or send above. */
		if (urp_io_word(c->io) & URP_ERROR)
			return conn_finish(c, -EIO);
		/* Store the waker in each slot we wait on; ready meanwhile: go round again. */
		if (c->head < c->tail && urp_io_poll_ready(c->io, URP_DIR_WRITE, &waker, &ev) == 0)
			continue;
		if (!c->eof && c->tail < CONN_BUF &&
		    urp_io_poll_ready(c->io, URP_DIR_READ, &waker, &ev) == 0)
			continue;
		return 0;
	}
}

static void conn_start(struct listener *l, int fd)
{
	struct worker *w = l->worker;
	struct conn *c = malloc(sizeof(*c));
	int one = 1, ret;

	if (!c) {
		ret = -ENOMEM;
		goto out_close;
	}
	*c = (struct conn){ .worker = w, .fd = fd };
	ret = urp_register(urp_loop_driver(w->loop), fd, URP_READABLE | URP_WRITABLE, &c->io);
	if (ret < 0)
		goto out_free;
	if (l->tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->accepted++;
	urp_task_init(&c->task, w->loop, conn_run, c);
	urp_task_wake(&c->task);
	return;

out_free:
	free(c);
out_close:
	/* -ENOSPC: more connections than the ring was sized for (main() sizes it from the
	 * descriptor limit); -ENOMEM. Either way the client sees its connection closed. */
	if (!srv.quiet)
		fprintf(stderr, PROG ": dropping a connection: %s\n", urp_strerror(ret));
	close(fd);
	w->shed++;
	release_slot(true);
}

/* ---- listeners ---- */

static ssize_t accept_op(void *arg)
{
	struct listener *l = arg;
	int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * Out of descriptors: give the reserve descriptor up, accept the oldest pending connection and
 * close it at once (its client sees EOF instead of hanging in the backlog), then take the
 * reserve back. Each call shortens the backlog by one, and the accept goes through try_io, so
 * an empty backlog clears the readiness (accept4 fails with EMFILE before it looks at the
 * backlog: without the reserve, an empty backlog looks like a full one). Returns 0 when one
 * was shed, -EAGAIN when none is pending, or another -errno (no reserve: -EMFILE).
 */
static ssize_t shed_one(struct listener *l)
{
	struct worker *w = l->worker;
	ssize_t fd;

	if (w->reserve_fd < 0)
		return -EMFILE;
	close(w->reserve_fd);
	fd = urp_io_try_io(l->io, URP_READABLE, accept_op, l);
	if (fd >= 0) {
		close((int)fd);
		w->shed++;
	}
	w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? 0 : fd;
}

static bool accept_retryable(ssize_t err)
{
	/* accept(2): errors of the connection being accepted, not of the listener. */
	switch (-err) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
	case ETIMEDOUT:
		return true;
	default:
		return false;
	}
}

static int listener_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct listener *l = arg;
	struct worker *w = l->worker;
	unsigned budget = ACCEPT_BUDGET, freed_seen, closes_seen;
	struct urp_event ev;
	ssize_t fd;

	if (l->waiting) {
		/* A resume raced the future: keep waiting on it. */
		if (urp_readiness_poll(&l->ready, &waker, &ev) == -EAGAIN)
			return 0;
		l->waiting = false;
	}
	if (atomic_load(&l->paused))
		return 0;
	if (w->reserve_fd < 0)
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (;;) {
		if (!budget--) {
			urp_task_wake(task);
			return 0;
		}
		freed_seen = atomic_load(&srv.slots_freed);
		closes_seen = atomic_load(&srv.closes);
		if (!take_slot()) {
			if (listener_pause(l, PAUSED_FULL, freed_seen))
				return 0;
			continue;
		}
		fd = urp_io_try_io(l->io, URP_READABLE, accept_op, l);
		if (fd >= 0) {
			conn_start(l, (int)fd);
			continue;
		}
		release_slot(false);
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
			if (!srv.quiet && !atomic_exchange(&srv.warned_nofile, true))
				fprintf(stderr,
					PROG ": accept: %s: shedding or pausing new connections "
					     "(raise ulimit -n)\n",
					strerror((int)-fd));
			fd = shed_one(l);
			if (fd == 0)
				continue;
			if (fd != -EAGAIN && fd != -ESHUTDOWN && !accept_retryable(fd)) {
				/* Still out of descriptors: wait for one of ours to close. */
				if (listener_pause(l, PAUSED_NOFILE, closes_seen))
					return 0;
				continue;
			}
		}
		if (fd == -EAGAIN) {
			/* A listening socket reports no errors: ERROR means the driver's poll on
			 * it failed, and would read as ready for ever. */
			if (urp_io_word(l->io) & URP_ERROR) {
				fprintf(stderr, PROG ": the poll on a listening socket failed\n");
				stop_all(1);
				return 0;
			}
			/* Drained. Wait for the next connection, unless one came meanwhile. */
			urp_readiness_init(&l->ready, l->io, URP_READABLE);
			if (urp_readiness_poll(&l->ready, &waker, &ev) == -EAGAIN) {
				l->waiting = true;
				return 0;
			}
			continue;
		}
		if (fd == -ESHUTDOWN)
			return 0;
		if (accept_retryable(fd))
			continue;
		fprintf(stderr, PROG ": accept: %s\n", strerror((int)-fd));
		stop_all(1);
		return 0;
	}
}

/* ---- set-up ---- */

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

/* "IPV4:PORT" or "[IPV6]:PORT", literals only (no name lookup). */
static bool parse_addr(const char *text, union sockaddr_any *addr, socklen_t *len)
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

static const char *addr_str(const union sockaddr_any *addr, char *buf, size_t size)
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
 * Bind the TCP listeners, one per loop. Port 0 picks a free port for the first and the others
 * join it. SO_REUSEPORT lets any socket of the same user join the group, so a server already
 * listening there (another urpoll-echo --threads) would silently share our connections: a
 * plain bind first makes that an "address in use" error.
 */
static int tcp_listeners(union sockaddr_any *addr, socklen_t len, int *fds, unsigned n)
{
	int fd;

	if (n > 1 && (addr->in.sin_port || addr->in6.sin6_port)) {
		fd = tcp_listen(addr, len, false);
		if (fd < 0)
			return fd;
		close(fd);
	}
	for (unsigned i = 0; i < n; i++) {
		fd = tcp_listen(addr, len, n > 1);
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

/* Whether a socket file has nobody accepting on it (left behind by a process that died). */
static bool unix_stale(const union sockaddr_any *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool stale;

	if (fd < 0)
		return false;
	stale = connect(fd, &addr->sa, sizeof(addr->un)) < 0 && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

/* A listening Unix socket at path; a stale socket file is replaced. Returns fd or -errno. */
static int unix_listen(const char *path)
{
	union sockaddr_any addr = { .un.sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(addr.un.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.un.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, &addr.sa, sizeof(addr.un)) < 0) {
		if (errno != EADDRINUSE || !unix_stale(&addr))
			goto out_close;
		unlink(path);
		if (bind(fd, &addr.sa, sizeof(addr.un)) < 0)
			goto out_close;
	}
	if (listen(fd, SOMAXCONN) < 0)
		goto out_close;
	return fd;

out_close:
	err = -errno;
	close(fd);
	return err;
}

static void listener_init(struct worker *w, int fd, bool tcp)
{
	struct listener *l = &w->listeners[w->nlisteners++];

	l->worker = w;
	l->fd = fd;
	l->tcp = tcp;
	atomic_init(&l->paused, RUNNING);
	urp_task_init(&l->task, w->loop, listener_run, l);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (srv.pin) {
		cpu_set_t allowed, one;
		unsigned seen = 0, want;

		/* The i-th CPU this process may use (modulo their number). */
		if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed)) {
			want = w->index % (unsigned)CPU_COUNT(&allowed);
			for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
				if (!CPU_ISSET(cpu, &allowed) || seen++ != want)
					continue;
				CPU_ZERO(&one);
				CPU_SET(cpu, &one);
				pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
				break;
			}
		}
	}
	w->status = urp_loop_run(w->loop);
	if (w->status < 0) {
		fprintf(stderr, PROG ": loop %u: %s\n", w->index, urp_strerror(w->status));
		stop_all(1);
	}
	return NULL;
}

/* Ring size: two CQ entries per registration the loop may need (see urp_driver_opts). */
static unsigned cq_entries_for(unsigned conns)
{
	unsigned long want = 2ul * ((unsigned long)conns + 16), cq = 16384;

	while (cq < want && cq < 131072)
		cq <<= 1;
	return (unsigned)cq;
}

static int usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: " PROG " [--listen ADDR:PORT] [--unix PATH] [--threads N]\n"
		"                   [--max-conns N] [--pin] [-q] [--help]\n"
		"\n"
		"An echo server on the urpoll task loop: every byte a client sends comes\n"
		"back. When a client shuts down its sending side, the server writes back\n"
		"what it still holds, then closes. SIGINT or SIGTERM stops it, printing\n"
		"one line: connections, bytes echoed, readiness events, stale-event\n"
		"rejections and wake batches.\n"
		"\n"
		"  -l, --listen ADDR:PORT  TCP at ADDR:PORT: an IPv4 literal or [IPv6]:PORT\n"
		"                          (default 127.0.0.1:7777). Port 0 picks a free\n"
		"                          port; the address in use is printed on stdout\n"
		"  -u, --unix PATH         a Unix stream socket at PATH instead (with\n"
		"                          --listen as well: both). A stale socket file is\n"
		"                          replaced; PATH is removed at exit\n"
		"  -t, --threads N         N loops, one per thread, each with its own\n"
		"                          io_uring (default 1). TCP: one listener per loop\n"
		"                          on the same port (SO_REUSEPORT), the kernel\n"
		"                          spreads clients over them. Unix: one listening\n"
		"                          socket watched by every loop; whichever accepts\n"
		"                          first serves the client\n"
		"  -m, --max-conns N       at most N open connections in all (default: the\n"
		"                          descriptor limit); beyond it, clients wait in the\n"
		"                          kernel's backlog until a connection closes\n"
		"  -p, --pin               pin loop i to the i-th CPU this process may use\n"
		"  -q, --quiet             print errors only (no address, warnings, summary)\n"
		"  -h, --help              this text\n"
		"\n"
		"The soft limit on open files is raised to the hard limit. Out of\n"
		"descriptors (EMFILE), the server sheds the oldest pending connection\n"
		"(closes it at once) with a reserve descriptor, or stops accepting until\n"
		"one of its connections closes: it never spins.\n"
		"Exit status: 0 after a signal, 1 on a runtime error, 2 on bad usage.\n");
	return status;
}

static bool parse_count(const char *text, unsigned min, unsigned max, unsigned *out)
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

static void print_summary(void)
{
	uint64_t conns = 0, bytes = 0, shed = 0, errors = 0;
	struct urp_stats sum = { 0 }, st;

	for (unsigned i = 0; i < srv.nworkers; i++) {
		struct worker *w = &srv.workers[i];

		conns += w->accepted;
		bytes += w->bytes;
		shed += w->shed;
		errors += w->errors;
		if (urp_driver_stats(urp_loop_driver(w->loop), &st) == 0) {
			sum.events += st.events;
			sum.stale_rejects += st.stale_rejects;
			sum.wake_batches += st.wake_batches;
			sum.unknown_tokens += st.unknown_tokens;
		}
	}
	printf(PROG ": %llu connections, %llu bytes, %llu events, %llu stale rejections, "
		    "%llu wake batches (%u thread%s, %llu shed, %llu errors)\n",
	       (unsigned long long)conns, (unsigned long long)bytes,
	       (unsigned long long)sum.events, (unsigned long long)sum.stale_rejects,
	       (unsigned long long)sum.wake_batches, srv.nworkers, srv.nworkers == 1 ? "" : "s",
	       (unsigned long long)shed, (unsigned long long)errors);
	/* A completion for no live registration: a bug in urpoll, never in the caller. */
	if (sum.unknown_tokens)
		fprintf(stderr,
			PROG ": %llu completions named no live registration (a urpoll bug)\n",
			(unsigned long long)sum.unknown_tokens);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "unix", required_argument, NULL, 'u' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "pin", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_arg = NULL, *unix_path = NULL;
	int tcp_fds[MAX_THREADS], unix_fd = -1, ret, opt, status = 1;
	unsigned nthreads = 1, started = 0, limit;
	struct urp_driver_opts dopts = { 0 };
	union sockaddr_any addr;
	socklen_t addr_len = 0;
	struct rlimit rl;
	char text[128];
	sigset_t mask;

	for (unsigned i = 0; i < MAX_THREADS; i++)
		tcp_fds[i] = -1;
	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, ":l:u:t:m:pqh", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_arg = optarg;
			break;
		case 'u':
			unix_path = optarg;
			break;
		case 't':
			if (!parse_count(optarg, 1, MAX_THREADS, &nthreads)) {
				fprintf(stderr, PROG ": --threads wants 1 to %d\n", MAX_THREADS);
				return 2;
			}
			break;
		case 'm':
			if (!parse_count(optarg, 1, UINT_MAX / 2, &srv.max_conns)) {
				fprintf(stderr, PROG ": --max-conns wants a positive number\n");
				return 2;
			}
			break;
		case 'p':
			srv.pin = true;
			break;
		case 'q':
			srv.quiet = true;
			break;
		case 'h':
			return usage(0);
		case ':':
			fprintf(stderr, PROG ": %s needs an argument (see --help)\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, PROG ": unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	if (!listen_arg && !unix_path)
		listen_arg = "127.0.0.1:7777";
	if (listen_arg && !parse_addr(listen_arg, &addr, &addr_len)) {
		fprintf(stderr, PROG ": bad address '%s': expected IPV4:PORT or [IPV6]:PORT\n",
			listen_arg);
		return 2;
	}

	/* Every connection costs a descriptor: allow as many as the hard limit lets us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	limit = rl.rlim_cur > 1000000 ? 1000000 : (unsigned)rl.rlim_cur;
	if (srv.max_conns && srv.max_conns < limit)
		limit = srv.max_conns;
	dopts.cq_entries = cq_entries_for(limit);

	/* Signals are blocked in every thread (they inherit the mask) and read from a signalfd
	 * by a task: no handler, nothing async-signal-unsafe. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	srv.sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv.sig.fd < 0) {
		fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
		return 1;
	}

	if (listen_arg) {
		ret = tcp_listeners(&addr, addr_len, tcp_fds, nthreads);
		if (ret < 0) {
			fprintf(stderr, PROG ": cannot listen on %s: %s\n", listen_arg,
				strerror(-ret));
			goto out_close;
		}
	}
	if (unix_path) {
		unix_fd = unix_listen(unix_path);
		if (unix_fd < 0) {
			fprintf(stderr, PROG ": cannot listen on %s: %s\n", unix_path,
				strerror(-unix_fd));
			unix_path = NULL; /* not ours to remove */
			goto out_close;
		}
	}

	srv.workers = calloc(nthreads, sizeof(*srv.workers));
	if (!srv.workers) {
		fprintf(stderr, PROG ": %s\n", strerror(ENOMEM));
		goto out_close;
	}
	for (unsigned i = 0; i < nthreads; i++)
		srv.workers[i].reserve_fd = -1;
	for (unsigned i = 0; i < nthreads; i++) {
		struct worker *w = &srv.workers[i];

		w->index = i;
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ret = urp_loop_new(&w->loop, &dopts);
		if (ret < 0) {
			fprintf(stderr, PROG ": %s\n", urp_strerror(ret));
			goto out_free;
		}
		srv.nworkers++;
		if (listen_arg)
			listener_init(w, tcp_fds[i], true);
		if (unix_path)
			listener_init(w, unix_fd, false);
		for (unsigned j = 0; j < w->nlisteners; j++) {
			struct listener *l = &w->listeners[j];

			/* Registered from here, armed on the loop's first turn on its thread. */
			ret = urp_register(urp_loop_driver(w->loop), l->fd, URP_READABLE, &l->io);
			if (ret < 0) {
				fprintf(stderr, PROG ": register: %s\n", urp_strerror(ret));
				goto out_free;
			}
			urp_task_wake(&l->task);
		}
	}
	ret = urp_register(urp_loop_driver(srv.workers[0].loop), srv.sig.fd, URP_READABLE,
			   &srv.sig.io);
	if (ret < 0) {
		fprintf(stderr, PROG ": register: %s\n", urp_strerror(ret));
		goto out_free;
	}
	urp_task_init(&srv.sig.task, srv.workers[0].loop, sigwatch_run, &srv.sig);
	urp_task_wake(&srv.sig.task);

	for (started = 1; started < nthreads; started++) {
		struct worker *w = &srv.workers[started];

		ret = pthread_create(&w->thread, NULL, worker_main, w);
		if (ret) {
			fprintf(stderr, PROG ": cannot start a thread: %s\n", strerror(ret));
			stop_all(1);
			break;
		}
		/* "urpoll-echo/1": loops 1..N-1 by name in ps and top (loop 0 is the main
		 * thread), named before the address is printed. */
		snprintf(text, sizeof(text), PROG "/%u", started);
		text[15] = '\0';
		pthread_setname_np(w->thread, text);
	}
	/* Printed once every loop exists: whoever reads it may connect at once. */
	if (!srv.quiet && started == nthreads) {
		if (listen_arg)
			printf(PROG ": listening on tcp %s\n", addr_str(&addr, text, sizeof(text)));
		if (unix_path)
			printf(PROG ": listening on unix %s\n", unix_path);
		fflush(stdout);
	}
	if (started == nthreads)
		worker_main(&srv.workers[0]);
	for (unsigned i = 1; i < started; i++)
		pthread_join(srv.workers[i].thread, NULL);
	status = atomic_load(&srv.exit_status);
	if (!srv.quiet)
		print_summary();

out_free:
	for (unsigned i = 0; i < srv.nworkers; i++) {
		struct worker *w = &srv.workers[i];

		/* Frees every entry still registered; then the descriptors are ours to close. */
		urp_loop_free(w->loop);
		while (w->conns) {
			struct conn *c = w->conns;

			w->conns = c->next;
			close(c->fd);
			free(c);
		}
	}
	for (unsigned i = 0; srv.workers && i < nthreads; i++)
		if (srv.workers[i].reserve_fd >= 0)
			close(srv.workers[i].reserve_fd);
	free(srv.workers);
out_close:
	for (unsigned i = 0; i < nthreads; i++)
		if (tcp_fds[i] >= 0)
			close(tcp_fds[i]);
	if (unix_fd >= 0)
		close(unix_fd);
	if (unix_path)
		unlink(unix_path);
	close(srv.sig.fd);
	return status;
}
