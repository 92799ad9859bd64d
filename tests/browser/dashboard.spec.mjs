// Browser checks of the pgwarden dashboard with playwright-core and Debian's Chromium.
// Usage: node dashboard.spec.mjs '<json>' with {url, admin: [user, pw], viewer: [user, pw],
// leader, candidate, node, members: [names], shots: folder, migrate: {argv, env, uid, gid, cwd,
// secret, target}, clone: {pid}}. Started by test_dashboard.py, which runs the cluster; prints one JSON line
// {checks: [{name, ok, detail}], leader_shown_ms, ...}.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2]);
const checks = [];
const out = { checks };
const log = (...a) => console.error(new Date().toISOString(), ...a);

async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    checks.push({ name, ok: true, detail: detail === undefined ? '' : String(detail) });
    log('PASS', name, detail ?? '', `${Date.now() - t0} ms`);
  } catch (e) {
    checks.push({ name, ok: false, detail: String(e && e.message || e).slice(0, 400) });
    log('FAIL', name, e && e.stack);
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// GET through the page's request context (its cookies). The server closes a keep-alive
// connection idle for its connection timeout (10 s); a request sent on it at that moment meets
// the close ("socket hang up"). A browser retries an idempotent request then, and so does this.
async function apiGet(page, url, opts) {
  try {
    return await page.request.get(url, opts);
  } catch (e) {
    if (!/socket hang up|ECONNRESET/.test(String(e && e.message))) throw e;
    log('retrying a GET on a closed keep-alive connection', url);
    return page.request.get(url, opts);
  }
}

async function login(page, user, pw) {
  await page.goto(cfg.url + '/ui/login');
  await page.fill('#user', user);
  await page.fill('#password', pw);
  await page.click('#lsubmit');
}

async function shot(page, name) {
  await page.screenshot({ path: `${cfg.shots}/${name}.png`, fullPage: true });
}

// fetch from inside the page (same origin, the session cookie goes along).
function pageFetch(page, method, path, body, csrf) {
  return page.evaluate(async ([method, path, body, csrf]) => {
    const headers = { 'Content-Type': 'application/json' };
    if (csrf === 'cookie') {
      const m = document.cookie.match(/(?:^|; )pgw_csrf=([^;]*)/);
      headers['X-CSRF-Token'] = m ? m[1] : '';
    } else if (csrf) headers['X-CSRF-Token'] = csrf;
    const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    return { status: r.status, text: await r.text() };
  }, [method, path, body, csrf]);
}

// pg_basebackup's main process among the descendants of `root` (by PID, from /proc), once its
// WAL streaming child runs too; null before.
function copyUnder(root) {
  const kids = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let st;
    try { st = readFileSync(`/proc/${d}/stat`, 'utf8'); } catch (e) { continue; } // gone
    const r = st.lastIndexOf(')');
    const p = { pid: Number(d), comm: st.slice(st.indexOf('(') + 1, r), ppid: Number(st.slice(r + 2).split(' ')[1]) };
    if (!kids.has(p.ppid)) kids.set(p.ppid, []);
    kids.get(p.ppid).push(p);
  }
  const under = [], todo = [root];
  while (todo.length) for (const c of kids.get(todo.pop()) || []) { under.push(c); todo.push(c.pid); }
  const bb = under.filter((p) => p.comm === 'pg_basebackup');
  const main = bb.filter((p) => !bb.some((q) => q.pid === p.ppid));
  return main.length === 1 && bb.length > 1 ? main[0].pid : null;
}

const proxyCell = (page, c) => page.$eval(`#proxy tr[data-port="read-write"] td[data-c="${c}"]`,
  (e) => Number(e.textContent)).catch(() => -1);

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  await check('unauthenticated page goes to the login page', async () => {
    await page.goto(cfg.url + '/ui/');
    await page.waitForURL('**/ui/login', { timeout: 15000 });
    const r = await apiGet(page, cfg.url + '/ui/api/state');
    assert(r.status() === 401, 'state without a session: ' + r.status());
    return 'redirected; /ui/api/state 401';
  });

  await check('wrong password refused', async () => {
    await login(page, cfg.admin[0], cfg.admin[1] + 'x');
    await page.waitForFunction(() => document.querySelector('#lerr').textContent.length > 0);
    const msg = await page.textContent('#lerr');
    assert(/wrong/i.test(msg), 'message: ' + msg);
    assert(page.url().endsWith('/ui/login'), 'url ' + page.url());
    await shot(page, '01-login-refused');
    return msg;
  });

  await check('log in, see three members and the leader', async () => {
    await login(page, cfg.admin[0], cfg.admin[1]);
    await page.waitForURL('**/ui/', { timeout: 15000 });
    await page.waitForFunction((n) => document.querySelectorAll('#members tbody tr').length === n,
      cfg.members.length, { timeout: 20000 });
    await page.waitForFunction((l) => document.body.dataset.leader === l, cfg.leader, { timeout: 20000 });
    const names = await page.$$eval('#members tbody tr', (rs) => rs.map((r) => r.dataset.member));
    const lead = await page.$$eval('#members tbody tr.leader', (rs) => rs.map((r) => r.dataset.member));
    assert(cfg.members.every((m) => names.includes(m)), 'members ' + names);
    assert(lead.length === 1 && lead[0] === cfg.leader, 'highlighted ' + lead);
    assert((await page.textContent('#leader-name')) === cfg.leader, 'leader card');
    const cookies = await ctx.cookies();
    const sess = cookies.find((c) => c.name === 'pgw_session');
    assert(sess && sess.httpOnly && sess.sameSite === 'Strict', 'session cookie ' + JSON.stringify(sess));
    await page.waitForSelector('#topo svg g.node.leader');
    await page.waitForSelector('#proxy tr[data-port="read-write"]');
    await shot(page, '02-cluster');
    return `members ${names.join(',')}, leader ${lead[0]}`;
  });

  await check('assets are embedded, cached by ETag and gzip-compressed', async () => {
    let total = 0;
    for (const a of ['/ui/', '/ui/login', '/ui/app.js', '/ui/app.css']) {
      const r = await apiGet(page, cfg.url + a, { headers: { 'Accept-Encoding': 'identity' } });
      assert(r.status() === 200, a + ' ' + r.status());
      const etag = r.headers().etag;
      assert(etag, a + ' has no ETag');
      assert(/script-src 'self'/.test(r.headers()['content-security-policy'] || ''), a + ' CSP');
      if (a !== '/ui/login') total += (await r.body()).length;
      const again = await apiGet(page, cfg.url + a, { headers: { 'If-None-Match': etag } });
      assert(again.status() === 304, a + ' revalidation ' + again.status());
    }
    const login = await apiGet(page, cfg.url + '/ui/login', { headers: { 'Accept-Encoding': 'identity' } });
    total += (await login.body()).length;
    out.asset_bytes = total;
    assert(total < 150 * 1024, 'assets ' + total + ' bytes');
    return `${total} bytes`;
  });

  await check('CSRF-less POSTs are refused (403)', async () => {
    const body = { leader: cfg.leader, candidate: cfg.candidate };
    const none = await pageFetch(page, 'POST', '/switchover', body, null);
    const wrong = await pageFetch(page, 'POST', '/switchover', body, 'A'.repeat(43));
    const patch = await pageFetch(page, 'PATCH', '/config', { pause: true }, null);
    const logout = await pageFetch(page, 'POST', '/ui/api/logout', undefined, null);
    assert(none.status === 403 && wrong.status === 403 && patch.status === 403 && logout.status === 403,
      `statuses ${none.status} ${wrong.status} ${patch.status} ${logout.status}`);
    assert((await page.evaluate(() => document.body.dataset.leader)) === cfg.leader, 'leader changed');
    return 'no token, wrong token, PATCH /config and logout: 403';
  });

  for (const [tab, name] of [['#t-charts', '03-charts'], ['#t-events', '04-events'], ['#t-config', '05-config']]) {
    await page.click(tab);
    await page.waitForTimeout(300);
    await shot(page, name);
  }

  await check('switchover from the page: new leader, held connections, event', async () => {
    await page.click('#t-ops');
    await page.selectOption('#cand', cfg.candidate);
    out.held_count_before = await proxyCell(page, 'held_count');
    await page.click('#do-switchover');
    await page.waitForSelector('#confirm[open]');
    const text = await page.textContent('#c-text');
    assert(text.includes(cfg.leader) && text.includes(cfg.candidate), 'confirmation: ' + text);
    await shot(page, '06-confirm-switchover');
    // Watch the forwarder counters on the page (Cluster view stays rendered while hidden).
    let heldMax = 0, watching = true;
    const watcher = (async () => {
      while (watching) {
        heldMax = Math.max(heldMax, await proxyCell(page, 'held'));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const clicked = Date.now();
    let res;
    try {
      await page.click('#c-yes');
      // The first leader other than the old one (ha may pick another member than the candidate).
      await page.waitForFunction((l) => document.body.dataset.leader && document.body.dataset.leader !== l,
        cfg.leader, { timeout: 60000 });
      const entry = await page.evaluate((l) => window.pgwLeaderLog.find((e) => e.leader && e.leader !== l), cfg.leader);
      out.new_leader = entry ? entry.leader : null;
      out.leader_shown_ms = entry ? entry.t : Date.now();
      await page.waitForFunction(() => /done|failed/.test(document.querySelector('#result').textContent), null, { timeout: 60000 });
      res = await page.textContent('#result');
      await shot(page, '07-switchover-result');
      // The held connections released after the new leader was routed (counters every second).
      await page.waitForFunction((b) => {
        const e = document.querySelector('#proxy tr[data-port="read-write"] td[data-c="held_count"]');
        return e && Number(e.textContent) > b;
      }, out.held_count_before, { timeout: 20000 }).catch(() => {});
    } finally {
      watching = false;
      await watcher;
    }
    out.held_max = heldMax;
    out.held_count_after = await proxyCell(page, 'held_count');
    assert(/done/.test(res), 'result: ' + res);
    assert(out.new_leader === cfg.candidate, `new leader ${out.new_leader}, not the candidate ${cfg.candidate}`);
    await page.click('#t-cluster');
    await page.waitForFunction((c) => {
      const r = document.querySelector('#members tbody tr.leader');
      return r && r.dataset.member === c;
    }, out.new_leader);
    await shot(page, '08-cluster-after-switchover');
    await page.click('#t-charts');
    await page.waitForSelector('#lagchart svg path[data-series]', { state: 'attached' });
    await shot(page, '12-charts-after-switchover');
    await page.click('#t-events');
    await page.waitForFunction((l) => {
      const texts = Array.from(document.querySelectorAll('#events li[data-kind]')).map((li) => li.textContent);
      return texts.some((t) => t.includes('"op":"switchover"')) && texts.some((t) => t.includes(`"leader":"${l}"`));
    }, out.new_leader, { timeout: 30000 });
    const ev = await page.$$eval('#events li[data-kind]', (ls) => ls.slice(0, 4).map((l) => l.textContent.slice(0, 120)));
    await shot(page, '09-events-after-switchover');
    assert(out.held_count_after > out.held_count_before || heldMax > 0,
      `held: max now ${heldMax}, released ${out.held_count_before} -> ${out.held_count_after}`);
    return `shown ${out.leader_shown_ms - clicked} ms after the click; held max ${heldMax}, ` +
      `held_count ${out.held_count_before} -> ${out.held_count_after}; events: ${ev[0]}`;
  });

  await check('phone-sized screen shows the cluster', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    await phone.addCookies(await ctx.cookies());
    const p = await phone.newPage();
    await p.goto(cfg.url + '/ui/');
    await p.waitForFunction((n) => document.querySelectorAll('#members tbody tr').length === n, cfg.members.length);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(p, '10-phone');
    await phone.close();
    assert(overflow <= 1, 'page wider than the screen by ' + overflow + ' px');
    return 'no horizontal overflow';
  });

  await check('keyboard: tabs move with the arrow keys', async () => {
    await page.focus('#t-cluster');
    await page.keyboard.press('ArrowRight');
    const sel = await page.evaluate(() => document.activeElement.id);
    assert(sel === 't-charts' && !(await page.isHidden('#v-charts')), 'focused ' + sel);
    return 'Cluster -> Charts';
  });

  await check('read-only user sees but cannot operate', async () => {
    const ro = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await ro.newPage();
    await login(p, cfg.viewer[0], cfg.viewer[1]);
    await p.waitForURL('**/ui/');
    await p.waitForFunction((n) => document.querySelectorAll('#members tbody tr').length === n, cfg.members.length);
    await p.click('#t-ops');
    await p.waitForFunction(() => document.querySelector('#who').textContent.includes('readonly'));
    const enabled = await p.$$eval('.op-btn', (bs) => bs.filter((b) => !b.disabled).map((b) => b.id));
    assert(enabled.length === 0, 'enabled buttons: ' + enabled);
    const r = await pageFetch(p, 'POST', '/switchover', { leader: cfg.candidate, candidate: cfg.leader }, 'cookie');
    const c = await pageFetch(p, 'PATCH', '/config', { pause: true }, 'cookie');
    assert(r.status === 403 && c.status === 403, `statuses ${r.status} ${c.status}`);
    await shot(p, '11-readonly');
    await ro.close();
    return 'all operation buttons disabled; POST /switchover and PATCH /config with its CSRF token: 403';
  });

  await check('migration: progress while it runs, then done, never the password', async () => {
    const mc = cfg.migrate;
    await page.click('#t-cluster');
    const newest = async () => {
      const r = await apiGet(page, cfg.url + '/migrations?limit=1');
      assert(r.status() === 200, 'GET /migrations ' + r.status());
      const text = await r.text();
      assert(!text.includes(mc.secret), 'the password is in GET /migrations');
      return JSON.parse(text).migrations[0] || null;
    };
    const before = await newest();
    const child = spawn(mc.argv[0], mc.argv.slice(1), { uid: mc.uid, gid: mc.gid, env: mc.env, cwd: mc.cwd,
      stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '', exit = null;
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const exited = new Promise((r) => {
      child.on('exit', (code, sig) => { exit = { code, sig }; r(); });
      child.on('error', (e) => { exit = { error: e.code || String(e) }; r(); }); // e.g. not executable
    });
    let stopped = false, running;
    try {
      // Freeze the job (SIGSTOP: its process stays alive) once it has copied something (or, on a
      // machine too fast for a progress sample of the dump, as the restore starts), so that the
      // page shows it running however fast this machine is; SIGCONT lets it finish.
      const t0 = Date.now();
      let job = null;
      while (!exit && Date.now() - t0 < 60000) {
        job = await newest();
        const moved = job && (job.bytes_done > 0 || job.tables_done > 0 || job.phase !== 'dump');
        if (job && job.id !== (before && before.id) && ['dump', 'restore', 'verify'].includes(job.phase) && moved) {
          process.kill(child.pid, 'SIGSTOP');
          stopped = true;
          break;
        }
        await sleep(20);
      }
      assert(stopped, 'the job never reached a data phase: ' + JSON.stringify(job) + ' ' + output.slice(-400));
      await page.waitForFunction((id) => {
        const m = document.querySelector('#mig');
        return m && !m.hidden && m.dataset.id === String(id) && /running/.test(document.querySelector('#mig-state').textContent);
      }, job.id, { timeout: 15000 });
      await sleep(1500); // a second poll: rate and time left from two updates
      running = await page.evaluate(() => ({
        state: document.querySelector('#mig').dataset.state,
        pill: document.querySelector('#mig-state').textContent,
        bars: Array.from(document.querySelectorAll('#mig [role=progressbar]')).filter((b) => !b.closest('[hidden]'))
          .map((b) => ({ id: b.id, now: b.getAttribute('aria-valuenow'), text: b.getAttribute('aria-valuetext'),
            label: document.getElementById(b.getAttribute('aria-labelledby')).textContent })),
        step: (document.querySelector('#mig-steps [aria-current=step]') || {}).textContent,
        kv: Object.fromEntries(Array.from(document.querySelectorAll('#mig-kv dd')).map((d) => [d.dataset.k, d.textContent])),
      }));
      await shot(page, '13-migration-running');
      assert(['dump', 'restore', 'verify'].includes(running.state), 'state ' + running.state);
      assert(running.step === running.state, 'current step ' + running.step);
      assert(running.bars.length >= 1 && running.bars.every((b) => /^\d+$/.test(b.now) && b.label),
        'progress bars ' + JSON.stringify(running.bars));
      assert('Rate' in running.kv && 'Time left' in running.kv, 'details ' + JSON.stringify(running.kv));
    } finally {
      if (stopped) process.kill(child.pid, 'SIGCONT');
      if (!exit) {
        const timer = setTimeout(() => { if (!exit) child.kill('SIGKILL'); }, 150000);
        await exited;
        clearTimeout(timer);
      }
    }
    assert(exit.code === 0, `pgwarden migrate exit ${JSON.stringify(exit)}: ${output.slice(-600)}`);
    await page.waitForFunction(() => {
      const m = document.querySelector('#mig');
      return m && m.dataset.state === 'done';
    }, null, { timeout: 20000 });
    const done = await page.evaluate(() => ({
      result: document.querySelector('#mig-result').textContent,
      bars: Array.from(document.querySelectorAll('#mig [role=progressbar]')).filter((b) => !b.closest('[hidden]'))
        .map((b) => b.getAttribute('aria-valuenow')),
      text: document.body.innerText,
      rate: (document.querySelector('#mig-kv dd[data-k="Average rate"]') || {}).textContent,
    }));
    await page.locator('#mig').scrollIntoViewIfNeeded();
    await shot(page, '14-migration-done');
    assert(/^Done in .*verified 3 tables/.test(done.result) && done.result.includes(mc.target), 'result: ' + done.result);
    assert(done.bars.length >= 1 && done.bars.every((v) => v === '100'), 'bars at the end ' + done.bars);
    assert(!done.text.includes(mc.secret) && !output.includes(mc.secret), 'the password is shown');
    const job = await newest();
    assert(job.state === 'done' && job.finished && !job.running && job.verification && job.verification.ok,
      'GET /migrations: ' + JSON.stringify(job).slice(0, 300));
    assert(/\/s$/.test(done.rate || ''), 'average rate ' + done.rate);
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    await phone.addCookies(await ctx.cookies());
    const pp = await phone.newPage();
    await pp.goto(cfg.url + '/ui/');
    await pp.waitForFunction(() => (document.querySelector('#mig') || {}).dataset.state === 'done');
    const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await pp.locator('#mig').screenshot({ path: `${cfg.shots}/15-migration-phone.png` });
    await phone.close();
    assert(overflow <= 1, 'phone: page wider than the screen by ' + overflow + ' px');
    out.migration = { id: job.id, elapsed_ms: job.elapsed_ms, bytes: job.bytes_total, running_seen: running };
    return `running seen in ${running.state} (${running.bars.map((b) => b.label + ' ' + b.now + '%').join(', ')}, ` +
      `rate ${running.kv.Rate}, left ${running.kv['Time left']}); ${done.result} Average rate ${done.rate}.`;
  });

  await check('migration rows of other kinds: an online job streaming detached, an interrupted one', async () => {
    const mc = cfg.migrate;
    // Written to the node's store as the postgres user (what `pgwarden migrate` would leave): an
    // online job whose process has exited (a reaped child's pid) while its replication streams.
    const gone = spawnSync('/bin/true', [], { uid: mc.uid, gid: mc.gid }).pid;
    const write = (sql) => {
      const r = spawnSync('/usr/bin/python3', ['-c', 'import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=10)\n' +
        'c.execute(sys.argv[2])\nc.commit()', mc.db, sql], { uid: mc.uid, gid: mc.gid, env: mc.env, encoding: 'utf8' });
      assert(r.status === 0, 'sqlite write: ' + r.stderr);
    };
    const now = Date.now();
    write(`INSERT INTO migrations (started_ms, updated_ms, pid, mode, source, target_db, state, bytes_done,
      bytes_total, tables_done, tables_total, lag_bytes, repl_name) VALUES (${now - 90000}, ${now - 2000}, ${gone},
      'online', 'postgres://app@heroku.example.com/shop?sslmode=require', 'shop', 'streaming', 0, 0, 4, 4,
      12345678, 'pgwarden_mig_9')`);
    await page.waitForFunction(() => (document.querySelector('#mig') || {}).dataset.state === 'streaming', null,
      { timeout: 20000 });
    const online = await page.evaluate(() => ({
      pill: document.querySelector('#mig-state').textContent,
      lag: (document.querySelector('#mig-kv dd[data-k="Replication lag"]') || {}).textContent,
      step: (document.querySelector('#mig-steps [aria-current=step]') || {}).textContent,
      result: document.querySelector('#mig-result').textContent,
    }));
    await page.locator('#mig').screenshot({ path: `${cfg.shots}/16-migration-online-detached.png` });
    assert(online.pill === 'streaming · detached', 'pill ' + online.pill);
    assert(online.lag === '12 MiB', 'lag ' + online.lag);
    assert(online.step === 'streaming', 'step ' + online.step);
    assert(/pgwarden migrate cutover --id \d+/.test(online.result), 'result ' + online.result);
    write(`INSERT INTO migrations (started_ms, updated_ms, pid, mode, source, target_db, state, bytes_done,
      bytes_total, tables_done, tables_total) VALUES (${now - 60000}, ${now - 30000}, ${gone}, 'dump',
      'postgres://app@heroku.example.com/shop', 'shop2', 'restore', 5000000, 20000000, 1, 4)`);
    await page.waitForFunction(() => (document.querySelector('#mig') || {}).dataset.state === 'interrupted', null,
      { timeout: 20000 });
    const dead = await page.evaluate(() => ({
      result: document.querySelector('#mig-result').textContent,
      bar: document.querySelector('#mig-bytes').getAttribute('aria-valuenow'),
    }));
    await page.locator('#mig').screenshot({ path: `${cfg.shots}/17-migration-interrupted.png` });
    assert(/^Interrupted: .*during restore/.test(dead.result), 'result ' + dead.result);
    assert(dead.bar === '25', 'bar ' + dead.bar);
    return `online: ${online.pill}, lag ${online.lag}; dump: ${dead.result.slice(0, 60)}…`;
  });

  await check('a member being copied shows how far the copy is', async () => {
    // this node is a replica: reinitialize it, and hold its copy (SIGSTOP) while the page looks
    // (the answer may come only once the copy has begun: look for it meanwhile)
    const asked = pageFetch(page, 'POST', '/reinitialize', { force: true }, 'cookie');
    let main = null;
    for (const t0 = Date.now(); !main && Date.now() - t0 < 60000;) {
      main = copyUnder(cfg.clone.pid);
      if (!main) await sleep(5);
    }
    assert(main, 'no pg_basebackup copying and streaming under the node');
    process.kill(main, 'SIGSTOP');
    const r = await asked;
    assert(r.status === 200, `POST /reinitialize ${r.status} ${r.text}`);
    let shown;
    try {
      await page.click('#t-cluster');
      const h = await page.waitForFunction((n) => {
        const e = document.querySelector(`#members tr[data-member="${n}"] .clone`);
        return e && /^ \d+% of \d/.test(e.textContent) ? e.textContent : null;
      }, cfg.node, { timeout: 20000 });
      shown = await h.jsonValue();
      await shot(page, '13-clone-progress');
    } finally {
      process.kill(main, 'SIGCONT');
    }
    try {
      await page.waitForFunction((n) => {
        const tr = document.querySelector(`#members tr[data-member="${n}"]`);
        const pill = tr && tr.querySelector('td:nth-child(3) .pill');
        return pill && pill.textContent === 'running' && !tr.querySelector('.clone');
      }, cfg.node, { timeout: 120000 });
    } catch (e) {
      const row = await page.$eval(`#members tr[data-member="${cfg.node}"]`, (tr) => tr.textContent).catch(() => '?');
      const st = await pageFetch(page, 'GET', '/ui/api/state', undefined, null);
      throw new Error(`${e.message}; row: ${row}; state: ${st.status} ${st.text.slice(0, 1500)}`);
    }
    return `${cfg.node}: creating replica${shown}, then running`;
  });

  await check('logout ends the session', async () => {
    await page.click('#logout');
    await page.waitForURL('**/ui/login');
    const r = await pageFetch(page, 'GET', '/ui/api/state', undefined, null);
    assert(r.status === 401, 'state after logout ' + r.status);
    return 'state 401 after logout';
  });

  await check('no script errors in the console', async () => {
    const real = consoleErrors.filter((e) => !/status of 40[13]/.test(e));
    assert(real.length === 0, real.join(' | '));
    return `${consoleErrors.length} expected 401/403 messages`;
  });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
