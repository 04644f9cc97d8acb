// SPDX-License-Identifier: MIT
/*
 * uring_threads: the driver turning on its own thread while others register, deregister, unpark
 * and wait; signals during turns; and a stress run over real sockets looking for lost wakeups.
 *
 * The stress run: NPAIRS socketpairs, one driver thread, writer threads writing one byte at a
 * time to the sockets they own, and consumer threads (one on the reader slot, urp_io_poll_ready,
 * one on readiness futures) sleeping on a semaphore their wakers post. A consumer reads until
 * EAGAIN and clears the readiness with the event it read under, then parks again. Every byte
 * written must be read; a consumer asleep for LOST_AFTER_S while one of its sockets holds data
 * has lost a wakeup, and the test says which. URP_DRIVER_STRESS_EVENTS sets the number of readiness
 * events (driver completions) to reach, 5,000,000 by default.
 */
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

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

/* ---- stress ---- */

#define NPAIRS		 1024
#define NWRITERS	 2
#define NCONSUMERS	 2 /* consumer 0: reader slot; consumer 1: readiness futures */
#define LOST_AFTER_S	 10
#define DRAIN_DEADLINE_S 30
#define DEFAULT_EVENTS	 5000000L

struct pair {
	int rfd, wfd;
	struct urp_io *io;
	struct urp_readiness fut;
	struct urp_waker waker;
	atomic_long read;
	long written; /* by its writer only; read after the writers are joined */
};

struct consumer {
	pthread_t thread;
	int id;
	sem_t sem;
	pthread_mutex_t lock;
	int *queue; /* ring of pair indices, pushed by wakers */
	unsigned head, tail, cap;
	atomic_long wakes;
	char error[256];
};

struct writer {
	pthread_t thread;
	int id;
	long writes, full;
};

static struct {
	struct pair pairs[NPAIRS];
	struct consumer consumers[NCONSUMERS];
	struct writer writers[NWRITERS];
	atomic_bool stop_writers, stop_consumers, failed;
	long long target;
} S;

static struct consumer *owner(int i)
{
	return &S.consumers[i % NCONSUMERS];
}

static void fail_stress(struct consumer *c, const char *fmt, int i, long a, long b)
{
	if (!c->error[0])
		snprintf(c->error, sizeof(c->error), fmt, c->id, i, a, b);
	atomic_store(&S.failed, true);
}

/* The waker: queue the pair for its consumer and post. Runs on the driver thread. */
static void stress_wake(void *arg)
{
	struct pair *p = arg;
	int i = (int)(p - S.pairs);
	struct consumer *c = owner(i);
	bool full;

	pthread_mutex_lock(&c->lock);
	full = c->tail - c->head == c->cap;
	if (!full)
		c->queue[c->tail++ % c->cap] = i;
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->wakes, 1);
	if (full)
		fail_stress(c, "consumer %d: wake queue full at pair %d (%ld, %ld)", i, 0, 0);
	sem_post(&c->sem);
}

/* Read until EAGAIN; returns false on EOF or an error. */
static bool read_all(struct consumer *c, int i)
{
	struct pair *p = &S.pairs[i];
	char buf[16384];

	for (;;) {
		ssize_t n = read(p->rfd, buf, sizeof(buf));

		if (n > 0) {
			atomic_fetch_add(&p->read, n);
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return true;
		fail_stress(c, "consumer %d: pair %d read %ld (errno %ld)", i, (long)n,
			    n < 0 ? errno : 0);
		return false;
	}
}

/* Slot consumer: try_io reads; on EAGAIN park the waker in the reader slot. */
static void process_slot(struct consumer *c, int i)
{
	struct pair *p = &S.pairs[i];
	char buf[16384];
	struct rw_op op = {.fd = p->rfd, .buf = buf, .len = sizeof(buf)};
	struct urp_event ev;

	for (;;) {
		ssize_t n = urp_io_try_io(p->io, URP_READABLE, op_read, &op);
		int ret;

		if (n > 0) {
			atomic_fetch_add(&p->read, n);
			continue;
		}
		if (n != -EAGAIN) {
			fail_stress(c, "consumer %d: pair %d try_io %ld (%ld)", i, (long)n, 0);
			return;
		}
		ret = urp_io_poll_ready(p->io, URP_DIR_READ, &p->waker, &ev);
		if (ret == -EAGAIN)
			return; /* parked */
		if (ret != 0) {
			fail_stress(c, "consumer %d: pair %d poll_ready %ld (%ld)", i, ret, 0);
			return;
		}
	}
}

/* Future consumer: wait with the future; when done, read until EAGAIN and clear with its
 * event, then start a new wait. */
static void process_future(struct consumer *c, int i)
{
	struct pair *p = &S.pairs[i];
	struct urp_event ev;

	for (;;) {
		int ret = urp_readiness_poll(&p->fut, &p->waker, &ev);

		if (ret == -EAGAIN)
			return; /* parked */
		if (ret != 0) {
			fail_stress(c, "consumer %d: pair %d future %ld (%ld)", i, ret, 0);
			return;
		}
		if (!read_all(c, i))
			return;
		ret = urp_io_clear_readiness(p->io, &ev);
		if (ret != 0 && ret != -ESTALE) {
			fail_stress(c, "consumer %d: pair %d clear %ld (%ld)", i, ret, 0);
			return;
		}
		urp_readiness_init(&p->fut, p->io, URP_READABLE);
	}
}

static void process(struct consumer *c, int i)
{
	if (c->id == 0)
		process_slot(c, i);
	else
		process_future(c, i);
}

/* A consumer asleep for LOST_AFTER_S: any of its sockets holding data lost its wakeup. */
static void check_lost(struct consumer *c, double asleep)
{
	for (int i = c->id; i < NPAIRS; i += NCONSUMERS) {
		int inq = 0;

		if (ioctl(S.pairs[i].rfd, FIONREAD, &inq) == 0 && inq > 0) {
			char msg[200];

			snprintf(msg, sizeof(msg),
				 "consumer %%d: lost wakeup on pair %%d: %%ld bytes unread after "
				 "%.0f s asleep (word %#x)",
				 asleep, urp_io_word(S.pairs[i].io));
			fail_stress(c, msg, i, inq, 0);
			return;
		}
	}
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	int *batch = malloc(sizeof(int) * c->cap);
	double slept_since = now_s();

	if (!batch) {
		fail_stress(c, "consumer %d: malloc (%d %ld %ld)", 0, 0, 0);
		return NULL;
	}
	for (int i = c->id; i < NPAIRS; i += NCONSUMERS) {
		if (c->id == 1)
			urp_readiness_init(&S.pairs[i].fut, S.pairs[i].io, URP_READABLE);
		process(c, i);
	}
	while (!atomic_load(&S.stop_consumers) && !atomic_load(&S.failed)) {
		unsigned n = 0;

		if (!sem_wait_for(&c->sem, 1)) {
			if (now_s() - slept_since >= LOST_AFTER_S) {
				check_lost(c, now_s() - slept_since);
				slept_since = now_s();
			}
			continue;
		}
		slept_since = now_s();
		pthread_mutex_lock(&c->lock);
		while (c->head != c->tail)
			batch[n++] = c->queue[c->head++ % c->cap];
		pthread_mutex_unlock(&c->lock);
		for (unsigned k = 0; k < n; k++)
			process(c, batch[k]);
	}
	for (int i = c->id; i < NPAIRS; i += NCONSUMERS) {
		if (c->id == 1)
			urp_readiness_cancel(&S.pairs[i].fut);
		else
			urp_io_clear_wakers(S.pairs[i].io);
	}
	free(batch);
	return NULL;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&S.stop_writers) && !atomic_load(&S.failed)) {
		for (int i = w->id; i < NPAIRS; i += NWRITERS) {
			struct pair *p = &S.pairs[i];
			ssize_t n = write(p->wfd, "w", 1);

			if (n == 1) {
				p->written++;
				w->writes++;
			} else if (n < 0 && errno == EAGAIN) {
				w->full++;
			} else {
				atomic_store(&S.failed, true);
				return NULL;
			}
		}
		struct urp_stats st;

		if (urp_driver_stats(drv, &st) == 0 && st.events >= (uint64_t)S.target)
			break;
	}
	return NULL;
}

Test(uring_threads, stress_no_lost_wakeups)
{
	struct driver_thread d;
	struct urp_stats st;
	long long written = 0, read = 0, wakes = 0;
	double start, writers_done, deadline;
	int missing = -1;

	memset(&S, 0, sizeof(S));
	S.target = env_count("URP_DRIVER_STRESS_EVENTS", DEFAULT_EVENTS);
	drv = driver_new(NULL);
	driver_start(&d, drv);
	for (int i = 0; i < NPAIRS; i++) {
		int sv[2];

		unix_pair(sv);
		S.pairs[i].rfd = sv[0];
		S.pairs[i].wfd = sv[1];
		S.pairs[i].waker = (struct urp_waker){.wake = stress_wake, .arg = &S.pairs[i]};
		S.pairs[i].io = reg_or_fail(drv, sv[0], URP_READABLE);
	}
	for (int c = 0; c < NCONSUMERS; c++) {
		struct consumer *cs = &S.consumers[c];

		cs->id = c;
		cs->cap = 4 * NPAIRS;
		cs->queue = calloc(cs->cap, sizeof(int));
		cr_assert_not_null(cs->queue);
		cr_assert_eq(sem_init(&cs->sem, 0, 0), 0);
		cr_assert_eq(pthread_mutex_init(&cs->lock, NULL), 0);
		cr_assert_eq(pthread_create(&cs->thread, NULL, consumer_main, cs), 0);
	}
	start = now_s();
	for (int w = 0; w < NWRITERS; w++) {
		S.writers[w].id = w;
		cr_assert_eq(pthread_create(&S.writers[w].thread, NULL, writer_main, &S.writers[w]),
			     0);
	}
	for (int w = 0; w < NWRITERS; w++)
		cr_assert_eq(pthread_join(S.writers[w].thread, NULL), 0);
	writers_done = now_s();
	for (int i = 0; i < NPAIRS; i++)
		written += S.pairs[i].written;

	/* Every byte written gets read, or a wakeup was lost. */
	deadline = now_s() + DRAIN_DEADLINE_S;
	do {
		struct timespec nap = {.tv_nsec = 10 * 1000 * 1000};

		missing = -1;
		for (int i = 0; i < NPAIRS && missing < 0; i++) {
			if (atomic_load(&S.pairs[i].read) != S.pairs[i].written)
				missing = i;
		}
		if (missing < 0 || atomic_load(&S.failed))
			break;
		nanosleep(&nap, NULL);
	} while (now_s() < deadline);

	atomic_store(&S.stop_consumers, true);
	for (int c = 0; c < NCONSUMERS; c++) {
		sem_post(&S.consumers[c].sem);
		cr_assert_eq(pthread_join(S.consumers[c].thread, NULL), 0);
	}
	for (int c = 0; c < NCONSUMERS; c++)
		cr_assert(!S.consumers[c].error[0], "%s", S.consumers[c].error);
	cr_assert_not(atomic_load(&S.failed), "a writer failed: %s", strerror(errno));
	cr_assert_lt(missing, 0,
		     "lost wakeup: pair %d (consumer %d, %s) read %ld of %ld bytes %d s after the "
		     "writers stopped (word %#x)",
		     missing, missing % NCONSUMERS,
		     missing % NCONSUMERS ? "readiness future" : "reader slot",
		     atomic_load(&S.pairs[missing < 0 ? 0 : missing].read),
		     S.pairs[missing < 0 ? 0 : missing].written, DRAIN_DEADLINE_S,
		     urp_io_word(S.pairs[missing < 0 ? 0 : missing].io));

	for (int i = 0; i < NPAIRS; i++) {
		read += atomic_load(&S.pairs[i].read);
		cr_assert_eq(urp_deregister_close(S.pairs[i].io), 0);
	}
	driver_stop(&d);
	for (int c = 0; c < NCONSUMERS; c++)
		wakes += atomic_load(&S.consumers[c].wakes);

	st = driver_stats(drv);
	cr_assert_eq(read, written);
	cr_assert_geq((long long)st.events, S.target, "only %llu readiness events",
		      (unsigned long long)st.events);
	cr_assert_eq((long long)st.events, d.events, "stats.events %llu, turns returned %lld",
		     (unsigned long long)st.events, d.events);
	cr_assert_eq((long long)st.wakes, wakes, "stats.wakes %llu, wakers run %lld",
		     (unsigned long long)st.wakes, wakes);
	cr_assert_leq(st.wake_batches, st.wakes);
	cr_assert_eq(st.unknown_tokens, 0);
	cr_assert_eq(st.poll_errors, 0);
	cr_assert_eq(st.live, 0, "%llu entries never freed", (unsigned long long)st.live);
	cr_assert_geq(wakes, 1, "no consumer ever slept: the run tested nothing");
	for (int i = 0; i < NPAIRS; i++)
		close(S.pairs[i].wfd);
	for (int c = 0; c < NCONSUMERS; c++) {
		sem_destroy(&S.consumers[c].sem);
		pthread_mutex_destroy(&S.consumers[c].lock);
		free(S.consumers[c].queue);
	}
	cr_log_info("%llu events in %.1f s (%.0f/s), %lld bytes, %lld wakes, %llu stale "
		    "rejects, %llu turns, %llu enters",
		    (unsigned long long)st.events, writers_done - start,
		    (double)st.events / (writers_done - start), written, wakes,
		    (unsigned long long)st.stale_rejects, (unsigned long long)st.turns,
		    (unsigned long long)st.enters);
}
