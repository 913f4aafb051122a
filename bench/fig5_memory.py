"""Figure 5 of `make bench`: the daemon's memory, idle and with the policy snapshot of
1,000,000 verified senders loaded."""
import os
import time

from common import BASE_SENDERS, MEM_SENDERS, Node, first_body, http_send, insert_senders, log
import report


def run(ctx):
    d = ctx.fresh("fig5-memory")
    log(f"inserting {MEM_SENDERS - BASE_SENDERS:,} more verified senders "
        f"({MEM_SENDERS:,} in all)")
    insert_senders(os.path.join(d, "postern.db"), MEM_SENDERS - BASE_SENDERS,
                   start=BASE_SENDERS)
    _, key = ctx.base()
    node = Node(d, "memory").start()
    try:
        time.sleep(1.0)
        idle = node.rss_kb()
        body = first_body(ctx.data["ok_bodies"])
        t0 = time.monotonic()
        status, _ = http_send(node.port, key, body, timeout=120)
        first = time.monotonic() - t0
        if status != 200:
            raise RuntimeError(f"figure 5: the send answered {status}")
        time.sleep(1.0)
        loaded = node.rss_kb()
        t0 = time.monotonic()
        http_send(node.port, key, body)
        second = time.monotonic() - t0
    finally:
        node.stop()
    ctx.check_log(node)
    per = (loaded - idle) * 1024 / MEM_SENDERS
    log(f"RSS idle {idle / 1024:.1f} MB, with {MEM_SENDERS:,} senders loaded "
        f"{loaded / 1024:.1f} MB: {per:.0f} bytes per sender; first send "
        f"{first * 1000:.0f} ms (snapshot load), next {second * 1000:.1f} ms")
    ctx.row(5, "Memory: bytes per verified sender (1M)", f"{idle / 1024:.1f} MB idle",
            f"{per:.0f} B", None, "≤ 150 B, idle ≤ 30 MB",
            per <= 150 and idle <= 30 * 1024)
    ctx.details[5] = [
        f"The daemon on a copy of the fixtures with {MEM_SENDERS:,} verified senders "
        "(inserted with sqlite3 while it was stopped). VmRSS from /proc/PID/status 1 s "
        "after it listens (idle: nothing loaded yet), then 1 s after one accepted send, "
        "which loads the account's policy snapshot. Bytes per sender = (loaded − idle) / "
        f"{MEM_SENDERS:,}.",
        f"idle {idle:,} kB; loaded {loaded:,} kB; {per:.0f} bytes per sender. The first "
        f"send (which builds the snapshot) took {first * 1000:.0f} ms, the next "
        f"{second * 1000:.1f} ms."]
    report.plot(ctx, "memory", f"Daemon RSS, {MEM_SENDERS:,} verified senders", "", "MB",
                [("idle", idle / 1024), ("snapshot loaded", loaded / 1024)])
