#!/usr/bin/env python3
"""Fault-injection suite (issue 9, "Fault suite").

A three-member etcd cluster and three `pgwarden run` nodes managing real PostgreSQL 15 (ttl 5 s,
loop_wait 1 s), by default each in its own network namespace (netns.py, nsnodes.py: one
namespace per node and per etcd member, veth pairs to a private bridge; --no-netns keeps the old
loopback layout, without partitions). Client threads in the root namespace write through the
forwarder's read-write address of different nodes; every INSERT carries a unique id (client *
10^9 + sequence) and returns the server's address:port and WAL timeline from the same
transaction. A nemesis injects random faults one at a time, each followed by a repair and a wait
for a healthy cluster:

  pg_kill           SIGKILL of the leader's postmaster
  agent_kill        SIGKILL of every pgwarden process of a node (not PostgreSQL), then restart
  node_kill         SIGKILL of the agent and its PostgreSQL together, then restart
  agent_stop        SIGSTOP of every pgwarden process of a node for ttl + 3 s, then SIGCONT
  etcd_kill         SIGKILL of a random etcd member (not the leader), restart after 2-5 s
  etcd_leader_kill  SIGKILL of the etcd leader, restart after 2-5 s
  etcd_quorum       two of three etcd members stopped for ttl + 4 s, then restarted
  partition_leader  the leader cut off from etcd and the other nodes (clients still reach it) for
                    at least ttl + 3 s and until another node holds the leader key, then healed
  partition_replica a replica cut off the same way for ttl + 3 s
  partition_full    a node (the leader half of the time) cut off from everything, the workload
                    included (its veth down), as partition_leader when it was the leader
  partition_etcd    a node (the leader half of the time) cut off from the etcd members only

Modes: --mode sync (synchronous_mode on; no acknowledged write may be lost) or --mode async
(synchronous_mode off; the lost acknowledged writes are the measured figure). --delay-ms D delays
the traffic between nodes by D ms each way (tc netem, or a userspace relay where the kernel has
no netem: see netns.py), which opens asynchronous mode's loss window.

Checker (checker.py): lost writes, split brain, fencing of partitioned leaders, every node
rejoined by itself, one leader at the end. The run fails (exit 1) on any of these (lost writes
only in synchronous mode), on a fault whose recovery timed out (the reason is printed and in the
JSON) and on a harness error.

Run as root from the repo root:
  /usr/bin/python3 tests/faults/run.py [--faults 100] [--seed N] [--kinds all|all-fast|leader|
      k1,k2] [--mode sync|async] [--delay-ms D] [--no-netns] [--out build/results/faults.json]
Writes OUT (faults.json), its .txt and .svg, and the logs under OUT-logs/ ("faults-logs/").
The .txt/.json also list the lost writes per mode of every faults*.json next to OUT.
"""
import argparse
import json
import os
import random
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

import checker  # noqa: E402
import netns  # noqa: E402
from nsnodes import (NsCluster, NsEtcdCluster, PG_PORT, RELAY_PORT,  # noqa: E402
                     rw_address)
import report  # noqa: E402

TTL = 5
KINDS = ("pg_kill", "agent_kill", "node_kill", "agent_stop", "etcd_kill", "etcd_leader_kill",
         "etcd_quorum", "partition_leader", "partition_replica", "partition_full",
         "partition_etcd")
PARTITIONS = {"partition_leader": "peers", "partition_replica": "peers",
              "partition_full": "full", "partition_etcd": "etcd"}
GROUPS = {"all": KINDS, "all-fast": KINDS,
          "leader": ("pg_kill", "node_kill", "partition_leader", "partition_full")}
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

INSERT = (f"INSERT INTO {H.TABLE} (id, member) VALUES (%s, %s) RETURNING "
          f"host(inet_server_addr()) || ':' || inet_server_port(), "
          f"('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")


class Client(threading.Thread):
    """Writes one row every `interval` s through the rw forwarder address of one node.
    acks: (id, t_send, t_ack, server "addr:port", timeline); doubt: (id, t_send, t_fail, why) of
    INSERTs whose outcome is unknown (error, or a commit that came with PostgreSQL's "might not
    have been replicated" warning)."""

    def __init__(self, cid, node, interval, stmt_timeout_ms):
        super().__init__(daemon=True, name=f"client{cid}")
        self.cid, self.node, self.interval = cid, node, interval
        self.stmt_timeout_ms = stmt_timeout_ms
        self.host, self.port = rw_address(node)
        self.acks, self.doubt, self.errors = [], [], []
        self.seq = 0
        self.conn = None
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.fatal = None

    def _connect(self):
        try:
            self.conn = psycopg2.connect(
                host=self.host, port=self.port, user="postgres", dbname="postgres",
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
                            server, tli = cur.fetchone()
                        ta = now()
                        notices = list(self.conn.notices)
                        del self.conn.notices[:]
                        with self.lock:
                            if any(H.SYNC_WARNING.search(n) for n in notices):
                                self.doubt.append((rid, ts, ta, "sync wait cancelled"))
                            else:
                                self.acks.append((rid, ts, ta, server, tli))
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
    def __init__(self, cl, ec, rng, args, topo):
        self.cl, self.ec, self.rng, self.args, self.topo = cl, ec, rng, args, topo
        self.info = None  # extra fields of the last fault (partitions)

    def pick_node(self):
        """The leader half of the time, else a random node."""
        name = self.cl.leader_name()
        if name and self.rng.random() < 0.5:
            return self.cl.node(name)
        return self.rng.choice(self.cl.nodes)

    def partition(self, kind):
        """Cuts a node off, holds, heals; returns (target, detail, t_heal). A partitioned leader
        is held cut off at least ttl + 3 s and until another node holds the leader key (at
        most ttl + 20 s; a RuntimeError after the heal if none did)."""
        cl, mode = self.cl, PARTITIONS[kind]
        leader = cl.leader_name()
        if kind == "partition_leader":
            node = cl.node(leader) if leader else None
            if node is None:
                raise RuntimeError("no leader to partition")
        elif kind == "partition_replica":
            node = self.rng.choice([n for n in cl.nodes if n.name != leader])
        else:
            node = self.pick_node()
        was_leader = node.name == leader
        t0 = now()
        self.topo.partition(int(node.name[1:]), mode)
        info = {"mode": mode, "was_leader": was_leader, "t_cut": round(t0, 3)}
        self.info = info
        new_at = new_name = None
        try:
            while True:
                if was_leader and new_at is None:
                    ln = cl.leader_name()
                    if ln and ln != node.name:
                        new_at, new_name = now(), ln
                t = now()
                if t - t0 >= TTL + 3 and (not was_leader or new_at is not None):
                    break
                if t - t0 >= TTL + 20:
                    break
                time.sleep(0.2)
        finally:
            info["t_heal"] = now()
            self.topo.heal()
        if was_leader:
            info["new_leader"] = new_name
            info["new_leader_after_s"] = None if new_at is None else round(new_at - t0, 3)
            if new_at is None:
                raise RuntimeError(f"no other node took the leader key within {TTL + 20}s of "
                                   f"partitioning the leader {node.name} ({mode})")
        return node.name, f"{mode} partition {info['t_heal'] - t0:.1f}s", info["t_heal"]

    def inject(self, kind):
        """Injects and repairs one fault; returns (target, detail, t_repair or None)."""
        cl, ec = self.cl, self.ec
        self.info = None
        if kind in PARTITIONS:
            return self.partition(kind)
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
    """Healthy cluster (H.Cluster.healthy), in sync mode the sync standby engaged, writes
    flowing. Returns False if a node did not rejoin by itself within --rejoin-timeout (the
    harness then re-clones what does not stream; the reason is in notes)."""
    rejoined = True
    state = {"why": ""}

    def ok():
        good, state["why"] = cl.healthy()
        return good
    try:
        C.wait_until(ok, args.rejoin_timeout, "a healthy cluster", 0.5)
    except C.Timeout:
        rejoined = False
        notes.append(f"not healthy {args.rejoin_timeout}s after the fault: {state['why']}")
        log("  " + notes[-1])
        cl.heal(10, args.heal_timeout, notes)  # re-clones what does not stream (noted)
    if args.mode == "sync":
        sd = {"d": ""}

        def engaged():
            good, sd["d"] = H.sync_engaged(cl)
            return good
        try:
            C.wait_until(engaged, args.sync_timeout, "synchronous standby engaged", 0.5)
        except C.Timeout:
            notes.append(f"sync standby not engaged {args.sync_timeout}s after recovery: "
                         f"{sd['d']}")
            log("  " + notes[-1])
    try:
        wait_writes(clients, 60)
    except C.Timeout:
        errs = [e for c in clients for e in c.errors[-2:]]
        raise C.Timeout(f"no write acknowledged within 60s of a healthy cluster; last client "
                        f"errors {errs}") from None
    return rejoined


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


def loss_by_mode(out, result):
    """Lost acknowledged writes of this run and of every other faults*.json next to it."""
    rows = []
    files = set(out.parent.glob("faults*.json")) | {out}  # this run's file is not written yet
    for f in sorted(files):
        if f.resolve() == out.resolve():
            r = result
        else:
            try:
                r = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
        ck = r.get("check") or {}
        if "lost" not in ck:
            continue
        rows.append({"file": f.name, "mode": r.get("mode", "sync"),
                     "delay_ms": r.get("delay_ms", 0), "delay_method": r.get("delay_method"),
                     "netns": r.get("netns", False), "faults": len(r.get("faults", [])),
                     "kinds": r.get("kinds"), "acknowledged": ck.get("acknowledged"),
                     "lost": ck.get("lost"), "pass": ck.get("pass"),
                     "started": r.get("started"), "seed": r.get("seed")})
    return rows


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faults", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--clients", type=int, default=3, help="writer threads (2-4)")
    ap.add_argument("--interval", type=float, default=0.05, help="s between writes per client")
    ap.add_argument("--kinds", default="all",
                    help=f"comma list among {','.join(KINDS)}, or a group: {','.join(GROUPS)} "
                         "(all-fast: all kinds, 1 s pause between faults)")
    ap.add_argument("--mode", choices=("sync", "async"), default="sync")
    ap.add_argument("--delay-ms", type=float, default=0,
                    help="delay of the traffic between nodes, each way (needs the namespaces)")
    ap.add_argument("--delay-method", choices=("auto", "netem", "relay"), default="auto")
    ap.add_argument("--no-netns", action="store_true",
                    help="everything on 127.0.0.1 (no partitions, no delay)")
    ap.add_argument("--pause", type=float, default=None,
                    help="s of steady writing between faults (default 2, all-fast 1)")
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
    if args.kinds in GROUPS:
        args.kind_list = list(GROUPS[args.kinds])
        if args.pause is None and args.kinds == "all-fast":
            args.pause = 1.0
    else:
        args.kind_list = [k for k in args.kinds.split(",") if k]
    if args.pause is None:
        args.pause = 2.0
    if any(k not in KINDS for k in args.kind_list):
        ap.error(f"kinds among {KINDS} or a group {tuple(GROUPS)}")
    if args.no_netns:
        if args.delay_ms:
            ap.error("--delay-ms needs the namespaces (drop --no-netns)")
        if args.kinds in GROUPS:
            args.kind_list = [k for k in args.kind_list if k not in PARTITIONS]
        elif any(k in PARTITIONS for k in args.kind_list):
            ap.error("partitions need the namespaces (drop --no-netns)")
    if not args.kind_list:
        ap.error("no fault kind left")
    return args


def start_cluster(args, work, binp, topo, logs_dir, result):
    """etcd members, delay, three nodes; returns (etcd cluster, Etcd helper, Cluster)."""
    if topo is None:
        ec = C.EtcdCluster(work / "etcd", 3).start()
    else:
        ec = NsEtcdCluster(work / "etcd", topo).start()
    etcd = Etcd(ec)
    relay = False
    if args.delay_ms:
        method = args.delay_method
        if method in ("auto", "netem") and topo.try_netem(args.delay_ms):
            method = "netem"
        elif method == "netem":
            raise RuntimeError("--delay-method netem: the kernel refused the netem qdisc")
        else:
            method = "relay"
            topo.start_relays(args.delay_ms, RELAY_PORT, PG_PORT, C.RUN_UID, C.RUN_GID,
                              logs_dir, C.Proc, C.base_env())
            relay = True
        result["delay_method"] = method
        log(f"delay between nodes: {args.delay_ms} ms each way ({method})")
    if topo is None:
        cl = H.Cluster(etcd, work / "nodes", "faults", binp, TTL)
    else:
        cl = NsCluster(etcd, work / "nodes", "faults", binp, TTL, topo=topo, relay=relay)
    cl.ha["ha"].update({"ttl": f"{TTL}s", "loop_wait": "1s", "retry_timeout": "2s",
                        "fencing_margin": "2s"})
    cl.ha["etcd"] = {"request_timeout": "1s"}
    return ec, etcd, cl


def run_faults(args, cl, ec, etcd, topo, rng, clients, faults, samples, halt):
    log("starting 3 pgwarden nodes")
    cl.start(300)
    raw = cl.kv("config")
    cfg = json.loads(raw) if raw else {}
    cfg["synchronous_mode"] = args.mode == "sync"
    etcd.put(cl.prefix + "config", json.dumps(cfg))
    if args.mode == "sync":
        sd = {"d": ""}

        def engaged():
            good, sd["d"] = H.sync_engaged(cl)
            return good
        C.wait_until(engaged, 120, "synchronous mode engaged", 0.5)
        log(f"sync mode engaged: {cl.kv('sync')}")
    else:
        C.wait_until(lambda: cl.healthy()[0], 120, "a healthy asynchronous cluster", 0.5)

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
    nem = Nemesis(cl, ec, rng, args, topo)
    plan = []
    while len(plan) < args.faults:  # shuffled rounds of every kind
        cyc = list(args.kind_list)
        rng.shuffle(cyc)
        plan += cyc
    plan = plan[:args.faults]
    for n, kind in enumerate(plan, 1):
        time.sleep(args.pause + rng.random())
        f = {"n": n, "kind": kind, "leader_before": cl.leader_name(), "t_start": now(),
             "ok": True, "rejoined": True, "notes": []}
        faults.append(f)
        try:
            try:
                f["target"], f["detail"], t_heal = nem.inject(kind)
            finally:
                if nem.info is not None:
                    f["partition"] = nem.info
            f["t_repair"] = t_heal if t_heal is not None else now()
            f["rejoined"] = wait_recovered(cl, clients, args, f["notes"])
        except Exception as e:
            f["ok"] = False
            f.setdefault("target", "?")
            f["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log(f"  fault {n} {kind}: {f['error']}")
            log("  " + str(e)[-1500:])
            try:  # bring everything back before going on
                if topo is not None:
                    topo.heal()
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


def main():
    args = parse_args()
    checker.selftest()  # raises if a rule of the checker would not catch its violation
    if os.geteuid() != 0:
        sys.exit("run as root (namespaces; the servers run as postgres)")
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
              "loop_wait_s": 1, "mode": args.mode, "synchronous_mode": args.mode == "sync",
              "delay_ms": args.delay_ms, "delay_method": None, "netns": not args.no_netns,
              "kinds": args.kind_list, "clients": args.clients,
              "command": " ".join([sys.executable, *sys.argv]),
              "binary_sha256": H.file_sha256(args.bin),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "load_before": os.getloadavg(),
              "not_covered": ["PostgreSQL timeline history files (split brain is checked from "
                              "the workload's (server, timeline) per acknowledged write)",
                              "one-way partitions"],
              "faults": []}
    ec = cl = topo = None
    clients = []
    faults = result["faults"]
    samples = []  # (t, leader name or None) every 0.5 s
    halt = threading.Event()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    t_run = time.monotonic()
    try:
        if not args.no_netns:
            topo = netns.Topology(log=log)
            topo.create()
            result["topology"] = {"id": topo.id, "net": f"{topo.net}.0/24",
                                  "namespaces": list(topo.namespaces)}
        log(f"seed {seed}; mode {args.mode}; starting 3 etcd members")
        ec, etcd, cl = start_cluster(args, work, binp, topo, logs_dir, result)
        run_faults(args, cl, ec, etcd, topo, rng, clients, faults, samples, halt)
    except KeyboardInterrupt:
        log("interrupted")
        result["interrupted"] = True
    except Exception as e:
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for c in clients:
            c.stop()
        halt.set()
        if topo is not None:
            topo.heal()
        if cl is not None and cl.nodes and "error" not in result:
            try:
                res, acks = checker.check(cl, clients, faults, args, TTL)
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
        if topo is not None:
            topo.destroy()
        if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
        result["duration_s"] = round(time.monotonic() - t_run, 1)
        result["load_after"] = os.getloadavg()
        result["loss_by_mode"] = loss_by_mode(out, result)
        H.write_json(out, result)
        txt = report.summary(result)
        out.with_suffix(".txt").write_text(txt)
        print("\n" + txt)
        print(f"written {out}, {out.with_suffix('.txt')}, {out.with_suffix('.svg')}, {logs_dir}/")
    ck = result.get("check") or {}
    sys.exit(0 if ck.get("pass") else 1)


if __name__ == "__main__":
    main()
