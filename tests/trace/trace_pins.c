// SPDX-License-Identifier: MIT
/*
 * trace_pins: urpoll-trace --pin and bpftool (docs/tracing.md; the fixture:
 * tests/lib/trace_util.h). The pinned urp_stats outlives the tool; bpftool prints its named
 * fields, and the per-CPU values of `bpftool -j map dump pinned` sum to the workload's totals;
 * a second run does not reuse an earlier run's pins. With a pinned copy and another tracer's
 * map beside it (the name no longer tells them apart), the commands of docs/tracing.md by id
 * and by pinned path find each one.
 */
#include "trace_util.h"

TestSuite(trace_pins, .init = trace_setup, .fini = trace_teardown, .timeout = 60);

static char pin_dir[64];
static char other_lib[PATH_MAX + 32]; /* a library nobody runs: its tracer counts 0 */

static void remove_pins(void)
{
	char path[128];

	if (other_lib[0])
		unlink(other_lib);
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

/* Run a shell command line; fails the test unless it exits 0. Returns its stdout (malloc). */
static char *sh(const char *command)
{
	struct proc p;
	char *out;

	spawn(&p, (char *[]){ "/bin/sh", "-c", (char *)command, NULL }, false);
	cr_assert_eq(wait_exit(&p, 20000), 0, "%s: %s", command, buf_str(&p.err_buf));
	out = strdup(buf_str(&p.out_buf));
	proc_free(&p);
	return out;
}

/* The id a tracer printed on stderr ("counters in map id N: ..."). */
static unsigned tracer_map_id(const struct proc *tracer)
{
	const char *at = strstr(buf_str(&tracer->err_buf), "counters in map id ");
	unsigned id = 0;

	cr_assert_not_null(at, "no map id: %s", buf_str(&tracer->err_buf));
	cr_assert_eq(sscanf(at, "counters in map id %u:", &id), 1);
	return id;
}

/* Whether one line of text is the number n. */
static bool has_number_line(const char *text, unsigned n)
{
	const char *line;
	char *end;

	for (line = text; *line; line = *end ? end + 1 : end) {
		unsigned long v = strtoul(line, &end, 10);

		if (end != line && (*end == '\n' || !*end) && v == n)
			return true;
		end = strchr(line, '\n');
		if (!end)
			break;
	}
	return false;
}

/* docs/tracing.md's filter: urp_stats's per-CPU values summed. */
#define JQ_SUM                                                                                   \
	"jq -c '[.[0].formatted.values[].value] | {stale_rejects: (map(.stale_rejects) | add), "  \
	"wake_batches: (map(.wake_batches) | add), wakes: (map(.wakes) | add)}'"

static void assert_sum(const char *dump_command, struct counts want)
{
	char command[512], expect[160], *out;

	snprintf(command, sizeof(command), "%s | " JQ_SUM, dump_command);
	out = sh(command);
	snprintf(expect, sizeof(expect), "{\"stale_rejects\":%llu,\"wake_batches\":%llu,"
		 "\"wakes\":%llu}\n", want.stale_rejects, want.wake_batches, want.wakes);
	cr_assert_str_eq(out, expect, "%s", command);
	free(out);
}

/*
 * Two maps named urp_stats: a pinned copy left by a tracer that has exited, and a running
 * tracer's (on a library nobody runs, so its counts stay 0). The name handle is ambiguous;
 * docs/tracing.md's commands by id and by pinned path each find the right map.
 */
Test(trace_pins, bpftool_by_id_and_pinned_path, .fini = remove_pins)
{
	struct proc pinned_tracer, other_tracer, work;
	unsigned pinned_id, other_id;
	char command[256], *out;
	struct counts want, zero = { 0 };

	cr_assert_eq(system("command -v jq >/dev/null"), 0, "no jq (make deps installs it)");
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/urp-test-id-%d", getpid());
	snprintf(other_lib, sizeof(other_lib), "%s/liburpoll-other.so.0", work_dir);
	remove_pins();
	copy_file(private_lib, other_lib);

	spawn_workload(&work, (char *[]){ WORKLOAD, "-w", "-s", "77", "-b", "3", NULL });
	start_tracer(&pinned_tracer, (char *[]){ TRACER, "-p", pid_str(work.pid), "--pin", pin_dir,
						 "0.2", NULL });
	start_tracer(&other_tracer, (char *[]){ TRACER, "-l", other_lib, "0.2", NULL });
	pinned_id = tracer_map_id(&pinned_tracer);
	other_id = tracer_map_id(&other_tracer);
	cr_assert_neq(pinned_id, other_id);
	release(&work);
	cr_assert_eq(wait_exit(&work, 30000), 0, "workload: %s", buf_str(&work.err_buf));
	cr_assert_eq(wait_exit(&pinned_tracer, 10000), 0, "stderr: %s",
		     buf_str(&pinned_tracer.err_buf));
	want = workload_counts(&work);

	/* The name matches both: bpftool refuses it where it needs one map. */
	out = sh("bpftool map show name urp_stats");
	cr_assert_geq(occurrences(out, "name urp_stats"), 2, "%s", out);
	free(out);
	cr_assert_neq(system("bpftool btf dump map name urp_stats >/dev/null 2>&1"), 0,
		      "one map named urp_stats, not several");

	/* By the id the tool printed, and by the pinned path. */
	snprintf(command, sizeof(command), "bpftool -j map dump id %u", pinned_id);
	assert_sum(command, want);
	snprintf(command, sizeof(command), "bpftool -j map dump pinned %s/urp_stats", pin_dir);
	assert_sum(command, want);
	snprintf(command, sizeof(command), "bpftool -j map show pinned %s/urp_stats | jq .id",
		 pin_dir);
	out = sh(command);
	cr_assert_eq((unsigned)strtoul(out, NULL, 10), pinned_id, "%s: %s", command, out);
	free(out);

	/* A running tracer's is not pinned (-f fills "pinned"); the pinned copy is. Other tracers
	 * (other tests, other users) may run too: one id per line. */
	out = sh("bpftool -f -j map show name urp_stats | jq '.[] | select(.pinned == []) | .id'");
	cr_assert(has_number_line(out, other_id), "the running tracer's id %u not among: %s",
		  other_id, out);
	cr_assert(!has_number_line(out, pinned_id), "the pinned id %u among the unpinned: %s",
		  pinned_id, out);
	free(out);
	snprintf(command, sizeof(command), "bpftool -j map dump id %u", other_id);
	assert_sum(command, zero);

	kill(other_tracer.pid, SIGINT);
	cr_assert_eq(wait_exit(&other_tracer, 10000), 0, "stderr: %s",
		     buf_str(&other_tracer.err_buf));
	proc_free(&other_tracer);
	proc_free(&pinned_tracer);
	proc_free(&work);
}
