/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: side-by-side benchmarks of urpoll (poll mode and ring mode), raw epoll, libev,
 * libevent and libuv.
 *
 * Each workload runs on each backend in the same invocation, interleaved (A B C D E A B ...),
 * one untimed warm-up each, then the timed runs; the table gives the median, the min-max
 * spread and the ratio against epoll. See usage() for the options.
 *
 * This file: the options, the selection of workloads and backends, and the run loop; the
 * statistics are stats.c's, the table and the files report.c's, --callgrind callgrind.c's.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <urpoll.h>
#include <valgrind/valgrind.h>

#include "harness.h"

/* A run that has not finished after this long is a hang: SIGALRM ends the process. */
#define RUN_WATCHDOG_S	      120
#define CALLGRIND_WATCHDOG_S  3600
#define PROGRESS_PLAIN_NS     (10 * 1000000000ull)

const char *const mode_names[] = { "full", "quick", "smoke" };
struct bench_opts bench_opt;

struct workload_table {
	const struct workload *wl;
	const unsigned *count;
};

static const struct workload_table tables[] = {
	{ wl_notify, &wl_notify_count }, { wl_pingpong, &wl_pingpong_count },
	{ wl_churn, &wl_churn_count },	 { wl_idle, &wl_idle_count },
	{ wl_wakeup, &wl_wakeup_count }, { wl_word, &wl_word_count },
	{ wl_timer, &wl_timer_count },
};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

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
	memset(bench_opt.backend_on, 0, sizeof(bench_opt.backend_on));
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
		bench_opt.backend_on[be] = true;
	}
	if (!ret && !n) {
		fprintf(stderr, "%s: %s: no backend in '%s' (see --help)\n", bench_prog, opt_name,
			list);
		ret = -EINVAL;
	}
	free(copy);
	return ret;
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

static void run_fill(struct run_rec *rr, const struct run_result *res)
{
	rr->r = *res;
	if (res->lat && res->lat->count) {
		rr->p50 = hist_quantile(res->lat, 0.50);
		rr->p99 = hist_quantile(res->lat, 0.99);
		rr->p999 = hist_quantile(res->lat, 0.999);
	}
	if (bench_opt.cg_dir)
		rr->instr = callgrind_collect();
}

/* One run of cell c (run < 0: the warm-up). Returns 0, or -errno with c marked. */
static int cell_run(struct cell *c, int run, unsigned runs, uint64_t events, struct hist *lat)
{
	struct run_result res = { .lat = lat };
	int ret;

	progress(c, run, runs);
	hist_reset(lat);
	alarm(bench_opt.cg_dir ? CALLGRIND_WATCHDOG_S : RUN_WATCHDOG_S);
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
	if (bench_opt.mode == MODE_SMOKE)
		return wl->events_smoke;
	return bench_opt.mode == MODE_QUICK ? wl->events_quick : wl->events_full;
}

/* Interleaved runs of one row: warm-up of each backend, then run i of each, ... */
static void row_run(struct cell *row, unsigned runs, bool warmup, struct hist *lat)
{
	uint64_t events = wl_events(row[0].wl);

	for (int r = warmup ? -1 : 0; r < (int)runs; r++)
		for (int be = 0; be < BE_COUNT; be++)
			if (row[be].status == CELL_OK && bench_opt.backend_on[be])
				cell_run(&row[be], r, runs, r < 0 ? events / 10 + 1 : events, lat);
	progress_clear();
}

static int bench_alloc(struct bench *bn)
{
	unsigned runs = bench_opt.runs, row = 0;

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
				if (bench_opt.backend_on[be] && c->status == CELL_OK)
					prog_state.total += runs + (bench_opt.mode != MODE_SMOKE);
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

/* Run every row of workload w, whose first row is row, then print its table. Returns the
 * next workload's first row. */
static unsigned bench_workload(struct bench *bn, unsigned w, unsigned row, struct hist *lat)
{
	const struct workload *wl = bn->wls[w];

	for (unsigned p = 0; p < wl->nparams; p++) {
		struct cell *r = &bn->cells[(row + p) * BE_COUNT];

		row_run(r, bench_opt.runs, bench_opt.mode != MODE_SMOKE && !bench_opt.cg_dir, lat);
		row_summaries(r, &bn->sums[(row + p) * BE_COUNT]);
	}
	report_table(bn, row);
	return row + wl->nparams;
}

/* ---- main ---- */

static int usage(int status)
{
	FILE *f = status ? stderr : stdout;

	fprintf(f,
		"usage: %s [--quick|--smoke] [--runs N] [--backends LIST] [--json FILE]\n"
		"       [--svg FILE] [--callgrind] [--no-syscalls] [-h] [WORKLOAD...]\n\n"
		"Runs each workload on each backend in the same invocation, interleaved (urpoll\n"
		"urpoll-ring epoll libev libevent libuv urpoll ...), one untimed warm-up each,\n"
		"then N timed runs (default 5), and prints the median, the min-max spread and the\n"
		"ratio against raw epoll (edge-triggered, batched epoll_wait, one epoll_ctl per add\n"
		"or delete). The server logic is the same code for every backend; only the\n"
		"readiness mechanism differs. In pingpong the client and server ends are served by\n"
		"the same loop on the same thread, for every backend alike.\n\n"
		"urpoll-ring is urpoll's loop in ring mode (urp_register_ring()): io_uring receives\n"
		"into the driver's buffers and sends from per-socket queues, one io_uring_enter per\n"
		"turn, and the workload takes buffers and queues sends instead of read(2) and\n"
		"write(2) (the server echoes a received buffer as it is, without a copy). It runs\n"
		"pingpong-* and churn-conn, which move bytes; elsewhere it is n/a.\n\n"
		"  --quick          a tenth (notify) or a twentieth (pingpong) of the events per run\n"
		"  --smoke          a few events, one run, no warm-up: checks that everything runs\n"
		"  --runs N         timed runs per cell (1..%d)\n"
		"  --backends LIST  comma-separated, default all:\n"
		"                   urpoll,urpoll-ring,epoll,libev,libevent,libuv\n"
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
		"per unit; p50/p99/p99.9: per-request latency (timer-*: how late a timer that\n"
		"fired was called after the deadline asked for; one called early counts 0, shown\n"
		"as 1ns); early, earliest: timer-*: the share of those called before it, and the\n"
		"earliest, how long before; conn min/max: fewest and most requests served per\n"
		"connection in a run.\n\n"
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
		"    %s --backends urpoll,urpoll-ring,epoll pingpong-tcp-64\n"
		"\n"
		"Exit status: 0, 1 on a runtime error (a run failed, an output file cannot be\n"
		"written, no io_uring), 2 on bad usage.\n",
		bench_prog, bench_prog, bench_prog, bench_prog, bench_prog);
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

	bench_opt.runs = 5;
	for (int be = 0; be < BE_COUNT; be++)
		bench_opt.backend_on[be] = true;
	opterr = 0; /* one line of our own instead */
	while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (o) {
		case 'q':
			bench_opt.mode = MODE_QUICK;
			break;
		case 's':
			bench_opt.mode = MODE_SMOKE;
			break;
		case 'r':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (*optarg && !*end && !errno && optarg[0] != '-' && v >= 1 &&
			    v <= MAX_RUNS) {
				bench_opt.runs = (unsigned)v;
				bench_opt.runs_set = true;
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
			bench_opt.json_path = optarg;
			break;
		case 'g':
			bench_opt.svg_path = optarg;
			break;
		case 'c':
			bench_opt.callgrind = true;
			break;
		case 'n':
			bench_opt.no_syscalls = true;
			break;
		case 'h':
			exit(usage(0));
		default:
			return usage_error(o, argv);
		}
	}
	if (bench_opt.mode == MODE_SMOKE && !bench_opt.runs_set)
		bench_opt.runs = 1;
	return 0;
}

/* Raise the open-file soft limit to the hard one: pingpong-tcp at N = 4096 holds 8192 fds.
 * (The servers' net_raise_nofile() does the same: urpoll-bench links none of their objects.) */
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
		 un.release, sysconf(_SC_NPROCESSORS_ONLN), info.tier_name, bench_opt.runs,
		 bench_opt.runs == 1 ? "" : "s", mode_names[bench_opt.mode],
		 bench_opt.cg_dir ? ", callgrind" : "");
	printf("%s\n", bn->title);
	if (bench_opt.cg_dir)
		printf("syscall counts: off under callgrind (valgrind's own calls would count)\n");
	else if (bench_opt.no_syscalls)
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
	bench_opt.cg_dir = getenv(CALLGRIND_DIR_ENV);
	if (bench_opt.cg_dir && !RUNNING_ON_VALGRIND)
		bench_opt.cg_dir = NULL;
	if (bench_opt.callgrind && !bench_opt.cg_dir) {
		/* The files are checked; the process under valgrind opens them again. */
		outputs_close();
		free(bn.wls);
		return callgrind_parent(argv);
	}
	if (bench_opt.cg_dir)
		bench_opt.runs = 1;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread starts: the counter is inherited only by threads started later. */
	if (!bench_opt.no_syscalls && !bench_opt.cg_dir)
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
		if (bn.cells[i].status == CELL_FAILED && bench_opt.backend_on[bn.cells[i].be])
			status = 1;
	if (bench_opt.json_path && report_json(&bn) < 0)
		status = 1;
	if (bench_opt.svg_path && report_svg(&bn) < 0)
		status = 1;
out_free:
	outputs_close();
	bench_free(&bn);
	free(bn.wls);
	free(lat);
	return status;
}
