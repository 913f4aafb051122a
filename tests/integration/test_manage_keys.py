"""Keys with purposes (issue 19) against the real daemon: a key with the manage scope drives
the management API as "Authorization: Bearer KEY" (no cookie, no CSRF token) with its role's
permissions; what stays with people answers 403 interactive_only; audit rows name the key;
a key without manage is 403 forbidden on /api/*, one without mail.send on the send routes
and over SMTP (AUTH and SMTP-IP); a session cookie takes precedence over a Bearer key; a
key sees its own account only; a changed role or scope reaches a key already in use."""
import smtplib
import unittest

from harness import PASSWORD, Gateway, KeyClient, audit_events, main, send_body, wait_until

SMTP_CONFIG = {"smtp": {"auth_without_tls": "yes"}}
MESSAGE = ("From: Acme News <news@acme.test>\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
           "\r\nHi there\r\n")


def smtp_auth(s, password):
    """One AUTH PLAIN exchange with user apikey: its (code, text)."""
    s.user, s.password = "apikey", password
    try:
        return s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code, e.smtp_error


class ManageKeysTest(unittest.TestCase):
    """One gateway (HTTP and SMTP): acme with a user of each role but admin's, globex beside
    it; each account's Admin logged in, and manage keys made by acme's Admin."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config=SMTP_CONFIG).init("acme", "admin@acme.test")
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.add_account("globex", "admin@globex.test")
        for role in ("technical", "marketing"):
            cls.gw.add_user("acme", f"{role}@acme.test", role)
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")
        cls.globex_admin = cls.gw.logged_in("admin@globex.test")
        cls.made = {}
        for role in ("technical", "analytics", "marketing"):
            cls.made[role] = cls.gw.scoped_key(cls.admin, f"ci-{role}", ("manage",), role)
        cls.tech = KeyClient(cls.gw.port, cls.made["technical"]["key"])
        cls.mkt = KeyClient(cls.gw.port, cls.made["marketing"]["key"])
        cls.sender_key = cls.admin.request("POST", "/api/keys", {"name": "sender"}).json["key"]

    def actor(self, role):
        made = self.made[role]
        return f"key:{made['prefix']} ({made['name']})"

    def events_since(self, first_id, client=None):
        return [e for e in audit_events(client or self.admin) if e["id"] > first_id]

    def last_id(self):
        events = audit_events(self.admin)
        return events[0]["id"] if events else 0

    def assertError(self, r, status, code):
        self.assertEqual((r.status, r.code), (status, code), r.raw)
        self.assertTrue(r.json["error"]["message"], r.raw)

    def send(self, key=None):
        r = self.gw.client().request(
            "POST", "/v5/mail/send", send_body("news@acme.test"),
            headers={"Authorization": "Bearer " + (key or self.sender_key)})
        return r

    # -- Automation --------------------------------------------------------------------

    def test_a_technical_key_adds_a_domain_senders_and_a_webhook_and_lists_messages(self):
        first = self.last_id()
        sent = self.send()
        self.assertEqual(sent.status, 200, sent.raw)
        r = self.tech.request("POST", "/api/domains", {"domain": "flow.acme.test"})
        self.assertEqual(r.status, 201, r.raw)
        domain_id = r.json["id"]
        r = self.tech.request("POST", "/api/senders",
                              {"addresses": ["a@flow.acme.test", "b@flow.acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual([a["address"] for a in r.json["added"]],
                         ["a@flow.acme.test", "b@flow.acme.test"])
        r = self.tech.request("GET", "/api/messages")
        self.assertEqual(r.status, 200, r.raw)
        self.assertIn(sent.json["data"]["message_id"], {m["id"] for m in r.json["messages"]})
        r = self.tech.request("POST", "/api/webhooks", {"url": "http://127.0.0.1:9/flow"})
        self.assertEqual(r.status, 201, r.raw)
        webhook_id = r.json["id"]

        # The account's Admin sees all of it; a key added the senders, so no user did.
        domains = self.admin.request("GET", "/api/domains").json["domains"]
        self.assertIn(domain_id, [d["id"] for d in domains])
        senders = {s["address"]: s for s in self.admin.request("GET", "/api/senders").json[
            "senders"]}
        for address in ("a@flow.acme.test", "b@flow.acme.test"):
            self.assertEqual(senders[address]["status"], "pending")
            self.assertIsNone(senders[address]["added_by"])
        hooks = self.admin.request("GET", "/api/webhooks").json["webhooks"]
        self.assertIn(webhook_id, [w["id"] for w in hooks])

        # Every action is audited with the key as its actor.
        events = self.events_since(first)
        mine = [e for e in events if e["actor"] == self.actor("technical")]
        self.assertEqual(sorted(e["action"] for e in mine),
                         ["domain.added", "sender.added", "sender.added", "webhook.add"],
                         events)
        for e in mine:
            self.assertTrue(e["detail"].startswith("role=technical"), e)
            self.assertEqual(e["ip"], "127.0.0.1", e)

    def test_no_csrf_token_is_needed_or_read_with_a_bearer_key(self):
        for i, headers in enumerate(({}, {"X-CSRF-Token": "A" * 43})):
            address = f"gone{i}@csrf.example"
            r = self.tech.request("POST", "/api/suppressions", {"emails": [address]},
                                  headers=headers)
            self.assertEqual((r.status, r.json), (200, {"added": 1}), r.raw)
            listed = self.admin.request("GET", f"/api/suppressions?email={address}")
            self.assertIn(address, listed.raw.decode())

    # -- What stays with people ---------------------------------------------------------

    def test_switching_verifying_and_a_person_s_own_routes_are_interactive_only(self):
        r = self.admin.request("POST", "/api/senders", {"addresses": ["p@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        sender_id = r.json["added"][0]["id"]
        first = self.last_id()
        calls = (("PUT", "/api/settings/sender-auth", {"enabled": True, "password": PASSWORD}),
                 ("PUT", "/api/settings/sender-auth", {"enabled": False, "password": PASSWORD}),
                 ("POST", f"/api/senders/{sender_id}/verify", None),
                 ("PUT", "/api/users/me/password", {"current_password": PASSWORD,
                                                    "new_password": "another horse battery"}),
                 ("GET", "/api/session", None),
                 ("DELETE", "/api/session", None))
        for role in ("technical", "analytics", "marketing"):
            key = KeyClient(self.gw.port, self.made[role]["key"])
            for method, path, body in calls:
                with self.subTest(role=role, method=method, path=path):
                    self.assertError(key.request(method, path, body), 403, "interactive_only")
        # Nothing changed.
        self.assertFalse(self.admin.request("GET", "/api/settings/sender-auth").json["enabled"])
        senders = self.admin.request("GET", "/api/senders").json["senders"]
        self.assertEqual(next(s for s in senders if s["id"] == sender_id)["status"], "pending")
        denials = [e for e in self.events_since(first) if e["action"] == "permission.denied"]
        self.assertEqual(len(denials), 3 * len(calls), denials)
        self.assertEqual({e["actor"] for e in denials},
                         {self.actor(r) for r in ("technical", "analytics", "marketing")})
        self.assertTrue(all("people only" in e["detail"] for e in denials), denials)

    # -- Refusals ------------------------------------------------------------------------

    def test_a_role_without_the_permission_is_forbidden_and_audited(self):
        first = self.last_id()
        r = self.mkt.request("POST", "/api/domains", {"domain": "mkt.acme.test"})
        self.assertError(r, 403, "forbidden")
        self.assertNotIn(b"mkt.acme.test", self.admin.request("GET", "/api/domains").raw)
        denials = [e for e in self.events_since(first) if e["action"] == "permission.denied"]
        self.assertEqual(len(denials), 1, denials)
        self.assertEqual(denials[0]["actor"], self.actor("marketing"))
        self.assertEqual(denials[0]["target"], "/api/domains")
        self.assertIn("role=marketing", denials[0]["detail"])
        self.assertIn("domain.manage", denials[0]["detail"])
        # What the role may do, it does.
        r = self.mkt.request("POST", "/api/senders", {"addresses": ["mkt@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)

    def test_a_send_only_key_is_forbidden_on_the_management_api(self):
        key = KeyClient(self.gw.port, self.sender_key)
        for method, path, body in (("GET", "/api/senders", None),
                                   ("POST", "/api/senders", {"addresses": ["so@acme.test"]}),
                                   ("PUT", "/api/settings/sender-auth",
                                    {"enabled": True, "password": PASSWORD})):
            with self.subTest(method=method, path=path):
                r = key.request(method, path, body)
                self.assertError(r, 403, "forbidden")
                self.assertIn("manage scope", r.json["error"]["message"])
        self.assertNotIn(b"so@acme.test", self.admin.request("GET", "/api/senders").raw)
        # A manage key without a role (the API refuses to make one; a row edited by hand)
        # may do nothing.
        made = self.gw.scoped_key(self.admin, "no-role", ("manage",), "marketing")
        self.gw.sql("UPDATE api_keys SET role = NULL WHERE id = ?", made["id"])
        self.assertError(KeyClient(self.gw.port, made["key"]).request("GET", "/api/senders"),
                         403, "forbidden")

    def test_a_manage_only_key_may_not_send_over_http(self):
        before = self.admin.request("GET", "/api/stats").json
        key = self.made["technical"]["key"]
        r = self.send(key)
        self.assertEqual((r.status, r.json["status"], r.code), (403, "error", "forbidden"), r.raw)
        self.assertIn("mail.send", r.json["error"][0]["message"])
        r = self.gw.client().request("POST", "/v3/mail/send", send_body("news@acme.test"),
                                     headers={"Authorization": "Bearer " + key})
        self.assertEqual((r.status, r.code), (403, "forbidden"), r.raw)
        self.assertIsNone(r.json["errors"][0]["help"])
        self.assertEqual(self.admin.request("GET", "/api/stats").json, before)
        # With both scopes, the key sends and manages.
        both = self.gw.scoped_key(self.admin, "both", ("mail.send", "manage"), "analytics")
        self.assertEqual(self.send(both["key"]).status, 200)
        r = KeyClient(self.gw.port, both["key"]).request("GET", "/api/senders")
        self.assertEqual(r.status, 200, r.raw)

    def connect(self, source=None):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30,
                         source_address=(source, 0) if source else None)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        return s

    def test_smtp_refuses_a_key_without_mail_send_at_auth_and_by_network(self):
        code, text = smtp_auth(self.connect(), self.made["technical"]["key"])
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith(b"5.7.1 forbidden: "), text)
        self.assertIn(b"mail.send", text)
        # SMTP-IP: the key whose network holds the client, but it may not send.
        made = self.gw.scoped_key(self.admin, "ip-manage", ("manage",), "technical",
                                  smtp_ips=["127.0.0.2"])
        self.assertEqual(made["smtp_ips"], ["127.0.0.2/32"])
        s = self.connect("127.0.0.2")
        code, text = s.mail("news@acme.test")
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith(b"5.7.1 forbidden: "), text)
        # A key with mail.send still sends.
        s = self.connect()
        self.assertEqual(smtp_auth(s, self.sender_key)[0], 235)
        self.assertEqual(s.sendmail("news@acme.test", ["bob@example.com"], MESSAGE), {})

    # -- Precedence, scoping, changes ------------------------------------------------------

    def test_a_session_cookie_takes_precedence_over_a_bearer_key(self):
        bearer = {"Authorization": "Bearer " + self.made["technical"]["key"]}
        mkt_user = self.gw.logged_in("marketing@acme.test")
        first = self.last_id()
        r = mkt_user.request("POST", "/api/domains", {"domain": "cookie.acme.test"},
                             headers=bearer)
        self.assertError(r, 403, "forbidden")  # judged as the marketing user
        r = mkt_user.request("POST", "/api/domains", {"domain": "cookie.acme.test"},
                             headers=bearer, csrf=False)
        self.assertError(r, 403, "csrf_failed")  # a cookie request needs its token
        denials = [e for e in self.events_since(first) if e["action"] == "permission.denied"]
        self.assertEqual([e["actor"] for e in denials], ["marketing@acme.test"])
        # A technical user with a marketing key: the user's role decides.
        tech_user = self.gw.logged_in("technical@acme.test")
        r = tech_user.request("POST", "/api/domains", {"domain": "cookie.acme.test"},
                              headers={"Authorization": "Bearer " + self.made["marketing"]["key"]})
        self.assertEqual(r.status, 201, r.raw)
        # A dead cookie is not rescued by the key.
        self.assertEqual(tech_user.request("DELETE", "/api/session").status, 204)
        r = tech_user.request("GET", "/api/senders", headers=bearer)
        self.assertError(r, 401, "not_authenticated")

    def test_a_key_sees_and_changes_its_own_account_only(self):
        r = self.admin.request("POST", "/api/senders", {"addresses": ["own@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        acme_sender = r.json["added"][0]["id"]
        acme_message = self.send().json["data"]["message_id"]
        made = self.gw.scoped_key(self.globex_admin, "globex-ci", ("manage",), "technical")
        globex = KeyClient(self.gw.port, made["key"])
        for path in ("/api/senders", "/api/messages", "/api/audit", "/api/keys"):
            r = globex.request("GET", path)
            self.assertEqual(r.status, 200, r.raw)
            self.assertNotIn(b"acme.test", r.raw, path)
        self.assertError(globex.request("GET", f"/api/messages/{acme_message}"), 404,
                         "not_found")
        self.assertError(globex.request("DELETE", f"/api/senders/{acme_sender}"), 404,
                         "not_found")
        self.assertIn(b"own@acme.test", self.admin.request("GET", "/api/senders").raw)
        r = globex.request("POST", "/api/senders", {"addresses": ["ci@globex.test"]})
        self.assertEqual(r.status, 201, r.raw)
        self.assertIn(b"ci@globex.test", self.globex_admin.request("GET", "/api/senders").raw)
        self.assertNotIn(b"ci@globex.test", self.admin.request("GET", "/api/senders").raw)

    def test_a_changed_role_or_scope_reaches_a_key_in_use(self):
        made = self.gw.scoped_key(self.admin, "promoted", ("manage",), "marketing")
        key = KeyClient(self.gw.port, made["key"])
        self.assertError(key.request("GET", "/api/keys"), 403, "forbidden")
        self.gw.sql("UPDATE api_keys SET role = 'technical' WHERE id = ?", made["id"])
        self.assertTrue(wait_until(lambda: key.request("GET", "/api/keys").status == 200,
                                   timeout=10, interval=0.1), "the new role was not seen")
        self.gw.sql("UPDATE api_keys SET scopes = 'mail.send' WHERE id = ?", made["id"])
        self.assertTrue(wait_until(lambda: key.request("GET", "/api/keys").status == 403,
                                   timeout=10, interval=0.1), "the new scope was not seen")
        self.assertError(key.request("GET", "/api/keys"), 403, "forbidden")


class NoBroaderThanItsMakerTest(unittest.TestCase):
    """A manage key limited to some senders and networks cannot mint, or turn itself
    into, a key without those limits: what it makes reaches no further than itself."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")
        cls.made = cls.gw.scoped_key(cls.admin, "ci", ("manage", "mail.send"), "technical",
                                     senders=["a@acme.test"], domains=["mail.acme.test"],
                                     allowed_ips=["127.0.0.0/8"])
        cls.key = KeyClient(cls.gw.port, cls.made["key"])

    def create(self, **body):
        return self.key.request("POST", "/api/keys", dict(body, name="made"))

    def assertRefused(self, r, field):
        self.assertEqual((r.status, r.code), (403, "forbidden"), r.raw)
        self.assertEqual(r.json["error"]["field"], field)

    def test_what_it_makes_stays_inside_its_limits(self):
        inside = {"senders": ["a@acme.test", "x@mail.acme.test"], "domains": ["mail.acme.test"],
                  "allowed_ips": ["127.0.0.1"]}
        count = lambda: len(self.admin.request("GET", "/api/keys").json["keys"])
        before = count()
        self.assertRefused(self.create(), "senders")
        self.assertRefused(self.create(**dict(inside, senders=["b@acme.test"])), "senders")
        self.assertRefused(self.create(**dict(inside, domains=["acme.test"])), "domains")
        self.assertRefused(self.create(**dict(inside, allowed_ips=[])), "allowed_ips")
        self.assertRefused(self.create(**dict(inside, allowed_ips=["10.0.0.0/8"])),
                           "allowed_ips")
        self.assertRefused(self.create(**dict(inside, allowed_ips=["0.0.0.0/0"])),
                           "allowed_ips")
        r = self.create(**inside)
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(r.json["senders"], inside["senders"])
        # Nothing refused was stored.
        self.assertEqual(count(), before + 1)

    def test_it_cannot_widen_itself(self):
        r = self.key.request("PATCH", f"/api/keys/{self.made['id']}",
                             {"senders": [], "domains": []})
        self.assertRefused(r, "senders")
        r = self.key.request("PATCH", f"/api/keys/{self.made['id']}", {"allowed_ips": []})
        self.assertRefused(r, "allowed_ips")
        keys = {k["id"]: k for k in self.admin.request("GET", "/api/keys").json["keys"]}
        self.assertEqual(keys[self.made["id"]]["senders"], ["a@acme.test"])
        self.assertEqual(keys[self.made["id"]]["allowed_ips"], ["127.0.0.0/8"])
        # Narrowing itself is fine.
        r = self.key.request("PATCH", f"/api/keys/{self.made['id']}",
                             {"allowed_ips": ["127.0.0.0/9"]})
        self.assertEqual(r.status, 200, r.raw)

    def test_scopes_and_roles_it_does_not_have(self):
        inside = {"senders": ["a@acme.test"], "allowed_ips": ["127.0.0.1"]}
        # Technical holds every permission a key may be given: marketing is inside it.
        for role in ("technical", "marketing"):
            r = self.create(**dict(inside, scopes=["manage"], role=role))
            self.assertEqual(r.status, 201, r.raw)
        send_only = self.gw.scoped_key(self.admin, "send-only-maker", ("manage",),
                                       "technical")
        r = KeyClient(self.gw.port, send_only["key"]).request(
            "POST", "/api/keys", {"name": "more", "scopes": ["mail.send"]})
        self.assertRefused(r, "scopes")


if __name__ == "__main__":
    main()
