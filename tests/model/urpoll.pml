/*
 * urpoll.pml - Spin model of the urpoll readiness protocol (docs/design.md, "The readiness word").
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
 * The lost-wakeup argument the model checks rests on two orders (docs/design.md, invariant 1):
 *   - a waiter checks, locks, publishes that it waits (urp_io.waiting), and re-checks;
 *   - the driver updates the word, then looks at urp_io.waiting and, only when someone may
 *     wait, locks to collect wakers (the fast path skips the lock otherwise);
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
 *   MUTANT_PUBLISH_LATE      the future publishes that it waits (urp_io.waiting) only when it
 *                            links its node, after its re-check: the wake's lock-free fast path
 *                            may then see nobody waiting while the re-check missed the Set
 *
 * Scenarios of the driver, each its own run (select one with spin -DSCENARIO_...; each has its
 * property and mutants in its head comment below): DEREG (deregistration and the late CQE),
 * BATCH (wake batches with the lock dropped, concurrent cancel), SHUTDOWN (shutdown racing a
 * registration), REARM (a poll ended without F_MORE is re-armed; this scenario reuses the
 * consumers and property above with a kernel that can end the poll).
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
/* urp_io.waiting's LIST bit: a future may be linked. Set by a future under the lock before it
 * re-checks the word; cleared under the lock by the wake that empties the list; read by the
 * driver without the lock. Promela's steps are sequentially consistent, as the C code's
 * accesses to it and to the word are. */
bool waiting = false;
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
	/* The fast path: nobody may wait, no lock. */
	if
	:: !waiting -> goto wake_done
	:: else
	fi;
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
		i = 0;
		waiting = false		/* each waiter was linked for READABLE: the list is empty */
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
	od;
wake_done:
	skip
}

#if defined(SCENARIO_DEREG)
/*
 * Scenario DEREG: deregistration and the late CQE (docs/design.md, "Token lifetime and deregistration").
 *
 * One entry with one multishot poll in the kernel. The kernel may post events (CQEs with
 * F_MORE) at any time while the poll is armed, including after a cancel was asked for and
 * before it took effect; it may also end the poll on its own (CQ overflow), which the driver
 * answers with a re-arm. The user deregisters at any moment. The rule: the entry is freed only
 * once it is deregistered AND the terminal CQE (no F_MORE) of every poll carrying its address
 * was reaped. Checked: no CQE ever reaches a freed entry (assert at each reap), and at
 * quiescence the entry is freed with no poll left armed (no leak).
 *
 * Mutants:
 *   MUTANT_FREE_ON_DEREG   free at deregistration (tokio's "free on the next turn"), not at the
 *                          terminal CQE: the cancel's CQE, or an event already in flight, lands
 *                          on freed memory
 *   MUTANT_REARM_GONE      re-arm a poll that ended even though the entry is deregistered: the
 *                          new poll's terminal CQE never comes, the entry is never freed
 */
#define CQ_SIZE		4
#define KERNEL_EVENTS	2	/* events the kernel posts (F_MORE), at most */
#define KERNEL_ENDS	1	/* polls the kernel ends on its own, at most */

#define KPOLL_NONE	0
#define KPOLL_ARMED	1
#define KPOLL_CANCEL	2	/* a cancel was submitted, not yet taken by the poll */

chan cq = [CQ_SIZE] of { bool };	/* CQEs for the entry's token: the F_MORE flag */
byte kpoll = KPOLL_ARMED;		/* registered: one poll armed */
byte kevents = 0;
byte kends = 0;
byte armed = 1;				/* urp_io.polls_armed */
bool gone = false;			/* URP__REG_GONE */
bool freed = false;			/* the memory is back with the allocator */
bool dereg_req = false;			/* the command queue holds a REMOVE */

proctype kernel()
{
end_kernel:
	do
	:: atomic { (kpoll != KPOLL_NONE && kevents < KERNEL_EVENTS) -> cq!1; kevents++ }
	:: atomic { (kpoll == KPOLL_ARMED && kends < KERNEL_ENDS) -> cq!0; kpoll = KPOLL_NONE;
		    kends++ }
	:: atomic { kpoll == KPOLL_CANCEL -> cq!0; kpoll = KPOLL_NONE }	/* -ECANCELED */
	od
}

proctype driver()
{
	bool more;

end_driver:
	do
	:: cq?more ->
		assert(!freed);		/* dispatch() reads io->magic, polls_armed, the word */
		if
		:: more -> skip		/* Set + Wake, skipped once gone */
		:: else ->
			armed--;
			if
#ifdef MUTANT_REARM_GONE
			:: true ->
#else
			:: !gone ->
#endif
				armed++;	/* rearm_ended(): a new poll, same token */
				kpoll = KPOLL_ARMED
			:: else ->
				if
				:: armed == 0 -> freed = true	/* retire, then free_dead() */
				:: else
				fi
			fi
		fi
	:: atomic { dereg_req -> dereg_req = false }
		gone = true;
#ifdef MUTANT_FREE_ON_DEREG
		freed = true;
#endif
		if
		:: armed > 0 ->
			/* ASYNC_CANCEL, which the kernel applies to the poll as it stands: if the
			 * poll already ended, its terminal CQE is queued and the cancel finds
			 * nothing (-ENOENT, on the control token). */
			atomic {
				if
				:: kpoll == KPOLL_ARMED -> kpoll = KPOLL_CANCEL
				:: else
				fi
			}
		:: else -> freed = true
		fi
	od
}

init
{
	atomic {
		run kernel();
		run driver()
	}
	dereg_req = true;		/* urp_deregister(), from any thread, at any time */

	timeout ->
	assert(freed && armed == 0 && kpoll == KPOLL_NONE)
}

#elif defined(SCENARIO_BATCH)
/*
 * Scenario BATCH: Wake with the lock dropped between batches (docs/design.md, "The readiness word": Wake), and
 * waiters cancelled while it runs.
 *
 * NW waiters are linked; a wake collects at most BATCH of them under the lock (unlinking each
 * with del_init and counting itself in io->calls), unlocks, calls them, relocks and restarts
 * from the list head until none is left. Each waiter's owner may cancel at any time: under the
 * lock it unlinks its node if still linked; if a wake already took it, the cancel waits for
 * io->calls to drop (urp__io_wait_calls) before returning, after which the owner frees the
 * waker's argument. A woken task polls at once, which takes the lock.
 * Checked: no waker runs after its owner's cancel returned (arg_freed), every waiter that was
 * not cancelled is woken exactly once, and no one deadlocks.
 *
 * Mutants:
 *   MUTANT_CALL_UNDER_LOCK   wakers are called with the lock held: the woken task's poll
 *                            deadlocks on it
 *   MUTANT_NO_WAIT_CALLS     a cancel that finds its node already unlinked returns at once: the
 *                            owner frees the argument while the wake is about to call it
 *   MUTANT_ONE_BATCH         the wake stops after the first full batch: waiters beyond it are
 *                            never woken
 */
#define NW	3
#define BATCH	2

bool blinked[NW];
bool bwoken[NW];
bool cancelled[NW];
bool arg_freed[NW];
byte calls = 0;			/* urp_io.calls: wakes that took wakers and still call them */

/* The woken task: it polls its future at once, under the lock. */
inline task_poll()
{
	lock_waiters();
	unlock_waiters()
}

inline call_batch()
{
	j = 0;
	do
	:: j < NW ->
		if
		:: taken[j] ->
			assert(!arg_freed[j] && !bwoken[j]);
			bwoken[j] = true;
			taken[j] = false;
			task_poll()
		:: else
		fi;
		j++
	:: else -> break
	od
}

proctype waker()
{
	bool taken[NW];
	bool more = false;
	byte j = 0, n = 0;

	lock_waiters();
	calls++;
again_locked:
	skip;
	/* Collect from the list head: woken nodes were unlinked, so a restart skips them. */
	d_step {
		j = 0;
		n = 0;
		more = false;
		do
		:: j < NW && blinked[j] && n == BATCH -> more = true; j++
		:: j < NW && blinked[j] && n < BATCH ->
			blinked[j] = false;	/* del_init: the owner sees it was taken */
			taken[j] = true;
			n++;
			j++
		:: j < NW && !blinked[j] -> j++
		:: else -> break
		od
	}
#ifdef MUTANT_CALL_UNDER_LOCK
	call_batch();
	unlock_waiters();
#else
	unlock_waiters();
	call_batch();
#endif
#ifndef MUTANT_ONE_BATCH
	if
	:: more -> lock_waiters(); goto again_locked
	:: else
	fi;
#endif
	calls--
}

proctype owner(byte me)
{
	if
	:: skip ->		/* urp_readiness_cancel() */
		lock_waiters();
		if
		:: blinked[me] ->
			blinked[me] = false;
			cancelled[me] = true;
			unlock_waiters()
		:: else ->
			unlock_waiters();
#ifndef MUTANT_NO_WAIT_CALLS
			calls == 0	/* urp__io_wait_calls() */
#endif
		fi;
		arg_freed[me] = true
	:: skip ->		/* keeps waiting */
end_parked:
		bwoken[me]
	fi
}

init
{
	byte i = 0;

	atomic {
		do
		:: i < NW -> blinked[i] = true; i++
		:: else -> break
		od;
		run waker();
		i = 0;
		do
		:: i < NW -> run owner(i); i++
		:: else -> break
		od
	}

	timeout ->
	i = 0;
	do
	:: i < NW -> assert(cancelled[i] || bwoken[i]); assert(!(cancelled[i] && bwoken[i])); i++
	:: else -> break
	od
}

#elif defined(SCENARIO_SHUTDOWN)
/*
 * Scenario SHUTDOWN: urp_driver_shutdown() against a registration racing it and waiters on
 * both entries (docs/design.md, "Threads and unpark"; the readiness word: Shutdown).
 *
 * Entry 0 is live. Entry 1 is registered by another thread while the driver shuts down: the
 * registration checks the driver's shutdown flag, queues an ARM command and returns, and its
 * owner may start waiting on it at once. The driver, on its thread, either takes the command
 * (go_live, and shut the entry down if the driver is already shutting down) or shuts down:
 * set the flag, then for each live entry set the shutdown bit and Wake(READY_ALL).
 * Checked: a registration that starts after urp_driver_shutdown() returned is refused, every
 * entry that went live ends with its shutdown bit, and no waiter stays parked.
 *
 * Mutants:
 *   MUTANT_SHUTDOWN_NO_WAKE      the shutdown sets the bit but wakes nobody
 *   MUTANT_ARM_IGNORES_SHUTDOWN  an ARM command taken after the shutdown arms the entry as usual:
 *                                it missed the walk over the live list, and its waiter parks
 *   MUTANT_REGISTER_NO_CHECK     urp_register() does not check the shutdown flag
 */
#define NE	2
#define E_NONE	  0
#define E_QUEUED  1	/* urp_register() returned, the ARM command is queued */
#define E_LIVE	  2
#define E_REFUSED 3	/* -ESHUTDOWN */

int sword[NE];
byte estate[NE];
bool slinked[NE];
bool parked[NE];
bool drv_shutdown = false;
bool shutdown_returned = false;

inline shutdown_entry(e)
{
	d_step { sword[e] = sword[e] | (1 << SHUTDOWN_SHIFT) }
#ifndef MUTANT_SHUTDOWN_NO_WAKE
	lock_waiters();
	d_step {
		if
		:: slinked[e] -> slinked[e] = false; woke = true
		:: else -> woke = false
		fi
	}
	unlock_waiters();
	if
	:: woke -> parked[e] = false	/* the waker, lock dropped */
	:: else
	fi
#endif
}

proctype driver()
{
	bool woke = false;

end_driver:
	do
	:: atomic { estate[1] == E_QUEUED -> estate[1] = E_LIVE }	/* go_live() */
#ifndef MUTANT_ARM_IGNORES_SHUTDOWN
		if
		:: drv_shutdown -> shutdown_entry(1)
		:: else
		fi
#endif
	:: atomic { !drv_shutdown -> drv_shutdown = true }
		shutdown_entry(0);
		if
		:: estate[1] == E_LIVE -> shutdown_entry(1)
		:: else
		fi;
		shutdown_returned = true
	od
}

proctype registrar()
{
	bool after;

	/* A statement, not an initialiser: those run when init creates the process. */
	after = shutdown_returned;

	/* Not atomic: the driver may shut down between the check and the queueing. */
	if
#ifndef MUTANT_REGISTER_NO_CHECK
	:: drv_shutdown -> estate[1] = E_REFUSED
#endif
	:: else -> estate[1] = E_QUEUED
	fi;
	assert(!after || estate[1] == E_REFUSED)
}

/* The readiness future on entry e with READABLE interest: done on READABLE or shutdown. */
proctype waiter(byte e)
{
	int snap;

	(estate[e] != E_NONE);
	if
	:: estate[e] == E_REFUSED -> goto done
	:: else
	fi;
	snap = sword[e];
	if
	:: (word_ready(snap) & READABLE) || word_shutdown(snap) -> goto done
	:: else
	fi;
	lock_waiters();
	snap = sword[e];
	if
	:: (word_ready(snap) & READABLE) || word_shutdown(snap) -> unlock_waiters(); goto done
	:: else
	fi;
	slinked[e] = true;
	parked[e] = true;
	unlock_waiters();
end_parked:
	!parked[e];
done:
	skip
}

init
{
	estate[0] = E_LIVE;
	atomic {
		run driver();
		run registrar();
		run waiter(0);
		run waiter(1)
	}

	timeout ->
	assert(drv_shutdown && shutdown_returned);
	assert(word_shutdown(sword[0]) && !parked[0]);
	assert(estate[1] != E_LIVE || word_shutdown(sword[1]));
	assert(!parked[1])
}

#else
#ifdef SCENARIO_REARM
/*
 * Scenario REARM: a poll that ends (a CQE without F_MORE: CQ overflow, the submitting thread
 * exiting) is re-armed, and nothing is lost (docs/design.md, "One turn"). The kernel queues data, posts a
 * CQE per edge while the poll is armed, may end the poll on its own (its final CQE still carries
 * the mask), and arming a poll re-checks readiness: data already queued gives a CQE at once.
 * The driver applies every CQE (Set, Wake) and re-arms after a final one. The consumers and the
 * property are the main scenario's: at quiescence, all data was read.
 *
 * Mutant:
 *   MUTANT_NO_REARM   the driver applies the final CQE's mask but does not re-arm: data that
 *                     arrives afterwards raises no CQE, and a consumer parks over it
 */
#define REARM_ENDS	1

chan cq = [NSETS + 3] of { bool, bool };	/* F_MORE, POLLIN in the mask */
bool kpoll = true;
bool armreq = false;
byte kends = 0;

proctype kernel()
{
end_kernel:
	do
	:: atomic { produced < NSETS -> avail++; produced++;
		    if
		    :: kpoll -> cq!1,1
		    :: else
		    fi }
	:: atomic { (kpoll && kends < REARM_ENDS) -> cq!0,(avail > 0); kpoll = false; kends++ }
	:: atomic { armreq -> armreq = false; kpoll = true;
		    if
		    :: avail > 0 -> cq!1,1
		    :: else
		    fi }
	od
}

proctype driver()
{
	bool more, in;
	byte i = 0;
	bool batch[NCONS];

end_driver:
	do
	:: cq?more,in ->
		if
		:: in -> set_ready(READABLE); wake_readable()
		:: else -> set_ready(0)		/* the tick advances even for no bits */
		fi;
		if
		:: !more ->
#ifndef MUTANT_NO_REARM
			armreq = true	/* rearm_ended(): a new POLL_ADD */
#else
			skip
#endif
		:: else
		fi
	od
}

#else
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
#endif /* SCENARIO_REARM */

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
#ifndef MUTANT_PUBLISH_LATE
	waiting = true;
#endif
#ifndef MUTANT_NO_RECHECK
	snap = word;
	if
	:: (word_ready(snap) & READABLE) ->
		unlock_waiters();
		goto ready
	:: else
	fi;
#endif
#ifdef MUTANT_PUBLISH_LATE
	waiting = true;
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
#ifdef SCENARIO_REARM
		run kernel();
#endif
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

#endif /* the scenarios */
