// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * urpoll.bpf.c: count the library's USDT probes into one per-CPU struct (urp_stats) and,
 * optionally, record each stale rejection in a ring buffer (urp_events) and count the traced
 * process's io_uring completions and CQ overflows from the kernel's tracepoints (urp_uring).
 *
 *   urpoll:stale_reject(token u64, event_tick u32, current_tick u32)
 *   urpoll:wake_batch(token u64, size u32, ready u32)
 *
 * Loaded by tools/urpoll-trace.c through its skeleton; libbpf resolves the USDT argument specs
 * and bumps the probes' semaphores while attached.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "urpoll_trace.h"

/* Set by user space before load (the skeleton's rodata). */
const volatile __u32 target_pid;      /* 0: every process attached to */
const volatile bool events_enabled;   /* --events: fill urp_events */
const volatile __u64 ring_wake_bytes; /* wake the reader only once this much is queued */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct urp_trace_stats);
} urp_stats SEC(".maps");

/* Sized by user space (a small placeholder when --events is off). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} urp_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct urp_trace_uring);
} urp_uring SEC(".maps");

/* floor(log2(v)), and 0 for 0: the slot of a log2 histogram. */
static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xffff) << 4;
	v >>= r;
	shift = (v > 0xff) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xf) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	return r | (v >> 1);
}

static __always_inline struct urp_trace_stats *stats_for_current(void)
{
	__u32 zero = 0;

	if (target_pid && (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return NULL;
	return bpf_map_lookup_elem(&urp_stats, &zero);
}

/*
 * The counts must equal the library's exactly. Uprobe programs run with migration disabled
 * but stay preemptible, so two threads on one CPU can interleave inside a handler: add
 * atomically even in a per-CPU value.
 */
SEC("usdt")
int BPF_USDT(urp_stale_reject, __u64 token, __u32 event_tick, __u32 current_tick)
{
	struct urp_trace_stats *st = stats_for_current();
	struct urp_trace_event *ev;
	__u32 lag, slot;
	__u64 flags;

	if (!st)
		return 0;
	__sync_fetch_and_add(&st->stale_rejects, 1);
	/* Ticks wrap at 2^15: the lag is the distance forward from the snapshot's tick. */
	lag = (current_tick - event_tick) & URP_TRACE_TICK_MASK;
	slot = log2_u32(lag);
	if (slot >= URP_TRACE_LAG_SLOTS)
		slot = URP_TRACE_LAG_SLOTS - 1;
	__sync_fetch_and_add(&st->lag_hist[slot], 1);

	if (!events_enabled)
		return 0;
	ev = bpf_ringbuf_reserve(&urp_events, sizeof(*ev), 0);
	if (!ev) {
		__sync_fetch_and_add(&st->lost_events, 1);
		return 0;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->token = token;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->tid = (__u32)bpf_get_current_pid_tgid();
	ev->event_tick = event_tick;
	ev->current_tick = current_tick;
	/* No wake-up per record: the reader drains once per interval, and is woken early only
	 * when the ring is half full, so a burst does not overflow it before the interval ends. */
	flags = bpf_ringbuf_query(&urp_events, BPF_RB_AVAIL_DATA) >= ring_wake_bytes ?
			BPF_RB_FORCE_WAKEUP :
			BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(ev, flags);
	return 0;
}

SEC("usdt")
int BPF_USDT(urp_wake_batch, __u64 token, __u32 size, __u32 ready)
{
	struct urp_trace_stats *st = stats_for_current();
	__u32 slot;

	if (!st)
		return 0;
	__sync_fetch_and_add(&st->wake_batches, 1);
	__sync_fetch_and_add(&st->wakes, size);
	slot = log2_u32(size);
	if (slot >= URP_TRACE_BATCH_SLOTS)
		slot = URP_TRACE_BATCH_SLOTS - 1;
	__sync_fetch_and_add(&st->batch_hist[slot], 1);
	return 0;
}

/* GPL-compatible: the USDT argument fetch uses bpf_probe_read_user(), a GPL-only helper. */
/*
 * The kernel's view, for --io-uring (loaded only then, and only with a target pid: the
 * tracepoints fire for every ring on the machine). A CQE is posted in the context of the
 * task that completes it: with DEFER_TASKRUN or task work that is the ring's owner thread.
 */
static __always_inline struct urp_trace_uring *uring_for_current(void)
{
	__u32 zero = 0;

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return NULL;
	return bpf_map_lookup_elem(&urp_uring, &zero);
}

SEC("tp/io_uring/io_uring_complete")
int urp_uring_complete(void *ctx)
{
	struct urp_trace_uring *u = uring_for_current();

	if (u)
		__sync_fetch_and_add(&u->completions, 1);
	return 0;
}

SEC("tp/io_uring/io_uring_cqe_overflow")
int urp_uring_overflow(void *ctx)
{
	struct urp_trace_uring *u = uring_for_current();

	if (u)
		__sync_fetch_and_add(&u->cqe_overflows, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
