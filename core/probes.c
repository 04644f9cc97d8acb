/* SPDX-License-Identifier: MIT */
/* The USDT semaphores: in .probes, where SystemTap, bpftrace and libbpf expect them. */
#ifndef URP_NO_PROBES
#include "probes.h"

__attribute__((section(".probes"), used)) unsigned short urpoll_stale_reject_semaphore;
__attribute__((section(".probes"), used)) unsigned short urpoll_wake_batch_semaphore;
#endif
