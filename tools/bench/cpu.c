/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench: threads pinned to distinct CPUs, for the cross-core workloads (wakeup, word).
 * New threads only: the harness's own thread keeps its affinity for the workloads after.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "bench.h"

int bench_thread_on_cpu(pthread_t *thread, unsigned nth, void *(*fn)(void *), void *arg)
{
	cpu_set_t allowed, one;
	pthread_attr_t attr;
	unsigned cpu, seen = 0;
	int ret;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		return -errno;
	ret = pthread_attr_init(&attr);
	if (ret)
		return -ret;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed) || seen++ != nth)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		ret = pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		break;
	}
	if (!ret)
		ret = pthread_create(thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return -ret;
}
