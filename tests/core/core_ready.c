// SPDX-License-Identifier: MIT
/*
 * core_ready: poll mask -> Ready, interest -> visible Ready, and the masking of snapshots by
 * interest (docs/design.md, "The readiness word").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* POLLRDHUP */
#endif
#include <poll.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#define R  URP_READABLE
#define W  URP_WRITABLE
#define RC URP_READ_CLOSED
#define WC URP_WRITE_CLOSED
#define P  URP_PRIORITY
#define E  URP_ERROR

#define check_poll(mask, want)                                                                     \
	do {                                                                                       \
		unsigned got_ = urp_ready_from_poll(mask);                                         \
		cr_assert_eq(got_, (unsigned)(want), "urp_ready_from_poll(%s) = %#x, want %#x",    \
			     #mask, got_, (unsigned)(want));                                       \
	} while (0)

Test(core_ready, poll_in)
{
	check_poll(POLLIN, R);
}

Test(core_ready, poll_in_rdhup)
{
	check_poll(POLLIN | POLLRDHUP, R | RC);
}

/* Closed states are never invented: RDHUP without IN says nothing. */
Test(core_ready, poll_rdhup_alone)
{
	check_poll(POLLRDHUP, 0);
}

Test(core_ready, poll_hup)
{
	check_poll(POLLHUP, RC | WC);
}

Test(core_ready, poll_out_err)
{
	check_poll(POLLOUT | POLLERR, W | WC | E);
}

Test(core_ready, poll_err_alone)
{
	check_poll(POLLERR, WC | E);
}

Test(core_ready, poll_pri)
{
	check_poll(POLLPRI, R | P);
}

/* Not exactly POLLERR and no POLLOUT: no WRITE_CLOSED. */
Test(core_ready, poll_in_err)
{
	check_poll(POLLIN | POLLERR, R | E);
}

Test(core_ready, poll_zero)
{
	check_poll(0, 0);
}

Test(core_ready, poll_out)
{
	check_poll(POLLOUT, W);
}

Test(core_ready, poll_hup_err)
{
	check_poll(POLLHUP | POLLERR, RC | WC | E);
}

Test(core_ready, poll_pri_rdhup)
{
	check_poll(POLLPRI | POLLRDHUP, R | P);
}

/* The mapping's rules (urpoll.h, docs/design.md), written independently of the library, for every mix of the six bits. */
static unsigned spec_ready_from_poll(unsigned mask)
{
	unsigned ready = 0;

	if ((mask & POLLIN) || (mask & POLLPRI))
		ready |= R;
	if (mask & POLLOUT)
		ready |= W;
	if ((mask & POLLHUP) || ((mask & POLLIN) && (mask & POLLRDHUP)))
		ready |= RC;
	if ((mask & POLLHUP) || ((mask & POLLOUT) && (mask & POLLERR)) || mask == POLLERR)
		ready |= WC;
	if (mask & POLLERR)
		ready |= E;
	if (mask & POLLPRI)
		ready |= P;
	return ready;
}

Test(core_ready, poll_every_combination)
{
	static const unsigned bits[] = {POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLRDHUP};

	for (unsigned combo = 0; combo < 64; combo++) {
		unsigned mask = 0;

		for (unsigned b = 0; b < 6; b++)
			if (combo & (1u << b))
				mask |= bits[b];
		cr_assert_eq(urp_ready_from_poll(mask), spec_ready_from_poll(mask),
			     "urp_ready_from_poll(%#x) = %#x, want %#x", mask,
			     urp_ready_from_poll(mask), spec_ready_from_poll(mask));
	}
}

/* Every mask of the fourteen bits a kernel sets (POLLNVAL, POLLRDNORM, POLLRDBAND, POLLWRNORM,
 * POLLWRBAND, POLLMSG and POLLREMOVE besides the six the rules read): the others change nothing,
 * but they make "exactly POLLERR" false. */
Test(core_ready, poll_every_mask_of_fourteen_bits)
{
	for (unsigned mask = 0; mask < 0x4000; mask++)
		cr_assert_eq(urp_ready_from_poll(mask), spec_ready_from_poll(mask),
			     "urp_ready_from_poll(%#x) = %#x, want %#x", mask,
			     urp_ready_from_poll(mask), spec_ready_from_poll(mask));
}

Test(core_ready, interest_readable)
{
	cr_assert_eq(urp_ready_from_interest(URP_READABLE), R | RC);
}

Test(core_ready, interest_writable)
{
	cr_assert_eq(urp_ready_from_interest(URP_WRITABLE), W | WC);
}

Test(core_ready, interest_priority)
{
	cr_assert_eq(urp_ready_from_interest(URP_PRIORITY), P | RC);
}

Test(core_ready, interest_error)
{
	cr_assert_eq(urp_ready_from_interest(URP_ERROR), E);
}

Test(core_ready, interest_none)
{
	cr_assert_eq(urp_ready_from_interest(0), 0u);
}

static unsigned spec_from_interest(unsigned interest)
{
	unsigned mask = 0;

	if (interest & URP_READABLE)
		mask |= R | RC;
	if (interest & URP_WRITABLE)
		mask |= W | WC;
	if (interest & URP_PRIORITY)
		mask |= P | RC;
	if (interest & URP_ERROR)
		mask |= E;
	return mask;
}

/* Unlike tokio's try_io, a combined interest sees the union, never an empty mask. */
Test(core_ready, interest_combined_is_union)
{
	static const unsigned bits[] = {URP_READABLE, URP_WRITABLE, URP_PRIORITY, URP_ERROR};

	cr_assert_eq(urp_ready_from_interest(URP_READABLE | URP_WRITABLE), R | RC | W | WC);
	for (unsigned combo = 0; combo < 16; combo++) {
		unsigned interest = 0;

		for (unsigned b = 0; b < 4; b++)
			if (combo & (1u << b))
				interest |= bits[b];
		cr_assert_eq(urp_ready_from_interest(interest), spec_from_interest(interest),
			     "urp_ready_from_interest(%#x) = %#x, want %#x", interest,
			     urp_ready_from_interest(interest), spec_from_interest(interest));
	}
}

/* Every readiness pattern against every non-empty interest: a snapshot shows exactly the
 * word's bits that the interest sees, never one outside it. */
Test(core_ready, ready_event_masked_by_interest)
{
	static const unsigned bits[] = {URP_READABLE, URP_WRITABLE, URP_PRIORITY, URP_ERROR};

	for (unsigned pattern = 0; pattern <= URP_READY_ALL; pattern++) {
		struct urp_io *io;

		cr_assert_eq(urp_io_new(&io), 0);
		urp_io_set_readiness(io, pattern);
		for (unsigned combo = 1; combo < 16; combo++) {
			struct urp_event ev = {.ready = 0xdead};
			unsigned interest = 0, mask;

			for (unsigned b = 0; b < 4; b++)
				if (combo & (1u << b))
					interest |= bits[b];
			mask = spec_from_interest(interest);
			cr_assert_eq(urp_io_ready_event(io, interest, &ev), 0);
			cr_assert_eq(ev.ready & ~mask, 0u,
				     "readiness %#x, interest %#x: handed out %#x outside mask %#x",
				     pattern, interest, ev.ready & ~mask, mask);
			cr_assert_eq(ev.ready, pattern & mask,
				     "readiness %#x, interest %#x: got %#x, want %#x", pattern,
				     interest, ev.ready, pattern & mask);
			cr_assert_eq(ev.tick, 1u);
		}
		urp_io_free(io);
	}
}

Test(core_ready, clear_read_leaves_write)
{
	struct urp_io *io;
	struct urp_event ev;

	cr_assert_eq(urp_io_new(&io), 0);
	urp_io_set_readiness(io, R | W | RC);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.ready, R | RC);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_ready_event(io, URP_WRITABLE, &ev), 0);
	cr_assert_eq(ev.ready, W, "write side lost its bits: %#x", ev.ready);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.ready, RC, "read side: %#x", ev.ready);
	urp_io_free(io);
}

Test(core_ready, clear_write_leaves_read)
{
	struct urp_io *io;
	struct urp_event ev;

	cr_assert_eq(urp_io_new(&io), 0);
	urp_io_set_readiness(io, R | W | WC);
	cr_assert_eq(urp_io_ready_event(io, URP_WRITABLE, &ev), 0);
	cr_assert_eq(ev.ready, W | WC);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.ready, R, "read side lost its bits: %#x", ev.ready);
	cr_assert_eq(urp_io_ready_event(io, URP_WRITABLE, &ev), 0);
	cr_assert_eq(ev.ready, WC, "write side: %#x", ev.ready);
	urp_io_free(io);
}
