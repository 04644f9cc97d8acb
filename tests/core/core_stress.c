// SPDX-License-Identifier: MIT
/*
 * core_stress: Set racing poll / clear / wait, looking for lost wakeups; cancel racing wake.
 *
 * Each entry models a real non-blocking fd: an atomic `avail` count of bytes in its buffer. A
 * producer adds to avail, then reports the completion with urp_io_set_readiness(READABLE), as
 * the driver would. A consumer waits (readiness future, or the reader slot), then "reads" by
 * taking all of avail; when it got nothing, that read was EAGAIN and it clears readiness with
 * the event it waited for -- the try_io pattern.
 *
 * Consumers block for real on a semaphore posted by their wakers, and, like an event loop,
 * poll only the entries whose waker fired. So a lost wakeup leaves a waker stored on an entry
 * that has data and nobody coming: after 10 s of that the test fails and says which entry. At
 * the end every unit produced must have been consumed. A "gated" entry gets new data only once
 * it is drained, so each of its Sets is the only one that can wake its consumer; otherwise the
 * next Set would hide a lost one. The shared run puts several consumers on each entry and floods
 * half the entries (contention, stale clears); the partitioned run gives each entry a single
 * waiter and gates them all (no other waiter can hide a loss).
 *
 * URP_STRESS_EVENTS sets the number of Sets per run (default 2,000,000) so slow sanitizer builds
 * can run fewer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#include "test_util.h"

#define DEFAULT_EVENTS	  2000000L
#define NENTRIES	  8
#define NPRODUCERS	  2
#define NFUTURE_CONSUMERS 2 /* a readiness future on every entry */
#define NSLOT_CONSUMERS	  2 /* the reader slots of half the entries each */
#define NCONSUMERS	  (NFUTURE_CONSUMERS + NSLOT_CONSUMERS)
#define LOST_AFTER_S	  10
#define DRAIN_DEADLINE_S  30

static long stress_events(void)
{
	return env_count("URP_STRESS_EVENTS", DEFAULT_EVENTS);
}

static uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/* ---- lost-wakeup stress ---- */

struct entry {
	_Alignas(64) struct urp_io *io;
	atomic_long avail;
	bool gated; /* producers add to it only once it is drained */
};

struct consumer;

/* One entry watched by one consumer: its own waker, so the consumer polls only what fired. */
struct watch {
	struct consumer *c;
	int e;
	atomic_bool fired;
	bool registered; /* a waker of ours is stored on the entry */
	double since;	 /* when it was stored */
	int suspicious;	 /* stall checks in a row that saw data while registered */
	struct urp_readiness fut;
};

struct consumer {
	int id;
	bool use_slot;
	int nwatch;
	struct watch watch[NENTRIES];
	sem_t sem;
	atomic_long consumed;
	atomic_long posts;
	pthread_t thread;
	int error; /* an unexpected return code seen by the thread, 0 if none */
};

struct producer {
	int id;
	long events;
	long produced;
	pthread_t thread;
};

static struct {
	struct entry entries[NENTRIES];
	struct consumer consumers[NCONSUMERS];
	struct producer producers[NPRODUCERS];
	atomic_bool stop;
	atomic_bool lost;
	char lost_msg[256];
} S;

static void watch_fired(void *arg)
{
	struct watch *w = arg;

	atomic_store(&w->fired, true);
	atomic_fetch_add(&w->c->posts, 1);
	sem_post(&w->c->sem);
}

static void report_lost(struct watch *w, long avail, double waited)
{
	if (atomic_exchange(&S.lost, true))
		return;
	snprintf(S.lost_msg, sizeof(S.lost_msg),
		 "lost wakeup: consumer %d waited %.1f s on entry %d (%s) while it had %ld units "
		 "available (word %#x)",
		 w->c->id, waited, w->e, w->c->use_slot ? "reader slot" : "readiness future", avail,
		 urp_io_word(S.entries[w->e].io));
	atomic_store(&S.stop, true);
}

/*
 * A waker of ours has been stored on an entry for LOST_AFTER_S, and on two checks a second
 * apart the entry had data: the Set that followed that data woke nobody. Checks only look,
 * they never poll (polling would paper over the lost wakeup).
 */
static void check_stalls(struct consumer *c, double *last_check)
{
	double now = now_s();

	if (now - *last_check < 1.0)
		return;
	*last_check = now;
	for (int k = 0; k < c->nwatch; k++) {
		struct watch *w = &c->watch[k];
		long avail = atomic_load(&S.entries[w->e].avail);

		if (!w->registered || now - w->since < LOST_AFTER_S || avail <= 0) {
			w->suspicious = 0;
			continue;
		}
		if (++w->suspicious >= 2) {
			report_lost(w, avail, now - w->since);
			return;
		}
	}
}

/* Sleep until a waker posts, waking once a second to look for stalls. */
static void consumer_block(struct consumer *c, double *last_check)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 1;
	while (sem_timedwait(&c->sem, &deadline) != 0 && errno == EINTR)
		;
	check_stalls(c, last_check);
}

/* The read: take everything; on "EAGAIN" clear with the event the wait returned. */
static void consume(struct consumer *c, int e, const struct urp_event *ev)
{
	long took = atomic_exchange(&S.entries[e].avail, 0);
	int rc;

	if (took > 0) {
		atomic_fetch_add(&c->consumed, took);
		return;
	}
	if (!ev->ready)
		return;
	rc = urp_io_clear_readiness(S.entries[e].io, ev);
	if (rc != 0 && rc != -ESTALE && !c->error)
		c->error = rc;
}

/* Poll one watch; true if it was ready (and was consumed). */
static bool poll_watch(struct consumer *c, struct watch *w)
{
	struct urp_waker waker = {.wake = watch_fired, .arg = w};
	struct urp_io *io = S.entries[w->e].io;
	struct urp_event ev;
	int rc;

	if (w->registered && !atomic_exchange(&w->fired, false))
		return false; /* not woken: a real event loop would not poll it */
	if (c->use_slot)
		rc = urp_io_poll_ready(io, URP_DIR_READ, &waker, &ev);
	else
		rc = urp_readiness_poll(&w->fut, &waker, &ev);
	if (rc == -EAGAIN) {
		w->registered = true;
		w->since = now_s();
		w->suspicious = 0;
		return false;
	}
	w->registered = false;
	if (rc != 0) {
		c->error = rc;
		atomic_store(&S.stop, true);
		return false;
	}
	consume(c, w->e, &ev);
	if (!c->use_slot) {
		urp_readiness_cancel(&w->fut);
		urp_readiness_init(&w->fut, io, URP_READABLE);
	}
	return true;
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	double last_check = now_s();

	for (int k = 0; k < c->nwatch; k++)
		urp_readiness_init(&c->watch[k].fut, S.entries[c->watch[k].e].io, URP_READABLE);
	while (!atomic_load(&S.stop)) {
		bool progressed = false;

		for (int k = 0; k < c->nwatch; k++)
			progressed |= poll_watch(c, &c->watch[k]);
		if (progressed)
			check_stalls(c, &last_check);
		else
			consumer_block(c, &last_check);
	}
	for (int k = 0; k < c->nwatch; k++)
		urp_readiness_cancel(&c->watch[k].fut);
	return NULL;
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(p->id + 1);

	while (p->produced < p->events && !atomic_load(&S.stop)) {
		int e = xorshift64(&rng) % NENTRIES, tries = 0;

		/* a gated entry with data waits for its consumer: this Set must not be needed */
		while (S.entries[e].gated && atomic_load(&S.entries[e].avail) > 0 &&
		       ++tries < NENTRIES)
			e = (e + 1) % NENTRIES;
		if (tries == NENTRIES) {
			sched_yield();
			continue;
		}
		atomic_fetch_add(&S.entries[e].avail, 1);
		p->produced++;
		urp_io_set_readiness(S.entries[e].io, URP_READABLE);
	}
	return NULL;
}

static long total_consumed(void)
{
	long sum = 0;

	for (int i = 0; i < NCONSUMERS; i++)
		sum += atomic_load(&S.consumers[i].consumed);
	return sum;
}

static void watch_entry(struct consumer *c, int e)
{
	struct watch *w = &c->watch[c->nwatch++];

	w->c = c;
	w->e = e;
}

/*
 * Shared: the future consumers watch every entry, the slot consumers the reader slots of half
 * the entries each; entries 0-3 are gated, 4-7 flooded. Partitioned: consumer i alone watches
 * entries i and i + 4, all gated, so no other waiter can hide a lost wakeup.
 */
static void run_stress(bool partitioned)
{
	long events = stress_events(), produced = 0, consumed, posts = 0;
	long left[NENTRIES];
	double deadline;

	memset(&S, 0, sizeof(S));
	for (int e = 0; e < NENTRIES; e++) {
		cr_assert_eq(urp_io_new(&S.entries[e].io), 0);
		S.entries[e].gated = partitioned || e < NENTRIES / 2;
	}
	for (int i = 0; i < NCONSUMERS; i++) {
		struct consumer *c = &S.consumers[i];
		int slot = i - NFUTURE_CONSUMERS;

		c->id = i;
		c->use_slot = slot >= 0;
		if (partitioned) {
			watch_entry(c, i);
			watch_entry(c, i + NCONSUMERS);
		} else if (c->use_slot) {
			for (int e = 0; e < NENTRIES / NSLOT_CONSUMERS; e++)
				watch_entry(c, slot * (NENTRIES / NSLOT_CONSUMERS) + e);
		} else {
			for (int e = 0; e < NENTRIES; e++)
				watch_entry(c, e);
		}
		cr_assert_eq(sem_init(&c->sem, 0, 0), 0);
		cr_assert_eq(pthread_create(&c->thread, NULL, consumer_main, c), 0);
	}
	for (int i = 0; i < NPRODUCERS; i++) {
		struct producer *p = &S.producers[i];

		p->id = i;
		p->events = events / NPRODUCERS + (i < events % NPRODUCERS);
		cr_assert_eq(pthread_create(&p->thread, NULL, producer_main, p), 0);
	}
	for (int i = 0; i < NPRODUCERS; i++) {
		pthread_join(S.producers[i].thread, NULL);
		produced += S.producers[i].produced;
	}

	deadline = now_s() + DRAIN_DEADLINE_S;
	while (!atomic_load(&S.lost) && total_consumed() != produced && now_s() < deadline) {
		struct timespec nap = {.tv_nsec = 5 * 1000 * 1000};

		nanosleep(&nap, NULL);
	}
	for (int e = 0; e < NENTRIES; e++)
		left[e] = atomic_load(&S.entries[e].avail);

	atomic_store(&S.stop, true);
	for (int i = 0; i < NCONSUMERS; i++)
		sem_post(&S.consumers[i].sem);
	for (int i = 0; i < NCONSUMERS; i++) {
		pthread_join(S.consumers[i].thread, NULL);
		posts += atomic_load(&S.consumers[i].posts);
	}
	consumed = total_consumed();

	cr_assert_not(atomic_load(&S.lost), "%s", S.lost_msg);
	for (int i = 0; i < NCONSUMERS; i++)
		cr_assert_eq(S.consumers[i].error, 0, "consumer %d got %d (%s)", i,
			     S.consumers[i].error, strerror(-S.consumers[i].error));
	cr_assert_eq(produced, events, "producers stopped early: %ld of %ld", produced, events);
	cr_assert_eq(consumed, produced,
		     "lost wakeup: %ld of %ld units never consumed %d s after the last Set "
		     "(left per entry: %ld %ld %ld %ld %ld %ld %ld %ld)",
		     produced - consumed, produced, DRAIN_DEADLINE_S, left[0], left[1], left[2],
		     left[3], left[4], left[5], left[6], left[7]);
	for (int e = 0; e < NENTRIES; e++)
		cr_assert_eq(atomic_load(&S.entries[e].avail), 0, "entry %d still has %ld units", e,
			     atomic_load(&S.entries[e].avail));
	cr_assert_gt(posts, 0, "no consumer ever waited: the test exercised nothing");
	cr_log_info("%ld events, %ld consumed, %ld waker posts", produced, consumed, posts);

	for (int e = 0; e < NENTRIES; e++)
		urp_io_free(S.entries[e].io);
	for (int i = 0; i < NCONSUMERS; i++)
		sem_destroy(&S.consumers[i].sem);
}

Test(core_stress, no_lost_wakeups, .timeout = 120)
{
	run_stress(false);
}

Test(core_stress, no_lost_wakeups_one_waiter_per_entry, .timeout = 120)
{
	run_stress(true);
}

/* ---- cancel racing wake ---- */

#define NSETTERS  2
#define NCHURNERS 2

/* How an iteration's future ended, and so how often each of its two wakers may have run. */
enum churn_kind {
	CHURN_IMMEDIATE = 1,
	CHURN_CANCELLED,
	CHURN_DONE,
	CHURN_REPLACED_DONE,
	CHURN_REPLACED_CANCEL,
	CHURN_KINDS,
};

static const struct {
	const char *what;
	int a_min, a_max, b_min, b_max;
} churn_rules[CHURN_KINDS] = {
    /* a waker is stored only when the poll pends */
    [CHURN_IMMEDIATE] = {"ready at Init", 0, 0, 0, 0},
    /* cancel may lose the race with a wake already under way: a at most once */
    [CHURN_CANCELLED] = {"cancelled while pending", 0, 1, 0, 0},
    /* Done means the wake took waker a under the lock: it runs exactly once */
    [CHURN_DONE] = {"pending then done", 1, 1, 0, 0},
    /* a replaced by b while still linked: a never runs */
    [CHURN_REPLACED_DONE] = {"replaced then done", 0, 0, 1, 1},
    [CHURN_REPLACED_CANCEL] = {"replaced then cancelled", 0, 0, 0, 1},
};

struct mark {
	atomic_int calls;
};

struct churner {
	int id;
	long iters;
	struct mark *a, *b;
	unsigned char *kind;
	pthread_t thread;
	int error;
};

static struct {
	struct urp_io *io;
	atomic_bool done;
	atomic_long slot_calls;
} C;

static void mark_wake(void *arg)
{
	struct mark *m = arg;

	atomic_fetch_add(&m->calls, 1);
}

static void count_slot_wake(void *arg)
{
	atomic_long *n = arg;

	atomic_fetch_add(n, 1);
}

/* Poll with w a few times, yielding between; 0 if Done, -EAGAIN if still pending. */
static int poll_a_while(struct urp_readiness *r, const struct urp_waker *w, int tries)
{
	struct urp_event ev;
	int rc = -EAGAIN;

	for (int i = 0; i < tries && rc == -EAGAIN; i++) {
		rc = urp_readiness_poll(r, w, &ev);
		if (rc == -EAGAIN)
			sched_yield();
	}
	return rc;
}

static void *churner_main(void *arg)
{
	struct churner *ch = arg;

	for (long i = 0; i < ch->iters; i++) {
		/* on the heap, so a library touching a cancelled node trips ASan */
		struct urp_readiness *r = malloc(sizeof(*r));
		struct urp_waker wa = {mark_wake, &ch->a[i]}, wb = {mark_wake, &ch->b[i]};
		struct urp_event ev;
		int rc;

		if (!r) {
			ch->error = -ENOMEM;
			break;
		}
		urp_readiness_init(r, C.io, URP_READABLE);
		rc = urp_readiness_poll(r, &wa, &ev);
		if (rc == 0) {
			/* "read", got EAGAIN: clear, so the next iteration can pend */
			ch->kind[i] = CHURN_IMMEDIATE;
			urp_io_clear_readiness(C.io, &ev);
		} else if (rc != -EAGAIN) {
			ch->error = rc;
		} else if (i % 3 == 0) {
			urp_readiness_cancel(r);
			ch->kind[i] = CHURN_CANCELLED;
		} else if (i % 3 == 1) {
			rc = urp_readiness_poll(r, &wb, &ev);
			if (rc == 0)
				ch->kind[i] = CHURN_DONE; /* woken before the replacement */
			else if (poll_a_while(r, &wb, 4) == 0)
				ch->kind[i] = CHURN_REPLACED_DONE;
			else
				ch->kind[i] = CHURN_REPLACED_CANCEL;
		} else {
			ch->kind[i] = poll_a_while(r, &wa, 8) == 0 ? CHURN_DONE : CHURN_CANCELLED;
		}
		urp_readiness_cancel(r);
		free(r);
		if (ch->error)
			break;
	}
	return NULL;
}

/*
 * Completions, each followed at once by an EAGAIN clear and a short random pause, so the word is
 * mostly empty and the churners' futures keep going pending and getting woken.
 */
static void *setter_main(void *arg)
{
	uint64_t rng = 0x2545f4914f6cdd1dull * (uint64_t)((intptr_t)arg + 1);

	while (!atomic_load(&C.done)) {
		struct urp_event ev;
		uint64_t x = xorshift64(&rng);

		urp_io_set_readiness(C.io, (x & 7) ? URP_READABLE : URP_WRITABLE);
		do
			urp_io_ready_event(C.io, URP_READABLE, &ev);
		while (ev.ready && urp_io_clear_readiness(C.io, &ev) == -ESTALE);
		for (volatile unsigned spin = (x >> 8) & 1023; spin > 0; spin--)
			;
		if (x & 0x10000)
			sched_yield();
	}
	return NULL;
}

/* The single-reader slot raced the same way: store, clear, store again. */
static void *slot_churner_main(void *arg)
{
	struct urp_waker w = {count_slot_wake, &C.slot_calls};

	(void)arg;
	while (!atomic_load(&C.done)) {
		struct urp_event ev;

		urp_io_poll_ready(C.io, URP_DIR_READ, &w, &ev);
		urp_io_poll_ready(C.io, URP_DIR_WRITE, &w, &ev);
		urp_io_clear_wakers(C.io);
	}
	return NULL;
}

Test(core_stress, cancel_races_wake, .timeout = 120)
{
	struct churner ch[NCHURNERS];
	pthread_t setters[NSETTERS], slot_thread;
	long iters = stress_events() / 10, counts[CHURN_KINDS] = {0};

	if (iters < 1000)
		iters = 1000;
	cr_assert_eq(urp_io_new(&C.io), 0);
	for (int i = 0; i < NCHURNERS; i++) {
		ch[i] = (struct churner){.id = i, .iters = iters};
		ch[i].a = calloc(iters, sizeof(struct mark));
		ch[i].b = calloc(iters, sizeof(struct mark));
		ch[i].kind = calloc(iters, 1);
		cr_assert(ch[i].a && ch[i].b && ch[i].kind);
	}
	for (intptr_t i = 0; i < NSETTERS; i++)
		cr_assert_eq(pthread_create(&setters[i], NULL, setter_main, (void *)i), 0);
	cr_assert_eq(pthread_create(&slot_thread, NULL, slot_churner_main, NULL), 0);
	for (int i = 0; i < NCHURNERS; i++)
		cr_assert_eq(pthread_create(&ch[i].thread, NULL, churner_main, &ch[i]), 0);

	for (int i = 0; i < NCHURNERS; i++)
		pthread_join(ch[i].thread, NULL);
	atomic_store(&C.done, true);
	for (int i = 0; i < NSETTERS; i++)
		pthread_join(setters[i], NULL);
	pthread_join(slot_thread, NULL);
	/* every wake in flight has finished: the counts are final */

	for (int i = 0; i < NCHURNERS; i++) {
		cr_assert_eq(ch[i].error, 0, "churner %d got %d", i, ch[i].error);
		for (long it = 0; it < iters; it++) {
			int a = atomic_load(&ch[i].a[it].calls);
			int b = atomic_load(&ch[i].b[it].calls);
			int kind = ch[i].kind[it];

			cr_assert(kind > 0 && kind < CHURN_KINDS, "churner %d iter %ld never ran",
				  i, it);
			counts[kind]++;
			cr_assert(a >= churn_rules[kind].a_min && a <= churn_rules[kind].a_max &&
				      b >= churn_rules[kind].b_min && b <= churn_rules[kind].b_max,
				  "churner %d iter %ld (%s): first waker ran %d times, second %d",
				  i, it, churn_rules[kind].what, a, b);
		}
		free(ch[i].a);
		free(ch[i].b);
		free(ch[i].kind);
	}
	cr_log_info(
	    "immediate %ld, cancelled %ld, done %ld, replaced+done %ld, replaced+cancel %ld, "
	    "slot wakes %ld",
	    counts[CHURN_IMMEDIATE], counts[CHURN_CANCELLED], counts[CHURN_DONE],
	    counts[CHURN_REPLACED_DONE], counts[CHURN_REPLACED_CANCEL], atomic_load(&C.slot_calls));
	/* the race was actually run: some futures pended and were woken */
	cr_assert_gt(counts[CHURN_DONE] + counts[CHURN_REPLACED_DONE], 0,
		     "no future was ever woken: the race was not exercised");
	urp_io_free(C.io);
}
