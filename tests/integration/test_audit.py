"""GET /api/audit: newest first, limited, and scoped to the caller's account."""
import unittest

from harness import Gateway, main


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", "admin@acme.test")
        cls.gw.add_account("globex", "admin@globex.test")
        cls.gw.add_user("globex", "ana@globex.test", "analytics")
        cls.gw.start()
        cls.acme = cls.gw.client()
        cls.acme_id = cls.acme.login("admin@acme.test").json["account"]["id"]
        cls.globex = cls.gw.client()
        cls.globex_id = cls.globex.login("admin@globex.test").json["account"]["id"]

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def events(self, client, query=""):
        r = client.request("GET", "/api/audit" + query)
        self.assertEqual(r.status, 200, r.raw)
        return r.json["events"]

    def test_an_account_sees_only_its_own_events(self):
        # A failed login in globex must not show up for acme.
        self.gw.client().request("POST", "/api/session",
                                 {"account": "globex", "email": "ana@globex.test",
                                  "password": "wrong password"})
        acme = self.events(self.acme, "?limit=1000")
        globex = self.events(self.globex, "?limit=1000")
        self.assertTrue(acme and globex)
        self.assertEqual({e["account"] for e in acme}, {self.acme_id})
        self.assertEqual({e["account"] for e in globex}, {self.globex_id})
        text = repr(acme)
        self.assertNotIn("globex", text)
        self.assertIn("password.failed", [e["action"] for e in globex])

    def test_events_have_the_documented_fields_newest_first(self):
        events = self.events(self.acme)
        for e in events:
            self.assertTrue({"at", "account", "actor", "action", "target", "detail",
                             "ip"} <= set(e))
            self.assertRegex(e["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        ids = [e["id"] for e in events]
        self.assertEqual(ids, sorted(ids, reverse=True))
        actions = [e["action"] for e in events]
        self.assertIn("account.created", actions)
        self.assertIn("session.login", actions)
        login = next(e for e in events if e["action"] == "session.login")
        self.assertEqual(login["actor"], "admin@acme.test")
        self.assertEqual(login["ip"], "127.0.0.1")

    def test_limit(self):
        self.assertEqual(len(self.events(self.acme, "?limit=1")), 1)
        for bad in ("0", "-1", "abc", "1001", ""):
            r = self.acme.request("GET", "/api/audit?limit=" + bad)
            self.assertEqual(r.status, 400, bad)
            self.assertEqual(r.json["error"]["field"], "limit")

    def test_audit_needs_a_session(self):
        r = self.gw.client().request("GET", "/api/audit")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.code, "not_authenticated")


if __name__ == "__main__":
    main()
