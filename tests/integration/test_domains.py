"""Approved sending domains against a real DNS server (dnsmasq on loopback): records to
publish, checks (missing, mismatch, verified, failed after the grace period, lookup errors
changing nothing), the scheduler, deactivation, DKIM rotation, and signed mail checked by
opendkim's own verifier."""
import json
import os
import re
import socket
import threading
import time
import unittest

from harness import (PASSWORD, Dnsmasq, DomainSteps, Gateway, SmtpSink, cli, main, must,
                     send_body, wait_until)

NETCORE = "/v5/mail/send"
DAY = 24 * 3600


def message(sender):
    return send_body(sender, text="Hello")  # the DKIM test tampers with "Hello"


class DomainCase(DomainSteps, unittest.TestCase):
    """One gateway and one DNS server per class; each test uses domains of its own."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.gw.add_account("globex", "admin@globex.test")
        cls.gw.add_user("acme", "tech@acme.test", "technical")
        cls.gw.add_user("acme", "ana@acme.test", "analytics")
        cls.dns = Dnsmasq("example.test")
        cls.records = {}
        cls.dns.start()
        cls.sink = SmtpSink(os.path.join(cls.gw.tmp, "sink")).start()
        ini = os.path.join(cls.gw.tmp, "dns.ini")
        with open(ini, "w") as f:
            f.write(f"[dns]\nservers = 127.0.0.1:{cls.dns.port}\ntimeout = 3s\n"
                    "grace = 24h\ncheck_pending = 5m\ncheck_verified = 24h\n"
                    "spf_include = _spf.postern.example\n"
                    # One worker: the key it opened and kept is the one a rotation
                    # must replace (RotationTest).
                    "[relay]\nretry_base = 1s\nretry_max = 1s\nconnections = 1\n")
        cls.gw.extra_args = ["--config", ini, "--relay", f"smtp://127.0.0.1:{cls.sink.port}"]
        cls.gw.dns_port = cls.dns.port
        cls.key = cls.gw.create_key("acme")
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.dns.stop()
        cls.sink.stop()

    def send(self, sender):
        return self.gw.client().request("POST", NETCORE, message(sender),
                                        headers={"Authorization": "Bearer " + self.key})

    def advance(self, seconds):
        """Moves the daemon's clock; sessions expire with it, so log in again."""
        self.gw.advance_clock(seconds)
        self.assertEqual(self.admin.login("admin@acme.test").status, 200)

    def statuses(self, domain):
        return {r["purpose"]: r["status"] for r in domain["records"]}

    def delivered(self, sender):
        """Sends from sender and returns the message as the relay received it, from its
        DKIM-Signature on (smtp-sink's own lines before it dropped)."""
        r = self.send(sender)
        self.assertEqual(r.status, 200, r.raw)
        mid = r.json["data"]["message_id"]
        self.sink.wait_for(lambda m: any(mid in str(x["Message-ID"]) for x in m))
        for name in os.listdir(self.sink.dir):
            with open(os.path.join(self.sink.dir, name), "rb") as f:
                data = f.read()
            if mid.encode() in data:
                return data[data.index(b"DKIM-Signature:"):]
        self.fail(f"message {mid} not found at the sink")


class AddTest(DomainCase):
    def test_a_new_domain_lists_its_records(self):
        d = self.add("News.Example.TEST")
        self.assertEqual((d["name"], d["status"], d["active"]), ("news.example.test", "pending",
                                                                 True))
        self.assertIsNone(d["checked_at"])
        by = {r["purpose"]: r for r in d["records"]}
        self.assertEqual(by["ownership"]["name"], "_postern.news.example.test")
        self.assertRegex(by["ownership"]["value"], r"^postern-verification=[A-Za-z0-9_-]{43}$")
        self.assertRegex(by["dkim"]["name"], r"^pst[0-9a-f]{8}\._domainkey\.news\.example\.test$")
        self.assertRegex(by["dkim"]["value"], r"^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$")
        self.assertGreater(len(by["dkim"]["value"]), 255)  # published as several strings
        self.assertEqual(by["spf"]["value"], "v=spf1 include:_spf.postern.example ~all")
        self.assertEqual((by["ownership"]["required"], by["dkim"]["required"],
                          by["spf"]["required"]), (True, True, False))
        self.assertEqual({r["status"] for r in d["records"]}, {"unknown"})
        listed = self.admin.request("GET", "/api/domains").json["domains"]
        self.assertIn("news.example.test", [x["name"] for x in listed])

    def test_bad_names_and_duplicates(self):
        for name in ("com", "co.uk", "1.2.3.4", "bad domain", "example", "-x.example.test"):
            r = self.admin.request("POST", "/api/domains", {"domain": name})
            self.assertEqual((r.status, r.code), (400, "invalid_domain"), name)
            self.assertEqual(r.json["error"]["field"], "domain")
        self.add("dup.example.test")
        r = self.admin.request("POST", "/api/domains", {"domain": "DUP.example.test"})
        self.assertEqual((r.status, r.code), (409, "already_exists"))

    def test_idn_is_stored_as_a_label(self):
        d = self.add("bücher.example.test")
        self.assertEqual(d["name"], "xn--bcher-kva.example.test")

    def test_roles_and_accounts(self):
        ana = self.gw.client()
        ana.login("ana@acme.test")
        self.assertEqual(ana.request("POST", "/api/domains", {"domain": "a.example.test"}).code,
                         "forbidden")
        self.assertEqual(ana.request("GET", "/api/domains").status, 200)
        tech = self.gw.client()
        tech.login("tech@acme.test")
        mine = self.add("tech.example.test", tech)
        other = self.gw.client()
        other.login("admin@globex.test")
        theirs = self.add("tech.example.test", other)  # the same name, another account
        self.assertNotEqual(mine["records"][0]["value"], theirs["records"][0]["value"])
        for method, suffix in (("POST", "/check"), ("PATCH", ""), ("DELETE", ""),
                               ("POST", "/dkim/rotate")):
            r = other.request(method, f"/api/domains/{mine['id']}{suffix}", {"active": False})
            self.assertEqual(r.status, 404, (method, suffix))

    def test_private_keys_never_leave_and_are_sealed_at_rest(self):
        d = self.add("sealed.example.test")
        self.assertNotIn("PRIVATE", json.dumps(d))
        keys = [k for (k,) in self.gw.sql("SELECT private_sealed FROM dkim_keys")]
        self.assertTrue(keys)
        self.assertFalse(any("PRIVATE KEY" in k for k in keys))


class CheckTest(DomainCase):
    def test_pending_until_published_then_verified_and_sendable(self):
        d = self.add("mail.example.test")
        self.assertEqual(self.send("a@mail.example.test").code, "domain_not_verified")
        d = self.check(d)
        self.assertEqual(d["status"], "pending")
        self.assertEqual(self.statuses(d), {"ownership": "missing", "dkim": "missing",
                                            "spf": "missing"})
        self.assertIsNotNone(d["checked_at"])
        self.publish(d)
        d = self.check(d)
        self.assertEqual(d["status"], "verified")
        self.assertEqual(self.statuses(d)["ownership"], "ok")
        self.assertEqual(self.statuses(d)["dkim"], "ok")
        self.assertEqual(self.send("a@mail.example.test").status, 200)
        events = self.admin.request("GET", "/api/audit?limit=50").json["events"]
        self.assertIn("domain.verified", [e["action"] for e in events])

    def test_a_wrong_token_is_a_mismatch(self):
        d = self.add("wrong.example.test")
        self.publish(d, **{"_postern.wrong.example.test": "postern-verification=not-ours"})
        d = self.check(d)
        self.assertEqual(d["status"], "pending")
        self.assertEqual(self.statuses(d)["ownership"], "mismatch")

    def test_records_gone_fail_the_domain_only_after_the_grace_period(self):
        d = self.add("grace.example.test")
        self.publish(d)
        self.assertEqual(self.check(d)["status"], "verified")
        self.unpublish(d)
        d = self.check(d)
        self.assertEqual(d["status"], "verified")  # first miss: remembered, not failed
        self.assertEqual(self.send("a@grace.example.test").status, 200)
        self.advance(DAY + 60)
        d = self.check(d)
        self.assertEqual(d["status"], "failed")
        r = self.send("a@grace.example.test")
        self.assertEqual((r.status, r.json["error"][0]["code"]), (403, "domain_not_verified"))
        events = self.admin.request("GET", "/api/audit?limit=100").json["events"]
        self.assertIn("domain.failed", [e["action"] for e in events])
        self.publish(d)
        self.assertEqual(self.check(d)["status"], "verified")
        self.assertEqual(self.send("a@grace.example.test").status, 200)

    def test_checks_at_the_same_time_all_answer(self):
        """Checks of one domain that overlap (a user's, the scheduler's, another node's)
        each answer with the domain as it is: one landing between another's read and write
        makes that one look again, not fail."""
        clients = [self.gw.logged_in("admin@acme.test") for _ in range(4)]
        answers = []
        for i in range(3):
            d = self.add(f"overlap{i}.example.test")
            self.publish(d)
            threads = [threading.Thread(target=lambda c=c, d=d: answers.append(
                c.request("POST", f"/api/domains/{d['id']}/check"))) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        self.assertEqual(len(answers), 12)
        for r in answers:
            self.assertEqual(r.status, 200, r.raw)
            if not r.json["check_error"]:
                self.assertEqual(r.json["status"], "verified")

    def test_records_back_within_the_grace_period_start_over(self):
        d = self.add("blip.example.test")
        self.publish(d)
        self.check(d)
        self.unpublish(d)
        self.check(d)  # first miss
        self.publish(d)
        self.check(d)  # back: the miss is forgotten
        self.unpublish(d)
        self.advance(DAY + 60)
        self.assertEqual(self.check(d)["status"], "verified")  # a new first miss

    def test_a_dns_failure_changes_nothing(self):
        d = self.add("outage.example.test")
        self.publish(d)
        self.assertEqual(self.check(d)["status"], "verified")
        self.dns.stop()
        try:
            self.advance(2 * DAY)
            for _ in range(2):
                d = self.check(d, retry_lookup_errors=False)
                self.assertEqual(d["status"], "verified")
                self.assertTrue(d["check_error"])
        finally:
            self.dns.start(self.records)
        self.assertEqual(self.send("a@outage.example.test").status, 200)

    def test_deactivated_domains_refuse_mail(self):
        d = self.add("off.example.test")
        self.publish(d)
        self.check(d)
        r = self.admin.request("PATCH", f"/api/domains/{d['id']}", {"active": False})
        self.assertEqual((r.status, r.json["active"]), (200, False))
        self.assertEqual(self.send("a@off.example.test").json["error"][0]["code"],
                         "domain_inactive")
        self.admin.request("PATCH", f"/api/domains/{d['id']}", {"active": True})
        self.assertEqual(self.send("a@off.example.test").status, 200)
        self.assertEqual(self.admin.request("PATCH", f"/api/domains/{d['id']}",
                                            {"active": "no"}).status, 400)

    def test_removing_a_domain(self):
        d = self.add("gone.example.test")
        self.publish(d)
        self.check(d)
        self.assertEqual(self.admin.request("DELETE", f"/api/domains/{d['id']}").status, 204)
        self.assertEqual(self.send("a@gone.example.test").json["error"][0]["code"],
                         "domain_not_approved")
        self.assertEqual(self.admin.request("DELETE", f"/api/domains/{d['id']}").status, 404)


class SpfAdviceTest(DomainCase):
    """A domain that already publishes SPF is advised that record with Postern's include
    merged in, never a second SPF record."""

    INCLUDE = "include:_spf.postern.example"

    def spf(self, domain):
        return next(r for r in domain["records"] if r["purpose"] == "spf")

    def listed(self, domain):
        domains = self.admin.request("GET", "/api/domains").json["domains"]
        return next(d for d in domains if d["id"] == domain["id"])

    def test_an_existing_record_is_merged_then_verifies_once_published(self):
        d = self.add("spf.example.test")
        self.assertEqual((self.spf(d)["value"], self.spf(d)["replaces"], self.spf(d)["note"]),
                         (f"v=spf1 {self.INCLUDE} ~all", [], None))
        self.records["spf.example.test"] = "v=spf1 mx ip4:192.0.2.0/24 -all"
        self.dns.restart(self.records)
        d = self.check(d)
        merged = f"v=spf1 mx ip4:192.0.2.0/24 {self.INCLUDE} -all"
        for shown in (d, self.listed(d)):  # as the check answers, and as the list keeps it
            spf = self.spf(shown)
            self.assertEqual((spf["value"], spf["status"]), (merged, "mismatch"))
            self.assertEqual(spf["replaces"], ["v=spf1 mx ip4:192.0.2.0/24 -all"])
            self.assertIn("Replaces the SPF record", spf["note"])
        self.assertEqual(d["status"], "pending")

        # A lookup that fails keeps what was seen: the advice stays merged.
        self.dns.stop()
        try:
            self.assertEqual(self.spf(self.check(d, retry_lookup_errors=False))["value"],
                             merged)
        finally:
            self.dns.start(self.records)

        self.publish(d, **{"spf.example.test": merged})
        d = self.check(d)
        self.assertEqual(d["status"], "verified")
        self.assertEqual((self.spf(d)["value"], self.spf(d)["status"], self.spf(d)["replaces"],
                          self.spf(d)["note"]), (merged, "ok", [], None))
        self.assertEqual(self.spf(self.listed(d))["status"], "ok")

    def test_two_records_are_advised_as_one(self):
        d = self.add("two.example.test")
        both = ["v=spf1 mx -all", "v=spf1 include:_spf.other.example ~all"]
        self.publish(d, **{"two.example.test": both + [f"v=spf1 {self.INCLUDE} ~all"]})
        d = self.check(d)
        spf = self.spf(d)
        # DNS answers in any order, and the merge keeps the order it found.
        self.assertIn(spf["value"], (
            f"v=spf1 mx include:_spf.other.example {self.INCLUDE} -all",
            f"v=spf1 include:_spf.other.example mx {self.INCLUDE} -all"))
        self.assertEqual(spf["status"], "mismatch")  # receivers fail a domain with two
        self.assertEqual(sorted(spf["replaces"]), sorted(both + [f"v=spf1 {self.INCLUDE} ~all"]))
        self.assertIn("remove the others", spf["note"])
        self.publish(d, **{"two.example.test": spf["value"]})
        self.assertEqual(self.spf(self.check(d))["status"], "ok")


class SchedulerTest(DomainCase):
    def test_pending_domains_are_checked_on_their_own(self):
        d = self.add("sched.example.test")
        self.publish(d)
        listed = lambda: next(x for x in self.admin.request("GET", "/api/domains").json[
            "domains"] if x["name"] == "sched.example.test")
        # Past check_pending, the scheduler checks on its own; a lookup that fails on a
        # loaded machine is retried at the next period, so move on a period at a time.
        done = False
        for _ in range(4):
            self.advance(6 * 60)
            done = wait_until(lambda: listed()["status"] == "verified", timeout=8)
            if done:
                break
        self.assertTrue(done, listed())


    def test_operator_verified_domains_are_left_alone(self):
        self.gw.add_domain("acme", "manual.example.test", "--verified")
        listed = lambda: next(x for x in self.admin.request("GET", "/api/domains").json[
            "domains"] if x["name"] == "manual.example.test")
        self.assertTrue(listed()["manual"])
        for _ in range(2):
            self.advance(2 * DAY)
            time.sleep(2)  # scheduler passes happen every second; none may touch it
        d = listed()
        self.assertEqual((d["status"], d["checked_at"]), ("verified", None))
        self.assertEqual(self.send("a@manual.example.test").status, 200)


class RotationTest(DomainCase):
    def test_a_new_key_signs_once_its_record_is_found(self):
        d = self.add("rotate.example.test")
        self.publish(d)
        d = self.check(d)
        old = next(r for r in d["records"] if r["purpose"] == "dkim")
        body = self.delivered("news@rotate.example.test")  # the old key, now cached
        self.assertIn(("s=" + old["name"].split(".")[0] + ";").encode(),
                      re.sub(rb"\s", b"", body))
        r = self.admin.request("POST", f"/api/domains/{d['id']}/dkim/rotate")
        self.assertEqual(r.status, 200, r.raw)
        new = next(x for x in r.json["records"] if x["purpose"] == "dkim_next")
        self.assertFalse(new["required"])
        self.assertNotEqual(new["name"], old["name"])
        again = self.admin.request("POST", f"/api/domains/{d['id']}/dkim/rotate")
        self.assertEqual((again.status, again.code), (409, "rotation_pending"))
        d = self.check(r.json)  # the new record is not published yet
        self.assertEqual(self.statuses(d)["dkim_next"], "missing")
        self.assertEqual(d["status"], "verified")
        self.publish(d)
        d = self.check(d)
        dkim = [(x["name"], x["purpose"], x["required"]) for x in d["records"]
                if x["purpose"].startswith("dkim")]
        # The old key stays listed (not required) for mail still on its way, then goes.
        self.assertEqual(dkim, [(new["name"], "dkim", True),
                                (old["name"], "dkim_retired", False)])
        # Delivery workers keep opened keys: the promotion must reach them at once.
        body = self.delivered("news@rotate.example.test")
        self.assertIn(("s=" + new["name"].split(".")[0] + ";").encode(),
                      re.sub(rb"\s", b"", body))
        self.advance(8 * DAY)
        d = self.admin.request("GET", "/api/domains").json["domains"]
        d = next(x for x in d if x["name"] == "rotate.example.test")
        self.assertEqual([x["name"] for x in d["records"] if x["purpose"].startswith("dkim")],
                         [new["name"]])


class SigningTest(DomainCase):
    def test_delivered_mail_is_signed_and_verifies_with_opendkim(self):
        from dkim_verify import verify
        d = self.add("signed.example.test")
        self.publish(d)
        d = self.check(d)
        body = self.delivered("news@signed.example.test")
        self.assertIn(b"d=signed.example.test", body)
        dkim = next(x for x in d["records"] if x["purpose"] == "dkim")
        self.assertIn(("s=" + dkim["name"].split(".")[0]).encode(), body)
        records = {dkim["name"]: dkim["value"]}
        ok, out = verify(body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), records)
        self.assertTrue(ok, out)
        tampered = body.replace(b"Hello", b"Jello")
        ok, out = verify(tampered, records)
        self.assertFalse(ok, out)


class MarkDuringCheckTest(unittest.TestCase):
    """An operator's mark made while a check's lookups run is not overwritten by the check's
    result (a lost update that showed as a domain flipping back to pending)."""

    def test_a_mark_during_a_check_stands(self):
        gw = Gateway().init("acme", "admin@acme.test")
        self.addCleanup(gw.cleanup)
        # A DNS server that takes every question and answers none: each lookup waits 3 s.
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        gw.dns_port = silent.getsockname()[1]
        ini = os.path.join(gw.tmp, "dns.ini")
        with open(ini, "w") as f:
            f.write("[dns]\ntimeout = 3s\ncheck_pending = 1h\n")
        gw.extra_args = ["--config", ini]
        gw.start()
        admin = gw.logged_in("admin@acme.test")
        r = admin.request("POST", "/api/domains", {"domain": "mark.example"})
        self.assertEqual(r.status, 201, r.raw)
        did = r.json["id"]
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=admin.request("POST", f"/api/domains/{did}/check")))
        t.start()
        time.sleep(1)  # the check's lookups are waiting
        must(cli("domain", "set", *gw.store_args, "--account", "acme", "mark.example",
                 "--verified", password=None))
        t.join(60)
        self.assertFalse(t.is_alive())
        got = [d for d in admin.request("GET", "/api/domains").json["domains"]
               if d["id"] == did]
        self.assertEqual(got[0]["status"], "verified", got)


if __name__ == "__main__":
    main()
