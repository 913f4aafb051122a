"""Several gateways, one PostgreSQL database (issue #9): two `postern serve` nodes on their
own loopback ports share a database and a DKIM master key, and relay to one Postfix
smtp-sink. A policy change made through one node holds on the other within a second;
sessions, lockout counters and verification links work whichever node a request lands on;
2,000 messages sent across both are delivered exactly once; and a node killed mid-delivery
leaves its claimed messages to the other once their lease has run out.

PostgreSQL only (POSTERN_TEST_BACKEND=postgres; ctest pg_multinode)."""
import os
import re
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import (PASSWORD, POSTGRES, Client, Gateway, SmtpSink, WebhookReceiver,
                     audit_events, cli, main, must, send_body, wait_until)

NETCORE = "/v5/mail/send"
SETTINGS = "/api/settings/sender-auth"
LEASE = 600  # deliver.c LEASE_SECONDS
BATCH = 16  # deliver.c BATCH: outcomes a worker writes together (at-least-once window)
PROPAGATION_BOUND = 1.0  # seconds: the "within one second"

_MSGID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.I | re.M)
_HELO = re.compile(rb"^X-Helo-Args:\s*(\S+)", re.I | re.M)


class Copy:
    """One message file at the sink: when it was written and which node's EHLO name (the
    host of its public URL) brought it."""

    def __init__(self, mtime, helo):
        self.mtime, self.helo = mtime, helo

    def __repr__(self):
        return f"Copy({self.mtime:.3f}, {self.helo})"


def sink_copies(directory):
    """Message-ID -> the Copy of each sink file holding it (a cheap scan)."""
    out = {}
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        m, h = _MSGID.search(data), _HELO.search(data)
        if m:
            out.setdefault(m.group(1).decode(), []).append(
                Copy(mtime, h.group(1).decode() if h else None))
    return out


def sent_in_log(gw):
    """The message ids a node recorded as sent: it logs "message UID sent attempt=N" once
    the outcome is written, never for a message a crash would send again."""
    return re.findall(r"message ([0-9a-f]{32}) sent attempt=", gw.read_log())


@unittest.skipUnless(POSTGRES, "PostgreSQL only: several nodes share one PostgreSQL "
                               "database (run with POSTERN_TEST_BACKEND=postgres)")
class TwoNodes(unittest.TestCase):
    """Node A and node B on one fresh database, relaying to one sink; acme.test approved,
    an API key, an Admin and two Technical users; fresh for every test."""

    connections = {"a": 2, "b": 2}
    # Where users reach each node; its host is also the EHLO name the sink records.
    public_urls = {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:1"}

    @classmethod
    def make_nodes(cls):
        a = Gateway().init("acme", "admin@acme.test")
        b = None
        try:
            a.add_user("acme", "tech@acme.test", "technical")
            a.add_user("acme", "lock@acme.test", "technical")
            a.add_domain("acme", "acme.test", "--verified")
            key = a.create_key("acme")
            b = Gateway(shares=a)
            sink = SmtpSink(os.path.join(a.tmp, "sink"))
            for name, gw in (("a", a), ("b", b)):
                ini = os.path.join(gw.tmp, "node.ini")
                with open(ini, "w") as f:
                    f.write(f"[relay]\nretry_base = 1s\nretry_max = 2s\n"
                            f"connections = {cls.connections[name]}\n"
                            "[mail]\nsystem_from = postern@mail.acme.test\n")
                gw.extra_args = ["--config", ini, "--relay", f"smtp://127.0.0.1:{sink.port}",
                                 "--public-url", cls.public_urls[name]]
            return a, b, sink, key
        except BaseException:
            if b:
                b.cleanup()
            a.cleanup()
            raise

    def setUp(self):
        self.a, self.b, self.sink, self.key = self.make_nodes()

    def tearDown(self):
        self.b.cleanup()
        self.a.cleanup()  # drops the database
        self.sink.stop()

    def send(self, gw, payload):
        return gw.client().request("POST", NETCORE, payload,
                                   headers={"Authorization": "Bearer " + self.key})

    def statuses(self):
        return dict(self.a.sql("SELECT status, COUNT(*) FROM messages GROUP BY status"))


def on_node(client, gw):
    """The same browser session (cookie and CSRF token) talking to another node."""
    other = Client(gw.port)
    other.cookie, other.csrf = client.cookie, client.csrf
    return other


class SharedStateTest(TwoNodes):
    """Policy, sessions, lockout and verification links across the two nodes."""

    def setUp(self):
        super().setUp()
        self.sink.start()
        self.a.start()
        self.b.start()

    def propagation(self, what, probe, done):
        """Seconds until done(probe()) holds, probing at once and then every 10 ms, at most
        PROPAGATION_BOUND after the change was answered; fails with the last answer."""
        t0 = time.monotonic()
        probes = 0
        while True:
            r = probe()
            probes += 1
            elapsed = time.monotonic() - t0
            if done(r):
                print(f"\n{what}: seen after {elapsed * 1000:.0f} ms ({probes} probes)",
                      end="")
                return elapsed
            if elapsed > PROPAGATION_BOUND:
                self.fail(f"{what}: not seen within {PROPAGATION_BOUND} s ({probes} probes); "
                          f"last answer {r.status} {r.raw[:300]!r}")
            time.sleep(0.01)

    def test_policy_changed_on_a_holds_on_b_within_a_second(self):
        admin = self.a.logged_in("admin@acme.test")
        r = admin.request("POST", "/api/senders",
                          {"addresses": ["news@acme.test", "ops@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        ids = {s["address"]: s["id"] for s in r.json["added"]}
        self.assertEqual(admin.request("POST", f"/api/senders/{ids['ops@acme.test']}/verify")
                         .status, 200)
        # Off: B sends from anyone on the approved domain.
        self.assertEqual(self.send(self.b, send_body("news@acme.test")).status, 200)
        latencies = {}

        # Toggle on A; B refuses the still-pending sender.
        r = admin.request("PUT", SETTINGS, {"enabled": True, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)
        latencies["toggle"] = self.propagation(
            "sender auth switched on at A, refused at B",
            lambda: self.send(self.b, send_body("news@acme.test")),
            lambda r: r.status == 403 and r.code == "sender_pending_verification")

        # Verify on A; B accepts it.
        r = admin.request("POST", f"/api/senders/{ids['news@acme.test']}/verify")
        self.assertEqual(r.status, 200, r.raw)
        latencies["verify"] = self.propagation(
            "sender verified at A, accepted at B",
            lambda: self.send(self.b, send_body("news@acme.test")), lambda r: r.status == 200)
        # An address that is not on the list stays refused on B.
        r = self.send(self.b, send_body("stranger@acme.test"))
        self.assertEqual((r.status, r.code), (403, "sender_not_authorized"), r.raw)

        # The other way round: removed on B, refused on A.
        admin_b = on_node(admin, self.b)
        self.assertEqual(admin_b.request("DELETE", f"/api/senders/{ids['news@acme.test']}")
                         .status, 204)
        latencies["remove"] = self.propagation(
            "sender removed at B, refused at A",
            lambda: self.send(self.a, send_body("news@acme.test")),
            lambda r: r.status == 403 and r.code == "sender_not_authorized")

        # A change made by the CLI, through neither node, reaches both.
        must(cli("domain", "set", *self.a.store_args, "--account", "acme", "acme.test",
                 "--inactive"))
        for name, gw in (("A", self.a), ("B", self.b)):
            latencies[f"cli-{name}"] = self.propagation(
                f"domain switched off by the CLI, refused at {name}",
                lambda: self.send(gw, send_body("ops@acme.test")),
                lambda r: r.status == 403 and r.code == "domain_inactive")
        must(cli("domain", "set", *self.a.store_args, "--account", "acme", "acme.test",
                 "--active"))
        for name, gw in (("A", self.a), ("B", self.b)):
            latencies[f"cli-on-{name}"] = self.propagation(
                f"domain switched on by the CLI, accepted at {name}",
                lambda: self.send(gw, send_body("ops@acme.test")), lambda r: r.status == 200)

        # Off again on A: B sends from anyone once more.
        r = admin.request("PUT", SETTINGS, {"enabled": False, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.raw)
        latencies["off"] = self.propagation(
            "sender auth switched off at A, accepted at B",
            lambda: self.send(self.b, send_body("stranger@acme.test")), lambda r: r.status == 200)
        print("\npolicy propagation between nodes (ms): " + ", ".join(
            f"{k} {v * 1000:.0f}" for k, v in latencies.items()))
        for what, seconds in latencies.items():
            self.assertLess(seconds, PROPAGATION_BOUND, what)

    def test_a_session_made_on_a_works_on_b(self):
        on_a = self.a.logged_in("tech@acme.test")
        on_b = on_node(on_a, self.b)
        r = on_b.request("GET", "/api/session")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["user"]["email"], "tech@acme.test")
        self.assertEqual(r.json["csrf_token"], on_a.csrf)
        # A change on B with the CSRF token A handed out.
        r = on_b.request("POST", "/api/senders", {"addresses": ["session@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        r = on_b.request("POST", "/api/senders", {"addresses": ["x@acme.test"]}, csrf=False)
        self.assertEqual(r.code, "csrf_failed")
        listed = {s["address"] for s in on_a.request("GET", "/api/senders").json["senders"]}
        self.assertIn("session@acme.test", listed)
        # Logged out on B: gone on A too.
        self.assertEqual(on_b.request("DELETE", "/api/session").status, 204)
        self.assertEqual(on_a.request("GET", "/api/session").status, 401)
        self.assertEqual(on_b.request("GET", "/api/session").status, 401)

    def test_failed_logins_on_both_nodes_count_together(self):
        nodes = [self.a, self.b, self.a, self.b, self.a]  # five failures, split 3 + 2
        for i, gw in enumerate(nodes):
            r = gw.client().request("POST", "/api/session",
                                    {"account": "acme", "email": "lock@acme.test",
                                     "password": f"wrong-{i}-pass"})
            self.assertEqual(r.status, 401, f"attempt {i + 1} on port {gw.port}")
        for gw in (self.b, self.a):  # the right password, too late, on either node
            r = gw.client().login("lock@acme.test")
            self.assertEqual((r.status, r.code), (429, "too_many_attempts"), r.raw)
        locked = [e for e in audit_events(self.b.logged_in("admin@acme.test"))
                  if e["action"] == "user.locked_out"]
        self.assertEqual([e["target"] for e in locked], ["lock@acme.test"])
        self.assertEqual(self.b.client().login("tech@acme.test").status, 200)

    def test_a_verification_link_mailed_by_a_works_on_b_once(self):
        tech = self.a.logged_in("tech@acme.test")
        r = tech.request("POST", "/api/senders", {"addresses": ["linked@acme.test"]})
        self.assertEqual(r.status, 201, r.raw)
        mails = self.sink.wait_for(lambda ms: any(
            str(m["Subject"]).startswith("Verify sender") for m in ms), timeout=30)
        mail_ = next(m for m in mails if str(m["Subject"]).startswith("Verify sender"))
        link = re.search(r"http://127\.0\.0\.1:1(/verify/[A-Za-z0-9_-]{43})",
                         mail_.get_body(("plain",)).get_content()).group(1)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        r = self.b.client().request("GET", link)
        self.assertEqual(r.status, 200, r.raw[:300])
        r = self.b.client().request("POST", link, raw="", headers=form)
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertIn("1 verified now", r.raw.decode())
        senders = {s["address"]: s for s in tech.request("GET", "/api/senders").json["senders"]}
        self.assertEqual((senders["linked@acme.test"]["status"],
                          senders["linked@acme.test"]["verified_via"]), ("verified", "link"))
        for method in ("GET", "POST"):
            r = self.a.client().request(method, link, raw="" if method == "POST" else None,
                                        headers=form)
            self.assertEqual(r.status, 410, (method, r.raw[:300]))
            self.assertIn("token_used", r.raw.decode())


class ExactlyOnceTest(TwoNodes):
    connections = {"a": 4, "b": 4}
    public_urls = {"a": "http://node-a.test", "b": "http://node-b.test"}
    TOTAL = 2000

    def test_2000_messages_sent_across_both_nodes_are_delivered_exactly_once(self):
        self.sink.start()
        self.a.start()
        self.b.start()
        nodes = (self.a, self.b)
        failures = []
        mids = {}  # i -> message id
        lock = threading.Lock()

        def one(i):
            gw = nodes[i % 2]  # alternately A and B
            r = self.send(gw, send_body("news@acme.test", subject=f"mn-{i}", to=f"r{i}@example.com"))
            with lock:
                if r.status == 200:
                    mids[i] = r.json["data"]["message_id"]
                else:
                    failures.append((i, r.status, r.raw[:200]))

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(self.TOTAL), timeout=600))
        sending = time.monotonic() - t0
        self.assertEqual(failures, [])
        self.assertEqual(len(set(mids.values())), self.TOTAL)
        want = {f"{mid}@acme.test" for mid in mids.values()}
        arrived = wait_until(lambda: want <= set(sink_copies(self.sink.dir)), timeout=300,
                             interval=0.5)
        delivering = time.monotonic() - t0
        all_sent = wait_until(lambda: self.statuses() == {"sent": self.TOTAL}, timeout=60,
                              interval=0.5)
        time.sleep(1.5)  # room for a late duplicate to show up
        copies = sink_copies(self.sink.dir)
        lost = sorted(want - set(copies))
        twice = sorted(m for m, cs in copies.items() if len(cs) > 1)
        extra = sorted(set(copies) - want)
        by_a, by_b = sent_in_log(self.a), sent_in_log(self.b)
        helo = [c.helo for cs in copies.values() for c in cs]
        print(f"\nexactly once: {self.TOTAL} sent in {sending:.1f} s alternately to A and B "
              f"(8 clients), all in the sink after {delivering:.1f} s; delivered by A "
              f"{len(by_a)}, by B {len(by_b)} (sink: {helo.count('node-a.test')} from A, "
              f"{helo.count('node-b.test')} from B); {len(lost)} lost, {len(twice)} twice, "
              f"{len(extra)} unexpected; statuses {self.statuses()}")
        self.assertTrue(arrived, f"{len(lost)} never arrived, e.g. {lost[:5]}")
        self.assertEqual(lost, [])
        self.assertEqual(twice, [], "delivered more than once")
        self.assertEqual(extra, [], "mail nobody sent")
        self.assertTrue(all_sent, f"not all recorded sent: {self.statuses()}")
        # Each message was delivered (and recorded) by exactly one node; both took part.
        self.assertEqual(sorted(by_a + by_b), sorted(mids.values()))
        self.assertEqual(helo.count("node-a.test"), len(by_a))
        self.assertEqual(helo.count("node-b.test"), len(by_b))
        self.assertGreater(len(by_a), 0)
        self.assertGreater(len(by_b), 0)


class NodeDiesTest(TwoNodes):
    """A relay that answers MAIL FROM after a second, so a node can be caught mid-delivery;
    the sink tells the nodes apart by their EHLO names."""

    connections = {"a": 2, "b": 2}
    public_urls = {"a": "http://node-a.test", "b": "http://node-b.test"}
    COUNT = 40

    def story(self, uid, kill_time):
        """What happened to one message: its row, its copies at the sink (relative to the
        kill) and the lines both nodes logged about it."""
        row = self.a.sql("SELECT status, attempts, lease_until, updated_at FROM messages "
                         "WHERE uid = ?", uid)
        copies = sink_copies(self.sink.dir).get(f"{uid}@acme.test", [])
        lines = [f"  A: {l}" for l in self.a.read_log().splitlines() if uid in l] + \
                [f"  B: {l}" for l in self.b.read_log().splitlines() if uid in l]
        return (f"{uid}: row {row}, copies " +
                ", ".join(f"from {c.helo} at {c.mtime - kill_time:+.3f}s" for c in copies) +
                " from the kill\n" + "\n".join(lines))

    def test_a_node_killed_mid_delivery_leaves_its_claims_to_the_other_after_the_lease(self):
        self.sink.start("-W", "MAIL:1")
        self.a.start()
        self.b.start()
        mids = []
        for i in range(self.COUNT):  # all to A, whose workers wake at once and claim
            r = self.send(self.a, send_body("news@acme.test", subject=f"die-{i}",
                                       to=f"d{i}@example.com"))
            self.assertEqual(r.status, 200, r.raw)
            mids.append(r.json["data"]["message_id"])
        from_a = lambda: sorted(m.split("@")[0] for m, cs in sink_copies(self.sink.dir).items()
                                for c in cs if c.helo == "node-a.test")
        # Mid-delivery: A has handed a few to the relay and holds claims on more.
        self.assertTrue(wait_until(lambda: len(from_a()) >= 3, timeout=30, interval=0.01),
                        self.statuses())
        kill_time = time.time()
        self.a.kill()
        by_a = from_a()  # delivered by A; their outcomes may not be written

        # B does what it can; A's claims hold until their lease runs out. B is done when
        # nothing is queued and nothing changed for 4 s (a message takes B a second).
        def state():
            return (self.statuses(), sorted((m, len(cs)) for m, cs in
                                            sink_copies(self.sink.dir).items()))
        last, since, deadline = None, time.monotonic(), time.monotonic() + 120
        while time.monotonic() < deadline:
            now = state()
            if now != last or now[0].get("queued") or now[0].get("deferred"):
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= 4:
                break
            time.sleep(0.25)
        else:
            self.fail(f"B did not settle: {self.statuses()}")
        orphans = {u for (u,) in self.a.sql(
            "SELECT uid FROM messages WHERE status = 'sending'")}
        copies = sink_copies(self.sink.dir)
        self.assertTrue(orphans, "A held no claim when killed: nothing was tested\n" +
                        str(self.statuses()))
        early = sorted(u for u in orphans
                       if any(c.helo != "node-a.test" or c.mtime > kill_time + 0.5
                              for c in copies.get(f"{u}@acme.test", [])))
        self.assertEqual(early, [], "A's claimed messages went out before the lease ended:\n"
                         + "\n".join(self.story(u, kill_time) for u in early))
        self.assertEqual(set(sent_in_log(self.a)) & orphans, set(),
                         "A logged as sent a message it never recorded")

        # The lease runs out on B's clock: B finishes A's work.
        self.b.advance_clock(LEASE + 1)
        done = wait_until(lambda: self.statuses() == {"sent": self.COUNT}, timeout=120,
                          interval=0.25)
        time.sleep(1.5)  # room for a late duplicate to show up
        copies = sink_copies(self.sink.dir)
        want = {f"{m}@acme.test" for m in mids}
        lost = sorted(want - set(copies))
        twice = {m.split("@")[0]: cs for m, cs in copies.items() if len(cs) > 1}
        by_b = sent_in_log(self.b)
        print(f"\nnode dies: {self.COUNT} sent to A; A handed {len(by_a)} to the relay, "
              f"then was killed holding {len(orphans)} claims; B recorded {len(by_b)} "
              f"({len(orphans)} of them after the lease); {len(lost)} lost, {len(twice)} "
              f"delivered twice; statuses {self.statuses()}")
        self.assertTrue(done, f"B did not finish: {self.statuses()}\n" +
                        "\n".join(self.b.read_log().splitlines()[-20:]))
        self.assertEqual(lost, [])
        self.assertEqual(orphans - set(by_b), set(), "orphans B never delivered")
        by_a_log = set(sent_in_log(self.a))
        self.assertEqual(set(by_b) & by_a_log, set(), "a message recorded sent by both nodes")
        # A may be killed between writing an outcome and logging it: a message neither node
        # logged was recorded by A, so A delivered it, before the kill, and B left it alone.
        for u in sorted(set(mids) - set(by_b) - by_a_log):
            cs = copies.get(f"{u}@acme.test", [])
            self.assertTrue(cs and all(c.helo == "node-a.test" and c.mtime <= kill_time + 0.5
                                       for c in cs), self.story(u, kill_time))
        # SMTP and batched outcomes give at-least-once: only a message A had already
        # handed to the relay before dying (its outcome not yet written) may arrive
        # twice, first from A before the kill, then from B; at most a batch per A worker.
        stories = "\n".join(self.story(u, kill_time) for u in twice)
        for uid, cs in twice.items():
            self.assertEqual(sorted(c.helo for c in cs), ["node-a.test", "node-b.test"],
                             stories)
            self.assertIn(uid, orphans, stories)
            self.assertLess(min(c.mtime for c in cs if c.helo == "node-a.test"),
                            kill_time + 0.5, stories)
        self.assertLessEqual(len(twice), BATCH * self.connections["a"], stories)


@unittest.skipUnless(POSTGRES, "PostgreSQL only: several nodes share one PostgreSQL "
                               "database (run with POSTERN_TEST_BACKEND=postgres)")
class MasterKeyTest(unittest.TestCase):
    """Every node must hold the DKIM master key the shared store's keys are sealed with: a
    node without [dkim] master_key_file, or with another key, refuses to start instead of
    deferring all signed mail."""

    def setUp(self):
        self.a = Gateway().init("acme", "admin@acme.test")
        self.a.add_domain("acme", "acme.test", "--verified")
        self.b = Gateway(shares=self.a)

    def tearDown(self):
        self.b.cleanup()
        self.a.cleanup()

    def test_serve_on_postgres_needs_the_master_key_setting(self):
        args = [a for a in self.a.serve_command("--listen", "127.0.0.1:1")]
        i = args.index("--config")
        del args[i:i + 2]  # the harness's ini that names the master key
        proc = subprocess.Popen(args, cwd=self.a.tmp, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self.fail("serve started on PostgreSQL without [dkim] master_key_file")
        self.assertNotEqual(proc.returncode, 0)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("[dkim] master_key_file", lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.a.tmp, "var")),
                         "no key of its own under the working directory")

    def test_a_node_with_another_master_key_refuses_to_start(self):
        self.a.start()
        other = os.path.join(self.b.tmp, "other-master.key")
        with open(os.open(other, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        self.b.master_key = other
        with self.assertRaises(AssertionError) as refused:
            self.b.start()
        self.assertIn("[dkim] master_key_file", str(refused.exception))
        self.assertIn(other, str(refused.exception))
        # With the same key as A, B serves beside it.
        self.b.master_key = self.a.master_key
        self.b.start()
        for gw in (self.a, self.b):
            self.assertEqual(gw.client().login("admin@acme.test").status, 200)


class WebhooksAcrossNodesTest(TwoNodes):
    """One webhook endpoint, sends split across both nodes, whose workers claim from the
    deliveries they share: every event arrives, none twice (issue 17)."""

    connections = {"a": 2, "b": 2}
    TOTAL = 200

    def test_every_event_arrives_once_whichever_node_made_it(self):
        receiver = WebhookReceiver().start()
        self.addCleanup(receiver.stop)
        for gw in (self.a, self.b):  # the receiver is on loopback
            with open(os.path.join(gw.tmp, "node.ini"), "a") as f:
                f.write("[webhooks]\nallow_private = yes\n")
        self.sink.start()
        self.a.start()
        self.b.start()
        admin = self.a.logged_in("admin@acme.test")
        r = admin.request("POST", "/api/webhooks", {"url": receiver.url, "format": "standard"})
        self.assertEqual(r.status, 201, r.raw)
        nodes = (self.a, self.b)

        def one(i):
            r = self.send(nodes[i % 2], send_body("news@acme.test", subject=f"wh-{i}",
                                                  to=f"w{i}@example.com"))
            return r.status, r.raw[:200]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(self.TOTAL), timeout=300))
        self.assertEqual([a for a in answers if a[0] != 200], [])
        self.assertTrue(wait_until(lambda: self.statuses() == {"sent": self.TOTAL},
                                   timeout=120, interval=0.5), self.statuses())
        want = {f"evt_{i}" for (i,) in self.a.sql(
            "SELECT id FROM events WHERE type IN ('message.processed', 'message.delivered')")}
        self.assertEqual(len(want), 2 * self.TOTAL)
        ids = lambda: [r.headers["webhook-id"] for r in receiver.received()]
        arrived = wait_until(lambda: want <= set(ids()), timeout=120, interval=0.25)
        time.sleep(1.5)  # room for a late duplicate to show up
        got = ids()
        twice = sorted({i for i in got if got.count(i) > 1})
        print(f"\nwebhooks across nodes: {len(want)} events, {len(got)} POSTs answered "
              f"200, {len(twice)} twice, {len(receiver.all()) - len(got)} not 2xx", end="")
        self.assertTrue(arrived, f"{len(want - set(got))} events never arrived")
        self.assertEqual(set(got), want)
        self.assertEqual(twice, [], "an event posted twice")


if __name__ == "__main__":
    main()
