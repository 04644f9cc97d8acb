/* SPDX-License-Identifier: MIT */
/*
 * urpoll-echo: a TCP and Unix-socket echo server on the urpoll task loop.
 *
 * One task per connection, one listener task per listening socket and loop, and N loops, one
 * per thread, each with its own ring and (for TCP) its own SO_REUSEPORT listener: the
 * thread-per-core layout of docs/threads.md. A connection task waits with the reader and writer
 * slots (urp_io_poll_ready), a listener with a readiness future (urp_readiness). With --io ring
 * (the default) a connection is registered in ring mode: each buffer the driver received is
 * taken and queued back as it is (urp_io_send_buf(), no copy), one at a time, so a client that
 * does not read stops the server's reading of it. With --io readiness it moves bytes with
 * urp_io_try_io() until EAGAIN, which clears the readiness it acted on, through a 16 KiB buffer
 * of its own. The listeners use readiness either way (accept() has no ring mode).
 *
 *   urpoll-echo [--listen ADDR:PORT] [--unix PATH] [--threads N] [--io ring|readiness]
 *               [--max-conns N] [--pin] [-q]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <urpoll.h>

#include "../acceptor.h"
#include "../net.h"
#include "../server.h"

#define PROG "urpoll-echo"

/* Readiness mode: bytes a connection holds between reading and writing back, the most it ever
 * buffers. */
#define CONN_BUF      16384
/* Ring mode's driver options (see urpoll-proxy's, tools/servers/proxy/proxy.h): a connection
 * holds at most RING_BUF_CAP buffers received and two more (one being sent, one waiting for
 * that send), and an idle one none; 256 of 8 KiB (2 MiB a loop) let 64 clients stop reading
 * at once before the others wait for buffers. */
#define RING_BUF_COUNT 256
#define RING_BUF_SIZE  8192
#define RING_BUF_CAP   2
#define RING_SEND_HWM  1
/* Rounds of a task before it lets the others run (it is queued again behind them). */
#define CONN_BUDGET   64
#define MAX_THREADS   256
#define MAX_LISTENERS 2

struct worker;

struct conn {
	struct urp_task task;
	struct worker *worker;
	struct server_link link; /* in the worker's open connections, for the exit */
	struct urp_io *io;
	int fd;
	bool eof;	   /* the peer half-closed: nothing more to read */
	bool fin;	   /* ring mode: our FIN is queued */
	size_t head, tail; /* readiness mode: buffered, not yet written back: buf[head..tail) */
	struct urp_buf *pending; /* ring mode: taken, waiting for the send before it */
	char buf[];	   /* readiness mode: CONN_BUF bytes */
};

/* One loop on one thread. Its counters are written by that thread only and read after join. */
struct worker {
	struct urp_loop *loop;
	struct acceptor acceptors[MAX_LISTENERS];
	unsigned nacceptors;
	struct server_link *conns;
	uint64_t accepted, bytes, dropped, errors;
};

static struct {
	struct server server;
	struct acceptor_group group;
	enum server_io io;
	struct worker *workers;
	unsigned nworkers;
} srv;

/* ---- shutdown ---- */

static void stop_failed(void)
{
	server_stop(&srv.server, 1);
}

/* SIGINT or SIGTERM: stop at once. */
static void on_signal(int signo)
{
	(void)signo;
	server_stop(&srv.server, 0);
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
 * -ESHUTDOWN: the loop is stopping, or the driver's poll failed, which is said.
 */
static int conn_finish(struct conn *c, ssize_t err)
{
	struct worker *w = c->worker;

	if (err == -ESHUTDOWN)
		server_poll_failed(PROG, c->io, "a connection");
	if (err)
		w->errors++;
	if (c->pending)
		urp_buf_release(c->pending);
	urp_io_clear_wakers(c->io);
	urp_deregister(c->io);
	close(c->fd);
	server_link_del(&w->conns, &c->link);
	free(c);
	acceptor_release(&srv.group, true);
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
		/* Nothing to do: if the driver's poll failed (it counts poll_errors), the slots
		 * would report ready for ever; the socket's own errors came back from recv or send
		 * above. */
		n = server_poll_failed(PROG, c->io, "a connection");
		if (n < 0)
			return conn_finish(c, n);
		/* Store the waker in each slot we wait on; ready meanwhile: go round again. */
		if (c->head < c->tail && urp_io_poll_ready(c->io, URP_DIR_WRITE, &waker, &ev) == 0)
			continue;
		if (!c->eof && c->tail < CONN_BUF &&
		    urp_io_poll_ready(c->io, URP_DIR_READ, &waker, &ev) == 0)
			continue;
		return 0;
	}
}

/*
 * Ring mode: take what the driver received and queue it back as it is, while the send queue
 * is below its mark (one send); a buffer taken meanwhile waits for it, and the reading stops
 * (the driver pauses the recv once RING_BUF_CAP more are queued: the rest waits in the
 * kernel). After the peer's FIN, our FIN goes behind the data, and the connection ends once
 * both went out (a deregistration would drop them).
 */
static int conn_run_ring(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct conn *c = arg;
	unsigned budget = CONN_BUDGET;
	struct urp_event ev;
	int ret;

	for (;;) {
		if (!budget--) {
			urp_task_wake(task);
			return 0;
		}
		if (!c->eof && !c->pending) {
			ret = urp_io_take(c->io, &c->pending);
			if (ret == 0)
				c->eof = true;
			else if (ret < 0 && ret != -EAGAIN)
				return conn_finish(c, ret);
		}
		if (c->pending && urp_io_send_queued(c->io) < RING_SEND_HWM) {
			size_t len = c->pending->len;

			ret = urp_io_send_buf(c->io, c->pending);
			if (ret < 0)
				return conn_finish(c, ret);
			c->pending = NULL;
			c->worker->bytes += len;
			continue;
		}
		if (c->eof && !c->fin) {
			ret = urp_io_send_fin(c->io);
			if (ret < 0)
				return conn_finish(c, ret);
			c->fin = true;
		}
		if (c->fin) {
			ev.ready = urp_word_ready(urp_io_word(c->io));
			if (ev.ready & URP_ERROR)
				return conn_finish(c, urp_io_send(c->io, NULL, 0));
			if (!urp_io_send_queued(c->io))
				return conn_finish(c, 0);
			/* A FIN alone is 0 bytes, below the mark: WRITABLE may still stand.
			 * Cleared, the slot waits for the Set of the completion that empties the
			 * queue (completions are reaped on this thread: none comes between). */
			urp_io_ready_event(c->io, URP_WRITABLE, &ev);
			if (ev.ready & URP_WRITABLE)
				urp_io_clear_readiness(c->io, &ev);
		}
		ret = server_poll_failed(PROG, c->io, "a connection");
		if (ret < 0)
			return conn_finish(c, ret);
		/* A buffer waits for the send queue, or the take found nothing. */
		if (c->pending || c->fin)
			ret = urp_io_poll_ready(c->io, URP_DIR_WRITE, &waker, &ev);
		else
			ret = urp_io_poll_ready(c->io, URP_DIR_READ, &waker, &ev);
		if (ret < 0)
			return 0;
		if (ev.shutdown)
			return conn_finish(c, -ESHUTDOWN);
		/* Ready while the queue is still full: WRITE_CLOSED, an error whose send is still
		 * in flight. Its completion empties the queue on a later turn: look then. */
		if ((c->pending || c->fin) && !(ev.ready & URP_WRITABLE) &&
		    urp_io_send_queued(c->io) >= RING_SEND_HWM) {
			urp_task_wake(task);
			return 0;
		}
	}
}

static void conn_start(struct acceptor *a, int fd, void *arg)
{
	struct worker *w = arg;
	bool ring = srv.io == SERVER_IO_RING;
	struct conn *c = malloc(sizeof(*c) + (ring ? 0 : CONN_BUF));
	int one = 1, ret;

	if (!c) {
		ret = -ENOMEM;
		goto out_close;
	}
	*c = (struct conn){ .worker = w, .fd = fd };
	if (ring)
		ret = urp_register_ring(urp_loop_driver(w->loop), fd, &c->io);
	else
		ret = urp_register(urp_loop_driver(w->loop), fd, URP_READABLE | URP_WRITABLE,
				   &c->io);
	if (ret < 0)
		goto out_free;
	/* On a Unix socket this fails (EOPNOTSUPP), harmlessly. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	server_link_add(&w->conns, &c->link);
	w->accepted++;
	urp_task_init(&c->task, w->loop, ring ? conn_run_ring : conn_run, c);
	urp_task_wake(&c->task);
	return;

out_free:
	free(c);
out_close:
	/* -ENOSPC: more connections than the ring was sized for (main() sizes it from the
	 * descriptor limit); -ENOMEM. Either way the client sees its connection closed. */
	if (!srv.server.quiet)
		fprintf(stderr, PROG ": dropping a connection: %s\n", urp_strerror(ret));
	close(fd);
	w->dropped++;
	acceptor_release(&srv.group, true);
}

/* ---- set-up ---- */

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

static int usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: " PROG " [--listen ADDR:PORT] [--unix PATH] [--threads N]\n"
		"                   [--io ring|readiness] [--max-conns N] [--pin] [-q] [--help]\n"
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
		"      --io ring|readiness how bytes move. ring (the default): io_uring\n"
		"                          receives into a ring of %d KiB buffers shared by a\n"
		"                          loop's connections and sends each back as it is;\n"
		"                          an idle connection holds no buffer. readiness:\n"
		"                          recv() and send() when the readiness word says\n"
		"                          so, through a 16 KiB buffer per connection.\n"
		"                          Without --io, a kernel that lacks ring mode\n"
		"                          (Linux 6.0) gets readiness, said once\n"
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
		"\n"
		"EXAMPLES:\n"
		"    " PROG "                          # TCP on 127.0.0.1:7777\n"
		"    " PROG " -l 127.0.0.1:0           # a free port, printed on stdout\n"
		"    " PROG " -l [::1]:7777 -t 2 --pin # two loops, one per CPU\n"
		"    " PROG " -u /tmp/echo.sock        # a Unix socket only\n"
		"\n"
		"Exit status: 0 after a signal, 1 on a runtime error (address in use, no\n"
		"io_uring), 2 on bad usage.\n",
		RING_BUF_SIZE / 1024);
	return status;
}

static void print_summary(void)
{
	uint64_t conns = 0, bytes = 0, shed = 0, errors = 0;
	struct urp_stats sum;

	for (unsigned i = 0; i < srv.nworkers; i++) {
		struct worker *w = &srv.workers[i];

		conns += w->accepted;
		bytes += w->bytes;
		shed += w->dropped;
		for (unsigned j = 0; j < w->nacceptors; j++)
			shed += atomic_load_explicit(&w->acceptors[j].shed, memory_order_relaxed);
		errors += w->errors;
	}
	server_stats(&srv.server, &sum);
	printf(PROG ": %llu connections, %llu bytes, %llu events, %llu stale rejections, "
		    "%llu wake batches (%u thread%s, %llu shed, %llu errors)\n",
	       (unsigned long long)conns, (unsigned long long)bytes,
	       (unsigned long long)sum.events, (unsigned long long)sum.stale_rejects,
	       (unsigned long long)sum.wake_batches, srv.nworkers, srv.nworkers == 1 ? "" : "s",
	       (unsigned long long)shed, (unsigned long long)errors);
	server_stats_check(&srv.server, &sum);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	enum { OPT_IO = 256 };
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "unix", required_argument, NULL, 'u' },
		{ "threads", required_argument, NULL, 't' },
		{ "io", required_argument, NULL, OPT_IO },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "pin", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_arg = NULL, *unix_path = NULL;
	int tcp_fds[MAX_THREADS], unix_fd = -1, ret, opt, status = 1;
	unsigned nthreads = 1;
	int listen_fds[MAX_LISTENERS];
	unsigned nlisten;
	struct urp_driver_opts dopts = { 0 };
	union sockaddr_any addr;
	socklen_t addr_len = 0;

	for (unsigned i = 0; i < MAX_THREADS; i++)
		tcp_fds[i] = -1;
	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, ":l:u:t:m:pqh", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_arg = optarg;
			if (!net_parse_addr(optarg, &addr, &addr_len))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"bad address '%s' (expected IPV4:PORT or "
							"[IPV6]:PORT)",
							optarg);
			break;
		case 'u':
			unix_path = optarg;
			if (!*optarg || strlen(optarg) >= sizeof(addr.un.sun_path))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"'%s' is %zu bytes long (a socket path "
							"is 1 to %zu)",
							optarg, strlen(optarg),
							sizeof(addr.un.sun_path) - 1);
			break;
		case 't':
			if (!server_opt_count(PROG, opt, argv, 1, MAX_THREADS, "", &nthreads))
				return 2;
			break;
		case 'm':
			if (!server_opt_count(PROG, opt, argv, 1, UINT_MAX / 2, "",
					      &srv.group.max_conns))
				return 2;
			break;
		case OPT_IO:
			if (!server_opt_io(PROG, opt, argv, &srv.io))
				return 2;
			break;
		case 'p':
			srv.server.pin = true;
			break;
		case 'q':
			srv.server.quiet = true;
			break;
		case 'h':
			return usage(0);
		default:
			return server_usage_error(PROG, opt, argv, options);
		}
	}
	if (optind < argc)
		return server_usage_error(PROG, -1, argv, options);
	srv.server.prog = PROG;
	srv.server.on_signal = on_signal;
	srv.group.prog = PROG;
	srv.group.quiet = srv.server.quiet;
	srv.group.fatal = stop_failed;
	if (!listen_arg && !unix_path) {
		listen_arg = "127.0.0.1:7777";
		net_parse_addr(listen_arg, &addr, &addr_len);
	}

	/* Every connection costs a descriptor: allow as many as the hard limit lets us. */
	dopts.cq_entries = net_raise_nofile_cq_entries(srv.group.max_conns, 1, 0);
	dopts.buf_count = RING_BUF_COUNT;
	dopts.buf_size = RING_BUF_SIZE;
	dopts.buf_cap = RING_BUF_CAP;
	dopts.send_hwm = RING_SEND_HWM;

	if (server_signals_open(&srv.server, NULL) < 0)
		return 1;

	if (listen_arg) {
		ret = net_tcp_listeners(&addr, addr_len, tcp_fds, nthreads, false);
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
	srv.nworkers = nthreads;
	if (server_loops_new(&srv.server, nthreads, &dopts) < 0 ||
	    server_io_setup(&srv.server, &srv.io) < 0)
		goto out_free;
	for (unsigned i = 0; i < nthreads; i++) {
		struct worker *w = &srv.workers[i];

		w->loop = srv.server.loops[i].loop;
		nlisten = 0;
		if (listen_arg)
			listen_fds[nlisten++] = tcp_fds[i];
		if (unix_path)
			listen_fds[nlisten++] = unix_fd;
		for (unsigned j = 0; j < nlisten; j++) {
			ret = acceptor_start(&w->acceptors[j], &srv.group, w->loop, listen_fds[j],
					     conn_start, w);
			if (ret < 0) {
				fprintf(stderr, PROG ": register: %s\n", urp_strerror(ret));
				goto out_free;
			}
			w->nacceptors++;
		}
	}

	status = server_run(&srv.server, listen_arg ? &addr : NULL, unix_path);
	if (!srv.server.quiet)
		print_summary();

out_free:
	/* Frees every entry still registered; then the descriptors are ours to close. */
	server_loops_free(&srv.server);
	for (unsigned i = 0; i < srv.nworkers; i++) {
		struct worker *w = &srv.workers[i];

		while (w->conns) {
			struct conn *c = container_of(w->conns, struct conn, link);

			server_link_del(&w->conns, &c->link);
			close(c->fd);
			free(c);
		}
	}
	for (unsigned i = 0; i < srv.nworkers; i++)
		for (unsigned j = 0; j < srv.workers[i].nacceptors; j++)
			acceptor_free(&srv.workers[i].acceptors[j]);
	free(srv.workers);
out_close:
	for (unsigned i = 0; i < nthreads; i++)
		if (tcp_fds[i] >= 0)
			close(tcp_fds[i]);
	if (unix_fd >= 0)
		close(unix_fd);
	if (unix_path)
		unlink(unix_path);
	server_signals_close(&srv.server);
	return status;
}
