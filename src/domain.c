/* The records of a sending domain and the rules of its status. Lookups happen elsewhere
 * (dns.c); here an answer is only compared with what should be published. */
#include "domain.h"

#include <ctype.h>
#include <glib.h>
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

/* The all mechanism with or without a qualifier; its qualifier in *q. */
static bool term_all(const char *term, size_t len, char *q)
{
	*q = *term && strchr("+-~?", *term) ? *term : '+';
	if (*q != '+' || *term == '+')
		term++, len--;
	return len == 3 && strncasecmp(term, "all", 3) == 0;
}

/* True when one term (len bytes) is include:<include> with any qualifier. */
static bool spf_names_include(const char *term, size_t len, const char *include)
{
	if (len && strchr("+-~?", *term))
		term++, len--;
	return len == strlen(include) + 8 && strncasecmp(term, "include:", 8) == 0 &&
	       strncasecmp(term + 8, include, len - 8) == 0;
}

/* True when an SPF record (its terms separated by spaces, compared without case) has the
 * term include:<include>, unqualified or with the "+" that means the same, before any all
 * (receivers never read past it). */
static bool spf_includes(const char *record, const char *include)
{
	for (const char *t = record; *t;) {
		t += strspn(t, " \t");
		size_t len = strcspn(t, " \t");
		char q;
		if (term_all(t, len, &q))
			return false;
		if (!strchr("-~?", *t) && spf_names_include(t, len, include))
			return true;
		t += len;
	}
	return false;
}

/* True when a TXT record is an SPF record ("v=spf1", alone or followed by a space). */
static bool domain_is_spf(const char *txt)
{
	return strncasecmp(txt, "v=spf1", 6) == 0 && (!txt[6] || isspace((unsigned char)txt[6]));
}

/* Receivers treat two SPF records as a permanent error: the include counts only in the one
 * record a domain publishes. */
enum domain_record_state domain_judge_spf(const struct dns_txt *a, const char *include)
{
	int spf = 0;
	bool ours = false;
	if (a->status == DNS_ERROR)
		return DOMAIN_REC_UNKNOWN;
	for (int i = 0; a->status == DNS_FOUND && i < a->count; i++) {
		const char *r = a->records[i];
		if (!domain_is_spf(r))
			continue;
		spf++;
		ours = ours || spf_includes(r + 6, include);
	}
	if (!spf)
		return DOMAIN_REC_MISSING;
	return spf == 1 && ours ? DOMAIN_REC_OK : DOMAIN_REC_MISMATCH;
}

void domain_spf_seen(const struct dns_txt *a, char *out, size_t n)
{
	cJSON *seen = cJSON_CreateArray();
	snprintf(out, n, "[]");
	for (int i = 0; a->status == DNS_FOUND && i < a->count; i++) {
		if (!domain_is_spf(a->records[i]))
			continue;
		cJSON_AddItemToArray(seen, cJSON_CreateString(a->records[i]));
		/* Far past any sane SPF record: the records that fit are kept. */
		if (!cJSON_PrintPreallocated(seen, out, (int)n - 5, false)) {
			cJSON_DeleteItemFromArray(seen, cJSON_GetArraySize(seen) - 1);
			cJSON_PrintPreallocated(seen, out, (int)n - 5, false);
			break;
		}
	}
	cJSON_Delete(seen);
}

/* ---- Merging Postern's include into the SPF record a domain already publishes ---- */

/* The merged record's terms: the mechanisms and modifiers before the all (or all of them),
 * the all, the modifiers after it, and a redirect that goes last. */
struct spf_merge {
	GPtrArray *head, *tail;
	char all;	      /* the all's qualifier, '\0' for none */
	const char *redirect; /* "redirect=..." */
	bool has_exp;	      /* exp= may appear only once */
};

static bool term_is(const char *term, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len >= n && strncasecmp(term, name, n) == 0;
}

/* A modifier is name=value, its name letters, digits and "-_." (RFC 7208, 4.6.1); a
 * mechanism may hold "=" only after its ":" or "/". */
static bool term_modifier(const char *term)
{
	size_t name = strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_.");
	return name > 0 && term[name] == '=';
}

/* Stricter first: a merge never weakens what the domain asked for. */
static int all_rank(char q)
{
	return q == '-' ? 4 : q == '~' ? 3 : q == '?' ? 2 : q == '+' ? 1 : 0;
}

static bool has_term(GPtrArray *terms, const char *term)
{
	for (guint i = 0; i < terms->len; i++)
		if (strcasecmp(g_ptr_array_index(terms, i), term) == 0)
			return true;
	return false;
}

static void add_term(struct spf_merge *m, GPtrArray *to, char *term)
{
	if (has_term(m->head, term) || has_term(m->tail, term))
		g_free(term);
	else
		g_ptr_array_add(to, term);
}

/* Adds one published record's terms. Mechanisms after its all are never evaluated and are
 * left out; a redirect next to an all is ignored by receivers and left out too. Another
 * record's redirect becomes an include of the same domain, so its senders stay allowed. */
static void merge_record(struct spf_merge *m, const char *record, const char *include)
{
	char q, first_all = '\0';
	const char *t = record + 6;
	GPtrArray *redirects = g_ptr_array_new();
	while (*(t += strspn(t, " \t"))) {
		size_t len = strcspn(t, " \t");
		char *term = g_strndup(t, len);
		bool modifier = term_modifier(term);
		t += len;
		if (term_all(term, len, &q)) {
			first_all = first_all ? first_all : q;
			g_free(term);
		} else if (spf_names_include(term, len, include)) {
			/* Added once, at its place, unqualified: a -include, ~include or ?include
			 * of ours would fail or soften Postern's mail before the include is read.
			 */
			g_free(term);
		} else if (term_is(term, len, "redirect=")) {
			g_ptr_array_add(redirects, term);
		} else if (term_is(term, len, "exp=")) {
			if (m->has_exp)
				g_free(term);
			else
				g_ptr_array_add(m->tail, term);
			m->has_exp = true;
		} else if (first_all && !modifier) {
			g_free(term);
		} else {
			add_term(m, first_all ? m->tail : m->head, term);
		}
	}
	if (all_rank(first_all) > all_rank(m->all))
		m->all = first_all;
	for (guint i = 0; i < redirects->len; i++) {
		char *r = g_ptr_array_index(redirects, i);
		if (first_all)
			g_free(r);
		else if (!m->redirect)
			m->redirect = r;
		else {
			add_term(m, m->head, g_strdup_printf("include:%s", r + 9));
			g_free(r);
		}
	}
	g_ptr_array_free(redirects, TRUE);
}

static void append_terms(GString *out, GPtrArray *terms)
{
	for (guint i = 0; i < terms->len; i++)
		g_string_append_printf(out, " %s", (const char *)g_ptr_array_index(terms, i));
}

char *domain_spf_merge(const char *const *published, int n, const char *include,
		       enum domain_spf_advice *advice)
{
	if (n == 1 && spf_includes(published[0] + 6, include)) {
		*advice = DOMAIN_SPF_AS_IS;
		return xstrdup(published[0]);
	}
	struct spf_merge m = {.head = g_ptr_array_new_with_free_func(g_free),
			      .tail = g_ptr_array_new_with_free_func(g_free)};
	for (int i = 0; i < n; i++)
		merge_record(&m, published[i], include);
	/* With an all somewhere, a redirect would be ignored: its domain is included instead. */
	if (m.redirect && m.all) {
		add_term(&m, m.head, g_strdup_printf("include:%s", m.redirect + 9));
		g_free((char *)m.redirect);
		m.redirect = NULL;
	}
	GString *out = g_string_new("v=spf1");
	append_terms(out, m.head);
	g_string_append_printf(out, " include:%s", include);
	if (m.all)
		g_string_append_printf(out, " %call", m.all);
	else if (!m.redirect)
		g_string_append(out, " ~all");
	append_terms(out, m.tail);
	if (m.redirect)
		g_string_append_printf(out, " %s", m.redirect);
	g_free((char *)m.redirect);
	g_ptr_array_free(m.head, TRUE);
	g_ptr_array_free(m.tail, TRUE);
	*advice = n ? DOMAIN_SPF_MERGED : DOMAIN_SPF_NEW;
	char *value = xstrdup(out->str);
	g_string_free(out, TRUE);
	return value;
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

static cJSON *new_record(const cJSON *last, const char *name, const char *value,
			 const char *purpose, bool required)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "type", "TXT");
	cJSON_AddStringToObject(r, "name", name);
	cJSON_AddStringToObject(r, "value", value);
	cJSON_AddStringToObject(r, "purpose", purpose);
	cJSON_AddBoolToObject(r, "required", required);
	cJSON_AddStringToObject(r, "status", last_status(last, name, value));
	return r;
}

/* What the panel and an API client tell the user about the advised SPF record. */
static void add_spf_note(cJSON *r, enum domain_spf_advice advice, int replaced)
{
	char note[256];
	if (advice != DOMAIN_SPF_MERGED) {
		cJSON_AddNullToObject(r, "note");
		return;
	}
	if (replaced == 1)
		snprintf(note, sizeof(note),
			 "Replaces the SPF record the domain publishes now: change that record "
			 "to this value rather than adding another; a domain with two SPF records "
			 "fails SPF at every receiver.");
	else
		snprintf(note, sizeof(note),
			 "Replaces the %d SPF records the domain publishes now: publish this one "
			 "and remove the others; a domain with two SPF records fails SPF at every "
			 "receiver.",
			 replaced);
	cJSON_AddStringToObject(r, "note", note);
}

cJSON *domain_spf_record(const char *domain, const char *seen, const char *include,
			 const cJSON *last)
{
	const char *published[DNS_TXT_MAX] = {0};
	int n = 0;
	enum domain_spf_advice advice;
	cJSON *list = seen[0] ? cJSON_Parse(seen) : NULL, *item;
	cJSON *replaces = cJSON_CreateArray();
	cJSON_ArrayForEach(item, list)
	{
		if (n < DNS_TXT_MAX && cJSON_IsString(item) && domain_is_spf(item->valuestring))
			published[n++] = item->valuestring;
	}
	char *value = domain_spf_merge(published, n, include, &advice);
	cJSON *r = new_record(last, domain, value, "spf", false);
	for (int i = 0; advice == DOMAIN_SPF_MERGED && i < n; i++)
		cJSON_AddItemToArray(replaces, cJSON_CreateString(published[i]));
	cJSON_AddItemToObject(r, "replaces", replaces);
	add_spf_note(r, advice, n);
	free(value);
	cJSON_Delete(list);
	return r;
}

cJSON *domain_records(const struct store_domain *d, const char *spf_include)
{
	char name[ADDR_DOMAIN_MAX + 80], value[1024];
	cJSON *last = d->records[0] ? cJSON_Parse(d->records) : NULL;
	cJSON *list = cJSON_CreateArray();

	domain_ownership_name(d->name, name, sizeof(name));
	domain_ownership_value(d->token, value, sizeof(value));
	cJSON_AddItemToArray(list, new_record(last, name, value, "ownership", true));
	for (int i = 0; i < d->nkeys; i++) {
		const struct store_dkim_key *k = &d->keys[i];
		char *record = dkimkey_record(k->public_key);
		domain_dkim_name(k->selector, d->name, name, sizeof(name));
		/* The key in use must be published; a rotated-in key is needed before it signs;
		 * a retired one is best kept a few days for mail still on its way. */
		bool active = strcmp(k->state, "active") == 0;
		cJSON_AddItemToArray(list,
				     new_record(last, name, record,
						active				? "dkim"
						: strcmp(k->state, "next") == 0 ? "dkim_next"
										: "dkim_retired",
						active));
		free(record);
	}
	if (spf_include[0])
		cJSON_AddItemToArray(list,
				     domain_spf_record(d->name, d->spf_seen, spf_include, last));
	cJSON_Delete(last);
	return list;
}
