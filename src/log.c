/* Structured-enough logging to stderr: one line per request or state change, written with
 * one stdio call under the stream lock so lines from different threads never interleave.
 * Every line is escaped after formatting, so no field (a request path, a key name) can
 * start a forged line or send escape sequences to an operator's terminal. The same line can
 * be written as one JSON object ([log] format = json) for a log collector.
 * The daemon buffers its lines and writes them every 50 ms (errors at once), so a busy
 * gateway spends no system call per line; the CLI writes each line as it comes. */
#include "log.h"

#include <cjson/cJSON.h>
#include <glib.h>
#include <stdarg.h>
#include <stdbool.h>
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
static _Atomic int format = LOG_TEXT;
static struct worker *flusher; /* set while lines are buffered */

void log_set_level(enum log_level level)
{
	min_level = level;
}

void log_set_format(enum log_format f)
{
	format = f;
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

/* The message goes through log_escape in both formats: a field reads the same in either,
 * and a JSON consumer that prints it (jq -r .message) gets no control bytes either. The
 * escaped text is printable and valid UTF-8, so the encoder cannot be handed bytes that
 * would make the object invalid JSON. */
static size_t render_json(char *out, size_t n, const char *stamp, const char *level,
			  const char *safe)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "time", stamp);
	cJSON_AddStringToObject(o, "level", level);
	cJSON_AddStringToObject(o, "message", safe);
	bool fits = n > 1 && cJSON_PrintPreallocated(o, out, (int)n - 1, false);
	cJSON_Delete(o);
	if (!fits)
		return 0;
	size_t len = strlen(out);
	out[len++] = '\n';
	out[len] = '\0';
	return len;
}

size_t log_render(char *out, size_t n, enum log_format f, const struct timeval *tv,
		  enum log_level level, const char *message)
{
	struct tm tm;
	char date[24], stamp[48], safe[LOG_SAFE_MAX];
	int len;

	gmtime_r(&tv->tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp, sizeof(stamp), "%s.%03dZ", date, (int)(tv->tv_usec / 1000 % 1000));
	log_escape(safe, sizeof(safe), message);
	if (f == LOG_JSON)
		return render_json(out, n, stamp, log_level_names[level], safe);
	len = snprintf(out, n, "%s %s %s\n", stamp, log_level_names[level], safe);
	return len < 0 ? 0 : (size_t)len < n ? (size_t)len : n - 1;
}

static void log_line(enum log_level level, bool urgent, const char *fmt, va_list ap)
{
	struct timeval tv;
	/* Twice the escaped text: the JSON encoder doubles at most each byte (\\ and \"). */
	char line[LOG_LINE_MAX], out[2 * LOG_SAFE_MAX + 128];

	gettimeofday(&tv, NULL);
	/* A line longer than the buffer is cut, not split across writes. */
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t len = log_render(out, sizeof(out), (enum log_format)format, &tv, level, line);
	flockfile(stderr);
	fwrite(out, 1, len, stderr);
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
