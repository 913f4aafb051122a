"""Users (GET/POST /api/users, PATCH/DELETE /api/users/{id}) and API keys (GET/POST
/api/keys, DELETE /api/keys/{id}) over real HTTP: who may manage them, what the answers
hold (a key's SMTP networks too), the last-Admin rule, account isolation, and a revoked key
refused by the send API."""
from harness import PASSWORD, ROLE_EMAILS, RolesCase, audit_events, last_audit_id, main

ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
KEY_RE = r"^pst_[A-Za-z0-9_-]{43}$"


class RoleCase(RolesCase):
    """The four roles of acme, and globex with an Analytics user."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.globex = cls.gw.logged_in("admin@globex.test")
        cls.serial = 0

    @classmethod
    def more_setup(cls):
        cls.gw.add_account("globex", "admin@globex.test")
        cls.gw.add_user("globex", "ana@globex.test", "analytics")

    def next_serial(self):
        type(self).serial += 1
        return type(self).serial

    def check_matrix(self, endpoints, matrix):
        """Runs every (role, endpoint) of matrix; each endpoint method returns
        (method, path, body, check) and check(allowed, response) asserts the effect."""
        self.assertEqual(set(matrix), set(ROLE_EMAILS))
        for role, row in matrix.items():
            self.assertEqual(len(row), len(endpoints))
            for endpoint, expected in zip(endpoints, row):
                with self.subTest(role=role, endpoint=endpoint, expected=expected):
                    method, path, body, check = getattr(self, endpoint)(role)
                    since = last_audit_id(self.admin)
                    r = self.clients[role].request(method, path, body)
                    self.assertEqual(r.status, expected, r.raw)
                    denials = [e for e in audit_events(self.admin)
                               if e["id"] > since and e["action"] == "permission.denied"]
                    if expected == 403:
                        self.assertError(r, 403, "forbidden")
                        self.assertOneDenial(denials, role, method, path)
                    else:
                        self.assertEqual(denials, [])
                    check(expected != 403, r)


# Who may manage users: Admins only. Columns are the endpoints, in order.
USER_ENDPOINTS = ("list_users", "add_user", "change_role", "remove_user")
USER_MATRIX = {
    #             list add  patch delete
    "admin":     (200, 201, 200,  204),
    "technical": (403, 403, 403,  403),
    "analytics": (403, 403, 403,  403),
    "marketing": (403, 403, 403,  403),
}


class UsersTest(RoleCase):
    @classmethod
    def more_setup(cls):
        super().more_setup()
        cls.gw.add_account("initech", "boss@initech.test")  # only the last-Admin test

    def users(self, client=None):
        r = (client or self.admin).request("GET", "/api/users")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(set(r.json), {"users"})
        return {u["email"]: u for u in r.json["users"]}

    def create(self, email, role="marketing", password=PASSWORD, client=None):
        r = (client or self.admin).request("POST", "/api/users",
                                           {"email": email, "role": role, "password": password})
        self.assertEqual(r.status, 201, r.raw)
        return r.json

    # The matrix endpoints; fresh users for every case that changes one.
    def list_users(self, role):
        def check(ok, r):  # a denied caller sees no list
            self.assertEqual(ROLE_EMAILS["admin"] in {u["email"] for u in r.json.get("users", [])},
                             ok)
        return "GET", "/api/users", None, check

    def add_user(self, role):
        email = f"added{self.next_serial()}@acme.test"

        def check(ok, r):
            self.assertEqual(email in self.users(), ok)
        return "POST", "/api/users", {"email": email, "role": "analytics",
                                      "password": PASSWORD}, check

    def change_role(self, role):
        u = self.create(f"patched{self.next_serial()}@acme.test", "marketing")

        def check(ok, r):
            self.assertEqual(self.users()[u["email"]]["role"], "technical" if ok else "marketing")
        return "PATCH", f"/api/users/{u['id']}", {"role": "technical"}, check

    def remove_user(self, role):
        u = self.create(f"removed{self.next_serial()}@acme.test", "marketing")

        def check(ok, r):
            self.assertEqual(u["email"] in self.users(), not ok)
        return "DELETE", f"/api/users/{u['id']}", None, check

    def test_only_admins_manage_users(self):
        self.check_matrix(USER_ENDPOINTS, USER_MATRIX)

    def test_the_list_shows_this_accounts_users_with_their_roles(self):
        users = self.users()
        for role, email in ROLE_EMAILS.items():
            self.assertEqual(users[email]["role"], role)
        for u in users.values():
            self.assertEqual(set(u), {"id", "email", "role", "created_at"})
            self.assertIsInstance(u["id"], int)
            self.assertRegex(u["created_at"], ISO)
        self.assertEqual(users[ROLE_EMAILS["technical"]]["id"], self.clients["technical"].user_id)
        self.assertFalse([e for e in users if e.endswith("globex.test")])
        self.assertFalse([e for e in users if e.endswith("initech.test")])

    def test_a_created_user_can_log_in_with_its_password(self):
        r = self.admin.request("POST", "/api/users", {"email": "New.Person@Acme.TEST",
                                                      "role": "analytics",
                                                      "password": "pass1234"})  # 8: the minimum
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(set(r.json), {"id", "email", "role", "created_at"})
        self.assertEqual(r.json["email"], "new.person@acme.test")
        self.assertEqual(r.json["role"], "analytics")
        self.assertRegex(r.json["created_at"], ISO)
        self.assertEqual(self.users()["new.person@acme.test"], r.json)

        c = self.gw.client()
        login = c.login("new.person@acme.test", "pass1234")
        self.assertEqual(login.status, 200, login.raw)
        self.assertEqual(login.json["user"]["id"], r.json["id"])
        self.assertEqual(login.json["user"]["role"], "analytics")
        self.assertEqual(login.json["account"]["name"], "acme")
        self.assertEqual(c.request("GET", "/api/senders").status, 200)
        self.assertError(c.request("GET", "/api/users"), 403, "forbidden")
        wrong = self.gw.client().login("new.person@acme.test", PASSWORD)
        self.assertError(wrong, 401, "invalid_credentials")

    def test_invalid_fields_are_400_and_name_the_field(self):
        good = {"email": "valid@acme.test", "role": "technical", "password": PASSWORD}
        cases = [
            ({"email": None}, "email"), ({"email": "not-an-address"}, "email"),
            ({"email": "a@b"}, "email"), ({"email": 7}, "email"), ({"email": ""}, "email"),
            ({"role": "owner"}, "role"), ({"role": None}, "role"), ({"role": ""}, "role"),
            ({"role": 1}, "role"),
            ({"password": "1234567"}, "password"), ({"password": ""}, "password"),
            ({"password": None}, "password"), ({"password": 12345678}, "password"),
        ]
        for change, field in cases:
            body = {k: v for k, v in {**good, **change}.items() if v is not None}
            with self.subTest(body=body):
                r = self.admin.request("POST", "/api/users", body)
                self.assertError(r, 400, "invalid_request", field)
        self.assertNotIn("valid@acme.test", self.users())

    def test_a_duplicate_email_is_409(self):
        before = self.users()
        for email in (ROLE_EMAILS["technical"], "TECH@Acme.Test"):
            with self.subTest(email=email):
                r = self.admin.request("POST", "/api/users", {"email": email, "role": "admin",
                                                              "password": "another password"})
                self.assertError(r, 409, "already_exists")
        self.assertEqual(self.users(), before)
        # The existing user keeps its role and its password.
        self.assertEqual(self.users()[ROLE_EMAILS["technical"]]["role"], "technical")

    def test_an_email_used_in_another_account_is_added_without_revealing_it(self):
        # globex's Admin adds an email acme has: no 409 that would tell them it exists
        # elsewhere, and acme's user keeps their own login.
        theirs = "globex's own password"
        r = self.globex.request("POST", "/api/users", {"email": "Ana@Acme.test",
                                                       "role": "marketing", "password": theirs})
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(r.json["email"], "ana@acme.test")
        self.assertEqual(self.users(self.globex)["ana@acme.test"]["role"], "marketing")
        self.assertEqual(self.users()["ana@acme.test"]["role"], "analytics")

        # Each logs in to their own account with their own password, and only there.
        ours = self.gw.client().login("ana@acme.test")
        self.assertEqual(ours.status, 200, ours.raw)
        self.assertEqual((ours.json["account"]["name"], ours.json["user"]["id"]),
                         ("acme", self.clients["analytics"].user_id))
        other = self.gw.client().login("ana@acme.test", theirs, account="globex")
        self.assertEqual(other.status, 200, other.raw)
        self.assertEqual((other.json["account"]["name"], other.json["user"]["role"]),
                         ("globex", "marketing"))
        self.assertEqual(other.json["user"]["id"], r.json["id"])
        self.assertError(self.gw.client().login("ana@acme.test", theirs), 401,
                         "invalid_credentials")
        self.assertError(self.gw.client().login("ana@acme.test", account="globex"), 401,
                         "invalid_credentials")
        self.assertEqual(self.clients["analytics"].request("GET", "/api/session").status, 200)

        # Within globex the email is now taken.
        r = self.globex.request("POST", "/api/users", {"email": "ANA@acme.test",
                                                       "role": "admin", "password": PASSWORD})
        self.assertError(r, 409, "already_exists", "email")

    def test_a_role_change_applies_to_the_users_open_session(self):
        u = self.create("mover@acme.test", "marketing")
        mover = self.gw.logged_in("mover@acme.test")
        self.assertError(mover.request("GET", "/api/keys"), 403, "forbidden")

        for body, field in (({"role": "owner"}, "role"), ({}, "role"), ({"role": 3}, "role")):
            r = self.admin.request("PATCH", f"/api/users/{u['id']}", body)
            self.assertError(r, 400, "invalid_request", field)
        self.assertEqual(self.users()["mover@acme.test"]["role"], "marketing")

        r = self.admin.request("PATCH", f"/api/users/{u['id']}", {"role": "technical"})
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["id"], u["id"])
        self.assertEqual(r.json["email"], "mover@acme.test")
        self.assertEqual(r.json["role"], "technical")
        self.assertEqual(self.users()["mover@acme.test"]["role"], "technical")
        self.assertEqual(mover.request("GET", "/api/keys").status, 200)

    def test_a_deleted_users_session_stops_working(self):
        u = self.create("leaver@acme.test", "technical")
        leaver = self.gw.logged_in("leaver@acme.test")
        self.assertEqual(leaver.request("GET", "/api/session").status, 200)

        r = self.admin.request("DELETE", f"/api/users/{u['id']}")
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(r.raw, b"")
        self.assertError(leaver.request("GET", "/api/session"), 401, "not_authenticated")
        self.assertError(leaver.request("GET", "/api/senders"), 401, "not_authenticated")
        self.assertError(leaver.request("POST", "/api/keys", {"name": "after"}), 401,
                         "not_authenticated")
        self.assertError(self.gw.client().login("leaver@acme.test"), 401,
                         "invalid_credentials")
        self.assertNotIn("leaver@acme.test", self.users())
        self.assertError(self.admin.request("DELETE", f"/api/users/{u['id']}"), 404,
                         "not_found")
        self.assertError(self.admin.request("PATCH", f"/api/users/{u['id']}",
                                            {"role": "admin"}), 404, "not_found")

    def test_the_last_admin_can_be_neither_demoted_nor_removed(self):
        boss = self.gw.logged_in("boss@initech.test")
        me = f"/api/users/{boss.user_id}"
        self.assertError(boss.request("PATCH", me, {"role": "technical"}), 409, "last_admin")
        self.assertError(boss.request("DELETE", me), 409, "last_admin")
        self.assertEqual(boss.request("PATCH", me, {"role": "admin"}).status, 200)
        self.assertEqual(self.users(boss)["boss@initech.test"]["role"], "admin")

        # With a second Admin, the first may step down.
        second = self.create("boss2@initech.test", "admin", client=boss)
        r = boss.request("PATCH", me, {"role": "technical"})
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["role"], "technical")
        self.assertError(boss.request("GET", "/api/users"), 403, "forbidden")

        # Now the second is the last one; it may restore and then remove the first.
        boss2 = self.gw.logged_in("boss2@initech.test")
        mine = f"/api/users/{second['id']}"
        self.assertError(boss2.request("DELETE", mine), 409, "last_admin")
        self.assertError(boss2.request("PATCH", mine, {"role": "marketing"}), 409, "last_admin")
        self.assertEqual(boss2.request("PATCH", me, {"role": "admin"}).status, 200)
        r = boss2.request("DELETE", me)
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual({e: u["role"] for e, u in self.users(boss2).items()},
                         {"boss2@initech.test": "admin"})
        self.assertError(boss.request("GET", "/api/session"), 401, "not_authenticated")

    def test_another_accounts_user_ids_answer_exactly_like_missing_ids(self):
        theirs = self.users(self.globex)["ana@globex.test"]
        missing = 10 ** 9
        for method, body in (("PATCH", {"role": "admin"}), ("DELETE", None)):
            absent = self.admin.request(method, f"/api/users/{missing}", body)
            self.assertError(absent, 404, "not_found")
            with self.subTest(method=method, id="other account"):
                r = self.admin.request(method, f"/api/users/{theirs['id']}", body)
                self.assertEqual(r.status, 404, r.raw)
                self.assertEqual(r.raw, absent.raw)
            for bad in ("abc", "0", "-1", "1x", "99999999999999999999999"):
                with self.subTest(method=method, id=bad):
                    r = self.admin.request(method, f"/api/users/{bad}", body)
                    self.assertError(r, 404, "not_found")
        self.assertEqual(self.users(self.globex)["ana@globex.test"], theirs)
        self.assertEqual(self.gw.client().login("ana@globex.test").status, 200)


# Who may manage API keys: Admins and Technical users. Columns are the endpoints.
KEY_ENDPOINTS = ("list_keys", "create_key", "revoke_key")
KEY_MATRIX = {
    #             list create revoke
    "admin":     (200, 201,   204),
    "technical": (200, 201,   204),
    "analytics": (403, 403,   403),
    "marketing": (403, 403,   403),
}


class KeysTest(RoleCase):
    def keys(self, client=None):
        r = (client or self.admin).request("GET", "/api/keys")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(set(r.json), {"keys"})
        return {k["id"]: k for k in r.json["keys"]}

    def create(self, name, client=None):
        r = (client or self.admin).request("POST", "/api/keys", {"name": name})
        self.assertEqual(r.status, 201, r.raw)
        return r.json

    def send(self, key, body=None, header="Authorization"):
        value = "Bearer " + key if header == "Authorization" else key
        return self.gw.client().request("POST", "/v5/mail/send",
                                        {} if body is None else body, headers={header: value})

    def assertKeyAccepted(self, key):
        # A valid key with a body that is not a message: the key passed, the body did not.
        r = self.send(key)
        self.assertEqual(r.status, 400, r.raw)
        self.assertEqual(r.json["status"], "error")
        self.assertEqual(r.json["error"][0]["code"], "invalid_request")

    def assertKeyRefused(self, key, header="Authorization"):
        r = self.send(key, header=header)
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.json["status"], "error")
        self.assertEqual(len(r.json["error"]), 1)
        self.assertEqual(r.json["error"][0]["code"], "invalid_api_key")
        self.assertTrue(r.json["error"][0]["message"])

    # The matrix endpoints; a fresh key for every revocation.
    def list_keys(self, role):
        def check(ok, r):  # a denied caller sees no list
            self.assertEqual("keys" in r.json, ok)
        return "GET", "/api/keys", None, check

    def create_key(self, role):
        name = f"{role} key {self.next_serial()}"

        def check(ok, r):
            self.assertEqual(name in {k["name"] for k in self.keys().values()}, ok)
        return "POST", "/api/keys", {"name": name}, check

    def revoke_key(self, role):
        k = self.create(f"to revoke {self.next_serial()}")

        def check(ok, r):
            self.assertEqual(k["id"] in self.keys(), not ok)
            if ok:
                self.assertKeyRefused(k["key"])
            else:
                self.assertKeyAccepted(k["key"])
        return "DELETE", f"/api/keys/{k['id']}", None, check

    def test_only_admins_and_technical_users_manage_keys(self):
        self.check_matrix(KEY_ENDPOINTS, KEY_MATRIX)

    def test_a_new_key_is_shown_once_and_only_its_prefix_is_kept(self):
        made = self.create("ci deploy", client=self.clients["technical"])
        scope = {"smtp_ips", "senders", "domains", "allowed_ips", "scopes", "role"}
        self.assertEqual(set(made), {"id", "name", "prefix", "key", "created_at",
                                     "last_used_at"} | scope)
        self.assertEqual(made["smtp_ips"], [])
        key = made["key"]
        self.assertTrue(key.startswith("pst_"))
        self.assertRegex(key, KEY_RE)
        self.assertEqual(made["prefix"], key[:12])
        self.assertEqual(made["name"], "ci deploy")

        r = self.admin.request("GET", "/api/keys")
        listed = {k["id"]: k for k in r.json["keys"]}[made["id"]]
        self.assertEqual(set(listed),
                         {"id", "name", "prefix", "created_at", "last_used_at"} | scope)
        self.assertEqual(listed["name"], "ci deploy")
        self.assertEqual(listed["smtp_ips"], [])
        self.assertEqual(listed["prefix"], key[:12])
        self.assertRegex(listed["created_at"], ISO)
        self.assertIsNone(listed["last_used_at"])
        secret = key[12:]
        self.assertNotIn(secret, r.raw.decode())
        self.assertNotIn(secret, self.clients["technical"].request("GET", "/api/keys").raw
                         .decode())

        self.assertKeyAccepted(key)
        self.assertRegex(self.keys()[made["id"]]["last_used_at"], ISO)
        self.assertNotIn(secret.encode(), self.gw.dump())
        self.assertNotIn(secret, self.gw.read_log())
        self.assertNotIn(secret, repr(audit_events(self.admin)))

    def test_a_key_needs_a_name(self):
        before = self.keys()
        for body in ({}, {"name": ""}, {"name": 5}, {"name": None}):
            with self.subTest(body=body):
                r = self.admin.request("POST", "/api/keys", body)
                self.assertError(r, 400, "invalid_request", "name")
        self.assertEqual(self.keys(), before)

    def test_a_key_lists_the_networks_it_may_send_from_over_smtp(self):
        r = self.clients["technical"].request("POST", "/api/keys", {
            "name": "printer", "smtp_ips": ["127.0.0.1/32", "10.0.0.0/8", "::1",
                                            "192.168.1.7", "2001:DB8::/32"]})
        self.assertEqual(r.status, 201, r.raw)
        # Kept and shown in one spelling: a bare address is its /32 or /128.
        spelled = ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.168.1.7/32", "2001:db8::/32"]
        self.assertEqual(r.json["smtp_ips"], spelled)
        self.assertEqual(self.keys()[r.json["id"]]["smtp_ips"], spelled)
        created = [e for e in audit_events(self.admin)
                   if e["action"] == "key.created" and e["target"] == r.json["prefix"]]
        self.assertEqual(len(created), 1)
        self.assertTrue(created[0]["detail"].endswith(
            "name=printer smtp_ips=" + ",".join(spelled)), created)
        # No networks, or an explicit empty list: a key for AUTH and HTTP only.
        for body in ({"name": "plain"}, {"name": "plain", "smtp_ips": []},
                     {"name": "plain", "smtp_ips": None}):
            with self.subTest(body=body):
                made = self.admin.request("POST", "/api/keys", body)
                self.assertEqual(made.status, 201, made.raw)
                self.assertEqual(made.json["smtp_ips"], [])

    def test_networks_are_checked_entry_by_entry(self):
        before = self.keys()
        cases = [
            ("10.0.0.0/8", "smtp_ips"),
            ({"a": 1}, "smtp_ips"),
            (["10.0.0.0/33"], "smtp_ips[0]"),
            (["127.0.0.1", "printer.local"], "smtp_ips[1]"),
            (["::1", "10.0.0.0/8", "10.0.0.0/8, 10.1.0.0/16"], "smtp_ips[2]"),
            (["1.2.3"], "smtp_ips[0]"),
            (["::1/129"], "smtp_ips[0]"),
            (["1.2.3.4/"], "smtp_ips[0]"),
            ([""], "smtp_ips[0]"),
            ([7], "smtp_ips[0]"),
            ([None], "smtp_ips[0]"),
            ([f"10.0.{i}.0/24" for i in range(33)], "smtp_ips[32]"),
            (["0.0.0.0/0"], "smtp_ips[0]"),
            (["::1", "::/0"], "smtp_ips[1]"),
            (["10.0.0.0/7"], "smtp_ips[0]"),
            (["2001::/15"], "smtp_ips[0]"),
        ]
        for smtp_ips, field in cases:
            with self.subTest(smtp_ips=smtp_ips):
                r = self.admin.request("POST", "/api/keys",
                                       {"name": "bad networks", "smtp_ips": smtp_ips})
                self.assertError(r, 400, "invalid_request", field)
        r = self.admin.request("POST", "/api/keys",
                               {"name": "bad", "smtp_ips": ["10.0.0.0/8", "10.0.0.0/33"]})
        self.assertIn("10.0.0.0/8", r.json["error"]["message"])  # the form, with an example
        # Too wide: the message says why (anyone in it would send without AUTH).
        r = self.admin.request("POST", "/api/keys", {"name": "bad", "smtp_ips": ["0.0.0.0/0"]})
        self.assertError(r, 400, "invalid_request", "smtp_ips[0]")
        self.assertIn("/8", r.json["error"]["message"])
        self.assertIn("without AUTH", r.json["error"]["message"])
        self.assertEqual(self.keys(), before)
        # The widest allowed are kept.
        r = self.admin.request("POST", "/api/keys", {"name": "widest",
                                                     "smtp_ips": ["10.0.0.0/8", "2001::/16"]})
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(r.json["smtp_ips"], ["10.0.0.0/8", "2001::/16"])

    def test_networks_are_managed_by_the_roles_that_manage_keys(self):
        body = {"name": "net key", "smtp_ips": ["127.0.0.1"]}
        for role, status in (("admin", 201), ("technical", 201), ("analytics", 403),
                             ("marketing", 403)):
            with self.subTest(role=role):
                r = self.clients[role].request("POST", "/api/keys", body)
                self.assertEqual(r.status, status, r.raw)

    def test_a_revoked_key_is_refused_from_the_next_request(self):
        self.assertKeyRefused("pst_" + "A" * 43)  # a well-formed key that does not exist
        made = self.create("to be revoked")
        key = made["key"]
        self.assertKeyAccepted(key)
        r = self.send(key, header="api_key")
        self.assertEqual(r.status, 400, r.raw)

        r = self.admin.request("DELETE", f"/api/keys/{made['id']}")
        self.assertEqual(r.status, 204, r.raw)
        self.assertEqual(r.raw, b"")
        self.assertKeyRefused(key)
        self.assertKeyRefused(key, header="api_key")
        self.assertNotIn(made["id"], self.keys())
        self.assertError(self.admin.request("DELETE", f"/api/keys/{made['id']}"), 404,
                         "not_found")

    def test_another_accounts_key_ids_answer_exactly_like_missing_ids(self):
        theirs = self.create("globex key", client=self.globex)
        absent = self.admin.request("DELETE", f"/api/keys/{10 ** 9}")
        self.assertError(absent, 404, "not_found")
        r = self.admin.request("DELETE", f"/api/keys/{theirs['id']}")
        self.assertEqual(r.status, 404, r.raw)
        self.assertEqual(r.raw, absent.raw)
        for bad in ("abc", "0", "-1", "1x", "99999999999999999999999"):
            with self.subTest(id=bad):
                self.assertError(self.admin.request("DELETE", f"/api/keys/{bad}"), 404,
                                 "not_found")
        self.assertNotIn(theirs["id"], self.keys())
        self.assertIn(theirs["id"], self.keys(self.globex))
        self.assertKeyAccepted(theirs["key"])


if __name__ == "__main__":
    main()
