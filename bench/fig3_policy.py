"""Figure 3 of `make bench`: the policy decision microbenchmark (build/bench_policy, from
bench/bench_policy.c) with 10, 10,000 and 1,000,000 verified senders; and the same with an
API key's own checks around it, a scoped key (senders, domains and allowed_ips set) against
an unscoped one (issue 19: within 10%)."""
import json
import os
import subprocess

from common import log
import report


def run(ctx):
    if not os.path.exists(ctx.bench_policy):
        raise RuntimeError(f"{ctx.bench_policy} is missing: cmake --build "
                           f"{ctx.opts.build} --target bench_policy")
    args = [ctx.bench_policy]
    if ctx.quick:
        args += ["--queries", "200000", "--repeats", "5"]
    log("policy_decide microbenchmark: 10, 10k, 1M senders")
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"bench_policy exited {r.returncode}: {r.stderr}")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    sizes = [l for l in lines if "senders" in l]
    ratio = next(l["ratio"] for l in lines if "ratio" in l)
    for s in sizes:
        log(f"  {s['senders']:>9,} senders: {s['ns_median']:.1f} ns per decision")
    worst = max(s["ns_median"] for s in sizes)
    small = sizes[0]
    big = sizes[-1]
    ctx.row(3, "Policy decision, ns (1M senders)", f"{small['ns_median']:.1f} ns (10)",
            f"{big['ns_median']:.1f} ns", ratio, "≤ 100 ns, ratio ≤ 1.5",
            worst <= 100 and ratio <= 1.5)
    ctx.details[3] = [
        "`build/bench_policy` (bench/bench_policy.c) calls `policy_decide` in a loop over "
        f"{sizes[0]['queries']:,} precomputed, shuffled From addresses: 80% verified "
        "senders drawn uniformly from the whole snapshot, 15% unknown addresses on an "
        "approved domain, 5% on a domain never added; four verified domains, switch on. "
        "Each repeat times one pass with clock_gettime(CLOCK_MONOTONIC) after an untimed "
        "one; the sizes take turns within each repeat so drift hits all of them; the "
        f"figure is the median of {sizes[0]['repeats']} repeats. The ratio column is "
        "1M/10. The per-call cost includes reading the query string (the decision "
        "hashes the whole address).",
        "| senders | ns per decision (median) | min | max |", "|---:|---:|---:|---:|"] + [
        f"| {s['senders']:,} | {s['ns_median']:.1f} | {s['ns_min']:.1f} | "
        f"{s['ns_max']:.1f} |" for s in sizes]
    scoped(ctx, args)
    report.plot(ctx, "policy", "Policy decision: ns per call", "verified senders",
                "ns per decision",
                [(f"{s['senders']:,}", s["ns_median"]) for s in sizes],
                extra="set logscale y\n" if big["ns_median"] / small["ns_median"] > 20 else "")


def scoped(ctx, args):
    """bench_policy --key: each size with an unscoped and a scoped key, in turns; the row
    is the 1M-sender ratio, as the figure's headline is."""
    log("policy_decide with a key's checks: unscoped against scoped")
    r = subprocess.run(args + ["--key"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"bench_policy --key exited {r.returncode}: {r.stderr}")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    runs = {(l["senders"], l["key"]): l for l in lines if "key" in l}
    ratios = {l["senders"]: l["scoped_ratio"] for l in lines if "scoped_ratio" in l}
    for n, ratio in ratios.items():
        log(f"  {n:>9,} senders: unscoped {runs[(n, 'unscoped')]['ns_median']:.1f} ns, "
            f"scoped {runs[(n, 'scoped')]['ns_median']:.1f} ns ({ratio:.3f}x)")
    big = max(ratios)
    ctx.row(3, "Policy decision with a scoped key, ns (1M senders)",
            f"{runs[(big, 'unscoped')]['ns_median']:.1f} ns (unscoped)",
            f"{runs[(big, 'scoped')]['ns_median']:.1f} ns", ratios[big], "≤ 1.1×",
            ratios[big] <= 1.1)
    ctx.details[3] += [
        "",
        "With a key (`bench_policy --key`): every query is a send request's checks in the "
        "daemon's order, `keyscope_ip_allowed` for the client, `policy_decide`, then "
        "`keyscope_sender_allowed`, once with an unscoped key and once with a key listing 5 "
        "senders, the 4 domains and 4 allowed_ips networks (the client in the third), "
        "prepared as the policy cache prepares every key it reads; the two take turns in "
        "every repeat over the same queries.",
        "| senders | unscoped, ns | scoped, ns | ratio |", "|---:|---:|---:|---:|"] + [
        f"| {n:,} | {runs[(n, 'unscoped')]['ns_median']:.1f} | "
        f"{runs[(n, 'scoped')]['ns_median']:.1f} | {ratios[n]:.3f}× |" for n in ratios]
