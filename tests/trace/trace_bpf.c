// SPDX-License-Identifier: MIT
/*
 * trace_bpf: urpoll-trace, end to end (docs/tracing.md; the fixture: tests/lib/trace_util.h).
 * The tracer's totals and histograms (its intervals added up, or its last --cumulative one)
 * equal the library's, for every process mapping it and for one process (-p) beside another;
 * --events records each stale rejection, --io-uring counts the kernel's completions beside the
 * library's; what a user gets wrong is one clear line and exit 1. The probes' semaphores are
 * trace_semaphores', the pinned maps trace_pins', the intervals and -T trace_intervals', the
 * capabilities trace_caps', bpftrace trace_bpftrace's.
 */
#include "trace_util.h"

TestSuite(trace_bpf, .init = trace_setup, .fini = trace_teardown, .timeout = 60);

/* ---- counts and histograms ---- */

/* Every process mapping the library: the intervals add up to the library's totals. */
Test(trace_bpf, all_processes_counts_equal_library)
{
	struct proc tracer, work;
	struct interval total;

	start_tracer(&tracer, (char *[]){ TRACER, "-j", "-l", private_lib, "0.2", NULL });
	cr_assert(strstr(buf_str(&tracer.err_buf), "(pid all)"), "%s", buf_str(&tracer.err_buf));
	spawn(&work, (char *[]){ WORKLOAD, "-s", "1000", "-b", "100", "-m", "20000", NULL }, true);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	kill(tracer.pid, SIGINT);
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "SIGINT must exit 0; stderr: %s",
		     buf_str(&tracer.err_buf));
	/* SIGINT printed a final interval (intervals_sum() checks), the one in progress. */
	total = intervals_sum(buf_str(&tracer.out_buf));
	assert_totals_equal(&total, workload_counts(&work));
	proc_free(&work);
	proc_free(&tracer);
}

/* The detached part alone: every slot is known. Batches of 32, 32, 32, 4 per round; the
 * i-th stale rejection lags 2^(i % 15) ticks, so lands in slot i % 15. --cumulative: the
 * last interval holds them all. */
Test(trace_bpf, histograms_exact)
{
	unsigned long long batch[33], lag[16];
	struct proc tracer, work;
	int rounds = 50, stale = 1000, k;
	char *obj;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-s", "1000", "-b", "50", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-j", "--cumulative", "-p", pid_str(work.pid),
					  "0.2", NULL });
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	/* -p: the tracer ends by itself when its process exits, after a final interval. */
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert(strstr(buf_str(&tracer.err_buf), "exited"), "%s", buf_str(&tracer.err_buf));
	obj = last_interval(buf_str(&tracer.out_buf));
	cr_assert(strstr(obj, "\"cumulative\":true"), "%s", obj);
	assert_counts_equal(obj, workload_counts(&work));
	cr_assert_eq(json_hist(obj, "batch_hist", batch, 33), 6, "%s", obj);
	cr_assert_eq(batch[5], 3ull * rounds, "batches of 32: %s", obj);
	cr_assert_eq(batch[2], (unsigned long long)rounds, "batches of 4: %s", obj);
	cr_assert_eq(json_hist(obj, "lag_hist", lag, 16), LAG_SLOTS, "%s", obj);
	for (k = 0; k < LAG_SLOTS; k++)
		cr_assert_eq(lag[k], (unsigned long long)(stale / LAG_SLOTS + (k < stale % LAG_SLOTS)),
			     "lag slot %d: %s", k, obj);
	free(obj);
	proc_free(&work);
	proc_free(&tracer);
}

/* -p: a second process using the same library at the same time is not counted. */
Test(trace_bpf, pid_isolation)
{
	struct proc tracer, traced, other;
	struct counts want, noise;
	struct interval total;

	spawn_workload(&traced,
		       (char *[]){ WORKLOAD, "-w", "-s", "300", "-b", "20", "-m", "5000", NULL });
	spawn_workload(&other,
		       (char *[]){ WORKLOAD, "-w", "-s", "700", "-b", "30", "-m", "5000", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-j", "-p", pid_str(traced.pid), "0.2", NULL });
	cr_assert(strstr(buf_str(&tracer.err_buf), pid_str(traced.pid)), "%s",
		  buf_str(&tracer.err_buf));
	release(&other);
	release(&traced);
	cr_assert_eq(wait_exit(&other, 30000), 0, "other: %s", buf_str(&other.err_buf));
	cr_assert_eq(wait_exit(&traced, 30000), 0, "traced: %s", buf_str(&traced.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	want = workload_counts(&traced);
	noise = workload_counts(&other);
	cr_assert_neq(want.stale_rejects, noise.stale_rejects);
	total = intervals_sum(buf_str(&tracer.out_buf));
	assert_totals_equal(&total, want);
	proc_free(&tracer);
	proc_free(&traced);
	proc_free(&other);
}

/* ---- the ring of events, the kernel's completions, errors ---- */

/* --events: one ring record per stale rejection, in order, none lost. */
Test(trace_bpf, events_ring_records_each_stale_reject)
{
	struct proc tracer, work;
	struct interval total;
	const char *line;
	int records = 0;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-s", "500", "-b", "5", NULL });
	start_tracer(&tracer,
		     (char *[]){ TRACER, "-j", "--events", "-p", pid_str(work.pid), "0.2", NULL });
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	total = intervals_sum(buf_str(&tracer.out_buf));
	assert_totals_equal(&total, workload_counts(&work));
	cr_assert_eq(total.events_read, 500);
	for (line = buf_str(&tracer.out_buf); (line = strstr(line, "\"type\":\"stale_reject\""));
	     line++) {
		cr_assert_eq(json_u64(line, "pid"), (unsigned long long)work.pid);
		/* The workload's i-th rejection lags 2^(i % 15) ticks; one thread, so in order. */
		cr_assert_eq(json_u64(line, "lag"), 1ull << (records % LAG_SLOTS), "record %d: %.200s",
			     records, line);
		records++;
	}
	cr_assert_eq(records, 500);
	proc_free(&work);
	proc_free(&tracer);
}

/* --io-uring: the kernel posted at least one CQE per readiness event the driver applied (plus
 * the cancels and the unpark eventfd's), and as many overflows as the driver counted. */
Test(trace_bpf, io_uring_tracepoints_beside_library)
{
	struct proc tracer, work;
	struct interval total;
	struct counts want;

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-m", "20000", "-n", "8", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-j", "--io-uring", "-p", pid_str(work.pid), "0.2",
					  NULL });
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	want = workload_counts(&work);
	cr_assert(strstr(buf_str(&tracer.out_buf), "\"io_uring\":{"), "%s",
		  buf_str(&tracer.out_buf));
	total = intervals_sum(buf_str(&tracer.out_buf));
	assert_totals_equal(&total, want);
	cr_assert_geq(want.events, 20000);
	cr_assert_geq(total.completions, want.events);
	/* 16 registrations: a cancel and a terminal CQE each at most, and the unpark poll. */
	cr_assert_leq(total.completions, want.events + 2 * 16 + 8);
	cr_assert_eq(total.cqe_overflows, want.cq_overflows);
	proc_free(&work);
	proc_free(&tracer);
}

/* One clear line and exit 1 for what a user gets wrong. */
Test(trace_bpf, clear_errors)
{
	struct proc tracer, other;
	pid_t gone;

	spawn(&tracer, (char *[]){ TRACER, "-l", "/nonexistent/liburpoll.so.0", NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "not found"), "%s", buf_str(&tracer.err_buf));
	cr_assert_eq(strchr(buf_str(&tracer.err_buf), '\n') + 1,
		     buf_str(&tracer.err_buf) + tracer.err_buf.len, "more than one line: %s",
		     buf_str(&tracer.err_buf));
	proc_free(&tracer);

	gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	spawn(&tracer, (char *[]){ TRACER, "-p", pid_str(gone), NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "not found"), "%s", buf_str(&tracer.err_buf));
	proc_free(&tracer);

	/* A process without the library: sleep(1). */
	spawn(&other, (char *[]){ "/bin/sleep", "30", NULL }, false);
	spawn(&tracer, (char *[]){ TRACER, "-p", pid_str(other.pid), NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "does not map liburpoll.so"), "%s",
		  buf_str(&tracer.err_buf));
	proc_free(&tracer);
	proc_free(&other);

	/* A file without the probes. */
	spawn(&tracer, (char *[]){ TRACER, "-l", WORKLOAD, NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1);
	cr_assert(strstr(buf_str(&tracer.err_buf), "no urpoll USDT probes"), "%s",
		  buf_str(&tracer.err_buf));
	proc_free(&tracer);
}
