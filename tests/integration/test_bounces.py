"""Reports at the return path (issue 18), end to end: a gateway with [bounces] domain
bounces.test relays to a real SMTP server (Postfix's smtp-sink), whose capture gives each
message's envelope sender, its VERP address; reports are then sent to that address on the
inbound listener with smtplib (and swaks once) as an MTA would: a Postfix-layout DSN of a
hard bounce (the recipient suppressed, message.bounced, the next message to it dropped), a
delayed DSN (message.deferred, nothing suppressed), an ARF complaint, a text bounce that
names no one (about the message's only recipient), garbage (kept unparsed for the
operator), a report about someone who was not a recipient, and the refusals: a forged tag,
another domain, AUTH, an oversized report, too many reports from one address; STARTTLS.
A report sent to two messages' return paths in one transaction is stored and applied once
for each. Reports stored before a restart, or left half-parsed by kill -9, are parsed after
it. The listener's connection cap is its own: full, it leaves submission's AUTH alone."""
import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import (Gateway, SmtpSink, free_port, listening, main, send_body, wait_until)

NETCORE = "/v5/mail/send"
RATE = 5  # [bounces] rate of the suite's gateway
MAX_SIZE = 65536  # [bounces] max_size of the suite's gateway
LEASE = 300  # bounces.c BOUNCES_LEASE: how long a parser's claim on a report holds
VERP = re.compile(r"^<?(b-([0-9a-f]{32})-[0-9a-f]{10}@bounces\.test)>?$")


def plain(sender, verp, subject, *lines, headers=()):
    """A plain text message to the return path verp, CRLF line ends."""
    head = [f"From: {sender}", f"To: {verp}", f"Subject: {subject}", *headers,
            "Content-Type: text/plain; charset=utf-8", ""]
    return "".join(line + "\r\n" for line in head + list(lines))


def dsn(verp, mid, rcpt, action="failed", status="5.1.1",
        diagnostic="550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"):
    """A delivery status notification laid out as Postfix writes one."""
    diagnostic = diagnostic.format(rcpt=rcpt)
    delayed = action == "delayed"
    subject = "Delayed Mail (still being retried)" if delayed else \
        "Undelivered Mail Returned to Sender"
    return (
        "From: MAILER-DAEMON@relay.test (Mail Delivery System)\r\n"
        f"Subject: {subject}\r\n"
        f"To: {verp}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        "\tboundary=\"4XYZ.1733320000/relay.test\"\r\n"
        "Message-Id: <20261204130000.4XYZ@relay.test>\r\n"
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
        "\r\n"
        "--4XYZ.1733320000/relay.test\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at host relay.test.\r\n"
        "\r\n"
        f"<{rcpt}>: host mx.example.com[192.0.2.1] said: {diagnostic} (in reply to RCPT\r\n"
        "    TO command)\r\n"
        "\r\n"
        "--4XYZ.1733320000/relay.test\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; relay.test\r\n"
        "X-Postfix-Queue-ID: 4XYZ\r\n"
        f"X-Postfix-Sender: rfc822; {verp}\r\n"
        "Arrival-Date: Fri,  4 Dec 2026 13:00:00 +0000 (UTC)\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.example.com\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        + ("Will-Retry-Until: Fri, 11 Dec 2026 13:00:00 +0000 (UTC)\r\n" if delayed else "")
        + "\r\n"
        "--4XYZ.1733320000/relay.test\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"Message-ID: <{mid}@acme.test>\r\n"
        "From: news@acme.test\r\n"
        f"To: {rcpt}\r\n"
        "Subject: Hello\r\n"
        "\r\n"
        "--4XYZ.1733320000/relay.test--\r\n")


def arf(verp, mid, rcpt):
    """A feedback report (RFC 5965) of a recipient who marked the message as spam."""
    return (
        "From: <abuse@isp.test>\r\n"
        f"To: <{verp}>\r\n"
        "Subject: FW: Hello\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report;\r\n"
        "\tboundary=\"part1_13d.2e68ed54_report\"\r\n"
        "\r\n"
        "--part1_13d.2e68ed54_report\r\n"
        "Content-Type: text/plain; charset=\"US-ASCII\"\r\n"
        "\r\n"
        "This is an email abuse report for an email message received from IP 192.0.2.1\r\n"
        "\r\n"
        "--part1_13d.2e68ed54_report\r\n"
        "Content-Type: message/feedback-report\r\n"
        "\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: SomeGenerator/1.0\r\n"
        "Version: 1\r\n"
        f"Original-Mail-From: <{verp}>\r\n"
        f"Original-Rcpt-To: <{rcpt}>\r\n"
        "Reported-Domain: acme.test\r\n"
        "\r\n"
        "--part1_13d.2e68ed54_report\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Disposition: inline\r\n"
        "\r\n"
        "From: news@acme.test\r\n"
        f"To: {rcpt}\r\n"
        f"Message-ID: <{mid}@acme.test>\r\n"
        "Subject: Hello\r\n"
        "\r\n"
        "Hi\r\n"
        "--part1_13d.2e68ed54_report--\r\n")


class BouncesCase(unittest.TestCase):
    """One gateway (with its sink) for the suite; each test sends its own messages, to its
    own recipients, and reports from its own loopback address (the rate limit is per
    address)."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.sink = SmtpSink(os.path.join(cls.gw.tmp, "sink")).start()
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.key = cls.gw.create_key("acme")
        cls.bport = free_port()
        cls.gw.config = {"bounces": {"domain": "bounces.test",
                                     "listen": f"127.0.0.1:{cls.bport}",
                                     "rate": str(RATE), "max_size": str(MAX_SIZE)},
                         "relay": {"retry_base": "1s", "retry_max": "2s"}}
        cls.gw.extra_args = ["--relay", f"smtp://127.0.0.1:{cls.sink.port}",
                             "--public-url", "http://127.0.0.1:1"]
        cls.start()

    @classmethod
    def start(cls):
        cls.gw.start()
        assert wait_until(lambda: listening(cls.bport), 10), cls.gw.read_log()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.sink.stop()

    def send(self, to):
        r = self.gw.client().request("POST", NETCORE, send_body(to=to),
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(r.status, 200, r.raw)
        return r.json["data"]["message_id"]

    def sent(self, to):
        """Sends a message to to and waits for the sink to take it: (id, VERP address)."""
        mid = self.send(to)
        msgs = self.sink.wait_for(lambda ms: any(to in str(m.get_all("X-Rcpt-Args"))
                                                 for m in ms))
        m = [m for m in msgs if to in str(m.get_all("X-Rcpt-Args"))][-1]
        match = VERP.match(m["X-Mail-Args"].split()[0])
        self.assertTrue(match, f"the envelope sender is no VERP address: {m['X-Mail-Args']}")
        self.assertEqual(match.group(2), mid)
        return mid, match.group(1)

    def smtp(self, source):
        """An SMTP client of the inbound listener from the loopback address source."""
        c = smtplib.SMTP("127.0.0.1", self.bport, source_address=(source, 0), timeout=30)
        self.addCleanup(c.close)
        c.ehlo("relay.test")
        return c

    def report(self, source, verp, text, mail_from=""):
        """Sends a report as an MTA would; returns the reply to its end of DATA."""
        c = self.smtp(source)
        self.assertEqual(c.mail(f"<{mail_from}>")[0], 250)
        self.assertEqual(c.rcpt(f"<{verp}>")[0], 250)
        return c.data(text.encode())

    def stored(self, reply):
        code, text = reply
        self.assertEqual(code, 250, text)
        m = re.match(rb"2\.0\.0 Ok: report (\d+) stored$", text)
        self.assertTrue(m, text)
        return int(m.group(1))

    def events(self, mid, type):
        r = self.admin.request("GET", f"/api/events?limit=100&message_id={mid}&type={type}")
        self.assertEqual(r.status, 200, r.raw)
        return r.json["events"]

    def wait_events(self, mid, type, count=1):
        got = wait_until(lambda: (lambda e: e if len(e) >= count else None)(
            self.events(mid, type)), timeout=20)
        self.assertTrue(got, f"no {type} for {mid}")
        return got

    def suppression(self, email):
        r = self.admin.request("GET", f"/api/suppressions?email={email}")
        self.assertEqual(r.status, 200, r.raw)
        return r.json["suppressions"]

    def reports(self, query=""):
        r = self.admin.request("GET", "/api/reports" + query)
        self.assertEqual(r.status, 200, r.raw)
        return r.json["reports"]

    def parsed(self, report_id):
        """The report once its worker is done with it."""
        find = lambda: [r for r in self.reports("?limit=500") if r["id"] == report_id and
                        r["status"] not in ("new", "parsing")]
        got = wait_until(find, timeout=20)
        self.assertTrue(got, f"report {report_id} never parsed: {self.reports()}")
        return got[0]

    def message(self, mid):
        r = self.admin.request("GET", "/api/messages/" + mid)
        self.assertEqual(r.status, 200, r.raw)
        return r.json


class ReportTest(BouncesCase):
    def test_a_hard_bounce_suppresses_and_the_next_message_is_dropped(self):
        mid, verp = self.sent("gone@example.com")
        rid = self.stored(self.report("127.0.0.2", verp, dsn(verp, mid, "gone@example.com")))
        bounced, = self.wait_events(mid, "message.bounced")
        self.assertEqual(bounced["recipient"], "gone@example.com")
        data = bounced["data"]
        self.assertEqual(data["type"], "bounce")
        self.assertEqual(data["status"], "5.1.1")
        self.assertEqual(data["source"], "dsn")
        self.assertEqual(data["reporting_mta"], "relay.test")
        self.assertIn("User unknown", data["diagnostic"])
        entry, = self.suppression("gone@example.com")
        self.assertEqual(entry["reason"], "hard_bounce")
        self.assertEqual(entry["message_id"], mid)
        self.assertIn("5.1.1", entry["detail"])
        report = self.parsed(rid)
        self.assertEqual((report["status"], report["kind"]), ("done", "dsn"))
        self.assertEqual(report["message_id"], mid)
        self.assertEqual(report["from"], "")
        self.assertEqual(report["rcpt"], verp)
        self.assertNotIn("text", report)
        self.assertTrue(report["detail"]["recipients"][0]["applied"])

        # The next message to it is never sent.
        again = self.send("gone@example.com")
        m = wait_until(lambda: (lambda m: m if m["status"] == "dropped" else None)(
            self.message(again)), timeout=20)
        self.assertTrue(m, self.message(again))
        self.assertEqual(m["reason"], "recipient_suppressed")
        dropped, = self.wait_events(again, "message.dropped")
        self.assertEqual(dropped["data"]["reason"], "recipient_suppressed")

    def test_a_delayed_dsn_is_a_deferral_and_suppresses_nobody(self):
        mid, verp = self.sent("slow@example.com")
        text = dsn(verp, mid, "slow@example.com", action="delayed", status="4.4.1",
                   diagnostic="connect to mx.example.com[192.0.2.1]:25: Connection timed out")
        rid = self.stored(self.report("127.0.0.3", verp, text, mail_from="postmaster@relay.test"))
        deferred, = self.wait_events(mid, "message.deferred")
        self.assertEqual(deferred["data"]["status"], "4.4.1")
        self.assertEqual(deferred["data"]["source"], "dsn")
        self.assertEqual(self.parsed(rid)["status"], "done")
        self.assertEqual(self.suppression("slow@example.com"), [])
        self.assertEqual(self.events(mid, "message.bounced"), [])

    def test_a_complaint_suppresses(self):
        mid, verp = self.sent("angry@example.com")
        rid = self.stored(self.report("127.0.0.4", verp, arf(verp, mid, "angry@example.com")))
        complained, = self.wait_events(mid, "message.complained")
        self.assertEqual(complained["recipient"], "angry@example.com")
        self.assertEqual(complained["data"]["feedback_type"], "abuse")
        self.assertEqual(complained["data"]["source"], "arf")
        entry, = self.suppression("angry@example.com")
        self.assertEqual(entry["reason"], "complaint")
        self.assertEqual(self.parsed(rid)["kind"], "arf")

    def test_a_report_about_someone_else_changes_nothing(self):
        mid, verp = self.sent("kept@example.com")
        rid = self.stored(self.report("127.0.0.5", verp, dsn(verp, mid, "other@example.com")))
        report = self.parsed(rid)
        self.assertEqual(report["status"], "done")
        named, = report["detail"]["recipients"]
        self.assertEqual(named["email"], "other@example.com")
        self.assertFalse(named["applied"])
        self.assertEqual(self.events(mid, "message.bounced"), [])
        self.assertEqual(self.suppression("other@example.com"), [])
        self.assertEqual(self.suppression("kept@example.com"), [])

    def test_a_policy_refusal_is_blocked_and_suppresses_nobody(self):
        mid, verp = self.sent("listed@example.com")
        text = dsn(verp, mid, "listed@example.com", status="5.7.1",
                   diagnostic="550 5.7.1 Service unavailable; client [198.51.100.7] blocked "
                              "using zen.spamhaus.org")
        rid = self.stored(self.report("127.0.0.14", verp, text))
        bounced, = self.wait_events(mid, "message.bounced")
        self.assertEqual(bounced["recipient"], "listed@example.com")
        self.assertEqual(bounced["data"]["type"], "blocked")
        self.assertEqual(bounced["data"]["status"], "5.7.1")
        self.assertEqual(self.parsed(rid)["status"], "done")
        self.assertEqual(self.suppression("listed@example.com"), [])

    def test_an_out_of_office_reply_is_kept_unparsed(self):
        mid, verp = self.sent("away@example.com")
        text = plain("Away <away@example.com>", verp, "Automatische Antwort: Hello",
                     "Ich bin bis 5.1.27 nicht im Buero.",
                     "I am away until 4.1.26. Status: 5.1.1 of the project is done.",
                     headers=["Auto-Submitted: auto-replied"])
        rid = self.stored(self.report("127.0.0.15", verp, text, mail_from="away@example.com"))
        report = self.parsed(rid)
        self.assertEqual(report["status"], "unparsed")
        self.assertIn("nicht im Buero", report["text"])
        self.assertEqual(self.events(mid, "message.bounced"), [])
        self.assertEqual(self.suppression("away@example.com"), [])

    def test_a_report_with_bare_line_ends_is_kept(self):
        mid, verp = self.sent("sloppy@example.com")
        text = dsn(verp, mid, "sloppy@example.com").replace("\r\n", "\n")
        c = self.smtp("127.0.0.16")
        self.assertEqual(c.mail("<>")[0], 250)
        self.assertEqual(c.rcpt(f"<{verp}>")[0], 250)
        # smtplib turns bare line ends into CRLF: the bytes go as they are.
        self.assertEqual(c.docmd("DATA")[0], 354)
        c.send(text.encode() + b"\r\n.\r\n")
        self.stored(c.getreply())
        bounced, = self.wait_events(mid, "message.bounced")
        self.assertEqual(bounced["data"]["type"], "bounce")
        self.assertEqual(self.suppression("sloppy@example.com")[0]["reason"], "hard_bounce")

    def test_a_text_bounce_naming_no_one_is_about_the_only_recipient(self):
        mid, verp = self.sent("lone@example.com")
        text = plain("postmaster@legacy.example", verp, "Returned mail",
                     "Delivery to the following recipient failed permanently.", "",
                     "    550 5.1.1 User unknown")
        rid = self.stored(self.report("127.0.0.13", verp, text,
                                      mail_from="postmaster@legacy.example"))
        bounced, = self.wait_events(mid, "message.bounced")
        self.assertEqual(bounced["recipient"], "lone@example.com")
        self.assertEqual(bounced["data"]["source"], "text")
        self.assertEqual(bounced["data"]["status"], "5.1.1")
        # Free text that names no address never suppresses: an event only.
        self.assertEqual(bounced["data"]["type"], "blocked")
        self.assertEqual(self.suppression("lone@example.com"), [])
        self.assertEqual(self.parsed(rid)["kind"], "text")

    def test_garbage_is_kept_for_the_operator(self):
        mid, verp = self.sent("garbage@example.com")
        text = "Subject: hello\r\n\r\nYour mail was lovely, thank you.\r\n\xe9t\xe9\r\n"
        rid = self.stored(self.report("127.0.0.6", verp, text))
        report = self.parsed(rid)
        self.assertEqual(report["status"], "unparsed")
        self.assertIsNone(report["kind"])
        self.assertIn("Your mail was lovely", report["text"])
        listed = self.reports("?status=unparsed")
        self.assertIn(rid, [r["id"] for r in listed])
        self.assertTrue(all(r["status"] == "unparsed" for r in listed))
        self.assertEqual(self.events(mid, "message.bounced"), [])

    def test_swaks_delivers_a_report_with_the_null_sender(self):
        mid, verp = self.sent("swaks@example.com")
        path = os.path.join(self.gw.tmp, "swaks.eml")
        with open(path, "w", newline="") as f:
            f.write(dsn(verp, mid, "swaks@example.com"))
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.bport}", "--from", "<>",
                            "--to", verp, "--helo", "relay.test", "--data", "@" + path,
                            "--local-interface", "127.0.0.7", "--timeout", "30"],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"<- +250 2\.0\.0 Ok: report \d+ stored")
        self.wait_events(mid, "message.bounced")
        self.assertEqual(self.suppression("swaks@example.com")[0]["reason"], "hard_bounce")

    def test_reports_list_is_validated(self):
        r = self.admin.request("GET", "/api/reports?status=lost")
        self.assertEqual(r.status, 400, r.raw)
        self.assertEqual(r.json["error"]["field"], "status")
        r = self.admin.request("GET", "/api/reports?limit=501")
        self.assertEqual(r.status, 400, r.raw)


def dsn_two(verp, mid, rcpt, other):
    """A DSN of two hard-bounced recipients, rcpt and other."""
    block = ("Final-Recipient: rfc822; {0}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
             "Diagnostic-Code: smtp; 550 5.1.1 <{0}>: User unknown\r\n\r\n").format(other)
    headers = "--4XYZ.1733320000/relay.test\r\nContent-Description: Undelivered Message"
    return dsn(verp, mid, rcpt).replace(headers, block + headers)


class TwoReturnPathsTest(BouncesCase):
    def test_one_report_to_two_return_paths_is_stored_and_applied_once_for_each(self):
        mid1, verp1 = self.sent("first@example.com")
        mid2, verp2 = self.sent("second@example.com")
        c = self.smtp("127.0.0.18")
        self.assertEqual(c.mail("<>")[0], 250)
        # The same return path spelt again in capitals is the same message: one report.
        for verp in (verp1, verp2, verp1.upper()):
            self.assertEqual(c.rcpt(f"<{verp}>")[0], 250)
        code, text = c.data(dsn_two(verp1, mid1, "first@example.com",
                                    "second@example.com").encode())
        self.assertEqual(code, 250, text)
        m = re.match(rb"2\.0\.0 Ok: reports (\d+), (\d+) stored$", text)
        self.assertTrue(m, text)
        rid1, rid2 = int(m.group(1)), int(m.group(2))
        for rid, mid, verp in ((rid1, mid1, verp1), (rid2, mid2, verp2)):
            report = self.parsed(rid)
            self.assertEqual((report["status"], report["message_id"], report["rcpt"]),
                             ("done", mid, verp))
        # Each message's report applies to its own recipient only, once.
        for mid, who in ((mid1, "first@example.com"), (mid2, "second@example.com")):
            bounced, = self.wait_events(mid, "message.bounced")
            self.assertEqual(bounced["recipient"], who)
            self.assertEqual(self.suppression(who)[0]["reason"], "hard_bounce")
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            for mid in (mid1, mid2):
                self.assertEqual(len(self.events(mid, "message.bounced")), 1)
            time.sleep(0.25)
        stored = self.gw.sql("SELECT message_uid FROM bounce_reports WHERE client_ip = "
                             "'127.0.0.18' ORDER BY id")
        self.assertEqual(stored, [(mid1,), (mid2,)])


class RefusalTest(BouncesCase):
    def test_anything_but_a_return_path_is_refused(self):
        c = self.smtp("127.0.0.8")
        self.assertEqual(c.mail("<>")[0], 250)
        forged = "b-" + "0" * 32 + "-0123456789@bounces.test"
        code, text = c.rcpt(f"<{forged}>")
        self.assertEqual((code, text), (550, f"5.1.1 <{forged}>: no such return path "
                                             "here".encode()))
        code, text = c.rcpt("<postmaster@example.com>")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith(b"5.1.1 "), text)
        code, _ = c.rcpt("<b-" + "0" * 32 + "-0123456789@elsewhere.test>")
        self.assertEqual(code, 550)

    def test_guessing_return_paths_closes_the_session(self):
        c = self.smtp("127.0.0.17")
        self.assertEqual(c.mail("<>")[0], 250)
        for i in range(5):
            self.assertEqual(c.rcpt(f"<b-{i:032x}-0123456789@bounces.test>")[0], 550)
        code, text = c.rcpt("<b-" + "9" * 32 + "-0123456789@bounces.test>")
        self.assertEqual((code, text), (421, b"4.7.0 too many invalid return paths, closing"))
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            c.noop()

    def test_auth_is_not_offered_nor_taken(self):
        c = self.smtp("127.0.0.8")
        self.assertFalse(c.has_extn("auth"))
        code, text = c.docmd("AUTH", "PLAIN AGFwaWtleQBzZWNyZXQ=")
        self.assertEqual(code, 502, text)

    def test_an_oversized_report_is_refused(self):
        c = self.smtp("127.0.0.8")
        self.assertEqual(int(c.esmtp_features["size"]), MAX_SIZE)
        code, text = c.mail("<>", ["SIZE=%d" % (MAX_SIZE + 1)])
        self.assertEqual(code, 552, text)
        self.assertTrue(text.startswith(b"5.3.4"), text)
        mid, verp = self.sent("big@example.com")
        c = self.smtp("127.0.0.8")
        self.assertEqual(c.mail("<>")[0], 250)
        self.assertEqual(c.rcpt(f"<{verp}>")[0], 250)
        code, text = c.data(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 70)
        self.assertEqual(code, 552, text)
        self.assertTrue(text.startswith(b"5.3.4"), text)

    def test_too_many_reports_from_one_address(self):
        mid, verp = self.sent("rate@example.com")
        for _ in range(RATE):
            self.stored(self.report("127.0.0.9", verp, "Subject: x\r\n\r\nnothing\r\n"))
        c = self.smtp("127.0.0.9")
        code, text = c.mail("<>")
        self.assertEqual((code, text), (450, b"4.7.1 too many reports from your address, try "
                                              b"again later"))
        # Another address is not held back by it.
        self.stored(self.report("127.0.0.10", verp, "Subject: x\r\n\r\nnothing\r\n"))


class TlsTest(unittest.TestCase):
    def test_starttls_is_offered_when_a_certificate_is_set(self):
        gw = Gateway(smtp_tls=True).init("acme", "admin@acme.test")
        self.addCleanup(gw.cleanup)
        port = free_port()
        gw.config = {"bounces": {"domain": "bounces.test", "listen": f"127.0.0.1:{port}"}}
        gw.start()
        self.assertTrue(wait_until(lambda: listening(port), 10), gw.read_log())
        c = smtplib.SMTP("127.0.0.1", port, timeout=30)
        self.addCleanup(c.close)
        c.ehlo("relay.test")
        self.assertTrue(c.has_extn("starttls"))
        c.starttls(context=ssl._create_unverified_context())
        c.ehlo("relay.test")
        self.assertFalse(c.has_extn("starttls"))
        self.assertFalse(c.has_extn("auth"))
        self.assertEqual(c.mail("<>")[0], 250)
        self.assertEqual(c.rcpt("<someone@acme.test>")[0], 550)


def greeting(sock):
    return sock.makefile("rb").readline()


def greeted(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        return greeting(c).startswith(b"220 ")


class ConnectionsTest(unittest.TestCase):
    """[bounces] max_connections = 2 and [smtp] max_connections = 2: two connections fill
    the inbound listener, and submission still takes an AUTH."""

    def test_a_full_inbound_listener_leaves_submission_alone(self):
        gw = Gateway(smtp=True).init("acme", "admin@acme.test")
        self.addCleanup(gw.cleanup)
        key = gw.create_key("acme")
        port = free_port()
        gw.config = {"smtp": {"max_connections": "2", "auth_without_tls": "yes"},
                     "bounces": {"domain": "bounces.test", "listen": f"127.0.0.1:{port}",
                                 "max_connections": "2"}}
        gw.start()
        self.assertTrue(wait_until(lambda: listening(port), 10), gw.read_log())

        def hold():
            """Two greeted connections, once the probes' are gone."""
            socks = [socket.create_connection(("127.0.0.1", port), timeout=30)
                     for _ in range(2)]
            if all(greeting(s).startswith(b"220 ") for s in socks):
                return socks
            for s in socks:
                s.close()
            return None

        held = wait_until(hold, 10)
        self.assertTrue(held)
        for s in held:
            self.addCleanup(s.close)
        extra = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(extra.close)
        self.assertEqual(greeting(extra), b"421 4.7.0 Too many connections; try again later\r\n")

        s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        code, text = s.login("apikey", key)
        self.assertEqual((code, text[:5]), (235, b"2.7.0"))
        # Once one inbound client leaves, the listener takes a new one.
        held[0].close()
        self.assertTrue(wait_until(lambda: greeted(port), 10))


class RestartTest(BouncesCase):
    def test_reports_stored_before_a_crash_are_parsed_after_it(self):
        mid, verp = self.sent("crash@example.com")
        text = dsn(verp, mid, "crash@example.com")
        # As a crash leaves one: stored, claimed by a parser that died before its result.
        self.gw.kill()
        raw = base64.b64encode(text.encode()).decode()
        self.gw.sql("INSERT INTO bounce_reports (received_at, client_ip, mail_from, rcpt, "
                    "message_uid, status, size, raw, lease_until, claim) VALUES "
                    "(1, '127.0.0.11', '', ?, ?, 'parsing', ?, ?, 2, 'dead')",
                    verp, mid, len(text), raw)
        self.start()
        self.wait_events(mid, "message.bounced")
        self.assertEqual(self.suppression("crash@example.com")[0]["reason"], "hard_bounce")

    def test_kill_9_right_after_the_250_loses_nothing_and_applies_once(self):
        mid, verp = self.sent("after@example.com")
        dead_mid, dead_verp = self.sent("dead@example.com")
        rid = self.stored(self.report("127.0.0.12", verp, dsn(verp, mid, "after@example.com")))
        self.gw.kill()
        # The one acknowledged just before the kill may be applied already or not; another
        # is as a parser that died holding it leaves it: claimed, its lease not yet out.
        text = dsn(dead_verp, dead_mid, "dead@example.com")
        raw = base64.b64encode(text.encode()).decode()
        now = int(time.time()) + self.clock_offset()
        self.gw.sql("INSERT INTO bounce_reports (received_at, client_ip, mail_from, rcpt, "
                    "message_uid, status, size, raw, lease_until, claim) VALUES "
                    "(?, '127.0.0.12', '', ?, ?, 'parsing', ?, ?, ?, 'dead')",
                    now, dead_verp, dead_mid, len(text), raw, now + LEASE // 2)
        dead_rid, = self.gw.sql("SELECT id FROM bounce_reports WHERE claim = 'dead'")[0]
        # Parsed again: at start on SQLite, once its lease runs out on PostgreSQL (another
        # node may be parsing it).
        self.gw.advance_clock(LEASE + 1)
        self.start()
        self.wait_events(mid, "message.bounced")
        self.wait_events(dead_mid, "message.bounced")
        self.assertEqual(self.parsed(dead_rid)["status"], "done")
        self.assertEqual(self.parsed(rid)["status"], "done")
        # A full pass of the worker after both: a report stored now is parsed after them.
        last = self.stored(self.report("127.0.0.12", verp, "Subject: x\r\n\r\nnothing\r\n"))
        self.assertEqual(self.parsed(last)["status"], "unparsed")
        # Still exactly once each, a while later.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for m, who in ((mid, "after@example.com"), (dead_mid, "dead@example.com")):
                self.assertEqual(len(self.events(m, "message.bounced")), 1)
                self.assertEqual(len(self.suppression(who)), 1)
            time.sleep(0.25)

    def clock_offset(self):
        """The daemon's clock offset (advance_clock's running total), in seconds."""
        try:
            with open(self.gw.clock_path) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0


if __name__ == "__main__":
    main()
