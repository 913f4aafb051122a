/* Routing and the checks every management request goes through, in order: route, body
 * size, authentication (a session with CSRF, or a manage key), permission, JSON; then the
 * handler; then one place that turns its result into a response. Handlers never build
 * error bodies themselves. */
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "gz.h"
#include "html.h"
#include "keys.h"
#include "log.h"
#include "policy_cache.h"
#include "session.h"
#include "util.h"

/* AUTH_SESSION routes take a session or a manage key; AUTH_PERSON ones only a session
 * (a manage key gets 403 interactive_only); AUTH_KEY ones, the send routes, a key. */
enum api_auth { AUTH_NONE, AUTH_SESSION, AUTH_KEY, AUTH_PERSON };

/* How errors are written: the management API's shape, the send dialect's own, or a page
 * for what people open in a browser: the verify links and the panel's files. */
enum api_dialect { DIALECT_MGMT, DIALECT_NETCORE, DIALECT_SENDGRID, DIALECT_HTML, DIALECT_PANEL };

struct api_route {
	const char *method;
	const char *pattern; /* "{id}" matches one path segment */
	api_fn fn;
	enum api_auth auth;
	enum perm perm;
	enum api_dialect dialect;
};

#define MGMT(method, pattern, fn, perm)                                                            \
	{                                                                                          \
		method, pattern, fn, AUTH_SESSION, perm, DIALECT_MGMT                              \
	}
/* A session route no manage key may call: what needs a person (their session, their
 * password) or what the issue keeps with people (the switch, verifying senders). */
#define PERSON(method, pattern, fn, perm)                                                          \
	{                                                                                          \
		method, pattern, fn, AUTH_PERSON, perm, DIALECT_MGMT                               \
	}

static const struct api_route routes[] = {
	{"POST", "/api/session", api_session_create, AUTH_NONE, PERM_NONE, DIALECT_MGMT},
	/* A file, as the panel's are: no JSON body asked for, errors as pages. */
	{"GET", "/api/openapi.json", api_openapi, AUTH_NONE, PERM_NONE, DIALECT_PANEL},
	PERSON("GET", "/api/session", api_session_get, PERM_NONE),
	PERSON("DELETE", "/api/session", api_session_delete, PERM_NONE),
	MGMT("GET", "/api/audit", api_audit_list, PERM_READ),
	MGMT("GET", "/api/settings/sender-auth", api_sender_auth_get, PERM_READ),
	PERSON("PUT", "/api/settings/sender-auth", api_sender_auth_put, PERM_SENDER_TOGGLE),
	MGMT("GET", "/api/senders", api_senders_list, PERM_READ),
	MGMT("POST", "/api/senders", api_senders_add, PERM_SENDER_ADD),
	MGMT("POST", "/api/senders/verification-email", api_senders_resend, PERM_SENDER_ADD),
	/* Before any /api/senders/{id} GET, which would take "preflight" for an id. */
	MGMT("GET", "/api/senders/preflight", api_senders_preflight, PERM_READ),
	PERSON("POST", "/api/senders/{id}/verify", api_sender_verify, PERM_SENDER_VERIFY),
	MGMT("DELETE", "/api/senders/{id}", api_sender_delete, PERM_SENDER_REMOVE),
	MGMT("GET", "/api/settings/sender-confirmation", api_sender_confirmation_get, PERM_READ),
	PERSON("PUT", "/api/settings/sender-confirmation", api_sender_confirmation_put,
	       PERM_SENDER_CONFIRMATION),
	MGMT("POST", "/api/senders/{id}/confirmation-email", api_sender_owner_link,
	     PERM_SENDER_ADD),
	PERSON("PUT", "/api/users/me/password", api_user_password, PERM_NONE),
	MGMT("GET", "/api/users", api_users_list, PERM_USER_MANAGE),
	MGMT("POST", "/api/users", api_users_add, PERM_USER_MANAGE),
	MGMT("PATCH", "/api/users/{id}", api_user_patch, PERM_USER_MANAGE),
	MGMT("DELETE", "/api/users/{id}", api_user_delete, PERM_USER_MANAGE),
	MGMT("GET", "/api/keys", api_keys_list, PERM_KEY_MANAGE),
	MGMT("POST", "/api/keys", api_keys_add, PERM_KEY_MANAGE),
	MGMT("PATCH", "/api/keys/{id}", api_key_patch, PERM_KEY_MANAGE),
	MGMT("DELETE", "/api/keys/{id}", api_key_delete, PERM_KEY_MANAGE),
	MGMT("GET", "/api/drops", api_drops_list, PERM_READ),
	MGMT("GET", "/api/stats", api_stats_get, PERM_READ),
	MGMT("GET", "/api/overview", api_overview_get, PERM_READ),
	MGMT("GET", "/api/domains", api_domains_list, PERM_READ),
	MGMT("POST", "/api/domains", api_domains_add, PERM_DOMAIN_MANAGE),
	MGMT("POST", "/api/domains/{id}/check", api_domain_check, PERM_DOMAIN_MANAGE),
	MGMT("PATCH", "/api/domains/{id}", api_domain_patch, PERM_DOMAIN_MANAGE),
	MGMT("DELETE", "/api/domains/{id}", api_domain_delete, PERM_DOMAIN_MANAGE),
	MGMT("POST", "/api/domains/{id}/dkim/rotate", api_domain_rotate, PERM_DOMAIN_MANAGE),
	MGMT("GET", "/api/messages", api_messages_list, PERM_READ),
	MGMT("GET", "/api/messages/{id}", api_message_get, PERM_READ),
	MGMT("POST", "/api/messages/{id}/cancel", api_message_cancel, PERM_MESSAGE_CANCEL),
	MGMT("GET", "/api/events", api_events_list, PERM_READ),
	MGMT("GET", "/api/reports", api_reports_list, PERM_READ),
	MGMT("GET", "/api/webhooks", api_webhooks_list, PERM_WEBHOOK_MANAGE),
	MGMT("POST", "/api/webhooks", api_webhooks_add, PERM_WEBHOOK_MANAGE),
	MGMT("PATCH", "/api/webhooks/{id}", api_webhook_patch, PERM_WEBHOOK_MANAGE),
	MGMT("DELETE", "/api/webhooks/{id}", api_webhook_delete, PERM_WEBHOOK_MANAGE),
	MGMT("POST", "/api/webhooks/{id}/test", api_webhook_test, PERM_WEBHOOK_MANAGE),
	MGMT("GET", "/api/suppressions", api_suppressions_list, PERM_READ),
	MGMT("POST", "/api/suppressions", api_suppressions_add, PERM_SUPPRESSION_MANAGE),
	MGMT("DELETE", "/api/suppressions/{id}", api_suppression_delete, PERM_SUPPRESSION_MANAGE),
	{"GET", "/verify/{id}", api_verify_show, AUTH_NONE, PERM_NONE, DIALECT_HTML},
	{"POST", "/verify/{id}", api_verify_confirm, AUTH_NONE, PERM_NONE, DIALECT_HTML},
	{"GET", "/confirm/{id}", api_confirm_show, AUTH_NONE, PERM_NONE, DIALECT_HTML},
	{"POST", "/confirm/{id}", api_confirm_use, AUTH_NONE, PERM_NONE, DIALECT_HTML},
	/* Before the panel's "/{id}", which would take them for files. */
	{"GET", "/healthz", api_healthz, AUTH_NONE, PERM_NONE, DIALECT_MGMT},
	{"GET", "/readyz", api_readyz, AUTH_NONE, PERM_NONE, DIALECT_MGMT},
	/* Last: the panel's files, one path segment each. */
	{"GET", "/", api_static, AUTH_NONE, PERM_NONE, DIALECT_PANEL},
	{"GET", "/{id}", api_static, AUTH_NONE, PERM_NONE, DIALECT_PANEL},
	{"POST", "/v5/mail/send", api_send_netcore, AUTH_KEY, PERM_NONE, DIALECT_NETCORE},
	{"POST", "/v6/mail/send", api_send_netcore, AUTH_KEY, PERM_NONE, DIALECT_NETCORE},
	{"POST", "/v3/mail/send", api_send_sendgrid, AUTH_KEY, PERM_NONE, DIALECT_SENDGRID},
};

/* Matches path against pattern; on a match stores the {id} segment (if any) in param,
 * which is left empty otherwise, so no route sees a segment captured by another. */
static bool route_match(const char *pattern, const char *path, char *param, size_t paramlen)
{
	param[0] = '\0';
	while (*pattern && *path) {
		if (strncmp(pattern, "{id}", 4) == 0) {
			size_t n = strcspn(path, "/");
			if (n == 0 || n >= paramlen)
				return false;
			memcpy(param, path, n);
			param[n] = '\0';
			pattern += 4;
			path += n;
			continue;
		}
		if (*pattern != *path)
			break;
		pattern++;
		path++;
	}
	if (*pattern == '\0' && *path == '\0')
		return true;
	param[0] = '\0';
	return false;
}

static bool is_safe_method(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static void respond_json(struct http_request *req, int status, cJSON *json,
			 const char *const *headers)
{
	char *body = NULL;
	size_t len = 0;
	if (json) {
		body = cJSON_PrintUnformatted(json);
		if (!body)
			fatal("cannot serialize JSON");
		len = strlen(body);
		cJSON_Delete(json);
	}
	http_respond(req, status, json ? "application/json" : NULL, body, len, headers);
}

/* Verify pages run no script and only post back to themselves; the panel runs its own
 * scripts and styles and talks to this origin only. Neither may be framed. */
static void respond_page(struct http_request *req, enum api_dialect d, int status, const char *type,
			 char *body, size_t len, const char *const *headers)
{
	const char *csp =
		d == DIALECT_PANEL
			? "default-src 'self'; img-src 'self' data:; object-src 'none'; "
			  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
			: "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
			  "frame-ancestors 'none'";
	const char *h[14] = {"Content-Security-Policy", csp,	      "X-Frame-Options", "DENY",
			     "Referrer-Policy",		"no-referrer"};
	size_t n = 6;
	for (size_t i = 0; headers && headers[i] && n + 2 < ARRAY_LEN(h); i += 2) {
		h[n++] = headers[i];
		h[n++] = headers[i + 1];
	}
	http_respond(req, status, type, body, len, h);
}

static char *error_page(const struct err_info *info, const char *message)
{
	struct html h = {0};
	html_fmt(&h, "<h1>%s</h1><p class=\"note\">Error code: <code>%s</code></p>",
		 message && *message ? message : info->message, info->code);
	return html_page("Postern", &h);
}

/* The one place an enum err becomes an HTTP error response, in the shape the client's
 * API speaks: ours, Netcore's, or SendGrid's (whose clients expect "field" and "help"). */
static void respond_error(struct http_request *req, enum api_dialect d, enum err e,
			  const char *field, const char *message, const char *const *headers)
{
	const struct err_info *info = err_info(e);
	cJSON *root = cJSON_CreateObject();
	cJSON *obj = cJSON_CreateObject();

	if (field && !*field)
		field = NULL;
	cJSON_AddStringToObject(obj, "code", info->code);
	cJSON_AddStringToObject(obj, "message", message && *message ? message : info->message);
	if (field)
		cJSON_AddStringToObject(obj, "field", field);
	switch (d) {
	case DIALECT_MGMT:
		cJSON_AddItemToObject(root, "error", obj);
		break;
	case DIALECT_NETCORE:
		cJSON_AddStringToObject(root, "status", "error");
		cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "error"), obj);
		break;
	case DIALECT_SENDGRID:
		if (!field)
			cJSON_AddNullToObject(obj, "field");
		cJSON_AddNullToObject(obj, "help");
		cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "errors"), obj);
		break;
	case DIALECT_HTML:
	case DIALECT_PANEL: {
		cJSON_Delete(obj);
		cJSON_Delete(root);
		char *page = error_page(info, message);
		respond_page(req, d, info->http_status, "text/html; charset=utf-8", page,
			     strlen(page), headers);
		return;
	}
	}
	respond_json(req, info->http_status, root, headers);
}

static void respond_call(struct api_call *c, enum api_dialect d, enum err e)
{
	const char *headers[7] = {"Cache-Control", "no-store", NULL, NULL, NULL, NULL, NULL};
	int h = 2;
	if (c->reply_header) {
		headers[h++] = c->reply_header;
		headers[h++] = c->reply_header_value;
	}
	if (c->extra_header) {
		headers[h++] = c->extra_header;
		headers[h++] = c->extra_header_value;
	}
	if (e != ERR_OK) {
		cJSON_Delete(c->reply);
		free(c->reply_body);
		respond_error(c->req, d, e, c->err_field, c->err_message, headers);
		return;
	}
	int status = c->status ? c->status : (c->reply || c->reply_body ? 200 : 204);
	if (c->reply_body) {
		respond_page(c->req, d, status, c->reply_type, c->reply_body, c->reply_len,
			     headers);
		return;
	}
	respond_json(c->req, status, c->reply, headers);
}

/* Collects the methods allowed at path, for 405's Allow header. Returns how many. */
static int allowed_methods(const char *path, char *out, size_t outlen)
{
	char param[256];
	int n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
		if (!route_match(routes[i].pattern, path, param, sizeof(param)))
			continue;
		size_t used = strlen(out);
		snprintf(out + used, outlen - used, "%s%s", n ? ", " : "", routes[i].method);
		n++;
	}
	return n;
}

/* The send APIs take the key as "Authorization: Bearer KEY" (both dialects) or in an
 * "api_key" header (Netcore's clients). Only its hash is looked up. */
static enum err authenticate_key(struct api_call *c)
{
	const char *key = http_header(c->req, "api_key");
	const char *authz = http_header(c->req, "Authorization");

	if (!key && authz && strncasecmp(authz, "Bearer ", 7) == 0)
		key = authz + 7 + strspn(authz + 7, " ");
	/* The client as http.c found it: behind a trusted proxy, from X-Forwarded-For. */
	enum err e = keys_authenticate(c->ctx->policies, key, c->req->ip, &c->key);
	if (e == ERR_OK || e == ERR_IP_NOT_ALLOWED)
		c->req->account_id = c->key.account_id;
	return e;
}

/* A send route's key must hold mail.send. */
static enum err authenticate_sender(struct api_call *c)
{
	enum err e = authenticate_key(c);
	if (e != ERR_OK || keys_has_scope(&c->key, KEYS_SCOPE_MAIL_SEND))
		return e;
	util_copy(c->err_message, sizeof(c->err_message),
		  "This API key is not allowed to send mail (it lacks the mail.send scope). "
		  "Send with a key that has it, or add mail.send to this key's scopes.");
	return ERR_FORBIDDEN;
}

/* A refusal of a manage key's call, audited like a user's; message says what to do. */
static enum err key_refused(struct api_call *c, enum err e, const char *why, const char *message)
{
	api_audit(c, "permission.denied", c->req->path, "%s %s %s", c->req->method, c->req->path,
		  why);
	if (message)
		util_copy(c->err_message, sizeof(c->err_message), message);
	return e;
}

/* The caller a manage key stands for: its account, no user, the key's role (ROLE_COUNT,
 * which may do nothing, when it has none; never admin: keys are not given it). */
static void key_caller(struct api_call *c)
{
	int role = c->key.role[0] ? role_parse(c->key.role) : -1;
	c->by_key = true;
	c->who = (struct store_session){0};
	c->who.user.role = role < 0 || role == ROLE_ADMIN ? ROLE_COUNT : (enum role)role;
	c->who.user.account_id = c->key.account_id;
	c->who.account.id = c->key.account_id;
	util_copy(c->who.account.name, sizeof(c->who.account.name), c->key.account_name);
}

/* A management route called with "Authorization: Bearer KEY" and no session cookie: the
 * key must hold manage, the route be one keys may call, and the key's role allow it. No
 * CSRF token: a browser never adds this header on its own. */
static enum err authenticate_manager(struct api_call *c, const struct api_route *r)
{
	char why[80];
	enum err e = authenticate_key(c);
	if (e != ERR_OK)
		return e;
	key_caller(c);
	if (!keys_has_scope(&c->key, KEYS_SCOPE_MANAGE))
		return key_refused(c, ERR_FORBIDDEN, "needs the manage scope",
				   "This API key may only send mail: it lacks the manage scope. "
				   "Use a key with manage, or log in.");
	if (r->auth == AUTH_PERSON)
		return key_refused(c, ERR_INTERACTIVE_ONLY, "is for people only", NULL);
	if (!role_can(c->who.user.role, r->perm)) {
		snprintf(why, sizeof(why), "needs %s", perm_name(r->perm));
		return key_refused(c, ERR_FORBIDDEN, why,
				   "This API key's role does not allow this action. Use a key "
				   "with a role that does, or ask an Admin.");
	}
	return ERR_OK;
}

static bool has_bearer(struct api_call *c)
{
	const char *authz = http_header(c->req, "Authorization");
	return authz && strncasecmp(authz, "Bearer ", 7) == 0;
}

static enum err authenticate(struct api_call *c, const struct api_route *r)
{
	if (r->auth == AUTH_NONE)
		return ERR_OK;
	if (r->auth == AUTH_KEY)
		return authenticate_sender(c);
	c->session_token = http_cookie(c->req, SESSION_COOKIE);
	/* A session cookie wins, so whatever else a browser's request carries, it is judged as
	 * the session's, CSRF token included. */
	if (!c->session_token && has_bearer(c))
		return authenticate_manager(c, r);
	enum err e = session_resume(c->ctx->store, c->session_token, &c->who);
	if (e != ERR_OK)
		return e;
	c->req->account_id = c->who.account.id;
	if (!is_safe_method(c->req->method)) {
		char csrf[AUTH_TOKEN_LEN];
		const char *sent = http_header(c->req, "X-CSRF-Token");
		session_csrf(c->session_token, csrf);
		if (!sent || !auth_equal(sent, csrf))
			return ERR_CSRF_FAILED;
	}
	if (!role_can(c->who.user.role, r->perm)) {
		api_audit(c, "permission.denied", c->req->path, "%s %s needs %s", c->req->method,
			  c->req->path, perm_name(r->perm));
		return ERR_FORBIDDEN;
	}
	return ERR_OK;
}

/* The send endpoints take gzip bodies (Netcore documents it for v6); the bound applies to
 * what they inflate to. Any other encoding would be read as garbage, so it is refused. */
static enum err decode_body(struct api_call *c)
{
	const char *enc = http_header(c->req, "Content-Encoding");
	bool send = c->dialect == DIALECT_NETCORE || c->dialect == DIALECT_SENDGRID;
	char *plain;
	size_t len;

	if (!enc || strcasecmp(enc, "identity") == 0)
		return ERR_OK;
	if (!send || (strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "x-gzip") != 0)) {
		util_copy(c->err_message, sizeof(c->err_message),
			  send ? "Send the body uncompressed or with 'Content-Encoding: gzip'; "
				 "no other encoding is read."
			       : "Send the body uncompressed; only the send endpoints read "
				 "'Content-Encoding: gzip'.");
		return ERR_UNSUPPORTED_MEDIA_TYPE;
	}
	switch (gz_inflate(c->req->body, c->req->body_len, HTTP_BODY_MAX, &plain, &len)) {
	case GZ_OK:
		break;
	case GZ_TOO_LARGE:
		util_copy(c->err_message, sizeof(c->err_message),
			  "The body inflates to more than 10 MiB. Send less at once.");
		return ERR_PAYLOAD_TOO_LARGE;
	case GZ_CORRUPT:
		return api_invalid(c, NULL,
				   "The body is not a whole gzip stream, as 'Content-Encoding: "
				   "gzip' says. Compress all of it, or drop the header.");
	}
	free(c->req->body);
	c->req->body = plain;
	c->req->body_len = len;
	c->req->body_cap = len + 1;
	return ERR_OK;
}

static bool is_json(struct api_call *c)
{
	const char *type = http_header(c->req, "Content-Type");
	return type && strncasecmp(type, "application/json", 16) == 0;
}

/* True when a string value or object key under v is not valid UTF-8 (*key says which).
 * path (of size size, holding v's path in its first n bytes) is left holding the string's
 * path, or for a key the path of the object that holds it, written as the send validator
 * writes them: tags[0], personalizations[0].to[0].name. A path too long to write stops at
 * its longest parent that fits. */
static bool utf8_bad(const cJSON *v, char *path, size_t n, size_t size, bool *key)
{
	if (cJSON_IsString(v))
		return !util_utf8(v->valuestring);
	bool object = cJSON_IsObject(v);
	int i = 0;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		path[n] = '\0';
		if (object && !util_utf8(e->string)) {
			*key = true;
			return true;
		}
		int w = object ? snprintf(path + n, size - n, "%s%s", n ? "." : "", e->string)
			       : snprintf(path + n, size - n, "[%d]", i);
		size_t m = w > 0 && (size_t)w < size - n ? n + (size_t)w : n;
		path[m] = '\0';
		if (utf8_bad(e, path, m, size, key))
			return true;
	}
	path[n] = '\0';
	return false;
}

/* Every string a body holds may be stored, and PostgreSQL refuses text that is not UTF-8,
 * so it is refused here, once for every route and dialect, naming the field. */
static enum err check_utf8(struct api_call *c)
{
	char path[sizeof(c->err_field)] = "";
	char message[sizeof(c->err_message)];
	bool key = false;
	if (!utf8_bad(c->body, path, 0, sizeof(path), &key))
		return ERR_OK;
	if (!key)
		snprintf(message, sizeof(message), "The field '%s' is not valid UTF-8.", path);
	else if (*path)
		snprintf(message, sizeof(message), "A key in '%s' is not valid UTF-8.", path);
	else
		snprintf(message, sizeof(message), "A key of the request body is not valid UTF-8.");
	return api_invalid(c, path, message);
}

/* True when a JSON string in s holds the escape \u0000. cJSON ends its C string there, so
 * the value would be cut short without a word: refused instead. Each backslash escapes the
 * character after it, which is how "\\u0000" (a backslash, then text) is told apart. */
static bool escaped_nul(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
			return true;
		i++;
	}
	return false;
}

static enum err parse_body(struct api_call *c)
{
	if (c->req->body_len == 0)
		return ERR_OK;
	/* A raw NUL is no JSON, yet cJSON would take it and end a string there. */
	if (memchr(c->req->body, '\0', c->req->body_len))
		return ERR_INVALID_JSON;
	c->body = cJSON_ParseWithLength(c->req->body, c->req->body_len);
	if (!c->body)
		return ERR_INVALID_JSON;
	if (!cJSON_IsObject(c->body))
		return api_invalid(c, NULL, "The request body must be a JSON object.");
	if (escaped_nul(c->req->body, c->req->body_len))
		return api_invalid(c, NULL,
				   "A string in the body holds \\u0000 (NUL), which Postern cannot "
				   "store or send. Remove it.");
	return check_utf8(c);
}

void api_handle(void *arg, struct http_request *req)
{
	struct api_call c = {.ctx = arg, .req = req};
	char param[256] = "";
	const struct api_route *route = NULL;

	/* A verify or confirm link's path is its token: whatever the answer, log the route,
	 * not it. */
	if (strncmp(req->path, "/verify/", 8) == 0)
		req->log_path = "/verify/{token}";
	if (strncmp(req->path, "/confirm/", 9) == 0)
		req->log_path = "/confirm/{token}";
	/* The rest of a request framed ambiguously cannot be told apart from the next one, so
	 * the answer closes the connection. */
	if (req->malformed) {
		const char *close[] = {"Connection", "close", NULL};
		respond_error(req, DIALECT_MGMT, ERR_MALFORMED_REQUEST, NULL, req->malformed,
			      close);
		return;
	}
	/* No route's path is anything but UTF-8, and a path may be stored (the audit log). */
	if (!util_utf8(req->path)) {
		respond_error(req, DIALECT_MGMT, ERR_NOT_FOUND, NULL, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(routes) && !route; i++)
		if (strcmp(routes[i].method, req->method) == 0 &&
		    route_match(routes[i].pattern, req->path, param, sizeof(param)))
			route = &routes[i];
	if (!route) {
		char allow[128];
		const char *headers[] = {"Allow", allow, NULL};
		if (allowed_methods(req->path, allow, sizeof(allow)) > 0)
			respond_error(req, DIALECT_MGMT, ERR_METHOD_NOT_ALLOWED, NULL, NULL,
				      headers);
		else
			respond_error(req, DIALECT_MGMT, ERR_NOT_FOUND, NULL, NULL, NULL);
		return;
	}
	if (req->too_large) {
		respond_error(req, route->dialect, ERR_PAYLOAD_TOO_LARGE, NULL, NULL, NULL);
		return;
	}
	c.param = param[0] ? param : NULL;
	c.dialect = route->dialect;
	enum err e = authenticate(&c, route);
	/* Logging in has no CSRF token yet; asking for a JSON body keeps plain cross-site
	 * forms (which cannot send one) from logging a browser into someone else's account.
	 * A GET (the health checks) has no body to ask about. */
	if (e == ERR_OK && route->auth == AUTH_NONE && route->dialect == DIALECT_MGMT &&
	    strcmp(route->method, "GET") != 0 && !is_json(&c))
		e = ERR_UNSUPPORTED_MEDIA_TYPE;
	if (e == ERR_OK)
		e = decode_body(&c);
	/* Pages take form posts, not JSON. */
	if (e == ERR_OK && route->dialect != DIALECT_HTML && route->dialect != DIALECT_PANEL)
		e = parse_body(&c);
	if (e == ERR_OK)
		e = route->fn(&c);
	if (!c.suspended)
		respond_call(&c, route->dialect, e);
	cJSON_Delete(c.body);
}

const char *api_body_string(struct api_call *c, const char *name)
{
	const cJSON *v = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, name) : NULL;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

enum err api_invalid(struct api_call *c, const char *field, const char *message)
{
	util_copy(c->err_field, sizeof(c->err_field), field ? field : "");
	if (message)
		util_copy(c->err_message, sizeof(c->err_message), message);
	else if (field)
		snprintf(c->err_message, sizeof(c->err_message),
			 "The field '%s' is missing or has the wrong type.", field);
	return ERR_INVALID_REQUEST;
}

void api_routes_print(FILE *out)
{
	static const char *const auths[] = {"none", "session", "api_key", "session"};
	for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
		const struct api_route *r = &routes[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "method", r->method);
		cJSON_AddStringToObject(o, "path", r->pattern);
		cJSON_AddStringToObject(o, "auth", auths[r->auth]);
		cJSON_AddStringToObject(o, "permission", perm_name(r->perm));
		cJSON_AddBoolToObject(o, "interactive_only", r->auth == AUTH_PERSON);
		cJSON *roles = cJSON_AddArrayToObject(o, "roles");
		bool people = r->auth == AUTH_SESSION || r->auth == AUTH_PERSON;
		for (int role = 0; people && role < ROLE_COUNT; role++)
			if (role_can((enum role)role, r->perm))
				cJSON_AddItemToArray(roles, cJSON_CreateString(role_name(role)));
		char *line = cJSON_PrintUnformatted(o);
		fprintf(out, "%s\n", line);
		free(line);
		cJSON_Delete(o);
	}
}

void api_respond(struct api_call *c, enum err e)
{
	respond_call(c, (enum api_dialect)c->dialect, e);
}

enum err api_store_err(int rc)
{
	switch (rc) {
	case STORE_OK:
		return ERR_OK;
	case STORE_NOT_FOUND:
		return ERR_NOT_FOUND;
	case STORE_CONFLICT:
		return ERR_ALREADY_EXISTS;
	case STORE_LAST_ADMIN:
		return ERR_LAST_ADMIN;
	case STORE_TOO_SOON:
		return ERR_RATE_LIMITED;
	case STORE_REFUSED: /* the request's own data; retrying it cannot help */
		return ERR_INVALID_REQUEST;
	default:
		return ERR_STORE_UNAVAILABLE;
	}
}

enum err api_limit_in(struct api_call *c, int fallback, int max, int *limit)
{
	const char *q = http_query(c->req, "limit");
	char *end, message[80];
	long n = q ? strtol(q, &end, 10) : fallback;
	if (q && (!*q || *end || n < 1 || n > max)) {
		snprintf(message, sizeof(message), "limit must be a whole number from 1 to %d.",
			 max);
		return api_invalid(c, "limit", message);
	}
	*limit = (int)n;
	return ERR_OK;
}

enum err api_limit(struct api_call *c, int *limit)
{
	return api_limit_in(c, 100, 1000, limit);
}

enum err api_before(struct api_call *c, const char *message, int64_t *before_id)
{
	const char *q = http_query(c->req, "before");
	char *end;
	*before_id = 0;
	if (!q)
		return ERR_OK;
	errno = 0;
	long long n = strtoll(q, &end, 10);
	if (!*q || *end || errno || n < 1)
		return api_invalid(c, "before", message);
	*before_id = (int64_t)n;
	return ERR_OK;
}

enum err api_only_fields(struct api_call *c, const char *const *allowed)
{
	char message[sizeof(c->err_message)];
	for (const cJSON *f = c->body ? c->body->child : NULL; f; f = f->next) {
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], f->string) != 0)
			i++;
		if (allowed[i])
			continue;
		snprintf(message, sizeof(message), "Unknown field '%.100s'.", f->string);
		return api_invalid(c, f->string, message);
	}
	return ERR_OK;
}

int64_t api_param_id(struct api_call *c)
{
	char *end;
	if (!c->param || !isdigit((unsigned char)c->param[0]))
		return -1;
	errno = 0;
	long long id = strtoll(c->param, &end, 10);
	return errno || *end || id <= 0 ? -1 : (int64_t)id;
}

struct actor api_actor(struct api_call *c)
{
	if (c->by_key)
		return audit_key(&c->key, role_name(c->who.user.role), c->req->ip, c->key_actor);
	return audit_user(&c->who.user, c->req->ip);
}

void api_audit(struct api_call *c, const char *action, const char *target, const char *fmt, ...)
{
	struct actor who = api_actor(c);
	va_list ap;
	va_start(ap, fmt);
	audit_vwrite(c->ctx->store, &who, c->who.account.id, action, target, fmt, ap);
	va_end(ap);
}

enum err api_reply_list(struct api_call *c, const char *name, cJSON *list, int rc)
{
	if (rc != STORE_OK) {
		cJSON_Delete(list);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddItemToObject(c->reply, name, list);
	return ERR_OK;
}

void api_page(struct api_call *c, char *html)
{
	c->reply_body = html;
	c->reply_len = strlen(html);
	c->reply_type = "text/html; charset=utf-8";
}

void api_add_time(cJSON *o, const char *name, int64_t t)
{
	char iso[21];
	if (!t) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	util_iso8601(t, iso);
	cJSON_AddStringToObject(o, name, iso);
}

void api_add_text(cJSON *o, const char *name, const char *text)
{
	if (text[0])
		cJSON_AddStringToObject(o, name, text);
	else
		cJSON_AddNullToObject(o, name);
}

cJSON *api_user_json(const struct store_user *u)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)u->id);
	cJSON_AddStringToObject(o, "email", u->email);
	cJSON_AddStringToObject(o, "role", role_name(u->role));
	return o;
}

cJSON *api_account_json(const struct store_account *a)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)a->id);
	cJSON_AddStringToObject(o, "name", a->name);
	return o;
}
