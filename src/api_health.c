/* Health for load balancers and supervisors, without authentication and without details:
 * GET /healthz says the process answers, GET /readyz that it can take mail now (api_ready;
 * systemd's watchdog asks only the queue's half, see serve.c). */
#include "api.h"

/* True when the daemon can take mail now: the store answers a trivial query and the
 * queue's writer is alive. */
static bool api_ready(const struct api_ctx *ctx)
{
	return store_ping(ctx->store) == STORE_OK && queue_alive(ctx->queue);
}

static enum err health(struct api_call *c, int status, const char *word)
{
	c->status = status;
	c->reply = cJSON_CreateObject();
	cJSON_AddStringToObject(c->reply, "status", word);
	return ERR_OK;
}

enum err api_healthz(struct api_call *c)
{
	return health(c, 200, "ok");
}

/* A 503 here is the answer itself, not an error: its body is the one health shape. */
enum err api_readyz(struct api_call *c)
{
	return api_ready(c->ctx) ? health(c, 200, "ready") : health(c, 503, "unavailable");
}
