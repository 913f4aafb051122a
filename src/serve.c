/* The daemon: opens the store, starts the HTTP server (and the SMTP server when
 * configured), waits for SIGTERM or SIGINT, then lets in-flight requests finish before
 * closing the store; SIGHUP re-reads the SMTP certificate and [log] level and format. Signals are
 * blocked in every thread and taken synchronously by the main thread, so no handler runs
 * in signal context; the same loop pings systemd's watchdog. */
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
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "bounces.h"
#include "deliver.h"
#include "domains.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "retention.h"
#include "smtpd.h"
#include "store.h"
#include "sysd.h"
#include "util.h"
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

/* The watchdog's question, asked before every WATCHDOG=1 ping: is this process still doing
 * its work? A false answer withholds the ping, and systemd restarts the service. Liveness
 * only: a store that is down makes /readyz answer 503 for the load balancer, but restarting
 * the daemon would not bring the store back, so it does not stop the pings. A commit stuck
 * for QUEUE_STALL seconds does. */
static bool alive(const struct api_ctx *ctx)
{
	return queue_alive(ctx->queue);
}

/* SIGHUP's [log] level and format: read again from the file the daemon was started with. A
 * file that no longer parses changes neither, with one warning naming what is wrong in it. */
static void reload_log(const char *config_path)
{
	static struct config fresh; /* large; only the main thread reloads */
	char err[600];
	if (!config_path)
		return;
	config_defaults(&fresh);
	if (config_load(&fresh, config_path, err, sizeof(err)) < 0) {
		log_warn("log level and format not reloaded, the old ones stay: %s", err);
		return;
	}
	log_set_level((enum log_level)fresh.log_level);
	log_set_format((enum log_format)fresh.log_format);
	log_info("log level %s, format %s, from %s", log_level_names[fresh.log_level],
		 log_format_names[fresh.log_format], config_path);
}

static void reload(const char *config_path, struct smtpd *smtp)
{
	sysd_reloading();
	smtpd_reload(smtp); /* new SMTP connections get the certificate on disk now */
	reload_log(config_path);
	sysd_ready();
}

/* The next signal of set, or 0 when ms milliseconds pass first (ms 0: wait for ever). */
static int next_signal(const sigset_t *set, uint64_t ms)
{
	int sig = 0;
	if (!ms)
		return sigwait(set, &sig) == 0 ? sig : 0;
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};
	sig = sigtimedwait(set, NULL, &ts);
	return sig > 0 ? sig : 0;
}

/* Until SIGTERM or SIGINT (returned): SIGHUP reloads, and while systemd's watchdog is on, a
 * ping goes out every half interval as long as the daemon is alive. */
static int wait_for_stop(const sigset_t *set, const char *config_path, struct smtpd *smtp,
			 const struct api_ctx *ctx)
{
	uint64_t every = sysd_watchdog_interval_ms();
	double next_ping = util_monotonic();
	for (;;) {
		uint64_t wait = 0;
		if (every) {
			double now = util_monotonic();
			if (now >= next_ping) {
				if (alive(ctx))
					sysd_watchdog();
				next_ping = now + (double)every / 1000;
			}
			wait = (uint64_t)((next_ping - now) * 1000) + 1;
		}
		int sig = next_signal(set, wait);
		if (sig == SIGHUP)
			reload(config_path, smtp);
		else if (sig == SIGTERM || sig == SIGINT)
			return sig;
	}
}

static int run(const struct config *cfg, const char *config_path)
{
	sigset_t stop;
	char err[600];

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_set_level((enum log_level)cfg->log_level);
	log_set_format((enum log_format)cfg->log_format);
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
	struct http_server *metrics = NULL;
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
	metrics_started();
	/* A listener of its own, so /metrics is never exposed with the API by accident. */
	if (cfg->metrics_listen[0]) {
		metrics = http_start(cfg->metrics_listen, 1, "", metrics_handle, store, err,
				     sizeof(err));
		if (!metrics) {
			log_error("metrics: %s", err);
			goto out;
		}
		log_info("metrics on %s (port %d)", cfg->metrics_listen, http_port(metrics));
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

	/* Every listener is bound and the store open: only now may systemd call us started. */
	sysd_ready();
	int sig = wait_for_stop(&stop, config_path, smtp, &ctx);
	sysd_stopping();
	log_info("received %s: finishing in-flight requests",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	status = 0;
out:
	/* In order: no new scrapes, requests or SMTP sessions, then every accepted message
	 * committed, then reports stop after the one in hand, delivery after the message in hand,
	 * webhooks after the POST in hand, then the counters are written; the purge stops after
	 * its batch in hand, before the store closes. */
	http_stop(metrics);
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

int serve_run(const struct config *cfg, const char *config_path)
{
	int status = run(cfg, config_path);
	log_unbuffered();
	return status;
}
