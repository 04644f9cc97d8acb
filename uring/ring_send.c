/* SPDX-License-Identifier: MIT */
/*
 * Ring mode's sends (the rest of ring mode: ring_mode.c, whose head comment has the whole).
 *
 * Each entry has a FIFO of send records: a copy (urp_io_send()), a received buffer's own record
 * (urp_io_send_buf(): no allocation), a FIN (urp_io_send_fin()). One request of a socket is in
 * the kernel at a time, so that a later send never overtakes one the kernel parked: a send of
 * the head record, or, when more are queued, one sendmsg of up to URP__SENDV_MAX records before
 * any FIN (a vector from the driver's pool, so an idle entry holds none). The completion's byte
 * count retires the records sent whole; a short send's rest is the next request. The SQE is
 * prepared at the next turn's start (urp__send_prep(), from urp__ring_turn_start()), never
 * where the send is queued. WRITABLE means "fewer than send_hwm bytes queued": the queue
 * reaching the mark clears it, the completion that brings it below (or empties it) Sets it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/atomic.h"
#include "../core/debug.h"
#include "../core/word.h"
#include "ring.h"
#include "ring_mode.h"
#include "tsan.h"

/* ---- the send queue ---- */

/* The queue head's next SQE (what is left of a send, or the shutdown) is due. */
static void send_submit(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	if (rr->sq_head && !(rr->rstate & URP__SEND_BUSY))
		urp__ring_flush_due(drv, rr);
}

/* A vector for a sendmsg, or NULL (out of memory: the head goes alone). */
static struct urp__sendv *sendv_get(struct urp__bufring *ring)
{
	struct urp__sendv *v = ring->sendv_free;

	if (!v)
		return malloc(sizeof(*v));
	ring->sendv_free = v->next;
	return v;
}

/* The send in flight ended (or the ring exited): its vector, if it had one, goes back. */
void urp__sendv_done(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	struct urp__sendv *v = rr->sendv;

	if (!v)
		return;
	v->next = drv->bufring.sendv_free;
	drv->bufring.sendv_free = v;
	rr->sendv = NULL;
}

/* Prepare it (at a turn's start); false when no SQE could be had. */
bool urp__send_prep(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	struct urp__send *s = rr->sq_head;
	struct io_uring_sqe *sqe;

	if (!s || (rr->rstate & URP__SEND_BUSY) || rr->send_err)
		return true;
	sqe = urp__get_sqe(drv);
	if (!sqe)
		return false;
	/* Not IORING_OP_SHUTDOWN: it runs in an io-wq worker, which looks the fd number up
	 * when it gets to it (REQ_F_FORCE_ASYNC, kernel 6.18), after the caller may have
	 * deregistered and closed it and the number named another socket. Here, at a turn's
	 * start, the fd is the entry's; a NOP under the send's token completes the FIN as the
	 * shutdown's own CQE would, with its result. */
	if (s->fin) {
		s->fin_res = shutdown(rr->reg.fd, SHUT_WR) < 0 ? -errno : 0;
		io_uring_prep_nop(sqe);
		rr->sq_inflight = 1;
	} else if (s->next && !s->next->fin && (rr->sendv = sendv_get(&drv->bufring))) {
		struct urp__sendv *v = rr->sendv;
		unsigned n = 0;

		/* The queue's head records, up to a FIN, in one sendmsg: the kernel takes them in
		 * order, and a short send leaves the rest for the next SQE, as a short send does. */
		for (; s && !s->fin && n < URP__SENDV_MAX; s = s->next, n++)
			v->iov[n] = (struct iovec){ (void *)(s->data + s->off), s->len - s->off };
		v->msg = (struct msghdr){ .msg_iov = v->iov, .msg_iovlen = n };
		io_uring_prep_sendmsg(sqe, rr->reg.fd, &v->msg, MSG_NOSIGNAL);
		rr->sq_inflight = (uint8_t)n;
	} else {
		io_uring_prep_send(sqe, rr->reg.fd, s->data + s->off, s->len - s->off, MSG_NOSIGNAL);
		rr->sq_inflight = 1;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&rr->reg | URP__KIND_SEND);
	rr->reg.polls_armed++;
	rr->rstate |= URP__SEND_BUSY;
	urp__tsan_release(&rr->reg);
	return true;
}

static void send_free(struct urp_driver *drv, struct urp__send *s)
{
	if (s->buf)
		urp__buf_return(&drv->bufring, s->buf); /* s is the buffer's own */
	else
		free(s);
}

/* Drop what is queued (a send failed, or the entry is gone), but the records the send in
 * flight names, which the kernel may still be reading: they go when its completion comes (all
 * of it with all: the ring has exited). */
void urp__send_drop(struct urp_driver *drv, struct urp__ring_reg *rr, bool all)
{
	struct urp__send *keep = NULL, *s = rr->sq_head, *next;

	if (s && (rr->rstate & URP__SEND_BUSY) && !all) {
		keep = s;
		for (unsigned i = 1; i < rr->sq_inflight && s->next; i++)
			s = s->next;
		rr->sq_tail = s;
		next = s->next;
		s->next = NULL;
		s = next;
	}
	rr->sq_head = keep;
	if (!keep)
		rr->sq_tail = NULL;
	for (; s; s = next) {
		next = s->next;
		rr->sq_bytes -= s->len - s->off;
		send_free(drv, s);
	}
}


/* The queue's head record is done (sent, or failed): it goes. */
static void send_pop(struct urp_driver *drv, struct urp__ring_reg *rr)
{
	struct urp__send *s = rr->sq_head;

	rr->sq_bytes -= s->len - s->off;
	rr->sq_head = s->next;
	if (!rr->sq_head)
		rr->sq_tail = NULL;
	send_free(drv, s);
}

int urp__send_cqe(struct urp_driver *drv, struct urp__ring_reg *rr,
		    const struct io_uring_cqe *cqe)
{
	struct urp__send *s = rr->sq_head;
	struct urp__reg *reg = &rr->reg;
	unsigned hwm = drv->bufring.send_hwm;
	uint32_t before = rr->sq_bytes;
	int events = 0, res;
	bool fin;

	reg->polls_armed--;
	rr->rstate &= (uint8_t)~URP__SEND_BUSY;
	rr->sq_inflight = 0;
	urp__sendv_done(drv, rr);
	if (!s) {
		urp__count_local(&drv->st.unknown_tokens, 1);
		urp__reg_request_ended(drv, reg);
		return 0;
	}
	/* A FIN's CQE is its NOP's: the shutdown's result was kept (urp__send_prep()). */
	fin = s->fin;
	res = fin ? s->fin_res : cqe->res;
	if (res >= 0 && !fin) {
		uint32_t left = (uint32_t)res;

		urp__count_local(&drv->st.sends, 1);
		urp__count_local(&drv->st.send_bytes, (uint64_t)res);
		/* The records sent whole go; a short send leaves the rest of one at the head. */
		while ((s = rr->sq_head) && !s->fin && left >= s->len - s->off) {
			left -= s->len - s->off;
			send_pop(drv, rr); /* its rest leaves sq_bytes */
		}
		if (left && s && !s->fin) {
			s->off += left;
			rr->sq_bytes -= left;
		}
	}
	if (res < 0 && res != -ECANCELED && !rr->send_err) {
		rr->send_err = (uint8_t)-res;
		if (!(reg->state & URP__REG_GONE)) {
			urp__io_set_readiness(&reg->io, URP_ERROR | URP_WRITE_CLOSED);
			urp__ready_add(drv, reg);
			events = 1;
		}
	}
	if (res < 0) {
		/* Failed: what follows cannot go out in order any more. */
		send_pop(drv, rr);
		urp__send_drop(drv, rr, false);
	} else if (fin) {
		send_pop(drv, rr);
	}
	/* A short send's remainder, or the next one. */
	if (!(reg->state & URP__REG_GONE) && !rr->send_err)
		send_submit(drv, rr);
	/* Below the mark again, or empty: the writers learn it (a Set, tick + 1). */
	if (!(reg->state & URP__REG_GONE) && !rr->send_err &&
	    ((before >= hwm && rr->sq_bytes < hwm) || !rr->sq_head)) {
		urp__io_set_readiness(&reg->io, URP_WRITABLE);
		urp__ready_add(drv, reg);
		events = 1;
	}
	urp__reg_request_ended(drv, reg);
	return events;
}

/* ---- the API ---- */

/* Queue s on io; what send, send_buf and send_fin share. */
static int send_queue(struct urp_io *io, struct urp__send *s, const char *call)
{
	struct urp__ring_reg *rr;
	struct urp_driver *drv;
	uint32_t before;
	int err;

	rr = urp__ring_entry(io, call, &err);
	if (!rr)
		return err;
	drv = urp__owner_of(io);
	if (rr->send_err)
		return -(int)rr->send_err;
	if (rr->rstate & URP__SEND_FIN)
		return -EPIPE;
	if (urp_word_shutdown(urp__load_acquire(&io->readiness)))
		return -ESHUTDOWN;
	if (!s->fin && rr->sq_bytes >= drv->bufring.send_hwm)
		return -EAGAIN;
	before = rr->sq_bytes;
	s->next = NULL;
	if (rr->sq_tail)
		rr->sq_tail->next = s;
	else
		rr->sq_head = s;
	rr->sq_tail = s;
	rr->sq_bytes += s->len;
	if (s->fin)
		rr->rstate |= URP__SEND_FIN;
	/* At the mark: WRITABLE goes, and a writer waits for the completion that brings the
	 * queue below it (a Set). Our own bit: cleared whatever the tick. */
	if (before < drv->bufring.send_hwm && rr->sq_bytes >= drv->bufring.send_hwm) {
		uint32_t cur = urp__load_relaxed(&io->readiness);

		while (!urp__cas_acq_rel(&io->readiness, &cur, cur & ~URP_WRITABLE))
			;
	}
	send_submit(drv, rr);
	return 0;
}

int urp_io_send(struct urp_io *io, const void *data, size_t len)
{
	struct urp__send *s;
	int ret;

	if (!io || (!data && len) || len > UINT32_MAX / 2)
		return -EINVAL;
	s = malloc(sizeof(*s) + len);
	if (!s)
		return -ENOMEM;
	if (len)
		memcpy(s + 1, data, len);
	*s = (struct urp__send){ .data = (const char *)(s + 1), .len = (uint32_t)len };
	ret = send_queue(io, s, "urp_io_send");
	if (ret < 0)
		free(s);
	return ret;
}

int urp_io_send_buf(struct urp_io *io, struct urp_buf *buf)
{
	struct urp__rbuf *b;
	char *start;
	struct urp__send *s;
	int ret;

	if (!io || !buf)
		return -EINVAL;
	b = urp__container_of(buf, struct urp__rbuf, pub);
	if (b->drv != urp__owner_of(io))
		return -EINVAL;
	/* What is sent must lie in the buffer: data may have moved forward, len shrunk. */
	start = urp__buf_addr(&b->drv->bufring, b->bid);
	if ((char *)buf->data < start || buf->len > b->drv->bufring.size ||
	    (size_t)((char *)buf->data - start) > b->drv->bufring.size - buf->len)
		return -EINVAL;
	urp__debug_assert(b->out && !b->send.buf, "urp_io_send_buf",
			  "a buffer sent twice, or sent after its release");
	s = &b->send;
	*s = (struct urp__send){ .data = buf->data, .len = (uint32_t)buf->len, .buf = b };
	ret = send_queue(io, s, "urp_io_send_buf");
	if (ret < 0)
		s->buf = NULL;
	return ret;
}

int urp_io_send_fin(struct urp_io *io)
{
	struct urp__send *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->fin = true;
	ret = send_queue(io, s, "urp_io_send_fin");
	if (ret < 0)
		free(s);
	return ret;
}

size_t urp_io_send_queued(const struct urp_io *io)
{
	struct urp__ring_reg *rr;
	int err;

	rr = urp__ring_entry(io, "urp_io_send_queued", &err);
	if (!rr)
		return 0;
	/* A FIN not yet out counts one. */
	return rr->sq_bytes + (rr->sq_head && rr->sq_tail->fin);
}
