/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: one direction of a connection in readiness mode (--io readiness; proxy.h).
 * Bytes go through the direction's 16 KiB buffer: recv() from the source when its readiness
 * word says READABLE and the buffer has room, send() to the sink when it says WRITABLE, each
 * EAGAIN clearing the readiness it used with the snapshot's tick. A full buffer stops the
 * reading of its source, so the kernel's queues and the TCP window push back on the sender. A
 * FIN is passed on (shutdown()) once the buffer is flushed.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy.h"

bool end_want_inq(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_TCP, TCP_INQ, &one, sizeof(one)) == 0;
}

/* Whether the TCP_CM_INQ message of a read says that nothing is left to read. */
static bool read_drained(struct msghdr *msg)
{
	struct cmsghdr *cm;
	int inq;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_TCP && cm->cmsg_type == TCP_CM_INQ &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(inq))) {
			memcpy(&inq, CMSG_DATA(cm), sizeof(inq));
			return inq == 0;
		}
	}
	return false;
}

/*
 * A transfer on an end: one recv or send of up to len bytes at buf. Returns the bytes moved or
 * -errno; *short_clears says whether a short transfer proves that the readiness it used is gone
 * (the kernel will signal again), so that xfer_io() may clear it without waiting for EAGAIN.
 */
typedef ssize_t (*xfer_op)(struct end *e, char *buf, size_t len, bool *short_clears);

/*
 * One read of src into buf. A short read may clear the readiness it used (*short_clears) only
 * when the kernel says the queue is empty (TCP_CM_INQ == 0): TCP ends a
 * read at the urgent mark with the bytes behind it still queued (tcp_recvmsg_locked(): "Stop if
 * we have read anything"), and no completion comes for bytes that have already arrived. The
 * count includes an unread urgent byte and is 1 after a FIN (tcp_inq_hint()), so 0 means a
 * further read would fail with EAGAIN. Without the count (TCP_INQ refused, no control message),
 * only EAGAIN clears. The urgent byte itself is skipped, not passed on: SO_OOBINLINE is off, as
 * in HAProxy.
 */
static ssize_t end_recv(struct end *src, char *buf, size_t len, bool *short_clears)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (src->inq) {
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
	}
	n = recvmsg(src->fd, &msg, 0);
	if (n < 0)
		return -errno;
	*short_clears = read_drained(&msg);
	return n;
}

/*
 * One send of buf to dst. A short send always leaves its readiness safe to clear, which saves
 * the EAGAIN of a full socket: a non-blocking tcp_sendmsg() that stops short has set
 * SOCK_NOSPACE on its way out (wait_for_space, and sk_stream_wait_memory() before its EAGAIN),
 * and while that flag is set, the ACKs that make room call sk_stream_write_space()
 * (tcp_check_space()), which wakes the poll: a completion always follows. (A send cut short by
 * an error is followed by that error's completion.)
 */
static ssize_t end_send(struct end *dst, char *buf, size_t len, bool *short_clears)
{
	ssize_t n = send(dst->fd, buf, len, MSG_NOSIGNAL);

	*short_clears = true;
	return n < 0 ? -errno : n;
}

/*
 * op (end_recv or end_send) once on e, of up to len bytes at buf, under the readiness snapshot
 * of interest (URP_READABLE or URP_WRITABLE). EAGAIN clears that readiness with the snapshot's
 * tick; a completion that came after the snapshot makes that clear fail (-ESTALE, counted as a
 * stale rejection), so no edge is lost. A short transfer clears it too when op says it may,
 * saving the EAGAIN syscall of every request. Returns op's bytes or -errno; -EAGAIN when not
 * ready, -ESHUTDOWN when the entry is shut down.
 */
static ssize_t xfer_io(struct end *e, unsigned interest, xfer_op op, char *buf, size_t len)
{
	bool short_clears = false;
	struct urp_event ev;
	ssize_t n;

	urp_io_ready_event(e->io, interest, &ev);
	if (ev.shutdown)
		return -ESHUTDOWN;
	if (!ev.ready)
		return -EAGAIN;
	n = op(e, buf, len, &short_clears);
	if (n == -EAGAIN || (n > 0 && (size_t)n < len && short_clears))
		urp_io_clear_readiness(e->io, &ev);
	return n;
}

/*
 * Move what one direction can: flush the buffer to the sink, pass the FIN on once it is empty,
 * then read more while there is room. Returns 1 on progress, 0 when blocked, or -errno with
 * *failed set to the end whose call failed.
 */
int xfer_readiness_step(struct xfer *x, struct end *src, struct end *dst,
			_Atomic uint64_t *bytes, struct end **failed)
{
	int progress = 0;
	ssize_t n;

	while (x->head < x->tail) {
		n = xfer_io(dst, URP_WRITABLE, end_send, x->data + x->head, x->tail - x->head);
		if (n == -EAGAIN)
			break;
		if (n == -EINTR)
			continue;
		if (n < 0) {
			*failed = dst;
			return (int)n;
		}
		x->head += (size_t)n;
		progress = 1;
	}
	/* Kept bytes stay until the backend answers, or until they fill the buffer: then a
	 * replay is no longer possible, and the buffer is the stream's again. */
	if (x->head == x->tail && (!x->keep || x->tail == XFER_BUF)) {
		x->keep = false;
		x->head = x->tail = 0;
	}
	if (x->eof) {
		if (x->head == x->tail && !x->shut) {
			/* ENOTCONN: the sink already went away; its own error comes next. */
			shutdown(dst->fd, SHUT_WR);
			x->shut = true;
			progress = 1;
		}
		return progress;
	}
	if (x->tail < XFER_BUF) {
		n = xfer_io(src, URP_READABLE, end_recv, x->data + x->tail, XFER_BUF - x->tail);
		if (n > 0) {
			x->tail += (size_t)n;
			x->in += (uint64_t)n;
			net_count(bytes, (uint64_t)n);
			return 1;
		}
		if (n == 0) {
			x->eof = true;
			return 1;
		}
		if (n != -EAGAIN && n != -EINTR) {
			*failed = src;
			return (int)n;
		}
	}
	return progress;
}

/*
 * Store waker where direction x waits: in its sink's writer slot while it holds bytes, in its
 * source's reader slot while it has room and no FIN. Returns true when one of them is ready
 * meanwhile: go round again.
 */
bool xfer_readiness_wait(struct xfer *x, struct end *src, struct end *dst,
			 const struct urp_waker *waker)
{
	struct urp_event ev;

	if (x->head < x->tail && urp_io_poll_ready(dst->io, URP_DIR_WRITE, waker, &ev) == 0)
		return true;
	return !x->eof && x->tail < XFER_BUF &&
	       urp_io_poll_ready(src->io, URP_DIR_READ, waker, &ev) == 0;
}

