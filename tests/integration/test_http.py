"""The HTTP surface over real sockets: error shape, 404/405/413, malformed JSON, the
per-request log line."""
import signal
import socket
import time
import unittest

from harness import Gateway, main, raw_http

MIB = 1024 * 1024


class GatewayCase(unittest.TestCase):
    """One gateway for the class."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init().start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()


class HttpTest(GatewayCase):
    def assertError(self, r, status, code):
        self.assertEqual(r.status, status, r.raw)
        self.assertEqual(r.header("Content-Type"), "application/json")
        err = r.json["error"]
        self.assertEqual(err["code"], code)
        self.assertTrue(err["message"])
        return err

    def test_unknown_route_is_404_not_found_without_field(self):
        c = self.gw.client()
        for path in ("/api/nothing", "/api/session/extra", "/a/b/c"):
            err = self.assertError(c.request("GET", path), 404, "not_found")
            self.assertNotIn("field", err)

    def test_the_panel_is_served_with_a_strict_policy(self):
        c = self.gw.client()
        r = c.request("GET", "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertIn("default-src 'self'", r.header("Content-Security-Policy"))
        self.assertIn("frame-ancestors 'none'", r.header("Content-Security-Policy"))
        self.assertEqual(r.header("X-Frame-Options"), "DENY")
        self.assertEqual(r.header("Referrer-Policy"), "no-referrer")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        self.assertNotIn("unsafe-inline", r.header("Content-Security-Policy"))
        for path in ("/nothing.js", "/..", "/.hidden.html", "/%2e%2e%2fCMakeLists.txt",
                     "/index.exe"):
            r = c.request("GET", path)
            self.assertEqual(r.status, 404, path)
            self.assertIn("not_found", r.raw.decode())

    def test_the_api_description_is_served_as_the_document_says(self):
        import json
        import os

        import yaml
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                               "openapi.yaml"), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        r = self.gw.client().request("GET", "/api/openapi.json")
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(json.loads(r.raw), doc)
        self.assertEqual(doc["openapi"], "3.1.0")

    def test_wrong_method_is_405_with_allow(self):
        r = self.gw.client().request("PUT", "/api/session", {})
        self.assertError(r, 405, "method_not_allowed")
        allow = {m.strip() for m in r.header("Allow").split(",")}
        self.assertEqual(allow, {"GET", "POST", "DELETE"})
        self.assertError(self.gw.client().request("POST", "/api/audit", {}), 405,
                         "method_not_allowed")

    def test_malformed_json_is_400_invalid_json(self):
        c = self.gw.client()
        for raw in ('{"email": ', "not json", '{"email":"a@b.c",}'):
            self.assertError(c.request("POST", "/api/session", raw=raw), 400, "invalid_json")

    def test_json_that_is_not_an_object_is_400_invalid_request(self):
        r = self.gw.client().request("POST", "/api/session", raw="[1, 2]")
        self.assertError(r, 400, "invalid_request")
        r = self.gw.client().request("POST", "/api/session", {"email": 5, "password": "x"})
        self.assertEqual(self.assertError(r, 400, "invalid_request")["field"], "email")

    def test_body_over_10_mib_is_413_before_it_is_read(self):
        head = ("POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {10 * MIB + 1}\r\n\r\n").encode()
        answer = raw_http(self.gw.port, head)
        self.assertRegex(answer, r"^HTTP/1\.1 413 ")
        self.assertIn('"code":"payload_too_large"', answer)

    def test_chunked_body_over_10_mib_is_refused(self):
        head = ("POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunk = b"%x\r\n%s\r\n" % (MIB, b" " * MIB)
        answer = raw_http(self.gw.port, head + chunk * 11 + b"0\r\n\r\n")
        self.assertNotRegex(answer, r"^HTTP/1\.1 [23]")

    def test_body_of_exactly_10_mib_is_accepted_and_parsed(self):
        body = '{"account":"acme","email":"nobody@acme.test","password":"wrong password"}'
        body += " " * (10 * MIB - len(body))
        r = self.gw.client().request("POST", "/api/session", raw=body)
        self.assertError(r, 401, "invalid_credentials")

    def test_every_request_is_logged_once_with_id_status_and_duration(self):
        r = self.gw.client().request("GET", "/api/logged-path")
        rid = r.header("X-Request-Id")
        self.assertRegex(rid, r"^[0-9a-f]{16}$")
        lines = self.gw.log_lines(f"req={rid}")
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info req=[0-9a-f]{16} "
                                   r"GET /api/logged-path 404 \d+\.\dms account=0 ip=127\.0\.0\.1$")

    def test_query_string_is_not_logged(self):
        r = self.gw.client().request("GET", "/api/session?token=do-not-log-me")
        self.assertEqual(len(self.gw.log_lines("req=" + r.header("X-Request-Id"))), 1)
        self.assertNotIn("do-not-log-me", self.gw.read_log())


LOGIN = b'{"account":"acme","email":"nobody@acme.test","password":"wrong password"}'


def login_request(*headers, body=LOGIN):
    head = b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def chunked(body):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


class FramingTest(GatewayCase):
    """A load balancer in front and libmicrohttpd must agree where a request ends, or a
    second request can be smuggled inside the first: every ambiguous framing is a 400
    malformed_request that closes the connection, before any of the body is used."""

    def assertMalformed(self, data):
        answer = raw_http(self.gw.port, data)
        self.assertRegex(answer, r"^HTTP/1\.1 400 ", answer)
        self.assertIn('"code":"malformed_request"', answer)
        self.assertRegex(answer, r"(?i)\r\nConnection: close\r\n")

    def test_two_different_content_lengths_are_refused(self):
        self.assertMalformed(login_request(b"Content-Length: %d" % len(LOGIN),
                                           b"Content-Length: 5"))
        self.assertMalformed(login_request(b"Content-Length: 5",
                                           b"Content-Length: %d" % len(LOGIN)))

    def test_a_space_before_the_colon_is_refused(self):
        self.assertMalformed(login_request(b"Transfer-Encoding : chunked",
                                           b"Content-Length: %d" % len(LOGIN)))
        self.assertMalformed(login_request(b"Transfer-Encoding : chunked", body=chunked(LOGIN)))

    def test_content_length_with_transfer_encoding_is_refused(self):
        self.assertMalformed(login_request(b"Transfer-Encoding: chunked", b"Content-Length: 4",
                                           body=chunked(LOGIN)))

    def test_transfer_encodings_other_than_chunked_are_refused(self):
        for te in (b"gzip, chunked", b"identity", b"chunked, chunked"):
            self.assertMalformed(login_request(b"Transfer-Encoding: " + te, body=chunked(LOGIN)))

    def test_a_content_length_that_is_not_a_number_is_refused(self):
        answer = raw_http(self.gw.port, login_request(b"Content-Length: +%d" % len(LOGIN)))
        self.assertRegex(answer, r"^HTTP/1\.1 400 ", answer)

    def test_sound_framings_still_work(self):
        for data in (login_request(b"Content-Length: %d" % len(LOGIN)),
                     login_request(b"Transfer-Encoding: chunked", body=chunked(LOGIN))):
            answer = raw_http(self.gw.port, data)
            self.assertRegex(answer, r"^HTTP/1\.1 401 ", answer)
            self.assertIn('"code":"invalid_credentials"', answer)


class LogInjectionTest(unittest.TestCase):
    """Whatever a client puts in a path or a stored name, the log stays one line per event:
    control characters are written as \\xNN."""

    def test_a_newline_in_the_path_cannot_forge_a_line(self):
        gw = Gateway().init().start()
        try:
            forged = "2026-01-01T00:00:00.000Z info audit forged-by-client"
            r = gw.client().request("GET", "/x%0a" + forged.replace(" ", "%20") + "%1b[31m")
            lines = gw.log_lines("req=" + r.header("X-Request-Id"))
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("/x\\x0a" + forged + "\\x1b[31m", lines[0])
            for line in gw.read_log().splitlines():
                self.assertFalse(line.startswith(forged), line)
                self.assertNotIn("\x1b", line)
        finally:
            gw.cleanup()

    def test_a_key_name_with_control_characters_is_logged_escaped(self):
        gw = Gateway().init().start()
        try:
            admin = gw.logged_in("admin@acme.test")
            name = "deploy\x1b[2J\x0b\x852026-01-01T00:00:00.000Z info forged"
            r = admin.request("POST", "/api/keys", {"name": name})
            self.assertIn(r.status, (200, 201), r.raw)
            lines = gw.log_lines("action=key.created")
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("deploy\\x1b[2J\\x0b\\xc2\\x852026-01-01T00:00:00.000Z info forged",
                          lines[0])
            self.assertNotIn("\x1b", gw.read_log())
        finally:
            gw.cleanup()

class GracefulStopTest(unittest.TestCase):
    def test_sigterm_lets_an_in_flight_request_finish_then_exits_0(self):
        gw = Gateway().init().start()
        try:
            body = (b'{"account":"acme","email":"admin@acme.test",'
                    b'"password":"correct horse battery"}')
            head = ("POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as s:
                s.sendall(head + body[:10])
                time.sleep(2)  # the daemon has the headers: the request is in flight
                gw.proc.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                s.sendall(body[10:])
                answer = s.recv(65536).decode(errors="replace")
            self.assertRegex(answer, r"^HTTP/1\.1 200 ")
            self.assertEqual(gw.proc.wait(15), 0)
            self.assertIn("postern stopped", gw.read_log())
        finally:
            gw.cleanup()


if __name__ == "__main__":
    main()
