// SPDX-License-Identifier: MIT
/*
 * bench_hist: the latency histogram of urpoll-bench (tools/bench/hist.c).
 *
 * bench.h promises that any quantile is within 1/64 of the true value (nearest rank: the
 * ceil(q * count)-th smallest sample), that max is exact, and that an empty histogram answers 0.
 * The true quantiles come from sorting the samples.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "bench.h"

static const double quantiles[] = { 0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1 };

static struct hist *hist_new(void)
{
	struct hist *h = malloc(sizeof(*h));

	cr_assert_not_null(h, "out of memory");
	hist_reset(h);
	return h;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* xorshift64*: a fixed sequence, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Every quantile of h against the sorted samples, within 1/64 of the true value. */
static void check_quantiles(const struct hist *h, uint64_t *v, size_t n)
{
	size_t i, rank;

	qsort(v, n, sizeof(*v), cmp_u64);
	cr_assert_eq(h->count, n, "count %llu, added %zu", (unsigned long long)h->count, n);
	cr_assert_eq(h->max, v[n - 1], "max %llu, largest sample %llu",
		     (unsigned long long)h->max, (unsigned long long)v[n - 1]);
	for (i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++) {
		double q = quantiles[i], truth, got, err;

		rank = q > 0 ? (size_t)ceil(q * (double)n) : 1;
		truth = (double)v[rank - 1];
		got = (double)hist_quantile(h, q);
		err = fabs(got - truth);
		cr_assert_leq(err, truth / 64, "q=%g: got %.0f, true %.0f (error %.4f%%)", q, got,
			      truth, truth > 0 ? 100 * err / truth : 0.0);
	}
}

Test(bench_hist, empty_answers_zero)
{
	struct hist *h = hist_new();
	size_t i;

	for (i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
		cr_assert_eq(hist_quantile(h, quantiles[i]), 0, "q=%g on an empty histogram",
			     quantiles[i]);
	cr_assert_eq(h->count, 0, "count of an empty histogram");
	cr_assert_eq(h->max, 0, "max of an empty histogram");
	free(h);
}

Test(bench_hist, small_values_are_exact)
{
	struct hist *h = hist_new();
	uint64_t v;

	for (v = 0; v < 64; v++) {
		hist_reset(h);
		hist_add(h, v);
		cr_assert_eq(hist_quantile(h, 0.5), v, "single sample %llu", (unsigned long long)v);
	}
	free(h);
}

Test(bench_hist, uniform_within_precision)
{
	struct hist *h = hist_new();
	size_t n = 100000, i;
	uint64_t *v = malloc(n * sizeof(*v));

	cr_assert_not_null(v, "out of memory");
	for (i = 0; i < n; i++) {
		v[i] = i + 1;
		hist_add(h, v[i]);
	}
	check_quantiles(h, v, n);
	free(v);
	free(h);
}

/* Latencies spanning nine decades, log-uniform, so every range of buckets is exercised. */
Test(bench_hist, log_uniform_within_precision)
{
	struct hist *h = hist_new();
	size_t n = 200000, i;
	uint64_t *v = malloc(n * sizeof(*v)), seed = 0x9e3779b97f4a7c15ull;

	cr_assert_not_null(v, "out of memory");
	for (i = 0; i < n; i++) {
		double u = (double)(rng_next(&seed) >> 11) / (double)(1ull << 53);

		v[i] = (uint64_t)pow(10.0, 9.0 * u);
		hist_add(h, v[i]);
	}
	check_quantiles(h, v, n);
	free(v);
	free(h);
}

/* A bimodal distribution: the tail quantiles must land in the slow mode. */
Test(bench_hist, bimodal_tail)
{
	struct hist *h = hist_new();
	size_t n = 10000, i;
	uint64_t *v = malloc(n * sizeof(*v)), seed = 42;

	cr_assert_not_null(v, "out of memory");
	for (i = 0; i < n; i++) {
		uint64_t jitter = rng_next(&seed) % 100;

		v[i] = i % 100 == 0 ? 5000000 + jitter * 1000 : 20000 + jitter;
		hist_add(h, v[i]);
	}
	check_quantiles(h, v, n);
	cr_assert_geq(hist_quantile(h, 0.995), 5000000 - 5000000 / 64, "p99.5 in the slow mode");
	cr_assert_leq(hist_quantile(h, 0.98), 20099 + 20099 / 64, "p98 in the fast mode");
	free(v);
	free(h);
}

Test(bench_hist, max_is_exact_and_caps_quantiles)
{
	struct hist *h = hist_new();
	uint64_t huge = 1ull << 60;

	hist_add(h, 1000);
	hist_add(h, 123456789);
	cr_assert_eq(h->max, 123456789, "max");
	cr_assert_eq(hist_quantile(h, 1.0), 123456789, "q=1 is max");
	cr_assert_leq(hist_quantile(h, 0.9), 123456789, "no quantile above max");
	/* Beyond the last range: clamped into the last bucket, max still exact. */
	hist_add(h, huge);
	cr_assert_eq(h->max, huge, "max beyond the bucket range");
	cr_assert_eq(hist_quantile(h, 1.0), huge, "q=1 beyond the bucket range");
	cr_assert_leq(hist_quantile(h, 0.9), huge, "no quantile above max");
	cr_assert_geq(hist_quantile(h, 0.9), 1ull << 46, "the huge sample is the largest bucket");
	free(h);
}

Test(bench_hist, quantiles_are_monotonic)
{
	struct hist *h = hist_new();
	uint64_t seed = 7, prev = 0, cur;
	unsigned i;

	for (i = 0; i < 50000; i++)
		hist_add(h, rng_next(&seed) % 10000000);
	for (i = 0; i <= 1000; i++) {
		cur = hist_quantile(h, i / 1000.0);
		cr_assert_geq(cur, prev, "q=%g gave %llu below q=%g's %llu", i / 1000.0,
			      (unsigned long long)cur, (i - 1) / 1000.0, (unsigned long long)prev);
		prev = cur;
	}
	free(h);
}

Test(bench_hist, merge_equals_adding_everything)
{
	struct hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *empty = hist_new();
	uint64_t seed = 1234, x;
	unsigned i;

	for (i = 0; i < 30000; i++) {
		x = rng_next(&seed) % (i < 15000 ? 1000000 : 50000000);
		hist_add(i < 15000 ? a : b, x);
		hist_add(all, x);
	}
	hist_merge(a, b);
	cr_assert_eq(a->count, all->count, "merged count");
	cr_assert_eq(a->max, all->max, "merged max");
	cr_assert_eq(memcmp(a->buckets, all->buckets, sizeof(a->buckets)), 0, "merged buckets");
	cr_assert_eq(hist_quantile(a, 0.99), hist_quantile(all, 0.99), "merged p99");
	/* Into an empty one: a copy. */
	hist_merge(empty, all);
	cr_assert_eq(memcmp(empty, all, sizeof(*all)), 0, "merge into an empty histogram");
	/* From an empty one: unchanged. */
	hist_reset(b);
	hist_merge(all, b);
	cr_assert_eq(memcmp(empty, all, sizeof(*all)), 0, "merge of an empty histogram");
	free(a);
	free(b);
	free(all);
	free(empty);
}

Test(bench_hist, reset_empties)
{
	struct hist *h = hist_new();

	hist_add(h, 77);
	hist_add(h, 1u << 20);
	hist_reset(h);
	cr_assert_eq(h->count, 0, "count after reset");
	cr_assert_eq(h->max, 0, "max after reset");
	cr_assert_eq(hist_quantile(h, 0.5), 0, "quantile after reset");
	hist_add(h, 5);
	cr_assert_eq(hist_quantile(h, 1.0), 5, "a sample after reset");
	free(h);
}
