"""valgrind (issue #9): a run-and-stop of pgwarden under memcheck leaks nothing, in the
supervisor and in each child (ha, proxy, web), and neither does a `pgwarden ctl list`."""
import re
import shutil
import socket
import subprocess
import urllib.request

import pytest

from conftest import PG_BINDIR, RUN_USER, base_env, wait_until

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
# Forked children (ha, proxy, web) stay under valgrind; exec'd programs run natively.
VG_OPTS = ["--leak-check=full", "--show-leak-kinds=definite,indirect",
           "--errors-for-leak-kinds=definite,indirect", "--num-callers=30",
           "--child-silent-after-fork=no", "--trace-children=no"]
CHILDREN = ("ha", "proxy", "web")


def parse_report(text):
    """(pid, errors, definitely lost bytes, indirectly lost bytes, whether it finished)."""
    pid = re.search(r"^==(\d+)==", text, re.M)
    errs = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    definite = re.search(r"definitely lost: ([\d,]+) bytes", text)
    indirect = re.search(r"indirectly lost: ([\d,]+) bytes", text)
    num = (lambda m: int(m.group(1).replace(",", "")) if m else 0)
    return (int(pid.group(1)) if pid else None, num(errs), num(definite), num(indirect),
            errs is not None)


def check_reports(paths, expect, label="process"):
    """Every report finished with no error and no definite/indirect leak; expect: pids that
    must each have a report."""
    reports = {}
    problems = []
    for p in paths:
        text = p.read_text(errors="replace")
        pid, errs, definite, indirect, done = parse_report(text)
        reports[pid] = text
        if not done:
            # A forked helper that exec'd a program (initdb, pg_ctl...) leaves only a header;
            # one of ours without a summary was killed before it could report.
            if pid in expect.values():
                problems.append(f"{p.name}: no ERROR SUMMARY (killed before exit?)")
            else:
                reports.pop(pid)
        elif errs or definite or indirect:
            problems.append(f"{p.name}: {errs} errors, definitely lost {definite} B, "
                            f"indirectly lost {indirect} B\n{text[-6000:]}")
    names = {pid: name for name, pid in expect.items()}
    for pid, text in sorted(reports.items(), key=lambda kv: kv[0] or 0):
        heap = re.search(r"total heap usage: ([\d,]+) allocs", text)
        print(f"valgrind {names.get(pid, label)} pid {pid}: "
              f"{heap.group(1) if heap else '?'} allocs, {parse_report(text)[1]} errors, "
              f"definitely lost {parse_report(text)[2]} B, indirectly lost {parse_report(text)[3]} B")
    for name, pid in expect.items():
        if pid not in reports:
            problems.append(f"no valgrind report for {name} (pid {pid})")
    assert not problems, "\n".join(problems)
    return reports


def get(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# election only (ha without PostgreSQL), and ha bootstrapping and running PostgreSQL (libpq).
MODES = {
    "election": {},
    "postgresql": {"ha": {"manage_postgresql": "on"},
                   "postgresql": {"bin_dir": str(PG_BINDIR), "superuser_password": "su-Pw-1",
                                  "replication_password": "repl-Pw-2"}},
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_run_and_stop_has_no_leak(mode, etcd, pgwarden_node, pgwarden_bin, tmp_dir):
    vg_dir = tmp_dir / "valgrind"
    vg_dir.mkdir(mode=0o777)
    shutil.chown(vg_dir, RUN_USER, RUN_USER)
    argv = [VALGRIND, *VG_OPTS, f"--log-file={vg_dir}/vg.%p.log", str(pgwarden_bin)]
    # Slow under valgrind: a long shutdown timeout, so that no child is killed before it
    # can free everything and print its report.
    overrides = {"supervisor": {"shutdown_timeout": "90s"}, **MODES[mode]}
    node = pgwarden_node(etcd=etcd, bin=argv, wait_ready=False, overrides=overrides)
    node.wait_ready(timeout=240)
    kids = node.child_pids()
    assert set(kids) == set(CHILDREN), kids
    # Some work for each child: the REST API and the dashboard (web), a leader key and the
    # status (ha), a client connection (proxy).
    node.wait_record(timeout=120, role="ha", msg="acquired leadership")
    base = f"http://127.0.0.1:{node.ports['web']}"
    if mode == "postgresql":
        wait_until(lambda: get(base + "/primary") == 200, 240, "the primary to be running", 1)
    for path in ("/patroni", "/cluster", "/history", "/metrics", "/health", "/ui", "/nope"):
        assert get(base + path) in (200, 404, 503), path
    with socket.create_connection(("127.0.0.1", node.ports["rw"]), timeout=30) as s:
        s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
        s.settimeout(30)
        try:
            s.recv(1)
        except OSError:
            pass
    # A command-line process too.
    r = subprocess.run([VALGRIND, *VG_OPTS, f"--log-file={vg_dir}/ctl.%p.log", str(pgwarden_bin),
                        "ctl", "-c", str(node.config_path), "list"], user=RUN_USER, group=RUN_USER,
                       extra_groups=[], env=base_env(), cwd=tmp_dir, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    rc = node.stop(timeout=200)
    assert rc == 0, f"exit status {rc}\n{node.log()[-3000:]}"
    reports = check_reports(sorted(vg_dir.glob("vg.*.log")), {"supervisor": node.pid, **kids})
    assert len(reports) >= 4
    assert check_reports(sorted(vg_dir.glob("ctl.*.log")), {}, "ctl list")
