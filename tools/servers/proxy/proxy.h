/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: the contract between its files. proxy.c reads the options, sets the loops up,
 * handles the signals and runs each loop's timer (timeouts, the drain, the counters); conn.c is
 * a connection: the task that moves both directions, from the accept to the close; backend.c
 * connects to the backends.
 */
#ifndef URP_TOOLS_PROXY_H
#define URP_TOOLS_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urpoll.h>

#include "../acceptor.h"
#include "../net.h"
#include "../server.h"

#define PROG "urpoll-proxy"

/* Bytes held per direction and connection: the most a connection ever buffers is twice this.
 * HAProxy's default tune.bufsize is the same. */
#define XFER_BUF     16384
#define MAX_BACKENDS 64

/* One direction: bytes read from its source, not yet written to its sink: data[head..tail). */
struct xfer {
	char *data; /* XFER_BUF bytes, in the connection */
	size_t head, tail;
	bool eof;  /* the source sent its FIN */
	bool shut; /* and we passed it on to the sink */
};

struct end {
	int fd;
	struct urp_io *io;
	bool inq; /* TCP_INQ is on: each read says how many bytes it left queued */
};

struct conn {
	struct urp_task task;
	struct worker *worker;
	struct server_link link; /* in the worker's open connections */
	struct end client, backend;
	uint32_t since;	  /* tick of the last progress (or of the connect) */
	bool connecting;  /* the backend's connect() is in flight */
	bool expired;	  /* set by the timer: a connect or idle timeout */
	struct xfer up;	  /* client -> backend */
	struct xfer down; /* backend -> client */
	char buf[2][XFER_BUF];
};

/* Counters of one loop: written by its thread only, read by the stats printer (relaxed). */
struct counters {
	_Atomic uint64_t accepted, closed, bytes_up, bytes_down, connect_errors, timeouts,
		io_errors, shed;
};

struct worker {
	struct urp_loop *loop;
	unsigned index;
	struct acceptor acceptor;
	struct server_link *conns;
	unsigned nconns;
	unsigned next_backend; /* round robin, per loop */
	struct urp_task timer_task;
	struct urp_io *timer_io;
	int timer_fd;
	uint32_t now;	    /* ticks since start */
	uint32_t drain_end; /* tick the drain gives up at; 0: not draining yet */
	struct counters n;
};

struct backend {
	union sockaddr_any addr;
	socklen_t len;
	char text[64];
};

/* The proxy: set up by main() before any loop runs. */
struct proxy {
	struct server server;
	unsigned idle_ticks, connect_ticks, stats_ticks; /* 0: none */
	struct backend backends[MAX_BACKENDS];
	unsigned nbackends;
	struct acceptor_group group;
	struct worker *workers;
	unsigned nworkers;
	atomic_bool draining;
	atomic_bool warned_nofile;
};
extern struct proxy prx;

/* ---- conn.c ---- */

/* The acceptor's callback (arg: the worker): connect fd's client to the next backend and start
 * its task, or close fd (the slot given back either way). */
void conn_start(struct acceptor *a, int fd, void *arg);

/* ---- backend.c ---- */

/* A non-blocking connect() to worker w's next backend (round robin), in flight (*in_flight) or
 * done. Returns the fd or -errno. */
int backend_connect(struct worker *w, bool *in_flight);
/* Whether backend b accepts a connection within timeout_ms: 0 or -errno. */
int backend_probe(const struct backend *b, int timeout_ms);

#endif /* URP_TOOLS_PROXY_H */
