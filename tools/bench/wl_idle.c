/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workload `idle`: one active connection among 0, 1000 or 9000 idle ones, all
 * watched by the backend under test; does the cost of a request grow with the idle count?
 *
 * The client lives in a forked process, so that the server's and the client's fds count against
 * separate open-file limits (9001 connections need 18002 fds plus the listener). It connects
 * the active connection and then the idle ones (loopback TCP, blocking), while the server
 * accepts them all (blocking, before the timed region), and then, on a go from the server,
 * sends 64-byte requests on the active connection, one at a time, reading each 64-byte reply
 * before the next: the latency of each request (write to whole reply read, client side) goes
 * into a histogram in shared memory. The server watches every accepted connection with the
 * same echo callback. Unit: one request. Server CPU is the server process's (getrusage of this
 * process; the client is another process).
 *
 * Memory per registration: the server's VmRSS is read before and after adding the watches
 * (after malloc_trim(), so that pages freed by an earlier run are not silently reused); rss_kb
 * is the growth (per registration: rss_kb * 1024 / idle count). It is user memory only: the
 * kernel's side of a registration (an epitem, a poll request) is not in VmRSS.
 *
 * The syscall counter is inherited by the client; the client counts the syscalls it makes in
 * the timed region (each write and read) and they are subtracted, so the figure is the
 * server's.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include "bench.h"

#define IDLE_MSG     64
#define IDLE_BACKLOG 4096
/* The server loop's wait bound, so that a dead client cannot hold it for ever. */
#define IDLE_WAIT_MS 1000

/* Shared with the client process. */
struct idle_shared {
	struct hist lat;
	uint64_t requests, syscalls;
	int err;
};

struct idle_server {
	const struct bench_backend *b;
	struct bench_loop *lp;
	uint64_t served;
	int err;
};

struct idle_conn {
	struct idle_server *srv;
	struct bench_watch *w;
	int fd;
	unsigned got;
	char buf[IDLE_MSG];
};

/* ---- the client process ---- */

static int read_full(int fd, void *buf, size_t len, uint64_t *calls)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, (char *)buf + got, len - got);
		(*calls)++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

/* Connect 1 + idle connections, then run `requests` requests on the first one. */
static int client_run(const struct sockaddr_in *addr, unsigned idle, uint64_t requests,
		      int go_fd, int stop_fd, struct idle_shared *sh)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	char msg[IDLE_MSG] = { 0 };
	uint64_t calls = 0, i, t0;
	int *fds, ret = 0;
	unsigned k, n = 0;
	char token;

	fds = calloc(idle + 1, sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (n = 0; n < idle + 1; n++) {
		fds[n] = bench_connect(addr, false);
		if (fds[n] < 0) {
			ret = fds[n];
			goto out_close;
		}
	}
	if (read(go_fd, &token, 1) != 1) {
		ret = -EPIPE;
		goto out_close;
	}
	for (i = 0; i < requests; i++) {
		t0 = now_ns();
		if (write(fds[0], msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
			ret = -errno;
			break;
		}
		calls++;
		ret = read_full(fds[0], msg, sizeof(msg), &calls);
		if (ret < 0)
			break;
		hist_add(&sh->lat, now_ns() - t0);
	}
	sh->requests = i;
	sh->syscalls = calls;
	/* Keep every connection until the server has stopped its clock. */
	if (read(stop_fd, &token, 1) < 0)
		ret = ret ? ret : -errno;

out_close:
	/* Reset, not FIN: no TIME_WAIT left behind by thousands of connections per run. */
	for (k = 0; k < n; k++) {
		setsockopt(fds[k], SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(fds[k]);
	}
	free(fds);
	return ret;
}

/* ---- the server ---- */

static void idle_cb(void *arg, unsigned events)
{
	struct idle_conn *c = arg;
	struct idle_server *srv = c->srv;
	ssize_t n;

	for (;;) {
		n = read(c->fd, c->buf + c->got, sizeof(c->buf) - c->got);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* An idle connection closing early is the client failing. */
			srv->err = bench_fail(n ? -errno : -ECONNRESET, "idle: request read");
			return;
		}
		c->got += (unsigned)n;
		if (c->got < sizeof(c->buf))
			continue;
		c->got = 0;
		n = write(c->fd, c->buf, sizeof(c->buf));
		if (n != (ssize_t)sizeof(c->buf)) {
			srv->err = bench_fail(n < 0 ? -errno : -EIO, "idle: reply write");
			return;
		}
		srv->served++;
	}
}

static long vm_rss_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Accept the client's 1 + idle connections and watch them all; rss_kb is what the watches
 * added to VmRSS. */
static int server_setup(struct idle_server *srv, int lfd, struct idle_conn *conns, unsigned count,
			struct run_result *res)
{
	long rss0, rss1;
	unsigned i;
	int ret;

	for (i = 0; i < count; i++) {
		conns[i].fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (conns[i].fd < 0)
			return bench_fail(-errno, "idle: accept4");
		ret = bench_nonblock(conns[i].fd);
		if (ret < 0)
			return bench_fail(ret, "idle: O_NONBLOCK");
		conns[i].srv = srv;
	}
	/* Hand the heap's free pages back first: a run after the first one would otherwise
	 * reuse the pages an earlier run touched, and VmRSS would not move. */
	malloc_trim(0);
	rss0 = vm_rss_kb();
	for (i = 0; i < count; i++) {
		ret = srv->b->add(srv->lp, conns[i].fd, BENCH_IN, idle_cb, &conns[i], &conns[i].w);
		if (ret < 0) {
			conns[i].w = NULL;
			return bench_fail(ret, "idle: add");
		}
	}
	rss1 = vm_rss_kb();
	res->rss_kb = rss0 >= 0 && rss1 > rss0 ? (uint64_t)(rss1 - rss0) : 0;
	/* Arm everything before the clock starts (urpoll submits on its next turn). */
	ret = srv->b->run_once(srv->lp, 0);
	return ret < 0 ? bench_fail(ret, "idle: run_once") : 0;
}

static int server_loop(struct idle_server *srv, uint64_t requests, pid_t child)
{
	int ret, status;

	while (srv->served < requests && !srv->err) {
		ret = srv->b->run_once(srv->lp, IDLE_WAIT_MS);
		if (ret < 0)
			return bench_fail(ret, "idle: run_once");
		if (ret == 0 && waitpid(child, &status, WNOHANG) == child)
			return bench_fail(-ECHILD, "idle: the client exited early");
	}
	return srv->err;
}

static int idle_run(enum backend be, unsigned idle, uint64_t requests, struct run_result *res)
{
	struct idle_server srv = { .b = bench_backends[be] };
	int lfd, go[2] = { -1, -1 }, stop[2] = { -1, -1 }, ret, status;
	unsigned count = idle + 1, i;
	struct idle_shared *sh;
	struct idle_conn *conns;
	struct sockaddr_in addr;
	struct run_clock clk;
	pid_t child;

	/* A backend that does the I/O: its readiness loop is another's (bench.h). */
	if (!srv.b || srv.b->stream)
		return -EOPNOTSUPP;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return bench_fail(-errno, "idle: mmap");
	conns = calloc(count, sizeof(*conns));
	if (!conns) {
		ret = bench_fail(-ENOMEM, "idle: connections");
		goto out_unmap;
	}
	for (i = 0; i < count; i++)
		conns[i].fd = -1;
	lfd = bench_listen(&addr, IDLE_BACKLOG);
	if (lfd < 0) {
		ret = bench_fail(lfd, "idle: listen");
		goto out_free_conns;
	}
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(stop, O_CLOEXEC) < 0) {
		ret = bench_fail(-errno, "idle: pipe2");
		goto out_close_pipes;
	}
	ret = srv.b->open(&srv.lp, count);
	if (ret < 0) {
		bench_fail(ret, "idle: open");
		goto out_close_pipes;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		ret = bench_fail(-errno, "idle: fork");
		goto out_close_loop;
	}
	if (child == 0) {
		/* The client must not touch the server's loop (an io_uring, an epoll fd). */
		close(lfd);
		close(go[1]);
		close(stop[1]);
		sh->err = client_run(&addr, idle, requests, go[0], stop[0], sh);
		_exit(sh->err ? 1 : 0);
	}
	close(go[0]);
	close(stop[0]);
	go[0] = stop[0] = -1;

	ret = server_setup(&srv, lfd, conns, count, res);
	if (ret < 0)
		goto out_kill;
	run_clock_start_loop(&clk, srv.b, srv.lp);
	if (write(go[1], "g", 1) != 1) {
		ret = bench_fail(-errno, "idle: go");
		goto out_kill;
	}
	ret = server_loop(&srv, requests, child);
	run_clock_stop_loop(&clk, res, srv.served);
	if (ret < 0)
		goto out_kill;
	close(stop[1]);
	stop[1] = -1;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status)) {
		ret = bench_fail(sh->err ? sh->err : -ECHILD, "idle: client");
		goto out_close_conns;
	}
	if (sh->requests != srv.served) {
		ret = bench_fail(-EPROTO, "idle: client and server counted different requests");
		goto out_close_conns;
	}
	if (res->syscalls >= sh->syscalls)
		res->syscalls -= sh->syscalls;
	res->bytes = 2 * IDLE_MSG * srv.served;
	if (res->lat)
		hist_merge(res->lat, &sh->lat);
	goto out_close_conns;

out_kill:
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
out_close_conns:
	for (i = 0; i < count; i++) {
		if (conns[i].w)
			srv.b->del(srv.lp, conns[i].w, true);
		else if (conns[i].fd >= 0)
			close(conns[i].fd);
	}
out_close_loop:
	srv.b->close(srv.lp);
out_close_pipes:
	close_fds(go, 2);
	close_fds(stop, 2);
	close(lfd);
out_free_conns:
	free(conns);
out_unmap:
	munmap(sh, sizeof(*sh));
	return ret;
}

const struct workload wl_idle[] = {
	{
		.name = "idle",
		.what = "one TCP connection in request/reply (64 B) among I idle ones, all watched; "
			"client in a child process: latency and CPU per request vs I, RSS growth",
		.unit = "request",
		.param_name = "I",
		.params = { 0, 1000, 9000 },
		.nparams = 3,
		.events_full = 100000,
		.events_quick = 10000,
		.events_smoke = 100,
		.run = idle_run,
		.metric = METRIC_LAT_P50,
	},
};
const unsigned wl_idle_count = sizeof(wl_idle) / sizeof(wl_idle[0]);
