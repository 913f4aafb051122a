"""Events delivered to webhook endpoints, end to end (issue 17): a real daemon posts to a real
HTTP receiver on loopback (harness.WebhookReceiver), and every request it captured is checked
with the official verifiers (tests/webhooks/verify.js: the standardwebhooks and
@sendgrid/eventwebhook npm packages). Both formats' bodies, message and account events, the
events filter, a receiver down then up, kill -9 and restart, and an endpoint disabled after
24 h of failures. The daemon's clock is moved through its clock file instead of sleeping
through backoffs."""
import json
import os
import re
import subprocess
import time
import unittest

from harness import (PASSWORD, ROOT, Gateway, SmtpSink, WebhookReceiver, main, send_body,
                     wait_until)

NETCORE = "/v5/mail/send"
SENDGRID = "/v3/mail/send"
VERIFY = os.path.join(ROOT, "tests", "webhooks", "verify.js")
HOUR = 3600
RETRY_FOR = 24 * HOUR  # webhook.h WEBHOOK_RETRY_FOR
MESSAGE_TYPES = ("message.processed", "message.deferred", "message.delivered",
                 "message.bounced", "message.dropped")
SENDGRID_NAMES = {"message.processed": "processed", "message.deferred": "deferred",
                  "message.delivered": "delivered", "message.bounced": "bounce",
                  "message.dropped": "dropped"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def verify(items):
    """Runs the official verifiers on items ({"format", "secret" | "public_key", "headers",
    "body"}); returns one {"ok", "error"} per item."""
    if not items:
        return []
    text = "".join(json.dumps(i) + "\n" for i in items)
    r = subprocess.run(["node", VERIFY], input=text, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"verify.js exited {r.returncode}: {r.stderr}")
    out = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    if len(out) != len(items):
        raise AssertionError(f"verify.js answered {len(out)} lines for {len(items)}: "
                             f"{r.stdout}{r.stderr}")
    return out


def as_verified(req, hook):
    """What verify.js takes for one captured request of the endpoint hook (its 201)."""
    item = {"format": hook["format"], "headers": req.headers,
            "body": req.body.decode("utf-8")}
    if hook["format"] == "sendgrid":
        item["public_key"] = hook["public_key"]
    else:
        item["secret"] = hook["secret"]
    return item


def tampered(item):
    """item with one character of its body changed."""
    body = item["body"]
    i = body.find('"', body.find(":")) + 1  # the first character of a string value
    return dict(item, body=body[:i] + ("X" if body[i] != "X" else "Y") + body[i + 1:])


def standard_events(requests):
    """webhook-id -> the parsed body of each standard-format request (the last if repeated)."""
    return {r.headers["webhook-id"]: r.json() for r in requests}


def ids_in(requests):
    return [r.headers["webhook-id"] for r in requests]


class WebhookCase(unittest.TestCase):
    """A gateway relaying to its outbox (a test may set gw.relay) and retrying within
    seconds, with acme.test verified, an API key, a logged-in Admin and a receiver; fresh
    for every test."""

    def setUp(self):
        self.receiver = WebhookReceiver().start()
        # The harness adds [webhooks] allow_private = yes: the receiver is on loopback.
        self.gw = Gateway(config={
            "relay": {"retry_base": "1s", "retry_max": "2s"}}).init("acme", "admin@acme.test")
        self.gw.extra_args = ["--public-url", "http://127.0.0.1:1"]
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme")
        self.admin = None

    def tearDown(self):
        self.gw.cleanup()
        self.receiver.stop()

    def start(self):
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")
        # Events made before any endpoint existed (the domain's) are nobody's to receive.
        self.before = max((e["id"] for e in self.events()), default=0)

    def api(self, method, path, body=None):
        """A management call as the Admin; logs in again when a moved clock ended the
        session."""
        r = self.admin.request(method, path, body)
        if r.status == 401:
            self.admin = self.gw.logged_in("admin@acme.test")
            r = self.admin.request(method, path, body)
        return r

    def add_hook(self, events=None, fmt="standard", url=None):
        body = {"url": url or self.receiver.url, "format": fmt}
        if events is not None:
            body["events"] = events
        r = self.api("POST", "/api/webhooks", body)
        self.assertEqual(r.status, 201, r.raw)
        return r.json

    def hook_state(self, hook_id):
        r = self.api("GET", "/api/webhooks")
        self.assertEqual(r.status, 200, r.raw)
        return next(h for h in r.json["webhooks"] if h["id"] == hook_id)

    def wait_hook(self, hook_id, predicate, timeout=10):
        """The endpoint as GET /api/webhooks shows it once predicate(it) holds (bounded): a
        worker records a POST's outcome just after the receiver answered it."""
        state = wait_until(lambda: (lambda h: h if predicate(h) else None)(
            self.hook_state(hook_id)), timeout=timeout)
        self.assertTrue(state, self.hook_state(hook_id))
        return state

    def send(self, payload, path=NETCORE):
        r = self.gw.client().request("POST", path, payload,
                                     headers={"Authorization": "Bearer " + self.key})
        if path == SENDGRID:
            self.assertEqual(r.status, 202, r.raw)
            return r.header("X-Message-Id")
        self.assertEqual(r.status, 200, r.raw)
        return r.json["data"]["message_id"]

    def events(self, **query):
        """GET /api/events, newest first (every page), made since start()."""
        out, before = [], None
        while True:
            q = dict(query, limit=1000, **({"before": before} if before else {}))
            r = self.api("GET", "/api/events?" + "&".join(f"{k}={v}" for k, v in q.items()))
            self.assertEqual(r.status, 200, r.raw)
            page = r.json["events"]
            out += [e for e in page if e["id"] > getattr(self, "before", 0)]
            if len(page) < 1000:
                return out
            before = page[-1]["id"]

    def wait_events(self, count, timeout=30, **query):
        """The events made since start() once at least count of them (matching query) are
        logged."""
        got = wait_until(lambda: (lambda e: e if len(e) >= count else None)(
            self.events(**query)), timeout=timeout, interval=0.2)
        self.assertTrue(got, f"fewer than {count} events: {self.events(**query)}")
        return got

    def wait_ids(self, want, timeout=30, receiver=None):
        """Waits until every webhook-id of want arrived (2xx); returns the 2xx requests."""
        rec = receiver or self.receiver
        got = rec.wait_for(lambda reqs: set(want) <= set(ids_in(reqs)), timeout)
        missing = sorted(set(want) - set(ids_in(got)))
        self.assertEqual(missing, [], f"never arrived; receiver saw {rec.all()}")
        return got

    def advance_until(self, done, steps, wait=3.0):
        """Moves the clock by each step in turn, each time waiting (bounded) for done();
        returns whether done() held."""
        for step in steps:
            if done():
                return True
            self.gw.advance_clock(step)
            if wait_until(done, timeout=wait, interval=0.1):
                return True
        return bool(done())

    def assertVerified(self, requests, hook):
        items = [as_verified(r, hook) for r in requests]
        results = verify(items)
        bad = [(r, v) for r, v in zip(requests, results) if not v.get("ok")]
        self.assertEqual(bad, [], "requests the official verifier refused")
        # The same requests with their bodies changed are refused.
        refused = verify([tampered(i) for i in items[:5]])
        self.assertTrue(all(not v["ok"] for v in refused), refused)


class StandardFormatTest(WebhookCase):
    def test_message_events_arrive_signed_one_per_post_and_a_retry_keeps_its_id(self):
        self.start()
        hook = self.add_hook()
        self.assertTrue(hook["secret"].startswith("whsec_"), hook)
        self.receiver.answer(500)  # the first POST fails; its retry must carry the same id
        b = send_body(categories=["welcome", "spring"], custom_args={"order": "42"})
        b["personalizations"][0]["cc"] = [{"email": "carol@example.com"}]
        mid = self.send(b, SENDGRID)
        logged = self.wait_events(4, message_id=mid)
        want = {f"evt_{e['id']}": e for e in logged}
        self.assertEqual(sorted(e["type"] for e in logged),
                         ["message.delivered"] * 2 + ["message.processed"] * 2)
        # The failed one waits 5 s: the clock moves 6 s and it arrives.
        first = wait_until(lambda: self.receiver.all(), timeout=20)
        self.assertTrue(first, "nothing was posted")
        self.assertEqual(first[0].status, 500)
        failed_id = first[0].headers["webhook-id"]
        self.assertIn(failed_id, want)
        self.assertTrue(self.advance_until(
            lambda: set(want) <= set(ids_in(self.receiver.received())), [6, 6, 30]),
            self.receiver.all())
        got = self.receiver.received()
        self.assertEqual(sorted(ids_in(got)), sorted(want), "each event once, on success")
        retried = [r for r in self.receiver.all() if r.headers["webhook-id"] == failed_id]
        self.assertEqual([r.status for r in retried], [500, 200])
        self.assertEqual(retried[0].body, retried[1].body, "a retry posts the same event")
        self.assertNotEqual(retried[0].headers["webhook-timestamp"],
                            retried[1].headers["webhook-timestamp"])

        for r in got:
            body = r.json()
            e = want[r.headers["webhook-id"]]
            self.assertEqual(set(body), {"type", "timestamp", "data"}, body)
            self.assertEqual((body["type"], body["timestamp"], body["data"]),
                             (e["type"], e["created_at"], e["data"]))
            self.assertRegex(body["timestamp"], RFC3339)
            self.assertEqual(r.headers["content-type"].split(";")[0], "application/json")
            self.assertRegex(r.headers["webhook-timestamp"], r"^\d+$")
            self.assertRegex(r.headers["webhook-signature"], r"^v1,[A-Za-z0-9+/]+=*$")
            d = body["data"]
            self.assertEqual((d["message_id"], d["from"], d["tags"], d["custom_args"]),
                             (mid, "news@acme.test", ["welcome", "spring"], {"order": "42"}))
            if body["type"] == "message.delivered":
                self.assertEqual(d["attempt"], 1)
                self.assertIsInstance(d["reply"], str)
                self.assertTrue(d["reply"])
        for t in ("message.processed", "message.delivered"):
            self.assertEqual(sorted(r.json()["data"]["recipient"] for r in got
                                    if r.json()["type"] == t),
                             ["bob@example.com", "carol@example.com"])
        # Every request verifies with standardwebhooks, the failed one too; a changed body
        # does not.
        self.assertVerified(self.receiver.all(), hook)
        state = self.wait_hook(hook["id"], lambda h: h["failing_since"] is None)
        self.assertTrue(state["enabled"])
        self.assertEqual(state["last_delivery"]["status"], "200")
        self.assertNotIn("secret", state)


class SendgridFormatTest(WebhookCase):
    def setUp(self):
        super().setUp()
        self.sink = SmtpSink(os.path.join(self.gw.tmp, "sink"))
        self.gw.relay = f"smtp://127.0.0.1:{self.sink.port}"

    def tearDown(self):
        super().tearDown()
        self.sink.stop()

    def restart_sink(self, *extra):
        self.sink.stop()
        self.sink.start(*extra)

    def elements(self, requests):
        """sg_event_id -> element, over the array bodies of requests; fails on an id seen
        twice."""
        out = {}
        for r in requests:
            body = r.json()
            self.assertIsInstance(body, list, r.body[:200])
            for el in body:
                self.assertNotIn(el["sg_event_id"], out, "an event posted twice")
                out[el["sg_event_id"]] = el
        return out

    def test_message_events_arrive_in_sendgrids_shape_and_verify(self):
        self.sink.start()
        self.start()
        hook = self.add_hook(fmt="sendgrid")
        self.assertNotIn("secret", hook)
        self.assertRegex(hook["public_key"], r"^[A-Za-z0-9+/]+=*$")
        meta = {"categories": ["receipts"], "custom_args": {"order": "42", "event": "mine"}}
        # Delivered; bounced (5xx to RCPT); deferred (4xx to MAIL), then delivered;
        # dropped (a scheduled message cancelled). Account events along the way.
        sent = {}
        sent["delivered"] = self.send(send_body(**meta), SENDGRID)
        self.wait_events(2, message_id=sent["delivered"])
        self.restart_sink("-f", "RCPT")
        sent["bounce"] = self.send(send_body(**meta), SENDGRID)
        self.wait_events(2, message_id=sent["bounce"])
        self.restart_sink("-r", "MAIL")
        sent["deferred"] = self.send(send_body(**meta), SENDGRID)
        self.wait_events(2, message_id=sent["deferred"])
        self.restart_sink()
        # Delivered at last: under load it may be deferred more than once before then.
        self.assertTrue(wait_until(lambda: any(
            e["type"] == "message.delivered" for e in self.events(message_id=sent["deferred"])),
            timeout=30, interval=0.2), self.events(message_id=sent["deferred"]))
        sent["dropped"] = self.send(send_body(send_at=int(time.time()) + HOUR, **meta),
                                    SENDGRID)
        r = self.api("POST", f"/api/messages/{sent['dropped']}/cancel")
        self.assertEqual(r.status, 200, r.raw)
        self.wait_events(2, message_id=sent["dropped"])
        r = self.api("POST", "/api/senders", {"addresses": ["news@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)

        logged = [e for e in self.events() if e["type"] in MESSAGE_TYPES]
        want = {f"evt_{e['id']}": e for e in logged}
        got = self.receiver.wait_for(
            lambda reqs: set(want) <= {el["sg_event_id"] for r in reqs for el in r.json()})
        els = self.elements(got)
        self.assertEqual(set(els), set(want), "every message event once, nothing else")
        for sg_id, el in els.items():
            e = want[sg_id]
            d = e["data"]
            self.assertEqual(el["event"], SENDGRID_NAMES[e["type"]], el)
            self.assertEqual(el["email"], e["recipient"])
            self.assertIsInstance(el["timestamp"], int)
            self.assertEqual(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(el["timestamp"])),
                             e["created_at"])
            self.assertEqual(el["sg_message_id"], e["message_id"])
            # The Message-ID the recipient's copy carried (one personalization each).
            self.assertEqual(el["smtp-id"], f"<{e['message_id']}@acme.test>")
            self.assertEqual(el["smtp-id"], d["smtp_id"])
            self.assertNotIn("smtp_id", el)
            # One tag: a string, as SendGrid sends a single category.
            self.assertEqual(el["category"], "receipts")
            # custom_args at the top level, but never over one of SendGrid's own keys.
            self.assertEqual(el["order"], "42")
            if el["event"] in ("delivered", "deferred"):
                self.assertEqual(el["response"], d["reply"])
            # The attempt as SendGrid sends it: with deferrals only, as a string.
            if el["event"] == "deferred":
                self.assertEqual(el["attempt"], str(d["attempt"]))
            else:
                self.assertNotIn("attempt", el)
            if el["event"] == "bounce":
                # smtp-sink refuses with 500 5.3.0: a block, SendGrid's bounce of that type.
                self.assertEqual((el["type"], el["reason"]), ("blocked", d["reply"]))
                self.assertRegex(el["reason"], r"^5\d\d")
                self.assertRegex(el["status"], r"^(5\.\d{1,3}\.\d{1,3}|5\d\d)$")
            if el["event"] == "deferred":
                self.assertRegex(el["response"], r"^4\d\d")
            if el["event"] == "dropped":
                self.assertEqual(el["reason"], "cancelled")
        kinds = lambda mid: sorted(el["event"] for el in els.values()
                                   if el["sg_message_id"] == mid)
        self.assertEqual(kinds(sent["delivered"]), ["delivered", "processed"])
        self.assertEqual(kinds(sent["bounce"]), ["bounce", "processed"])
        self.assertEqual(kinds(sent["deferred"])[-2:], ["delivered", "processed"])
        self.assertIn("deferred", kinds(sent["deferred"]))
        self.assertEqual(kinds(sent["dropped"]), ["dropped", "processed"])

        # A test event goes to a SendGrid endpoint as a sample processed event, marked as
        # the test; nothing else is due, so it comes alone.
        before = len(self.receiver.received())
        r = self.api("POST", f"/api/webhooks/{hook['id']}/test")
        self.assertEqual(r.status, 202, r.raw)
        got = self.receiver.wait_for(lambda reqs: len(reqs) > before)
        test_body = got[before].json()
        self.assertEqual(test_body, [{
            "email": "example@test.com", "timestamp": test_body[0]["timestamp"],
            "event": "processed", "sg_event_id": f"evt_{r.json['event_id']}",
            "sg_message_id": "test", "smtp-id": "<test@postern.invalid>",
            "postern_test": True, "webhook_id": hook["id"]}])
        # Every request verifies with @sendgrid/eventwebhook and the public key of the 201;
        # a changed body does not. No account event was ever sent.
        self.assertVerified(self.receiver.all(), hook)
        for r in self.receiver.all():
            self.assertIn("x-twilio-email-event-webhook-timestamp", r.headers)
            self.assertNotIn(b"sender.added", r.body)

    def test_at_most_100_events_per_post_and_each_once(self):
        self.sink.start()
        self.receiver.down()
        self.start()
        hook = self.add_hook(fmt="sendgrid")
        b = send_body()
        b["personalizations"][0]["to"] = [{"email": f"r{i}@example.com"} for i in range(150)]
        mid = self.send(b)
        logged = self.wait_events(300, message_id=mid, timeout=60)
        want = {f"evt_{e['id']}" for e in logged}
        self.assertTrue(wait_until(lambda: self.hook_state(hook["id"])["last_delivery"],
                                   timeout=20), "no attempt while the receiver was down")
        self.receiver.up()
        arrived = lambda: want <= {el["sg_event_id"] for r in self.receiver.received()
                                   for el in r.json()}
        self.assertTrue(self.advance_until(arrived, [6, 30, 120, 600, 1800, 3600], wait=10),
                        f"{len(self.receiver.received())} POSTs")
        sizes = [len(r.json()) for r in self.receiver.received()]
        print(f"\nsendgrid batches after the receiver came back: {sizes}", end="")
        self.assertLessEqual(max(sizes), 100)
        self.assertGreater(max(sizes), 1, "events were posted one by one")
        els = self.elements(self.receiver.received())
        self.assertEqual(set(els), want)
        self.assertVerified(self.receiver.received(), hook)


class AccountEventsTest(WebhookCase):
    def test_account_events_arrive_with_their_data(self):
        self.start()
        hook = self.add_hook()
        r = self.api("POST", "/api/senders", {"addresses": ["news@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        sid = r.json["added"][0]["id"]
        self.assertEqual(self.api("POST", f"/api/senders/{sid}/verify").status, 200)
        r = self.api("PUT", "/api/settings/sender-auth", {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)
        for _ in range(3):
            r = self.gw.client().request("POST", NETCORE, send_body("stranger@acme.test"),
                                         headers={"Authorization": "Bearer " + self.key})
            self.assertEqual(r.status, 403, r.raw)
        self.assertEqual(self.api("DELETE", f"/api/senders/{sid}").status, 204)
        self.gw.add_domain("acme", "mark.acme.test", "--verified")
        r = self.api("POST", f"/api/webhooks/{hook['id']}/test")
        self.assertEqual(r.status, 202, r.raw)
        test_id = r.json["event_id"]

        # The drop counter is written within a second: its event follows (bounded).
        kinds = ("sender.added", "sender.verified", "sender_auth.changed",
                 "sender_policy.refused", "sender.removed", "domain.verified", "webhook.test")
        got = self.receiver.wait_for(lambda reqs: set(kinds) <= {
            r.json()["type"] for r in reqs}, timeout=30)
        by_type = {}
        for r in got:
            by_type.setdefault(r.json()["type"], []).append(r.json()["data"])
        self.assertEqual(set(by_type) - set(kinds), set(),
                         "Postern's own mail (the verification email) has no events")
        self.assertEqual(by_type["sender.added"], [{"email": "news@acme.test"}])
        self.assertEqual(by_type["sender.verified"], [{"email": "news@acme.test", "via": "panel"}])
        self.assertEqual(by_type["sender_auth.changed"], [{"enabled": True, "mode": "on"}])
        self.assertEqual(by_type["sender.removed"], [{"email": "news@acme.test"}])
        self.assertEqual(by_type["domain.verified"], [{"domain": "mark.acme.test"}])
        self.assertEqual(by_type["webhook.test"][0]["webhook_id"], hook["id"])
        self.assertTrue(by_type["webhook.test"][0]["message"])
        self.assertIn(f"evt_{test_id}", ids_in(got))
        refused = by_type["sender_policy.refused"]
        for d in refused:
            self.assertEqual((d["from"], d["reason"]), ("stranger@acme.test",
                                                        "sender_not_authorized"), d)
            self.assertIsInstance(d["key_id"], int)
            self.assertRegex(d["minute"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$")
        self.assertEqual(sum(d["count"] for d in refused), 3)
        self.assertVerified(got, hook)


class FilterTest(WebhookCase):
    def test_an_endpoint_subscribed_to_delivered_gets_only_those(self):
        self.start()
        every = WebhookReceiver().start()
        self.addCleanup(every.stop)
        self.add_hook(["message.delivered"])
        self.add_hook(url=every.url)
        mids = [self.send(send_body(to=f"r{i}@example.com")) for i in range(3)]
        self.assertEqual(self.api("POST", "/api/senders",
                                  {"addresses": ["news@acme.test"]}).status, 201)
        logged = self.wait_events(7)
        all_ids = {f"evt_{e['id']}" for e in logged}
        delivered = {f"evt_{e['id']}" for e in logged if e["type"] == "message.delivered"}
        self.assertEqual(len(delivered), 3)
        self.wait_ids(all_ids, receiver=every)
        self.wait_ids(delivered)
        time.sleep(1.5)  # room for anything that should not come
        got = self.receiver.all()
        self.assertEqual(sorted(ids_in(got)), sorted(delivered))
        self.assertEqual(sorted(r.json()["data"]["message_id"] for r in got), sorted(mids))


class DownThenUpTest(WebhookCase):
    def test_a_receiver_down_then_up_gets_every_event(self):
        self.receiver.down()
        self.start()
        hook = self.add_hook()
        for i in range(5):
            self.send(send_body(to=f"r{i}@example.com"))
        logged = self.wait_events(10)
        want = {f"evt_{e['id']}" for e in logged}
        state = wait_until(lambda: self.hook_state(hook["id"])["last_delivery"], timeout=20)
        self.assertTrue(state, "no attempt while the receiver was down")
        self.assertNotEqual(state["status"], "200")
        self.assertIsNotNone(self.hook_state(hook["id"])["failing_since"])
        self.receiver.up()
        done = lambda: want <= set(ids_in(self.receiver.received()))
        # Small steps: standardwebhooks refuses a webhook-timestamp 5 minutes from its clock.
        self.assertTrue(self.advance_until(done, [6, 30, 60, 60], wait=5),
                        f"{len(self.receiver.received())} of {len(want)} arrived")
        self.assertEqual(sorted(ids_in(self.receiver.received())), sorted(want))
        state = self.wait_hook(hook["id"], lambda h: h["failing_since"] is None)
        self.assertEqual((state["enabled"], state["last_delivery"]["status"]), (True, "200"))
        self.assertVerified(self.receiver.received(), hook)

    def test_events_committed_before_a_kill_are_delivered_after_the_restart(self):
        self.receiver.down()
        self.start()
        self.add_hook()
        mids = [self.send(send_body(to=f"k{i}@example.com")) for i in range(5)]
        logged = self.wait_events(10)
        want = {f"evt_{e['id']}" for e in logged}
        self.assertEqual({e["data"]["message_id"] for e in logged}, set(mids))
        self.gw.kill()
        self.receiver.up()
        self.gw.start()
        done = lambda: want <= set(ids_in(self.receiver.received()))
        self.assertTrue(self.advance_until(done, [6, 30, 120, 600, 1800, 3600]),
                        f"{len(self.receiver.received())} of {len(want)} arrived")
        got = ids_in(self.receiver.received())
        self.assertEqual(sorted(set(got)), sorted(want))
        print(f"\nafter kill -9: {len(got)} POSTs for {len(want)} events", end="")


class DisableTest(WebhookCase):
    def test_an_endpoint_failing_for_24_hours_is_disabled_and_comes_back_when_enabled(self):
        self.receiver.status = 500
        self.start()
        hook = self.add_hook()
        self.send(send_body())
        old = {f"evt_{e['id']}" for e in self.wait_events(2)}
        self.assertTrue(wait_until(lambda: self.receiver.all(), timeout=20))
        # The first failure is recorded before the clock moves, or the day starts late.
        self.wait_hook(hook["id"], lambda h: h["failing_since"] is not None, timeout=20)
        # A day and an hour, an hour at a time: attempts every hour after the first hour.
        moved = 0
        while moved < RETRY_FOR + HOUR:
            self.gw.advance_clock(HOUR)
            moved += HOUR
            count = len(self.receiver.all())
            wait_until(lambda: len(self.receiver.all()) > count or
                       not self.hook_state(hook["id"])["enabled"], timeout=5, interval=0.1)
        # The attempt due at the last hour may come after that step's wait, under load.
        state = self.wait_hook(hook["id"], lambda h: not h["enabled"], timeout=30)
        self.assertFalse(state["enabled"], state)
        self.assertIsNotNone(state["disabled_at"])
        self.assertIsNotNone(state["failing_since"])
        self.assertEqual(state["last_delivery"]["status"], "HTTP 500")
        attempts = len(self.receiver.all())
        print(f"\n{attempts} failed POSTs before the endpoint was disabled", end="")
        # Disabled: nothing more is posted, and those older than 24 h were given up.
        self.gw.advance_clock(HOUR)
        time.sleep(2)
        self.assertEqual(len(self.receiver.all()), attempts)
        self.assertEqual({s for (s,) in self.gw.sql("SELECT status FROM webhook_deliveries")},
                         {"failed"})

        self.receiver.status = 200
        r = self.api("PATCH", f"/api/webhooks/{hook['id']}", {"enabled": True})
        self.assertEqual(r.status, 200, r.raw)
        self.assertTrue(r.json["enabled"])
        state = self.hook_state(hook["id"])
        self.assertEqual((state["enabled"], state["disabled_at"]), (True, None))
        self.send(send_body(to="later@example.com"))
        new = {f"evt_{e['id']}" for e in self.wait_events(4)} - old
        self.assertEqual(len(new), 2)
        self.wait_ids(new)
        time.sleep(1.5)
        self.assertEqual(set(ids_in(self.receiver.received())), new,
                         "given-up events stay given up")


if __name__ == "__main__":
    main()
