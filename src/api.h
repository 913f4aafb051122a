/* The management API: a route table, authentication (session cookie and CSRF, or a manage
 * key), the permission check, JSON in and out, and the one mapping from enum err to an
 * error body. */
#ifndef POSTERN_API_H
#define POSTERN_API_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "audit.h"
#include "config.h"
#include "dkimkey.h"
#include "drops.h"
#include "err.h"
#include "http.h"
#include "policy_cache.h"
#include "queue.h"
#include "role.h"
#include "store.h"

struct api_ctx {
	struct store *store;
	const struct config *cfg;
	struct policy_cache *policies;
	struct drops *drops;
	struct queue *queue;
	unsigned char master_key[DKIMKEY_MASTER_LEN]; /* seals DKIM private keys */
	bool secure_cookies;			      /* public_url is https */
};

struct api_call {
	struct api_ctx *ctx;
	struct http_request *req;
	int dialect;		  /* how errors are written; set by the router */
	bool suspended;		  /* the handler parked the request and will answer later */
	cJSON *body;		  /* the parsed JSON body, or NULL when there was none */
	const char *param;	  /* the {id} segment of the path, when the route has one */
	struct store_session who; /* routes behind a session, or a manage key's account */
	const char *session_token;
	struct store_apikey key; /* routes behind an API key */
	/* A management route called with a manage key instead of a session: who.user is then
	 * empty (id 0) but for the key's role, and the key is the actor audit rows name. */
	bool by_key;
	char key_actor[AUDIT_KEY_NAME_MAX];
	/* What the handler answers. On ERR_OK: status (200 unless set) and reply (NULL means
	 * no body). On an error: optionally the field at fault and a more precise message. */
	int status;
	cJSON *reply;
	char *reply_body; /* a page or file instead of JSON (malloc'd) */
	size_t reply_len;
	const char *reply_type;
	char err_field[160];
	char err_message[256];
	const char *reply_header; /* one extra response header, e.g. Set-Cookie */
	char reply_header_value[256];
	const char *extra_header; /* and a second, e.g. X-Postern-Policy beside X-Message-Id */
	char extra_header_value[128];
};

typedef enum err (*api_fn)(struct api_call *c);

/* The http_handler for everything the daemon serves. arg is a struct api_ctx. */
void api_handle(void *arg, struct http_request *req);
/* Writes the route table as JSON lines (method, path, auth, the roles allowed), for tests
 * that must cover every route and for operators. */
void api_routes_print(FILE *out);

/* Answers a call (used directly only by handlers that suspended their request). */
void api_respond(struct api_call *c, enum err e);

/* Handler helpers. */
const char *api_body_string(struct api_call *c, const char *name);
enum err api_invalid(struct api_call *c, const char *field, const char *message);
/* Maps a store result to the error a handler returns (not found, conflict, ...). */
enum err api_store_err(int rc);
/* Reads ?limit= (1 to 1000, default 100); 400 naming "limit" when malformed. */
enum err api_limit(struct api_call *c, int *limit);
/* The same from 1 to max, fallback when absent. */
enum err api_limit_in(struct api_call *c, int fallback, int max, int *limit);
/* Reads ?before= (a positive id; 0 when absent); 400 naming "before" with message when
 * malformed. */
enum err api_before(struct api_call *c, const char *message, int64_t *before_id);
/* Refuses a body field the route does not take, naming it: a misspelt field would
 * otherwise be ignored without a word. allowed ends with NULL. */
enum err api_only_fields(struct api_call *c, const char *const *allowed);
/* The numeric {id} of the path; -1 when it is not a positive number (answer 404). */
int64_t api_param_id(struct api_call *c);
/* Who is calling, as services record it: the logged-in user, or the manage key. */
struct actor api_actor(struct api_call *c);
/* An audit entry for the caller (api_actor): actor, role and client address included. */
void api_audit(struct api_call *c, const char *action, const char *target, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_add_time(cJSON *o, const char *name, int64_t t);	 /* ISO 8601, null when 0 */
void api_add_text(cJSON *o, const char *name, const char *text); /* null when "" */
/* Answers {name: list} when rc, the store's answer that filled list, is STORE_OK. */
enum err api_reply_list(struct api_call *c, const char *name, cJSON *list, int rc);
/* Answers with an HTML page (malloc'd, taken over). */
void api_page(struct api_call *c, char *html);
/* Checks the caller's own password, re-entered before a sensitive change, as a login is
 * checked (same throttles and bound; Retry-After set when refused). */
enum err api_password_recheck(struct api_call *c, const char *password);
/* The password rule of a setting's change: a missing one is a 400 naming "password", a
 * wrong one ERR_PASSWORD_INCORRECT (the caller audits it), throttled as api_password_recheck. */
enum err api_setting_password(struct api_call *c, const char *password);
/* A sender as every answer about one shows it. */
cJSON *api_sender_json(const struct store_sender *s);
cJSON *api_user_json(const struct store_user *u);
cJSON *api_account_json(const struct store_account *a);

/* Handlers, one module per resource. */
enum err api_session_create(struct api_call *c);
enum err api_session_get(struct api_call *c);
enum err api_session_delete(struct api_call *c);
enum err api_audit_list(struct api_call *c);
enum err api_sender_auth_get(struct api_call *c);
enum err api_sender_auth_put(struct api_call *c);
enum err api_senders_list(struct api_call *c);
enum err api_senders_add(struct api_call *c);
enum err api_sender_verify(struct api_call *c);
enum err api_sender_delete(struct api_call *c);
enum err api_users_list(struct api_call *c);
enum err api_users_add(struct api_call *c);
enum err api_user_patch(struct api_call *c);
enum err api_user_delete(struct api_call *c);
enum err api_user_password(struct api_call *c);
enum err api_keys_list(struct api_call *c);
enum err api_keys_add(struct api_call *c);
enum err api_key_patch(struct api_call *c);
enum err api_key_delete(struct api_call *c);
enum err api_drops_list(struct api_call *c);
enum err api_stats_get(struct api_call *c);
enum err api_overview_get(struct api_call *c);
enum err api_senders_resend(struct api_call *c);
enum err api_senders_preflight(struct api_call *c);
enum err api_domains_list(struct api_call *c);
enum err api_domains_add(struct api_call *c);
enum err api_domain_check(struct api_call *c);
enum err api_domain_patch(struct api_call *c);
enum err api_domain_delete(struct api_call *c);
enum err api_domain_rotate(struct api_call *c);
enum err api_messages_list(struct api_call *c);
enum err api_message_get(struct api_call *c);
enum err api_message_cancel(struct api_call *c);
enum err api_events_list(struct api_call *c);
enum err api_reports_list(struct api_call *c);
enum err api_webhooks_list(struct api_call *c);
enum err api_webhooks_add(struct api_call *c);
enum err api_webhook_patch(struct api_call *c);
enum err api_webhook_delete(struct api_call *c);
enum err api_webhook_test(struct api_call *c);
enum err api_suppressions_list(struct api_call *c);
enum err api_suppressions_add(struct api_call *c);
enum err api_suppression_delete(struct api_call *c);
enum err api_static(struct api_call *c);
enum err api_openapi(struct api_call *c);
enum err api_verify_show(struct api_call *c);
enum err api_verify_confirm(struct api_call *c);
enum err api_sender_confirmation_get(struct api_call *c);
enum err api_sender_confirmation_put(struct api_call *c);
enum err api_sender_owner_link(struct api_call *c);
enum err api_confirm_show(struct api_call *c);
enum err api_confirm_use(struct api_call *c);
enum err api_healthz(struct api_call *c);
enum err api_readyz(struct api_call *c);
enum err api_send_netcore(struct api_call *c);
enum err api_send_sendgrid(struct api_call *c);

#endif
