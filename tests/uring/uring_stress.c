// SPDX-License-Identifier: MIT
/*
 * uring_stress: a stress run over real sockets looking for lost wakeups. NPAIRS socketpairs, one
 * driver thread, writer threads writing one byte at a time to the sockets they own, and consumer
 * threads (one on the reader slot, urp_io_poll_ready, one on readiness futures) sleeping on a
 * semaphore their wakers post. A consumer reads until EAGAIN and clears the readiness with the
 * event it read under, then parks again. Every byte written must be read; a consumer asleep for
 * LOST_AFTER_S while one of its sockets holds data has lost a wakeup, and the test says which.
 * URP_DRIVER_STRESS_EVENTS sets the number of readiness events (driver completions) to reach,
 * 5,000,000 by default.
 */
#include <stdlib.h>

#include "uring_util.h"

TestSuite(uring_stress, .fini = drv_teardown, .timeout = 300);

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

Test(uring_stress, stress_no_lost_wakeups)
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
