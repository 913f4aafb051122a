"""Message events, read through GET /api/events: message.processed for each recipient of a
message accepted by the send API or SMTP, then what became of each recipient at the relay
(delivered, deferred, bounced) or why it was never sent (dropped: the sender lost its
authorization while the message waited, cancelled, given up). A scripted SMTP relay on
loopback answers each recipient by its name; kill -9 right after its 2xx writes no event
twice."""
import os
import signal
import smtplib
import socketserver
import ssl
import threading
import unittest

from harness import POSTGRES, PASSWORD, Gateway, main, send_body, wait_until

NETCORE = "/v5/mail/send"
SENDGRID = "/v3/mail/send"
LEASE = 600  # deliver.c LEASE_SECONDS


class Relay(socketserver.ThreadingTCPServer):
    """An SMTP relay on loopback that answers RCPT by the recipient's name: bounce… is
    refused for good (550 5.1.1), grey… for now (450 4.2.0), anyone else is taken; a
    message to spam… is refused after its DATA (554, no enhanced status).
    after_data(relay), when set, runs once a message's 250 has been written."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RelaySession)
        self.port = self.server_address[1]
        self.after_data = None
        self.received = []  # the RCPT lists of the messages it took
        self.message_ids = {}  # recipient -> the Message-ID of the copy it took for them
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class RelaySession(socketserver.StreamRequestHandler):
    def say(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.say("220 relay.test ESMTP")
        rcpts = []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].decode(errors="replace").upper()
            if verb in ("EHLO", "HELO"):
                self.say("250-relay.test")
                self.say("250 8BITMIME")
            elif verb == "MAIL":
                rcpts = []
                self.say("250 2.1.0 Ok")
            elif verb == "RCPT":
                self.rcpt(line.decode(errors="replace"), rcpts)
            elif verb == "DATA":
                self.data(rcpts)
            elif verb == "QUIT":
                self.say("221 2.0.0 Bye")
                return
            else:
                self.say("250 2.0.0 Ok")

    def rcpt(self, line, rcpts):
        address = line.split("<", 1)[1].split(">", 1)[0]
        if address.startswith("bounce"):
            self.say(f"550 5.1.1 <{address}>: Recipient address rejected: User unknown")
        elif address.startswith("grey"):
            self.say(f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted")
        else:
            rcpts.append(address)
            self.say("250 2.1.5 Ok")

    def data(self, rcpts):
        self.say("354 End data with <CR><LF>.<CR><LF>")
        message_id, in_header = None, True
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            in_header = in_header and line != b"\r\n"
            if in_header and message_id is None and line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
        if any(r.startswith("spam") for r in rcpts):
            return self.say("554 Message refused as spam")
        with self.server.lock:
            self.server.received.append(list(rcpts))
            self.server.message_ids.update((r, message_id) for r in rcpts)
        self.say("250 2.0.0 Ok: queued as 4XYZ")
        hook, self.server.after_data = self.server.after_data, None
        if hook:
            hook(self.server)


class EventsCase(unittest.TestCase):
    """A gateway with SMTP submission relaying to the scripted relay; fresh for each test."""

    relay_ini = ""

    def setUp(self):
        self.relay = Relay()
        self.addCleanup(self.relay.stop)
        self.gw = Gateway(smtp_tls=True, relay=f"smtp://127.0.0.1:{self.relay.port}")
        self.gw.init("acme", "admin@acme.test")
        self.addCleanup(self.gw.cleanup)
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme")
        self.configure()
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")

    def configure(self, paused=False):
        relay = {"retry_base": "1s", "retry_max": "2s", "give_up": "1h"}
        if paused:
            relay["paused"] = "yes"
        self.gw.config = {"relay": relay}
        self.gw.extra_args = ["--public-url", "http://127.0.0.1:1"]

    def restart(self, paused=False):
        self.gw.stop()
        self.configure(paused)
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")

    def send(self, payload, path=NETCORE):
        r = self.gw.client().request("POST", path, payload,
                                     headers={"Authorization": "Bearer " + self.key})
        self.assertIn(r.status, (200, 202), r.raw)
        return r.json["data"]["message_id"] if path == NETCORE else r.header("X-Message-Id")

    def events(self, mid, type=None):
        """The message's events, oldest first."""
        query = f"/api/events?limit=1000&message_id={mid}" + (f"&type={type}" if type else "")
        r = self.admin.request("GET", query)
        self.assertEqual(r.status, 200, r.raw)
        return list(reversed(r.json["events"]))

    def wait_events(self, mid, check, timeout=30):
        """Waits (bounded) until check(events) holds; returns the events."""
        got = wait_until(lambda: (lambda e: e if check(e) else None)(self.events(mid)),
                         timeout=timeout)
        self.assertTrue(got, f"events of {mid}: {self.events(mid)}")
        return got

    def send_to(self, to, *cc):
        """Sends one personalization to to, with cc; returns the message's id."""
        body = send_body(to=to)
        if cc:
            body["personalizations"][0]["cc"] = [{"email": a} for a in cc]
        return self.send(body)

    def wait_kind(self, mid, type, count):
        """Waits (bounded) until the message has count events of type; returns all its
        events."""
        return self.wait_events(mid, lambda e: len(self.by_recipient(e, type)) == count)

    def by_recipient(self, events, type):
        return {e["recipient"]: e["data"] for e in events if e["type"] == type}

    def message(self, mid):
        r = self.admin.request("GET", "/api/messages/" + mid)
        self.assertEqual(r.status, 200, r.raw)
        return r.json


class AcceptTest(EventsCase):
    def test_every_recipient_of_an_api_send_is_processed_then_delivered(self):
        body = send_body(categories=["welcome", "spring"], custom_args={"user": "42"})
        body["personalizations"] = [
            {"to": [{"email": "bob@example.com"}], "cc": [{"email": "carol@example.com"}],
             "bcc": [{"email": "dan@example.com"}]},
            {"to": [{"email": "erin@example.com"}]}]
        mid = self.send(body, SENDGRID)
        everyone = {"bob@example.com", "carol@example.com", "dan@example.com",
                    "erin@example.com"}
        events = self.wait_events(mid, lambda e: set(self.by_recipient(
            e, "message.delivered")) == everyone)
        processed = [e for e in events if e["type"] == "message.processed"]
        self.assertEqual(sorted(e["recipient"] for e in processed), sorted(everyone))
        for e in events:
            self.assertEqual(e["message_id"], mid)
            self.assertEqual(e["data"]["message_id"], mid)
            self.assertEqual(e["data"]["recipient"], e["recipient"])
            self.assertEqual(e["data"]["from"], "news@acme.test")
            self.assertEqual(e["data"]["tags"], ["welcome", "spring"])
            self.assertEqual(e["data"]["custom_args"], {"user": "42"})
        delivered = self.by_recipient(events, "message.delivered")
        for data in delivered.values():
            self.assertEqual(data["attempt"], 1)
            self.assertEqual(data["reply"], "250 2.0.0 Ok: queued as 4XYZ")
        # Each event names the Message-ID its recipient's copy carried: the second
        # personalization's has its index.
        for e in events:
            self.assertEqual(e["data"]["smtp_id"], self.relay.message_ids[e["recipient"]])
        self.assertEqual(self.relay.message_ids["carol@example.com"], f"<{mid}@acme.test>")
        self.assertEqual(self.relay.message_ids["erin@example.com"], f"<{mid}.1@acme.test>")
        self.assertEqual(len(events), 8)
        # Each recipient hears of its acceptance before its delivery.
        order = [(e["recipient"], e["type"]) for e in events]
        for who in everyone:
            self.assertLess(order.index((who, "message.processed")),
                            order.index((who, "message.delivered")))

    def submit(self, rcpts, message):
        """Submits message over SMTP to rcpts; returns its id."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30) as s:
            s.starttls(context=ctx)
            s.login("apikey", self.key)
            s.mail("news@acme.test")
            for rcpt in rcpts:
                self.assertEqual(s.rcpt(rcpt)[0], 250)
            code, text = s.data(message)
        self.assertEqual(code, 250)
        return text.decode().rsplit(" ", 1)[1]

    def test_every_envelope_recipient_of_an_smtp_submission_is_processed(self):
        mid = self.submit(("bob@example.com", "carol@example.com"),
                          b"From: news@acme.test\r\nTo: bob@example.com\r\n"
                          b"Subject: Hi\r\n\r\nHello over SMTP\r\n")
        events = self.wait_kind(mid, "message.delivered", 2)
        self.assertEqual(sorted(self.by_recipient(events, "message.processed")),
                         ["bob@example.com", "carol@example.com"])
        for e in events:
            self.assertEqual((e["data"]["tags"], e["data"]["custom_args"]), ([], {}))
            # The Message-ID Postern added.
            self.assertEqual(e["data"]["smtp_id"], f"<{mid}@acme.test>")
        self.assertEqual(self.relay.message_ids["bob@example.com"], f"<{mid}@acme.test>")
        self.assertEqual(len(events), 4)

    def test_a_submitted_message_keeps_its_own_message_id_in_its_events(self):
        mid = self.submit(("dan@example.com",),
                          b"From: news@acme.test\r\nTo: dan@example.com\r\n"
                          b"Message-ID: <order-7.x@shop.example>\r\n"
                          b"Subject: Hi\r\n\r\nHello over SMTP\r\n")
        events = self.wait_kind(mid, "message.delivered", 1)
        self.assertEqual([e["data"]["smtp_id"] for e in events],
                         ["<order-7.x@shop.example>"] * 2)
        self.assertEqual(self.relay.message_ids["dan@example.com"], "<order-7.x@shop.example>")

    def test_posterns_own_mail_has_no_events(self):
        r = self.admin.request("POST", "/api/senders", {"addresses": ["ops@acme.test"]})
        self.assertIn(r.status, (200, 201), r.raw)
        system = wait_until(lambda: [m for m in self.admin.request(
            "GET", "/api/messages?status=sent").json["messages"] if m["kind"] == "system"])
        self.assertTrue(system)
        self.assertEqual(self.events(system[0]["id"]), [])


class RelayAnswerTest(EventsCase):
    def test_each_recipient_is_delivered_or_bounced_as_the_relay_answered(self):
        body = send_body(to="ok@example.com")
        body["personalizations"][0]["to"] += [{"email": "grey@example.com"},
                                              {"email": "bounce@example.com"}]
        body["personalizations"].append({"to": [{"email": "bounce2@example.com"}]})
        mid = self.send(body)
        events = self.wait_events(mid, lambda e: len(e) == 8)
        delivered = self.by_recipient(events, "message.delivered")
        self.assertEqual(list(delivered), ["ok@example.com"])
        self.assertEqual((delivered["ok@example.com"]["attempt"],
                          delivered["ok@example.com"]["reply"]),
                         (1, "250 2.0.0 Ok: queued as 4XYZ"))
        bounced = self.by_recipient(events, "message.bounced")
        self.assertEqual(sorted(bounced), ["bounce2@example.com", "bounce@example.com",
                                           "grey@example.com"])
        self.assertEqual((bounced["bounce@example.com"]["type"],
                          bounced["bounce@example.com"]["status"]), ("bounce", "5.1.1"))
        self.assertRegex(bounced["bounce@example.com"]["reply"], r"^550 5\.1\.1 .*User unknown")
        # Refused for now inside a part the relay took: never tried again, so it bounced,
        # as a block (SendGrid's word for a temporary refusal).
        self.assertEqual((bounced["grey@example.com"]["type"],
                          bounced["grey@example.com"]["status"]), ("blocked", "4.2.0"))
        self.assertEqual(bounced["bounce2@example.com"]["status"], "5.1.1")
        self.assertEqual(bounced["bounce2@example.com"]["attempt"], 1)
        # The Message-ID each part went out with (the relay refused the second's recipient).
        for who in ("ok@example.com", "grey@example.com", "bounce@example.com"):
            self.assertEqual(self.by_recipient(events, "message.processed")[who]["smtp_id"],
                             f"<{mid}@acme.test>")
        self.assertEqual(self.relay.message_ids["ok@example.com"], f"<{mid}@acme.test>")
        self.assertEqual(delivered["ok@example.com"]["smtp_id"], f"<{mid}@acme.test>")
        self.assertEqual(bounced["grey@example.com"]["smtp_id"], f"<{mid}@acme.test>")
        self.assertEqual(bounced["bounce2@example.com"]["smtp_id"], f"<{mid}.1@acme.test>")
        self.assertEqual(self.message(mid)["status"], "sent")
        self.assertEqual(self.relay.received, [["ok@example.com"]])

    def test_a_message_refused_after_its_data_bounces_for_each_recipient(self):
        mid = self.send_to("spam1@example.com", "spam2@example.com")
        events = self.wait_kind(mid, "message.bounced", 2)
        # A refusal that does not say the address is bad is a block.
        for data in self.by_recipient(events, "message.bounced").values():
            self.assertEqual((data["type"], data["status"], data["attempt"], data["reply"]),
                             ("blocked", "554", 1, "554 Message refused as spam"))
        self.assertEqual(self.message(mid)["reason"], "relay_rejected")

    def test_a_deferral_is_told_per_attempt_until_it_is_given_up(self):
        mid = self.send_to("grey@example.com", "grey2@example.com")
        events = self.wait_kind(mid, "message.deferred", 2)
        deferred = self.by_recipient(events, "message.deferred")
        self.assertEqual(deferred["grey@example.com"]["attempt"], 1)
        self.assertEqual(deferred["grey@example.com"]["smtp_id"], f"<{mid}@acme.test>")
        self.assertRegex(deferred["grey2@example.com"]["reply"], r"^450 4\.2\.0 <grey2@")
        self.gw.advance_clock(3601)  # past give_up
        events = self.wait_events(mid, lambda e: self.by_recipient(e, "message.dropped"))
        dropped = self.by_recipient(events, "message.dropped")
        self.assertEqual(sorted(dropped), ["grey2@example.com", "grey@example.com"])
        for data in dropped.values():
            self.assertEqual(data["reason"], "gave_up")
            self.assertEqual(data["smtp_id"], f"<{mid}@acme.test>")
            self.assertGreaterEqual(data["attempt"], 2)
        self.assertEqual(self.message(mid)["reason"], "gave_up")
        self.assertEqual(self.events(mid)[-2:], events[-2:])  # nothing after the end


class DroppedTest(EventsCase):
    def setUp(self):
        super().setUp()
        self.restart(paused=True)

    def test_a_sender_that_lost_its_authorization_drops_each_recipient(self):
        added = self.admin.request("POST", "/api/senders",
                                   {"addresses": ["news@acme.test", "ops@acme.test"]})
        ids = {a["address"]: a["id"] for a in added.json["added"]}
        for sid in ids.values():
            self.admin.request("POST", f"/api/senders/{sid}/verify")
        r = self.admin.request("PUT", "/api/settings/sender-auth",
                               {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)
        body = send_body(to="bob@example.com")
        body["personalizations"].append({"to": [{"email": "carol@example.com"}]})
        mid = self.send(body)
        r = self.admin.request("DELETE", f"/api/senders/{ids['news@acme.test']}")
        self.assertEqual(r.status, 204)
        self.restart()
        events = self.wait_kind(mid, "message.dropped", 2)
        for who, data in self.by_recipient(events, "message.dropped").items():
            self.assertEqual(data["reason"], "sender_not_authorized")
            self.assertEqual(data["smtp_id"], f"<{mid}.1@acme.test>" if who.startswith("carol")
                             else f"<{mid}@acme.test>")
        self.assertEqual([e["type"] for e in events],
                         ["message.processed"] * 2 + ["message.dropped"] * 2)
        self.assertEqual(self.message(mid)["status"], "dropped")

    def test_a_cancelled_message_drops_each_recipient(self):
        body = send_body(to="bob@example.com")
        body["personalizations"][0]["bcc"] = [{"email": "dan@example.com"}]
        body["personalizations"].append({"to": [{"email": "carol@example.com"}]})
        mid = self.send(body)
        r = self.admin.request("POST", f"/api/messages/{mid}/cancel")
        self.assertEqual(r.status, 200, r.raw)
        events = self.events(mid)
        dropped = self.by_recipient(events, "message.dropped")
        self.assertEqual(sorted(dropped), ["bob@example.com", "carol@example.com",
                                           "dan@example.com"])
        self.assertEqual({d["reason"] for d in dropped.values()}, {"cancelled"})
        # Each with the Message-ID its personalization would have carried.
        self.assertEqual({who: d["smtp_id"] for who, d in dropped.items()},
                         {"bob@example.com": f"<{mid}@acme.test>",
                          "dan@example.com": f"<{mid}@acme.test>",
                          "carol@example.com": f"<{mid}.1@acme.test>"})
        r = self.admin.request("POST", f"/api/messages/{mid}/cancel")
        self.assertEqual(r.status, 409, r.raw)
        self.assertEqual(self.events(mid), events)  # a refused cancel writes nothing


class CrashTest(EventsCase):
    def test_kill_9_right_after_the_relays_2xx_writes_each_event_once(self):
        def crash(relay):
            os.kill(self.gw.proc.pid, signal.SIGKILL)
        self.relay.after_data = crash
        mid = self.send_to("bob@example.com", "carol@example.com")
        self.assertTrue(wait_until(lambda: self.gw.proc.poll() is not None, timeout=30))
        self.gw.stop()
        if POSTGRES:
            # A claim of a node that died is anyone's again only once its lease ran out.
            self.gw.advance_clock(LEASE + 1)
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")
        events = self.wait_kind(mid, "message.delivered", 2)
        self.assertTrue(wait_until(lambda: self.message(mid)["status"] == "sent"))
        kinds = sorted((e["recipient"], e["type"]) for e in self.events(mid))
        self.assertEqual(kinds, [("bob@example.com", "message.delivered"),
                                 ("bob@example.com", "message.processed"),
                                 ("carol@example.com", "message.delivered"),
                                 ("carol@example.com", "message.processed")])
        self.assertGreaterEqual(len(self.relay.received), 1)
        self.assertEqual(len(events), 4)


if __name__ == "__main__":
    main()
