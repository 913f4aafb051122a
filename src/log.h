/* One line per event on stderr: timestamp, level, message, as text or as one JSON object.
 * Never pass secrets here. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>
#include <sys/time.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_LEVEL_COUNT };
enum log_format { LOG_TEXT, LOG_JSON, LOG_FORMAT_COUNT };
/* Their names in [log] level and [log] format, indexed by the enums. */
extern const char *const log_level_names[LOG_LEVEL_COUNT];
extern const char *const log_format_names[LOG_FORMAT_COUNT];

/* Lines below level are not written ([log] level, re-read on SIGHUP). */
void log_set_level(enum log_level level);
/* Text (the default, and the CLI's) or JSON ([log] format, re-read on SIGHUP). */
void log_set_format(enum log_format f);
/* Below warnings nothing is written: the CLI tools keep their output for the user. */
void log_quiet(void);
/* The daemon's mode: lines are buffered and written every 50 ms, errors at once, until
 * log_unbuffered writes what is left. -1 with err (lines stay unbuffered) when the
 * flusher thread cannot start. */
int log_buffered(char *err, size_t errlen);
void log_unbuffered(void);
/* Copies in to out (n bytes, always terminated) with control characters, bytes that are
 * not UTF-8 and backslashes written as \xNN or \\; returns the length written. Every log
 * line goes through it. */
size_t log_escape(char *out, size_t n, const char *in);
/* A message is cut to LOG_LINE_MAX - 1 bytes when formatted, then to LOG_SAFE_MAX - 1 once
 * escaped (between escapes). */
#define LOG_LINE_MAX 2048
#define LOG_SAFE_MAX 4096
/* Writes the whole line for message (formatted, not yet escaped) logged at tv, newline
 * included, to out (n bytes, terminated): "<time> <level> <message>" in text, and
 * {"time":..., "level":..., "message":...} in JSON, time in ISO 8601 UTC with
 * milliseconds. Returns its length; 0 (nothing) when a JSON line does not fit. */
size_t log_render(char *out, size_t n, enum log_format f, const struct timeval *tv,
		  enum log_level level, const char *message);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
