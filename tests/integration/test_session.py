"""Login sessions over real HTTP: login, wrong password, logout, CSRF, throttles, the bound
on password checks, cookies."""
import os
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import PASSWORD, Gateway, audit_events, cli, main


class SessionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.gw.add_user("acme", "locked@acme.test", "technical")
        cls.gw.add_user("acme", "mkt@acme.test", "marketing")
        cls.gw.add_user("acme", "pw@acme.test", "marketing")
        cls.gw.add_user("acme", "perms-tech@acme.test", "technical")
        cls.gw.add_user("acme", "perms-analytics@acme.test", "analytics")
        for email in ("probe@acme.test", "roamer@acme.test", "doubler@acme.test"):
            cls.gw.add_user("acme", email, "analytics")
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def test_login_returns_user_account_csrf_and_a_strict_cookie(self):
        c = self.gw.client()
        r = c.login("admin@acme.test")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["user"]["email"], "admin@acme.test")
        self.assertEqual(r.json["user"]["role"], "admin")
        self.assertIsInstance(r.json["user"]["id"], int)
        self.assertEqual(r.json["account"]["name"], "acme")
        self.assertGreaterEqual(len(r.json["csrf_token"]), 32)
        cookie = r.header("Set-Cookie")
        self.assertTrue(cookie.startswith("postern_session="))
        for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
            self.assertIn(attr, cookie)
        self.assertNotIn("Secure", cookie)  # public_url is http here

    def test_login_email_is_case_insensitive_and_role_is_reported(self):
        r = self.gw.client().login("MKT@Acme.TEST")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["user"]["role"], "marketing")

    def test_wrong_password_and_unknown_email_answer_the_same(self):
        c = self.gw.client()
        wrong = c.login("mkt@acme.test", "not the password")
        unknown = c.login("nobody@acme.test", "not the password")
        no_account = c.login("mkt@acme.test", "not the password", account="nope")
        self.assertEqual(wrong.status, 401)
        self.assertEqual(unknown.status, 401)
        self.assertEqual(wrong.code, "invalid_credentials")
        self.assertEqual(no_account.status, 401)
        self.assertEqual(wrong.json, unknown.json)
        self.assertEqual(wrong.json, no_account.json)
        self.assertIsNone(wrong.header("Set-Cookie"))
        # Clear the failure so the marketing user is not near the lockout.
        self.assertEqual(c.login("mkt@acme.test").status, 200)

    def test_login_takes_json_only_so_cross_site_forms_cannot_log_in(self):
        c = self.gw.client()
        r = c.request("POST", "/api/session", raw="email=admin%40acme.test&password=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((r.status, r.code), (415, "unsupported_media_type"))
        r = c.request("POST", "/api/session",
                      raw='{"email":"admin@acme.test","password":"correct horse battery"}',
                      headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415)
        self.assertIsNone(r.header("Set-Cookie"))

    def test_changing_ones_password_ends_the_other_sessions(self):
        here, elsewhere = self.gw.client(), self.gw.client()
        self.assertEqual(here.login("pw@acme.test").status, 200)
        self.assertEqual(elsewhere.login("pw@acme.test").status, 200)
        path = "/api/users/me/password"
        r = here.request("PUT", path, {"current_password": "wrong password!",
                                       "new_password": "a new long password"})
        self.assertEqual((r.status, r.code), (403, "password_incorrect"))
        r = here.request("PUT", path, {"current_password": PASSWORD, "new_password": "short"})
        self.assertEqual((r.status, r.json["error"]["field"]), (400, "new_password"))
        r = here.request("PUT", path, {"current_password": PASSWORD,
                                       "new_password": "a new long password"}, csrf=False)
        self.assertEqual(r.code, "csrf_failed")
        r = here.request("PUT", path, {"current_password": PASSWORD,
                                       "new_password": "a new long password"})
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(here.request("GET", "/api/session").status, 200)
        self.assertEqual(elsewhere.request("GET", "/api/session").status, 401)
        self.assertEqual(self.gw.client().login("pw@acme.test").status, 401)
        self.assertEqual(self.gw.client().login("pw@acme.test", "a new long password").status,
                         200)

    def test_missing_field_names_the_field(self):
        r = self.gw.client().request("POST", "/api/session", {"password": "x" * 10})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.code, "invalid_request")
        self.assertEqual(r.json["error"]["field"], "email")
        r = self.gw.client().request("POST", "/api/session",
                                     {"email": "admin@acme.test", "password": PASSWORD})
        self.assertEqual((r.status, r.code), (400, "invalid_request"))
        self.assertEqual(r.json["error"]["field"], "account")

    def test_session_carries_the_roles_permissions(self):
        # The panel shows and hides by this list, so it must be role.c's table as is.
        every = ["read", "sender.add"]
        want = {
            "admin@acme.test": every + ["sender_auth.toggle", "sender.remove", "sender.verify",
                                        "domain.manage", "user.manage", "key.manage",
                                        "message.cancel", "webhook.manage",
                                        "suppression.manage", "sender_confirmation.set"],
            "perms-tech@acme.test": every + ["sender_auth.toggle", "sender.remove",
                                             "domain.manage", "key.manage", "message.cancel",
                                             "webhook.manage", "suppression.manage"],
            "perms-analytics@acme.test": every + ["sender_auth.toggle", "sender.remove"],
            "mkt@acme.test": every,
        }
        for email, perms in want.items():
            c = self.gw.client()
            self.assertEqual(c.login(email).json["permissions"], perms, email)
            self.assertEqual(c.request("GET", "/api/session").json["permissions"], perms, email)

    def test_get_session_with_and_without_cookie(self):
        c = self.gw.client()
        login = c.login("admin@acme.test")
        r = c.request("GET", "/api/session")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["user"], login.json["user"])
        self.assertEqual(r.json["account"], login.json["account"])
        self.assertEqual(r.json["csrf_token"], login.json["csrf_token"])

        anon = self.gw.client().request("GET", "/api/session")
        self.assertEqual(anon.status, 401)
        self.assertEqual(anon.code, "not_authenticated")
        forged = self.gw.client()
        forged.cookie = "A" * 43
        self.assertEqual(forged.request("GET", "/api/session").code, "not_authenticated")

    def test_logout_needs_csrf_and_deletes_the_session_server_side(self):
        c = self.gw.client()
        c.login("admin@acme.test")
        r = c.request("DELETE", "/api/session", csrf=False)
        self.assertEqual(r.status, 403)
        self.assertEqual(r.code, "csrf_failed")
        r = c.request("DELETE", "/api/session", headers={"X-CSRF-Token": "wrong" * 8})
        self.assertEqual(r.code, "csrf_failed")
        self.assertEqual(c.request("GET", "/api/session").status, 200)

        r = c.request("DELETE", "/api/session")
        self.assertEqual(r.status, 204)
        self.assertIn("Max-Age=0", r.header("Set-Cookie"))
        # The old cookie, replayed, no longer works: the session is gone from the store.
        self.assertEqual(c.request("GET", "/api/session").status, 401)

    def test_a_cookie_planted_before_login_is_replaced(self):
        c = self.gw.client()
        planted = "B" * 43
        c.cookie = planted
        r = c.login("admin@acme.test")
        self.assertEqual(r.status, 200)
        self.assertNotEqual(c.cookie, planted)

    def test_five_failures_lock_the_user_out_and_are_audited(self):
        c = self.gw.client()
        for i in range(5):
            r = c.login("locked@acme.test", f"wrong-{i}-password")
            self.assertEqual(r.status, 401, f"attempt {i + 1}")
        r = c.login("locked@acme.test", PASSWORD)  # the right password, too late
        self.assertEqual(r.status, 429)
        self.assertEqual(r.code, "too_many_attempts")
        self.assertIsNone(r.header("Set-Cookie"))
        # Other users of the account are not affected, and an Admin sees the lockout.
        admin = self.gw.client()
        self.assertEqual(admin.login("admin@acme.test").status, 200)
        events = admin.request("GET", "/api/audit?limit=1000").json["events"]
        locked = [e for e in events if e["action"] == "user.locked_out" and
                  e["target"] == "locked@acme.test"]
        self.assertEqual(len(locked), 1)
        self.assertEqual(locked[0]["target"], "locked@acme.test")
        self.assertEqual(locked[0]["ip"], "127.0.0.1")

    def assertRetryAfter(self, r, low, high):
        self.assertEqual((r.status, r.code), (429, "too_many_attempts"), r.raw)
        self.assertIsNone(r.header("Set-Cookie"))
        self.assertTrue(low < int(r.header("Retry-After")) <= high, r.header("Retry-After"))

    def test_unknown_and_real_emails_are_throttled_alike(self):
        # Which emails exist must not show: failure after failure the same answers, and
        # the same 429 after the same number of them.
        tries = {}
        for email in ("probe@acme.test", "ghost@acme.test"):
            c = self.gw.client()
            tries[email] = [c.login(email, f"wrong-{i}-password") for i in range(5)]
            tries[email].append(c.login(email))  # probe's right password, too late
        # Retry-After is compared for presence: its seconds count down between the two.
        real, unknown = ([(r.status, r.json, r.header("Retry-After") is None)
                          for r in tries[email]]
                         for email in ("probe@acme.test", "ghost@acme.test"))
        self.assertEqual(real, unknown)
        self.assertEqual([status for status, _, _ in real], [401] * 5 + [429])
        self.assertRetryAfter(tries["ghost@acme.test"][-1], 0, 60)

    def test_guessing_unknown_emails_stores_nothing_but_logs_each(self):
        # Anyone may guess: what has no account to be audited in must not grow the store.
        rows = lambda: self.gw.sql("SELECT COUNT(*) FROM audit_log")[0][0]
        before = rows()
        c = self.gw.client(source="127.0.0.4")
        for i in range(3):
            self.assertEqual(c.login(f"nobody-{i}@acme.test", "wrong password").status, 401)
        self.assertEqual(rows(), before)
        self.assertTrue(self.gw.log_lines("login failed: no user nobody-2@acme.test"))

    def test_a_throttled_client_does_not_lock_the_user_out_elsewhere(self):
        here = self.gw.client()
        for i in range(5):
            self.assertEqual(here.login("roamer@acme.test", f"wrong-{i}-password").status, 401)
        self.assertEqual(here.login("roamer@acme.test").status, 429)
        # The same user, from another client address, logs in.
        elsewhere = self.gw.client(source="127.0.0.2")
        r = elsewhere.login("roamer@acme.test")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(elsewhere.request("GET", "/api/session").status, 200)
        self.assertRetryAfter(here.login("roamer@acme.test"), 0, 60)
        # The Admin still sees the lockout, from where it came.
        events = audit_events(self.gw.logged_in("admin@acme.test"))
        locked = [(e["target"], e["ip"]) for e in events if e["action"] == "user.locked_out"]
        self.assertIn(("roamer@acme.test", "127.0.0.1"), locked)
        logins = [e["ip"] for e in events
                  if e["action"] == "session.login" and e["target"] == "roamer@acme.test"]
        self.assertEqual(logins, ["127.0.0.2"])

    def test_each_failure_after_the_fifth_doubles_the_wait(self):
        c = self.gw.client()
        for i in range(5):
            self.assertEqual(c.login("doubler@acme.test", f"wrong-{i}-password").status, 401)
        self.assertRetryAfter(c.login("doubler@acme.test"), 0, 60)
        self.gw.advance_clock(61)
        self.assertEqual(c.login("doubler@acme.test", "wrong-6-password").status, 401)
        self.assertRetryAfter(c.login("doubler@acme.test"), 60, 120)
        self.gw.advance_clock(121)
        self.assertEqual(c.login("doubler@acme.test").status, 200)

    def test_secrets_stored_only_as_hashes_and_never_logged(self):
        c = self.gw.client()
        c.login("admin@acme.test")
        hashes = [h for (h,) in self.gw.sql("SELECT token_hash FROM sessions")]
        pw = [h for (h,) in self.gw.sql("SELECT password_hash FROM users")]
        self.assertNotIn(c.cookie, hashes)
        self.assertTrue(all(len(h) == 64 for h in hashes))
        self.assertTrue(all(h.startswith("$argon2id$") for h in pw))
        self.assertTrue(self.gw.log_lines("POST /api/session 200"))
        log = self.gw.read_log()
        for secret in (PASSWORD, c.cookie, c.csrf):
            self.assertNotIn(secret, log)


def peak_rss_mib(pid):
    """The most memory the process has held at once (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        line = next(l for l in f if l.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024


class PasswordCheckBoundTest(unittest.TestCase):
    """argon2id takes 64 MiB per password check: a burst of logins must not take the
    daemon's memory with it, and one client must not go on guessing email after email."""

    def setUp(self):
        self.gw = Gateway().init("acme", "admin@acme.test").start()

    def tearDown(self):
        self.gw.cleanup()

    def test_a_burst_of_logins_with_unknown_emails_is_bounded_in_memory(self):
        # Before the bound, 16 of these took the daemon from 31 MB to 830 MB.
        n = 24
        before = peak_rss_mib(self.gw.proc.pid)
        start = threading.Barrier(n)

        def attempt(i):
            c = self.gw.client()
            start.wait()
            began = time.monotonic()
            r = c.login(f"nobody-{i}@acme.test", "wrong password")
            r.elapsed = time.monotonic() - began
            return r

        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(attempt, range(n)))
        grown = peak_rss_mib(self.gw.proc.pid) - before
        for r in answers:
            self.assertIn((r.status, r.code), ((401, "invalid_credentials"),
                                               (429, "too_many_attempts"), (503, "busy")))
            if r.status != 401:
                self.assertGreater(int(r.header("Retry-After")), 0)
        self.assertIn(401, [r.status for r in answers])
        self.assertLess(grown, 320, f"peak memory grew by {grown} MiB")
        # Only a few checks wait for a turn (each holds an HTTP thread); the rest are told
        # at once, well before the 2 s a waiting check may take. (On a quick machine the
        # checks may all get a turn in time, and none is told busy.)
        busy = [r.elapsed for r in answers if r.status == 503]
        if busy:
            self.assertLess(min(busy), 1.5, busy)
        self.assertEqual(self.gw.client().login("admin@acme.test").status, 200)

    def test_one_client_guessing_many_emails_is_throttled(self):
        c = self.gw.client()
        for i in range(60):
            r = c.login(f"guess-{i}@acme.test", "wrong password")
            if r.status != 401:
                break
        self.assertEqual((r.status, r.code), (429, "too_many_attempts"), f"try {i + 1}")
        self.assertGreater(int(r.header("Retry-After")), 0)
        self.assertEqual(i, 50)
        # The right password too, from that client; another client is not held back.
        self.assertEqual(c.login("admin@acme.test").status, 429)
        self.assertEqual(self.gw.client(source="127.0.0.2").login("admin@acme.test").status,
                         200)

    def test_a_check_taken_back_takes_its_wait_back(self):
        # The 50th check of a client starts its wait when it is counted; when it turns out
        # to be the right password, that check, and so the wait, is taken back.
        c = self.gw.client(source="127.0.0.3")
        for i in range(49):
            self.assertEqual(c.login(f"other-{i}@acme.test", "wrong password").status, 401)
        for _ in range(2):
            r = c.login("admin@acme.test")
            self.assertEqual(r.status, 200, r.raw)


class TrustedProxyTest(unittest.TestCase):
    """Behind a reverse proxy every request comes from the proxy: with [server]
    trusted_proxies the client is the address the proxy appended to X-Forwarded-For, so
    throttles, the audit and the log name the real client; from anyone else the header is
    ignored, so no client can pick an address of its own."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init()
        ini = os.path.join(cls.gw.tmp, "proxy.ini")
        with open(ini, "w") as f:
            f.write("[server]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8\n")
        cls.gw.extra_args = ["--config", ini]
        cls.gw.add_user("acme", "roamer@acme.test", "technical")
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def login(self, source, forwarded, password="wrong password"):
        c = self.gw.client(source=source)
        return c.request("POST", "/api/session",
                         {"account": "acme", "email": "roamer@acme.test",
                          "password": password},
                         headers={"X-Forwarded-For": forwarded})

    def test_the_forwarded_client_is_throttled_not_the_proxy(self):
        for i in range(5):
            self.assertEqual(self.login("127.0.0.1", "198.51.100.7").status, 401)
        r = self.login("127.0.0.1", "198.51.100.7", PASSWORD)
        self.assertEqual(r.status, 429, r.raw)
        # Another client behind the same proxy is not held back (what it wrote itself,
        # left of what the proxies appended, is not believed).
        r = self.login("127.0.0.1", "198.51.100.7, 198.51.100.8, 10.0.0.3", PASSWORD)
        self.assertEqual(r.status, 200, r.raw)
        self.assertTrue(self.gw.log_lines("ip=198.51.100.7"))

    def test_a_client_that_is_no_proxy_cannot_name_its_address(self):
        for i in range(5):
            self.assertEqual(self.login("127.0.0.2", f"203.0.113.{i}").status, 401)
        self.assertEqual(self.login("127.0.0.2", "203.0.113.99", PASSWORD).status, 429)

    def test_a_list_that_is_not_addresses_stops_the_start(self):
        ini = os.path.join(self.gw.tmp, "bad-proxy.ini")
        with open(ini, "w") as f:
            f.write("[server]\ntrusted_proxies = 127.0.0.1, proxy.internal\n")
        r = cli("serve", *self.gw.store_args, "--config", ini, "--listen", "127.0.0.1:1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("trusted_proxies", r.stderr)
        self.assertIn("proxy.internal", r.stderr)


class SecureCookieTest(unittest.TestCase):
    def test_https_public_url_marks_the_cookie_secure_and_sigterm_stops_cleanly(self):
        gw = Gateway(["--public-url", "https://mail.acme.test"]).init()
        try:
            gw.start()
            r = gw.client().login("admin@acme.test")
            self.assertEqual(r.status, 200)
            self.assertIn("Secure", r.header("Set-Cookie"))
            self.assertEqual(gw.stop(), 0)
            self.assertIn("postern stopped", gw.read_log())
        finally:
            gw.cleanup()


if __name__ == "__main__":
    main()
