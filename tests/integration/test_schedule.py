"""Scheduled sending (issue 15): Netcore's `schedule`, SendGrid's `send_at` and
`personalizations[].send_at`; the bounds and types refused; `POST /api/messages/{id}/cancel`
against the worker that claims the same message; the sender decision made again when a
scheduled message is due; scheduled messages across a restart, and across two nodes on
PostgreSQL. Time moves with the daemon's test clock, never by sleeping to a send time."""
import os
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import (PASSWORD, Gateway, audit_events, main, postgres_only, send_body,
                     wait_until)
from test_delivery import Delivery

NETCORE = "/v5/mail/send"
SENDGRID = "/v3/mail/send"
HOUR = 3600


def gateway_now(gw):
    """The daemon's clock: the real one plus what the test moved it by."""
    offset = 0
    if os.path.exists(gw.clock_path):
        with open(gw.clock_path) as f:
            offset = int(f.read().strip() or 0)
    return int(time.time()) + offset


def recipients(msgs):
    return [str(m["To"]) for m in msgs]


class Scheduled(Delivery):
    """test_delivery's fresh gateway and sink for every test, both started, with a Technical
    and a Marketing user besides the Admin."""

    def setUp(self):
        super().setUp()
        self.gw.add_user("acme", "tech@acme.test", "technical")
        self.gw.add_user("acme", "mkt@acme.test", "marketing")
        self.sink.start()
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")

    def post(self, path, payload, gw=None):
        return (gw or self.gw).client().request(
            "POST", path, payload, headers={"Authorization": "Bearer " + self.key})

    def send(self, path, payload, gw=None):
        r = self.post(path, payload, gw)
        if path == SENDGRID:
            self.assertEqual(r.status, 202, r.raw)
            return r.header("X-Message-Id")
        self.assertEqual(r.status, 200, r.raw)
        return r.json["data"]["message_id"]

    def advance(self, seconds, *gateways):
        for gw in gateways or (self.gw,):
            gw.advance_clock(seconds)

    def assertNothingArrives(self, count=0, seconds=2.5):
        """Two idle polls of every worker pass and the sink still holds count messages."""
        time.sleep(seconds)
        self.assertEqual(len(self.sink.messages()), count, recipients(self.sink.messages()))

    def parts(self, *times, **fields):
        """A SendGrid request with one personalization (p0@example.com, p1@...) per send
        time (None: now)."""
        body = send_body(**fields)
        body["personalizations"] = [
            {"to": [{"email": f"p{i}@example.com"}], **({"send_at": at} if at else {})}
            for i, at in enumerate(times)]
        return body

    def wait_rescheduled(self, mid, arrived):
        """Waits until `arrived` messages reached the sink and the message is back to
        `scheduled` for its next part."""
        self.sink.wait_for(lambda m: len(m) >= arrived)
        # Until the batch's outcome is written the message reads "queued" (it is sending).
        return self.wait_status(mid, "scheduled")

    def set_policy_readable(self, readable):
        """A store fault where the sender policy is read: the table it comes from is renamed
        away (and back). The version bump makes the daemon drop its cached policy at once;
        it notices within a second."""
        names = ("senders_away", "senders") if readable else ("senders", "senders_away")
        self.gw.sql("ALTER TABLE %s RENAME TO %s" % names)
        self.gw.sql("UPDATE policy_version SET v = v + 1 WHERE id = 1")
        time.sleep(1)

    def authorize_two_senders(self):
        """Sender authorization on, with news@ and ops@ verified; returns news@'s id. Two,
        so that removing one leaves a verified one and the reason is about this one."""
        added = self.admin.request("POST", "/api/senders", {
            "addresses": ["news@acme.test", "ops@acme.test"]}).json["added"]
        for a in added:
            r = self.admin.request("POST", f"/api/senders/{a['id']}/verify")
            self.assertEqual(r.status, 200, r.raw)
        r = self.admin.request("PUT", "/api/settings/sender-auth",
                               {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)
        self.sink.wait_for(lambda m: len(m) >= 1)  # the verification email
        return added[0]["id"]


class ScheduleTest(Scheduled):
    def test_netcore_schedule_holds_the_message_until_its_time(self):
        at = gateway_now(self.gw) + HOUR
        mid = self.send(NETCORE, send_body(schedule=at))
        m = self.message(mid)
        self.assertEqual(m["status"], "scheduled")
        self.assertEqual(m["send_at"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
        self.assertEqual(m["next_attempt_at"], m["send_at"])
        listed = self.admin.request("GET", "/api/messages?status=scheduled").json["messages"]
        self.assertEqual([x["id"] for x in listed], [mid])
        self.assertNothingArrives()
        self.advance(HOUR + 1)
        m = self.wait_status(mid, "sent")
        self.assertEqual(m["attempts"], 1)
        got, = self.sink.messages()
        # Written when it is sent: its Date is the send time, not the time of acceptance.
        self.assertGreaterEqual(got["Date"].datetime.timestamp(), at)

    def test_sendgrid_personalizations_each_go_at_their_own_time(self):
        now = gateway_now(self.gw)
        body = send_body(send_at=now + HOUR)
        body["personalizations"] = [
            {"to": [{"email": "late@example.com"}], "send_at": now + 2 * HOUR},
            {"to": [{"email": "top@example.com"}]},  # the request's send_at
            {"to": [{"email": "now@example.com"}], "send_at": now - 60},  # past: now
            {"to": [{"email": "soon@example.com"}], "send_at": now + 3},  # within 5 s: now
        ]
        mid = self.send(SENDGRID, body)
        msgs = self.sink.wait_for(lambda m: len(m) >= 2)
        self.assertEqual(sorted(recipients(msgs)), ["now@example.com", "soon@example.com"])
        m = self.wait_status(mid, "scheduled")
        self.assertEqual(m["next_attempt_at"], time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + HOUR)))
        self.assertNothingArrives(2)
        self.advance(HOUR + 1)
        self.sink.wait_for(lambda m: len(m) >= 3)
        self.assertEqual(recipients(self.sink.messages())[2], "top@example.com")
        self.wait_status(mid, "scheduled")
        self.assertNothingArrives(3)
        self.advance(HOUR)
        m = self.wait_status(mid, "sent", timeout=60)
        self.sink.wait_for(lambda m: len(m) >= 4, timeout=30)
        self.assertEqual(recipients(self.sink.messages())[3:], ["late@example.com"])
        self.assertEqual(m["recipients"], 4)
        self.assertEqual(len({x["Message-ID"] for x in self.sink.messages()}), 4)

    def test_a_time_past_or_within_five_seconds_means_now(self):
        now = gateway_now(self.gw)
        for path, field, at in ((NETCORE, "schedule", now - 10), (SENDGRID, "send_at", now + 2),
                                (NETCORE, "schedule", None), (SENDGRID, "send_at", None),
                                (SENDGRID, "send_at", 0)):
            with self.subTest(path=path, at=at):
                mid = self.send(path, send_body(**{field: at}))
                m = self.wait_status(mid, "sent")
                self.assertIsNone(m["send_at"])

    def test_times_beyond_72_hours_and_wrong_types_are_refused_naming_the_field(self):
        now = gateway_now(self.gw)
        far = now + 72 * HOUR + 60
        two = [{"to": [{"email": "a@example.com"}]}, {"to": [{"email": "b@example.com"}]}]
        cases = [
            (NETCORE, {"schedule": far}, "schedule"),
            (SENDGRID, {"send_at": far}, "send_at"),
            (SENDGRID, {"personalizations": [two[0], dict(two[1], send_at=far)]},
             "personalizations[1].send_at"),
            (NETCORE, {"schedule": "tomorrow"}, "schedule"),
            (NETCORE, {"schedule": now + 60.5}, "schedule"),
            (SENDGRID, {"send_at": -1}, "send_at"),
            (SENDGRID, {"send_at": True}, "send_at"),
            (SENDGRID, {"personalizations": [dict(two[0], send_at=str(now))]},
             "personalizations[0].send_at"),
            # Netcore schedules whole requests only.
            (NETCORE, {"personalizations": [dict(two[0], send_at=now + HOUR)]},
             "personalizations[0].send_at"),
        ]
        for path, fields, field in cases:
            with self.subTest(path=path, fields=fields):
                r = self.post(path, send_body(**fields))
                self.assertEqual(r.status, 400, r.raw)
                err = r.json["errors"][0] if path == SENDGRID else r.json["error"][0]
                self.assertEqual((err["code"], err["field"]), ("invalid_request", field))
                self.assertTrue(err["message"])
        # Exactly 72 hours ahead is allowed.
        mid = self.send(SENDGRID, send_body(send_at=gateway_now(self.gw) + 72 * HOUR))
        self.assertEqual(self.message(mid)["status"], "scheduled")
        self.assertEqual(len(self.admin.request("GET", "/api/messages").json["messages"]), 1)

    def test_a_sender_removed_while_the_message_waits_is_dropped_at_its_time(self):
        sid = self.authorize_two_senders()
        before = len(self.sink.messages())
        mid = self.send(NETCORE, send_body(schedule=gateway_now(self.gw) + HOUR))
        self.assertEqual(self.message(mid)["status"], "scheduled")
        self.assertEqual(self.admin.request("DELETE", f"/api/senders/{sid}").status, 204)
        self.advance(HOUR + 1)
        m = self.wait_status(mid, "dropped")
        self.assertEqual(m["reason"], "sender_not_authorized")
        self.assertNothingArrives(before, seconds=1.5)

    def test_a_policy_unreadable_at_a_send_time_beyond_give_up_is_retried(self):
        # Due 30 hours after acceptance, past give_up (24 h): the wait is counted from the
        # send time, so the message is retried rather than failed without a try.
        mid = self.send(NETCORE, send_body(schedule=gateway_now(self.gw) + 30 * HOUR))
        self.set_policy_readable(False)
        self.advance(30 * HOUR + 1)
        self.admin = self.gw.logged_in("admin@acme.test")  # the session ended meanwhile
        m = self.wait_status(mid, "deferred", "failed")
        self.assertEqual((m["status"], m["last_reply"]),
                         ("deferred", "the policy could not be read"), m)
        self.set_policy_readable(True)
        m = self.wait_status(mid, "sent")
        self.assertEqual(m["attempts"], 1, "the retries without the policy never reached "
                         "the relay")
        self.assertEqual(len(self.sink.messages()), 1)

    def test_attempts_count_the_wake_ups_that_reached_the_relay(self):
        now = gateway_now(self.gw)
        mid = self.send(SENDGRID, self.parts(now + HOUR, now + 2 * HOUR, now + 3 * HOUR))
        self.advance(HOUR + 1)
        self.assertEqual(self.wait_rescheduled(mid, 1)["attempts"], 1)
        # At the second time, wake-ups that end before the relay (the policy unreadable)
        # are no attempts: they would inflate what users see and the next backoff.
        self.set_policy_readable(False)
        self.advance(HOUR)
        self.wait_status(mid, "deferred")
        time.sleep(2.5)  # a few more such wake-ups
        self.set_policy_readable(True)
        self.assertEqual(self.wait_rescheduled(mid, 2)["attempts"], 2)
        self.advance(HOUR)
        m = self.wait_status(mid, "sent")
        self.assertEqual(recipients(self.sink.messages()),
                         ["p0@example.com", "p1@example.com", "p2@example.com"])
        self.assertEqual(m["attempts"], 3)

    def test_refusals_of_an_earlier_part_are_kept_once_and_numbered_as_sent(self):
        now = gateway_now(self.gw)
        body = send_body()
        # Given later-first: the parts go in time order, but keep the request's numbers.
        body["personalizations"] = [
            {"to": [{"email": "carol@example.com"}], "send_at": now + 2 * HOUR,
             "custom_args": {"who": "carol"}},
            {"to": [{"email": "bob@example.com"}], "send_at": now + HOUR,
             "custom_args": {"who": "bob"}}]
        self.restart_sink("-f", "RCPT")  # bob, due first, is refused for good
        mid = self.send(SENDGRID, body)
        self.assertEqual(self.message(mid)["personalization_custom_args"],
                         [{"who": "carol"}, {"who": "bob"}])
        self.advance(HOUR + 1)
        m = wait_until(lambda: (lambda m: m if m["rejected"] else None)(self.message(mid)))
        self.assertEqual(m and m["status"], "scheduled", m)
        self.restart_sink("-r", "RCPT")  # carol's time: a 4xx, so deferred
        self.advance(HOUR)
        self.assertEqual(self.wait_status(mid, "deferred")["attempts"], 2)
        self.restart_sink()
        m = self.wait_status(mid, "sent")
        # Carol's 4xx went with the retry that delivered to her; bob's refusal stays, once.
        self.assertEqual([(r["email"], r["part"]) for r in m["rejected"]],
                         [("bob@example.com", 1)], m["rejected"])
        self.assertRegex(m["rejected"][0]["reply"], r"^5\d\d ")
        got, = self.sink.messages()
        self.assertEqual(got["Message-ID"], f"<{mid}@acme.test>")  # carol's is part 0

    def test_refusals_of_an_earlier_part_outlive_a_drop_of_the_next(self):
        sid = self.authorize_two_senders()
        self.restart_sink("-f", "RCPT")
        now = gateway_now(self.gw)
        mid = self.send(SENDGRID, self.parts(now + HOUR, now + 2 * HOUR))
        self.advance(HOUR + 1)
        self.assertTrue(wait_until(lambda: self.message(mid)["rejected"]))
        self.assertEqual(self.admin.request("DELETE", f"/api/senders/{sid}").status, 204)
        self.advance(HOUR)
        m = self.wait_status(mid, "dropped")
        self.assertEqual([(r["email"], r["part"]) for r in m["rejected"]],
                         [("p0@example.com", 0)])


class CancelTest(Scheduled):
    def cancel(self, mid, client=None):
        return (client or self.admin).request("POST", f"/api/messages/{mid}/cancel")

    def test_a_scheduled_message_cancelled_is_never_sent(self):
        tech = self.gw.logged_in("tech@acme.test")
        mid = self.send(SENDGRID, send_body(send_at=gateway_now(self.gw) + HOUR))
        r = self.cancel(mid, tech)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["status"], "cancelled")
        self.assertIsNone(r.json["next_attempt_at"])
        self.assertIsNotNone(r.json["send_at"])
        event = next(e for e in audit_events(self.admin) if e["action"] == "message.cancelled")
        self.assertEqual((event["actor"], event["target"]), ("tech@acme.test", mid))
        listed = self.admin.request("GET", "/api/messages?status=cancelled").json["messages"]
        self.assertEqual([x["id"] for x in listed], [mid])
        self.advance(HOUR + 1)
        self.assertNothingArrives()
        self.assertEqual(self.message(mid)["status"], "cancelled")
        r = self.cancel(mid)
        self.assertEqual((r.status, r.code), (409, "not_cancellable"), r.raw)
        self.assertTrue(r.json["error"]["message"])
        stats = self.admin.request("GET", "/api/stats").json
        self.assertEqual(stats["accepted"], 1)

    def test_sent_unknown_and_forbidden(self):
        mid = self.send(NETCORE, send_body())
        self.wait_status(mid, "sent")
        r = self.cancel(mid)
        self.assertEqual((r.status, r.code), (409, "not_cancellable"), r.raw)
        self.assertEqual(self.cancel("0" * 32).status, 404)
        waiting = self.send(NETCORE, send_body(schedule=gateway_now(self.gw) + HOUR))
        r = self.cancel(waiting, self.gw.logged_in("mkt@acme.test"))
        self.assertEqual((r.status, r.code), (403, "forbidden"), r.raw)
        self.assertEqual(self.message(waiting)["status"], "scheduled")

    def test_a_deferred_message_can_be_cancelled(self):
        self.sink.stop()  # the relay is down: the message is deferred
        mid = self.send(NETCORE, send_body())
        self.wait_status(mid, "deferred")
        self.assertEqual(self.cancel(mid).json["status"], "cancelled")
        self.sink.start()
        self.assertNothingArrives()

    def test_cancel_and_claim_race_each_message_ends_one_way(self):
        # A relay that takes a second per message holds the race open: each of the two
        # workers claims 16 (deliver.c's batch) and sends them one by one, so when the first
        # arrives, the cancels meet messages sent, being sent and not claimed yet (the last
        # 8, for some 15 s). Last claimed are cancelled first.
        self.restart_sink("-w", "1")
        at = gateway_now(self.gw) + 60
        mids = [self.send(NETCORE, send_body(to=f"r{i}@example.com", schedule=at))
                for i in range(40)]
        self.advance(61)
        first = self.sink.wait_for(lambda m: len(m) >= 1)[0]["Message-ID"]
        with ThreadPoolExecutor(8) as pool:
            answers = dict(pool.map(lambda mid: (mid, self.cancel(mid).status),
                                    reversed(mids)))
        counts = {s: list(answers.values()).count(s) for s in set(answers.values())}
        print(f"\ncancel and claim race: {counts}")
        self.assertTrue(set(answers.values()) <= {200, 409}, counts)
        self.assertEqual(answers[first[1:].split("@")[0]], 409, counts)
        self.assertGreaterEqual(counts.get(200, 0), 1, counts)
        for mid, status in answers.items():
            self.wait_status(mid, "cancelled" if status == 200 else "sent", timeout=60)
        time.sleep(1.5)  # room for a wrongly sent one to show up
        sent = [x["Message-ID"] for x in self.sink.messages()]
        # Each sent exactly once, and never one whose cancel was answered 200.
        self.assertEqual(sorted(sent), sorted(
            f"<{mid}@acme.test>" for mid, s in answers.items() if s == 409), counts)

    def test_cancelling_between_parts_stops_the_later_ones(self):
        mid = self.send(SENDGRID, self.parts(None, gateway_now(self.gw) + HOUR))
        self.wait_rescheduled(mid, 1)
        r = self.cancel(mid)
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"), r.raw)
        self.advance(HOUR + 1)
        self.assertNothingArrives(1)
        self.assertEqual(recipients(self.sink.messages()), ["p0@example.com"])
        self.assertEqual(self.message(mid)["status"], "cancelled")


class RestartTest(Scheduled):
    def test_a_scheduled_message_survives_a_restart_and_is_sent_once(self):
        at = gateway_now(self.gw) + HOUR
        mid = self.send(NETCORE, send_body(schedule=at))
        self.gw.stop()
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")
        self.assertEqual(self.message(mid)["status"], "scheduled")
        self.assertNothingArrives()
        self.advance(HOUR + 1)
        self.wait_status(mid, "sent")
        time.sleep(1.5)
        self.assertEqual([x["Message-ID"] for x in self.sink.messages()], [f"<{mid}@acme.test>"])

    def test_a_message_with_two_send_times_goes_part_by_part_across_a_restart(self):
        mid = self.send(SENDGRID, self.parts(None, gateway_now(self.gw) + HOUR))
        self.wait_rescheduled(mid, 1)
        self.gw.stop()
        self.gw.start()
        self.admin = self.gw.logged_in("admin@acme.test")
        self.assertNothingArrives(1)
        self.advance(HOUR + 1)
        self.assertEqual(self.wait_status(mid, "sent")["attempts"], 2)
        time.sleep(1.5)
        self.assertEqual([x["Message-ID"] for x in self.sink.messages()],
                         [f"<{mid}@acme.test>", f"<{mid}.1@acme.test>"])


@postgres_only("several nodes share one PostgreSQL database")
class TwoNodesTest(Scheduled):
    def setUp(self):
        super().setUp()
        self.b = Gateway(shares=self.gw)
        self.b.extra_args = list(self.gw.extra_args)  # the same relay and retry settings
        self.b.start()

    def tearDown(self):
        self.b.cleanup()
        super().tearDown()

    def test_scheduled_messages_are_sent_once_whichever_node_is_due(self):
        at = gateway_now(self.gw) + HOUR
        mids = [self.send(NETCORE, send_body(to=f"n{i}@example.com", schedule=at),
                          gw=(self.gw, self.b)[i % 2]) for i in range(20)]
        # Cancelled on the node that did not take it.
        on_b = self.b.logged_in("admin@acme.test")
        r = on_b.request("POST", f"/api/messages/{mids[0]}/cancel")
        self.assertEqual(r.json["status"], "cancelled", r.raw)
        self.assertNothingArrives()
        self.advance(HOUR + 1, self.gw, self.b)
        for mid in mids[1:]:
            self.wait_status(mid, "sent")
        time.sleep(1.5)
        got = sorted(x["Message-ID"] for x in self.sink.messages())
        self.assertEqual(got, sorted(f"<{mid}@acme.test>" for mid in mids[1:]))


if __name__ == "__main__":
    main()
