"""The harness itself works: etcd, etcd cluster, PostgreSQL, and the node process tracking
(with a stand-in supervisor script, so these run without the pgwarden binary)."""
import signal
import socket
from pathlib import Path

import pytest

from conftest import (SYS_PYTHON, free_port, ident_alive, logfmt, make_dir, pid_alive,
                      port_refuses, proc_ident, render_ini, start_etcd_single,
                      wait_until, write_file)


def test_free_port_is_unique_and_bindable():
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    for p in ports[:3]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_etcd_put_get_roundtrip(etcd):
    assert etcd.url.startswith("http://127.0.0.1:")
    assert pid_alive(etcd.pid)
    assert etcd.get("/it/missing") is None
    etcd.put("/it/a", "hello")
    etcd.put("/it/b", "wörld {\"json\": 1}")
    assert etcd.get("/it/a") == "hello"
    assert etcd.get("/it/b") == "wörld {\"json\": 1}"
    etcd.put("/it/a", "again")
    assert etcd.get("/it/a") == "again"
    assert etcd.get_prefix("/it/") == {"/it/a": "again", "/it/b": "wörld {\"json\": 1}"}
    assert etcd.delete("/it/", prefix=True) == 2
    assert etcd.get_prefix("/it/") == {}


def test_etcd_stop_leaves_no_process_and_frees_ports(tmp_dir):
    m = start_etcd_single(make_dir(tmp_dir / "e"))
    ident = m.proc.ident
    m.put("/k", "v")
    rc = m.stop()
    assert rc in (0, -signal.SIGTERM), rc
    assert not ident_alive(ident)
    assert port_refuses(m.client_port)
    assert port_refuses(m.peer_port)


def test_etcd_cluster_three_members(etcd_cluster):
    c = etcd_cluster(3)
    assert len(c.endpoints.split(",")) == 3
    c[0].put("/it/x", "1")
    assert c[2].get("/it/x") == "1"   # linearizable read through another member
    leader = wait_until(lambda: c.leader_index() is not None, 20, "an etcd leader")
    assert leader
    victim = (c.leader_index() + 1) % 3           # stop a follower: quorum (2/3) stays
    c.stop_member(victim)
    assert not ident_alive(c[victim].proc.ident)
    alive = [m for i, m in enumerate(c.members) if i != victim]
    alive[0].put("/it/y", "2")
    assert alive[1].get("/it/y") == "2"
    c.start_member(victim)                         # rejoins with its data
    assert wait_until(lambda: c[victim].get("/it/y") == "2", 20, "rejoined member to catch up")
    idents = [m.proc.ident for m in c.members]
    c.stop()
    assert not any(ident_alive(i) for i in idents)
    assert all(port_refuses(m.client_port) for m in c.members)


def test_postgres_select_1_and_checksums(postgres):
    pg = postgres()
    assert pg.scalar("SELECT 1") == 1
    assert pg.scalar("SHOW data_checksums") == "on"
    assert pg.scalar("SHOW listen_addresses") == "127.0.0.1"
    assert pg.scalar("SELECT current_user") == "postgres"


def test_postgres_stop_leaves_no_process_and_frees_port(postgres):
    pg = postgres()
    conn = pg.connect()           # a live backend must go away too
    ident = pg.proc.ident
    backend_pid = conn.get_backend_pid()
    backend = proc_ident(backend_pid)
    assert backend and ident_alive(backend)
    rc = pg.stop()
    conn.close()
    assert rc == 0
    assert not ident_alive(ident)
    assert not ident_alive(backend)
    assert port_refuses(pg.port)
    assert not (pg.data_dir / "postmaster.pid").exists()
    pg.start()                    # and it starts again on the same data
    assert pg.scalar("SELECT 2") == 2


def test_render_ini_line_numbers():
    text, lines = render_ini({"a": {"x": 1, "y": None}, "b": {"z": "q"}})
    src = text.splitlines()
    assert src[lines[("a", "x")] - 1] == "x = 1"
    assert src[lines[("b", "z")] - 1] == "z = q"
    assert ("a", "y") not in lines


def test_logfmt_parser():
    r = logfmt('ts=2026-11-26T00:43:02.123Z level=info role=supervisor module=supervisor '
               'msg="child \\"x\\" started" child=ha pid=1234')
    assert r["msg"] == 'child "x" started' and r["child"] == "ha" and r["pid"] == "1234"
    assert logfmt("not a logfmt line") == {}


# ---- node tracking, with a stand-in supervisor (no pgwarden binary needed) ----

FAKE_SUPERVISOR = r'''
import os, signal, sys, time
def log(role, msg, **kw):
    extra = "".join(f" {k}={v}" for k, v in kw.items())
    sys.stderr.write(f'ts=2026-01-01T00:00:00.000Z level=info role={role} module=fake msg="{msg}"{extra}\n')
    sys.stderr.flush()
mode = os.environ.get("FAKE_MODE", "clean")
kids = {}
for name in ("ha", "proxy", "web"):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if mode == "grandchild" and name == "ha":
            if os.fork() == 0:
                while True:
                    time.sleep(1)
        while True:
            time.sleep(1)
    kids[name] = pid
    log("supervisor", "child started", child=name, pid=pid)
def stop(sig, frame):
    if mode != "leak":
        for p in kids.values():
            os.kill(p, signal.SIGTERM)
        for p in kids.values():
            os.waitpid(p, 0)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
log("supervisor", "ready")
while True:
    signal.pause()
'''


@pytest.fixture
def fake_bin(workdir):
    p = write_file(Path(workdir) / "fake_supervisor.py", FAKE_SUPERVISOR)
    return [SYS_PYTHON, str(p)]


def test_node_tracking_with_clean_supervisor(pgwarden_node, fake_bin):
    node = pgwarden_node(bin=fake_bin, env={"FAKE_MODE": "clean"})
    kids = node.children()
    assert len(kids) == 3
    assert sorted(node.child_pids().values()) == kids
    assert set(node.child_pids()) == {"ha", "proxy", "web"}
    assert node.stop() == 0
    assert not any(pid_alive(k) for k in kids)
    assert node.cleanup() == []


@pytest.mark.parametrize("mode", ["leak", "grandchild"])
def test_node_cleanup_finds_and_kills_leftovers(pgwarden_node, fake_bin, mode):
    """leak: children orphaned when the supervisor exits; grandchild: a grandchild is
    orphaned when its parent is killed. Both must be found (env tag) and killed."""
    node = pgwarden_node(bin=fake_bin, env={"FAKE_MODE": mode})
    kids = node.children()
    if mode == "grandchild":
        ha = node.child_pids()["ha"]
        wait_until(lambda: len(node.descendants()) == 4, 10, "the grandchild")
        node.kill_child(ha, signal.SIGKILL)
        kids = node.descendants()
    assert node.stop() == 0
    problems = node.cleanup(grace=0.5)
    assert problems and "left" in problems[0], problems
    assert wait_until(lambda: not any(pid_alive(k) for k in kids), 10, "leftovers killed")
    assert node.cleanup() == []   # and the fixture teardown finds nothing more
