"""The forwarder (issue #5) with real etcd, PostgreSQL 15 and `pgwarden run` nodes: both ports
reach the leader's PostgreSQL, clients are held (not refused) while there is no leader and get
57P03 after hold_timeout, the connection limit answers 53300, sessions to a former leader are
closed at a failover, and 10,000 connections leave no descriptor behind in the proxy process.

Most tests use one election-only node in front of a standalone PostgreSQL (the node's
postgresql.listen): the node leads, so its route points at that server. The failover test
builds a three-node cluster with managed PostgreSQL."""
import json
import socket
import subprocess
import time

import pytest

from conftest import PG_BINDIR, merge_config, vm_rss_kib, wait_until
from proxyutil import (SSL_REQUEST, Background, connect, fd_count, freeze, node_tree, port_of,
                       proxy_pid, psql, raw, read_error, recv_exact, startup_packet, thaw,
                       wait_route, where)

FAST = {
    "ha": {"ttl": "5s", "loop_wait": "1s", "retry_timeout": "2s", "fencing_margin": "2s"},
    "etcd": {"request_timeout": "1s"},
}


@pytest.fixture
def single(etcd, postgres, pgwarden_node):
    """single(proxy={...}) -> (node, pg): an election-only leader routing to a standalone pg."""
    def make(proxy=None):
        pg = postgres()
        ov = merge_config(FAST, {"postgresql": {"listen": f"127.0.0.1:{pg.port}"},
                                 "proxy": proxy or {}})
        node = pgwarden_node(name="n1", etcd=etcd, overrides=ov)
        wait_route(node, "n1", 60)
        return node, pg
    return make


@pytest.fixture
def leaderless(pgwarden_node):
    """leaderless(proxy={...}) -> node whose etcd does not exist: it never has a route."""
    def make(proxy=None):
        return pgwarden_node(name="n1", etcd=None, overrides={"proxy": proxy or {}})
    return make


def test_both_ports_reach_the_leader(single):
    node, pg = single()
    for which in ("rw", "ro"):  # no replica: the read-only port falls back to the leader
        conn = connect(port_of(node, which))
        assert where(conn) == (pg.port, False)
        conn.close()
    r = psql(port_of(node, "rw"), "SELECT inet_server_port()")
    assert r.returncode == 0 and r.stdout.strip() == str(pg.port), r
    # pgbench through the forwarder: persistent and one connection per transaction
    bench = str(PG_BINDIR / "pgbench")
    base = ["-h", "127.0.0.1", "-p", str(port_of(node, "rw")), "-U", "postgres", "postgres"]
    r = subprocess.run([bench, "-i", "-s", "1", "-q", *base], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for extra in (["-c", "4", "-j", "2"], ["-C", "-c", "2"]):
        r = subprocess.run([bench, "-S", "-T", "3", *extra, *base], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "number of failed transactions: 0" in r.stdout, r.stdout


def test_hold_timeout_gives_57p03(leaderless):
    node = leaderless({"hold_timeout": "2s"})
    port = port_of(node, "rw")
    for sslmode in ("disable", "prefer"):  # prefer: an SSLRequest is answered 'N' first
        t0 = time.monotonic()
        r = psql(port, sslmode=sslmode)
        elapsed = time.monotonic() - t0
        assert r.returncode == 2, r
        assert "FATAL:  no primary available" in r.stderr, r.stderr
        assert 1.8 <= elapsed < 20, elapsed
    # the raw protocol: SSLRequest -> 'N', StartupMessage -> ErrorResponse 57P03, then close
    s = raw(port, SSL_REQUEST, timeout=30)
    assert recv_exact(s, 1) == b"N"
    s.sendall(startup_packet())
    err = read_error(s)
    assert err["C"] == "57P03" and err["S"] == "FATAL", err
    assert s.recv(1) == b""
    s.close()
    # read-only port: nothing to fall back to either
    t0 = time.monotonic()
    with pytest.raises(Exception) as ei:
        connect(port_of(node, "ro"), timeout=30)
    assert "no replica or primary available" in str(ei.value)
    assert time.monotonic() - t0 >= 1.8


def test_connection_limit(leaderless):
    node = leaderless({"hold_timeout": "30s", "max_connections": "3"})
    port = port_of(node, "rw")
    held = [raw(port, startup_packet()) for _ in range(3)]
    time.sleep(0.3)
    t0 = time.monotonic()
    with pytest.raises(Exception) as ei:
        connect(port, timeout=10)
    assert "too many clients" in str(ei.value), ei.value
    assert time.monotonic() - t0 < 5  # refused at once, not held
    s = raw(port, startup_packet())
    assert read_error(s)["C"] == "53300"
    s.close()
    # the held ones are still held (no answer), and a slot frees when one leaves
    held[0].settimeout(0.3)
    with pytest.raises(socket.timeout):
        held[0].recv(1)
    held.pop().close()
    time.sleep(0.3)
    s = raw(port, startup_packet())
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):  # held, not refused
        s.recv(1)
    s.close()
    for h in held:
        h.close()


def test_held_while_no_leader_then_served(etcd, single):
    node, pg = single({"hold_timeout": "60s"})
    rw = port_of(node, "rw")
    before = connect(rw)
    assert where(before) == (pg.port, False)
    mark = node.mark()
    etcd.stop()  # the leader cannot renew: it fences itself, the route goes
    wait_route(node, "none", 30, since=mark)
    # a session to the fenced leader was closed by the forwarder
    with pytest.raises(Exception):
        with before.cursor() as cur:
            cur.execute("SELECT 1")
    # new clients are held, not refused ...
    held = [Background(lambda: where(connect(rw, timeout=90))) for _ in range(3)]
    time.sleep(2)
    assert not any(h.done() for h in held), [h.error for h in held]
    # ... and served once there is a leader again
    mark = node.mark()
    etcd.start()
    etcd.wait_ready()
    wait_route(node, "n1", 60, since=mark)
    for h in held:
        assert h.result(60) == (pg.port, False)
        assert h.finished - h.started >= 2


@pytest.mark.timeout(600)
def test_10000_connections_leave_no_descriptor(single):
    node, pg = single({"max_connections": "200"})
    rw, ro = port_of(node, "rw"), port_of(node, "ro")
    pid = proxy_pid(node)
    for _ in range(20):  # warm up (buffers, loop tables)
        connect(rw).close()
    fds0, rss0 = fd_count(pid), vm_rss_kib(pid)
    startup = startup_packet()
    t0 = time.monotonic()
    for i in range(10000):
        s = socket.create_connection(("127.0.0.1", rw if i % 4 else ro), timeout=30)
        kind = i % 5
        if kind == 0:
            pass  # opens and closes without a word
        elif kind == 1:
            s.sendall(startup[:7])  # leaves in the middle of its startup packet
        else:
            s.sendall(startup)  # a whole session start: the server answers first
            assert s.recv(1) in (b"R", b"E")
        s.close()
    took = time.monotonic() - t0
    wait_until(lambda: fd_count(pid) <= fds0, 30,
               f"proxy descriptors back to {fds0} (now {fd_count(pid)})", 0.2)
    rss1 = vm_rss_kib(pid)
    assert rss1 - rss0 < 4096, (rss0, rss1)  # KiB: no growth per connection
    print(f"10000 connections in {took:.1f}s; proxy fds {fds0}; rss {rss0} -> {rss1} KiB")
    conn = connect(rw)  # still serving
    assert where(conn) == (pg.port, False)


# ---- a three-node cluster with managed PostgreSQL ----

SU_PW = "su-secret-Pw1"
CLUSTER = merge_config(FAST, {"ha": {"manage_postgresql": "on"},
                              "postgresql": {"bin_dir": str(PG_BINDIR), "superuser_password": SU_PW,
                                             "replication_password": "repl-secret-Pw2"}})


def _leader_name(etcd, node):
    e = node.config["etcd"]
    return etcd.get(f"/{e.get('namespace', 'service').strip('/')}/{e['scope']}/leader")


def _pg_port(node):
    return int(node.config["postgresql"]["listen"].rsplit(":", 1)[1])


def _writable_leader(etcd, nodes, timeout, other_than=None):
    def ok():
        name = _leader_name(etcd, nodes[0])
        if not name or name == other_than:
            return None
        n = next(x for x in nodes if x.name == name)
        try:
            conn = connect(_pg_port(n), SU_PW, timeout=2)
            try:
                return n if where(conn)[1] is False else None
            finally:
                conn.close()
        except Exception:
            return None
    return wait_until(ok, timeout, "a writable leader", 0.2)


def _wait_replicas_caught_up(etcd, leader, followers, timeout):
    """Every replica runs and its member key shows the leader's WAL position (what a failover
    needs to pick a candidate)."""
    conn = connect(_pg_port(leader), SU_PW)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS t (id int)")
        cur.execute("SELECT pg_current_wal_lsn() - '0/0'")
        lsn = int(cur.fetchone()[0])
    conn.close()
    e = leader.config["etcd"]
    prefix = f"/{e.get('namespace', 'service').strip('/')}/{e['scope']}/members/"

    def ok():
        for n in followers:
            raw_member = etcd.get(prefix + n.name)
            m = json.loads(raw_member) if raw_member else {}
            if m.get("state") != "running" or m.get("xlog_location", -1) < lsn:
                return False
        return True
    wait_until(ok, timeout, "replicas running at the leader's WAL position", 0.2)


@pytest.mark.timeout(300)
def test_cluster_failover(etcd, pgwarden_node):
    nodes = [pgwarden_node(name=f"n{i + 1}", etcd=etcd, overrides=CLUSTER) for i in range(3)]
    leader = _writable_leader(etcd, nodes, 120)
    followers = [n for n in nodes if n is not leader]
    _wait_replicas_caught_up(etcd, leader, followers, 120)

    def served(node, which, timeout=10):
        conn = connect(port_of(node, which), SU_PW, timeout=timeout)
        try:
            return where(conn)
        finally:
            conn.close()

    # every node's read-write port reaches the leader; read-only reaches a replica or the leader
    for n in nodes:
        wait_until(lambda: _try(lambda: served(n, "rw")) == (_pg_port(leader), False), 60,
                   f"{n.name}'s rw port to reach the leader", 0.5)
        port, in_recovery = served(n, "ro")
        assert (port, in_recovery) == (_pg_port(leader), False) or in_recovery, (port, in_recovery)

    # a session through a follower's forwarder to the leader
    f = followers[0]
    session = connect(port_of(f, "rw"), SU_PW)
    assert where(session) == (_pg_port(leader), False)

    # the leader node freezes entirely (agent and PostgreSQL): a failover follows
    frozen = freeze(node_tree(leader))
    try:
        # a client connecting now reaches the frozen server (TCP accepts, nothing answers) or
        # is held; either way it must end up on the new leader, not fail
        held = Background(lambda: served(f, "rw", timeout=90))
        new = _writable_leader(etcd, nodes, 60, other_than=leader.name)
        assert new is not leader
        # the old session is closed by the forwarder (the frozen server cannot do it)
        t0 = time.monotonic()
        with pytest.raises(Exception):
            with session.cursor() as cur:
                cur.execute("SELECT 1")
        assert time.monotonic() - t0 < 5
        port, held_in_recovery = held.result(60)
        assert port == _pg_port(new), (port, _pg_port(new))
        # and new clients on every live node go to the new leader
        for n in followers:
            wait_until(lambda: _try(lambda: served(n, "rw")) == (_pg_port(new), False), 30,
                       f"{n.name}'s rw port to reach the new leader", 0.5)
    finally:
        thaw(frozen)
    # ha publishes the new leader only once its PostgreSQL accepts writes: the held client
    # never lands on a server still in recovery
    assert not held_in_recovery


def _try(fn):
    try:
        return fn()
    except Exception:
        return None
