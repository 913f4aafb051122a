"""The postern command line: help, exit codes, bootstrap commands, and `serve` start-up
(configuration errors, flag overrides, schema version checks)."""
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from harness import BIN, ROOT, Gateway, cli, free_port, main, must


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="postern-cli-")
        self.db = os.path.join(self.tmp, "p.db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def init(self):
        must(cli("init", "--db", self.db, "--account", "acme", "--admin", "admin@acme.test"))

    def query(self, sql):
        db = sqlite3.connect(self.db)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

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

    def test_usage_errors_exit_2_with_one_line(self):
        for args in (["frobnicate"], ["user"], ["init", "--db", self.db],
                     ["init", "--bogus", "x"], ["init", "--db"], []):
            r = cli(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr.strip(), args)

    def test_init_creates_account_and_admin_with_argon2id_hash(self):
        r = cli("init", "--db", self.db, "--account", "acme", "--admin", "Admin@ACME.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.query("SELECT name FROM accounts"), [("acme",)])
        (email, role, hashed), = self.query("SELECT email, role, password_hash FROM users")
        self.assertEqual((email, role), ("admin@acme.test", "admin"))
        self.assertTrue(hashed.startswith("$argon2id$"))
        self.assertNotIn("correct horse", hashed)

    def test_init_refuses_an_existing_database(self):
        self.init()
        r = cli("init", "--db", self.db, "--account", "other", "--admin", "a@other.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("account add", r.stderr)

    def test_password_rules(self):
        r = cli("init", "--db", self.db, "--account", "a", "--admin", "a@a.test", password=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("POSTERN_PASSWORD", r.stderr)
        r = cli("init", "--db", self.db, "--account", "a", "--admin", "a@a.test",
                password="short")
        self.assertEqual(r.returncode, 2)
        # Nothing half-made is left behind: init works once a good password is given.
        self.assertFalse(os.path.exists(self.db))
        self.init()

    def test_accounts_and_users(self):
        self.init()
        must(cli("account", "add", "--db", self.db, "--account", "globex", "--admin",
                 "boss@globex.test"))
        r = cli("account", "add", "--db", self.db, "--account", "globex", "--admin",
                "x@globex.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        for role in ("technical", "analytics", "marketing", "admin"):
            must(cli("user", "add", "--db", self.db, "--account", "acme", "--email",
                     f"u-{role}@acme.test", "--role", role))
        r = cli("user", "add", "--db", self.db, "--account", "acme", "--email", "x@acme.test",
                "--role", "owner")
        self.assertEqual(r.returncode, 2)
        r = cli("user", "add", "--db", self.db, "--account", "nope", "--email", "x@acme.test",
                "--role", "admin")
        self.assertEqual(r.returncode, 1)
        r = cli("user", "add", "--db", self.db, "--account", "globex", "--email",
                "U-TECHNICAL@acme.test", "--role", "admin")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        r = cli("user", "add", "--db", self.db, "--account", "acme", "--email", "not-an-email",
                "--role", "admin")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(self.query("SELECT * FROM users")), 6)
        r = cli("account", "add", "--db", os.path.join(self.tmp, "missing.db"), "--account",
                "x", "--admin", "x@x.test")
        self.assertEqual(r.returncode, 1)

    def test_key_create_prints_the_key_once_and_stores_only_a_hash(self):
        self.init()
        r = cli("key", "create", "--db", self.db, "--account", "acme", "--name", "billing")
        self.assertEqual(r.returncode, 0, r.stderr)
        key = r.stdout.strip()
        self.assertRegex(key, r"^pst_[A-Za-z0-9_-]{43}$")
        rows = self.query("SELECT name, shown, key_hash FROM api_keys")
        self.assertEqual(len(rows), 1)
        name, shown, key_hash = rows[0]
        self.assertEqual(name, "billing")
        self.assertTrue(key.startswith(shown))
        self.assertRegex(key_hash, r"^[0-9a-f]{64}$")
        with open(self.db, "rb") as f:
            self.assertNotIn(key.encode(), f.read())
        second = cli("key", "create", "--db", self.db, "--account", "acme", "--name", "x")
        self.assertNotEqual(second.stdout.strip(), key)

    def test_migrations_are_applied_once(self):
        self.init()
        must(cli("key", "create", "--db", self.db, "--account", "acme", "--name", "a"))
        self.assertEqual(self.query("SELECT version FROM schema_version"), [(1,)])
        self.assertEqual(self.query("PRAGMA journal_mode"), [("wal",)])
        tables = {t for (t,) in self.query("SELECT name FROM sqlite_master WHERE type='table'")}
        for t in ("accounts", "users", "sessions", "api_keys", "senders", "sending_domains",
                  "settings", "verification_tokens", "messages", "drops", "audit_log"):
            self.assertIn(t, tables)


class ServeStartupTest(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway().init()

    def tearDown(self):
        self.gw.cleanup()

    def serve(self, *args):
        return subprocess.run([BIN, "serve", "--db", self.gw.db, *args], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)

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
        db = sqlite3.connect(self.gw.db)
        db.execute("INSERT INTO schema_version (version) VALUES (999)")
        db.commit()
        db.close()
        r = self.serve("--listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("newer", r.stderr)

    def test_address_in_use_fails_clearly(self):
        self.gw.start()
        other = Gateway().init()
        try:
            r = subprocess.run([BIN, "serve", "--db", other.db, "--listen",
                                f"127.0.0.1:{self.gw.port}"], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
        finally:
            other.cleanup()
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen", r.stderr)

    def test_one_daemon_per_database(self):
        self.gw.start()
        r = self.serve("--listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use by another postern serve", r.stderr)


if __name__ == "__main__":
    main()
