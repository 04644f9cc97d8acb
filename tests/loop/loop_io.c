// SPDX-License-Identifier: MIT
/*
 * loop_io: a task doing I/O the way the README shows: it waits with a readiness future and its
 * task waker, then reads through try_io, and gets everything a peer writes, in order, until EOF.
 */
#include <signal.h>

#include "loop_util.h"

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(loop_io, .init = setup, .timeout = 120);

/* ---- a task reading a socket: readiness future + task waker + try_io ---- */

#define READER_BYTES (1 << 20)

static unsigned char pattern_byte(size_t off)
{
	return (unsigned char)(off * 131u + (off >> 9) + 7u);
}

struct reader {
	struct urp_task task;
	struct urp_readiness fut;
	struct urp_io *io;
	int fd;
	bool waiting;	  /* fut is pending */
	size_t total;	  /* loop thread; read by the test once done */
	atomic_int parks; /* runs that ended with the future pending */
	atomic_int done;  /* EOF seen, entry deregistered */
	atomic_int error; /* first failure, as a negative code or a mismatch offset + 1 */
	char what[96];
};

static void reader_fail(struct reader *r, int code, const char *what)
{
	if (atomic_load(&r->error))
		return;
	snprintf(r->what, sizeof(r->what), "%s", what);
	atomic_store(&r->error, code ? code : -1);
}

/* The README idiom: wait with the future and the task's waker, then read through try_io. */
static int reader_run(struct urp_task *task, void *arg)
{
	struct reader *r = arg;
	struct urp_waker waker = urp_task_waker(task);
	unsigned char buf[4096];
	struct rw_op op = {.fd = r->fd, .buf = (char *)buf, .len = sizeof(buf)};
	struct urp_event ev;
	ssize_t n;
	int ret;

	if (atomic_load(&r->error) || atomic_load(&r->done))
		return 0;
	for (;;) {
		if (!r->waiting)
			urp_readiness_init(&r->fut, r->io, URP_READABLE);
		ret = urp_readiness_poll(&r->fut, &waker, &ev);
		if (ret == -EAGAIN) {
			r->waiting = true;
			atomic_fetch_add(&r->parks, 1);
			return 0;
		}
		r->waiting = false;
		if (ret < 0 || ev.shutdown) {
			reader_fail(r, ret ? ret : -ESHUTDOWN, "readiness future");
			return 0;
		}
		while ((n = urp_io_try_io(r->io, URP_READABLE, op_read, &op)) > 0) {
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] != pattern_byte(r->total + (size_t)i)) {
					reader_fail(r, (int)(r->total + (size_t)i) + 1,
						    "byte mismatch");
					return 0;
				}
			}
			r->total += (size_t)n;
		}
		if (n == 0) {
			ret = urp_deregister(r->io);
			if (ret)
				reader_fail(r, ret, "urp_deregister");
			atomic_store(&r->done, 1);
			return 0;
		}
		if (n != -EAGAIN) {
			reader_fail(r, (int)n, "try_io read");
			return 0;
		}
	}
}

Test(loop_io, task_with_readiness_future_reads_everything_a_peer_writes)
{
	struct urp_loop *loop = loop_new_or_fail();
	struct loop_runner lr;
	struct reader r;
	unsigned char chunk[8192];
	unsigned x = 12345;
	size_t sent = 0;
	int sv[2];

	unix_pair(sv);
	memset(&r, 0, sizeof(r));
	r.fd = sv[0];
	r.io = reg_or_fail(urp_loop_driver(loop), sv[0], URP_READABLE);
	urp_task_init(&r.task, loop, reader_run, &r);
	loop_runner_start(&lr, loop, 1);
	urp_task_wake(&r.task);
	/* Nothing written yet: the task must end up waiting on its future. */
	cr_assert(WAIT_UNTIL(atomic_load(&r.parks) >= 1 || atomic_load(&r.error), BOUND_S),
		  "the reader task never waited on its future");
	cr_assert_eq(atomic_load(&r.error), 0, "%s: %d", r.what, atomic_load(&r.error));

	while (sent < READER_BYTES) {
		size_t len;
		ssize_t n;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		len = 1 + x % sizeof(chunk);
		if (len > READER_BYTES - sent)
			len = READER_BYTES - sent;
		for (size_t i = 0; i < len; i++)
			chunk[i] = pattern_byte(sent + i);
		n = write(sv[1], chunk, len);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = sv[1], .events = POLLOUT};

			cr_assert_eq(poll(&pfd, 1, (int)(BOUND_S * 1000)), 1,
				     "the reader task stopped reading (%zu of %zu bytes sent)",
				     sent, (size_t)READER_BYTES);
			continue;
		}
		cr_assert_gt(n, 0, "write: %s", strerror(errno));
		sent += (size_t)n;
	}
	cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);

	cr_assert(WAIT_UNTIL(atomic_load(&r.done) || atomic_load(&r.error), BOUND_S),
		  "the reader task did not see EOF");
	loop_runner_stop(&lr);
	loop_runner_join(&lr);
	cr_assert_eq(atomic_load(&r.error), 0, "%s: %d", r.what, atomic_load(&r.error));
	cr_assert_eq(r.total, (size_t)READER_BYTES, "read %zu of %zu bytes", r.total,
		     (size_t)READER_BYTES);
	cr_assert_geq(atomic_load(&r.parks), 1);
	close(sv[0]);
	close(sv[1]);
	urp_loop_free(loop);
}
