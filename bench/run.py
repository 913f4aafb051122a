#!/usr/bin/env python3
"""The benchmark suite of `make bench` (issue #8): every figure is a ratio against a baseline
measured in the same run, back to back, on this machine. Writes bench/results.md and one PNG
chart per figure family, and prints the table.

    bench/run.py [--figures 1,3] [--quick] [--profile] [--keep]

Only a full run (all figures, not --quick) writes bench/results.md and bench/<family>.png;
a partial run writes results-partial.md and <family>-partial.png, a quick one
results-quick.md and <family>-quick.png, so the recorded baseline is not replaced while
one figure is iterated on.

Figures, one file each (bench/figN_*.py, a run(ctx) function): 1 accepted sends vs nginx,
2 refused sends vs nginx, 3 policy decision microbenchmark, 4 DKIM-signed delivery vs
smtp-source, 5 memory, 6 latency at half the maximum rate, 7 scaling (HTTP threads, relay
connections), 8 accepted sends on PostgreSQL (issue #9) with one node and with two nodes
sharing the database, vs nginx, 9 SMTP intake (issue #16) vs a private Postfix and
smtp-sink, 10 accepted sends with a webhook endpoint subscribed to every event vs without
(issue 17), 11 accepted sends while the retention worker purges 1,000,000 old messages vs
without (issue 20). bench/common.py holds what they share, bench/report.py the
charts and results.md.

Python 3 standard library only, plus the integration tests' harness
(tests/integration/harness.py), which starts the daemon, smtp-sink and PostgreSQL
(scripts/pg-cluster.sh) for the benchmark as for the tests. Every process is started on
loopback, on free high ports, and stopped by its PID; every wait is bounded; the work
directory is a temporary directory removed at the end (unless --keep)."""
import argparse
import os
import shutil
import signal
import sys
import time

import common
from common import GNUPLOT, HERE, NGINX, PROCS, ROOT, SOURCE, WRK, log
import fig1_accepted
import fig2_refused
import fig3_policy
import fig4_delivery
import fig5_memory
import fig6_latency
import fig7_scaling
import fig8_postgres
import fig9_smtp
import fig10_webhooks
import fig11_retention
import report

FIGURES = {1: fig1_accepted, 2: fig2_refused, 3: fig3_policy, 4: fig4_delivery,
           5: fig5_memory, 6: fig6_latency, 7: fig7_scaling, 8: fig8_postgres,
           9: fig9_smtp, 10: fig10_webhooks, 11: fig11_retention}


def options():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--figures", default=",".join(map(str, FIGURES)),
                    help="comma-separated figure numbers (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="3 s load runs and 2,000 messages: a smoke check, not a result")
    ap.add_argument("--profile", action="store_true",
                    help="perf record (cpu-clock, DWARF call graphs) the daemon in figures 1, 2 "
                         "and 4; writes profile-*.txt beside the results (the figures are "
                         "then slower)")
    ap.add_argument("--build", default=os.path.join(ROOT, os.environ.get("BUILD", "build")))
    ap.add_argument("--out", default=HERE, help="where results.md and the charts go")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    opts.build = os.path.abspath(opts.build)
    opts.out = os.path.abspath(opts.out)
    try:
        opts.figures = sorted({int(x) for x in opts.figures.replace(" ", "").split(",") if x})
    except ValueError:
        ap.error("--figures takes numbers like 1,3")
    if not opts.figures or any(f not in FIGURES for f in opts.figures):
        ap.error(f"figures are 1 to {len(FIGURES)}")
    opts.all = opts.figures == list(FIGURES)
    return opts


def run_figure(run, f):
    """One figure; its failure is a row and a note, and the other figures still run."""
    before = common.cpu_snapshot()
    try:
        FIGURES[f].run(run)
    except Exception as ex:  # noqa: BLE001 - one figure failing still reports the rest
        log(f"figure {f} failed: {ex}")
        run.notes.append(f"figure {f} failed: {ex}")
        run.row(f, f"(figure {f} failed)", None, None, None, "", False)
        return False
    finally:
        run.load[f] = common.other_load(before, common.cpu_snapshot())
        log(f"figure {f}: other processes used {run.load[f][0]:.2f} cores on average, "
            f"steal {run.load[f][1]:.2f}")
    return True


def main():
    opts = options()
    postern = os.path.join(opts.build, "postern")
    for tool in (WRK, NGINX, SOURCE, GNUPLOT, common.harness.SmtpSink.BIN, postern):
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench: {tool} is missing (make bench installs and builds what it needs)")
    # The harness runs the binary of this build, not the test build's.
    common.harness.BIN = postern
    os.makedirs(opts.out, exist_ok=True)
    common.PROFILE_DIR = opts.out

    run = common.Run(opts)
    started = time.monotonic()
    log(f"work directory {run.tmp}; figures {opts.figures}{' (quick)' if opts.quick else ''}")
    # SIGTERM (e.g. a timeout around make) still stops every process started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        ok = all([run_figure(run, f) for f in opts.figures])
        run.rows.sort(key=lambda r: r[0])
        report.write(run, started, opts.figures)
    finally:
        PROCS.stop_all()
        if opts.keep:
            log(f"kept {run.tmp}")
        else:
            shutil.rmtree(run.tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
