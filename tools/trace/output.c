/* SPDX-License-Identifier: MIT */
/*
 * urpoll-trace: the output. Each interval, the counts and the two log2 histograms of that
 * interval (since attach with --cumulative) and their rate over it, as text or as one JSON
 * object (-j), with -T the wall-clock time; with --events, a line per stale rejection. Both
 * formats print the fields of struct urp_trace_stats from the same tables, in the same order.
 *
 * Per interval by difference, not by clearing: the maps always hold the totals since attach,
 * and an interval is the totals now minus the totals at the end of the previous one.
 * libbpf-tools' runqlat and biolatency instead delete their histogram entries after printing;
 * clearing from user space races with the BPF side: a hit between the read and the write of
 * zeros is lost, while the library's own counters keep it, and the counts must equal the
 * library's. Counters only grow, so a difference loses
 * nothing, the intervals add up exactly to the totals, and `bpftool map dump` of urp_stats
 * (pinned or not) shows the same totals as --cumulative.
 */
#include <stdio.h>
#include <time.h>

#include "trace.h"

#define STARS_MAX 40

/* The counters of struct urp_trace_stats; rate: also shown per second in the text. */
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

/*
 * now - before, word by word: every field of the maps' values is a __u64 that only grows
 * (attach.c sums the CPUs the same way), so this is each counter's and each slot's increase.
 */
static void diff_words(const void *now, const void *before, void *out, size_t size)
{
	const __u64 *a = now, *b = before;
	__u64 *d = out;

	for (size_t i = 0; i < size / sizeof(__u64); i++)
		d[i] = a[i] - b[i];
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

/* What one interval prints: the counts it shows (of the interval, or since attach with
 * --cumulative) and the interval's increase, for the rates. */
struct interval_view {
	struct urp_trace_stats shown, growth;
	struct urp_trace_uring uring_shown, uring_growth;
	unsigned long events_read;
	double elapsed_s, dt;
	const char *clock; /* -T: "HH:MM:SS", else NULL */
	bool final;
};

static void json_interval(const struct tracer *t, const struct interval_view *v)
{
	size_t i;

	printf("{\"type\":\"interval\",\"interval\":%lu,\"final\":%s,\"cumulative\":%s,",
	       t->intervals, v->final ? "true" : "false", env.cumulative ? "true" : "false");
	if (v->clock)
		printf("\"time\":\"%s\",", v->clock);
	printf("\"elapsed_s\":%.3f,\"interval_s\":%.3f,\"pid\":%d,\"lib\":", v->elapsed_s, v->dt,
	       env.pid);
	json_string(t->lib);
	for (i = 0; i < COUNT(counters); i++)
		printf(",\"%s\":%llu", counters[i].name, counter_of(&v->shown, &counters[i]));
	if (env.events)
		printf(",\"events_read\":%lu", v->events_read);
	if (env.io_uring)
		printf(",\"io_uring\":{\"completions\":%llu,\"cqe_overflows\":%llu}",
		       (unsigned long long)v->uring_shown.completions,
		       (unsigned long long)v->uring_shown.cqe_overflows);
	for (i = 0; i < COUNT(histograms); i++)
		json_hist(histograms[i].name, slots_of(&v->shown, &histograms[i]),
			  histograms[i].slots);
	printf("}\n");
}

/* As libbpf-tools: a blank line, with -T the time alone on a line ("%-8s"), then the report. */
static void text_interval(const struct tracer *t, const struct interval_view *v)
{
	char who[32];
	size_t i;

	printf("\n");
	if (v->clock)
		printf("%-8s\n", v->clock);
	if (env.pid)
		snprintf(who, sizeof(who), "pid %d", env.pid);
	else
		snprintf(who, sizeof(who), "all processes");
	if (env.cumulative)
		printf("%s, since attach (%.1f s)\n", who, v->elapsed_s);
	else
		printf("%s, interval %lu (%.1f s)\n", who, t->intervals, v->dt);
	for (i = 0; i < COUNT(counters); i++)
		printf("%s%s %llu", i ? "  " : "", counters[i].name,
		       counter_of(&v->shown, &counters[i]));
	printf("\nper second: ");
	for (i = 0; i < COUNT(counters); i++)
		if (counters[i].rate)
			printf("  %.0f %s", (double)counter_of(&v->growth, &counters[i]) / v->dt,
			       counters[i].name);
	printf("\n");
	if (env.io_uring)
		printf("io_uring:     completions %llu (%.0f/s)  cqe_overflows %llu\n",
		       (unsigned long long)v->uring_shown.completions,
		       (double)v->uring_growth.completions / v->dt,
		       (unsigned long long)v->uring_shown.cqe_overflows);
	for (i = 0; i < COUNT(histograms); i++)
		print_log2_hist(slots_of(&v->shown, &histograms[i]), histograms[i].slots,
				histograms[i].label);
}

void print_interval(struct tracer *t, bool final)
{
	struct urp_trace_uring uring;
	struct urp_trace_stats tot;
	struct interval_view v = { .final = final };
	struct timespec now;
	char clock[16];
	time_t wall;

	read_totals(t, &tot, &uring);
	clock_gettime(CLOCK_MONOTONIC, &now);
	v.dt = seconds_between(&t->last, &now);
	if (v.dt <= 0)
		v.dt = 1e-9;
	v.elapsed_s = seconds_between(&t->start, &now);
	t->intervals++;
	if (env.timestamp) {
		wall = time(NULL);
		strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&wall));
		v.clock = clock;
	}
	diff_words(&tot, &t->prev, &v.growth, sizeof(tot));
	diff_words(&uring, &t->prev_uring, &v.uring_growth, sizeof(uring));
	if (env.cumulative) {
		v.shown = tot;
		v.uring_shown = uring;
		v.events_read = t->events_read;
	} else {
		v.shown = v.growth;
		v.uring_shown = v.uring_growth;
		v.events_read = t->events_read - t->prev_events_read;
	}
	if (env.json)
		json_interval(t, &v);
	else
		text_interval(t, &v);
	fflush(stdout);
	t->prev = tot;
	t->prev_uring = uring;
	t->prev_events_read = t->events_read;
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
