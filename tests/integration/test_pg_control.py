"""The PostgreSQL control layer (agent/pg) against real PostgreSQL 15 through
tests/tools/pg_driver: initdb + start + status, roles and scram logins, a streaming replica
cloned with a slot, follow (reload), promotion to timeline 2, rewind of the diverged old
primary, postmaster death through a pidfd, adoption after the driver exits, the system
identifier check, and a hung tool that is killed at its deadline. Every driver runs as the
postgres user; every postmaster is stopped by its PID at the end."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (REPO, RUN_GID, RUN_UID, _attach_log, base_env, free_port, ident_alive,
                      make_dir, proc_ident, proc_stat, tail, wait_until, write_file)

DRIVER = REPO / "build/dev/tools/pg_driver"
PG_BIN = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
# Passwords with every character that needs quoting somewhere (conf, conninfo, passfile).
SU_PASSWORD = "su p'w:x\\1"
REPL_PASSWORD = "r3pl \"pw\" 'q'"


@pytest.fixture(scope="session")
def driver_bin():
    """Built by `make tools` (a dependency of `make integration`); built here too so that
    running pytest directly works."""
    target = str(DRIVER.relative_to(REPO))
    r = subprocess.run(["make", "-s", target], cwd=REPO, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0 and DRIVER.exists(), f"cannot build {target}:\n{r.stdout}\n{r.stderr}"
    return DRIVER


def proc_session(pid):
    """Session id (field 6 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("latin-1")
    return int(data[data.rindex(")") + 2:].split()[3])


class Node:
    """One PostgreSQL data directory driven by pg_driver."""

    def __init__(self, driver, base, name):
        self.driver = driver
        self.name = name
        self.base = make_dir(base / name, 0o755)
        self.data = self.base / "data"
        self.run_dir = self.base / "run"
        self.log_file = self.base / "postgresql.log"
        self.stderr_log = self.base / "driver.log"
        self.port = free_port()
        self.bin_dir = PG_BIN

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def argv(self, *args, bin_dir=None):
        return [str(self.driver), "--data", str(self.data), "--run-dir", str(self.run_dir),
                "--log-file", str(self.log_file), "--bin-dir", str(bin_dir or self.bin_dir),
                "--listen", self.addr, "--name", self.name, *map(str, args)]

    def env(self):
        return base_env({"PGD_SUPERUSER_PASSWORD": SU_PASSWORD,
                         "PGD_REPLICATION_PASSWORD": REPL_PASSWORD})

    def run(self, *args, ok=True, timeout=120, bin_dir=None):
        """Runs one driver command; returns its JSON reply (asserted ok unless ok=None/False)."""
        r = subprocess.run(self.argv(*args, bin_dir=bin_dir), user=RUN_UID, group=RUN_GID,
                           extra_groups=[], env=self.env(), cwd=self.base, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        with open(self.stderr_log, "a") as f:
            f.write(f"$ {' '.join(map(str, args))}\n{r.stderr}{r.stdout}")
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        assert lines, f"{self.name} {args}: no reply (exit {r.returncode}):\n{tail(r.stderr)}"
        reply = json.loads(lines[-1])
        if ok:
            assert reply["ok"], f"{self.name} {args} failed: {reply}\n{tail(r.stderr, 20)}"
        elif ok is False:
            assert not reply["ok"], f"{self.name} {args} should have failed: {reply}"
        return reply

    def initdb(self):
        return self.run("initdb", "--no-sync", "--param", "fsync=off",
                        "--param", "shared_buffers=16MB")

    def start(self, *opts):
        return self.run(*opts, "start", "--timeout-ms", "30000")["postmaster"]

    def status(self):
        return self.run("status")

    def pidfile_pid(self):
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n")[0])
        except (OSError, ValueError, IndexError):
            return None

    def sql(self, query, user="postgres", password=None):
        """Runs SQL over TCP as user (scram); returns the rows."""
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, dbname="postgres",
                                password=password if password is not None else SU_PASSWORD,
                                connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description is not None else []
        finally:
            conn.close()

    def kill_by_pid(self):
        """Teardown: stop the postmaster by the PID in postmaster.pid."""
        pid = self.pidfile_pid()
        if pid is None or proc_stat(pid) is None:
            return
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return
        if comm != "postgres":
            return
        ident = proc_ident(pid)
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        try:
            wait_until(lambda: not ident_alive(ident), 10, f"postmaster {pid} to exit")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not ident_alive(ident), 10, f"postmaster {pid} to die")


@pytest.fixture
def nodes(driver_bin, tmp_dir, request):
    made = []

    def make(name):
        n = Node(driver_bin, tmp_dir, name)
        made.append(n)
        _attach_log(request, f"{name} server log ({n.log_file})",
                    lambda: n.log_file.read_text(errors="replace") if n.log_file.exists() else "",
                    30)
        _attach_log(request, f"{name} driver log ({n.stderr_log})",
                    lambda: n.stderr_log.read_text(errors="replace")
                    if n.stderr_log.exists() else "", 40)
        return n
    yield make
    for n in made:
        n.kill_by_pid()


def assert_no_secrets(node):
    """No password in any file of the node but the passfile, nor in the driver's output."""
    needles = [SU_PASSWORD.encode(), REPL_PASSWORD.encode()]
    for path in node.base.rglob("*"):
        if not path.is_file() or path.name == "pgpass":
            continue
        data = path.read_bytes()
        for s in needles:
            assert s not in data, f"a password is in {path}"
    passfile = node.run_dir / "pgpass"
    assert (passfile.stat().st_mode & 0o777) == 0o600
    assert (node.run_dir.stat().st_mode & 0o777) == 0o700


def test_primary_initdb_start_status(nodes):
    a = nodes("a")
    a.initdb()
    cd = a.run("controldata")
    assert cd["checksum_version"] == 1 and cd["state"] == "shut down"
    pm = a.start()
    st = a.status()
    assert st["in_recovery"] is False
    assert st["checksums"] is True
    assert st["timeline"] == 1
    assert 150000 <= st["server_version"] < 160000
    assert st["system_id"] == cd["system_id"]
    assert pm["port"] == a.port and pm["socket_dir"] == str(a.run_dir)
    assert pm["status"] == "ready"
    # Our include file wins; the socket lives in the 0700 run dir.
    assert "include = 'postgresql.pgwarden.conf'" in (a.data / "postgresql.conf").read_text()
    assert (a.run_dir / f".s.PGSQL.{a.port}").exists()

    a.run("roles")
    # scram logins over TCP with the configured passwords; a wrong one is refused.
    assert a.sql("SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == [(True,)]
    assert a.sql("SELECT 1", user="replicator", password=REPL_PASSWORD) == [(1,)]
    import psycopg2
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        a.sql("SELECT 1", password="wrong")
    assert a.sql("SHOW wal_level") == [("replica",)]
    assert a.sql("SHOW wal_log_hints") == [("on",)]
    assert a.sql("SHOW fsync") == [("off",)]  # a dynamic parameter

    # Slots: create, duplicate, list, drop, missing.
    a.run("slot-create", "n2")
    dup = a.run("slot-create", "n2", ok=False)
    assert dup["err"] == "EEXIST" and dup["sqlstate"] == "42710"
    assert a.run("slot-create", "Bad-Name", ok=False)["err"] == "EINVAL"
    slots = a.run("slots")["slots"]
    assert [s["name"] for s in slots] == ["n2"] and slots[0]["physical"]
    assert slots[0]["restart_lsn"] != "0/0"  # reserved at once
    a.run("slot-drop", "n2")
    assert a.run("slot-drop", "n2", ok=False)["err"] == "ENOENT"
    a.run("checkpoint")
    a.run("reload")
    assert a.run("promote", ok=False)["err"] == "EALREADY"
    assert a.run("start", ok=False)["err"] == "EALREADY"

    pid = a.pidfile_pid()
    assert a.run("restart", "--timeout-ms", "30000")["postmaster"]["pid"] != pid

    # A smart stop waits for clients: without escalation it times out and the server stays;
    # with escalation an immediate stop follows.
    import psycopg2
    client = psycopg2.connect(host="127.0.0.1", port=a.port, user="postgres", dbname="postgres",
                              password=SU_PASSWORD, connect_timeout=10)
    try:
        r = a.run("stop", "--mode", "smart", "--timeout-ms", "1000", "--no-escalate", ok=False)
        assert r["err"] == "ETIMEDOUT" and r["was_running"]
        assert a.run("find")["postmaster"]["pid"] == a.pidfile_pid()
        res = a.run("stop", "--mode", "smart", "--timeout-ms", "1000")
        assert res["mode_used"] == "immediate" and not res["killed"]
    finally:
        client.close()
    assert a.run("controldata")["state"] == "in production"  # an immediate stop is unclean
    a.run("crash-recover")
    a.start()

    res = a.run("stop", "--mode", "fast")
    assert res["was_running"] and res["mode_used"] == "fast" and not res["killed"]
    assert a.run("controldata")["state"] == "shut down"
    assert a.run("stop")["was_running"] is False
    assert a.run("status", ok=False)["err"] == "ECONNREFUSED"
    assert_no_secrets(a)


def test_replica_follow_promote_rewind(nodes):
    a, b = nodes("a"), nodes("b")
    a.initdb()
    a.start()
    a.run("roles")
    a.sql("CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t VALUES (1)")
    a.run("slot-create", "b")

    # Clone through the slot, start, stream.
    t0 = time.monotonic()
    b.run("--upstream", a.addr, "--slot", "b", "clone", a.addr, "--timeout-ms", "60000")
    print(f"clone took {time.monotonic() - t0:.2f}s")
    assert (b.data / "standby.signal").exists()
    b.start()
    st = b.status()
    assert st["in_recovery"] and st["timeline"] == 1
    assert st["system_id"] == a.status()["system_id"]
    wait_until(lambda: b.status()["streaming"], 15, "b streaming")
    st = b.status()
    assert st["upstream_port"] == a.port and st["upstream_slot"] == "b"
    reps = a.run("replication")["replicas"]
    assert [r["application_name"] for r in reps] == ["b"] and reps[0]["state"] == "streaming"
    assert [s["active"] for s in a.run("slots")["slots"]] == [True]
    a.sql("INSERT INTO t VALUES (2)")
    wait_until(lambda: b.sql("SELECT count(*) FROM t") == [(2,)], 15, "row 2 on b")

    # Follow: a new slot through a reload, without a restart.
    pm_before = b.pidfile_pid()
    a.run("slot-create", "b2")
    b.run("--upstream", a.addr, "--slot", "b2", "follow")
    wait_until(lambda: {s["name"]: s["active"] for s in a.run("slots")["slots"]}
               == {"b": False, "b2": True}, 20, "b streaming through slot b2")
    assert b.pidfile_pid() == pm_before
    assert a.run("--upstream", b.addr, "follow", ok=False)["err"] == "EBUSY"  # a is a primary
    a.run("slot-drop", "b")

    # Promote b: timeline 2.
    b.run("promote", "--timeout-ms", "30000")
    st = b.status()
    assert st["in_recovery"] is False and st["timeline"] == 2
    assert not (b.data / "standby.signal").exists()  # PostgreSQL removes it
    b.sql("INSERT INTO t VALUES (3)")

    # a (still a primary) writes rows that b never gets, then crashes.
    a.sql("INSERT INTO t SELECT g FROM generate_series(100, 199) g")
    res = a.run("stop", "--mode", "immediate")
    assert res["mode_used"] == "immediate"
    assert a.run("controldata")["state"] == "in production"
    assert a.run("check-diverged", b.addr, ok=False)["err"] == "EAGAIN"
    a.run("crash-recover", "--timeout-ms", "60000")
    assert a.run("controldata")["state"] == "shut down"
    pos = a.run("position")
    assert pos["timeline"] == 1 and not pos["in_recovery"] and pos["checkpoint_end"] != "0/0"
    div = a.run("check-diverged", b.addr)
    assert div["diverged"] is True, div

    # Rewind from b and follow it.
    b.run("slot-create", "a")
    t0 = time.monotonic()
    a.run("--upstream", b.addr, "--slot", "a", "rewind", b.addr, "--timeout-ms", "60000")
    print(f"rewind took {time.monotonic() - t0:.2f}s")
    assert (a.data / "standby.signal").exists()
    assert "include = 'postgresql.pgwarden.conf'" in (a.data / "postgresql.conf").read_text()
    a.start()
    wait_until(lambda: a.status()["streaming"], 20, "a streaming from b")
    st = a.status()
    assert st["in_recovery"] and st["timeline"] == 2 and st["upstream_port"] == b.port
    b.sql("INSERT INTO t VALUES (4)")
    wait_until(lambda: a.sql("SELECT array_agg(x ORDER BY x) FROM t") == [([1, 2, 3, 4],)], 15,
               "a converged with b (diverged rows gone)")
    assert [r["application_name"] for r in b.run("replication")["replicas"]] == ["a"]
    # A standby that follows the timeline does not diverge.
    a.run("stop")
    assert a.run("controldata")["state"] == "shut down in recovery"
    div = a.run("check-diverged", b.addr)
    assert div["diverged"] is False, div
    for n in (a, b):
        assert_no_secrets(n)


def test_clean_switchover_needs_no_rewind(nodes):
    """A primary stopped fast sends its shutdown checkpoint to the streaming standby; once that
    standby is promoted the old primary has not diverged and follows it as it is."""
    a, b = nodes("a"), nodes("b")
    a.initdb()
    a.start()
    a.run("roles")
    a.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    b.run("--upstream", a.addr, "clone", a.addr)
    b.start()
    wait_until(lambda: b.status()["streaming"], 15, "b streaming")
    a.run("stop", "--mode", "fast")
    shutdown_ckpt = a.run("controldata")["checkpoint_lsn"]
    b.run("promote", "--timeout-ms", "30000")
    assert b.status()["timeline"] == 2
    pos = a.run("position")
    assert pos["lsn"] == shutdown_ckpt and pos["checkpoint_end"] != "0/0"
    div = a.run("check-diverged", b.addr)
    assert div["diverged"] is False, div
    a.run("--upstream", b.addr, "apply")
    a.start()
    wait_until(lambda: a.status()["streaming"], 20, "a streaming from b")
    b.sql("INSERT INTO t VALUES (2)")
    wait_until(lambda: a.sql("SELECT count(*) FROM t") == [(2,)], 15, "row 2 on a")
    assert a.status()["timeline"] == 2


def test_postmaster_death_through_pidfd(nodes):
    a = nodes("a")
    a.initdb()
    pm = a.start()
    w = subprocess.Popen(a.argv("watch"), user=RUN_UID, group=RUN_GID, extra_groups=[],
                         env=a.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    try:
        ev = json.loads(w.stdout.readline())
        assert ev["event"] == "watching" and ev["pid"] == pm["pid"] and ev["pidfd"] is True
        killed_ms = time.monotonic() * 1000  # CLOCK_MONOTONIC, like the driver's "t"
        os.kill(pm["pid"], signal.SIGKILL)
        ev = json.loads(w.stdout.readline())
        assert ev["event"] == "dead" and ev["pid"] == pm["pid"]
        delay = ev["t"] - killed_ms
        print(f"postmaster death reported after {delay:.1f} ms")
        assert delay < 100, f"death reported after {delay:.0f} ms"
        assert w.wait(10) == 0
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    # A restart right away works (stale lock files, leftover backends handled).
    assert a.run("find", ok=False)["err"] == "ESRCH"
    pm2 = a.start()
    assert pm2["pid"] != pm["pid"]
    assert a.status()["in_recovery"] is False


def test_adopt_running_postmaster(nodes):
    """The postmaster outlives the process that started it and its whole process group, and a
    new process adopts it from postmaster.pid."""
    a = nodes("a")
    a.initdb()
    pm = a.start()
    ident = proc_ident(pm["pid"])
    # The "agent": a long-running driver in its own session, killed with its group.
    w = subprocess.Popen(a.argv("watch"), user=RUN_UID, group=RUN_GID, extra_groups=[],
                         env=a.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    assert json.loads(w.stdout.readline())["event"] == "watching"
    assert proc_session(pm["pid"]) != proc_session(w.pid)
    os.killpg(w.pid, signal.SIGKILL)
    w.wait()
    time.sleep(0.2)
    assert ident_alive(ident), "the postmaster died with the agent"
    found = a.run("find")["postmaster"]
    assert found["pid"] == pm["pid"] and found["status"] == "ready"
    assert found["port"] == a.port and found["data_dir"] == str(a.data)
    assert a.status()["in_recovery"] is False
    assert a.run("start", ok=False)["err"] == "EALREADY"
    # A stale postmaster.pid whose pid now belongs to another process is not adopted.
    a.run("stop")
    (a.data / "postmaster.pid").write_text(f"{os.getpid()}\n{a.data}\n0\n{a.port}\n")
    assert a.run("find", ok=False)["err"] == "ESRCH"
    pm3 = a.start()  # and it does not stop the start
    assert pm3["pid"] != os.getpid()


def test_system_identifier_mismatch(nodes):
    a = nodes("a")
    a.initdb()
    sysid = a.run("controldata")["system_id"]
    a.run("sysid-check", sysid)
    bad = str(int(sysid) ^ 1)
    r = a.run("sysid-check", bad, ok=False)
    assert r["err"] == "EXDEV" and r["step"] == "system identifier"
    assert sysid in r["msg"] and bad in r["msg"] and "another cluster" in r["msg"]
    assert a.run("sysid-check", "not-a-number", ok=False)["err"] == "EINVAL"
    # initdb refuses a non-empty data directory; clone too.
    assert a.run("initdb", ok=False)["err"] == "ENOTEMPTY"
    assert a.run("clone", "127.0.0.1:1", ok=False)["err"] == "ENOTEMPTY"


def test_hung_tool_is_killed(nodes, tmp_dir):
    a = nodes("a")
    a.initdb()
    fake = make_dir(tmp_dir / "fakebin", 0o755)
    for tool in PG_BIN.iterdir():
        if tool.name != "pg_ctl":
            (fake / tool.name).symlink_to(tool)
    marker = make_dir(tmp_dir / "marker", 0o777)
    write_file(fake / "pg_ctl", f"""#!/bin/sh
echo "fake pg_ctl hangs"
echo $$ > {marker}/sh.pid
sleep 300 &
echo $! > {marker}/sleep.pid
wait
""", mode=0o755)
    t0 = time.monotonic()
    r = a.run("start", "--timeout-ms", "1000", bin_dir=fake, ok=False, timeout=60)
    elapsed = time.monotonic() - t0
    assert r["err"] == "ETIMEDOUT", r
    assert "did not finish within" in r["msg"] and "fake pg_ctl hangs" in r["msg"]
    assert elapsed < 10, f"took {elapsed:.1f}s"
    for f in ("sh.pid", "sleep.pid"):
        pid = int((marker / f).read_text())
        wait_until(lambda: proc_stat(pid) is None or proc_stat(pid)[1] in ("Z", "X"), 5,
                   f"{f} ({pid}) killed with its process group")
    # The real tools still work on the same data directory.
    a.start()
    assert a.status()["in_recovery"] is False
