"""The dashboard in Debian's Chromium (playwright-core, dashboard.spec.mjs) against a real
three-node cluster: wrong password refused, login, three members and the leader, CSRF-less POSTs
refused, a switchover from the page (new leader and event shown; the time from the leader change
in etcd to the page showing it), held connections counted by this node's forwarder while the
switchover happens, a read-only user who cannot operate, the progress and the result of a real
`pgwarden migrate` (a database of the cluster copied into another one) in the Migration panel,
the progress of a copy when the page's node is reinitialized (its pg_basebackup held), logout. Screenshots go to build/results/screenshots/; the checks to build/results/browser.json."""
import json
import os
import pwd
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, RUN_USER, base_env, psycopg2_connect, wait_until
from test_ha_cluster import (HA, SU_PW, _kv, pg_port, prefix, query, wait_caught_up,
                             wait_primary)

ADMIN, ADMIN_PW = "alice", "Dash-admin-Pw7"
VIEWER, VIEWER_PW = "victor", "Dash-viewer-Pw8"
RESULTS = REPO / "build" / "results"
SHOTS = RESULTS / "screenshots"
SPEC = Path(__file__).with_name("dashboard.spec.mjs")
TARGET_MS = 2000
MIG_SRC, MIG_DST, MIG_ROWS = "mig_src", "mig_dst", 200_000


def user_item(pgwarden_cli, user, role, password):
    r = pgwarden_cli("passwd", "--stdin", "--iterations", "20000", user, role, input=password + "\n")
    assert r.returncode == 0, r.stderr
    item = r.stdout.strip()
    assert item.startswith(f"{user}:{role}:pbkdf2-sha256$"), item
    return item


def make_source(node):
    """The database the migration copies: three tables, one of MIG_ROWS rows (about 20 MB)."""
    query(node, f"CREATE DATABASE {MIG_SRC}")
    conn = psycopg2_connect(f"host=127.0.0.1 port={pg_port(node)} user=postgres "
                            f"dbname={MIG_SRC} password={SU_PW}", connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id int PRIMARY KEY, name text, payload text)")
        cur.execute(f"INSERT INTO items SELECT g, 'item ' || g, repeat(md5(g::text), 2) "
                    f"FROM generate_series(1, {MIG_ROWS}) g")
        cur.execute("CREATE TABLE tags (id serial PRIMARY KEY, item int REFERENCES items(id), tag text)")
        cur.execute("INSERT INTO tags (item, tag) SELECT g, 't' || (g % 10) FROM generate_series(1, 1000) g")
        cur.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        cur.execute("INSERT INTO notes VALUES (1, 'hello')")
    conn.close()


def migrate_command(bin_path, page_node):
    """What the browser script runs (as the postgres user) to migrate MIG_SRC into MIG_DST on the
    node whose dashboard it shows (the source URL, in PGWARDEN_MIGRATE_FROM, carries a password
    the page must never show),
    and that node's SQLite store, where it writes the rows of jobs it cannot run here (an online
    one, an interrupted one)."""
    pw = pwd.getpwnam(RUN_USER)
    url = (f"postgres://postgres:{SU_PW}@127.0.0.1:{page_node.ports['rw']}/{MIG_SRC}"
           f"?sslmode=disable")
    return {"argv": [str(bin_path), "migrate", "-c", str(page_node.config_path), "--to", MIG_DST,
                     "--jobs", "2", "--yes", "--no-progress"],
            "env": base_env({"PGWARDEN_MIGRATE_FROM": url}), "uid": pw.pw_uid, "gid": pw.pw_gid,
            "cwd": str(page_node.dir),
            "secret": SU_PW, "target": MIG_DST, "db": str(page_node.db_path)}


class LeaderWatch(threading.Thread):
    """Polls the leader key every 10 ms; changes[] = (epoch ms, value)."""

    def __init__(self, etcd_url, node):
        super().__init__(daemon=True)
        self.url, self.key, self.changes, self.stop = etcd_url, prefix(node) + "leader", [], False

    def run(self):
        last = object()
        while not self.stop:
            try:
                v = _kv(self.url, self.key)
            except Exception:
                v = last
            if v != last:
                self.changes.append((time.time() * 1000.0, v))
                last = v
            time.sleep(0.01)


class Clients(threading.Thread):
    """New client connections through the forwarder's read-write port, one after another: those
    that arrive while there is no leader are held by the forwarder until the new one is routed."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.errors, self.slowest, self.stop = port, 0, [], 0.0, False

    def run(self):
        while not self.stop:
            t0 = time.monotonic()
            try:
                c = psycopg2_connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres "
                                     f"password={SU_PW}", connect_timeout=30)
                try:
                    with c.cursor() as cur:
                        cur.execute("SELECT 1")
                        cur.fetchone()
                    self.ok += 1
                finally:
                    c.close()
            except Exception as e:  # counted; a session closed by the handover is expected
                self.errors.append(str(e).strip()[:200])
            self.slowest = max(self.slowest, time.monotonic() - t0)
            time.sleep(0.05)


@pytest.mark.timeout(420)
def test_dashboard(etcd, pgwarden_node, pgwarden_cli, pgwarden_bin):
    users = ",".join([user_item(pgwarden_cli, ADMIN, "admin", ADMIN_PW),
                      user_item(pgwarden_cli, VIEWER, "readonly", VIEWER_PW)])
    overrides = {k: dict(v) for k, v in HA.items()}
    overrides["web"] = {"users": users}
    nodes = [pgwarden_node(name=f"n{i + 1}", etcd=etcd.url, overrides=overrides) for i in range(3)]
    leader = wait_primary(etcd.url, nodes, 120)
    query(leader, "CREATE TABLE t (id int primary key)")
    make_source(leader)
    wait_caught_up(etcd.url, nodes, leader, 60)
    replicas = [n for n in nodes if n is not leader]
    candidate, page_node = replicas[0], replicas[1]

    host, port = page_node.config["web"]["listen"].rsplit(":", 1)
    url = f"http://{host}:{port}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    watch = LeaderWatch(etcd.url, leader)
    watch.start()
    clients = Clients(page_node.ports["rw"])
    clients.start()
    cfg = {"url": url, "admin": [ADMIN, ADMIN_PW], "viewer": [VIEWER, VIEWER_PW],
           "leader": leader.name, "candidate": candidate.name, "node": page_node.name,
           "members": [n.name for n in nodes], "shots": str(SHOTS),
           "migrate": migrate_command(pgwarden_bin, page_node), "clone": {"pid": page_node.pid}}
    t0 = time.time()
    log_path = RESULTS / "browser.log"
    try:
        with open(log_path, "w") as log:
            p = subprocess.run(["node", str(SPEC), json.dumps(cfg)], stdout=subprocess.PIPE,
                               stderr=log, text=True, timeout=240, cwd=SPEC.parent)
    finally:
        clients.stop = watch.stop = True
        clients.join(40)
        watch.join(5)
    print(log_path.read_text()[-6000:])
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"the browser script printed no result (exit {p.returncode}):\n{p.stdout[-3000:]}"
    res = json.loads(lines[-1])
    checks = res["checks"]

    # The time from the leader change in etcd to the page showing the new leader.
    new_leader = res.get("new_leader")
    etcd_ms = next((t for t, v in watch.changes if v and v == new_leader), None)
    page_ms = res.get("leader_shown_ms")
    latency = page_ms - etcd_ms if etcd_ms and page_ms else None
    checks.append({"name": "new leader shown within 2 s of the change in etcd",
                   "ok": latency is not None and latency < TARGET_MS,
                   "detail": f"{latency:.0f} ms" if latency is not None else
                   f"etcd change {etcd_ms}, page {page_ms}"})
    try:  # what the page called done is really there, through the forwarder
        c = psycopg2_connect(f"host=127.0.0.1 port={page_node.ports['rw']} user=postgres "
                             f"dbname={MIG_DST} password={SU_PW}", connect_timeout=10)
        with c.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM tags)")
            counts = cur.fetchone()
        c.close()
    except Exception as e:  # reported as a failed check below
        counts = str(e).strip()[:200]
    checks.append({"name": "the database the page showed as migrated holds every row",
                   "ok": counts == (MIG_ROWS, 1000), "detail": f"{MIG_DST}: {counts}"})
    checks.append({"name": "clients through the forwarder were served across the switchover",
                   "ok": clients.ok > 0, "detail": f"{clients.ok} served, {len(clients.errors)} "
                   f"errors, slowest {clients.slowest:.2f} s"})
    summary = {"checks": checks, "leader_change_to_page_ms": latency,
               "held_max_seen": res.get("held_max"), "held_count_before": res.get("held_count_before"),
               "held_count_after": res.get("held_count_after"), "asset_bytes": res.get("asset_bytes"),
               "screenshots": sorted(str(p.relative_to(REPO)) for p in SHOTS.glob("*.png")),
               "client_errors": clients.errors[:5], "seconds": round(time.time() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "browser.json").write_text(json.dumps(summary, indent=2) + "\n")
    for c in checks:
        print(("PASS " if c["ok"] else "FAIL ") + c["name"] + (f" ({c['detail']})" if c.get("detail") else ""))
    print(f"leader change -> page: {latency} ms; held max {res.get('held_max')}; "
          f"held_count {res.get('held_count_before')} -> {res.get('held_count_after')}")
    failed = [c for c in checks if not c["ok"]]
    assert not failed, "failed: " + "; ".join(f"{c['name']}: {c.get('detail', '')}" for c in failed)
