/* API keys: made from fresh random bytes, stored as a hash with their first characters to
 * recognise them by, scoped to senders, domains, networks and purposes, and audited in one
 * spelling whoever asks. Over SMTP a key is the AUTH password, or is implied by the network
 * a client connects from. */
#include "keys.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "domain.h"
#include "keyscope.h"
#include "role.h"
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

/* One network out of text: net_parse_list splits at commas and spaces, and one entry must
 * be one network. */
static bool one_network(const char *text, struct net *out)
{
	struct net_list one;
	char bad[64];
	if (!text || net_parse_list(text, &one, bad, sizeof(bad)) < 0 || one.n != 1)
		return false;
	*out = one.nets[0];
	return true;
}

static const char *network_append(struct net_list *l, const struct net *n)
{
	if (l->n == NET_MAX)
		return "A key lists at most 32 networks.";
	/* Long IPv6 spellings could outgrow what a key keeps before 32 networks do. */
	char now[STORE_SMTP_IPS_MAX], added[INET6_ADDRSTRLEN + 8];
	keys_networks_text(l, now);
	network_text(n, added, sizeof(added));
	if (strlen(now) + strlen(added) + 1 >= STORE_SMTP_IPS_MAX)
		return "The networks of a key fit in 1000 characters.";
	l->nets[l->n++] = *n;
	return NULL;
}

const char *keys_network_add(struct net_list *l, const char *text)
{
	struct net n;
	if (!one_network(text, &n))
		return network_form;
	if (too_wide(&n))
		return "A network may be at most a /8 (IPv4) or a /16 (IPv6): every address in it "
		       "sends as the key without AUTH.";
	return network_append(l, &n);
}

/* ---- What a key may do ---- */

/* What a list of a key is refused with, per list. */
struct list_kind {
	const char *twice, *many, *too_long;
};

static const struct list_kind senders_kind = {"That address is already listed.",
					      "A key lists at most 100 senders.",
					      "The senders of a key fit in 4095 characters."};
static const struct list_kind domains_kind = {"That domain is already listed.",
					      "A key lists at most 100 domains.",
					      "The domains of a key fit in 4095 characters."};

static const char *list_add(char list[STORE_KEY_LIST_MAX], int *n, const char *item,
			    const struct list_kind *kind)
{
	size_t used = strlen(list);
	if (keyscope_list_has(list, item))
		return kind->twice;
	if (*n == KEYS_LIST_MAX)
		return kind->many;
	if (used + strlen(item) + 2 > STORE_KEY_LIST_MAX)
		return kind->too_long;
	snprintf(list + used, STORE_KEY_LIST_MAX - used, "%s%s", used ? "," : "", item);
	(*n)++;
	return NULL;
}

void keys_spec_init(struct keys_spec *sp)
{
	memset(sp, 0, sizeof(*sp));
}

void keys_spec_give(struct keys_spec *sp, enum keys_field f)
{
	sp->given |= (unsigned)f;
}

const char *keys_spec_name(struct keys_spec *sp, const char *name)
{
	sp->given |= KEYS_NAME;
	if (!name || !*name || strlen(name) >= sizeof(sp->name) || strpbrk(name, "\r\n"))
		return "Give the key a name of 1 to 127 characters.";
	util_copy(sp->name, sizeof(sp->name), name);
	return NULL;
}

const char *keys_spec_smtp_ip(struct keys_spec *sp, const char *network)
{
	sp->given |= KEYS_SMTP_IPS;
	return keys_network_add(&sp->smtp_ips, network);
}

const char *keys_spec_sender(struct keys_spec *sp, const char *address)
{
	char norm[ADDR_MAX];
	const char *why = NULL;
	sp->given |= KEYS_SENDERS;
	if (!address || addr_normalize(address, norm, &why) < 0)
		return why ? why : "Give an email address, like news@example.com.";
	/* The list is kept comma-separated. */
	if (strchr(norm, ','))
		return "An address with a comma cannot be listed on a key.";
	return list_add(sp->senders, &sp->nsenders, norm, &senders_kind);
}

const char *keys_spec_domain(struct keys_spec *sp, const char *domain)
{
	char norm[ADDR_DOMAIN_MAX];
	const char *why = NULL;
	sp->given |= KEYS_DOMAINS;
	if (!domain || addr_domain_normalize(domain, norm, &why) < 0)
		return why ? why : "Give a domain, like example.com.";
	if (domain_is_public_suffix(norm))
		return "That is a public suffix, which no one owns; give your own domain under it, "
		       "like example.com.";
	return list_add(sp->domains, &sp->ndomains, norm, &domains_kind);
}

/* Any width: allowed_ips only narrows where a key may be used from (0.0.0.0/0 alone means
 * any IPv4 client, none over IPv6). */
const char *keys_spec_allowed_ip(struct keys_spec *sp, const char *network)
{
	struct net n;
	char added[INET6_ADDRSTRLEN + 8], had[INET6_ADDRSTRLEN + 8];
	sp->given |= KEYS_ALLOWED_IPS;
	if (!one_network(network, &n))
		return network_form;
	network_text(&n, added, sizeof(added));
	for (size_t i = 0; i < sp->allowed_ips.n; i++) {
		network_text(&sp->allowed_ips.nets[i], had, sizeof(had));
		if (strcmp(had, added) == 0)
			return "That network is already listed.";
	}
	return network_append(&sp->allowed_ips, &n);
}

static const struct {
	const char *name;
	enum keys_scope bit;
} scope_names[] = {{"mail.send", KEYS_SCOPE_MAIL_SEND}, {"manage", KEYS_SCOPE_MANAGE}};

const char *keys_spec_scope(struct keys_spec *sp, const char *scope)
{
	sp->given |= KEYS_SCOPES;
	for (size_t i = 0; scope && i < ARRAY_LEN(scope_names); i++) {
		if (strcmp(scope, scope_names[i].name) != 0)
			continue;
		if (sp->scopes & scope_names[i].bit)
			return "That scope is already listed.";
		sp->scopes |= scope_names[i].bit;
		return NULL;
	}
	return "A scope is \"mail.send\" or \"manage\".";
}

const char *keys_spec_role(struct keys_spec *sp, const char *role)
{
	sp->given |= KEYS_ROLE;
	sp->role[0] = '\0';
	if (!role)
		return NULL;
	int r = role_parse(role);
	if (r == ROLE_ADMIN)
		return "A key never acts as an Admin: give technical, analytics or marketing.";
	if (r < 0)
		return "A role is technical, analytics or marketing.";
	util_copy(sp->role, sizeof(sp->role), role_name((enum role)r));
	return NULL;
}

/* The scopes as a key keeps them, "mail.send,manage" in this order; and back. */
static void scopes_text(unsigned scopes, char out[32])
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(scope_names); i++)
		if (scopes & scope_names[i].bit)
			used += (size_t)snprintf(out + used, 32 - used, "%s%s", used ? "," : "",
						 scope_names[i].name);
}

static unsigned scopes_of(const char *text)
{
	unsigned bits = 0;
	for (size_t i = 0; i < ARRAY_LEN(scope_names); i++)
		if (keyscope_list_has(text, scope_names[i].name))
			bits |= scope_names[i].bit;
	return bits;
}

/* Writes the given fields of sp over k. Scopes without manage drop a role not given with
 * them, so taking manage away needs no second field. */
static void apply(const struct keys_spec *sp, struct store_apikey *k)
{
	unsigned g = sp->given;
	if (g & KEYS_NAME)
		util_copy(k->name, sizeof(k->name), sp->name);
	if (g & KEYS_SMTP_IPS)
		keys_networks_text(&sp->smtp_ips, k->smtp_ips);
	if (g & KEYS_SENDERS)
		util_copy(k->senders, sizeof(k->senders), sp->senders);
	if (g & KEYS_DOMAINS)
		util_copy(k->domains, sizeof(k->domains), sp->domains);
	if (g & KEYS_ALLOWED_IPS)
		keys_networks_text(&sp->allowed_ips, k->allowed_ips);
	if (g & KEYS_SCOPES)
		scopes_text(sp->scopes, k->scopes);
	if (g & KEYS_ROLE)
		util_copy(k->role, sizeof(k->role), sp->role);
	else if ((g & KEYS_SCOPES) && !(sp->scopes & KEYS_SCOPE_MANAGE))
		k->role[0] = '\0';
}

/* What holds only for the key as a whole: some scope, and a role exactly with manage. */
static bool whole_ok(const struct store_apikey *k, struct keys_refusal *no)
{
	unsigned scopes = scopes_of(k->scopes);
	if (!scopes)
		*no = (struct keys_refusal){"scopes", "Give at least one scope: \"mail.send\", "
						      "\"manage\" or both."};
	else if ((scopes & KEYS_SCOPE_MANAGE) && !*k->role)
		*no = (struct keys_refusal){"role", "A key with the manage scope needs a role: "
						    "technical, analytics or marketing."};
	else if (!(scopes & KEYS_SCOPE_MANAGE) && *k->role)
		*no = (struct keys_refusal){"role", "Only a key with the manage scope has a role: "
						    "add \"manage\" to scopes, or leave role out."};
	else
		return true;
	return false;
}

/* True when network n (as net_parse_list makes it) lies inside one of l's networks. */
static bool net_inside(const struct net_list *l, const struct net *n)
{
	for (size_t i = 0; i < l->n; i++) {
		struct net_list one = {.nets = {l->nets[i]}, .n = 1};
		if (l->nets[i].family == n->family && l->nets[i].prefix <= n->prefix &&
		    net_holds(&one, n))
			return true;
	}
	return false;
}

/* Whether each item of the comma-separated list is allowed by ok(m, item). */
static bool each_item(const char *list, const struct store_apikey *m,
		      bool (*ok)(const struct store_apikey *, const char *))
{
	char item[STORE_KEY_LIST_MAX];
	for (const char *p = list; *p; p += *p == ',') {
		size_t n = strcspn(p, ",");
		if (n >= sizeof(item))
			return false;
		memcpy(item, p, n);
		item[n] = '\0';
		if (!ok(m, item))
			return false;
		p += n;
	}
	return true;
}

static bool domain_listed(const struct store_apikey *m, const char *domain)
{
	return keyscope_list_has(m->domains, domain);
}

/* A key a manage key makes or changes reaches no further than the manage key itself: no
 * scope, permission, sender, domain or network it does not have. */
static bool keys_within(const struct store_apikey *m, const struct store_apikey *k,
			struct keys_refusal *no)
{
	unsigned mine = m->scopes[0] ? scopes_of(m->scopes) : KEYS_SCOPE_MAIL_SEND;
	int mrole = m->role[0] ? role_parse(m->role) : -1,
	    krole = k->role[0] ? role_parse(k->role) : -1;
	struct net_list mnets, knets;
	char bad[64];

	if (scopes_of(k->scopes) & ~mine) {
		*no = (struct keys_refusal){"scopes", "An API key may only give a key scopes it "
						      "has itself. Ask a person to do this."};
		return false;
	}
	for (int p = 0; krole >= 0 && p < PERM_COUNT; p++)
		if (role_can((enum role)krole, (enum perm)p) &&
		    (mrole < 0 || !role_can((enum role)mrole, (enum perm)p))) {
			*no = (struct keys_refusal){"role", "An API key may only give a key a role "
							    "whose permissions it has itself."};
			return false;
		}
	bool limited = m->senders[0] || m->domains[0];
	if (limited && ((!k->senders[0] && !k->domains[0]) ||
			!each_item(k->senders, m, keyscope_sender_allowed))) {
		*no = (struct keys_refusal){"senders",
					    "This API key is limited to some senders: "
					    "a key it makes must be limited to them too."};
		return false;
	}
	if (limited && !each_item(k->domains, m, domain_listed)) {
		*no = (struct keys_refusal){"domains", "This API key is limited to some domains: "
						       "a key it makes may list only those."};
		return false;
	}
	if (!m->allowed_ips[0])
		return true;
	bool inside = k->allowed_ips[0] &&
		      net_parse_list(m->allowed_ips, &mnets, bad, sizeof(bad)) == 0 &&
		      net_parse_list(k->allowed_ips, &knets, bad, sizeof(bad)) == 0;
	for (size_t i = 0; inside && i < knets.n; i++)
		inside = net_inside(&mnets, &knets.nets[i]);
	if (!inside)
		*no = (struct keys_refusal){"allowed_ips", "This API key is limited to some "
							   "networks: a key it makes must be "
							   "limited to them too."};
	return inside;
}

/* " field=value" for each of k's fields (or only those that differ from was, when given)
 * that is not its default, for the audit row. */
static void scope_detail(const struct store_apikey *k, const struct store_apikey *was, char *out,
			 size_t n)
{
	const struct {
		const char *name, *now, *before, *fallback;
	} f[] = {
		{"name", k->name, was ? was->name : NULL, NULL},
		{"smtp_ips", k->smtp_ips, was ? was->smtp_ips : NULL, ""},
		{"senders", k->senders, was ? was->senders : NULL, ""},
		{"domains", k->domains, was ? was->domains : NULL, ""},
		{"allowed_ips", k->allowed_ips, was ? was->allowed_ips : NULL, ""},
		{"scopes", k->scopes, was ? was->scopes : NULL, "mail.send"},
		{"role", k->role, was ? was->role : NULL, ""},
	};
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(f) && used < n; i++) {
		bool show = was ? strcmp(f[i].now, f[i].before) != 0
				: !f[i].fallback || strcmp(f[i].now, f[i].fallback) != 0;
		if (!show)
			continue;
		int w = snprintf(out + used, n - used, "%s%s=%s", used ? " " : "", f[i].name,
				 *f[i].now ? f[i].now : "none");
		used = w > 0 ? used + (size_t)w : used;
	}
}

static enum err store_err(int rc)
{
	if (rc == STORE_NOT_FOUND)
		return ERR_NOT_FOUND;
	return rc == STORE_OK ? ERR_OK : ERR_STORE_UNAVAILABLE;
}

enum err keys_create(struct store *s, const struct actor *who, int64_t account_id,
		     const struct keys_spec *sp, struct store_apikey *out, char text[AUTH_KEY_LEN],
		     struct keys_refusal *no)
{
	char hash[AUTH_HASH_HEX], detail[512];

	*out = (struct store_apikey){.account_id = account_id, .created_at = util_now()};
	util_copy(out->scopes, sizeof(out->scopes), "mail.send");
	if (!(sp->given & KEYS_NAME)) {
		*no = (struct keys_refusal){"name", "Give the key a name of 1 to 127 characters."};
		return ERR_INVALID_REQUEST;
	}
	apply(sp, out);
	if (!whole_ok(out, no))
		return ERR_INVALID_REQUEST;
	if (sp->maker && !keys_within(sp->maker, out, no))
		return ERR_FORBIDDEN;
	auth_api_key_new(text);
	auth_token_hash(text, hash);
	memcpy(out->shown, text, AUTH_KEY_SHOWN);
	out->shown[AUTH_KEY_SHOWN] = '\0';
	int rc = store_apikey_create(s, out, hash, out->created_at, &out->id);
	if (rc != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	scope_detail(out, NULL, detail, sizeof(detail));
	audit_write(s, who, account_id, "key.created", out->shown, "%s", detail);
	return ERR_OK;
}

struct find {
	int64_t id;
	struct store_apikey *out;
	bool found;
};

static int find_id(void *arg, const struct store_apikey *k)
{
	struct find *f = arg;
	if (k->id == f->id) {
		*f->out = *k;
		f->found = true;
	}
	return 0;
}

enum err keys_update(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		     const struct keys_spec *sp, struct store_apikey *out, struct keys_refusal *no)
{
	struct store_apikey was;
	char target[24], detail[512];
	struct find f = {.id = id, .out = &was};

	int rc = store_apikey_list(s, account_id, find_id, &f);
	if (rc != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	if (!f.found)
		return ERR_NOT_FOUND;
	*out = was;
	apply(sp, out);
	if (!whole_ok(out, no))
		return ERR_INVALID_REQUEST;
	if (sp->maker && !keys_within(sp->maker, out, no))
		return ERR_FORBIDDEN;
	enum err e = store_err(store_apikey_update(s, out));
	if (e != ERR_OK)
		return e;
	scope_detail(out, &was, detail, sizeof(detail));
	snprintf(target, sizeof(target), "%lld", (long long)id);
	audit_write(s, who, account_id, "key.updated", target, "%s",
		    *detail ? detail : "unchanged");
	return ERR_OK;
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

enum err keys_authenticate(struct policy_cache *pc, const char *text, const char *ip,
			   struct store_apikey *out)
{
	enum err e = find_key(pc, text, out);
	if (e == ERR_OK)
		e = keyscope_ip_allowed(out, ip);
	if (e == ERR_OK)
		used(pc, out);
	return e;
}

bool keys_has_scope(const struct store_apikey *k, enum keys_scope scope)
{
	if (!k->scopes[0])
		return scope == KEYS_SCOPE_MAIL_SEND;
	return (scopes_of(k->scopes) & scope) != 0;
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
	/* The right key from the wrong network is no guess to count: refused, not throttled. */
	e = keyscope_ip_allowed(out, ip);
	if (e == ERR_OK)
		used(pc, out);
	return e;
}

enum err keys_smtp_ip(struct policy_cache *pc, const char *ip, struct store_apikey *out)
{
	int rc = policy_cache_smtp_ip(pc, ip, out);
	if (rc == STORE_NOT_FOUND)
		return ERR_NOT_FOUND;
	return rc == STORE_OK ? keyscope_ip_allowed(out, ip) : ERR_STORE_UNAVAILABLE;
}

bool keys_use_due(const struct store_apikey *k)
{
	return util_now() - k->last_used_at >= 60;
}

void keys_touch(struct policy_cache *pc, int64_t id)
{
	policy_cache_apikey_touch(pc, id, util_now());
}

enum err keys_recheck(struct policy_cache *pc, struct store_apikey *key, const char *ip)
{
	int rc = policy_cache_apikey_live(pc, key);
	if (rc == STORE_NOT_FOUND)
		return ERR_INVALID_CREDENTIALS;
	return rc == STORE_OK ? keyscope_ip_allowed(key, ip) : ERR_STORE_UNAVAILABLE;
}
