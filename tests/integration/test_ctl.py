"""`pgwarden ctl` against real etcd and a real three-node cluster: the cluster table (human and
--json), edit-config applied to PostgreSQL, pause/resume, switchover (REST when the API answers,
else the etcd failover key), history, events, and the exit codes of usage and connection errors."""
import json
import re
import urllib.error
import urllib.request

import pytest

from conftest import free_port, wait_until
from test_ha_cluster import (_kv, bootstrap, ha_cluster,  # noqa: F401 (fixture)
                             postmaster_pid, prefix, query, wait_caught_up, wait_primary)


def ctl(pgwarden_cli, node, *args, timeout=150, env=None):
    return pgwarden_cli("ctl", "-c", node.config_path, *args, timeout=timeout, env=env)


def web_port(node):
    return int(node.config["web"]["listen"].rsplit(":", 1)[1])


def rest_answers(node):
    """True when the node's REST API serves GET /patroni (the API may not be built in yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port(node)}/patroni", timeout=3) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 503
    except OSError:
        return False


def member_key(etcd, node, name):
    raw = _kv(etcd.url, prefix(node) + "members/" + name)
    return json.loads(raw) if raw else {}


def config_key(etcd, node):
    return json.loads(_kv(etcd.url, prefix(node) + "config") or "{}")


def list_json(pgwarden_cli, node):
    r = ctl(pgwarden_cli, node, "list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def list_leader(pgwarden_cli, node):
    return next((r["Member"] for r in list_json(pgwarden_cli, node) if r["Role"] == "Leader"), None)


# ---------------------------------------------------------------------------------------------
# without a cluster
# ---------------------------------------------------------------------------------------------

def test_usage_help_and_unreachable_etcd(pgwarden_cli, pgwarden_node):
    r = pgwarden_cli("ctl", "--help")
    assert r.returncode == 0
    for cmd in ("list", "switchover", "failover", "restart", "reload", "reinit", "pause",
                "resume", "history", "show-config", "edit-config", "events"):
        assert re.search(rf"^  {re.escape(cmd)}\b", r.stdout, re.M), cmd
    r = pgwarden_cli("ctl", "frobnicate")
    assert r.returncode == 64 and "unknown command" in r.stderr
    r = pgwarden_cli("ctl", "list", "--candidate", "x")
    assert r.returncode == 64
    r = pgwarden_cli("ctl", "failover")
    assert r.returncode == 64 and "--candidate" in r.stderr
    r = pgwarden_cli("ctl", "-c", "/nonexistent/pgwarden.conf", "list")
    assert r.returncode == 78

    # a config whose etcd endpoint refuses connections (nothing listens on the port)
    node = pgwarden_node(name="lonely", etcd=f"http://127.0.0.1:{free_port()}", start=False)
    for args in (("list",), ("show-config",), ("history",), ("pause",),
                 ("edit-config", "--set", "ttl=20", "--force"),
                 ("switchover", "--candidate", "x", "--force")):
        r = ctl(pgwarden_cli, node, *args, timeout=60)
        assert r.returncode == 69, (args, r.returncode, r.stderr)
        assert "etcd" in r.stderr, r.stderr
    r = ctl(pgwarden_cli, node, "events", timeout=60)  # this node's REST API is not running
    assert r.returncode == 69, r.stderr


def test_empty_cluster_and_bad_values(etcd, pgwarden_cli, pgwarden_node):
    node = pgwarden_node(name="solo", etcd=etcd.url, start=False)
    p = prefix(node)
    r = ctl(pgwarden_cli, node, "list")
    assert r.returncode == 0, r.stderr
    assert "(uninitialized)" in r.stdout
    assert json.loads(ctl(pgwarden_cli, node, "list", "-j").stdout) == []
    r = ctl(pgwarden_cli, node, "show-config")
    assert r.returncode == 1 and "no config" in r.stderr
    r = ctl(pgwarden_cli, node, "pause")
    assert r.returncode == 1  # never creates the config key before bootstrap
    assert etcd.get(p + "config") is None
    # malformed values: list skips them with a warning, show-config/edit-config say 65
    etcd.put(p + "members/bad", "{not json")
    etcd.put(p + "config", "[1,2]")
    r = ctl(pgwarden_cli, node, "list")
    assert r.returncode == 0 and "malformed" in r.stderr
    r = ctl(pgwarden_cli, node, "edit-config", "--set", "ttl=20", "--force")
    assert r.returncode == 65, r.stderr
    etcd.put(p + "config", '{"ttl":10,"loop_wait":1,"retry_timeout":3}')
    r = ctl(pgwarden_cli, node, "edit-config", "--set", "ttl=1", "--force")
    assert r.returncode == 65 and "invalid" in r.stderr
    assert json.loads(etcd.get(p + "config"))["ttl"] == 10
    # no terminal and no --force: refused, nothing written
    r = ctl(pgwarden_cli, node, "edit-config", "--set", "ttl=20")
    assert r.returncode == 1 and "--force" in r.stderr
    assert "-ttl: 10" in r.stdout and "+ttl: 20" in r.stdout
    assert json.loads(etcd.get(p + "config"))["ttl"] == 10


# ---------------------------------------------------------------------------------------------
# a real cluster
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(600)
def test_ctl_against_a_three_node_cluster(etcd, ha_cluster, pgwarden_cli):
    nodes, leader = bootstrap(etcd, ha_cluster)
    p = prefix(leader)
    other = next(n for n in nodes if n is not leader)

    # list: three members, one Leader, the same timeline, the sysid in the title
    rows = list_json(pgwarden_cli, other)
    assert sorted(r["Member"] for r in rows) == sorted(n.name for n in nodes)
    assert [r["Role"] for r in rows].count("Leader") == 1
    assert next(r for r in rows if r["Role"] == "Leader")["Member"] == leader.name
    assert len({r.get("TL") for r in rows}) == 1, rows
    assert all(r["State"] == "running" for r in rows), rows
    assert all(isinstance(r["Lag in MB"], int) for r in rows if r["Role"] != "Leader"), rows
    r = ctl(pgwarden_cli, leader, "list")
    assert r.returncode == 0, r.stderr
    sysid = _kv(etcd.url, p + "initialize")
    assert f"Cluster: {leader.config['etcd']['scope']} ({sysid})" in r.stdout
    assert len(re.findall(r"^\| n\d ", r.stdout, re.M)) == 3

    # edit-config: the config key changes and PostgreSQL picks the value up on every node
    r = ctl(pgwarden_cli, leader, "edit-config", "--set", "postgresql.parameters.work_mem=12MB",
            "--force")
    assert r.returncode == 0, r.stderr
    assert '+postgresql.parameters.work_mem: "12MB"' in r.stdout
    assert config_key(etcd, leader)["postgresql"]["parameters"]["work_mem"] == "12MB"
    for n in nodes:
        wait_until(lambda n=n: query(n, "SHOW work_mem")[0][0] == "12MB", 30,
                   f"work_mem on {n.name}", 0.2)
    r = ctl(pgwarden_cli, leader, "show-config", "--json")
    assert json.loads(r.stdout)["postgresql"]["parameters"]["work_mem"] == "12MB"

    # pause / resume: the config key and every member key
    r = ctl(pgwarden_cli, other, "pause", "--wait")
    assert r.returncode == 0, r.stderr
    assert config_key(etcd, leader).get("pause") is True
    for n in nodes:
        assert member_key(etcd, leader, n.name).get("pause") is True
    assert "Maintenance mode: on" in ctl(pgwarden_cli, leader, "list").stdout
    r = ctl(pgwarden_cli, other, "pause")
    assert r.returncode == 1 and "already paused" in r.stderr
    r = ctl(pgwarden_cli, other, "resume", "--wait", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"paused": False}
    assert "pause" not in config_key(etcd, leader)
    for n in nodes:
        assert not member_key(etcd, leader, n.name).get("pause")

    # switchover to a named candidate (REST if the API answers, else the etcd failover key)
    wait_caught_up(etcd.url, nodes, leader, 30)
    cand = next(n for n in nodes if n is not leader)
    via_rest = rest_answers(leader)
    r = ctl(pgwarden_cli, other, "switchover", "--candidate", cand.name, "--force", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["via"] == ("rest" if via_rest else "etcd"), (out, r.stderr)
    new = wait_primary(etcd.url, nodes, 60, other_than=leader.name)
    assert new is cand
    wait_until(lambda: list_leader(pgwarden_cli, leader) == cand.name, 30,
               "ctl list showing the new leader", 0.5)

    # history: the last line names the new leader (written by it just after its promotion,
    # which may come a moment after the leader key that `ctl list` shows)
    def last_history():
        r = ctl(pgwarden_cli, leader, "history", "--json")
        assert r.returncode == 0, r.stderr
        hist = json.loads(r.stdout)
        return hist[-1]["New Leader"] if hist else None
    wait_until(lambda: last_history() == cand.name, 30, "history naming the new leader", 0.5)
    r = ctl(pgwarden_cli, leader, "history")
    assert cand.name in r.stdout.splitlines()[-2]

    # refusals: a switchover to the leader itself, a member that does not exist
    r = ctl(pgwarden_cli, leader, "switchover", "--candidate", cand.name, "--force")
    assert r.returncode == 1 and "already the leader" in r.stderr
    r = ctl(pgwarden_cli, leader, "switchover", "--candidate", "nosuch", "--force")
    assert r.returncode == 1 and "not a member" in r.stderr
    r = ctl(pgwarden_cli, leader, "restart", "nosuch", "--force")
    assert r.returncode == 1

    # wait until the cluster settled again
    for n in nodes:
        wait_until(lambda n=n: member_key(etcd, leader, n.name).get("state") == "running", 60,
                   f"{n.name} running")
    wait_caught_up(etcd.url, nodes, cand, 30)
    if via_rest:
        # REST endpoints that need the API: events on this node and on a named member, reload
        r = ctl(pgwarden_cli, leader, "events", "--limit", "5")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("+"), r.stdout
        r = ctl(pgwarden_cli, leader, "events", cand.name, "--json")
        assert r.returncode == 0, r.stderr
        assert isinstance(json.loads(r.stdout), list)
        r = ctl(pgwarden_cli, leader, "reload", cand.name, "--force")
        assert r.returncode == 0, r.stderr
    # switch back through the etcd failover key only (what happens when the API is unreachable)
    r = ctl(pgwarden_cli, leader, "switchover", "--leader", cand.name, "--candidate",
            leader.name, "--force", "--via-etcd", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout) == {"ok": True, "via": "etcd", "leader": leader.name}
    back = wait_primary(etcd.url, nodes, 60, other_than=cand.name)
    assert back is leader
    assert etcd.get(p + "failover") in (None, "{}")

    if via_rest:
        # restart a replica's PostgreSQL through its REST API: a new postmaster, still a replica
        third = next(n for n in nodes if n is not leader and n is not cand)
        wait_until(lambda: member_key(etcd, leader, third.name).get("state") == "running", 60,
                   f"{third.name} running")
        before = postmaster_pid(third)
        r = ctl(pgwarden_cli, leader, "restart", third.name, "--force")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert f"Success: restart on member {third.name}" in r.stdout
        wait_until(lambda: postmaster_pid(third) not in (None, before), 60, "a new postmaster")
        wait_until(lambda: query(third, "SELECT pg_is_in_recovery()")[0][0] is True, 60,
                   f"{third.name} back as a replica", 0.2)


def test_rest_basic_auth(etcd, pgwarden_node, pgwarden_cli, tmp_dir):
    """Unsafe REST calls carry HTTP Basic from --username/--password-file or the environment;
    missing or wrong credentials exit 77 and the password is never printed."""
    from test_api import pbkdf2_item
    from test_ha_cluster import HA
    from conftest import write_file
    pw = "Ctl-secret-7"
    overrides = {k: dict(v) for k, v in HA.items()}
    overrides["web"] = {"users": f"{pbkdf2_item('ops', 'admin', pw)},"
                                 f"{pbkdf2_item('viewer', 'readonly', pw)}"}
    node = pgwarden_node(name="n1", etcd=etcd.url, overrides=overrides)
    wait_primary(etcd.url, [node], 90)
    wait_until(lambda: rest_answers(node), 30, "the REST API")
    r = ctl(pgwarden_cli, node, "reload", "n1", "--force")
    assert r.returncode == 77, (r.stdout, r.stderr)
    r = ctl(pgwarden_cli, node, "reload", "n1", "--force",
            env={"PGWARDEN_CTL_USERNAME": "ops", "PGWARDEN_CTL_PASSWORD": "wrong"})
    assert r.returncode == 77, (r.stdout, r.stderr)
    r = ctl(pgwarden_cli, node, "reload", "n1", "--force",
            env={"PGWARDEN_CTL_USERNAME": "viewer", "PGWARDEN_CTL_PASSWORD": pw})
    assert r.returncode == 77, (r.stdout, r.stderr)
    r = ctl(pgwarden_cli, node, "reload", "n1", "--force",
            env={"PGWARDEN_CTL_USERNAME": "ops", "PGWARDEN_CTL_PASSWORD": pw})
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert pw not in r.stdout + r.stderr
    pwfile = write_file(tmp_dir / "ctl.pw", pw + "\n", mode=0o600)
    r = ctl(pgwarden_cli, node, "--username", "ops", "--password-file", pwfile, "reload", "n1",
            "--force", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout)[0]["ok"] is True
    assert pw not in r.stdout + r.stderr
    # reads need no credentials
    assert ctl(pgwarden_cli, node, "events", "--limit", "3").returncode == 0
