/* SPDX-License-Identifier: MIT */
/*
 * A small stand-in for Criterion's <criterion/criterion.h>, used only for ThreadSanitizer builds
 * of the tests (the Makefile puts tests/lib/shim first on the include path when SANITIZE=thread).
 * Criterion's runner cannot start under TSan: its inheritable arena collides with TSan's memory
 * layout and it aborts with "Could not initialize inheritable arena" (Snaipe/Criterion#274,
 * still open; seen here with Criterion 2.4.1, gcc 12 and clang 14).
 *
 * Same test sources, same macros (the subset our tests use): each test runs in a forked child
 * with its .init/.fini and .timeout, and the runner prints Criterion's synthesis line, so
 * tests/run-suite.sh reads both alike. A TSan report fails the test (halt_on_error exits 66).
 */
#ifndef URP_CRITERION_SHIM_H
#define URP_CRITERION_SHIM_H

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct criterion_test_extra_data {
	double timeout;
	void (*init)(void);
	void (*fini)(void);
	const char *description;
	bool disabled;
	int exit_code;
	int signal;
};

struct urp_shim_test {
	const char *suite;
	const char *name;
	void (*fn)(void);
	struct criterion_test_extra_data extra;
	struct urp_shim_test *next;
};

struct urp_shim_suite {
	const char *name;
	struct criterion_test_extra_data extra;
	struct urp_shim_suite *next;
};

static struct urp_shim_test *urp_shim_head;
static struct urp_shim_suite *urp_shim_suites;
static bool urp_shim_expect_failed;

#define URP_SHIM_SKIP_CODE 77

#define Test(suite, name, ...)                                                                     \
	static void suite##_##name##_impl(void);                                                   \
	static struct urp_shim_test suite##_##name##_shim = { #suite, #name,                       \
							      suite##_##name##_impl,             \
							      { __VA_ARGS__ }, NULL };           \
	__attribute__((constructor)) static void suite##_##name##_register(void)                   \
	{                                                                                          \
		suite##_##name##_shim.next = urp_shim_head;                                        \
		urp_shim_head = &suite##_##name##_shim;                                            \
	}                                                                                          \
	static void suite##_##name##_impl(void)

/* Suite-wide .init/.fini/.timeout; a test's own settings win. */
#define TestSuite(suite, ...)                                                                      \
	static struct urp_shim_suite suite##_shim_suite = { #suite, { __VA_ARGS__ }, NULL };       \
	__attribute__((constructor)) static void suite##_register_suite(void)                      \
	{                                                                                          \
		suite##_shim_suite.next = urp_shim_suites;                                         \
		urp_shim_suites = &suite##_shim_suite;                                             \
	}

/* An assertion without a message passes "" as its format. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

__attribute__((format(printf, 5, 6))) static void
urp_shim_failed(const char *file, int line, const char *expr, bool fatal, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[----] %s:%d: Assertion failed: %s", file, line, expr);
	if (fmt[0]) {
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	if (fatal)
		_exit(1);
	urp_shim_expect_failed = true;
}

#define urp_shim_check(fatal, cond, expr, ...)                                                     \
	do {                                                                                       \
		if (!(cond))                                                                       \
			urp_shim_failed(__FILE__, __LINE__, expr, fatal, "" __VA_ARGS__);          \
	} while (0)

#define cr_assert(c, ...)	   urp_shim_check(true, (c), #c, __VA_ARGS__)
#define cr_expect(c, ...)	   urp_shim_check(false, (c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...)	   urp_shim_check(true, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_expect_not(c, ...)	   urp_shim_check(false, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)	   urp_shim_check(true, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)	   urp_shim_check(false, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)   urp_shim_check(true, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...)   urp_shim_check(false, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)	   urp_shim_check(true, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)   urp_shim_check(true, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)	   urp_shim_check(true, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)   urp_shim_check(true, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)	   urp_shim_check(false, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...)   urp_shim_check(false, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)	   urp_shim_check(false, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...)   urp_shim_check(false, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...)	   urp_shim_check(true, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) urp_shim_check(true, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                                \
	urp_shim_check(true, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...)                                                             \
	urp_shim_check(true, memcmp((a), (b), (n)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_fail(...) urp_shim_check(true, false, "cr_assert_fail", __VA_ARGS__)
#define cr_expect_fail(...) urp_shim_check(false, false, "cr_expect_fail", __VA_ARGS__)

#define cr_log_info(...)  (fprintf(stderr, "[----] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn(...)  cr_log_info(__VA_ARGS__)
#define cr_log_error(...) cr_log_info(__VA_ARGS__)

#define cr_skip_test(...)                                                                          \
	do {                                                                                       \
		fprintf(stderr, "[SKIP] " __VA_ARGS__);                                            \
		fputc('\n', stderr);                                                               \
		_exit(URP_SHIM_SKIP_CODE);                                                         \
	} while (0)

static void urp_shim_inherit(struct urp_shim_test *t)
{
	struct urp_shim_suite *s;

	for (s = urp_shim_suites; s; s = s->next) {
		if (strcmp(s->name, t->suite) != 0)
			continue;
		if (!t->extra.timeout)
			t->extra.timeout = s->extra.timeout;
		if (!t->extra.init)
			t->extra.init = s->extra.init;
		if (!t->extra.fini)
			t->extra.fini = s->extra.fini;
		t->extra.disabled |= s->extra.disabled;
	}
}

static void urp_shim_run_child(struct urp_shim_test *t)
{
	if (t->extra.timeout > 0)
		alarm((unsigned)ceil(t->extra.timeout));
	if (t->extra.init)
		t->extra.init();
	t->fn();
	if (t->extra.fini)
		t->extra.fini();
	fflush(NULL);
	_exit(urp_shim_expect_failed ? 1 : 0);
}

int main(int argc, char **argv)
{
	unsigned tested = 0, passing = 0, failing = 0, crashing = 0, skipped = 0;
	struct urp_shim_test *list = NULL, *t, *next;
	int status;
	pid_t pid;

	(void)argc;
	(void)argv;
	/* Constructors ran in file order and pushed on a stack: reverse to file order. */
	for (t = urp_shim_head; t; t = next) {
		next = t->next;
		t->next = list;
		list = t;
	}
	for (t = list; t; t = t->next) {
		urp_shim_inherit(t);
		if (t->extra.disabled)
			continue;
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			urp_shim_run_child(t);
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == URP_SHIM_SKIP_CODE) {
			skipped++;
			continue;
		}
		tested++;
		if (WIFEXITED(status) && WEXITSTATUS(status) == t->extra.exit_code) {
			passing++;
			printf("[PASS] %s::%s\n", t->suite, t->name);
		} else if (WIFSIGNALED(status)) {
			crashing++;
			printf("[FAIL] %s::%s: CRASH (signal %d%s)\n", t->suite, t->name,
			       WTERMSIG(status), WTERMSIG(status) == SIGALRM ? ", timed out" : "");
		} else {
			failing++;
			printf("[FAIL] %s::%s: exit %d\n", t->suite, t->name, WEXITSTATUS(status));
		}
	}
	printf("[====] Synthesis: Tested: %u | Passing: %u | Failing: %u | Crashing: %u | "
	       "Skipped: %u\n",
	       tested, passing, failing, crashing, skipped);
	return failing || crashing ? 1 : 0;
}

#endif /* URP_CRITERION_SHIM_H */
