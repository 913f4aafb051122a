/* Configuration: an INI file (parsed with inih) and command-line flags over it. Every key
 * is one row of the table in config.c. */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config {
	char listen[128];	   /* [server] listen: host:port */
	char public_url[256];	   /* [server] public_url: how users reach this gateway */
	int threads;		   /* [server] threads: HTTP worker threads */
	char web_root[1024];	   /* [server] web_root: the panel's files */
	char trusted_proxies[512]; /* [server] trusted_proxies: whose X-Forwarded-For counts */
	char store_path[1024];	   /* [store] path: SQLite database file */
	char store_postgres[1024]; /* [store] postgres: libpq conninfo; set, it wins over path */
	char relay_url[1024];	   /* [relay] url: smtp://, smtps:// or outbox:DIR */
	char relay_username[256];
	char relay_password[256];
	bool relay_starttls;
	bool relay_plaintext_auth; /* [relay] plaintext_auth: AUTH without TLS, loopback only */
	int relay_connections;	   /* [relay] connections: parallel relay connections */
	bool relay_paused;	   /* [relay] paused: accept and queue, deliver nothing */
	int relay_retry_base;	   /* [relay] retry_base: first retry delay, seconds */
	int relay_retry_max;	   /* [relay] retry_max: longest retry delay, seconds */
	int relay_give_up;	   /* [relay] give_up: a message still deferred after this fails */
	char dns_servers[256];	   /* [dns] servers: comma-separated ip[:port] */
	int dns_timeout;	   /* [dns] timeout: per lookup, seconds */
	int dns_grace;		   /* [dns] grace: records missing this long fail a domain */
	int dns_check_pending;	   /* [dns] check_pending: re-check pending and failed domains */
	int dns_check_verified;	   /* [dns] check_verified: re-check verified domains */
	char spf_include[256];	   /* [dns] spf_include: advised in SPF records, if set */
	/* [domains] approval = manual: a domain added over the API whose records check out
	 * waits for `postern domain approve` before mail from it is sent (auto: it does not) */
	bool domains_manual_approval;
	char dkim_master_key_file[1024]; /* [dkim] master_key_file: seals DKIM private keys */
	char system_from[256];		 /* [mail] system_from: sender of verification mail */
	int verify_ttl;	       /* [mail] verify_ttl: how long a Verify All link works, seconds */
	char smtp_listen[128]; /* [smtp] listen: SMTP submission with STARTTLS; "" off */
	char smtp_tls_listen[128];  /* [smtp] tls_listen: implicit TLS (as port 465); "" off */
	char smtp_tls_cert[1024];   /* [smtp] tls_cert: PEM certificate chain */
	char smtp_tls_key[1024];    /* [smtp] tls_key: PEM private key */
	char smtp_hostname[256];    /* [smtp] hostname: greeting and EHLO; default the host's */
	int smtp_max_size;	    /* [smtp] max_size: bytes of one message */
	int smtp_max_recipients;    /* [smtp] max_recipients: per message */
	int smtp_max_connections;   /* [smtp] max_connections: at once; more get 421 */
	bool smtp_auth_without_tls; /* [smtp] auth_without_tls: AUTH before STARTTLS */
	/* [webhooks] allow_private: endpoints on loopback, private and link-local addresses
	 * (for tests and make run; off in production, where such a URL is an SSRF) */
	bool webhooks_allow_private;
	int webhooks_workers; /* [webhooks] workers: threads posting events */
	/* [bounces] domain: the return-path domain (its MX points at the gateway); set, every
	 * message goes out from b-<message id>-<tag>@domain (VERP); "" leaves the envelope
	 * sender as it was (the From, or a submitted message's own). Lower case, A-label. */
	char bounces_domain[256];
	char bounces_listen[128]; /* [bounces] listen: the inbound listener for reports; "" off */
	int bounces_max_size;	  /* [bounces] max_size: bytes of one report (1 MiB) */
	int bounces_rate;	  /* [bounces] rate: reports a client address may send a minute */
	/* [bounces] max_connections: the inbound listener's at once, apart from [smtp]'s;
	 * more get 421 */
	int bounces_max_connections;
	char metrics_listen[128]; /* [metrics] listen: Prometheus /metrics, apart from the API; ""
				     off */
	int retention_messages;	  /* [retention] messages: message rows and their events, seconds */
	int retention_bodies;	  /* [retention] bodies: payloads of finished messages, seconds */
	int retention_drops;	  /* [retention] drops: drop and monitored counter rows, seconds */
	int log_format;		  /* [log] format: enum log_format (text or json) */
	int log_level;		  /* [log] level: enum log_level, the lowest level written */
};

/* Fills cfg with the defaults. */
void config_defaults(struct config *cfg);
/* Reads FILE over cfg. Returns 0, or -1 with one line naming file, line and key in err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
/* Applies a command-line flag ("--listen") to cfg. Returns 1 if the flag is a config flag
 * and was applied, 0 if it is not one, -1 with err when the value is malformed. */
int config_flag(struct config *cfg, const char *flag, const char *value, char *err, size_t errlen);
/* Fills what depends on other keys: public_url from listen, the DKIM master key path
 * from the database's directory (SQLite only: PostgreSQL nodes must name a shared one),
 * [smtp] hostname from the host's name. */
void config_finish(struct config *cfg);
/* Refuses combinations of keys, after config_finish: plaintext_auth with a relay that is
 * not on loopback, PostgreSQL without [dkim] master_key_file, [smtp] tls_listen without a
 * certificate and key. 0, or -1 with one line in
 * err naming the key. */
int config_check(const struct config *cfg, char *err, size_t errlen);
/* The master key file used when [dkim] master_key_file is not set, for database db. */
void config_default_master_key(const char *db, char *out, size_t n);

#endif
