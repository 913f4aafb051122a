/* The records of a sending domain and the rules of its status. Lookups happen elsewhere
 * (dns.c); here an answer is only compared with what should be published. */
#include "domain.h"

#include <ctype.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkimkey.h"
#include "util.h"

#define OWNERSHIP_PREFIX "postern-verification="

static const psl_ctx_t *psl;
static psl_ctx_t *psl_loaded;
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;

static void psl_init(void)
{
	/* The system's list (package publicsuffix) is newer than the one built in. */
	psl_loaded = psl_latest(NULL);
	psl = psl_loaded ? psl_loaded : psl_builtin();
}

bool domain_is_public_suffix(const char *name)
{
	pthread_once(&psl_once, psl_init);
	return psl && psl_is_public_suffix(psl, name);
}

void domain_ownership_name(const char *domain, char *out, size_t n)
{
	snprintf(out, n, "_postern.%s", domain);
}

void domain_ownership_value(const char *token, char *out, size_t n)
{
	snprintf(out, n, OWNERSHIP_PREFIX "%s", token);
}

void domain_dkim_name(const char *selector, const char *domain, char *out, size_t n)
{
	snprintf(out, n, "%s._domainkey.%s", selector, domain);
}

/* Copies s without surrounding white space. */
static void trimmed(const char *s, char *out, size_t n)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	snprintf(out, n, "%.*s", (int)len, s);
}

enum domain_record_state domain_judge_ownership(const struct dns_txt *a, const char *expected)
{
	char value[DNS_TXT_LEN];
	bool ours = false;
	if (a->status == DNS_ERROR)
		return DOMAIN_REC_UNKNOWN;
	for (int i = 0; a->status == DNS_FOUND && i < a->count; i++) {
		trimmed(a->records[i], value, sizeof(value));
		if (strcmp(value, expected) == 0)
			return DOMAIN_REC_OK;
		ours = ours || strncmp(value, OWNERSHIP_PREFIX, strlen(OWNERSHIP_PREFIX)) == 0;
	}
	return ours ? DOMAIN_REC_MISMATCH : DOMAIN_REC_MISSING;
}

/* The p= tag of a DKIM record with all white space removed (keys are often wrapped). */
static bool dkim_key_of(const char *record, char *out, size_t n)
{
	for (const char *p = record; (p = strstr(p, "p=")); p += 2) {
		if (p != record && p[-1] != ';' && !isspace((unsigned char)p[-1]))
			continue; /* part of another tag's value */
		size_t len = 0;
		for (p += 2; *p && *p != ';' && len + 1 < n; p++)
			if (!isspace((unsigned char)*p))
				out[len++] = *p;
		out[len] = '\0';
		return true;
	}
	return false;
}

enum domain_record_state domain_judge_dkim(const struct dns_txt *a, const char *public_key)
{
	char key[DNS_TXT_LEN];
	bool dkim = false;
	if (a->status == DNS_ERROR)
		return DOMAIN_REC_UNKNOWN;
	for (int i = 0; a->status == DNS_FOUND && i < a->count; i++) {
		if (!dkim_key_of(a->records[i], key, sizeof(key)))
			continue;
		if (strcmp(key, public_key) == 0)
			return DOMAIN_REC_OK;
		dkim = true;
	}
	return dkim ? DOMAIN_REC_MISMATCH : DOMAIN_REC_MISSING;
}

/* True when an SPF record (its terms separated by spaces, compared without case) has the
 * term include:<include>, optionally with the "+" qualifier that means the same. */
static bool spf_includes(const char *record, const char *include)
{
	char needle[300];
	snprintf(needle, sizeof(needle), "include:%s", include);
	size_t n = strlen(needle);
	for (const char *t = record; *t;) {
		t += strspn(t, " \t");
		size_t len = strcspn(t, " \t");
		const char *term = *t == '+' ? t + 1 : t;
		size_t term_len = *t == '+' ? len - 1 : len;
		if (term_len == n && strncasecmp(term, needle, n) == 0)
			return true;
		t += len;
	}
	return false;
}

enum domain_record_state domain_judge_spf(const struct dns_txt *a, const char *include)
{
	bool spf = false;
	if (a->status == DNS_ERROR)
		return DOMAIN_REC_UNKNOWN;
	for (int i = 0; a->status == DNS_FOUND && i < a->count; i++) {
		const char *r = a->records[i];
		if (strncasecmp(r, "v=spf1", 6) != 0 || (r[6] && !isspace((unsigned char)r[6])))
			continue;
		spf = true;
		if (spf_includes(r + 6, include))
			return DOMAIN_REC_OK;
	}
	return spf ? DOMAIN_REC_MISMATCH : DOMAIN_REC_MISSING;
}

const char *domain_record_state_name(enum domain_record_state s)
{
	static const char *const names[] = {"unknown", "ok", "missing", "mismatch"};
	return (unsigned)s < ARRAY_LEN(names) ? names[s] : "unknown";
}

void domain_next(const char *status, int64_t missing_since, bool all_ok, bool any_error,
		 int64_t now, int64_t grace, struct domain_verdict *out)
{
	out->status = status;
	out->missing_since = missing_since;
	/* A timeout or SERVFAIL says nothing about the records. */
	if (any_error)
		return;
	if (all_ok) {
		out->status = "verified";
		out->missing_since = 0;
		return;
	}
	if (strcmp(status, "verified") != 0)
		return;
	if (!missing_since)
		out->missing_since = now; /* first miss: remember it, fail only if it lasts */
	else if (now - missing_since >= grace)
		out->status = "failed";
}

const char *domain_shown_status(const char *status, const char *approval)
{
	if (strcmp(approval, "rejected") == 0)
		return "rejected";
	if (strcmp(approval, "required") == 0 && strcmp(status, "verified") == 0)
		return "awaiting_approval";
	return status;
}

/* The status the last check gave to the record name=value, "unknown" when none did. */
static const char *last_status(const cJSON *last, const char *name, const char *value)
{
	const cJSON *r;
	cJSON_ArrayForEach(r, last)
	{
		const cJSON *n = cJSON_GetObjectItem(r, "name"),
			    *v = cJSON_GetObjectItem(r, "value");
		const cJSON *st = cJSON_GetObjectItem(r, "status");
		if (cJSON_IsString(n) && cJSON_IsString(v) && cJSON_IsString(st) &&
		    strcmp(n->valuestring, name) == 0 && strcmp(v->valuestring, value) == 0)
			return st->valuestring;
	}
	return "unknown";
}

static void add_record(cJSON *list, const cJSON *last, const char *name, const char *value,
		       const char *purpose, bool required)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "type", "TXT");
	cJSON_AddStringToObject(r, "name", name);
	cJSON_AddStringToObject(r, "value", value);
	cJSON_AddStringToObject(r, "purpose", purpose);
	cJSON_AddBoolToObject(r, "required", required);
	cJSON_AddStringToObject(r, "status", last_status(last, name, value));
	cJSON_AddItemToArray(list, r);
}

cJSON *domain_records(const struct store_domain *d, const char *spf_include)
{
	char name[ADDR_DOMAIN_MAX + 80], value[1024];
	cJSON *last = d->records[0] ? cJSON_Parse(d->records) : NULL;
	cJSON *list = cJSON_CreateArray();

	domain_ownership_name(d->name, name, sizeof(name));
	domain_ownership_value(d->token, value, sizeof(value));
	add_record(list, last, name, value, "ownership", true);
	for (int i = 0; i < d->nkeys; i++) {
		const struct store_dkim_key *k = &d->keys[i];
		char *record = dkimkey_record(k->public_key);
		domain_dkim_name(k->selector, d->name, name, sizeof(name));
		/* The key in use must be published; a rotated-in key is needed before it signs;
		 * a retired one is best kept a few days for mail still on its way. */
		bool active = strcmp(k->state, "active") == 0;
		add_record(list, last, name, record,
			   active			   ? "dkim"
			   : strcmp(k->state, "next") == 0 ? "dkim_next"
							   : "dkim_retired",
			   active);
		free(record);
	}
	if (spf_include[0]) {
		snprintf(value, sizeof(value), "v=spf1 include:%s ~all", spf_include);
		add_record(list, last, d->name, value, "spf", false);
	}
	cJSON_Delete(last);
	return list;
}
