/* The store's events and webhook endpoints: the event log, its fan-out to endpoints, and the
 * deliveries that webhook workers claim like messages. (Being written: issue 17.) */
#include "store_int.h"

int sq_event(struct sq_conn *c, int64_t account_id, const char *type, const char *message_uid,
	     const char *recipient, const char *data, int64_t now)
{
	(void)c, (void)account_id, (void)type, (void)message_uid, (void)recipient, (void)data,
		(void)now;
	return STORE_FAIL;
}
