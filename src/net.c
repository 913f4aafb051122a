/* Client addresses behind reverse proxies. A proxy appends the address it was reached from
 * to X-Forwarded-For, so only the entries that trusted proxies wrote can be believed: the
 * list is read from the right, past our own proxies, to the first address that is not one. */
#include "net.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static int net_parse(const char *text, struct net *out)
{
	char buf[64];
	if (util_copy(buf, sizeof(buf), text) < 0)
		return -1;
	char *slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	out->family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	int bits = out->family == AF_INET6 ? 128 : 32;
	memset(out->addr, 0, sizeof(out->addr));
	if (inet_pton(out->family, buf, out->addr) != 1)
		return -1;
	out->prefix = bits;
	if (slash) {
		char *end;
		long p = strtol(slash, &end, 10);
		if (!*slash || *end || p < 0 || p > bits)
			return -1;
		out->prefix = (int)p;
	}
	return 0;
}

int net_parse_list(const char *text, struct net_list *out, char *bad, size_t badlen)
{
	char buf[1024];
	out->n = 0;
	if (util_copy(buf, sizeof(buf), text ? text : "") < 0) {
		util_copy(bad, badlen, "(the list is too long)");
		return -1;
	}
	char *save = NULL;
	for (char *w = strtok_r(buf, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		if (out->n == NET_MAX || net_parse(w, &out->nets[out->n]) < 0) {
			util_copy(bad, badlen, w);
			return -1;
		}
		out->n++;
	}
	return 0;
}

static bool inside(const struct net *net, const struct net *a)
{
	if (net->family != a->family)
		return false;
	int full = net->prefix / 8, rest = net->prefix % 8;
	if (memcmp(net->addr, a->addr, (size_t)full) != 0)
		return false;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return !rest || (net->addr[full] & mask) == (a->addr[full] & mask);
}

bool net_loopback(const char *host)
{
	static const struct net_list loopbacks = {
		.nets = {{.family = AF_INET, .addr = {127}, .prefix = 8},
			 {.family = AF_INET6, .addr = {[15] = 1}, .prefix = 128}},
		.n = 2,
	};
	struct net a;
	/* Taken as written: a relay named ::ffff:127.0.0.1 is not called loopback, so a
	 * password goes in clear only to a plain loopback name or address. */
	return strcasecmp(host, "localhost") == 0 ||
	       (!strchr(host, '/') && net_parse(host, &a) == 0 && net_holds(&loopbacks, &a));
}

void net_client_net(const char *ip, char *out, size_t n)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];
	util_copy(out, n, ip);
	if (inet_pton(AF_INET6, ip, &a6) == 1) {
		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text)))
			util_copy(out, n, text);
	}
}

bool net_address(const char *ip, struct net *out)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (!ip || strchr(ip, '/') || net_parse(ip, out) != 0)
		return false;
	/* A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d: it is that IPv4
	 * client, and IPv4 networks must hold it. */
	if (out->family == AF_INET6 && memcmp(out->addr, mapped, sizeof(mapped)) == 0) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->prefix = 32;
	}
	return true;
}

bool net_holds(const struct net_list *l, const struct net *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (inside(&l->nets[i], a))
			return true;
	return false;
}

bool net_contains(const struct net_list *l, const char *ip)
{
	struct net a;
	return net_address(ip, &a) && net_holds(l, &a);
}

/* The entry of list that ends at end (exclusive), trimmed, into out; its start in *start. */
static bool hop_before(const char *list, const char *end, char *out, size_t n, const char **start)
{
	const char *s = end;
	while (s > list && s[-1] != ',')
		s--;
	*start = s;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	const char *e = end;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e == s || (size_t)(e - s) >= n)
		return false;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	struct net probe;
	return !strchr(out, '/') && net_parse(out, &probe) == 0;
}

void net_client(const struct net_list *trusted, const char *peer, const char *forwarded, char *out,
		size_t n)
{
	util_copy(out, n, peer);
	if (!forwarded || !net_contains(trusted, peer))
		return;
	const char *end = forwarded + strlen(forwarded), *start;
	char hop[64];
	while (end > forwarded && hop_before(forwarded, end, hop, sizeof(hop), &start)) {
		util_copy(out, n, hop);
		if (!net_contains(trusted, hop))
			return;
		end = start > forwarded ? start - 1 : forwarded;
	}
}

/* Where an address may not lead a request that a user's URL asks the gateway to make: the
 * machine itself, networks behind it, and ranges that are not hosts on the Internet. */
static const char *const not_public[] = {
	"0.0.0.0/8",	   /* "this network", 0.0.0.0 included */
	"10.0.0.0/8",	   /* private */
	"100.64.0.0/10",   /* shared address space (carrier-grade NAT) */
	"127.0.0.0/8",	   /* loopback */
	"169.254.0.0/16",  /* link-local, cloud metadata services */
	"172.16.0.0/12",   /* private */
	"192.0.0.0/24",	   /* IETF protocol assignments */
	"192.0.2.0/24",	   /* documentation */
	"192.88.99.0/24",  /* 6to4 relay anycast (deprecated) */
	"192.168.0.0/16",  /* private */
	"198.18.0.0/15",   /* benchmarking */
	"198.51.100.0/24", /* documentation */
	"203.0.113.0/24",  /* documentation */
	"224.0.0.0/4",	   /* multicast */
	"240.0.0.0/4",	   /* reserved, broadcast */
	"::/96",	   /* unspecified, loopback, IPv4-compatible (deprecated) */
	"64:ff9b:1::/48",  /* local-use NAT64 */
	"100::/64",	   /* discard-only */
	"2001::/32",	   /* Teredo: the IPv4 inside is obfuscated */
	"2001:db8::/32",   /* documentation */
	"3fff::/20",	   /* documentation */
	"fc00::/7",	   /* unique local */
	"fe80::/10",	   /* link-local */
	"fec0::/10",	   /* site-local (deprecated) */
	"ff00::/8",	   /* multicast */
};

/* IPv6 ranges that carry an IPv4 address at a fixed place: what they reach is that address. */
static const struct {
	const char *net;
	size_t at; /* the offset of the IPv4 address's bytes */
} carries_ipv4[] = {
	{"::ffff:0:0/96", 12},	 /* IPv4-mapped */
	{"::ffff:0:0:0/96", 12}, /* IPv4-translated (SIIT), ::ffff:0:a.b.c.d */
	{"64:ff9b::/96", 12},	 /* NAT64, well-known prefix */
	{"2002::/16", 2},	 /* 6to4 */
};

/* The IPv4 address inside a, when a is of a range that carries one. */
static void unwrap_ipv4(struct net *a)
{
	for (size_t i = 0; a->family == AF_INET6 && i < ARRAY_LEN(carries_ipv4); i++) {
		struct net range;
		if (net_parse(carries_ipv4[i].net, &range) == 0 && inside(&range, a)) {
			uint8_t v4[4];
			memcpy(v4, a->addr + carries_ipv4[i].at, sizeof(v4));
			memset(a->addr, 0, sizeof(a->addr));
			memcpy(a->addr, v4, sizeof(v4));
			a->family = AF_INET;
			a->prefix = 32;
		}
	}
}

bool net_public(const char *ip)
{
	struct net a;
	if (!ip || strchr(ip, '/') || net_parse(ip, &a) < 0)
		return false;
	unwrap_ipv4(&a);
	for (size_t i = 0; i < ARRAY_LEN(not_public); i++) {
		struct net range;
		if (net_parse(not_public[i], &range) < 0 || inside(&range, &a))
			return false;
	}
	return true;
}
