/* Routing and the checks every management request goes through, in order: route, body
 * size, authentication, CSRF, permission, JSON; then the handler; then one place that
 * turns its result into a response. Handlers never build error bodies themselves. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"
#include "session.h"
#include "util.h"

enum api_auth { AUTH_NONE, AUTH_SESSION };

struct api_route {
	const char *method;
	const char *pattern; /* "{id}" matches one path segment */
	api_fn fn;
	enum api_auth auth;
	enum perm perm;
};

static const struct api_route routes[] = {
    {"POST", "/api/session", api_session_create, AUTH_NONE, PERM_NONE},
    {"GET", "/api/session", api_session_get, AUTH_SESSION, PERM_NONE},
    {"DELETE", "/api/session", api_session_delete, AUTH_SESSION, PERM_NONE},
    {"GET", "/api/audit", api_audit_list, AUTH_SESSION, PERM_READ},
};

/* Matches path against pattern; on a match stores the {id} segment (if any) in param. */
static bool route_match(const char *pattern, const char *path, char *param, size_t paramlen)
{
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
		if (*pattern++ != *path++)
			return false;
	}
	return *pattern == '\0' && *path == '\0';
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

/* The one place an enum err becomes an HTTP error response. */
static void respond_error(struct http_request *req, enum err e, const char *field,
			  const char *message, const char *const *headers)
{
	const struct err_info *info = err_info(e);
	cJSON *root = cJSON_CreateObject();
	cJSON *obj = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(obj, "code", info->code);
	cJSON_AddStringToObject(obj, "message", message && *message ? message : info->message);
	if (field)
		cJSON_AddStringToObject(obj, "field", field);
	respond_json(req, info->http_status, root, headers);
}

static void respond_call(struct api_call *c, enum err e)
{
	const char *headers[5] = {"Cache-Control", "no-store", NULL, NULL, NULL};
	if (c->set_cookie[0]) {
		headers[2] = "Set-Cookie";
		headers[3] = c->set_cookie;
	}
	if (e != ERR_OK) {
		cJSON_Delete(c->reply);
		respond_error(c->req, e, c->err_field, c->err_message, headers);
		return;
	}
	int status = c->status ? c->status : (c->reply ? 200 : 204);
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

static enum err authenticate(struct api_call *c, const struct api_route *r)
{
	if (r->auth == AUTH_NONE)
		return ERR_OK;
	c->session_token = http_cookie(c->req, SESSION_COOKIE);
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
		audit_record(c->ctx->store, c->who.account.id, c->who.user.email,
			     "permission.denied", c->req->path, c->req->ip, "%s %s needs %s",
			     c->req->method, c->req->path, perm_name(r->perm));
		return ERR_FORBIDDEN;
	}
	return ERR_OK;
}

static enum err parse_body(struct api_call *c)
{
	if (c->req->body_len == 0)
		return ERR_OK;
	c->body = cJSON_ParseWithLength(c->req->body, c->req->body_len);
	if (!c->body)
		return ERR_INVALID_JSON;
	if (!cJSON_IsObject(c->body))
		return api_invalid(c, NULL, "The request body must be a JSON object.");
	return ERR_OK;
}

void api_handle(void *arg, struct http_request *req)
{
	struct api_call c = {.ctx = arg, .req = req};
	char param[256] = "";
	const struct api_route *route = NULL;

	for (size_t i = 0; i < ARRAY_LEN(routes) && !route; i++)
		if (strcmp(routes[i].method, req->method) == 0 &&
		    route_match(routes[i].pattern, req->path, param, sizeof(param)))
			route = &routes[i];
	if (!route) {
		char allow[128];
		const char *headers[] = {"Allow", allow, NULL};
		if (allowed_methods(req->path, allow, sizeof(allow)) > 0)
			respond_error(req, ERR_METHOD_NOT_ALLOWED, NULL, NULL, headers);
		else
			respond_error(req, ERR_NOT_FOUND, NULL, NULL, NULL);
		return;
	}
	if (req->too_large) {
		respond_error(req, ERR_PAYLOAD_TOO_LARGE, NULL, NULL, NULL);
		return;
	}
	c.param = param[0] ? param : NULL;
	enum err e = authenticate(&c, route);
	if (e == ERR_OK)
		e = parse_body(&c);
	if (e == ERR_OK)
		e = route->fn(&c);
	respond_call(&c, e);
	cJSON_Delete(c.body);
}

const char *api_body_string(struct api_call *c, const char *name)
{
	const cJSON *v = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, name) : NULL;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

enum err api_invalid(struct api_call *c, const char *field, const char *message)
{
	c->err_field = field;
	if (message)
		util_copy(c->err_message, sizeof(c->err_message), message);
	else if (field)
		snprintf(c->err_message, sizeof(c->err_message),
			 "The field '%s' is missing or has the wrong type.", field);
	return ERR_INVALID_REQUEST;
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
