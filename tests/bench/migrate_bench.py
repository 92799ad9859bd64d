#!/usr/bin/env python3
"""Migration figure (issue 8): wall time of `pgwarden migrate --jobs 2` (verification included)
against `pg_dump -Fd -j 2` + `pg_restore -j 2 --no-owner --no-acl` run by hand, in the same run,
from the same source into the same one-node cluster (through its read-write forwarder).

The source is a separate PostgreSQL 15 (a non-superuser owner with a password, like a hosted
database) holding about --size-mb MB (pg_database_size): two wide tables with primary keys and
one secondary index, generated once. Each round runs both (who goes first alternates), each from a
checkpointed target; each copy is dropped after its run. pgwarden's own phase times (its "times:"
line) give the copy without the verification.

Targets (reported, not asserted): pgwarden / manual <= 1.1 without the verification, <= 1.3
with it.

Run as root from the repo root (processes run as the postgres user):
    /usr/bin/python3 tests/bench/migrate_bench.py [--size-mb 1024] [--rounds 2] [--checksums]
                                                  [--bin PATH]
Writes build/results/migrate_bench.json. PGWARDEN_KEEP_TMP=1 keeps the temporary folder.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/integration"))
sys.path.insert(0, str(REPO / "tests/bench"))

import conftest as C  # noqa: E402  (the integration harness: etcd, nodes, PostgreSQL)
import ha_figures as H  # noqa: E402  (Cluster: nodes that manage PostgreSQL)

APP_PW = "bench-app-Pw9"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_as_pg(argv, env=None, timeout=7200):
    t0 = time.monotonic()
    r = subprocess.run([str(a) for a in argv], user=C.RUN_USER, group=C.RUN_USER,
                       extra_groups=[], env=C.base_env(env), cwd="/tmp", capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return r, time.monotonic() - t0


def make_source(base, size_mb):
    pg = C.Postgres(base, "src", conf={"max_connections": "40", "shared_buffers": "256MB",
                                       "maintenance_work_mem": "256MB", "max_wal_size": "4GB",
                                       "password_encryption": "scram-sha-256"})
    pg.initdb()
    C.write_file(pg.data_dir / "pg_hba.conf", "local all all trust\n"
                 "host all postgres 127.0.0.1/32 trust\n"
                 "host all app 127.0.0.1/32 scram-sha-256\n", mode=0o600)
    pg.start()
    pg.query(f"CREATE ROLE app LOGIN PASSWORD '{APP_PW}'")
    pg.query("CREATE DATABASE big OWNER app")
    conn = pg.connect("big")
    cur = conn.cursor()
    cur.execute("SET ROLE app")
    cur.execute("CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text, "
                "ts timestamptz, n int)")
    cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, sku text, descr text, price numeric)")
    chunk = 500_000
    start = 1
    while True:
        cur.execute("SELECT pg_database_size('big')")
        size = cur.fetchone()[0]
        if size >= size_mb * 1024 * 1024:
            break
        cur.execute("INSERT INTO events SELECT g, 'k' || (g %% 17), repeat(md5(g::text), 3), "
                    "'2024-01-01'::timestamptz + g * interval '1 s', g %% 1000 "
                    "FROM generate_series(%s, %s) g", (start, start + chunk - 1))
        cur.execute("INSERT INTO items SELECT g, 'SKU' || g, md5(g::text) || md5((g+1)::text), "
                    "g / 100.0 FROM generate_series(%s, %s) g", (start, start + chunk // 2 - 1))
        start += chunk
        log(f"source: {size / 1048576:.0f} MB")
    cur.execute("CREATE INDEX events_kind ON events(kind)")
    cur.execute("RESET ROLE")
    cur.execute("VACUUM ANALYZE")
    cur.execute("SELECT pg_database_size('big')")
    size = cur.fetchone()[0]
    conn.close()
    return pg, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--bin", default=str(REPO / "build/dev/pgwarden"))
    ap.add_argument("--checksums", action="store_true",
                    help="pgwarden verifies with --verify checksums (row checksums)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgwarden-migbench-", dir="/tmp"))
    os.chmod(base, 0o755)
    C.chown_run_user(base)
    etcd = cluster = src = None
    results = {"size_mb": None, "jobs": args.jobs, "checksums": args.checksums,
               "manual_s": [], "pgwarden_s": [],
               "pgwarden_copy_s": [], "pgwarden_verify_s": []}
    try:
        etcd = C.start_etcd_single(C.make_dir(base / "etcd"))
        cluster = H.Cluster(etcd, base / "cluster", "migbench", Path(args.bin), 10, nodes_n=1)
        node = cluster._make_node("n1")
        cluster.nodes.append(node)
        H.wait_for(lambda: H.try_query(node, "SELECT NOT pg_is_in_recovery()") == [(True,)],
                   120, "a writable leader")
        rw = node.ports["rw"]
        H.wait_for(lambda: C.port_accepts(rw), 60, "the read-write forwarder")
        log("cluster ready; generating the source")
        src, size = make_source(C.make_dir(base / "src", 0o755), args.size_mb)
        results["size_mb"] = round(size / 1048576)
        log(f"source ready: {size / 1048576:.0f} MB")
        bindir = C.PG_BINDIR
        src_ci = f"host=127.0.0.1 port={src.port} user=app dbname=big"
        url = f"postgres://app:{APP_PW}@127.0.0.1:{src.port}/big?sslmode=disable"
        tgt_env = {"PGPASSWORD": H.SU_PW}
        results["manual_dump_s"] = []
        for rnd in range(args.rounds):
            # alternate who goes first; start each run from a checkpointed, quiet target
            for how in (("manual", "pgwarden") if rnd % 2 == 0 else ("pgwarden", "manual")):
                H.query(node, "CHECKPOINT", timeout=300)
                src.query("CHECKPOINT")
                time.sleep(5)
                db = f"copy_{how}_{rnd}"
                if how == "manual":
                    dump = base / f"dump{rnd}"
                    t0 = time.monotonic()
                    r, _ = run_as_pg([bindir / "pg_dump", "-Fd", "-j", args.jobs, "-f", dump,
                                      "-d", src_ci], env={"PGPASSWORD": APP_PW})
                    assert r.returncode == 0, r.stderr
                    results["manual_dump_s"].append(round(time.monotonic() - t0, 1))
                    r, _ = run_as_pg([bindir / "createdb", "-h", "127.0.0.1", "-p", rw, "-U",
                                      "postgres", db], env=tgt_env)
                    assert r.returncode == 0, r.stderr
                    r, _ = run_as_pg([bindir / "pg_restore", "-j", args.jobs, "--no-owner",
                                      "--no-acl", "-h", "127.0.0.1", "-p", rw, "-U", "postgres",
                                      "-d", db, dump], env=tgt_env)
                    assert r.returncode == 0, r.stderr
                    secs = time.monotonic() - t0
                    shutil.rmtree(dump, ignore_errors=True)
                    results["manual_s"].append(round(secs, 1))
                    log(f"round {rnd + 1}: manual pg_dump + pg_restore: {secs:.1f} s (dump "
                        f"{results['manual_dump_s'][-1]})")
                else:
                    r, secs = run_as_pg([args.bin, "migrate", "-c", node.config_path, "--from",
                                         url, "--to", db, "--jobs", args.jobs, "--yes",
                                         "--no-progress"] +
                                        (["--verify", "checksums"] if args.checksums else []))
                    assert r.returncode == 0, r.stdout + r.stderr
                    m = re.search(r"times: preflight ([\d.]+) s, dump ([\d.]+) s, restore "
                                  r"([\d.]+) s, verify ([\d.]+) s, finish ([\d.]+) s", r.stdout)
                    pre, dmp, rst, ver, fin = (float(x) for x in m.groups())
                    results["pgwarden_s"].append(round(secs, 1))
                    results["pgwarden_copy_s"].append(round(secs - ver, 1))
                    results["pgwarden_verify_s"].append(ver)
                    log(f"round {rnd + 1}: pgwarden migrate: {secs:.1f} s (preflight {pre}, "
                        f"dump {dmp}, restore {rst}, verify {ver}, finish {fin})")
                H.query(node, f"DROP DATABASE {db}", timeout=300)
        man = statistics.median(results["manual_s"])
        pgw = statistics.median(results["pgwarden_s"])
        copy = statistics.median(results["pgwarden_copy_s"])
        results.update({"ratio_with_verify": round(pgw / man, 2),
                        "ratio_without_verify": round(copy / man, 2)})
        print(f"\n{results['size_mb']} MB, --jobs {args.jobs}, medians of {args.rounds}"
              f"{', --verify checksums' if args.checksums else ''}:")
        print(f"  manual pg_dump -Fd + pg_restore   {man:7.1f} s")
        print(f"  pgwarden migrate (with verify)    {pgw:7.1f} s   {pgw / man:.2f}x "
              f"(target <= 1.3x)")
        print(f"  pgwarden migrate without verify   {copy:7.1f} s   {copy / man:.2f}x "
              f"(target <= 1.1x)")
        out = REPO / "build/results/migrate_bench.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    finally:
        if src:
            src.stop()
        if cluster:
            for p in cluster.stop():
                log(f"cleanup: {p}")
        if etcd:
            etcd.stop()
        if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
