/* Webhook endpoints: the service (each operation checked, scoped to the caller's account and
 * audited), the rule on URLs (http or https, to public addresses only unless the operator
 * allows private ones), and the workers that post events to the endpoints, signed, with
 * retries, each connection pinned to the addresses the rule has just approved. */
#include "webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "util.h"
#include "worker.h"

#define PIN_MAX 8 /* addresses of one host pinned; more are checked but not used */

/* Where a URL points: what the connection is pinned to. */
struct webhook_url {
	char host[256]; /* without an IPv6 literal's brackets */
	int port;
	/* The addresses checked, the only ones to connect to: "192.0.2.1,[2001:db8::1]", as
	 * CURLOPT_RESOLVE takes them. */
	char addrs[PIN_MAX * (INET6_ADDRSTRLEN + 3)];
};

static const char bad_url[] =
	"Give an http or https URL, like https://example.com/hooks/postern (at most 2047 "
	"characters, no user name or password).";
static const char unresolved[] = "The URL's host does not resolve.";
static const char not_public[] =
	"The URL's host is a loopback, private, link-local or multicast address.";

/* Reads url's scheme, host and port through libcurl's own parser, so the URL checked is
 * the URL posted to. NULL, or why the URL cannot receive events. */
static const char *url_parse(const char *url, struct webhook_url *out)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *part = NULL;
	const char *why = NULL;
	CURLU *u = curl_url();

	/* ASCII without spaces or controls: an international host is given as punycode. */
	for (const char *p = url; *p && !why; p++)
		if (*p <= ' ' || *p >= 0x7f)
			why = bad_url;
	if (why || strlen(url) >= STORE_URL_MAX || !u ||
	    curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		why = bad_url;
	else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		why = "Only http and https URLs can receive events.";
	else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_ZONEID, &part, 0) == CURLUE_OK)
		why = bad_url;
	if (!why) {
		/* An IPv6 host comes in brackets; getaddrinfo and CURLOPT_RESOLVE take it bare. */
		size_t len = strlen(host);
		bool bracketed = len > 2 && host[0] == '[' && host[len - 1] == ']';
		if (bracketed)
			host[len - 1] = '\0';
		if (util_copy(out->host, sizeof(out->host), host + bracketed) < 0)
			why = bad_url;
		out->port = atoi(port);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(part);
	curl_url_cleanup(u);
	return why;
}

/* The text of a resolved address. -1 for a family other than IPv4 and IPv6. */
static int addr_text(const struct sockaddr *sa, char *out, size_t n)
{
	const void *a = sa->sa_family == AF_INET
				? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
			: sa->sa_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
				: NULL;
	return a && inet_ntop(sa->sa_family, a, out, (socklen_t)n) ? 0 : -1;
}

/* Adds ip to the pinned list (IPv6 in brackets), while there is room. */
static void pin_add(struct webhook_url *u, const char *ip, int *n)
{
	size_t used = strlen(u->addrs);
	if (*n >= PIN_MAX)
		return;
	snprintf(u->addrs + used, sizeof(u->addrs) - used, strchr(ip, ':') ? "%s[%s]" : "%s%s",
		 *n ? "," : "", ip);
	(*n)++;
}

/* Resolves u's host (an IP literal is itself) and refuses it when any of its addresses is
 * not public, unless allow_private: a name with one private address among public ones
 * could be connected to that one. The addresses go to u->addrs. */
static enum err host_check(struct webhook_url *u, bool allow_private, const char **why)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char ip[INET6_ADDRSTRLEN];
	enum err e = ERR_OK;
	int pinned = 0;

	u->addrs[0] = '\0';
	if (getaddrinfo(u->host, NULL, &hints, &res) != 0 || !res) {
		*why = unresolved;
		return ERR_WEBHOOK_URL_NOT_ALLOWED;
	}
	for (const struct addrinfo *a = res; a && e == ERR_OK; a = a->ai_next) {
		if (addr_text(a->ai_addr, ip, sizeof(ip)) < 0 ||
		    (!allow_private && !net_public(ip))) {
			*why = not_public;
			e = ERR_WEBHOOK_URL_NOT_ALLOWED;
		} else {
			pin_add(u, ip, &pinned);
		}
	}
	freeaddrinfo(res);
	return e;
}

static enum err url_parts(const char *url, bool allow_private, struct webhook_url *out,
			  const char **why)
{
	*why = url ? url_parse(url, out) : bad_url;
	if (*why)
		return ERR_INVALID_REQUEST;
	return host_check(out, allow_private, why);
}

enum err webhook_url_check(const char *url, bool allow_private, char *resolved, size_t n,
			   const char **why)
{
	struct webhook_url u;
	enum err e = url_parts(url, allow_private, &u, why);
	/* The first address, without brackets. */
	if (e == ERR_OK && resolved) {
		const char *first = u.addrs + (u.addrs[0] == '[');
		util_copy(resolved, n, first);
		resolved[strcspn(resolved, "],")] = '\0';
	}
	return e;
}

static void url_shown(const char *url, char *out, size_t n)
{
	util_copy(out, n, url);
	out[strcspn(out, "?#")] = '\0';
}

/* Writes the subscription as the store keeps it: "*" for every type (none given, or all of
 * them), else ",type,type,". SendGrid's format carries message events only, so an endpoint
 * in it takes no other type. NULL, or the field at fault. */
static const char *events_text(const char *const *events, size_t n, bool messages_only, char *out,
			       size_t len)
{
	size_t used = 1, distinct = 0;
	char needle[STORE_EVENT_TYPE_MAX + 3];
	util_copy(out, len, ",");
	for (size_t i = 0; i < n; i++) {
		if (!events[i] || !event_type_known(events[i]) ||
		    (messages_only && !event_is_message(events[i])))
			return "events";
		snprintf(needle, sizeof(needle), ",%s,", events[i]);
		if (strstr(out, needle))
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s,", events[i]);
		distinct++;
	}
	if (distinct == 0 || distinct == event_ntypes)
		util_copy(out, len, "*");
	return NULL;
}

/* Makes the endpoint's signing material: the secret shown once and its sealed copy, or for
 * SendGrid a key pair whose private half is sealed and public half shown. */
static enum err signing_new(const unsigned char master[DKIMKEY_MASTER_LEN], const char *format,
			    struct webhook_new *out, char **sealed)
{
	char *pem = NULL;
	out->secret[0] = '\0';
	out->hook.public_key[0] = '\0';
	if (strcmp(format, "standard") == 0) {
		if (whsig_secret_new(out->secret) < 0)
			return ERR_INTERNAL;
		*sealed = dkimkey_seal(master, out->secret);
	} else {
		if (whsig_ecdsa_new(&pem, out->hook.public_key) < 0)
			return ERR_INTERNAL;
		*sealed = dkimkey_seal(master, pem);
		whsig_free(pem);
	}
	return *sealed ? ERR_OK : ERR_INTERNAL;
}

static enum err store_verdict(int rc)
{
	return rc == STORE_OK	       ? ERR_OK
	       : rc == STORE_NOT_FOUND ? ERR_NOT_FOUND
				       : ERR_STORE_UNAVAILABLE;
}

enum err webhook_create(struct store *s, const struct config *cfg,
			const unsigned char master[DKIMKEY_MASTER_LEN], const struct actor *who,
			int64_t account_id, const char *url, const char *format,
			const char *const *events, size_t nevents, struct webhook_new *out,
			const char **field)
{
	char subscribed[sizeof(out->hook.events)], shown[STORE_URL_MAX];
	const char *why;
	char *sealed = NULL;
	int64_t id;

	format = format ? format : "standard";
	*field = "format";
	if (strcmp(format, "standard") != 0 && strcmp(format, "sendgrid") != 0)
		return ERR_INVALID_REQUEST;
	*field = events_text(events, nevents, strcmp(format, "sendgrid") == 0, subscribed,
			     sizeof(subscribed));
	if (*field)
		return ERR_INVALID_REQUEST;
	*field = "url";
	enum err e = webhook_url_check(url, cfg->webhooks_allow_private, NULL, 0, &why);
	if (e != ERR_OK)
		return e;
	*field = NULL;

	memset(out, 0, sizeof(*out));
	e = signing_new(master, format, out, &sealed);
	if (e == ERR_OK)
		e = store_verdict(store_webhook_create(s, account_id, url, format, subscribed,
						       sealed, out->hook.public_key, util_now(),
						       &id));
	free(sealed);
	if (e == ERR_OK)
		e = store_verdict(store_webhook_get(s, account_id, id, &out->hook));
	if (e != ERR_OK)
		return e;
	url_shown(url, shown, sizeof(shown));
	audit_write(s, who, account_id, "webhook.add", shown, "id=%lld format=%s events=%s",
		    (long long)id, format, subscribed);
	return ERR_OK;
}

/* Reads the endpoint (so its URL can be audited) and applies change to it. */
static enum err act(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		    const char *action, int (*change)(struct store *, int64_t, int64_t, bool),
		    bool flag)
{
	struct store_webhook hook;
	char shown[STORE_URL_MAX];
	enum err e = store_verdict(store_webhook_get(s, account_id, id, &hook));
	if (e == ERR_OK)
		e = store_verdict(change(s, account_id, id, flag));
	if (e != ERR_OK)
		return e;
	url_shown(hook.url, shown, sizeof(shown));
	audit_write(s, who, account_id, action, shown, "id=%lld", (long long)id);
	return ERR_OK;
}

static int delete_one(struct store *s, int64_t account_id, int64_t id, bool unused)
{
	(void)unused;
	return store_webhook_delete(s, account_id, id);
}

enum err webhook_delete(struct store *s, const struct actor *who, int64_t account_id, int64_t id)
{
	return act(s, who, account_id, id, "webhook.remove", delete_one, false);
}

enum err webhook_set_enabled(struct store *s, const struct actor *who, int64_t account_id,
			     int64_t id, bool enabled)
{
	return act(s, who, account_id, id, enabled ? "webhook.enable" : "webhook.disable",
		   store_webhook_set_enabled, enabled);
}

enum err webhook_test(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		      int64_t *event_id)
{
	struct store_webhook hook;
	char shown[STORE_URL_MAX];
	enum err e = store_verdict(store_webhook_get(s, account_id, id, &hook));
	char *data = event_json_num("webhook_id", id, "message", "A test event from Postern.",
				    (const char *)NULL);
	if (e == ERR_OK)
		e = store_verdict(
			store_webhook_test(s, account_id, id, data, util_now(), event_id));
	free(data);
	if (e != ERR_OK)
		return e;
	url_shown(hook.url, shown, sizeof(shown));
	audit_write(s, who, account_id, "webhook.test", shown, "id=%lld event=%lld", (long long)id,
		    (long long)*event_id);
	return ERR_OK;
}

/* The workers. */

/* Events claimed at once: a standard endpoint gets one POST each, a SendGrid one all of them
 * (up to WEBHOOK_BATCH) in one POST. */
#define STANDARD_BATCH 20
/* A POST is bounded by WEBHOOK_TIMEOUT, and a round of standard POSTs stops while there is
 * time left, so a batch ends inside its lease: a delivery comes back to another worker only
 * when its worker died. */
#define LEASE_SECONDS (STANDARD_BATCH * WEBHOOK_TIMEOUT + 60)
#define IDLE_WAIT_MS  1000
#define REPLY_MAX     (64 * 1024) /* of a receiver's answer read before hanging up */
#define LOG_EVERY     60	  /* seconds between two logged failures of one worker */

/* The wait after a failed attempt, by attempt number; the last one repeats. */
static const int64_t backoff[] = {5, 30, 120, 600, 1800, 3600};

/* Deliveries claimed together: due events of one endpoint. */
struct batch {
	struct store_webhook hook;
	char *sealed; /* the endpoint's signing secret, sealed */
	char claim[STORE_CLAIM_LEN];
	struct store_delivery d[WEBHOOK_BATCH];
	size_t n;
	int64_t lease_until;
};

struct poster {
	struct webhooks *w;
	CURL *curl;
	struct worker *thread;
	int64_t logged_at; /* the last failure logged */
	int unlogged;	   /* failures not logged since */
	struct batch batch;
	/* The last URL checked, its verdict and the second it was given: the POSTs of one
	 * batch follow each other within it, and one lookup serves them all. */
	char checked_url[STORE_URL_MAX];
	int64_t checked_at;
	enum err checked;
	const char *checked_why;
	struct webhook_url approved;
};

struct webhooks {
	struct store *store;
	const struct config *cfg;
	unsigned char master[DKIMKEY_MASTER_LEN];
	int n;
	struct poster *posters;
};

/* What one batch came to: the deliveries done, and those to try again (next_at, 0: given
 * up), each with the status of the POST that decided it; and those not posted. */
struct tally {
	int64_t ok_ids[WEBHOOK_BATCH];
	size_t nok;
	char ok_status[32];
	int64_t failed_ids[WEBHOOK_BATCH], next_at[WEBHOOK_BATCH];
	size_t nfailed;
	char failed_status[160];
	int64_t unposted_ids[WEBHOOK_BATCH];
	size_t nunposted;
};

/* When a delivery whose attempt just failed is tried again; 0 once its time is up. */
static int64_t retry_at(const struct store_delivery *d, int64_t now)
{
	if (d->created_at + WEBHOOK_RETRY_FOR <= now)
		return 0;
	size_t step = d->attempts > 0 ? (size_t)d->attempts - 1 : 0;
	return now + backoff[step < ARRAY_LEN(backoff) ? step : ARRAY_LEN(backoff) - 1];
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
	size_t *seen = arg;
	(void)data;
	*seen += size * n;
	return *seen > REPLY_MAX ? 0 : size * n;
}

static CURL *handle_new(void)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)WEBHOOK_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* The connection goes where the check said, never through an environment's proxy. */
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "Postern-Webhooks/1");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	return h;
}

/* The status an endpoint shows for a POST that did not get a 2xx. */
static void failure_text(CURLcode rc, long code, char *out, size_t n)
{
	if (rc == CURLE_OK)
		snprintf(out, n, "HTTP %ld", code);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		util_copy(out, n, "timeout");
	else if (rc == CURLE_COULDNT_CONNECT)
		util_copy(out, n, "connection refused");
	else
		util_copy(out, n, curl_easy_strerror(rc));
}

static enum metrics_webhook post_outcome(CURLcode rc, long code)
{
	if (rc == CURLE_OK)
		return code >= 200 && code < 300 ? METRICS_WEBHOOK_SUCCESS
						 : METRICS_WEBHOOK_HTTP_ERROR;
	return rc == CURLE_OPERATION_TIMEDOUT ? METRICS_WEBHOOK_TIMEOUT
					      : METRICS_WEBHOOK_NETWORK_ERROR;
}

/* Posts body to url, after checking the URL again: the connection is pinned to the
 * addresses just approved, so a name cannot resolve elsewhere between the check and the
 * connection.
 * true on a 2xx; status says what happened either way. */
static bool post(struct poster *p, const char *url, const char *body, struct curl_slist *headers,
		 char *status, size_t n)
{
	struct webhook_url u;
	struct curl_slist *pin = NULL;
	char entry[sizeof(u.host) + sizeof(u.addrs) + 16];
	const char *why;
	unsigned char literal[16];
	size_t seen = 0;
	long code = 0;

	int64_t now = util_now();
	if (p->checked_at != now || strcmp(p->checked_url, url) != 0) {
		p->checked = url_parts(url, p->w->cfg->webhooks_allow_private, &p->approved,
				       &p->checked_why);
		p->checked_at = now;
		util_copy(p->checked_url, sizeof(p->checked_url), url);
	}
	u = p->approved;
	why = p->checked_why;
	if (p->checked != ERR_OK) {
		util_copy(status, n,
			  why == unresolved ? "cannot resolve host" : "webhook_url_not_allowed");
		metrics_webhook(METRICS_WEBHOOK_URL_REFUSED);
		return false;
	}
	/* An IP literal is connected to as it is. */
	bool named = inet_pton(AF_INET, u.host, literal) != 1 &&
		     inet_pton(AF_INET6, u.host, literal) != 1;
	snprintf(entry, sizeof(entry), "%s:%d:%s", u.host, u.port, u.addrs);
	if (named)
		pin = curl_slist_append(NULL, entry);
	curl_easy_setopt(p->curl, CURLOPT_URL, url);
	curl_easy_setopt(p->curl, CURLOPT_RESOLVE, pin);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, &seen);
	CURLcode rc = curl_easy_perform(p->curl);
	curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_setopt(p->curl, CURLOPT_RESOLVE, NULL);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(pin);
	/* An answer longer than we read still has its status. */
	if (rc == CURLE_WRITE_ERROR && seen > REPLY_MAX)
		rc = CURLE_OK;
	metrics_webhook(post_outcome(rc, code));
	log_debug("webhook POST: HTTP %ld (%s)", code, curl_easy_strerror(rc));
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		snprintf(status, n, "%ld", code);
		return true;
	}
	failure_text(rc, code, status, n);
	return false;
}

/* The request headers every POST has, plus n of its own (name, value). */
static struct curl_slist *headers_new(const char *const own[][2], size_t n)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	/* Bodies are small: no waiting for a 100 Continue. */
	h = curl_slist_append(h, "Expect:");
	for (size_t i = 0; i < n; i++) {
		char line[WHSIG_SIGNATURE_MAX + 64];
		snprintf(line, sizeof(line), "%s: %s", own[i][0], own[i][1]);
		h = curl_slist_append(h, line);
	}
	return h;
}

/* One Standard Webhooks POST of one event. */
static bool post_standard(struct poster *p, const struct store_webhook *hook, const char *secret,
			  const struct store_delivery *d, char *status, size_t n)
{
	char id[64], ts[24], sig[WHSIG_SIGNATURE_MAX];
	int64_t now = util_now();
	char *body = event_standard_body(&d->ev);
	bool ok = false;

	event_standard_id(&d->ev, id, sizeof(id));
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	if (!body || whsig_standard_sign(secret, id, now, body, sig) < 0) {
		util_copy(status, n, "cannot sign the event");
	} else {
		const char *const own[][2] = {
			{"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", sig}};
		struct curl_slist *h = headers_new(own, ARRAY_LEN(own));
		ok = post(p, hook->url, body, h, status, n);
		curl_slist_free_all(h);
	}
	free(body);
	return ok;
}

/* One SendGrid-format POST of every claimed event. */
static bool post_sendgrid(struct poster *p, const struct store_webhook *hook, const char *pem,
			  const struct store_delivery *d, size_t nd, char *status, size_t n)
{
	struct store_event_info ev[WEBHOOK_BATCH];
	char ts[24], sig[WHSIG_SIGNATURE_MAX];
	int64_t now = util_now();
	bool ok = false;

	for (size_t i = 0; i < nd; i++)
		ev[i] = d[i].ev;
	char *body = event_sendgrid_body(ev, nd);
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	if (!body || whsig_sendgrid_sign(pem, now, body, sig) < 0) {
		util_copy(status, n, "cannot sign the events");
	} else {
		const char *const own[][2] = {{"X-Twilio-Email-Event-Webhook-Signature", sig},
					      {"X-Twilio-Email-Event-Webhook-Timestamp", ts}};
		struct curl_slist *h = headers_new(own, ARRAY_LEN(own));
		ok = post(p, hook->url, body, h, status, n);
		curl_slist_free_all(h);
	}
	free(body);
	return ok;
}

/* Notes the outcome of one POST for the deliveries d[0..n). */
static void tally_add(struct tally *t, bool ok, const char *status, const struct store_delivery *d,
		      size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		if (ok) {
			t->ok_ids[t->nok++] = d[i].id;
		} else {
			t->failed_ids[t->nfailed] = d[i].id;
			t->next_at[t->nfailed++] = retry_at(&d[i], now);
		}
	}
	if (n)
		util_copy(ok ? t->ok_status : t->failed_status,
			  ok ? sizeof(t->ok_status) : sizeof(t->failed_status), status);
}

/* One line per failed batch: always for an endpoint's first failure since a success, else
 * at most one every LOG_EVERY seconds per worker. The URL is shown without its query,
 * which may hold a token. */
static void log_failure(struct poster *p, const struct store_webhook *hook, const struct tally *t,
			int64_t now)
{
	char shown[STORE_URL_MAX];
	if (hook->failing_since && now - p->logged_at < LOG_EVERY) {
		p->unlogged++;
		return;
	}
	url_shown(hook->url, shown, sizeof(shown));
	log_warn("webhook %lld (%s): %zu event(s) not delivered: %s%s", (long long)hook->id, shown,
		 t->nfailed, t->failed_status,
		 p->unlogged ? " (and earlier failures not logged)" : "");
	p->logged_at = now;
	p->unlogged = 0;
}

/* The store disables an endpoint failing this long at the record of its failure; said once,
 * whatever the rate of other lines. */
static void log_disabled(const struct store_webhook *hook, const struct tally *t, int64_t now)
{
	char shown[STORE_URL_MAX];
	if (t->nok || !hook->failing_since || now - hook->failing_since < WEBHOOK_RETRY_FOR)
		return;
	url_shown(hook->url, shown, sizeof(shown));
	log_warn("webhook %lld (%s) disabled: failing for 24 hours without a success; "
		 "PATCH /api/webhooks/%lld {\"enabled\": true} turns it back on",
		 (long long)hook->id, shown, (long long)hook->id);
}

/* When the endpoint is tried again after a failed POST: when the latest of its deliveries
 * is, or after the first backoff step when all of them gave up. */
static int64_t endpoint_retry_at(const struct tally *t, int64_t now)
{
	int64_t at = 0;
	for (size_t i = 0; i < t->nfailed; i++)
		at = t->next_at[i] > at ? t->next_at[i] : at;
	return at ? at : now + backoff[0];
}

/* Writes the batch's outcome: the successes in one call, then the failures, so the
 * endpoint's last status is its latest POST's; then hands back what was not posted. */
static void record(struct poster *p, const struct batch *b, const struct tally *t)
{
	static const int64_t no_retry[WEBHOOK_BATCH];
	const struct store_webhook *hook = &b->hook;
	int64_t now = util_now();
	struct store_webhook_result r = {.webhook_id = hook->id,
					 .claim = b->claim,
					 .now = now,
					 .disable_after = WEBHOOK_RETRY_FOR};
	int rc = STORE_OK;
	if (t->nok) {
		r.ok = true;
		r.status = t->ok_status;
		rc = store_webhook_done(p->w->store, &r, t->ok_ids, no_retry, t->nok);
	}
	if (t->nfailed) {
		r.ok = false;
		r.status = t->failed_status;
		r.retry_at = endpoint_retry_at(t, now);
		if (store_webhook_done(p->w->store, &r, t->failed_ids, t->next_at, t->nfailed) !=
		    STORE_OK)
			rc = STORE_FAIL;
		log_failure(p, hook, t, now);
		log_disabled(hook, t, now);
	}
	if (t->nunposted && store_webhook_release(p->w->store, hook->id, b->claim, t->unposted_ids,
						  t->nunposted) != STORE_OK)
		rc = STORE_FAIL;
	/* Unrecorded deliveries come back when their lease ends: sent again, never lost. */
	if (rc != STORE_OK)
		log_warn("webhook %lld: could not record a delivery's outcome",
			 (long long)hook->id);
}

/* Posts the claimed deliveries of one standard endpoint, one event per POST, oldest first.
 * A failure ends the round: the endpoint is taken to be down, and the rest wait with the
 * failed one rather than each waiting out its own timeout. Stopping ends it too, after the
 * POST in hand, and so does a lease about to run out; the deliveries not posted then are
 * handed back, due at once and their attempt not counted. */
static void run_standard(struct poster *p, struct worker *self, const struct batch *b,
			 const char *secret, struct tally *t)
{
	char status[160];
	size_t i = 0;
	for (; i < b->n && !worker_stopping(self) &&
	       util_now() < b->lease_until - 2 * WEBHOOK_TIMEOUT;
	     i++) {
		bool ok = post_standard(p, &b->hook, secret, &b->d[i], status, sizeof(status));
		tally_add(t, ok, status, &b->d[i], 1, util_now());
		if (!ok) {
			tally_add(t, false, status, &b->d[i + 1], b->n - i - 1, util_now());
			return;
		}
	}
	for (; i < b->n; i++)
		t->unposted_ids[t->nunposted++] = b->d[i].id;
}

/* Posts a claimed batch and records what became of it. */
static void run(struct poster *p, struct worker *self, struct batch *b)
{
	struct tally t = {.nok = 0};
	char status[160];
	char *secret = b->sealed ? dkimkey_open(p->w->master, b->sealed) : NULL;

	if (!secret) {
		tally_add(&t, false, "cannot open the signing secret", b->d, b->n, util_now());
	} else if (strcmp(b->hook.format, "sendgrid") == 0) {
		bool ok = post_sendgrid(p, &b->hook, secret, b->d, b->n, status, sizeof(status));
		tally_add(&t, ok, status, b->d, b->n, util_now());
	} else {
		run_standard(p, self, b, secret, &t);
	}
	dkimkey_free_pem(secret);
	record(p, b, &t);
	store_deliveries_free(b->d, b->n);
	free(b->sealed);
	b->sealed = NULL;
	b->n = 0;
}

/* Claims due deliveries of the endpoint whose delivery waited longest and posts them. false
 * when none was due. */
static bool deliver_due(struct poster *p, struct worker *self)
{
	struct batch *b = &p->batch;
	int64_t now = util_now();
	b->n = 0;
	b->lease_until = now + LEASE_SECONDS;
	if (store_webhook_claim(p->w->store, now, b->lease_until, STANDARD_BATCH, WEBHOOK_BATCH,
				&b->hook, &b->sealed, b->claim, b->d, &b->n) != STORE_OK ||
	    b->n == 0) {
		free(b->sealed);
		b->sealed = NULL;
		return false;
	}
	run(p, self, b);
	return true;
}

static void work(void *arg, struct worker *self)
{
	struct poster *p = arg;
	while (!worker_stopping(self))
		if (!deliver_due(p, self))
			worker_wait(self, IDLE_WAIT_MS);
}

struct webhooks *webhooks_start(struct store *s, const struct config *cfg,
				const unsigned char master[DKIMKEY_MASTER_LEN], char *err,
				size_t errlen)
{
	struct webhooks *w = xcalloc(1, sizeof(*w));
	int n = cfg->webhooks_workers > 0 ? cfg->webhooks_workers : 0;
	w->store = s;
	w->cfg = cfg;
	memcpy(w->master, master, DKIMKEY_MASTER_LEN);
	/* Events a stop or a crash cut off are posted at once, not after their lease. */
	if (store_deliveries_recover(s) != STORE_OK)
		log_warn("webhooks: could not put interrupted deliveries back in line");
	w->posters = xcalloc((size_t)n + 1, sizeof(*w->posters));
	for (int i = 0; i < n; i++) {
		struct poster *p = &w->posters[i];
		p->w = w;
		p->curl = handle_new();
		if (!p->curl)
			snprintf(err, errlen,
				 "cannot start the webhook workers: no libcurl handle");
		p->thread = p->curl ? worker_start("webhook worker", work, p, err, errlen) : NULL;
		if (!p->thread) {
			curl_easy_cleanup(p->curl);
			webhooks_stop(w);
			return NULL;
		}
		w->n++;
	}
	return w;
}

void webhooks_stop(struct webhooks *w)
{
	if (!w)
		return;
	/* All are told at once, so none claims another batch while an earlier one ends. */
	for (int i = 0; i < w->n; i++)
		worker_ask_stop(w->posters[i].thread);
	for (int i = 0; i < w->n; i++) {
		worker_stop(w->posters[i].thread);
		curl_easy_cleanup(w->posters[i].curl);
	}
	free(w->posters);
	sodium_memzero(w->master, sizeof(w->master));
	free(w);
}
