/* The send service: what every front end that accepts mail (the HTTP send APIs, SMTP
 * submission) calls with a parsed request and the API key that sent it. Check, then
 * proceed: submit_check asks the sender policy and counts a refusal as a drop;
 * submit_queue hands an allowed message to the queue, or submit_sandbox counts one that is
 * only being tried out. Postern's own mail enters through
 * submit_system. All of them name messages with submit_message_id. */
#ifndef POSTERN_SUBMIT_H
#define POSTERN_SUBMIT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "drops.h"
#include "err.h"
#include "metrics.h"
#include "policy_cache.h"
#include "queue.h"
#include "send.h"
#include "store.h"

#define SUBMIT_ID_LEN 33 /* 32 hex digits and NUL */

/* A message id: the time in milliseconds (12 hex digits), then 20 random ones. */
void submit_message_id(char id[SUBMIT_ID_LEN]);

/* ERR_OK when key's account may send r now; otherwise the policy's refusal, counted as a
 * drop (and in the metrics, for the front end front), or ERR_STORE_UNAVAILABLE when the policy
 * cannot be read. In monitor mode a sender reason does not refuse: ERR_OK, and *monitored (when not
 * NULL) names it; POLICY_ALLOW otherwise. The monitored count is made when the message is queued
 * (submit_queue). */
enum err submit_check(struct policy_cache *policies, struct drops *drops, enum metrics_front front,
		      const struct store_apikey *key, const struct send_request *r,
		      enum policy_reason *monitored);

/* The same for one normalized address (SMTP's envelope sender at MAIL FROM, the header
 * From and Sender at the end of DATA). */
enum err submit_check_address(struct policy_cache *policies, struct drops *drops,
			      enum metrics_front front, const struct store_apikey *key,
			      const char *address, enum policy_reason *monitored);

/* The value of the X-Postern-Policy header and of SMTP's 250 note for a monitored message:
 * "monitor; would-refuse=sender_not_authorized". */
void submit_monitor_note(enum policy_reason monitored, char *out, size_t n);

/* A SendGrid sandbox request that submit_check allowed: counted, never queued. */
void submit_sandbox(struct drops *drops, const struct store_apikey *key,
		    const struct send_request *r);

/* A message on its way into the queue, named, with its message.processed event for each
 * recipient, which names the Message-ID the recipient's copy carries (smtp_id: its
 * personalization's, see messages_smtp_id; for a submitted message, its meta's); it must
 * live until its commit lands. */
struct submit {
	char id[SUBMIT_ID_LEN];
	char from[ADDR_MAX];
	char *payload;
	char *meta;
	struct store_event *events; /* with the recipients' addresses after them */
	struct store_message m;
	/* Counted once the commit lands: a send from `from` and from each other identity the
	 * switch judges (an SMTP message's Sender and envelope sender, "" when none or the
	 * same), and, when monitored is not POLICY_ALLOW, the would-be refusal of
	 * monitored_from. */
	char also[2][ADDR_MAX];
	struct drops *drops;
	enum metrics_front front; /* counted as accepted there once the commit lands */
	enum policy_reason monitored;
	char monitored_from[ADDR_MAX];
	void (*done)(void *arg, int rc);
	void *done_arg;
};
/* Hands r, checked (monitored: what submit_check said), to the queue as sent by key;
 * done(arg, rc) runs on the queue's writer thread once the commit holding it has landed (or
 * failed). out->id is its id from now. */
void submit_queue(struct queue *q, struct drops *drops, enum metrics_front front,
		  const struct store_apikey *key, const struct send_request *r,
		  enum policy_reason monitored, struct submit *out, void (*done)(void *arg, int rc),
		  void *arg);
void submit_free(struct submit *m);

/* An SMTP transaction at the end of DATA. */
struct submit_smtp_in {
	const char *mail_from;	  /* normalized; already allowed at MAIL FROM */
	const char *const *rcpts; /* normalized envelope recipients */
	int nrcpts;
	const char *data; /* the message as received: dot-stuffing undone, CRLF line ends */
	size_t len;
	/* What MAIL FROM's check named in monitor mode (POLICY_ALLOW: nothing). */
	enum policy_reason mail_from_monitored;
};
/* Submission: reads the message's headers (GMime); it must have exactly one From with one
 * address, which is judged like the envelope sender, and so is a Sender header if present.
 * Then adds what a submission server adds (Bcc removed, Date and Message-ID when missing)
 * and queues it as sent by key with source "smtp", with its Message-ID (the client's or the
 * one added) in its meta as smtp_id for all its events. ERR_OK: queued, done(arg, rc) runs on
 * the queue's writer thread once its commit has landed (or failed), out->id is its id; in
 * monitor mode out->monitored names the first would-be refusal (the header From's, the
 * Sender's, else the envelope sender's named at MAIL FROM).
 * Otherwise nothing was queued: ERR_INVALID_REQUEST with why filled (a malformed message),
 * a policy refusal (counted as a drop), or ERR_STORE_UNAVAILABLE. */
enum err submit_smtp(struct queue *q, struct policy_cache *policies, struct drops *drops,
		     const struct store_apikey *key, const struct submit_smtp_in *in,
		     struct submit *out, char *why, size_t whylen, void (*done)(void *arg, int rc),
		     void *arg);

/* Queues Postern's own mail (a canonical payload, see send.h; never subject to the
 * account's policy) and waits for its commit. id gets its id. A store_rc. */
int submit_system(struct queue *q, int64_t account_id, const char *from, const cJSON *payload,
		  int recipients, char id[SUBMIT_ID_LEN]);

#endif
