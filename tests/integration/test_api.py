"""The Patroni-compatible REST API of a real three-node cluster: each health endpoint's code on
the leader and on a replica, the /patroni, /cluster, /history, /config and /metrics bodies,
malformed requests (4xx JSON, the server keeps serving), and POST /switchover with HTTP Basic
authentication (refused without or with wrong credentials, then switching the leader)."""
import base64
import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import Proc, free_port, vm_rss_kib, wait_until, write_file
from proxyutil import haproxy_patroni_cfg, reached
from test_ha_cluster import (HA, SU_PW, bootstrap, ha_cluster,  # noqa: F401 (fixture)
                             leader_name, pg_port, postmaster_pid, wait_caught_up,
                             wait_primary)

USER, PASSWORD = "alice", "Api-secret-9"


def pbkdf2_item(user, role, password, iterations=1000):
    """A [web] users item as `pgwarden passwd` prints it (cheap iteration count for tests)."""
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"{user}:{role}:pbkdf2-sha256${iterations}${b64(salt)}${b64(key)}"


def web_addr(node):
    host, port = node.config["web"]["listen"].rsplit(":", 1)
    return host, int(port)


def api(node, method, path, body=None, headers=None, timeout=60, raw=None):
    """(status, body bytes, headers dict with lower-case names)."""
    host, port = web_addr(node)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = dict(headers or {})
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def raw_request(node, data, timeout=30):
    """Sends raw bytes, returns (status, head bytes) of the answer."""
    with socket.create_connection(web_addr(node), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            part = s.recv(65536)
            if not part:
                break
            buf += part
    head = buf.split(b"\r\n\r\n", 1)[0]
    return int(head.split(b" ", 2)[1]), head


def code(node, path, method="GET"):
    return api(node, method, path)[0]


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def metrics(node):
    st, body, h = api(node, "GET", "/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain"), (st, h)
    out = {}
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        assert m, f"bad metrics line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metric(ms, name):
    vals = [v for k, v in ms.items() if k == name or k.startswith(name + "{")]
    assert len(vals) == 1, (name, vals)
    return vals[0]


LEADER_200 = ["/", "/primary", "/master", "/read-write", "/leader", "/read-only",
              "/read-only-sync", "/health", "/liveness", "/readiness", "/patroni", "/cluster",
              "/history", "/config", "/metrics"]
LEADER_503 = ["/replica", "/sync", "/synchronous", "/async", "/asynchronous", "/standby-leader"]
REPLICA_200 = ["/replica", "/read-only", "/async", "/asynchronous", "/health", "/liveness",
               "/readiness", "/patroni", "/cluster", "/replica?lag=1GB", "/read-only?lag=16MB"]
REPLICA_503 = ["/", "/primary", "/master", "/read-write", "/leader", "/sync", "/read-only-sync",
               "/replica?tag_nosuchtag=1", "/standby-leader"]


def replica_ready(node):
    return code(node, "/replica") == 200


def test_health_codes_and_bodies(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    replicas = [n for n in nodes if n is not leader]
    for r in replicas:
        wait_until(lambda r=r: replica_ready(r), 60, f"{r.name} /replica 200", 0.2)
    wait_until(lambda: code(leader, "/primary") == 200, 30, "leader /primary 200", 0.2)

    for path in LEADER_200:
        for method in ("GET", "HEAD", "OPTIONS"):
            assert code(leader, path, method) == 200, (leader.name, method, path)
    for path in LEADER_503:
        for method in ("GET", "HEAD", "OPTIONS"):
            assert code(leader, path, method) == 503, (leader.name, method, path)
    for r in replicas:
        for path in REPLICA_200:
            assert code(r, path) == 200, (r.name, path)
        for path in REPLICA_503:
            assert code(r, path) == 503, (r.name, path)
        assert code(r, "/replica", "OPTIONS") == 200
        assert code(r, "/primary", "OPTIONS") == 503

    # HEAD and OPTIONS carry no body (HAProxy's `option httpchk OPTIONS /primary`)
    st, body, _ = api(leader, "OPTIONS", "/primary")
    assert st == 200 and body == b""

    # /patroni on the leader and on a replica
    st, body, h = api(leader, "GET", "/patroni")
    p = json.loads(body)
    assert st == 200 and h["content-type"] == "application/json"
    assert p["state"] == "running" and p["role"] in ("master", "primary"), p
    assert isinstance(p["server_version"], int) and p["server_version"] >= 150000, p
    assert isinstance(p["timeline"], int) and p["timeline"] >= 1, p
    assert isinstance(p["xlog"]["location"], int), p
    assert p["patroni"]["scope"] == leader.config["etcd"]["scope"], p
    assert p["patroni"]["name"] == leader.name and p["patroni"]["version"], p
    assert p["database_system_identifier"].isdigit(), p
    assert isinstance(p["dcs_last_seen"], int) and p["dcs_last_seen"] > 0, p
    # Patroni's replication list: both replicas streaming (pg_stat_replication of the leader)
    wait_until(lambda: sorted(r["application_name"] for r in json.loads(
        api(leader, "GET", "/patroni")[1]).get("replication", []) if r["state"] == "streaming")
        == sorted(r.name for r in replicas), 30, "both replicas in /patroni replication", 0.5)
    # every health GET answers with the same body
    assert json.loads(api(leader, "GET", "/primary")[1])["role"] == p["role"]
    rp = json.loads(api(replicas[0], "GET", "/patroni")[1])
    assert rp["role"] == "replica" and rp["state"] == "running", rp
    assert "location" not in rp["xlog"] and isinstance(rp["xlog"]["replayed_location"], int), rp

    # /cluster: the three members, one leader
    c = json.loads(api(replicas[1], "GET", "/cluster")[1])
    names = sorted(m["name"] for m in c["members"])
    assert names == sorted(n.name for n in nodes), c
    lead = [m for m in c["members"] if m["role"] == "leader"]
    assert len(lead) == 1 and lead[0]["name"] == leader.name, c
    for m in c["members"]:
        assert m["state"] == "running" and m["api_url"].endswith("/patroni"), m
        if m["role"] != "leader":
            assert m["lag"] == "unknown" or m["lag"] >= 0, m

    # /history (none yet: no failover happened) and /config (the dynamic config)
    st, body, _ = api(leader, "GET", "/history")
    assert st == 200 and isinstance(json.loads(body), list)
    st, body, _ = api(leader, "GET", "/config")
    cfg = json.loads(body)
    assert st == 200 and cfg.get("ttl") and cfg.get("loop_wait"), cfg

    # /metrics parses and agrees with the roles; the forwarder's counters are there
    ml = metrics(leader)
    assert metric(ml, "patroni_primary") == 1 and metric(ml, "patroni_master") == 1
    assert metric(ml, "patroni_replica") == 0 and metric(ml, "patroni_postgres_running") == 1
    assert metric(ml, "patroni_xlog_location") > 0 and metric(ml, "patroni_postgres_timeline") >= 1
    assert metric(ml, "patroni_cluster_unlocked") == 0 and metric(ml, "patroni_is_paused") == 0
    assert metric(ml, "patroni_dcs_last_seen") > 1.6e9
    assert metric(ml, "patroni_version") > 0
    wait_until(lambda: any(k.startswith("pgwarden_proxy_connections_total") for k in
                           metrics(leader)), 10, "forwarder counters in /metrics", 0.2)
    mr = metrics(replicas[0])
    assert metric(mr, "patroni_primary") == 0 and metric(mr, "patroni_replica") == 1
    assert metric(mr, "patroni_xlog_replayed_location") > 0

    # /events reads the node's SQLite history
    st, body, _ = api(leader, "GET", "/events?limit=5")
    ev = json.loads(body)
    assert st == 200 and isinstance(ev["events"], list) and len(ev["events"]) <= 5, ev


def test_bad_requests_get_json_4xx(etcd, ha_cluster):
    nodes, leader = bootstrap(etcd, ha_cluster)
    before = leader_name(etcd.url, leader)

    def err(st_body, want):
        st, body, h = st_body
        assert st == want, (st, body)
        assert h["content-type"] == "application/json", h
        assert json.loads(body)["error"], body
        return h

    err(api(leader, "GET", "/nope"), 404)
    err(api(leader, "GET", "/../../etc/passwd"), 404)
    err(api(leader, "GET", "/%2e%2e/%2e%2e/etc/passwd"), 404)
    h = err(api(leader, "POST", "/primary", body={}), 405)
    assert h["allow"] == "GET, HEAD, OPTIONS"
    h = err(api(leader, "DELETE", "/config"), 405)
    assert "PATCH" in h["allow"]
    err(api(leader, "PATCH", "/config", raw=b'{"ttl": '), 400)
    err(api(leader, "PATCH", "/config", raw=b"[" * 100 + b"]" * 100), 400)
    err(api(leader, "POST", "/switchover", raw=b"not json"), 400)
    st, head = raw_request(leader, b"PATCH /config HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                   b"Content-Length: 10000000\r\n\r\n{")
    assert st == 413 and b"application/json" in head, head
    # a chunked body that grows past the cap is read, then refused
    chunk = b"{" + b" " * (70 * 1024) + b"}"
    st, head = raw_request(leader, b"PATCH /config HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n" +
                           f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    assert st == 413, head
    # headers above the per-connection memory
    st, head = raw_request(leader, b"GET /primary HTTP/1.1\r\nHost: t\r\nX-Big: " +
                           b"a" * 20000 + b"\r\nConnection: close\r\n\r\n")
    assert st == 431, head
    err(api(leader, "GET", "/events?limit=zero"), 400)
    # Patroni's plain-text validation answers
    st, body, _ = api(leader, "POST", "/failover", body={})
    assert st == 400 and b"candidate" in body, body
    st, body, _ = api(leader, "POST", "/switchover", body={"candidate": "x"})
    assert st == 400 and b"leader" in body, body
    st, body, _ = api(leader, "POST", "/switchover", body={"leader": "nobody"})
    assert st == 412, (st, body)
    # the process keeps serving, nothing changed
    assert code(leader, "/primary") == 200
    assert leader_name(etcd.url, leader) == before
    assert all(code(n, "/health") == 200 for n in nodes)


def test_switchover_needs_basic_auth(etcd, ha_cluster, pgwarden_node):
    item = pbkdf2_item(USER, "admin", PASSWORD)
    ro_item = pbkdf2_item("bob", "readonly", PASSWORD)
    overrides = {k: dict(v) for k, v in HA.items()}
    overrides["web"] = {"users": f"{item},{ro_item}"}
    nodes = [pgwarden_node(name=f"n{i + 1}", etcd=etcd.url, overrides=overrides)
             for i in range(3)]
    leader = wait_primary(etcd.url, nodes, 90)
    cand = next(n for n in nodes if n is not leader)
    for n in nodes:
        if n is not leader:
            wait_until(lambda n=n: code(n, "/replica") == 200, 90, f"{n.name} replica", 0.2)
    wait_caught_up(etcd.url, nodes, leader, 30)
    body = {"leader": leader.name, "candidate": cand.name}

    st, resp, h = api(leader, "POST", "/switchover", body=body)
    assert st == 401, (st, resp)
    assert h["www-authenticate"] == 'Basic realm="pgwarden"'
    st, resp, _ = api(leader, "POST", "/switchover", body=body, headers=basic(USER, "wrong"))
    assert st == 401, (st, resp)
    st, resp, _ = api(leader, "POST", "/switchover", body=body, headers=basic("bob", PASSWORD))
    assert st == 403, (st, resp)
    assert leader_name(etcd.url, leader) == leader.name  # nothing changed
    assert code(leader, "/primary") == 200  # GET needs no credentials

    st, resp, _ = api(leader, "POST", "/switchover", body=body, headers=basic(USER, PASSWORD),
                      timeout=60)
    assert st == 200, (st, resp)
    assert resp.decode() == f'Successfully switched over to "{cand.name}"', resp
    new = wait_primary(etcd.url, nodes, 30)
    assert new is cand
    wait_until(lambda: code(cand, "/primary") == 200, 30, "new leader /primary 200", 0.2)
    wait_until(lambda: code(leader, "/primary") == 503, 30, "old leader /primary 503", 0.2)
    wait_until(lambda: code(leader, "/replica") == 200, 90, "old leader /replica 200", 0.2)
    hist = json.loads(api(cand, "GET", "/history")[1])
    assert hist and hist[-1][4] == cand.name, hist


def test_haproxy_follows_the_leader(etcd, ha_cluster, tmp_dir):
    """HAProxy configured as Patroni's documentation shows (OPTIONS /primary health checks on the
    REST port) sends clients to the leader, and to the new leader after a switchover."""
    nodes, leader = bootstrap(etcd, ha_cluster)
    port = free_port()
    cfg = write_file(tmp_dir / "haproxy.cfg", haproxy_patroni_cfg(
        port, [(n.name, pg_port(n), web_addr(n)[1]) for n in nodes]))
    hap = Proc("haproxy", ["/usr/sbin/haproxy", "-db", "-f", str(cfg)], tmp_dir / "haproxy.log")
    hap.start()
    try:
        got = wait_until(lambda: reached(port, SU_PW), 30, "a connection through haproxy", 0.2)
        assert got == (pg_port(leader), False), got
        cand = next(n for n in nodes if n is not leader)
        wait_caught_up(etcd.url, nodes, leader, 30)
        st, body, _ = api(leader, "POST", "/switchover",
                          body={"leader": leader.name, "candidate": cand.name})
        assert st == 200, (st, body)
        wait_until(lambda: reached(port, SU_PW) == (pg_port(cand), False), 60,
                   "haproxy routing to the new leader", 0.3)
        # and through a failover: the new leader's PostgreSQL is SIGKILLed
        wait_caught_up(etcd.url, nodes, cand, 30)
        os.kill(postmaster_pid(cand), signal.SIGKILL)
        third = wait_primary(etcd.url, nodes, 60, other_than=cand.name)
        wait_until(lambda: reached(port, SU_PW) == (pg_port(third), False), 60,
                   "haproxy routing to the leader after the failover", 0.3)
        hap.check_alive()
    finally:
        hap.stop()


def test_api_over_tls(etcd, pgwarden_node, tmp_dir):
    """With [web] tls_cert/tls_key the same API answers over HTTPS (TLS terminated by pgwarden,
    plaintext handed to the HTTP server with the client's address)."""
    cert, key = tmp_dir / "web.crt", tmp_dir / "web.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    for f in (cert, key):
        os.chmod(f, 0o640)
        os.chown(f, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
    node = pgwarden_node(name="n1", etcd=etcd.url,
                         overrides={"web": {"tls_cert": str(cert), "tls_key": str(key)}})
    host, port = web_addr(node)
    ctx = ssl.create_default_context(cafile=str(cert))

    def get(path, method="GET", body=None):
        conn = http.client.HTTPSConnection(host, port, timeout=30, context=ctx)
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()

    wait_until(lambda: get("/cluster")[0] == 200, 30, "GET /cluster over TLS", 0.2)
    st, body, h = get("/metrics")
    assert st == 200 and b"patroni_version" in body, (st, body[:200])
    st, body, h = get("/nope")
    assert st == 404 and json.loads(body)["error"], body
    # unsafe endpoints see the real (loopback) client address: allowed without users
    st, body, h = get("/reload", "POST")
    assert st == 202, (st, body)
    # plain HTTP on the TLS port gets no HTTP answer
    with pytest.raises((http.client.HTTPException, OSError)):
        api(node, "GET", "/primary", timeout=5)


@pytest.mark.bench
def test_wrk_primary_figure(etcd, ha_cluster):
    """wrk against GET /primary on the leader of a managed one-node cluster: requests/s, p99 and
    the web process's RSS under load, while the HA loop keeps renewing the lease."""
    nodes = ha_cluster(1)
    leader = wait_primary(etcd.url, nodes, 90)
    wait_until(lambda: code(leader, "/primary") == 200, 30, "/primary 200", 0.2)
    web_pid = leader.child_pids()["web"]
    rss_idle = vm_rss_kib(web_pid)
    host, port = web_addr(leader)
    mark = leader.mark()
    rss_peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss_peak[0] = max(rss_peak[0], vm_rss_kib(web_pid))
            time.sleep(0.2)
    t = threading.Thread(target=sample)
    t.start()
    figures = []
    try:
        for threads, conns in ((1, 16), (2, 64)):
            out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", "-d15s", "--latency",
                                  f"http://{host}:{port}/primary"],
                                 capture_output=True, text=True, timeout=120).stdout
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
            p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            figures.append(f"wrk -t{threads} -c{conns}: {rps:.0f} req/s, p99 {p99_ms:.2f} ms, "
                           f"non-2xx {non2xx.group(1) if non2xx else 0}")
            assert not non2xx, out  # the lease was renewed all along
    finally:
        stop.set()
        t.join()
    print("\nFIGURE web GET /primary: " + "; ".join(figures) +
          f"; web RSS idle {rss_idle} KiB, peak under load {rss_peak[0]} KiB\n")
    assert code(leader, "/primary") == 200
    assert not leader.find_records(msg="lease lost", since=mark)


def test_scheduled_restart(etcd, ha_cluster):
    """POST /restart with a schedule: 202, published in the member key, a second one 409,
    DELETE /restart cancels it (then 404); a new schedule restarts PostgreSQL at its time."""
    import datetime
    from test_ha_cluster import _kv, prefix
    nodes, leader = bootstrap(etcd, ha_cluster)
    replica = next(n for n in nodes if n is not leader)
    def at(seconds):
        t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        return t.isoformat(timespec="seconds")
    st, body, _ = api(replica, "POST", "/restart", body={"schedule": at(60)})
    assert st == 202, (st, body)
    wait_until(lambda: "scheduled_restart" in json.loads(
        _kv(etcd.url, prefix(replica) + "members/" + replica.name) or "{}"), 10,
        "scheduled_restart in the member key")
    st, body, _ = api(replica, "POST", "/restart", body={"schedule": at(60)})
    assert st == 409, (st, body)
    st, body, _ = api(replica, "POST", "/restart", body={"schedule": "2001-01-01T00:00:00+00:00"})
    assert st == 409, (st, body)  # one is scheduled already
    assert api(replica, "DELETE", "/restart")[0] == 200
    assert api(replica, "DELETE", "/restart")[0] == 404
    st, body, _ = api(replica, "POST", "/restart", body={"schedule": "2001-01-01T00:00:00+00:00"})
    assert st == 422, (st, body)
    pm = postmaster_pid(replica)
    st, body, _ = api(replica, "POST", "/restart", body={"schedule": at(3)})
    assert st == 202, (st, body)
    wait_until(lambda: postmaster_pid(replica) not in (None, pm), 30, "the scheduled restart")
    wait_until(lambda: "scheduled_restart" not in json.loads(
        _kv(etcd.url, prefix(replica) + "members/" + replica.name) or "{}"), 10,
        "scheduled_restart gone from the member key")
