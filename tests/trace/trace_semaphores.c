// SPDX-License-Identifier: MIT
/*
 * trace_semaphores: the USDT probes' semaphores (docs/tracing.md; the fixture:
 * tests/lib/trace_util.h), read from the traced process's memory. Untraced processes pay
 * nothing: the semaphores are 0 before tracing, set only in the traced process while the tracer
 * is attached, and 0 again once it has exited.
 */
#include "trace_util.h"

TestSuite(trace_semaphores, .init = trace_setup, .fini = trace_teardown, .timeout = 60);

/* Link-time addresses of the two semaphores, from the library's USDT notes. */
static void semaphore_addrs(unsigned long long *stale, unsigned long long *wake)
{
	char cmd[PATH_MAX + 64], line[512], name[64] = "";
	unsigned long long addr;
	FILE *f;

	*stale = *wake = 0;
	snprintf(cmd, sizeof(cmd), "readelf -n %s", private_lib);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		const char *sem = strstr(line, "Semaphore: ");

		if (sscanf(line, " Name: %63s", name) == 1)
			continue;
		if (!sem || sscanf(sem, "Semaphore: %llx", &addr) != 1)
			continue;
		if (!strcmp(name, "stale_reject"))
			*stale = addr;
		else if (!strcmp(name, "wake_batch"))
			*wake = addr;
	}
	pclose(f);
	cr_assert(*stale && *wake, "no semaphores in the notes of %s", private_lib);
}

static unsigned semaphore(pid_t pid, unsigned long long base, unsigned long long addr)
{
	char mem[64];
	unsigned short value;
	int fd;

	snprintf(mem, sizeof(mem), "/proc/%d/mem", pid);
	fd = open(mem, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", mem, strerror(errno));
	cr_assert_eq(pread(fd, &value, sizeof(value), (off_t)(base + addr)), sizeof(value),
		     "read %s: %s", mem, strerror(errno));
	close(fd);
	return value;
}

/* Untraced processes pay nothing: the semaphores are 0 before tracing, set only in the traced
 * process while attached, and 0 again once the tracer has exited. */
Test(trace_semaphores, semaphores_only_while_traced)
{
	unsigned long long stale, wake, base, other_base;
	struct proc tracer, traced, other;
	char *obj;

	semaphore_addrs(&stale, &wake);
	spawn_workload(&traced, (char *[]){ WORKLOAD, "-w", "-e", "-s", "40", "-b", "3", NULL });
	spawn_workload(&other, (char *[]){ WORKLOAD, "-w", NULL });
	base = library_base(traced.pid);
	other_base = library_base(other.pid);
	cr_assert_eq(semaphore(traced.pid, base, stale), 0);
	cr_assert_eq(semaphore(traced.pid, base, wake), 0);

	start_tracer(&tracer, (char *[]){ TRACER, "-j", "--cumulative", "-p", pid_str(traced.pid),
					  "0.2", NULL });
	cr_assert_gt(semaphore(traced.pid, base, stale), 0, "stale_reject semaphore not set");
	cr_assert_gt(semaphore(traced.pid, base, wake), 0, "wake_batch semaphore not set");
	cr_assert_eq(semaphore(other.pid, other_base, stale), 0, "untraced process pays");
	cr_assert_eq(semaphore(other.pid, other_base, wake), 0, "untraced process pays");

	release(&traced);
	while (!strstr(buf_str(&traced.out_buf), "wakes="))
		pump(&traced, 50);
	kill(tracer.pid, SIGINT);
	cr_assert_eq(wait_exit(&tracer, 10000), 0, "stderr: %s", buf_str(&tracer.err_buf));
	cr_assert_eq(semaphore(traced.pid, base, stale), 0, "left set after the tracer exited");
	cr_assert_eq(semaphore(traced.pid, base, wake), 0, "left set after the tracer exited");
	obj = last_interval(buf_str(&tracer.out_buf));
	assert_counts_equal(obj, workload_counts(&traced));
	free(obj);

	release(&traced);
	release(&other);
	cr_assert_eq(wait_exit(&traced, 10000), 0);
	cr_assert_eq(wait_exit(&other, 10000), 0);
	proc_free(&tracer);
	proc_free(&traced);
	proc_free(&other);
}
