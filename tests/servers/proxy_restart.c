// SPDX-License-Identifier: MIT
/*
 * proxy_restart: a restart of urpoll-proxy without downtime, end to end (the fixture:
 * tests/lib/proxy_util.h; docs/proxy.md). A second instance started with --reuseport on the
 * port of a first one joins its SO_REUSEPORT group; SIGTERM to the first then closes its
 * listeners and lets its connections finish. Clients connecting all along are all served,
 * whether or not the kernel hands those queued on the closing listeners to the new ones
 * (net.ipv4.tcp_migrate_req, set in a network namespace of the test's own, so that the host's
 * setting is left alone). Without --reuseport, a second instance is refused the port.
 */
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>

#include "proxy_util.h"

TestSuite(proxy_restart, .init = suite_init, .fini = cleanup, .timeout = 120);

/* This test process (and all it starts) in a network namespace of its own, its loopback up,
 * net.ipv4.tcp_migrate_req set to migrate. */
static void private_network(bool migrate)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd;

	if (unshare(CLONE_NEWNET) < 0)
		cr_skip_test("missing prerequisite: CAP_SYS_ADMIN (for a network namespace): %s",
			     strerror(errno));
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0, "SIOCGIFFLAGS lo: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "SIOCSIFFLAGS lo: %s", strerror(errno));
	close(fd);
	fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "net.ipv4.tcp_migrate_req (Linux 5.14): %s", strerror(errno));
	cr_assert_eq(write(fd, migrate ? "1" : "0", 1), 1);
	close(fd);
}

/* The arguments of an instance on 127.0.0.1:port in front of redis, --reuseport or not. */
static void instance_args(char **args, char *listen, char *backend, unsigned port,
			  unsigned redis, bool reuseport)
{
	unsigned n = 0;

	sprintf(listen, "127.0.0.1:%u", port);
	sprintf(backend, "127.0.0.1:%u", redis);
	args[n++] = "--listen";
	args[n++] = listen;
	args[n++] = "--backend";
	args[n++] = backend;
	args[n++] = "--threads";
	args[n++] = "2";
	if (reuseport)
		args[n++] = "--reuseport";
	args[n] = NULL;
}

/*
 * The restart: an old instance with a connection open across it, clients connecting one after
 * the other all along (but for an instant around the SIGTERM when quiet_sigterm), a new
 * instance, SIGTERM to the old one. Every client is served.
 */
static void restart_loses_no_client(bool quiet_sigterm)
{
	char listen[32], backend[32], *args[10];
	struct hammer h = { .port = 0 };
	struct proc *old, *fresh;
	unsigned redis, port;
	size_t from;
	int fd;

	redis = redis_start();
	port = free_port();
	instance_args(args, listen, backend, port, redis, true);
	proxy_start_args(args);
	old = t.proxy;
	fd = connect_port(port); /* open across the restart, on the old instance */
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	hammer_start(&h, port);
	sleep_ms(300);

	proxy_start_args(args);
	fresh = t.proxy;
	sleep_ms(300);
	from = old->len;
	if (quiet_sigterm)
		hammer_pause(&h, true);
	cr_assert_eq(kill(old->pid, SIGTERM), 0);
	if (quiet_sigterm) {
		sleep_ms(50);
		hammer_pause(&h, false);
	}
	/* The old instance drains: its connection still works, and it exits once it closes. */
	sleep_ms(300);
	cr_assert(ping(fd), "the old instance's connection broke during its drain");
	cr_assert_eq(proc_wait_exit(old, 0.2), -1, "the old instance left a connection behind");
	close(fd);
	cr_assert_eq(proc_wait_exit(old, START_S), 0, "%s", old->text);
	cr_assert(proc_wait_output_from(old, from, "exit: conns", 1.0), "%s", old->text);
	sleep_ms(300);
	hammer_stop(&h);

	cr_assert_eq(atomic_load(&h.failed), 0u, "%u of %u clients failed during the restart "
						  "(last: %s)",
		     atomic_load(&h.failed), atomic_load(&h.failed) + atomic_load(&h.served),
		     strerror(h.last_error));
	cr_assert_gt(atomic_load(&h.served), 50u);
	/* Both served part of the stream; the new one goes on alone. */
	t.proxy = fresh;
	cr_assert_gt(proxy_counter("conns"), 0ull);
	fd = connect_port(port);
	cr_assert_geq(fd, 0);
	cr_assert(ping(fd));
	close(fd);
}

PROXY_TEST(proxy_restart, a_restart_through_reuseport_refuses_no_client)
{
	skip_without_io_uring();
	private_network(true);
	restart_loses_no_client(false);
	cr_assert_null(strstr(t.proxy->text, "tcp_migrate_req"), "%s", t.proxy->text);
}

/*
 * Without the kernel's migration, the clients queued on a listener that closes are reset. The
 * old instance accepts those before it stops listening; and it stops listening at once: the
 * socket stays in the SO_REUSEPORT group for as long as the driver's poll holds the file, which
 * for a loop that stopped in the pass that closed it (no connection on it at the SIGTERM) was
 * until exit, while another loop drained, before urp_loop_run() took a last turn when stopped:
 * a client sent there waited, then was reset.
 */
PROXY_TEST(proxy_restart, a_restarted_listener_leaves_the_port_group_at_once)
{
	skip_without_io_uring();
	private_network(false);
	restart_loses_no_client(true);
}

PROXY_TEST(proxy_restart, without_reuseport_a_second_instance_is_refused_the_port)
{
	char listen[32], backend[32], *args[10];
	struct proc *second;
	unsigned redis, port;
	int status;

	skip_without_io_uring();
	redis = redis_start();
	port = free_port();
	instance_args(args, listen, backend, port, redis, true);
	proxy_start_args(args);
	/* --reuseport on the first instance only: the second must not slip in. */
	instance_args(args, listen, backend, port, redis, false);
	{
		char *argv[16];
		unsigned argc = proxy_argv(argv);

		for (unsigned i = 0; args[i]; i++)
			argv[argc++] = args[i];
		argv[argc] = NULL;
		second = spawn(argv, true, SIGKILL);
	}
	status = proc_wait_exit(second, START_S);
	proc_wait_output(second, "\n", 1.0);
	cr_assert_eq(status, 1, "status %d: %s", status, second->text);
	cr_assert_not_null(strstr(second->text, "Address already in use"), "%s", second->text);
}

PROXY_TEST(proxy_restart, reuseport_says_when_the_kernel_would_drop_queued_clients)
{
	char listen[32], backend[32], *args[10], line[512];
	unsigned redis, port;

	skip_without_io_uring();
	private_network(false);
	redis = redis_start();
	port = free_port();
	instance_args(args, listen, backend, port, redis, true);
	proxy_start_args(args);
	cr_assert(proxy_line(0, "net.ipv4.tcp_migrate_req is 0", 1.0, line, sizeof(line)), "%s",
		  t.proxy->text);
	cr_assert(line_has_time(line), "%s", line);
}
