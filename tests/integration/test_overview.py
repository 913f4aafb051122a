"""GET /api/overview against the real daemon, its clock moved across days: mail accepted,
delivered and bounced by a scripted SMTP relay on loopback, dropped (a cancelled message),
refused by the sender policy and sent in SendGrid's sandbox, each at a known hour, then the
exact counts of each of the 24 hourly and 30 daily buckets (zeros included, nothing from
before the 30 days), refusals by reason, the queue now, the domains and senders that need
attention, and another account that sees none of it."""
import datetime
import os
import time
import unittest

from harness import Gateway, add_senders, main, send_body, wait_until
from test_events import Relay

SENDGRID = "/v3/mail/send"
HOUR, DAY = 3600, 86400
COUNTERS = ("accepted", "delivered", "bounced", "dropped", "refused")
POLICY_REASONS = ("sender_auth_no_senders", "domain_not_approved", "domain_not_verified",
                  "domain_inactive", "sender_not_authorized", "sender_pending_verification",
                  "sender_not_allowed_for_key")


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def zero():
    return dict.fromkeys(COUNTERS, 0)


class OverviewTest(unittest.TestCase):
    """One gateway: account acme (what is counted) and account other (what acme must not
    see). The daemon's clock starts at 10:05 UTC 27 days before D0 (tomorrow's midnight,
    so that every move is forward from there), and the test ends at D0 + 3 days 09:05."""

    @classmethod
    def setUpClass(cls):
        cls.relay = Relay()
        cls.gw = Gateway(relay=f"smtp://127.0.0.1:{cls.relay.port}",
                         extra_args=["--public-url", "http://127.0.0.1:1"])
        cls.gw.init("acme", "admin@acme.test")
        cls.gw.add_account("other", "admin@other.test")
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.gw.add_domain("acme", "new.acme.test")
        cls.gw.add_domain("acme", "bad.acme.test")
        cls.gw.add_domain("acme", "no.acme.test")  # pending, but an operator rejected it
        cls.gw.add_domain("other", "other.test", "--verified")
        cls.keys = {a: cls.gw.create_key(a, "k") for a in ("acme", "other")}
        cls.d0 = (int(time.time()) // DAY + 1) * DAY
        cls.set_clock(cls.d0 - 27 * DAY + 10 * HOUR + 5 * 60)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.relay.stop()

    @classmethod
    def set_clock(cls, t):
        """Sets the daemon's clock to t (its offset from the real clock)."""
        with open(cls.gw.clock_path, "w") as f:
            f.write(str(t - int(time.time())))

    def admin(self, account="acme"):
        # Logged in afresh at each step: a session does not outlive the days moved.
        return self.gw.logged_in(f"admin@{account}.test")

    def send(self, account, body, ok=True):
        r = self.gw.client().request("POST", SENDGRID, body,
                                     headers={"Authorization": "Bearer " + self.keys[account]})
        if ok:
            self.assertEqual(r.status, 202, r.raw)
        else:
            self.assertGreaterEqual(r.status, 400, r.raw)
        return r.header("X-Message-Id")

    def to(self, *recipients, sender="news@acme.test", **fields):
        body = send_body(sender=sender, to=recipients[0], **fields)
        body["personalizations"][0]["to"] += [{"email": a} for a in recipients[1:]]
        return body

    def refuse(self, account, n):
        for _ in range(n):
            self.send(account, self.to("bob@example.com", sender="x@stranger.test"), ok=False)

    def settle(self, account, mid, status):
        """Waits (bounded) until the message is in status: its events are written."""
        admin = self.admin(account)
        got = wait_until(lambda: admin.request("GET", "/api/messages/" + mid).json["status"]
                         == status, timeout=30)
        self.assertTrue(got, admin.request("GET", "/api/messages/" + mid).raw)

    def overview(self, account="acme"):
        r = self.admin(account).request("GET", "/api/overview")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.header("Content-Type"), "application/json")
        return r.json

    def test_counts_per_hour_and_day_queue_and_attention(self):
        d0 = self.d0
        # 27 days before D0, one day before the oldest bucket: counted nowhere.
        self.settle("acme", self.send("acme", self.to("ok0@example.com")), "sent")
        self.refuse("acme", 1)

        # D0 10:05: two recipients delivered, one refusal; and other's own mail.
        self.set_clock(d0 + 10 * HOUR + 5 * 60)
        self.settle("acme", self.send("acme", self.to("ok1@example.com", "ok2@example.com")),
                    "sent")
        self.refuse("acme", 1)
        self.settle("other", self.send("other", self.to("ok@example.com",
                                                          sender="news@other.test")), "sent")
        self.refuse("other", 3)

        # D0 + 2 days 11:05: one delivered, one bounced, two refusals, a sandbox request.
        self.set_clock(d0 + 2 * DAY + 11 * HOUR + 5 * 60)
        self.settle("acme", self.send("acme", self.to("ok3@example.com", "bounce@example.com")),
                    "sent")
        self.refuse("acme", 2)
        r = self.gw.client().request(
            "POST", SENDGRID, self.to("sandbox@example.com",
                                      mail_settings={"sandbox_mode": {"enable": True}}),
            headers={"Authorization": "Bearer " + self.keys["acme"]})
        self.assertEqual(r.status, 200, r.raw)

        # D0 + 3 days 09:05 (now): a message cancelled (two recipients dropped), one left
        # scheduled, one deferred by the relay, one refusal.
        now = d0 + 3 * DAY + 9 * HOUR + 5 * 60
        self.set_clock(now)
        cancelled = self.send("acme", self.to("c1@example.com", "c2@example.com",
                                              send_at=now + DAY))
        r = self.admin().request("POST", f"/api/messages/{cancelled}/cancel")
        self.assertEqual(r.status, 200, r.raw)
        self.send("acme", self.to("later@example.com", send_at=now + DAY))
        self.settle("acme", self.send("acme", self.to("grey@example.com")), "deferred")
        self.refuse("acme", 1)

        # What needs attention: a pending domain, a failed one (as a DNS check concludes;
        # no DNS server answers here), and a sender not verified yet; not a domain an
        # operator rejected (the domains page says "rejected").
        self.gw.sql("UPDATE sending_domains SET status = 'failed' WHERE name = ?",
                    "bad.acme.test")
        self.gw.sql("UPDATE sending_domains SET approval = 'rejected' WHERE name = ?",
                    "no.acme.test")
        senders = add_senders(self.admin(), "pending@acme.test", "ok@acme.test",
                              verify=("ok@acme.test",))

        # The senders' verification email is Postern's own mail, queued a moment.
        got = wait_until(lambda: (lambda o: o if o["queue"]["queued"] == 0 else None)(
            self.overview()), timeout=30)
        self.assertTrue(got, self.overview())
        generated = datetime.datetime.strptime(got["generated_at"], "%Y-%m-%dT%H:%M:%SZ")
        self.assertLess(abs(generated.replace(tzinfo=datetime.timezone.utc).timestamp() - now),
                        600)

        hour0 = d0 + 2 * DAY + 10 * HOUR
        hours = [dict(zero(), start=iso(hour0 + i * HOUR)) for i in range(24)]
        hours[1].update(accepted=2, delivered=1, bounced=1, refused=2)
        hours[23].update(accepted=4, dropped=2, refused=1)
        self.assertEqual(got["hours"], hours)

        day0 = d0 - 26 * DAY
        days = [dict(zero(), start=iso(day0 + i * DAY)) for i in range(30)]
        days[26].update(accepted=2, delivered=2, refused=1)
        days[28].update(accepted=2, delivered=1, bounced=1, refused=2)
        days[29].update(accepted=4, dropped=2, refused=1)
        self.assertEqual(got["days"], days)

        refusals = dict.fromkeys(POLICY_REASONS, 0)
        refusals["domain_not_approved"] = 4  # sandbox requests were not refused
        self.assertEqual(got["refusals"], refusals)
        self.assertEqual(got["queue"], {"queued": 0, "scheduled": 1, "deferred": 1})

        domains = {d["name"]: d for d in self.admin().request("GET", "/api/domains").json[
            "domains"]}
        self.assertEqual(domains["no.acme.test"]["status"], "rejected")
        # In the order of the domains page: by name.
        self.assertEqual(got["attention"]["domains"], [
            {"id": domains["bad.acme.test"]["id"], "name": "bad.acme.test", "status": "failed"},
            {"id": domains["new.acme.test"]["id"], "name": "new.acme.test", "status": "pending"}])
        self.assertEqual(got["attention"]["senders"], [
            {"id": senders["pending@acme.test"], "email": "pending@acme.test",
             "status": "pending"}])

        # Account other sees its own mail only.
        theirs = self.overview("other")
        self.assertEqual([h for h in theirs["hours"] if h != dict(zero(), start=h["start"])], [])
        self.assertEqual(theirs["days"][26], dict(zero(), start=iso(d0), accepted=1, delivered=1,
                                                  refused=3))
        self.assertEqual(sum(d["accepted"] for d in theirs["days"]), 1)
        self.assertEqual(theirs["refusals"]["domain_not_approved"], 3)
        self.assertEqual(theirs["queue"], {"queued": 0, "scheduled": 0, "deferred": 0})
        self.assertEqual(theirs["attention"], {"domains": [], "senders": []})

    def test_an_account_without_mail_has_every_bucket_at_zero(self):
        self.gw.add_account("empty", "admin@empty.test")
        got = self.overview("empty")
        self.assertEqual(len(got["hours"]), 24)
        self.assertEqual(len(got["days"]), 30)
        for bucket in got["hours"] + got["days"]:
            self.assertEqual(dict(bucket, start=None), dict(zero(), start=None))
        # Consecutive UTC hours and days, the last one the current.
        starts = [datetime.datetime.strptime(b["start"], "%Y-%m-%dT%H:%M:%SZ")
                  for b in got["hours"]]
        self.assertEqual({(b - a).total_seconds() for a, b in zip(starts, starts[1:])}, {HOUR})
        self.assertEqual(starts[-1].minute, 0)
        days = [b["start"] for b in got["days"]]
        self.assertTrue(all(d.endswith("T00:00:00Z") for d in days), days)
        self.assertEqual(days[-1][:10], got["generated_at"][:10])
        self.assertEqual(got["generated_at"][:13], got["hours"][-1]["start"][:13])
        self.assertEqual(got["refusals"], dict.fromkeys(POLICY_REASONS, 0))
        self.assertEqual(got["queue"], {"queued": 0, "scheduled": 0, "deferred": 0})
        self.assertEqual(got["attention"], {"domains": [], "senders": []})

    def test_a_caller_without_a_session_is_refused(self):
        r = self.gw.client().request("GET", "/api/overview")
        self.assertEqual(r.status, 401, r.raw)


if __name__ == "__main__":
    main()
