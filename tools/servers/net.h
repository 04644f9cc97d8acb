/* SPDX-License-Identifier: MIT */
/*
 * net: what the urpoll servers (urpoll-echo, urpoll-proxy) share before the loop runs: address
 * literals, SO_REUSEPORT listener groups, option numbers, the descriptor limit, ring sizing.
 */
#ifndef URP_TOOLS_NET_H
#define URP_TOOLS_NET_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

/* "IPV4:PORT" or "[IPV6]:PORT", literals only (no name lookup). */
bool net_parse_addr(const char *text, union sockaddr_any *addr, socklen_t *len);
/* addr as net_parse_addr() reads it, in buf; returns buf. */
const char *net_addr_str(const union sockaddr_any *addr, char *buf, size_t size);
/*
 * n bound, listening, non-blocking TCP sockets on addr into fds, one per loop, SO_REUSEPORT
 * when n > 1. Port 0 picks a free port and the chosen address is written back to addr.
 * Unless shared, a port another socket listens on is -EADDRINUSE even with SO_REUSEPORT;
 * shared sets SO_REUSEPORT whatever n and joins the listeners of another process of the same
 * user on that port (a restart without downtime: the new server starts beside the old one).
 * Returns 0 or -errno (nothing left open).
 */
int net_tcp_listeners(union sockaddr_any *addr, socklen_t len, int *fds, unsigned n, bool shared);
/* A decimal in [min, max] into *out; false on anything else. */
bool net_parse_count(const char *text, unsigned min, unsigned max, unsigned *out);
/* Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now (capped at 1e6). */
unsigned net_raise_nofile(void);
/* CQ entries for a ring that may hold regs registrations (see urp_driver_opts). */
unsigned net_cq_entries_for(unsigned regs);
/*
 * Raise the descriptor limit (net_raise_nofile()), then the CQ entries of a ring for the
 * registrations it allows: regs_per_conn per connection (a descriptor each), for at most
 * max_conns connections (0: no limit), plus extra.
 */
unsigned net_raise_nofile_cq_entries(unsigned max_conns, unsigned regs_per_conn, unsigned extra);

/* A counter with one writer, read by other threads: a relaxed load and store, no locked add. */
static inline void net_count(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t net_counted(_Atomic uint64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

#endif /* URP_TOOLS_NET_H */
