/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: side-by-side benchmarks of urpoll, raw epoll, libev, libevent and libuv.
 *
 * Each workload runs on each backend in the same invocation, interleaved (A B C D E A B ...),
 * one untimed warm-up each, then the timed runs; the table gives the median, the min-max
 * spread and the ratio against epoll. See usage() for the options.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <urpoll.h>
#include <valgrind/valgrind.h>

#include "bench.h"

#define MAX_RUNS 101
/* A run that has not finished after this long is a hang: SIGALRM ends the process. */
#define RUN_WATCHDOG_S	      120
#define CALLGRIND_WATCHDOG_S  3600
#define PROGRESS_PLAIN_NS     (10 * 1000000000ull)
#define CALLGRIND_DIR_ENV     "URPOLL_BENCH_CALLGRIND_DIR"

enum mode { MODE_FULL, MODE_QUICK, MODE_SMOKE };
static const char *const mode_names[] = { "full", "quick", "smoke" };

struct workload_table {
	const struct workload *wl;
	const unsigned *count;
};

static const struct workload_table tables[] = {
	{ wl_notify, &wl_notify_count }, { wl_pingpong, &wl_pingpong_count },
	{ wl_churn, &wl_churn_count },	 { wl_idle, &wl_idle_count },
	{ wl_wakeup, &wl_wakeup_count }, { wl_word, &wl_word_count },
};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* One timed run, with what the harness derives from it. */
struct run_rec {
	struct run_result r;
	uint64_t p50, p99, p999; /* 0: no latency measured */
	double instr;		 /* callgrind: user instructions (Ir) of the timed region */
};

enum cell_status { CELL_OK, CELL_NA, CELL_FAILED };

/* The runs of one (workload, parameter, backend). */
struct cell {
	const struct workload *wl;
	unsigned param;
	enum backend be;
	enum cell_status status;
	const char *why; /* n/a or failed: a few words */
	unsigned nruns;
	struct run_rec *runs;
};

/* Per-unit series of a cell, over its runs. */
enum series {
	S_METRIC,
	S_CPU,
	S_SYS,
	S_WAITS,
	S_P50,
	S_P99,
	S_P999,
	S_CONN_MIN,
	S_CONN_MAX,
	S_RSS,
	S_INSTR,
	S_COUNT
};

struct summary {
	double med[S_COUNT], lo[S_COUNT], hi[S_COUNT];
	double ratio, cpu_ratio; /* against epoll's medians; NAN without an epoll cell */
};

static struct opts {
	enum mode mode;
	unsigned runs;
	bool runs_set, callgrind, no_syscalls;
	bool backend_on[BE_COUNT];
	const char *json_path, *svg_path;
	/* Opened before anything runs (outputs_open()), written at the end. */
	FILE *json_file, *svg_file;
	const char *cg_dir; /* set in the process valgrind runs */
} opt;

static struct progress {
	bool tty;
	uint64_t t0, last_plain;
	unsigned done, total;
} prog_state;

static char syscalls_why[256];

/* ---- selection ---- */

static bool wl_matches(const struct workload *wl, const char *arg)
{
	size_t n = strlen(arg);

	/* A name, or a prefix ending at a '-' boundary: "pingpong" is every pingpong-* */
	return !strcmp(wl->name, arg) || (!strncmp(wl->name, arg, n) && wl->name[n] == '-');
}

static unsigned workloads_collect(const struct workload **out, char **args, int nargs,
				  int *bad)
{
	unsigned n = 0;

	*bad = -1;
	for (size_t t = 0; t < NTABLES; t++) {
		for (unsigned i = 0; i < *tables[t].count; i++) {
			const struct workload *wl = &tables[t].wl[i];
			bool take = nargs == 0;

			for (int a = 0; a < nargs && !take; a++)
				take = wl_matches(wl, args[a]);
			if (take)
				out[n++] = wl;
		}
	}
	for (int a = 0; a < nargs; a++) {
		bool found = false;

		for (unsigned i = 0; i < n && !found; i++)
			found = wl_matches(out[i], args[a]);
		if (!found) {
			*bad = a;
			return 0;
		}
	}
	return n;
}

static unsigned workloads_total(void)
{
	unsigned n = 0;

	for (size_t t = 0; t < NTABLES; t++)
		n += *tables[t].count;
	return n;
}

/* The comma-separated list of --backends (spelled opt_name); prints why it is bad. */
static int backends_parse(const char *opt_name, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	unsigned n = 0;
	int ret = 0;

	if (!copy) {
		fprintf(stderr, "%s: %s\n", bench_prog, strerror(ENOMEM));
		return -ENOMEM;
	}
	memset(opt.backend_on, 0, sizeof(opt.backend_on));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++) {
		int be;

		for (be = 0; be < BE_COUNT; be++)
			if (!strcmp(tok, bench_backend_names[be]))
				break;
		if (be == BE_COUNT) {
			fprintf(stderr, "%s: %s: unknown backend '%s' (see --help)\n", bench_prog,
				opt_name, tok);
			ret = -EINVAL;
			break;
		}
		opt.backend_on[be] = true;
	}
	if (!ret && !n) {
		fprintf(stderr, "%s: %s: no backend in '%s' (see --help)\n", bench_prog, opt_name,
			list);
		ret = -EINVAL;
	}
	free(copy);
	return ret;
}

/* ---- statistics ---- */

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
		return opt.cg_dir ? rr->instr / ev : NAN;
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

/* Summaries of a row of cells (one workload and parameter, every backend), with ratios. */
static void row_summaries(const struct cell *row, struct summary *sm)
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

/* ---- running ---- */

static void progress(const struct cell *c, int run, unsigned runs)
{
	uint64_t now = now_ns(), elapsed = now - prog_state.t0;
	double el = (double)elapsed / 1e9, est = 0;
	char what[32];

	if (prog_state.done)
		est = el / prog_state.done * prog_state.total;
	if (run < 0)
		snprintf(what, sizeof(what), "warm-up");
	else
		snprintf(what, sizeof(what), "run %d/%u", run + 1, runs);
	if (prog_state.tty) {
		fprintf(stderr, "\r\033[K%s %s=%u %s %s  %.0fs / ~%.0fs", c->wl->name,
			c->wl->param_name, c->param, bench_backend_names[c->be], what, el, est);
	} else if (now - prog_state.last_plain >= PROGRESS_PLAIN_NS) {
		prog_state.last_plain = now;
		fprintf(stderr, "%s: %s %s=%u %s %s, %.0f s of ~%.0f s\n", bench_prog, c->wl->name,
			c->wl->param_name, c->param, bench_backend_names[c->be], what, el, est);
	}
}

static void progress_clear(void)
{
	if (prog_state.tty)
		fprintf(stderr, "\r\033[K");
}

/* Callgrind's dumps of the last timed region: sum their "summary:" (or "totals:") Ir and
 * remove them. The dump at process exit is left for the parent to remove. */
static double callgrind_collect(void)
{
	DIR *d = opendir(opt.cg_dir);
	struct dirent *de;
	double total = 0;

	if (!d)
		return NAN;
	while ((de = readdir(d))) {
		char path[4096], line[512];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", opt.cg_dir, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long long ir;

			if (sscanf(line, "summary: %llu", &ir) == 1 ||
			    sscanf(line, "totals: %llu", &ir) == 1) {
				total += (double)ir;
				break;
			}
		}
		fclose(f);
		unlink(path);
	}
	closedir(d);
	return total;
}

static void run_fill(struct run_rec *rr, const struct run_result *res)
{
	rr->r = *res;
	if (res->lat && res->lat->count) {
		rr->p50 = hist_quantile(res->lat, 0.50);
		rr->p99 = hist_quantile(res->lat, 0.99);
		rr->p999 = hist_quantile(res->lat, 0.999);
	}
	if (opt.cg_dir)
		rr->instr = callgrind_collect();
}

/* One run of cell c (run < 0: the warm-up). Returns 0, or -errno with c marked. */
static int cell_run(struct cell *c, int run, unsigned runs, uint64_t events, struct hist *lat)
{
	struct run_result res = { .lat = lat };
	int ret;

	progress(c, run, runs);
	hist_reset(lat);
	alarm(opt.cg_dir ? CALLGRIND_WATCHDOG_S : RUN_WATCHDOG_S);
	ret = c->wl->run(c->be, c->param, events, &res);
	alarm(0);
	prog_state.done++;
	if (ret == -EOPNOTSUPP) {
		c->status = CELL_NA;
		c->why = "not supported";
		return ret;
	}
	if (ret < 0 || !res.events || !res.wall_ns) {
		progress_clear();
		fprintf(stderr, "%s: %s %s=%u on %s failed: %s\n", bench_prog, c->wl->name,
			c->wl->param_name, c->param, bench_backend_names[c->be],
			ret < 0 ? strerror(-ret) : "measured nothing");
		c->status = CELL_FAILED;
		c->why = "failed";
		return ret < 0 ? ret : -EIO;
	}
	if (run >= 0)
		run_fill(&c->runs[c->nruns++], &res);
	return 0;
}

static uint64_t wl_events(const struct workload *wl)
{
	if (opt.mode == MODE_SMOKE)
		return wl->events_smoke;
	return opt.mode == MODE_QUICK ? wl->events_quick : wl->events_full;
}

/* Interleaved runs of one row: warm-up of each backend, then run i of each, ... */
static void row_run(struct cell *row, unsigned runs, bool warmup, struct hist *lat)
{
	uint64_t events = wl_events(row[0].wl);

	for (int r = warmup ? -1 : 0; r < (int)runs; r++)
		for (int be = 0; be < BE_COUNT; be++)
			if (row[be].status == CELL_OK && opt.backend_on[be])
				cell_run(&row[be], r, runs, r < 0 ? events / 10 + 1 : events, lat);
	progress_clear();
}

/* ---- output ---- */

static void fmt_num(char *buf, size_t len, double v)
{
	if (!isfinite(v))
		snprintf(buf, len, "-");
	else if (fabs(v) >= 100000)
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 100)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.3g", v);
}

static void fmt_ns(char *buf, size_t len, double ns)
{
	if (!isfinite(ns))
		snprintf(buf, len, "-");
	else if (ns < 1e3)
		snprintf(buf, len, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2fms", ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", ns / 1e9);
}

static void fmt_metric(char *buf, size_t len, const struct workload *wl, double v)
{
	if (wl->metric == METRIC_LAT_P50)
		fmt_ns(buf, len, v);
	else
		fmt_num(buf, len, v);
}

static void metric_label(const struct workload *wl, char *buf, size_t len)
{
	if (wl->metric == METRIC_UNITS_PER_S)
		snprintf(buf, len, "%ss/s", wl->unit);
	else if (wl->metric == METRIC_LAT_P50)
		snprintf(buf, len, "p50 latency");
	else
		snprintf(buf, len, "ns/%s", wl->unit);
}

/* Which optional column groups a workload's cells fill. */
struct columns {
	bool lat, conn, rss, instr;
};

static void columns_of(const struct cell *cells, unsigned n, struct columns *col)
{
	*col = (struct columns){ .instr = opt.cg_dir != NULL };
	for (unsigned i = 0; i < n; i++) {
		for (unsigned r = 0; r < cells[i].nruns; r++) {
			col->lat |= cells[i].runs[r].p50 != 0;
			col->conn |= cells[i].runs[r].r.conn_max != 0;
			col->rss |= cells[i].runs[r].r.rss_kb != 0;
		}
	}
}

static void print_header(const struct workload *wl, const struct columns *col)
{
	char label[48];

	metric_label(wl, label, sizeof(label));
	printf("\n%s: %s (%s is better); x epoll = backend / epoll\n", wl->name, label,
	       wl->metric == METRIC_UNITS_PER_S ? "higher" : "lower");
	printf("%6s %-8s %11s %23s %7s %10s %7s %7s %7s", wl->param_name, "backend", label,
	       "spread min-max", "x epoll", "cpu ns/u", "x epoll", "sys/u", "wait/u");
	if (col->lat)
		printf(" %9s %9s %9s", "p50", "p99", "p99.9");
	if (col->conn)
		printf(" %15s", "conn min/max");
	if (col->rss)
		printf(" %9s", "rss KiB");
	if (col->instr)
		printf(" %10s", "Ir/u");
	printf("\n");
}

static void print_row(const struct cell *c, const struct summary *sm, const struct columns *col)
{
	char m[32], lo[32], hi[32], spread[64], cpu[32], sys[32], wt[32], a[32], b[32], x[64];

	printf("%6u %-8s", c->param, bench_backend_names[c->be]);
	if (c->status != CELL_OK) {
		printf(" %11s   (%s)\n", "n/a", c->why);
		return;
	}
	fmt_metric(m, sizeof(m), c->wl, sm->med[S_METRIC]);
	fmt_metric(lo, sizeof(lo), c->wl, sm->lo[S_METRIC]);
	fmt_metric(hi, sizeof(hi), c->wl, sm->hi[S_METRIC]);
	snprintf(spread, sizeof(spread), "%s-%s", lo, hi);
	fmt_num(cpu, sizeof(cpu), sm->med[S_CPU]);
	fmt_num(sys, sizeof(sys), sm->med[S_SYS]);
	fmt_num(wt, sizeof(wt), sm->med[S_WAITS]);
	if (isfinite(sm->ratio))
		snprintf(a, sizeof(a), "%.2f", sm->ratio);
	else
		snprintf(a, sizeof(a), "-");
	if (isfinite(sm->cpu_ratio))
		snprintf(b, sizeof(b), "%.2f", sm->cpu_ratio);
	else
		snprintf(b, sizeof(b), "-");
	printf(" %11s %23s %7s %10s %7s %7s %7s", m, spread, a, cpu, b, sys, wt);
	if (col->lat) {
		fmt_ns(a, sizeof(a), sm->med[S_P50]);
		fmt_ns(b, sizeof(b), sm->med[S_P99]);
		fmt_ns(x, sizeof(x), sm->med[S_P999]);
		printf(" %9s %9s %9s", a, b, x);
	}
	if (col->conn) {
		snprintf(x, sizeof(x), "%.0f/%.0f", sm->med[S_CONN_MIN], sm->med[S_CONN_MAX]);
		printf(" %15s", x);
	}
	if (col->rss) {
		fmt_num(a, sizeof(a), sm->med[S_RSS]);
		printf(" %9s", a);
	}
	if (col->instr) {
		fmt_num(a, sizeof(a), sm->med[S_INSTR]);
		printf(" %10s", a);
	}
	printf("\n");
}

static void json_num(FILE *f, const char *key, double v, const char *sep)
{
	if (isfinite(v))
		fprintf(f, "\"%s\": %.6g%s", key, v, sep);
	else
		fprintf(f, "\"%s\": null%s", key, sep);
}

static void json_stat(FILE *f, const char *key, const struct summary *sm, enum series s,
		      const char *sep)
{
	fprintf(f, "\"%s\": {", key);
	json_num(f, "median", sm->med[s], ", ");
	json_num(f, "min", sm->lo[s], ", ");
	json_num(f, "max", sm->hi[s], "}");
	fprintf(f, "%s", sep);
}

static void json_run(FILE *f, const struct run_rec *rr, const char *sep)
{
	const struct run_result *r = &rr->r;

	fprintf(f,
		"        {\"events\": %llu, \"bytes\": %llu, \"wall_ns\": %llu, \"cpu_ns\": %llu, "
		"\"server_cpu_ns\": %llu, \"waits\": %llu, ",
		(unsigned long long)r->events, (unsigned long long)r->bytes,
		(unsigned long long)r->wall_ns, (unsigned long long)r->cpu_ns,
		(unsigned long long)r->server_cpu_ns, (unsigned long long)r->waits);
	if (bench_syscalls_counted())
		fprintf(f, "\"syscalls\": %llu, ", (unsigned long long)r->syscalls);
	else
		fprintf(f, "\"syscalls\": null, ");
	fprintf(f,
		"\"vcsw\": %llu, \"ivcsw\": %llu, \"conn_min\": %llu, \"conn_max\": %llu, "
		"\"rss_kb\": %llu, \"lat_p50_ns\": %llu, \"lat_p99_ns\": %llu, "
		"\"lat_p999_ns\": %llu, ",
		(unsigned long long)r->vcsw, (unsigned long long)r->ivcsw,
		(unsigned long long)r->conn_min, (unsigned long long)r->conn_max,
		(unsigned long long)r->rss_kb, (unsigned long long)rr->p50,
		(unsigned long long)rr->p99, (unsigned long long)rr->p999);
	json_num(f, "instructions", opt.cg_dir ? rr->instr : NAN, "}");
	fprintf(f, "%s\n", sep);
}

static void json_cell(FILE *f, const struct cell *c, const struct summary *sm, bool last)
{
	static const char *const status[] = { "ok", "n/a", "failed" };
	char label[48];

	metric_label(c->wl, label, sizeof(label));
	fprintf(f,
		"    {\"workload\": \"%s\", \"unit\": \"%s\", \"param_name\": \"%s\", "
		"\"param\": %u, \"backend\": \"%s\", \"status\": \"%s\",\n"
		"     \"metric\": \"%s\", \"higher_better\": %s, \"nruns\": %u",
		c->wl->name, c->wl->unit, c->wl->param_name, c->param, bench_backend_names[c->be],
		status[c->status], label, c->wl->metric == METRIC_UNITS_PER_S ? "true" : "false",
		c->nruns);
	if (c->status != CELL_OK)
		fprintf(f, ", \"reason\": \"%s\"", c->why);
	if (c->status == CELL_OK) {
		fprintf(f, ",\n     \"summary\": {");
		json_stat(f, "metric", sm, S_METRIC, ", ");
		json_num(f, "ratio_vs_epoll", sm->ratio, ",\n       ");
		json_stat(f, "cpu_ns_per_unit", sm, S_CPU, ", ");
		json_num(f, "cpu_ratio_vs_epoll", sm->cpu_ratio, ",\n       ");
		json_num(f, "syscalls_per_unit", sm->med[S_SYS], ", ");
		json_num(f, "waits_per_unit", sm->med[S_WAITS], ", ");
		json_num(f, "lat_p50_ns", sm->med[S_P50], ", ");
		json_num(f, "lat_p99_ns", sm->med[S_P99], ", ");
		json_num(f, "lat_p999_ns", sm->med[S_P999], ",\n       ");
		json_num(f, "conn_min", sm->med[S_CONN_MIN], ", ");
		json_num(f, "conn_max", sm->med[S_CONN_MAX], ", ");
		json_num(f, "rss_kb", sm->med[S_RSS], ", ");
		json_num(f, "instructions_per_unit", sm->med[S_INSTR], "},\n");
		fprintf(f, "     \"runs\": [\n");
		for (unsigned i = 0; i < c->nruns; i++)
			json_run(f, &c->runs[i], i + 1 < c->nruns ? "," : "");
		fprintf(f, "     ]");
	}
	fprintf(f, "}%s\n", last ? "" : ",");
}

/* ---- output files ---- */

/*
 * The file of --json or --svg (spelled opt_name), opened before anything runs: a path that
 * cannot be written fails at once, not after the benchmark. It is not truncated yet, so a run
 * that fails before its results leaves the file as it was.
 */
static FILE *output_open(const char *opt_name, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	FILE *f;

	if (fd < 0) {
		fprintf(stderr, "%s: %s: cannot open '%s': %s\n", bench_prog, opt_name, path,
			strerror(errno));
		return NULL;
	}
	f = fdopen(fd, "w");
	if (!f) {
		fprintf(stderr, "%s: %s: '%s': %s\n", bench_prog, opt_name, path, strerror(errno));
		close(fd);
	}
	return f;
}

/* Both output files, or a line on stderr and -1. */
static int outputs_open(void)
{
	if (opt.json_path && !(opt.json_file = output_open("--json", opt.json_path)))
		return -1;
	if (opt.svg_path && !(opt.svg_file = output_open("--svg", opt.svg_path)))
		return -1;
	return 0;
}

static void outputs_close(void)
{
	if (opt.json_file)
		fclose(opt.json_file);
	if (opt.svg_file)
		fclose(opt.svg_file);
	opt.json_file = opt.svg_file = NULL;
}

/* Empty a regular file before the results go in (a pipe or a device has nothing to empty). */
static int output_truncate(FILE *f)
{
	struct stat st;

	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fileno(f), 0) < 0)
		return -errno;
	return 0;
}

/* ---- the whole invocation ---- */

struct bench {
	const struct workload **wls;
	unsigned nwls;
	struct cell *cells; /* nrows * BE_COUNT, row-major */
	struct summary *sums;
	unsigned nrows;
	char title[160];
};

static int bench_alloc(struct bench *bn)
{
	unsigned runs = opt.runs, row = 0;

	for (unsigned w = 0; w < bn->nwls; w++)
		bn->nrows += bn->wls[w]->nparams;
	bn->cells = calloc((size_t)bn->nrows * BE_COUNT, sizeof(*bn->cells));
	bn->sums = calloc((size_t)bn->nrows * BE_COUNT, sizeof(*bn->sums));
	if (!bn->cells || !bn->sums)
		return -ENOMEM;
	for (unsigned w = 0; w < bn->nwls; w++) {
		for (unsigned p = 0; p < bn->wls[w]->nparams; p++, row++) {
			for (int be = 0; be < BE_COUNT; be++) {
				struct cell *c = &bn->cells[row * BE_COUNT + be];

				*c = (struct cell){ .wl = bn->wls[w], .param = bn->wls[w]->params[p],
						    .be = (enum backend)be };
				if (!bench_backends[be]) {
					c->status = CELL_NA;
					c->why = "not linked";
				}
				c->runs = calloc(runs, sizeof(*c->runs));
				if (!c->runs)
					return -ENOMEM;
				if (opt.backend_on[be] && c->status == CELL_OK)
					prog_state.total += runs + (opt.mode != MODE_SMOKE);
			}
		}
	}
	return 0;
}

static void bench_free(struct bench *bn)
{
	for (unsigned i = 0; bn->cells && i < bn->nrows * BE_COUNT; i++)
		free(bn->cells[i].runs);
	free(bn->cells);
	free(bn->sums);
}

/* Run every row of one workload, then print its table. Returns its first row's index. */
static unsigned bench_workload(struct bench *bn, unsigned w, unsigned row, struct hist *lat)
{
	const struct workload *wl = bn->wls[w];
	struct cell *first = &bn->cells[row * BE_COUNT];
	struct columns col;

	for (unsigned p = 0; p < wl->nparams; p++) {
		struct cell *r = &bn->cells[(row + p) * BE_COUNT];

		row_run(r, opt.runs, opt.mode != MODE_SMOKE && !opt.cg_dir, lat);
		row_summaries(r, &bn->sums[(row + p) * BE_COUNT]);
	}
	columns_of(first, wl->nparams * BE_COUNT, &col);
	print_header(wl, &col);
	for (unsigned p = 0; p < wl->nparams; p++)
		for (int be = 0; be < BE_COUNT; be++)
			if (opt.backend_on[be])
				print_row(&bn->cells[(row + p) * BE_COUNT + be],
					  &bn->sums[(row + p) * BE_COUNT + be], &col);
	fflush(stdout);
	return row + wl->nparams;
}

static int bench_json(const struct bench *bn)
{
	FILE *f = opt.json_file;
	unsigned n = 0, k = 0;
	int ret;

	opt.json_file = NULL;
	ret = output_truncate(f);
	if (ret < 0) {
		fclose(f);
		return bench_fail(ret, opt.json_path);
	}
	for (unsigned i = 0; i < bn->nrows * BE_COUNT; i++)
		n += opt.backend_on[bn->cells[i].be];
	fprintf(f, "{\n  \"tool\": \"urpoll-bench\",\n  \"title\": \"%s\",\n  \"mode\": \"%s\",\n"
		   "  \"runs\": %u,\n  \"callgrind\": %s,\n  \"syscalls_counted\": %s,\n"
		   "  \"backends\": [",
		bn->title, mode_names[opt.mode], opt.runs, opt.cg_dir ? "true" : "false",
		bench_syscalls_counted() ? "true" : "false");
	for (int be = 0, first = 1; be < BE_COUNT; be++) {
		if (!opt.backend_on[be])
			continue;
		fprintf(f, "%s\"%s\"", first ? "" : ", ", bench_backend_names[be]);
		first = 0;
	}
	fprintf(f, "],\n  \"workloads\": [");
	for (unsigned w = 0; w < bn->nwls; w++) {
		fprintf(f, "%s\n    {\"name\": \"%s\", \"unit\": \"%s\", \"params\": [",
			w ? "," : "", bn->wls[w]->name, bn->wls[w]->unit);
		for (unsigned p = 0; p < bn->wls[w]->nparams; p++)
			fprintf(f, "%s%u", p ? ", " : "", bn->wls[w]->params[p]);
		fprintf(f, "]}");
	}
	fprintf(f, "\n  ],\n  \"cells\": [\n");
	for (unsigned i = 0; i < bn->nrows * BE_COUNT; i++)
		if (opt.backend_on[bn->cells[i].be])
			json_cell(f, &bn->cells[i], &bn->sums[i], ++k == n);
	fprintf(f, "  ]\n}\n");
	ret = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	return ret < 0 ? bench_fail(ret, opt.json_path) : 0;
}

static int bench_svg(const struct bench *bn)
{
	unsigned cap = bn->nrows * BE_COUNT, n = 0;
	struct plot_point *pts = calloc(cap, sizeof(*pts));
	char(*labels)[48] = calloc(cap, sizeof(*labels));
	int ret = -ENOMEM;

	if (!pts || !labels)
		goto out_free;
	for (unsigned i = 0; i < cap; i++) {
		const struct cell *c = &bn->cells[i];
		const struct summary *sm = &bn->sums[i];

		if (!opt.backend_on[c->be] || c->status != CELL_OK)
			continue;
		metric_label(c->wl, labels[n], sizeof(labels[n]));
		pts[n] = (struct plot_point){
			.workload = c->wl->name,
			.param_name = c->wl->param_name,
			.param = c->param,
			.be = c->be,
			.metric = labels[n],
			.higher_better = c->wl->metric == METRIC_UNITS_PER_S,
			.median = sm->med[S_METRIC],
			.lo = sm->lo[S_METRIC],
			.hi = sm->hi[S_METRIC],
			.ratio = sm->ratio,
		};
		n++;
	}
	ret = output_truncate(opt.svg_file);
	if (ret == 0)
		ret = svg_write(opt.svg_file, pts, n, bn->title);
	if (fclose(opt.svg_file) && ret == 0)
		ret = -errno;
	opt.svg_file = NULL;
	if (ret < 0)
		bench_fail(ret, opt.svg_path);
out_free:
	free(pts);
	free(labels);
	return ret;
}

/* ---- callgrind: the parent starts valgrind on itself and waits ---- */

static int callgrind_parent(char **argv)
{
	char dir[] = "/tmp/urpoll-bench-cg.XXXXXX", outfile[64], cmd[96];
	int status = 0, nargs = 0;
	char **vargv;
	pid_t pid;

	if (!mkdtemp(dir)) {
		bench_fail(-errno, "mkdtemp");
		return 1;
	}
	snprintf(outfile, sizeof(outfile), "--callgrind-out-file=%s/callgrind.out", dir);
	while (argv[nargs])
		nargs++;
	vargv = calloc((size_t)nargs + 6, sizeof(*vargv));
	if (!vargv)
		return 1;
	vargv[0] = "valgrind";
	vargv[1] = "--tool=callgrind";
	/* Collected from the start but zeroed at each timed region's start and dumped at its
	 * end (run_clock): toggling instead would miss threads (callgrind's collect state is
	 * per thread). */
	vargv[2] = "--collect-atstart=yes";
	vargv[3] = outfile;
	vargv[4] = "--quiet";
	memcpy(&vargv[5], argv, (size_t)nargs * sizeof(*argv));
	setenv(CALLGRIND_DIR_ENV, dir, 1);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execvp("valgrind", vargv);
		fprintf(stderr, "%s: valgrind: %s (apt-get install valgrind)\n", bench_prog,
			strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = 1 << 8;
	free(vargv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s: could not remove %s\n", bench_prog, dir);
	/* Our own statuses pass through; valgrind's (127: not installed) or a signal are a
	 * runtime failure. */
	if (WIFEXITED(status) && WEXITSTATUS(status) <= 2)
		return WEXITSTATUS(status);
	return 1;
}

/* ---- main ---- */

static int usage(int status)
{
	FILE *f = status ? stderr : stdout;

	fprintf(f,
		"usage: %s [--quick|--smoke] [--runs N] [--backends LIST] [--json FILE]\n"
		"       [--svg FILE] [--callgrind] [--no-syscalls] [-h] [WORKLOAD...]\n\n"
		"Runs each workload on each backend in the same invocation, interleaved (urpoll\n"
		"epoll libev libevent libuv urpoll ...), one untimed warm-up each, then N timed runs\n"
		"(default 5), and prints the median, the min-max spread and the ratio against raw\n"
		"epoll (edge-triggered, batched epoll_wait, one epoll_ctl per add or delete).\n"
		"The server logic is the same code for every backend; only the readiness mechanism\n"
		"differs. In pingpong the client and server ends are served by the same loop on the\n"
		"same thread, for every backend alike.\n\n"
		"  --quick          a tenth (notify) or a twentieth (pingpong) of the events per run\n"
		"  --smoke          a few events, one run, no warm-up: checks that everything runs\n"
		"  --runs N         timed runs per cell (1..%d)\n"
		"  --backends LIST  comma-separated, default all: urpoll,epoll,libev,libevent,libuv\n"
		"  --json FILE      every cell, its per-run values and its summary (FILE is\n"
		"                   opened before the first run, written after the last)\n"
		"  --svg FILE       a plot of the medians with their spread, one panel per workload\n"
		"  --callgrind      re-run under valgrind --tool=callgrind, one run per cell, and\n"
		"                   report user instructions per unit (Ir/u; repeatable counts)\n"
		"  --no-syscalls    do not count syscalls\n"
		"  -h, --help       this text\n\n"
		"WORKLOAD is a name or a prefix: \"pingpong\" selects every pingpong-* variant;\n"
		"default: all of them.\n\nWorkloads:\n",
		bench_prog, MAX_RUNS);
	for (size_t t = 0; t < NTABLES; t++) {
		for (unsigned i = 0; i < *tables[t].count; i++) {
			const struct workload *wl = &tables[t].wl[i];

			fprintf(f, "  %-20s %s\n  %-20s ", wl->name, wl->what, "");
			/* Workloads without a parameter run it once, at 0: say nothing. */
			if (*wl->param_name) {
				fprintf(f, "%s =", wl->param_name);
				for (unsigned p = 0; p < wl->nparams; p++)
					fprintf(f, "%s %u", p ? "," : "", wl->params[p]);
				fprintf(f, "; ");
			}
			fprintf(f, "unit: %s\n", wl->unit);
		}
	}
	fprintf(f, "\nBackends:");
	for (int be = 0; be < BE_COUNT; be++)
		fprintf(f, " %s%s", bench_backend_names[be], bench_backends[be] ? "" : " (not built)");
	fprintf(f,
		"\n\nColumns: the main figure (median of the runs), its min-max spread and its ratio\n"
		"to epoll's median; cpu ns/u: user + system CPU of the process (getrusage), or of\n"
		"the serving thread or process when the workload separates it, per unit; sys/u:\n"
		"syscalls per unit; wait/u: io_uring_enter or epoll_wait (the peers' epoll_wait)\n"
		"per unit; p50/p99/p99.9: per-request latency; conn min/max: fewest and most\n"
		"requests served per connection in a run.\n\n"
		"Syscalls are counted by the kernel: a perf counter on the tracepoint\n"
		"raw_syscalls:sys_enter for this process and the threads and children it starts\n"
		"(needs root or perf_event_paranoid <= -1; tracefs is mounted at /sys/kernel/tracing\n"
		"when missing), read at the start and end of each timed region, so every syscall\n"
		"of the run counts (the workload's own reads and writes too), the harness's one\n"
		"closing read excepted. Without the tracepoint the column shows \"-\".\n"
		"\n"
		"EXAMPLES:\n"
		"    %s --quick                         # every workload, fewer events\n"
		"    %s --smoke                         # does everything run?\n"
		"    %s --runs 9 --json r.json --svg r.svg pingpong\n"
		"    %s --backends urpoll,epoll --callgrind notify\n"
		"\n"
		"Exit status: 0, 1 on a runtime error (a run failed, an output file cannot be\n"
		"written, no io_uring), 2 on bad usage.\n",
		bench_prog, bench_prog, bench_prog, bench_prog);
	return status;
}

static const struct option longopts[] = {
	{ "quick", no_argument, NULL, 'q' },	  { "smoke", no_argument, NULL, 's' },
	{ "runs", required_argument, NULL, 'r' }, { "backends", required_argument, NULL, 'b' },
	{ "json", required_argument, NULL, 'j' }, { "svg", required_argument, NULL, 'g' },
	{ "callgrind", no_argument, NULL, 'c' },  { "no-syscalls", no_argument, NULL, 'n' },
	{ "help", no_argument, NULL, 'h' },	  { NULL, 0, NULL, 0 },
};

/*
 * The long option getopt_long() has just returned with optarg, as the user spelled it (without
 * "=value"): from argv[optind - 1], or argv[optind - 2] when optarg was the next word.
 */
static const char *opt_spelled(char **argv)
{
	const char *token = optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1];
	static char name[64];

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(token, "="), token);
	return name;
}

/* After getopt_long() with ":" leading its optstring returned ':' or '?'. Prints one line;
 * returns 2, the exit status of bad usage. */
static int usage_error(int o, char **argv)
{
	const char *token = argv[optind - 1];
	bool flag = false;

	if (o == ':') {
		fprintf(stderr, "%s: %s needs an argument (see --help)\n", bench_prog, token);
		return 2;
	}
	/* "--smoke=1", an option that takes no argument given one: glibc leaves the option's
	 * val in optopt and its word in argv[optind - 1]. Otherwise a nonzero optopt is an
	 * unknown short option ("-x", perhaps in a group whose word optind has not passed), and
	 * 0 means an unknown or ambiguous long option, always a word of its own. */
	for (const struct option *lo = longopts; optopt && lo->name; lo++)
		flag |= lo->val == optopt && lo->has_arg == no_argument;
	if (flag && token[0] == '-' && token[1] == '-' && strchr(token, '='))
		fprintf(stderr, "%s: %.*s takes no argument (see --help)\n", bench_prog,
			(int)strcspn(token, "="), token);
	else if (optopt)
		fprintf(stderr, "%s: unknown option '-%c' (see --help)\n", bench_prog, optopt);
	else
		fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", bench_prog,
			(int)strcspn(token, "="), token);
	return 2;
}

/* Returns 0, or 2 after one line on stderr. */
static int parse_args(int argc, char **argv)
{
	const char *digits;
	unsigned long v;
	char *end;
	int o;

	opt.runs = 5;
	for (int be = 0; be < BE_COUNT; be++)
		opt.backend_on[be] = true;
	opterr = 0; /* one line of our own instead */
	while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (o) {
		case 'q':
			opt.mode = MODE_QUICK;
			break;
		case 's':
			opt.mode = MODE_SMOKE;
			break;
		case 'r':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (*optarg && !*end && !errno && optarg[0] != '-' && v >= 1 &&
			    v <= MAX_RUNS) {
				opt.runs = (unsigned)v;
				opt.runs_set = true;
				break;
			}
			digits = optarg + (optarg[0] == '-');
			if (*digits && strspn(digits, "0123456789") == strlen(digits))
				fprintf(stderr, "%s: %s: %s is out of range (1 to %d)\n",
					bench_prog, opt_spelled(argv), optarg, MAX_RUNS);
			else
				fprintf(stderr, "%s: %s: '%s' is not a number (1 to %d)\n",
					bench_prog, opt_spelled(argv), optarg, MAX_RUNS);
			return 2;
		case 'b':
			if (backends_parse(opt_spelled(argv), optarg) < 0)
				return 2;
			break;
		case 'j':
			opt.json_path = optarg;
			break;
		case 'g':
			opt.svg_path = optarg;
			break;
		case 'c':
			opt.callgrind = true;
			break;
		case 'n':
			opt.no_syscalls = true;
			break;
		case 'h':
			exit(usage(0));
		default:
			return usage_error(o, argv);
		}
	}
	if (opt.mode == MODE_SMOKE && !opt.runs_set)
		opt.runs = 1;
	return 0;
}

/* Raise the open-file soft limit to the hard one: pingpong-tcp at N = 4096 holds 8192 fds. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int print_banner(struct bench *bn)
{
	struct urp_driver_info info;
	struct urp_driver *drv;
	struct utsname un;
	int ret = urp_driver_new(&drv, NULL);

	if (ret < 0) {
		fprintf(stderr, "%s: urp_driver_new: %s\n", bench_prog, urp_strerror(ret));
		return ret;
	}
	urp_driver_info(drv, &info);
	urp_driver_free(drv);
	uname(&un);
	snprintf(bn->title, sizeof(bn->title),
		 "urpoll-bench: kernel %s, %ld CPUs online, urpoll tier %s, %u run%s (%s)%s",
		 un.release, sysconf(_SC_NPROCESSORS_ONLN), info.tier_name, opt.runs,
		 opt.runs == 1 ? "" : "s", mode_names[opt.mode], opt.cg_dir ? ", callgrind" : "");
	printf("%s\n", bn->title);
	if (opt.cg_dir)
		printf("syscall counts: off under callgrind (valgrind's own calls would count)\n");
	else if (opt.no_syscalls)
		printf("syscall counts: off (--no-syscalls)\n");
	else if (!bench_syscalls_counted())
		printf("syscall counts unavailable: %s\n", syscalls_why);
	else
		printf("syscall counts: tracepoint raw_syscalls:sys_enter, this process and its "
		       "threads\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct bench bn = { 0 };
	struct hist *lat = NULL;
	int bad, status;

	status = parse_args(argc, argv);
	if (status)
		return status;
	bn.wls = calloc(workloads_total(), sizeof(*bn.wls));
	if (!bn.wls) {
		fprintf(stderr, "%s: %s\n", bench_prog, strerror(ENOMEM));
		return 1;
	}
	bn.nwls = workloads_collect(bn.wls, argv + optind, argc - optind, &bad);
	if (bad >= 0) {
		fprintf(stderr, "%s: unknown workload '%s' (see --help)\n", bench_prog,
			argv[optind + bad]);
		free(bn.wls);
		return 2;
	}
	/* Every check of the command line before the first run (or valgrind) starts. */
	if (outputs_open() < 0) {
		outputs_close();
		free(bn.wls);
		return 1;
	}
	opt.cg_dir = getenv(CALLGRIND_DIR_ENV);
	if (opt.cg_dir && !RUNNING_ON_VALGRIND)
		opt.cg_dir = NULL;
	if (opt.callgrind && !opt.cg_dir) {
		/* The files are checked; the process under valgrind opens them again. */
		outputs_close();
		free(bn.wls);
		return callgrind_parent(argv);
	}
	if (opt.cg_dir)
		opt.runs = 1;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread starts: the counter is inherited only by threads started later. */
	if (!opt.no_syscalls && !opt.cg_dir)
		bench_syscalls_open(syscalls_why, sizeof(syscalls_why));
	lat = malloc(sizeof(*lat));
	if (!lat || bench_alloc(&bn) < 0 || print_banner(&bn) < 0) {
		status = 1;
		goto out_free;
	}
	prog_state.tty = isatty(STDERR_FILENO);
	prog_state.t0 = prog_state.last_plain = now_ns();
	for (unsigned w = 0, row = 0; w < bn.nwls; w++)
		row = bench_workload(&bn, w, row, lat);
	for (unsigned i = 0; i < bn.nrows * BE_COUNT; i++)
		if (bn.cells[i].status == CELL_FAILED && opt.backend_on[bn.cells[i].be])
			status = 1;
	if (opt.json_path && bench_json(&bn) < 0)
		status = 1;
	if (opt.svg_path && bench_svg(&bn) < 0)
		status = 1;
out_free:
	outputs_close();
	bench_free(&bn);
	free(bn.wls);
	free(lat);
	return status;
}
