// SPDX-License-Identifier: MIT
/*
 * core_word: the packed readiness word and Set, Clear, Shutdown (docs/design.md, "The readiness
 * word").
 *
 *   | bit 31       | bits 30..16 | bits 15..0          |
 *   | shutdown (1) | tick (15)   | readiness (low 6)   |
 *
 * Only the public API is used: the word is read with urp_io_word() and decoded with the
 * public accessors (urp_word_*(), checked here against the layout above, which core_util.h and
 * this file spell as WORD_*), and the stale-rejection counter of detached entries is read with
 * urp_detached_stats() (as deltas).
 */
#include "core_util.h"

#define WORD_TICK_MASK	0x7fffu
#define WORD_READY_MASK 0xffffu
#define TICK_PERIOD	32768u

static uint32_t word_pack(bool shutdown, unsigned tick, unsigned ready)
{
	return (shutdown ? WORD_SHUTDOWN : 0) | (tick << WORD_TICK_SHIFT) | ready;
}

/* The public decoding (urpoll.h) is the layout of the table above, bit for bit. */
Test(core_word, public_accessors_decode_the_spec_layout)
{
	static const uint32_t words[] = { 0, 1, 0x3f, 0xffff, 0x10000, 0x7fff0000u, 0x80000000u,
					  0xffffffffu, 0x80010021u, 0x7ffe003fu };

	cr_assert_eq(URP_WORD_SHUTDOWN, WORD_SHUTDOWN);
	cr_assert_eq(URP_WORD_TICK_SHIFT, WORD_TICK_SHIFT);
	cr_assert_eq(URP_WORD_TICK_MASK, WORD_TICK_MASK << WORD_TICK_SHIFT);
	cr_assert_eq(URP_WORD_READY_MASK, WORD_READY_MASK);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		uint32_t w = words[i];

		cr_assert_eq(urp_word_shutdown(w), (w >> 31) != 0, "word %#x", w);
		cr_assert_eq(urp_word_tick(w), (w >> 16) & 0x7fffu, "word %#x", w);
		cr_assert_eq(urp_word_ready(w), w & 0xffffu, "word %#x", w);
		cr_assert_eq(word_pack(urp_word_shutdown(w), urp_word_tick(w), urp_word_ready(w)), w);
	}
}

static uint64_t stale_rejects(void)
{
	return detached_stats().stale_rejects;
}

static void set_n(unsigned n, unsigned ready)
{
	for (unsigned i = 0; i < n; i++)
		urp_io_set_readiness(io, ready);
}

TestSuite(core_word, .init = io_setup, .fini = io_teardown);

Test(core_word, fresh_word_is_zero)
{
	struct urp_event ev = {.ready = 99, .tick = 99, .shutdown = true};

	cr_assert_eq(urp_io_word(io), 0u, "fresh word is %#x", urp_io_word(io));
	cr_assert_eq(urp_io_ready_event(io, URP_INTEREST_ALL, &ev), 0);
	cr_assert_eq(ev.ready, 0u);
	cr_assert_eq(ev.tick, 0u);
	cr_assert_not(ev.shutdown);
}

Test(core_word, set_packs_tick_and_bits)
{
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(urp_io_word(io), (1u << 16) | 0x01u, "word after Set(READABLE) is %#x",
		     urp_io_word(io));
}

Test(core_word, set_ors_bits)
{
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_set_readiness(io, URP_WRITABLE | URP_PRIORITY);
	cr_assert_eq(urp_io_word(io),
		     word_pack(false, 2, URP_READABLE | URP_WRITABLE | URP_PRIORITY), "word is %#x",
		     urp_io_word(io));
}

Test(core_word, shutdown_sets_bit31_only)
{
	urp_io_shutdown(io);
	cr_assert_eq(urp_io_word(io), WORD_SHUTDOWN, "word after shutdown is %#x", urp_io_word(io));
}

Test(core_word, shutdown_keeps_tick_and_bits)
{
	set_n(3, URP_WRITABLE | URP_ERROR);
	urp_io_shutdown(io);
	cr_assert_eq(urp_io_word(io), word_pack(true, 3, URP_WRITABLE | URP_ERROR), "word is %#x",
		     urp_io_word(io));
}

Test(core_word, set_advances_tick_with_empty_bits)
{
	for (unsigned i = 1; i <= 100; i++) {
		urp_io_set_readiness(io, 0);
		cr_assert_eq(urp_io_word(io), word_pack(false, i, 0),
			     "after %u empty Sets the word is %#x", i, urp_io_word(io));
	}
}

Test(core_word, set_advances_tick_by_one_per_call)
{
	static const unsigned bits[] = {URP_READABLE, URP_WRITABLE, URP_READY_ALL, 0};

	for (unsigned i = 1; i <= 1000; i++) {
		urp_io_set_readiness(io, bits[i % 4]);
		cr_assert_eq(urp_word_tick(urp_io_word(io)), i, "tick %u after %u Sets",
			     urp_word_tick(urp_io_word(io)), i);
	}
}

Test(core_word, tick_wraps_at_32768)
{
	set_n(TICK_PERIOD - 1, 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, WORD_TICK_MASK, 0), "word is %#x",
		     urp_io_word(io));
	/* The carry out of the tick must vanish, not land in the shutdown bit. */
	urp_io_set_readiness(io, 0);
	cr_assert_eq(urp_io_word(io), 0u, "after 32768 Sets the word is %#x", urp_io_word(io));
	urp_io_set_readiness(io, 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, 1, 0), "after 32769 Sets the word is %#x",
		     urp_io_word(io));
}

Test(core_word, tick_wrap_keeps_bits_and_shutdown)
{
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_shutdown(io);
	set_n(TICK_PERIOD, URP_WRITABLE);
	cr_assert_eq(urp_io_word(io), word_pack(true, 1, URP_READABLE | URP_WRITABLE),
		     "word is %#x", urp_io_word(io));
}

Test(core_word, shutdown_survives_set_and_clear)
{
	struct urp_event ev;

	urp_io_shutdown(io);
	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(urp_io_word(io), word_pack(true, 1, URP_READABLE), "word is %#x",
		     urp_io_word(io));

	/* a matching clear */
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert(ev.shutdown);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(true, 1, 0), "word is %#x", urp_io_word(io));

	/* a refused clear */
	urp_io_set_readiness(io, URP_WRITABLE);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), -ESTALE);
	cr_assert_eq(urp_io_word(io), word_pack(true, 2, URP_WRITABLE), "word is %#x",
		     urp_io_word(io));

	/* an empty Set */
	urp_io_set_readiness(io, 0);
	cr_assert_eq(urp_io_word(io), word_pack(true, 3, URP_WRITABLE), "word is %#x",
		     urp_io_word(io));
}

/*
 * Take a snapshot, let `intervening` completions land, then try to clear with the snapshot:
 * the clear must be refused, store nothing, and count one stale rejection.
 */
static void check_stale_clear_refused(unsigned intervening)
{
	struct urp_event ev;
	uint32_t before;
	uint64_t rejects;

	urp_io_set_readiness(io, URP_READABLE);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE);
	cr_assert_eq(ev.tick, 1u);

	set_n(intervening, URP_READABLE);
	before = urp_io_word(io);
	cr_assert_neq(urp_word_tick(before), ev.tick, "test bug: tick wrapped back to the snapshot");
	rejects = stale_rejects();

	cr_assert_eq(urp_io_clear_readiness(io, &ev), -ESTALE,
		     "clear with tick %u accepted against tick %u (%u Sets later)", ev.tick,
		     urp_word_tick(before), intervening);
	cr_assert_eq(urp_io_word(io), before, "refused clear changed the word %#x -> %#x", before,
		     urp_io_word(io));
	cr_assert_eq(stale_rejects() - rejects, 1, "stale_rejects did not grow by one");
}

Test(core_word, stale_clear_refused)
{
	check_stale_clear_refused(1);
}

Test(core_word, stale_clear_refused_after_255)
{
	check_stale_clear_refused(255);
}

/* 256 Sets later the low 8 bits match again: an 8-bit compare (tokio 1.48) accepts. */
Test(core_word, stale_clear_refused_after_256)
{
	check_stale_clear_refused(256);
}

Test(core_word, stale_clear_refused_after_32767)
{
	check_stale_clear_refused(32767);
}

/* 2^b Sets later a b-bit compare matches: catches every compare narrower than 15 bits. */
Test(core_word, stale_clear_refused_after_each_power_of_two)
{
	for (unsigned b = 0; b < 15; b++) {
		urp_io_free(io);
		cr_assert_eq(urp_io_new(&io), 0);
		check_stale_clear_refused(1u << b);
	}
}

Test(core_word, matching_clear_counts_no_reject)
{
	struct urp_event ev;
	uint64_t rejects;

	set_n(5, URP_READABLE);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	rejects = stale_rejects();
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(stale_rejects(), rejects);
}

Test(core_word, matching_clear_removes_only_event_bits)
{
	struct urp_event ev;

	set_n(7, URP_READABLE | URP_WRITABLE | URP_PRIORITY);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.ready, URP_READABLE);
	cr_assert_eq(ev.tick, 7u);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, 7, URP_WRITABLE | URP_PRIORITY),
		     "word is %#x", urp_io_word(io));
}

/* Clear removes ev->ready, whatever the word holds: a hand-built event works the same. */
Test(core_word, clear_uses_event_bits_not_word)
{
	struct urp_event ev = {.ready = URP_PRIORITY | URP_WRITABLE, .tick = 2};

	set_n(2, URP_READABLE | URP_WRITABLE | URP_PRIORITY);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, 2, URP_READABLE), "word is %#x",
		     urp_io_word(io));
}

Test(core_word, closed_bits_never_cleared)
{
	struct urp_event ev;

	urp_io_set_readiness(io, URP_READY_ALL);
	cr_assert_eq(urp_io_ready_event(io, URP_INTEREST_ALL, &ev), 0);
	cr_assert_eq(ev.ready, URP_READY_ALL);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, 1, URP_READ_CLOSED | URP_WRITE_CLOSED),
		     "word is %#x", urp_io_word(io));

	/* once more, asking for exactly the closed bits */
	ev = (struct urp_event){.ready = URP_READ_CLOSED | URP_WRITE_CLOSED, .tick = 1};
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, 1, URP_READ_CLOSED | URP_WRITE_CLOSED),
		     "word is %#x", urp_io_word(io));
}

Test(core_word, error_and_priority_cleared)
{
	struct urp_event ev;

	urp_io_set_readiness(io, URP_ERROR | URP_PRIORITY | URP_READABLE);
	cr_assert_eq(urp_io_ready_event(io, URP_PRIORITY | URP_ERROR, &ev), 0);
	cr_assert_eq(ev.ready, URP_PRIORITY | URP_ERROR);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, 1, URP_READABLE), "word is %#x",
		     urp_io_word(io));
}

Test(core_word, clear_never_changes_tick)
{
	struct urp_event ev;

	for (unsigned i = 1; i <= 300; i++) {
		urp_io_set_readiness(io, URP_READY_ALL);
		cr_assert_eq(urp_io_ready_event(io, URP_INTEREST_ALL, &ev), 0);
		cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
		cr_assert_eq(urp_word_tick(urp_io_word(io)), i, "tick %u after %u Sets and clears",
			     urp_word_tick(urp_io_word(io)), i);
		cr_assert_eq(urp_word_ready(urp_io_word(io)), URP_READ_CLOSED | URP_WRITE_CLOSED);
	}
}

Test(core_word, clear_rejects_tick_above_15_bits)
{
	struct urp_event ev = {.ready = URP_READABLE, .tick = URP_TICK_MAX + 1};
	uint64_t rejects;
	uint32_t before;

	urp_io_set_readiness(io, URP_READABLE);
	before = urp_io_word(io);
	rejects = stale_rejects();
	cr_assert_eq(urp_io_clear_readiness(io, &ev), -EINVAL);
	/* bit 15 set over a matching tick: masking it off instead of refusing would clear */
	ev.tick = 0x8000u | 1u;
	cr_assert_eq(urp_io_clear_readiness(io, &ev), -EINVAL);
	ev.tick = UINT32_MAX;
	cr_assert_eq(urp_io_clear_readiness(io, &ev), -EINVAL);
	cr_assert_eq(urp_io_word(io), before, "word changed to %#x", urp_io_word(io));
	cr_assert_eq(stale_rejects(), rejects, "a bad argument was counted as a stale rejection");
}

Test(core_word, clear_accepts_tick_max)
{
	struct urp_event ev;

	set_n(URP_TICK_MAX, URP_READABLE);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, &ev), 0);
	cr_assert_eq(ev.tick, URP_TICK_MAX);
	cr_assert_eq(urp_io_clear_readiness(io, &ev), 0);
	cr_assert_eq(urp_io_word(io), word_pack(false, URP_TICK_MAX, 0), "word is %#x",
		     urp_io_word(io));
}

Test(core_word, ready_event_snapshot)
{
	struct urp_event ev;

	set_n(4, URP_READABLE | URP_WRITABLE);
	cr_assert_eq(urp_io_ready_event(io, URP_WRITABLE, &ev), 0);
	cr_assert_eq(ev.ready, URP_WRITABLE);
	cr_assert_eq(ev.tick, 4u);
	cr_assert_not(ev.shutdown);
	urp_io_shutdown(io);
	cr_assert_eq(urp_io_ready_event(io, URP_WRITABLE, &ev), 0);
	cr_assert(ev.shutdown);
	cr_assert_eq(ev.tick, 4u);
}

Test(core_word, null_args_rejected)
{
	struct urp_event ev = {0};

	cr_assert_eq(urp_io_new(NULL), -EINVAL);
	cr_assert_eq(urp_io_ready_event(NULL, URP_READABLE, &ev), -EINVAL);
	cr_assert_eq(urp_io_ready_event(io, URP_READABLE, NULL), -EINVAL);
	cr_assert_eq(urp_io_clear_readiness(NULL, &ev), -EINVAL);
	cr_assert_eq(urp_io_clear_readiness(io, NULL), -EINVAL);
	cr_assert_eq(urp_detached_stats(NULL), -EINVAL);
	cr_assert_eq(urp_io_word(io), 0u);
}

Test(core_word, detached_live_counts_entries)
{
	struct urp_stats st;
	struct urp_io *other;
	uint64_t live;

	cr_assert_eq(urp_detached_stats(&st), 0);
	live = st.live;
	cr_assert_eq(urp_io_new(&other), 0);
	cr_assert_eq(urp_detached_stats(&st), 0);
	cr_assert_eq(st.live, live + 1);
	urp_io_free(other);
	cr_assert_eq(urp_detached_stats(&st), 0);
	cr_assert_eq(st.live, live);
}
