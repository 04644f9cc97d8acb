// SPDX-License-Identifier: MIT
/*
 * proxy_streams: urpoll-proxy's byte streams, end to end (the fixture: tests/lib/proxy_util.h).
 * A client's half-close reaches the backend and the whole response still comes back; slow
 * clients of a fast backend keep the proxy's memory bounded, then get every byte; an idle
 * connection is closed after the idle timeout, a busy one lives on past it.
 */
#include "proxy_util.h"

TestSuite(proxy_streams, .init = suite_init, .fini = cleanup, .timeout = 120);

/* How the backend of backend_start() serves. */
struct stream_backend {
	char mode;
	uint64_t flood;
};

static void serve_stream(int lfd, void *arg)
{
	static unsigned char buf[65536];
	const struct stream_backend *sb = arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		uint64_t total = 0, off = 0, flood = sb->flood;
		char head[32];
		ssize_t n;

		if (fd < 0)
			continue;
		if (sb->mode == 'h') {
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

/*
 * A one-connection-at-a-time backend in a child process. mode 'h' (half-close): read until
 * EOF, then send back "<n bytes read>\n" and ONE_MIB bytes of the stream, then close. mode 'f'
 * (flood): send `flood` bytes of the stream as fast as the socket takes them, then close.
 */
static unsigned backend_start(char mode, uint64_t flood)
{
	struct stream_backend sb = { .mode = mode, .flood = flood };

	return backend_fork(serve_stream, &sb);
}

/* The resident set of pid, in KiB. */
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


/* ---- half-close, back-pressure, timeouts ---- */

PROXY_TEST(proxy_streams, a_client_half_close_still_gets_the_full_response)
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

PROXY_TEST(proxy_streams, slow_clients_of_a_fast_backend_keep_the_proxy_rss_bounded)
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
	/* Ring mode: the direction stopped taking, and the driver paused the backend's recv
	 * once its share of buffers was queued. */
	if (!strcmp(t.io, "ring"))
		cr_assert_geq(proxy_counter("paused"), 1ull, "the flood was never paused");
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

#define BIG_FILE (8u << 20)
#define STALLED	 16

/* A client of nginx through the proxy that asks for /big and reads nothing yet: a receive
 * buffer of 4 KiB, so that the proxy's sends to it stall within a few buffers. */
static int stalled_reader(void)
{
	static const char req[] = "GET /big HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)t.proxy_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert(write_all(fd, req, sizeof(req) - 1));
	return fd;
}

/* The answer on fd, read to its end: a 200 whose body is the BIG_FILE bytes of the stream. */
static void expect_big_file(int fd, unsigned which)
{
	static unsigned char buf[65536];
	char head[1024];
	size_t len = 0, off = 0;
	char *end = NULL;
	ssize_t n;

	while (!end && len < sizeof(head) - 1 && (n = read(fd, head + len, 1)) == 1) {
		head[++len] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	cr_assert_not_null(end, "reader %u: no HTTP head: %s", which, head);
	cr_assert_eq(strncmp(head, "HTTP/1.1 200", 12), 0, "reader %u: %s", which, head);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], stream_byte(off + (size_t)i), "reader %u: byte %zu", which,
				     off + (size_t)i);
		off += (size_t)n;
	}
	cr_assert_eq(n, 0, "reader %u: %s", which, strerror(errno));
	cr_assert_eq(off, (size_t)BIG_FILE, "reader %u: %zu bytes", which, off);
}

/*
 * Readers that stall beside fast ones: 16 clients ask nginx for an 8 MiB file and read nothing
 * (the proxy's sends to them stall, and it stops reading their answers), while curl fetches the
 * same file four times through the proxy, checksummed. Then the stalled ones read theirs, every
 * byte in order. In ring mode the stalled directions paused their receives and held their few
 * buffers, not the ring: it never ran dry.
 */
PROXY_TEST(proxy_streams, slow_readers_beside_fast_ones_all_get_every_byte)
{
	char file[PATH_MAX], got[PATH_MAX], out[OUT_SIZE];
	int fds[STALLED], big = 1 << 20;
	unsigned nginx;
	FILE *f;

	skip_without_io_uring();
	need_program("curl");
	nginx = nginx_start();
	path_in_dir(file, sizeof(file), "www/big");
	path_in_dir(got, sizeof(got), "big.got");
	f = fopen(file, "w");
	cr_assert_not_null(f);
	for (uint64_t i = 0; i < BIG_FILE; i++)
		fputc(stream_byte(i), f);
	fclose(f);
	proxy_start(&nginx, 1, NULL);
	for (unsigned i = 0; i < STALLED; i++)
		fds[i] = stalled_reader();
	sleep_ms(300); /* nginx sends; the proxy's sends to the readers stall */
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(run(out, sizeof(out),
				 "curl -sSf --max-time 30 -o %s http://127.0.0.1:%u/big && "
				 "test \"$(sha256sum < %s)\" = \"$(sha256sum < %s)\"",
				 got, t.proxy_port, file, got),
			     0, "fetch %u beside the stalled readers: %s", i, out);
	if (!strcmp(t.io, "ring")) {
		cr_assert_geq(proxy_counter("paused"), (unsigned long long)STALLED,
			      "the stalled readers' backends were not paused");
		cr_assert_eq(proxy_counter("enobufs"), 0ull, "the stalled readers took the ring");
	}
	for (unsigned i = 0; i < STALLED; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		expect_big_file(fds[i], i);
		close(fds[i]);
	}
	cr_assert_eq(proxy_counter("io_errors"), 0ull);
}

/* The idle timer is restarted by every transfer: a connection busy longer than the timeout
 * lives on, then goes once it is quiet. */
PROXY_TEST(proxy_streams, traffic_keeps_a_connection_past_the_idle_timeout)
{
	char *extra[] = { "--idle-timeout", "1", NULL };
	struct pollfd p;
	unsigned redis;
	int fd;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, extra);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	for (unsigned i = 0; i < 10; i++) { /* 3 s of a PING every 300 ms */
		cr_assert(ping(fd), "closed after %u PINGs 300 ms apart", i);
		sleep_ms(300);
	}
	cr_assert_eq(proxy_counter("timeouts"), 0ull);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 10000), 1, "not closed once quiet");
	close(fd);
	cr_assert_eq(proxy_counter("timeouts"), 1ull);
}

PROXY_TEST(proxy_streams, an_idle_connection_is_closed_after_the_idle_timeout)
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
