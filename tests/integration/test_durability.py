"""Durability of local state (issue #9): a full disk under the state folder (SQLite) or under
PostgreSQL's data folder is reported (log once per episode, event, /patroni field), is not fatal
to the HA loop, and the node recovers once space is freed. Both folders are small tmpfs mounts
made by the test (as root) and unmounted in teardown.

SQLite's survival of SIGKILL during writes is tested at unit level (tests/unit/
test_store_durability.c): no command-line path writes in a loop."""
import errno
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import RUN_UID, RUN_GID, sqlite_query, wait_until
from test_ha_cluster import (HA, TTL, _kv, prefix, query, wait_caught_up, wait_primary,
                             wait_rows)

STORE_FULL_MSG = ("cannot write the state store (further failures are not logged until a write "
                  "succeeds)")
DATA_FULL_MSG = ("the filesystem of the data directory is full: postgresql is not started until "
                 "space is freed")


@pytest.fixture
def mounts():
    """mount(path, size_mb): a tmpfs owned by postgres (mode 0700) at path; unmounted at the end
    (after the nodes, which are requested after this fixture, are stopped)."""
    done = []

    def mount(path, size_mb):
        path = Path(path)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size={size_mb}m,mode=0700,uid={RUN_UID},gid={RUN_GID}",
                            "tmpfs", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"mount tmpfs on {path}: {r.stderr}"
        done.append(path)
        return path

    yield mount
    problems = []
    for path in reversed(done):
        r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"umount {path}: {r.stderr.strip()}")
    assert not problems, problems


def fill(path):
    """Writes a file under path until the filesystem is full; returns it."""
    f = Path(path) / "fill.bin"
    chunk = b"\0" * (1 << 20)
    with open(f, "wb") as out:
        while True:
            try:
                out.write(chunk)
                out.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    # what the buffered writer could not write: the rest, byte-exact
    with open(f, "ab", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    st = os.statvfs(path)
    assert st.f_bavail * st.f_frsize < 4096, st
    return f


def patroni(node, timeout=5):
    url = f"http://127.0.0.1:{node.ports['web']}/patroni"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def events(node, kind):
    rows = sqlite_query(node.db_path, "SELECT ts_ms, detail FROM events WHERE kind = "
                        f"'{kind}' ORDER BY id")
    return [(ts, json.loads(d)) for ts, d in rows]


ELECTION = {"ha": {"ttl": "5s", "loop_wait": "1s", "retry_timeout": "2s",
                   "fencing_margin": "2s"},
            "etcd": {"request_timeout": "1s"}}


@pytest.mark.timeout(180)
def test_state_folder_full_is_reported_not_fatal(etcd, mounts, pgwarden_node):
    """The state folder (SQLite) fills up under a leading node: the leader key keeps being
    renewed for several TTLs, the REST API answers and shows "state_store": "disk full", the
    failure is logged once for the whole episode; once space is freed, writes resume, the
    episode is recorded as an event and the field goes away."""
    node = pgwarden_node(name="n1", etcd=etcd, overrides=ELECTION, start=False)
    mounts(node.state_dir, 8)
    node.start()
    node.wait_ready()
    node.wait_record(timeout=30, role="ha", msg="acquired leadership")
    kids = node.child_pids()
    key = prefix(node) + "leader"
    # samples are written every 5 s: the store is in use before the disk fills
    wait_until(lambda: sqlite_query(node.db_path, "SELECT count(*) FROM samples")[0][0] > 0, 30,
               "a first round of samples", 0.5)
    since = node.mark()
    filler = fill(node.state_dir)
    rec = node.wait_record(timeout=20, since=since, msg=STORE_FULL_MSG)
    assert rec["reason"] == "disk full", rec
    wait_until(lambda: patroni(node)[1].get("state_store") == "disk full", 10,
               '"state_store": "disk full" in /patroni', 0.2)
    # several TTLs (and sample rounds) on a full disk: still the leader, API answers
    t_end = time.monotonic() + 4 * TTL
    while time.monotonic() < t_end:
        assert _kv(etcd.url, key) == node.name
        status, body = patroni(node)
        assert status == 200, (status, body)
        assert body.get("state_store") == "disk full", body
        time.sleep(0.5)
    assert node.running() and node.child_pids() == kids, "a process was restarted"
    assert len(node.find_records(since=since, msg=STORE_FULL_MSG)) == 1, "logged more than once"
    assert not node.find_records(since=since, msg="lost leadership")
    # the ha process restarts while the disk is full (its start event cannot be written): it
    # comes back and leads again
    mark = node.mark()
    killed_at = time.time()
    os.kill(kids["ha"], signal.SIGKILL)
    wait_until(lambda: node.child_pids().get("ha") not in (None, kids["ha"]), 30,
               "a new ha process", 0.2)
    node.wait_record(timeout=30, since=mark, role="ha", msg="acquired leadership")
    kids = node.child_pids()
    wait_until(lambda: node.find_records(since=mark, msg=STORE_FULL_MSG), 20,
               "the new ha process's failing write", 0.5)
    time.sleep(2 * TTL)
    assert len(node.find_records(since=mark, msg=STORE_FULL_MSG)) == 1, "logged more than once"
    assert _kv(etcd.url, key) == node.name and node.child_pids() == kids
    wait_until(lambda: patroni(node)[1].get("state_store") == "disk full", 10,
               '"state_store": "disk full" in /patroni again', 0.2)
    # space back: the next write works, the episode becomes an event
    filler.unlink()
    freed_ms = int(time.time() * 1000)
    back = node.wait_record(timeout=20, since=mark, msg="state store writable again")
    assert back["reason"] == "disk full" and int(back["failures"]) >= 2, back
    wait_until(lambda: events(node, "state_store"), 20, "the state_store event", 0.5)
    ts, detail = events(node, "state_store")[-1]
    assert detail["event"] == "writable again" and detail["reason"] == "disk full", detail
    # the episode of the new ha process: from its first write to the one after space was freed
    assert detail["failures"] >= 2 and killed_at - 1 <= detail["since_ms"] / 1000, detail
    assert detail["since_ms"] + detail["down_ms"] >= freed_ms, detail
    wait_until(lambda: "state_store" not in patroni(node)[1], 10, "state_store gone from /patroni")
    wait_until(lambda: sqlite_query(node.db_path, "SELECT count(*) FROM samples WHERE ts_ms > "
                                    f"{freed_ms}")[0][0] > 0, 20, "new samples", 0.5)
    assert _kv(etcd.url, key) == node.name
    assert node.child_pids() == kids


@pytest.mark.timeout(300)
def test_data_folder_full_on_leader_fails_over(etcd, mounts, pgwarden_node):
    """PostgreSQL's data folder of the leader fills up and PostgreSQL dies when it cannot
    create the next WAL segment (PANIC, then its crash recovery fails): the agent reports it
    (one log line, an event, "data_directory": "disk full" in /patroni), does not try to start
    PostgreSQL while the disk is full, the replica takes over; once space is freed the old
    leader's PostgreSQL starts again and follows the new leader."""
    nodes = []
    for name in ("n1", "n2"):
        n = pgwarden_node(name=name, etcd=etcd.url, overrides=HA, start=False)
        mounts(n.data_dir, 192)
        n.start()
        n.wait_ready()
        nodes.append(n)
    leader = wait_primary(etcd.url, nodes, 120)
    other = next(n for n in nodes if n is not leader)
    query(leader, "CREATE TABLE t (id int primary key)")
    query(leader, "INSERT INTO t SELECT generate_series(1, 10)")
    for n in nodes:
        wait_rows(n, 10, 90)
    wait_caught_up(etcd.url, nodes, leader)

    since = leader.mark()
    filler = fill(leader.data_dir)
    rec = leader.wait_record(timeout=20, since=since, msg=DATA_FULL_MSG)
    assert int(rec["free_bytes"]) < 16 << 20, rec
    wait_until(lambda: patroni(leader)[1].get("data_directory") == "disk full", 10,
               '"data_directory": "disk full" in /patroni', 0.2)
    # WAL needs a new segment: the write PANICs, crash recovery cannot finish, PostgreSQL stops
    for i in range(40):
        try:
            query(leader, "SELECT pg_switch_wal()")
            query(leader, f"INSERT INTO t VALUES ({100 + i})")
        except Exception:
            break
        time.sleep(0.2)
    new = wait_primary(etcd.url, nodes, 60, other_than=leader.name)
    assert new is other
    leader.wait_record(timeout=30, since=since, msg="postgresql is down on the leader and a "
                       "replica is caught up: releasing the leader key")
    query(new, "INSERT INTO t VALUES (1000)")
    # while the disk is full: reported, PostgreSQL not started again (no restart loop)
    time.sleep(3 * TTL)
    assert len(leader.find_records(since=since, msg=DATA_FULL_MSG)) == 1
    assert not leader.find_records(since=since, msg="starting PostgreSQL")
    assert leader.running() and len(leader.children()) == 3
    full_ev = [d for _, d in events(leader, "postgresql")
               if d.get("event") == "data directory disk full"]
    assert len(full_ev) == 1 and full_ev[0]["free_bytes"] < 16 << 20, full_ev
    assert patroni(leader)[1].get("data_directory") == "disk full"
    # space back: reported, PostgreSQL starts and follows the new leader
    mark = leader.mark()
    filler.unlink()
    leader.wait_record(timeout=20, since=mark,
                       msg="the filesystem of the data directory has free space again")
    leader.wait_record(timeout=60, since=mark, msg="starting PostgreSQL")
    rows_now = query(new, "SELECT count(*) FROM t")[0][0]
    wait_rows(leader, rows_now, 90)
    assert query(leader, "SELECT pg_is_in_recovery()")[0][0] is True
    assert query(leader, "SELECT count(*) FROM t WHERE id = 1000")[0][0] == 1
    assert "data_directory" not in patroni(leader)[1]
    assert any(d.get("event") == "data directory disk space back"
               for _, d in events(leader, "postgresql"))
    assert _kv(etcd.url, prefix(new) + "leader") == new.name
