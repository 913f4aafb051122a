/* The SQLite driver under the store (db.h), the embedded default: one connection behind a
 * mutex keeps writes ordered; WAL with synchronous=FULL, so a committed write survives a
 * power cut; foreign keys on. Statements are prepared once and kept, since every send runs
 * the same few. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#define SL_CACHE   256	/* statements kept prepared; any more are prepared for each use */
#define SL_BUSY_MS 5000 /* how long a statement waits for a lock another connection holds */

/* Each entry moves the schema from version i to i+1. Never edit a released entry; append.
 * Tables whose rows are deleted use AUTOINCREMENT: an id is never given to a new row, so a
 * request that read a row cannot act on its successor. */
#define CHECKPOINT_MS	   50	 /* how often the WAL is copied back into the database */
#define WAL_RESTART_FRAMES 16384 /* 64 MB of 4 KB pages: then the WAL starts over */

#define BUMP "UPDATE policy_version SET v = v + 1 WHERE id = 1;"

static const char *const migrations[] = {
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin','technical','analytics','marketing')),"
	"  created_at INTEGER NOT NULL, disabled_at INTEGER);"
	"CREATE INDEX users_account ON users(account_id);"
	"CREATE TABLE login_failures ("
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  at INTEGER NOT NULL);"
	"CREATE INDEX login_failures_user ON login_failures(user_id, at);"
	"CREATE TABLE sessions ("
	"  token_hash TEXT PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
	"CREATE INDEX sessions_user ON sessions(user_id);"
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, shown TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
	"  created_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER);"
	"CREATE INDEX api_keys_account ON api_keys(account_id);"
	"CREATE TABLE settings ("
	"  account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sender_auth_enabled INTEGER NOT NULL DEFAULT 0,"
	"  updated_at INTEGER, updated_by INTEGER REFERENCES users(id) ON DELETE SET NULL);"
	"CREATE TABLE sending_domains ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending','verified','failed')),"
	"  active INTEGER NOT NULL DEFAULT 1,"
	"  token TEXT NOT NULL," /* the ownership record's value, unique per account */
	/* Marked verified by an operator (postern domain add|set --verified): the
	 * scheduler leaves it alone; an explicit check still looks. */
	"  manual INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL, checked_at INTEGER, check_error TEXT,"
	"  missing_since INTEGER," /* first check that missed the records of a verified domain */
	"  records TEXT,"	   /* JSON: each record's status at the last check */
	"  UNIQUE (account_id, name));"
	"CREATE TABLE dkim_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  domain_id INTEGER NOT NULL REFERENCES sending_domains(id) ON DELETE CASCADE,"
	"  selector TEXT NOT NULL, private_sealed TEXT NOT NULL, public_key TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('active','next','retired')),"
	"  verified INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
	"  retired_at INTEGER,"
	"  UNIQUE (domain_id, selector));"
	"CREATE TABLE senders ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL, domain TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','verified')),"
	"  added_by INTEGER REFERENCES users(id) ON DELETE SET NULL, added_at INTEGER NOT NULL,"
	"  verified_by INTEGER REFERENCES users(id) ON DELETE SET NULL, verified_at INTEGER,"
	"  verified_via TEXT CHECK (verified_via IN ('panel','link')),"
	"  UNIQUE (account_id, address));"
	"CREATE TABLE verification_tokens ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER);"
	/* The address is kept so a batch can say which of its senders were removed since. */
	"CREATE TABLE verification_token_senders ("
	"  token_id INTEGER NOT NULL REFERENCES verification_tokens(id) ON DELETE CASCADE,"
	"  sender_id INTEGER REFERENCES senders(id) ON DELETE SET NULL,"
	"  address TEXT NOT NULL,"
	"  PRIMARY KEY (token_id, address));"
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id INTEGER REFERENCES api_keys(id) ON DELETE SET NULL,"
	"  system INTEGER NOT NULL DEFAULT 0," /* Postern's own mail, outside the policy */
	"  from_addr TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'queued'"
	"    CHECK (status IN ('queued','deferred','sending','sent','failed','dropped')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
	"  lease_until INTEGER, parts_done INTEGER NOT NULL DEFAULT 0,"
	"  recipients INTEGER NOT NULL, payload TEXT NOT NULL, reason TEXT, last_reply TEXT,"
	"  rejected TEXT," /* JSON: recipients the relay refused, with its replies */
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE INDEX messages_due ON messages(status, next_attempt_at);"
	"CREATE INDEX messages_account ON messages(account_id, id);"
	/* One row per account, key, From, reason and minute: a flood of refusals becomes a
	 * counter, not a table that fills the disk. api_key_id 0 means no key. */
	"CREATE TABLE drops ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id INTEGER NOT NULL, from_addr TEXT NOT NULL, reason TEXT NOT NULL,"
	"  minute INTEGER NOT NULL, count INTEGER NOT NULL,"
	"  UNIQUE (account_id, api_key_id, from_addr, reason, minute));"
	"CREATE INDEX drops_account ON drops(account_id, minute);"
	"CREATE TABLE audit_log ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,"
	"  at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
	"  target TEXT, detail TEXT, ip TEXT);"
	"CREATE INDEX audit_account ON audit_log(account_id, id);",
	/* 2: a counter that every write to what a policy (or an API key check) is built from
	 * moves, whoever writes it: the stamp that tells cached snapshots they are stale. */
	"CREATE TABLE policy_version (id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL);"
	"INSERT INTO policy_version (id, v) VALUES (1, 0);"
	"CREATE TRIGGER settings_policy_i AFTER INSERT ON settings BEGIN " BUMP " END;"
	"CREATE TRIGGER settings_policy_u AFTER UPDATE ON settings BEGIN " BUMP " END;"
	"CREATE TRIGGER settings_policy_d AFTER DELETE ON settings BEGIN " BUMP " END;"
	"CREATE TRIGGER senders_policy_i AFTER INSERT ON senders BEGIN " BUMP " END;"
	"CREATE TRIGGER senders_policy_u AFTER UPDATE ON senders BEGIN " BUMP " END;"
	"CREATE TRIGGER senders_policy_d AFTER DELETE ON senders BEGIN " BUMP " END;"
	"CREATE TRIGGER sending_domains_policy_i AFTER INSERT ON sending_domains BEGIN " BUMP
	" END;"
	"CREATE TRIGGER sending_domains_policy_u AFTER UPDATE ON sending_domains BEGIN " BUMP
	" END;"
	"CREATE TRIGGER sending_domains_policy_d AFTER DELETE ON sending_domains BEGIN " BUMP
	" END;"
	"CREATE TRIGGER api_keys_policy_u AFTER UPDATE OF revoked_at ON api_keys BEGIN " BUMP
	" END;"
	"CREATE TRIGGER api_keys_policy_d AFTER DELETE ON api_keys BEGIN " BUMP " END;",
	/* 3: facts about the installation as a whole, such as the DKIM master key's check
	 * value, which tells a node started with another master key to refuse. */
	"CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
	/* 4: login emails are unique per account, not across accounts, so adding a user
	 * tells nothing about other accounts; failed logins are counted per throttle key
	 * (a hash of what is guessed and from where), known user or not. SQLite cannot
	 * change a constraint, so users is rebuilt; dropping the old table runs its foreign
	 * keys' actions, so what points at users is kept aside and put back. */
	"DROP TABLE login_failures;"
	"CREATE TEMP TABLE m4_sessions AS SELECT * FROM sessions;"
	"CREATE TEMP TABLE m4_settings AS SELECT account_id, updated_by FROM settings;"
	"CREATE TEMP TABLE m4_senders AS SELECT id, added_by, verified_by FROM senders;"
	"CREATE TEMP TABLE m4_tokens AS SELECT id, created_by FROM verification_tokens;"
	"CREATE TEMP TABLE m4_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'users';"
	"CREATE TABLE users_new ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL, password_hash TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin','technical','analytics','marketing')),"
	"  created_at INTEGER NOT NULL, disabled_at INTEGER,"
	"  UNIQUE (account_id, email));"
	"INSERT INTO users_new SELECT id, account_id, email, password_hash, role, created_at,"
	"  disabled_at FROM users;"
	"DROP TABLE users;"
	"ALTER TABLE users_new RENAME TO users;"
	"CREATE INDEX users_account ON users(account_id);"
	"UPDATE sqlite_sequence SET seq = (SELECT seq FROM m4_seq)"
	"  WHERE name = 'users' AND EXISTS (SELECT 1 FROM m4_seq);"
	"INSERT INTO sessions SELECT * FROM m4_sessions;"
	"UPDATE settings SET updated_by = (SELECT updated_by FROM m4_settings m"
	"  WHERE m.account_id = settings.account_id);"
	"UPDATE senders SET"
	"  added_by = (SELECT added_by FROM m4_senders m WHERE m.id = senders.id),"
	"  verified_by = (SELECT verified_by FROM m4_senders m WHERE m.id = senders.id);"
	"UPDATE verification_tokens SET created_by = (SELECT created_by FROM m4_tokens m"
	"  WHERE m.id = verification_tokens.id);"
	"DROP TABLE m4_sessions; DROP TABLE m4_settings; DROP TABLE m4_senders;"
	"DROP TABLE m4_tokens; DROP TABLE m4_seq;"
	"CREATE TABLE login_throttle ("
	"  key_hash TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_at INTEGER NOT NULL,"
	"  blocked_until INTEGER NOT NULL);"
	"CREATE INDEX login_throttle_last ON login_throttle(last_at);",
	/* 5: scheduled sending (issue 15): the statuses scheduled and cancelled, and the send
	 * time asked for. SQLite cannot change a check, so messages is rebuilt; no table
	 * points at it. SELECT * fails loudly should a column have been added before this. */
	"CREATE TABLE messages_new ("
	"  id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id INTEGER REFERENCES api_keys(id) ON DELETE SET NULL,"
	"  system INTEGER NOT NULL DEFAULT 0, from_addr TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'queued'"
	"    CHECK (status IN ('queued','scheduled','deferred','sending','sent','failed',"
	"      'dropped','cancelled')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
	"  lease_until INTEGER, parts_done INTEGER NOT NULL DEFAULT 0,"
	"  recipients INTEGER NOT NULL, payload TEXT NOT NULL, reason TEXT, last_reply TEXT,"
	"  rejected TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  send_at INTEGER);"
	"INSERT INTO messages_new SELECT *, NULL FROM messages;"
	"DROP TABLE messages;"
	"ALTER TABLE messages_new RENAME TO messages;"
	"CREATE INDEX messages_due ON messages(status, next_attempt_at);"
	"CREATE INDEX messages_account ON messages(account_id, id);",
	/* 6: SMTP submission (issue 16): where a message came in (api, smtp or system), and
	 * the networks a key may send from over SMTP without AUTH. A key made with networks
	 * moves the policy stamp, so every cache sees it at once. */
	"ALTER TABLE messages ADD COLUMN source TEXT NOT NULL DEFAULT 'api';"
	"UPDATE messages SET source = 'system' WHERE system = 1;"
	"ALTER TABLE api_keys ADD COLUMN smtp_ips TEXT NOT NULL DEFAULT '';"
	"CREATE TRIGGER api_keys_policy_i AFTER INSERT ON api_keys WHEN NEW.smtp_ips <> ''"
	"  BEGIN " BUMP " END;",
	/* 7: events and signed webhooks (issue 17). An event is written in the transaction of
	 * the change it reports, and so is one delivery row per endpoint that wants it (the
	 * fan-out), so a crash neither loses nor invents one. A message keeps what its events
	 * repeat (tags, custom_args) once, in meta. Deliveries are claimed like messages; a
	 * disabled endpoint's pending ones are parked at next_attempt_at 2^62 (store_events.c),
	 * so no claim walks past them. The claim finds the oldest due delivery through _due
	 * and an endpoint's through _hook, both in index order (the rowid ends each key). */
	"ALTER TABLE messages ADD COLUMN meta TEXT;"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  type TEXT NOT NULL, created_at INTEGER NOT NULL,"
	"  message_uid TEXT, recipient TEXT, data TEXT NOT NULL DEFAULT '{}');"
	"CREATE INDEX events_account ON events(account_id, id);"
	"CREATE INDEX events_message ON events(message_uid, id) WHERE message_uid IS NOT NULL;"
	"CREATE TABLE webhooks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  url TEXT NOT NULL,"
	"  format TEXT NOT NULL CHECK (format IN ('standard','sendgrid')),"
	"  events TEXT NOT NULL,"	 /* ",message.delivered,sender.added," or "*" for all */
	"  secret_sealed TEXT NOT NULL," /* the HMAC secret or the ECDSA private key, sealed */
	"  public_key TEXT NOT NULL DEFAULT '',"
	"  enabled INTEGER NOT NULL DEFAULT 1,"
	"  created_at INTEGER NOT NULL, last_at INTEGER, last_status TEXT,"
	"  last_success_at INTEGER, failing_since INTEGER, disabled_at INTEGER,"
	"  retry_at INTEGER);" /* after a failed POST: new deliveries wait until then */
	"CREATE INDEX webhooks_account ON webhooks(account_id, enabled);"
	"CREATE TABLE webhook_deliveries ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
	"  event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending','sending','failed')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
	"  lease_until INTEGER, claim TEXT, created_at INTEGER NOT NULL, last_status TEXT);"
	"CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);"
	"CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, status, "
	"  next_attempt_at);"
	"CREATE INDEX webhook_deliveries_claim ON webhook_deliveries(claim)"
	"  WHERE claim IS NOT NULL;"
	"CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);",
	/* 8: bounces, complaints and the suppression list (issue 18). A report is kept as it
	 * arrived (base64: it may hold any byte) from before the listener's 250 until parsed;
	 * then only its first 64 KiB stay, for the operator to read. Reports are claimed like
	 * messages. A suppression is one (account, address), the address in lower case. */
	"CREATE TABLE suppressions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL,"
	"  reason TEXT NOT NULL CHECK (reason IN ('hard_bounce','complaint','manual')),"
	"  created_at INTEGER NOT NULL, message_uid TEXT, detail TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (account_id, email));"
	"CREATE INDEX suppressions_account ON suppressions(account_id, id);"
	"CREATE TABLE bounce_reports ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  received_at INTEGER NOT NULL, client_ip TEXT NOT NULL,"
	"  mail_from TEXT NOT NULL, rcpt TEXT NOT NULL,"
	"  message_uid TEXT NOT NULL," /* from the VERP address */
	"  account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE," /* once parsed */
	"  status TEXT NOT NULL DEFAULT 'new'"
	"    CHECK (status IN ('new','parsing','done','unparsed','orphan')),"
	"  kind TEXT," /* 'dsn', 'arf' or 'text' once parsed */
	"  size INTEGER NOT NULL, raw TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}',"
	"  lease_until INTEGER, claim TEXT, parsed_at INTEGER);"
	"CREATE INDEX bounce_reports_due ON bounce_reports(status, id);"
	"CREATE INDEX bounce_reports_account ON bounce_reports(account_id, id)"
	"  WHERE account_id IS NOT NULL;",
	/* 9: sender authorization beyond the original (issue 19). Monitor mode beside the switch
	 * (it counts only while the switch is off); how senders are confirmed, by an Admin, by
	 * their owner through a link mailed to the address itself, or both; keys scoped to
	 * senders, domains, networks and purposes (a key's scope moves the policy stamp, as its
	 * revocation does); domains an operator must approve; and sends counted per From and
	 * day (aggregated like drops) with monitored would-be refusals, for the preflight. */
	"ALTER TABLE settings ADD COLUMN sender_auth_monitor INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE settings ADD COLUMN sender_confirmation TEXT NOT NULL DEFAULT 'admin'"
	"  CHECK (sender_confirmation IN ('admin','owner','both'));"
	"ALTER TABLE senders ADD COLUMN admin_verified_at INTEGER;"
	"ALTER TABLE senders ADD COLUMN owner_confirmed_at INTEGER;"
	"UPDATE senders SET admin_verified_at = verified_at WHERE status = 'verified';"
	"CREATE TABLE owner_tokens ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sender_id INTEGER NOT NULL REFERENCES senders(id) ON DELETE CASCADE,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER);"
	"CREATE INDEX owner_tokens_sender ON owner_tokens(sender_id);"
	"ALTER TABLE api_keys ADD COLUMN senders TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE api_keys ADD COLUMN domains TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'mail.send';"
	"ALTER TABLE api_keys ADD COLUMN role TEXT"
	"  CHECK (role IN ('technical','analytics','marketing'));"
	"CREATE TRIGGER api_keys_scope_u AFTER UPDATE OF senders, domains, allowed_ips, scopes,"
	"  role, smtp_ips ON api_keys BEGIN " BUMP " END;"
	"ALTER TABLE sending_domains ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved'"
	"  CHECK (approval IN ('required','approved','rejected'));"
	"CREATE TABLE from_counts ("
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  from_addr TEXT NOT NULL, day INTEGER NOT NULL,"
	"  sends INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	"  PRIMARY KEY (account_id, from_addr, day));"
	"CREATE TABLE monitored ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id INTEGER NOT NULL, from_addr TEXT NOT NULL, reason TEXT NOT NULL,"
	"  minute INTEGER NOT NULL, count INTEGER NOT NULL,"
	"  UNIQUE (account_id, api_key_id, from_addr, reason, minute));"
	"CREATE INDEX monitored_account ON monitored(account_id, minute);",
	/* 10: the SPF records a domain published at its last check (issue 20): the advised
	 * SPF record is merged with them, never a second one. */
	"ALTER TABLE sending_domains ADD COLUMN spf_seen TEXT",
	/* 11: retention (issue 20). Each purge walks an index of the rows that can go, oldest
	 * first, so a round with nothing to do costs a probe and a purge never scans a table.
	 * The partial ones hold finished messages only: a message enters them when it
	 * finishes, not on the accept path, and leaves the bodies' once its payload is
	 * cleared. Their conditions are spelled as store_retention.c's queries spell them. */
	"CREATE INDEX messages_finished ON messages(status, created_at)"
	"  WHERE status IN ('sent','failed','dropped','cancelled');"
	"CREATE INDEX messages_bodies ON messages(status, created_at)"
	"  WHERE status IN ('sent','failed','dropped','cancelled') AND payload <> '';"
	"CREATE INDEX events_created ON events(created_at);"
	"CREATE INDEX bounce_reports_finished ON bounce_reports(status, received_at)"
	"  WHERE status IN ('done','unparsed','orphan');"
	"CREATE INDEX drops_minute ON drops(minute);"
	"CREATE INDEX monitored_minute ON monitored(minute);"
	"CREATE INDEX from_counts_day ON from_counts(day);",
};

/* A statement: kept in the cache (reset when done) or prepared for one use (finalized). */
struct db_res {
	sqlite3_stmt *st;
	const char *sql; /* the caller's text (a literal), compared by address, then content */
	bool cached;
	bool busy; /* handed out and not done yet */
};

struct db_conn {
	sqlite3 *h;
	int ncached;
	struct db_res cache[SL_CACHE];
};

/* Two connections: one for writes, one for reads. In WAL mode a reader never waits for
 * the writer, which holds its connection across each commit's fsync. A third one copies
 * the WAL back into the database from a thread of its own, so no commit pays for it. */
struct sl {
	struct db base;
	pthread_mutex_t lock;
	struct db_conn conn;
	pthread_mutex_t read_lock;
	struct db_conn reader;
	sqlite3 *checkpointer;
	/* The policy stamp: a counter in <database>-policy, mapped by every Postern process
	 * on the file, moved after each commit that can change a policy; plus what the
	 * checkpoint thread sees of policy_version, for changes made by anything else. */
	_Atomic uint64_t *shared;
	_Atomic uint64_t own; /* stands in for the file when it cannot be mapped */
	_Atomic uint64_t external;
	atomic_bool restart_wanted;
	int64_t version_seen;
	struct worker *checkpoint_thread;
};

static struct sl *sl_of(struct db *db)
{
	return (struct sl *)db;
}

static struct db_conn *sl_acquire(struct db *db)
{
	pthread_mutex_lock(&sl_of(db)->lock);
	return &sl_of(db)->conn;
}

static struct db_conn *sl_acquire_read(struct db *db)
{
	pthread_mutex_lock(&sl_of(db)->read_lock);
	return &sl_of(db)->reader;
}

static void sl_release(struct db *db, struct db_conn *c)
{
	struct sl *d = sl_of(db);
	if (c == &d->reader) {
		pthread_mutex_unlock(&d->read_lock);
		return;
	}
	/* Most of the WAL is in the database already (the checkpoint thread copied it), so
	 * this copies the rest and starts the WAL over in about a millisecond. */
	if (atomic_load(&d->restart_wanted) && sqlite3_get_autocommit(c->h)) {
		atomic_store(&d->restart_wanted, false);
		/* Without waiting for readers: a long one (postern backup's snapshot) would hold
		 * every write for the busy timeout. Busy, the checkpoint thread asks again. */
		sqlite3_busy_timeout(c->h, 0);
		int rc = sqlite3_wal_checkpoint_v2(c->h, NULL, SQLITE_CHECKPOINT_RESTART, NULL,
						   NULL);
		sqlite3_busy_timeout(c->h, SL_BUSY_MS);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("store: restarting the WAL: %s", sqlite3_errmsg(c->h));
	}
	pthread_mutex_unlock(&d->lock);
}

static int sl_fail(struct db_conn *c, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(c->h));
	return STORE_FAIL;
}

/* What a failed step means to the store, by SQLite's extended code, then its primary code:
 * the row's own fault (retrying the others without it can succeed) or the database's (busy,
 * full, I/O), which every write shares. */
static const struct {
	int code;
	int rc;
} sl_errors[] = {
	{SQLITE_CONSTRAINT_UNIQUE, STORE_CONFLICT},
	{SQLITE_CONSTRAINT_PRIMARYKEY, STORE_CONFLICT},
	{SQLITE_CONSTRAINT_FOREIGNKEY, STORE_CONFLICT},
	{SQLITE_CONSTRAINT, STORE_REFUSED}, /* a check, NOT NULL, a trigger's RAISE(ABORT) */
	{SQLITE_MISMATCH, STORE_REFUSED},
	{SQLITE_TOOBIG, STORE_REFUSED},
};

static int sl_failed(sqlite3 *h, const char *what)
{
	int code = sqlite3_extended_errcode(h);
	int rc = STORE_FAIL;
	for (size_t i = 0; i < ARRAY_LEN(sl_errors) && rc == STORE_FAIL; i++)
		if (sl_errors[i].code == code || sl_errors[i].code == (code & 0xff))
			rc = sl_errors[i].rc;
	/* A conflict is the caller's answer ("already exists"), not a failure. */
	if (rc != STORE_CONFLICT)
		log_error("store: %s: %s", what, sqlite3_errmsg(h));
	return rc;
}

/* True when sql holds more than one statement (a migration). */
static bool sl_script(const char *tail)
{
	while (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';')
		tail++;
	return *tail != '\0';
}

/* The statement for sql: the cached one when it is free, else a new one, kept while the
 * cache has room. NULL when it cannot be prepared, or when sql is a script (*script). */
static struct db_res *sl_statement(struct db_conn *c, const char *sql, bool *script)
{
	bool nested = false;
	for (int i = 0; i < c->ncached; i++) {
		struct db_res *r = &c->cache[i];
		if (r->sql != sql || strcmp(sqlite3_sql(r->st), sql) != 0)
			continue;
		if (!r->busy)
			return r;
		nested = true; /* the same statement, run again inside its own loop */
		break;
	}
	bool keep = !nested && c->ncached < SL_CACHE;
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	if (sqlite3_prepare_v3(c->h, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, &tail) !=
	    SQLITE_OK) {
		sl_fail(c, "prepare");
		return NULL;
	}
	if (tail && sl_script(tail)) {
		sqlite3_finalize(st);
		*script = true;
		return NULL;
	}
	struct db_res *r = keep ? &c->cache[c->ncached++] : xcalloc(1, sizeof(*r));
	*r = (struct db_res){.st = st, .sql = sql, .cached = keep};
	return r;
}

static void sl_done(struct db_res *r)
{
	if (!r)
		return;
	if (!r->cached) {
		sqlite3_finalize(r->st);
		free(r);
		return;
	}
	sqlite3_reset(r->st);
	sqlite3_clear_bindings(r->st);
	r->busy = false;
}

static int sl_bind(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	for (int i = 0; fmt[i]; i++) {
		int rc;
		const char *s;
		switch (fmt[i]) {
		case 'i':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'd':
			rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
			break;
		default:
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i + 1);
			break;
		}
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* Runs a script of statements without arguments or rows: the migrations. */
static int sl_exec(struct db_conn *c, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(c->h, sql, NULL, NULL, &msg) == SQLITE_OK)
		return STORE_NOT_FOUND;
	log_error("store: %s", msg ? msg : "cannot run a script");
	sqlite3_free(msg);
	return STORE_FAIL;
}

static int sl_query(struct db_conn *c, struct db_res **res, const char *sql, const char *fmt,
		    va_list ap)
{
	bool script = false;
	*res = NULL;
	struct db_res *r = sl_statement(c, sql, &script);
	if (!r && script && *fmt)
		log_error("store: a script takes no arguments");
	if (!r)
		return script && !*fmt ? sl_exec(c, sql) : STORE_FAIL;
	r->busy = true;
	int rc = sl_bind(r->st, fmt, ap);
	if (rc != SQLITE_OK) {
		sl_fail(c, "bind");
		sl_done(r);
		return STORE_FAIL;
	}
	rc = sqlite3_step(r->st);
	if (rc == SQLITE_ROW) {
		*res = r;
		return STORE_OK;
	}
	int out;
	if (rc == SQLITE_DONE)
		out = STORE_NOT_FOUND;
	/* A ROLLBACK with no transaction left (a failed COMMIT ended it) is no error, as on
	 * PostgreSQL, where it only warns. */
	else if (sqlite3_get_autocommit(c->h) && strcmp(sql, "ROLLBACK") == 0)
		out = STORE_NOT_FOUND;
	else
		out = sl_failed(c->h, "step");
	sl_done(r);
	return out;
}

static int sl_next(struct db_res *r)
{
	int rc = sqlite3_step(r->st);
	if (rc == SQLITE_ROW)
		return STORE_OK;
	if (rc == SQLITE_DONE)
		return STORE_NOT_FOUND;
	return sl_failed(sqlite3_db_handle(r->st), "step");
}

static int64_t sl_col_int(struct db_res *r, int col)
{
	return sqlite3_column_int64(r->st, col);
}

static const char *sl_col_text(struct db_res *r, int col)
{
	return (const char *)sqlite3_column_text(r->st, col);
}

static int64_t sl_changes(struct db_conn *c)
{
	return sqlite3_changes(c->h);
}

/* Two memory reads: sends ask on every request. Both counters only grow, so their sum
 * moves whenever either does (a shift or a mix of the two could lose one of them). */
static int sl_stamp(struct db *db, uint64_t *stamp)
{
	struct sl *d = sl_of(db);
	*stamp = atomic_load(&d->external) + atomic_load(d->shared);
	return STORE_OK;
}

static void sl_changed(struct db *db)
{
	atomic_fetch_add(sl_of(db)->shared, 1);
}

/* Takes group and other access away from a file an older version created 0644. A file
 * that belongs to another user (root running the CLI on the daemon's database) is left as
 * its owner keeps it, with a warning. */
static int sl_tighten(int fd, const char *name)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	if (!(st.st_mode & 077) || fchmod(fd, st.st_mode & 0700) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	log_warn("%s: readable by others (mode %03o), and not ours to change; chmod 600 it", name,
		 (unsigned)(st.st_mode & 0777));
	return 0;
}

/* The database holds password hashes, sealed keys and the queue: only its owner may read
 * it. SQLite gives the -wal and -shm it creates the database file's mode, so the file is
 * made 0600 before SQLite opens it; files of an older version are tightened. */
static int sl_private_files(const char *path, char *err, size_t errlen)
{
	static const char *const beside[] = {"", "-wal", "-shm", "-journal"};
	char name[4096];
	for (size_t i = 0; i < ARRAY_LEN(beside); i++) {
		if (snprintf(name, sizeof(name), "%s%s", path, beside[i]) >= (int)sizeof(name)) {
			snprintf(err, errlen, "%s: path too long", path);
			return -1;
		}
		/* A symbolic link is followed, as SQLite follows it (a database on a volume). */
		int fd = open(name, O_RDWR | O_CLOEXEC | (i ? 0 : O_CREAT), 0600);
		if (fd < 0 && i && errno == ENOENT)
			continue;
		if (fd < 0 || sl_tighten(fd, name) < 0) {
			snprintf(err, errlen, "%s: cannot make it private (mode 0600): %s", name,
				 strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Maps <path>-policy (8 bytes, created if missing); NULL when it cannot be. */
static _Atomic uint64_t *sl_map_stamp(const char *path)
{
	char name[4096];
	if (snprintf(name, sizeof(name), "%s-policy", path) >= (int)sizeof(name))
		return NULL;
	int fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	struct stat st;
	void *p = MAP_FAILED;
	if (sl_tighten(fd, name) == 0 && fstat(fd, &st) == 0 &&
	    (st.st_size >= (off_t)sizeof(uint64_t) || ftruncate(fd, sizeof(uint64_t)) == 0))
		p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* policy_version, moved by triggers on every write to what a policy is built from, catches
 * changes made without Postern (an operator's sqlite3 session) within a checkpoint tick. */
static void sl_watch_version(struct sl *d)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(d->checkpointer, "SELECT v FROM policy_version WHERE id = 1", -1,
			       &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(st, 0);
		if (v != d->version_seen)
			atomic_fetch_add(&d->external, 1);
		d->version_seen = v;
	}
	sqlite3_finalize(st);
}

static void sl_close_conn(struct db_conn *c)
{
	for (int i = 0; i < c->ncached; i++)
		sqlite3_finalize(c->cache[i].st);
	sqlite3_close(c->h);
}

/* PASSIVE never blocks the writer or the readers; it copies what it can, and the writer
 * starts the WAL over once everything in it is in the database. */
static void sl_checkpoint_loop(void *arg, struct worker *self)
{
	struct sl *d = arg;
	while (worker_wait(self, CHECKPOINT_MS)) {
		sl_watch_version(d);
		int frames = 0;
		int rc = sqlite3_wal_checkpoint_v2(d->checkpointer, NULL, SQLITE_CHECKPOINT_PASSIVE,
						   &frames, NULL);
		/* Under steady load the writer is always ahead of the copy, so the WAL never
		 * starts over by itself: past a size, the writer restarts it between two
		 * transactions (sl_release), where it waits for no other writer. */
		if (rc == SQLITE_OK && frames > WAL_RESTART_FRAMES)
			atomic_store(&d->restart_wanted, true);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("store: checkpoint: %s", sqlite3_errmsg(d->checkpointer));
	}
}

static void sl_close(struct db *db)
{
	struct sl *d = sl_of(db);
	worker_stop(d->checkpoint_thread);
	sqlite3_close(d->checkpointer);
	if (d->shared && d->shared != &d->own)
		munmap((void *)d->shared, sizeof(uint64_t));
	sl_close_conn(&d->conn);
	sl_close_conn(&d->reader);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->read_lock);
	free(d);
}

static const struct db_driver sl_driver = {
	.begin_write = "BEGIN IMMEDIATE",
	.begin_read = "BEGIN",
	.skip_locked = "",
	.last_id = "last_insert_rowid()",
	/* WAL frames reach the disk in order: the next FULL commit's fsync carries these. */
	.relax_before = "PRAGMA synchronous=NORMAL",
	.relax_after = "PRAGMA synchronous=FULL",
	.shared = false,
	.acquire = sl_acquire,
	.acquire_read = sl_acquire_read,
	.release = sl_release,
	.query = sl_query,
	.next = sl_next,
	.done = sl_done,
	.col_int = sl_col_int,
	.col_text = sl_col_text,
	.changes = sl_changes,
	.stamp = sl_stamp,
	.changed = sl_changed,
	.migrations = migrations,
	.nmigrations = (int)ARRAY_LEN(migrations),
	.close = sl_close,
};

static int sl_connect(struct db_conn *c, const char *path, int flags, const char *setup, char *err,
		      size_t errlen)
{
	if (sqlite3_open_v2(path, &c->h, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open database: %s", path,
			 c->h ? sqlite3_errmsg(c->h) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(c->h, SL_BUSY_MS);
	char *msg = NULL;
	if (sqlite3_exec(c->h, setup, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : "cannot configure database");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

struct db *db_sqlite_open(const char *path, char *err, size_t errlen)
{
	struct sl *d = xcalloc(1, sizeof(*d));
	d->base.drv = &sl_driver;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->read_lock, NULL);

	/* The writer first: it creates the file and turns WAL on for both. */
	struct db_conn checkpointer = {0};
	if (sl_private_files(path, err, errlen) < 0 ||
	    sl_connect(&d->conn, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
		       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
		       "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=0;",
		       err, errlen) < 0 ||
	    sl_connect(&d->reader, path, SQLITE_OPEN_READWRITE, "PRAGMA query_only=ON;", err,
		       errlen) < 0 ||
	    sl_connect(&checkpointer, path, SQLITE_OPEN_READWRITE, "PRAGMA synchronous=FULL;", err,
		       errlen) < 0) {
		d->checkpointer = checkpointer.h;
		goto fail;
	}
	d->checkpointer = checkpointer.h;
	d->version_seen = -1;
	d->shared = sl_map_stamp(path);
	if (!d->shared) {
		log_warn("store: cannot map %s-policy (%s): changes made by other processes reach "
			 "this one within a second",
			 path, strerror(errno));
		d->shared = &d->own;
	}
	d->checkpoint_thread = worker_start("checkpointer", sl_checkpoint_loop, d, err, errlen);
	if (!d->checkpoint_thread)
		goto fail;
	return &d->base;
fail:
	sl_close(&d->base);
	return NULL;
}
