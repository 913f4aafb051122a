"""The send API in both dialects against the real daemon: API keys, validation with field
paths, header injection, every policy reason in DESIGN.md's order, drops and stats, and
policy changes (API and CLI) taking effect on the very next request."""
import gzip
import json
import unittest

from harness import (POSTGRES, Gateway, add_senders, cli, main, must, raw_http, send_body,
                     wait_until)

NETCORE = "/v5/mail/send"
SENDGRID = "/v3/mail/send"


def body(sender="news@acme.test", **fields):
    """This suite's request: both parties named, a text and an HTML part."""
    return send_body(sender, name="Acme News", to_name="Bob", text="Hi there",
                     html="<p>Hi there</p>", **fields)


class SendCase(unittest.TestCase):
    """One daemon; each scenario gets its own account so switches do not collide."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.keys = {}
        for name in ("strict", "globex", "order"):
            cls.gw.add_account(name, f"admin@{name}.test")
        for account, domain, flags in (
                ("acme", "acme.test", ["--verified"]),
                ("acme", "pending.test", []),
                ("acme", "off.test", ["--verified", "--inactive"]),
                ("acme", "bücher.example", ["--verified"]),
                ("strict", "strict.test", ["--verified"]),
                ("globex", "globex.test", ["--verified"]),
                ("order", "order.test", ["--verified"]),
                ("order", "pending-order.test", [])):
            cls.gw.add_domain(account, domain, *flags)
        for account in ("acme", "strict", "globex", "order"):
            cls.keys[account] = cls.gw.create_key(account, "test")
        cls.gw.start()
        cls.admins = {}
        for account in ("acme", "strict", "globex", "order"):
            c = cls.gw.client()
            assert c.login(f"admin@{account}.test").status == 200
            cls.admins[account] = c

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def send(self, path, payload, account="acme", key=None, header="bearer", raw=None):
        key = key if key is not None else self.keys[account]
        h = {"api_key": key} if header == "api_key" else {"Authorization": "Bearer " + key}
        return self.gw.client().request("POST", path, payload, headers=h, raw=raw)

    def assertRefused(self, r, path, status, code, field=None):
        self.assertEqual(r.status, status, r.raw)
        if path == SENDGRID:
            err, = r.json["errors"]
            self.assertIn("help", err)
            self.assertIsNone(err["help"])
            self.assertEqual(err["field"], field)
        else:
            self.assertEqual(r.json["status"], "error")
            err, = r.json["error"]
            self.assertEqual(err.get("field"), field)
        self.assertEqual(err["code"], code)
        self.assertTrue(err["message"])
        return err

    def assertAccepted(self, r, path):
        if path == SENDGRID:
            self.assertEqual(r.status, 202, r.raw)
            self.assertEqual(r.raw, b"")
            mid = r.header("X-Message-Id")
        else:
            self.assertEqual(r.status, 200, r.raw)
            self.assertEqual(r.json["status"], "success")
            self.assertEqual(r.json["message"], "OK")
            mid = r.json["data"]["message_id"]
        self.assertRegex(mid, r"^[0-9a-f]{32}$")
        return mid

    def check(self, payload, field, paths=(NETCORE, SENDGRID)):
        """payload is refused as invalid at field on each path, and nothing is queued."""
        before = self.messages()
        for path in paths:
            with self.subTest(path=path, field=field):
                self.assertRefused(self.send(path, payload), path, 400, "invalid_request",
                                   field)
        self.assertEqual(self.messages(), before, "a refused request was queued")

    def db(self, sql, *args):
        return self.gw.sql(sql, *args)

    def messages(self):
        return self.db("SELECT COUNT(*) FROM messages")[0][0]

    def enable(self, account, on=True):
        r = self.admins[account].request("PUT", "/api/settings/sender-auth",
                                         {"enabled": on, "password": "correct horse battery"})
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def add_senders(self, account, *addresses, verify=()):
        return add_senders(self.admins[account], *addresses, verify=verify)


class ApiKeyTest(SendCase):
    def test_missing_wrong_and_malformed_keys_are_401_in_each_dialect(self):
        for path in (NETCORE, "/v6/mail/send", SENDGRID):
            for key in ("", "pst_" + "A" * 43, "not-a-key", self.keys["acme"] + "x"):
                with self.subTest(path=path, key=key):
                    self.assertRefused(self.send(path, body(), key=key), path, 401,
                                       "invalid_api_key")
            r = self.gw.client().request("POST", path, body())
            self.assertRefused(r, path, 401, "invalid_api_key")

    def test_the_api_key_header_works_too(self):
        self.assertAccepted(self.send(NETCORE, body(), header="api_key"), NETCORE)

    def test_a_session_cookie_is_not_an_api_key(self):
        admin = self.admins["acme"]
        r = admin.request("POST", NETCORE, body())
        self.assertRefused(r, NETCORE, 401, "invalid_api_key")


class AcceptTest(SendCase):
    def test_accepted_messages_are_queued_before_the_answer(self):
        before = self.messages()
        mid = self.assertAccepted(self.send(NETCORE, body()), NETCORE)
        sg = self.assertAccepted(self.send(SENDGRID, body()), SENDGRID)
        v6 = self.assertAccepted(self.send("/v6/mail/send", body()), "/v6/mail/send")
        self.assertEqual(self.messages(), before + 3)
        (status, sender, recipients, payload), = self.db(
            "SELECT status, from_addr, recipients, payload FROM messages WHERE uid = ?", mid)
        self.assertEqual((sender, recipients), ("news@acme.test", 1))
        self.assertIn(status, ("queued", "sending", "sent"))  # delivery may have begun
        p = json.loads(payload)
        self.assertEqual(p["from"], {"email": "news@acme.test", "name": "Acme News"})
        self.assertEqual(p["content"], {"text": "Hi there", "html": "<p>Hi there</p>"})
        self.assertEqual(p["personalizations"][0]["to"],
                         [{"email": "bob@example.com", "name": "Bob"}])
        self.assertEqual(len({mid, sg, v6}), 3)

    def test_from_is_normalized_case_and_idn(self):
        mid = self.assertAccepted(self.send(NETCORE, body("News@ACME.Test")), NETCORE)
        self.assertEqual(self.db("SELECT from_addr FROM messages WHERE uid = ?", mid),
                         [("news@acme.test",)])
        mid = self.assertAccepted(self.send(SENDGRID, body("info@BÜCHER.example")), SENDGRID)
        self.assertEqual(self.db("SELECT from_addr FROM messages WHERE uid = ?", mid),
                         [("info@xn--bcher-kva.example",)])

    def test_a_sendgrid_client_payload_with_extras_is_accepted(self):
        b = body(reply_to={"email": "support@acme.test", "name": "Support"},
                 categories=["welcome"], custom_args={"user": "42"},
                 tracking_settings={"click_tracking": {"enable": False}},
                 headers={"X-Campaign": "spring"},
                 attachments=[{"content": "aGVsbG8=", "filename": "a.txt",
                               "type": "text/plain", "disposition": "attachment"}])
        b["personalizations"][0]["cc"] = [{"email": "carol@example.com"}]
        b["personalizations"][0]["bcc"] = [{"email": "dave@example.com"}]
        mid = self.assertAccepted(self.send(SENDGRID, b), SENDGRID)
        (recipients, payload), = self.db(
            "SELECT recipients, payload FROM messages WHERE uid = ?", mid)
        self.assertEqual(recipients, 3)
        p = json.loads(payload)
        self.assertEqual(p["tags"], ["welcome"])
        self.assertEqual(p["headers"], {"X-Campaign": "spring"})
        self.assertEqual(p["attachments"][0]["filename"], "a.txt")


class ValidationTest(SendCase):
    def test_fields_at_fault_are_named(self):
        self.check({k: v for k, v in body().items() if k != "from"}, "from")
        self.check(body("not-an-address"), "from.email")
        bad_rcpt = body()
        bad_rcpt["personalizations"][0]["to"].append({"email": "nope"})
        self.check(bad_rcpt, "personalizations[0].to[1].email")
        self.check(body(personalizations=[]), "personalizations")
        self.check(body(content=[{"type": "text/markdown", "value": "x"}]), "content[0].type")
        self.check(body(subject=None), "subject")
        many = body(personalizations=[{"to": [{"email": f"r{i}@example.com"}
                                              for i in range(1001)]}])
        self.check(many, "personalizations[0].to[1000]")

    def test_line_breaks_never_become_headers(self):
        self.check(body(subject="Hi\r\nBcc: victim@example.com"), "subject")
        self.check(body(subject="Hi\nX-Injected: 1"), "subject")
        named = body()
        named["from"]["name"] = "Acme\r\nBcc: victim@example.com"
        self.check(named, "from.name")
        self.check(body(headers={"X-Note": "a\r\nBcc: victim@example.com"}), "headers.X-Note")
        per = body()
        per["personalizations"][0]["subject"] = "x\rBcc: v@example.com"
        self.check(per, "personalizations[0].subject")

    def test_identity_headers_are_refused(self):
        for name in ("From", "Sender", "Return-Path", "DKIM-Signature", "from",
                     "Content-Disposition", "Resent-From", "Received"):
            self.check(body(headers={name: "ceo@acme.test"}), f"headers.{name}")

    def test_headers_receivers_trust_are_refused(self):
        for name in ("Authentication-Results", "ARC-Seal", "ARC-Message-Signature",
                     "arc-authentication-results", "Received-SPF", "DKIM-Signature",
                     "DomainKey-Signature", "X-Original-From"):
            self.check(body(headers={name: "mx.example.com; dkim=pass; spf=pass"}),
                       f"headers.{name}")
            per = body()
            per["personalizations"][0]["headers"] = {name: "pass"}
            self.check(per, f"personalizations[0].headers.{name}")

    def test_control_characters_never_reach_a_header(self):
        # What a mail client shows is the decoded header, so the rule is about characters,
        # not about how they would be encoded: C0 but TAB, DEL and C1 are refused. (A JSON
        # \u0000 never reaches send.c: cJSON ends the string there.)
        for c in ("\x01", "\x1b", "\x7f", "\x85", "\x9b"):
            with self.subTest(char=hex(ord(c))):
                self.check(body(subject="Hi" + c), "subject")
                named = body()
                named["from"]["name"] = "Acme" + c + "News"
                self.check(named, "from.name")
                to = body()
                to["personalizations"][0]["to"][0]["name"] = "Bob" + c
                self.check(to, "personalizations[0].to[0].name")
                self.check(body(reply_to={"email": "help@acme.test", "name": c}),
                           "reply_to.name")
                self.check(body(headers={"X-Note": "a" + c + "b"}), "headers.X-Note")
                att = {"name": "a" + c + ".pdf", "filename": "a" + c + ".pdf",
                       "content": "aGVsbG8="}
                self.check(body(attachments=[att]), "attachments[0].name", paths=(NETCORE,))
                self.check(body(attachments=[att]), "attachments[0].filename",
                           paths=(SENDGRID,))
        self.assertAccepted(self.send(NETCORE, body(subject="tab\there")), NETCORE)

    def test_file_names_may_not_spell_encoded_words(self):
        att = {"name": "=?utf-8?q?invoice=0D=0A.exe?=", "filename": "=?utf-8?q?x?=.pdf",
               "content": "aGVsbG8="}
        self.check(body(attachments=[att]), "attachments[0].name", paths=(NETCORE,))
        self.check(body(attachments=[att]), "attachments[0].filename", paths=(SENDGRID,))

    def test_content_id_is_a_message_id(self):
        for cid in ("x> From: <y", "a b", "<a@b", "a@b@c", "a..b"):
            att = {"name": "logo.png", "filename": "logo.png", "content": "aGVsbG8=",
                   "disposition": "inline", "content_id": cid}
            self.check(body(attachments=[att]), "attachments[0].content_id")
        for cid in ("ii_139db99fdb5c3704", "logo@example.com", "<logo@example.com>"):
            att = {"name": "logo.png", "filename": "logo.png", "content": "aGVsbG8=",
                   "disposition": "inline", "content_id": cid}
            for path in (NETCORE, SENDGRID):
                self.assertAccepted(self.send(path, body(attachments=[att])), path)

    def test_malformed_json_and_non_objects(self):
        for path in (NETCORE, SENDGRID):
            self.assertRefused(self.send(path, None, raw="{"), path, 400, "invalid_json")
            self.assertRefused(self.send(path, None, raw="[]"), path, 400, "invalid_request")
            self.assertRefused(self.send(path, None, raw=""), path, 400, "invalid_request")

    def test_hostile_sizes_and_shapes_are_clear_4xx_and_harmless(self):
        many = body(personalizations=[{"to": [{"email": f"r{i}@example.com"}
                                              for i in range(10000)]}])
        self.check(many, "personalizations[0].to[1000]")
        deep = "[" * 5000 + "]" * 5000
        for path in (NETCORE, SENDGRID):
            self.assertRefused(self.send(path, None, raw='{"from":' + deep + "}"), path, 400,
                               "invalid_json")
        huge_name = body()
        huge_name["from"]["name"] = "x" * 100000
        self.check(huge_name, "from.name")
        # The daemon is unaffected.
        self.assertAccepted(self.send(NETCORE, body()), NETCORE)

    def test_unsupported_sendgrid_features_are_refused_not_ignored(self):
        self.check(body(template_id="d-123"), "template_id", paths=(SENDGRID,))
        self.check(body(send_at="tomorrow"), "send_at", paths=(SENDGRID,))  # not Unix seconds

    def test_body_over_10_mib_is_413_in_the_dialect(self):
        for path, shape in ((NETCORE, '"status":"error"'), (SENDGRID, '"errors":[')):
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {self.keys['acme']}\r\n"
                    f"Content-Length: {10 * 1024 * 1024 + 1}\r\n\r\n").encode()
            answer = raw_http(self.gw.port, head)
            self.assertRegex(answer, r"^HTTP/1\.1 413 ")
            self.assertIn('"code":"payload_too_large"', answer)
            self.assertIn(shape, answer)


class PolicyTest(SendCase):
    def test_domain_reasons_while_the_feature_is_off(self):
        for path in (NETCORE, SENDGRID):
            for sender, code in (("a@other.test", "domain_not_approved"),
                                 ("a@mail.acme.test", "domain_not_approved"),
                                 ("a@pending.test", "domain_not_verified"),
                                 ("a@off.test", "domain_inactive")):
                with self.subTest(path=path, sender=sender):
                    self.assertRefused(self.send(path, body(sender)), path, 403, code,
                                       "from.email")
            self.assertAccepted(self.send(path, body("anyone@acme.test")), path)

    def test_sender_reasons_in_order_once_the_feature_is_on(self):
        state = self.enable("strict")
        self.assertEqual(state["warning"], "no_authorized_senders")
        # On, nothing verified: everything is dropped, whatever the domain.
        for sender in ("a@strict.test", "a@nowhere.test"):
            for path in (NETCORE, SENDGRID):
                self.assertRefused(self.send(path, body(sender), "strict"), path, 403,
                                   "sender_auth_no_senders")
        self.add_senders("strict", "news@strict.test", "ops@strict.test",
                         verify=("ops@strict.test",))
        for path in (NETCORE, SENDGRID):
            for sender, code in (("news@strict.test", "sender_pending_verification"),
                                 ("other@strict.test", "sender_not_authorized"),
                                 ("ops+x@strict.test", "sender_not_authorized"),
                                 ("ops@elsewhere.test", "domain_not_approved")):
                with self.subTest(path=path, sender=sender):
                    self.assertRefused(self.send(path, body(sender), "strict"), path, 403,
                                       code, "from.email")
            self.assertAccepted(self.send(path, body("OPS@Strict.TEST"), "strict"), path)

    def test_domain_is_checked_before_the_sender(self):
        self.enable("order")
        ids = self.add_senders("order", "a@order.test", "b@pending-order.test",
                               verify=("a@order.test",))
        self.assertIn("b@pending-order.test", ids)
        admin = self.admins["order"]
        admin.request("POST", f"/api/senders/{ids['b@pending-order.test']}/verify")
        # Verified address, pending domain: the domain wins.
        self.assertRefused(self.send(NETCORE, body("b@pending-order.test"), "order"), NETCORE,
                           403, "domain_not_verified", "from.email")
        self.assertAccepted(self.send(NETCORE, body("a@order.test"), "order"), NETCORE)

    def test_another_accounts_domains_do_not_count(self):
        self.assertRefused(self.send(NETCORE, body("ceo@acme.test"), "globex"), NETCORE, 403,
                           "domain_not_approved", "from.email")
        self.assertAccepted(self.send(NETCORE, body("ceo@globex.test"), "globex"), NETCORE)


class DropsTest(SendCase):
    def test_every_refusal_is_counted_and_listed_per_account(self):
        stats = lambda a: self.admins[a].request("GET", "/api/stats").json
        before = stats("globex")
        for _ in range(3):
            self.send(NETCORE, body("spoof@bank.test"), "globex")
        self.send(SENDGRID, body("spoof@bank.test"), "globex")
        self.assertAccepted(self.send(NETCORE, body("ok@globex.test"), "globex"), NETCORE)
        after = stats("globex")
        self.assertEqual(after["dropped"]["domain_not_approved"],
                         before["dropped"]["domain_not_approved"] + 4)
        self.assertEqual(after["accepted"], before["accepted"] + 1)
        self.assertEqual(set(after["dropped"]), {
            "sender_auth_no_senders", "domain_not_approved", "domain_not_verified",
            "domain_inactive", "sender_not_authorized", "sender_pending_verification"})
        drops = self.admins["globex"].request("GET", "/api/drops?limit=10").json["drops"]
        row = next(d for d in drops if d["from"] == "spoof@bank.test")
        self.assertEqual(row["reason"], "domain_not_approved")
        self.assertGreaterEqual(row["count"], 4)
        self.assertIsInstance(row["key_id"], int)
        self.assertRegex(row["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$")
        # Nothing of globex's shows up for acme.
        acme = self.admins["acme"].request("GET", "/api/drops?limit=1000").json["drops"]
        self.assertNotIn("spoof@bank.test", [d["from"] for d in acme])

    def test_a_flood_is_aggregated_not_one_row_per_refusal(self):
        for _ in range(50):
            self.send(NETCORE, body("flood@bank.test"), "acme")
        self.admins["acme"].request("GET", "/api/stats")  # flushes the counters
        rows = self.db("SELECT COUNT(*), SUM(count) FROM drops WHERE from_addr = ?",
                       "flood@bank.test")[0]
        self.assertLessEqual(rows[0], 2)  # a minute boundary may split it in two
        self.assertEqual(rows[1], 50)


class PolicyChangeTest(SendCase):
    def test_api_changes_apply_to_the_next_request(self):
        admin = self.admins["globex"]
        ids = self.add_senders("globex", "live@globex.test")
        self.enable("globex")
        try:
            self.assertRefused(self.send(NETCORE, body("live@globex.test"), "globex"), NETCORE,
                               403, "sender_auth_no_senders")
            admin.request("POST", f"/api/senders/{ids['live@globex.test']}/verify")
            self.assertAccepted(self.send(NETCORE, body("live@globex.test"), "globex"), NETCORE)
            self.assertEqual(admin.request(
                "DELETE", f"/api/senders/{ids['live@globex.test']}").status, 204)
            self.assertRefused(self.send(NETCORE, body("live@globex.test"), "globex"), NETCORE,
                               403, "sender_auth_no_senders")
        finally:
            self.enable("globex", False)
        self.assertAccepted(self.send(NETCORE, body("live@globex.test"), "globex"), NETCORE)

    def test_cli_changes_apply_to_the_next_request(self):
        """On SQLite the CLI moves the stamp file the daemon reads: the very next request.
        On PostgreSQL the change reaches the gateway as a notification, like a change made
        on another node: within a second (issue #9), usually a millisecond."""
        self.assertAccepted(self.send(NETCORE, body("x@globex.test"), "globex"), NETCORE)
        for flag, outcome in (("--inactive", "domain_inactive"), ("--active", None),
                              ("--pending", "domain_not_verified"), ("--verified", None)):
            must(cli("domain", "set", *self.gw.store_args, "--account", "globex",
                     "globex.test", flag))
            expected = 403 if outcome else 200
            if POSTGRES:
                wait_until(lambda: self.send(NETCORE, body("x@globex.test"),
                                             "globex").status == expected, 1, 0.01)
            r = self.send(NETCORE, body("x@globex.test"), "globex")
            if outcome:
                self.assertRefused(r, NETCORE, 403, outcome, "from.email")
            else:
                self.assertAccepted(r, NETCORE)


class DomainCliTest(unittest.TestCase):
    def test_domain_commands(self):
        gw = Gateway().init()
        try:
            add = ["domain", "add", *gw.store_args, *gw.key_args, "--account", "acme"]
            set_ = ["domain", "set", *gw.store_args, "--account", "acme"]
            r = cli(*add, "Example.COM")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(cli(*add, "example.com").returncode, 1)
            for args in (["com"], ["1.2.3.4"], ["bad domain"]):
                self.assertEqual(cli(*add, *args).returncode, 2, args)
            self.assertEqual(cli(*set_, "example.com").returncode, 2)
            self.assertEqual(cli(*set_, "example.com", "--active", "--inactive").returncode, 2)
            self.assertEqual(cli(*set_, "nowhere.com", "--active").returncode, 1)
            must(cli(*set_, "example.com", "--verified", "--inactive"))
            rows = gw.sql("SELECT name, status, active FROM sending_domains")
            audit = [a for (a,) in gw.sql("SELECT action FROM audit_log")]
            self.assertEqual(rows, [("example.com", "verified", 0)])
            self.assertIn("domain.added", audit)
            self.assertIn("domain.updated", audit)
        finally:
            gw.cleanup()


def raw_with(payload, *bad):
    """payload as a JSON body with each marker in bad (a string inside it) replaced by a
    raw byte that can start no UTF-8 sequence: what a client with a broken encoder sends."""
    raw = json.dumps(payload, ensure_ascii=False).encode()
    for marker in bad:
        raw = raw.replace(marker.encode(), b"\xff")
    return raw


class Utf8Test(SendCase):
    """Every string a body holds may be stored, and PostgreSQL takes nothing but UTF-8:
    text that is not UTF-8 is refused at the edge, 400 in the route's own dialect, naming
    the field, on every route, and nothing is stored."""

    def test_sends_name_the_field_that_is_not_utf8(self):
        cases = [(NETCORE, body(tags=["BAD"]), "tags[0]"),
                 (SENDGRID, body(categories=["ok", "BAD"]), "categories[1]"),
                 (SENDGRID, body(personalizations=[{"to": [{"email": "bob@example.com",
                                                            "name": "BAD"}]}]),
                  "personalizations[0].to[0].name"),
                 (NETCORE, body(headers={"X-Note": "BAD"}), "headers.X-Note"),
                 (NETCORE, body(headers={"X-BAD": "fine"}), "headers")]
        before = self.messages()
        for path, payload, field in cases:
            with self.subTest(field=field):
                r = self.send(path, None, raw=raw_with(payload, "BAD"))
                err = self.assertRefused(r, path, 400, "invalid_request", field)
                self.assertIn("UTF-8", err["message"])
        self.assertEqual(self.messages(), before, "a refused request was queued")

    def test_an_escaped_nul_is_refused_not_cut_short(self):
        # cJSON would end the string at the NUL: "Hi" would be sent for "Hi\u0000there".
        before = self.messages()
        for path in (NETCORE, SENDGRID):
            raw = json.dumps(body(subject="Hi\u0000there"))
            self.assertIn("\\u0000", raw)
            r = self.send(path, None, raw=raw.encode())
            err = self.assertRefused(r, path, 400, "invalid_request", None)
            self.assertIn("NUL", err["message"])
        # A raw NUL byte is no JSON at all.
        raw = json.dumps(body(subject="Hi~there")).encode().replace(b"~", b"\0")
        self.assertRefused(self.send(NETCORE, None, raw=raw), NETCORE, 400, "invalid_json")
        # A backslash followed by the text u0000 is no NUL, and is sent as written.
        r = self.send(NETCORE, None, raw=json.dumps(body(subject="C:\\u0000")).encode())
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(self.messages(), before + 1)

    def test_management_bodies_are_checked_too(self):
        admin = self.admins["order"]
        keys = len(admin.request("GET", "/api/keys").json["keys"])
        r = admin.request("POST", "/api/keys", raw=raw_with({"name": "BAD"}, "BAD"))
        self.assertEqual(r.status, 400, r.raw)
        self.assertEqual(r.json["error"]["code"], "invalid_request")
        self.assertEqual(r.json["error"]["field"], "name")
        self.assertEqual(len(admin.request("GET", "/api/keys").json["keys"]), keys)
        r = admin.request("POST", "/api/senders",
                          raw=raw_with({"addresses": ["a@order.test", "BAD@order.test"]},
                                       "BAD"))
        self.assertEqual((r.status, r.json["error"]["field"]), (400, "addresses[1]"), r.raw)

    def test_a_path_that_is_not_utf8_is_no_route_and_is_never_audited(self):
        self.gw.add_user("order", "marketer@order.test", "marketing")
        marketer = self.gw.client()
        self.assertEqual(marketer.login("marketer@order.test").status, 200)
        # Refused for the role, this would be audited with the path as its target.
        r = marketer.request("DELETE", "/api/users/%FF")
        self.assertEqual((r.status, r.code), (404, "not_found"), r.raw)
        self.assertEqual(self.db("SELECT COUNT(*) FROM audit_log WHERE target LIKE '%users/%' "
                                 "AND action = 'permission.denied'"), [(0,)])

    def test_cli_refuses_arguments_that_are_not_utf8(self):
        bad = "n\udcffme"  # the byte 0xff in an argument (os.fsencode's surrogateescape)
        for args in (["key", "create", *self.gw.store_args, "--account", "acme", "--name",
                      bad],
                     ["account", "add", *self.gw.store_args, "--account", bad, "--admin",
                      "x@bad.test"],
                     ["domain", "add", *self.gw.store_args, *self.gw.key_args, "--account",
                      "acme", "b\udcff.test"]):
            with self.subTest(command=args[:2]):
                r = cli(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("not valid UTF-8", r.stderr)
        self.assertEqual(self.db("SELECT COUNT(*) FROM accounts WHERE name LIKE 'n%me'"),
                         [(0,)])


class FieldsTest(SendCase):
    """Every field is honoured or refused: a 2xx means nothing was ignored."""

    def stats(self):
        return self.admins["acme"].request("GET", "/api/stats").json

    def message(self, mid):
        r = self.admins["acme"].request("GET", "/api/messages/" + mid)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def test_the_python_clients_nulls_are_absent(self):
        b = body(reply_to=None, template_id=None, attachments=None, tags=None, schedule=None,
                 lint_payload=None, bcc=None, settings={"footer": None, "click_track": None,
                                                        "open_track": False,
                                                        "unsubscribe_track": None,
                                                        "hepf": None})
        b["from"]["name"] = None
        b["personalizations"][0].update(attributes=None, headers=None, attachments=None,
                                        cc=None, bcc=None, token_to=None, token_cc=None,
                                        token_bcc=None)
        b["personalizations"][0]["to"][0]["name"] = None
        self.assertAccepted(self.send(NETCORE, b), NETCORE)

    def test_null_header_values_are_absent(self):
        b = body(headers={"X-A": None, "X-B": "b"})
        b["personalizations"][0]["headers"] = {"X-C": None}
        for path in (NETCORE, SENDGRID):
            self.assertAccepted(self.send(path, b), path)

    def test_unknown_fields_are_refused_in_both_dialects(self):
        self.check(body(priority="high"), "priority")
        b = body()
        b["personalizations"][0]["dynamic_data"] = {"a": "b"}
        self.check(b, "personalizations[0].dynamic_data")
        # A field of the other dialect is unknown too.
        self.check(body(custom_args={"a": "b"}), "custom_args", paths=(NETCORE,))
        self.check(body(settings={"footer": False}), "settings", paths=(SENDGRID,))

    def test_netcore_fields_postern_cannot_honour_are_refused(self):
        self.check(body(template_id=12), "template_id", paths=(NETCORE,))
        for name in ("footer", "click_track", "open_track", "unsubscribe_track", "hepf"):
            self.check(body(settings={name: True}), f"settings.{name}", paths=(NETCORE,))
        self.check(body(lint_payload=True), "lint_payload", paths=(NETCORE,))
        b = body()
        b["personalizations"][0]["token_to"] = "x"
        self.check(b, "personalizations[0].token_to", paths=(NETCORE,))
        b = body()
        b["personalizations"][0]["attributes"] = {"name": ["Ann"]}
        self.check(b, "personalizations[0].attributes.name", paths=(NETCORE,))
        # Attributes are bounded as SendGrid's substitutions are.
        b["personalizations"][0]["attributes"] = {"a": "x" * 6000, "b": "y" * 4000}
        self.check(b, "personalizations[0].attributes", paths=(NETCORE,))
        b["personalizations"][0]["attributes"] = {"a": "x" * 6000, "b": "y" * 3998}
        self.assertAccepted(self.send(NETCORE, b), NETCORE)
        self.check(body(bcc=[{"email": "not an address"}]), "bcc[0].email", paths=(NETCORE,))

    def test_sendgrid_fields_postern_cannot_honour_are_refused(self):
        for field, value in (("template_id", "d-1"), ("sections", {"-s-": "x"}),
                             ("batch_id", "b"), ("asm", {"group_id": 1}),
                             ("ip_pool_name", "main")):
            self.check(body(**{field: value}), field, paths=(SENDGRID,))
        b = body()
        b["personalizations"][0]["dynamic_template_data"] = {"a": 1}
        self.check(b, "personalizations[0].dynamic_template_data", paths=(SENDGRID,))
        b = body()
        b["personalizations"][0]["from"] = {"email": "other@acme.test"}
        self.check(b, "personalizations[0].from", paths=(SENDGRID,))
        for name in ("click_tracking", "open_tracking", "subscription_tracking", "ganalytics"):
            self.check(body(tracking_settings={name: {"enable": True}}),
                       f"tracking_settings.{name}.enable", paths=(SENDGRID,))
        for name in ("bypass_list_management", "bypass_spam_management", "footer"):
            self.check(body(mail_settings={name: {"enable": True}}),
                       f"mail_settings.{name}.enable", paths=(SENDGRID,))
        self.check(body(reply_to={"email": "a@acme.test"},
                        reply_to_list=[{"email": "b@acme.test"}]), "reply_to_list",
                   paths=(SENDGRID,))
        self.check(body(reply_to_list=[]), "reply_to_list", paths=(SENDGRID,))
        self.check(body(reply_to_list=[{"email": f"r{i}@acme.test"} for i in range(1001)]),
                   "reply_to_list", paths=(SENDGRID,))
        b = body()
        b["personalizations"][0]["substitutions"] = {"-a-": "x" * 6000, "-b-": "y" * 4000}
        self.check(b, "personalizations[0].substitutions", paths=(SENDGRID,))
        b = body(subject="Hi -name-")
        b["personalizations"][0]["substitutions"] = {"-name-": "Ann\r\nBcc: x@evil.test"}
        self.check(b, "personalizations[0].substitutions", paths=(SENDGRID,))

    def test_top_level_bcc_counts_toward_the_recipient_limit(self):
        b = body(bcc=[{"email": "audit@acme.test"}])
        b["personalizations"] = [{"to": [{"email": f"r{i}@example.com"} for i in range(500)]},
                                 {"to": [{"email": f"s{i}@example.com"} for i in range(499)]}]
        self.check(b, "bcc", paths=(NETCORE,))
        b["personalizations"][1]["to"].pop()
        mid = self.assertAccepted(self.send(NETCORE, b), NETCORE)
        self.assertEqual(self.message(mid)["recipients"], 1000)

    def test_tags_categories_and_custom_args_are_shown_with_the_message(self):
        mid = self.assertAccepted(self.send(NETCORE, body(tags=["welcome", "spring"])), NETCORE)
        m = self.message(mid)
        self.assertEqual((m["tags"], m["custom_args"]), (["welcome", "spring"], {}))
        self.assertNotIn("personalization_custom_args", m)
        b = body(categories=["receipts"], custom_args={"order": "42"})
        b["personalizations"].append({"to": [{"email": "carol@example.com"}],
                                      "custom_args": {"user": "7"}})
        mid = self.assertAccepted(self.send(SENDGRID, b), SENDGRID)
        m = self.message(mid)
        self.assertEqual(m["tags"], ["receipts"])
        self.assertEqual(m["custom_args"], {"order": "42"})
        self.assertEqual(m["personalization_custom_args"], [{}, {"user": "7"}])
        mid = self.assertAccepted(self.send(SENDGRID, body()), SENDGRID)
        self.assertEqual((self.message(mid)["tags"], self.message(mid)["custom_args"]), ([], {}))

    def test_sandbox_is_checked_completely_and_sends_nothing(self):
        sandbox = {"sandbox_mode": {"enable": True}}
        before, count = self.stats(), self.messages()
        r = self.send(SENDGRID, body(mail_settings=sandbox))
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.raw, b"")
        self.assertIsNone(r.header("X-Message-Id"))
        # A request that would be refused is refused, and counted as the drop it is.
        self.assertRefused(self.send(SENDGRID, body("a@other.test", mail_settings=sandbox)),
                           SENDGRID, 403, "domain_not_approved", "from.email")
        self.check(body(mail_settings=sandbox, template_id="d-1"), "template_id",
                   paths=(SENDGRID,))
        self.assertRefused(self.send(SENDGRID, body(mail_settings=sandbox), key="pst_nope"),
                           SENDGRID, 401, "invalid_api_key")
        after = self.stats()
        self.assertEqual(self.messages(), count)
        self.assertEqual(after["sandbox"], before["sandbox"] + 1)
        self.assertEqual(after["accepted"], before["accepted"])
        self.assertEqual(after["dropped"]["domain_not_approved"],
                         before["dropped"]["domain_not_approved"] + 1)
        self.assertNotIn("sandbox", after["dropped"])
        # It was not refused: the list of refusals does not show it.
        drops = self.admins["acme"].request("GET", "/api/drops?limit=1000").json["drops"]
        self.assertNotIn("sandbox", [d["reason"] for d in drops])
        self.assertIn("domain_not_approved", [d["reason"] for d in drops])
        # Sandbox off is an ordinary send.
        self.assertAccepted(self.send(SENDGRID, body(
            mail_settings={"sandbox_mode": {"enable": False}})), SENDGRID)


class GzipTest(SendCase):
    """Content-Encoding: gzip on the send endpoints: inflated, bounded, refused when bad."""

    def send_gz(self, path, data, encoding="gzip"):
        h = {"Authorization": "Bearer " + self.keys["acme"], "Content-Encoding": encoding}
        return self.gw.client().request("POST", path, headers=h, raw=data)

    def test_a_gzip_body_is_read_as_if_it_were_plain(self):
        for path in (NETCORE, "/v6/mail/send", SENDGRID):
            b = body(subject=f"Compressed for {path}")
            mid = self.assertAccepted(self.send_gz(path, gzip.compress(json.dumps(b).encode())),
                                      path)
            (payload,), = self.db("SELECT payload FROM messages WHERE uid = ?", mid)
            self.assertEqual(json.loads(payload)["subject"], f"Compressed for {path}")
        # "x-gzip" is the same coding (RFC 9110), and two members are one body.
        half = json.dumps(body(subject="Two members")).encode()
        data = gzip.compress(half[:20]) + gzip.compress(half[20:])
        self.assertAccepted(self.send_gz(NETCORE, data, "x-gzip"), NETCORE)

    def test_the_10_mib_bound_holds_after_inflating(self):
        # A few kB that inflate past 10 MiB: refused without keeping it all.
        b = body(subject="big")
        b["content"][0]["value"] = "x" * (10 * 1024 * 1024)
        before = self.messages()
        for path in (NETCORE, SENDGRID):
            r = self.send_gz(path, gzip.compress(json.dumps(b).encode()))
            self.assertRefused(r, path, 413, "payload_too_large")
        self.assertEqual(self.messages(), before)

    def test_a_damaged_stream_is_400_and_other_codings_415(self):
        good = gzip.compress(json.dumps(body()).encode())
        before = self.messages()
        for path in (NETCORE, SENDGRID):
            for data in (good[:-5], good[:10] + bytes(20) + good[30:], json.dumps(body()).encode()):
                self.assertRefused(self.send_gz(path, data), path, 400, "invalid_request")
            for coding in ("br", "deflate", "gzip, br"):
                err = self.assertRefused(self.send_gz(path, good, coding), path, 415,
                                         "unsupported_media_type")
                self.assertIn("gzip", err["message"])
        self.assertEqual(self.messages(), before)
        # The management API reads no compressed bodies at all.
        r = self.admins["acme"].request("POST", "/api/senders", headers={"Content-Encoding": "gzip"},
                                        raw=gzip.compress(b'{"addresses":["a@acme.test"]}'))
        self.assertEqual((r.status, r.code), (415, "unsupported_media_type"))


if __name__ == "__main__":
    main()
