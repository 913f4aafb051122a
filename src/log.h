/* One line per event on stderr: timestamp, level, message. Never pass secrets here. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

/* Below warnings nothing is written: the CLI tools keep their output for the user. */
void log_quiet(void);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
