"""Figure 11 of `make bench`: accepted sends per second while the retention worker purges
1,000,000 old messages (with their two events each) against the same run with nothing to
purge, back to back in one run (issue 20); on SQLite, then on PostgreSQL (one node, the
cluster of figure 8)."""
import os
import shutil
import sqlite3
import time

from common import ACCOUNT, DOMAIN, PROCS, db_scalar, first_body, log, psql_script
import fig8_postgres as pg
import report

TARGET = 0.8
OLD = 1_000_000
OLD_QUICK = 100_000
AGE_DAYS = 40  # past the default [retention] messages (30 d): every old message is due


def make_old(ctx, n):
    """A copy of the fixtures holding n finished messages accepted AGE_DAYS ago, each with a
    message.processed and a message.delivered event: written by SQL into the stopped store
    (the API would take longer than the run), made once and copied for each run."""
    if "fig11_old" in ctx.data:
        return ctx.data["fig11_old"]
    src, _ = ctx.base()
    d = os.path.join(ctx.tmp, "fig11-old")
    shutil.copytree(src, d)
    at = int(time.time()) - AGE_DAYS * 86400
    payload = first_body(ctx.data["ok_bodies"])
    t0 = time.monotonic()
    con = sqlite3.connect(os.path.join(d, "postern.db"))
    try:
        with con:
            (account,) = con.execute("SELECT id FROM accounts").fetchone()
            con.execute(
                "INSERT INTO messages (uid, account_id, from_addr, status, attempts, "
                "next_attempt_at, recipients, payload, created_at, updated_at) "
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
                "SELECT printf('old%010d', i), ?, 's1@' || ?, 'sent', 1, ?, 1, ?, ?, ? FROM c",
                (n, account, DOMAIN, at, payload, at, at + 1))
            for kind in ("message.processed", "message.delivered"):
                con.execute(
                    "INSERT INTO events (account_id, type, created_at, message_uid, recipient) "
                    "SELECT account_id, ?, created_at, uid, 'customer@example.org' "
                    "FROM messages", (kind,))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    log(f"figure 11: {n:,} old messages and {2 * n:,} events written in "
        f"{time.monotonic() - t0:.0f} s")
    ctx.data["fig11_old"] = d
    return d


def pg_old(ctx, cluster, n):
    """Database bench_old of the cluster: bench_base with the same n old messages and events
    as make_old, made once by SQL; each run copies it."""
    t0 = time.monotonic()
    at = int(time.time()) - AGE_DAYS * 86400
    payload = first_body(ctx.data["ok_bodies"]).replace("'", "''")
    pg.sql(cluster, "CREATE DATABASE bench_old TEMPLATE bench_base")
    old = pg.conninfo(cluster, "bench_old")
    psql_script(old, "INSERT INTO messages (uid, account_id, from_addr, status, attempts, "
                "next_attempt_at, recipients, payload, created_at, updated_at) "
                f"SELECT 'old' || lpad(i::text, 10, '0'), a.id, 's1@{DOMAIN}', 'sent', 1, "
                f"{at}, 1, '{payload}', {at}, {at + 1} FROM generate_series(1, {n}) i, "
                f"accounts a WHERE a.name = '{ACCOUNT}';\n")
    for kind in ("message.processed", "message.delivered"):
        psql_script(old, "INSERT INTO events (account_id, type, created_at, message_uid, "
                    f"recipient) SELECT account_id, '{kind}', created_at, uid, "
                    "'customer@example.org' FROM messages;\n")
    pg.sql(cluster, "ANALYZE", "bench_old")
    log(f"figure 11 (PostgreSQL): {n:,} old messages and {2 * n:,} events written in "
        f"{time.monotonic() - t0:.0f} s")


def run_pg(ctx, n):
    """The same comparison on PostgreSQL, one node: (runs without, runs with, old messages
    left after each run with)."""
    cluster = PROCS.start_cluster(os.path.join(ctx.tmp, "pg11"))
    try:
        key, master_key = pg.pg_base(ctx, cluster, "fig11")
        pg_old(ctx, cluster, n)

        def left(db):
            return int(pg.sql(cluster, "SELECT COUNT(*) FROM messages WHERE uid LIKE 'old%'",
                              db))

        def with_run(name):
            r = pg.pg_nodes(ctx, cluster, name, 1, key, master_key, template="bench_old",
                            after=left)
            log(f"purge (PostgreSQL): {n - r['after']:,} of {n:,} old messages removed "
                "during the run")
            return r, r["after"]
        plain, ours, seen = ctx.alternate(
            "fig11-pg", with_run, lambda name: pg.pg_nodes(ctx, cluster, name, 1, key,
                                                             master_key))
    finally:
        PROCS.stop_cluster(cluster)
    return plain, ours, seen


def counted(seen):
    """after(): how much of the backlog the worker removed while wrk ran."""
    def after(node, r):
        seen["left"] = db_scalar(node.db, "SELECT COUNT(*) FROM messages WHERE uid LIKE 'old%'")
    return after


def row(kind, r, n, s):
    cells = [kind, f"{r['rps']:,.0f}", f"{r['p99_us'] / 1000:.2f}", f"{r['cores']:.2f}"]
    cells.append(f"{n - s['left']:,}" if s else "—")
    return "| " + " | ".join(cells) + " |"


def pg_row(kind, r, purged):
    return (f"| {kind} | {r['rps']:,.0f} | {r['p99_us'] / 1000:.2f} | {r['cores'][0]:.2f} | "
            f"{r['pg_cores']:.2f} | {purged} |")


def run(ctx):
    n = OLD_QUICK if ctx.quick else OLD
    old = make_old(ctx, n)

    def purge_run(name):
        s = {}
        r = ctx.postern_wrk(name, ctx.data["ok_bodies"], source=old, after=counted(s))
        log(f"purge: {n - s['left']:,} of {n:,} old messages removed during the run")
        return r, s
    plain, purging, seen = ctx.alternate("fig11", purge_run)
    base, ours, ratio = ctx.compare(11, plain, purging)
    for s in seen:
        if s["left"] == n:
            ctx.notes.append("figure 11: the purge removed nothing while wrk ran")
    size = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"
    ctx.row(11, f"Accepted sends while {size} old messages are purged (req/s)",
            f"{base:,.0f} (no purge)", f"{ours:,.0f}", ratio, f"≥ {TARGET}×", ratio >= TARGET)
    pg_plain, pg_purging, pg_left = run_pg(ctx, n)
    # pg_nodes notes its own failed sends.
    pg_base = sum(r["rps"] for r in pg_plain) / len(pg_plain)
    pg_ours = sum(r["rps"] for r in pg_purging) / len(pg_purging)
    pg_ratio = pg_ours / pg_base
    ctx.row(11, "The same on PostgreSQL, one node (req/s)", f"{pg_base:,.0f} (no purge)",
            f"{pg_ours:,.0f}", pg_ratio, f"≥ {TARGET}×", pg_ratio >= TARGET)
    report.plot(ctx, "retention", "POST /v5/mail/send with and without a purge running",
                "", "sends per second",
                [(f"no purge #{i + 1}", r["rps"], True) for i, r in enumerate(plain)] +
                [(f"purging #{i + 1}", r["rps"]) for i, r in enumerate(purging)] +
                [(f"PG no purge #{i + 1}", r["rps"], True) for i, r in enumerate(pg_plain)] +
                [(f"PG purging #{i + 1}", r["rps"]) for i, r in enumerate(pg_purging)])
    rows = [row("none", r, n, None) for r in plain] + \
        [row("purging", r, n, s) for r, s in zip(purging, seen)]
    ctx.details[11] = [
        f"Figure 1's wrk run ({ctx.dur} s, `wrk -t2 -c64`, 1,024-byte bodies from verified "
        "senders, relay paused, default `[retention]`: messages 30 d, bodies 7 d) on a fresh "
        "copy of the fixtures, "
        + ("once without and once with" if ctx.quick else
           "without, with, with, without (the averages are compared)")
        + f" a backlog of {n:,} finished messages accepted {AGE_DAYS} days ago (1,024-byte payloads, two "
        "events each), written by SQL into the stopped store. The retention worker starts its "
        "first round with the daemon: batches of 200 messages with their events, each in a "
        "short transaction of its own, pausing 19 times as long as a batch took "
        "(`src/retention.c`). Purged counts the old messages gone when wrk stopped; the "
        "backlog itself takes many minutes, by design.",
        "| purge | sends/s | p99 ms | daemon cores | old messages purged during the run |",
        "|---|---:|---:|---:|---:|"] + rows + [
        "", f"Without: {base:,.0f} sends/s on average; while purging: {ours:,.0f} "
        f"({ratio:.2f}×).",
        "", "PostgreSQL: the same runs on one node of figure 8's cluster (each run a fresh "
        "`CREATE DATABASE … TEMPLATE` copy, the old messages written by SQL once into the "
        "template).",
        "| purge | sends/s | p99 ms | daemon cores | PostgreSQL cores | old messages purged "
        "during the run |",
        "|---|---:|---:|---:|---:|---:|"] + [
        pg_row("none", r, "—") for r in pg_plain] + [
        pg_row("purging", r, f"{n - left:,}") for r, left in zip(pg_purging, pg_left)] + [
        "", f"Without: {pg_base:,.0f} sends/s on average; while purging: {pg_ours:,.0f} "
        f"({pg_ratio:.2f}×)."]
