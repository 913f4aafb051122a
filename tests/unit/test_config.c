/* Unit tests for config: the defaults, loading an INI file (and the one-line errors that
 * name file, line and key), command-line flags over it, and the derived public URL. */
#include "testutil.h"

#include "config.h"

/* Each test writes at most one configuration file at a time; teardown removes it even
 * when an assertion fails half-way. */
struct fixture {
	char path[TU_PATH_MAX];
};

static int setup_fixture(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	*state = fx;
	return 0;
}

static void remove_file(struct fixture *fx)
{
	if (fx->path[0])
		unlink(fx->path);
	fx->path[0] = '\0';
}

static int teardown_fixture(void **state)
{
	remove_file(*state);
	free(*state);
	return 0;
}

static const char *write_file(struct fixture *fx, const char *body)
{
	remove_file(fx);
	tu_temp_file(fx->path, body);
	return fx->path;
}

/* Loads body, expects failure and an error naming the file, the line and each needle. */
static void assert_load_fails(struct fixture *fx, const char *body, int line, const char *needle)
{
	struct config cfg;
	char err[1024] = "", at[32];

	config_defaults(&cfg);
	const char *path = write_file(fx, body);
	if (config_load(&cfg, path, err, sizeof(err)) != -1)
		fail_msg("this configuration was accepted:\n%s", body);
	tu_assert_contains(err, path);
	snprintf(at, sizeof(at), ":%d:", line);
	tu_assert_contains(err, at);
	tu_assert_contains(err, needle);
	remove_file(fx);
}

/* What a configuration holds, in the order of struct config. */
struct expected {
	const char *listen, *public_url;
	int threads;
	const char *store_path, *store_postgres, *relay_url, *relay_username, *relay_password;
	bool relay_starttls;
	const char *dns_servers, *system_from;
};

static const struct expected defaults = {"127.0.0.1:8025",
					 "",
					 32,
					 "var/postern.db",
					 "",
					 "outbox:var/outbox",
					 "",
					 "",
					 false,
					 "",
					 "postern@localhost.localdomain"};

static void assert_config(const struct config *cfg, const struct expected *e)
{
	assert_string_equal(cfg->listen, e->listen);
	assert_string_equal(cfg->public_url, e->public_url);
	assert_int_equal(cfg->threads, e->threads);
	assert_string_equal(cfg->store_path, e->store_path);
	assert_string_equal(cfg->store_postgres, e->store_postgres);
	assert_string_equal(cfg->relay_url, e->relay_url);
	assert_string_equal(cfg->relay_username, e->relay_username);
	assert_string_equal(cfg->relay_password, e->relay_password);
	assert_int_equal(cfg->relay_starttls, e->relay_starttls);
	assert_string_equal(cfg->dns_servers, e->dns_servers);
	assert_string_equal(cfg->system_from, e->system_from);
}

static void defaults_listen_locally_with_outbox_relay(void **state)
{
	(void)state;
	struct config cfg;
	memset(&cfg, 0x5a, sizeof(cfg));
	config_defaults(&cfg);
	assert_config(&cfg, &defaults);
}

static void load_sets_every_key_of_a_valid_file(void **state)
{
	struct config cfg;
	char err[1024] = "";
	const char *path = write_file(*state, "# Postern test configuration\n"
					      "[server]\n"
					      "listen = 0.0.0.0:9025\n"
					      "public_url = https://mail.example.com\n"
					      "threads = 8\n"
					      "\n"
					      "[store]\n"
					      "path = /tmp/postern-test.db\n"
					      "postgres = postgresql://db.example.com/postern\n"
					      "\n"
					      "; the relay\n"
					      "[relay]\n"
					      "url = smtp://smtp.example.com:587\n"
					      "username = relay-user\n"
					      "password = s3cret-Pass\n"
					      "starttls = yes\n"
					      "\n"
					      "[dns]\n"
					      "servers = 127.0.0.1:5353, [::1]:53\n"
					      "\n"
					      "[mail]\n"
					      "system_from = Postern@Example.COM\n");

	config_defaults(&cfg);
	if (config_load(&cfg, path, err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	/* The system sender is stored normalized, like every address Postern compares. */
	assert_config(&cfg, &(struct expected){
				    "0.0.0.0:9025", "https://mail.example.com", 8,
				    "/tmp/postern-test.db", "postgresql://db.example.com/postern",
				    "smtp://smtp.example.com:587", "relay-user", "s3cret-Pass",
				    true, "127.0.0.1:5353, [::1]:53", "postern@example.com"});
}

static void load_keeps_defaults_for_keys_not_in_file(void **state)
{
	struct config cfg;
	char err[1024] = "";
	const char *path = write_file(*state, "[server]\nthreads = 2\n");

	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	struct expected e = defaults;
	e.threads = 2;
	assert_config(&cfg, &e);
}

static void load_accepts_every_spelling_of_yes_and_no(void **state)
{
	static const struct {
		const char *value;
		bool expected;
	} cases[] = {
		{"yes", true}, {"YES", true}, {"true", true},	{"on", true},	{"1", true},
		{"no", false}, {"No", false}, {"false", false}, {"off", false}, {"0", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		char body[64], err[1024] = "";
		snprintf(body, sizeof(body), "[relay]\nstarttls = %s\n", cases[i].value);
		const char *path = write_file(*state, body);
		config_defaults(&cfg);
		cfg.relay_starttls = !cases[i].expected;
		if (config_load(&cfg, path, err, sizeof(err)) != 0)
			fail_msg("starttls = %s was rejected: %s", cases[i].value, err);
		assert_int_equal(cfg.relay_starttls, cases[i].expected);
		remove_file(*state);
	}
}

static void load_rejects_unknown_key_naming_file_line_and_key(void **state)
{
	assert_load_fails(*state,
			  "[server]\n"
			  "listen = 127.0.0.1:8025\n"
			  "threads = 2\n"
			  "colour = blue\n",
			  4, "colour");
}

static void load_rejects_unknown_section_naming_file_line_and_key(void **state)
{
	const char *body = "[server]\n"
			   "threads = 2\n"
			   "\n"
			   "[smtp]\n"
			   "host = mail.example.com\n";
	assert_load_fails(*state, body, 5, "host");
	assert_load_fails(*state, body, 5, "smtp");
}

static void load_rejects_key_outside_any_section(void **state)
{
	assert_load_fails(*state, "listen = 127.0.0.1:8025\n", 1, "listen");
}

static void load_rejects_malformed_values_naming_file_line_and_key(void **state)
{
	static const struct {
		const char *section, *key, *value;
	} cases[] = {
		{"server", "listen", "nope"},
		{"server", "listen", "127.0.0.1"},
		{"server", "listen", "127.0.0.1:0"},
		{"server", "listen", "127.0.0.1:65536"},
		{"server", "listen", ":8025"},
		{"server", "public_url", "ftp://x"},
		{"server", "public_url", "http://"},
		{"server", "threads", "0"},
		{"server", "threads", "1025"},
		{"server", "threads", "many"},
		{"relay", "url", "ftp://x"},
		{"relay", "url", "smtp://"},
		{"relay", "url", "outbox:"},
		{"relay", "url", "smtp://host:port"},
		{"relay", "url", "smtp://user:secret@host:25"},
		{"relay", "starttls", "maybe"},
		{"dns", "servers", "x.y"},
		{"dns", "servers", "127.0.0.1,ns.example.com"},
		{"dns", "servers", "dead.beef, cafe"},
		{"dns", "servers", "1.1.1.1,,8.8.8.8"},
		{"dns", "servers", "1.2.3.4:99999"},
		{"dns", "servers", "[::1]:x"},
		{"dns", "servers", "[nope]:53"},
		{"mail", "system_from", "not-an-address"},
		{"mail", "system_from", "postern@localhost"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[256];
		/* The bad value sits on line 3, after a comment and the section header. */
		snprintf(body, sizeof(body), "# comment\n[%s]\n%s = %s\n", cases[i].section,
			 cases[i].key, cases[i].value);
		assert_load_fails(*state, body, 3, cases[i].key);
	}
}

static void load_reports_first_bad_line_of_several(void **state)
{
	assert_load_fails(*state,
			  "[server]\n"
			  "threads = 2\n"
			  "listen = nope\n"
			  "colour = blue\n",
			  3, "listen");
}

static void load_rejects_missing_file_naming_path(void **state)
{
	struct fixture *fx = *state;
	struct config cfg;
	char err[1024] = "", path[64];

	/* A name that certainly does not exist: a fresh temporary file, removed. */
	strcpy(path, write_file(fx, ""));
	remove_file(fx);
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	tu_assert_contains(err, path);
	assert_string_equal(cfg.listen, "127.0.0.1:8025");
}

static void load_rejects_syntax_error_naming_line(void **state)
{
	assert_load_fails(*state,
			  "[server]\n"
			  "threads = 2\n"
			  "this line is not a key\n",
			  3, "syntax error");
	assert_load_fails(*state, "[server]\nthreads = 2\n[relay\n", 3, "syntax error");
}

/* A syntax error before a bad key is reported as the syntax error, on its own line. */
static void load_reports_syntax_error_before_later_bad_key(void **state)
{
	assert_load_fails(*state,
			  "[server]\n"
			  "this line is not a key\n"
			  "[relay]\n"
			  "colour = blue\n",
			  2, "syntax error");
	/* The same bug: an unclosed header, then a key that is unknown outside any section. */
	assert_load_fails(*state, "[server\nthreads = 2\n", 1, "syntax error");
}

/* inih (as packaged: INI_MAX_LINE 200, no realloc) would split a longer line; it is
 * refused with its line number instead of being cut and misreported. */
static void load_refuses_lines_over_199_characters_naming_the_line(void **state)
{
	char body[512], dir[301];
	memset(dir, 'd', 300);
	dir[0] = '/';
	dir[300] = '\0';
	snprintf(body, sizeof(body), "[store]\npath = %s\n[server]\nthreads = 2\n", dir);
	assert_load_fails(*state, body, 2, "longer than 199 characters");
}

/* fopen() succeeds on a directory; it must still be refused, not read as an empty file. */
static void load_rejects_directory_naming_path(void **state)
{
	(void)state;
	struct config cfg;
	char err[1024] = "";
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, "/tmp", err, sizeof(err)), -1);
	tu_assert_contains(err, "/tmp");
}

static void flag_listen_applies_and_returns_1(void **state)
{
	(void)state;
	struct config cfg;
	char err[256] = "";
	config_defaults(&cfg);
	assert_int_equal(config_flag(&cfg, "--listen", "0.0.0.0:9000", err, sizeof(err)), 1);
	assert_string_equal(cfg.listen, "0.0.0.0:9000");
	assert_int_equal(config_flag(&cfg, "--listen", "[::1]:9001", err, sizeof(err)), 1);
	assert_string_equal(cfg.listen, "[::1]:9001");
}

static void flags_apply_to_their_keys(void **state)
{
	(void)state;
	struct config cfg;
	char err[256] = "";
	config_defaults(&cfg);
	assert_int_equal(
		config_flag(&cfg, "--public-url", "https://p.example.com", err, sizeof(err)), 1);
	assert_string_equal(cfg.public_url, "https://p.example.com");
	assert_int_equal(config_flag(&cfg, "--db", "/tmp/x.db", err, sizeof(err)), 1);
	assert_string_equal(cfg.store_path, "/tmp/x.db");
	assert_int_equal(
		config_flag(&cfg, "--relay", "smtps://smtp.example.com:465", err, sizeof(err)), 1);
	assert_string_equal(cfg.relay_url, "smtps://smtp.example.com:465");
	assert_int_equal(config_flag(&cfg, "--dns", "10.0.0.53", err, sizeof(err)), 1);
	assert_string_equal(cfg.dns_servers, "10.0.0.53");
}

static void flag_malformed_value_returns_minus_1_with_message(void **state)
{
	(void)state;
	struct config cfg;
	char err[256] = "";
	config_defaults(&cfg);
	assert_int_equal(config_flag(&cfg, "--listen", "nope", err, sizeof(err)), -1);
	tu_assert_contains(err, "--listen");
	tu_assert_contains(err, "nope");
	assert_string_equal(cfg.listen, "127.0.0.1:8025");

	err[0] = '\0';
	assert_int_equal(config_flag(&cfg, "--relay", "ftp://x", err, sizeof(err)), -1);
	tu_assert_contains(err, "--relay");
	assert_string_equal(cfg.relay_url, "outbox:var/outbox");
}

static void flag_unknown_returns_0_and_changes_nothing(void **state)
{
	(void)state;
	struct config cfg, before;
	char err[256] = "";
	config_defaults(&cfg);
	memcpy(&before, &cfg, sizeof(cfg));
	assert_int_equal(config_flag(&cfg, "--verbose", "1", err, sizeof(err)), 0);
	/* Keys without a flag (threads, relay password) cannot be set from the command line. */
	assert_int_equal(config_flag(&cfg, "--threads", "8", err, sizeof(err)), 0);
	assert_int_equal(config_flag(&cfg, "listen", "0.0.0.0:1", err, sizeof(err)), 0);
	assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void finish_derives_public_url_from_listen(void **state)
{
	(void)state;
	struct config cfg;
	char err[256] = "";
	config_defaults(&cfg);
	config_finish(&cfg);
	assert_string_equal(cfg.public_url, "http://127.0.0.1:8025");

	config_defaults(&cfg);
	assert_int_equal(config_flag(&cfg, "--listen", "0.0.0.0:9000", err, sizeof(err)), 1);
	config_finish(&cfg);
	assert_string_equal(cfg.public_url, "http://0.0.0.0:9000");
}

static void finish_keeps_public_url_that_was_set(void **state)
{
	(void)state;
	struct config cfg;
	char err[256] = "";
	config_defaults(&cfg);
	assert_int_equal(
		config_flag(&cfg, "--public-url", "https://mail.example.com", err, sizeof(err)), 1);
	config_finish(&cfg);
	assert_string_equal(cfg.public_url, "https://mail.example.com");
}

static int check_relay(const char *url, bool plaintext_auth)
{
	struct config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	assert_int_equal(config_flag(&cfg, "--relay", url, err, sizeof(err)), 1);
	cfg.relay_plaintext_auth = plaintext_auth;
	config_finish(&cfg);
	int rc = config_check(&cfg, err, sizeof(err));
	if (rc < 0)
		assert_non_null(strstr(err, "[relay] plaintext_auth"));
	return rc;
}

static void check_allows_plaintext_auth_only_on_loopback(void **state)
{
	(void)state;
	assert_int_equal(check_relay("smtp://127.0.0.1:25", true), 0);
	assert_int_equal(check_relay("smtp://127.8.9.10:2525", true), 0);
	assert_int_equal(check_relay("smtp://localhost:25", true), 0);
	assert_int_equal(check_relay("smtp://[::1]:25", true), 0);
	assert_int_equal(check_relay("smtp://192.0.2.1:25", true), -1);
	assert_int_equal(check_relay("smtp://128.0.0.1:25", true), -1);
	assert_int_equal(check_relay("smtp://localhost.example.com:25", true), -1);
	assert_int_equal(check_relay("smtp://[::2]:25", true), -1);
	assert_int_equal(check_relay("outbox:var/outbox", true), -1);
	assert_int_equal(check_relay("smtp://192.0.2.1:25", false), 0);
}

static void check_wants_the_master_key_with_postgres(void **state)
{
	(void)state;
	struct config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	assert_int_equal(config_flag(&cfg, "--postgres", "dbname=postern", err, sizeof(err)), 1);
	config_finish(&cfg);
	assert_string_equal(cfg.dkim_master_key_file, "");
	assert_int_equal(config_check(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[dkim] master_key_file"));

	config_defaults(&cfg);
	config_finish(&cfg);
	assert_string_equal(cfg.dkim_master_key_file, "var/dkim-master.key");
	assert_int_equal(config_check(&cfg, err, sizeof(err)), 0);
}

static void smtp_keys_default_load_and_flag(void **state)
{
	struct fixture *fx = *state;
	struct config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	assert_string_equal(cfg.smtp_listen, "");
	assert_int_equal(cfg.smtp_max_size, 26214400);
	assert_int_equal(cfg.smtp_max_recipients, 1000);
	assert_int_equal(cfg.smtp_max_connections, 1000);
	assert_false(cfg.smtp_auth_without_tls);
	config_finish(&cfg);
	assert_true(cfg.smtp_hostname[0] != '\0'); /* the host's name */

	const char *path = write_file(fx, "[smtp]\nlisten = 127.0.0.1:2525\nmax_size = 52428800\n"
					  "max_connections = 5000\nauth_without_tls = yes\n"
					  "hostname = mx.example.com\n");
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.smtp_listen, "127.0.0.1:2525");
	assert_int_equal(cfg.smtp_max_size, 52428800);
	assert_int_equal(cfg.smtp_max_connections, 5000);
	assert_true(cfg.smtp_auth_without_tls);
	config_finish(&cfg);
	assert_string_equal(cfg.smtp_hostname, "mx.example.com");
	assert_int_equal(config_flag(&cfg, "--smtp", "[::1]:587", err, sizeof(err)), 1);
	assert_string_equal(cfg.smtp_listen, "[::1]:587");
	assert_int_equal(config_flag(&cfg, "--smtp", "587", err, sizeof(err)), -1);
	assert_load_fails(fx, "[smtp]\nmax_size = 0\n", 2, "[smtp] max_size");
	assert_load_fails(fx, "[smtp]\nmax_recipients = lots\n", 2, "[smtp] max_recipients");
}

/* Delivery relays at most SEND_MAX_RECIPIENTS per message: a larger limit would accept
 * recipients that are never sent to. */
static void smtp_max_recipients_is_at_most_what_delivery_sends(void **state)
{
	struct fixture *fx = *state;
	struct config cfg;
	char err[512] = "";
	const char *path = write_file(fx, "[smtp]\nmax_recipients = 1000\n");
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.smtp_max_recipients, 1000);
	remove_file(fx);
	assert_load_fails(fx, "[smtp]\nmax_recipients = 1001\n", 2, "[smtp] max_recipients");
	assert_load_fails(fx, "[smtp]\nmax_recipients = 1073741824\n", 2,
			  "a whole number from 1 to 1000");
}

/* The inbound listener's connections are capped apart from submission's. */
static void bounces_max_connections_default_and_load(void **state)
{
	struct fixture *fx = *state;
	struct config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	assert_int_equal(cfg.bounces_max_connections, 100);
	const char *path = write_file(fx, "[bounces]\nmax_connections = 7\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.bounces_max_connections, 7);
	assert_int_equal(cfg.smtp_max_connections, 1000);
	remove_file(fx);
	assert_load_fails(fx, "[bounces]\nmax_connections = 0\n", 2, "[bounces] max_connections");
}

/* [domains] approval: auto by default; manual holds domains for the operator; nothing
 * else is taken, so a typo cannot quietly leave approval off. */
static void domains_approval_default_load_and_refusal(void **state)
{
	struct fixture *fx = *state;
	struct config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	assert_false(cfg.domains_manual_approval);
	const char *path = write_file(fx, "[domains]\napproval = manual\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_true(cfg.domains_manual_approval);
	remove_file(fx);
	path = write_file(fx, "[domains]\napproval = Auto\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_false(cfg.domains_manual_approval);
	remove_file(fx);
	assert_load_fails(fx, "[domains]\napproval = yes\n", 2, "[domains] approval");
	remove_file(fx);
	assert_load_fails(fx, "[domains]\napproval = manually\n", 2, "auto or manual");
}

static void check_wants_certificate_for_implicit_tls(void **state)
{
	(void)state;
	struct config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	strcpy(cfg.smtp_tls_listen, "127.0.0.1:465");
	config_finish(&cfg);
	assert_int_equal(config_check(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[smtp] tls_listen"));
	strcpy(cfg.smtp_tls_cert, "cert.pem");
	assert_int_equal(config_check(&cfg, err, sizeof(err)), -1);
	strcpy(cfg.smtp_tls_key, "key.pem");
	assert_int_equal(config_check(&cfg, err, sizeof(err)), 0);
	cfg.smtp_tls_listen[0] = '\0';
	cfg.smtp_tls_key[0] = '\0';
	assert_int_equal(config_check(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[smtp] tls_cert and tls_key"));
}

#define FIXTURE_TEST(f) cmocka_unit_test_setup_teardown(f, setup_fixture, teardown_fixture)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_listen_locally_with_outbox_relay),
		FIXTURE_TEST(load_sets_every_key_of_a_valid_file),
		FIXTURE_TEST(smtp_max_recipients_is_at_most_what_delivery_sends),
		FIXTURE_TEST(bounces_max_connections_default_and_load),
		FIXTURE_TEST(domains_approval_default_load_and_refusal),
		FIXTURE_TEST(load_keeps_defaults_for_keys_not_in_file),
		FIXTURE_TEST(load_accepts_every_spelling_of_yes_and_no),
		FIXTURE_TEST(load_rejects_unknown_key_naming_file_line_and_key),
		FIXTURE_TEST(load_rejects_unknown_section_naming_file_line_and_key),
		FIXTURE_TEST(load_rejects_key_outside_any_section),
		FIXTURE_TEST(load_rejects_malformed_values_naming_file_line_and_key),
		FIXTURE_TEST(load_reports_first_bad_line_of_several),
		FIXTURE_TEST(load_rejects_missing_file_naming_path),
		FIXTURE_TEST(load_rejects_syntax_error_naming_line),
		FIXTURE_TEST(load_reports_syntax_error_before_later_bad_key),
		FIXTURE_TEST(load_refuses_lines_over_199_characters_naming_the_line),
		cmocka_unit_test(load_rejects_directory_naming_path),
		cmocka_unit_test(flag_listen_applies_and_returns_1),
		cmocka_unit_test(flags_apply_to_their_keys),
		cmocka_unit_test(flag_malformed_value_returns_minus_1_with_message),
		cmocka_unit_test(flag_unknown_returns_0_and_changes_nothing),
		cmocka_unit_test(finish_derives_public_url_from_listen),
		cmocka_unit_test(finish_keeps_public_url_that_was_set),
		cmocka_unit_test(check_allows_plaintext_auth_only_on_loopback),
		cmocka_unit_test(check_wants_the_master_key_with_postgres),
		FIXTURE_TEST(smtp_keys_default_load_and_flag),
		cmocka_unit_test(check_wants_certificate_for_implicit_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
