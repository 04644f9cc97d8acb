// SPDX-License-Identifier: MIT
/*
 * uring_env: the driver in a hostile or unusual environment. Setup failures produced for real
 * in forked children (a seccomp filter refusing io_uring_setup, a file-descriptor limit), a
 * driver used from a forked child, and the threading rules: created on one thread and turned on
 * another, one turning thread only (-EEXIST), no turn from inside a turn (-EBUSY).
 *
 * io_uring_enter blocked after setup, buffer rings refused (ring mode is -EOPNOTSUPP, poll
 * mode works), one descriptor left for the unpark eventfd, and a 2-entry CQ.
 *
 * Children report through their exit status only (never through Criterion): 0 when every check
 * held, otherwise a code naming the first that failed.
 */
#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <liburing.h>

#include "uring_util.h"

#if defined(__x86_64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_I386
#endif


TestSuite(uring_env, .fini = drv_teardown, .timeout = 30);

/* Fork, run child_main in the child, and return its exit status (or 1000 + signal). */
static int in_child(int (*child_main)(void *arg), void *arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child_main(arg));
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* ---- setup failures ---- */

/* The child's verdict on urp_driver_new(): its errno, or 255 when a driver was created. */
static int driver_new_status(void)
{
	struct urp_driver *d = NULL;
	int ret = urp_driver_new(&d, NULL);

	if (ret == 0) {
		urp_driver_free(d);
		return 255;
	}
	return -ret < 255 ? -ret : 254;
}

/* A classic BPF seccomp filter: syscall nr fails with err, everything else is allowed.
 * Returns 0, or the child status naming what failed. */
static int block_syscall(int nr, int err)
{
	struct sock_filter filter[] = {
#ifdef AUDIT_ARCH_SELF
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_SELF, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
#endif
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
	    .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
	    .filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return 250;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return 251;
	return 0;
}

/* io_uring_setup blocked, as kernel.io_uring_disabled (EPERM) or a runtime's default profile
 * (EPERM or ENOSYS) blocks it. */
static int seccomp_child(void *arg)
{
	int err = (int)(intptr_t)arg;
	int ret = block_syscall(__NR_io_uring_setup, err);

	if (ret)
		return ret;
	/* The filter works: a raw io_uring_setup gets err. */
	if (syscall(__NR_io_uring_setup, 4, NULL) != -1 || errno != err)
		return 252;
	return driver_new_status();
}

Test(uring_env, seccomp_eperm)
{
	int status = in_child(seccomp_child, (void *)(intptr_t)EPERM);

	cr_assert_eq(status, EPERM,
		     "child status %d (250-252: filter setup; 255: driver created; "
		     "else the errno urp_driver_new returned)",
		     status);
	cr_assert_gt(strlen(urp_strerror(-EPERM)), 10);
}

Test(uring_env, seccomp_enosys)
{
	int status = in_child(seccomp_child, (void *)(intptr_t)ENOSYS);

	cr_assert_eq(status, ENOSYS,
		     "child status %d (250-252: filter setup; 255: driver "
		     "created; else the errno urp_driver_new returned)",
		     status);
}

/* io_uring_register's IORING_REGISTER_PBUF_RING refused with -EINVAL, as a kernel before 5.19
 * (or a seccomp profile) refuses it: ring mode is -EOPNOTSUPP, said once and for good, with a
 * sentence that names it, and poll mode works on the same driver. Opcodes are matched without
 * IORING_REGISTER_USE_REGISTERED_RING (bit 31), which liburing may add. */
static int no_buf_ring_child(void *arg)
{
	struct sock_filter filter[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 0, 4),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
	    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x7fffffffu),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IORING_REGISTER_PBUF_RING, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
	struct urp_driver *d = NULL;
	struct urp_io *io = NULL;
	int sv[2], ret = 0;

	(void)arg;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return 250;
	if (urp_driver_new(&d, NULL) != 0)
		return 240;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 241;
	if (urp_register_ring(d, sv[0], &io) != -EOPNOTSUPP || io)
		ret = 242;
	else if (urp_register_ring(d, sv[0], &io) != -EOPNOTSUPP)
		ret = 243;
	else if (!strstr(urp_strerror(-EOPNOTSUPP), "ring mode"))
		ret = 244;
	else if (urp_register(d, sv[0], URP_READABLE, &io) != 0)
		ret = 245;
	else if (write(sv[1], "x", 1) != 1)
		ret = 246;
	for (int t = 0; !ret && t < 100 && !(urp_word_ready(urp_io_word(io)) & URP_READABLE); t++)
		urp_driver_turn(d, 100);
	if (!ret && !(urp_word_ready(urp_io_word(io)) & URP_READABLE))
		ret = 247;
	urp_driver_free(d);
	return ret;
}

Test(uring_env, no_buffer_rings_ring_mode_eopnotsupp_poll_mode_works)
{
	int status = in_child(no_buf_ring_child, NULL);

	cr_assert_eq(status, 0,
		     "child status %d (240-241: setup; 242-243: urp_register_ring was not "
		     "-EOPNOTSUPP; 244: urp_strerror does not name ring mode; 245-247: poll mode "
		     "did not work; 250: filter setup)",
		     status);
}

/* No descriptor can be allocated: the soft limit is the number open, and every hole below it
 * is filled. */
static int emfile_child(void *arg)
{
	struct rlimit rl;
	int open_fds = 0;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return 250;
	while (readdir(dir))
		open_fds++;
	closedir(dir);
	open_fds -= 2; /* . and .. (the directory's own fd is closed again) */
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 251;
	rl.rlim_cur = (rlim_t)open_fds;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 252;
	while (dup(0) >= 0)
		;
	if (errno != EMFILE)
		return 253;
	return driver_new_status();
}

Test(uring_env, rlimit_nofile_emfile)
{
	int status = in_child(emfile_child, NULL);

	cr_assert_eq(status, EMFILE,
		     "child status %d (250-253: limit setup; 255: driver created; "
		     "else the errno urp_driver_new returned)",
		     status);
}

/* One descriptor left: the ring takes it, the unpark eventfd finds none. The driver must give
 * the ring's descriptor back: afterwards one descriptor can be opened again. */
static int one_left_child(void *arg)
{
	struct urp_driver *d = NULL;
	struct rlimit rl;
	int fd, last = -1, ret;
	rlim_t entries = 0;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return 250;
	while (readdir(dir))
		entries++;
	closedir(dir);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 251;
	/* A few above what is open, so filling it is cheap. */
	rl.rlim_cur = entries + 8;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 252;
	while ((fd = dup(0)) >= 0)
		last = fd;
	if (errno != EMFILE || last < 0)
		return 253;
	close(last);
	ret = urp_driver_new(&d, NULL);
	if (ret == 0) {
		urp_driver_free(d);
		return 255;
	}
	if (dup(0) < 0)
		return 240;
	return -ret < 240 ? -ret : 254;
}

Test(uring_env, rlimit_nofile_one_left_eventfd_emfile_ring_released)
{
	int status = in_child(one_left_child, NULL);

	cr_assert_eq(status, EMFILE,
		     "child status %d (240: the ring's descriptor leaked; 250-253: limit setup; "
		     "255: driver created; else the errno urp_driver_new returned)",
		     status);
}

/* io_uring_setup allowed, io_uring_enter blocked: the driver is created (setup and probe use
 * io_uring_setup and io_uring_register) and every turn returns the filter's errno. */
static int enter_blocked_child(void *arg)
{
	struct urp_driver *d = NULL;
	int ret = block_syscall(__NR_io_uring_enter, EPERM);

	if (ret)
		return ret;
	if (urp_driver_new(&d, NULL) != 0)
		return 240;
	ret = urp_driver_turn(d, -1);
	if (ret != -EPERM)
		return 241;
	ret = urp_driver_turn(d, 0);
	urp_driver_free(d);
	return ret == -EPERM ? 0 : 242;
}

Test(uring_env, seccomp_enter_eperm_turn_returns_eperm)
{
	int status = in_child(enter_blocked_child, NULL);

	cr_assert_eq(status, 0,
		     "child status %d (240: driver not created; 241-242: a turn did not return "
		     "-EPERM; 250-251: filter setup)",
		     status);
}

/* ---- a 2-entry CQ ---- */

#define CQ2_PAIRS  16
#define CQ2_ROUNDS 3

/* 16 sockets on a 2-entry CQ (the smallest the driver takes, with URP_DRIVER_OVERCOMMIT), all
 * made readable at once, round after round: every entry delivers, the overflow is counted and
 * recovered, and nothing is taken for an unknown token or an unpollable file. */
static void cq2_rounds(unsigned flags)
{
	struct urp_driver_opts opts = {
	    .sq_entries = 2, .cq_entries = 2, .flags = URP_DRIVER_OVERCOMMIT | flags};
	struct urp_io *io[CQ2_PAIRS];
	int sv[CQ2_PAIRS][2];
	struct urp_driver_info info;
	struct urp_stats st;

	drv = driver_new(&opts);
	cr_assert_eq(urp_driver_info(drv, &info), 0);
	cr_assert_eq(info.cq_entries, 2);
	turn(drv, 0);
	for (int i = 0; i < CQ2_PAIRS; i++) {
		unix_pair(sv[i]);
		io[i] = reg_or_fail(drv, sv[i][0], URP_READABLE);
	}
	settle(drv);
	for (int round = 0; round < CQ2_ROUNDS; round++) {
		int ready = 0;

		for (int i = 0; i < CQ2_PAIRS; i++)
			write_all(sv[i][1], "r", 1);
		for (int t = 0; t < TURN_TRIES && ready < CQ2_PAIRS; t++) {
			turn(drv, 10);
			ready = 0;
			for (int i = 0; i < CQ2_PAIRS; i++)
				ready += (io_ready(io[i]) & URP_READABLE) != 0;
		}
		cr_assert_eq(ready, CQ2_PAIRS, "round %d: %d of %d readable", round, ready,
			     CQ2_PAIRS);
		for (int i = 0; i < CQ2_PAIRS; i++)
			cr_assert_eq(drain_try_io(io[i], sv[i][0]), 1);
		settle(drv);
		/* A poll re-armed while data was still unread may report it late: clear that. */
		for (int i = 0; i < CQ2_PAIRS; i++)
			cr_assert_eq(drain_try_io(io[i], sv[i][0]), 0);
	}
	st = driver_stats(drv);
	cr_assert_gt(st.cq_overflows, 0, "%d completions fit in a 2-entry CQ?", CQ2_PAIRS);
	cr_assert_gt(st.rearms, 0);
	cr_assert_eq(st.poll_errors + st.oneshot_files + st.unknown_tokens, 0);
	for (int i = 0; i < CQ2_PAIRS; i++)
		cr_assert_eq(urp_deregister_close(io[i]), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	for (int i = 0; i < CQ2_PAIRS; i++) {
		cr_assert_eq(drain_fd(sv[i][1]), 0);
		close(sv[i][1]);
	}
}

Test(uring_env, cq2_overcommit_every_fd_delivers)
{
	cq2_rounds(0);
}

Test(uring_env, coop_cq2_overcommit_every_fd_delivers)
{
	cq2_rounds(URP_DRIVER_TIER_COOP);
}

Test(uring_env, basic_cq2_overcommit_every_fd_delivers)
{
	cq2_rounds(URP_DRIVER_TIER_BASIC);
}

/* ---- fork ---- */

struct fork_ctx {
	struct urp_driver *drv;
	struct urp_io *io;
	int fd;
};

/* Every call on the parent's driver fails with -ECHILD; then the child frees its copies. */
static int fork_child(void *arg)
{
	struct fork_ctx *f = arg;
	struct urp_stats st;
	struct urp_io *io;
	int sv[2];

	if (urp_driver_turn(f->drv, 0) != -ECHILD)
		return 1;
	if (urp_driver_turn(f->drv, 100) != -ECHILD)
		return 2;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 3;
	if (urp_register(f->drv, sv[0], URP_READABLE, &io) != -ECHILD)
		return 4;
	if (urp_deregister(f->io) != -ECHILD)
		return 5;
	if (urp_deregister_close(f->io) != -ECHILD)
		return 6;
	if (urp_driver_unpark(f->drv) != -ECHILD)
		return 7;
	if (urp_driver_stats(f->drv, &st) != -ECHILD)
		return 8;
	/* Must not reach the parent's ring or entries. */
	urp_driver_shutdown(f->drv);
	urp_driver_free(f->drv);
	return 0;
}

Test(uring_env, fork_child_gets_echild)
{
	struct fork_ctx f;
	struct urp_io *io;
	int sv[2], status;
	struct urp_stats st;

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE | URP_WRITABLE);
	turn_until_ready(drv, io, URP_WRITABLE);
	f = (struct fork_ctx){.drv = drv, .io = io, .fd = sv[0]};

	status = in_child(fork_child, &f);
	cr_assert_eq(status, 0,
		     "child check %d failed (1-2 turn, 4 register, 5-6 deregister, "
		     "7 unpark, 8 stats; >1000: killed by signal %d)",
		     status, status - 1000);

	/* The parent's driver is untouched and still works. */
	cr_assert_not(urp_word_shutdown(urp_io_word(io)), "the child's shutdown reached the parent");
	write_all(sv[1], "after fork", 10);
	turn_until_ready(drv, io, URP_READABLE);
	assert_ready(io, URP_READABLE | URP_WRITABLE, URP_ERROR | URP_READ_CLOSED);
	cr_assert_eq(drain_try_io(io, sv[0]), 10);
	cr_assert_eq(urp_driver_unpark(drv), 0);
	turn(drv, TURN_WAIT_MS);
	st = driver_stats(drv);
	cr_assert_eq(st.unknown_tokens, 0);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* ---- threads ---- */

static void *create_main(void *arg)
{
	struct urp_driver **out = arg;

	cr_assert_eq(urp_driver_new(out, NULL), 0);
	return NULL;
}

/* Created on a thread that is gone before the first turn; turned here. */
Test(uring_env, created_on_exited_thread_turned_here)
{
	struct urp_io *io;
	int sv[2];

	run_on_thread(create_main, &drv);
	cr_assert_not_null(drv);
	unix_pair(sv);
	write_all(sv[1], "x", 1);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	turn_until_ready(drv, io, URP_READABLE);
	write_all(sv[1], "y", 1);
	cr_assert_eq(drain_try_io(io, sv[0]), 2);
	write_all(sv[1], "z", 1);
	turn_until_ready(drv, io, URP_READABLE);
	cr_assert_eq(drain_try_io(io, sv[0]), 1);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/* Created here, turned (registrations, readiness, deregistration) entirely on another thread,
 * freed here. */
static void *whole_life_main(void *arg)
{
	struct urp_driver *d = arg;
	struct urp_io *io;
	int sv[2];

	unix_pair(sv);
	cr_assert_eq(urp_driver_turn(d, 0), 0);
	cr_assert_eq(urp_register(d, sv[0], URP_READABLE, &io), 0);
	write_all(sv[1], "x", 1);
	for (int i = 0; i < TURN_TRIES && !(io_ready(io) & URP_READABLE); i++)
		cr_assert_geq(urp_driver_turn(d, TURN_WAIT_MS), 0);
	assert_ready(io, URP_READABLE, URP_ERROR);
	cr_assert_eq(urp_deregister_close(io), 0);
	for (int i = 0; i < TURN_TRIES && driver_stats(d).live; i++)
		cr_assert_geq(urp_driver_turn(d, 10), 0);
	cr_assert_eq(driver_stats(d).live, 0);
	close(sv[1]);
	return NULL;
}

Test(uring_env, created_here_turned_on_other_thread)
{
	drv = driver_new(NULL);
	run_on_thread(whole_life_main, drv);
	/* This thread is not the driver's: it may register (queued) but not turn. */
	cr_assert_eq(urp_driver_turn(drv, 0), -EEXIST);
}

struct second_ctx {
	struct urp_driver *drv;
	int turn_ret;
	int reg_ret;
	int fd;
	struct urp_io *io;
};

static void *second_turner_main(void *arg)
{
	struct second_ctx *s = arg;

	s->turn_ret = urp_driver_turn(s->drv, 0);
	s->reg_ret = urp_register(s->drv, s->fd, URP_READABLE, &s->io);
	return NULL;
}

Test(uring_env, second_turning_thread_gets_eexist)
{
	struct second_ctx s = {0};
	int sv[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	unix_pair(sv);
	s.drv = drv;
	s.fd = sv[0];
	run_on_thread(second_turner_main, &s);
	cr_assert_eq(s.turn_ret, -EEXIST, "second thread's turn: %d", s.turn_ret);
	/* Registering from that thread is fine: it is applied at this thread's next turn. */
	cr_assert_eq(s.reg_ret, 0);
	write_all(sv[1], "x", 1);
	turn_until_ready(drv, s.io, URP_READABLE);
	assert_ready(s.io, URP_READABLE, URP_ERROR);
	/* The first thread still owns it. */
	turn(drv, 0);
	cr_assert_eq(urp_deregister_close(s.io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}

/*
 * Two threads race to the very first turn: exactly one may own the driver; the other must get
 * -EEXIST (never both turning the ring, never a setup error). A spinning start line makes the
 * calls overlap (a futex barrier wakes the second thread ~25 us late on this VM).
 */
struct race_ctx {
	struct urp_driver *drv;
	atomic_int *start;
	int ret;
};

static void *race_main(void *arg)
{
	struct race_ctx *r = arg;

	atomic_fetch_add(r->start, 1);
	/* Spin (yielding now and then, in case both threads share a CPU). */
	for (long spins = 1; atomic_load(r->start) < 2; spins++) {
		if (spins % 1024 == 0)
			sched_yield();
	}
	r->ret = urp_driver_turn(r->drv, 0);
	return NULL;
}

static void first_turn_race(unsigned flags, int rounds)
{
	struct urp_driver_opts opts = {.sq_entries = 8, .cq_entries = 16, .flags = flags};

	for (int round = 0; round < rounds; round++) {
		struct race_ctx r[2];
		atomic_int start;
		pthread_t t[2];
		int owners;

		atomic_init(&start, 0);
		drv = driver_new(&opts);
		for (int i = 0; i < 2; i++) {
			r[i] = (struct race_ctx){.drv = drv, .start = &start};
			cr_assert_eq(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			cr_assert_eq(pthread_join(t[i], NULL), 0);
		owners = (r[0].ret >= 0) + (r[1].ret >= 0);
		cr_assert(owners == 1 && (r[0].ret == -EEXIST || r[1].ret == -EEXIST),
			  "round %d: racing first turns returned %d (%s) and %d (%s)", round,
			  r[0].ret, urp_strerror(r[0].ret), r[1].ret, urp_strerror(r[1].ret));
		urp_driver_free(drv);
		drv = NULL;
	}
}

Test(uring_env, racing_first_turns_one_owner)
{
	/* The kernel refuses a second ENABLE_RINGS from another task (-EEXIST) here. */
	first_turn_race(0, 300);
}

Test(uring_env, coop_racing_first_turns_one_owner)
{
	first_turn_race(URP_DRIVER_TIER_COOP, 2000);
}

/* A waker runs inside the turn: turning from there is refused. */
struct nested_ctx {
	struct urp_driver *drv;
	int calls;
	int ret;
};

static void nested_turn_wake(void *arg)
{
	struct nested_ctx *n = arg;

	n->calls++;
	n->ret = urp_driver_turn(n->drv, 0);
}

Test(uring_env, turn_from_waker_is_ebusy)
{
	struct nested_ctx n = {0};
	struct urp_waker w = {.wake = nested_turn_wake, .arg = &n};
	struct urp_event ev;
	struct urp_io *io;
	int sv[2];

	drv = driver_new(NULL);
	turn(drv, 0);
	n.drv = drv;
	unix_pair(sv);
	io = reg_or_fail(drv, sv[0], URP_READABLE);
	cr_assert_eq(urp_io_poll_ready(io, URP_DIR_READ, &w, &ev), -EAGAIN);
	write_all(sv[1], "x", 1);
	for (int i = 0; i < TURN_TRIES && !n.calls; i++)
		turn(drv, TURN_WAIT_MS);
	cr_assert_eq(n.calls, 1);
	cr_assert_eq(n.ret, -EBUSY, "turn inside a turn: %d", n.ret);
	/* The outer turn was not disturbed. */
	assert_ready(io, URP_READABLE, URP_ERROR);
	turn(drv, 0);
	cr_assert_eq(urp_deregister_close(io), 0);
	cr_assert_eq(turn_until_live(drv, 0), 0);
	close(sv[1]);
}
