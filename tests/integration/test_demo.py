"""`make demo` / `pgwarden demo`: three etcd members and three nodes on loopback, the printed
URLs, login and DATABASE_URL work (forwarder, dashboard, ctl), SIGINT stops everything (exit 0,
no process, no listening port left), a second run reuses the folder (same ports and passwords,
the data is still there) and a concurrent run on the same folder is refused.

The first run goes through `make demo DEMO_DIR=...` when the binary under test is
build/dev/pgwarden and make says it is up to date (so the test never rebuilds); otherwise, and
for the second run, the binary is run directly."""
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import json
from pathlib import Path

import pytest

from conftest import (REPO, descendants_of, ident_alive, kill_ident, proc_cmdline, proc_ident,
                      psycopg2_connect, socket_inodes_of, tcp_listeners, wait_until)

READY_TIMEOUT = 150
STOP_TIMEOUT = 90


def listening_ports(pids):
    """Ports of the TCP sockets in LISTEN state held by these processes."""
    inodes = set()
    for p in pids:
        inodes |= socket_inodes_of(p)
    return {port for port, inode in tcp_listeners() if inode in inodes}


class Demo:
    """A demo run in the background (its own session), stdout collected line by line."""

    def __init__(self, argv, cwd=REPO):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, text=True, bufsize=1)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.seen = set()  # (pid, starttime) of every process of the demo we saw

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def output(self):
        with self.lock:
            return "\n".join(self.lines)

    def demo_pid(self):
        """The `pgwarden demo` process: ours, or make's child running it."""
        if "demo" in self.argv[1:2]:
            return self.proc.pid
        for p in sorted(descendants_of([self.proc.pid])):
            if re.search(r"pgwarden demo\b", proc_cmdline(p) or ""):
                return p
        return None

    def remember(self):
        pids = {self.proc.pid} | descendants_of([self.proc.pid])
        for p in pids:
            ident = proc_ident(p)
            if ident:
                self.seen.add(ident)
        return pids

    def wait_ready(self, timeout=READY_TIMEOUT):
        def ready():
            if "demo: ready" in self.output():
                return True
            if self.proc.poll() is not None:
                self.reader.join(5)
                raise AssertionError(f"demo exited ({self.proc.returncode}) before it was ready:"
                                     f"\n{self.output()}")
            return False
        try:
            wait_until(ready, timeout, "the demo to print 'demo: ready'", 0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\noutput:\n{self.output()}") from None
        return parse_banner(self.output())

    def wait_exit(self, timeout=STOP_TIMEOUT):
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        return rc

    def kill_all(self):
        """Last resort after a failure: the whole session, then every process we saw."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(STOP_TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for ident in self.seen:
            kill_ident(ident)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def parse_banner(text):
    """The values the demo prints once the cluster is ready (the last banner in text)."""
    text = text[text.rindex("pgwarden demo is running"):]
    b = {
        "dashboards": re.findall(r"^\s*dashboard:\s+(http://127\.0\.0\.1:\d+/ui/)", text, re.M),
        "database_url": re.search(r"^\s*DATABASE_URL:\s+(postgres://\S+)", text, re.M).group(1),
        "etcd": re.search(r"^\s*etcd:\s+(\S+)", text, re.M).group(1).split(","),
        "leader": re.search(r"^\s*leader:\s+(n\d)", text, re.M).group(1),
        "ctl_list": re.search(r"^\s*(\S+ ctl -c \S+ list)$", text, re.M).group(1),
        "switchover": re.search(r"^\s*(\S+ ctl .* switchover .*)$", text, re.M).group(1),
    }
    m = re.search(r"^\s*login:\s+(\S+) / (\S+)", text, re.M)
    b["user"], b["password"] = m.group(1), m.group(2)
    assert len(b["dashboards"]) == 3 and len(b["etcd"]) == 3, text
    return b


def check_cluster(b):
    """Writes through the forwarder's read-write port; returns the rows of the demo table."""
    conn = psycopg2_connect(b["database_url"], connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            assert cur.fetchone()[0] is False
            cur.execute("CREATE TABLE IF NOT EXISTS demo_test (id serial primary key, at text)")
            cur.execute("INSERT INTO demo_test (at) VALUES (now()::text)")
            cur.execute("SELECT count(*) FROM demo_test")
            return cur.fetchone()[0]
    finally:
        conn.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def http(url, data=None, headers=None):
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check_dashboard(b):
    for url in b["dashboards"]:
        st, hdrs, _ = http(url)
        assert st == 200 or (300 <= st < 400 and "login" in hdrs.get("Location", "")), (url, st)
    base = b["dashboards"][0][:-len("/ui/")]
    body = json.dumps({"user": b["user"], "password": b["password"]}).encode()
    st, hdrs, data = http(base + "/ui/api/login", body, {"Content-Type": "application/json"})
    assert st == 200, (st, data)
    assert "pgw_session=" in hdrs.get("Set-Cookie", ""), hdrs
    assert json.loads(data)["role"] == "admin"
    bad = json.dumps({"user": b["user"], "password": b["password"] + "x"}).encode()
    st, _, _ = http(base + "/ui/api/login", bad, {"Content-Type": "application/json"})
    assert st == 401


def stop_and_check(demo, sig_group):
    """SIGINT (to the demo process, or to the whole session as a terminal's Ctrl-C does), then:
    exit 0, every process gone, every port it listened on free."""
    pids = demo.remember()
    ports = listening_ports(pids)
    assert len(ports) >= 3 * 2 + 3 * 3 + 3, f"listening ports of the demo: {sorted(ports)}"
    dpid = demo.demo_pid()
    assert dpid, "the pgwarden demo process is gone"
    t0 = time.monotonic()
    if sig_group:
        os.killpg(demo.proc.pid, signal.SIGINT)
    else:
        os.kill(dpid, signal.SIGINT)
    rc = demo.wait_exit()
    took = time.monotonic() - t0
    assert rc == 0, f"exit {rc}\n{demo.output()}"
    assert "demo: stopped" in demo.output()
    left = [i for i in demo.seen if ident_alive(i)]
    assert not left, f"processes left: {[(i[0], proc_cmdline(i[0])) for i in left]}"
    busy = sorted(ports & {port for port, _ in tcp_listeners()})
    assert not busy, f"ports still listening: {busy}"
    return took


@pytest.mark.timeout(300)
def test_demo_runs_stops_and_resumes(workdir, pgwarden_bin):
    ddir = workdir / "demo"
    via_make = (Path(pgwarden_bin) == (REPO / "build/dev/pgwarden").resolve() and
                subprocess.run(["make", "-q", "build/dev/pgwarden"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0)
    first = (["make", "--no-print-directory", "demo", f"DEMO_DIR={ddir}"] if via_make
             else [pgwarden_bin, "demo", "--dir", ddir])
    demos = []
    try:
        # ---- first run: a new cluster
        d1 = Demo(first)
        demos.append(d1)
        b1 = d1.wait_ready()
        d1.remember()
        out = d1.output()
        assert f"demo: new demo in {ddir}" in out, out
        assert check_cluster(b1) == 1
        check_dashboard(b1)
        r = subprocess.run(b1["ctl_list"].split(), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "Leader" in r.stdout, (r.returncode, r.stdout, r.stderr)
        assert r.stdout.count("running") == 3, r.stdout
        took = stop_and_check(d1, sig_group=False)
        print(f"first run: {'make demo' if via_make else 'pgwarden demo'}, stopped in {took:.1f}s")

        # ---- second run on the same folder: reused, same credentials, the data is still there
        d2 = Demo([pgwarden_bin, "demo", "--dir", ddir])
        demos.append(d2)
        b2 = d2.wait_ready()
        d2.remember()
        out = d2.output()
        assert f"demo: reusing the demo in {ddir}" in out, out
        assert b2["password"] == b1["password"]
        if "busy and moved" not in out:
            assert b2["database_url"] == b1["database_url"]
        assert check_cluster(b2) == 2
        # ---- a third run on the same folder meanwhile is refused
        r = subprocess.run([str(pgwarden_bin), "demo", "--dir", str(ddir)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 75, (r.returncode, r.stdout, r.stderr)
        assert re.search(rf"another demo \(pid {d2.proc.pid}\) is running on {ddir}", r.stderr)
        stop_and_check(d2, sig_group=True)
    finally:
        for d in demos:
            d.kill_all()
