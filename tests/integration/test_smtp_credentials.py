"""SMTP credentials against the real daemon, with Python's smtplib: AUTH with an API key as
the password and "apikey" or the account's name as the user, 535 for anything else, the
per-client lockout (421 and close, lifted when the wait has passed), and SMTP-IP
credentials: a key whose networks hold the client sends without AUTH, the most specific
network first, and a revoked key stops at once, also in a session that already used it; a
key's last use is recorded on success only, by AUTH and by network alike."""
import re
import smtplib
import unittest

from harness import Gateway, cli, main, must, smtp_quit

SMTP_CONFIG = {"smtp": {"auth_without_tls": "yes"}}
FIRST_WAIT = 60   # session.h's SESSION_FIRST_WAIT: the first wait of a locked-out client
FREE_FAILURES = 10  # keys.h's KEYS_SMTP_FREE_FAILURES
SENDER = "news@acme.test"
MESSAGE = (f"From: Acme News <{SENDER}>\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
           "\r\nHi there\r\n")


def auth(s, user, password, mechanism="PLAIN"):
    """One AUTH exchange (smtplib's login() would try every mechanism in turn, and so
    count twice): its (code, text)."""
    s.user, s.password = user, password
    try:
        return s.auth(mechanism, getattr(s, "auth_" + mechanism.lower()),
                      initial_response_ok=True)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code, e.smtp_error


class SmtpCase(unittest.TestCase):
    """One gateway per class (the lockout and SMTP-IP keys are the whole client's), with
    account acme sending from its verified domain, and globex beside it."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config=SMTP_CONFIG).init("acme", "admin@acme.test")
        cls.gw.add_account("globex", "admin@globex.test")
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.key = cls.gw.create_key("acme", "smtp")
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def connect(self):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        self.addCleanup(smtp_quit, s)
        s.ehlo("client.test")
        return s

    def api(self, method, path, body=None, status=200):
        r = self.admin.request(method, path, body)
        self.assertEqual(r.status, status, r.raw)
        return r.json

    def key_id(self, name):
        ids = [k["id"] for k in self.api("GET", "/api/keys")["keys"] if k["name"] == name]
        self.assertEqual(len(ids), 1, ids)
        return ids[0]

    def send(self, s):
        """A whole message on s; the id of the 250 that queued it."""
        self.assertEqual(s.mail(SENDER)[0], 250)
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        code, text = s.data(MESSAGE.encode())
        self.assertEqual(code, 250, text)
        m = re.match(rb"^2\.0\.0 Ok: queued as (\S+)$", text)
        self.assertIsNotNone(m, text)
        return m.group(1).decode()

    def sent_as(self, mid):
        """The id of the key a message came in with."""
        rows = self.gw.sql("SELECT api_key_id FROM messages WHERE uid = ?", mid)
        self.assertEqual(len(rows), 1, rows)
        return rows[0][0]

    def assertRefused(self, reply, code, enhanced):
        self.assertEqual(reply[0], code, reply)
        self.assertTrue(reply[1].startswith(enhanced.encode()), reply)

    def assertClosed(self, s):
        with self.assertRaises((smtplib.SMTPServerDisconnected, OSError)):
            s.noop()
            s.noop()  # a close may only show on the second read


class AuthTest(SmtpCase):
    """Fewer failures in all than a lockout takes (the lockout has a gateway of its own)."""

    def test_the_user_is_apikey_or_the_accounts_name(self):
        for user, mechanism in (("apikey", "PLAIN"), ("APIKey", "LOGIN"), ("acme", "PLAIN"),
                                ("acme", "LOGIN")):
            with self.subTest(user=user, mechanism=mechanism):
                s = self.connect()
                code, text = auth(s, user, self.key, mechanism)
                self.assertEqual(code, 235, text)
                mid = self.send(s)
                self.assertEqual(self.sent_as(mid), self.key_id("smtp"))
                self.assertEqual(self.api("GET", "/api/messages/" + mid)["id"], mid)

    def test_anything_else_is_535(self):
        revoked = self.api("POST", "/api/keys", {"name": "gone"}, 201)
        self.api("DELETE", f"/api/keys/{revoked['id']}", status=204)
        for user, password in (("apikey", "pst_" + "A" * 43),  # well-formed, unknown
                               ("apikey", "not a key"),
                               ("bob", self.key),             # a user that is no one
                               ("globex", self.key),          # another account's name
                               ("apikey", revoked["key"])):
            with self.subTest(user=user, password=password[:8]):
                s = self.connect()
                self.assertRefused(auth(s, user, password), 535, "5.7.8")
                # Still unauthenticated: MAIL is refused as if AUTH never happened.
                self.assertRefused(s.mail(SENDER), 530, "5.7.0")

    def test_the_right_key_works_after_a_wrong_one(self):
        s = self.connect()
        self.assertRefused(auth(s, "apikey", "pst_" + "B" * 43), 535, "5.7.8")
        self.assertEqual(auth(s, "apikey", self.key)[0], 235)
        self.send(s)


class RevocationTest(SmtpCase):
    """Keys revoked or misused under a session's feet (a gateway of its own: a wrong user
    counts toward the lockout)."""

    def last_used(self, key_id):
        keys = {k["id"]: k for k in self.api("GET", "/api/keys")["keys"]}
        return keys[key_id]["last_used_at"]

    def test_a_session_stops_sending_once_its_key_is_revoked(self):
        made = self.api("POST", "/api/keys", {"name": "session"}, 201)
        s = self.connect()
        self.assertEqual(auth(s, "apikey", made["key"])[0], 235)
        self.send(s)
        self.api("DELETE", f"/api/keys/{made['id']}", status=204)
        # The session's AUTH is forgotten: the next MAIL is refused as unauthenticated.
        self.assertRefused(s.mail(SENDER), 530, "5.7.0")

    def test_a_failed_auth_leaves_the_key_unused(self):
        made = self.api("POST", "/api/keys", {"name": "unused"}, 201)
        s = self.connect()
        self.assertRefused(auth(s, "bob", made["key"]), 535, "5.7.8")
        self.assertIsNone(self.last_used(made["id"]))
        s = self.connect()
        self.assertEqual(auth(s, "apikey", made["key"])[0], 235)
        self.assertIsNotNone(self.last_used(made["id"]))

    def test_a_key_used_by_network_is_marked_used_and_stops_when_revoked(self):
        made = self.api("POST", "/api/keys", {"name": "device", "smtp_ips": ["127.0.0.1"]},
                        201)
        self.assertIsNone(self.last_used(made["id"]))
        s = self.connect()
        self.assertEqual(self.sent_as(self.send(s)), made["id"])
        self.assertIsNotNone(self.last_used(made["id"]))
        self.api("DELETE", f"/api/keys/{made['id']}", status=204)
        self.assertRefused(s.mail(SENDER), 530, "5.7.0")


class LockoutTest(SmtpCase):
    def test_repeated_failures_lock_the_client_out_until_the_wait_passes(self):
        refusals = 0
        while True:
            s = self.connect()
            code, text = auth(s, "apikey", "pst_" + "C" * 43)
            if code != 535:
                break
            refusals += 1
            self.assertLessEqual(refusals, FREE_FAILURES + 5, "never locked out")
        self.assertGreaterEqual(refusals, FREE_FAILURES - 1)
        self.assertRefused((code, text), 421, "4.7.0")
        self.assertClosed(s)

        # The client waits, whatever it sends: even the right key.
        s = self.connect()
        self.assertRefused(auth(s, "apikey", self.key), 421, "4.7.0")
        self.assertClosed(s)
        s = self.connect()
        self.assertRefused(auth(s, "acme", self.key, "LOGIN"), 421, "4.7.0")

        self.gw.advance_clock(FIRST_WAIT + 1)
        s = self.connect()
        self.assertEqual(auth(s, "apikey", self.key)[0], 235)
        self.send(s)


class SmtpIpTest(SmtpCase):
    """One scenario, in order: every key with networks changes who 127.0.0.1 sends as."""

    def unauthenticated_mail(self):
        s = self.connect()
        return s, s.mail(SENDER)

    def test_a_client_in_a_keys_network_sends_as_that_key(self):
        # No key with networks: MAIL without AUTH is refused.
        s, reply = self.unauthenticated_mail()
        self.assertRefused(reply, 530, "5.7.0")

        # A key for other networks only.
        self.api("POST", "/api/keys", {"name": "lan", "smtp_ips": ["10.0.0.0/8"]}, 201)
        s, reply = self.unauthenticated_mail()
        self.assertRefused(reply, 530, "5.7.0")

        # A key for this very address, made at the command line while the gateway runs.
        must(cli("key", "create", *self.gw.store_args, "--account", "acme", "--name", "here",
                 "--smtp-ip", "127.0.0.1/32"))
        here = self.key_id("here")
        s = self.connect()
        self.assertEqual(self.sent_as(self.send(s)), here)

        # A newer key with a wider network: the most specific network still wins.
        wide = self.api("POST", "/api/keys",
                        {"name": "wide", "smtp_ips": ["127.0.0.0/8", "::1"]}, 201)
        s = self.connect()
        self.assertEqual(self.sent_as(self.send(s)), here)

        # Revoked: the next connection sends as the next key that holds the address.
        self.api("DELETE", f"/api/keys/{here}", status=204)
        s = self.connect()
        self.assertEqual(self.sent_as(self.send(s)), wide["id"])

        # And with it gone too, nobody: refused at once, the table reloaded.
        self.api("DELETE", f"/api/keys/{wide['id']}", status=204)
        s, reply = self.unauthenticated_mail()
        self.assertRefused(reply, 530, "5.7.0")

    def test_auth_still_works_beside_networks(self):
        s = self.connect()
        self.assertEqual(auth(s, "apikey", self.key)[0], 235)
        self.assertEqual(self.sent_as(self.send(s)), self.key_id("smtp"))


if __name__ == "__main__":
    main()
