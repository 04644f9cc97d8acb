/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: the results: the table on stdout after each workload, and at the end the
 * files of --json (every cell, its runs and its summary) and --svg (svg.c draws the plot).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

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
	bool lat, conn, rss, instr, early;
};

static void columns_of(const struct cell *cells, unsigned n, struct columns *col)
{
	*col = (struct columns){ .instr = bench_opt.cg_dir != NULL };
	for (unsigned i = 0; i < n; i++) {
		for (unsigned r = 0; r < cells[i].nruns; r++) {
			col->lat |= cells[i].runs[r].p50 != 0;
			col->conn |= cells[i].runs[r].r.conn_max != 0;
			col->rss |= cells[i].runs[r].r.rss_kb != 0;
			col->early |= cells[i].runs[r].r.fired != 0;
		}
	}
}

static void print_header(const struct workload *wl, const struct columns *col)
{
	char label[48];

	metric_label(wl, label, sizeof(label));
	printf("\n%s: %s (%s is better); x epoll = backend / epoll\n", wl->name, label,
	       wl->metric == METRIC_UNITS_PER_S ? "higher" : "lower");
	printf("%6s %-11s %11s %23s %7s %10s %7s %7s %7s", wl->param_name, "backend", label,
	       "spread min-max", "x epoll", "cpu ns/u", "x epoll", "sys/u", "wait/u");
	if (col->lat)
		printf(" %9s %9s %9s", "p50", "p99", "p99.9");
	if (col->early)
		printf(" %6s %9s", "early", "earliest");
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

	printf("%6u %-11s", c->param, bench_backend_names[c->be]);
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
	if (col->early) {
		if (isfinite(sm->med[S_EARLY]))
			snprintf(a, sizeof(a), "%.1f%%", 100 * sm->med[S_EARLY]);
		else
			snprintf(a, sizeof(a), "-");
		fmt_ns(b, sizeof(b), sm->med[S_EARLIEST]);
		printf(" %6s %9s", a, b);
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
		"\"lat_p999_ns\": %llu, \"fired\": %llu, \"early\": %llu, \"earliest_ns\": %llu, ",
		(unsigned long long)r->vcsw, (unsigned long long)r->ivcsw,
		(unsigned long long)r->conn_min, (unsigned long long)r->conn_max,
		(unsigned long long)r->rss_kb, (unsigned long long)rr->p50,
		(unsigned long long)rr->p99, (unsigned long long)rr->p999,
		(unsigned long long)r->fired, (unsigned long long)r->early,
		(unsigned long long)r->earliest_ns);
	json_num(f, "instructions", bench_opt.cg_dir ? rr->instr : NAN, "}");
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
		json_num(f, "early_fraction", sm->med[S_EARLY], ", ");
		json_num(f, "earliest_ns", sm->med[S_EARLIEST], ",\n       ");
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

int outputs_open(void)
{
	struct bench_opts *o = &bench_opt;

	if (o->json_path && !(o->json_file = output_open("--json", o->json_path)))
		return -1;
	if (o->svg_path && !(o->svg_file = output_open("--svg", o->svg_path)))
		return -1;
	return 0;
}

void outputs_close(void)
{
	if (bench_opt.json_file)
		fclose(bench_opt.json_file);
	if (bench_opt.svg_file)
		fclose(bench_opt.svg_file);
	bench_opt.json_file = bench_opt.svg_file = NULL;
}

/* Empty a regular file before the results go in (a pipe or a device has nothing to empty). */
static int output_truncate(FILE *f)
{
	struct stat st;

	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fileno(f), 0) < 0)
		return -errno;
	return 0;
}

void report_table(const struct bench *bn, unsigned row)
{
	const struct cell *first = &bn->cells[row * BE_COUNT];
	const struct workload *wl = first->wl;
	struct columns col;

	columns_of(first, wl->nparams * BE_COUNT, &col);
	print_header(wl, &col);
	for (unsigned p = 0; p < wl->nparams; p++)
		for (int be = 0; be < BE_COUNT; be++)
			if (bench_opt.backend_on[be])
				print_row(&bn->cells[(row + p) * BE_COUNT + be],
					  &bn->sums[(row + p) * BE_COUNT + be], &col);
	fflush(stdout);
}

int report_json(const struct bench *bn)
{
	FILE *f = bench_opt.json_file;
	unsigned n = 0, k = 0;
	int ret;

	bench_opt.json_file = NULL;
	ret = output_truncate(f);
	if (ret < 0) {
		fclose(f);
		return bench_fail(ret, bench_opt.json_path);
	}
	for (unsigned i = 0; i < bn->nrows * BE_COUNT; i++)
		n += bench_opt.backend_on[bn->cells[i].be];
	fprintf(f, "{\n  \"tool\": \"urpoll-bench\",\n  \"title\": \"%s\",\n  \"mode\": \"%s\",\n"
		   "  \"runs\": %u,\n  \"callgrind\": %s,\n  \"syscalls_counted\": %s,\n"
		   "  \"backends\": [",
		bn->title, mode_names[bench_opt.mode], bench_opt.runs,
		bench_opt.cg_dir ? "true" : "false", bench_syscalls_counted() ? "true" : "false");
	for (int be = 0, first = 1; be < BE_COUNT; be++) {
		if (!bench_opt.backend_on[be])
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
		if (bench_opt.backend_on[bn->cells[i].be])
			json_cell(f, &bn->cells[i], &bn->sums[i], ++k == n);
	fprintf(f, "  ]\n}\n");
	ret = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	return ret < 0 ? bench_fail(ret, bench_opt.json_path) : 0;
}

int report_svg(const struct bench *bn)
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

		if (!bench_opt.backend_on[c->be] || c->status != CELL_OK)
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
	ret = output_truncate(bench_opt.svg_file);
	if (ret == 0)
		ret = svg_write(bench_opt.svg_file, pts, n, bn->title);
	if (fclose(bench_opt.svg_file) && ret == 0)
		ret = -errno;
	bench_opt.svg_file = NULL;
	if (ret < 0)
		bench_fail(ret, bench_opt.svg_path);
out_free:
	free(pts);
	free(labels);
	return ret;
}
