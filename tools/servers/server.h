/* SPDX-License-Identifier: MIT */
/*
 * server: the thread-per-core scaffolding of the urpoll servers (urpoll-echo, urpoll-proxy).
 * N loops, loop 0 on the main thread and loop i on a thread named "PROG/i"; SIGINT, SIGTERM
 * (and more signals of the server's choice) read from one signalfd by a task on every loop,
 * so that signals are handled while any loop runs; the "listening on" lines once every loop
 * exists; a stop of every loop from any thread.
 *
 * Each function that fails prints why on stderr, prefixed with prog, and returns -errno.
 */
#ifndef URP_TOOLS_SERVER_H
#define URP_TOOLS_SERVER_H

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/signalfd.h>

#include <urpoll.h>

#include "net.h"

#ifndef container_of
/* The struct of type whose member is at ptr. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/*
 * A loop's open connections, which the exit closes (and the proxy's timer walks): a
 * NULL-terminated doubly linked list through a struct server_link in each connection, headed
 * by a pointer. The loop's thread only.
 */
struct server_link {
	struct server_link *prev, *next;
};

static inline void server_link_add(struct server_link **head, struct server_link *l)
{
	l->prev = NULL;
	l->next = *head;
	if (*head)
		(*head)->prev = l;
	*head = l;
}

static inline void server_link_del(struct server_link **head, struct server_link *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		*head = l->next;
	if (l->next)
		l->next->prev = l->prev;
}

struct server;

struct server_loop {
	struct server *server;
	struct urp_loop *loop;
	pthread_t thread;
	unsigned index;
	/* This loop's watch on the server's signalfd: every loop has one, whichever reads a
	 * signal first handles it (the others find EAGAIN). */
	struct urp_task sig_task;
	struct urp_io *sig_io;
	struct signalfd_siginfo sig_info;
};

struct server {
	const char *prog; /* prefix of the messages and the threads' names */
	bool quiet;	  /* no "listening on" lines */
	bool pin;	  /* loop i on the i-th CPU the process may use */
	/*
	 * Called for each signal read (SIGINT, SIGTERM or an extra one), on the thread of
	 * whichever loop read it: any loop's, and two at once for two signals close together. A
	 * loop that stopped (a drain that ended on it) reads no more, the others still do.
	 */
	void (*on_signal)(int signo);
	struct server_loop *loops; /* nloops of them */
	unsigned nloops;
	int sig_fd;
	atomic_int exit_status;
};

/*
 * Ignore SIGPIPE and block SIGINT, SIGTERM and the extra signals (a list ended by 0, or NULL:
 * none) in this thread and the threads it starts later, to be read from s->sig_fd. Returns 0
 * or -errno.
 */
int server_signals_open(struct server *s, const int *extra_signals);
/* n loops on driver options opts (s->nloops counts those made, for server_loops_free()), each
 * with its signal task. Returns 0 or -errno. */
int server_loops_new(struct server *s, unsigned n, const struct urp_driver_opts *opts);
/*
 * Start a thread for each loop but the first, print where the server listens (tcp and
 * unix_path each when not NULL, unless quiet) once they all run, then run loop 0 on this thread
 * until the server stops and join the others. Returns the exit status: 0 after a signal, 1 if
 * a thread could not start or a loop failed (or server_stop() was called with 1).
 */
int server_run(struct server *s, const union sockaddr_any *tcp, const char *unix_path);
/*
 * Option errors, after getopt_long() with ":" leading its optstring. Each prints one line on
 * stderr, "prog: ...", naming the option as the user spelled it: "--name" for a long option
 * (without its "=value"), "-c" for a short one.
 *
 * server_usage_error(): opt ':' (an option without its argument), '?' (an unknown option, or
 * one of options that takes no argument given one: "--quiet=1") or -1 (an operand at
 * argv[optind], which the servers take none of). Returns 2, the exit status of bad usage.
 */
int server_usage_error(const char *prog, int opt, char **argv, const struct option *options);
/* The option opt that getopt_long() has just returned with optarg, as spelled; the string
 * stays valid until the next call. */
const char *server_opt_name(int opt, char **argv);
/* "prog: opt_name: " and the formatted rest. Returns 2. */
int server_opt_error(const char *prog, const char *opt_name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * optarg as a decimal in [min, max] into *out. Otherwise prints "'x' is not a number (min to
 * max unit)" or "x is out of range (min to max unit)" for opt and returns false.
 */
bool server_opt_count(const char *prog, int opt, char **argv, unsigned min, unsigned max,
		      const char *unit, unsigned *out);
/*
 * How a server moves bytes (--io): SERVER_IO_RING, io_uring's own recv and send (ring mode:
 * urp_register_ring(), buffers from the driver's provided-buffer ring, sends queued on the
 * ring), or SERVER_IO_READINESS, recv() and send() when the readiness word says so (a
 * multishot poll per socket). SERVER_IO_DEFAULT: ring where the kernel has it.
 */
enum server_io { SERVER_IO_DEFAULT, SERVER_IO_RING, SERVER_IO_READINESS };

/* --io's optarg ("ring" or "readiness") into *io; otherwise "prog: --io: ..." and false. */
bool server_opt_io(const char *prog, int opt, char **argv, enum server_io *io);
/* "ring" or "readiness". */
const char *server_io_name(enum server_io io);
/*
 * Before the loops run: settle *io on every loop of s. Ring mode (asked for, or the default)
 * sets each driver's provided-buffer ring up now, with a socket registered in ring mode and
 * deregistered at once, so that a kernel without it fails here rather than at the first
 * client: asked for, that is "prog: --io ring: REASON" and its -errno; the default falls back
 * to readiness, said in one line unless quiet. Returns 0 or -errno.
 */
int server_io_setup(struct server *s, enum server_io *io);

/*
 * Whether the driver stopped watching io because the poll on its descriptor failed
 * (urp_io_poll_error(): the entry is shut down and reports ERROR): then prints "prog: the poll
 * on WHAT failed: REASON" on stderr and returns the poll's -errno. Otherwise 0: io is live, or
 * shut down with its driver (nothing to say), or NULL. For a task that got -ESHUTDOWN from io,
 * or finds nothing to do on it.
 */
int server_poll_failed(const char *prog, const struct urp_io *io, const char *what);
/* Stop every loop (any thread); a nonzero status becomes the exit status of server_run(). */
void server_stop(struct server *s, int status);
/* The driver statistics of all loops, summed (the counters the servers print). */
void server_stats(struct server *s, struct urp_stats *sum);
/* Report on stderr completions for no live registration in sum: a bug in urpoll. */
void server_stats_check(const struct server *s, const struct urp_stats *sum);
/* Free the loops: every entry still registered with them, so that the descriptors are the
 * caller's to close. */
void server_loops_free(struct server *s);
/* Close the signalfd of server_signals_open(). */
void server_signals_close(struct server *s);

#endif /* URP_TOOLS_SERVER_H */
