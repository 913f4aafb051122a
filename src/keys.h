/* API keys, the service: making one (its text shown once, only its hash and first
 * characters kept, with the networks it may send from over SMTP without AUTH and its own
 * scope: senders, domains, allowed_ips, scopes, role), changing and revoking one, each
 * audited; recognising one, over HTTP and SMTP; and what its scope allows. HTTP and the
 * CLI both call it. */
#ifndef POSTERN_KEYS_H
#define POSTERN_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "auth.h"
#include "err.h"
#include "net.h"
#include "policy_cache.h"
#include "session.h"
#include "store.h"

/* Failed SMTP AUTHs from one client before each further one makes it wait (from
 * SESSION_FIRST_WAIT, doubling, up to SESSION_LONGEST_WAIT; forgotten after
 * SESSION_FORGET, like the login's). A client is net_client_net of its address. */
#define KEYS_SMTP_FREE_FAILURES 10

/* Adds one network to l: "10.0.0.0/8", "fd00::/16", or a bare address (/32 or /128); no
 * wider than /8 (IPv4) or /16 (IPv6). NULL, or why it cannot be added, as a sentence for
 * the user. */
const char *keys_network_add(struct net_list *l, const char *text);
/* Writes l as a key keeps it ("10.0.0.0/8,::1/128"), "" for none. */
void keys_networks_text(const struct net_list *l, char out[STORE_SMTP_IPS_MAX]);

/* What a key is asked to be when it is made or changed (issue 19): its name, the networks
 * that send as it without AUTH (smtp_ips), the From addresses and domains it may send from
 * (none: account-wide), the networks it may be used from (allowed_ips; none: anywhere), its
 * scopes and, with manage, its role. Each value is checked as it is given (keys_spec_*:
 * NULL, or why not, as a sentence for the user; the caller names the field or element);
 * what holds only for the whole (a role with manage) is checked by keys_create and
 * keys_update. given says which fields a change carries. */
#define KEYS_LIST_MAX STORE_KEY_ITEMS_MAX /* senders, or domains, one key lists */

enum keys_field {
	KEYS_NAME = 1 << 0,
	KEYS_SMTP_IPS = 1 << 1,
	KEYS_SENDERS = 1 << 2,
	KEYS_DOMAINS = 1 << 3,
	KEYS_ALLOWED_IPS = 1 << 4,
	KEYS_SCOPES = 1 << 5,
	KEYS_ROLE = 1 << 6,
};

enum keys_scope { KEYS_SCOPE_MAIL_SEND = 1 << 0, KEYS_SCOPE_MANAGE = 1 << 1 };

struct keys_spec {
	unsigned given; /* enum keys_field */
	char name[STORE_NAME_MAX];
	struct net_list smtp_ips, allowed_ips;
	char senders[STORE_KEY_LIST_MAX], domains[STORE_KEY_LIST_MAX];
	int nsenders, ndomains;
	unsigned scopes; /* enum keys_scope */
	char role[16];	 /* "" for none */
	/* A manage key making or changing this key (NULL for a person or the CLI): the key
	 * that results may reach no further than its maker (keys_within), or a key limited to
	 * some senders or networks could mint itself an unlimited one. */
	const struct store_apikey *maker;
};

void keys_spec_init(struct keys_spec *sp);
/* Marks a field given, as an empty list or no role does: it is then written as it is. */
void keys_spec_give(struct keys_spec *sp, enum keys_field f);
const char *keys_spec_name(struct keys_spec *sp, const char *name);
const char *keys_spec_smtp_ip(struct keys_spec *sp, const char *network);
/* An address, normalized (addr.c); listed once. */
const char *keys_spec_sender(struct keys_spec *sp, const char *address);
/* A domain, as its lower-case A-label, not a public suffix; listed once. */
const char *keys_spec_domain(struct keys_spec *sp, const char *domain);
/* A network of any width, IPv4 or IPv6 (a bare address is a /32 or /128); listed once. */
const char *keys_spec_allowed_ip(struct keys_spec *sp, const char *network);
/* "mail.send" or "manage", each once. */
const char *keys_spec_scope(struct keys_spec *sp, const char *scope);
/* technical, analytics or marketing; NULL for none. Never admin. */
const char *keys_spec_role(struct keys_spec *sp, const char *role);

/* Why a create or change was refused: the field (as the API names it) and a sentence. */
struct keys_refusal {
	const char *field;
	const char *why;
};

/* Makes a key in the account from sp (its name required), audited as key.created with its
 * scope. out gets the stored key; text, the key itself, to be shown this once. ERR_OK;
 * ERR_INVALID_REQUEST with *no filled; ERR_STORE_UNAVAILABLE. */
enum err keys_create(struct store *s, const struct actor *who, int64_t account_id,
		     const struct keys_spec *sp, struct store_apikey *out, char text[AUTH_KEY_LEN],
		     struct keys_refusal *no);
/* Changes the given fields of the account's live key id, audited as key.updated with what
 * changed; every cache and node sees the change at once (the policy stamp moves). out gets
 * the key as it now is. ERR_OK; ERR_NOT_FOUND (no such live key in the account);
 * ERR_INVALID_REQUEST with *no filled; ERR_STORE_UNAVAILABLE. */
enum err keys_update(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		     const struct keys_spec *sp, struct store_apikey *out, struct keys_refusal *no);
/* A store_rc; STORE_NOT_FOUND when the account has no such live key. */
int keys_revoke(struct store *s, const struct actor *who, int64_t account_id, int64_t id);

/* Recognises the text of an API key sent over HTTP (the Authorization or api_key header)
 * by the client ip: its form, then its hash, looked up through the cache, then whether its
 * allowed_ips hold ip; the key's last use is written at most once a minute. ERR_OK with out
 * filled; ERR_IP_NOT_ALLOWED with out filled (nothing written); ERR_INVALID_API_KEY;
 * ERR_STORE_UNAVAILABLE. */
enum err keys_authenticate(struct policy_cache *pc, const char *text, const char *ip,
			   struct store_apikey *out);

/* Whether k holds scope: sending mail (HTTP send routes, SMTP) or the management API with
 * its role. A key stored before scopes existed holds mail.send. */
bool keys_has_scope(const struct store_apikey *k, enum keys_scope scope);

/* SMTP AUTH: user is "apikey" (as SendGrid's relay expects, any case) or the name of the
 * key's account, password an API key. Failures count toward a per-client lockout like the
 * login's; a success writes only the key's last use, at most once a minute (it reads
 * whether the client must wait). ERR_OK with
 * out filled; ERR_INVALID_CREDENTIALS (535 5.7.8); ERR_IP_NOT_ALLOWED (550 5.7.1: the right
 * key, from outside its allowed_ips; not counted as a failure); ERR_TOO_MANY_ATTEMPTS (421 4.7.0),
 * *retry_after the seconds to wait; ERR_STORE_UNAVAILABLE. */
enum err keys_smtp_auth(struct store *s, struct policy_cache *pc, const char *user,
			const char *password, const char *ip, struct store_apikey *out,
			int64_t *retry_after);

/* SMTP-IP credentials: the live key whose smtp_ips networks hold ip (text), for clients
 * that cannot authenticate, from memory (policy_cache_smtp_ip). When several do, the most
 * specific network wins, then the oldest key (lowest id). Nothing is written: the caller
 * records the use (keys_use_due, keys_touch). ERR_OK with out filled, ERR_NOT_FOUND,
 * ERR_IP_NOT_ALLOWED (the key's allowed_ips do not hold ip), or ERR_STORE_UNAVAILABLE. */
enum err keys_smtp_ip(struct policy_cache *pc, const char *ip, struct store_apikey *out);
/* A key's last use is a hint for the panel, written at most once a minute: whether k's is
 * due, and the write itself (a store write: SMTP's loops hand it to a worker). */
bool keys_use_due(const struct store_apikey *k);
void keys_touch(struct policy_cache *pc, int64_t id);

/* Whether a key an SMTP session found (keys_smtp_auth, keys_smtp_ip) is still live, asked at
 * each MAIL so a revocation ends its use: a memory read until the policy stamp moves, then
 * the key found again by its hash or network, with its scope as it now is (a change takes
 * effect at once). ERR_OK; ERR_INVALID_CREDENTIALS when it was revoked; ERR_IP_NOT_ALLOWED
 * when its allowed_ips no longer hold ip (the client); ERR_STORE_UNAVAILABLE. */
enum err keys_recheck(struct policy_cache *pc, struct store_apikey *key, const char *ip);

#endif
