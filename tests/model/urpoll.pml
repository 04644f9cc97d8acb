/*
 * urpoll.pml - Spin model of the urpoll readiness protocol (SPEC.md section 2).
 *
 * What is modelled: one registered fd, i.e. one struct urp_io: its packed readiness word, its
 * waiter mutex and intrusive waiter list, a driver that turns kernel edges into Set + Wake, and
 * NCONS consumers that run the readiness future and try_io() against it.
 *
 * What is checked: no lost wakeup, no lost edge.  When the system is quiescent (the driver has
 * made all its edges and every consumer is parked), every unit of data the kernel made available
 * has been read.  A consumer parked forever while avail > 0 is exactly the bug: the kernel
 * reported the edge once (multishot poll does not repeat it), and nobody is left to act on it.
 *
 * The lost-wakeup argument the model checks rests on two orders (SPEC.md 2, last paragraph):
 *   - a waiter checks, locks, registers, and re-checks under the lock;
 *   - the driver updates the word, then locks to collect wakers;
 * plus one rule on the consumer side: Clear refuses when the tick moved since the snapshot.
 * Each mutant below breaks exactly one of them, and each must yield a counterexample.
 *
 * Mutants (select one with spin -D...):
 *   MUTANT_NO_RECHECK        the future links its node without re-loading the word under the lock
 *   MUTANT_NO_TICK_CHECK     Clear removes READABLE whatever the stored tick
 *   MUTANT_SHORT_TICK        the tick is 1 bit wide, so two intervening Sets make a stale
 *                            snapshot look current (the hazard of tokio's 8-bit compare, scaled
 *                            down to the model's bound)
 *   MUTANT_WAKE_BEFORE_SET   the driver runs Wake before it publishes the new bits with Set
 *
 * Bounds: NSETS edges (default 3), NCONS consumers (default 2).  See the comment on TICK_BITS for
 * why a bounded model with the real 15-bit tick is exact for the tick comparison.
 */

#ifndef NSETS
#define NSETS		3
#endif

#ifndef NCONS
#define NCONS		2
#endif

/*
 * The readiness word, as in core/:
 *
 *   | bit 31       | bits 30..16 | bits 15..0                         |
 *   |--------------|-------------|------------------------------------|
 *   | shutdown (1) | tick (15)   | readiness (16; model: READABLE)    |
 *
 * Promela's int is a 32-bit two's-complement word, so bit 31 is the sign bit; every unpack
 * masks after shifting, which makes the arithmetic right shift harmless.
 *
 * TICK_BITS: the model keeps the real 15-bit field.  The only thing the protocol ever does with a
 * tick is compare a snapshot with the current value, and two ticks compare equal iff the number
 * k of Sets between them is a multiple of 2^TICK_BITS.  A consumer can only Clear after seeing
 * READABLE, i.e. after at least one Set, so with NSETS edges at most NSETS - 1 Sets can fall
 * between a snapshot and its Clear.  Any width with 2^TICK_BITS > NSETS - 1 therefore answers
 * every comparison the model can make exactly like the 15-bit field: equal iff k == 0.  (Spin
 * only stores the tick values it reaches, 0..NSETS, so the full width costs nothing either.)
 * run.sh also checks the narrowest sufficient width, TICK_BITS=2 for NSETS=3, to exercise this
 * argument; MUTANT_SHORT_TICK takes one bit less and must fail.
 */
#ifdef MUTANT_SHORT_TICK
#undef TICK_BITS
#define TICK_BITS	1
#endif

#ifndef TICK_BITS
#define TICK_BITS	15
#endif

#define SHUTDOWN_SHIFT	31
#define TICK_SHIFT	16
#define TICK_MASK	((1 << TICK_BITS) - 1)
#define READY_MASK	((1 << TICK_SHIFT) - 1)

#define READABLE	1

#define word_shutdown(w)	(((w) >> SHUTDOWN_SHIFT) & 1)
#define word_tick(w)		(((w) >> TICK_SHIFT) & TICK_MASK)
#define word_ready(w)		((w) & READY_MASK)
#define word_pack(sd, tick, ready) \
	(((sd) << SHUTDOWN_SHIFT) | (((tick) & TICK_MASK) << TICK_SHIFT) | ((ready) & READY_MASK))

/* Rule 0: a new entry's word is 0 - no readiness, tick 0, not shut down. */
int word = 0;

/* The kernel side: bytes queued on the socket, and what the consumers have read so far. */
byte avail = 0;
byte produced = 0;
byte consumed = 0;

/*
 * urp_io.waiters: the mutex and the intrusive list.  linked[i] is "node i is on the list",
 * marked[i] is the node's ready flag that Wake sets while unlinking it (what list_del_init plus
 * the flag give the C code), woken[i] is "the copied waker was called".
 */
bool locked = false;
bool linked[NCONS];
bool marked[NCONS];
bool woken[NCONS];

inline lock_waiters()
{
	atomic { !locked -> locked = true }
}

inline unlock_waiters()
{
	locked = false
}

/*
 * Set (driver, once per completion).  In C it is a CAS loop; a failed CAS stores nothing and
 * retries on the fresh value, so the whole loop is observably one atomic read-modify-write.  The
 * tick advances modulo 2^TICK_BITS and the shutdown bit is carried over.
 */
inline set_ready(bits)
{
	d_step {
		word = word_pack(word_shutdown(word), word_tick(word) + 1, word_ready(word) | (bits))
	}
}

/*
 * Clear(event) (consumer, only after the operation returned EAGAIN).  One CAS that drops the
 * bit only if the tick still equals the snapshot's.  If it moved, a completion landed after the
 * snapshot - possibly the edge for the very data our read just missed - and clearing would
 * swallow an edge the kernel will not report again: refuse (a stale-event rejection).  Never
 * touches the tick or the shutdown bit.
 */
inline clear_ready(snap)
{
	d_step {
#ifdef MUTANT_NO_TICK_CHECK
		word = word & ~READABLE
#else
		if
		:: word_tick(word) == word_tick(snap) -> word = word & ~READABLE
		:: else -> skip		/* stale_reject */
		fi
#endif
	}
}

/*
 * Wake(READABLE): under the lock, unlink every node whose interest overlaps the new bits and
 * mark it ready, collecting its waker (the stack array of 32; the model never has more than
 * NCONS, so the flush-and-relock path is not exercised).  The wakers are called only after the
 * unlock: a woken task may cancel or deregister at once, and it needs the lock to do so.  The
 * caller provides i and batch[] (the stack array).
 */
inline wake_readable()
{
	lock_waiters();
	d_step {
		i = 0;
		do
		:: i < NCONS ->
			if
			:: linked[i] ->		/* every consumer's interest is READABLE */
				linked[i] = false;
				marked[i] = true;
				batch[i] = true
			:: else
			fi;
			i++
		:: else -> break
		od;
		i = 0
	}
	unlock_waiters();

	/* One wake batch: call the collected wakers, lock dropped, one step each. */
	do
	:: i < NCONS ->
		if
		:: batch[i] ->
			assert(!woken[i]);
			woken[i] = true;
			batch[i] = false
		:: else
		fi;
		i++
	:: else -> i = 0; break
	od
}

/*
 * The driver: the io_uring CQE loop for one fd with a multishot POLLIN armed.  Each round the
 * kernel queues data (the edge), then the completion is reaped: Set, then Wake(the completion's
 * bits).  Set must come first: a waiter that re-checks under the lock after our Wake released it
 * must see the bit, because it is linked too late for this Wake to find.
 */
proctype driver()
{
	byte round = 0;
	byte i = 0;
	bool batch[NCONS];

	do
	:: round < NSETS ->
		/*
		 * The data lands before its CQE is reaped, so a consumer may read it before the
		 * Set below: that Set then raises READABLE over an empty socket, the next read
		 * gets EAGAIN and the Clear takes it back down.  Harmless, and explored.
		 */
		d_step {
			avail++;
			produced++;
			round++
		}
#ifdef MUTANT_WAKE_BEFORE_SET
		wake_readable();
		set_ready(READABLE)
#else
		set_ready(READABLE);
		wake_readable()
#endif
	:: else -> break
	od
}

/*
 * A consumer: a task looping on try_io(READABLE, read) over the readiness future.
 *
 * Init: load the word; if READABLE is set, return it with its tick (the snapshot).  Otherwise
 * lock, re-load, and only if still not ready link the node and go Waiting.  The re-load is what
 * closes the window between the first load and the link: a Set that lands there has either been
 * seen by the re-load, or its Wake has not taken the lock yet and will find our node.
 *
 * Waiting: park until the waker is called, then poll under the lock: the node must have been
 * marked by the Wake that unlinked it.  Done: go round again, which re-loads the current word (a
 * Done future may legitimately return empty readiness; callers loop).
 *
 * try_io: read everything queued (one recv that drains the socket), or EAGAIN if there is
 * nothing.  On EAGAIN, Clear with the snapshot tick.
 */
proctype consumer(byte me)
{
	int snap = 0;
	bool eagain = false;

top:
	snap = word;
	if
	:: (word_ready(snap) & READABLE) -> goto ready
	:: else
	fi;

	lock_waiters();
#ifndef MUTANT_NO_RECHECK
	snap = word;
	if
	:: (word_ready(snap) & READABLE) ->
		unlock_waiters();
		goto ready
	:: else
	fi;
#endif
	linked[me] = true;
	snap = 0;
	unlock_waiters();

	/* Parked: the future returned pending and the task sleeps until its waker runs. */
end_waiting:
	woken[me] -> woken[me] = false;
	lock_waiters();
	assert(marked[me] && !linked[me]);
	marked[me] = false;
	unlock_waiters();
	goto top;

ready:
	/* The read: one recv() that drains the socket, or EAGAIN. */
	atomic {
		if
		:: avail > 0 ->
			consumed = consumed + avail;
			avail = 0;
			eagain = false
		:: else ->
			eagain = true
		fi
	}
	/*
	 * Between the EAGAIN and the Clear the kernel may queue more data and the driver may Set
	 * and Wake; we are not linked, so that Wake passes us by.  Only the tick tells our Clear
	 * that the READABLE it is about to drop is no longer the one we consumed.
	 */
	if
	:: eagain ->
		clear_ready(snap);
		eagain = false
	:: else
	fi;
	snap = 0;
	goto top
}

/*
 * The checker.  timeout holds only when no other process can move: the driver has finished and
 * every consumer is parked in Waiting (nobody can block on the mutex, since every holder releases
 * it).  At that point every edge must have been consumed.  Parked consumers sit on an end label,
 * so a consumer stuck anywhere else would also show up as an invalid end state.
 */
init
{
	byte i = 0;

	/* The C header's _Static_asserts: the fields do not overlap and the tick fits its 15 bits. */
	assert(TICK_BITS >= 1 && TICK_BITS <= 15);
	assert((READY_MASK & (TICK_MASK << TICK_SHIFT)) == 0);
	assert(((TICK_MASK << TICK_SHIFT) & (1 << SHUTDOWN_SHIFT)) == 0);

	atomic {
		run driver();
		do
		:: i < NCONS -> run consumer(i); i++
		:: else -> break
		od
	}

	timeout ->
	assert(produced == NSETS);
	assert(avail == 0 && consumed == produced)
}
