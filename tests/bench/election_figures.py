#!/usr/bin/env python3
"""Election figures (issue 3), with a real etcd and three `pgwarden run` nodes (ttl=10s,
loop_wait=1s):

  1. time from SIGKILL of the leader node (all its processes) to the new leader's key
     (arrival of the PUT on an etcd watch), median of N rounds;
  2. time from the leader key's DELETE (lease expiry) to a follower's successful race:
     the gap between the DELETE and the new PUT as one etcd watcher sees them, and, inside the
     winning node, from its ha's "leader key gone" log line to "acquired leadership";
  3. etcd requests per second per idle node: from each node's own counter (debug log line
     "etcd requests") and, independently, from etcd's /metrics (grpc_server_started_total over
     the idle window, divided by the number of nodes).

Not part of `make test`. Run as root from the repo root (processes run as postgres, like the
integration tests):   /usr/bin/python3 tests/bench/election_figures.py [--rounds 10]
Writes build/results/election_figures.json and prints a table.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/integration"))

import conftest as C  # noqa: E402  (the integration harness: etcd, nodes, logfmt)
from test_election import (all_records, kill_node, leader_kv, log_ts, prefix_of,  # noqa: E402
                           start_watch)


class Factory:
    """Stands in for pytest's request object in conftest.Node."""


def make_node(base, name, etcd_url, scope, ha, bin_path):
    node_dir = C.make_dir(base / name, 0o755)
    C.make_dir(node_dir / "state")
    C.make_dir(node_dir / "pgdata")
    cfg = C.merge_config(C.default_node_config(node_dir, name, etcd_url, scope),
                         {"ha": ha, "log": {"level": "debug"}})
    node = C.Node(Factory(), name, node_dir, cfg, [str(bin_path)], None)
    node.start()
    node.wait_ready()
    return node


def etcd_grpc_started(url):
    """Sum of grpc_server_started_total over all methods (each gateway request is one call)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_started_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--ttl", type=int, default=10)
    ap.add_argument("--idle", type=float, default=40.0, help="idle window in seconds")
    ap.add_argument("--bin", default=os.environ.get("PGWARDEN_BIN", str(REPO / "build/dev/pgwarden")))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the nodes run as the postgres user, as in the integration tests)")
    ha = {"ttl": f"{args.ttl}s", "loop_wait": "1s", "retry_timeout": "3s", "fencing_margin": "2s"}

    work = Path(tempfile.mkdtemp(prefix="pgwarden-bench-", dir="/tmp"))
    os.chmod(work, 0o755)
    C.chown_run_user(work)
    etcd = nodes = watch = None
    result = {"ttl_s": args.ttl, "loop_wait_s": 1, "rounds": args.rounds}
    try:
        etcd = C.start_etcd_single(C.make_dir(work / "etcd"))
        scope = "bench"
        nodes = [make_node(work, f"n{i}", etcd.url, scope, ha, args.bin) for i in (1, 2, 3)]
        key = prefix_of(nodes[0]) + "leader"
        C.wait_until(lambda: leader_kv(etcd.url, key), 30, "a first leader")
        watch = start_watch(etcd.url, key)

        kill_to_key, delete_to_put, gone_to_acquired = [], [], []
        for rnd in range(args.rounds):
            name = C.wait_until(lambda: leader_kv(etcd.url, key), 30, "a leader")[0]
            old = next(n for n in nodes if n.name == name)
            time.sleep(1.3)  # lands at a different phase of the 1 s keepalive cycle each round
            t_kill = kill_node(old)
            ev = watch.wait_put(lambda e: e["value"] != name and e["t"] > t_kill,
                                args.ttl + 10, "a new leader")
            dels = [e for e in watch.snapshot()
                    if e["type"] == "DELETE" and t_kill < e["t"] <= ev["t"]]
            kill_to_key.append(ev["t"] - t_kill)
            if dels:
                delete_to_put.append(ev["t"] - dels[-1]["t"])
            new = next(n for n in nodes if n.name == ev["value"])
            recs = [r for r in all_records(new) if r.get("role") == "ha"]
            acq = [r for r in recs if r.get("msg") == "acquired leadership"
                   and r.get("term") == str(ev["create"])]
            gone = [r for r in recs if r.get("msg") == "leader key gone"
                    and acq and log_ts(r) <= log_ts(acq[-1])]
            if acq and gone:
                gone_to_acquired.append(log_ts(acq[-1]) - log_ts(gone[-1]))
            print(f"round {rnd + 1}: killed {name}, {ev['value']} leads after "
                  f"{kill_to_key[-1]:.3f}s (delete->put {delete_to_put[-1] * 1000 if dels else -1:.1f} ms)",
                  flush=True)
            old.start()
            old.wait_ready()
            old.wait_log(r'msg="leader changed" leader=' + re.escape(ev["value"]), 20)

        # idle: let every node settle, then count over a window
        time.sleep(3)
        g0, t0 = etcd_grpc_started(etcd.url), time.monotonic()
        time.sleep(args.idle)
        g1, t1 = etcd_grpc_started(etcd.url), time.monotonic()
        etcd_rate = (g1 - g0) / (t1 - t0) / len(nodes)
        per_node = {}
        for n in nodes:
            rs = [r for r in n.records() if r.get("msg") == "etcd requests"]
            rs = rs[-max(2, int(args.idle // 10)):]
            if len(rs) >= 2:
                dt = log_ts(rs[-1]) - log_ts(rs[0])
                per_node[n.name] = (int(rs[-1]["total"]) - int(rs[0]["total"])) / dt
        result.update({
            "kill_to_new_leader_key_s": {"median": median(kill_to_key), "min": min(kill_to_key),
                                         "max": max(kill_to_key), "samples": kill_to_key},
            "delete_to_successful_race_ms": {
                "watcher_median": median([x * 1000 for x in delete_to_put]),
                "watcher_samples": [x * 1000 for x in delete_to_put],
                "winner_log_median": median([x * 1000 for x in gone_to_acquired]),
                "winner_log_samples": [x * 1000 for x in gone_to_acquired]},
            "idle_etcd_requests_per_s_per_node": {
                "from_node_counters": per_node,
                "from_node_counters_mean": statistics.mean(per_node.values()) if per_node else None,
                "from_etcd_metrics": etcd_rate, "window_s": t1 - t0},
        })
    finally:
        if watch:
            watch.stop()
        for n in nodes or []:
            n.cleanup()
        if etcd:
            etcd.stop()
        if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)

    out = REPO / "build/results/election_figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    k, d, i = (result["kill_to_new_leader_key_s"], result["delete_to_successful_race_ms"],
               result["idle_etcd_requests_per_s_per_node"])
    print()
    print(f"{'figure':58} {'value':>12}")
    print(f"{'leader SIGKILL -> new leader key, median of %d (ttl=%ds)' % (args.rounds, args.ttl):58}"
          f" {k['median']:>10.2f} s   (min {k['min']:.2f}, max {k['max']:.2f})")
    print(f"{'key DELETE -> successful race, median (etcd watcher)':58} {d['watcher_median']:>10.1f} ms")
    print(f"{'key gone -> acquired, median (winner log)':58} {d['winner_log_median']:>10.1f} ms")
    print(f"{'idle etcd requests/s per node (node counters)':58} {i['from_node_counters_mean']:>10.2f}")
    print(f"{'idle etcd requests/s per node (etcd grpc metrics)':58} {i['from_etcd_metrics']:>10.2f}")
    print(f"\nwritten to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
