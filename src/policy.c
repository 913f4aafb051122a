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
	enum policy_mode mode;
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

static const char *const mode_names[POLICY_MODE_COUNT] = {
	[POLICY_MODE_OFF] = "off",
	[POLICY_MODE_MONITOR] = "monitor",
	[POLICY_MODE_ON] = "on",
};

struct policy *policy_new_mode(enum policy_mode mode)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	p->mode = mode;
	return p;
}

struct policy *policy_new(bool enabled)
{
	return policy_new_mode(enabled ? POLICY_MODE_ON : POLICY_MODE_OFF);
}

enum policy_mode policy_mode(const struct policy *p)
{
	return p->mode;
}

enum policy_mode policy_mode_of(bool enabled, bool monitor)
{
	if (enabled)
		return POLICY_MODE_ON;
	return monitor ? POLICY_MODE_MONITOR : POLICY_MODE_OFF;
}

const char *policy_mode_name(enum policy_mode m)
{
	return (unsigned)m < POLICY_MODE_COUNT ? mode_names[m] : "unknown";
}

int policy_mode_parse(const char *name)
{
	for (int m = 0; name && m < POLICY_MODE_COUNT; m++)
		if (strcmp(name, mode_names[m]) == 0)
			return m;
	return -1;
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

/* The decision with the switch on (enabled) or off. */
static enum policy_reason decide(const struct policy *p, const char *from, bool enabled)
{
	/* The product owner: with the feature on and no verified address, all mail is dropped. */
	if (enabled && p->verified == 0)
		return POLICY_NO_SENDERS;

	/* The sender's slot is fetched from memory while the domain is judged. */
	struct fpset_fp fp = {0, 0};
	if (enabled) {
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

	if (enabled) {
		int verified = fpset_find(&p->senders, &fp);
		if (verified < 0)
			return POLICY_SENDER_NOT_AUTHORIZED;
		if (!verified)
			return POLICY_SENDER_PENDING;
	}
	return POLICY_ALLOW;
}

bool policy_reason_is_sender(enum policy_reason r)
{
	return r == POLICY_NO_SENDERS || r == POLICY_SENDER_NOT_AUTHORIZED ||
	       r == POLICY_SENDER_PENDING;
}

enum policy_reason policy_judge(const struct policy *p, const char *from,
				enum policy_reason *monitored)
{
	if (monitored)
		*monitored = POLICY_ALLOW;
	if (p->mode != POLICY_MODE_MONITOR)
		return decide(p, from, p->mode == POLICY_MODE_ON);
	/* Monitor judges as if on, so a domain refusal still wins over a sender one, and
	 * lets only the sender's reason through, named. */
	enum policy_reason r = decide(p, from, true);
	if (!policy_reason_is_sender(r))
		return r;
	/* With no verified sender the domain was not judged yet: it still refuses. */
	enum policy_reason domain = r == POLICY_NO_SENDERS ? decide(p, from, false) : POLICY_ALLOW;
	if (domain != POLICY_ALLOW)
		return domain;
	if (monitored)
		*monitored = r;
	return POLICY_ALLOW;
}

enum policy_reason policy_decide(const struct policy *p, const char *from)
{
	return policy_judge(p, from, NULL);
}

enum policy_reason policy_decide_if_on(const struct policy *p, const char *from)
{
	return decide(p, from, true);
}

const char *policy_sender_status(const struct policy *p, const char *from)
{
	struct fpset_fp fp;
	fpset_fingerprint(from, &fp);
	int verified = fpset_find(&p->senders, &fp);
	return verified < 0 ? "unlisted" : verified ? "verified" : "pending";
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
