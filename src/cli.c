/* Subcommands of the postern binary: bootstrap (init, account add, user add, key create)
 * and serve. Options are tables; every subcommand answers --help from its table. */
#include "cli.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "addr.h"
#include "api.h"
#include "audit.h"
#include "auth.h"
#include "backup.h"
#include "config.h"
#include "domains.h"
#include "keys.h"
#include "log.h"
#include "role.h"
#include "serve.h"
#include "store.h"
#include "users.h"
#include "util.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, HELP_SHOWN = -1 };

/* An option ("--db PATH"), a flag without a value (arg NULL, value "1" when given), or a
 * positional argument (a name without dashes, like "DOMAIN"). */
struct cli_opt {
	const char *name; /* "--db" */
	const char *arg;  /* "PATH" */
	const char *help;
	bool required;
	const char *value;
};

struct cli_cmd {
	const char *words; /* "account add" */
	int (*fn)(struct cli_opt *opts);
	const char *summary;
	struct cli_opt opts[12];
};

static bool positional(const struct cli_opt *o)
{
	return strncmp(o->name, "--", 2) != 0;
}

static void usage(const struct cli_cmd *cmd, FILE *out)
{
	fprintf(out, "Usage: postern %s [options]", cmd->words);
	for (const struct cli_opt *o = cmd->opts; o->name; o++)
		if (positional(o))
			fprintf(out, " %s", o->name);
	fprintf(out, "\n%s.\n\nOptions:\n", cmd->summary);
	for (const struct cli_opt *o = cmd->opts; o->name; o++)
		if (!positional(o))
			fprintf(out, "  %s %-8s %s%s\n", o->name, o->arg ? o->arg : "", o->help,
				o->required ? " (required)" : "");
	fprintf(out, "  --help            show this help\n");
}

static const char *opt(struct cli_opt *opts, const char *name)
{
	for (; opts->name; opts++)
		if (strcmp(opts->name, name) == 0)
			return opts->value;
	return NULL;
}

/* Values that name files are the file system's bytes; every other value may be stored
 * (names, emails, domains) or shown, so it must be UTF-8, which PostgreSQL insists on. */
static const char *const file_args[] = {"PATH", "FILE"};

static int check_utf8(const struct cli_cmd *cmd)
{
	for (const struct cli_opt *o = cmd->opts; o->name; o++) {
		bool file = false;
		for (size_t i = 0; o->arg && i < ARRAY_LEN(file_args); i++)
			file = file || strcmp(o->arg, file_args[i]) == 0;
		if (o->value && !file && !util_utf8(o->value)) {
			fprintf(stderr, "postern %s: %s is not valid UTF-8\n", cmd->words, o->name);
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* Options of these kinds may be given several times; their value is every value given,
 * one a line. */
static const char *const repeated_args[] = {"CIDR", "ADDR", "DOMAIN", "SCOPE"};

static bool repeated(const struct cli_opt *o)
{
	for (size_t i = 0; o->arg && i < ARRAY_LEN(repeated_args); i++)
		if (strcmp(o->arg, repeated_args[i]) == 0)
			return true;
	return false;
}

/* Adds value to the repeated option o's values, one a line; NULL when they no longer fit.
 * Counted, not guessed from the text so far: an empty first value is still a line, for
 * the reader to name. */
static const char *join(const struct cli_opt *o, const char *value)
{
	static struct {
		const struct cli_opt *o;
		char values[4096];
		size_t count;
	} lists[8];
	size_t i = 0;
	while (i < ARRAY_LEN(lists) && lists[i].o && lists[i].o != o)
		i++;
	if (i == ARRAY_LEN(lists))
		return NULL;
	char *values = lists[i].values;
	if (!o->value) {
		lists[i].o = o;
		values[0] = '\0';
		lists[i].count = 0;
	}
	size_t had = strlen(values);
	if (had + strlen(value) + 2 > sizeof(lists[i].values))
		return NULL;
	snprintf(values + had, sizeof(lists[i].values) - had, "%s%s", lists[i].count++ ? "\n" : "",
		 value);
	return values;
}

/* Parses "--name value" and "--name=value". Returns 0, HELP_SHOWN or EXIT_USAGE. */
static int parse_opts(struct cli_cmd *cmd, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(cmd, stdout);
			return HELP_SHOWN;
		}
		struct cli_opt *o = cmd->opts;
		if (strncmp(argv[i], "--", 2) != 0) {
			while (o->name && (!positional(o) || o->value))
				o++;
			if (!o->name) {
				fprintf(stderr,
					"postern %s: unexpected argument '%s' (see --help)\n",
					cmd->words, argv[i]);
				return EXIT_USAGE;
			}
			o->value = argv[i];
			continue;
		}
		char name[64];
		const char *value = NULL;
		size_t n = strcspn(argv[i], "=");
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, argv[i], n);
		name[n] = '\0';
		if (argv[i][n] == '=')
			value = argv[i] + n + 1;
		while (o->name && strcmp(o->name, name) != 0)
			o++;
		if (!o->name) {
			fprintf(stderr, "postern %s: unknown option '%s' (see --help)\n",
				cmd->words, argv[i]);
			return EXIT_USAGE;
		}
		if (!o->arg && !value) {
			o->value = "1";
			continue;
		}
		if (!value && i + 1 < argc)
			value = argv[++i];
		if (!value) {
			fprintf(stderr, "postern %s: %s needs a value %s\n", cmd->words, name,
				o->arg);
			return EXIT_USAGE;
		}
		o->value = repeated(o) ? join(o, value) : value;
		if (!o->value) {
			fprintf(stderr, "postern %s: too many %s values\n", cmd->words, name);
			return EXIT_USAGE;
		}
	}
	for (const struct cli_opt *o = cmd->opts; o->name; o++) {
		if (o->required && !o->value) {
			fprintf(stderr, "postern %s: %s%s%s is required (see --help)\n", cmd->words,
				o->name, o->arg ? " " : "", o->arg ? o->arg : "");
			return EXIT_USAGE;
		}
	}
	return check_utf8(cmd);
}

/* The password comes from POSTERN_PASSWORD, or from a prompt on a terminal. */
static int read_password(const char *email, char *out, size_t n)
{
	const char *env = getenv("POSTERN_PASSWORD");
	if (env) {
		if (util_copy(out, n, env) < 0)
			return -1;
	} else if (isatty(STDIN_FILENO)) {
		struct termios old, quiet;
		fprintf(stderr, "Password for %s: ", email);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
		char *line = fgets(out, (int)n, stdin);
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
		fputc('\n', stderr);
		if (!line)
			return -1;
		out[strcspn(out, "\r\n")] = '\0';
	} else {
		fprintf(stderr,
			"postern: no password: set POSTERN_PASSWORD or run on a terminal\n");
		return -1;
	}
	if (!util_utf8(out)) {
		fprintf(stderr, "postern: the password is not valid UTF-8\n");
		return -1;
	}
	if (!auth_password_acceptable(out)) {
		fprintf(stderr, "postern: the password must be %d to %d characters\n",
			AUTH_PASSWORD_MIN, AUTH_PASSWORD_MAX);
		return -1;
	}
	return 0;
}

/* Where the store is: --postgres (or POSTERN_POSTGRES) names a PostgreSQL database shared
 * by several gateways, --db a SQLite file. */
struct target {
	const char *db;
	const char *postgres;
};

static int store_target(struct cli_opt *o, struct target *t)
{
	t->db = opt(o, "--db");
	t->postgres = opt(o, "--postgres");
	if (!t->postgres && getenv("POSTERN_POSTGRES") && *getenv("POSTERN_POSTGRES"))
		t->postgres = getenv("POSTERN_POSTGRES");
	if (t->db && t->postgres) {
		fprintf(stderr, "postern: give --db PATH or --postgres CONNINFO, not both\n");
		return EXIT_USAGE;
	}
	if (!t->db && !t->postgres) {
		fprintf(stderr, "postern: --db PATH or --postgres CONNINFO is required "
				"(see --help)\n");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static struct store *open_store(const struct target *t)
{
	char err[512];
	if (auth_init() < 0) {
		fprintf(stderr, "postern: cannot initialise libsodium\n");
		return NULL;
	}
	struct store *s = t->postgres ? store_pg_open(t->postgres, err, sizeof(err))
				      : store_sqlite_open(t->db, err, sizeof(err));
	if (!s)
		fprintf(stderr, "postern: %s\n", err);
	return s;
}

static bool valid_account_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= STORE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

/* A user about to be created: checked and hashed before anything is written, so a bad
 * email or password never leaves an account without its Admin. */
struct new_user {
	char email[ADDR_MAX];
	char hash[AUTH_PWHASH_LEN];
	enum role role;
};

static int prepare_user(struct new_user *u, const char *email, enum role role)
{
	char password[AUTH_PASSWORD_MAX + 2];
	const char *why;

	if (addr_normalize(email, u->email, &why) < 0) {
		fprintf(stderr, "postern: '%s' is not a valid email address: %s\n", email, why);
		return EXIT_USAGE;
	}
	if (read_password(u->email, password, sizeof(password)) < 0)
		return EXIT_USAGE;
	u->role = role;
	if (auth_password_hash(password, u->hash) < 0) {
		fprintf(stderr, "postern: cannot hash the password (out of memory?)\n");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int store_new_user(struct store *s, const struct store_account *acct,
			  const struct new_user *u)
{
	struct store_user made;
	int rc = users_create(s, &audit_cli, acct->id, u->email, u->hash, u->role, &made);
	/* Emails are unique per account: the same person may be a user of several. */
	if (rc == STORE_CONFLICT) {
		fprintf(stderr, "postern: a user with email %s already exists in account %s\n",
			u->email, acct->name);
		return EXIT_FAIL;
	}
	if (rc != STORE_OK) {
		fprintf(stderr, "postern: cannot store the user\n");
		return EXIT_FAIL;
	}
	printf("user %s (%s) added to account %s\n", u->email, role_name(u->role), acct->name);
	return EXIT_OK;
}

/* True, with a message, when init must not touch this database: it has accounts. */
static bool has_accounts(struct store *s)
{
	int64_t accounts = 0;
	int rc = store_account_count(s, &accounts);
	if (rc != STORE_OK)
		fprintf(stderr, "postern: cannot read the database\n");
	else if (accounts > 0)
		fprintf(stderr, "postern: this PostgreSQL database already has accounts; use "
				"'postern account add'\n");
	return rc != STORE_OK || accounts > 0;
}

/* Creates an account with its first Admin; init also wants a database without accounts.
 * Everything the user typed is checked before the database is opened (and migrated). */
static int create_account(const struct target *t, const char *name, const char *admin, bool init)
{
	struct store_account acct;
	struct new_user u;

	if (!valid_account_name(name)) {
		fprintf(stderr, "postern: the account name must be 1 to %d printable characters\n",
			STORE_NAME_MAX - 1);
		return EXIT_USAGE;
	}
	int code = prepare_user(&u, admin, ROLE_ADMIN);
	if (code != EXIT_OK)
		return code;
	struct store *s = open_store(t);
	if (!s)
		return EXIT_FAIL;
	code = EXIT_FAIL;
	if (init && has_accounts(s))
		goto out;
	int rc = store_account_create(s, name, util_now(), &acct.id);
	if (rc == STORE_CONFLICT)
		fprintf(stderr, "postern: account '%s' already exists\n", name);
	else if (rc != STORE_OK)
		fprintf(stderr, "postern: cannot store the account\n");
	if (rc == STORE_OK) {
		util_copy(acct.name, sizeof(acct.name), name);
		audit_write(s, &audit_cli, acct.id, "account.created", name, NULL);
		printf("account %s created\n", name);
		code = store_new_user(s, &acct, &u);
	}
out:
	store_close(s);
	return code;
}

/* A PostgreSQL database is made by its operator, so init creates the schema in it (the
 * same versioned migrations) and refuses only a database that already has accounts. */
static int cmd_init(struct cli_opt *o)
{
	struct target t;
	int code = store_target(o, &t);
	if (code != EXIT_OK)
		return code;
	if (t.db && access(t.db, F_OK) == 0) {
		fprintf(stderr,
			"postern: %s already exists; use 'postern account add' to add an "
			"account to it\n",
			t.db);
		return EXIT_FAIL;
	}
	return create_account(&t, opt(o, "--account"), opt(o, "--admin"), true);
}

/* The target, which must already hold Postern's data. */
static int need_existing(struct cli_opt *o, struct target *t)
{
	if (store_target(o, t) != EXIT_OK)
		return -1;
	if (t->postgres || access(t->db, F_OK) == 0)
		return 0;
	fprintf(stderr, "postern: %s does not exist; create it with 'postern init'\n", t->db);
	return -1;
}

static int cmd_account_add(struct cli_opt *o)
{
	struct target t;
	if (need_existing(o, &t) < 0)
		return EXIT_FAIL;
	return create_account(&t, opt(o, "--account"), opt(o, "--admin"), false);
}

/* Opens an existing database and finds the named account. */
static struct store *open_account(struct cli_opt *o, struct store_account *acct)
{
	struct target t;
	if (need_existing(o, &t) < 0)
		return NULL;
	struct store *s = open_store(&t);
	if (!s)
		return NULL;
	if (store_account_by_name(s, opt(o, "--account"), acct) != STORE_OK) {
		fprintf(stderr, "postern: no account named '%s'\n", opt(o, "--account"));
		store_close(s);
		return NULL;
	}
	return s;
}

static int cmd_user_add(struct cli_opt *o)
{
	struct store_account acct;
	struct new_user u;
	int role = role_parse(opt(o, "--role"));
	if (role < 0) {
		fprintf(stderr,
			"postern: --role must be admin, technical, analytics or marketing\n");
		return EXIT_USAGE;
	}
	struct store *s = open_account(o, &acct);
	if (!s)
		return EXIT_FAIL;
	int code = prepare_user(&u, opt(o, "--email"), (enum role)role);
	if (code == EXIT_OK)
		code = store_new_user(s, &acct, &u);
	store_close(s);
	return code;
}

/* Gives each value of a repeated option (one a line) to add; 0, or EXIT_USAGE naming the
 * bad one. */
static int read_values(struct keys_spec *sp, const char *option, const char *values,
		       const char *(*add)(struct keys_spec *, const char *))
{
	char buf[4096];
	util_copy(buf, sizeof(buf), values ? values : "");
	/* Split by hand, not with strtok: an empty value is a mistake to name, not skip. */
	for (char *w = buf; values && w;) {
		char *end = strchr(w, '\n');
		if (end)
			*end++ = '\0';
		const char *why = add(sp, w);
		if (why) {
			fprintf(stderr, "postern: %s '%s': %s\n", option, w, why);
			return EXIT_USAGE;
		}
		w = end;
	}
	return 0;
}

/* The options of key create, as the keys service takes them; the API's field names, for
 * its refusals. */
static const struct {
	const char *option, *field;
	const char *(*add)(struct keys_spec *, const char *);
} key_options[] = {
	{"--smtp-ip", "smtp_ips", keys_spec_smtp_ip},
	{"--sender", "senders", keys_spec_sender},
	{"--domain", "domains", keys_spec_domain},
	{"--allowed-ip", "allowed_ips", keys_spec_allowed_ip},
	{"--scope", "scopes", keys_spec_scope},
	{"--role", "role", keys_spec_role},
	{"--name", "name", keys_spec_name},
};

static int read_key_spec(struct cli_opt *o, struct keys_spec *sp)
{
	keys_spec_init(sp);
	for (size_t i = 0; i < ARRAY_LEN(key_options); i++) {
		const char *v = opt(o, key_options[i].option);
		if (v && read_values(sp, key_options[i].option, v, key_options[i].add) != 0)
			return EXIT_USAGE;
	}
	return 0;
}

static const char *key_option(const char *field)
{
	for (size_t i = 0; i < ARRAY_LEN(key_options); i++)
		if (strcmp(key_options[i].field, field) == 0)
			return key_options[i].option;
	return field;
}

static void key_created(const struct store_apikey *made, const struct store_account *acct)
{
	fprintf(stderr,
		"postern: API key '%s' created for account %s; store it now, it cannot be shown "
		"again\n",
		made->name, acct->name);
	if (*made->smtp_ips)
		fprintf(stderr, "postern: it may send over SMTP without AUTH from %s\n",
			made->smtp_ips);
}

static int cmd_key_create(struct cli_opt *o)
{
	struct store_account acct;
	struct store_apikey made;
	struct keys_spec sp;
	struct keys_refusal no;
	char key[AUTH_KEY_LEN];

	if (!valid_account_name(opt(o, "--name"))) {
		fprintf(stderr, "postern: --name must be 1 to %d printable characters\n",
			STORE_NAME_MAX - 1);
		return EXIT_USAGE;
	}
	if (read_key_spec(o, &sp) != 0)
		return EXIT_USAGE;
	struct store *s = open_account(o, &acct);
	if (!s)
		return EXIT_FAIL;
	enum err e = keys_create(s, &audit_cli, acct.id, &sp, &made, key, &no);
	store_close(s);
	if (e == ERR_INVALID_REQUEST) {
		fprintf(stderr, "postern: %s: %s\n", key_option(no.field), no.why);
		return EXIT_USAGE;
	}
	if (e != ERR_OK) {
		fprintf(stderr, "postern: cannot store the API key\n");
		return EXIT_FAIL;
	}
	/* The key itself is shown this once; only its hash is kept. */
	printf("%s\n", key);
	key_created(&made, &acct);
	return EXIT_OK;
}

/* Reads a flag pair like --verified/--pending: 1, 0, or -1 when neither was given. */
static int flag_pair(struct cli_opt *o, const char *yes, const char *no, const char *words)
{
	bool y = opt(o, yes) != NULL, n = opt(o, no) != NULL;
	if (y && n) {
		fprintf(stderr, "postern %s: give %s or %s, not both\n", words, yes, no);
		return -2;
	}
	return y ? 1 : n ? 0 : -1;
}

/* The DOMAIN argument, normalized; -1 with a message when it is not a domain. */
static int domain_arg(struct cli_opt *o, char name[ADDR_DOMAIN_MAX])
{
	const char *why;
	if (addr_domain_normalize(opt(o, "DOMAIN"), name, &why) == 0)
		return 0;
	fprintf(stderr, "postern: '%s' is not a valid domain: %s\n", opt(o, "DOMAIN"), why);
	return -1;
}

static int cmd_domain_add(struct cli_opt *o)
{
	struct store_account acct;
	char name[ADDR_DOMAIN_MAX];
	int64_t id;

	if (domain_arg(o, name) < 0)
		return EXIT_USAGE;
	struct store *s = open_account(o, &acct);
	if (!s)
		return EXIT_FAIL;
	const char *status = opt(o, "--verified") ? "verified" : "pending";
	bool active = !opt(o, "--inactive");
	unsigned char master[DKIMKEY_MASTER_LEN];
	char keyfile[1100], err[600];
	if (opt(o, "--master-key")) {
		util_copy(keyfile, sizeof(keyfile), opt(o, "--master-key"));
	} else if (opt(o, "--db")) {
		config_default_master_key(opt(o, "--db"), keyfile, sizeof(keyfile));
	} else {
		fprintf(stderr, "postern: with PostgreSQL, give --master-key FILE: the DKIM "
				"master key every node is configured with\n");
		store_close(s);
		return EXIT_USAGE;
	}
	if (dkimkey_master_load(keyfile, true, master, err, sizeof(err)) < 0 ||
	    dkimkey_master_verify(s, master, keyfile, err, sizeof(err)) < 0) {
		sodium_memzero(master, sizeof(master));
		fprintf(stderr, "postern: %s\n", err);
		store_close(s);
		return EXIT_FAIL;
	}
	/* The operator adds it: their word needs no approval of their own. */
	int rc = domains_create(s, master, &audit_cli, acct.id, name, status, active, "approved",
				&id);
	sodium_memzero(master, sizeof(master));
	if (rc == STORE_OK) {
		printf("domain %s added to account %s (%s, %s)\n", name, acct.name, status,
		       active ? "active" : "inactive");
	} else if (rc == STORE_CONFLICT) {
		fprintf(stderr, "postern: account %s already has domain %s\n", acct.name, name);
	} else {
		fprintf(stderr, "postern: cannot store the domain\n");
	}
	store_close(s);
	return rc == STORE_OK ? EXIT_OK : EXIT_FAIL;
}

static int cmd_domain_set(struct cli_opt *o)
{
	struct store_account acct;
	char name[ADDR_DOMAIN_MAX];
	int verified = flag_pair(o, "--verified", "--pending", "domain set");
	int active = flag_pair(o, "--active", "--inactive", "domain set");

	if (verified == -2 || active == -2)
		return EXIT_USAGE;
	if (verified < 0 && active < 0) {
		fprintf(stderr, "postern domain set: give --verified, --pending, --active or "
				"--inactive\n");
		return EXIT_USAGE;
	}
	if (domain_arg(o, name) < 0)
		return EXIT_USAGE;
	struct store *s = open_account(o, &acct);
	if (!s)
		return EXIT_FAIL;
	const char *status = verified < 0 ? NULL : verified ? "verified" : "pending";
	int rc = store_domain_set(s, acct.id, name, status, active);
	if (rc == STORE_OK) {
		const char *switched = active < 0 ? "" : active ? "active=yes" : "active=no";
		audit_write(s, &audit_cli, acct.id, "domain.updated", name, "%s%s%s%s",
			    status ? "status=" : "", status ? status : "",
			    status && *switched ? " " : "", switched);
		printf("domain %s updated\n", name);
	} else if (rc == STORE_NOT_FOUND) {
		fprintf(stderr, "postern: account %s has no domain %s\n", acct.name, name);
	} else {
		fprintf(stderr, "postern: cannot update the domain\n");
	}
	store_close(s);
	return rc == STORE_OK ? EXIT_OK : EXIT_FAIL;
}

/* postern domain approve|reject: the operator's decision on a domain ([domains] approval). */
static int domain_decide(struct cli_opt *o, bool approve)
{
	struct store_account acct;
	struct store_domain_was was = {0};
	char name[ADDR_DOMAIN_MAX];
	const char *done = approve ? "approved" : "rejected";

	if (domain_arg(o, name) < 0)
		return EXIT_USAGE;
	struct store *s = open_account(o, &acct);
	if (!s)
		return EXIT_FAIL;
	int rc = domains_approve(s, &audit_cli, acct.id, name, approve, &was);
	bool sends = strcmp(was.status, "verified") == 0;
	if (rc == STORE_OK && approve)
		printf("domain %s of account %s approved: mail from it %s\n", name, acct.name,
		       sends ? "may be sent" : "may be sent once its DNS records check out");
	else if (rc == STORE_OK)
		printf("domain %s of account %s rejected: mail from it is refused until "
		       "'postern domain approve'\n",
		       name, acct.name);
	else if (rc == STORE_NOT_FOUND)
		fprintf(stderr, "postern: account %s has no domain %s\n", acct.name, name);
	else if (rc == STORE_CONFLICT)
		fprintf(stderr, "postern: domain %s of account %s is already %s\n", name, acct.name,
			done);
	else
		fprintf(stderr, "postern: cannot update the domain\n");
	store_close(s);
	return rc == STORE_OK ? EXIT_OK : EXIT_FAIL;
}

static int cmd_domain_approve(struct cli_opt *o)
{
	return domain_decide(o, true);
}

static int cmd_domain_reject(struct cli_opt *o)
{
	return domain_decide(o, false);
}

static int cmd_routes(struct cli_opt *o)
{
	(void)o;
	api_routes_print(stdout);
	return EXIT_OK;
}

/* The defaults, then the file --config names (if any), then the environment, which sits
 * between the file and the flags. */
static int read_config(struct cli_opt *o, struct config *cfg)
{
	char err[600];
	config_defaults(cfg);
	if (opt(o, "--config") && config_load(cfg, opt(o, "--config"), err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return EXIT_FAIL;
	}
	const char *pg = getenv("POSTERN_POSTGRES");
	if (pg && *pg && config_flag(cfg, "--postgres", pg, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: POSTERN_POSTGRES: %s\n", err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int cmd_serve(struct cli_opt *o)
{
	struct config cfg;
	char err[600];

	int rc = read_config(o, &cfg);
	if (rc != EXIT_OK)
		return rc;
	for (struct cli_opt *f = o; f->name; f++) {
		if (!f->value || strcmp(f->name, "--config") == 0)
			continue;
		if (config_flag(&cfg, f->name, f->value, err, sizeof(err)) < 0) {
			fprintf(stderr, "postern serve: %s\n", err);
			return EXIT_USAGE;
		}
	}
	config_finish(&cfg);
	if (config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern serve: %s\n", err);
		return EXIT_FAIL;
	}
	return serve_run(&cfg, opt(o, "--config")) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* The store to copy comes from --db, or from --config's [store] (or POSTERN_POSTGRES, as for
 * serve); a PostgreSQL one has pg_dump, which knows its own consistency. */
static int cmd_backup(struct cli_opt *o)
{
	struct config cfg;
	char err[600];
	int rc = read_config(o, &cfg);
	if (rc != EXIT_OK)
		return rc;
	const char *db = opt(o, "--db")	      ? opt(o, "--db")
			 : opt(o, "--config") ? cfg.store_path
					      : NULL;
	if (opt(o, "--postgres") || (!opt(o, "--db") && cfg.store_postgres[0])) {
		fprintf(stderr, "postern backup: the store is PostgreSQL: back it up with pg_dump "
				"(see docs/operations.md)\n");
		return EXIT_FAIL;
	}
	if (!db) {
		fprintf(stderr, "postern backup: --db PATH or --config FILE is required "
				"(see --help)\n");
		return EXIT_USAGE;
	}
	if (backup_sqlite(db, opt(o, "--to"), opt(o, "--force") != NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern backup: %s\n", err);
		return EXIT_FAIL;
	}
	printf("%s copied to %s\n", db, opt(o, "--to"));
	return EXIT_OK;
}

#define DB_OPT                                                                                     \
	{"--db", "PATH", "SQLite database file", false, NULL},                                     \
	{                                                                                          \
		"--postgres", "CONNINFO",                                                          \
			"PostgreSQL database (libpq conninfo; or POSTERN_POSTGRES), instead of "   \
			"--db",                                                                    \
			false, NULL                                                                \
	}
#define ACCOUNT_OPT                                                                                \
	{                                                                                          \
		"--account", "NAME", "account name", true, NULL                                    \
	}

static struct cli_cmd commands[] = {
	{"init",
	 cmd_init,
	 "Create a new database with an account and its first Admin (password from "
	 "POSTERN_PASSWORD or a prompt)",
	 {DB_OPT, ACCOUNT_OPT, {"--admin", "EMAIL", "the Admin's login email", true, NULL}}},
	{"account add",
	 cmd_account_add,
	 "Add an account with its first Admin to an existing database",
	 {DB_OPT, ACCOUNT_OPT, {"--admin", "EMAIL", "the Admin's login email", true, NULL}}},
	{"user add",
	 cmd_user_add,
	 "Add a user to an account (password from POSTERN_PASSWORD or a prompt)",
	 {DB_OPT,
	  ACCOUNT_OPT,
	  {"--email", "EMAIL", "login email", true, NULL},
	  {"--role", "ROLE", "admin, technical, analytics or marketing", true, NULL}}},
	{"key create",
	 cmd_key_create,
	 "Create an API key for an account and print it once",
	 {DB_OPT,
	  ACCOUNT_OPT,
	  {"--name", "LABEL", "a label to recognise the key by", true, NULL},
	  {"--smtp-ip", "CIDR",
	   "a network that may send over SMTP as this key without AUTH (repeatable)", false, NULL},
	  {"--sender", "ADDR", "a From address the key may send from (repeatable)", false, NULL},
	  {"--domain", "DOMAIN", "a domain the key may send from (repeatable)", false, NULL},
	  {"--allowed-ip", "CIDR", "a network the key may be used from (repeatable)", false, NULL},
	  {"--scope", "SCOPE", "mail.send (the default) or manage (repeatable)", false, NULL},
	  {"--role", "ROLE", "with manage: technical, analytics or marketing", false, NULL}}},
	{"domain add",
	 cmd_domain_add,
	 "Add an approved sending domain to an account (pending unless --verified)",
	 {DB_OPT,
	  ACCOUNT_OPT,
	  {"DOMAIN", NULL, "the sending domain", true, NULL},
	  {"--verified", NULL, "mark it verified now, without a DNS check", false, NULL},
	  {"--inactive", NULL, "add it switched off", false, NULL},
	  {"--master-key", "FILE",
	   "DKIM master key file (default: dkim-master.key beside the database)", false, NULL}}},
	{"domain set",
	 cmd_domain_set,
	 "Change a sending domain's status or switch it on or off",
	 {DB_OPT,
	  ACCOUNT_OPT,
	  {"DOMAIN", NULL, "the sending domain", true, NULL},
	  {"--verified", NULL, "mark it verified", false, NULL},
	  {"--pending", NULL, "mark it pending verification", false, NULL},
	  {"--active", NULL, "switch it on", false, NULL},
	  {"--inactive", NULL, "switch it off", false, NULL}}},
	{"domain approve",
	 cmd_domain_approve,
	 "Approve a sending domain held for the operator ([domains] approval = manual)",
	 {DB_OPT, ACCOUNT_OPT, {"DOMAIN", NULL, "the sending domain", true, NULL}}},
	{"domain reject",
	 cmd_domain_reject,
	 "Reject a sending domain: mail from it is refused until it is approved",
	 {DB_OPT, ACCOUNT_OPT, {"DOMAIN", NULL, "the sending domain", true, NULL}}},
	{"routes",
	 cmd_routes,
	 "Print the HTTP routes with the roles allowed on each, one JSON object per line",
	 {{NULL, NULL, NULL, false, NULL}}},
	{"backup",
	 cmd_backup,
	 "Copy a live SQLite store to a file, consistently (PostgreSQL: use pg_dump)",
	 {{"--to", "FILE", "where the copy goes (an existing FILE is refused)", true, NULL},
	  {"--force", NULL, "replace FILE when it exists", false, NULL},
	  {"--config", "FILE", "INI configuration file: copy its [store]", false, NULL},
	  DB_OPT}},
	{"serve",
	 cmd_serve,
	 "Run the gateway; flags override the configuration file",
	 {{"--config", "FILE", "INI configuration file", false, NULL},
	  {"--listen", "HOST:PORT", "address to serve HTTP on ([server] listen)", false, NULL},
	  {"--db", "PATH", "SQLite database file ([store] path)", false, NULL},
	  {"--postgres", "CONNINFO",
	   "PostgreSQL database shared by several nodes ([store] postgres; or POSTERN_POSTGRES)",
	   false, NULL},
	  {"--relay", "URL", "smtp://HOST:PORT, smtps://HOST:PORT or outbox:DIR ([relay] url)",
	   false, NULL},
	  {"--public-url", "URL", "URL users reach the gateway at ([server] public_url)", false,
	   NULL},
	  {"--dns", "IP[:PORT],...", "DNS servers for domain checks ([dns] servers)", false, NULL},
	  {"--smtp", "HOST:PORT", "address to take SMTP submission on ([smtp] listen)", false,
	   NULL}}},
};

static void main_usage(FILE *out)
{
	fprintf(out, "Usage: postern COMMAND [options]\n\n"
		     "Postern is a transactional email gateway that only sends from authorized "
		     "sender addresses.\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		fprintf(out, "  %-12s %s\n", commands[i].words, commands[i].summary);
	fprintf(out, "\nRun 'postern COMMAND --help' for the options of a command, "
		     "'postern --version' for the version.\n");
}

/* Lists the subcommands of a group ("domain" for "domain add", "domain set"); returns how
 * many there are, 0 when group is no group. */
static int group_usage(FILE *out, const char *group)
{
	size_t len = strlen(group);
	int n = 0;
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		const char *w = commands[i].words;
		if (strncmp(w, group, len) != 0 || w[len] != ' ')
			continue;
		if (out && n == 0)
			fprintf(out, "Usage: postern %s SUBCOMMAND [options]\n\nSubcommands:\n",
				group);
		if (out)
			fprintf(out, "  %-12s %s\n", w, commands[i].summary);
		n++;
	}
	if (out && n)
		fprintf(out, "\nRun 'postern %s SUBCOMMAND --help' for its options.\n", group);
	return n;
}

/* Matches the command words ("user add") against argv; returns how many it consumed. */
static int match_words(const char *words, int argc, char **argv)
{
	char buf[64];
	int used = 0;
	util_copy(buf, sizeof(buf), words);
	char *save = NULL;
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (used >= argc || strcmp(argv[used], w) != 0)
			return 0;
		used++;
	}
	return used;
}

int cli_main(int argc, char **argv)
{
	if (argc < 2) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		main_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		int used = match_words(commands[i].words, argc - 1, argv + 1);
		if (!used)
			continue;
		int rc = parse_opts(&commands[i], argc - 1 - used, argv + 1 + used);
		if (rc == HELP_SHOWN)
			return EXIT_OK;
		if (rc != 0)
			return rc;
		if (commands[i].fn != cmd_serve)
			log_quiet();
		return commands[i].fn(commands[i].opts);
	}
	/* A group alone, or with --help, lists its subcommands; anything else is a typo. */
	if (group_usage(NULL, argv[1])) {
		bool help =
			argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0 ||
				     strcmp(argv[2], "help") == 0);
		if (argc > 2 && !help)
			fprintf(stderr, "postern %s: unknown subcommand '%s'\n\n", argv[1],
				argv[2]);
		group_usage(help ? stdout : stderr, argv[1]);
		return help ? EXIT_OK : EXIT_USAGE;
	}
	fprintf(stderr, "postern: unknown command '%s' (see postern --help)\n", argv[1]);
	return EXIT_USAGE;
}
