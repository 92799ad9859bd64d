/* pgwarden dashboard script: login, live state (polled every second), SVG pictures, events,
 * migration progress, operations behind confirmations, and the dynamic config editor.
 * Hand-written, no framework. */
'use strict';
(() => {
  const POLL_MS = 1000, EVENTS_MS = 3000, SAMPLES_MS = 60000, WINDOW_MS = 15 * 60 * 1000, MIG_IDLE_MS = 5000;
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['#1f6feb', '#d2691e', '#2da44e', '#a371f7', '#cf222e', '#0e8a9a', '#9a6700'];
  const $ = (s, r = document) => r.querySelector(s);
  const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));

  /* Elements are built with text nodes only (never innerHTML with data). */
  function mk(ns, tag, attrs, kids) {
    const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'cls') e.setAttribute('class', v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids || []) if (c !== null && c !== undefined)
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    return e;
  }
  const h = (tag, attrs, ...kids) => mk(null, tag, attrs, kids);
  const s = (tag, attrs, ...kids) => mk(NS, tag, attrs, kids);
  const fill = (node, ...kids) => { node.replaceChildren(...kids.filter((k) => k != null)); };

  function cookie(name) {
    for (const part of document.cookie.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === name) return decodeURIComponent(v.join('='));
    }
    return '';
  }

  let leaving = false; /* logging out: the page navigates once, not again on a poll's 401 */

  /* fetch with the CSRF header; {status, ok, data} where data is JSON or text. */
  async function api(method, path, body) {
    const headers = { 'X-CSRF-Token': cookie('pgw_csrf') };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { status: 0, ok: false, data: 'network error: ' + e.message };
    }
    const text = await r.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch (e) { /* plain text answer */ }
    if (r.status === 401 && path.startsWith('/ui/api/') && document.body.dataset.page === 'main' && !leaving) {
      leaving = true;
      location.replace('/ui/login');
    }
    return { status: r.status, ok: r.ok, data };
  }

  /* ---- formatting ---- */
  function bytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return n === undefined || n === null ? '—' : String(n);
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0, v = Math.abs(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (n < 0 ? '-' : '') + (i ? v.toFixed(v < 10 ? 1 : 0) : v) + ' ' + u[i];
  }
  function lsn(n) {
    if (typeof n !== 'number') return '—';
    const hi = Math.floor(n / 4294967296), lo = n % 4294967296;
    return hi.toString(16).toUpperCase() + '/' + lo.toString(16).toUpperCase();
  }
  function pgver(v) {
    if (typeof v !== 'number' || !v) return '—';
    return v >= 100000 ? Math.floor(v / 10000) + '.' + (v % 10000) : v;
  }
  function ago(ms) {
    if (ms < 0) ms = 0;
    if (ms < 1500) return 'just now';
    if (ms < 90000) return Math.round(ms / 1000) + ' s ago';
    if (ms < 5400000) return Math.round(ms / 60000) + ' min ago';
    return Math.round(ms / 3600000) + ' h ago';
  }
  const when = (ms) => new Date(ms).toLocaleString();
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const result = (r) => typeof r.data === 'string' ? r.data : JSON.stringify(r.data);

  /* ---- login page ---- */
  function loginPage() {
    const form = $('#login'), err = $('#lerr'), btn = $('#lsubmit');
    api('GET', '/ui/api/session').then((r) => { if (r.ok && r.data.users > 0) location.replace('/ui/'); });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      btn.disabled = true;
      err.textContent = '';
      const r = await api('POST', '/ui/api/login', { user: $('#user').value, password: $('#password').value });
      btn.disabled = false;
      if (r.ok) { location.replace('/ui/'); return; }
      err.textContent = r.status === 401 ? 'Wrong user name or password.'
        : r.status === 429 ? 'Too many failed logins: wait a little and try again.'
        : r.status === 403 ? 'Access is denied from this address.' : 'Login failed: ' + result(r);
      $('#password').select();
    });
  }

  /* ---- main page state ---- */
  const S = {
    st: null, role: 'readonly', user: '', node: '', leader: null, last: 0, failures: 0,
    roll: { lag: {}, conn: { rw_active: [], rw_held: [], ro_active: [] } },
    samples: null, events: new Map(), maxEvent: 0, minEvent: 0, kinds: new Set(),
    cfgDirty: false, pending: false,
  };
  window.pgwLeaderLog = []; /* [{leader, t}] when the page first showed each leader (tests) */

  function push(list, t, v) {
    list.push([t, v]);
    while (list.length && list[0][0] < t - WINDOW_MS) list.shift();
  }

  function members() {
    const c = S.st && S.st.status && S.st.status.cluster;
    return (c && Array.isArray(c.members)) ? c.members : [];
  }

  async function poll() {
    const r = await api('GET', '/ui/api/state');
    if (r.ok && r.data) {
      S.failures = 0;
      S.st = r.data;
      S.last = Date.now();
      record(r.data);
      render();
    } else {
      S.failures++;
      setLive(false, r.status ? 'error ' + r.status : 'offline');
    }
    setTimeout(poll, POLL_MS);
  }

  function record(d) {
    const t = d.server_ms || Date.now();
    for (const m of members()) {
      if (m.role === 'leader' || m.role === 'standby_leader') continue;
      if (typeof m.lag === 'number') push(S.roll.lag[m.name] = S.roll.lag[m.name] || [], t, m.lag);
    }
    const p = d.proxy && d.proxy.ports;
    if (p) {
      push(S.roll.conn.rw_active, t, p.rw.active);
      push(S.roll.conn.rw_held, t, p.rw.held);
      push(S.roll.conn.ro_active, t, p.ro.active);
    }
  }

  function setLive(ok, text) {
    const l = $('#live');
    l.className = 'pill ' + (ok ? 'ok' : 'bad');
    l.textContent = text;
  }

  /* ---- rendering ---- */
  function render() {
    const d = S.st, st = d.status || {};
    S.role = d.role;
    S.user = d.user;
    S.node = d.node;
    const fresh = d.fresh && !S.failures;
    setLive(fresh, fresh ? 'live' : (d.status ? 'stale status' : 'no status yet'));
    $('#scope').textContent = (d.scope ? d.scope + ' · ' : '') + 'node ' + (d.node || '?');
    $('#who').textContent = d.user + ' (' + d.role + ')';
    $('#logout').hidden = !(d.users > 0);
    $$('.nodename').forEach((e) => { e.textContent = d.node || 'this node'; });
    const leader = d.leader || null;
    if (leader !== S.leader) {
      S.leader = leader;
      window.pgwLeaderLog.push({ leader, t: Date.now() });
      document.body.dataset.leader = leader || '';
      if (S.maxEvent) loadEvents(false);
    }
    renderCards(d, st);
    renderMembers(d, st);
    renderTopology(d);
    renderProxy(d);
    renderHistory(st);
    renderOps(d, st);
    renderConfig(st);
    renderCharts();
  }

  function card(k, v, sub, cls) {
    return h('div', { cls: 'card', 'data-k': k }, h('div', { cls: 'k', text: k }),
      h('div', { cls: 'v' + (cls ? ' ' + cls : '') }, v), sub ? h('div', { cls: 's', text: sub }) : null);
  }

  function renderCards(d, st) {
    const p = st.patroni || {};
    const dcsAge = st.dcs_last_seen ? d.server_ms - st.dcs_last_seen * 1000 : null;
    const rw = d.proxy && d.proxy.ports ? d.proxy.ports.rw : null;
    const tl = p.timeline || Math.max(0, ...members().map((m) => m.timeline || 0)) || '—';
    fill($('#cards'),
      card('Leader', d.leader ? h('span', { cls: 'pill lead', id: 'leader-name', text: d.leader })
        : h('span', { cls: 'pill bad', id: 'leader-name', text: 'none' })),
      card('Members', String(members().length), members().filter((m) => m.state === 'running').length + ' running'),
      card('Timeline', String(tl)),
      card('etcd', h('span', { cls: 'pill ' + (st.dcs_ok ? 'ok' : 'bad'), text: st.dcs_ok ? 'reachable' : 'unreachable' }),
        dcsAge === null ? 'never reached' : 'last answer ' + ago(dcsAge)),
      card('Mode', st.paused ? h('span', { cls: 'pill warn', text: 'paused' }) : 'automatic failover',
        st.sync_mode ? 'synchronous replication' : 'asynchronous replication'),
      card('This node', (p.role === 'master' || p.role === 'primary' ? 'primary' : p.role || '—') + ' · ' + (p.state || '?'),
        'PostgreSQL ' + pgver(p.server_version)),
      card('Forwarder (rw)', rw ? rw.active + ' active · ' + rw.held + ' held' : '—',
        rw ? rw.total + ' total' : 'no counters yet'));
  }

  function tagsOf(m) {
    const t = m.tags || {};
    return Object.keys(t).map((k) => h('span', { cls: 'pill', text: k + '=' + JSON.stringify(t[k]) }));
  }

  function syncOf(st, m) {
    const sb = st.sync && Array.isArray(st.sync.sync_standby) ? st.sync.sync_standby : [];
    return m.role === 'sync_standby' || sb.includes(m.name);
  }

  function dashUrl(m) {
    try { const u = new URL(m.api_url); u.pathname = '/ui/'; return u.toString(); } catch (e) { return null; }
  }

  // A copy in progress ("creating replica"): how far, as its source reports it.
  function cloneOf(m) {
    const c = m.clone;
    if (!c || typeof c.bytes !== 'number') return null;
    const text = typeof c.total_bytes === 'number' && c.total_bytes > 0
      ? ` ${Math.min(100, Math.floor(100 * c.bytes / c.total_bytes))}% of ${bytes(c.total_bytes)}`
      : ` ${bytes(c.bytes)} copied`;
    return h('span', { cls: 'muted clone', text });
  }

  function renderMembers(d, st) {
    const p = st.patroni || {};
    const rows = members().map((m) => {
      const lead = m.role === 'leader' || m.role === 'standby_leader';
      const ver = m.server_version || (m.name === d.node ? p.server_version : null);
      const lagS = typeof m.lag_s === 'number' ? m.lag_s.toFixed(1)
        : typeof m.replay_lag_s === 'number' ? m.replay_lag_s.toFixed(1) : '—';
      const url = dashUrl(m);
      return h('tr', { cls: lead ? 'leader' : null, 'data-member': m.name, 'data-role': m.role },
        h('td', null, h('b', { text: m.name }), m.name === d.node ? h('span', { cls: 'muted', text: ' (this node)' }) : null),
        h('td', null, h('span', { cls: 'pill' + (lead ? ' lead' : ''), text: m.role })),
        h('td', null, h('span', { cls: 'pill ' + (m.state === 'running' || m.state === 'streaming' ? 'ok' : 'warn'), text: m.state }),
          cloneOf(m)),
        h('td', { cls: 'num', text: m.timeline !== undefined ? m.timeline : '—' }),
        h('td', { cls: 'num mono', text: lsn(m.xlog_location) }),
        h('td', { cls: 'num', text: lead ? '' : (typeof m.lag === 'number' ? bytes(m.lag) : m.lag || '—') }),
        h('td', { cls: 'num', text: lead ? '' : lagS }),
        h('td', { text: lead ? '' : (syncOf(st, m) ? 'sync' : 'async') }),
        h('td', { text: pgver(ver) }),
        h('td', null, ...tagsOf(m)),
        h('td', { cls: 'hide-s' }, url && m.name !== d.node ? h('a', { href: url, text: 'dashboard' }) : ''));
    });
    fill($('#members tbody'), ...rows);
  }

  function renderTopology(d) {
    const ms = members();
    const lead = ms.find((m) => m.role === 'leader' || m.role === 'standby_leader');
    const reps = ms.filter((m) => m !== lead);
    const bw = 150, bh = 46, gap = 24;
    const W = Math.max(360, reps.length * (bw + gap) + gap), H = 210;
    const g = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
      'aria-label': 'Leader ' + (lead ? lead.name : 'none') + ' replicating to ' + reps.map((r) => r.name).join(', ') });
    g.appendChild(s('defs', null, s('marker', { id: 'arr', viewBox: '0 0 10 10', refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', cls: 'arrowhead' }))));
    const box = (m, x, y, cls) => s('g', { cls: 'node ' + cls + (m.state !== 'running' && m.state !== 'streaming' ? ' down' : ''),
      'data-member': m.name },
    s('rect', { x, y, width: bw, height: bh, rx: 8 }),
    s('text', { x: x + bw / 2, y: y + 19, 'text-anchor': 'middle', 'font-weight': 600, text: m.name }),
    s('text', { x: x + bw / 2, y: y + 36, 'text-anchor': 'middle', cls: 'lbl', text: m.role + ' · ' + m.state }));
    const lx = W / 2 - bw / 2, ly = 10;
    reps.forEach((r, i) => {
      const x = gap + i * (bw + gap) + (W - (reps.length * (bw + gap) + gap)) / 2, y = H - bh - 10;
      const sync = syncOf(d.status || {}, r);
      if (lead) {
        const x1 = W / 2, y1 = ly + bh, x2 = x + bw / 2, y2 = y;
        g.appendChild(s('path', { d: `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2 - 2}`,
          cls: 'edge' + (sync ? ' sync' : ''), 'marker-end': 'url(#arr)' }));
        const lag = typeof r.lag === 'number' ? bytes(r.lag) : (r.lag || '?');
        g.appendChild(s('text', { x: (x1 + x2) / 2 + (x2 >= x1 ? 6 : -6), y: (y1 + y2) / 2,
          'text-anchor': x2 >= x1 ? 'start' : 'end', cls: 'lbl', text: 'lag ' + lag + (sync ? ' · sync' : '') }));
      }
      g.appendChild(box(r, x, y, 'replica'));
    });
    if (lead) g.appendChild(box(lead, lx, ly, 'leader'));
    else g.appendChild(s('text', { x: W / 2, y: 40, 'text-anchor': 'middle', text: 'no leader' }));
    fill($('#topo'), g);
  }

  function renderProxy(d) {
    const p = d.proxy;
    if (!p || !p.ports) {
      fill($('#proxy tbody'));
      $('#proxynote').textContent = 'No counters from the forwarder yet.';
      return;
    }
    const row = (name, c) => h('tr', { 'data-port': name }, h('td', { text: name }),
      h('td', { cls: 'num', 'data-c': 'active', text: c.active }), h('td', { cls: 'num', 'data-c': 'held', text: c.held }),
      h('td', { cls: 'num', 'data-c': 'held_count', text: c.held_count }), h('td', { cls: 'num', 'data-c': 'total', text: c.total }),
      h('td', { cls: 'num', text: c.rejected }), h('td', { cls: 'num', text: c.hold_timeouts }));
    fill($('#proxy tbody'), row('read-write', p.ports.rw), row('read-only', p.ports.ro));
    const others = members().filter((m) => m.name !== d.node && dashUrl(m));
    const note = $('#proxynote');
    fill(note, 'Routes writes to ' + (p.has_leader ? p.leader : 'nobody (holding new connections)') +
      '. Counters ' + ago(p.age_ms) + '. Other nodes\' forwarders: ',
    ...others.flatMap((m, i) => [i ? ', ' : '', h('a', { href: dashUrl(m), text: m.name })]));
  }

  function renderHistory(st) {
    const hist = Array.isArray(st.history) ? st.history : [];
    if (!hist.length) { fill($('#history'), h('p', { cls: 'note', text: 'No timeline switch yet (timeline 1).' })); return; }
    const rows = hist.slice().reverse().map((e) => h('tr', null,
      h('td', { cls: 'num', text: e[0] }), h('td', { cls: 'num mono', text: typeof e[1] === 'number' ? lsn(e[1]) : e[1] }),
      h('td', { text: e[2] || '' }), h('td', { text: e[3] ? new Date(e[3]).toLocaleString() : '' }),
      h('td', { text: e[4] || '' })));
    fill($('#history'), h('div', { cls: 'tablewrap' }, h('table', { 'aria-label': 'Timeline history' },
      h('thead', null, h('tr', null, h('th', { cls: 'num', text: 'Timeline' }), h('th', { cls: 'num', text: 'Switch LSN' }),
        h('th', { text: 'Reason' }), h('th', { text: 'Time' }), h('th', { text: 'New leader' }))),
      h('tbody', null, ...rows))));
  }

  /* ---- migration: the newest `pgwarden migrate` job of this node (GET /migrations) ---- */
  const PHASES = {
    dump: ['preflight', 'dump', 'restore', 'verify', 'finish'],
    online: ['preflight', 'schema', 'copy', 'streaming', 'cutover', 'verify', 'finish'],
  };
  function duration(sec) {
    if (typeof sec !== 'number' || !isFinite(sec) || sec < 0) return '—';
    const t = Math.round(sec), p2 = (n) => String(n).padStart(2, '0');
    const hh = Math.floor(t / 3600), mm = Math.floor(t / 60) % 60;
    return (hh ? hh + ':' + p2(mm) : mm) + ':' + p2(t % 60);
  }

  function setBar(id, frac, text) {
    const bar = $('#' + id), v = Math.max(0, Math.min(100, Math.floor(100 * frac)));
    bar.setAttribute('aria-valuenow', v);
    bar.setAttribute('aria-valuetext', v + '%, ' + text);
    $('i', bar).style.width = v + '%'; /* CSSOM: allowed by the CSP */
    $('#' + id + '-t').textContent = v + '% · ' + text;
  }

  function migResult(m) {
    const v = m.verification;
    if (m.state === 'done') {
      return 'Done in ' + duration(m.elapsed_ms / 1000) + ': ' + (v ? 'verified ' + v.tables + ' tables, ' +
        Number(v.rows).toLocaleString() + ' rows identical' + (v.checksums ? ' (with row checksums)' : '')
        : 'copied') + '. Database ' + m.target_db + ' is ready.';
    }
    if (m.state === 'failed') {
      return 'Failed: ' + (m.error || 'no reason recorded') + (v && v.differences ? ' (' + v.differences + ' differences)' : '');
    }
    if (m.state === 'interrupted') {
      return `Interrupted: the migrate process (pid ${m.pid}) ended during ${m.phase} without finishing; ` +
        'the next pgwarden migrate marks it failed and drops its staging database.';
    }
    const cutover = `pgwarden migrate cutover --id ${m.id}`;
    if (m.detached) {
      return m.phase === 'copy' || m.phase === 'streaming'
        ? `The replication runs in the cluster with no pgwarden process watching it (pid ${m.pid} ended): ` +
          `figures as of ${when(m.updated_ms)}. Next: stop the application's writes, then ${cutover}.`
        : `The cutover (pid ${m.pid}) ended without finishing: run ${cutover} again.`;
    }
    if (m.phase === 'streaming') return `Streaming. Next: stop the application's writes, then ${cutover}.`;
    return '';
  }

  function renderMigration(m) {
    const sec = $('#mig');
    sec.hidden = !m;
    if (!m) return;
    sec.dataset.state = m.state;
    sec.dataset.id = m.id;
    const online = m.mode === 'online';
    const pill = $('#mig-state');
    pill.className = 'pill ' + (m.state === 'done' ? 'ok' : m.running ? 'warn' : 'bad');
    pill.textContent = m.running ? m.state + (m.detached ? ' · detached' : ' · running') : m.state;
    $('#mig-what').textContent = `#${m.id}: ${m.source} → database ${m.target_db} (${online
      ? 'online, logical replication' : 'dump and restore'}), started ${when(m.started_ms)}`;
    const phases = PHASES[online ? 'online' : 'dump'];
    const at = m.phase === 'done' ? phases.length : phases.indexOf(m.phase);
    fill($('#mig-steps'), ...phases.map((p, i) => h('li', { cls: i < at ? 'past' : i === at ? 'now' : null,
      'aria-current': i === at ? 'step' : null, text: p })));
    $('#mig-bytes-row').hidden = !(m.bytes_total > 0);
    if (m.bytes_total > 0) setBar('mig-bytes', m.bytes_done / m.bytes_total, bytes(m.bytes_done) + ' of ' + bytes(m.bytes_total));
    $('#mig-tables-row').hidden = !(m.tables_total > 0);
    if (m.tables_total > 0) setBar('mig-tables', m.tables_done / m.tables_total, m.tables_done + ' of ' + m.tables_total + ' tables');
    const kv = [['Phase', m.phase],
      [m.finished ? 'Average rate' : 'Rate', typeof m.rate_bps === 'number' ? bytes(m.rate_bps) + '/s' : '—'],
      ['Time left', m.running ? duration(m.eta_s) : '—'], ['Elapsed', duration(m.elapsed_ms / 1000)]];
    if (online) kv.push(['Replication lag', typeof m.lag_bytes === 'number' ? bytes(m.lag_bytes) : '—']);
    if (typeof m.cutover_ms === 'number') kv.push(['Cutover downtime', (m.cutover_ms / 1000).toFixed(1) + ' s']);
    fill($('#mig-kv'), ...kv.map(([k, v]) => h('div', null, h('dt', { text: k }), h('dd', { 'data-k': k, text: v }))));
    const res = $('#mig-result');
    res.className = m.state === 'done' ? 'ok' : m.running ? '' : 'bad'; /* detached: a note, not an error */
    res.textContent = migResult(m);
  }

  /* Every second while a job runs, else every MIG_IDLE_MS (to notice a new one). */
  async function migrationsLoop() {
    const r = await api('GET', '/migrations?limit=1');
    let running = false;
    if (r.ok && r.data && Array.isArray(r.data.migrations)) {
      const m = r.data.migrations[0] || null;
      renderMigration(m);
      running = !!(m && m.running && !m.detached);
    }
    setTimeout(migrationsLoop, running ? POLL_MS : MIG_IDLE_MS);
  }

  /* ---- charts (hand-drawn SVG line charts) ---- */
  function chart(series, fmt, label, floor, integer) {
    const W = 760, H = 220, L = 64, R = 10, T = 10, B = 28;
    const all = series.flatMap((x) => x.pts);
    const g = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': label });
    if (!all.length) {
      g.appendChild(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', cls: 'lbl', text: 'no data yet' }));
      return g;
    }
    const t1 = Math.max(...all.map((p) => p[0])), t0 = Math.min(t1 - 60000, Math.min(...all.map((p) => p[0])));
    const top = Math.max(...all.map((p) => p[1])) * 1.1;
    const vmax = integer ? Math.max(floor, Math.ceil(top / 4) * 4) : Math.max(floor, top);
    const X = (t) => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
    const Y = (v) => T + (H - T - B) * (1 - v / vmax);
    for (let i = 0; i <= 4; i++) {
      const v = vmax * i / 4, y = Y(v);
      g.appendChild(s('line', { x1: L, x2: W - R, y1: y, y2: y, cls: 'axis' }));
      g.appendChild(s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', cls: 'lbl', text: fmt(v) }));
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (t1 - t0) * i / 4;
      g.appendChild(s('text', { x: X(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', cls: 'lbl', text: clock(t) }));
    }
    series.forEach((x, i) => {
      if (!x.pts.length) return;
      const d = x.pts.map((p, j) => (j ? 'L' : 'M') + X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' ');
      g.appendChild(s('path', { d, fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 2, 'data-series': x.name }));
    });
    return g;
  }

  function legend(node, series) {
    fill(node, ...series.map((x, i) => {
      const sw = h('i');
      sw.style.background = COLORS[i % COLORS.length]; /* CSSOM: allowed by the CSP, unlike style="" */
      return h('span', null, sw, x.name + (x.pts.length ? ': ' + x.last(x.pts[x.pts.length - 1][1]) : ''));
    }));
  }

  /* A stored series (samples API) followed by the page's own points that are newer. */
  function merged(stored, own) {
    const a = stored || [];
    const lastT = a.length ? a[a.length - 1][0] : -Infinity;
    return a.concat((own || []).filter((p) => p[0] > lastT));
  }

  function renderCharts() {
    const sm = S.samples || {};
    const lagStored = sm.lag_bytes || {};
    const names = new Set([...Object.keys(S.roll.lag), ...Object.keys(lagStored)]);
    const lead = S.leader;
    const lag = [...names].filter((n) => n !== lead || (lagStored[n] && lagStored[n].length)).sort()
      .map((n) => ({ name: n, pts: merged(lagStored[n], S.roll.lag[n]), last: bytes }));
    fill($('#lagchart'), chart(lag, bytes, 'Replication lag in bytes per replica', 1024, false));
    legend($('#laglegend'), lag);
    const node = S.node, pick = (m) => (sm[m] || {})[node];
    const count = (v) => String(Math.round(v));
    const conn = [
      { name: 'read-write active', pts: merged(pick('proxy_rw_active'), S.roll.conn.rw_active), last: count },
      { name: 'read-write held', pts: merged(pick('proxy_rw_held'), S.roll.conn.rw_held), last: count },
      { name: 'read-only active', pts: merged(pick('proxy_ro_active'), S.roll.conn.ro_active), last: count },
    ];
    fill($('#connchart'), chart(conn, count, 'Forwarder connections over time', 4, true));
    legend($('#connlegend'), conn);
    $('#chartsrc').textContent = S.samples && S.samples.any
      ? 'History from the node\'s SQLite samples, extended live by this page.'
      : 'The node stores no samples yet: these charts show what this page has seen since it was opened (up to 15 minutes).';
  }

  async function loadSamples() {
    const since = Date.now() - WINDOW_MS, out = { any: false };
    for (const m of ['lag_bytes', 'proxy_rw_active', 'proxy_rw_held', 'proxy_ro_active']) {
      const r = await api('GET', '/ui/api/samples?metric=' + m + '&since_ms=' + since);
      if (r.ok && r.data && r.data.available) {
        out[m] = r.data.series || {};
        if (Object.keys(out[m]).length) out.any = true;
      }
    }
    S.samples = out;
    setTimeout(loadSamples, SAMPLES_MS);
  }

  /* ---- events ---- */
  async function loadEvents(older) {
    let q = '/events?limit=100';
    if (older && S.minEvent) q += '&before=' + S.minEvent;
    else if (!older && S.maxEvent) q += '&since=' + S.maxEvent;
    const r = await api('GET', q);
    if (!r.ok || !r.data || !Array.isArray(r.data.events)) return;
    for (const e of r.data.events) {
      S.events.set(e.id, e);
      S.kinds.add(e.kind);
      S.maxEvent = Math.max(S.maxEvent, e.id);
      S.minEvent = S.minEvent ? Math.min(S.minEvent, e.id) : e.id;
    }
    if (older && !r.data.events.length) $('#emore').disabled = true;
    renderEvents();
  }

  function renderEvents() {
    const sel = $('#ekind'), cur = sel.value;
    const have = new Set($$('option', sel).map((o) => o.value));
    for (const k of [...S.kinds].sort()) if (!have.has(k)) sel.appendChild(h('option', { value: k, text: k }));
    sel.value = cur;
    const text = $('#etext').value.trim().toLowerCase();
    const list = [...S.events.values()].sort((a, b) => b.id - a.id).filter((e) => (!cur || e.kind === cur) &&
      (!text || (e.kind + ' ' + e.member + ' ' + JSON.stringify(e.detail)).toLowerCase().includes(text)));
    fill($('#events'), ...list.slice(0, 300).map((e) => h('li', { cls: 'k-' + e.kind, 'data-kind': e.kind },
      h('span', { cls: 'muted', text: when(e.ts_ms) + ' ' }), h('span', { cls: 'pill', text: e.kind }), ' ',
      h('b', { text: e.member }), e.term ? h('span', { cls: 'muted', text: ' term ' + e.term }) : null,
      h('div', { cls: 'd', text: typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail) }))));
    if (!list.length) fill($('#events'), h('li', { cls: 'muted', text: 'No events match.' }));
  }

  function eventsLoop() {
    loadEvents(false).finally(() => setTimeout(eventsLoop, EVENTS_MS));
  }

  /* ---- operations ---- */
  function confirmDialog(title, text, danger) {
    const dlg = $('#confirm');
    $('#c-title').textContent = title;
    $('#c-text').textContent = text;
    $('#c-yes').className = 'b' + (danger ? ' danger' : '');
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
      dlg.returnValue = 'cancel';
      dlg.showModal();
      $('#c-no').focus();
    });
  }

  function showResult(box, what, r) {
    box.className = r === null ? '' : (r.ok ? 'ok' : 'bad');
    box.textContent = r === null ? what + ': working…' : what + ': ' + (r.ok ? 'done' : 'failed') +
      ' (HTTP ' + r.status + ') — ' + result(r);
  }

  async function operate(what, title, text, method, path, body, danger, box) {
    box = box || $('#result');
    if (!(await confirmDialog(title, text, danger))) return null;
    S.pending = true;
    renderOps(S.st, S.st.status || {});
    showResult(box, what, null);
    const r = await api(method, path, body);
    S.pending = false;
    showResult(box, what, r);
    renderOps(S.st, S.st.status || {});
    loadEvents(false);
    return r;
  }

  function renderOps(d, st) {
    const ro = d.role !== 'admin';
    $('#roinfo').textContent = ro ? 'You are logged in as a read-only user: you can see the cluster but not operate it (the server refuses with 403).' : '';
    $$('.op-btn').forEach((b) => { b.disabled = ro || S.pending; b.title = ro ? 'read-only user' : ''; });
    const sel = $('#cand'), cur = sel.value;
    const cands = members().filter((m) => m.role !== 'leader' && m.role !== 'standby_leader');
    const key = cands.map((m) => m.name + m.state).join(',');
    if (sel.dataset.key !== key) {
      fill(sel, ...cands.map((m) => h('option', { value: m.name, text: m.name + ' (' + m.state + ', lag ' + bytes(m.lag) + ')' })));
      sel.dataset.key = key;
      if (cands.some((m) => m.name === cur)) sel.value = cur;
    }
    if (!cands.length || !d.leader) $('#do-switchover').disabled = true;
    const sched = st.cluster && st.cluster.scheduled_switchover;
    $('#schedinfo').textContent = sched ? 'Scheduled: from ' + sched.from + ' to ' + (sched.to || 'any') + ' at ' + when(sched.at) : '';
    $('#do-cancel').hidden = !sched;
    const p = st.patroni || {};
    $('#do-reinit').disabled = ro || S.pending || p.role === 'master' || p.role === 'primary';
    $('#pausestate').textContent = st.paused ? 'The cluster is paused: no automatic failover.' : 'Automatic failover is on.';
    $('#do-pause').disabled = ro || S.pending || !!st.paused;
    $('#do-resume').disabled = ro || S.pending || !st.paused;
  }

  function wireOps() {
    $('#do-switchover').addEventListener('click', () => {
      const c = $('#cand').value, from = S.leader;
      const at = $('input[name=when]:checked').value === 'at' ? $('#when').value : '';
      if (at && isNaN(new Date(at).getTime())) { showResult($('#result'), 'Switchover', { ok: false, status: 0, data: 'choose a valid time' }); return; }
      const body = { leader: from, candidate: c };
      let text = `Switch the leader from ${from} to ${c} now. ${from} is demoted and ${c} promoted; new connections to the read-write port are held for the few seconds of the handover and open sessions on ${from} are closed.`;
      if (at) {
        body.scheduled_at = new Date(at).toISOString();
        text = `Schedule a switchover from ${from} to ${c} at ${new Date(at).toLocaleString()}. Nothing changes until then; it can be cancelled.`;
      }
      operate('Switchover', 'Switch over?', text, 'POST', '/switchover', body, false);
    });
    $('#do-cancel').addEventListener('click', () => operate('Cancel switchover', 'Cancel the scheduled switchover?',
      'The scheduled switchover is removed; the current leader stays.', 'DELETE', '/switchover', undefined, false));
    $('#do-restart').addEventListener('click', () => operate('Restart', 'Restart PostgreSQL?',
      `PostgreSQL on ${S.node} is restarted now: its connections are closed. If it is the leader, writes stop until it is back (a restart is not a failover).`,
      'POST', '/restart', {}, true));
    $('#do-reinit').addEventListener('click', () => operate('Reinitialize', 'Reinitialize this replica?',
      `The data folder of ${S.node} is deleted and cloned again from the leader ${S.leader || ''}. It serves no reads until the clone is done.`,
      'POST', '/reinitialize', { force: $('#reinit-force').checked }, true));
    $('#do-pause').addEventListener('click', () => operate('Pause', 'Pause the cluster?',
      'Automatic failover is turned off for every member until you resume. PostgreSQL keeps running.',
      'PATCH', '/config', { pause: true }, false));
    $('#do-resume').addEventListener('click', () => operate('Resume', 'Resume the cluster?',
      'Automatic failover is turned on again.', 'PATCH', '/config', { pause: null }, false));
  }

  /* ---- dynamic config editor ---- */
  const INTS = ['ttl', 'loop_wait', 'retry_timeout', 'maximum_lag_on_failover', 'maximum_lag_on_syncnode',
    'primary_start_timeout', 'primary_stop_timeout', 'master_start_timeout', 'synchronous_node_count', 'max_timelines_history'];
  const BOOLS = ['synchronous_mode_strict', 'failsafe_mode', 'check_timeline', 'pause'];
  const OBJS = ['slots', 'standby_cluster', 'postgresql'];

  function validate(text) {
    const errs = [];
    let c;
    try { c = JSON.parse(text); } catch (e) { return { errs: ['Not valid JSON: ' + e.message] }; }
    if (!c || typeof c !== 'object' || Array.isArray(c)) return { errs: ['The config must be a JSON object.'] };
    const isInt = (v) => Number.isInteger(v) || (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v));
    for (const k of INTS) if (c[k] != null && !isInt(c[k])) errs.push(`${k} must be an integer`);
    for (const k of BOOLS) if (c[k] != null && typeof c[k] !== 'boolean') errs.push(`${k} must be true or false`);
    for (const k of OBJS) if (c[k] != null && (typeof c[k] !== 'object' || Array.isArray(c[k]))) errs.push(`${k} must be an object`);
    if (c.synchronous_mode != null && typeof c.synchronous_mode !== 'boolean' && c.synchronous_mode !== 'quorum')
      errs.push('synchronous_mode must be true, false or "quorum"');
    if (c.ignore_slots != null && !Array.isArray(c.ignore_slots)) errs.push('ignore_slots must be a list');
    if ('watchdog' in c) errs.push('watchdog is local configuration, not dynamic');
    const pg = c.postgresql;
    if (pg && typeof pg === 'object') {
      for (const k of ['use_slots', 'use_pg_rewind']) if (pg[k] != null && typeof pg[k] !== 'boolean') errs.push(`postgresql.${k} must be true or false`);
      if (pg.parameters != null) {
        if (typeof pg.parameters !== 'object' || Array.isArray(pg.parameters)) errs.push('postgresql.parameters must be an object');
        else for (const [k, v] of Object.entries(pg.parameters))
          if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) errs.push(`parameter ${k} must be a string, number or boolean`);
      }
      if (pg.pg_hba != null && !(Array.isArray(pg.pg_hba) && pg.pg_hba.every((x) => typeof x === 'string'))) errs.push('postgresql.pg_hba must be a list of strings');
    }
    const n = (k, dflt) => (c[k] == null ? dflt : Number(c[k]));
    const ttl = n('ttl', 10), lw = n('loop_wait', 1), rt = n('retry_timeout', 3);
    if (!errs.length) {
      if (ttl < 2) errs.push('ttl must be at least 2 (seconds)');
      if (lw < 1) errs.push('loop_wait must be at least 1 (second)');
      if (rt < 1) errs.push('retry_timeout must be at least 1 (second)');
      if (lw + 2 * rt > ttl) errs.push(`loop_wait + 2 × retry_timeout (${lw + 2 * rt}) must not exceed ttl (${ttl})`);
      if (c.maximum_lag_on_failover != null && Number(c.maximum_lag_on_failover) < 0) errs.push('maximum_lag_on_failover must be >= 0');
    }
    return { errs, value: c };
  }

  /* The PATCH that turns a into b (objects merged recursively; removed keys become null). */
  function diff(a, b) {
    const out = {};
    for (const k of Object.keys(b)) {
      const x = a ? a[k] : undefined, y = b[k];
      if (x && y && typeof x === 'object' && typeof y === 'object' && !Array.isArray(x) && !Array.isArray(y)) {
        const d = diff(x, y);
        if (Object.keys(d).length) out[k] = d;
      } else if (JSON.stringify(x) !== JSON.stringify(y)) out[k] = y;
    }
    for (const k of Object.keys(a || {})) if (!(k in b)) out[k] = null;
    return out;
  }

  function renderConfig(st) {
    const ta = $('#cfg');
    if (!S.cfgDirty && document.activeElement !== ta) ta.value = JSON.stringify(st.config || {}, null, 2);
  }

  function wireConfig() {
    const ta = $('#cfg'), errs = $('#cfgerr');
    ta.addEventListener('input', () => {
      S.cfgDirty = true;
      const v = validate(ta.value);
      fill(errs, ...v.errs.map((e) => h('li', { text: e })));
    });
    $('#cfg-reset').addEventListener('click', () => { S.cfgDirty = false; fill(errs); renderConfig((S.st && S.st.status) || {}); });
    $('#cfg-apply').addEventListener('click', async () => {
      const v = validate(ta.value);
      fill(errs, ...v.errs.map((e) => h('li', { text: e })));
      if (v.errs.length) { ta.focus(); return; }
      const patch = diff((S.st.status || {}).config || {}, v.value);
      if (!Object.keys(patch).length) { fill(errs, h('li', { text: 'Nothing changed.' })); return; }
      const r = await operate('Config', 'Change the dynamic config?', 'Every member applies this change: ' + JSON.stringify(patch),
        'PATCH', '/config', patch, false, $('#cfgres'));
      if (r && r.ok) S.cfgDirty = false;
    });
  }

  /* ---- tabs (arrow keys move between them) ---- */
  function wireTabs() {
    const tabs = $$('nav.tabs [role=tab]');
    const show = (t, focus) => {
      for (const x of tabs) {
        const on = x === t;
        x.setAttribute('aria-selected', on);
        x.tabIndex = on ? 0 : -1;
        $('#' + x.getAttribute('aria-controls')).hidden = !on;
      }
      if (focus) t.focus();
      history.replaceState(null, '', '#' + t.id.slice(2));
      if (t.id === 't-charts' && S.st) renderCharts();
    };
    tabs.forEach((t, i) => {
      t.addEventListener('click', () => show(t, false));
      t.addEventListener('keydown', (e) => {
        const k = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
        if (k) { e.preventDefault(); show(tabs[(i + k + tabs.length) % tabs.length], true); }
        if (e.key === 'Home') { e.preventDefault(); show(tabs[0], true); }
        if (e.key === 'End') { e.preventDefault(); show(tabs[tabs.length - 1], true); }
      });
    });
    const start = tabs.find((t) => '#' + t.id.slice(2) === location.hash);
    if (start) show(start, false);
  }

  function mainPage() {
    wireTabs();
    wireOps();
    wireConfig();
    $('#ekind').addEventListener('change', renderEvents);
    $('#etext').addEventListener('input', renderEvents);
    $('#emore').addEventListener('click', () => loadEvents(true));
    $('#logout').addEventListener('click', async () => {
      leaving = true;
      await api('POST', '/ui/api/logout');
      location.replace('/ui/login');
    });
    poll();
    eventsLoop();
    loadSamples();
    migrationsLoop();
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (document.body.dataset.page === 'login') loginPage();
    else mainPage();
  });
})();
