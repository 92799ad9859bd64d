"""First smoke tests of the pgwarden binary: CLI contract, config errors, the supervisor
(three children, readiness, signals, restarts, reload), the SQLite store, idle memory."""
import copy
import os
import re
import signal
import time

import pytest

from conftest import (REPO, ident_alive, logfmt, make_dir, pid_alive, port_accepts, pss_kib,
                      port_bindable, port_refuses, proc_ident, socket_inodes_of, listening_inodes,
                      sqlite_query, vm_rss_kib, wait_until, write_file)

EX_USAGE, EX_DATAERR, EX_SOFTWARE, EX_CANTCREAT, EX_CONFIG = 64, 65, 70, 73, 78
CHILDREN = ("ha", "proxy", "web")


@pytest.fixture
def node(etcd, pgwarden_node):
    """Factory: a ready pgwarden node wired to this test's etcd (etcd set up first, so it is
    torn down after the node)."""
    def make(**kw):
        kw.setdefault("etcd", etcd)
        return pgwarden_node(**kw)
    return make


def error_lines(text):
    """Lines that report an error: logfmt lines at level error/fatal, or any non-logfmt line."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        rec = logfmt(line)
        if not rec or rec.get("level") in ("error", "fatal", "crit", "critical"):
            out.append(line)
    return out


def file_line_hits(text, path):
    """Line numbers reported as `PATH:LINE: ` in text."""
    return [int(n) for n in re.findall(re.escape(str(path)) + r":(\d+): ", text)]


def assert_no_crash(rc, text):
    assert rc is not None and rc >= 0, f"killed by signal {-rc}:\n{text}"
    for bad in ("Segmentation fault", "AddressSanitizer", "runtime error:", "Aborted", "core dumped"):
        assert bad not in text, f"{bad!r} in output:\n{text}"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def test_version(pgwarden_cli):
    r = pgwarden_cli("version")
    assert r.returncode == 0, r.stderr
    for name, rx in [("pgwarden", r"pgwarden"), ("libpq", r"libpq"), ("SQLite", r"sqlite"),
                     ("mbedTLS", r"mbed\s?tls"), ("libmicrohttpd", r"libmicrohttpd"),
                     ("libcurl", r"libcurl"), ("jansson", r"jansson")]:
        assert re.search(rx, r.stdout, re.I), f"`pgwarden version` does not mention {name}:\n{r.stdout}"


def test_help_lists_subcommands(pgwarden_cli):
    r = pgwarden_cli("help")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for cmd in ("run", "ctl", "migrate", "demo", "check-config", "version"):
        assert re.search(rf"(?<![\w-]){re.escape(cmd)}(?![\w-])", text), f"help lacks {cmd}:\n{text}"


def test_unknown_subcommand_exits_64(pgwarden_cli):
    r = pgwarden_cli("frobnicate")
    assert r.returncode == EX_USAGE, (r.returncode, r.stdout, r.stderr)
    assert "frobnicate" in r.stdout + r.stderr, "the error should name the unknown subcommand"
    assert_no_crash(r.returncode, r.stderr)


# --------------------------------------------------------------------------------------------
# configuration errors
# --------------------------------------------------------------------------------------------

def test_check_config_good_file(pgwarden_node, pgwarden_cli):
    n = pgwarden_node(start=False)
    r = pgwarden_cli("check-config", n.config_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert re.search(r"\bOK\b", r.stdout + r.stderr, re.I), r.stdout + r.stderr


def test_check_config_reports_every_problem(pgwarden_node, pgwarden_cli):
    n = pgwarden_node(start=False, overrides={
        "node": {"bogus_key": "1"},                          # unknown key
        "supervisor": {"max_restarts": "abc"},               # wrong type
        "proxy": {"rw_listen": "127.0.0.1:70000"},           # out of range
    })
    expected = {n.line_of("node", "bogus_key"), n.line_of("supervisor", "max_restarts"),
                n.line_of("proxy", "rw_listen")}
    r = pgwarden_cli("check-config", n.config_path)
    out = r.stdout + r.stderr
    assert r.returncode == EX_CONFIG, (r.returncode, out)
    hits = file_line_hits(out, n.config_path)
    assert sorted(hits) == sorted(expected), f"want lines {sorted(expected)}, got {hits}:\n{out}"
    assert_no_crash(r.returncode, out)


BAD_CONFIGS = {
    "unknown_key": ({"node": {"bogus_key": "1"}}, ("node", "bogus_key")),
    "wrong_type_int": ({"supervisor": {"max_restarts": "abc"}}, ("supervisor", "max_restarts")),
    "wrong_type_duration": ({"supervisor": {"restart_window": "soon"}}, ("supervisor", "restart_window")),
    "bad_log_level": ({"log": {"level": "loud"}}, ("log", "level")),
    "out_of_range_port": ({"proxy": {"rw_listen": "127.0.0.1:70000"}}, ("proxy", "rw_listen")),
    "out_of_range_int": ({"supervisor": {"max_restarts": "99999999999999999999"}}, ("supervisor", "max_restarts")),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_run_rejects_bad_config_with_file_line(pgwarden_node, case):
    overrides, (section, key) = BAD_CONFIGS[case]
    n = pgwarden_node(overrides=overrides, wait_ready=False)
    rc = n.wait_exit(20)
    text = n.log()
    assert rc == EX_CONFIG, f"exit {rc}, want {EX_CONFIG}:\n{text}"
    assert n.line_of(section, key) in file_line_hits(text, n.config_path), \
        f"want `{n.config_path}:{n.line_of(section, key)}: ` in:\n{text}"
    assert not n.find_records(msg="ready"), "must not get ready with a bad config"
    assert_no_crash(rc, text)


def test_missing_config_file(pgwarden_node, pgwarden_cli):
    n = pgwarden_node(start=False)
    os.unlink(n.config_path)
    n.start(write_config=False)
    rc = n.wait_exit(20)
    text = n.log()
    assert rc == EX_CONFIG, f"exit {rc}:\n{text}"
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1 and str(n.config_path) in lines[0], \
        f"want one clear line mentioning {n.config_path}, got:\n{text}"
    r = pgwarden_cli("check-config", n.config_path)
    assert r.returncode == EX_CONFIG and str(n.config_path) in r.stdout + r.stderr, (r.returncode, r.stderr)


def test_state_dir_not_writable(pgwarden_node, tmp_dir):
    bad = make_dir(tmp_dir / "n1" / "root-only", 0o700, owner_run_user=False)   # root 0700
    n = pgwarden_node(overrides={"node": {"state_dir": str(bad)}}, wait_ready=False)
    rc = n.wait_exit(20)
    text = n.log()
    assert_no_crash(rc, text)
    assert rc == EX_CANTCREAT, f"exit {rc}, want {EX_CANTCREAT}:\n{text}"
    errs = error_lines(text)
    assert len(errs) == 1 and str(bad) in errs[0], f"want one clear error line naming {bad}:\n{text}"
    # no children left: checked by the pgwarden_node teardown


def test_corrupt_state_db(pgwarden_node):
    n = pgwarden_node(start=False)
    junk = os.urandom(16384)
    write_file(n.db_path, junk, mode=0o600)
    n.start()
    rc = n.wait_exit(20)
    text = n.log()
    assert_no_crash(rc, text)
    assert rc == EX_DATAERR, f"exit {rc}, want {EX_DATAERR}:\n{text}"
    assert re.search(r"not a valid", text, re.I), text
    assert n.db_path.read_bytes() == junk, "the corrupt database must be left untouched"


# --------------------------------------------------------------------------------------------
# supervisor
# --------------------------------------------------------------------------------------------

def test_run_forks_three_children_and_gets_ready(node):
    n = node()
    kids = n.children()
    started = n.child_pids()
    assert set(started) == set(CHILDREN), started
    assert len(kids) == 3 and sorted(started.values()) == kids, (kids, started)
    recs = n.records()
    ready_at = [i for i, r in enumerate(recs) if r.get("msg") == "ready"]
    start_at = [i for i, r in enumerate(recs) if r.get("msg") == "child started"]
    assert len(ready_at) == 1 and max(start_at) < ready_at[0], "ready once, after all three started"
    time.sleep(0.5)
    assert n.children() == kids, "children must stay up while idle"


def test_log_lines_are_logfmt_with_roles(node):
    n = node()
    for role in CHILDREN:
        n.wait_record(role=role, timeout=15)
    assert n.find_records(role="supervisor", module="supervisor", msg="ready")
    for line in n.log().splitlines():
        rec = logfmt(line)
        assert rec and all(k in rec for k in ("ts", "level", "role", "module", "msg")), \
            f"not a logfmt line: {line!r}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"]), line
        assert rec["role"] in ("supervisor", *CHILDREN), line


def test_listening_sockets_while_running(node):
    n = node()
    tree = [n.pid, *n.children()]
    held = set()
    for p in tree:
        held |= socket_inodes_of(p)
    for what, port in n.ports.items():
        assert port_accepts(port), f"{what} port {port} not listening"
        inodes = listening_inodes(port)
        assert inodes and inodes & held, f"{what} port {port} not held by the node's processes"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_on_signal(node, sig):
    n = node()
    kids = [proc_ident(p) for p in n.children()]
    t0 = time.monotonic()
    n.signal(sig)
    rc = n.wait_exit(n.shutdown_timeout + 5)
    took = time.monotonic() - t0
    print(f"shutdown on {sig.name}: {took:.2f}s")
    assert rc == 0, f"exit {rc}:\n{n.log()}"
    assert not any(ident_alive(k) for k in kids), "children left after shutdown"
    for what, port in n.ports.items():
        assert port_refuses(port), f"{what} port {port} still accepts connections"
        assert port_bindable(port), f"{what} port {port} cannot be bound again"


@pytest.mark.parametrize("child", CHILDREN)
def test_child_restarted_after_sigkill(node, child):
    n = node()
    before = n.child_pids()
    old = before[child]
    old_ident = proc_ident(old)
    since = n.mark()
    n.kill_child(old, signal.SIGKILL)
    n.wait_record(since=since, msg="child exited", child=child, timeout=15)
    rec = n.wait_record(since=since, msg="child started", child=child, timeout=30)
    new = int(rec["pid"])
    assert new != old
    wait_until(lambda: sorted(n.children()) == sorted([*(p for c, p in before.items() if c != child), new]),
               15, f"children = the two others + the new {child}")
    assert not ident_alive(old_ident)
    for what, port in n.ports.items():
        assert port_accepts(port), f"{what} port {port} not listening after {child} restart"


def test_restart_intensity_exceeded(node):
    n = node()   # max_restarts = 3 within restart_window = 60s
    max_restarts = int(n.config["supervisor"]["max_restarts"])
    kills = 0
    while n.running() and kills < max_restarts + 3:
        pid = n.child_pids()["ha"]
        since = n.mark()
        n.kill_child(pid, signal.SIGKILL)
        kills += 1

        def next_state():
            if n.find_records(since=since, msg="child started", child="ha"):
                return "restarted"
            if not n.running():
                return "exited"
            return None
        if wait_until(next_state, 30, f"ha restart or supervisor exit after kill #{kills}") == "exited":
            break
    rc = n.wait_exit(n.shutdown_timeout + 10)
    text = n.log()
    assert rc == EX_SOFTWARE, f"exit {rc}, want {EX_SOFTWARE}:\n{text}"
    assert kills == max_restarts + 1, f"gave up after {kills} kills, want {max_restarts + 1}:\n{text}"
    assert n.find_records(msg="restart intensity exceeded"), text
    # the other children (and everything else): checked gone by the fixture teardown


def test_sighup_applies_log_level(node):
    n = node()
    assert not n.find_records(level="debug")
    cfg = copy.deepcopy(n.config)
    cfg["log"]["level"] = "debug"
    since = n.reload(cfg)
    n.wait_record(since=since, msg="config reloaded", timeout=15)
    for port in n.ports.values():   # give the processes something to log about
        port_accepts(port)
    n.wait_record(since=since, level="debug", timeout=15)
    assert len(n.children()) == 3 and n.running()


def test_sighup_non_reloadable_key_logged_as_needing_restart(node):
    n = node()
    cfg = copy.deepcopy(n.config)
    cfg["node"]["name"] = "renamed"
    since = n.reload(cfg)
    rec = n.wait_record(since=since, role="supervisor", msg=re.compile(r"restart", re.I), timeout=15)
    assert rec["msg"] not in ("child started", "child exited"), rec
    assert n.running() and len(n.children()) == 3


def test_sighup_with_invalid_config_keeps_running(node):
    n = node()
    kids = n.children()
    cfg = copy.deepcopy(n.config)
    cfg["node"]["bogus_key"] = "1"
    since = n.reload(cfg)
    line = n.line_of("node", "bogus_key")
    n.wait_log(re.escape(f"{n.config_path}:{line}") + r"(?!\d)", since=since, timeout=15)
    time.sleep(0.3)
    assert n.running(), f"a bad config on SIGHUP must not stop the node:\n{n.log()}"
    assert n.children() == kids


# --------------------------------------------------------------------------------------------
# SQLite store
# --------------------------------------------------------------------------------------------

def test_ha_writes_agent_start_event(node):
    n = node()

    def rows():
        try:
            return sqlite_query(n.db_path, "SELECT id, ts_ms, kind, member, term, detail FROM events "
                                           "WHERE kind = 'agent_start'")
        except RuntimeError:
            return None   # not created yet / busy
    got = wait_until(rows, 20, f"an agent_start event in {n.db_path}", 0.2)
    _id, ts_ms, kind, member, _term, _detail = got[-1]
    assert member == n.config["node"]["name"], got
    assert abs(ts_ms / 1000 - time.time()) < 600, f"ts_ms {ts_ms} is not a recent epoch in ms"


# --------------------------------------------------------------------------------------------
# idle resources (a measurement, not an assertion)
# --------------------------------------------------------------------------------------------

def test_idle_rss_measurement(node):
    n = node()
    time.sleep(2)   # the measurement is "after 2 s idle"
    roles = {"supervisor": n.pid, **n.child_pids()}
    assert len(n.children()) == 3 and all(pid_alive(p) for p in roles.values()), roles
    rss = {role: vm_rss_kib(pid) for role, pid in roles.items()}
    pss = {role: pss_kib(pid) for role, pid in roles.items()}
    line = (f"idle_kib binary={os.environ.get('PGWARDEN_BIN', '?')} "
            f"pss_total={sum(pss.values())} rss_total={sum(rss.values())} "
            + " ".join(f"{r}_rss={rss[r]} {r}_pss={pss[r]}" for r in rss))
    print(f"\n{line}")
    results = REPO / "build" / "results"
    if results.is_dir():
        (results / "idle_rss.txt").write_text(line + "\n")
