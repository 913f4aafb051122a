"""Faults injected into a running gateway: kill -9 under sustained send load, a relay that
is down for a while, a DNS server gone during scheduled domain checks, a full disk under
the database (a small tmpfs in a private mount namespace), slow or idle clients holding
connections, and messages the database refuses in a commit they share with others. Each
test says what the daemon promises and checks that, and only that."""
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import apidoc

from harness import (BIN, POSTGRES, Dnsmasq, Gateway, SmtpSink, free_port, listening, main,
                     send_body, sqlite_only, wait_until)

NETCORE = "/v5/mail/send"
DAY = 24 * 3600
LEASE = 600  # deliver.c LEASE_SECONDS: how long a delivery claim holds


def fast_retry_config(tmp, extra=""):
    path = os.path.join(tmp, "faults.ini")
    with open(path, "w") as f:
        f.write("[relay]\nretry_base = 1s\nretry_max = 1s\nconnections = 4\n" + extra)
    return path


def post_send(port, key, payload, timeout=30):
    """One send on a fresh connection. Returns ("ok", message_id), ("error", status, code),
    ("refused",) when nothing was sent at all, or ("unknown", why) when the connection
    broke after the request may have reached the daemon."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.connect()
    except ConnectionRefusedError:
        conn.close()
        return ("refused",)
    except OSError as e:
        conn.close()
        return ("unknown", repr(e))
    try:
        conn.request("POST", NETCORE, body=json.dumps(payload),
                     headers={"Authorization": "Bearer " + key,
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        apidoc.check("POST", NETCORE, r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if 200 <= r.status < 300:
            return ("ok", doc["data"]["message_id"])
        err = (doc or {}).get("error") if isinstance(doc, dict) else None
        if isinstance(err, list):
            err = err[0] if err else {}
        return ("error", r.status, (err or {}).get("code"))
    except (OSError, http.client.HTTPException) as e:
        return ("unknown", repr(e))
    finally:
        conn.close()


_MSGID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.I | re.M)
_SUBJECT = re.compile(rb"^Subject:\s*(\S+)", re.I | re.M)


def sink_ids(directory):
    """Message-IDs seen in the sink's files so far (a cheap scan used while waiting; the
    assertions parse the files with the email module)."""
    ids = []
    for name in os.listdir(directory):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                m = _MSGID.search(f.read())
        except FileNotFoundError:
            continue
        if m:
            ids.append(m.group(1).decode())
    return ids


def tally(values):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


class FaultCase(unittest.TestCase):
    """A gateway relaying to a sink, acme.test approved and an API key; fresh per test."""

    config_extra = ""

    def setUp(self):
        self.gw = Gateway().init("acme", "admin@acme.test")
        self.sink = SmtpSink(os.path.join(self.gw.tmp, "sink"))
        self.gw.extra_args = ["--config", fast_retry_config(self.gw.tmp, self.config_extra),
                              "--relay", f"smtp://127.0.0.1:{self.sink.port}"]
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key("acme")
        self.admin = None

    def tearDown(self):
        self.gw.cleanup()
        self.sink.stop()

    def login(self):
        self.admin = self.gw.client()
        self.assertEqual(self.admin.login("admin@acme.test").status, 200)

    def message(self, mid):
        if not self.admin:
            self.login()
        r = self.admin.request("GET", "/api/messages/" + mid)
        self.assertEqual(r.status, 200, r.raw)
        return r.json

    def wait_statuses(self, mids, status, timeout):
        """Waits (bounded) until every message has status; returns those that do not."""
        left = set(mids)
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            left = {m for m in left if self.message(m)["status"] != status}
            if left:
                time.sleep(0.2)
        return left


class KillUnderLoadTest(FaultCase):
    def test_kill_9_under_load_with_the_relay_down_delivers_each_message_once(self):
        """The queue's promise: every 2xx is stored, and delivered exactly once."""
        self._kill_under_load(relay_up=False)

    def test_kill_9_while_delivering_loses_nothing_and_duplicates_only_in_flight(self):
        """With delivery running, SMTP gives at-least-once: a message the relay accepted in
        the instant before the kill, before its 'sent' was recorded, goes again after the
        restart. Only that case may arrive twice, at most one per relay connection."""
        self._kill_under_load(relay_up=True)

    def _kill_under_load(self, relay_up):
        if relay_up:
            self.sink.start()
        self.gw.start()
        port, key = self.gw.port, self.key
        counter = itertools.count()
        stop = threading.Event()
        outcomes = {}  # subject -> outcome tuple
        lock = threading.Lock()

        def client():
            while not stop.is_set():
                subject = f"m-{next(counter)}"
                out = post_send(port, key,
                                send_body(subject=subject, to=f"{subject}@example.com"),
                                timeout=10)
                with lock:
                    outcomes[subject] = out
                if out[0] == "refused":
                    time.sleep(0.05)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client) for _ in range(8)]
            time.sleep(2)
            kill_time = time.time()
            self.gw.proc.send_signal(signal.SIGKILL)
            self.gw.proc.wait(10)
            stop.set()
            for f in futures:
                f.result(timeout=40)
        self.gw.stop()
        killed_at = self.gw.read_log().count("\n")
        before_kill = self.gw.read_log()
        if not relay_up:
            self.sink.start()
        if POSTGRES:
            # A PostgreSQL database may be shared by other nodes: what the dead node had
            # claimed is anyone's again only when the claim's lease has run out.
            self.gw.advance_clock(LEASE + 1)

        acked = {s: o[1] for s, o in outcomes.items() if o[0] == "ok"}
        errors = {s: o for s, o in outcomes.items() if o[0] == "error"}
        refused = [s for s, o in outcomes.items() if o[0] == "refused"]
        unknown = [s for s, o in outcomes.items() if o[0] == "unknown"]
        self.assertGreater(len(acked), 50, "too little load to say anything")

        self.gw.start()  # the same database
        want = {f"{mid}@acme.test" for mid in acked.values()}
        arrived = wait_until(lambda: want <= set(sink_ids(self.sink.dir)), timeout=60,
                             interval=0.25)
        not_sent = self.wait_statuses(acked.values(), "sent", timeout=30 if arrived else 5)
        time.sleep(1.5)  # room for a late duplicate to show up

        msgs = self.sink.messages()
        by_id = tally(str(m["Message-ID"]) for m in msgs)
        by_subject = tally(str(m["Subject"]) for m in msgs)
        delivered = [s for s, mid in acked.items() if by_id.get(f"<{mid}@acme.test>", 0) >= 1]
        lost = sorted(s for s, mid in acked.items() if f"<{mid}@acme.test>" not in by_id)
        twice = sorted((s, by_id[f"<{mid}@acme.test>"]) for s, mid in acked.items()
                       if by_id.get(f"<{mid}@acme.test>", 0) > 1)
        unknown_delivered = [s for s in unknown if by_subject.get(s)]
        print(f"\nkill -9 under load: {len(outcomes)} requests, {len(acked)} acknowledged, "
              f"{len(delivered)} delivered, {len(lost)} lost, {len(twice)} delivered twice; "
              f"{len(errors)} error answers, {len(refused)} refused, {len(unknown)} cut by "
              f"the kill ({len(unknown_delivered)} of them delivered); "
              f"{len(msgs)} messages in the sink")
        restart_log = "\n".join(self.gw.read_log().splitlines()[killed_at:][-20:])
        self.assertEqual(lost, [], f"acknowledged but never delivered:\n{restart_log}")
        self.assertEqual(not_sent, set(), "acknowledged messages not marked sent")
        for s, o in errors.items():
            self.assertNotIn(s, by_subject, f"answered {o} yet delivered")
        for s in refused:
            self.assertNotIn(s, by_subject, "never reached the daemon yet delivered")
        for s in unknown:
            self.assertLessEqual(by_subject.get(s, 0), 1, f"{s} (cut by the kill) twice")
        self.assertLessEqual(set(by_subject), set(outcomes), "mail nobody asked for")
        stories = "\n".join(self._story(acked[s], kill_time) for s, _ in twice)
        if not relay_up:
            self.assertEqual(twice, [], "acknowledged and delivered more than once:\n" +
                             stories)
            return
        # The in-flight window, and nothing else: two copies at most, the first before
        # the kill, and no 'sent' recorded for it before the kill. Each of the 4 workers
        # records outcomes per claimed batch of up to 16 (deliver.c BATCH).
        self.assertLessEqual(len(twice), 4 * 16, stories)
        for s, count in twice:
            mid = acked[s]
            self.assertEqual(count, 2, stories)
            self.assertNotIn(f"message {mid} sent", before_kill, stories)
            self.assertLess(min(self._arrivals(mid)) - kill_time, 0.5, stories)

    def _arrivals(self, mid):
        """When each copy of mid reached the sink (file modification times)."""
        times = []
        for name in os.listdir(self.sink.dir):
            path = os.path.join(self.sink.dir, name)
            with open(path, "rb") as f:
                if f"<{mid}@acme.test>".encode() in f.read():
                    times.append(os.stat(path).st_mtime)
        return times

    def _story(self, mid, kill_time):
        """Where a duplicate came from: its log lines and when each copy reached the sink,
        relative to the kill."""
        lines = [l for l in self.gw.read_log().splitlines()
                 if mid in l and "GET /api" not in l]
        arrivals = [t - kill_time for t in self._arrivals(mid)]
        return (f"{mid}: copies arrived at " +
                ", ".join(f"{t:+.3f}s" for t in sorted(arrivals)) + " from the kill\n  " +
                "\n  ".join(lines))


class RelayOutageTest(FaultCase):
    def test_a_relay_down_for_a_while_defers_then_delivers_everything_once(self):
        self.gw.start()  # the sink is not running: the relay is down
        results = [post_send(self.gw.port, self.key,
                             send_body(subject=f"r-{i}", to=f"r{i}@example.com"))
                   for i in range(20)]
        self.assertEqual({r[0] for r in results}, {"ok"}, results)
        mids = [r[1] for r in results]
        # Down long enough for every message to be tried and deferred at least twice.
        def tried_twice():
            return all(m["status"] == "deferred" and m["attempts"] >= 2
                       for m in map(self.message, mids))
        self.assertTrue(wait_until(tried_twice, timeout=30),
                        [self.message(m) for m in mids[:3]])
        sample = self.message(mids[0])
        self.assertIsNotNone(sample["next_attempt_at"])
        self.assertTrue(sample["last_reply"])
        self.assertEqual(os.listdir(self.sink.dir), [])
        self.sink.start()
        self.assertEqual(self.wait_statuses(mids, "sent", timeout=30), set())
        time.sleep(1.5)  # room for a duplicate to show up
        got = sorted(str(m["Message-ID"]) for m in self.sink.messages())
        self.assertEqual(got, sorted(f"<{mid}@acme.test>" for mid in mids))
        attempts = [self.message(m)["attempts"] for m in mids]
        print(f"\nrelay outage: 20 queued, all deferred, 20 delivered once after "
              f"{min(attempts)}-{max(attempts)} attempts")


class DnsOutageTest(FaultCase):
    def test_dns_down_during_scheduled_checks_keeps_the_domain_verified(self):
        dns = Dnsmasq("example.test")
        dns.start()
        try:
            self._run(dns)
        finally:
            dns.stop()

    def _run(self, dns):
        ini = os.path.join(self.gw.tmp, "dns.ini")
        with open(ini, "w") as f:
            f.write(f"[dns]\nservers = 127.0.0.1:{dns.port}\ntimeout = 1s\n"
                    "grace = 24h\ncheck_pending = 5m\ncheck_verified = 24h\n"
                    "[relay]\nretry_base = 1s\nretry_max = 1s\n")
        self.gw.extra_args[1] = ini
        self.gw.dns_port = dns.port  # --dns on the command line overrides the file
        self.sink.start()
        self.gw.start()
        self.login()
        r = self.admin.request("POST", "/api/domains", {"domain": "news.example.test"})
        self.assertEqual(r.status, 201, r.raw)
        d = r.json
        dns.restart({rec["name"]: rec["value"] for rec in d["records"]
                     if rec["purpose"] in ("ownership", "dkim")})
        for _ in range(5):  # a lookup error concludes nothing: ask again (bounded)
            r = self.admin.request("POST", f"/api/domains/{d['id']}/check")
            self.assertEqual(r.status, 200, r.raw)
            if not r.json["check_error"]:
                break
            time.sleep(0.5)
        d = r.json
        self.assertEqual((d["status"], d["check_error"]), ("verified", None))
        send = lambda: post_send(self.gw.port, self.key,
                                 send_body("a@news.example.test", subject="dns"))
        self.assertEqual(send()[0], "ok")

        dns.stop()
        listed = lambda: next(x for x in self.admin.request("GET", "/api/domains").json[
            "domains"] if x["id"] == d["id"])
        seen = [d["checked_at"]]
        for _ in range(2):
            self.gw.advance_clock(2 * DAY)
            self.login()  # sessions expire with the clock
            # The scheduler runs every second; wait for the check it owes this domain.
            cur = wait_until(lambda: (lambda x: x if x["checked_at"] not in seen
                                      and x["check_error"] else None)(listed()), timeout=10)
            self.assertTrue(cur, f"no scheduled check happened: {listed()}")
            seen.append(cur["checked_at"])
            self.assertEqual(cur["status"], "verified", cur)
            self.assertTrue(cur["check_error"])
            out = send()
            self.assertEqual(out[0], "ok", out)
        print(f"\ndns outage: 2 scheduled checks failed to look up "
              f"({cur['check_error']!r}); the domain stayed verified and sendable")


# The daemon inside a private mount namespace with its database on a small tmpfs. The
# shell stays as the parent: USR1 frees space (removes the filler), TERM is passed on.
DISK_SCRIPT = r'''
set -e
mount -t tmpfs -o size="$SIZE" tmpfs "$D"
cp "$SRC/postern.db" "$SRC/dkim-master.key" "$D/"
chmod 600 "$D/dkim-master.key"
dd if=/dev/zero of="$D/filler" bs=1k count="$FILLER" 2>/dev/null
set +e
"$BIN" serve --db "$D/postern.db" --listen "127.0.0.1:$PORT" --relay "$RELAY" \
    --dns 127.0.0.1:1 --config "$CONFIG" &
pid=$!
echo "$pid" > "$PIDFILE"
trap 'rm -f "$D/filler"; df -k "$D" | tail -n 1 > "$FREED"' USR1
trap 'kill -TERM "$pid"' TERM
while :; do
    wait "$pid"
    rc=$?
    kill -0 "$pid" 2>/dev/null || exit "$rc"
done
'''


@sqlite_only("the database file on a full disk (PostgreSQL keeps its data on the server)")
class DiskFullTest(FaultCase):
    def test_a_full_disk_answers_503_never_a_false_2xx_and_recovers(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for a private mount namespace")
        self.sink.start()
        mnt = os.path.join(self.gw.tmp, "mnt")
        os.makedirs(mnt)
        pidfile = os.path.join(self.gw.tmp, "postern.pid")
        freed = os.path.join(self.gw.tmp, "freed")
        port = free_port()
        env = dict(os.environ, SIZE="16m", D=mnt, SRC=self.gw.tmp, FILLER="14800", BIN=BIN,
                   PORT=str(port), RELAY=f"smtp://127.0.0.1:{self.sink.port}",
                   CONFIG=self.gw.extra_args[1], PIDFILE=pidfile, FREED=freed)
        log = open(self.gw.log_path, "ab")
        shell = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh",
                                  "-c", DISK_SCRIPT], env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
        daemon = None
        try:
            up = wait_until(lambda: shell.poll() is None and listening(port), timeout=15,
                            interval=0.05)
            self.assertTrue(up, "daemon in the namespace did not start:\n" + self.gw.read_log())
            with open(pidfile) as f:
                daemon = int(f.read())
            self.gw.port = port
            self.login()  # before the disk fills: a login writes a session
            self._run(shell, freed)
        finally:
            if shell.poll() is None:
                shell.send_signal(signal.SIGTERM)
                try:
                    shell.wait(15)
                except subprocess.TimeoutExpired:
                    if daemon and _alive(daemon):
                        os.kill(daemon, signal.SIGKILL)
                    shell.kill()
                    shell.wait(5)
            if daemon and _alive(daemon):
                os.kill(daemon, signal.SIGKILL)
            log.close()
        self.assertEqual(shell.returncode, 0, "the daemon did not stop cleanly:\n" +
                         "\n".join(self.gw.read_log().splitlines()[-15:]))

    def _run(self, shell, freed):
        port = self.gw.port
        big = "x" * (100 * 1024 - 100) + "\n"
        counter = itertools.count()
        acked, refused = [], []  # message ids; subjects answered 503

        def send():
            subject = f"d-{next(counter)}"
            return subject, post_send(port, self.key, send_body(subject=subject, text=big))

        # Fill: send until the daemon says the store is unavailable (bounded).
        for _ in range(100):
            subject, out = send()
            if out[0] == "ok":
                acked.append(out[1])
                continue
            self.assertEqual(out[:3], ("error", 503, "store_unavailable"),
                             "unexpected answer while filling the disk\n" +
                             self.gw.read_log()[-3000:])
            refused.append(subject)
            break
        self.assertTrue(refused, f"the disk never filled after {len(acked)} messages")
        filled_after = len(acked)
        # Still (nearly) full: a send may be refused the same way, or genuinely stored
        # where a rolled-back commit left room in the WAL; what matters is that each
        # answer is one of the two, and that every 2xx is kept (checked below).
        for _ in range(5):
            subject, out = send()
            if out[0] == "ok":
                acked.append(out[1])
                continue
            self.assertEqual(out[:3], ("error", 503, "store_unavailable"))
            refused.append(subject)
        self.assertIsNone(shell.poll(), "the daemon died on a full disk")

        # Every acknowledged message is in the database (asked while the disk is full).
        r = self.admin.request("GET", "/api/messages?limit=1000")
        listed_while_full = r.status
        if r.status == 200:
            ids = {m["id"] for m in r.json["messages"]}
            self.assertEqual(set(acked) - ids, set(), "acknowledged yet not stored")

        # Free space; sends are accepted again and everything acknowledged is delivered.
        shell.send_signal(signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: os.path.exists(freed), timeout=10))
        after = []
        for i in range(5):
            subject, out = send()
            self.assertEqual(out[0], "ok", f"after freeing space, send {i + 1}: {out}\n" +
                             "\n".join(self.gw.read_log().splitlines()[-25:]))
            after.append(out[1])
        acked += after
        r = self.admin.request("GET", "/api/messages?limit=1000")
        self.assertEqual(r.status, 200, r.raw)
        ids = {m["id"]: m for m in r.json["messages"]}
        self.assertEqual(set(acked) - set(ids), set(), "acknowledged yet not stored")
        want = {f"{mid}@acme.test" for mid in acked}
        wait_until(lambda: want <= set(sink_ids(self.sink.dir)), timeout=30, interval=0.25)
        not_sent = self.wait_statuses(acked, "sent", timeout=15)
        msgs = self.sink.messages()
        got = tally(str(m["Message-ID"]) for m in msgs)
        subjects = {str(m["Subject"]) for m in msgs}
        lost = [m for m in acked if f"<{m}@acme.test>" not in got]
        twice = [m for m in acked if got.get(f"<{m}@acme.test>", 0) > 1]
        print(f"\ndisk full: {filled_after} messages of 100 KB acknowledged before the "
              f"disk filled, then {len(refused)} answered 503 store_unavailable (listing "
              f"while full: {listed_while_full}); after freeing space {len(after)} of "
              f"{len(after)} accepted; {len(acked)} acknowledged, "
              f"{len(acked) - len(lost)} delivered, {len(lost)} lost, {len(twice)} twice, "
              f"{len(not_sent)} not marked sent")
        log = self.gw.read_log().splitlines()
        about = lambda mid: f"{ids.get(mid)}\n" + "\n".join(
            l for l in log if mid in l and "GET /api" not in l)
        self.assertEqual(lost, [], "acknowledged but never delivered:\n" +
                         "\n".join(map(about, lost)))
        self.assertEqual(sorted(subjects & set(refused)), [], "answered 503 yet delivered")
        self.assertEqual(twice, [], "delivered more than once")
        self.assertEqual(not_sent, set(), "delivered, yet not recorded as sent:\n" +
                         "\n".join(map(about, sorted(not_sent))))


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class SlowClientsTest(FaultCase):
    def test_idle_and_slow_connections_do_not_stall_normal_requests(self):
        self.gw.start()
        self.login()
        port = self.gw.port
        idle, slow = [], []
        try:
            for _ in range(200):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            for i in range(20):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-" +
                          str(i).encode() + b": ")
                slow.append(s)
            stop = threading.Event()

            def trickle():
                for _ in range(12):  # bounded: a byte every 0.5 s for about 6 s
                    if stop.wait(0.5):
                        return
                    for s in slow:
                        s.sendall(b"a")

            t = threading.Thread(target=trickle)
            t.start()
            latencies, statuses = [], []
            end = time.monotonic() + 5
            try:
                while time.monotonic() < end:
                    t0 = time.monotonic()
                    r = self.admin.request("GET", "/api/session")
                    latencies.append(time.monotonic() - t0)
                    statuses.append(r.status)
                    time.sleep(0.1)
            finally:
                stop.set()
                t.join(10)
            print(f"\nslow clients: 200 idle + 20 trickling connections; {len(latencies)} "
                  f"normal requests, latency max {max(latencies) * 1000:.1f} ms, "
                  f"median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms")
            self.assertEqual(set(statuses), {200})
            self.assertLess(max(latencies), 2.0, latencies)
            self.assertGreater(len(latencies), 20)
        finally:
            for s in idle + slow:
                s.close()
        self.assertIsNone(self.gw.proc.poll())
        self.assertEqual(self.admin.request("GET", "/api/session").status, 200)
        out = post_send(port, self.key, send_body(subject="after"))
        self.assertEqual(out[0], "ok", out)
        self.assertEqual(self.gw.stop(), 0)


def post_raw(port, key, raw, timeout=30):
    """One send of raw body bytes; returns (status, the first error object or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", NETCORE, body=raw,
                     headers={"Authorization": "Bearer " + key,
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        apidoc.check("POST", NETCORE, r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
        doc = json.loads(raw or b"null")
        errors = doc.get("error") if isinstance(doc, dict) else None
        return r.status, (errors[0] if isinstance(errors, list) and errors else None)
    finally:
        conn.close()


POISON = "poison-"  # the subject prefix of messages the test's trigger refuses
# Installed in the gateway's own database: the database itself refuses those rows, as it
# would a value it cannot hold, in the same transaction as everyone else's messages.
POISON_SQLITE = ("CREATE TRIGGER poison BEFORE INSERT ON messages "
                 "WHEN instr(NEW.payload, 'poison-') > 0 "
                 "BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
POISON_PG = ("CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF position('poison-data' in NEW.payload) > 0 THEN "
             "  RAISE EXCEPTION 'poisoned' USING ERRCODE = '22023'; "
             "ELSIF position('poison-' in NEW.payload) > 0 THEN "
             "  RAISE EXCEPTION 'poisoned' USING ERRCODE = '23514'; "
             "END IF; RETURN NEW; END $$",
             "CREATE TRIGGER poison BEFORE INSERT ON messages "
             "FOR EACH ROW EXECUTE FUNCTION poison()")


class GroupCommitIsolationTest(FaultCase):
    """Concurrent requests share a commit. A message the database refuses (a constraint, a
    trigger, a value it cannot hold) fails its own request and no other: every valid send
    is answered 2xx and stored, whatever it happened to share a commit with."""

    def test_a_refused_row_fails_only_its_own_request(self):
        for statement in (POISON_PG if POSTGRES else (POISON_SQLITE,)):
            self.gw.sql(statement)
        self.gw.start()
        subjects = [f"{POISON}data-{i}" if i % 40 == 0 else
                    f"{POISON}check-{i}" if i % 40 == 20 else f"ok-{i}" for i in range(400)]

        def send(subject):
            return subject, post_send(self.gw.port, self.key, send_body(subject=subject),
                                      timeout=60)

        with ThreadPoolExecutor(12) as pool:
            outcomes = dict(pool.map(send, subjects))
        poisoned = {s: o for s, o in outcomes.items() if s.startswith(POISON)}
        valid = {s: o for s, o in outcomes.items() if not s.startswith(POISON)}
        failed = {s: o for s, o in valid.items() if o[0] != "ok"}
        print(f"\ngroup commit: {len(valid)} valid sends ({len(failed)} failed), "
              f"{len(poisoned)} poisoned ones answered {set(poisoned.values())}")
        self.assertEqual(failed, {}, "valid sends failed beside a refused one")
        for s, o in poisoned.items():
            self.assertEqual(o, ("error", 400, "invalid_request"), s)
        stored = {uid for (uid,) in self.gw.sql("SELECT uid FROM messages")}
        self.assertEqual({o[1] for o in valid.values()} - stored, set(),
                         "answered 2xx yet not stored")
        self.assertEqual(len(stored), len(valid), "a poisoned message was stored")
        self.assertEqual(post_send(self.gw.port, self.key, send_body(subject="after"))[0], "ok")


class Utf8UnderLoadTest(FaultCase):
    """The finding as it was seen: one account sends a tag that is not UTF-8 (PostgreSQL
    cannot store it) while other accounts send. That account is told which field is at
    fault; every other account's sends are accepted."""

    def test_a_tag_that_is_not_utf8_is_400_and_others_are_accepted(self):
        keys = {}
        for name in ("north", "south", "east", "mallory"):
            self.gw.add_account(name, f"admin@{name}.test")
            self.gw.add_domain(name, f"{name}.test", "--verified")
            keys[name] = self.gw.create_key(name)
        self.gw.start()
        port = self.gw.port
        bad = json.dumps(send_body(subject="tagged", sender="x@mallory.test", tags=["BAD"]))
        bad = bad.encode().replace(b"BAD", b"\xff")

        def send(i):
            if i % 10 == 0:  # mallory's, among the others'
                return "mallory", post_raw(port, keys["mallory"], bad, 60)
            name = ("north", "south", "east")[i % 3]
            return name, post_send(port, keys[name],
                                   send_body(f"x@{name}.test", subject=f"g-{i}"), timeout=60)

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(send, range(200)))
        goods = [o for name, o in outcomes if name != "mallory"]
        failed = [o for o in goods if o[0] != "ok"]
        self.assertEqual(failed, [], f"{len(failed)} of {len(goods)} other accounts' sends "
                         "failed")
        for name, (status, err) in outcomes:
            if name == "mallory":
                self.assertEqual(status, 400, err)
                self.assertEqual((err["code"], err["field"]), ("invalid_request", "tags[0]"))
        self.assertEqual(self.gw.sql("SELECT COUNT(*) FROM messages"), [(len(goods),)])


if __name__ == "__main__":
    main()
