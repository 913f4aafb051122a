"""SMTP submission under the same sender policy as the HTTP API, with Python's smtplib
against the real daemon: every refusal code at MAIL FROM and for the header From after
DATA, envelope against header, the Sender header, malformed messages, drops with the key,
"source" in the message API; and delivery through a real relay (Postfix's smtp-sink):
what a submission server adds and removes, DKIM checked by opendkim, 8-bit content
unchanged, the envelope kept, the delivery-time re-check of every identity, and kill -9
right after a 250."""
import os
import re
import smtplib
import time
import unittest

from harness import (
    Gateway, PASSWORD, POSTGRES, SmtpSink, add_senders, main, send_body, smtp_quit, wait_until)

NETCORE = "/v5/mail/send"
LEASE = 600  # deliver.c LEASE_SECONDS
SMTP = {"auth_without_tls": "yes"}
QUEUED = re.compile(rb"^2\.0\.0 Ok: queued as ([0-9a-f]{32})$")
# The options a client sending 8-bit and UTF-8 content gives (both advertised).
OPTIONS = ["BODY=8BITMIME", "SMTPUTF8"]


def message(sender, *more, to="bob@example.com", subject="Hello", body="Hi there"):
    """A message as a client writes it: CRLF line ends, header fields sender (the From
    value, None for none) and more (whole "Name: value" fields), then the body."""
    fields = ([f"From: {sender}"] if sender is not None else []) + \
        [f"To: {to}", f"Subject: {subject}", *more]
    return ("\r\n".join(fields) + "\r\n\r\n" + body + "\r\n").encode()


class SmtpCase(unittest.TestCase):
    def smtp(self, key):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        self.addCleanup(smtp_quit, s)
        code, reply = s.login("apikey", key)
        self.assertEqual(code, 235, reply)
        return s

    def submit(self, key, mail_from, data, rcpts=("bob@example.com",), options=()):
        """One transaction on a new connection; returns the (code, text) of the reply that
        ended it: MAIL's or RCPT's when it refused, else the one after DATA."""
        s = self.smtp(key)
        code, reply = s.mail(mail_from, list(options))
        if code != 250:
            return code, reply
        for r in rcpts:
            code, reply = s.rcpt(r)
            self.assertEqual(code, 250, reply)
        return s.data(data)

    def assertRefused(self, answer, code):
        self.assertEqual(answer[0], 550, answer)
        self.assertTrue(answer[1].startswith(f"5.7.1 {code}: ".encode()), answer)
        self.assertGreater(len(answer[1]), len(f"5.7.1 {code}: "), answer)

    def assertInvalid(self, answer):
        self.assertEqual(answer[0], 554, answer)
        self.assertTrue(answer[1].startswith(b"5.6.0 invalid_request: "), answer)

    def assertQueued(self, answer):
        self.assertEqual(answer[0], 250, answer)
        m = QUEUED.match(answer[1])
        self.assertTrue(m, answer)
        return m.group(1).decode()


class PolicyTest(SmtpCase):
    """One daemon; each scenario has an account of its own so switches do not collide."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config={"smtp": SMTP}).init("acme", "admin@acme.test")
        accounts = ("strict", "lonely", "globex")
        for name in accounts:
            cls.gw.add_account(name, f"admin@{name}.test")
        for account, domain, flags in (
                ("acme", "acme.test", ["--verified"]),
                ("acme", "pending.test", []),
                ("acme", "off.test", ["--verified", "--inactive"]),
                ("strict", "strict.test", ["--verified"]),
                ("lonely", "lonely.test", ["--verified"]),
                ("globex", "globex.test", ["--verified"])):
            cls.gw.add_domain(account, domain, *flags)
        cls.keys = {a: cls.gw.create_key(a, "smtp") for a in ("acme",) + accounts}
        cls.gw.start()
        cls.admins = {a: cls.gw.logged_in(f"admin@{a}.test") for a in ("acme",) + accounts}
        # strict: sender authorization on, two verified senders and a pending one.
        cls.enable("strict")
        cls.add_senders("strict", "ops@strict.test", "bounce@strict.test", "news@strict.test",
                        verify=("ops@strict.test", "bounce@strict.test"))
        # lonely: on, and nobody authorized yet.
        cls.enable("lonely")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    @classmethod
    def enable(cls, account):
        r = cls.admins[account].request("PUT", "/api/settings/sender-auth",
                                        {"enabled": True, "password": PASSWORD})
        assert r.status == 200, r.raw

    @classmethod
    def add_senders(cls, account, *addresses, verify=()):
        return add_senders(cls.admins[account], *addresses, verify=verify)

    def count(self):
        return self.gw.sql("SELECT COUNT(*) FROM messages")[0][0]

    def test_every_refusal_code_at_mail_from(self):
        for account, sender, code in (
                ("acme", "a@other.test", "domain_not_approved"),
                ("acme", "a@mail.acme.test", "domain_not_approved"),
                ("acme", "a@pending.test", "domain_not_verified"),
                ("acme", "a@off.test", "domain_inactive"),
                ("lonely", "a@lonely.test", "sender_auth_no_senders"),
                ("strict", "news@strict.test", "sender_pending_verification"),
                ("strict", "other@strict.test", "sender_not_authorized"),
                ("strict", "ops@elsewhere.test", "domain_not_approved")):
            with self.subTest(sender=sender):
                s = self.smtp(self.keys[account])
                self.assertRefused(s.mail(sender), code)
                # The session goes on: an allowed sender is taken next.
                ok = {"acme": "a@acme.test", "strict": "ops@strict.test"}.get(account)
                if ok:
                    self.assertEqual(s.mail(ok)[0], 250)

    def test_the_null_sender_is_refused(self):
        s = self.smtp(self.keys["acme"])
        self.assertEqual(s.mail("<>")[0] // 100, 5)

    def test_every_refusal_code_for_the_header_from(self):
        # With nobody authorized the envelope is refused first: sender_auth_no_senders can
        # only be answered at MAIL FROM (above).
        before = self.count()
        for account, envelope, header, code in (
                ("acme", "a@acme.test", "a@other.test", "domain_not_approved"),
                ("acme", "a@acme.test", "a@pending.test", "domain_not_verified"),
                ("acme", "a@acme.test", "a@off.test", "domain_inactive"),
                ("strict", "ops@strict.test", "news@strict.test",
                 "sender_pending_verification"),
                ("strict", "ops@strict.test", "other@strict.test", "sender_not_authorized"),
                ("strict", "ops@strict.test", "Ops <ops@elsewhere.test>",
                 "domain_not_approved")):
            with self.subTest(header=header):
                self.assertRefused(self.submit(self.keys[account], envelope, message(header)),
                                   code)
        self.assertEqual(self.count(), before, "a refused message was queued")

    def test_envelope_and_header_must_both_pass(self):
        key = self.keys["strict"]
        # Envelope authorized, header not: refused after DATA.
        self.assertRefused(self.submit(key, "ops@strict.test", message("eve@strict.test")),
                           "sender_not_authorized")
        # Header authorized, envelope not: refused at MAIL FROM, before any data.
        self.assertRefused(self.submit(key, "eve@strict.test", message("ops@strict.test")),
                           "sender_not_authorized")
        # Both authorized and different: accepted, the header From is the message's from.
        mid = self.assertQueued(self.submit(key, "bounce@strict.test",
                                            message("Ops <OPS@Strict.TEST>")))
        m = self.admins["strict"].request("GET", "/api/messages/" + mid)
        self.assertEqual(m.status, 200, m.raw)
        self.assertEqual((m.json["from"], m.json["source"]), ("ops@strict.test", "smtp"))

    def test_the_sender_header_is_judged_too(self):
        key = self.keys["strict"]
        self.assertRefused(self.submit(key, "ops@strict.test",
                                       message("ops@strict.test", "Sender: eve@strict.test")),
                           "sender_not_authorized")
        self.assertRefused(self.submit(key, "ops@strict.test",
                                       message("ops@strict.test", "Sender: news@strict.test")),
                           "sender_pending_verification")
        self.assertQueued(self.submit(key, "ops@strict.test",
                                      message("ops@strict.test", "Sender: bounce@strict.test")))

    def test_malformed_messages_are_554(self):
        key = self.keys["acme"]
        before = self.count()
        for name, data in (
                ("no From", message(None)),
                ("two From", message("a@acme.test", "From: b@acme.test")),
                ("two addresses", message("a@acme.test, b@acme.test")),
                ("a group", message("Team: a@acme.test;")),
                ("an empty From", message("")),
                ("two Sender", message("a@acme.test", "Sender: a@acme.test",
                                       "Sender: b@acme.test")),
                # What a lenient reader skips, a recipient's may show.
                ("text after the address", message("a@acme.test; evil@other.test")),
                ("a NUL in the From", message("a@acme.test\0 <evil@other.test>")),
                ("a control character", message("a@acme.test\x01 <evil@other.test>"))):
            with self.subTest(name):
                self.assertInvalid(self.submit(key, "a@acme.test", data))
        self.assertEqual(self.count(), before, "a malformed message was queued")

    def test_refusals_are_drops_with_the_key(self):
        key = self.keys["globex"]
        admin = self.admins["globex"]
        key_id = next(k["id"] for k in admin.request("GET", "/api/keys").json["keys"]
                      if k["name"] == "smtp")
        self.assertRefused(self.submit(key, "spoof@bank.test", message("ok@globex.test")),
                           "domain_not_approved")
        self.assertRefused(self.submit(key, "ok@globex.test", message("ceo@bank.test")),
                           "domain_not_approved")
        drops = admin.request("GET", "/api/drops?limit=100").json["drops"]
        got = {(d["from"], d["reason"], d["key_id"]) for d in drops}
        self.assertIn(("spoof@bank.test", "domain_not_approved", key_id), got)
        self.assertIn(("ceo@bank.test", "domain_not_approved", key_id), got)
        # Nothing of globex's shows up for acme.
        acme = self.admins["acme"].request("GET", "/api/drops?limit=1000").json["drops"]
        self.assertNotIn("ceo@bank.test", [d["from"] for d in acme])

    def test_source_tells_smtp_from_api(self):
        key = self.keys["acme"]
        via_smtp = self.assertQueued(self.submit(key, "a@acme.test", message("a@acme.test")))
        r = self.gw.client().request("POST", NETCORE, send_body("a@acme.test"),
                                     headers={"Authorization": "Bearer " + key})
        self.assertEqual(r.status, 200, r.raw)
        via_api = r.json["data"]["message_id"]
        listed = self.admins["acme"].request("GET", "/api/messages?limit=100").json["messages"]
        sources = {m["id"]: m["source"] for m in listed}
        self.assertEqual((sources[via_smtp], sources[via_api]), ("smtp", "api"))
        one = self.admins["acme"].request("GET", "/api/messages/" + via_api).json
        self.assertEqual(one["source"], "api")


class DeliveryTest(SmtpCase):
    """A gateway relaying to a sink; every test gets fresh ones."""

    def setUp(self):
        config = {"smtp": SMTP,
                  "relay": {"retry_base": "1s", "retry_max": "2s", "connections": "2"}}
        self.gw = Gateway(smtp=True, config=config).init("acme", "admin@acme.test")
        self.sink = SmtpSink(os.path.join(self.gw.tmp, "sink"))
        self.gw.relay = f"smtp://127.0.0.1:{self.sink.port}"
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme", "smtp")

    def tearDown(self):
        self.gw.cleanup()
        self.sink.stop()

    def admin(self):
        if not getattr(self, "_admin", None):
            self._admin = self.gw.logged_in("admin@acme.test")
        return self._admin

    def status(self, mid, *statuses, timeout=30):
        get = lambda: self.admin().request("GET", "/api/messages/" + mid).json
        m = wait_until(lambda: (lambda m: m if m["status"] in statuses else None)(get()),
                       timeout=timeout)
        self.assertTrue(m, f"message {mid} never reached {statuses}: {get()}")
        return m

    def raw(self, needle):
        """The message holding needle as the relay received it: smtp-sink's file, with its
        envelope lines (X-Mail-Args, X-Rcpt-Args) first, in CRLF line ends."""
        def find():
            for name in self.sink.complete_files():
                with open(os.path.join(self.sink.dir, name), "rb") as f:
                    data = f.read()
                if needle.encode() in data:
                    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            return None
        data = wait_until(find)
        self.assertTrue(data, f"{needle} not found at the sink")
        return data

    def dkim_records(self):
        domains = self.admin().request("GET", "/api/domains").json["domains"]
        d = next(x for x in domains if x["name"] == "acme.test")
        return {r["name"]: r["value"] for r in d["records"] if r["purpose"] == "dkim"}

    def test_delivered_as_submitted_with_what_submission_adds(self):
        self.sink.start()
        self.gw.start()
        body = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u6771\u4eac\r\n.leading dot\r\nend"
        data = message("J\u00fcrgen <news@acme.test>",
                       "Bcc: secret@example.com,\r\n\thidden@example.com",
                       "Content-Type: text/plain; charset=utf-8",
                       "Content-Transfer-Encoding: 8bit",
                       "MIME-Version: 1.0", "X-Campaign: after the MIME fields",
                       subject="Gr\u00fc\u00dfe", body=body)
        mid = self.assertQueued(self.submit(
            self.key, "bounce@acme.test", data,
            rcpts=("bob@example.com", "secret@example.com"), options=OPTIONS))
        m = self.status(mid, "sent")
        self.assertEqual((m["source"], m["from"], m["recipients"]),
                         ("smtp", "news@acme.test", 2))
        raw = self.raw(mid)
        head = raw.partition(b"\r\n\r\n")[0]
        # The envelope as the client gave it, not the header From.
        self.assertIn(b"X-Mail-Args: <bounce@acme.test>", head)
        rcpts = sorted(re.findall(rb"X-Rcpt-Args: <([^>]*)>", head))
        self.assertEqual(rcpts, [b"bob@example.com", b"secret@example.com"])
        signed = raw[raw.index(b"DKIM-Signature:"):]
        fields = signed.partition(b"\r\n\r\n")[0]
        self.assertNotRegex(fields, rb"(?im)^bcc:")
        self.assertNotIn(b"hidden@example.com", signed)
        # Only the Bcc's own lines are cut, also when MIME fields (which GMime files under
        # the body part, not the message) sit between it and the next field.
        self.assertIn(b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      b"Content-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\n"
                      b"X-Campaign: after the MIME fields", fields)
        self.assertRegex(fields, rb"(?m)^Date: ")
        self.assertIn(f"\r\nMessage-ID: <{mid}@acme.test>\r\n".encode(), signed)
        self.assertIn(b"d=acme.test", fields)
        # 8-bit and UTF-8 bytes unchanged, in the headers and the body.
        self.assertIn("Subject: Gr\u00fc\u00dfe\r\n".encode(), fields)
        self.assertIn("From: J\u00fcrgen <news@acme.test>\r\n".encode(), fields)
        self.assertTrue(signed.partition(b"\r\n\r\n")[2].startswith(body.encode() + b"\r\n"),
                        signed)

        from dkim_verify import verify
        ok, out = verify(signed, self.dkim_records())
        self.assertTrue(ok, out)

    def test_the_clients_own_message_id_and_date_are_kept(self):
        self.sink.start()
        self.gw.start()
        data = message("news@acme.test", "Date: Thu, 01 Jan 2026 10:00:00 +0100",
                       "Message-ID: <own.1@client.example>")
        mid = self.assertQueued(self.submit(self.key, "news@acme.test", data))
        self.status(mid, "sent")
        raw = self.raw("own.1@client.example")
        fields = raw.partition(b"\r\n\r\n")[0]
        self.assertEqual(re.findall(rb"(?im)^message-id:[^\r\n]*", fields),
                         [b"Message-ID: <own.1@client.example>"])
        self.assertEqual(re.findall(rb"(?im)^date:[^\r\n]*", fields),
                         [b"Date: Thu, 01 Jan 2026 10:00:00 +0100"])
        self.assertIn(b"X-Mail-Args: <news@acme.test>", fields)

    def test_every_identity_is_judged_again_at_delivery(self):
        self.gw.start()  # relay down: the messages wait in the queue
        admin = self.admin()
        r = admin.request("POST", "/api/senders", {
            "addresses": ["news@acme.test", "ops@acme.test", "bounce@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        ids = {a["address"]: a["id"] for a in r.json["added"]}
        for sid in ids.values():
            self.assertEqual(admin.request("POST", f"/api/senders/{sid}/verify").status, 200)
        r = admin.request("PUT", "/api/settings/sender-auth",
                          {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)
        # bounce@ is the envelope of one, the Sender of another, the header From of a third.
        dropped = [
            self.assertQueued(self.submit(self.key, "bounce@acme.test",
                                          message("ops@acme.test"))),
            self.assertQueued(self.submit(self.key, "ops@acme.test",
                                          message("ops@acme.test", "Sender: bounce@acme.test"))),
            self.assertQueued(self.submit(self.key, "ops@acme.test",
                                          message("bounce@acme.test")))]
        kept = self.assertQueued(self.submit(self.key, "news@acme.test",
                                             message("ops@acme.test")))
        for mid in dropped + [kept]:
            self.status(mid, "deferred")
        self.assertEqual(admin.request("DELETE", f"/api/senders/{ids['bounce@acme.test']}")
                         .status, 204)
        self.sink.start()
        for mid in dropped:
            m = self.status(mid, "dropped")
            self.assertEqual(m["reason"], "sender_not_authorized")
        self.status(kept, "sent")
        raw = self.raw(kept)
        self.assertIn(b"X-Mail-Args: <news@acme.test>", raw)
        stats = admin.request("GET", "/api/stats").json
        self.assertGreaterEqual(stats["dropped"]["sender_not_authorized"], 3)
        drops = admin.request("GET", "/api/drops?limit=100").json["drops"]
        self.assertIn(("bounce@acme.test", "sender_not_authorized"),
                      {(d["from"], d["reason"]) for d in drops})

    def test_kill_9_right_after_250_then_restart_delivers(self):
        self.gw.start()  # relay down: nothing leaves before the crash
        mid = self.assertQueued(self.submit(self.key, "news@acme.test",
                                            message("news@acme.test")))
        self.gw.kill()
        if POSTGRES:
            # A message claimed when the node died is anyone's again once its lease ends.
            self.gw.advance_clock(LEASE + 1)
        self.sink.start()
        self.gw.start()
        self.status(mid, "sent")
        time.sleep(1.5)  # room for a duplicate to show up if there were one
        got = [m["Message-ID"] for m in self.sink.messages()]
        self.assertEqual(got, [f"<{mid}@acme.test>"])


class StoreFaultTest(SmtpCase):
    """The store failing under a session: a 4xx the client retries, never a 2xx."""

    def setUp(self):
        self.gw = Gateway(smtp=True, config={"smtp": SMTP}).init("acme", "admin@acme.test")
        self.addCleanup(self.gw.cleanup)
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme", "smtp")
        self.gw.start()

    def rename(self, table, to):
        self.gw.sql(f"ALTER TABLE {table} RENAME TO {to}")
        # The stamp moves, so cached policies are read again at once.
        self.gw.sql("UPDATE policy_version SET v = v + 1 WHERE id = 1")
        time.sleep(1)

    def assertUnavailable(self, answer):
        self.assertEqual(answer[0], 451, answer)
        self.assertTrue(answer[1].startswith(b"4.3.0 store_unavailable: "), answer)

    def test_policy_unreadable_at_mail_from_is_451(self):
        s = self.smtp(self.key)
        self.rename("senders", "senders_away")
        self.assertUnavailable(s.mail("news@acme.test"))
        self.rename("senders_away", "senders")
        self.assertEqual(s.mail("news@acme.test")[0], 250)

    def test_a_failed_commit_is_451_and_nothing_is_queued(self):
        s = self.smtp(self.key)
        self.assertEqual(s.mail("news@acme.test")[0], 250)
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        self.rename("messages", "messages_away")
        try:
            self.assertUnavailable(s.data(message("news@acme.test")))
        finally:
            self.rename("messages_away", "messages")
        self.assertEqual(self.gw.sql("SELECT count(*) FROM messages"), [(0,)])
        # The session goes on: the client's retry is accepted.
        self.assertQueued(self.submit(self.key, "news@acme.test", message("news@acme.test")))


if __name__ == "__main__":
    main()
