/* SPDX-License-Identifier: MIT */
/*
 * Shared by the driver fuzz targets (driver_ops, driver_faults): entries over real file
 * descriptors (pipes, socketpairs, eventfds) registered on one real io_uring driver, the model
 * of what the kernel holds for each fd, the public-API ops, and the properties checked at every
 * settle and at the end of each input (tests/fuzz/README.md lists them). driver_model.c holds
 * the code; each target decodes its own op stream and calls drv_model_op() for the public ones.
 */
#ifndef URP_TESTS_FUZZ_DRIVER_MODEL_H
#define URP_TESTS_FUZZ_DRIVER_MODEL_H

#include "fuzz_util.h"

#define DRV_MODEL_ENTRIES 6
#define DRV_MODEL_MAX_OPS 64

/* The public-API ops, in the order of driver_ops's op byte (its seeds depend on it). */
enum drv_model_op {
	OP_REGISTER,
	OP_WRITE,
	OP_READ,
	OP_HANGUP,
	OP_TURN,
	OP_POLL_READY,
	OP_FUTURE,
	OP_CANCEL,
	OP_TASK,
	OP_WAIT0,
	OP_DEREGISTER,
	OP_SETTLE,
	OP_SHUTDOWN,
	OP_COUNT,
};

enum drv_model_kind { K_PIPE_R, K_PIPE_W, K_SOCK, K_EVENTFD, K_COUNT };

struct counted_waker {
	unsigned stored; /* times a waker was left pending with the library */
	unsigned called;
	bool gone;	 /* its entry was deregistered: it must never be called again */
};

struct entry {
	bool live;
	enum drv_model_kind kind;
	unsigned interest;
	struct urp_io *io;
	int fd;	  /* the registered fd */
	int peer; /* the other end (-1 for an eventfd, or once hung up) */
	unsigned queued; /* bytes (or the eventfd count) the kernel holds for fd */
	bool hup;	 /* the peer is gone */
	bool failed;	 /* seen shut down by the driver, not by urp_driver_shutdown() */
	/* Allocated per registration: after deregistration the library may still hold them (it
	 * must not call them), so they outlive the entry until the end of the input. */
	struct counted_waker *slot[2];
	struct urp_readiness fut;
	bool fut_waiting;
	struct counted_waker fut_waker;
	struct urp_task task;
	struct urp_readiness task_fut;
	bool task_waiting;
	bool read_ran;
};

struct drv_model {
	struct urp_loop *loop;
	struct urp_driver *drv;
	struct entry ents[DRV_MODEL_ENTRIES];
	bool shut; /* urp_driver_shutdown() was called in this input */
	/*
	 * Polls may die (injected faults): an entry whose word the driver shut down with ERROR
	 * is then a documented outcome, not a failure, and its word is no longer checked against
	 * the kernel. Off in driver_ops, where no poll may fail.
	 */
	bool polls_may_fail;
	unsigned failed_seen; /* entries seen shut down by the driver in this input */
	struct counted_waker *gone[2 * DRV_MODEL_MAX_OPS]; /* slot wakers of deregistered entries */
	unsigned nr_gone;
	int fds_before;
};

extern struct drv_model model;

/* Start an input: make the loop if there is none (opts for its driver), forget the entries. */
void drv_model_begin(const struct urp_driver_opts *opts);
/* Run public op on entry e (ops other than register, turn, settle and shutdown skip an entry
 * that is not live), taking its arguments from in. */
void drv_model_op(enum drv_model_op op, struct entry *e, struct fuzz_in *in);
/* Turn until every live entry satisfies the settle properties, within a bound. */
void drv_model_settle(void);
/* End an input: deregister everything, turn until live is 0, check that no fd leaked, free the
 * loop after a shutdown. Returns the driver's stats once live is 0 (the caller checks its
 * counters). */
struct urp_stats drv_model_finish(void);
void drv_model_turn(int timeout_ms);

#endif /* URP_TESTS_FUZZ_DRIVER_MODEL_H */
