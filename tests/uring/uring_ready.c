// SPDX-License-Identifier: MIT
/*
 * uring_ready: readiness delivered by the io_uring driver for real file descriptors
 * (socketpairs, TCP on loopback, pipes, eventfd), mapped as docs/design.md, "The readiness word", says:
 *
 *   READABLE     POLLIN or POLLPRI          READ_CLOSED   POLLHUP, or POLLIN with POLLRDHUP
 *   WRITABLE     POLLOUT                    WRITE_CLOSED  POLLHUP, POLLOUT with POLLERR, or
 *   PRIORITY     POLLPRI                                  POLLERR alone
 *   ERROR        POLLERR
 *
 * Where a test expects closed or error bits it also asks poll(2) for the fd's level mask and
 * checks that everything that mask maps to reached the word: the kernel's answer, not a guess.
 * Every test turns the driver on the test's thread, so registrations arm at once.
 */
#include <signal.h>
#include <sys/eventfd.h>

#include "uring_util.h"

#define CLOSED_BITS (URP_READ_CLOSED | URP_WRITE_CLOSED | URP_ERROR)


static void setup(void)
{
	/* Writes to a pipe or socket whose reader is gone must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	drv = driver_new(NULL);
	/* The first turn makes this thread the driver's: registrations below arm at once. */
	turn(drv, 0);
}

TestSuite(uring_ready, .init = setup, .fini = drv_teardown, .timeout = 30);

/* The ready bits poll(2) reports for fd right now, through the poll-mask mapping (urp_ready_from_poll()). */
static unsigned level_ready(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events | POLLRDHUP};

	cr_assert_geq(poll(&pfd, 1, 0), 0);
	return urp_ready_from_poll((unsigned)pfd.revents);
}

/* Everything the fd's level mask maps to (within what interest sees) is in the word. */
static void assert_level_reported(struct urp_io *io, int fd, unsigned interest)
{
	short events = (interest & URP_READABLE ? POLLIN : 0) |
		       (interest & URP_WRITABLE ? POLLOUT : 0) |
		       (interest & URP_PRIORITY ? POLLPRI : 0);
	unsigned level = level_ready(fd, events) & urp_ready_from_interest(interest | URP_ERROR);
	char b1[80], b2[80];

	cr_assert_eq(io_ready(io) & level, level, "word %s lacks part of poll(2)'s %s",
		     ready_str(io_ready(io), b1), ready_str(level, b2));
}

static void new_socket_writable(int sv[2])
{
	struct urp_io *io = reg(sv[0], URP_READABLE | URP_WRITABLE);

	turn_until_ready(drv, io, URP_WRITABLE);
	settle(drv);
	assert_ready(io, URP_WRITABLE, URP_READABLE | CLOSED_BITS | URP_PRIORITY);
	cr_assert(!urp_word_shutdown(urp_io_word(io)));
	cr_assert_eq(urp_deregister(io), 0);
}

Test(uring_ready, new_socket_writable_not_readable)
{
	int sv[2];

	unix_pair(sv);
	new_socket_writable(sv);
	close(sv[0]);
	close(sv[1]);
}

Test(uring_ready, new_tcp_socket_writable_not_readable)
{
	int sv[2];

	tcp_pair(sv);
	new_socket_writable(sv);
	close(sv[0]);
	close(sv[1]);
}

static void readable_after_peer_writes(int sv[2])
{
	struct urp_io *io = reg(sv[0], URP_READABLE | URP_WRITABLE);

	turn_until_ready(drv, io, URP_WRITABLE);
	settle(drv);
	assert_ready(io, 0, URP_READABLE);
	write_all(sv[1], "ping", 4);
	turn_until_ready(drv, io, URP_READABLE);
	assert_ready(io, URP_READABLE | URP_WRITABLE, CLOSED_BITS | URP_PRIORITY);
	cr_assert_eq(drain_fd(sv[0]), 4);
	cr_assert_eq(urp_deregister(io), 0);
}

Test(uring_ready, readable_after_peer_writes)
{
	int sv[2];

	unix_pair(sv);
	readable_after_peer_writes(sv);
	close(sv[0]);
	close(sv[1]);
}

Test(uring_ready, tcp_readable_after_peer_writes)
{
	int sv[2];

	tcp_pair(sv);
	readable_after_peer_writes(sv);
	close(sv[0]);
	close(sv[1]);
}

/* A read that does not hit EAGAIN proves nothing: the readiness stays until one does. */
Test(uring_ready, readable_until_eagain_then_cleared)
{
	char data[100], buf[4096];
	struct rw_op op = {.buf = buf};
	struct urp_io *io;
	uint32_t before;
	int sv[2];
	ssize_t n;

	unix_pair(sv);
	op.fd = sv[0];
	memset(data, 'x', sizeof(data));
	io = reg(sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	write_all(sv[1], data, sizeof(data));
	turn_until_ready(drv, io, URP_READABLE);
	assert_ready(io, URP_READABLE, 0);

	op.len = 10;
	n = urp_io_try_io(io, URP_READABLE, op_read, &op);
	cr_assert_eq(n, 10, "partial read: %zd", n);
	assert_ready(io, URP_READABLE, 0);

	before = urp_io_word(io);
	op.len = sizeof(buf);
	n = urp_io_try_io(io, URP_READABLE, op_read, &op);
	cr_assert_eq(n, 90, "rest of the data: %zd", n);
	cr_assert_eq(urp_io_word(io), before, "a successful read changed the word");

	n = urp_io_try_io(io, URP_READABLE, op_read, &op);
	cr_assert_eq(n, -EAGAIN);
	cr_assert_eq(op.calls, 3);
	/* The clear removes what the read interest saw, and nothing else. */
	assert_ready(io, URP_WRITABLE, URP_READABLE);
	cr_assert_eq(urp_word_tick(urp_io_word(io)), urp_word_tick(before), "a clear moved the tick");

	/* Not readable now: try_io does not even call the read. */
	n = urp_io_try_io(io, URP_READABLE, op_read, &op);
	cr_assert_eq(n, -EAGAIN);
	cr_assert_eq(op.calls, 3, "try_io read although the entry was not readable");
	settle(drv);
	assert_ready(io, URP_WRITABLE, URP_READABLE);

	/* And the next write is a new edge. */
	write_all(sv[1], data, 1);
	turn_until_ready(drv, io, URP_READABLE);
	assert_ready(io, URP_READABLE, 0);
	cr_assert_eq(drain_try_io(io, sv[0]), 1);
	assert_ready(io, 0, URP_READABLE);

	cr_assert_eq(urp_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
}

/*
 * A clear carrying a snapshot older than the last completion is refused (-ESTALE): the newer
 * completion's data would otherwise never be reported. The refusal counts in the driver's stats.
 */
Test(uring_ready, stale_clear_refused_and_counted)
{
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	unix_pair(sv);
	io = reg(sv[0], URP_READABLE);
	write_all(sv[1], "a", 1);
	turn_until_ready(drv, io, URP_READABLE);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE);
	cr_assert_eq(drain_fd(sv[0]), 1);

	/* New data lands between the snapshot and the clear. */
	write_all(sv[1], "b", 1);
	for (int i = 0; i < TURN_TRIES && urp_word_tick(urp_io_word(io)) == ev.tick; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_neq(urp_word_tick(urp_io_word(io)), ev.tick, "no completion for the second write");

	cr_assert_eq(urp_io_clear_readiness(io, &ev), -ESTALE);
	assert_ready(io, URP_READABLE, 0);
	cr_assert_eq(driver_stats(drv).stale_rejects, 1);
	cr_assert_eq(drain_try_io(io, sv[0]), 1);
	assert_ready(io, 0, URP_READABLE);

	cr_assert_eq(urp_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
}

/* Fill the send buffer until EAGAIN; returns the bytes written. */
static size_t fill(int fd)
{
	static char chunk[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = write(fd, chunk, sizeof(chunk))) > 0)
		total += (size_t)n;
	cr_assert(n < 0 && errno == EAGAIN, "filling: %zd (%s)", n, strerror(errno));
	return total;
}

static void writable_after_drain(int sv[2], bool quiet_after_clear)
{
	char byte = 'w';
	struct rw_op op = {.fd = sv[0], .buf = &byte, .len = 1};
	struct urp_io *io = reg(sv[0], URP_WRITABLE);
	size_t filled;
	ssize_t n;
	int i;

	turn_until_ready(drv, io, URP_WRITABLE);
	filled = fill(sv[0]);
	cr_assert_gt(filled, 0);
	settle(drv);
	/* The write hits EAGAIN, so try_io clears WRITABLE (no turn runs in between: the clear is
	 * never refused here). */
	n = urp_io_try_io(io, URP_WRITABLE, op_write, &op);
	cr_assert_eq(n, -EAGAIN, "write into a full buffer: %zd", n);
	assert_ready(io, 0, URP_WRITABLE | CLOSED_BITS);
	if (quiet_after_clear) {
		settle(drv);
		assert_ready(io, 0, URP_WRITABLE);
	}

	/* The peer drains (TCP keeps sending what the window held back: drain until it stops). */
	for (i = 0; i < TURN_TRIES && !(io_ready(io) & URP_WRITABLE); i++) {
		drain_fd(sv[1]);
		turn(drv, 10);
	}
	assert_ready(io, URP_WRITABLE, CLOSED_BITS);
	n = urp_io_try_io(io, URP_WRITABLE, op_write, &op);
	cr_assert_eq(n, 1, "write after the drain: %zd", n);
	cr_assert_eq(urp_deregister(io), 0);
}

Test(uring_ready, writable_again_after_full_send_buffer_drains)
{
	int sv[2];

	unix_pair(sv);
	writable_after_drain(sv, true);
	close(sv[0]);
	close(sv[1]);
}

Test(uring_ready, tcp_writable_again_after_full_send_buffer_drains)
{
	int sv[2];

	tcp_pair(sv);
	/* ACKs still in flight may free space (a true WRITABLE) after the clear. */
	writable_after_drain(sv, false);
	close(sv[0]);
	close(sv[1]);
}

/* Peer FIN (shutdown(SHUT_WR)): POLLIN|POLLRDHUP -> READABLE|READ_CLOSED, nothing else closed. */
static void peer_fin(int sv[2])
{
	struct urp_io *io = reg(sv[0], URP_READABLE | URP_WRITABLE);
	char buf[8];
	struct rw_op op = {.fd = sv[0], .buf = buf, .len = sizeof(buf)};

	turn_until_ready(drv, io, URP_WRITABLE);
	cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
	turn_until_ready(drv, io, URP_READABLE | URP_READ_CLOSED);
	settle(drv);
	assert_ready(io, URP_READABLE | URP_READ_CLOSED | URP_WRITABLE,
		     URP_WRITE_CLOSED | URP_ERROR | URP_PRIORITY);
	assert_level_reported(io, sv[0], URP_READABLE | URP_WRITABLE);
	cr_assert_eq(read(sv[0], buf, sizeof(buf)), 0, "the FIN reads as EOF");
	/* READ_CLOSED is final: try_io keeps calling the read, which keeps returning EOF. */
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, op_read, &op), 0);
	assert_ready(io, URP_READ_CLOSED, 0);
	cr_assert_eq(urp_deregister(io), 0);
}

Test(uring_ready, peer_shutdown_wr_gives_read_closed)
{
	int sv[2];

	unix_pair(sv);
	peer_fin(sv);
	close(sv[0]);
	close(sv[1]);
}

Test(uring_ready, tcp_peer_fin_gives_read_closed)
{
	int sv[2];

	tcp_pair(sv);
	peer_fin(sv);
	close(sv[0]);
	close(sv[1]);
}

/* Peer closes a socketpair: both directions end (POLLHUP) -> READ_CLOSED|WRITE_CLOSED. */
Test(uring_ready, peer_close_gives_read_and_write_closed)
{
	struct urp_io *io;
	int sv[2];

	unix_pair(sv);
	io = reg(sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	close(sv[1]);
	turn_until_ready(drv, io, URP_READ_CLOSED | URP_WRITE_CLOSED);
	settle(drv);
	assert_ready(io, URP_READABLE | URP_READ_CLOSED | URP_WRITE_CLOSED, URP_ERROR);
	assert_level_reported(io, sv[0], URP_READABLE | URP_WRITABLE);
	cr_assert_eq(urp_deregister(io), 0);
	close(sv[0]);
}

/*
 * RST (the peer closes with SO_LINGER {1, 0}): the kernel's mask is POLLIN|POLLOUT|POLLERR|
 * POLLHUP|POLLRDHUP, so every bit but PRIORITY, and ECONNRESET on the socket.
 */
Test(uring_ready, tcp_rst_gives_closed_and_error)
{
	struct linger linger = {.l_onoff = 1, .l_linger = 0};
	socklen_t len = sizeof(int);
	struct urp_io *io;
	int sv[2], err = 0;

	tcp_pair(sv);
	io = reg(sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	cr_assert_eq(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &linger, sizeof(linger)), 0);
	close(sv[1]);
	turn_until_ready(drv, io, URP_READ_CLOSED | URP_WRITE_CLOSED | URP_ERROR);
	settle(drv);
	assert_ready(io,
		     URP_READABLE | URP_WRITABLE | URP_READ_CLOSED | URP_WRITE_CLOSED | URP_ERROR,
		     URP_PRIORITY);
	assert_level_reported(io, sv[0], URP_READABLE | URP_WRITABLE);
	cr_assert_eq(getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &err, &len), 0);
	cr_assert_eq(err, ECONNRESET, "SO_ERROR %d (%s)", err, strerror(err));
	cr_assert_eq(urp_deregister(io), 0);
	close(sv[0]);
}

/*
 * A refused non-blocking connect on loopback: POLLOUT|POLLERR|POLLHUP|POLLRDHUP ->
 * WRITABLE|WRITE_CLOSED|ERROR, and READ_CLOSED from POLLHUP (POLLHUP and POLLERR arrive whatever
 * the interest), never READABLE for a write-only registration.
 */
Test(uring_ready, refused_connect_gives_write_closed_and_error)
{
	struct sockaddr_in addr = closed_port();
	socklen_t len = sizeof(int);
	struct urp_io *io;
	int fd, ret, err = 0, connect_errno;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	ret = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	cr_assert(ret < 0 && (errno == EINPROGRESS || errno == ECONNREFUSED), "connect: %d (%s)",
		  ret, strerror(errno));
	connect_errno = errno;
	io = reg(fd, URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE | URP_WRITE_CLOSED | URP_ERROR);
	settle(drv);
	assert_ready(io, URP_WRITABLE | URP_WRITE_CLOSED | URP_ERROR, URP_READABLE | URP_PRIORITY);
	assert_level_reported(io, fd, URP_WRITABLE);
	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	/* An immediate ECONNREFUSED already consumed the socket error. */
	if (connect_errno == EINPROGRESS)
		cr_assert_eq(err, ECONNREFUSED, "SO_ERROR %d (%s)", err, strerror(err));
	cr_assert_eq(urp_deregister(io), 0);
	close(fd);
}

/* TCP urgent data: POLLPRI -> PRIORITY (and READABLE, which POLLPRI implies). */
Test(uring_ready, tcp_oob_gives_priority)
{
	struct urp_io *io;
	char mark;
	int sv[2];

	tcp_pair(sv);
	io = reg(sv[0], URP_PRIORITY | URP_READABLE);
	settle(drv);
	assert_ready(io, 0, URP_PRIORITY | URP_READABLE | CLOSED_BITS);
	cr_assert_eq(send(sv[1], "!", 1, MSG_OOB), 1, "send(MSG_OOB): %s", strerror(errno));
	turn_until_ready(drv, io, URP_PRIORITY);
	settle(drv);
	assert_ready(io, URP_PRIORITY | URP_READABLE, CLOSED_BITS);
	assert_level_reported(io, sv[0], URP_PRIORITY | URP_READABLE);
	cr_assert_eq(recv(sv[0], &mark, 1, MSG_OOB), 1, "recv(MSG_OOB): %s", strerror(errno));
	cr_assert_eq(mark, '!');
	cr_assert_eq(urp_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
}

/* A pipe's write end whose reader closed: POLLOUT|POLLERR -> WRITABLE|WRITE_CLOSED|ERROR. */
Test(uring_ready, pipe_reader_closed_gives_write_closed_and_error)
{
	struct urp_io *io;
	int p[2];

	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	io = reg(p[1], URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	settle(drv);
	assert_ready(io, URP_WRITABLE, CLOSED_BITS);
	close(p[0]);
	turn_until_ready(drv, io, URP_WRITE_CLOSED | URP_ERROR);
	settle(drv);
	assert_ready(io, URP_WRITABLE | URP_WRITE_CLOSED | URP_ERROR,
		     URP_READABLE | URP_READ_CLOSED | URP_PRIORITY);
	assert_level_reported(io, p[1], URP_WRITABLE);
	cr_assert_eq(write(p[1], "x", 1), -1);
	cr_assert_eq(errno, EPIPE);
	cr_assert_eq(urp_deregister(io), 0);
	close(p[1]);
}

/* A pipe's read end whose writer closed: POLLHUP -> READ_CLOSED (and WRITE_CLOSED). */
Test(uring_ready, pipe_writer_closed_gives_read_closed)
{
	char buf[64];
	struct rw_op op = {.buf = buf, .len = sizeof(buf)};
	struct urp_io *io;
	int p[2];

	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	op.fd = p[0];
	io = reg(p[0], URP_READABLE);
	write_all(p[1], "last", 4);
	turn_until_ready(drv, io, URP_READABLE);
	close(p[1]);
	turn_until_ready(drv, io, URP_READ_CLOSED);
	settle(drv);
	assert_ready(io, URP_READABLE | URP_READ_CLOSED, URP_ERROR | URP_PRIORITY);
	assert_level_reported(io, p[0], URP_READABLE);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, op_read, &op), 4);
	cr_assert_eq(urp_io_try_io(io, URP_READABLE, op_read, &op), 0, "EOF after the data");
	assert_ready(io, URP_READ_CLOSED, 0);
	cr_assert_eq(urp_deregister(io), 0);
	close(p[0]);
}

/*
 * Many rounds of ordinary traffic never produce a closed or error bit. (Not PRIORITY interest:
 * a socket's data wake-up carries POLLIN|POLLPRI|POLLRDNORM|POLLRDBAND as its key and io_uring
 * reports the key, so with PRIORITY asked for, plain data shows as PRIORITY too -- a hint.)
 */
static void ping_pong(int a, int b, bool a_writes)
{
	struct urp_io *io = reg(a, URP_READABLE | URP_WRITABLE | URP_ERROR);
	char msg[512];

	memset(msg, 'd', sizeof(msg));
	for (int round = 0; round < 200; round++) {
		write_all(b, msg, (size_t)(1 + round % (int)sizeof(msg)));
		turn_until_ready(drv, io, URP_READABLE);
		assert_ready(io, URP_READABLE, CLOSED_BITS | URP_PRIORITY);
		cr_assert_eq(drain_try_io(io, a), (size_t)(1 + round % (int)sizeof(msg)));
		if (a_writes)
			write_all(a, msg, 64);
		drain_fd(b);
	}
	settle(drv);
	assert_ready(io, 0, CLOSED_BITS | URP_PRIORITY | URP_READABLE);
	cr_assert_eq(urp_deregister(io), 0);
}

Test(uring_ready, no_false_closed_bits_on_data)
{
	int sv[2], p[2];

	unix_pair(sv);
	ping_pong(sv[0], sv[1], true);
	close(sv[0]);
	close(sv[1]);

	tcp_pair(sv);
	ping_pong(sv[0], sv[1], true);
	ping_pong(sv[1], sv[0], true);
	close(sv[0]);
	close(sv[1]);

	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ping_pong(p[0], p[1], false);
	close(p[0]);
	close(p[1]);
}

/* Multishot poll is edge-triggered, but reports readiness already present when it is armed. */
Test(uring_ready, data_before_registration_reported_at_arm)
{
	struct urp_io *io;
	int sv[2], p[2];

	unix_pair(sv);
	write_all(sv[1], "early", 5);
	io = reg(sv[0], URP_READABLE);
	turn_until_ready(drv, io, URP_READABLE);
	assert_ready(io, URP_READABLE, CLOSED_BITS);
	cr_assert_eq(drain_try_io(io, sv[0]), 5);
	cr_assert_eq(urp_deregister(io), 0);

	/* The same through the command queue: registered before this thread ever turned. */
	urp_driver_free(drv);
	drv = driver_new(NULL);
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	write_all(p[1], "early", 5);
	io = reg(p[0], URP_READABLE);
	turn_until_ready(drv, io, URP_READABLE);
	assert_ready(io, URP_READABLE, CLOSED_BITS);
	cr_assert_eq(drain_try_io(io, p[0]), 5);
	cr_assert_eq(urp_deregister(io), 0);

	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

Test(uring_ready, eventfd_readable_after_write)
{
	uint64_t one = 1;
	struct urp_io *io;
	int efd;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(efd, 0);
	io = reg(efd, URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	settle(drv);
	assert_ready(io, URP_WRITABLE, URP_READABLE | CLOSED_BITS);
	for (int round = 0; round < 3; round++) {
		write_all(efd, &one, sizeof(one));
		turn_until_ready(drv, io, URP_READABLE);
		assert_ready(io, URP_READABLE | URP_WRITABLE, CLOSED_BITS);
		cr_assert_eq(drain_try_io(io, efd), sizeof(uint64_t));
		assert_ready(io, URP_WRITABLE, URP_READABLE);
	}
	cr_assert_eq(urp_deregister(io), 0);
	close(efd);
}

/*
 * ERROR interest alone asks the kernel for nothing (POLLERR and POLLHUP need no asking): a
 * healthy writable pipe reports nothing, a pipe whose reader left reports exactly POLLERR ->
 * WRITE_CLOSED|ERROR (no WRITABLE, which was not asked for).
 */
Test(uring_ready, error_interest_sees_only_errors)
{
	struct urp_io *io;
	int p[2];

	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	io = reg(p[1], URP_ERROR);
	settle(drv);
	cr_assert_eq(io_ready(io), 0, "healthy pipe shows %#x", io_ready(io));
	close(p[0]);
	turn_until_ready(drv, io, URP_ERROR);
	settle(drv);
	cr_assert_eq(io_ready(io), URP_WRITE_CLOSED | URP_ERROR, "word %#x", io_ready(io));
	cr_assert_eq(urp_deregister(io), 0);
	close(p[1]);
}

/* Only what the interest asks for (plus the closed and error bits) reaches the word. */
Test(uring_ready, interest_limits_reported_bits)
{
	struct urp_io *rd, *wr;
	int sv[2];

	unix_pair(sv);
	wr = reg(sv[0], URP_WRITABLE);
	rd = reg(sv[1], URP_READABLE);
	turn_until_ready(drv, wr, URP_WRITABLE);
	write_all(sv[0], "x", 1);
	turn_until_ready(drv, rd, URP_READABLE);
	write_all(sv[1], "y", 1);
	settle(drv);
	assert_ready(wr, URP_WRITABLE, URP_READABLE | CLOSED_BITS);
	assert_ready(rd, URP_READABLE, URP_WRITABLE | CLOSED_BITS);
	cr_assert_eq(urp_deregister(wr), 0);
	cr_assert_eq(urp_deregister(rd), 0);
	close(sv[0]);
	close(sv[1]);
}
