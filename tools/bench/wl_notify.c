/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workload notify: in-process readiness dispatch, no sockets. 1,024 eventfds on
 * one loop; each round the producer (the same thread, between rounds) writes 1 to K of them,
 * then the loop runs until the K readiness events are consumed. Unit: one event consumed.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

#define NOTIFY_FDS 1024

struct notify_run;

struct notify_end {
	struct notify_run *run;
	struct bench_watch *w;
	int fd;
};

struct notify_run {
	uint64_t consumed;
	int err;
	struct notify_end ends[NOTIFY_FDS];
};

static void notify_cb(void *arg, unsigned events)
{
	struct notify_end *e = arg;
	uint64_t val;

	/* Edge-triggered contract: read until EAGAIN. */
	while (read(e->fd, &val, sizeof(val)) == sizeof(val))
		e->run->consumed++;
	if (errno != EAGAIN && !e->run->err)
		e->run->err = bench_fail(-errno, "eventfd read");
}

/* Which eventfds a round makes ready: a window that moves by K each round, so every fd is
 * used and none is written twice in one round. */
static unsigned notify_pick(uint64_t round, unsigned k, unsigned j)
{
	return (unsigned)((round * k + j) % NOTIFY_FDS);
}

static int notify_rounds(const struct bench_backend *b, struct bench_loop *lp,
			 struct notify_run *nr, unsigned k, uint64_t rounds)
{
	const uint64_t one = 1;

	for (uint64_t round = 0; round < rounds; round++) {
		uint64_t goal = nr->consumed + k;

		for (unsigned j = 0; j < k; j++)
			if (write(nr->ends[notify_pick(round, k, j)].fd, &one, sizeof(one)) < 0)
				return bench_fail(-errno, "eventfd write");
		while (nr->consumed < goal) {
			int ret = b->run_once(lp, -1);

			if (ret < 0)
				return bench_fail(ret, "run_once");
			if (nr->err)
				return nr->err;
		}
	}
	return 0;
}

static int notify_run(enum backend be, unsigned k, uint64_t events, struct run_result *res)
{
	const struct bench_backend *b = bench_backends[be];
	struct bench_loop *lp;
	struct notify_run *nr;
	struct run_clock clk;
	unsigned i;
	int ret;

	/* A backend that does the I/O: its readiness loop is another's (bench.h). */
	if (!b || b->stream)
		return -EOPNOTSUPP;
	nr = calloc(1, sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	ret = b->open(&lp, NOTIFY_FDS);
	if (ret < 0) {
		free(nr);
		return bench_fail(ret, "loop open");
	}
	for (i = 0; i < NOTIFY_FDS; i++) {
		struct notify_end *e = &nr->ends[i];

		e->run = nr;
		e->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (e->fd < 0) {
			ret = bench_fail(-errno, "eventfd");
			goto out_del;
		}
		ret = b->add(lp, e->fd, BENCH_IN, notify_cb, e, &e->w);
		if (ret < 0) {
			bench_fail(ret, "add");
			close(e->fd);
			goto out_del;
		}
	}
	ret = run_clock_arm(&clk, b, lp);
	if (ret < 0)
		goto out_del;
	ret = notify_rounds(b, lp, nr, k, (events + k - 1) / k);
	run_clock_stop_loop(&clk, res, nr->consumed);
	res->bytes = nr->consumed * sizeof(uint64_t);
out_del:
	while (i-- > 0) {
		b->del(lp, nr->ends[i].w, false);
		close(nr->ends[i].fd);
	}
	b->close(lp);
	free(nr);
	return ret;
}

const struct workload wl_notify[] = {
	{
		.name = "notify",
		.what = "in-process readiness dispatch, no sockets: 1,024 eventfds, K made ready "
			"per round; ns per readiness event consumed",
		.unit = "event",
		.param_name = "K",
		.params = { 1, 16, 256 },
		.nparams = 3,
		.events_full = 200000,
		.events_quick = 20000,
		.events_smoke = 300,
		.run = notify_run,
		.metric = METRIC_NS_PER_UNIT,
	},
};
const unsigned wl_notify_count = sizeof(wl_notify) / sizeof(wl_notify[0]);
