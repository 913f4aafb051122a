/* The delivery side of the queue. Each worker owns one relay connection and loops: claim
 * a batch of due messages, decide again with the current policy (a sender that lost its
 * authorization while the message waited is dropped, not sent), then relay each
 * personalization once it is due, without the recipients the account suppresses and from
 * the message's return path, recording progress so a retry never resends an accepted
 * part. The outcomes of a batch are written together: one commit for many messages. */
#include "deliver.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "compose.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "messages.h"
#include "notify.h"
#include "relay.h"
#include "report.h"
#include "signer.h"
#include "suppress.h"
#include "util.h"
#include "verp.h"
#include "worker.h"

#define LEASE_SECONDS 600
/* Send times are whole seconds, so polling each second also wakes a worker by the time a
 * scheduled message is due, whoever moved the clock. */
#define IDLE_WAIT_MS   1000
#define RECIPIENTS_MAX 1000
/* Messages a worker claims at once. A crash re-sends at most this many per worker (their
 * outcomes were not written yet): mail is delivered at least once, never lost. */
#define BATCH	    16
#define KEYS_CACHED 8

/* Hard bounces of one message, to suppress with its outcome. */
struct suppressions {
	struct store_suppression *e;
	size_t n, cap;
};

/* An outcome waiting for the batch's commit; the strings are copies, and the events (what
 * became of each recipient) and the suppressions of hard bounces are written with it. */
struct outcome {
	int64_t id;
	int64_t account_id;
	char uid[40];
	int attempts;
	struct messages_events ev;
	struct suppressions sup;
	struct store_outcome o;
};

/* A personalization's envelope recipients, and those taken out of it because the account
 * suppresses them (its headers stay as composed). */
struct envelope {
	int n;
	const char *rcpt[RECIPIENTS_MAX];
	bool suppressed[RECIPIENTS_MAX];
	int kept;
};

/* A DKIM key opened for signing, kept while the policy stamp stays the same: every change
 * that could retire it (a rotation taking effect, a domain switched off) moves the stamp. */
struct cached_key {
	int64_t account_id;
	char domain[ADDR_DOMAIN_MAX];
	uint64_t stamp;
	bool none; /* the domain has no key: its mail goes unsigned */
	char selector[STORE_SELECTOR_MAX];
	char *pem;
};

/* A delivery worker: one relay connection, its signer and its thread. */
struct courier {
	struct deliver *d;
	struct relay *relay;
	struct signer *signer;
	struct worker *thread;
	struct outcome done[BATCH];
	int ndone;
	/* The events of the message being processed not written yet, and its hard bounces:
	 * its outcome takes them. */
	struct messages_events ev;
	struct suppressions sup;
	struct cached_key keys[KEYS_CACHED];
	int next_key;
};

struct deliver {
	struct store *store;
	const struct config *cfg;
	struct policy_cache *policies;
	struct drops *drops;
	unsigned char master[DKIMKEY_MASTER_LEN];
	unsigned char verp[VERP_KEY_LEN]; /* tags the return paths ([bounces] domain) */
	int nworkers;
	struct courier *workers;
};

/* The delay before retry number `attempts`: retry_base doubling up to retry_max, with
 * +-10% jitter so deferred messages do not return to the relay all at once. */
static int64_t backoff(const struct config *cfg, int attempts)
{
	double delay = cfg->relay_retry_base;
	for (int i = 1; i < attempts && delay < cfg->relay_retry_max; i++)
		delay *= 2;
	if (delay > cfg->relay_retry_max)
		delay = cfg->relay_retry_max;
	delay *= 0.9 + 0.2 * (double)randombytes_uniform(1001) / 1000.0;
	return delay < 1 ? 1 : (int64_t)delay;
}

#define RECORD_TRIES 120 /* a minute: long enough for an operator to free a full disk */

static char *copy(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* Writes the batch's outcomes in one transaction. They must be recorded: a message the
 * relay took but left "sending" would be sent again after a restart. A full disk may
 * clear, so keep trying for a while. */
static void flush(struct courier *w, struct worker *self)
{
	struct store_finish f[BATCH];
	for (int i = 0; i < w->ndone; i++)
		f[i] = (struct store_finish){w->done[i].id, &w->done[i].o, w->done[i].account_id};
	int tries = 0;
	bool recorded = true;
	while (w->ndone && store_messages_finish(w->d->store, f, (size_t)w->ndone) != STORE_OK) {
		if (++tries == 1)
			log_error("deliver: cannot record the outcome of %d messages; retrying",
				  w->ndone);
		if (tries >= RECORD_TRIES || worker_stopping(self)) {
			log_error("deliver: gave up recording the outcome of %d messages; they "
				  "stay 'sending' until the next start or the end of their lease",
				  w->ndone);
			recorded = false;
			break;
		}
		usleep(500 * 1000);
	}
	for (int i = 0; i < w->ndone; i++) {
		struct store_outcome *o = &w->done[i].o;
		/* Counted and logged once recorded: neither says "sent" for a message that a
		 * crash would send again. */
		if (recorded) {
			metrics_delivery(o->status);
			log_info("message %s %s attempt=%d%s%s%s%s", w->done[i].uid, o->status,
				 w->done[i].attempts, o->reason ? " reason=" : "",
				 o->reason ? o->reason : "", o->last_reply ? " reply=" : "",
				 o->last_reply ? o->last_reply : "");
		}
		free((char *)o->reason);
		free((char *)o->last_reply);
		free((char *)o->rejected);
		messages_events_clear(&w->done[i].ev);
		free(w->done[i].sup.e);
	}
	w->ndone = 0;
}

/* rejected is every refusal so far, parts sent in earlier runs included (NULL keeps what
 * the store holds); the outcome is returned for the caller to mark it not an attempt. */
static struct store_outcome *finish(struct courier *w, const struct store_queued *m,
				    const char *status, const char *reason, const char *reply,
				    const cJSON *rejected, int64_t next)
{
	/* status is one of the literals below; the others are copied until the flush. */
	struct outcome *out = &w->done[w->ndone++];
	*out = (struct outcome){.id = m->id,
				.account_id = m->account_id,
				.attempts = m->attempts,
				.ev = w->ev,
				.sup = w->sup};
	w->ev = (struct messages_events){0};
	w->sup = (struct suppressions){0};
	util_copy(out->uid, sizeof(out->uid), m->uid);
	out->o = (struct store_outcome){
		.status = status,
		.next_attempt_at = next,
		.reason = copy(reason),
		.last_reply = copy(reply),
		.rejected = cJSON_GetArraySize(rejected) ? cJSON_PrintUnformatted(rejected) : NULL,
		.now = util_now(),
		.events = out->ev.ev,
		.nevents = out->ev.n,
		.suppress = out->sup.e,
		.nsuppress = out->sup.n,
	};
	return &out->o;
}

static int part_of(const cJSON *r)
{
	const cJSON *part = cJSON_GetObjectItemCaseSensitive(r, "part");
	return cJSON_IsNumber(part) ? part->valueint : -1;
}

static const cJSON *part_field(const cJSON *payload, int part, const char *name)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "personalizations");
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, part), name);
}

/* The relay's own refusal of one recipient of the part numbered index, NULL when it
 * refused no such recipient. */
static const char *refusal(const cJSON *rejected, int index, const char *email)
{
	const cJSON *r;
	cJSON_ArrayForEach(r, rejected)
	{
		const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "email"));
		if (part_of(r) == index && e && strcmp(e, email) == 0)
			return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "reply"));
	}
	return NULL;
}

/* The status a refusal reports: its enhanced code ("5.1.1", RFC 3463) when the reply has
 * one, else its three-digit code; "" when the reply has neither. */
static void reply_status(const char *reply, char *out, size_t n)
{
	out[0] = '\0';
	if (!isdigit((unsigned char)reply[0]) || !isdigit((unsigned char)reply[1]) ||
	    !isdigit((unsigned char)reply[2]))
		return;
	const char *x = reply + 3 + (reply[3] == ' ' || reply[3] == '-');
	size_t len = strspn(x, "0123456789.");
	int dots = 0;
	for (size_t i = 0; i < len; i++)
		dots += x[i] == '.';
	if (len >= 5 && x[0] == reply[0] && x[1] == '.' && dots == 2 && x[len - 1] != '.')
		snprintf(out, n, "%.*s", (int)len, x);
	else
		snprintf(out, n, "%.3s", reply);
}

/* message.dropped with reason for each recipient not sent to yet, from part on; attempt,
 * when not 0, is the delivery attempt that ended it. Postern's own mail has no events. */
static void dropped(struct courier *w, const struct store_queued *m, const cJSON *payload, int part,
		    const char *reason, int attempt)
{
	if (!m->system)
		messages_events_dropped(&w->ev, m->uid, m->from, payload, part, reason, attempt);
}

/* A hard bounce: the recipient goes on the account's suppression list with the message's
 * outcome, the status and the relay's reply saying why. */
static void suppress_later(struct courier *w, const struct store_queued *m, const char *rcpt,
			   const char *status, const char *reply)
{
	struct suppressions *l = &w->sup;
	char email[ADDR_MAX];
	if (suppress_normalize(rcpt, email) < 0)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->e = xrealloc(l->e, l->cap * sizeof(*l->e));
	}
	struct store_suppression *e = &l->e[l->n++];
	*e = (struct store_suppression){.reason = "hard_bounce"};
	util_copy(e->email, sizeof(e->email), email);
	util_copy(e->message_uid, sizeof(e->message_uid), m->uid);
	/* The status first, so a long reply cut short still says why. */
	size_t n = (size_t)snprintf(e->detail, sizeof(e->detail), "%s ", status);
	size_t len = strnlen(reply, sizeof(e->detail) - n - 1);
	memcpy(e->detail + n, reply, len);
	e->detail[n + len] = '\0';
}

/* A recipient the relay refused and that is not tried again: it bounced. A 5xx to its own
 * RCPT (own) whose status says the address does not exist is a bounce, and the address is
 * suppressed; any other refusal is a block (a policy, a spam filter, or a refusal of the
 * whole part after DATA, which names no one recipient), which suppresses nothing. One refused with
 * a 4xx in a part the relay took is not tried again either (the part is done, and sending
 * it again would repeat it to the others), and the message's "rejected" lists it with that
 * reply: a block too, its 4.x.x status saying so. */
static void bounced(struct courier *w, const struct store_queued *m, const char *rcpt,
		    const char *reply, const char *smtp_id, bool own)
{
	char status[16];
	reply_status(reply, status, sizeof(status));
	bool hard = own && reply[0] == '5' && report_status_hard(status);
	messages_events_add(&w->ev, "message.bounced", rcpt,
			    event_json_num("attempt", m->attempts, "reply", reply, "type",
					   hard ? "bounce" : "blocked", "status",
					   status[0] ? status : NULL, "smtp_id", smtp_id, NULL));
	if (hard)
		suppress_later(w, m, rcpt, status, reply);
}

/* A recipient the relay took (delivered) or is to be tried again (deferred). */
static void relayed(struct courier *w, const struct store_queued *m, const char *type,
		    const char *rcpt, const char *reply, const char *smtp_id)
{
	messages_events_add(
		&w->ev, type, rcpt,
		event_json_num("attempt", m->attempts, "reply", reply, "smtp_id", smtp_id, NULL));
}

/* What the relay said of each recipient of a part it was asked to take (the suppressed ones
 * were told already): deferred with the part when it is to be tried again; else delivered,
 * or bounced when the relay refused it (or the whole part). Each names the Message-ID the
 * part carries. */
static void part_events(struct courier *w, const struct store_queued *m, const cJSON *payload,
			int part, const struct envelope *env, const cJSON *rejected,
			const struct relay_result *res)
{
	char smtp_id[MESSAGES_MSGID_MAX];
	if (m->system)
		return;
	int index = messages_part_index(payload, part);
	const char *id = messages_smtp_id(m->uid, m->from, payload, part, smtp_id);
	for (int i = 0; i < env->n; i++) {
		if (env->suppressed[i])
			continue;
		const char *own = refusal(rejected, index, env->rcpt[i]);
		const char *reply = own ? own : res->reply;
		if (res->outcome == RELAY_DEFERRED)
			relayed(w, m, "message.deferred", env->rcpt[i], reply, id);
		else if (res->outcome == RELAY_SENT && !own)
			relayed(w, m, "message.delivered", env->rcpt[i], reply, id);
		else
			bounced(w, m, env->rcpt[i], reply, id, own != NULL);
	}
}

/* Takes back the message.dropped events made since from for the recipients of env that
 * were suppressed: messages_events_dropped lists the part's recipients first, in env's
 * order, and those were told already why they were not sent to. */
static void untell_suppressed(struct messages_events *l, size_t from, const struct envelope *env)
{
	size_t keep = from;
	for (size_t i = from; i < l->n; i++) {
		size_t k = i - from;
		if (k < (size_t)env->n && env->suppressed[k] && l->ev[i].recipient &&
		    strcmp(l->ev[i].recipient, env->rcpt[k]) == 0) {
			free((char *)l->ev[i].recipient);
			free((char *)l->ev[i].data);
			continue;
		}
		l->ev[keep++] = l->ev[i];
	}
	l->n = keep;
}

/* message.dropped for each recipient not sent to, from part on, but for those of part that
 * env (NULL: none) took out as suppressed: they were told. */
static void drop_rest(struct courier *w, const struct store_queued *m, const cJSON *payload,
		      int part, const struct envelope *env, const char *reason, int attempt)
{
	size_t from = w->ev.n;
	dropped(w, m, payload, part, reason, attempt);
	if (env)
		untell_suppressed(&w->ev, from, env);
}

/* Records a retry, or the end when the message has waited give_up already (counted from
 * its due part's send time: process moves created_at there). res is what the relay said of
 * the part, NULL when it was not asked (env too: its recipients were not read): such a retry
 * tells the application nothing. Giving up tells it each recipient not sent to was dropped,
 * but for those the suppression list took out. */
static struct store_outcome *defer(struct courier *w, const struct store_queued *m,
				   const cJSON *payload, int part, const struct envelope *env,
				   const char *reply, const cJSON *rejected,
				   const struct relay_result *res)
{
	int64_t now = util_now();
	const struct config *cfg = w->d->cfg;
	if (now - m->created_at >= cfg->relay_give_up) {
		drop_rest(w, m, payload, part, env, "gave_up", m->attempts - !res);
		return finish(w, m, "failed", "gave_up", reply, rejected, 0);
	}
	if (res)
		part_events(w, m, payload, part, env, rejected, res);
	return finish(w, m, "deferred", NULL, reply, rejected, now + backoff(cfg, m->attempts));
}

/* Every identity a message shows: its From, and for a submitted one the envelope sender
 * and the Sender header too (NULL when absent). */
static void identities(const struct store_queued *m, const cJSON *payload, const char *out[3])
{
	out[0] = m->from;
	out[1] = compose_mail_from(payload);
	out[2] = compose_sender(payload);
}

/* The delivery-time re-check of every identity. Returns true when the message may still be
 * sent; otherwise it is dropped with the first refusal's reason. */
static bool still_allowed(struct courier *w, const struct store_queued *m, const cJSON *payload,
			  const cJSON *rejected)
{
	struct deliver *d = w->d;
	if (m->system)
		return true; /* Postern's own mail is not the account's to authorize */
	struct policy_ref *ref = policy_cache_get(d->policies, m->account_id);
	if (!ref) {
		/* The relay was not asked: no delivery attempt to count. */
		defer(w, m, payload, m->parts_done, NULL, "the policy could not be read", rejected,
		      NULL)
			->not_attempted = true;
		return false;
	}
	const char *who[3];
	enum policy_reason r = POLICY_ALLOW;
	identities(m, payload, who);
	for (size_t i = 0; i < ARRAY_LEN(who) && r == POLICY_ALLOW; i++)
		if (who[i] && (r = policy_decide(policy_ref_policy(ref), who[i])) != POLICY_ALLOW)
			drops_record(d->drops, m->account_id, m->api_key_id, who[i], r);
	policy_ref_release(ref);
	if (r == POLICY_ALLOW)
		return true;
	dropped(w, m, payload, m->parts_done, policy_reason_code(r), 0);
	finish(w, m, "dropped", policy_reason_code(r), NULL, rejected, 0);
	return false;
}

/* Adds a refused recipient to all, numbered by its part (part >= 0), unless all has it:
 * a part tried again after a deferral reports the same refusals again. */
static void add_rejected(cJSON *all, cJSON *r, int part)
{
	if (part >= 0)
		cJSON_AddNumberToObject(r, "part", part);
	const char *email = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "email"));
	const cJSON *x;
	cJSON_ArrayForEach(x, all)
	{
		const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "email"));
		if (part_of(x) == part_of(r) && e && email && strcmp(e, email) == 0) {
			cJSON_Delete(r);
			return;
		}
	}
	cJSON_AddItemToArray(all, r);
}

/* A part tried again answers for its recipients anew: what its earlier attempt was told
 * (a 4xx for a recipient since accepted) goes. */
static void forget_part(cJSON *all, int part)
{
	cJSON *r = all->child;
	while (r) {
		cJSON *next = r->next;
		if (part_of(r) == part)
			cJSON_Delete(cJSON_DetachItemViaPointer(all, r));
		r = next;
	}
}

/* Adds the refusals of a JSON list: a part's, or (part -1) those of earlier runs. */
static void merge_rejected(cJSON *all, const char *json, int part)
{
	cJSON *list = json[0] ? cJSON_Parse(json) : NULL;
	cJSON *r;
	while (list && (r = cJSON_DetachItemFromArray(list, 0)))
		add_rejected(all, r, part);
	cJSON_Delete(list);
}

/* Signs data with the active DKIM key of the From domain, replacing it. Mail from a domain
 * without one (Postern's own mail) goes unsigned. -1 with why when a key exists but cannot
 * be used: such mail waits rather than leaving unsigned. */
static void forget_key(struct cached_key *k)
{
	if (k->pem)
		dkimkey_free_pem(k->pem);
	memset(k, 0, sizeof(*k));
}

/* The signing key of the account's domain, from the cache or the store; NULL with
 * STORE_FAIL in *rc when it cannot be read. */
static const struct cached_key *signing_key(struct courier *w, int64_t account_id,
					    const char *domain, int *rc)
{
	uint64_t stamp;
	*rc = store_policy_stamp(w->d->store, &stamp);
	if (*rc != STORE_OK)
		return NULL;
	for (int i = 0; i < KEYS_CACHED; i++) {
		struct cached_key *k = &w->keys[i];
		if (k->account_id == account_id && k->stamp == stamp &&
		    strcmp(k->domain, domain) == 0)
			return k;
	}
	struct cached_key *k = &w->keys[w->next_key];
	w->next_key = (w->next_key + 1) % KEYS_CACHED;
	forget_key(k);
	char *sealed = NULL;
	*rc = store_dkim_signing_key(w->d->store, account_id, domain, k->selector, &sealed);
	if (*rc == STORE_OK) {
		k->pem = dkimkey_open(w->d->master, sealed);
		free(sealed);
		if (!k->pem)
			*rc = STORE_FAIL;
	}
	if (*rc != STORE_OK && *rc != STORE_NOT_FOUND)
		return NULL;
	k->account_id = account_id;
	k->stamp = stamp;
	k->none = *rc == STORE_NOT_FOUND;
	util_copy(k->domain, sizeof(k->domain), domain);
	return k;
}

static int sign(struct courier *w, const struct store_queued *m, char **data, size_t *len,
		char *why, size_t whylen)
{
	char *signed_data;
	size_t signed_len;
	const char *domain = addr_domain(m->from);
	int rc;

	if (m->system)
		return 0;
	const struct cached_key *k = signing_key(w, m->account_id, domain, &rc);
	if (!k) {
		snprintf(why, whylen, "cannot read the DKIM key of %s", domain);
		return -1;
	}
	if (k->none)
		return 0;
	if (signer_sign(w->signer, k->pem, k->selector, domain, *data, *len, &signed_data,
			&signed_len, why, whylen) < 0)
		return -1;
	free(*data);
	*data = signed_data;
	*len = signed_len;
	return 0;
}

/* The envelope sender: the message's own return path at the bounce domain when one is set
 * (VERP: what comes back names the message); else a submitted message's envelope sender,
 * as its client asked, or the From. Postern's own mail keeps its From: nothing of it is
 * the account's to hear about. */
static const char *return_path(struct courier *w, const struct store_queued *m,
			       const cJSON *payload, char out[ADDR_MAX])
{
	const char *domain = w->d->cfg->bounces_domain;
	if (domain[0] && !m->system && verp_address(w->d->verp, domain, m->uid, out, ADDR_MAX) == 0)
		return out;
	const char *mail_from = compose_mail_from(payload);
	return mail_from ? mail_from : m->from;
}

/* Relays one personalization to the recipients env keeps. Returns its outcome; res holds
 * the relay's words. */
static enum relay_outcome send_part(struct courier *w, const struct store_queued *m,
				    const cJSON *payload, int part, int index,
				    const struct envelope *env, struct relay_result *res,
				    const char **reason)
{
	const char *rcpts[RECIPIENTS_MAX];
	char msgid[MESSAGES_MSGID_MAX], name[64], sender[ADDR_MAX], *data = NULL;
	size_t len = 0;
	const char *why;
	int n = 0;

	for (int i = 0; i < env->n; i++)
		if (!env->suppressed[i])
			rcpts[n++] = env->rcpt[i];
	messages_msgid(m->uid, m->from, index, msgid, sizeof(msgid));
	if (index)
		snprintf(name, sizeof(name), "%s.%d.eml", m->uid, index);
	else
		snprintf(name, sizeof(name), "%s.eml", m->uid);
	if (n <= 0 || compose_message(payload, part, msgid, m->created_at, &data, &len, &why) < 0) {
		memset(res, 0, sizeof(*res));
		res->outcome = RELAY_FAILED;
		snprintf(res->reply, sizeof(res->reply), "cannot compose the message: %s",
			 n <= 0 ? "no recipients" : why);
		*reason = "compose_failed";
		return RELAY_FAILED;
	}
	char why_sign[256];
	if (sign(w, m, &data, &len, why_sign, sizeof(why_sign)) < 0) {
		free(data);
		memset(res, 0, sizeof(*res));
		res->outcome = RELAY_DEFERRED;
		snprintf(res->reply, sizeof(res->reply), "not signed: %s", why_sign);
		return RELAY_DEFERRED;
	}
	relay_send(w->relay, name, return_path(w, m, payload, sender), rcpts, n, data, len, res);
	free(data);
	return res->outcome;
}

/* A part the relay refused as a whole: the recipients it was asked to take are listed with
 * the reply, unless the relay already answered for each of them. */
static void record_refused_part(cJSON *rejected, const struct envelope *env, int index,
				const struct relay_result *res)
{
	if (res->rejected[0])
		return;
	for (int i = 0; i < env->n; i++) {
		if (env->suppressed[i])
			continue;
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "email", env->rcpt[i]);
		cJSON_AddStringToObject(r, "reply", res->reply);
		add_rejected(rejected, r, index);
	}
}

/* Reads the part's recipients into env and takes out those the account suppresses, each
 * with message.dropped (reason recipient_suppressed) unless an earlier run of the message
 * told it so already. -1 when the list cannot be read. Postern's own mail is not
 * screened. */
static int screen(struct courier *w, const struct store_queued *m, const cJSON *payload, int part,
		  struct envelope *env)
{
	char smtp_id[MESSAGES_MSGID_MAX];
	bool told[RECIPIENTS_MAX];

	env->n = compose_recipients(payload, part, env->rcpt, RECIPIENTS_MAX);
	if (env->n > RECIPIENTS_MAX)
		env->n = RECIPIENTS_MAX; /* send.c allows no more in a whole request */
	memset(env->suppressed, 0, sizeof(env->suppressed));
	env->kept = env->n < 0 ? 0 : env->n;
	if (m->system || env->n <= 0)
		return 0;
	/* The message's first run has no earlier events to read. */
	if (suppress_check(w->d->store, m->account_id, m->uid, m->attempts > 1, env->rcpt,
			   (size_t)env->n, env->suppressed, told) != STORE_OK)
		return -1;
	const char *id = messages_smtp_id(m->uid, m->from, payload, part, smtp_id);
	for (int i = 0; i < env->n; i++) {
		if (!env->suppressed[i])
			continue;
		env->kept--;
		if (!told[i])
			messages_events_add(
				&w->ev, "message.dropped", env->rcpt[i],
				event_json("reason", SUPPRESS_DROPPED, "smtp_id", id, NULL));
	}
	return 0;
}

/* When a personalization is due: its "send_at" (send_schedule keeps them in order), or 0. */
static int64_t part_due(const cJSON *payload, int part)
{
	const cJSON *at = part_field(payload, part, "send_at");
	return cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
}

/* How a due personalization ended: the relay took it (some recipients may have been
 * refused), refused it whole, or it had no recipient left to send to; PART_ENDED when the
 * message's outcome is made already (deferred, failed). */
enum part_end { PART_SENT, PART_REFUSED, PART_SUPPRESSED, PART_ENDED };

/* Screens one due personalization against the suppression list, relays it and makes its
 * events. An unreadable list is a retry that did not ask the relay. */
static enum part_end deliver_part(struct courier *w, const struct store_queued *m,
				  const cJSON *payload, int part, cJSON *rejected,
				  struct relay_result *res)
{
	struct envelope env;
	const char *reason = NULL;
	int index = messages_part_index(payload, part);

	if (screen(w, m, payload, part, &env) < 0) {
		defer(w, m, payload, part, NULL, "the suppression list could not be read", rejected,
		      NULL)
			->not_attempted = part == m->parts_done;
		return PART_ENDED;
	}
	if (env.n > 0 && env.kept == 0)
		return PART_SUPPRESSED;
	enum relay_outcome o = send_part(w, m, payload, part, index, &env, res, &reason);
	forget_part(rejected, index);
	merge_rejected(rejected, res->rejected, index);
	if (reason) { /* the message itself cannot be made: no retry will help */
		drop_rest(w, m, payload, part, &env, reason, m->attempts);
		finish(w, m, "failed", reason, res->reply, rejected, 0);
		return PART_ENDED;
	}
	if (o == RELAY_DEFERRED) {
		defer(w, m, payload, part, &env, res->reply, rejected, res);
		return PART_ENDED;
	}
	part_events(w, m, payload, part, &env, rejected, res);
	if (o == RELAY_SENT)
		return PART_SENT;
	record_refused_part(rejected, &env, index, res);
	return PART_REFUSED;
}

/* The outcome of a message whose remaining parts were all done: when this run did all of
 * them, it is dropped if the suppression list left no recipient at all, failed if the relay
 * refused every part it was given; otherwise sent. */
static void conclude(struct courier *w, const struct store_queued *m, int parts, int refused,
		     int suppressed, const struct relay_result *res, const cJSON *rejected)
{
	int all = parts - m->parts_done;
	if (!m->parts_done && suppressed && suppressed == all)
		finish(w, m, "dropped", SUPPRESS_DROPPED, NULL, rejected, 0);
	else if (!m->parts_done && refused && refused + suppressed == all)
		finish(w, m, "failed", "relay_rejected", res->reply, rejected, 0);
	else
		finish(w, m, "sent", NULL, res->reply, rejected, 0);
}

static void process(struct courier *w, struct store_queued *m)
{
	struct deliver *d = w->d;
	cJSON *payload = cJSON_Parse(m->payload);
	cJSON *rejected = cJSON_CreateArray();
	struct relay_result res = {0};
	int refused = 0, suppressed = 0;

	merge_rejected(rejected, m->rejected, -1); /* by parts sent in earlier runs */
	if (!payload) {
		dropped(w, m, NULL, 0, "payload_unreadable", 0);
		finish(w, m, "failed", "payload_unreadable", NULL, rejected, 0);
		goto out;
	}
	/* A scheduled part is written (Date) and given up on as of its send time, also when
	 * the re-check below defers it. */
	int64_t first_due = part_due(payload, m->parts_done);
	if (first_due > m->created_at)
		m->created_at = first_due;
	if (!still_allowed(w, m, payload, rejected))
		goto out;
	/* A verification email is queued without its body: the link is opened only now. */
	if (m->system && notify_render(payload, d->cfg) < 0) {
		finish(w, m, "failed", "link_unreadable", NULL, rejected, 0);
		goto out;
	}
	int parts = compose_parts(payload);
	for (int part = m->parts_done; part < parts; part++) {
		int64_t due = part_due(payload, part);
		if (due > util_now()) { /* a later personalization waits for its own time */
			struct store_outcome *o =
				finish(w, m, "scheduled", NULL, res.reply[0] ? res.reply : NULL,
				       rejected, due);
			/* A wake-up that sent nothing is no delivery attempt. */
			o->not_attempted = part == m->parts_done;
			goto out;
		}
		if (due > m->created_at)
			m->created_at = due;
		enum part_end end = deliver_part(w, m, payload, part, rejected, &res);
		if (end == PART_ENDED)
			goto out;
		/* A refused part is done too: the others still go, and a retry skips it. */
		refused += end == PART_REFUSED;
		suppressed += end == PART_SUPPRESSED;
		/* The part's events and hard bounces go with its progress; when that cannot be
		 * written they wait for the message's next write. */
		if (part + 1 < parts &&
		    store_message_progress(d->store, m->id, m->account_id, part + 1, w->ev.ev,
					   w->ev.n, w->sup.e, w->sup.n) == STORE_OK) {
			messages_events_clear(&w->ev);
			free(w->sup.e);
			w->sup = (struct suppressions){0};
		}
	}
	conclude(w, m, parts, refused, suppressed, &res, rejected);
out:
	cJSON_Delete(rejected);
	cJSON_Delete(payload);
}

static void work(void *arg, struct worker *self)
{
	struct courier *w = arg;
	struct deliver *d = w->d;
	while (!worker_stopping(self)) {
		struct store_queued m[BATCH];
		size_t n = 0;
		int64_t now = util_now();
		int rc = store_messages_claim(d->store, now, now + LEASE_SECONDS, m, BATCH, &n);
		if (rc != STORE_OK || n == 0) {
			worker_wait(self, IDLE_WAIT_MS);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			/* Stopping: the rest of the batch goes back to the queue at once rather
			 * than waiting for its lease to end. */
			if (worker_stopping(self))
				finish(w, &m[i], "deferred", NULL,
				       "not attempted: the gateway was stopping", NULL, util_now())
					->not_attempted = true;
			else
				process(w, &m[i]);
			free(m[i].payload);
			free(m[i].rejected);
		}
		flush(w, self);
	}
	for (int i = 0; i < KEYS_CACHED; i++)
		forget_key(&w->keys[i]);
}

struct deliver *deliver_start(struct store *s, const struct config *cfg,
			      struct policy_cache *policies, struct drops *drops,
			      const unsigned char master[DKIMKEY_MASTER_LEN], char *err,
			      size_t errlen)
{
	struct deliver *d = xcalloc(1, sizeof(*d));
	d->store = s;
	d->cfg = cfg;
	d->policies = policies;
	d->drops = drops;
	memcpy(d->master, master, DKIMKEY_MASTER_LEN);
	verp_key(master, d->verp);
	compose_init();
	if (store_messages_recover(s) != STORE_OK)
		log_warn("deliver: could not put interrupted messages back in the queue");
	/* Paused: mail is accepted and kept queued until a start without the switch. */
	int nworkers = cfg->relay_paused ? 0 : cfg->relay_connections;
	if (cfg->relay_paused)
		log_info("deliver: paused by [relay] paused; accepted mail stays queued");
	d->workers = xcalloc((size_t)cfg->relay_connections, sizeof(*d->workers));
	for (int i = 0; i < nworkers; i++) {
		struct courier *w = &d->workers[i];
		w->d = d;
		w->relay = relay_new(cfg, err, errlen);
		w->signer = w->relay ? signer_new(err, errlen) : NULL;
		w->thread =
			w->signer ? worker_start("delivery worker", work, w, err, errlen) : NULL;
		if (!w->thread) {
			relay_free(w->relay);
			signer_free(w->signer);
			if (!w->relay && !err[0])
				snprintf(err, errlen, "cannot start delivery workers");
			deliver_stop(d);
			return NULL;
		}
		d->nworkers++;
	}
	return d;
}

void deliver_wake(void *deliver)
{
	struct deliver *d = deliver;
	for (int i = 0; i < d->nworkers; i++)
		worker_wake(d->workers[i].thread);
}

void deliver_stop(struct deliver *d)
{
	if (!d)
		return;
	/* All are told at once, so none claims another batch while an earlier one winds
	 * down. */
	for (int i = 0; i < d->nworkers; i++)
		worker_ask_stop(d->workers[i].thread);
	for (int i = 0; i < d->nworkers; i++) {
		worker_stop(d->workers[i].thread);
		relay_free(d->workers[i].relay);
		signer_free(d->workers[i].signer);
	}
	free(d->workers);
	sodium_memzero(d->master, sizeof(d->master));
	sodium_memzero(d->verp, sizeof(d->verp));
	free(d);
}
