"""Figure 9 of `make bench`: SMTP intake (issue 16). smtp-source at -s 1, 8 and 32 against
Postern's SMTP listener (an SMTP-IP credential, sender authorization on, relay paused so only
intake counts), against a private Postfix accepting into its hold queue (the recipe of
shared/PEERS-postfix.md) and against smtp-sink (the protocol's ceiling, no disk), back to back
at each concurrency. Every message Postern accepted must be in its queue afterwards, counted
after a SIGKILL: accepted means durable."""
import subprocess
import time

from common import ACCOUNT, DOMAIN, PROCS, SOURCE, Node, db_scalar, harness, log, proc_cpu
import report
from postfix import Postfix  # tests/integration, on the path through common

CONCURRENCY = (1, 8, 32)
SENDER = f"s0@{DOMAIN}"  # one of the fixtures' verified senders
RCPT = "rcpt@dest.test"
TW_REUSE = "/proc/sys/net/ipv4/tcp_tw_reuse"


def smtp_source(port, concurrency, count, timeout):
    """Runs smtp-source (a new connection per message, 1 KiB body); returns its seconds.
    smtp-source exits 1 at the first reply that is not 2xx, so exit 0 means every message
    was accepted."""
    t0 = time.monotonic()
    r = subprocess.run([SOURCE, "-s", str(concurrency), "-m", str(count), "-l", "1024",
                        "-f", SENDER, "-t", RCPT, f"127.0.0.1:{port}"], capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"smtp-source -s {concurrency} to :{port} exited {r.returncode}: "
                           f"{r.stderr.strip()[:300]}")
    return elapsed


def measure(name, port, cpu, concurrency, count, timeout):
    """One smtp-source run against a server whose CPU seconds cpu() gives: (msg/s, ms CPU
    per message)."""
    before = cpu()
    elapsed = smtp_source(port, concurrency, count, timeout)
    ms = (cpu() - before) * 1000 / count
    rate = count / elapsed
    log(f"{name} -s {concurrency}: {count:,} in {elapsed:.2f}s, {rate:,.0f} msg/s, "
        f"{ms:.2f} ms CPU/msg")
    return rate, ms


def tw_reuse():
    """Loopback TIME_WAIT reuse, which 20,000 connections per run need; set (and later
    restored) only when it is off and writable. Returns the value to restore, or None."""
    try:
        with open(TW_REUSE) as f:
            old = f.read().strip()
        if old != "0":
            return None
        with open(TW_REUSE, "w") as f:
            f.write("2")
        return old
    except OSError:
        return None


class PosternSmtp:
    """Postern on a copy of the fixtures with an SMTP-IP key for 127.0.0.1/32 and
    `[smtp] listen`, relay paused."""

    def __init__(self, ctx):
        d = ctx.fresh("fig9-postern")
        self.node = Node(d, "fig9-smtp")
        self.port = harness.free_port()
        self.node.gw.config["smtp"] = {"listen": f"127.0.0.1:{self.port}"}
        harness.must(harness.cli("key", "create", "--db", self.node.db, "--account", ACCOUNT,
                                 "--name", "smtp-ip", "--smtp-ip", "127.0.0.1/32"))

    def start(self):
        self.node.start()
        if not harness.wait_until(lambda: harness.listening(self.port), 20, interval=0.05):
            raise RuntimeError(f"postern does not listen for SMTP on :{self.port}")
        return self

    def cpu(self):
        return proc_cpu(self.node.proc.pid)

    def durable(self):
        """SIGKILL, then the messages in the store: what was acknowledged survives a crash."""
        self.node.gw.kill()
        self.node.stop()
        return db_scalar(self.node.db, "SELECT COUNT(*) FROM messages WHERE source = 'smtp'")


def run(ctx):
    count = 2000 if ctx.quick else 20000
    timeout = max(300, count / 20)
    restore = tw_reuse()
    postern = postfix = sink = None
    results = {}  # (server, concurrency) -> (msg/s, ms CPU per message)
    accepted = durable = 0
    try:
        try:
            postern = PosternSmtp(ctx).start()
        except Exception as ex:  # noqa: BLE001 - Postfix and smtp-sink are still measured
            ctx.notes.append(f"figure 9: Postern's SMTP listener did not run: {ex}")
            postern = None
        postfix = Postfix("hold").start()
        sink = PROCS.hold(harness.SmtpSink()).start()
        for n in CONCURRENCY:
            if postern:
                try:
                    results["postern", n] = measure("postern", postern.port, postern.cpu, n,
                                                    count, timeout)
                    accepted += count
                except Exception as ex:  # noqa: BLE001 - the baselines are still measured
                    ctx.notes.append(f"figure 9: Postern at -s {n}: {ex}")
            postfix.empty_queue()
            results["postfix", n] = measure("postfix HOLD", postfix.port, postfix.cpu_seconds,
                                            n, count, timeout)
            held = postfix.queued()
            if held != count:
                ctx.notes.append(f"figure 9: Postfix held {held} of {count} at -s {n}")
            postfix.empty_queue()
            results["sink", n] = measure("smtp-sink", sink.port,
                                         lambda: proc_cpu(sink.proc.pid), n, count, timeout)
        if postern:
            durable = postern.durable()
            ctx.check_log(postern.node)
            log(f"postern: {accepted:,} accepted, {durable:,} in the queue after SIGKILL")
            if durable != accepted:
                ctx.notes.append(f"figure 9: Postern accepted {accepted:,} messages but its "
                                 f"queue holds {durable:,} after SIGKILL")
    finally:
        if postern:
            postern.node.stop()
        if postfix:
            left = postfix.stop()
            if left:
                ctx.notes.append(f"figure 9: Postfix left processes {left} (killed)")
            postfix.cleanup()
        if sink:
            PROCS.release(sink)
        if restore is not None:
            try:
                with open(TW_REUSE, "w") as f:
                    f.write(restore)
            except OSError:
                pass
    write(ctx, results, count, accepted, durable)


def write(ctx, results, count, accepted, durable):
    ok_durable = accepted > 0 and durable == accepted
    rows = []
    for n in CONCURRENCY:
        pf, sk = results["postfix", n], results["sink", n]
        ps = results.get(("postern", n))
        target = n == 8  # the targets are for -s 8; -s 1 and 32 are reported
        for base, label, least in ((pf, "Postfix HOLD", 5), (sk, "smtp-sink", 0.5)):
            ratio = ps[0] / base[0] if ps else None
            ctx.row(9, f"SMTP intake, smtp-source -s {n} (msg/s, ms CPU/msg; {count:,} msgs)",
                    f"{base[0]:,.0f} ({label}, {base[1]:.2f} ms)",
                    f"{ps[0]:,.0f} ({ps[1]:.2f} ms)" if ps else None, ratio,
                    f"≥ {least}×" if target else "(reported)",
                    (ratio >= least and ok_durable) if target and ps else None)
        rows.append(f"| {n} | " + " | ".join(
            f"{r[0]:,.0f} | {r[1]:.2f}" if r else "— | —"
            for r in (ps, pf, sk)) + " |")
    ctx.details[9] = [
        f"`smtp-source -s N -m {count} -l 1024 -f {SENDER} -t {RCPT}` (a new SMTP session "
        "per message, 1 KiB body with smtp-source's own From/To/Date/Message-Id headers), "
        "timed around the process, at N = 1, 8 and 32, against three servers back to back at "
        "each N: Postern's `[smtp] listen` on a copy of the fixtures (10,000 verified "
        f"senders, sender authorization on; {SENDER} is one of them), with a key made by "
        "`postern key create … --smtp-ip 127.0.0.1/32` so smtp-source sends without AUTH, and "
        "`[relay] paused = yes`, so only intake is measured: the envelope and the header From "
        "both go through the policy, and `250` follows the group commit; a private Postfix "
        "3.7 (shared/PEERS-postfix.md) whose smtpd puts every message into an fsync'd file in "
        "its hold queue (`smtpd_end_of_data_restrictions = check_client_access static:HOLD`), "
        "emptied with `postsuper -d ALL` between runs; and smtp-sink, which keeps nothing "
        "(the protocol's ceiling).",
        "CPU per message: Postern's daemon (utime+stime of /proc/PID/stat, all threads); "
        "Postfix's master with the daemons it has reaped (cutime+cstime) plus its live "
        "children with theirs; smtp-sink's own. smtp-source's CPU is in none of them.",
        (f"Durability: after the last run Postern is killed with SIGKILL and its store holds "
         f"{durable:,} SMTP messages of the {accepted:,} smtp-source sent"
         + (" (all of them)." if ok_durable else ".")) if accepted else
        "Postern's SMTP listener did not run (see What looked wrong).",
        "| -s | Postern msg/s | ms CPU/msg | Postfix HOLD msg/s | ms CPU/msg | smtp-sink msg/s "
        "| ms CPU/msg |",
        "|---|---|---|---|---|---|---|",
        *rows]
    points = []
    for n in CONCURRENCY:
        points += [(f"Postfix -s {n}", results["postfix", n][0], True),
                   (f"smtp-sink -s {n}", results["sink", n][0], True)]
        if ("postern", n) in results:
            points.append((f"Postern -s {n}", results["postern", n][0]))
    report.plot(ctx, "smtp", f"SMTP intake, smtp-source -m {count} -l 1024", "",
                "messages per second", points, extra="set xtics rotate by -30")
