"""Owner confirmation of senders (issue 19) over real HTTP: the account's mode (GET/PUT
/api/settings/sender-confirmation: Admin only, the acting user's password, audited), the
owner's link mailed to the sender address itself (read from the outbox), its pages (GET
shows, POST confirms, single use, 48 h), the halves of modes owner and both in either order,
sends refused while pending and accepted after, sending the link again (rate-limited per
address), mode changes, and account scoping."""
import email
import email.policy
import glob
import os
import re

from harness import (PASSWORD, ROLE_EMAILS, RolesCase, audit_events, last_audit_id, main,
                     send_body, wait_until)

SETTING = "/api/settings/sender-confirmation"
# The links start with the gateway's public_url, whatever it is.
LINK = re.compile(r"https?://[^\s/\"]+(/confirm/[A-Za-z0-9_-]{43})")
VERIFY_LINK = re.compile(r"https?://[^\s/\"]+(/verify/[A-Za-z0-9_-]{43})")


class Base(RolesCase):
    """acme with a user of each role, a second Admin, a verified domain, an API key and the
    protection on; globex beside it."""

    @classmethod
    def more_setup(cls):
        cls.gw.add_user("acme", "boss@acme.test", "admin")  # the wrong-password test's
        cls.gw.add_account("globex", "admin@globex.test")
        cls.gw.add_domain("acme", "acme.test", "--verified")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.gw.create_key("acme")
        cls.serial = 0
        r = cls.admin.request("PUT", "/api/settings/sender-auth",
                              {"enabled": True, "password": PASSWORD})
        assert r.status == 200, r.raw

    # -- helpers ---------------------------------------------------------------------------

    def address(self, name):
        type(self).serial += 1
        return f"{name}{self.serial}@acme.test"

    def set_mode(self, mode, client=None, password=PASSWORD):
        return (client or self.admin).request("PUT", SETTING,
                                              {"mode": mode, "password": password})

    def use_mode(self, mode):
        r = self.set_mode(mode)
        self.assertEqual((r.status, r.json), (200, {"mode": mode}), r.raw)

    def add(self, address, client=None):
        self.gw.advance_clock(61)  # the Admins' email goes at most once a minute
        r = (client or self.tech).request("POST", "/api/senders", {"addresses": [address]})
        self.assertEqual(r.status, 201, r.raw)
        mode = self.admin.request("GET", SETTING).json["mode"]
        # The answer says which emails went: the Admins' unless owners alone confirm, and
        # the owner's link unless Admins alone verify.
        self.assertEqual("verification_email" in r.json, mode != "owner", r.raw)
        self.assertEqual(r.json.get("confirmation_email"),
                         None if mode == "admin" else {"sent": True}, r.raw)
        return r.json["added"][0]["id"]

    def sender(self, address):
        senders = self.admin.request("GET", "/api/senders").json["senders"]
        return next(s for s in senders if s["address"] == address)

    def mails(self):
        out = []
        for name in glob.glob(os.path.join(glob.escape(self.gw.tmp), "outbox", "*")):
            with open(name, "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def owner_mails(self, address, count=1):
        """The owner confirmation emails to address, waiting (bounded) for count of them."""
        def find():
            found = [m for m in self.mails() if str(m["To"]) == address
                     and str(m["Subject"]).startswith("Confirm ")]
            return found if len(found) >= count else None
        found = wait_until(find, timeout=20, interval=0.05)
        self.assertTrue(found, f"no confirmation email to {address}")
        return found

    def link_of(self, mail):
        text = mail.get_body(("plain",)).get_content()
        path = LINK.search(text).group(1)
        self.assertIn(path, mail.get_body(("html",)).get_content())
        return path

    def owner_link(self, address):
        return self.link_of(self.owner_mails(address)[-1])

    def admin_mail_for(self, address):
        return [m for m in self.mails() if str(m["Subject"]).startswith("Verify sender")
                and address in m.get_body(("plain",)).get_content()]

    def page(self, method, path):
        r = self.gw.client().request(method, path, raw="" if method == "POST" else None,
                                     headers={"Content-Type":
                                              "application/x-www-form-urlencoded"})
        return r.status, r.raw.decode()

    def send(self, sender):
        return self.gw.client().request("POST", "/v5/mail/send", send_body(sender),
                                        headers={"Authorization": "Bearer " + self.key})

    def events(self, type_):
        r = self.admin.request("GET", f"/api/events?limit=1000&type={type_}")
        self.assertEqual(r.status, 200, r.raw)
        return r.json["events"]

    def verified_event(self, address):
        return [e["data"]["via"] for e in self.events("sender.verified")
                if e["data"]["email"] == address]



class OwnerConfirmTest(Base):
    # -- the setting -------------------------------------------------------------------------

    def test_a_the_mode_is_admin_by_default_and_every_role_reads_it(self):
        for client in self.clients.values():
            r = client.request("GET", SETTING)
            self.assertEqual((r.status, r.json), (200, {"mode": "admin"}), r.raw)

    def test_only_admins_change_the_mode_with_their_password(self):
        self.use_mode("admin")
        since = last_audit_id(self.admin)
        for client in (self.tech, self.ana, self.mkt):
            self.assertError(self.set_mode("owner", client), 403, "forbidden")
        boss = self.gw.logged_in("boss@acme.test")
        self.assertError(self.set_mode("owner", boss, "not my password"), 403,
                         "password_incorrect")
        r = boss.request("PUT", SETTING, {"mode": "owner"})
        self.assertError(r, 400, "invalid_request", "password")
        self.assertError(self.set_mode("everyone", boss), 400, "invalid_request", "mode")
        r = boss.request("PUT", SETTING, {"mode": "owner", "password": PASSWORD, "x": 1})
        self.assertError(r, 400, "invalid_request", "x")
        self.assertEqual(self.admin.request("GET", SETTING).json, {"mode": "admin"})
        rows = [e for e in audit_events(self.admin) if e["id"] > since]
        denied = [e for e in rows if e["action"] == "sender_confirmation.change_denied"]
        self.assertEqual(len(denied), 1, rows)
        self.assertEqual((denied[0]["actor"], denied[0]["detail"]),
                         ("boss@acme.test", "role=admin wanted=owner"))

        self.assertEqual(self.set_mode("both", boss).json, {"mode": "both"})
        self.assertEqual(self.mkt.request("GET", SETTING).json, {"mode": "both"})
        changed = [e for e in audit_events(self.admin) if e["id"] > since
                   and e["action"] == "sender_confirmation.changed"]
        self.assertEqual(changed[0]["actor"], "boss@acme.test")
        self.assertIn("mode=both", changed[0]["detail"])
        self.use_mode("admin")

    # -- admin mode: today's behaviour --------------------------------------------------------

    def test_admin_mode_mails_no_owner_and_verifies_at_once(self):
        self.use_mode("admin")
        a = self.address("plain")
        sid = self.add(a)
        s = self.sender(a)
        self.assertEqual((s["status"], s["waiting_for"], s["admin_verified_at"],
                          s["owner_confirmed_at"]), ("pending", ["admin"], None, None))
        r = self.tech.request("POST", f"/api/senders/{sid}/confirmation-email")
        self.assertError(r, 409, "not_awaiting_owner")
        r = self.admin.request("POST", f"/api/senders/{sid}/verify")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual((r.json["status"], r.json["waiting_for"]), ("verified", []))
        self.assertEqual(r.json["admin_verified_at"], r.json["verified_at"])
        self.assertIsNone(r.json["owner_confirmed_at"])
        self.assertTrue(wait_until(lambda: self.admin_mail_for(a), timeout=20))
        self.assertEqual([m for m in self.mails() if str(m["To"]) == a], [])

    # -- owner mode ---------------------------------------------------------------------------

    def test_owner_mode_the_owner_alone_confirms_through_the_mailed_link(self):
        self.use_mode("owner")
        a = self.address("owner")
        sid = self.add(a)
        mail = self.owner_mails(a)[0]
        self.assertEqual(mail["From"].addresses[0].addr_spec, "postern@localhost.localdomain")
        self.assertIn("acme", str(mail["Subject"]))
        link = self.link_of(mail)
        s = self.sender(a)
        self.assertEqual((s["status"], s["waiting_for"]), ("pending", ["owner"]))
        self.assertEqual(self.send(a).code, "sender_pending_verification")
        # The Admins have nothing to verify: no Verify All email, and verifying is refused.
        self.assertError(self.admin.request("POST", f"/api/senders/{sid}/verify"), 409,
                         "owner_confirmation_required")
        self.gw.advance_clock(61)
        self.assertError(self.tech.request("POST", "/api/senders/verification-email"), 409,
                         "owner_confirmation_required")
        self.assertEqual(self.admin_mail_for(a), [])

        status, html = self.page("GET", link)
        self.assertEqual(status, 200, html)
        self.assertIn(a, html)
        self.assertIn("<strong>acme</strong>", html)
        self.assertIn("<form method=\"post\">", html)
        self.assertNotIn("<script", html)
        self.assertEqual(self.sender(a)["status"], "pending", "opening the link changes nothing")

        since = last_audit_id(self.admin)
        status, html = self.page("POST", link)
        self.assertEqual(status, 200, html)
        self.assertIn("may now send mail from it", html)
        s = self.sender(a)
        self.assertEqual((s["status"], s["waiting_for"], s["verified_via"]),
                         ("verified", [], "link"))
        self.assertIsNotNone(s["owner_confirmed_at"])
        self.assertIsNone(s["admin_verified_at"])
        self.assertEqual(self.verified_event(a), ["owner"])
        # The request's log line comes just after its answer: wait for it, then look.
        self.assertIn("POST /confirm/{token} 200", self.gw.log_lines("POST /confirm/")[-1])
        self.assertNotIn(link.rsplit("/", 1)[1], self.gw.read_log(), "the token is never logged")
        rows = {e["action"]: e for e in audit_events(self.admin) if e["id"] > since}
        self.assertEqual(rows["sender.confirmed"]["actor"], a)
        self.assertEqual(rows["sender.verified"]["detail"], "via=owner")
        self.assertEqual(self.send(a).status, 200)

        for method in ("GET", "POST"):
            status, html = self.page(method, link)
            self.assertEqual(status, 410)
            self.assertIn("token_used", html)
        self.assertEqual(self.page("GET", "/confirm/" + "x" * 43)[0], 404)
        self.assertEqual(self.page("POST", "/confirm/short")[0], 404)

    # -- both modes' halves, in either order ------------------------------------------------

    def test_both_admin_first_then_owner(self):
        self.use_mode("both")
        a = self.address("both-a")
        sid = self.add(a)
        link = self.owner_link(a)
        self.assertTrue(wait_until(lambda: self.admin_mail_for(a), timeout=20))
        self.assertEqual(self.sender(a)["waiting_for"], ["admin", "owner"])

        since = last_audit_id(self.admin)
        r = self.admin.request("POST", f"/api/senders/{sid}/verify")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual((r.json["status"], r.json["waiting_for"]), ("pending", ["owner"]))
        self.assertIsNotNone(r.json["admin_verified_at"])
        half = [e for e in audit_events(self.admin) if e["id"] > since]
        self.assertEqual([(e["action"], e["detail"]) for e in half],
                         [("sender.admin_verified", "role=admin via=panel waiting=owner")])
        self.assertEqual(self.send(a).code, "sender_pending_verification")
        self.assertEqual(self.verified_event(a), [])

        status, html = self.page("POST", link)
        self.assertEqual(status, 200, html)
        self.assertIn("may now send mail from it", html)
        s = self.sender(a)
        self.assertEqual((s["status"], s["waiting_for"]), ("verified", []))
        self.assertTrue(s["admin_verified_at"] and s["owner_confirmed_at"])
        self.assertEqual(self.verified_event(a), ["owner"])
        self.assertEqual(self.send(a).status, 200)

    def test_both_owner_first_then_admin_by_the_verify_all_link(self):
        self.use_mode("both")
        a = self.address("both-o")
        self.add(a)
        status, html = self.page("POST", self.owner_link(a))
        self.assertEqual(status, 200, html)
        self.assertIn("An Admin of the account still has to verify it", html)
        s = self.sender(a)
        self.assertEqual((s["status"], s["waiting_for"]), ("pending", ["admin"]))
        self.assertEqual(self.send(a).code, "sender_pending_verification")
        confirmed = [e for e in audit_events(self.admin) if e["action"] == "sender.confirmed"
                     and e["target"] == a]
        self.assertEqual(confirmed[0]["detail"], "via=owner waiting=admin")

        mails = wait_until(lambda: self.admin_mail_for(a), timeout=20)
        text = mails[0].get_body(("plain",)).get_content()
        status, html = self.page("POST", VERIFY_LINK.search(text).group(1))
        self.assertEqual(status, 200, html)
        self.assertIn("1 verified now", html)
        s = self.sender(a)
        self.assertEqual((s["status"], s["verified_via"]), ("verified", "link"))
        self.assertEqual(self.verified_event(a), ["link"])
        self.assertEqual(self.send(a).status, 200)

    def test_both_a_verify_all_link_records_the_admin_half_only(self):
        self.use_mode("both")
        a = self.address("half")
        self.add(a)
        mails = wait_until(lambda: self.admin_mail_for(a), timeout=20)
        link = VERIFY_LINK.search(mails[0].get_body(("plain",)).get_content()).group(1)
        status, html = self.page("POST", link)
        self.assertEqual(status, 200, html)
        self.assertIn("approved now and waiting for their owners", html)
        s = self.sender(a)
        self.assertEqual((s["status"], s["waiting_for"]), ("pending", ["owner"]))
        self.assertEqual(self.page("POST", self.owner_link(a))[0], 200)
        self.assertEqual(self.sender(a)["status"], "verified")

    # -- changing the mode -------------------------------------------------------------------

    def test_changing_the_mode_verifies_senders_it_asks_nothing_more_of(self):
        self.use_mode("both")
        owned, approved, neither = (self.address(n) for n in ("m-own", "m-adm", "m-none"))
        for a in (owned, approved, neither):
            self.add(a)
        self.assertEqual(self.page("POST", self.owner_link(owned))[0], 200)
        self.assertEqual(self.admin.request(
            "POST", f"/api/senders/{self.sender(approved)['id']}/verify").status, 200)

        since = last_audit_id(self.admin)
        self.use_mode("owner")
        self.assertEqual(self.sender(owned)["status"], "verified")
        self.assertEqual(self.verified_event(owned), ["mode"])
        self.assertEqual((self.sender(approved)["status"], self.sender(approved)["waiting_for"]),
                         ("pending", ["owner"]))
        by_mode = [e["target"] for e in audit_events(self.admin) if e["id"] > since
                   and e["action"] == "sender.verified" and e["detail"].endswith("via=mode")
                   and e["target"] in (owned, approved, neither)]
        self.assertEqual(by_mode, [owned])

        self.use_mode("admin")
        self.assertEqual(self.sender(approved)["status"], "verified")
        self.assertEqual((self.sender(neither)["status"], self.sender(neither)["waiting_for"]),
                         ("pending", ["admin"]))
        # A verified sender stays verified whatever the mode becomes.
        self.use_mode("both")
        self.assertEqual(self.sender(owned)["status"], "verified")

    # -- scoping -----------------------------------------------------------------------------

    def test_another_accounts_sender_and_mode_are_out_of_reach(self):
        self.use_mode("owner")
        a = self.address("scoped")
        sid = self.add(a)
        globex = self.gw.logged_in("admin@globex.test")
        self.assertEqual(globex.request("GET", SETTING).json, {"mode": "admin"})
        r = globex.request("POST", f"/api/senders/{sid}/confirmation-email")
        self.assertError(r, 404, "not_found")
        self.assertError(globex.request("POST", f"/api/senders/{sid}/verify"), 404, "not_found")
        self.assertEqual(self.set_mode("both", globex).json, {"mode": "both"})
        self.assertEqual(self.admin.request("GET", SETTING).json, {"mode": "owner"})
        self.assertEqual(len(self.owner_mails(a)), 1)
        self.assertEqual(self.sender(a)["status"], "pending")


class OwnerLinkExpiryTest(Base):
    """On a gateway of its own: it moves the clock two days on."""

    def relogin(self):
        for role, address in ROLE_EMAILS.items():
            self.clients[role] = self.gw.logged_in(address)
        type(self).admin, type(self).mkt = self.clients["admin"], self.clients["marketing"]
        type(self).tech = self.clients["technical"]

    def test_owner_link_expires_after_48_hours_and_can_be_sent_again(self):
        self.use_mode("owner")
        a = self.address("late")
        sid = self.add(a)
        link = self.owner_link(a)
        self.gw.advance_clock(48 * 3600 - 120)
        self.assertEqual(self.page("GET", link)[0], 200)
        self.gw.advance_clock(121)
        self.relogin()  # the sessions ended long ago
        for method in ("GET", "POST"):
            status, html = self.page(method, link)
            self.assertEqual(status, 410)
            self.assertIn("token_expired", html)
        self.assertEqual(self.sender(a)["status"], "pending")

        first_sent = self.sender(a)["confirmation_sent_at"]
        self.assertTrue(first_sent)
        since = last_audit_id(self.admin)
        r = self.mkt.request("POST", f"/api/senders/{sid}/confirmation-email")
        self.assertEqual(r.status, 200, r.raw)
        self.assertGreater(self.sender(a)["confirmation_sent_at"], first_sent)
        self.assertEqual(r.json["address"], a)
        self.assertTrue(r.json["expires_at"])
        again = self.mkt.request("POST", f"/api/senders/{sid}/confirmation-email")
        self.assertError(again, 429, "rate_limited")
        self.assertTrue(0 < int(again.header("Retry-After")) <= 60)
        sent = [e for e in audit_events(self.admin) if e["id"] > since
                and e["action"] == "sender.confirmation_sent"]
        self.assertEqual([(e["actor"], e["target"]) for e in sent], [("mkt@acme.test", a)])
        links = {self.link_of(m) for m in self.owner_mails(a, 2)}
        self.assertEqual(len(links), 2)
        new_link = (links - {link}).pop()
        self.assertEqual(self.page("POST", new_link)[0], 200)
        self.assertEqual(self.sender(a)["status"], "verified")
        r = self.mkt.request("POST", f"/api/senders/{sid}/confirmation-email")
        self.assertError(r, 409, "not_awaiting_owner")


if __name__ == "__main__":
    main()
