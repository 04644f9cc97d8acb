/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "ring_ops": op sequences on ring mode (urp_register_ring() and the calls after
 * it) over the real io_uring driver and real stream sockets, against a model of every byte
 * stream.
 *
 * Drivers turned by the fuzzer's thread and reused across inputs, freed and made anew only
 * after an input shut one down; the input's first byte picks one of two: an 8-entry SQ and a
 * 16-entry CQ, or 4 and 4 with URP_DRIVER_OVERCOMMIT so the CQ overflows. Their rings are small
 * on purpose (8 buffers of 256 bytes, 3 per entry before the recv pauses, a send mark of 512
 * bytes), so pauses, -ENOBUFS, -EAGAIN and parked sends are common. Up to 4 entries, each an
 * AF_UNIX socketpair or a TCP loopback pair (optionally with small send buffers) whose one end
 * is registered in ring mode; the other end is the peer the target plays.
 *
 * Ops: the peer writes (a pattern: byte i of stream s is pattern(s, i)), reads (checked
 * against the model's copy of what was queued for sending), shuts down its write side, or
 * closes with a reset; take a buffer (its bytes must be the stream's next ones), then release
 * it, hold it (at most half the ring), forward it without a copy (urp_io_send_buf(), possibly
 * shortened) or send a copy to an entry; use a held buffer the same ways, also after its entry
 * was deregistered; urp_io_send() of pattern bytes; urp_io_send_fin(); a turn; deregister
 * (with buffers held, sends queued; with or without the driver closing the fd) and register a
 * fresh pair in the slot; urp_driver_shutdown(); settle.
 *
 * Properties, after every call: a take that returns a buffer saw READABLE in the word before,
 * EOF saw READ_CLOSED, an error saw ERROR; an empty take (-EAGAIN) leaves READABLE clear and
 * never follows a shutdown; a take never returns a buffer after EOF or an error, which then
 * stay; EOF comes exactly after the last byte the peer wrote before SHUT_WR; sends return
 * 0 below the mark, -EAGAIN at or above it (urp_io_send_queued()), -EPIPE after the FIN,
 * -ESHUTDOWN after a shutdown, and WRITABLE in the word means "below the mark"; no ERROR on an
 * entry whose peer did not reset. At every settle (turns, taking everything and reading
 * everything, until the properties hold, within a bound): every byte the peers wrote was
 * taken, in order, once; every byte queued for sending (copies and forwarded buffers) was read
 * by the peer, in order, with EOF after it when a FIN was queued; an entry whose peer reset has
 * ended (EOF or an error) with nothing queued; every deregistered entry was freed; the only
 * buffers out of the ring are the ones held. At the end of each input (everything released and
 * deregistered): live 0, bufs_out 0, unknown_tokens 0, poll_errors 0, no fd leaked;
 * ASan/LSan check the memory. After urp_driver_shutdown(): every entry has the shutdown bit,
 * registrations get -ESHUTDOWN, and a settle only checks the bytes that still come (a buffer
 * already queued may still be taken; the library owes no more progress).
 *
 * RING_OPS_TRACE=1 prints each input's ops and what it reached (pauses, -ENOBUFS, overflows,
 * -EAGAIN sends, forwards) on stderr.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring_model.h"

enum op {
	OP_PEER_WRITE,
	OP_TAKE,
	OP_HELD,
	OP_SEND,
	OP_SEND_FIN,
	OP_PEER_READ,
	OP_PEER_SHUT,
	OP_PEER_RESET,
	OP_TURN,
	OP_DEREGISTER,
	OP_REGISTER,
	OP_SHUTDOWN,
	OP_SETTLE,
	OP_COUNT,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- taking ---- */

/* urp_io_take() on e, every answer checked against the model; a buffer comes back in *buf. */
static int take(struct entry *e, struct urp_buf **buf)
{
	unsigned before = ready_of(e);
	bool was_shut = urp_word_shutdown(urp_io_word(e->io));
	int ret;

	*buf = NULL;
	ret = urp_io_take(e->io, buf);
	if (e->end != 1) {
		FUZZ_CHECK(ret == e->end, "take after %d returned %d", e->end, ret);
		return ret;
	}
	if (ret == 1) {
		struct urp_buf *b = *buf;

		FUZZ_CHECK(before & URP_READABLE, "a buffer was queued without READABLE (%#x)",
			   before);
		FUZZ_CHECK(b && b->data && b->len > 0 && b->len <= BUF_SIZE, "buffer of %zu bytes",
			   b ? b->len : 0);
		FUZZ_CHECK(e->taken + b->len <= e->written,
			   "took %zu bytes at %lu, the peer wrote only %lu", b->len,
			   (unsigned long)e->taken, (unsigned long)e->written);
		for (size_t i = 0; i < b->len; i++)
			FUZZ_CHECK(((uint8_t *)b->data)[i] == pattern(e->stream, e->taken + i),
				   "stream %u byte %lu wrong (a lost, repeated or foreign buffer)",
				   e->stream, (unsigned long)(e->taken + i));
		e->taken += b->len;
		return 1;
	}
	FUZZ_CHECK(ret != -EINVAL && ret != -EEXIST, "take: %d", ret);
	if (ret == -EAGAIN) {
		FUZZ_CHECK(!was_shut, "an empty take on a shut-down entry said -EAGAIN");
		FUZZ_CHECK(!(ready_of(e) & URP_READABLE), "an empty take left READABLE set");
		return ret;
	}
	if (ret == -ESHUTDOWN) {
		FUZZ_CHECK(m.shut && was_shut, "take said -ESHUTDOWN without a shutdown");
		return ret;
	}
	if (ret == 0) {
		FUZZ_CHECK(before & URP_READ_CLOSED, "EOF without READ_CLOSED (%#x)", before);
		if (!e->reset)
			FUZZ_CHECK(e->peer_shut && e->taken == e->written,
				   "EOF at byte %lu of %lu (peer shut: %d)",
				   (unsigned long)e->taken, (unsigned long)e->written,
				   e->peer_shut);
	} else {
		FUZZ_CHECK(e->reset, "take failed with %d without a reset", ret);
		m.take_errors++;
		FUZZ_CHECK(before & URP_ERROR, "take failed with %d without ERROR (%#x)", ret,
			   before);
	}
	e->end = ret;
	return ret;
}

/* ---- sending ---- */

/* What a send (or the FIN) on t must return now, or EXPECT_ANY_ERROR when both an error and
 * success are right (a reset peer) or the error may be either of two. */
static int send_expect(const struct entry *t, bool fin, bool *any)
{
	*any = false;
	if (t->reset) {
		*any = true;
		return 0;
	}
	if (t->fin) {
		/* -EPIPE, or -ESHUTDOWN after a shutdown: the order is the library's. */
		*any = m.shut;
		return -EPIPE;
	}
	if (m.shut)
		return -ESHUTDOWN;
	if (!fin && queued_bytes(t) >= SEND_HWM)
		return -EAGAIN;
	return 0;
}

static void check_send(const struct entry *t, int want, bool any, int ret, const char *call)
{
	if (any) {
		FUZZ_CHECK(ret <= 0 && ret != -EINVAL && ret != -EEXIST && ret != -ENOMEM,
			   "%s: %d", call, ret);
		if (t->fin || m.shut)
			FUZZ_CHECK(ret < 0, "%s after the FIN or a shutdown succeeded", call);
		return;
	}
	FUZZ_CHECK(ret == want, "%s returned %d, expected %d (%zu bytes queued, mark %u)", call,
		   ret, want, t->fin ? 0 : queued_bytes(t), SEND_HWM);
	m.eagain += ret == -EAGAIN;
}

static void do_send(struct entry *t, size_t len)
{
	uint8_t bytes[3 * 255];
	bool any;
	int want = send_expect(t, false, &any), ret;

	fill(bytes, len, t->stream + 1, t->out_pos);
	ret = urp_io_send(t->io, bytes, len);
	check_send(t, want, any, ret, "urp_io_send");
	if (ret == 0 && !t->reset) {
		out_append(&t->out, bytes, len);
		t->out_pos += len;
	}
}

static void do_send_fin(struct entry *t)
{
	bool any;
	int want = send_expect(t, true, &any), ret = urp_io_send_fin(t->io);

	check_send(t, want, any, ret, "urp_io_send_fin");
	if (ret == 0)
		t->fin = true;
}

/* ---- buffers in hand ---- */

static bool hold(struct urp_buf *buf, unsigned stream)
{
	if (m.nheld == MAX_HELD)
		return false;
	m.held[m.nheld++] = (struct held_buf){ buf, stream };
	return true;
}

/* Do `use` with buf (the caller's), to entry slot `to` where it names one. Returns whether buf
 * is still the caller's. */
static bool use_buf(struct urp_buf *buf, unsigned stream, enum use use, uint8_t to, uint8_t cut)
{
	struct entry *t = &m.ents[to % ENTRIES];
	bool any;
	int want, ret;

	if ((use == USE_FORWARD || use == USE_COPY) && !t->live)
		use = USE_RELEASE;
	switch (use) {
	case USE_HOLD:
		if (hold(buf, stream))
			return false;
		/* fall through: at the bound, give it back */
	case USE_RELEASE:
	default:
		urp_buf_release(buf);
		return false;
	case USE_COPY:
		want = send_expect(t, false, &any);
		ret = urp_io_send(t->io, buf->data, buf->len);
		check_send(t, want, any, ret, "urp_io_send (a copy)");
		if (ret == 0 && !t->reset)
			out_append(&t->out, buf->data, buf->len);
		m.copies += ret == 0;
		urp_buf_release(buf);
		return false;
	case USE_FORWARD:
		/* The caller may send part of it: a shorter length, a later start. */
		if (cut & 0x80) {
			size_t skip = (cut & 0x7f) % (buf->len + 1);

			buf->data = (char *)buf->data + skip;
			buf->len -= skip;
		} else if (cut & 0x40) {
			buf->len = (cut & 0x3f) % (buf->len + 1);
		}
		want = send_expect(t, false, &any);
		ret = urp_io_send_buf(t->io, buf);
		check_send(t, want, any, ret, "urp_io_send_buf");
		if (ret == 0) {
			if (!t->reset)
				out_append(&t->out, buf->data, buf->len);
			m.forwards++;
			return false;
		}
		/* Refused: still ours. */
		if (!hold(buf, stream))
			urp_buf_release(buf);
		return false;
	}
}

static void do_take(struct entry *e, struct fuzz_in *in)
{
	uint8_t how = fuzz_u8(in), to = fuzz_u8(in), cut = fuzz_u8(in);
	struct urp_buf *buf;

	if (take(e, &buf) == 1)
		use_buf(buf, e->stream, (enum use)(how % USE_COUNT), to, cut);
}

static void do_held(struct fuzz_in *in)
{
	uint8_t which = fuzz_u8(in), how = fuzz_u8(in), to = fuzz_u8(in), cut = fuzz_u8(in);
	struct held_buf h;
	unsigned i;

	if (!m.nheld)
		return;
	i = which % m.nheld;
	h = m.held[i];
	m.held[i] = m.held[--m.nheld];
	/* Holding it again is just keeping it. */
	use_buf(h.buf, h.stream, (enum use)(how % USE_COUNT), to, cut);
}

/* ---- registrations ---- */

static void forget(struct entry *e)
{
	free(e->out.bytes);
	memset(e, 0, sizeof(*e));
	e->fd = e->peer = -1;
}

static void do_register(struct entry *e, uint8_t kind)
{
	int sv[2], ret;

	if (e->live)
		return;
	e->tcp = kind & 1;
	if (e->tcp) {
		tcp_pair(sv);
	} else {
		FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) ==
				   0,
			   "socketpair: %s", strerror(errno));
	}
	/* Small send buffers: the kernel parks our sends, and the peer's writes stop early. Not
	 * small receive buffers: a TCP receiver that drained a tiny window may leave its sender
	 * waiting for the zero-window probe (200 ms and more), which is TCP, not the library. */
	if (kind & 2) {
		setopt(sv[0], SOL_SOCKET, SO_SNDBUF, SMALL_BUF);
		setopt(sv[1], SOL_SOCKET, SO_SNDBUF, SMALL_BUF);
	}
	ret = urp_register_ring(m.drv, sv[0], &e->io);
	if (m.shut || ret == -ENOSPC) {
		if (m.shut) {
			FUZZ_CHECK(ret == -ESHUTDOWN, "register after the shutdown: %d", ret);
		} else {
			/* Entries deregistered and not yet freed count: refused only at the
			 * limit. */
			struct urp_driver_info info;

			FUZZ_CHECK(urp_driver_info(m.drv, &info) == 0, "info");
			FUZZ_CHECK(stats().live >= info.max_registrations,
				   "-ENOSPC with %lu of %u registrations",
				   (unsigned long)stats().live, info.max_registrations);
		}
		close(sv[0]);
		close(sv[1]);
		return;
	}
	FUZZ_CHECK(ret == 0, "urp_register_ring: %d (%s)", ret, urp_strerror(ret));
	e->live = true;
	e->fd = sv[0];
	e->peer = sv[1];
	e->stream = m.streams;
	m.streams += 2;
	e->end = 1;
}

static void do_deregister(struct entry *e, uint8_t how)
{
	if (how & 1) {
		FUZZ_CHECK(urp_deregister_close(e->io) == 0, "deregister_close");
		e->fd = -1;
	} else {
		FUZZ_CHECK(urp_deregister(e->io) == 0, "deregister");
		/* The fd may be closed at once (or after the next turn). */
		if (how & 2)
			turn(0);
		close_fd(&e->fd);
	}
	/* Data after the removal was asked for: a receive may complete on the entry gone, whose
	 * buffer must go straight back. (Its socket may be closed already: no SIGPIPE.) */
	if (how & 4 && e->peer >= 0 && !e->peer_shut)
		(void)!send(e->peer, "late", 4, MSG_NOSIGNAL);
	close_fd(&e->peer);
	forget(e);
}

static void do_shutdown(void)
{
	urp_driver_shutdown(m.drv);
	m.shut = true;
}

/* ---- settle ---- */

/* Take and release everything queued on e, and read everything its peer can. */
static void drain(struct entry *e)
{
	struct urp_buf *buf;

	while (take(e, &buf) == 1)
		urp_buf_release(buf);
	while (peer_read(e, 4096) > 0)
		;
}

/* Has e caught up? why names what it has not. */
static bool settled(struct entry *e, const char **why)
{
	if (e->reset) {
		*why = "an entry whose peer reset has not ended, or still has sends queued";
		return e->end != 1 && urp_io_send_queued(e->io) == 0;
	}
	if (e->taken != e->written) {
		*why = "data lost: bytes the peer wrote were never taken";
		return false;
	}
	if (e->peer_shut && e->end != 0) {
		*why = "no EOF after the peer shut down";
		return false;
	}
	if (e->out.read != e->out.len || urp_io_send_queued(e->io)) {
		*why = "sends lost: bytes queued were never read by the peer";
		return false;
	}
	if (e->fin && !e->peer_eof) {
		*why = "the FIN never reached the peer";
		return false;
	}
	return true;
}

static bool all_settled(const char **why, unsigned *which)
{
	unsigned live = 0, i;
	struct urp_stats st;

	for (i = 0; i < ENTRIES; i++) {
		if (!m.ents[i].live)
			continue;
		live++;
		if (!settled(&m.ents[i], why)) {
			*which = i;
			return false;
		}
	}
	*which = ENTRIES;
	st = stats();
	if (st.live != live) {
		*why = "a deregistered entry was never freed";
		return false;
	}
	if (st.bufs_out != m.nheld) {
		*why = "buffers out of the ring that no one holds";
		return false;
	}
	return true;
}

/* Turn, take and read until every stream caught up. After a shutdown the library owes no
 * more progress: a few turns, the bytes that come still checked. */
static void settle(void)
{
	const char *why = "";
	unsigned t, i, which = ENTRIES;
	bool ok = false;

	for (t = 0; t < QUICK_TURNS + SLOW_TURNS && !ok; t++) {
		turn(t < QUICK_TURNS ? 0 : SLOW_MS);
		for (i = 0; i < ENTRIES; i++)
			if (m.ents[i].live)
				drain(&m.ents[i]);
		check_all();
		if (m.shut && t + 1 >= QUICK_TURNS)
			return;
		ok = !m.shut && all_settled(&why, &which);
	}
	if (m.shut)
		return;
	if (ok) {
		/* Read all of it: start the copies afresh. */
		for (i = 0; i < ENTRIES; i++)
			if (m.ents[i].live)
				m.ents[i].out.len = m.ents[i].out.read = 0;
	}
	if (!ok) {
		struct urp_stats st = stats();

		if (which < ENTRIES) {
			struct entry *e = &m.ents[which];

			fprintf(stderr,
				"entry %u (%s): word %#x, taken %lu of %lu written, peer read "
				"%zu of %zu, %zu queued to send, FIN %d, peer shut %d, end %d\n",
				which, e->tcp ? "tcp" : "unix", (unsigned)urp_io_word(e->io),
				(unsigned long)e->taken, (unsigned long)e->written, e->out.read,
				e->out.len, urp_io_send_queued(e->io), e->fin, e->peer_shut,
				e->end);
		}
		fprintf(stderr,
			"stats: live %lu, bufs_out %lu (held %u), recv_bufs %lu, recv_bytes %lu, "
			"enobufs %lu, paused %lu, rearms %lu, sends %lu, cq_overflows %lu\n",
			(unsigned long)st.live, (unsigned long)st.bufs_out, m.nheld,
			(unsigned long)st.recv_bufs, (unsigned long)st.recv_bytes,
			(unsigned long)st.enobufs, (unsigned long)st.paused,
			(unsigned long)st.rearms, (unsigned long)st.sends,
			(unsigned long)st.cq_overflows);
	}
	FUZZ_CHECK(ok, "entry %u: %s", which, why);
}

/* ---- one input ---- */

/*
 * CONF_SMALL: an 8-entry SQ, a 16-entry CQ (7 registrations). CONF_OVERFLOW: 4 and 4 with
 * URP_DRIVER_OVERCOMMIT, so the CQ overflows and the kernel ends multishot recvs whose CQEs
 * did not fit; the driver must flush and re-arm them. Both drivers are made before the fds
 * are counted, so the input that makes one does not count its descriptors as leaked.
 */
static void begin(uint8_t conf)
{
	for (unsigned c = 0; c < CONF_COUNT; c++) {
		struct urp_driver_opts opts = {
			.sq_entries = c == CONF_SMALL ? 8 : 4,
			.cq_entries = c == CONF_SMALL ? 16 : 4,
			.flags = c == CONF_SMALL ? 0 : URP_DRIVER_OVERCOMMIT,
			.buf_count = BUF_COUNT,
			.buf_size = BUF_SIZE,
			.buf_cap = BUF_CAP,
			.send_hwm = SEND_HWM,
		};
		int ret;

		if (m.drvs[c])
			continue;
		ret = urp_driver_new(&m.drvs[c], &opts);
		FUZZ_CHECK(ret == 0, "urp_driver_new: %d (%s)", ret, urp_strerror(ret));
		/* Claim it for this thread: ring-mode calls and shutdown are then synchronous. */
		m.drv = m.drvs[c];
		turn(0);
	}
	m.conf = (enum config)(conf % CONF_COUNT);
	m.drv = m.drvs[m.conf];
	m.fds_before = fuzz_open_fds();
	m.shut = false;
	m.eagain = m.forwards = m.copies = m.take_errors = 0;
	m.nheld = 0;
	m.streams = 0;
	for (unsigned i = 0; i < ENTRIES; i++)
		forget(&m.ents[i]);
}

static void finish(void)
{
	struct urp_stats st;
	unsigned i, t;

	if (!m.shut)
		settle();
	while (m.nheld)
		urp_buf_release(m.held[--m.nheld].buf);
	for (i = 0; i < ENTRIES; i++)
		if (m.ents[i].live)
			do_deregister(&m.ents[i], (uint8_t)i);
	for (t = 0; t < QUICK_TURNS + SLOW_TURNS; t++) {
		turn(t < QUICK_TURNS ? 0 : SLOW_MS);
		st = stats();
		if (st.live == 0 && st.bufs_out == 0)
			break;
	}
	FUZZ_CHECK(st.live == 0, "%lu entries live after deregistering all",
		   (unsigned long)st.live);
	FUZZ_CHECK(st.bufs_out == 0, "%lu buffers leaked", (unsigned long)st.bufs_out);
	FUZZ_CHECK(st.unknown_tokens == 0, "%lu CQEs for unknown tokens",
		   (unsigned long)st.unknown_tokens);
	FUZZ_CHECK(st.poll_errors == 0, "%lu requests failed to arm",
		   (unsigned long)st.poll_errors);
	FUZZ_CHECK(fuzz_open_fds() == m.fds_before, "%d fds open, %d before the input",
		   fuzz_open_fds(), m.fds_before);
	if (m.trace)
		fprintf(stderr,
			"reached: recv_bufs %lu enobufs %lu paused %lu sends %lu cq_overflows %lu "
			"stale %lu eagain %u forwards %u copies %u take_errors %u shut %d\n",
			(unsigned long)st.recv_bufs, (unsigned long)st.enobufs,
			(unsigned long)st.paused, (unsigned long)st.sends,
			(unsigned long)st.cq_overflows, (unsigned long)st.stale_rejects, m.eagain,
			m.forwards, m.copies, m.take_errors, m.shut);
	if (m.shut) {
		urp_driver_free(m.drv);
		m.drvs[m.conf] = m.drv = NULL;
	}
}

static const char *const op_names[OP_COUNT] = {
	"peer_write", "take",	  "held",     "send",	    "send_fin", "peer_read", "peer_shut",
	"peer_reset", "turn",	  "dereg",    "register",   "shutdown", "settle",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool trace_read;
	struct fuzz_in in = { data, size };
	unsigned ops;

	if (!trace_read) {
		m.trace = getenv("RING_OPS_TRACE") != NULL;
		trace_read = true;
	}
	begin(fuzz_u8(&in));
	for (ops = 0; ops < MAX_OPS && fuzz_more(&in); ops++) {
		enum op op = (enum op)(fuzz_u8(&in) % OP_COUNT);
		unsigned slot = fuzz_u8(&in) % ENTRIES;
		struct entry *e = &m.ents[slot];

		if (!e->live && op != OP_REGISTER && op != OP_HELD && op != OP_TURN &&
		    op != OP_SHUTDOWN && op != OP_SETTLE)
			continue;
		if (m.trace)
			fprintf(stderr, "op %u: %s %u (next bytes %02x %02x %02x %02x)\n", ops,
				op_names[op], slot, in.n > 0 ? in.p[0] : 0, in.n > 1 ? in.p[1] : 0,
				in.n > 2 ? in.p[2] : 0, in.n > 3 ? in.p[3] : 0);
		switch (op) {
		case OP_PEER_WRITE:
			do_peer_write(e, 8u * fuzz_u8(&in));
			break;
		case OP_TAKE:
			do_take(e, &in);
			break;
		case OP_HELD:
			do_held(&in);
			break;
		case OP_SEND:
			do_send(e, 3u * fuzz_u8(&in));
			break;
		case OP_SEND_FIN:
			do_send_fin(e);
			break;
		case OP_PEER_READ:
			peer_read(e, 16u * fuzz_u8(&in) + 1);
			break;
		case OP_PEER_SHUT:
			do_peer_shut(e);
			break;
		case OP_PEER_RESET:
			do_peer_reset(e);
			break;
		case OP_TURN:
			turn(0);
			break;
		case OP_DEREGISTER:
			do_deregister(e, fuzz_u8(&in));
			break;
		case OP_REGISTER:
			do_register(e, fuzz_u8(&in));
			break;
		case OP_SHUTDOWN:
			do_shutdown();
			break;
		case OP_SETTLE:
			settle();
			break;
		default:
			break;
		}
		check_all();
	}
	finish();
	return 0;
}
