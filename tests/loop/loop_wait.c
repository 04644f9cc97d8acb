// SPDX-License-Identifier: MIT
/*
 * loop_wait: blocking waits (urp_io_wait) for thread-per-connection code, served by a driver
 * turning on its own thread (urp_driver_spawn / urp_driver_join): docs/design.md, "Blocking
 * waits", and docs/threads.md.
 *
 * A wait returns 0 with the readiness once a peer writes (never before), -ETIMEDOUT when nothing
 * comes (timeout 0 only polls), -ESHUTDOWN when the driver shuts down under it or already did,
 * -EINVAL on bad arguments, -EDEADLK where nothing could ever end it. Many threads wait at once;
 * SIGALRM at 1 kHz ends no wait; a timed-out wait leaves nothing behind on its dead stack frame.
 * A thread-per-connection echo server is loop_wait_echo's, urp_driver_join() loop_join's.
 *
 * Where a test needs a thread to be parked in urp_io_wait() before it acts, it checks the
 * thread's syscall in /proc (wait_parked()); waits that must end carry a finite timeout, so a
 * lost wake fails as -ETIMEDOUT instead of hanging.
 */
#include <signal.h>
#include <sys/time.h>

#include "loop_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_wait, .init = setup, .timeout = 120);

/* ---- a thread blocked in urp_io_wait() ---- */

static __thread atomic_int *signal_counter; /* this thread's count, if it keeps one */
static atomic_int signals_total;

static void on_alarm(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals_total, 1);
	if (signal_counter)
		atomic_fetch_add(signal_counter, 1);
}

struct waiter {
	pthread_t thread;
	struct urp_io *io;
	unsigned interest;
	int timeout_ms;
	atomic_int *written; /* set by the test right before it writes to the peer */
	atomic_int tid;
	atomic_int finished;
	atomic_int signals; /* SIGALRMs handled on this thread while it waited */
	int ret;
	struct urp_event ev;
	bool written_at_return; /* the write had been issued when the wait returned */
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	sigset_t alrm;

	/* Wait with SIGALRM deliverable here, whatever the creating thread blocked. */
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	signal_counter = &w->signals;
	atomic_store(&w->tid, (int)gettid_compat());
	w->ret = urp_io_wait(w->io, w->interest, w->timeout_ms, &w->ev);
	w->written_at_return = w->written && atomic_load(w->written);
	signal_counter = NULL;
	atomic_store(&w->finished, 1);
	return NULL;
}

static void waiter_start(struct waiter *w, struct urp_io *io, unsigned interest, int timeout_ms,
			 atomic_int *written)
{
	memset(w, 0, sizeof(*w));
	w->io = io;
	w->interest = interest;
	w->timeout_ms = timeout_ms;
	w->written = written;
	atomic_init(&w->tid, 0);
	atomic_init(&w->finished, 0);
	atomic_init(&w->signals, 0);
	cr_assert_eq(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

/* Bounded: the waiter started and sits parked in its futex (when /proc can tell). */
static bool waiter_parked(struct waiter *w)
{
	if (!WAIT_UNTIL(atomic_load(&w->tid) != 0, BOUND_S))
		return false;
	return wait_parked((pid_t)atomic_load(&w->tid));
}

static void waiter_join(struct waiter *w)
{
	cr_assert(WAIT_UNTIL(atomic_load(&w->finished), BOUND_S + 5),
		  "urp_io_wait() did not return (timeout %d ms)", w->timeout_ms);
	cr_assert_eq(pthread_join(w->thread, NULL), 0);
}

static void assert_ready_result(const struct waiter *w, unsigned want, const char *who)
{
	char b[80];

	cr_assert_eq(w->ret, 0, "%s: urp_io_wait: %d (%s)", who, w->ret, strerror(-w->ret));
	cr_assert(w->ev.ready & want, "%s: returned 0 with readiness %s", who,
		  ready_str(w->ev.ready, b));
	cr_assert_not(w->ev.shutdown, "%s", who);
}

/* ---- ready, timed out, polled ---- */

Test(loop_wait, returns_readable_once_a_peer_writes)
{
	struct urp_driver *d = spawn_or_fail();
	atomic_int written;
	struct waiter w;
	struct urp_io *io;
	char byte = 0;
	int sv[2];

	atomic_init(&written, 0);
	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	waiter_start(&w, io, URP_READABLE, WAIT_MS, &written);
	cr_assert(waiter_parked(&w), "the waiter never parked");
	cr_assert_eq(atomic_load(&w.finished), 0, "urp_io_wait returned %d with nothing written",
		     w.ret);

	atomic_store(&written, 1);
	write_all(sv[1], "x", 1);
	waiter_join(&w);
	assert_ready_result(&w, URP_READABLE, "waiter");
	cr_assert(w.written_at_return, "the wait returned before the peer wrote");
	cr_assert_eq(read(sv[0], &byte, 1), 1);
	cr_assert_eq(byte, 'x');

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

Test(loop_wait, returns_at_once_when_already_ready)
{
	struct urp_driver *d = spawn_or_fail();
	struct urp_event ev;
	struct urp_io *io;
	int sv[2], ret;

	unix_pair(sv);
	write_all(sv[1], "x", 1);
	io = reg_or_fail(d, sv[0], URP_READABLE | URP_WRITABLE);
	ret = urp_io_wait(io, URP_READABLE, WAIT_MS, &ev);
	cr_assert_eq(ret, 0, "urp_io_wait(READABLE): %d", ret);
	cr_assert(ev.ready & URP_READABLE);
	ret = urp_io_wait(io, URP_WRITABLE, WAIT_MS, &ev);
	cr_assert_eq(ret, 0, "urp_io_wait(WRITABLE): %d", ret);
	cr_assert(ev.ready & URP_WRITABLE);
	cr_assert_not(ev.ready & URP_READABLE, "a WRITABLE wait reported READABLE");

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

Test(loop_wait, times_out_when_nothing_happens)
{
	struct urp_driver *d = spawn_or_fail();
	struct urp_event ev;
	struct urp_io *io;
	int sv[2], ret;

	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	ret = urp_io_wait(io, URP_READABLE, 50, &ev);
	cr_assert_eq(ret, -ETIMEDOUT, "urp_io_wait(50 ms) on a silent socket: %d", ret);
	/* Twice: the first wait's cancellation left the entry usable. */
	ret = urp_io_wait(io, URP_READABLE, 50, &ev);
	cr_assert_eq(ret, -ETIMEDOUT, "second urp_io_wait(50 ms): %d", ret);

	write_all(sv[1], "x", 1);
	ret = urp_io_wait(io, URP_READABLE, WAIT_MS, &ev);
	cr_assert_eq(ret, 0, "urp_io_wait after a write: %d", ret);
	cr_assert(ev.ready & URP_READABLE);

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

Test(loop_wait, timeout_zero_polls_without_blocking)
{
	struct urp_driver *d = spawn_or_fail();
	struct urp_event ev;
	struct urp_io *io;
	int sv[2], ret;

	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	/* With nothing to come, a blocking poll would hang the test into its timeout. */
	for (int i = 0; i < 100; i++) {
		ret = urp_io_wait(io, URP_READABLE, 0, &ev);
		cr_assert_eq(ret, -ETIMEDOUT, "poll %d of a silent socket: %d", i, ret);
	}
	write_all(sv[1], "x", 1);
	cr_assert(WAIT_UNTIL(io_ready(io) & URP_READABLE, BOUND_S),
		  "the driver thread never reported the write");
	ret = urp_io_wait(io, URP_READABLE, 0, &ev);
	cr_assert_eq(ret, 0, "poll of a readable socket: %d", ret);
	cr_assert(ev.ready & URP_READABLE);

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

/* ---- shutdown ---- */

Test(loop_wait, shutdown_while_waiting_returns_eshutdown)
{
	struct urp_driver *d = spawn_or_fail();
	struct waiter w;
	struct urp_event ev;
	struct urp_io *io, *other = NULL;
	int sv[2], ret;

	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	waiter_start(&w, io, URP_READABLE, WAIT_MS, NULL);
	cr_assert(waiter_parked(&w), "the waiter never parked");

	urp_driver_shutdown(d); /* from this thread, not the driver's */
	waiter_join(&w);
	cr_assert_eq(w.ret, -ESHUTDOWN, "wait across urp_driver_shutdown(): %d", w.ret);

	/* Already shut down: at once, whatever the interest or timeout. */
	ret = urp_io_wait(io, URP_READABLE, -1, &ev);
	cr_assert_eq(ret, -ESHUTDOWN, "wait after shutdown: %d", ret);
	ret = urp_io_wait(io, URP_WRITABLE, 0, &ev);
	cr_assert_eq(ret, -ESHUTDOWN, "poll after shutdown: %d", ret);
	cr_assert_eq(urp_register(d, sv[1], URP_READABLE, &other), -ESHUTDOWN);

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

Test(loop_wait, shutdown_before_wait_returns_eshutdown)
{
	struct urp_driver *d = spawn_or_fail();
	struct urp_event ev;
	struct urp_io *io;
	int sv[2], ret;

	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	urp_driver_shutdown(d);
	/* The shutdown reaches the entry on the driver thread's next turn: the wait ends then. */
	ret = urp_io_wait(io, URP_READABLE, WAIT_MS, &ev);
	cr_assert_eq(ret, -ESHUTDOWN, "wait after urp_driver_shutdown(): %d", ret);
	ret = urp_io_wait(io, URP_READABLE, -1, &ev);
	cr_assert_eq(ret, -ESHUTDOWN, "second wait: %d", ret);

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

/* ---- bad arguments ---- */

Test(loop_wait, bad_args_einval)
{
	struct urp_driver_opts bad_opts = {.flags = 0x100};
	struct urp_driver *d = spawn_or_fail(), *none = NULL;
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	cr_assert_eq(urp_io_wait(NULL, URP_READABLE, 0, &ev), -EINVAL);
	cr_assert_eq(urp_io_wait(io, URP_READABLE, 0, NULL), -EINVAL);
	cr_assert_eq(urp_io_wait(io, 0, 0, &ev), -EINVAL, "empty interest");
	cr_assert_eq(urp_io_wait(io, URP_READ_CLOSED, 0, &ev), -EINVAL, "READ_CLOSED interest");
	cr_assert_eq(urp_io_wait(io, 0x40, 0, &ev), -EINVAL, "unknown interest bit");
	cr_assert_eq(urp_io_wait(io, URP_READABLE, -2, &ev), -EINVAL, "timeout -2");
	cr_assert_eq(urp_io_wait(io, URP_READABLE, -1000, &ev), -EINVAL, "timeout -1000");

	cr_assert_eq(urp_driver_spawn(NULL, NULL), -EINVAL);
	cr_assert_eq(urp_driver_spawn(&none, &bad_opts), -EINVAL, "bad options accepted");
	cr_assert_null(none);
	urp_driver_join(NULL);

	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}

/* ---- waits that nothing could ever end ---- */

/* On the thread that turns the driver, a wait could only time out (or, with -1, hang for
 * ever): nothing else turns the ring that would make the entry ready. */
Test(loop_wait, wait_on_the_turning_thread_is_edeadlk)
{
	struct urp_driver *d;
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	cr_assert_eq(urp_driver_new(&d, NULL), 0);
	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	cr_assert_geq(urp_driver_turn(d, 0), 0); /* this thread turns d from now on */
	cr_assert_eq(urp_io_wait(io, URP_READABLE, 1000, &ev), -EDEADLK);
	cr_assert_eq(urp_io_wait(io, URP_READABLE, -1, &ev), -EDEADLK);
	/* Ready already or not, the answer does not depend on luck. */
	write_all(sv[1], "x", 1);
	cr_assert_eq(urp_io_wait(io, URP_READABLE, 0, &ev), -EDEADLK);
	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_free(d);
	close(sv[0]);
	close(sv[1]);
}

struct deadlock_task {
	struct urp_task task;
	struct urp_loop *loop;
	struct urp_io *io;
	int ret;
};

static int deadlock_task_run(struct urp_task *task, void *arg)
{
	struct deadlock_task *t = arg;
	struct urp_event ev;

	t->ret = urp_io_wait(t->io, URP_READABLE, -1, &ev);
	urp_loop_stop(t->loop);
	return URP_TASK_DONE;
}

/* A task of the loop that turns the entry's driver: the same deadlock. */
Test(loop_wait, wait_from_a_task_of_the_turning_loop_is_edeadlk)
{
	struct deadlock_task t = {0};
	int sv[2];

	t.loop = loop_new_or_fail();
	unix_pair(sv);
	t.io = reg_or_fail(urp_loop_driver(t.loop), sv[0], URP_READABLE);
	urp_task_init(&t.task, t.loop, deadlock_task_run, &t);
	urp_task_wake(&t.task);
	cr_assert_eq(urp_loop_run(t.loop), 0);
	cr_assert_eq(t.ret, -EDEADLK);
	cr_assert_eq(urp_deregister(t.io), 0);
	urp_loop_free(t.loop);
	close(sv[0]);
	close(sv[1]);
}

/* ---- many waiters ---- */

#define NWAITERS 8

Test(loop_wait, eight_blocked_threads_all_woken_by_writes)
{
	struct urp_driver *d = spawn_or_fail();
	struct waiter w[NWAITERS];
	struct urp_io *io[NWAITERS];
	int sv[NWAITERS][2];
	atomic_int written;
	bool all_parked = true;
	uint64_t wakes;

	atomic_init(&written, 0);
	for (int i = 0; i < NWAITERS; i++) {
		unix_pair(sv[i]);
		io[i] = reg_or_fail(d, sv[i][0], URP_READABLE);
		waiter_start(&w[i], io[i], URP_READABLE, WAIT_MS, &written);
	}
	for (int i = 0; i < NWAITERS; i++) {
		cr_assert(waiter_parked(&w[i]), "waiter %d never parked", i);
		all_parked &= parked_in_futex((pid_t)atomic_load(&w[i].tid)) == 1;
	}
	for (int i = 0; i < NWAITERS; i++)
		cr_assert_eq(atomic_load(&w[i].finished), 0,
			     "waiter %d returned %d with nothing written", i, w[i].ret);
	wakes = driver_stats(d).wakes;

	atomic_store(&written, 1);
	for (int i = 0; i < NWAITERS; i++)
		write_all(sv[i][1], "x", 1);
	for (int i = 0; i < NWAITERS; i++) {
		char who[32];

		snprintf(who, sizeof(who), "waiter %d", i);
		waiter_join(&w[i]);
		assert_ready_result(&w[i], URP_READABLE, who);
		cr_assert(w[i].written_at_return, "%s returned before the write", who);
	}
	/* Each parked waiter was woken through its waker by the driver thread. */
	if (all_parked)
		cr_assert_geq(driver_stats(d).wakes - wakes, NWAITERS, "only %llu wakers called",
			      (unsigned long long)(driver_stats(d).wakes - wakes));

	for (int i = 0; i < NWAITERS; i++) {
		cr_assert_eq(urp_deregister(io[i]), 0);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	urp_driver_join(d);
}

/* ---- SIGALRM at 1 kHz while threads wait ---- */

#define ALRM_WAITERS	 4
#define ALRM_PER_WAITER	 20
#define ALRM_TIMED_TRIES 50

/* A waiter that waits 100 ms at a time on a silent socket until one wait saw a signal. */
struct timed_waiter {
	pthread_t thread;
	struct urp_io *io;
	atomic_int finished;
	atomic_int signals;
	int tries, bad_ret, signalled_tries;
};

static void *timed_waiter_main(void *arg)
{
	struct timed_waiter *tw = arg;
	sigset_t alrm;

	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	signal_counter = &tw->signals;
	for (tw->tries = 0; tw->tries < ALRM_TIMED_TRIES && !tw->signalled_tries; tw->tries++) {
		struct urp_event ev;
		int before = atomic_load(&tw->signals);
		int ret = urp_io_wait(tw->io, URP_READABLE, 100, &ev);

		if (ret != -ETIMEDOUT) {
			tw->bad_ret = ret ? ret : 1;
			break;
		}
		tw->signalled_tries += atomic_load(&tw->signals) > before;
	}
	signal_counter = NULL;
	atomic_store(&tw->finished, 1);
	return NULL;
}

static bool alarm_fed(struct waiter *w, struct timed_waiter *tw)
{
	bool fed = atomic_load(&tw->finished);

	/* Process-directed signals land where the kernel likes: aim some at each waiter. */
	if (!fed)
		pthread_kill(tw->thread, SIGALRM);
	for (int i = 0; i < ALRM_WAITERS; i++) {
		if (atomic_load(&w[i].signals) >= ALRM_PER_WAITER || atomic_load(&w[i].finished))
			continue;
		fed = false;
		pthread_kill(w[i].thread, SIGALRM);
	}
	nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	return fed;
}

Test(loop_wait, sigalrm_1khz_does_not_end_waits)
{
	struct itimerval every_ms = {.it_interval = {.tv_usec = 1000},
				     .it_value = {.tv_usec = 1000}};
	struct itimerval off = {0}, saved;
	struct sigaction sa = {.sa_handler = on_alarm}, old_sa;
	struct urp_driver *d = spawn_or_fail(); /* its thread takes signals too */
	struct waiter w[ALRM_WAITERS];
	struct timed_waiter tw;
	struct urp_io *io[ALRM_WAITERS + 1];
	int sv[ALRM_WAITERS + 1][2];
	atomic_int written;
	sigset_t block, prev;
	bool fed;

	atomic_init(&written, 0);
	for (int i = 0; i <= ALRM_WAITERS; i++) {
		unix_pair(sv[i]);
		io[i] = reg_or_fail(d, sv[i][0], URP_READABLE);
	}
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: an interrupted futex wait returns EINTR */
	cr_assert_eq(sigaction(SIGALRM, &sa, &old_sa), 0);
	/* This thread blocks SIGALRM, so the timer's signals go to the waiters and the driver. */
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &block, &prev), 0);
	for (int i = 0; i < ALRM_WAITERS; i++)
		waiter_start(&w[i], io[i], URP_READABLE, WAIT_MS, &written);
	memset(&tw, 0, sizeof(tw));
	tw.io = io[ALRM_WAITERS];
	atomic_init(&tw.finished, 0);
	atomic_init(&tw.signals, 0);
	cr_assert_eq(pthread_create(&tw.thread, NULL, timed_waiter_main, &tw), 0);
	for (int i = 0; i < ALRM_WAITERS; i++)
		cr_assert(waiter_parked(&w[i]), "waiter %d never parked", i);
	/* Keep what ITIMER_REAL held (a test runner's alarm() timeout) to restore it after. */
	cr_assert_eq(setitimer(ITIMER_REAL, &every_ms, &saved), 0);

	/* Bounded: every waiter has taken its signals (or something ended a wait). */
	fed = WAIT_UNTIL(alarm_fed(w, &tw), BOUND_S);
	atomic_store(&written, 1);
	for (int i = 0; i < ALRM_WAITERS; i++)
		write_all(sv[i][1], "x", 1);
	for (int i = 0; i < ALRM_WAITERS; i++)
		WAIT_UNTIL(atomic_load(&w[i].finished), BOUND_S);

	cr_assert_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	/* Swallow a signal still pending before the old disposition (maybe SIG_DFL) returns. */
	while (sigtimedwait(&block, NULL, &(struct timespec){0}) == SIGALRM)
		;
	cr_assert_eq(sigaction(SIGALRM, &old_sa, NULL), 0);
	cr_assert_eq(pthread_sigmask(SIG_SETMASK, &prev, NULL), 0);
	cr_assert_eq(setitimer(ITIMER_REAL, &saved, NULL), 0);

	for (int i = 0; i < ALRM_WAITERS; i++) {
		char who[48];

		snprintf(who, sizeof(who), "waiter %d (%d signals)", i, atomic_load(&w[i].signals));
		waiter_join(&w[i]);
		assert_ready_result(&w[i], URP_READABLE, who);
		cr_assert(w[i].written_at_return, "%s: the wait ended before the write", who);
	}
	cr_assert_eq(pthread_join(tw.thread, NULL), 0);
	cr_assert_eq(tw.bad_ret, 0, "a 100 ms wait under SIGALRM returned %d, not -ETIMEDOUT",
		     tw.bad_ret == 1 ? 0 : tw.bad_ret);
	cr_assert(fed, "the waiters did not all take %d signals while waiting", ALRM_PER_WAITER);
	cr_assert_geq(tw.signalled_tries, 1, "no timed wait took a signal in %d tries", tw.tries);
	cr_log_info("%d SIGALRMs in all", atomic_load(&signals_total));

	for (int i = 0; i <= ALRM_WAITERS; i++) {
		cr_assert_eq(urp_deregister(io[i]), 0);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	urp_driver_join(d);
}

/* ---- a timed-out wait leaves nothing behind ---- */

/* Wait in a frame that is gone once this returns. */
static __attribute__((noinline)) int wait_in_a_frame_that_returns(struct urp_io *io, int ms)
{
	struct urp_event ev;
	int ret = urp_io_wait(io, URP_READABLE, ms, &ev);

	/* Not a tail call: the wait's frame lies below this one. */
	__asm__ __volatile__("" ::: "memory");
	return ret;
}

/*
 * Cover the dead frames with a canary, make the peer write and wait until the driver thread
 * has applied the Set (and called any waker it found), then count changed canary bytes.
 */
static __attribute__((noinline)) size_t canary_hit_by_set(struct urp_driver *d, int peer)
{
	volatile unsigned char pad[16384];
	uint64_t events;
	size_t changed = 0;

	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = 0xa5;
	events = driver_stats(d).events;
	write_all(peer, "x", 1);
	cr_assert(WAIT_UNTIL(driver_stats(d).events > events, BOUND_S),
		  "the driver thread never reported the write");
	for (size_t i = 0; i < sizeof(pad); i++)
		changed += pad[i] != 0xa5;
	return changed;
}

Test(loop_wait, timed_out_wait_leaves_no_waker_behind)
{
	struct urp_driver *d = spawn_or_fail();
	struct urp_event ev;
	struct urp_io *io;
	size_t changed;
	int sv[2], ret;

	unix_pair(sv);
	io = reg_or_fail(d, sv[0], URP_READABLE);
	for (int round = 0; round < 3; round++) {
		ret = wait_in_a_frame_that_returns(io, 20);
		cr_assert_eq(ret, -ETIMEDOUT, "round %d: %d", round, ret);
		changed = canary_hit_by_set(d, sv[1]);
		cr_assert_eq(changed, 0,
			     "round %d: the Set after a timed-out wait wrote %zu bytes into the "
			     "wait's dead stack frame (a waker left behind)",
			     round, changed);
		/* The entry still works, and the waiter list is intact. */
		ret = urp_io_wait(io, URP_READABLE, WAIT_MS, &ev);
		cr_assert_eq(ret, 0, "round %d: wait on a readable socket: %d", round, ret);
		cr_assert(ev.ready & URP_READABLE);
		cr_assert_eq(drain_try_io(io, sv[0]), 1);
	}
	cr_assert_eq(urp_deregister(io), 0);
	urp_driver_join(d);
	close(sv[0]);
	close(sv[1]);
}
