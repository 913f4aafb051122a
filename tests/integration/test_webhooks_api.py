"""Webhook endpoints and the event log over real HTTP (GET /api/events, GET/POST
/api/webhooks, PATCH/DELETE /api/webhooks/{id}, POST /api/webhooks/{id}/test): who may
manage them, the checks on a request and the field each refusal names, the secret shown
once, the audit rows, account isolation, the refusal of URLs on private addresses (at
creation, and again at each delivery), and a test event arriving signed at a real receiver
on loopback."""
import base64
import hashlib
import hmac
import http.server
import json
import re
import socket
import threading
import time
import unittest

from harness import Gateway, RolesCase, audit_events, main, wait_until

ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
EVENT_TYPES = ["message.processed", "message.deferred", "message.delivered", "message.bounced",
               "message.dropped", "message.complained", "sender.added", "sender.verified",
               "sender.removed", "sender_auth.changed", "domain.verified", "domain.failed",
               "sender_policy.refused", "sender_policy.monitored"]


class Receiver:
    """An HTTP server on a free 127.0.0.1 port, in a thread, that records every request
    (method, path, headers with lower-case names, body) and answers 200, or N for a path
    under /status/N/."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({
                        "method": self.command, "path": self.path, "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                status = re.match(r"^/status/(\d{3})/", self.path)
                self.send_response(int(status.group(1)) if status else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"].split("?")[0] == path]

    def wait(self, path, timeout=20):
        return wait_until(lambda: self.at(path), timeout)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def hook_of(client, hook_id):
    r = client.request("GET", "/api/webhooks")
    assert r.status == 200, r.raw
    return next((w for w in r.json["webhooks"] if w["id"] == hook_id), None)


class WebhooksApi(RolesCase):
    """acme's four roles and globex's Admin, with one receiver."""

    @classmethod
    def more_setup(cls):
        cls.gw.add_account("globex", "admin@globex.test")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.globex = cls.gw.logged_in("admin@globex.test")
        cls.receiver = Receiver()
        cls.serial = 0

    @classmethod
    def tearDownClass(cls):
        cls.receiver.stop()
        super().tearDownClass()

    def add(self, client=None, **fields):
        """Makes an endpoint (a fresh path on the receiver unless url is given)."""
        type(self).serial += 1
        body = {"url": self.receiver.url(f"/hook/{self.serial}")}
        body.update(fields)
        r = (client or self.admin).request("POST", "/api/webhooks", body)
        self.assertEqual(r.status, 201, r.raw)
        return r.json

    def test_who_may_manage(self):
        for role, client in self.clients.items():
            with self.subTest(role=role):
                self.assertEqual(client.request("GET", "/api/events").status, 200)
                allowed = role in ("admin", "technical")
                r = client.request("POST", "/api/webhooks",
                                   {"url": self.receiver.url(f"/roles/{role}")})
                if allowed:
                    self.assertEqual(r.status, 201, r.raw)
                    hook_id = r.json["id"]
                else:
                    self.assertError(r, 403, "forbidden")
                    hook_id = self.add()["id"]
                path = f"/api/webhooks/{hook_id}"
                calls = [("GET", "/api/webhooks", None), ("PATCH", path, {"enabled": False}),
                         ("POST", path + "/test", None), ("DELETE", path, None)]
                for method, p, body in calls:
                    r = client.request(method, p, body)
                    if allowed:
                        self.assertLess(r.status, 300, (method, p, r.raw))
                    else:
                        self.assertError(r, 403, "forbidden")
                # Refused calls changed nothing.
                if not allowed:
                    self.assertTrue(hook_of(self.admin, hook_id)["enabled"])

    def test_standard_secret_shown_once(self):
        made = self.add()
        self.assertEqual(made["format"], "standard")
        self.assertEqual(made["events"], EVENT_TYPES)
        self.assertIs(made["enabled"], True)
        self.assertRegex(made["created_at"], ISO)
        self.assertIsNone(made["last_delivery"])
        self.assertRegex(made["secret"], r"^whsec_[A-Za-z0-9+/]+=*$")
        self.assertGreaterEqual(len(base64.b64decode(made["secret"][6:])), 24)
        self.assertNotIn("public_key", made)
        r = self.admin.request("GET", "/api/webhooks")
        self.assertEqual(r.status, 200)
        listed = next(w for w in r.json["webhooks"] if w["id"] == made["id"])
        self.assertNotIn("secret", listed)
        self.assertNotIn(made["secret"].encode(), r.raw)
        for key in ("last_success_at", "failing_since", "disabled_at"):
            self.assertIsNone(listed[key])
        # Sealed in the store, never as its text.
        self.assertNotIn(made["secret"].encode(), self.gw.dump())

    def test_sendgrid_public_key(self):
        made = self.add(format="sendgrid", events=["message.delivered", "message.bounced"])
        self.assertEqual(made["format"], "sendgrid")
        self.assertEqual(made["events"], ["message.delivered", "message.bounced"])
        self.assertNotIn("secret", made)
        der = base64.b64decode(made["public_key"])
        self.assertEqual(der[0], 0x30)  # a DER SEQUENCE: the SubjectPublicKeyInfo
        self.assertEqual(hook_of(self.admin, made["id"])["public_key"], made["public_key"])
        # The format carries message events only: that is what "every type" means for it,
        # and an account event cannot be asked for.
        self.assertEqual(self.add(format="sendgrid")["events"], EVENT_TYPES[:6])
        r = self.admin.request("POST", "/api/webhooks", {
            "url": self.receiver.url("/sg"), "format": "sendgrid",
            "events": ["message.delivered", "sender.added"]})
        self.assertError(r, 400, "invalid_request", "events")

    def test_events_listed_in_order_once(self):
        made = self.add(events=["message.bounced", "sender.added", "message.bounced"])
        self.assertEqual(made["events"], ["message.bounced", "sender.added"])
        self.assertEqual(self.add(events=[])["events"], EVENT_TYPES)
        self.assertEqual(self.add(events=None)["events"], EVENT_TYPES)

    def test_refusals_name_their_field(self):
        ok = self.receiver.url("/refused")
        cases = [
            ({}, "url"),
            ({"url": 12}, "url"),
            ({"url": ""}, "url"),
            ({"url": "not a url"}, "url"),
            ({"url": "ftp://127.0.0.1/x"}, "url"),
            ({"url": "127.0.0.1/x"}, "url"),
            ({"url": f"http://user:pass@127.0.0.1:{self.receiver.port}/"}, "url"),
            ({"url": ok + "?" + "a" * 2100}, "url"),
            ({"url": ok, "format": "xml"}, "format"),
            ({"url": ok, "format": 1}, "format"),
            ({"url": ok, "events": "message.delivered"}, "events"),
            ({"url": ok, "events": ["message.nope"]}, "events"),
            ({"url": ok, "events": ["webhook.test"]}, "events"),
            ({"url": ok, "events": [1]}, "events"),
            ({"url": ok, "secret": "whsec_mine"}, "secret"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                r = self.admin.request("POST", "/api/webhooks", body)
                self.assertError(r, 400, "invalid_request", field)
        self.assertNotIn(ok, json.dumps(hook_urls(self.admin)))
        hook_id = self.add()["id"]
        for body, field in [({"enabled": "yes"}, "enabled"), ({}, "enabled"),
                            ({"enabled": True, "url": ok}, "url")]:
            with self.subTest(body=body):
                r = self.admin.request("PATCH", f"/api/webhooks/{hook_id}", body)
                self.assertError(r, 400, "invalid_request", field)
        for query, field in [("type=message.nope", "type"), ("before=x", "before"),
                             ("before=0", "before"), ("limit=0", "limit")]:
            with self.subTest(query=query):
                r = self.ana.request("GET", "/api/events?" + query)
                self.assertError(r, 400, "invalid_request", field)
        for path in ("/api/webhooks/0", "/api/webhooks/x", "/api/webhooks/999999"):
            self.assertError(self.admin.request("DELETE", path), 404, "not_found")
            self.assertError(self.admin.request("POST", path + "/test"), 404, "not_found")

    def test_audited(self):
        made = self.add(url=self.receiver.url("/audited?token=s3cret"), format="sendgrid")
        path = f"/api/webhooks/{made['id']}"
        self.assertEqual(self.tech.request("PATCH", path, {"enabled": False}).status, 200)
        self.assertEqual(self.tech.request("PATCH", path, {"enabled": True}).status, 200)
        self.assertEqual(self.tech.request("POST", path + "/test").status, 202)
        self.assertEqual(self.tech.request("DELETE", path).status, 204)
        rows = [e for e in audit_events(self.admin)
                if e["target"] == self.receiver.url("/audited")]
        self.assertEqual([e["action"] for e in reversed(rows)],
                         ["webhook.add", "webhook.disable", "webhook.enable", "webhook.test",
                          "webhook.remove"])
        self.assertEqual(rows[-1]["actor"], "admin@acme.test")
        self.assertIn("format=sendgrid", rows[-1]["detail"])
        self.assertTrue(all(e["actor"] == "tech@acme.test" for e in rows[:-1]))
        self.assertNotIn("s3cret", json.dumps(audit_events(self.admin)))

    def test_accounts_apart(self):
        made = self.add()
        path = f"/api/webhooks/{made['id']}"
        self.assertIsNone(hook_of(self.globex, made["id"]))
        for method, p, body in [("DELETE", path, None), ("PATCH", path, {"enabled": False}),
                                ("POST", path + "/test", None)]:
            self.assertError(self.globex.request(method, p, body), 404, "not_found")
        self.assertTrue(hook_of(self.admin, made["id"])["enabled"])
        r = self.admin.request("POST", path + "/test")
        self.assertEqual(r.status, 202, r.raw)
        event_id = r.json["event_id"]
        theirs = self.globex.request("GET", "/api/events?type=webhook.test").json["events"]
        self.assertNotIn(event_id, [e["id"] for e in theirs])
        ours = self.ana.request("GET", "/api/events?type=webhook.test").json["events"]
        self.assertIn(event_id, [e["id"] for e in ours])

    def test_test_event_arrives_signed(self):
        made = self.add()
        r = self.admin.request("POST", f"/api/webhooks/{made['id']}/test")
        self.assertEqual(r.status, 202, r.raw)
        event_id = r.json["event_id"]
        got = self.receiver.wait(f"/hook/{self.serial}")
        self.assertTrue(got, "the test event did not arrive")
        req = got[0]
        h = req["headers"]
        self.assertEqual(req["method"], "POST")
        self.assertEqual(h["content-type"], "application/json")
        self.assertTrue(h["user-agent"].startswith("Postern-Webhooks/"))
        self.assertEqual(h["webhook-id"], f"evt_{event_id}")
        self.assertLess(abs(int(h["webhook-timestamp"]) - time.time()), 300)
        key = base64.b64decode(made["secret"][len("whsec_"):])
        signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + req["body"]
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        self.assertIn("v1," + expected, h["webhook-signature"].split(" "))
        body = json.loads(req["body"])
        self.assertEqual(body["type"], "webhook.test")
        self.assertRegex(body["timestamp"], ISO)
        self.assertEqual(body["data"]["webhook_id"], made["id"])
        self.assertTrue(body["data"]["message"])
        shown = wait_until(lambda: (hook_of(self.admin, made["id"])["last_delivery"] or {})
                           .get("status") == "200", 10)
        self.assertTrue(shown, hook_of(self.admin, made["id"]))
        listed = hook_of(self.admin, made["id"])
        self.assertRegex(listed["last_delivery"]["at"], ISO)
        self.assertRegex(listed["last_success_at"], ISO)
        events = self.ana.request("GET", "/api/events?type=webhook.test&limit=5").json["events"]
        self.assertEqual(events[0]["id"], event_id)
        self.assertEqual(events[0]["type"], "webhook.test")

    def test_named_host_delivered(self):
        # A name is resolved and checked at each POST, and the connection pinned to what
        # the check approved: localhost's addresses, one of which the receiver listens on.
        made = self.add(url=f"http://localhost:{self.receiver.port}/named")
        self.assertEqual(self.admin.request("POST", f"/api/webhooks/{made['id']}/test").status,
                         202)
        self.assertTrue(self.receiver.wait("/named"), hook_of(self.admin, made["id"]))

    def test_failures_shown_and_logged(self):
        down = socket.socket()
        down.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        try:
            for url, expected in [
                    (f"http://127.0.0.1:{down.getsockname()[1]}/down?token=s3cret",
                     "connection refused"),
                    (self.receiver.url("/status/500/x?token=s3cret"), "HTTP 500")]:
                with self.subTest(expected=expected):
                    made = self.add(url=url)
                    r = self.admin.request("POST", f"/api/webhooks/{made['id']}/test")
                    self.assertEqual(r.status, 202)
                    status = lambda: (hook_of(self.admin, made["id"])["last_delivery"]
                                      or {}).get("status")
                    self.assertTrue(wait_until(lambda: status() == expected, 15),
                                    hook_of(self.admin, made["id"]))
                    listed = hook_of(self.admin, made["id"])
                    self.assertRegex(listed["failing_since"], ISO)
                    self.assertIsNone(listed["last_success_at"])
                    self.assertIs(listed["enabled"], True)
                    self.assertTrue(self.gw.log_lines(f"webhook {made['id']} "))
                    log = self.gw.read_log()
                    self.assertNotIn("s3cret", log)
                    self.assertNotIn(made["secret"], log)
        finally:
            down.close()

    def test_sendgrid_test_event_signed(self):
        made = self.add(format="sendgrid")
        self.assertEqual(self.admin.request("POST", f"/api/webhooks/{made['id']}/test").status,
                         202)
        got = self.receiver.wait(f"/hook/{self.serial}")
        self.assertTrue(got, "the test event did not arrive")
        h, body = got[0]["headers"], got[0]["body"]
        self.assertIsInstance(json.loads(body), list)
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        key = serialization.load_der_public_key(base64.b64decode(made["public_key"]))
        ts = h["x-twilio-email-event-webhook-timestamp"]
        sig = base64.b64decode(h["x-twilio-email-event-webhook-signature"])
        key.verify(sig, ts.encode() + body, ec.ECDSA(hashes.SHA256()))  # raises if bad

    def test_sendgrid_events_share_a_post(self):
        made = self.add(format="sendgrid")
        path = f"/api/webhooks/{made['id']}"
        self.assertEqual(self.admin.request("PATCH", path, {"enabled": False}).status, 200)
        ids = [self.admin.request("POST", path + "/test").json["event_id"] for _ in range(30)]
        self.assertEqual(self.admin.request("PATCH", path, {"enabled": True}).status, 200)
        where = f"/hook/{self.serial}"
        items = lambda: [i for r in self.receiver.at(where) for i in json.loads(r["body"])]
        self.assertTrue(wait_until(lambda: len(items()) >= 30, 20), len(items()))
        self.assertEqual(sorted(i["sg_event_id"] for i in items()),
                         sorted(f"evt_{i}" for i in ids))
        # Claimed 20 at a time, topped up to fill one POST; two workers may split them.
        self.assertLessEqual(len(self.receiver.at(where)), 2)

    def test_disabled_endpoint_waits(self):
        made = self.add()
        path = f"/api/webhooks/{made['id']}"
        r = self.admin.request("PATCH", path, {"enabled": False})
        self.assertEqual(r.status, 200, r.raw)
        self.assertIs(r.json["enabled"], False)
        self.assertNotIn("secret", r.json)
        self.assertEqual(self.admin.request("POST", path + "/test").status, 202)
        time.sleep(3)  # the workers poll each second
        self.assertEqual(self.receiver.at(f"/hook/{self.serial}"), [])
        r = self.admin.request("PATCH", path, {"enabled": True})
        self.assertIs(r.json["enabled"], True)
        self.assertTrue(self.receiver.wait(f"/hook/{self.serial}"))

    def test_delete(self):
        made = self.add()
        path = f"/api/webhooks/{made['id']}"
        r = self.admin.request("DELETE", path)
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(r.raw, b"")
        self.assertIsNone(hook_of(self.admin, made["id"]))
        self.assertError(self.admin.request("DELETE", path), 404, "not_found")
        self.assertError(self.admin.request("PATCH", path, {"enabled": True}), 404, "not_found")


def hook_urls(client):
    return [w["url"] for w in client.request("GET", "/api/webhooks").json["webhooks"]]


class PrivateAddresses(unittest.TestCase):
    """A gateway with [webhooks] allow_private = no, as in production."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(config={"webhooks": {"allow_private": "no"}}).init()
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def test_private_urls_refused(self):
        port = self.gw.port
        for url in (f"http://127.0.0.1:{port}/", "http://10.0.0.1/",
                    "http://169.254.169.254/latest/meta-data", f"http://[::1]:{port}/",
                    f"http://localhost:{port}/", "https://192.168.1.10/hook",
                    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"):
            with self.subTest(url=url):
                r = self.admin.request("POST", "/api/webhooks", {"url": url})
                self.assertEqual(r.status, 400, r.raw)
                self.assertEqual(r.code, "webhook_url_not_allowed", r.raw)
                self.assertEqual(r.json["error"]["field"], "url")
        for url in ("ftp://example.com/", "http://user:pass@93.184.215.14/",
                    "gopher://93.184.215.14/"):
            with self.subTest(url=url):
                r = self.admin.request("POST", "/api/webhooks", {"url": url})
                self.assertEqual(r.status, 400, r.raw)
                self.assertEqual(r.code, "invalid_request", r.raw)
                self.assertEqual(r.json["error"]["field"], "url")
        self.assertEqual(hook_urls(self.admin), [])

    def test_public_address_accepted(self):
        # An address literal needs no DNS; nothing is posted without an event.
        r = self.admin.request("POST", "/api/webhooks",
                               {"url": "https://93.184.215.14/hooks", "events": ["domain.failed"]})
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(self.admin.request("DELETE", f"/api/webhooks/{r.json['id']}").status,
                         204)


class CheckedAgainAtDelivery(unittest.TestCase):
    """An endpoint made while private addresses were allowed, posted to after a restart
    that forbids them: nothing arrives, and the endpoint says why."""

    def test_recheck(self):
        receiver = Receiver()
        gw = Gateway().init()
        try:
            gw.start()
            admin = gw.logged_in("admin@acme.test")
            r = admin.request("POST", "/api/webhooks", {"url": receiver.url("/later")})
            self.assertEqual(r.status, 201, r.raw)
            hook_id = r.json["id"]
            gw.stop()
            gw.config = {"webhooks": {"allow_private": "no"}}
            gw.start()
            admin = gw.logged_in("admin@acme.test")
            self.assertEqual(admin.request("POST", f"/api/webhooks/{hook_id}/test").status,
                             202)
            status = lambda: (hook_of(admin, hook_id)["last_delivery"] or {}).get("status")
            self.assertTrue(wait_until(lambda: status() == "webhook_url_not_allowed", 15),
                            hook_of(admin, hook_id))
            listed = hook_of(admin, hook_id)
            self.assertIsNone(listed["last_success_at"])
            self.assertRegex(listed["failing_since"], ISO)
            self.assertEqual(receiver.at("/later"), [])
        finally:
            gw.cleanup()
            receiver.stop()


if __name__ == "__main__":
    main()
