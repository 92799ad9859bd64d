"""Text summary and hand-written SVG timeline of a fault run (tests/faults/run.py)."""
from html import escape
from pathlib import Path

COLORS = {"pg_kill": "#d62728", "agent_kill": "#ff7f0e", "node_kill": "#8c564b",
          "agent_stop": "#9467bd", "etcd_kill": "#1f77b4", "etcd_leader_kill": "#17becf",
          "etcd_quorum": "#2ca02c", "partition_leader": "#e377c2",
          "partition_replica": "#bcbd22", "partition_full": "#7f7f7f",
          "partition_etcd": "#aec7e8"}
LEADER_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2"]


def _mode(result):
    m = "synchronous" if result.get("mode", "sync") == "sync" else "asynchronous"
    if result.get("delay_ms"):
        m += f", {result['delay_ms']:g} ms delay between nodes ({result.get('delay_method')})"
    return m + (", network namespaces" if result.get("netns") else ", loopback")


def summary(result):
    ck = result.get("check") or {}
    faults = result.get("faults", [])
    lines = [f"pgwarden fault suite (issue 9): seed {result.get('seed')}, "
             f"{len(faults)}/{result.get('faults_requested')} faults, ttl {result.get('ttl_s')}s, "
             f"{_mode(result)}, {result.get('clients')} clients through the rw forwarders",
             f"run took {result.get('duration_s')}s; load average before "
             f"{_load(result.get('load_before'))}, after {_load(result.get('load_after'))}"]
    if result.get("error"):
        lines.append(f"RUN ERROR: {result['error'][:500]}")
    if result.get("check_error"):
        lines.append(f"CHECK ERROR: {result['check_error']}")
    if result.get("interrupted"):
        lines.append("interrupted")
    if ck:
        lines += _check_lines(result, ck)
    rows = result.get("loss_by_mode") or []
    if rows:
        lines += ["", "lost acknowledged writes per mode (every faults*.json of this folder):",
                  f"  {'file':28} {'mode':6} {'net':6} {'delay':>7} {'faults':>6} {'acked':>7} "
                  f"{'lost':>6}  kinds"]
        for r in rows:
            d = f"{r['delay_ms']:g}ms" if r.get("delay_ms") else "-"
            net = "netns" if r.get("netns") else "lo"
            lines.append(f"  {r['file']:28} {r['mode']:6} {net:6} {d:>7} {r['faults']:>6} "
                         f"{r['acknowledged']:>7} {r['lost']:>6}  {','.join(r.get('kinds') or [])}"
                         [:160])
    lines.append("")
    lines.append("PASS" if ck.get("pass") else "FAIL")
    return "\n".join(lines) + "\n"


def _load(v):
    return "/".join(f"{x:.2f}" for x in v) if v else "?"


def _check_lines(result, ck):
    faults = result.get("faults", [])
    lines = ["", f"{'fault kind':18} {'n':>4} {'failed':>7} {'no rejoin':>9} {'lost':>6} "
                 f"{'longest gap':>12}"]
    for k, v in sorted(ck["by_kind"].items()):
        lines.append(f"{k:18} {v['n']:>4} {v['failed']:>7} {v.get('not_rejoined', 0):>9} "
                     f"{v.get('lost', 0):>6} {v['max_gap_s']:>11.2f}s")
    fin = ck["final"]
    lost_label = "LOST acknowledged" if result.get("mode", "sync") == "sync" else \
        "lost acknowledged (async)"
    lines += ["",
              f"acknowledged writes        {ck['acknowledged']}",
              f"in doubt (errors)          {ck['in_doubt']} ({ck['in_doubt_present']} present)",
              f"{lost_label:26} {ck['lost']}"
              + (f"  by fault: {ck['lost_by_fault']}" if ck.get("lost_by_fault") else ""),
              f"split-brain instants       {ck['split_brain_instants']}"
              + (f" (timelines with 2 servers: {ck['timelines_with_two_servers']})"
                 if ck.get("timelines_with_two_servers") else ""),
              f"timelines written          {len(ck['timelines'])}",
              f"write gaps > {ck['gap_threshold_s']}s         {ck['gaps']}"]
    if ck["unavailability"]:
        u = ck["unavailability"][0]
        lines.append(f"longest unavailability     {u['gap_s']:.2f}s at +{u['from_s']:.1f}s, "
                     f"cause {u['cause']} (fault {u['fault']})")
    fen = ck.get("fencing") or []
    if fen:
        lat = [r["last_ack_after_s"] for r in fen if r["last_ack_after_s"] is not None]
        lines.append(f"partitioned leaders        {len(fen)}: writes acknowledged after the cut "
                     f"{sum(r['acks_during_partition'] for r in fen)}"
                     + (f", last one at most {max(lat)}s after it" if lat else "")
                     + f" (ttl {result.get('ttl_s')}s); "
                     f"fencing violations {ck['fencing_violations']}")
        el = [p["partition"].get("new_leader_after_s") for p in faults
              if p.get("partition", {}).get("was_leader")]
        el = [x for x in el if x is not None]
        if el:
            lines.append(f"new leader after the cut   min {min(el):.1f}s, max {max(el):.1f}s")
    lines.append(f"final: healthy={fin['healthy']} ({fin['detail']}), leader {fin['leader_key']}, "
                 f"writable {fin['writable_nodes']}, agents {fin['agents_running']}/3"
                 + (f", sync engaged={fin['sync_engaged']}" if "sync_engaged" in fin else ""))
    noted = [f for f in faults if not f["ok"] or f.get("notes")]
    if noted:
        lines.append("")
        lines.append("faults with errors or notes:")
        for f in noted:
            lines.append(f"  #{f['n']} {f['kind']} {f.get('target')}: "
                         f"{f.get('error', '')} {'; '.join(f.get('notes', []))}"[:400])
    if ck.get("fail_reasons"):
        lines.append("")
        lines.append("why it fails:")
        lines += [f"  {r}" for r in ck["fail_reasons"]]
    return lines


def write(result, acks, samples, out):
    """build/results/faults.svg: fault spans, leader key, acknowledged writes per second."""
    out = Path(out)
    faults = result.get("faults", [])
    t_end = max([a[2] for a in acks] + [s[0] for s in samples] +
                [f.get("t_recovered", 0) for f in faults] + [1.0])
    t_beg = min([a[2] for a in acks[:1]] + [s[0] for s in samples[:1]] + [t_end - 1])
    W, L, R = 1600, 110, 20
    plot_w = W - L - R
    row_f, row_p, row_l, row_w = 40, 76, 110, 160
    H = 350
    ck = result.get("check") or {}

    def x(t):
        return L + (t - t_beg) / max(1e-6, t_end - t_beg) * plot_w
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
          f'font-family="sans-serif" font-size="11" shape-rendering="crispEdges">',
          f'<rect width="{W}" height="{H}" fill="white"/>',
          f'<text x="{L}" y="18" font-size="14">pgwarden fault suite, seed {result.get("seed")}: '
          f'{len(faults)} faults, {escape(_mode(result))}, ttl {result.get("ttl_s")}s</text>']
    for y, lab in ((row_f + 18, "faults"), (row_p + 14, "partitioned"), (row_l + 18, "leader key"),
                   (row_w + 60, "acked writes/s")):
        el.append(f'<text x="8" y="{y}">{lab}</text>')
    # faults: span from injection to recovery, numbered
    for f in faults:
        x0, x1 = x(f["t_start"]), x(f.get("t_recovered", f["t_start"]))
        c = COLORS.get(f["kind"], "#999")
        el.append(f'<rect x="{x0:.1f}" y="{row_f}" width="{max(1.5, x1 - x0):.1f}" height="30" '
                  f'fill="{c}" fill-opacity="0.75" stroke="{"black" if not f["ok"] else "none"}">'
                  f'<title>#{f["n"]} {escape(f["kind"])} {escape(str(f.get("target")))}: '
                  f'{f.get("longest_gap_s", 0)}s longest gap</title></rect>')
        el.append(f'<text x="{x0 + 1:.1f}" y="{row_f - 3}" font-size="9">{f["n"]}</text>')
    # partitions: from the cut to the heal, labelled with the node and its role
    for f in faults:
        p = f.get("partition")
        if not p or "t_heal" not in p:
            continue
        x0, x1 = x(p["t_cut"]), x(p["t_heal"])
        role = "leader" if p.get("was_leader") else "replica"
        el.append(f'<rect x="{x0:.1f}" y="{row_p}" width="{max(1.5, x1 - x0):.1f}" height="22" '
                  f'fill="{COLORS.get(f["kind"], "#999")}" stroke="black" stroke-width="0.5">'
                  f'<title>#{f["n"]} {escape(f["kind"])}: {escape(str(f.get("target")))} '
                  f'({role}) cut off ({p["mode"]}) {p["t_cut"]:.1f}-{p["t_heal"]:.1f}s; new '
                  f'leader after {p.get("new_leader_after_s")}s</title></rect>')
        if x1 - x0 > 14:
            el.append(f'<text x="{x0 + 2:.1f}" y="{row_p + 15}" font-size="9">'
                      f'{escape(str(f.get("target")))}{" leader" if p.get("was_leader") else ""}'
                      f'</text>')
    # leader key samples as colored segments
    names = sorted({s[1] for s in samples if s[1] and s[1] != "?"})
    cmap = {nm: LEADER_COLORS[i % len(LEADER_COLORS)] for i, nm in enumerate(names)}
    runs = []  # consecutive samples with the same value, drawn as one segment
    for t, nm in samples:
        if runs and runs[-1][2] == nm:
            runs[-1][1] = t + 0.5
        else:
            if runs:
                runs[-1][1] = t
            runs.append([t, t + 0.5, nm])
    for t, t2, nm in runs:
        c = cmap.get(nm, "#dddddd" if nm is None else "#333333")
        el.append(f'<rect x="{x(t):.1f}" y="{row_l}" width="{max(0.5, x(t2) - x(t)):.2f}" '
                  f'height="30" fill="{c}"><title>{escape(str(nm))} {t:.1f}-{t2:.1f}s</title>'
                  f'</rect>')
    # write availability: acks per second, red where no write was acknowledged
    n_sec = int(t_end - t_beg) + 1
    per = [0] * n_sec
    for a in acks:
        per[min(n_sec - 1, int(a[2] - t_beg))] += 1
    mx = max(per + [1])
    base = row_w + 120
    for s, v in enumerate(per):
        xs, xe = x(t_beg + s), x(t_beg + s + 1)
        if v == 0:
            el.append(f'<rect x="{xs:.1f}" y="{row_w}" width="{max(0.5, xe - xs):.2f}" '
                      f'height="120" fill="#f4b6b6"/>')
        else:
            h = 120 * v / mx
            el.append(f'<rect x="{xs:.1f}" y="{base - h:.1f}" width="{max(0.5, xe - xs):.2f}" '
                      f'height="{h:.1f}" fill="#555"/>')
    el.append(f'<text x="{L - 4}" y="{row_w + 10}" text-anchor="end">{mx}</text>')
    # lost acknowledged writes (orange ticks at their ack time) and split-brain instants (red)
    lost = set(ck.get("lost_ids") or [])
    for a in acks:
        if a[0] in lost:
            el.append(f'<line x1="{x(a[2]):.1f}" y1="{row_w}" x2="{x(a[2]):.1f}" '
                      f'y2="{row_w + 12}" stroke="#ff7f0e"><title>lost id {a[0]}</title></line>')
    for sb in ck.get("split_brain_examples") or []:
        el.append(f'<line x1="{x(sb["acked_s"]):.1f}" y1="{row_f}" x2="{x(sb["acked_s"]):.1f}" '
                  f'y2="{base}" stroke="red" stroke-width="2"><title>split brain: id {sb["id"]} '
                  f'on timeline {sb["timeline"]}</title></line>')
    # time axis
    span = t_end - t_beg
    step = 120 if span > 1800 else 60 if span > 900 else 30 if span > 300 else 10
    t = (int(t_beg) // step + 1) * step
    while t < t_end:
        el.append(f'<line x1="{x(t):.1f}" y1="{base}" x2="{x(t):.1f}" y2="{base + 5}" '
                  f'stroke="black"/><text x="{x(t):.1f}" y="{base + 17}" '
                  f'text-anchor="middle">{t}s</text>')
        t += step
    # legends
    lx = L
    for k, c in COLORS.items():
        el.append(f'<rect x="{lx}" y="{H - 42}" width="10" height="10" fill="{c}"/>'
                  f'<text x="{lx + 14}" y="{H - 33}">{k}</text>')
        lx += 128
    lx = L
    for nm, c in cmap.items():
        el.append(f'<rect x="{lx}" y="{H - 22}" width="10" height="10" fill="{c}"/>'
                  f'<text x="{lx + 14}" y="{H - 13}">leader {escape(nm)}</text>')
        lx += 80
    for lab, c in (("no leader key", "#dddddd"), ("etcd unreachable", "#333333"),
                   ("no write acked", "#f4b6b6"), ("lost write", "#ff7f0e"),
                   ("split brain", "red")):
        el.append(f'<rect x="{lx}" y="{H - 22}" width="10" height="10" fill="{c}"/>'
                  f'<text x="{lx + 14}" y="{H - 13}">{lab}</text>')
        lx += 125
    el.append("</svg>")
    out.with_suffix(".svg").write_text("\n".join(el) + "\n")
