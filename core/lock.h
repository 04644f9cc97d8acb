/* SPDX-License-Identifier: MIT */
/*
 * The per-entry lock: a three-state futex mutex (Drepper, "Futexes Are Tricky", mutex 2).
 *
 *   state  0 unlocked | 1 locked, no sleeper | 2 locked, maybe sleepers
 *
 * It guards a handful of stores (waker slots, the waiter list), so the uncontended path is all
 * that matters: one CAS to lock, one exchange to unlock, inline. pthread_mutex_lock/unlock cost
 * ~50 instructions a pair here and ran 3 times per message in urpoll-pingpong (callgrind: 15% of
 * the user instructions). Contention spins briefly, then sleeps on the futex.
 */
#ifndef URP_CORE_LOCK_H
#define URP_CORE_LOCK_H

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomic.h"

struct urp__lock {
	uint32_t state;
};

static inline void urp__lock_init(struct urp__lock *l)
{
	l->state = 0;
}

/* Spins before sleeping: the lock is held for a few stores, so a holder that is running
 * releases it sooner than a futex round trip. */
#define URP__LOCK_SPINS 100

static inline void urp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

static inline void urp__lock_slow(struct urp__lock *l, uint32_t cur)
{
	for (int i = 0; i < URP__LOCK_SPINS && cur != 0; i++) {
		urp__cpu_relax();
		cur = urp__load_relaxed(&l->state);
		if (cur == 0 && urp__cas_acq_rel(&l->state, &cur, 1))
			return;
	}
	/* Announce a sleeper: whoever unlocks next sees 2 and wakes one. */
	if (cur != 2)
		cur = urp__xchg_acq_rel(&l->state, 2);
	while (cur != 0) {
		syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		cur = urp__xchg_acq_rel(&l->state, 2);
	}
}

static inline void urp__lock(struct urp__lock *l)
{
	uint32_t cur = 0;

	/* Pairs with the release half of the exchange in urp__unlock(). */
	if (!urp__cas_acq_rel(&l->state, &cur, 1))
		urp__lock_slow(l, cur);
}

static inline void urp__unlock(struct urp__lock *l)
{
	if (urp__xchg_acq_rel(&l->state, 0) == 2)
		syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#endif
