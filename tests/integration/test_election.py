"""Leader election and fencing with real etcd and three `pgwarden run` nodes: one leader at any
time across SIGKILLed leaders, failover within ttl + 1 s, fencing of a SIGSTOPped ha process
before etcd can hand the key to another node, voluntary release, nofailover, etcd member loss,
and Patroni-format values."""
import base64
import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlparse

import pytest

from conftest import logfmt, sqlite_query, wait_until

TTL = 5.0
FAST_HA = {
    "ha": {"ttl": "5s", "loop_wait": "1s", "retry_timeout": "2s", "fencing_margin": "2s"},
    "etcd": {"request_timeout": "1s"},
}
MEMBER_FIELDS = {"conn_url", "api_url", "state", "role", "version"}


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def unb64(s):
    return base64.b64decode(s or "").decode(errors="replace")


def merged(*dicts):
    out = {}
    for d in dicts:
        for sec, kv in (d or {}).items():
            out.setdefault(sec, {}).update(kv)
    return out


def log_ts(rec):
    """CLOCK_REALTIME seconds of a log record (ts=2026-11-26T02:11:02.819Z)."""
    return datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def all_records(node):
    """Every logfmt record of every run of the node (restarts append to the same file)."""
    try:
        text = node.stderr_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [r for r in (logfmt(l) for l in text.splitlines()) if r]


def prefix_of(node):
    return f"/service/{node.config['etcd']['scope']}/"


class KeyWatch(threading.Thread):
    """Streams etcd's /v3/watch on one key and records (arrival time.time(), type, value,
    create_revision, mod_revision, lease) for every event."""

    def __init__(self, url, key, start_revision):
        super().__init__(daemon=True)
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.body = json.dumps({"create_request": {
            "key": b64(key), "start_revision": str(start_revision)}})
        self.events = []
        self.lock = threading.Lock()
        self.conn = None
        self.created = threading.Event()
        self.stopping = False
        self.error = None

    def run(self):
        try:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            self.conn.request("POST", "/v3/watch", self.body, {"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            while not self.stopping:
                line = resp.readline()
                if not line:
                    break
                t = time.time()
                msg = json.loads(line).get("result", {})
                if msg.get("created"):
                    self.created.set()
                with self.lock:
                    for ev in msg.get("events") or []:
                        kv = ev.get("kv", {})
                        self.events.append({
                            "t": t, "type": ev.get("type", "PUT"), "value": unb64(kv.get("value")),
                            "create": int(kv.get("create_revision", 0)),
                            "mod": int(kv.get("mod_revision", 0)), "lease": int(kv.get("lease", 0))})
        except Exception as e:  # reported by check(); a stop closes the socket under us
            if not self.stopping:
                self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def wait_put(self, pred, timeout, desc):
        def found():
            for ev in self.snapshot():
                if ev["type"] == "PUT" and pred(ev):
                    return ev
            return None
        return wait_until(found, timeout, desc, interval=0.02)

    def stop(self):
        self.stopping = True
        if self.conn and self.conn.sock:
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.join(5)


def start_watch(etcd_url, key):
    st, resp = etcd_call_json(etcd_url, "/v3/kv/range", {"key": b64(key)})
    rev = int(resp["header"]["revision"])
    w = KeyWatch(etcd_url, key, rev + 1)
    w.start()
    assert w.created.wait(10), "etcd watch not created"
    return w


def etcd_call_json(url, path, body):
    import urllib.request
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, json.loads(r.read() or b"{}")


def leader_kv(etcd_url, key):
    """(value, create_revision, mod_revision, lease) of the leader key, or None."""
    _, resp = etcd_call_json(etcd_url, "/v3/kv/range", {"key": b64(key)})
    kvs = resp.get("kvs") or []
    if not kvs:
        return None
    kv = kvs[0]
    return (unb64(kv.get("value")), int(kv["create_revision"]), int(kv["mod_revision"]),
            int(kv.get("lease", 0)))


def check_key_history(events):
    """At the etcd level: the leader key never passes from one holder to another without being
    deleted first (a put with the same value is a renewal/takeover by the same member)."""
    holder = None
    for ev in events:
        if ev["type"] == "DELETE":
            holder = None
        else:
            assert holder in (None, ev["value"]), \
                f"leader key went from {holder} to {ev['value']} without a delete: {events}"
            holder = ev["value"]


def leadership_intervals(node, killed_at=()):
    """[(start, end)] wall-clock seconds during which the node acted as leader, from its log:
    from "acquired leadership" to the first "lost leadership"/"fencing" (ha or supervisor),
    or to a SIGKILL time the test recorded, or to now."""
    out, start = [], None
    kills = sorted(killed_at)
    for r in all_records(node):
        t = log_ts(r)
        if start is not None and kills and kills[0] <= t:
            out.append((start, kills.pop(0)))
            start = None
        if r.get("msg") == "acquired leadership" and r.get("role") == "ha":
            assert start is None, f"{node.name}: acquired leadership twice: {r}"
            start = t
        elif start is not None and r.get("msg") in ("lost leadership", "fencing"):
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, kills[0] if kills else time.time()))
    return out


def assert_one_leader_at_a_time(nodes, kills):
    spans = sorted((s, e, n.name) for n in nodes for s, e in leadership_intervals(n, kills.get(n.name, ())))
    for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
        assert s2 >= e1, f"{n2} became leader at {s2:.3f} while {n1} led until {e1:.3f}: {spans}"
    return spans


def kill_node(node):
    """Node loss: SIGKILL to every process of the node at once (its process group), so no
    process gets to notice the others dying."""
    os.killpg(node.pid, signal.SIGKILL)
    t = time.time()
    node.proc.popen.wait(10)
    return t


@pytest.fixture
def cluster(pgwarden_node):
    """Factory: cluster(etcd_url, n=3, overrides=None, nofailover=(), log_level=None)."""
    def make(etcd_url, n=3, overrides=None, nofailover=(), debug=()):
        nodes = []
        for i in range(n):
            name = f"n{i + 1}"
            ov = merged(FAST_HA, overrides)
            if name in nofailover:
                ov = merged(ov, {"ha": {"nofailover": True}})
            if name in debug:
                ov = merged(ov, {"log": {"level": "debug"}})
            nodes.append(pgwarden_node(name=name, etcd=etcd_url, overrides=ov))
        return nodes
    return make


def wait_leader(etcd_url, nodes, timeout=15, other_than=None):
    key = prefix_of(nodes[0]) + "leader"

    def found():
        kv = leader_kv(etcd_url, key)
        return kv if kv and kv[0] != other_than else None
    kv = wait_until(found, timeout, "a leader key" + (f" other than {other_than}" if other_than else ""))
    return next(n for n in nodes if n.name == kv[0]), kv


# --------------------------------------------------------------------------------------------

def test_one_leader_and_patroni_values(etcd, cluster):
    nodes = cluster(etcd.url, nofailover=("n3",), debug=("n2",))
    leader, (name, create, _, lease) = wait_leader(etcd.url, nodes)
    assert name in ("n1", "n2"), "a nofailover node must never take the leader key"
    pfx = prefix_of(nodes[0])
    # every node has a member key; the leader's is under the same lease as the leader key
    def members():
        keys = etcd.get_prefix(pfx + "members/")
        return keys if len(keys) == 3 else None
    vals = wait_until(members, 10, "three member keys")
    for n in nodes:
        v = json.loads(vals[pfx + "members/" + n.name])
        assert MEMBER_FIELDS <= set(v), v
        assert v["conn_url"] == f"postgres://{n.config['postgresql']['listen']}/postgres", v
        assert v["api_url"] == f"http://{n.config['web']['listen']}/patroni", v
        assert (v["state"], v["role"], v["version"]) == ("stopped", "replica", "3.0.2"), v
        assert "xlog_location" not in v and "timeline" not in v, v
        if n.name == "n3":
            assert v.get("tags") == {"nofailover": True}, v
        else:
            assert "tags" not in v, v
    _, resp = etcd_call_json(etcd.url, "/v3/kv/range", {"key": b64(pfx + "members/" + name)})
    assert int(resp["kvs"][0]["lease"]) == lease
    # config (written from the local values by the leader) and status, in Patroni's formats
    cfg = json.loads(wait_until(lambda: etcd.get(pfx + "config"), 10, "config key"))
    assert (cfg["ttl"], cfg["loop_wait"], cfg["retry_timeout"]) == (5, 1, 2), cfg
    assert cfg["maximum_lag_on_failover"] == 1048576 and cfg["postgresql"]["use_slots"] is True
    status = json.loads(wait_until(lambda: etcd.get(pfx + "status"), 10, "status key"))
    assert status == {"optime": 0}, status
    # logs, SQLite events and the route each node's proxy got
    leader.wait_record(msg="acquired leadership", role="ha", term=str(create))
    for n in nodes:
        if n is not leader:
            n.wait_record(msg="leader changed", role="ha", leader=name)
        n.wait_record(msg="route", role="proxy", leader=name, term=str(create))
        assert not n.find_records(msg="fencing"), n.name
    rows = wait_until(lambda: sqlite_query(
        leader.db_path, "select kind, member, term, detail from events where kind='role_change'"),
        10, "a role_change event")
    assert any(r[0] == "role_change" and r[1] == name and r[2] == create and
               json.loads(r[3])["event"] == "acquired leadership" for r in rows), rows
    follower = next(n for n in nodes if n is not leader)
    rows = sqlite_query(follower.db_path, "select detail from events where kind='role_change'")
    assert any(json.loads(r[0]) == {"event": "leader changed", "leader": name, "previous": ""}
               for r in rows), rows
    # idle: one keepalive per loop_wait and nothing else (the watch is one long request)
    rec = nodes[1].wait_record(timeout=15, msg="etcd requests", role="ha")
    assert float(rec["per_s"]) <= 1.5, rec


@pytest.mark.timeout(240)
def test_sigkill_leader_rounds_one_leader_at_a_time(etcd, cluster):
    nodes = cluster(etcd.url)
    key = prefix_of(nodes[0]) + "leader"
    leader, kv = wait_leader(etcd.url, nodes)
    watch = start_watch(etcd.url, key)
    kills = {}
    try:
        for rnd in range(3):
            leader, (name, create, _, _) = wait_leader(etcd.url, nodes)
            time.sleep(0.5)  # let a keepalive or two pass: the kill lands mid-lease
            t_kill = kill_node(leader)
            kills.setdefault(name, []).append(t_kill)
            ev = watch.wait_put(lambda e: e["value"] != name and e["t"] > t_kill, TTL + 5,
                                f"round {rnd}: a new leader after killing {name}")
            took = ev["t"] - t_kill
            assert took <= TTL + 1.0, f"round {rnd}: new leader after {took:.2f}s (ttl {TTL})"
            # the killed node comes back and follows the new leader without a fight
            mark = len(leader.stderr_path.read_text())
            leader.start()
            leader.wait_ready()
            leader.wait_log(r'msg="leader changed" leader=' + re.escape(ev["value"]), 15)
            assert leader_kv(etcd.url, key)[0] == ev["value"]
            assert "acquired leadership" not in leader.stderr_path.read_text()[mark:]
        time.sleep(1.5)
    finally:
        watch.stop()
    assert watch.error is None, watch.error
    events = watch.snapshot()
    check_key_history(events)
    assert len([e for e in events if e["type"] == "DELETE"]) == 3, events
    assert_one_leader_at_a_time(nodes, kills)
    for n in nodes:
        assert not n.find_records(msg="fencing"), f"{n.name} fenced: nobody stalled"


@pytest.mark.timeout(150)
def test_sigstopped_leader_is_fenced_before_a_new_leader(etcd, cluster):
    nodes = cluster(etcd.url)
    key = prefix_of(nodes[0]) + "leader"
    old, (old_name, old_create, _, _) = wait_leader(etcd.url, nodes)
    old.wait_record(msg="enforcing the leader lease deadline", role="supervisor")
    watch = start_watch(etcd.url, key)
    ha_pid = old.child_pids()["ha"]
    try:
        old.kill_child(ha_pid, signal.SIGSTOP)
        t_stop = time.time()
        try:
            new_ev = watch.wait_put(lambda e: e["value"] != old_name, TTL + 5, "a new leader")
            fence = old.wait_record(msg="fencing", role="supervisor", by="supervisor")
            assert int(fence["term"]) == old_create
            t_fence = log_ts(fence)
            new = next(n for n in nodes if n.name == new_ev["value"])
            t_acq = log_ts(new.wait_record(msg="acquired leadership", role="ha"))
            deleted = [e for e in watch.snapshot() if e["type"] == "DELETE"]
            assert deleted, "the old key must have been deleted (lease expiry) first"
            # the supervisor fenced on ha's behalf before etcd even let the key go
            assert t_stop < t_fence < deleted[0]["t"] <= new_ev["t"], \
                (t_stop, t_fence, deleted[0]["t"], new_ev["t"])
            assert t_fence < t_acq
            assert deleted[0]["t"] - t_fence > 1.0, "the fencing margin should show"
            # and told the proxy to stop routing writes
            old.wait_record(msg="route", role="proxy", **{"from": "supervisor", "leader": "none"})
            time.sleep(max(0.0, t_stop + TTL + 2.0 - time.time()))  # stopped well past the TTL
        finally:
            mark = len(old.stderr_path.read_text())
            os.kill(ha_pid, signal.SIGCONT)
        t_cont = time.time()
        # on SIGCONT the stalled ha sees its deadline passed: it fences and never acts as leader
        old.wait_log(r'msg="fencing" by=ha', 10, since=0)
        old.wait_log(r'msg="lost leadership"', 10)
        old.wait_log(r'msg="leader changed" leader=' + re.escape(new_ev["value"]), 10)
        time.sleep(3)
        after = old.stderr_path.read_text()[mark:]
        assert "acquired leadership" not in after
        kv = leader_kv(etcd.url, key)
        assert kv[0] == new_ev["value"] and kv[1] == new_ev["create"] and kv[2] == new_ev["mod"], \
            f"the leader key was rewritten after SIGCONT: {kv} vs {new_ev}"
        assert not [e for e in watch.snapshot() if e["t"] >= t_cont and e["value"] == old_name]
    finally:
        watch.stop()
    check_key_history(watch.snapshot())
    rows = sqlite_query(old.db_path, "select kind, term, detail from events where kind='fencing'")
    assert rows and rows[0][1] == old_create and json.loads(rows[0][2])["by"] == "ha", rows
    assert_one_leader_at_a_time(nodes, {})


def test_shutdown_releases_and_nofailover_never_leads(etcd, cluster):
    nodes = cluster(etcd.url, nofailover=("n3",))
    key = prefix_of(nodes[0]) + "leader"
    first, (first_name, _, _, _) = wait_leader(etcd.url, nodes)
    watch = start_watch(etcd.url, key)
    try:
        t0 = time.time()
        first.stop()
        first.wait_record(msg="lost leadership", role="ha", reason="shutdown", released="yes")
        ev = watch.wait_put(lambda e: e["value"] != first_name, 5, "a new leader after release")
        assert ev["t"] - t0 < 2.0, "a released key is taken at once, not after the TTL"
        assert ev["value"] != "n3"
        second = next(n for n in nodes if n.name == ev["value"])
        # the member key went with the revoked lease
        assert etcd.get(prefix_of(nodes[0]) + "members/" + first_name) is None
        second.stop()
        t1 = time.time()
        wait_until(lambda: leader_kv(etcd.url, key) is None, 5, "the key released")
        time.sleep(TTL + 1)  # n3 (nofailover) must not race, even with nobody left
        assert leader_kv(etcd.url, key) is None
        assert not nodes[2].find_records(msg="acquired leadership")
        assert not [e for e in watch.snapshot() if e["t"] > t1 and e["type"] == "PUT"]
    finally:
        watch.stop()
    check_key_history(watch.snapshot())


@pytest.mark.timeout(180)
def test_etcd_member_loss_keeps_leadership(etcd_cluster, cluster):
    ec = etcd_cluster(3)
    ov = {"ha": {"ttl": "8s", "retry_timeout": "3s"}}
    nodes = cluster(ec.endpoints, overrides=ov)
    leader, (name, create, _, lease) = wait_leader(ec.endpoints.split(",")[0], nodes)
    time.sleep(2)
    used = leader.find_records(msg="connected to etcd", role="ha")[-1]["endpoint"]
    idx = next(i for i, m in enumerate(ec.members) if m.url == used)
    other = next(m for i, m in enumerate(ec.members) if i != idx)
    mark = len(leader.stderr_path.read_text())
    ec.stop_member(idx, sig=signal.SIGKILL)
    time.sleep(6)
    kv = leader_kv(other.url, prefix_of(nodes[0]) + "leader")
    assert kv == (name, create, kv[2], lease), f"leader changed after losing etcd {used}: {kv}"
    ec.start_member(idx)
    time.sleep(4)
    kv = leader_kv(other.url, prefix_of(nodes[0]) + "leader")
    assert kv[:2] == (name, create) and kv[3] == lease, kv
    after = leader.stderr_path.read_text()[mark:]
    for bad in ("lost leadership", "fencing", "lease granted", "acquired leadership"):
        assert bad not in after, f"{bad!r} after the etcd member loss:\n{after}"
    assert "etcd endpoint failed, trying the next one" in after or "etcd watch lost" in after, after
    for n in nodes:
        assert not n.find_records(msg="fencing"), n.name


def test_ha_crash_keeps_leadership_by_takeover(etcd, cluster):
    """The supervisor restarts a crashed ha within the TTL: the new ha takes the key over with
    an ownership-guarded txn (value == its name AND lease == the old lease): no failover."""
    nodes = cluster(etcd.url)
    key = prefix_of(nodes[0]) + "leader"
    leader, (name, create, _, lease) = wait_leader(etcd.url, nodes)
    watch = start_watch(etcd.url, key)
    try:
        mark = len(leader.stderr_path.read_text())
        leader.kill_child(leader.child_pids()["ha"], signal.SIGKILL)
        leader.wait_log(r'msg="acquired leadership" term=%d how=takeover' % create, 10, since=0)
        kv = leader_kv(etcd.url, key)
        assert kv[0] == name and kv[1] == create and kv[3] != lease, (kv, lease)
        time.sleep(TTL)  # the old lease expires: nothing happens to the key
        assert leader_kv(etcd.url, key)[:2] == (name, create)
    finally:
        watch.stop()
    events = watch.snapshot()
    assert [e["type"] for e in events] == ["PUT"] and events[0]["value"] == name, events
    after = leader.stderr_path.read_text()[mark:]
    assert 'msg="fencing"' not in after, after
    for n in nodes:
        if n is not leader:
            assert not n.find_records(msg="acquired leadership"), n.name


@pytest.mark.timeout(150)
def test_etcd_stall_fences_the_leader(etcd, cluster):
    """etcd stops answering (SIGSTOP) for longer than the TTL: the leader fences itself by its
    deadline; when etcd resumes, the expired lease cannot be renewed and the key changes hands
    only through a delete, with one leader at a time."""
    nodes = cluster(etcd.url)
    key = prefix_of(nodes[0]) + "leader"
    old, (old_name, old_create, _, _) = wait_leader(etcd.url, nodes)
    time.sleep(1)
    os.kill(etcd.pid, signal.SIGSTOP)
    t_stop = time.time()
    try:
        fence = old.wait_record(timeout=TTL + 5, msg="fencing", term=str(old_create))
        assert log_ts(fence) - t_stop < TTL - 1.0, fence  # well before etcd's TTL could run out
        old.wait_record(timeout=5, msg="route", role="proxy", leader="none")
        time.sleep(max(0.0, t_stop + TTL + 1.0 - time.time()))
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    t_cont = time.time()
    def new_key():
        kv = leader_kv(etcd.url, key)
        return kv if kv and kv[1] != old_create else None
    kv = wait_until(new_key, 2 * TTL + 5, "a leader key created after the stall")
    new = next(n for n in nodes if n.name == kv[0])
    t_acq = log_ts(new.wait_record(msg="acquired leadership", role="ha", term=str(kv[1])))
    assert t_acq > t_cont
    time.sleep(2)
    now = leader_kv(etcd.url, key)
    assert now is not None and now[:2] == kv[:2], (now, kv)
    assert_one_leader_at_a_time(nodes, {})
