/* The configuration table: one row per key with its section, type, place in struct
 * config and command-line flag. The file and the flags go through the same setter, so a
 * value is validated the same way wherever it comes from. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "util.h"

enum cfg_type { CFG_STRING, CFG_BOOL, CFG_INT, CFG_LISTEN, CFG_URL, CFG_RELAY, CFG_DNS, CFG_EMAIL };

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
		    fl                                                                             \
	}

static const struct cfg_key cfg_keys[] = {
    KEY("server", "listen", CFG_LISTEN, listen, "--listen"),
    KEY("server", "public_url", CFG_URL, public_url, "--public-url"),
    KEY("server", "threads", CFG_INT, threads, NULL),
    KEY("store", "path", CFG_STRING, store_path, "--db"),
    KEY("store", "postgres", CFG_STRING, store_postgres, NULL),
    KEY("relay", "url", CFG_RELAY, relay_url, "--relay"),
    KEY("relay", "username", CFG_STRING, relay_username, NULL),
    KEY("relay", "password", CFG_STRING, relay_password, NULL),
    KEY("relay", "starttls", CFG_BOOL, relay_starttls, NULL),
    KEY("dns", "servers", CFG_DNS, dns_servers, "--dns"),
    KEY("mail", "system_from", CFG_EMAIL, system_from, NULL),
};

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->listen, "127.0.0.1:8025");
	strcpy(cfg->store_path, "var/postern.db");
	strcpy(cfg->relay_url, "outbox:var/outbox");
	strcpy(cfg->system_from, "postern@localhost.localdomain");
	cfg->threads = 4;
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
	if (n >= sizeof(hostport))
		return false;
	memcpy(hostport, rest, n);
	hostport[n] = '\0';
	return strchr(hostport, ':') ? valid_listen(hostport) : n > 0;
}

/* A comma-separated list of IPv4 or IPv6 addresses, each with an optional :port. */
static bool valid_dns(const char *v)
{
	char buf[256];
	if (!*v || util_copy(buf, sizeof(buf), v) < 0)
		return false;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (!*tok || strspn(tok, "0123456789abcdefABCDEF.:[]") != strlen(tok))
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

static int set_int(int *dst, const char *v)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || !*v || *end || n < 1 || n > 1024)
		return -1;
	*dst = (int)n;
	return 0;
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
		return set_int((int *)field, v) < 0 ? "a whole number from 1 to 1024" : NULL;
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
	case CFG_STRING:
		break;
	}
	if (util_copy(field, k->size, v) < 0)
		return "a shorter value";
	return NULL;
}

struct load_state {
	struct config *cfg;
	char *err;
	size_t errlen;
	int failed;
};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	if (st->failed)
		return 1; /* report only the first problem */
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0)
			continue;
		const char *expected = cfg_set(st->cfg, k, value);
		if (expected) {
			snprintf(st->err, st->errlen, "[%s] %s: malformed value '%s' (expected %s)",
				 section, name, value, expected);
			st->failed = 1;
			return 0;
		}
		return 1;
	}
	snprintf(st->err, st->errlen, "[%s] %s: unknown key", section, name);
	st->failed = 1;
	return 0;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char what[512] = "";
	struct load_state st = {cfg, what, sizeof(what), 0};

	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot read configuration: %s", path, strerror(errno));
		return -1;
	}
	int rc = ini_parse_file(f, on_ini, &st);
	fclose(f);
	if (rc == 0)
		return 0;
	if (rc > 0 && what[0])
		snprintf(err, errlen, "%s:%d: %s", path, rc, what);
	else if (rc > 0)
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 path, rc);
	else
		snprintf(err, errlen, "%s: cannot parse configuration", path);
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
	if (cfg->public_url[0])
		return;
	snprintf(cfg->public_url, sizeof(cfg->public_url), "http://%s", cfg->listen);
}
