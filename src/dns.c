/* TXT lookups through c-ares. Each lookup runs one query to completion on the handle's
 * channel, polling its sockets until the answer arrives or the total timeout is spent, so
 * callers get a plain synchronous answer with a firm bound on the wait. */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Two tries per server: one lost UDP datagram is not yet a failure, and a dead server is
 * still given up on within the timeout. */
#define DNS_TRIES 2

struct dns {
	ares_channel channel;
	int timeout_ms;
};

/* One lookup in flight: what the callback fills in, and why we cancelled it, if we did. */
struct query {
	struct dns_txt *out;
	bool done;
	const char *cancelled; /* the error text for ARES_ECANCELLED */
};

/* c-ares statuses that mean an error, with the short text callers log. The rest fall back
 * to ares_strerror. */
static const struct {
	int status;
	const char *text;
} dns_errors[] = {
	{ARES_ETIMEOUT, "timeout"},
	{ARES_ESERVFAIL, "SERVFAIL"},
	{ARES_EREFUSED, "REFUSED"},
	{ARES_ENOTIMP, "NOTIMP"},
	{ARES_EFORMERR, "FORMERR"},
	{ARES_ECONNREFUSED, "no server reachable (connection refused)"},
	{ARES_EBADRESP, "malformed response"},
	{ARES_EBADNAME, "malformed name"},
	{ARES_ENOMEM, "out of memory"},
};

static pthread_once_t dns_library_once = PTHREAD_ONCE_INIT;
static int dns_library_status = ARES_ENOTINITIALIZED;

static void dns_library_init(void)
{
	dns_library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* c-ares gives each try the configured timeout on the first pass through the servers and
 * doubles it on the second, so n servers and two tries take 3 * n per-try timeouts. */
static int per_try_ms(int timeout_ms, int nservers)
{
	int t = timeout_ms / (3 * nservers);
	return t > 0 ? t : 1;
}

/* One entry of the server list: "ipv4[:port]", "[ipv6]:port", "[ipv6]" or a bare "ipv6".
 * Writes the address without brackets and the port (53 when not given). */
static int parse_server(const char *s, char *addr, size_t addrlen, int *port, bool *v6)
{
	unsigned char bin[sizeof(struct in6_addr)];
	const char *end, *rest;

	if (s[0] == '[') {
		end = strchr(++s, ']');
		if (!end)
			return -1;
		rest = end + 1;
		*v6 = true;
	} else if (strchr(s, ':') != strrchr(s, ':')) {
		end = rest = s + strlen(s); /* two colons or more: a bare IPv6 address, no port */
		*v6 = true;
	} else {
		end = rest = s + strcspn(s, ":");
		*v6 = false;
	}
	size_t n = (size_t)(end - s);
	if (n == 0 || n >= addrlen)
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(*v6 ? AF_INET6 : AF_INET, addr, bin) != 1)
		return -1;
	*port = 53;
	if (!*rest)
		return 0;
	char *after;
	long p = strtol(rest + 1, &after, 10);
	if (rest[0] != ':' || !isdigit((unsigned char)rest[1]) || *after || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

/* c-ares is lenient with its server list ("[::1" passes, port 99999 wraps to 34463), so
 * each entry is checked here and handed on in one form: "ip:port" or "[ip]:port". */
static char *canonical_servers(const char *servers, char *err, size_t errlen)
{
	/* Each entry comes out as at most "[" INET6_ADDRSTRLEN "]:65535,". */
	size_t entries = 1, at = 0;
	for (const char *c = strchr(servers, ','); c; c = strchr(c + 1, ','))
		entries++;
	size_t cap = entries * (INET6_ADDRSTRLEN + 9);
	char *out = xmalloc(cap);

	for (const char *p = servers;; p++) {
		const char *e = p + strcspn(p, ",");
		char entry[80], addr[INET6_ADDRSTRLEN];
		int port;
		bool v6;
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		size_t n = (size_t)(e - p);
		bool ok = n < sizeof(entry);
		if (ok) {
			memcpy(entry, p, n);
			entry[n] = '\0';
			ok = parse_server(entry, addr, sizeof(addr), &port, &v6) == 0;
		}
		if (!ok) {
			snprintf(err, errlen,
				 "dns servers \"%s\": \"%.*s\" is not ip[:port] (IPv6 as "
				 "[addr]:port)",
				 servers, (int)n, p);
			free(out);
			return NULL;
		}
		at += (size_t)snprintf(out + at, cap - at, "%s%s%s%s:%d", at ? "," : "",
				       v6 ? "[" : "", addr, v6 ? "]" : "", port);
		p += strcspn(p, ",");
		if (!*p)
			return out;
	}
}

static int open_channel(struct dns *d, const char *servers, int try_ms, char *err, size_t errlen)
{
	struct ares_options opts;
	memset(&opts, 0, sizeof(opts));
	/* Without NOCHECKRESP, c-ares treats REFUSED and SERVFAIL as a broken server and quietly
	 * tries again until the tries run out; we want the server's answer. */
	opts.flags = ARES_FLAG_NOCHECKRESP;
	opts.timeout = try_ms;
	opts.tries = DNS_TRIES;
	int rc = ares_init_options(&d->channel, &opts,
				   ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot initialise resolver: %s", ares_strerror(rc));
		return -1;
	}
	/* servers is canonical by now; an error here is c-ares's own (memory, say). */
	if (servers[0] && (rc = ares_set_servers_ports_csv(d->channel, servers)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns servers \"%s\": %s", servers, ares_strerror(rc));
		ares_destroy(d->channel);
		return -1;
	}
	return 0;
}

static int count_servers(ares_channel channel)
{
	struct ares_addr_port_node *list = NULL;
	int n = 0;
	if (ares_get_servers_ports(channel, &list) != ARES_SUCCESS)
		return 0;
	for (struct ares_addr_port_node *s = list; s; s = s->next)
		n++;
	ares_free_data(list);
	return n;
}

struct dns *dns_new(const char *servers, int timeout_ms, char *err, size_t errlen)
{
	if (timeout_ms <= 0) {
		snprintf(err, errlen, "dns: timeout must be positive, not %d ms", timeout_ms);
		return NULL;
	}
	pthread_once(&dns_library_once, dns_library_init);
	if (dns_library_status != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot initialise c-ares: %s",
			 ares_strerror(dns_library_status));
		return NULL;
	}
	char *list = NULL; /* NULL: the system's resolvers */
	if (servers && servers[0] && !(list = canonical_servers(servers, err, errlen)))
		return NULL;

	struct dns *d = xcalloc(1, sizeof(*d));
	d->timeout_ms = timeout_ms;
	if (open_channel(d, list ? list : "", per_try_ms(timeout_ms, 1), err, errlen) == -1)
		goto error;
	int n = count_servers(d->channel);
	if (n == 0) {
		snprintf(err, errlen, "dns: no servers configured");
		goto error_channel;
	}
	/* The per-try timeout is fixed when the channel is made, and only now do we know how
	 * many servers share the total: make it again with the right one. */
	if (n > 1) {
		ares_destroy(d->channel);
		if (open_channel(d, list ? list : "", per_try_ms(timeout_ms, n), err, errlen) == -1)
			goto error;
	}
	free(list);
	return d;

error_channel:
	ares_destroy(d->channel);
error:
	free(list);
	free(d);
	return NULL;
}

void dns_free(struct dns *d)
{
	if (!d)
		return;
	ares_destroy(d->channel);
	free(d);
}

static const char *error_text(int status)
{
	for (size_t i = 0; i < ARRAY_LEN(dns_errors); i++)
		if (dns_errors[i].status == status)
			return dns_errors[i].text;
	return ares_strerror(status);
}

/* A record's character-strings follow one another in the list, the first flagged
 * record_start; publishers split values over 255 bytes, so they are joined back here. */
static int parse_txt(const unsigned char *abuf, int alen, struct dns_txt *out)
{
	struct ares_txt_ext *list = NULL;
	size_t len[DNS_TXT_MAX];
	int cur = -1; /* the record being filled; -1 while past DNS_TXT_MAX */

	int rc = ares_parse_txt_reply_ext(abuf, alen, &list);
	if (rc != ARES_SUCCESS)
		return rc;
	for (struct ares_txt_ext *s = list; s; s = s->next) {
		if (s->record_start || out->count == 0) {
			cur = out->count < DNS_TXT_MAX ? out->count++ : -1;
			if (cur >= 0) {
				len[cur] = 0;
				out->records[cur][0] = '\0';
			}
		}
		if (cur < 0)
			continue;
		size_t room = DNS_TXT_LEN - 1 - len[cur];
		size_t n = s->length < room ? s->length : room;
		memcpy(out->records[cur] + len[cur], s->txt, n);
		len[cur] += n;
		out->records[cur][len[cur]] = '\0';
	}
	ares_free_data(list);
	return out->count > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;
	struct dns_txt *out = q->out;
	(void)timeouts;

	q->done = true;
	if (status == ARES_SUCCESS)
		status = parse_txt(abuf, alen, out);
	if (status == ARES_SUCCESS) {
		out->status = DNS_FOUND;
		return;
	}
	out->count = 0;
	if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		out->status = DNS_NOT_FOUND;
		return;
	}
	out->status = DNS_ERROR;
	snprintf(out->error, sizeof(out->error), "%s",
		 status == ARES_ECANCELLED && q->cancelled ? q->cancelled : error_text(status));
}

/* Milliseconds for poll: rounded up, so we never wake just before c-ares's deadline. */
static int timeval_ms(const struct timeval *tv)
{
	return (int)(tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000);
}

/* One round: wait for the channel's sockets or its next timeout, then let c-ares act. */
static int wait_and_process(ares_channel channel, int left_ms)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd fds[ARES_GETSOCK_MAXNUM];
	int n = 0;

	/* ares_getsock and poll rather than ares_fds and select: a daemon's descriptors can
	 * exceed FD_SETSIZE. */
	/* The bits are read as unsigned: c-ares' own macros shift a signed 1 into the sign
	 * bit for the last socket. */
	unsigned bits = (unsigned)ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
	for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short events = 0;
		if (bits & (1u << i))
			events |= POLLIN;
		if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
			events |= POLLOUT;
		if (!events)
			continue;
		fds[n].fd = socks[i];
		fds[n].events = events;
		fds[n].revents = 0;
		n++;
	}

	struct timeval max = {left_ms / 1000, (left_ms % 1000) * 1000}, tv;
	int rc = poll(fds, (nfds_t)n, timeval_ms(ares_timeout(channel, &max, &tv)));
	if (rc < 0)
		return errno == EINTR ? 0 : -1;
	if (rc == 0) {
		ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		short r = fds[i].revents;
		if (!r)
			continue;
		ares_process_fd(channel,
				r & (POLLIN | POLLERR | POLLHUP) ? fds[i].fd : ARES_SOCKET_BAD,
				r & POLLOUT ? fds[i].fd : ARES_SOCKET_BAD);
	}
	return 0;
}

void dns_txt(struct dns *d, const char *name, struct dns_txt *out)
{
	struct query q = {.out = out};

	out->status = DNS_ERROR;
	out->count = 0;
	out->error[0] = '\0';
	if (!name || !name[0]) {
		snprintf(out->error, sizeof(out->error), "empty name");
		return;
	}

	double deadline = util_monotonic() + d->timeout_ms / 1000.0;
	ares_query(d->channel, name, C_IN, T_TXT, on_answer, &q);
	while (!q.done) {
		int left_ms = (int)((deadline - util_monotonic()) * 1000.0);
		/* c-ares's own timeouts normally end the query first; this is the backstop that
		 * keeps the bound whatever the servers do. */
		if (left_ms <= 0)
			q.cancelled = "timeout";
		else if (wait_and_process(d->channel, left_ms) == -1)
			q.cancelled = "poll failed";
		if (q.cancelled && !q.done) {
			ares_cancel(d->channel); /* runs on_answer with ARES_ECANCELLED */
			break;
		}
	}
	if (!q.done) /* c-ares had already dropped the query: still say why */
		snprintf(out->error, sizeof(out->error), "%s", q.cancelled);
}
