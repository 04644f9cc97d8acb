/* SPDX-License-Identifier: MIT */
/*
 * Types shared by bpf/urpoll.bpf.c and tools/urpoll-trace.c (plain __u32/__u64, no enums:
 * bpftool prints the map values with these field names, from the object's BTF).
 *
 * Maps (names at most 15 characters, no dots, so they pin as they are):
 *   urp_stats	per-CPU array, 1 entry: struct urp_trace_stats; user space sums the CPUs
 *   urp_events	ring buffer of struct urp_trace_event, one per stale rejection (--events only)
 *   urp_uring	per-CPU array, 1 entry: struct urp_trace_uring (--io-uring only)
 *
 * Histograms are log2: slot 0 counts values 0..1, slot k (k >= 1) counts 2^k .. 2^(k+1)-1.
 */
#ifndef URP_BPF_URPOLL_TRACE_H
#define URP_BPF_URPOLL_TRACE_H

/* Wakers per batch: the wake array holds 32, so slots 0..5 are used; 33 covers any __u32. */
#define URP_TRACE_BATCH_SLOTS 33
/* Stale lag in ticks, (current_tick - event_tick) mod 2^15: 1..32767, slots 0..14. */
#define URP_TRACE_LAG_SLOTS 16
#define URP_TRACE_TICK_MASK 0x7fffu

struct urp_trace_stats {
	__u64 stale_rejects; /* urpoll:stale_reject hits */
	__u64 wake_batches;  /* urpoll:wake_batch hits */
	__u64 wakes;	     /* sum of the batches' sizes: wakers called */
	__u64 lost_events;   /* stale rejections not recorded in urp_events (ring full) */
	__u64 batch_hist[URP_TRACE_BATCH_SLOTS];
	__u64 lag_hist[URP_TRACE_LAG_SLOTS];
};

/* One stale rejection (urp_events). */
struct urp_trace_event {
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 token; /* the entry's address (the driver's user_data) */
	__u32 pid;   /* process (tgid) */
	__u32 tid;   /* thread that was refused */
	__u32 event_tick;
	__u32 current_tick;
};

/* The kernel's side of the same process (--io-uring): CQEs posted while one of its threads
 * runs, from the io_uring tracepoints. */
struct urp_trace_uring {
	__u64 completions;   /* io_uring:io_uring_complete */
	__u64 cqe_overflows; /* io_uring:io_uring_cqe_overflow: CQEs that found the CQ ring full */
};

#endif /* URP_BPF_URPOLL_TRACE_H */
