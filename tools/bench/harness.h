/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: the harness's own contract, between main.c (options, selection and the run
 * loop), stats.c (medians, spread, ratios), report.c (the table, --json and --svg) and
 * callgrind.c (--callgrind). Backends and workloads see bench.h only.
 */
#ifndef URPOLL_BENCH_HARNESS_H
#define URPOLL_BENCH_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench.h"

#define MAX_RUNS 101

enum mode { MODE_FULL, MODE_QUICK, MODE_SMOKE };
/* "full", "quick", "smoke" */
extern const char *const mode_names[];

/* The command line, and what main() derives from it before the first run. */
struct bench_opts {
	enum mode mode;
	unsigned runs;
	bool runs_set, callgrind, no_syscalls;
	bool backend_on[BE_COUNT];
	const char *json_path, *svg_path;
	/* Opened before anything runs (outputs_open()), written at the end. */
	FILE *json_file, *svg_file;
	const char *cg_dir; /* set in the process valgrind runs */
};
extern struct bench_opts bench_opt;

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
	S_EARLY,    /* timer: share of the fired timers that fired early */
	S_EARLIEST, /* timer: how early the earliest fired, ns */
	S_COUNT
};

struct summary {
	double med[S_COUNT], lo[S_COUNT], hi[S_COUNT];
	double ratio, cpu_ratio; /* against epoll's medians; NAN without an epoll cell */
};

/* The whole invocation. */
struct bench {
	const struct workload **wls;
	unsigned nwls;
	struct cell *cells; /* nrows * BE_COUNT, row-major */
	struct summary *sums;
	unsigned nrows;
	char title[160];
};

/* ---- stats.c ---- */

/* Summaries of a row of cells (one workload and parameter, every backend), with ratios. */
void row_summaries(const struct cell *row, struct summary *sm);

/* ---- report.c ---- */

/* The files of --json and --svg, opened before anything runs: 0, or -1 after a line on stderr
 * (outputs_close() closes what was opened). */
int outputs_open(void);
void outputs_close(void);
/* The table of the workload whose first row is row, on stdout. */
void report_table(const struct bench *bn, unsigned row);
/* Write and close the file of --json, or of --svg: 0, or -errno after a line on stderr. */
int report_json(const struct bench *bn);
int report_svg(const struct bench *bn);

/* ---- callgrind.c ---- */

/* Set in the environment of the process valgrind runs: the directory of callgrind's dumps. */
#define CALLGRIND_DIR_ENV "URPOLL_BENCH_CALLGRIND_DIR"

/* --callgrind: run this command line under valgrind --tool=callgrind and wait; returns the
 * exit status. */
int callgrind_parent(char **argv);
/* The user instructions (Ir) of the timed region just ended, from callgrind's dumps. */
double callgrind_collect(void);

#endif /* URPOLL_BENCH_HARNESS_H */
