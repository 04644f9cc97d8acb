/* SPDX-License-Identifier: MIT */
/*
 * Ring setup: feature tiers tried in order, the probe of what the driver relies on, fork
 * detection, and the sentences behind each setup error.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "../core/atomic.h"
#include "driver.h"
#include "ring.h"

#define URP__DEFAULT_SQ 256u
#define URP__DEFAULT_CQ 16384u

static const struct {
	enum urp_tier tier;
	const char *name;
	unsigned flags;
} tiers[] = {
	/* R_DISABLED: SINGLE_ISSUER binds the ring to the task that enables it, and the thread
	 * that creates a driver is often not the one that turns it. */
	{ URP_TIER_DEFER, "defer",
	  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
		  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED },
	{ URP_TIER_COOP, "coop",
	  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL },
	{ URP_TIER_BASIC, "basic", 0 },
	{ URP_TIER_SQPOLL, "sqpoll", IORING_SETUP_SQPOLL },
};

static uint32_t fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* A child must never touch its parent's ring: the rings are shared mappings. */
static void fork_child(void)
{
	urp__fetch_add_relaxed(&fork_gen, 1);
}

static void fork_hook(void)
{
	pthread_atfork(NULL, NULL, fork_child);
}

unsigned urp__fork_gen(void)
{
	return urp__load_relaxed(&fork_gen);
}

/* Setup errors that end the search: the next tier would fail the same way. */
static bool fatal_setup_error(int err)
{
	return err == -EPERM || err == -ENOSYS || err == -ENOMEM || err == -EMFILE ||
	       err == -ENFILE || err == -EACCES;
}

static int probe_ring(struct urp_driver *drv)
{
	struct io_uring_probe *probe;
	bool ok;

	/* Without EXT_ARG (before 5.11) liburing waits with a timeout SQE whose CQE, user_data
	 * LIBURING_UDATA_TIMEOUT, the reap loop would meet among the entries' tokens. */
	if ((drv->ring.features & (IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG)) !=
	    (IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG))
		return -EOPNOTSUPP;
	probe = urp__ring_get_probe(&drv->ring);
	if (!probe)
		return -EOPNOTSUPP;
	ok = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
	     io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
	io_uring_free_probe(probe);
	return ok ? 0 : -EOPNOTSUPP;
}

int urp__ring_setup(struct urp_driver *drv, const struct urp_driver_opts *opts)
{
	unsigned sq = URP__DEFAULT_SQ, cq = URP__DEFAULT_CQ, flags = 0;
	int ret = -EINVAL;
	size_t i;

	if (opts) {
		for (i = 0; i < sizeof(opts->reserved) / sizeof(opts->reserved[0]); i++)
			if (opts->reserved[i])
				return -EINVAL;
		flags = opts->flags;
		if (opts->sq_entries)
			sq = opts->sq_entries;
		if (opts->cq_entries)
			cq = opts->cq_entries;
	}
	if (flags & ~(URP_DRIVER_TIER_COOP | URP_DRIVER_TIER_BASIC | URP_DRIVER_SQPOLL |
		      URP_DRIVER_OVERCOMMIT | URP_DRIVER_READY_LIST))
		return -EINVAL;
	/* Below 4 entries the CQ holds no registration within the limit (cq_entries / 2 - 1);
	 * with OVERCOMMIT even a 2-entry CQ works, recovering overflow on nearly every turn. */
	if (sq > 32768 || cq > 131072 || cq < (flags & URP_DRIVER_OVERCOMMIT ? 2u : 4u))
		return -EINVAL;
	/* The kernel rounds both up to powers of two, and wants the CQ no smaller. */
	if (cq < sq)
		cq = sq;
	drv->fork_gen = urp__fork_gen();

	for (i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
		struct io_uring_params p;

		if (flags & URP_DRIVER_SQPOLL) {
			if (tiers[i].tier != URP_TIER_SQPOLL)
				continue;
		} else if (tiers[i].tier == URP_TIER_SQPOLL ||
			   (tiers[i].tier == URP_TIER_DEFER &&
			    (flags & (URP_DRIVER_TIER_COOP | URP_DRIVER_TIER_BASIC))) ||
			   (tiers[i].tier == URP_TIER_COOP && (flags & URP_DRIVER_TIER_BASIC))) {
			continue;
		}
		memset(&p, 0, sizeof(p));
		p.flags = tiers[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = cq;
		ret = urp__ring_queue_init_params(sq, &drv->ring, &p);
		if (ret == 0) {
			drv->info.tier = tiers[i].tier;
			drv->info.tier_name = tiers[i].name;
			drv->info.setup_flags = p.flags;
			drv->info.features = p.features;
			drv->info.sq_entries = p.sq_entries;
			drv->info.cq_entries = p.cq_entries;
			break;
		}
		if (fatal_setup_error(ret))
			break;
	}
	if (ret < 0)
		return ret;
	ret = probe_ring(drv);
	if (ret < 0) {
		urp__ring_queue_exit(&drv->ring);
		return ret;
	}
	drv->info.max_registrations =
		flags & URP_DRIVER_OVERCOMMIT ? UINT32_MAX : drv->info.cq_entries / 2 - 1;
	pthread_once(&fork_once, fork_hook);
	return 0;
}

/* On the thread that will turn the ring: with R_DISABLED, enabling binds SINGLE_ISSUER here. */
int urp__ring_enable(struct urp_driver *drv)
{
	if (!(drv->ring.flags & IORING_SETUP_R_DISABLED))
		return 0;
	return urp__ring_enable_rings(&drv->ring);
}

int urp_driver_info(struct urp_driver *drv, struct urp_driver_info *info)
{
	if (!drv || !info)
		return -EINVAL;
	*info = drv->info;
	return 0;
}

const char *urp_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return "success";
	case EPERM:
		return "io_uring is not permitted: kernel.io_uring_disabled is set, or a seccomp "
		       "filter (a container runtime's default profile) blocks io_uring_setup; set "
		       "the sysctl to 0 or allow io_uring_setup/enter/register in the profile";
	case ENOSYS:
		return "this kernel has no io_uring (built without CONFIG_IO_URING, or hidden by "
		       "a seccomp filter); urpoll needs Linux 6.1 or later with io_uring enabled";
	case ENOMEM:
		return "not enough memory: for a ring, ask for fewer cq_entries, or raise the "
		       "locked-memory limit (ulimit -l) on kernels before 5.12; for registrations "
		       "and timers, the heap is exhausted";
	case EMFILE:
		return "this process has too many open files: raise RLIMIT_NOFILE (ulimit -n) or "
		       "close descriptors";
	case ENFILE:
		return "the system has too many open files: raise fs.file-max";
	case EOPNOTSUPP:
		return "this kernel's io_uring lacks what urpoll needs (poll add, async cancel, "
		       "IORING_FEAT_NODROP, IORING_FEAT_EXT_ARG, multishot poll): use Linux 6.1 "
		       "or later; or, from urp_register_ring(), what ring mode needs (provided-"
		       "buffer rings, multishot recv: Linux 6.0, and not blocked by a seccomp "
		       "filter on io_uring_register): use urp_register() (poll mode)";
	case ECHILD:
		return "this driver belongs to the parent process: create a new one after fork()";
	case ESHUTDOWN:
		return "the driver or entry is shut down";
	case ENOSPC:
		return "the driver has as many registrations as its completion queue allows: "
		       "create it with a larger cq_entries (2 per registration)";
	case EEXIST:
		return "another thread turns this driver: a driver is turned by one thread";
	case EBUSY:
		return "busy: urp_driver_turn() was called from inside a turn (from a waker), or "
		       "(urp_io_poll_error()) the submission queue stayed full when the poll was "
		       "armed";
	case EINVAL:
		return "invalid argument";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
