#!/usr/bin/env python3
"""The benchmark suite of `make bench` (issue #8): every figure is a ratio against a baseline
measured in the same run, back to back, on this machine. Writes bench/results.md and one PNG
chart per figure family, and prints the table.

    bench/run.py [--figures 1,3] [--quick] [--profile] [--keep]

Only a full run (all figures, not --quick) writes bench/results.md and bench/<family>.png;
a partial run writes results-partial.md and <family>-partial.png, a quick one
results-quick.md and <family>-quick.png, so the recorded baseline is not replaced while
one figure is iterated on.

Figures: 1 accepted sends vs nginx, 2 refused sends vs nginx, 3 policy decision
microbenchmark, 4 DKIM-signed delivery vs smtp-source, 5 memory, 6 latency at half the
maximum rate, 7 scaling (HTTP threads, relay connections), 8 accepted sends on PostgreSQL
(issue #9) with one node and with two nodes sharing the database, vs nginx.

Python 3 standard library only (figure 8 loads PostgreSQL with psql). Every process is
started here, on loopback, on free high ports, and stopped by its PID (figure 8's
PostgreSQL cluster, which pg_ctl daemonizes, by pg_ctl stop, else by the postmaster's PID);
every wait is bounded; the work directory is a temporary directory removed at the end
(unless --keep)."""
import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "bench horse battery staple"
ACCOUNT = "bench"
ADMIN = "admin@bench.test"
DOMAIN = "bench.test"
BODY_SIZE = 1024
BASE_SENDERS = 10_000
MEM_SENDERS = 1_000_000

WRK = "/usr/bin/wrk"
NGINX = "/usr/sbin/nginx"
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
GNUPLOT = "/usr/bin/gnuplot"
PGBIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


class Procs:
    """Every process this run starts, so each is stopped by its PID whatever happens."""

    def __init__(self):
        self.live = []
        self.clusters = []  # PgCluster: a daemonized postmaster, stopped by pg_ctl / its PID
        # CPU seconds of stopped clusters: not our children, so os.times() misses them.
        self.cluster_cpu = 0.0

    def start(self, args, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(args, **kw)
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=20):
        if p is None:
            return None
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=10)
        # After the daemons, so that no client is connected when PostgreSQL stops.
        for c in list(self.clusters):
            c.stop()


PROCS = Procs()


# ---------------------------------------------------------------------------------------
# Fixtures


def cli(bin_, *args):
    env = dict(os.environ, POSTERN_PASSWORD=PASSWORD)
    r = subprocess.run([bin_, *args], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"postern {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def insert_senders(db, count, start=0):
    """Verified senders s<i>@bench.test, straight into SQLite in one transaction (the daemon
    is stopped): going through the HTTP API would dominate the run."""
    now = int(time.time())
    con = sqlite3.connect(db)
    try:
        with con:
            (account_id,) = con.execute("SELECT id FROM accounts WHERE name = ?",
                                        (ACCOUNT,)).fetchone()
            con.executemany(
                "INSERT INTO senders (account_id, address, domain, status, added_at,"
                " verified_at, verified_via) VALUES (?, ?, ?, 'verified', ?, ?, 'panel')",
                ((account_id, f"s{i}@{DOMAIN}", DOMAIN, now, now)
                 for i in range(start, start + count)))
            con.execute("UPDATE settings SET sender_auth_enabled = 1 WHERE account_id = ?",
                        (account_id,))
    finally:
        con.close()


def make_base(bin_, d):
    """The account every figure starts from: an Admin, an API key, the sending domain
    bench.test marked verified by the operator (which gives it an RSA-2048 DKIM key),
    10,000 verified senders on it, and the sender-auth switch on."""
    os.makedirs(d)
    db = os.path.join(d, "postern.db")
    cli(bin_, "init", "--db", db, "--account", ACCOUNT, "--admin", ADMIN)
    cli(bin_, "domain", "add", "--db", db, "--account", ACCOUNT, DOMAIN, "--verified")
    key = cli(bin_, "key", "create", "--db", db, "--account", ACCOUNT, "--name", "bench").strip()
    insert_senders(db, BASE_SENDERS)
    return key


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    return dst


def send_body(sender, size=BODY_SIZE):
    """A Netcore /v5/mail/send body of exactly size bytes (text and HTML parts)."""
    def build(pad):
        return json.dumps({
            "from": {"email": sender, "name": "Bench Sender"},
            "subject": "Your order has shipped",
            "content": [{"type": "text/plain", "value": "Hello, " + "x" * pad},
                        {"type": "html", "value": "<p>Hello, your order has shipped.</p>"}],
            "personalizations": [{"to": [{"email": "customer@example.org",
                                          "name": "A Customer"}]}],
        }, separators=(",", ":"))
    short = len(build(0))
    body = build(max(0, size - short))
    assert len(body) == size, (len(body), size)
    return body


def write_bodies(path, senders):
    with open(path, "w") as f:
        for s in senders:
            f.write(send_body(s) + "\n")
    return path


# ---------------------------------------------------------------------------------------
# Servers


class Postern:
    def __init__(self, bin_, d, name, relay="paused", threads=None, connections=None,
                 postgres=None, master_key=None):
        """postgres: a conninfo instead of the SQLite file d/postern.db (several nodes may
        share it); master_key: [dkim] master_key_file, the same file for every node."""
        self.bin = bin_
        self.dir = d
        self.db = None if postgres else os.path.join(d, "postern.db")
        self.name = name
        self.port = free_port()
        self.log_path = os.path.join(d, f"serve-{name}.log")
        ini = ["[server]", f"listen = 127.0.0.1:{self.port}",
               f"public_url = http://127.0.0.1:{self.port}"]
        if threads:
            ini.append(f"threads = {threads}")
        ini += ["[store]", f"postgres = {postgres}" if postgres else f"path = {self.db}"]
        if master_key:
            ini += ["[dkim]", f"master_key_file = {master_key}"]
        ini += ["[relay]"]
        if relay == "paused":
            ini += [f"url = outbox:{os.path.join(d, 'outbox')}", "paused = yes"]
        else:
            ini += [f"url = {relay}", "paused = no"]
        if connections:
            ini.append(f"connections = {connections}")
        # Nothing answers there: the domain is operator-verified and never checked.
        ini += ["[dns]", f"servers = 127.0.0.1:{free_port()}"]
        self.ini = os.path.join(d, f"postern-{name}.ini")
        with open(self.ini, "w") as f:
            f.write("\n".join(ini) + "\n")
        self.proc = None
        self.started_at = None

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = PROCS.start([self.bin, "serve", "--config", self.ini],
                                stdout=self.logf, stderr=self.logf, cwd=self.dir)
        if wait:
            wait_port(self.port, self.proc, 20, f"postern serve ({self.name})")
        return self

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        """User plus system CPU time of every thread so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def queue_stats(self):
        """(messages, commits, largest) from the group-commit line written at exit."""
        m = re.search(r"queue: (\d+) messages in (\d+) commits \(largest (\d+)\)",
                      self.log_text())
        return tuple(map(int, m.groups())) if m else None

    def stop(self):
        code = PROCS.stop(self.proc, timeout=30)
        self.logf.close()
        return code

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def problems(self):
        """Log lines that are not info (errors, warnings), for the report."""
        out = []
        for line in self.log_text().splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1] not in ("info", "debug"):
                out.append(line)
        return out


class Nginx:
    """nginx answering `return 202` on the send path: the HTTP ceiling."""

    def __init__(self, d):
        self.dir = os.path.join(d, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        conf = f"""worker_processes 2;
daemon off;
master_process on;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        location = /v5/mail/send {{ return 202 '{{"ok":true}}'; }}
    }}
}}
"""
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self):
        self.proc = PROCS.start([NGINX, "-e", os.path.join(self.dir, "error.log"), "-p",
                                 self.dir, "-c", self.conf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, 10, "nginx")
        return self

    def stop(self):
        PROCS.stop(self.proc, sig=signal.SIGQUIT)


class Sink:
    """Postfix's smtp-sink on loopback; with a directory, it keeps each message."""

    def __init__(self, directory=None):
        self.port = free_port()
        self.dir = directory
        self.proc = None

    def start(self):
        args = [SINK]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)
            args += ["-d", os.path.join(self.dir, "%M.")]
        args += [f"127.0.0.1:{self.port}", "256"]
        self.proc = PROCS.start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, 10, "smtp-sink")
        return self

    def stop(self):
        PROCS.stop(self.proc)


def pid_alive(pid):
    """True when pid is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] != "Z"
    except OSError:
        return False
    return False


class PgCluster:
    """A throwaway PostgreSQL 15 cluster in d/data, on 127.0.0.1 and a free port, with
    fsync and synchronous_commit on (the defaults, given explicitly: an accepted message
    must be on disk). As root the server runs as user postgres, as scripts/pg-cluster.sh
    does. pg_ctl starts it (the postmaster daemonizes, so it is not in PROCS.live: it is
    registered in PROCS.clusters and stopped with pg_ctl -m fast, else SIGKILL to the PID
    in postmaster.pid)."""

    def __init__(self, d):
        self.dir = d
        self.data = os.path.join(d, "data")
        self.log_path = os.path.join(d, "log")
        self.port = None
        self.pid = None
        self.root = os.geteuid() == 0

    def owner(self, args):
        return ["runuser", "-u", "postgres", "--", *args] if self.root else args

    def conninfo(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def start(self):
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not os.access(os.path.join(PGBIN, tool), os.X_OK):
                raise RuntimeError(f"{PGBIN}/{tool} is missing (scripts/deps.sh bench installs "
                                   "postgresql-15)")
        if not os.access(PSQL, os.X_OK):
            raise RuntimeError(f"{PSQL} is missing (postgresql-client-15)")
        # The socket path (DIR/.s.PGSQL.PORT) must fit in sun_path.
        if len(self.dir) > 90:
            raise RuntimeError(f"{self.dir}: path too long for the socket directory")
        os.makedirs(self.dir, mode=0o700)
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        r = subprocess.run(self.owner([os.path.join(PGBIN, "initdb"), "-D", self.data, "-A",
                                       "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                                       "--locale=C.UTF-8"]),
                           cwd="/", capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"initdb exited {r.returncode}: {r.stderr.strip()[-500:]}")
        open(self.log_path, "a").close()
        if self.root:
            shutil.chown(self.log_path, "postgres", "postgres")
        PROCS.clusters.append(self)
        for attempt in range(3):
            self.port = free_port()
            before = os.path.getsize(self.log_path)
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                    "-c fsync=on -c synchronous_commit=on")
            r = subprocess.run(self.owner([os.path.join(PGBIN, "pg_ctl"), "-D", self.data,
                                           "-l", self.log_path, "-w", "-t", "30", "-o", opts,
                                           "start"]),
                               cwd="/", capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            with open(self.log_path, errors="replace") as f:
                f.seek(before)
                tail = f.read()
            # Another process may have taken the free port meanwhile: try another.
            if attempt == 2 or not re.search(r"could not bind|could not create any TCP/IP",
                                             tail):
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{self.port}: "
                                   f"{(r.stderr + tail).strip()[-500:]}")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        deadline = time.monotonic() + 10
        while True:
            try:
                self.psql("SELECT 1")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)
        return self

    def psql(self, sql, db="postgres", stdin=None):
        """Runs SQL (a script: -f -) with psql; returns its unaligned output."""
        args = [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(db)]
        if stdin is None:
            args += ["-c", sql]
        else:
            args += ["--single-transaction", "-f", "-"]
        r = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"psql exited {r.returncode}: {r.stderr.strip()[:500]}")
        return r.stdout.strip()

    def cpu_seconds(self):
        """User plus system CPU of the postmaster, its live children (a backend per
        connection, checkpointer, WAL writer...) and the children it has reaped."""
        hz = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry), int(fields[1])
            if pid == self.pid:
                total += sum(int(x) for x in fields[11:15])
            elif ppid == self.pid:
                total += int(fields[11]) + int(fields[12])
        return total / hz

    def log_size(self):
        return os.path.getsize(self.log_path)

    def problems(self, since=0):
        """Server log lines from byte since on that deserve a look: WARNING and worse, and
        the LOG lines about checkpoints too close together or clients that vanished."""
        with open(self.log_path, errors="replace") as f:
            f.seek(since)
            lines = f.read().splitlines()
        pat = re.compile(r"\b(WARNING|ERROR|FATAL|PANIC):|checkpoints are occurring too "
                         r"frequently|unexpected EOF|could not receive data|could not send")
        return [l for l in lines if pat.search(l)]

    def stop(self):
        if self not in PROCS.clusters:
            return
        if self.pid:
            PROCS.cluster_cpu += self.cpu_seconds()
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            try:
                subprocess.run(self.owner([os.path.join(PGBIN, "pg_ctl"), "-D", self.data,
                                           "-m", "fast", "-w", "-t", "30", "stop"]),
                               cwd="/", capture_output=True, timeout=40,
                               stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pass
        if self.pid is None:
            try:
                with open(os.path.join(self.data, "postmaster.pid")) as f:
                    self.pid = int(f.readline())
            except (OSError, ValueError):
                pass
        if self.pid and pid_alive(self.pid):
            log(f"pg_ctl stop failed; killing postmaster {self.pid}")
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            deadline = time.monotonic() + 10
            while pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        PROCS.clusters.remove(self)


# ---------------------------------------------------------------------------------------
# Load


def wrk_command(port, bodies, key, duration, script="post.lua", threads=2, conns=64, env=None,
                latency=False):
    """The wrk command line and environment for one run against 127.0.0.1:port."""
    e = dict(os.environ, BENCH_BODIES=bodies, BENCH_KEY=key, BENCH_PATH="/v5/mail/send",
             BENCH_DIR=HERE, BENCH_THREADS=str(threads))
    e.update(env or {})
    args = [WRK, f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
            "-s", os.path.join(HERE, script)]
    if latency:
        args.append("--latency")
    args.append(f"http://127.0.0.1:{port}/v5/mail/send")
    return args, e


def wrk_summary(code, stdout, stderr):
    """wrk's done() summary (bench/post.lua prints it) plus rps."""
    if code != 0:
        raise RuntimeError(f"wrk exited {code}: {stderr.strip()}")
    m = re.search(r"^BENCHJSON (\{.*\})$", stdout, re.M)
    if not m:
        raise RuntimeError("wrk printed no summary:\n" + stdout + stderr)
    s = json.loads(m.group(1))
    s["rps"] = s["requests"] / (s["duration_us"] / 1e6)
    s["text"] = stdout
    return s


def wrk(port, bodies, key, duration, *, script="post.lua", threads=2, conns=64, env=None,
        latency=False, profile=None):
    """wrk against 127.0.0.1:port; returns its done() summary plus rps. profile: a Postern
    to record with perf while wrk runs (cpu-clock, call graphs)."""
    args, e = wrk_command(port, bodies, key, duration, script, threads, conns, env, latency)
    perf = None
    if profile:
        perf = start_perf(profile, duration)
    r = subprocess.run(args, env=e, capture_output=True, text=True, timeout=duration + 60)
    if perf:
        finish_perf(*perf)
    return wrk_summary(r.returncode, r.stdout, r.stderr)


def wrk_together(ports, bodies, key, duration, *, threads=1, conns=32):
    """One wrk per port, all started at once (wrk drives a single host:port): returns their
    summaries in the order of ports. The rates add up because the runs overlap (same -d,
    started within milliseconds of each other)."""
    started = []
    try:
        for port in ports:
            args, e = wrk_command(port, bodies, key, duration, threads=threads, conns=conns)
            started.append(PROCS.start(args, env=e, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True))
        out = []
        for p in started:
            try:
                stdout, stderr = p.communicate(timeout=duration + 60)
            except subprocess.TimeoutExpired:
                PROCS.stop(p, sig=signal.SIGKILL)
                raise RuntimeError(f"wrk (pid {p.pid}) did not finish within {duration + 60}s")
            PROCS.stop(p)
            out.append(wrk_summary(p.returncode, stdout, stderr))
        return out
    finally:
        for p in started:
            PROCS.stop(p, sig=signal.SIGKILL)


PROFILE_DIR = HERE


def start_perf(server, duration):
    out = os.path.join(server.dir, f"perf-{server.name}.data")
    p = PROCS.start(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
                     "--call-graph", "dwarf,8192", "-p",
                     str(server.proc.pid), "-o", out, "--", "sleep", str(max(1, duration - 1))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, out, server


def finish_perf(p, out, server):
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        PROCS.stop(p, sig=signal.SIGINT)
    PROCS.stop(p)
    if not os.path.exists(out):
        return
    report = os.path.join(PROFILE_DIR, f"profile-{server.name}.txt")

    def section(title, *args):
        r = subprocess.run(["perf", "report", "-i", out, "--stdio", *args],
                           capture_output=True, text=True, timeout=300)
        # Only the rows: no comment headers, no frames perf could not name.
        rows = [l.rstrip() for l in r.stdout.splitlines()
                if l.strip() and not l.startswith("#") and not re.search(r"\] 0x[0-9a-f]+$", l)]
        return [f"## {title}", ""] + rows[:60] + [""]

    lines = [f"# perf record -e cpu-clock -F 999 --call-graph dwarf -p <postern> during "
             f"{server.name}", ""]
    lines += section("CPU by thread name", "--no-children", "-g", "none", "--sort", "comm")
    lines += section("CPU by library", "--no-children", "-g", "none", "--sort", "dso")
    lines += section("Inclusive (children) time by function, over 2%", "--children", "-g",
                     "none", "--percent-limit", "2", "--sort", "sym")
    lines += section("Self time by function, over 0.5%", "--no-children", "-g", "none",
                     "--percent-limit", "0.5", "--sort", "dso,sym")
    with open(report, "w") as f:
        f.write("\n".join(lines))
    log(f"profile written to {os.path.relpath(report, ROOT)}")


def http_send(port, key, body, timeout=30):
    """One send over a fresh connection; returns (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/v5/mail/send", body=body,
                  headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def queue_messages(port, key, bodies, count, workers=8, timeout=300):
    """Sends exactly count messages over keep-alive connections from a few threads (wrk
    cannot stop at an exact count); every answer must be 200."""
    reqs = []
    for b in bodies:
        data = b.encode()
        reqs.append((f"POST /v5/mail/send HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n").encode() + data)
    lock = threading.Lock()
    state = {"left": count, "bad": 0, "err": None}
    deadline = time.monotonic() + timeout

    def take():
        with lock:
            if state["left"] <= 0:
                return False
            state["left"] -= 1
            return True

    def worker(w):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            buf = b""
            i = w
            while take():
                if time.monotonic() > deadline:
                    raise RuntimeError("queueing took too long")
                s.sendall(reqs[i % len(reqs)])
                i += 1
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("connection closed")
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                while len(rest) < length:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("connection closed")
                    rest += chunk
                buf = rest[length:]
                if status != 200:
                    with lock:
                        state["bad"] += 1
            s.close()
        except Exception as ex:  # noqa: BLE001 - reported below
            state["err"] = ex

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 5)
    if state["err"]:
        raise RuntimeError(f"queueing failed: {state['err']}")
    if state["bad"]:
        raise RuntimeError(f"queueing: {state['bad']} answers were not 200")


def cpu_snapshot():
    """(wall, busy, steal, mine) in seconds: all CPUs' non-idle time and the hypervisor's
    steal from /proc/stat, and this process's CPU plus that of its reaped children and of
    the PostgreSQL clusters it started."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
    t = os.times()
    # The PostgreSQL clusters this run started are ours too, though pg_ctl daemonized them.
    mine = (t.user + t.system + t.children_user + t.children_system + PROCS.cluster_cpu
            + sum(c.cpu_seconds() for c in PROCS.clusters if c.pid))
    return (time.monotonic(), (user + nice + system + irq + softirq + steal) / hz, steal / hz,
            mine)


def other_load(before, after):
    """Cores used by everything this run did not start (other users of the machine), and
    cores stolen by the hypervisor, on average between two snapshots."""
    wall = max(1e-6, after[0] - before[0])
    other = (after[1] - before[1]) - (after[3] - before[3])
    return max(0.0, other / wall), (after[2] - before[2]) / wall


def db_ro(db):
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def db_scalar(db, sql, args=()):
    con = db_ro(db)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def wait_sent(server, count, timeout):
    """Polls the database read-only until count messages are sent; returns the seconds since
    the daemon was spawned. Fails early when a message is deferred, failed or dropped."""
    deadline = time.monotonic() + timeout
    con = None
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"postern ({server.name}) exited {server.proc.returncode}")
        try:
            if con is None:
                con = db_ro(server.db)
            rows = dict(con.execute("SELECT status, COUNT(*) FROM messages GROUP BY status"))
        except sqlite3.Error:
            rows = {}
        if rows.get("sent", 0) >= count:
            elapsed = time.monotonic() - server.started_at
            con.close()
            return elapsed
        bad = {k: v for k, v in rows.items() if k in ("deferred", "failed", "dropped")}
        if bad:
            con.close()
            raise RuntimeError(f"delivery ({server.name}): {bad}; see {server.log_path}")
        if time.monotonic() > deadline:
            if con:
                con.close()
            raise RuntimeError(f"delivery ({server.name}): only {rows} after {timeout}s")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, opts):
        self.opts = opts
        self.quick = opts.quick
        self.bin = os.path.join(opts.build, "postern")
        self.bench_policy = os.path.join(opts.build, "bench_policy")
        self.tmp = tempfile.mkdtemp(prefix="postern-bench-")
        self.rows = []        # the summary table
        self.details = {}     # figure -> markdown lines
        self.charts = []      # (png, title)
        self.notes = []       # what looked wrong
        self.data = {}        # numbers shared between figures
        self.dur = 3 if opts.quick else 10
        self.n_deliver = 2000 if opts.quick else 20000
        # Only a full run replaces results.md and the charts beside it; a quick or partial
        # run writes results-quick.md / results-partial.md and charts named alike.
        self.load_start = os.getloadavg()
        self.load = {}  # figure -> (cores used by others, cores stolen)
        self.cpu_start = cpu_snapshot()
        self.suffix = "-quick" if opts.quick else "" if opts.all else "-partial"

    # helpers -------------------------------------------------------------------------

    def row(self, fig, name, baseline, ours, ratio, target, met):
        self.rows.append((fig, name, baseline, ours, ratio, target, met))

    def check_log(self, server):
        bad = server.problems()
        if bad:
            self.notes.append(f"postern log ({server.name}) has {len(bad)} non-info lines, "
                              f"first: `{bad[0][:200]}`")

    def base(self):
        if "base" not in self.data:
            log(f"fixtures: account, Admin, API key, verified domain with DKIM, "
                f"{BASE_SENDERS:,} verified senders, sender authorization on")
            d = os.path.join(self.tmp, "base")
            self.data["key"] = make_base(self.bin, d)
            self.data["base"] = d
            self.data["ok_bodies"] = write_bodies(
                os.path.join(self.tmp, "ok.bodies"),
                [f"s{(i * 157) % BASE_SENDERS}@{DOMAIN}" for i in range(64)])
            self.data["refused_bodies"] = write_bodies(
                os.path.join(self.tmp, "refused.bodies"),
                [f"stranger{i}@{DOMAIN}" for i in range(64)])
        return self.data["base"], self.data["key"]

    def fresh(self, name):
        base, _ = self.base()
        return copy_dir(base, os.path.join(self.tmp, name))

    def nginx_rps(self, label):
        _, key = self.base()
        ng = Nginx(self.tmp).start()
        try:
            time.sleep(0.2)
            r = wrk(ng.port, self.data["ok_bodies"], key, self.dur)
        finally:
            ng.stop()
        if r["err_status"] or r["err_connect"] or r["err_read"] or r["err_timeout"]:
            self.notes.append(f"nginx ({label}): errors {r}")
        log(f"nginx ({label}): {r['rps']:,.0f} req/s")
        return r

    def postern_wrk(self, name, bodies, threads=None, profile=False, expect_ok=True):
        _, key = self.base()
        d = self.fresh(name)
        pg = Postern(self.bin, d, name, threads=threads).start()
        try:
            status, _ = http_send(pg.port, key, open(bodies).readline().strip())
            if status != (200 if expect_ok else 403):
                raise RuntimeError(f"{name}: warm-up send answered {status}")
            cpu0, t0 = pg.cpu_seconds(), time.monotonic()
            r = wrk(pg.port, bodies, key, self.dur, profile=pg if profile else None)
            r["cores"] = (pg.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        finally:
            pg.stop()
        self.check_log(pg)
        r["commits"] = pg.queue_stats()
        r["queued"] = db_scalar(pg.db, "SELECT COUNT(*) FROM messages")
        r["dropped"] = db_scalar(pg.db, "SELECT COALESCE(SUM(count), 0) FROM drops "
                                 "WHERE reason = 'sender_not_authorized'")
        return r

    @staticmethod
    def commit_note(r):
        if not r.get("commits"):
            return ""
        n, commits, largest = r["commits"]
        return (f", written in {commits:,} group commits ({n / max(1, commits):.1f} messages "
                f"per commit on average, largest {largest})")

    # figures -------------------------------------------------------------------------

    def fig1(self):
        ng = self.nginx_rps("figure 1")
        r = self.postern_wrk("fig1-accepted", self.data["ok_bodies"], profile=self.opts.profile)
        bad = r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
        if bad:
            self.notes.append(f"figure 1: {bad} sends were not 200 or failed "
                              f"(status {r['err_status']}, timeouts {r['err_timeout']})")
        if r["queued"] < r["requests"]:
            self.notes.append(f"figure 1: wrk saw {r['requests']} answers but only "
                              f"{r['queued']} messages are in the queue")
        log(f"postern accepted: {r['rps']:,.0f} sends/s ({r['queued']:,} queued)")
        ratio = r["rps"] / ng["rps"]
        self.data["fig1"] = (ng, r)
        self.row(1, "Accepted sends (req/s, wrk -t2 -c64)", f"{ng['rps']:,.0f} (nginx)",
                 f"{r['rps']:,.0f}", ratio, "≥ 0.6×", ratio >= 0.6)
        self.throughput_chart()
        self.details[1] = [
            f"`wrk -t2 -c64 -d{self.dur}s -s bench/post.lua` POSTs 64 distinct 1,024-byte "
            "Netcore-shape bodies (`/v5/mail/send` takes Netcore's dialect; the JSON is the "
            "same fields as SendGrid's) round-robin, From among the 10,000 verified senders "
            "of bench.test, sender authorization on, default `[server] threads` (32), "
            "durable group-commit queue (SQLite WAL, synchronous=FULL), `[relay] paused = "
            "yes`. The baseline is nginx (`worker_processes 2; access_log off; return 202`) "
            "with the same script, just before. Postern answers 200 (Netcore's success).",
            f"nginx {ng['rps']:,.0f} req/s; Postern {r['rps']:,.0f} sends/s, "
            f"p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms; "
            f"{r['queued']:,} messages in the queue afterwards" + self.commit_note(r) +
            f"; the daemon used {r['cores']:.2f} of the 2 cores while wrk ran."]

    def fig2(self):
        ng = self.nginx_rps("figure 2")
        r = self.postern_wrk("fig2-refused", self.data["refused_bodies"], expect_ok=False,
                             profile=self.opts.profile)
        # Every answer must be the 403; wrk counts them as non-2xx.
        if r["err_status"] < r["requests"]:
            self.notes.append(f"figure 2: only {r['err_status']} of {r['requests']} answers "
                              "were non-2xx (all should be 403 sender_not_authorized)")
        if r["queued"]:
            self.notes.append(f"figure 2: {r['queued']} messages were queued (expected 0)")
        if r["dropped"] < r["requests"]:
            self.notes.append(f"figure 2: {r['dropped']:,} drops recorded for "
                              f"{r['requests']:,} refusals")
        log(f"postern refused: {r['rps']:,.0f} req/s ({r['dropped']:,} drops recorded)")
        ratio = r["rps"] / ng["rps"]
        self.data["fig2"] = (ng, r)
        self.row(2, "Refused sends (req/s, sender_not_authorized)", f"{ng['rps']:,.0f} (nginx)",
                 f"{r['rps']:,.0f}", ratio, "≥ 0.8×", ratio >= 0.8)
        self.throughput_chart()
        self.details[2] = [
            "As figure 1, with 64 From addresses on bench.test that are not listed: every "
            "answer is 403 `sender_not_authorized` and the refusal is counted in `drops`, "
            "checked after the daemon stopped.",
            f"nginx {ng['rps']:,.0f} req/s; Postern {r['rps']:,.0f} refusals/s, "
            f"p99 {r['p99_us'] / 1000:.2f} ms; {r['dropped']:,} refusals in `drops` for "
            f"{r['requests']:,} answers seen by wrk; the daemon used {r['cores']:.2f} of the 2 "
            "cores while wrk ran."]

    def fig3(self):
        if not os.path.exists(self.bench_policy):
            raise RuntimeError(f"{self.bench_policy} is missing: cmake --build "
                               f"{self.opts.build} --target bench_policy")
        args = [self.bench_policy]
        if self.quick:
            args += ["--queries", "200000", "--repeats", "5"]
        log("policy_decide microbenchmark: 10, 10k, 1M senders")
        r = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"bench_policy exited {r.returncode}: {r.stderr}")
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        sizes = [l for l in lines if "senders" in l]
        ratio = next(l["ratio"] for l in lines if "ratio" in l)
        for s in sizes:
            log(f"  {s['senders']:>9,} senders: {s['ns_median']:.1f} ns per decision")
        worst = max(s["ns_median"] for s in sizes)
        small = sizes[0]
        big = sizes[-1]
        self.row(3, "Policy decision, ns (1M senders)", f"{small['ns_median']:.1f} ns (10)",
                 f"{big['ns_median']:.1f} ns", ratio, "≤ 100 ns, ratio ≤ 1.5",
                 worst <= 100 and ratio <= 1.5)
        self.details[3] = [
            "`build/bench_policy` (bench/bench_policy.c) calls `policy_decide` in a loop over "
            f"{sizes[0]['queries']:,} precomputed, shuffled From addresses: 80% verified "
            "senders drawn uniformly from the whole snapshot, 15% unknown addresses on an "
            "approved domain, 5% on a domain never added; four verified domains, switch on. "
            "Each repeat times one pass with clock_gettime(CLOCK_MONOTONIC) after an untimed "
            "one; the sizes take turns within each repeat so drift hits all of them; the "
            f"figure is the median of {sizes[0]['repeats']} repeats. The ratio column is "
            "1M/10. The per-call cost includes reading the query string (the decision "
            "hashes the whole address).",
            "| senders | ns per decision (median) | min | max |", "|---:|---:|---:|---:|"] + [
            f"| {s['senders']:,} | {s['ns_median']:.1f} | {s['ns_min']:.1f} | "
            f"{s['ns_max']:.1f} |" for s in sizes]
        self.plot("policy", "Policy decision: ns per call", "verified senders",
                  "ns per decision",
                  [(f"{s['senders']:,}", s["ns_median"]) for s in sizes],
                  extra="set logscale y\n" if big["ns_median"] / small["ns_median"] > 20 else "")

    def queued_db(self):
        """A database with n_deliver messages queued through the API (delivery paused),
        daemon stopped; each delivery run works on a copy."""
        if "queued" in self.data:
            return self.data["queued"]
        _, key = self.base()
        d = self.fresh("queued")
        pg = Postern(self.bin, d, "queue").start()
        t0 = time.monotonic()
        try:
            with open(self.data["ok_bodies"]) as f:
                bodies = [l.strip() for l in f if l.strip()]
            queue_messages(pg.port, key, bodies, self.n_deliver)
        finally:
            pg.stop()
        self.check_log(pg)
        n = db_scalar(pg.db, "SELECT COUNT(*) FROM messages WHERE status = 'queued'")
        if n != self.n_deliver:
            raise RuntimeError(f"{n} messages queued, wanted {self.n_deliver}")
        log(f"queued {n:,} messages in {time.monotonic() - t0:.1f}s (paused)")
        self.data["queued"] = d
        return d

    def deliver(self, name, connections=None, profile=False, count=None):
        """Copies the queued database, starts Postern unpaused towards a fresh smtp-sink
        and times from spawn until count messages are sent."""
        count = count or self.n_deliver
        d = copy_dir(self.queued_db(), os.path.join(self.tmp, name))
        sink = Sink().start()
        pg = Postern(self.bin, d, name, relay=f"smtp://127.0.0.1:{sink.port}/bench",
                     connections=connections)
        perf = None
        try:
            pg.start(wait=False)
            if profile:
                wait_port(pg.port, pg.proc, 20, "postern")
                perf = start_perf(pg, 8)
            elapsed = wait_sent(pg, count, timeout=max(120, count / 100))
            self.data[f"cores-{name}"] = pg.cpu_seconds() / elapsed
        finally:
            if perf:
                finish_perf(*perf)
            pg.stop()
            sink.stop()
        self.check_log(pg)
        return count / elapsed, elapsed

    def message_size(self):
        """The size of one delivered message (headers, DKIM-Signature and body), from a copy
        of the queue reduced to one message, caught by a sink that keeps files."""
        d = copy_dir(self.queued_db(), os.path.join(self.tmp, "probe"))
        con = sqlite3.connect(os.path.join(d, "postern.db"))
        with con:
            con.execute("DELETE FROM messages WHERE id <> (SELECT MIN(id) FROM messages)")
        con.close()
        sink = Sink(os.path.join(d, "sink")).start()
        pg = Postern(self.bin, d, "probe", relay=f"smtp://127.0.0.1:{sink.port}/bench")
        try:
            pg.start(wait=False)
            wait_sent(pg, 1, timeout=30)
        finally:
            pg.stop()
            sink.stop()
        files = [os.path.join(r, f) for r, _, fs in os.walk(sink.dir) for f in fs]
        if len(files) != 1:
            raise RuntimeError(f"probe: {len(files)} files in the sink")
        with open(files[0], "rb") as f:
            lines = f.read().replace(b"\r\n", b"\n").split(b"\n")
        # smtp-sink puts X-Client-*, X-Helo/Mail/Rcpt-Args and its own Received header (with
        # continuation lines) before the message: drop them, and count CRLF line ends as on
        # the wire.
        i = 0
        while i < len(lines) and lines[i].startswith((b"X-Client-", b"X-Helo-Args:",
                                                      b"X-Mail-Args:", b"X-Rcpt-Args:")):
            i += 1
        if i < len(lines) and lines[i].startswith(b"Received:") and b"smtp-sink" in b"".join(
                lines[i:i + 3]):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
        msg = b"\r\n".join(lines[i:])
        signed = msg.startswith(b"DKIM-Signature:") or b"\r\nDKIM-Signature:" in msg
        return len(msg), signed

    def fig4(self):
        self.queued_db()
        size, signed = self.message_size()
        if not signed:
            self.notes.append("figure 4: the delivered message has no DKIM-Signature")
        log(f"one delivered message: {size:,} bytes, DKIM-signed: {signed}")
        rate, elapsed = self.deliver("fig4-deliver", profile=self.opts.profile)
        log(f"postern delivered {self.n_deliver:,} in {elapsed:.2f}s: {rate:,.0f} msg/s")
        sink = Sink().start()
        try:
            t0 = time.monotonic()
            r = subprocess.run([SOURCE, "-s", "4", "-m", str(self.n_deliver), "-l", str(size),
                                f"127.0.0.1:{sink.port}"], capture_output=True, text=True,
                               timeout=300)
            base_elapsed = time.monotonic() - t0
            t0 = time.monotonic()
            subprocess.run([SOURCE, "-d", "-s", "4", "-m", str(self.n_deliver), "-l", str(size),
                            f"127.0.0.1:{sink.port}"], capture_output=True, text=True,
                           timeout=300)
            reuse_elapsed = time.monotonic() - t0
        finally:
            sink.stop()
        if r.returncode != 0:
            raise RuntimeError(f"smtp-source exited {r.returncode}: {r.stderr}")
        base = self.n_deliver / base_elapsed
        reuse = self.n_deliver / reuse_elapsed
        log(f"smtp-source -s 4: {base:,.0f} msg/s ({base_elapsed:.2f}s); with -d "
            f"(connection reuse) {reuse:,.0f} msg/s")
        ratio = rate / base
        self.data["fig4"] = (base, rate, reuse)
        self.row(4, f"Delivery, DKIM-signed (msg/s, {self.n_deliver:,} msgs)",
                 f"{base:,.0f} (smtp-source -s 4)", f"{rate:,.0f}", ratio, "≥ 0.5×",
                 ratio >= 0.5)
        self.details[4] = [
            f"{self.n_deliver:,} messages (the 1 KB request of figure 1, one recipient) are "
            "queued through the API with delivery paused; the daemon is stopped and started "
            "again on a copy with `[relay] url = smtp://127.0.0.1:PORT/bench` (default 4 "
            "connections), and the time from spawning it until the database (polled "
            "read-only every 50 ms) shows all of them `sent` is the figure, start-up "
            f"included. Each message is signed with the domain's RSA-2048 DKIM key "
            f"(checked: {'yes' if signed else 'NO'}); one delivered message is {size:,} bytes "
            "on the wire (headers, DKIM-Signature, text and HTML parts). Baseline: "
            f"`smtp-source -s 4 -m {self.n_deliver} -l {size}` (that many bytes of body, plus "
            "its own few headers) to a fresh smtp-sink (which, like Postern's, keeps no "
            "files), timed around the process. smtp-source opens a new SMTP session per "
            "message; with `-d` (reusing sessions, as Postern does) it did "
            f"{reuse:,.0f} msg/s, for reference.",
            f"Postern {elapsed:.2f} s ({rate:,.0f} msg/s, using "
            f"{self.data['cores-fig4-deliver']:.2f} of the 2 cores on average); smtp-source "
            f"{base_elapsed:.2f} s ({base:,.0f} msg/s)."]
        self.plot("delivery", f"Delivery of {self.n_deliver:,} messages to smtp-sink", "",
                  "messages per second",
                  [("smtp-source -s 4", base, True), ("smtp-source -d -s 4", reuse, True),
                   ("Postern (DKIM, 4 conns)", rate)])

    def fig5(self):
        d = self.fresh("fig5-memory")
        log(f"inserting {MEM_SENDERS - BASE_SENDERS:,} more verified senders "
            f"({MEM_SENDERS:,} in all)")
        insert_senders(os.path.join(d, "postern.db"), MEM_SENDERS - BASE_SENDERS,
                       start=BASE_SENDERS)
        _, key = self.base()
        pg = Postern(self.bin, d, "memory").start()
        try:
            time.sleep(1.0)
            idle = pg.rss_kb()
            body = open(self.data["ok_bodies"]).readline().strip()
            t0 = time.monotonic()
            status, _ = http_send(pg.port, key, body, timeout=120)
            first = time.monotonic() - t0
            if status != 200:
                raise RuntimeError(f"figure 5: the send answered {status}")
            time.sleep(1.0)
            loaded = pg.rss_kb()
            t0 = time.monotonic()
            http_send(pg.port, key, body)
            second = time.monotonic() - t0
        finally:
            pg.stop()
        self.check_log(pg)
        per = (loaded - idle) * 1024 / MEM_SENDERS
        log(f"RSS idle {idle / 1024:.1f} MB, with {MEM_SENDERS:,} senders loaded "
            f"{loaded / 1024:.1f} MB: {per:.0f} bytes per sender; first send "
            f"{first * 1000:.0f} ms (snapshot load), next {second * 1000:.1f} ms")
        self.row(5, "Memory: bytes per verified sender (1M)", f"{idle / 1024:.1f} MB idle",
                 f"{per:.0f} B", None, "≤ 150 B, idle ≤ 30 MB",
                 per <= 150 and idle <= 30 * 1024)
        self.details[5] = [
            f"The daemon on a copy of the fixtures with {MEM_SENDERS:,} verified senders "
            "(inserted with sqlite3 while it was stopped). VmRSS from /proc/PID/status 1 s "
            "after it listens (idle: nothing loaded yet), then 1 s after one accepted send, "
            "which loads the account's policy snapshot. Bytes per sender = (loaded − idle) / "
            f"{MEM_SENDERS:,}.",
            f"idle {idle:,} kB; loaded {loaded:,} kB; {per:.0f} bytes per sender. The first "
            f"send (which builds the snapshot) took {first * 1000:.0f} ms, the next "
            f"{second * 1000:.1f} ms."]
        self.plot("memory", f"Daemon RSS, {MEM_SENDERS:,} verified senders", "", "MB",
                  [("idle", idle / 1024), ("snapshot loaded", loaded / 1024)])

    def max_rate(self):
        if "fig1" in self.data:
            return self.data["fig1"][1]["rps"], "figure 1"
        r = self.postern_wrk("fig6-max", self.data["ok_bodies"])
        return r["rps"], "a run like figure 1's, just before"

    def fig6(self):
        self.base()
        top, where = self.max_rate()
        rate = max(1, int(top / 2))
        _, key = self.base()
        d = self.fresh("fig6-latency")
        pg = Postern(self.bin, d, "latency").start()
        try:
            r = wrk(pg.port, self.data["ok_bodies"], key, self.dur, script="paced.lua",
                    latency=True, env={"BENCH_RATE": str(rate)})
        finally:
            pg.stop()
        self.check_log(pg)
        p50, p99 = r["p50_us"] / 1000, r["p99_us"] / 1000
        log(f"latency at {rate:,}/s offered ({r['rps']:,.0f}/s achieved): p50 {p50:.2f} ms, "
            f"p99 {p99:.2f} ms")
        if r["rps"] < rate * 0.9:
            self.notes.append(f"figure 6: only {r['rps']:,.0f} of {rate:,} req/s offered "
                              "were achieved")
        if r["err_status"] or r["err_timeout"]:
            self.notes.append(f"figure 6: {r['err_status']} non-2xx, "
                              f"{r['err_timeout']} timeouts")
        self.row(6, f"Latency at half max ({rate:,} req/s), p99", f"p50 {p50:.2f} ms",
                 f"p99 {p99:.2f} ms", None, "p99 ≤ 5 ms", p99 <= 5)
        self.details[6] = [
            f"The maximum is {top:,.0f} sends/s from {where}; half of it, {rate:,} req/s, is "
            "offered by `wrk -t2 -c64 --latency -s bench/paced.lua`. wrk2 is not in Debian: "
            "paced.lua's `delay()` keeps a per-thread schedule (rate / 2 threads) and holds "
            "each request until its slot, so the total offered rate is the target as long "
            "as the server keeps up. Percentiles are wrk's, timed from the actual send (not "
            "the slot, unlike wrk2): a stall is under-reported.",
            f"achieved {r['rps']:,.0f} req/s; p50 {p50:.2f} ms, p75 {r['p75_us'] / 1000:.2f} ms, "
            f"p90 {r['p90_us'] / 1000:.2f} ms, p99 {p99:.2f} ms, p99.9 "
            f"{r['p999_us'] / 1000:.2f} ms, max {r['lat_max_us'] / 1000:.2f} ms."]
        self.plot("latency", f"Send latency at {rate:,} req/s (half max)", "percentile", "ms",
                  [("p50", p50), ("p75", r["p75_us"] / 1000), ("p90", r["p90_us"] / 1000),
                   ("p99", p99), ("p99.9", r["p999_us"] / 1000)])

    def fig7(self):
        self.base()
        http_pts = []
        for t in (1, 2, 4):
            r = self.postern_wrk(f"fig7-threads{t}", self.data["ok_bodies"], threads=t)
            log(f"HTTP threads {t}: {r['rps']:,.0f} sends/s")
            http_pts.append((f"{t}", r["rps"]))
        if "fig1" in self.data:
            http_pts.append(("32 (default, fig. 1)", self.data["fig1"][1]["rps"]))
        self.plot("scaling-http", "Accepted sends by [server] threads", "HTTP threads",
                  "sends per second", http_pts)
        n = max(1000, self.n_deliver // 4)
        relay_pts = []
        for c in (1, 2, 4, 8):
            rate, elapsed = self.deliver(f"fig7-conns{c}", connections=c, count=n)
            log(f"relay connections {c}: {rate:,.0f} msg/s ({n:,} in {elapsed:.2f}s)")
            relay_pts.append((f"{c}", rate))
        self.plot("scaling-relay", "DKIM-signed delivery by [relay] connections",
                  "relay connections", "messages per second", relay_pts)
        h = dict(http_pts)
        rl = dict(relay_pts)
        self.row(7, "Scaling: sends/s at 4 vs 1 HTTP threads", f"{h['1']:,.0f} (1 thread)",
                 f"{h['4']:,.0f} (4)", h["4"] / h["1"], "(chart)", None)
        self.row(7, "Scaling: msg/s at 8 vs 1 relay connections", f"{rl['1']:,.0f} (1 conn)",
                 f"{rl['8']:,.0f} (8)", rl["8"] / rl["1"], "(chart)", None)
        self.details[7] = [
            f"HTTP: figure 1's wrk run ({self.dur} s each) with `[server] threads` = 1, 2, 4. "
            f"Relay: figure 4's delivery with `[relay] connections` = 1, 2, 4, 8, timed until "
            f"the first {n:,} of the {self.n_deliver:,} queued messages are sent.",
            "| HTTP threads | sends/s |", "|---|---:|"] + [
            f"| {k} | {v:,.0f} |" for k, v in http_pts] + [
            "", "| relay connections | msg/s |", "|---|---:|"] + [
            f"| {k} | {v:,.0f} |" for k, v in relay_pts]

    def pg_base(self, cluster):
        """Figure 1's fixtures in database bench_base of the cluster (the CLI with
        --postgres, then the 10,000 senders with one psql COPY); each run copies it with
        CREATE DATABASE ... TEMPLATE. Returns (API key, master key file)."""
        log(f"PostgreSQL fixtures: account, Admin, API key, verified domain with DKIM, "
            f"{BASE_SENDERS:,} verified senders (psql COPY), sender authorization on")
        cluster.psql("CREATE DATABASE bench_base")
        ci = cluster.conninfo("bench_base")
        master_key = os.path.join(self.tmp, "fig8-dkim-master.key")
        cli(self.bin, "init", "--postgres", ci, "--account", ACCOUNT, "--admin", ADMIN)
        cli(self.bin, "domain", "add", "--postgres", ci, "--account", ACCOUNT, "--master-key",
            master_key, DOMAIN, "--verified")
        key = cli(self.bin, "key", "create", "--postgres", ci, "--account", ACCOUNT,
                  "--name", "bench").strip()
        account_id = int(cluster.psql(f"SELECT id FROM accounts WHERE name = '{ACCOUNT}'",
                                      "bench_base"))
        now = int(time.time())
        rows = "".join(f"{account_id}\ts{i}@{DOMAIN}\t{DOMAIN}\tverified\t{now}\t{now}\tpanel\n"
                       for i in range(BASE_SENDERS))
        cluster.psql(None, "bench_base", stdin=(
            "COPY senders (account_id, address, domain, status, added_at, verified_at, "
            "verified_via) FROM STDIN;\n" + rows + "\\.\n"
            f"UPDATE settings SET sender_auth_enabled = 1 WHERE account_id = {account_id};\n"))
        cluster.psql("ANALYZE", "bench_base")
        n = int(cluster.psql("SELECT COUNT(*) FROM senders WHERE status = 'verified'",
                             "bench_base"))
        if n != BASE_SENDERS:
            raise RuntimeError(f"{n} verified senders in bench_base, wanted {BASE_SENDERS}")
        return key, master_key

    def pg_nodes(self, cluster, name, nodes, key, master_key):
        """Accepted sends on PostgreSQL: a fresh copy of bench_base, `nodes` serve processes
        on it (different ports), one warm-up send to each, then wrk: -t2 -c64 against the
        only node, or one -t1 -c32 per node, all at once. CPU of the daemons, the cluster
        and wrk is measured over the wrk run."""
        db = name.replace("-", "_")
        cluster.psql(f"CREATE DATABASE {db} TEMPLATE bench_base")
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        servers = []
        for i in range(nodes):
            while True:  # free_port may hand out the same port twice in a row
                pg = Postern(self.bin, d, f"{name}-node{i + 1}", postgres=cluster.conninfo(db),
                             master_key=master_key)
                if all(pg.port != o.port for o in servers):
                    break
            servers.append(pg)
        log_from = cluster.log_size()
        body = open(self.data["ok_bodies"]).readline().strip()
        try:
            for pg in servers:
                pg.start()
            for pg in servers:
                status, _ = http_send(pg.port, key, body)
                if status != 200:
                    raise RuntimeError(f"{pg.name}: warm-up send answered {status}")
            t0 = time.monotonic()
            cpu0 = [pg.cpu_seconds() for pg in servers]
            pg_cpu0 = cluster.cpu_seconds()
            kids0 = os.times()
            if nodes == 1:
                runs = [wrk(servers[0].port, self.data["ok_bodies"], key, self.dur)]
            else:
                runs = wrk_together([pg.port for pg in servers], self.data["ok_bodies"], key,
                                    self.dur, threads=max(1, 2 // nodes),
                                    conns=64 // nodes)
            wall = time.monotonic() - t0
            kids1 = os.times()
            cores = [(pg.cpu_seconds() - c) / wall for pg, c in zip(servers, cpu0)]
            pg_cores = (cluster.cpu_seconds() - pg_cpu0) / wall
        finally:
            for pg in servers:
                if pg.proc:
                    pg.stop()
        for pg in servers:
            self.check_log(pg)
        problems = cluster.problems(log_from)
        if problems:
            self.notes.append(f"figure 8 ({name}): the PostgreSQL log has {len(problems)} "
                              f"warning/error lines, first: `{problems[0][:200]}`")
        queued = int(cluster.psql("SELECT COUNT(*) FROM messages", db))
        requests = sum(r["requests"] for r in runs)
        bad = sum(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
                  for r in runs)
        if bad:
            self.notes.append(f"figure 8 ({name}): {bad} sends were not 200 or failed")
        if queued < requests:
            self.notes.append(f"figure 8 ({name}): wrk saw {requests:,} answers but only "
                              f"{queued:,} messages are in the queue")
        cluster.psql(f"DROP DATABASE {db}")
        return {"rps": sum(r["rps"] for r in runs), "runs": runs, "requests": requests,
                "queued": queued, "cores": cores, "pg_cores": pg_cores,
                "wrk_cores": ((kids1.children_user + kids1.children_system)
                              - (kids0.children_user + kids0.children_system)) / wall,
                "commits": [pg.queue_stats() for pg in servers], "problems": problems,
                "p99_us": max(r["p99_us"] for r in runs), "p50_us": [r["p50_us"] for r in runs]}

    def fig8(self):
        self.base()
        cluster = PgCluster(os.path.join(self.tmp, "pg"))
        if cluster.root:
            # The server runs as user postgres: it must reach its directory inside ours.
            os.chmod(self.tmp, 0o711)
        try:
            cluster.start()
            log(f"PostgreSQL 15 on 127.0.0.1:{cluster.port} (postmaster {cluster.pid})")
            key, master_key = self.pg_base(cluster)
            init_problems = cluster.problems(0)
            # The baseline, and (for reference) nginx driven the way the two nodes are.
            ng = Nginx(self.tmp).start()
            try:
                time.sleep(0.2)
                base = wrk(ng.port, self.data["ok_bodies"], key, self.dur)
                split = wrk_together([ng.port, ng.port], self.data["ok_bodies"], key, self.dur)
            finally:
                ng.stop()
            split_rps = sum(r["rps"] for r in split)
            log(f"nginx (figure 8): {base['rps']:,.0f} req/s; as two wrk -t1 -c32 at once "
                f"{split_rps:,.0f} req/s")
            one = self.pg_nodes(cluster, "fig8-1node", 1, key, master_key)
            log(f"PostgreSQL, 1 node: {one['rps']:,.0f} sends/s ({one['queued']:,} queued; "
                f"daemon {one['cores'][0]:.2f} cores, PostgreSQL {one['pg_cores']:.2f}, wrk "
                f"{one['wrk_cores']:.2f})")
            two = self.pg_nodes(cluster, "fig8-2nodes", 2, key, master_key)
            log(f"PostgreSQL, 2 nodes: {two['rps']:,.0f} sends/s ("
                + " + ".join(f"{r['rps']:,.0f}" for r in two["runs"])
                + f"; {two['queued']:,} queued; daemons "
                + " + ".join(f"{c:.2f}" for c in two["cores"])
                + f" cores, PostgreSQL {two['pg_cores']:.2f}, wrk {two['wrk_cores']:.2f})")
        finally:
            cluster.stop()
        errs = sum(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
                   for r in [base] + split)
        if errs:
            self.notes.append(f"nginx (figure 8): {errs} errors")
        if split_rps < 0.8 * base["rps"]:
            self.notes.append(f"figure 8: nginx did only {split_rps:,.0f} req/s driven as two "
                              f"wrk -t1 -c32 against {base['rps']:,.0f} with one -t2 -c64: the "
                              "two-node driver may be the limit")
        self.data["fig8"] = (base, split_rps, one, two)
        r1, r2 = one["rps"] / base["rps"], two["rps"] / base["rps"]
        scale = two["rps"] / one["rps"]
        self.row(8, "Accepted sends, PostgreSQL, 1 node", f"{base['rps']:,.0f} (nginx)",
                 f"{one['rps']:,.0f}", r1, "—", None)
        self.row(8, "Accepted sends, PostgreSQL, 2 nodes", f"{base['rps']:,.0f} (nginx)",
                 f"{two['rps']:,.0f}", r2, "—", None)
        self.row(8, "Scaling: sends/s on PostgreSQL, 2 vs 1 node", f"{one['rps']:,.0f} (1 node)",
                 f"{two['rps']:,.0f} (2 nodes)", scale, "—", None)

        def commits(stats):
            out = []
            for i, st in enumerate(stats):
                if st:
                    n, c, largest = st
                    out.append(f"node {i + 1}: {n:,} messages in {c:,} commits "
                               f"({n / max(1, c):.1f} per commit, largest {largest}; about "
                               f"{c / self.dur:,.0f} commits/s while wrk ran)")
                else:
                    out.append(f"node {i + 1}: no `queue:` line in its log")
            return "; ".join(out)

        def cores(r):
            return (" + ".join(f"{c:.2f}" for c in r["cores"])
                    + f" cores for the daemon{'s' if len(r['cores']) > 1 else ''}, "
                    f"{r['pg_cores']:.2f} for PostgreSQL (postmaster and backends), "
                    f"{r['wrk_cores']:.2f} for wrk")

        sqlite = ""
        if "fig1" in self.data:
            sqlite = (f" For comparison, figure 1 (SQLite, one daemon) did "
                      f"{self.data['fig1'][1]['rps']:,.0f} sends/s in this run, "
                      f"{self.data['fig1'][1]['rps'] / self.data['fig1'][0]['rps']:.2f}× "
                      "its nginx.")
        self.details[8] = [
            "Figure 1's request on the PostgreSQL store: a PostgreSQL 15 cluster started by "
            "this run (initdb in the run's directory, 127.0.0.1 on a free port, `fsync=on`, "
            "`synchronous_commit=on`, everything else default), the fixtures of figure 1 made "
            "with `postern init/domain add/key create --postgres` and one psql `COPY` of the "
            f"{BASE_SENDERS:,} verified senders, sender authorization on; each run gets a "
            "fresh copy (`CREATE DATABASE … TEMPLATE`). Nodes are `postern serve` with "
            "`[store] postgres` (TCP to 127.0.0.1), the same `[dkim] master_key_file`, "
            "`[relay] paused = yes`, default `[server] threads`; one warm-up send to each node "
            "first. 1 node: `wrk -t2 -c64 -d"
            f"{self.dur}s` as in figure 1. 2 nodes: two serve processes on different ports "
            "and the same database, driven by two `wrk -t1 -c32` started together (wrk takes "
            "one host:port), their rates summed. The baseline is nginx with `wrk -t2 -c64`, "
            "just before; nginx driven as two `wrk -t1 -c32` at once (the two-node shape) "
            f"did {split_rps:,.0f} req/s ({split_rps / base['rps']:.2f}× its -t2 -c64 rate), "
            "far above either Postern figure. Everything (wrk, the nodes, "
            "PostgreSQL) shares this machine's 2 cores: the second node adds no CPU, only "
            "a second process and a second connection pool." + sqlite,
            f"nginx {base['rps']:,.0f} req/s. 1 node: {one['rps']:,.0f} sends/s "
            f"({r1:.2f}×), p50 {one['p50_us'][0] / 1000:.2f} ms, p99 "
            f"{one['p99_us'] / 1000:.2f} ms, {one['queued']:,} messages in the queue "
            f"afterwards for {one['requests']:,} answers (plus the warm-up); "
            + commits(one["commits"]) + "; " + cores(one) + " while wrk ran.",
            f"2 nodes: {two['rps']:,.0f} sends/s ("
            + " + ".join(f"{r['rps']:,.0f}" for r in two["runs"])
            + f"; {r2:.2f}× nginx, {scale:.2f}× one node), p50 "
            + " / ".join(f"{p / 1000:.2f}" for p in two["p50_us"])
            + f" ms, worst p99 {two['p99_us'] / 1000:.2f} ms, {two['queued']:,} messages "
            f"in the queue for {two['requests']:,} answers (plus the warm-ups); "
            + commits(two["commits"]) + "; " + cores(two) + " while wrk ran.",
            "PostgreSQL's log (WARNING and worse, checkpoint and lost-client notices) while "
            "the nodes ran: " + (f"{len(one['problems']) + len(two['problems'])} lines, "
                                 "see \"What looked wrong\"."
                                 if one["problems"] or two["problems"] else "nothing.")
            + (f" During the fixtures: {len(init_problems)} such line(s), e.g. `"
               f"{init_problems[0].split(' ', 3)[-1][:160]}`." if init_problems else "")]
        pts = [("nginx", base["rps"], True), ("nginx, 2 wrk", split_rps, True)]
        if "fig1" in self.data:
            pts.append(("SQLite (fig. 1)", self.data["fig1"][1]["rps"]))
        pts += [("PG, 1 node", one["rps"]), ("PG, 2 nodes", two["rps"])]
        self.plot("postgres", "Accepted sends on PostgreSQL (PG), 64 connections in all "
                  "(2 wrk: -t1 -c32 each)", "", "requests per second", pts)

    # charts --------------------------------------------------------------------------

    def throughput_chart(self):
        pts = []
        if "fig1" in self.data:
            ng, r = self.data["fig1"]
            pts += [("nginx (fig. 1)", ng["rps"], True), ("Postern accepted", r["rps"])]
        if "fig2" in self.data:
            ng, r = self.data["fig2"]
            pts += [("nginx (fig. 2)", ng["rps"], True), ("Postern refused", r["rps"])]
        self.plot("throughput", "POST /v5/mail/send, wrk -t2 -c64", "", "requests per second",
                  pts)

    def plot(self, name, title, xlabel, ylabel, points, extra=""):
        png = os.path.join(self.opts.out, f"{name}{self.suffix}.png")
        dat = os.path.join(self.tmp, f"{name}.dat")
        with open(dat, "w") as f:
            for p in points:
                label, value = p[0], p[1]
                colour = 0x909090 if len(p) > 2 and p[2] else 0x3060a0
                f.write(f'"{label}" {value} {colour}\n')
        fmt = "%.2f" if max((p[1] for p in points), default=0) < 100 else "%.0f"
        gp = f"""set terminal pngcairo size 800,480 noenhanced font "sans,10"
set output "{png}"
set title "{title}"
set xlabel "{xlabel}"
set ylabel "{ylabel}"
set style fill solid 0.7 border -1
set boxwidth 0.6
set offsets 0.3, 0.3, graph 0.08, 0
set grid ytics
set yrange [0:*]
{extra}
plot "{dat}" using 0:2:3:xtic(1) with boxes lc rgb variable notitle, \\
     "" using 0:2:(sprintf("{fmt}", $2)) with labels offset 0,0.8 notitle
"""
        if extra.startswith("set logscale"):
            gp = gp.replace("set yrange [0:*]\n", "")
        script = os.path.join(self.tmp, f"{name}.gp")
        with open(script, "w") as f:
            f.write(gp)
        r = subprocess.run([GNUPLOT, script], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.notes.append(f"gnuplot failed for {name}: {r.stderr.strip()[:200]}")
            return
        self.charts = [c for c in self.charts if c[0] != png] + [(png, title)]

    # report --------------------------------------------------------------------------

    def report(self, started, figures):
        def cell(v):
            return "" if v is None else v

        def ratio(v):
            return "" if v is None else f"{v:.2f}×" if v >= 0.1 else f"{v:.3f}×"

        def met(v):
            return "—" if v is None else ("yes" if v else "**no**")

        head = ["| # | figure | baseline | ours | ratio | target | met? |",
                "|---|---|---|---|---|---|---|"]
        table = head + [f"| {f} | {n} | {cell(b)} | {cell(o)} | {ratio(r)} | {t} | {met(m)} |"
                        for f, n, b, o, r, t, m in self.rows]
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"],
                                   cwd=ROOT, capture_output=True, text=True,
                                   timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit, dirty = "unknown", ""
        total = time.monotonic() - started
        md = ["# Postern benchmarks", "",
              f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
              f"- commit: `{commit}`" + (" (src/ has uncommitted changes)" if dirty else ""),
              f"- machine: shared 2-core VM, `nproc` = {os.cpu_count()}; absolute numbers "
              "drift here, so every figure is a ratio against a baseline measured in the "
              "same run, back to back",
              f"- run: `bench/run.py --figures {','.join(map(str, figures))}"
              f"{' --quick' if self.quick else ''}`, {total:.0f} s in all"
              + (" (quick mode: shorter runs, fewer messages; not a result)"
                 if self.quick else ""),
              f"- build: `{os.path.relpath(self.bin, ROOT)}` (CMake RelWithDebInfo, -O2)",
              "- load average (1, 5, 15 min) at the start: "
              + ", ".join(f"{x:.2f}" for x in self.load_start) + "; at the end: "
              + ", ".join(f"{x:.2f}" for x in os.getloadavg())
              + "; processes this run did not start used {:.2f} cores on average, the "
              "hypervisor stole {:.2f} (per figure below)".format(
                  *other_load(self.cpu_start, cpu_snapshot())),
              "", "## Summary", ""] + table + [""]
        if self.notes:
            md += ["## What looked wrong", ""] + [f"- {n}" for n in self.notes] + [""]
        md += ["## How each figure was measured", ""]
        for f in sorted(self.details):
            md += [f"### Figure {f}", ""]
            if f in self.load:
                other, steal = self.load[f]
                md += [f"*While it ran, processes this run did not start used {other:.2f} "
                       f"cores on average (steal {steal:.2f}).*", ""]
            for item in filter(None, self.details[f]):
                # A paragraph each; the rows of a table stay together.
                if md[-1] and not (item.startswith("|") and md[-1].startswith("|")):
                    md.append("")
                md.append(item)
            md.append("")
        if self.charts:
            md += ["## Charts", ""]
            for png, title in self.charts:
                md += [f"![{title}]({os.path.basename(png)})", ""]
        out = os.path.join(self.opts.out, f"results{self.suffix}.md")
        with open(out, "w") as f:
            f.write("\n".join(md))
        print()
        print("\n".join(table))
        if self.notes:
            print("\nWhat looked wrong:")
            for n in self.notes:
                print(" -", n)
        print(f"\n{os.path.relpath(out)} written; {total:.0f} s in all")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--figures", default="1,2,3,4,5,6,7,8",
                    help="comma-separated figure numbers (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="3 s load runs and 2,000 messages: a smoke check, not a result")
    ap.add_argument("--profile", action="store_true",
                    help="perf record (cpu-clock, DWARF call graphs) the daemon in figures 1, 2 "
                         "and 4; writes profile-*.txt beside the results (the figures are "
                         "then slower)")
    ap.add_argument("--build", default=os.path.join(ROOT, os.environ.get("BUILD", "build")))
    ap.add_argument("--out", default=HERE, help="where results.md and the charts go")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    opts.build = os.path.abspath(opts.build)
    opts.out = os.path.abspath(opts.out)
    try:
        figures = sorted({int(x) for x in opts.figures.replace(" ", "").split(",") if x})
    except ValueError:
        ap.error("--figures takes numbers like 1,3")
    if not figures or any(f < 1 or f > 8 for f in figures):
        ap.error("figures are 1 to 8")
    opts.all = figures == list(range(1, 9))
    for tool in (WRK, NGINX, SINK, SOURCE, GNUPLOT, os.path.join(opts.build, "postern")):
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench: {tool} is missing (make bench installs and builds what it needs)")
    os.makedirs(opts.out, exist_ok=True)
    global PROFILE_DIR
    PROFILE_DIR = opts.out

    run = Run(opts)
    started = time.monotonic()
    log(f"work directory {run.tmp}; figures {figures}{' (quick)' if opts.quick else ''}")
    # SIGTERM (e.g. a timeout around make) still stops every process started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = 0
    try:
        for f in figures:
            before = cpu_snapshot()
            try:
                getattr(run, f"fig{f}")()
            except Exception as ex:  # noqa: BLE001 - one figure failing still reports the rest
                code = 1
                log(f"figure {f} failed: {ex}")
                run.notes.append(f"figure {f} failed: {ex}")
                run.row(f, f"(figure {f} failed)", None, None, None, "", False)
            run.load[f] = other_load(before, cpu_snapshot())
            log(f"figure {f}: other processes used {run.load[f][0]:.2f} cores on average, "
                f"steal {run.load[f][1]:.2f}")
        run.rows.sort(key=lambda r: r[0])
        run.report(started, figures)
    finally:
        PROCS.stop_all()
        if opts.keep:
            log(f"kept {run.tmp}")
        else:
            shutil.rmtree(run.tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
