/* Approved sending domains (GET/POST /api/domains, POST /api/domains/{id}/check, PATCH and
 * DELETE /api/domains/{id}, POST /api/domains/{id}/dkim/rotate). */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "domain.h"
#include "domains.h"
#include "util.h"

static cJSON *domain_json(const struct api_call *c, const struct store_domain *d)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)d->id);
	cJSON_AddStringToObject(o, "name", d->name);
	cJSON_AddStringToObject(o, "status", domain_shown_status(d->status, d->approval));
	cJSON_AddBoolToObject(o, "active", d->active);
	cJSON_AddBoolToObject(o, "manual", d->manual);
	cJSON_AddStringToObject(o, "approval", d->approval);
	cJSON_AddItemToObject(o, "records", domain_records(d, c->ctx->cfg->spf_include));
	api_add_time(o, "created_at", d->created_at);
	api_add_time(o, "checked_at", d->checked_at);
	if (d->check_error[0])
		cJSON_AddStringToObject(o, "check_error", d->check_error);
	else
		cJSON_AddNullToObject(o, "check_error");
	return o;
}

/* Answers with the domain as it is now. */
static enum err reply_domain(struct api_call *c, int64_t id)
{
	struct store_domain *d = xmalloc(sizeof(*d));
	enum err e = api_store_err(store_domain_get(c->ctx->store, c->who.account.id, id, d));
	if (e == ERR_OK)
		c->reply = domain_json(c, d);
	free(d);
	return e;
}

struct list {
	struct api_call *c;
	cJSON *domains;
};

static int add_domain(void *arg, const struct store_domain *d)
{
	struct list *l = arg;
	cJSON_AddItemToArray(l->domains, domain_json(l->c, d));
	return 0;
}

enum err api_domains_list(struct api_call *c)
{
	struct list l = {c, cJSON_CreateArray()};
	return api_reply_list(c, "domains", l.domains,
			      store_domains_list(c->ctx->store, c->who.account.id, add_domain, &l));
}

enum err api_domains_add(struct api_call *c)
{
	const char *given = api_body_string(c, "domain");
	char name[ADDR_DOMAIN_MAX];
	const char *why;
	int64_t id;

	if (!given)
		return api_invalid(c, "domain", "Give the domain, like example.com.");
	if (addr_domain_normalize(given, name, &why) < 0) {
		api_invalid(c, "domain", why);
		return ERR_INVALID_DOMAIN;
	}
	if (domain_is_public_suffix(name)) {
		api_invalid(c, "domain",
			    "That is a public suffix, which no one owns; add your own domain "
			    "under it, like example.com.");
		return ERR_INVALID_DOMAIN;
	}
	struct actor who = api_actor(c);
	/* With [domains] approval = manual, the operator decides once the records check out. */
	const char *approval = c->ctx->cfg->domains_manual_approval ? "required" : "approved";
	enum err e = api_store_err(domains_create(c->ctx->store, c->ctx->master_key, &who,
						  c->who.account.id, name, "pending", true,
						  approval, &id));
	if (e != ERR_OK)
		return e;
	c->status = 201;
	return reply_domain(c, id);
}

enum err api_domain_check(struct api_call *c)
{
	char err[200];
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	struct dns *dns = dns_new(c->ctx->cfg->dns_servers, c->ctx->cfg->dns_timeout * 1000, err,
				  sizeof(err));
	if (!dns)
		return ERR_INTERNAL;
	struct actor who = api_actor(c);
	enum err e = api_store_err(domains_check(c->ctx->store, c->ctx->cfg, dns, c->who.account.id,
						 id, who.name, c->req->ip, NULL));
	dns_free(dns);
	return e == ERR_OK ? reply_domain(c, id) : e;
}

enum err api_domain_patch(struct api_call *c)
{
	const cJSON *active = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, "active") : NULL;
	struct store_domain *d = xmalloc(sizeof(*d));
	int64_t id = api_param_id(c);
	enum err e = id < 0 ? ERR_NOT_FOUND : ERR_OK;

	if (e == ERR_OK && !cJSON_IsBool(active))
		e = api_invalid(c, "active", "active must be true or false.");
	if (e == ERR_OK)
		e = api_store_err(store_domain_get(c->ctx->store, c->who.account.id, id, d));
	if (e == ERR_OK)
		e = api_store_err(store_domain_set_active(c->ctx->store, c->who.account.id, id,
							  cJSON_IsTrue(active)));
	if (e == ERR_OK)
		api_audit(c, cJSON_IsTrue(active) ? "domain.activated" : "domain.deactivated",
			  d->name, NULL);
	free(d);
	return e == ERR_OK ? reply_domain(c, id) : e;
}

enum err api_domain_delete(struct api_call *c)
{
	struct store_domain *d = xmalloc(sizeof(*d));
	int64_t id = api_param_id(c);
	enum err e =
		id < 0 ? ERR_NOT_FOUND
		       : api_store_err(store_domain_get(c->ctx->store, c->who.account.id, id, d));
	if (e == ERR_OK)
		e = api_store_err(store_domain_delete(c->ctx->store, c->who.account.id, id));
	if (e == ERR_OK)
		api_audit(c, "domain.removed", d->name, NULL);
	free(d);
	return e;
}

enum err api_domain_rotate(struct api_call *c)
{
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	int rc = domains_rotate(c->ctx->store, c->ctx->master_key, c->who.account.id, id);
	if (rc == STORE_CONFLICT)
		return ERR_ROTATION_PENDING;
	enum err e = api_store_err(rc);
	if (e != ERR_OK)
		return e;
	api_audit(c, "domain.dkim_rotated", c->param, NULL);
	return reply_domain(c, id);
}
