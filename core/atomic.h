/* SPDX-License-Identifier: MIT */
/*
 * Every atomic access of the library goes through here, so a TSan or model-checking build has
 * one place to hook. Callers name, next to each acquire, the release it pairs with. (The
 * futex calls of core/lock.h and uring/loop/wait.c are syscalls on these words, not accesses.)
 */
#ifndef URP_CORE_ATOMIC_H
#define URP_CORE_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

static inline uint32_t urp__load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline uint32_t urp__load_relaxed(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void urp__store_release(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* On failure *expected is refreshed with an acquire load. */
static inline bool urp__cas_acq_rel(uint32_t *p, uint32_t *expected, uint32_t desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static inline uint32_t urp__fetch_or_acq_rel(uint32_t *p, uint32_t bits)
{
	return __atomic_fetch_or(p, bits, __ATOMIC_ACQ_REL);
}

static inline uint32_t urp__fetch_sub_acq_rel(uint32_t *p, uint32_t v)
{
	return __atomic_fetch_sub(p, v, __ATOMIC_ACQ_REL);
}

static inline void urp__store_relaxed(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void urp__fetch_add_relaxed(uint32_t *p, uint32_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static inline uint32_t urp__xchg_acq_rel(uint32_t *p, uint32_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

static inline void *urp__ptr_load_acquire(void *const *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void urp__ptr_store_release(void **p, void *v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline bool urp__ptr_cas_release(void **p, void **expected, void *desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_RELEASE,
					   __ATOMIC_RELAXED);
}

static inline void *urp__ptr_xchg_acquire(void **p, void *v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQUIRE);
}

/*
 * Sequentially consistent accesses, for Dekker-style handshakes where each side stores, then
 * loads what the other stores (a store followed by a load needs a full barrier between them).
 */
static inline uint32_t urp__xchg_seq_cst(uint32_t *p, uint32_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}

static inline uint32_t urp__fetch_or_seq_cst(uint32_t *p, uint32_t bits)
{
	return __atomic_fetch_or(p, bits, __ATOMIC_SEQ_CST);
}

static inline uint32_t urp__load_seq_cst(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline bool urp__cas_seq_cst(uint32_t *p, uint32_t *expected, uint32_t desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

/* Statistics: monotonic counts read by anyone, ordering nothing. */
static inline void urp__count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static inline uint64_t urp__count_read(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* A count bounded by a limit: replace *expected by desired if unchanged (refreshes *expected). */
static inline bool urp__count_cas(uint64_t *c, uint64_t *expected, uint64_t desired)
{
	return __atomic_compare_exchange_n(c, expected, desired, false, __ATOMIC_RELAXED,
					   __ATOMIC_RELAXED);
}

/* Small fields beside others in one word (a registration's command bits, its poll's errno). */
static inline uint8_t urp__fetch_or_u8(uint8_t *p, uint8_t bits)
{
	return __atomic_fetch_or(p, bits, __ATOMIC_ACQ_REL);
}

static inline uint8_t urp__xchg_u8(uint8_t *p, uint8_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

static inline void urp__store_release_u8(uint8_t *p, uint8_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint8_t urp__load_acquire_u8(const uint8_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* A USDT semaphore, which the kernel bumps while a probe is attached. */
static inline unsigned short urp__semaphore_read(const unsigned short *sem)
{
	return __atomic_load_n(sem, __ATOMIC_RELAXED);
}

static inline void urp__count_sub(uint64_t *c, uint64_t n)
{
	__atomic_fetch_sub(c, n, __ATOMIC_RELAXED);
}

/* A count with a single writer (the driver thread): a plain add, readable from anywhere. */
static inline void urp__count_local(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

#endif /* URP_CORE_ATOMIC_H */
