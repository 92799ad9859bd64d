#!/usr/bin/env python3
"""Forwarder benchmark (issue 5): the data path of the pgwarden forwarder against HAProxy 2.6
and against a direct connection, on one three-node cluster (real etcd, three `pgwarden run`
nodes managing PostgreSQL 15), all on 127.0.0.1.

Workloads, run interleaved (each round runs every target once per workload, the target order
rotating from round to round), medians over --pairs rounds:
  select    pgbench -S -c 16 -j 2 -T D            (persistent connections)
  connect   pgbench -S -C -c 16 -j 2 -T D         (a new connection per transaction)
  latency   pgbench -S -c 1 -T L                  (single client, "latency average")
Targets: direct (the leader's PostgreSQL), pgwarden (the leader node's read-write port),
haproxy (HAProxy 2.6, `mode tcp`, the configuration from Patroni's documentation).
The data is `pgbench -i -s 10`, made once. Clients authenticate with SCRAM (the cluster's
pg_hba), on every path alike.

HAProxy runs the standard configuration published for Patroni (the reference in
shared/reference/etcd-gateway.md, B4): `option httpchk OPTIONS /primary`, `http-check expect
status 200`, `default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions` and one
`server ... maxconn 100 check port <REST port>` line per node, checked against pgwarden's
Patroni-compatible REST API. Measurement starts once HAProxy sends every connection to the
leader.

Memory: 1,000 client connections are opened through the read-write port, each completes its
startup (authenticated, ReadyForQuery) and stays idle; then VmRSS of the node's proxy child is
read from /proc (PostgreSQL's max_connections is raised through the `config` key, seeded before
the bootstrap).

Targets (reported pass/fail, not asserted): forwarder TPS >= 1.0x HAProxy on select and on
connect, >= 0.9x direct on select; added single-client latency (vs direct) <= HAProxy's;
forwarder RSS < 5 MiB with 1,000 idle clients.

Run as root from the repo root (processes run as the postgres user):
    make bench        or   /usr/bin/python3 tests/bench/proxy_bench.py [--duration 20]
                           [--pairs 5] [--latency-duration 10] [--idle 1000] [--bin PATH]
Writes build/results/proxy_bench.json and prints a table. PGWARDEN_KEEP_TMP=1 keeps the
temporary folder.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/integration"))
sys.path.insert(0, str(REPO / "tests/bench"))

import conftest as C  # noqa: E402  (the integration harness: etcd, nodes, /proc helpers)
import ha_figures as H  # noqa: E402  (its three-node Cluster)
from proxyutil import haproxy_patroni_cfg, reached  # noqa: E402

import psycopg2  # noqa: E402

PGBENCH = str(C.PG_BINDIR / "pgbench")
TARGETS = ("direct", "pgwarden", "haproxy")
IDLE_PG_MAX_CONNECTIONS = 1200

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def pgbench(port, args, timeout):
    env = dict(os.environ, PGPASSWORD=H.SU_PW, PGSSLMODE="disable")
    argv = [PGBENCH, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args, "postgres"]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} on port {port} failed: "
                           f"{(r.stderr or r.stdout).strip()[-500:]}")
    tps = re.search(r"^tps = ([\d.]+)", r.stdout, re.M)
    lat = re.search(r"^latency average = ([\d.]+) ms", r.stdout, re.M)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    done = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    return {"tps": float(tps.group(1)) if tps else None,
            "transactions": int(done.group(1)) if done else None,
            "latency_ms": float(lat.group(1)) if lat else None,
            "failed": int(failed.group(1)) if failed else None}


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_s():
    """CPU seconds spent by the whole machine (all CPUs) outside idle and iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def proc_cpu_s(pid):
    """utime + stime of one process, in seconds (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def start_haproxy(work, nodes, leader):
    port = C.free_port()
    cfg = work / "haproxy.cfg"
    C.write_file(cfg, haproxy_patroni_cfg(
        port, [(f"postgresql_{n.name}", H.pg_port(n), n.ports["web"]) for n in nodes]))
    proc = C.Proc("haproxy", ["/usr/sbin/haproxy", "-f", cfg, "-db"], work / "haproxy.log")
    proc.start()
    C.wait_until(lambda: C.port_accepts(port), 15, "haproxy listening", 0.1)
    # servers start UP until their checks fail (fall 3 x inter 3s): wait until 30 connections
    # in a row reach the leader's PostgreSQL
    want = H.pg_port(leader)
    streak = [0]

    def on_leader():
        got = reached(port, H.SU_PW, 10)
        streak[0] = streak[0] + 1 if got and got[0] == want else 0
        return streak[0] >= 30
    C.wait_until(on_leader, 60, "haproxy to route only to the leader", 0.05)
    return proc, port, cfg.read_text()


def idle_rss(node, port, n, pid):
    """Opens n connections through port (startup complete, idle); returns the proxy child's
    VmRSS before and with them, in KiB."""
    rss0 = C.vm_rss_kib(pid)
    conns = []
    t0 = time.monotonic()
    try:
        for _ in range(n):
            c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                 password=H.SU_PW, sslmode="disable", connect_timeout=30)
            conns.append(c)
        took = time.monotonic() - t0
        time.sleep(1.0)
        rss1 = C.vm_rss_kib(pid)
        pss1 = C.pss_kib(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return {"connections": len(conns), "open_s": round(took, 1), "rss_before_kib": rss0,
                "rss_kib": rss1, "pss_kib": pss1, "proxy_fds": fds}
    finally:
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=20, help="s per select/connect run (-T)")
    ap.add_argument("--latency-duration", type=int, default=10, help="s per latency run")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5 for medians)")
    ap.add_argument("--idle", type=int, default=1000, help="idle client connections for RSS")
    ap.add_argument("--bin", default=os.environ.get("PGWARDEN_BIN", str(REPO / "build/dev/pgwarden")))
    ap.add_argument("--out", default=str(REPO / "build/results/proxy_bench.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the nodes run as the postgres user, as in the integration tests)")
    for need in (args.bin, "/usr/sbin/haproxy", PGBENCH):
        if not Path(need).is_file():
            sys.exit(f"{need} missing (make build/dev/pgwarden; toolchain/install-deps.sh test)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.idle * 2 + 256)), hard))

    work = Path(tempfile.mkdtemp(prefix="pgw-proxybench-", dir="/tmp"))
    os.chmod(work, 0o755)
    C.chown_run_user(work)
    binp = work / "pgwarden"
    shutil.copy2(args.bin, binp)
    os.chmod(binp, 0o755)
    hv = subprocess.run(["/usr/sbin/haproxy", "-v"], capture_output=True, text=True).stdout
    result = {
        "issue": 5, "command": " ".join([sys.executable, *sys.argv]),
        "binary": str(args.bin), "binary_sha256": H.file_sha256(args.bin),
        "haproxy": hv.splitlines()[0] if hv else None,
        "git_rev": os.popen(f"git -C {REPO} rev-parse --short=10 HEAD 2>/dev/null").read().strip(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
        "duration_s": args.duration, "latency_duration_s": args.latency_duration,
        "pairs": args.pairs,
        "notes": ["HAProxy: the standard Patroni configuration (mode tcp, option httpchk "
                  "OPTIONS /primary against each node's REST port, one server line per node).",
                  "All on 127.0.0.1, one machine: pgbench, PostgreSQL, the forwarder and HAProxy "
                  "share its CPUs.",
                  "pgwarden: the leader node's read-write port (routes to the local PostgreSQL)."],
        "runs": [],
    }
    etcd = cl = hap = None
    stop = {"sig": None}

    def on_term(signum, frame):
        stop["sig"] = signum
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        etcd = C.start_etcd_single(C.make_dir(work / "etcd"))
        cl = H.Cluster(etcd, work / "cluster", "bench-proxy", binp, 10)
        cl.ha["proxy"] = {"max_connections": str(args.idle + 200)}
        # PostgreSQL's max_connections for the idle-connection memory figure, in place before
        # the bootstrap so that the first start already has it
        etcd.put("/service/bench-proxy/config", json.dumps({
            "ttl": 10, "loop_wait": 1, "retry_timeout": 3, "maximum_lag_on_failover": 1048576,
            "postgresql": {"use_pg_rewind": True, "use_slots": True,
                           "parameters": {"max_connections": IDLE_PG_MAX_CONNECTIONS}}}))
        log("starting a three-node cluster")
        cl.start(240)
        leader = cl.writable_leader()
        pg_port = H.pg_port(leader)
        rw = leader.ports["rw"]
        pid = leader.child_pids().get("proxy")
        log(f"leader {leader.name}: PostgreSQL :{pg_port}, pgwarden rw :{rw}, proxy pid {pid}")
        hap, hport, hcfg = start_haproxy(work, cl.nodes, leader)
        hap_pid = hap.pid
        result["haproxy_config"] = hcfg
        ports = {"direct": pg_port, "pgwarden": rw, "haproxy": hport}
        log(f"haproxy :{hport}; pgbench -i -s 10")
        pgbench(pg_port, ["-i", "-s", "10", "-q"], 600)
        for t in TARGETS:  # warm-up: caches, connections, the forwarder's buffers
            pgbench(ports[t], ["-S", "-c", "4", "-j", "2", "-T", "2"], 60)
        workloads = {
            "select": ["-S", "-c", "16", "-j", "2", "-T", str(args.duration)],
            "connect": ["-S", "-C", "-c", "16", "-j", "2", "-T", str(args.duration)],
            "latency": ["-S", "-c", "1", "-T", str(args.latency_duration)],
        }
        for rnd in range(args.pairs):
            order = TARGETS[rnd % 3:] + TARGETS[:rnd % 3]
            for wl, wargs in workloads.items():
                for t in order:
                    mb0, hp0 = machine_busy_s(), proc_cpu_s(hap_pid)
                    fw0 = proc_cpu_s(pid)
                    r = pgbench(ports[t], wargs, max(args.duration, args.latency_duration) * 3 + 60)
                    mb1, hp1, fw1 = machine_busy_s(), proc_cpu_s(hap_pid), proc_cpu_s(pid)
                    r.update({"round": rnd, "workload": wl, "target": t,
                              "machine_cpu_s": round(mb1 - mb0, 2),
                              "forwarder_cpu_s": round(fw1 - fw0, 3) if None not in (fw0, fw1)
                              else None,
                              "haproxy_cpu_s": round(hp1 - hp0, 3) if None not in (hp0, hp1)
                              else None})
                    result["runs"].append(r)
                    log(f"round {rnd + 1}/{args.pairs} {wl:8s} {t:9s} tps={r['tps']:.0f} "
                        f"lat={r['latency_ms']}ms failed={r['failed']}")
            H.write_json(args.out, result)
        log(f"opening {args.idle} idle connections through the rw port")
        result["idle"] = idle_rss(leader, rw, args.idle, pid)
        result["idle"]["pg_max_connections"] = int(H.query(leader, "SHOW max_connections")[0][0])
    except KeyboardInterrupt:
        log("interrupted")
        result["interrupted"] = True
    except Exception as e:  # noqa: BLE001 - report what was measured so far
        log(f"ERROR: {e}")
        result["error"] = str(e)
    finally:
        if hap:
            hap.stop()
        if cl:
            for p in cl.stop():
                log(f"cleanup: {p}")
            logs = Path(args.out).parent / "proxy_bench-logs"
            shutil.rmtree(logs, ignore_errors=True)
            logs.mkdir(parents=True, exist_ok=True)
            for n in cl.nodes:
                try:
                    shutil.copy(n.stderr_path, logs / f"{n.name}.log")
                except OSError:
                    pass
        if etcd:
            etcd.stop()
        if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    summarize(result)
    H.write_json(args.out, result)
    print_table(result, args)
    print(f"\nwritten to {args.out}")
    return 1 if result.get("error") or result.get("interrupted") else 0


def summarize(result):
    med = {}
    for wl in ("select", "connect", "latency"):
        for t in TARGETS:
            rs = [r for r in result["runs"] if r["workload"] == wl and r["target"] == t]
            key = "latency_ms" if wl == "latency" else "tps"
            med[f"{wl}.{t}"] = median([r[key] for r in rs if r[key] is not None])
            med[f"{wl}.{t}.n"] = len(rs)
            med[f"{wl}.{t}.failed"] = sum(r["failed"] or 0 for r in rs)
    result["medians"] = med
    # CPU per transaction of the select workload: the whole machine's (pgbench, PostgreSQL and
    # the path between them), and the forwarder's or HAProxy's own, in microseconds
    cpu = {}
    for t in TARGETS:
        rs = [r for r in result["runs"] if r["workload"] == "select" and r["target"] == t
              and r.get("transactions")]
        cpu[f"machine_us_per_tx.{t}"] = median(
            [r["machine_cpu_s"] * 1e6 / r["transactions"] for r in rs])
    for t, key in (("pgwarden", "forwarder_cpu_s"), ("haproxy", "haproxy_cpu_s")):
        rs = [r for r in result["runs"] if r["workload"] == "select" and r["target"] == t
              and r.get("transactions") and r.get(key) is not None]
        cpu[f"path_us_per_tx.{t}"] = median([r[key] * 1e6 / r["transactions"] for r in rs])
    result["cpu_per_tx"] = {k: round(v, 1) if v is not None else None for k, v in cpu.items()}
    tg = {}

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None
    s_h = ratio(med.get("select.pgwarden"), med.get("select.haproxy"))
    s_d = ratio(med.get("select.pgwarden"), med.get("select.direct"))
    c_h = ratio(med.get("connect.pgwarden"), med.get("connect.haproxy"))
    tg["select_vs_haproxy"] = {"value": s_h, "target": ">= 1.0", "pass": s_h is not None and s_h >= 1.0}
    tg["select_vs_direct"] = {"value": s_d, "target": ">= 0.9", "pass": s_d is not None and s_d >= 0.9}
    tg["connect_vs_haproxy"] = {"value": c_h, "target": ">= 1.0", "pass": c_h is not None and c_h >= 1.0}
    ld, lp, lh = (med.get(f"latency.{t}") for t in TARGETS)
    if None not in (ld, lp, lh):
        added_p, added_h = round(lp - ld, 4), round(lh - ld, 4)
        tg["added_latency"] = {"value_ms": added_p, "haproxy_ms": added_h,
                               "target": "<= haproxy's", "pass": added_p <= added_h}
    idle = result.get("idle")
    if idle:
        ok = idle["connections"] >= 1000 and idle["rss_kib"] < 5 * 1024
        tg["idle_rss"] = {"value_kib": idle["rss_kib"], "connections": idle["connections"],
                          "target": "< 5120 KiB with 1000 idle clients", "pass": ok}
    result["targets"] = tg


def print_table(result, args):
    med = result.get("medians", {})
    print(f"\nForwarder benchmark (issue 5): {result.get('haproxy')}; pgbench -S, "
          f"-T {args.duration} (latency -T {args.latency_duration}), medians of {args.pairs} "
          f"interleaved rounds; {result.get('cpus')} CPUs shared by everything")
    print("HAProxy: the standard Patroni config (mode tcp, httpchk OPTIONS /primary on each "
          "node's REST port)\n")
    print(f"{'workload':34s} {'direct':>10s} {'pgwarden':>10s} {'haproxy':>10s}")
    rows = (("select  -c16 -j2        TPS", "select", "{:10.0f}"),
            ("connect -C -c16 -j2     TPS", "connect", "{:10.0f}"),
            ("latency -c1      avg ms", "latency", "{:10.3f}"))
    for label, wl, fmt in rows:
        cells = []
        for t in TARGETS:
            v = med.get(f"{wl}.{t}")
            cells.append(fmt.format(v) if v is not None else f"{'-':>10s}")
        print(f"{label:34s} {' '.join(cells)}")
    cpu = result.get("cpu_per_tx") or {}
    cells = [f"{cpu.get(f'machine_us_per_tx.{t}'):10.1f}"
             if cpu.get(f"machine_us_per_tx.{t}") is not None else f"{'-':>10s}" for t in TARGETS]
    print(f"{'select: machine CPU us per tx':34s} {' '.join(cells)}")
    cells = [f"{'-':>10s}"] + [f"{cpu.get(f'path_us_per_tx.{t}'):10.1f}"
                               if cpu.get(f"path_us_per_tx.{t}") is not None else f"{'-':>10s}"
                               for t in TARGETS[1:]]
    print(f"{'select: forwarder/HAProxy us per tx':34s} {' '.join(cells)}")
    idle = result.get("idle")
    if idle:
        print(f"\nidle: {idle['connections']} connections through the rw port: proxy VmRSS "
              f"{idle['rss_before_kib']} KiB -> {idle['rss_kib']} KiB (PSS {idle['pss_kib']} KiB, "
              f"{idle['proxy_fds']} fds)")
    print("\ntargets:")
    for k, v in result.get("targets", {}).items():
        shown = {x: y for x, y in v.items() if x != "pass"}
        print(f"  {k:20s} {verdict(v['pass'])}  {shown}")
    for k in ("error", "interrupted"):
        if result.get(k):
            print(f"  {k}: {result[k]}")


if __name__ == "__main__":
    sys.exit(main())
