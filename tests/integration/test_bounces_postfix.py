"""Real bounces from a real Postfix (issue 18). Postern relays to a private Postfix that
accepts the message and hands it to its next hop, a second Postfix that refuses one
recipient at RCPT with 550 5.1.1; the first Postfix then writes a DSN itself and sends it
from <> to the message's return path, b-<uid>-<tag>@bounces.test, which its transport map
routes to Postern's bounce listener. The recipient ends up suppressed (hard_bounce, with the
message's id), the message has a message.bounced event with status 5.1.1, the other
recipient was delivered, and the next message to the bounced address is dropped with
recipient_suppressed before it reaches Postfix.

The first class checks the two Postfix instances on their own, with a small SMTP listener
standing in for Postern's. Needs root (Postfix's master) and postfix."""
import email
import email.policy
import os
import re
import socketserver
import threading
import unittest
import uuid

from harness import Gateway, free_port, listening, main, send_body, wait_until
from postfix import Postfix

NEEDS_ROOT = unittest.skipUnless(os.geteuid() == 0, "a private Postfix needs root")
BOUNCE_DOMAIN = "bounces.test"
VERP = re.compile(r"^b-([0-9a-f]{32})-([0-9a-f]{10})@" + re.escape(BOUNCE_DOMAIN) + "$")
WAIT = 60  # seconds for anything that crosses Postfix's queue


def message(sender, to, subject, body="Your order has shipped.\r\n"):
    return (f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@acme.test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")


def delivery_status(report):
    """The per-recipient groups of a DSN's message/delivery-status part, as dicts of
    lower-case field names (the first group, per-message, left out)."""
    part = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    return [{k.lower(): " ".join(str(v).split()) for k, v in group.items()}
            for group in part.get_payload()[1:]]


class ReportCatcher:
    """A minimal SMTP server on a free loopback port, standing in for Postern's bounce
    listener: it accepts every transaction and keeps (mail_from, rcpts, data bytes)."""

    def __init__(self):
        self.received = []
        catcher = self

        class Session(socketserver.StreamRequestHandler):
            timeout = 30

            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 catcher.test ESMTP")
                sender, rcpts = None, []
                for raw in self.rfile:
                    verb = raw[:4].decode(errors="replace").upper()
                    arg = raw[raw.find(b":") + 1:].strip().decode(errors="replace")
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 catcher.test")
                    elif verb == "MAIL":
                        sender, rcpts = arg.split()[0].strip("<>"), []
                        self.reply("250 2.1.0 Ok")
                    elif verb == "RCPT":
                        rcpts.append(arg.split()[0].strip("<>"))
                        self.reply("250 2.1.5 Ok")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        catcher.received.append((sender, rcpts, self.data()))
                        self.reply("250 2.0.0 Ok: kept")
                    elif verb == "QUIT":
                        self.reply("221 2.0.0 Bye")
                        return
                    else:
                        self.reply("250 2.0.0 Ok")

            def data(self):
                lines = []
                for line in self.rfile:
                    if line in (b".\r\n", b".\n"):
                        break
                    lines.append(line[1:] if line.startswith(b".") else line)
                return b"".join(lines)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def two_hops(test, bounce_port):
    """The next hop (a holding Postfix refusing dead@example.org with 550 5.1.1) and the
    relay in front of it, whose DSNs for the bounce domain go to 127.0.0.1:bounce_port; both
    stopped (and checked for leftovers) when test's class is done."""
    nexthop = Postfix("hold", refuse=["dead@example.org"], hostname="mx.example.org").start()
    test.addClassCleanup(nexthop.cleanup)
    relay = Postfix("relay", relayhost=f"127.0.0.1:{nexthop.port}",
                    transport={BOUNCE_DOMAIN: f"127.0.0.1:{bounce_port}"},
                    hostname="relay.provider.test").start()
    test.addClassCleanup(relay.cleanup)
    return relay, nexthop


@NEEDS_ROOT
class PeerTest(unittest.TestCase):
    """The two hops without Postern: Postfix writes a DSN for the refused recipient and
    sends it from <> to the VERP address, through the transport map."""

    @classmethod
    def setUpClass(cls):
        cls.catcher = ReportCatcher().start()
        cls.addClassCleanup(cls.catcher.stop)
        cls.relay, cls.nexthop = two_hops(cls, cls.catcher.port)

    def test_a_refusal_by_the_next_hop_comes_back_as_a_dsn(self):
        return_path = f"b-{uuid.uuid4().hex}-{os.urandom(5).hex()}@{BOUNCE_DOMAIN}"
        to = ["live@example.org", "dead@example.org"]
        qid = self.relay.submit(return_path, to, message("news@acme.test", to, "Shipped"))
        got = wait_until(lambda: [r for r in self.catcher.received if r[1] == [return_path]],
                         WAIT)
        self.assertTrue(got, "no DSN reached the listener:\n" + self.relay.maillog())
        sender, _, data = got[0]
        self.assertEqual(sender, "")  # the null sender
        report = email.message_from_bytes(data, policy=email.policy.default)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertIn("MAILER-DAEMON", report["From"])
        groups = delivery_status(report)
        self.assertEqual(len(groups), 1, groups)
        self.assertEqual(groups[0]["final-recipient"], "rfc822; dead@example.org")
        self.assertEqual(groups[0]["action"], "failed")
        self.assertEqual(groups[0]["status"], "5.1.1")
        self.assertIn("550 5.1.1 <dead@example.org>: Recipient address rejected",
                      groups[0]["diagnostic-code"])
        # The other recipient went on: the next hop holds it.
        self.assertTrue(self.relay.wait_log(qid, "to=<live@example.org>", "status=sent"))
        self.assertTrue(wait_until(lambda: self.nexthop.queued() == 1, WAIT))
        self.assertTrue(self.relay.wait_log(qid, "to=<dead@example.org>", "status=bounced"))


@NEEDS_ROOT
class PosternThroughPostfixTest(unittest.TestCase):
    """Postern ([bounces] domain bounces.test, its listener on loopback) relaying to the two
    hops, whose DSNs come back to that listener."""

    @classmethod
    def setUpClass(cls):
        bounce_port = free_port()
        cls.relay, cls.nexthop = two_hops(cls, bounce_port)
        gw = cls.gw = Gateway(relay=f"smtp://127.0.0.1:{cls.relay.port}", config={
            "bounces": {"domain": BOUNCE_DOMAIN, "listen": f"127.0.0.1:{bounce_port}"}})
        cls.addClassCleanup(gw.cleanup)
        gw.init("acme", "admin@acme.test")
        gw.add_domain("acme", "acme.test", "--verified")
        cls.key = gw.create_key("acme")
        gw.start()
        assert wait_until(lambda: listening(bounce_port), 15), gw.read_log()
        cls.admin = gw.logged_in("admin@acme.test")

    def send(self, to, *cc):
        body = send_body(to=to, subject="Your order has shipped")
        if cc:
            body["personalizations"][0]["cc"] = [{"email": a} for a in cc]
        r = self.gw.client().request("POST", "/v5/mail/send", body,
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertIn(r.status, (200, 202), r.raw)
        return r.json["data"]["message_id"]

    def get(self, path):
        r = self.admin.request("GET", path)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def events(self, mid, type):
        """{recipient: data} of the message's events of type."""
        got = self.get(f"/api/events?limit=1000&message_id={mid}&type={type}")["events"]
        return {e["recipient"]: e["data"] for e in got}

    def wait(self, what, fn):
        got = wait_until(fn, WAIT, interval=0.2)
        self.assertTrue(got, f"no {what} after {WAIT}s\n--- postern\n"
                        f"{self.gw.read_log()[-3000:]}\n--- relay\n{self.relay.maillog()}")
        return got

    def relayed(self, rcpt):
        """The relay's delivery lines for rcpt: each copy Postern handed it."""
        return [l for l in self.relay.maillog().splitlines()
                if f"to=<{rcpt}>" in l and "status=" in l]

    def test_a_real_dsn_suppresses_the_recipient_and_the_next_message_is_dropped(self):
        mid = self.send("live@example.org", "dead@example.org")
        # Postern hands both to the relay from the message's return path.
        self.wait("message.delivered", lambda: len(self.events(mid, "message.delivered")) == 2)
        senders = self.relay.wait_log("from=<b-", f"@{BOUNCE_DOMAIN}>", timeout=WAIT)
        verp = VERP.match(re.search(r"from=<([^>]*)>", senders[0]).group(1))
        self.assertTrue(verp, senders[0])
        self.assertEqual(verp.group(1), mid)
        # The next hop took one and refused the other; Postfix bounced it and sent its DSN.
        self.assertTrue(self.relay.wait_log("to=<live@example.org>", "status=sent",
                                            timeout=WAIT))
        self.assertTrue(self.relay.wait_log("to=<dead@example.org>", "status=bounced",
                                            "550 5.1.1", timeout=WAIT))
        self.assertTrue(self.relay.wait_log("from=<>", timeout=WAIT))
        self.assertTrue(wait_until(lambda: self.nexthop.queued() == 1, WAIT))

        listed = self.wait("suppression", lambda: self.get(
            "/api/suppressions?email=dead@example.org")["suppressions"])
        self.assertEqual(len(listed), 1, listed)
        self.assertEqual(listed[0]["email"], "dead@example.org")
        self.assertEqual(listed[0]["reason"], "hard_bounce")
        self.assertEqual(listed[0]["message_id"], mid)
        self.assertIn("5.1.1", listed[0]["detail"])
        self.assertEqual(self.get("/api/suppressions?email=live@example.org")["suppressions"],
                         [])
        bounced = self.wait("message.bounced", lambda: self.events(mid, "message.bounced"))
        self.assertEqual(list(bounced), ["dead@example.org"])
        data = bounced["dead@example.org"]
        self.assertEqual((data["type"], data["status"], data["source"]),
                         ("bounce", "5.1.1", "dsn"))
        self.assertIn("Recipient address rejected", data["diagnostic"])
        self.assertIn("relay.provider.test", data["reporting_mta"])
        self.assertEqual(set(self.events(mid, "message.delivered")),
                         {"live@example.org", "dead@example.org"})
        reports = [r for r in self.get("/api/reports")["reports"] if r["message_id"] == mid]
        self.assertEqual(len(reports), 1, reports)
        self.assertEqual((reports[0]["status"], reports[0]["kind"], reports[0]["from"],
                          reports[0]["rcpt"]), ("done", "dsn", "", verp.group(0)))

        # The next message to the bounced address is dropped before it reaches Postfix.
        again = self.send("dead@example.org")
        dropped = self.wait("message.dropped", lambda: self.events(again, "message.dropped"))
        self.assertEqual({r: d["reason"] for r, d in dropped.items()},
                         {"dead@example.org": "recipient_suppressed"})
        msg = self.wait("dropped status", lambda: (lambda m: m if m["status"] == "dropped"
                                                   else None)(self.get("/api/messages/" + again)))
        self.assertEqual(msg["reason"], "recipient_suppressed")
        # With another recipient beside it, only that one goes.
        mixed = self.send("dead@example.org", "other@example.org")
        self.wait("delivery of the other", lambda: self.events(mixed, "message.delivered"))
        self.assertEqual(set(self.events(mixed, "message.delivered")), {"other@example.org"})
        self.assertEqual(set(self.events(mixed, "message.dropped")), {"dead@example.org"})
        self.assertTrue(self.relay.wait_log("to=<other@example.org>", "status=sent",
                                            timeout=WAIT))
        self.assertEqual(len(self.relayed("dead@example.org")), 1, self.relay.maillog())
        self.assertTrue(wait_until(lambda: self.nexthop.queued() == 2, WAIT))


if __name__ == "__main__":
    main()
