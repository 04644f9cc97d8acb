// SPDX-License-Identifier: MIT
/*
 * proxy_limits: urpoll-proxy's connections, limits and descriptors, end to end (the fixture:
 * tests/lib/proxy_util.h). Five thousand idle connections and traffic, then every descriptor
 * released; at the descriptor limit, clients shed with a FIN and one warning; --max-conns
 * refusing the next client without harming the others; a backend that dies closing only its
 * own clients.
 */
#include "proxy_util.h"

#define IDLE_CONNS 5000

TestSuite(proxy_limits, .init = suite_init, .fini = cleanup, .timeout = 120);

/* Wait until the proxy holds want descriptors again; returns the last count seen. */
static int wait_fds(int want, double seconds)
{
	double deadline = now_s() + seconds;
	int n;

	while ((n = count_fds(t.proxy->pid)) != want && now_s() < deadline)
		sleep_ms(50);
	return n;
}

PROXY_TEST(proxy_limits, five_thousand_idle_connections_and_traffic_then_every_fd_is_released)
{
	static int fds[IDLE_CONNS];
	char out[OUT_SIZE];
	unsigned redis;
	int idle_fds;

	skip_without_io_uring();
	need_program("redis-benchmark");
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	idle_fds = count_fds(t.proxy->pid);
	cr_assert_gt(idle_fds, 0, "the proxy is gone");
	for (unsigned i = 0; i < IDLE_CONNS; i++) {
		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0, "connection %u: %s", i, strerror(-fds[i]));
	}
	cr_assert_eq(run(out, sizeof(out),
			 "redis-benchmark -h 127.0.0.1 -p %u -t ping,get -n 20000 -c 50 --csv 2>&1",
			 t.proxy_port),
		     0, "%s", out);
	cr_assert_null(strstr(out, "rror"), "%s", out);
	for (unsigned i = 0; i < IDLE_CONNS; i++)
		cr_assert(ping(fds[i]), "idle connection %u lost", i);
	/* redis-benchmark's own connections may still be closing. */
	cr_assert_eq(proxy_wait_counter("open", IDLE_CONNS, 10), (unsigned long long)IDLE_CONNS);
	for (unsigned i = 0; i < IDLE_CONNS; i++)
		close(fds[i]);
	cr_assert_eq(wait_fds(idle_fds, 20.0), idle_fds, "descriptors not released");
	cr_assert_eq(proxy_counter("open"), 0ull);
}

/* How many descriptors pid holds open below number limit. */
static int fds_below(pid_t pid, int limit)
{
	int n = count_fds_below(pid, limit);

	cr_assert_geq(n, 0, "pid %d is gone", (int)pid);
	return n;
}

/* How a connection ends from the client's side: 0 (EOF), -errno, -ETIMEDOUT (no end), or 1
 * (a byte came instead). */
static int read_end(int fd, double seconds)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char byte;
	ssize_t n;

	if (poll(&p, 1, (int)(seconds * 1000)) <= 0)
		return -ETIMEDOUT;
	n = recv(fd, &byte, 1, MSG_DONTWAIT);
	return n < 0 ? -errno : (int)n;
}

/* The counter name in the proxy's output after offset from (its last lines), or -1. */
static long long output_counter(size_t from, const char *name)
{
	char key[64], *at;

	snprintf(key, sizeof(key), " %s ", name);
	at = strstr(t.proxy->text + from, key);
	return at ? strtoll(at + strlen(key), NULL, 10) : -1;
}

/*
 * Out of descriptors for the backend socket (EMFILE from socket()), the proxy used to close the
 * client with a reset and count a connect error, silently. Now: a FIN, counted as shed, one
 * warning that names the limit, and clients served again once descriptors are free. The limit
 * is set on the running proxy (prlimit) to its idle descriptors + 2 per held client + 1, so
 * that each further client is accepted into the last slot and finds none for its backend.
 */
PROXY_TEST(proxy_limits, at_the_fd_limit_clients_are_shed_with_a_fin_and_one_warning)
{
	enum { HELD = 4, SHED = 5 };
	const char *warning = "out of descriptors creating a backend socket";
	int held[HELD], idle_fds, limit, next, fd, end;
	char expect[128], *at;
	struct rlimit rl;
	unsigned redis;
	size_t exit_line;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	idle_fds = count_fds(t.proxy->pid);
	cr_assert_gt(idle_fds, 0, "the proxy is gone");
	/* The limit with exactly 2 * HELD + 1 free numbers below it (there may be holes, and
	 * inherited descriptors above it): the fixed point, from above, of this. */
	limit = idle_fds + 2 * HELD + 1;
	while ((next = fds_below(t.proxy->pid, limit) + 2 * HELD + 1) != limit)
		limit = next;
	rl.rlim_cur = rl.rlim_max = (rlim_t)limit;
	cr_assert_eq(prlimit(t.proxy->pid, RLIMIT_NOFILE, &rl, NULL), 0, "prlimit: %s",
		     strerror(errno));
	for (unsigned i = 0; i < HELD; i++) {
		held[i] = connect_port(t.proxy_port);
		cr_assert_geq(held[i], 0);
		cr_assert(ping(held[i]), "held client %u not served", i);
	}
	cr_assert_eq(fds_below(t.proxy->pid, limit), limit - 1);
	for (unsigned i = 0; i < SHED; i++) {
		fd = connect_port(t.proxy_port);
		cr_assert_geq(fd, 0);
		end = read_end(fd, START_S);
		cr_assert_eq(end, 0, "client %u past the limit: %s, not EOF", i,
			     end < 0 ? strerror(-end) : "data");
		close(fd);
	}
	for (unsigned i = 0; i < HELD; i++)
		cr_assert(ping(held[i]), "held client %u harmed", i);
	for (unsigned i = 0; i < HELD; i++)
		close(held[i]);
	cr_assert_eq(wait_fds(idle_fds, START_S), idle_fds, "descriptors not released");
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd), "not served once descriptors were free again");
	close(fd);
	cr_assert_eq(wait_fds(idle_fds, START_S), idle_fds, "descriptors not released");

	exit_line = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0, "%s", t.proxy->text);
	cr_assert(proc_wait_output_from(t.proxy, exit_line, "exit: conns", 1.0) &&
			  proc_wait_output_from(t.proxy, exit_line, "wake_batches", 1.0),
		  "%s", t.proxy->text);
	exit_line = (size_t)(strstr(t.proxy->text + exit_line, "exit: conns") - t.proxy->text);
	cr_assert_eq(output_counter(exit_line, "shed"), SHED, "%s", t.proxy->text + exit_line);
	cr_assert_eq(output_counter(exit_line, "connect_errors"), 0, "%s",
		     t.proxy->text + exit_line);
	cr_assert_eq(output_counter(exit_line, "conns"), HELD + 1, "%s",
		     t.proxy->text + exit_line);
	/* One warning, naming the limit. */
	at = strstr(t.proxy->text, warning);
	cr_assert_not_null(at, "no warning: %s", t.proxy->text);
	cr_assert_null(strstr(at + 1, warning), "more than one warning: %s", t.proxy->text);
	snprintf(expect, sizeof(expect), "raise ulimit -n (now %llu)",
		 (unsigned long long)rl.rlim_cur);
	cr_assert_not_null(strstr(at, expect), "the warning does not say \"%s\": %s", expect,
			   t.proxy->text);
}

PROXY_TEST(proxy_limits, max_conns_refuses_the_next_without_harming_the_others)
{
	char *extra[] = { "--max-conns", "10", NULL };
	unsigned redis;
	int fds[10], extra_fd;
	char byte;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	for (unsigned i = 0; i < 10; i++) {
		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0);
		cr_assert(ping(fds[i]));
	}
	extra_fd = connect_port(t.proxy_port);
	cr_assert_geq(extra_fd, 0);
	cr_assert_eq(read(extra_fd, &byte, 1), 0, "the 11th connection was not refused");
	close(extra_fd);
	for (unsigned i = 0; i < 10; i++)
		cr_assert(ping(fds[i]), "connection %u harmed", i);
	cr_assert_eq(proxy_counter("refused"), 1ull);
	/* A slot given back is a slot for the next client. */
	close(fds[0]);
	proxy_wait_counter("open", 9, 5);
	fds[0] = connect_port(t.proxy_port);
	cr_assert_geq(fds[0], 0);
	cr_assert(ping(fds[0]));
	for (unsigned i = 0; i < 10; i++)
		close(fds[i]);
}

PROXY_TEST(proxy_limits, a_backend_that_dies_closes_only_its_clients)
{
	unsigned redis[2], port[2];
	char reply[4096], byte;
	int fds[2], idle_fds;
	pid_t victim = -1;

	skip_without_io_uring();
	redis[0] = redis_start();
	redis[1] = redis_start();
	proxy_start(redis, 2, NULL);
	idle_fds = count_fds(t.proxy->pid);
	cr_assert_gt(idle_fds, 0, "the proxy is gone");
	for (unsigned i = 0; i < 2; i++) {
		ssize_t n;
		char *at;
		size_t len = 0;

		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0);
		cr_assert(write_all(fds[i], "INFO server\r\n", 13));
		do {
			n = read(fds[i], reply + len, sizeof(reply) - 1 - len);
			cr_assert_gt(n, 0, "no INFO reply");
			len += (size_t)n;
			reply[len] = '\0';
			at = strstr(reply, "tcp_port:");
		} while (!at || !strstr(at, "\r\n"));
		port[i] = (unsigned)strtoul(at + 9, NULL, 10);
	}
	cr_assert_neq(port[0], port[1], "round robin sent both to port %u", port[0]);
	/* Kill the redis behind the first client (procs[0] and [1] are the two redis). */
	victim = t.procs[port[0] == redis[0] ? 0 : 1].pid;
	kill(victim, SIGKILL);
	cr_assert_leq(read(fds[0], &byte, 1), 0, "the first client was not closed");
	cr_assert(ping(fds[1]), "the other backend's client was harmed");
	close(fds[0]);
	close(fds[1]);
	cr_assert_eq(wait_fds(idle_fds, 10.0), idle_fds, "descriptors not released");
}
