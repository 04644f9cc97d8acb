/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench workloads `timer-restart` and `timer-stop-start`: a loop's timers under a
 * proxy's idle timeouts.
 *
 * T connections each hold an idle timer of one hour, all started before the timed region.
 * The loop then runs a pump callback on every iteration without blocking (a proxy busy with
 * traffic); each call makes a batch of TIMER_BATCH operations from inside the loop, as a
 * proxy's I/O callbacks would, and each operation is a connection picked by a seeded PRNG (the
 * same sequence for every backend) that had activity:
 *
 *   timer-restart     its idle timer is restarted: a start on an active timer, which moves
 *                     the deadline (later). Unit: one restart.
 *   timer-stop-start  its timer is stopped and started again (the connection closed and its
 *                     slot reused). Unit: one stop + start.
 *
 * No connection timer fires (one hour is far beyond any run, also under callgrind). To measure
 * lateness, every TIMER_FIRE_EVERY-th operation also starts one timer of a ring of
 * TIMER_FIRE_RING with a timeout of 1 or 2 ms (from the PRNG) and leaves it alone: a connection
 * gone quiet. At tens of millions of operations a second, up to about a hundred of them are
 * pending at once, beside the T idle timers. Their callback reads the clock: lateness is the
 * fire time minus the deadline asked for, the clock read just before the start plus the
 * timeout. A library that counts a timeout from its loop's cached time (libev's ev_now,
 * libuv's millisecond uv_now, libevent's coarse cached clock) may call it before that
 * deadline: such a fire counts 0 late in the histogram (shown as 1 ns, the histogram's floor
 * above "none"), and the early and earliest columns say how many and by how much.
 *
 * The pump sits where each library runs I/O callbacks relative to its timers: urpoll, libev
 * and libuv call the timers that came due before the next batch; libevent makes them active
 * after the iteration's other callbacks (timeout_process() follows the dispatch), so its
 * timers also wait for that iteration's batch.
 *
 * Each backend is written natively, with its idiomatic calls (the ops of struct timer_ops):
 *
 *   urpoll    struct urp_timer on a urp_loop: urp_timer_start() on the active timer, or
 *             urp_timer_stop() + urp_timer_start(); the pump is a task that wakes itself, so
 *             the loop turns without blocking.
 *   libev     ev_timer: ev_timer_again() (repeat = the idle timeout, libev's documented way to
 *             push an idle timeout back), or ev_timer_stop() + ev_timer_set() +
 *             ev_timer_start(); the pump is an ev_prepare watcher, and an empty ev_idle keeps
 *             the loop from blocking.
 *   libevent  evtimer_assign()ed events in one array: event_add() with the timeout on the
 *             pending event, or event_del() + event_add(); a base without lock (as be_libevent:
 *             once wakeup has called evthread_use_pthreads(), a default base would lock on
 *             every call) and libevent's default, coarse, clock. The pump is an event made
 *             active before each event_base_loop(EVLOOP_ONCE | EVLOOP_NONBLOCK), so the calls
 *             run inside the loop and use its cached time, as a proxy's callbacks would.
 *   libuv     uv_timer_t: uv_timer_start() on the active handle (libuv restarts it), or
 *             uv_timer_stop() + uv_timer_start(); the pump is a uv_idle_t.
 *   epoll     n/a: it has no timers (a timerfd per timer, or a heap of our own, would measure
 *             something else).
 *
 * Waits: one per loop iteration for each backend: urpoll's io_uring_enter calls, libev's
 * ev_iteration(), one event_base_loop() (one epoll_wait) for libevent and one pump call for
 * libuv (its epoll_wait per iteration: every libuv loop watches its signal pipe).
 *
 * Link order as wl_wakeup.c (libevent before libev).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <urpoll.h>

#include "bench.h"

#if __has_include(<ev.h>)
#define TIMER_LIBEV 1
#include <ev.h>
#endif
/* After ev.h: libevent's EV_* macros then win over libev's enum of the same names, and this
 * file uses only libevent's. */
#if __has_include(<event2/event.h>)
#define TIMER_LIBEVENT 1
#include <event2/event.h>
#endif
#if __has_include(<uv.h>)
#define TIMER_LIBUV 1
#include <uv.h>
#endif

/* Operations per call of the pump: one loop iteration each (a proxy's busy turn). */
#define TIMER_BATCH	 1024
#define TIMER_IDLE_MS	 3600000u /* the connections' idle timeout: never reached */
#define TIMER_FIRE_EVERY 1024	  /* operations per start of a timer that fires (power of 2) */
/* Fire timers, reused in turn: at TIMER_FIRE_EVERY operations of >= 10 ns, a slot comes round
 * after >= 160 ms, when its last start (1-2 ms) has long fired. Power of 2. */
#define TIMER_FIRE_RING	 16384
#define TIMER_SEED	 0x5eed71e5u

struct timer_run;

/* A timer that fires: where its callback finds the run and the deadline asked for. */
struct fire_slot {
	struct timer_run *tr;
	uint64_t deadline; /* ns, CLOCK_MONOTONIC */
};

struct timer_run {
	enum backend be;
	bool stop_start;
	unsigned conns;
	uint64_t target, done, rng;
	uint32_t fire_next;
	uint64_t pumps; /* calls of the pump: loop iterations */
	int err;
	struct hist *lat;
	uint64_t fired, early, earliest;
	uint64_t unexpected; /* connection timers that fired: never */
	uint64_t overdue;    /* fire timers still pending when their slot came round: never */
	struct fire_slot *fire;
	union {
		struct {
			struct urp_loop *loop;
			struct urp_timer *conn, *fire;
			struct urp_task pump;
		} urp;
#ifdef TIMER_LIBEV
		struct {
			struct ev_loop *loop;
			ev_timer *conn, *fire;
			ev_prepare pump;
			ev_idle spin;
		} ev;
#endif
#ifdef TIMER_LIBEVENT
		struct {
			struct event_base *base;
			/* conns + TIMER_FIRE_RING events of event_get_struct_event_size() */
			unsigned char *events;
			size_t size;
			struct event *pump;
		} le;
#endif
#ifdef TIMER_LIBUV
		struct {
			uv_loop_t loop;
			uv_timer_t *conn, *fire;
			uv_idle_t pump;
			bool loop_ok;
		} uv;
#endif
	};
};

/* The operations a batch makes, one set per backend. Each returns 0 or -errno. */
struct timer_ops {
	int (*restart)(struct timer_run *tr, unsigned i);
	int (*stop_start)(struct timer_run *tr, unsigned i);
	bool (*fire_pending)(struct timer_run *tr, unsigned f);
	int (*fire_start)(struct timer_run *tr, unsigned f, unsigned ms);
};

/* splitmix64: one 64-bit draw per operation. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * One pump call: up to TIMER_BATCH operations. Inlined into each backend's pump with its own
 * constant ops, so the calls into the library are direct. Returns whether the run is over
 * (every operation made, or one failed).
 */
static inline __attribute__((always_inline)) bool timer_batch(struct timer_run *tr,
							       const struct timer_ops *ops)
{
	uint64_t end = tr->done + TIMER_BATCH < tr->target ? tr->done + TIMER_BATCH : tr->target;
	int ret = 0;

	tr->pumps++;
	while (tr->done < end && ret >= 0) {
		uint64_t r = rng_next(&tr->rng);
		/* Lemire's multiply-shift: a connection in [0, conns) from the high half. */
		unsigned i = (unsigned)(((r >> 32) * tr->conns) >> 32);

		ret = tr->stop_start ? ops->stop_start(tr, i) : ops->restart(tr, i);
		if (++tr->done % TIMER_FIRE_EVERY == 0 && ret >= 0) {
			unsigned f = tr->fire_next++ % TIMER_FIRE_RING;

			tr->overdue += ops->fire_pending(tr, f);
			tr->fire[f].deadline = now_ns() + (1 + (r & 1)) * 1000000ull;
			ret = ops->fire_start(tr, f, 1 + (unsigned)(r & 1));
		}
	}
	if (ret < 0 && !tr->err)
		tr->err = ret;
	return tr->done >= tr->target || tr->err;
}

/* The callback of a fire timer, whatever the backend. */
static void fired(struct fire_slot *fs)
{
	struct timer_run *tr = fs->tr;
	int64_t late = (int64_t)(now_ns() - fs->deadline);

	tr->fired++;
	if (late < 0) {
		tr->early++;
		if ((uint64_t)-late > tr->earliest)
			tr->earliest = (uint64_t)-late;
		late = 0;
	}
	if (tr->lat)
		hist_add(tr->lat, late ? (uint64_t)late : 1);
}

/* ---- urpoll: urp_timer on a urp_loop ---- */

static void urp_conn_fired(struct urp_timer *t, void *arg)
{
	((struct timer_run *)arg)->unexpected++;
}

static void urp_fire_fired(struct urp_timer *t, void *arg)
{
	fired(arg);
}

static int urp_restart(struct timer_run *tr, unsigned i)
{
	return urp_timer_start(&tr->urp.conn[i], TIMER_IDLE_MS);
}

static int urp_stop_start(struct timer_run *tr, unsigned i)
{
	urp_timer_stop(&tr->urp.conn[i]);
	return urp_timer_start(&tr->urp.conn[i], TIMER_IDLE_MS);
}

static bool urp_fire_pending(struct timer_run *tr, unsigned f)
{
	return urp_timer_active(&tr->urp.fire[f]);
}

static int urp_fire_start(struct timer_run *tr, unsigned f, unsigned ms)
{
	urp_timer_stop(&tr->urp.fire[f]);
	return urp_timer_start(&tr->urp.fire[f], ms);
}

static const struct timer_ops urp_ops = { urp_restart, urp_stop_start, urp_fire_pending,
					  urp_fire_start };

static int urp_pump(struct urp_task *task, void *arg)
{
	struct timer_run *tr = arg;

	if (timer_batch(tr, &urp_ops)) {
		urp_loop_stop(tr->urp.loop);
		return URP_TASK_DONE;
	}
	urp_task_wake(task);
	return 0;
}

static int urp_open(struct timer_run *tr)
{
	int ret = urp_loop_new(&tr->urp.loop, NULL);

	if (ret < 0)
		return bench_fail(ret, "urp_loop_new");
	tr->urp.conn = calloc(tr->conns, sizeof(*tr->urp.conn));
	tr->urp.fire = calloc(TIMER_FIRE_RING, sizeof(*tr->urp.fire));
	if (!tr->urp.conn || !tr->urp.fire)
		return bench_fail(-ENOMEM, "timers");
	for (unsigned f = 0; f < TIMER_FIRE_RING; f++)
		urp_timer_init(&tr->urp.fire[f], tr->urp.loop, urp_fire_fired, &tr->fire[f]);
	for (unsigned i = 0; i < tr->conns; i++) {
		urp_timer_init(&tr->urp.conn[i], tr->urp.loop, urp_conn_fired, tr);
		ret = urp_timer_start(&tr->urp.conn[i], TIMER_IDLE_MS);
		if (ret < 0)
			return bench_fail(ret, "urp_timer_start");
	}
	urp_task_init(&tr->urp.pump, tr->urp.loop, urp_pump, tr);
	urp_task_wake(&tr->urp.pump);
	return 0;
}

static int urp_run(struct timer_run *tr)
{
	return urp_loop_run(tr->urp.loop);
}

static uint64_t urp_waits(struct timer_run *tr)
{
	struct urp_stats st;

	return urp_driver_stats(urp_loop_driver(tr->urp.loop), &st) < 0 ? 0 : st.enters;
}

static void urp_close(struct timer_run *tr)
{
	/* Active timers are dropped without being called. */
	if (tr->urp.loop)
		urp_loop_free(tr->urp.loop);
	free(tr->urp.conn);
	free(tr->urp.fire);
}

/* ---- libev: ev_timer ---- */

#ifdef TIMER_LIBEV
static void ev_conn_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	((struct timer_run *)w->data)->unexpected++;
}

static void ev_fire_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	fired(w->data);
}

static int ev_restart(struct timer_run *tr, unsigned i)
{
	/* repeat is the idle timeout: the deadline becomes ev_now() + repeat. */
	ev_timer_again(tr->ev.loop, &tr->ev.conn[i]);
	return 0;
}

static int ev_stop_start(struct timer_run *tr, unsigned i)
{
	ev_timer *w = &tr->ev.conn[i];

	ev_timer_stop(tr->ev.loop, w);
	ev_timer_set(w, TIMER_IDLE_MS / 1e3, TIMER_IDLE_MS / 1e3);
	ev_timer_start(tr->ev.loop, w);
	return 0;
}

static bool ev_fire_pending(struct timer_run *tr, unsigned f)
{
	return ev_is_active(&tr->ev.fire[f]);
}

static int ev_fire_start(struct timer_run *tr, unsigned f, unsigned ms)
{
	ev_timer *w = &tr->ev.fire[f];

	ev_timer_stop(tr->ev.loop, w);
	ev_timer_set(w, ms / 1e3, 0.);
	ev_timer_start(tr->ev.loop, w);
	return 0;
}

static const struct timer_ops ev_ops = { ev_restart, ev_stop_start, ev_fire_pending,
					 ev_fire_start };

static void ev_pump(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct timer_run *tr = w->data;

	if (timer_batch(tr, &ev_ops)) {
		ev_prepare_stop(loop, w);
		ev_idle_stop(loop, &tr->ev.spin);
		ev_break(loop, EVBREAK_ALL);
	}
}

static void ev_spin(struct ev_loop *loop, ev_idle *w, int revents)
{
}

static int ev_open(struct timer_run *tr)
{
	tr->ev.loop = ev_loop_new(EVBACKEND_EPOLL);
	if (!tr->ev.loop)
		return bench_fail(-ENOMEM, "ev_loop_new");
	tr->ev.conn = calloc(tr->conns, sizeof(*tr->ev.conn));
	tr->ev.fire = calloc(TIMER_FIRE_RING, sizeof(*tr->ev.fire));
	if (!tr->ev.conn || !tr->ev.fire)
		return bench_fail(-ENOMEM, "timers");
	for (unsigned f = 0; f < TIMER_FIRE_RING; f++) {
		ev_timer_init(&tr->ev.fire[f], ev_fire_fired, 0., 0.);
		tr->ev.fire[f].data = &tr->fire[f];
	}
	for (unsigned i = 0; i < tr->conns; i++) {
		ev_timer_init(&tr->ev.conn[i], ev_conn_fired, 0., TIMER_IDLE_MS / 1e3);
		tr->ev.conn[i].data = tr;
		ev_timer_again(tr->ev.loop, &tr->ev.conn[i]);
	}
	/* Prepare watchers run at the start of each iteration, so the timers that came due
	 * fire (after the poll) before the next batch, as with libev's own order of timers
	 * before I/O callbacks. An active idle watcher makes the poll non-blocking. */
	ev_prepare_init(&tr->ev.pump, ev_pump);
	tr->ev.pump.data = tr;
	ev_prepare_start(tr->ev.loop, &tr->ev.pump);
	ev_idle_init(&tr->ev.spin, ev_spin);
	ev_idle_start(tr->ev.loop, &tr->ev.spin);
	return 0;
}

static int ev_run_all(struct timer_run *tr)
{
	ev_run(tr->ev.loop, 0);
	return 0;
}

static uint64_t ev_waits(struct timer_run *tr)
{
	return ev_iteration(tr->ev.loop);
}

static void ev_close(struct timer_run *tr)
{
	/* The loop's heap points into the arrays: destroy it first. */
	if (tr->ev.loop)
		ev_loop_destroy(tr->ev.loop);
	free(tr->ev.conn);
	free(tr->ev.fire);
}
#endif

/* ---- libevent: timer events, event_add() with a timeout ---- */

#ifdef TIMER_LIBEVENT
static const struct timeval le_idle_tv = { TIMER_IDLE_MS / 1000, 0 };
static const struct timeval le_fire_tv[3] = { { 0, 0 }, { 0, 1000 }, { 0, 2000 } };

static struct event *le_event(struct timer_run *tr, unsigned n)
{
	return (struct event *)(tr->le.events + n * tr->le.size);
}

static void le_conn_fired(evutil_socket_t fd, short what, void *arg)
{
	((struct timer_run *)arg)->unexpected++;
}

static void le_fire_fired(evutil_socket_t fd, short what, void *arg)
{
	fired(arg);
}

static int le_restart(struct timer_run *tr, unsigned i)
{
	/* On a pending event, event_add() moves its timeout. */
	return event_add(le_event(tr, i), &le_idle_tv) < 0 ? -EIO : 0;
}

static int le_stop_start(struct timer_run *tr, unsigned i)
{
	struct event *ev = le_event(tr, i);

	event_del(ev);
	return event_add(ev, &le_idle_tv) < 0 ? -EIO : 0;
}

static bool le_fire_pending(struct timer_run *tr, unsigned f)
{
	return evtimer_pending(le_event(tr, tr->conns + f), NULL);
}

static int le_fire_start(struct timer_run *tr, unsigned f, unsigned ms)
{
	struct event *ev = le_event(tr, tr->conns + f);

	event_del(ev);
	return event_add(ev, &le_fire_tv[ms]) < 0 ? -EIO : 0;
}

static const struct timer_ops le_ops = { le_restart, le_stop_start, le_fire_pending,
					 le_fire_start };

static void le_pump(evutil_socket_t fd, short what, void *arg)
{
	timer_batch(arg, &le_ops);
}

static int le_open(struct timer_run *tr)
{
	struct event_config *cfg = event_config_new();

	if (!cfg)
		return bench_fail(-ENOMEM, "event_config_new");
	/* As be_libevent.c: epoll, no lock, no environment. */
	if (event_config_require_features(cfg, EV_FEATURE_ET | EV_FEATURE_O1) ||
	    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_IGNORE_ENV)) {
		event_config_free(cfg);
		return bench_fail(-EINVAL, "event_config");
	}
	tr->le.base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!tr->le.base)
		return bench_fail(-ENOSYS, "event_base_new_with_config");
	/* Linked after libev, libev's libevent 1.x emulation answers (see wl_wakeup.c). */
	if (!strcmp(event_base_get_method(tr->le.base), "libev")) {
		tr->le.base = NULL;
		return bench_fail(-ELIBBAD,
				  "libevent: libev's event_* took over, link libevent first");
	}
	tr->le.size = event_get_struct_event_size();
	tr->le.events = calloc((size_t)tr->conns + TIMER_FIRE_RING, tr->le.size);
	tr->le.pump = event_new(tr->le.base, -1, 0, le_pump, tr);
	if (!tr->le.events || !tr->le.pump)
		return bench_fail(-ENOMEM, "events");
	for (unsigned f = 0; f < TIMER_FIRE_RING; f++)
		evtimer_assign(le_event(tr, tr->conns + f), tr->le.base, le_fire_fired,
			       &tr->fire[f]);
	for (unsigned i = 0; i < tr->conns; i++) {
		evtimer_assign(le_event(tr, i), tr->le.base, le_conn_fired, tr);
		if (event_add(le_event(tr, i), &le_idle_tv) < 0)
			return bench_fail(-EIO, "event_add");
	}
	return 0;
}

static int le_run(struct timer_run *tr)
{
	while (tr->done < tr->target && !tr->err) {
		/* Active before the loop runs: its callback runs inside this one iteration, after
		 * the timers that are due were made active too, with the loop's time cached. */
		event_active(tr->le.pump, EV_TIMEOUT, 1);
		if (event_base_loop(tr->le.base, EVLOOP_ONCE | EVLOOP_NONBLOCK) < 0)
			return bench_fail(-EIO, "event_base_loop");
	}
	return 0;
}

static uint64_t le_waits(struct timer_run *tr)
{
	return tr->pumps;
}

static void le_close(struct timer_run *tr)
{
	/* event_base_free() deletes the pending events, in the array: free the base first. */
	if (tr->le.pump)
		event_free(tr->le.pump);
	if (tr->le.base)
		event_base_free(tr->le.base);
	free(tr->le.events);
}
#endif

/* ---- libuv: uv_timer_t ---- */

#ifdef TIMER_LIBUV
static void uv_conn_fired(uv_timer_t *t)
{
	((struct timer_run *)t->data)->unexpected++;
}

static void uv_fire_fired(uv_timer_t *t)
{
	fired(t->data);
}

static int uv_restart(struct timer_run *tr, unsigned i)
{
	/* On an active handle, uv_timer_start() restarts it. */
	return uv_timer_start(&tr->uv.conn[i], uv_conn_fired, TIMER_IDLE_MS, 0);
}

static int uv_stop_start(struct timer_run *tr, unsigned i)
{
	uv_timer_stop(&tr->uv.conn[i]);
	return uv_timer_start(&tr->uv.conn[i], uv_conn_fired, TIMER_IDLE_MS, 0);
}

static bool uv_fire_pending(struct timer_run *tr, unsigned f)
{
	return uv_is_active((uv_handle_t *)&tr->uv.fire[f]);
}

static int uv_fire_start(struct timer_run *tr, unsigned f, unsigned ms)
{
	uv_timer_stop(&tr->uv.fire[f]);
	return uv_timer_start(&tr->uv.fire[f], uv_fire_fired, ms, 0);
}

static const struct timer_ops uv_ops = { uv_restart, uv_stop_start, uv_fire_pending,
					 uv_fire_start };

static void uv_pump(uv_idle_t *idle)
{
	struct timer_run *tr = idle->data;

	if (timer_batch(tr, &uv_ops)) {
		uv_idle_stop(idle);
		uv_stop(idle->loop);
	}
}

static int uvt_open(struct timer_run *tr)
{
	int ret = uv_loop_init(&tr->uv.loop);

	if (ret < 0)
		return bench_fail(ret, "uv_loop_init");
	tr->uv.loop_ok = true;
	tr->uv.conn = calloc(tr->conns, sizeof(*tr->uv.conn));
	tr->uv.fire = calloc(TIMER_FIRE_RING, sizeof(*tr->uv.fire));
	if (!tr->uv.conn || !tr->uv.fire)
		return bench_fail(-ENOMEM, "timers");
	/* uv_timer_init() and uv_idle_init() cannot fail on a live loop. */
	for (unsigned f = 0; f < TIMER_FIRE_RING; f++) {
		uv_timer_init(&tr->uv.loop, &tr->uv.fire[f]);
		tr->uv.fire[f].data = &tr->fire[f];
	}
	for (unsigned i = 0; i < tr->conns; i++) {
		uv_timer_init(&tr->uv.loop, &tr->uv.conn[i]);
		tr->uv.conn[i].data = tr;
		ret = uv_timer_start(&tr->uv.conn[i], uv_conn_fired, TIMER_IDLE_MS, 0);
		if (ret < 0)
			return bench_fail(ret, "uv_timer_start");
	}
	uv_idle_init(&tr->uv.loop, &tr->uv.pump);
	tr->uv.pump.data = tr;
	uv_idle_start(&tr->uv.pump, uv_pump);
	return 0;
}

static int uvt_run(struct timer_run *tr)
{
	uv_run(&tr->uv.loop, UV_RUN_DEFAULT);
	return 0;
}

static uint64_t uvt_waits(struct timer_run *tr)
{
	return tr->pumps;
}

static void uvt_close(struct timer_run *tr)
{
	if (tr->uv.loop_ok) {
		/* Every handle initialised is closed (the arrays were filled in order, so a
		 * zeroed handle ends them), then the loop runs their close. */
		for (unsigned f = 0; tr->uv.fire && f < TIMER_FIRE_RING && tr->uv.fire[f].loop; f++)
			uv_close((uv_handle_t *)&tr->uv.fire[f], NULL);
		for (unsigned i = 0; tr->uv.conn && i < tr->conns && tr->uv.conn[i].loop; i++)
			uv_close((uv_handle_t *)&tr->uv.conn[i], NULL);
		if (tr->uv.pump.loop)
			uv_close((uv_handle_t *)&tr->uv.pump, NULL);
		uv_run(&tr->uv.loop, UV_RUN_DEFAULT);
		uv_loop_close(&tr->uv.loop);
	}
	free(tr->uv.conn);
	free(tr->uv.fire);
}
#endif

/* ---- the backends ---- */

struct timer_backend {
	int (*open)(struct timer_run *tr); /* on failure, close() releases what was made */
	int (*run)(struct timer_run *tr);  /* until the pump has made every operation */
	uint64_t (*waits)(struct timer_run *tr);
	void (*close)(struct timer_run *tr);
};

static const struct timer_backend timer_backends[BE_COUNT] = {
	[BE_URPOLL] = { urp_open, urp_run, urp_waits, urp_close },
#ifdef TIMER_LIBEV
	[BE_LIBEV] = { ev_open, ev_run_all, ev_waits, ev_close },
#endif
#ifdef TIMER_LIBEVENT
	[BE_LIBEVENT] = { le_open, le_run, le_waits, le_close },
#endif
#ifdef TIMER_LIBUV
	[BE_LIBUV] = { uvt_open, uvt_run, uvt_waits, uvt_close },
#endif
};

static int timer_run(enum backend be, bool stop_start, unsigned conns, uint64_t events,
		     struct run_result *res)
{
	const struct timer_backend *tb = be < BE_COUNT ? &timer_backends[be] : NULL;
	struct run_clock clk;
	struct timer_run *tr;
	uint64_t waits0;
	int ret;

	if (!tb || !tb->open)
		return -EOPNOTSUPP;
	tr = calloc(1, sizeof(*tr));
	if (!tr)
		return bench_fail(-ENOMEM, "timer");
	*tr = (struct timer_run){ .be = be, .stop_start = stop_start, .conns = conns,
				  .target = events, .rng = TIMER_SEED, .lat = res->lat };
	tr->fire = calloc(TIMER_FIRE_RING, sizeof(*tr->fire));
	if (!tr->fire) {
		ret = bench_fail(-ENOMEM, "timer");
		goto out_free_run;
	}
	for (unsigned f = 0; f < TIMER_FIRE_RING; f++)
		tr->fire[f].tr = tr;
	ret = tb->open(tr);
	if (ret < 0)
		goto out_close;
	waits0 = tb->waits(tr);
	run_clock_start(&clk);
	ret = tb->run(tr);
	run_clock_stop(&clk, res, tr->done, tb->waits(tr) - waits0);
	res->fired = tr->fired;
	res->early = tr->early;
	res->earliest_ns = tr->earliest;
	if (ret < 0)
		bench_fail(ret, "timer loop");
	else if (tr->err)
		ret = bench_fail(tr->err, "timer start");
	else if (tr->unexpected)
		ret = bench_fail(-EPROTO, "timer: an idle timer of one hour fired");
	else if (tr->overdue)
		ret = bench_fail(-ETIME, "timer: a 1-2 ms timer had not fired when its slot "
					 "came round");

out_close:
	tb->close(tr);
	free(tr->fire);
out_free_run:
	free(tr);
	return ret;
}

static int timer_restart(enum backend be, unsigned conns, uint64_t events, struct run_result *res)
{
	return timer_run(be, false, conns, events, res);
}

static int timer_stop_start(enum backend be, unsigned conns, uint64_t events,
			    struct run_result *res)
{
	return timer_run(be, true, conns, events, res);
}

const struct workload wl_timer[] = {
	{
		.name = "timer-restart",
		.what = "T idle timers (1 h) on a busy loop, a random one restarted (start on the "
			"active timer) per op, plus a 1-2 ms timer every 1,024 ops for lateness; "
			"ns per restart",
		.unit = "restart",
		.param_name = "T",
		.params = { 1000, 10000, 100000 },
		.nparams = 3,
		.events_full = 5000000,
		.events_quick = 500000,
		.events_smoke = 20000,
		.run = timer_restart,
		.metric = METRIC_NS_PER_UNIT,
	},
	{
		.name = "timer-stop-start",
		.what = "the same, each op a stop then a start of the random timer (a connection "
			"closed, its slot reused); ns per stop+start",
		.unit = "stop+start",
		.param_name = "T",
		.params = { 1000, 10000, 100000 },
		.nparams = 3,
		.events_full = 5000000,
		.events_quick = 500000,
		.events_smoke = 20000,
		.run = timer_stop_start,
		.metric = METRIC_NS_PER_UNIT,
	},
};
const unsigned wl_timer_count = sizeof(wl_timer) / sizeof(wl_timer[0]);
