"""Prometheus metrics and health (issue 20): a gateway with [metrics] listen on a port of
its own, mail sent over both HTTP dialects and SMTP (accepted and refused) and delivered to
a real SMTP sink; /metrics must show the counts moved by exactly that, pass `promtool check
metrics` without a word, and stay apart from the API (neither listener serves the other's
paths). /healthz and /readyz answer without authentication and without details; on
PostgreSQL, /readyz says 503 while the server is stopped and 200 once it is back.

The PostgreSQL run (pg_metrics) brings a cluster of its own, since it stops the server."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import (POSTGRES, ROOT, Client, Gateway, SmtpSink, WebhookReceiver, free_port,
                     main, own_cluster_start, own_cluster_stop, pg_server, postgres_only,
                     send_body, smtp_quit, wait_until)

SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-z_]+)="([^"]*)"')
TYPE = "text/plain; version=0.0.4; charset=utf-8"


def project_version():
    """The version CMakeLists.txt gives the project, "unknown" when it gives none."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(postern VERSION ([0-9.]+)", f.read())
    return m.group(1) if m else "unknown"


def parse(text):
    """{(name, ((label, value), ...)): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def message(sender, subject):
    return (f"From: {sender}\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\n"
            "Hi there\r\n").encode()


class MetricsCase(unittest.TestCase):
    webhook = False

    @classmethod
    def setUpClass(cls):
        if POSTGRES:
            pg_server()  # this process's own cluster: the readiness test stops it
        cls.sink_dir = tempfile.mkdtemp(prefix="postern-sink-")
        cls.sink = SmtpSink(cls.sink_dir).start()
        cls.metrics_port = free_port()
        cls.gw = Gateway(relay=f"smtp://127.0.0.1:{cls.sink.port}", smtp=True,
                         config={"metrics": {"listen": f"127.0.0.1:{cls.metrics_port}"},
                                 "smtp": {"auth_without_tls": "yes"}})
        cls.gw.init()
        cls.gw.add_domain("acme", "acme.test", "--verified")
        cls.key = cls.gw.create_key()
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.sink.stop()
        shutil.rmtree(cls.sink_dir, ignore_errors=True)

    def scrape(self):
        r = Client(self.metrics_port).request("GET", "/metrics")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.header("Content-Type"), TYPE)
        return r.raw.decode()

    def metrics(self):
        return parse(self.scrape())

    def send(self, path, body):
        return Client(self.gw.port).request("POST", path, body,
                                            headers={"Authorization": "Bearer " + self.key})

    def smtp(self, mail_from, subject):
        """One SMTP transaction; the (code, reply) that ended it."""
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=30)
        try:
            self.assertEqual(s.login("apikey", self.key)[0], 235)
            code, reply = s.mail(mail_from)
            if code != 250:
                return code, reply
            self.assertEqual(s.rcpt("bob@example.com")[0], 250)
            return s.data(message(mail_from, subject))
        finally:
            smtp_quit(s)


class MetricsTest(MetricsCase):
    def test_counts_move_by_exactly_what_was_sent_refused_and_delivered(self):
        before = self.metrics()
        accepted = [self.send("/v5/mail/send", send_body(subject="n1")),
                    self.send("/v6/mail/send", send_body(subject="n2")),
                    self.send("/v3/mail/send", send_body(subject="s1"))]
        self.assertEqual([r.status for r in accepted], [200, 200, 202], [r.raw for r in accepted])
        refused = self.send("/v3/mail/send", send_body("news@elsewhere.test"))
        self.assertEqual((refused.status, refused.code), (403, "domain_not_approved"),
                         refused.raw)
        invalid = self.send("/v5/mail/send", {"from": {"email": "news@acme.test"}})
        self.assertEqual(invalid.status, 400, invalid.raw)
        self.assertEqual(self.smtp("news@acme.test", "m1")[0], 250)
        self.assertEqual(self.smtp("news@elsewhere.test", "m2")[0], 550)
        got = self.sink.wait_for(lambda ms: len(ms) >= 4, 30)
        self.assertEqual(sorted(m["Subject"] for m in got), ["m1", "n1", "n2", "s1"])

        def moved():
            after = self.metrics()
            return {k: after.get(k, 0) - before.get(k, 0) for k in after
                    if after.get(k, 0) != before.get(k, 0)}
        sent = key("postern_deliveries_total", outcome="sent")
        # The outcome is counted once recorded, just after the relay's reply.
        delta = wait_until(lambda: (lambda d: d.get(sent) == 4 and d)(moved()), 10) or moved()
        expect = {
            key("postern_sends_accepted_total", front_end="netcore"): 2,
            key("postern_sends_accepted_total", front_end="sendgrid"): 1,
            key("postern_sends_accepted_total", front_end="smtp"): 1,
            key("postern_sends_refused_total", front_end="sendgrid",
                reason="domain_not_approved"): 1,
            key("postern_sends_refused_total", front_end="netcore",
                reason="invalid_request"): 1,
            key("postern_sends_refused_total", front_end="smtp",
                reason="domain_not_approved"): 1,
            sent: 4,
            key("postern_relay_reply_seconds_count"): 4,
            key("postern_queue_commit_messages_sum"): 4,
        }
        for k, v in expect.items():
            self.assertEqual(delta.pop(k, 0), v, k)
        # What else moved: the histograms' buckets, sums and counts, and the gauge.
        for (name, labels), v in delta.items():
            self.assertTrue(name.startswith(("postern_relay_reply_seconds",
                                             "postern_queue_commit_messages",
                                             "postern_messages")), (name, labels, v))
        after = self.metrics()
        self.assertEqual(after[key("postern_messages", status="sent")], 4)
        for status in ("queued", "scheduled", "sending", "deferred", "failed", "dropped",
                       "cancelled"):
            self.assertEqual(after[key("postern_messages", status=status)], 0, status)
        commits = after[key("postern_queue_commit_messages_count")]
        self.assertGreaterEqual(commits, 1)
        self.assertLessEqual(commits, 4)
        self.assertEqual(after[key("postern_build_info", version=project_version())], 1)
        started = after[key("postern_process_start_time_seconds")]
        self.assertLessEqual(abs(time.time() - started), 600)

    def test_promtool_finds_nothing_to_say(self):
        self.send("/v3/mail/send", send_body(subject="lint"))
        text = self.scrape()
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""), text)

    def test_histograms_are_cumulative_and_end_at_their_count(self):
        self.send("/v5/mail/send", send_body(subject="hist"))
        m = self.metrics()
        for name in ("postern_relay_reply_seconds", "postern_queue_commit_messages"):
            buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in m.items()
                              if n == name + "_bucket"))
            self.assertEqual(buckets[-1][0], float("inf"))
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), name)
            self.assertEqual(counts[-1], m[key(name + "_count")], name)

    def test_each_listener_serves_only_its_own(self):
        main = Client(self.gw.port).request("GET", "/metrics")
        self.assertEqual(main.status, 404, main.raw)
        self.assertNotIn(b"postern_", main.raw)
        metrics = Client(self.metrics_port)
        for method, path in (("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/"),
                             ("GET", "/api/session"), ("POST", "/v3/mail/send"),
                             ("POST", "/metrics"), ("GET", "/metrics/x")):
            r = metrics.request(method, path, send_body() if method == "POST" else None,
                                headers={"Authorization": "Bearer " + self.key})
            self.assertEqual(r.status, 404, (method, path, r.raw))
            self.assertNotIn(b"postern_", r.raw)

    def test_health_answers_without_authentication_or_details(self):
        for path, word in (("/healthz", "ok"), ("/readyz", "ready")):
            r = Client(self.gw.port).request("GET", path)
            self.assertEqual(r.status, 200, r.raw)
            self.assertEqual(r.json, {"status": word})
            self.assertTrue(r.header("Content-Type").startswith("application/json"))

    @postgres_only("stops the PostgreSQL server under the gateway")
    def test_readyz_is_503_while_the_store_is_gone_and_200_once_back(self):
        port = dict(w.split("=", 1) for w in self.gw.conninfo.split())["port"]
        ready = lambda: Client(self.gw.port).request("GET", "/readyz")
        self.assertEqual(ready().status, 200)
        own_cluster_stop()
        try:
            r = ready()
            self.assertEqual((r.status, r.json), (503, {"status": "unavailable"}), r.raw)
            r = Client(self.gw.port).request("GET", "/healthz")
            self.assertEqual((r.status, r.json), (200, {"status": "ok"}))
        finally:
            own_cluster_start(port)
        start = time.monotonic()
        self.assertTrue(wait_until(lambda: ready().status == 200, 20), self.gw.read_log()[-2000:])
        self.assertEqual(ready().json, {"status": "ready"})
        print(f"\nready again {time.monotonic() - start:.2f}s after the restart")


class BackgroundMetricsTest(MetricsCase):
    """Webhook POSTs and DNS checks, on a gateway of their own (a webhook would otherwise
    get the other tests' events)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.receiver = WebhookReceiver().start()
        cls.admin = cls.gw.logged_in("admin@acme.test")

    @classmethod
    def tearDownClass(cls):
        cls.receiver.stop()
        super().tearDownClass()

    def test_webhook_posts_by_outcome(self):
        r = self.admin.request("POST", "/api/webhooks", {"url": self.receiver.url})
        self.assertEqual(r.status, 201, r.raw)
        path = f"/api/webhooks/{r.json['id']}/test"
        before = self.metrics()
        success = key("postern_webhook_posts_total", outcome="success")
        failed = key("postern_webhook_posts_total", outcome="http_error")
        self.assertEqual(self.admin.request("POST", path).status, 202)
        self.assertTrue(wait_until(lambda: self.metrics()[success] == before[success] + 1, 20))
        self.receiver.answer(500)
        self.assertEqual(self.admin.request("POST", path).status, 202)
        self.assertTrue(wait_until(lambda: self.metrics()[failed] == before[failed] + 1, 20))
        self.assertEqual([q.status for q in self.receiver.requests], [200, 500])
        self.assertEqual(self.metrics()[success], before[success] + 1)

    def test_a_dns_check_without_an_answer_is_a_lookup_error(self):
        r = self.admin.request("POST", "/api/domains", {"domain": "pending.test"})
        self.assertEqual(r.status, 201, r.raw)
        before = self.metrics()
        error = key("postern_dns_checks_total", outcome="lookup_error")
        r = self.admin.request("POST", f"/api/domains/{r.json['id']}/check")
        self.assertEqual(r.status, 200, r.raw)
        # The domain checker may check it too, in the background: at least this one.
        self.assertGreaterEqual(self.metrics()[error], before[error] + 1)
        for outcome in ("verified", "failed"):
            k = key("postern_dns_checks_total", outcome=outcome)
            self.assertEqual(self.metrics()[k], before[k], outcome)


if __name__ == "__main__":
    main()
