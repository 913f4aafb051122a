/* Domain checks. Each check looks up the ownership record, the DKIM record of every
 * published key and (advisory) SPF, judges them with domain.c, and stores the verdict in
 * one write; the store counts it as a policy change, so the next send sees it. */
#include "domains.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "domain.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "worker.h"

/* Makes a selector that no earlier key of the domain used: "pst" and 8 random hex. */
static void new_selector(char out[STORE_SELECTOR_MAX])
{
	char hex[9];
	auth_random_hex(hex, 4);
	snprintf(out, STORE_SELECTOR_MAX, "pst%s", hex);
}

/* A new key, sealed for the store. */
static int new_key(const unsigned char master[DKIMKEY_MASTER_LEN], char **sealed, char **public_key)
{
	char *pem = NULL;
	*sealed = NULL;
	if (dkimkey_generate(&pem, public_key) < 0)
		return STORE_FAIL;
	*sealed = dkimkey_seal(master, pem);
	dkimkey_free_pem(pem);
	if (!*sealed) {
		free(*public_key);
		return STORE_FAIL;
	}
	return STORE_OK;
}

int domains_create(struct store *s, const unsigned char master[DKIMKEY_MASTER_LEN],
		   const struct actor *who, int64_t account_id, const char *name,
		   const char *status, bool active, const char *approval, int64_t *id)
{
	char token[AUTH_TOKEN_LEN], selector[STORE_SELECTOR_MAX], *sealed, *public_key;
	if (new_key(master, &sealed, &public_key) != STORE_OK)
		return STORE_FAIL;
	auth_token_new(token);
	new_selector(selector);
	struct store_domain_new d = {.name = name,
				     .status = status,
				     .active = active,
				     .manual = strcmp(status, "verified") == 0,
				     .approval = approval,
				     .token = token,
				     .selector = selector,
				     .private_sealed = sealed,
				     .public_key = public_key,
				     .now = util_now()};
	int rc = store_domain_create(s, account_id, &d, id);
	free(sealed);
	free(public_key);
	/* Only an operator's word (verified, or switched off) is worth a detail, and a domain
	 * that will wait for the operator's approval. */
	bool usual = strcmp(status, "pending") == 0 && active;
	bool held = strcmp(approval, "approved") != 0;
	if (rc == STORE_OK && usual && !held)
		audit_write(s, who, account_id, "domain.added", name, NULL);
	else if (rc == STORE_OK && usual)
		audit_write(s, who, account_id, "domain.added", name, "approval=%s", approval);
	else if (rc == STORE_OK)
		audit_write(s, who, account_id, "domain.added", name, "status=%s active=%s", status,
			    active ? "yes" : "no");
	return rc;
}

int domains_approve(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		    bool approve, struct store_domain_was *was)
{
	const char *to = approve ? "approved" : "rejected";
	int rc = store_domain_approve(s, account_id, name, to, was);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, approve ? "domain.approved" : "domain.rejected",
			    name, "was=%s", domain_shown_status(was->status, was->approval));
	return rc;
}

int domains_rotate(struct store *s, const unsigned char master[DKIMKEY_MASTER_LEN],
		   int64_t account_id, int64_t id)
{
	char selector[STORE_SELECTOR_MAX], *sealed, *public_key;
	if (new_key(master, &sealed, &public_key) != STORE_OK)
		return STORE_FAIL;
	new_selector(selector);
	int rc = store_dkim_rotate(s, account_id, id, selector, sealed, public_key, util_now());
	free(sealed);
	free(public_key);
	return rc;
}

/* One check, its lookups and what they found. */
struct check {
	struct dns *dns;
	struct dns_txt *answer;
	bool all_ok, any_error;
	char error[160];
	char spf_seen[STORE_SPF_SEEN_MAX];
};

/* Looks name up and judges it; a failed lookup of a required record blocks any change. */
static enum domain_record_state
look(struct check *c, const char *name, bool required,
     enum domain_record_state (*judge)(const struct dns_txt *, const char *), const char *expected)
{
	dns_txt(c->dns, name, c->answer);
	enum domain_record_state st = judge(c->answer, expected);
	if (c->answer->status == DNS_ERROR && !c->error[0])
		snprintf(c->error, sizeof(c->error), "%.100s: %.50s", name, c->answer->error);
	if (required) {
		c->any_error = c->any_error || c->answer->status == DNS_ERROR;
		c->all_ok = c->all_ok && st == DOMAIN_REC_OK;
	}
	return st;
}

static void set_status(cJSON *record, enum domain_record_state st)
{
	cJSON_ReplaceItemInObject(record, "status",
				  cJSON_CreateString(domain_record_state_name(st)));
}

/* Looks the domain's SPF up: the records found are kept, and the advice (r, in records) is
 * made again from them, so it merges what is published now. A failed lookup keeps both. */
static void look_spf(struct check *c, cJSON *records, cJSON *r, const char *domain,
		     const char *include, struct store_domain_check *out)
{
	enum domain_record_state st = look(c, domain, false, domain_judge_spf, include);
	if (c->answer->status != DNS_ERROR) {
		domain_spf_seen(c->answer, c->spf_seen, sizeof(c->spf_seen));
		out->spf_seen = c->spf_seen;
		cJSON *fresh = domain_spf_record(domain, c->spf_seen, include, NULL);
		cJSON_ReplaceItemViaPointer(records, r, fresh);
		r = fresh;
	}
	set_status(r, st);
}

/* Runs the lookups for d; fills the records JSON and the selectors seen. */
static cJSON *lookups(struct check *c, const struct store_domain *d, const struct config *cfg,
		      struct store_domain_check *out)
{
	char name[ADDR_DOMAIN_MAX + 80], value[300];
	cJSON *records = domain_records(d, cfg->spf_include);
	cJSON *r = records->child;

	domain_ownership_name(d->name, name, sizeof(name));
	domain_ownership_value(d->token, value, sizeof(value));
	set_status(r, look(c, name, true, domain_judge_ownership, value));
	for (int i = 0; i < d->nkeys; i++) {
		const struct store_dkim_key *k = &d->keys[i];
		r = r->next;
		domain_dkim_name(k->selector, d->name, name, sizeof(name));
		bool active = strcmp(k->state, "active") == 0;
		enum domain_record_state st =
			look(c, name, active, domain_judge_dkim, k->public_key);
		set_status(r, st);
		if (st == DOMAIN_REC_OK)
			out->verified_selectors[out->nverified++] = k->selector;
	}
	if (cfg->spf_include[0])
		look_spf(c, records, r->next, d->name, cfg->spf_include, out);
	return records;
}

/* The audit action of a check that changed the status. Records that check out on a domain
 * held for the operator make it wait, not send. */
static const char *check_action(const char *status, const char *approval)
{
	if (status[0] == 'v')
		return strcmp(approval, "required") == 0 ? "domain.awaiting_approval"
							 : "domain.verified";
	return status[0] == 'f' ? "domain.failed" : "domain.pending";
}

static int check_once(struct store *s, const struct config *cfg, struct dns *dns,
		      int64_t account_id, int64_t id, const char *actor, const char *ip,
		      struct store_domain *out)
{
	struct store_domain *d = xmalloc(sizeof(*d));
	struct check c = {.dns = dns, .answer = xmalloc(sizeof(struct dns_txt)), .all_ok = true};
	struct store_domain_check result = {.account_id = account_id, .now = util_now()};
	struct domain_verdict v;

	int rc = store_domain_get(s, account_id, id, d);
	if (rc != STORE_OK)
		goto out;
	cJSON *records = lookups(&c, d, cfg, &result);
	domain_next(d->status, d->missing_since, c.all_ok, c.any_error, result.now, cfg->dns_grace,
		    &v);
	char *json = cJSON_PrintUnformatted(records);
	cJSON_Delete(records);
	result.token = d->token;
	result.read_status = d->status;
	result.read_manual = d->manual;
	result.status = v.status;
	result.missing_since = v.missing_since;
	result.error = c.error[0] ? c.error : NULL;
	result.records = json;
	rc = store_domain_checked(s, id, &result);
	free(json);
	if (rc != STORE_OK)
		goto out;
	metrics_dns_check(v.status, c.any_error);
	log_debug("domain %s checked: %s%s%s", d->name, v.status, c.error[0] ? ", " : "", c.error);
	if (strcmp(v.status, d->status) != 0)
		audit_record(s, account_id, actor, check_action(v.status, d->approval), d->name, ip,
			     "was=%s", d->status);
	log_info("domain %s of account %lld checked: %s%s%s", d->name, (long long)account_id,
		 domain_shown_status(v.status, d->approval), c.error[0] ? ", lookup error: " : "",
		 c.error);
	if (out)
		rc = store_domain_get(s, account_id, id, out);
out:
	free(c.answer);
	free(d);
	return rc;
}

int domains_check(struct store *s, const struct config *cfg, struct dns *dns, int64_t account_id,
		  int64_t id, const char *actor, const char *ip, struct store_domain *out)
{
	/* Another check (the scheduler's, another node's, an operator's mark) may land between
	 * this one's read and its write; the row is then not what was read (STORE_CONFLICT),
	 * and the check starts over from what it is now rather than failing the caller. */
	int rc = STORE_CONFLICT;
	for (int tries = 0; tries < 3 && rc == STORE_CONFLICT; tries++)
		rc = check_once(s, cfg, dns, account_id, id, actor, ip, out);
	return rc;
}

struct domains {
	struct store *store;
	const struct config *cfg;
	struct dns *dns;
	struct worker *checker;
};

/* What a pass over the due domains needs: the service and the thread it runs on. */
struct pass {
	struct domains *d;
	struct worker *self;
};

static int check_due(void *arg, int64_t account_id, int64_t domain_id)
{
	struct pass *p = arg;
	/* A stop ends the pass between two domains, not after hundreds of slow lookups. */
	if (!worker_stopping(p->self))
		domains_check(p->d->store, p->d->cfg, p->d->dns, account_id, domain_id, "dns-check",
			      NULL, NULL);
	return 0;
}

static void schedule(void *arg, struct worker *self)
{
	struct pass p = {arg, self};
	do {
		int64_t now = util_now();
		store_domains_due(p.d->store, now - p.d->cfg->dns_check_pending,
				  now - p.d->cfg->dns_check_verified, check_due, &p);
	} while (worker_wait(self, 1000));
}

struct domains *domains_start(struct store *s, const struct config *cfg, char *err, size_t errlen)
{
	struct domains *d = xcalloc(1, sizeof(*d));
	d->store = s;
	d->cfg = cfg;
	d->dns = dns_new(cfg->dns_servers, cfg->dns_timeout * 1000, err, errlen);
	if (d->dns)
		d->checker = worker_start("domain checker", schedule, d, err, errlen);
	if (d->checker)
		return d;
	domains_stop(d);
	return NULL;
}

void domains_stop(struct domains *d)
{
	if (!d)
		return;
	worker_stop(d->checker);
	dns_free(d->dns);
	free(d);
}
