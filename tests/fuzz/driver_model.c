/* SPDX-License-Identifier: MIT */
/*
 * The shared half of the driver fuzz targets (driver_model.h): the kernel model of each entry's
 * fd, the public-API ops on the real driver, and the settle and end-of-input properties.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "driver_model.h"

#define MAX_QUEUED   4096 /* bytes queued per fd: far below a pipe's or socket's buffer */
#define QUICK_TURNS  4
#define SLOW_TURNS   50
#define SLOW_TURN_MS 2

struct drv_model model;

static void count_wake(void *arg)
{
	struct counted_waker *w = arg;

	FUZZ_CHECK(!w->gone, "a waker of a deregistered entry was called");
	w->called++;
	FUZZ_CHECK(w->called <= w->stored, "waker called %u times, stored %u", w->called,
		   w->stored);
}

static int task_run(struct urp_task *task, void *arg)
{
	struct entry *e = arg;
	struct urp_waker w = urp_task_waker(task);
	struct urp_event ev;

	if (e->task_waiting && urp_readiness_poll(&e->task_fut, &w, &ev) == 0)
		e->task_waiting = false;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* What the kernel would report for the entry's fd, as ready bits. */
static unsigned kernel_ready(const struct entry *e)
{
	unsigned r = 0;

	switch (e->kind) {
	case K_PIPE_R:
		r |= e->queued ? URP_READABLE : 0;
		r |= e->hup ? URP_READ_CLOSED : 0;
		break;
	case K_SOCK:
		r |= e->queued || e->hup ? URP_READABLE : 0;
		r |= e->hup ? URP_READ_CLOSED : 0;
		r |= URP_WRITABLE;
		break;
	case K_PIPE_W:
		r |= e->hup ? URP_ERROR : URP_WRITABLE;
		break;
	case K_EVENTFD:
		r |= (e->queued ? URP_READABLE : 0) | URP_WRITABLE;
		break;
	default:
		break;
	}
	return r;
}

/* The bits the entry's word must show once the driver caught up: what its poll asks for
 * (READABLE, WRITABLE) plus the closed and error states that arrive unasked. */
static unsigned expected_bits(const struct entry *e)
{
	unsigned asked = URP_READ_CLOSED | URP_ERROR;

	if (e->interest & URP_READABLE)
		asked |= URP_READABLE;
	if (e->interest & URP_WRITABLE)
		asked |= URP_WRITABLE;
	return kernel_ready(e) & asked;
}

/* The word is ready for mask, or shut down (which ends every wait). */
static bool word_sees(uint32_t word, unsigned mask)
{
	return (urp_word_ready(word) & mask) || urp_word_shutdown(word);
}

static unsigned dir_mask(int dir)
{
	return dir == URP_DIR_READ ? URP_READABLE | URP_READ_CLOSED
				   : URP_WRITABLE | URP_WRITE_CLOSED;
}

/*
 * Has the driver given up on the entry's poll (docs/design.md, "Special endings": a poll that fails or cannot be armed
 * leaves the entry ERROR and shut down)? Before urp_driver_shutdown() the shutdown bit tells;
 * after it, an entry shut down with ERROR may be either, and is given the benefit of the doubt.
 */
static bool poll_dead(struct entry *e, uint32_t word)
{
	bool down = urp_word_shutdown(word), error = urp_word_ready(word) & URP_ERROR;

	if (down && !model.shut) {
		FUZZ_CHECK(model.polls_may_fail, "entry shut down by the driver: its poll died");
		FUZZ_CHECK(error, "entry shut down by the driver without ERROR (word %#x)",
			   (unsigned)word);
		if (!e->failed)
			model.failed_seen++;
		e->failed = true;
	}
	return e->failed || (model.polls_may_fail && down && error);
}

/* Does entry e satisfy every settle property now? why names the first that does not. */
static bool entry_settled(struct entry *e, const char **why)
{
	uint32_t word = urp_io_word(e->io);
	unsigned want = expected_bits(e), read_mask = urp_ready_from_interest(URP_READABLE);
	struct urp_waker w = { count_wake, &e->fut_waker };
	struct urp_event ev;
	int dir;

	if (!poll_dead(e, word) && (word & want) != want) {
		*why = "readiness lost: the word lacks what the kernel holds";
		return false;
	}
	for (dir = URP_DIR_READ; dir <= URP_DIR_WRITE; dir++) {
		if (word_sees(word, dir_mask(dir)) && e->slot[dir]->called < e->slot[dir]->stored) {
			*why = "a slot waker on a ready direction was not called";
			return false;
		}
	}
	if (e->fut_waiting && word_sees(word, read_mask)) {
		if (e->fut_waker.called < e->fut_waker.stored) {
			*why = "a waiting future on a ready entry was not woken";
			return false;
		}
		FUZZ_CHECK(urp_readiness_poll(&e->fut, &w, &ev) == 0, "woken future not done");
		e->fut_waiting = false;
	}
	if (e->task_waiting && word_sees(word, read_mask)) {
		*why = "a task waiting on a ready entry has not run";
		return false;
	}
	return true;
}

static void loop_pass(void)
{
	urp_loop_stop(model.loop);
	FUZZ_CHECK(urp_loop_run(model.loop) == 0, "loop run failed");
}

void drv_model_turn(int timeout_ms)
{
	int ret = urp_driver_turn(model.drv, timeout_ms);

	FUZZ_CHECK(ret >= 0, "turn(%d) returned %d", timeout_ms, ret);
}

void drv_model_settle(void)
{
	const char *why = NULL;
	unsigned turn, i;
	bool ok = false;

	for (turn = 0; turn < QUICK_TURNS + SLOW_TURNS && !ok; turn++) {
		drv_model_turn(turn < QUICK_TURNS ? 0 : SLOW_TURN_MS);
		loop_pass();
		ok = true;
		for (i = 0; i < DRV_MODEL_ENTRIES && ok; i++)
			if (model.ents[i].live)
				ok = entry_settled(&model.ents[i], &why);
	}
	FUZZ_CHECK(ok, "entry %u: %s", i - 1, why);
}

static int make_fds(struct entry *e)
{
	int fds[2];

	switch (e->kind) {
	case K_PIPE_R:
	case K_PIPE_W:
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
			return -errno;
		e->fd = e->kind == K_PIPE_R ? fds[0] : fds[1];
		e->peer = e->kind == K_PIPE_R ? fds[1] : fds[0];
		return 0;
	case K_SOCK:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
			return -errno;
		e->fd = fds[0];
		e->peer = fds[1];
		return 0;
	default:
		e->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		e->peer = -1;
		return e->fd < 0 ? -errno : 0;
	}
}

static void do_register(struct entry *e, unsigned kind, unsigned extra)
{
	static const unsigned base[K_COUNT] = { URP_READABLE, URP_WRITABLE, URP_READABLE,
						URP_READABLE };
	int ret;

	if (e->live)
		return;
	/* A deregistered entry may still hold its fds (deregister leaves closing to us). */
	close_fd(&e->fd);
	close_fd(&e->peer);
	memset(e, 0, sizeof(*e));
	e->kind = (enum drv_model_kind)(kind % K_COUNT);
	e->interest = base[e->kind] | (extra & (URP_WRITABLE | URP_PRIORITY | URP_ERROR));
	if (make_fds(e) < 0)
		return;
	ret = urp_register(model.drv, e->fd, e->interest, &e->io);
	if (model.shut) {
		FUZZ_CHECK(ret == -ESHUTDOWN, "register after shutdown returned %d", ret);
		close_fd(&e->fd);
		close_fd(&e->peer);
		return;
	}
	FUZZ_CHECK(ret == 0, "register returned %d", ret);
	e->slot[0] = calloc(1, sizeof(*e->slot[0]));
	e->slot[1] = calloc(1, sizeof(*e->slot[1]));
	FUZZ_CHECK(e->slot[0] && e->slot[1], "out of memory");
	e->live = true;
	urp_task_init(&e->task, model.loop, task_run, e);
}

static void do_write(struct entry *e, unsigned n)
{
	char buf[64] = { 0 };
	uint64_t count;
	int fd = e->kind == K_PIPE_W ? e->fd : e->peer;

	n = n % sizeof(buf) + 1;
	/* After a hang-up there is no one to write to (and a write would raise SIGPIPE). */
	if (e->queued + n > MAX_QUEUED || e->hup)
		return;
	if (e->kind == K_EVENTFD) {
		count = n;
		FUZZ_CHECK(write(e->fd, &count, sizeof(count)) == sizeof(count), "eventfd write");
	} else {
		FUZZ_CHECK(write(fd, buf, n) == (ssize_t)n, "write");
	}
	e->queued += n;
}

static ssize_t read_op(void *arg)
{
	struct entry *e = arg;
	char buf[MAX_QUEUED];
	ssize_t n = read(e->fd, buf, sizeof(buf));

	e->read_ran = true;
	return n < 0 ? -errno : n;
}

/* The clear: read through try_io, which clears the snapshot's bits when the read finds
 * nothing. The kernel model says what the read must find. */
static void do_read(struct entry *e)
{
	uint32_t word = urp_io_word(e->io);
	ssize_t ret;

	if (e->kind == K_PIPE_W)
		return;
	e->read_ran = false;
	ret = urp_io_try_io(e->io, URP_READABLE, read_op, e);
	/* Not called: the snapshot was shut down or not ready, and try_io says which. */
	if (!e->read_ran) {
		FUZZ_CHECK(ret == (word >> 31 ? -ESHUTDOWN : -EAGAIN),
			   "try_io %zd without calling op, word %#x", ret, (unsigned)word);
		return;
	}
	if (e->queued)
		FUZZ_CHECK(ret == (e->kind == K_EVENTFD ? 8 : (ssize_t)e->queued),
			   "read %zd with %u queued", ret, e->queued);
	else
		FUZZ_CHECK(ret == (e->hup ? 0 : -EAGAIN), "read %zd from an empty fd", ret);
	e->queued = 0;
}

static void do_hangup(struct entry *e)
{
	if (e->kind == K_EVENTFD || e->hup)
		return;
	if (e->kind == K_SOCK)
		shutdown(e->peer, SHUT_WR);
	else
		close_fd(&e->peer);
	e->hup = true;
}

static void do_poll_ready(struct entry *e, int dir)
{
	struct urp_waker w = { count_wake, e->slot[dir] };
	struct urp_event ev;
	unsigned pending = e->slot[dir]->stored - e->slot[dir]->called;
	int ret;

	/* A second store replaces the first (the last poller wins): the first will never be
	 * called, so it is no longer owed. */
	e->slot[dir]->stored -= pending;
	e->slot[dir]->stored++;
	ret = urp_io_poll_ready(e->io, dir, &w, &ev);
	FUZZ_CHECK(ret == 0 || ret == -EAGAIN, "poll_ready returned %d", ret);
	FUZZ_CHECK((ret == 0) == word_sees(urp_io_word(e->io), dir_mask(dir)), "poll_ready %d",
		   ret);
	if (ret == 0)
		e->slot[dir]->stored--;
}

static void cancel_futures(struct entry *e)
{
	urp_readiness_cancel(&e->fut);
	if (e->fut_waiting)
		e->fut_waker.stored = e->fut_waker.called;
	e->fut_waiting = false;
	urp_readiness_cancel(&e->task_fut);
	e->task_waiting = false;
}

static void do_future(struct entry *e)
{
	struct urp_waker w = { count_wake, &e->fut_waker };
	struct urp_event ev;
	int ret;

	cancel_futures(e);
	urp_readiness_init(&e->fut, e->io, URP_READABLE);
	e->fut_waker.stored++;
	ret = urp_readiness_poll(&e->fut, &w, &ev);
	FUZZ_CHECK(ret == 0 || ret == -EAGAIN, "future poll returned %d", ret);
	e->fut_waiting = ret == -EAGAIN;
	if (ret == 0)
		e->fut_waker.stored--;
}

static void do_task(struct entry *e)
{
	struct urp_waker w = urp_task_waker(&e->task);
	struct urp_event ev;

	if (e->task_waiting)
		return;
	urp_readiness_init(&e->task_fut, e->io, URP_READABLE);
	e->task_waiting = urp_readiness_poll(&e->task_fut, &w, &ev) == -EAGAIN;
}

/* This thread turns the driver (drv_model_begin() claims it), where a wait could never be
 * woken: -EDEADLK, whatever the word (core_ops checks the wait itself on detached entries). */
static void do_wait0(struct entry *e)
{
	struct urp_event ev;
	int ret = urp_io_wait(e->io, e->interest, 0, &ev);

	FUZZ_CHECK(ret == -EDEADLK, "urp_io_wait(0) on the turning thread returned %d", ret);
}

static void do_deregister(struct entry *e, uint8_t how)
{
	int dir;

	cancel_futures(e);
	/* Slot wakers stay stored, on purpose: once deregistered the entry is gone for the
	 * caller, who may free a waker's arg, so the driver must never call one again (not for
	 * a completion that lands before the poll's final CQE, nor at shutdown). */
	for (dir = URP_DIR_READ; dir <= URP_DIR_WRITE; dir++) {
		e->slot[dir]->gone = true;
		model.gone[model.nr_gone++] = e->slot[dir];
		e->slot[dir] = NULL;
	}
	/* A task already woken sits on the loop's queue: let it run before its storage goes. */
	loop_pass();
	if (how & 1) {
		FUZZ_CHECK(urp_deregister_close(e->io) == 0, "deregister_close");
		e->fd = -1;
	} else {
		FUZZ_CHECK(urp_deregister(e->io) == 0, "deregister");
	}
	/* A completion after the removal was asked for: it must land on a live entry or none. */
	if (how & 2 && e->peer >= 0 && e->kind != K_PIPE_W && !e->hup)
		(void)!write(e->peer, "x", 1);
	if (how & 4)
		close_fd(&e->fd);
	e->live = false;
}

static void do_shutdown(void)
{
	unsigned i;

	urp_driver_shutdown(model.drv);
	model.shut = true;
	for (i = 0; i < DRV_MODEL_ENTRIES; i++) {
		struct entry *e = &model.ents[i];

		if (!e->live)
			continue;
		FUZZ_CHECK(urp_io_word(e->io) >> 31, "entry %u not shut down", i);
		FUZZ_CHECK(e->slot[0]->called == e->slot[0]->stored &&
				   e->slot[1]->called == e->slot[1]->stored &&
				   e->fut_waker.called == e->fut_waker.stored,
			   "entry %u: shutdown left a waker uncalled", i);
	}
}

void drv_model_op(enum drv_model_op op, struct entry *e, struct fuzz_in *in)
{
	if (op != OP_REGISTER && op != OP_TURN && op != OP_SETTLE && op != OP_SHUTDOWN &&
	    !e->live)
		return;
	switch (op) {
	case OP_REGISTER:
		do_register(e, fuzz_u8(in), fuzz_u8(in));
		break;
	case OP_WRITE:
		do_write(e, fuzz_u8(in));
		break;
	case OP_READ:
		do_read(e);
		break;
	case OP_HANGUP:
		do_hangup(e);
		break;
	case OP_TURN:
		drv_model_turn(0);
		break;
	case OP_POLL_READY:
		do_poll_ready(e, fuzz_u8(in) & 1 ? URP_DIR_WRITE : URP_DIR_READ);
		break;
	case OP_FUTURE:
		do_future(e);
		break;
	case OP_CANCEL:
		cancel_futures(e);
		break;
	case OP_TASK:
		do_task(e);
		break;
	case OP_WAIT0:
		do_wait0(e);
		break;
	case OP_DEREGISTER:
		do_deregister(e, fuzz_u8(in));
		break;
	case OP_SETTLE:
		drv_model_settle();
		break;
	case OP_SHUTDOWN:
		do_shutdown();
		break;
	default:
		break;
	}
}

void drv_model_begin(const struct urp_driver_opts *opts)
{
	unsigned i;

	if (!model.loop) {
		FUZZ_CHECK(urp_loop_new(&model.loop, opts) == 0, "no loop");
		model.drv = urp_loop_driver(model.loop);
		/* Claim the driver for this thread: shutdown is then synchronous (docs/design.md, "Threads and unpark"). */
		drv_model_turn(0);
	}
	model.fds_before = fuzz_open_fds();
	model.shut = false;
	model.failed_seen = 0;
	memset(model.ents, 0, sizeof(model.ents));
	for (i = 0; i < DRV_MODEL_ENTRIES; i++)
		model.ents[i].fd = model.ents[i].peer = -1;
}

struct urp_stats drv_model_finish(void)
{
	struct urp_stats st;
	unsigned i, turn;

	for (i = 0; i < DRV_MODEL_ENTRIES; i++) {
		if (model.ents[i].live)
			do_deregister(&model.ents[i], 0);
		close_fd(&model.ents[i].fd);
		close_fd(&model.ents[i].peer);
	}
	for (turn = 0; turn < SLOW_TURNS; turn++) {
		drv_model_turn(turn < QUICK_TURNS ? 0 : SLOW_TURN_MS);
		loop_pass();
		urp_driver_stats(model.drv, &st);
		if (st.live == 0)
			break;
	}
	FUZZ_CHECK(st.live == 0, "%lu entries still live after deregistering all",
		   (unsigned long)st.live);
	/* Every entry freed: no one holds the slot wakers of deregistered entries any more. */
	while (model.nr_gone)
		free(model.gone[--model.nr_gone]);
	FUZZ_CHECK(fuzz_open_fds() == model.fds_before, "%d fds open, %d before the input",
		   fuzz_open_fds(), model.fds_before);
	if (model.shut) {
		urp_loop_free(model.loop);
		model.loop = NULL;
		model.drv = NULL;
	}
	return st;
}
