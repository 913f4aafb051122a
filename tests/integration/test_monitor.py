"""Monitor mode and the preflight, against the real daemon: the switch's three states through
PUT /api/settings/sender-auth (mode and enabled forms, password rule, roles, audit, event),
monitored mail accepted and delivered (the outbox), told on all three send dialects
(X-Postern-Policy) and on SMTP's 250 (smtplib), counted under "monitored" in GET /api/stats
and as sender_policy.monitored events, domain refusals unaffected; and GET
/api/senders/preflight: its numbers, statuses, window, validation and account scoping."""
import os
import smtplib
import time
import unittest

from harness import (PASSWORD, ROLE_EMAILS, Gateway, add_senders, audit_events, main,
                     send_body, smtp_quit, wait_until)

SETTINGS = "/api/settings/sender-auth"
PREFLIGHT = "/api/senders/preflight"
NETCORE5, NETCORE6, SENDGRID = "/v5/mail/send", "/v6/mail/send", "/v3/mail/send"
SMTP = {"auth_without_tls": "yes"}
HEADER = "X-Postern-Policy"


def message(sender, to="bob@example.com"):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: Hi\r\n\r\nHello\r\n").encode()


class MonitorCase(unittest.TestCase):
    """One gateway (SMTP on) per class; accounts named after what they hold."""

    ACCOUNTS = ()

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config={"smtp": SMTP}).init("acme", ROLE_EMAILS["admin"])
        for role, email in ROLE_EMAILS.items():
            if role != "admin":
                cls.gw.add_user("acme", email, role)
        cls.gw.add_domain("acme", "acme.test", "--verified")
        for name in cls.ACCOUNTS:
            cls.gw.add_account(name, f"admin@{name}.test")
            cls.gw.add_domain(name, f"{name}.test", "--verified")
            cls.gw.add_domain(name, f"new.{name}.test")  # listed, never verified
        cls.keys = {a: cls.gw.create_key(a, "k") for a in ("acme",) + tuple(cls.ACCOUNTS)}
        cls.gw.start()
        cls.admins = {a: cls.gw.logged_in(f"admin@{a}.test")
                      for a in ("acme",) + tuple(cls.ACCOUNTS)}

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def set_mode(self, account, body):
        body = dict(body, password=PASSWORD)
        r = self.admins[account].request("PUT", SETTINGS, body)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def add_senders(self, account, *addresses, verify=()):
        return add_senders(self.admins[account], *addresses, verify=verify)

    def send(self, account, sender, path=NETCORE5, **fields):
        return self.gw.client().request("POST", path, send_body(sender, **fields),
                                        headers={"Authorization": "Bearer " + self.keys[account]})

    def message_id(self, r, path):
        return r.header("X-Message-Id") if path == SENDGRID else r.json["data"]["message_id"]

    def stats(self, account):
        r = self.admins[account].request("GET", "/api/stats")
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def preflight(self, account, query=""):
        r = self.admins[account].request("GET", PREFLIGHT + query)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def smtp(self, account):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        self.addCleanup(smtp_quit, s)
        code, reply = s.login("apikey", self.keys[account])
        self.assertEqual(code, 235, reply)
        return s

    def submit(self, account, envelope, header):
        s = self.smtp(account)
        code, reply = s.mail(envelope)
        if code != 250:
            return code, reply
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        return s.data(message(header))

    def delivered(self, mid):
        path = os.path.join(self.gw.tmp, "outbox", mid + ".eml")
        self.assertTrue(wait_until(lambda: os.path.exists(path), timeout=30),
                        f"{mid} never reached the outbox")


class ModeTest(MonitorCase):
    """The setting's three states, on account acme (users of every role)."""

    def setUp(self):
        self.role_clients = {role: self.gw.logged_in(email)
                             for role, email in ROLE_EMAILS.items()}

    def tearDown(self):
        self.set_mode("acme", {"mode": "off"})

    def test_mode_and_enabled_forms_set_and_read_back(self):
        self.assertEqual(self.admins["acme"].request("GET", SETTINGS).json["mode"], "off")
        for body, mode, enabled in (({"mode": "monitor"}, "monitor", False),
                                    ({"mode": "on"}, "on", True),
                                    ({"mode": "monitor"}, "monitor", False),
                                    ({"enabled": True}, "on", True),
                                    ({"enabled": False}, "off", False),
                                    ({"mode": "monitor"}, "monitor", False),
                                    ({"mode": "off"}, "off", False)):
            with self.subTest(body=body):
                got = self.set_mode("acme", body)
                self.assertEqual((got["mode"], got["enabled"]), (mode, enabled))
                for role, c in self.role_clients.items():
                    r = c.request("GET", SETTINGS)
                    self.assertEqual((r.status, r.json["mode"], r.json["enabled"]),
                                     (200, mode, enabled), role)

    def test_malformed_requests_name_the_field(self):
        admin = self.admins["acme"]
        for body, field in (({"mode": "audit", "password": PASSWORD}, "mode"),
                            ({"mode": True, "password": PASSWORD}, "mode"),
                            ({"mode": "on", "enabled": True, "password": PASSWORD}, "mode"),
                            ({"password": PASSWORD}, "enabled"),
                            ({"mode": "monitor"}, "password"),
                            ({"mode": "monitor", "password": PASSWORD, "x": 1}, "x")):
            with self.subTest(body=body):
                r = admin.request("PUT", SETTINGS, body)
                self.assertEqual((r.status, r.code), (400, "invalid_request"), r.raw)
                self.assertEqual(r.json["error"]["field"], field, r.raw)
                self.assertTrue(r.json["error"]["message"])
        self.assertEqual(admin.request("GET", SETTINGS).json["mode"], "off")

    def test_roles_and_password_rule_as_the_switch(self):
        # Marketing may not switch; the others may, with their own password.
        for role, status in (("marketing", 403), ("technical", 200), ("analytics", 200),
                             ("admin", 200)):
            with self.subTest(role=role):
                self.set_mode("acme", {"mode": "off"})
                r = self.role_clients[role].request("PUT", SETTINGS,
                                                    {"mode": "monitor", "password": PASSWORD})
                self.assertEqual(r.status, status, r.raw)
                want = "monitor" if status == 200 else "off"
                self.assertEqual(self.admins["acme"].request("GET", SETTINGS).json["mode"],
                                 want)
        self.set_mode("acme", {"mode": "off"})
        r = self.role_clients["technical"].request(
            "PUT", SETTINGS, {"mode": "monitor", "password": "not-the-password-1"})
        self.assertEqual((r.status, r.code), (403, "password_incorrect"), r.raw)
        self.assertEqual(self.admins["acme"].request("GET", SETTINGS).json["mode"], "off")
        denied = [e for e in audit_events(self.admins["acme"])
                  if e["action"] == "sender_auth.toggle_denied"]
        self.assertIn("wanted=monitor", denied[0]["detail"])

    def test_audited_and_an_event_carrying_the_mode(self):
        self.set_mode("acme", {"mode": "monitor"})
        self.set_mode("acme", {"mode": "monitor"})  # no change: no second event
        self.set_mode("acme", {"mode": "on"})
        actions = [(e["action"], e["detail"]) for e in audit_events(self.admins["acme"])[:3]]
        self.assertEqual(actions[0][0], "sender_auth.enabled")
        self.assertIn("mode=on", actions[0][1])
        self.assertEqual(actions[1][0], "sender_auth.monitor")
        self.assertIn("mode=monitor", actions[1][1])
        r = self.admins["acme"].request("GET", "/api/events?type=sender_auth.changed&limit=2")
        self.assertEqual([e["data"] for e in r.json["events"]],
                         [{"enabled": True, "mode": "on"},
                          {"enabled": False, "mode": "monitor"}])


class MonitorSendTest(MonitorCase):
    """Account mon in monitor mode: ok@ verified, wait@ pending, everyone else unlisted."""

    ACCOUNTS = ("mon", "nobody", "globex")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        admin = cls.admins["mon"]
        r = admin.request("POST", "/api/senders", {"addresses": ["ok@mon.test", "wait@mon.test"]})
        ok = next(a["id"] for a in r.json["added"] if a["address"] == "ok@mon.test")
        assert admin.request("POST", f"/api/senders/{ok}/verify").status == 200
        for account in ("mon", "nobody"):
            r = cls.admins[account].request("PUT", SETTINGS,
                                            {"mode": "monitor", "password": PASSWORD})
            assert r.status == 200, r.raw

    def test_1_monitored_sends_are_accepted_told_and_delivered_on_every_dialect(self):
        for path, sender, reason in ((NETCORE5, "who@mon.test", "sender_not_authorized"),
                                     (NETCORE6, "wait@mon.test", "sender_pending_verification"),
                                     (SENDGRID, "who@mon.test", "sender_not_authorized")):
            with self.subTest(path=path, sender=sender):
                r = self.send("mon", sender, path)
                self.assertEqual(r.status, 202 if path == SENDGRID else 200, r.raw)
                self.assertEqual(r.header(HEADER), f"monitor; would-refuse={reason}")
                self.delivered(self.message_id(r, path))
        r = self.send("mon", "ok@mon.test")
        self.assertEqual(r.status, 200, r.raw)
        self.assertIsNone(r.header(HEADER))
        self.delivered(self.message_id(r, NETCORE5))
        # Nobody verified: switched on, all mail would be dropped.
        r = self.send("nobody", "a@nobody.test", NETCORE6)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.header(HEADER), "monitor; would-refuse=sender_auth_no_senders")
        # A sandbox request is told too, and counted nowhere but under sandbox.
        r = self.send("mon", "who@mon.test", SENDGRID,
                      mail_settings={"sandbox_mode": {"enable": True}})
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.header(HEADER), "monitor; would-refuse=sender_not_authorized")

    def test_2_domain_refusals_are_never_relaxed(self):
        for sender, code in (("who@new.mon.test", "domain_not_verified"),
                             ("who@elsewhere.test", "domain_not_approved"),
                             ("ok@new.mon.test", "domain_not_verified")):
            with self.subTest(sender=sender):
                r = self.send("mon", sender)
                self.assertEqual((r.status, r.code), (403, code), r.raw)
                self.assertIsNone(r.header(HEADER))
        r = self.send("nobody", "a@new.nobody.test", SENDGRID)
        self.assertEqual((r.status, r.code), (403, "domain_not_verified"), r.raw)
        self.assertEqual(self.submit("mon", "who@new.mon.test", "who@mon.test")[0], 550)

    def test_3_smtp_tells_it_on_the_250(self):
        code, reply = self.submit("mon", "ok@mon.test", "Who <who@mon.test>")
        self.assertEqual(code, 250, reply)
        self.assertRegex(reply, rb"^2\.0\.0 Ok: queued as [0-9a-f]{32} "
                                rb"\(monitor; would-refuse=sender_not_authorized\)$")
        self.delivered(reply.split()[4].decode())
        # The envelope sender's would-be refusal when the header From is fine.
        code, reply = self.submit("mon", "wait@mon.test", "ok@mon.test")
        self.assertEqual(code, 250, reply)
        self.assertTrue(reply.endswith(b"(monitor; would-refuse=sender_pending_verification)"),
                        reply)
        code, reply = self.submit("mon", "ok@mon.test", "ok@mon.test")
        self.assertEqual(code, 250, reply)
        self.assertNotIn(b"monitor", reply)
        # Domains refuse at DATA too.
        code, reply = self.submit("mon", "ok@mon.test", "who@new.mon.test")
        self.assertEqual(code, 550, reply)
        self.assertTrue(reply.startswith(b"5.7.1 domain_not_verified"), reply)

    def test_4_stats_events_and_scoping(self):
        # From tests 1 and 3: who@ twice over HTTP and once over SMTP, wait@ once over HTTP
        # and once as SMTP's envelope; the sandbox request is not counted.
        want = {"sender_auth_no_senders": 0, "sender_not_authorized": 3,
                "sender_pending_verification": 2}
        self.assertEqual(self.stats("mon")["monitored"], want)
        self.assertEqual(self.stats("nobody")["monitored"]["sender_auth_no_senders"], 1)
        self.assertEqual(self.stats("globex")["monitored"],
                         dict.fromkeys(want, 0))
        self.assertEqual(self.stats("mon")["dropped"]["sender_not_authorized"], 0)
        events = self.admins["mon"].request(
            "GET", "/api/events?type=sender_policy.monitored&limit=100").json["events"]
        got = {}
        for e in events:
            d = e["data"]
            self.assertIsInstance(d["key_id"], int)
            self.assertRegex(d["minute"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$")
            got[(d["from"], d["reason"])] = got.get((d["from"], d["reason"]), 0) + d["count"]
        self.assertEqual(got, {("who@mon.test", "sender_not_authorized"): 3,
                               ("wait@mon.test", "sender_pending_verification"): 2})
        self.assertEqual(self.admins["globex"].request(
            "GET", "/api/events?type=sender_policy.monitored").json["events"], [])

    def test_5_preflight_numbers_statuses_and_scoping(self):
        # Accepted sends per address the switch judges (SMTP's header From, and its envelope
        # sender when that differs): who@ 3 (HTTP 2, SMTP 1), wait@ 2 (HTTP 1, SMTP's
        # envelope 1), ok@ 4 (HTTP 1, SMTP header 2, SMTP envelope 1); refusals and the
        # sandbox request are not sends.
        p = self.preflight("mon")
        rows = {a["email"]: a for a in p["addresses"]}
        self.assertEqual(p["days"], 7)
        self.assertEqual({e: (a["sends"], a["status"], a["would_refuse"])
                          for e, a in rows.items()},
                         {"who@mon.test": (3, "unlisted", "sender_not_authorized"),
                          "wait@mon.test": (2, "pending", "sender_pending_verification"),
                          "ok@mon.test": (4, "verified", None)})
        self.assertEqual((p["sends"], p["would_refuse"]), (9, 5))
        for a in p["addresses"]:
            self.assertRegex(a["last_seen"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # The most used first, then by address.
        self.assertEqual([a["email"] for a in p["addresses"]],
                         ["ok@mon.test", "who@mon.test", "wait@mon.test"])
        self.assertEqual(self.preflight("globex"),
                         {"days": 7, "sends": 0, "would_refuse": 0, "addresses": []})
        nobody = self.preflight("nobody")
        self.assertEqual(nobody["addresses"][0]["would_refuse"], "sender_auth_no_senders")

    def test_6_preflight_days_are_validated(self):
        admin = self.admins["mon"]
        for q in ("0", "91", "-1", "x", "", "7.5", "1e1"):
            with self.subTest(days=q):
                r = admin.request("GET", f"{PREFLIGHT}?days={q}")
                self.assertEqual((r.status, r.code), (400, "invalid_request"), r.raw)
                self.assertEqual(r.json["error"]["field"], "days")
        for q in ("1", "90"):
            self.assertEqual(self.preflight("mon", f"?days={q}")["days"], int(q))

    def test_7_every_role_reads_the_preflight(self):
        for role, email in ROLE_EMAILS.items():
            r = self.gw.logged_in(email).request("GET", PREFLIGHT)
            self.assertEqual(r.status, 200, (role, r.raw))
        self.assertEqual(self.gw.client().request("GET", PREFLIGHT).status, 401)

    def test_8_add_verify_switch_on_and_nothing_is_refused(self):
        p = self.preflight("mon")
        refused = [a["email"] for a in p["addresses"] if a["would_refuse"]]
        ids = self.add_senders("mon", *[e for e in refused if e != "wait@mon.test"])
        senders = self.admins["mon"].request("GET", "/api/senders").json["senders"]
        for s in senders:
            if s["status"] == "pending":
                v = self.admins["mon"].request("POST", f"/api/senders/{s['id']}/verify")
                self.assertEqual(v.status, 200, v.raw)
        self.assertTrue(ids)
        self.assertEqual(self.preflight("mon")["would_refuse"], 0)
        self.assertEqual(self.set_mode("mon", {"mode": "on"})["mode"], "on")
        for sender in ("who@mon.test", "wait@mon.test", "ok@mon.test"):
            r = self.send("mon", sender)
            self.assertEqual(r.status, 200, r.raw)
            self.assertIsNone(r.header(HEADER))
        r = self.send("mon", "stranger@mon.test")
        self.assertEqual((r.status, r.code), (403, "sender_not_authorized"), r.raw)
        self.assertEqual(self.stats("mon")["dropped"]["sender_not_authorized"], 1)


class WindowTest(MonitorCase):
    """The preflight's window follows the days asked for (the test clock moves days)."""

    def test_sends_leave_the_window_as_days_pass(self):
        self.assertEqual(self.send("acme", "old@acme.test").status, 200)
        self.assertEqual(self.preflight("acme", "?days=1")["sends"], 1)
        self.gw.advance_clock(3 * 86400)
        self.admins["acme"] = self.gw.logged_in("admin@acme.test")  # the session expired
        self.assertEqual(self.send("acme", "new@acme.test").status, 200)
        self.assertEqual([a["email"] for a in self.preflight("acme", "?days=1")["addresses"]],
                         ["new@acme.test"])
        p = self.preflight("acme", "?days=7")
        self.assertEqual(sorted(a["email"] for a in p["addresses"]),
                         ["new@acme.test", "old@acme.test"])
        # Off: the switch on would refuse both (nobody is listed).
        self.assertEqual((p["sends"], p["would_refuse"]), (2, 2))
        self.assertEqual({a["status"] for a in p["addresses"]}, {"unlisted"})


class DeliveryRecheckTest(MonitorCase):
    """The delivery-time re-check follows the mode at delivery: a scheduled message accepted
    in monitor is sent while monitor holds, and dropped when the switch went on meanwhile."""

    def gateway_now(self):
        offset = 0
        if os.path.exists(self.gw.clock_path):
            with open(self.gw.clock_path) as f:
                offset = int(f.read().strip() or 0)
        return int(time.time()) + offset

    def status(self, mid, *statuses):
        get = lambda: self.admins["acme"].request("GET", "/api/messages/" + mid).json
        m = wait_until(lambda: (lambda m: m if m["status"] in statuses else None)(get()),
                       timeout=30)
        self.assertTrue(m, f"{mid} never reached {statuses}: {get()}")
        return m

    def test_scheduled_monitored_mail_follows_the_mode_at_delivery(self):
        self.add_senders("acme", "ok@acme.test", verify=("ok@acme.test",))
        self.set_mode("acme", {"mode": "monitor"})
        at = self.gateway_now() + 3600
        kept = self.send("acme", "who@acme.test", schedule=at)
        self.assertEqual(kept.status, 200, kept.raw)
        self.assertEqual(kept.header(HEADER), "monitor; would-refuse=sender_not_authorized")
        kept = kept.json["data"]["message_id"]
        self.assertEqual(self.status(kept, "scheduled")["status"], "scheduled")
        self.gw.advance_clock(3601)
        self.admins["acme"] = self.gw.logged_in("admin@acme.test")
        self.delivered(kept)
        self.assertEqual(self.status(kept, "sent")["status"], "sent")

        at = self.gateway_now() + 3600
        r = self.send("acme", "who@acme.test", schedule=at)
        self.assertEqual(r.status, 200, r.raw)
        later = r.json["data"]["message_id"]
        self.set_mode("acme", {"mode": "on"})
        self.gw.advance_clock(3601)
        self.admins["acme"] = self.gw.logged_in("admin@acme.test")
        m = self.status(later, "dropped")
        self.assertEqual(m["status"], "dropped", m)


if __name__ == "__main__":
    main()
