"""pytest harness for pgwarden integration tests: real etcd, real PostgreSQL 15, the real binary.

Rules every helper here follows:
  * every server listens on 127.0.0.1 on a free port (bind port 0), and a start that fails
    with "address already in use" is retried on fresh ports;
  * every server keeps its data under the session temp root (/tmp/pgwarden-it-*, owned by
    postgres, removed at the end unless PGWARDEN_KEEP_TMP=1);
  * PostgreSQL, etcd and pgwarden run as the `postgres` user through Popen(user=...), so the
    PID we hold is the server's own PID; each one is stopped by that PID (signal, wait, then
    SIGKILL after a timeout) and asserted gone;
  * readiness is polled, never slept for.

Fixtures (see each docstring):
  workdir (session temp root), tmp_dir (per test), pg_bindir, pgwarden_bin, pgwarden_cli,
  etcd (single member: .url .pid .put .get .get_prefix .delete .stop),
  etcd_cluster(n=3) (.members .endpoints .stop_member(i) .start_member(i) .leader_index()),
  postgres(name=, conf=) (.dsn .port .query(sql) .scalar(sql) .stop() .start()),
  pgwarden_node(name=, etcd=, overrides=) -> Node (.pid .log() .records() .mark()
  .wait_log(rx) .wait_record(**fields) .children() .child_pids() .signal() .reload(cfg)
  .stop() .wait_exit()); teardown fails the test if any process of a node is left.
Helpers importable from tests: free_port, wait_until, logfmt, render_ini, sqlite_query,
  port_accepts/port_refuses/port_bindable, proc_ident/ident_alive, vm_rss_kib ...

Run:  /usr/bin/python3 -m pytest tests/integration        (env PGWARDEN_BIN overrides the binary;
      PGWARDEN_KEEP_TMP=1 keeps /tmp/pgwarden-it-* for a post-mortem)
Debian packages: etcd-server etcd-client postgresql-15 python3-pytest python3-psycopg2
                 python3-pytest-timeout sqlite3 (sqlite3 is optional: the tests use Python's module)
"""
import atexit
import base64
import importlib.util
import itertools
import json
import os
import platform
import pwd
import re
import shutil
import signal
from signal import SIGKILL, SIGTERM  # Node has a .signal() method: defaults use these
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
SYS_PYTHON = "/usr/bin/python3"
RUN_USER = "postgres"
TEST_ID_ENV = "PGW_IT_NODE_TAG"  # tags every process a node starts (inherited through fork/exec)

_pw = pwd.getpwnam(RUN_USER)
RUN_UID, RUN_GID = _pw.pw_uid, _pw.pw_gid


# --------------------------------------------------------------------------------------------
# generic helpers
# --------------------------------------------------------------------------------------------

class Timeout(AssertionError):
    pass


def wait_until(pred, timeout, desc, interval=0.05):
    """Polls pred() until it returns a truthy value (returned). pred may raise to abort early."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:.1f}s waiting for {desc}")
        time.sleep(interval)


_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, never the same twice per session."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free port")


def port_refuses(port, host="127.0.0.1"):
    """True if nothing listens on port (connect refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False


def port_accepts(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def port_bindable(port, host="127.0.0.1"):
    """True if a server could bind port again now (SO_REUSEADDR, as every server sets it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def chown_run_user(path):
    os.chown(path, RUN_UID, RUN_GID)


def make_dir(path, mode=0o700, owner_run_user=True):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner_run_user:
        chown_run_user(path)
    return path


def write_file(path, data, mode=0o644, owner_run_user=True):
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    os.chmod(path, mode)
    if owner_run_user:
        chown_run_user(path)
    return path


def tail(text, n=60):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def base_env(extra=None):
    """A small, deterministic environment for child processes."""
    env = {
        "PATH": f"{PG_BINDIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/var/lib/postgresql",
    }
    for k, v in os.environ.items():  # sanitizer settings pass through (asan builds of pgwarden)
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_", "MSAN_")):
            env[k] = v
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# /proc helpers (PID reuse safe: a process is identified by (pid, starttime))
# --------------------------------------------------------------------------------------------

def proc_stat(pid):
    """(ppid, state, starttime) from /proc/PID/stat, or None if the process does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] = state (field 3), rest[1] = ppid (4), rest[19] = starttime (22)
    return int(rest[1]), rest[0], int(rest[19])


def proc_ident(pid):
    st = proc_stat(pid)
    return None if st is None else (pid, st[2])


def ident_alive(ident):
    """True if the process (pid, starttime) still exists and is not a zombie."""
    pid, start = ident
    st = proc_stat(pid)
    return st is not None and st[2] == start and st[1] not in ("Z", "X")


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def ppid_map():
    m = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None:
            m[pid] = st[0]
    return m


def children_of(pid):
    return sorted(p for p, pp in ppid_map().items() if pp == pid and pid_alive(p))


def descendants_of(pids):
    """All live descendants of the given pids (not including them)."""
    m = ppid_map()
    kids = {}
    for p, pp in m.items():
        kids.setdefault(pp, []).append(p)
    out, todo = set(), list(pids)
    while todo:
        for c in kids.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return {p for p in out if pid_alive(p)}


def pids_with_env(key, value):
    needle = f"{key}={value}".encode()
    found = set()
    for pid in all_pids():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and pid_alive(pid):
            found.add(pid)
    return found


def proc_comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def proc_cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def vm_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size: shared pages (the binary's text) split among the processes using
    them, so the sum over processes is the memory they really use together."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tcp_listeners():
    """(port, socket inode) of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    out = []
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(fn).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if state == "0A":
                out.append((int(local.rsplit(":", 1)[1], 16), int(inode)))
    return out


def listening_inodes(port):
    """Socket inodes of TCP sockets listening on port (any address)."""
    return {inode for p, inode in tcp_listeners() if p == port}


def socket_inodes_of(pid):
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def kill_ident(ident, sig=signal.SIGKILL):
    """Signals a process only if it is still the same process (pid + starttime)."""
    if ident_alive(ident):
        try:
            os.kill(ident[0], sig)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# a server process we start and own
# --------------------------------------------------------------------------------------------

class AddressInUse(Exception):
    pass


# Safety net: if pytest dies without running teardowns (double Ctrl-C, internal error), kill
# by PID every server this session started and every process carrying a node tag.
_LIVE_PROCS = []
_NODE_TAGS = []


@atexit.register
def _kill_everything_we_started():
    for p in _LIVE_PROCS:
        if p.popen is not None and p.popen.poll() is None:
            kill_ident(p.ident)
    for tag in _NODE_TAGS:
        for pid in pids_with_env(TEST_ID_ENV, tag):
            ident = proc_ident(pid)
            if ident:
                kill_ident(ident)


IN_USE_RE = re.compile(r"address already in use|EADDRINUSE", re.I)


class Proc:
    """A process started by the harness as the postgres user, output captured to a file."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, user=RUN_USER):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = env if env is not None else base_env()
        self.cwd = str(cwd) if cwd else None
        self.user = user
        self.popen = None
        self.ident = None
        self._log_offset = 0

    def start(self):
        mode = "ab" if self.log_path.exists() else "wb"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, mode) as logf:
            kw = {}
            if self.user is not None and os.geteuid() == 0:
                kw = dict(user=self.user, group=self.user, extra_groups=[])
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=self.env,
                cwd=self.cwd, start_new_session=True, close_fds=True, **kw)
        self.ident = proc_ident(self.popen.pid) or (self.popen.pid, -1)
        _LIVE_PROCS.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def log(self):
        """This run's output (a restart of the same Proc appends to the same file)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def check_alive(self, what="process"):
        """Raises (with the log tail) if the process has exited; AddressInUse if that was why."""
        if self.popen.poll() is not None:
            text = self.log()
            if IN_USE_RE.search(text):
                raise AddressInUse(f"{self.name}: address in use")
            raise AssertionError(
                f"{self.name} ({what}) exited with {self.popen.returncode} while starting; "
                f"log {self.log_path}:\n{tail(text)}")

    def wait_exit(self, timeout):
        """Waits for exit and returns the status (negative = killed by that signal)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Timeout(f"{self.name} (pid {self.pid}) did not exit within {timeout}s")

    def stop(self, sig=signal.SIGTERM, timeout=30, kill_timeout=10):
        """Signal by PID, wait, SIGKILL after timeout; asserts the process is gone.
        Returns (exit status, graceful) — graceful is False if SIGKILL was needed."""
        if self.popen is None:
            return None, True
        graceful = True
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                graceful = False
                self.popen.kill()
                self.popen.wait(kill_timeout)
        assert not ident_alive(self.ident), f"{self.name} pid {self.pid} still exists after stop"
        return self.popen.returncode, graceful


# --------------------------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------------------------

def _b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def _unb64(s):
    return base64.b64decode(s).decode(errors="surrogateescape")


def prefix_end(prefix):
    b = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    b[-1] += 1
    return bytes(b)


def etcd_call(url, path, body, timeout=5):
    """POST to the etcd v3 JSON gateway; returns (http status, decoded JSON body)."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        data = e.read()
        try:
            return e.code, json.loads(data)
        except ValueError:
            return e.code, {"raw": data.decode(errors="replace")}


def _etcd_goarch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


class EtcdMember:
    def __init__(self, base_dir, name, client_port, peer_port, initial_cluster, state="new",
                 cluster_token="pgwarden-it"):
        self.base_dir = Path(base_dir)
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster
        self.state = state
        self.cluster_token = cluster_token
        self.data_dir = self.base_dir / f"{name}.etcd"
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def argv(self):
        return [ETCD_BIN, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-state", self.state,
                "--initial-cluster-token", self.cluster_token]

    def start(self):
        """Starts the process (no readiness wait; see wait_ready)."""
        env = base_env({"ETCD_UNSUPPORTED_ARCH": _etcd_goarch()})
        self.proc = Proc(f"etcd-{self.name}", self.argv(), self.base_dir / f"{self.name}.log",
                         env=env, cwd=self.base_dir).start()
        return self

    def ready(self):
        """A linearizable range answers 200 (implies a leader)."""
        try:
            st, _ = etcd_call(self.url, "/v3/kv/range", {"key": _b64("/pgwarden-it-probe")}, timeout=2)
            return st == 200
        except OSError:
            return False

    def wait_ready(self, timeout=30):
        def ok():
            self.proc.check_alive("etcd")
            return self.ready()
        wait_until(ok, timeout, f"etcd {self.name} at {self.url} to answer /v3/kv/range")
        return self

    def log(self):
        return self.proc.log() if self.proc else ""

    def stop(self, timeout=20):
        if self.proc is None:
            return None
        rc, graceful = self.proc.stop(signal.SIGTERM, timeout)
        return rc

    # ---- JSON gateway helpers (urllib only) ----
    def call(self, path, body, timeout=5):
        return etcd_call(self.url, path, body, timeout)

    def put(self, key, value, lease=None):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease is not None:
            body["lease"] = str(lease)
        st, resp = self.call("/v3/kv/put", body)
        assert st == 200, f"etcd put {key!r}: HTTP {st} {resp}"
        return resp

    def get(self, key):
        """The value (str) of key, or None if the key does not exist."""
        st, resp = self.call("/v3/kv/range", {"key": _b64(key)})
        assert st == 200, f"etcd range {key!r}: HTTP {st} {resp}"
        kvs = resp.get("kvs") or []
        return _unb64(kvs[0].get("value", "")) if kvs else None

    def get_prefix(self, prefix):
        """{key: value} for all keys under prefix."""
        st, resp = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        assert st == 200, f"etcd range prefix {prefix!r}: HTTP {st} {resp}"
        return {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in resp.get("kvs") or []}

    def delete(self, key, prefix=False):
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        st, resp = self.call("/v3/kv/deleterange", body)
        assert st == 200, f"etcd delete {key!r}: HTTP {st} {resp}"
        return int(resp.get("deleted", 0))


def start_etcd_single(base_dir, name="etcd1", attempts=5):
    """A ready single-member etcd on fresh ports (retried if a port was taken meanwhile)."""
    last = None
    for i in range(attempts):
        cp, pp = free_port(), free_port()
        m = EtcdMember(base_dir, name, cp, pp, f"{name}=http://127.0.0.1:{pp}")
        shutil.rmtree(m.data_dir, ignore_errors=True)
        m.start()
        try:
            return m.wait_ready()
        except AddressInUse as e:
            last = e
            m.stop()
    raise AssertionError(f"etcd could not start after {attempts} attempts: {last}")


class EtcdCluster:
    """n etcd members on loopback. .members, .endpoints (comma list), .stop_member(i),
    .start_member(i) (rejoins with its data), .leader_index(), .stop()."""

    def __init__(self, base_dir, n):
        self.base_dir = make_dir(base_dir)
        self.n = n
        self.members = []

    def start(self, attempts=5, timeout=45):
        last = None
        for _ in range(attempts):
            ports = [(free_port(), free_port()) for _ in range(self.n)]
            names = [f"e{i + 1}" for i in range(self.n)]
            initial = ",".join(f"{nm}=http://127.0.0.1:{pp}" for nm, (_, pp) in zip(names, ports))
            token = f"pgwarden-it-{uuid.uuid4().hex[:8]}"
            self.members = [EtcdMember(self.base_dir, nm, cp, pp, initial, cluster_token=token)
                            for nm, (cp, pp) in zip(names, ports)]
            for m in self.members:
                shutil.rmtree(m.data_dir, ignore_errors=True)
                m.start()
            try:
                for m in self.members:
                    m.wait_ready(timeout)
                return self
            except AddressInUse as e:
                last = e
                self.stop()
        raise AssertionError(f"etcd cluster could not start: {last}")

    @property
    def endpoints(self):
        return ",".join(m.url for m in self.members)

    def __getitem__(self, i):
        return self.members[i]

    def running(self):
        return [m for m in self.members if m.proc and m.proc.running()]

    def stop_member(self, i, sig=signal.SIGTERM, timeout=20):
        m = self.members[i]
        return m.proc.stop(sig, timeout)[0]

    def start_member(self, i, timeout=30):
        m = self.members[i]
        m.state = "existing"
        m.start()
        m.wait_ready(timeout)
        return m

    def leader_index(self):
        for i, m in enumerate(self.running()):
            st, resp = m.call("/v3/maintenance/status", {})
            if st == 200 and resp.get("leader") and resp.get("leader") == resp.get("header", {}).get("member_id"):
                return self.members.index(m)
        return None

    def stop(self):
        for m in self.members:
            if m.proc:
                m.stop()


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

class Postgres:
    """A PostgreSQL 15 server run as postgres: .dsn, .query(sql), .stop(), .start()."""

    def __init__(self, base_dir, name="pg1", conf=None):
        self.base_dir = make_dir(base_dir)
        self.name = name
        self.data_dir = self.base_dir / "data"
        self.sock_dir = self.base_dir
        self.port = None
        self.conf = {"fsync": "off", "max_connections": "30", "shared_buffers": "16MB"}
        self.conf.update(conf or {})
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def dsn(self):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def url(self, dbname="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def initdb(self, extra_args=()):
        argv = [PG_BINDIR / "initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust", "-k",
                "-N", "-E", "UTF8", "--locale=C.UTF-8", *extra_args]
        r = subprocess.run([str(a) for a in argv], user=RUN_USER, group=RUN_USER, extra_groups=[],
                           env=base_env(), cwd=self.base_dir, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return self

    def argv(self):
        a = [PG_BINDIR / "postgres", "-D", self.data_dir, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sock_dir}"]
        for k, v in self.conf.items():
            a += ["-c", f"{k}={v}"]
        return a

    def _ready(self):
        self.proc.check_alive("postgres")
        try:
            conn = psycopg2_connect(self.dsn, connect_timeout=2)
        except Exception:
            return False
        conn.close()
        return True

    def start(self, timeout=60, attempts=5, port=None):
        """Starts on `port`, else on the port of the previous run (a restart keeps its
        address), else on a free port (retried on fresh ports if it is taken meanwhile)."""
        last = None
        port = port or self.port
        for _ in range(attempts):
            self.port = port or free_port()
            self.proc = Proc(f"postgres-{self.name}", self.argv(), self.base_dir / "postgres.log",
                             cwd=self.base_dir).start()
            try:
                wait_until(self._ready, timeout, f"postgres {self.name} on port {self.port}", 0.1)
                return self
            except AddressInUse as e:
                last = e
                self.proc.stop()
                if port:
                    break
        raise AssertionError(f"postgres could not start: {last}")

    def connect(self, dbname="postgres", **kw):
        conn = psycopg2_connect(f"{self.dsn.replace('dbname=postgres', 'dbname=' + dbname)}",
                                connect_timeout=10, **kw)
        conn.autocommit = True
        return conn

    def query(self, sql, params=None, dbname="postgres"):
        """Runs sql in autocommit; returns the rows (list of tuples) or [] for no result set."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
        finally:
            conn.close()

    def scalar(self, sql, params=None):
        return self.query(sql, params)[0][0]

    def stop(self, sig=signal.SIGINT, timeout=60):
        """SIGINT = fast shutdown. Waits for the postmaster and every backend to be gone."""
        if self.proc is None or not self.proc.running():
            return self.proc.popen.returncode if self.proc else None
        kids = {proc_ident(p) for p in descendants_of([self.pid])} - {None}
        rc, graceful = self.proc.stop(sig, timeout)
        wait_until(lambda: not any(ident_alive(k) for k in kids), 10,
                   f"postgres {self.name} backends to exit")
        return rc


def psycopg2_connect(dsn, **kw):
    import psycopg2  # Debian: python3-psycopg2
    return psycopg2.connect(dsn, **kw)


# --------------------------------------------------------------------------------------------
# pgwarden: config files, logfmt, nodes
# --------------------------------------------------------------------------------------------

def render_ini(cfg):
    """cfg: {section: {key: value}} (insertion order kept; value None drops the key).
    Returns (text, linemap) where linemap[(section, key)] is the 1-based line of that key."""
    lines, linemap = ["# written by tests/integration/conftest.py"], {}
    for section, kv in cfg.items():
        if kv is None:
            continue
        lines.append("")
        lines.append(f"[{section}]")
        for k, v in kv.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = "on" if v else "off"
            lines.append(f"{k} = {v}")
            linemap[(section, k)] = len(lines)
    return "\n".join(lines) + "\n", linemap


def merge_config(base, overrides):
    out = {s: dict(kv) for s, kv in base.items()}
    for s, kv in (overrides or {}).items():
        if kv is None:
            out.pop(s, None)
            continue
        sec = out.setdefault(s, {})
        for k, v in kv.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return out


LOGFMT_PAIR = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line):
    """Parses one logfmt line into a dict (quoted values unescaped). {} if not logfmt."""
    rec = {}
    for k, v in LOGFMT_PAIR.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v[1:-1])
        rec[k] = v
    return rec if "level" in rec and "msg" in rec else {}


def parse_duration(s, default=5.0):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(s or ""))
    if not m:
        return default
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def sqlite_query(db_path, sql, timeout=10):
    """Runs a read-only query as the postgres user (so no root-owned -wal/-shm file is ever
    created next to pgwarden's database). Returns rows as lists, or raises on error."""
    code = ("import json,sqlite3,sys\n"
            "c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro',uri=True,timeout=5)\n"
            "print(json.dumps([list(r) for r in c.execute(sys.argv[2])]))\n")
    r = subprocess.run([SYS_PYTHON, "-c", code, str(db_path), sql], user=RUN_USER, group=RUN_USER,
                       extra_groups=[], env=base_env(), cwd="/", capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"sqlite query failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


class Node:
    """One `pgwarden run -c FILE` process and everything it starts.

    .pid .config .config_path .state_dir .data_dir .ports {'rw','ro','web'}
    .log() .records() .mark() .wait_log(regex) .wait_record(**fields) .children()
    .child_pids() .signal(sig) .reload(cfg=None) .stop(timeout) .wait_exit(timeout)
    """

    def __init__(self, factory, name, node_dir, config, argv_prefix, extra_env):
        self.factory = factory
        self.name = name
        self.dir = node_dir
        self.config = config
        self.config_path = node_dir / "pgwarden.ini"
        self.stderr_path = node_dir / "stderr.log"
        self.argv_prefix = argv_prefix
        self.tag = uuid.uuid4().hex
        _NODE_TAGS.append(self.tag)
        self.env = base_env({TEST_ID_ENV: self.tag, **(extra_env or {})})
        self.proc = None
        self.seen = set()   # (pid, starttime) of every process of this node we ever saw
        self.linemap = {}
        self.started_at = None

    # ---- config ----
    @property
    def state_dir(self):
        return Path(self.config["node"]["state_dir"])

    @property
    def data_dir(self):
        return Path(self.config["postgresql"]["data_dir"])

    @property
    def db_path(self):
        return self.state_dir / "pgwarden.db"

    @property
    def ports(self):
        def port(v):
            return int(str(v).rsplit(":", 1)[1])
        return {"rw": port(self.config["proxy"]["rw_listen"]), "ro": port(self.config["proxy"]["ro_listen"]),
                "web": port(self.config["web"]["listen"])}

    @property
    def shutdown_timeout(self):
        return parse_duration(self.config.get("supervisor", {}).get("shutdown_timeout"), 5.0)

    def write_config(self, cfg_or_text=None):
        """Writes self.config (or the given dict / raw text) to the config file."""
        if isinstance(cfg_or_text, str):
            text, self.linemap = cfg_or_text, {}
        else:
            if cfg_or_text is not None:
                self.config = cfg_or_text
            text, self.linemap = render_ini(self.config)
        write_file(self.config_path, text, mode=0o640)
        return self.config_path

    def line_of(self, section, key):
        return self.linemap[(section, key)]

    # ---- process ----
    def argv(self):
        return [*self.argv_prefix, "run", "-c", str(self.config_path)]

    def start(self, write_config=True):
        """Starts `pgwarden run -c FILE`; write_config=False keeps a file written by the test
        (e.g. raw text from node.write_config(text))."""
        if write_config:
            self.write_config()
        self.proc = Proc(f"pgwarden-{self.name}", self.argv(), self.stderr_path, env=self.env,
                         cwd=self.dir).start()
        self.started_at = time.monotonic()
        self.seen.add(self.proc.ident)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.running()

    @property
    def returncode(self):
        return self.proc.popen.poll()

    def log(self):
        return self.proc.log() if self.proc else ""

    def mark(self):
        """Current log length; pass as since= to search only what comes after."""
        return len(self.log())

    def records(self, since=0):
        return [r for r in (logfmt(l) for l in self.log()[since:].splitlines()) if r]

    def wait_log(self, regex, timeout=20, since=0, allow_exit=False, flags=0):
        """Waits until regex matches the log (from offset since); returns the match."""
        rx = re.compile(regex, flags)

        def found():
            m = rx.search(self.log()[since:])
            if m:
                return m
            if not allow_exit and not self.running():
                m = rx.search(self.log()[since:])
                if m:
                    return m
                raise AssertionError(
                    f"pgwarden {self.name} exited ({self.returncode}) before logging /{regex}/;"
                    f" log:\n{tail(self.log())}")
            return None
        try:
            return wait_until(found, timeout, f"/{regex}/ in {self.stderr_path}")
        except Timeout as e:
            raise Timeout(f"{e}\nlog:\n{tail(self.log())}") from None

    def find_records(self, since=0, **fields):
        def match(r):
            for k, v in fields.items():
                got = r.get(k)
                if isinstance(v, re.Pattern):
                    if got is None or not v.search(got):
                        return False
                elif got != str(v):
                    return False
            return True
        return [r for r in self.records(since) if match(r)]

    def wait_record(self, timeout=20, since=0, allow_exit=False, **fields):
        """Waits for a logfmt line with these field values (str, or re.compile(...) to search)."""
        def found():
            got = self.find_records(since, **fields)
            if got:
                return got[-1]
            if not allow_exit and not self.running():
                got = self.find_records(since, **fields)
                if got:
                    return got[-1]
                raise AssertionError(
                    f"pgwarden {self.name} exited ({self.returncode}) before logging {fields};"
                    f" log:\n{tail(self.log())}")
            return None
        try:
            return wait_until(found, timeout, f"log record {fields} in {self.stderr_path}")
        except Timeout as e:
            raise Timeout(f"{e}\nlog:\n{tail(self.log())}") from None

    def wait_ready(self, timeout=30):
        return self.wait_record(timeout, msg="ready", role="supervisor")

    def children(self):
        """PIDs whose PPid is the node's pid (from /proc/*/stat)."""
        if not self.running():
            return []
        kids = children_of(self.pid)
        self._remember(kids)
        return kids

    def descendants(self):
        d = descendants_of([self.pid]) if self.running() else set()
        self._remember(d)
        return sorted(d)

    def child_pids(self):
        """{child name: pid} from the latest msg="child started" record of each child."""
        out = {}
        for r in self.find_records(msg="child started", role="supervisor"):
            if "child" in r and "pid" in r:
                out[r["child"]] = int(r["pid"])
        return out

    def _remember(self, pids):
        for p in pids:
            ident = proc_ident(p)
            if ident:
                self.seen.add(ident)

    def signal(self, sig):
        assert self.running(), f"pgwarden {self.name} is not running (exit {self.returncode})"
        self.proc.popen.send_signal(sig)

    def kill_child(self, pid, sig=SIGKILL):
        """Signals a child of this node (checked: its PPid must be the node's pid)."""
        st = proc_stat(pid)
        assert st is not None and st[0] == self.pid, f"pid {pid} is not a child of node pid {self.pid}"
        self._remember([pid])
        os.kill(pid, sig)

    def reload(self, cfg=None):
        """Rewrites the config (dict or raw text) if given, then SIGHUP; returns a log mark."""
        if cfg is not None:
            self.write_config(cfg)
        since = self.mark()
        self.signal(signal.SIGHUP)
        return since

    def wait_exit(self, timeout=30):
        return self.proc.wait_exit(timeout)

    def stop(self, timeout=None, sig=SIGTERM):
        """Sends sig (SIGTERM) by PID and waits; SIGKILL + AssertionError if it does not exit
        within timeout (default shutdown_timeout + 10 s). Returns the exit status."""
        timeout = self.shutdown_timeout + 10 if timeout is None else timeout
        if self.running():
            self.descendants()
        rc, graceful = self.proc.stop(sig, timeout)
        assert graceful, f"pgwarden {self.name} did not exit within {timeout}s of {sig!r}; killed"
        return rc

    # ---- teardown ----
    def _known_tree(self):
        """Every live process belonging to this node: descendants of the node, processes
        carrying the node's env tag, the postmaster of its data_dir, and their descendants."""
        roots = set()
        if self.proc and self.running():
            roots.add(self.pid)
        roots |= pids_with_env(TEST_ID_ENV, self.tag)
        try:
            pm = int(Path(self.data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
            if proc_comm(pm) == "postgres" and str(self.data_dir) in (proc_cmdline(pm) or ""):
                roots.add(pm)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        pids = roots | descendants_of(roots)
        self._remember(pids)
        return pids

    def cleanup(self, grace=5.0):
        """Stops the node if it still runs, then makes sure that it and ALL its descendants
        are gone (after `grace` seconds to finish exiting). Returns a list of problems
        (leftover processes, which are SIGKILLed by PID; an unclean stop)."""
        problems = []
        if self.proc is None:
            return problems
        self._known_tree()
        if self.running():
            timeout = self.shutdown_timeout + 10
            rc, graceful = self.proc.stop(signal.SIGTERM, timeout)
            if not graceful:
                problems.append(f"pgwarden {self.name} pid {self.pid} ignored SIGTERM for {timeout}s; SIGKILLed")
        self._known_tree()  # anything forked during shutdown / orphaned with the tag
        own = {self.proc.ident}
        try:  # processes have a moment to finish exiting after the supervisor is gone
            wait_until(lambda: not any(ident_alive(i) for i in self.seen - own), grace,
                       "node processes to exit")
        except Timeout:
            pass
        left = [i for i in self.seen - own if ident_alive(i)]
        left_pids = {i[0] for i in left} | (pids_with_env(TEST_ID_ENV, self.tag) - {os.getpid()})
        if left_pids:
            desc = ", ".join(f"{p} ({proc_cmdline(p)})" for p in sorted(left_pids))
            problems.append(f"pgwarden {self.name}: processes left after the node exited: {desc}")
            for i in left:
                kill_ident(i)
            for p in left_pids - {i[0] for i in left}:
                ident = proc_ident(p)
                if ident:
                    kill_ident(ident)
            try:
                wait_until(lambda: not any(pid_alive(p) for p in left_pids), 10, "leftovers to die")
            except Timeout:
                problems.append(f"could not kill leftovers {sorted(left_pids)}")
        return problems


def _test_dir_name(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:40]
    return f"{name}-{next(_dir_counter)}"


_dir_counter = itertools.count(1)


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_bindir():
    assert (PG_BINDIR / "postgres").exists(), f"PostgreSQL 15 not found in {PG_BINDIR} (apt-get install postgresql-15)"
    return PG_BINDIR


@pytest.fixture(scope="session")
def workdir():
    """Session temp root under /tmp owned by postgres; removed at the end
    (kept if PGWARDEN_KEEP_TMP=1)."""
    d = Path(tempfile.mkdtemp(prefix="pgwarden-it-", dir="/tmp"))
    os.chmod(d, 0o755)
    chown_run_user(d)
    yield d
    _keep_sanitizer_reports(d, "session")
    if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


# UBSan inside an ASan build writes to stderr whatever log_path says: with
# PGWARDEN_SANITIZER_LOG_DIR set (make integration-asan), the output files of a test's processes
# are searched for sanitizer reports before they are removed, and the hits are kept there
# (tests/run-integration.sh fails the run if that folder is not empty).
SANITIZER_RE = re.compile(r"runtime error: |ERROR: (Address|Leak|UndefinedBehavior)Sanitizer")


def _keep_sanitizer_reports(root, label):
    out = os.environ.get("PGWARDEN_SANITIZER_LOG_DIR")
    if not out:
        return
    for f in sorted(Path(root).rglob("*.log")):
        try:
            text = f.read_text(errors="replace") if f.is_file() else ""
        except OSError:
            continue
        m = SANITIZER_RE.search(text)
        if m:
            name = f"stderr.{label}.{str(f.relative_to(root)).replace('/', '_')}"
            Path(out, name).write_text(f"{f}\n{text[max(0, m.start() - 2000):][:30000]}")


@pytest.fixture
def tmp_dir(workdir, request):
    """A fresh per-test directory owned by postgres (short name: unix socket paths are < 108 B).
    Removed after the test (its servers are stopped first: they depend on this fixture), so
    etcd's preallocated 64 MB WAL files do not pile up; PGWARDEN_KEEP_TMP=1 keeps it."""
    d = make_dir(workdir / _test_dir_name(request), 0o755)
    yield d
    _keep_sanitizer_reports(d, d.name)
    if os.environ.get("PGWARDEN_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


def _attach_log(request, title, fn, lines=80):
    """On failure, the last `lines` lines of fn() are shown in the report."""
    request.node.__dict__.setdefault("_pgw_logs", []).append((title, fn, lines))


@pytest.fixture
def etcd(tmp_dir, request):
    """A single-member etcd 3.4: .url .pid .put(k, v) .get(k) .get_prefix(p) .delete(k) .stop()."""
    assert Path(ETCD_BIN).exists(), f"{ETCD_BIN} missing (apt-get install etcd-server)"
    m = start_etcd_single(make_dir(tmp_dir / "etcd"))
    _attach_log(request, f"etcd log ({m.proc.log_path})", m.log, 15)
    yield m
    m.stop()
    assert not ident_alive(m.proc.ident)


@pytest.fixture
def etcd_cluster(tmp_dir, request):
    """Factory: etcd_cluster(n=3) -> EtcdCluster (started, every member ready)."""
    clusters = []

    def make(n=3):
        c = EtcdCluster(tmp_dir / f"etcd-cluster{len(clusters) + 1}", n)
        clusters.append(c)
        c.start()
        for m in c.members:
            _attach_log(request, f"etcd {m.name} log", m.log, 15)
        return c
    yield make
    for c in clusters:
        c.stop()


@pytest.fixture
def postgres(tmp_dir, pg_bindir, request):
    """Factory: postgres(name='pg1', conf=None, init=True, start=True) -> Postgres."""
    servers = []

    def make(name=None, conf=None, init=True, start=True):
        name = name or f"pg{len(servers) + 1}"
        pg = Postgres(tmp_dir / name, name, conf)
        servers.append(pg)
        if init:
            pg.initdb()
        if start:
            pg.start()
            _attach_log(request, f"postgres {name} log", pg.proc.log)
        return pg
    yield make
    for pg in servers:
        pg.stop()


@pytest.fixture(scope="session")
def pgwarden_bin():
    """The binary under test: $PGWARDEN_BIN or <repo>/build/dev/pgwarden. Never skipped."""
    path = Path(os.environ.get("PGWARDEN_BIN", REPO / "build/dev/pgwarden")).resolve()
    if not path.is_file():
        pytest.fail(f"pgwarden binary not found at {path}: run `make` (build/dev/pgwarden) "
                    f"or set PGWARDEN_BIN=/path/to/pgwarden", pytrace=False)
    r = subprocess.run(["/usr/bin/test", "-x", str(path)], user=RUN_USER, group=RUN_USER, extra_groups=[])
    if r.returncode != 0:
        pytest.fail(f"{path} is not executable by the {RUN_USER} user", pytrace=False)
    return path


@pytest.fixture
def pgwarden_cli(pgwarden_bin, tmp_dir):
    """pgwarden_cli('version') -> CompletedProcess (text), run as postgres with a timeout."""
    def run(*args, timeout=30, input=None, env=None):
        return subprocess.run([str(pgwarden_bin), *map(str, args)], user=RUN_USER, group=RUN_USER,
                              extra_groups=[], env=base_env(env), cwd=tmp_dir, capture_output=True,
                              text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    return run


def default_node_config(node_dir, name, etcd_url, scope):
    return {
        "node": {"name": name, "state_dir": str(node_dir / "state")},
        "etcd": {"endpoints": etcd_url, "scope": scope},
        "postgresql": {"data_dir": str(node_dir / "pgdata"), "listen": f"127.0.0.1:{free_port()}"},
        "proxy": {"rw_listen": f"127.0.0.1:{free_port()}", "ro_listen": f"127.0.0.1:{free_port()}"},
        "web": {"listen": f"127.0.0.1:{free_port()}"},
        "log": {"level": "info"},
        # election-only nodes unless a test manages PostgreSQL (test_ha_cluster.py)
        "ha": {"manage_postgresql": "off"},
        "supervisor": {"max_restarts": 3, "restart_window": "60s", "shutdown_timeout": "5s"},
    }


@pytest.fixture
def pgwarden_node(request, tmp_dir):
    """Factory: pgwarden_node(name='n1', etcd=<EtcdMember|url>, overrides={...}, config=None,
    start=True, wait_ready=True, bin=None, env=None) -> Node.

    The config is default_node_config() merged with overrides ({section: {key: value}}, None
    removes). config= (a dict) replaces it entirely. For a raw INI text: start=False,
    node.write_config(text), node.start(write_config=False). Ports are fresh; if the node
    exits at start because an address is in use, it is restarted on fresh ports.
    Teardown: stops every node still running and fails the test if any process of a node
    (the node, its children, their descendants) is left behind; those are SIGKILLed by PID.
    Tests that use etcd must request the `etcd` fixture before this one (teardown order)."""
    nodes = []

    def make(name=None, etcd=None, overrides=None, config=None, start=True, wait_ready=True,
             bin=None, env=None, scope=None, attempts=5):
        name = name or f"n{len(nodes) + 1}"
        node_dir = make_dir(tmp_dir / name, 0o755)
        make_dir(node_dir / "state")
        make_dir(node_dir / "pgdata")
        if bin is None:
            bin = [str(request.getfixturevalue("pgwarden_bin"))]
        elif isinstance(bin, (str, Path)):
            bin = [str(bin)]
        etcd_url = getattr(etcd, "url", etcd) or f"http://127.0.0.1:{free_port()}"
        scope = scope or re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40]
        auto_ports = config is None and not any(
            k in (overrides or {}).get(s, {}) for s, k in
            (("proxy", "rw_listen"), ("proxy", "ro_listen"), ("web", "listen")))
        cfg = config if config is not None else merge_config(
            default_node_config(node_dir, name, etcd_url, scope), overrides)
        node = Node(request, name, node_dir, cfg, bin, env)
        nodes.append(node)
        _attach_log(request, f"pgwarden {name} stderr ({node.stderr_path})", node.log)
        node.write_config()
        if not start:
            return node
        for attempt in range(attempts):
            node.start()
            if not wait_ready:
                return node
            try:
                node.wait_ready()
                node.children()
                return node
            except AssertionError:
                if not (auto_ports and not node.running() and IN_USE_RE.search(node.log())
                        and attempt + 1 < attempts):
                    raise
                fresh = default_node_config(node_dir, name, etcd_url, scope)
                for s, k in (("proxy", "rw_listen"), ("proxy", "ro_listen"), ("web", "listen")):
                    node.config[s][k] = fresh[s][k]
        return node

    yield make
    problems = []
    for node in reversed(nodes):
        problems += node.cleanup()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------------------------
# hooks: show server logs on failure; per-test timeout fallback if pytest-timeout is absent
# --------------------------------------------------------------------------------------------

_HAVE_PYTEST_TIMEOUT = importlib.util.find_spec("pytest_timeout") is not None


def pytest_addoption(parser):
    if not _HAVE_PYTEST_TIMEOUT:
        parser.addini("timeout", "per-test timeout in seconds (conftest fallback watchdog)", default="0")
        parser.addini("timeout_method", "ignored by the fallback watchdog", default="signal")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("call", "setup", "teardown"):
        for title, fn, lines in getattr(item, "_pgw_logs", []):
            try:
                text = fn()
            except Exception as e:  # never hide the real failure
                text = f"<could not read: {e}>"
            if text:
                rep.sections.append((title, tail(text, lines)))


if not _HAVE_PYTEST_TIMEOUT:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        marker = item.get_closest_marker("timeout")
        secs = float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout") or 0)
        if secs <= 0:
            yield
            return

        def on_alarm(signum, frame):
            pytest.fail(f"Timeout >{secs:.0f}s (conftest watchdog)", pytrace=True)
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, secs)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
