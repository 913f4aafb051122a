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

/* The switch's three states. In monitor, the sender-level reasons (POLICY_NO_SENDERS,
 * POLICY_SENDER_NOT_AUTHORIZED, POLICY_SENDER_PENDING) are found but do not refuse; the
 * domain reasons refuse in every mode. */
enum policy_mode { POLICY_MODE_OFF, POLICY_MODE_MONITOR, POLICY_MODE_ON, POLICY_MODE_COUNT };

struct policy;

/* A new, empty snapshot. enabled is the account's "Authorized sender email ID" switch. */
struct policy *policy_new(bool enabled);
/* The same with the mode named. */
struct policy *policy_new_mode(enum policy_mode mode);
enum policy_mode policy_mode(const struct policy *p);
/* The mode the stored pair means: on wins; monitor counts only while the switch is off. */
enum policy_mode policy_mode_of(bool enabled, bool monitor);
/* "off", "monitor", "on"; parsing gives -1 for anything else. */
const char *policy_mode_name(enum policy_mode m);
int policy_mode_parse(const char *name);
void policy_free(struct policy *p);
/* Adds a sender (a normalized address, as addr_normalize makes it). */
void policy_add_sender(struct policy *p, const char *address, bool verified);
/* Adds a sending domain (a normalized A-label). */
void policy_add_domain(struct policy *p, const char *domain, enum policy_domain_status status,
		       bool active);
/* The decision for a normalized From address, in the order of DESIGN.md: what refuses. */
enum policy_reason policy_decide(const struct policy *p, const char *from);
/* The same, and in monitor mode *monitored gets the sender-level reason that would have
 * refused (POLICY_ALLOW otherwise, and in the other modes). */
enum policy_reason policy_judge(const struct policy *p, const char *from,
				enum policy_reason *monitored);
/* The decision if the switch were on now, whatever the mode (the preflight's question). */
enum policy_reason policy_decide_if_on(const struct policy *p, const char *from);
/* Whether a reason is one the switch governs (and monitor mode lets through). */
bool policy_reason_is_sender(enum policy_reason r);
/* The address's place on the sender list: "verified", "pending" or "unlisted". */
const char *policy_sender_status(const struct policy *p, const char *from);
/* The stable code of a reason ("sender_not_authorized"); "allow" for POLICY_ALLOW. */
const char *policy_reason_code(enum policy_reason r);
/* Parses a reason code back; -1 when unknown. */
int policy_reason_parse(const char *code);

#endif
