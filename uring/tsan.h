/* SPDX-License-Identifier: MIT */
/*
 * ThreadSanitizer cannot see ordering carried through the ring: an entry's address goes into
 * an SQE and comes back in a CQE. Tell it: release at submit, acquire at reap.
 */
#ifndef URP_URING_TSAN_H
#define URP_URING_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define URP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define URP_TSAN 1
#endif
#endif

#ifdef URP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define urp__tsan_release(addr) __tsan_release(addr)
#define urp__tsan_acquire(addr) __tsan_acquire(addr)
#else
#define urp__tsan_release(addr) ((void)(addr))
#define urp__tsan_acquire(addr) ((void)(addr))
#endif

#endif /* URP_URING_TSAN_H */
