/* SPDX-License-Identifier: MIT */
/* urpoll-proxy: timestamped lines (see proxy.h). */
#include <stdarg.h>
#include <string.h>

#include "proxy.h"

const char *log_time(char buf[LOG_TIME_SIZE])
{
	struct timespec ts;
	struct tm tm;

	size_t len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(buf, LOG_TIME_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + len, LOG_TIME_SIZE - len, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000);
	return buf;
}

void log_line(FILE *f, const char *fmt, ...)
{
	char line[1024], when[LOG_TIME_SIZE];
	va_list ap;
	int len;

	len = snprintf(line, sizeof(line), PROG ": %s ", log_time(when));
	va_start(ap, fmt);
	vsnprintf(line + len, sizeof(line) - (size_t)len - 1, fmt, ap);
	va_end(ap);
	/* One call, so that the lines of two loops never interleave (stdio locks the stream for
	 * the call; stderr is unbuffered, so it is one write). */
	len = (int)strlen(line);
	line[len++] = '\n';
	fwrite(line, 1, (size_t)len, f);
	if (f == stdout)
		fflush(f);
}

const char *log_errno(int err, char *buf, size_t size)
{
	const char *name = err > 0 ? strerrorname_np(err) : NULL;

	if (name)
		return name;
	snprintf(buf, size, "E%d", err);
	return buf;
}
