/* The configuration file and the command-line flags on arbitrary bytes: config_load never
 * crashes, a refusal is one non-empty line, and whatever it accepts is within the bounds the
 * rest of the daemon relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "fuzz.h"

#define ERR_LEN 512

static void check_string(const char *field, size_t size, const char *what)
{
	FUZZ_CHECK(memchr(field, '\0', size) != NULL, "%s is not NUL-terminated", what);
}

#define CHECK_STRING(cfg, f) check_string((cfg)->f, sizeof((cfg)->f), #f)

/* What every accepted configuration must satisfy, defaults included. */
static void check_config(const struct config *cfg)
{
	CHECK_STRING(cfg, listen);
	CHECK_STRING(cfg, public_url);
	CHECK_STRING(cfg, web_root);
	CHECK_STRING(cfg, store_path);
	CHECK_STRING(cfg, store_postgres);
	CHECK_STRING(cfg, relay_url);
	CHECK_STRING(cfg, relay_username);
	CHECK_STRING(cfg, relay_password);
	CHECK_STRING(cfg, dns_servers);
	CHECK_STRING(cfg, spf_include);
	CHECK_STRING(cfg, dkim_master_key_file);
	CHECK_STRING(cfg, system_from);
	FUZZ_CHECK(cfg->threads >= 1 && cfg->threads <= 1024, "threads = %d", cfg->threads);
	FUZZ_CHECK(cfg->relay_connections >= 1 && cfg->relay_connections <= 1024,
		   "connections = %d", cfg->relay_connections);
	const int durations[] = {cfg->relay_retry_base,	  cfg->relay_retry_max,
				 cfg->relay_give_up,	  cfg->dns_timeout,
				 cfg->dns_grace,	  cfg->dns_check_pending,
				 cfg->dns_check_verified, cfg->verify_ttl};
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++)
		FUZZ_CHECK(durations[i] >= 1 && durations[i] <= 366 * 86400, "duration %zu = %d", i,
			   durations[i]);
	char norm[ADDR_MAX];
	const char *why;
	FUZZ_CHECK(addr_normalize(cfg->system_from, norm, &why) == 0 &&
			   strcmp(norm, cfg->system_from) == 0,
		   "system_from '%s' is not a normalized address", cfg->system_from);
}

static void check_error(int rc, const char *err, const char *what)
{
	if (rc < 0)
		FUZZ_CHECK(err[0] != '\0' && strlen(err) < ERR_LEN, "%s failed with an empty error",
			   what);
}

static void load_file(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/postern-fuzz-config-XXXXXX";
	int fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0, "mkstemp failed");
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		FUZZ_CHECK(n > 0, "cannot write %s", path);
		done += (size_t)n;
	}
	close(fd);

	struct config cfg;
	char *err = calloc(1, ERR_LEN);
	config_defaults(&cfg);
	int rc = config_load(&cfg, path, err, ERR_LEN);
	unlink(path);
	FUZZ_CHECK(rc == 0 || rc == -1, "config_load returned %d", rc);
	check_error(rc, err, "config_load");
	if (rc == 0) {
		config_finish(&cfg);
		check_config(&cfg);
	}
	free(err);
}

static void apply_flags(const char *value)
{
	static const char *const flags[] = {"--listen", "--public-url", "--db",
					    "--relay",	"--dns",	"--threads"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct config cfg;
		char *err = calloc(1, ERR_LEN);
		config_defaults(&cfg);
		int rc = config_flag(&cfg, flags[i], value, err, ERR_LEN);
		FUZZ_CHECK(rc >= -1 && rc <= 1, "config_flag(%s) returned %d", flags[i], rc);
		check_error(rc, err, flags[i]);
		if (rc >= 0) {
			config_finish(&cfg);
			check_config(&cfg);
		}
		free(err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	load_file(data, size);
	char *value = fuzz_cstring(data, size);
	apply_flags(value);
	free(value);
	return 0;
}
