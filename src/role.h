/* Roles and the permission matrix (DESIGN.md). Pure: no I/O. */
#ifndef POSTERN_ROLE_H
#define POSTERN_ROLE_H

#include <stdbool.h>

enum role { ROLE_ADMIN, ROLE_TECHNICAL, ROLE_ANALYTICS, ROLE_MARKETING, ROLE_COUNT };

enum perm {
	PERM_NONE,		 /* any authenticated user, no account data involved */
	PERM_READ,		 /* read the account's settings, senders, domains, audit log */
	PERM_SENDER_ADD,	 /* add sender email IDs */
	PERM_SENDER_TOGGLE,	 /* enable or disable sender authorization */
	PERM_SENDER_REMOVE,	 /* remove sender email IDs */
	PERM_SENDER_VERIFY,	 /* verify sender email IDs */
	PERM_DOMAIN_MANAGE,	 /* add, check, (de)activate and remove sending domains */
	PERM_USER_MANAGE,	 /* add and remove users, change roles */
	PERM_KEY_MANAGE,	 /* create and revoke API keys */
	PERM_MESSAGE_CANCEL,	 /* cancel messages not sent yet */
	PERM_WEBHOOK_MANAGE,	 /* add, test, enable and remove webhook endpoints */
	PERM_SUPPRESSION_MANAGE, /* add and remove entries of the suppression list */
	/* choose who confirms senders: Admins, owners or both */
	PERM_SENDER_CONFIRMATION,
	PERM_COUNT
};

/* Returns the role named by s ("admin", "technical", "analytics", "marketing"), or -1. */
int role_parse(const char *s);
const char *role_name(enum role r);
/* The one question every handler asks: may a user with this role do this? */
bool role_can(enum role r, enum perm p);
const char *perm_name(enum perm p);

#endif
