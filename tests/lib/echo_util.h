/* SPDX-License-Identifier: MIT */
/*
 * The fixture of urpoll-echo's end-to-end suites (echo_*): the server (tools/servers/echo/),
 * run as a user runs it, and a client engine. A test starts the server binary built beside it
 * (BUILD/tests/NAME -> BUILD/tools/urpoll-echo) on port 0, reads the address it printed and
 * checks one round trip (server_start()), then drives real clients: run_clients() opens many
 * connections on one epoll (not a thread each), each sending a distinct payload and checking
 * the echo byte for byte. The server leads a process group of its own, SIGKILLed (and every
 * member reaped) in .fini whatever happened (server_kill(); the test process is a child
 * subreaper, suite_init()), and dies with the test process (PR_SET_PDEATHSIG) should that crash.
 *
 * The server's two I/O modes (--io ring, the default, and --io readiness): a test written with
 * ECHO_TEST() is two tests, NAME_ring and NAME_readiness, one body, the mode in srv.io, which
 * server_spawn() passes on. A plain Test() runs the default alone (srv.io NULL: no --io).
 *
 * Each suite: TestSuite(echo_NAME, .init = suite_init, .fini = server_kill, .timeout = 60).
 */
#ifndef URP_TESTS_ECHO_UTIL_H
#define URP_TESTS_ECHO_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "e2e_util.h"

/* Generous bounds, reached only when something is broken (or a sanitizer is very slow). */
#define BOUND_S	 20.0
#define START_S	 10.0
#define MAX_ARGS 16
#define OUT_SIZE 8192

struct endpoint {
	union sockaddr_any addr;
	socklen_t len;
};

/* The server of the current test (each Criterion test runs in a process of its own). */
static struct {
	pid_t pid;
	int out;	/* read end of the server's stdout */
	int err;	/* read end of its stderr, when captured */
	char text[OUT_SIZE];
	size_t text_len;
	struct endpoint tcp, local; /* TCP and Unix-socket listeners */
	bool has_tcp, has_unix;
	int baseline_fds; /* descriptors of the idle server, right after it printed its address */
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *io; /* --io of the server; NULL: the default */
} srv = { .pid = -1, .out = -1, .err = -1 };

/*
 * A test of both I/O modes: NAME_ring and NAME_readiness in the suite, with Test()'s options,
 * running the body that follows with srv.io set.
 */
#define ECHO_TEST(suite, name, ...)                                                       \
	static void suite##_##name##_body(void);                                            \
	Test(suite, name##_ring, ##__VA_ARGS__)                                             \
	{                                                                                   \
		srv.io = "ring";                                                            \
		suite##_##name##_body();                                                    \
	}                                                                                   \
	Test(suite, name##_readiness, ##__VA_ARGS__)                                        \
	{                                                                                   \
		srv.io = "readiness";                                                       \
		suite##_##name##_body();                                                    \
	}                                                                                   \
	static void suite##_##name##_body(void)

static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- the server process ---- */

/* .fini: the server's group SIGKILLed and reaped, its pipes closed, its socket file gone. */
static inline void server_kill(void)
{
	if (srv.pid > 0) {
		group_kill(srv.pid);
		srv.pid = -1;
	}
	if (srv.out >= 0)
		close(srv.out);
	if (srv.err >= 0)
		close(srv.err);
	srv.out = srv.err = -1;
	if (srv.unix_path[0])
		unlink(srv.unix_path);
}

/* .init: descriptors, SIGPIPE, the subreaper. */
static inline void suite_init(void)
{
	/* A thousand clients and their thousand server ends (the hard limit is 20000 here). */
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	group_reaper();
}

/* Read what the server printed into srv.text until needle shows up or seconds pass. */
static inline bool server_wait_output(const char *needle, double seconds)
{
	return wait_output(srv.out, srv.text, sizeof(srv.text), &srv.text_len, 0, needle, seconds);
}

/* After the server exited: the rest of its output, up to EOF. */
static inline void server_read_rest(void)
{
	ssize_t n;

	while (srv.text_len + 1 < sizeof(srv.text) &&
	       (n = read(srv.out, srv.text + srv.text_len,
			 sizeof(srv.text) - 1 - srv.text_len)) > 0) {
		srv.text_len += (size_t)n;
		srv.text[srv.text_len] = '\0';
	}
}

/* Fork and exec the server with args (NULL-terminated, without argv[0]). nofile > 0 sets its
 * descriptor limits, soft and hard. Returns the pid; stdout (and stderr if asked) go to pipes. */
static inline pid_t server_spawn(const char *const *args, rlim_t nofile, bool capture_err)
{
	const char *argv[MAX_ARGS + 4] = { tool_binary("echo") };
	pid_t parent = getpid(), pid;
	int out[2], err[2] = { -1, -1 };
	size_t i, argc = 1;

	if (srv.io) {
		argv[argc++] = "--io";
		argv[argc++] = srv.io;
	}
	for (i = 0; args[i]; i++) {
		cr_assert_lt(i, MAX_ARGS);
		argv[argc++] = args[i];
	}
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	if (capture_err)
		cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;

		/* Die with the test, whatever kills it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		group_lead(0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (nofile) {
			struct rlimit rl = { nofile, nofile };

			setrlimit(RLIMIT_NOFILE, &rl);
		}
		dup2(out[1], STDOUT_FILENO);
		if (capture_err)
			dup2(err[1], STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	group_lead(pid);
	close(out[1]);
	srv.out = out[0];
	if (capture_err) {
		close(err[1]);
		srv.err = err[0];
	}
	srv.pid = pid;
	srv.text_len = 0;
	srv.text[0] = '\0';
	return pid;
}

/* Parse "listening on tcp HOST:PORT" / "listening on unix PATH" from what the server printed. */
static inline void server_parse_addresses(void)
{
	const char *line;

	line = strstr(srv.text, "listening on tcp ");
	if (line) {
		char host[INET6_ADDRSTRLEN + 2];
		unsigned port;

		line += strlen("listening on tcp ");
		memset(&srv.tcp, 0, sizeof(srv.tcp));
		if (line[0] == '[') {
			cr_assert_eq(sscanf(line, "[%45[^]]]:%u", host, &port), 2, "%s", line);
			srv.tcp.addr.in6.sin6_family = AF_INET6;
			srv.tcp.addr.in6.sin6_port = htons((uint16_t)port);
			cr_assert_eq(inet_pton(AF_INET6, host, &srv.tcp.addr.in6.sin6_addr), 1);
			srv.tcp.len = sizeof(srv.tcp.addr.in6);
		} else {
			cr_assert_eq(sscanf(line, "%45[^:]:%u", host, &port), 2, "%s", line);
			srv.tcp.addr.in.sin_family = AF_INET;
			srv.tcp.addr.in.sin_port = htons((uint16_t)port);
			cr_assert_eq(inet_pton(AF_INET, host, &srv.tcp.addr.in.sin_addr), 1);
			srv.tcp.len = sizeof(srv.tcp.addr.in);
		}
		cr_assert_neq(port, 0, "the server printed port 0, not the port it bound");
		srv.has_tcp = true;
	}
	if (strstr(srv.text, "listening on unix ")) {
		memset(&srv.local, 0, sizeof(srv.local));
		srv.local.addr.un.sun_family = AF_UNIX;
		strcpy(srv.local.addr.un.sun_path, srv.unix_path);
		srv.local.len = sizeof(srv.local.addr.un);
		srv.has_unix = true;
	}
}

static inline int connect_to(const struct endpoint *ep, bool nonblock)
{
	int fd = socket(ep->addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(connect(fd, &ep->addr.sa, ep->len), 0, "connect: %s", strerror(errno));
	if (nonblock)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Read from fd until EOF, into buf (at most cap bytes); -errno on error or after
 * seconds without EOF. */
static inline ssize_t read_to_eof(int fd, void *buf, size_t cap, double seconds)
{
	double deadline = now_s() + seconds;
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - now_s();
		char sink[4096];
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		n = got < cap ? read(fd, (char *)buf + got, cap - got)
			      : read(fd, sink, sizeof(sink));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return (ssize_t)got;
		got += (size_t)n;
	}
}

/* One short exchange: the server is up, accepting and echoing. */
static inline void round_trip(const struct endpoint *ep)
{
	char buf[16];
	int fd = connect_to(ep, false);
	ssize_t n;

	cr_assert_eq(write(fd, "ping", 4), 4);
	shutdown(fd, SHUT_WR);
	n = read_to_eof(fd, buf, sizeof(buf), BOUND_S);
	cr_assert_eq(n, 4, "round trip: got %zd bytes", n);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	close(fd);
}

/*
 * Start the server with args, wait for its address(es), record the idle descriptor count, and
 * check one round trip on each listener (so every count the tests expect has one connection
 * more per listener).
 */
static inline void server_start(const char *const *args)
{
	bool tcp = false, unix_socket = false;

	for (size_t i = 0; args[i]; i++) {
		tcp |= !strcmp(args[i], "--listen");
		unix_socket |= !strcmp(args[i], "--unix");
	}
	skip_without_io_uring();
	server_spawn(args, 0, false);
	if (tcp || !unix_socket)
		cr_assert(server_wait_output("listening on tcp", START_S),
			  "the server printed no TCP address within %.0f s; it printed: %s",
			  START_S, srv.text);
	if (unix_socket)
		cr_assert(server_wait_output("listening on unix", START_S),
			  "the server printed no Unix address within %.0f s; it printed: %s",
			  START_S, srv.text);
	server_parse_addresses();
	srv.baseline_fds = count_fds(srv.pid);
	cr_assert_gt(srv.baseline_fds, 0);
	if (srv.has_tcp)
		round_trip(&srv.tcp);
	if (srv.has_unix)
		round_trip(&srv.local);
}

/* SIGTERM, then the exit status (-1 if it did not exit within seconds). Reads its output. */
static inline int server_stop(double seconds)
{
	double deadline = now_s() + seconds;
	int status;
	pid_t pid;

	cr_assert_eq(kill(srv.pid, SIGTERM), 0);
	while ((pid = waitpid(srv.pid, &status, WNOHANG)) == 0 && now_s() < deadline)
		usleep(10000);
	if (pid != srv.pid)
		return -1;
	srv.pid = -1;
	server_read_rest();
	return status;
}

static inline void server_stop_ok(void)
{
	int status = server_stop(BOUND_S);

	cr_assert_neq(status, -1, "the server did not exit within %.0f s of SIGTERM", BOUND_S);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the server ended with status %#x after SIGTERM (a sanitizer report?); it "
		  "printed: %s",
		  status, srv.text);
}

/* A Unix socket path of this test process's own, free. */
static inline void make_unix_path(void)
{
	snprintf(srv.unix_path, sizeof(srv.unix_path), "/tmp/urpoll-echo-e2e.%d.sock",
		 (int)getpid());
	unlink(srv.unix_path);
}

/* ---- the client engine: many connections on one epoll ---- */

struct client {
	int fd;
	bool shut_wr, done;
	size_t len, sent, got;
	unsigned char *payload, *echo;
	uint64_t rng;
	int err; /* errno that ended it early */
};

struct client_stats {
	unsigned verified, failed;
	uint64_t bytes;
	char first_failure[160];
};

static inline void client_fail(struct client_stats *cs, struct client *c, unsigned i,
			       const char *what, int err)
{
	if (!cs->failed++)
		snprintf(cs->first_failure, sizeof(cs->first_failure),
			 "client %u: %s (%s), sent %zu of %zu, got %zu", i, what,
			 err ? strerror(err) : "-", c->sent, c->len, c->got);
	c->done = true;
	c->err = err ? err : EPROTO;
	close(c->fd);
}

/* How the clients of run_clients() behave. */
struct client_plan {
	size_t min_len, max_len; /* payload size range */
	size_t piece_max;	 /* largest single send */
	size_t read_chunk;	 /* 0: read all there is; else one recv of at most this per wake */
	unsigned pace_us;	 /* pause between two rounds of events (a slow client) */
};

static const struct client_plan quick_clients = {
	.min_len = 1024, .max_len = 8 * 1024, .piece_max = 1500
};

/* Read what is there (or one chunk); on EOF check the echo byte for byte. */
static inline void client_read(struct client_stats *cs, struct client *c, unsigned i, size_t chunk)
{
	for (;;) {
		size_t want = chunk && chunk < c->len - c->got ? chunk : c->len - c->got;
		unsigned char sink[1];
		ssize_t n = c->got < c->len ? recv(c->fd, c->echo + c->got, want, 0)
					    : recv(c->fd, sink, sizeof(sink), 0);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				client_fail(cs, c, i, "recv", errno);
			return;
		}
		if (n == 0) {
			if (!c->shut_wr || c->got != c->len) {
				client_fail(cs, c, i, "EOF before the whole echo", 0);
				return;
			}
			if (memcmp(c->echo, c->payload, c->len)) {
				client_fail(cs, c, i, "echo differs from what was sent", 0);
				return;
			}
			cs->verified++;
			cs->bytes += c->len;
			c->done = true;
			close(c->fd);
			return;
		}
		if (c->got >= c->len) {
			client_fail(cs, c, i, "more bytes back than sent", 0);
			return;
		}
		c->got += (size_t)n;
		if (chunk)
			return;
	}
}

/*
 * n concurrent connections to ep, all opened first. Each sends a distinct pseudo-random payload
 * (of plan->min_len to plan->max_len bytes) in pieces of 1 to plan->piece_max bytes, reading
 * meanwhile, half-closes, reads until EOF, and must get its payload back byte for byte. Returns
 * when all are done or BOUND_S passes.
 */
static inline struct client_stats run_clients(const struct endpoint *ep, unsigned n, uint64_t seed,
					      const struct client_plan *plan)
{
	struct client_stats cs = { 0 };
	struct client *clients = calloc(n, sizeof(*clients));
	struct epoll_event events[256];
	double deadline = now_s() + BOUND_S;
	unsigned left = n;
	int ep_fd = epoll_create1(EPOLL_CLOEXEC);

	cr_assert_not_null(clients);
	cr_assert_geq(ep_fd, 0);
	for (unsigned i = 0; i < n; i++) {
		struct client *c = &clients[i];
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
					  .data.u32 = i };

		c->rng = seed * 1000003u + i;
		c->len = plan->min_len + splitmix64(&c->rng) % (plan->max_len - plan->min_len + 1);
		c->payload = malloc(c->len);
		c->echo = malloc(c->len);
		cr_assert(c->payload && c->echo);
		for (size_t b = 0; b < c->len; b += 8) {
			uint64_t r = splitmix64(&c->rng);

			memcpy(c->payload + b, &r, c->len - b < 8 ? c->len - b : 8);
		}
		c->fd = socket(ep->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       0);
		cr_assert_geq(c->fd, 0, "socket %u: %s", i, strerror(errno));
		/* TCP: EINPROGRESS, the handshake completes in the background. Unix: at once, or
		 * EAGAIN with a full backlog, which the server's SOMAXCONN keeps far away. */
		if (connect(c->fd, &ep->addr.sa, ep->len) < 0)
			cr_assert_eq(errno, EINPROGRESS, "connect %u: %s", i, strerror(errno));
		cr_assert_eq(epoll_ctl(ep_fd, EPOLL_CTL_ADD, c->fd, &ev), 0);
	}
	while (left && now_s() < deadline) {
		int ready = epoll_wait(ep_fd, events, 256, 100);

		for (int k = 0; k < ready; k++) {
			unsigned i = events[k].data.u32;
			struct client *c = &clients[i];

			if (c->done)
				continue;
			if ((events[k].events & EPOLLOUT) && !c->shut_wr) {
				size_t piece = 1 + splitmix64(&c->rng) % plan->piece_max;
				ssize_t sent;

				if (piece > c->len - c->sent)
					piece = c->len - c->sent;
				sent = send(c->fd, c->payload + c->sent, piece, MSG_NOSIGNAL);
				if (sent < 0 && errno != EAGAIN && errno != EINTR) {
					client_fail(&cs, c, i, "send", errno);
				} else if (sent > 0 && (c->sent += (size_t)sent) == c->len) {
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
								  .data.u32 = i };

					shutdown(c->fd, SHUT_WR);
					c->shut_wr = true;
					epoll_ctl(ep_fd, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (!c->done &&
			    (events[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				client_read(&cs, c, i, plan->read_chunk);
			if (c->done)
				left--;
		}
		if (plan->pace_us)
			usleep(plan->pace_us);
	}
	for (unsigned i = 0; i < n; i++) {
		if (!clients[i].done) {
			client_fail(&cs, &clients[i], i, "unfinished", ETIMEDOUT);
		}
		free(clients[i].payload);
		free(clients[i].echo);
	}
	close(ep_fd);
	free(clients);
	return cs;
}

static inline void expect_all_echoed_as(const struct endpoint *ep, unsigned n, uint64_t seed,
					const struct client_plan *plan)
{
	double t0 = now_s();
	struct client_stats cs = run_clients(ep, n, seed, plan);

	cr_assert_eq(cs.verified, n, "%u of %u connections echoed byte for byte; first failure: %s",
		     cs.verified, n, cs.first_failure);
	cr_log_info("%u connections, %llu bytes each way, %.3f s", n, (unsigned long long)cs.bytes,
		    now_s() - t0);
}

static inline void expect_all_echoed(const struct endpoint *ep, unsigned n, uint64_t seed)
{
	expect_all_echoed_as(ep, n, seed, &quick_clients);
}

/* "N connections, B bytes" from the summary line (and the shed count after "thread(s), "). */
static inline void summary_counts(unsigned long long *conns, unsigned long long *bytes,
				  unsigned long long *shed)
{
	const char *line = strstr(srv.text, " connections, ");

	cr_assert_not_null(line, "no summary line in: %s", srv.text);
	while (line > srv.text && line[-1] != '\n')
		line--;
	cr_assert_eq(sscanf(line, "urpoll-echo: %llu connections, %llu bytes", conns, bytes), 2,
		     "summary: %s", line);
	line = strstr(line, " thread");
	line = line ? strchr(line, ',') : NULL;
	cr_assert_not_null(line, "summary: %s", srv.text);
	cr_assert_eq(sscanf(line, ", %llu shed", shed), 1, "summary: %s", line);
}

/* Wait until the server holds its idle descriptors again; returns the count seen last. */
static inline int wait_fds_back(double seconds)
{
	double deadline = now_s() + seconds;
	int n;

	while ((n = count_fds(srv.pid)) != srv.baseline_fds && now_s() < deadline)
		usleep(10000);
	return n;
}

#endif /* URP_TESTS_ECHO_UTIL_H */
