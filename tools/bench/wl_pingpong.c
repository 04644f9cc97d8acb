/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workload pingpong: request/echo over N connections, AF_UNIX or loopback TCP,
 * 64 B or 1 KiB messages, one request in flight per connection. Client and server ends are
 * served by the same loop on the same thread, for every backend alike. The client stamps each
 * request with the time it was sent; the latency is taken when the echo is back in full.
 * Unit: one request (request read by the server, echoed, echo read by the client).
 *
 * On a backend that does the I/O (urpoll-ring) both ends take received buffers instead of
 * reading and queue their sends instead of writing; the messages are the same.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

struct pp_run;

struct pp_end {
	struct pp_run *run;
	struct bench_watch *w;
	int fd;
	bool client;
	unsigned off;	 /* bytes of the current message read so far */
	uint64_t served; /* client: requests completed */
	char *buf;	 /* one message */
};

struct pp_run {
	const struct bench_stream *stream; /* the backend's I/O, or NULL: read(2), write(2) */
	size_t size;
	uint64_t issued, done, target, bytes;
	struct hist *lat;
	int err;
	char *sendbuf;
	struct pp_end *ends; /* ends[2i] client, ends[2i + 1] server */
};

/* Send one whole message on e: write(2), or queued on a backend that does the I/O. */
static int pp_write(struct pp_run *pr, struct pp_end *e, const char *msg, const char *what)
{
	ssize_t n;
	int ret;

	if (pr->stream) {
		ret = pr->stream->send(e->w, msg, pr->size);
		return ret < 0 ? bench_fail(ret, what) : 0;
	}
	n = write(e->fd, msg, pr->size);
	/* One message in flight per connection never fills a socket buffer. */
	return n == (ssize_t)pr->size ? 0 : bench_fail(n < 0 ? -errno : -EIO, what);
}

static int pp_send(struct pp_run *pr, struct pp_end *e)
{
	uint64_t t = now_ns();
	int ret;

	memcpy(pr->sendbuf, &t, sizeof(t));
	ret = pp_write(pr, e, pr->sendbuf, "request write");
	if (ret == 0)
		pr->issued++;
	return ret;
}

/* A whole message has come to e: msg, in e->buf or where a backend received it. */
static int pp_message(struct pp_run *pr, struct pp_end *e, const char *msg)
{
	uint64_t sent;

	if (!e->client)
		return pp_write(pr, e, msg, "echo write");
	memcpy(&sent, msg, sizeof(sent));
	if (pr->lat)
		hist_add(pr->lat, now_ns() - sent);
	e->served++;
	pr->done++;
	return pr->issued < pr->target ? pp_send(pr, e) : 0;
}

static void pp_cb(void *arg, unsigned events)
{
	struct pp_end *e = arg;
	struct pp_run *pr = e->run;

	/* Edge-triggered contract: read until EAGAIN. */
	while (!pr->err) {
		ssize_t n = read(e->fd, e->buf + e->off, pr->size - e->off);

		if (n <= 0) {
			if (n == 0)
				pr->err = bench_fail(-EPIPE, "read: peer closed");
			else if (errno != EAGAIN)
				pr->err = bench_fail(-errno, "read");
			return;
		}
		pr->bytes += (uint64_t)n;
		e->off += (unsigned)n;
		if (e->off == pr->size) {
			e->off = 0;
			pr->err = pp_message(pr, e, e->buf);
		}
	}
}

/*
 * pp_cb() on a backend that does the I/O: take buffers until -EAGAIN. A buffer that holds a
 * whole message (the rule here: one message in flight per connection, and loopback delivers
 * it in one piece) is used where it lies: the server sends it back as it is, without a copy
 * (it is the backend's again once sent), the client reads its stamp. Pieces are gathered in
 * e->buf as read(2)'s are.
 */
static void pp_stream_cb(void *arg, unsigned events)
{
	struct pp_end *e = arg;
	struct pp_run *pr = e->run;
	const struct bench_stream *io = pr->stream;
	struct bench_rx rx;
	int ret;

	while (!pr->err) {
		ret = io->take(e->w, &rx);
		if (ret <= 0) {
			if (ret == 0)
				pr->err = bench_fail(-EPIPE, "take: peer closed");
			else if (ret != -EAGAIN)
				pr->err = bench_fail(ret, "take");
			return;
		}
		pr->bytes += rx.len;
		if (e->off == 0 && rx.len == pr->size && !e->client) {
			ret = io->send_rx(e->w, &rx);
			if (ret < 0) {
				io->release(&rx);
				pr->err = bench_fail(ret, "echo send");
			}
			continue;
		}
		if (e->off == 0 && rx.len == pr->size) {
			pr->err = pp_message(pr, e, rx.data);
			io->release(&rx);
			continue;
		}
		/* More than the message in flight: the peer broke the protocol. */
		if (rx.len > pr->size - e->off) {
			io->release(&rx);
			pr->err = bench_fail(-EPROTO, "take: more than one message");
			return;
		}
		memcpy(e->buf + e->off, rx.data, rx.len);
		e->off += (unsigned)rx.len;
		io->release(&rx);
		if (e->off == pr->size) {
			e->off = 0;
			pr->err = pp_message(pr, e, e->buf);
		}
	}
}

static void pp_fairness(const struct pp_run *pr, unsigned conns, struct run_result *res)
{
	res->conn_min = UINT64_MAX;
	res->conn_max = 0;
	for (unsigned i = 0; i < conns; i++) {
		uint64_t s = pr->ends[2 * i].served;

		if (s < res->conn_min)
			res->conn_min = s;
		if (s > res->conn_max)
			res->conn_max = s;
	}
}

static int pp_loop(const struct bench_backend *b, struct bench_loop *lp, struct pp_run *pr,
		   unsigned conns)
{
	int ret;

	for (unsigned i = 0; i < conns; i++) {
		ret = pp_send(pr, &pr->ends[2 * i]);
		if (ret < 0)
			return ret;
	}
	while (pr->done < pr->target) {
		ret = b->run_once(lp, -1);
		if (ret < 0)
			return bench_fail(ret, "run_once");
		if (pr->err)
			return pr->err;
	}
	return 0;
}

static int pp_run(enum backend be, bool tcp, size_t size, unsigned conns, uint64_t events,
		  struct run_result *res)
{
	const struct bench_backend *b = bench_backends[be];
	struct pp_run pr = { .size = size, .lat = res->lat };
	unsigned watched = BENCH_IN;
	bench_cb cb = pp_cb;
	unsigned nends = 2 * conns, added = 0;
	struct bench_loop *lp;
	struct run_clock clk;
	int *fds, ret;

	if (!b)
		return -EOPNOTSUPP;
	if (b->stream) {
		pr.stream = b->stream;
		watched |= BENCH_STREAM;
		cb = pp_stream_cb;
	}
	/* Every connection carries at least its first request. */
	pr.target = events < conns ? conns : events;
	fds = calloc(nends, sizeof(*fds));
	pr.ends = calloc(nends, sizeof(*pr.ends));
	pr.sendbuf = calloc(nends + 1, size);
	if (!fds || !pr.ends || !pr.sendbuf) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = pairs_open(fds, conns, tcp);
	if (ret < 0)
		goto out_free;
	ret = b->open(&lp, nends);
	if (ret < 0) {
		bench_fail(ret, "loop open");
		goto out_fds;
	}
	for (; added < nends; added++) {
		struct pp_end *e = &pr.ends[added];

		*e = (struct pp_end){ .run = &pr, .fd = fds[added], .client = added % 2 == 0,
				      .buf = pr.sendbuf + (added + 1) * size };
		ret = b->add(lp, e->fd, watched, cb, e, &e->w);
		if (ret < 0) {
			bench_fail(ret, "add");
			goto out_del;
		}
	}
	ret = run_clock_arm(&clk, b, lp);
	if (ret < 0)
		goto out_del;
	ret = pp_loop(b, lp, &pr, conns);
	run_clock_stop_loop(&clk, res, pr.done);
	res->bytes = pr.bytes;
	pp_fairness(&pr, conns, res);
out_del:
	while (added-- > 0)
		b->del(lp, pr.ends[added].w, false);
	b->close(lp);
out_fds:
	close_fds(fds, nends);
out_free:
	free(fds);
	free(pr.ends);
	free(pr.sendbuf);
	return ret;
}

static int pp_unix_64(enum backend be, unsigned n, uint64_t events, struct run_result *res)
{
	return pp_run(be, false, 64, n, events, res);
}

static int pp_unix_1k(enum backend be, unsigned n, uint64_t events, struct run_result *res)
{
	return pp_run(be, false, 1024, n, events, res);
}

static int pp_tcp_64(enum backend be, unsigned n, uint64_t events, struct run_result *res)
{
	return pp_run(be, true, 64, n, events, res);
}

static int pp_tcp_1k(enum backend be, unsigned n, uint64_t events, struct run_result *res)
{
	return pp_run(be, true, 1024, n, events, res);
}

const struct workload wl_pingpong[] = {
	{
		.name = "pingpong-unix-64",
		.what = "echo of 64 B requests over N AF_UNIX socketpairs; requests/s, CPU and "
			"latency per request, fairness",
		.unit = "request",
		.param_name = "N",
		.params = { 1, 16, 256, 4096 },
		.nparams = 4,
		.events_full = 200000,
		.events_quick = 10000,
		.events_smoke = 100,
		.run = pp_unix_64,
		.metric = METRIC_UNITS_PER_S,
	},
	{
		.name = "pingpong-unix-1k",
		.what = "the same with 1 KiB requests",
		.unit = "request",
		.param_name = "N",
		.params = { 1, 16, 256, 4096 },
		.nparams = 4,
		.events_full = 200000,
		.events_quick = 10000,
		.events_smoke = 100,
		.run = pp_unix_1k,
		.metric = METRIC_UNITS_PER_S,
	},
	{
		.name = "pingpong-tcp-64",
		.what = "echo of 64 B requests over N loopback TCP connections (TCP_NODELAY)",
		.unit = "request",
		.param_name = "N",
		.params = { 1, 16, 256, 4096 },
		.nparams = 4,
		.events_full = 200000,
		.events_quick = 10000,
		.events_smoke = 100,
		.run = pp_tcp_64,
		.metric = METRIC_UNITS_PER_S,
	},
	{
		.name = "pingpong-tcp-1k",
		.what = "the same with 1 KiB requests",
		.unit = "request",
		.param_name = "N",
		.params = { 1, 16, 256, 4096 },
		.nparams = 4,
		.events_full = 200000,
		.events_quick = 10000,
		.events_smoke = 100,
		.run = pp_tcp_1k,
		.metric = METRIC_UNITS_PER_S,
	},
};
const unsigned wl_pingpong_count = sizeof(wl_pingpong) / sizeof(wl_pingpong[0]);
