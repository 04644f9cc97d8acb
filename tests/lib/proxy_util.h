/* SPDX-License-Identifier: MIT */
/*
 * The fixture of the proxy's end-to-end suites (proxy_*): urpoll-proxy (tools/servers/proxy/)
 * with real servers and clients. A test starts what it needs on free loopback ports:
 * redis-server (redis-benchmark, redis-cli), nginx (wrk, curl) in a temporary directory, or a
 * small backend of its own, and the proxy built beside the test (BUILD/tests/NAME ->
 * BUILD/tools/urpoll-proxy). Every process it starts leads a process group of its own, and in
 * .fini (cleanup()), whatever happened, each group is SIGKILLed and every member reaped (nginx's
 * workers with their master: the test process is a child subreaper, suite_init()); each dies
 * with the test process (PR_SET_PDEATHSIG) should that crash, nginx through SIGTERM, with which
 * its master stops its workers. The temporary directory is removed in .fini too.
 *
 * Beside the processes: redis-servers killed and revived on their port (redis_spawn(),
 * proc_kill()), the proxy started with any arguments (proxy_start_args()) and found by its
 * "listening on tcp" line whatever lines come before or after it, a thread of clients one
 * after the other (struct hammer), the proxy's timestamped lines (proxy_line(),
 * line_has_time()) and a plain HTTP client for its /metrics (http_request()).
 *
 * The proxy's two I/O modes (--io ring, the default, and --io readiness): a test written with
 * PROXY_TEST() is two tests, NAME_ring and NAME_readiness, one body, the mode in t.io, which
 * every proxy started passes on (proxy_spawn(), proxy_start_args(), proxy_argv()). A plain
 * Test() runs the default alone (t.io NULL: no --io).
 *
 * Each suite: TestSuite(proxy_NAME, .init = suite_init, .fini = cleanup, .timeout = 120).
 */
#ifndef URP_TESTS_PROXY_UTIL_H
#define URP_TESTS_PROXY_UTIL_H

#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "e2e_util.h"

#define MAX_PROCS 16
#define OUT_SIZE  65536
#define START_S	  10.0
#define ONE_MIB	  (1u << 20)

struct proc {
	pid_t pid;
	int out; /* read end of its stdout and stderr, or -1 */
	char text[OUT_SIZE];
	size_t len;
};

static struct {
	struct proc procs[MAX_PROCS];
	unsigned nprocs;
	char dir[64]; /* the test's temporary directory */
	struct proc *proxy;
	unsigned proxy_port;
	const char *io; /* --io of every proxy the test starts; NULL: the default */
} t;

/*
 * A test of both I/O modes: NAME_ring and NAME_readiness in the suite, with Test()'s options
 * (.timeout, ...), running the body that follows with t.io set.
 */
#define PROXY_TEST(suite, name, ...)                                                      \
	static void suite##_##name##_body(void);                                            \
	Test(suite, name##_ring, ##__VA_ARGS__)                                             \
	{                                                                                   \
		t.io = "ring";                                                              \
		suite##_##name##_body();                                                    \
	}                                                                                   \
	Test(suite, name##_readiness, ##__VA_ARGS__)                                        \
	{                                                                                   \
		t.io = "readiness";                                                         \
		suite##_##name##_body();                                                    \
	}                                                                                   \
	static void suite##_##name##_body(void)

/* ---- processes and the temporary directory ---- */

/* .fini: every group started SIGKILLed and reaped, the temporary directory removed. */
static inline void cleanup(void)
{
	char cmd[128];

	for (unsigned i = 0; i < t.nprocs; i++) {
		struct proc *p = &t.procs[i];

		if (p->pid > 0) {
			group_kill(p->pid);
			p->pid = -1;
		}
		if (p->out >= 0)
			close(p->out);
		p->out = -1;
	}
	if (t.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "proxy tests: could not remove %s\n", t.dir);
	}
}

/* .init: descriptors, SIGPIPE, the subreaper, the temporary directory. */
static inline void suite_init(void)
{
	/* 5,000 clients, and the proxy's 10,000 descriptors (the hard limit is 20,000 here). */
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	group_reaper();
	strcpy(t.dir, "/tmp/urpoll-proxy-test.XXXXXX");
	cr_assert_not_null(mkdtemp(t.dir), "mkdtemp: %s", strerror(errno));
	/* nginx's worker runs as www-data when started by root: it must read what we serve. */
	chmod(t.dir, 0755);
}

/* A failure, not a skip: `make check` runs tools/scripts/install-deps.sh first, so a missing server
 * means a broken install, which a skip would hide. */
static inline void need_program(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	cr_assert_eq(system(cmd), 0,
		     "%s is not installed (tools/scripts/install-deps.sh installs it)", name);
}

/* The next process slot, empty. */
static inline struct proc *proc_slot(void)
{
	struct proc *p;

	cr_assert_lt(t.nprocs, MAX_PROCS);
	p = &t.procs[t.nprocs++];
	*p = (struct proc){ .pid = -1, .out = -1 };
	return p;
}

/*
 * Start argv, leading a process group of its own; its stdout and stderr are read back through
 * p->out when capture is set. death_signal reaches it when the test process dies.
 */
static inline struct proc *spawn(char *const *argv, bool capture, int death_signal)
{
	struct proc *p = proc_slot();
	int pipefd[2] = { -1, -1 };
	pid_t pid;

	if (capture)
		cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, death_signal);
		group_lead(0);
		dup2(null, 0);
		dup2(capture ? pipefd[1] : null, 1);
		dup2(capture ? pipefd[1] : null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	group_lead(pid);
	if (capture) {
		close(pipefd[1]);
		p->out = pipefd[0];
	}
	p->pid = pid;
	return p;
}

/* Read p's output until needle shows up after offset from, it ends, or seconds pass. */
static inline bool proc_wait_output_from(struct proc *p, size_t from, const char *needle,
					 double seconds)
{
	return wait_output(p->out, p->text, sizeof(p->text), &p->len, from, needle, seconds);
}

static inline bool proc_wait_output(struct proc *p, const char *needle, double seconds)
{
	return proc_wait_output_from(p, 0, needle, seconds);
}

/*
 * Wait for p to exit within seconds; its exit status, or -1. Whatever it started goes with it:
 * the exit is seen without reaping p (WNOWAIT), so that its group id is still its own for
 * group_kill().
 */
static inline int proc_wait_exit(struct proc *p, double seconds)
{
	double deadline = now_s() + seconds;
	siginfo_t info;

	while (now_s() < deadline) {
		info.si_pid = 0;
		if (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    info.si_pid == p->pid) {
			group_kill(p->pid);
			p->pid = -1;
			return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
		}
		sleep_ms(20);
	}
	return -1;
}

/*
 * A backend of the test's own: a listener on a free loopback port, served by a child process
 * that leads a group of its own (killed in .fini with the rest) and dies with the test process.
 * serve(lfd, arg) runs in the child and never returns. Returns the port.
 */
static inline unsigned backend_fork(void (*serve)(int lfd, void *arg), void *arg)
{
	struct sockaddr_in a;
	int lfd = loopback_listener(&a, 64);
	struct proc *p = proc_slot();
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		group_lead(0);
		serve(lfd, arg);
		_exit(1);
	}
	group_lead(pid);
	close(lfd);
	p->pid = pid;
	return ntohs(a.sin_port);
}

/* ---- ports and paths ---- */

/* A port nobody listens on now (the kernel's pick for an ephemeral bind). */
static inline unsigned free_port(void)
{
	return ntohs(closed_port().sin_port);
}

/* A connected TCP socket to ip (an IPv4 or IPv6 literal) and port, or -errno. */
static inline int connect_to(const char *ip, unsigned port)
{
	union sockaddr_any a;
	socklen_t len;
	int fd, err;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1) {
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons((uint16_t)port);
		len = sizeof(a.in6);
	} else {
		cr_assert_eq(inet_pton(AF_INET, ip, &a.in.sin_addr), 1, "bad address %s", ip);
		a.in.sin_family = AF_INET;
		a.in.sin_port = htons((uint16_t)port);
		len = sizeof(a.in);
	}
	fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, &a.sa, len) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static inline int connect_port(unsigned port)
{
	return connect_to("127.0.0.1", port);
}

/* Wait until something listens on ip:port. */
static inline void wait_listening_on(const char *ip, unsigned port, const char *what)
{
	double deadline = now_s() + START_S;
	int fd;

	while ((fd = connect_to(ip, port)) < 0) {
		cr_assert_lt(now_s(), deadline, "%s never listened on %s port %u", what, ip, port);
		sleep_ms(20);
	}
	close(fd);
}

static inline void wait_listening(unsigned port, const char *what)
{
	wait_listening_on("127.0.0.1", port, what);
}

static inline void path_in_dir(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", t.dir, name);
}

/* ---- the servers and the proxy ---- */

/* redis-server on port of bind (an address: "127.0.0.1", "::1"), listening once it returns. */
static inline struct proc *redis_spawn_on(const char *bind, unsigned port)
{
	char portstr[16], bindstr[64];
	char *argv[] = { "redis-server", "--port", portstr, "--bind", bindstr, "--save", "",
			 "--appendonly", "no", "--dir", t.dir, "--maxclients", "10000", NULL };
	struct proc *p;

	need_program("redis-server");
	snprintf(portstr, sizeof(portstr), "%u", port);
	snprintf(bindstr, sizeof(bindstr), "%s", bind);
	p = spawn(argv, false, SIGKILL);
	wait_listening_on(bind, port, "redis-server");
	return p;
}

/* redis-server on 127.0.0.1:port (a port it had before, say: a backend revived). */
static inline struct proc *redis_spawn(unsigned port)
{
	return redis_spawn_on("127.0.0.1", port);
}

static inline unsigned redis_start(void)
{
	unsigned port = free_port();

	redis_spawn(port);
	return port;
}

/* SIGKILL p's group and reap it: a backend that dies. */
static inline void proc_kill(struct proc *p)
{
	cr_assert_gt(p->pid, 0);
	group_kill(p->pid);
	p->pid = -1;
}

/* nginx serving t.dir/www, with its pid, logs and temporary files in t.dir. */
static inline unsigned nginx_start(void)
{
	char conf[PATH_MAX], www[PATH_MAX], body[PATH_MAX * 2];
	unsigned port = free_port();
	FILE *f;

	need_program("nginx");
	path_in_dir(www, sizeof(www), "www");
	mkdir(www, 0755);
	path_in_dir(conf, sizeof(conf), "nginx.conf");
	snprintf(body, sizeof(body),
		 "worker_processes 1;\n"
		 "pid %s/nginx.pid;\n"
		 "error_log %s/nginx-error.log;\n"
		 "events { worker_connections 1024; }\n"
		 "http {\n"
		 "  access_log off;\n"
		 "  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
		 "  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
		 "  server { listen 127.0.0.1:%u; root %s; }\n"
		 "}\n",
		 t.dir, t.dir, t.dir, t.dir, t.dir, t.dir, t.dir, port, www);
	f = fopen(conf, "w");
	cr_assert_not_null(f);
	fputs(body, f);
	fclose(f);
	{
		char *argv[] = { "nginx", "-p", t.dir, "-c", conf, "-g", "daemon off;", NULL };

		/* SIGTERM, not SIGKILL, should the test die: the master then stops its workers. */
		spawn(argv, false, SIGTERM);
	}
	wait_listening(port, "nginx");
	return port;
}

/* The start of a proxy's command line, into argv: the binary of this build, and --io t.io when
 * the test has one. Returns how many words that is. */
static inline unsigned proxy_argv(char **argv)
{
	unsigned argc = 0;

	argv[argc++] = tool_binary("proxy");
	if (t.io) {
		argv[argc++] = "--io";
		argv[argc++] = (char *)t.io;
	}
	return argc;
}

/* The proxy of this build with before (NULL-terminated), a --backend per port given, then after;
 * its output captured. */
static inline struct proc *proxy_spawn(char *const *before, const unsigned *backends,
				       unsigned nbackends, char *const *after)
{
	static char ports[8][32];
	char *argv[40];
	unsigned argc;

	cr_assert_leq(nbackends, 8u);
	argc = proxy_argv(argv);
	while (before && *before)
		argv[argc++] = *before++;
	for (unsigned i = 0; i < nbackends; i++) {
		snprintf(ports[i], sizeof(ports[i]), "127.0.0.1:%u", backends[i]);
		argv[argc++] = "--backend";
		argv[argc++] = ports[i];
	}
	while (after && *after)
		argv[argc++] = *after++;
	cr_assert_lt(argc, 40u);
	argv[argc] = NULL;
	return spawn(argv, true, SIGKILL);
}

/*
 * The port of p's "listening on tcp ADDR:PORT" line, once p printed it (the lines before it,
 * warnings about backends say, name other addresses).
 */
static inline unsigned proxy_wait_listening(struct proc *p)
{
	const char *needle = "listening on tcp ";
	char *line, *end;

	cr_assert(proc_wait_output(p, needle, START_S), "the proxy did not start: %s", p->text);
	line = strstr(p->text, needle);
	cr_assert(proc_wait_output_from(p, (size_t)(line - p->text), "\n", START_S),
		  "no complete listening line: %s", p->text);
	line = strstr(p->text, needle);
	end = strchr(line, '\n');
	while (end > line && end[-1] != ':')
		end--;
	return (unsigned)strtoul(end, NULL, 10);
}

/* The proxy in front of the backends given, with extra options (NULL-terminated). */
static inline void proxy_start(const unsigned *backends, unsigned nbackends, char *const *extra)
{
	char *listen[] = { "--listen", "127.0.0.1:0", NULL };

	t.proxy = proxy_spawn(listen, backends, nbackends, extra);
	t.proxy_port = proxy_wait_listening(t.proxy);
	cr_assert_gt(t.proxy_port, 0u);
}

/* The proxy of this build with exactly args (NULL-terminated), as the running proxy; its
 * --listen must be 127.0.0.1:PORT. */
static inline void proxy_start_args(char *const *args)
{
	char *argv[40];
	unsigned argc = proxy_argv(argv);

	while (*args) {
		cr_assert_lt(argc, 39u);
		argv[argc++] = *args++;
	}
	argv[argc] = NULL;
	t.proxy = spawn(argv, true, SIGKILL);
	t.proxy_port = proxy_wait_listening(t.proxy);
	cr_assert_gt(t.proxy_port, 0u);
}

/* Run a shell command, its output (stdout and stderr) into out; returns its exit status. */
static inline int run(char *out, size_t size, const char *fmt, ...)
{
	char cmd[1024];
	size_t len = 0;
	va_list ap;
	FILE *f;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	cr_assert_not_null(f, "popen %s", cmd);
	while (len + 1 < size && !feof(f)) {
		size_t n = fread(out + len, 1, size - 1 - len, f);

		if (!n)
			break;
		len += n;
	}
	out[len] = '\0';
	status = pclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The proxy's counter name from its last stats line (SIGUSR1 asks for one). */
static inline unsigned long long proxy_counter(const char *name)
{
	char key[64], *line, *at;
	size_t before = t.proxy->len;

	kill(t.proxy->pid, SIGUSR1);
	cr_assert(proc_wait_output_from(t.proxy, before, "stats:", START_S),
		  "no stats line after SIGUSR1 (%zu bytes of output): %s", t.proxy->len,
		  t.proxy->text + before);
	line = strstr(t.proxy->text + before, "stats:");
	cr_assert(proc_wait_output_from(t.proxy, (size_t)(line - t.proxy->text), "\n", START_S),
		  "no complete stats line: %s", t.proxy->text);
	snprintf(key, sizeof(key), " %s ", name);
	at = strstr(line, key);
	cr_assert_not_null(at, "no %s in %s", name, line);
	return strtoull(at + strlen(key), NULL, 10);
}

/*
 * Wait up to seconds for the counter name to read want; returns its last value. Each look
 * is a stats line kept in t.proxy->text, so the looks back off (1 ms, doubling to 100 ms):
 * a slow close under a sanitizer must not fill the output buffer with lines.
 */
static inline unsigned long long proxy_wait_counter(const char *name, unsigned long long want,
						    double seconds)
{
	double end = now_s() + seconds;
	unsigned pause_ms = 1;
	unsigned long long v;

	while ((v = proxy_counter(name)) != want && now_s() < end) {
		sleep_ms(pause_ms);
		pause_ms = pause_ms < 50 ? pause_ms * 2 : 100;
	}
	return v;
}

/* ---- clients ---- */

static inline bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Read exactly len bytes (or to EOF); the count read. */
static inline size_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len && (n = read(fd, (char *)buf + got, len - got)) > 0)
		got += (size_t)n;
	return got;
}

/* One RESP round trip on fd: PING must come back as +PONG. */
static inline bool ping(int fd)
{
	char reply[8];

	return write_all(fd, "PING\r\n", 6) && read_full(fd, reply, 7) == 7 &&
	       !memcmp(reply, "+PONG\r\n", 7);
}

/* The byte stream of the tests' own files and backends: byte i is a function of i alone. */
static inline unsigned char stream_byte(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

/* ---- a stream of clients ---- */

/* Clients one after the other on a thread of the test: connect, PING, +PONG, close. */
struct hammer {
	unsigned port;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool pause, paused; /* asked to wait between two clients; waiting */
	atomic_uint served, failed;
	int last_error; /* of the last failed client: its errno, or EPROTO (no +PONG) */
};

static inline void *hammer_run(void *arg)
{
	struct hammer *h = arg;

	while (!atomic_load(&h->stop)) {
		int fd;

		if (atomic_load(&h->pause)) {
			atomic_store(&h->paused, true);
			sleep_ms(1);
			continue;
		}
		atomic_store(&h->paused, false);
		fd = connect_port(h->port);

		if (fd < 0) {
			h->last_error = -fd;
			atomic_fetch_add(&h->failed, 1);
			continue;
		}
		errno = 0;
		if (ping(fd)) {
			atomic_fetch_add(&h->served, 1);
		} else {
			h->last_error = errno ? errno : EPROTO;
			atomic_fetch_add(&h->failed, 1);
		}
		close(fd);
	}
	return NULL;
}

static inline void hammer_start(struct hammer *h, unsigned port)
{
	h->port = port;
	cr_assert_eq(pthread_create(&h->thread, NULL, hammer_run, h), 0);
}

/* Hold the stream between two clients (none in flight once it returns), or let it go on. */
static inline void hammer_pause(struct hammer *h, bool pause)
{
	atomic_store(&h->pause, pause);
	while (pause && !atomic_load(&h->paused))
		sleep_ms(1);
}

/* Stop the stream; then served and failed are final. */
static inline void hammer_stop(struct hammer *h)
{
	atomic_store(&h->stop, true);
	pthread_join(h->thread, NULL);
}

/* ---- the proxy's lines ---- */

/* How many times needle is in the proxy's output after offset from (what it printed in the
 * last 100 ms read first). */
static inline unsigned proxy_count(size_t from, const char *needle)
{
	unsigned n = 0;

	proc_wait_output_from(t.proxy, t.proxy->len, "\n\n\n", 0.1);

	for (const char *at = t.proxy->text + from; (at = strstr(at, needle)); at++)
		n++;
	return n;
}

/* Whether p starts with a time as the proxy writes it: ISO 8601 in UTC, to the millisecond
 * ("2026-12-03T01:25:03.123Z"). */
static inline bool iso_utc_at(const char *p)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (unsigned i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != shape[i])
			return false;
	return true;
}

/* The line of the proxy's output that holds needle (after offset from), copied into line;
 * false when there is none within seconds. */
static inline bool proxy_line(size_t from, const char *needle, double seconds, char *line,
			      size_t size)
{
	const char *at, *start, *end;

	if (!proc_wait_output_from(t.proxy, from, needle, seconds))
		return false;
	at = strstr(t.proxy->text + from, needle);
	if (!proc_wait_output_from(t.proxy, (size_t)(at - t.proxy->text), "\n", seconds))
		return false;
	at = strstr(t.proxy->text + from, needle);
	for (start = at; start > t.proxy->text && start[-1] != '\n'; start--)
		;
	end = strchr(at, '\n');
	snprintf(line, size, "%.*s", (int)(end - start), start);
	return true;
}

/* Whether line is "urpoll-proxy: TIME ..." with TIME as iso_utc_at() wants it. */
static inline bool line_has_time(const char *line)
{
	return !strncmp(line, "urpoll-proxy: ", 14) && iso_utc_at(line + 14);
}

/* ---- HTTP ---- */

/*
 * Send request (a whole HTTP request) to 127.0.0.1:port and read the answer to its end (the
 * server closes) into out; returns the status code, or -errno.
 */
static inline int http_request(unsigned port, const char *request, char *out, size_t size)
{
	int fd = connect_port(port), status = -EPROTO;
	size_t got;

	if (fd < 0)
		return fd;
	if (!write_all(fd, request, strlen(request))) {
		close(fd);
		return -EPIPE;
	}
	got = read_full(fd, out, size - 1);
	out[got] = '\0';
	close(fd);
	if (!strncmp(out, "HTTP/1.1 ", 9))
		status = atoi(out + 9);
	return status;
}

/* The body of an HTTP answer in out (after its blank line), or NULL. */
static inline char *http_body(char *out)
{
	char *at = strstr(out, "\r\n\r\n");

	return at ? at + 4 : NULL;
}

#endif /* URP_TESTS_PROXY_UTIL_H */
