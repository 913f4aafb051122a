"""Figure 4 of `make bench`: DKIM-signed delivery of a queue of messages to smtp-sink,
against Postfix's smtp-source. queued_db and deliver serve figure 7 too."""
import os
import sqlite3
import subprocess
import time

from common import (PROCS, SOURCE, Node, db_scalar, finish_perf, log, queue_messages, sink,
                    start_perf, wait_sent)
import report


def queued_db(ctx):
    """A database with n_deliver messages queued through the API (delivery paused),
    daemon stopped; each delivery run works on a copy."""
    if "queued" in ctx.data:
        return ctx.data["queued"]
    _, key = ctx.base()
    d = ctx.fresh("queued")
    node = Node(d, "queue").start()
    t0 = time.monotonic()
    try:
        with open(ctx.data["ok_bodies"]) as f:
            bodies = [line.strip() for line in f if line.strip()]
        queue_messages(node.port, key, bodies, ctx.n_deliver)
    finally:
        node.stop()
    ctx.check_log(node)
    n = db_scalar(node.db, "SELECT COUNT(*) FROM messages WHERE status = 'queued'")
    if n != ctx.n_deliver:
        raise RuntimeError(f"{n} messages queued, wanted {ctx.n_deliver}")
    log(f"queued {n:,} messages in {time.monotonic() - t0:.1f}s (paused)")
    ctx.data["queued"] = d
    return d


def deliver(ctx, name, connections=None, profile=False, count=None):
    """Copies the queued database, starts Postern unpaused towards a fresh smtp-sink
    and times from spawn until count messages are sent."""
    count = count or ctx.n_deliver
    d = ctx.fresh(name, queued_db(ctx))
    relay = sink()
    node = Node(d, name, relay=f"smtp://127.0.0.1:{relay.port}/bench", connections=connections)
    perf = None
    try:
        node.start()
        if profile:
            perf = start_perf(node, 8)
        elapsed = wait_sent(node, count, timeout=max(120, count / 100))
        ctx.data[f"cores-{name}"] = node.cpu_seconds() / elapsed
    finally:
        if perf:
            finish_perf(*perf)
        node.stop()
        PROCS.release(relay)
    ctx.check_log(node)
    return count / elapsed, elapsed


def message_size(ctx):
    """The size of one delivered message (headers, DKIM-Signature and body), from a copy
    of the queue reduced to one message, caught by a sink that keeps files."""
    d = ctx.fresh("probe", queued_db(ctx))
    con = sqlite3.connect(os.path.join(d, "postern.db"))
    with con:
        con.execute("DELETE FROM messages WHERE id <> (SELECT MIN(id) FROM messages)")
    con.close()
    relay = sink(os.path.join(d, "sink"))
    node = Node(d, "probe", relay=f"smtp://127.0.0.1:{relay.port}/bench")
    try:
        node.start()
        wait_sent(node, 1, timeout=30)
    finally:
        node.stop()
        PROCS.release(relay)
    files = [os.path.join(r, f) for r, _, fs in os.walk(relay.dir) for f in fs]
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


def run(ctx):
    queued_db(ctx)
    size, signed = message_size(ctx)
    if not signed:
        ctx.notes.append("figure 4: the delivered message has no DKIM-Signature")
    log(f"one delivered message: {size:,} bytes, DKIM-signed: {signed}")
    rate, elapsed = deliver(ctx, "fig4-deliver", profile=ctx.opts.profile)
    log(f"postern delivered {ctx.n_deliver:,} in {elapsed:.2f}s: {rate:,.0f} msg/s")
    relay = sink()
    try:
        t0 = time.monotonic()
        r = subprocess.run([SOURCE, "-s", "4", "-m", str(ctx.n_deliver), "-l", str(size),
                            f"127.0.0.1:{relay.port}"], capture_output=True, text=True,
                           timeout=300)
        base_elapsed = time.monotonic() - t0
        t0 = time.monotonic()
        subprocess.run([SOURCE, "-d", "-s", "4", "-m", str(ctx.n_deliver), "-l", str(size),
                        f"127.0.0.1:{relay.port}"], capture_output=True, text=True,
                       timeout=300)
        reuse_elapsed = time.monotonic() - t0
    finally:
        PROCS.release(relay)
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source exited {r.returncode}: {r.stderr}")
    base = ctx.n_deliver / base_elapsed
    reuse = ctx.n_deliver / reuse_elapsed
    log(f"smtp-source -s 4: {base:,.0f} msg/s ({base_elapsed:.2f}s); with -d "
        f"(connection reuse) {reuse:,.0f} msg/s")
    ratio = rate / base
    ctx.data["fig4"] = (base, rate, reuse)
    ctx.row(4, f"Delivery, DKIM-signed (msg/s, {ctx.n_deliver:,} msgs)",
            f"{base:,.0f} (smtp-source -s 4)", f"{rate:,.0f}", ratio, "≥ 0.5×",
            ratio >= 0.5)
    ctx.details[4] = [
        f"{ctx.n_deliver:,} messages (the 1 KB request of figure 1, one recipient) are "
        "queued through the API with delivery paused; the daemon is stopped and started "
        "again on a copy with `[relay] url = smtp://127.0.0.1:PORT/bench` (default 4 "
        "connections), and the time from spawning it until the database (polled "
        "read-only every 50 ms) shows all of them `sent` is the figure, start-up "
        f"included. Each message is signed with the domain's RSA-2048 DKIM key "
        f"(checked: {'yes' if signed else 'NO'}); one delivered message is {size:,} bytes "
        "on the wire (headers, DKIM-Signature, text and HTML parts). Baseline: "
        f"`smtp-source -s 4 -m {ctx.n_deliver} -l {size}` (that many bytes of body, plus "
        "its own few headers) to a fresh smtp-sink (which, like Postern's, keeps no "
        "files), timed around the process. smtp-source opens a new SMTP session per "
        "message; with `-d` (reusing sessions, as Postern does) it did "
        f"{reuse:,.0f} msg/s, for reference.",
        f"Postern {elapsed:.2f} s ({rate:,.0f} msg/s, using "
        f"{ctx.data['cores-fig4-deliver']:.2f} of the 2 cores on average); smtp-source "
        f"{base_elapsed:.2f} s ({base:,.0f} msg/s)."]
    report.plot(ctx, "delivery", f"Delivery of {ctx.n_deliver:,} messages to smtp-sink", "",
                "messages per second",
                [("smtp-source -s 4", base, True), ("smtp-source -d -s 4", reuse, True),
                 ("Postern (DKIM, 4 conns)", rate)])
