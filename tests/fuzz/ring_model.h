/* SPDX-License-Identifier: MIT */
/*
 * The ring_ops fuzz target's model (ring_model.c): its sizes, its entries (a registered socket
 * and the peer end the target plays), the byte streams both ways as the peer must see them, the
 * drivers it runs on, the property checks after every call, and the peer's own operations.
 * ring_ops.c decodes the ops and drives the library; ring_ops.c's head comment has the whole.
 */
#ifndef URP_TESTS_FUZZ_RING_MODEL_H
#define URP_TESTS_FUZZ_RING_MODEL_H

#include "fuzz_util.h"

#define ENTRIES	    4
#define MAX_OPS	    96
#define BUF_COUNT   8
#define BUF_SIZE    256
#define BUF_CAP	    3
#define SEND_HWM    512
#define MAX_HELD    (BUF_COUNT / 2) /* the rest keeps the entries receiving */
#define SMALL_BUF   4096	    /* SO_SNDBUF of a "small" pair */
#define QUICK_TURNS 8
#define SLOW_TURNS  500 /* at least 1 s: a TCP window may open only on a probe */
#define SLOW_MS	    2

/* Any result but a success: an entry whose peer reset may answer any error. */
#define EXPECT_ANY_ERROR 1

/* What to do with a buffer in hand. */
enum use { USE_RELEASE, USE_HOLD, USE_FORWARD, USE_COPY, USE_COUNT };

/* The bytes queued for sending on an entry, as its peer must read them. */
struct out_stream {
	uint8_t *bytes;
	size_t len, cap;
	size_t read; /* how many the peer read */
};

struct entry {
	bool live;
	bool tcp;
	struct urp_io *io;
	int fd;	  /* registered */
	int peer; /* the end the target plays; -1 once reset */
	unsigned stream; /* pattern id of the inbound stream (the outbound one is stream + 1) */
	uint64_t written, taken; /* inbound bytes the peer wrote, bytes taken */
	uint64_t out_pos;	 /* pattern bytes queued by urp_io_send() */
	bool peer_shut;		 /* the peer shut its write side: EOF after the last byte */
	bool reset;		 /* the peer closed with a reset: no stream checks */
	int end;		 /* 1 while open, then what take said: 0 (EOF) or the error */
	bool fin;		 /* urp_io_send_fin() accepted */
	bool peer_eof;		 /* the peer read EOF */
	struct out_stream out;
};

struct held_buf {
	struct urp_buf *buf;
	unsigned stream; /* whose bytes, for messages */
};

/* The two drivers an input may run on (its first byte chooses), each reused across inputs. */
enum config { CONF_SMALL, CONF_OVERFLOW, CONF_COUNT };

struct ring_model {
	struct urp_driver *drvs[CONF_COUNT];
	struct urp_driver *drv; /* this input's */
	enum config conf;
	struct entry ents[ENTRIES];
	struct held_buf held[MAX_HELD];
	unsigned nheld;
	unsigned streams; /* pattern ids handed out in this input */
	bool shut;	  /* urp_driver_shutdown() in this input */
	int fds_before;
	int trace; /* RING_OPS_TRACE=1: ops and outcomes on stderr, to read an input */
	/* What the input reached, for the trace: sends refused at the mark, forwards, copies,
	 * takes that ended in an error. */
	unsigned eagain, forwards, copies, take_errors;
};

/* The model's state; ring_model.c defines it. */
extern struct ring_model m;

/* Streams: byte pos of pattern stream s; len of them into p; bytes queued for a peer. */
uint8_t pattern(unsigned stream, uint64_t pos);
void fill(uint8_t *p, size_t len, unsigned stream, uint64_t pos);
void out_append(struct out_stream *o, const void *data, size_t len);

/* Descriptors: socket options, pairs, closing. */
void setopt(int fd, int level, int name, int val);
void linger0(int fd);
void tcp_pair(int sv[2]);
void close_fd(int *fd);

/* The driver: a turn, its counters, an entry's ready bits and queued bytes, the properties of
 * one entry or all (fatal on a violation). */
void turn(int timeout_ms);
struct urp_stats stats(void);
unsigned ready_of(const struct entry *e);
size_t queued_bytes(const struct entry *e);
void check_entry(struct entry *e, unsigned i);
void check_all(void);

/* The peer: write pattern bytes, read and check up to len, shut its write side, reset. */
void do_peer_write(struct entry *e, size_t len);
ssize_t peer_read(struct entry *e, size_t len);
void do_peer_shut(struct entry *e);
void do_peer_reset(struct entry *e);

#endif /* URP_TESTS_FUZZ_RING_MODEL_H */
