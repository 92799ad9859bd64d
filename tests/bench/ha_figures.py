#!/usr/bin/env python3
"""HA figures (issue 4), with a real etcd and three `pgwarden run` nodes managing real
PostgreSQL 15 servers (ttl=10s, loop_wait=1s), measured by a client that writes one row every
20 ms to the current leader:

  pgkill      write unavailability after the leader's postmaster is SIGKILLed (target <= 2 s);
  nodeloss    write unavailability after node loss: every pgwarden process of the leader node
              and its PostgreSQL (postmaster and backends) SIGKILLed (target <= ttl + 2 s);
  switchover  write unavailability during a switchover requested through the Patroni
              `failover` key {"leader": <current>, "member": <candidate>} (target <= 1 s);
  synckill    rows lost in synchronous mode: `synchronous_mode: true` written into the dynamic
              `config` key, then the leader's postmaster SIGKILLed N times in a row (a new
              leader awaited each time) while the writer commits; every row whose COMMIT
              returned success must be on the final leader (target: 0 lost in every run).

Unavailability of one round, from the writer's client-side timestamps (time.monotonic):
  gap     the longest interval between two consecutive successful commits around the fault
          (last commit before the outage -> first commit after it).  THIS IS THE HEADLINE.
  fault   from the fault (the kill, or the write of the failover key) to the commit that ends
          that gap.
The writer finds the leader through etcd (`<prefix>leader`, then the member's conn_url) and
checks pg_is_in_recovery() = false before writing (--locate probe: tries every node instead).

Each scenario runs on a fresh cluster (own scope on one etcd). After each round the cluster is
brought back to three healthy members (agent restarted if it was killed; a former primary not
streaming within --rejoin-timeout s is stopped, its data folder emptied and started again so
that it re-clones) before the next round. A round that times out is reported "not measured"
with the reason; the other scenarios still run. By default the next fault comes as soon as the
cluster is healthy again (often within ttl of the previous one); --min-interval 11 spaces them.

Not part of `make test`. Run as root from the repo root (processes run as postgres, like the
integration tests):
    /usr/bin/python3 tests/bench/ha_figures.py [--rounds 10] [--scenarios pgkill,nodeloss,...]
Writes build/results/ha_figures.json (and the node logs under build/results/ha_figures-logs/)
and prints a table. PGWARDEN_KEEP_TMP=1 keeps the temporary folder.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/integration"))

import conftest as C  # noqa: E402  (the integration harness: etcd, nodes, /proc helpers)

import psycopg2  # noqa: E402  (Debian: python3-psycopg2)

SU_PW = "bench-su-Pw1"
REPL_PW = "bench-repl-Pw2"
TABLE = "bench_writes"
SCENARIOS = ("pgkill", "nodeloss", "switchover", "synckill")
WRITE_INTERVAL = 0.020


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class NotMeasured(Exception):
    """A round (or a scenario) could not be measured; the message says why."""


class Factory:
    """Stands in for pytest's request object in conftest.Node."""


def wait_for(pred, timeout, desc, interval=0.1):
    try:
        return C.wait_until(pred, timeout, desc, interval)
    except C.Timeout as e:
        raise NotMeasured(str(e)) from None


def median(xs):
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------------------------------
# PostgreSQL and etcd access
# --------------------------------------------------------------------------------------------

def pg_port(node):
    return int(node.config["postgresql"]["listen"].rsplit(":", 1)[1])


def pg_host(node):
    """The host of [postgresql] listen (127.0.0.1 for a wildcard): a node in a network
    namespace (tests/faults) listens on its own address."""
    h = node.config["postgresql"]["listen"].rsplit(":", 1)[0].strip("[]")
    return "127.0.0.1" if h in ("", "*", "0.0.0.0", "::") else h


def connect(host, port, timeout=2, statement_timeout_ms=None):
    kw = dict(host=host, port=port, user="postgres", dbname="postgres", password=SU_PW,
              connect_timeout=max(1, int(timeout)), application_name="ha_figures",
              keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
              tcp_user_timeout=2000)
    if statement_timeout_ms:
        kw["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    conn = psycopg2.connect(**kw)
    conn.autocommit = True
    return conn


def query(node, sql, params=None, timeout=3):
    conn = connect(pg_host(node), pg_port(node), timeout, statement_timeout_ms=timeout * 1000)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
    finally:
        conn.close()


def try_query(node, sql, params=None, timeout=3):
    try:
        return query(node, sql, params, timeout)
    except Exception:
        return None


def postmaster_pid(node):
    try:
        pid = int(Path(node.data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    # the pid file of a killed postmaster stays behind: only a live postgres of this data dir
    if C.proc_comm(pid) == "postgres" and str(node.data_dir) in (C.proc_cmdline(pid) or "") \
            and C.pid_alive(pid):
        return pid
    return None


def parse_conn_url(url):
    m = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?(\[[^\]]+\]|[^:/?]+)(?::(\d+))?", url or "")
    if not m:
        return None
    return m.group(1).strip("[]"), int(m.group(2) or 5432)


class Cluster:
    """Three nodes of one scope on a shared etcd."""

    def __init__(self, etcd, base, scope, bin_path, ttl, log_level="info", nodes_n=3):
        self.etcd = etcd
        self.base = C.make_dir(base, 0o755)
        self.scope = scope
        self.bin = bin_path
        self.ttl = ttl
        self.ha = {
            "ha": {"manage_postgresql": "on", "ttl": f"{ttl}s", "loop_wait": "1s",
                   "retry_timeout": "3s", "fencing_margin": "2s"},
            "postgresql": {"bin_dir": str(C.PG_BINDIR), "superuser_password": SU_PW,
                           "replication_password": REPL_PW},
            "log": {"level": log_level},
        }
        self.nodes = []
        self.n = nodes_n
        self.prefix = None
        self.last_fault = None  # monotonic time of the last fault
        self.led_at = {}        # member -> monotonic time it last became leader

    # ---- lifecycle ----
    def _make_node(self, name):
        node_dir = C.make_dir(self.base / name, 0o755)
        C.make_dir(node_dir / "state")
        C.make_dir(node_dir / "pgdata")
        cfg = C.merge_config(C.default_node_config(node_dir, name, self.etcd.url, self.scope),
                             self.ha)
        node = C.Node(Factory(), name, node_dir, cfg, [str(self.bin)], None)
        for attempt in range(5):  # fresh ports if one was taken meanwhile (as conftest does)
            node.start()
            try:
                node.wait_ready(60)
                return node
            except AssertionError:
                if node.running() or not C.IN_USE_RE.search(node.log()) or attempt == 4:
                    raise
                fresh = C.default_node_config(node_dir, name, self.etcd.url, self.scope)
                for s, k in (("proxy", "rw_listen"), ("proxy", "ro_listen"), ("web", "listen"),
                             ("postgresql", "listen")):
                    node.config[s][k] = fresh[s][k]
        return node

    def start(self, timeout):
        for i in range(self.n):
            self.nodes.append(self._make_node(f"n{i + 1}"))
        e = self.nodes[0].config["etcd"]
        self.prefix = f"/{e.get('namespace', 'service').strip('/')}/{e['scope']}/"
        leader = wait_for(lambda: self.writable_leader(), timeout, "a first writable leader")
        query(leader, f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, "
                      f"ts timestamptz NOT NULL DEFAULT clock_timestamp(), member text)")
        wait_for(lambda: self.healthy()[0], timeout, "three healthy members after bootstrap", 0.5)

    def stop(self):
        problems = []
        for n in reversed(self.nodes):
            try:
                problems += n.cleanup()
            except Exception as e:  # keep stopping the others
                problems.append(f"{n.name}: cleanup failed: {e}")
        return problems

    def node(self, name):
        return next((n for n in self.nodes if n.name == name), None)

    # ---- etcd ----
    def kv(self, key):
        try:
            return self.etcd.get(self.prefix + key)
        except Exception:
            return None

    def leader_name(self):
        return self.kv("leader")

    def members(self):
        try:
            raw = self.etcd.get_prefix(self.prefix + "members/")
        except Exception:
            return {}
        out = {}
        for k, v in raw.items():
            try:
                out[k.rsplit("/", 1)[1]] = json.loads(v)
            except ValueError:
                pass
        return out

    # ---- state ----
    def writable_leader(self, other_than=None, not_pm=None):
        """The node holding the leader key whose PostgreSQL accepts writes (and, with not_pm,
        whose postmaster is not the given pid: a restart in place counts)."""
        name = self.leader_name()
        node = self.node(name) if name else None
        if node is None:
            return None
        if other_than and name == other_than and (not_pm is None or postmaster_pid(node) == not_pm):
            return None
        r = try_query(node, "SELECT pg_is_in_recovery()", timeout=2)
        return node if r and r[0][0] is False else None

    def healthy(self):
        """(ok, reason): every agent running, the leader writable, each replica streaming from
        it on its timeline, every member key "running", the same timeline everywhere."""
        for n in self.nodes:
            if not n.running():
                return False, f"agent {n.name} is not running (exit {n.returncode})"
        name = self.leader_name()
        leader = self.node(name) if name else None
        if leader is None:
            return False, "no leader key"
        r = try_query(leader, "SELECT pg_is_in_recovery(), ('x' || substr(pg_walfile_name("
                              "pg_current_wal_lsn()), 1, 8))::bit(32)::int")
        if not r or r[0][0] is not False:
            return False, f"leader {name} not writable"
        tli = r[0][1]
        rep = try_query(leader, "SELECT application_name FROM pg_stat_replication "
                                "WHERE state = 'streaming'")
        if rep is None:
            return False, f"cannot read pg_stat_replication on {name}"
        streaming = {x[0] for x in rep}
        for n in self.nodes:
            if n is leader:
                continue
            if n.name not in streaming:
                return False, f"{n.name} not streaming from {name}"
            w = try_query(n, "SELECT status, received_tli FROM pg_stat_wal_receiver")
            if not w or w[0][0] != "streaming" or w[0][1] != tli:
                return False, f"{n.name} wal receiver {w} (leader timeline {tli})"
        mem = self.members()
        tlis = set()
        for n in self.nodes:
            m = mem.get(n.name)
            if not m or m.get("state") != "running":
                return False, f"member key of {n.name}: {m}"
            if "timeline" in m:
                tlis.add(m["timeline"])
        if len(tlis) > 1 or (tlis and tli not in tlis):
            return False, f"member timelines {sorted(tlis)} (leader's PostgreSQL on {tli})"
        return True, f"leader {name} timeline {tli}"

    def not_streaming(self):
        """Replicas (not the leader) that do not stream from the current leader."""
        name = self.leader_name()
        leader = self.node(name) if name else None
        if leader is None:
            return []
        rep = try_query(leader, "SELECT application_name FROM pg_stat_replication "
                                "WHERE state = 'streaming'") or []
        streaming = {x[0] for x in rep}
        return [n for n in self.nodes if n is not leader and n.name not in streaming]

    # ---- faults and repairs ----
    def kill_postmaster(self, node):
        pm = postmaster_pid(node)
        if pm is None:
            raise NotMeasured(f"no live postmaster for {node.name}")
        t = time.monotonic()
        os.kill(pm, signal.SIGKILL)
        return t, pm

    def kill_node(self, node):
        """Node loss: SIGKILL to every pgwarden process of the node (its process group, the
        env-tagged processes) and to its PostgreSQL (postmaster and every backend)."""
        tree = node._known_tree()  # node, tagged processes, postmaster of its data dir, descendants
        idents = [C.proc_ident(p) for p in tree]
        pm = postmaster_pid(node)
        t = time.monotonic()
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if pm:
            os.kill(pm, signal.SIGKILL)
        for ident in idents:
            if ident:
                C.kill_ident(ident)
        node.proc.popen.wait(10)
        C.wait_until(lambda: not any(i and C.ident_alive(i) for i in idents), 10,
                     f"every process of {node.name} to die")
        return t, pm

    def reclone(self, node):
        """Stops the agent, makes sure its PostgreSQL is gone, empties the data folder and starts
        the agent again (it clones the leader)."""
        log(f"  re-clone {node.name}: stop agent, empty {node.data_dir}, start")
        try:
            if node.running():
                node.stop(timeout=60)
        except AssertionError as e:
            log(f"  {node.name}: {e}")
        pm = postmaster_pid(node)
        if pm:
            ident = C.proc_ident(pm)
            kids = [C.proc_ident(p) for p in C.descendants_of([pm])]
            C.kill_ident(ident)
            for k in kids:
                if k:
                    C.kill_ident(k)
            C.wait_until(lambda: not C.ident_alive(ident), 10, "old postmaster to die")
        for p in Path(node.data_dir).iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        node.start()
        node.wait_ready(60)

    def heal(self, rejoin_timeout, timeout, notes):
        """Back to three healthy members (see the module docstring)."""
        for n in self.nodes:
            if not n.running():
                notes.append(f"agent {n.name} had exited ({n.returncode}); restarted")
                log(f"  {notes[-1]}")
                n.start()
                n.wait_ready(60)
        t0 = time.monotonic()
        try:
            C.wait_until(lambda: self.healthy()[0], rejoin_timeout, "health", 0.5)
            return time.monotonic() - t0
        except C.Timeout:
            pass
        ok, why = self.healthy()
        if ok:
            return time.monotonic() - t0
        bad = self.not_streaming()
        if not bad:
            raise NotMeasured(f"cluster not healthy after {rejoin_timeout}s and nothing to "
                              f"re-clone: {why}")
        notes.append(f"not healthy after {rejoin_timeout}s ({why}); re-cloned "
                     + ",".join(n.name for n in bad))
        log(f"  {notes[-1]}")
        for n in bad:
            self.reclone(n)
        state = {"why": why}

        def ok_now():
            ok, state["why"] = self.healthy()
            return ok
        try:
            C.wait_until(ok_now, timeout, "health after re-clone", 0.5)
        except C.Timeout:
            raise NotMeasured(f"cluster not healthy {timeout}s after re-clone: {state['why']}")
        return time.monotonic() - t0


# --------------------------------------------------------------------------------------------
# the writer
# --------------------------------------------------------------------------------------------

SYNC_WARNING = re.compile(r"might not have been replicated|canceling wait for synchronous", re.I)


class Writer(threading.Thread):
    """One INSERT (increasing id, timestamp) every 20 ms to the current leader, autocommit.
    acks: (t_sent, t_ack, id, member) of every INSERT that returned success;
    doubt: ids whose INSERT was sent but failed (outcome unknown);
    warned: (t_ack, id, member) successes that came with PostgreSQL's "might not have been
    replicated" warning (a cancelled synchronous-replication wait: committed locally only);
    errors: (t, member, kind, message) of every failed attempt."""

    def __init__(self, cluster, locate="etcd", statement_timeout_ms=2000):
        super().__init__(daemon=True, name="writer")
        self.cluster = cluster
        self.locate = locate
        self.statement_timeout_ms = statement_timeout_ms
        self.acks, self.doubt, self.warned, self.errors = [], [], [], []
        self.next_id = 1
        self.conn = None
        self.member = None
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.fatal = None

    def _targets(self):
        if self.locate == "probe":
            return [(n.name, pg_host(n), pg_port(n)) for n in self.cluster.nodes]
        name = self.cluster.leader_name()
        if not name:
            return []
        m = self.cluster.members().get(name) or {}
        hp = parse_conn_url(m.get("conn_url"))
        return [(name, hp[0], hp[1])] if hp else []

    def _connect(self):
        targets = self._targets()
        if not targets:
            self._err(None, "locate", "no leader in etcd")
            return False
        for name, host, port in targets:
            try:
                conn = connect(host, port, 1, self.statement_timeout_ms)
            except Exception as e:
                self._err(name, "connect", e)
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if cur.fetchone()[0] is False:
                        self.conn, self.member = conn, name
                        return True
                self._err(name, "connect", "in recovery")
            except Exception as e:
                self._err(name, "connect", e)
            conn.close()
        return False

    def _err(self, member, kind, e):
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        with self.lock:
            self.errors.append((time.monotonic(), member, kind, msg[:200]))

    def _drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = self.member = None

    def run(self):
        try:
            nxt = time.monotonic()
            while not self.halt.is_set():
                if self.conn is None and not self._connect():
                    pass
                else:
                    rid = self.next_id
                    self.next_id += 1
                    t0 = time.monotonic()
                    try:
                        with self.conn.cursor() as cur:
                            cur.execute(f"INSERT INTO {TABLE} (id, member) VALUES (%s, %s)",
                                        (rid, self.member))
                        t1 = time.monotonic()
                        notices = list(self.conn.notices)
                        del self.conn.notices[:]
                        with self.lock:
                            if any(SYNC_WARNING.search(n) for n in notices):
                                self.warned.append((t1, rid, self.member))
                            else:
                                self.acks.append((t0, t1, rid, self.member))
                    except Exception as e:
                        with self.lock:
                            self.doubt.append(rid)
                        self._err(self.member, "insert", e)
                        self._drop()
                nxt += WRITE_INTERVAL
                now = time.monotonic()
                if nxt > now:
                    time.sleep(nxt - now)
                else:
                    nxt = now  # behind: no burst
        except Exception as e:  # the writer must never die silently
            self.fatal = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            self._drop()

    def stop(self):
        self.halt.set()
        self.join(30)

    # ---- views ----
    def snapshot(self):
        with self.lock:
            return list(self.acks), list(self.errors)

    def last_ack(self):
        with self.lock:
            return self.acks[-1] if self.acks else None

    def acks_after(self, t):
        with self.lock:
            return sum(1 for a in self.acks if a[1] > t)

    def wait_flowing(self, timeout=60):
        """Waits until the writer committed within the last 0.2 s."""
        def ok():
            if self.fatal:
                raise NotMeasured(f"writer died: {self.fatal}")
            a = self.last_ack()
            return a is not None and time.monotonic() - a[1] < 0.2
        wait_for(ok, timeout, "the writer to commit steadily", 0.02)


def outage(writer, t_fault, t_end):
    """The longest interval between consecutive successful commits in [t_fault - 3 s, t_end]
    (the last commit before the fault is always included)."""
    acks, errors = writer.snapshot()
    before = [a for a in acks if a[1] <= t_fault]
    win = [a for a in acks if t_fault - 3 < a[1] <= t_end]
    if before and (not win or win[0] is not before[-1]):
        win = [before[-1]] + [a for a in win if a[1] > before[-1][1]]
    if len(win) < 2 or not before:
        raise NotMeasured("not enough commits around the fault to measure")
    best = max(range(1, len(win)), key=lambda i: win[i][1] - win[i - 1][1])
    a, b = win[best - 1], win[best]
    long_gaps = [round(win[i][1] - win[i - 1][1], 3) for i in range(1, len(win))
                 if win[i][1] - win[i - 1][1] > 0.5]
    errs = [e for e in errors if a[1] <= e[0] <= b[1]]
    kinds = {}
    for e in errs:
        k = f"{e[2]}: {re.sub(r'[0-9]+', 'N', e[3])[:90]}"
        kinds[k] = kinds.get(k, 0) + 1
    return {
        "gap_s": b[1] - a[1],
        "fault_to_first_commit_s": b[1] - t_fault,
        "last_commit_before_fault_s": t_fault - before[-1][1],
        "last_commit_member": a[3], "first_commit_member": b[3],
        "gaps_over_0.5s": long_gaps,
        "failed_attempts": len(errs),
        "errors": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:6]),
    }


def lost_rows(cluster, writer, timeout=60):
    """Acknowledged rows missing on the final writable leader (the writer is stopped)."""
    leader = wait_for(lambda: cluster.writable_leader(), timeout, "a final writable leader")
    present = {r[0] for r in query(leader, f"SELECT id FROM {TABLE}", timeout=30)}
    acked = {a[2] for a in writer.acks}
    warned = {w[1] for w in writer.warned}
    missing = sorted(acked - present)
    return {
        "final_leader": leader.name,
        "acknowledged": len(acked), "missing": len(missing), "missing_ids": missing[:50],
        "missing_by_member": {m: sum(1 for a in writer.acks if a[2] in set(missing) and a[3] == m)
                              for m in {a[3] for a in writer.acks}},
        "in_doubt": len(writer.doubt), "in_doubt_present": len(set(writer.doubt) & present),
        "warned_commits": len(warned), "warned_missing": len(warned - present),
    }


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------

def agent_warnings(cluster, since):
    """{node: {msg: count}} of warn/error records since the given log offsets."""
    out = {}
    for n in cluster.nodes:
        c = {}
        for r in n.records(since.get(n.name, 0)) if n.proc else []:
            if r.get("level", "").lower() in ("warn", "warning", "error", "fatal"):
                k = f"{r.get('level')} {r.get('role', '?')}: {r.get('msg')}"
                c[k] = c.get(k, 0) + 1
        if c:
            out[n.name] = c
    return out


def one_round(cluster, writer, kind, rnd, args, notes, killed):
    """One fault, one measurement; returns the round's dict (raises NotMeasured). A node lost
    on purpose is appended to `killed`."""
    writer.wait_flowing()
    wait_for(lambda: cluster.healthy()[0], 60, "a healthy cluster before the fault", 0.5)
    time.sleep(1.0 + random.random())  # a different phase of the 1 s loop each round
    if cluster.last_fault is not None:  # --min-interval: faults at least this far apart
        time.sleep(max(0.0, cluster.last_fault + args.min_interval - time.monotonic()))
    old_name = cluster.leader_name()
    old = cluster.node(old_name)
    if old is None:
        raise NotMeasured(f"no leader before the fault (leader key {old_name!r})")
    cand = None
    if kind == "switchover":
        # the replica that has led least recently, so that every node takes its turn
        replicas = [n.name for n in cluster.nodes if n is not old]
        cand = min(replicas, key=lambda nm: (cluster.led_at.get(nm, -1), nm))
        value = {"leader": old_name, "member": cand}
        if args.switchover_to == "any":
            value, cand = {"leader": old_name}, None
        t_fault = time.monotonic()
        cluster.etcd.put(cluster.prefix + "failover", json.dumps(value))
        pm = postmaster_pid(old)
        timeout = args.switchover_timeout
    elif kind == "nodeloss":
        t_fault, pm = cluster.kill_node(old)
        killed.append(old)
        timeout = cluster.ttl + args.failover_timeout
    else:  # pgkill, synckill
        t_fault, pm = cluster.kill_postmaster(old)
        timeout = args.failover_timeout
    try:
        if kind == "pgkill" or kind == "synckill":
            new = wait_for(lambda: cluster.writable_leader(other_than=old_name, not_pm=pm),
                           timeout, "a writable leader after the kill", 0.05)
        elif kind == "switchover":
            new = wait_for(lambda: cluster.writable_leader(other_than=old_name), timeout,
                           f"{cand or 'another node'} to lead after the failover key", 0.05)
        else:
            new = wait_for(lambda: cluster.writable_leader(other_than=old_name), timeout,
                           "a writable leader other than the lost node", 0.05)
        t_seen = time.monotonic()
        wait_for(lambda: writer.acks_after(t_seen) >= 25, args.failover_timeout,
                 f"the writer to commit on {new.name}", 0.05)
        t_end = time.monotonic()
        res = outage(writer, t_fault, t_end)
    finally:
        if kind == "switchover" and cluster.kv("failover") is not None:
            # Patroni's leader deletes the key once done; a leftover would act again later
            notes.append(f"round {rnd + 1}: failover key still present after the round; deleted")
            try:
                cluster.etcd.delete(cluster.prefix + "failover")
            except Exception:
                pass
    cluster.last_fault = t_fault
    cluster.led_at[new.name] = t_seen
    res.update({"old_leader": old_name, "new_leader": new.name,
                "leader_seen_after_s": t_seen - t_fault})
    if cand:
        res["candidate"] = cand
        if new.name != cand:
            notes.append(f"round {rnd + 1}: {new.name} leads, the candidate was {cand}")
    return res


def measure_and_heal(cluster, writer, kind, rnd, args, notes):
    """one_round, then back to three healthy members. Returns (round dict, healed): a round
    measured before a failed repair keeps its figures; the repair failure is in "heal_error"."""
    killed = []
    try:
        res = one_round(cluster, writer, kind, rnd, args, notes, killed)
        res["status"] = "measured"
    except NotMeasured as e:
        res = {"status": "not measured", "reason": str(e).splitlines()[0]}
    except (AssertionError, C.Timeout) as e:  # harness trouble (a node that would not start...)
        res = {"status": "not measured", "reason": f"harness: {str(e).splitlines()[0]}"}
    try:
        t0 = time.monotonic()
        for n in killed:  # the lost node comes back (its agent; it finds its PostgreSQL dead)
            if not n.running():
                n.start()
                n.wait_ready(60)
        res["heal_s"] = cluster.heal(args.rejoin_timeout, args.heal_timeout, notes) + \
            (time.monotonic() - t0 if killed else 0)
        return res, True
    except (NotMeasured, AssertionError, C.Timeout) as e:
        res["heal_error"] = str(e).splitlines()[0]
        return res, False


def run_fault_scenario(cluster, kind, args):
    writer = Writer(cluster, args.locate)
    writer.start()
    rounds, notes = [], []
    since = {n.name: n.mark() for n in cluster.nodes}
    try:
        for rnd in range(args.rounds):
            notes_before = len(notes)
            res, healed = measure_and_heal(cluster, writer, kind, rnd, args, notes)
            if res["status"] == "measured":
                log(f"{kind} round {rnd + 1}: {res['old_leader']} -> {res['new_leader']}: "
                    f"gap {res['gap_s']:.3f}s, fault->first commit "
                    f"{res['fault_to_first_commit_s']:.3f}s, {res['failed_attempts']} failed "
                    f"attempts" + (f" (healed in {res['heal_s']:.1f}s)" if healed else ""))
            else:
                log(f"{kind} round {rnd + 1}: NOT MEASURED: {res['reason']}")
            res["round"] = rnd + 1
            res["notes"] = notes[notes_before:]
            rounds.append(res)
            if not healed:
                notes.append(f"giving up on {kind} after round {rnd + 1}: cluster not healthy "
                             f"again: {res['heal_error']}")
                log(notes[-1])
                break
            if res["status"] != "measured" and kind == "switchover" and not args.keep_going:
                notes.append("switchover not working: remaining rounds skipped "
                             "(--keep-going runs them)")
                break
    finally:
        writer.stop()
    loss = None
    try:
        loss = lost_rows(cluster, writer)
    except Exception as e:
        notes.append(f"could not check rows at the end: {e}")
    return rounds, notes, writer, loss, agent_warnings(cluster, since)


def sync_engaged(cluster):
    """(ok, detail): the sync key names a standby of the current leader, the leader's
    synchronous_standby_names is set and that standby is in sync_state sync/quorum."""
    name = cluster.leader_name()
    leader = cluster.node(name) if name else None
    raw = cluster.kv("sync")
    try:
        sk = json.loads(raw) if raw else None
    except ValueError:
        sk = None
    if not leader:
        return False, "no leader"
    ssn = try_query(leader, "SHOW synchronous_standby_names")
    st = try_query(leader, "SELECT application_name, sync_state FROM pg_stat_replication") or []
    detail = f"sync key {raw!r}, synchronous_standby_names {ssn[0][0] if ssn else None!r}, " \
             f"pg_stat_replication {st}"
    if not sk or sk.get("leader") != name or not sk.get("sync_standby"):
        return False, detail
    if not ssn or not ssn[0][0]:
        return False, detail
    standbys = set(str(sk["sync_standby"]).split(","))
    if not any(a in standbys and s in ("sync", "quorum") for a, s in st):
        return False, detail
    return True, detail


def run_synckill(cluster, args):
    notes, kills = [], []
    since = {n.name: n.mark() for n in cluster.nodes}
    raw = cluster.kv("config")
    cfg = json.loads(raw) if raw else {}
    cfg["synchronous_mode"] = True
    cluster.etcd.put(cluster.prefix + "config", json.dumps(cfg))
    log(f"synckill: config key now {json.dumps(cfg)}")
    state = {"d": ""}

    def engaged():
        ok, state["d"] = sync_engaged(cluster)
        return ok
    try:
        wait_for(engaged, args.sync_timeout, "synchronous mode to be engaged", 0.5)
        log(f"synckill: engaged: {state['d']}")
    except NotMeasured:
        reason = f"synchronous mode not engaged {args.sync_timeout}s after writing the config " \
                 f"key: {state['d']}"
        log(f"synckill: {reason}")
        if not args.sync_anyway:
            return {"status": "not measured", "reason": reason, "kills": [], "notes": notes,
                    "agent_warnings": agent_warnings(cluster, since)}
        notes.append(reason + " (killing anyway: --sync-anyway; figure is NOT for sync mode)")
    writer = Writer(cluster, args.locate, statement_timeout_ms=30000)
    writer.start()
    status, reason = "measured", None
    try:
        for k in range(args.sync_kills):
            notes_before = len(notes)
            if not engaged():
                try:
                    wait_for(engaged, args.sync_timeout, "sync mode re-engaged", 0.5)
                except NotMeasured:
                    notes.append(f"kill {k + 1}: sync not engaged before the kill: {state['d']}")
            res, healed = measure_and_heal(cluster, writer, "synckill", k, args, notes)
            if res["status"] == "measured":
                log(f"synckill kill {k + 1}: {res['old_leader']} -> {res['new_leader']}: gap "
                    f"{res['gap_s']:.3f}s, acked so far {len(writer.acks)}, in doubt "
                    f"{len(writer.doubt)}")
            else:
                log(f"synckill kill {k + 1}: NOT MEASURED: {res['reason']}")
                status, reason = "incomplete", f"kill {k + 1}: {res['reason']}"
            res["kill"] = k + 1
            res["notes"] = notes[notes_before:]
            kills.append(res)
            if not healed:
                status, reason = "incomplete", f"after kill {k + 1}: {res['heal_error']}"
                notes.append(f"giving up: cluster not healthy again: {res['heal_error']}")
                log(notes[-1])
                break
    finally:
        writer.stop()
    loss = None
    try:
        loss = lost_rows(cluster, writer)
        log(f"synckill: {loss['acknowledged']} acknowledged, {loss['missing']} missing on "
            f"{loss['final_leader']}, {loss['in_doubt']} in doubt "
            f"({loss['in_doubt_present']} present), {loss['warned_commits']} warned")
    except Exception as e:
        status, reason = "not measured", f"could not check rows at the end: {e}"
    return {"status": status, "reason": reason, "kills": kills, "loss": loss, "notes": notes,
            "sync_forced": bool(args.sync_anyway and notes and "--sync-anyway" in notes[0]),
            "agent_warnings": agent_warnings(cluster, since)}


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def summarize(rounds, target, field="gap_s"):
    ok = [r for r in rounds if r.get("status") == "measured"]
    out = {"measured_rounds": len(ok), "rounds_total": len(rounds), "target_s": target,
           "headline": "gap_s (longest interval between two successful commits)"}
    for f in ("gap_s", "fault_to_first_commit_s"):
        xs = [r[f] for r in ok]
        out[f] = {"median": median(xs), "min": min(xs) if xs else None,
                  "max": max(xs) if xs else None}
    med = out[field]["median"]
    if not ok:
        out["pass"] = None
        out["verdict"] = "not measured"
    else:
        out["pass"] = med <= target and len(ok) == len(rounds)
        out["verdict"] = ("pass" if out["pass"] else "FAIL") + \
            ("" if len(ok) == len(rounds) else f" ({len(rounds) - len(ok)} rounds not measured)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma list among " + ",".join(SCENARIOS))
    ap.add_argument("--rounds", type=int, default=10, help="rounds of pgkill/nodeloss/switchover")
    ap.add_argument("--sync-kills", type=int, default=10, help="leader kills in synckill")
    ap.add_argument("--ttl", type=int, default=10)
    ap.add_argument("--locate", choices=("etcd", "probe"), default="etcd",
                    help="how the writer finds the leader")
    ap.add_argument("--failover-timeout", type=float, default=60,
                    help="s to wait for a writable new leader (nodeloss: ttl + this)")
    ap.add_argument("--switchover-timeout", type=float, default=45)
    ap.add_argument("--rejoin-timeout", type=float, default=30,
                    help="s before a non-streaming replica is re-cloned")
    ap.add_argument("--heal-timeout", type=float, default=180)
    ap.add_argument("--bootstrap-timeout", type=float, default=180)
    ap.add_argument("--sync-timeout", type=float, default=60,
                    help="s to wait for synchronous mode to be engaged")
    ap.add_argument("--sync-anyway", action="store_true",
                    help="run the synckill kills even if synchronous mode is never engaged")
    ap.add_argument("--min-interval", type=float, default=0,
                    help="at least this many s between two faults (default 0: the next fault "
                         "as soon as the cluster is healthy again)")
    ap.add_argument("--switchover-to", choices=("named", "any"), default="named",
                    help="failover key with a named candidate (member) or without one")
    ap.add_argument("--keep-going", action="store_true",
                    help="switchover: keep running rounds after one timed out")
    ap.add_argument("--log-level", default="info", choices=("debug", "info"),
                    help="the nodes' log level (logs copied next to the JSON)")
    ap.add_argument("--bin", default=os.environ.get("PGWARDEN_BIN", str(REPO / "build/dev/pgwarden")))
    ap.add_argument("--out", default=str(REPO / "build/results/ha_figures.json"))
    args = ap.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s) {bad}; choose among {SCENARIOS}")
    if os.geteuid() != 0:
        sys.exit("run as root (the nodes run as the postgres user, as in the integration tests)")
    if not Path(args.bin).is_file():
        sys.exit(f"{args.bin} missing: make build/dev/pgwarden")

    work = Path(tempfile.mkdtemp(prefix="pgw-ha-", dir="/tmp"))
    os.chmod(work, 0o755)
    C.chown_run_user(work)
    # a private copy: a rebuild of build/dev/pgwarden during the run does not change the nodes
    binp = work / "pgwarden"
    shutil.copy2(args.bin, binp)
    os.chmod(binp, 0o755)
    logs_dir = Path(args.out).parent / "ha_figures-logs"
    shutil.rmtree(logs_dir, ignore_errors=True)
    logs_dir.mkdir(parents=True, exist_ok=True)

    result = {
        "issue": 4, "ttl_s": args.ttl, "loop_wait_s": 1, "retry_timeout_s": 3,
        "write_interval_ms": WRITE_INTERVAL * 1000, "locate": args.locate,
        "min_interval_s": args.min_interval, "switchover_to": args.switchover_to,
        "command": " ".join([sys.executable, *sys.argv]),
        "binary": str(args.bin), "binary_sha256": file_sha256(args.bin),
        "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                      time.localtime(os.stat(args.bin).st_mtime)),
        "git_rev": os.popen(f"git -C {REPO} rev-parse --short=10 HEAD "
                                                     f"2>/dev/null").read().strip(),
        "git_dirty": bool(os.popen(f"git -C {REPO} status --porcelain -- agent platform web "
                                   f"2>/dev/null").read().strip()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "definitions": {
            "gap_s": "longest interval between two consecutive successful commits around the "
                     "fault (headline)",
            "fault_to_first_commit_s": "from the fault (kill / failover key write) to the commit "
                                       "that ends that gap",
        },
        "scenarios": {},
    }
    targets = {"pgkill": 2.0, "nodeloss": args.ttl + 2.0, "switchover": 1.0}
    etcd = None
    clusters = []
    stop_all = {"sig": None}

    def on_term(signum, frame):
        stop_all["sig"] = signum
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        etcd = C.start_etcd_single(C.make_dir(work / "etcd"))
        for kind in scenarios:
            log(f"=== {kind}: starting a fresh three-node cluster")
            cl = Cluster(etcd, work / kind[:4], f"bench-{kind}", binp, args.ttl, args.log_level)
            clusters.append(cl)
            entry = {}
            try:
                t0 = time.monotonic()
                cl.start(args.bootstrap_timeout)
                log(f"{kind}: cluster healthy after {time.monotonic() - t0:.1f}s "
                    f"({cl.healthy()[1]})")
                if kind == "synckill":
                    entry = run_synckill(cl, args)
                    loss = entry.get("loss")
                    entry["target_lost_rows"] = 0
                    entry["pass"] = (None if entry["status"] == "not measured" or loss is None
                                     else loss["missing"] == 0 and entry["status"] == "measured"
                                     and not entry.get("sync_forced"))
                else:
                    rounds, notes, writer, loss, warns = run_fault_scenario(cl, kind, args)
                    entry = {"rounds": rounds, "notes": notes, "rows_check_async": loss,
                             "agent_warnings": warns}
                    entry.update(summarize(rounds, targets[kind]))
            except NotMeasured as e:
                entry = {"status": "not measured", "reason": str(e).splitlines()[0], "pass": None}
                log(f"{kind}: NOT MEASURED: {entry['reason']}")
            except (AssertionError, C.Timeout) as e:
                entry = {"status": "not measured", "reason": f"harness: {str(e).splitlines()[0]}",
                         "pass": None}
                log(f"{kind}: NOT MEASURED: {str(e)[:2000]}")
            finally:
                problems = cl.stop()
                if problems:
                    entry.setdefault("notes", []).extend(problems)
                    for p in problems:
                        log(f"{kind}: cleanup: {p}")
                d = logs_dir / kind
                d.mkdir(exist_ok=True)
                for n in cl.nodes:
                    try:
                        shutil.copy(n.stderr_path, d / f"{n.name}.log")
                    except OSError:
                        pass
                clusters.remove(cl)
            result["scenarios"][kind] = entry
            write_json(args.out, result)  # partial results survive a later crash
    except KeyboardInterrupt:
        log("interrupted")
        result["interrupted"] = True
    finally:
        teardown(work, etcd, clusters)
    write_json(args.out, result)
    print_table(result, args)
    print(f"\nwritten to {args.out} (node logs: {logs_dir}/)")


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def teardown(work, etcd, clusters):
    """Stops the clusters (logging what each left behind) and etcd, then removes the work folder
    unless PGWARDEN_KEEP_TMP=1 (then says where it is)."""
    for cl in clusters:
        if cl:
            for p in cl.stop():
                log(f"cleanup: {p}")
    if etcd:
        etcd.stop()
    if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"kept {work}")


def write_json(path, result):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2, default=str) + "\n")


def print_table(result, args):
    print()
    print("headline = gap: longest interval between two successful commits (client side); "
          "fault->1st = from the fault to the commit ending that gap")
    print(f"{'figure (ttl=%ds, loop_wait=1s, 20 ms writer)' % args.ttl:46} {'median':>8} "
          f"{'min':>7} {'max':>7} {'n':>5} {'target':>8}  verdict")
    labels = {"pgkill": "leader postmaster SIGKILL", "nodeloss": "node loss (agent + PostgreSQL)",
              "switchover": f"switchover (failover key, {args.switchover_to})"}
    for kind in ("pgkill", "nodeloss", "switchover"):
        e = result["scenarios"].get(kind)
        if e is None:
            continue
        if "gap_s" not in e:
            print(f"{labels[kind] + ': gap':46} {'-':>8} {'-':>7} {'-':>7} {'-':>5} "
                  f"{'':>8}  not measured: {e.get('reason')}")
            continue
        n = f"{e['measured_rounds']}/{e['rounds_total']}"
        for f, lab in (("gap_s", "gap"), ("fault_to_first_commit_s", "fault->1st")):
            s = e[f]
            if s["median"] is None:
                reasons = sorted({r.get("reason", "") for r in e["rounds"]})
                print(f"{labels[kind] + ': ' + lab:46} {'-':>8} {'-':>7} {'-':>7} {n:>5} "
                      f"{'<= %.0fs' % e['target_s']:>8}  not measured: {'; '.join(reasons)[:300]}")
                break
            verdict = e["verdict"] if f == "gap_s" else "(info)"
            print(f"{labels[kind] + ': ' + lab:46} {s['median']:>7.3f}s {s['min']:>6.3f}s "
                  f"{s['max']:>6.3f}s {n:>5} {'<= %.0fs' % e['target_s']:>8}  {verdict}")
    e = result["scenarios"].get("synckill")
    if e is not None:
        loss = e.get("loss")
        if loss is None:
            print(f"{'sync mode: rows lost over %d leader kills' % args.sync_kills:46} "
                  f"{'-':>8} {'':>7} {'':>7} {'':>5} {'0':>8}  not measured: {e.get('reason')}")
        else:
            done = sum(1 for k in e["kills"] if k.get("status") == "measured")
            verdict = "pass" if e.get("pass") else ("FAIL" if loss["missing"] else "incomplete")
            if e.get("sync_forced"):
                verdict += " (sync mode never engaged)"
            print(f"{'sync mode: acked rows missing on final leader':46} {loss['missing']:>8} "
                  f"{'':>7} {'':>7} {str(done) + '/' + str(len(e['kills'])):>5} {'0':>8}  "
                  f"{verdict}; {loss['acknowledged']} acked, {loss['in_doubt']} in doubt"
                  + (f"; {e['reason']}" if e.get("reason") else ""))


if __name__ == "__main__":
    main()
