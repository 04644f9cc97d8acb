/* SPDX-License-Identifier: MIT */
/*
 * urpoll-proxy: the contract between its files. proxy.c reads the options, sets the loops up,
 * handles the signals, the drain and the counters; conn.c is a connection: the task that moves
 * both directions, from the accept to the close, its timeouts and its retries; xfer_ring.c
 * (--io ring) and xfer_readiness.c (--io readiness) move the bytes of one direction; backend.c
 * resolves, picks, marks and re-checks the backends; metrics.c serves GET /metrics; log.c
 * writes the timestamped lines.
 *
 * Threads: each loop runs on its own thread, and a connection lives on the loop that accepted
 * it. What every loop reads (struct proxy, the backends' up flags and preferred addresses) is
 * set before any loop runs or written with atomics; each loop's counters have that loop as
 * their only writer and are read by any thread (relaxed, net_count()). The health checks, the
 * stats timer and the metrics responder run on loop 0.
 */
#ifndef URP_TOOLS_PROXY_H
#define URP_TOOLS_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <urpoll.h>

#include "../acceptor.h"
#include "../net.h"
#include "../server.h"

#define PROG "urpoll-proxy"

/* Readiness mode: bytes held per direction and connection, so the most a connection ever
 * buffers is twice this (HAProxy's default tune.bufsize is the same). Both modes: the most kept
 * of a client's bytes for a replay. */
#define XFER_BUF     16384
#define MAX_BACKENDS 64
/* Addresses kept per backend name (localhost: 127.0.0.1 and ::1, say), tried in the order
 * getaddrinfo() gives them. */
#define MAX_ADDRS    8

/*
 * Ring mode's driver options (urp_driver_opts; docs/proxy.md, "Ring mode", has the
 * measurements). The buffers are shared by every connection of a loop: an idle connection
 * holds none, a busy one what is in flight. A direction holds at most RING_BUF_CAP buffers
 * queued on its source (then the driver pauses its recv, and the kernel's socket and the TCP
 * window push back), one taken and one being sent: its sink's queue is "full" at
 * RING_SEND_HWM bytes, a single send. So a stalled direction holds RING_BUF_CAP + 2 = 4
 * buffers, and RING_BUF_COUNT / 4 = 32 stalled directions run a loop's ring dry.
 *
 * The size: the driver sends one buffer per socket per io_uring_enter(), so bulk throughput
 * goes with it (iperf3 through the proxy: 5 Gbit/s with 8 KiB, 8 with 16 KiB, 12 with 32 KiB;
 * HAProxy 10). The count: the ring's pages are touched only when the kernel writes into them,
 * but buffers cycle through it FIFO, so what traffic has touched stays resident: 128 pages
 * (512 KiB) for small messages, which touch a buffer's first page only, the whole 4 MiB once
 * bulk has gone round it.
 */
#define RING_BUF_COUNT 128
#define RING_BUF_SIZE  32768
#define RING_BUF_CAP   2
#define RING_SEND_HWM  1

/*
 * One direction. Readiness mode: bytes read from its source, not yet written to its sink,
 * data[head..tail). While keep is set (the client's direction, until the backend has sent a
 * byte), bytes written stay in data[0..head) too, so that a backend that fails before
 * answering can be replaced and the client's bytes replayed to the next one; keep goes once
 * the buffer is full. Ring mode: the bytes go from buffer to buffer without a copy and data
 * holds only the kept bytes, data[0..tail), in room bytes allocated as they come (at most
 * XFER_BUF) and freed once keep goes.
 */
struct xfer {
	char *data; /* readiness: XFER_BUF bytes, in the connection; ring: malloc'd, or NULL */
	size_t head, tail;
	size_t room; /* ring: bytes allocated at data */
	struct urp_buf *pending; /* ring: taken, held while the sink's queue is at its mark */
	uint64_t in; /* bytes read from the source */
	bool eof;    /* the source sent its FIN */
	bool shut;   /* and we passed it on to the sink */
	bool keep;   /* kept for a replay: readiness data[0..head), ring data[0..tail) */
};

/* A client's address: IPv4 or IPv6 (28 bytes, where union sockaddr_any takes 128: an idle
 * connection's memory is mostly its struct). */
union sockaddr_ip {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct end {
	int fd;
	struct urp_io *io;
	bool inq; /* TCP_INQ is on: each read says how many bytes it left queued */
};

struct conn {
	struct urp_task task;
	struct urp_timer timer; /* the connect timeout, then the idle timeout */
	struct worker *worker;
	struct server_link link; /* in the worker's open connections */
	struct end client, backend;
	bool linked;		 /* counted in conns and in the worker's list */
	bool connecting;	 /* the backend's connect() is in flight */
	bool expired;		 /* the timer fired */
	int backend_index;	 /* prx.backends[] being used, or -1 */
	unsigned addr;		 /* its address being tried */
	unsigned addrs_left;	 /* its addresses not tried yet for this client */
	unsigned retries;	 /* failed backend connects for this client */
	uint64_t tried;		 /* bit i: backend i was tried for this client */
	struct timespec start;	 /* --log: when accepted (CLOCK_MONOTONIC) */
	union sockaddr_ip peer;	 /* --log: the client */
	struct xfer up;		 /* client -> backend */
	struct xfer down;	 /* backend -> client */
	char buf[][XFER_BUF];	 /* readiness mode: up's and down's; ring mode: none */
};

/* Counters of one loop: written by its thread only, read by any (relaxed). */
struct counters {
	_Atomic uint64_t accepted, closed, bytes_up, bytes_down, connect_errors, timeouts,
		io_errors, shed, no_backend, retries;
	struct {
		_Atomic uint64_t conns, connect_errors;
	} backend[MAX_BACKENDS];
};

struct worker {
	struct urp_loop *loop;
	unsigned index;
	struct acceptor acceptor;
	struct server_link *conns;
	unsigned nconns;
	unsigned next_backend;	    /* round robin, per loop */
	struct urp_task drain_task; /* woken by the first SIGINT or SIGTERM, from any loop */
	struct urp_timer drain_timer;
	struct counters n;
};

/* The check of a backend: a non-blocking connect on loop 0. */
struct backend_check {
	struct urp_task task;
	struct urp_timer timer; /* the connect timeout */
	struct urp_io *io;
	int fd; /* -1: no check in flight */
	unsigned addr, addrs_left;
	bool expired;
	bool startup;	 /* the first check, made as loop 0 starts */
	int startup_err; /* its failure, said once the round is over */
};

struct backend {
	char text[300]; /* HOST:PORT as given: the name in the logs and the metrics */
	union sockaddr_any addrs[MAX_ADDRS];
	socklen_t lens[MAX_ADDRS];
	unsigned naddrs;
	atomic_uint pref; /* the address to try first: the last that connected */
	atomic_bool up;
	struct backend_check check;
};

/* The proxy: set up by main() before any loop runs. */
struct proxy {
	struct server server;
	uint64_t idle_ms, connect_ms, stats_ms, check_ms; /* 0: none */
	bool log;					  /* --log */
	bool reuseport;					  /* --reuseport */
	enum server_io io;				  /* --io, settled before any loop runs */
	struct backend backends[MAX_BACKENDS];
	unsigned nbackends;
	struct acceptor_group group;
	struct worker *workers;
	unsigned nworkers;
	struct urp_timer stats_timer; /* loop 0 */
	struct urp_task check_task;   /* loop 0: the first round of checks, as it starts */
	struct urp_timer check_timer; /* loop 0: the next round */
	unsigned startup_pending;     /* loop 0: checks of the first round still in flight */
	union sockaddr_any listen_addr, metrics_addr; /* for the lines of proxy_ready() */
	bool metrics;
	atomic_bool draining;
	atomic_bool warned_nofile;
};
extern struct proxy prx;

/* Everything counted, summed over the loops. */
struct totals {
	uint64_t accepted, closed, bytes_up, bytes_down, connect_errors, timeouts, io_errors,
		shed, refused, no_backend, retries;
	struct urp_stats lib; /* urp_driver_stats() of every loop */
};

/* ---- proxy.c ---- */

void proxy_totals(struct totals *t);
/* Loop 0, once the first check of every backend is over: "listening on tcp ADDR" (and where
 * the metrics are), unless -q. Whoever waits for that line finds the start-up done. */
void proxy_ready(void);
/* Backend i's connections made and connect errors, summed over the loops. */
void proxy_backend_totals(unsigned i, uint64_t *conns, uint64_t *connect_errors);

/* ---- conn.c ---- */

/* The acceptor's callback (arg: the worker): connect fd's client to the next backend up and
 * start its task, or close fd (the slot given back either way). */
void conn_start(struct acceptor *a, int fd, void *arg);
/* --log: one line for a connection of w that is still open when the proxy exits. */
void conn_log_stopped(struct conn *c);
/* Free a connection's memory (its descriptors and registrations are gone already). */
void conn_free(struct conn *c);

/* ---- xfer_ring.c, xfer_readiness.c: one direction, from src to dst ---- */

/*
 * Move what direction x can: pass on what src sent, then its FIN. Returns 1 on progress, 0
 * when blocked, or -errno with *failed set to the end whose call failed. bytes counts what
 * was read from src.
 */
int xfer_ring_step(struct xfer *x, struct end *src, struct end *dst, _Atomic uint64_t *bytes,
		   struct end **failed);
int xfer_readiness_step(struct xfer *x, struct end *src, struct end *dst,
			_Atomic uint64_t *bytes, struct end **failed);
/* Store waker where direction x, blocked, waits. Returns true when that is ready meanwhile:
 * step again. */
bool xfer_ring_wait(struct xfer *x, struct end *src, struct end *dst,
		    const struct urp_waker *waker);
bool xfer_readiness_wait(struct xfer *x, struct end *src, struct end *dst,
			 const struct urp_waker *waker);
/* Ring mode, after both FINs were queued: 1 once everything queued on e (its FIN last) went
 * out, 0 while it has not (waker stored), or -errno (a send failed, the loop shut down). */
int xfer_ring_flushed(struct end *e, const struct urp_waker *waker);
/* Ring mode: give x's pending buffer back to the ring (on the loop's thread, its driver
 * alive). */
void xfer_ring_drop(struct xfer *x);
/* Ring mode, a backend connected again after a retry: queue the kept bytes on dst first.
 * Returns 0 or -errno. */
int xfer_ring_replay(struct xfer *x, struct end *dst);
/* Stop keeping x's bytes (the backend answered, or they outgrew XFER_BUF). */
void xfer_keep_end(struct xfer *x);
/* Readiness mode: have every read of fd report how many bytes it left queued (TCP_INQ, Linux
 * 4.18): whether it will. */
bool end_want_inq(int fd);

/* ---- backend.c ---- */

/*
 * Parse "HOST:PORT" or "[IPV6]:PORT" into b, resolving HOST (getaddrinfo(): a name, or an IPv4
 * or IPv6 literal). Returns 0, -EINVAL for a malformed text (*why says what is wrong) or
 * -ENOENT when the name does not resolve (*why: getaddrinfo()'s reason).
 */
int backend_parse(struct backend *b, const char *text, const char **why);
/* The next backend up for worker w (round robin) not in tried (bit i: backend i), or -1. */
int backend_pick(struct worker *w, uint64_t tried);
/* A non-blocking TCP_NODELAY socket connecting to address addr of b: *in_flight, or connected
 * already. Returns the fd or -errno. */
int backend_socket(const struct backend *b, unsigned addr, bool *in_flight);
/* Backend i failed (err: its -errno; what: "connect", "connect timeout", "reset before any
 * data", "check"): marked down, said once with a timestamp. Any loop. */
void backend_down(unsigned i, int err, const char *what);
/* Address addr of backend i connected: it is the one to try first. Any loop. */
void backend_connected(unsigned i, unsigned addr);
/* On loop 0, before it runs: a check of every backend as it starts (those that accept no
 * connection start down, one warning each), then every prx.check_ms. */
void backend_checks_start(struct urp_loop *loop0);
/* After the loops are freed: close the sockets of checks still in flight. */
void backend_checks_free(void);

/* ---- metrics.c ---- */

/* Serve GET /metrics on fd (a non-blocking listening socket, the responder's from now on)
 * from loop0, before it runs. Returns 0 or -errno. */
int metrics_start(struct urp_loop *loop0, int fd);
/* After the loops are freed: close and free what the responder still holds. */
void metrics_free(void);

/* ---- log.c ---- */

#define LOG_TIME_SIZE 32
/* Now as ISO 8601 in UTC, to the millisecond: "2026-12-03T01:25:03.123Z". Returns buf. */
const char *log_time(char buf[LOG_TIME_SIZE]);
/* "urpoll-proxy: TIME " and the formatted rest, one line written at once on f (stdout is
 * flushed). */
void log_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* errno's name ("ECONNRESET"), or its number. */
const char *log_errno(int err, char *buf, size_t size);

#endif /* URP_TOOLS_PROXY_H */
