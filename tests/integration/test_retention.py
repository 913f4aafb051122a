"""Retention and backup (issue 20): with short [retention] durations and the daemon's test
clock, finished messages past `messages` go with their events, the bodies of finished
messages past `bodies` are cleared while the message still answers, unfinished messages stay
whatever their age, the account's own events and parsed bounce reports past `messages` go,
counters past `drops` go and newer rows of everything stay; `postern
backup` copies a SQLite store that is taking sends, and points PostgreSQL to pg_dump."""
import os
import re
import sqlite3
import threading
import time
import unittest

from harness import (Gateway, cli, main, postgres_only, send_body, sqlite_only,
                     wait_until)
from test_delivery import Delivery
from test_schedule import gateway_now

NETCORE = "/v5/mail/send"
SENDGRID = "/v3/mail/send"
MINUTE, HOUR, DAY = 60, 3600, 86400
# Short enough for the clock to pass in a test; the worker runs a round every 5 seconds.
RETENTION = {"messages": "2h", "bodies": "1h", "drops": "3h"}
PURGE_WAIT = 30


class Retention(Delivery):
    """A gateway relaying to a sink, with the retention above, started."""

    def setUp(self):
        super().setUp()
        ini = os.path.join(self.gw.tmp, "retention.ini")
        with open(ini, "w") as f:
            f.write("[relay]\nretry_base = 1s\nretry_max = 2s\nconnections = 2\n"
                    "[mail]\nsystem_from = postern@mail.acme.test\n[retention]\n" +
                    "".join(f"{k} = {v}\n" for k, v in RETENTION.items()))
        self.gw.extra_args[self.gw.extra_args.index("--config") + 1] = ini
        self.sink.start()
        self.gw.start()

    def send_sent(self, to="bob@example.com"):
        """A message delivered to the sink: its id, once it reads `sent`."""
        mid = self.send(send_body(to=to))
        self.wait_status(mid, "sent")
        return mid

    def send_scheduled(self):
        """A message held for 70 hours: unfinished for longer than any retention here."""
        r = self.gw.client().request(
            "POST", SENDGRID, send_body(send_at=gateway_now(self.gw) + 70 * HOUR),
            headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(r.status, 202, r.raw)
        return r.header("X-Message-Id")

    def payload(self, mid):
        rows = self.gw.sql("SELECT payload FROM messages WHERE uid = ?", mid)
        return rows[0][0] if rows else None

    def events(self, mid):
        return self.gw.sql("SELECT count(*) FROM events WHERE message_uid = ?", mid)[0][0]

    def get(self, mid):
        return self.admin_client().request("GET", "/api/messages/" + mid)

    def admin_client(self):
        if not getattr(self, "admin", None):
            self.admin = self.gw.client()
            self.assertEqual(self.admin.login("admin@acme.test").status, 200)
        return self.admin


class MessagesTest(Retention):
    def test_bodies_then_messages_with_their_events_go_unfinished_ones_stay(self):
        old = self.send_sent()
        held = self.send_scheduled()
        self.assertGreater(self.events(old), 0)
        self.assertTrue(self.payload(old))

        # Past `bodies`, before `messages`: the finished message's body is cleared, the row
        # and its events stay, and the API still shows it; the held one keeps its body.
        self.gw.advance_clock(HOUR + 30 * MINUTE)
        self.assertTrue(wait_until(lambda: self.payload(old) == "", timeout=PURGE_WAIT),
                        "the body of a finished message past [retention] bodies stayed")
        r = self.get(old)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["status"], "sent")
        self.assertEqual(r.json["id"], old)
        self.assertGreater(self.events(old), 0)
        self.assertTrue(self.payload(held))
        new = self.send_sent("carol@example.com")

        # Past `messages` for the first two only: the finished one goes with its events,
        # the held one stays whole, and the message sent since keeps its body.
        self.gw.advance_clock(45 * MINUTE)
        self.assertTrue(wait_until(lambda: self.payload(old) is None, timeout=PURGE_WAIT),
                        "a finished message past [retention] messages stayed")
        self.assertEqual(self.events(old), 0)
        self.assertEqual(self.get(old).status, 404)
        r = self.get(held)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["status"], "scheduled")
        self.assertTrue(self.payload(held))
        self.assertTrue(self.payload(new))
        self.assertGreater(self.events(new), 0)
        self.assertEqual(self.get(new).json["status"], "sent")
        # One line per round that removed something (the log is written within a second).
        self.assertTrue(wait_until(lambda: re.search(
            r"retention: purged messages 1 \(events [1-9]\d*\)", self.gw.read_log()), timeout=5),
            self.gw.read_log())


class CountersTest(Retention):
    def test_counter_rows_past_drops_go_newer_ones_stay(self):
        account = self.gw.sql("SELECT id FROM accounts WHERE name = 'acme'")[0][0]
        now = gateway_now(self.gw)
        old_minute, new_minute = (now - 4 * HOUR) // 60 * 60, now // 60 * 60
        # Past `messages` and `bodies` but not `drops`: it stays only if the counters are
        # judged by `drops`.
        mid_minute = (now - 150 * MINUTE) // 60 * 60
        old_day, new_day = (now - 2 * DAY) // DAY * DAY, now // DAY * DAY
        for table in ("drops", "monitored"):
            for minute in (old_minute, mid_minute, new_minute):
                self.gw.sql(f"INSERT INTO {table} (account_id, api_key_id, from_addr, reason, "
                            "minute, count) VALUES (?, 0, 'x@acme.test', "
                            "'sender_not_authorized', ?, 3)", account, minute)
        for day in (old_day, new_day):
            self.gw.sql("INSERT INTO from_counts (account_id, from_addr, day, sends, "
                        "last_seen) VALUES (?, 'x@acme.test', ?, 5, ?)", account, day, day)

        def left():
            return [[r[0] for r in self.gw.sql(sql)] for sql in (
                "SELECT minute FROM drops ORDER BY minute",
                "SELECT minute FROM monitored ORDER BY minute",
                "SELECT day FROM from_counts ORDER BY day")]
        want = [[mid_minute, new_minute], [mid_minute, new_minute], [new_day]]
        self.assertTrue(wait_until(lambda: left() == want, timeout=PURGE_WAIT), left())
        # The stats count what is kept: the two newer rows of each.
        r = self.admin_client().request("GET", "/api/stats")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["dropped"]["sender_not_authorized"], 6)
        self.assertEqual(r.json["monitored"]["sender_not_authorized"], 6)

    def test_account_events_and_reports_past_messages_go_newer_ones_stay(self):
        account = self.gw.sql("SELECT id FROM accounts WHERE name = 'acme'")[0][0]
        now = gateway_now(self.gw)
        old, new = now - 3 * HOUR, now - 30 * MINUTE
        # The account's own events, and one whose message is gone already (a stray).
        for at, uid in ((old, None), (old, "01stray"), (new, None), (new, "01stray")):
            self.gw.sql("INSERT INTO events (account_id, type, created_at, message_uid) "
                        "VALUES (?, 'sender.added', ?, ?)", account, at, uid)
        # Parsed reports; one not parsed yet is the bounce worker's, whatever its age.
        for at in (old, new):
            self.gw.sql("INSERT INTO bounce_reports (received_at, client_ip, mail_from, rcpt, "
                        "message_uid, account_id, status, size, raw) VALUES "
                        "(?, '127.0.0.1', '', 'b@acme.test', '01gone', ?, 'done', 1, 'x')",
                        at, account)

        def left():
            return [[r[0] for r in self.gw.sql(sql)] for sql in (
                "SELECT created_at FROM events WHERE type = 'sender.added' ORDER BY id",
                "SELECT received_at FROM bounce_reports ORDER BY id")]
        want = [[new, new], [new]]
        self.assertTrue(wait_until(lambda: left() == want, timeout=PURGE_WAIT), left())


class BackupTest(Retention):
    @sqlite_only("the online backup API of SQLite; PostgreSQL has pg_dump")
    def test_backup_of_a_store_taking_sends(self):
        before = [self.send(send_body(to=f"r{i}@example.com")) for i in range(20)]
        stop = threading.Event()
        during = []

        def keep_sending():
            while not stop.is_set() and len(during) < 2000:
                during.append(self.send(send_body(to="busy@example.com")))
        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            wait_until(lambda: len(during) >= 5, timeout=20)
            copy = os.path.join(self.gw.tmp, "copy.db")
            backup = cli("backup", "--db", self.gw.db, "--to", copy)
            self.assertEqual(backup.returncode, 0, backup.stderr)
            sent_during = len(during)
        finally:
            stop.set()
            sender.join(60)
        self.assertGreater(sent_during, 5)
        db = sqlite3.connect(copy)
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            uids = {r[0] for r in db.execute("SELECT uid FROM messages")}
        finally:
            db.close()
        self.assertTrue(set(before) <= uids, set(before) - uids)
        self.assertEqual(os.stat(copy).st_mode & 0o777, 0o600)
        # The copy is whole beside nothing half-made, and is not overwritten by accident.
        self.assertEqual([n for n in os.listdir(self.gw.tmp) if ".tmp-" in n], [])
        again = cli("backup", "--db", self.gw.db, "--to", copy)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("--force", again.stderr)
        forced = cli("backup", "--db", self.gw.db, "--to", copy, "--force")
        self.assertEqual(forced.returncode, 0, forced.stderr)
        db = sqlite3.connect(copy)
        try:
            self.assertGreaterEqual(db.execute("SELECT count(*) FROM messages").fetchone()[0],
                                    len(before) + sent_during)
        finally:
            db.close()

    def test_backup_is_in_the_help(self):
        r = cli("--help")
        self.assertIn("backup", r.stdout)
        r = cli("backup", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag in ("--to", "--force", "--config", "--db"):
            self.assertIn(flag, r.stdout)
        r = cli("backup", "--to", os.path.join(self.gw.tmp, "y.db"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--db PATH or --config FILE", r.stderr)

    @postgres_only("the refusal that points to pg_dump")
    def test_backup_of_postgres_points_to_pg_dump(self):
        r = cli("backup", *self.gw.store_args, "--to", os.path.join(self.gw.tmp, "x.db"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("pg_dump", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.gw.tmp, "x.db")))

    def test_postern_postgres_beats_the_files_store_as_for_serve(self):
        # The service's environment names PostgreSQL: the file's SQLite path is not the
        # daemon's store, so copying it would be a stale backup.
        ini = os.path.join(self.gw.tmp, "sqlite-store.ini")
        with open(ini, "w") as f:
            f.write(f"[store]\npath = {self.gw.db}\n")
        to = os.path.join(self.gw.tmp, "z.db")
        r = cli("backup", "--config", ini, "--to", to,
                env={"POSTERN_POSTGRES": "host=127.0.0.1 dbname=postern"})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pg_dump", r.stderr)
        self.assertFalse(os.path.exists(to))


class NodesTest(Retention):
    @postgres_only("several gateways on one database")
    def test_two_nodes_purge_one_backlog_once_without_errors(self):
        other = Gateway(shares=self.gw)
        other.extra_args = list(self.gw.extra_args)
        other.start()
        try:
            n, at = 3000, gateway_now(self.gw) - 3 * HOUR
            self.gw.sql(
                "INSERT INTO messages (uid, account_id, from_addr, status, attempts, "
                "next_attempt_at, recipients, payload, created_at, updated_at) "
                "SELECT 'old' || lpad(i::text, 6, '0'), a.id, 'news@acme.test', 'sent', 1, "
                f"{at}, 1, '{{}}', {at}, {at} FROM generate_series(1, {n}) i, accounts a "
                "WHERE a.name = 'acme'")
            self.gw.sql("INSERT INTO events (account_id, type, created_at, message_uid, "
                        "recipient) SELECT account_id, 'message.delivered', created_at, uid, "
                        "'bob@example.com' FROM messages WHERE uid LIKE 'old%'")

            def left():
                return (self.gw.sql("SELECT count(*) FROM messages WHERE uid LIKE 'old%'")[0][0],
                        self.gw.sql("SELECT count(*) FROM events "
                                    "WHERE message_uid LIKE 'old%'")[0][0])
            self.assertTrue(wait_until(lambda: left() == (0, 0), timeout=120), left())

            # Each message was purged by one node only: the counts the two logged add up.
            def purged():
                return sum(int(x) for gw in (self.gw, other) for x in re.findall(
                    r"retention: purged messages (\d+)", gw.read_log()))
            self.assertTrue(wait_until(lambda: purged() == n, timeout=10), purged())
            for gw in (self.gw, other):
                self.assertNotRegex(gw.read_log(), r" (error|warn) ")
        finally:
            other.stop()
            other.cleanup()


if __name__ == "__main__":
    main()
