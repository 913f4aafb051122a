"""Figure 2 of `make bench`: sends refused (sender_not_authorized) per second against
nginx, as figure 1 with From addresses that are not listed."""
from common import log
import report


def run(ctx):
    ng = ctx.nginx_rps("figure 2")
    r = ctx.postern_wrk("fig2-refused", ctx.data["refused_bodies"], expect_ok=False,
                        profile=ctx.opts.profile)
    # Every answer must be the 403; wrk counts them as non-2xx.
    if r["err_status"] < r["requests"]:
        ctx.notes.append(f"figure 2: only {r['err_status']} of {r['requests']} answers "
                         "were non-2xx (all should be 403 sender_not_authorized)")
    if r["queued"]:
        ctx.notes.append(f"figure 2: {r['queued']} messages were queued (expected 0)")
    if r["dropped"] < r["requests"]:
        ctx.notes.append(f"figure 2: {r['dropped']:,} drops recorded for "
                         f"{r['requests']:,} refusals")
    log(f"postern refused: {r['rps']:,.0f} req/s ({r['dropped']:,} drops recorded)")
    report.throughput(ctx, 2, "Refused sends (req/s, sender_not_authorized)", ng, r, 0.8)
    ctx.details[2] = [
        "As figure 1, with 64 From addresses on bench.test that are not listed: every "
        "answer is 403 `sender_not_authorized` and the refusal is counted in `drops`, "
        "checked after the daemon stopped.",
        f"nginx {ng['rps']:,.0f} req/s; Postern {r['rps']:,.0f} refusals/s, "
        f"p99 {r['p99_us'] / 1000:.2f} ms; {r['dropped']:,} refusals in `drops` for "
        f"{r['requests']:,} answers seen by wrk; the daemon used {r['cores']:.2f} of the 2 "
        "cores while wrk ran."]
