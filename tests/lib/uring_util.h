/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the uring_* tests: real file descriptors (socketpairs, TCP on loopback),
 * the readiness word's fields, bounded turn loops, registrations and turns from other threads
 * (a driver thread, a semaphore waker), try_io read/write operations, and the suite's driver.
 *
 * Turn loops never sleep and hope: they turn until a condition holds, at most TURN_TRIES turns
 * of at most TURN_WAIT_MS each, and the caller asserts the condition afterwards. Negative checks
 * (something must NOT show up) settle with a few short turns first, since the absence of a
 * completion cannot be waited for.
 */
#ifndef URP_TESTS_URING_UTIL_H
#define URP_TESTS_URING_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#include "test_util.h"

#define TURN_WAIT_MS 100
#define TURN_TRIES   50
#define SETTLE_TURNS 4

static inline unsigned io_ready(struct urp_io *io)
{
	return urp_word_ready(urp_io_word(io));
}

/* "READABLE|WRITABLE" for failure messages; buf must hold 80 bytes. */
static inline const char *ready_str(unsigned ready, char *buf)
{
	static const char *const names[] = {"READABLE",	    "WRITABLE", "READ_CLOSED",
					    "WRITE_CLOSED", "PRIORITY", "ERROR"};
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 6; i++) {
		if (ready & (1u << i))
			len +=
			    (size_t)snprintf(buf + len, 80 - len, "%s%s", len ? "|" : "", names[i]);
	}
	if (!len)
		snprintf(buf, 80, "0");
	return buf;
}

/* ---- drivers ---- */

static inline struct urp_driver *driver_new(const struct urp_driver_opts *opts)
{
	struct urp_driver *drv = NULL;
	int ret = urp_driver_new(&drv, opts);

	cr_assert_eq(ret, 0, "urp_driver_new: %d (%s)", ret, urp_strerror(ret));
	cr_assert_not_null(drv);
	return drv;
}

static inline struct urp_io *reg_or_fail(struct urp_driver *drv, int fd, unsigned interest)
{
	struct urp_io *io = NULL;
	int ret = urp_register(drv, fd, interest, &io);

	cr_assert_eq(ret, 0, "urp_register(%d, %#x): %d (%s)", fd, interest, ret,
		     urp_strerror(ret));
	cr_assert_not_null(io);
	return io;
}

static inline struct urp_stats driver_stats(struct urp_driver *drv)
{
	struct urp_stats st;
	int ret = urp_driver_stats(drv, &st);

	cr_assert_eq(ret, 0, "urp_driver_stats: %d", ret);
	return st;
}

static inline void assert_no_unknown_tokens(struct urp_driver *drv)
{
	struct urp_stats st = driver_stats(drv);

	cr_assert_eq(st.unknown_tokens, 0, "unknown_tokens = %llu (a CQE named no live entry)",
		     (unsigned long long)st.unknown_tokens);
}

static inline int turn(struct urp_driver *drv, int timeout_ms)
{
	int ret = urp_driver_turn(drv, timeout_ms);

	cr_assert_geq(ret, 0, "urp_driver_turn(%d): %d (%s)", timeout_ms, ret, urp_strerror(ret));
	return ret;
}

/* Let completions already on their way land: a few non-blocking turns and short waits. */
static inline void settle(struct urp_driver *drv)
{
	for (int i = 0; i < SETTLE_TURNS; i++)
		turn(drv, i < SETTLE_TURNS / 2 ? 0 : 10);
}

/* Turn until every bit of want shows in io's readiness; returns the readiness seen last. */
static inline unsigned turn_until_ready(struct urp_driver *drv, struct urp_io *io, unsigned want)
{
	for (int i = 0; i < TURN_TRIES && (io_ready(io) & want) != want; i++)
		turn(drv, TURN_WAIT_MS);
	return io_ready(io);
}

/* Turn until the driver's live count drops to live. */
static inline uint64_t turn_until_live(struct urp_driver *drv, uint64_t live)
{
	for (int i = 0; i < TURN_TRIES && driver_stats(drv).live != live; i++)
		turn(drv, 10);
	return driver_stats(drv).live;
}

/* Assert io shows all of want and none of forbid. */
#define assert_ready(io, want, forbid)                                                             \
	do {                                                                                       \
		char b1_[80], b2_[80], b3_[80];                                                    \
		unsigned r_ = io_ready(io);                                                        \
		cr_assert(((r_ & (want)) == (want)) && !(r_ & (forbid)),                           \
			  "readiness %s: wanted %s, forbidden %s", ready_str(r_, b1_),             \
			  ready_str((want), b2_), ready_str((forbid), b3_));                       \
	} while (0)

/* ---- file descriptors ---- */

static inline bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static inline void set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	cr_assert_geq(flags, 0);
	cr_assert_eq(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

static inline void unix_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
		     "socketpair: %s", strerror(errno));
}

static inline int tcp_listener(struct sockaddr_in *addr)
{
	return loopback_listener(addr, 16);
}

/* A connected TCP pair on loopback, both ends non-blocking: sv[0] connected, sv[1] accepted. */
static inline void tcp_pair(int sv[2])
{
	struct sockaddr_in addr;
	int lfd = tcp_listener(&addr);
	struct pollfd pfd;
	int ret;

	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(sv[0], 0);
	ret = connect(sv[0], (struct sockaddr *)&addr, sizeof(addr));
	cr_assert(ret == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
	sv[1] = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	cr_assert_geq(sv[1], 0, "accept4: %s", strerror(errno));
	pfd = (struct pollfd){.fd = sv[0], .events = POLLOUT};
	cr_assert_eq(poll(&pfd, 1, 5000), 1, "connect did not complete");
	close(lfd);
}

static inline void write_all(int fd, const void *buf, size_t len)
{
	ssize_t n = write(fd, buf, len);

	cr_assert_eq(n, (ssize_t)len, "write(%d, %zu): %zd (%s)", fd, len, n, strerror(errno));
}

/* ---- threads and wakers ---- */

/* Run fn(arg) on a new thread and wait for it: "from another thread" in one line. */
static inline void run_on_thread(void *(*fn)(void *), void *arg)
{
	pthread_t thread;

	cr_assert_eq(pthread_create(&thread, NULL, fn, arg), 0);
	cr_assert_eq(pthread_join(thread, NULL), 0);
}

/* A registration from another thread: run_on_thread(register_main, &tr). */
struct thread_reg {
	struct urp_driver *drv;
	int fd;
	unsigned interest;
	int ret;
	struct urp_io *io;
};

static inline void *register_main(void *arg)
{
	struct thread_reg *tr = arg;

	tr->ret = urp_register(tr->drv, tr->fd, tr->interest, &tr->io);
	return NULL;
}

/* Wait on sem for at most seconds; false on timeout. */
static inline bool sem_wait_for(sem_t *sem, double seconds)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)seconds;
	deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(sem, &deadline) != 0) {
		if (errno != EINTR)
			return false;
	}
	return true;
}

/* A waker that posts the sem_t at arg. */
static inline void post_sem(void *arg)
{
	sem_post(arg);
}

/* ---- a driver thread ---- */

struct driver_thread {
	pthread_t thread;
	struct urp_driver *drv;
	atomic_bool stop;
	long long events; /* sum of urp_driver_turn() results */
	long turns;
	int error; /* first negative urp_driver_turn() result */
};

/* Turn until told to stop, then until every entry is gone (bounded), so nobody else needs to
 * turn this driver again. */
static inline void *driver_main(void *arg)
{
	struct driver_thread *d = arg;
	int after_stop = 0;

	for (;;) {
		int ret = urp_driver_turn(d->drv, 100);
		struct urp_stats st;

		if (ret < 0) {
			d->error = ret;
			break;
		}
		d->events += ret;
		d->turns++;
		if (!atomic_load(&d->stop))
			continue;
		urp_driver_stats(d->drv, &st);
		if (st.live == 0 || ++after_stop > 500)
			break;
	}
	return NULL;
}

static inline void driver_start(struct driver_thread *d, struct urp_driver *which)
{
	memset(d, 0, sizeof(*d));
	d->drv = which;
	atomic_init(&d->stop, false);
	cr_assert_eq(pthread_create(&d->thread, NULL, driver_main, d), 0);
}

static inline void driver_stop(struct driver_thread *d)
{
	atomic_store(&d->stop, true);
	cr_assert_eq(urp_driver_unpark(d->drv), 0);
	cr_assert_eq(pthread_join(d->thread, NULL), 0);
	cr_assert_eq(d->error, 0, "urp_driver_turn on the driver thread: %d (%s)", d->error,
		     urp_strerror(d->error));
}

/* ---- try_io operations ---- */

struct rw_op {
	int fd;
	char *buf;
	size_t len;
	int calls;
};

static inline ssize_t op_read(void *arg)
{
	struct rw_op *op = arg;
	ssize_t n = read(op->fd, op->buf, op->len);

	op->calls++;
	return n < 0 ? -errno : n;
}

static inline ssize_t op_write(void *arg)
{
	struct rw_op *op = arg;
	ssize_t n = write(op->fd, op->buf, op->len);

	op->calls++;
	return n < 0 ? -errno : n;
}

/*
 * Read through try_io until it returns -EAGAIN (the read hit EAGAIN and the readiness was
 * cleared, or the entry was not readable to begin with). Returns the bytes read.
 */
static inline size_t drain_try_io(struct urp_io *io, int fd)
{
	char buf[4096];
	struct rw_op op = {.fd = fd, .buf = buf, .len = sizeof(buf)};
	size_t total = 0;
	ssize_t n;

	while ((n = urp_io_try_io(io, URP_READABLE, op_read, &op)) > 0)
		total += (size_t)n;
	cr_assert_eq(n, -EAGAIN, "try_io read: %zd", n);
	return total;
}

/* Read fd (not registered) until EAGAIN or EOF; returns the bytes read. */
static inline size_t drain_fd(int fd)
{
	char buf[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	return total;
}

/* ---- the suite's driver ---- */

/* Freed by drv_teardown() after checking that no CQE named a dead entry. */
static struct urp_driver *drv;

static inline void drv_teardown(void)
{
	if (!drv)
		return;
	assert_no_unknown_tokens(drv);
	/* Ring mode: every buffer is back in the ring once nothing is taken or queued. */
	cr_assert_eq(driver_stats(drv).bufs_out, 0, "%llu ring buffers never came back",
		     (unsigned long long)driver_stats(drv).bufs_out);
	urp_driver_free(drv);
	drv = NULL;
}

static inline struct urp_io *reg(int fd, unsigned interest)
{
	return reg_or_fail(drv, fd, interest);
}

#endif /* URP_TESTS_URING_UTIL_H */
