/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: GET /metrics, the Prometheus text format (version 0.0.4), served from loop 0
 * by a tiny HTTP/1.1 responder: one task per connection reads one request (METRICS_REQ_MAX
 * bytes at most, within METRICS_TIMEOUT_MS), answers it with Connection: close, then reads
 * what the client still sends until its FIN (so that the close does not reset the answer) and
 * closes. GET /metrics gets the counters, any other request 404, one too long 431. The
 * listener is the servers' acceptor (tools/servers/acceptor.c) in a group of its own, which
 * bounds the connections (METRICS_CONNS) and sheds rather than spins out of descriptors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

#define METRICS_REQ_MAX	   4096
#define METRICS_CONNS	   16
#define METRICS_TIMEOUT_MS 5000

enum { READING, WRITING, LINGERING };

struct metrics_conn {
	struct urp_task task;
	struct urp_timer timer; /* the whole exchange, from the accept to the close */
	struct server_link link;
	struct urp_io *io;
	int fd;
	int state;
	bool expired;
	char *resp; /* malloc'd; resp[off..len) still to send */
	size_t len, off;
	size_t got; /* bytes of req[] read */
	char req[METRICS_REQ_MAX];
};

static struct {
	struct acceptor acceptor;
	struct acceptor_group group;
	struct urp_loop *loop;
	struct server_link *conns;
	bool started;
} ms = { .acceptor = { .fd = -1, .reserve_fd = -1 } };

/* ---- the body ---- */

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	metric_head(f, name, type, help);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* A label value, escaped as the text format wants (backslash, double quote, newline). */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* One sample per backend of what value() gives for backend i. */
static void backend_metric(FILE *f, const char *name, const char *type, const char *help,
			   uint64_t (*value)(unsigned i))
{
	metric_head(f, name, type, help);
	for (unsigned i = 0; i < prx.nbackends; i++) {
		fprintf(f, "%s{backend=\"", name);
		label_value(f, prx.backends[i].text);
		fprintf(f, "\"} %llu\n", (unsigned long long)value(i));
	}
}

static uint64_t backend_up_value(unsigned i)
{
	return atomic_load(&prx.backends[i].up);
}

static uint64_t backend_conns_value(unsigned i)
{
	uint64_t conns, errors;

	proxy_backend_totals(i, &conns, &errors);
	return conns;
}

static uint64_t backend_errors_value(unsigned i)
{
	uint64_t conns, errors;

	proxy_backend_totals(i, &conns, &errors);
	return errors;
}

/* The exposition, in a malloc'd buffer (*len bytes); NULL when out of memory. */
static char *metrics_body(size_t *len)
{
	struct totals t;
	char *body = NULL;
	FILE *f = open_memstream(&body, len);

	if (!f)
		return NULL;
	proxy_totals(&t);
	metric(f, "urpoll_proxy_connections_total", "counter",
	       "Client connections accepted and given a backend.", t.accepted);
	metric(f, "urpoll_proxy_connections_open", "gauge", "Client connections open now.",
	       t.accepted - t.closed);
	metric_head(f, "urpoll_proxy_clients_rejected_total", "counter",
		    "Clients closed at once: beyond --max-conns (max_conns), out of descriptors "
		    "(shed), no backend up (no_backend).");
	fprintf(f,
		"urpoll_proxy_clients_rejected_total{reason=\"max_conns\"} %llu\n"
		"urpoll_proxy_clients_rejected_total{reason=\"shed\"} %llu\n"
		"urpoll_proxy_clients_rejected_total{reason=\"no_backend\"} %llu\n",
		(unsigned long long)t.refused, (unsigned long long)t.shed,
		(unsigned long long)t.no_backend);
	metric_head(f, "urpoll_proxy_bytes_total", "counter",
		    "Bytes read from one side for the other: up from clients, down from backends.");
	fprintf(f,
		"urpoll_proxy_bytes_total{direction=\"up\"} %llu\n"
		"urpoll_proxy_bytes_total{direction=\"down\"} %llu\n",
		(unsigned long long)t.bytes_up, (unsigned long long)t.bytes_down);
	metric(f, "urpoll_proxy_connect_errors_total", "counter",
	       "Backend connects that failed (refused, timed out, reset before any data).",
	       t.connect_errors);
	metric(f, "urpoll_proxy_retries_total", "counter",
	       "Backend connects made for a client after one failed.", t.retries);
	metric(f, "urpoll_proxy_idle_timeouts_total", "counter",
	       "Connections closed by --idle-timeout.", t.timeouts);
	metric(f, "urpoll_proxy_io_errors_total", "counter",
	       "Connections closed by an error on either side.", t.io_errors);
	backend_metric(f, "urpoll_proxy_backend_up", "gauge",
		       "Whether the backend takes connections (1) or is down (0).",
		       backend_up_value);
	backend_metric(f, "urpoll_proxy_backend_connections_total", "counter",
		       "Connections made to the backend.", backend_conns_value);
	backend_metric(f, "urpoll_proxy_backend_connect_errors_total", "counter",
		       "Connects to the backend that failed.", backend_errors_value);
	metric(f, "urpoll_events_total", "counter",
	       "Readiness events the loops' io_uring drivers stored (urp_driver_stats).",
	       t.lib.events);
	metric(f, "urpoll_stale_rejects_total", "counter",
	       "Readiness clears refused because a newer event had come (urp_driver_stats).",
	       t.lib.stale_rejects);
	metric(f, "urpoll_wake_batches_total", "counter",
	       "Batches of wakers called together (urp_driver_stats).", t.lib.wake_batches);
	metric(f, "urpoll_wakes_total", "counter", "Wakers called (urp_driver_stats).",
	       t.lib.wakes);
	metric(f, "urpoll_ring_recv_buffers_total", "counter",
	       "Buffers received in ring mode, --io ring (urp_driver_stats recv_bufs).",
	       t.lib.recv_bufs);
	metric(f, "urpoll_ring_recv_bytes_total", "counter",
	       "Bytes in them (urp_driver_stats recv_bytes).", t.lib.recv_bytes);
	metric(f, "urpoll_ring_sends_total", "counter",
	       "Send completions in ring mode (urp_driver_stats sends).", t.lib.sends);
	metric(f, "urpoll_ring_enobufs_total", "counter",
	       "Receives that found the buffer ring empty, re-armed once buffers came back "
	       "(urp_driver_stats enobufs).",
	       t.lib.enobufs);
	metric(f, "urpoll_ring_paused_total", "counter",
	       "Receives paused because their connection held its share of buffers "
	       "(urp_driver_stats paused).",
	       t.lib.paused);
	if (fclose(f)) {
		free(body);
		return NULL;
	}
	return body;
}

/* ---- the responder ---- */

/* The answer to the request in c->req (complete, or too long: too_long). */
static int answer(struct metrics_conn *c, bool too_long)
{
	static const char not_found[] = "not found: try GET /metrics\n",
			  too_large[] = "request too large\n";
	const char *status = "404 Not Found", *type = "text/plain; charset=utf-8";
	char *body = NULL, head[256];
	const char *text = not_found;
	size_t body_len = sizeof(not_found) - 1;
	int head_len;

	/* "GET /metrics HTTP/1.1", a query string allowed; nothing else. */
	if (too_long) {
		status = "431 Request Header Fields Too Large";
		text = too_large;
		body_len = sizeof(too_large) - 1;
	} else if (!strncmp(c->req, "GET /metrics", 12) &&
		   (c->req[12] == ' ' || c->req[12] == '?')) {
		body = metrics_body(&body_len);
		if (!body)
			return -ENOMEM;
		status = "200 OK";
		type = "text/plain; version=0.0.4; charset=utf-8";
		text = body;
	}
	head_len = snprintf(head, sizeof(head),
			    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			    "Connection: close\r\n\r\n",
			    status, type, body_len);
	c->resp = malloc((size_t)head_len + body_len);
	if (!c->resp) {
		free(body);
		return -ENOMEM;
	}
	memcpy(c->resp, head, (size_t)head_len);
	memcpy(c->resp + head_len, text, body_len);
	free(body);
	c->len = (size_t)head_len + body_len;
	c->off = 0;
	return 0;
}

/* Whether the request's head has ended (a blank line). */
static bool request_complete(const struct metrics_conn *c)
{
	return memmem(c->req, c->got, "\r\n\r\n", 4) || memmem(c->req, c->got, "\n\n", 2);
}

static ssize_t do_read(void *arg)
{
	struct metrics_conn *c = arg;
	char discard[512];
	ssize_t n;

	if (c->state == READING)
		n = recv(c->fd, c->req + c->got, sizeof(c->req) - c->got, 0);
	else
		n = recv(c->fd, discard, sizeof(discard), 0);
	return n < 0 ? -errno : n;
}

static ssize_t do_write(void *arg)
{
	struct metrics_conn *c = arg;
	ssize_t n = send(c->fd, c->resp + c->off, c->len - c->off, MSG_NOSIGNAL);

	return n < 0 ? -errno : n;
}

static int conn_close(struct metrics_conn *c)
{
	urp_timer_stop(&c->timer);
	urp_io_clear_wakers(c->io);
	urp_deregister(c->io);
	close(c->fd);
	server_link_del(&ms.conns, &c->link);
	free(c->resp);
	free(c);
	acceptor_release(&ms.group, true);
	return URP_TASK_DONE;
}

static int conn_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct metrics_conn *c = arg;
	struct urp_event ev;
	ssize_t n;

	if (c->expired)
		return conn_close(c);
	for (;;) {
		unsigned interest = c->state == WRITING ? URP_WRITABLE : URP_READABLE;

		n = urp_io_try_io(c->io, interest, c->state == WRITING ? do_write : do_read, c);
		if (n == -EAGAIN) {
			if (urp_io_poll_ready(c->io, c->state == WRITING ? URP_DIR_WRITE : URP_DIR_READ,
					      &waker, &ev) < 0)
				return 0;
			continue;
		}
		if (n == -EINTR)
			continue;
		if (n < 0 || (n == 0 && c->state != WRITING))
			return conn_close(c); /* an error, or the client's FIN */
		if (c->state == READING) {
			c->got += (size_t)n;
			if (!request_complete(c) && c->got < sizeof(c->req))
				continue;
			if (answer(c, !request_complete(c)) < 0)
				return conn_close(c);
			c->state = WRITING;
		} else if (c->state == WRITING) {
			c->off += (size_t)n;
			if (c->off < c->len)
				continue;
			/* All sent: our FIN, then whatever the client still sends until its own. */
			shutdown(c->fd, SHUT_WR);
			c->state = LINGERING;
		}
	}
}

static void conn_expired(struct urp_timer *t, void *arg)
{
	struct metrics_conn *c = arg;

	c->expired = true;
	urp_task_wake(&c->task);
}

static void metrics_accept(struct acceptor *a, int fd, void *arg)
{
	struct metrics_conn *c = calloc(1, sizeof(*c));

	if (!c || urp_register(urp_loop_driver(ms.loop), fd, URP_READABLE | URP_WRITABLE,
			       &c->io) < 0) {
		free(c);
		close(fd);
		acceptor_release(&ms.group, true);
		return;
	}
	c->fd = fd;
	server_link_add(&ms.conns, &c->link);
	urp_task_init(&c->task, ms.loop, conn_run, c);
	urp_timer_init(&c->timer, ms.loop, conn_expired, c);
	if (urp_timer_start(&c->timer, METRICS_TIMEOUT_MS) < 0) {
		conn_close(c);
		return;
	}
	urp_task_wake(&c->task);
}

static void metrics_failed(void)
{
	server_stop(&prx.server, 1);
}

int metrics_start(struct urp_loop *loop0, int fd)
{
	ms.loop = loop0;
	ms.group = (struct acceptor_group){ .prog = PROG, .quiet = prx.server.quiet,
					    .max_conns = METRICS_CONNS, .refuse = true,
					    .fatal = metrics_failed };
	ms.started = true;
	return acceptor_start(&ms.acceptor, &ms.group, loop0, fd, metrics_accept, NULL);
}

void metrics_free(void)
{
	if (!ms.started)
		return;
	while (ms.conns) {
		struct metrics_conn *c = container_of(ms.conns, struct metrics_conn, link);

		server_link_del(&ms.conns, &c->link);
		close(c->fd);
		free(c->resp);
		free(c);
	}
	if (ms.acceptor.fd >= 0)
		close(ms.acceptor.fd);
	acceptor_free(&ms.acceptor);
}
