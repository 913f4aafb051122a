"""Figure 10 of `make bench`: accepted sends per second with one webhook endpoint subscribed
to every event (Standard Webhooks format, nginx on loopback answering 200 as the receiver)
against the same run without an endpoint, back to back in one run (issue 17)."""
import time

from common import Nginx, db_scalar
import report

TARGET = 0.9
DRAIN_TIMEOUT = 120  # seconds for the workers to post what the run left behind


def endpoint(url, seen):
    """prepare(): makes the endpoint through the API, as an Admin would."""
    def prepare(node):
        admin = node.gw.logged_in("admin@bench.test")
        r = admin.request("POST", "/api/webhooks", {"url": url, "format": "standard"})
        if r.status != 201:
            raise RuntimeError(f"figure 10: POST /api/webhooks answered {r.status}: {r.raw}")
        seen["hook"] = r.json["id"]
    return prepare


def drain(seen):
    """after(): what the workers had posted when wrk stopped, and how long the rest took."""
    def after(node, r):
        pending = lambda: db_scalar(node.db, "SELECT COUNT(*) FROM webhook_deliveries "
                                    "WHERE status <> 'failed'")
        seen["events"] = db_scalar(node.db, "SELECT COUNT(*) FROM events")
        seen["left"] = left = pending()
        t0 = time.monotonic()
        while left and time.monotonic() - t0 < DRAIN_TIMEOUT:
            time.sleep(0.25)
            left = pending()
        seen["drained"] = None if left else time.monotonic() - t0
        seen["failed"] = db_scalar(node.db, "SELECT COUNT(*) FROM webhook_deliveries")
    return after


def row(r, s):
    """A line of the details table: one wrk run, with (s) or without an endpoint."""
    cells = ["endpoint" if s else "none", f"{r['rps']:,.0f}", f"{r['p99_us'] / 1000:.2f}",
             f"{r['cores']:.2f}"]
    if s:
        drained = f"{s['drained']:.1f} s" if s["drained"] is not None else "not drained"
        cells += [f"{s['events']:,}", f"{s['events'] - s['left']:,}", drained]
    else:
        cells += ["—"] * 3
    return "| " + " | ".join(cells) + " |"


def run(ctx):
    ctx.base()
    receiver = Nginx(ctx.tmp, "webhook-receiver", "location / { return 200; }").start()
    url = f"http://127.0.0.1:{receiver.port}/hook"

    def hooked_run(name):
        s = {}
        return ctx.postern_wrk(name, ctx.data["ok_bodies"], prepare=endpoint(url, s),
                               after=drain(s)), s
    try:
        plain, hooked, seen = ctx.alternate("fig10", hooked_run)
    finally:
        receiver.stop()
    base, ours, ratio = ctx.compare(10, plain, hooked)
    for s in seen:
        if s["drained"] is None or s["failed"]:
            ctx.notes.append(f"figure 10: {s['failed']:,} deliveries failed or were left "
                             f"{DRAIN_TIMEOUT} s after the run")
    ctx.row(10, "Accepted sends with a webhook endpoint (req/s)", f"{base:,.0f} (none)",
            f"{ours:,.0f}", ratio, f"≥ {TARGET}×", ratio >= TARGET)
    report.plot(ctx, "webhooks", "POST /v5/mail/send with and without a webhook endpoint",
                "", "sends per second",
                [(f"no endpoint #{i + 1}", r["rps"], True) for i, r in enumerate(plain)] +
                [(f"endpoint #{i + 1}", r["rps"]) for i, r in enumerate(hooked)])
    rows = [row(r, None) for r in plain] + [row(r, s) for r, s in zip(hooked, seen)]
    ctx.details[10] = [
        f"Figure 1's wrk run ({ctx.dur} s, `wrk -t2 -c64`, 1,024-byte bodies from verified "
        "senders, relay paused) on a fresh copy of the fixtures, "
        + ("once without and once with" if ctx.quick else
           "without, with, with, without (the averages are compared)")
        + " one webhook endpoint subscribed to every event, Standard Webhooks format, made "
        "through `POST /api/webhooks` before the warm-up send. Each accepted message makes "
        "one `message.processed` event (the relay is paused), written in the message's own "
        "transaction with its delivery row; `[webhooks] workers` (2) post them one per "
        "request, signed, to nginx on loopback (`return 200`). Posted by the end counts the "
        "events whose delivery row was gone (2xx) when wrk stopped; the rest is drained "
        "afterwards with the daemon still running.",
        "| endpoint | sends/s | p99 ms | daemon cores | events | posted by the end | "
        "rest drained in |",
        "|---|---:|---:|---:|---:|---:|---:|"] + rows + [
        "", f"Without: {base:,.0f} sends/s on average; with: {ours:,.0f} ({ratio:.2f}×)."]
