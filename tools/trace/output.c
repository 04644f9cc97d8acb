/* SPDX-License-Identifier: MIT */
/*
 * urpoll-trace: the output. Each interval, the totals since attach, their rate over the
 * interval and the two log2 histograms, as text or as one JSON object (-j); with --events, a
 * line per stale rejection. Both formats print the fields of struct urp_trace_stats from the
 * same tables, in the same order.
 */
#include <stdio.h>
#include <time.h>

#include "trace.h"

#define STARS_MAX 40

/* The counters of struct urp_trace_stats; rate: also shown over the interval (the text's
 * "per second", the JSON's "delta"). */
static const struct counter {
	const char *name;
	size_t offset;
	bool rate;
} counters[] = {
	{ "stale_rejects", offsetof(struct urp_trace_stats, stale_rejects), true },
	{ "wake_batches", offsetof(struct urp_trace_stats, wake_batches), true },
	{ "wakes", offsetof(struct urp_trace_stats, wakes), true },
	{ "lost_events", offsetof(struct urp_trace_stats, lost_events), false },
};

/* The log2 histograms of struct urp_trace_stats. */
static const struct histogram {
	const char *name;  /* the JSON key */
	const char *label; /* the text's heading */
	size_t offset;
	int slots;
} histograms[] = {
	{ "batch_hist", "wakers/batch", offsetof(struct urp_trace_stats, batch_hist),
	  URP_TRACE_BATCH_SLOTS },
	{ "lag_hist", "stale lag (ticks)", offsetof(struct urp_trace_stats, lag_hist),
	  URP_TRACE_LAG_SLOTS },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static unsigned long long counter_of(const struct urp_trace_stats *s, const struct counter *c)
{
	return *(const __u64 *)((const char *)s + c->offset);
}

/* Its growth since the last interval. */
static unsigned long long delta_of(const struct tracer *t, const struct urp_trace_stats *s,
				   const struct counter *c)
{
	return counter_of(s, c) - counter_of(&t->prev, c);
}

static const __u64 *slots_of(const struct urp_trace_stats *s, const struct histogram *h)
{
	return (const __u64 *)((const char *)s + h->offset);
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Slot i of a log2 histogram: [2^i, 2^(i+1)-1], except slot 0: [0, 1]. */
static void slot_range(int i, unsigned long long *low, unsigned long long *high)
{
	*low = i ? 1ull << i : 0;
	*high = (1ull << (i + 1)) - 1;
}

static int last_used_slot(const __u64 *vals, int n)
{
	int i, last = -1;

	for (i = 0; i < n; i++)
		if (vals[i])
			last = i;
	return last;
}

/* libbpf-tools' print_log2_hist: 78 columns while counts fit in 8 digits. */
static void print_log2_hist(const __u64 *vals, int n, const char *val_type)
{
	unsigned long long low, high;
	int last = last_used_slot(vals, n), i, stars;
	__u64 max = 0;

	if (last < 0) {
		printf("%5s%-19s : none\n", "", val_type);
		return;
	}
	for (i = 0; i <= last; i++)
		if (vals[i] > max)
			max = vals[i];
	printf("%5s%-19s : count    distribution\n", "", val_type);
	for (i = 0; i <= last; i++) {
		slot_range(i, &low, &high);
		printf("%10llu -> %-10llu : %-8llu |", low, high, (unsigned long long)vals[i]);
		stars = (int)(vals[i] * STARS_MAX / max);
		/* A non-empty slot shows at least one star. */
		if (vals[i] && !stars)
			stars = 1;
		printf("%.*s%*s|\n", stars, "****************************************",
		       STARS_MAX - stars, "");
	}
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(const char *str)
{
	putchar('"');
	for (; *str; str++) {
		unsigned char c = (unsigned char)*str;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* The same slots as print_log2_hist(), as an array of {low, high, count}. */
static void json_hist(const char *name, const __u64 *vals, int n)
{
	unsigned long long low, high;
	int last = last_used_slot(vals, n), i;

	printf(",\"%s\":[", name);
	for (i = 0; i <= last; i++) {
		slot_range(i, &low, &high);
		printf("%s{\"low\":%llu,\"high\":%llu,\"count\":%llu}", i ? "," : "", low, high,
		       (unsigned long long)vals[i]);
	}
	printf("]");
}

static void json_interval(struct tracer *t, const struct urp_trace_stats *tot,
			  const struct urp_trace_uring *uring, const char *clock,
			  const struct timespec *now, double dt, bool final)
{
	const char *sep = "";
	size_t i;

	printf("{\"type\":\"interval\",\"time\":\"%s\",\"interval\":%lu,\"final\":%s,"
	       "\"elapsed_s\":%.3f,\"interval_s\":%.3f,\"pid\":%d,\"lib\":",
	       clock, t->intervals, final ? "true" : "false", seconds_between(&t->start, now), dt,
	       env.pid);
	json_string(t->lib);
	for (i = 0; i < COUNT(counters); i++)
		printf(",\"%s\":%llu", counters[i].name, counter_of(tot, &counters[i]));
	if (env.events)
		printf(",\"events_read\":%lu", t->events_read);
	printf(",\"delta\":{");
	for (i = 0; i < COUNT(counters); i++) {
		if (!counters[i].rate)
			continue;
		printf("%s\"%s\":%llu", sep, counters[i].name, delta_of(t, tot, &counters[i]));
		sep = ",";
	}
	printf("}");
	if (env.io_uring)
		printf(",\"io_uring\":{\"completions\":%llu,\"cqe_overflows\":%llu}",
		       (unsigned long long)uring->completions,
		       (unsigned long long)uring->cqe_overflows);
	for (i = 0; i < COUNT(histograms); i++)
		json_hist(histograms[i].name, slots_of(tot, &histograms[i]), histograms[i].slots);
	printf("}\n");
}

static void text_interval(struct tracer *t, const struct urp_trace_stats *tot,
			  const struct urp_trace_uring *uring, const char *clock,
			  const struct timespec *now, double dt)
{
	size_t i;

	if (env.pid)
		printf("\n%s  pid %d, since attach (%.1f s)\n", clock, env.pid,
		       seconds_between(&t->start, now));
	else
		printf("\n%s  all processes, since attach (%.1f s)\n", clock,
		       seconds_between(&t->start, now));
	for (i = 0; i < COUNT(counters); i++)
		printf("%s%s %llu", i ? "  " : "", counters[i].name, counter_of(tot, &counters[i]));
	printf("\nper second: ");
	for (i = 0; i < COUNT(counters); i++)
		if (counters[i].rate)
			printf("  %.0f %s", (double)delta_of(t, tot, &counters[i]) / dt,
			       counters[i].name);
	printf("\n");
	if (env.io_uring)
		printf("io_uring:     completions %llu (%.0f/s)  cqe_overflows %llu\n",
		       (unsigned long long)uring->completions,
		       (double)(uring->completions - t->prev_uring.completions) / dt,
		       (unsigned long long)uring->cqe_overflows);
	for (i = 0; i < COUNT(histograms); i++)
		print_log2_hist(slots_of(tot, &histograms[i]), histograms[i].slots,
				histograms[i].label);
}

void print_interval(struct tracer *t, bool final)
{
	struct urp_trace_uring uring;
	struct urp_trace_stats tot;
	struct timespec now;
	char clock[16];
	time_t wall;
	double dt;

	read_totals(t, &tot, &uring);
	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = seconds_between(&t->last, &now);
	if (dt <= 0)
		dt = 1e-9;
	t->intervals++;
	wall = time(NULL);
	strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&wall));
	if (env.json)
		json_interval(t, &tot, &uring, clock, &now, dt, final);
	else
		text_interval(t, &tot, &uring, clock, &now, dt);
	fflush(stdout);
	t->prev = tot;
	t->prev_uring = uring;
	t->last = now;
}

int print_event(void *ctx, void *data, size_t size)
{
	const struct urp_trace_event *ev = data;
	struct tracer *t = ctx;
	unsigned lag;

	if (size < sizeof(*ev))
		return 0;
	t->events_read++;
	lag = (ev->current_tick - ev->event_tick) & URP_TRACE_TICK_MASK;
	if (env.json)
		printf("{\"type\":\"stale_reject\",\"ts_ns\":%llu,\"pid\":%u,\"tid\":%u,"
		       "\"token\":\"0x%llx\",\"event_tick\":%u,\"current_tick\":%u,\"lag\":%u}\n",
		       (unsigned long long)ev->ts_ns, ev->pid, ev->tid,
		       (unsigned long long)ev->token, ev->event_tick, ev->current_tick, lag);
	else
		printf("stale_reject  ts %llu.%09llu  pid %u tid %u  token 0x%llx  tick %u -> %u "
		       "(lag %u)\n",
		       (unsigned long long)ev->ts_ns / 1000000000ull,
		       (unsigned long long)ev->ts_ns % 1000000000ull, ev->pid, ev->tid,
		       (unsigned long long)ev->token, ev->event_tick, ev->current_tick, lag);
	return 0;
}
