/* Substitution of a personalization's values into its message: the two tag syntaxes, and the
 * view of one personalization that compose builds its message from and send checks. */
#include "subst.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *subst_syntax_name(enum subst_syntax s)
{
	return s == SUBST_NETCORE ? "netcore" : "literal";
}

enum subst_syntax subst_syntax_of(const cJSON *payload)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, "tag_syntax");
	return cJSON_IsString(v) && strcmp(v->valuestring, "netcore") == 0 ? SUBST_NETCORE
									   : SUBST_LITERAL;
}

/* Where the result goes: counted always, kept only when buf is set; over once past max. */
struct sink {
	GString *buf;
	size_t len, max;
	bool over;
};

static void put(struct sink *s, const char *p, size_t n)
{
	if (s->over || n > s->max - s->len) {
		s->over = true;
		return;
	}
	s->len += n;
	if (s->buf)
		g_string_append_len(s->buf, p, (gssize)n);
}

/* The value of the attribute named by [name, end) without surrounding whitespace, or NULL. */
static const char *netcore_value(const cJSON *subs, const char *name, const char *end)
{
	while (name < end && g_ascii_isspace(*name))
		name++;
	while (end > name && g_ascii_isspace(end[-1]))
		end--;
	const cJSON *v;
	cJSON_ArrayForEach(v, subs)
	{
		if (cJSON_IsString(v) && strlen(v->string) == (size_t)(end - name) &&
		    memcmp(v->string, name, (size_t)(end - name)) == 0)
			return v->valuestring;
	}
	return NULL;
}

static void netcore(struct sink *s, const char *text, const cJSON *subs)
{
	const char *p = text, *open, *close;
	while ((open = strstr(p, "[%")) && (close = strstr(open + 2, "%]"))) {
		/* The last opening before the close starts the tag: "[% [%a%]" is text, then a
		 * tag. */
		const char *inner;
		while ((inner = g_strstr_len(open + 2, close - open - 2, "[%")))
			open = inner;
		put(s, p, (size_t)(open - p));
		const char *value = netcore_value(subs, open + 2, close);
		if (value)
			put(s, value, strlen(value));
		p = close + 2;
	}
	put(s, p, strlen(p));
}

/* The longest key of subs that text starts with, or NULL. */
static const cJSON *literal_match(const cJSON *subs, const char *text, size_t *keylen)
{
	const cJSON *v, *best = NULL;
	*keylen = 0;
	cJSON_ArrayForEach(v, subs)
	{
		size_t n = strlen(v->string);
		if (cJSON_IsString(v) && n > *keylen && strncmp(text, v->string, n) == 0) {
			best = v;
			*keylen = n;
		}
	}
	return best;
}

static void literal(struct sink *s, const char *text, const cJSON *subs)
{
	bool starts[256] = {false};
	const cJSON *v;
	cJSON_ArrayForEach(v, subs)
	{
		starts[(unsigned char)v->string[0]] = v->string[0] != '\0';
	}
	const char *p = text, *run = text;
	while (*p && !s->over) {
		size_t n;
		const cJSON *m = starts[(unsigned char)*p] ? literal_match(subs, p, &n) : NULL;
		if (!m) {
			p++;
			continue;
		}
		put(s, run, (size_t)(p - run));
		put(s, m->valuestring, strlen(m->valuestring));
		p += n;
		run = p;
	}
	put(s, run, strlen(run));
}

int subst_apply(const char *text, const cJSON *subs, enum subst_syntax syntax, size_t max,
		char **out, size_t *len)
{
	struct sink s = {.buf = out ? g_string_new(NULL) : NULL, .max = max};
	if (syntax == SUBST_NETCORE)
		netcore(&s, text, subs);
	else
		literal(&s, text, subs);
	*len = s.len;
	if (out) {
		*out = s.over ? NULL : xstrdup(s.buf->str);
		g_string_free(s.buf, TRUE);
	}
	return s.over ? -1 : 0;
}

static const cJSON *personalization(const cJSON *payload, int part)
{
	const cJSON *p = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(payload, "personalizations"), part);
	return cJSON_IsObject(p) ? p : NULL;
}

bool subst_needed(const cJSON *payload, int part)
{
	const cJSON *p = personalization(payload, part);
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(p, "substitutions");
	return cJSON_IsObject(subs) && subs->child;
}

/* An item of the view that stands for item of the payload without copying it. */
static cJSON *ref(const cJSON *item)
{
	if (cJSON_IsObject(item))
		return cJSON_CreateObjectReference(item->child);
	if (cJSON_IsArray(item))
		return cJSON_CreateArrayReference(item->child);
	if (cJSON_IsString(item))
		return cJSON_CreateStringReference(item->valuestring);
	return cJSON_Duplicate(item, false);
}

/* An object referencing every item of from but the keys in skip (NULL-terminated). */
static cJSON *ref_object(const cJSON *from, const char *const *skip)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *item;
	cJSON_ArrayForEach(item, from)
	{
		bool skipped = false;
		for (const char *const *k = skip; *k; k++)
			skipped |= strcmp(item->string, *k) == 0;
		if (!skipped)
			cJSON_AddItemToObject(o, item->string, ref(item));
	}
	return o;
}

/* Longer than any header field send.c lets through, so that a subject or name of repeated
 * long values is refused without being built whole. */
#define HEADER_MAX 4096

/* Adds key: text with subs substituted, at most max bytes. */
static int add_substituted(cJSON *o, const char *key, const char *text, const cJSON *subs,
			   enum subst_syntax syntax, size_t max)
{
	char *value;
	size_t len;
	if (subst_apply(text, subs, syntax, max, &value, &len) < 0)
		return -1;
	cJSON_AddStringToObject(o, key, value);
	free(value);
	return 0;
}

static int view_content(cJSON *view, const cJSON *content, const cJSON *subs,
			enum subst_syntax syntax, bool measure_only)
{
	static const char *const none[] = {NULL};
	if (measure_only) {
		const cJSON *v;
		size_t len;
		cJSON_ArrayForEach(v, content)
		{
			if (cJSON_IsString(v) && subst_apply(v->valuestring, subs, syntax,
							     SUBST_CONTENT_MAX, NULL, &len) < 0)
				return -1;
		}
		cJSON_AddItemToObject(view, "content", ref_object(content, none));
		return 0;
	}
	cJSON *c = cJSON_AddObjectToObject(view, "content");
	const cJSON *v;
	cJSON_ArrayForEach(v, content)
	{
		if (cJSON_IsString(v) && add_substituted(c, v->string, v->valuestring, subs, syntax,
							 SUBST_CONTENT_MAX) < 0)
			return -1;
	}
	return 0;
}

/* A mailbox with its name substituted; -1 when the name would pass HEADER_MAX. */
static int view_mailbox(cJSON *to, const char *key, const cJSON *box, const cJSON *subs)
{
	static const char *const skip[] = {"name", NULL};
	cJSON *o = ref_object(box, skip);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(box, "name");
	if (key)
		cJSON_AddItemToObject(to, key, o);
	else
		cJSON_AddItemToArray(to, o);
	if (!cJSON_IsString(name))
		return 0;
	return add_substituted(o, "name", name->valuestring, subs, SUBST_LITERAL, HEADER_MAX);
}

/* The reply-to mailboxes, their names substituted when subs is not NULL. */
static int view_reply_to(cJSON *view, const cJSON *payload, const cJSON *subs)
{
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(payload, "reply_to");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "reply_to_list"), *box;
	int rc = 0;
	if (cJSON_IsObject(reply_to))
		rc |= view_mailbox(view, "reply_to", reply_to, subs);
	if (!cJSON_IsArray(list))
		return rc;
	cJSON *arr = cJSON_AddArrayToObject(view, "reply_to_list");
	cJSON_ArrayForEach(box, list)
	{
		rc |= view_mailbox(arr, NULL, box, subs);
	}
	return rc;
}

cJSON *subst_view(const cJSON *payload, int part, bool measure_only, const char **why)
{
	static const char *const top_skip[] = {"subject",  "content",	    "personalizations",
					       "reply_to", "reply_to_list", NULL};
	static const char *const own_skip[] = {"subject", NULL};
	const cJSON *p = personalization(payload, part);
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(p, "substitutions");
	enum subst_syntax syntax = subst_syntax_of(payload);
	cJSON *view = ref_object(payload, top_skip);

	const cJSON *subject = cJSON_GetObjectItemCaseSensitive(p, "subject");
	if (!cJSON_IsString(subject))
		subject = cJSON_GetObjectItemCaseSensitive(payload, "subject");
	cJSON_AddItemToArray(cJSON_AddArrayToObject(view, "personalizations"),
			     ref_object(p, own_skip));
	if (add_substituted(view, "subject", cJSON_IsString(subject) ? subject->valuestring : "",
			    subs, syntax, HEADER_MAX) < 0 ||
	    view_reply_to(view, payload, syntax == SUBST_LITERAL ? subs : NULL) < 0) {
		*why = "With its values substituted, the subject or a reply-to name is too long.";
	} else if (view_content(view, cJSON_GetObjectItemCaseSensitive(payload, "content"), subs,
				syntax, measure_only) < 0) {
		*why = "With its values substituted, a content value would pass 10 MiB.";
	} else {
		return view;
	}
	cJSON_Delete(view);
	return NULL;
}
