/* GET /api/events and the webhook endpoints' routes. (Being written: issue 17.) */
#include "api.h"

#define NOT_YET(name)                                                                              \
	enum err name(struct api_call *c)                                                          \
	{                                                                                          \
		(void)c;                                                                           \
		return ERR_NOT_FOUND;                                                              \
	}
NOT_YET(api_events_list)
NOT_YET(api_webhooks_list)
NOT_YET(api_webhooks_add)
NOT_YET(api_webhook_patch)
NOT_YET(api_webhook_delete)
NOT_YET(api_webhook_test)
