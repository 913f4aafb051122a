"""The report of `make bench`: the PNG chart of a figure (gnuplot) and results.md with the
summary table, what looked wrong and how each figure was measured."""
import datetime
import os
import subprocess
import time

from common import GNUPLOT, ROOT, cpu_snapshot, other_load


def throughput(ctx, fig, name, ng, r, least):
    """The row of figure 1 or 2 (Postern's rate r against nginx's ng, at least `least`
    times it) and the chart they share."""
    ratio = r["rps"] / ng["rps"]
    ctx.data[f"fig{fig}"] = (ng, r)
    ctx.row(fig, name, f"{ng['rps']:,.0f} (nginx)", f"{r['rps']:,.0f}", ratio,
            f"≥ {least}×", ratio >= least)
    throughput_chart(ctx)


def throughput_chart(ctx):
    pts = []
    if "fig1" in ctx.data:
        ng, r = ctx.data["fig1"]
        pts += [("nginx (fig. 1)", ng["rps"], True), ("Postern accepted", r["rps"])]
    if "fig2" in ctx.data:
        ng, r = ctx.data["fig2"]
        pts += [("nginx (fig. 2)", ng["rps"], True), ("Postern refused", r["rps"])]
    plot(ctx, "throughput", "POST /v5/mail/send, wrk -t2 -c64", "", "requests per second",
         pts)


def plot(ctx, name, title, xlabel, ylabel, points, extra=""):
    png = os.path.join(ctx.opts.out, f"{name}{ctx.suffix}.png")
    dat = os.path.join(ctx.tmp, f"{name}.dat")
    with open(dat, "w") as f:
        for p in points:
            label, value = p[0], p[1]
            colour = 0x909090 if len(p) > 2 and p[2] else 0x3060a0
            f.write(f'"{label}" {value} {colour}\n')
    fmt = "%.2f" if max((p[1] for p in points), default=0) < 100 else "%.0f"
    gp = f"""set terminal pngcairo size 800,480 noenhanced font "sans,10"
set output "{png}"
set title "{title}"
set xlabel "{xlabel}"
set ylabel "{ylabel}"
set style fill solid 0.7 border -1
set boxwidth 0.6
set offsets 0.3, 0.3, graph 0.08, 0
set grid ytics
set yrange [0:*]
{extra}
plot "{dat}" using 0:2:3:xtic(1) with boxes lc rgb variable notitle, \\
 "" using 0:2:(sprintf("{fmt}", $2)) with labels offset 0,0.8 notitle
"""
    if extra.startswith("set logscale"):
        gp = gp.replace("set yrange [0:*]\n", "")
    script = os.path.join(ctx.tmp, f"{name}.gp")
    with open(script, "w") as f:
        f.write(gp)
    r = subprocess.run([GNUPLOT, script], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        ctx.notes.append(f"gnuplot failed for {name}: {r.stderr.strip()[:200]}")
        return
    ctx.charts = [c for c in ctx.charts if c[0] != png] + [(png, title)]



def write(ctx, started, figures):
    def cell(v):
        return "" if v is None else v

    def ratio(v):
        return "" if v is None else f"{v:.2f}×" if v >= 0.1 else f"{v:.3f}×"

    def met(v):
        return "—" if v is None else ("yes" if v else "**no**")

    head = ["| # | figure | baseline | ours | ratio | target | met? |",
            "|---|---|---|---|---|---|---|"]
    table = head + [f"| {f} | {n} | {cell(b)} | {cell(o)} | {ratio(r)} | {t} | {met(m)} |"
                    for f, n, b, o, r, t, m in ctx.rows]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"],
                               cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    total = time.monotonic() - started
    md = ["# Postern benchmarks", "",
          f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
          f"- commit: `{commit}`" + (" (src/ has uncommitted changes)" if dirty else ""),
          f"- machine: shared 2-core VM, `nproc` = {os.cpu_count()}; absolute numbers "
          "drift here, so every figure is a ratio against a baseline measured in the "
          "same run, back to back",
          f"- run: `bench/run.py --figures {','.join(map(str, figures))}"
          f"{' --quick' if ctx.quick else ''}`, {total:.0f} s in all"
          + (" (quick mode: shorter runs, fewer messages; not a result)"
             if ctx.quick else ""),
          f"- build: `{os.path.relpath(ctx.bin, ROOT)}` (CMake RelWithDebInfo, -O2)",
          "- load average (1, 5, 15 min) at the start: "
          + ", ".join(f"{x:.2f}" for x in ctx.load_start) + "; at the end: "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + "; processes this run did not start used {:.2f} cores on average, the "
          "hypervisor stole {:.2f} (per figure below)".format(
              *other_load(ctx.cpu_start, cpu_snapshot())),
          "", "## Summary", ""] + table + [""]
    if ctx.notes:
        md += ["## What looked wrong", ""] + [f"- {n}" for n in ctx.notes] + [""]
    md += ["## How each figure was measured", ""]
    for f in sorted(ctx.details):
        md += [f"### Figure {f}", ""]
        if f in ctx.load:
            other, steal = ctx.load[f]
            md += [f"*While it ran, processes this run did not start used {other:.2f} "
                   f"cores on average (steal {steal:.2f}).*", ""]
        for item in filter(None, ctx.details[f]):
            # A paragraph each; the rows of a table stay together.
            if md[-1] and not (item.startswith("|") and md[-1].startswith("|")):
                md.append("")
            md.append(item)
        md.append("")
    if ctx.charts:
        md += ["## Charts", ""]
        for png, title in ctx.charts:
            md += [f"![{title}]({os.path.basename(png)})", ""]
    out = os.path.join(ctx.opts.out, f"results{ctx.suffix}.md")
    with open(out, "w") as f:
        f.write("\n".join(md))
    print()
    print("\n".join(table))
    if ctx.notes:
        print("\nWhat looked wrong:")
        for n in ctx.notes:
            print(" -", n)
    print(f"\n{os.path.relpath(out)} written; {total:.0f} s in all")
