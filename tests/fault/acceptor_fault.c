// SPDX-License-Identifier: MIT
/*
 * acceptor_fault: the servers' listener task (tools/servers/acceptor.c) when the driver's poll on its
 * listening socket fails, through the injectable ring (uring/fault.h). Built like uring_fault:
 * the library's sources with URP_FAULT, plus tools/servers/acceptor.c.
 */
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>

#include "../../tools/servers/acceptor.h"
#include "fault.h"
#include "uring_util.h"

static struct urp_loop *loop;
static unsigned fatal_calls;

static void teardown(void)
{
	if (loop)
		urp_loop_free(loop);
	loop = NULL;
	cr_assert_eq(urp__fault_rings_open(), 0, "a ring was set up and never exited");
	urp__fault_reset();
}

TestSuite(acceptor_fault, .init = urp__fault_reset, .fini = teardown, .timeout = 30);

static void on_fatal(void)
{
	fatal_calls++;
	urp_loop_stop(loop);
}

static void on_accept(struct acceptor *a, int fd, void *arg)
{
	close(fd);
	acceptor_release(a->group, true);
}

/* Stops the loop after a while, so that a listener that never reports ends the test too. */
static void *watchdog(void *arg)
{
	usleep(2 * 1000 * 1000);
	urp_loop_stop(arg);
	return NULL;
}

/* Run the loop on this thread (the fault ring is not thread-safe) until it stops, with what it
 * writes on stderr captured into err. */
static void run_capturing_stderr(char *err, size_t size)
{
	FILE *tmp = tmpfile();
	pthread_t dog;
	int saved;
	ssize_t n;

	cr_assert_not_null(tmp);
	fflush(stderr);
	saved = dup(2);
	dup2(fileno(tmp), 2);
	cr_assert_eq(pthread_create(&dog, NULL, watchdog, loop), 0);
	cr_assert_eq(urp_loop_run(loop), 0);
	pthread_join(dog, NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fileno(tmp), err, size - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	fclose(tmp);
}

static void start_acceptor(struct acceptor *a, struct acceptor_group *g, int *fd)
{
	struct sockaddr_in addr;

	cr_assert_eq(urp_loop_new(&loop, NULL), 0);
	*fd = tcp_listener(&addr);
	*g = (struct acceptor_group){ .prog = "acceptor_fault", .fatal = on_fatal };
	fatal_calls = 0;
	cr_assert_eq(acceptor_start(a, g, loop, *fd, on_accept, NULL), 0);
}

/* The poll on the listening socket fails: the acceptor says so, with the reason, and asks the
 * server to stop, instead of leaving it up and deaf to new clients. */
Test(acceptor_fault, failed_listener_poll_reaches_the_acceptor_and_the_log)
{
	struct acceptor_group g;
	struct acceptor a;
	char err[1024];
	int fd;

	start_acceptor(&a, &g, &fd);
	/* Ends the poll armed by the loop's first turn, as a failing kernel poll would. */
	urp__fault_poll_end((uint64_t)(uintptr_t)a.io, -EINVAL);
	run_capturing_stderr(err, sizeof(err));
	cr_assert_eq(fatal_calls, 1, "the acceptor never reported its failed poll");
	cr_assert_eq(urp_io_poll_error(a.io), -EINVAL);
	cr_assert_not_null(strstr(err, "the poll on a listening socket failed"), "stderr: %s", err);
	cr_assert_not_null(strstr(err, strerror(EINVAL)), "stderr: %s", err);
	acceptor_stop(&a);
	urp_loop_free(loop);
	loop = NULL;
	acceptor_free(&a);
	close(fd);
}

/* A driver shutdown (the server stopping) ends the listener too: no failure, no message. */
Test(acceptor_fault, driver_shutdown_is_not_reported_as_a_failure)
{
	struct acceptor_group g;
	struct acceptor a;
	char err[1024];
	int fd;

	start_acceptor(&a, &g, &fd);
	urp_driver_shutdown(urp_loop_driver(loop));
	run_capturing_stderr(err, sizeof(err));
	cr_assert_eq(fatal_calls, 0);
	cr_assert_eq(urp_io_poll_error(a.io), 0);
	cr_assert_eq(err[0], '\0', "stderr: %s", err);
	urp_loop_free(loop);
	loop = NULL;
	acceptor_free(&a);
	close(fd);
}
