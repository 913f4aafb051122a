"""The suppression list: GET/POST /api/suppressions and DELETE /api/suppressions/{email}
(shapes, paging, filters, who may change it, the audit), and what it does at delivery: a
suppressed recipient is taken out of the envelope and dropped with recipient_suppressed,
a relay's 5.1.1 refusal suppresses (a 5.7.1 one is a block and does not), and with a bounce
domain every message leaves from its VERP return path. A scripted SMTP relay on loopback
(test_events.py's, which also records each envelope sender) answers each recipient by its
name."""
import re
import unittest
from urllib.parse import quote

from harness import Gateway, RolesCase, audit_events, main, send_body, wait_until
from test_events import AcceptTest, Relay, RelaySession

NETCORE = "/v5/mail/send"
ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
VERP = re.compile(r"^b-([0-9a-f]{32})-([0-9a-f]{10})@bounces\.test$")


class ApiTest(RolesCase):
    def list(self, query="", client=None):
        r = (client or self.admin).request("GET", "/api/suppressions" + query)
        self.assertEqual(r.status, 200, r.raw)
        return r.json["suppressions"]

    def add(self, *emails, client=None):
        return (client or self.admin).request("POST", "/api/suppressions",
                                              {"emails": list(emails)})

    def test_add_list_and_remove(self):
        r = self.add("Gone@Example.COM", "gone@example.com", "other@example.com")
        self.assertEqual((r.status, r.json), (200, {"added": 2}), r.raw)
        # Listed once, in lower case; a listed address keeps its entry.
        self.assertEqual(self.add("GONE@example.com").json, {"added": 0})
        listed = self.list("?email=GONE@EXAMPLE.com")
        self.assertEqual(len(listed), 1, listed)
        e = listed[0]
        self.assertEqual(set(e), {"id", "email", "reason", "created_at", "message_id", "detail"})
        self.assertEqual((e["email"], e["reason"], e["message_id"]),
                         ("gone@example.com", "manual", None))
        self.assertRegex(e["created_at"], ISO)
        self.assertIsInstance(e["id"], int)
        # Every role reads the list.
        for role, client in self.clients.items():
            with self.subTest(role=role):
                self.assertIn("gone@example.com",
                              [s["email"] for s in self.list(client=client)])
        # The address goes in the path, encoded or not.
        r = self.admin.request("DELETE", "/api/suppressions/" + quote("Gone@Example.com"))
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(self.list("?email=gone@example.com"), [])
        r = self.admin.request("DELETE", "/api/suppressions/gone@example.com")
        self.assertError(r, 404, "not_found")
        r = self.admin.request("DELETE", "/api/suppressions/not-an-address")
        self.assertError(r, 404, "not_found")
        r = self.tech.request("DELETE", "/api/suppressions/other@example.com")
        self.assertEqual(r.status, 204, r.raw)

    def test_plus_and_at_survive_the_path(self):
        self.assertEqual(self.add("news+tag@example.com").json, {"added": 1})
        r = self.admin.request("DELETE", "/api/suppressions/news%2Btag%40example.com")
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(self.add("news+tag@example.com").json, {"added": 1})
        r = self.admin.request("DELETE", "/api/suppressions/news+tag@example.com")
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(self.list("?email=news%2Btag@example.com"), [])

    def test_paging_and_filters(self):
        emails = [f"page{i}@paging.test" for i in range(7)]
        for e in emails:
            self.assertEqual(self.add(e).json, {"added": 1})
        mine = [s for s in self.list("?limit=500") if s["email"].endswith("@paging.test")]
        self.assertEqual([s["email"] for s in mine], list(reversed(emails)))  # newest first
        first = self.list("?limit=3")
        self.assertEqual(len(first), 3)
        second = self.list(f"?limit=3&before={first[-1]['id']}")
        self.assertEqual(len(second), 3)
        self.assertTrue(all(s["id"] < first[-1]["id"] for s in second))
        self.assertEqual(self.list("?reason=hard_bounce"), [])
        self.assertTrue(self.list("?reason=manual"))
        for query, field in (("?reason=bounced", "reason"), ("?limit=0", "limit"),
                             ("?limit=501", "limit"), ("?before=x", "before"),
                             ("?email=nobody", "email")):
            with self.subTest(query=query):
                r = self.admin.request("GET", "/api/suppressions" + query)
                self.assertError(r, 400, "invalid_request", field)
        self.assertEqual(len(self.list("?limit=500")), len(self.list("?limit=500")))
        self.assertLessEqual(len(self.list()), 50)

    def test_bad_requests_name_the_field(self):
        cases = [({"emails": ["ok@example.com", "not an address"]}, "emails[1]"),
                 ({"emails": ["ok@example.com", 7]}, "emails[1]"),
                 ({"emails": []}, "emails"), ({"emails": "a@example.com"}, "emails"),
                 ({}, "emails"), ({"emails": ["a@example.com"], "reason": "x"}, "reason"),
                 ({"emails": [f"n{i}@example.com" for i in range(1001)]}, "emails")]
        for body, field in cases:
            with self.subTest(field=field):
                r = self.admin.request("POST", "/api/suppressions", body)
                self.assertError(r, 400, "invalid_request", field)
        self.assertEqual(self.list("?email=ok@example.com"), [])
        r = self.add(*[f"bulk{i}@example.com" for i in range(1000)])
        self.assertEqual((r.status, r.json), (200, {"added": 1000}), r.raw[:200])

    def test_only_admin_and_technical_change_it(self):
        for client in (self.ana, self.mkt):
            self.assertError(self.add("x@roles.test", client=client), 403, "forbidden")
        self.assertEqual(self.add("x@roles.test").json, {"added": 1})
        for client in (self.ana, self.mkt):
            r = client.request("DELETE", "/api/suppressions/x@roles.test")
            self.assertError(r, 403, "forbidden")
        self.assertEqual(len(self.list("?email=x@roles.test", client=self.mkt)), 1)
        self.assertEqual(self.add("y@roles.test", client=self.tech).json, {"added": 1})

    def test_changes_are_audited(self):
        self.assertEqual(self.add("a1@audit.test", "a2@audit.test").json, {"added": 2})
        r = self.tech.request("DELETE", "/api/suppressions/a1@audit.test")
        self.assertEqual(r.status, 204, r.raw)
        events = audit_events(self.admin)
        added = next(e for e in events if e["action"] == "suppression.add")
        self.assertEqual(added["actor"], "admin@acme.test")
        self.assertIn("count=2", added["detail"])
        removed = next(e for e in events if e["action"] == "suppression.remove")
        self.assertEqual((removed["actor"], removed["target"]),
                         ("tech@acme.test", "a1@audit.test"))


class MailFromTap:
    """A session's input, noting the envelope sender of each MAIL command it reads."""

    def __init__(self, rfile, session):
        self.rfile, self.session = rfile, session

    def readline(self):
        line = self.rfile.readline()
        if line[:5].upper() == b"MAIL ":
            self.session.mail_from = line.decode().split("<", 1)[1].split(">", 1)[0]
        return line

    def close(self):
        self.rfile.close()


class EnvelopeRelaySession(RelaySession):
    """test_events.py's relay session, which also refuses block… with 550 5.7.1 (a
    policy) and records the envelope sender of each message it takes."""

    def setup(self):
        super().setup()
        self.mail_from = None
        self.rfile = MailFromTap(self.rfile, self)

    def rcpt(self, line, rcpts):
        address = line.split("<", 1)[1].split(">", 1)[0]
        if address.startswith("block"):
            self.say(f"550 5.7.1 <{address}>: Recipient address rejected: Access denied")
        else:
            super().rcpt(line, rcpts)

    def data(self, rcpts):
        if any(r.startswith("late") for r in rcpts):
            # A filter after DATA refusing the whole message with an address status: it
            # names no one recipient.
            self.say("354 End data with <CR><LF>.<CR><LF>")
            while self.rfile.readline() not in (b".\r\n", b""):
                pass
            return self.say("550 5.1.1 Recipient refused by the content filter")
        with self.server.lock:
            self.server.senders.append(self.mail_from)
        super().data(rcpts)


class EnvelopeRelay(Relay):
    def __init__(self):
        self.senders = []  # the envelope sender of each message it took
        super().__init__()
        self.RequestHandlerClass = EnvelopeRelaySession


class DeliveryCase(unittest.TestCase):
    """A gateway relaying to the scripted relay; fresh for each test. bounces: the
    [bounces] domain, or None; smtp: SMTP submission too (with STARTTLS)."""

    bounces = None
    smtp = False

    def setUp(self):
        self.relay = EnvelopeRelay()
        self.addCleanup(self.relay.stop)
        config = {"relay": {"retry_base": "1s", "retry_max": "2s", "give_up": "1h"}}
        if self.bounces:
            config["bounces"] = {"domain": self.bounces}
        self.gw = Gateway(relay=f"smtp://127.0.0.1:{self.relay.port}", config=config,
                          smtp_tls=self.smtp)
        self.gw.extra_args = ["--public-url", "http://127.0.0.1:1"]
        self.gw.init("acme", "admin@acme.test")
        self.addCleanup(self.gw.cleanup)
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme")
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")

    def send(self, to, *cc):
        body = send_body(to=to)
        if cc:
            body["personalizations"][0]["cc"] = [{"email": a} for a in cc]
        r = self.gw.client().request("POST", NETCORE, body,
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(r.status, 200, r.raw)
        return r.json["data"]["message_id"]

    def message(self, mid):
        r = self.admin.request("GET", "/api/messages/" + mid)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def wait_done(self, mid):
        done = wait_until(lambda: self.message(mid)["status"] in ("sent", "failed", "dropped"),
                          timeout=30)
        self.assertTrue(done, self.message(mid))
        return self.message(mid)

    def events(self, mid):
        r = self.admin.request("GET", f"/api/events?limit=1000&message_id={mid}")
        self.assertEqual(r.status, 200, r.raw)
        return list(reversed(r.json["events"]))

    def of_type(self, mid, type):
        """The events of a type by recipient; a recipient told twice fails the test."""
        events = [e for e in self.events(mid) if e["type"] == type]
        by_rcpt = {e["recipient"]: e["data"] for e in events}
        self.assertEqual(len(by_rcpt), len(events), events)
        return by_rcpt

    def suppressions(self, query=""):
        r = self.admin.request("GET", "/api/suppressions" + query)
        self.assertEqual(r.status, 200, r.raw)
        return r.json["suppressions"]

    def suppress(self, *emails):
        r = self.admin.request("POST", "/api/suppressions", {"emails": list(emails)})
        self.assertEqual(r.status, 200, r.raw)


class SuppressedAtDeliveryTest(DeliveryCase):
    def test_a_suppressed_recipient_is_left_out_and_dropped(self):
        self.suppress("Carol@Example.com")
        mid = self.send("bob@example.com", "carol@example.com")
        self.assertEqual(self.wait_done(mid)["status"], "sent")
        self.assertEqual(self.relay.received, [["bob@example.com"]])
        self.assertEqual(self.of_type(mid, "message.delivered").keys(), {"bob@example.com"})
        dropped = self.of_type(mid, "message.dropped")
        self.assertEqual(list(dropped), ["carol@example.com"])
        self.assertEqual(dropped["carol@example.com"]["reason"], "recipient_suppressed")
        self.assertEqual(dropped["carol@example.com"]["smtp_id"], f"<{mid}@acme.test>")
        self.assertEqual(len(self.events(mid)), 4)  # processed x2, delivered, dropped

    def test_a_message_with_only_suppressed_recipients_is_dropped(self):
        self.suppress("bob@example.com", "carol@example.com")
        mid = self.send("bob@example.com", "carol@example.com")
        m = self.wait_done(mid)
        self.assertEqual((m["status"], m["reason"]), ("dropped", "recipient_suppressed"))
        self.assertEqual(self.relay.received, [])
        dropped = self.of_type(mid, "message.dropped")
        self.assertEqual(sorted(dropped), ["bob@example.com", "carol@example.com"])
        self.assertEqual({d["reason"] for d in dropped.values()}, {"recipient_suppressed"})
        # Once listed no more, the address is delivered again.
        r = self.admin.request("DELETE", "/api/suppressions/bob@example.com")
        self.assertEqual(r.status, 204, r.raw)
        mid = self.send("bob@example.com")
        self.assertEqual(self.wait_done(mid)["status"], "sent")
        self.assertEqual(self.relay.received, [["bob@example.com"]])

    def test_a_retried_part_tells_a_suppressed_recipient_once(self):
        self.suppress("carol@example.com")
        mid = self.send("grey@example.com", "carol@example.com")
        wait_until(lambda: len([e for e in self.events(mid)
                                if e["type"] == "message.deferred"]) >= 2, timeout=30)
        deferred = [e for e in self.events(mid) if e["type"] == "message.deferred"]
        self.assertGreaterEqual(len(deferred), 2, self.events(mid))
        self.assertEqual({e["recipient"] for e in deferred}, {"grey@example.com"})
        dropped = [e for e in self.events(mid) if e["type"] == "message.dropped"]
        self.assertEqual([(e["recipient"], e["data"]["reason"]) for e in dropped],
                         [("carol@example.com", "recipient_suppressed")])
        # Given up at last: grey is dropped for that, carol is not told twice.
        self.gw.advance_clock(3601)
        self.assertEqual(self.wait_done(mid)["reason"], "gave_up")
        dropped = sorted((e["recipient"], e["data"]["reason"]) for e in self.events(mid)
                         if e["type"] == "message.dropped")
        self.assertEqual(dropped, [("carol@example.com", "recipient_suppressed"),
                                   ("grey@example.com", "gave_up")])


class RelayRefusalTest(DeliveryCase):
    def test_5_1_1_bounces_and_suppresses_5_7_1_blocks(self):
        mid = self.send("bob@example.com", "bounce@example.com", "block@example.com")
        self.assertEqual(self.wait_done(mid)["status"], "sent", self.message(mid))
        bounced = self.of_type(mid, "message.bounced")
        self.assertEqual((bounced["bounce@example.com"]["type"],
                          bounced["bounce@example.com"]["status"]), ("bounce", "5.1.1"))
        self.assertEqual((bounced["block@example.com"]["type"],
                          bounced["block@example.com"]["status"]), ("blocked", "5.7.1"))
        listed = self.suppressions()
        self.assertEqual([s["email"] for s in listed], ["bounce@example.com"])
        s = listed[0]
        self.assertEqual((s["reason"], s["message_id"]), ("hard_bounce", mid))
        self.assertRegex(s["detail"], r"^5\.1\.1 550 5\.1\.1 <bounce@example\.com>: .*unknown")
        self.assertEqual(self.suppressions("?reason=hard_bounce"), listed)
        # A refusal of the whole message after DATA names no one recipient: a block for
        # each, whatever its status says, and nobody is suppressed.
        late = self.send("late@example.com", "later@example.com")
        self.assertEqual(self.wait_done(late)["status"], "failed", self.message(late))
        bounced = self.of_type(late, "message.bounced")
        self.assertEqual(sorted(bounced), ["late@example.com", "later@example.com"])
        self.assertEqual({(b["type"], b["status"]) for b in bounced.values()},
                         {("blocked", "5.1.1")})
        self.assertEqual([s["email"] for s in self.suppressions()], ["bounce@example.com"])
        # The next message to it is not sent to it; the relay refuses the rest.
        mid = self.send("bounce@example.com", "block@example.com")
        m = self.wait_done(mid)
        self.assertEqual((m["status"], m["reason"]), ("failed", "relay_rejected"))
        self.assertEqual([r["email"] for r in m["rejected"]], ["block@example.com"])
        self.assertEqual(self.of_type(mid, "message.dropped")["bounce@example.com"]["reason"],
                         "recipient_suppressed")
        self.assertEqual(self.of_type(mid, "message.bounced")["block@example.com"]["type"],
                         "blocked")


class ReturnPathTest(DeliveryCase):
    def test_without_a_bounce_domain_the_from_is_the_envelope_sender(self):
        mid = self.send("bob@example.com")
        self.assertEqual(self.wait_done(mid)["status"], "sent")
        self.assertEqual(self.relay.senders, ["news@acme.test"])


class VerpTest(DeliveryCase):
    bounces = "bounces.test"
    smtp = True
    submit = AcceptTest.submit

    def test_each_message_leaves_from_its_own_return_path(self):
        mids = [self.send("bob@example.com"), self.send("carol@example.com")]
        for mid in mids:
            self.assertEqual(self.wait_done(mid)["status"], "sent")
        self.assertEqual(len(self.relay.senders), 2)
        got = {}
        for sender in self.relay.senders:
            m = VERP.match(sender)
            self.assertTrue(m, sender)
            got[m.group(1)] = m.group(2)
        self.assertEqual(set(got), set(mids))
        self.assertNotEqual(got[mids[0]], got[mids[1]])  # a tag of its own

    def test_a_submitted_message_leaves_from_its_return_path_too(self):
        mid = self.submit(("bob@example.com",),
                          b"From: news@acme.test\r\nTo: bob@example.com\r\n"
                          b"Subject: Hi\r\n\r\nHello over SMTP\r\n")
        self.assertEqual(self.wait_done(mid)["status"], "sent")
        m = VERP.match(self.relay.senders[0])
        self.assertTrue(m, self.relay.senders)
        self.assertEqual(m.group(1), mid)

    def test_posterns_own_mail_keeps_its_from(self):
        r = self.admin.request("POST", "/api/senders", {"addresses": ["ops@acme.test"]})
        self.assertIn(r.status, (200, 201), r.raw)
        self.assertTrue(wait_until(lambda: self.relay.senders, timeout=30))
        self.assertFalse(VERP.match(self.relay.senders[0]), self.relay.senders)


if __name__ == "__main__":
    main()
