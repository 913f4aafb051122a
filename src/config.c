/* The configuration table: one row per key with its section, type, place in struct
 * config and command-line flag. The file and the flags go through the same setter, so a
 * value is validated the same way wherever it comes from. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "addr.h"
#include "log.h"
#include "net.h"
#include "send.h"
#include "util.h"

/* A number macro's value as a string literal, for messages that name a bound. */
#define NUMBER_TEXT_(n) #n
#define NUMBER_TEXT(n)	NUMBER_TEXT_(n)

enum cfg_type {
	CFG_STRING,
	CFG_BOOL,
	CFG_INT,
	CFG_DURATION,
	CFG_LISTEN,
	CFG_URL,
	CFG_RELAY,
	CFG_DNS,
	CFG_EMAIL,
	CFG_LIMIT,
	CFG_RECIPIENTS,
	CFG_DOMAIN,
	CFG_APPROVAL,
	CFG_LOG_LEVEL,
	CFG_LOG_FORMAT
};

struct cfg_key {
	const char *section;
	const char *name;
	enum cfg_type type;
	size_t offset;
	size_t size;
	const char *flag; /* the `postern serve` flag that overrides it, if any */
};

#define KEY(sec, nm, ty, field, fl)                                                                \
	{                                                                                          \
		sec, nm, ty, offsetof(struct config, field), sizeof(((struct config *)0)->field),  \
			fl                                                                         \
	}

static const struct cfg_key cfg_keys[] = {
	KEY("server", "listen", CFG_LISTEN, listen, "--listen"),
	KEY("server", "public_url", CFG_URL, public_url, "--public-url"),
	KEY("server", "threads", CFG_INT, threads, NULL),
	KEY("server", "web_root", CFG_STRING, web_root, NULL),
	KEY("server", "trusted_proxies", CFG_STRING, trusted_proxies, NULL),
	KEY("store", "path", CFG_STRING, store_path, "--db"),
	KEY("store", "postgres", CFG_STRING, store_postgres, "--postgres"),
	KEY("relay", "url", CFG_RELAY, relay_url, "--relay"),
	KEY("relay", "username", CFG_STRING, relay_username, NULL),
	KEY("relay", "password", CFG_STRING, relay_password, NULL),
	KEY("relay", "starttls", CFG_BOOL, relay_starttls, NULL),
	KEY("relay", "plaintext_auth", CFG_BOOL, relay_plaintext_auth, NULL),
	KEY("relay", "connections", CFG_INT, relay_connections, NULL),
	KEY("relay", "paused", CFG_BOOL, relay_paused, NULL),
	KEY("relay", "retry_base", CFG_DURATION, relay_retry_base, NULL),
	KEY("relay", "retry_max", CFG_DURATION, relay_retry_max, NULL),
	KEY("relay", "give_up", CFG_DURATION, relay_give_up, NULL),
	KEY("dns", "servers", CFG_DNS, dns_servers, "--dns"),
	KEY("dns", "timeout", CFG_DURATION, dns_timeout, NULL),
	KEY("dns", "grace", CFG_DURATION, dns_grace, NULL),
	KEY("dns", "check_pending", CFG_DURATION, dns_check_pending, NULL),
	KEY("dns", "check_verified", CFG_DURATION, dns_check_verified, NULL),
	KEY("dns", "spf_include", CFG_STRING, spf_include, NULL),
	KEY("domains", "approval", CFG_APPROVAL, domains_manual_approval, NULL),
	KEY("dkim", "master_key_file", CFG_STRING, dkim_master_key_file, NULL),
	KEY("mail", "system_from", CFG_EMAIL, system_from, NULL),
	KEY("mail", "verify_ttl", CFG_DURATION, verify_ttl, NULL),
	KEY("smtp", "listen", CFG_LISTEN, smtp_listen, "--smtp"),
	KEY("smtp", "tls_listen", CFG_LISTEN, smtp_tls_listen, NULL),
	KEY("smtp", "tls_cert", CFG_STRING, smtp_tls_cert, NULL),
	KEY("smtp", "tls_key", CFG_STRING, smtp_tls_key, NULL),
	KEY("smtp", "hostname", CFG_STRING, smtp_hostname, NULL),
	KEY("smtp", "max_size", CFG_LIMIT, smtp_max_size, NULL),
	KEY("smtp", "max_recipients", CFG_RECIPIENTS, smtp_max_recipients, NULL),
	KEY("smtp", "max_connections", CFG_LIMIT, smtp_max_connections, NULL),
	KEY("smtp", "auth_without_tls", CFG_BOOL, smtp_auth_without_tls, NULL),
	KEY("webhooks", "allow_private", CFG_BOOL, webhooks_allow_private, NULL),
	KEY("webhooks", "workers", CFG_INT, webhooks_workers, NULL),
	KEY("bounces", "domain", CFG_DOMAIN, bounces_domain, NULL),
	KEY("bounces", "listen", CFG_LISTEN, bounces_listen, NULL),
	KEY("bounces", "max_size", CFG_LIMIT, bounces_max_size, NULL),
	KEY("bounces", "rate", CFG_LIMIT, bounces_rate, NULL),
	KEY("bounces", "max_connections", CFG_LIMIT, bounces_max_connections, NULL),
	KEY("metrics", "listen", CFG_LISTEN, metrics_listen, NULL),
	KEY("retention", "messages", CFG_DURATION, retention_messages, NULL),
	KEY("retention", "bodies", CFG_DURATION, retention_bodies, NULL),
	KEY("retention", "drops", CFG_DURATION, retention_drops, NULL),
	KEY("log", "format", CFG_LOG_FORMAT, log_format, NULL),
	KEY("log", "level", CFG_LOG_LEVEL, log_level, NULL),
};

/* The panel's files unless [server] web_root says otherwise: those installed with the
 * running binary (POSTERN_WEB_FROM_BIN from its directory, so a package or make install
 * needs no configuration), else the web/ directory of the source tree it was built from,
 * so a build-tree binary serves the panel being worked on. */
static void default_web_root(char *out, size_t n)
{
	char exe[1024], dir[1100], found[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash = len > 0 ? memrchr(exe, '/', (size_t)len) : NULL;
	if (slash) {
		snprintf(dir, sizeof(dir), "%.*s/%s", (int)(slash - exe), exe,
			 POSTERN_WEB_FROM_BIN);
		if (realpath(dir, found) && strlen(found) < n) {
			snprintf(dir, sizeof(dir), "%s/index.html", found);
			if (access(dir, R_OK) == 0) {
				snprintf(out, n, "%s", found);
				return;
			}
		}
	}
	snprintf(out, n, "%s", POSTERN_WEB_ROOT);
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->listen, "127.0.0.1:8025");
	strcpy(cfg->store_path, "var/postern.db");
	strcpy(cfg->relay_url, "outbox:var/outbox");
	strcpy(cfg->system_from, "postern@localhost.localdomain");
	cfg->threads = 32;
	default_web_root(cfg->web_root, sizeof(cfg->web_root));
	cfg->relay_connections = 4;
	cfg->relay_retry_base = 60;
	cfg->relay_retry_max = 3600;
	cfg->relay_give_up = 24 * 3600;
	cfg->verify_ttl = 48 * 3600;
	cfg->dns_timeout = 5;
	cfg->dns_grace = 24 * 3600;
	cfg->dns_check_pending = 5 * 60;
	cfg->dns_check_verified = 24 * 3600;
	cfg->smtp_max_size = 25 * 1024 * 1024;
	cfg->smtp_max_recipients = 1000;
	cfg->smtp_max_connections = 1000;
	cfg->webhooks_workers = 2;
	cfg->bounces_max_size = 1024 * 1024;
	cfg->bounces_rate = 60;
	cfg->bounces_max_connections = 100;
	cfg->retention_messages = 30 * 86400;
	cfg->retention_bodies = 7 * 86400;
	cfg->retention_drops = 90 * 86400;
	cfg->log_format = LOG_TEXT;
	cfg->log_level = LOG_INFO;
}

static bool parse_port(const char *s, long *port)
{
	char *end;
	errno = 0;
	*port = strtol(s, &end, 10);
	return errno == 0 && *s && *end == '\0' && *port > 0 && *port <= 65535;
}

/* host:port, where host is a name, an IPv4 address or a bracketed IPv6 address. */
static bool valid_listen(const char *v)
{
	const char *colon = strrchr(v, ':');
	long port;
	if (!colon || colon == v || !parse_port(colon + 1, &port))
		return false;
	for (const char *p = v; p < colon; p++)
		if (*p == ' ' || *p == '/')
			return false;
	return true;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool valid_url(const char *v)
{
	const char *rest = has_prefix(v, "https://")  ? v + 8
			   : has_prefix(v, "http://") ? v + 7
						      : NULL;
	return rest && *rest && *rest != '/' && !strpbrk(v, " \t\"<>");
}

static bool valid_relay(const char *v)
{
	if (has_prefix(v, "outbox:"))
		return v[7] != '\0';
	const char *rest = has_prefix(v, "smtps://")  ? v + 8
			   : has_prefix(v, "smtp://") ? v + 7
						      : NULL;
	if (!rest || !*rest)
		return false;
	char hostport[300];
	size_t n = strcspn(rest, "/");
	/* Credentials go in [relay] username and password, never in a URL that gets logged. */
	if (memchr(rest, '@', n))
		return false;
	if (n >= sizeof(hostport))
		return false;
	memcpy(hostport, rest, n);
	hostport[n] = '\0';
	return strchr(hostport, ':') ? valid_listen(hostport) : n > 0;
}

static bool is_ip(const char *host, int family)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(family, host, buf) == 1;
}

/* One resolver: IPv4[:PORT], IPv6, or [IPv6]:PORT. */
static bool valid_resolver(char *item)
{
	long port;
	if (item[0] == '[') {
		char *close = strchr(item, ']');
		if (!close || (close[1] && (close[1] != ':' || !parse_port(close + 2, &port))))
			return false;
		*close = '\0';
		return is_ip(item + 1, AF_INET6);
	}
	char *colon = strchr(item, ':');
	if (colon && strchr(colon + 1, ':'))
		return is_ip(item, AF_INET6);
	if (colon) {
		if (!parse_port(colon + 1, &port))
			return false;
		*colon = '\0';
	}
	return is_ip(item, AF_INET);
}

/* A comma-separated list of resolvers; spaces around the commas are allowed. */
static bool valid_dns(const char *v)
{
	char buf[256];
	if (util_copy(buf, sizeof(buf), v) < 0)
		return false;
	for (char *item = buf, *next; item; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		item += strspn(item, " \t");
		item[strcspn(item, " \t")] = '\0';
		if (!*item || !valid_resolver(item))
			return false;
	}
	return true;
}

static int set_bool(bool *dst, const char *v)
{
	static const char *const yes[] = {"1", "yes", "true", "on"};
	static const char *const no[] = {"0", "no", "false", "off"};
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *dst = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *dst = false, 0;
	}
	return -1;
}

/* A whole number from 1 to max. */
static int set_whole(int *dst, const char *v, long max)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || !*v || *end || n < 1 || n > max)
		return -1;
	*dst = (int)n;
	return 0;
}

/* "90", "90s", "15m", "48h" or "7d", from one second to a year. */
static int set_duration(int *dst, const char *v)
{
	static const struct {
		char unit;
		long seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	long scale = 1;
	if (errno || end == v || n < 1)
		return -1;
	if (*end) {
		size_t i = 0;
		while (i < ARRAY_LEN(units) && units[i].unit != *end)
			i++;
		if (i == ARRAY_LEN(units) || end[1])
			return -1;
		scale = units[i].seconds;
	}
	if (n > 366L * 86400 / scale)
		return -1;
	*dst = (int)(n * scale);
	return 0;
}

/* [domains] approval: "manual" holds domains whose records check out for the operator. */
static int set_approval(bool *dst, const char *v)
{
	if (strcasecmp(v, "auto") != 0 && strcasecmp(v, "manual") != 0)
		return -1;
	*dst = strcasecmp(v, "manual") == 0;
	return 0;
}

/* One of names (compared without case): its index into dst. */
static int set_choice(int *dst, const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v, names[i]) == 0)
			return *dst = (int)i, 0;
	return -1;
}

/* Validates and stores one value. Returns NULL, or what was expected. */
static const char *cfg_set(struct config *cfg, const struct cfg_key *k, const char *v)
{
	char *field = (char *)cfg + k->offset;
	char norm[ADDR_MAX];
	const char *why;

	switch (k->type) {
	case CFG_BOOL:
		return set_bool((bool *)field, v) < 0 ? "yes or no" : NULL;
	case CFG_INT:
		return set_whole((int *)field, v, 1024) < 0 ? "a whole number from 1 to 1024"
							    : NULL;
	case CFG_LIMIT:
		/* Sizes and counts that may well pass 1024. */
		return set_whole((int *)field, v, 1L << 30) < 0
			       ? "a whole number from 1 to 1073741824"
			       : NULL;
	case CFG_RECIPIENTS:
		/* Delivery relays at most this many per message (send.h): more would be
		 * accepted and silently never sent. */
		return set_whole((int *)field, v, SEND_MAX_RECIPIENTS) < 0
			       ? "a whole number from 1 to " NUMBER_TEXT(SEND_MAX_RECIPIENTS)
			       : NULL;
	case CFG_DURATION:
		return set_duration((int *)field, v) < 0 ? "a duration like 90s, 15m, 48h or 7d"
							 : NULL;
	case CFG_LISTEN:
		if (!valid_listen(v))
			return "HOST:PORT, like 127.0.0.1:8025";
		break;
	case CFG_URL:
		if (!valid_url(v))
			return "an http:// or https:// URL";
		break;
	case CFG_RELAY:
		if (!valid_relay(v))
			return "smtp://HOST:PORT, smtps://HOST:PORT or outbox:DIR";
		break;
	case CFG_DNS:
		if (!valid_dns(v))
			return "IP[:PORT] separated by commas, like 127.0.0.1:5353";
		break;
	case CFG_EMAIL:
		if (addr_normalize(v, norm, &why) < 0)
			return "an email address, like postern@example.com";
		v = norm;
		break;
	case CFG_DOMAIN:
		if (addr_domain_normalize(v, norm, &why) < 0)
			return "a domain name, like bounces.example.net";
		v = norm;
		break;
	case CFG_APPROVAL:
		return set_approval((bool *)field, v) < 0 ? "auto or manual" : NULL;
	case CFG_LOG_LEVEL:
		return set_choice((int *)field, v, log_level_names, LOG_LEVEL_COUNT) < 0
			       ? "debug, info, warn or error"
			       : NULL;
	case CFG_LOG_FORMAT:
		return set_choice((int *)field, v, log_format_names, LOG_FORMAT_COUNT) < 0
			       ? "text or json"
			       : NULL;
	case CFG_STRING:
		break;
	}
	if (util_copy(field, k->size, v) < 0)
		return "a shorter value";
	return NULL;
}

/* Debian's inih reads lines of at most INI_LINE_MAX - 1 characters and does not pass line
 * numbers to the handler, so lines come through this reader, which counts them and stops
 * at a line that would be split. */
#define INI_LINE_MAX 200

struct load_state {
	struct config *cfg;
	FILE *f;
	int line;      /* the line last read */
	int fail_line; /* the line of the first bad key or value, or 0 */
	bool too_long;
	char what[512];
};

static char *read_line(char *str, int num, void *stream)
{
	struct load_state *st = stream;
	if (st->too_long || !fgets(str, num, st->f))
		return NULL;
	st->line++;
	size_t n = strlen(str);
	if ((int)n == num - 1 && str[n - 1] != '\n' && !feof(st->f)) {
		st->too_long = true;
		return NULL;
	}
	return str;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	if (st->fail_line)
		return 1; /* report only the first problem */
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0)
			continue;
		const char *expected = cfg_set(st->cfg, k, value);
		if (!expected)
			return 1;
		snprintf(st->what, sizeof(st->what), "[%s] %s: malformed value '%s' (expected %s)",
			 section, name, value, expected);
		st->fail_line = st->line;
		return 0;
	}
	snprintf(st->what, sizeof(st->what), "[%s] %s: unknown key", section, name);
	st->fail_line = st->line;
	return 0;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_state st = {.cfg = cfg};
	struct stat sb;

	st.f = fopen(path, "r");
	if (!st.f) {
		snprintf(err, errlen, "%s: cannot read configuration: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(st.f), &sb) < 0 || !S_ISREG(sb.st_mode)) {
		fclose(st.f);
		snprintf(err, errlen, "%s: cannot read configuration: not a regular file", path);
		return -1;
	}
	int rc = ini_parse_stream(read_line, &st, on_ini, &st);
	fclose(st.f);
	/* inih reports the first failing line, a syntax error or a key refused above. */
	if (st.too_long && (rc <= 0 || rc > st.line))
		snprintf(err, errlen, "%s:%d: line is longer than %d characters", path, st.line,
			 INI_LINE_MAX - 1);
	else if (rc > 0 && rc == st.fail_line)
		snprintf(err, errlen, "%s:%d: %s", path, rc, st.what);
	else if (rc > 0)
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 path, rc);
	else if (rc < 0)
		snprintf(err, errlen, "%s: cannot parse configuration", path);
	else
		return 0;
	return -1;
}

int config_flag(struct config *cfg, const char *flag, const char *value, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (!k->flag || strcmp(k->flag, flag) != 0)
			continue;
		const char *expected = cfg_set(cfg, k, value);
		if (expected) {
			snprintf(err, errlen, "%s: malformed value '%s' (expected %s)", flag, value,
				 expected);
			return -1;
		}
		return 1;
	}
	return 0;
}

void config_finish(struct config *cfg)
{
	if (!cfg->public_url[0])
		snprintf(cfg->public_url, sizeof(cfg->public_url), "http://%s", cfg->listen);
	if (!cfg->dkim_master_key_file[0] && !cfg->store_postgres[0])
		config_default_master_key(cfg->store_path, cfg->dkim_master_key_file,
					  sizeof(cfg->dkim_master_key_file));
	if (!cfg->smtp_hostname[0] &&
	    gethostname(cfg->smtp_hostname, sizeof(cfg->smtp_hostname) - 1) < 0)
		strcpy(cfg->smtp_hostname, "localhost");
}

/* The host of an smtp:// or smtps:// URL, without brackets or port; "" for an outbox. */
static void relay_host(const char *url, char *out, size_t n)
{
	const char *rest = strstr(url, "://");
	out[0] = '\0';
	if (!rest || has_prefix(url, "outbox:"))
		return;
	rest += 3;
	size_t len = rest[0] == '[' ? strcspn(++rest, "]") : strcspn(rest, ":/");
	snprintf(out, n, "%.*s", (int)len, rest);
}

int config_check(const struct config *cfg, char *err, size_t errlen)
{
	char host[300], bad[64];
	struct net_list proxies;
	if (net_parse_list(cfg->trusted_proxies, &proxies, bad, sizeof(bad)) < 0) {
		snprintf(err, errlen,
			 "[server] trusted_proxies: '%s' is not an IP address or network "
			 "(like 127.0.0.1 or 10.0.0.0/8); at most %d of them",
			 bad, NET_MAX);
		return -1;
	}
	relay_host(cfg->relay_url, host, sizeof(host));
	/* A password in clear is only tolerable where it never leaves the machine. */
	if (cfg->relay_plaintext_auth && !net_loopback(host)) {
		snprintf(err, errlen,
			 "[relay] plaintext_auth = yes is allowed only for an SMTP relay on "
			 "loopback (127.0.0.0/8, ::1, localhost), not %s",
			 host[0] ? host : cfg->relay_url);
		return -1;
	}
	/* A key of its own under each node's working directory would seal keys the other
	 * nodes cannot open. */
	if (cfg->store_postgres[0] && !cfg->dkim_master_key_file[0]) {
		snprintf(err, errlen,
			 "[dkim] master_key_file is required with PostgreSQL: give every node the "
			 "same DKIM master key file");
		return -1;
	}
	/* Implicit TLS has nothing to offer without them; STARTTLS is just not offered. */
	if (cfg->smtp_tls_listen[0] && (!cfg->smtp_tls_cert[0] || !cfg->smtp_tls_key[0])) {
		snprintf(err, errlen, "[smtp] tls_listen needs [smtp] tls_cert and tls_key");
		return -1;
	}
	if (!cfg->smtp_tls_cert[0] != !cfg->smtp_tls_key[0]) {
		snprintf(err, errlen, "[smtp] tls_cert and tls_key go together: set both");
		return -1;
	}
	/* The listener takes reports only for VERP addresses of the bounce domain. */
	if (cfg->bounces_listen[0] && !cfg->bounces_domain[0]) {
		snprintf(err, errlen,
			 "[bounces] listen needs [bounces] domain: the listener accepts reports "
			 "only for the bounce domain's return-path addresses");
		return -1;
	}
	return 0;
}

void config_default_master_key(const char *db, char *out, size_t n)
{
	/* Beside the database by default, so `make run` works out of the box; operators put
	 * it elsewhere (another disk, a secrets mount) with [dkim] master_key_file. */
	const char *slash = strrchr(db, '/');
	if (slash)
		snprintf(out, n, "%.*s/dkim-master.key", (int)(slash - db), db);
	else
		snprintf(out, n, "dkim-master.key");
}
