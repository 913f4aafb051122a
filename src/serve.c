/* The daemon: opens the store, starts the HTTP server (and the SMTP server when
 * configured), waits for SIGTERM or SIGINT, then lets in-flight requests finish before
 * closing the store; SIGHUP re-reads the SMTP certificate. Signals are blocked in every
 * thread and taken synchronously by the main thread, so no handler runs in signal context. */
#include "serve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "bounces.h"
#include "deliver.h"
#include "domains.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "retention.h"
#include "smtpd.h"
#include "store.h"
#include "webhook.h"

/* Creates DIR and its parents, like mkdir -p. */
static int mkdirs(const char *dir)
{
	char path[1024];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -1;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

static int prepare_relay(const struct config *cfg)
{
	if (strncmp(cfg->relay_url, "outbox:", 7) != 0)
		return 0;
	if (mkdirs(cfg->relay_url + 7) < 0) {
		log_error("cannot create outbox directory %s: %s", cfg->relay_url + 7,
			  strerror(errno));
		return -1;
	}
	return 0;
}

static int lock_database(const char *db)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s.lock", db);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("%s is in use by another postern serve (lock %s)", db, path);
		close(fd);
		return -1;
	}
	return 0; /* fd stays open: the lock lasts as long as this process */
}

static int run(const struct config *cfg)
{
	sigset_t stop;
	char err[600];
	int sig = 0;

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_set_level((enum log_level)cfg->log_level);
	/* Its thread starts with the stop signals blocked, like every other. A thread that
	 * cannot start stops start-up, with one line naming it. */
	if (log_buffered(err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}

	if (auth_init() < 0) {
		log_error("cannot initialise libsodium");
		return -1;
	}
	/* One daemon per SQLite database: a second one would resume the first one's
	 * messages as if it had stopped. The lock ends with the process. PostgreSQL is
	 * shared by design: nodes claim messages with row locks and leases. */
	if (!cfg->store_postgres[0] && lock_database(cfg->store_path) < 0)
		return -1;
	struct store *store = cfg->store_postgres[0]
				      ? store_pg_open(cfg->store_postgres, err, sizeof(err))
				      : store_sqlite_open(cfg->store_path, err, sizeof(err));
	if (!store) {
		log_error("%s", err);
		return -1;
	}
	/* PostgreSQL's listener starts with the first question for the stamp: asked here, a
	 * listener that cannot start stops start-up (the driver says why), not a request. */
	uint64_t stamp;
	if (store_policy_stamp(store, &stamp) != STORE_OK || prepare_relay(cfg) < 0) {
		store_close(store);
		return -1;
	}
	struct api_ctx ctx = {.store = store,
			      .cfg = cfg,
			      .policies = policy_cache_new(store),
			      .secure_cookies = strncmp(cfg->public_url, "https://", 8) == 0};
	struct deliver *deliver = NULL;
	struct webhooks *webhooks = NULL;
	struct domains *domains = NULL;
	struct http_server *http = NULL;
	struct smtpd *smtp = NULL;
	struct bounces *bounces = NULL;
	struct retention *retention = NULL;
	int status = -1;

	/* The master key is made on first start when the file does not exist yet; it must be
	 * the one the store's DKIM keys are sealed with. */
	const char *keyfile = cfg->dkim_master_key_file;
	if (dkimkey_master_load(keyfile, true, ctx.master_key, err, sizeof(err)) < 0 ||
	    dkimkey_master_verify(store, ctx.master_key, keyfile, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	notify_init(ctx.master_key);
	ctx.drops = drops_start(store, err, sizeof(err));
	if (!ctx.drops) {
		log_error("%s", err);
		goto out;
	}
	deliver = deliver_start(store, cfg, ctx.policies, ctx.drops, ctx.master_key, err,
				sizeof(err));
	if (!deliver) {
		log_error("%s", err);
		goto out;
	}
	webhooks = webhooks_start(store, cfg, ctx.master_key, err, sizeof(err));
	if (!webhooks) {
		log_error("%s", err);
		goto out;
	}
	domains = domains_start(store, cfg, err, sizeof(err));
	if (!domains) {
		log_error("%s", err);
		goto out;
	}
	/* Each commit wakes the workers, so new mail leaves without waiting for a poll. */
	ctx.queue = queue_start(store, deliver_wake, deliver, err, sizeof(err));
	if (!ctx.queue) {
		log_error("%s", err);
		goto out;
	}
	/* Always: reports stored by any node get parsed, with or without a listener here. */
	bounces = bounces_start(store, cfg, err, sizeof(err));
	if (!bounces) {
		log_error("%s", err);
		goto out;
	}
	retention = retention_start(store, cfg, err, sizeof(err));
	if (!retention) {
		log_error("%s", err);
		goto out;
	}
	http = http_start(cfg->listen, cfg->threads, cfg->trusted_proxies, api_handle, &ctx, err,
			  sizeof(err));
	if (!http) {
		log_error("%s", err);
		goto out;
	}
	if (cfg->smtp_listen[0] || cfg->smtp_tls_listen[0] || cfg->bounces_listen[0]) {
		smtp = smtpd_start(cfg, store, ctx.policies, ctx.drops, ctx.queue, ctx.master_key,
				   bounces, err, sizeof(err));
		if (!smtp) {
			log_error("%s", err);
			goto out;
		}
		if (cfg->smtp_listen[0] || cfg->smtp_tls_listen[0])
			log_info("SMTP submission on %s%s%s%s",
				 cfg->smtp_listen[0] ? cfg->smtp_listen : "",
				 cfg->smtp_listen[0] && cfg->smtp_tls_listen[0] ? " and " : "",
				 cfg->smtp_tls_listen[0] ? cfg->smtp_tls_listen : "",
				 cfg->smtp_tls_listen[0] ? " (implicit TLS)" : "");
		if (cfg->bounces_listen[0])
			log_info("reports for %s received on %s", cfg->bounces_domain,
				 cfg->bounces_listen);
	}
	/* A conninfo may hold a password: PostgreSQL is named, not shown. */
	log_info("postern serving on %s (port %d), public_url %s, store %s, relay %s", cfg->listen,
		 http_port(http), cfg->public_url,
		 cfg->store_postgres[0] ? "PostgreSQL" : cfg->store_path, cfg->relay_url);

	for (;;) {
		if (sigwait(&stop, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		smtpd_reload(smtp); /* new SMTP connections get the certificate on disk now */
	}
	log_info("received %s: finishing in-flight requests",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	status = 0;
out:
	/* In order: no new requests or SMTP sessions, then every accepted message committed, then
	 * reports stop after the one in hand, delivery after the message in hand, webhooks
	 * after the POST in hand, then the counters are written; the purge stops after its
	 * batch in hand, before the store closes. */
	http_stop(http);
	smtpd_stop(smtp);
	bounces_stop(bounces);
	domains_stop(domains);
	queue_stop(ctx.queue);
	deliver_stop(deliver);
	webhooks_stop(webhooks);
	drops_stop(ctx.drops);
	retention_stop(retention);
	policy_cache_free(ctx.policies);
	store_close(store);
	sodium_memzero(ctx.master_key, sizeof(ctx.master_key));
	notify_end();
	if (status == 0)
		log_info("postern stopped");
	return status;
}

int serve_run(const struct config *cfg)
{
	int status = run(cfg);
	log_unbuffered();
	return status;
}
