/* Sending domains, the pure part: the records a domain must publish, how a DNS answer is
 * judged against them, and what a check means for the domain's status. */
#ifndef POSTERN_DOMAIN_H
#define POSTERN_DOMAIN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "store.h"

enum domain_record_state {
	DOMAIN_REC_UNKNOWN, /* not checked yet, or the lookup failed */
	DOMAIN_REC_OK,
	DOMAIN_REC_MISSING,
	DOMAIN_REC_MISMATCH,
};

/* True when name is a public suffix alone (com, co.uk), which no one can own. */
bool domain_is_public_suffix(const char *name);

void domain_ownership_name(const char *domain, char *out, size_t n);
void domain_ownership_value(const char *token, char *out, size_t n);
void domain_dkim_name(const char *selector, const char *domain, char *out, size_t n);

/* Judging one lookup. An answer that is DNS_ERROR is never judged (UNKNOWN). */
enum domain_record_state domain_judge_ownership(const struct dns_txt *a, const char *expected);
enum domain_record_state domain_judge_dkim(const struct dns_txt *a, const char *public_key);
/* OK only when the domain publishes one SPF record and it includes Postern's. */
enum domain_record_state domain_judge_spf(const struct dns_txt *a, const char *include);
const char *domain_record_state_name(enum domain_record_state s);

/* What a check means for the status (DESIGN and issue rules): every required record found:
 * verified. A lookup error: nothing changes. Otherwise a pending or failed domain stays as
 * it is, and a verified one fails only when its records were also missing at a check at
 * least grace earlier (missing_since). */
struct domain_verdict {
	const char *status;
	int64_t missing_since;
};
void domain_next(const char *status, int64_t missing_since, bool all_ok, bool any_error,
		 int64_t now, int64_t grace, struct domain_verdict *out);

/* The status the API shows for a domain's DNS status and the operator's approval: its
 * DNS status, except "rejected" once an operator refused it, and "awaiting_approval" when
 * its records check out but it waits for the operator ([domains] approval = manual). */
const char *domain_shown_status(const char *status, const char *approval);

/* The SPF records among an answer, as a JSON array of strings (out, n bytes; "[]" for none),
 * as the store keeps them from the last check (store_domain.spf_seen). */
void domain_spf_seen(const struct dns_txt *a, char *out, size_t n);

/* What to advise for SPF given the SPF records a domain publishes. A domain must publish
 * only one: two are a permanent error for receivers. */
enum domain_spf_advice {
	DOMAIN_SPF_NEW,	   /* none: "v=spf1 include:<include> ~all" */
	DOMAIN_SPF_AS_IS,  /* one, which includes Postern's already: nothing to change */
	DOMAIN_SPF_MERGED, /* the published one(s) and the include, to replace them all */
};
/* The one record to publish (malloc'd): the published records' mechanisms (duplicates once,
 * those after an all left out, as receivers ignore them), include:<include>, then their all
 * with its qualifier (the strictest of several; ~all when none has one, unless a redirect=
 * takes its place), their modifiers, and a redirect= last. */
char *domain_spf_merge(const char *const *published, int n, const char *include,
		       enum domain_spf_advice *advice);
/* The advised SPF record of domain, given seen (the JSON of domain_spf_seen, "" before a
 * check), with "replaces" (the records it replaces) and a "note" (null unless it replaces
 * some); status from last as in domain_records. */
cJSON *domain_spf_record(const char *domain, const char *seen, const char *include,
			 const cJSON *last);

/* The records to publish for d, as the API shows them, with each status taken from the
 * last check (d->records), "unknown" otherwise. spf_include "" leaves SPF out. */
cJSON *domain_records(const struct store_domain *d, const char *spf_include);

#endif
