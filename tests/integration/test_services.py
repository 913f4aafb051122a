"""One operation, one place: the CLI and the HTTP API call the same services, so the same
operation leaves the same audit row whichever front end asked. Only who acted differs: the
actor ("cli" or the user's email), the client address (none at the command line) and the
acting user's role, which the API's rows open their detail with ("role=admin ...")."""
import re
import time
import unittest

from harness import Gateway, audit_events, cli, main, must, send_body

ADMIN = "admin@acme.test"


def operation(event):
    """What an audit row says was done, without who did it: the action and the detail
    after the acting user's role."""
    detail = re.sub(r"^role=\S+ ?", "", event["detail"])
    return event["action"], detail


class ServicesCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", ADMIN)
        cls.gw.start()
        cls.admin = cls.gw.logged_in(ADMIN)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def cli(self, *args):
        return must(cli(*args[:2], *self.gw.store_args, "--account", "acme", *args[2:]))

    def api(self, method, path, body=None, status=200):
        r = self.admin.request(method, path, body)
        self.assertEqual(r.status, status, r.raw)
        return r.json

    def row(self, action, target):
        """The one audit row of action on target."""
        rows = [e for e in audit_events(self.admin)
                if e["action"] == action and e["target"] == target]
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def assertSameOperation(self, by_cli, by_api):
        self.assertEqual(operation(by_cli), operation(by_api))
        self.assertEqual((by_cli["actor"], by_cli["ip"]), ("cli", ""))
        self.assertEqual((by_api["actor"], by_api["ip"]), (ADMIN, "127.0.0.1"))
        self.assertTrue(by_api["detail"].startswith("role=admin"), by_api)
        self.assertFalse(by_cli["detail"].startswith("role="), by_cli)

    def test_creating_a_user(self):
        self.gw.add_user("acme", "cli.made@acme.test", "technical")
        self.api("POST", "/api/users", {"email": "api.made@acme.test", "role": "technical",
                                        "password": "another good password"}, 201)
        by_cli = self.row("user.created", "cli.made@acme.test")
        by_api = self.row("user.created", "api.made@acme.test")
        self.assertSameOperation(by_cli, by_api)
        self.assertEqual(operation(by_cli), ("user.created", "new_role=technical"))

    def test_the_first_admin_is_created_like_any_user(self):
        first = self.row("user.created", ADMIN)
        self.assertEqual((first["actor"], operation(first)),
                         ("cli", ("user.created", "new_role=admin")))

    def test_creating_a_key(self):
        text = self.cli("key", "create", "--name", "deploy").stdout.strip()
        made = self.api("POST", "/api/keys", {"name": "deploy"}, 201)
        by_cli = self.row("key.created", text[:len(made["prefix"])])
        by_api = self.row("key.created", made["prefix"])
        self.assertSameOperation(by_cli, by_api)
        self.assertEqual(operation(by_cli), ("key.created", "name=deploy"))

    def test_creating_a_key_with_networks(self):
        text = self.cli("key", "create", "--name", "printer", "--smtp-ip", "10.0.0.0/8",
                        "--smtp-ip", "::1").stdout.strip()
        made = self.api("POST", "/api/keys",
                        {"name": "printer", "smtp_ips": ["10.0.0.0/8", "::1"]}, 201)
        by_cli = self.row("key.created", text[:len(made["prefix"])])
        by_api = self.row("key.created", made["prefix"])
        self.assertSameOperation(by_cli, by_api)
        self.assertEqual(operation(by_cli),
                         ("key.created", "name=printer smtp_ips=10.0.0.0/8,::1/128"))

    def test_adding_a_domain(self):
        self.cli("domain", "add", *self.gw.key_args, "cli.example")
        self.api("POST", "/api/domains", {"domain": "api.example"}, 201)
        by_cli = self.row("domain.added", "cli.example")
        by_api = self.row("domain.added", "api.example")
        self.assertSameOperation(by_cli, by_api)
        self.assertEqual(operation(by_cli), ("domain.added", ""))

    def test_an_operators_word_on_a_domain_is_noted(self):
        self.cli("domain", "add", *self.gw.key_args, "word.example", "--verified", "--inactive")
        self.assertEqual(operation(self.row("domain.added", "word.example")),
                         ("domain.added", "status=verified active=no"))
        self.cli("domain", "set", "word.example", "--active")
        self.assertEqual(operation(self.row("domain.updated", "word.example")),
                         ("domain.updated", "active=yes"))

    def test_the_verification_email_is_named_like_any_message(self):
        """Postern's own mail and the send API's share one id scheme: the time in
        milliseconds first, so ids sort by when they were made."""
        self.cli("domain", "add", *self.gw.key_args, "ids.example", "--verified")
        key = self.cli("key", "create", "--name", "ids").stdout.strip()
        before = int(time.time() * 1000)
        self.api("POST", "/api/senders", {"addresses": ["news@ids.example"]}, 201)
        r = self.gw.client().request("POST", "/v5/mail/send",
                                     send_body(sender="news@ids.example"),
                                     headers={"api_key": key})
        self.assertEqual(r.status, 200, r.raw)
        after = int(time.time() * 1000)
        messages = self.api("GET", "/api/messages")["messages"]
        kinds = {m["kind"]: m["id"] for m in messages}
        self.assertEqual(set(kinds), {"system", "api"}, messages)
        for id in kinds.values():
            self.assertRegex(id, r"^[0-9a-f]{32}$")
            self.assertTrue(before - 1000 <= int(id[:12], 16) <= after + 1000, id)
        self.assertLess(kinds["system"], kinds["api"])


if __name__ == "__main__":
    main()
