"""Edits made outside Postern (an operator's sqlite3 or psql session, another tool) reach
the daemon's caches (policy snapshots, API keys found) without any write through Postern:
the store's triggers move a version counter that the stamp watches (docs/architecture.md,
Store). A sender set pending, a key revoked or deleted, a switch or a domain changed in
the database are decided on by the next request."""
import time
import unittest

from harness import PASSWORD, POSTGRES, Gateway, main, send_body

NETCORE = "/v5/mail/send"
# SQLite: the daemon reads the counter every 50 ms (CHECKPOINT_MS); PostgreSQL: the change
# arrives as a notification. What a request waits for at most before it must see it.
SETTLE = 0.5


class ExternalEditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.key = cls.gw.create_key("acme", "main")
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def send(self, sender="news@acme.test", key=None):
        r = self.gw.client().request("POST", NETCORE, send_body(sender),
                                     headers={"Authorization": "Bearer " + (key or self.key)})
        return r.status, r.code

    def edit(self, query, *params):
        """A change made in the database directly, then the time it may take to arrive."""
        self.gw.sql(query, *params)
        time.sleep(SETTLE)

    def switch(self, on):
        r = self.admin.request("PUT", "/api/settings/sender-auth",
                               {"enabled": on, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)

    def test_a_sender_set_pending_in_the_database(self):
        r = self.admin.request("POST", "/api/senders",
                               {"addresses": ["news@acme.test", "keep@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        ids = {a["address"]: a["id"] for a in r.json["added"]}
        for i in ids.values():
            self.assertEqual(self.admin.request("POST", f"/api/senders/{i}/verify").status, 200)
        sid = ids["news@acme.test"]
        self.switch(True)
        try:
            self.assertEqual(self.send(), (200, None))
            self.edit("UPDATE senders SET status = 'pending' WHERE id = ?", sid)
            self.assertEqual(self.send(), (403, "sender_pending_verification"))
            self.edit("UPDATE senders SET status = 'verified' WHERE id = ?", sid)
            self.assertEqual(self.send(), (200, None))
            self.edit("DELETE FROM senders WHERE id = ?", sid)
            self.assertEqual(self.send(), (403, "sender_not_authorized"))
        finally:
            self.switch(False)

    def test_the_switch_toggled_in_the_database(self):
        self.assertEqual(self.send("ops@acme.test"), (200, None))
        self.edit("UPDATE settings SET sender_auth_enabled = 1")
        try:
            self.assertEqual(self.send("ops@acme.test")[0], 403)
        finally:
            self.edit("UPDATE settings SET sender_auth_enabled = 0")
        self.assertEqual(self.send("ops@acme.test"), (200, None))

    def test_a_domain_switched_off_in_the_database(self):
        self.assertEqual(self.send(), (200, None))
        self.edit("UPDATE sending_domains SET active = 0 WHERE name = 'acme.test'")
        try:
            self.assertEqual(self.send(), (403, "domain_inactive"))
        finally:
            self.edit("UPDATE sending_domains SET active = 1 WHERE name = 'acme.test'")
        self.assertEqual(self.send(), (200, None))

    def test_keys_revoked_or_deleted_in_the_database(self):
        for name, query in (("revoked", "UPDATE api_keys SET revoked_at = 1 WHERE name = ?"),
                            ("deleted", "DELETE FROM api_keys WHERE name = ?")):
            with self.subTest(name):
                key = self.gw.create_key("acme", name)
                self.assertEqual(self.send(key=key), (200, None))  # now a key found
                self.edit(query, name)
                self.assertEqual(self.send(key=key), (401, "invalid_api_key"))
        self.assertEqual(self.send(), (200, None))


if __name__ == "__main__":
    main()
