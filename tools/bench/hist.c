/* SPDX-License-Identifier: MIT */
/*
 * hist: the latency histogram of urpoll-bench, HDR-style (log-linear).
 *
 * Values below 64 ns have a bucket each. Above, each power-of-two range [2^e, 2^(e+1)) is split
 * into 64 linear sub-buckets of width 2^(e-6), so a bucket is never wider than 1/64 of the
 * values it holds. The 42 ranges reach 2^47 ns (39 hours); anything larger lands in the last
 * bucket, and max keeps the exact largest value.
 *
 *   index = v                                     for v < 64
 *   index = (e - 5) * 64 + (v >> (e - 6)) - 64    for v >= 64, e = floor(log2(v))
 *
 * A quantile reports the middle of its bucket, so it is within half a bucket (1/128) of a
 * value of that bucket, and never above max.
 */
#include <math.h>
#include <string.h>

#include "bench.h"

#define SUB_COUNT (1u << HIST_SUB_BITS)

_Static_assert(HIST_BUCKETS == (42 << HIST_SUB_BITS), "bucket layout assumes 42 ranges");

static unsigned bucket_of(uint64_t v)
{
	unsigned e, idx;

	if (v < SUB_COUNT)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	idx = (e - HIST_SUB_BITS + 1) * SUB_COUNT + (unsigned)(v >> (e - HIST_SUB_BITS)) -
	      SUB_COUNT;
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Lowest value of bucket idx, and its width. */
static uint64_t bucket_low(unsigned idx, uint64_t *width)
{
	unsigned range = idx / SUB_COUNT, sub = idx % SUB_COUNT, shift;

	if (range == 0) {
		*width = 1;
		return idx;
	}
	shift = range - 1;
	*width = 1ull << shift;
	return (uint64_t)(SUB_COUNT + sub) << shift;
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_add(struct hist *h, uint64_t ns)
{
	h->buckets[bucket_of(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, low, width, mid;
	unsigned i;

	if (!h->count)
		return 0;
	if (q >= 1.0)
		return h->max;
	/* Nearest rank: the ceil(q * count)-th smallest value, 1-based; q = 0 is the minimum. */
	rank = q > 0 ? (uint64_t)ceil(q * (double)h->count) : 1;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	if (i == HIST_BUCKETS)
		return h->max;
	low = bucket_low(i, &width);
	mid = low + width / 2;
	return mid < h->max ? mid : h->max;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		into->buckets[i] += from->buckets[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}
