"""PostgreSQL restarts under a running gateway (issue #9): while the server is down a send
is answered 503 store_unavailable (never a 2xx for a message that was not stored), and once
it is back the same gateway accepts and delivers again, and hears policy changes again,
without a restart of its own. Every message answered 2xx is delivered.

PostgreSQL only, on a cluster of its own (ctest pg_restart sets no shared cluster): the
shared one serves suites running in parallel."""
import os
import time
import unittest

from harness import (POSTGRES, Client, Gateway, main, own_cluster_start, own_cluster_stop,
                     postgres_only, pg_server, send_body, wait_until)

SEND = "/v3/mail/send"


@postgres_only("restarts the PostgreSQL server under the gateway")
class PostgresRestartTest(unittest.TestCase):
    def setUp(self):
        pg_server()  # starts the cluster of this process
        self.gw = Gateway().init()
        self.gw.add_domain("acme", "acme.test", "--verified")
        self.key = self.gw.create_key()
        self.gw.start()
        self.port = dict(w.split("=", 1) for w in self.gw.conninfo.split())["port"]

    def tearDown(self):
        self.gw.cleanup()

    def send(self, sender="news@acme.test"):
        return Client(self.gw.port).request("POST", SEND, send_body(sender),
                                            headers={"Authorization": "Bearer " + self.key})

    def outbox(self):
        d = os.path.join(self.gw.tmp, "outbox")
        return [f for f in os.listdir(d) if f.endswith(".eml")] if os.path.isdir(d) else []

    def test_down_means_503_and_back_means_accepted_and_delivered(self):
        self.assertEqual(self.send().status, 202)
        # Delivered before the stop: a delivery the outage cuts is deferred with the usual
        # backoff, longer than this test waits below.
        self.assertTrue(wait_until(lambda: len(self.outbox()) == 1, 20))
        own_cluster_stop()
        try:
            for _ in range(3):
                r = self.send()
                self.assertEqual(r.status, 503, r.raw)
                self.assertEqual(r.code, "store_unavailable", r.raw)
        finally:
            own_cluster_start(self.port)
        # The pool makes its connections anew; the first sends may still meet old ones.
        start = time.monotonic()
        self.assertTrue(wait_until(lambda: self.send().status == 202, 20),
                        self.gw.read_log()[-2000:])
        print(f"\naccepting again {time.monotonic() - start:.2f}s after the restart")
        accepted = 1 + 1 + sum(1 for _ in range(5) if self.send().status == 202)
        self.assertEqual(accepted, 7, "every send after the restart is accepted:\n" +
                         self.gw.read_log()[-3000:])
        stored = self.gw.sql("SELECT COUNT(*) FROM messages")[0][0]
        self.assertGreaterEqual(stored, accepted)
        self.assertTrue(wait_until(lambda: len(self.outbox()) == stored, 30),
                        f"{len(self.outbox())} of {stored} delivered")
        # The listener is back too: a change made behind the gateway's back is heard.
        self.gw.sql("UPDATE settings SET sender_auth_enabled = 1")
        self.assertTrue(wait_until(lambda: self.send().status == 403, 5),
                        "the policy change after the restart was not seen")


if __name__ == "__main__":
    main()
