"""Figure 1 of `make bench`: accepted sends per second against nginx answering 202, with the
same wrk script and bodies, back to back."""
from common import log
import report


def run(ctx):
    ng = ctx.nginx_rps("figure 1")
    r = ctx.postern_wrk("fig1-accepted", ctx.data["ok_bodies"], profile=ctx.opts.profile)
    bad = r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
    if bad:
        ctx.notes.append(f"figure 1: {bad} sends were not 200 or failed "
                         f"(status {r['err_status']}, timeouts {r['err_timeout']})")
    if r["queued"] < r["requests"]:
        ctx.notes.append(f"figure 1: wrk saw {r['requests']} answers but only "
                         f"{r['queued']} messages are in the queue")
    log(f"postern accepted: {r['rps']:,.0f} sends/s ({r['queued']:,} queued)")
    report.throughput(ctx, 1, "Accepted sends (req/s, wrk -t2 -c64)", ng, r, 0.6)
    ctx.details[1] = [
        f"`wrk -t2 -c64 -d{ctx.dur}s -s bench/post.lua` POSTs 64 distinct 1,024-byte "
        "Netcore-shape bodies (`/v5/mail/send` takes Netcore's dialect; the JSON is the "
        "same fields as SendGrid's) round-robin, From among the 10,000 verified senders "
        "of bench.test, sender authorization on, default `[server] threads` (32), "
        "durable group-commit queue (SQLite WAL, synchronous=FULL), `[relay] paused = "
        "yes`. The baseline is nginx (`worker_processes 2; access_log off; return 202`) "
        "with the same script, just before. Postern answers 200 (Netcore's success).",
        f"nginx {ng['rps']:,.0f} req/s; Postern {r['rps']:,.0f} sends/s, "
        f"p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms; "
        f"{r['queued']:,} messages in the queue afterwards" + ctx.commit_note(r) +
        f"; the daemon used {r['cores']:.2f} of the 2 cores while wrk ran."]
