"""`pgwarden migrate`: a separate PostgreSQL 15 plays the hosted source (SSL required, a
self-signed certificate, a non-superuser owner with a password, like Heroku), holding a realistic
schema (two schemas, foreign keys, sequences, a view, a function, a trigger, an extension,
bytea, a table of 1,000,000 rows). The target is a one-node pgwarden cluster that manages its
PostgreSQL. Each test checks the exit status, the message, the SQLite job row, and that no
half-made database is left behind; the password never appears in any output, log or row."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (PG_BINDIR, RUN_USER, Postgres, base_env, make_dir, psycopg2_connect,
                      sqlite_query, wait_until, write_file)
from test_ha_cluster import HA, SU_PW, query, wait_primary

APP_PW = "s3cr3t:pw@heroku/x"   # ':' '@' '/' must survive URL encoding and the passfile
APP_PW_URL = "s3cr3t%3Apw%40heroku%2Fx"
BIG_ROWS = 1_000_000

pytestmark = pytest.mark.timeout(900)


def _openssl_cert(d):
    key, crt = d / "server.key", d / "server.crt"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for p, mode in ((key, 0o600), (crt, 0o644)):
        os.chmod(p, mode)
        os.chown(p, *_pg_ids())
    return key, crt


def _pg_ids():
    import pwd
    pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


SCHEMA_SQL = f"""
CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore;
CREATE SCHEMA inventory AUTHORIZATION app;
CREATE SCHEMA sales AUTHORIZATION app;
SET ROLE app;
CREATE TABLE inventory.products (
  id serial PRIMARY KEY, sku text UNIQUE NOT NULL, name text NOT NULL,
  price numeric(10,2) CHECK (price >= 0), attrs hstore, picture bytea, added timestamptz);
CREATE TABLE sales.customers (
  id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, pw_hash text, since date);
CREATE TABLE sales.orders (
  id serial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES sales.customers(id),
  product_id int NOT NULL REFERENCES inventory.products(id), qty int NOT NULL CHECK (qty > 0),
  placed_at timestamptz NOT NULL DEFAULT now(), note text);
CREATE INDEX orders_customer ON sales.orders(customer_id);
CREATE TABLE sales.events (id bigint PRIMARY KEY, kind text, payload jsonb, ts timestamptz,
  score double precision);
CREATE SEQUENCE sales.invoice_no START 1000;
CREATE VIEW sales.order_totals AS
  SELECT o.customer_id, sum(o.qty * p.price) AS total
  FROM sales.orders o JOIN inventory.products p ON p.id = o.product_id GROUP BY 1;
CREATE FUNCTION sales.order_value(oid int) RETURNS numeric LANGUAGE sql STABLE AS
  $$ SELECT o.qty * p.price FROM sales.orders o JOIN inventory.products p ON p.id = o.product_id
     WHERE o.id = oid $$;
CREATE FUNCTION sales.touch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.note := coalesce(NEW.note, 'new'); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION sales.touch();
INSERT INTO inventory.products (sku, name, price, attrs, picture, added)
  SELECT 'SKU-' || g, 'product ' || g, g * 1.25, hstore('color', 'c' || (g % 7)),
         gen_random_bytes(64 + g % 200), '2024-01-01 00:00+00'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 500) g;
INSERT INTO sales.customers (email, pw_hash, since)
  SELECT 'user' || g || '@example.com', crypt('pw' || g, gen_salt('md5')), date '2020-01-01' + g % 900
  FROM generate_series(1, 2000) g;
INSERT INTO sales.orders (customer_id, product_id, qty, placed_at)
  SELECT 1 + g % 2000, 1 + g % 500, 1 + g % 5, '2024-02-01 00:00+00'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 20000) g;
INSERT INTO sales.events
  SELECT g, 'kind' || (g % 13), jsonb_build_object('n', g, 'tag', md5(g::text)),
         '2024-01-01 00:00+00'::timestamptz + g * interval '1 second', g / 7.0
  FROM generate_series(1, {BIG_ROWS}) g;
SELECT setval('sales.invoice_no', 4242);
RESET ROLE;
"""


class Source:
    """The hosted database: .url(password=..., sslmode=...), .pg (harness Postgres)."""

    def __init__(self, pg, ssl):
        self.pg = pg
        self.ssl = ssl

    def url(self, password=APP_PW_URL, sslmode="require", db="shop", port=None):
        pw = f":{password}" if password is not None else ""
        q = f"?sslmode={sslmode}" if sslmode else ""
        return f"postgres://app{pw}@127.0.0.1:{port or self.pg.port}/{db}{q}"

    def query(self, sql, db="shop"):
        return self.pg.query(sql, dbname=db)


def _start_source(base, ssl, big=True):
    pg = Postgres(base, base.name, conf={"max_connections": "40", "shared_buffers": "64MB",
                                         "password_encryption": "scram-sha-256"})
    pg.initdb()
    if ssl:
        key, crt = _openssl_cert(pg.base_dir)
        pg.conf.update({"ssl": "on", "ssl_cert_file": str(crt), "ssl_key_file": str(key)})
        hba = ("local all all trust\n"
               "hostssl all postgres 127.0.0.1/32 trust\n"
               "hostssl all app 127.0.0.1/32 scram-sha-256\n"
               "host all all 127.0.0.1/32 reject\n")
    else:
        hba = ("local all all trust\n"
               "host all postgres 127.0.0.1/32 trust\n"
               "host all app 127.0.0.1/32 scram-sha-256\n")
    write_file(pg.data_dir / "pg_hba.conf", hba, mode=0o600)
    pg.start()
    pg.query(f"CREATE ROLE app LOGIN PASSWORD '{APP_PW}'")
    pg.query("CREATE DATABASE shop OWNER app")
    if big:
        conn = pg.connect("shop")
        with conn.cursor() as cur:
            cur.execute(SCHEMA_SQL)
            cur.execute("VACUUM ANALYZE")
        conn.close()
    else:
        pg.query("CREATE TABLE public.t (id int PRIMARY KEY)", dbname="shop")
        pg.query("ALTER TABLE public.t OWNER TO app", dbname="shop")
        pg.query("INSERT INTO public.t SELECT generate_series(1, 10)", dbname="shop")
        pg.query("CREATE TABLE public.u (id int PRIMARY KEY, v text, f float8, ts timestamptz, "
                 "j jsonb); ALTER TABLE public.u OWNER TO app; INSERT INTO public.u SELECT g, "
                 "'v' || g, g / 3.0, '2024-01-01 00:00+00'::timestamptz + g * interval '1 s', "
                 "jsonb_build_object('g', g) FROM generate_series(1, 50) g", dbname="shop")
    return pg


@pytest.fixture(scope="module")
def source(workdir):
    pg = _start_source(make_dir(workdir / "mig-src", 0o755), ssl=True)
    yield Source(pg, True)
    pg.stop()


@pytest.fixture(scope="module")
def plain_source(workdir):
    pg = _start_source(make_dir(workdir / "mig-plain", 0o755), ssl=False, big=False)
    yield Source(pg, False)
    pg.stop()


@pytest.fixture
def cluster(etcd, pgwarden_node):
    """One pgwarden node managing its PostgreSQL, writable, its forwarder routing to it."""
    node = pgwarden_node(name="n1", etcd=etcd.url, overrides=HA)
    wait_primary(etcd.url, [node], 120)

    def through_forwarder():
        try:
            c = psycopg2_connect(f"host=127.0.0.1 port={node.ports['rw']} user=postgres "
                                 f"dbname=postgres password={SU_PW}", connect_timeout=5)
            c.close()
            return True
        except Exception:
            return False
    wait_until(through_forwarder, 60, "the read-write forwarder to reach the leader", 0.3)
    return node


def migrate(node, *args, env=None, timeout=600):
    e = base_env(env)
    r = subprocess.run([os.environ.get("PGWARDEN_BIN", str(Path(__file__).resolve().parents[2] /
                                                            "build/dev/pgwarden")),
                        "migrate", "-c", str(node.config_path), *map(str, args)],
                       user=RUN_USER, group=RUN_USER, extra_groups=[], env=e, cwd=node.dir,
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    with open(node.dir / "migrate.out", "a") as f:  # kept for a post-mortem (PGWARDEN_KEEP_TMP=1)
        f.write(f"$ pgwarden migrate {' '.join(map(str, args))}\nexit {r.returncode}\n"
                f"{r.stdout}{r.stderr}\n")
    return r


def databases(node):
    return {r[0] for r in query(node, "SELECT datname FROM pg_database")}


def jobs(node):
    return sqlite_query(node.db_path, "SELECT id, state, source, target_db, staging_db, error, "
                                      "report, bytes_done, bytes_total, tables_done, "
                                      "tables_total FROM migrations ORDER BY id")


def assert_no_secret(*texts):
    for t in texts:
        assert APP_PW not in t and APP_PW_URL not in t and SU_PW not in t, t


def assert_clean(node, target):
    dbs = databases(node)
    assert target not in dbs, dbs
    assert not [d for d in dbs if d.startswith("pgwarden_migrate_")], dbs
    assert not list(Path(node.state_dir, "migrate").glob("*/pgpass"))


def test_migrate_verified_url_and_replace(source, cluster):
    node = cluster
    r = migrate(node, "--from", source.url(), "--to", "shop", "--jobs", "2",
                "--verify", "checksums", "--yes")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert_no_secret(out, node.log())
    assert "source and copy are identical" in r.stdout and "(with row checksums)" in r.stdout
    m = re.search(r"^DATABASE_URL=(postgres://\S+)$", r.stdout, re.M)
    assert m, r.stdout
    url = m.group(1)
    assert url == f"postgres://postgres@127.0.0.1:{node.ports['rw']}/shop", url
    assert "heroku config:set DATABASE_URL=" in r.stdout and "addons:destroy" in r.stdout
    # through the printed URL (the forwarder's read-write port), with the password added
    conn = psycopg2_connect(url.replace("postgres@", f"postgres:{SU_PW}@"), connect_timeout=10)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sales.events")
        assert cur.fetchone()[0] == BIG_ROWS
        cur.execute("SELECT count(*), sum(qty) FROM sales.orders")
        assert cur.fetchone() == (20000, 60000)
        cur.execute("SELECT last_value FROM sales.invoice_no")
        assert cur.fetchone()[0] == 4242
        cur.execute("SELECT sales.order_value(1), (SELECT count(*) FROM sales.order_totals)")
        assert cur.fetchone()[1] == 2000
        cur.execute("SELECT attrs -> 'color', length(picture) FROM inventory.products WHERE id = 3")
        assert cur.fetchone() == ("c3", 67)
        cur.execute("SELECT extname FROM pg_extension ORDER BY 1")
        assert [x[0] for x in cur.fetchall()] == ["hstore", "pgcrypto", "plpgsql"]
        # no owners from the source: the cluster's superuser owns everything
        cur.execute("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN "
                    "pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'sales'")
        assert [x[0] for x in cur.fetchall()] == ["postgres"]
    conn.close()
    rows = jobs(node)
    assert len(rows) == 1
    jid, state, src, target, staging, err, report, bdone, btotal, tdone, ttotal = rows[0]
    assert state == "done" and target == "shop" and err == ""
    assert src == f"postgres://app@127.0.0.1:{source.pg.port}/shop?sslmode=require", src
    rep = json.loads(report)
    assert rep["ok"] is True and rep["checksums"] is True and rep["differences"] == []
    assert rep["tables"] == 4 and rep["rows"] == BIG_ROWS + 20000 + 2000 + 500
    assert not [d for d in databases(node) if d.startswith("pgwarden_migrate_")]
    assert not Path(node.state_dir, "migrate", str(jid)).exists()  # dump and passfile removed
    st = migrate(node, "status")
    assert st.returncode == 0 and "migration 1: done" in st.stdout, st.stdout + st.stderr
    sj = json.loads(migrate(node, "status", "--json").stdout)
    assert sj["state"] == "done" and sj["report"]["ok"] is True
    ev = sqlite_query(node.db_path, "SELECT detail FROM events WHERE kind = 'migration'")
    assert len(ev) == 2
    for row in sqlite_query(node.db_path, "SELECT * FROM migrations") + ev:
        assert_no_secret(json.dumps(row))

    # the same target again: refused (it has data), nothing changed
    r2 = migrate(node, "--from", source.url(), "--to", "shop", "--yes")
    assert r2.returncode == 1, r2.stdout + r2.stderr
    assert "already exists and is not empty" in r2.stderr and "--replace" in r2.stderr
    assert jobs(node)[-1][1] == "failed"
    # --replace without --yes and without a terminal: refused before anything is changed
    r3 = migrate(node, "--from", source.url(), "--to", "shop", "--replace")
    assert r3.returncode == 64 and "--yes" in r3.stderr, r3.stderr
    # --replace --yes: the copy replaces the old database only once verified
    conn = psycopg2_connect(f"host=127.0.0.1 port={node.ports['rw']} user=postgres dbname=shop "
                            f"password={SU_PW}")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales.events WHERE id > 10")
    conn.close()
    r4 = migrate(node, "--from", source.url(), "--to", "shop", "--replace", "--yes", "-j", "1")
    assert r4.returncode == 0, r4.stdout + r4.stderr
    assert query_db(node, "shop", "SELECT count(*) FROM sales.events") == BIG_ROWS


def query_db(node, db, sql):
    conn = psycopg2_connect(f"host=127.0.0.1 port={node.ports['rw']} user=postgres dbname={db} "
                            f"password={SU_PW}", connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_migrate_bad_inputs(source, plain_source, cluster):
    node = cluster
    cases = [
        ("wrong password", source.url(password="nope"), "password authentication failed", 69),
        ("no SSL on the source", plain_source.url(), "SSL", 69),
        ("unreachable", source.url(port=1), "cannot connect to the source", 69),
        ("no such database", source.url(db="nosuchdb"), "does not exist", 69),
    ]
    for what, url, msg, code in cases:
        r = migrate(node, "--from", url, "--to", "newdb", "--yes")
        out = r.stdout + r.stderr
        assert r.returncode == code, f"{what}: {out}"
        assert msg in r.stderr, f"{what}: {out}"
        assert "cannot connect to the source postgres://app@127.0.0.1:" in r.stderr, out
        assert_no_secret(out)
        assert_clean(node, "newdb")
        assert jobs(node)[-1][1] == "failed", what
    # the sslmode=require source works without SSL demanded by the URL? a plain source with
    # sslmode=disable is fine (the message above came from libpq's SSL check)
    r = migrate(node, "--from", plain_source.url(sslmode="disable"), "--to", "small", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert query_db(node, "small", "SELECT count(*) FROM t") == 10
    # a target that already has data, without --replace
    r = migrate(node, "--from", plain_source.url(sslmode="disable"), "--to", "small", "--yes")
    assert r.returncode == 1 and "not empty" in r.stderr, r.stderr
    assert query_db(node, "small", "SELECT count(*) FROM t") == 10
    # an existing but empty target is filled
    query(node, "CREATE DATABASE emptydb")
    r = migrate(node, "--from", plain_source.url(sslmode="disable"), "--to", "emptydb", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert query_db(node, "emptydb", "SELECT count(*) FROM t") == 10
    # a copy that differs from the source (test hook changes it before the verification)
    r = migrate(node, "--from", plain_source.url(sslmode="disable"), "--to", "tampered",
                "--yes", "--verify", "checksums",
                env={"PGWARDEN_MIGRATE_TEST_TAMPER_SQL": "UPDATE t SET id = id + 100 WHERE id = 1"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "verification FAILED" in r.stdout and re.search(r"checksum\s+public\.t", r.stdout)
    assert "verification found 1 difference" in r.stderr
    assert "was dropped" in r.stderr
    assert_clean(node, "tampered")
    rep = json.loads(jobs(node)[-1][6])
    assert rep["ok"] is False and rep["differences"][0]["object"] == "public.t"
    # one value of one column of one row, the row count unchanged: caught by the checksum
    for n, sql in enumerate(["UPDATE u SET v = 'v3x' WHERE id = 3",
                             "UPDATE u SET f = f + 1e-12 WHERE id = 7",
                             "UPDATE u SET ts = ts + interval '1 microsecond' WHERE id = 9",
                             "UPDATE u SET j = '{\"g\": 11.0}' WHERE id = 11"]):
        r = migrate(node, "--from", plain_source.url(sslmode="disable"), "--to", f"tamp_u{n}",
                    "--yes", "--verify", "checksums",
                    env={"PGWARDEN_MIGRATE_TEST_TAMPER_SQL": sql})
        assert r.returncode == 1, (sql, r.stdout + r.stderr)
        assert re.search(r"checksum\s+public\.u", r.stdout), (sql, r.stdout)
        assert not re.search(r"rows\s+public\.u", r.stdout), (sql, r.stdout)
        assert_clean(node, f"tamp_u{n}")
    r = migrate(node, "--from", plain_source.url(sslmode="disable"), "--to", "tampered2",
                "--yes", env={"PGWARDEN_MIGRATE_TEST_TAMPER_SQL": "DELETE FROM t WHERE id < 4"})
    assert r.returncode == 1 and re.search(r"rows\s+public\.t\s+10\s+7", r.stdout), r.stdout
    assert_clean(node, "tampered2")


def test_migrate_source_disconnects_and_crash_status(source, cluster):
    node = cluster
    binary = os.environ.get("PGWARDEN_BIN", str(Path(__file__).resolve().parents[2] /
                                                "build/dev/pgwarden"))

    def start():
        return subprocess.Popen([binary, "migrate", "-c", str(node.config_path), "--from",
                                 source.url(), "--to", "cut", "--jobs", "1", "--yes"],
                                user=RUN_USER, group=RUN_USER, extra_groups=[], env=base_env(),
                                cwd=node.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def copying():
        return source.pg.query("SELECT pid FROM pg_stat_activity WHERE application_name LIKE "
                               "'pgwarden-migrate-%-dump' AND state = 'active'")

    # the source goes away while pg_dump copies the big table
    p = start()
    try:
        wait_until(copying, 120, "pg_dump copying from the source", 0.1)
        source.pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "application_name LIKE 'pgwarden-migrate-%'")
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, out + err
    assert re.search(r"pg_dump exited with code|lost the connection to the source", err), err
    assert_no_secret(out, err)
    assert_clean(node, "cut")
    assert jobs(node)[-1][1] == "failed"

    # the migrate process itself is killed: status shows it interrupted; the next run marks it
    # failed and drops its staging database
    p = start()
    try:
        def restoring():
            rows = jobs(node)
            return rows and rows[-1][1] == "restore" and rows[-1][4]
        wait_until(restoring, 300, "the restore phase", 0.2)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    staging = jobs(node)[-1][4]
    st = migrate(node, "status")
    assert st.returncode == 0 and ": interrupted" in st.stdout and staging in st.stdout, st.stdout
    # pg_restore may still be finishing its last statement: wait for it to be gone
    wait_until(lambda: not query(node, "SELECT 1 FROM pg_stat_activity WHERE application_name "
                                       "LIKE 'pgwarden-migrate-%'"), 120, "pg_restore to end")
    r = migrate(node, "--from", source.url(), "--to", "cut", "--yes", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "now marked failed" in r.stderr and f"dropped {staging}" in r.stderr
    rows = jobs(node)
    assert rows[-2][1] == "failed" and "interrupted" in rows[-2][5]
    assert not [d for d in databases(node) if d.startswith("pgwarden_migrate_")]


def test_migrate_usage_errors(pgwarden_cli):
    cases = [
        (["migrate"], "--to DBNAME is required"),
        (["migrate", "--to", "x", "--jobs", "0"], "--jobs"),
        (["migrate", "--to", "x", "--verify", "md5"], "--verify"),
        (["migrate", "--to", "postgres", "--from", "postgres://a@h/db"], "system database"),
        (["migrate", "--to", "x", "--from", "mysql://a:SECRETPW@h/db"], "postgres://"),
        (["migrate", "--to", "x", "--from", "postgres://a:SECRETPW@h:99999/db"], "port"),
        (["migrate", "--to", "x", "--from", "postgres://a:SECRETPW@h/db?sslmode=maybe"],
         "sslmode"),
        (["migrate", "--to", "x", "--bogus"], "unknown option"),
        (["migrate", "frobnicate"], "unknown migrate command"),
    ]
    for argv, msg in cases:
        r = pgwarden_cli(*argv)
        assert r.returncode == 64, (argv, r.stderr)
        assert msg in r.stderr, (argv, r.stderr)
        assert "SECRETPW" not in r.stderr + r.stdout
    for argv, msg in [
        (["--to", "x", "--online", "--verify", "checksums", "--from", "postgres://a:SECRETPW@h/db"],
         "option of `migrate cutover`"),
        (["--to", "x", "--replica-identity-full", "--from", "postgres://a:SECRETPW@h/db"],
         "goes with --online"),
        (["cutover", "--to", "x"], "acts on a recorded online job"),
        (["abort", "--verify", "checksums"], "abort takes only"),
    ]:
        r = pgwarden_cli("migrate", *argv)
        assert r.returncode == 64 and msg in r.stderr, (argv, r.stderr)
        assert "SECRETPW" not in r.stderr + r.stdout
    r = pgwarden_cli("migrate", "--help")
    assert r.returncode == 0 and "--from URL" in r.stdout


def _mount_tmpfs(path, size_mb):
    uid, gid = _pg_ids()
    path.mkdir(mode=0o700, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size={size_mb}m,uid={uid},gid={gid},mode=0700", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


def test_migrate_disk_full(source, cluster):
    """The dump folder (<state_dir>/migrate) on a small tmpfs: refused at preflight when it is
    too small; filled up by someone else while pg_dump writes: a clear failure, nothing left."""
    node = cluster
    mnt = Path(node.state_dir, "migrate")
    _mount_tmpfs(mnt, 40)
    try:
        r = migrate(node, "--from", source.url(), "--to", "full", "--yes")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "not enough disk space for the dump" in r.stderr, r.stderr
        assert_clean(node, "full")
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)
    _mount_tmpfs(mnt, 400)
    try:
        binary = os.environ.get("PGWARDEN_BIN", str(Path(__file__).resolve().parents[2] /
                                                    "build/dev/pgwarden"))
        p = subprocess.Popen([binary, "migrate", "-c", str(node.config_path), "--from",
                              source.url(), "--to", "full", "--jobs", "1", "--yes"],
                             user=RUN_USER, group=RUN_USER, extra_groups=[], env=base_env(),
                             cwd=node.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: jobs(node)[-1][1] == "dump", 120, "the dump phase", 0.05)
            filler = mnt / "filler"
            with open(filler, "wb") as f:  # fill the tmpfs up (as root: no quota)
                try:
                    while True:
                        f.write(b"\0" * (1 << 20))
                        f.flush()
                except OSError:
                    pass
            out, err = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 1, out + err
        assert "pg_dump exited with code 1" in err and "No space left on device" in err, err
        assert_no_secret(out, err)
        assert_clean(node, "full")
        assert jobs(node)[-1][1] == "failed"
        assert "No space left on device" in jobs(node)[-1][5]
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)
