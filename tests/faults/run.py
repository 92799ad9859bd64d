#!/usr/bin/env python3
"""Fault-injection suite (issue 9, "Fault suite"), first version.

A three-member etcd cluster and three `pgwarden run` nodes managing real PostgreSQL 15 (ttl 5 s,
loop_wait 1 s) in synchronous mode. Client threads write through the forwarder's read-write port
of different nodes; every INSERT carries a unique id (client * 10^9 + sequence) and returns
inet_server_port() and the server's WAL timeline from the same transaction. A nemesis injects
random faults one at a time, each followed by a repair and a wait for a healthy cluster:

  pg_kill          SIGKILL of the leader's postmaster
  agent_kill       SIGKILL of every pgwarden process of a node (not PostgreSQL), then restart
  node_kill        SIGKILL of the agent and its PostgreSQL together, then restart
  agent_stop       SIGSTOP of every pgwarden process of a node for ttl + 3 s, then SIGCONT
  etcd_kill        SIGKILL of a random etcd member (not the leader), restart after 2-5 s
  etcd_leader_kill SIGKILL of the etcd leader, restart after 2-5 s
  etcd_quorum      two of three etcd members stopped for ttl + 4 s, then restarted

Checker (after the run): every acknowledged id is on the final leader (0 lost in synchronous
mode); no split brain (an acknowledged write on timeline T that certainly started after a write on
a later timeline T' > T was acknowledged, or two server ports on one timeline); every node
rejoined (3 agents, replicas streaming on the leader's timeline, sync standby engaged); one
leader at the end.

Not yet: network partitions (namespaces + veth), tc netem delays and the asynchronous-mode loss
measurement.

Run as root from the repo root:  /usr/bin/python3 tests/faults/run.py [--faults 100] [--seed N]
Writes build/results/faults.json, faults.txt, faults.svg and the logs under faults-logs/.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/integration"))
sys.path.insert(0, str(REPO / "tests/bench"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import conftest as C  # noqa: E402
import ha_figures as H  # noqa: E402  (Cluster, postmaster_pid, query, healthy, sync_engaged ...)
import psycopg2  # noqa: E402

import report  # noqa: E402

TTL = 5
KINDS = ("pg_kill", "agent_kill", "node_kill", "agent_stop", "etcd_kill", "etcd_leader_kill",
         "etcd_quorum")
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} +{now():7.1f}s] {msg}", flush=True)


class Etcd:
    """The JSON-gateway helpers of conftest.EtcdMember, tried on every running member."""

    def __init__(self, ec):
        self.ec = ec

    @property
    def url(self):
        return self.ec.endpoints

    def _try(self, fn):
        last = None
        for m in self.ec.running():
            try:
                return fn(m)
            except (OSError, AssertionError, ValueError) as e:
                last = e
        raise OSError(f"no etcd member answered: {last}")

    def get(self, key):
        return self._try(lambda m: m.get(key))

    def get_prefix(self, prefix):
        return self._try(lambda m: m.get_prefix(prefix))

    def put(self, key, value):
        return self._try(lambda m: m.put(key, value))

    def delete(self, key, prefix=False):
        return self._try(lambda m: m.delete(key, prefix))


# --------------------------------------------------------------------------------------------
# workload
# --------------------------------------------------------------------------------------------

INSERT = (f"INSERT INTO {H.TABLE} (id, member) VALUES (%s, %s) RETURNING inet_server_port(), "
          f"('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")


class Client(threading.Thread):
    """Writes one row every `interval` s through the rw forwarder port of one node.
    acks: (id, t_send, t_ack, server_port, timeline); doubt: (id, t_send, t_fail, why) of
    INSERTs whose outcome is unknown (error, or a commit that came with PostgreSQL's "might not
    have been replicated" warning)."""

    def __init__(self, cid, node, interval, stmt_timeout_ms):
        super().__init__(daemon=True, name=f"client{cid}")
        self.cid, self.node, self.interval = cid, node, interval
        self.stmt_timeout_ms = stmt_timeout_ms
        self.port = node.ports["rw"]
        self.acks, self.doubt, self.errors = [], [], []
        self.seq = 0
        self.conn = None
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.fatal = None

    def _connect(self):
        try:
            self.conn = psycopg2.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                password=H.SU_PW, connect_timeout=3, application_name=f"faults-c{self.cid}",
                keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=3,
                tcp_user_timeout=5000, options=f"-c statement_timeout={self.stmt_timeout_ms}")
            self.conn.autocommit = True
            return True
        except Exception as e:
            self._err("connect", e)
            self.conn = None
            return False

    def _err(self, kind, e):
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        with self.lock:
            self.errors.append((now(), kind, msg))

    def run(self):
        try:
            nxt = time.monotonic()
            while not self.halt.is_set():
                if self.conn is not None or self._connect():
                    self.seq += 1
                    rid = self.cid * 10**9 + self.seq
                    ts = now()
                    try:
                        with self.conn.cursor() as cur:
                            cur.execute(INSERT, (rid, f"c{self.cid}"))
                            port, tli = cur.fetchone()
                        ta = now()
                        notices = list(self.conn.notices)
                        del self.conn.notices[:]
                        with self.lock:
                            if any(H.SYNC_WARNING.search(n) for n in notices):
                                self.doubt.append((rid, ts, ta, "sync wait cancelled"))
                            else:
                                self.acks.append((rid, ts, ta, port, tli))
                    except Exception as e:
                        with self.lock:
                            self.doubt.append((rid, ts, now(), type(e).__name__))
                        self._err("insert", e)
                        try:
                            self.conn.close()
                        except Exception:
                            pass
                        self.conn = None
                nxt += self.interval
                d = nxt - time.monotonic()
                if d > 0:
                    time.sleep(d)
                else:
                    nxt = time.monotonic()
        except Exception as e:
            self.fatal = f"{type(e).__name__}: {e}"
            traceback.print_exc()

    def stop(self):
        self.halt.set()
        self.join(60)
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass


def last_ack_time(clients):
    t = None
    for c in clients:
        with c.lock:
            if c.acks and (t is None or c.acks[-1][2] > t):
                t = c.acks[-1][2]
    return t


def wait_writes(clients, timeout):
    """Until some client acknowledged a write in the last second."""
    C.wait_until(lambda: (last_ack_time(clients) or -9) > now() - 1.0, timeout,
                 "writes flowing again", 0.1)


# --------------------------------------------------------------------------------------------
# processes of a node
# --------------------------------------------------------------------------------------------

def pg_pids(node):
    pm = H.postmaster_pid(node)
    return ({pm} | C.descendants_of([pm])) if pm else set()


def agent_pids(node):
    """Every live pgwarden process of the node (the supervisor and its children), not
    PostgreSQL and not processes PostgreSQL started."""
    pids = set()
    if node.running():
        pids |= {node.pid} | C.descendants_of([node.pid])
    pids |= C.pids_with_env(C.TEST_ID_ENV, node.tag)
    pids -= pg_pids(node)
    pids.discard(os.getpid())
    return {p for p in pids if C.proc_comm(p) not in (None, "postgres")}


def sigkill_agent(node):
    pids = agent_pids(node)
    idents = [C.proc_ident(p) for p in pids]
    for i in idents:
        if i:
            C.kill_ident(i)
    node.proc.popen.wait(10)
    C.wait_until(lambda: not any(i and C.ident_alive(i) for i in idents), 10,
                 f"agent processes of {node.name} to die")
    return sorted(pids)


def restart_agent(node):
    node.start()
    node.wait_ready(90)


# --------------------------------------------------------------------------------------------
# the nemesis
# --------------------------------------------------------------------------------------------

class Nemesis:
    def __init__(self, cl, ec, rng, args):
        self.cl, self.ec, self.rng, self.args = cl, ec, rng, args

    def pick_node(self):
        """The leader half of the time, else a random node."""
        name = self.cl.leader_name()
        if name and self.rng.random() < 0.5:
            return self.cl.node(name)
        return self.rng.choice(self.cl.nodes)

    def inject(self, kind):
        """Injects and repairs one fault; returns (target, detail)."""
        cl, ec = self.cl, self.ec
        if kind == "pg_kill":
            node = cl.node(cl.leader_name())
            if node is None:
                raise RuntimeError("no leader to kill")
            pm = H.postmaster_pid(node)
            if pm is None:
                raise RuntimeError(f"no postmaster on leader {node.name}")
            os.kill(pm, signal.SIGKILL)
            return node.name, f"postmaster {pm}", None
        if kind == "agent_kill":
            node = self.pick_node()
            pids = sigkill_agent(node)
            time.sleep(self.rng.uniform(1, 4))
            restart_agent(node)
            return node.name, f"pids {pids}", None
        if kind == "node_kill":
            node = self.pick_node()
            H.Cluster.kill_node(cl, node)
            time.sleep(self.rng.uniform(1, 4))
            restart_agent(node)
            return node.name, "agent + PostgreSQL", None
        if kind == "agent_stop":
            node = self.pick_node()
            pids = sorted(agent_pids(node))
            for p in pids:
                try:
                    os.kill(p, signal.SIGSTOP)
                except ProcessLookupError:
                    pass
            time.sleep(TTL + 3)
            t_cont = now()
            for p in pids:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            return node.name, f"stopped {TTL + 3}s: pids {pids}", t_cont
        if kind in ("etcd_kill", "etcd_leader_kill"):
            li = ec.leader_index()
            if kind == "etcd_leader_kill":
                if li is None:
                    raise RuntimeError("no etcd leader")
                i = li
            else:
                i = self.rng.choice([j for j in range(3) if j != li])
            ec.stop_member(i, signal.SIGKILL, 10)
            time.sleep(self.rng.uniform(2, 5))
            t_back = now()
            ec.start_member(i, 60)
            return ec[i].name, f"etcd leader was {ec[li].name if li is not None else None}", t_back
        if kind == "etcd_quorum":
            idx = self.rng.sample(range(3), 2)
            for i in idx:
                ec.stop_member(i, signal.SIGTERM, 20)
            time.sleep(TTL + 4)
            t_back = now()
            for i in idx:
                ec[i].state = "existing"
                ec[i].start()
            for i in idx:
                ec[i].wait_ready(60)
            return ",".join(ec[i].name for i in idx), f"quorum lost {TTL + 4}s", t_back
        raise ValueError(kind)


def wait_recovered(cl, clients, args, notes):
    """Healthy cluster (H.Cluster.healthy), sync standby engaged, writes flowing. A replica not
    streaming after --rejoin-timeout is re-cloned (noted: the agent failed to rejoin it)."""
    state = {"why": ""}

    def ok():
        good, state["why"] = cl.healthy()
        return good
    try:
        C.wait_until(ok, args.rejoin_timeout, "a healthy cluster", 0.5)
    except C.Timeout:
        notes.append(f"not healthy {args.rejoin_timeout}s after the fault: {state['why']}")
        log("  " + notes[-1])
        cl.heal(10, args.heal_timeout, notes)  # re-clones what does not stream (noted)
    sd = {"d": ""}

    def engaged():
        good, sd["d"] = H.sync_engaged(cl)
        return good
    try:
        C.wait_until(engaged, args.sync_timeout, "synchronous standby engaged", 0.5)
    except C.Timeout:
        notes.append(f"sync standby not engaged {args.sync_timeout}s after recovery: {sd['d']}")
        log("  " + notes[-1])
    wait_writes(clients, 60)


def agent_warnings(cl):
    """{node: {"level role: msg": count}} over the whole log file (every restart)."""
    out = {}
    for n in cl.nodes:
        cnt = {}
        try:
            text = Path(n.stderr_path).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            r = C.logfmt(line)
            if r and r.get("level", "").lower() in ("warn", "warning", "error", "fatal"):
                k = f"{r.get('level')} {r.get('role', '?')}: {r.get('msg')}"
                cnt[k] = cnt.get(k, 0) + 1
        out[n.name] = dict(sorted(cnt.items(), key=lambda kv: -kv[1]))
    return out


# --------------------------------------------------------------------------------------------
# checker
# --------------------------------------------------------------------------------------------

def check(cl, clients, faults, samples):
    acks = sorted((a for c in clients for a in c.acks), key=lambda a: a[2])
    doubt = [d for c in clients for d in c.doubt]
    res = {"acknowledged": len(acks), "in_doubt": len(doubt)}
    # final state
    ok, why = cl.healthy()
    prim = []
    for n in cl.nodes:
        r = H.try_query(n, "SELECT pg_is_in_recovery()")
        if r and r[0][0] is False:
            prim.append(n.name)
    sync_ok, sync_d = H.sync_engaged(cl)
    res["final"] = {"healthy": ok, "detail": why, "leader_key": cl.leader_name(),
                    "writable_nodes": prim, "one_leader": len(prim) == 1
                    and prim[0] == cl.leader_name(),
                    "agents_running": sum(1 for n in cl.nodes if n.running()),
                    "sync_engaged": sync_ok, "sync_detail": sync_d}
    # lost writes
    leader = cl.node(cl.leader_name())
    present = {r[0] for r in H.query(leader, f"SELECT id FROM {H.TABLE}", timeout=60)}
    acked = {a[0] for a in acks}
    missing = sorted(acked - present)
    res["lost"] = len(missing)
    res["lost_ids"] = missing[:50]
    res["in_doubt_present"] = sum(1 for d in doubt if d[0] in present)
    # split brain: a write acknowledged on timeline T whose INSERT was sent after a write on a
    # later timeline had been acknowledged (both servers accepting writes at the same instant);
    # and one server port per timeline
    by_tli = {}
    for a in acks:
        by_tli.setdefault(a[4], []).append(a)
    tlis = sorted(by_tli)
    ports_of = {t: sorted({a[3] for a in by_tli[t]}) for t in tlis}
    res["timelines"] = {str(t): {"ports": ports_of[t], "acks": len(by_tli[t]),
                                 "first_ack_s": round(min(a[2] for a in by_tli[t]), 3),
                                 "last_ack_s": round(max(a[2] for a in by_tli[t]), 3)}
                        for t in tlis}
    split = []
    later_min = float("inf")
    for t in reversed(tlis):
        for a in by_tli[t]:
            if a[1] > later_min + args_global.skew:
                split.append({"id": a[0], "timeline": t, "port": a[3], "sent_s": round(a[1], 3),
                              "acked_s": round(a[2], 3),
                              "later_timeline_acked_at_s": round(later_min, 3)})
        later_min = min(later_min, min(a[2] for a in by_tli[t]))
    multi = [t for t in tlis if len(ports_of[t]) > 1]
    res["split_brain_instants"] = len(split) + len(multi)
    res["split_brain_examples"] = split[:20]
    res["timelines_with_two_ports"] = multi
    # unavailability: gaps between consecutive acknowledged writes (any client)
    gaps = []
    for i in range(1, len(acks)):
        g = acks[i][2] - acks[i - 1][2]
        if g > args_global.gap:
            gaps.append((acks[i - 1][2], acks[i][2]))
    gaps.sort(key=lambda g: g[1] - g[0], reverse=True)

    def cause(g):
        best = None
        for f in faults:
            if f["t_start"] <= g[1] and f.get("t_recovered", g[1]) >= g[0] - 0.5:
                ov = min(g[1], f.get("t_recovered", g[1])) - max(g[0], f["t_start"])
                if best is None or ov > best[0]:
                    best = (ov, f)
        return best[1] if best else None
    res["gap_threshold_s"] = args_global.gap
    res["gaps"] = len(gaps)
    res["unavailability"] = [{"from_s": round(a, 3), "to_s": round(b, 3), "gap_s": round(b - a, 3),
                              "fault": (lambda f: f and f"#{f['n']} {f['kind']} {f['target']}")(
                                  cause((a, b)))} for a, b in gaps[:20]]
    per_kind = {}
    for f in faults:
        # the longest gap that overlaps this fault's window
        fg = [b - a for a, b in gaps if a <= f.get("t_recovered", a) and b >= f["t_start"]]
        f["longest_gap_s"] = round(max(fg), 3) if fg else 0.0
        k = per_kind.setdefault(f["kind"], {"n": 0, "failed": 0, "max_gap_s": 0.0})
        k["n"] += 1
        k["failed"] += 0 if f["ok"] else 1
        k["max_gap_s"] = max(k["max_gap_s"], f["longest_gap_s"])
    res["by_kind"] = per_kind
    res["clients"] = [{"id": c.cid, "via": c.node.name, "rw_port": c.port, "acks": len(c.acks),
                       "in_doubt": len(c.doubt), "errors": len(c.errors), "fatal": c.fatal}
                      for c in clients]
    res["pass"] = (res["lost"] == 0 and res["split_brain_instants"] == 0 and ok
                   and res["final"]["one_leader"] and all(f["ok"] for f in faults))
    return res, acks


args_global = None


def main():
    global args_global
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faults", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--clients", type=int, default=3, help="writer threads (2-4)")
    ap.add_argument("--interval", type=float, default=0.05, help="s between writes per client")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--pause", type=float, default=2.0, help="s of steady writing between faults")
    ap.add_argument("--rejoin-timeout", type=float, default=90)
    ap.add_argument("--heal-timeout", type=float, default=180)
    ap.add_argument("--sync-timeout", type=float, default=60)
    ap.add_argument("--gap", type=float, default=0.3,
                    help="a write gap longer than this (s, all clients together) is unavailability")
    ap.add_argument("--skew", type=float, default=0.005,
                    help="client-side timing allowance for the split-brain check (s)")
    ap.add_argument("--stmt-timeout-ms", type=int, default=20000)
    ap.add_argument("--bin", default=os.environ.get("PGWARDEN_BIN",
                                                    str(REPO / "build/dev/pgwarden")))
    ap.add_argument("--out", default=str(REPO / "build/results/faults.json"))
    args = ap.parse_args()
    args_global = args
    kinds = [k for k in args.kinds.split(",") if k]
    if any(k not in KINDS for k in kinds):
        ap.error(f"kinds among {KINDS}")
    if os.geteuid() != 0:
        sys.exit("run as root (the servers run as postgres, as in the integration tests)")
    if not Path(args.bin).is_file():
        sys.exit(f"{args.bin} missing: make build/dev/pgwarden")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    out = Path(args.out)
    logs_dir = out.with_name(out.stem + "-logs")
    shutil.rmtree(logs_dir, ignore_errors=True)
    logs_dir.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="pgw-faults-", dir="/tmp"))
    os.chmod(work, 0o755)
    C.chown_run_user(work)
    binp = work / "pgwarden"
    shutil.copy2(args.bin, binp)
    os.chmod(binp, 0o755)

    result = {"issue": 9, "seed": seed, "faults_requested": args.faults, "ttl_s": TTL,
              "loop_wait_s": 1, "synchronous_mode": True, "clients": args.clients,
              "command": " ".join([sys.executable, *sys.argv]),
              "binary_sha256": H.file_sha256(args.bin),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "not_covered": ["network partitions (namespaces + veth)", "tc netem delays",
                              "asynchronous-mode loss measurement",
                              "PostgreSQL timeline history files (split brain is checked from "
                              "the workload's (port, timeline) per acknowledged write)"],
              "faults": []}
    ec = cl = None
    clients = []
    faults = result["faults"]
    samples = []  # (t, leader name or None) every 0.5 s
    halt = threading.Event()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    since = {}
    try:
        log(f"seed {seed}; starting 3 etcd members")
        ec = C.EtcdCluster(work / "etcd", 3).start()
        etcd = Etcd(ec)
        cl = H.Cluster(etcd, work / "nodes", "faults", binp, TTL)
        cl.ha["ha"].update({"ttl": f"{TTL}s", "loop_wait": "1s", "retry_timeout": "2s",
                            "fencing_margin": "2s"})
        cl.ha["etcd"] = {"request_timeout": "1s"}
        log("starting 3 pgwarden nodes")
        cl.start(300)
        since = {n.name: n.mark() for n in cl.nodes}
        raw = cl.kv("config")
        cfg = json.loads(raw) if raw else {}
        cfg["synchronous_mode"] = True
        etcd.put(cl.prefix + "config", json.dumps(cfg))
        sd = {"d": ""}

        def engaged():
            good, sd["d"] = H.sync_engaged(cl)
            return good
        C.wait_until(engaged, 120, "synchronous mode engaged", 0.5)
        log(f"sync mode engaged: {cl.kv('sync')}")

        def monitor():
            while not halt.is_set():
                try:
                    name = etcd.get(cl.prefix + "leader")
                except Exception:
                    name = "?"
                samples.append((now(), name))
                halt.wait(0.5)
        threading.Thread(target=monitor, daemon=True).start()
        for i in range(max(1, min(args.clients, 8))):
            c = Client(i + 1, cl.nodes[i % 3], args.interval, args.stmt_timeout_ms)
            clients.append(c)
            c.start()
        wait_writes(clients, 60)
        nem = Nemesis(cl, ec, rng, args)
        plan = []
        while len(plan) < args.faults:  # shuffled rounds of every kind
            cyc = list(kinds)
            rng.shuffle(cyc)
            plan += cyc
        plan = plan[:args.faults]
        for n, kind in enumerate(plan, 1):
            time.sleep(args.pause + rng.random())
            f = {"n": n, "kind": kind, "leader_before": cl.leader_name(), "t_start": now(),
                 "ok": True, "notes": []}
            faults.append(f)
            try:
                f["target"], f["detail"], t_heal = nem.inject(kind)
                f["t_repair"] = t_heal if t_heal is not None else now()
                wait_recovered(cl, clients, args, f["notes"])
            except Exception as e:
                f["ok"] = False
                f.setdefault("target", "?")
                f["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                log(f"  fault {n} {kind}: {f['error']}")
                log("  " + str(e)[-1500:])
                try:  # bring everything back before giving up
                    for i, m in enumerate(ec.members):
                        if not m.proc.running():
                            ec.start_member(i, 60)
                    for nd in cl.nodes:
                        if not nd.running():
                            restart_agent(nd)
                    wait_recovered(cl, clients, args, f["notes"])
                except Exception as e2:
                    f["notes"].append(f"could not recover: {e2}"[:500])
                    f["t_recovered"] = now()
                    log(f"giving up: {f['notes'][-1]}")
                    break
            f["t_recovered"] = now()
            f["leader_after"] = cl.leader_name()
            log(f"fault {n}/{len(plan)} {kind} on {f['target']}: leader {f['leader_before']} -> "
                f"{f['leader_after']}, recovered in {f['t_recovered'] - f['t_start']:.1f}s, acked "
                f"{sum(len(c.acks) for c in clients)}" + (f" notes {f['notes']}" if f['notes'] else ""))
        time.sleep(3)
    except KeyboardInterrupt:
        log("interrupted")
        result["interrupted"] = True
    except Exception as e:
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
    finally:
        for c in clients:
            c.stop()
        halt.set()
        if cl is not None and cl.nodes and "error" not in result:
            try:
                res, acks = check(cl, clients, faults, samples)
                result["check"] = res
                result["leader_samples"] = [[round(t, 2), nm] for t, nm in samples]
                result["agent_warnings"] = agent_warnings(cl)
                report.write(result, acks, samples, out)
            except Exception as e:
                traceback.print_exc()
                result["check_error"] = f"{type(e).__name__}: {e}"
        if cl is not None:
            for p in cl.stop():
                log(f"cleanup: {p}")
            for n in cl.nodes:
                try:
                    shutil.copy(n.stderr_path, logs_dir / f"{n.name}.log")
                except OSError:
                    pass
        if ec is not None:
            for m in ec.members:
                try:
                    shutil.copy(m.proc.log_path, logs_dir / f"etcd-{m.name}.log")
                except (OSError, AttributeError):
                    pass
            ec.stop()
        if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
        H.write_json(out, result)
        txt = report.summary(result)
        out.with_suffix(".txt").write_text(txt)
        print("\n" + txt)
        print(f"written {out}, {out.with_suffix('.txt')}, {out.with_suffix('.svg')}, {logs_dir}/")
    ck = result.get("check") or {}
    sys.exit(0 if ck.get("pass") else 1)


if __name__ == "__main__":
    main()
