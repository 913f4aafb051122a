/* Webhook endpoints, the service (add, list, test, enable, remove; each audited; HTTP and
 * any later front end call it), and the workers that post events to them: at least once,
 * signed, with retries and backoff, never from the send path. */
#ifndef POSTERN_WEBHOOK_H
#define POSTERN_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "dkimkey.h"
#include "err.h"
#include "store.h"
#include "whsig.h"

/* Retries end this long after an event was made for an endpoint; an endpoint failing this
 * long without a success is disabled. */
#define WEBHOOK_RETRY_FOR (24 * 3600)
#define WEBHOOK_TIMEOUT	  10  /* seconds for one POST */
#define WEBHOOK_BATCH	  100 /* events in one SendGrid-format POST */

/* A new endpoint, and its signing material, shown once. */
struct webhook_new {
	struct store_webhook hook;
	char secret[WHSIG_SECRET_MAX]; /* standard: "whsec_..."; "" for sendgrid */
};

/* Checks url (http or https; a host that resolves only to public addresses unless
 * allow_private) and events (NULL or empty: every type), then makes the endpoint. On an
 * error, field names the request field at fault. */
enum err webhook_create(struct store *s, const struct config *cfg,
			const unsigned char master[DKIMKEY_MASTER_LEN], const struct actor *who,
			int64_t account_id, const char *url, const char *format,
			const char *const *events, size_t nevents, struct webhook_new *out,
			const char **field);
enum err webhook_delete(struct store *s, const struct actor *who, int64_t account_id, int64_t id);
enum err webhook_set_enabled(struct store *s, const struct actor *who, int64_t account_id,
			     int64_t id, bool enabled);
/* Queues a webhook.test event for the endpoint. */
enum err webhook_test(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		      int64_t *event_id);

/* Whether a URL may be posted to: ERR_OK, ERR_INVALID_REQUEST (not an http(s) URL; why
 * says so), or ERR_WEBHOOK_URL_NOT_ALLOWED. With resolved (may be NULL), the address that
 * was checked, for the connection to use (so a name cannot resolve elsewhere later). */
enum err webhook_url_check(const char *url, bool allow_private, char *resolved, size_t n,
			   const char **why);

struct webhooks;
/* Starts [webhooks] workers threads. NULL with err when they cannot start. */
struct webhooks *webhooks_start(struct store *s, const struct config *cfg,
				const unsigned char master[DKIMKEY_MASTER_LEN], char *err,
				size_t errlen);
/* Lets each worker finish the POST in its hands, then stops them. */
void webhooks_stop(struct webhooks *w);

#endif
