// SPDX-License-Identifier: MIT
/*
 * proxy_metrics: urpoll-proxy's --metrics, end to end (the fixture: tests/lib/proxy_util.h).
 * GET /metrics is the Prometheus text format that `promtool check metrics` accepts, with the
 * counters of what went through; anything else is 404, a request too long 431, and the
 * responder goes on serving.
 */
#include "proxy_util.h"

TestSuite(proxy_metrics, .init = suite_init, .fini = cleanup, .timeout = 120);

static unsigned metrics_port;

/* The proxy with --metrics where (port 0) in front of the backends; its metrics port, from
 * its line "metrics on http://ADDR:PORT/metrics" (ADDR: shown). */
static void proxy_with_metrics_on(const unsigned *backends, unsigned nbackends, char *where,
				  const char *shown)
{
	char *extra[] = { "--metrics", where, NULL }, *at, needle[64];

	snprintf(needle, sizeof(needle), "metrics on http://%s:", shown);

	proxy_start(backends, nbackends, extra);
	cr_assert(proc_wait_output(t.proxy, needle, START_S), "%s", t.proxy->text);
	at = strstr(t.proxy->text, needle) + strlen(needle);
	metrics_port = (unsigned)strtoul(at, NULL, 10);
	cr_assert_gt(metrics_port, 0u);
}

static void proxy_with_metrics(const unsigned *backends, unsigned nbackends)
{
	proxy_with_metrics_on(backends, nbackends, "127.0.0.1:0", "127.0.0.1");
}

/* GET /metrics: its body into body (status 200 asserted). */
static void scrape(char *out, size_t size, char **body)
{
	int status = http_request(metrics_port, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n",
				  out, size);

	cr_assert_eq(status, 200, "GET /metrics: %d: %s", status, out);
	cr_assert_not_null(strstr(out, "Content-Type: text/plain; version=0.0.4"), "%s", out);
	*body = http_body(out);
	cr_assert_not_null(*body);
}

/* The value of the sample "name" (with its labels, if any) in body; -1 when absent. */
static long long sample(const char *body, const char *name)
{
	char key[256];
	const char *at = body;
	size_t len;

	snprintf(key, sizeof(key), "\n%s ", name);
	len = strlen(key);
	if (!strncmp(body, key + 1, len - 1))
		return strtoll(body + len - 1, NULL, 10);
	at = strstr(body, key);
	return at ? strtoll(at + len, NULL, 10) : -1;
}

/* The metric family name has its # HELP and # TYPE lines, of type. */
static void has_help_and_type(const char *body, const char *name, const char *type)
{
	char help[128], type_line[128];

	snprintf(help, sizeof(help), "# HELP %s ", name);
	snprintf(type_line, sizeof(type_line), "# TYPE %s %s\n", name, type);
	cr_assert_not_null(strstr(body, help), "no HELP for %s", name);
	cr_assert_not_null(strstr(body, type_line), "no TYPE %s for %s", type, name);
}

PROXY_TEST(proxy_metrics, metrics_pass_promtool_and_count_what_went_through)
{
	static char out[65536];
	char path[PATH_MAX], cmd_out[4096], name[128], *body;
	unsigned ports[2];
	FILE *f;

	skip_without_io_uring();
	need_program("promtool");
	ports[0] = redis_start();
	ports[1] = free_port(); /* down */
	proxy_with_metrics(ports, 2);
	for (unsigned i = 0; i < 10; i++) {
		int fd = connect_port(t.proxy_port);

		cr_assert_geq(fd, 0);
		cr_assert(ping(fd));
		close(fd);
	}
	cr_assert_eq(proxy_wait_counter("open", 0, START_S), 0ull, "connections still open");
	scrape(out, sizeof(out), &body);

	path_in_dir(path, sizeof(path), "metrics.txt");
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(body, f);
	fclose(f);
	cr_assert_eq(run(cmd_out, sizeof(cmd_out), "promtool check metrics < %s 2>&1", path), 0,
		     "promtool check metrics: %s\n%s", cmd_out, body);

	has_help_and_type(body, "urpoll_proxy_connections_total", "counter");
	has_help_and_type(body, "urpoll_proxy_connections_open", "gauge");
	has_help_and_type(body, "urpoll_proxy_bytes_total", "counter");
	has_help_and_type(body, "urpoll_proxy_backend_up", "gauge");
	has_help_and_type(body, "urpoll_proxy_backend_connections_total", "counter");
	has_help_and_type(body, "urpoll_proxy_backend_connect_errors_total", "counter");
	has_help_and_type(body, "urpoll_events_total", "counter");
	has_help_and_type(body, "urpoll_stale_rejects_total", "counter");
	has_help_and_type(body, "urpoll_wake_batches_total", "counter");
	has_help_and_type(body, "urpoll_wakes_total", "counter");

	cr_assert_eq(sample(body, "urpoll_proxy_connections_total"), 10, "%s", body);
	cr_assert_eq(sample(body, "urpoll_proxy_connections_open"), 0, "%s", body);
	/* 10 PINGs (6 bytes) up, 10 +PONGs (7 bytes) down. */
	cr_assert_eq(sample(body, "urpoll_proxy_bytes_total{direction=\"up\"}"), 60, "%s", body);
	cr_assert_eq(sample(body, "urpoll_proxy_bytes_total{direction=\"down\"}"), 70, "%s",
		     body);
	snprintf(name, sizeof(name), "urpoll_proxy_backend_up{backend=\"127.0.0.1:%u\"}",
		 ports[0]);
	cr_assert_eq(sample(body, name), 1, "%s", body);
	snprintf(name, sizeof(name), "urpoll_proxy_backend_connections_total{backend=\"127.0.0.1:%u\"}",
		 ports[0]);
	cr_assert_eq(sample(body, name), 10, "%s", body);
	snprintf(name, sizeof(name), "urpoll_proxy_backend_up{backend=\"127.0.0.1:%u\"}",
		 ports[1]);
	cr_assert_eq(sample(body, name), 0, "%s", body);
	snprintf(name, sizeof(name),
		 "urpoll_proxy_backend_connect_errors_total{backend=\"127.0.0.1:%u\"}", ports[1]);
	cr_assert_eq(sample(body, name), 0, "no client was sent to it: %s", body);
	cr_assert_gt(sample(body, "urpoll_events_total"), 0, "%s", body);
	cr_assert_gt(sample(body, "urpoll_wake_batches_total"), 0, "%s", body);
	cr_assert_geq(sample(body, "urpoll_wakes_total"),
		      sample(body, "urpoll_wake_batches_total"), "%s", body);
	cr_assert_geq(sample(body, "urpoll_stale_rejects_total"), 0, "%s", body);
	has_help_and_type(body, "urpoll_ring_recv_buffers_total", "counter");
	has_help_and_type(body, "urpoll_ring_enobufs_total", "counter");
	has_help_and_type(body, "urpoll_ring_paused_total", "counter");
	/* Ring mode received the 130 bytes in buffers of the ring (and the sends went out on it);
	 * readiness mode none. */
	if (!strcmp(t.io, "ring")) {
		cr_assert_geq(sample(body, "urpoll_ring_recv_buffers_total"), 20, "%s", body);
		cr_assert_eq(sample(body, "urpoll_ring_recv_bytes_total"), 130, "%s", body);
		cr_assert_geq(sample(body, "urpoll_ring_sends_total"), 20, "%s", body);
	} else {
		cr_assert_eq(sample(body, "urpoll_ring_recv_buffers_total"), 0, "%s", body);
		cr_assert_eq(sample(body, "urpoll_ring_sends_total"), 0, "%s", body);
	}
	cr_assert_eq(sample(body, "urpoll_ring_enobufs_total"), 0, "%s", body);
}

PROXY_TEST(proxy_metrics, anything_but_get_metrics_is_404)
{
	static const char *const requests[] = {
		"GET / HTTP/1.1\r\n\r\n",
		"GET /metricsx HTTP/1.1\r\n\r\n",
		"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
		"HEAD /metrics HTTP/1.1\r\n\r\n",
		"hello\n\n",
	};
	char out[65536], *body;
	unsigned redis;

	skip_without_io_uring();
	redis = redis_start();
	proxy_with_metrics(&redis, 1);
	for (unsigned i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		int status = http_request(metrics_port, requests[i], out, sizeof(out));

		cr_assert_eq(status, 404, "%s: %d: %s", requests[i], status, out);
		cr_assert_not_null(strstr(out, "Connection: close"), "%s", out);
	}
	/* A query string and HTTP/1.0 are still GET /metrics. */
	cr_assert_eq(http_request(metrics_port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", out,
				  sizeof(out)),
		     200, "%s", out);
	scrape(out, sizeof(out), &body);
	cr_assert_eq(sample(body, "urpoll_proxy_connections_total"), 0, "%s", body);
}

PROXY_TEST(proxy_metrics, a_request_too_long_gets_431_and_the_responder_goes_on)
{
	static char request[8192], out[65536];
	char *body;
	unsigned redis;
	int idle, status;

	skip_without_io_uring();
	redis = redis_start();
	proxy_with_metrics(&redis, 1);
	/* A client that says nothing does not hold the responder up. */
	idle = connect_port(metrics_port);
	cr_assert_geq(idle, 0);
	memcpy(request, "GET /metrics HTTP/1.1\r\nX-Long: ", 31);
	memset(request + 31, 'x', sizeof(request) - 32);
	status = http_request(metrics_port, request, out, sizeof(out));
	cr_assert_eq(status, 431, "%d: %.200s", status, out);
	scrape(out, sizeof(out), &body);
	cr_assert_geq(sample(body, "urpoll_proxy_connections_total"), 0, "%s", body);
	close(idle);
}

/* --metrics takes what --listen takes: a name, or :PORT for every IPv4 address. */
PROXY_TEST(proxy_metrics, metrics_listen_on_a_name_or_on_every_address)
{
	char out[65536], *body;
	unsigned redis;

	skip_without_io_uring();
	redis = redis_start();
	proxy_with_metrics_on(&redis, 1, "localhost:0", "127.0.0.1");
	scrape(out, sizeof(out), &body);
	kill(t.proxy->pid, SIGTERM);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0);
	proxy_with_metrics_on(&redis, 1, ":0", "0.0.0.0");
	scrape(out, sizeof(out), &body);
}
