/* The permission matrix as one table, so an operator can change who may do what in one
 * place. Rows are actions, bits are roles. */
#include "role.h"

#include <string.h>

#include "util.h"

#define R(role)	  (1u << (role))
#define ALL_ROLES (R(ROLE_ADMIN) | R(ROLE_TECHNICAL) | R(ROLE_ANALYTICS) | R(ROLE_MARKETING))

static const char *const role_names[ROLE_COUNT] = {
	[ROLE_ADMIN] = "admin",
	[ROLE_TECHNICAL] = "technical",
	[ROLE_ANALYTICS] = "analytics",
	[ROLE_MARKETING] = "marketing",
};

static const struct {
	const char *name;
	unsigned roles;
} perm_table[PERM_COUNT] = {
	[PERM_NONE] = {"none", ALL_ROLES},
	[PERM_READ] = {"read", ALL_ROLES},
	[PERM_SENDER_ADD] = {"sender.add", ALL_ROLES},
	[PERM_SENDER_TOGGLE] = {"sender_auth.toggle",
				R(ROLE_ADMIN) | R(ROLE_TECHNICAL) | R(ROLE_ANALYTICS)},
	[PERM_SENDER_REMOVE] = {"sender.remove",
				R(ROLE_ADMIN) | R(ROLE_TECHNICAL) | R(ROLE_ANALYTICS)},
	[PERM_SENDER_VERIFY] = {"sender.verify", R(ROLE_ADMIN)},
	[PERM_DOMAIN_MANAGE] = {"domain.manage", R(ROLE_ADMIN) | R(ROLE_TECHNICAL)},
	[PERM_USER_MANAGE] = {"user.manage", R(ROLE_ADMIN)},
	[PERM_KEY_MANAGE] = {"key.manage", R(ROLE_ADMIN) | R(ROLE_TECHNICAL)},
	[PERM_MESSAGE_CANCEL] = {"message.cancel", R(ROLE_ADMIN) | R(ROLE_TECHNICAL)},
	[PERM_WEBHOOK_MANAGE] = {"webhook.manage", R(ROLE_ADMIN) | R(ROLE_TECHNICAL)},
	[PERM_SUPPRESSION_MANAGE] = {"suppression.manage", R(ROLE_ADMIN) | R(ROLE_TECHNICAL)},
	[PERM_SENDER_CONFIRMATION] = {"sender_confirmation.set", R(ROLE_ADMIN)},
};

int role_parse(const char *s)
{
	for (int r = 0; r < ROLE_COUNT; r++)
		if (strcmp(s, role_names[r]) == 0)
			return r;
	return -1;
}

const char *role_name(enum role r)
{
	return (unsigned)r < ROLE_COUNT ? role_names[r] : "unknown";
}

bool role_can(enum role r, enum perm p)
{
	if ((unsigned)r >= ROLE_COUNT || (unsigned)p >= PERM_COUNT)
		return false;
	return (perm_table[p].roles & R(r)) != 0;
}

const char *perm_name(enum perm p)
{
	return (unsigned)p < PERM_COUNT ? perm_table[p].name : "unknown";
}
