/* Audit events: who did what to which thing, from where. Written to the store for
 * GET /api/audit and to the log for operators. */
#include "audit.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "util.h"

void audit_record(struct store *s, int64_t account_id, const char *actor, const char *action,
		  const char *target, const char *ip, const char *detail_fmt, ...)
{
	struct store_audit ev = {.account_id = account_id, .at = util_now()};

	util_copy(ev.actor, sizeof(ev.actor), actor ? actor : "system");
	util_copy(ev.action, sizeof(ev.action), action);
	util_copy(ev.target, sizeof(ev.target), target ? target : "");
	util_copy(ev.ip, sizeof(ev.ip), ip ? ip : "");
	if (detail_fmt) {
		va_list ap;
		va_start(ap, detail_fmt);
		vsnprintf(ev.detail, sizeof(ev.detail), detail_fmt, ap);
		va_end(ap);
	}
	log_info("audit account=%lld actor=%s action=%s target=%s ip=%s detail=%s",
		 (long long)account_id, ev.actor, ev.action, ev.target, ev.ip, ev.detail);
	if (store_audit_append(s, &ev) != STORE_OK)
		log_error("audit: could not store event %s for account %lld", action,
			  (long long)account_id);
}
