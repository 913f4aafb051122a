/* API keys, the service: making one (its text shown once, only its hash and first
 * characters kept, with the networks it may send from over SMTP without AUTH) and revoking
 * one, each audited; and recognising one, over HTTP and SMTP. HTTP and the CLI both call
 * it. */
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

/* Makes a key named name (checked by the caller) in the account, allowed to send over SMTP
 * without AUTH from the networks of smtp_ips (NULL or empty for none; built with
 * keys_network_add). out gets the stored key; text, the key itself, to be shown this once.
 * A store_rc. */
int keys_create(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		const struct net_list *smtp_ips, struct store_apikey *out, char text[AUTH_KEY_LEN]);
/* A store_rc; STORE_NOT_FOUND when the account has no such live key. */
int keys_revoke(struct store *s, const struct actor *who, int64_t account_id, int64_t id);

/* Recognises the text of an API key, wherever it was sent (HTTP's Authorization or api_key
 * header, SMTP's AUTH password): its form, then its hash, looked up through the cache; the
 * key's last use is written at most once a minute. ERR_OK with out filled,
 * ERR_INVALID_API_KEY, or ERR_STORE_UNAVAILABLE. */
enum err keys_authenticate(struct policy_cache *pc, const char *text, struct store_apikey *out);

/* What a key may be used for (its scopes): sending mail (HTTP send routes, SMTP) and the
 * management API with its role. */
#define KEYS_SCOPE_SEND	  "mail.send"
#define KEYS_SCOPE_MANAGE "manage"
/* Whether k holds scope. A key stored before scopes existed holds mail.send. */
bool keys_has_scope(const struct store_apikey *k, const char *scope);

/* SMTP AUTH: user is "apikey" (as SendGrid's relay expects, any case) or the name of the
 * key's account, password an API key. Failures count toward a per-client lockout like the
 * login's; a success writes only the key's last use, at most once a minute (it reads
 * whether the client must wait). ERR_OK with
 * out filled; ERR_INVALID_CREDENTIALS (535 5.7.8); ERR_TOO_MANY_ATTEMPTS (421 4.7.0),
 * *retry_after the seconds to wait; ERR_STORE_UNAVAILABLE. */
enum err keys_smtp_auth(struct store *s, struct policy_cache *pc, const char *user,
			const char *password, const char *ip, struct store_apikey *out,
			int64_t *retry_after);

/* SMTP-IP credentials: the live key whose smtp_ips networks hold ip (text), for clients
 * that cannot authenticate, from memory (policy_cache_smtp_ip). When several do, the most
 * specific network wins, then the oldest key (lowest id). Nothing is written: the caller
 * records the use (keys_use_due, keys_touch). ERR_OK with out filled, ERR_NOT_FOUND, or
 * ERR_STORE_UNAVAILABLE. */
enum err keys_smtp_ip(struct policy_cache *pc, const char *ip, struct store_apikey *out);
/* A key's last use is a hint for the panel, written at most once a minute: whether k's is
 * due, and the write itself (a store write: SMTP's loops hand it to a worker). */
bool keys_use_due(const struct store_apikey *k);
void keys_touch(struct policy_cache *pc, int64_t id);

/* Whether a key an SMTP session found (keys_smtp_auth, keys_smtp_ip) is still live, asked at
 * each MAIL so a revocation ends its use: a memory read until the policy stamp moves, then
 * the key found again by its hash or network. ERR_OK; ERR_INVALID_CREDENTIALS when it was
 * revoked; ERR_STORE_UNAVAILABLE. */
enum err keys_recheck(struct policy_cache *pc, struct store_apikey *key);

#endif
