"""Helpers for the forwarder's integration tests (test_proxy.py): connections through a
node's read-write / read-only ports, raw protocol packets, the proxy process's descriptors."""
import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path

from conftest import PG_BINDIR, descendants_of, pid_alive, psycopg2_connect, wait_until

SSL_REQUEST = struct.pack("!II", 8, 80877103)

# The standard HAProxy configuration for Patroni (mode tcp, OPTIONS /primary health checks on
# each node's REST port): {port} is HAProxy's, {servers} the `server ... check port` lines.
HAPROXY_PATRONI_CFG = """global
    maxconn 100

defaults
    log global
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen batman
    bind 127.0.0.1:{port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
{servers}
"""


def haproxy_patroni_cfg(port, servers):
    """HAPROXY_PATRONI_CFG for HAProxy's port and servers [(name, PostgreSQL port, REST port)]."""
    lines = "\n".join(f"    server {name} 127.0.0.1:{pg} maxconn 100 check port {rest}"
                      for name, pg, rest in servers)
    return HAPROXY_PATRONI_CFG.format(port=port, servers=lines)


def reached(port, password, timeout=2):
    """(server port, in recovery) of the PostgreSQL a new connection to port leads to, or None
    if the connection or the query fails (HAProxy closes clients while it has no server up)."""
    try:
        conn = psycopg2_connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres "
                                f"password={password} sslmode=disable", connect_timeout=timeout)
    except Exception:  # noqa: BLE001  (refused, closed, timed out: not reached)
        return None
    try:
        conn.autocommit = True
        return where(conn)
    except Exception:  # noqa: BLE001
        return None
    finally:
        conn.close()


def startup_packet(user="postgres", database="postgres"):
    body = struct.pack("!I", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in (("user", user), ("database", database))) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def port_of(node, which):
    """which: 'rw' or 'ro'."""
    return node.ports[which]


def connect(port, password=None, timeout=10, **kw):
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    if password:
        dsn += f" password={password}"
    conn = psycopg2_connect(dsn, connect_timeout=timeout, **kw)
    conn.autocommit = True
    return conn


def scalar(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def where(conn):
    """(server port, in recovery) of the PostgreSQL a connection reached."""
    with conn.cursor() as cur:
        cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
        return cur.fetchone()


def raw(port, payload=None, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if payload:
        s.sendall(payload)
    return s


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return b


def read_error(s):
    """Reads one ErrorResponse from a raw socket: {field letter: text}."""
    hdr = recv_exact(s, 5)
    assert len(hdr) == 5 and hdr[:1] == b"E", hdr
    (ln,) = struct.unpack("!I", hdr[1:])
    body = recv_exact(s, ln - 4)
    return {f[:1]: f[1:] for f in body.decode().split("\0") if f}


def psql(port, sql="SELECT 1", password=None, timeout=60, sslmode="prefer"):
    """Runs the psql binary; returns CompletedProcess (text)."""
    import subprocess
    env = dict(os.environ, PGCONNECT_TIMEOUT="60", PGSSLMODE=sslmode)
    if password:
        env["PGPASSWORD"] = password
    return subprocess.run([str(PG_BINDIR / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                           "-d", "postgres", "-Atc", sql], capture_output=True, text=True, env=env,
                          timeout=timeout)


def proxy_pid(node):
    pid = node.child_pids().get("proxy")
    assert pid and pid_alive(pid), f"no proxy child for {node.name}: {node.child_pids()}"
    return pid


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_route(node, leader, timeout=60, since=0):
    """Waits for the proxy of node to log a route with this leader ('none' for no leader)."""
    return node.wait_record(timeout, since=since, role="proxy", msg="route", leader=leader)


class Background:
    """Runs fn() in a thread; .result() re-raises its exception."""

    def __init__(self, fn):
        self.value = self.error = None
        self.started = time.monotonic()
        self.finished = None
        self.t = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.t.start()

    def _run(self, fn):
        try:
            self.value = fn()
        except BaseException as e:  # reported by result()
            self.error = e
        self.finished = time.monotonic()

    def done(self):
        return not self.t.is_alive()

    def result(self, timeout):
        self.t.join(timeout)
        assert not self.t.is_alive(), f"background call still running after {timeout}s"
        if self.error:
            raise self.error
        return self.value


def freeze(pids):
    """SIGSTOPs the processes (by PID); returns them for thaw()."""
    pids = [p for p in pids if pid_alive(p)]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    return pids


def thaw(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            pass


def postmaster_pid(node):
    try:
        return int(Path(node.data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def node_tree(node):
    """The node's processes and its PostgreSQL's (postmaster and backends)."""
    pids = {node.pid} | set(node.descendants())
    pm = postmaster_pid(node)
    if pm and pid_alive(pm):
        pids |= {pm} | descendants_of([pm])
    return sorted(pids)
