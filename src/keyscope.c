/* A key's scope, asked: the sender and domain lists compared by length first (most entries
 * are passed over without reading them), and the client's address parsed once for the
 * requests of one client in a row. */
#include "keyscope.h"

#include <arpa/inet.h>
#include <string.h>

#include "addr.h"
#include "util.h"

bool keyscope_list_has(const char *list, const char *item)
{
	size_t n = strlen(item);
	for (const char *at = list; *at;) {
		const char *comma = strchr(at, ',');
		size_t len = comma ? (size_t)(comma - at) : strlen(at);
		if (len == n && memcmp(at, item, n) == 0)
			return true;
		if (!comma)
			break;
		at = comma + 1;
	}
	return false;
}

/* The length of each entry of list into lens; false when there are too many or one is
 * too long to note. */
static bool lengths(const char *list, uint8_t *lens, uint8_t *n)
{
	*n = 0;
	for (const char *at = list; *at;) {
		size_t len = strcspn(at, ",");
		if (*n == STORE_KEY_ITEMS_MAX || len > UINT8_MAX)
			return false;
		lens[(*n)++] = (uint8_t)len;
		at += len + (at[len] == ',');
	}
	return true;
}

static uint32_t v4(const uint8_t *a)
{
	return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

/* The IPv4 networks of q->allowed as numbers and masks. */
static void v4_nets(struct store_key_quick *q)
{
	q->nv4 = 0;
	for (size_t i = 0; i < q->allowed.n; i++) {
		const struct net *n = &q->allowed.nets[i];
		if (n->family != AF_INET)
			continue;
		uint32_t mask = n->prefix ? ~(uint32_t)0 << (32 - n->prefix) : 0;
		q->v4_mask[q->nv4] = mask;
		q->v4_net[q->nv4++] = v4(n->addr) & mask;
	}
}

void keyscope_prepare(struct store_apikey *k)
{
	struct store_key_quick *q = &k->quick;
	char bad[64];
	q->ready = lengths(k->senders, q->sender_len, &q->nsenders) &&
		   lengths(k->domains, q->domain_len, &q->ndomains) &&
		   net_parse_list(k->allowed_ips, &q->allowed, bad, sizeof(bad)) == 0;
	if (q->ready)
		v4_nets(q);
}

/* Whether the n entries of list, of the lengths lens, hold item (of length len). */
static bool listed(const char *list, const uint8_t *lens, uint8_t n, const char *item, size_t len)
{
	const char *at = list;
	for (uint8_t i = 0; i < n; at += lens[i++] + 1)
		if (lens[i] == len && at[0] == item[0] && memcmp(at, item, len) == 0)
			return true;
	return false;
}

bool keyscope_sender_allowed(const struct store_apikey *k, const char *address)
{
	if (!*k->senders && !*k->domains)
		return true;
	if (!k->quick.ready)
		return keyscope_list_has(k->senders, address) ||
		       keyscope_list_has(k->domains, addr_domain(address));
	size_t len = strlen(address);
	const char *at = memrchr(address, '@', len);
	const char *domain = at ? at + 1 : address;
	return listed(k->senders, k->quick.sender_len, k->quick.nsenders, address, len) ||
	       listed(k->domains, k->quick.domain_len, k->quick.ndomains, domain,
		      len - (size_t)(domain - address));
}

/* The client's address, parsed. A key with allowed_ips is used from few places, and a
 * connection's requests come from one client, so the last one this thread parsed is kept. */
static bool client(const char *ip, struct net *out)
{
	static __thread char last[INET6_ADDRSTRLEN];
	static __thread struct net parsed;
	if (!ip)
		return false;
	if (*last && strcmp(ip, last) == 0) {
		*out = parsed;
		return true;
	}
	if (!net_address(ip, out))
		return false;
	if (util_copy(last, sizeof(last), ip) < 0)
		last[0] = '\0';
	parsed = *out;
	return true;
}

enum err keyscope_ip_allowed(const struct store_apikey *k, const char *ip)
{
	struct net a;
	if (!*k->allowed_ips)
		return ERR_OK;
	if (!client(ip, &a))
		return ERR_IP_NOT_ALLOWED;
	if (k->quick.ready && a.family == AF_INET) {
		uint32_t ip4 = v4(a.addr);
		for (uint8_t i = 0; i < k->quick.nv4; i++)
			if ((ip4 & k->quick.v4_mask[i]) == k->quick.v4_net[i])
				return ERR_OK;
		return ERR_IP_NOT_ALLOWED;
	}
	if (k->quick.ready)
		return net_holds(&k->quick.allowed, &a) ? ERR_OK : ERR_IP_NOT_ALLOWED;
	/* Text keys_create wrote; were it ever unreadable, the key is refused, not opened. */
	struct net_list l;
	char bad[64];
	if (net_parse_list(k->allowed_ips, &l, bad, sizeof(bad)) < 0)
		return ERR_IP_NOT_ALLOWED;
	return net_holds(&l, &a) ? ERR_OK : ERR_IP_NOT_ALLOWED;
}
