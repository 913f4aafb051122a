/* Dispatch from the store interface to the backend that opened the store. */
#include "store.h"

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

int store_account_create(struct store *s, const char *name, int64_t now, int64_t *id)
{
	return s->ops->account_create(s, name, now, id);
}

int store_account_count(struct store *s, int64_t *count)
{
	return s->ops->account_count(s, count);
}

int store_account_by_name(struct store *s, const char *name, struct store_account *out)
{
	return s->ops->account_by_name(s, name, out);
}

int store_user_create(struct store *s, int64_t account_id, const char *email,
		      const char *password_hash, enum role role, int64_t now, int64_t *id)
{
	return s->ops->user_create(s, account_id, email, password_hash, role, now, id);
}

int store_user_by_login(struct store *s, const char *account, const char *email,
			struct store_user *out)
{
	return s->ops->user_by_login(s, account, email, out);
}

int store_login_attempt(struct store *s, const struct store_throttle *t, size_t n, int64_t now,
			int64_t forget_before, int *failures, int64_t *retry_after)
{
	return s->ops->login_attempt(s, t, n, now, forget_before, failures, retry_after);
}

int store_login_forgive(struct store *s, const struct store_throttle *t, bool all)
{
	return s->ops->login_forgive(s, t, all);
}

int store_login_failed(struct store *s, const struct store_throttle *t, int64_t now)
{
	return s->ops->login_failed(s, t, now);
}

int store_session_create(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
			 int64_t expires_at)
{
	return s->ops->session_create(s, token_hash, user_id, now, expires_at);
}

int store_session_get(struct store *s, const char *token_hash, int64_t now,
		      struct store_session *out)
{
	return s->ops->session_get(s, token_hash, now, out);
}

int store_session_delete(struct store *s, const char *token_hash)
{
	return s->ops->session_delete(s, token_hash);
}

int store_apikey_create(struct store *s, int64_t account_id, const char *name, const char *shown,
			const char *key_hash, int64_t now, int64_t *id)
{
	return s->ops->apikey_create(s, account_id, name, shown, key_hash, now, id);
}

int store_audit_append(struct store *s, const struct store_audit *ev)
{
	return s->ops->audit_append(s, ev);
}

int store_audit_list(struct store *s, int64_t account_id, int limit, store_audit_fn fn, void *arg)
{
	return s->ops->audit_list(s, account_id, limit, fn, arg);
}

int store_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out)
{
	return s->ops->sender_auth_get(s, account_id, out);
}

int store_sender_auth_set(struct store *s, int64_t account_id, bool enabled, int64_t user_id,
			  int64_t now)
{
	return s->ops->sender_auth_set(s, account_id, enabled, user_id, now);
}

int store_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		      const char *const *addresses, size_t n, struct store_batch_new *b,
		      int64_t *ids)
{
	return s->ops->senders_add(s, account_id, user_id, now, addresses, n, b, ids);
}

int store_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg)
{
	return s->ops->senders_list(s, account_id, fn, arg);
}

int store_sender_get(struct store *s, int64_t account_id, int64_t id, struct store_sender *out)
{
	return s->ops->sender_get(s, account_id, id, out);
}

int store_sender_verify(struct store *s, int64_t account_id, int64_t id, int64_t user_id,
			int64_t now)
{
	return s->ops->sender_verify(s, account_id, id, user_id, now);
}

int store_sender_delete(struct store *s, int64_t account_id, int64_t id)
{
	return s->ops->sender_delete(s, account_id, id);
}

int store_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
		     int active)
{
	return s->ops->domain_set(s, account_id, name, status, active);
}

int store_policy_load(struct store *s, int64_t account_id, struct policy **out)
{
	return s->ops->policy_load(s, account_id, out);
}

int store_policy_stamp(struct store *s, uint64_t *stamp)
{
	return s->ops->policy_stamp(s, stamp);
}

int store_users_list(struct store *s, int64_t account_id, store_user_fn fn, void *arg)
{
	return s->ops->users_list(s, account_id, fn, arg);
}

int store_user_get(struct store *s, int64_t account_id, int64_t id, struct store_user *out)
{
	return s->ops->user_get(s, account_id, id, out);
}

int store_user_set_role(struct store *s, int64_t account_id, int64_t id, enum role role)
{
	return s->ops->user_set_role(s, account_id, id, role);
}

int store_user_delete(struct store *s, int64_t account_id, int64_t id)
{
	return s->ops->user_delete(s, account_id, id);
}

int store_apikey_list(struct store *s, int64_t account_id, store_apikey_fn fn, void *arg)
{
	return s->ops->apikey_list(s, account_id, fn, arg);
}

int store_apikey_lookup(struct store *s, const char *key_hash, struct store_apikey *out)
{
	return s->ops->apikey_lookup(s, key_hash, out);
}

int store_apikey_touch(struct store *s, int64_t id, int64_t now)
{
	return s->ops->apikey_touch(s, id, now);
}

int store_apikey_revoke(struct store *s, int64_t account_id, int64_t id, int64_t now)
{
	return s->ops->apikey_revoke(s, account_id, id, now);
}

int store_drops_add(struct store *s, const struct store_drop *d, size_t n)
{
	return s->ops->drops_add(s, d, n);
}

int store_drops_list(struct store *s, int64_t account_id, int limit, store_drop_fn fn, void *arg)
{
	return s->ops->drops_list(s, account_id, limit, fn, arg);
}

int store_stats(struct store *s, int64_t account_id, int64_t *accepted, store_count_fn fn,
		void *arg)
{
	return s->ops->stats(s, account_id, accepted, fn, arg);
}

int store_messages_add(struct store *s, const struct store_message *m, size_t n)
{
	return s->ops->messages_add(s, m, n);
}

int store_messages_recover(struct store *s)
{
	return s->ops->messages_recover(s);
}

int store_messages_claim(struct store *s, int64_t now, int64_t lease_until,
			 struct store_queued *out, size_t max, size_t *n)
{
	return s->ops->messages_claim(s, now, lease_until, out, max, n);
}

int store_message_progress(struct store *s, int64_t id, int parts_done)
{
	return s->ops->message_progress(s, id, parts_done);
}

int store_messages_finish(struct store *s, const struct store_finish *f, size_t n)
{
	return s->ops->messages_finish(s, f, n);
}

int store_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
			store_message_fn fn, void *arg)
{
	return s->ops->messages_list(s, account_id, status, limit, fn, arg);
}

int store_message_get(struct store *s, int64_t account_id, const char *uid,
		      struct store_message_info *out)
{
	return s->ops->message_get(s, account_id, uid, out);
}

int store_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
			struct store_batch_new *b, store_batch_fn fn, void *arg)
{
	return s->ops->batch_pending(s, account_id, user_id, now, b, fn, arg);
}

int store_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		    store_batch_fn fn, void *arg)
{
	return s->ops->batch_get(s, token_hash, out, fn, arg);
}

int store_batch_use(struct store *s, const char *token_hash, int64_t now, struct store_batch *out,
		    store_batch_fn fn, void *arg)
{
	return s->ops->batch_use(s, token_hash, now, out, fn, arg);
}

int store_domain_create(struct store *s, int64_t account_id, const struct store_domain_new *d,
			int64_t *id)
{
	return s->ops->domain_create(s, account_id, d, id);
}

int store_domains_list(struct store *s, int64_t account_id, store_domain_fn fn, void *arg)
{
	return s->ops->domains_list(s, account_id, fn, arg);
}

int store_domain_get(struct store *s, int64_t account_id, int64_t id, struct store_domain *out)
{
	return s->ops->domain_get(s, account_id, id, out);
}

int store_domain_delete(struct store *s, int64_t account_id, int64_t id)
{
	return s->ops->domain_delete(s, account_id, id);
}

int store_domain_set_active(struct store *s, int64_t account_id, int64_t id, bool active)
{
	return s->ops->domain_set_active(s, account_id, id, active);
}

int store_domain_checked(struct store *s, int64_t id, const struct store_domain_check *c)
{
	return s->ops->domain_checked(s, id, c);
}

int store_domains_due(struct store *s, int64_t pending_before, int64_t verified_before,
		      store_due_fn fn, void *arg)
{
	return s->ops->domains_due(s, pending_before, verified_before, fn, arg);
}

int store_dkim_rotate(struct store *s, int64_t account_id, int64_t id, const char *selector,
		      const char *private_sealed, const char *public_key, int64_t now)
{
	return s->ops->dkim_rotate(s, account_id, id, selector, private_sealed, public_key, now);
}

int store_dkim_signing_key(struct store *s, int64_t account_id, const char *domain,
			   char selector[STORE_SELECTOR_MAX], char **private_sealed)
{
	return s->ops->dkim_signing_key(s, account_id, domain, selector, private_sealed);
}

int store_master_check(struct store *s, const char *check, store_opens_fn opens, void *arg)
{
	return s->ops->master_check(s, check, opens, arg);
}

int store_user_set_password(struct store *s, int64_t account_id, int64_t id,
			    const char *password_hash, const char *keep_session_hash)
{
	return s->ops->user_set_password(s, account_id, id, password_hash, keep_session_hash);
}
