"""Keys scoped to senders, domains and networks (issue 19) against the real daemon: a key's
senders, domains, allowed_ips, scopes and role made, listed and changed (POST, GET and
PATCH /api/keys, and `postern key create`), each field's refusal naming it; a scoped key
refused with sender_not_allowed_for_key on the three send dialects and over SMTP (smtplib,
AUTH and SMTP-IP), after the account's own decision; allowed_ips refusing other clients
over HTTP (X-Forwarded-For believed only from a trusted proxy) and SMTP; a change taking
effect from the very next request, also in an SMTP session already open; every key in its
own account; and, on PostgreSQL, a change made on one node holding on the other within a
second."""
import json
import smtplib
import socket
import time
import unittest

from harness import Gateway, audit_events, cli, main, must, postgres_only, send_body, smtp_quit

PROXY = "127.0.0.9"  # [server] trusted_proxies
CONFIG = {"smtp": {"auth_without_tls": "yes"}, "server": {"trusted_proxies": PROXY}}
DIALECTS = ("/v5/mail/send", "/v6/mail/send", "/v3/mail/send")
ACCEPTED = {"/v5/mail/send": 200, "/v6/mail/send": 200, "/v3/mail/send": 202}


def message(sender):
    return (f"From: <{sender}>\r\nTo: bob@example.com\r\nSubject: Hi\r\n\r\nHello\r\n").encode()


class KeyScopesTest(unittest.TestCase):
    """One gateway (SMTP on, a trusted proxy at PROXY) with acme sending from its verified
    domains acme.test, mail.acme.test and other.test, and globex from globex.test."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config=CONFIG).init("acme", "admin@acme.test")
        cls.gw.add_account("globex", "admin@globex.test")
        for domain in ("acme.test", "mail.acme.test", "other.test"):
            cls.gw.add_domain("acme", domain, "--verified")
        cls.gw.add_domain("globex", "globex.test", "--verified")
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")
        cls.globex = cls.gw.logged_in("admin@globex.test")
        cls.serial = 0

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    # -- helpers ----------------------------------------------------------------------------

    def name(self):
        type(self).serial += 1
        return f"key {type(self).serial}"

    def create(self, status=201, client=None, **fields):
        fields.setdefault("name", self.name())
        r = (client or self.admin).request("POST", "/api/keys", fields)
        self.assertEqual(r.status, status, r.raw)
        return r.json

    def patch(self, key_id, body, status=200, client=None):
        r = (client or self.admin).request("PATCH", f"/api/keys/{key_id}", body)
        self.assertEqual(r.status, status, r.raw)
        return r.json

    def listed(self, client=None):
        r = (client or self.admin).request("GET", "/api/keys")
        self.assertEqual(r.status, 200, r.raw)
        return {k["id"]: k for k in r.json["keys"]}

    def send(self, key, sender, path="/v3/mail/send", source=None, forwarded=None):
        headers = {"Authorization": "Bearer " + key}
        if forwarded:
            headers["X-Forwarded-For"] = forwarded
        return self.gw.client(source).request("POST", path, send_body(sender=sender),
                                              headers=headers)

    def assertSent(self, r, path="/v3/mail/send"):
        self.assertEqual(r.status, ACCEPTED[path], r.raw)

    def assertRefused(self, r, code):
        self.assertEqual(r.status, 403, r.raw)
        self.assertEqual(r.code, code, r.raw)

    def assertInvalid(self, r, field):
        self.assertEqual(r.status, 400, r.raw)
        self.assertEqual(r.code, "invalid_request", r.raw)
        errors = r.json["error"]
        self.assertEqual(errors["field"], field, r.raw)
        self.assertTrue(errors["message"])

    def smtp(self, source="127.0.0.1"):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30,
                         source_address=(source, 0))
        self.addCleanup(smtp_quit, s)
        s.ehlo("client.test")
        return s

    @staticmethod
    def auth(s, key):
        s.user, s.password = "apikey", key
        try:
            return s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error

    def assertSmtpRefused(self, reply, code):
        self.assertEqual(reply[0], 550, reply)
        self.assertIn(f"5.7.1 {code}:".encode(), reply[1])

    # -- create, list, validate ---------------------------------------------------------------

    def test_every_field_is_kept_normalized_and_listed(self):
        made = self.create(senders=["News@Acme.TEST"], domains=["Other.TEST"],
                           allowed_ips=["127.0.0.1", "2001:DB8::/32", "0.0.0.0/0"],
                           scopes=["manage", "mail.send"], role="technical")
        self.assertEqual(made["senders"], ["news@acme.test"])
        self.assertEqual(made["domains"], ["other.test"])
        self.assertEqual(made["allowed_ips"], ["127.0.0.1/32", "2001:db8::/32", "0.0.0.0/0"])
        self.assertEqual(made["scopes"], ["mail.send", "manage"])
        self.assertEqual(made["role"], "technical")
        self.assertTrue(made["key"].startswith("pst_"))
        listed = self.listed()[made["id"]]
        for field in ("senders", "domains", "allowed_ips", "scopes", "role", "smtp_ips"):
            self.assertEqual(listed[field], made[field], field)
        self.assertNotIn("key", listed)
        # A key without any of them: account-wide, anywhere, sending only, no role.
        plain = self.create()
        for field in ("senders", "domains", "allowed_ips", "smtp_ips"):
            self.assertEqual(plain[field], [], field)
        self.assertEqual(plain["scopes"], ["mail.send"])
        self.assertIsNone(plain["role"])
        row = [e for e in audit_events(self.admin)
               if e["action"] == "key.created" and e["target"] == made["prefix"]]
        self.assertEqual(len(row), 1, row)
        for part in ("senders=news@acme.test", "domains=other.test",
                     "allowed_ips=127.0.0.1/32,2001:db8::/32,0.0.0.0/0",
                     "scopes=mail.send,manage", "role=technical"):
            self.assertIn(part, row[0]["detail"])

    def test_each_refusal_names_its_field(self):
        before = self.listed()
        many = [f"s{i}@acme.test" for i in range(101)]
        cases = [
            ({"senders": "news@acme.test"}, "senders"),
            ({"senders": ["news@acme.test", "not an address"]}, "senders[1]"),
            ({"senders": ["news@acme.test", "NEWS@acme.test"]}, "senders[1]"),
            ({"senders": [7]}, "senders[0]"),
            ({"senders": many}, "senders[100]"),
            ({"domains": ["co.uk"]}, "domains[0]"),
            ({"domains": ["acme.test", "not a domain"]}, "domains[1]"),
            ({"domains": {"a": 1}}, "domains"),
            ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips[0]"),
            ({"allowed_ips": ["127.0.0.1", "127.0.0.1/32"]}, "allowed_ips[1]"),
            ({"allowed_ips": ["10.0.0.1, 10.0.0.2"]}, "allowed_ips[0]"),
            ({"scopes": []}, "scopes"),
            ({"scopes": ["mail.send", "mail.send"]}, "scopes[1]"),
            ({"scopes": ["admin"]}, "scopes[0]"),
            ({"scopes": ["manage"]}, "role"),
            ({"scopes": ["manage"], "role": "admin"}, "role"),
            ({"scopes": ["manage"], "role": "owner"}, "role"),
            ({"role": "technical"}, "role"),
            ({"scopes": ["manage"], "role": 3}, "role"),
            ({"colour": "blue"}, "colour"),
            ({"name": ""}, "name"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                r = self.admin.request("POST", "/api/keys", dict({"name": "bad"}, **body))
                self.assertInvalid(r, field)
        r = self.admin.request("POST", "/api/keys", {"scopes": ["manage"], "role": "technical"})
        self.assertInvalid(r, "name")
        r = self.admin.request("POST", "/api/keys",
                               {"name": "bad", "scopes": ["manage"], "role": "admin"})
        self.assertIn("Admin", r.json["error"]["message"])
        self.assertEqual(self.listed(), before)

    def test_patch_changes_only_what_it_names(self):
        made = self.create(smtp_ips=["127.0.0.77"])
        got = self.patch(made["id"], {"senders": ["news@acme.test"]})
        self.assertEqual(got["senders"], ["news@acme.test"])
        self.assertEqual(got["name"], made["name"])
        self.assertEqual(got["smtp_ips"], ["127.0.0.77/32"])
        self.assertNotIn("key", got)
        got = self.patch(made["id"], {"name": "renamed", "domains": ["other.test"]})
        self.assertEqual((got["name"], got["senders"], got["domains"]),
                         ("renamed", ["news@acme.test"], ["other.test"]))
        got = self.patch(made["id"], {"scopes": ["mail.send", "manage"], "role": "analytics"})
        self.assertEqual((got["scopes"], got["role"]), (["mail.send", "manage"], "analytics"))
        # Taking manage away takes the role with it.
        got = self.patch(made["id"], {"scopes": ["mail.send"]})
        self.assertEqual((got["scopes"], got["role"]), (["mail.send"], None))
        # Empty lists and null both clear a list.
        got = self.patch(made["id"], {"senders": [], "domains": None, "smtp_ips": []})
        self.assertEqual((got["senders"], got["domains"], got["smtp_ips"]), ([], [], []))
        self.assertEqual(self.listed()[made["id"]], got)
        # Refusals change nothing.
        for body, field in (({"senders": ["x"]}, "senders[0]"), ({"role": "marketing"}, "role"),
                            ({"scopes": []}, "scopes"), ({"key": "pst_x"}, "key")):
            with self.subTest(body=body):
                r = self.admin.request("PATCH", f"/api/keys/{made['id']}", body)
                self.assertInvalid(r, field)
        self.assertEqual(self.listed()[made["id"]], got)
        rows = [e for e in audit_events(self.admin)
                if e["action"] == "key.updated" and e["target"] == str(made["id"])]
        details = [e["detail"] for e in rows]
        self.assertIn("role=admin senders=news@acme.test", details)
        self.assertIn("role=admin name=renamed domains=other.test", details)

    def test_keys_of_another_account_or_revoked_are_not_found(self):
        made = self.create()
        self.patch(made["id"], {"name": "stolen"}, status=404, client=self.globex)
        self.assertNotIn(made["id"], self.listed(self.globex))
        self.assertEqual(self.listed()[made["id"]]["name"], made["name"])
        r = self.admin.request("DELETE", f"/api/keys/{made['id']}")
        self.assertEqual(r.status, 204, r.raw)
        self.patch(made["id"], {"name": "back"}, status=404)
        self.patch(999999, {"name": "none"}, status=404)
        # A key's domains never reach past its account: the account refuses first.
        scoped = self.create(domains=["globex.test"])
        self.assertRefused(self.send(scoped["key"], "news@globex.test"), "domain_not_approved")

    # -- senders and domains ------------------------------------------------------------------

    def test_a_scoped_key_sends_only_from_its_senders_and_domains_on_every_dialect(self):
        made = self.create(senders=["news@acme.test"], domains=["other.test"])
        key = made["key"]
        for path in DIALECTS:
            with self.subTest(path=path):
                self.assertSent(self.send(key, "news@acme.test", path), path)
                self.assertSent(self.send(key, "anyone@other.test", path), path)
                self.assertRefused(self.send(key, "billing@acme.test", path),
                                   "sender_not_allowed_for_key")
                # A domain covers itself, not its subdomains.
                self.assertRefused(self.send(key, "x@mail.acme.test", path),
                                   "sender_not_allowed_for_key")
                # The account's own refusal keeps its code.
                self.assertRefused(self.send(key, "x@unlisted.test", path),
                                   "domain_not_approved")
        r = self.send(key, "billing@acme.test", "/v3/mail/send")
        self.assertIn("senders and domains", r.json["errors"][0]["message"])
        self.assertEqual(r.json["errors"][0]["field"], "from.email")
        drops = self.admin.request("GET", "/api/drops?limit=1000").json["drops"]
        counted = sum(d["count"] for d in drops if d["reason"] == "sender_not_allowed_for_key"
                      and d["key_id"] == made["id"] and d["from"] == "billing@acme.test")
        self.assertEqual(counted, 4)
        stats = self.admin.request("GET", "/api/stats").json
        self.assertGreaterEqual(stats["dropped"]["sender_not_allowed_for_key"], 7)

    def test_a_scoped_key_over_smtp_with_auth_and_by_network(self):
        key = self.create(senders=["news@acme.test"])["key"]
        s = self.smtp()
        self.assertEqual(self.auth(s, key)[0], 235)
        self.assertSmtpRefused(s.mail("billing@acme.test"), "sender_not_allowed_for_key")
        s.rset()
        # The envelope passes; the header From is judged at the end of DATA.
        self.assertEqual(s.mail("news@acme.test")[0], 250)
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        self.assertSmtpRefused(s.data(message("billing@acme.test")),
                               "sender_not_allowed_for_key")
        self.assertEqual(s.mail("news@acme.test")[0], 250)
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        self.assertEqual(s.data(message("news@acme.test"))[0], 250)
        # SMTP-IP: the key a network sends as carries its scope too.
        self.create(smtp_ips=["127.0.0.5"], domains=["other.test"])
        s = self.smtp("127.0.0.5")
        self.assertSmtpRefused(s.mail("news@acme.test"), "sender_not_allowed_for_key")
        s.rset()
        self.assertEqual(s.mail("x@other.test")[0], 250)

    # -- allowed_ips --------------------------------------------------------------------------

    def test_allowed_ips_refuse_other_clients_over_http(self):
        made = self.create(allowed_ips=["127.0.0.2"])
        key = made["key"]
        for path in DIALECTS:
            with self.subTest(path=path):
                self.assertRefused(self.send(key, "news@acme.test", path), "ip_not_allowed")
        # A refused use is no use.
        self.assertIsNone(self.listed()[made["id"]]["last_used_at"])
        for path in DIALECTS:
            with self.subTest(path=path):
                self.assertSent(self.send(key, "news@acme.test", path, source="127.0.0.2"),
                                path)
        self.assertIsNotNone(self.listed()[made["id"]]["last_used_at"])
        # Behind the trusted proxy the forwarded client counts; from anyone else the header
        # is not believed.
        self.assertSent(self.send(key, "news@acme.test", source=PROXY, forwarded="127.0.0.2"))
        self.assertRefused(self.send(key, "news@acme.test", source=PROXY,
                                     forwarded="198.51.100.1"), "ip_not_allowed")
        self.assertRefused(self.send(key, "news@acme.test", source="127.0.0.3",
                                     forwarded="127.0.0.2"), "ip_not_allowed")
        self.assertSent(self.send(key, "news@acme.test", source="127.0.0.2",
                                  forwarded="198.51.100.1"))
        # A wrong key is still a wrong key, wherever it comes from.
        r = self.send("pst_" + "A" * 43, "news@acme.test", source="127.0.0.2")
        self.assertEqual(r.status, 401, r.raw)

    def test_a_client_line_of_x_forwarded_for_before_the_proxys_is_not_believed(self):
        """A proxy that adds its own X-Forwarded-For line (HAProxy's option forwardfor)
        leaves the client's own line first: the two are one list (RFC 9110 5.3), read from
        the right, so the client cannot pick an allowed address."""
        key = self.create(allowed_ips=["127.0.0.2"])["key"]

        def status(lines):
            body = json.dumps(send_body(sender="news@acme.test")).encode()
            head = ["POST /v3/mail/send HTTP/1.1", "Host: x", "Authorization: Bearer " + key,
                    "Content-Type: application/json", f"Content-Length: {len(body)}",
                    "Connection: close"] + [f"X-Forwarded-For: {v}" for v in lines]
            with socket.create_connection(("127.0.0.1", self.gw.port), timeout=30,
                                          source_address=(PROXY, 0)) as s:
                s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                out = b""
                while b := s.recv(65536):
                    out += b
            return int(out.split(b" ", 2)[1])

        self.assertEqual(status(["127.0.0.2, 198.51.100.1"]), 403)
        self.assertEqual(status(["127.0.0.2", "198.51.100.1"]), 403)

    def test_allowed_ips_refuse_other_clients_over_smtp(self):
        key = self.create(allowed_ips=["127.0.0.2"])["key"]
        # Refused with its own code, and never counted toward the AUTH lockout.
        for _ in range(12):
            s = self.smtp("127.0.0.4")
            self.assertSmtpRefused(self.auth(s, key), "ip_not_allowed")
        s = self.smtp("127.0.0.2")
        self.assertEqual(self.auth(s, key)[0], 235)
        self.assertEqual(s.mail("news@acme.test")[0], 250)
        # SMTP-IP from a network outside the key's allowed_ips: refused at MAIL.
        self.create(smtp_ips=["127.0.0.6"], allowed_ips=["127.0.0.7"])
        s = self.smtp("127.0.0.6")
        self.assertSmtpRefused(s.mail("news@acme.test"), "ip_not_allowed")

    # -- changes apply at once ----------------------------------------------------------------

    def test_a_change_applies_from_the_next_request_and_the_next_mail(self):
        made = self.create()
        key = made["key"]
        self.assertSent(self.send(key, "billing@acme.test"))
        s = self.smtp()
        self.assertEqual(self.auth(s, key)[0], 235)
        self.assertEqual(s.mail("billing@acme.test")[0], 250)
        s.rset()
        self.patch(made["id"], {"senders": ["news@acme.test"]})
        self.assertRefused(self.send(key, "billing@acme.test"), "sender_not_allowed_for_key")
        self.assertSmtpRefused(s.mail("billing@acme.test"), "sender_not_allowed_for_key")
        s.rset()
        self.assertEqual(s.mail("news@acme.test")[0], 250)
        s.rset()
        self.patch(made["id"], {"allowed_ips": ["127.0.0.8"]})
        self.assertRefused(self.send(key, "news@acme.test"), "ip_not_allowed")
        self.assertSmtpRefused(s.mail("news@acme.test"), "ip_not_allowed")
        s.rset()
        self.patch(made["id"], {"allowed_ips": [], "senders": []})
        self.assertSent(self.send(key, "billing@acme.test"))
        self.assertEqual(s.mail("billing@acme.test")[0], 250)

    # -- the command line ---------------------------------------------------------------------

    def test_cli_key_create_takes_the_same_fields_and_refusals(self):
        r = must(cli("key", "create", *self.gw.store_args, "--account", "acme", "--name",
                     "ci", "--sender", "News@Acme.test", "--sender", "ceo@acme.test",
                     "--domain", "Other.TEST", "--allowed-ip", "127.0.0.2",
                     "--allowed-ip=2001:db8::/32", "--scope", "mail.send", "--scope",
                     "manage", "--role", "marketing"))
        key = r.stdout.strip()
        made = [k for k in self.listed().values() if k["prefix"] == key[:12]][0]
        self.assertEqual(made["senders"], ["news@acme.test", "ceo@acme.test"])
        self.assertEqual(made["domains"], ["other.test"])
        self.assertEqual(made["allowed_ips"], ["127.0.0.2/32", "2001:db8::/32"])
        self.assertEqual((made["scopes"], made["role"]), (["mail.send", "manage"], "marketing"))
        self.assertRefused(self.send(key, "billing@acme.test", source="127.0.0.2"),
                           "sender_not_allowed_for_key")
        self.assertRefused(self.send(key, "news@acme.test"), "ip_not_allowed")
        row = [e for e in audit_events(self.admin)
               if e["action"] == "key.created" and e["target"] == made["prefix"]][0]
        self.assertEqual(row["actor"], "cli")
        self.assertIn("senders=news@acme.test,ceo@acme.test domains=other.test", row["detail"])
        before = self.listed()
        for args, option in ((("--sender", "nope"), "--sender 'nope'"),
                             (("--domain", "co.uk"), "--domain 'co.uk'"),
                             (("--allowed-ip", "10.0.0.0/33"), "--allowed-ip '10.0.0.0/33'"),
                             (("--scope", "admin"), "--scope 'admin'"),
                             (("--scope", "manage"), "--role"),
                             (("--scope", "manage", "--role", "admin"), "--role 'admin'"),
                             (("--role", "technical"), "--role")):
            with self.subTest(args=args):
                r = cli("key", "create", *self.gw.store_args, "--account", "acme",
                        "--name", "bad", *args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(option, r.stderr)
        self.assertEqual(self.listed(), before)
        help_text = cli("key", "create", "--help").stdout
        for option in ("--sender", "--domain", "--allowed-ip", "--scope", "--role"):
            self.assertIn(option, help_text)


@postgres_only("two nodes share one database")
class TwoNodesTest(unittest.TestCase):
    """A change made through node A holds on node B within a second (the policy stamp moves
    on every node), over HTTP and for an SMTP session B already authenticated."""

    @classmethod
    def setUpClass(cls):
        cls.a = Gateway(smtp=True, config={"smtp": {"auth_without_tls": "yes"}}).init()
        cls.a.add_domain("acme", "acme.test", "--verified")
        cls.b = Gateway(shares=cls.a, smtp=True, config={"smtp": {"auth_without_tls": "yes"}})
        cls.a.start()
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        cls.b.cleanup()
        cls.a.cleanup()

    def send(self, key, sender):
        return self.b.client().request("POST", "/v3/mail/send", send_body(sender=sender),
                                       headers={"Authorization": "Bearer " + key})

    def until(self, probe, done, bound=1.0):
        """probe() until done(its answer), every 10 ms, for at most bound seconds after the
        change was answered; the last answer."""
        t0 = time.monotonic()
        while True:
            r = probe()
            if done(r) or time.monotonic() - t0 > bound:
                return r
            time.sleep(0.01)

    def test_a_change_on_one_node_holds_on_the_other(self):
        admin = self.a.logged_in("admin@acme.test")
        r = admin.request("POST", "/api/keys", {"name": "two nodes"})
        self.assertEqual(r.status, 201, r.raw)
        made = r.json
        self.assertEqual(self.send(made["key"], "billing@acme.test").status, 202)
        s = smtplib.SMTP("127.0.0.1", self.b.smtp_port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        s.login("apikey", made["key"])
        self.assertEqual(s.mail("billing@acme.test")[0], 250)
        s.rset()
        r = admin.request("PATCH", f"/api/keys/{made['id']}", {"senders": ["news@acme.test"]})
        self.assertEqual(r.status, 200, r.raw)
        r = self.until(lambda: self.send(made["key"], "billing@acme.test"),
                       lambda r: r.status == 403)
        self.assertEqual((r.status, r.code), (403, "sender_not_allowed_for_key"), r.raw)
        reply = s.mail("billing@acme.test")
        self.assertEqual(reply[0], 550, reply)
        self.assertIn(b"sender_not_allowed_for_key", reply[1])
        s.rset()
        self.assertEqual(self.send(made["key"], "news@acme.test").status, 202)


if __name__ == "__main__":
    main()
