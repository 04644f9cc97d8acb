// SPDX-License-Identifier: MIT
/*
 * proxy_e2e: urpoll-proxy (tools/servers/proxy/) end to end with real servers and clients (the
 * fixture: tests/lib/proxy_util.h): redis-benchmark and redis-cli through the proxy to
 * redis-server, wrk and curl through it to nginx; and bad input at start-up, one line and a
 * non-zero exit. The byte streams are proxy_streams', urgent data proxy_urgent's, connections,
 * limits and descriptors proxy_limits', signals proxy_signals'.
 */
#include "proxy_util.h"

TestSuite(proxy_e2e, .init = suite_init, .fini = cleanup, .timeout = 120);

/* ---- redis ---- */

PROXY_TEST(proxy_e2e, redis_benchmark_through_the_proxy_has_no_errors)
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

PROXY_TEST(proxy_e2e, redis_cli_round_trips_a_1mib_value_byte_exact)
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

/* Pipelined: 16 requests in flight per connection, 256-byte values (LRANGE_100: 25 KiB
 * replies, several buffers each); and what the proxy passes back is what redis holds, byte
 * for byte. */
PROXY_TEST(proxy_e2e, redis_benchmark_pipelined_through_the_proxy_has_no_errors)
{
	char out[OUT_SIZE], direct[PATH_MAX], proxied[PATH_MAX];
	unsigned redis;
	int status;

	skip_without_io_uring();
	need_program("redis-benchmark");
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	status = run(out, sizeof(out),
		     "redis-benchmark -h 127.0.0.1 -p %u -t set,get,lpush,lrange_100 -n 5000 "
		     "-c 20 -P 16 -d 256 --csv 2>&1",
		     t.proxy_port);
	cr_assert_eq(status, 0, "redis-benchmark failed (%d): %s", status, out);
	for (const char *test = "SET\0GET\0LPUSH\0LRANGE_100 (first 100 elements)\0"; *test;
	     test += strlen(test) + 1) {
		char key[64];

		snprintf(key, sizeof(key), "\"%s\",\"", test);
		cr_assert_not_null(strstr(out, key), "no %s result in: %s", test, out);
	}
	cr_assert_null(strstr(out, "rror"), "errors in: %s", out);
	path_in_dir(direct, sizeof(direct), "direct");
	path_in_dir(proxied, sizeof(proxied), "proxied");
	cr_assert_eq(run(out, sizeof(out), "redis-cli -p %u LRANGE mylist 0 99 > %s && "
			 "redis-cli -p %u LRANGE mylist 0 99 > %s && cmp %s %s && test -s %s",
			 redis, direct, t.proxy_port, proxied, direct, proxied, direct),
		     0, "%s", out);
	/* Not io_errors: redis-benchmark may close a connection between two tests with replies
	 * of its pipeline still coming, and such a close is a reset. */
	cr_assert_eq(proxy_counter("connect_errors"), 0ull);
}

/* A printable value of len bytes for key i, no newline (redis-cli --raw ends each with one). */
static void value_of(unsigned i, size_t len, FILE *f)
{
	for (size_t k = 0; k < len; k++)
		fputc('!' + stream_byte(i * 65536ull + k) % 90, f);
}

/* redis-cli --pipe writes 5,000 SETs (up to 12 KiB each, 30 MiB in all) as fast as the proxy
 * takes them, reading the replies as they come; every value read back through the proxy is
 * the one written. */
PROXY_TEST(proxy_e2e, redis_cli_pipe_mass_insert_reads_back_byte_exact)
{
	char cmds[PATH_MAX], gets[PATH_MAX], want[PATH_MAX], got[PATH_MAX], out[4096];
	FILE *fc, *fg, *fw;
	unsigned redis;

	skip_without_io_uring();
	need_program("redis-cli");
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	path_in_dir(cmds, sizeof(cmds), "cmds");
	path_in_dir(gets, sizeof(gets), "gets");
	path_in_dir(want, sizeof(want), "want");
	path_in_dir(got, sizeof(got), "got");
	fc = fopen(cmds, "w");
	fg = fopen(gets, "w");
	fw = fopen(want, "w");
	cr_assert(fc && fg && fw);
	for (unsigned i = 0; i < 5000; i++) {
		size_t len = 1 + (i * 7919u) % 12288;
		char key[32];

		snprintf(key, sizeof(key), "k%u", i);
		fprintf(fc, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(key), key,
			len);
		value_of(i, len, fc);
		fputs("\r\n", fc);
		fprintf(fg, "GET %s\n", key);
		value_of(i, len, fw);
		fputc('\n', fw);
	}
	fclose(fc);
	fclose(fg);
	fclose(fw);
	cr_assert_eq(run(out, sizeof(out), "redis-cli -p %u --pipe < %s 2>&1", t.proxy_port, cmds),
		     0, "%s", out);
	cr_assert_not_null(strstr(out, "errors: 0, replies: 5000"), "%s", out);
	cr_assert_eq(run(out, sizeof(out), "redis-cli -p %u --raw < %s > %s && cmp %s %s 2>&1",
			 t.proxy_port, gets, got, want, got),
		     0, "%s", out);
}

/* ---- nginx ---- */

PROXY_TEST(proxy_e2e, wrk_through_the_proxy_sees_no_socket_errors_and_no_non_2xx)
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

PROXY_TEST(proxy_e2e, curl_gets_a_10mib_file_with_the_right_checksum)
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

/* ---- the I/O modes ---- */

/* Without --io the proxy moves bytes in ring mode (its buffers counted in recv_bufs); with
 * --io readiness it does not. */
Test(proxy_e2e, ring_mode_is_the_default)
{
	char *readiness[] = { "--io", "readiness", NULL };
	unsigned redis;
	int fd;

	skip_without_io_uring();
	redis = redis_start();
	proxy_start(&redis, 1, NULL);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	close(fd);
	/* The PING and the +PONG: a buffer each at least. */
	cr_assert_geq(proxy_counter("recv_bufs"), 2ull, "%s", t.proxy->text);
	cr_assert_null(strstr(t.proxy->text, "ring mode unavailable"), "%s", t.proxy->text);
	proc_kill(t.proxy);
	proxy_start(&redis, 1, readiness);
	fd = connect_port(t.proxy_port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	close(fd);
	cr_assert_eq(proxy_counter("recv_bufs"), 0ull, "%s", t.proxy->text);
}

/* ---- bad input ---- */

static void expect_startup_error(char *const *extra, const unsigned *backends,
				 unsigned nbackends, int want_status, const char *want)
{
	int status;

	t.proxy = proxy_spawn(extra, backends, nbackends, NULL);
	status = proc_wait_exit(t.proxy, START_S);
	proc_wait_output(t.proxy, "\n", 1.0);
	cr_assert_eq(status, want_status, "status %d: %s", status, t.proxy->text);
	cr_assert_not_null(strstr(t.proxy->text, want), "%s", t.proxy->text);
	cr_assert_eq(strchr(t.proxy->text, '\n'), t.proxy->text + t.proxy->len - 1,
		     "not one line: %s", t.proxy->text);
}

/* A backend that is down is no start-up error any more (proxy_backends); a name that does
 * not resolve is. */
PROXY_TEST(proxy_e2e, bad_input_is_one_line_and_a_nonzero_exit)
{
	char taken[32], *bad_listen[] = { "--listen", "127.0.0.1:http", NULL },
			*no_port[] = { "--listen", "127.0.0.1:0", "--backend", "localhost", NULL },
			*bare_v6[] = { "--listen", "127.0.0.1:0", "--backend", "::1:6379", NULL },
			*no_name[] = { "--listen", "127.0.0.1:0", "--backend",
				       "no-such-host.invalid:6379", NULL },
			*in_use[] = { "--listen", taken, NULL },
			*metrics_in_use[] = { "--listen", "127.0.0.1:0", "--metrics", taken, NULL };
	unsigned redis;

	skip_without_io_uring();
	redis = redis_start();
	expect_startup_error(bad_listen, &redis, 1, 2, "bad listen address '127.0.0.1:http'");
	expect_startup_error(no_port, NULL, 0, 2, "--backend: bad backend address 'localhost'");
	expect_startup_error(bare_v6, NULL, 0, 2, "bad backend address '::1:6379'");
	expect_startup_error(no_name, NULL, 0, 1,
			     "--backend: cannot resolve 'no-such-host.invalid:6379'");
	snprintf(taken, sizeof(taken), "127.0.0.1:%u", redis);
	expect_startup_error(in_use, &redis, 1, 1, "Address already in use");
	expect_startup_error(metrics_in_use, &redis, 1, 1,
			     "--metrics: cannot listen on 127.0.0.1:");
}
