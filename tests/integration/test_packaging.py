"""Packaging: `make install DESTDIR=... PREFIX=/usr` lays out the binary, the systemd unit, the
config (never overwriting an existing one) and the docs; the unit has the promised settings and
`systemd-analyze verify` accepts it."""
import configparser
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO


def make_install(pgwarden_bin, **vars_):
    argv = ["make", "--no-print-directory", "install", f"INSTALL_BIN={pgwarden_bin}"]
    argv += [f"{k}={v}" for k, v in vars_.items()]
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}"
    return r


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def unit_settings(path):
    """The unit's [Service] settings (the last value of each key, as systemd reads them)."""
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read(path)
    return cp


@pytest.fixture
def staging():
    d = Path(tempfile.mkdtemp(prefix="pgwarden-install-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_make_install_layout(staging, pgwarden_bin):
    r = make_install(pgwarden_bin, DESTDIR=staging, PREFIX="/usr")
    binary = staging / "usr/bin/pgwarden"
    unit = staging / "lib/systemd/system/pgwarden.service"
    conf = staging / "etc/pgwarden/pgwarden.conf"
    docs = staging / "usr/share/doc/pgwarden"
    for p in (binary, unit, conf, docs / "README.md", docs / "pgwarden.conf.example"):
        assert p.is_file(), f"{p} missing; make said:\n{r.stdout}"
    assert mode(binary) == 0o755 and mode(unit) == 0o644 and mode(conf) == 0o640
    v = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=10)
    assert v.returncode == 0 and "pgwarden" in v.stdout
    assert b".debug_info" not in binary.read_bytes(), "the installed binary is not stripped"
    assert conf.read_bytes() == (REPO / "platform/pgwarden.conf.example").read_bytes()
    c = subprocess.run([str(binary), "check-config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert c.returncode == 0, c.stderr

    svc = unit_settings(unit)["Service"]
    assert svc["ExecStart"] == "/usr/bin/pgwarden run -c /etc/pgwarden/pgwarden.conf"
    expected = {"Type": "notify", "NotifyAccess": "main", "User": "postgres",
                "Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
                "KillMode": "mixed", "StateDirectory": "pgwarden"}
    for k, v in expected.items():
        assert svc.get(k) == v, f"{k}={svc.get(k)!r}, expected {v!r}"
    assert svc.get("WatchdogSec"), "WatchdogSec missing"
    assert "/var/lib/postgresql" in svc.get("ReadWritePaths", "")

    # A second install keeps the operator's config.
    conf.write_text("# mine\n")
    r = make_install(pgwarden_bin, DESTDIR=staging, PREFIX="/usr")
    assert conf.read_text() == "# mine\n"
    assert "kept the existing" in r.stdout


def test_unit_passes_systemd_analyze_verify(staging, pgwarden_bin):
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze (Debian package systemd, in install-deps' test group) is missing"
    # Installed without DESTDIR under the temp folder, so that the unit's ExecStart paths exist
    # (verify checks that the commands are executable).
    make_install(pgwarden_bin, PREFIX=staging / "usr", CONFDIR=staging / "etc/pgwarden",
                 UNITDIR=staging / "lib/systemd/system")
    unit = staging / "lib/systemd/system/pgwarden.service"
    assert f"ExecStart={staging}/usr/bin/pgwarden run" in unit.read_text()
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [l for l in (r.stdout + r.stderr).splitlines() if "pgwarden" in l]
    assert r.returncode == 0 and not ours, f"systemd-analyze verify:\n{r.stdout}\n{r.stderr}"
