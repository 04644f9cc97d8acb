/* SPDX-License-Identifier: MIT */
/*
 * urpoll-trace: the contract between its files, libbpf-tools style. urpoll-trace.c reads the
 * options and runs the intervals; attach.c is the BPF side (prerequisites, which library,
 * pins, loading and attaching the skeleton, reading the maps); output.c prints what was read,
 * as text or NDJSON.
 */
#ifndef URP_TOOLS_TRACE_H
#define URP_TOOLS_TRACE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <linux/types.h>

#include "urpoll_trace.h"

#define BPFFS_DIR "/sys/fs/bpf"

extern const char prog_name[];

/* The command line. */
struct env {
	pid_t pid;
	const char *lib;
	bool json;
	const char *pin_dir;
	bool events;
	bool io_uring;
	bool cumulative; /* --cumulative: since attach, not per interval */
	bool timestamp;	 /* -T: the wall-clock time of each interval */
	bool verbose;
	double interval_s;
	unsigned long count;
};
extern struct env env;

struct urpoll_bpf;
struct ring_buffer;

struct tracer {
	struct urpoll_bpf *skel;
	struct ring_buffer *ring;
	char lib[PATH_MAX];
	int ncpus;
	__u64 *percpu; /* one map value per CPU, as a per-CPU lookup returns them */
	/* The totals at the end of the previous interval: each interval prints the difference
	 * (output.c says why the maps are never cleared). */
	struct urp_trace_stats prev;
	struct urp_trace_uring prev_uring;
	unsigned long prev_events_read;
	unsigned long intervals;
	unsigned long events_read;
	struct timespec start, last;
	char pin_paths[3][PATH_MAX]; /* urp_stats first */
};

/* One line on stderr, "urpoll-trace: ...", then exit 1: every error the user can act on. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- attach.c ---- */

/* The capabilities loading needs, BTF and uprobes, or fail(); mount tracefs and bpffs if
 * missing. */
void check_environment(void);
/* The file carrying the probes into out (PATH_MAX): -l, the library of -p, the one built
 * beside the tool, or an installed one; fail() when there is none. */
void find_library(char *out);
/* Open, load and attach the skeleton to t->lib (and the io_uring tracepoints, the ring
 * buffer and the pins, with their options), or fail(). */
void load_and_attach(struct tracer *t);
/* The CPUs' counters of urp_stats and (with --io-uring; zeros without) urp_uring, summed. */
void read_totals(struct tracer *t, struct urp_trace_stats *tot, struct urp_trace_uring *uring);
/* The kernel's id of this run's urp_stats, for `bpftool map dump id ID`. */
__u32 stats_map_id(struct tracer *t);
/* Print the stale rejections waiting in the ring buffer (--events), through print_event(). */
void drain_events(struct tracer *t);
void tracer_free(struct tracer *t);

/* ---- output.c ---- */

/* Read the totals and print one interval (text or JSON); final: the last one. */
void print_interval(struct tracer *t, bool final);
/* The ring buffer's callback: one stale rejection (struct urp_trace_event), one line. */
int print_event(void *ctx, void *data, size_t size);

#endif /* URP_TOOLS_TRACE_H */
