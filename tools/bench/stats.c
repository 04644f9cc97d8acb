/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: statistics of a cell's runs: per-unit series, their median and min-max spread,
 * and the ratios against epoll's medians.
 */
#include <math.h>
#include <stdlib.h>

#include "harness.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median, min and max of the finite values among n; NAN when there are none. */
static void summarize(const double *v, unsigned n, double *med, double *lo, double *hi)
{
	double s[MAX_RUNS];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (isfinite(v[i]))
			s[k++] = v[i];
	if (!k) {
		*med = *lo = *hi = NAN;
		return;
	}
	qsort(s, k, sizeof(*s), cmp_double);
	*med = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
	*lo = s[0];
	*hi = s[k - 1];
}

/* The value of series s for one run; NAN when the run does not fill it. */
static double run_value(const struct workload *wl, const struct run_rec *rr, enum series s)
{
	const struct run_result *r = &rr->r;
	double ev = (double)r->events;
	uint64_t cpu = r->server_cpu_ns ? r->server_cpu_ns : r->cpu_ns;

	switch (s) {
	case S_METRIC:
		if (wl->metric == METRIC_UNITS_PER_S)
			return ev * 1e9 / (double)r->wall_ns;
		if (wl->metric == METRIC_LAT_P50)
			return rr->p50 ? (double)rr->p50 : NAN;
		return (double)r->wall_ns / ev;
	case S_CPU:
		return (double)cpu / ev;
	case S_SYS:
		return bench_syscalls_counted() ? (double)r->syscalls / ev : NAN;
	case S_WAITS:
		return (double)r->waits / ev;
	case S_P50:
		return rr->p50 ? (double)rr->p50 : NAN;
	case S_P99:
		return rr->p99 ? (double)rr->p99 : NAN;
	case S_P999:
		return rr->p999 ? (double)rr->p999 : NAN;
	case S_CONN_MIN:
		return r->conn_max ? (double)r->conn_min : NAN;
	case S_CONN_MAX:
		return r->conn_max ? (double)r->conn_max : NAN;
	case S_RSS:
		return r->rss_kb ? (double)r->rss_kb : NAN;
	case S_INSTR:
		return bench_opt.cg_dir ? rr->instr / ev : NAN;
	case S_EARLY:
		return r->fired ? (double)r->early / (double)r->fired : NAN;
	case S_EARLIEST:
		return r->early ? (double)r->earliest_ns : NAN;
	default:
		return NAN;
	}
}

static void cell_summary(const struct cell *c, struct summary *sm)
{
	double v[MAX_RUNS];

	for (int s = 0; s < S_COUNT; s++) {
		for (unsigned i = 0; i < c->nruns; i++)
			v[i] = run_value(c->wl, &c->runs[i], (enum series)s);
		summarize(v, c->nruns, &sm->med[s], &sm->lo[s], &sm->hi[s]);
	}
	sm->ratio = sm->cpu_ratio = NAN;
}

void row_summaries(const struct cell *row, struct summary *sm)
{
	const struct summary *base = row[BE_EPOLL].status == CELL_OK ? &sm[BE_EPOLL] : NULL;

	for (int be = 0; be < BE_COUNT; be++)
		if (row[be].status == CELL_OK)
			cell_summary(&row[be], &sm[be]);
	for (int be = 0; be < BE_COUNT; be++) {
		if (row[be].status != CELL_OK || !base)
			continue;
		sm[be].ratio = sm[be].med[S_METRIC] / base->med[S_METRIC];
		sm[be].cpu_ratio = sm[be].med[S_CPU] / base->med[S_CPU];
	}
}
