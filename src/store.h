/* The store interface. Handlers and core modules call these functions and never write
 * SQL. They are the SQL itself, written once (store.c, store_people.c, store_policy.c,
 * store_queue.c, store_domains.c) over the drivers of db.h (SQLite or PostgreSQL).
 * Times are seconds since the epoch. Every function returns a store_rc. */
#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdint.h>

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "auth.h"
#include "net.h"
#include "policy.h"
#include "role.h"

enum store_rc {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	STORE_CONFLICT,	  /* a unique name or address already exists */
	STORE_LAST_ADMIN, /* the change would leave an account without an Admin */
	STORE_TOO_SOON,	  /* a rate limit holds; the call says how long to wait */
	/* The database refused this row (a value it cannot hold, a check or a trigger): the
	 * same write fails again, while other writes may well succeed. */
	STORE_REFUSED,
	STORE_FAIL, /* the database failed (unreachable, full, busy); the caller answers 503 */
};

#define STORE_NAME_MAX 128

struct store_account {
	int64_t id;
	char name[STORE_NAME_MAX];
};

struct store_user {
	int64_t id;
	int64_t account_id;
	char email[ADDR_MAX];
	char password_hash[AUTH_PWHASH_LEN];
	enum role role;
	int64_t created_at;
};

/* A failed-login throttle: failures counted under key (a hash of what is guessed, and from
 * where). After `free` failures each further one makes the next try wait `wait` seconds,
 * doubled by each failure beyond, at most wait_max. */
struct store_throttle {
	char key[AUTH_HASH_HEX];
	int free;
	int64_t wait;
	int64_t wait_max;
};

/* A live session, with its user and account. */
struct store_session {
	int64_t expires_at;
	struct store_user user;
	struct store_account account;
};

struct store_audit {
	int64_t id;
	int64_t at;
	int64_t account_id; /* 0 when the event belongs to no account */
	char actor[ADDR_MAX + 16];
	char action[64];
	char target[ADDR_MAX + 64];
	char detail[512];
	char ip[64];
};

struct store_sender_auth {
	bool enabled;
	bool monitor; /* stored beside the switch; counts only while it is off */
	int verified;
	int pending;
};

struct store_sender {
	int64_t id;
	char address[ADDR_MAX];
	bool verified;
	char domain[ADDR_DOMAIN_MAX];
	char domain_status[20]; /* "" when the domain is not an approved sending domain */
	bool domain_active;
	char added_by[ADDR_MAX]; /* "" when the user is gone or a key added it */
	int64_t added_at;
	char verified_by[ADDR_MAX];
	int64_t verified_at;  /* 0 while pending */
	char verified_via[8]; /* "panel", "link", or "" while pending */
	/* The halves of its verification (issue 19): an Admin's (panel or Verify All link)
	 * and its owner's (the link mailed to the address); 0 while not given. */
	int64_t admin_verified_at;
	int64_t owner_confirmed_at;
	char confirmation[8];	      /* its account's mode: "admin", "owner" or "both" */
	int64_t confirmation_sent_at; /* its owner's last link; 0 when none */
};

#define STORE_SMTP_IPS_MAX  1024 /* the text of a key's networks, with its NUL */
#define STORE_KEY_LIST_MAX  4096 /* the text of a key's senders or domains, with its NUL */
#define STORE_KEY_ITEMS_MAX 100	 /* senders, or domains, one key lists */

/* A key's senders, domains and allowed_ips made quick to ask on the send path, by
 * keyscope_prepare (the policy cache runs it on every key it reads): the networks parsed
 * (the IPv4 ones also as a number and a mask), and the length of each listed sender and
 * domain, in order. ready false: asked from the text. */
struct store_key_quick {
	bool ready;
	uint8_t nsenders, ndomains, nv4;
	uint8_t sender_len[STORE_KEY_ITEMS_MAX], domain_len[STORE_KEY_ITEMS_MAX];
	uint32_t v4_net[NET_MAX], v4_mask[NET_MAX];
	struct net_list allowed;
};

struct store_apikey {
	int64_t id;
	int64_t account_id;
	char name[STORE_NAME_MAX];
	char shown[AUTH_KEY_SHOWN + 1];
	int64_t created_at;
	int64_t last_used_at;		   /* 0 when never used */
	char smtp_ips[STORE_SMTP_IPS_MAX]; /* "10.0.0.0/8,::1/128", "" when none */
	char account_name[STORE_NAME_MAX]; /* for SMTP AUTH's user name */
	/* What the key may do (issue 19), as stored: the From addresses and domains it may
	 * send from ("a@x.example,b@x.example", "x.example"; "" for account-wide), the
	 * networks it may be used from ("" for anywhere), its scopes ("mail.send",
	 * "manage" or "mail.send,manage") and, with manage, the role it acts with ("" for
	 * none). */
	char senders[STORE_KEY_LIST_MAX];
	char domains[STORE_KEY_LIST_MAX];
	char allowed_ips[STORE_SMTP_IPS_MAX];
	char scopes[32];
	char role[16];
	struct store_key_quick quick;
	/* Filled by the policy cache when it finds the key, so a session holding the key can
	 * ask again whether it is live (keys_recheck): the key's hash ("" when it was found
	 * by network), and the policy stamp it was read under (0: unknown). */
	char hash[AUTH_HASH_HEX];
	uint64_t stamp;
};

/* An event (event.h names the types), written in the transaction of the change it reports,
 * with one delivery for each enabled webhook endpoint of the account that wants its type.
 * A message's events take the account and message id from the message. */
struct store_event {
	const char *type;
	const char *recipient; /* NULL when the event is about no one recipient */
	const char *data;      /* JSON object text of the event's own fields; NULL for {} */
};

/* A message accepted by the send API (or Postern's own mail), stored as queued, or as
 * scheduled until send_at. */
struct store_message {
	const char *uid;
	int64_t account_id;
	int64_t api_key_id; /* 0 for Postern's own mail */
	bool system;	    /* Postern's own mail: never subject to the account's policy */
	const char *source; /* how it came: "api" (also when NULL), "smtp" or "system" */
	const char *from;
	const char *payload; /* canonical JSON (send.h), or a submitted message's (compose.h) */
	int recipients;
	int64_t send_at; /* when its first personalization is due; 0 for now */
	int64_t now;
	/* What every event of the message repeats (event_meta: tags, custom_args), stored
	 * once with it; NULL when none. */
	const char *meta;
	const struct store_event *events; /* message.processed, one per recipient */
	size_t nevents;
};

/* A message claimed by a delivery worker. */
struct store_queued {
	int64_t id;
	char uid[40];
	int64_t account_id;
	int64_t api_key_id;
	bool system;
	char from[ADDR_MAX];
	char *payload;	/* malloc'd; the claimer frees it */
	char *rejected; /* malloc'd JSON of the recipients refused so far, or "" */
	int attempts;	/* including the one just claimed */
	int parts_done;
	int64_t created_at;
};

/* What became of a delivery attempt. status: "sent", "deferred", "failed", "dropped", or
 * "scheduled" when its next personalization is not due yet. */
/* An entry of an account's suppression list (suppress.h). */
#define STORE_SUPPRESS_DETAIL_MAX 512
struct store_suppression {
	int64_t id;
	char email[ADDR_MAX]; /* suppress_normalize'd */
	const char *reason;   /* "hard_bounce", "complaint" or "manual" (a literal) */
	int64_t created_at;   /* read; a write takes the call's now */
	char message_uid[40]; /* the message that bounced or was complained of; "" */
	char detail[STORE_SUPPRESS_DETAIL_MAX]; /* the status and diagnostic, or "" */
};

struct store_outcome {
	const char *status;
	int64_t next_attempt_at; /* for "deferred" and "scheduled" */
	const char *reason;	 /* a stable code, or NULL */
	const char *last_reply;	 /* the relay's last reply, or NULL */
	const char *rejected;	 /* JSON array of every refusal so far; NULL keeps the stored one */
	int64_t now;
	bool not_attempted; /* the relay was not asked (a wake-up that only re-schedules, a
			     * stop, an unreadable policy): the claim's attempt is taken back */
	const struct store_event *events; /* what became of each recipient */
	size_t nevents;
	/* Recipients the relay refused as addresses that do not exist (hard bounces): added to
	 * the account's suppression list with the outcome, reason hard_bounce. */
	const struct store_suppression *suppress;
	size_t nsuppress;
};

/* The outcome of one claimed message, for store_messages_finish. */
struct store_finish {
	int64_t id;
	const struct store_outcome *outcome;
	int64_t account_id; /* the message's: whose list outcome->suppress goes on */
};

/* A message as GET /api/messages shows it. */
struct store_message_info {
	char uid[40];
	char from[ADDR_MAX];
	char status[16];
	bool system;
	char source[8]; /* "api", "smtp" or "system" */
	int attempts;
	int recipients;
	int64_t created_at;
	int64_t updated_at;
	int64_t next_attempt_at;
	int64_t send_at; /* the send time asked for, 0 when none */
	int parts_done;	 /* personalizations the relay took already */
	char reason[40];
	char last_reply[512];
	char rejected[16384]; /* JSON; lists that do not fit read as [] */
};

#define STORE_DKIM_KEYS	   3
#define STORE_SELECTOR_MAX 64
#define STORE_SPF_SEEN_MAX 4096

struct store_dkim_key {
	char selector[STORE_SELECTOR_MAX];
	char public_key[800]; /* base64 DER, the p= of the record */
	char state[12];	      /* "active" signs; "next" waits for its record; "retired" */
	bool verified;	      /* its record was seen in DNS */
};

/* An approved sending domain, with the DKIM keys to keep published: the active one, the
 * one waiting to take over, and one retired in the last week. */
struct store_domain {
	int64_t id;
	int64_t account_id;
	char name[ADDR_DOMAIN_MAX];
	char status[16]; /* pending, verified, failed */
	bool active;
	bool manual; /* verified by an operator, not re-checked on schedule */
	/* The operator's word ([domains] approval): "approved" (the default), "required"
	 * (waits for `postern domain approve`) or "rejected"; only approved ones send. */
	char approval[12];
	char token[AUTH_TOKEN_LEN];
	int64_t created_at;
	int64_t checked_at;    /* 0 before the first check */
	int64_t missing_since; /* 0 unless a verified domain's records went missing */
	char check_error[160];
	char records[8192]; /* JSON of the last check's record statuses, "" before one */
	/* JSON array of the SPF records the domain published at the last check that got an
	 * answer, "" before one: the advised SPF record is merged with them. */
	char spf_seen[STORE_SPF_SEEN_MAX];
	int nkeys;
	struct store_dkim_key keys[STORE_DKIM_KEYS];
};

struct store_domain_new {
	const char *name;
	const char *status;
	bool active;
	bool manual;
	const char *approval; /* "approved" (or NULL) or "required" */
	const char *token;
	const char *selector;
	const char *private_sealed;
	const char *public_key;
	int64_t now;
};

/* What a DNS check concluded. The write applies only to the row the check read: same
 * account, same ownership token. */
struct store_domain_check {
	int64_t account_id;
	const char *token;
	/* The domain's state when the check read it: a change made while its lookups ran
	 * (an operator's mark) wins, and the check's result is dropped as STORE_CONFLICT. */
	const char *read_status;
	bool read_manual;
	int64_t now;
	const char *status;
	int64_t missing_since;
	const char *error;    /* NULL when every lookup answered */
	const char *records;  /* JSON */
	const char *spf_seen; /* JSON array; NULL keeps the last one (the lookup failed) */
	const char *verified_selectors[STORE_DKIM_KEYS];
	int nverified;
};

/* A verification batch to make: its link's token (as hash) and expiry, and the least time
 * since the account's last batch; wait is set to the seconds left when that is too soon,
 * and then no batch is made. Every batch means an email to every Admin. */
struct store_batch_new {
	const char *token_hash;
	int64_t expires_at;
	int64_t gap;
	int64_t wait;
};

/* A verification batch: the senders one "Verify All Emails" link covers. */
struct store_batch {
	int64_t id;
	int64_t account_id;
	char account_name[STORE_NAME_MAX];
	int64_t created_at;
	int64_t expires_at;
	int64_t used_at; /* 0 while unused */
};

enum store_batch_state {
	BATCH_PENDING,	    /* still waiting for verification */
	BATCH_VERIFIED_NOW, /* verified by this use of the link */
	BATCH_ALREADY,	    /* verified before, in the panel or by another link */
	BATCH_REMOVED,	    /* removed from the account since the batch was made */
	BATCH_ADMIN_NOW,    /* an Admin's half given by this use; its owner has yet to confirm */
	BATCH_AWAITS_OWNER, /* an Admin's half given before; its owner has yet to confirm */
	BATCH_STATES
};

/* The account's sender confirmation mode as stored: "admin", "owner" or "both". */
#define STORE_CONFIRM_MODE_MAX 8

/* An owner's confirmation link, with its sender's state. */
struct store_owner_token {
	int64_t id;
	int64_t account_id;
	char account_name[STORE_NAME_MAX];
	int64_t sender_id;
	char address[ADDR_MAX];
	char mode[STORE_CONFIRM_MODE_MAX];
	int64_t expires_at;
	int64_t used_at; /* 0 while unused */
	bool verified;
	bool admin_verified;
	bool owner_confirmed;
};

/* Refusals by the policy, counted per account, key, From, reason and minute. */
struct store_drop {
	int64_t account_id;
	int64_t api_key_id;
	char from[ADDR_MAX];
	char reason[40];
	int64_t minute; /* seconds since the epoch, a multiple of 60 */
	int64_t count;
};

/* Sends per account, From and day (accepted or monitored), for the preflight. */
struct store_from_count {
	int64_t account_id;
	char from[ADDR_MAX];
	int64_t day;	   /* seconds since the epoch, a multiple of 86400 */
	int64_t sends;	   /* added to the stored count */
	int64_t last_seen; /* the stored one becomes the later of the two */
};

/* One flush of the counters (drops.h): refusals, monitored would-be refusals (same shape,
 * in the table monitored) and sends per From. */
struct store_counts {
	const struct store_drop *drops;
	size_t ndrops;
	const struct store_drop *monitored;
	size_t nmonitored;
	const struct store_from_count *sends;
	size_t nsends;
};

/* A From's sends over a window, and the last one's time. */
struct store_from_total {
	char from[ADDR_MAX];
	int64_t sends;
	int64_t last_seen;
};
typedef int (*store_from_total_fn)(void *arg, const struct store_from_total *t);

#define STORE_EVENT_TYPE_MAX 40
#define STORE_URL_MAX	     2048

/* An event as GET /api/events and the webhook formats read it. data and meta are valid
 * during the callback (store_events_list) or until store_deliveries_free (a claim). */
struct store_event_info {
	int64_t id;
	char type[STORE_EVENT_TYPE_MAX];
	int64_t created_at;
	char message_uid[40];	  /* "" for an account event */
	char recipient[ADDR_MAX]; /* "" when none */
	char from[ADDR_MAX];	  /* the message's From, "" for an account event */
	const char *data;	  /* JSON object text */
	const char *meta;	  /* the message's meta JSON, "" when none */
};

/* A webhook endpoint; its signing secret is read only by a claim. */
struct store_webhook {
	int64_t id;
	int64_t account_id;
	char url[STORE_URL_MAX];
	char format[16];      /* "standard" or "sendgrid" */
	char events[1024];    /* "*" for every type, else ",type,type," */
	char public_key[256]; /* sendgrid: base64 DER of the P-256 public key; "" otherwise */
	bool enabled;
	int64_t created_at;
	int64_t last_at;       /* the last delivery attempt, 0 before one */
	char last_status[160]; /* its result: "200", "timeout", "HTTP 500", ... */
	int64_t last_success_at;
	int64_t failing_since; /* the first failure since the last success, 0 when none */
	int64_t disabled_at;   /* when failures disabled it; 0 when enabled by hand or never */
};

/* One event claimed for one endpoint. */
struct store_delivery {
	int64_t id;
	int attempts;	    /* including the one just claimed */
	int64_t created_at; /* when the delivery was made: its retries end 24 h later */
	struct store_event_info ev;
};

/* A claim's token: 32 hex digits and the NUL. */
#define STORE_CLAIM_LEN 33

/* What became of one POST of claimed deliveries to their endpoint. */
struct store_webhook_result {
	int64_t webhook_id;
	const char *claim;  /* the token of the claim that took them */
	bool ok;	    /* a 2xx: the deliveries are done and deleted */
	const char *status; /* for the endpoint's last_status */
	int64_t now;
	/* On failure, the endpoint's other pending deliveries due before this, and those made
	 * until its next result, wait until it (0: none waits). */
	int64_t retry_at;
	/* An endpoint failing for this long without a success is disabled. */
	int64_t disable_after;
};

typedef int (*store_audit_fn)(void *arg, const struct store_audit *ev);
typedef int (*store_sender_fn)(void *arg, const struct store_sender *s);
typedef int (*store_user_fn)(void *arg, const struct store_user *u);
typedef int (*store_apikey_fn)(void *arg, const struct store_apikey *k);
typedef int (*store_drop_fn)(void *arg, const struct store_drop *d);
typedef int (*store_count_fn)(void *arg, const char *reason, int64_t count);
typedef int (*store_message_fn)(void *arg, const struct store_message_info *m);
typedef int (*store_batch_fn)(void *arg, const char *address, enum store_batch_state state);
typedef int (*store_domain_fn)(void *arg, const struct store_domain *d);
typedef int (*store_event_fn)(void *arg, const struct store_event_info *e);
typedef int (*store_webhook_fn)(void *arg, const struct store_webhook *w);
typedef int (*store_due_fn)(void *arg, int64_t account_id, int64_t domain_id);
/* True when a sealed DKIM private key opens (under the caller's master key). */
typedef bool (*store_opens_fn)(void *arg, const char *sealed);

struct store; /* store_int.h */
struct db;    /* db.h */

/* Opens (creating if needed) and migrates a SQLite database. Returns NULL with a
 * one-line reason in err, also when the schema is newer than this build knows. */
struct store *store_sqlite_open(const char *path, char *err, size_t errlen);
/* Connects to a PostgreSQL database (a libpq conninfo string) that several gateways may
 * share, and migrates it; the same errors. */
struct store *store_pg_open(const char *conninfo, char *err, size_t errlen);
/* Opens the store on a database from db.h, which it then owns (closed with the store,
 * also on failure), and migrates it. */
struct store *store_sql_open(struct db *db, char *err, size_t errlen);

void store_close(struct store *s);
/* STORE_OK when the database answers a trivial query now (readiness). */
int store_ping(struct store *s);
int store_account_create(struct store *s, const char *name, int64_t now, int64_t *id);
int store_account_by_name(struct store *s, const char *name, struct store_account *out);
/* How many accounts the database holds. */
int store_account_count(struct store *s, int64_t *count);
int store_user_create(struct store *s, int64_t account_id, const char *email,
		      const char *password_hash, enum role role, int64_t now, int64_t *id);
/* The user with this (normalized) email in the account of this name. */
int store_user_by_login(struct store *s, const char *account, const char *email,
			struct store_user *out);
/* Starts a password check under the throttles t[0..n). When one of them makes its key wait,
 * *retry_after gets the seconds left and nothing is counted. Otherwise *retry_after is 0 and
 * each key counts the check as one more failure, failures[i] its count: a check starts as
 * a failure (parallel checks, on any node, each see the others) and store_login_forgive
 * takes it back. Keys without a failure since forget_before start over. */
int store_login_attempt(struct store *s, const struct store_throttle *t, size_t n, int64_t now,
			int64_t forget_before, int *failures, int64_t *retry_after);
/* Takes one failure off t's key, or all of them; a key that falls back under t->free no
 * longer waits. */
int store_login_forgive(struct store *s, const struct store_throttle *t, bool all);
/* Stamps t's key with the time of a failed check, in a transaction of its own. */
int store_login_failed(struct store *s, const struct store_throttle *t, int64_t now);
/* Reads, without counting anything, whether t's key must wait: *retry_after gets the
 * seconds left, 0 when it need not. */
int store_login_blocked(struct store *s, const struct store_throttle *t, int64_t now,
			int64_t *retry_after);
int store_session_create(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
			 int64_t expires_at);
int store_session_get(struct store *s, const char *token_hash, int64_t now,
		      struct store_session *out);
int store_session_delete(struct store *s, const char *token_hash);
/* Stores k (its account_id, name, shown, smtp_ips, senders, domains, allowed_ips, scopes
 * and role; "" scopes are stored as "mail.send") with its hash; a key with networks moves
 * the policy stamp, as the SMTP-IP table is kept while it holds. */
int store_apikey_create(struct store *s, const struct store_apikey *k, const char *key_hash,
			int64_t now, int64_t *id);
/* Writes a live key's name, smtp_ips, senders, domains, allowed_ips, scopes and role from
 * k (found by k->account_id and k->id), moving the policy stamp so every cache sees the
 * new scope at once. STORE_NOT_FOUND when the account has no such live key. */
int store_apikey_update(struct store *s, const struct store_apikey *k);
int store_audit_append(struct store *s, const struct store_audit *ev);
int store_audit_list(struct store *s, int64_t account_id, int limit, store_audit_fn fn, void *arg);
int store_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out);
/* Sets the switch to mode (on: enabled; monitor: off with monitor set; off: neither); a
 * change of mode is a sender_auth.changed event carrying it. */
int store_sender_auth_set(struct store *s, int64_t account_id, enum policy_mode mode,
			  int64_t user_id, int64_t now);
/* Adds normalized addresses as pending, in one transaction. ids[i] is the new sender's id,
 * or 0 when the account has that address already. When at least one is added, a
 * verification batch b covering the added senders is stored too, unless the account's
 * last batch is younger than b->gap (then b->wait says for how long). user_id 0: added by
 * no user (a manage key), recorded as NULL. */
int store_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		      const char *const *addresses, size_t n, struct store_batch_new *b,
		      int64_t *ids);
int store_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg);
int store_sender_get(struct store *s, int64_t account_id, int64_t id, struct store_sender *out);
/* Gives an Admin's half (admin_verified_at): the sender becomes verified when its account's
 * mode asks nothing more (issue 19). */
int store_sender_verify(struct store *s, int64_t account_id, int64_t id, int64_t user_id,
			int64_t now);
/* The account's sender confirmation mode (STORE_CONFIRM_MODE_MAX). */
int store_confirmation_get(struct store *s, int64_t account_id, char *mode);
/* Sets it; *changed tells whether it was another. A change verifies the pending senders the
 * new mode asks nothing more of (events via "mode"), calling fn for each. */
int store_confirmation_set(struct store *s, int64_t account_id, const char *mode, int64_t user_id,
			   int64_t now, bool *changed, store_batch_fn fn, void *arg);
/* Stores an owner's link (as hash) for a sender waiting for its owner. STORE_CONFLICT when
 * it is not (verified, confirmed already, or the account's mode is admin); STORE_TOO_SOON
 * within gap seconds of the sender's last link, *wait the seconds left. */
int store_owner_token_add(struct store *s, int64_t account_id, int64_t sender_id,
			  const char *token_hash, int64_t now, int64_t expires_at, int64_t gap,
			  int64_t *wait);
int store_owner_token_get(struct store *s, const char *token_hash, struct store_owner_token *out);
/* Uses an owner's link: records the owner's half, verifies the sender when its mode asks
 * nothing more, marks the link used, in one transaction. out has the link as it was before
 * (used_at set or expires_at past now: nothing changed) and the sender as it is after. */
int store_owner_token_use(struct store *s, const char *token_hash, int64_t now,
			  struct store_owner_token *out);
int store_sender_delete(struct store *s, int64_t account_id, int64_t id);
/* Adds a sending domain with its ownership token and first DKIM key. status is "pending",
 * "verified" or "failed". */
int store_domain_create(struct store *s, int64_t account_id, const struct store_domain_new *d,
			int64_t *id);
/* In domain_set, NULL keeps the status and active -1 keeps the switch. A status set this
 * way is the operator's: "verified" makes the domain manual (no scheduled checks),
 * anything else hands it back to the scheduler. */
int store_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
		     int active);
/* What a domain was before an operator's approval decision. */
struct store_domain_was {
	char status[16];
	char approval[12];
};
/* Sets a domain's approval to "approved" or "rejected" (postern domain approve|reject);
 * was gets its status and approval before. STORE_NOT_FOUND when the account has no such
 * domain, STORE_CONFLICT when its approval is that already. */
int store_domain_approve(struct store *s, int64_t account_id, const char *name,
			 const char *approval, struct store_domain_was *was);
/* Builds the account's policy snapshot from its switch, senders and domains. */
int store_policy_load(struct store *s, int64_t account_id, struct policy **out);
/* A value that changes whenever any account's policy may have changed, in this process or
 * in another one sharing the database. Cheap: called on every send. */
int store_policy_stamp(struct store *s, uint64_t *stamp);
int store_users_list(struct store *s, int64_t account_id, store_user_fn fn, void *arg);
int store_user_get(struct store *s, int64_t account_id, int64_t id, struct store_user *out);
/* Both refuse with STORE_LAST_ADMIN to leave an account without an Admin. */
int store_user_set_role(struct store *s, int64_t account_id, int64_t id, enum role role);
int store_user_delete(struct store *s, int64_t account_id, int64_t id);
/* Sets a user's password hash and ends every other session of the user (all but the one
 * whose token hashes to keep_session_hash), in one transaction. */
int store_user_set_password(struct store *s, int64_t account_id, int64_t id,
			    const char *password_hash, const char *keep_session_hash);
int store_apikey_list(struct store *s, int64_t account_id, store_apikey_fn fn, void *arg);
/* Finds a key that is not revoked by the hash of its text, in the database: sends look keys
 * up through policy_cache_apikey, which keeps the keys found. */
int store_apikey_lookup(struct store *s, const char *key_hash, struct store_apikey *out);
/* Every live key that lists networks (smtp_ips), in the order of their ids. */
int store_apikey_smtp_list(struct store *s, store_apikey_fn fn, void *arg);
int store_apikey_touch(struct store *s, int64_t id, int64_t now);
int store_apikey_revoke(struct store *s, int64_t account_id, int64_t id, int64_t now);
/* Adds the counts of drops to the stored ones, in one transaction. */
int store_drops_add(struct store *s, const struct store_drop *d, size_t n);
/* Adds a whole flush of counters in one transaction: each drop row is a
 * sender_policy.refused event, each monitored row a sender_policy.monitored one. */
int store_counts_add(struct store *s, const struct store_counts *c);
/* The account's sends per From on the days from since_day on, most sent first. */
int store_from_totals(struct store *s, int64_t account_id, int64_t since_day,
		      store_from_total_fn fn, void *arg);
int store_drops_list(struct store *s, int64_t account_id, int limit, store_drop_fn fn, void *arg);
/* Stores messages as queued in one transaction: one fsync for the whole batch. */
int store_messages_add(struct store *s, const struct store_message *m, size_t n);
/* Puts messages left "sending" by a daemon that stopped back in the queue: on SQLite every
 * one (one daemon per file), on PostgreSQL those whose lease has run out (other nodes may
 * be delivering the rest). */
int store_messages_recover(struct store *s);
/* Claims up to max due messages for delivery until lease_until, in one transaction: queued,
 * scheduled or deferred ones whose time has come, or ones whose deliverer's lease ran out. Two
 * nodes never claim the same message. *n is 0 when none is due. */
int store_messages_claim(struct store *s, int64_t now, int64_t lease_until,
			 struct store_queued *out, size_t max, size_t *n);
/* Records that the first parts_done personalizations were accepted by the relay, with the
 * events of the part just sent and the hard bounces it met (added to the suppression list
 * of account_id, the message's account). */
int store_message_progress(struct store *s, int64_t id, int64_t account_id, int parts_done,
			   const struct store_event *ev, size_t nev,
			   const struct store_suppression *sup, size_t nsup);
/* Records the outcomes of claimed messages, in one transaction. */
int store_messages_finish(struct store *s, const struct store_finish *f, size_t n);
/* Newest first; status NULL lists all. */
int store_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
			store_message_fn fn, void *arg);
int store_message_get(struct store *s, int64_t account_id, const char *uid,
		      struct store_message_info *out);
/* Cancels a queued, scheduled or deferred message, in one conditional update, so a worker
 * that claims it at the same moment (on any node) either wins or finds it cancelled; the
 * events (message.dropped for the recipients not sent to yet) are written with it. They
 * were made for parts_done, read before: when a part was sent meanwhile, STORE_TOO_SOON and
 * nothing changes (read again and retry). STORE_CONFLICT when the message is being sent or
 * is done; STORE_NOT_FOUND when the account has no such message. */
int store_message_cancel(struct store *s, int64_t account_id, const char *uid, int64_t now,
			 int parts_done, const struct store_event *ev, size_t nev);
/* The canonical payload of a message (send.h), *out malloc'd; "" once Postern's own mail is
 * done. */
int store_message_payload(struct store *s, int64_t account_id, const char *uid, char **out);
/* Makes a new verification batch b of every pending sender of the account, calling fn for
 * each; STORE_NOT_FOUND when nothing is pending. When the account's last batch is younger
 * than b->gap seconds, makes none and returns STORE_TOO_SOON with b->wait the seconds left. */
int store_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
			struct store_batch_new *b, store_batch_fn fn, void *arg);
/* Reads a batch and the current state of its senders. */
int store_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		    store_batch_fn fn, void *arg);
/* Uses a batch: verifies its senders still pending and marks it used, in one transaction.
 * A batch already used or expired is left as it is (out tells which). */
int store_batch_use(struct store *s, const char *token_hash, int64_t now, struct store_batch *out,
		    store_batch_fn fn, void *arg);
int store_domains_list(struct store *s, int64_t account_id, store_domain_fn fn, void *arg);
int store_domain_get(struct store *s, int64_t account_id, int64_t id, struct store_domain *out);
int store_domain_delete(struct store *s, int64_t account_id, int64_t id);
int store_domain_set_active(struct store *s, int64_t account_id, int64_t id, bool active);
/* Records a DNS check: status, the records' statuses, which selectors were seen. A "next"
 * key seen in DNS becomes the active one and the old key is retired. */
int store_domain_checked(struct store *s, int64_t id, const struct store_domain_check *c);
/* Calls fn for each domain due for a check: pending and failed ones last checked before
 * pending_before, verified ones before verified_before. */
int store_domains_due(struct store *s, int64_t pending_before, int64_t verified_before,
		      store_due_fn fn, void *arg);
/* Adds the next DKIM key of a domain; STORE_CONFLICT while one is already waiting. */
int store_dkim_rotate(struct store *s, int64_t account_id, int64_t id, const char *selector,
		      const char *private_sealed, const char *public_key, int64_t now);
/* The key to sign a message from domain with: the active key of the account's verified,
 * active domain. STORE_NOT_FOUND when mail from it is not to be signed. */
int store_dkim_signing_key(struct store *s, int64_t account_id, const char *domain,
			   char selector[STORE_SELECTOR_MAX], char **private_sealed);
/* Compares check, the DKIM master key's check value, with the one the store holds: STORE_OK
 * when they match, STORE_CONFLICT when not. A store without one yet takes check, unless it
 * holds a sealed DKIM key that opens(arg, sealed) cannot open (keys sealed before the check
 * existed, under another master key): STORE_CONFLICT then, and nothing is written. */
int store_master_check(struct store *s, const char *check, store_opens_fn opens, void *arg);
/* Accepted messages and, per reason, dropped ones for an account. */
int store_stats(struct store *s, int64_t account_id, int64_t *accepted, store_count_fn fn,
		void *arg);
/* Per reason, the account's monitored would-be refusals. */
int store_monitored_stats(struct store *s, int64_t account_id, store_count_fn fn, void *arg);
/* Messages per status as stored (queued, scheduled, sending, deferred, sent, failed,
 * dropped, cancelled; a status with none is not called), of every account: the metrics'
 * gauge. */
int store_message_status_counts(struct store *s, store_count_fn fn, void *arg);
/* The same for an account's unfinished messages only (queued, scheduled, sending,
 * deferred): the overview's queue, which so never counts what was sent or failed. */
int store_queue_counts(struct store *s, int64_t account_id, store_count_fn fn, void *arg);
/* One count of the overview in a UTC hour: the events of a type (message.processed,
 * .delivered, .bounced, .dropped), or the requests the sender policy refused for a reason
 * (refusal true; sandbox requests were not refused). */
struct store_hourly {
	int64_t hour; /* the hour's first second */
	bool refusal;
	const char *kind; /* the event type, or the refusal's reason */
	int64_t count;
};
typedef int (*store_hourly_fn)(void *arg, const struct store_hourly *h);
/* The account's counts per hour from since (an hour's first second) on, in one snapshot. */
int store_overview_hours(struct store *s, int64_t account_id, int64_t since, store_hourly_fn fn,
			 void *arg);

/* Events, newest first: type and message_uid (NULL: any) filter, before_id (0: none) pages. */
int store_events_list(struct store *s, int64_t account_id, const char *type,
		      const char *message_uid, int64_t before_id, int limit, store_event_fn fn,
		      void *arg);
/* events is "*" or ",type,type,"; secret_sealed the endpoint's signing secret, sealed. */
int store_webhook_create(struct store *s, int64_t account_id, const char *url, const char *format,
			 const char *events, const char *secret_sealed, const char *public_key,
			 int64_t now, int64_t *id);
int store_webhooks_list(struct store *s, int64_t account_id, store_webhook_fn fn, void *arg);
int store_webhook_get(struct store *s, int64_t account_id, int64_t id, struct store_webhook *out);
/* Deletes an endpoint and its deliveries not made yet. */
int store_webhook_delete(struct store *s, int64_t account_id, int64_t id);
/* Disabling parks the endpoint's pending deliveries; enabling starts its failure count over
 * and makes them due at once (each still gives up 24 hours after it was made). */
int store_webhook_set_enabled(struct store *s, int64_t account_id, int64_t id, bool enabled);
/* Writes a webhook.test event (data: JSON) delivered to this endpoint only. */
int store_webhook_test(struct store *s, int64_t account_id, int64_t id, const char *data,
		       int64_t now, int64_t *event_id);
/* Claims due deliveries of one enabled endpoint (one whose claimer's lease ran out, else
 * the one whose pending delivery has waited longest), oldest first, until lease_until: up to
 * max for a standard endpoint, max_sendgrid for a SendGrid one (out holds the larger). Two
 * nodes never claim the same delivery. The endpoint is read into hook, its sealed secret
 * into *secret_sealed (malloc'd) and the claim's token into claim. *n is 0 when none is
 * due. Free the deliveries with store_deliveries_free. */
int store_webhook_claim(struct store *s, int64_t now, int64_t lease_until, size_t max,
			size_t max_sendgrid, struct store_webhook *hook, char **secret_sealed,
			char claim[STORE_CLAIM_LEN], struct store_delivery *out, size_t *n);
void store_deliveries_free(struct store_delivery *d, size_t n);
/* Puts deliveries left "sending" by a daemon that stopped back as pending, without counting
 * the attempt: on SQLite every one (one daemon per file), on PostgreSQL none (other nodes
 * may be posting them; a lapsed lease makes them due again). */
int store_deliveries_recover(struct store *s);
/* Hands back claimed deliveries ids[0..n) of the endpoint that were not posted (a worker
 * stopping): pending and due at once, their attempt not counted. Only those still under
 * this claim change. */
int store_webhook_release(struct store *s, int64_t webhook_id, const char *claim,
			  const int64_t *ids, size_t n);
/* Records the outcome of one POST of the claimed deliveries ids[0..n), those still under
 * r->claim (a late result after the lease ran out changes nothing another claim took): on
 * success they are deleted; otherwise each waits until next_at[i], or is marked failed when
 * next_at[i] is 0, and the endpoint's other pending deliveries wait until r->retry_at. The
 * endpoint's last status and time are set, and an endpoint failing for r->disable_after
 * seconds without a success is disabled, its pending deliveries parked. */
int store_webhook_done(struct store *s, const struct store_webhook_result *r, const int64_t *ids,
		       const int64_t *next_at, size_t n);

/* The suppression list. Listed newest first (by id): email (NULL: any) is an exact,
 * normalized address, reason (NULL: any) one of the three; before_id (0: none) pages. */
typedef int (*store_suppression_fn)(void *arg, const struct store_suppression *e);
int store_suppressions_list(struct store *s, int64_t account_id, const char *email,
			    const char *reason, int64_t before_id, int limit,
			    store_suppression_fn fn, void *arg);
/* Adds entries (e[i].reason, message_uid and detail as given, created_at = now); one the
 * account lists already stays as it is. *added (may be NULL) counts the new ones. */
int store_suppressions_add(struct store *s, int64_t account_id, const struct store_suppression *e,
			   size_t n, int64_t now, int *added);
int store_suppression_delete(struct store *s, int64_t account_id, const char *email);
/* For each of emails[0..n) (normalized), whether the account suppresses it: out[i]. One
 * read for the lot; an account with no entry costs one indexed probe. */
int store_suppressed(struct store *s, int64_t account_id, const char *const *emails, size_t n,
		     bool *out);

/* Reports received at the return path (bounces.h). */
#define STORE_REPORT_KEEP (64 * 1024) /* bytes of a report kept once parsed */
/* A return path a report was sent to: the VERP address and the message uid it names. */
struct store_report_path {
	const char *rcpt;
	const char *message_uid;
};
struct store_report_in {
	const char *client_ip;
	const char *mail_from;		       /* "" for the null sender */
	const struct store_report_path *paths; /* one stored report each */
	size_t npaths;
	const char *data; /* the report as received, any bytes */
	size_t len;
	int64_t now;
};
/* Stores a new report once for each of its paths, ids[0..npaths) getting their ids, in one
 * transaction committed to disk (a full commit, never a relaxed one): all or none, so a
 * client told to send it again never has part of it stored twice. */
int store_report_add(struct store *s, const struct store_report_in *r, int64_t *ids);

/* A report claimed for parsing, or listed. */
struct store_report {
	int64_t id;
	int64_t received_at;
	char client_ip[64];
	char mail_from[ADDR_MAX];
	char rcpt[ADDR_MAX];
	char message_uid[40];
	int64_t account_id; /* 0 until parsed, and when the message is unknown */
	char status[12];    /* new, parsing, done, unparsed, orphan */
	char kind[12];	    /* dsn, arf, text; "" until parsed */
	int64_t size;	    /* bytes as received */
	char *data;	    /* the report (its first STORE_REPORT_KEEP bytes once parsed),
			     * malloc'd; len bytes */
	size_t len;
	char *detail; /* JSON object, malloc'd */
	int64_t parsed_at;
};
/* Claims up to max reports that are new, or 'parsing' with their lease run out, oldest
 * first, until lease_until; claim gets the token. Free with store_reports_free. */
int store_reports_claim(struct store *s, int64_t now, int64_t lease_until,
			char claim[STORE_CLAIM_LEN], struct store_report *out, size_t max,
			size_t *n);
void store_reports_free(struct store_report *r, size_t n);
/* What parsing made of a claimed report: all written in one transaction, only while the
 * report is still under claim (else STORE_CONFLICT and nothing is written). */
struct store_report_result {
	int64_t id;
	const char *claim;
	const char *status; /* done, unparsed (kept for a person) or orphan (message unknown) */
	const char *kind;   /* dsn, arf, text; NULL when unparsed */
	int64_t account_id; /* the message's account; 0 for an orphan */
	const char *detail; /* JSON object: what was read (recipients, statuses), NULL {} */
	const char *message_uid;	  /* the events' message */
	const struct store_event *events; /* message.bounced, .deferred, .complained */
	size_t nevents;
	const struct store_suppression *suppress; /* hard bounces and complaints */
	size_t nsuppress;
	int64_t now;
};
int store_report_done(struct store *s, const struct store_report_result *r);
/* Puts reports left 'parsing' by a daemon that stopped back as new (SQLite only, as
 * store_deliveries_recover). */
int store_reports_recover(struct store *s);
/* An account's reports, newest first: status (NULL: any) filters, before_id pages. data is
 * valid during the callback, and read for an unparsed report only (empty for the others). */
typedef int (*store_report_fn)(void *arg, const struct store_report *r);
int store_reports_list(struct store *s, int64_t account_id, const char *status, int64_t before_id,
		       int limit, store_report_fn fn, void *arg);
/* A message's account and payload (malloc'd, free it), for applying a report to it.
 * STORE_NOT_FOUND when no message has that uid. */
int store_message_for_report(struct store *s, const char *uid, int64_t *account_id, char **payload,
			     bool *system);

/* Retention (store_retention.c): what a purge removes, each in small batches. Messages and
 * bodies are those of finished messages (sent, failed, dropped, cancelled) accepted before the
 * cut; events are the account's own and strays of messages gone; reports are those parsed
 * (or given up on); the counters are rows of a minute (drops, monitored) or a day
 * (from_counts) wholly before it. */
enum store_purge {
	STORE_PURGE_BODIES,   /* payloads cleared; the message's row stays */
	STORE_PURGE_MESSAGES, /* rows deleted, with their events */
	STORE_PURGE_EVENTS,
	STORE_PURGE_REPORTS,
	STORE_PURGE_DROPS,
	STORE_PURGE_MONITORED,
	STORE_PURGE_FROM_COUNTS,
	STORE_PURGE_N
};
struct store_purged {
	int64_t rows;	/* rows deleted, or bodies cleared */
	int64_t events; /* STORE_PURGE_MESSAGES: the messages' events deleted with them */
};
/* Removes at most max rows of what that are older than before, in one short transaction of
 * its own; rows another node is purging are passed over. out says how many
 * went: fewer than max means none is left for now. */
int store_purge(struct store *s, enum store_purge what, int64_t before, int max,
		struct store_purged *out);

#endif
