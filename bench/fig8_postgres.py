"""Figure 8 of `make bench`: accepted sends on PostgreSQL, one node and two nodes sharing
the database, against nginx; the cluster is scripts/pg-cluster.sh's, started for the run."""
import os
import time

from common import (ACCOUNT, BASE_SENDERS, DOMAIN, PROCS, Nginx, Node,
                    cluster_cpu_seconds, cluster_problems, first_body, harness, http_send,
                    log, make_account, psql_script, wrk, wrk_together)
import report


def sql(cluster, query, db="postgres"):
    """query's output (psql -At) in database db of the cluster."""
    return harness.psql(conninfo(cluster, db), query).strip()


def conninfo(cluster, db):
    return harness.conninfo_with(cluster.conninfo, dbname=db)


def pg_base(ctx, cluster, fig="fig8"):
    """Figure 1's fixtures in database bench_base of the cluster (make_account through the
    CLI with --postgres, then the 10,000 senders with one psql COPY); each run copies it
    with CREATE DATABASE ... TEMPLATE. fig names the files it keeps in the work directory.
    Returns (API key, master key file)."""
    log(f"PostgreSQL fixtures: account, Admin, API key, verified domain with DKIM, "
        f"{BASE_SENDERS:,} verified senders (psql COPY), sender authorization on")
    sql(cluster, "CREATE DATABASE bench_base")
    d = os.path.join(ctx.tmp, f"{fig}-base")
    os.makedirs(d)
    master_key = os.path.join(ctx.tmp, f"{fig}-dkim-master.key")
    key = make_account(harness.Gateway(tmp=d, postgres=conninfo(cluster, "bench_base"),
                                       master_key=master_key))
    account_id = int(sql(cluster, f"SELECT id FROM accounts WHERE name = '{ACCOUNT}'",
                         "bench_base"))
    now = int(time.time())
    rows = "".join(f"{account_id}\ts{i}@{DOMAIN}\t{DOMAIN}\tverified\t{now}\t{now}\tpanel\n"
                   for i in range(BASE_SENDERS))
    psql_script(conninfo(cluster, "bench_base"), (
        "COPY senders (account_id, address, domain, status, added_at, verified_at, "
        "verified_via) FROM STDIN;\n" + rows + "\\.\n"
        f"UPDATE settings SET sender_auth_enabled = 1 WHERE account_id = {account_id};\n"))
    sql(cluster, "ANALYZE", "bench_base")
    n = int(sql(cluster, "SELECT COUNT(*) FROM senders WHERE status = 'verified'",
                "bench_base"))
    if n != BASE_SENDERS:
        raise RuntimeError(f"{n} verified senders in bench_base, wanted {BASE_SENDERS}")
    return key, master_key


def pg_nodes(ctx, cluster, name, nodes, key, master_key, template="bench_base", after=None):
    """Accepted sends on PostgreSQL: a fresh copy of bench_base (or template), `nodes`
    serve processes on it (different ports), one warm-up send to each, then wrk: -t2 -c64
    against the only node, or one -t1 -c32 per node, all at once. CPU of the daemons, the
    cluster and wrk is measured over the wrk run. after(db), when given, runs once the
    nodes stopped, before the copy is dropped; what it returns is the result's "after"."""
    db = name.replace("-", "_")
    sql(cluster, f"CREATE DATABASE {db} TEMPLATE {template}")
    servers = []
    for i in range(nodes):
        d = os.path.join(ctx.tmp, name, f"node{i + 1}")
        os.makedirs(d)
        servers.append(Node(d, f"{name}-node{i + 1}", postgres=conninfo(cluster, db),
                            master_key=master_key))
    log_from = os.path.getsize(cluster.log_path())
    body = first_body(ctx.data["ok_bodies"])
    try:
        for node in servers:
            node.start()
        for node in servers:
            status, _ = http_send(node.port, key, body)
            if status != 200:
                raise RuntimeError(f"{node.name}: warm-up send answered {status}")
        t0 = time.monotonic()
        cpu0 = [node.cpu_seconds() for node in servers]
        pg_cpu0 = cluster_cpu_seconds(cluster)
        kids0 = os.times()
        if nodes == 1:
            runs = [wrk(servers[0].port, ctx.data["ok_bodies"], key, ctx.dur)]
        else:
            runs = wrk_together([node.port for node in servers], ctx.data["ok_bodies"], key,
                                ctx.dur, threads=max(1, 2 // nodes),
                                conns=64 // nodes)
        wall = time.monotonic() - t0
        kids1 = os.times()
        cores = [(node.cpu_seconds() - c) / wall for node, c in zip(servers, cpu0)]
        pg_cores = (cluster_cpu_seconds(cluster) - pg_cpu0) / wall
    finally:
        for node in servers:
            if node.proc:
                node.stop()
    for node in servers:
        ctx.check_log(node)
    problems = cluster_problems(cluster, log_from)
    if problems:
        ctx.notes.append(f"figure 8 ({name}): the PostgreSQL log has {len(problems)} "
                         f"warning/error lines, first: `{problems[0][:200]}`")
    queued = int(sql(cluster, "SELECT COUNT(*) FROM messages", db))
    requests = sum(r["requests"] for r in runs)
    bad = sum(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
              for r in runs)
    if bad:
        ctx.notes.append(f"figure 8 ({name}): {bad} sends were not 200 or failed")
    if queued < requests:
        ctx.notes.append(f"figure 8 ({name}): wrk saw {requests:,} answers but only "
                         f"{queued:,} messages are in the queue")
    seen = after(db) if after else None
    sql(cluster, f"DROP DATABASE {db}")
    return {"rps": sum(r["rps"] for r in runs), "runs": runs, "requests": requests,
            "after": seen,
            "queued": queued, "cores": cores, "pg_cores": pg_cores,
            "wrk_cores": ((kids1.children_user + kids1.children_system)
                          - (kids0.children_user + kids0.children_system)) / wall,
            "commits": [node.queue_stats() for node in servers], "problems": problems,
            "p99_us": max(r["p99_us"] for r in runs), "p50_us": [r["p50_us"] for r in runs]}


def run(ctx):
    ctx.base()
    cluster = PROCS.start_cluster(os.path.join(ctx.tmp, "pg"))
    try:
        log(f"PostgreSQL 15 at {cluster.conninfo} (postmaster {cluster.postmaster_pid()})")
        key, master_key = pg_base(ctx, cluster)
        init_problems = cluster_problems(cluster, 0)
        # The baseline, and (for reference) nginx driven the way the two nodes are.
        ng = Nginx(ctx.tmp).start()
        try:
            time.sleep(0.2)
            base = wrk(ng.port, ctx.data["ok_bodies"], key, ctx.dur)
            split = wrk_together([ng.port, ng.port], ctx.data["ok_bodies"], key, ctx.dur)
        finally:
            ng.stop()
        split_rps = sum(r["rps"] for r in split)
        log(f"nginx (figure 8): {base['rps']:,.0f} req/s; as two wrk -t1 -c32 at once "
            f"{split_rps:,.0f} req/s")
        one = pg_nodes(ctx, cluster, "fig8-1node", 1, key, master_key)
        log(f"PostgreSQL, 1 node: {one['rps']:,.0f} sends/s ({one['queued']:,} queued; "
            f"daemon {one['cores'][0]:.2f} cores, PostgreSQL {one['pg_cores']:.2f}, wrk "
            f"{one['wrk_cores']:.2f})")
        two = pg_nodes(ctx, cluster, "fig8-2nodes", 2, key, master_key)
        log(f"PostgreSQL, 2 nodes: {two['rps']:,.0f} sends/s ("
            + " + ".join(f"{r['rps']:,.0f}" for r in two["runs"])
            + f"; {two['queued']:,} queued; daemons "
            + " + ".join(f"{c:.2f}" for c in two["cores"])
            + f" cores, PostgreSQL {two['pg_cores']:.2f}, wrk {two['wrk_cores']:.2f})")
    finally:
        PROCS.stop_cluster(cluster)
    errs = sum(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
               for r in [base] + split)
    if errs:
        ctx.notes.append(f"nginx (figure 8): {errs} errors")
    if split_rps < 0.8 * base["rps"]:
        ctx.notes.append(f"figure 8: nginx did only {split_rps:,.0f} req/s driven as two "
                         f"wrk -t1 -c32 against {base['rps']:,.0f} with one -t2 -c64: the "
                         "two-node driver may be the limit")
    ctx.data["fig8"] = (base, split_rps, one, two)
    r1, r2 = one["rps"] / base["rps"], two["rps"] / base["rps"]
    scale = two["rps"] / one["rps"]
    ctx.row(8, "Accepted sends, PostgreSQL, 1 node", f"{base['rps']:,.0f} (nginx)",
            f"{one['rps']:,.0f}", r1, "—", None)
    ctx.row(8, "Accepted sends, PostgreSQL, 2 nodes", f"{base['rps']:,.0f} (nginx)",
            f"{two['rps']:,.0f}", r2, "—", None)
    ctx.row(8, "Scaling: sends/s on PostgreSQL, 2 vs 1 node", f"{one['rps']:,.0f} (1 node)",
            f"{two['rps']:,.0f} (2 nodes)", scale, "—", None)

    def commits(stats):
        out = []
        for i, st in enumerate(stats):
            if st:
                n, c, largest = st
                out.append(f"node {i + 1}: {n:,} messages in {c:,} commits "
                           f"({n / max(1, c):.1f} per commit, largest {largest}; about "
                           f"{c / ctx.dur:,.0f} commits/s while wrk ran)")
            else:
                out.append(f"node {i + 1}: no `queue:` line in its log")
        return "; ".join(out)

    def cores(r):
        return (" + ".join(f"{c:.2f}" for c in r["cores"])
                + f" cores for the daemon{'s' if len(r['cores']) > 1 else ''}, "
                f"{r['pg_cores']:.2f} for PostgreSQL (postmaster and backends), "
                f"{r['wrk_cores']:.2f} for wrk")

    sqlite = ""
    if "fig1" in ctx.data:
        sqlite = (f" For comparison, figure 1 (SQLite, one daemon) did "
                  f"{ctx.data['fig1'][1]['rps']:,.0f} sends/s in this run, "
                  f"{ctx.data['fig1'][1]['rps'] / ctx.data['fig1'][0]['rps']:.2f}× "
                  "its nginx.")
    ctx.details[8] = [
        "Figure 1's request on the PostgreSQL store: a PostgreSQL 15 cluster started for "
        "this run by scripts/pg-cluster.sh (as the integration tests start theirs: initdb, "
        "127.0.0.1 on a free port, `fsync=on`, `max_connections=300`, everything else "
        "default, `synchronous_commit=on` among it), the fixtures of figure 1 made "
        "with `postern init/domain add/key create --postgres` and one psql `COPY` of the "
        f"{BASE_SENDERS:,} verified senders, sender authorization on; each run gets a "
        "fresh copy (`CREATE DATABASE … TEMPLATE`). Nodes are `postern serve` with "
        "`[store] postgres` (TCP to 127.0.0.1), the same `[dkim] master_key_file`, "
        "`[relay] paused = yes`, default `[server] threads`; one warm-up send to each node "
        "first. 1 node: `wrk -t2 -c64 -d"
        f"{ctx.dur}s` as in figure 1. 2 nodes: two serve processes on different ports "
        "and the same database, driven by two `wrk -t1 -c32` started together (wrk takes "
        "one host:port), their rates summed. The baseline is nginx with `wrk -t2 -c64`, "
        "just before; nginx driven as two `wrk -t1 -c32` at once (the two-node shape) "
        f"did {split_rps:,.0f} req/s ({split_rps / base['rps']:.2f}× its -t2 -c64 rate), "
        "far above either Postern figure. Everything (wrk, the nodes, "
        "PostgreSQL) shares this machine's 2 cores: the second node adds no CPU, only "
        "a second process and a second connection pool." + sqlite,
        f"nginx {base['rps']:,.0f} req/s. 1 node: {one['rps']:,.0f} sends/s "
        f"({r1:.2f}×), p50 {one['p50_us'][0] / 1000:.2f} ms, p99 "
        f"{one['p99_us'] / 1000:.2f} ms, {one['queued']:,} messages in the queue "
        f"afterwards for {one['requests']:,} answers (plus the warm-up); "
        + commits(one["commits"]) + "; " + cores(one) + " while wrk ran.",
        f"2 nodes: {two['rps']:,.0f} sends/s ("
        + " + ".join(f"{r['rps']:,.0f}" for r in two["runs"])
        + f"; {r2:.2f}× nginx, {scale:.2f}× one node), p50 "
        + " / ".join(f"{p / 1000:.2f}" for p in two["p50_us"])
        + f" ms, worst p99 {two['p99_us'] / 1000:.2f} ms, {two['queued']:,} messages "
        f"in the queue for {two['requests']:,} answers (plus the warm-ups); "
        + commits(two["commits"]) + "; " + cores(two) + " while wrk ran.",
        "PostgreSQL's log (WARNING and worse, checkpoint and lost-client notices) while "
        "the nodes ran: " + (f"{len(one['problems']) + len(two['problems'])} lines, "
                             "see \"What looked wrong\"."
                             if one["problems"] or two["problems"] else "nothing.")
        + (f" During the fixtures: {len(init_problems)} such line(s), e.g. `"
           f"{init_problems[0].split(' ', 3)[-1][:160]}`." if init_problems else "")]
    pts = [("nginx", base["rps"], True), ("nginx, 2 wrk", split_rps, True)]
    if "fig1" in ctx.data:
        pts.append(("SQLite (fig. 1)", ctx.data["fig1"][1]["rps"]))
    pts += [("PG, 1 node", one["rps"]), ("PG, 2 nodes", two["rps"])]
    report.plot(ctx, "postgres", "Accepted sends on PostgreSQL (PG), 64 connections in all "
                "(2 wrk: -t1 -c32 each)", "", "requests per second", pts)

