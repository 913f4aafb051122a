/* Structured-enough logging to stderr: one line per request or state change, written with
 * one stdio call under the stream lock so lines from different threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static bool quiet;

void log_quiet(void)
{
	quiet = true;
}

static void log_line(const char *level, const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	char stamp[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ %s ", stamp, (long)(tv.tv_usec / 1000), level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

#define LOG_FN(name, level, skip)                                                                  \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		if (skip)                                                                          \
			return;                                                                    \
		va_start(ap, fmt);                                                                 \
		log_line(level, fmt, ap);                                                          \
		va_end(ap);                                                                        \
	}

LOG_FN(log_info, "info", quiet)
LOG_FN(log_warn, "warn", false)
LOG_FN(log_error, "error", false)
