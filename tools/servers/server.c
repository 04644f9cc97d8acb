/* SPDX-License-Identifier: MIT */
/* server: loops, threads and signals of the urpoll servers (see server.h). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

void server_stop(struct server *s, int status)
{
	if (status)
		atomic_store(&s->exit_status, status);
	for (unsigned i = 0; i < s->nloops; i++)
		urp_loop_stop(s->loops[i].loop);
}

/*
 * The token that held the option getopt_long() has just returned: argv[optind - 1], or
 * argv[optind - 2] when its argument was the next word.
 */
static const char *opt_token(char **argv)
{
	return optarg && optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1];
}

/* "--name" out of "--name" or "--name=value". */
static const char *long_name(const char *token)
{
	static char name[64];

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(token, "="), token);
	return name;
}

const char *server_opt_name(int opt, char **argv)
{
	static char name[3];
	const char *token = opt_token(argv);

	if (token[0] == '-' && token[1] == '-')
		return long_name(token);
	snprintf(name, sizeof(name), "-%c", opt);
	return name;
}

int server_opt_error(const char *prog, const char *opt_name, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: ", prog, opt_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

bool server_opt_count(const char *prog, int opt, char **argv, unsigned min, unsigned max,
		      const char *unit, unsigned *out)
{
	const char *digits = optarg + (optarg[0] == '-');

	if (net_parse_count(optarg, min, max, out))
		return true;
	/* A decimal that does not fit is out of range; anything else is not a number. */
	if (*digits && strspn(digits, "0123456789") == strlen(digits))
		server_opt_error(prog, server_opt_name(opt, argv),
				 "%s is out of range (%u to %u%s%s)", optarg, min, max,
				 *unit ? " " : "", unit);
	else
		server_opt_error(prog, server_opt_name(opt, argv),
				 "'%s' is not a number (%u to %u%s%s)", optarg, min, max,
				 *unit ? " " : "", unit);
	return false;
}

bool server_opt_io(const char *prog, int opt, char **argv, enum server_io *io)
{
	if (!strcmp(optarg, "ring"))
		*io = SERVER_IO_RING;
	else if (!strcmp(optarg, "readiness"))
		*io = SERVER_IO_READINESS;
	else {
		server_opt_error(prog, server_opt_name(opt, argv),
				 "'%s' is not an I/O mode (ring or readiness)", optarg);
		return false;
	}
	return true;
}

const char *server_io_name(enum server_io io)
{
	return io == SERVER_IO_READINESS ? "readiness" : "ring";
}

static bool takes_no_argument(const struct option *options, int val)
{
	for (; options->name; options++)
		if (options->val == val)
			return options->has_arg == no_argument;
	return false;
}

int server_usage_error(const char *prog, int opt, char **argv, const struct option *options)
{
	const char *token = argv[optind - 1];

	if (opt == -1) {
		fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[optind]);
	} else if (opt == ':') {
		/* A missing argument ends its word: optind has moved past it. */
		if (token[0] == '-' && token[1] == '-')
			fprintf(stderr, "%s: %s needs an argument (see --help)\n", prog, token);
		else
			fprintf(stderr, "%s: -%c needs an argument (see --help)\n", prog, optopt);
	} else if (optopt && token[0] == '-' && token[1] == '-' && strchr(token, '=') &&
		   takes_no_argument(options, optopt)) {
		/* "--quiet=1": glibc reports the option's value in optopt. */
		fprintf(stderr, "%s: %s takes no argument (see --help)\n", prog, long_name(token));
	} else if (optopt) {
		/* An unknown short option, perhaps inside a group ("-qx"): optind may not have
		 * moved, so only optopt names it. */
		fprintf(stderr, "%s: unknown option '-%c' (see --help)\n", prog, optopt);
	} else {
		/* An unknown or ambiguous long option: always a word of its own. */
		fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, long_name(token));
	}
	return 2;
}

/* ---- signals ---- */

int server_signals_open(struct server *s, const int *extra_signals)
{
	sigset_t mask;

	/* Signals are blocked in every thread (they inherit the mask) and read from a signalfd
	 * by a task: no handler, nothing async-signal-unsafe. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	for (; extra_signals && *extra_signals; extra_signals++)
		sigaddset(&mask, *extra_signals);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sig_fd < 0) {
		fprintf(stderr, "%s: signalfd: %s\n", s->prog, strerror(errno));
		return -errno;
	}
	return 0;
}

void server_signals_close(struct server *s)
{
	close(s->sig_fd);
}

static ssize_t sig_read(void *arg)
{
	struct server_loop *l = arg;
	ssize_t n = read(l->server->sig_fd, &l->sig_info, sizeof(l->sig_info));

	return n < 0 ? -errno : n;
}

/*
 * One per loop, all on the same signalfd: a signal wakes every loop's task, one read takes it
 * and the others clear their readiness on EAGAIN. On every loop rather than on loop 0 alone,
 * because a loop stops on its own when a drain leaves it without connections: with the task on
 * loop 0 only, a second SIGTERM or a SIGUSR1 sent while another loop still drained was never
 * read.
 */
static int sig_run(struct urp_task *task, void *arg)
{
	struct urp_waker waker = urp_task_waker(task);
	struct server_loop *l = arg;
	struct urp_event ev;
	ssize_t n;

	for (;;) {
		n = urp_io_try_io(l->sig_io, URP_READABLE, sig_read, l);
		if (n > 0) {
			l->server->on_signal((int)l->sig_info.ssi_signo);
			continue;
		}
		if (n != -EAGAIN)
			return 0;
		if (urp_io_poll_ready(l->sig_io, URP_DIR_READ, &waker, &ev) == -EAGAIN)
			return 0;
	}
}

/* ---- loops ---- */

int server_loops_new(struct server *s, unsigned n, const struct urp_driver_opts *opts)
{
	int ret;

	s->loops = calloc(n, sizeof(*s->loops));
	if (!s->loops) {
		fprintf(stderr, "%s: %s\n", s->prog, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		struct server_loop *l = &s->loops[i];

		l->server = s;
		l->index = i;
		ret = urp_loop_new(&l->loop, opts);
		if (ret < 0) {
			fprintf(stderr, "%s: %s\n", s->prog, urp_strerror(ret));
			return ret;
		}
		s->nloops++;
		ret = urp_register(urp_loop_driver(l->loop), s->sig_fd, URP_READABLE, &l->sig_io);
		if (ret < 0) {
			fprintf(stderr, "%s: register: %s\n", s->prog, urp_strerror(ret));
			return ret;
		}
		urp_task_init(&l->sig_task, l->loop, sig_run, l);
		urp_task_wake(&l->sig_task);
	}
	return 0;
}

/* Set drv's provided-buffer ring up: a socket registered in ring mode, then let go (the
 * deregistration waits for the loop's first turn; the descriptor goes now, which
 * urp_deregister() allows, so that the server's descriptors are back to their count at
 * once). Returns 0 or -errno. */
static int ring_probe(struct urp_driver *drv)
{
	struct urp_io *io;
	int sv[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	ret = urp_register_ring(drv, sv[0], &io);
	if (ret == 0)
		urp_deregister(io);
	close(sv[0]);
	close(sv[1]);
	return ret;
}

int server_io_setup(struct server *s, enum server_io *io)
{
	int ret = 0;

	if (*io == SERVER_IO_READINESS)
		return 0;
	for (unsigned i = 0; i < s->nloops && ret == 0; i++)
		ret = ring_probe(urp_loop_driver(s->loops[i].loop));
	if (ret == 0) {
		*io = SERVER_IO_RING;
		return 0;
	}
	if (*io == SERVER_IO_RING) {
		fprintf(stderr, "%s: --io ring: %s\n", s->prog, urp_strerror(ret));
		return ret;
	}
	/* Loops that did set their ring up keep it, unused: its pages are never touched. */
	if (!s->quiet)
		fprintf(stderr, "%s: ring mode unavailable (%s): --io readiness\n", s->prog,
			urp_strerror(ret));
	*io = SERVER_IO_READINESS;
	return 0;
}

void server_loops_free(struct server *s)
{
	for (unsigned i = 0; i < s->nloops; i++)
		urp_loop_free(s->loops[i].loop);
	free(s->loops);
	s->loops = NULL;
	s->nloops = 0;
}

/* Pin the calling thread to the index-th CPU this process may use (modulo their number). */
static void pin_to(unsigned index)
{
	cpu_set_t allowed, one;
	unsigned seen = 0, want;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) || !CPU_COUNT(&allowed))
		return;
	want = index % (unsigned)CPU_COUNT(&allowed);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed) || seen++ != want)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
		break;
	}
}

static void *loop_main(void *arg)
{
	struct server_loop *l = arg;
	struct server *s = l->server;
	int ret;

	if (s->pin)
		pin_to(l->index);
	ret = urp_loop_run(l->loop);
	if (ret < 0) {
		fprintf(stderr, "%s: loop %u: %s\n", s->prog, l->index, urp_strerror(ret));
		server_stop(s, 1);
	}
	return NULL;
}

int server_run(struct server *s, const union sockaddr_any *tcp, const char *unix_path)
{
	unsigned started;
	char text[128];
	int ret;

	for (started = 1; started < s->nloops; started++) {
		struct server_loop *l = &s->loops[started];

		ret = pthread_create(&l->thread, NULL, loop_main, l);
		if (ret) {
			fprintf(stderr, "%s: cannot start a thread: %s\n", s->prog, strerror(ret));
			server_stop(s, 1);
			break;
		}
		/* "urpoll-echo/1": loops 1..N-1 by name in ps and top (loop 0 is the main
		 * thread), named before the address is printed. */
		snprintf(text, sizeof(text), "%s/%u", s->prog, started);
		text[15] = '\0';
		pthread_setname_np(l->thread, text);
	}
	if (started == s->nloops) {
		/* Printed once every loop exists: whoever reads it may connect at once. */
		if (!s->quiet) {
			if (tcp)
				printf("%s: listening on tcp %s\n", s->prog,
				       net_addr_str(tcp, text, sizeof(text)));
			if (unix_path)
				printf("%s: listening on unix %s\n", s->prog, unix_path);
			fflush(stdout);
		}
		loop_main(&s->loops[0]);
	}
	for (unsigned i = 1; i < started; i++)
		pthread_join(s->loops[i].thread, NULL);
	return atomic_load(&s->exit_status);
}

int server_poll_failed(const char *prog, const struct urp_io *io, const char *what)
{
	int err = io ? urp_io_poll_error(io) : 0;

	if (err < 0)
		fprintf(stderr, "%s: the poll on %s failed: %s\n", prog, what, strerror(-err));
	return err < 0 ? err : 0;
}

/* ---- statistics ---- */

void server_stats(struct server *s, struct urp_stats *sum)
{
	struct urp_stats st;

	*sum = (struct urp_stats){ 0 };
	for (unsigned i = 0; i < s->nloops; i++) {
		if (urp_driver_stats(urp_loop_driver(s->loops[i].loop), &st))
			continue;
		sum->events += st.events;
		sum->stale_rejects += st.stale_rejects;
		sum->wake_batches += st.wake_batches;
		sum->wakes += st.wakes;
		sum->unknown_tokens += st.unknown_tokens;
		sum->recv_bufs += st.recv_bufs;
		sum->recv_bytes += st.recv_bytes;
		sum->enobufs += st.enobufs;
		sum->paused += st.paused;
		sum->sends += st.sends;
		sum->send_bytes += st.send_bytes;
	}
}

void server_stats_check(const struct server *s, const struct urp_stats *sum)
{
	/* A completion for no live registration: a bug in urpoll, never in the caller. */
	if (sum->unknown_tokens)
		fprintf(stderr, "%s: %llu completions named no live registration (a urpoll bug)\n",
			s->prog, (unsigned long long)sum->unknown_tokens);
}
