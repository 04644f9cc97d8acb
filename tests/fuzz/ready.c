/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "ready": the poll-mask -> Ready mapping (core/ready.c) and the readiness word it
 * feeds (core/io.c), against docs/design.md, "The readiness word".
 *
 * Input: a sequence of ops, one byte each plus operands. Every poll mask the input names is
 * checked against the spec's table and its properties; every op on the word is replayed on a
 * reference word (fuzz_util.h) and the two must agree bit for bit after each op:
 *   - closed bits (READ_CLOSED, WRITE_CLOSED) and ERROR come only from RDHUP, HUP, ERR;
 *   - the mapping is deterministic and never yields bits outside URP_READY_ALL;
 *   - a Set never clears a bit, keeps the shutdown bit and advances the tick by one (mod 2^15),
 *     even with no bits;
 *   - a Clear never removes a closed bit, never moves the tick or the shutdown bit, and is
 *     refused (-ESTALE, counted) unless all 15 tick bits match;
 *   - a shutdown sets bit 31 and nothing else.
 */
#include <poll.h>

#include "fuzz_util.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif

#define SNAPSHOTS 4
#define MAX_OPS	  256
/* Empty Sets one input may make: enough to wrap the tick once (32768), few enough that the
 * slowest input stays in milliseconds. */
#define SET_BUDGET 40000u

enum op {
	OP_SET_MASK,	/* Set(from_poll(u32 mask)) */
	OP_SET_RAW,	/* Set(u8 bits): bits outside READY_ALL must be ignored */
	OP_SNAPSHOT,	/* ready_event(interest) into a snapshot slot */
	OP_CLEAR,	/* Clear with a snapshot */
	OP_CLEAR_FORGED, /* Clear with any ready bits and any tick, valid or not */
	OP_SHUTDOWN,
	OP_SET_MANY,	/* (n + 1) * 128 empty Sets: reaches the tick's wrap in one op */
	OP_COUNT,
};

/* The spec's table, clause by clause. */
static unsigned spec_from_poll(unsigned m)
{
	bool in = m & POLLIN, pri = m & POLLPRI, out = m & POLLOUT, err = m & POLLERR,
	     hup = m & POLLHUP, rdhup = m & POLLRDHUP;
	unsigned r = 0;

	r |= (in || pri) ? URP_READABLE : 0;
	r |= out ? URP_WRITABLE : 0;
	r |= (hup || (in && rdhup)) ? URP_READ_CLOSED : 0;
	r |= (hup || (out && err) || m == POLLERR) ? URP_WRITE_CLOSED : 0;
	r |= err ? URP_ERROR : 0;
	r |= pri ? URP_PRIORITY : 0;
	return r;
}

static unsigned check_mapping(unsigned mask)
{
	unsigned ready = urp_ready_from_poll(mask);
	unsigned closed = URP_READ_CLOSED | URP_WRITE_CLOSED | URP_ERROR;

	FUZZ_CHECK(urp_ready_from_poll(mask) == ready, "mask %#x maps two ways", mask);
	FUZZ_CHECK(!(ready & ~URP_READY_ALL), "mask %#x gives %#x", mask, ready);
	FUZZ_CHECK(!(ready & closed) || (mask & (POLLRDHUP | POLLHUP | POLLERR)),
		   "mask %#x invents closed/error bits %#x", mask, ready & closed);
	/* RDHUP alone says nothing: the reader sees EOF only with POLLIN. */
	FUZZ_CHECK(!(ready & URP_READ_CLOSED) || (mask & POLLHUP) || (mask & POLLIN),
		   "mask %#x: READ_CLOSED without HUP or IN", mask);
	FUZZ_CHECK(!!(ready & URP_ERROR) == !!(mask & POLLERR), "mask %#x: ERROR %#x", mask, ready);
	FUZZ_CHECK(ready == spec_from_poll(mask), "mask %#x gives %#x, the spec says %#x", mask,
		   ready, spec_from_poll(mask));
	return ready;
}

static unsigned stale_rejects(void)
{
	struct urp_stats st;

	urp_detached_stats(&st);
	return (unsigned)st.stale_rejects;
}

static void check_clear(struct urp_io *io, struct ref_word *ref, const struct urp_event *ev)
{
	unsigned closed_before = ref->ready & (URP_READ_CLOSED | URP_WRITE_CLOSED);
	unsigned rejects = stale_rejects();
	int want = ref_clear(ref, ev);
	int got = urp_io_clear_readiness(io, ev);

	FUZZ_CHECK(got == want, "clear(ready %#x tick %u) returned %d, expected %d", ev->ready,
		   ev->tick, got, want);
	FUZZ_CHECK(stale_rejects() - rejects == (want == -ESTALE), "stale count moved by %u",
		   stale_rejects() - rejects);
	FUZZ_CHECK((ref->ready & closed_before) == closed_before, "clear dropped closed bits");
	FUZZ_CHECK_WORD(urp_io_word(io), ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct urp_event snap[SNAPSHOTS] = { 0 };
	struct ref_word ref = { 0 };
	struct urp_event ev;
	struct urp_io *io;
	unsigned ops, op, i, n, bits, before, interest, budget = SET_BUDGET;

	if (urp_io_new(&io) < 0)
		return 0;
	FUZZ_CHECK_WORD(urp_io_word(io), &ref);
	for (ops = 0; ops < MAX_OPS && fuzz_more(&in); ops++) {
		op = fuzz_u8(&in) % OP_COUNT;
		switch (op) {
		case OP_SET_MASK:
		case OP_SET_RAW:
			bits = op == OP_SET_MASK ? check_mapping(fuzz_u32(&in)) : fuzz_u8(&in);
			before = ref.ready;
			ref_set(&ref, bits);
			urp_io_set_readiness(io, bits);
			FUZZ_CHECK((ref.ready & before) == before, "Set cleared bits");
			FUZZ_CHECK_WORD(urp_io_word(io), &ref);
			break;
		case OP_SNAPSHOT:
			i = fuzz_u8(&in);
			interest = fuzz_u8(&in);
			if (urp_io_ready_event(io, interest, &ev) < 0) {
				FUZZ_CHECK(!interest || (interest & ~URP_INTEREST_ALL),
					   "interest %#x refused", interest);
				break;
			}
			FUZZ_CHECK(ev.ready == (ref.ready & ref_from_interest(interest)) &&
					   ev.tick == ref.tick && ev.shutdown == ref.shutdown,
				   "event %#x/%u/%d for interest %#x", ev.ready, ev.tick, ev.shutdown,
				   interest);
			snap[i % SNAPSHOTS] = ev;
			break;
		case OP_CLEAR:
			check_clear(io, &ref, &snap[fuzz_u8(&in) % SNAPSHOTS]);
			break;
		case OP_CLEAR_FORGED:
			ev.ready = fuzz_u8(&in);
			ev.tick = fuzz_u16(&in);
			ev.shutdown = false;
			check_clear(io, &ref, &ev);
			break;
		case OP_SHUTDOWN:
			ref.shutdown = true;
			urp_io_shutdown(io);
			FUZZ_CHECK_WORD(urp_io_word(io), &ref);
			break;
		case OP_SET_MANY:
			n = (fuzz_u8(&in) + 1u) * 128;
			n = n < budget ? n : budget;
			budget -= n;
			for (i = 0; i < n; i++) {
				ref_set(&ref, 0);
				urp_io_set_readiness(io, 0);
			}
			FUZZ_CHECK_WORD(urp_io_word(io), &ref);
			break;
		}
	}
	urp_io_free(io);
	return 0;
}
