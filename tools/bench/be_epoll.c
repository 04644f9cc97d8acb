/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench backend: raw epoll, tuned as a careful user would: edge-triggered, one
 * epoll_ctl per add and per del (none per event), and one epoll_wait for up to 1024 events.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define EPOLL_BATCH 1024

struct bench_watch {
	int fd;
	unsigned events;
	bench_cb cb;
	void *arg;
	bool dead;
	struct bench_watch *prev, *next; /* live watches, or the loop's graveyard once dead */
};

struct bench_loop {
	int ep;
	bool dispatching;
	uint64_t waits;
	struct bench_watch live, graveyard;
	struct epoll_event evs[EPOLL_BATCH];
};

static void list_init(struct bench_watch *head)
{
	head->prev = head->next = head;
}

static void list_move(struct bench_watch *w, struct bench_watch *head)
{
	if (w->prev) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
	}
	w->prev = head->prev;
	w->next = head;
	head->prev->next = w;
	head->prev = w;
}

static void list_free(struct bench_watch *head)
{
	while (head->next != head) {
		struct bench_watch *w = head->next;

		head->next = w->next;
		free(w);
	}
	list_init(head);
}

static int epoll_open(struct bench_loop **lpp, unsigned max_fds)
{
	struct bench_loop *lp = calloc(1, sizeof(*lp));

	if (!lp)
		return -ENOMEM;
	lp->ep = epoll_create1(EPOLL_CLOEXEC);
	if (lp->ep < 0) {
		int err = -errno;

		free(lp);
		return err;
	}
	list_init(&lp->live);
	list_init(&lp->graveyard);
	*lpp = lp;
	return 0;
}

static int epoll_add(struct bench_loop *lp, int fd, unsigned events, bench_cb cb, void *arg,
		     struct bench_watch **wp)
{
	struct epoll_event ev = { .events = EPOLLET };
	struct bench_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	*w = (struct bench_watch){ .fd = fd, .events = events, .cb = cb, .arg = arg };
	if (events & BENCH_IN)
		ev.events |= EPOLLIN | EPOLLRDHUP;
	if (events & BENCH_OUT)
		ev.events |= EPOLLOUT;
	ev.data.ptr = w;
	if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(w);
		return err;
	}
	list_move(w, &lp->live);
	*wp = w;
	return 0;
}

static int epoll_del(struct bench_loop *lp, struct bench_watch *w, bool close_fd)
{
	int ret = 0;

	if (epoll_ctl(lp->ep, EPOLL_CTL_DEL, w->fd, NULL) < 0)
		ret = -errno;
	if (close_fd)
		close(w->fd);
	/* Later entries of the batch being dispatched may still point at w. */
	w->dead = true;
	list_move(w, &lp->graveyard);
	if (!lp->dispatching)
		list_free(&lp->graveyard);
	return ret;
}

static int epoll_run_once(struct bench_loop *lp, int timeout_ms)
{
	int n, calls = 0;

	n = epoll_wait(lp->ep, lp->evs, EPOLL_BATCH, timeout_ms);
	lp->waits++;
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	lp->dispatching = true;
	for (int i = 0; i < n; i++) {
		struct bench_watch *w = lp->evs[i].data.ptr;
		unsigned got = lp->evs[i].events, ready = 0;

		if (w->dead)
			continue;
		if (got & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			ready |= BENCH_IN;
		if (got & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			ready |= BENCH_OUT;
		ready &= w->events;
		if (!ready)
			continue;
		w->cb(w->arg, ready);
		calls++;
	}
	lp->dispatching = false;
	list_free(&lp->graveyard);
	return calls;
}

static uint64_t epoll_waits(struct bench_loop *lp)
{
	return lp->waits;
}

static void epoll_close(struct bench_loop *lp)
{
	close(lp->ep);
	list_free(&lp->live);
	list_free(&lp->graveyard);
	free(lp);
}

const struct bench_backend be_epoll = {
	.name = "epoll",
	.open = epoll_open,
	.add = epoll_add,
	.del = epoll_del,
	.run_once = epoll_run_once,
	.waits = epoll_waits,
	.close = epoll_close,
};
