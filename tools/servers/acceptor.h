/* SPDX-License-Identifier: MIT */
/*
 * acceptor: the listener task of the urpoll servers. One acceptor per listening socket and loop,
 * all of a server's acceptors in one group that counts connection slots (--max-conns) across
 * loops. Out of descriptors (EMFILE), an acceptor sheds the oldest pending connection with a
 * reserve descriptor, or pauses until one of the group's connections closes: it never spins.
 */
#ifndef URP_TOOLS_ACCEPTOR_H
#define URP_TOOLS_ACCEPTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urpoll.h>

struct acceptor;

/* Shared by every acceptor of a server; set up before any loop runs. */
struct acceptor_group {
	const char *prog;   /* prefix of the messages */
	bool quiet;	    /* no warnings */
	unsigned max_conns; /* 0: no limit */
	bool refuse;	    /* full: accept and close at once, instead of leaving the backlog */
	bool accept_on_stop; /* acceptor_stop(): accept what is queued before closing */
	void (*fatal)(void); /* a listener cannot go on: the server should stop */
	struct acceptor *all; /* every acceptor, linked through next (read-only once running) */
	atomic_uint live;	 /* connection slots taken, in every loop */
	atomic_uint slots_freed; /* slots given back so far: a pausing acceptor's re-check */
	atomic_uint closes;	 /* connections closed (descriptors freed) so far: the same */
	atomic_uint paused;	 /* acceptors paused */
	atomic_bool warned_nofile;
};

/* Called on the acceptor's loop with a new non-blocking descriptor and the slot it holds:
 * the callee owns both (give the slot back with acceptor_release()). */
typedef void (*acceptor_fn)(struct acceptor *a, int fd, void *arg);

struct acceptor {
	struct urp_task task;
	struct urp_readiness ready; /* the wait for the next connection */
	struct acceptor_group *group;
	struct acceptor *next;
	struct urp_loop *loop;
	struct urp_io *io;
	acceptor_fn on_accept;
	void *arg;
	int fd;
	int reserve_fd;	   /* given up on EMFILE to shed one pending connection */
	bool waiting;	   /* ready is linked: poll it before initialising it again */
	atomic_bool stop;  /* acceptor_stop() was called */
	atomic_int paused; /* RUNNING, or why it stopped accepting */
	/* Written by the acceptor's loop only; read anywhere (relaxed). */
	_Atomic uint64_t shed, refused;
};

/* Register fd (a non-blocking listening socket, still the caller's) on loop and schedule the
 * acceptor. Returns 0 or the -errno of urp_register(). */
int acceptor_start(struct acceptor *a, struct acceptor_group *g, struct urp_loop *loop, int fd,
		   acceptor_fn on_accept, void *arg);
/* Stop accepting (any thread): on its loop, the acceptor deregisters its socket, closes it (so
 * new clients are refused; those still queued are reset, unless the group accepts them first:
 * accept_on_stop) and sets a->fd to -1. */
void acceptor_stop(struct acceptor *a);
/* Give a slot back: a connection closed (closed: a descriptor is free too), or a slot taken in
 * on_accept went unused. Any thread. */
void acceptor_release(struct acceptor_group *g, bool closed);
/* Close the reserve descriptor (after the loop stopped). */
void acceptor_free(struct acceptor *a);

#endif /* URP_TOOLS_ACCEPTOR_H */
