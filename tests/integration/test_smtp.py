"""SMTP submission against the real daemon, with real clients: Python's smtplib (STARTTLS,
AUTH PLAIN and LOGIN, implicit TLS), swaks (pipelining, TLS) and raw sockets where a client
library would tidy up what is being tested (STARTTLS command injection, bare CR and LF in
DATA). Also the limits (size, recipients, connections), AUTH refusals, and the certificate
re-read on SIGHUP; and what a hostile or unlucky client cannot do: make unread replies pile up
in memory, make the accept loop spin when descriptors run out, stall other sessions while its
AUTH waits on the store, or hang a stop that comes in the middle of an accept.

AUTH before STARTTLS (auth_without_tls = no) is neither advertised nor accepted: the reply is
530 5.7.0 "Must issue a STARTTLS command first" (RFC 3207 section 4, which RFC 4954 section
4 defers to; 538 is for a mechanism that needs encryption, and none here differs)."""
import base64
import os
import resource
import select
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest

from harness import Gateway, cli, free_port, listening, main, must, tls_pair, wait_until

SENDER = "news@acme.test"
MESSAGE = (f"From: {SENDER}\r\nTo: bob@example.com\r\nSubject: Hi\r\n\r\nHello over SMTP\r\n")


def tls_client():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def queued_id(reply):
    code, text = reply
    text = text.decode()
    assert code == 250 and "Ok: queued as " in text, (code, text)
    return text.rsplit(" ", 1)[1]


class SmtpCase(unittest.TestCase):
    """One gateway with STARTTLS and implicit TLS, AUTH only over TLS."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp_tls=True).init("acme", "admin@acme.test")
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.key = cls.gw.create_key("acme", "smtp")
        cls.gw.start()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        self.addCleanup(s.close)
        return s

    def starttls(self):
        s = self.smtp()
        s.ehlo("client.test")
        code, _ = s.starttls(context=tls_client())
        self.assertEqual(code, 220)
        s.ehlo("client.test")
        return s

    def listed(self, mid):
        r = self.admin.request("GET", "/api/messages?limit=1000")
        self.assertEqual(r.status, 200, r.raw)
        return mid in [m["id"] for m in r.json["messages"]]

    def message_count(self):
        r = self.admin.request("GET", "/api/messages?limit=1000")
        return len(r.json["messages"])

    def transaction(self, s, data=MESSAGE, rcpts=("bob@example.com",)):
        self.assertEqual(s.mail(SENDER)[0], 250)
        for r in rcpts:
            self.assertEqual(s.rcpt(r)[0], 250)
        return s.data(data)

    def test_starttls_auth_plain_then_queued_and_listed(self):
        s = self.smtp()
        s.ehlo("client.test")
        self.assertTrue(s.has_extn("starttls"))
        self.assertTrue(s.has_extn("pipelining"))
        self.assertTrue(s.has_extn("enhancedstatuscodes"))
        self.assertTrue(s.has_extn("8bitmime"))
        self.assertTrue(s.has_extn("smtputf8"))
        self.assertEqual(s.esmtp_features["size"], "26214400")
        self.assertFalse(s.has_extn("auth"))
        s.starttls(context=tls_client())
        s.ehlo("client.test")
        self.assertFalse(s.has_extn("starttls"))
        self.assertIn("PLAIN", s.esmtp_features["auth"])
        self.assertIn("LOGIN", s.esmtp_features["auth"])
        code, text = s.login("apikey", self.key)  # PLAIN: smtplib's first pick here
        self.assertEqual((code, text[:5]), (235, b"2.7.0"))
        mid = queued_id(self.transaction(s))
        self.assertTrue(self.listed(mid))
        self.assertEqual(s.quit()[0], 221)
        self.assertTrue(self.gw.log_lines(f"message {mid} queued"))
        self.assertTrue(self.gw.log_lines("source=smtp"))
        self.assertNotIn(self.key, self.gw.read_log())

    def test_auth_login_initial_response_and_two_steps(self):
        for initial in (True, False):
            s = self.starttls()
            s.user, s.password = "apikey", self.key
            code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=initial)
            self.assertEqual(code, 235)
            self.assertTrue(self.listed(queued_id(self.transaction(s))))

    def test_implicit_tls(self):
        s = smtplib.SMTP_SSL("127.0.0.1", self.gw.smtps_port, timeout=30, context=tls_client())
        self.addCleanup(s.close)
        s.ehlo("client.test")
        self.assertFalse(s.has_extn("starttls"))
        self.assertTrue(s.has_extn("auth"))
        s.login("apikey", self.key)
        self.assertTrue(self.listed(queued_id(self.transaction(s))))

    def test_auth_before_starttls_refused(self):
        s = self.smtp()
        s.ehlo("client.test")
        code, text = s.docmd("AUTH", "PLAIN AGFwaWtleQB4")
        self.assertEqual((code, text), (530, b"5.7.0 Must issue a STARTTLS command first"))

    def test_wrong_key_or_user_refused(self):
        for user, password in (("apikey", self.key[:-2] + "xx"), ("nobody", self.key)):
            s = self.starttls()
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login(user, password)
            self.assertEqual(e.exception.smtp_code, 535)
            self.assertTrue(e.exception.smtp_error.startswith(b"5.7.8 "))

    def test_mail_without_auth_refused(self):
        s = self.starttls()
        code, text = s.mail(SENDER)
        self.assertEqual(code, 530)
        self.assertTrue(text.startswith(b"5.7.0 "), text)

    def test_null_sender_and_unapproved_domain_refused(self):
        s = self.starttls()
        code, text = s.mail("")  # not authenticated: that comes first
        self.assertEqual(code, 530)
        self.assertTrue(text.startswith(b"5.7.0 not_authenticated: "), text)
        s.login("apikey", self.key)
        code, text = s.mail("")
        self.assertEqual((code, text), (550, b"5.7.1 sender_not_authorized: The null sender "
                                             b"<> cannot be authorized; send from an "
                                             b"authorized address."))
        code, text = s.mail("someone@elsewhere.test")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith(b"5.7.1 domain_not_approved: "), text)

    def test_unread_replies_stop_reading_over_tls(self):
        raw = socket.create_connection(("127.0.0.1", self.gw.smtps_port), timeout=30)
        c = tls_client().wrap_socket(raw)
        self.addCleanup(c.close)
        flood_unread(self, self.gw.proc.pid, c)

    def test_swaks_pipelining_and_tls(self):
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.gw.smtp_port), "--tls",
             "--pipeline", "--auth", "PLAIN", "--auth-user", "apikey", "--auth-password",
             self.key, "--from", SENDER, "--to", "bob@example.com", "--helo", "client.test",
             "--timeout", "30"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        line = [l for l in out.stdout.splitlines() if "queued as" in l]
        self.assertTrue(line, out.stdout)
        self.assertTrue(self.listed(line[0].rsplit(" ", 1)[1]))

    def test_starttls_command_injection_ignored(self):
        raw = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
        self.addCleanup(raw.close)
        f = raw.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220 "))
        raw.sendall(b"EHLO client.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        # The injected RSET arrives in the same segment as STARTTLS, in plaintext.
        raw.sendall(b"STARTTLS\r\nRSET\r\n")
        self.assertEqual(f.readline(), b"220 2.0.0 Ready to start TLS\r\n")
        tls = tls_client().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"VRFY bob\r\n")
        time.sleep(0.5)
        tls.settimeout(2)
        got = b""
        try:
            while not got.endswith(b"\r\n") or b"252" not in got:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        # Only the reply to what was sent after the handshake: none for the RSET.
        self.assertEqual(got, b"252 2.5.0 Cannot VRFY user, but will accept the message\r\n")
        tls.sendall(b"MAIL FROM:<news@acme.test>\r\n")
        self.assertTrue(tls.recv(4096).startswith(b"503 5.5.1"))  # EHLO again first
        tls.close()

    def data_raw(self, payload):
        """An authenticated transaction whose DATA is sent as bytes, untouched."""
        s = self.starttls()
        s.login("apikey", self.key)
        self.assertEqual(s.mail(SENDER)[0], 250)
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        s.putcmd("data")
        self.assertEqual(s.getreply()[0], 354)
        s.send(payload)
        return s, s.getreply()

    def test_bare_lf_and_bare_cr_refused(self):
        for payload in (b"Subject: x\r\n\r\nhello\nworld\r\n.\r\n",
                        b"Subject: x\r\n\r\nhello\n.\nstill data\r\n.\r\n",
                        b"Subject: x\r\n\r\nhello\rworld\r\n.\r\n"):
            before = self.message_count()
            s, (code, text) = self.data_raw(payload)
            self.assertEqual(code // 100, 5, (payload, code, text))
            # The session goes on in step: the next command gets its own reply.
            self.assertEqual(s.noop()[0], 250)
            self.assertEqual(self.message_count(), before)

    def test_dot_stuffing_and_8bit(self):
        s, reply = self.data_raw(f"From: {SENDER}\r\nSubject: x\r\n\r\n..leading dot\r\n"
                                 "caf\u00e9\r\n.\r\n".encode())
        self.assertTrue(self.listed(queued_id(reply)))

    def test_sighup_rereads_certificate(self):
        def served():
            with socket.create_connection(("127.0.0.1", self.gw.smtps_port), timeout=30) as c:
                with tls_client().wrap_socket(c, server_hostname="localhost") as t:
                    return t.getpeercert(binary_form=True)
        first = served()
        with open(self.gw.tls_cert) as f:
            self.assertEqual(first, ssl.PEM_cert_to_DER_cert(f.read()))
        cert, key = tls_pair(self.gw.tmp, "next")
        os.replace(cert, self.gw.tls_cert)
        os.replace(key, self.gw.tls_key)
        with open(self.gw.tls_cert) as f:
            new = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertNotEqual(first, new)
        self.gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: served() == new, 10))
        self.assertIsNone(self.gw.proc.poll())
        self.assertTrue(self.gw.log_lines("SMTP certificate reloaded"))


class LimitsCase(unittest.TestCase):
    """AUTH without TLS allowed, small limits."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config={"smtp": {
            "auth_without_tls": "yes", "max_size": "2000", "max_recipients": "3",
            "hostname": "mx.postern.test"}}).init("acme", "admin@acme.test")
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.key = cls.gw.create_key("acme", "smtp")
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def session(self):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        s.login("apikey", self.key)
        return s

    def test_greeting_names_the_host_and_auth_offered_without_tls(self):
        s = smtplib.SMTP(timeout=30)
        self.addCleanup(s.close)
        code, text = s.connect("127.0.0.1", self.gw.smtp_port)
        self.assertEqual((code, text), (220, b"mx.postern.test ESMTP Postern"))
        s.ehlo("client.test")
        self.assertFalse(s.has_extn("starttls"))  # no certificate configured
        self.assertTrue(s.has_extn("auth"))
        self.assertEqual(s.esmtp_features["size"], "2000")

    def test_oversize_refused(self):
        s = self.session()
        code, text = s.mail(SENDER, ["SIZE=5000"])
        self.assertEqual((code, text[:5]), (552, b"5.3.4"))
        self.assertEqual(s.mail(SENDER)[0], 250)
        self.assertEqual(s.rcpt("bob@example.com")[0], 250)
        code, text = s.data(MESSAGE + "x" * 3000 + "\r\n")  # read to the end, then refused
        self.assertEqual((code, text[:6]), (552, b"5.3.4 "))
        self.assertEqual(s.noop()[0], 250)

    def test_auth_plain_as_someone_else_refused(self):
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        other = base64.b64encode(f"admin\0apikey\0{self.key}".encode()).decode()
        code, text = s.docmd("AUTH", "PLAIN " + other)
        self.assertEqual((code, text[:6]), (535, b"5.7.8 "))
        own = base64.b64encode(f"apikey\0apikey\0{self.key}".encode()).decode()
        self.assertEqual(s.docmd("AUTH", "PLAIN " + own)[0], 235)

    def test_auth_answered_off_the_loop(self):
        """AUTH is checked on a thread of its own: a refused AUTH and a NOOP on another
        connection are both answered, and commands pipelined behind an AUTH wait for its
        reply and are then read."""
        a = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
        b = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        ra, rb = a.makefile("rb"), b.makefile("rb")
        for sock, r in ((a, ra), (b, rb)):
            self.assertTrue(r.readline().startswith(b"220 "))
        wrong = base64.b64encode(b"\0apikey\0wrong-key").decode()
        a.sendall(f"EHLO a\r\nAUTH PLAIN {wrong}\r\nNOOP\r\n".encode())
        b.sendall(b"NOOP\r\n")
        self.assertEqual(rb.readline(), b"250 2.0.0 Ok\r\n")
        while ra.readline().startswith(b"250-"):
            pass  # EHLO's lines; the loop ends on its last
        self.assertTrue(ra.readline().startswith(b"535 5.7.8 "))
        self.assertEqual(ra.readline(), b"250 2.0.0 Ok\r\n")

    def test_auth_waiting_on_the_store_stalls_no_other_session(self):
        """A wrong AUTH writes its failure to the store; while another writer holds the
        SQLite database, sessions on every loop still get their NOOPs answered at once."""
        if self.gw.conninfo:
            self.skipTest("holds a SQLite lock")
        import sqlite3
        lock = sqlite3.connect(self.gw.db, timeout=30, isolation_level=None)
        self.addCleanup(lock.close)
        a = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
        self.addCleanup(a.close)
        ra = a.makefile("rb")
        self.assertTrue(ra.readline().startswith(b"220 "))
        others = []
        for _ in range(8):  # one at least shares a's loop: connections go round the loops
            c = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
            self.addCleanup(c.close)
            others.append((c, c.makefile("rb")))
            self.assertTrue(others[-1][1].readline().startswith(b"220 "))
        a.sendall(b"HELO a\r\n")
        self.assertTrue(ra.readline().startswith(b"250 "))
        lock.execute("BEGIN EXCLUSIVE")
        wrong = base64.b64encode(b"\0apikey\0wrong-key").decode()
        a.sendall(f"AUTH PLAIN {wrong}\r\n".encode())
        time.sleep(0.3)  # the AUTH is waiting on the lock now
        start = time.monotonic()
        for c, r in others:
            c.sendall(b"NOOP\r\n")
            self.assertEqual(r.readline(), b"250 2.0.0 Ok\r\n")
        self.assertLess(time.monotonic() - start, 1.0)
        lock.execute("COMMIT")
        self.assertRegex(ra.readline(), rb"^(535 5\.7\.8|454 4\.7\.0) ")

    def test_unread_replies_stop_reading(self):
        """A client that pipelines commands without reading the replies: the daemon stops
        reading once replies pile up (its memory stays flat), and the session goes on once
        the client reads."""
        c = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
        self.addCleanup(c.close)
        flood_unread(self, self.gw.proc.pid, c)

    def test_too_many_recipients(self):
        s = self.session()
        self.assertEqual(s.mail(SENDER)[0], 250)
        for i in range(3):
            self.assertEqual(s.rcpt(f"r{i}@example.com")[0], 250)
        code, text = s.rcpt("r3@example.com")
        self.assertEqual((code, text[:5]), (452, b"4.5.3"))
        queued_id(s.data(MESSAGE))


def flood_unread(case, pid, c):
    """Sends NOOPs on c without reading until the daemon stops reading them (RSS checked),
    then reads every reply and QUITs."""
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    case.assertTrue(c.recv(1000).startswith(b"220 "))
    before = vm_rss_kb(pid)
    chunk = b"NOOP\r\n" * 1000  # within one TLS record
    sent, off, unsent = 0, 0, None
    c.settimeout(2)
    while sent < 4000:
        try:
            off += c.send(chunk[off:])
        except (socket.timeout, ssl.SSLWantWriteError):
            # The rest of the chunk; TLS tries a blocked write again with the same bytes.
            unsent = chunk[off:]
            break
        if off == len(chunk):
            sent, off = sent + 1, 0
    grown = vm_rss_kb(pid) - before
    case.assertIsNotNone(unsent, "the daemon read 24 MB of commands sent unread")
    # Under AddressSanitizer (make test-asan) freed memory waits in its quarantine, so RSS
    # tells nothing there; the send that blocked above is the check.
    if not os.environ.get("ASAN_OPTIONS"):
        case.assertLess(grown, 30 * 1024, f"RSS grew {grown} kB for {sent * 6000} bytes sent")
    commands = (sent + 1) * 1000
    c.setblocking(False)
    got = bytearray()
    deadline = time.monotonic() + 60
    todo = [unsent, b"QUIT\r\n"]
    want = b"221 2.0.0 Bye\r\n"
    while not got.endswith(want) and time.monotonic() < deadline:
        select.select([c], [c] if todo else [], [], 0.5)
        try:
            while True:
                data = c.recv(1 << 20)
                if not data:
                    break
                got += data
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        try:
            if todo:
                todo[0] = todo[0][c.send(todo[0]):]
                if not todo[0]:
                    todo.pop(0)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
    case.assertTrue(got.endswith(want), bytes(got[-200:]))
    case.assertEqual(got.count(b"250 2.0.0 Ok\r\n"), commands)


def greeted(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        return c.makefile("rb").readline().startswith(b"220 ")


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


def thread_name(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/comm") as f:
        return f.read().strip()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class StartCase(unittest.TestCase):
    def test_unloadable_certificate_stops_start_with_one_line(self):
        missing = "/nonexistent/smtp.crt"
        gw = Gateway(smtp=True, config={"smtp": {"tls_cert": missing, "tls_key": missing}})
        gw.init()
        self.addCleanup(gw.cleanup)
        with self.assertRaises(AssertionError):
            gw.start()
        self.assertEqual(gw.proc.returncode, 1)
        lines = [l for l in gw.read_log().splitlines() if "tls_cert" in l]
        self.assertEqual(len(lines), 1, gw.read_log())
        self.assertIn(f"cannot load [smtp] tls_cert ({missing}", lines[0])


class ConnectionsCase(unittest.TestCase):
    """max_connections = 3."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True, config={"smtp": {"max_connections": "3"}}).init()
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def test_max_connections(self):
        held = []
        for _ in range(3):
            held.append(socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30))
            self.addCleanup(held[-1].close)
            self.assertTrue(held[-1].makefile("rb").readline().startswith(b"220 "))
        extra = socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30)
        self.addCleanup(extra.close)
        self.assertTrue(extra.makefile("rb").readline().startswith(b"421 4.7.0 "))
        for c in held:
            c.close()
        # Once they are gone, a new client is served again.
        self.assertTrue(wait_until(lambda: greeted(self.gw.smtp_port), 10))


class DescriptorsCase(unittest.TestCase):
    """Out of file descriptors: the listener rests instead of spinning on accept."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(smtp=True).init()
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def test_out_of_descriptors_neither_spins_nor_floods_the_log(self):
        pid = self.gw.proc.pid
        # The harness's start probes the HTTP port; once the limit is down, a probe the HTTP
        # server had not accepted yet would make it log its own accept failures.
        time.sleep(1)
        limit = len(os.listdir(f"/proc/{pid}/fd")) + 16
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        log_before = len(self.gw.read_log().splitlines())
        held = []
        for _ in range(100):
            held.append(socket.create_connection(("127.0.0.1", self.gw.smtp_port), timeout=30))
            self.addCleanup(held[-1].close)
        time.sleep(0.5)
        ticks = cpu_ticks(pid)
        time.sleep(2)
        spent = cpu_ticks(pid) - ticks
        self.assertLess(spent, 40, f"{spent} ticks of CPU in 2 s with accept failing")
        new_lines = self.gw.read_log().splitlines()[log_before:]
        self.assertLess(len(new_lines), 10, "\n".join(new_lines[:20]))
        self.assertTrue(any("cannot accept connections" in l for l in new_lines), new_lines)
        for c in held:
            c.close()
        self.assertTrue(wait_until(lambda: greeted(self.gw.smtp_port), 10))


class StopCase(unittest.TestCase):
    """SIGTERM while the first loop is still inside an accept: the stop must not wait on it.
    libevent's listener lock is held across its accept callback's hand-off; a stop that
    disabled the listener from the main thread then waited for that callback for good.
    To reach that moment on purpose, the gateway's threads share one CPU with a busy
    process and the first loop (the accepting one) runs only when nothing else wants to:
    the loop it hands the session to greets and says goodbye, and the stop comes, before it
    finishes the accept."""

    HOG = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"

    def test_a_stop_during_an_accept_exits_cleanly(self):
        for attempt in range(3):
            gw = Gateway(smtp=True).init()
            self.addCleanup(gw.cleanup)
            gw.start()
            pid = gw.proc.pid
            tasks = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
            loops = [t for t in tasks if thread_name(pid, t) == "smtp loop"]
            if len(loops) < 2:
                self.skipTest("one SMTP loop: no hand-off between loops on this machine")
            cpu = {min(os.sched_getaffinity(0))}
            for t in tasks:
                os.sched_setaffinity(t, cpu)
            # The loops start in order, so the lowest thread id is the first, the acceptor.
            os.sched_setscheduler(loops[0], os.SCHED_IDLE, os.sched_param(0))
            hog = subprocess.Popen([sys.executable, "-c", self.HOG],
                                   preexec_fn=lambda: os.sched_setaffinity(0, cpu))
            try:
                with socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=10) as s:
                    self.assertTrue(s.recv(512).startswith(b"220 "))
                    s.sendall(b"QUIT\r\n")
                    self.assertTrue(s.recv(512).startswith(b"221 "))
                gw.proc.send_signal(signal.SIGTERM)
                # The stop reaches the listeners within milliseconds; a deadlock then
                # lasts for good, while a sound stop needs the CPU back to end in time.
                time.sleep(0.5)
            finally:
                hog.kill()
                hog.wait(10)
            everywhere = os.sched_getaffinity(0)
            for t in tasks:
                try:
                    os.sched_setaffinity(t, everywhere)
                    os.sched_setscheduler(t, os.SCHED_OTHER, os.sched_param(0))
                except ProcessLookupError:
                    pass  # that thread has ended already
            try:
                code = gw.proc.wait(15)
            except subprocess.TimeoutExpired:
                code = None
            self.assertEqual(code, 0, f"round {attempt}:\n" + gw.read_log())
            gw.stop()


class DualStackCase(unittest.TestCase):
    """An IPv6 listener that takes IPv4 clients (as on [::]:587): they arrive as
    ::ffff:a.b.c.d and must be judged as a.b.c.d. Bound to the mapped loopback address, so
    the test stays on loopback."""

    def test_ipv4_clients_of_an_ipv6_listener_keep_their_address(self):
        port = free_port()
        gw = Gateway(config={"smtp": {"listen": f"[::ffff:127.0.0.1]:{port}"}}).init()
        self.addCleanup(gw.cleanup)
        gw.add_domain("acme", "acme.test", "--verified")
        must(cli("key", "create", *gw.store_args, "--account", "acme", "--name", "device",
                 "--smtp-ip", "127.0.0.1/32"))
        gw.start()
        self.assertTrue(wait_until(lambda: listening(port), 10))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.ehlo("device.test")
            self.assertEqual(smtp.mail("news@acme.test")[0], 250)


if __name__ == "__main__":
    main()
