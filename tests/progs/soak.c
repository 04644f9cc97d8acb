/* SPDX-License-Identifier: MIT */
/*
 * soak: the library under load for a set time, on its public API only (`make soak`, not part
 * of `make check`).
 *
 *   soak [--seconds N] [--slots N] [--rate TOKENS_PER_S] [--churn PER_S] [--lost-after S]
 *        [--warmup S] [--rss-tolerance-kb KB]
 *
 * Every producer write is a token (one byte on a socketpair, 1 added to an eventfd) that a
 * waiter must consume. Consumers are tasks on three loops (one of them with a 64-entry CQ and
 * URP_DRIVER_OVERCOMMIT, flooded every 2 s so its CQ overflows) and threads blocked in
 * urp_io_wait() on two spawned drivers. Meanwhile: a churn thread registers fresh fds on every
 * driver from its own thread, hands them to the slots to swap in (the old fd is drained and
 * given back with urp_deregister_close()), and registers and deregisters spare eventfds; a
 * 1 kHz setitimer SIGALRM is forwarded to every thread, the drivers' included.
 *
 * The start figures are taken after --warmup seconds (default 60: malloc's per-thread arenas
 * take about that long to stop growing here, by 1.1 MB in 3-minute runs, flat after ~60 s).
 *
 * A lost wakeup: tokens written to a slot not all consumed --lost-after seconds later. Exits 1
 * when any is lost, when tokens produced != consumed at the end, when RSS grew by more than
 * --rss-tolerance-kb between the end of the warm-up and the end, when the open fd count
 * differs between those two points (or between start-up and after teardown), or when the
 * overflow driver never overflowed.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <urpoll.h>

#include "soak_env.h"

#define NLOOPS	      3
#define OVF_LOOP      2 /* the loop whose CQ overflows */
#define OVF_CQ	      64
#define NSPAWNED      2
#define WAITERS_PER   4
#define NWAITERS      (NSPAWNED * WAITERS_PER)
#define NPRODUCERS    2
#define MAX_OUTSTAND  32 /* tokens in flight per slot: keeps writes from hitting EAGAIN */
#define TASK_BUDGET   16 /* reads per task run before it yields */
#define SPARE_HOLD    16 /* spare registrations held by the churn thread at once */
#define FLOOD_PERIOD  2 /* seconds between floods of the overflow loop */
#define REPORT_PERIOD 10

enum slot_kind { SLOT_PAIR, SLOT_EVENTFD };

/* The fds of one slot: rfd is registered; producers write wfd (== rfd for an eventfd). */
struct slot_fds {
	int rfd, wfd;
	struct urp_io *io;
};

struct slot {
	enum slot_kind kind;
	struct urp_driver *drv;
	struct urp_task task; /* loop slots */
	/* Producers write under it; a swap drains and closes under it. */
	pthread_mutex_t lock;
	struct slot_fds cur;
	/* A replacement registered by the churn thread, swapped in by the consumer. */
	_Atomic(struct slot_fds *) next;
	atomic_ulong produced, consumed;
	/* The monitor's: tokens produced by mark_ns must be consumed by mark_ns + lost_after. */
	unsigned long mark_produced;
	long long mark_ns;
	bool flagged;
};


static struct slot *slots; /* loop slots, then waiter slots */
static unsigned nslots, nloop_slots, ovf_first, ovf_count;
static struct urp_loop *loops[NLOOPS];
static pthread_t loop_threads[NLOOPS];
static struct urp_driver *spawned[NSPAWNED];

static atomic_bool stop_producers, stop_churn, stop_waiters;
static atomic_bool churn_paused, churn_pause_req;
static atomic_ulong handed, taken; /* replacements handed to slots, and swapped in */
static atomic_ulong swaps, spare_cycles, app_stale, errors, lost, floods;
/* A slow task holds the overflow loop's thread while a flood is written. */
static struct urp_task blocker;
static atomic_bool flood_hold, blocker_running;


static void error_at(const char *what, long err)
{
	if (atomic_fetch_add(&errors, 1) < 20)
		say("soak: error: %s: %s\n", what, strerror(err < 0 ? -err : err));
}

static void sum_stats(struct urp_stats *sum, struct urp_stats *ovf)
{
	struct urp_driver *drvs[NLOOPS + NSPAWNED];
	struct urp_stats st;

	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < NLOOPS; i++)
		drvs[i] = urp_loop_driver(loops[i]);
	for (int i = 0; i < NSPAWNED; i++)
		drvs[NLOOPS + i] = spawned[i];
	for (int i = 0; i < NLOOPS + NSPAWNED; i++) {
		if (urp_driver_stats(drvs[i], &st) < 0)
			continue;
		if (i == OVF_LOOP && ovf)
			*ovf = st;
		sum->turns += st.turns;
		sum->events += st.events;
		sum->stale_rejects += st.stale_rejects;
		sum->wake_batches += st.wake_batches;
		sum->wakes += st.wakes;
		sum->rearms += st.rearms;
		sum->cq_overflows += st.cq_overflows;
		sum->unknown_tokens += st.unknown_tokens;
		sum->live += st.live;
		sum->enters += st.enters;
		sum->extra_enters += st.extra_enters;
		sum->poll_errors += st.poll_errors;
		sum->oneshot_files += st.oneshot_files;
	}
}

static void totals(unsigned long *produced, unsigned long *consumed)
{
	*produced = *consumed = 0;
	for (unsigned i = 0; i < nslots; i++) {
		*consumed += atomic_load(&slots[i].consumed);
		*produced += atomic_load(&slots[i].produced);
	}
}

/* ---- slots ---- */

static int open_fds(enum slot_kind kind, struct slot_fds *f)
{
	int sv[2];

	if (kind == SLOT_EVENTFD) {
		f->rfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (f->rfd < 0)
			return -errno;
		f->wfd = f->rfd;
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	f->rfd = sv[0];
	f->wfd = sv[1];
	return 0;
}

static void close_wfd(struct slot_fds *f)
{
	if (f->wfd != f->rfd)
		close(f->wfd);
}

static int new_fds(struct slot *s, struct slot_fds *f)
{
	int ret = open_fds(s->kind, f);

	if (ret < 0)
		return ret;
	ret = urp_register(s->drv, f->rfd, URP_READABLE, &f->io);
	if (ret < 0) {
		close_wfd(f);
		close(f->rfd);
	}
	return ret;
}

/* Read what is there: the tokens, or -EAGAIN. */
static ssize_t read_tokens(struct slot *s, int fd)
{
	char buf[256];
	uint64_t val;
	ssize_t n;

	if (s->kind == SLOT_EVENTFD) {
		n = read(fd, &val, sizeof(val));
		if (n == sizeof(val)) {
			atomic_fetch_add(&s->consumed, val);
			return (ssize_t)val;
		}
	} else {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			atomic_fetch_add(&s->consumed, n);
			return n;
		}
		if (n == 0)
			return -EPIPE;
	}
	return n < 0 ? -errno : -EIO;
}

static ssize_t read_op(void *arg)
{
	struct slot *s = arg;

	return read_tokens(s, s->cur.rfd);
}

/* On the consumer's thread: drain the old fd with producers held off, swap, give it back. */
static void swap_in(struct slot *s, bool clear_wakers)
{
	struct slot_fds *next = atomic_exchange(&s->next, NULL);
	struct slot_fds old;
	ssize_t n;

	if (!next)
		return;
	pthread_mutex_lock(&s->lock);
	while ((n = read_tokens(s, s->cur.rfd)) > 0)
		;
	if (n != -EAGAIN)
		error_at("drain before swap", n);
	old = s->cur;
	s->cur = *next;
	close_wfd(&old);
	pthread_mutex_unlock(&s->lock);
	free(next);
	if (clear_wakers)
		urp_io_clear_wakers(old.io);
	n = urp_deregister_close(old.io);
	if (n < 0)
		error_at("urp_deregister_close", n);
	atomic_fetch_add(&taken, 1);
	atomic_fetch_add(&swaps, 1);
}

static int slot_task(struct urp_task *task, void *arg)
{
	struct slot *s = arg;
	struct urp_waker w = urp_task_waker(task);
	struct urp_event ev;
	ssize_t n;

	swap_in(s, true);
	for (int i = 0; i < TASK_BUDGET; i++) {
		n = urp_io_try_io(s->cur.io, URP_READABLE, read_op, s);
		if (n > 0)
			continue;
		if (n != -EAGAIN) {
			error_at("task read", n);
			return URP_TASK_DONE;
		}
		n = urp_io_poll_ready(s->cur.io, URP_DIR_READ, &w, &ev);
		if (n == -EAGAIN)
			return 0;
		if (n < 0 || ev.shutdown) {
			error_at("urp_io_poll_ready", n < 0 ? n : -ESHUTDOWN);
			return URP_TASK_DONE;
		}
	}
	urp_task_wake(task);
	return 0;
}

/*
 * Hold the overflow loop's thread while the churn thread floods it: the completions pile up
 * (queued task work with DEFER_TASKRUN, or a busy thread otherwise) and the next turn finds
 * more than the CQ holds, as behind any slow task.
 */
static int blocker_task(struct urp_task *task, void *arg)
{
	long long give_up = now_ns() + 200000000ll;

	atomic_store(&blocker_running, true);
	while (atomic_load(&flood_hold) && now_ns() < give_up)
		sleep_ms(1);
	atomic_store(&blocker_running, false);
	return 0;
}

static void *loop_main(void *arg)
{
	struct urp_loop *loop = arg;
	int ret;

	report_tid();
	ret = urp_loop_run(loop);
	if (ret < 0)
		error_at("urp_loop_run", ret);
	return NULL;
}

/* A thread per slot, blocked in urp_io_wait() on a spawned driver. */
static void *waiter_main(void *arg)
{
	struct slot *s = arg;
	struct urp_event ev;
	ssize_t n;
	int ret;

	report_tid();
	while (!atomic_load(&stop_waiters)) {
		swap_in(s, false);
		/* No timeout: one would rescue a lost wakeup. Tokens wake it, the last one too. */
		ret = urp_io_wait(s->cur.io, URP_READABLE, -1, &ev);
		if (ret < 0) {
			error_at("urp_io_wait", ret);
			break;
		}
		while ((n = read_tokens(s, s->cur.rfd)) > 0)
			;
		if (n != -EAGAIN) {
			error_at("waiter read", n);
			break;
		}
		/* Refused when a completion came after the snapshot: wait again sees it. */
		if (urp_io_clear_readiness(s->cur.io, &ev) == -ESTALE)
			atomic_fetch_add(&app_stale, 1);
	}
	return NULL;
}

/* ---- producers ---- */

static bool produce(struct slot *s)
{
	uint64_t one = 1;
	bool sent = false;
	ssize_t n;

	pthread_mutex_lock(&s->lock);
	if (atomic_load(&s->produced) - atomic_load(&s->consumed) < MAX_OUTSTAND) {
		if (s->kind == SLOT_EVENTFD)
			n = write(s->cur.wfd, &one, sizeof(one));
		else
			n = write(s->cur.wfd, "t", 1);
		if (n > 0) {
			atomic_fetch_add(&s->produced, 1);
			sent = true;
		} else if (!(n < 0 && errno == EAGAIN)) {
			error_at("producer write", n < 0 ? -errno : -EIO);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return sent;
}

/* Paced: rate / NPRODUCERS tokens a second, sent every 10 ms, to random slots outside the
 * overflow loop (its floods come from the churn thread). */
static void *producer_main(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	unsigned per_tick = opt.rate / NPRODUCERS / 100;
	unsigned others = nslots - ovf_count;
	long long next = now_ns();

	report_tid();
	if (per_tick == 0)
		per_tick = 1;
	while (!atomic_load(&stop_producers)) {
		for (unsigned i = 0; i < per_tick; i++) {
			unsigned k = rand_r(&seed) % others;

			produce(&slots[k < ovf_first ? k : k + ovf_count]);
		}
		next += 10000000;
		sleep_until(next);
	}
	return NULL;
}

/* ---- churn: swaps, spare registrations, floods; all registration from this thread ---- */

static struct urp_driver *driver_at(unsigned i)
{
	return i < NLOOPS ? urp_loop_driver(loops[i]) : spawned[i - NLOOPS];
}

static void flood(void)
{
	long long give_up = now_ns() + 200000000ll;

	atomic_store(&flood_hold, true);
	urp_task_wake(&blocker);
	while (!atomic_load(&blocker_running) && now_ns() < give_up)
		sleep_ms(1);
	for (unsigned i = ovf_first; i < ovf_first + ovf_count; i++)
		produce(&slots[i]);
	atomic_store(&flood_hold, false);
	atomic_fetch_add(&floods, 1);
}

static void release_spares(struct urp_io **spare)
{
	for (unsigned k = 0; k < SPARE_HOLD; k++) {
		int ret;

		if (!spare[k])
			continue;
		ret = urp_deregister_close(spare[k]);
		if (ret < 0)
			error_at("spare deregister", ret);
		spare[k] = NULL;
		atomic_fetch_add(&spare_cycles, 1);
	}
}

static void *churn_main(void *arg)
{
	struct urp_io *spare[SPARE_HOLD] = {0};
	unsigned seed = 4242, per_tick = opt.churn / 100;
	long long next = now_ns(), next_flood = next;
	int ret;

	report_tid();
	if (per_tick == 0)
		per_tick = 1;
	while (!atomic_load(&stop_churn)) {
		if (atomic_load(&churn_pause_req)) {
			/* Paused with no spare held: the fd counts compared are taken here. */
			release_spares(spare);
			atomic_store(&churn_paused, true);
			sleep_ms(10);
			continue;
		}
		atomic_store(&churn_paused, false);
		for (unsigned i = 0; i < per_tick; i++) {
			unsigned k = rand_r(&seed) % nslots;
			struct slot *s = &slots[k];
			struct slot_fds *f;

			if (atomic_load(&s->next))
				continue;
			f = malloc(sizeof(*f));
			if (!f)
				fail("malloc", ENOMEM);
			ret = new_fds(s, f);
			if (ret < 0) {
				error_at("churn register", ret);
				free(f);
				continue;
			}
			atomic_fetch_add(&handed, 1);
			atomic_store(&s->next, f);
			/* Through a token, not urp_task_wake(): a consumer woken any other way
			 * would hide a wakeup the library lost. */
			produce(s);
		}
		/* Spare eventfds: registered here, held a while, given back. */
		for (unsigned i = 0; i < per_tick; i++) {
			unsigned k = rand_r(&seed) % SPARE_HOLD;
			int fd;

			if (spare[k]) {
				ret = urp_deregister_close(spare[k]);
				if (ret < 0)
					error_at("spare deregister", ret);
				spare[k] = NULL;
				atomic_fetch_add(&spare_cycles, 1);
				continue;
			}
			fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			if (fd < 0) {
				error_at("eventfd", -errno);
				continue;
			}
			ret = urp_register(driver_at(rand_r(&seed) % (NLOOPS + NSPAWNED)), fd,
					   URP_READABLE | URP_WRITABLE, &spare[k]);
			if (ret < 0) {
				error_at("spare register", ret);
				close(fd);
				spare[k] = NULL;
				continue;
			}
		}
		/* More completions at once than the overflow loop's CQ holds. */
		if (now_ns() >= next_flood) {
			flood();
			next_flood += FLOOD_PERIOD * 1000000000ll;
		}
		next += 10000000;
		sleep_until(next);
	}
	release_spares(spare);
	return NULL;
}

/* ---- monitor ---- */

static void check_lost(long long now)
{
	long long bound = opt.lost_after * 1000000000ll;

	for (unsigned i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];
		unsigned long c = atomic_load(&s->consumed);

		if (c >= s->mark_produced) {
			s->mark_produced = atomic_load(&s->produced);
			s->mark_ns = now;
			s->flagged = false;
		} else if (now - s->mark_ns > bound && !s->flagged) {
			s->flagged = true;
			if (atomic_fetch_add(&lost, 1) < 20) {
				uint32_t word;

				pthread_mutex_lock(&s->lock);
				word = urp_io_word(s->cur.io);
				pthread_mutex_unlock(&s->lock);
				say("soak: LOST WAKEUP slot %u (%s, %s): %lu of the tokens "
				    "produced %u s ago unconsumed; word %#x\n",
				    i, s->kind == SLOT_PAIR ? "socketpair" : "eventfd",
				    i < nloop_slots ? "loop task" : "urp_io_wait",
				    s->mark_produced - c, opt.lost_after, word);
			}
		}
	}
}

/* Tokens still unconsumed once producers stopped and the bound passed: lost too. */
static void check_drained(void)
{
	for (unsigned i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];
		unsigned long p = atomic_load(&s->produced), c = atomic_load(&s->consumed);

		if (p == c)
			continue;
		if (atomic_fetch_add(&lost, 1) < 20)
			say("soak: LOST WAKEUP slot %u: %lu tokens unconsumed at the end\n", i,
			    p - c);
	}
}

/* Wait for the churn thread to stop between steps and every replacement to be swapped in. */
static void quiesce_churn(void)
{
	atomic_store(&churn_pause_req, true);
	while (!atomic_load(&churn_paused) && !atomic_load(&stop_churn))
		sleep_ms(5);
	for (int i = 0; atomic_load(&taken) != atomic_load(&handed); i++) {
		if (i > 1000) {
			error_at("replacements not swapped in", -ETIMEDOUT);
			break;
		}
		sleep_ms(10);
	}
}

/*
 * Turn every driver until only the slots' registrations are live: an entry given back with
 * urp_deregister_close() is closed and counted out only once its last completion is reaped,
 * a turn or two later (many more under TSan).
 */
static void settle_drivers(void)
{
	struct urp_stats st;

	for (int i = 0;; i++) {
		for (int d = 0; d < NLOOPS + NSPAWNED; d++)
			urp_driver_unpark(driver_at(d));
		sleep_ms(20);
		sum_stats(&st, NULL);
		if (st.live == nslots)
			break;
		if (i == 500) {
			error_at("registrations not released", -ETIMEDOUT);
			break;
		}
	}
}

static void setup(void)
{
	struct urp_driver_opts normal = {0};
	struct urp_driver_opts ovf = {.sq_entries = 32,
				      .cq_entries = OVF_CQ,
				      .flags = URP_DRIVER_OVERCOMMIT | URP_DRIVER_TIER_COOP};
	struct rlimit rl;
	int ret;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	nloop_slots = opt.slots;
	nslots = nloop_slots + NWAITERS;
	ovf_count = nloop_slots / 8;
	ovf_first = nloop_slots - ovf_count;
	slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		fail("calloc", ENOMEM);

	for (int i = 0; i < NLOOPS; i++) {
		ret = urp_loop_new(&loops[i], i == OVF_LOOP ? &ovf : &normal);
		if (ret < 0)
			fail(urp_strerror(ret), ret);
	}
	for (int i = 0; i < NSPAWNED; i++) {
		pid_t before[MAX_TIDS], after[MAX_TIDS];
		int nb = list_tids(before, MAX_TIDS), na;

		ret = urp_driver_spawn(&spawned[i], &normal);
		if (ret < 0)
			fail(urp_strerror(ret), ret);
		na = list_tids(after, MAX_TIDS);
		for (int a = 0; a < na; a++) {
			bool seen = false;

			for (int b = 0; b < nb; b++)
				seen |= after[a] == before[b];
			if (!seen)
				add_tid(after[a]);
		}
	}

	urp_task_init(&blocker, loops[OVF_LOOP], blocker_task, NULL);
	for (unsigned i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];

		s->kind = i % 2 ? SLOT_EVENTFD : SLOT_PAIR;
		if (i >= nloop_slots)
			s->drv = spawned[(i - nloop_slots) / WAITERS_PER];
		else if (i >= ovf_first)
			s->drv = urp_loop_driver(loops[OVF_LOOP]);
		else
			s->drv = urp_loop_driver(loops[i % (NLOOPS - 1)]);
		pthread_mutex_init(&s->lock, NULL);
		ret = new_fds(s, &s->cur);
		if (ret < 0)
			fail("slot register", ret);
		if (i < nloop_slots) {
			int l = i >= ovf_first ? OVF_LOOP : (int)(i % (NLOOPS - 1));

			urp_task_init(&s->task, loops[l], slot_task, s);
			urp_task_wake(&s->task);
		}
	}
}

int main(int argc, char **argv)
{
	pthread_t waiters[NWAITERS], producers[NPRODUCERS], churn;
	long long t0, t_start, next_report, last_report;
	unsigned long p0, c0, produced, consumed, last_consumed = 0;
	long rss_start, rss_end, rss;
	int fds_boot, fds_start, fds_end, fds_down;
	struct urp_stats st, ovf;
	struct rusage ru;
	bool ok = true;
	int ret;

	parse_args(argc, argv, 4 * NLOOPS);
	fds_boot = fd_count();
	setup();
	add_tid(syscall(SYS_gettid));
	for (int i = 0; i < NLOOPS; i++) {
		if (pthread_create(&loop_threads[i], NULL, loop_main, loops[i]))
			fail("pthread_create", EAGAIN);
		collect_tid();
	}
	for (int i = 0; i < NWAITERS; i++) {
		if (pthread_create(&waiters[i], NULL, waiter_main, &slots[nloop_slots + i]))
			fail("pthread_create", EAGAIN);
		collect_tid();
	}
	for (int i = 0; i < NPRODUCERS; i++) {
		if (pthread_create(&producers[i], NULL, producer_main, (void *)(uintptr_t)i))
			fail("pthread_create", EAGAIN);
		collect_tid();
	}
	if (pthread_create(&churn, NULL, churn_main, NULL))
		fail("pthread_create", EAGAIN);
	collect_tid();
	start_alarm();
	t0 = now_ns();
	say("soak: %u s (+%u s warm-up), %u slots (%u on the overflow loop, CQ %u), %d waiter "
	    "threads, %u tokens/s, %u swaps/s, SIGALRM 1 kHz to %d threads, lost after %u s, "
	    "RSS tolerance %lu kB\n",
	    opt.seconds, opt.warmup, nslots, ovf_count, OVF_CQ, NWAITERS, opt.rate, opt.churn,
	    atomic_load(&ntids), opt.lost_after, opt.rss_tolerance_kb);

	sleep_until(t0 + opt.warmup * 1000000000ll);
	quiesce_churn();
	settle_drivers();
	rss_start = rss_kb();
	fds_start = fd_count();
	atomic_store(&churn_pause_req, false);
	while (atomic_load(&churn_paused))
		sleep_ms(1);
	totals(&p0, &c0);
	last_consumed = c0;
	say("soak: after warm-up: RSS %ld kB, %d fds open\n", rss_start, fds_start);

	t_start = now_ns();
	last_report = t_start;
	next_report = t_start + REPORT_PERIOD * 1000000000ll;
	for (long long t = t_start + 1000000000ll;; t += 1000000000ll) {
		long long now;

		sleep_until(t);
		now = now_ns();
		check_lost(now);
		if (now >= next_report || now - t_start >= opt.seconds * 1000000000ll) {
			totals(&produced, &consumed);
			sum_stats(&st, NULL);
			say("soak: %5llds produced %lu consumed %lu (%.0f/s) lost %lu swaps %lu "
			    "spares %lu overflows %llu rearms %llu signals %lu RSS %ld kB fds %d\n",
			    (now - t_start) / 1000000000ll, produced - p0, consumed - c0,
			    (double)(consumed - last_consumed) * 1e9 / (double)(now - last_report),
			    atomic_load(&lost), atomic_load(&swaps), atomic_load(&spare_cycles),
			    (unsigned long long)st.cq_overflows, (unsigned long long)st.rearms,
			    atomic_load(&sig_received), rss_kb(), fd_count());
			last_consumed = consumed;
			last_report = now;
			next_report += REPORT_PERIOD * 1000000000ll;
		}
		if (now - t_start >= opt.seconds * 1000000000ll)
			break;
	}

	/* Wind down: no new tokens, then every token must be consumed within the bound. */
	atomic_store(&stop_producers, true);
	for (int i = 0; i < NPRODUCERS; i++)
		pthread_join(producers[i], NULL);
	quiesce_churn();
	for (long long deadline = now_ns() + opt.lost_after * 1000000000ll;;) {
		totals(&produced, &consumed);
		if (produced == consumed || now_ns() > deadline)
			break;
		sleep_ms(10);
	}
	check_drained();
	settle_drivers();
	rss_end = rss_kb();
	fds_end = fd_count();
	sum_stats(&st, &ovf);

	atomic_store(&stop_churn, true);
	pthread_join(churn, NULL);
	stop_alarm();
	atomic_store(&stop_waiters, true);
	for (int i = 0; i < NWAITERS; i++) {
		produce(&slots[nloop_slots + i]);
		pthread_join(waiters[i], NULL);
	}
	for (int i = 0; i < NLOOPS; i++) {
		urp_loop_stop(loops[i]);
		pthread_join(loop_threads[i], NULL);
	}
	for (unsigned i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];

		if (i < nloop_slots)
			urp_io_clear_wakers(s->cur.io);
		ret = urp_deregister_close(s->cur.io);
		if (ret < 0)
			error_at("final deregister", ret);
		close_wfd(&s->cur);
		pthread_mutex_destroy(&s->lock);
	}
	for (int i = 0; i < NLOOPS; i++)
		urp_loop_free(loops[i]);
	for (int i = 0; i < NSPAWNED; i++)
		urp_driver_join(spawned[i]);
	free(slots);
	fds_down = fd_count();
	rss = rss_kb();
	getrusage(RUSAGE_SELF, &ru);

	say("soak: summary after %u s (+%u s warm-up)\n", opt.seconds, opt.warmup);
	say("  tokens produced %lu consumed %lu (whole run, warm-up included)\n", produced,
	    consumed);
	say("  lost wakeups %lu (bound %u s)\n", atomic_load(&lost), opt.lost_after);
	say("  swaps %lu, spare register/deregister cycles %lu, floods %lu, errors %lu\n",
	    atomic_load(&swaps), atomic_load(&spare_cycles), atomic_load(&floods),
	    atomic_load(&errors));
	say("  SIGALRM received %lu (forwarded %lu)\n", atomic_load(&sig_received),
	    atomic_load(&sig_forwarded));
	say("  driver totals: turns %llu events %llu stale_rejects %llu (waiters saw %lu) "
	    "wake_batches %llu wakes %llu\n",
	    (unsigned long long)st.turns, (unsigned long long)st.events,
	    (unsigned long long)st.stale_rejects, atomic_load(&app_stale),
	    (unsigned long long)st.wake_batches, (unsigned long long)st.wakes);
	say("    rearms %llu cq_overflows %llu enters %llu extra_enters %llu poll_errors %llu "
	    "unknown_tokens %llu oneshot_files %llu live %llu\n",
	    (unsigned long long)st.rearms, (unsigned long long)st.cq_overflows,
	    (unsigned long long)st.enters, (unsigned long long)st.extra_enters,
	    (unsigned long long)st.poll_errors, (unsigned long long)st.unknown_tokens,
	    (unsigned long long)st.oneshot_files, (unsigned long long)st.live);
	say("  overflow loop: cq_overflows %llu rearms %llu extra_enters %llu\n",
	    (unsigned long long)ovf.cq_overflows, (unsigned long long)ovf.rearms,
	    (unsigned long long)ovf.extra_enters);
	say("  RSS start %ld kB end %ld kB (growth %+ld kB, tolerance %lu kB); after teardown "
	    "%ld kB\n",
	    rss_start, rss_end, rss_end - rss_start, opt.rss_tolerance_kb, rss);
	say("  fds start %d end %d; at boot %d after teardown %d\n", fds_start, fds_end, fds_boot,
	    fds_down);
	say("  CPU %.1f s user + %.1f s system = %.2f CPUs on average\n",
	    ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	    (ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	     ru.ru_stime.tv_usec / 1e6) /
		((now_ns() - t0) / 1e9));

	if (atomic_load(&lost) || produced != consumed) {
		say("soak: FAIL: %lu lost wakeups, %lu tokens unconsumed\n", atomic_load(&lost),
		    produced - consumed);
		ok = false;
	}
	if (rss_end - rss_start > (long)opt.rss_tolerance_kb) {
		say("soak: FAIL: RSS grew by %ld kB\n", rss_end - rss_start);
		ok = false;
	}
	if (fds_end != fds_start || fds_down != fds_boot) {
		say("soak: FAIL: fd count changed\n");
		ok = false;
	}
	if (ovf.cq_overflows == 0 || ovf.rearms == 0) {
		say("soak: FAIL: the overflow loop never overflowed\n");
		ok = false;
	}
	if (atomic_load(&errors) || st.unknown_tokens || st.poll_errors) {
		say("soak: FAIL: %lu errors, %llu unknown tokens, %llu poll errors\n",
		    atomic_load(&errors), (unsigned long long)st.unknown_tokens,
		    (unsigned long long)st.poll_errors);
		ok = false;
	}
	say("soak: %s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
