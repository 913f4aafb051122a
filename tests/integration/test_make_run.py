"""The README's first command, as a new user runs it: `make run` in a fresh copy of the
source tree builds, creates ./var/ with a demo account, prints the credentials once and
serves on http://127.0.0.1:8025."""
import http.client
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

import apidoc
from harness import ROOT, login_body, main, send_body, wait_until

SRC = os.environ.get("POSTERN_SRC", ROOT)
PORT = 8025
SMTP_PORT = 2525


class MakeRunTest(unittest.TestCase):
    def test_make_run_serves_on_8025(self):
        for port in (PORT, SMTP_PORT):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    self.fail(f"port {port} is already in use; stop the other postern first")
        tmp = tempfile.mkdtemp(prefix="postern-make-run-")
        tree = os.path.join(tmp, "postern")
        shutil.copytree(SRC, tree, ignore=shutil.ignore_patterns(
            ".git", "build", "build-*", "var", "node_modules", "__pycache__"))
        out_path = os.path.join(tmp, "make-run.log")
        out = open(out_path, "wb")
        proc = subprocess.Popen(["make", "run"], cwd=tree, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            status, body = self.wait_for_session(proc, out_path, deadline=time.monotonic() + 420)
            self.assertEqual(status, 401)
            self.assertEqual(body["error"]["code"], "not_authenticated")
            log = read(out_path)
            self.assertRegex(log, r"account\s+demo\n")
            self.assertRegex(log, r"Admin login\s+admin@example\.com")
            password = re.search(r"password\s+(\S+)", log).group(1)
            self.assertRegex(log, r"API key\s+pst_[A-Za-z0-9_-]{43}")
            self.assertTrue(os.path.isfile(os.path.join(tree, "var", "postern.db")))
            self.assertTrue(os.path.isdir(os.path.join(tree, "var", "outbox")))
            # The printed credentials work.
            status, body = request("POST", "/api/session",
                                   login_body("admin@example.com", password, "demo"))
            self.assertEqual(status, 200, body)
            self.assertEqual(body["account"]["name"], "demo")
            # The printed key and the demo domain let a first send through at once.
            key = re.search(r"API key\s+(pst_\S+)", log).group(1)
            status, body = request("POST", "/v5/mail/send",
                                   send_body("news@example.com", to="you@example.org"),
                                   headers={"Authorization": "Bearer " + key})
            self.assertEqual(status, 200, body)
            eml = os.path.join(tree, "var", "outbox", body["data"]["message_id"] + ".eml")
            self.assertTrue(wait_until(lambda: os.path.exists(eml)), "no outbox file")
            # The printed swaks example's listener: SMTP on 2525 with the same key.
            self.assertIn("swaks --server 127.0.0.1:2525", log)
            with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30) as smtp:
                smtp.login("apikey", key)
                refused = smtp.sendmail("news@example.com", ["you@example.org"],
                                        "From: news@example.com\r\nTo: you@example.org\r\n"
                                        "Subject: Over SMTP\r\n\r\nHi\r\n")
                self.assertEqual(refused, {})
                code, text = smtp.noop()
                self.assertEqual(code, 250)
            self.assertTrue(wait_until(lambda: any(
                "Subject: Over SMTP" in read(os.path.join(tree, "var", "outbox", f))
                for f in os.listdir(os.path.join(tree, "var", "outbox")))), "no SMTP outbox file")
        finally:
            # make, the shell and postern share the session started above.
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            out.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def wait_for_session(self, proc, out_path, deadline):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.fail(f"make run exited {proc.returncode}:\n{read(out_path)[-4000:]}")
            try:
                return request("GET", "/api/session")
            except OSError:
                time.sleep(0.5)
        self.fail("make run did not serve on 8025 in time:\n" + read(out_path)[-4000:])


def request(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        raw = r.read()
        apidoc.check(method, path, r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
        return r.status, json.loads(raw or b"null")
    finally:
        conn.close()


def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


if __name__ == "__main__":
    main()
