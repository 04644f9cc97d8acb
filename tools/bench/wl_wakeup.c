/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workloads `wakeup-block` and `wakeup-spin`: cross-thread wake latency.
 *
 * A waiter thread (pinned to the second CPU) runs the backend's loop; a waker thread (pinned to
 * the first) stores a CLOCK_MONOTONIC stamp, then wakes the loop through the mechanism a user
 * of that library would use to hand it work from another thread. The waiter's callback reads
 * the clock: the difference, one sample per wake, goes into res->lat. The waker sends the next
 * wake only after the callback has acknowledged the last one and, for wakeup-block, after
 * /proc shows the waiter asleep again, so every sample is the wake of a thread that is really
 * blocked in the backend's wait. In wakeup-spin the waiter polls with a zero timeout instead.
 * The syscall count leaves out the waker's reads of /proc; CPU time includes its spinning.
 *
 *   urpoll    a task on a urp_loop, woken with urp_task_wake() (queues it and unparks the
 *             driver: an eventfd write seen by the ring); the loop blocks in
 *             urp_driver_turn(-1). Spinning: a second task that wakes itself every pass, so
 *             the loop turns with timeout 0, as a loop that always has work does.
 *   epoll     epoll_wait on an eventfd registered EPOLLET, woken by a write(2); with EPOLLET
 *             every write is a new edge, so the waiter need not read the counter back.
 *   libev     ev_async_send() to an ev_async watcher (ev_run EVRUN_ONCE / EVRUN_NOWAIT).
 *   libevent  event_active() from the other thread on an fd-less event, with
 *             evthread_use_pthreads() (event_base_loop EVLOOP_ONCE / EVLOOP_NONBLOCK).
 *   libuv     uv_async_send() to a uv_async_t (uv_run UV_RUN_ONCE / UV_RUN_NOWAIT).
 *
 * A peer whose header is missing at build time is n/a. Link: libevent, libevent_pthreads and
 * libuv (pkg-config), then -lev: libevent must come first (see le_open()).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <urpoll.h>

#include "bench.h"

#if __has_include(<ev.h>)
#define WAKE_LIBEV 1
#include <ev.h>
#endif
#if __has_include(<event2/thread.h>)
#define WAKE_LIBEVENT 1
#include <event2/event.h>
#include <event2/thread.h>
#endif
#if __has_include(<uv.h>)
#define WAKE_LIBUV 1
#include <uv.h>
#endif

#define CACHELINE 128
/* No acknowledgement this long after a wake: the wake was lost. */
#define WAKE_LOST_NS   5000000000ull
/* The waiter not asleep this long after its acknowledgement: wake it anyway. */
#define ASLEEP_WAIT_NS 1000000000ull

struct wake_run {
	enum backend be;
	bool spin;
	uint64_t target;
	struct hist *lat;
	uint64_t waits; /* the waiter's wait calls (the peers' loop iterations) */
	int ret;	/* the waiter's loop error, if any */
	int waker_ret;	/* -ETIMEDOUT when a wake got no callback */
	uint64_t proc_syscalls; /* the waker's open, pread and close of /proc: not the wake's */
	pid_t waiter_tid;
	union {
		struct {
			struct urp_loop *loop;
			struct urp_task task, spinner;
		} urp;
		struct {
			int ep, efd;
		} ep;
#ifdef WAKE_LIBEV
		struct {
			struct ev_loop *loop;
			ev_async async;
		} ev;
#endif
#ifdef WAKE_LIBEVENT
		struct {
			struct event_base *base;
			struct event *ev;
		} le;
#endif
#ifdef WAKE_LIBUV
		struct {
			uv_loop_t loop;
			uv_async_t async;
		} uv;
#endif
	};
	/* Written by the waker, read by the waiter, and the other way round: a line each. */
	_Alignas(CACHELINE) uint64_t stamp;
	_Alignas(CACHELINE) uint64_t acked;
	_Alignas(CACHELINE) unsigned started, aborted;
};

/* The waiter's callback, whatever the backend. */
static void woken(struct wake_run *wr)
{
	uint64_t t = now_ns();
	/* Pairs with the release store of stamp in waker_main(). */
	uint64_t stamp = __atomic_load_n(&wr->stamp, __ATOMIC_ACQUIRE);

	if (wr->lat)
		hist_add(wr->lat, t - stamp);
	/* Pairs with the acquire loads of acked in waker_main(). */
	__atomic_store_n(&wr->acked, wr->acked + 1, __ATOMIC_RELEASE);
}

static bool waiter_done(struct wake_run *wr)
{
	return wr->acked >= wr->target || __atomic_load_n(&wr->aborted, __ATOMIC_ACQUIRE);
}

/* ---- urpoll: a task on a urp_loop ---- */

static int urp_task_run(struct urp_task *task, void *arg)
{
	struct wake_run *wr = arg;

	woken(wr);
	if (waiter_done(wr))
		urp_loop_stop(wr->urp.loop);
	return 0;
}

static int urp_spinner_run(struct urp_task *task, void *arg)
{
	struct wake_run *wr = arg;

	if (waiter_done(wr)) {
		urp_loop_stop(wr->urp.loop);
		return URP_TASK_DONE;
	}
	urp_task_wake(task);
	return 0;
}

static int urp_open(struct wake_run *wr)
{
	int ret = urp_loop_new(&wr->urp.loop, NULL);

	if (ret < 0)
		return bench_fail(ret, "urp_loop_new");
	urp_task_init(&wr->urp.task, wr->urp.loop, urp_task_run, wr);
	urp_task_init(&wr->urp.spinner, wr->urp.loop, urp_spinner_run, wr);
	if (wr->spin)
		urp_task_wake(&wr->urp.spinner);
	return 0;
}

static uint64_t urp_enters(struct wake_run *wr)
{
	struct urp_stats st;

	return urp_driver_stats(urp_loop_driver(wr->urp.loop), &st) < 0 ? 0 : st.enters;
}

static void urp_wait_all(struct wake_run *wr)
{
	uint64_t enters0 = urp_enters(wr);

	wr->ret = urp_loop_run(wr->urp.loop);
	wr->waits = urp_enters(wr) - enters0;
}

/* ---- epoll: an eventfd, EPOLLET ---- */

static int ep_open(struct wake_run *wr)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };

	wr->ep.ep = epoll_create1(EPOLL_CLOEXEC);
	if (wr->ep.ep < 0)
		return bench_fail(-errno, "epoll_create1");
	wr->ep.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wr->ep.efd < 0 || epoll_ctl(wr->ep.ep, EPOLL_CTL_ADD, wr->ep.efd, &ev) < 0) {
		int err = bench_fail(-errno, "eventfd");

		if (wr->ep.efd >= 0)
			close(wr->ep.efd);
		close(wr->ep.ep);
		return err;
	}
	return 0;
}

static int ep_run_once(struct wake_run *wr)
{
	struct epoll_event evs[4];
	int n = epoll_wait(wr->ep.ep, evs, 4, wr->spin ? 0 : -1);

	wr->waits++;
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n > 0)
		woken(wr);
	return 0;
}

static void ep_wake(struct wake_run *wr)
{
	uint64_t one = 1;

	if (write(wr->ep.efd, &one, sizeof(one)) < 0)
		bench_fail(-errno, "eventfd write");
}

static void ep_close(struct wake_run *wr)
{
	close(wr->ep.efd);
	close(wr->ep.ep);
}

/* ---- libev: ev_async ---- */

#ifdef WAKE_LIBEV
static void ev_woken(struct ev_loop *loop, ev_async *w, int revents)
{
	woken(w->data);
}

static int ev_open(struct wake_run *wr)
{
	wr->ev.loop = ev_loop_new(EVBACKEND_EPOLL);
	if (!wr->ev.loop)
		return bench_fail(-ENOMEM, "ev_loop_new");
	ev_async_init(&wr->ev.async, ev_woken);
	wr->ev.async.data = wr;
	ev_async_start(wr->ev.loop, &wr->ev.async);
	return 0;
}

static int ev_run_once(struct wake_run *wr)
{
	ev_run(wr->ev.loop, wr->spin ? EVRUN_NOWAIT : EVRUN_ONCE);
	wr->waits++;
	return 0;
}

static void ev_close(struct wake_run *wr)
{
	ev_async_stop(wr->ev.loop, &wr->ev.async);
	ev_loop_destroy(wr->ev.loop);
}
#endif

/* ---- libevent: event_active() from the waker ---- */

#ifdef WAKE_LIBEVENT
static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_ret;

static void evthread_setup(void)
{
	evthread_ret = evthread_use_pthreads();
}

static void le_woken(evutil_socket_t fd, short what, void *arg)
{
	woken(arg);
}

static int le_open(struct wake_run *wr)
{
	pthread_once(&evthread_once, evthread_setup);
	if (evthread_ret < 0)
		return bench_fail(-ENOSYS, "evthread_use_pthreads");
	/* Created after evthread_use_pthreads(): the base has a lock and a notify fd. */
	wr->le.base = event_base_new();
	if (!wr->le.base)
		return bench_fail(-ENOMEM, "event_base_new");
	/* Linked after libev, libev's libevent 1.x emulation answers these calls (its base is
	 * no libevent base: leak it rather than free it with the other library). */
	if (!strcmp(event_base_get_method(wr->le.base), "libev"))
		return bench_fail(-ELIBBAD, "libevent: libev's event_* took over, link libevent first");
	wr->le.ev = event_new(wr->le.base, -1, 0, le_woken, wr);
	if (!wr->le.ev) {
		event_base_free(wr->le.base);
		return bench_fail(-ENOMEM, "event_new");
	}
	return 0;
}

static int le_run_once(struct wake_run *wr)
{
	/* The event is never added, so the base looks empty: do not let that end the loop. */
	int flags = (wr->spin ? EVLOOP_NONBLOCK : EVLOOP_ONCE) | EVLOOP_NO_EXIT_ON_EMPTY;

	wr->waits++;
	return event_base_loop(wr->le.base, flags) < 0 ? -EIO : 0;
}

static void le_close(struct wake_run *wr)
{
	event_free(wr->le.ev);
	event_base_free(wr->le.base);
}
#endif

/* ---- libuv: uv_async_t ---- */

#ifdef WAKE_LIBUV
static void uv_woken(uv_async_t *async)
{
	woken(async->data);
}

static int uvw_open(struct wake_run *wr)
{
	int ret = uv_loop_init(&wr->uv.loop);

	if (ret < 0)
		return bench_fail(ret, "uv_loop_init");
	ret = uv_async_init(&wr->uv.loop, &wr->uv.async, uv_woken);
	if (ret < 0) {
		uv_loop_close(&wr->uv.loop);
		return bench_fail(ret, "uv_async_init");
	}
	wr->uv.async.data = wr;
	return 0;
}

static int uvw_run_once(struct wake_run *wr)
{
	uv_run(&wr->uv.loop, wr->spin ? UV_RUN_NOWAIT : UV_RUN_ONCE);
	wr->waits++;
	return 0;
}

static void uvw_close(struct wake_run *wr)
{
	uv_close((uv_handle_t *)&wr->uv.async, NULL);
	uv_run(&wr->uv.loop, UV_RUN_DEFAULT);
	uv_loop_close(&wr->uv.loop);
}
#endif

/* ---- the backends ---- */

struct wake_ops {
	int (*open)(struct wake_run *wr);
	int (*run_once)(struct wake_run *wr); /* NULL: wait_all runs the whole loop */
	void (*wait_all)(struct wake_run *wr);
	void (*wake)(struct wake_run *wr);
	void (*close)(struct wake_run *wr);
};

static void urp_wake(struct wake_run *wr)
{
	urp_task_wake(&wr->urp.task);
}

static void urp_close(struct wake_run *wr)
{
	urp_loop_free(wr->urp.loop);
}

#ifdef WAKE_LIBEV
static void ev_wake(struct wake_run *wr)
{
	ev_async_send(wr->ev.loop, &wr->ev.async);
}
#endif

#ifdef WAKE_LIBEVENT
static void le_wake(struct wake_run *wr)
{
	event_active(wr->le.ev, EV_READ, 0);
}
#endif

#ifdef WAKE_LIBUV
static void uvw_wake(struct wake_run *wr)
{
	uv_async_send(&wr->uv.async);
}
#endif

static const struct wake_ops wake_ops[BE_COUNT] = {
	[BE_URPOLL] = { urp_open, NULL, urp_wait_all, urp_wake, urp_close },
	[BE_EPOLL] = { ep_open, ep_run_once, NULL, ep_wake, ep_close },
#ifdef WAKE_LIBEV
	[BE_LIBEV] = { ev_open, ev_run_once, NULL, ev_wake, ev_close },
#endif
#ifdef WAKE_LIBEVENT
	[BE_LIBEVENT] = { le_open, le_run_once, NULL, le_wake, le_close },
#endif
#ifdef WAKE_LIBUV
	[BE_LIBUV] = { uvw_open, uvw_run_once, NULL, uvw_wake, uvw_close },
#endif
};

/* ---- the two threads ---- */

static void *waiter_main(void *arg)
{
	struct wake_run *wr = arg;
	const struct wake_ops *ops = &wake_ops[wr->be];
	int ret = 0;

	wr->waiter_tid = gettid();
	/* Pairs with the acquire load in waker_main(). */
	__atomic_store_n(&wr->started, 1, __ATOMIC_RELEASE);
	if (ops->wait_all) {
		ops->wait_all(wr);
		return NULL;
	}
	while (!waiter_done(wr) && ret >= 0)
		ret = ops->run_once(wr);
	wr->ret = ret;
	return NULL;
}

/* Whether the waiter sleeps (state S or D in /proc): it is parked in the backend's wait. */
static bool waiter_asleep(struct wake_run *wr, int stat_fd)
{
	char buf[512], *paren;
	ssize_t n = pread(stat_fd, buf, sizeof(buf) - 1, 0);

	wr->proc_syscalls++;

	if (n <= 0)
		return true;
	buf[n] = '\0';
	/* "tid (comm) S ...": comm may hold spaces and parentheses, the last ')' ends it. */
	paren = strrchr(buf, ')');
	return !paren || paren[1] != ' ' || paren[2] == 'S' || paren[2] == 'D';
}

static void wait_asleep(struct wake_run *wr, int stat_fd)
{
	uint64_t t0 = now_ns();

	while (!waiter_asleep(wr, stat_fd) && now_ns() - t0 < ASLEEP_WAIT_NS)
		;
}

static void *waker_main(void *arg)
{
	struct wake_run *wr = arg;
	const struct wake_ops *ops = &wake_ops[wr->be];
	int stat_fd = -1;
	char path[64];
	uint64_t i, t0;

	/* Pairs with the release store in waiter_main(). */
	while (!__atomic_load_n(&wr->started, __ATOMIC_ACQUIRE))
		;
	if (!wr->spin) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)wr->waiter_tid);
		stat_fd = open(path, O_RDONLY | O_CLOEXEC);
		/* With the close at the end. */
		wr->proc_syscalls += 2;
	}
	for (i = 0; i < wr->target; i++) {
		if (stat_fd >= 0)
			wait_asleep(wr, stat_fd);
		/* Pairs with the acquire load in woken(). */
		__atomic_store_n(&wr->stamp, now_ns(), __ATOMIC_RELEASE);
		ops->wake(wr);
		t0 = now_ns();
		/* Pairs with the release store in woken(). */
		while (__atomic_load_n(&wr->acked, __ATOMIC_ACQUIRE) <= i) {
			if (now_ns() - t0 > WAKE_LOST_NS)
				goto out_lost;
		}
	}
	if (stat_fd >= 0)
		close(stat_fd);
	return NULL;

out_lost:
	bench_fail(-ETIMEDOUT, "wakeup: a wake got no callback within 5 s");
	wr->waker_ret = -ETIMEDOUT;
	__atomic_store_n(&wr->aborted, 1, __ATOMIC_RELEASE);
	/* One more wake, so a waiter that is parked sees aborted and leaves. */
	ops->wake(wr);
	if (stat_fd >= 0)
		close(stat_fd);
	return NULL;
}

static int wakeup_run(enum backend be, bool spin, uint64_t events, struct run_result *res)
{
	const struct wake_ops *ops = be < BE_COUNT ? &wake_ops[be] : NULL;
	pthread_t waiter, waker;
	struct run_clock clk;
	struct wake_run *wr;
	int ret;

	if (!ops || !ops->open)
		return -EOPNOTSUPP;
	wr = aligned_alloc(CACHELINE, sizeof(*wr));
	if (!wr)
		return bench_fail(-ENOMEM, "wakeup");
	*wr = (struct wake_run){ .be = be, .spin = spin, .target = events, .lat = res->lat };
	ret = ops->open(wr);
	if (ret < 0)
		goto out_free_run;
	run_clock_start(&clk);
	ret = bench_thread_on_cpu(&waiter, 1, waiter_main, wr);
	if (ret < 0) {
		bench_fail(ret, "waiter thread");
		goto out_close;
	}
	ret = bench_thread_on_cpu(&waker, 0, waker_main, wr);
	if (ret < 0) {
		bench_fail(ret, "waker thread");
		/* The waiter is (or soon is) parked with nothing to come: end it like a lost
		 * wake does. */
		__atomic_store_n(&wr->aborted, 1, __ATOMIC_RELEASE);
		ops->wake(wr);
		pthread_join(waiter, NULL);
		goto out_close;
	}
	pthread_join(waker, NULL);
	pthread_join(waiter, NULL);
	run_clock_stop(&clk, res, wr->acked, wr->waits);
	if (res->syscalls >= wr->proc_syscalls)
		res->syscalls -= wr->proc_syscalls;
	ret = wr->waker_ret ? wr->waker_ret : wr->ret;
	if (wr->ret < 0)
		bench_fail(wr->ret, "wakeup waiter");

out_close:
	ops->close(wr);
out_free_run:
	free(wr);
	return ret;
}

static int wakeup_block(enum backend be, unsigned param, uint64_t events, struct run_result *res)
{
	return wakeup_run(be, false, events, res);
}

static int wakeup_spin(enum backend be, unsigned param, uint64_t events, struct run_result *res)
{
	return wakeup_run(be, true, events, res);
}

const struct workload wl_wakeup[] = {
	{
		.name = "wakeup-block",
		.what = "cross-thread wake of a loop blocked in its wait (urp_task_wake, eventfd, "
			"ev_async, event_active, uv_async): latency to the callback",
		.unit = "wake",
		.param_name = "",
		.params = { 0 },
		.nparams = 1,
		.events_full = 10000,
		.events_quick = 1000,
		.events_smoke = 50,
		.run = wakeup_block,
		.metric = METRIC_LAT_P50,
	},
	{
		.name = "wakeup-spin",
		.what = "the same wake to a loop that polls with timeout 0 instead of blocking: "
			"latency to the callback",
		.unit = "wake",
		.param_name = "",
		.params = { 0 },
		.nparams = 1,
		.events_full = 20000,
		.events_quick = 2000,
		.events_smoke = 50,
		.run = wakeup_spin,
		.metric = METRIC_LAT_P50,
	},
};
const unsigned wl_wakeup_count = sizeof(wl_wakeup) / sizeof(wl_wakeup[0]);
