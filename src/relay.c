/* SMTP through libcurl, or files in an outbox. libcurl reports per-recipient replies and
 * the relay's final answer (with its queue id) only through its debug callback, so that
 * callback follows the dialogue and keeps what Postern records. */
#include "relay.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* What the debug callback learns during one transaction. */
/* Where in the SMTP dialogue a reply came: only a refusal of the recipients or of the
 * message itself is about this message; anything earlier (greeting, EHLO, AUTH, MAIL) is
 * about the relay or its configuration, and waiting may fix it. */
enum stage { STAGE_SESSION, STAGE_MAIL, STAGE_RCPT, STAGE_DATA };

struct dialogue {
	char rcpt[ADDR_MAX];
	bool awaiting_rcpt_reply;
	enum stage stage;
	char last[512];
	char refusal[512]; /* the last 4xx or 5xx reply: libcurl says QUIT after a failure */
	enum stage refusal_stage;
	bool temporary_rcpt; /* some recipient got a 4xx */
	cJSON *rejected;
};

struct relay {
	const struct config *cfg;
	const char *outbox; /* the directory for outbox:DIR, else NULL */
	CURL *curl;
	char url[1200];
	/* Lives as long as the handle: libcurl still calls the debug callback when it says
	 * QUIT at cleanup. */
	struct dialogue dialogue;
};

struct upload {
	const char *data;
	size_t len, pos;
};

static size_t read_upload(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nitems;
	if (n > u->len - u->pos)
		n = u->len - u->pos;
	memcpy(buf, u->data + u->pos, n);
	u->pos += n;
	return n;
}

static void trim_line(char *dst, size_t n, const char *src, size_t len)
{
	while (len && (src[len - 1] == '\r' || src[len - 1] == '\n'))
		len--;
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct dialogue *d = arg;
	(void)h;
	if (type == CURLINFO_HEADER_OUT && size > 9 && strncasecmp(data, "RCPT TO:<", 9) == 0) {
		const char *end = memchr(data + 9, '>', size - 9);
		trim_line(d->rcpt, sizeof(d->rcpt), data + 9, end ? (size_t)(end - data - 9) : 0);
		d->awaiting_rcpt_reply = true;
		d->stage = STAGE_RCPT;
	} else if (type == CURLINFO_HEADER_OUT) {
		if (size >= 10 && strncasecmp(data, "MAIL FROM:", 10) == 0)
			d->stage = STAGE_MAIL;
		else if (size >= 4 && strncasecmp(data, "DATA", 4) == 0)
			d->stage = STAGE_DATA;
		else if (size >= 4 &&
			 (strncasecmp(data, "AUTH", 4) == 0 || strncasecmp(data, "EHLO", 4) == 0))
			d->stage = STAGE_SESSION;
	} else if (type == CURLINFO_HEADER_IN && d->rejected) {
		trim_line(d->last, sizeof(d->last), data, size);
		if (d->last[0] == '4' || d->last[0] == '5') {
			memcpy(d->refusal, d->last, sizeof(d->refusal));
			d->refusal_stage = d->stage;
		}
		if (d->awaiting_rcpt_reply && d->last[0] == '4')
			d->temporary_rcpt = true;
		if (d->awaiting_rcpt_reply && d->last[0] >= '4') {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "email", d->rcpt);
			cJSON_AddStringToObject(r, "reply", d->last);
			cJSON_AddItemToArray(d->rejected, r);
		}
		d->awaiting_rcpt_reply = false;
	}
	return 0;
}

/* The EHLO name: the host of public_url. */
static void helo_name(const struct config *cfg, char *out, size_t n)
{
	const char *host = strstr(cfg->public_url, "://");
	host = host ? host + 3 : "localhost";
	size_t len = strcspn(host, ":/[]");
	snprintf(out, n, "%.*s", (int)(len ? len : 9), len ? host : "localhost");
}

struct relay *relay_new(const struct config *cfg, char *err, size_t errlen)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	if (strncmp(cfg->relay_url, "outbox:", 7) == 0) {
		r->outbox = cfg->relay_url + 7;
		if (access(r->outbox, W_OK) < 0) {
			snprintf(err, errlen, "outbox %s is not writable: %s", r->outbox,
				 strerror(errno));
			free(r);
			return NULL;
		}
		return r;
	}
	char helo[256];
	helo_name(cfg, helo, sizeof(helo));
	const char *rest = strstr(cfg->relay_url, "://") + 3;
	snprintf(r->url, sizeof(r->url), "%.*s/%s",
		 (int)(rest - cfg->relay_url + strcspn(rest, "/")), cfg->relay_url, helo);
	r->curl = curl_easy_init();
	if (!r->curl) {
		snprintf(err, errlen, "cannot initialise libcurl");
		free(r);
		return NULL;
	}
	return r;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	if (r->curl)
		curl_easy_cleanup(r->curl);
	free(r);
}

/* Writes DIR/name atomically: a temporary file, fsync, rename, fsync of the directory. */
static void outbox_write(struct relay *r, const char *name, const char *data, size_t len,
			 struct relay_result *out)
{
	char path[1400], tmp[1400];
	snprintf(path, sizeof(path), "%s/%s", r->outbox, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", r->outbox, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	bool ok = fd >= 0;
	for (size_t done = 0; ok && done < len;) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		ok = n > 0;
		done += ok ? (size_t)n : 0;
	}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	ok = ok && rename(tmp, path) == 0;
	int dir = ok ? open(r->outbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dir >= 0) {
		ok = fsync(dir) == 0;
		close(dir);
	}
	if (ok) {
		out->outcome = RELAY_SENT;
		snprintf(out->reply, sizeof(out->reply), "written to %.400s", path);
		return;
	}
	/* A full or read-only disk may recover: retry later rather than lose the message. */
	out->outcome = RELAY_DEFERRED;
	snprintf(out->reply, sizeof(out->reply), "cannot write %.400s: %s", path, strerror(errno));
	unlink(tmp);
}

/* Credentials never cross the network in clear: with them TLS is required (STARTTLS on
 * smtp://; smtps:// has it from the start) unless the operator allowed plain text to a
 * relay on loopback, which config_check makes sure of. */
static bool tls_required(const struct config *cfg)
{
	return cfg->relay_starttls || (cfg->relay_username[0] && !cfg->relay_plaintext_auth);
}

static void smtp_setup(struct relay *r, struct curl_slist *rcpts, const char *from,
		       struct upload *u, char *errbuf)
{
	CURL *c = r->curl;
	char mail_from[ADDR_MAX + 2];
	snprintf(mail_from, sizeof(mail_from), "<%s>", from);
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
	/* Accept the message for the recipients the relay takes; record the others. */
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_upload);
	curl_easy_setopt(c, CURLOPT_READDATA, u);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u->len);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* the debug callback needs it */
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, &r->dialogue);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	if (r->cfg->relay_username[0]) {
		curl_easy_setopt(c, CURLOPT_USERNAME, r->cfg->relay_username);
		curl_easy_setopt(c, CURLOPT_PASSWORD, r->cfg->relay_password);
	}
	curl_easy_setopt(c, CURLOPT_USE_SSL,
			 tls_required(r->cfg) ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
}

/* Permanent only when the relay refused this message: every recipient (none of them only
 * for now) or the content. A 5xx at the greeting, EHLO, AUTH or MAIL is a relay or
 * configuration problem, and a bad password or no connection may be fixed: retry. */
static enum relay_outcome outcome(CURLcode rc, long code, const struct dialogue *d)
{
	if (rc == CURLE_OK)
		return RELAY_SENT;
	if (code < 500 || rc == CURLE_LOGIN_DENIED)
		return RELAY_DEFERRED;
	if (d->refusal_stage == STAGE_RCPT)
		return d->temporary_rcpt ? RELAY_DEFERRED : RELAY_FAILED;
	return d->refusal_stage == STAGE_DATA ? RELAY_FAILED : RELAY_DEFERRED;
}

static void smtp_send(struct relay *r, const char *from, const char *const *rcpts, int n,
		      const char *data, size_t len, struct relay_result *out)
{
	struct curl_slist *list = NULL;
	struct upload u = {data, len, 0};
	struct dialogue *d = &r->dialogue;
	char errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;

	for (int i = 0; i < n; i++) {
		char rcpt[ADDR_MAX + 2];
		snprintf(rcpt, sizeof(rcpt), "<%s>", rcpts[i]);
		list = curl_slist_append(list, rcpt);
	}
	memset(d, 0, sizeof(*d));
	d->rejected = cJSON_CreateArray();
	smtp_setup(r, list, from, &u, errbuf);
	CURLcode rc = curl_easy_perform(r->curl);
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(list);

	out->code = (int)code;
	out->outcome = outcome(rc, code, d);
	/* The relay's own words when it answered; libcurl's when it could not be reached. */
	if (rc == CURLE_OK && d->last[0])
		util_copy(out->reply, sizeof(out->reply), d->last);
	else if (rc == CURLE_USE_SSL_FAILED)
		snprintf(out->reply, sizeof(out->reply),
			 "TLS required but not available (%s): [relay] username and password "
			 "are only sent over TLS; plaintext_auth = yes allows it for a loopback "
			 "relay",
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
	else if (rc != CURLE_OK && d->refusal[0])
		util_copy(out->reply, sizeof(out->reply), d->refusal);
	else
		snprintf(out->reply, sizeof(out->reply), "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
	if (cJSON_GetArraySize(d->rejected) > 0) {
		char *json = cJSON_PrintUnformatted(d->rejected);
		if (json && util_copy(out->rejected, sizeof(out->rejected), json) < 0)
			util_copy(out->rejected, sizeof(out->rejected), "[]");
		free(json);
	}
	cJSON_Delete(d->rejected);
	d->rejected = NULL;
}

void relay_send(struct relay *r, const char *name, const char *from, const char *const *rcpts,
		int nrcpts, const char *data, size_t len, struct relay_result *out)
{
	memset(out, 0, sizeof(*out));
	double started = util_monotonic();
	if (r->outbox)
		outbox_write(r, name, data, len, out);
	else
		smtp_send(r, from, rcpts, nrcpts, data, len, out);
	double took = util_monotonic() - started;
	metrics_relay_seconds(took);
	log_debug("relay %s: %d recipient(s), %d %s (%.1fms)", name, nrcpts, out->code, out->reply,
		  took * 1000);
}
