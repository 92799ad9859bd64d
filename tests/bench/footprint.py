#!/usr/bin/env python3
"""Footprint (issue 10): what pgwarden costs on a node that has nothing to do.

  binary     size of the stripped static release binary per architecture (build/<arch>/pgwarden,
             built with `make static ARCH=<arch>` unless --no-build);
  memory     VmRSS and PSS of each pgwarden process (supervisor, ha, proxy, web) of the leader
             and of a replica of an idle three-node cluster (real etcd, PostgreSQL 15 managed by
             the nodes, ttl 10 s, loop_wait 1 s), read from /proc;
  idle CPU   utime + stime of each of those processes over --idle seconds (default 60),
             as a percentage of one CPU.

PostgreSQL and etcd are not counted. The nodes run the static amd64 release binary when it
exists (what ships), else --bin. PSS splits the shared pages (the binary's text) among the
processes that use them, so the PSS sum is what the four processes really take together.

Not part of `make test`. Run as root from the repo root (processes run as postgres):
    /usr/bin/python3 tests/bench/footprint.py [--idle 60] [--no-build] [--bin PATH]
Writes build/results/footprint.json and prints a table.
"""
import argparse
import json
import os
import shutil
import signal
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

PROCS = ("supervisor", "ha", "proxy", "web")
ARCHES = ("amd64", "arm64")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def binary_sizes(build):
    out = {}
    for arch in ARCHES:
        if build:
            log(f"make static ARCH={arch}")
            r = subprocess.run(["make", "--no-print-directory", "static", f"ARCH={arch}"],
                               cwd=REPO, capture_output=True, text=True)
            if r.returncode != 0:
                out[arch] = {"error": f"make static ARCH={arch} failed: "
                                      f"{(r.stderr or r.stdout).strip()[-300:]}"}
                continue
        p = REPO / "build" / arch / "pgwarden"
        if not p.is_file():
            out[arch] = {"error": f"{p} missing (make static ARCH={arch})"}
            continue
        desc = subprocess.run(["file", "-b", str(p)], capture_output=True, text=True).stdout
        out[arch] = {"path": str(p.relative_to(REPO)), "bytes": p.stat().st_size,
                     "mib": round(p.stat().st_size / 1048576, 2),
                     "static": "statically linked" in desc, "stripped": "not stripped" not in desc}
    return out


def node_pids(node):
    pids = {"supervisor": node.pid}
    pids.update({k: v for k, v in node.child_pids().items() if k in PROCS})
    missing = [p for p in PROCS if p not in pids]
    if missing:
        raise RuntimeError(f"{node.name}: no pid for {missing}")
    return pids


def measure(nodes, idle_s):
    """{node name: {proc: {rss_kib, pss_kib, cpu_pct}}} over idle_s seconds."""
    pids = {n.name: node_pids(n) for n in nodes}
    t0 = time.monotonic()
    start = {(nm, p): cpu_ticks(pid) for nm, ps in pids.items() for p, pid in ps.items()}
    time.sleep(idle_s)
    elapsed = time.monotonic() - t0
    out = {}
    for nm, ps in pids.items():
        out[nm] = {}
        for p, pid in ps.items():
            ticks = cpu_ticks(pid) - start[(nm, p)]
            out[nm][p] = {"pid": pid, "rss_kib": C.vm_rss_kib(pid), "pss_kib": C.pss_kib(pid),
                          "cpu_pct": round(100.0 * ticks / CLK_TCK / elapsed, 3)}
        out[nm]["total"] = {k: round(sum(out[nm][p][k] for p in PROCS), 3)
                            for k in ("rss_kib", "pss_kib", "cpu_pct")}
    return out, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=float, default=60.0, help="idle window in seconds")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds to wait after the cluster is healthy before measuring")
    ap.add_argument("--no-build", action="store_true", help="measure the existing build/<arch>/")
    ap.add_argument("--bin", default=os.environ.get("PGWARDEN_BIN", str(REPO / "build/dev/pgwarden")),
                    help="binary for the nodes when build/amd64/pgwarden does not exist")
    ap.add_argument("--out", default=str(REPO / "build/results/footprint.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the nodes run as the postgres user, as in the integration tests)")

    result = {"issue": 10, "command": " ".join([sys.executable, *sys.argv]),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
              "loadavg_start": os.getloadavg(), "idle_s": args.idle,
              "binary_size": binary_sizes(not args.no_build)}
    static = REPO / "build/amd64/pgwarden"
    node_bin = static if static.is_file() else Path(args.bin)
    result["node_binary"] = str(node_bin)
    work = Path(tempfile.mkdtemp(prefix="pgw-footprint-", dir="/tmp"))
    os.chmod(work, 0o755)
    C.chown_run_user(work)
    binp = work / "pgwarden"
    shutil.copy2(node_bin, binp)
    os.chmod(binp, 0o755)
    etcd = cl = None

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    rc = 0
    try:
        etcd = C.start_etcd_single(C.make_dir(work / "etcd"))
        cl = H.Cluster(etcd, work / "cluster", "bench-footprint", binp, 10)
        log("starting a three-node cluster")
        cl.start(240)
        time.sleep(args.settle)
        leader = cl.writable_leader()
        replica = next(n for n in cl.nodes if n is not leader)
        log(f"leader {leader.name}, replica {replica.name}: idle for {args.idle:.0f} s")
        per_node, elapsed = measure([leader, replica], args.idle)
        result["idle_window_s"] = round(elapsed, 2)
        result["leader"] = per_node[leader.name]
        result["replica"] = per_node[replica.name]
        result["healthy_after"] = cl.healthy()[0]
    except (KeyboardInterrupt, Exception) as e:  # report what was measured, then fail
        result["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        log(f"NOT MEASURED: {result['error']}")
        rc = 1
    finally:
        H.teardown(work, etcd, [cl])
    result["loadavg_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for arch, b in result["binary_size"].items():
        print(f"binary {arch}: " + (f"{b['bytes']} bytes ({b['mib']} MiB)" if "bytes" in b
                                     else b["error"]))
    for role in ("leader", "replica"):
        if role in result:
            print(f"{role:8s}" + "".join(
                f"  {p} {v['rss_kib']} KiB RSS/{v['pss_kib']} PSS {v['cpu_pct']:.2f}% CPU"
                for p, v in result[role].items()))
    print(f"written to {args.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
