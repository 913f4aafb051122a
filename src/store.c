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

int store_account_by_name(struct store *s, const char *name, struct store_account *out)
{
	return s->ops->account_by_name(s, name, out);
}

int store_user_create(struct store *s, int64_t account_id, const char *email,
		      const char *password_hash, enum role role, int64_t now, int64_t *id)
{
	return s->ops->user_create(s, account_id, email, password_hash, role, now, id);
}

int store_user_by_email(struct store *s, const char *email, struct store_user *out)
{
	return s->ops->user_by_email(s, email, out);
}

int store_login_failures(struct store *s, int64_t user_id, int64_t since, int *count)
{
	return s->ops->login_failures(s, user_id, since, count);
}

int store_login_failure_add(struct store *s, int64_t user_id, int64_t at)
{
	return s->ops->login_failure_add(s, user_id, at);
}

int store_login_failures_clear(struct store *s, int64_t user_id)
{
	return s->ops->login_failures_clear(s, user_id);
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
