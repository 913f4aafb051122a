"""What every figure of `make bench` shares: the tools, the fixtures (account, DKIM domain,
10,000 verified senders), the daemon as the integration tests start it (harness.py's
Gateway, wrapped in Node for what a benchmark measures of it), nginx as the HTTP ceiling,
wrk, perf, and the CPU accounting of other processes on the machine. Every process is
stopped by its PID (PROCS); every wait is bounded."""
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
# The figures measure SQLite unless they start a PostgreSQL cluster of their own.
os.environ["POSTERN_TEST_BACKEND"] = "sqlite"
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402 - after the backend is fixed

ACCOUNT = "bench"
ADMIN = "admin@bench.test"
DOMAIN = "bench.test"
BODY_SIZE = 1024
BASE_SENDERS = 10_000
MEM_SENDERS = 1_000_000

WRK = "/usr/bin/wrk"
NGINX = "/usr/sbin/nginx"
SOURCE = "/usr/sbin/smtp-source"
GNUPLOT = "/usr/bin/gnuplot"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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
    """Every process this run starts, so each is stopped by its PID whatever happens: the
    ones started here (live), the harness's gateways and sinks (held, each with stop()), and
    PostgreSQL clusters (a daemonized postmaster, stopped by pg-cluster.sh)."""

    def __init__(self):
        self.live = []
        self.held = []
        self.clusters = []
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

    def hold(self, thing):
        self.held.append(thing)
        return thing

    def release(self, thing):
        thing.stop()
        if thing in self.held:
            self.held.remove(thing)

    def start_cluster(self, directory):
        cluster = harness.PgCluster(directory).start()
        self.clusters.append(cluster)
        return cluster

    def stop_cluster(self, cluster):
        if cluster in self.clusters:
            self.cluster_cpu += cluster_cpu_seconds(cluster)
            cluster.stop()
            self.clusters.remove(cluster)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=10)
        for thing in list(self.held):
            self.release(thing)
        # After the daemons, so that no client is connected when PostgreSQL stops.
        for c in list(self.clusters):
            self.stop_cluster(c)


PROCS = Procs()


def proc_cpu(pid, with_children_waited=False):
    """User plus system CPU seconds of pid (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    n = 15 if with_children_waited else 13
    return sum(int(x) for x in fields[11:n]) / os.sysconf("SC_CLK_TCK")


def cluster_cpu_seconds(cluster):
    """CPU of the postmaster, its live children (a backend per connection, checkpointer,
    WAL writer...) and the children it has reaped."""
    top = cluster.postmaster_pid()
    if not top:
        return 0.0
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if int(entry) == top:
                total += proc_cpu(top, with_children_waited=True)
            elif ppid == top:
                total += proc_cpu(entry)
        except (OSError, ValueError):
            continue
    return total


def cluster_problems(cluster, since=0):
    """Server log lines from byte since on that deserve a look: WARNING and worse, and the
    LOG lines about checkpoints too close together or clients that vanished."""
    with open(cluster.log_path(), errors="replace") as f:
        f.seek(since)
        lines = f.read().splitlines()
    pat = re.compile(r"\b(WARNING|ERROR|FATAL|PANIC):|checkpoints are occurring too "
                     r"frequently|unexpected EOF|could not receive data|could not send")
    return [line for line in lines if pat.search(line)]


def psql_script(conninfo, script):
    """Runs a psql script (COPY ... FROM STDIN and all) in one transaction."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
                        "--single-transaction", "-f", "-"], input=script, capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"psql exited {r.returncode}: {r.stderr.strip()[:500]}")


# ---------------------------------------------------------------------------------------
# Fixtures


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


def make_account(gw):
    """The account every figure starts from, in gw's store: an Admin, the sending domain
    bench.test marked verified by the operator (which gives it an RSA-2048 DKIM key) and an
    API key, which it returns."""
    gw.init(ACCOUNT, ADMIN)
    gw.add_domain(ACCOUNT, DOMAIN, "--verified")
    return gw.create_key(ACCOUNT, "bench")


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


def first_body(path):
    with open(path) as f:
        return f.readline().strip()


# ---------------------------------------------------------------------------------------
# Servers


class Node:
    """`postern serve` as the integration tests start it (harness.Gateway in directory d,
    its log d/serve.log), without the test clock, plus what a benchmark reads of it.
    relay: "paused" (an outbox it does not deliver to) or a URL; threads, connections:
    [server] threads and [relay] connections; postgres, master_key: a PostgreSQL database
    (several nodes may share it) instead of d/postern.db."""

    def __init__(self, d, name, relay="paused", threads=None, connections=None,
                 postgres=None, master_key=None):
        config = {"relay": {"paused": "yes" if relay == "paused" else "no"}}
        if connections:
            config["relay"]["connections"] = connections
        if threads:
            config["server"] = {"threads": threads}
        self.name = name
        self.gw = harness.Gateway(tmp=d, relay=None if relay == "paused" else relay,
                                  config=config, postgres=postgres, master_key=master_key,
                                  test_clock=False)
        self.db, self.log_path, self.dir = self.gw.db, self.gw.log_path, d
        self.started_at = None

    @property
    def port(self):
        return self.gw.port

    @property
    def proc(self):
        return self.gw.proc

    def start(self):
        """Starts the daemon and waits until it listens; started_at is the moment of the
        spawn, which delivery times count from."""
        self.started_at = time.monotonic()
        PROCS.hold(self.gw).start(timeout=20)
        return self

    def stop(self):
        PROCS.release(self.gw)

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        return proc_cpu(self.proc.pid)

    def queue_stats(self):
        """(messages, commits, largest) from the group-commit line written at exit."""
        m = re.search(r"queue: (\d+) messages in (\d+) commits \(largest (\d+)\)",
                      self.gw.read_log())
        return tuple(map(int, m.groups())) if m else None

    def problems(self):
        """Log lines that are not info (errors, warnings), for the report."""
        out = []
        for line in self.gw.read_log().splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1] not in ("info", "debug"):
                out.append(line)
        return out


def sink(directory=None):
    """smtp-sink on loopback, as the integration tests start it; with a directory it keeps
    each message there."""
    return PROCS.hold(harness.SmtpSink(directory)).start()


class Nginx:
    """nginx answering `return 202` on the send path: the HTTP ceiling. name and location
    make another one (its directory d/name, its one location block), e.g. a receiver of
    webhooks."""

    SEND = """location = /v5/mail/send { return 202 '{"ok":true}'; }"""

    def __init__(self, d, name="nginx", location=SEND):
        self.dir = os.path.join(d, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = harness.free_port()
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
        {location}
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
            + sum(cluster_cpu_seconds(c) for c in PROCS.clusters))
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
    """One benchmark run: its options, its work directory, the fixtures the figures share
    (made once), and what the report is made of."""

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
        self.load_start = os.getloadavg()
        self.load = {}  # figure -> (cores used by others, cores stolen)
        self.cpu_start = cpu_snapshot()
        # Only a full run replaces results.md and the charts beside it; a quick or partial
        # run writes results-quick.md / results-partial.md and charts named alike.
        self.suffix = "-quick" if opts.quick else "" if opts.all else "-partial"

    def row(self, fig, name, baseline, ours, ratio, target, met):
        self.rows.append((fig, name, baseline, ours, ratio, target, met))

    def check_log(self, server):
        bad = server.problems()
        if bad:
            self.notes.append(f"postern log ({server.name}) has {len(bad)} non-info lines, "
                              f"first: `{bad[0][:200]}`")

    def base(self):
        """The SQLite fixtures every figure copies: make_account plus 10,000 verified senders
        and the sender-auth switch on; and the request bodies (From a listed sender, or
        not). Returns (directory, API key)."""
        if "base" not in self.data:
            log(f"fixtures: account, Admin, API key, verified domain with DKIM, "
                f"{BASE_SENDERS:,} verified senders, sender authorization on")
            d = os.path.join(self.tmp, "base")
            os.makedirs(d)
            gw = harness.Gateway(tmp=d)
            self.data["key"] = make_account(gw)
            insert_senders(gw.db, BASE_SENDERS)
            self.data["base"] = d
            self.data["ok_bodies"] = write_bodies(
                os.path.join(self.tmp, "ok.bodies"),
                [f"s{(i * 157) % BASE_SENDERS}@{DOMAIN}" for i in range(64)])
            self.data["refused_bodies"] = write_bodies(
                os.path.join(self.tmp, "refused.bodies"),
                [f"stranger{i}@{DOMAIN}" for i in range(64)])
        return self.data["base"], self.data["key"]

    def fresh(self, name, source=None):
        """A copy of the fixtures (or of source) for one daemon."""
        return shutil.copytree(source or self.base()[0], os.path.join(self.tmp, name))

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

    def postern_wrk(self, name, bodies, threads=None, profile=False, expect_ok=True,
                    prepare=None, after=None, source=None):
        """wrk against a daemon on a fresh copy of the fixtures (or of source, a directory
        made from them), after one warm-up send;
        with the daemon's cores, its group commits, and what the queue and drops hold.
        prepare(node) runs once the daemon listens, after(node, r) once wrk is done, while
        the daemon still runs."""
        _, key = self.base()
        d = self.fresh(name, source)
        # The copy's pages reach the disk now, not during the run, where the kernel's
        # writeback of a large copy would compete with the daemon's fsyncs.
        os.sync()
        node = Node(d, name, threads=threads).start()
        try:
            if prepare:
                prepare(node)
            status, _ = http_send(node.port, key, first_body(bodies))
            if status != (200 if expect_ok else 403):
                raise RuntimeError(f"{name}: warm-up send answered {status}")
            cpu0, t0 = node.cpu_seconds(), time.monotonic()
            r = wrk(node.port, bodies, key, self.dur, profile=node if profile else None)
            r["cores"] = (node.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            if after:
                after(node, r)
        finally:
            node.stop()
        self.check_log(node)
        r["commits"] = node.queue_stats()
        r["queued"] = db_scalar(node.db, "SELECT COUNT(*) FROM messages")
        r["dropped"] = db_scalar(node.db, "SELECT COALESCE(SUM(count), 0) FROM drops "
                                 "WHERE reason = 'sender_not_authorized'")
        return r

    def alternate(self, label, with_run, plain_run=None):
        """A figure's wrk runs without and with what it measures: without, with, with,
        without (once each when quick), so drift on the shared machine falls on both sides.
        with_run(name) makes one run with it and returns (r, what it saw); plain_run(name)
        one without (default: figure 1's run). label ("fig10") begins every run's name.
        Returns the runs without, the runs with, and what each of those saw."""
        if plain_run is None:
            def plain_run(name):
                return self.postern_wrk(name, self.data["ok_bodies"])
        plain, ours, seen = [], [], []
        order = [False, True] if self.quick else [False, True, True, False]
        for i, with_it in enumerate(order):
            if with_it:
                r, s = with_run(f"{label}-with{i}")
                ours.append(r)
                seen.append(s)
            else:
                r = plain_run(f"{label}-plain{i}")
                plain.append(r)
            log(f"{label} {'with' if with_it else 'without'}: {r['rps']:,.0f} sends/s")
        return plain, ours, seen

    def compare(self, fig, plain, ours):
        """Figure fig's alternated wrk runs without (plain) and with (ours) what it measures:
        (average without, average with, ratio), with a note for every run whose sends were
        not all answered 200."""
        for r in plain + ours:
            bad = r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
            if bad:
                self.notes.append(f"figure {fig}: {bad} sends were not 200 or failed")
        base = sum(r["rps"] for r in plain) / len(plain)
        with_ = sum(r["rps"] for r in ours) / len(ours)
        return base, with_, with_ / base

    @staticmethod
    def commit_note(r):
        if not r.get("commits"):
            return ""
        n, commits, largest = r["commits"]
        return (f", written in {commits:,} group commits ({n / max(1, commits):.1f} messages "
                f"per commit on average, largest {largest})")
