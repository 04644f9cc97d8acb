/* SPDX-License-Identifier: MIT */
/* The per-entry futex lock (core/lock.h): mutual exclusion on the fast, spinning and sleeping
 * paths. Run under TSan too (make check), which checks the acquire/release pairing. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "../../core/lock.h"

#define THREADS 4

static struct urp__lock lock;
static uint64_t counter;
static int inside;
static unsigned iterations;
static useconds_t hold_us;

static void *hammer(void *arg)
{
	for (unsigned i = 0; i < iterations; i++) {
		urp__lock(&lock);
		/* Plain accesses: a second thread inside is a lost update and a TSan race. */
		cr_assert_eq(inside, 0, "two threads inside the lock");
		inside = 1;
		counter++;
		if (hold_us)
			usleep(hold_us);
		inside = 0;
		urp__unlock(&lock);
	}
	return arg;
}

static void run(unsigned iters, useconds_t hold)
{
	pthread_t t[THREADS];

	urp__lock_init(&lock);
	counter = 0;
	iterations = iters;
	hold_us = hold;
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(counter, (uint64_t)THREADS * iters);
	cr_assert_eq(lock.state, 0, "unlocked at the end, no sleeper left announced");
}

TestSuite(core_lock, .timeout = 60);

Test(core_lock, short_holds_exclude)
{
	run(200000, 0);
}

/* A holder that sleeps outlasts the spin, so the others announce themselves (state 2) and
 * sleep on the futex: each unlock must wake one, or the test hangs into its timeout. */
Test(core_lock, sleeping_waiters_are_woken)
{
	run(200, 500);
}
