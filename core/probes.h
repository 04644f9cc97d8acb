/* SPDX-License-Identifier: MIT */
/*
 * USDT probe sites, provider "urpoll". Each probe is guarded by its semaphore: the kernel bumps
 * it while a uprobe is attached, so an untraced process pays one predictable load and branch.
 * Build with URP_NO_PROBES to compile them out.
 *
 *   stale_reject(token, event_tick, current_tick)	a tick-checked clear was refused
 *   wake_batch(token, size, ready)			a non-empty wake array was flushed
 */
#ifndef URP_CORE_PROBES_H
#define URP_CORE_PROBES_H

#ifdef URP_NO_PROBES

#define urp__probe_stale_reject(token, event_tick, current_tick)                                   \
	((void)(token), (void)(event_tick), (void)(current_tick))
#define urp__probe_wake_batch(token, size, ready) ((void)(token), (void)(size), (void)(ready))

#else

#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#include "atomic.h"

/* Named as <sys/sdt.h> expects: provider_name_semaphore. Not exported (version script). */
extern unsigned short urpoll_stale_reject_semaphore;
extern unsigned short urpoll_wake_batch_semaphore;

#define urp__probe_enabled(sem) __builtin_expect(urp__semaphore_read(&(sem)), 0)

#define urp__probe_stale_reject(token, event_tick, current_tick)                                   \
	do {                                                                                       \
		if (urp__probe_enabled(urpoll_stale_reject_semaphore))                              \
			STAP_PROBE3(urpoll, stale_reject, token, event_tick, current_tick);        \
	} while (0)
#define urp__probe_wake_batch(token, size, ready)                                                  \
	do {                                                                                       \
		if (urp__probe_enabled(urpoll_wake_batch_semaphore))                                \
			STAP_PROBE3(urpoll, wake_batch, token, size, ready);                       \
	} while (0)

#endif /* URP_NO_PROBES */

#endif /* URP_CORE_PROBES_H */
