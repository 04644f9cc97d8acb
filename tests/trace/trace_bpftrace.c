// SPDX-License-Identifier: MIT
/*
 * trace_bpftrace: docs/tracing.md's bpftrace one-liners run, on the library's USDT probes, and
 * count what the library counts (the fixture: tests/lib/trace_util.h). Each one-liner is the
 * doc's, verbatim but for the installed library's path, replaced by the private library's; it
 * traces trace_workload until the workload has exited, then SIGINT makes bpftrace print its
 * maps.
 *
 * bpftrace prints "Attaching N probes..." before it attaches them, and 0.17 has no line for
 * after: the test waits until `bpftool perf` shows bpftrace's program on every uprobe of the
 * probe (one per site in the library), then releases the workload.
 */
#include "trace_util.h"

TestSuite(trace_bpftrace, .init = trace_setup, .fini = trace_teardown, .timeout = 60);

#define BPFTRACE "/usr/bin/bpftrace"
#define DOC_LIB	 "/usr/local/lib/liburpoll.so.0" /* the path the one-liners are written with */

/* The one-liner on the private library. */
static char *one_liner(const char *text)
{
	static char program[1024];
	const char *lib = strstr(text, DOC_LIB);
	int n;

	cr_assert_not_null(lib);
	n = snprintf(program, sizeof(program), "%.*s%s%s", (int)(lib - text), text, private_lib,
		     lib + strlen(DOC_LIB));
	cr_assert_lt(n, (int)sizeof(program));
	return program;
}

/* How many sites probe (stale_reject, wake_batch) has in the private library. */
static int probe_sites(const char *probe)
{
	char command[PATH_MAX + 64], line[256];
	int sites = 0;
	FILE *f;

	snprintf(command, sizeof(command), "readelf -n %s", private_lib);
	f = popen(command, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		char name[64];

		if (sscanf(line, " Name: %63s", name) == 1 && !strcmp(name, probe))
			sites++;
	}
	pclose(f);
	cr_assert_gt(sites, 0, "no %s in the notes of %s", probe, private_lib);
	return sites;
}

/* Wait until pid holds a BPF program on sites uprobes of the private library. */
static void wait_uprobes_attached(struct proc *bpftrace, int sites)
{
	double end = now_s() + 30.0;
	char pid_key[32], file_key[PATH_MAX + 64];

	snprintf(pid_key, sizeof(pid_key), "{\"pid\":%d,", bpftrace->pid);
	snprintf(file_key, sizeof(file_key), "\"filename\":\"%s\"", private_lib);
	for (;;) {
		char *listing = NULL, *at;
		size_t size = 0;
		int attached = 0;
		FILE *f = popen("bpftool -j perf", "r");

		cr_assert_not_null(f);
		getdelim(&listing, &size, '\0', f);
		pclose(f);
		for (at = listing; at && (at = strstr(at, pid_key)); at++) {
			const char *close = strchr(at, '}');

			if (close && strstr(at, file_key) && strstr(at, file_key) < close &&
			    strstr(at, "\"prog_id\":"))
				attached++;
		}
		free(listing);
		if (attached >= sites)
			return;
		pump(bpftrace, 0);
		cr_assert(bpftrace->out >= 0, "bpftrace exited; stderr: %s",
			  buf_str(&bpftrace->err_buf));
		cr_assert_lt(now_s(), end, "bpftrace attached %d of %d uprobes in 30 s; stderr: %s",
			     attached, sites, buf_str(&bpftrace->err_buf));
		usleep(50000);
	}
}

/* Run the one-liner (its probe: probe) around the workload; returns bpftrace's stdout. */
static char *run_one_liner(const char *text, const char *probe, struct proc *work,
			   char *const workload_argv[])
{
	struct proc bpftrace;
	char *out;

	/* A failure, not a skip: install-deps.sh installs bpftrace before `make check`. */
	cr_assert_eq(access(BPFTRACE, X_OK), 0,
		     "%s is missing (tools/scripts/install-deps.sh installs it)", BPFTRACE);
	spawn_workload(work, workload_argv);
	spawn(&bpftrace, (char *[]){ BPFTRACE, "-e", one_liner(text), NULL }, false);
	wait_uprobes_attached(&bpftrace, probe_sites(probe));
	release(work);
	cr_assert_eq(wait_exit(work, 30000), 0, "workload: %s", buf_str(&work->err_buf));
	kill(bpftrace.pid, SIGINT);
	/* Its stderr may say it could not raise RLIMIT_MEMLOCK: harmless since 5.11 (memcg). */
	cr_assert_eq(wait_exit(&bpftrace, 20000), 0, "bpftrace: %s", buf_str(&bpftrace.err_buf));
	out = strdup(buf_str(&bpftrace.out_buf));
	proc_free(&bpftrace);
	return out;
}

/* "Stale rejections per process": the workload's line holds its pid, name and count. */
Test(trace_bpftrace, stale_rejects_per_process)
{
	struct proc work;
	char want[96], *out;

	out = run_one_liner("usdt:/usr/local/lib/liburpoll.so.0:urpoll:stale_reject "
			    "{ @stale[pid, comm] = count(); }",
			    "stale_reject", &work,
			    (char *[]){ WORKLOAD, "-w", "-s", "321", "-b", "2", NULL });
	snprintf(want, sizeof(want), "@stale[%d, trace_workload]: %llu\n", work.pid,
		 workload_counts(&work).stale_rejects);
	cr_assert_eq(workload_counts(&work).stale_rejects, 321);
	cr_assert(strstr(out, want), "no \"%s\" in: %s", want, out);
	free(out);
	proc_free(&work);
}

/* "Wakers per batch": bpftrace's power-of-2 slots [4, 8) and [32, 64) hold the rounds' batches
 * of 4 and of 32. */
Test(trace_bpftrace, wake_batch_histogram)
{
	struct proc work;
	char *out;

	out = run_one_liner("usdt:/usr/local/lib/liburpoll.so.0:urpoll:wake_batch "
			    "{ @wakers_per_batch = hist(arg1); }",
			    "wake_batch", &work, (char *[]){ WORKLOAD, "-w", "-b", "7", NULL });
	cr_assert_eq(workload_counts(&work).wake_batches, 4 * 7);
	cr_assert(strstr(out, "@wakers_per_batch:"), "%s", out);
	cr_assert(strstr(out, "[4, 8)                 7 |"), "no 7 batches of 4: %s", out);
	cr_assert(strstr(out, "[32, 64)              21 |"), "no 21 batches of 32: %s", out);
	free(out);
	proc_free(&work);
}
