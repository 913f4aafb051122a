"""Figure 7 of `make bench`: scaling, accepted sends by [server] threads and DKIM-signed
delivery by [relay] connections."""
from common import log
import fig4_delivery
import report


def run(ctx):
    ctx.base()
    http_pts = []
    for t in (1, 2, 4):
        r = ctx.postern_wrk(f"fig7-threads{t}", ctx.data["ok_bodies"], threads=t)
        log(f"HTTP threads {t}: {r['rps']:,.0f} sends/s")
        http_pts.append((f"{t}", r["rps"]))
    if "fig1" in ctx.data:
        http_pts.append(("32 (default, fig. 1)", ctx.data["fig1"][1]["rps"]))
    report.plot(ctx, "scaling-http", "Accepted sends by [server] threads", "HTTP threads",
                "sends per second", http_pts)
    n = max(1000, ctx.n_deliver // 4)
    relay_pts = []
    for c in (1, 2, 4, 8):
        rate, elapsed = fig4_delivery.deliver(ctx, f"fig7-conns{c}", connections=c, count=n)
        log(f"relay connections {c}: {rate:,.0f} msg/s ({n:,} in {elapsed:.2f}s)")
        relay_pts.append((f"{c}", rate))
    report.plot(ctx, "scaling-relay", "DKIM-signed delivery by [relay] connections",
                "relay connections", "messages per second", relay_pts)
    h = dict(http_pts)
    rl = dict(relay_pts)
    ctx.row(7, "Scaling: sends/s at 4 vs 1 HTTP threads", f"{h['1']:,.0f} (1 thread)",
            f"{h['4']:,.0f} (4)", h["4"] / h["1"], "(chart)", None)
    ctx.row(7, "Scaling: msg/s at 8 vs 1 relay connections", f"{rl['1']:,.0f} (1 conn)",
            f"{rl['8']:,.0f} (8)", rl["8"] / rl["1"], "(chart)", None)
    ctx.details[7] = [
        f"HTTP: figure 1's wrk run ({ctx.dur} s each) with `[server] threads` = 1, 2, 4. "
        f"Relay: figure 4's delivery with `[relay] connections` = 1, 2, 4, 8, timed until "
        f"the first {n:,} of the {ctx.n_deliver:,} queued messages are sent.",
        "| HTTP threads | sends/s |", "|---|---:|"] + [
        f"| {k} | {v:,.0f} |" for k, v in http_pts] + [
        "", "| relay connections | msg/s |", "|---|---:|"] + [
        f"| {k} | {v:,.0f} |" for k, v in relay_pts]
