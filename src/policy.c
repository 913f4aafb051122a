/* Policy snapshots: the account's switch, its senders (a fingerprint set) and its domains
 * (a hash map), so a decision costs the same with ten senders or a million. Snapshots are
 * built once and then only read, so threads share them without locks. */
#include "policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fpset.h"
#include "strmap.h"
#include "util.h"

/* A sender's flag is set when verified; a domain's value is its status plus DOMAIN_ACTIVE
 * when active. */
#define DOMAIN_ACTIVE 0x100u

struct policy {
	bool enabled;
	size_t verified;
	struct fpset senders;
	struct strmap domains;
};

static const char *const reason_codes[POLICY_REASON_COUNT] = {
	[POLICY_ALLOW] = "allow",
	[POLICY_NO_SENDERS] = "sender_auth_no_senders",
	[POLICY_DOMAIN_NOT_APPROVED] = "domain_not_approved",
	[POLICY_DOMAIN_NOT_VERIFIED] = "domain_not_verified",
	[POLICY_DOMAIN_INACTIVE] = "domain_inactive",
	[POLICY_SENDER_NOT_AUTHORIZED] = "sender_not_authorized",
	[POLICY_SENDER_PENDING] = "sender_pending_verification",
};

struct policy *policy_new(bool enabled)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	p->enabled = enabled;
	return p;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	fpset_free(&p->senders);
	strmap_free(&p->domains);
	free(p);
}

void policy_add_sender(struct policy *p, const char *address, bool verified)
{
	struct fpset_fp fp;
	fpset_fingerprint(address, &fp);
	if (verified && fpset_find(&p->senders, &fp) != 1)
		p->verified++;
	fpset_add(&p->senders, &fp, verified);
}

void policy_add_domain(struct policy *p, const char *domain, enum policy_domain_status status,
		       bool active)
{
	*strmap_put(&p->domains, domain) = (uint64_t)status | (active ? DOMAIN_ACTIVE : 0);
}

enum policy_reason policy_decide(const struct policy *p, const char *from)
{
	/* The product owner: with the feature on and no verified address, all mail is dropped. */
	if (p->enabled && p->verified == 0)
		return POLICY_NO_SENDERS;

	/* The sender's slot is fetched from memory while the domain is judged. */
	struct fpset_fp fp = {0, 0};
	if (p->enabled) {
		fpset_fingerprint(from, &fp);
		fpset_prefetch(&p->senders, &fp);
	}
	const uint64_t *d = strmap_get(&p->domains, addr_domain(from));
	if (!d)
		return POLICY_DOMAIN_NOT_APPROVED;
	if ((*d & ~DOMAIN_ACTIVE) != POLICY_DOMAIN_VERIFIED)
		return POLICY_DOMAIN_NOT_VERIFIED;
	if (!(*d & DOMAIN_ACTIVE))
		return POLICY_DOMAIN_INACTIVE;

	if (p->enabled) {
		int verified = fpset_find(&p->senders, &fp);
		if (verified < 0)
			return POLICY_SENDER_NOT_AUTHORIZED;
		if (!verified)
			return POLICY_SENDER_PENDING;
	}
	return POLICY_ALLOW;
}

const char *policy_reason_code(enum policy_reason r)
{
	return (unsigned)r < POLICY_REASON_COUNT ? reason_codes[r] : "unknown";
}

int policy_reason_parse(const char *code)
{
	for (int r = 0; r < POLICY_REASON_COUNT; r++)
		if (strcmp(code, reason_codes[r]) == 0)
			return r;
	return -1;
}
