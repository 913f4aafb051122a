/* Structured-enough logging to stderr: one line per request or state change, written with
 * one stdio call under the stream lock so lines from different threads never interleave.
 * Every line is escaped after formatting, so no field (a request path, a key name) can
 * start a forged line or send escape sequences to an operator's terminal.
 * The daemon buffers its lines and writes them every 50 ms (errors at once), so a busy
 * gateway spends no system call per line; the CLI writes each line as it comes. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "worker.h"

#define FLUSH_MS 50

const char *const log_level_names[LOG_LEVEL_COUNT] = {"debug", "info", "warn", "error"};
const char *const log_format_names[LOG_FORMAT_COUNT] = {"text", "json"};

/* Read by every thread, set by the main thread on start and SIGHUP. */
static _Atomic int min_level = LOG_INFO;
static struct worker *flusher; /* set while lines are buffered */

void log_set_level(enum log_level level)
{
	min_level = level;
}

void log_quiet(void)
{
	min_level = LOG_WARN;
}

static void flush(void)
{
	flockfile(stderr);
	fflush(stderr);
	funlockfile(stderr);
}

static void flush_loop(void *arg, struct worker *self)
{
	(void)arg;
	while (worker_wait(self, FLUSH_MS))
		flush();
}

int log_buffered(char *err, size_t errlen)
{
	static char buf[1 << 16];
	if (flusher)
		return 0;
	setvbuf(stderr, buf, _IOFBF, sizeof(buf));
	flusher = worker_start("log flusher", flush_loop, NULL, err, errlen);
	if (!flusher) {
		setvbuf(stderr, NULL, _IONBF, 0);
		return -1;
	}
	return 0;
}

void log_unbuffered(void)
{
	if (!flusher)
		return;
	worker_stop(flusher);
	flusher = NULL;
	flush();
	setvbuf(stderr, NULL, _IONBF, 0);
}

/* A character a terminal or a log reader would take as text: printable ASCII, or a valid
 * UTF-8 sequence that is neither a C1 control nor a line or paragraph separator. Returns
 * its length in bytes, or 0 when the byte at s must be escaped. */
static size_t printable_len(const char *s, size_t left)
{
	unsigned char b = (unsigned char)*s;
	if (b < 0x80)
		return b >= 0x20 && b < 0x7f && b != '\\' ? 1 : 0;
	gunichar c = g_utf8_get_char_validated(s, (gssize)left);
	if (c == (gunichar)-1 || c == (gunichar)-2 || (c >= 0x80 && c < 0xa0) || c == 0x2028 ||
	    c == 0x2029)
		return 0;
	return (size_t)(g_utf8_next_char(s) - s);
}

size_t log_escape(char *out, size_t n, const char *in)
{
	size_t o = 0, left = strlen(in);
	if (!n)
		return 0;
	while (left) {
		char esc[5];
		const char *piece = esc;
		size_t k = printable_len(in, left), used = 1;
		if (k)
			piece = in, used = k;
		else if (*in == '\\') /* doubled, so that an escape can always be read back */
			k = (size_t)snprintf(esc, sizeof(esc), "\\\\");
		else
			k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)*in);
		/* A line longer than the buffer is cut, never in the middle of an escape. */
		if (o + k >= n)
			break;
		memcpy(out + o, piece, k);
		o += k;
		in += used;
		left -= used;
	}
	out[o] = '\0';
	return o;
}

static void log_line(enum log_level level, bool urgent, const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	char stamp[32], line[2048], safe[4096];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* A line longer than the buffer is cut, not split across writes. */
	vsnprintf(line, sizeof(line), fmt, ap);
	log_escape(safe, sizeof(safe), line);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, (long)(tv.tv_usec / 1000),
		log_level_names[level], safe);
	if (urgent)
		fflush(stderr);
	funlockfile(stderr);
}

#define LOG_FN(name, level, urgent)                                                                \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		if (level < min_level)                                                             \
			return;                                                                    \
		va_start(ap, fmt);                                                                 \
		log_line(level, urgent, fmt, ap);                                                  \
		va_end(ap);                                                                        \
	}

LOG_FN(log_debug, LOG_DEBUG, false)
LOG_FN(log_info, LOG_INFO, false)
LOG_FN(log_warn, LOG_WARN, false)
LOG_FN(log_error, LOG_ERROR, true)
