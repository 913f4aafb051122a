/* The SMTP server's I/O: one libevent loop per thread, an acceptor in the first that hands
 * each connection to the loops in turn, bufferevent_openssl for TLS. The protocol is
 * smtp_proto.c's; this file performs its actions (TLS, AUTH, the sender check, submission;
 * on the return path's inbound listener the rate limit and a report's storing) and turns
 * the services' errors into replies through err.c's table. A session waiting for its commit,
 * its AUTH check or its report's storing holds no loop: the queue's writer, the AUTH worker
 * or the reports worker wakes it in its own loop. The inbound listener has a connection cap
 * and a worker of its own, so a flood of reports never holds up submission. */
#include "smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bounces.h"
#include "keys.h"
#include "log.h"
#include "smtp_proto.h"
#include "smtpd_rate.h"
#include "submit.h"
#include "util.h"
#include "verp.h"
#include "worker.h"

#define SMTPD_LOOPS_MAX	    8
#define SMTPD_CMD_TIMEOUT   300 /* seconds: RFC 5321 4.5.3.2.7 */
#define SMTPD_DATA_TIMEOUT  600
#define SMTPD_TOUCHES_MAX   64
#define SMTPD_DRAIN_WAIT    60		/* seconds a stop waits for commits in flight */
#define SMTPD_OUT_MAX	    (64 * 1024) /* replies a client leaves unread before reading stops */
#define SMTPD_FD_RESERVE    64		/* descriptors beyond the sessions: store, HTTP, logs */
#define SMTPD_ACCEPT_PAUSE  100000	/* microseconds the listener rests when out of fds */
#define SMTPD_INBOUND_RCPTS 5		/* return paths one report may be sent to */
#define SMTPD_RATE_SLOTS    4096	/* client addresses the report rate limit tracks */

struct smtpd_session;
LIST_HEAD(session_list, smtpd_session);

struct smtpd_loop {
	struct smtpd *d;
	struct event_base *base;
	struct worker *worker;
	struct session_list sessions;
};

struct smtpd_listener {
	struct smtpd *d;
	struct evconnlistener *l;
	struct event *pause; /* re-enables accepting after an accept error */
	bool tls;	     /* implicit TLS */
	bool inbound;	     /* the return path's listener */
	bool failing;	     /* an accept error was logged; the next success clears it */
};

STAILQ_HEAD(session_queue, smtpd_session);

/* A thread doing store work for sessions held off their loop, oldest first: it wakes each
 * in its loop when done. */
struct smtpd_jobs {
	struct worker *worker;
	pthread_mutex_t lock;
	struct session_queue queue;
};

struct smtpd {
	const struct config *cfg;
	struct store *store;
	struct policy_cache *policies;
	struct drops *drops;
	struct queue *queue;
	struct smtp_limits lim;
	struct smtp_limits lim_in; /* the inbound listener's */
	unsigned char verp_key[VERP_KEY_LEN];
	struct bounces *bounces;  /* woken for each report stored */
	pthread_mutex_t tls_lock; /* guards tls: SIGHUP swaps it */
	SSL_CTX *tls;
	struct smtpd_loop loops[SMTPD_LOOPS_MAX];
	int nloops;
	unsigned next; /* the loop the next connection goes to */
	struct smtpd_listener plain, implicit, inbound;
	atomic_int connections;		/* submission's, up to [smtp] max_connections */
	atomic_int inbound_connections; /* the inbound listener's, up to [bounces]' */
	atomic_int pending; /* sessions waiting off their loop: a commit, an AUTH check, a report */
	atomic_bool draining;
	/* AUTH checks, and reports to store (only with an inbound listener): they touch the
	 * store, the loops must not; a report's fsync never delays an AUTH reply. */
	struct smtpd_jobs auth, reports;
	/* Keys used through SMTP-IP whose last use is due to be written (under auth.lock): a
	 * store write, so the auth worker makes it. A hint: when full, more wait a minute. */
	int64_t touches[SMTPD_TOUCHES_MAX];
	int ntouches;
	struct smtpd_rate *rate; /* reports accepted per client address */
};

struct smtpd_session {
	LIST_ENTRY(smtpd_session) link;
	STAILQ_ENTRY(smtpd_session) auth_link;
	struct smtpd_loop *loop;
	struct bufferevent *bev; /* NULL once the client is gone */
	struct smtp_session *proto;
	struct event *resume; /* made active by the queue's writer or the auth worker */
	struct event *closer; /* polls until the last reply is out */
	char ip[INET6_ADDRSTRLEN];
	bool tls;      /* implicit TLS, or after STARTTLS */
	bool inbound;  /* on the return path's listener: its report goes to the reports worker */
	bool have_key; /* authenticated with AUTH */
	struct store_apikey key;
	struct store_apikey txn_key; /* the key of the transaction in progress */
	bool in_data;		     /* the DATA timeout applies */
	bool waiting;		     /* held off its loop: by a commit, or a worker (auth) */
	bool auth;		     /* a worker holds it (AUTH, or a report if inbound) */
	bool blocked;		     /* reading stopped until the client reads its replies */
	bool closing;
	int close_polls;
	struct submit sub;
	const char **rcpts;
	int rc;
	/* Monitor mode's note on MAIL FROM's sender, for the 250 after DATA. */
	enum policy_reason mail_monitored;
	/* The auth worker's verdict. */
	enum err auth_e;
	struct store_apikey auth_key;
	int64_t auth_retry;
	/* The reports worker's answer: a store_rc and the id stored for each return path. */
	int report_rc;
	int64_t report_ids[SMTPD_INBOUND_RCPTS];
	size_t nreports;
};

/* ---- TLS ---- */

static SSL_CTX *tls_context(const char *cert, const char *key, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *what = NULL;
	if (!ctx)
		what = "cannot make a TLS context";
	else if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		what = "cannot require TLS 1.2";
	else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		what = "cannot load [smtp] tls_cert";
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		what = "cannot load [smtp] tls_key";
	else if (SSL_CTX_check_private_key(ctx) != 1)
		what = "[smtp] tls_key does not match tls_cert";
	if (!what) {
		/* A client-started renegotiation costs the server a handshake per request. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
		return ctx;
	}
	unsigned long e = ERR_get_error();
	snprintf(err, errlen, "%s (%s, %s): %s", what, cert, key,
		 e ? ERR_reason_error_string(e) : "unknown error");
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL *tls_new(struct smtpd *d)
{
	pthread_mutex_lock(&d->tls_lock);
	SSL *ssl = d->tls ? SSL_new(d->tls) : NULL; /* holds its own reference to the ctx */
	pthread_mutex_unlock(&d->tls_lock);
	return ssl;
}

void smtpd_reload(struct smtpd *d)
{
	char err[600];
	if (!d || !d->cfg->smtp_tls_cert[0])
		return;
	SSL_CTX *ctx = tls_context(d->cfg->smtp_tls_cert, d->cfg->smtp_tls_key, err, sizeof(err));
	if (!ctx) {
		log_error("SMTP certificate not reloaded, the old one stays: %s", err);
		return;
	}
	pthread_mutex_lock(&d->tls_lock);
	SSL_CTX *old = d->tls;
	d->tls = ctx;
	pthread_mutex_unlock(&d->tls_lock);
	SSL_CTX_free(old);
	log_info("SMTP certificate reloaded from %s", d->cfg->smtp_tls_cert);
}

/* ---- Sessions ---- */

static void conn_run(struct smtpd_session *s);
static void conn_set_callbacks(struct smtpd_session *s);

static void conn_free(struct smtpd_session *s)
{
	LIST_REMOVE(s, link);
	if (s->bev)
		bufferevent_free(s->bev);
	event_free(s->resume);
	event_free(s->closer);
	smtp_session_free(s->proto);
	submit_free(&s->sub);
	free(s->rcpts);
	explicit_bzero(&s->key, sizeof(s->key));
	explicit_bzero(&s->auth_key, sizeof(s->auth_key));
	struct smtpd *d = s->loop->d;
	atomic_fetch_sub(s->inbound ? &d->inbound_connections : &d->connections, 1);
	free(s);
}

static size_t output_pending(struct smtpd_session *s)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	return n + (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
}

/* Frees the session once its last reply has left (a TLS filter holds it in two buffers,
 * so this polls), or after about two seconds. */
static void conn_close_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtpd_session *s = arg;
	bool done = !s->bev || output_pending(s) == 0 || ++s->close_polls > 200;
	if (done && s->waiting) { /* its commit's callback still needs it: conn_resume frees */
		if (s->bev)
			bufferevent_free(s->bev);
		s->bev = NULL;
		return;
	}
	if (done)
		return conn_free(s);
	struct timeval tick = {0, 10000};
	evtimer_add(s->closer, &tick);
}

static void conn_close(struct smtpd_session *s)
{
	s->closing = true;
	if (s->bev)
		bufferevent_disable(s->bev, EV_READ);
	event_active(s->closer, EV_TIMEOUT, 0);
}

static void conn_flush(struct smtpd_session *s)
{
	GString *out = s->proto->out;
	size_t sent = 0;
	if (!out->len || !s->bev)
		goto done;
	/* Plaintext with nothing queued before it: straight to the socket. A buffered write
	 * costs a loop turn and two epoll changes per reply, a third of the system calls of a
	 * whole session. What does not fit (or an error) takes the buffered way. */
	if (!s->tls && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		ssize_t n = send(bufferevent_getfd(s->bev), out->str, out->len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			sent = (size_t)n;
	}
	if (sent < out->len)
		bufferevent_write(s->bev, out->str + sent, out->len - sent);
done:
	g_string_truncate(out, 0);
}

/* Timeouts: 5 minutes per command, 10 for DATA; writes get the command's. */
static void conn_timeouts(struct smtpd_session *s, bool force)
{
	bool data = s->proto->state == SMTP_S_DATA;
	if (!force && data == s->in_data)
		return;
	s->in_data = data;
	struct timeval rd = {data ? SMTPD_DATA_TIMEOUT : SMTPD_CMD_TIMEOUT, 0};
	struct timeval wr = {SMTPD_CMD_TIMEOUT, 0};
	bufferevent_set_timeouts(s->bev, &rd, &wr);
}

/* One reply for an error of a service: "<smtp code> <enhanced> <code>: <text>". */
static void err_reply(char *out, size_t n, enum err e, const char *detail)
{
	int code;
	const char *enh;
	err_smtp(e, &code, &enh);
	const struct err_info *i = err_info(e);
	snprintf(out, n, "%d %s %s: %s", code, enh, i->code, detail ? detail : i->message);
}

/* STARTTLS: the reply goes out in plaintext, then anything the client sent behind the
 * command is thrown away before the handshake (CVE-2011-0411), and the protocol starts
 * over. */
static void do_starttls(struct smtpd_session *s)
{
	conn_flush(s);
	struct evbuffer *in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	SSL *ssl = tls_new(s->loop->d);
	if (!ssl) {
		s->proto->action = SMTP_ACT_NONE;
		return conn_close(s);
	}
	struct bufferevent *tls = bufferevent_openssl_filter_new(
		s->loop->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		/* libevent 2.1 has freed the SSL and, through the half-made filter, the
		 * plaintext bufferevent with its socket: neither is ours to free again. */
		s->bev = NULL;
		s->proto->action = SMTP_ACT_NONE;
		return conn_close(s);
	}
	s->bev = tls;
	s->tls = true;
	s->have_key = false;
	smtp_tls_started(s->proto);
	conn_set_callbacks(s);
	conn_timeouts(s, true);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* Counts a session about to wait off its loop, unless a stop has begun. The count comes
 * before the look: a stop sets draining and then reads the count, so either it sees this
 * session or this sees the stop. */
static bool conn_may_hold(struct smtpd *d)
{
	atomic_fetch_add(&d->pending, 1);
	if (!atomic_load(&d->draining))
		return true;
	atomic_fetch_sub(&d->pending, 1);
	return false;
}

/* Holds a session off its loop: reading stops and only its resume event (or the client
 * leaving, a timeout, the stop) touches it until then. */
static void conn_hold(struct smtpd_session *s)
{
	s->waiting = true;
	bufferevent_disable(s->bev, EV_READ); /* pipelined commands wait for the reply */
}

/* The oldest session waiting for j's worker, or NULL. */
static struct smtpd_session *jobs_next(struct smtpd_jobs *j)
{
	pthread_mutex_lock(&j->lock);
	struct smtpd_session *s = STAILQ_FIRST(&j->queue);
	if (s)
		STAILQ_REMOVE_HEAD(&j->queue, auth_link);
	pthread_mutex_unlock(&j->lock);
	return s;
}

/* Hands a held session to its worker, which works on the store for it (the auth worker an
 * AUTH check, the reports worker a report to store) and wakes it in its loop. */
static void conn_to_worker(struct smtpd_session *s)
{
	struct smtpd *d = s->loop->d;
	struct smtpd_jobs *j = s->inbound ? &d->reports : &d->auth;
	conn_hold(s);
	s->auth = true;
	pthread_mutex_lock(&j->lock);
	STAILQ_INSERT_TAIL(&j->queue, s, auth_link);
	pthread_mutex_unlock(&j->lock);
	worker_wake(j->worker);
}

/* AUTH: the check reads and writes the store (the failure throttle, last use), so the
 * auth worker makes it and conn_resume answers in the loop. */
static void do_auth(struct smtpd_session *s)
{
	if (!conn_may_hold(s->loop->d)) /* RFC 5321 3.8: a 421 closes the connection */
		return smtp_auth_done(s->proto, false,
				      "421 4.3.2 Postern is shutting down; try again later", true);
	conn_to_worker(s);
}

/* Hands a key's due last-use write to the auth worker, once. */
static void touch_later(struct smtpd *d, int64_t id)
{
	pthread_mutex_lock(&d->auth.lock);
	bool queued = false;
	for (int i = 0; i < d->ntouches && !queued; i++)
		queued = d->touches[i] == id;
	if (!queued && d->ntouches < SMTPD_TOUCHES_MAX)
		d->touches[d->ntouches++] = id;
	pthread_mutex_unlock(&d->auth.lock);
	if (!queued)
		worker_wake(d->auth.worker);
}

static void touch_now(struct smtpd *d)
{
	int64_t ids[SMTPD_TOUCHES_MAX];
	pthread_mutex_lock(&d->auth.lock);
	int n = d->ntouches;
	memcpy(ids, d->touches, sizeof(ids[0]) * (size_t)n);
	d->ntouches = 0;
	pthread_mutex_unlock(&d->auth.lock);
	for (int i = 0; i < n; i++)
		keys_touch(d->policies, ids[i]);
}

/* ---- The return path's listener ---- */

/* The protocol's RCPT check: a return path of the bounce domain with a good tag. */
static bool verp_rcpt_ok(void *arg, const char *address)
{
	const struct smtpd *d = arg;
	char uid[VERP_UID_MAX];
	return verp_parse(d->verp_key, d->cfg->bounces_domain, address, uid);
}

/* MAIL on the inbound listener: any sender, the null one above all; only the rate. */
static void inbound_mail(struct smtpd_session *s)
{
	if (!smtpd_rate_allows(s->loop->d->rate, s->ip, util_now(), 0))
		return smtp_mail_done(s->proto, false,
				      "450 4.7.1 too many reports from your address, try again "
				      "later");
	smtp_mail_done(s->proto, true, "250 2.1.0 Ok");
}

/* True when uids[0..n) holds uid: a return path spelt twice, in two cases, is one. */
static bool report_uid_seen(char (*uids)[VERP_UID_MAX], size_t n, const char *uid)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(uids[i], uid) == 0)
			return true;
	return false;
}

/* On the reports worker: the report, once for each message whose return path it was sent
 * to, stored durably before the 250, all in one commit: after a 451 none is stored, so
 * the client's next try stores (and applies) each once. */
static void report_store(struct smtpd *d, struct smtpd_session *s)
{
	const struct smtp_session *p = s->proto;
	char uids[SMTPD_INBOUND_RCPTS][VERP_UID_MAX];
	struct store_report_path paths[SMTPD_INBOUND_RCPTS];
	size_t n = 0;
	for (int i = 0; i < p->nrcpts && n < SMTPD_INBOUND_RCPTS; i++) {
		if (!verp_parse(d->verp_key, d->cfg->bounces_domain, p->rcpts[i], uids[n]) ||
		    report_uid_seen(uids, n, uids[n]))
			continue;
		paths[n] = (struct store_report_path){.rcpt = p->rcpts[i], .message_uid = uids[n]};
		n++;
	}
	s->nreports = n;
	s->report_rc = n ? bounces_receive(d->store, s->ip, p->mail_from, paths, n, p->body->str,
					   p->body->len, s->report_ids)
			 : STORE_OK;
	for (size_t i = 0; i < n && s->report_rc == STORE_OK; i++)
		log_info("report %lld stored ip=%s from=<%s> rcpt=%s size=%zu",
			 (long long)s->report_ids[i], s->ip, p->mail_from, paths[i].rcpt,
			 p->body->len);
}

/* End of DATA on the inbound listener: the reports worker stores the report. */
static void inbound_submit(struct smtpd_session *s)
{
	if (!conn_may_hold(s->loop->d))
		return smtp_submit_done(
			s->proto, "421 4.3.2 Postern is shutting down; try again later", true);
	conn_to_worker(s);
}

/* "250 2.0.0 Ok: report 7 stored", or "reports 7, 8 stored" for several return paths. */
static void report_stored_reply(const struct smtpd_session *s, char *out, size_t n)
{
	int len = snprintf(out, n, "250 2.0.0 Ok: report%s", s->nreports > 1 ? "s" : "");
	for (size_t i = 0; i < s->nreports && len > 0 && (size_t)len < n; i++)
		len += snprintf(out + len, n - (size_t)len, "%s %lld", i ? "," : "",
				(long long)s->report_ids[i]);
	if (len > 0 && (size_t)len < n)
		snprintf(out + len, n - (size_t)len, " stored");
}

/* The reports worker's answer: 250 with the reports' ids, or 451 to be sent again. */
static void report_answer(struct smtpd_session *s)
{
	struct smtpd *d = s->loop->d;
	char reply[200];
	if (s->report_rc == STORE_OK) {
		smtpd_rate_allows(d->rate, s->ip, util_now(), 1);
		bounces_wake(d->bounces);
		report_stored_reply(s, reply, sizeof(reply));
	} else {
		log_error("report from ip=%s not stored: the store failed", s->ip);
		snprintf(reply, sizeof(reply),
			 "451 4.3.0 the report could not be stored; try again later");
	}
	smtp_submit_done(s->proto, reply, false);
}

static void auth_run(void *arg, struct worker *w)
{
	struct smtpd *d = arg;
	while (worker_wait(w, WORKER_FOREVER)) {
		touch_now(d);
		struct smtpd_session *s;
		while ((s = jobs_next(&d->auth))) {
			s->auth_retry = 0;
			s->auth_e =
				keys_smtp_auth(d->store, d->policies, s->proto->user,
					       s->proto->pass, s->ip, &s->auth_key, &s->auth_retry);
			event_active(s->resume, EV_TIMEOUT, 0);
		}
	}
}

/* Stores reports on a thread of its own: a report's commit waits for the disk, which an
 * AUTH reply must not. */
static void reports_run(void *arg, struct worker *w)
{
	struct smtpd *d = arg;
	while (worker_wait(w, WORKER_FOREVER)) {
		struct smtpd_session *s;
		while ((s = jobs_next(&d->reports))) {
			report_store(d, s);
			event_active(s->resume, EV_TIMEOUT, 0);
		}
	}
}

/* What a key without the mail.send scope is told, at AUTH and at MAIL (550 5.7.1). */
static const char smtpd_no_send[] =
	"This API key may not send mail: it lacks the mail.send scope. Use a key that has it.";

/* The auth worker's verdict, as the reply: 235, 454 (store down), 535, 550 (a right key
 * that may not send) or 421 and close. */
static void auth_answer(struct smtpd_session *s)
{
	struct smtp_session *p = s->proto;
	enum err e = s->auth_e;
	int64_t retry = s->auth_retry;
	char reply[400], detail[120];
	if (e == ERR_OK && !keys_has_scope(&s->auth_key, KEYS_SCOPE_MAIL_SEND))
		e = ERR_FORBIDDEN;
	if (e == ERR_OK) {
		s->key = s->auth_key;
		s->have_key = true;
		snprintf(reply, sizeof(reply), "235 2.7.0 Authentication successful");
	} else if (e == ERR_STORE_UNAVAILABLE) {
		/* RFC 4954's temporary authentication failure, not the generic 451. */
		snprintf(reply, sizeof(reply), "454 4.7.0 %s: %s", err_info(e)->code,
			 err_info(e)->message);
	} else if (e == ERR_TOO_MANY_ATTEMPTS) {
		snprintf(detail, sizeof(detail),
			 "Too many failed AUTH attempts; try again in %lld seconds.",
			 (long long)retry);
		err_reply(reply, sizeof(reply), e, detail);
	} else if (e == ERR_FORBIDDEN) {
		err_reply(reply, sizeof(reply), e, smtpd_no_send);
	} else {
		err_reply(reply, sizeof(reply), e,
			  e == ERR_IP_NOT_ALLOWED
				  ? NULL
				  : "The user name (apikey or the account's name) or the API key "
				    "is wrong.");
	}
	if (e != ERR_OK)
		log_info("smtp auth refused ip=%s (%s)", s->ip, err_info(e)->code);
	explicit_bzero(&s->auth_key, sizeof(s->auth_key));
	smtp_auth_done(p, e == ERR_OK, reply, e == ERR_TOO_MANY_ATTEMPTS);
}

/* The key a transaction is sent as: AUTH's, else the key whose smtp_ips hold the client. */
static enum err transaction_key(struct smtpd_session *s)
{
	if (s->have_key) {
		/* A key revoked since AUTH stops this session too, at its next MAIL: the
		 * AUTH is forgotten and the client must authenticate anew. */
		enum err r = keys_recheck(s->loop->d->policies, &s->key, s->ip);
		if (r != ERR_INVALID_CREDENTIALS) {
			s->txn_key = s->key;
			return r;
		}
		s->have_key = false;
		s->proto->authenticated = false;
	}
	enum err e = keys_smtp_ip(s->loop->d->policies, s->ip, &s->txn_key);
	if (e == ERR_OK && keys_use_due(&s->txn_key))
		touch_later(s->loop->d, s->txn_key.id);
	return e == ERR_NOT_FOUND ? ERR_NOT_AUTHENTICATED : e;
}

static void do_mail(struct smtpd_session *s)
{
	struct smtpd *d = s->loop->d;
	char reply[600];
	enum err e = transaction_key(s);
	if (e == ERR_NOT_AUTHENTICATED) {
		err_reply(reply, sizeof(reply), e,
			  "Authentication required: AUTH with an API key, or send from a network "
			  "listed in a key's smtp_ips.");
		return smtp_mail_done(s->proto, false, reply);
	}
	/* SMTP-IP's key, or AUTH's whose scopes changed since. */
	if (e == ERR_OK && !keys_has_scope(&s->txn_key, KEYS_SCOPE_MAIL_SEND)) {
		err_reply(reply, sizeof(reply), ERR_FORBIDDEN, smtpd_no_send);
		return smtp_mail_done(s->proto, false, reply);
	}
	if (e == ERR_OK && !s->proto->mail_from[0]) {
		err_reply(reply, sizeof(reply), ERR_SENDER_NOT_AUTHORIZED,
			  "The null sender <> cannot be authorized; send from an authorized "
			  "address.");
		return smtp_mail_done(s->proto, false, reply);
	}
	s->mail_monitored = POLICY_ALLOW;
	if (e == ERR_OK)
		e = submit_check_address(d->policies, d->drops, METRICS_SMTP, &s->txn_key,
					 s->proto->mail_from, &s->mail_monitored);
	if (e == ERR_OK)
		snprintf(reply, sizeof(reply), "250 2.1.0 Ok");
	else
		err_reply(reply, sizeof(reply), e, NULL);
	smtp_mail_done(s->proto, e == ERR_OK, reply);
}

/* Runs on the queue's writer thread once the commit holding the message has landed. */
static void committed(void *arg, int rc)
{
	struct smtpd_session *s = arg;
	s->rc = rc;
	event_active(s->resume, EV_TIMEOUT, 0);
}

/* The commit's outcome, as the reply to DATA. */
static void commit_answer(struct smtpd_session *s)
{
	char reply[200], note[96] = "";
	if (s->rc == STORE_OK) {
		log_info("message %s queued account=%lld key=%lld from=%s recipients=%d "
			 "source=smtp",
			 s->sub.id, (long long)s->sub.m.account_id, (long long)s->sub.m.api_key_id,
			 s->sub.from, s->sub.m.recipients);
		/* Monitor mode's would-be refusal rides on the 250, as the API's header does. */
		if (s->sub.monitored != POLICY_ALLOW)
			submit_monitor_note(s->sub.monitored, note, sizeof(note));
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s%s%s%s", s->sub.id,
			 note[0] ? " (" : "", note, note[0] ? ")" : "");
	} else {
		err_reply(reply, sizeof(reply), ERR_STORE_UNAVAILABLE, NULL);
	}
	submit_free(&s->sub);
	free(s->rcpts);
	s->rcpts = NULL;
	smtp_submit_done(s->proto, reply, false);
}

/* Runs in the session's loop once its commit landed or its AUTH check is made. */
static void conn_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtpd_session *s = arg;
	struct smtpd *d = s->loop->d;
	s->waiting = false;
	if (s->auth && s->inbound)
		report_answer(s);
	else if (s->auth)
		auth_answer(s);
	else
		commit_answer(s);
	s->auth = false;
	if (!s->bev || s->closing) { /* the client left (or timed out) while it waited */
		conn_free(s);
	} else {
		bufferevent_enable(s->bev, EV_READ);
		conn_run(s);
	}
	atomic_fetch_sub(&d->pending, 1);
}

static void do_submit(struct smtpd_session *s)
{
	struct smtpd *d = s->loop->d;
	struct smtp_session *p = s->proto;
	char reply[600], why[300];
	if (!conn_may_hold(d)) /* RFC 5321 3.8: a 421 closes the connection */
		return smtp_submit_done(p, "421 4.3.2 Postern is shutting down; try again later",
					true);
	s->rcpts = xcalloc((size_t)p->nrcpts, sizeof(*s->rcpts));
	for (int i = 0; i < p->nrcpts; i++)
		s->rcpts[i] = p->rcpts[i];
	struct submit_smtp_in in = {.mail_from = p->mail_from,
				    .mail_from_monitored = s->mail_monitored,
				    .rcpts = s->rcpts,
				    .nrcpts = p->nrcpts,
				    .data = p->body->str,
				    .len = p->body->len};
	conn_hold(s);
	why[0] = '\0';
	enum err e = submit_smtp(d->queue, d->policies, d->drops, &s->txn_key, &in, &s->sub, why,
				 sizeof(why), committed, s);
	if (e == ERR_OK)
		return;
	s->waiting = false;
	free(s->rcpts);
	s->rcpts = NULL;
	submit_free(&s->sub);
	err_reply(reply, sizeof(reply), e, e == ERR_INVALID_REQUEST && why[0] ? why : NULL);
	smtp_submit_done(p, reply, false);
	bufferevent_enable(s->bev, EV_READ);
	atomic_fetch_sub(&d->pending, 1);
}

/* Performs the protocol's pending action. */
static void conn_act(struct smtpd_session *s)
{
	switch (s->proto->action) {
	case SMTP_ACT_STARTTLS:
		return do_starttls(s);
	case SMTP_ACT_AUTH:
		return do_auth(s);
	case SMTP_ACT_MAIL:
		return s->inbound ? inbound_mail(s) : do_mail(s);
	case SMTP_ACT_SUBMIT:
		return s->inbound ? inbound_submit(s) : do_submit(s);
	case SMTP_ACT_CLOSE:
		conn_flush(s);
		return conn_close(s);
	case SMTP_ACT_NONE:
		return;
	}
}

/* True when the client leaves too many replies unread: reading stops until conn_drained.
 * Only while the bufferevent's own output holds some, so that its drain calls back (a
 * TLS filter's socket side is held to SMTPD_OUT_MAX by its write watermark). */
static bool conn_backed_up(struct smtpd_session *s)
{
	if (s->proto->out->len > SMTPD_OUT_MAX / 4)
		conn_flush(s);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 ||
	    output_pending(s) <= SMTPD_OUT_MAX)
		return false;
	s->blocked = true;
	bufferevent_disable(s->bev, EV_READ);
	return true;
}

/* Feeds what the client sent to the protocol, acting on what it asks, until the input is
 * used up, the client's unread replies pile up, or the session waits (a commit, an AUTH
 * check) or ends. */
static void conn_run(struct smtpd_session *s)
{
	while (s->bev && !s->waiting && !s->closing && !conn_backed_up(s)) {
		if (s->proto->action != SMTP_ACT_NONE) {
			conn_act(s);
			continue;
		}
		struct evbuffer *in = bufferevent_get_input(s->bev);
		struct evbuffer_iovec v;
		if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		evbuffer_drain(in, smtp_feed(s->proto, v.iov_base, v.iov_len));
	}
	conn_flush(s);
	if (s->bev && !s->closing)
		conn_timeouts(s, false);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_run(arg);
}

/* The output drained: a session that stopped reading for it reads on. */
static void conn_drained(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;
	if (!s->blocked || s->waiting || s->closing)
		return;
	s->blocked = false;
	bufferevent_enable(bev, EV_READ);
	conn_run(s);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct smtpd_session *s = arg;
	if ((what & BEV_EVENT_TIMEOUT) && !s->closing) {
		GString *out = s->proto->out;
		smtp_reply(out, 421, "4.4.2", "Timeout exceeded, closing the connection");
		conn_flush(s);
		return conn_close(s);
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	if (s->waiting) { /* freed when its commit lands */
		bufferevent_free(s->bev);
		s->bev = NULL;
		return;
	}
	if (!s->closing)
		conn_free(s);
	else if (s->bev) { /* the close poll frees it */
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
}

static void conn_set_callbacks(struct smtpd_session *s)
{
	bufferevent_setcb(s->bev, conn_read, conn_drained, conn_event, s);
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	if (under) /* TLS records wait in the filter, where conn_backed_up sees them */
		bufferevent_setwatermark(under, EV_WRITE, 0, SMTPD_OUT_MAX);
}

struct handoff {
	struct smtpd_loop *loop;
	evutil_socket_t fd;
	bool tls;
	bool inbound;
	char ip[INET6_ADDRSTRLEN];
};

/* Runs in the chosen loop: makes the session and greets (or turns away) the client. */
static void conn_open(evutil_socket_t unused, short what, void *arg)
{
	(void)unused;
	(void)what;
	struct handoff *h = arg;
	struct smtpd_loop *loop = h->loop;
	struct smtpd *d = loop->d;
	SSL *ssl = h->tls ? tls_new(d) : NULL;
	struct bufferevent *bev =
		h->tls ? (ssl ? bufferevent_openssl_socket_new(loop->base, h->fd, ssl,
							       BUFFEREVENT_SSL_ACCEPTING,
							       BEV_OPT_CLOSE_ON_FREE)
			      : NULL)
		       : bufferevent_socket_new(loop->base, h->fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		/* A failed bufferevent_openssl_socket_new has freed the SSL and closed the
		 * socket already (BEV_OPT_CLOSE_ON_FREE, libevent 2.1). */
		if (!h->tls || !ssl)
			evutil_closesocket(h->fd);
		free(h);
		return;
	}
	struct smtpd_session *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->bev = bev;
	s->tls = h->tls;
	s->inbound = h->inbound;
	snprintf(s->ip, sizeof(s->ip), "%s", h->ip);
	s->proto = smtp_session_new(h->inbound ? &d->lim_in : &d->lim, h->tls);
	s->resume = event_new(loop->base, -1, 0, conn_resume, s);
	s->closer = evtimer_new(loop->base, conn_close_poll, s);
	LIST_INSERT_HEAD(&loop->sessions, s, link);
	free(h);
	conn_set_callbacks(s);
	conn_timeouts(s, true);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	atomic_int *count = s->inbound ? &d->inbound_connections : &d->connections;
	int cap = s->inbound ? d->cfg->bounces_max_connections : d->cfg->smtp_max_connections;
	log_debug("smtp connection from %s on the %s listener", s->ip,
		  s->inbound ? "reports" : "submission");
	if (atomic_fetch_add(count, 1) >= cap) {
		g_string_truncate(s->proto->out, 0);
		smtp_reply(s->proto->out, 421, "4.7.0", "Too many connections; try again later");
		conn_flush(s);
		return conn_close(s);
	}
	conn_flush(s);
}

/* The client's address as text. An IPv4 client of a dual-stack listener ([::]) arrives as
 * ::ffff:a.b.c.d; it is written as a.b.c.d, so SMTP-IP networks and the AUTH lockout see
 * the address every other part of Postern sees (as an IPv6 /64, every IPv4 client would
 * share one lockout). */
static void client_ip(const struct sockaddr *sa, char *out, size_t n)
{
	const void *a = &((const struct sockaddr_in *)sa)->sin_addr;
	int family = sa->sa_family;
	if (family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		a = a6;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			a = &a6->s6_addr[12];
		}
	}
	if (!inet_ntop(family, a, out, (socklen_t)n))
		snprintf(out, n, "unknown");
}

/* Runs in the first loop: hands the connection to the next loop in turn. */
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	(void)l;
	(void)salen;
	struct smtpd_listener *li = arg;
	struct smtpd *d = li->d;
	li->failing = false;
	struct handoff *h = xcalloc(1, sizeof(*h));
	h->loop = &d->loops[d->next++ % (unsigned)d->nloops];
	h->fd = fd;
	h->tls = li->tls;
	h->inbound = li->inbound;
	client_ip(sa, h->ip, sizeof(h->ip));
	struct timeval now = {0, 0};
	if (event_base_once(h->loop->base, -1, EV_TIMEOUT, conn_open, h, &now) < 0) {
		evutil_closesocket(fd);
		free(h);
	}
}

/* An accept that fails (out of descriptors, mostly) fails again at once while the
 * connection waits in the backlog: the listener rests a moment instead of spinning, and
 * says so once until an accept succeeds again. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct smtpd_listener *li = arg;
	int e = EVUTIL_SOCKET_ERROR();
	evconnlistener_disable(l);
	if (!li->failing)
		log_warn("SMTP: cannot accept connections: %s%s; pausing the listener", strerror(e),
			 e == EMFILE || e == ENFILE ? " (raise the descriptor limit, or lower "
						      "[smtp] max_connections)"
						    : "");
	li->failing = true;
	struct timeval pause = {0, SMTPD_ACCEPT_PAUSE};
	evtimer_add(li->pause, &pause);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtpd_listener *li = arg;
	if (!atomic_load(&li->d->draining))
		evconnlistener_enable(li->l);
}

/* libevent's own warnings go to the log, at most one a second: a failing socket call can
 * repeat one many times a second. */
static void libevent_log(int severity, const char *msg)
{
	static _Atomic time_t last;
	time_t now = time(NULL), seen = atomic_load(&last);
	if (severity < EVENT_LOG_WARN || now == seen ||
	    !atomic_compare_exchange_strong(&last, &seen, now))
		return;
	log_warn("libevent: %s", msg);
}

/* Each session is a descriptor (two while it relays nothing else): the soft limit goes up
 * to the hard one, and a limit that still cannot hold the listeners' max_connections is
 * said at start. */
static void raise_fd_limit(const struct config *cfg)
{
	bool inbound = cfg->bounces_listen[0] != '\0';
	int max_connections =
		cfg->smtp_max_connections + (inbound ? cfg->bounces_max_connections : 0);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	rlim_t want = (rlim_t)max_connections + SMTPD_FD_RESERVE;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		log_warn("SMTP: the descriptor limit (%llu) is below [smtp] max_connections%s "
			 "(%d) plus %d in reserve; connections past it wait until descriptors "
			 "free up",
			 (unsigned long long)rl.rlim_cur,
			 inbound ? " and [bounces] max_connections" : "", max_connections,
			 SMTPD_FD_RESERVE);
}

/* ---- Start and stop ---- */

static int listen_on(struct smtpd *d, struct smtpd_listener *li, const char *hostport, bool tls,
		     bool inbound, char *err, size_t errlen)
{
	char host[128];
	const char *colon = strrchr(hostport, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	char *h = host;
	if (h[0] == '[') { /* [IPv6]:PORT */
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	struct evutil_addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = EVUTIL_AI_PASSIVE};
	struct evutil_addrinfo *ai = NULL;
	if (evutil_getaddrinfo(h, colon + 1, &hints, &ai) != 0 || !ai) {
		snprintf(err, errlen, "cannot listen on %s: cannot resolve %s", hostport, h);
		return -1;
	}
	li->d = d;
	li->tls = tls;
	li->inbound = inbound;
	li->l = evconnlistener_new_bind(d->loops[0].base, on_accept, li,
					LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_THREADSAFE,
					-1, ai->ai_addr, (int)ai->ai_addrlen);
	int saved = errno;
	evutil_freeaddrinfo(ai);
	if (!li->l) {
		snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(saved));
		return -1;
	}
	li->pause = evtimer_new(d->loops[0].base, accept_resume, li);
	evconnlistener_set_error_cb(li->l, on_accept_error);
	return 0;
}

static void loop_run(void *arg, struct worker *w)
{
	(void)w;
	struct smtpd_loop *loop = arg;
	event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
}

static void loop_break(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* One loop per core, up to SMTPD_LOOPS_MAX: an SMTP session costs little CPU between
 * its reads, and the policy checks it calls are in memory. */
static int loops_wanted(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > SMTPD_LOOPS_MAX ? SMTPD_LOOPS_MAX : (int)n;
}

static void listener_free(struct smtpd_listener *li)
{
	if (li->l)
		evconnlistener_free(li->l);
	if (li->pause)
		event_free(li->pause);
}

static void smtpd_free(struct smtpd *d)
{
	listener_free(&d->plain);
	listener_free(&d->implicit);
	listener_free(&d->inbound);
	for (int i = 0; i < d->nloops; i++) {
		struct smtpd_loop *loop = &d->loops[i];
		while (!LIST_EMPTY(&loop->sessions))
			conn_free(LIST_FIRST(&loop->sessions));
		event_base_free(loop->base);
	}
	SSL_CTX_free(d->tls);
	pthread_mutex_destroy(&d->tls_lock);
	pthread_mutex_destroy(&d->auth.lock);
	pthread_mutex_destroy(&d->reports.lock);
	smtpd_rate_free(d->rate);
	sodium_memzero(d->verp_key, sizeof(d->verp_key));
	free(d);
}

static void loops_stop(struct smtpd *d)
{
	struct timeval now = {0, 0};
	for (int i = 0; i < d->nloops; i++) {
		if (!d->loops[i].worker)
			continue;
		/* An event, not a flag: a break asked before the loop runs is not lost. */
		event_base_once(d->loops[i].base, -1, EV_TIMEOUT, loop_break, d->loops[i].base,
				&now);
		worker_stop(d->loops[i].worker);
		d->loops[i].worker = NULL;
	}
}

/* A loop whose epoll changes are gathered per turn: a reply enables writing and its drain
 * disables it again, which would otherwise be two epoll_ctl calls per reply. */
static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int loops_start(struct smtpd *d, char *err, size_t errlen)
{
	d->nloops = loops_wanted();
	for (int i = 0; i < d->nloops; i++) {
		d->loops[i].d = d;
		LIST_INIT(&d->loops[i].sessions);
		d->loops[i].base = new_base();
		if (!d->loops[i].base) {
			d->nloops = i;
			snprintf(err, errlen, "cannot make an event loop for SMTP");
			return -1;
		}
	}
	for (int i = 0; i < d->nloops; i++) {
		d->loops[i].worker = worker_start("smtp loop", loop_run, &d->loops[i], err, errlen);
		if (!d->loops[i].worker)
			return -1;
	}
	return 0;
}

static void use_threads(void)
{
	evthread_use_pthreads();
	event_set_log_callback(libevent_log);
}

/* The inbound listener's limits: reports of [bounces] max_size to a few return paths. */
static void inbound_limits(struct smtpd *d, const unsigned char master[DKIMKEY_MASTER_LEN])
{
	const struct config *cfg = d->cfg;
	verp_key(master, d->verp_key);
	d->lim_in = (struct smtp_limits){.hostname = cfg->smtp_hostname,
					 .max_size = (size_t)cfg->bounces_max_size,
					 .max_recipients = SMTPD_INBOUND_RCPTS,
					 .tls_available = cfg->smtp_tls_cert[0] != '\0',
					 .inbound = true,
					 .rcpt_ok = verp_rcpt_ok,
					 .rcpt_arg = d};
}

/* Each configured listener. */
static int listeners_start(struct smtpd *d, char *err, size_t errlen)
{
	const struct config *cfg = d->cfg;
	if (cfg->smtp_listen[0] &&
	    listen_on(d, &d->plain, cfg->smtp_listen, false, false, err, errlen) < 0)
		return -1;
	if (cfg->smtp_tls_listen[0] &&
	    listen_on(d, &d->implicit, cfg->smtp_tls_listen, true, false, err, errlen) < 0)
		return -1;
	if (cfg->bounces_listen[0] &&
	    listen_on(d, &d->inbound, cfg->bounces_listen, false, true, err, errlen) < 0)
		return -1;
	return 0;
}

/* The AUTH worker, and the reports worker when there is an inbound listener. */
static int workers_start(struct smtpd *d, char *err, size_t errlen)
{
	d->auth.worker = worker_start("smtp auth", auth_run, d, err, errlen);
	if (!d->auth.worker)
		return -1;
	if (!d->cfg->bounces_listen[0])
		return 0;
	d->reports.worker = worker_start("smtp reports", reports_run, d, err, errlen);
	return d->reports.worker ? 0 : -1;
}

static void workers_stop(struct smtpd *d)
{
	worker_stop(d->auth.worker);
	worker_stop(d->reports.worker);
	d->auth.worker = d->reports.worker = NULL;
}

struct smtpd *smtpd_start(const struct config *cfg, struct store *store,
			  struct policy_cache *policies, struct drops *drops, struct queue *queue,
			  const unsigned char master[DKIMKEY_MASTER_LEN], struct bounces *bounces,
			  char *err, size_t errlen)
{
	static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
	/* The queue's writer thread wakes sessions: the loops need libevent's locks. */
	pthread_once(&threads_once, use_threads);
	struct smtpd *d = xcalloc(1, sizeof(*d));
	*d = (struct smtpd){.cfg = cfg,
			    .store = store,
			    .policies = policies,
			    .drops = drops,
			    .queue = queue,
			    .bounces = bounces,
			    .lim = {.hostname = cfg->smtp_hostname,
				    .max_size = (size_t)cfg->smtp_max_size,
				    .max_recipients = cfg->smtp_max_recipients,
				    .tls_available = cfg->smtp_tls_cert[0] != '\0',
				    .auth_without_tls = cfg->smtp_auth_without_tls}};
	pthread_mutex_init(&d->tls_lock, NULL);
	pthread_mutex_init(&d->auth.lock, NULL);
	pthread_mutex_init(&d->reports.lock, NULL);
	d->rate = smtpd_rate_new(cfg->bounces_rate, SMTPD_RATE_SLOTS);
	inbound_limits(d, master);
	STAILQ_INIT(&d->auth.queue);
	STAILQ_INIT(&d->reports.queue);
	raise_fd_limit(cfg);
	if (cfg->smtp_tls_cert[0]) {
		d->tls = tls_context(cfg->smtp_tls_cert, cfg->smtp_tls_key, err, errlen);
		if (!d->tls)
			goto fail;
	}
	if (workers_start(d, err, errlen) < 0 || loops_start(d, err, errlen) < 0 ||
	    listeners_start(d, err, errlen) < 0)
		goto fail;
	return d;
fail:
	loops_stop(d);
	workers_stop(d);
	smtpd_free(d);
	return NULL;
}

/* Turns a listener off for good at stop. Runs in the first loop, the listeners' own: its
 * pause timer cannot be running then, so it cannot turn the listener back on after this;
 * later ones see draining. */
static void listener_quiet(struct smtpd_listener *li)
{
	if (li->pause)
		event_del(li->pause);
	if (li->l)
		evconnlistener_disable(li->l);
}

struct quieting {
	struct smtpd *d;
	sem_t done;
};

static void listeners_quiet_here(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct quieting *q = arg;
	listener_quiet(&q->d->plain);
	listener_quiet(&q->d->implicit);
	listener_quiet(&q->d->inbound);
	sem_post(&q->done);
}

/* Disabling a thread-safe listener from another thread holds the listener's lock while
 * event_del waits for its accept callback, which is waiting for that lock: a stop that
 * came while a connection was being accepted hung for good. So the first loop quiets the listeners
 * itself, and the stop waits for it. Should that event not be made (no memory), the listeners stay
 * on until the loops stop, and draining refuses what their sessions submit. */
static void listeners_quiet(struct smtpd *d)
{
	struct quieting q = {.d = d};
	struct timeval now = {0, 0};
	sem_init(&q.done, 0, 0);
	if (event_base_once(d->loops[0].base, -1, EV_TIMEOUT, listeners_quiet_here, &q, &now) == 0)
		while (sem_wait(&q.done) < 0 && errno == EINTR)
			;
	sem_destroy(&q.done);
}

void smtpd_stop(struct smtpd *d)
{
	if (!d)
		return;
	/* Draining first: a listener's pause timer no longer re-enables it. */
	atomic_store(&d->draining, true);
	listeners_quiet(d);
	/* Messages handed to the queue get their commit and their reply first, AUTH checks
	 * under way their answer; new ones are refused with 421. */
	for (int i = 0; i < SMTPD_DRAIN_WAIT * 100 && atomic_load(&d->pending) > 0; i++)
		usleep(10000);
	int left = atomic_load(&d->pending);
	loops_stop(d);
	/* The loops take no input now, so no AUTH or report is queued; this waits for a
	 * check or a report under way, after which no thread but the queue's writer touches
	 * a session. */
	workers_stop(d);
	if (left > 0) {
		/* Their commits may still call back into the loops: leave them be. */
		log_warn("SMTP: %d sessions still waiting for a commit, an AUTH check or a report "
			 "at stop",
			 left);
		return;
	}
	smtpd_free(d);
}
