// SPDX-License-Identifier: MIT
/*
 * misuse_debug: the rules of urpoll.h that a release build does not check (they would cost the
 * fast paths, or cannot be checked without knowing which entries are alive), caught by the
 * debug build (-DURP_DEBUG, core/debug.h), which the sanitizer builds of `make check` are. Each
 * misuse runs in a child, which must abort with one line that names the call and the rule.
 * The plain build does not run this suite: there these misuses are use-after-frees.
 */
#include <signal.h>
#include <sys/wait.h>

#include "uring_util.h"

#ifndef URP_DEBUG
#error "misuse_debug tests the debug build (-DURP_DEBUG)"
#endif

TestSuite(misuse_debug, .timeout = 30);

static void noop_wake(void *arg)
{
	(void)arg;
}

/* Run misuse() in a child; expect it to abort, having printed a line containing each of the
 * NULL-terminated needles. */
static void expect_abort(void (*misuse)(void), ...)
{
	char out[4096];
	size_t len = 0;
	int pipefd[2], status;
	const char *needle;
	va_list ap;
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe(pipefd), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		signal(SIGABRT, SIG_DFL);
		misuse();
		_exit(0);
	}
	close(pipefd[1]);
	while (len < sizeof(out) - 1 && (n = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pipefd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		  "the misuse was not caught (status %#x); stderr: %s", status, out);
	va_start(ap, misuse);
	while ((needle = va_arg(ap, const char *)))
		cr_assert_not_null(strstr(out, needle), "'%s' missing from: %s", needle, out);
	va_end(ap);
}

/* A future woken by urp_driver_free() (the shutdown wakes every waiter) and cancelled after:
 * its entry is freed by then. */
static void cancel_after_driver_free(void)
{
	struct urp_readiness r;
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	settle(drv);
	urp_readiness_init(&r, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &(struct urp_waker){ noop_wake, NULL }, &ev),
		     -EAGAIN);
	urp_driver_free(drv);
	urp_readiness_cancel(&r);
}

Test(misuse_debug, readiness_cancel_after_driver_free_is_caught)
{
	expect_abort(cancel_after_driver_free, "urp_readiness_cancel", "not alive", NULL);
}

/* Deregistered twice: before the turn that frees it, and after. */
static void deregister_twice_same_turn(void)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	settle(drv);
	urp_deregister(io);
	urp_deregister(io);
}

static void deregister_twice_after_free(void)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	settle(drv);
	urp_deregister(io);
	turn_until_live(drv, 0);
	urp_deregister_close(io);
}

Test(misuse_debug, deregister_twice_is_caught)
{
	expect_abort(deregister_twice_same_turn, "urp_deregister", "already given up", NULL);
	expect_abort(deregister_twice_after_free, "urp_deregister_close", "not alive", NULL);
}

/* An entry passed to any call after urp_deregister(), while its memory still exists. */
static void try_io_after_deregister(void)
{
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	urp_deregister(io);
	urp_io_try_io(io, URP_READABLE, op_read, NULL);
}

Test(misuse_debug, entry_used_after_deregister_is_caught)
{
	expect_abort(try_io_after_deregister, "urp_io_try_io", "already given up", NULL);
}

static void io_free_twice(void)
{
	struct urp_io *io;

	cr_assert_eq(urp_io_new(&io), 0);
	urp_io_free(io);
	urp_io_free(io);
}

Test(misuse_debug, detached_entry_freed_twice_is_caught)
{
	expect_abort(io_free_twice, "urp_io_free", NULL);
}

/* The rules kept do not get in the way of the documented order: cancel, clear, deregister;
 * and a future that is done (or was never polled) may be cancelled after its entry is gone. */
Test(misuse_debug, documented_order_passes)
{
	struct urp_readiness r, done;
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	settle(drv);
	urp_readiness_init(&r, io, URP_READABLE);
	urp_readiness_init(&done, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&r, &(struct urp_waker){ noop_wake, NULL }, &ev),
		     -EAGAIN);
	write_all(sv[1], "x", 1);
	turn_until_ready(drv, io, URP_READABLE);
	cr_assert_eq(urp_readiness_poll(&done, NULL, &ev), 0);
	urp_readiness_cancel(&r);
	urp_io_clear_wakers(io);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	urp_readiness_cancel(&done);
	urp_readiness_cancel(&r);
	urp_driver_free(drv);
	drv = NULL;
	close(sv[1]);
}
