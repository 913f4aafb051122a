"""Shared helpers for Postern's integration tests: run the real binary, start the real
daemon on a free loopback port with a temporary SQLite database, and talk HTTP to it.
Every process started here is stopped by its PID."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("POSTERN_BIN") or os.path.join(ROOT, "build", "postern")
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, password=PASSWORD, timeout=60):
    """Runs `postern ARGS`; returns the CompletedProcess (text mode)."""
    env = dict(os.environ)
    env.pop("POSTERN_PASSWORD", None)
    if password is not None:
        env["POSTERN_PASSWORD"] = password
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def must(proc):
    if proc.returncode != 0:
        raise AssertionError(f"{proc.args} exited {proc.returncode}: {proc.stderr}")
    return proc


class PortTaken(Exception):
    pass


class Gateway:
    """A `postern serve` process on 127.0.0.1 with its own database and outbox."""

    def __init__(self, extra_args=(), tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="postern-it-")
        self.db = os.path.join(self.tmp, "postern.db")
        self.port = None
        self.proc = None
        self.extra_args = list(extra_args)
        self.log_path = os.path.join(self.tmp, "serve.log")
        self.dns_port = free_port()
        # Tests move this gateway's clock forward by writing seconds here.
        self.clock_path = os.path.join(self.tmp, "clock")

    def init(self, account="acme", admin="admin@acme.test"):
        must(cli("init", "--db", self.db, "--account", account, "--admin", admin))
        return self

    def add_account(self, account, admin):
        must(cli("account", "add", "--db", self.db, "--account", account, "--admin", admin))

    def add_user(self, account, email, role, password=PASSWORD):
        must(cli("user", "add", "--db", self.db, "--account", account, "--email", email,
                 "--role", role, password=password))

    def start(self, timeout=15):
        """Starts the daemon on a free port; when another process takes that port between
        the choice and the bind (tests run in parallel), it tries another (bounded)."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                self.log.close()
        raise AssertionError("no free port for postern serve after 3 tries")

    def _start(self, timeout):
        self.port = free_port()
        # DNS goes to a loopback port where nothing answers unless a test brings its own
        # server: domain checks never leave the machine.
        args = [BIN, "serve", "--db", self.db, "--listen", f"127.0.0.1:{self.port}",
                "--relay", "outbox:" + os.path.join(self.tmp, "outbox"),
                "--dns", f"127.0.0.1:{self.dns_port}", *self.extra_args]
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, POSTERN_TEST_CLOCK=self.clock_path)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.read_log()
                if f"cannot listen on 127.0.0.1:{self.port}" in log:
                    raise PortTaken()
                raise AssertionError(f"postern serve exited {self.proc.returncode}:\n" + log)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("postern serve did not start listening:\n" + self.read_log())

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        code, self.proc = self.proc.returncode, None
        return code

    def advance_clock(self, seconds):
        """Moves the daemon's clock forward (cumulative), without sleeping."""
        current = 0
        if os.path.exists(self.clock_path):
            with open(self.clock_path) as f:
                current = int(f.read().strip() or 0)
        with open(self.clock_path, "w") as f:
            f.write(str(current + seconds))

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_lines(self, needle, timeout=5):
        """The log lines containing needle, waiting (bounded) for at least one: a request's
        line is written when the daemon finishes it, just after the client has its answer."""
        find = lambda: [l for l in self.read_log().splitlines() if needle in l]
        return wait_until(find, timeout, interval=0.02) or []

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def client(self):
        return Client(self.port)

    def logged_in(self, email, password=PASSWORD):
        """A client with a live session for email."""
        c = self.client()
        r = c.login(email, password)
        assert r.status == 200, r.raw
        c.user_id = r.json["user"]["id"]
        return c


def audit_events(admin):
    """The account's audit log, newest first, read the way an Admin would."""
    r = admin.request("GET", "/api/audit?limit=1000")
    assert r.status == 200, r.raw
    return r.json["events"]


def last_audit_id(admin):
    events = audit_events(admin)
    return events[0]["id"] if events else 0


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def code(self):
        """The error code in any of Postern's shapes (management, Netcore, SendGrid)."""
        body = self.json if isinstance(self.json, dict) else {}
        err = body.get("error") or body.get("errors") or {}
        if isinstance(err, list):
            err = err[0] if err else {}
        return err.get("code")


class Client:
    """An HTTP client that keeps the session cookie and CSRF token like a browser would."""

    def __init__(self, port):
        self.port = port
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, raw=None, csrf=True):
        h = dict(headers or {})
        if self.cookie and "Cookie" not in h:
            h["Cookie"] = "postern_session=" + self.cookie
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h.setdefault("X-CSRF-Token", self.csrf)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def login(self, email, password=PASSWORD):
        r = self.request("POST", "/api/session", {"email": email, "password": password})
        if r.status == 200:
            cookie = r.header("Set-Cookie")
            self.cookie = cookie.split(";", 1)[0].split("=", 1)[1]
            self.csrf = r.json["csrf_token"]
        return r


def raw_http(port, data, timeout=30):
    """Sends raw bytes and returns what the server answered before closing (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks).decode(errors="replace")


def _complete(buf):
    head, _, body = buf.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def main():
    """Runs the calling module's unittest cases; exits non-zero on any failure."""
    import sys
    import unittest
    result = unittest.main(module="__main__", verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)


class Dnsmasq:
    """dnsmasq on a loopback port serving TXT records for one zone; restart() with other
    records to change them mid-test (dnsmasq reads them only at start)."""

    BIN = "/usr/sbin/dnsmasq"

    def __init__(self, zone, port=None):
        self.zone = zone
        self.port = port or free_port()
        self.proc = None

    def start(self, records=None):
        args = [self.BIN, "--conf-file=/dev/null", "--keep-in-foreground", "--no-resolv",
                "--no-hosts", f"--port={self.port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", f"--local=/{self.zone}/", "--pid-file="]
        if os.geteuid() == 0:
            args.append("--user=root")
        for name, value in (records or {}).items():
            # TXT strings are at most 255 bytes: longer values go as several strings. No
            # shell here, so no quotes: dnsmasq would keep them. Values hold no commas.
            parts = [value[i:i + 250] for i in range(0, len(value), 250)] or [""]
            args.append(f"--txt-record={name}," + ",".join(parts))
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Ready when it answers a query for the zone (bounded).
        probe = _dns_query(f"probe.{self.zone}")
        ok = wait_until(lambda: self._answers(probe), timeout=10, interval=0.05)
        if not ok:
            self.stop()
            raise AssertionError("dnsmasq did not start")
        return self

    def _answers(self, probe):
        if self.proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(probe, ("127.0.0.1", self.port))
                return bool(s.recv(512))
            except OSError:
                return False

    def restart(self, records=None):
        self.stop()
        return self.start(records)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _dns_query(name):
    """A minimal DNS query packet (TXT, IN) used only to see that a server answers."""
    import struct
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 16, 1)


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port: a real SMTP server that writes each
    message it accepts to a file in its directory. extra: its options, e.g. ["-r", "MAIL"]
    to answer MAIL FROM with 4xx, ["-f", "MAIL"] for 5xx."""

    BIN = "/usr/sbin/smtp-sink"

    def __init__(self, directory, port=None):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = port or free_port()
        self.proc = None

    def start(self, *extra, timeout=10):
        args = [self.BIN]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # smtp-sink insists on dropping root to someone
        args += [*extra, "-d", os.path.join(self.dir, "%M."), f"127.0.0.1:{self.port}", "100"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("smtp-sink did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def messages(self):
        """Every message received so far, parsed (email.message.EmailMessage), oldest first."""
        import email
        import email.policy
        out = []
        for name in sorted(os.listdir(self.dir), key=lambda n: os.stat(
                os.path.join(self.dir, n)).st_mtime_ns):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def wait_for(self, predicate, timeout=20):
        """Waits (bounded) until predicate(messages) is true; returns the messages."""
        wait_until(lambda: predicate(self.messages()), timeout)
        return self.messages()


def wait_until(fn, timeout=20, interval=0.1):
    """Calls fn until it returns something true, at most timeout seconds; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
