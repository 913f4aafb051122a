"""The daemon's log on stderr: with [log] format = json every line it writes is one JSON
object (time, level, message), hostile request bytes included; with [log] level = warn no
info line is written, and warnings still are."""
import json
import re
import socket
import unittest

from harness import Gateway, main

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) ")
# More than the descriptor limit can ever be here: the daemon warns about it at start.
TOO_MANY = "1073741824"


def raw_request(port, request):
    """Sends request bytes as they are (no client library would send these) and reads the
    answer, bounded in time."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return answer
            answer += chunk


def log_bytes(gw):
    with open(gw.log_path, "rb") as f:
        return f.read()


class JsonFormatTest(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(config={"log": {"format": "json"}}).init()
        self.addCleanup(self.gw.cleanup)
        self.gw.start()

    def test_every_line_is_one_json_object_with_the_text_fields(self):
        self.assertEqual(self.gw.client().request("GET", "/api/nowhere").status, 404)
        # A quote, a byte that is not UTF-8 and an escape character in the request line.
        raw_request(self.gw.port, b'GET /x"\xff\x1b[31m HTTP/1.1\r\nHost: a\r\n'
                                  b'Connection: close\r\n\r\n')
        self.assertEqual(self.gw.stop(), 0)

        lines = log_bytes(self.gw).split(b"\n")
        self.assertEqual(lines.pop(), b"", "the log ends with a newline")
        messages = []
        for line in lines:
            entry = json.loads(line.decode("utf-8"))  # strict: invalid UTF-8 raises
            self.assertEqual(list(entry), ["time", "level", "message"], line)
            self.assertRegex(entry["time"], TIME)
            self.assertIn(entry["level"], ("debug", "info", "warn", "error"))
            self.assertNotRegex(entry["message"], r"[\x00-\x1f\x7f]")
            messages.append(entry["message"])
        self.assertTrue(any(m.startswith("postern serving on 127.0.0.1") for m in messages))
        self.assertTrue(any("GET /api/nowhere 404" in m for m in messages), messages)
        self.assertIn("postern stopped", messages)
        # The hostile bytes are escaped as in a text line; the quote is left to JSON.
        self.assertTrue(any(' GET /x"\\xff\\x1b[31m 404 ' in m for m in messages), messages)


class LevelTest(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(smtp=True, config={"log": {"level": "warn"},
                                             "smtp": {"max_connections": TOO_MANY}}).init()
        self.addCleanup(self.gw.cleanup)
        self.gw.start()

    def test_warn_hides_info_lines_and_keeps_warnings(self):
        self.assertEqual(self.gw.client().request("GET", "/api/nowhere").status, 404)
        self.assertEqual(self.gw.stop(), 0)
        lines = log_bytes(self.gw).decode("utf-8").splitlines()
        for line in lines:
            self.assertRegex(line, TEXT)
        levels = [TEXT.match(l).group(1) for l in lines]
        self.assertNotIn("info", levels)
        self.assertNotIn("debug", levels)
        self.assertTrue(any(" warn SMTP: the descriptor limit" in l for l in lines), lines)


class DebugTest(unittest.TestCase):
    """[log] level = debug adds lines no other level writes: here, an SMTP connection."""

    def setUp(self):
        self.gw = Gateway(smtp=True, config={"log": {"level": "debug"}}).init()
        self.addCleanup(self.gw.cleanup)
        self.gw.start()

    def test_debug_shows_smtp_connections(self):
        with socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=5) as s:
            self.assertTrue(s.recv(512).startswith(b"220 "))
            s.sendall(b"QUIT\r\n")
            self.assertTrue(s.recv(512).startswith(b"221 "))
        self.assertEqual(self.gw.stop(), 0)
        lines = log_bytes(self.gw).decode("utf-8").splitlines()
        self.assertTrue(any(" debug smtp connection from 127.0.0.1 on the submission listener"
                            in l for l in lines), lines)


if __name__ == "__main__":
    main()
