/* The sender decision: one pure function over a per-account policy snapshot. Every front
 * end (the send API now, SMTP submission and the delivery-time re-check later) asks it,
 * so a From address is judged the same way everywhere. No I/O. */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stdbool.h>
#include <stddef.h>

enum policy_reason {
	POLICY_ALLOW = 0,
	POLICY_NO_SENDERS,	      /* feature on, nothing verified: all mail is dropped */
	POLICY_DOMAIN_NOT_APPROVED,   /* the From domain is not an approved sending domain */
	POLICY_DOMAIN_NOT_VERIFIED,   /* listed, but its DNS records are not verified */
	POLICY_DOMAIN_INACTIVE,	      /* listed and verified, but switched off */
	POLICY_SENDER_NOT_AUTHORIZED, /* feature on, address not listed */
	POLICY_SENDER_PENDING,	      /* feature on, address listed but not yet verified */
	POLICY_REASON_COUNT
};

enum policy_domain_status { POLICY_DOMAIN_PENDING, POLICY_DOMAIN_VERIFIED, POLICY_DOMAIN_FAILED };

struct policy;

/* A new, empty snapshot. enabled is the account's "Authorized sender email ID" switch. */
struct policy *policy_new(bool enabled);
void policy_free(struct policy *p);
/* Adds a sender (a normalized address, as addr_normalize makes it). */
void policy_add_sender(struct policy *p, const char *address, bool verified);
/* Adds a sending domain (a normalized A-label). */
void policy_add_domain(struct policy *p, const char *domain, enum policy_domain_status status,
		       bool active);
/* The decision for a normalized From address, in the order of DESIGN.md. */
enum policy_reason policy_decide(const struct policy *p, const char *from);
/* The stable code of a reason ("sender_not_authorized"); "allow" for POLICY_ALLOW. */
const char *policy_reason_code(enum policy_reason r);
/* Parses a reason code back; -1 when unknown. */
int policy_reason_parse(const char *code);

#endif
