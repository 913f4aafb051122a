"""Shared helpers for Postern's integration tests: run the real binary, start the real
daemon on a free loopback port with a temporary database, and talk HTTP to it. Every
process started here is stopped by its PID.

The store is SQLite unless POSTERN_TEST_BACKEND=postgres: then each Gateway gets a fresh
database of its own in a PostgreSQL cluster on loopback, found through POSTERN_TEST_PG (a
conninfo) or POSTERN_TEST_PG_FILE (a file holding one, written by the ctest fixture
pg_cluster_start), or else started here for this process (scripts/pg-cluster.sh) and
stopped at exit."""
import atexit
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import apidoc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("POSTERN_BIN") or os.path.join(ROOT, "build", "postern")
PASSWORD = "correct horse battery"
BACKEND = os.environ.get("POSTERN_TEST_BACKEND") or "sqlite"
if BACKEND not in ("sqlite", "postgres"):
    raise SystemExit(f"POSTERN_TEST_BACKEND={BACKEND}: expected sqlite or postgres")
POSTGRES = BACKEND == "postgres"
PG_CLUSTER = os.path.join(ROOT, "scripts", "pg-cluster.sh")


def sqlite_only(why):
    """Skips a test (or class) that is about SQLite itself when the suite runs on
    PostgreSQL; why says what it checks."""
    return unittest.skipIf(POSTGRES, "SQLite only: " + why)


def postgres_only(why):
    return unittest.skipUnless(POSTGRES, "PostgreSQL only: " + why)


def listening(port):
    """Whether something accepts connections on 127.0.0.1:port now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def print_threads(pid, log):
    """A daemon that did not stop in time: where each of its threads is, and its log's end,
    to standard error, so that a hang seen once (in CI, say) can be read afterwards."""
    print(f"postern (pid {pid}) did not stop in time; its log ends:", file=sys.stderr)
    print("\n".join(log.splitlines()[-20:]), file=sys.stderr)
    if not shutil.which("gdb"):
        return
    try:
        out = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt"],
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout
    except subprocess.TimeoutExpired:
        return
    print(re.sub(r"(?m)^\[New LWP.*\n", "", out), file=sys.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, password=PASSWORD, timeout=60, env=None):
    """Runs `postern ARGS`; returns the CompletedProcess (text mode). The store is the one
    ARGS name (gw.store_args): POSTERN_POSTGRES is not inherited, only given through env."""
    full = dict(os.environ)
    full.pop("POSTERN_PASSWORD", None)
    full.pop("POSTERN_POSTGRES", None)
    full.update(env or {})
    if password is not None:
        full["POSTERN_PASSWORD"] = password
    return subprocess.run([BIN, *args], env=full, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def must(proc):
    if proc.returncode != 0:
        raise AssertionError(f"{proc.args} exited {proc.returncode}: {proc.stderr}")
    return proc


# --- PostgreSQL -------------------------------------------------------------------------

_pg_lock = threading.Lock()
_pg_server = None
_pg_names = itertools.count()


def conninfo_with(conninfo, **keys):
    """conninfo (key=value words, values without spaces) with keys replaced or added."""
    words = dict(w.split("=", 1) for w in conninfo.split())
    words.update(keys)
    return " ".join(f"{k}={v}" for k, v in words.items())


def pg_server():
    """The conninfo of the cluster's maintenance database (dbname=postgres)."""
    global _pg_server
    with _pg_lock:
        if _pg_server:
            return _pg_server
        conninfo = os.environ.get("POSTERN_TEST_PG")
        path = os.environ.get("POSTERN_TEST_PG_FILE")
        if not conninfo and path:
            if not os.path.exists(path):
                raise AssertionError(f"{path} does not exist: the ctest fixture "
                                     "pg_cluster_start did not run or failed")
            with open(path) as f:
                conninfo = f.read().strip()
        if not conninfo:
            conninfo = _own_cluster()
        _pg_server = conninfo_with(conninfo, dbname="postgres")
        return _pg_server


OWN_CLUSTER = {}  # "dir": where the cluster _own_cluster started lives (data, socket, log)


def _own_cluster():
    """A cluster for this process alone (a suite run by hand, or one that restarts its
    server), stopped at exit."""
    cluster = PgCluster().start()
    OWN_CLUSTER["dir"] = cluster.home()
    atexit.register(cluster.stop)
    return cluster.conninfo


PGBIN = "/usr/lib/postgresql/15/bin"


def pg_ctl(*args):
    """Runs pg_ctl on this process's own cluster (_own_cluster), as its owner."""
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    r = subprocess.run([*as_owner, f"{PGBIN}/pg_ctl", "-D", os.path.join(OWN_CLUSTER["dir"],
                                                                        "data"), *args],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90,
                       cwd="/")
    if r.returncode != 0:
        raise AssertionError(f"pg_ctl {args[-1]} failed: {r.stderr}")


def own_cluster_stop():
    """Stops this process's own cluster under whatever uses it (a restart or an outage)."""
    pg_ctl("-m", "fast", "-w", "stop")


def own_cluster_start(port):
    """Starts it again on the same port, socket directory and log."""
    pg_ctl("-l", os.path.join(OWN_CLUSTER["dir"], "log"), "-w", "-t", "60", "-o",
           f"-p {port} -k {OWN_CLUSTER['dir']} -c listen_addresses=127.0.0.1", "start")


def psql(conninfo, sql, timeout=60):
    """Runs sql through the psql client; returns its standard output (text)."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
                        "-c", sql], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"psql: {sql}\n{r.stderr.strip()}")
    return r.stdout


def sql_literal(value):
    """value as a PostgreSQL literal (standard_conforming_strings is on)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"  # booleans are integers, as in the SQLite schema
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return "'\\x" + bytes(value).hex() + "'::bytea"
    text = str(value)
    if "\0" in text:
        raise ValueError("PostgreSQL text cannot hold NUL")
    return "'" + text.replace("'", "''") + "'"


def substitute(query, params):
    """query with each ? outside quotes replaced by the next parameter as a literal."""
    out, it, quote = [], iter(params), None
    for ch in query:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            try:
                out.append(sql_literal(next(it)))
            except StopIteration:
                raise ValueError(f"too few parameters for {query!r}") from None
            continue
        out.append(ch)
    if next(it, StopIteration) is not StopIteration:
        raise ValueError(f"too many parameters for {query!r}")
    return "".join(out)


def pg_rows(conninfo, query, params=()):
    """Rows of a query as tuples of Python values (ints as ints, NULL as None): each row
    comes back from the server as JSON, which keeps the types, in column order."""
    query = substitute(query.strip().rstrip(";"), params)
    if not re.match(r"(?is)\s*(select|with|values)\b", query):
        psql(conninfo, query)
        return []
    out = psql(conninfo, f"SELECT row_to_json(q) FROM ({query}) q")
    return [tuple(json.loads(line, object_pairs_hook=lambda pairs: [v for _, v in pairs]))
            for line in out.splitlines() if line]


# --- the gateway ------------------------------------------------------------------------

class PortTaken(Exception):
    pass


class Gateway:
    """A `postern serve` process on 127.0.0.1 with its own database and outbox.

    shares: another Gateway whose database (and DKIM master key) this one uses too, as a
    second node of the same installation (PostgreSQL only). postgres: the conninfo of a
    database the caller owns, with master_key its DKIM master key file (the benchmark's
    cluster). relay: the relay URL instead of the outbox; config: {section: {key: value}},
    an ini given with --config; test_clock=False: no POSTERN_TEST_CLOCK in its environment.
    smtp=True: SMTP submission on gw.smtp_port (--smtp); smtp_tls=True: also implicit TLS on
    gw.smtps_port, with a fresh self-signed certificate (gw.tls_cert, gw.tls_key) that
    STARTTLS offers too."""

    def __init__(self, extra_args=(), tmp=None, shares=None, *, relay=None, config=None,
                 postgres=None, master_key=None, test_clock=True, smtp=False, smtp_tls=False):
        self.tmp = tmp or tempfile.mkdtemp(prefix="postern-it-")
        self.backend = BACKEND
        self.port = None
        self.proc = None
        self.extra_args = list(extra_args)
        self.log_path = os.path.join(self.tmp, "serve.log")
        self.dns_port = free_port()
        # Tests move this gateway's clock forward by writing seconds here.
        self.clock_path = os.path.join(self.tmp, "clock")
        self.owner = shares is None
        if shares:
            if not POSTGRES:
                raise AssertionError("only PostgreSQL is shared by several gateways")
            self.db, self.master_key = shares.db, shares.master_key
            self.dbname, self.conninfo = shares.dbname, shares.conninfo
        elif postgres:
            self.db, self.master_key = None, master_key
            self.dbname, self.conninfo = None, postgres
        else:
            # SQLite: the database file, with the DKIM master key beside it (the default).
            self.db = os.path.join(self.tmp, "postern.db")
            self.master_key = os.path.join(self.tmp, "dkim-master.key")
            self.dbname = self.conninfo = None
            if POSTGRES:
                self.dbname = f"postern_it_{os.getpid()}_{next(_pg_names)}_" + \
                    os.urandom(3).hex()
                psql(pg_server(), f"CREATE DATABASE {self.dbname}")
                self.conninfo = conninfo_with(pg_server(), dbname=self.dbname)
        # What the CLI's store commands take to reach this gateway's store; domain add
        # also needs the master key with PostgreSQL (there is no database file to sit by).
        self.store_args = ["--postgres", self.conninfo] if self.conninfo else ["--db", self.db]
        self.key_args = ["--master-key", self.master_key] if self.conninfo else []
        self.relay = relay or "outbox:" + os.path.join(self.tmp, "outbox")
        self.config = config
        self.test_clock = test_clock
        self.smtp = smtp or smtp_tls
        self.smtp_tls = smtp_tls
        self.smtp_port = self.smtps_port = None
        self.tls_cert = self.tls_key = None
        if smtp_tls:
            self.tls_cert, self.tls_key = tls_pair(self.tmp)

    def init(self, account="acme", admin="admin@acme.test"):
        must(cli("init", *self.store_args, "--account", account, "--admin", admin))
        return self

    def add_account(self, account, admin):
        must(cli("account", "add", *self.store_args, "--account", account, "--admin", admin))

    def add_user(self, account, email, role, password=PASSWORD):
        must(cli("user", "add", *self.store_args, "--account", account, "--email", email,
                 "--role", role, password=password))

    def add_domain(self, account, domain, *flags):
        return must(cli("domain", "add", *self.store_args, *self.key_args, "--account",
                        account, domain, *flags))

    def create_key(self, account="acme", name="t"):
        return must(cli("key", "create", *self.store_args, "--account", account, "--name",
                        name)).stdout.strip()

    def scoped_key(self, admin, name, scopes=("mail.send",), role=None, **fields):
        """A new key of admin's account (POST /api/keys with name, scopes, role and
        fields). The answer of POST /api/keys: {"id", "key", ...}."""
        body = dict(fields, name=name, scopes=list(scopes))
        if role:
            body["role"] = role
        r = admin.request("POST", "/api/keys", body)
        assert r.status == 201, r.raw
        return r.json

    def sql(self, query, *params):
        """The rows of query (SQLite's ? placeholders) as a list of tuples; a statement
        that returns no rows is committed and gives []."""
        if self.conninfo:
            return pg_rows(self.conninfo, query, params)
        import sqlite3
        db = sqlite3.connect(self.db, timeout=30)
        try:
            rows = db.execute(query, params).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    def dump(self):
        """Everything the store holds on disk, as bytes: the SQLite files, or a data dump
        of the PostgreSQL database. For checking that a secret is nowhere in it."""
        if POSTGRES:
            return subprocess.run(["pg_dump", "--data-only", "-d", self.conninfo],
                                  capture_output=True, check=True, timeout=60,
                                  stdin=subprocess.DEVNULL).stdout
        out = b""
        for name in sorted(os.listdir(self.tmp)):
            if name.startswith("postern.db"):
                with open(os.path.join(self.tmp, name), "rb") as f:
                    out += f.read()
        return out

    def serve_command(self, *args, merge_config=True):
        """The argv of `postern serve` on this gateway's store, with args after it. With
        PostgreSQL the DKIM master key file cannot default to beside the database, so it
        goes in through an ini: the one in args with a [dkim] section added (a copy;
        merge_config=False leaves a given --config alone), or one of the harness's."""
        args = list(args)
        if self.conninfo:
            dkim = f"\n[dkim]\nmaster_key_file = {self.master_key}\n"
            if "--config" in args[:-1]:
                i = args.index("--config") + 1
                given = args[i]
                if merge_config and os.path.isfile(given):
                    with open(given) as f:
                        text = f.read()
                    if not re.search(r"(?m)^\s*master_key_file\s*=", text):
                        merged = os.path.join(self.tmp, "pg-" + os.path.basename(given))
                        with open(merged, "w") as f:
                            f.write(text + dkim)
                        args[i] = merged
            else:
                path = os.path.join(self.tmp, "pg-dkim.ini")
                with open(path, "w") as f:
                    f.write(dkim.lstrip())
                args = ["--config", path] + args
        return [BIN, "serve", *self.store_args, *args]

    def start(self, timeout=15):
        """Starts the daemon on a free port; when another process takes that port between
        the choice and the bind (tests run in parallel), it tries another (bounded)."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                self.log.close()
                apidoc.LISTENERS.discard(self.port)
        raise AssertionError("no free port for postern serve after 3 tries")

    def _start(self, timeout):
        self.port = free_port()
        apidoc.LISTENERS.add(self.port)
        # DNS goes to a loopback port where nothing answers unless a test brings its own
        # server: domain checks never leave the machine.
        config = []
        sections, smtp_args = self._smtp_config()
        # A test that brings its own ini keeps it whole (the daemon reads one); the
        # harness's default alone is not worth replacing it.
        if "--config" in self.extra_args and list(sections) == ["webhooks"]:
            sections = {}
        if sections:
            config = ["--config", write_config(os.path.join(self.tmp, "gateway.ini"),
                                               sections)]
        args = self.serve_command("--listen", f"127.0.0.1:{self.port}", "--relay", self.relay,
                                  "--dns", f"127.0.0.1:{self.dns_port}", *config,
                                  *smtp_args, *self.extra_args)
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        if self.test_clock:
            env["POSTERN_TEST_CLOCK"] = self.clock_path
        env.pop("POSTERN_POSTGRES", None)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.read_log()
                ports = [p for p in (self.port, self.smtp_port, self.smtps_port) if p]
                if any(f"cannot listen on 127.0.0.1:{p}" in log for p in ports):
                    raise PortTaken()
                raise AssertionError(f"postern serve exited {self.proc.returncode}:\n" + log)
            if listening(self.port) and all(
                    listening(p) for p in (self.smtp_port, self.smtps_port) if p):
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError("postern serve did not start listening:\n" + self.read_log())

    def _smtp_config(self):
        """The ini sections (self.config with the TLS keys and [webhooks] allow_private
        added) and the flags for SMTP, on freshly chosen ports."""
        sections = {k: dict(v) for k, v in (self.config or {}).items()}
        # Tests' webhook receivers listen on loopback; a test of the refusal sets it no.
        sections.setdefault("webhooks", {}).setdefault("allow_private", "yes")
        args = []
        if self.smtp:
            self.smtp_port = free_port()
            args = ["--smtp", f"127.0.0.1:{self.smtp_port}"]
        if self.smtp_tls:
            self.smtps_port = free_port()
            sections.setdefault("smtp", {}).update(
                {"tls_cert": self.tls_cert, "tls_key": self.tls_key,
                 "tls_listen": f"127.0.0.1:{self.smtps_port}"})
        return sections, args

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print_threads(self.proc.pid, self.read_log())
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        # The port is free again: whatever answers there later is no gateway of this one.
        apidoc.LISTENERS.discard(self.port)
        code, self.proc = self.proc.returncode, None
        return code

    def kill(self):
        """SIGKILL, as a crash: nothing is finished or written."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        return self.stop()

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
        if self.owner and self.dbname:
            # FORCE: a node sharing the database may still be connected.
            psql(pg_server(), f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
            self.dbname = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def client(self, source=None):
        """A client; source is the loopback address it connects from (127.0.0.1 unless
        given), for tests about what the gateway does per client address."""
        return Client(self.port, source)

    def logged_in(self, email, password=PASSWORD, account=None):
        """A client with a live session for email (in account, by default the suite's
        convention: see account_of)."""
        c = self.client()
        r = c.login(email, password, account)
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


def add_senders(admin, *addresses, verify=()):
    """Adds addresses as admin's account's senders (POST /api/senders), then verifies those
    in verify one by one; their ids by address."""
    r = admin.request("POST", "/api/senders", {"addresses": list(addresses)})
    assert r.status == 201, r.raw
    ids = {a["address"]: a["id"] for a in r.json["added"]}
    for address in verify:
        v = admin.request("POST", f"/api/senders/{ids[address]}/verify")
        assert v.status == 200, v.raw
    return ids


def smtp_quit(s):
    """Ends an smtplib session politely, or just closes it when the server is gone."""
    import smtplib
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        s.close()


def account_of(email):
    """The account a test user belongs to, by the suite's convention USER@ACCOUNT.test
    (admin@acme.test is in account acme). A login names its account."""
    return email.rsplit("@", 1)[-1].split(".")[0].lower()


def send_body(sender="news@acme.test", subject="Hello", to="bob@example.com", text="Hi",
              name=None, to_name=None, html=None, **fields):
    """A send request, in the shape both dialects take: a text part (and an HTML part when
    html is given) to one recipient. name and to_name are the display names of the sender
    and the recipient; fields are further top-level fields, or replace the built ones (a
    None subject, an empty personalizations list, other content...)."""
    sender_box = {"email": sender} if name is None else {"email": sender, "name": name}
    to_box = {"email": to} if to_name is None else {"email": to, "name": to_name}
    content = [{"type": "text/plain", "value": text}]
    if html is not None:
        content.append({"type": "text/html", "value": html})
    body = {"from": sender_box, "subject": subject, "content": content,
            "personalizations": [{"to": [to_box]}]}
    body.update(fields)
    return body


def login_body(email, password=PASSWORD, account=None):
    """The body of POST /api/session."""
    return {"account": account or account_of(email), "email": email, "password": password}


# A user of each role that role.c defines, all in account acme.
ROLE_EMAILS = {"admin": "admin@acme.test", "technical": "tech@acme.test",
               "analytics": "ana@acme.test", "marketing": "mkt@acme.test"}


class RolesCase(unittest.TestCase):
    """One gateway per class, with account acme holding a user of each role (ROLE_EMAILS),
    each logged in once: cls.clients by role, and cls.admin, cls.tech, cls.ana, cls.mkt.
    A class adds its own accounts and users in more_setup, before the gateway starts, and
    its own clients in its setUpClass after calling this one."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().init("acme", ROLE_EMAILS["admin"])
        for role, email in ROLE_EMAILS.items():
            if role != "admin":
                cls.gw.add_user("acme", email, role)
        cls.more_setup()
        cls.gw.start()
        cls.clients = {role: cls.gw.logged_in(email) for role, email in ROLE_EMAILS.items()}
        cls.admin, cls.tech = cls.clients["admin"], cls.clients["technical"]
        cls.ana, cls.mkt = cls.clients["analytics"], cls.clients["marketing"]

    @classmethod
    def more_setup(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def assertError(self, r, status, code, field=None):
        """r is a management API error: status, code, a message, and the field if given."""
        self.assertEqual(r.status, status, r.raw)
        self.assertEqual(r.code, code, r.raw)
        self.assertTrue(r.json["error"]["message"])
        if field is not None:
            self.assertEqual(r.json["error"].get("field"), field, r.raw)

    def assertOneDenial(self, denials, role, method, path):
        """denials, the permission.denied audit rows written since a call of method path by
        the user of role, are the one row that call wrote."""
        self.assertEqual(len(denials), 1, denials)
        e = denials[0]
        self.assertEqual(e["actor"], ROLE_EMAILS[role])
        self.assertEqual(e["target"], path)
        self.assertIn(f"role={role}", e["detail"])
        self.assertIn(f"{method} {path}", e["detail"])
        self.assertEqual(e["ip"], "127.0.0.1")


class DomainSteps:
    """What a domain test does over the API and its DNS server: a TestCase mixin that needs
    self.admin (a logged-in client), self.dns (Dnsmasq) and self.records (a dict it
    serves)."""

    def add(self, name, client=None):
        r = (client or self.admin).request("POST", "/api/domains", {"domain": name})
        self.assertEqual(r.status, 201, r.raw)
        return r.json

    def check(self, domain, retry_lookup_errors=True):
        """Checks now. A lookup that failed (a loaded machine, dnsmasq just restarted)
        concludes nothing, so it is asked again, a bounded number of times."""
        for _ in range(5):
            r = self.admin.request("POST", f"/api/domains/{domain['id']}/check")
            self.assertEqual(r.status, 200, r.raw)
            if not (retry_lookup_errors and r.json["check_error"]):
                break
            time.sleep(0.5)
        return r.json

    def publish(self, domain, **override):
        """Serves the domain's required records (plus any already published)."""
        for rec in domain["records"]:
            if rec["purpose"] in ("ownership", "dkim", "dkim_next"):
                self.records[rec["name"]] = rec["value"]
        self.records.update(override)
        self.dns.restart(self.records)

    def unpublish(self, domain):
        for rec in domain["records"]:
            self.records.pop(rec["name"], None)
        self.dns.restart(self.records)


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

    def __init__(self, port, source=None):
        self.port = port
        self.source = source
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
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60,
                                          source_address=self.source and (self.source, 0))
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            response = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()
        # Only a gateway's API listener speaks docs/openapi.yaml (not, say, its metrics one).
        if self.port in apidoc.LISTENERS:
            apidoc.check(method, path, response.status, response.headers, response.raw)
        return response

    def login(self, email, password=PASSWORD, account=None):
        """Logs in to account, by default the one the suite's convention names for email
        (account_of), and keeps the session."""
        r = self.request("POST", "/api/session", login_body(email, password, account))
        if r.status == 200:
            cookie = r.header("Set-Cookie")
            self.cookie = cookie.split(";", 1)[0].split("=", 1)[1]
            self.csrf = r.json["csrf_token"]
        return r


class KeyClient(Client):
    """A client of the management API that sends an API key as "Authorization: Bearer
    KEY", with no cookie and no CSRF token, as automation does."""

    def __init__(self, port, key, source=None):
        super().__init__(port, source)
        self.key = key

    def request(self, method, path, body=None, headers=None, raw=None, csrf=True):
        h = dict(headers or {})
        h.setdefault("Authorization", "Bearer " + self.key)
        return super().request(method, path, body, h, raw, csrf)


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
    """dnsmasq on a loopback port serving TXT records for one zone ({name: value, or a list
    of values}); restart() with other records to change them mid-test (dnsmasq reads them
    only at start)."""

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
        for name, values in (records or {}).items():
            # A list of values: as many TXT records under that name.
            for value in values if isinstance(values, list) else [values]:
                # TXT strings are at most 255 bytes: longer values go as several strings.
                # No shell here, so no quotes: dnsmasq would keep them. Values hold no
                # commas.
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
        stop_process(self.proc)
        self.proc = None


def _dns_query(name):
    """A minimal DNS query packet (TXT, IN) used only to see that a server answers."""
    import struct
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 16, 1)


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port: a real SMTP server that writes each
    message it accepts to a file in its directory (None: it keeps nothing). extra: its
    options, e.g. ["-r", "MAIL"] to answer MAIL FROM with 4xx, ["-f", "MAIL"] for 5xx."""

    BIN = "/usr/sbin/smtp-sink"

    def __init__(self, directory=None, port=None):
        self.dir = directory
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.port = port or free_port()
        self.proc = None

    def start(self, *extra, timeout=10):
        args = [self.BIN]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # smtp-sink insists on dropping root to someone
        if self.dir:
            extra = [*extra, "-d", os.path.join(self.dir, "%M.")]
        args += [*extra, f"127.0.0.1:{self.port}", "100"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if wait_until(lambda: listening(self.port), timeout, interval=0.05):
            return self
        self.stop()
        raise AssertionError("smtp-sink did not start")

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def complete_files(self):
        """The names of the message files smtp-sink has finished writing. It creates a file
        when a transaction starts and writes it out when the transaction ends, so a file it
        still holds open is left out: listed first, then checked against its open files (a
        file not open then is complete, as none is opened twice)."""
        names = os.listdir(self.dir)
        held = set()
        if self.proc and self.proc.poll() is None:
            fds = f"/proc/{self.proc.pid}/fd"
            try:
                for fd in os.listdir(fds):
                    try:
                        held.add(os.readlink(os.path.join(fds, fd)))
                    except OSError:
                        pass
            except OSError:
                pass
        base = os.path.realpath(self.dir)
        return [n for n in names if os.path.join(base, n) not in held]

    def messages(self):
        """Every message received so far, parsed (email.message.EmailMessage), oldest first."""
        import email
        import email.policy
        out = []
        for name in sorted(self.complete_files(), key=lambda n: os.stat(
                os.path.join(self.dir, n)).st_mtime_ns):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def wait_for(self, predicate, timeout=20):
        """Waits (bounded) until predicate(messages) is true; returns the messages."""
        wait_until(lambda: predicate(self.messages()), timeout)
        return self.messages()


def stop_process(proc):
    """SIGTERM to a helper server the harness started (if it still runs), then SIGKILL if it
    does not exit in time."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until(fn, timeout=20, interval=0.1):
    """Calls fn until it returns something true, at most timeout seconds; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def tls_pair(tmpdir, name="smtp"):
    """A fresh self-signed certificate for localhost (openssl CLI): (cert_path, key_path)
    in tmpdir, named after name."""
    cert, key = os.path.join(tmpdir, name + ".crt"), os.path.join(tmpdir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=60)
    return cert, key


def write_config(path, sections):
    """Writes sections ({section: {key: value}}) as an ini file; returns path."""
    with open(path, "w") as f:
        for section, keys in sections.items():
            f.write(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    return path


class PgCluster:
    """A throwaway PostgreSQL 15 cluster of scripts/pg-cluster.sh, kept in directory (a new
    temporary one by default): start() gives it a free loopback port and sets conninfo (the
    maintenance database); stop() stops it (pg_ctl, else SIGKILL to the postmaster's PID)
    and removes the directory."""

    def __init__(self, directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="postern-pg-")
        self.conninfo = None

    def start(self):
        r = subprocess.run(["sh", PG_CLUSTER, "start", self.dir, "auto"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=300)
        if r.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise AssertionError("cannot start a PostgreSQL cluster: " + r.stderr)
        self.conninfo = r.stdout.strip().splitlines()[-1]
        return self

    def home(self):
        """Where the cluster lives (data, socket, log): the directory, or one the script
        made where user postgres can reach it."""
        path = os.path.join(self.dir, "home")
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
        return self.dir

    def log_path(self):
        return os.path.join(self.home(), "log")

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.home(), "data", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self):
        subprocess.run(["sh", PG_CLUSTER, "stop", self.dir], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def serve_main(argv):
    """`harness.py serve`: a gateway (and, with --sink, the smtp-sink it relays to) for a
    test written in another language, e.g. tests/e2e/harness.js. Prints one JSON line
    (port, url, directory, database, log, clock file, password, PIDs), then runs until its
    standard input closes or it gets SIGTERM, and stops everything by PID."""
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog="harness.py serve", description=serve_main.__doc__)
    ap.add_argument("--dir", help="the gateway's directory (postern.db, serve.log, outbox), "
                    "kept at the end (default: a temporary one, removed)")
    ap.add_argument("--sink", action="store_true",
                    help="relay to an smtp-sink that keeps each message in DIR/sink")
    ap.add_argument("--account", help="make this account (with --admin) and an API key")
    ap.add_argument("--admin", help="the account's Admin (login email)")
    ap.add_argument("--domain", action="append", default=[],
                    help="a verified domain of the account, so its addresses may send")
    ap.add_argument("--smtp", action="store_true",
                    help="SMTP submission too: STARTTLS with a self-signed certificate, AUTH "
                    "only after it; smtp_port (and smtps_port, implicit TLS) in the JSON line")
    ap.add_argument("--bounces", metavar="DOMAIN",
                    help="a return path: [bounces] domain DOMAIN and its inbound listener on a "
                    "free loopback port, bounces_port in the JSON line")
    opts = ap.parse_args(argv)
    if bool(opts.account) != bool(opts.admin):
        ap.error("--account and --admin go together")
    if opts.domain and not opts.account:
        ap.error("--domain needs --account")
    if opts.dir:
        os.makedirs(opts.dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    gw = Gateway(tmp=opts.dir and os.path.abspath(opts.dir), smtp_tls=opts.smtp)
    sink = None
    try:
        info = {"dir": gw.tmp, "db": gw.db, "conninfo": gw.conninfo, "log": gw.log_path,
                "clock": gw.clock_path, "password": PASSWORD}
        if opts.account:
            gw.init(opts.account, opts.admin)
            info.update(account=opts.account, admin=opts.admin,
                        api_key=gw.create_key(opts.account, "serve"))
            for domain in opts.domain:
                gw.add_domain(opts.account, domain, "--verified")
        if opts.sink:
            sink = SmtpSink(os.path.join(gw.tmp, "sink")).start()
            gw.relay = f"smtp://127.0.0.1:{sink.port}"
            info.update(sink_port=sink.port, sink_pid=sink.proc.pid, sink_dir=sink.dir)
        if opts.bounces:
            bounces_port = free_port()
            gw.config = {"bounces": {"domain": opts.bounces,
                                     "listen": f"127.0.0.1:{bounces_port}"}}
            info.update(bounces_port=bounces_port)
        gw.start()
        if opts.bounces and not wait_until(lambda: listening(bounces_port), 10):
            raise AssertionError("the bounce listener did not start:\n" + gw.read_log())
        info.update(port=gw.port, url=f"http://127.0.0.1:{gw.port}", pid=gw.proc.pid)
        if opts.smtp:
            info.update(smtp_port=gw.smtp_port, smtps_port=gw.smtps_port)
        print(json.dumps(info), flush=True)
        sys.stdin.read()
    finally:
        if sink:
            sink.stop()
        if opts.dir:
            gw.stop()
        else:
            gw.cleanup()



class WebhookReceiver:
    """A webhook endpoint for tests: a real HTTP/1.1 server (keep-alive, as libcurl uses it)
    on a free 127.0.0.1 port, in threads of this process. It records every request (method,
    path, headers, raw body, the status it answered) and answers each with the next status
    of answer(...), else the default status. down() stops listening and drops the open
    connections, so a POST finds the port closed; up() listens on the same port again;
    stop() ends it for good."""

    class Request:
        def __init__(self, method, path, headers, body, status):
            self.method, self.path, self.body, self.status = method, path, body, status
            self.headers = headers  # {lower-case name: value}
            self.at = time.time()

        @property
        def ok(self):
            return 200 <= self.status < 300

        def json(self):
            return json.loads(self.body)

        def __repr__(self):
            return f"Request({self.method} {self.path} -> {self.status}, {self.body[:80]!r})"

    def __init__(self, status=200, port=None):
        self.port = port or free_port()
        self.status = status
        self.requests = []
        self._answers = []
        self._lock = threading.Lock()
        self._server = self._thread = None
        self._conns = set()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *statuses):
        """The statuses of the next requests, in order; then the default again."""
        with self._lock:
            self._answers.extend(statuses)

    def _next_status(self):
        with self._lock:
            return self._answers.pop(0) if self._answers else self.status

    def _record(self, req):
        with self._lock:
            self.requests.append(req)

    def start(self):
        return self.up()

    def up(self):
        import http.server
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver._lock:
                    receiver._conns.add(self.connection)

            def finish(self):
                with receiver._lock:
                    receiver._conns.discard(self.connection)
                super().finish()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._next_status()
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._record(receiver.Request(self.command, self.path, headers, body,
                                                  status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def down(self):
        """Not listening, and no connection left open: a POST is refused."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)
            self._server = self._thread = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.down()

    def received(self):
        """The requests answered with a 2xx so far, oldest first (a copy)."""
        with self._lock:
            return [r for r in self.requests if r.ok]

    def all(self):
        with self._lock:
            return list(self.requests)

    def wait_for(self, predicate, timeout=20):
        """Waits (bounded) until predicate(received()) is true; returns received()."""
        wait_until(lambda: predicate(self.received()), timeout, interval=0.05)
        return self.received()

if __name__ == "__main__":
    import sys
    if sys.argv[1:2] != ["serve"]:
        raise SystemExit("usage: harness.py serve [--dir DIR] [--sink] "
                         "[--account NAME --admin EMAIL [--domain NAME]...] [--smtp]")
    serve_main(sys.argv[2:])
