/* SPDX-License-Identifier: MIT */
/*
 * The ring_ops fuzz target's model (ring_model.h says what it holds): the byte streams, the
 * descriptors, the checks of every entry against its word and counters, and the peer.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "ring_model.h"

struct ring_model m;

/* ---- streams ---- */

uint8_t pattern(unsigned stream, uint64_t pos)
{
	uint32_t h = (uint32_t)pos * 0x9e3779b1u ^ (uint32_t)(pos >> 32) ^ stream * 0x85ebca6bu;

	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	return (uint8_t)h;
}

void fill(uint8_t *p, size_t len, unsigned stream, uint64_t pos)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(stream, pos + i);
}

void out_append(struct out_stream *o, const void *data, size_t len)
{
	if (!len)
		return;
	if (o->len + len > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;

		while (cap < o->len + len)
			cap *= 2;
		o->bytes = realloc(o->bytes, cap);
		FUZZ_CHECK(o->bytes, "out of memory");
		o->cap = cap;
	}
	memcpy(o->bytes + o->len, data, len);
	o->len += len;
}

/* ---- descriptors ---- */

void setopt(int fd, int level, int name, int val)
{
	FUZZ_CHECK(setsockopt(fd, level, name, &val, sizeof(val)) == 0, "setsockopt(%d): %s", name,
		   strerror(errno));
}

/* A reset on close, and no TIME_WAIT left behind by the thousands of pairs a run makes. */
void linger0(int fd)
{
	struct linger l = { 1, 0 };

	FUZZ_CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) == 0, "SO_LINGER: %s",
		   strerror(errno));
}

void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct pollfd pfd = { .events = POLLOUT };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

	FUZZ_CHECK(l >= 0, "socket: %s", strerror(errno));
	FUZZ_CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
			   getsockname(l, (struct sockaddr *)&a, &alen) == 0,
		   "listener: %s", strerror(errno));
	/* Non-blocking, and EINTR retried: libFuzzer's SIGALRM interrupts blocking calls. */
	sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(sv[1] >= 0, "socket: %s", strerror(errno));
	FUZZ_CHECK(connect(sv[1], (struct sockaddr *)&a, alen) == 0 || errno == EINPROGRESS,
		   "connect: %s", strerror(errno));
	do
		sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	while (sv[0] < 0 && errno == EINTR);
	FUZZ_CHECK(sv[0] >= 0, "accept4: %s", strerror(errno));
	close(l);
	pfd.fd = sv[1];
	while ((ret = poll(&pfd, 1, 5000)) < 0 && errno == EINTR)
		;
	FUZZ_CHECK(ret == 1, "connect did not complete");
	setopt(sv[0], IPPROTO_TCP, TCP_NODELAY, 1);
	setopt(sv[1], IPPROTO_TCP, TCP_NODELAY, 1);
	linger0(sv[0]);
	linger0(sv[1]);
}

void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the driver ---- */

void turn(int timeout_ms)
{
	int ret = urp_driver_turn(m.drv, timeout_ms);

	FUZZ_CHECK(ret >= 0, "turn(%d): %d", timeout_ms, ret);
}

struct urp_stats stats(void)
{
	struct urp_stats st;

	FUZZ_CHECK(urp_driver_stats(m.drv, &st) == 0, "stats");
	return st;
}

unsigned ready_of(const struct entry *e)
{
	return urp_word_ready(urp_io_word(e->io));
}

/* Bytes queued for sending, the FIN not counted: what send_hwm is compared with. A FIN is
 * queued last and counted while queued or in flight, so while it is, everything else is. */
size_t queued_bytes(const struct entry *e)
{
	size_t q = urp_io_send_queued(e->io);

	return q - (e->fin && q > 0);
}

/* The properties that hold between any two calls. */
void check_entry(struct entry *e, unsigned i)
{
	uint32_t word = urp_io_word(e->io);
	unsigned ready = urp_word_ready(word);
	size_t q;

	if (m.shut)
		FUZZ_CHECK(urp_word_shutdown(word), "entry %u not shut down after the shutdown", i);
	if (e->reset)
		return;
	FUZZ_CHECK(!(ready & URP_ERROR), "entry %u: ERROR without a reset (word %#x)", i,
		   (unsigned)word);
	q = queued_bytes(e);
	FUZZ_CHECK(!(ready & URP_WRITABLE) == (q >= SEND_HWM),
		   "entry %u: WRITABLE %d with %zu bytes queued (mark %u)", i,
		   !!(ready & URP_WRITABLE), q, SEND_HWM);
}

void check_all(void)
{
	for (unsigned i = 0; i < ENTRIES; i++)
		if (m.ents[i].live)
			check_entry(&m.ents[i], i);
}

/* ---- the peer ---- */

void do_peer_write(struct entry *e, size_t len)
{
	uint8_t bytes[8 * 255];
	ssize_t n;

	if (e->peer_shut || e->reset || !len)
		return;
	fill(bytes, len, e->stream, e->written);
	n = send(e->peer, bytes, len, MSG_NOSIGNAL);
	FUZZ_CHECK(n > 0 || errno == EAGAIN, "peer write: %s", strerror(errno));
	if (n > 0)
		e->written += (uint64_t)n;
}

/* Read up to len bytes at the peer; they must be the next ones queued for sending. Returns the
 * bytes read, 0 at EOF, -1 when none are there. */
ssize_t peer_read(struct entry *e, size_t len)
{
	uint8_t bytes[4096];
	struct out_stream *o = &e->out;
	ssize_t n;

	if (e->reset)
		return -1;
	n = read(e->peer, bytes, len < sizeof(bytes) ? len : sizeof(bytes));
	if (n < 0) {
		FUZZ_CHECK(errno == EAGAIN, "peer read: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		FUZZ_CHECK(e->fin && o->read == o->len, "peer read EOF at %zu of %zu (FIN: %d)",
			   o->read, o->len, e->fin);
		e->peer_eof = true;
		return 0;
	}
	FUZZ_CHECK(!e->peer_eof, "the peer read data after EOF");
	FUZZ_CHECK(o->read + (size_t)n <= o->len, "the peer read %zd bytes at %zu, %zu were sent",
		   n, o->read, o->len);
	FUZZ_CHECK(memcmp(bytes, o->bytes + o->read, (size_t)n) == 0,
		   "the peer read wrong bytes at %zu (lost, reordered or overwritten)", o->read);
	o->read += (size_t)n;
	return n;
}

void do_peer_shut(struct entry *e)
{
	if (e->peer_shut || e->reset)
		return;
	FUZZ_CHECK(shutdown(e->peer, SHUT_WR) == 0, "peer shutdown: %s", strerror(errno));
	e->peer_shut = true;
}

void do_peer_reset(struct entry *e)
{
	if (e->reset)
		return;
	/* TCP: a reset. AF_UNIX: ECONNRESET when our sends sit unread, else EOF. */
	linger0(e->peer);
	close_fd(&e->peer);
	e->reset = true;
}

