/* Client addresses behind reverse proxies: lists of networks (IPv4 or IPv6, with an
 * optional /prefix) and the rule that picks the client out of X-Forwarded-For. Pure. */
#ifndef POSTERN_NET_H
#define POSTERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX 32 /* networks in one list */

struct net {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix; /* bits */
};

struct net_list {
	struct net nets[NET_MAX];
	size_t n;
};

/* Parses "127.0.0.1, 10.0.0.0/8 ::1" (commas or spaces between). 0, or -1 with the entry
 * at fault copied to bad. An empty text is an empty list. */
int net_parse_list(const char *text, struct net_list *out, char *bad, size_t badlen);
/* True when ip (text) is an address inside one of the list's networks. */
bool net_contains(const struct net_list *l, const char *ip);
/* ip (text, an address without /prefix) as a /32 or /128 network; false when it is none.
 * With net_holds, for a caller that asks several lists about one address. */
bool net_address(const char *ip, struct net *out);
/* True when the address a (as net_address makes it) is inside one of the list's networks. */
bool net_holds(const struct net_list *l, const struct net *a);
/* True for an address that never leaves the machine: 127.0.0.0/8, ::1, or "localhost". */
bool net_loopback(const char *host);
/* True when ip (text) is a public unicast address that a webhook may be sent to: false for
 * loopback, unspecified, private, shared, link-local, multicast, reserved, documentation and
 * benchmark ranges, and for anything that is not an address. An IPv6 address that carries an
 * IPv4 one (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by that IPv4. */
bool net_public(const char *ip);
/* What one client is counted as (written to out, of n bytes): an IPv4 address as it is, an
 * IPv6 address as its /64, since one host is commonly handed a whole /64 and could
 * otherwise come from a fresh address each time. */
void net_client_net(const char *ip, char *out, size_t n);
/* The client of a request that peer (text) passed on with forwarded (the X-Forwarded-For
 * value, NULL when absent): when peer is a trusted proxy, the rightmost address in
 * forwarded that is not itself a trusted proxy (the leftmost when all are); else peer.
 * A malformed entry ends the walk at the hop before it. Writes the client to out. */
void net_client(const struct net_list *trusted, const char *peer, const char *forwarded, char *out,
		size_t n);

#endif
