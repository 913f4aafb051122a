"""Figure 6 of `make bench`: send latency at half the maximum rate (figure 1's, or a run
like it), paced by bench/paced.lua."""
from common import Node, log, wrk
import report


def max_rate(ctx):
    if "fig1" in ctx.data:
        return ctx.data["fig1"][1]["rps"], "figure 1"
    r = ctx.postern_wrk("fig6-max", ctx.data["ok_bodies"])
    return r["rps"], "a run like figure 1's, just before"


def run(ctx):
    ctx.base()
    top, where = max_rate(ctx)
    rate = max(1, int(top / 2))
    _, key = ctx.base()
    d = ctx.fresh("fig6-latency")
    node = Node(d, "latency").start()
    try:
        r = wrk(node.port, ctx.data["ok_bodies"], key, ctx.dur, script="paced.lua",
                latency=True, env={"BENCH_RATE": str(rate)})
    finally:
        node.stop()
    ctx.check_log(node)
    p50, p99 = r["p50_us"] / 1000, r["p99_us"] / 1000
    log(f"latency at {rate:,}/s offered ({r['rps']:,.0f}/s achieved): p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms")
    if r["rps"] < rate * 0.9:
        ctx.notes.append(f"figure 6: only {r['rps']:,.0f} of {rate:,} req/s offered "
                         "were achieved")
    if r["err_status"] or r["err_timeout"]:
        ctx.notes.append(f"figure 6: {r['err_status']} non-2xx, "
                         f"{r['err_timeout']} timeouts")
    ctx.row(6, f"Latency at half max ({rate:,} req/s), p99", f"p50 {p50:.2f} ms",
            f"p99 {p99:.2f} ms", None, "p99 ≤ 5 ms", p99 <= 5)
    ctx.details[6] = [
        f"The maximum is {top:,.0f} sends/s from {where}; half of it, {rate:,} req/s, is "
        "offered by `wrk -t2 -c64 --latency -s bench/paced.lua`. wrk2 is not in Debian: "
        "paced.lua's `delay()` keeps a per-thread schedule (rate / 2 threads) and holds "
        "each request until its slot, so the total offered rate is the target as long "
        "as the server keeps up. Percentiles are wrk's, timed from the actual send (not "
        "the slot, unlike wrk2): a stall is under-reported.",
        f"achieved {r['rps']:,.0f} req/s; p50 {p50:.2f} ms, p75 {r['p75_us'] / 1000:.2f} ms, "
        f"p90 {r['p90_us'] / 1000:.2f} ms, p99 {p99:.2f} ms, p99.9 "
        f"{r['p999_us'] / 1000:.2f} ms, max {r['lat_max_us'] / 1000:.2f} ms."]
    report.plot(ctx, "latency", f"Send latency at {rate:,} req/s (half max)", "percentile", "ms",
                [("p50", p50), ("p75", r["p75_us"] / 1000), ("p90", r["p90_us"] / 1000),
                 ("p99", p99), ("p99.9", r["p999_us"] / 1000)])
