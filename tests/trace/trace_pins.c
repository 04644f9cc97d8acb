// SPDX-License-Identifier: MIT
/*
 * trace_pins: urpoll-trace --pin (docs/tracing.md; the fixture: tests/lib/trace_util.h). The
 * pinned urp_stats outlives the tool; bpftool prints its named fields, and the per-CPU values of
 * `bpftool -j map dump pinned` sum to the workload's totals; a second run does not reuse an
 * earlier run's pins.
 */
#include "trace_util.h"

TestSuite(trace_pins, .init = trace_setup, .fini = trace_teardown, .timeout = 60);

static char pin_dir[64];

static void remove_pins(void)
{
	char path[128];

	if (!pin_dir[0])
		return;
	snprintf(path, sizeof(path), "%s/urp_stats", pin_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/urp_events", pin_dir);
	unlink(path);
	rmdir(pin_dir);
}

static unsigned long long sum_field(const char *text, const char *field)
{
	unsigned long long total = 0;
	char pat[64];
	const char *at = text;
	int seen = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", field);
	while ((at = strstr(at, pat))) {
		at += strlen(pat);
		total += strtoull(at, NULL, 10);
		seen++;
	}
	cr_assert_gt(seen, 0, "no \"%s\" in %s", field, text);
	return total;
}

/* --pin keeps urp_stats after the tool exits; bpftool prints its named fields, and the per-CPU
 * values in `bpftool -j map dump pinned` sum to the same totals. */
Test(trace_pins, pinned_maps_dump_with_bpftool, .fini = remove_pins)
{
	struct proc tracer, work, dump;
	char pinned[128], command[192];
	struct counts want;
	const char *end;

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/urp-test-%d", getpid());
	snprintf(pinned, sizeof(pinned), "%s/urp_stats", pin_dir);
	remove_pins();
	spawn_workload(&work,
		       (char *[]){ WORKLOAD, "-w", "-s", "123", "-b", "7", "-m", "2000", NULL });
	start_tracer(&tracer, (char *[]){ TRACER, "-p", pid_str(work.pid), "--pin", pin_dir, "0.2",
					  NULL });
	snprintf(command, sizeof(command), "bpftool map dump pinned %s", pinned);
	cr_assert(strstr(buf_str(&tracer.err_buf), command), "does not print `%s`: %s", command,
		  buf_str(&tracer.err_buf));
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	want = workload_counts(&work);
	/* Text output too: the human format has the totals line. */
	cr_assert(strstr(buf_str(&tracer.out_buf), "stale_rejects"), "%s",
		  buf_str(&tracer.out_buf));
	cr_assert_eq(access(pinned, F_OK), 0, "%s gone after the tool exited", pinned);

	spawn(&dump, (char *[]){ "/bin/sh", "-c", command, NULL }, false);
	cr_assert_eq(wait_exit(&dump, 10000), 0, "%s: %s", command, buf_str(&dump.err_buf));
	cr_assert(strstr(buf_str(&dump.out_buf), "\"stale_rejects\": "),
		  "no named field stale_rejects: %s", buf_str(&dump.out_buf));
	cr_assert(strstr(buf_str(&dump.out_buf), "\"lag_hist\": "), "%s", buf_str(&dump.out_buf));
	proc_free(&dump);

	snprintf(command, sizeof(command), "bpftool -j map dump pinned %s", pinned);
	spawn(&dump, (char *[]){ "/bin/sh", "-c", command, NULL }, false);
	cr_assert_eq(wait_exit(&dump, 10000), 0, "%s: %s", command, buf_str(&dump.err_buf));
	end = json_value(buf_str(&dump.out_buf));
	cr_assert(end && !*json_ws(end), "bpftool -j output does not parse: %s",
		  buf_str(&dump.out_buf));
	cr_assert_eq(sum_field(buf_str(&dump.out_buf), "stale_rejects"), want.stale_rejects);
	cr_assert_eq(sum_field(buf_str(&dump.out_buf), "wake_batches"), want.wake_batches);
	cr_assert_eq(sum_field(buf_str(&dump.out_buf), "wakes"), want.wakes);
	proc_free(&dump);
	proc_free(&tracer);

	/* A second run does not silently reuse (or clobber) an earlier run's pins. */
	spawn(&tracer, (char *[]){ TRACER, "-l", private_lib, "--pin", pin_dir, NULL }, false);
	cr_assert_eq(wait_exit(&tracer, 10000), 1, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert(strstr(buf_str(&tracer.err_buf), "exists"), "%s", buf_str(&tracer.err_buf));
	proc_free(&tracer);
	proc_free(&work);
}
