"""HA operations on a real three-node cluster: switchover (named, any, scheduled) through the
Patroni `failover` key, rejoin of a diverged former primary with pg_rewind, synchronous mode
with no committed row lost over ten leader crashes and no member named synchronous standby while
its data is being copied, pause, the SIGTERM handover, an agent
restarted within the TTL, and dynamic PostgreSQL parameters."""
import datetime
import json
import os
import shutil
import signal
import threading
import time

import pytest

from conftest import pid_alive, ppid_map, proc_cmdline, wait_until
from proxyutil import freeze, thaw
from test_api import api
from test_ha_cluster import (TTL, _kv, bootstrap, ha_cluster,  # noqa: F401 (fixture)
                             connect, leader_name, postmaster_pid, prefix,
                             query, wait_caught_up, wait_primary, wait_rows)


def put_json(etcd, key, obj):
    etcd.put(key, json.dumps(obj, separators=(",", ":")))


def patch_config(etcd, node, **changes):
    key = prefix(node) + "config"
    cfg = json.loads(etcd.get(key) or "{}")
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    put_json(etcd, key, cfg)


def member(etcd, node, name=None):
    raw = etcd.get(prefix(node) + "members/" + (name or node.name))
    return json.loads(raw) if raw else {}


def in_recovery(node):
    return query(node, "SELECT pg_is_in_recovery()")[0][0]


def test_switchover_to_named_candidate(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    cand = next(n for n in nodes if n is not leader)
    p = prefix(leader)
    t0 = time.monotonic()
    put_json(etcd, p + "failover", {"leader": leader.name, "member": cand.name})
    new = wait_primary(etcd.url, nodes, 20, other_than=leader.name)
    took = time.monotonic() - t0
    assert new is cand, new.name
    assert took < 10, took
    wait_until(lambda: etcd.get(p + "failover") is None, 10, "the failover key cleared")
    query(new, "INSERT INTO t VALUES (11)")
    for n in nodes:  # the old leader follows the new one
        wait_rows(n, 11, 60)
    assert in_recovery(leader) is True
    r = leader.wait_record(msg="following the leader after a divergence check", timeout=30)
    assert r.get("diverged") == "no", r  # a graceful switchover never needs pg_rewind
    hist = json.loads(etcd.get(p + "history"))
    assert hist[-1][4] == cand.name, hist
    assert leader.find_records(msg="switchover: handing over the leadership")


def test_switchover_to_any_and_scheduled(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    p = prefix(leader)
    put_json(etcd, p + "failover", {"leader": leader.name})
    first = wait_primary(etcd.url, nodes, 20, other_than=leader.name)
    wait_until(lambda: etcd.get(p + "failover") is None, 10, "the failover key cleared")
    for n in nodes:
        wait_until(lambda n=n: member(etcd, n).get("state") == "running", 60, f"{n.name} running")
    wait_caught_up(etcd.url, nodes, first, 30)
    # scheduled 4 s ahead: nothing happens before, the switchover happens after
    at = (datetime.datetime.now(datetime.timezone.utc) +
          datetime.timedelta(seconds=4)).replace(microsecond=0)
    put_json(etcd, p + "failover", {"leader": first.name,
                                    "scheduled_at": at.isoformat(timespec="seconds")})
    time.sleep(2)
    assert leader_name(etcd.url, first) == first.name
    second = wait_primary(etcd.url, nodes, 25, other_than=first.name)
    assert datetime.datetime.now(datetime.timezone.utc) >= at
    assert second is not first
    # a request for a candidate that cannot take over is cancelled, nothing changes
    put_json(etcd, p + "failover", {"leader": second.name, "member": "nosuchnode"})
    wait_until(lambda: etcd.get(p + "failover") is None, 10, "the impossible request cancelled")
    assert leader_name(etcd.url, second) == second.name
    assert second.find_records(msg="failover request cancelled")


def test_rejoin_with_pg_rewind_after_divergence(etcd, ha_cluster):
    """The whole leader node is frozen (SIGSTOP: no fencing can run) past the TTL; a replica
    takes over; a row written on the frozen node's PostgreSQL makes it diverge. Resumed, the
    node demotes, rewinds from the new leader and follows it; the diverged row is gone."""
    nodes, leader = bootstrap(etcd, ha_cluster)
    pids = [leader.proc.pid] + list(leader.child_pids().values())
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        new = wait_primary(etcd.url, nodes, TTL + 20, other_than=leader.name)
        query(new, "INSERT INTO t VALUES (11)")
        query(leader, "INSERT INTO t VALUES (999)")  # only on the old timeline
        query(leader, "CHECKPOINT")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    leader.wait_record(msg="diverged from the leader's timeline", timeout=30)
    leader.wait_record(msg="following the leader after a divergence check", timeout=60)
    for n in nodes:
        wait_rows(n, 11, 60)
    assert query(leader, "SELECT count(*) FROM t WHERE id = 999")[0][0] == 0
    assert in_recovery(leader) is True
    # once rewound and following, the standby is not judged diverged again (its checkpoint's
    # timeline is still the old one right after pg_rewind) and restarted
    fixed = leader.find_records(msg="following the leader after a divergence check")[-1]["ts"]
    later = [r for r in leader.find_records(msg="divergence checked")
             if r["ts"] > fixed and r.get("diverged") == "yes"]
    assert not later, later


# ten failovers in a row: more than the default watchdog on a loaded machine or an ASan build
@pytest.mark.timeout(300)
def test_sync_mode_no_committed_row_lost_over_ten_kills(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    p = prefix(leader)
    patch_config(etcd, leader, synchronous_mode=True)

    def sync_ready():
        raw = etcd.get(p + "sync")
        s = json.loads(raw) if raw else {}
        name = leader_name(etcd.url, leader)
        return s if s.get("sync_standby") and s.get("leader") == name else None
    wait_until(sync_ready, 30, "a synchronous standby in the sync key")
    by_name = {n.name: n for n in nodes}
    committed = []
    stop = threading.Event()
    errors = []

    def writer():
        i = 1000
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    name = leader_name(etcd.url, leader)
                    if not name:
                        time.sleep(0.05)
                        continue
                    conn = connect(by_name[name], timeout=1)
                    with conn.cursor() as cur:
                        cur.execute("SET statement_timeout = '3s'")
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO t VALUES (%s)", (i,))
                committed.append(i)  # COMMIT returned: it must survive
                i += 1
                time.sleep(0.02)
            except Exception as e:  # noqa: BLE001 - any failure: reconnect
                errors.append(str(e)[:80])
                i += 1
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                time.sleep(0.05)

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        for rnd in range(10):
            s = wait_until(sync_ready, 60, f"round {rnd}: a synchronous standby")
            cur = by_name[s["leader"]]
            n_before = len(committed)
            wait_until(lambda: len(committed) > n_before + 5, 20, "writes going on")
            pm = postmaster_pid(cur)
            # the leader may have changed its synchronous standby meanwhile: the one that counts
            # is the one named just before the kill
            s = wait_until(sync_ready, 30, f"round {rnd}: the synchronous standby before the kill")
            assert s["leader"] == cur.name, (cur.name, s)
            os.kill(pm, signal.SIGKILL)
            new = wait_primary(etcd.url, nodes, 60, other_than=cur.name)
            assert new.name in s["sync_standby"].split(","), (new.name, s)
    finally:
        time.sleep(1)
        stop.set()
        th.join(10)
    final = wait_primary(etcd.url, nodes, 30)
    have = {r[0] for r in query(final, "SELECT id FROM t WHERE id >= 1000")}
    lost = [i for i in committed if i not in have]
    assert len(committed) > 200, len(committed)
    assert lost == [], f"{len(lost)} committed rows lost: {lost[:20]}"


def test_member_being_copied_is_never_named_sync_standby(etcd, ha_cluster):
    """Synchronous mode: a member whose data is being copied (pg_basebackup, whose WAL stream
    shows as streaming on the leader) is not named the synchronous standby until it runs as a
    standby. Seen in the ten-kills test: a leader named a member still being copied, the only
    one it would then have allowed to take over. The copy also outlives the TTL without the
    member disappearing: its key stays, saying so, while the HA loop waits for the copy."""
    nodes = ha_cluster(2)
    leader = wait_primary(etcd.url, nodes, 90)
    other = next(n for n in nodes if n is not leader)
    query(leader, "CREATE TABLE t (id int primary key)")
    query(leader, "INSERT INTO t SELECT generate_series(1, 10)")
    wait_rows(other, 10, 90)
    p = prefix(leader)
    patch_config(etcd, leader, synchronous_mode=True)

    def sync_standby():
        raw = etcd.get(p + "sync")
        return (json.loads(raw) if raw else {}).get("sync_standby")
    wait_until(lambda: sync_standby() == other.name, 30, "the replica named synchronous standby")
    # the replica goes away (the leader stops naming it), and comes back with no data
    other.stop()
    wait_until(lambda: sync_standby() is None, 30, "the key without a synchronous standby")
    shutil.rmtree(other.data_dir)
    other.start()

    def copy_and_stream():
        """pg_basebackup's main process once its WAL streaming child runs too."""
        ppids = ppid_map()
        bb = [pid for pid in other.descendants() if "pg_basebackup" in (proc_cmdline(pid) or "")]
        main = [pid for pid in bb if ppids.get(pid) not in bb]
        return main[0] if main and len(bb) > 1 else None
    main = wait_until(copy_and_stream, 60, "pg_basebackup copying and streaming", 0.005)
    frozen = freeze([main])  # the copy waits; its WAL stream goes on
    streams, named, states, progress, shown = set(), [], set(), [], []
    try:
        t_end = time.monotonic() + 1.6 * TTL  # longer than the member key's lease
        while time.monotonic() < t_end:
            streams |= {r[0] for r in query(leader, "SELECT application_name FROM "
                                                    "pg_stat_replication WHERE state = 'streaming'")}
            m = member(etcd, other)
            states.add(m.get("state"))
            if "clone_bytes" in m:
                progress.append((m["clone_bytes"], m.get("clone_total_bytes")))
                shown = [c.get("clone") for c in json.loads(api(leader, "GET", "/cluster")[1])
                         ["members"] if c["name"] == other.name]
            if sync_standby() == other.name:
                named.append(member(etcd, other).get("state"))
            time.sleep(0.1)
    finally:
        thaw(frozen)
    assert f"{other.name} clone" in streams, f"the copy's WAL stream not seen streaming: {streams}"
    assert not named, f"named synchronous standby while its state was {named}"
    assert states == {"creating replica"}, f"the member key during the copy: {states}"
    # how far the copy is, as the leader sees it, in the member key and in /cluster
    assert progress, "no clone_bytes in the member key during the copy"
    done, total = progress[-1]
    assert total and 0 < done <= total, progress[-1]
    assert shown and shown[0] and shown[0]["total_bytes"] == total, shown
    wait_until(lambda: sync_standby() == other.name, 90, "the new copy named synchronous standby")
    assert member(etcd, other).get("state") == "running"
    assert "clone_bytes" not in member(etcd, other), member(etcd, other)
    for n in nodes:  # the copy is over for every node's /cluster too
        wait_until(lambda n=n: all("clone" not in c for c in json.loads(
            api(n, "GET", "/cluster")[1])["members"]), 10, f"{n.name}'s /cluster without a copy")
    wait_rows(other, 10, 30)
    # the copy did not wait for the leader to create the member's slot (it failed, and was
    # retried, when it did), and the member never lost its lease
    assert not other.find_records(step="pg_basebackup"), "a copy failed"
    assert not other.find_records(msg="lease lost")


def test_vanished_member_keeps_its_slot_for_member_slots_ttl(etcd, ha_cluster):
    """Patroni 4's member_slots_ttl: a member that goes away (a reboot, an agent restart) finds
    its slot on the leader when it comes back within member_slots_ttl, so the WAL written
    meanwhile was kept for it and it goes on streaming; later than that the slot is dropped."""
    nodes = ha_cluster(2)
    leader = wait_primary(etcd.url, nodes, 90)
    other = next(n for n in nodes if n is not leader)
    query(leader, "CREATE TABLE t (id int primary key)")
    wait_rows(other, 0, 90)
    ttl = 20
    patch_config(etcd, leader, member_slots_ttl=f"{ttl}s")

    def slots():
        return {r[0] for r in query(leader, "SELECT slot_name FROM pg_replication_slots")}
    wait_until(lambda: other.name in slots(), 30, "the member's slot on the leader")
    # away for less than member_slots_ttl: the slot stays, the member resumes from it
    other.stop()
    wait_until(lambda: not member(etcd, other), 30, "the member key gone")
    gone = time.monotonic()
    query(leader, "INSERT INTO t SELECT generate_series(1, 1000)")
    query(leader, "SELECT pg_switch_wal()")
    leader.wait_record(msg="keeping the slot of a member that is gone", slot=other.name,
                       timeout=10)
    assert other.name in slots()
    since = len(other.log())
    other.start()
    wait_until(lambda: member(etcd, other), 30, "the member key back")
    assert time.monotonic() - gone < ttl, "came back too late for this check"
    wait_rows(other, 1000, 60)
    assert not leader.find_records(msg="replication slot dropped", slot=other.name)
    assert not other.find_records(since, msg="cloning the leader"), "it was copied again"
    # away for longer: the slot goes once member_slots_ttl has passed, not before
    other.stop()
    wait_until(lambda: not member(etcd, other), 30, "the member key gone again")
    gone = time.monotonic()
    wait_until(lambda: other.name not in slots(), ttl + 20, "the slot dropped", 0.2)
    after = time.monotonic() - gone
    assert after >= ttl - 2, f"dropped {after:.1f}s after the member went, ttl {ttl}s"
    assert leader.find_records(msg="replication slot dropped", slot=other.name)


def test_pause_stops_failover(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    patch_config(etcd, leader, pause=True)
    for n in nodes:
        wait_until(lambda n=n: member(etcd, n).get("pause") is True, 15, f"{n.name} paused")
    pm = postmaster_pid(leader)
    os.kill(pm, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pm), 5, "the postmaster gone")
    deadline = time.monotonic() + 2 * TTL
    while time.monotonic() < deadline:  # nobody promotes, nothing restarts PostgreSQL
        assert leader_name(etcd.url, leader) == leader.name
        assert postmaster_pid(leader) in (None, pm) and not pid_alive(pm)
        for n in nodes:
            if n is not leader:
                assert in_recovery(n) is True
        time.sleep(0.5)
    patch_config(etcd, leader, pause=False)
    new = wait_primary(etcd.url, nodes, 30)
    query(new, "INSERT INTO t VALUES (11)")
    for n in nodes:
        wait_rows(n, 11, 60)


def test_sigterm_hands_over_then_rejoins(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    pm = postmaster_pid(leader)
    t0 = time.monotonic()
    leader.stop()  # SIGTERM
    new = wait_primary(etcd.url, nodes, TTL + 10, other_than=leader.name)
    assert time.monotonic() - t0 < TTL, "handover must not wait for the lease to expire"
    assert not pid_alive(pm)
    query(new, "INSERT INTO t VALUES (11)")
    leader.start()
    leader.wait_ready()
    r = leader.wait_record(msg="following the leader after a divergence check", timeout=60)
    assert r.get("diverged") == "no", r
    wait_rows(leader, 11, 60)


def test_agent_killed_and_restarted_within_ttl(etcd, ha_cluster):
    """The whole agent of the leader (supervisor and children) is SIGKILLed, PostgreSQL
    survives; started again within the TTL it takes its key back: no failover, no restart."""
    nodes, leader = bootstrap(etcd, ha_cluster)
    pm = postmaster_pid(leader)
    name = leader_name(etcd.url, leader)
    pids = [leader.proc.pid] + list(leader.child_pids().values())
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    leader.proc.popen.wait(5)
    leader.start()
    leader.wait_ready()
    leader.wait_record(msg="acquired leadership", timeout=TTL + 5)
    assert leader_name(etcd.url, leader) == name
    assert postmaster_pid(leader) == pm and pid_alive(pm)
    for n in nodes:
        if n is not leader:
            assert not n.find_records(msg="acquired leadership")
    query(leader, "INSERT INTO t VALUES (11)")
    for n in nodes:
        wait_rows(n, 11, 30)


def test_dynamic_parameters(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    patch_config(etcd, leader, postgresql={"parameters": {"work_mem": "12MB",
                                                          "max_prepared_transactions": 5}})
    for n in nodes:
        wait_until(lambda n=n: query(n, "SHOW work_mem")[0][0] == "12MB", 20,
                   f"work_mem on {n.name}")
        wait_until(lambda n=n: member(etcd, n).get("pending_restart") is True, 20,
                   f"{n.name} pending_restart")
