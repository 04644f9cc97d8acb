// SPDX-License-Identifier: MIT
/*
 * echo_backpressure: urpoll-echo under back-pressure, end to end (the fixture:
 * tests/lib/echo_util.h). A client that sends without reading stalls, and the server stops
 * reading too (it buffers 16 KiB per connection, not the flood), then echoes it all; slow
 * readers of large payloads get everything after their half-close.
 */
#include "echo_util.h"

/* A send that makes no progress for this long has stalled. */
#define FLOOD_IDLE_MS 300
#define ONE_MIB	      (1u << 20)

TestSuite(echo_backpressure, .init = suite_init, .fini = server_kill, .timeout = 60);

/* The byte stream of the back-pressure test: byte i is a function of i alone. */
static unsigned char stream_byte(uint64_t i)
{
	uint64_t s = i >> 3;

	return (unsigned char)(splitmix64(&s) >> ((i & 7) * 8));
}

/* The last field of a sysctl file such as /proc/sys/net/ipv4/tcp_rmem ("min default max"). */
static uint64_t sysctl_last(const char *path, uint64_t fallback)
{
	unsigned long long a, b, c;
	FILE *f = fopen(path, "r");
	int n = f ? fscanf(f, "%llu %llu %llu", &a, &b, &c) : 0;

	if (f)
		fclose(f);
	return n == 3 ? c : fallback;
}

static void fill_stream(unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = stream_byte(off + i);
}

/*
 * A client sends without reading until its sends stall (at least 1 MiB... or less when the
 * buffers fill first), waits, then reads while it sends the rest of at least 1 MiB, half-closes
 * and must get every byte back in order. While it does not read, the server must have stopped
 * reading too (its receive queue holds data): it buffers 16 KiB per connection, not the flood.
 */
ECHO_TEST(echo_backpressure, unread_flood_is_held_back_and_echoed_in_full)
{
	static unsigned char out[65536], in[65536], want[65536];
	union sockaddr_any me;
	socklen_t me_len = sizeof(me);
	uint64_t sent = 0, got = 0, target, cap;
	int fd, small = 65536;
	bool stalled = false, eof = false;
	long rxq;

	server_start((const char *const[]){ "--listen", "127.0.0.1:0", NULL });
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	/* Fixed, small client buffers: the stall comes from the server, not from autotuning. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	cr_assert_eq(connect(fd, &srv.tcp.addr.sa, srv.tcp.len), 0, "%s", strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	cr_assert_eq(getsockname(fd, &me.sa, &me_len), 0);

	/* Phase one pushes at most cap before it must have stalled: the server's socket buffers
	 * (its receive buffer and its send buffer, autotuned up to these sysctls), ours (64 KiB
	 * each) and its 16 KiB fill long before; a server that read without bound would take it
	 * all. */
	cap = sysctl_last("/proc/sys/net/ipv4/tcp_rmem", 32u << 20) +
	      sysctl_last("/proc/sys/net/ipv4/tcp_wmem", 32u << 20) + (8u << 20);
	while (sent < cap) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		fill_stream(out, sent, sizeof(out));
		n = send(fd, out, sizeof(out), MSG_NOSIGNAL);
		if (n > 0) {
			sent += (uint64_t)n;
			continue;
		}
		cr_assert(n < 0 && errno == EAGAIN, "send: %s", strerror(errno));
		if (poll(&p, 1, FLOOD_IDLE_MS) == 0) {
			stalled = true;
			break;
		}
	}
	cr_assert(stalled, "%llu bytes went in without a stall: the server reads without bound",
		  (unsigned long long)sent);
	rxq = tcp_rx_queue(ntohs(srv.tcp.addr.in.sin_port), ntohs(me.in.sin_port));
	cr_assert_gt(rxq, 0, "stalled after %llu bytes but the server's receive queue holds %ld",
		     (unsigned long long)sent, rxq);
	cr_log_info("stalled after %llu bytes, %ld of them in the server's receive queue",
		    (unsigned long long)sent, rxq);

	target = sent > ONE_MIB ? sent : ONE_MIB;
	if (sent == target)
		shutdown(fd, SHUT_WR);
	{
		double deadline = now_s() + BOUND_S;

		while (!eof && now_s() < deadline) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t n;

			if (sent < target)
				p.events |= POLLOUT;
			if (poll(&p, 1, 100) <= 0)
				continue;
			if (sent < target && (p.revents & POLLOUT)) {
				size_t len = target - sent < sizeof(out) ? (size_t)(target - sent)
									 : sizeof(out);

				fill_stream(out, sent, len);
				n = send(fd, out, len, MSG_NOSIGNAL);
				if (n > 0 && (sent += (uint64_t)n) == target)
					shutdown(fd, SHUT_WR);
				cr_assert(n > 0 || errno == EAGAIN, "send: %s", strerror(errno));
			}
			n = recv(fd, in, sizeof(in), 0);
			if (n == 0) {
				eof = true;
			} else if (n > 0) {
				fill_stream(want, got, (size_t)n);
				cr_assert_eq(memcmp(in, want, (size_t)n), 0,
					     "echo differs within bytes %llu..%llu",
					     (unsigned long long)got,
					     (unsigned long long)got + (unsigned long long)n);
				got += (uint64_t)n;
				/* A slow reader: the server's writes keep blocking, so it reads our
				 * FIN while it still holds bytes to write back, and must write them
				 * before its own FIN. */
				usleep(500);
			} else {
				cr_assert_eq(errno, EAGAIN, "recv: %s", strerror(errno));
			}
		}
	}
	cr_assert(eof, "no EOF: %llu of %llu bytes back", (unsigned long long)got,
		  (unsigned long long)target);
	cr_assert_eq(got, target, "%llu of %llu bytes came back", (unsigned long long)got,
		     (unsigned long long)target);
	close(fd);
	server_stop_ok();
}

/*
 * Slow readers of large payloads: the server's writes keep blocking, so it often reads a
 * client's FIN while it still holds bytes to write back; it must write them all, then its own
 * FIN. Over Unix sockets (fixed buffers, no window: small, quick bursts) and TCP.
 */
ECHO_TEST(echo_backpressure, slow_readers_get_everything_after_their_half_close)
{
	static const struct client_plan slow = {
		.min_len = 256 * 1024,
		.max_len = 512 * 1024,
		.piece_max = 64 * 1024,
		.read_chunk = 4096,
		.pace_us = 1000,
	};

	make_unix_path();
	server_start((const char *const[]){ "--listen", "127.0.0.1:0", "--unix", srv.unix_path,
					    NULL });
	expect_all_echoed_as(&srv.local, 100, 9, &slow);
	expect_all_echoed_as(&srv.tcp, 20, 10, &slow);
	server_stop_ok();
}
