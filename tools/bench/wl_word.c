/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workloads `word` and `word-flag`: the packed readiness word under cross-core
 * contention, without any driver or fd.
 *
 * word: a setter thread pinned to the first CPU calls urp_io_set_readiness(READABLE) on one
 * detached urp_io (urp_io_new) as fast as it can; a consumer pinned to the second CPU takes
 * urp_io_ready_event() snapshots and, for each one that shows READABLE, counts an event and
 * clears it with urp_io_clear_readiness(), which is refused (-ESTALE) when a Set landed after
 * the snapshot. A refused clear leaves the bit, so the next snapshot is the next event: every
 * event counted has its own tick. Unit: one event delivered to the consumer; the run also
 * reports the stale rejections.
 *
 * Both threads spin, so the wall time per event is only the handoff's cost while both CPUs are
 * theirs: on a loaded machine, while one thread is preempted the other spins for nothing. The
 * consumer therefore also times each batch of WORD_BATCH events into res->lat, and the table
 * leads with that per-event median, which a preempted batch moves only into the tail.
 *
 * word-flag: the same handoff through one plain atomic int, as the floor any readiness flag
 * pays for the cache line crossing cores: the setter stores 1 (release), the consumer takes it
 * with an exchange to 0. No tick, so nothing is refused (and a clear can never be told that it
 * raced a Set).
 *
 * Both are about the word, not about a backend: they run under urpoll only (the others are
 * n/a), and word-flag is a reference line, not a peer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <urpoll.h>

#include "bench.h"

#define CACHELINE 128
/* Events per timestamp: the clock read (about 20 ns) would otherwise be most of an event. */
#define WORD_BATCH 64

struct word_run {
	struct urp_io *io;
	uint64_t target;
	bool use_flag;
	struct hist *lat; /* ns per event of each batch, when the harness asks for latency */
	/* Each written by one side and read by the other: a line each, so the only line that
	 * bounces between the cores in the loop is the word (or the flag) itself. */
	_Alignas(CACHELINE) unsigned flag;
	_Alignas(CACHELINE) unsigned go;
	_Alignas(CACHELINE) unsigned done;
	_Alignas(CACHELINE) uint64_t delivered, stale;
};

static void wait_go(struct word_run *wr)
{
	/* Pairs with the release store of go in word_run(). */
	while (!__atomic_load_n(&wr->go, __ATOMIC_ACQUIRE))
		;
}

static void *setter_main(void *arg)
{
	struct word_run *wr = arg;

	wait_go(wr);
	/* Pairs with the consumer's release store of done. */
	while (!__atomic_load_n(&wr->done, __ATOMIC_ACQUIRE)) {
		if (wr->use_flag)
			__atomic_store_n(&wr->flag, 1, __ATOMIC_RELEASE);
		else
			urp_io_set_readiness(wr->io, URP_READABLE);
	}
	return NULL;
}

/* Takes one event if there is one: returns 1 when delivered, 2 when its clear was stale. */
static unsigned consume_one(struct word_run *wr)
{
	struct urp_event ev;

	if (wr->use_flag)
		/* Pairs with the setter's release store of flag. */
		return __atomic_load_n(&wr->flag, __ATOMIC_ACQUIRE) &&
		       __atomic_exchange_n(&wr->flag, 0, __ATOMIC_ACQ_REL);
	if (urp_io_ready_event(wr->io, URP_READABLE, &ev) < 0 || !(ev.ready & URP_READABLE))
		return 0;
	return urp_io_clear_readiness(wr->io, &ev) == -ESTALE ? 2 : 1;
}

static void *consumer_main(void *arg)
{
	struct word_run *wr = arg;
	uint64_t delivered = 0, stale = 0, batch_t0, t;
	unsigned got;

	wait_go(wr);
	batch_t0 = now_ns();
	while (delivered < wr->target) {
		got = consume_one(wr);
		if (!got)
			continue;
		delivered++;
		stale += got == 2;
		if (delivered % WORD_BATCH || !wr->lat)
			continue;
		t = now_ns();
		hist_add(wr->lat, (t - batch_t0) / WORD_BATCH);
		batch_t0 = t;
	}
	wr->delivered = delivered;
	wr->stale = stale;
	__atomic_store_n(&wr->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int word_run(bool use_flag, uint64_t events, struct run_result *res)
{
	struct run_clock clk;
	pthread_t setter, consumer;
	struct word_run *wr;
	int ret;

	wr = aligned_alloc(CACHELINE, sizeof(*wr));
	if (!wr)
		return bench_fail(-ENOMEM, "word");
	*wr = (struct word_run){ .target = events, .use_flag = use_flag, .lat = res->lat };
	ret = urp_io_new(&wr->io);
	if (ret < 0) {
		bench_fail(ret, "urp_io_new");
		goto out_free_run;
	}
	ret = bench_thread_on_cpu(&setter, 0, setter_main, wr);
	if (ret < 0) {
		bench_fail(ret, "setter thread");
		goto out_free_io;
	}
	ret = bench_thread_on_cpu(&consumer, 1, consumer_main, wr);
	if (ret < 0) {
		bench_fail(ret, "consumer thread");
		__atomic_store_n(&wr->done, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&wr->go, 1, __ATOMIC_RELEASE);
		pthread_join(setter, NULL);
		goto out_free_io;
	}
	run_clock_start(&clk);
	__atomic_store_n(&wr->go, 1, __ATOMIC_RELEASE);
	pthread_join(consumer, NULL);
	pthread_join(setter, NULL);
	run_clock_stop(&clk, res, wr->delivered, 0);
	res->stale = wr->stale;

out_free_io:
	urp_io_free(wr->io);
out_free_run:
	free(wr);
	return ret;
}

static int word_urp(enum backend be, unsigned param, uint64_t events, struct run_result *res)
{
	return be == BE_URPOLL ? word_run(false, events, res) : -EOPNOTSUPP;
}

static int word_flag(enum backend be, unsigned param, uint64_t events, struct run_result *res)
{
	return be == BE_URPOLL ? word_run(true, events, res) : -EOPNOTSUPP;
}

const struct workload wl_word[] = {
	{
		.name = "word",
		.what = "urp_io readiness word, Set on one CPU, snapshot+tick-checked clear on "
			"another: ns per event (median of 64-event batches), stale clears per event",
		.unit = "event",
		.param_name = "",
		.params = { 0 },
		.nparams = 1,
		.events_full = 5000000,
		.events_quick = 200000,
		.events_smoke = 10000,
		.run = word_urp,
		.metric = METRIC_LAT_P50,
	},
	{
		.name = "word-flag",
		.what = "reference for word: the same handoff through a plain atomic flag (store 1, "
			"exchange 0), no tick; a floor shown under urpoll, not a backend",
		.unit = "event",
		.param_name = "",
		.params = { 0 },
		.nparams = 1,
		.events_full = 5000000,
		.events_quick = 200000,
		.events_smoke = 10000,
		.run = word_flag,
		.metric = METRIC_LAT_P50,
	},
};
const unsigned wl_word_count = sizeof(wl_word) / sizeof(wl_word[0]);
