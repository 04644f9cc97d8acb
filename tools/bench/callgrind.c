/* SPDX-License-Identifier: MIT */
/*
 * urpoll-bench --callgrind: the parent starts valgrind on itself and waits; the process under
 * valgrind counts each timed region's user instructions from callgrind's dumps.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Callgrind's dumps of the last timed region: sum their "summary:" (or "totals:") Ir and
 * remove them. The dump at process exit is left for the parent to remove. */
double callgrind_collect(void)
{
	DIR *d = opendir(bench_opt.cg_dir);
	struct dirent *de;
	double total = 0;

	if (!d)
		return NAN;
	while ((de = readdir(d))) {
		char path[4096], line[512];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", bench_opt.cg_dir, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long long ir;

			if (sscanf(line, "summary: %llu", &ir) == 1 ||
			    sscanf(line, "totals: %llu", &ir) == 1) {
				total += (double)ir;
				break;
			}
		}
		fclose(f);
		unlink(path);
	}
	closedir(d);
	return total;
}

int callgrind_parent(char **argv)
{
	char dir[] = "/tmp/urpoll-bench-cg.XXXXXX", outfile[64], cmd[96];
	int status = 0, nargs = 0;
	char **vargv;
	pid_t pid;

	if (!mkdtemp(dir)) {
		bench_fail(-errno, "mkdtemp");
		return 1;
	}
	snprintf(outfile, sizeof(outfile), "--callgrind-out-file=%s/callgrind.out", dir);
	while (argv[nargs])
		nargs++;
	vargv = calloc((size_t)nargs + 6, sizeof(*vargv));
	if (!vargv)
		return 1;
	vargv[0] = "valgrind";
	vargv[1] = "--tool=callgrind";
	/* Collected from the start but zeroed at each timed region's start and dumped at its
	 * end (run_clock): toggling instead would miss threads (callgrind's collect state is
	 * per thread). */
	vargv[2] = "--collect-atstart=yes";
	vargv[3] = outfile;
	vargv[4] = "--quiet";
	memcpy(&vargv[5], argv, (size_t)nargs * sizeof(*argv));
	setenv(CALLGRIND_DIR_ENV, dir, 1);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execvp("valgrind", vargv);
		fprintf(stderr, "%s: valgrind: %s (apt-get install valgrind)\n", bench_prog,
			strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = 1 << 8;
	free(vargv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s: could not remove %s\n", bench_prog, dir);
	/* Our own statuses pass through; valgrind's (127: not installed) or a signal are a
	 * runtime failure. */
	if (WIFEXITED(status) && WEXITSTATUS(status) <= 2)
		return WEXITSTATUS(status);
	return 1;
}
