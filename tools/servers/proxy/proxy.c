/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: a TCP proxy on the urpoll task loop.
 *
 * N loops, one per thread, each with its own ring and its own SO_REUSEPORT listener (the
 * layout of docs/threads.md). A client accepted on a loop gets its backend connection on the
 * same loop, and one task moves both directions, each bounded: a direction whose sink is full
 * stops reading its source, so the kernel's queues and the TCP window push back on the sender.
 * --io ring (the default) moves the bytes with io_uring's own recv and send, from buffer to
 * buffer of the driver's provided-buffer ring; --io readiness with recv() and send() into a
 * connection's two 16 KiB buffers. A FIN is passed on once everything before it was; an error
 * on either side closes both. Every deadline is a library timer (urp_timer_*): each
 * connection's connect and idle timeouts, each loop's drain, --stats-interval, the re-checks of
 * down backends.
 *
 *   urpoll-proxy --listen ADDR:PORT --backend HOST:PORT [--backend ...] [--threads N]
 *                [--io ring|readiness] [--max-conns N] [--idle-timeout SEC]
 *                [--connect-timeout SEC] [--check-interval SEC] [--stats-interval SEC]
 *                [--metrics ADDR:PORT] [--log] [--reuseport] [-q]
 *
 * This file: the options, the set-up, the signals, the drain and the counters; a connection is
 * conn.c's, the backends backend.c's, /metrics metrics.c's (proxy.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"

#define MAX_THREADS 256
/* After SIGINT or SIGTERM, open connections get this long to finish (a second signal: none). */
#define DRAIN_S	    10

struct proxy prx;

/* ---- counters ---- */

void proxy_totals(struct totals *t)
{
	*t = (struct totals){ 0 };
	for (unsigned i = 0; i < prx.nworkers; i++) {
		struct worker *w = &prx.workers[i];

		t->accepted += net_counted(&w->n.accepted);
		t->closed += net_counted(&w->n.closed);
		t->bytes_up += net_counted(&w->n.bytes_up);
		t->bytes_down += net_counted(&w->n.bytes_down);
		t->connect_errors += net_counted(&w->n.connect_errors);
		t->timeouts += net_counted(&w->n.timeouts);
		t->io_errors += net_counted(&w->n.io_errors);
		t->no_backend += net_counted(&w->n.no_backend);
		t->retries += net_counted(&w->n.retries);
		/* The acceptor's (accept() out of descriptors) and ours (socket() out of them). */
		t->shed += net_counted(&w->acceptor.shed) + net_counted(&w->n.shed);
		t->refused += net_counted(&w->acceptor.refused);
	}
	server_stats(&prx.server, &t->lib);
}

void proxy_backend_totals(unsigned i, uint64_t *conns, uint64_t *connect_errors)
{
	*conns = *connect_errors = 0;
	for (unsigned k = 0; k < prx.nworkers; k++) {
		*conns += net_counted(&prx.workers[k].n.backend[i].conns);
		*connect_errors += net_counted(&prx.workers[k].n.backend[i].connect_errors);
	}
}

/* "urpoll-proxy: TIME WHEN: conns ...": on SIGUSR1, every --stats-interval, at exit. */
static void print_stats(const char *when)
{
	struct totals t;

	proxy_totals(&t);
	log_line(stdout,
		 "%s: conns %llu open %llu refused %llu shed %llu bytes_up %llu bytes_down %llu "
		 "connect_errors %llu timeouts %llu io_errors %llu no_backend %llu retries %llu "
		 "events %llu stale_rejects %llu wake_batches %llu recv_bufs %llu enobufs %llu "
		 "paused %llu",
		 when, (unsigned long long)t.accepted, (unsigned long long)(t.accepted - t.closed),
		 (unsigned long long)t.refused, (unsigned long long)t.shed,
		 (unsigned long long)t.bytes_up, (unsigned long long)t.bytes_down,
		 (unsigned long long)t.connect_errors, (unsigned long long)t.timeouts,
		 (unsigned long long)t.io_errors, (unsigned long long)t.no_backend,
		 (unsigned long long)t.retries, (unsigned long long)t.lib.events,
		 (unsigned long long)t.lib.stale_rejects, (unsigned long long)t.lib.wake_batches,
		 (unsigned long long)t.lib.recv_bufs, (unsigned long long)t.lib.enobufs,
		 (unsigned long long)t.lib.paused);
	server_stats_check(&prx.server, &t.lib);
}

static void stats_tick(struct urp_timer *t, void *arg)
{
	print_stats("stats");
	urp_timer_start(t, prx.stats_ms);
}

void proxy_ready(void)
{
	char text[80];

	if (prx.server.quiet)
		return;
	printf(PROG ": listening on tcp %s\n", net_addr_str(&prx.listen_addr, text, sizeof(text)));
	if (prx.metrics)
		printf(PROG ": metrics on http://%s/metrics\n",
		       net_addr_str(&prx.metrics_addr, text, sizeof(text)));
	fflush(stdout);
}

/* ---- signals and the drain ---- */

static void stop_failed(void)
{
	server_stop(&prx.server, 1);
}

/* On each loop after the first SIGINT or SIGTERM: stop once it has no connection left (the
 * last conn_finish() stops it), or DRAIN_S later. */
static void drain_expired(struct urp_timer *t, void *arg)
{
	urp_loop_stop(((struct worker *)arg)->loop);
}

static int drain_run(struct urp_task *task, void *arg)
{
	struct worker *w = arg;

	if (!w->nconns)
		urp_loop_stop(w->loop);
	else if (!urp_timer_active(&w->drain_timer))
		urp_timer_start(&w->drain_timer, DRAIN_S * 1000);
	return 0;
}

/* First signal: stop accepting and let each loop finish its connections. A second one: stop
 * now. Any loop's thread: each loop arms its own drain timer. */
static void drain_all(void)
{
	if (atomic_exchange(&prx.draining, true)) {
		server_stop(&prx.server, 0);
		return;
	}
	for (unsigned i = 0; i < prx.nworkers; i++) {
		acceptor_stop(&prx.workers[i].acceptor);
		urp_task_wake(&prx.workers[i].drain_task);
	}
}

/* SIGUSR1: the counters; SIGHUP: said and ignored; SIGINT or SIGTERM: the drain. */
static void on_signal(int signo)
{
	if (signo == SIGUSR1)
		print_stats("stats");
	else if (signo == SIGHUP)
		log_line(stderr, "SIGHUP ignored: " PROG " has no configuration to reload");
	else
		drain_all();
}

/* ---- set-up ---- */

static int usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: " PROG " --listen ADDR:PORT --backend HOST:PORT [--backend ...]\n"
		"                    [--threads N] [--io ring|readiness] [--max-conns N]\n"
		"                    [--idle-timeout SEC] [--connect-timeout SEC]\n"
		"                    [--check-interval SEC] [--stats-interval SEC]\n"
		"                    [--metrics ADDR:PORT] [--log] [--reuseport] [-q] [--help]\n"
		"\n"
		"A TCP proxy on the urpoll task loop: each client is connected to the next\n"
		"backend up (round robin) and bytes flow both ways, each direction bounded (a\n"
		"stalled reader stops the reading of its peer). A half-close is passed on; an\n"
		"error or a timeout on either side closes both. A backend that refuses, times\n"
		"out or resets before sending a byte is marked down and the client goes to the\n"
		"next backend up, its bytes replayed (up to 16 KiB), so no client sees an error\n"
		"while a backend is up. When every backend is down, a new client is closed at\n"
		"once (a FIN) and counted in no_backend.\n"
		"\n"
		"  -l, --listen ADDR:PORT      where clients connect: IPV4:PORT, [IPV6]:PORT,\n"
		"                              HOST:PORT (its first address) or :PORT (every\n"
		"                              IPv4 address); port 0 picks a free port (printed\n"
		"                              on stdout unless -q)\n"
		"  -b, --backend HOST:PORT     a backend (up to %d): a name, resolved once at\n"
		"                              start-up (IPv4 and IPv6 addresses, tried in\n"
		"                              turn), IPV4:PORT or [IPV6]:PORT; one that is\n"
		"                              down at start-up is one warning, not an error\n"
		"  -t, --threads N             N loops, one per thread, each with its own\n"
		"                              io_uring and SO_REUSEPORT listener (default 1)\n"
		"      --io ring|readiness     how bytes move. ring (the default): io_uring\n"
		"                              receives into a ring of %d KiB buffers shared by\n"
		"                              a loop's connections (%d MiB per loop) and sends\n"
		"                              them on as they are, no copy, no socket syscall\n"
		"                              per request; an idle connection holds no buffer.\n"
		"                              readiness: recv() and send() when the readiness\n"
		"                              word says so, into two 16 KiB buffers per\n"
		"                              connection. Without --io, a kernel that lacks\n"
		"                              ring mode (Linux 6.0) gets readiness, said once\n"
		"  -m, --max-conns N           at most N client connections in all; beyond it a\n"
		"                              new client is accepted and closed at once\n"
		"                              (default: as many as descriptors allow)\n"
		"  -i, --idle-timeout SEC      close both sides after SEC seconds without a byte\n"
		"                              moved (default 300; 0: never)\n"
		"  -c, --connect-timeout SEC   give up a backend connect after SEC (default 5)\n"
		"      --check-interval SEC    check every backend with a TCP connect every SEC\n"
		"                              (default 2): a down one that connects is up\n"
		"                              again, an up one that does not is down\n"
		"  -s, --stats-interval SEC    print the counters every SEC seconds\n"
		"                              (default 0: never)\n"
		"      --metrics ADDR:PORT     serve Prometheus metrics on GET /metrics there\n"
		"                              (an address as --listen takes)\n"
		"      --log                   one line per closed connection on stdout: client,\n"
		"                              backend, bytes each way, duration, how it ended\n"
		"      --reuseport             share the port with another instance\n"
		"                              (SO_REUSEPORT): a restart without downtime\n"
		"  -q, --quiet                 print errors and backend changes only\n"
		"  -h, --help                  this text\n"
		"\n"
		"Lines of --log, of the counters and of backend changes start with the time,\n"
		"ISO 8601 in UTC (2026-12-03T01:25:03.123Z). SIGUSR1 prints the counters\n"
		"(connections, bytes each way, errors, urpoll's stale-event rejections and\n"
		"wake batches); SIGHUP is ignored, with one line. SIGINT or SIGTERM stops\n"
		"accepting and lets open connections finish for up to %d s (a second signal:\n"
		"at once), then prints them and exits 0. Out of descriptors (EMFILE), new\n"
		"clients are shed, never spun on.\n"
		"\n"
		"EXAMPLES:\n"
		"    " PROG " -l 127.0.0.1:6380 -b localhost:6379    # one backend\n"
		"    " PROG " -l [::]:80 -b 10.0.0.1:80 -b 10.0.0.2:80 -t 2 \\\n"
		"        --metrics 127.0.0.1:9180                # two, two loops, /metrics\n"
		"    " PROG " -l 127.0.0.1:0 -b 127.0.0.1:8080 -i 0 -s 10 --log\n"
		"        # a free port, no idle timeout, counters every 10 s, a line per client\n"
		"    " PROG " -l 0.0.0.0:80 -b web1:80 --reuseport &   # then a restart:\n"
		"    " PROG " -l 0.0.0.0:80 -b web1:80 --reuseport &   # the new one, and\n"
		"    kill -TERM OLD_PID                    # the old one drains and exits\n"
		"\n"
		"Exit status: 0 after a signal, 1 on a runtime error (port in use, a backend\n"
		"name that does not resolve, no io_uring), 2 on bad usage.\n",
		MAX_BACKENDS, RING_BUF_SIZE / 1024, RING_BUF_COUNT * (RING_BUF_SIZE / 1024) / 1024,
		DRAIN_S);
	return status;
}

/*
 * The clients queued on a listener that closes are reset, unless net.ipv4.tcp_migrate_req is 1
 * (Linux 5.14), which hands them to another listener of the SO_REUSEPORT group. The drain
 * accepts those queued before it stops listening (acceptor.c: accept_on_stop), so without the
 * setting only a connect that lands in that instant is lost; with it, none.
 */
static void reuseport_check(void)
{
	char value = '?';
	int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &value, 1) != 1)
			value = '?';
		close(fd);
	}
	if (value != '1' && !prx.server.quiet)
		log_line(stderr,
			 "--reuseport: net.ipv4.tcp_migrate_req is %s: a client connecting in the "
			 "instant this instance stops listening may be reset (1 hands it to the "
			 "new instance)",
			 value == '0' ? "0" : "not available");
}

/*
 * Where to listen: an address literal, a name (its first address), or ":PORT" for every IPv4
 * address, as exporters are often given. False on anything else.
 */
static bool parse_bind_addr(const char *text, union sockaddr_any *addr, socklen_t *len)
{
	struct backend b;
	char any[16];
	const char *why;

	if (net_parse_addr(text, addr, len))
		return true;
	if (text[0] == ':' && strlen(text) < sizeof(any) - 7) {
		snprintf(any, sizeof(any), "0.0.0.0%s", text);
		return net_parse_addr(any, addr, len);
	}
	if (backend_parse(&b, text, &why) < 0)
		return false;
	memcpy(addr, &b.addrs[0], b.lens[0]);
	*len = b.lens[0];
	return true;
}

/* Every loop's acceptor, drain and timers; on loop 0 the checks, stats and /metrics. */
static int workers_start(int *listen_fds, unsigned nthreads, int metrics_fd)
{
	int ret = 0;

	for (unsigned i = 0; i < nthreads; i++) {
		struct worker *w = &prx.workers[i];

		w->loop = prx.server.loops[i].loop;
		w->index = i;
		w->next_backend = i;
		urp_task_init(&w->drain_task, w->loop, drain_run, w);
		urp_timer_init(&w->drain_timer, w->loop, drain_expired, w);
		ret = acceptor_start(&w->acceptor, &prx.group, w->loop, listen_fds[i], conn_start,
				     w);
		listen_fds[i] = -1; /* the acceptor's now: it closes it on the drain */
		if (ret < 0)
			return ret;
	}
	backend_checks_start(prx.workers[0].loop);
	if (prx.stats_ms) {
		urp_timer_init(&prx.stats_timer, prx.workers[0].loop, stats_tick, NULL);
		ret = urp_timer_start(&prx.stats_timer, prx.stats_ms);
	}
	if (ret == 0 && metrics_fd >= 0)
		ret = metrics_start(prx.workers[0].loop, metrics_fd);
	return ret;
}

/* After the loops are freed: what they still held. */
static void workers_free(void)
{
	for (unsigned i = 0; i < prx.nworkers; i++) {
		struct worker *w = &prx.workers[i];

		while (w->conns) {
			struct conn *c = container_of(w->conns, struct conn, link);

			conn_log_stopped(c);
			server_link_del(&w->conns, &c->link);
			close(c->client.fd);
			if (c->backend.fd >= 0)
				close(c->backend.fd);
			conn_free(c);
		}
		if (w->acceptor.fd >= 0)
			close(w->acceptor.fd);
		acceptor_free(&w->acceptor);
	}
	free(prx.workers);
	prx.workers = NULL;
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_METRICS, OPT_LOG, OPT_REUSEPORT, OPT_IO };
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "io", required_argument, NULL, OPT_IO },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "check-interval", required_argument, NULL, OPT_CHECK },
		{ "stats-interval", required_argument, NULL, 's' },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "log", no_argument, NULL, OPT_LOG },
		{ "reuseport", no_argument, NULL, OPT_REUSEPORT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int extra_signals[] = { SIGUSR1, SIGHUP, 0 };
	unsigned nthreads = 1, idle_s = 300, connect_s = 5, stats_s = 0, check_s = 2, nb = 0;
	const unsigned max_s = 86400 * 365; /* the longest timeout or interval: a year */
	int listen_fds[MAX_THREADS], ret, opt, status = 1, metrics_fd = -1;
	const char *listen_arg = NULL, *metrics_arg = NULL, *backend_args[MAX_BACKENDS], *why;
	char backend_opts[MAX_BACKENDS][16]; /* each --backend as spelled: "-b", "--backend" */
	struct urp_driver_opts dopts = { 0 };
	union sockaddr_any addr, maddr;
	socklen_t addr_len = 0, maddr_len = 0;

	for (unsigned i = 0; i < MAX_THREADS; i++)
		listen_fds[i] = -1;
	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, ":l:b:t:m:i:c:s:qh", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
		case OPT_METRICS:
			if (!parse_bind_addr(optarg, opt == 'l' ? &addr : &maddr,
					     opt == 'l' ? &addr_len : &maddr_len))
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"bad %s address '%s' (expected "
							"IPV4:PORT, [IPV6]:PORT, HOST:PORT or "
							":PORT)",
							opt == 'l' ? "listen" : "metrics", optarg);
			*(opt == 'l' ? &listen_arg : &metrics_arg) = optarg;
			break;
		case 'b':
			if (nb == MAX_BACKENDS)
				return server_opt_error(PROG, server_opt_name(opt, argv),
							"at most %d backends", MAX_BACKENDS);
			/* Resolved once every option is read: bad usage comes first. */
			snprintf(backend_opts[nb], sizeof(backend_opts[nb]), "%s",
				 server_opt_name(opt, argv));
			backend_args[nb++] = optarg;
			break;
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
		case OPT_CHECK:
			if (!server_opt_count(PROG, opt, argv, opt == 'c' || opt == OPT_CHECK, max_s,
					      "seconds",
					      opt == 'i'	 ? &idle_s
					      : opt == 'c'	 ? &connect_s
					      : opt == OPT_CHECK ? &check_s
								 : &stats_s))
				return 2;
			break;
		case OPT_IO:
			if (!server_opt_io(PROG, opt, argv, &prx.io))
				return 2;
			break;
		case OPT_LOG:
			prx.log = true;
			break;
		case OPT_REUSEPORT:
			prx.reuseport = true;
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
	if (!listen_arg || !nb) {
		fprintf(stderr, PROG ": --listen and at least one --backend are needed (see --help)\n");
		return 2;
	}
	for (unsigned i = 0; i < nb; i++) {
		ret = backend_parse(&prx.backends[i], backend_args[i], &why);
		if (ret == -EINVAL)
			return server_opt_error(PROG, backend_opts[i],
						"bad backend address '%s' (expected HOST:PORT or "
						"[IPV6]:PORT: %s)",
						backend_args[i], why);
		if (ret < 0) {
			fprintf(stderr, PROG ": %s: cannot resolve '%s': %s\n", backend_opts[i],
				backend_args[i], why);
			return 1;
		}
	}
	prx.nbackends = nb;
	prx.idle_ms = idle_s * 1000ull;
	prx.connect_ms = connect_s * 1000ull;
	prx.stats_ms = stats_s * 1000ull;
	prx.check_ms = check_s * 1000ull;
	prx.server.prog = PROG;
	prx.server.on_signal = on_signal;
	prx.group.prog = PROG;
	prx.group.quiet = prx.server.quiet;
	prx.group.refuse = true;
	prx.group.accept_on_stop = true;
	prx.group.fatal = stop_failed;

	/* Each connection costs two descriptors and two registrations (three in ring mode while
	 * its backend connects: the connect's poll goes as the ring-mode registration comes). */
	dopts.cq_entries = net_raise_nofile_cq_entries(prx.group.max_conns, 3, 8 + MAX_BACKENDS);
	dopts.buf_count = RING_BUF_COUNT;
	dopts.buf_size = RING_BUF_SIZE;
	dopts.buf_cap = RING_BUF_CAP;
	dopts.send_hwm = RING_SEND_HWM;

	if (server_signals_open(&prx.server, extra_signals) < 0)
		return 1;

	/* The ports first: one in use fails at once, before any backend is checked. */
	ret = net_tcp_listeners(&addr, addr_len, listen_fds, nthreads, prx.reuseport);
	if (ret < 0) {
		fprintf(stderr, PROG ": cannot listen on %s: %s\n", listen_arg, strerror(-ret));
		goto out_close;
	}
	if (metrics_arg) {
		ret = net_tcp_listeners(&maddr, maddr_len, &metrics_fd, 1, false);
		if (ret < 0) {
			fprintf(stderr, PROG ": --metrics: cannot listen on %s: %s\n", metrics_arg,
				strerror(-ret));
			goto out_close;
		}
		prx.metrics_addr = maddr;
		prx.metrics = true;
	}
	prx.listen_addr = addr;
	if (prx.reuseport)
		reuseport_check();

	prx.workers = calloc(nthreads, sizeof(*prx.workers));
	if (!prx.workers) {
		fprintf(stderr, PROG ": %s\n", strerror(ENOMEM));
		goto out_close;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		prx.workers[i].acceptor.reserve_fd = -1;
		prx.workers[i].acceptor.fd = -1;
	}
	prx.nworkers = nthreads;
	if (server_loops_new(&prx.server, nthreads, &dopts) < 0 ||
	    server_io_setup(&prx.server, &prx.io) < 0)
		goto out_free;
	ret = workers_start(listen_fds, nthreads, metrics_fd);
	metrics_fd = -1; /* the responder's now */
	if (ret < 0) {
		fprintf(stderr, PROG ": set-up: %s\n", urp_strerror(ret));
		goto out_free;
	}

	/* No "listening on" line from the server: proxy_ready() prints it once the backends are
	 * checked. */
	status = server_run(&prx.server, NULL, NULL);
	if (!prx.server.quiet)
		print_stats("exit");

out_free:
	/* Frees every entry still registered; then the descriptors are ours to close. */
	server_loops_free(&prx.server);
	workers_free();
	backend_checks_free();
	metrics_free();
out_close:
	for (unsigned i = 0; i < nthreads; i++)
		if (listen_fds[i] >= 0)
			close(listen_fds[i]);
	if (metrics_fd >= 0)
		close(metrics_fd);
	server_signals_close(&prx.server);
	return status;
}
