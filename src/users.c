/* Users: every change to who may use an account goes through here, so each is audited
 * once, in one spelling, whichever front end asked. */
#include "users.h"

#include "util.h"

int users_create(struct store *s, const struct actor *who, int64_t account_id, const char *email,
		 const char *password_hash, enum role role, struct store_user *out)
{
	*out = (struct store_user){
		.account_id = account_id, .role = role, .created_at = util_now()};
	util_copy(out->email, sizeof(out->email), email);
	int rc = store_user_create(s, account_id, email, password_hash, role, out->created_at,
				   &out->id);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "user.created", out->email, "new_role=%s",
			    role_name(role));
	return rc;
}

int users_set_role(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		   enum role role, struct store_user *out)
{
	int rc = store_user_get(s, account_id, id, out);
	if (rc == STORE_OK)
		rc = store_user_set_role(s, account_id, id, role);
	if (rc != STORE_OK)
		return rc;
	audit_write(s, who, account_id, "user.role_changed", out->email, "from=%s to=%s",
		    role_name(out->role), role_name(role));
	out->role = role;
	return STORE_OK;
}

int users_remove(struct store *s, const struct actor *who, int64_t account_id, int64_t id)
{
	struct store_user u;
	int rc = store_user_get(s, account_id, id, &u);
	if (rc == STORE_OK)
		rc = store_user_delete(s, account_id, id);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "user.removed", u.email, NULL);
	return rc;
}

int users_set_password(struct store *s, const struct actor *who, int64_t account_id,
		       const char *password_hash, const char *keep_session_hash)
{
	int rc = store_user_set_password(s, account_id, who->user_id, password_hash,
					 keep_session_hash);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "user.password_changed", who->name,
			    "other sessions ended");
	return rc;
}
