"""The HA state machine with three `pgwarden run` nodes driving real PostgreSQL 15 servers:
bootstrap from empty folders, streaming replicas through slots, failover when the leader's
PostgreSQL or the whole leader node is SIGKILLed, and adoption of the running PostgreSQL by a
restarted ha child without a failover."""
import base64
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import PG_BINDIR, pid_alive, port_refuses, psycopg2_connect, wait_until

SU_PW = "su-secret-Pw1"
REPL_PW = "repl-secret-Pw2"
TTL = 5.0
HA = {
    "ha": {"manage_postgresql": "on", "ttl": "5s", "loop_wait": "1s", "retry_timeout": "2s",
           "fencing_margin": "2s"},
    "etcd": {"request_timeout": "1s"},
    "postgresql": {"bin_dir": str(PG_BINDIR), "superuser_password": SU_PW,
                   "replication_password": REPL_PW},
}


def _kv(etcd_url, key):
    from conftest import etcd_call
    st, resp = etcd_call(etcd_url, "/v3/kv/range",
                         {"key": base64.b64encode(key.encode()).decode()})
    kvs = resp.get("kvs") or []
    if not kvs:
        return None
    return base64.b64decode(kvs[0].get("value", "")).decode()


def prefix(node):
    e = node.config["etcd"]
    return f"/{e.get('namespace', 'service').strip('/')}/{e['scope']}/"


def pg_port(node):
    return int(node.config["postgresql"]["listen"].rsplit(":", 1)[1])


def connect(node, timeout=3):
    conn = psycopg2_connect(f"host=127.0.0.1 port={pg_port(node)} user=postgres dbname=postgres "
                            f"password={SU_PW}", connect_timeout=timeout)
    conn.autocommit = True
    return conn


def query(node, sql, params=None):
    conn = connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
    finally:
        conn.close()


def postmaster_pid(node):
    try:
        return int(Path(node.data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def leader_name(etcd_url, node):
    return _kv(etcd_url, prefix(node) + "leader")


def wait_primary(etcd_url, nodes, timeout, other_than=None):
    """The node holding the leader key whose PostgreSQL accepts writes."""
    def ok():
        name = leader_name(etcd_url, nodes[0])
        if not name or name == other_than:
            return None
        node = next(n for n in nodes if n.name == name)
        try:
            if query(node, "SELECT pg_is_in_recovery()")[0][0] is False:
                return node
        except Exception:
            return None
        return None
    return wait_until(ok, timeout, "a writable leader" + (f" other than {other_than}"
                                                          if other_than else ""), 0.1)


def wait_rows(node, n, timeout=30):
    def ok():
        try:
            return query(node, "SELECT count(*) FROM t")[0][0] == n
        except Exception:
            return False
    wait_until(ok, timeout, f"{n} rows on {node.name}", 0.2)


@pytest.fixture
def ha_cluster(etcd, pgwarden_node):
    def make(n=3):
        nodes = []
        for i in range(n):
            nodes.append(pgwarden_node(name=f"n{i + 1}", etcd=etcd.url, overrides=HA))
        return nodes
    return make


def bootstrap(etcd, ha_cluster):
    nodes = ha_cluster()
    leader = wait_primary(etcd.url, nodes, 90)
    query(leader, "CREATE TABLE t (id int primary key)")
    query(leader, "INSERT INTO t SELECT generate_series(1, 10)")
    for n in nodes:
        wait_rows(n, 10, 90)
    wait_caught_up(etcd.url, nodes, leader)
    return nodes, leader


def wait_caught_up(etcd_url, nodes, leader, timeout=15):
    """Every replica's member key shows it running, streaming, at the leader's current WAL
    position (what the leader checks before handing over on a crash or a switchover)."""
    lsn = int(query(leader, "SELECT pg_current_wal_lsn() - '0/0'")[0][0])

    def ok():
        for n in nodes:
            if n is leader:
                continue
            raw = _kv(etcd_url, prefix(n) + "members/" + n.name)
            m = json.loads(raw) if raw else {}
            if (m.get("state") != "running" or m.get("xlog_location", -1) < lsn
                    or m.get("replication_state") != "streaming"):
                return False
        return True
    wait_until(ok, timeout, "replicas' member keys at the leader's WAL position", 0.1)


def test_bootstrap_replicate_and_values(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    p = prefix(leader)
    init = _kv(etcd.url, p + "initialize")
    assert init and init.isdigit(), init
    sysid = query(leader, "SELECT system_identifier FROM pg_control_system()")[0][0]
    assert int(init) == sysid
    cfg = json.loads(_kv(etcd.url, p + "config"))
    assert cfg["ttl"] == 5 and cfg["loop_wait"] == 1
    slots = {r[0] for r in query(leader, "SELECT slot_name FROM pg_replication_slots WHERE active")}
    others = {n.name for n in nodes if n is not leader}
    wait_until(lambda: {r[0] for r in query(
        leader, "SELECT slot_name FROM pg_replication_slots WHERE active")} == others, 20,
        "one active slot per replica")
    rep = {r[0] for r in query(leader, "SELECT application_name FROM pg_stat_replication "
                                       "WHERE state = 'streaming'")}
    assert rep == others, (rep, slots)
    m = json.loads(_kv(etcd.url, p + "members/" + leader.name))
    assert m["role"] == "master" and m["state"] == "running" and m["timeline"] == 1, m
    assert isinstance(m["xlog_location"], int)
    for n in nodes:
        if n is not leader:
            r = json.loads(_kv(etcd.url, p + "members/" + n.name))
            assert r["role"] == "replica" and r["state"] == "running", r
    for n in nodes:  # secrets never in the log
        assert SU_PW not in n.log() and REPL_PW not in n.log()


def test_leader_postgres_killed(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    pm = postmaster_pid(leader)
    os.kill(pm, signal.SIGKILL)
    t0 = time.monotonic()
    new = wait_primary(etcd.url, nodes, TTL + 20, other_than=leader.name)
    elapsed = time.monotonic() - t0
    query(new, "INSERT INTO t VALUES (11)")
    assert elapsed < TTL + 10, elapsed
    for n in nodes:  # the old leader comes back as a standby of the new one
        wait_rows(n, 11, 60)
    hist = json.loads(_kv(etcd.url, prefix(new) + "history"))
    assert hist and hist[-1][0] == 1 and hist[-1][4] == new.name, hist


def test_leader_node_killed(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    pm = postmaster_pid(leader)
    leader.proc.popen.send_signal(signal.SIGKILL)
    for pid in [pm]:
        os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    rest = [n for n in nodes if n is not leader]
    new = wait_primary(etcd.url, nodes, TTL + 15, other_than=leader.name)
    assert time.monotonic() - t0 < TTL + 5
    assert query(new, "SELECT count(*) FROM t")[0][0] == 10
    query(new, "INSERT INTO t VALUES (11)")
    for n in rest:
        wait_rows(n, 11, 60)


def test_ha_child_restart_adopts_postgres(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    pm = postmaster_pid(leader)
    name = leader_name(etcd.url, leader)
    ha_pid = leader.child_pids()["ha"]
    leader.kill_child(ha_pid)

    def restarted():
        pid = leader.child_pids().get("ha")
        return pid if pid and pid != ha_pid else None
    wait_until(restarted, 10, "the supervisor to restart ha")
    leader.wait_log(r'msg="acquired leadership".*how=takeover', timeout=TTL + 5)
    assert leader_name(etcd.url, leader) == name
    assert postmaster_pid(leader) == pm
    query(leader, "INSERT INTO t VALUES (11)")
    for n in nodes:
        wait_rows(n, 11, 30)
    for n in nodes:
        if n is not leader:
            assert not n.find_records(msg="acquired leadership")


def test_stalled_leader_fenced_by_supervisor(etcd, ha_cluster):
    """SIGSTOP of the leader's ha: the supervisor stops PostgreSQL at the fencing deadline
    (before another node can win the key); once resumed, the old leader rejoins as a standby."""
    nodes, leader = bootstrap(etcd, ha_cluster)
    pm = postmaster_pid(leader)
    ha_pid = leader.child_pids()["ha"]
    leader.kill_child(ha_pid, signal.SIGSTOP)
    try:
        leader.wait_log(r'msg="stopping postgresql \(fast\) after fencing"', timeout=TTL + 2)
        new = wait_primary(etcd.url, nodes, TTL + 10, other_than=leader.name)
        assert not pid_alive(pm)  # stopped before the new leader took over
    finally:
        os.kill(ha_pid, signal.SIGCONT)
    query(new, "INSERT INTO t VALUES (11)")
    for n in nodes:
        wait_rows(n, 11, 60)
    assert query(leader, "SELECT pg_is_in_recovery()")[0][0] is True


def test_pg_crash_without_replica_restarts_locally(etcd, ha_cluster):
    """No caught-up replica (a one-node cluster): the leader keeps its key and restarts
    PostgreSQL at once."""
    (node,) = ha_cluster(n=1)
    wait_primary(etcd.url, [node], 60)
    query(node, "CREATE TABLE t (id int primary key)")
    key = prefix(node) + "leader"
    pm = postmaster_pid(node)
    os.kill(pm, signal.SIGKILL)
    node.wait_log(r"no replica is caught up: restarting it", timeout=5)
    wait_until(lambda: postmaster_pid(node) not in (None, pm), 15, "a new postmaster")
    assert wait_primary(etcd.url, [node], 20) is node
    assert _kv(etcd.url, key) == node.name
    query(node, "INSERT INTO t VALUES (1)")
    assert not node.find_records(msg="lost leadership")


def test_foreign_data_dir_refused(etcd, pgwarden_node):
    """A node of cluster A restarted with the data folder of cluster B (another scope on the
    same etcd): it says so clearly, never starts PostgreSQL and never holds A's leader key."""
    a = pgwarden_node(name="a1", etcd=etcd.url, overrides=HA, scope="foreign-a")
    b = pgwarden_node(name="b1", etcd=etcd.url, overrides=HA, scope="foreign-b")
    wait_primary(etcd.url, [a], 60)
    wait_primary(etcd.url, [b], 60)
    sys_a = _kv(etcd.url, prefix(a) + "initialize")
    sys_b = _kv(etcd.url, prefix(b) + "initialize")
    assert sys_a and sys_b and sys_a != sys_b
    b.stop()
    a.stop()
    assert postmaster_pid(b) is None and _kv(etcd.url, prefix(a) + "leader") is None
    a.config["postgresql"]["data_dir"] = str(b.data_dir)
    a.start()  # a new process: its log starts empty
    since = 0
    a.wait_ready()
    r = a.wait_record(since=since, timeout=TTL + 10,
                      msg=re.compile("data directory belongs to another cluster"))
    assert r.get("level") in ("error", "ERROR"), r
    assert r.get("data_dir") == str(b.data_dir), r
    assert r.get("data_dir_system_identifier") == sys_b, r
    assert r.get("cluster_system_identifier") == sys_a, r
    deadline = time.monotonic() + TTL + 3
    while time.monotonic() < deadline:  # stays out: no PostgreSQL, no leader key
        assert a.running()
        assert _kv(etcd.url, prefix(a) + "leader") is None
        assert _kv(etcd.url, prefix(a) + "members/a1") is None
        assert postmaster_pid(a) is None
        assert port_refuses(pg_port(a))
        time.sleep(0.2)
    assert len(a.find_records(since=since,
                              msg=re.compile("belongs to another cluster"))) == 1
    assert not a.find_records(since=since, msg="child exited")
    assert len([r for r in a.find_records(since=since, msg="child started")
                if r.get("child") == "ha"]) == 1
