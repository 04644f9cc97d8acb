/* SPDX-License-Identifier: MIT */
/*
 * proxy_e2e: urpoll-proxy (tools/servers/proxy/) end to end, with real servers and clients. Each test starts what
 * it needs on free loopback ports: redis-server (redis-benchmark, redis-cli), nginx (wrk, curl)
 * in a temporary directory, or a small backend of its own (half-close, back-pressure, RSS), and
 * the proxy built beside this test (BUILD/tests/proxy_e2e -> BUILD/tools/urpoll-proxy). Every
 * process it starts leads a process group of its own, and in .fini, whatever happened, each
 * group is SIGKILLed and every member reaped (nginx's workers with their master); each dies
 * with the test process (PR_SET_PDEATHSIG) should that crash, nginx through SIGTERM, with
 * which its master stops its workers. The temporary directory is removed in .fini too.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <urpoll.h>

#include "e2e_util.h"

#define MAX_PROCS 8
#define OUT_SIZE  65536
#define START_S	  10.0
#define ONE_MIB	  (1u << 20)
#define IDLE_CONNS 5000

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

static void cleanup(void)
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
			fprintf(stderr, "proxy_e2e: could not remove %s\n", t.dir);
	}
}

static void suite_init(void)
{
	/* 5,000 clients, and the proxy's 10,000 descriptors (the hard limit is 20,000 here). */
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	group_reaper();
	strcpy(t.dir, "/tmp/proxy_e2e.XXXXXX");
	cr_assert_not_null(mkdtemp(t.dir), "mkdtemp: %s", strerror(errno));
	/* nginx's worker runs as www-data when started by root: it must read what we serve. */
	chmod(t.dir, 0755);
}

TestSuite(proxy_e2e, .init = suite_init, .fini = cleanup, .timeout = 120);

/* A failure, not a skip: `make check` runs tools/scripts/install-deps.sh first, so a missing server
 * means a broken install, which a skip would hide. */
static void need_program(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	cr_assert_eq(system(cmd), 0, "%s is not installed (tools/scripts/install-deps.sh installs it)",
		     name);
}

/*
 * Start argv, leading a process group of its own; its stdout and stderr are read back through
 * p->out when capture is set. death_signal reaches it when the test process dies.
 */
static struct proc *spawn(char *const *argv, bool capture, int death_signal)
{
	struct proc *p;
	int pipefd[2] = { -1, -1 };
	pid_t pid;

	cr_assert_lt(t.nprocs, MAX_PROCS);
	p = &t.procs[t.nprocs++];
	*p = (struct proc){ .pid = -1, .out = -1 };
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
static bool proc_wait_output_from(struct proc *p, size_t from, const char *needle, double seconds)
{
	return wait_output(p->out, p->text, sizeof(p->text), &p->len, from, needle, seconds);
}

static bool proc_wait_output(struct proc *p, const char *needle, double seconds)
{
	return proc_wait_output_from(p, 0, needle, seconds);
}

/*
 * Wait for p to exit within seconds; its exit status, or -1. Whatever it started goes with it:
 * the exit is seen without reaping p (WNOWAIT), so that its group id is still its own for
 * group_kill().
 */
static int proc_wait_exit(struct proc *p, double seconds)
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

/* A port nobody listens on now (the kernel's pick for an ephemeral bind). */
static unsigned free_port(void)
{
	return ntohs(closed_port().sin_port);
}

static int connect_port(unsigned port)
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

static void wait_listening(unsigned port, const char *what)
{
	double deadline = now_s() + START_S;
	int fd;

	while ((fd = connect_port(port)) < 0) {
		cr_assert_lt(now_s(), deadline, "%s never listened on port %u", what, port);
		sleep_ms(20);
	}
	close(fd);
}

static void path_in_dir(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", t.dir, name);
}

static unsigned redis_start(void)
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
static unsigned nginx_start(void)
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

/* The proxy in front of the backends given, with extra options (NULL-terminated). */
static void proxy_start(const unsigned *backends, unsigned nbackends, char *const *extra)
{
	static char bin[PATH_MAX + 32], ports[8][32];
	char self[PATH_MAX], *slash, *argv[40], *port_text;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	unsigned argc = 0;

	cr_assert_gt(n, 0);
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/../tools/urpoll-proxy", self);
	cr_assert_eq(access(bin, X_OK), 0, "%s: %s (make tools first)", bin, strerror(errno));
	argv[argc++] = bin;
	argv[argc++] = "--listen";
	argv[argc++] = "127.0.0.1:0";
	for (unsigned i = 0; i < nbackends; i++) {
		snprintf(ports[i], sizeof(ports[i]), "127.0.0.1:%u", backends[i]);
		argv[argc++] = "--backend";
		argv[argc++] = ports[i];
	}
	while (extra && *extra)
		argv[argc++] = *extra++;
	argv[argc] = NULL;
	t.proxy = spawn(argv, true, SIGKILL);
	cr_assert(proc_wait_output(t.proxy, "listening on tcp 127.0.0.1:", START_S) &&
			  proc_wait_output(t.proxy, "\n", START_S),
		  "the proxy did not start: %s", t.proxy->text);
	port_text = strstr(t.proxy->text, "127.0.0.1:") + strlen("127.0.0.1:");
	t.proxy_port = (unsigned)strtoul(port_text, NULL, 10);
	cr_assert_gt(t.proxy_port, 0u);
}

/* Run a shell command, its output (stdout and stderr) into out; returns its exit status. */
static int run(char *out, size_t size, const char *fmt, ...)
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
static unsigned long long proxy_counter(const char *name)
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

/* Wait until the proxy holds want descriptors again; returns the last count seen. */
static int wait_fds(int want, double seconds)
{
	double deadline = now_s() + seconds;
	int n;

	while ((n = count_fds(t.proxy->pid)) != want && now_s() < deadline)
		sleep_ms(50);
	return n;
}

static long vm_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static bool write_all(int fd, const void *buf, size_t len)
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
static size_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len && (n = read(fd, (char *)buf + got, len - got)) > 0)
		got += (size_t)n;
	return got;
}

/* One RESP round trip on fd: PING must come back as +PONG. */
static bool ping(int fd)
{
	char reply[8];

	return write_all(fd, "PING\r\n", 6) && read_full(fd, reply, 7) == 7 &&
	       !memcmp(reply, "+PONG\r\n", 7);
}

/* ---- a backend of our own: the byte stream, the half-close and the flood ---- */

static unsigned char stream_byte(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

/*
 * A one-connection-at-a-time backend in a child process. mode 'h' (half-close): read until
 * EOF, then send back "<n bytes read>\n" and ONE_MIB bytes of the stream, then close. mode 'f'
 * (flood): send `flood` bytes of the stream as fast as the socket takes them, then close.
 */
static unsigned backend_start(char mode, uint64_t flood)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct proc *p;
	pid_t pid;

	cr_assert_geq(lfd, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 64), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	cr_assert_lt(t.nprocs, MAX_PROCS);
	p = &t.procs[t.nprocs++];
	*p = (struct proc){ .pid = -1, .out = -1 };
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		static unsigned char buf[65536];

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		group_lead(0);
		for (;;) {
			int fd = accept(lfd, NULL, NULL);
			uint64_t total = 0, off = 0;
			char head[32];
			ssize_t n;

			if (fd < 0)
				continue;
			if (mode == 'h') {
				while ((n = read(fd, buf, sizeof(buf))) > 0)
					total += (uint64_t)n;
				snprintf(head, sizeof(head), "%llu\n", (unsigned long long)total);
				write_all(fd, head, strlen(head));
				flood = ONE_MIB;
			}
			while (off < flood) {
				size_t chunk = flood - off < sizeof(buf) ? flood - off : sizeof(buf);

				for (size_t i = 0; i < chunk; i++)
					buf[i] = stream_byte(off + i);
				if (!write_all(fd, buf, chunk))
					break;
				off += chunk;
			}
			close(fd);
		}
	}
	group_lead(pid);
	close(lfd);
	p->pid = pid;
	return ntohs(a.sin_port);
}

/* ---- redis ---- */

Test(proxy_e2e, redis_benchmark_through_the_proxy_has_no_errors)
{
	char out[OUT_SIZE], *two_threads[] = { "--threads", "2", NULL };
	unsigned redis;
	int status;

	skip_without_io_uring();
	need_program("redis-benchmark");
	redis = redis_start();
	/* Two loops: the kernel spreads the 50 clients over both listeners. */
	proxy_start(&redis, 1, two_threads);
	status = run(out, sizeof(out),
		     "redis-benchmark -h 127.0.0.1 -p %u -t ping,set,get -n 20000 -c 50 --csv 2>&1",
		     t.proxy_port);
	cr_assert_eq(status, 0, "redis-benchmark failed (%d): %s", status, out);
	for (const char *test = "PING_INLINE\0PING_MBULK\0SET\0GET\0"; *test;
	     test += strlen(test) + 1) {
		char key[32];

		snprintf(key, sizeof(key), "\"%s\",\"", test);
		cr_assert_not_null(strstr(out, key), "no %s result in: %s", test, out);
	}
	cr_assert_null(strstr(out, "rror"), "errors in: %s", out);
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
	cr_assert_eq(proxy_counter("connect_errors"), 0ull);
	cr_assert_geq(proxy_counter("conns"), 50ull);
}

Test(proxy_e2e, redis_cli_round_trips_a_1mib_value_byte_exact)
{
	char value[PATH_MAX], got[PATH_MAX], out[4096];
	unsigned redis;
	FILE *f;

	skip_without_io_uring();
	need_program("redis-cli");
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	path_in_dir(value, sizeof(value), "value");
	path_in_dir(got, sizeof(got), "got");
	f = fopen(value, "w");
	cr_assert_not_null(f);
	for (uint64_t i = 0; i < ONE_MIB; i++)
		fputc('!' + stream_byte(i) % 90, f);
	fclose(f);
	cr_assert_eq(run(out, sizeof(out), "redis-cli -p %u -x SET big < %s", t.proxy_port, value),
		     0, "%s", out);
	cr_assert_not_null(strstr(out, "OK"), "%s", out);
	/* --raw adds one newline after the value. */
	cr_assert_eq(run(out, sizeof(out), "redis-cli -p %u --raw GET big | head -c %u > %s",
			 t.proxy_port, ONE_MIB, got),
		     0, "%s", out);
	cr_assert_eq(run(out, sizeof(out), "cmp %s %s", value, got), 0, "%s", out);
}

/* ---- nginx ---- */

Test(proxy_e2e, wrk_through_the_proxy_sees_no_socket_errors_and_no_non_2xx)
{
	char out[OUT_SIZE], page[PATH_MAX];
	unsigned nginx;
	FILE *f;

	skip_without_io_uring();
	need_program("wrk");
	nginx = nginx_start();
	path_in_dir(page, sizeof(page), "www/index.html");
	f = fopen(page, "w");
	cr_assert_not_null(f);
	fputs("<html><body>urpoll-proxy</body></html>\n", f);
	fclose(f);
	proxy_start(&nginx, 1, NULL);
	cr_assert_eq(run(out, sizeof(out), "wrk -t 2 -c 50 -d 3s http://127.0.0.1:%u/index.html",
			 t.proxy_port),
		     0, "%s", out);
	cr_assert_not_null(strstr(out, "requests in"), "%s", out);
	cr_assert_null(strstr(out, "Socket errors"), "%s", out);
	cr_assert_null(strstr(out, "Non-2xx"), "%s", out);
	/* Not io_errors: wrk ends with requests in flight, and those closes are resets. */
	cr_assert_eq(proxy_counter("connect_errors"), 0ull);
}

Test(proxy_e2e, curl_gets_a_10mib_file_with_the_right_checksum)
{
	char out[OUT_SIZE], file[PATH_MAX], got[PATH_MAX];
	unsigned nginx;
	FILE *f;

	skip_without_io_uring();
	need_program("curl");
	nginx = nginx_start();
	path_in_dir(file, sizeof(file), "www/ten");
	path_in_dir(got, sizeof(got), "ten.got");
	f = fopen(file, "w");
	cr_assert_not_null(f);
	for (uint64_t i = 0; i < 10ull * ONE_MIB; i++)
		fputc(stream_byte(i), f);
	fclose(f);
	proxy_start(&nginx, 1, NULL);
	cr_assert_eq(run(out, sizeof(out), "curl -sSf -o %s http://127.0.0.1:%u/ten", got,
			 t.proxy_port),
		     0, "%s", out);
	cr_assert_eq(run(out, sizeof(out),
			 "test \"$(sha256sum < %s)\" = \"$(sha256sum < %s)\"", file, got),
		     0, "the checksums differ");
}

/* ---- half-close, back-pressure, timeouts ---- */

Test(proxy_e2e, a_client_half_close_still_gets_the_full_response)
{
	static unsigned char reply[ONE_MIB + 64];
	char request[100000];
	unsigned backend;
	size_t got;
	char *nl;
	int fd;

	skip_without_io_uring();
	backend = backend_start('h', 0);
	proxy_start(&backend, 1, NULL);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	memset(request, 'q', sizeof(request));
	cr_assert(write_all(fd, request, sizeof(request)));
	/* The backend answers only after our FIN reached it through the proxy. */
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	got = read_full(fd, reply, sizeof(reply));
	nl = memchr(reply, '\n', got < 32 ? got : 32);
	cr_assert_not_null(nl, "no header in %zu bytes", got);
	cr_assert_eq(strtoull((char *)reply, NULL, 10), (unsigned long long)sizeof(request));
	cr_assert_eq(got - (size_t)((unsigned char *)nl + 1 - reply), (size_t)ONE_MIB,
		     "short response: %zu bytes", got);
	for (size_t i = 0; i < ONE_MIB; i++)
		cr_assert_eq(((unsigned char *)nl + 1)[i], stream_byte(i), "byte %zu", i);
	close(fd);
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

Test(proxy_e2e, slow_clients_of_a_fast_backend_keep_the_proxy_rss_bounded)
{
	const uint64_t flood = 256ull * ONE_MIB;
	static unsigned char buf[65536];
	unsigned backend;
	long rss0, rss1;
	int fds[4];

	skip_without_io_uring();
	backend = backend_start('f', flood);
	proxy_start(&backend, 1, NULL);
	rss0 = vm_rss_kib(t.proxy->pid);
	/* The backend serves one connection at a time: the first client stalls it. */
	for (unsigned i = 0; i < 4; i++) {
		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0);
	}
	sleep_ms(1500); /* the backend writes as fast as it can; nobody reads */
	rss1 = vm_rss_kib(t.proxy->pid);
	/* Unbounded buffering would hold most of the 256 MiB; 32 KiB per connection is the
	 * design, the rest is slack for malloc and the rings. */
	cr_assert_lt(rss1 - rss0, 8192, "RSS grew from %ld to %ld KiB", rss0, rss1);
	/* Then the first client reads it all, byte for byte. */
	for (uint64_t off = 0; off < flood;) {
		size_t want = flood - off < sizeof(buf) ? flood - off : sizeof(buf);
		size_t got = read_full(fds[0], buf, want);

		cr_assert_eq(got, want, "EOF at %llu", (unsigned long long)off + got);
		for (size_t i = 0; i < got; i += 4093)
			cr_assert_eq(buf[i], stream_byte(off + i));
		off += got;
	}
	cr_assert_eq(read(fds[0], buf, 1), 0);
	cr_assert_lt(vm_rss_kib(t.proxy->pid) - rss0, 8192);
	for (unsigned i = 0; i < 4; i++)
		close(fds[i]);
}

Test(proxy_e2e, an_idle_connection_is_closed_after_the_idle_timeout)
{
	char *extra[] = { "--idle-timeout", "1", NULL };
	unsigned redis;
	char byte;
	int fd;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	/* Within 1 s + a tick of quiet, both sides go; the read sees the end (a reset). */
	cr_assert_leq(read(fd, &byte, 1), 0);
	close(fd);
	cr_assert_eq(proxy_counter("timeouts"), 1ull);
}

/* ---- urgent data ---- */

/* The local port of socket fd. */
static unsigned local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* Whether every thread of pid is stopped (SIGSTOP), from /proc/pid/task/TID/stat. */
static bool all_threads_stopped(pid_t pid)
{
	char path[320], stat[512], *state;
	bool stopped = true;
	struct dirent *de;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while (stopped && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(stat, sizeof(stat), f) && (state = strrchr(stat, ')')))
			stopped = state[2] == 'T' || state[2] == 't';
		fclose(f);
	}
	closedir(dir);
	return stopped;
}

/*
 * Freeze the proxy (SIGSTOP, returning once every thread is stopped) or let it go on. Bytes
 * sent while it is frozen all wait in one socket queue, and one completion reports them: what a
 * busy proxy sees when a burst lands between two of its turns.
 */
static void proxy_freeze(bool freeze)
{
	double deadline = now_s() + START_S;

	cr_assert_eq(kill(t.proxy->pid, freeze ? SIGSTOP : SIGCONT), 0);
	while (freeze && !all_threads_stopped(t.proxy->pid)) {
		cr_assert_lt(now_s(), deadline, "the proxy did not stop");
		sleep_ms(1);
	}
}

/* Wait until the socket local_port -> remote_port holds want unread bytes: they all landed. */
static void wait_rx_queue(unsigned local_port, unsigned remote_port, long want)
{
	double deadline = now_s() + START_S;
	long rx;

	while ((rx = tcp_rx_queue(local_port, remote_port)) < want) {
		cr_assert_lt(now_s(), deadline, "socket %u -> %u holds %ld bytes, not %ld",
			     local_port, remote_port, rx, want);
		sleep_ms(1);
	}
}

/* Read len bytes from fd within seconds; the count read (fewer: EOF, error or time-out). */
static size_t read_within(int fd, void *buf, size_t len, double seconds)
{
	double deadline = now_s() + seconds;
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - now_s();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* before, one urgent byte ('!', MSG_OOB), after: three sends, three segments. */
static void send_around_urgent_byte(int fd, const char *before, const char *after)
{
	if (*before)
		cr_assert_eq(send(fd, before, strlen(before), 0), (ssize_t)strlen(before));
	cr_assert_eq(send(fd, "!", 1, MSG_OOB), 1);
	if (*after)
		cr_assert_eq(send(fd, after, strlen(after), 0), (ssize_t)strlen(after));
}

/* In-band bytes around the urgent one: in the middle, at the start, at the end of a burst. */
static const char *const urgent_splits[][2] = {
	{ "PI", "NG\r\n" },
	{ "", "PING\r\n" },
	{ "PING\r\n", "" },
};

/*
 * TCP ends a read at the urgent mark with the bytes behind it still queued, and no new poll
 * completion comes for them: a proxy that takes that short read for a drained queue holds
 * them until the client sends more. The urgent byte itself is dropped (SO_OOBINLINE is off),
 * so redis sees PING, not PI!NG.
 */
Test(proxy_e2e, an_urgent_byte_from_the_client_strands_no_bytes_behind_it)
{
	unsigned redis;
	char reply[8];

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	for (unsigned i = 0; i < sizeof(urgent_splits) / sizeof(urgent_splits[0]); i++) {
		const char *before = urgent_splits[i][0], *after = urgent_splits[i][1];
		int fd = connect_port(t.proxy_port);
		size_t got;

		cr_assert_geq(fd, 0);
		/* The backend connection is up: the burst below waits in the proxy alone. */
		cr_assert(ping(fd));
		proxy_freeze(true);
		send_around_urgent_byte(fd, before, after);
		wait_rx_queue(t.proxy_port, local_port(fd),
			      (long)(strlen(before) + 1 + strlen(after)));
		proxy_freeze(false);
		got = read_within(fd, reply, 7, 2.0);
		cr_assert(got == 7 && !memcmp(reply, "+PONG\r\n", 7),
			  "\"%s\" <urgent> \"%s\": %zu bytes of +PONG within 2 s: %.*s", before,
			  after, got, (int)got, reply);
		cr_assert(ping(fd), "the connection is out of step after the urgent byte");
		close(fd);
	}
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

/*
 * A backend that sends an urgent byte on command, one connection at a time. Per connection it
 * writes to *status the proxy's port of that connection (an unsigned), then reads a command
 * from *control: an index into urgent_splits (send its bytes around an urgent byte, then write
 * 'd' to *status), or 'c' (send "." and close).
 */
static unsigned urgent_backend_start(int *control, int *status)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	int to_child[2], from_child[2];
	struct proc *p;
	pid_t pid;

	cr_assert_geq(lfd, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 64), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	cr_assert_eq(pipe2(to_child, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(from_child, O_CLOEXEC), 0);
	cr_assert_lt(t.nprocs, MAX_PROCS);
	p = &t.procs[t.nprocs++];
	*p = (struct proc){ .pid = -1, .out = -1 };
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		group_lead(0);
		for (;;) {
			struct sockaddr_in peer;
			socklen_t plen = sizeof(peer);
			int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
			unsigned port;
			char cmd;

			if (fd < 0)
				continue;
			port = ntohs(peer.sin_port);
			if (write(from_child[1], &port, sizeof(port)) != sizeof(port))
				_exit(1);
			while (read(to_child[0], &cmd, 1) == 1 && cmd != 'c') {
				const char *before = urgent_splits[(unsigned char)cmd][0];
				const char *after = urgent_splits[(unsigned char)cmd][1];

				/* The same splits as the client's, the other way. */
				if (*before)
					send(fd, before, strlen(before), 0);
				send(fd, "!", 1, MSG_OOB);
				if (*after)
					send(fd, after, strlen(after), 0);
				if (write(from_child[1], "d", 1) != 1)
					_exit(1);
			}
			send(fd, ".", 1, 0);
			close(fd);
		}
	}
	group_lead(pid);
	close(lfd);
	close(to_child[0]);
	close(from_child[1]);
	*control = to_child[1];
	*status = from_child[0];
	p->pid = pid;
	return ntohs(a.sin_port);
}

/* Read exactly len bytes of a child's status pipe within START_S. */
static void read_status(int fd, void *buf, size_t len)
{
	cr_assert_eq(read_within(fd, buf, len, START_S), len, "the test backend said nothing");
}

Test(proxy_e2e, an_urgent_byte_from_the_backend_strands_no_bytes_behind_it)
{
	unsigned backend, port;
	int control, status;
	char got[16], done;

	skip_without_io_uring();
	backend = urgent_backend_start(&control, &status);
	proxy_start(&backend, 1, NULL);
	/* The proxy's start-up probe of the backend: done with. */
	read_status(status, &port, sizeof(port));
	cr_assert_eq(write(control, "c", 1), 1);
	for (unsigned char i = 0; i < sizeof(urgent_splits) / sizeof(urgent_splits[0]); i++) {
		const char *before = urgent_splits[i][0], *after = urgent_splits[i][1];
		size_t want = strlen(before) + strlen(after), n;
		int fd = connect_port(t.proxy_port);

		cr_assert_geq(fd, 0);
		read_status(status, &port, sizeof(port));
		proxy_freeze(true);
		cr_assert_eq(write(control, &i, 1), 1);
		read_status(status, &done, 1);
		wait_rx_queue(port, backend, (long)want + 1);
		proxy_freeze(false);
		n = read_within(fd, got, want, 2.0);
		cr_assert(n == want && !memcmp(got, before, strlen(before)) &&
				  !memcmp(got + strlen(before), after, strlen(after)),
			  "\"%s\" <urgent> \"%s\": %zu of %zu bytes within 2 s: %.*s", before,
			  after, n, want, (int)n, got);
		/* Then "." and EOF: the urgent byte was not passed on. */
		cr_assert_eq(write(control, "c", 1), 1);
		n = read_within(fd, got, sizeof(got), START_S);
		cr_assert(n == 1 && got[0] == '.', "after the reply: %zu bytes: %.*s", n, (int)n,
			  got);
		close(fd);
	}
	close(control);
	close(status);
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

/* ---- many connections, limits, descriptors ---- */

Test(proxy_e2e, five_thousand_idle_connections_and_traffic_then_every_fd_is_released)
{
	static int fds[IDLE_CONNS];
	char out[OUT_SIZE];
	unsigned redis;
	int idle_fds;

	skip_without_io_uring();
	need_program("redis-benchmark");
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	idle_fds = count_fds(t.proxy->pid);
	cr_assert_gt(idle_fds, 0, "the proxy is gone");
	for (unsigned i = 0; i < IDLE_CONNS; i++) {
		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0, "connection %u: %s", i, strerror(-fds[i]));
	}
	cr_assert_eq(run(out, sizeof(out),
			 "redis-benchmark -h 127.0.0.1 -p %u -t ping,get -n 20000 -c 50 --csv 2>&1",
			 t.proxy_port),
		     0, "%s", out);
	cr_assert_null(strstr(out, "rror"), "%s", out);
	for (unsigned i = 0; i < IDLE_CONNS; i++)
		cr_assert(ping(fds[i]), "idle connection %u lost", i);
	/* redis-benchmark's own connections may still be closing. */
	for (double end = now_s() + 10; proxy_counter("open") != IDLE_CONNS && now_s() < end;)
		sleep_ms(50);
	cr_assert_eq(proxy_counter("open"), (unsigned long long)IDLE_CONNS);
	for (unsigned i = 0; i < IDLE_CONNS; i++)
		close(fds[i]);
	cr_assert_eq(wait_fds(idle_fds, 20.0), idle_fds, "descriptors not released");
	cr_assert_eq(proxy_counter("open"), 0ull);
}

/* How many descriptors pid holds open below number limit. */
static int fds_below(pid_t pid, int limit)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.' && atoi(de->d_name) < limit;
	closedir(dir);
	return n;
}

/* How a connection ends from the client's side: 0 (EOF), -errno, -ETIMEDOUT (no end), or 1
 * (a byte came instead). */
static int read_end(int fd, double seconds)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char byte;
	ssize_t n;

	if (poll(&p, 1, (int)(seconds * 1000)) <= 0)
		return -ETIMEDOUT;
	n = recv(fd, &byte, 1, MSG_DONTWAIT);
	return n < 0 ? -errno : (int)n;
}

/* The counter name in the proxy's output after offset from (its last lines), or -1. */
static long long output_counter(size_t from, const char *name)
{
	char key[64], *at;

	snprintf(key, sizeof(key), " %s ", name);
	at = strstr(t.proxy->text + from, key);
	return at ? strtoll(at + strlen(key), NULL, 10) : -1;
}

/*
 * Out of descriptors for the backend socket (EMFILE from socket()), the proxy used to close the
 * client with a reset and count a connect error, silently. Now: a FIN, counted as shed, one
 * warning that names the limit, and clients served again once descriptors are free. The limit
 * is set on the running proxy (prlimit) to its idle descriptors + 2 per held client + 1, so
 * that each further client is accepted into the last slot and finds none for its backend.
 */
Test(proxy_e2e, at_the_fd_limit_clients_are_shed_with_a_fin_and_one_warning)
{
	enum { HELD = 4, SHED = 5 };
	const char *warning = "out of descriptors creating a backend socket";
	int held[HELD], idle_fds, limit, next, fd, end;
	char expect[128], *at;
	struct rlimit rl;
	unsigned redis;
	size_t exit_line;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	idle_fds = count_fds(t.proxy->pid);
	cr_assert_gt(idle_fds, 0, "the proxy is gone");
	/* The limit with exactly 2 * HELD + 1 free numbers below it (there may be holes, and
	 * inherited descriptors above it): the fixed point, from above, of this. */
	limit = idle_fds + 2 * HELD + 1;
	while ((next = fds_below(t.proxy->pid, limit) + 2 * HELD + 1) != limit)
		limit = next;
	rl.rlim_cur = rl.rlim_max = (rlim_t)limit;
	cr_assert_eq(prlimit(t.proxy->pid, RLIMIT_NOFILE, &rl, NULL), 0, "prlimit: %s",
		     strerror(errno));
	for (unsigned i = 0; i < HELD; i++) {
		held[i] = connect_port(t.proxy_port);
		cr_assert_geq(held[i], 0);
		cr_assert(ping(held[i]), "held client %u not served", i);
	}
	cr_assert_eq(fds_below(t.proxy->pid, limit), limit - 1);
	for (unsigned i = 0; i < SHED; i++) {
		fd = connect_port(t.proxy_port);
		cr_assert_geq(fd, 0);
		end = read_end(fd, START_S);
		cr_assert_eq(end, 0, "client %u past the limit: %s, not EOF", i,
			     end < 0 ? strerror(-end) : "data");
		close(fd);
	}
	for (unsigned i = 0; i < HELD; i++)
		cr_assert(ping(held[i]), "held client %u harmed", i);
	for (unsigned i = 0; i < HELD; i++)
		close(held[i]);
	cr_assert_eq(wait_fds(idle_fds, START_S), idle_fds, "descriptors not released");
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd), "not served once descriptors were free again");
	close(fd);
	cr_assert_eq(wait_fds(idle_fds, START_S), idle_fds, "descriptors not released");

	exit_line = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0, "%s", t.proxy->text);
	cr_assert(proc_wait_output_from(t.proxy, exit_line, "exit: conns", 1.0) &&
			  proc_wait_output_from(t.proxy, exit_line, "wake_batches", 1.0),
		  "%s", t.proxy->text);
	exit_line = (size_t)(strstr(t.proxy->text + exit_line, "exit: conns") - t.proxy->text);
	cr_assert_eq(output_counter(exit_line, "shed"), SHED, "%s", t.proxy->text + exit_line);
	cr_assert_eq(output_counter(exit_line, "connect_errors"), 0, "%s",
		     t.proxy->text + exit_line);
	cr_assert_eq(output_counter(exit_line, "conns"), HELD + 1, "%s",
		     t.proxy->text + exit_line);
	/* One warning, naming the limit. */
	at = strstr(t.proxy->text, warning);
	cr_assert_not_null(at, "no warning: %s", t.proxy->text);
	cr_assert_null(strstr(at + 1, warning), "more than one warning: %s", t.proxy->text);
	snprintf(expect, sizeof(expect), "raise ulimit -n (now %llu)",
		 (unsigned long long)rl.rlim_cur);
	cr_assert_not_null(strstr(at, expect), "the warning does not say \"%s\": %s", expect,
			   t.proxy->text);
}

Test(proxy_e2e, max_conns_refuses_the_next_without_harming_the_others)
{
	char *extra[] = { "--max-conns", "10", NULL };
	unsigned redis;
	int fds[10], extra_fd;
	char byte;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	for (unsigned i = 0; i < 10; i++) {
		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0);
		cr_assert(ping(fds[i]));
	}
	extra_fd = connect_port(t.proxy_port);
	cr_assert_geq(extra_fd, 0);
	cr_assert_eq(read(extra_fd, &byte, 1), 0, "the 11th connection was not refused");
	close(extra_fd);
	for (unsigned i = 0; i < 10; i++)
		cr_assert(ping(fds[i]), "connection %u harmed", i);
	cr_assert_eq(proxy_counter("refused"), 1ull);
	/* A slot given back is a slot for the next client. */
	close(fds[0]);
	for (double end = now_s() + 5; proxy_counter("open") != 9 && now_s() < end;)
		sleep_ms(20);
	fds[0] = connect_port(t.proxy_port);
	cr_assert_geq(fds[0], 0);
	cr_assert(ping(fds[0]));
	for (unsigned i = 0; i < 10; i++)
		close(fds[i]);
}

Test(proxy_e2e, a_backend_that_dies_closes_only_its_clients)
{
	unsigned redis[2], port[2];
	char reply[4096], byte;
	int fds[2], idle_fds;
	pid_t victim = -1;

	skip_without_io_uring();
	redis[0] = redis_start();
	redis[1] = redis_start();
	proxy_start(redis, 2, NULL);
	idle_fds = count_fds(t.proxy->pid);
	cr_assert_gt(idle_fds, 0, "the proxy is gone");
	for (unsigned i = 0; i < 2; i++) {
		ssize_t n;
		char *at;
		size_t len = 0;

		fds[i] = connect_port(t.proxy_port);
		cr_assert_geq(fds[i], 0);
		cr_assert(write_all(fds[i], "INFO server\r\n", 13));
		do {
			n = read(fds[i], reply + len, sizeof(reply) - 1 - len);
			cr_assert_gt(n, 0, "no INFO reply");
			len += (size_t)n;
			reply[len] = '\0';
			at = strstr(reply, "tcp_port:");
		} while (!at || !strstr(at, "\r\n"));
		port[i] = (unsigned)strtoul(at + 9, NULL, 10);
	}
	cr_assert_neq(port[0], port[1], "round robin sent both to port %u", port[0]);
	/* Kill the redis behind the first client (procs[0] and [1] are the two redis). */
	victim = t.procs[port[0] == redis[0] ? 0 : 1].pid;
	kill(victim, SIGKILL);
	cr_assert_leq(read(fds[0], &byte, 1), 0, "the first client was not closed");
	cr_assert(ping(fds[1]), "the other backend's client was harmed");
	close(fds[0]);
	close(fds[1]);
	cr_assert_eq(wait_fds(idle_fds, 10.0), idle_fds, "descriptors not released");
}

/* ---- signals and bad input ---- */

Test(proxy_e2e, sigterm_drains_open_connections_then_exits_0)
{
	unsigned redis;
	int fd, late;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	kill(t.proxy->pid, SIGTERM);
	/* Draining: new clients are refused, the open one still works. A connect racing the
	 * listener's close is accepted into the backlog or reset (ECONNRESET); once the listener
	 * is gone, every connect is refused. */
	for (double end = now_s() + 5;
	     (late = connect_port(t.proxy_port)) != -ECONNREFUSED && now_s() < end;) {
		if (late >= 0)
			close(late);
		sleep_ms(20);
	}
	cr_assert_eq(late, -ECONNREFUSED, "a connect during the drain: %s",
		     late >= 0 ? "accepted" : strerror(-late));
	cr_assert(ping(fd));
	cr_assert_eq(proc_wait_exit(t.proxy, 0.5), -1, "exited with a connection open");
	close(fd);
	cr_assert_eq(proc_wait_exit(t.proxy, 5.0), 0);
	cr_assert(proc_wait_output(t.proxy, "exit: conns 1 open 0", 1.0), "%s", t.proxy->text);
}

/* ---- signals while a loop other than the first drains ---- */

/* The thread id of the proxy's loop index (0: the main thread; i: the one named "PROG/i"). */
static pid_t loop_thread(unsigned index)
{
	char path[320], comm[32], want[32];
	pid_t tid = -1;
	struct dirent *de;
	DIR *dir;
	FILE *f;

	if (!index)
		return t.proxy->pid;
	snprintf(want, sizeof(want), "urpoll-proxy/%u\n", index);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)t.proxy->pid);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while (tid < 0 && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)t.proxy->pid,
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, want))
			tid = (pid_t)atoi(de->d_name);
		fclose(f);
	}
	closedir(dir);
	return tid;
}

/* A number from /proc/PID/task/TID/FILE: the field after key, or the first one (key NULL). */
static long thread_number(pid_t tid, const char *file, const char *key)
{
	char path[128], line[256];
	long value = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)t.proxy->pid, (int)tid, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!key) {
			value = strtol(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, strlen(key))) {
			value = strtol(line + strlen(key), NULL, 10);
			break;
		}
	}
	fclose(f);
	return value;
}

/*
 * Which loop of a two-loop proxy serves connection fd: the one whose thread spends the CPU
 * time (/proc/PID/task/TID/schedstat, nanoseconds on a CPU) of 50 PINGs through it. The other
 * loop runs only for its 250 ms tick meanwhile.
 */
static unsigned serving_loop(int fd, const pid_t *tids)
{
	for (unsigned attempt = 0; attempt < 5; attempt++) {
		long before[2], ran[2];

		for (unsigned i = 0; i < 2; i++)
			before[i] = thread_number(tids[i], "schedstat", NULL);
		for (unsigned n = 0; n < 50; n++)
			cr_assert(ping(fd));
		for (unsigned i = 0; i < 2; i++)
			ran[i] = thread_number(tids[i], "schedstat", NULL) - before[i];
		for (unsigned i = 0; i < 2; i++)
			if (ran[i] > 4 * ran[!i])
				return i;
		cr_log_info("loop threads ran %ld and %ld ns: no clear winner", ran[0], ran[1]);
	}
	cr_assert_fail("cannot tell which loop serves the connection");
	return 0;
}

/*
 * A proxy with two loops, draining after SIGTERM, whose first loop (the main thread) has
 * stopped for want of connections while the second still holds one; returns that connection.
 * Every signal after this one must be read by the second loop.
 */
static int drain_on_loop_1_only(void)
{
	char *two_threads[] = { "--threads", "2", NULL };
	double deadline;
	unsigned redis;
	pid_t tids[2];
	int fd;

	redis = redis_start();
	proxy_start(&redis, 1, two_threads);
	tids[0] = loop_thread(0);
	tids[1] = loop_thread(1);
	cr_assert_gt(tids[1], 0, "no thread urpoll-proxy/1");
	/* The kernel's SO_REUSEPORT hash picks the loop: connect until loop 1 has one. */
	for (unsigned tries = 0;; tries++) {
		cr_assert_lt(tries, 64, "64 connections, none on loop 1");
		fd = connect_port(t.proxy_port);
		cr_assert_geq(fd, 0);
		if (serving_loop(fd, tids) == 1)
			break;
		close(fd);
	}
	for (deadline = now_s() + START_S; proxy_counter("open") != 1;)
		cr_assert_lt(now_s(), deadline, "loop 0 still holds connections");
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	/* Loop 0 has none: it stops, and the main thread waits in pthread_join() (futex). */
	for (deadline = now_s() + START_S; thread_number(tids[0], "syscall", NULL) != SYS_futex;
	     sleep_ms(10))
		cr_assert_lt(now_s(), deadline, "loop 0 did not stop after SIGTERM");
	cr_assert(ping(fd), "the connection on loop 1 does not work during the drain");
	return fd;
}

Test(proxy_e2e, a_second_sigterm_stops_the_proxy_while_loop_1_drains)
{
	int fd;

	skip_without_io_uring();
	fd = drain_on_loop_1_only();
	cr_assert_eq(kill(t.proxy->pid, SIGTERM), 0);
	cr_assert_eq(proc_wait_exit(t.proxy, 1.0), 0,
		     "a second SIGTERM did not stop the proxy within 1 s: %s", t.proxy->text);
	cr_assert(proc_wait_output(t.proxy, "exit: conns", 1.0), "%s", t.proxy->text);
	close(fd);
}

Test(proxy_e2e, sigusr1_prints_the_stats_while_loop_1_drains)
{
	size_t before;
	int fd;

	skip_without_io_uring();
	fd = drain_on_loop_1_only();
	before = t.proxy->len;
	cr_assert_eq(kill(t.proxy->pid, SIGUSR1), 0);
	cr_assert(proc_wait_output_from(t.proxy, before, "stats: conns", 2.0),
		  "no stats line within 2 s of SIGUSR1 during the drain: %s", t.proxy->text);
	close(fd);
	cr_assert_eq(proc_wait_exit(t.proxy, START_S), 0, "%s", t.proxy->text);
}

static void expect_startup_error(char *const *extra, const unsigned *backends,
				 unsigned nbackends, int want_status, const char *want)
{
	int status;

	{
		static char bin[PATH_MAX + 32], ports[4][32];
		char self[PATH_MAX], *argv[16];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		unsigned argc = 0;

		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(bin, sizeof(bin), "%s/../tools/urpoll-proxy", self);
		argv[argc++] = bin;
		while (extra && *extra)
			argv[argc++] = *extra++;
		for (unsigned i = 0; i < nbackends; i++) {
			snprintf(ports[i], sizeof(ports[i]), "127.0.0.1:%u", backends[i]);
			argv[argc++] = "--backend";
			argv[argc++] = ports[i];
		}
		argv[argc] = NULL;
		t.proxy = spawn(argv, true, SIGKILL);
	}
	status = proc_wait_exit(t.proxy, START_S);
	proc_wait_output(t.proxy, "\n", 1.0);
	cr_assert_eq(status, want_status, "status %d: %s", status, t.proxy->text);
	cr_assert_not_null(strstr(t.proxy->text, want), "%s", t.proxy->text);
	cr_assert_eq(strchr(t.proxy->text, '\n'), t.proxy->text + t.proxy->len - 1,
		     "not one line: %s", t.proxy->text);
}

Test(proxy_e2e, bad_input_is_one_line_and_a_nonzero_exit)
{
	char taken[32], *bad_listen[] = { "--listen", "127.0.0.1:http", NULL },
			*bad_backend[] = { "--listen", "127.0.0.1:0", "--backend", "localhost:1",
					   NULL },
			*in_use[] = { "--listen", taken, NULL },
			*free_listen[] = { "--listen", "127.0.0.1:0", NULL };
	unsigned redis, dead;

	skip_without_io_uring();
	redis = redis_start();
	dead = free_port();
	expect_startup_error(bad_listen, &redis, 1, 2, "bad listen address '127.0.0.1:http'");
	expect_startup_error(bad_backend, NULL, 0, 2, "bad backend address 'localhost:1'");
	expect_startup_error(free_listen, &dead, 1, 1, "unreachable: Connection refused");
	snprintf(taken, sizeof(taken), "127.0.0.1:%u", redis);
	expect_startup_error(in_use, &redis, 1, 1, "Address already in use");
}
