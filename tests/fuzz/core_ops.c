/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "core_ops": op sequences on one detached entry (core/ alone, no driver), against
 * a reference model of docs/design.md, "The readiness word", written here as plainly as possible.
 *
 * Ops: Set (from a poll mask or raw bits), snapshot, Clear, poll_ready on either direction
 * with a waker or none, clear_wakers, readiness futures (init, poll, cancel, and many at once
 * to cross the 32-waker batch), try_io whose op may race a Set before answering EAGAIN,
 * urp_io_wait with timeout 0, shutdown, and enough empty Sets to wrap the tick. After every op
 * the word must equal the model's, every waker must have been called exactly as often as the
 * model says (Wake(new bits) only, each stored waker once), and the process-wide counters must
 * move as the model says: stale_rejects by the refused clears, wakes by the wakers called,
 * wake_batches by ceil(wakes / 32) per wake. urp_io_free() at the end shuts down and wakes
 * every waiter left, and LeakSanitizer checks the entry is gone.
 */
#include <string.h>

#include "fuzz_util.h"

#define FUTURES	  40 /* more than URP__WAKE_BATCH (32): the lock-dropping flush path runs */
#define WAKERS	  8
#define SNAPSHOTS 4
#define WAKE_BATCH 32
#define MAX_OPS	  256
/* Empty Sets one input may make: enough to wrap the tick once (32768), few enough that the
 * slowest input stays in milliseconds. */
#define SET_BUDGET 40000u
#define NO_WAKER  (-1)

enum op {
	OP_SET_MASK,
	OP_SET_RAW,
	OP_SNAPSHOT,
	OP_CLEAR,
	OP_POLL_READY,
	OP_CLEAR_WAKERS,
	OP_FUT_INIT,
	OP_FUT_POLL,
	OP_FUT_CANCEL,
	OP_FUT_MANY,
	OP_TRY_IO,
	OP_WAIT0,
	OP_SHUTDOWN,
	OP_SET_MANY,
	OP_COUNT,
};

enum fut_state { FUT_NONE, FUT_INIT, FUT_WAITING, FUT_DONE };

struct ref_future {
	enum fut_state state;
	unsigned interest;
	bool linked;
	int waker;
};

struct model {
	struct urp_io *io;
	struct ref_word word;
	int slot[2]; /* URP_DIR_READ, URP_DIR_WRITE: waker id or NO_WAKER */
	struct ref_future fut[FUTURES];
	struct urp_readiness r[FUTURES];
	struct urp_event snap[SNAPSHOTS];
	unsigned expected[WAKERS];
	uint64_t wakes, batches, stale;
	unsigned set_budget;
};

static unsigned called[WAKERS];

static void count_wake(void *arg)
{
	(*(unsigned *)arg)++;
}

/* Waker id from a byte: WAKERS ids, or none (a poll that registers nothing). */
static int waker_id(uint8_t b)
{
	return b % (WAKERS + 1) == WAKERS ? NO_WAKER : b % (WAKERS + 1);
}

static const struct urp_waker *waker_of(int id, struct urp_waker *w)
{
	if (id == NO_WAKER)
		return NULL;
	*w = (struct urp_waker){ count_wake, &called[id] };
	return w;
}

static bool interest_ok(unsigned interest)
{
	return interest && !(interest & ~URP_INTEREST_ALL);
}

static unsigned dir_mask(int dir)
{
	return dir == URP_DIR_READ ? URP_READABLE | URP_READ_CLOSED
				   : URP_WRITABLE | URP_WRITE_CLOSED;
}

/* Wake(ready): both slots as their direction says, every linked future whose interest sees
 * ready. Wakers with no function are unlinked but not counted. */
static void ref_wake(struct model *m, unsigned ready)
{
	unsigned n = 0, dir, i;

	if (!ready)
		return;
	for (dir = 0; dir < 2; dir++) {
		if ((ready & dir_mask((int)dir)) && m->slot[dir] != NO_WAKER) {
			m->expected[m->slot[dir]]++;
			m->slot[dir] = NO_WAKER;
			n++;
		}
	}
	for (i = 0; i < FUTURES; i++) {
		struct ref_future *f = &m->fut[i];

		if (f->state != FUT_WAITING || !f->linked ||
		    !(ref_from_interest(f->interest) & ready))
			continue;
		f->linked = false;
		if (f->waker != NO_WAKER) {
			m->expected[f->waker]++;
			n++;
		}
	}
	m->wakes += n;
	m->batches += (n + WAKE_BATCH - 1) / WAKE_BATCH;
}

static void do_set(struct model *m, unsigned bits)
{
	unsigned before = m->word.ready;

	ref_set(&m->word, bits);
	urp_io_set_readiness(m->io, bits);
	FUZZ_CHECK((m->word.ready & before) == before, "Set cleared bits");
	ref_wake(m, bits & URP_READY_ALL);
}

static void do_shutdown(struct model *m)
{
	m->word.shutdown = true;
	urp_io_shutdown(m->io);
	ref_wake(m, URP_READY_ALL);
}

static void check_event(const struct model *m, const struct urp_event *ev, unsigned mask,
			const char *what)
{
	FUZZ_CHECK(ev->ready == (m->word.ready & mask) && ev->tick == m->word.tick &&
			   ev->shutdown == m->word.shutdown,
		   "%s: event %#x/%u/%d, expected %#x/%u/%d", what, ev->ready, ev->tick,
		   ev->shutdown, m->word.ready & mask, m->word.tick, m->word.shutdown);
}

static void check_all(const struct model *m)
{
	struct urp_stats st;
	unsigned i;

	FUZZ_CHECK_WORD(urp_io_word(m->io), &m->word);
	for (i = 0; i < WAKERS; i++)
		FUZZ_CHECK(called[i] == m->expected[i], "waker %u called %u times, expected %u", i,
			   called[i], m->expected[i]);
	urp_detached_stats(&st);
	FUZZ_CHECK(st.wakes == m->wakes && st.wake_batches == m->batches &&
			   st.stale_rejects == m->stale,
		   "counters wakes %lu batches %lu stale %lu, expected %lu %lu %lu",
		   (unsigned long)st.wakes, (unsigned long)st.wake_batches,
		   (unsigned long)st.stale_rejects, (unsigned long)m->wakes,
		   (unsigned long)m->batches, (unsigned long)m->stale);
}

static void do_clear(struct model *m, const struct urp_event *ev)
{
	unsigned closed = m->word.ready & (URP_READ_CLOSED | URP_WRITE_CLOSED);
	int want = ref_clear(&m->word, ev);
	int got = urp_io_clear_readiness(m->io, ev);

	m->stale += want == -ESTALE;
	FUZZ_CHECK(got == want, "clear returned %d, expected %d", got, want);
	FUZZ_CHECK((m->word.ready & closed) == closed, "clear dropped closed bits");
}

static void do_poll_ready(struct model *m, int dir, int id)
{
	unsigned mask = dir_mask(dir);
	struct urp_waker w;
	struct urp_event ev;
	bool ready = (m->word.ready & mask) || m->word.shutdown;
	int ret = urp_io_poll_ready(m->io, dir, waker_of(id, &w), &ev);

	FUZZ_CHECK(ret == (ready ? 0 : -EAGAIN), "poll_ready(%d) returned %d", dir, ret);
	check_event(m, &ev, mask, "poll_ready");
	if (!ready && id != NO_WAKER)
		m->slot[dir] = id;
}

/* The future's transitions (docs/design.md, "Readiness future and slots"). */
static void do_fut_poll(struct model *m, unsigned k, int id)
{
	struct ref_future *f = &m->fut[k];
	unsigned mask = ref_from_interest(f->interest);
	struct urp_waker w;
	struct urp_event ev;
	int ret, want;

	if (f->state == FUT_NONE)
		return;
	ret = urp_readiness_poll(&m->r[k], waker_of(id, &w), &ev);
	if (!interest_ok(f->interest)) {
		FUZZ_CHECK(ret == -EINVAL, "future with interest %#x: %d", f->interest, ret);
		return;
	}
	switch (f->state) {
	case FUT_INIT:
		if ((m->word.ready & mask) || m->word.shutdown) {
			f->state = FUT_DONE;
		} else {
			f->state = FUT_WAITING;
			f->linked = true;
			f->waker = id;
		}
		break;
	case FUT_WAITING:
		if (f->linked)
			f->waker = id;
		else
			f->state = FUT_DONE;
		break;
	default:
		break;
	}
	want = f->state == FUT_DONE ? 0 : -EAGAIN;
	FUZZ_CHECK(ret == want, "future %u returned %d, expected %d", k, ret, want);
	if (ret == 0)
		check_event(m, &ev, mask, "future");
}

static void do_fut_cancel(struct model *m, unsigned k)
{
	struct ref_future *f = &m->fut[k];

	if (f->state == FUT_NONE)
		return;
	urp_readiness_cancel(&m->r[k]);
	f->state = FUT_INIT;
	f->linked = false;
	f->waker = NO_WAKER;
}

static void do_fut_init(struct model *m, unsigned k, unsigned interest)
{
	/* Re-initialising a linked node would corrupt the list: the API says cancel first. */
	do_fut_cancel(m, k);
	urp_readiness_init(&m->r[k], m->io, interest);
	m->fut[k] = (struct ref_future){ FUT_INIT, interest, false, NO_WAKER };
}

struct try_op {
	struct model *m;
	unsigned race_bits; /* Set these from inside the op (a completion landing mid-read) */
	bool race;
	ssize_t result;
	bool ran;
};

static ssize_t try_op(void *arg)
{
	struct try_op *t = arg;

	t->ran = true;
	if (t->race)
		do_set(t->m, t->race_bits);
	return t->result;
}

static void do_try_io(struct model *m, unsigned interest, uint8_t how, uint8_t bits)
{
	struct try_op t = { m, bits, how & 1, (how & 2) ? -EAGAIN : how >> 2, false };
	struct urp_event snap = { m->word.ready & ref_from_interest(interest), m->word.tick, false };
	bool shut = m->word.shutdown;
	ssize_t ret = urp_io_try_io(m->io, interest, try_op, &t);

	if (!interest_ok(interest)) {
		FUZZ_CHECK(ret == -EINVAL && !t.ran, "try_io(%#x) returned %zd", interest, ret);
		return;
	}
	if (shut || !snap.ready) {
		FUZZ_CHECK(ret == (shut ? -ESHUTDOWN : -EAGAIN) && !t.ran,
			   "try_io returned %zd, op %s", ret, t.ran ? "ran" : "did not run");
		return;
	}
	FUZZ_CHECK(t.ran && ret == t.result, "try_io returned %zd, op gave %zd", ret, t.result);
	if (ret == -EAGAIN) {
		/* The racing Set moved the tick: the clear must be refused. */
		if (ref_clear(&m->word, &snap) == -ESTALE)
			m->stale++;
	}
}

static void do_wait0(struct model *m, unsigned interest)
{
	struct urp_event ev;
	unsigned mask = ref_from_interest(interest);
	int ret = urp_io_wait(m->io, interest, 0, &ev), want;

	if (!interest_ok(interest))
		want = -EINVAL;
	else if (m->word.shutdown)
		want = -ESHUTDOWN;
	else if (m->word.ready & mask)
		want = 0;
	else
		want = -ETIMEDOUT;
	FUZZ_CHECK(ret == want, "urp_io_wait(%#x, 0) returned %d, expected %d", interest, ret,
		   want);
	if (ret == 0)
		check_event(m, &ev, mask, "wait");
}

static void run_op(struct model *m, struct fuzz_in *in)
{
	unsigned op = fuzz_u8(in) % OP_COUNT, k, n, i, interest;
	int id;

	switch (op) {
	case OP_SET_MASK:
		do_set(m, urp_ready_from_poll(fuzz_u32(in)));
		break;
	case OP_SET_RAW:
		do_set(m, fuzz_u8(in));
		break;
	case OP_SNAPSHOT:
		k = fuzz_u8(in) % SNAPSHOTS;
		interest = fuzz_u8(in) % 64;
		if (urp_io_ready_event(m->io, interest, &m->snap[k]) == 0) {
			FUZZ_CHECK(interest_ok(interest), "interest %#x accepted", interest);
			check_event(m, &m->snap[k], ref_from_interest(interest), "snapshot");
		}
		break;
	case OP_CLEAR:
		do_clear(m, &m->snap[fuzz_u8(in) % SNAPSHOTS]);
		break;
	case OP_POLL_READY:
		k = fuzz_u8(in);
		do_poll_ready(m, k & 1 ? URP_DIR_WRITE : URP_DIR_READ, waker_id((uint8_t)(k >> 1)));
		break;
	case OP_CLEAR_WAKERS:
		urp_io_clear_wakers(m->io);
		m->slot[0] = m->slot[1] = NO_WAKER;
		break;
	case OP_FUT_INIT:
		k = fuzz_u8(in) % FUTURES;
		do_fut_init(m, k, fuzz_u8(in) % 64);
		break;
	case OP_FUT_POLL:
		k = fuzz_u8(in) % FUTURES;
		do_fut_poll(m, k, waker_id(fuzz_u8(in)));
		break;
	case OP_FUT_CANCEL:
		do_fut_cancel(m, fuzz_u8(in) % FUTURES);
		break;
	case OP_FUT_MANY:
		interest = fuzz_u8(in) % 64;
		id = waker_id(fuzz_u8(in));
		n = fuzz_u8(in) % (FUTURES + 1);
		for (i = 0; i < n; i++) {
			do_fut_init(m, i, interest);
			do_fut_poll(m, i, id);
		}
		break;
	case OP_TRY_IO:
		interest = fuzz_u8(in) % 64;
		k = fuzz_u8(in);
		do_try_io(m, interest, (uint8_t)k, fuzz_u8(in));
		break;
	case OP_WAIT0:
		do_wait0(m, fuzz_u8(in) % 64);
		break;
	case OP_SHUTDOWN:
		do_shutdown(m);
		break;
	case OP_SET_MANY:
		n = (fuzz_u8(in) + 1u) * 128;
		n = n < m->set_budget ? n : m->set_budget;
		m->set_budget -= n;
		for (i = 0; i < n; i++)
			do_set(m, 0);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct model m;
	struct fuzz_in in = { data, size };
	struct urp_stats st;
	uint64_t live;
	unsigned ops, i;

	urp_detached_stats(&st);
	memset(&m, 0, sizeof(m));
	memset(called, 0, sizeof(called));
	m.wakes = st.wakes;
	m.batches = st.wake_batches;
	m.stale = st.stale_rejects;
	live = st.live;
	m.set_budget = SET_BUDGET;
	m.slot[0] = m.slot[1] = NO_WAKER;
	for (i = 0; i < FUTURES; i++)
		m.fut[i].waker = NO_WAKER;
	if (urp_io_new(&m.io) < 0)
		return 0;
	check_all(&m);
	for (ops = 0; ops < MAX_OPS && fuzz_more(&in); ops++) {
		run_op(&m, &in);
		check_all(&m);
	}
	/* Free shuts down and wakes what is left: every waiter still linked, both slots. */
	m.word.shutdown = true;
	ref_wake(&m, URP_READY_ALL);
	urp_io_free(m.io);
	for (i = 0; i < WAKERS; i++)
		FUZZ_CHECK(called[i] == m.expected[i], "free: waker %u called %u, expected %u", i,
			   called[i], m.expected[i]);
	urp_detached_stats(&st);
	FUZZ_CHECK(st.live == live, "live %lu after free, expected %lu", (unsigned long)st.live,
		   (unsigned long)live);
	return 0;
}
