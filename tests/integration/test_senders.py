"""Authorized sender email IDs over real HTTP: the password-confirmed switch
(GET/PUT /api/settings/sender-auth), the sender list (GET/POST /api/senders, verify,
remove), normalization, verification batches in the database, sending domains set by the
CLI, account isolation, the role matrix and the audit trail."""
import re

from harness import (PASSWORD, ROLE_EMAILS, RolesCase, audit_events, cli, last_audit_id, main,
                     must)

ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
SETTINGS = "/api/settings/sender-auth"



def events_since(admin, since, action=None, actor=None):
    return [e for e in audit_events(admin) if e["id"] > since
            and (action is None or e["action"] == action)
            and (actor is None or e["actor"] == actor)]


class SenderAuthSettingsTest(RolesCase):
    """The account-wide switch: every toggle re-checks the acting user's own password."""

    @classmethod
    def more_setup(cls):
        cls.gw.add_user("acme", "lock@acme.test", "technical")  # only the lockout test
        cls.gw.add_account("globex", "admin@globex.test")  # never changed by this class


    def settings(self, client=None):
        r = (client or self.admin).request("GET", SETTINGS)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def toggle(self, client, enabled, password=PASSWORD, **kw):
        return client.request("PUT", SETTINGS, {"enabled": enabled, "password": password}, **kw)

    def test_a_new_account_has_the_switch_off_and_no_senders(self):
        globex = self.gw.logged_in("admin@globex.test")
        r = globex.request("GET", SETTINGS)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json, {"enabled": False, "mode": "off", "verified": 0,
                                  "pending": 0})

    def test_every_role_reads_the_setting(self):
        for client in (self.admin, self.tech, self.ana, self.mkt):
            s = self.settings(client)
            self.assertEqual(set(s), {"enabled", "mode", "verified", "pending"})
            self.assertIsInstance(s["enabled"], bool)
            self.assertIsInstance(s["verified"], int)
            self.assertIsInstance(s["pending"], int)

    def test_enabling_without_a_verified_sender_warns_and_counts_follow_the_list(self):
        # This is the only test of the class that adds senders to acme.
        r = self.toggle(self.admin, True)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json, {"enabled": True, "mode": "on", "verified": 0, "pending": 0,
                                  "warning": "no_authorized_senders"})
        self.assertEqual(self.settings(),
                         {"enabled": True, "mode": "on", "verified": 0, "pending": 0})

        r = self.toggle(self.admin, False)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json, {"enabled": False, "mode": "off", "verified": 0,
                                  "pending": 0})

        r = self.admin.request("POST", "/api/senders",
                               {"addresses": ["one@count.example", "two@count.example"]})
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(self.settings(self.mkt),
                         {"enabled": False, "mode": "off", "verified": 0, "pending": 2})
        first = r.json["added"][0]["id"]
        self.assertEqual(self.admin.request("POST", f"/api/senders/{first}/verify").status, 200)
        self.assertEqual(self.settings(self.mkt),
                         {"enabled": False, "mode": "off", "verified": 1, "pending": 1})

        r = self.toggle(self.tech, True)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json, {"enabled": True, "mode": "on", "verified": 1, "pending": 1})
        self.assertNotIn("warning", r.json)

        # Once the only verified sender is gone, enabling warns again.
        self.assertEqual(self.admin.request("DELETE", f"/api/senders/{first}").status, 204)
        r = self.toggle(self.tech, True)
        self.assertEqual(r.json, {"enabled": True, "mode": "on", "verified": 0, "pending": 1,
                                  "warning": "no_authorized_senders"})
        self.assertEqual(self.toggle(self.admin, False).status, 200)

    def test_each_toggle_rechecks_the_password_of_the_acting_user(self):
        before = self.settings()["enabled"]
        self.assertEqual(self.toggle(self.ana, before).status, 200)
        # The same session a moment later: the password is asked again, not remembered.
        r = self.toggle(self.ana, not before, password="not-ana's-password")
        self.assertError(r, 403, "password_incorrect")
        self.assertEqual(self.settings()["enabled"], before)
        # Another user's password is not the acting user's password.
        self.gw.add_user("acme", "other-pw@acme.test", "marketing", password="a different pw")
        r = self.toggle(self.ana, not before, password="a different pw")
        self.assertError(r, 403, "password_incorrect")
        self.assertEqual(self.settings()["enabled"], before)
        r = self.toggle(self.ana, not before)  # the right one clears the failures
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["enabled"], not before)
        self.assertEqual(self.toggle(self.ana, before).status, 200)

    def test_wrong_password_is_refused_audited_and_never_written_down(self):
        secret = "Tr0ub4dor&3-not-the-password"
        before = self.settings()["enabled"]
        since = last_audit_id(self.admin)
        r = self.toggle(self.tech, not before, password=secret)
        self.assertError(r, 403, "password_incorrect")
        self.assertEqual(self.settings()["enabled"], before)

        denied = events_since(self.admin, since, "sender_auth.toggle_denied")
        self.assertEqual(len(denied), 1, denied)
        self.assertEqual(denied[0]["actor"], "tech@acme.test")
        self.assertIn("role=technical", denied[0]["detail"])
        self.assertEqual(denied[0]["ip"], "127.0.0.1")
        self.assertEqual(len(events_since(self.admin, since, "sender_auth.enabled")) +
                         len(events_since(self.admin, since, "sender_auth.disabled")), 0)

        audit = self.admin.request("GET", "/api/audit?limit=1000")
        self.assertNotIn(secret, audit.raw.decode())
        self.assertEqual(self.toggle(self.tech, before).status, 200)  # clears the failure
        log = self.gw.read_log()
        self.assertIn("PUT /api/settings/sender-auth 403", log)
        for text in (secret, PASSWORD):
            self.assertNotIn(text, log)
            self.assertNotIn(text, audit.raw.decode())

    def test_five_wrong_passwords_lock_the_switch_and_the_login(self):
        lock = self.gw.logged_in("lock@acme.test")
        before = self.settings()["enabled"]
        for i in range(5):
            r = self.toggle(lock, not before, password=f"wrong-{i}-password")
            self.assertError(r, 403, "password_incorrect")
        r = self.toggle(lock, not before, password="wrong-5-password")
        self.assertError(r, 429, "too_many_attempts")
        r = self.toggle(lock, not before)  # the right password, too late
        self.assertError(r, 429, "too_many_attempts")
        self.assertEqual(self.settings()["enabled"], before)

        login = self.gw.client().login("lock@acme.test")
        self.assertError(login, 429, "too_many_attempts")
        locked = [e for e in audit_events(self.admin) if e["action"] == "user.locked_out"]
        self.assertEqual([e["target"] for e in locked], ["lock@acme.test"])
        # Other users are not affected.
        self.assertEqual(self.toggle(self.tech, before).status, 200)

    def test_marketing_is_forbidden_before_its_password_is_looked_at(self):
        before = self.settings()["enabled"]
        since = last_audit_id(self.admin)
        r = self.toggle(self.mkt, not before)  # the right password
        self.assertError(r, 403, "forbidden")
        for i in range(6):  # more wrong passwords than the lockout allows
            r = self.toggle(self.mkt, not before, password=f"mkt-wrong-{i}")
            self.assertError(r, 403, "forbidden")
        # Even a malformed body is refused for the role first.
        self.assertError(self.mkt.request("PUT", SETTINGS, {"enabled": "yes"}), 403,
                         "forbidden")
        self.assertEqual(self.settings()["enabled"], before)

        mine = events_since(self.admin, since, actor="mkt@acme.test")
        self.assertEqual([e["action"] for e in mine], ["permission.denied"] * 8)
        for e in mine:
            self.assertEqual(e["target"], SETTINGS)
            self.assertIn("role=marketing", e["detail"])
            self.assertEqual(e["ip"], "127.0.0.1")
        # No password check was counted: a fresh login with the right password works.
        self.assertEqual(self.gw.client().login("mkt@acme.test").status, 200)

    def test_missing_password_or_non_boolean_enabled_names_the_field(self):
        before = self.settings()["enabled"]
        cases = [
            ({"enabled": not before}, "password"),
            ({"enabled": not before, "password": ""}, "password"),
            ({"enabled": not before, "password": 12345678}, "password"),
            ({"enabled": not before, "password": None}, "password"),
            ({"password": PASSWORD}, "enabled"),
            ({"enabled": "true", "password": PASSWORD}, "enabled"),
            ({"enabled": 1, "password": PASSWORD}, "enabled"),
            ({"enabled": None, "password": PASSWORD}, "enabled"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                r = self.tech.request("PUT", SETTINGS, body)
                self.assertError(r, 400, "invalid_request", field)
        self.assertError(self.tech.request("PUT", SETTINGS, raw='{"enabled": tru'), 400,
                         "invalid_json")
        self.assertEqual(self.settings()["enabled"], before)

    def test_a_toggle_without_the_csrf_token_is_refused(self):
        before = self.settings()["enabled"]
        r = self.toggle(self.admin, not before, csrf=False)
        self.assertError(r, 403, "csrf_failed")
        r = self.toggle(self.admin, not before, headers={"X-CSRF-Token": "x" * 43})
        self.assertError(r, 403, "csrf_failed")
        self.assertEqual(self.settings()["enabled"], before)
        r = self.gw.client().request("PUT", SETTINGS,
                                     {"enabled": not before, "password": PASSWORD})
        self.assertError(r, 401, "not_authenticated")
        self.assertEqual(self.settings()["enabled"], before)

    def test_enabling_and_disabling_are_audited_with_actor_role_and_ip(self):
        since = last_audit_id(self.admin)
        self.assertEqual(self.toggle(self.ana, True).status, 200)
        self.assertEqual(self.toggle(self.ana, False).status, 200)
        mine = events_since(self.admin, since, actor="ana@acme.test")
        self.assertEqual([e["action"] for e in mine],
                         ["sender_auth.disabled", "sender_auth.enabled"])  # newest first
        for e in mine:
            self.assertIn("role=analytics", e["detail"])
            self.assertEqual(e["ip"], "127.0.0.1")
            self.assertNotIn(PASSWORD, e["detail"])


class SendersTest(RolesCase):
    """The sender list: adding, normalizing, verifying, removing, and what each leaves."""

    @classmethod
    def more_setup(cls):
        cls.gw.add_account("globex", "admin@globex.test")
        cls.gw.add_account("bulk", "admin@bulk.test")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.globex = cls.gw.logged_in("admin@globex.test")


    def add(self, client, *addresses):
        r = client.request("POST", "/api/senders", {"addresses": list(addresses)})
        self.assertEqual(r.status, 201, r.raw)
        mail = {"verification_email"} if r.json["added"] else set()
        self.assertEqual(set(r.json), {"added", "rejected"} | mail)
        return r.json

    def add_one(self, client, address):
        added = self.add(client, address)["added"]
        self.assertEqual(len(added), 1, added)
        return added[0]["id"]

    def senders(self, client=None):
        r = (client or self.admin).request("GET", "/api/senders")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(set(r.json), {"senders"})
        return {s["address"]: s for s in r.json["senders"]}

    def domain(self, *args):
        key = self.gw.key_args if args[0] == "add" else []
        must(cli("domain", *args[:1], *self.gw.store_args, *key, *args[1:], password=None))

    def test_list_entries_have_the_documented_fields(self):
        sid = self.add_one(self.tech, "shape@list.example")
        s = self.senders(self.mkt)["shape@list.example"]
        self.assertEqual(set(s), {"id", "address", "status", "domain", "added_by",
                                  "added_at", "verified_by", "verified_at", "verified_via",
                                  "admin_verified_at", "owner_confirmed_at", "waiting_for",
                                  "confirmation_sent_at"})
        self.assertEqual(s["id"], sid)
        self.assertEqual(s["status"], "pending")
        self.assertIsNone(s["domain"])
        self.assertEqual(s["added_by"], "tech@acme.test")
        self.assertRegex(s["added_at"], ISO)
        self.assertIsNone(s["verified_by"])
        self.assertIsNone(s["verified_at"])

    def test_add_answers_what_was_added_and_why_the_rest_was_rejected(self):
        self.add(self.admin, "taken@add.example")
        r = self.add(self.mkt, "new@add.example", "not-an-address", "no-tld@localhost",
                     "two..dots@add.example", "ip@192.0.2.1", "Dup@Add.example",
                     "dup@add.example", "taken@add.example", "TAKEN@add.EXAMPLE")
        added = r["added"]
        self.assertEqual({a["address"] for a in added}, {"new@add.example", "dup@add.example"})
        for a in added:
            self.assertEqual(set(a), {"id", "address", "status"})
            self.assertIsInstance(a["id"], int)
            self.assertEqual(a["status"], "pending")
        rejected = {x["address"]: x for x in r["rejected"]}
        for x in r["rejected"]:
            self.assertEqual(set(x), {"address", "code", "message"})
            self.assertTrue(x["message"])
        for bad in ("not-an-address", "no-tld@localhost", "two..dots@add.example",
                    "ip@192.0.2.1"):
            self.assertEqual(rejected[bad]["code"], "invalid_address", bad)
        # Repeated within the request (whatever the case), and already in the account.
        self.assertEqual(rejected["dup@add.example"]["code"], "already_exists")
        self.assertEqual(rejected["taken@add.example"]["code"], "already_exists")
        self.assertEqual(rejected["TAKEN@add.EXAMPLE"]["code"], "already_exists")
        self.assertEqual(len(r["rejected"]), 7)

        listed = self.senders()
        self.assertIn("new@add.example", listed)
        self.assertIn("dup@add.example", listed)
        self.assertNotIn("not-an-address", listed)
        self.assertEqual(listed["new@add.example"]["added_by"], "mkt@acme.test")

    def test_addresses_are_stored_normalized(self):
        r = self.add(self.admin, "Mixed.Case@Example.COM", "x@bücher.example",
                     "news+x@norm.example", "news@norm.example")
        self.assertEqual(r["rejected"], [])
        self.assertEqual([a["address"] for a in r["added"]],
                         ["mixed.case@example.com", "x@xn--bcher-kva.example",
                          "news+x@norm.example", "news@norm.example"])
        listed = self.senders()
        for address in ("mixed.case@example.com", "x@xn--bcher-kva.example",
                        "news+x@norm.example", "news@norm.example"):
            self.assertIn(address, listed)
        self.assertNotIn("x@bücher.example", listed)
        # The same addresses in another spelling are the same senders.
        r = self.add(self.admin, "MIXED.case@example.com", "X@xn--bcher-kva.example",
                     "x@BÜCHER.Example", "NEWS+X@Norm.Example")
        self.assertEqual(r["added"], [])
        self.assertEqual([x["code"] for x in r["rejected"]], ["already_exists"] * 4)

    def test_another_account_may_add_the_same_address(self):
        self.add(self.admin, "shared@both.example")
        r = self.add(self.globex, "shared@both.example")
        self.assertEqual([a["address"] for a in r["added"]], ["shared@both.example"])
        self.assertIn("shared@both.example", self.senders(self.globex))

    def test_a_removed_address_added_again_starts_pending(self):
        sid = self.add_one(self.admin, "again@readd.example")
        self.assertEqual(self.admin.request("POST", f"/api/senders/{sid}/verify").status, 200)
        self.assertEqual(self.senders()["again@readd.example"]["status"], "verified")
        self.assertEqual(self.tech.request("DELETE", f"/api/senders/{sid}").status, 204)
        self.assertNotIn("again@readd.example", self.senders())

        r = self.add(self.mkt, "Again@readd.example")
        self.assertEqual(r["rejected"], [])
        self.assertEqual(r["added"][0]["status"], "pending")
        s = self.senders()["again@readd.example"]
        self.assertEqual(s["status"], "pending")
        self.assertIsNone(s["verified_by"])
        self.assertIsNone(s["verified_at"])
        self.assertEqual(s["added_by"], "mkt@acme.test")

    def test_the_list_must_hold_1_to_500_addresses(self):
        before = self.senders()
        too_many = [f"u{i}@toomany.example" for i in range(501)]
        for body in ({"addresses": []}, {"addresses": too_many}, {},
                     {"addresses": "one@toomany.example"}, {"addresses": None},
                     {"address": ["one@toomany.example"]}):
            with self.subTest(body=repr(body)[:60]):
                r = self.admin.request("POST", "/api/senders", body)
                self.assertEqual(r.status, 400, r.raw)
                self.assertEqual(r.code, "invalid_request")
                self.assertEqual(r.json["error"]["field"], "addresses")
        r = self.admin.request("POST", "/api/senders")  # no body at all
        self.assertEqual(r.status, 400, r.raw)
        self.assertEqual(r.json["error"]["field"], "addresses")
        self.assertEqual(self.senders(), before)

        # Exactly 500 is accepted in one call (in an account of its own).
        bulk = self.gw.logged_in("admin@bulk.test")
        r = bulk.request("POST", "/api/senders",
                         {"addresses": [f"u{i}@bulk.example" for i in range(500)]})
        self.assertEqual(r.status, 201, r.raw[:300])
        self.assertEqual(len(r.json["added"]), 500)
        self.assertEqual(r.json["rejected"], [])
        self.assertEqual(len(self.senders(bulk)), 500)

    def test_each_call_that_adds_stores_one_verification_batch(self):
        def batches():
            tokens = {i: h for i, h in self.gw.sql(
                "SELECT id, token_hash FROM verification_tokens")}
            links = {}
            for t, s in self.gw.sql("SELECT token_id, sender_id FROM verification_token_senders"):
                links.setdefault(t, set()).add(s)
            return tokens, links

        tokens0, _ = batches()
        self.gw.advance_clock(61)  # clear of the other tests' emails
        r = self.add(self.tech, "b1@batch.example", "b2@batch.example", "b3@batch.example")
        first_ids = {a["id"] for a in r["added"]}
        tokens1, links1 = batches()
        new = set(tokens1) - set(tokens0)
        self.assertEqual(len(new), 1)
        (t1,) = new
        self.assertRegex(tokens1[t1], r"^[0-9a-f]{64}$")
        self.assertEqual(links1[t1], first_ids)

        # One new address among a repeat and an invalid one: a batch of just that one
        # (a minute later: one verification email per account per minute).
        self.gw.advance_clock(61)
        r = self.add(self.tech, "b1@batch.example", "b4@batch.example", "nope")
        self.assertEqual(len(r["added"]), 1)
        tokens2, links2 = batches()
        new = set(tokens2) - set(tokens1)
        self.assertEqual(len(new), 1)
        (t2,) = new
        self.assertEqual(links2[t2], {r["added"][0]["id"]})
        self.assertNotEqual(tokens2[t2], tokens1[t1])
        self.assertEqual(links2[t1], first_ids)

        # A call that adds nothing stores no batch.
        r = self.add(self.tech, "b2@batch.example", "B3@batch.example", "still nope")
        self.assertEqual(r["added"], [])
        tokens3, links3 = batches()
        self.assertEqual(tokens3, tokens2)
        self.assertEqual(links3, links2)

    def test_an_admin_verifies_a_sender(self):
        sid = self.add_one(self.mkt, "verify.me@verify.example")
        r = self.admin.request("POST", f"/api/senders/{sid}/verify")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["id"], sid)
        self.assertEqual(r.json["address"], "verify.me@verify.example")
        self.assertEqual(r.json["status"], "verified")
        self.assertEqual(r.json["verified_by"], "admin@acme.test")
        self.assertRegex(r.json["verified_at"], ISO)
        self.assertEqual(r.json["added_by"], "mkt@acme.test")
        self.assertEqual(self.senders(self.mkt)["verify.me@verify.example"], r.json)

    def test_removing_a_sender_takes_it_off_the_list(self):
        sid = self.add_one(self.admin, "gone@remove.example")
        keep = self.add_one(self.admin, "kept@remove.example")
        r = self.tech.request("DELETE", f"/api/senders/{sid}")
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(r.raw, b"")
        listed = self.senders()
        self.assertNotIn("gone@remove.example", listed)
        self.assertEqual(listed["kept@remove.example"]["id"], keep)
        r = self.tech.request("DELETE", f"/api/senders/{sid}")
        self.assertEqual(r.status, 404, r.raw)
        self.assertEqual(r.code, "not_found")
        r = self.admin.request("POST", f"/api/senders/{sid}/verify")
        self.assertEqual(r.status, 404, r.raw)

    def test_the_domain_shown_follows_the_cli_at_the_next_read(self):
        self.add(self.admin, "a@dom.example", "b@Sub.Dom.example", "c@other.example",
                 "y@bücher.example")
        listed = self.senders()
        self.assertIsNone(listed["a@dom.example"]["domain"])

        self.domain("add", "--account", "acme", "dom.example")
        self.assertEqual(self.senders()["a@dom.example"]["domain"],
                         {"name": "dom.example", "status": "pending", "active": True})
        self.domain("set", "--account", "acme", "dom.example", "--verified")
        self.assertEqual(self.senders(self.mkt)["a@dom.example"]["domain"],
                         {"name": "dom.example", "status": "verified", "active": True})
        self.domain("set", "--account", "acme", "dom.example", "--inactive")
        self.assertEqual(self.senders()["a@dom.example"]["domain"],
                         {"name": "dom.example", "status": "verified", "active": False})
        self.domain("set", "--account", "acme", "dom.example", "--active")
        self.domain("set", "--account", "acme", "dom.example", "--pending")
        self.assertEqual(self.senders()["a@dom.example"]["domain"],
                         {"name": "dom.example", "status": "pending", "active": True})
        # A subdomain is its own domain: not approved just because its parent is.
        self.assertIsNone(self.senders()["b@sub.dom.example"]["domain"])

        # Added with flags; an IDN domain is matched in its A-label form.
        self.domain("add", "--account", "acme", "Bücher.example", "--verified", "--inactive")
        self.assertEqual(self.senders()["y@xn--bcher-kva.example"]["domain"],
                         {"name": "xn--bcher-kva.example", "status": "verified",
                          "active": False})

        # Another account's approved domain is not this account's.
        self.domain("add", "--account", "globex", "other.example", "--verified")
        self.assertIsNone(self.senders()["c@other.example"]["domain"])
        self.add(self.globex, "c@other.example")
        self.assertEqual(self.senders(self.globex)["c@other.example"]["domain"],
                         {"name": "other.example", "status": "verified", "active": True})

    def test_another_accounts_sender_ids_answer_exactly_like_missing_ids(self):
        gid = self.add_one(self.globex, "theirs@globex.example")
        missing = 10 ** 9
        for method, template in (("POST", "/api/senders/{}/verify"),
                                 ("DELETE", "/api/senders/{}")):
            absent = self.admin.request(method, template.format(missing))
            self.assertEqual(absent.status, 404, absent.raw)
            self.assertEqual(absent.code, "not_found")
            with self.subTest(method=method, id="other account"):
                r = self.admin.request(method, template.format(gid))
                self.assertEqual(r.status, 404, r.raw)
                self.assertEqual(r.raw, absent.raw)
            for bad in ("abc", "0", "-1", "1x", "1.0", "0x10", "99999999999999999999999"):
                with self.subTest(method=method, id=bad):
                    r = self.admin.request(method, template.format(bad))
                    self.assertEqual(r.status, 404, r.raw)
                    self.assertEqual(r.code, "not_found")
        theirs = self.senders(self.globex)["theirs@globex.example"]
        self.assertEqual(theirs["status"], "pending")
        self.assertIsNone(theirs["verified_by"])
        self.assertNotIn("theirs@globex.example", self.senders())

    def test_sender_changes_are_audited_with_actor_role_and_ip(self):
        since = last_audit_id(self.admin)
        sid = self.add_one(self.tech, "Audit.Me@audit.example")
        self.assertEqual(self.admin.request("POST", f"/api/senders/{sid}/verify").status, 200)
        self.assertEqual(self.tech.request("DELETE", f"/api/senders/{sid}").status, 204)
        events = events_since(self.admin, since)
        got = [(e["action"], e["actor"], e["target"]) for e in events
               if e["action"].startswith("sender.")]
        self.assertEqual(got, [  # newest first
            ("sender.removed", "tech@acme.test", "audit.me@audit.example"),
            ("sender.verified", "admin@acme.test", "audit.me@audit.example"),
            ("sender.added", "tech@acme.test", "audit.me@audit.example"),
        ])
        by_action = {e["action"]: e for e in events}
        self.assertIn("role=technical", by_action["sender.added"]["detail"])
        self.assertIn("role=admin", by_action["sender.verified"]["detail"])
        self.assertIn("via=panel", by_action["sender.verified"]["detail"])
        self.assertIn("role=technical", by_action["sender.removed"]["detail"])
        for e in by_action.values():
            self.assertEqual(e["ip"], "127.0.0.1")

    def test_the_sender_endpoints_need_a_session(self):
        anon = self.gw.client()
        for method, path in (("GET", "/api/senders"), ("POST", "/api/senders"),
                             ("POST", "/api/senders/1/verify"), ("DELETE", "/api/senders/1"),
                             ("GET", SETTINGS)):
            with self.subTest(method=method, path=path):
                r = anon.request(method, path, {"addresses": ["anon@anon.example"]}
                                 if method == "POST" else None)
                self.assertEqual(r.status, 401, r.raw)
                self.assertEqual(r.code, "not_authenticated")
        self.assertNotIn("anon@anon.example", self.senders())


# Who may do what, as the issue states it. Columns are the endpoints below, in order.
ENDPOINTS = ("get_settings", "put_settings", "get_senders", "add_senders", "verify_sender",
             "remove_sender", "get_audit", "get_drops", "get_stats")
MATRIX = {
    #             get_set put_set get_snd add  verify remove audit drops stats
    "admin":     (200,    200,    200,    201, 200,   204,   200,  200,  200),
    "technical": (200,    200,    200,    201, 403,   204,   200,  200,  200),
    "analytics": (200,    200,    200,    201, 403,   204,   200,  200,  200),
    "marketing": (200,    403,    200,    201, 403,   403,   200,  200,  200),
}


class SenderPermissionMatrixTest(RolesCase):
    """Every role against every sender and settings endpoint; every denial is audited."""

    serial = 0

    def fresh_sender(self):
        SenderPermissionMatrixTest.serial += 1
        address = f"fresh{self.serial}@matrix.example"
        r = self.admin.request("POST", "/api/senders", {"addresses": [address]})
        self.assertEqual(r.status, 201, r.raw)
        return r.json["added"][0]["id"], address

    def listed(self):
        r = self.admin.request("GET", "/api/senders")
        self.assertEqual(r.status, 200, r.raw)
        return {s["address"]: s for s in r.json["senders"]}

    def enabled(self):
        return self.admin.request("GET", SETTINGS).json["enabled"]

    # Each endpoint: (method, path, body, check) where check(allowed, response) asserts
    # what the caller would see afterwards. Data is fresh for every case.
    def get_settings(self, role):
        return "GET", SETTINGS, None, lambda ok, r: self.assertEqual(
            set(r.json), {"enabled", "mode", "verified", "pending"})

    def put_settings(self, role):
        want = not self.enabled()

        def check(ok, r):
            if ok:
                self.assertEqual(r.json["enabled"], want)
            self.assertEqual(self.enabled(), want if ok else not want)
        return "PUT", SETTINGS, {"enabled": want, "password": PASSWORD}, check

    def get_senders(self, role):
        return "GET", "/api/senders", None, lambda ok, r: self.assertIn("senders", r.json)

    def add_senders(self, role):
        SenderPermissionMatrixTest.serial += 1
        address = f"{role}{self.serial}@matrix.example"

        def check(ok, r):
            self.assertEqual([a["address"] for a in r.json["added"]], [address])
            self.assertEqual(self.listed()[address]["added_by"], ROLE_EMAILS[role])
        return "POST", "/api/senders", {"addresses": [address]}, check

    def verify_sender(self, role):
        sid, address = self.fresh_sender()

        def check(ok, r):
            s = self.listed()[address]
            self.assertEqual(s["status"], "verified" if ok else "pending")
            self.assertEqual(s["verified_by"], ROLE_EMAILS[role] if ok else None)
        return "POST", f"/api/senders/{sid}/verify", None, check

    def remove_sender(self, role):
        sid, address = self.fresh_sender()

        def check(ok, r):
            self.assertEqual(address in self.listed(), not ok)
        return "DELETE", f"/api/senders/{sid}", None, check

    def get_audit(self, role):
        return "GET", "/api/audit?limit=1000", None, lambda ok, r: self.assertIn(
            "events", r.json)

    def get_drops(self, role):
        return "GET", "/api/drops", None, lambda ok, r: self.assertIn("drops", r.json)

    def get_stats(self, role):
        return "GET", "/api/stats", None, lambda ok, r: self.assertIn("accepted", r.json)

    def test_every_role_against_every_sender_and_settings_endpoint(self):
        self.assertEqual(set(MATRIX), {"admin", "technical", "analytics", "marketing"})
        for role, row in MATRIX.items():
            self.assertEqual(len(row), len(ENDPOINTS))
            for endpoint, expected in zip(ENDPOINTS, row):
                with self.subTest(role=role, endpoint=endpoint, expected=expected):
                    self.check_case(role, endpoint, expected)

    def check_case(self, role, endpoint, expected):
        method, path, body, check = getattr(self, endpoint)(role)
        since = last_audit_id(self.admin)
        r = self.clients[role].request(method, path, body)
        self.assertEqual(r.status, expected, r.raw)
        denials = events_since(self.admin, since, "permission.denied")
        if expected == 403:
            self.assertError(r, 403, "forbidden")
            self.assertOneDenial(denials, role, method, path)
            check(False, r)
        else:
            self.assertEqual(denials, [])
            check(True, r)


class VerificationMailRateTest(RolesCase):
    """Every verification email goes to all the Admins, and any role may ask for one: at
    most one per account per minute, counting the one sent when addresses were added."""

    @classmethod
    def more_setup(cls):
        cls.gw.add_account("globex", "admin@globex.test")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.globex = cls.gw.logged_in("admin@globex.test")

    def batches(self, account):
        return self.gw.sql("SELECT COUNT(*) FROM verification_tokens t JOIN accounts a "
                           "ON a.id = t.account_id WHERE a.name = ?", account)[0][0]

    def resend(self, client):
        return client.request("POST", "/api/senders/verification-email")

    def assertRateLimited(self, r):
        self.assertEqual(r.status, 429, r.raw)
        self.assertEqual(r.code, "rate_limited")
        wait = int(r.header("Retry-After"))
        self.assertTrue(0 < wait <= 60, wait)
        self.assertIn(f"{wait} seconds", r.json["error"]["message"])

    def test_one_verification_email_per_account_per_minute(self):
        r = self.mkt.request("POST", "/api/senders", {"addresses": ["a@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        before = self.batches("acme")
        for _ in range(5):
            self.assertRateLimited(self.resend(self.mkt))
        self.assertEqual(self.batches("acme"), before)

        # Another account is not held back by this one.
        self.globex.request("POST", "/api/senders", {"addresses": ["a@globex.test"]})
        self.gw.advance_clock(61)
        self.assertEqual(self.resend(self.globex).status, 200)

        r = self.resend(self.mkt)
        self.assertEqual(r.status, 200, r.raw)
        self.assertIn("a@acme.test", r.json["addresses"])
        self.assertRateLimited(self.resend(self.mkt))
        self.assertEqual(self.batches("acme"), before + 1)

    def test_adding_addresses_does_not_get_past_the_limit(self):
        self.gw.advance_clock(61)
        r = self.mkt.request("POST", "/api/senders", {"addresses": ["first@acme.test"]})
        self.assertEqual(r.json["verification_email"], {"sent": True}, r.raw)
        before = self.batches("acme")
        # New addresses each time: stored, pending, but no more email to the Admins.
        for i in range(5):
            r = self.mkt.request("POST", "/api/senders", {"addresses": [f"n{i}@acme.test"]})
            self.assertEqual(r.status, 201, r.raw)
            self.assertEqual(r.json["added"][0]["status"], "pending")
            mail = r.json["verification_email"]
            self.assertFalse(mail["sent"])
            self.assertTrue(0 < mail["retry_after"] <= 60, mail)
        self.assertEqual(self.batches("acme"), before)
        # Once the minute is over, one email covers every pending address.
        self.gw.advance_clock(61)
        r = self.resend(self.mkt)
        self.assertEqual(r.status, 200, r.raw)
        self.assertTrue({f"n{i}@acme.test" for i in range(5)} <= set(r.json["addresses"]))
        # An add that adds nothing says nothing of email.
        r = self.mkt.request("POST", "/api/senders", {"addresses": ["n0@acme.test"]})
        self.assertNotIn("verification_email", r.json)


if __name__ == "__main__":
    main()
