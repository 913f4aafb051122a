/* Audit events: who did what to which thing, from where. Written to the store for
 * GET /api/audit and to the log for operators. */
#include "audit.h"

#include <stdio.h>

#include "log.h"
#include "util.h"

const struct actor audit_cli = {.name = "cli"};

struct actor audit_user(const struct store_user *u, const char *ip)
{
	return (struct actor){
		.name = u->email, .role = role_name(u->role), .ip = ip, .user_id = u->id};
}

struct actor audit_key(const struct store_apikey *k, const char *role, const char *ip,
		       char name[AUDIT_KEY_NAME_MAX])
{
	snprintf(name, AUDIT_KEY_NAME_MAX, "key:%s (%s)", k->shown, k->name);
	return (struct actor){.name = name, .role = role, .ip = ip, .key_id = k->id};
}

static void append(struct store *s, struct store_audit *ev)
{
	log_info("audit account=%lld actor=%s action=%s target=%s ip=%s detail=%s",
		 (long long)ev->account_id, ev->actor, ev->action, ev->target, ev->ip, ev->detail);
	if (store_audit_append(s, ev) != STORE_OK)
		log_error("audit: could not store event %s for account %lld", ev->action,
			  (long long)ev->account_id);
}

static void fill(struct store_audit *ev, int64_t account_id, const char *actor, const char *action,
		 const char *target, const char *ip)
{
	*ev = (struct store_audit){.account_id = account_id, .at = util_now()};
	util_copy(ev->actor, sizeof(ev->actor), actor ? actor : "system");
	util_copy(ev->action, sizeof(ev->action), action);
	util_copy(ev->target, sizeof(ev->target), target ? target : "");
	util_copy(ev->ip, sizeof(ev->ip), ip ? ip : "");
}

void audit_vwrite(struct store *s, const struct actor *who, int64_t account_id, const char *action,
		  const char *target, const char *detail_fmt, va_list ap)
{
	struct store_audit ev;
	char detail[sizeof(ev.detail)] = "";

	fill(&ev, account_id, who->name, action, target, who->ip);
	if (detail_fmt)
		vsnprintf(detail, sizeof(detail), detail_fmt, ap);
	if (who->role)
		snprintf(ev.detail, sizeof(ev.detail), "role=%s%s%s", who->role, *detail ? " " : "",
			 detail);
	else
		util_copy(ev.detail, sizeof(ev.detail), detail);
	append(s, &ev);
}

void audit_write(struct store *s, const struct actor *who, int64_t account_id, const char *action,
		 const char *target, const char *detail_fmt, ...)
{
	va_list ap;
	va_start(ap, detail_fmt);
	audit_vwrite(s, who, account_id, action, target, detail_fmt, ap);
	va_end(ap);
}

void audit_record(struct store *s, int64_t account_id, const char *actor, const char *action,
		  const char *target, const char *ip, const char *detail_fmt, ...)
{
	struct store_audit ev;
	fill(&ev, account_id, actor, action, target, ip);
	if (detail_fmt) {
		va_list ap;
		va_start(ap, detail_fmt);
		vsnprintf(ev.detail, sizeof(ev.detail), detail_fmt, ap);
		va_end(ap);
	}
	append(s, &ev);
}
