"""Checker of a fault run (tests/faults/run.py, issue 9): lost acknowledged writes, split brain,
fencing of partitioned leaders, rejoin, one leader at the end, write unavailability and its cause.

Every acknowledged write is (id, t_send, t_ack, server, timeline): server is "addr:port" of the
PostgreSQL that ran the INSERT (inet_server_addr/port, via the forwarder), timeline the one of
its WAL position in the same transaction. Definitions:
  lost           an acknowledged id missing on the final leader (synchronous mode: must be 0;
                 asynchronous mode: the measured figure)
  split brain    a write acknowledged on timeline T whose INSERT was sent after a write on a later
                 timeline had been acknowledged (two servers accepting writes at one instant,
                 with --skew of client-side timing allowance), or two servers on one timeline
  fencing        a partitioned leader must stop accepting writes before its lease can expire: a
                 write acknowledged by it whose INSERT was sent more than ttl after the partition
                 began (and before the heal) is a violation
  rejoined       the cluster was healthy again within --rejoin-timeout without the harness
                 re-cloning a node
  unavailability a gap > --gap s between two consecutive acknowledged writes (all clients); its
                 cause is the fault whose window overlaps it most
"""
import bisect
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _d in ("tests/integration", "tests/bench"):
    if str(_REPO / _d) not in sys.path:
        sys.path.insert(0, str(_REPO / _d))

import ha_figures as H  # noqa: E402


def server_names(cl):
    """{"addr:port": node name} of each node's PostgreSQL listen address."""
    out = {}
    for n in cl.nodes:
        host, port = H.pg_host(n), H.pg_port(n)
        out[f"{host}:{port}"] = n.name
    return out


def final_state(cl, sync):
    ok, why = cl.healthy()
    prim = []
    for n in cl.nodes:
        r = H.try_query(n, "SELECT pg_is_in_recovery()")
        if r and r[0][0] is False:
            prim.append(n.name)
    out = {"healthy": ok, "detail": why, "leader_key": cl.leader_name(),
           "writable_nodes": prim,
           "one_leader": len(prim) == 1 and prim[0] == cl.leader_name(),
           "agents_running": sum(1 for n in cl.nodes if n.running())}
    if sync:
        out["sync_engaged"], out["sync_detail"] = H.sync_engaged(cl)
    return out


def split_brain(acks, skew):
    by_tli = {}
    for a in acks:
        by_tli.setdefault(a[4], []).append(a)
    tlis = sorted(by_tli)
    servers_of = {t: sorted({a[3] for a in by_tli[t]}) for t in tlis}
    timelines = {str(t): {"servers": servers_of[t], "acks": len(by_tli[t]),
                          "first_ack_s": round(min(a[2] for a in by_tli[t]), 3),
                          "last_ack_s": round(max(a[2] for a in by_tli[t]), 3)} for t in tlis}
    split = []
    later_min = float("inf")
    for t in reversed(tlis):
        for a in by_tli[t]:
            if a[1] > later_min + skew:
                split.append({"id": a[0], "timeline": t, "server": a[3],
                              "sent_s": round(a[1], 3), "acked_s": round(a[2], 3),
                              "later_timeline_acked_at_s": round(later_min, 3)})
        later_min = min(later_min, min(a[2] for a in by_tli[t]))
    multi = [t for t in tlis if len(servers_of[t]) > 1]
    return timelines, split, multi


def fencing(faults, acks, names, ttl):
    """Per partition of the leader: when its last write was acknowledged, and violations."""
    sid_of = {v: k for k, v in names.items()}
    out = []
    for f in faults:
        p = f.get("partition")
        if not p or not p.get("was_leader") or "t_heal" not in p:
            continue
        sid = sid_of.get(f["target"])
        mine = [a for a in acks if a[3] == sid and f["t_start"] < a[2] <= p["t_heal"]]
        late = [a for a in mine if a[1] > f["t_start"] + ttl]
        last = max((a[2] for a in mine), default=None)
        rec = {"n": f["n"], "kind": f["kind"], "target": f["target"],
               "acks_during_partition": len(mine),
               "last_ack_after_s": None if last is None else round(last - f["t_start"], 3),
               "late_acks": len(late)}
        p["fencing"] = rec
        out.append(rec)
    return out


def gaps_of(acks, threshold):
    gaps = []
    for i in range(1, len(acks)):
        if acks[i][2] - acks[i - 1][2] > threshold:
            gaps.append((acks[i - 1][2], acks[i][2]))
    gaps.sort(key=lambda g: g[1] - g[0], reverse=True)
    return gaps


def cause_of(gap, faults):
    best = None
    for f in faults:
        end = f.get("t_recovered", gap[1])
        if f["t_start"] <= gap[1] and end >= gap[0] - 0.5:
            ov = min(gap[1], end) - max(gap[0], f["t_start"])
            if best is None or ov > best[0]:
                best = (ov, f)
    return best[1] if best else None


def fault_of(t, faults, starts):
    """The fault whose window [t_start, next fault's t_start) holds t."""
    i = bisect.bisect_right(starts, t) - 1
    return faults[i] if i >= 0 else None


def check(cl, clients, faults, args, ttl):
    sync = args.mode == "sync"
    names = server_names(cl)
    acks = sorted((a for c in clients for a in c.acks), key=lambda a: a[2])
    doubt = [d for c in clients for d in c.doubt]
    res = {"mode": args.mode, "delay_ms": args.delay_ms, "acknowledged": len(acks),
           "in_doubt": len(doubt), "servers": names}
    res["final"] = final_state(cl, sync)
    leader = cl.node(cl.leader_name())
    present = {r[0] for r in H.query(leader, f"SELECT id FROM {H.TABLE}", timeout=60)}
    acked = {a[0] for a in acks}
    missing = sorted(acked - present)
    res["lost"] = len(missing)
    res["lost_ids"] = missing[:2000]  # the SVG marks each one
    res["in_doubt_present"] = sum(1 for d in doubt if d[0] in present)
    starts = [f["t_start"] for f in faults]
    lost_by = {}
    miss = set(missing)
    for a in acks:
        if a[0] in miss:
            f = fault_of(a[2], faults, starts)
            k = f"#{f['n']} {f['kind']}" if f else "before the first fault"
            lost_by[k] = lost_by.get(k, 0) + 1
    res["lost_by_fault"] = lost_by
    res["timelines"], split, multi = split_brain(acks, args.skew)
    res["split_brain_instants"] = len(split) + len(multi)
    res["split_brain_examples"] = split[:20]
    res["timelines_with_two_servers"] = multi
    fen = fencing(faults, acks, names, ttl)
    res["fencing"] = fen
    res["fencing_violations"] = sum(r["late_acks"] for r in fen)
    gaps = gaps_of(acks, args.gap)
    res["gap_threshold_s"] = args.gap
    res["gaps"] = len(gaps)
    res["unavailability"] = []
    for a, b in gaps[:20]:
        f = cause_of((a, b), faults)
        res["unavailability"].append({
            "from_s": round(a, 3), "to_s": round(b, 3), "gap_s": round(b - a, 3),
            "fault": f and f"#{f['n']} {f['kind']} {f.get('target')}",
            "cause": f and f["kind"]})
    per_kind = {}
    for f in faults:
        fg = [b - a for a, b in gaps if a <= f.get("t_recovered", a) and b >= f["t_start"]]
        f["longest_gap_s"] = round(max(fg), 3) if fg else 0.0
        errs = {}
        for c in clients:
            with c.lock:
                e = sum(1 for t, _, _ in c.errors if f["t_start"] <= t <= f.get("t_recovered", t))
            if e:
                errs[f"c{c.cid} via {c.node.name}"] = e
        f["client_errors"] = errs
        k = per_kind.setdefault(f["kind"], {"n": 0, "failed": 0, "not_rejoined": 0,
                                            "max_gap_s": 0.0, "lost": 0})
        k["n"] += 1
        k["failed"] += 0 if f["ok"] else 1
        k["not_rejoined"] += 0 if f.get("rejoined", True) else 1
        k["max_gap_s"] = max(k["max_gap_s"], f["longest_gap_s"])
        k["lost"] += lost_by.get(f"#{f['n']} {f['kind']}", 0)
    res["by_kind"] = per_kind
    res["clients"] = [{"id": c.cid, "via": c.node.name, "address": f"{c.host}:{c.port}",
                       "acks": len(c.acks), "in_doubt": len(c.doubt), "errors": len(c.errors),
                       "fatal": c.fatal} for c in clients]
    reasons = []
    if sync and res["lost"]:
        reasons.append(f"{res['lost']} acknowledged writes lost in synchronous mode")
    if res["split_brain_instants"]:
        reasons.append(f"{res['split_brain_instants']} split-brain instants")
    if res["fencing_violations"]:
        reasons.append(f"{res['fencing_violations']} writes acknowledged by a partitioned leader "
                       f"more than ttl after the partition")
    if not res["final"]["healthy"]:
        reasons.append(f"not healthy at the end: {res['final']['detail']}")
    if not res["final"]["one_leader"]:
        reasons.append(f"not exactly one leader at the end: writable "
                       f"{res['final']['writable_nodes']}, leader key "
                       f"{res['final']['leader_key']}")
    if res["final"]["agents_running"] != len(cl.nodes):
        reasons.append(f"{res['final']['agents_running']}/{len(cl.nodes)} agents running")
    for f in faults:
        if not f["ok"]:
            reasons.append(f"fault #{f['n']} {f['kind']} on {f.get('target')}: "
                           f"{f.get('error', '')} {'; '.join(f.get('notes', []))}"[:400])
        elif not f.get("rejoined", True):
            reasons.append(f"fault #{f['n']} {f['kind']} on {f.get('target')}: a node did not "
                           f"rejoin by itself: {'; '.join(f.get('notes', []))}"[:400])
    fatal = [c for c in clients if c.fatal]
    if fatal:
        reasons.append(f"client threads died: {[c.fatal for c in fatal]}")
    res["fail_reasons"] = reasons
    res["pass"] = not reasons
    return res, acks


def selftest():
    """The checker's rules on a made-up history that breaks each of them once (run.py runs this
    before a fault run: a checker that cannot fail would make the run meaningless)."""
    a, b = "10.0.0.11:5432", "10.0.0.12:5432"
    acks = [(1, 0.0, 0.1, a, 1), (2, 1.0, 1.1, a, 1), (3, 10.0, 10.1, b, 2),
            (4, 11.0, 11.1, a, 1),  # old timeline accepted after the new one did: split brain
            (5, 12.0, 12.1, b, 3), (6, 12.5, 12.6, a, 3)]  # two servers on timeline 3
    _, split, multi = split_brain(acks, 0.005)
    assert [s["id"] for s in split] == [4] and multi == [3], (split, multi)
    faults = [{"n": 1, "kind": "partition_leader", "target": "n1", "t_start": 0.5,
               "partition": {"was_leader": True, "t_heal": 12.0}}]
    fen = fencing(faults, acks, {a: "n1", b: "n2"}, 5)
    assert fen[0]["late_acks"] == 1 and fen[0]["acks_during_partition"] == 2, fen
    gaps = gaps_of(acks, 0.3)
    assert round(gaps[0][1] - gaps[0][0], 3) == 9.0, gaps
    clean = [(1, 0.0, 0.1, a, 1), (2, 5.0, 5.1, b, 2), (3, 5.2, 5.3, b, 2)]
    assert split_brain(clean, 0.005)[1:] == ([], [])
    return True


if __name__ == "__main__":
    print("checker self-test:", "ok" if selftest() else "FAILED")
