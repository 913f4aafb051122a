/* The PostgreSQL driver under the store (db.h), for several gateways sharing one database:
 * a pool of libpq connections, `?` placeholders rewritten to $n with typed parameters and
 * prepared once per connection, SQLSTATE mapped to store codes, and a listener that turns
 * NOTIFY postern_policy (with a polled version counter as the fallback) into the stamp. */
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#define PG_POOL	      8	  /* connections per gateway; grown on demand */
#define PG_PARAMS     16  /* the most arguments one statement takes */
#define PG_PREPARED   160 /* statements prepared per connection */
#define PG_POLL_MS    250 /* the listener's wait for a notification */
#define PG_VERSION_MS 500 /* and how often it reads the version counter regardless */

struct pg_prepared {
	const char *sql; /* the caller's text (a literal), compared by address then content */
	char *copy;
};

struct db_conn {
	PGconn *pg;
	bool busy;
	bool pipelined; /* in pipeline mode: statements are sent, answers read at the end */
	int sent;
	int64_t changes;
	int nprepared;
	struct pg_prepared prepared[PG_PREPARED];
};

struct db_res {
	PGresult *r;
	int row;
	int nrows;
};

struct pg {
	struct db base;
	char *conninfo;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	int nconns;
	struct db_conn conns[PG_POOL];
	struct worker *listener; /* set under lock, once */
	atomic_bool listening;
	_Atomic uint64_t stamp;
};

static struct pg *pg_of(struct db *db)
{
	return (struct pg *)db;
}

static void forget_prepared(struct db_conn *c)
{
	for (int i = 0; i < c->nprepared; i++)
		free(c->prepared[i].copy);
	c->nprepared = 0;
}

/* Connects quietly: PostgreSQL's notices (a ROLLBACK with no transaction) are not errors. */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *pg_connect(const char *conninfo, char *err, size_t errlen)
{
	/* A server that does not answer must not hold a request forever; the operator's
	 * conninfo, read after this default, may set its own connect_timeout. */
	const char *const keys[] = {"connect_timeout", "dbname", NULL};
	const char *const values[] = {"10", conninfo, NULL};
	PGconn *pg = PQconnectdbParams(keys, values, 1);
	if (PQstatus(pg) != CONNECTION_OK) {
		const char *why = pg ? PQerrorMessage(pg) : "out of memory";
		snprintf(err, errlen, "cannot connect to PostgreSQL: %.*s", (int)strcspn(why, "\n"),
			 why);
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeProcessor(pg, ignore_notice, NULL);
	/* A 2xx means stored durably, whatever the server's default says. */
	PGresult *r = PQexec(pg, "SET synchronous_commit TO on");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok) {
		snprintf(err, errlen, "cannot set synchronous_commit on the PostgreSQL connection");
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

static struct db_conn *pg_acquire(struct db *db)
{
	struct pg *p = pg_of(db);
	struct db_conn *c = NULL;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		for (int i = 0; i < p->nconns && !c; i++)
			if (!p->conns[i].busy)
				c = &p->conns[i];
		/* A new slot is connected below, outside the lock. */
		if (!c && p->nconns < PG_POOL)
			c = &p->conns[p->nconns++];
		if (c)
			break;
		pthread_cond_wait(&p->freed, &p->lock);
	}
	c->busy = true;
	pthread_mutex_unlock(&p->lock);
	/* An idle connection has nothing to say unless the server is going away (a restart
	 * sends each client a goodbye, then closes): one that speaks is not used again. */
	struct pollfd pfd = {.fd = c->pg ? PQsocket(c->pg) : -1, .events = POLLIN};
	bool spoke = c->pg && poll(&pfd, 1, 0) > 0;
	/* A connection lost (a PostgreSQL restart, a failover) is made anew before use, with
	 * its settings; until it can be, the query fails and says why. */
	if (!c->pg || spoke || PQstatus(c->pg) != CONNECTION_OK) {
		char err[256];
		forget_prepared(c);
		PQfinish(c->pg);
		c->pg = pg_connect(p->conninfo, err, sizeof(err));
		if (!c->pg)
			log_error("store: %s", err);
	}
	return c;
}

static void pg_release(struct db *db, struct db_conn *c)
{
	struct pg *p = pg_of(db);
	pthread_mutex_lock(&p->lock);
	c->busy = false;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

/* Rewrites `?` outside quoted text as $1, $2, …; returns the count, or -1 if too long. */
static int rewrite(const char *sql, char *out, size_t n)
{
	size_t o = 0;
	int count = 0;
	bool quoted = false;
	for (const char *s = sql; *s; s++) {
		char num[16];
		const char *piece = num;
		if (*s == '\'')
			quoted = !quoted;
		if (*s == '?' && !quoted)
			snprintf(num, sizeof(num), "$%d", ++count);
		else
			num[0] = *s, num[1] = '\0';
		size_t len = strlen(piece);
		if (o + len >= n)
			return -1;
		memcpy(out + o, piece, len);
		o += len;
	}
	out[o] = '\0';
	return count;
}

/* The statement's name on this connection, preparing it the first time; NULL when the
 * cache is full (the statement then runs unprepared). */
static const char *prepared_name(struct db_conn *c, const char *sql, const char *text, int n,
				 const Oid *types, char name[16], int *failed)
{
	for (int i = 0; i < c->nprepared; i++)
		if (c->prepared[i].sql == sql && strcmp(c->prepared[i].copy, sql) == 0) {
			snprintf(name, 16, "p%d", i);
			return name;
		}
	if (c->nprepared == PG_PREPARED)
		return NULL;
	int i = c->nprepared;
	snprintf(name, 16, "p%d", i);
	PGresult *r = PQprepare(c->pg, name, text, n, types);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		log_error("store: prepare: %s", PQresultErrorMessage(r));
		PQclear(r);
		*failed = 1;
		return NULL;
	}
	PQclear(r);
	c->prepared[i].sql = sql;
	c->prepared[i].copy = xstrdup(sql);
	c->nprepared++;
	return name;
}

/* What a failed statement means to the store, by SQLSTATE prefix, first match: the row's
 * own fault (retrying the others without it can succeed) or, for anything else (connection
 * lost, disk full, shutting down), the database's, which every write shares. */
static const struct {
	const char *state;
	int rc;
} pg_errors[] = {
	{"23505", STORE_CONFLICT}, /* unique_violation */
	{"23503", STORE_CONFLICT}, /* foreign_key_violation */
	{"22", STORE_REFUSED},	   /* data exceptions: a value the column cannot hold */
	{"23", STORE_REFUSED},	   /* other integrity constraints: check, not null, exclusion */
	{"54000", STORE_REFUSED},  /* program_limit_exceeded: a row too big for its index */
};

static int result_code(struct db_conn *c, PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		const char *n = PQcmdTuples(r);
		c->changes = n && *n ? strtoll(n, NULL, 10) : 0;
		return st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? STORE_OK : STORE_NOT_FOUND;
	}
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	int rc = STORE_FAIL;
	for (size_t i = 0; state && i < ARRAY_LEN(pg_errors) && rc == STORE_FAIL; i++)
		if (strncmp(state, pg_errors[i].state, strlen(pg_errors[i].state)) == 0)
			rc = pg_errors[i].rc;
	/* A conflict is the caller's answer ("already exists"), not a failure. */
	if (rc == STORE_CONFLICT)
		return rc;
	const char *msg = PQresultErrorMessage(r);
	if (!*msg) /* no result at all: the connection's own error says why */
		msg = PQerrorMessage(c->pg);
	log_error("store: %.*s", (int)strcspn(msg, "\n"), msg);
	return rc;
}

static int pg_query(struct db_conn *c, struct db_res **res, const char *sql, const char *fmt,
		    va_list ap)
{
	*res = NULL;
	if (!c->pg)
		return STORE_FAIL;
	int n = (int)strlen(fmt);
	if (n > PG_PARAMS) {
		log_error("store: a statement takes at most %d arguments", PG_PARAMS);
		return STORE_FAIL;
	}
	PGresult *r;
	if (n == 0) {
		/* No arguments: the simple protocol, which also runs the migrations' scripts. */
		r = PQexec(c->pg, sql);
	} else {
		char text[8192], nums[PG_PARAMS][24];
		const char *values[PG_PARAMS];
		Oid types[PG_PARAMS];
		for (int i = 0; i < n; i++) {
			switch (fmt[i]) {
			case 'i':
				types[i] = 20; /* int8 */
				snprintf(nums[i], sizeof(nums[i]), "%lld",
					 (long long)va_arg(ap, int64_t));
				values[i] = nums[i];
				break;
			case 'd':
				types[i] = 23; /* int4 */
				snprintf(nums[i], sizeof(nums[i]), "%d", va_arg(ap, int));
				values[i] = nums[i];
				break;
			default:
				types[i] = 25; /* text */
				values[i] = va_arg(ap, const char *);
				break;
			}
		}
		if (rewrite(sql, text, sizeof(text)) != n) {
			log_error("store: a statement's placeholders do not match its arguments");
			return STORE_FAIL;
		}
		if (c->pipelined) {
			/* Answers are read when the pipeline ends (pg_pipeline). */
			if (!PQsendQueryParams(c->pg, text, n, types, values, NULL, NULL, 0)) {
				log_error("store: %s", PQerrorMessage(c->pg));
				return STORE_FAIL;
			}
			c->sent++;
			return STORE_NOT_FOUND;
		}
		char name[16];
		int failed = 0;
		const char *stmt = prepared_name(c, sql, text, n, types, name, &failed);
		if (failed)
			return STORE_FAIL;
		r = stmt ? PQexecPrepared(c->pg, stmt, n, values, NULL, NULL, 0)
			 : PQexecParams(c->pg, text, n, types, values, NULL, NULL, 0);
	}
	int rc = result_code(c, r);
	if (rc != STORE_OK) {
		PQclear(r);
		return rc;
	}
	struct db_res *out = xcalloc(1, sizeof(*out));
	out->r = r;
	out->nrows = PQntuples(r);
	*res = out;
	return STORE_OK;
}

/* Batches of inserts go out in one round trip (libpq's pipeline mode); the answers are
 * read at the end, and the first failure is the batch's. */
static int pg_pipeline(struct db_conn *c, bool on)
{
	if (!c->pg)
		return STORE_FAIL;
	if (on) {
		c->sent = 0;
		c->pipelined = PQenterPipelineMode(c->pg) == 1;
		return c->pipelined ? STORE_OK : STORE_FAIL;
	}
	if (!c->pipelined)
		return STORE_OK;
	int rc = STORE_OK;
	if (!PQpipelineSync(c->pg))
		rc = STORE_FAIL;
	/* Each statement answers with its result and a NULL (aborted ones after a failure
	 * with PGRES_PIPELINE_ABORTED); the sync ends it all. */
	for (int nulls = 0;;) {
		PGresult *r = PQgetResult(c->pg);
		if (!r) {
			if (++nulls > c->sent + 1) {
				rc = STORE_FAIL; /* the connection gave out before the sync */
				break;
			}
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		int one = st == PGRES_PIPELINE_SYNC	 ? STORE_OK
			  : st == PGRES_PIPELINE_ABORTED ? STORE_FAIL
							 : result_code(c, r);
		PQclear(r);
		if (one != STORE_OK && one != STORE_NOT_FOUND && rc == STORE_OK)
			rc = one;
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
	c->pipelined = false;
	if (!PQexitPipelineMode(c->pg))
		rc = STORE_FAIL;
	return rc;
}

static int pg_next(struct db_res *r)
{
	return ++r->row < r->nrows ? STORE_OK : STORE_NOT_FOUND;
}

static void pg_done(struct db_res *r)
{
	if (!r)
		return;
	PQclear(r->r);
	free(r);
}

static const char *pg_col_text(struct db_res *r, int col)
{
	if (PQgetisnull(r->r, r->row, col))
		return NULL;
	return PQgetvalue(r->r, r->row, col);
}

static int64_t pg_col_int(struct db_res *r, int col)
{
	const char *v = pg_col_text(r, col);
	if (!v)
		return 0;
	if (strcmp(v, "t") == 0)
		return 1;
	if (strcmp(v, "f") == 0)
		return 0;
	return strtoll(v, NULL, 10);
}

static int64_t pg_changes(struct db_conn *c)
{
	return c->changes;
}

static void pg_listen(void *arg, struct worker *self);

/* The listener starts with the first question, once the schema surely exists (a CLI
 * command that asks none never starts it). */
static int pg_stamp(struct db *db, uint64_t *stamp)
{
	struct pg *p = pg_of(db);
	if (!atomic_load(&p->listening)) {
		pthread_mutex_lock(&p->lock);
		if (!p->listener) {
			char err[160];
			p->listener = worker_start("PG listener", pg_listen, p, err, sizeof(err));
			if (!p->listener) {
				pthread_mutex_unlock(&p->lock);
				log_error("%s", err);
				return STORE_FAIL;
			}
			atomic_store(&p->listening, true);
		}
		pthread_mutex_unlock(&p->lock);
	}
	*stamp = atomic_load(&p->stamp);
	return STORE_OK;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the policy version counter; -1 when the read fails. */
static int64_t read_version(PGconn *pg)
{
	PGresult *r = PQexec(pg, "SELECT v FROM policy_version WHERE id = 1");
	int64_t v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
			    ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
			    : -1;
	PQclear(r);
	return v;
}

/* Every policy write (any node) fires a trigger that bumps policy_version and notifies
 * postern_policy. A notification moves the stamp at once; the counter, read twice a
 * second, catches what a lost connection missed. */
static void pg_listen(void *arg, struct worker *self)
{
	struct pg *p = arg;
	PGconn *pg = NULL;
	int64_t seen = -1, next_read = 0;
	while (!worker_stopping(self)) {
		if (!pg || PQstatus(pg) != CONNECTION_OK) {
			char err[256];
			PQfinish(pg);
			pg = pg_connect(p->conninfo, err, sizeof(err));
			PGresult *r = pg ? PQexec(pg, "LISTEN postern_policy") : NULL;
			PQclear(r);
			if (!pg) {
				worker_wait(self, PG_POLL_MS);
				continue;
			}
			next_read = 0;
		}
		if (now_ms() >= next_read) {
			int64_t v = read_version(pg);
			if (v != seen)
				atomic_fetch_add(&p->stamp, 1);
			seen = v;
			next_read = now_ms() + PG_VERSION_MS;
		}
		struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
		if (poll(&pfd, 1, PG_POLL_MS) > 0 && PQconsumeInput(pg)) {
			PGnotify *n;
			while ((n = PQnotifies(pg))) {
				atomic_fetch_add(&p->stamp, 1);
				PQfreemem(n);
			}
		}
	}
	PQfinish(pg);
}

static void pg_close(struct db *db)
{
	struct pg *p = pg_of(db);
	worker_stop(p->listener);
	for (int i = 0; i < p->nconns; i++) {
		forget_prepared(&p->conns[i]);
		PQfinish(p->conns[i].pg);
	}
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
	free(p->conninfo);
	free(p);
}

/* Each entry moves the schema from version i to i+1, as the SQLite schema does (same
 * tables and columns). Booleans are integers so the store's SQL reads the same on both.
 * Writes to the tables a policy is built from (and API key revocations) bump policy_version
 * and notify every node. */
static const char *const pg_migrations[] = {
	"CREATE TABLE accounts ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  created_at BIGINT NOT NULL);"
	"CREATE TABLE users ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin','technical','analytics','marketing')),"
	"  created_at BIGINT NOT NULL, disabled_at BIGINT);"
	"CREATE INDEX users_account ON users(account_id);"
	"CREATE TABLE login_failures ("
	"  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  at BIGINT NOT NULL);"
	"CREATE INDEX login_failures_user ON login_failures(user_id, at);"
	"CREATE TABLE sessions ("
	"  token_hash TEXT PRIMARY KEY,"
	"  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);"
	"CREATE INDEX sessions_user ON sessions(user_id);"
	"CREATE TABLE api_keys ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, shown TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
	"  created_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT);"
	"CREATE INDEX api_keys_account ON api_keys(account_id);"
	"CREATE TABLE settings ("
	"  account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sender_auth_enabled INTEGER NOT NULL DEFAULT 0,"
	"  updated_at BIGINT, updated_by BIGINT REFERENCES users(id) ON DELETE SET NULL);"
	"CREATE TABLE sending_domains ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending','verified','failed')),"
	"  active INTEGER NOT NULL DEFAULT 1, token TEXT NOT NULL,"
	"  manual INTEGER NOT NULL DEFAULT 0,"
	"  created_at BIGINT NOT NULL, checked_at BIGINT, check_error TEXT,"
	"  missing_since BIGINT, records TEXT,"
	"  UNIQUE (account_id, name));"
	"CREATE TABLE dkim_keys ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  domain_id BIGINT NOT NULL REFERENCES sending_domains(id) ON DELETE CASCADE,"
	"  selector TEXT NOT NULL, private_sealed TEXT NOT NULL, public_key TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('active','next','retired')),"
	"  verified INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL,"
	"  retired_at BIGINT,"
	"  UNIQUE (domain_id, selector));"
	"CREATE TABLE senders ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL, domain TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','verified')),"
	"  added_by BIGINT REFERENCES users(id) ON DELETE SET NULL, added_at BIGINT NOT NULL,"
	"  verified_by BIGINT REFERENCES users(id) ON DELETE SET NULL, verified_at BIGINT,"
	"  verified_via TEXT CHECK (verified_via IN ('panel','link')),"
	"  UNIQUE (account_id, address));"
	"CREATE TABLE verification_tokens ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,"
	"  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT);"
	"CREATE TABLE verification_token_senders ("
	"  token_id BIGINT NOT NULL REFERENCES verification_tokens(id) ON DELETE CASCADE,"
	"  sender_id BIGINT REFERENCES senders(id) ON DELETE SET NULL,"
	"  address TEXT NOT NULL,"
	"  PRIMARY KEY (token_id, address));"
	"CREATE TABLE messages ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, uid TEXT NOT NULL UNIQUE,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id BIGINT REFERENCES api_keys(id) ON DELETE SET NULL,"
	"  system INTEGER NOT NULL DEFAULT 0, from_addr TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'queued'"
	"    CHECK (status IN ('queued','deferred','sending','sent','failed','dropped')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,"
	"  lease_until BIGINT, parts_done INTEGER NOT NULL DEFAULT 0,"
	"  recipients INTEGER NOT NULL, payload TEXT NOT NULL, reason TEXT, last_reply TEXT,"
	"  rejected TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
	"CREATE INDEX messages_due ON messages(status, next_attempt_at);"
	"CREATE INDEX messages_account ON messages(account_id, id);"
	"CREATE TABLE drops ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id BIGINT NOT NULL, from_addr TEXT NOT NULL, reason TEXT NOT NULL,"
	"  minute BIGINT NOT NULL, count BIGINT NOT NULL,"
	"  UNIQUE (account_id, api_key_id, from_addr, reason, minute));"
	"CREATE INDEX drops_account ON drops(account_id, minute);"
	"CREATE TABLE audit_log ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT REFERENCES accounts(id) ON DELETE CASCADE,"
	"  at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
	"  target TEXT, detail TEXT, ip TEXT);"
	"CREATE INDEX audit_account ON audit_log(account_id, id);"
	"CREATE TABLE policy_version ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1), v BIGINT NOT NULL);"
	"INSERT INTO policy_version (id, v) VALUES (1, 0);"
	"CREATE FUNCTION postern_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$"
	"BEGIN"
	"  UPDATE policy_version SET v = v + 1 WHERE id = 1;"
	"  PERFORM pg_notify('postern_policy', '');"
	"  RETURN NULL;"
	"END $$;"
	"CREATE TRIGGER settings_policy AFTER INSERT OR UPDATE OR DELETE ON settings"
	"  FOR EACH STATEMENT EXECUTE FUNCTION postern_policy_changed();"
	"CREATE TRIGGER senders_policy AFTER INSERT OR UPDATE OR DELETE ON senders"
	"  FOR EACH STATEMENT EXECUTE FUNCTION postern_policy_changed();"
	"CREATE TRIGGER sending_domains_policy AFTER INSERT OR UPDATE OR DELETE"
	"  ON sending_domains FOR EACH STATEMENT EXECUTE FUNCTION postern_policy_changed();"
	/* API keys are checked from a cache too: a revoked key must stop everywhere at once. */
	"CREATE TRIGGER api_keys_policy AFTER UPDATE OF revoked_at OR DELETE ON api_keys"
	"  FOR EACH STATEMENT EXECUTE FUNCTION postern_policy_changed();",
	/* 2: facts about the installation as a whole (the DKIM master key's check value). */
	"CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
	/* 3: login emails are unique per account, not across accounts; failed logins are
	 * counted per throttle key (a hash of what is guessed and from where), known user or
	 * not, in the database so that every node sees every failure. */
	"ALTER TABLE users DROP CONSTRAINT users_email_key;"
	"ALTER TABLE users ADD CONSTRAINT users_account_email_key UNIQUE (account_id, email);"
	"DROP TABLE login_failures;"
	"CREATE TABLE login_throttle ("
	"  key_hash TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_at BIGINT NOT NULL,"
	"  blocked_until BIGINT NOT NULL);"
	"CREATE INDEX login_throttle_last ON login_throttle(last_at);",
	/* 4: scheduled sending (issue 15): the statuses scheduled and cancelled, and the send
	 * time asked for. */
	"ALTER TABLE messages DROP CONSTRAINT messages_status_check;"
	"ALTER TABLE messages ADD CONSTRAINT messages_status_check"
	"  CHECK (status IN ('queued','scheduled','deferred','sending','sent','failed',"
	"    'dropped','cancelled'));"
	"ALTER TABLE messages ADD COLUMN send_at BIGINT;",
	/* 5: SMTP submission (issue 16): where a message came in (api, smtp or system), and
	 * the networks a key may send from over SMTP without AUTH. A key made with networks
	 * moves the policy stamp, so every cache sees it at once. */
	"ALTER TABLE messages ADD COLUMN source TEXT NOT NULL DEFAULT 'api';"
	"UPDATE messages SET source = 'system' WHERE system = 1;"
	"ALTER TABLE api_keys ADD COLUMN smtp_ips TEXT NOT NULL DEFAULT '';"
	"CREATE TRIGGER api_keys_policy_i AFTER INSERT ON api_keys"
	"  FOR EACH ROW WHEN (NEW.smtp_ips <> '') EXECUTE FUNCTION postern_policy_changed();",
	/* 6: events and signed webhooks (issue 17): as SQLite's migration 7. The deliveries'
	 * indexes end with id, as SQLite's end with the rowid, so the claim's order is the
	 * index's. */
	"ALTER TABLE messages ADD COLUMN meta TEXT;"
	"CREATE TABLE events ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  type TEXT NOT NULL, created_at BIGINT NOT NULL,"
	"  message_uid TEXT, recipient TEXT, data TEXT NOT NULL DEFAULT '{}');"
	"CREATE INDEX events_account ON events(account_id, id);"
	"CREATE INDEX events_message ON events(message_uid, id) WHERE message_uid IS NOT NULL;"
	"CREATE TABLE webhooks ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  url TEXT NOT NULL,"
	"  format TEXT NOT NULL CHECK (format IN ('standard','sendgrid')),"
	"  events TEXT NOT NULL, secret_sealed TEXT NOT NULL,"
	"  public_key TEXT NOT NULL DEFAULT '',"
	"  enabled INTEGER NOT NULL DEFAULT 1,"
	"  created_at BIGINT NOT NULL, last_at BIGINT, last_status TEXT,"
	"  last_success_at BIGINT, failing_since BIGINT, disabled_at BIGINT, retry_at BIGINT);"
	"CREATE INDEX webhooks_account ON webhooks(account_id, enabled);"
	"CREATE TABLE webhook_deliveries ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  webhook_id BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
	"  event_id BIGINT NOT NULL REFERENCES events(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending','sending','failed')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,"
	"  lease_until BIGINT, claim TEXT, created_at BIGINT NOT NULL, last_status TEXT);"
	"CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at, id);"
	"CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, status, "
	"  next_attempt_at, id);"
	"CREATE INDEX webhook_deliveries_claim ON webhook_deliveries(claim)"
	"  WHERE claim IS NOT NULL;"
	"CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);",
	/* 7: bounces, complaints and the suppression list (issue 18), as SQLite's migration 8. A
	 * report is kept as it arrived (base64: it may hold any byte) from before the listener's
	 * 250 until parsed; then only its first 64 KiB stay, for the operator to read. Reports are
	 * claimed like messages. A suppression is one (account, address), the address in lower
	 * case. */
	"CREATE TABLE suppressions ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL,"
	"  reason TEXT NOT NULL CHECK (reason IN ('hard_bounce','complaint','manual')),"
	"  created_at BIGINT NOT NULL, message_uid TEXT, detail TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (account_id, email));"
	"CREATE INDEX suppressions_account ON suppressions(account_id, id);"
	"CREATE TABLE bounce_reports ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  received_at BIGINT NOT NULL, client_ip TEXT NOT NULL,"
	"  mail_from TEXT NOT NULL, rcpt TEXT NOT NULL,"
	"  message_uid TEXT NOT NULL,"					 /* from the VERP address */
	"  account_id BIGINT REFERENCES accounts(id) ON DELETE CASCADE," /* once parsed */
	"  status TEXT NOT NULL DEFAULT 'new'"
	"    CHECK (status IN ('new','parsing','done','unparsed','orphan')),"
	"  kind TEXT," /* 'dsn', 'arf' or 'text' once parsed */
	"  size INTEGER NOT NULL, raw TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}',"
	"  lease_until BIGINT, claim TEXT, parsed_at BIGINT);"
	"CREATE INDEX bounce_reports_due ON bounce_reports(status, id);"
	"CREATE INDEX bounce_reports_account ON bounce_reports(account_id, id)"
	"  WHERE account_id IS NOT NULL;",
	/* 8: sender authorization beyond the original (issue 19), as SQLite's migration 9. Monitor
	 * mode beside the switch (it counts only while the switch is off); how senders are
	 * confirmed, by an Admin, by their owner through a link mailed to the address itself, or
	 * both; keys scoped to senders, domains, networks and purposes (a key's scope moves the
	 * policy stamp, as its revocation does); domains an operator must approve; and sends
	 * counted per From and day (aggregated like drops) with monitored would-be refusals, for
	 * the preflight. */
	"ALTER TABLE settings ADD COLUMN sender_auth_monitor INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE settings ADD COLUMN sender_confirmation TEXT NOT NULL DEFAULT 'admin'"
	"  CHECK (sender_confirmation IN ('admin','owner','both'));"
	"ALTER TABLE senders ADD COLUMN admin_verified_at BIGINT;"
	"ALTER TABLE senders ADD COLUMN owner_confirmed_at BIGINT;"
	"UPDATE senders SET admin_verified_at = verified_at WHERE status = 'verified';"
	"CREATE TABLE owner_tokens ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sender_id BIGINT NOT NULL REFERENCES senders(id) ON DELETE CASCADE,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT);"
	"CREATE INDEX owner_tokens_sender ON owner_tokens(sender_id);"
	"ALTER TABLE api_keys ADD COLUMN senders TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE api_keys ADD COLUMN domains TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'mail.send';"
	"ALTER TABLE api_keys ADD COLUMN role TEXT"
	"  CHECK (role IN ('technical','analytics','marketing'));"
	"CREATE TRIGGER api_keys_scope AFTER UPDATE OF senders, domains, allowed_ips, scopes,"
	"  role, smtp_ips ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION postern_policy_changed();"
	"ALTER TABLE sending_domains ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved'"
	"  CHECK (approval IN ('required','approved','rejected'));"
	"CREATE TABLE from_counts ("
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  from_addr TEXT NOT NULL, day BIGINT NOT NULL,"
	"  sends BIGINT NOT NULL, last_seen BIGINT NOT NULL,"
	"  PRIMARY KEY (account_id, from_addr, day));"
	"CREATE TABLE monitored ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id BIGINT NOT NULL, from_addr TEXT NOT NULL, reason TEXT NOT NULL,"
	"  minute BIGINT NOT NULL, count BIGINT NOT NULL,"
	"  UNIQUE (account_id, api_key_id, from_addr, reason, minute));"
	"CREATE INDEX monitored_account ON monitored(account_id, minute);",
	/* 9: the SPF records a domain published at its last check (issue 20): the advised
	 * SPF record is merged with them, never a second one. */
	"ALTER TABLE sending_domains ADD COLUMN spf_seen TEXT",
	/* 10: retention (issue 20), as SQLite's migration 11. */
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

static const struct db_driver pg_driver = {
	.begin_write = "BEGIN",
	.begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	.skip_locked = " FOR UPDATE SKIP LOCKED",
	.last_id = "lastval()",
	.relax_inside = "SET LOCAL synchronous_commit = off",
	.shared = true,
	.acquire = pg_acquire,
	.release = pg_release,
	.query = pg_query,
	.next = pg_next,
	.done = pg_done,
	.col_int = pg_col_int,
	.col_text = pg_col_text,
	.changes = pg_changes,
	.stamp = pg_stamp,
	.migrations = pg_migrations,
	.nmigrations = (int)ARRAY_LEN(pg_migrations),
	.close = pg_close,
	.pipeline = pg_pipeline,
};

struct db *db_pg_open(const char *conninfo, char *err, size_t errlen)
{
	struct pg *p = xcalloc(1, sizeof(*p));
	p->base.drv = &pg_driver;
	p->conninfo = xstrdup(conninfo);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->freed, NULL);
	PGconn *pg = pg_connect(conninfo, err, errlen);
	if (!pg) {
		pg_close(&p->base);
		return NULL;
	}
	p->conns[p->nconns++].pg = pg;
	return &p->base;
}
