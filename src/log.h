/* One line per event on stderr: timestamp, level, message. Never pass secrets here. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

/* Below warnings nothing is written: the CLI tools keep their output for the user. */
void log_quiet(void);
/* The daemon's mode: lines are buffered and written every 50 ms, errors at once, until
 * log_unbuffered writes what is left. */
void log_buffered(void);
void log_unbuffered(void);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
