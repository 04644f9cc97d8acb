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
 * Each suite: TestSuite(proxy_NAME, .init = suite_init, .fini = cleanup, .timeout = 120).
 */
#ifndef URP_TESTS_PROXY_UTIL_H
#define URP_TESTS_PROXY_UTIL_H

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "e2e_util.h"

#define MAX_PROCS 8
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
} t;

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

static inline int connect_port(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static inline void wait_listening(unsigned port, const char *what)
{
	double deadline = now_s() + START_S;
	int fd;

	while ((fd = connect_port(port)) < 0) {
		cr_assert_lt(now_s(), deadline, "%s never listened on port %u", what, port);
		sleep_ms(20);
	}
	close(fd);
}

static inline void path_in_dir(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", t.dir, name);
}

/* ---- the servers and the proxy ---- */

static inline unsigned redis_start(void)
{
	unsigned port = free_port();
	char portstr[16];
	char *argv[] = { "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
			 "--appendonly", "no", "--dir", t.dir, "--maxclients", "10000", NULL };

	need_program("redis-server");
	snprintf(portstr, sizeof(portstr), "%u", port);
	spawn(argv, false, SIGKILL);
	wait_listening(port, "redis-server");
	return port;
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

/* The proxy of this build with before (NULL-terminated), a --backend per port given, then after;
 * its output captured. */
static inline struct proc *proxy_spawn(char *const *before, const unsigned *backends,
				       unsigned nbackends, char *const *after)
{
	static char ports[8][32];
	char *argv[40];
	unsigned argc = 0;

	cr_assert_leq(nbackends, 8u);
	argv[argc++] = tool_binary("proxy");
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

/* The proxy in front of the backends given, with extra options (NULL-terminated). */
static inline void proxy_start(const unsigned *backends, unsigned nbackends, char *const *extra)
{
	char *listen[] = { "--listen", "127.0.0.1:0", NULL }, *port_text;

	t.proxy = proxy_spawn(listen, backends, nbackends, extra);
	cr_assert(proc_wait_output(t.proxy, "listening on tcp 127.0.0.1:", START_S) &&
			  proc_wait_output(t.proxy, "\n", START_S),
		  "the proxy did not start: %s", t.proxy->text);
	port_text = strstr(t.proxy->text, "127.0.0.1:") + strlen("127.0.0.1:");
	t.proxy_port = (unsigned)strtoul(port_text, NULL, 10);
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
	cr_assert(proc_wait_output_from(t.proxy, before, "stats:", START_S));
	line = strstr(t.proxy->text + before, "stats:");
	cr_assert(proc_wait_output_from(t.proxy, (size_t)(line - t.proxy->text), "\n", START_S),
		  "no complete stats line: %s", t.proxy->text);
	snprintf(key, sizeof(key), " %s ", name);
	at = strstr(line, key);
	cr_assert_not_null(at, "no %s in %s", name, line);
	return strtoull(at + strlen(key), NULL, 10);
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

#endif /* URP_TESTS_PROXY_UTIL_H */
