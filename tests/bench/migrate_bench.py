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

--online (instead of the ratio rounds): `pgwarden migrate --online` from the same source
(wal_level = logical, the owner has REPLICATION) while a writer inserts and updates rows on the
source; once the copy streams and some writes have followed, the writer stops (the application
stops) and `pgwarden migrate cutover` runs: its "cutover took X s" is the application's
downtime (target < 5 s), measured --rounds times (each round migrates into a new database).

Run as root from the repo root (processes run as the postgres user):
    /usr/bin/python3 tests/bench/migrate_bench.py [--size-mb 1024] [--rounds 2] [--checksums]
                                                  [--online] [--bin PATH]
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
import threading
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


def make_source(base, size_mb, logical=False):
    conf = {"max_connections": "40", "shared_buffers": "256MB", "maintenance_work_mem": "256MB",
            "max_wal_size": "4GB", "password_encryption": "scram-sha-256"}
    if logical:
        conf["wal_level"] = "logical"
    pg = C.Postgres(base, "src", conf=conf)
    pg.initdb()
    C.write_file(pg.data_dir / "pg_hba.conf", "local all all trust\n"
                 "host all postgres 127.0.0.1/32 trust\n"
                 "host all app 127.0.0.1/32 scram-sha-256\n", mode=0o600)
    pg.start()
    pg.query(f"CREATE ROLE app LOGIN {'REPLICATION ' if logical else ''}PASSWORD '{APP_PW}'")
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


class Writer(threading.Thread):
    """The application: small write transactions on the source until stopped."""

    def __init__(self, src):
        super().__init__(daemon=True)
        self.src, self.stop, self.n, self.error = src, threading.Event(), 0, None

    def run(self):
        try:
            conn = C.psycopg2_connect(f"host=127.0.0.1 port={self.src.port} user=app dbname=big "
                                      f"password={APP_PW}")
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("SELECT max(id) FROM events")
            top = cur.fetchone()[0]
            while not self.stop.is_set():
                self.n += 1
                cur.execute("INSERT INTO events VALUES (%s, 'live', 'x', now(), 1)", (top + self.n,))
                cur.execute("UPDATE items SET price = price + 1 WHERE id = %s", (1 + self.n % 1000,))
                time.sleep(0.002)
            conn.close()
        except Exception as e:
            self.error = e


def migrate_status(args, node):
    r, _ = run_as_pg([args.bin, "migrate", "-c", node.config_path, "status", "--json"])
    return json.loads(r.stdout) if r.returncode == 0 else {}


def online_rounds(args, node, src, results):
    url = f"postgres://app:{APP_PW}@127.0.0.1:{src.port}/big?sslmode=disable"
    results.update({"online_cutover_s": [], "online_copy_s": [], "online_writes": []})
    for rnd in range(args.rounds):
        db = f"online_{rnd}"
        writer = Writer(src)
        writer.start()
        t0 = time.monotonic()
        p = subprocess.Popen([args.bin, "migrate", "-c", str(node.config_path), "--online",
                              "--from", url, "--to", db, "--yes", "--no-progress"],
                             user=C.RUN_USER, group=C.RUN_USER, extra_groups=[],
                             env=C.base_env(), cwd="/tmp", stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            H.wait_for(lambda: p.poll() is not None or
                       migrate_status(args, node).get("phase") == "streaming", 7200,
                       "the initial copy", 1.0)
            assert p.poll() is None, p.communicate()
            copy_s = time.monotonic() - t0
            time.sleep(10)  # changes stream for a while
            writer.stop.set()
            writer.join(30)
            assert writer.error is None, writer.error
            r, secs = run_as_pg([args.bin, "migrate", "-c", node.config_path, "cutover"])
            assert r.returncode == 0, r.stdout + r.stderr
            m = re.search(r"cutover took ([\d.]+) s.*$", r.stdout, re.M)
            cut = float(m.group(1))
            log(m.group(0))  # where the downtime goes
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, out + err
        finally:
            writer.stop.set()
            if p.poll() is None:
                p.kill()
                p.wait()
        results["online_cutover_s"].append(cut)
        results["online_copy_s"].append(round(copy_s, 1))
        results["online_writes"].append(writer.n)
        log(f"round {rnd + 1}: initial copy {copy_s:.1f} s, {writer.n} writes during the "
            f"migration, cutover (downtime) {cut:.2f} s (the command: {secs:.2f} s)")
        H.query(node, f"DROP DATABASE {db}", timeout=300)
    med = statistics.median(results["online_cutover_s"])
    print(f"\n{results['size_mb']} MB online migration, median of {args.rounds}: cutover "
          f"(application downtime) {med:.2f} s (target < 5 s)")
    out = REPO / "build/results/migrate_bench_online.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in results.items() if k in ("size_mb",) or k.startswith("online_")}
    keep["online_cutover_median_s"] = med
    out.write_text(json.dumps(keep, indent=2) + "\n")
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--bin", default=str(REPO / "build/dev/pgwarden"))
    ap.add_argument("--checksums", action="store_true",
                    help="pgwarden verifies with --verify checksums (row checksums)")
    ap.add_argument("--online", action="store_true",
                    help="measure the cutover downtime of an online migration instead")
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
        src, size = make_source(C.make_dir(base / "src", 0o755), args.size_mb, args.online)
        results["size_mb"] = round(size / 1048576)
        log(f"source ready: {size / 1048576:.0f} MB")
        if args.online:
            online_rounds(args, node, src, results)
            return
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
        H.teardown(base, etcd, [cluster])


if __name__ == "__main__":
    main()
