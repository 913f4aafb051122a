"""The postern command line: help, exit codes, bootstrap commands, and `serve` start-up
(configuration errors, flag overrides, schema version checks), on the store the suite runs
on (SQLite, or PostgreSQL with POSTERN_TEST_BACKEND=postgres)."""
import os
import re
import subprocess
import unittest

from harness import (POSTGRES, ROOT, Gateway, cli, conninfo_with, free_port, main, must,
                     postgres_only, sqlite_only)


class CliTest(unittest.TestCase):
    """Each test on an empty store: a SQLite file not made yet, or an empty database."""

    def setUp(self):
        self.gw = Gateway()
        self.store = self.gw.store_args
        self.tmp = self.gw.tmp
        self.db = self.gw.db

    def tearDown(self):
        self.gw.cleanup()

    def init(self):
        must(cli("init", *self.store, "--account", "acme", "--admin", "admin@acme.test"))

    def query(self, sql):
        return self.gw.sql(sql)

    def test_help_describes_every_command_and_option(self):
        r = cli("--help")
        self.assertEqual(r.returncode, 0)
        for cmd in ("init", "account add", "user add", "key create", "serve"):
            self.assertIn(cmd, r.stdout)
            sub = cli(*cmd.split(), "--help")
            self.assertEqual(sub.returncode, 0, cmd)
            self.assertIn("Usage: postern " + cmd, sub.stdout)
        serve = cli("serve", "--help").stdout
        for flag in ("--config", "--listen", "--db", "--relay", "--public-url", "--dns"):
            self.assertIn(flag, serve)

    def test_every_command_group_lists_its_subcommands(self):
        groups = {"account": ["account add"], "user": ["user add"], "key": ["key create"],
                  "domain": ["domain add", "domain set"]}
        for group, subs in groups.items():
            for flag in ("--help", "-h"):
                r = cli(group, flag)
                self.assertEqual(r.returncode, 0, (group, r.stderr))
                self.assertIn(f"Usage: postern {group} SUBCOMMAND", r.stdout)
                for sub in subs:
                    self.assertIn(sub, r.stdout)
            bare = cli(group)
            self.assertEqual(bare.returncode, 2)
            self.assertIn(subs[0], bare.stderr)
            typo = cli(group, "frobnicate")
            self.assertEqual(typo.returncode, 2)
            self.assertIn(f"unknown subcommand 'frobnicate'", typo.stderr)

    def test_usage_errors_exit_2_with_one_line(self):
        for args in (["frobnicate"], ["user"], ["init", *self.store],
                     ["init", "--bogus", "x"], ["init", "--db"], ["init", "--postgres"],
                     ["init", "--db", self.db, "--postgres", "host=127.0.0.1", "--account",
                      "a", "--admin", "a@a.test"], []):
            r = cli(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr.strip(), args)

    def test_init_creates_account_and_admin_with_argon2id_hash(self):
        r = cli("init", *self.store, "--account", "acme", "--admin", "Admin@ACME.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.query("SELECT name FROM accounts"), [("acme",)])
        (email, role, hashed), = self.query("SELECT email, role, password_hash FROM users")
        self.assertEqual((email, role), ("admin@acme.test", "admin"))
        self.assertTrue(hashed.startswith("$argon2id$"))
        self.assertNotIn("correct horse", hashed)

    def test_init_refuses_an_existing_database(self):
        self.init()
        r = cli("init", *self.store, "--account", "other", "--admin", "a@other.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("account add", r.stderr)

    def test_password_rules(self):
        r = cli("init", *self.store, "--account", "a", "--admin", "a@a.test", password=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("POSTERN_PASSWORD", r.stderr)
        r = cli("init", *self.store, "--account", "a", "--admin", "a@a.test",
                password="short")
        self.assertEqual(r.returncode, 2)
        # Nothing half-made is left behind: init works once a good password is given.
        if POSTGRES:
            # The schema may be there already (init makes it before asking for the
            # password); no account or user is.
            if self.query("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'accounts'")[0][0]:
                self.assertEqual(self.query("SELECT (SELECT COUNT(*) FROM accounts), "
                                            "(SELECT COUNT(*) FROM users)"), [(0, 0)])
        else:
            self.assertFalse(os.path.exists(self.db))
        self.init()

    def test_accounts_and_users(self):
        self.init()
        must(cli("account", "add", *self.store, "--account", "globex", "--admin",
                 "boss@globex.test"))
        r = cli("account", "add", *self.store, "--account", "globex", "--admin",
                "x@globex.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        for role in ("technical", "analytics", "marketing", "admin"):
            must(cli("user", "add", *self.store, "--account", "acme", "--email",
                     f"u-{role}@acme.test", "--role", role))
        r = cli("user", "add", *self.store, "--account", "acme", "--email", "x@acme.test",
                "--role", "owner")
        self.assertEqual(r.returncode, 2)
        r = cli("user", "add", *self.store, "--account", "nope", "--email", "x@acme.test",
                "--role", "admin")
        self.assertEqual(r.returncode, 1)
        r = cli("user", "add", *self.store, "--account", "acme", "--email",
                "U-TECHNICAL@acme.test", "--role", "admin")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists in account acme", r.stderr)
        # Emails are unique per account: another account may have the same person.
        must(cli("user", "add", *self.store, "--account", "globex", "--email",
                 "U-TECHNICAL@acme.test", "--role", "admin"))
        r = cli("user", "add", *self.store, "--account", "acme", "--email", "not-an-email",
                "--role", "admin")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(self.query("SELECT * FROM users")), 7)
        # A store that is not there: a missing file, or a database the server lacks.
        missing = (["--postgres", conninfo_with(self.gw.conninfo, dbname="postern_missing")]
                   if POSTGRES else ["--db", os.path.join(self.tmp, "missing.db")])
        r = cli("account", "add", *missing, "--account", "x", "--admin", "x@x.test")
        self.assertEqual(r.returncode, 1)

    def test_key_create_prints_the_key_once_and_stores_only_a_hash(self):
        self.init()
        r = cli("key", "create", *self.store, "--account", "acme", "--name", "billing")
        self.assertEqual(r.returncode, 0, r.stderr)
        key = r.stdout.strip()
        self.assertRegex(key, r"^pst_[A-Za-z0-9_-]{43}$")
        rows = self.query("SELECT name, shown, key_hash FROM api_keys")
        self.assertEqual(len(rows), 1)
        name, shown, key_hash = rows[0]
        self.assertEqual(name, "billing")
        self.assertTrue(key.startswith(shown))
        self.assertRegex(key_hash, r"^[0-9a-f]{64}$")
        self.assertNotIn(key.encode(), self.gw.dump())
        second = cli("key", "create", *self.store, "--account", "acme", "--name", "x")
        self.assertNotEqual(second.stdout.strip(), key)

    def test_key_create_takes_smtp_networks(self):
        self.init()
        r = cli("key", "create", *self.store, "--account", "acme", "--name", "printer",
                "--smtp-ip", "127.0.0.1/32", "--smtp-ip=10.0.0.0/8", "--smtp-ip", "::1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), r"^pst_[A-Za-z0-9_-]{43}$")
        self.assertIn("127.0.0.1/32,10.0.0.0/8,::1/128", r.stderr)
        self.assertEqual(self.query("SELECT name, smtp_ips FROM api_keys"),
                         [("printer", "127.0.0.1/32,10.0.0.0/8,::1/128")])
        must(cli("key", "create", *self.store, "--account", "acme", "--name", "plain"))
        self.assertEqual(self.query("SELECT smtp_ips FROM api_keys WHERE name = 'plain'"),
                         [("",)])
        self.assertIn("--smtp-ip", cli("key", "create", "--help").stdout)
        # A bad network is named and nothing is stored; one value is one network.
        for bad in ("10.0.0.0/33", "printer.local", "10.0.0.0/8,10.1.0.0/16", ""):
            with self.subTest(bad=bad):
                r = cli("key", "create", *self.store, "--account", "acme", "--name", "bad",
                        "--smtp-ip", "127.0.0.1", "--smtp-ip", bad)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"'{bad}'", r.stderr)
                self.assertIn("10.0.0.0/8", r.stderr)  # the form, with an example
        # An empty value first, or alone, is named too, never dropped.
        for values in (("", "10.0.0.1"), ("",)):
            with self.subTest(values=values):
                args = [a for v in values for a in ("--smtp-ip", v)]
                r = cli("key", "create", *self.store, "--account", "acme", "--name", "bad",
                        *args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--smtp-ip ''", r.stderr)
        # Wider than a /8 or a /16, a network would let nearly anyone send as the key.
        for wide in ("0.0.0.0/0", "10.0.0.0/7", "::/0", "2001::/15"):
            with self.subTest(wide=wide):
                r = cli("key", "create", *self.store, "--account", "acme", "--name", "bad",
                        "--smtp-ip", wide)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"'{wide}'", r.stderr)
                self.assertIn("/8", r.stderr)
        self.assertEqual(len(self.query("SELECT * FROM api_keys")), 2)
        must(cli("key", "create", *self.store, "--account", "acme", "--name", "widest",
                 "--smtp-ip", "10.0.0.0/8", "--smtp-ip", "2001::/16"))

    def test_migrations_are_applied_once(self):
        self.init()
        must(cli("key", "create", *self.store, "--account", "acme", "--name", "a"))
        # Each version once, in order, however many there are by now.
        versions = [v for (v,) in self.query("SELECT version FROM schema_version ORDER BY 1")]
        self.assertEqual(versions, list(range(1, len(versions) + 1)))
        self.assertGreaterEqual(len(versions), 1)
        if POSTGRES:
            tables = {t for (t,) in self.query(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public'")}
        else:
            self.assertEqual(self.query("PRAGMA journal_mode"), [("wal",)])
            tables = {t for (t,) in self.query(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        for t in ("accounts", "users", "sessions", "api_keys", "senders", "sending_domains",
                  "settings", "verification_tokens", "messages", "drops", "audit_log"):
            self.assertIn(t, tables)

    @postgres_only("POSTERN_POSTGRES names the database when no flag does")
    def test_the_environment_names_the_postgres_database(self):
        env = {"POSTERN_POSTGRES": self.gw.conninfo}
        must(cli("init", "--account", "acme", "--admin", "admin@acme.test", env=env))
        must(cli("user", "add", "--account", "acme", "--email", "t@acme.test", "--role",
                 "technical", env=env))
        self.assertEqual(self.query("SELECT email FROM users ORDER BY id"),
                         [("admin@acme.test",), ("t@acme.test",)])
        # A flag and the environment together: the flag is the one meant.
        r = cli("account", "add", "--db", self.db, "--account", "x", "--admin", "x@x.test",
                env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(os.path.exists(self.db))

    @postgres_only("init on a database that already has accounts")
    def test_init_refuses_a_postgres_database_with_accounts(self):
        self.init()
        r = cli("init", *self.store, "--account", "other", "--admin", "a@other.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already has accounts", r.stderr)
        self.assertEqual(self.query("SELECT name FROM accounts"), [("acme",)])

    @postgres_only("domain add has no database file to find the master key beside")
    def test_domain_add_on_postgres_needs_the_master_key(self):
        self.init()
        r = cli("domain", "add", *self.store, "--account", "acme", "acme.test")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--master-key", r.stderr)
        self.assertEqual(self.query("SELECT COUNT(*) FROM sending_domains"), [(0,)])
        must(cli("domain", "add", *self.store, *self.gw.key_args, "--account", "acme",
                 "acme.test"))
        self.assertTrue(os.path.exists(self.gw.master_key))
        self.assertEqual(self.query("SELECT name FROM sending_domains"), [("acme.test",)])


class ServeStartupTest(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway().init()

    def tearDown(self):
        self.gw.cleanup()

    def serve(self, *args):
        # A --config given here is used as it is: the tests read its name in the errors.
        return subprocess.run(self.gw.serve_command(*args, merge_config=False),
                              capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)

    def write_ini(self, text):
        path = os.path.join(self.gw.tmp, "postern.ini")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_unknown_key_names_file_line_and_key(self):
        path = self.write_ini("[server]\nlisten = 127.0.0.1:1\n\n[relay]\ncolour = blue\n")
        r = self.serve("--config", path)
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(f"{path}:5:", lines[0])
        self.assertIn("colour", lines[0])

    def test_malformed_values_name_file_line_and_key(self):
        for text, key in (("[server]\nlisten = nowhere\n", "listen"),
                          ("[relay]\nurl = ftp://x\n", "url"),
                          ("[relay]\nstarttls = maybe\n", "starttls"),
                          ("[dns]\nservers = resolver.example\n", "servers"),
                          ("[mail]\nsystem_from = postern\n", "system_from")):
            path = self.write_ini(text)
            r = self.serve("--config", path)
            self.assertEqual(r.returncode, 1, text)
            self.assertRegex(r.stderr.strip(), rf"^postern: {re.escape(path)}:2: .*{key}")

    def test_unreadable_file(self):
        missing = os.path.join(self.gw.tmp, "nope.ini")
        r = self.serve("--config", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn(missing, r.stderr)

    def test_malformed_flag_is_a_usage_error(self):
        r = self.serve("--listen", "nowhere")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--listen", r.stderr)

    def test_flags_override_the_file(self):
        path = self.write_ini(f"[server]\nlisten = 127.0.0.1:{free_port()}\n")
        self.gw.extra_args = ["--config", path]
        self.gw.start()  # Gateway passes --listen with another port after the config
        self.assertEqual(self.gw.client().request("GET", "/api/session").status, 401)
        self.assertTrue(self.gw.log_lines(f"serving on 127.0.0.1:{self.gw.port}"))

    def test_example_configuration_is_valid(self):
        self.gw.extra_args = ["--config", os.path.join(ROOT, "docs", "postern.ini.example")]
        self.gw.start()
        self.assertEqual(self.gw.client().request("GET", "/api/session").status, 401)

    def test_refuses_a_schema_newer_than_it_knows(self):
        self.gw.sql("INSERT INTO schema_version (version) VALUES (999)")
        r = self.serve("--listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("newer", r.stderr)

    def test_address_in_use_fails_clearly(self):
        self.gw.start()
        other = Gateway().init()
        try:
            r = subprocess.run(other.serve_command("--listen", f"127.0.0.1:{self.gw.port}"),
                               capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        finally:
            other.cleanup()
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen", r.stderr)

    @sqlite_only("a SQLite database file is locked by the daemon that has it open")
    def test_one_daemon_per_database(self):
        self.gw.start()
        r = self.serve("--listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use by another postern serve", r.stderr)

    @postgres_only("a PostgreSQL database is shared by several gateways by design")
    def test_a_second_daemon_on_the_same_postgres_database_is_allowed(self):
        self.gw.start()
        other = Gateway(shares=self.gw)
        try:
            other.start()
            for gw in (self.gw, other):
                self.assertEqual(gw.client().login("admin@acme.test").status, 200)
            self.assertEqual(other.stop(), 0)
            self.assertIn("store PostgreSQL", other.read_log())
        finally:
            other.cleanup()
        self.assertEqual(self.gw.client().request("GET", "/api/session").status, 401)

    @postgres_only("serve names no conninfo (it may hold a password) in its log")
    def test_serve_does_not_log_the_conninfo(self):
        self.gw.start()
        self.assertEqual(self.gw.stop(), 0)
        self.assertNotIn(self.gw.conninfo, self.gw.read_log())
        self.assertNotIn(self.gw.dbname, self.gw.read_log())

    def test_plaintext_auth_is_refused_for_a_relay_off_loopback(self):
        path = self.write_ini("[relay]\nurl = smtp://192.0.2.1:25\nusername = postern\n"
                              "password = secret\nplaintext_auth = yes\n")
        r = self.serve("--config", path, "--listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("[relay] plaintext_auth", lines[0])
        self.assertIn("loopback", lines[0])
        self.assertIn("192.0.2.1", lines[0])

    def test_another_master_key_is_refused_at_start(self):
        """The store remembers which DKIM master key its keys are sealed with: a node
        started with another one would defer all signed mail, so it refuses to start."""
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.gw.start()
        self.assertEqual(self.gw.stop(), 0)
        os.rename(self.gw.master_key, self.gw.master_key + ".orig")
        with open(os.open(self.gw.master_key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        r = self.serve("--listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("[dkim] master_key_file", r.stderr)
        self.assertIn(self.gw.master_key, r.stderr)
        # domain add checks the key it is given in the same way.
        r = cli("domain", "add", *self.gw.store_args, "--master-key", self.gw.master_key,
                "--account", "acme", "other.test")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("master", r.stderr)
        os.replace(self.gw.master_key + ".orig", self.gw.master_key)
        self.gw.start()


@sqlite_only("the SQLite files on disk; PostgreSQL keeps its own")
class StoreFilesTest(unittest.TestCase):
    """The database, its -wal, -shm and -policy files, its lock and the DKIM master key are
    readable by their owner only, whatever the umask, and files an older version left
    0644 are tightened when the store is opened."""

    def setUp(self):
        self.umask = os.umask(0o022)
        self.gw = Gateway()

    def tearDown(self):
        self.gw.cleanup()
        os.umask(self.umask)

    def modes(self):
        return {name: oct(os.stat(os.path.join(self.gw.tmp, name)).st_mode & 0o777)
                for name in os.listdir(self.gw.tmp)
                if name.startswith("postern.db") or name.endswith(".key")}

    def assert_private(self, *expected):
        modes = self.modes()
        for name in expected:
            self.assertIn(name, modes)
        self.assertEqual({n: m for n, m in modes.items() if m != oct(0o600)}, {}, modes)

    def test_files_are_created_0600(self):
        self.gw.init()
        self.assert_private("postern.db", "postern.db-policy")
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.gw.start()
        self.assert_private("postern.db", "postern.db-wal", "postern.db-shm",
                            "postern.db-policy", "postern.db.lock", "dkim-master.key")
        self.assertEqual(self.gw.stop(), 0)
        self.assert_private("postern.db", "postern.db-policy")

    def test_files_left_0644_are_tightened(self):
        self.gw.init()
        self.gw.start()
        for name in self.modes():
            if not name.endswith((".key", ".lock")):  # the lock file holds nothing
                os.chmod(os.path.join(self.gw.tmp, name), 0o644)
        self.gw.kill()  # a crash leaves the -wal and -shm behind
        self.gw.start()
        self.assert_private("postern.db", "postern.db-wal", "postern.db-shm",
                            "postern.db-policy")

    def test_a_database_behind_a_symbolic_link_is_followed(self):
        volume = os.path.join(self.gw.tmp, "volume")
        os.makedirs(volume)
        real, link = os.path.join(volume, "real.db"), os.path.join(self.gw.tmp, "linked.db")
        os.symlink(real, link)  # dangling until init makes the database
        r = cli("init", "--db", link, "--account", "acme", "--admin", "admin@acme.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(oct(os.stat(real).st_mode & 0o777), oct(0o600))
        self.assertEqual(must(cli("account", "add", "--db", link, "--account", "globex",
                                  "--admin", "admin@globex.test")).returncode, 0)


if __name__ == "__main__":
    main()
