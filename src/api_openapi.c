/* GET /api/openapi.json: the API description, docs/openapi.yaml converted to JSON at build
 * time (scripts/openapi-c.py), so an installed binary needs no file to serve it. */
#include <string.h>

#include "api.h"
#include "util.h"

/* The generated build/openapi_json.c. */
extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

enum err api_openapi(struct api_call *c)
{
	/* The reply body is freed once sent, so it is a copy of the constant. */
	c->reply_body = xmalloc(api_openapi_json_len + 1);
	memcpy(c->reply_body, api_openapi_json, api_openapi_json_len + 1);
	c->reply_len = api_openapi_json_len;
	c->reply_type = "application/json";
	return ERR_OK;
}
