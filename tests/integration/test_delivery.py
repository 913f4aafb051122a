"""Delivery with a real relay (Postfix's smtp-sink on loopback): what arrives and how it
reads, retries on 4xx and on a relay that is down, failure on 5xx, the delivery-time
policy re-check, kill -9 and restart, and the Verify All email followed to the end."""
import base64
import os
import re
import subprocess
import time
import unittest

from harness import POSTGRES, PASSWORD, Gateway, SmtpSink, main, send_body, wait_until

NETCORE = "/v5/mail/send"
LEASE = 600  # deliver.c LEASE_SECONDS: how long a delivery claim holds


def fast_retry_config(tmp):
    path = os.path.join(tmp, "fast.ini")
    with open(path, "w") as f:
        f.write("[relay]\nretry_base = 1s\nretry_max = 2s\nconnections = 2\n"
                "[mail]\nsystem_from = postern@mail.acme.test\n")
    return path


class Delivery(unittest.TestCase):
    """A gateway relaying to a sink; every test gets fresh ones."""

    def setUp(self):
        self.gw = Gateway().init("acme", "admin@acme.test")
        self.sink = SmtpSink(os.path.join(self.gw.tmp, "sink"))
        self.gw.extra_args = ["--config", fast_retry_config(self.gw.tmp),
                              "--relay", f"smtp://127.0.0.1:{self.sink.port}",
                              "--public-url", "http://127.0.0.1:1"]
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme")

    def tearDown(self):
        self.gw.cleanup()
        self.sink.stop()

    def send(self, payload):
        r = self.gw.client().request("POST", NETCORE, payload,
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(r.status, 200, r.raw)
        return r.json["data"]["message_id"]

    def message(self, mid):
        admin = getattr(self, "admin", None)
        if not admin:
            self.admin = admin = self.gw.client()
            self.assertEqual(admin.login("admin@acme.test").status, 200)
        r = admin.request("GET", "/api/messages/" + mid)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def wait_status(self, mid, *statuses, timeout=30):
        m = wait_until(lambda: (lambda m: m if m["status"] in statuses else None)(
            self.message(mid)), timeout=timeout)
        self.assertTrue(m, f"message {mid} never reached {statuses}: {self.message(mid)}")
        return m

    def restart_sink(self, *extra):
        self.sink.stop()
        self.sink.start(*extra)


class ArrivalTest(Delivery):
    def test_a_message_arrives_as_sent(self):
        self.sink.start()
        self.gw.start()
        pdf = bytes(range(256)) * 4
        mid = self.send({
            "from": {"email": "news@acme.test", "name": "Acme Nachrichten — Ü"},
            "subject": "Grüße aus Köln, 東京",
            "reply_to": "support@acme.test",
            "content": [{"type": "text/plain", "value": "Hallo Bob, schön dich zu sehen."},
                        {"type": "html", "value": "<p>Hallo <b>Bob</b></p>"}],
            "personalizations": [{"to": [{"email": "bob@example.com", "name": "Bob"}],
                                  "cc": [{"email": "carol@example.com"}],
                                  "bcc": [{"email": "secret@example.com"}]}],
            "headers": {"X-Campaign": "winter"},
            "attachments": [{"name": "report.pdf",
                             "content": base64.b64encode(pdf).decode()}]})
        msgs = self.sink.wait_for(lambda m: len(m) >= 1)
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["X-Mail-Args"], "<news@acme.test>")
        self.assertEqual(sorted(m.get_all("X-Rcpt-Args")),
                         ["<bob@example.com>", "<carol@example.com>", "<secret@example.com>"])
        self.assertEqual(m["Subject"], "Grüße aus Köln, 東京")
        self.assertEqual(m["From"].addresses[0].display_name, "Acme Nachrichten — Ü")
        self.assertEqual(m["From"].addresses[0].addr_spec, "news@acme.test")
        self.assertIn("bob@example.com", str(m["To"]))
        self.assertIn("carol@example.com", str(m["Cc"]))
        self.assertIsNone(m["Bcc"])
        self.assertNotIn("secret@example.com", str(m).split("Received:")[-1])
        self.assertEqual(m["Reply-To"].addresses[0].addr_spec, "support@acme.test")
        self.assertEqual(m["Message-ID"], f"<{mid}@acme.test>")
        self.assertEqual(m["X-Campaign"], "winter")
        self.assertIsNotNone(m["Date"])
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        body = m.get_body(("plain",))
        self.assertIn("schön dich zu sehen", body.get_content())
        self.assertEqual(m.get_body(("html",)).get_content().strip(), "<p>Hallo <b>Bob</b></p>")
        att, = list(m.iter_attachments())
        self.assertEqual(att.get_filename(), "report.pdf")
        self.assertEqual(att.get_content(), pdf)

        state = self.wait_status(mid, "sent")
        self.assertRegex(state["last_reply"], r"^250 ")
        self.assertEqual(state["attempts"], 1)
        self.assertEqual(state["rejected"], [])

    def test_encoded_words_and_bare_crs_arrive_as_written(self):
        # Text that spells encoded words is shown as written, not decoded into a NUL, a line
        # break or a second From; each name fits one encoded word, as Python before
        # gh-128110 keeps the space between two words of a name.
        self.sink.start()
        self.gw.start()
        forged = "=?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmNvbQA=?="
        subject = ("=?utf-8?q?Hello=0D=0AFrom:_ceo@bank.com?= and a long subject with "
                   "Grüße =?x?b?AA==?= that needs several encoded words to carry it")
        note = "=?utf-8?q?a=0D=0ABcc:_victim@example.com?="
        to_name, cc_name, reply_name = "Bob =?utf-8?q?=00?= Smith", "=?", "=?us-ascii?q?Help=0A?="
        text = "line1\r.\rMAIL FROM:<ceo@bank.com>\rRCPT TO:<x@example.com>\r\nend\n"
        html = "<p>a</p>\r.\r<p>b</p>"
        self.send({
            "from": {"email": "news@acme.test", "name": forged},
            "subject": subject,
            "reply_to": {"email": "help@acme.test", "name": reply_name},
            "content": [{"type": "text/plain", "value": text}, {"type": "html", "value": html}],
            "personalizations": [{"to": [{"email": "bob@example.com", "name": to_name}],
                                  "cc": [{"email": "carol@example.com", "name": cc_name}]}],
            "headers": {"X-Note": note}})
        m, = self.sink.wait_for(lambda m: len(m) >= 1)
        self.assertEqual(len(m.get_all("From")), 1)
        self.assertEqual(m["From"].addresses[0].display_name, forged)
        self.assertEqual(m["From"].addresses[0].addr_spec, "news@acme.test")
        self.assertEqual(m["To"].addresses[0].display_name, to_name)
        self.assertEqual(m["Cc"].addresses[0].display_name, cc_name)
        self.assertEqual(m["Reply-To"].addresses[0].display_name, reply_name)
        self.assertEqual(str(m["Subject"]), subject)
        self.assertEqual(str(m["X-Note"]), note)
        self.assertIsNone(m["Bcc"])

        # No bare CR (or LF) left the gateway: every line end arrived as a line end.
        name, = self.sink.complete_files()
        with open(os.path.join(self.sink.dir, name), "rb") as f:
            raw = f.read()
        self.assertNotIn(b"\r", raw.replace(b"\r\n", b""))
        self.assertNotIn(b"MAIL FROM:<ceo@bank.com>\rRCPT", raw)
        plain = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
        self.assertEqual(plain, "line1\n.\nMAIL FROM:<ceo@bank.com>\nRCPT TO:<x@example.com>\n"
                                "end\n")
        html_got = m.get_body(("html",)).get_content().replace("\r\n", "\n")
        self.assertEqual(html_got, "<p>a</p>\n.\n<p>b</p>\n")

    def test_each_personalization_is_its_own_message(self):
        self.sink.start()
        self.gw.start()
        payload = send_body()
        payload["personalizations"] = [{"to": [{"email": "a@example.com"}], "subject": "For A"},
                                       {"to": [{"email": "b@example.com"}]}]
        mid = self.send(payload)
        msgs = self.sink.wait_for(lambda m: len(m) >= 2)
        by_to = {str(m["To"]): m for m in msgs}
        self.assertEqual(by_to["a@example.com"]["Subject"], "For A")
        self.assertEqual(by_to["b@example.com"]["Subject"], "Hello")
        self.assertEqual(len({m["Message-ID"] for m in msgs}), 2)
        self.wait_status(mid, "sent")


class FieldsArrivalTest(Delivery):
    """What each field of the send request does to the message the relay receives."""

    def send_sendgrid(self, payload):
        r = self.gw.client().request("POST", "/v3/mail/send", payload,
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(r.status, 202, r.raw)
        return r.header("X-Message-Id")

    def by_to(self, count):
        msgs = self.sink.wait_for(lambda m: len(m) >= count)
        self.assertEqual(len(msgs), count)
        return {m["To"].addresses[0].addr_spec: m for m in msgs}

    def test_netcore_attributes_bcc_and_own_attachments(self):
        self.sink.start()
        self.gw.start()
        payload = send_body(subject="Hello [% name %]",
                            text="Hi [%name%], you have [% points %] points.[%missing%]",
                            html="<p>[%name%] &amp; [% html %]</p>",
                            bcc=[{"email": "audit@acme.test", "name": "Audit"}],
                            attachments=[{"name": "terms.txt",
                                          "content": base64.b64encode(b"terms").decode()}])
        payload["personalizations"] = [
            {"to": [{"email": "ann@example.com"}],
             "attributes": {"name": "Ann", "points": 42, "html": "<b>bold</b>"},
             "attachments": [{"name": "ann.txt",
                              "content": base64.b64encode(b"for Ann").decode()}]},
            {"to": [{"email": "bob@example.com"}], "attributes": {"name": "Bob"}}]
        mid = self.send(payload)
        msgs = self.by_to(2)
        ann, bob = msgs["ann@example.com"], msgs["bob@example.com"]
        self.assertEqual(ann["Subject"], "Hello Ann")
        self.assertEqual(ann.get_body(("plain",)).get_content().strip(),
                         "Hi Ann, you have 42 points.")
        # Values go in as given: HTML stays HTML.
        self.assertEqual(ann.get_body(("html",)).get_content().strip(),
                         "<p>Ann &amp; <b>bold</b></p>")
        self.assertEqual(bob["Subject"], "Hello Bob")
        self.assertEqual(bob.get_body(("plain",)).get_content().strip(),
                         "Hi Bob, you have  points.")
        # The top-level bcc is on every message's envelope, never in a header.
        for m in (ann, bob):
            self.assertIn("<audit@acme.test>", m.get_all("X-Rcpt-Args"))
            self.assertIsNone(m["Bcc"])
            self.assertNotIn("audit@acme.test", str(m).split("Received:")[-1])
        # A personalization's attachments follow the shared ones, on its message only.
        self.assertEqual([a.get_filename() for a in ann.iter_attachments()],
                         ["terms.txt", "ann.txt"])
        self.assertEqual(list(ann.iter_attachments())[1].get_content(), b"for Ann")
        self.assertEqual([a.get_filename() for a in bob.iter_attachments()], ["terms.txt"])
        self.assertEqual(self.wait_status(mid, "sent")["recipients"], 4)

    def test_sendgrid_substitutions_and_reply_to_list(self):
        self.sink.start()
        self.gw.start()
        payload = send_body(subject="Order {{order}} for -name-", text="Dear -name-, {{order}}.",
                            to="ann@example.com",
                            reply_to={"email": "help@acme.test", "name": "Help for -name-"})
        payload["personalizations"][0]["substitutions"] = {"-name-": "Ann", "{{order}}": "A-7"}
        self.send_sendgrid(payload)
        m, = self.sink.wait_for(lambda m: len(m) >= 1)
        self.assertEqual(m["Subject"], "Order A-7 for Ann")
        self.assertEqual(m.get_body(("plain",)).get_content().strip(), "Dear Ann, A-7.")
        self.assertEqual(m["Reply-To"].addresses[0].display_name, "Help for Ann")

        payload = send_body(to="bob@example.com", reply_to_list=[
            {"email": "sales@acme.test", "name": "Sales"}, {"email": "support@acme.test"}])
        self.send_sendgrid(payload)
        m = self.by_to(2)["bob@example.com"]
        self.assertEqual(len(m.get_all("Reply-To")), 1)
        self.assertEqual([a.addr_spec for a in m["Reply-To"].addresses],
                         ["sales@acme.test", "support@acme.test"])
        self.assertEqual(m["Reply-To"].addresses[0].display_name, "Sales")

    def test_a_sandbox_request_is_not_delivered(self):
        self.sink.start()
        self.gw.start()
        r = self.gw.client().request(
            "POST", "/v3/mail/send",
            send_body(to="sandbox@example.com", mail_settings={"sandbox_mode": {"enable": True}}),
            headers={"Authorization": "Bearer " + self.key})
        self.assertEqual((r.status, r.raw), (200, b""))
        self.send(send_body(to="real@example.com"))
        msgs = self.sink.wait_for(lambda m: len(m) >= 1)
        self.assertEqual([m["To"].addresses[0].addr_spec for m in msgs], ["real@example.com"])


class RetryTest(Delivery):
    def test_4xx_defers_and_a_later_attempt_succeeds(self):
        self.sink.start("-r", "MAIL")
        self.gw.start()
        mid = self.send(send_body())
        m = self.wait_status(mid, "deferred")
        self.assertRegex(m["last_reply"], r"^4\d\d ")
        self.assertIsNotNone(m["next_attempt_at"])
        self.restart_sink()
        m = self.wait_status(mid, "sent")
        self.assertGreaterEqual(m["attempts"], 2)
        self.assertEqual(len(self.sink.messages()), 1)

    def test_a_relay_that_is_down_then_up_loses_nothing(self):
        self.gw.start()  # the sink is not running yet
        mids = [self.send(send_body(to=f"r{i}@example.com")) for i in range(5)]
        for mid in mids:
            self.wait_status(mid, "deferred")
        self.sink.start()
        for mid in mids:
            self.wait_status(mid, "sent")
        ids = sorted(m["Message-ID"] for m in self.sink.messages())
        self.assertEqual(ids, sorted(f"<{mid}@acme.test>" for mid in mids))

    def test_a_5xx_before_the_recipients_is_the_relays_problem_and_is_retried(self):
        self.sink.start("-f", "MAIL")  # e.g. a relay that wants AUTH, or a policy slip
        self.gw.start()
        mid = self.send(send_body())
        m = self.wait_status(mid, "deferred")
        self.assertRegex(m["last_reply"], r"^5\d\d ")
        self.restart_sink()
        self.wait_status(mid, "sent")

    def test_5xx_fails_and_refused_recipients_are_recorded(self):
        self.sink.start("-f", "RCPT")
        self.gw.start()
        mid = self.send(send_body())
        m = self.wait_status(mid, "failed")
        self.assertEqual(m["reason"], "relay_rejected")
        self.assertRegex(m["last_reply"], r"^5\d\d ")
        self.assertEqual([r["email"] for r in m["rejected"]], ["bob@example.com"])
        self.assertRegex(m["rejected"][0]["reply"], r"^5\d\d ")
        self.assertEqual(self.sink.messages(), [])
        self.sink.stop()
        self.sink.start("-f", ".")
        mid = self.send(send_body())
        m = self.wait_status(mid, "failed")
        self.assertRegex(m["last_reply"], r"^5\d\d ")


class GiveUpAndListTest(Delivery):
    def setUp(self):
        super().setUp()
        path = os.path.join(self.gw.tmp, "giveup.ini")
        with open(path, "w") as f:
            f.write("[relay]\nretry_base = 1s\nretry_max = 1s\ngive_up = 4s\n")
        self.gw.extra_args[1] = path

    def test_a_message_deferred_past_give_up_fails(self):
        self.gw.start()  # relay down for good
        mid = self.send(send_body())
        m = self.wait_status(mid, "failed", timeout=30)
        self.assertEqual(m["reason"], "gave_up")
        self.assertGreaterEqual(m["attempts"], 2)

    def test_listing_by_status(self):
        self.sink.start()
        self.gw.start()
        sent = self.send(send_body())
        self.wait_status(sent, "sent")
        self.sink.stop()
        waiting = self.send(send_body(to="later@example.com"))
        self.wait_status(waiting, "deferred")
        lists = {st: [m["id"] for m in self.admin.request(
            "GET", f"/api/messages?status={st}").json["messages"]]
            for st in ("sent", "deferred", "failed")}
        self.assertIn(sent, lists["sent"])
        self.assertNotIn(waiting, lists["sent"])
        self.assertIn(waiting, lists["deferred"])
        self.assertEqual(lists["failed"], [])
        everything = self.admin.request("GET", "/api/messages?limit=1").json["messages"]
        self.assertEqual([m["id"] for m in everything], [waiting])  # newest first
        r = self.admin.request("GET", "/api/messages?status=lost")
        self.assertEqual((r.status, r.json["error"]["field"]), (400, "status"))
        self.assertEqual(self.admin.request("GET", "/api/messages/" + "0" * 32).status, 404)


class PolicyRecheckTest(Delivery):
    def test_a_sender_removed_while_queued_is_dropped_not_sent(self):
        self.gw.start()  # relay down: the message waits in the queue
        admin = self.gw.client()
        self.assertEqual(admin.login("admin@acme.test").status, 200)
        added = admin.request("POST", "/api/senders",
                              {"addresses": ["news@acme.test", "ops@acme.test"]}).json["added"]
        ids = {a["address"]: a["id"] for a in added}
        for sid in ids.values():
            admin.request("POST", f"/api/senders/{sid}/verify")
        r = admin.request("PUT", "/api/settings/sender-auth",
                          {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200)
        mid = self.send(send_body("news@acme.test"))
        self.wait_status(mid, "deferred")
        self.assertEqual(admin.request("DELETE", f"/api/senders/{ids['news@acme.test']}").status,
                         204)
        self.sink.start()
        m = self.wait_status(mid, "dropped")
        self.assertEqual(m["reason"], "sender_not_authorized")
        ok = self.send(send_body("ops@acme.test"))
        self.wait_status(ok, "sent")
        self.assertEqual([str(x["From"]) for x in self.sink.messages()
                          if not str(x["Subject"]).startswith("Verify sender")],
                         ["ops@acme.test"])
        stats = admin.request("GET", "/api/stats").json
        self.assertGreaterEqual(stats["dropped"]["sender_not_authorized"], 1)


class RestartTest(Delivery):
    def test_kill_9_before_delivery_then_restart_delivers_each_message_once(self):
        self.gw.start()  # relay down
        mids = [self.send(send_body(to=f"k{i}@example.com")) for i in range(20)]
        self.gw.kill()
        if POSTGRES:
            # Other nodes may share a PostgreSQL database: a message claimed when the
            # node died is anyone's again only when its claim's lease has run out.
            self.gw.advance_clock(LEASE + 1)
        self.sink.start()
        self.gw.start()
        for mid in mids:
            self.wait_status(mid, "sent")
        time.sleep(1.5)  # room for a duplicate to show up if there were one
        got = [m["Message-ID"] for m in self.sink.messages()]
        self.assertEqual(sorted(got), sorted(f"<{mid}@acme.test>" for mid in mids))


class VerificationEmailTest(Delivery):
    def setUp(self):
        super().setUp()
        self.gw.add_user("acme", "second-admin@acme.test", "admin")
        self.gw.add_user("acme", "tech@acme.test", "technical")
        self.sink.start()
        self.gw.start()
        self.tech = self.gw.client()
        self.assertEqual(self.tech.login("tech@acme.test").status, 200)

    def verification_mails(self, count):
        msgs = self.sink.wait_for(lambda m: len(m) >= count)
        return [m for m in msgs if str(m["Subject"]).startswith("Verify sender")]

    def link_of(self, mail):
        text = mail.get_body(("plain",)).get_content()
        url = re.search(r"http://127\.0\.0\.1:1(/verify/[A-Za-z0-9_-]{43})", text).group(1)
        html = mail.get_body(("html",)).get_content()
        self.assertIn(url, html)
        return url

    def page(self, method, path):
        r = self.gw.client().request(method, path, raw="" if method == "POST" else None,
                                     headers={"Content-Type":
                                              "application/x-www-form-urlencoded"})
        return r.status, r.raw.decode(), r

    def senders(self):
        return {s["address"]: s for s in
                self.tech.request("GET", "/api/senders").json["senders"]}

    def test_the_link_verifies_the_batch_once(self):
        r = self.tech.request("POST", "/api/senders",
                              {"addresses": ["news@acme.test", "billing@acme.test"]})
        self.assertEqual(r.status, 201)
        mails = self.verification_mails(2)
        self.assertEqual(sorted(str(m["To"]) for m in mails),
                         ["admin@acme.test", "second-admin@acme.test"])
        for m in mails:
            self.assertEqual(m["From"].addresses[0].addr_spec, "postern@mail.acme.test")
            self.assertIn("news@acme.test", m.get_body(("plain",)).get_content())
        link = self.link_of(mails[0])
        self.assertEqual(link, self.link_of(mails[1]))

        status, html, resp = self.page("GET", link)
        self.assertEqual(status, 200)
        self.assertIn("GET /verify/{token} 200", self.gw.log_lines("GET /verify/")[0])
        self.assertNotIn(link, self.gw.read_log())
        self.assertIn("Verify All Emails", html)
        self.assertIn("billing@acme.test", html)
        self.assertIn("default-src 'none'", resp.header("Content-Security-Policy"))
        self.assertEqual({s["status"] for s in self.senders().values()}, {"pending"},
                         "opening the link must change nothing")

        status, html, _ = self.page("POST", link)
        self.assertEqual(status, 200, html)
        self.assertIn("2 verified now", html)
        s = self.senders()
        self.assertEqual((s["news@acme.test"]["status"], s["news@acme.test"]["verified_via"]),
                         ("verified", "link"))
        admin = self.gw.client()
        admin.login("admin@acme.test")
        events = admin.request("GET", "/api/audit?limit=1000").json["events"]
        linked = [e for e in events if e["action"] == "sender.verified"]
        self.assertEqual(len(linked), 2)
        self.assertTrue(all("via=link" in e["detail"] for e in linked))

        for method in ("GET", "POST"):
            status, html, _ = self.page(method, link)
            self.assertEqual(status, 410)
            self.assertIn("token_used", html)

        # The verified senders can send once the protection is on.
        r = admin.request("PUT", "/api/settings/sender-auth",
                          {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200)
        self.send(send_body("news@acme.test"))

    def test_removed_and_already_verified_senders_are_reported(self):
        r = self.tech.request("POST", "/api/senders",
                              {"addresses": ["a@acme.test", "b@acme.test", "c@acme.test"]})
        ids = {a["address"]: a["id"] for a in r.json["added"]}
        link = self.link_of(self.verification_mails(2)[0])
        admin = self.gw.client()
        admin.login("admin@acme.test")
        admin.request("POST", f"/api/senders/{ids['a@acme.test']}/verify")
        admin.request("DELETE", f"/api/senders/{ids['b@acme.test']}")
        status, html, _ = self.page("POST", link)
        self.assertEqual(status, 200)
        self.assertIn("1 verified now, 1 already verified, 1 removed", html)
        s = self.senders()
        self.assertNotIn("b@acme.test", s)
        self.assertEqual(s["c@acme.test"]["status"], "verified")
        self.assertEqual(s["a@acme.test"]["verified_via"], "panel")

    def test_expired_unknown_and_resent_links(self):
        self.tech.request("POST", "/api/senders", {"addresses": ["late@acme.test"]})
        link = self.link_of(self.verification_mails(2)[0])
        self.gw.sql("UPDATE verification_tokens SET expires_at = 1")
        for method in ("GET", "POST"):
            status, html, _ = self.page(method, link)
            self.assertEqual(status, 410)
            self.assertIn("token_expired", html)
        self.assertEqual(self.page("GET", "/verify/" + "x" * 43)[0], 404)
        self.assertEqual(self.page("GET", "/verify/short")[0], 404)

        self.gw.advance_clock(61)  # one verification email per account per minute
        r = self.tech.request("POST", "/api/senders/verification-email")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["addresses"], ["late@acme.test"])
        fresh = [m for m in self.verification_mails(4)]
        links = {self.link_of(m) for m in fresh}
        self.assertEqual(len(links), 2)
        new_link = (links - {link}).pop()
        self.assertEqual(self.page("POST", new_link)[0], 200)
        self.assertEqual(self.senders()["late@acme.test"]["status"], "verified")
        self.gw.advance_clock(61)
        r = self.tech.request("POST", "/api/senders/verification-email")
        self.assertEqual(r.status, 409)
        self.assertEqual(r.code, "no_pending_senders")

    def test_verification_mail_ignores_the_accounts_sender_policy(self):
        admin = self.gw.client()
        admin.login("admin@acme.test")
        r = admin.request("PUT", "/api/settings/sender-auth",
                          {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.json["warning"], "no_authorized_senders")
        self.tech.request("POST", "/api/senders", {"addresses": ["x@acme.test"]})
        self.assertEqual(len(self.verification_mails(2)), 2)


def outbox_gateway():
    """A gateway on the default outbox relay, with acme.test approved and an API key."""
    gw = Gateway().init()
    gw.add_domain("acme", "acme.test", "--verified")
    return gw.start(), gw.create_key("acme")


class OutboxTest(unittest.TestCase):
    def test_the_default_relay_writes_one_eml_file_per_message(self):
        gw, key = outbox_gateway()
        try:
            r = gw.client().request("POST", NETCORE, send_body(),
                                    headers={"Authorization": "Bearer " + key})
            mid = r.json["data"]["message_id"]
            path = os.path.join(gw.tmp, "outbox", mid + ".eml")
            self.assertTrue(wait_until(lambda: os.path.exists(path)), os.listdir(gw.tmp))
            with open(path, "rb") as f:
                raw = f.read()
            self.assertIn(f"Message-Id: <{mid}@acme.test>".encode(), raw.replace(
                b"Message-ID", b"Message-Id"))
            self.assertNotIn(b".tmp", b" ".join(os.fsencode(n) for n in
                                                 os.listdir(os.path.join(gw.tmp, "outbox"))))
        finally:
            gw.cleanup()


class GroupCommitTest(unittest.TestCase):
    def test_concurrent_sends_are_all_stored_and_share_commits(self):
        from concurrent.futures import ThreadPoolExecutor
        gw, key = outbox_gateway()
        try:
            def one(i):
                r = gw.client().request("POST", NETCORE, send_body(to=f"g{i}@example.com"),
                                        headers={"Authorization": "Bearer " + key})
                return r.status, r.json["data"]["message_id"]

            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(one, range(300)))
            self.assertEqual({s for s, _ in results}, {200})
            stored = {u for (u,) in gw.sql("SELECT uid FROM messages")}
            self.assertEqual(stored, {mid for _, mid in results})
            self.assertEqual(gw.stop(), 0)
            line = re.search(r"queue: (\d+) messages in (\d+) commits \(largest (\d+)\)",
                             gw.read_log())
            self.assertIsNotNone(line)
            messages, commits, largest = map(int, line.groups())
            self.assertEqual(messages, 300)
            print(f"\ngroup commit: {messages} messages in {commits} commits, "
                  f"largest {largest}")
        finally:
            gw.cleanup()


class VerificationTokenAtRestTest(Delivery):
    """The Verify All token is a credential: while its email waits in the queue, the store
    holds only its hash and a sealed copy, never the token."""

    def setUp(self):
        super().setUp()
        self.gw.add_user("acme", "tech@acme.test", "technical")
        paused = os.path.join(self.gw.tmp, "paused.ini")
        with open(fast_retry_config(self.gw.tmp)) as f:
            text = f.read()
        with open(paused, "w") as f:
            f.write(text.replace("[relay]\n", "[relay]\npaused = yes\n"))
        # One --config: the harness adds the master key to it on PostgreSQL.
        self.running = list(self.gw.extra_args)
        self.gw.extra_args = [paused if a.endswith("fast.ini") else a for a in self.running]

    def test_the_token_is_not_in_the_store_while_its_email_is_queued(self):
        self.gw.start()
        tech = self.gw.logged_in("tech@acme.test")
        r = tech.request("POST", "/api/senders", {"addresses": ["news@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        self.assertTrue(wait_until(lambda: self.gw.sql(
            "SELECT uid FROM messages WHERE system = 1 AND status = 'queued'")))
        at_rest = self.gw.dump()
        payloads = [p for (p,) in self.gw.sql("SELECT payload FROM messages")]
        self.assertEqual(self.gw.stop(), 0)
        at_rest += self.gw.dump()

        # Delivered now: the token is in the mail, and the link works.
        self.gw.extra_args = self.running
        self.sink.start()
        self.gw.start()
        mail = self.sink.wait_for(lambda m: len(m) >= 1)[0]
        text = mail.get_body(("plain",)).get_content()
        token = re.search(r"/verify/([A-Za-z0-9_-]{43})", text).group(1)
        self.assertIn("news@acme.test", text)
        self.assertIn(token, mail.get_body(("html",)).get_content())
        self.assertEqual(self.gw.client().request("GET", "/verify/" + token).status, 200)

        self.assertFalse(token.encode() in at_rest, "the token is in the store's files")
        for p in payloads:
            self.assertNotIn(token, p)
            self.assertNotIn("/verify/", p)


class TapProxy:
    """A TCP proxy on a free loopback port in front of another one, keeping every byte the
    client sent: what reached the relay, whatever the relay writes down."""

    def __init__(self, port):
        import socket
        import threading
        self.target = port
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        import threading
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, False),
                             daemon=True).start()

    def pump(self, src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record:
                    with self.lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass
            src.close()

    def close(self):
        self.server.close()


class RelayCredentialsTest(Delivery):
    """[relay] username and password never cross the network in clear: without TLS the
    message waits, unless plaintext_auth = yes allows a relay on loopback."""

    def setUp(self):
        super().setUp()
        self.sink.start()
        self.tap = TapProxy(self.sink.port)

    def tearDown(self):
        self.tap.close()
        super().tearDown()

    def relay_with_credentials(self, extra=""):
        path = os.path.join(self.gw.tmp, "auth.ini")
        with open(fast_retry_config(self.gw.tmp)) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("[relay]\n", "[relay]\nusername = postern\n"
                                 "password = s3cret-relay-pw\n" + extra))
        self.gw.extra_args = [path if a.endswith("fast.ini") else a
                              for a in self.gw.extra_args]
        self.gw.extra_args += ["--relay", f"smtp://127.0.0.1:{self.tap.port}"]

    def test_without_tls_the_password_is_not_sent_and_the_message_waits(self):
        self.relay_with_credentials()
        self.gw.start()
        mid = self.send(send_body())
        m = self.wait_status(mid, "deferred")
        self.assertIn("TLS", m["last_reply"])
        self.assertTrue(self.gw.log_lines(f"message {mid} deferred"))
        self.assertIn("TLS", self.gw.log_lines(f"message {mid} deferred")[0])
        time.sleep(1)
        self.assertEqual(self.sink.messages(), [])
        with self.tap.lock:
            sent = bytes(self.tap.sent)
        self.assertIn(b"EHLO", sent)
        self.assertNotIn(b"AUTH", sent.upper())
        self.assertNotIn(base64.b64encode(b"\0postern\0s3cret-relay-pw"), sent)
        self.assertNotIn(b"MAIL FROM", sent.upper())

    def test_plaintext_auth_allows_a_loopback_relay(self):
        self.relay_with_credentials("plaintext_auth = yes\n")
        # smtp-sink answers AUTH with 250, which no client takes for a login: first a
        # sink that offers no AUTH, so the message goes; then one that does, to see the
        # credentials go out in plain text as the operator allowed.
        self.restart_sink("-a")
        self.gw.start()
        mid = self.send(send_body())
        self.wait_status(mid, "sent")
        self.assertEqual(len(self.sink.wait_for(lambda m: len(m) >= 1)), 1)
        with self.tap.lock:
            self.assertNotIn(b"STARTTLS", bytes(self.tap.sent).upper())
        self.restart_sink()
        mid = self.send(send_body(subject="again"))
        self.assertTrue(wait_until(lambda: b"AUTH PLAIN" in bytes(self.tap.sent).upper()))


class SubstitutionArrivalTest(Delivery):
    """Substitution as the relay receives it: Netcore's tags emptied without attributes
    (through /v6/mail/send), SendGrid's values in every Reply-To name."""

    send_sendgrid = FieldsArrivalTest.send_sendgrid
    by_to = FieldsArrivalTest.by_to

    def send_v6(self, payload):
        r = self.gw.client().request("POST", "/v6/mail/send", payload,
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(r.status, 200, r.raw)
        return r.json["data"]["message_id"]

    def test_netcore_tags_without_an_attribute_become_empty(self):
        self.sink.start()
        self.gw.start()
        payload = send_body(subject="Hello [% name %]", text="Hi [%name%].")
        payload["personalizations"] = [
            {"to": [{"email": "ann@example.com"}], "attributes": {"name": "Ann"}},
            {"to": [{"email": "bob@example.com"}]},
            {"to": [{"email": "carol@example.com"}], "attributes": {}},
            {"to": [{"email": "dave@example.com"}], "attributes": {"name": None}}]
        self.send_v6(payload)
        # No personalization has attributes at all.
        self.send_v6(send_body(subject="Hello [% name %]", text="Hi [%name%].",
                               to="erin@example.com"))
        msgs = self.by_to(5)
        self.assertEqual(msgs["ann@example.com"]["Subject"], "Hello Ann")
        for to in ("bob", "carol", "dave", "erin"):
            m = msgs[to + "@example.com"]
            self.assertEqual(m["Subject"].strip(), "Hello", to)
            self.assertEqual(m.get_body(("plain",)).get_content().strip(), "Hi .", to)

    def test_sendgrid_substitutions_reach_every_reply_to_name(self):
        self.sink.start()
        self.gw.start()
        payload = send_body(to="ann@example.com", reply_to_list=[
            {"email": "sales@acme.test", "name": "Sales for -name-"},
            {"email": "support@acme.test", "name": "-team- support"}])
        payload["personalizations"][0]["substitutions"] = {"-name-": "Ann", "-team-": "Blue"}
        self.send_sendgrid(payload)
        m, = self.sink.wait_for(lambda m: len(m) >= 1)
        self.assertEqual([(a.display_name, a.addr_spec) for a in m["Reply-To"].addresses],
                         [("Sales for Ann", "sales@acme.test"),
                          ("Blue support", "support@acme.test")])


if __name__ == "__main__":
    main()
