/* SPDX-License-Identifier: MIT */
/*
 * Ring mode: io_uring does the I/O, the readiness words still decide.
 *
 * A ring-mode registration has no poll. A multishot recv takes buffers from the driver's
 * provided-buffer ring; each data completion queues its buffer on the entry and Sets READABLE
 * (tick + 1) exactly as a poll completion would, so a take that found the queue empty clears
 * READABLE with its snapshot's tick and a receive that raced it makes that clear stale. Sends
 * are queued per entry and go out one SQE at a time (a later send of a socket never overtakes
 * one the kernel parked), as SQEs of the next turn's io_uring_enter(): a send of the head, or
 * a sendmsg of up to URP__SENDV_MAX records when more are queued, so that a socket's queue goes
 * out in one enter. WRITABLE means "fewer than send_hwm bytes queued", Set again (and the
 * writers woken) when a completion brings the queue below it or empties it.
 *
 * The buffers: a buffer is in the ring, or out (queued on an entry, taken, or being sent). A
 * release adds it to the ring at once; the kernel sees the additions when the next turn starts
 * (one store of the ring's tail for all of them). An entry holding buf_cap queued buffers
 * pauses its recv (a cancel; the data waits in the socket) until a take brings it below; a recv
 * that ends with -ENOBUFS (the ring is empty) waits on the starved list and is re-armed, oldest
 * first, once buffers came back.
 *
 * The SQEs that name an entry's fd (its recv, its sends) are prepared only at the start of a
 * turn, after the turn's deregistrations were applied, never when they are asked for: the fd
 * may be closed as soon as urp_deregister() returns and its number reused at once, and the
 * kernel looks the number up when it is submitted. An SQE prepared before the deregistration
 * would go out with the next turn's enter on whatever file the number names then (a send's
 * bytes to another connection, a recv taking its data). Until then the entry waits on the
 * flush list; the submission is the same enter as before.
 *
 * Everything here runs on the turning thread: the ring's SQEs need it (SINGLE_ISSUER), and so
 * the queues need no lock. This file: the buffer ring and its probe, the recv, an entry's
 * lifetime, the turn's start, registration and takes; ring_send.c: the send queue and its
 * calls; ring_mode.h: what the two share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/atomic.h"
#include "../core/debug.h"
#include "../core/ready.h"
#include "../core/word.h"
#include "ring.h"
#include "ring_mode.h"
#include "tsan.h"

#define DEFAULT_BUF_COUNT 512u
#define DEFAULT_BUF_SIZE  16384u
#define DEFAULT_BUF_CAP	  8u
#define DEFAULT_SEND_HWM  65536u

/* ---- the provided-buffer ring ---- */

/* What ring_mode_probe() found. */
#define PROBE_RING  0x1 /* buffer rings and multishot recv: ring mode works */
#define PROBE_LIMIT 0x2 /* a multishot recv ends at a byte limit (sqe->optlen, Linux 6.17) */

/* One multishot recv on a socketpair with `bytes` waiting, at most `limit` bytes (0: none);
 * its first CQE's flags, or 0 when refused or it did not come. */
static unsigned probe_recv(struct io_uring *ring, unsigned bytes, unsigned limit)
{
	struct __kernel_timespec second = { 1, 0 };
	static const char data[2] = "pp";
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	unsigned flags = 0;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	sqe = io_uring_get_sqe(ring);
	if (sqe && write(sv[1], data, bytes) == (ssize_t)bytes) {
		io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = URP__BGID;
		/* optlen, which liburing 2.3 does not name, shares file_index's place. */
		sqe->file_index = limit;
		io_uring_sqe_set_data64(sqe, limit + 1);
		/* A CQE of the previous probe's recv (its socket closed: EOF) may come first. */
		while (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &second, NULL) >= 0) {
			bool ours = cqe->user_data == limit + 1;

			if (ours && cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER))
				flags = cqe->flags;
			io_uring_cqe_seen(ring, cqe);
			if (ours)
				break;
		}
	}
	/* The ring's exit cancels a recv still armed. */
	close(sv[0]);
	close(sv[1]);
	return flags;
}

/*
 * What this kernel has of what ring mode needs: buffer rings (5.19) and multishot recv with
 * buffer selection (6.0), and whether a multishot recv takes a byte limit (6.17: older
 * kernels refuse the field with -EINVAL). Asked of a small ring of its own (liburing's calls
 * straight: a ring the driver owns alone, not the driver's behind uring/ring.h), with two
 * one-byte buffers: a recv with a byte waiting must come back with it, its buffer and
 * IORING_CQE_F_MORE; one limited to 1 byte, with 2 waiting, must end after the first.
 */
static unsigned ring_mode_probe(void)
{
	struct io_uring_buf_ring *br = NULL;
	struct io_uring_buf_reg reg = { 0 };
	struct io_uring ring;
	unsigned found = 0, flags;
	char buf[2];

	if (io_uring_queue_init(4, &ring, 0) < 0)
		return 0;
	if (posix_memalign((void **)&br, 4096, 4096))
		goto out_exit;
	io_uring_buf_ring_init(br);
	reg.ring_addr = (unsigned long)br;
	reg.ring_entries = 2;
	reg.bgid = URP__BGID;
	if (io_uring_register_buf_ring(&ring, &reg, 0) < 0)
		goto out_free;
	io_uring_buf_ring_add(br, buf, 1, 0, io_uring_buf_ring_mask(2), 0);
	io_uring_buf_ring_add(br, buf + 1, 1, 1, io_uring_buf_ring_mask(2), 1);
	io_uring_buf_ring_advance(br, 2);
	flags = probe_recv(&ring, 1, 0);
	if (flags & IORING_CQE_F_MORE) {
		found = PROBE_RING;
		flags = probe_recv(&ring, 2, 1);
		if (flags && !(flags & IORING_CQE_F_MORE))
			found |= PROBE_LIMIT;
	}
	io_uring_unregister_buf_ring(&ring, URP__BGID);
out_free:
	free(br);
out_exit:
	io_uring_queue_exit(&ring);
	return found;
}

int urp__ring_opts_check(const struct urp_driver_opts *opts)
{
	unsigned count = opts && opts->buf_count ? opts->buf_count : DEFAULT_BUF_COUNT;
	unsigned cap = opts && opts->buf_cap ? opts->buf_cap : 1;

	/* The kernel wants a power of two up to 32768 entries; buffer ids are 16 bits. */
	if ((count & (count - 1)) || count > 32768 || cap > count ||
	    (opts && opts->buf_size > (1u << 30)) || (opts && opts->send_hwm > (1u << 30)))
		return -EINVAL;
	return 0;
}

/* The ring, set up when the first ring-mode registration comes (on the turning thread, or
 * before the first turn): poll-only drivers spend nothing on it. 0 or -errno. */
static int bufring_init(struct urp_driver *drv)
{
	const struct urp_driver_opts *opts = &drv->ring_opts;
	struct urp__bufring *ring = &drv->bufring;
	struct io_uring_buf_reg reg = { 0 };
	unsigned i, probe;
	size_t ring_bytes;
	int ret;

	ring->count = opts->buf_count ? opts->buf_count : DEFAULT_BUF_COUNT;
	ring->size = opts->buf_size ? opts->buf_size : DEFAULT_BUF_SIZE;
	ring->cap = opts->buf_cap ? opts->buf_cap
				  : DEFAULT_BUF_CAP < ring->count ? DEFAULT_BUF_CAP : ring->count;
	ring->send_hwm = opts->send_hwm ? opts->send_hwm : DEFAULT_SEND_HWM;
	probe = ring_mode_probe();
	if (!(probe & PROBE_RING))
		return -EOPNOTSUPP;
	ring->recv_limit = probe & PROBE_LIMIT;
	ring_bytes = (size_t)ring->count * sizeof(struct io_uring_buf);
	if (posix_memalign((void **)&ring->br, 4096, ring_bytes < 4096 ? 4096 : ring_bytes))
		return -ENOMEM;
	/* Pages of the buffers are touched only when the kernel first writes into them. */
	ring->mem = aligned_alloc(4096, ((size_t)ring->count * ring->size + 4095) & ~(size_t)4095);
	ring->bufs = calloc(ring->count, sizeof(*ring->bufs));
	if (!ring->mem || !ring->bufs) {
		ret = -ENOMEM;
		goto out_free;
	}
	io_uring_buf_ring_init(ring->br);
	reg.ring_addr = (unsigned long)ring->br;
	reg.ring_entries = ring->count;
	reg.bgid = URP__BGID;
	ret = urp__ring_register_buf_ring(&drv->ring, &reg);
	if (ret < 0)
		goto out_free;
	ring->mask = (unsigned)io_uring_buf_ring_mask(ring->count);
	/* Every buffer starts out of the ring; the fill puts each in. */
	urp__count_local(&ring->out, ring->count);
	for (i = 0; i < ring->count; i++) {
		ring->bufs[i].drv = drv;
		ring->bufs[i].bid = (uint16_t)i;
		ring->bufs[i].next = URP__BID_NONE;
		urp__buf_return(ring, &ring->bufs[i]);
	}
	io_uring_buf_ring_advance(ring->br, (int)ring->returned);
	ring->returned = 0;
	return 0;

out_free:
	free(ring->bufs);
	free(ring->mem);
	free(ring->br);
	memset(ring, 0, sizeof(*ring));
	return ret;
}

void urp__bufring_free(struct urp_driver *drv)
{
	struct urp__bufring *ring = &drv->bufring;
	struct urp__sendv *v;

	while ((v = ring->sendv_free)) {
		ring->sendv_free = v->next;
		free(v);
	}
	free(ring->bufs);
	free(ring->mem);
	free(ring->br);
	memset(ring, 0, sizeof(*ring));
}

/* ---- the recv ---- */

static struct urp__rbuf *buf_of(struct urp_driver *drv, unsigned bid)
{
	return &drv->bufring.bufs[bid];
}

/* A recv is to run and is not armed: neither ended (FIN, error), nor waiting for buffers, nor
 * paused at the cap, nor deregistered. */
static bool recv_wanted(const struct urp_driver *drv, const struct urp__ring_reg *rr)
{
	return !(rr->rstate & (URP__RECV_ARMED | URP__RECV_STARVED | URP__RECV_DONE |
			       URP__RECV_PAUSED)) &&
	       !(rr->reg.state & URP__REG_GONE) && rr->rq_count < drv->bufring.cap;
}

/* Prepare the multishot recv's SQE (at a turn's start). */
static void recv_prep(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	struct io_uring_sqe *sqe = urp__get_sqe(drv);
	struct urp__bufring *ring = &drv->bufring;
	struct urp__reg *reg = &rr->reg;

	if (!sqe) {
		urp__poll_failed(drv, reg, -EBUSY);
		return;
	}
	io_uring_prep_recv_multishot(sqe, reg->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = URP__BGID;
	/* Where the kernel can, the recv ends by itself once the entry's room under its cap is
	 * full (a CQE without IORING_CQE_F_MORE): a burst in one task_work run cannot take more
	 * of the ring than that. Short reads fill buffers faster than bytes: recv_pause() then. */
	if (ring->recv_limit) {
		uint64_t room = (uint64_t)(ring->cap - rr->rq_count) * ring->size;

		sqe->file_index = room > 0x7fffffffu ? 0x7fffffffu : (uint32_t)room;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)reg | URP__KIND_RECV);
	reg->polls_armed++;
	rr->rstate |= URP__RECV_ARMED;
	urp__tsan_release(reg);
}

void urp__ring_arm(struct urp_driver *drv, struct urp__reg *reg)
{
	urp__ring_flush_due(drv, urp__ring_reg_of(reg));
}

/* Stop the recv of an entry that holds buf_cap buffers: its final CQE (-ECANCELED) comes
 * later; until a take drains the queue, the data waits in the socket. */
static void recv_pause(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	struct io_uring_sqe *sqe = urp__get_sqe(drv);

	/* No SQE: the recv goes on, and the queue grows past the cap until the next completion
	 * tries again. Bounded by the ring itself (-ENOBUFS). */
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&rr->reg | URP__KIND_RECV, 0);
	io_uring_sqe_set_data64(sqe, URP__TOKEN_CTL);
	rr->rstate |= URP__RECV_PAUSED;
	urp__count_local(&drv->st.paused, 1);
}

static void starve(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	struct urp__bufring *ring = &drv->bufring;

	rr->rstate |= URP__RECV_STARVED;
	rr->starved_next = NULL;
	if (ring->starved_last)
		ring->starved_last->starved_next = rr;
	else
		ring->starved = rr;
	ring->starved_last = rr;
	urp__count_local(&drv->st.enobufs, 1);
}

/* The recv is not running (it ended, the ring has buffers again, a take made room): arm it
 * again, or pause it while buf_cap buffers are queued (a take resumes it). */
static void recv_resume(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	if ((rr->rstate & (URP__RECV_ARMED | URP__RECV_STARVED | URP__RECV_DONE)) ||
	    (rr->reg.state & URP__REG_GONE))
		return;
	if (rr->rq_count >= drv->bufring.cap) {
		if (!(rr->rstate & URP__RECV_PAUSED))
			urp__count_local(&drv->st.paused, 1);
		rr->rstate |= URP__RECV_PAUSED;
		return;
	}
	rr->rstate &= (uint8_t)~URP__RECV_PAUSED;
	urp__ring_flush_due(drv, rr);
	urp__count_local(&drv->st.rearms, 1);
}

static int recv_cqe(struct urp_driver *drv, struct urp__ring_reg *rr,
		    const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE, gone = rr->reg.state & URP__REG_GONE;
	struct urp__reg *reg = &rr->reg;
	int events = 0;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		struct urp__rbuf *b = buf_of(drv, cqe->flags >> IORING_CQE_BUFFER_SHIFT);

		urp__count_local(&drv->bufring.out, 1);

		if (cqe->res > 0 && !gone) {
			b->out = true;
			b->pub.data = urp__buf_addr(&drv->bufring, b->bid);
			b->pub.len = (size_t)cqe->res;
			b->next = URP__BID_NONE;
			if (rr->rq_count++)
				buf_of(drv, rr->rq_tail)->next = b->bid;
			else
				rr->rq_head = b->bid;
			rr->rq_tail = b->bid;
			urp__count_local(&drv->st.recv_bufs, 1);
			urp__count_local(&drv->st.recv_bytes, (uint64_t)cqe->res);
			urp__io_set_readiness(&reg->io, URP_READABLE);
			urp__ready_add(drv, reg);
			events = 1;
			if (more && rr->rq_count >= drv->bufring.cap &&
			    !(rr->rstate & URP__RECV_PAUSED))
				recv_pause(drv, rr);
		} else {
			/* Gone, or a buffer the kernel picked for nothing: straight back. */
			urp__buf_return(&drv->bufring, b);
		}
	} else if (cqe->res == 0 && !gone) {
		/* The peer's FIN: after the buffers already queued, the take says EOF. */
		rr->rstate |= URP__RECV_DONE;
		urp__io_set_readiness(&reg->io, URP_READ_CLOSED);
		urp__ready_add(drv, reg);
		events = 1;
	} else if (cqe->res == -ENOBUFS && !gone) {
		starve(drv, rr);
	} else if (cqe->res < 0 && cqe->res != -ECANCELED && !gone) {
		rr->rstate |= URP__RECV_DONE;
		rr->recv_err = (uint8_t)-cqe->res;
		urp__io_set_readiness(&reg->io, URP_ERROR | URP_READ_CLOSED | URP_WRITE_CLOSED);
		urp__ready_add(drv, reg);
		events = 1;
	}
	if (!more) {
		reg->polls_armed--;
		rr->rstate &= (uint8_t)~URP__RECV_ARMED;
		/* At the cap (its byte limit, or a cancel of ours, ended it): paused until a take
		 * brings it below. Otherwise (the CQ overflowed, say, or takes made room meanwhile)
		 * it is re-armed now, as a poll that ended is. */
		recv_resume(drv, rr);
		urp__reg_request_ended(drv, reg);
	}
	return events;
}

/* The entry is freed (its requests all ended, or the ring exited): the buffers queued on it
 * go back, and so does everything queued to send. Buffers the caller took stay the caller's
 * until urp_buf_release(). */
void urp__ring_free_reg(struct urp_driver *drv, struct urp__reg *reg)
{
	struct urp__ring_reg *rr = urp__ring_reg_of(reg);

	while (rr->rq_count) {
		struct urp__rbuf *b = buf_of(drv, rr->rq_head);

		rr->rq_head = b->next;
		rr->rq_count--;
		urp__buf_return(&drv->bufring, b);
	}
	if (rr->rstate & URP__RECV_STARVED) {
		struct urp__ring_reg **pp = &drv->bufring.starved, *prev = NULL;

		for (; *pp; prev = *pp, pp = &(*pp)->starved_next) {
			if (*pp != rr)
				continue;
			*pp = rr->starved_next;
			if (drv->bufring.starved_last == rr)
				drv->bufring.starved_last = prev;
			break;
		}
		rr->rstate &= (uint8_t)~URP__RECV_STARVED;
	}
	/* Freed while on the flush list (urp_driver_free(), or a shutdown's take of the commands
	 * from a waker retired it between two turns' starts): off it. */
	if (rr->rstate & URP__RING_FLUSH) {
		if (rr->flush_prev)
			rr->flush_prev->flush_next = rr->flush_next;
		else
			drv->flush = rr->flush_next;
		if (rr->flush_next)
			rr->flush_next->flush_prev = rr->flush_prev;
		rr->rstate &= (uint8_t)~URP__RING_FLUSH;
	}
	urp__send_drop(drv, rr, true);
	urp__sendv_done(drv, rr);
}

int urp__ring_dispatch(struct urp_driver *drv, struct urp__reg *reg, unsigned kind,
		       const struct io_uring_cqe *cqe)
{
	struct urp__ring_reg *rr = urp__ring_reg_of(reg);

	if (kind == URP__KIND_RECV)
		return recv_cqe(drv, rr, cqe);
	return urp__send_cqe(drv, rr, cqe);
}

void urp__ring_turn_start(struct urp_driver *drv)
{
	struct urp__bufring *ring = &drv->bufring;
	struct urp__ring_reg *rr, *due;

	if (!ring->br)
		return;
	if (ring->returned) {
		io_uring_buf_ring_advance(ring->br, (int)ring->returned);
		ring->returned = 0;
	}
	/* The ring holds buffers (some came back, or all had come back before the -ENOBUFS was
	 * reaped): the recvs that ran dry go again, oldest first, as many as there are buffers
	 * (each takes one at least); the rest wait for the next turn rather than all end with
	 * -ENOBUFS again. One that finds the ring empty queues up behind. */
	for (uint64_t avail = ring->count - ring->out; avail && (rr = ring->starved); avail--) {
		ring->starved = rr->starved_next;
		if (!ring->starved)
			ring->starved_last = NULL;
		rr->rstate &= (uint8_t)~URP__RECV_STARVED;
		recv_resume(drv, rr);
	}
	/* The SQEs due, now that this turn's deregistrations were applied: none for an entry
	 * gone. One that finds no SQE goes back on the list for the next turn, which must then
	 * not block (the list is taken whole first, so it is not met again in this walk). */
	due = drv->flush;
	drv->flush = NULL;
	while ((rr = due)) {
		urp__debug_assert(rr->reg.magic == URP__REG_MAGIC, "urp_driver_turn",
				  "a freed ring-mode entry on the flush list");
		due = rr->flush_next;
		rr->rstate &= (uint8_t)~URP__RING_FLUSH;
		if (rr->reg.state & URP__REG_GONE)
			continue;
		if (recv_wanted(drv, rr))
			recv_prep(drv, rr);
		if (!urp__send_prep(drv, rr)) {
			urp__ring_flush_due(drv, rr);
			drv->put_off = true;
		}
	}
}

/* ---- deregistration ---- */

static bool cancel(struct urp_driver *drv, struct urp__reg *reg, unsigned kind)
{
	struct io_uring_sqe *sqe = urp__get_sqe(drv);

	if (!sqe)
		return false;
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)reg | kind, 0);
	io_uring_sqe_set_data64(sqe, URP__TOKEN_CTL);
	return true;
}

int urp__ring_remove(struct urp_driver *drv, struct urp__reg *reg)
{
	struct urp__ring_reg *rr = urp__ring_reg_of(reg);
	int cancels = 0;

	urp__send_drop(drv, rr, false);
	if (rr->rstate & URP__RECV_ARMED) {
		if (!cancel(drv, reg, URP__KIND_RECV))
			return -1;
		cancels++;
	}
	if (rr->rstate & URP__SEND_BUSY) {
		if (!cancel(drv, reg, URP__KIND_SEND))
			return -1;
		cancels++;
	}
	return cancels;
}

/* ---- the API ---- */

/* The ring-mode registration behind io, on its driver's turning thread; NULL with *err. */
struct urp__ring_reg *urp__ring_entry(const struct urp_io *io, const char *call, int *err)
{
	struct urp_driver *drv;
	struct urp__reg *reg;

	*err = -EINVAL;
	if (!io)
		return NULL;
	urp__debug_io_usable(io, call);
	drv = urp__owner_of(io);
	reg = urp__reg_of((struct urp_io *)io);
	if (!drv || !(reg->state & URP__REG_RING))
		return NULL;
	if (!urp__driver_on_thread(drv)) {
		*err = -EEXIST;
		return NULL;
	}
	return urp__ring_reg_of(reg);
}

int urp_register_ring(struct urp_driver *drv, int fd, struct urp_io **out)
{
	int ret;

	if (!drv || !out || fd < 0)
		return -EINVAL;
	if (urp__load_acquire(&drv->enabled) && !urp__driver_on_thread(drv))
		return -EEXIST;
	/* Before the first turn (no thread turns it yet) or on the turning thread: the one
	 * thread that sets the ring up. */
	/* A kernel without ring mode is asked once; a failure to set up (-ENOMEM, say) is
	 * tried again by the next registration. */
	if (!drv->ring_mode) {
		ret = bufring_init(drv);
		if (ret == -EOPNOTSUPP)
			drv->ring_mode = ret;
		else if (ret < 0)
			return ret;
		else
			drv->ring_mode = 1;
	}
	if (drv->ring_mode < 0)
		return drv->ring_mode;
	return urp__register(drv, fd, URP_READABLE | URP_WRITABLE, true, out);
}

int urp_io_take(struct urp_io *io, struct urp_buf **out)
{
	struct urp__ring_reg *rr;
	struct urp_driver *drv;
	struct urp_event ev;
	int err, tries;

	rr = urp__ring_entry(io, "urp_io_take", &err);
	if (!rr || !out)
		return rr ? -EINVAL : err;
	drv = urp__owner_of(io);
	for (tries = 0;; tries++) {
		urp__word_event(urp__load_acquire(&io->readiness), URP_READY_ALL, &ev);
		if (rr->rq_count) {
			struct urp__rbuf *b = buf_of(drv, rr->rq_head);

			rr->rq_head = b->next;
			if (!--rr->rq_count)
				rr->rq_head = rr->rq_tail = URP__BID_NONE;
			b->next = URP__BID_NONE;
			*out = &b->pub;
			/* Below the cap again: the paused recv goes on. */
			if (rr->rstate & URP__RECV_PAUSED)
				recv_resume(drv, rr);
			return 1;
		}
		if (rr->recv_err)
			return -(int)rr->recv_err;
		if (rr->rstate & URP__RECV_DONE)
			return 0;
		if (ev.shutdown)
			return -ESHUTDOWN;
		/* Nothing queued: clear READABLE with the snapshot's tick. A receive that landed
		 * after the snapshot (another thread cannot, this one between two calls can)
		 * refuses it; go round once more. */
		if (urp_io_clear_readiness(io, &(struct urp_event){ URP_READABLE, ev.tick, false }) ==
			    0 ||
		    tries)
			return -EAGAIN;
	}
}

void urp_buf_release(struct urp_buf *buf)
{
	struct urp__rbuf *b;

	if (!buf)
		return;
	b = urp__container_of(buf, struct urp__rbuf, pub);
	urp__debug_assert(b->out && urp__driver_on_thread(b->drv), "urp_buf_release",
			  "a buffer released twice, or not on the turning thread");
	urp__buf_return(&b->drv->bufring, b);
}
