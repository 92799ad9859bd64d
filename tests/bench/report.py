#!/usr/bin/env python3
"""The benchmark report (issue 10): runs the benches, or reuses their fresh results, and writes
build/results/bench.md, bench.json and SVG bar charts (bench-ha.svg, bench-proxy.svg,
bench-footprint.svg).

Components (--only picks some; each writes its own result file, which the report reads):
  ha         tests/bench/ha_figures.py: write unavailability after a leader PostgreSQL SIGKILL,
             a node loss and a switchover (--ha-rounds rounds each), rows lost in synchronous
             mode over --sync-kills leader kills (0 skips it)      -> ha_figures.json
  proxy      tests/bench/proxy_bench.py: pgbench through direct / the forwarder / HAProxy
             (--proxy-duration, --proxy-latency-duration, --proxy-pairs)  -> proxy_bench.json
  api        `make bench-api` (wrk against GET /primary, pytest marker `bench`): its FIGURE line
             is parsed                                                     -> api_bench.json
  footprint  tests/bench/footprint.py: release binary sizes, RSS and idle CPU per process
                                                                           -> footprint.json
--reuse takes a component's existing result file instead of running it when it is younger
than --max-age hours. --report-only only rebuilds the report from the files there are.

The machine (CPU, cores, memory, kernel), the date and the load average before and after each
component are recorded: on a shared machine the figures are only as good as that load.

Run as root from the repo root:  make bench [BENCH_ARGS="--only proxy,api --reuse"]
The defaults keep the whole run around 15 minutes on two cores (14 min on 2026-11-26).
"""
import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "build/results"
PY = sys.executable or "/usr/bin/python3"
COMPONENTS = ("ha", "proxy", "api", "footprint")
FILES = {"ha": "ha_figures.json", "proxy": "proxy_bench.json", "api": "api_bench.json",
         "footprint": "footprint.json"}
HA_LABELS = {"pgkill": "leader PostgreSQL SIGKILL (failover)",
             "nodeloss": "node loss (agent + PostgreSQL SIGKILL)",
             "switchover": "switchover (planned)"}
TARGETS = ("direct", "pgwarden", "haproxy")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] report: {msg}", flush=True)


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def machine():
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {"cpu": model or platform.processor(), "cpus": os.cpu_count(),
            "memory_gib": round(mem_kib / 1048576, 1), "kernel": platform.release(),
            "arch": platform.machine()}


# ---- running the components ----

def run(argv, log_name):
    """Runs argv from the repo root, its output teed to build/results/<log_name>; returns
    (exit status, output)."""
    log("running: " + " ".join(argv))
    out = []
    with open(RESULTS / log_name, "w") as f:
        p = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        for line in p.stdout:
            sys.stdout.write(line)
            f.write(line)
            out.append(line)
        p.wait()
    return p.returncode, "".join(out)


def run_ha(a):
    scen = "pgkill,nodeloss,switchover" + (",synckill" if a.sync_kills > 0 else "")
    return run([PY, "tests/bench/ha_figures.py", "--rounds", str(a.ha_rounds), "--scenarios",
                scen, "--sync-kills", str(max(a.sync_kills, 1)),
                "--out", str(RESULTS / FILES["ha"])], "bench-ha.log")[0]


def run_proxy(a):
    return run([PY, "tests/bench/proxy_bench.py", "--duration", str(a.proxy_duration),
                "--latency-duration", str(a.proxy_latency_duration), "--pairs",
                str(a.proxy_pairs), "--out", str(RESULTS / FILES["proxy"])], "bench-proxy.log")[0]


def parse_api(text):
    """The FIGURE line of test_wrk_primary_figure -> {runs: [...], rss_idle_kib, rss_peak_kib}."""
    line = next((ln for ln in text.splitlines() if "FIGURE web GET /primary:" in ln), None)
    if not line:
        return None
    runs = [{"threads": int(t), "connections": int(c), "requests_per_s": float(r),
             "p99_ms": float(p), "non_2xx": int(n)}
            for t, c, r, p, n in re.findall(
                r"wrk -t(\d+) -c(\d+): (\d+) req/s, p99 ([\d.]+) ms, non-2xx (\d+)", line)]
    rss = re.search(r"web RSS idle (\d+) KiB, peak under load (\d+) KiB", line)
    return {"figure": line.split("FIGURE ", 1)[1].strip(), "runs": runs,
            "rss_idle_kib": int(rss.group(1)) if rss else None,
            "rss_peak_kib": int(rss.group(2)) if rss else None}


def run_api(a):
    rc, out = run(["make", "--no-print-directory", "bench-api"], "bench-api.log")
    parsed = parse_api(out)
    res = {"issue": 6, "command": "make bench-api", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "exit_status": rc}
    if parsed:
        res.update(parsed)
    else:
        res["error"] = "no FIGURE line in the output of make bench-api (see bench-api.log)"
    (RESULTS / FILES["api"]).write_text(json.dumps(res, indent=2) + "\n")
    return rc if parsed else 1


def run_footprint(a):
    argv = [PY, "tests/bench/footprint.py", "--idle", str(a.idle), "--out",
            str(RESULTS / FILES["footprint"])]
    return run(argv + (["--no-build"] if a.no_build else []), "bench-footprint.log")[0]


RUNNERS = {"ha": run_ha, "proxy": run_proxy, "api": run_api, "footprint": run_footprint}


def fresh(path, max_age_h):
    return path.is_file() and time.time() - path.stat().st_mtime < max_age_h * 3600


def load(comp):
    p = RESULTS / FILES[comp]
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


# ---- summaries ----

def r3(x):
    return None if x is None else round(x, 3)


def summarize_ha(d):
    out = {"started": d.get("started"), "ttl_s": d.get("ttl_s"),
           "loop_wait_s": d.get("loop_wait_s"), "scenarios": {}}
    for kind in HA_LABELS:
        e = d.get("scenarios", {}).get(kind)
        if not e:
            continue
        if "gap_s" not in e or e["gap_s"].get("median") is None:
            out["scenarios"][kind] = {"status": "not measured", "reason": e.get("reason")}
            continue
        out["scenarios"][kind] = {
            "median_s": r3(e["gap_s"]["median"]), "min_s": r3(e["gap_s"]["min"]),
            "max_s": r3(e["gap_s"]["max"]), "rounds": e.get("measured_rounds"),
            "rounds_total": e.get("rounds_total"), "target_s": e.get("target_s"),
            "verdict": e.get("verdict")}
    e = d.get("scenarios", {}).get("synckill")
    if e and e.get("loss"):
        done = sum(1 for k in e.get("kills", []) if k.get("status") == "measured")
        out["sync_mode"] = {"leader_kills": done, "kills_total": len(e.get("kills", [])),
                            "acknowledged_rows": e["loss"].get("acknowledged"),
                            "lost_rows": e["loss"].get("missing"), "pass": e.get("pass"),
                            "sync_forced": e.get("sync_forced")}
    elif e:
        out["sync_mode"] = {"status": "not measured", "reason": e.get("reason")}
    return out


def summarize_proxy(d):
    med = d.get("medians", {})
    out = {"started": d.get("started"), "haproxy": d.get("haproxy"),
           "duration_s": d.get("duration_s"), "latency_duration_s": d.get("latency_duration_s"),
           "pairs": d.get("pairs"), "binary": d.get("binary"), "workloads": {}}
    for wl in ("select", "connect", "latency"):
        out["workloads"][wl] = {t: med.get(f"{wl}.{t}") for t in TARGETS}
    if d.get("idle"):
        out["idle"] = {k: d["idle"].get(k) for k in ("connections", "rss_kib", "pss_kib")}
    out["targets"] = d.get("targets", {})
    return out


def summarize_api(d):
    return {k: d.get(k) for k in ("started", "runs", "rss_idle_kib", "rss_peak_kib", "error")
            if d.get(k) is not None}


def summarize_footprint(d):
    return {k: d.get(k) for k in ("started", "binary_size", "node_binary", "idle_window_s",
                                  "leader", "replica", "error", "loadavg_start", "loadavg_end")
            if d.get(k) is not None}


SUMMARIES = {"ha": summarize_ha, "proxy": summarize_proxy, "api": summarize_api,
             "footprint": summarize_footprint}


# ---- SVG bar charts (no plotting library) ----

def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bar_chart(title, unit, groups, series, colors, whiskers=None, fmt="{:.0f}"):
    """Grouped vertical bars. groups: [label]; series: {name: [value or None per group]};
    whiskers: {name: [(lo, hi) or None per group]}. Returns the SVG text."""
    W, H, left, right, top, bottom = 720, 360, 70, 20, 50, 70
    vals = [v for vs in series.values() for v in vs if v is not None]
    if whiskers:
        vals += [hi for ws in whiskers.values() for w in ws if w for hi in w[1:]]
    vmax = max(vals) * 1.08 if vals and max(vals) > 0 else 1.0
    step = 10 ** math.floor(math.log10(vmax / 4))  # a round grid step
    step = next(m * step for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * step * 4 >= vmax)
    vmax = step * 4
    ph, pw = H - top - bottom, W - left - right
    gw = pw / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    y = lambda v: top + ph - ph * v / vmax  # noqa: E731
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#fff"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" '
         f'font-weight="bold">{esc(title)}</text>',
         f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" '
         f'text-anchor="middle">{esc(unit)}</text>']
    for i in range(5):
        v = vmax * i / 4
        o.append(f'<line x1="{left}" x2="{W - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                 f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                 f'text-anchor="end">{esc(fmt.format(v))}</text>')
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + gw * 0.1
        for si, (name, vs) in enumerate(series.items()):
            v = vs[gi]
            x = x0 + si * bw
            if v is None:
                o.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph - 4}" text-anchor="middle" '
                         f'fill="#999">n/a</text>')
                continue
            o.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bw * 0.9:.1f}" '
                     f'height="{top + ph - y(v):.1f}" fill="{colors[si % len(colors)]}">'
                     f'<title>{esc(name)} {esc(g)}: {esc(fmt.format(v))} {esc(unit)}</title></rect>')
            w = whiskers and whiskers.get(name, [None] * len(groups))[gi]
            top_v = max(v, w[1]) if w else v
            o.append(f'<text x="{x + bw * 0.45:.1f}" y="{y(top_v) - 4:.1f}" text-anchor="middle" '
                     f'font-size="11">{esc(fmt.format(v))}</text>')
            if w:
                cx = x + bw * 0.45
                o.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(w[0]):.1f}" '
                         f'y2="{y(w[1]):.1f}" stroke="#333"/>')
                for v2 in w:
                    o.append(f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y(v2):.1f}" '
                             f'y2="{y(v2):.1f}" stroke="#333"/>')
        o.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 18}" '
                 f'text-anchor="middle">{esc(g)}</text>')
    o.append(f'<line x1="{left}" x2="{W - right}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    lx = left
    for si, name in enumerate(series):
        o.append(f'<rect x="{lx}" y="{H - 24}" width="12" height="12" '
                 f'fill="{colors[si % len(colors)]}"/><text x="{lx + 16}" y="{H - 14}">'
                 f'{esc(name)}</text>')
        lx += 28 + 8 * len(name)
    o.append("</svg>\n")
    return "\n".join(o)


COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]


def plots(rep):
    out = {}
    ha = rep["components"].get("ha", {}).get("summary")
    if ha and ha.get("scenarios"):
        kinds = [k for k in HA_LABELS if "median_s" in ha["scenarios"].get(k, {})]
        if kinds:
            s = ha["scenarios"]
            out["bench-ha.svg"] = bar_chart(
                f"Write unavailability (median, min-max; ttl {ha.get('ttl_s')} s)", "seconds",
                [k for k in kinds], {"gap between two commits": [s[k]["median_s"] for k in kinds]},
                COLORS, {"gap between two commits": [(s[k]["min_s"], s[k]["max_s"])
                                                     for k in kinds]}, "{:.2f}")
    px = rep["components"].get("proxy", {}).get("summary")
    if px:
        wl = px["workloads"]

        def rel(w, t):  # throughput as a percentage of the direct connection's
            d, v = wl[w].get("direct"), wl[w].get(t)
            return None if not d or v is None else 100.0 * v / d
        out["bench-proxy.svg"] = bar_chart(
            "pgbench -S throughput through each path (median TPS, % of direct)", "% of direct",
            ["select, 16 persistent clients", "new connection per transaction"],
            {t: [rel("select", t), rel("connect", t)] for t in TARGETS}, COLORS)
    fp = rep["components"].get("footprint", {}).get("summary")
    if fp and fp.get("leader"):
        procs = ["supervisor", "ha", "proxy", "web"]
        out["bench-footprint.svg"] = bar_chart(
            "Memory per process of an idle node (PSS)", "KiB", procs,
            {role: [fp[role][p]["pss_kib"] for p in procs] for role in ("leader", "replica")
             if fp.get(role)}, COLORS)
    return out


# ---- markdown ----

def headline(rep):
    """The one-table summary (what the README shows), from the component summaries."""
    c = rep["components"]
    rows = []
    ha = c.get("ha", {}).get("summary") or {}
    for k, lab in (("pgkill", "failover after the leader's PostgreSQL is killed"),
                   ("nodeloss", "failover after the loss of the leader node"),
                   ("switchover", "switchover")):
        e = ha.get("scenarios", {}).get(k)
        if e and "median_s" in e:
            rows.append((f"write unavailability, {lab}",
                         f"{e['median_s']:.2f} s median ({e['min_s']:.2f}–{e['max_s']:.2f} s, "
                         f"{e['rounds']} rounds)"))
    sm = ha.get("sync_mode")
    if sm and "lost_rows" in sm:
        rows.append(("acknowledged commits lost in synchronous mode",
                     f"{sm['lost_rows']} of {sm['acknowledged_rows']} over {sm['leader_kills']} "
                     f"leader kills"))
    px = c.get("proxy", {}).get("summary")
    if px:
        w = px["workloads"]

        def trio(wl, f):
            return " / ".join(f.format(w[wl][t]) if w[wl].get(t) is not None else "n/a"
                              for t in TARGETS)
        rows.append(("pgbench -S, 16 clients, TPS: direct / forwarder / HAProxy",
                     trio("select", "{:.0f}")))
        rows.append(("same, a new connection per transaction", trio("connect", "{:.0f}")))
        rows.append(("single-client latency, ms: direct / forwarder / HAProxy",
                     trio("latency", "{:.3f}")))
        if px.get("idle"):
            rows.append((f"forwarder memory with {px['idle']['connections']} idle clients",
                         f"{px['idle']['rss_kib'] / 1024:.1f} MiB RSS"))
    api = c.get("api", {}).get("summary")
    if api and api.get("runs"):
        best = max(api["runs"], key=lambda r: r["requests_per_s"])
        rows.append(("REST API, `GET /primary` (wrk)",
                     f"{best['requests_per_s']:.0f} requests/s, p99 {best['p99_ms']:.1f} ms "
                     f"({best['connections']} connections)"))
    fp = c.get("footprint", {}).get("summary")
    if fp:
        sizes = fp.get("binary_size", {})
        if all("bytes" in sizes.get(a, {}) for a in ("amd64", "arm64")):
            rows.append(("static release binary, amd64 / arm64",
                         f"{sizes['amd64']['bytes'] / 1048576:.1f} / "
                         f"{sizes['arm64']['bytes'] / 1048576:.1f} MiB"))
        if fp.get("leader"):
            lt, rt = fp["leader"]["total"], fp.get("replica", {}).get("total", {})
            rows.append(("memory of the four pgwarden processes, idle leader / replica",
                         f"{lt['pss_kib'] / 1024:.1f} / {rt.get('pss_kib', 0) / 1024:.1f} MiB "
                         f"PSS ({lt['rss_kib'] / 1024:.1f} / {rt.get('rss_kib', 0) / 1024:.1f} "
                         f"MiB RSS summed)"))
            rows.append(("CPU of an idle node, leader / replica",
                         f"{lt['cpu_pct']:.2f} % / {rt.get('cpu_pct', 0):.2f} % of one core"))
    if not rows:
        return ""
    return "\n".join(["| figure | measured |", "|---|---|"] +
                      [f"| {a} | {b} |" for a, b in rows]) + "\n"


def md(rep):
    m = rep["machine"]
    L = [f"# pgwarden benchmark report\n",
         f"{rep['date']} on {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux "
         f"{m['kernel']} ({m['arch']}); everything on one machine over loopback (etcd, three "
         f"nodes, PostgreSQL 15, the load generators). Load average (1/5/15 min) at the start "
         f"{rep['loadavg_start']}, at the end {rep['loadavg_end']}: with other work on the "
         f"machine the figures are noisy.\n"]
    top = headline(rep)
    if top:
        L.append(top)
    comps = rep["components"]
    ha = comps.get("ha", {}).get("summary")
    if ha:
        L.append(f"## Write unavailability (ha_figures.py, {comps['ha']['source']})\n")
        L.append(f"A client commits one row every 20 ms to the leader; the figure is the longest "
                 f"gap between two successful commits around the fault. ttl {ha.get('ttl_s')} s, "
                 f"loop_wait {ha.get('loop_wait_s')} s.\n")
        L.append("| scenario | median | min | max | rounds | target |\n|---|---|---|---|---|---|")
        for k, lab in HA_LABELS.items():
            e = ha["scenarios"].get(k)
            if not e:
                continue
            if "median_s" not in e:
                L.append(f"| {lab} | not measured: {e.get('reason')} | | | | |")
                continue
            L.append(f"| {lab} | {e['median_s']:.2f} s | {e['min_s']:.2f} s | {e['max_s']:.2f} s "
                     f"| {e['rounds']}/{e['rounds_total']} | ≤ {e['target_s']:.0f} s "
                     f"({e['verdict']}) |")
        sm = ha.get("sync_mode")
        if sm and "lost_rows" in sm:
            L.append(f"\nSynchronous mode: {sm['lost_rows']} acknowledged rows lost out of "
                     f"{sm['acknowledged_rows']} over {sm['leader_kills']}/{sm['kills_total']} "
                     f"leader PostgreSQL kills.")
        elif sm:
            L.append(f"\nSynchronous mode: not measured ({sm.get('reason')}).")
        L.append("")
    px = comps.get("proxy", {}).get("summary")
    if px:
        L.append(f"## Forwarder vs HAProxy vs direct (proxy_bench.py, {comps['proxy']['source']})\n")
        L.append(f"pgbench -S, -T {px['duration_s']} s (latency -T {px['latency_duration_s']} s), "
                 f"medians of {px['pairs']} interleaved rounds; {px.get('haproxy')} in `mode "
                 f"tcp`.\n")
        L.append("| workload | direct | pgwarden forwarder | HAProxy |\n|---|---|---|---|")
        for wl, lab, f in (("select", "select, 16 persistent clients (TPS)", "{:.0f}"),
                           ("connect", "select, new connection per transaction (TPS)", "{:.0f}"),
                           ("latency", "single client, average latency (ms)", "{:.3f}")):
            L.append(f"| {lab} | " + " | ".join(
                f.format(px["workloads"][wl][t]) if px["workloads"][wl].get(t) is not None
                else "n/a" for t in TARGETS) + " |")
        if px.get("idle"):
            i = px["idle"]
            L.append(f"\nForwarder memory with {i['connections']} idle clients: {i['rss_kib']} KiB "
                     f"RSS ({i['pss_kib']} KiB PSS).")
        L.append("")
    api = comps.get("api", {}).get("summary")
    if api:
        L.append(f"## REST API (make bench-api, {comps['api']['source']})\n")
        if api.get("runs"):
            L.append("wrk against `GET /primary` on the leader of a one-node cluster (15 s per "
                     "run).\n")
            L.append("| wrk | requests/s | p99 |\n|---|---|---|")
            for r in api["runs"]:
                L.append(f"| {r['threads']} threads, {r['connections']} connections | "
                         f"{r['requests_per_s']:.0f} | {r['p99_ms']:.2f} ms |")
            L.append(f"\nweb process RSS: {api.get('rss_idle_kib')} KiB idle, "
                     f"{api.get('rss_peak_kib')} KiB peak under load.\n")
        else:
            L.append(f"not measured: {api.get('error')}\n")
    fp = comps.get("footprint", {}).get("summary")
    if fp:
        L.append(f"## Footprint (footprint.py, {comps['footprint']['source']})\n")
        for arch, b in fp.get("binary_size", {}).items():
            L.append(f"- static release binary, {arch}: " +
                     (f"{b['bytes'] / 1048576:.1f} MiB ({b['bytes']} bytes)" if "bytes" in b
                      else b.get("error", "?")))
        if fp.get("leader"):
            nb = fp.get("node_binary", "?")
            what = ("the static amd64 release binary" if nb.endswith("build/amd64/pgwarden")
                    else f"`{nb}`")
            L.append(f"\nThe pgwarden processes of the leader and of a replica of an idle "
                     f"three-node cluster (PostgreSQL and etcd not counted), nodes running "
                     f"{what}; CPU over a {fp.get('idle_window_s')} s window, as a percentage of "
                     f"one core. PSS shares the binary's pages among the processes.\n")
            L.append("| process | leader RSS | leader PSS | leader CPU | replica RSS | "
                     "replica PSS | replica CPU |\n|---|---|---|---|---|---|---|")
            for p in ("supervisor", "ha", "proxy", "web", "total"):
                a, b = fp["leader"][p], fp.get("replica", {}).get(p, {})
                L.append(f"| {p} | {a['rss_kib']} KiB | {a['pss_kib']} KiB | {a['cpu_pct']:.2f} % "
                         f"| {b.get('rss_kib', 'n/a')} KiB | {b.get('pss_kib', 'n/a')} KiB | "
                         f"{b.get('cpu_pct', 0):.2f} % |")
        elif fp.get("error"):
            L.append(f"\nnot measured: {fp['error']}")
        L.append("")
    for comp, c in comps.items():
        if c.get("status") not in ("ran", "reused"):
            L.append(f"- {comp}: {c.get('status')}")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(COMPONENTS),
                    help="comma-separated components: " + ",".join(COMPONENTS))
    ap.add_argument("--reuse", action="store_true",
                    help="use a component's result file younger than --max-age instead of running")
    ap.add_argument("--max-age", type=float, default=12.0, help="hours, for --reuse")
    ap.add_argument("--report-only", action="store_true", help="run nothing, report what exists")
    ap.add_argument("--ha-rounds", type=int, default=10)
    ap.add_argument("--sync-kills", type=int, default=5)
    ap.add_argument("--proxy-duration", type=int, default=10)
    ap.add_argument("--proxy-latency-duration", type=int, default=5)
    ap.add_argument("--proxy-pairs", type=int, default=5)
    ap.add_argument("--idle", type=float, default=60.0, help="footprint idle window (s)")
    ap.add_argument("--no-build", action="store_true",
                    help="footprint: measure the existing static binaries")
    a = ap.parse_args()
    only = [c.strip() for c in a.only.split(",") if c.strip()]
    bad = [c for c in only if c not in COMPONENTS]
    if bad:
        ap.error(f"unknown component(s) {bad}; choose among {COMPONENTS}")
    if not a.report_only and os.geteuid() != 0:
        sys.exit("run as root (the nodes run as the postgres user, as in the integration tests)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    rep = {"issue": 10, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": " ".join([PY, *sys.argv]), "machine": machine(),
           "git_rev": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=10", "HEAD"],
                                     capture_output=True, text=True).stdout.strip(),
           "loadavg_start": loadavg(), "components": {}}
    failed = []
    for comp in only:
        path = RESULTS / FILES[comp]
        c = {"file": str(path.relative_to(REPO)), "loadavg_before": loadavg()}
        if a.report_only or (a.reuse and fresh(path, a.max_age)):
            c["status"] = "reused" if path.is_file() else "missing"
        else:
            t0 = time.monotonic()
            rc = RUNNERS[comp](a)
            c["status"] = "ran" if rc == 0 else f"ran, exit status {rc}"
            c["duration_s"] = round(time.monotonic() - t0, 1)
            if rc != 0:
                failed.append(comp)
        c["loadavg_after"] = loadavg()
        d = load(comp)
        if d is not None:
            c["summary"] = SUMMARIES[comp](d)
            c["source"] = time.strftime("%Y-%m-%d %H:%M UTC",
                                        time.gmtime(path.stat().st_mtime))
        elif c["status"] != "missing":
            c["status"] += " (no result file)"
        rep["components"][comp] = c
    rep["loadavg_end"] = loadavg()
    for name, svg in plots(rep).items():
        (RESULTS / name).write_text(svg)
        rep.setdefault("plots", []).append(f"build/results/{name}")
    (RESULTS / "bench.json").write_text(json.dumps(rep, indent=2) + "\n")
    text = md(rep)
    if rep.get("plots"):
        text += "\nPlots: " + ", ".join(f"`{p}`" for p in rep["plots"]) + "\n"
    (RESULTS / "bench.md").write_text(text)
    print(text)
    log(f"written build/results/bench.md, bench.json{', plots' if rep.get('plots') else ''}")
    if failed:
        log(f"components that failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
