/* One line per event on stderr: timestamp, level, message. Never pass secrets here. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>

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
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
