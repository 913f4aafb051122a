"""A real Postfix relaying through Postern's SMTP front end, as an application behind a local
Postfix does (issue 16): `relayhost` = Postern's SMTP port, SASL with user `apikey` and an API
key as the password, TLS required (STARTTLS; AUTH is not offered before it). Accepted mail
reaches the API's message list as `"source": "smtp"` and Postern's relay; a From the account
may not use is refused with `550 5.7.1 sender_not_authorized`, which Postfix logs as a bounce,
whether the envelope sender or only the header From is the stranger.

The first class checks the peer itself without Postern: relay mode against a second Postfix's
SASL+STARTTLS submission port. Needs root (Postfix's master), postfix, sasl2-bin and
libsasl2-modules."""
import os
import re
import unittest
import uuid

from harness import Gateway, SmtpSink, main, wait_until
from postfix import SASL_PASSWORD, SASL_USER, Postfix

NEEDS_ROOT = unittest.skipUnless(os.geteuid() == 0, "a private Postfix needs root")


def message(sender, to, subject, body="Hello from the app behind Postfix.\r\n"):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")


def relayed_as(postfix, queue_id, timeout=30):
    """Postfix's final delivery line for queue_id (sent or bounced, with the relayhost's
    reply), waiting for it (bounded); None if there is none by then."""
    final = re.compile(re.escape(queue_id) + r": to=<.*status=(sent|bounced)")
    lines = wait_until(lambda: [l for l in postfix.maillog().splitlines() if final.search(l)],
                       timeout)
    return lines[-1] if lines else None


@NEEDS_ROOT
class PeerTest(unittest.TestCase):
    """The Postfix class on its own: relay mode through another instance's submission port
    (AUTH PLAIN over STARTTLS, a sasldb login), and a 5xx from it logged as a bounce."""

    @classmethod
    def setUpClass(cls):
        cls.upstream = Postfix("hold", submit=True).start()
        cls.addClassCleanup(cls.upstream.cleanup)
        cls.pf = Postfix("relay", relayhost=f"127.0.0.1:{cls.upstream.submit_port}",
                         sasl=(SASL_USER, SASL_PASSWORD)).start()
        cls.addClassCleanup(cls.pf.cleanup)

    def test_relays_with_sasl_over_tls(self):
        ids = [self.pf.submit("app@alice.test", "rcpt@dest.test",
                              message("app@alice.test", "rcpt@dest.test", f"peer {i}"))
               for i in range(3)]
        for qid in ids:
            line = relayed_as(self.pf, qid)
            self.assertIn("status=sent (250 2.0.0 Ok: queued as", line or "no line for " + qid)
        self.assertTrue(self.pf.wait_log("TLS connection established to 127.0.0.1"))
        self.assertTrue(self.upstream.wait_log("sasl_method=PLAIN", f"sasl_username={SASL_USER}"))
        # The upstream holds them (HOLD mode), so they are counted there, not delivered.
        self.assertTrue(wait_until(lambda: self.upstream.queued() >= 3, 20))
        self.assertTrue(wait_until(lambda: self.pf.queued() == 0, 20))

    def test_a_refusal_is_logged_as_a_bounce(self):
        qid = self.pf.submit("eve@evil.test", "rcpt@dest.test",
                             message("eve@evil.test", "rcpt@dest.test", "not mine"))
        line = relayed_as(self.pf, qid)
        self.assertIn("status=bounced", line or "")
        self.assertIn("553 5.7.1 <eve@evil.test>: Sender address rejected", line)


@NEEDS_ROOT
class PostfixThroughPosternTest(unittest.TestCase):
    """Postern with STARTTLS (auth_without_tls = no), an account with a verified domain, one
    authorized sender (sender authorization on), an API key; Postfix relaying through it."""

    @classmethod
    def setUpClass(cls):
        gw = cls.gw = Gateway(smtp=True, smtp_tls=True,
                              config={"smtp": {"auth_without_tls": "no"}})
        cls.addClassCleanup(gw.cleanup)
        gw.init("acme", "admin@acme.test")
        cls.sink = SmtpSink(os.path.join(gw.tmp, "sink")).start()
        cls.addClassCleanup(cls.sink.stop)
        gw.relay = f"smtp://127.0.0.1:{cls.sink.port}"
        gw.add_domain("acme", "acme.test", "--verified")
        cls.key = gw.create_key("acme", "postfix")
        gw.start()
        cls.admin = admin = gw.logged_in("admin@acme.test")
        r = admin.request("POST", "/api/senders", {"addresses": ["news@acme.test"]})
        assert r.status == 201, r.raw
        r = admin.request("POST", f"/api/senders/{r.json['added'][0]['id']}/verify")
        assert r.status == 200, r.raw
        r = admin.request("PUT", "/api/settings/sender-auth",
                          {"enabled": True, "password": "correct horse battery"})
        assert r.status == 200, r.raw
        cls.pf = Postfix("relay", relayhost=f"127.0.0.1:{gw.smtp_port}",
                         sasl=("apikey", cls.key)).start()
        cls.addClassCleanup(cls.pf.cleanup)

    def listed(self):
        r = self.admin.request("GET", "/api/messages?limit=1000")
        self.assertEqual(r.status, 200, r.raw)
        return {m["id"]: m for m in r.json["messages"]}

    def test_messages_relayed_by_postfix_are_sent_as_smtp(self):
        tag = uuid.uuid4().hex[:8]
        subjects = [f"Order {tag}-{i} shipped" for i in range(3)]
        qids = [self.pf.submit("news@acme.test", f"customer{i}@example.org",
                               message("News <news@acme.test>", f"customer{i}@example.org", s))
                for i, s in enumerate(subjects)]
        mids = []
        for qid in qids:
            line = relayed_as(self.pf, qid)
            m = re.search(r"status=sent \(250 2\.0\.0 Ok: queued as (\S+)\)", line or "")
            self.assertTrue(m, f"Postern did not accept {qid}: {line}\n"
                            + self.gw.read_log()[-2000:])
            mids.append(m.group(1))
        # Over TLS, required by Postfix and by Postern (no AUTH before STARTTLS).
        self.assertTrue(self.pf.wait_log("TLS connection established to 127.0.0.1"))
        sent = wait_until(lambda: (lambda ms: ms if all(
            ms.get(i, {}).get("status") == "sent" for i in mids) else None)(self.listed()))
        self.assertTrue(sent, f"not all sent: {self.listed()}")
        for mid in mids:
            self.assertEqual(sent[mid]["source"], "smtp")
            self.assertEqual(sent[mid]["from"], "news@acme.test")
        got = self.sink.wait_for(lambda ms: all(any(m["Subject"] == s for m in ms)
                                                for s in subjects))
        for i, s in enumerate(subjects):
            m = next((m for m in got if m["Subject"] == s), None)
            self.assertIsNotNone(m, f"{s} not at the relay")
            self.assertIn("news@acme.test", m["From"])
            self.assertEqual(m["To"], f"customer{i}@example.org")
            self.assertIn("Hello from the app behind Postfix.", m.get_content())

    def refused(self, envelope, header):
        subject = f"Not ours {uuid.uuid4().hex[:8]}"
        qid = self.pf.submit(envelope, "customer@example.org",
                             message(header, "customer@example.org", subject))
        line = relayed_as(self.pf, qid)
        self.assertIn("status=bounced", line or f"no final line for {qid}")
        self.assertIn("550 5.7.1 sender_not_authorized", line)
        self.assertFalse(any(m["Subject"] == subject for m in self.sink.messages()))
        return line

    def test_an_unauthorized_envelope_sender_is_refused_at_mail(self):
        line = self.refused("stranger@acme.test", "stranger@acme.test")
        self.assertIn("in reply to MAIL FROM command", line)

    def test_an_unauthorized_header_from_is_refused_after_data(self):
        # The envelope is an authorized sender; only the From header is not (what Postfix's
        # own reject_sender_login_mismatch never looks at).
        line = self.refused("news@acme.test", "Stranger <stranger@acme.test>")
        self.assertIn("in reply to end of DATA command", line)


if __name__ == "__main__":
    main()
