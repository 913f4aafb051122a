/* API keys: made from fresh random bytes, stored as a hash with their first characters to
 * recognise them by, and audited in one spelling whoever asks. Over SMTP a key is the AUTH
 * password, or is implied by the network a client connects from. */
#include "keys.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const char network_form[] =
	"Give a network as an IPv4 or IPv6 address with an optional /prefix, like 10.0.0.0/8 "
	"or ::1.";

/* The widest networks a key may list, per family: anyone in them sends as the key without
 * AUTH, and 0.0.0.0/0 or ::/0 would mean anyone at all. */
static const struct {
	int family, shortest;
} widest[] = {{AF_INET, 8}, {AF_INET6, 16}};

static bool too_wide(const struct net *n)
{
	for (size_t i = 0; i < ARRAY_LEN(widest); i++)
		if (n->family == widest[i].family)
			return n->prefix < widest[i].shortest;
	return false;
}

/* One network as a key keeps it: the address in its canonical spelling, and the prefix. */
static void network_text(const struct net *n, char *out, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	if (!inet_ntop(n->family, n->addr, addr, sizeof(addr)))
		addr[0] = '\0';
	snprintf(out, len, "%s/%d", addr, n->prefix);
}

void keys_networks_text(const struct net_list *l, char out[STORE_SMTP_IPS_MAX])
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; l && i < l->n; i++) {
		char one[INET6_ADDRSTRLEN + 8];
		network_text(&l->nets[i], one, sizeof(one));
		if (used + strlen(one) + 1 >= STORE_SMTP_IPS_MAX)
			break; /* keys_network_add keeps lists short enough */
		used += (size_t)snprintf(out + used, STORE_SMTP_IPS_MAX - used, "%s%s",
					 i ? "," : "", one);
	}
}

const char *keys_network_add(struct net_list *l, const char *text)
{
	struct net_list one;
	char bad[64];
	/* net_parse_list splits at commas and spaces: one entry must be one network. */
	if (!text || net_parse_list(text, &one, bad, sizeof(bad)) < 0 || one.n != 1)
		return network_form;
	if (too_wide(&one.nets[0]))
		return "A network may be at most a /8 (IPv4) or a /16 (IPv6): every address in it "
		       "sends as the key without AUTH.";
	if (l->n == NET_MAX)
		return "A key lists at most 32 networks.";
	/* Long IPv6 spellings could outgrow what a key keeps before 32 networks do. */
	char now[STORE_SMTP_IPS_MAX], added[INET6_ADDRSTRLEN + 8];
	keys_networks_text(l, now);
	network_text(&one.nets[0], added, sizeof(added));
	if (strlen(now) + strlen(added) + 1 >= STORE_SMTP_IPS_MAX)
		return "The networks of a key fit in 1000 characters.";
	l->nets[l->n++] = one.nets[0];
	return NULL;
}

int keys_create(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		const struct net_list *smtp_ips, struct store_apikey *out, char text[AUTH_KEY_LEN])
{
	char hash[AUTH_HASH_HEX];

	*out = (struct store_apikey){.account_id = account_id, .created_at = util_now()};
	util_copy(out->name, sizeof(out->name), name);
	keys_networks_text(smtp_ips, out->smtp_ips);
	auth_api_key_new(text);
	auth_token_hash(text, hash);
	memcpy(out->shown, text, AUTH_KEY_SHOWN);
	out->shown[AUTH_KEY_SHOWN] = '\0';
	util_copy(out->scopes, sizeof(out->scopes), "mail.send");
	int rc = store_apikey_create(s, out, hash, out->created_at, &out->id);
	if (rc != STORE_OK)
		return rc;
	if (*out->smtp_ips)
		audit_write(s, who, account_id, "key.created", out->shown, "name=%s smtp_ips=%s",
			    out->name, out->smtp_ips);
	else
		audit_write(s, who, account_id, "key.created", out->shown, "name=%s", out->name);
	return rc;
}

int keys_revoke(struct store *s, const struct actor *who, int64_t account_id, int64_t id)
{
	char target[24];
	int rc = store_apikey_revoke(s, account_id, id, util_now());
	snprintf(target, sizeof(target), "%lld", (long long)id);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "key.revoked", target, NULL);
	return rc;
}

/* The key whose text this is, through the cache; nothing written. */
static enum err find_key(struct policy_cache *pc, const char *text, struct store_apikey *out)
{
	char hash[AUTH_HASH_HEX];
	size_t prefix = strlen(AUTH_KEY_PREFIX);

	if (!text || strncmp(text, AUTH_KEY_PREFIX, prefix) != 0 ||
	    !auth_token_wellformed(text + prefix, AUTH_KEY_LEN - 1 - prefix))
		return ERR_INVALID_API_KEY;
	auth_token_hash(text, hash);
	int rc = policy_cache_apikey(pc, hash, out);
	if (rc == STORE_NOT_FOUND)
		return ERR_INVALID_API_KEY;
	return rc == STORE_OK ? ERR_OK : ERR_STORE_UNAVAILABLE;
}

/* A key used: last_used_at is a hint for the panel; writing it once a minute is enough. */
static void used(struct policy_cache *pc, const struct store_apikey *k)
{
	if (keys_use_due(k))
		keys_touch(pc, k->id);
}

enum err keys_authenticate(struct policy_cache *pc, const char *text, struct store_apikey *out)
{
	enum err e = find_key(pc, text, out);
	if (e == ERR_OK)
		used(pc, out);
	return e;
}

bool keys_has_scope(const struct store_apikey *k, const char *scope)
{
	size_t n = strlen(scope);
	if (!k->scopes[0])
		return strcmp(scope, KEYS_SCOPE_SEND) == 0;
	for (const char *p = k->scopes; *p; p += strcspn(p, ",")) {
		p += *p == ',';
		if (strncmp(p, scope, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* The throttle failed SMTP AUTHs count under: per client, whatever user and key it tries.
 * A hash, so the table holds no address. */
static struct store_throttle smtp_throttle(const char *ip)
{
	struct store_throttle t = {.free = KEYS_SMTP_FREE_FAILURES,
				   .wait = SESSION_FIRST_WAIT,
				   .wait_max = SESSION_LONGEST_WAIT};
	char client[INET6_ADDRSTRLEN + 1], name[INET6_ADDRSTRLEN + 32];
	net_client_net(ip ? ip : "", client, sizeof(client));
	snprintf(name, sizeof(name), "smtp-auth %zu:%s", strlen(client), client);
	auth_token_hash(name, t.key);
	return t;
}

/* A wrong user or key: counted against the client, who may now have to wait. */
static enum err smtp_auth_failed(struct store *s, const struct store_throttle *t,
				 int64_t *retry_after)
{
	int64_t now = util_now();
	int failures;
	if (store_login_attempt(s, t, 1, now, now - SESSION_FORGET, &failures, retry_after) !=
	    STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	return *retry_after > 0 ? ERR_TOO_MANY_ATTEMPTS : ERR_INVALID_CREDENTIALS;
}

enum err keys_smtp_auth(struct store *s, struct policy_cache *pc, const char *user,
			const char *password, const char *ip, struct store_apikey *out,
			int64_t *retry_after)
{
	struct store_throttle t = smtp_throttle(ip);
	*retry_after = 0;
	/* The key is looked up whatever the user, so a wrong user costs what a wrong key does. */
	enum err e = find_key(pc, password, out);
	if (e == ERR_STORE_UNAVAILABLE)
		return e;
	bool user_ok = user && (strcasecmp(user, "apikey") == 0 ||
				(e == ERR_OK && strcmp(user, out->account_name) == 0));
	if (e != ERR_OK || !user_ok)
		return smtp_auth_failed(s, &t, retry_after);
	/* Right credentials: only read whether the client must still wait, so a busy sender's
	 * AUTHs write nothing but the key's last use, once a minute. */
	if (store_login_blocked(s, &t, util_now(), retry_after) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	if (*retry_after > 0)
		return ERR_TOO_MANY_ATTEMPTS;
	used(pc, out);
	return ERR_OK;
}

enum err keys_smtp_ip(struct policy_cache *pc, const char *ip, struct store_apikey *out)
{
	int rc = policy_cache_smtp_ip(pc, ip, out);
	if (rc == STORE_NOT_FOUND)
		return ERR_NOT_FOUND;
	return rc == STORE_OK ? ERR_OK : ERR_STORE_UNAVAILABLE;
}

bool keys_use_due(const struct store_apikey *k)
{
	return util_now() - k->last_used_at >= 60;
}

void keys_touch(struct policy_cache *pc, int64_t id)
{
	policy_cache_apikey_touch(pc, id, util_now());
}

enum err keys_recheck(struct policy_cache *pc, struct store_apikey *key)
{
	int rc = policy_cache_apikey_live(pc, key);
	if (rc == STORE_NOT_FOUND)
		return ERR_INVALID_CREDENTIALS;
	return rc == STORE_OK ? ERR_OK : ERR_STORE_UNAVAILABLE;
}
