/* What send.c and send_fields.c share: the checks every field goes through. Private to the
 * two; everyone else uses send.h. Each returns 0, or -1 with why filled. */
#ifndef POSTERN_SEND_INT_H
#define POSTERN_SEND_INT_H

#include "send.h"

/* Fills why with message and the field's path; returns -1. */
int send_fail(struct send_problem *why, const char *message, const char *field_fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A string field that may go into a header: present (unless optional), UTF-8 without control
 * characters, not longer than max. Returns 0 with *out set (NULL when absent and optional). */
int send_header_text(const cJSON *parent, const char *name, bool optional, size_t max,
		     const char **out, struct send_problem *why, const char *path);
/* An address as {"email","name"} (or a bare string where allowed) into {"email","name"},
 * with the email normalized into norm. */
int send_parse_address(const cJSON *v, bool string_ok, cJSON *out, char norm[ADDR_MAX],
		       struct send_problem *why, const char *path);
/* The list of recipients kind of p into out, counted in *count (at most
 * SEND_MAX_RECIPIENTS); path is the prefix of p's fields: "" at the top level,
 * "personalizations[0]." in one. */
int send_parse_recipients(const cJSON *p, const char *kind, bool required, cJSON *out, int *count,
			  struct send_problem *why, const char *path);
/* The attachments of parent into out["attachments"]; prefix as for send_parse_recipients. */
int send_parse_attachments(enum send_dialect d, const cJSON *parent, cJSON *out,
			   struct send_problem *why, const char *prefix);

/* send_fields.c: the fields of personalization p beyond its recipients, subject and
 * headers, into o (prefix "personalizations[0]."). */
int send_personalization_fields(enum send_dialect d, const cJSON *p, cJSON *o,
				struct send_problem *why, const char *prefix);
/* The top-level fields beyond the message itself, once the rest of r is parsed. */
int send_fields(enum send_dialect d, const cJSON *body, struct send_request *r,
		struct send_problem *why);

#endif
