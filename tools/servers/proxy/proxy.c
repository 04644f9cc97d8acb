/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: a TCP proxy on the urpoll task loop.
 *
 * N loops, one per thread, each with its own ring and its own SO_REUSEPORT listener (the
 * layout of docs/threads.md). A client accepted on a loop gets its backend connection on the
 * same loop, and one task moves both directions through two bounded buffers: a full buffer
 * stops the reading of its source, so the kernel's queues and the TCP window push back on the
 * sender. A FIN is passed on once its direction's buffer is flushed; an error on either side
 * closes both. A timerfd per loop ticks every TICK_MS for the connect and idle timeouts, the
 * drain, and --stats-interval.
 *
 *   urpoll-proxy --listen ADDR:PORT --backend ADDR:PORT [--backend ...] [--threads N]
 *                [--max-conns N] [--idle-timeout SEC] [--connect-timeout SEC]
 *                [--stats-interval SEC] [-q]
 *
 * This file: the options, the set-up, the signals and each loop's timer; a connection is
 * conn.c's, the backends' sockets are backend.c's (proxy.h).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "proxy.h"

#define TICK_MS	     250
#define TICKS_PER_S  (1000 / TICK_MS)
#define MAX_THREADS  256
/* After SIGINT or SIGTERM, open connections get this long to finish (a second signal: none). */
#define DRAIN_S	     10

struct proxy prx;

/* ---- counters and shutdown ---- */

static void print_stats(const char *when)
{
	uint64_t sum[7] = { 0 }, shed = 0, refused = 0;
	struct urp_stats total;

	for (unsigned i = 0; i < prx.nworkers; i++) {
		struct worker *w = &prx.workers[i];
		_Atomic uint64_t *c[7] = { &w->n.accepted,   &w->n.closed,	   &w->n.bytes_up,
					   &w->n.bytes_down, &w->n.connect_errors, &w->n.timeouts,
					   &w->n.io_errors };

		for (unsigned k = 0; k < 7; k++)
			sum[k] += net_counted(c[k]);
		/* The acceptor's (accept() out of descriptors) and ours (socket() out of them). */
		shed += net_counted(&w->acceptor.shed) + net_counted(&w->n.shed);
		refused += net_counted(&w->acceptor.refused);
	}
	server_stats(&prx.server, &total);
	printf(PROG ": %s: conns %llu open %llu refused %llu shed %llu bytes_up %llu "
		    "bytes_down %llu connect_errors %llu timeouts %llu io_errors %llu events %llu "
		    "stale_rejects %llu wake_batches %llu\n",
	       when, (unsigned long long)sum[0], (unsigned long long)(sum[0] - sum[1]),
	       (unsigned long long)refused, (unsigned long long)shed, (unsigned long long)sum[2],
	       (unsigned long long)sum[3], (unsigned long long)sum[4], (unsigned long long)sum[5],
	       (unsigned long long)sum[6], (unsigned long long)total.events,
	       (unsigned long long)total.stale_rejects, (unsigned long long)total.wake_batches);
	server_stats_check(&prx.server, &total);
	fflush(stdout);
}

static void stop_failed(void)
{
	server_stop(&prx.server, 1);
}

/* First signal: stop accepting and let each loop finish its connections (its timer task
 * stops it once it has none, or DRAIN_S later). A second one: stop now. */
static void drain_all(void)
{
	if (atomic_exchange(&prx.draining, true)) {
		server_stop(&prx.server, 0);
		return;
	}
	for (unsigned i = 0; i < prx.nworkers; i++) {
		acceptor_stop(&prx.workers[i].acceptor);
		urp_task_wake(&prx.workers[i].timer_task);
	}
}

/* SIGUSR1: the counters; SIGINT or SIGTERM: the drain. */
static void on_signal(int signo)
{
	if (signo == SIGUSR1)
		print_stats("stats");
	else
		drain_all();
}

/* ---- the timer: timeouts, the drain, periodic stats ---- */

static ssize_t timer_read(void *arg)
{
	struct worker *w = arg;
	uint64_t ticks;
	ssize_t n = read(w->timer_fd, &ticks, sizeof(ticks));

	if (n < 0)
		return -errno;
	w->now += (uint32_t)ticks;
	return n;
}

static int timer_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct worker *w = arg;
	uint32_t before = w->now;
	struct urp_event ev;

	while (urp_io_try_io(w->timer_io, URP_READABLE, timer_read, w) > 0)
		;
	if (w->now != before) {
		for (struct server_link *l = w->conns; l; l = l->next) {
			struct conn *c = container_of(l, struct conn, link);
			uint32_t limit = c->connecting ? prx.connect_ticks : prx.idle_ticks;

			if (limit && !c->expired && w->now - c->since >= limit) {
				c->expired = true;
				urp_task_wake(&c->task);
			}
		}
		if (prx.stats_ticks && w->index == 0 && w->now / prx.stats_ticks !=
		    before / prx.stats_ticks)
			print_stats("stats");
	}
	if (atomic_load(&prx.draining)) {
		if (!w->drain_end)
			w->drain_end = w->now + DRAIN_S * TICKS_PER_S;
		if (!w->nconns || (int32_t)(w->now - w->drain_end) >= 0)
			urp_loop_stop(w->loop);
	}
	if (urp_io_poll_ready(w->timer_io, URP_DIR_READ, &waker, &ev) == 0)
		urp_task_wake(task);
	return 0;
}

static int timer_start(struct worker *w)
{
	struct itimerspec every = {
		.it_interval = { .tv_nsec = TICK_MS * 1000000L },
		.it_value = { .tv_nsec = TICK_MS * 1000000L },
	};
	int ret;

	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->timer_fd < 0)
		return -errno;
	if (timerfd_settime(w->timer_fd, 0, &every, NULL) < 0)
		return -errno;
	ret = urp_register(urp_loop_driver(w->loop), w->timer_fd, URP_READABLE, &w->timer_io);
	if (ret < 0)
		return ret;
	urp_task_init(&w->timer_task, w->loop, timer_run, w);
	urp_task_wake(&w->timer_task);
	return 0;
}

/* ---- set-up ---- */

static int usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: " PROG " --listen ADDR:PORT --backend ADDR:PORT [--backend ADDR:PORT ...]\n"
		"                    [--threads N] [--max-conns N] [--idle-timeout SEC]\n"
		"                    [--connect-timeout SEC] [--stats-interval SEC] [-q] [--help]\n"
		"\n"
		"A TCP proxy on the urpoll task loop: each client is connected to the next\n"
		"backend (round robin) and bytes flow both ways, at most 16 KiB buffered per\n"
		"direction. A half-close is passed on; an error or a timeout on either side\n"
		"closes both.\n"
		"\n"
		"  -l, --listen ADDR:PORT      where clients connect: IPV4:PORT or [IPV6]:PORT;\n"
		"                              port 0 picks a free port (printed on stdout\n"
		"                              unless -q)\n"
		"  -b, --backend ADDR:PORT     a backend (up to %d); each must accept a\n"
		"                              connection at start-up\n"
		"  -t, --threads N             N loops, one per thread, each with its own\n"
		"                              io_uring and SO_REUSEPORT listener (default 1)\n"
		"  -m, --max-conns N           at most N client connections in all; beyond it a\n"
		"                              new client is accepted and closed at once\n"
		"                              (default: as many as descriptors allow)\n"
		"  -i, --idle-timeout SEC      close both sides after SEC seconds without a byte\n"
		"                              moved (default 300; 0: never)\n"
		"  -c, --connect-timeout SEC   give up a backend connect after SEC (default 5)\n"
		"  -s, --stats-interval SEC    print the counters every SEC seconds\n"
		"                              (default 0: never)\n"
		"  -q, --quiet                 print errors only\n"
		"  -h, --help                  this text\n"
		"\n"
		"SIGUSR1 prints the counters (connections, bytes each way, errors, urpoll's\n"
		"stale-event rejections and wake batches). SIGINT or SIGTERM stops accepting\n"
		"and lets open connections finish for up to %d s (a second signal: at once),\n"
		"then prints them and exits 0. Out of descriptors (EMFILE), new clients are\n"
		"shed, never spun on.\n"
		"\n"
		"EXAMPLES:\n"
		"    " PROG " -l 127.0.0.1:6380 -b 127.0.0.1:6379      # one backend\n"
		"    " PROG " -l [::]:80 -b 10.0.0.1:80 -b 10.0.0.2:80 -t 2\n"
		"    " PROG " -l 127.0.0.1:0 -b 127.0.0.1:8080 -i 0 -s 10\n"
		"        # a free port, no idle timeout, counters every 10 s\n"
		"\n"
		"Exit status: 0 after a signal, 1 on a runtime error (port in use, backend\n"
		"unreachable, no io_uring), 2 on bad usage.\n",
		MAX_BACKENDS, DRAIN_S);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "stats-interval", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned nthreads = 1, idle_s = 300, connect_s = 5, stats_s = 0;
	const unsigned max_s = 86400 * 365; /* the longest timeout or interval: a year */
	int listen_fds[MAX_THREADS], ret, opt, status = 1;
	struct urp_driver_opts dopts = { 0 };
	const char *listen_arg = NULL;
	union sockaddr_any addr;
	socklen_t addr_len = 0;

	for (unsigned i = 0; i < MAX_THREADS; i++)
		listen_fds[i] = -1;
	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, ":l:b:t:m:i:c:s:qh", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_arg = optarg;
			if (!net_parse_addr(optarg, &addr, &addr_len))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"bad listen address '%s' (expected "
							"IPV4:PORT or [IPV6]:PORT)",
							optarg);
			break;
		case 'b': {
			struct backend *b = &prx.backends[prx.nbackends];

			if (prx.nbackends == MAX_BACKENDS)
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"at most %d backends", MAX_BACKENDS);
			if (!net_parse_addr(optarg, &b->addr, &b->len))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"bad backend address '%s' (expected "
							"IPV4:PORT or [IPV6]:PORT)",
							optarg);
			net_addr_str(&b->addr, b->text, sizeof(b->text));
			prx.nbackends++;
			break;
		}
		case 't':
			if (!server_opt_count(PROG, opt, argv, 1, MAX_THREADS, "", &nthreads))
				return 2;
			break;
		case 'm':
			if (!server_opt_count(PROG, opt, argv, 1, UINT_MAX / 4, "",
					      &prx.group.max_conns))
				return 2;
			break;
		case 'i':
		case 'c':
		case 's':
			if (!server_opt_count(PROG, opt, argv, opt == 'c', max_s, "seconds",
					      opt == 'i'   ? &idle_s
					      : opt == 'c' ? &connect_s
							   : &stats_s))
				return 2;
			break;
		case 'q':
			prx.server.quiet = true;
			break;
		case 'h':
			return usage(0);
		default:
			return server_usage_error(PROG, opt, argv, options);
		}
	}
	if (optind < argc)
		return server_usage_error(PROG, -1, argv, options);
	if (!listen_arg || !prx.nbackends) {
		fprintf(stderr, PROG ": --listen and at least one --backend are needed (see --help)\n");
		return 2;
	}
	prx.idle_ticks = idle_s * TICKS_PER_S;
	prx.connect_ticks = connect_s * TICKS_PER_S;
	prx.stats_ticks = stats_s * TICKS_PER_S;
	prx.server.prog = PROG;
	prx.server.on_signal = on_signal;
	prx.group.prog = PROG;
	prx.group.quiet = prx.server.quiet;
	prx.group.refuse = true;
	prx.group.fatal = stop_failed;

	for (unsigned i = 0; i < prx.nbackends; i++) {
		ret = backend_probe(&prx.backends[i], (int)connect_s * 1000);
		if (ret < 0) {
			fprintf(stderr, PROG ": backend %s unreachable: %s\n",
				prx.backends[i].text, strerror(-ret));
			return 1;
		}
	}

	/* Each connection costs two descriptors and two registrations. */
	dopts.cq_entries = net_raise_nofile_cq_entries(prx.group.max_conns, 2, 8);

	if (server_signals_open(&prx.server, SIGUSR1) < 0)
		return 1;

	ret = net_tcp_listeners(&addr, addr_len, listen_fds, nthreads);
	if (ret < 0) {
		fprintf(stderr, PROG ": cannot listen on %s: %s\n", listen_arg, strerror(-ret));
		goto out_close;
	}
	prx.workers = calloc(nthreads, sizeof(*prx.workers));
	if (!prx.workers) {
		fprintf(stderr, PROG ": %s\n", strerror(ENOMEM));
		goto out_close;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		prx.workers[i].timer_fd = -1;
		prx.workers[i].acceptor.reserve_fd = -1;
		prx.workers[i].acceptor.fd = -1;
	}
	prx.nworkers = nthreads;
	if (server_loops_new(&prx.server, nthreads, &dopts) < 0)
		goto out_free;
	for (unsigned i = 0; i < nthreads; i++) {
		struct worker *w = &prx.workers[i];

		w->loop = prx.server.loops[i].loop;
		w->index = i;
		w->next_backend = i;
		ret = acceptor_start(&w->acceptor, &prx.group, w->loop, listen_fds[i], conn_start,
				     w);
		listen_fds[i] = -1; /* the acceptor's now: it closes it on the drain */
		if (ret == 0)
			ret = timer_start(w);
		if (ret < 0) {
			fprintf(stderr, PROG ": set-up: %s\n", urp_strerror(ret));
			goto out_free;
		}
	}

	status = server_run(&prx.server, &addr, NULL);
	if (!prx.server.quiet)
		print_stats("exit");

out_free:
	/* Frees every entry still registered; then the descriptors are ours to close. */
	server_loops_free(&prx.server);
	for (unsigned i = 0; i < prx.nworkers; i++) {
		struct worker *w = &prx.workers[i];

		while (w->conns) {
			struct conn *c = container_of(w->conns, struct conn, link);

			server_link_del(&w->conns, &c->link);
			close(c->client.fd);
			if (c->backend.fd >= 0)
				close(c->backend.fd);
			free(c);
		}
		if (w->acceptor.fd >= 0)
			close(w->acceptor.fd);
		acceptor_free(&w->acceptor);
	}
	for (unsigned i = 0; prx.workers && i < nthreads; i++)
		if (prx.workers[i].timer_fd >= 0)
			close(prx.workers[i].timer_fd);
	free(prx.workers);
out_close:
	for (unsigned i = 0; i < nthreads; i++)
		if (listen_fds[i] >= 0)
			close(listen_fds[i]);
	server_signals_close(&prx.server);
	return status;
}
