/* Structured-enough logging to stderr: one line per request or state change, written with
 * one stdio call under the stream lock so lines from different threads never interleave.
 * The daemon buffers its lines and writes them every 50 ms (errors at once), so a busy
 * gateway spends no system call per line; the CLI writes each line as it comes. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#define FLUSH_MS 50

static bool quiet;
static bool buffered;
static atomic_bool stopping;
static pthread_t flusher;

void log_quiet(void)
{
	quiet = true;
}

static void flush(void)
{
	flockfile(stderr);
	fflush(stderr);
	funlockfile(stderr);
}

static void *flush_loop(void *arg)
{
	(void)arg;
	struct timespec pause = {0, FLUSH_MS * 1000000L};
	while (!atomic_load(&stopping)) {
		nanosleep(&pause, NULL);
		flush();
	}
	return NULL;
}

void log_buffered(void)
{
	static char buf[1 << 16];
	if (buffered)
		return;
	setvbuf(stderr, buf, _IOFBF, sizeof(buf));
	buffered = pthread_create(&flusher, NULL, flush_loop, NULL) == 0;
	if (!buffered)
		setvbuf(stderr, NULL, _IONBF, 0);
}

void log_unbuffered(void)
{
	if (!buffered)
		return;
	atomic_store(&stopping, true);
	pthread_join(flusher, NULL);
	flush();
	setvbuf(stderr, NULL, _IONBF, 0);
	buffered = false;
	atomic_store(&stopping, false);
}

static void log_line(const char *level, bool urgent, const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	char stamp[32], line[2048];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* A line longer than the buffer is cut, not split across writes. */
	vsnprintf(line, sizeof(line), fmt, ap);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, (long)(tv.tv_usec / 1000), level, line);
	if (urgent)
		fflush(stderr);
	funlockfile(stderr);
}

#define LOG_FN(name, level, skip, urgent)                                                          \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		if (skip)                                                                          \
			return;                                                                    \
		va_start(ap, fmt);                                                                 \
		log_line(level, urgent, fmt, ap);                                                  \
		va_end(ap);                                                                        \
	}

LOG_FN(log_info, "info", quiet, false)
LOG_FN(log_warn, "warn", false, false)
LOG_FN(log_error, "error", false, true)
