// SPDX-License-Identifier: MIT
/*
 * trace_intervals: what each of urpoll-trace's reports covers (docs/tracing.md; the fixture:
 * tests/lib/trace_util.h). By default an interval prints what happened in it, and the
 * intervals add up to the library's totals; --cumulative prints the totals since attach; -T
 * puts the time on each report (a line of its own in the text, "time" in the JSON), and
 * nothing does without it.
 *
 * The workload runs in three phases of known, different sizes (trace_workload -P), each
 * released only once the tracer has printed two reports since the previous phase ended: a
 * whole interval without work lies between two phases, so the tracer's per-interval numbers
 * fall into three groups, which must equal the phases exactly, whatever interval boundary
 * a phase straddles.
 */
#include <ctype.h>

#include "trace_util.h"

TestSuite(trace_intervals, .init = trace_setup, .fini = trace_teardown, .timeout = 60);

#define PHASES	     3
#define PHASE_STALE  "100" /* phase k: k * 100 stale rejections */
#define PHASE_ROUNDS "5"   /* and k * 5 rounds: k * 20 batches, k * 500 wakes */
#define MAX_REPORTS  1024

/* JSON and text print each of these once per report. */
#define JSON_REPORT "\"type\":\"interval\""
#define TEXT_REPORT "per second:"

/* Read everything the process has written so far. */
static void drain(struct proc *p)
{
	size_t before;

	do {
		before = p->out_buf.len + p->err_buf.len;
		pump(p, 0);
	} while (p->out_buf.len + p->err_buf.len != before);
}

/*
 * Trace trace_workload -P 3 with the tracer's options opts (NULL-ended) plus -p and an
 * interval of 0.1 s; report: what each report prints once. Returns the workload's phases
 * (phases[k - 1]) and totals; the tracer has exited, its output in tracer->out_buf.
 */
static struct counts run_phases(struct proc *tracer, const char *const *opts, const char *report,
				struct counts *phases)
{
	char *argv[16], phase_line[32];
	struct proc work;
	struct counts total;
	int argc = 0, k;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-P", "3", "-s", PHASE_STALE, "-b",
					  PHASE_ROUNDS, NULL });
	argv[argc++] = TRACER;
	while (*opts)
		argv[argc++] = (char *)*opts++;
	argv[argc++] = "-p";
	argv[argc++] = pid_str(work.pid);
	argv[argc++] = "0.1";
	argv[argc] = NULL;
	start_tracer(tracer, argv);

	for (k = 1; k <= PHASES; k++) {
		int reports;

		release(&work);
		snprintf(phase_line, sizeof(phase_line), "phase %d ", k);
		wait_for_stdout(&work, phase_line, 1, 20000);
		cr_assert_eq(sscanf(strstr(buf_str(&work.out_buf), phase_line) + strlen(phase_line),
				    "stale_rejects=%llu wake_batches=%llu wakes=%llu",
				    &phases[k - 1].stale_rejects, &phases[k - 1].wake_batches,
				    &phases[k - 1].wakes),
			     3, "%s", buf_str(&work.out_buf));
		/* Every report written before the phase ended is in the pipe now: the second
		 * report after these covers time after the phase only. */
		drain(tracer);
		reports = occurrences(buf_str(&tracer->out_buf), report);
		if (k < PHASES)
			wait_for_stdout(tracer, report, reports + 2, 20000);
	}
	cr_assert_eq(wait_exit(&work, 20000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(tracer, 10000), 0, "stderr: %s", buf_str(&tracer->err_buf));
	total = workload_counts(&work);
	proc_free(&work);
	return total;
}

/* Runs of reports with work in them, each added up into groups; returns how many. */
static int busy_groups(const struct interval *ivs, int n, struct interval *groups, int max)
{
	bool open = false;
	int g = 0, i;

	for (i = 0; i < n; i++) {
		if (!ivs[i].stale_rejects && !ivs[i].wake_batches && !ivs[i].wakes) {
			open = false;
			continue;
		}
		if (!open) {
			cr_assert_lt(g, max, "more than %d runs of busy intervals", max);
			memset(&groups[g++], 0, sizeof(groups[0]));
			open = true;
		}
		interval_add(&groups[g - 1], &ivs[i]);
	}
	return g;
}

/* The intervals fall into one group per phase, each equal to it; all add up to the totals. */
static void assert_per_interval(const struct interval *ivs, int n, const struct counts *phases,
				struct counts total)
{
	struct interval groups[PHASES + 1], sum = { 0 };
	int g, i;

	g = busy_groups(ivs, n, groups, PHASES + 1);
	cr_assert_eq(g, PHASES, "%d runs of busy intervals for %d phases: per interval, a quiet "
				"interval must print 0",
		     g, PHASES);
	for (i = 0; i < PHASES; i++) {
		struct counts want = phases[i];

		cr_assert_neq(want.stale_rejects, 0);
		assert_totals_equal(&groups[i], want);
	}
	for (i = 0; i < n; i++)
		interval_add(&sum, &ivs[i]);
	assert_totals_equal(&sum, total);
}

static bool is_clock(const char *s)
{
	return strlen(s) == 8 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
	       s[2] == ':' && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]) &&
	       s[5] == ':' && isdigit((unsigned char)s[6]) && isdigit((unsigned char)s[7]);
}

/* The value of "time" in a JSON object, or NULL. */
static const char *json_time(const char *obj, char *out)
{
	const char *at = strstr(obj, "\"time\":\"");

	if (!at)
		return NULL;
	snprintf(out, 9, "%s", at + strlen("\"time\":\""));
	return out;
}

/* Default -j -T: each interval's counts are that interval's, and each has its time. */
Test(trace_intervals, per_interval_by_default)
{
	static struct interval ivs[MAX_REPORTS];
	struct counts phases[PHASES], total;
	struct proc tracer;
	const char *line;
	char clock[16];
	int n, i;

	total = run_phases(&tracer, (const char *[]){ "-j", "-T", NULL }, JSON_REPORT, phases);
	n = intervals_of(buf_str(&tracer.out_buf), ivs, MAX_REPORTS);
	for (i = 0; i < n; i++)
		cr_assert(!ivs[i].cumulative,
			  "interval %d: \"cumulative\":true without --cumulative", i + 1);
	cr_assert(ivs[n - 1].final);
	assert_per_interval(ivs, n, phases, total);
	i = 0;
	for (line = buf_str(&tracer.out_buf); (line = strstr(line, JSON_REPORT)); line++, i++)
		cr_assert(json_time(line, clock) && is_clock(clock), "-T: no \"time\" in %.300s",
			  line);
	cr_assert_eq(i, n);
	proc_free(&tracer);
}

/* --cumulative: each interval holds everything since attach; no "time" without -T. */
Test(trace_intervals, cumulative_since_attach)
{
	static struct interval ivs[MAX_REPORTS];
	struct counts phases[PHASES], total, upto = { 0 };
	struct proc tracer;
	char clock[16];
	int n, i, k;

	total = run_phases(&tracer, (const char *[]){ "-j", "--cumulative", NULL }, JSON_REPORT,
			   phases);
	cr_assert_null(json_time(buf_str(&tracer.out_buf), clock), "\"time\" without -T: %s",
		       buf_str(&tracer.out_buf));
	n = intervals_of(buf_str(&tracer.out_buf), ivs, MAX_REPORTS);
	for (i = 0; i < n; i++) {
		cr_assert(ivs[i].cumulative, "interval %d: \"cumulative\":false with --cumulative",
			  i + 1);
		if (i) {
			cr_assert_geq(ivs[i].stale_rejects, ivs[i - 1].stale_rejects);
			cr_assert_geq(ivs[i].wake_batches, ivs[i - 1].wake_batches);
		}
	}
	/* After each phase a whole interval passed without work: it shows the phases so far. */
	for (k = 0; k < PHASES; k++) {
		bool seen = false;

		upto.stale_rejects += phases[k].stale_rejects;
		upto.wake_batches += phases[k].wake_batches;
		upto.wakes += phases[k].wakes;
		for (i = 0; i < n && !seen; i++)
			seen = ivs[i].stale_rejects == upto.stale_rejects &&
			       ivs[i].wake_batches == upto.wake_batches &&
			       ivs[i].wakes == upto.wakes;
		cr_assert(seen, "no interval shows phases 1 to %d: %llu stale rejections", k + 1,
			  upto.stale_rejects);
	}
	cr_assert(ivs[n - 1].final);
	assert_totals_equal(&ivs[n - 1], total);
	proc_free(&tracer);
}

/*
 * The text, -T: each report is a blank line, the time alone ("%-8s", as libbpf-tools print
 * it), then "pid N, interval K (S s)" and the interval's counts. Without -T, no time line.
 */
Test(trace_intervals, text_timestamps_per_interval)
{
	static struct interval ivs[MAX_REPORTS];
	struct counts phases[PHASES], total;
	char *copy, *line, *save = NULL, *prev = NULL, *prev2 = NULL;
	struct proc tracer;
	int n = 0, times = 0;

	total = run_phases(&tracer, (const char *[]){ "-T", NULL }, TEXT_REPORT, phases);
	copy = strdup(buf_str(&tracer.out_buf));
	cr_assert_not_null(copy);
	/* strtok_r() skips empty lines: keep them with strsep(). */
	for (save = copy; (line = strsep(&save, "\n"));) {
		unsigned long k;
		char pid[16];

		if (is_clock(line))
			times++;
		if (sscanf(line, "pid %15[0-9], interval %lu (", pid, &k) == 2) {
			cr_assert_lt(n, MAX_REPORTS);
			cr_assert_eq(k, (unsigned long)n + 1, "report %d is numbered %lu", n + 1,
				     k);
			cr_assert(prev && is_clock(prev), "-T: no time before \"%s\"", line);
			cr_assert(prev2 && !*prev2, "no blank line before the time of \"%s\"",
				  line);
			memset(&ivs[n], 0, sizeof(ivs[n]));
		}
		if (sscanf(line,
			   "stale_rejects %llu  wake_batches %llu  wakes %llu  lost_events %llu",
			   &ivs[n].stale_rejects, &ivs[n].wake_batches, &ivs[n].wakes,
			   &ivs[n].lost_events) == 4) {
			/* The histograms are the JSON's: only their presence is checked here. */
			ivs[n].batch[0] = ivs[n].wake_batches;
			ivs[n].lag[0] = ivs[n].stale_rejects;
			ivs[n++].count = 1;
		}
		prev2 = prev;
		prev = line;
	}
	cr_assert_gt(n, PHASES);
	cr_assert_eq(times, n, "%d time lines for %d reports", times, n);
	cr_assert(strstr(buf_str(&tracer.out_buf), "wakers/batch"));
	assert_per_interval(ivs, n, phases, total);
	free(copy);
	proc_free(&tracer);

	/* Without -T: not a line of the text is a time. */
	spawn(&tracer, (char *[]){ TRACER, "-l", private_lib, "0.05", "3", NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 20000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert_eq(occurrences(buf_str(&tracer.out_buf), TEXT_REPORT), 3, "%s",
		     buf_str(&tracer.out_buf));
	copy = strdup(buf_str(&tracer.out_buf));
	for (save = copy; (line = strsep(&save, "\n"));)
		cr_assert(!is_clock(line), "a time without -T: %s", buf_str(&tracer.out_buf));
	cr_assert(strstr(buf_str(&tracer.out_buf), "all processes, interval 3 ("), "%s",
		  buf_str(&tracer.out_buf));
	free(copy);
	proc_free(&tracer);
}
