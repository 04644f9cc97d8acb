/* SPDX-License-Identifier: MIT */
/*
 * echo_e2e: urpoll-echo (tools/servers/echo/) end to end, run as a user runs it. Each test starts the server
 * binary built beside this test (BUILD/tests/echo_e2e -> BUILD/tools/urpoll-echo) on port 0,
 * reads the address it printed, checks one round trip, then drives real clients: a thousand
 * concurrent TCP connections checked byte for byte (the client side is one epoll loop, not a
 * thousand threads), Unix sockets, two threads, back-pressure, slow readers, SIGTERM,
 * descriptor leaks, --max-conns, EMFILE, IPv6 and start-up errors. The server leads a process
 * group of its own, SIGKILLed (and every member reaped) in .fini whatever happened, and dies with
 * the test process (PR_SET_PDEATHSIG) should that crash.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#include "e2e_util.h"

/* Generous bounds, reached only when something is broken (or a sanitizer is very slow). */
#define BOUND_S	     20.0
#define START_S	     10.0
#define MAX_ARGS     16
#define OUT_SIZE     8192
#define ONE_MIB	     (1u << 20)
/* A send that makes no progress for this long has stalled. */
#define FLOOD_IDLE_MS 300

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
} srv = { .pid = -1, .out = -1, .err = -1 };

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The byte stream of the back-pressure test: byte i is a function of i alone. */
static unsigned char stream_byte(uint64_t i)
{
	uint64_t s = i >> 3;

	return (unsigned char)(splitmix64(&s) >> ((i & 7) * 8));
}

/* ---- the server process ---- */

static void server_kill(void)
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

static void suite_init(void)
{
	/* A thousand clients and their thousand server ends (the hard limit is 20000 here). */
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	group_reaper();
}

TestSuite(echo_e2e, .init = suite_init, .fini = server_kill, .timeout = 60);

static const char *server_binary(void)
{
	static char path[PATH_MAX + 32];
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert_gt(n, 0, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	slash = strrchr(self, '/');
	cr_assert_not_null(slash);
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../tools/urpoll-echo", self);
	cr_assert_eq(access(path, X_OK), 0,
		     "%s: %s (build the tools of this build first: make tools)", path,
		     strerror(errno));
	return path;
}

/* Read what the server printed into srv.text until needle shows up or seconds pass. */
static bool server_wait_output(const char *needle, double seconds)
{
	return wait_output(srv.out, srv.text, sizeof(srv.text), &srv.text_len, 0, needle, seconds);
}

/* After the server exited: the rest of its output, up to EOF. */
static void server_read_rest(void)
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
static pid_t server_spawn(const char *const *args, rlim_t nofile, bool capture_err)
{
	const char *argv[MAX_ARGS + 2] = { server_binary() };
	pid_t parent = getpid(), pid;
	int out[2], err[2] = { -1, -1 };
	size_t i;

	for (i = 0; args[i]; i++) {
		cr_assert_lt(i, MAX_ARGS);
		argv[i + 1] = args[i];
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
static void server_parse_addresses(void)
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

static int connect_to(const struct endpoint *ep, bool nonblock)
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
static ssize_t read_to_eof(int fd, void *buf, size_t cap, double seconds)
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
static void round_trip(const struct endpoint *ep)
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
static void server_start(const char *const *args)
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
static int server_stop(double seconds)
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

static void server_stop_ok(void)
{
	int status = server_stop(BOUND_S);

	cr_assert_neq(status, -1, "the server did not exit within %.0f s of SIGTERM", BOUND_S);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the server ended with status %#x after SIGTERM (a sanitizer report?); it "
		  "printed: %s",
		  status, srv.text);
}

static void make_unix_path(void)
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

static void client_fail(struct client_stats *cs, struct client *c, unsigned i, const char *what,
			int err)
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
static void client_read(struct client_stats *cs, struct client *c, unsigned i, size_t chunk)
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
static struct client_stats run_clients(const struct endpoint *ep, unsigned n, uint64_t seed,
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

static void expect_all_echoed_as(const struct endpoint *ep, unsigned n, uint64_t seed,
				 const struct client_plan *plan)
{
	double t0 = now_s();
	struct client_stats cs = run_clients(ep, n, seed, plan);

	cr_assert_eq(cs.verified, n, "%u of %u connections echoed byte for byte; first failure: %s",
		     cs.verified, n, cs.first_failure);
	cr_log_info("%u connections, %llu bytes each way, %.3f s", n, (unsigned long long)cs.bytes,
		    now_s() - t0);
}

static void expect_all_echoed(const struct endpoint *ep, unsigned n, uint64_t seed)
{
	expect_all_echoed_as(ep, n, seed, &quick_clients);
}

/* "N connections, B bytes" from the summary line (and the shed count after "thread(s), "). */
static void summary_counts(unsigned long long *conns, unsigned long long *bytes,
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
static int wait_fds_back(double seconds)
{
	double deadline = now_s() + seconds;
	int n;

	while ((n = count_fds(srv.pid)) != srv.baseline_fds && now_s() < deadline)
		usleep(10000);
	return n;
}

/* ---- tests ---- */

Test(echo_e2e, thousand_tcp_connections_echo_byte_for_byte, .timeout = 60)
{
	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	expect_all_echoed(&srv.tcp, 1000, 1);
	cr_assert_eq(wait_fds_back(BOUND_S), srv.baseline_fds,
		     "server descriptors after 1000 closed connections: %d, idle: %d",
		     count_fds(srv.pid), srv.baseline_fds);
	server_stop_ok();
}

Test(echo_e2e, hundred_unix_connections_echo_byte_for_byte, .timeout = 60)
{
	make_unix_path();
	server_start((const char *const[]){ "--unix", srv.unix_path, NULL });
	cr_assert(!srv.has_tcp, "--unix alone must not listen on TCP: %s", srv.text);
	expect_all_echoed(&srv.local, 100, 2);
	server_stop_ok();
	cr_assert_neq(access(srv.unix_path, F_OK), 0, "the socket file outlived the server");
}

/* Loop threads other than the main one: named "urpoll-echo/N" (sanitizers add threads). */
static int count_loop_threads(pid_t pid)
{
	char path[320], comm[32];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while ((de = readdir(dir))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "urpoll-echo/", 12))
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

/* Two loops: one SO_REUSEPORT listener each on the TCP port, one Unix socket shared by both. */
Test(echo_e2e, two_threads_serve_tcp_and_unix, .timeout = 60)
{
	int loops;

	make_unix_path();
	server_start((const char *const[]){ "--listen", "127.0.0.1:0", "--unix", srv.unix_path,
					    "--threads", "2", NULL });
	cr_assert(srv.has_tcp && srv.has_unix, "%s", srv.text);
	loops = count_loop_threads(srv.pid);
	cr_assert_eq(loops, 1, "--threads 2 runs %d loop threads besides the main one", loops);
	expect_all_echoed(&srv.tcp, 600, 3);
	expect_all_echoed(&srv.local, 200, 4);
	cr_assert_eq(wait_fds_back(BOUND_S), srv.baseline_fds);
	server_stop_ok();
}

/* The last field of a sysctl file such as /proc/sys/net/ipv4/tcp_rmem ("min default max"). */
static uint64_t sysctl_last(const char *path, uint64_t fallback)
{
	unsigned long long a, b, c;
	FILE *f = fopen(path, "r");
	int n = f ? fscanf(f, "%llu %llu %llu", &a, &b, &c) : 0;

	if (f)
		fclose(f);
	return n == 3 ? c : fallback;
}

static void fill_stream(unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = stream_byte(off + i);
}

/*
 * A client sends without reading until its sends stall (at least 1 MiB... or less when the
 * buffers fill first), waits, then reads while it sends the rest of at least 1 MiB, half-closes
 * and must get every byte back in order. While it does not read, the server must have stopped
 * reading too (its receive queue holds data): it buffers 16 KiB per connection, not the flood.
 */
Test(echo_e2e, unread_flood_is_held_back_and_echoed_in_full, .timeout = 60)
{
	static unsigned char out[65536], in[65536], want[65536];
	union sockaddr_any me;
	socklen_t me_len = sizeof(me);
	uint64_t sent = 0, got = 0, target, cap;
	int fd, small = 65536;
	bool stalled = false, eof = false;
	long rxq;

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	/* Fixed, small client buffers: the stall comes from the server, not from autotuning. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	cr_assert_eq(connect(fd, &srv.tcp.addr.sa, srv.tcp.len), 0, "%s", strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	cr_assert_eq(getsockname(fd, &me.sa, &me_len), 0);

	/* Phase one pushes at most cap before it must have stalled: the server's socket buffers
	 * (its receive buffer and its send buffer, autotuned up to these sysctls), ours (64 KiB
	 * each) and its 16 KiB fill long before; a server that read without bound would take it
	 * all. */
	cap = sysctl_last("/proc/sys/net/ipv4/tcp_rmem", 32u << 20) +
	      sysctl_last("/proc/sys/net/ipv4/tcp_wmem", 32u << 20) + (8u << 20);
	while (sent < cap) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		fill_stream(out, sent, sizeof(out));
		n = send(fd, out, sizeof(out), MSG_NOSIGNAL);
		if (n > 0) {
			sent += (uint64_t)n;
			continue;
		}
		cr_assert(n < 0 && errno == EAGAIN, "send: %s", strerror(errno));
		if (poll(&p, 1, FLOOD_IDLE_MS) == 0) {
			stalled = true;
			break;
		}
	}
	cr_assert(stalled, "%llu bytes went in without a stall: the server reads without bound",
		  (unsigned long long)sent);
	rxq = tcp_rx_queue(ntohs(srv.tcp.addr.in.sin_port), ntohs(me.in.sin_port));
	cr_assert_gt(rxq, 0, "stalled after %llu bytes but the server's receive queue holds %ld",
		     (unsigned long long)sent, rxq);
	cr_log_info("stalled after %llu bytes, %ld of them in the server's receive queue",
		    (unsigned long long)sent, rxq);

	target = sent > ONE_MIB ? sent : ONE_MIB;
	if (sent == target)
		shutdown(fd, SHUT_WR);
	{
		double deadline = now_s() + BOUND_S;

		while (!eof && now_s() < deadline) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t n;

			if (sent < target)
				p.events |= POLLOUT;
			if (poll(&p, 1, 100) <= 0)
				continue;
			if (sent < target && (p.revents & POLLOUT)) {
				size_t len = target - sent < sizeof(out) ? (size_t)(target - sent)
									 : sizeof(out);

				fill_stream(out, sent, len);
				n = send(fd, out, len, MSG_NOSIGNAL);
				if (n > 0 && (sent += (uint64_t)n) == target)
					shutdown(fd, SHUT_WR);
				cr_assert(n > 0 || errno == EAGAIN, "send: %s", strerror(errno));
			}
			n = recv(fd, in, sizeof(in), 0);
			if (n == 0) {
				eof = true;
			} else if (n > 0) {
				fill_stream(want, got, (size_t)n);
				cr_assert_eq(memcmp(in, want, (size_t)n), 0,
					     "echo differs within bytes %llu..%llu",
					     (unsigned long long)got,
					     (unsigned long long)got + (unsigned long long)n);
				got += (uint64_t)n;
				/* A slow reader: the server's writes keep blocking, so it reads our
				 * FIN while it still holds bytes to write back, and must write them
				 * before its own FIN. */
				usleep(500);
			} else {
				cr_assert_eq(errno, EAGAIN, "recv: %s", strerror(errno));
			}
		}
	}
	cr_assert(eof, "no EOF: %llu of %llu bytes back", (unsigned long long)got,
		  (unsigned long long)target);
	cr_assert_eq(got, target, "%llu of %llu bytes came back", (unsigned long long)got,
		     (unsigned long long)target);
	close(fd);
	server_stop_ok();
}

/*
 * Slow readers of large payloads: the server's writes keep blocking, so it often reads a
 * client's FIN while it still holds bytes to write back; it must write them all, then its own
 * FIN. Over Unix sockets (fixed buffers, no window: small, quick bursts) and TCP.
 */
Test(echo_e2e, slow_readers_get_everything_after_their_half_close, .timeout = 60)
{
	static const struct client_plan slow = {
		.min_len = 256 * 1024,
		.max_len = 512 * 1024,
		.piece_max = 64 * 1024,
		.read_chunk = 4096,
		.pace_us = 1000,
	};

	make_unix_path();
	server_start((const char *const[]){ "--listen", "127.0.0.1:0", "--unix", srv.unix_path,
					    NULL });
	expect_all_echoed_as(&srv.local, 100, 9, &slow);
	expect_all_echoed_as(&srv.tcp, 20, 10, &slow);
	server_stop_ok();
}

Test(echo_e2e, sigterm_exits_0_with_a_summary, .timeout = 60)
{
	unsigned long long conns, bytes, shed;
	struct client_stats cs;

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	cs = run_clients(&srv.tcp, 50, 5, &quick_clients);
	cr_assert_eq(cs.verified, 50, "first failure: %s", cs.first_failure);
	server_stop_ok();
	summary_counts(&conns, &bytes, &shed);
	cr_assert_eq(shed, 0, "summary: %s", srv.text);
	/* The round trip of server_start() is one more connection, 4 more bytes. */
	cr_assert_eq(conns, 51, "summary: %s", srv.text);
	cr_assert_eq(bytes, cs.bytes + 4, "summary: %s", srv.text);
	cr_assert(strstr(srv.text, " events, ") && strstr(srv.text, " stale rejections, ") &&
			  strstr(srv.text, " wake batches"),
		  "summary: %s", srv.text);
}

/*
 * Every way a connection can end gives its descriptor back: half-close, full close without
 * reading, reset with data unread on either side, connect-and-go.
 */
Test(echo_e2e, descriptors_return_to_idle_after_every_kind_of_close, .timeout = 60)
{
	static char junk[256 * 1024];
	int fds[300];
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	int n;

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	for (int i = 0; i < 300; i++) {
		fds[i] = connect_to(&srv.tcp, true);
		if (i % 3 != 2)
			send(fds[i], junk, i % 3 ? sizeof(junk) : 100, MSG_NOSIGNAL);
	}
	/* Let the server take them all, then go: RST (with unread echo), close, close. */
	usleep(200000);
	for (int i = 0; i < 300; i++) {
		if (i % 3 == 1)
			setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(fds[i]);
	}
	expect_all_echoed(&srv.tcp, 200, 6);
	n = wait_fds_back(BOUND_S);
	cr_assert_eq(n, srv.baseline_fds, "server descriptors: %d, idle: %d", n,
		     srv.baseline_fds);
	server_stop_ok();
}

/*
 * Beyond --max-conns, clients wait in the backlog until a connection closes. Two loops: the
 * count is the process's, and a close on one loop resumes a listener paused on the other.
 */
Test(echo_e2e, max_conns_holds_the_rest_in_the_backlog, .timeout = 60)
{
	int held[3], waiting[3], most = 0;
	char buf[8];

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", "--max-conns", "3",
					    "--threads", "2", NULL });
	for (int i = 0; i < 3; i++) {
		held[i] = connect_to(&srv.tcp, false);
		cr_assert_eq(write(held[i], "h", 1), 1);
		struct pollfd p = { .fd = held[i], .events = POLLIN };

		cr_assert(poll(&p, 1, (int)(BOUND_S * 1000)) == 1 && read(held[i], buf, 1) == 1,
			  "held connection %d not served", i);
	}
	for (int i = 0; i < 3; i++) {
		waiting[i] = connect_to(&srv.tcp, false);
		cr_assert_eq(write(waiting[i], "w", 1), 1);
		shutdown(waiting[i], SHUT_WR);
	}
	/* Settle: none of them may be served while three are open. */
	for (int i = 0; i < 3; i++) {
		struct pollfd p = { .fd = waiting[i], .events = POLLIN };

		cr_assert_eq(poll(&p, 1, i ? 50 : 300), 0,
			     "connection %d served beyond --max-conns 3", i);
	}
	most = count_fds(srv.pid);
	cr_assert_eq(most, srv.baseline_fds + 3, "server descriptors: %d, idle %d + 3", most,
		     srv.baseline_fds);
	for (int i = 0; i < 3; i++)
		close(held[i]);
	for (int i = 0; i < 3; i++) {
		ssize_t n = read_to_eof(waiting[i], buf, sizeof(buf), BOUND_S);

		cr_assert_eq(n, 1, "waiting connection %d: %zd", i, n);
		cr_assert_eq(buf[0], 'w');
		close(waiting[i]);
	}
	server_stop_ok();
}

/*
 * Out of descriptors (EMFILE, a 32-descriptor limit): the server sheds what it cannot take
 * (those clients see the connection closed at once), serves what it holds, does not spin, and
 * serves new clients once descriptors are free again.
 */
Test(echo_e2e, emfile_sheds_without_spinning_and_recovers, .timeout = 60)
{
	enum { N = 40 };
	int fds[N], served = 0, shed = 0;
	unsigned long long conns, bytes, shed_counted;
	long ticks_before, ticks_after;
	char stat[1024], path[64];
	FILE *f;

	skip_without_io_uring();
	server_spawn((const char *const[]){ "--listen", "127.0.0.1:0", NULL }, 32, false);
	cr_assert(server_wait_output("listening on tcp", START_S), "%s", srv.text);
	server_parse_addresses();
	srv.baseline_fds = count_fds(srv.pid);
	for (int i = 0; i < N; i++)
		fds[i] = connect_to(&srv.tcp, false);
	usleep(300000);

	/* CPU time (utime + stime, in ticks) over a quiet half second: a spinning accept loop
	 * would burn all of it. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)srv.pid);
#define READ_TICKS(out)                                                                            \
	do {                                                                                       \
		unsigned long ut, st;                                                              \
		f = fopen(path, "r");                                                              \
		cr_assert_not_null(f);                                                             \
		cr_assert_not_null(fgets(stat, sizeof(stat), f));                                  \
		fclose(f);                                                                         \
		cr_assert_eq(sscanf(strrchr(stat, ')') + 2,                                        \
				    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,    \
				    &st),                                                          \
			     2);                                                                   \
		out = (long)(ut + st);                                                             \
	} while (0)
	READ_TICKS(ticks_before);
	usleep(500000);
	READ_TICKS(ticks_after);
	cr_assert_lt(ticks_after - ticks_before, sysconf(_SC_CLK_TCK) / 4,
		     "the server used %ld ticks of CPU in 0.5 s while out of descriptors",
		     ticks_after - ticks_before);

	for (int i = 0; i < N; i++) {
		char buf[8];
		ssize_t n;

		send(fds[i], "e", 1, MSG_NOSIGNAL);
		shutdown(fds[i], SHUT_WR);
		n = read_to_eof(fds[i], buf, sizeof(buf), BOUND_S);
		if (n == 1 && buf[0] == 'e')
			served++;
		else if (n == 0 || n == -ECONNRESET)
			shed++;
		else
			cr_assert_fail("connection %d: %zd", i, n);
		close(fds[i]);
	}
	cr_log_info("%d served, %d shed", served, shed);
	cr_assert_gt(served, 0);
	cr_assert_gt(shed, 0, "all %d connections served under a 32-descriptor limit?", N);
	cr_assert_eq(wait_fds_back(BOUND_S), srv.baseline_fds);
	expect_all_echoed(&srv.tcp, 10, 7);
	server_stop_ok();
	summary_counts(&conns, &bytes, &shed_counted);
	cr_assert_geq(conns, (unsigned long long)served + 10, "%s", srv.text);
	cr_assert_geq(shed_counted, (unsigned long long)shed, "%s", srv.text);
}

Test(echo_e2e, ipv6_loopback, .timeout = 60)
{
	struct sockaddr_in6 probe = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&probe, sizeof(probe)) < 0)
		cr_skip_test("no IPv6 loopback here: %s", strerror(errno));
	close(fd);
	server_start((const char *const[]){ "--listen", "[::1]:0", NULL });
	cr_assert(strstr(srv.text, "listening on tcp [::1]:"), "%s", srv.text);
	expect_all_echoed(&srv.tcp, 100, 8);
	server_stop_ok();
}

/* Start-up errors: one line on stderr, a non-zero status, nothing left running. */
static void expect_startup_error(const char *const *args, int want_status, const char *want)
{
	char err[1024];
	ssize_t n = 0, r;
	int status;

	server_spawn(args, 0, true);
	cr_assert_eq(waitpid(srv.pid, &status, 0), srv.pid);
	srv.pid = -1;
	while (n < (ssize_t)sizeof(err) - 1 &&
	       (r = read(srv.err, err + n, sizeof(err) - 1 - (size_t)n)) > 0)
		n += r;
	err[n < 0 ? 0 : n] = '\0';
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == want_status,
		  "status %#x, want exit %d; stderr: %s", status, want_status, err);
	cr_assert(strstr(err, want), "stderr lacks \"%s\": %s", want, err);
	cr_assert(n > 0 && err[n - 1] == '\n' && !memchr(err, '\n', (size_t)n - 1),
		  "want exactly one line on stderr: %s", err);
	close(srv.out);
	close(srv.err);
	srv.out = srv.err = -1;
}

Test(echo_e2e, startup_errors_are_one_line_and_nonzero, .timeout = 60)
{
	union sockaddr_any a = { .in.sin_family = AF_INET };
	socklen_t len = sizeof(a.in);
	char spec[64];
	int fd;

	expect_startup_error((const char *const[]){ "--listen", "localhost", NULL }, 2,
			     "bad address");
	expect_startup_error((const char *const[]){ "--listen", "127.0.0.1:99999", NULL }, 2,
			     "bad address");
	expect_startup_error((const char *const[]){ "--threads", "0", NULL }, 2, "--threads");
	expect_startup_error((const char *const[]){ "--bogus", NULL }, 2, "unknown option");

	/* A port someone else listens on, with one loop and with SO_REUSEPORT loops. */
	a.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(fd, &a.sa, len), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, &a.sa, &len), 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(a.in.sin_port));
	expect_startup_error((const char *const[]){ "--listen", spec, NULL }, 1, "in use");
	expect_startup_error((const char *const[]){ "--listen", spec, "--threads", "3", NULL }, 1,
			     "in use");
	close(fd);
}
