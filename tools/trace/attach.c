/* SPDX-License-Identifier: MIT */
/*
 * urpoll-trace: the BPF side. Checks what loading needs, finds the library carrying the probes,
 * loads bpf/urpoll.bpf.c through its skeleton, attaches it to the USDT probes (and the io_uring
 * tracepoints), pins the maps, and reads them: the per-CPU values summed.
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "trace.h"
#include "urpoll.skel.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
/* Said at every failure that more privileges would fix. */
#define RUN_AS_ROOT "run as root, or with CAP_SYS_ADMIN"
/* Where `make install` puts the library (the Makefile may pass its LIBDIR). */
#ifndef URP_LIBDIR
#define URP_LIBDIR "/usr/local/lib"
#endif

#define TRACEFS_DIR  "/sys/kernel/tracing"
#define VMLINUX_BTF  "/sys/kernel/btf/vmlinux"
#define UPROBE_PMU   "/sys/bus/event_source/devices/uprobe/type"
#define LIB_SONAME   "liburpoll.so.0"
#define USDT_PROVIDER "urpoll"
/* With --events: about 26000 records of 40 bytes (with the ring's header) per interval. */
#define EVENTS_RING_BYTES (1u << 20)

/* ---- prerequisites ---- */

/*
 * What the kernel asks of the caller (docs/tracing.md has the table, tested on 6.18):
 *
 *   loading the programs and maps    CAP_BPF and CAP_PERFMON (kprobe-type programs), or
 *                                    CAP_SYS_ADMIN, which stands for both
 *   attaching a uprobe (USDT)        CAP_SYS_ADMIN since Linux 6.16 (commit "perf: Revert to
 *                                    requiring CAP_SYS_ADMIN for uprobes", also in stable
 *                                    kernels); CAP_PERFMON from 5.8 to 6.15. The check comes
 *                                    before and regardless of kernel.perf_event_paranoid
 *   the io_uring tracepoints         their ids under tracefs: root's uid or
 *                                    CAP_DAC_READ_SEARCH
 *
 * Root is not the test: a root process may have lost capabilities (a container, capsh), and a
 * non-root one may hold them. The effective set decides.
 */
static __u64 effective_caps(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return 0;
	return (__u64)data[1].effective << 32 | data[0].effective;
}

static bool has_cap(int cap)
{
	return effective_caps() >> cap & 1;
}

/* The names of the capabilities loading and attaching need that this process lacks, ", "
 * between. */
static const char *missing_caps(void)
{
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
		{ CAP_BPF, "CAP_BPF" },
		{ CAP_PERFMON, "CAP_PERFMON" },
		{ CAP_SYS_ADMIN, "CAP_SYS_ADMIN" },
	};
	static char list[128];
	size_t len = 0, i;

	list[0] = '\0';
	for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		if (!has_cap(needed[i].cap))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
						len ? ", " : "", needed[i].name);
	return list;
}

static const char *kernel_release(void)
{
	static struct utsname uts;

	return uname(&uts) == 0 ? uts.release : "?";
}

static bool fs_is(const char *dir, long magic)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && st.f_type == magic;
}

/* Mount fstype at dir unless it is there already. Returns 0 or -errno. */
static int ensure_mounted(const char *dir, const char *fstype, long magic)
{
	if (fs_is(dir, magic))
		return 0;
	if (mount(fstype, dir, fstype, 0, NULL) < 0)
		return -errno;
	if (env.verbose)
		fprintf(stderr, "%s: mounted %s at %s\n", prog_name, fstype, dir);
	return 0;
}

void check_environment(void)
{
	int err;

	/* Nothing loads without these; whether CAP_SYS_ADMIN is needed too, the kernel says when
	 * the uprobe is attached (load_and_attach()). */
	if (!has_cap(CAP_SYS_ADMIN) && !(has_cap(CAP_BPF) && has_cap(CAP_PERFMON)))
		fail("missing %s: loading the BPF programs needs CAP_BPF and CAP_PERFMON, "
		     "attaching uprobes CAP_SYS_ADMIN since Linux 6.16 (which also covers the "
		     "other two): " RUN_AS_ROOT,
		     missing_caps());
	if (access(VMLINUX_BTF, R_OK) < 0)
		fail("no kernel BTF at %s: needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
		     VMLINUX_BTF);
	if (access(UPROBE_PMU, R_OK) < 0)
		fail("the kernel has no uprobes (%s missing): USDT probes cannot be attached",
		     UPROBE_PMU);
	err = ensure_mounted(TRACEFS_DIR, "tracefs", TRACEFS_MAGIC);
	if (err)
		fail("tracefs is not mounted at %s and mounting it failed: %s "
		     "(mount -t tracefs tracefs %s)",
		     TRACEFS_DIR, strerror(-err), TRACEFS_DIR);
	/* bpffs is only needed to pin; without --pin a failed mount does not matter. */
	err = ensure_mounted(BPFFS_DIR, "bpf", BPF_FS_MAGIC);
	if (err && env.pin_dir)
		fail("bpffs is not mounted at %s and mounting it failed: %s (mount -t bpf bpf %s)",
		     BPFFS_DIR, strerror(-err), BPFFS_DIR);
}

/* ---- which library ---- */

static bool resolve(const char *path, char *out)
{
	return access(path, R_OK) == 0 && realpath(path, out) != NULL;
}

/* The library a running process maps: its first mapping whose file is liburpoll.so*. */
static void find_library_of(pid_t pid, char *out)
{
	char maps[64], line[PATH_MAX + 128], alt[PATH_MAX + 64];
	bool found = false, deleted = false;
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	f = fopen(maps, "r");
	if (!f && errno == ENOENT)
		fail("process %d not found", pid);
	if (!f)
		fail("cannot read %s: %s", maps, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/'), *base;

		if (!path)
			continue;
		path[strcspn(path, "\n")] = '\0';
		base = strrchr(path, '/') + 1;
		if (strncmp(base, "liburpoll.so", strlen("liburpoll.so")) != 0)
			continue;
		found = true;
		if (strstr(path, " (deleted)")) {
			deleted = true;
			continue;
		}
		/* A process in another mount namespace: reach its file through its root. */
		snprintf(alt, sizeof(alt), "/proc/%d/root%s", pid, path);
		if (resolve(path, out) || resolve(alt, out)) {
			fclose(f);
			return;
		}
	}
	fclose(f);
	if (deleted)
		fail("process %d maps a liburpoll.so that was deleted or replaced since it started; "
		     "restart it or pass -l",
		     pid);
	if (found)
		fail("process %d maps liburpoll.so, but the file cannot be opened", pid);
	fail("process %d does not map liburpoll.so (statically linked? pass -l /proc/%d/exe)", pid,
	     pid);
}

void find_library(char *out)
{
	static const char *const installed[] = {
		URP_LIBDIR "/" LIB_SONAME,	   "/usr/local/lib/" LIB_SONAME,
		"/usr/local/lib64/" LIB_SONAME,	   "/usr/lib/" LIB_SONAME,
		"/usr/lib64/" LIB_SONAME,
	};
	char self[PATH_MAX], beside[PATH_MAX + 32];
	ssize_t n;
	size_t i;

	if (env.lib) {
		if (!resolve(env.lib, out))
			fail("library %s not found: %s", env.lib, strerror(errno));
		return;
	}
	if (env.pid) {
		find_library_of(env.pid, out);
		return;
	}
	/* build/tools/urpoll-trace -> build/liburpoll.so.0 */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(beside, sizeof(beside), "%s/../%s", self, LIB_SONAME);
		if (resolve(beside, out))
			return;
	}
	for (i = 0; i < sizeof(installed) / sizeof(installed[0]); i++)
		if (resolve(installed[i], out))
			return;
	fail("library not found: no %s beside this tool nor in %s; build it (make), install it "
	     "(make install), or pass -l LIB",
	     LIB_SONAME, URP_LIBDIR);
}

/* ---- pinning ---- */

/* mkdir -p, only on bpffs: a typo must not scatter directories elsewhere. */
static void make_pin_dir(const char *dir)
{
	char path[PATH_MAX], *slash;
	struct stat st;

	if (strlen(dir) >= sizeof(path) - 16)
		fail("--pin directory name too long");
	/* The deepest directory that exists decides which filesystem the pins land on. */
	strcpy(path, dir);
	while (stat(path, &st) < 0 && (slash = strrchr(path, '/')) && slash != path)
		*slash = '\0';
	if (!fs_is(path, BPF_FS_MAGIC))
		fail("%s is not on a bpf filesystem: pin under %s (mount -t bpf bpf %s)", dir,
		     BPFFS_DIR, BPFFS_DIR);
	strcpy(path, dir);
	for (slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			fail("cannot create %s: %s", path, strerror(errno));
		if (!slash)
			break;
		*slash = '/';
	}
}

/* The maps this run pins: urp_stats always, the others with their options. */
static int pinned_maps(struct tracer *t, struct bpf_map **maps)
{
	int n = 0;

	maps[n++] = t->skel->maps.urp_stats;
	if (env.events)
		maps[n++] = t->skel->maps.urp_events;
	if (env.io_uring)
		maps[n++] = t->skel->maps.urp_uring;
	return n;
}

/* Before loading: the directory is on bpffs and no earlier run's pins are in the way. */
static void check_pins(struct tracer *t)
{
	struct bpf_map *maps[3];
	int i, n = pinned_maps(t, maps);

	make_pin_dir(env.pin_dir);
	for (i = 0; i < n; i++) {
		snprintf(t->pin_paths[i], PATH_MAX, "%s/%s", env.pin_dir, bpf_map__name(maps[i]));
		if (access(t->pin_paths[i], F_OK) == 0)
			fail("%s exists (pinned by an earlier run): read it with `bpftool map dump "
			     "pinned %s`, then remove it (rm %s) or pin elsewhere",
			     t->pin_paths[i], t->pin_paths[i], t->pin_paths[i]);
	}
}

/* Once attached, so that no failure before leaves pins behind. */
static void pin_maps(struct tracer *t)
{
	struct bpf_map *maps[3];
	int i, n = pinned_maps(t, maps), err;

	for (i = 0; i < n; i++) {
		err = bpf_map__pin(maps[i], t->pin_paths[i]);
		if (err) {
			int failed = i;

			while (i--)
				unlink(t->pin_paths[i]);
			fail("cannot pin %s: %s", t->pin_paths[failed], strerror(-err));
		}
	}
}

/* ---- reading ---- */

/*
 * Every field of the maps' values is a __u64 counter (bpf/urpoll_trace.h), so the CPUs' values
 * are summed word by word, whatever the fields: a field added to the struct is summed too.
 */
_Static_assert(sizeof(struct urp_trace_stats) % sizeof(__u64) == 0, "urp_trace_stats: __u64s");
_Static_assert(sizeof(struct urp_trace_uring) % sizeof(__u64) == 0, "urp_trace_uring: __u64s");

/* The value of the per-CPU array map (one entry), its CPUs summed into sum (size bytes). */
static void read_percpu(struct tracer *t, struct bpf_map *map, void *sum, size_t size)
{
	size_t words = size / sizeof(__u64);
	__u64 *total = sum;
	__u32 key = 0;

	memset(sum, 0, size);
	if (bpf_map_lookup_elem(bpf_map__fd(map), &key, t->percpu) < 0)
		fail("cannot read %s: %s", bpf_map__name(map), strerror(errno));
	for (int cpu = 0; cpu < t->ncpus; cpu++)
		for (size_t i = 0; i < words; i++)
			total[i] += t->percpu[(size_t)cpu * words + i];
}

void read_totals(struct tracer *t, struct urp_trace_stats *tot, struct urp_trace_uring *uring)
{
	read_percpu(t, t->skel->maps.urp_stats, tot, sizeof(*tot));
	memset(uring, 0, sizeof(*uring));
	if (env.io_uring)
		read_percpu(t, t->skel->maps.urp_uring, uring, sizeof(*uring));
}

void drain_events(struct tracer *t)
{
	int err;

	if (!t->ring)
		return;
	err = ring_buffer__consume(t->ring);
	if (err < 0)
		fail("cannot read urp_events: %s", strerror(-err));
}

__u32 stats_map_id(struct tracer *t)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(bpf_map__fd(t->skel->maps.urp_stats), &info, &len) < 0)
		fail("cannot read the id of urp_stats: %s", strerror(errno));
	return info.id;
}

void tracer_free(struct tracer *t)
{
	ring_buffer__free(t->ring);
	urpoll_bpf__destroy(t->skel);
	free(t->percpu);
}

/* ---- loading and attaching ---- */

void load_and_attach(struct tracer *t)
{
	struct bpf_link *link;
	long page = sysconf(_SC_PAGESIZE);
	size_t value_max;
	__u32 ring_bytes;
	int err;

	t->skel = urpoll_bpf__open();
	if (!t->skel)
		fail("cannot open the BPF object: %s", strerror(errno));
	t->skel->rodata->target_pid = env.pid;
	t->skel->rodata->events_enabled = env.events;
	/* The ring must exist for the program to load; off, it is one page nobody writes. */
	ring_bytes = env.events ? EVENTS_RING_BYTES : (__u32)page;
	if (ring_bytes < page)
		ring_bytes = page;
	t->skel->rodata->ring_wake_bytes = ring_bytes / 2;
	bpf_map__set_max_entries(t->skel->maps.urp_events, ring_bytes);
	bpf_program__set_autoload(t->skel->progs.urp_uring_complete, env.io_uring);
	bpf_program__set_autoload(t->skel->progs.urp_uring_overflow, env.io_uring);

	if (env.pin_dir)
		check_pins(t);
	err = urpoll_bpf__load(t->skel);
	if (err)
		fail("cannot load the BPF programs: %s%s", strerror(-err),
		     env.verbose ? "" : " (-v shows libbpf's reasons)");

	t->ncpus = libbpf_num_possible_cpus();
	if (t->ncpus <= 0)
		fail("cannot count the CPUs: %s", strerror(-t->ncpus));
	/* Room for either map's values (read_percpu()). */
	value_max = sizeof(struct urp_trace_stats);
	if (sizeof(struct urp_trace_uring) > value_max)
		value_max = sizeof(struct urp_trace_uring);
	t->percpu = calloc(t->ncpus, value_max);
	if (!t->percpu)
		fail("out of memory");

	/* pid -1: every process mapping the file, now or later (uprobes are per inode). */
	link = bpf_program__attach_usdt(t->skel->progs.urp_stale_reject, env.pid ? env.pid : -1,
					t->lib, USDT_PROVIDER, "stale_reject", NULL);
	if (link)
		t->skel->links.urp_stale_reject = link;
	if (link)
		link = bpf_program__attach_usdt(t->skel->progs.urp_wake_batch,
						env.pid ? env.pid : -1, t->lib, USDT_PROVIDER,
						"wake_batch", NULL);
	if (!link) {
		err = errno;
		if (env.pid && kill(env.pid, 0) < 0 && errno == ESRCH)
			fail("process %d is gone", env.pid);
		if (err == ENOENT)
			fail("%s has no urpoll USDT probes (built with URP_PROBES=0?)", t->lib);
		if ((err == EACCES || err == EPERM) && !has_cap(CAP_SYS_ADMIN))
			fail("cannot attach to the USDT probes in %s: %s: missing CAP_SYS_ADMIN: "
			     "the kernel (%s) refused the uprobe without it, as Linux does since "
			     "6.16 whatever kernel.perf_event_paranoid says (CAP_BPF and "
			     "CAP_PERFMON are not enough): " RUN_AS_ROOT,
			     t->lib, strerror(err), kernel_release());
		fail("cannot attach to the USDT probes in %s: %s%s", t->lib, strerror(err),
		     env.verbose ? "" : " (-v shows libbpf's reasons)");
	}
	t->skel->links.urp_wake_batch = link;

	if (env.io_uring) {
		link = bpf_program__attach(t->skel->progs.urp_uring_complete);
		if (link)
			t->skel->links.urp_uring_complete = link;
		if (link)
			link = bpf_program__attach(t->skel->progs.urp_uring_overflow);
		if (!link) {
			err = errno;
			/* libbpf reads each tracepoint's id from tracefs, root's and mode 0700. */
			if (err == EACCES && geteuid() != 0 && !has_cap(CAP_DAC_READ_SEARCH))
				fail("cannot attach the io_uring tracepoints: %s: missing "
				     "CAP_DAC_READ_SEARCH: their ids under %s/events are root's: "
				     "run as root, or with CAP_DAC_READ_SEARCH",
				     strerror(err), TRACEFS_DIR);
			fail("cannot attach the io_uring tracepoints: %s (does %s/events/io_uring "
			     "exist?)",
			     strerror(err), TRACEFS_DIR);
		}
		t->skel->links.urp_uring_overflow = link;
	}

	if (env.events) {
		t->ring = ring_buffer__new(bpf_map__fd(t->skel->maps.urp_events), print_event, t,
					   NULL);
		if (!t->ring)
			fail("cannot open the ring buffer: %s", strerror(errno));
	}
	if (env.pin_dir)
		pin_maps(t);
}
