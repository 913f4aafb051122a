/* The audit log: every security-relevant action, appended through the store and echoed
 * as a log line. */
#ifndef POSTERN_AUDIT_H
#define POSTERN_AUDIT_H

#include <stdint.h>

#include "store.h"

/* Appends one event. detail is a printf format (may be NULL). A store failure is logged,
 * not returned: the action itself has already been decided. */
void audit_record(struct store *s, int64_t account_id, const char *actor, const char *action,
		  const char *target, const char *ip, const char *detail_fmt, ...)
	__attribute__((format(printf, 7, 8)));

#endif
