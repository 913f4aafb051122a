/* Reports that come back to the return path: received by the SMTP front end's inbound
 * listener (smtpd.c) and stored durably before its 250 (bounces_receive), then parsed by a
 * worker (report.c) and applied to the message they are about: message.bounced,
 * .deferred or .complained events for its recipients, and suppressions for hard bounces
 * and complaints, in one transaction with the report's new status. */
#ifndef POSTERN_BOUNCES_H
#define POSTERN_BOUNCES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dkimkey.h"
#include "report.h"
#include "store.h"

struct bounces;

/* Stores a report as received: the client's address, the envelope (mail_from "" for the
 * null sender; paths[0..n) the return paths it was sent to, one per message) and the data,
 * once for each path, ids[0..n) getting their ids. All durable when it returns STORE_OK
 * (the listener may answer 250), none stored otherwise. */
int bounces_receive(struct store *s, const char *client_ip, const char *mail_from,
		    const struct store_report_path *paths, size_t n, const char *data, size_t len,
		    int64_t *ids);

/* What a parsed report does to the message it is about (pure): the events and the
 * suppressions to write with the report's new status, and the report's detail (JSON: each
 * recipient it names, what it said, and whether it was applied). */
struct bounces_plan {
	struct store_event *events; /* data malloc'd; recipient points into rcpts */
	size_t nevents;
	struct store_suppression *suppress;
	size_t nsuppress;
	char *detail; /* malloc'd */
};
/* Decides for the report r about message uid, whose recipients are rcpts[0..n)
 * (suppress_normalize'd): only those may be bounced or suppressed by it; a report naming
 * no recipient is about the only one when there is one. A text report suppresses only a
 * recipient it names, with a status report_status_hard holds. Free with bounces_plan_free. */
void bounces_plan(const struct report *r, const char *uid, const char *const *rcpts, size_t n,
		  struct bounces_plan *out);
void bounces_plan_free(struct bounces_plan *p);
/* Every envelope recipient of a stored message's payload (JSON), over all its
 * personalizations, suppress_normalize'd into rcpts[0..max); returns how many. */
size_t bounces_message_rcpts(const char *payload, char (*rcpts)[ADDR_MAX], size_t max);

/* Starts the worker that parses stored reports (also those a crash left 'parsing'). NULL
 * with err when it cannot start. */
struct bounces *bounces_start(struct store *s, const struct config *cfg, char *err, size_t errlen);
/* Tells the worker a report is waiting. */
void bounces_wake(struct bounces *b);
/* Lets the worker finish the report in hand, then stops it. b may be NULL. */
void bounces_stop(struct bounces *b);

#endif
