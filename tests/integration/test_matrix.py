"""The permission matrix over real HTTP, generated from `postern routes`: every management
endpoint x every role x own account / other account, with the expected status, the
expected effect, and another account's ids answering byte for byte like missing ids. A
route that `postern routes` prints without a row here fails the test. Also: only login,
the verify pages and the panel's files answer without a session or key; CSRF on every
state-changing cookie request; logout ends the session on the server; a revoked key is
refused from the next request. Manage keys (issue 19): every endpoint x every role a key may
have x both accounts, with exactly the role's permissions but for the routes that stay with
people (403 interactive_only), sent as a Bearer header without CSRF token; a send-only key
is 403 forbidden on every management route, a manage-only key on every send route."""
import glob
import json
import os
import re
import time
import unittest

from harness import (PASSWORD, Client, Gateway, KeyClient, cli, main, must, send_body,
                     wait_until)

ROLES = ("admin", "technical", "analytics", "marketing")
# The roles a manage key may act with: never admin.
KEY_ROLES = ("technical", "analytics", "marketing")
ACCOUNTS = ("acme", "globex")
OTHER = {"acme": "globex", "globex": "acme"}

# The only routes that answer without a session or an API key.
EXPECTED_PUBLIC = {("POST", "/api/session"), ("GET", "/verify/{id}"), ("POST", "/verify/{id}"),
                   ("GET", "/confirm/{id}"), ("POST", "/confirm/{id}"),
                   ("GET", "/"), ("GET", "/{id}"), ("GET", "/healthz"), ("GET", "/readyz"),
                   ("GET", "/api/openapi.json")}

# The send API's routes and the dialect their errors are written in.
KEY_ROUTES = {("POST", "/v5/mail/send"): "netcore", ("POST", "/v6/mail/send"): "netcore",
              ("POST", "/v3/mail/send"): "sendgrid"}

# docs/api.md's Roles table, by the permission names `postern routes` prints.
DOCUMENTED_ROLES = {
    "none": set(ROLES),
    "read": set(ROLES),
    "sender.add": set(ROLES),
    "sender_auth.toggle": {"admin", "technical", "analytics"},
    "sender.remove": {"admin", "technical", "analytics"},
    "sender.verify": {"admin"},
    "domain.manage": {"admin", "technical"},
    "user.manage": {"admin"},
    "key.manage": {"admin", "technical"},
    "message.cancel": {"admin", "technical"},
    "webhook.manage": {"admin", "technical"},
    "suppression.manage": {"admin", "technical"},
    "sender_confirmation.set": {"admin"},
}

# docs/api.md's "Interactive-only routes": what a manage key may never call, whatever its role.
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "api.md")


def documented_interactive():
    with open(DOCS) as f:
        text = f.read()
    section = text.split("### Interactive-only routes", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/api/[^`]+)`", section))


# Ids that exist in no account, per kind of object.
MISSING = {"sender": "999999", "user": "999999", "key": "999999", "domain": "999999",
           "message": "0" * 32, "scheduled": "0" * 32, "webhook": "999999",
           "suppression": "nobody@nowhere.test"}

# How each kind of object is listed by its account's Admin: (path, field of the answer).
VIEWS = {"sender": ("/api/senders", "senders"), "user": ("/api/users", "users"),
         "key": ("/api/keys", "keys"), "domain": ("/api/domains", "domains"),
         "webhook": ("/api/webhooks", "webhooks"),
         "suppression": ("/api/suppressions", "suppressions")}


class Row:
    """How to call one session route so that it succeeds for a role allowed on it.
    ok: the status then. body: a dict, or fn(test, account) giving one. obj: the kind of
    object {id} names; fresh: a new one for every call (the call changes or removes it).
    created: (list path, fn(body) -> text) when the call adds something that list shows.
    caller: "fresh" for a new user of the role (the call ends or changes its session).
    prepare: fn(test, account) run before the call. tick: move the daemon's clock before
    the call, so that what it stamps (to the second) differs from the last stamp."""

    def __init__(self, ok, body=None, obj=None, fresh=False, created=None, caller=None,
                 query="", prepare=None, tick=False):
        self.ok, self.body, self.obj, self.fresh = ok, body, obj, fresh
        self.created, self.caller, self.query, self.prepare = created, caller, query, prepare
        self.tick = tick

    def make_body(self, test, account):
        return self.body(test, account) if callable(self.body) else self.body


def _pending_sender(test, account):
    test.make("sender", account)
    # One verification email per account per minute: each call gets a minute of its own.
    test.gw.advance_clock(61)


# One row per session route. A route `postern routes` lists that is neither here, nor in
# EXPECTED_PUBLIC, nor in KEY_ROUTES fails test_every_route_has_a_row_in_the_matrix.
ROWS = {
    ("GET", "/api/session"): Row(200),
    ("DELETE", "/api/session"): Row(204, caller="fresh"),
    ("GET", "/api/audit"): Row(200, query="?limit=1000"),
    ("GET", "/api/settings/sender-auth"): Row(200),
    # Disabling when disabled changes nothing; the caller's own password confirms it.
    ("PUT", "/api/settings/sender-auth"): Row(200, {"enabled": False, "password": PASSWORD}),
    ("GET", "/api/senders"): Row(200),
    ("POST", "/api/senders"): Row(
        201, lambda t, a: {"addresses": [t.unique("s{}@mail.%s.test" % a)]},
        created=("/api/senders", lambda b: b["addresses"][0])),
    ("POST", "/api/senders/verification-email"): Row(200, prepare=_pending_sender),
    ("GET", "/api/senders/preflight"): Row(200),
    ("POST", "/api/senders/{id}/verify"): Row(200, obj="sender", fresh=True),
    ("DELETE", "/api/senders/{id}"): Row(204, obj="sender", fresh=True),
    ("GET", "/api/settings/sender-confirmation"): Row(200),
    # Setting the mode it has (both, set up front) changes nothing; the caller's own
    # password confirms it.
    ("PUT", "/api/settings/sender-confirmation"): Row(200, {"mode": "both",
                                                           "password": PASSWORD}),
    # One owner's email per address per minute, and adding the sender sent one.
    ("POST", "/api/senders/{id}/confirmation-email"): Row(
        200, obj="sender", fresh=True, prepare=lambda t, a: t.gw.advance_clock(61)),
    ("PUT", "/api/users/me/password"): Row(
        204, {"current_password": PASSWORD, "new_password": "another horse battery"},
        caller="fresh"),
    ("GET", "/api/users"): Row(200),
    ("POST", "/api/users"): Row(
        201, lambda t, a: {"email": t.unique("u{}@%s.test" % a), "role": "marketing",
                           "password": PASSWORD},
        created=("/api/users", lambda b: b["email"])),
    ("PATCH", "/api/users/{id}"): Row(200, {"role": "analytics"}, obj="user", fresh=True),
    ("DELETE", "/api/users/{id}"): Row(204, obj="user", fresh=True),
    ("GET", "/api/keys"): Row(200),
    # The matrix's manage keys hold manage only, and a key a manage key makes or changes may
    # reach no further than its maker: so these keys hold manage only too.
    ("POST", "/api/keys"): Row(201, lambda t, a: {"name": t.unique("k{}.%s.test" % a),
                                                  "scopes": ["manage"], "role": "marketing"},
                               created=("/api/keys", lambda b: b["name"])),
    ("PATCH", "/api/keys/{id}"): Row(
        200, lambda t, a: {"senders": [t.unique("p{}@mail.%s.test" % a)],
                           "scopes": ["manage"], "role": "marketing"}, obj="key",
        fresh=True),
    ("DELETE", "/api/keys/{id}"): Row(204, obj="key", fresh=True),
    ("GET", "/api/drops"): Row(200),
    ("GET", "/api/stats"): Row(200),
    ("GET", "/api/overview"): Row(200),
    ("GET", "/api/domains"): Row(200),
    ("POST", "/api/domains"): Row(201, lambda t, a: {"domain": t.unique("d{}.%s.test" % a)},
                                  created=("/api/domains", lambda b: b["domain"])),
    ("POST", "/api/domains/{id}/check"): Row(200, obj="domain", fresh=True, tick=True),
    ("PATCH", "/api/domains/{id}"): Row(200, {"active": False}, obj="domain", fresh=True),
    ("DELETE", "/api/domains/{id}"): Row(204, obj="domain", fresh=True),
    ("POST", "/api/domains/{id}/dkim/rotate"): Row(200, obj="domain", fresh=True),
    ("GET", "/api/messages"): Row(200),
    ("GET", "/api/messages/{id}"): Row(200, obj="message"),
    ("POST", "/api/messages/{id}/cancel"): Row(200, obj="scheduled", fresh=True),
    ("GET", "/api/events"): Row(200),
    ("GET", "/api/reports"): Row(200),
    ("GET", "/api/webhooks"): Row(200),
    # Port 9 (discard) on loopback: nothing listens, so test events are simply refused.
    ("POST", "/api/webhooks"): Row(
        201, lambda t, a: {"url": t.unique("http://127.0.0.1:9/%s/{}" % a)},
        created=("/api/webhooks", lambda b: b["url"])),
    ("PATCH", "/api/webhooks/{id}"): Row(200, {"enabled": False}, obj="webhook", fresh=True),
    ("DELETE", "/api/webhooks/{id}"): Row(204, obj="webhook", fresh=True),
    ("POST", "/api/webhooks/{id}/test"): Row(202, obj="webhook", fresh=True),
    ("GET", "/api/suppressions"): Row(200),
    ("POST", "/api/suppressions"): Row(
        200, lambda t, a: {"emails": [t.unique("gone{}@%s.example" % a)]},
        created=("/api/suppressions", lambda b: b["emails"][0])),
    # {id} is the address itself.
    ("DELETE", "/api/suppressions/{id}"): Row(204, obj="suppression", fresh=True),
}


def email(account, role):
    return f"{role}@{account}.test"


def message_body(account):
    return send_body(f"news@mail.{account}.test", name="News", text="Hi there")


def load_routes():
    out = must(cli("routes", password=None)).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class MatrixTest(unittest.TestCase):
    """One gateway; acme and globex each with one user per role, logged in once."""

    @classmethod
    def setUpClass(cls):
        cls.routes = load_routes()
        cls.serial = 0
        cls.shared, cls.domains = {}, {}
        cls.gw = Gateway().init("acme", email("acme", "admin"))
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.add_account("globex", email("globex", "admin"))
        for account in ACCOUNTS:
            for role in ROLES[1:]:
                cls.gw.add_user(account, email(account, role), role)
            # A verified domain to send the accounts' messages from.
            cls.gw.add_domain(account, f"mail.{account}.test", "--verified")
        cls.gw.start()
        cls.users = {(a, r): cls.login(email(a, r)) for a in ACCOUNTS for r in ROLES}
        cls.admins = {a: cls.users[(a, "admin")] for a in ACCOUNTS}
        # Senders wait for an Admin and their owner, so each sender route has work to do.
        for account in ACCOUNTS:
            r = cls.admins[account].request("PUT", "/api/settings/sender-confirmation",
                                            {"mode": "both", "password": PASSWORD})
            assert r.status == 200, r.raw
        cls.keys, cls.messages = {}, {}
        for account in ACCOUNTS:
            admin = cls.admins[account]
            r = admin.request("POST", "/api/keys", {"name": f"sender.{account}.test"})
            assert r.status == 201, r.raw
            cls.keys[account] = r.json["key"]
            r = cls.gw.client().request("POST", "/v5/mail/send", message_body(account),
                                        headers={"Authorization": "Bearer " + r.json["key"]})
            assert r.status == 200, r.raw
            mid = r.json["data"]["message_id"]
            listed = admin.request("GET", "/api/messages")
            assert mid in {m["id"] for m in listed.json["messages"]}, listed.raw
            cls.messages[account] = mid
        # Manage keys: one per account and role a key may have, each made by the Admin.
        cls.key_clients = {}
        for account in ACCOUNTS:
            for role in KEY_ROLES:
                made = cls.gw.scoped_key(cls.admins[account], f"{role}.manage.{account}.test",
                                         ("manage",), role)
                cls.key_clients[(account, role)] = KeyClient(cls.gw.port, made["key"])
        # What one account's answers may never contain: the other account's names and ids.
        cls.foreign = {a: [f"{OTHER[a]}.test".encode(), cls.messages[OTHER[a]].encode()]
                       for a in ACCOUNTS}

    @classmethod
    def login(cls, address, password=PASSWORD):
        c = cls.gw.client()
        r = c.login(address, password)
        assert r.status == 200, r.raw
        return c

    def unique(self, template):
        type(self).serial += 1
        return template.format(type(self).serial)

    # Objects, each created by its account's Admin.
    def make(self, kind, account):
        admin = self.admins[account]
        if kind == "message":
            return self.messages[account]
        if kind == "scheduled":  # a message waiting a day for its send time
            offset = int(open(self.gw.clock_path).read() or 0) \
                if os.path.exists(self.gw.clock_path) else 0
            body = dict(message_body(account), schedule=int(time.time()) + offset + 86400)
            r = self.gw.client().request("POST", "/v5/mail/send", body,
                                         headers={"Authorization": "Bearer " + self.keys[account]})
            self.assertEqual(r.status, 200, r.raw)
            return r.json["data"]["message_id"]
        if kind == "sender":
            r = admin.request("POST", "/api/senders",
                              {"addresses": [self.unique(f"o{{}}@mail.{account}.test")]})
            self.assertEqual(r.status, 201, r.raw)
            return str(r.json["added"][0]["id"])
        if kind == "user":
            r = admin.request("POST", "/api/users", {"email": self.unique(f"t{{}}@{account}.test"),
                                                     "role": "marketing", "password": PASSWORD})
        elif kind == "key":
            r = admin.request("POST", "/api/keys", {"name": self.unique(f"o{{}}.{account}.test")})
        elif kind == "webhook":
            r = admin.request("POST", "/api/webhooks",
                              {"url": self.unique(f"http://127.0.0.1:9/o/{account}/{{}}")})
        elif kind == "suppression":
            address = self.unique(f"s{{}}@{account}.example")
            r = admin.request("POST", "/api/suppressions", {"emails": [address]})
            self.assertEqual((r.status, r.json), (200, {"added": 1}), r.raw)
            return address
        elif kind == "domain":
            pool = self.domains.setdefault(account, [])
            if not pool:
                pool.extend(self.settled_domains(account, 16))
            return pool.pop()
        else:
            raise AssertionError(f"no way to make a {kind}")
        self.assertEqual(r.status, 201, r.raw)
        return str(r.json["id"])

    def settled_domains(self, account, n):
        """n new domains, each already through the scheduler's check of a new domain (it
        comes within a second), so that afterwards only the calls under test change them:
        the scheduler's next look is check_pending (5 minutes) away."""
        admin = self.admins[account]
        ids = set()
        for _ in range(n):
            r = admin.request("POST", "/api/domains",
                              {"domain": self.unique(f"o{{}}.{account}.test")})
            self.assertEqual(r.status, 201, r.raw)
            ids.add(str(r.json["id"]))

        def settled():
            r = admin.request("GET", "/api/domains")
            return ids <= {str(d["id"]) for d in r.json["domains"] if d["checked_at"]}
        self.assertTrue(wait_until(settled, timeout=20, interval=0.05),
                        "the scheduler did not check the new domains")
        return sorted(ids)

    def snapshot(self, kind, account, oid):
        """The object as its account's Admin sees it, or None when it is gone."""
        admin = self.admins[account]
        if kind in ("message", "scheduled"):
            r = admin.request("GET", f"/api/messages/{oid}")
            self.assertEqual(r.status, 200, r.raw)
            return r.json
        path, field = VIEWS[kind]
        r = admin.request("GET", path)
        self.assertEqual(r.status, 200, r.raw)
        key = "email" if kind == "suppression" else "id"  # a suppression goes by its address
        found = next((o for o in r.json[field] if str(o[key]) == oid), None)
        if kind == "webhook" and found:
            # Its test events are part of it; how its deliveries went changes on its own.
            for volatile in ("last_delivery", "last_success_at", "failing_since"):
                found.pop(volatile)
            r = admin.request("GET", "/api/events?type=webhook.test&limit=1000")
            found["test_events"] = [e["id"] for e in r.json["events"]
                                    if e["data"]["webhook_id"] == int(oid)]
        return found

    def listed(self, row, account, body):
        path, text = row.created
        r = self.admins[account].request("GET", path)
        self.assertEqual(r.status, 200, r.raw)
        return text(body) in r.raw.decode()

    def caller(self, row, account, role):
        if row.caller != "fresh":
            return self.users[(account, role)]
        address = self.unique(f"c{{}}@{account}.test")
        r = self.admins[account].request("POST", "/api/users", {"email": address, "role": role,
                                                                "password": PASSWORD})
        self.assertEqual(r.status, 201, r.raw)
        return self.login(address)

    @staticmethod
    def url(path, oid, row):
        return (path.replace("{id}", oid) if oid is not None else path) + row.query

    def assertError(self, r, status, code, msg=""):
        self.assertEqual((r.status, r.code), (status, code), f"{msg}: {r.status} {r.raw!r}")
        self.assertEqual(set(r.json), {"error"}, r.raw)
        self.assertTrue(r.json["error"]["message"], r.raw)

    def assertKeyRefused(self, r, dialect, msg=""):
        self.assertEqual(r.status, 401, f"{msg}: {r.raw!r}")
        if dialect == "sendgrid":
            err, = r.json["errors"]
            self.assertIsNone(err["help"], r.raw)
            self.assertIsNone(err["field"], r.raw)
        else:
            self.assertEqual(r.json["status"], "error", r.raw)
            err, = r.json["error"]
        self.assertEqual(err["code"], "invalid_api_key", f"{msg}: {r.raw!r}")
        self.assertTrue(err["message"], r.raw)

    def session_routes(self):
        return [r for r in self.routes if r["auth"] == "session"]

    # -- The table itself --------------------------------------------------------------

    def test_every_route_has_a_row_in_the_matrix(self):
        listed = set()
        for route in self.routes:
            key = (route["method"], route["path"])
            listed.add(key)
            with self.subTest(method=key[0], path=key[1], auth=route["auth"]):
                if route["auth"] == "none":
                    self.assertTrue(key in EXPECTED_PUBLIC,
                                    f"{key[0]} {key[1]} answers without a session or key but "
                                    "is not login, a verify page, the panel's files or the API "
                                    "description")
                elif route["auth"] == "session":
                    self.assertTrue(key in ROWS, f"new endpoint without a row in the matrix: "
                                                 f"{key[0]} {key[1]}")
                elif route["auth"] == "api_key":
                    self.assertTrue(key in KEY_ROUTES, f"new endpoint without a row in the "
                                                       f"matrix: {key[0]} {key[1]} (api_key)")
                else:
                    self.fail(f"{key[0]} {key[1]}: unknown auth {route['auth']!r}")
        for key in sorted(set(ROWS) | set(KEY_ROUTES) | EXPECTED_PUBLIC):
            with self.subTest(stale=key):
                self.assertTrue(key in listed, f"a row for {key[0]} {key[1]}, which `postern "
                                               "routes` does not list")

    def test_the_roles_on_each_route_are_the_documented_ones(self):
        for route in self.routes:
            with self.subTest(method=route["method"], path=route["path"]):
                if route["auth"] != "session":
                    self.assertEqual(route["roles"], [], route)
                    continue
                self.assertIn(route["permission"], DOCUMENTED_ROLES,
                              f"permission {route['permission']!r} is not in docs/api.md")
                self.assertEqual(set(route["roles"]), DOCUMENTED_ROLES[route["permission"]],
                                 route)
                self.assertEqual(len(route["roles"]), len(set(route["roles"])), route)

    # -- The matrix ----------------------------------------------------------------------

    def test_every_endpoint_for_every_role_in_both_accounts(self):
        started = time.monotonic()
        own = other = 0
        routes = self.session_routes()
        for route in routes:
            method, path, roles = route["method"], route["path"], route["roles"]
            row = ROWS.get((method, path))
            if row is None:
                with self.subTest(method=method, path=path):
                    self.fail(f"new endpoint without a row in the matrix: {method} {path}")
                continue
            for account in ACCOUNTS:
                for role in ROLES:
                    with self.subTest(method=method, path=path, role=role, account=account,
                                      ids="own"):
                        self.check_own(method, path, row, account, role, role in roles)
                    own += 1
                    if "{id}" in path:
                        with self.subTest(method=method, path=path, role=role, account=account,
                                          ids="other account's"):
                            self.check_other(method, path, row, account, role, role in roles)
                        other += 1
        print(f"\nmatrix: {len(routes)} session routes x {len(ROLES)} roles x "
              f"{len(ACCOUNTS)} accounts = {own} own-account cases, + {other} other-account-id "
              f"cases ({other // (len(ROLES) * len(ACCOUNTS)) if other else 0} routes with an "
              f"id); {own + other} in all, {time.monotonic() - started:.1f}s", flush=True)

    def test_every_endpoint_for_every_manage_key_role_in_both_accounts(self):
        """A manage key has exactly its role's permissions, without cookie or CSRF token,
        except on the routes that stay with people."""
        started = time.monotonic()
        cases = 0
        for route in self.session_routes():
            method, path, roles = route["method"], route["path"], route["roles"]
            row = ROWS.get((method, path))
            if row is None:
                with self.subTest(method=method, path=path):
                    self.fail(f"new endpoint without a row in the matrix: {method} {path}")
                continue
            people = route["interactive_only"]
            refusal = "interactive_only" if people else "forbidden"
            for account in ACCOUNTS:
                for role in KEY_ROLES:
                    key = self.key_clients[(account, role)]
                    allowed = role in roles and not people
                    with self.subTest(method=method, path=path, key_role=role, account=account,
                                      ids="own"):
                        self.check_own(method, path, row, account, role, allowed, key, refusal)
                    cases += 1
                    if "{id}" in path:
                        with self.subTest(method=method, path=path, key_role=role,
                                          account=account, ids="other account's"):
                            self.check_other(method, path, row, account, role, allowed, key,
                                             refusal)
                        cases += 1
        print(f"\nmanage keys: {cases} cases, {time.monotonic() - started:.1f}s", flush=True)

    def test_the_interactive_only_routes_are_the_documented_ones(self):
        listed = {(r["method"], r["path"]) for r in self.routes if r["interactive_only"]}
        self.assertEqual(listed, documented_interactive())
        self.assertTrue({("PUT", "/api/settings/sender-auth"),
                         ("POST", "/api/senders/{id}/verify")} <= listed, listed)
        for r in self.routes:
            if r["interactive_only"]:
                self.assertEqual(r["auth"], "session", r)

    def test_a_send_only_key_is_forbidden_on_every_management_route(self):
        client = KeyClient(self.gw.port, self.keys["acme"])  # made without scopes: mail.send
        for route in self.session_routes():
            method, path = route["method"], route["path"]
            row = ROWS.get((method, path)) or Row(200)
            oid = self.make(row.obj, "acme") if row.obj else None
            before = self.snapshot(row.obj, "acme", oid) if row.obj else None
            body = row.make_body(self, "acme")
            with self.subTest(method=method, path=path):
                r = client.request(method, self.url(path, oid, row), body)
                self.assertError(r, 403, "forbidden", f"{method} {path} with a send-only key")
                self.assertIn("manage", r.json["error"]["message"])
            if row.obj and method != "GET":
                self.assertEqual(self.snapshot(row.obj, "acme", oid), before,
                                 f"{method} {path} with a send-only key changed the {row.obj}")
            if row.created:
                self.assertFalse(self.listed(row, "acme", body),
                                 f"{method} {path} with a send-only key added it")

    def test_a_manage_only_key_is_forbidden_on_every_send_route(self):
        key = self.key_clients[("acme", "technical")].key
        anon = self.gw.client()
        before = self.admins["acme"].request("GET", "/api/stats").json
        for route in self.routes:
            if route["auth"] != "api_key":
                continue
            method, path = route["method"], route["path"]
            dialect = KEY_ROUTES.get((method, path))
            for headers in ({"Authorization": "Bearer " + key}, {"api_key": key}):
                with self.subTest(method=method, path=path, header=next(iter(headers))):
                    self.assertIsNotNone(dialect, f"{method} {path} has no row")
                    r = anon.request(method, path, message_body("acme"), headers=headers)
                    self.assertEqual(r.status, 403, r.raw)
                    if dialect == "sendgrid":
                        err, = r.json["errors"]
                        self.assertIsNone(err["help"], r.raw)
                    else:
                        self.assertEqual(r.json["status"], "error", r.raw)
                        err, = r.json["error"]
                    self.assertEqual(err["code"], "forbidden", r.raw)
                    self.assertIn("mail.send", err["message"])
        self.assertEqual(self.admins["acme"].request("GET", "/api/stats").json, before)

    def check_own(self, method, path, row, account, role, allowed, key=None,
                  refusal="forbidden"):
        """key: the KeyClient to call with instead of the role's user; refusal: the code
        the call is refused with when not allowed."""
        who = f"{method} {path} as {role}{' key' if key else ''} of {account}"
        oid = None
        if row.obj:
            oid = self.make(row.obj, account) if row.fresh else self.make_shared(row.obj, account)
        if row.prepare:
            row.prepare(self, account)
        before = self.snapshot(row.obj, account, oid) if row.obj and method != "GET" else None
        body = row.make_body(self, account)
        caller = key or self.caller(row, account, role)
        if row.tick:
            self.gw.advance_clock(2)
        r = caller.request(method, self.url(path, oid, row), body)
        if not allowed:
            self.assertError(r, 403, refusal, f"{who}: not allowed")
        else:
            self.assertNotIn(r.status, (401, 403), f"{who}: the role is allowed: {r.raw!r}")
            self.assertEqual(r.status, row.ok, f"{who}: {r.raw!r}")
        if row.obj and method != "GET":
            after = self.snapshot(row.obj, account, oid)
            if allowed:
                self.assertNotEqual(after, before, f"{who}: answered {r.status} but changed "
                                                   "nothing")
            else:
                self.assertEqual(after, before, f"{who}: refused but changed the {row.obj}")
        if row.created:
            self.assertEqual(self.listed(row, account, body), allowed,
                             f"{who}: {'not ' if allowed else ''}added")
            self.assertFalse(self.listed(row, OTHER[account], body),
                             f"{who}: added to {OTHER[account]}")
        if allowed and method == "GET":
            for needle in self.foreign[account]:
                self.assertNotIn(needle, r.raw, f"{who}: shows {OTHER[account]}'s {needle!r}")

    def make_shared(self, kind, account):
        if (kind, account) not in self.shared:
            self.shared[(kind, account)] = self.make(kind, account)
        return self.shared[(kind, account)]

    def check_other(self, method, path, row, account, role, allowed, key=None,
                    refusal="forbidden"):
        """Another account's id answers exactly like an id that exists nowhere: 404 for a
        role allowed on the route, 403 for one that is not; and changes nothing."""
        who = f"{method} {path} as {role}{' key' if key else ''} of {account} with " \
              f"{OTHER[account]}'s id"
        theirs = OTHER[account]
        oid = self.make(row.obj, theirs) if row.fresh else self.make_shared(row.obj, theirs)
        before = self.snapshot(row.obj, theirs, oid)
        caller = key or self.caller(row, account, role)
        body = row.make_body(self, account)
        absent = caller.request(method, self.url(path, MISSING[row.obj], row), body)
        if allowed:
            self.assertError(absent, 404, "not_found", f"{who}: a missing id")
        else:
            self.assertError(absent, 403, refusal, f"{who}: a missing id, not allowed")
        r = caller.request(method, self.url(path, oid, row), body)
        self.assertEqual(r.status, absent.status, f"{who}: {r.raw!r}")
        self.assertEqual(r.raw, absent.raw, f"{who}: answers unlike a missing id")
        if method != "GET":
            self.assertEqual(self.snapshot(row.obj, theirs, oid), before,
                             f"{who}: changed the other account's {row.obj}")

    # -- Without a session or key ----------------------------------------------------------

    def test_only_login_the_verify_pages_the_panel_and_health_answer_without_a_session(self):
        public = {(r["method"], r["path"]) for r in self.routes if r["auth"] == "none"}
        self.assertEqual(public, EXPECTED_PUBLIC)
        token = self.verify_token("acme")
        owner_token = self.owner_token("acme")
        anon = self.gw.client()
        calls = {
            ("POST", "/api/session"): ("/api/session", {"account": "acme",
                                                        "email": email("acme", "marketing"),
                                                        "password": PASSWORD}),
            ("GET", "/verify/{id}"): (f"/verify/{token}", None),
            ("POST", "/verify/{id}"): (f"/verify/{token}", None),
            ("GET", "/confirm/{id}"): (f"/confirm/{owner_token}", None),
            ("POST", "/confirm/{id}"): (f"/confirm/{owner_token}", None),
            ("GET", "/"): ("/", None),
            ("GET", "/{id}"): ("/app.js", None),
            ("GET", "/healthz"): ("/healthz", None),
            ("GET", "/readyz"): ("/readyz", None),
            ("GET", "/api/openapi.json"): ("/api/openapi.json", None),
        }
        for method, path in sorted(EXPECTED_PUBLIC):
            with self.subTest(method=method, path=path):
                url, body = calls[(method, path)]
                r = anon.request(method, url, body)
                self.assertNotEqual(r.status, 401, r.raw)
                self.assertEqual(r.status, 200, r.raw[:300])

    def verify_token(self, account):
        """A Verify All link's token, from the email that adding a sender sends."""
        address = self.make_address(account)
        outbox = os.path.join(self.gw.tmp, "outbox")

        def find():
            for name in glob.glob(os.path.join(glob.escape(outbox), "*")):
                with open(name, errors="replace") as f:
                    text = f.read()
                if address in text:
                    m = re.search(r"/verify/([A-Za-z0-9_-]{20,})", text)
                    if m:
                        return m.group(1)
            return None
        token = wait_until(find, timeout=20, interval=0.05)
        self.assertTrue(token, "no verification email in the outbox")
        return token

    def owner_token(self, account):
        """An owner's confirmation link's token, from the email that adding a sender sends
        to the address itself (the matrix's accounts are in mode both)."""
        address = self.unique(f"c{{}}@mail.{account}.test")
        r = self.admins[account].request("POST", "/api/senders", {"addresses": [address]})
        self.assertEqual(r.status, 201, r.raw)
        outbox = os.path.join(self.gw.tmp, "outbox")

        def find():
            for name in glob.glob(os.path.join(glob.escape(outbox), "*")):
                with open(name, errors="replace") as f:
                    text = f.read()
                m = re.search(r"/confirm/([A-Za-z0-9_-]{20,})", text)
                if address in text and m:
                    return m.group(1)
            return None
        token = wait_until(find, timeout=20, interval=0.05)
        self.assertTrue(token, "no confirmation email in the outbox")
        return token

    def make_address(self, account):
        address = self.unique(f"v{{}}@mail.{account}.test")
        r = self.admins[account].request("POST", "/api/senders", {"addresses": [address]})
        self.assertEqual(r.status, 201, r.raw)
        self.gw.advance_clock(61)
        r = self.admins[account].request("POST", "/api/senders/verification-email")
        self.assertEqual(r.status, 200, r.raw)
        return address

    def test_every_session_route_is_401_without_a_session(self):
        admin = self.admins["acme"]
        anon = self.gw.client()
        unknown = self.gw.client()
        tail = "AAAA" if not admin.cookie.endswith("AAAA") else "BBBB"
        unknown.cookie, unknown.csrf = admin.cookie[:-4] + tail, admin.csrf
        unknown_key = {"Authorization": "Bearer pst_" + "A" * 43}
        variants = (("no cookie", anon, {}, "not_authenticated"),
                    ("an unknown cookie", unknown, {}, "not_authenticated"),
                    ("an unknown Bearer key", anon, unknown_key, "invalid_api_key"),
                    ("a malformed Bearer key", anon, {"Authorization": "Bearer nope"},
                     "invalid_api_key"),
                    # A send key in the api_key header is no Bearer: no session at all.
                    ("an api_key header", anon, {"api_key": self.keys["acme"]},
                     "not_authenticated"))
        for route in self.session_routes():
            method, path = route["method"], route["path"]
            row = ROWS.get((method, path)) or Row(200)
            oid = self.make(row.obj, "acme") if row.obj else None
            before = self.snapshot(row.obj, "acme", oid) if row.obj else None
            body = row.make_body(self, "acme")
            for variant, client, headers, code in variants:
                with self.subTest(method=method, path=path, session=variant):
                    r = client.request(method, self.url(path, oid, row), body, headers=headers)
                    self.assertError(r, 401, code, f"{method} {path} with {variant}")
            if row.obj and method != "GET":
                self.assertEqual(self.snapshot(row.obj, "acme", oid), before,
                                 f"{method} {path} without a session changed the {row.obj}")
            if row.created:
                self.assertFalse(self.listed(row, "acme", body),
                                 f"{method} {path} without a session added it")

    def test_every_send_route_is_401_without_a_valid_key(self):
        admin = self.admins["acme"]
        variants = (
            ("no key", {}),
            ("a malformed key", {"Authorization": "Bearer nope"}),
            ("an unknown key", {"Authorization": "Bearer pst_" + "A" * 43}),
            ("an unknown api_key header", {"api_key": "pst_" + "A" * 43}),
            ("a session cookie instead of a key", {"Cookie": "postern_session=" + admin.cookie,
                                                   "X-CSRF-Token": admin.csrf}),
        )
        anon = self.gw.client()
        before = self.admins["acme"].request("GET", "/api/stats").json
        for route in self.routes:
            if route["auth"] != "api_key":
                continue
            method, path = route["method"], route["path"]
            dialect = KEY_ROUTES.get((method, path))
            for variant, headers in variants:
                with self.subTest(method=method, path=path, key=variant):
                    self.assertIsNotNone(dialect, f"new endpoint without a row in the matrix: "
                                                  f"{method} {path}")
                    r = anon.request(method, path, message_body("acme"), headers=headers)
                    self.assertKeyRefused(r, dialect, f"{method} {path} with {variant}")
        self.assertEqual(self.admins["acme"].request("GET", "/api/stats").json, before)

    # -- CSRF, logout, revoked keys ------------------------------------------------------

    def test_csrf_is_enforced_on_every_state_changing_cookie_request(self):
        other_token = self.admins["globex"].csrf  # never the caller's: callers are acme's
        for route in self.session_routes():
            method, path = route["method"], route["path"]
            if method in ("GET", "HEAD"):
                continue
            with self.subTest(method=method, path=path):
                row = ROWS.get((method, path))
                self.assertIsNotNone(row, f"new endpoint without a row in the matrix: "
                                          f"{method} {path}")
                role = next(r for r in ROLES if r in route["roles"])
                caller = self.caller(row, "acme", role)
                oid = None
                if row.obj:
                    oid = self.make(row.obj, "acme") if row.fresh else \
                        self.make_shared(row.obj, "acme")
                if row.prepare:
                    row.prepare(self, "acme")
                before = self.snapshot(row.obj, "acme", oid) if row.obj else None
                body = row.make_body(self, "acme")
                url = self.url(path, oid, row)
                wrong = "A" * len(caller.csrf) if caller.csrf != "A" * len(caller.csrf) else "B"
                for variant, headers in (("no X-CSRF-Token", {}),
                                         ("a wrong X-CSRF-Token", {"X-CSRF-Token": wrong}),
                                         ("another session's X-CSRF-Token",
                                          {"X-CSRF-Token": other_token})):
                    r = caller.request(method, url, body, headers=headers, csrf=False)
                    self.assertError(r, 403, "csrf_failed", f"{method} {path} as {role} with "
                                                            f"{variant}")
                if row.obj:
                    self.assertEqual(self.snapshot(row.obj, "acme", oid), before,
                                     f"{method} {path} refused for CSRF but changed it")
                if row.created:
                    self.assertFalse(self.listed(row, "acme", body),
                                     f"{method} {path} refused for CSRF but added it")
                # Still logged in, with the same password: nothing happened.
                self.assertEqual(caller.request("GET", "/api/session").status, 200,
                                 f"{method} {path} refused for CSRF but ended the session")
                # The very same request with the token goes through.
                r = caller.request(method, url, body)
                self.assertEqual(r.status, row.ok, f"{method} {path} with the token: {r.raw!r}")

    def test_logout_ends_the_session_on_the_server(self):
        c = self.caller(Row(200, caller="fresh"), "acme", "technical")
        cookie, csrf = c.cookie, c.csrf
        self.assertEqual(c.request("GET", "/api/session").status, 200)
        r = c.request("DELETE", "/api/session")
        self.assertEqual(r.status, 204, r.raw)
        self.assertIn("Max-Age=0", r.header("Set-Cookie") or "")
        replay = Client(self.gw.port)
        replay.cookie, replay.csrf = cookie, csrf
        for method, path, body in (("GET", "/api/session", None), ("GET", "/api/senders", None),
                                   ("GET", "/api/keys", None),
                                   ("POST", "/api/keys", {"name": "after.acme.test"}),
                                   ("DELETE", "/api/session", None)):
            with self.subTest(replay=f"{method} {path}"):
                self.assertError(replay.request(method, path, body), 401, "not_authenticated",
                                 f"the logged-out cookie replayed on {method} {path}")
        self.assertNotIn(b"after.acme.test", self.admins["acme"].request("GET", "/api/keys").raw)

    def test_a_revoked_key_is_refused_on_the_next_request(self):
        admin = self.admins["acme"]
        made = admin.request("POST", "/api/keys", {"name": "revoked.acme.test"})
        self.assertEqual(made.status, 201, made.raw)
        key = made.json["key"]
        anon = self.gw.client()
        r = anon.request("POST", "/v5/mail/send", message_body("acme"),
                         headers={"Authorization": "Bearer " + key})
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["status"], "success", r.raw)

        r = admin.request("DELETE", f"/api/keys/{made.json['id']}")
        self.assertEqual(r.status, 204, r.raw)
        for (method, path), dialect in sorted(KEY_ROUTES.items()):
            for headers in ({"Authorization": "Bearer " + key}, {"api_key": key}):
                with self.subTest(path=path, header=next(iter(headers))):
                    r = anon.request(method, path, message_body("acme"), headers=headers)
                    self.assertKeyRefused(r, dialect, f"{path} with the revoked key")
        # The account's other key still works.
        r = anon.request("POST", "/v5/mail/send", message_body("acme"),
                         headers={"Authorization": "Bearer " + self.keys["acme"]})
        self.assertEqual(r.status, 200, r.raw)

    def test_a_revoked_manage_key_is_refused_on_the_next_request(self):
        admin = self.admins["acme"]
        made = self.gw.scoped_key(admin, "revoked.manage.acme.test", ("manage",), "technical")
        key = KeyClient(self.gw.port, made["key"])
        self.assertEqual(key.request("GET", "/api/senders").status, 200)
        r = admin.request("DELETE", f"/api/keys/{made['id']}")
        self.assertEqual(r.status, 204, r.raw)
        for method, path, body in (("GET", "/api/senders", None),
                                   ("POST", "/api/domains", {"domain": "revoked.acme.test"}),
                                   ("GET", "/api/session", None)):
            with self.subTest(method=method, path=path):
                self.assertError(key.request(method, path, body), 401, "invalid_api_key",
                                 f"the revoked key on {method} {path}")
        self.assertNotIn(b"revoked.acme.test", admin.request("GET", "/api/domains").raw)


if __name__ == "__main__":
    main()
