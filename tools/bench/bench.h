/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: the contract between the harness (main.c and the files of harness.h), the
 * backends (be_*.c) and the workloads (wl_*.c).
 *
 * A backend is a readiness loop: it watches fds and calls a callback when one is ready. Every
 * workload that is about serving fds (notify, pingpong, churn, idle) is written once, against
 * struct bench_backend, so the server logic is the same code for urpoll, epoll, libev, libevent
 * and libuv: only the readiness mechanism differs. Workloads that are about one mechanism
 * (wakeup, word) implement each backend themselves and say which ones they support.
 *
 * The callback contract is edge-triggered, for every backend: a callback must consume until
 * the operation would block (read/accept until EAGAIN). A level-triggered backend (libev, libuv)
 * then simply finds the fd not ready; urpoll clears readiness with the tick it took before the
 * callback (a Set that landed meanwhile makes that clear stale, so the fd is called again);
 * epoll uses EPOLLET.
 *
 * A backend may also do the I/O itself (urpoll-ring: io_uring receives into buffers of its own
 * and sends from per-socket queues): it then has a struct bench_stream, and a workload that
 * moves bytes over connected sockets adds them with BENCH_STREAM and takes and sends through it
 * instead of read(2) and write(2), the server logic otherwise the same. Workloads that do not
 * move bytes that way answer -EOPNOTSUPP for such a backend (n/a): its readiness loop is
 * urpoll's, measured already.
 */
#ifndef URPOLL_BENCH_H
#define URPOLL_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

enum backend { BE_URPOLL, BE_URPOLL_RING, BE_EPOLL, BE_LIBEV, BE_LIBEVENT, BE_LIBUV, BE_COUNT };

/* ---- backends: readiness loops ---- */

#define BENCH_IN  0x1u
#define BENCH_OUT 0x2u
/* add() only, on a backend with a stream: it does the I/O of this connected stream socket.
 * BENCH_IN then means "a buffer (or the EOF, or an error) waits for take()", BENCH_OUT "the
 * send queue emptied or fell below its mark". */
#define BENCH_STREAM 0x4u

/* Called when fd is ready for some of the watched events (BENCH_IN/BENCH_OUT in `events`). */
typedef void (*bench_cb)(void *arg, unsigned events);

struct bench_loop;  /* one per backend instance, opaque */
struct bench_watch; /* one per watched fd, opaque */

/* A buffer received by a backend that does the I/O: data and len are the workload's to read
 * until it gives the buffer back (release) or sends it on (send_rx); buf is the backend's. */
struct bench_rx {
	const char *data;
	size_t len;
	void *buf;
};

/* The I/O of a backend that does it itself, on watches added with BENCH_STREAM; called on the
 * loop's thread (from callbacks, or between run_once() calls). */
struct bench_stream {
	/* The oldest buffer received on w, without a syscall: 1 with *rx, 0 at the peer's EOF,
	 * -EAGAIN when none is left (readiness cleared, tick-checked: the callback comes again
	 * with the next one; the edge-triggered contract's "until EAGAIN"), or -errno. */
	int (*take)(struct bench_watch *w, struct bench_rx *rx);
	/* Give a taken buffer back. */
	void (*release)(struct bench_rx *rx);
	/* Queue len bytes (copied) to be sent on w, in order after what is queued; they go out
	 * with the next run_once(). 0, or -EAGAIN (queue full: wait for BENCH_OUT), -errno. */
	int (*send)(struct bench_watch *w, const void *data, size_t len);
	/* Queue a taken buffer (rx->len bytes of it, received on any watch of the loop) to be
	 * sent on w as it is, without a copy: it is the backend's from then on. Returns as
	 * send(); on an error the buffer is still the workload's. */
	int (*send_rx)(struct bench_watch *w, struct bench_rx *rx);
	/* Bytes queued on w and not sent yet (0: everything went out). */
	size_t (*queued)(struct bench_watch *w);
};

struct bench_backend {
	const char *name;
	/* A loop able to watch up to max_fds fds at once. */
	int (*open)(struct bench_loop **lp, unsigned max_fds);
	/* Watch fd (O_NONBLOCK) for events; cb(arg, ready) until bench_del. */
	int (*add)(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		   struct bench_watch **w);
	/* Stop watching and release w; with close_fd, also close the fd, after the watch is
	 * stopped (urpoll: after its poll is removed), which only the backend can order. */
	int (*del)(struct bench_loop *lp, struct bench_watch *w, bool close_fd);
	/* Block until at least one watched fd is ready or timeout_ms passes (-1: forever, 0: no
	 * wait), then call the callback of every ready fd. Returns the number of callbacks made
	 * or -errno. Callbacks may add and del watches (including their own). */
	int (*run_once)(struct bench_loop *lp, int timeout_ms);
	/* Wait syscalls made so far (io_uring_enter, epoll_wait; the peers' epoll_wait). */
	uint64_t (*waits)(struct bench_loop *lp);
	void (*close)(struct bench_loop *lp);
	/* NULL for a readiness backend: the workload reads and writes its fds itself. */
	const struct bench_stream *stream;
};

/* NULL when the backend is not compiled in. */
extern const struct bench_backend *const bench_backends[BE_COUNT];
/* The backends themselves (be_<name>.c); the table refers to the peers weakly, so a build
 * without one shows it as n/a. */
extern const struct bench_backend be_urpoll, be_urpoll_ring, be_epoll, be_libev, be_libevent,
	be_libuv;
extern const char *const bench_backend_names[BE_COUNT];

/* ---- one timed run ---- */

/* Latency histogram, HDR-style: log-linear buckets (a power-of-two range split into 64 linear
 * sub-buckets), so any quantile is within 1/64 (1.6%) of the true value, from 1 ns to ~1 hour. */
#define HIST_SUB_BITS 6
#define HIST_BUCKETS  (42 << HIST_SUB_BITS)
struct hist {
	uint64_t count;
	uint64_t max;
	uint32_t buckets[HIST_BUCKETS];
};
void hist_reset(struct hist *h);
void hist_add(struct hist *h, uint64_t ns);
/* The value at quantile q (0..1), in ns; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
void hist_merge(struct hist *into, const struct hist *from);

struct run_result {
	uint64_t events;   /* unit of work the workload counts: see its `unit` */
	uint64_t bytes;	   /* payload bytes moved, when the workload moves any */
	uint64_t wall_ns;
	uint64_t cpu_ns;   /* user + system of the whole process (getrusage) */
	uint64_t server_cpu_ns; /* the serving thread or process only, when it is separate */
	uint64_t waits;	   /* io_uring_enter or epoll_wait calls */
	uint64_t syscalls; /* every syscall of the process in the timed region (tracepoint count) */
	uint64_t vcsw, ivcsw;
	uint64_t conn_min, conn_max; /* fairness: fewest and most requests served per connection */
	uint64_t rss_kb;	     /* idle: VmRSS growth over the registrations, when measured */
	uint64_t stale;		     /* word: clears refused as stale (-ESTALE) */
	/* timer: timers that fired, how many of them before the deadline asked for (they count
	 * 0 late in lat), and the most early of those, in ns. */
	uint64_t fired, early, earliest_ns;
	/* Per-request latency, when the workload measures it: the harness points lat at a reset
	 * histogram before each run; a workload adds to it (or points it at its own, valid until
	 * the harness calls run again). Left empty, the latency columns show "-". */
	struct hist *lat;
};

/* Timed region: wall, CPU, context switches, and the syscall count when available. */
struct run_clock {
	uint64_t t0, c0, csw[2], sys0;
	/* Of run_clock_start_loop(): the loop whose waits the region counts. */
	const struct bench_backend *b;
	struct bench_loop *lp;
	uint64_t waits0;
};
void run_clock_start(struct run_clock *clk);
/* Fills wall_ns, cpu_ns, vcsw, ivcsw, syscalls and events/waits. */
void run_clock_stop(const struct run_clock *clk, struct run_result *res, uint64_t events,
		    uint64_t waits);
/* run_clock_start(), counting the waits of loop lp of backend b from now on. */
void run_clock_start_loop(struct run_clock *clk, const struct bench_backend *b,
			  struct bench_loop *lp);
/* run_clock_stop() with the waits of that loop since run_clock_start_loop(). */
void run_clock_stop_loop(const struct run_clock *clk, struct run_result *res, uint64_t events);
/* Arm every watch of lp with one non-blocking turn (urpoll submits its polls on a turn), then
 * run_clock_start_loop(). Returns 0, or the turn's -errno (the clock is not started). */
int run_clock_arm(struct run_clock *clk, const struct bench_backend *b, struct bench_loop *lp);
/* Open the syscall counter (tracepoint raw_syscalls:sys_enter, this process and the threads
 * and children it starts afterwards): call once, before any thread starts. Returns 0, or
 * -errno with a sentence in why; run_result.syscalls then stays 0 and means "not counted". */
int bench_syscalls_open(char *why, size_t len);
bool bench_syscalls_counted(void);

/* ---- workloads ---- */

/* The figure the table leads with, its ratio against epoll and the plot. */
enum bench_metric {
	METRIC_NS_PER_UNIT,   /* wall ns per unit, lower is better (the default: zero) */
	METRIC_UNITS_PER_S,   /* units per second of wall time, higher is better */
	METRIC_LAT_P50,	      /* the run's latency p50, lower is better (needs res->lat) */
};

struct workload {
	const char *name;
	const char *what;	/* one line for --help */
	const char *unit;	/* "event", "request", "connection", ... */
	const char *param_name; /* "K", "N", ... */
	unsigned params[8];
	unsigned nparams;
	uint64_t events_full, events_quick, events_smoke;
	/* Runs one timed run with `events` units of work; -EOPNOTSUPP when the backend does not
	 * apply to this workload (the table shows n/a). */
	int (*run)(enum backend be, unsigned param, uint64_t events, struct run_result *res);
	enum bench_metric metric;
};

/* Variants of one workload (transport, message size, blocking or spinning) are separate
 * workload entries with names like "pingpong-tcp-1k"; the CLI selects by prefix. */
extern const struct workload wl_notify[], wl_pingpong[], wl_churn[], wl_idle[], wl_wakeup[],
	wl_word[], wl_timer[];
extern const unsigned wl_notify_count, wl_pingpong_count, wl_churn_count, wl_idle_count,
	wl_wakeup_count, wl_word_count, wl_timer_count;

/* ---- helpers shared by workloads ---- */

extern const char *bench_prog;
uint64_t now_ns(void);
/* Print "urpoll-bench: what: strerror(-err)" and return err. */
int bench_fail(int err, const char *what);
void close_fds(int *fds, unsigned n);
/* n connected socket pairs, non-blocking, AF_UNIX or loopback TCP (TCP_NODELAY): fds[2i] and
 * fds[2i + 1]. Returns 0, or -errno after a line on stderr (sockets.c, as the three below). */
int pairs_open(int *fds, unsigned pairs, bool tcp);
/* A listening TCP socket on 127.0.0.1, port chosen by the kernel (in *addr), blocking.
 * Returns the fd or -errno. */
struct sockaddr_in;
int bench_listen(struct sockaddr_in *addr, unsigned backlog);
/* A TCP_NODELAY connection to addr; with nonblock, connect may still be in progress. Returns
 * the fd or -errno. */
int bench_connect(const struct sockaddr_in *addr, bool nonblock);
int bench_nonblock(int fd);
/* Start fn(arg) on a new thread pinned to the nth CPU (0-based) the process may run on; with
 * fewer CPUs than that, unpinned. Returns 0 or -errno (cpu.c). */
int bench_thread_on_cpu(pthread_t *thread, unsigned nth, void *(*fn)(void *), void *arg);

/* ---- output (svg.c) ---- */

/* One bar of the plot: the median of a cell, with its min-max spread. */
struct plot_point {
	const char *workload;	/* "notify", "pingpong-tcp-1k", ... */
	const char *param_name; /* "K" */
	unsigned param;
	enum backend be;
	const char *metric; /* "ns/event", "requests/s", ... */
	bool higher_better;
	double median, lo, hi;
	double ratio; /* median against epoll's, NAN when epoll has no cell */
};
/* A self-contained SVG into f (the caller opens and closes it): one panel per workload, grouped
 * bars per parameter, one colour per backend, whiskers for the spread, readable without the
 * table. Returns 0, or -EIO when a write failed. */
int svg_write(FILE *f, const struct plot_point *pts, unsigned n, const char *title);

#endif
