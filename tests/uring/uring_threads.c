// SPDX-License-Identifier: MIT
/*
 * uring_threads: the driver turning on its own thread while others register, deregister, unpark
 * and wait; turns blocked with no time limit ended by another thread; and signals during turns.
 * The stress run over real sockets is uring_stress's.
 */
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "uring_util.h"

TestSuite(uring_threads, .fini = drv_teardown, .timeout = 300);

/* ---- registrations, deregistrations and unparks from 4 threads ---- */

#define NWORKERS     4
#define WORKER_ITERS 2000

struct worker {
	pthread_t thread;
	int id;
	sem_t sem;
	int registered, deregistered, woken, unparks;
	char error[160];
};

static void worker_fail(struct worker *w, const char *what, long value)
{
	if (!w->error[0])
		snprintf(w->error, sizeof(w->error), "worker %d: %s (%ld)", w->id, what, value);
}

/*
 * Each iteration: an eventfd registered from here (queued for the driver thread), written,
 * waited for with a readiness future, read through try_io, and deregistered (alternately
 * closed by us after urp_deregister, or by the driver through urp_deregister_close). Every
 * few iterations an entry is deregistered right after registration, before any turn saw it.
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct urp_waker waker = {.wake = post_sem, .arg = &w->sem};

	for (int i = 0; i < WORKER_ITERS && !w->error[0]; i++) {
		struct urp_readiness fut;
		struct urp_event ev;
		struct urp_io *io;
		uint64_t value = 1, got = 0;
		struct rw_op op = {.buf = (char *)&got, .len = sizeof(got)};
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), ret;
		ssize_t n;

		if (efd < 0) {
			worker_fail(w, "eventfd", errno);
			break;
		}
		op.fd = efd;
		ret = urp_register(drv, efd, URP_READABLE, &io);
		if (ret) {
			worker_fail(w, "urp_register", ret);
			close(efd);
			break;
		}
		w->registered++;
		if (i % 7 == 3) {
			/* Gone before the driver ever armed it. */
			ret = urp_deregister_close(io);
			if (ret)
				worker_fail(w, "early urp_deregister_close", ret);
			else
				w->deregistered++;
			continue;
		}
		if (write(efd, &value, sizeof(value)) != sizeof(value))
			worker_fail(w, "eventfd write", errno);
		urp_readiness_init(&fut, io, URP_READABLE);
		ret = urp_readiness_poll(&fut, &waker, &ev);
		if (ret == -EAGAIN) {
			if (!sem_wait_for(&w->sem, 10)) {
				worker_fail(w, "no wakeup within 10 s, word", urp_io_word(io));
				urp_readiness_cancel(&fut);
				break;
			}
			w->woken++;
			ret = urp_readiness_poll(&fut, &waker, &ev);
		}
		if (ret != 0 || !(ev.ready & URP_READABLE))
			worker_fail(w, "readiness future", ret);
		n = urp_io_try_io(io, URP_READABLE, op_read, &op);
		if (n != sizeof(got) || got != 1)
			worker_fail(w, "try_io read", (long)n);
		if (i % 3 == 0) {
			ret = urp_driver_unpark(drv);
			if (ret)
				worker_fail(w, "urp_driver_unpark", ret);
			w->unparks++;
		}
		if (i % 2) {
			ret = urp_deregister(io);
			close(efd);
		} else {
			ret = urp_deregister_close(io);
		}
		if (ret)
			worker_fail(w, "urp_deregister", ret);
		else
			w->deregistered++;
	}
	return NULL;
}

Test(uring_threads, register_deregister_unpark_from_4_threads)
{
	struct worker workers[NWORKERS];
	struct driver_thread d;
	struct urp_stats st;
	int registered = 0, deregistered = 0, woken = 0;

	drv = driver_new(NULL);
	driver_start(&d, drv);
	for (int i = 0; i < NWORKERS; i++) {
		memset(&workers[i], 0, sizeof(workers[i]));
		workers[i].id = i;
		cr_assert_eq(sem_init(&workers[i].sem, 0, 0), 0);
		cr_assert_eq(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]), 0);
	}
	for (int i = 0; i < NWORKERS; i++) {
		cr_assert_eq(pthread_join(workers[i].thread, NULL), 0);
		registered += workers[i].registered;
		deregistered += workers[i].deregistered;
		woken += workers[i].woken;
	}
	driver_stop(&d);
	for (int i = 0; i < NWORKERS; i++) {
		cr_assert(!workers[i].error[0], "%s", workers[i].error);
		sem_destroy(&workers[i].sem);
	}
	st = driver_stats(drv);
	cr_assert_eq(registered, NWORKERS * WORKER_ITERS);
	cr_assert_eq(deregistered, registered);
	cr_assert_eq(st.live, 0, "%llu entries never freed", (unsigned long long)st.live);
	cr_assert_eq(st.unknown_tokens, 0);
	cr_assert_eq(st.poll_errors, 0);
	cr_assert_eq((long long)st.events, d.events, "stats.events %llu, turns returned %lld",
		     (unsigned long long)st.events, d.events);
	cr_assert_eq(st.wakes, (uint64_t)woken, "stats.wakes %llu, wakers run %d",
		     (unsigned long long)st.wakes, woken);
	cr_log_info("%d registrations, %d waits woken, %ld turns", registered, woken, d.turns);
}

/* ---- waking a blocked turn ---- */

struct poker {
	pthread_t thread;
	atomic_bool done;
	int fd; /* register this fd instead of unparking, when >= 0 */
	struct urp_io *io;
	int ret;
	long pokes;
};

/* Unpark (or register once, then unpark) until the blocked turn has returned. */
static void *poker_main(void *arg)
{
	struct poker *p = arg;
	struct timespec nap = {.tv_nsec = 1000 * 1000};

	if (p->fd >= 0)
		p->ret = urp_register(drv, p->fd, URP_READABLE, &p->io);
	while (!atomic_load(&p->done)) {
		if (p->fd < 0) {
			p->ret = urp_driver_unpark(drv);
			p->pokes++;
		}
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/* A turn with no time limit returns when another thread unparks, with no readiness events. */
Test(uring_threads, unpark_ends_blocking_turn)
{
	struct poker p = {.fd = -1};
	int ret;

	drv = driver_new(NULL);
	turn(drv, 0);
	atomic_init(&p.done, false);
	cr_assert_eq(pthread_create(&p.thread, NULL, poker_main, &p), 0);
	ret = urp_driver_turn(drv, -1);
	atomic_store(&p.done, true);
	cr_assert_eq(pthread_join(p.thread, NULL), 0);
	cr_assert_eq(ret, 0, "an unpark is no readiness event: %d", ret);
	cr_assert_eq(p.ret, 0);
	cr_assert_geq(p.pokes, 1);
	assert_no_unknown_tokens(drv);
}

/* A registration from another thread ends a blocking turn; the next one arms it, and the data
 * already waiting on the fd is reported. */
Test(uring_threads, registration_ends_blocking_turn)
{
	struct poker p;
	int sv[2], ret;

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	write_all(sv[1], "x", 1);
	p = (struct poker){.fd = sv[0]};
	atomic_init(&p.done, false);
	cr_assert_eq(pthread_create(&p.thread, NULL, poker_main, &p), 0);
	ret = urp_driver_turn(drv, -1);
	atomic_store(&p.done, true);
	cr_assert_eq(pthread_join(p.thread, NULL), 0);
	cr_assert_geq(ret, 0);
	cr_assert_eq(p.ret, 0);
	turn_until_ready(drv, p.io, URP_READABLE);
	assert_ready(p.io, URP_READABLE, URP_ERROR);
	cr_assert_eq(urp_deregister_close(p.io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	assert_no_unknown_tokens(drv);
	close(sv[1]);
}

/* ---- SIGALRM at 1 kHz ---- */

static atomic_int signals_here;
static atomic_int signals_total;
static pid_t turning_tid;

static void on_alarm(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals_total, 1);
	if ((pid_t)syscall(SYS_gettid) == turning_tid)
		atomic_fetch_add(&signals_here, 1);
}

struct alarm_feeder {
	pthread_t thread;
	atomic_bool stop;
	int fd;
	long written;
};

/* Unpark now and then and write to a socket, so blocking turns have something to end them. */
static void *feeder_main(void *arg)
{
	struct alarm_feeder *f = arg;
	struct timespec nap = {.tv_nsec = 2 * 1000 * 1000};

	while (!atomic_load(&f->stop)) {
		urp_driver_unpark(drv);
		if (write(f->fd, "s", 1) == 1)
			f->written++;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static void alarm_run(unsigned flags)
{
	static const int timeouts[] = {-1, 0, 1, 5, 20, 2, -1, 10};
	struct urp_driver_opts opts = {.flags = flags};
	struct itimerval every_ms = {.it_interval = {.tv_usec = 1000},
				     .it_value = {.tv_usec = 1000}};
	struct itimerval off = {0}, saved;
	struct sigaction sa = {.sa_handler = on_alarm}, old_sa;
	struct alarm_feeder feeder = {0};
	sigset_t block, prev;
	struct urp_io *io;
	long turns = 0, got = 0;
	int sv[2], ret = 0, failed_timeout = 0;

	drv = driver_new(&opts);
	turn(drv, 0);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	turning_tid = (pid_t)syscall(SYS_gettid);
	atomic_store(&signals_here, 0);
	atomic_store(&signals_total, 0);

	/* The feeder blocks SIGALRM (inherited from here), so the signals land on this thread. */
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &block, &prev), 0);
	feeder.fd = sv[1];
	atomic_init(&feeder.stop, false);
	cr_assert_eq(pthread_create(&feeder.thread, NULL, feeder_main, &feeder), 0);
	cr_assert_eq(pthread_sigmask(SIG_SETMASK, &prev, NULL), 0);

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: an interrupted io_uring_enter returns EINTR */
	cr_assert_eq(sigaction(SIGALRM, &sa, &old_sa), 0);
	/* Keep what ITIMER_REAL held (a test runner's alarm() timeout) to restore it after. */
	cr_assert_eq(setitimer(ITIMER_REAL, &every_ms, &saved), 0);

	for (; turns < 20000 && (turns < 2000 || atomic_load(&signals_here) < 200); turns++) {
		int timeout = timeouts[turns % (long)(sizeof(timeouts) / sizeof(timeouts[0]))];

		ret = urp_driver_turn(drv, timeout);
		if (ret < 0) {
			failed_timeout = timeout;
			break;
		}
		if (io_ready(io) & URP_READABLE)
			got += (long)drain_try_io(io, sv[0]);
	}

	cr_assert_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	atomic_store(&feeder.stop, true);
	cr_assert_eq(pthread_join(feeder.thread, NULL), 0);
	/* Swallow a signal still pending before the old disposition (maybe SIG_DFL) returns. */
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &block, &prev), 0);
	while (sigtimedwait(&block, NULL, &(struct timespec){0}) == SIGALRM)
		;
	cr_assert_eq(sigaction(SIGALRM, &old_sa, NULL), 0);
	cr_assert_eq(pthread_sigmask(SIG_SETMASK, &prev, NULL), 0);
	cr_assert_eq(setitimer(ITIMER_REAL, &saved, NULL), 0);
	cr_assert_geq(ret, 0, "turn %ld (timeout %d ms): %d (%s)", turns, failed_timeout, ret,
		      urp_strerror(ret));

	cr_assert_geq(atomic_load(&signals_here), 200,
		      "only %d of %d signals hit the turning thread in %ld turns: the test proved "
		      "nothing",
		      atomic_load(&signals_here), atomic_load(&signals_total), turns);
	/* Readiness kept flowing: everything the feeder wrote arrives. */
	for (int i = 0; i < TURN_TRIES && got < feeder.written; i++) {
		turn(drv, 10);
		got += (long)drain_fd(sv[0]);
	}
	cr_assert_eq(got, feeder.written);
	cr_log_info("%ld turns, %d signals on the turning thread", turns,
		    atomic_load(&signals_here));
	assert_no_unknown_tokens(drv);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

Test(uring_threads, sigalrm_1khz_never_eintr)
{
	alarm_run(0);
}

Test(uring_threads, coop_sigalrm_1khz_never_eintr)
{
	alarm_run(URP_DRIVER_TIER_COOP);
}

Test(uring_threads, basic_sigalrm_1khz_never_eintr)
{
	alarm_run(URP_DRIVER_TIER_BASIC);
}
