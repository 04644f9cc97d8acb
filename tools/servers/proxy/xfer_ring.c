/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: one direction of a connection in ring mode (--io ring, the default; proxy.h).
 * The driver receives into its provided-buffer ring (a multishot recv per socket) and queues
 * the buffers on the source's entry; a take hands one over without a syscall, and
 * urp_io_send_buf() queues it on the sink as it is, no copy, back in the ring once sent. The
 * sends go out with the loop's next io_uring_enter(), so a request costs no socket syscall of
 * ours at all.
 *
 * Back-pressure: a buffer taken while the sink's send queue is at its mark (RING_SEND_HWM: one
 * send) is held, one per direction, and the direction takes no more; it waits in the sink's
 * writer slot for the Set of WRITABLE that the completion emptying the queue makes. Its
 * source's buffers then pile up on their entry to RING_BUF_CAP, where the driver pauses the
 * recv and the data waits in the kernel: a stalled direction holds RING_BUF_CAP + 2 buffers of
 * the ring. Only a direction holding a buffer waits for its sink: the completion of a send
 * that found nothing behind it wakes nobody (one wake per buffer received, as in readiness
 * mode, not two).
 *
 * The client's bytes are also copied aside (at most XFER_BUF) until the backend answers, for a
 * replay to the next backend should this one fail first (conn.c): the one copy of this mode,
 * made once per connection in the common case (the first request), and freed with the answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* The first allocation for kept bytes: a request line and its headers, usually. */
#define KEEP_FIRST 512

/*
 * Whether a take on e could find anything: a buffer, the FIN, an error or the shutdown. A
 * buffer queued keeps READABLE set (each receive Sets it, and only a take that found the queue
 * empty clears it), so without READABLE, READ_CLOSED, ERROR or the shutdown bit the take would
 * answer -EAGAIN: the load saves its call and its clear, most passes of a task.
 */
static bool end_may_take(const struct end *e)
{
	uint32_t word = urp_io_word(e->io);

	return (urp_word_ready(word) & (URP_READABLE | URP_READ_CLOSED | URP_ERROR)) ||
	       urp_word_shutdown(word);
}

/* Whether the send queue of e is at its mark: the direction into it takes no more. */
static bool end_full(const struct end *e)
{
	return urp_io_send_queued(e->io) >= RING_SEND_HWM;
}

void xfer_keep_end(struct xfer *x)
{
	x->keep = false;
	if (prx.io != SERVER_IO_RING)
		return;
	free(x->data);
	x->data = NULL;
	x->room = x->tail = 0;
}

/* Keep len more bytes for a replay; beyond XFER_BUF (or out of memory), no replay is possible
 * any more and keep goes. */
static void keep_bytes(struct xfer *x, const void *data, size_t len)
{
	size_t want = x->tail + len, room = x->room ? x->room : KEEP_FIRST;
	char *grown;

	if (want > XFER_BUF) {
		xfer_keep_end(x);
		return;
	}
	if (want > x->room) {
		while (room < want)
			room *= 2;
		room = room < XFER_BUF ? room : XFER_BUF;
		grown = realloc(x->data, room);
		if (!grown) {
			xfer_keep_end(x);
			return;
		}
		x->data = grown;
		x->room = room;
	}
	memcpy(x->data + x->tail, data, len);
	x->tail = want;
}

void xfer_ring_drop(struct xfer *x)
{
	if (x->pending)
		urp_buf_release(x->pending);
	x->pending = NULL;
}

int xfer_ring_replay(struct xfer *x, struct end *dst)
{
	/* An empty queue takes it whatever its size (the mark refuses only what comes after). */
	return x->keep && x->tail ? urp_io_send(dst->io, x->data, x->tail) : 0;
}

int xfer_ring_step(struct xfer *x, struct end *src, struct end *dst, _Atomic uint64_t *bytes,
		   struct end **failed)
{
	struct urp_buf *buf;
	int progress = 0, ret;

	while (!x->eof) {
		if (!x->pending) {
			if (!end_may_take(src))
				break;
			ret = urp_io_take(src->io, &buf);
			if (ret == 0) {
				x->eof = true;
				progress = 1;
				break;
			}
			if (ret == -EAGAIN)
				break;
			if (ret < 0) {
				*failed = src;
				return ret;
			}
			x->in += buf->len;
			net_count(bytes, buf->len);
			if (x->keep)
				keep_bytes(x, buf->data, buf->len);
			x->pending = buf;
			progress = 1;
		}
		if (end_full(dst)) {
			/* Not waiting for a WRITABLE that will not come (xfer_ring_wait()). */
			if (urp_word_shutdown(urp_io_word(dst->io))) {
				*failed = dst;
				return -ESHUTDOWN;
			}
			break;
		}
		/* On an error the buffer stays pending: xfer_ring_drop() gives it back. */
		ret = urp_io_send_buf(dst->io, x->pending);
		if (ret < 0) {
			*failed = dst;
			return ret;
		}
		x->pending = NULL;
	}
	if (x->eof && !x->shut) {
		/* After everything queued before it. */
		ret = urp_io_send_fin(dst->io);
		if (ret < 0) {
			*failed = dst;
			return ret;
		}
		x->shut = true;
		progress = 1;
	}
	return progress;
}

bool xfer_ring_wait(struct xfer *x, struct end *src, struct end *dst,
		    const struct urp_waker *waker)
{
	struct urp_event ev;

	if (x->eof)
		return false;
	if (!x->pending)
		/* The take found nothing and cleared READABLE with its snapshot's tick: a buffer
		 * received since makes this ready at once. */
		return urp_io_poll_ready(src->io, URP_DIR_READ, waker, &ev) == 0;
	if (urp_io_poll_ready(dst->io, URP_DIR_WRITE, waker, &ev) < 0)
		return false;
	if (!ev.shutdown && !(ev.ready & URP_WRITABLE)) {
		/*
		 * Closed for writing (an error Set ERROR and WRITE_CLOSED) with a send still in
		 * flight: its completion, an error too, empties the queue on a later turn, and
		 * the next send says why. Look again after that turn instead of spinning on a
		 * slot that stays ready.
		 */
		waker->wake(waker->arg);
		return false;
	}
	return true;
}

int xfer_ring_flushed(struct end *e, const struct urp_waker *waker)
{
	uint32_t word = urp_io_word(e->io);
	struct urp_event ev;

	if (urp_word_shutdown(word))
		return -ESHUTDOWN;
	/* A send failed: with the FIN queued, a send answers its error (or -EPIPE). */
	if (urp_word_ready(word) & URP_ERROR)
		return urp_io_send(e->io, NULL, 0);
	if (!urp_io_send_queued(e->io))
		return 1;
	/*
	 * A FIN alone is 0 bytes, below the mark, so WRITABLE may still stand: clear it, and the
	 * slot waits for the Set of the completion that empties the queue. Nothing can Set it in
	 * between: completions are reaped on this thread.
	 */
	urp_io_ready_event(e->io, URP_WRITABLE, &ev);
	if (ev.ready & URP_WRITABLE)
		urp_io_clear_readiness(e->io, &ev);
	if (urp_io_poll_ready(e->io, URP_DIR_WRITE, waker, &ev) == 0)
		waker->wake(waker->arg); /* WRITE_CLOSED: the error, after the next turn */
	return 0;
}
