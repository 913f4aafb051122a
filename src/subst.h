/* Substitution: a personalization's values put into the subject, the content and (SendGrid's
 * dialect) the reply-to names of its message, when it is composed. Pure. Values go in as
 * given, never escaped: HTML in a value is HTML in the message. */
#ifndef POSTERN_SUBST_H
#define POSTERN_SUBST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* How long any one content value may grow to by substitution. */
#define SUBST_CONTENT_MAX (10 * 1024 * 1024)

enum subst_syntax {
	/* Netcore's attributes: a tag is [%name%], whitespace around the name ignored, names
	 * case-sensitive; a name without a value becomes "". Subject and content only. */
	SUBST_NETCORE,
	/* SendGrid's substitutions: each key is the whole tag, taken literally, the longest
	 * at each position first. Subject, content and reply-to names. */
	SUBST_LITERAL,
};

/* The canonical payload's spelling of each syntax ("netcore", "literal") and back. */
const char *subst_syntax_name(enum subst_syntax s);
enum subst_syntax subst_syntax_of(const cJSON *payload);

/* Replaces the tags of text by the values of subs (an object of strings; other values count
 * as absent). Substituted text is not scanned again. Returns 0 with *len the result's length
 * and, when out is not NULL, *out the result (malloc'd); -1 when it would pass max bytes. */
int subst_apply(const char *text, const cJSON *subs, enum subst_syntax syntax, size_t max,
		char **out, size_t *len);

/* True when personalization part of payload is to be substituted: it has values, or the
 * payload is Netcore's (whose tags without a value become ""). */
bool subst_needed(const cJSON *payload, int part);

/* A payload of one personalization, part of payload with its values substituted, for
 * compose: the same fields (referenced, not copied), but the subject, the content and, for
 * SUBST_LITERAL, the reply-to names replaced. With measure_only the content is only
 * measured (left as it was). Returns NULL with *why set (a static sentence) when a content
 * value would pass SUBST_CONTENT_MAX. Free with cJSON_Delete; payload must outlive it. */
cJSON *subst_view(const cJSON *payload, int part, bool measure_only, const char **why);

#endif
