/* The DNS adapter: TXT lookups through c-ares, against the configured servers or the system's
 * resolvers. One struct dns per thread; each lookup is synchronous and bounded by the timeout
 * given to dns_new. */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>

enum dns_status {
	DNS_FOUND,     /* at least one TXT record */
	DNS_NOT_FOUND, /* NXDOMAIN, or the name exists without TXT records (NODATA) */
	/* Timeout, SERVFAIL, REFUSED, no server reachable: says nothing about the records. */
	DNS_ERROR,
};

#define DNS_TXT_MAX 8	 /* records kept per name */
#define DNS_TXT_LEN 4096 /* bytes per record, its strings joined */

struct dns_txt {
	enum dns_status status;
	int count;
	/* Each record's character-strings joined, NUL-terminated. */
	char records[DNS_TXT_MAX][DNS_TXT_LEN];
	char error[128]; /* for DNS_ERROR: what happened, e.g. "timeout", "SERVFAIL" */
};

struct dns; /* one c-ares channel; use one per thread */

/* servers: "ip[:port],..." (IPv6 as [addr]:port), or "" for the system resolvers
 * (/etc/resolv.conf). timeout_ms: total per query, tries included. NULL with err on failure. */
struct dns *dns_new(const char *servers, int timeout_ms, char *err, size_t errlen);
void dns_free(struct dns *d);
/* Looks up TXT records of name, synchronously (bounded by the timeout). */
void dns_txt(struct dns *d, const char *name, struct dns_txt *out);

#endif
