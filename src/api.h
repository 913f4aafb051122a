/* The management API: a route table, authentication (session cookie and CSRF), the
 * permission check, JSON in and out, and the one mapping from enum err to an error body. */
#ifndef POSTERN_API_H
#define POSTERN_API_H

#include <cjson/cJSON.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "role.h"
#include "store.h"

struct api_ctx {
	struct store *store;
	const struct config *cfg;
	bool secure_cookies; /* public_url is https */
};

struct api_call {
	struct api_ctx *ctx;
	struct http_request *req;
	cJSON *body;	   /* the parsed JSON body, or NULL when there was none */
	const char *param; /* the {id} segment of the path, when the route has one */
	struct store_session who;
	const char *session_token;
	/* What the handler answers. On ERR_OK: status (200 unless set) and reply (NULL means
	 * no body). On an error: optionally the field at fault and a more precise message. */
	int status;
	cJSON *reply;
	const char *err_field;
	char err_message[256];
	char set_cookie[256];
};

typedef enum err (*api_fn)(struct api_call *c);

/* The http_handler for everything the daemon serves. arg is a struct api_ctx. */
void api_handle(void *arg, struct http_request *req);

/* Handler helpers. */
const char *api_body_string(struct api_call *c, const char *name);
enum err api_invalid(struct api_call *c, const char *field, const char *message);
cJSON *api_user_json(const struct store_user *u);
cJSON *api_account_json(const struct store_account *a);

/* Handlers, one module per resource. */
enum err api_session_create(struct api_call *c);
enum err api_session_get(struct api_call *c);
enum err api_session_delete(struct api_call *c);
enum err api_audit_list(struct api_call *c);

#endif
