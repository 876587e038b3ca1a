// The kiosk shell: screens for the citizen, the agent's shell API (/shell/api/) for the session,
// the local device API (WebSocket, XFS4IoT-shaped) for the card reader, printers and scanner.
// Nothing of the citizen is stored by this page: no cookies of its own, no localStorage, no
// IndexedDB; the masked name lives in one variable and goes with the page at the wipe.
'use strict';

const params = new URLSearchParams(location.search);
const ui = {
  lang: params.get('lang') === 'en' ? 'en' : 'zh-CN',
  care: params.get('care') === '1',
  view: 'attract',
  state: null,      // the agent's /shell/api/state
  session: null,    // the session ID this page works for
  holder: '',       // masked name of the citizen (张*丰), for the greeting only
};
const $ = (sel) => document.querySelector(sel);
const T = (k, ...a) => { const v = I18N[ui.lang][k]; return typeof v === 'function' ? v(...a) : (v ?? k); };

// ---- the agent's shell API ----

async function api(method, path, body, raw) {
  const opts = { method, headers: { 'X-Kiosk-Shell': '1' }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.body = raw ? body : JSON.stringify(body);
    opts.headers['Content-Type'] = raw ? 'application/pdf' : 'application/json';
  }
  const r = await fetch('/shell/api/' + path, opts);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) {}
    throw new Error(msg);
  }
  return r.headers.get('Content-Type')?.startsWith('application/json') ? r.json() : r.arrayBuffer();
}

// ---- the local device API ----

const dev = {
  ws: null, next: 1, pending: new Map(),
  open() {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/xfs4iot/v1.0/kiosk`);
      ws.onopen = () => { this.ws = ws; resolve(); };
      ws.onmessage = (m) => this.receive(JSON.parse(m.data));
      ws.onclose = () => {
        this.ws = null;
        for (const p of this.pending.values()) p.done({ header: { completionCode: 'canceled', errorDescription: 'connection closed' }, payload: {} });
        this.pending.clear();
        setTimeout(() => this.open(), 1000);
      };
      ws.onerror = () => resolve();
    });
  },
  receive(m) {
    const h = m.header;
    if (h.type === 'unsolicited') return;
    const p = this.pending.get(h.requestId);
    if (!p) return;
    if (h.type === 'event') p.onEvent(h.name, m.payload);
    if (h.type === 'acknowledge' && h.status) { this.pending.delete(h.requestId); p.done({ header: { completionCode: h.status, errorDescription: h.errorDescription }, payload: {} }); }
    if (h.type === 'completion') { this.pending.delete(h.requestId); p.done(m); }
  },
  // call sends a command and resolves with its completion; onEvent gets its events.
  async call(name, payload, timeout, onEvent) {
    if (!this.ws) await this.open();
    if (!this.ws) return { header: { completionCode: 'deviceNotReady', errorDescription: 'the agent does not answer' }, payload: {} };
    const requestId = this.next++;
    return new Promise((done) => {
      this.pending.set(requestId, { done, onEvent: onEvent || (() => {}) });
      this.ws.send(JSON.stringify({ header: { name, requestId, type: 'command', version: '1.0', timeout }, payload }));
    });
  },
  cancelAll() { if (this.ws) this.call('Common.Cancel', {}, 5000); },
};

// ---- rendering ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick') e.addEventListener('click', v);
    else if (v !== false && v !== undefined) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : document.createTextNode(String(k)));
  return e;
}

function button(id, text, onclick, cls) {
  return el('button', { id, class: cls || 'primary', onclick }, text);
}

function chrome() {
  document.documentElement.lang = ui.lang;
  document.documentElement.classList.toggle('care', ui.care);
  document.title = T('title');
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = T(e.dataset.t);
  $('#care').textContent = ui.care ? T('careOn') : T('careSwitch');
  $('#care').setAttribute('aria-pressed', String(ui.care));
  $('#logout').hidden = !ui.session;
  $('#speak').hidden = !(ui.state && ui.state.voice.available);
  const off = $('#offline');
  const st = ui.state;
  if (st && !st.hub.enrolled) { off.hidden = false; off.textContent = T('notEnrolled'); }
  else if (st && !st.hub.reachable) {
    off.hidden = false;
    off.textContent = T('offline', ['un_idcard', 'un_qr', 'un_cases'].map((k) => T(k)).join(ui.lang === 'en' ? ', ' : '、'));
  } else off.hidden = true;
}

function show(view, ...content) {
  ui.view = view;
  const s = $('#screen');
  s.replaceChildren(...content);
  s.dataset.view = view;
  chrome();
  speak(view);
}

// speak plays a screen's voice prompt: by itself in the elderly mode, or when asked.
function speak(prompt, asked) {
  if (!(ui.care || asked) || !ui.state || !ui.state.voice.available) return;
  const a = $('#voice');
  a.src = `/shell/voice/${ui.lang}/${prompt}.wav`;
  a.play().catch(() => {});
}

function unavailable(what) { return ui.state && ui.state.unavailable.includes(what); }

// ---- screens ----

function attract() {
  ui.holder = '';
  const cardOK = !unavailable('idcard-login'), qrOK = !unavailable('qr-login');
  show('attract',
    el('h2', { class: 'big' }, T('welcome')),
    el('p', {}, T('chooseLogin')),
    el('div', { class: 'choices' },
      button('login-card', T('loginCard'), loginCard, cardOK ? 'primary' : 'primary off'),
      ui.care ? null : button('login-qr', T('loginQR'), loginQR, qrOK ? 'primary' : 'primary off'),
      button('guest', T('guest'), guest, 'secondary')),
    el('p', { class: 'note' }, T('guestNote')),
    ui.care ? null : button('bind-qr', T('bindQR'), () => loginQR(true), qrOK && cardOK ? 'secondary' : 'secondary off'));
  for (const [id, ok] of [['#login-card', cardOK], ['#login-qr', qrOK], ['#bind-qr', qrOK && cardOK]]) if ($(id)) $(id).disabled = !ok;
}

// loginCard logs in with the card; after a QR code approved for real-name binding (bind), the
// agent's login of that card binds it to the citizen's account.
async function loginCard(bind) {
  show('card', el('h2', { class: 'big' }, T(bind === true ? 'bindCardPrompt' : 'cardPrompt')), el('p', { id: 'card-status' }, T('cardWaiting')),
    button('cancel', T('cancel'), () => { dev.cancelAll(); attract(); }, 'secondary'));
  const r = await dev.call('Login.IdCard', {}, 60000, () => {});
  if (ui.view !== 'card') return;
  const h = r.header, p = r.payload || {};
  if (h.completionCode === 'success') {
    ui.holder = p.holder ? p.holder.name : '';
    await refresh();
    home();
    return;
  }
  let msg = T('loginFailed', h.errorDescription || h.completionCode);
  if (p.errorCode === 'hubUnavailable') msg = T('hubDown');
  if (h.completionCode === 'userError') msg = T('cardNotRead');
  if (h.completionCode === 'canceled' || h.completionCode === 'timeOut') { attract(); return; }
  $('#card-status').textContent = msg;
  $('#card-status').className = 'error';
}

async function loginQR(bind) {
  let q;
  bind = bind === true;
  try { q = await api('POST', 'login/qr' + (bind ? '?purpose=bind' : '')); } catch (e) { show('qr', el('p', { class: 'error' }, T('loginFailed', e.message)), button('cancel', T('cancel'), attract, 'secondary')); return; }
  show('qr', el('h2', { class: 'big' }, T(bind ? 'bindQRPrompt' : 'qrPrompt')),
    el('img', { id: 'qr-code', alt: 'QR', src: 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(q.svg) }),
    el('p', {}, T('qrCode', q.userCode)),
    el('p', { id: 'qr-user-code', class: 'code' }, q.userCode),
    el('p', { id: 'qr-uri', class: 'note' }, q.verificationUri),
    el('p', { id: 'qr-status' }),
    button('cancel', T('cancel'), () => { api('DELETE', 'login/qr'); attract(); }, 'secondary'));
}

async function guest() {
  try { await api('POST', 'session/guest'); } catch (e) {
    show('attract', el('p', { id: 'guest-status', class: 'error' }, ui.state.updating ? T('updating') : e.message), backButton(attract));
    return;
  }
  await refresh();
  home();
}

async function home() {
  const s = ui.state.session;
  const greet = s && s.acr !== 'guest' ? T('hello', ui.holder) : T('helloGuest');
  let svcs = [];
  try { svcs = (await api('GET', 'services')).services; } catch (e) {}
  const tiles = svcs.filter((v) => !ui.care || v.available).map((v) => {
    // An app of the catalog opens where it is served (an installed kiosk bundle, a web link).
    const b = el('button', { id: (v.app ? 'app-' : 'svc-') + v.id, class: 'tile', onclick: () => v.app ? location.assign(v.app.url) : open(v.id) },
      el('span', { class: 'tile-name' }, v.app ? v.app.name : T('svc_' + v.id)),
      v.available ? null : el('span', { class: 'tile-note' }, T('reason_' + v.reason)));
    b.disabled = !v.available;
    return b;
  });
  let recs = [];
  if (s && s.acr !== 'guest') try { recs = (await api('GET', 'recommendations')).recommendations; } catch (e) {}
  show('home', el('h2', { id: 'greeting', class: 'big' }, greet), el('p', {}, T('services')), el('div', { class: 'tiles' }, tiles),
    ...(recs.length ? [el('h3', {}, T('forYou')), el('ul', { id: 'recommendations' }, recs.map((r) => el('li', {}, I18N[ui.lang]['rec_' + r.service] ?? r.service))),
      button('rec-optout', T('optOut'), optOut, 'secondary')] : []));
}

// optOut tells the hub she wants no more recommendations (on every channel), then redraws home.
async function optOut() {
  try { await api('PUT', 'recommendations/opt-out'); } catch (e) { return; }
  home();
}

function open(id) { ({ print, scan, cases, guide })[id](); }

function backButton(to) { return button('back', T('back'), to || home, 'secondary'); }

async function print() {
  const list = await api('GET', 'materials');
  const rows = list.materials.map((m) => el('li', {},
    el('span', { class: 'doc' }, ui.lang === 'en' ? m.titleEn : m.title),
    button('print-' + m.id, T('printBtn'), () => printOne(m))));
  show('print', el('h2', { class: 'big' }, T('printTitle')), el('p', { class: 'demo' }, T('printNote')),
    el('ul', { class: 'docs' }, rows),
    el('div', { id: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', hidden: true },
      el('div', { id: 'progress-fill' })),
    el('p', { id: 'print-status', role: 'status' }), backButton());
}

function setProgress(pct) {
  const p = $('#progress');
  if (!p) return;
  p.hidden = false;
  p.setAttribute('aria-valuenow', String(Math.round(pct)));
  $('#progress-fill').style.width = pct + '%';
}

async function printOne(m) {
  const status = $('#print-status');
  for (const b of document.querySelectorAll('.docs button')) b.disabled = true;
  status.className = '';
  status.textContent = T('printing', 0, 0);
  setProgress(5);
  const pdf = new Uint8Array(await api('GET', 'materials/' + m.id));
  let bin = '';
  for (let i = 0; i < pdf.length; i += 0x8000) bin += String.fromCharCode.apply(null, pdf.subarray(i, i + 0x8000));
  let noMedia = false;
  const r = await dev.call('Printer.PrintNative', { data: btoa(bin), name: m.id }, 300000, (name, p) => {
    if (name === 'Printer.NoMediaEvent') { noMedia = true; status.className = 'error'; status.textContent = T('paperOut'); speak('paperout'); }
    if (name === 'Printer.JobProgressEvent' && !noMedia) {
      const pct = p.state === 'completed' ? 100 : p.totalPages ? 10 + 85 * p.pages / p.totalPages : (p.state === 'processing' ? 50 : 10);
      setProgress(pct);
      status.textContent = T('printing', p.pages, p.totalPages);
    }
    api('POST', 'activity').catch(() => {});
  });
  const h = r.header, p = r.payload || {};
  if (h.completionCode === 'success') {
    setProgress(100);
    status.textContent = T('printed');
    speak('printed');
    const when = new Date().toLocaleString(ui.lang);
    const rc = await dev.call('Printer.PrintReceipt', { lines: [T('title'), when, (ui.lang === 'en' ? m.titleEn : m.title), ...(m.pages ? [`${m.pages} p.`] : [])] }, 30000);
    if (rc.header.completionCode !== 'success') status.textContent += ' ' + T('receiptFailed');
  } else {
    status.className = 'error';
    status.textContent = p.errorCode === 'paperOut' || noMedia ? T('paperOut') : T('printFailed', h.errorDescription || h.completionCode);
    if (p.errorCode === 'paperOut' && !noMedia) speak('paperout');
  }
  for (const b of document.querySelectorAll('.docs button')) b.disabled = false;
}

async function scan() {
  show('scan', el('h2', { class: 'big' }, T('scanTitle')), el('p', { class: 'demo' }, T('scanNote')),
    button('scan-start', T('scanBtn'), scanOne), el('p', { id: 'scan-status', role: 'status' }), el('ul', { id: 'scans' }), backButton());
}

async function scanOne() {
  const status = $('#scan-status');
  status.className = '';
  status.textContent = T('scanning');
  $('#scan-start').disabled = true;
  const r = await dev.call('Scanner.Scan', { resolution: 150, mode: 'gray' }, 120000);
  $('#scan-start').disabled = false;
  if (r.header.completionCode !== 'success') {
    status.className = 'error';
    status.textContent = T('scanFailed', r.header.errorDescription || r.header.completionCode);
    return;
  }
  const bin = atob(r.payload.pdf), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const sc = await api('POST', 'scans', bytes, true);
  status.textContent = T('scanned', r.payload.pages, Math.ceil(sc.bytes / 1024));
  $('#scans').append(el('li', {}, `${sc.id}: ${T('attach_' + sc.attach)}`));
}

async function cases() {
  const c = await api('GET', 'cases');
  show('cases', el('h2', { class: 'big' }, T('casesTitle')), ...(c.demo ? [el('p', { class: 'demo' }, T('demo'))] : []),
    ...c.cases.map((k) => el('section', { class: 'case' }, el('h3', {}, ui.lang === 'en' ? k.titleEn : k.title),
      el('ol', { class: 'steps' }, k.steps.map((s) => el('li', { class: s.done ? 'done' : '' }, (s.done ? '✓ ' : '') + (ui.lang === 'en' ? s.nameEn : s.name)))))),
    backButton());
  if (!c.demo) watchCases(c.after);
}

// watchCases follows the citizen's case events (relayed by the agent from the hub) while the
// cases screen shows, and redraws it at each change; it reconnects after the last event seen.
let watching = null;
async function watchCases(after) {
  if (watching) return;
  watching = new AbortController();
  try {
    while (ui.view === 'cases') {
      try {
        const r = await fetch('/shell/api/case-events?after=' + after,
          { headers: { 'X-Kiosk-Shell': '1' }, credentials: 'same-origin', signal: watching.signal });
        if (!r.ok) return;
        const rd = r.body.getReader(), dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await rd.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const msg = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = msg.split('\n').find((l) => l.startsWith('data: '));
            if (!data) continue;
            after = Math.max(after, JSON.parse(data.slice(6)).seq);
            watching.abort();
            watching = null;
            return ui.view === 'cases' ? cases() : undefined;
          }
        }
      } catch (e) {
        if (watching?.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  } finally {
    watching = null;
  }
}

async function guide() {
  const g = await api('GET', 'guides');
  show('guide', el('h2', { class: 'big' }, T('guideTitle')), ...(g.demo ? [el('p', { class: 'demo' }, T('demoGuide'))] : []),
    ...g.guides.map((x) => el('section', { class: 'guide' }, el('h3', {}, ui.lang === 'en' ? x.titleEn : x.title),
      el('ul', {}, (ui.lang === 'en' ? x.bodyEn : x.body).map((l) => el('li', {}, l))))),
    ui.session ? backButton() : button('back', T('cancel'), attract, 'secondary'));
}

// ---- the session: polling, activity, countdown, wipe ----

async function refresh() {
  let st;
  try { st = await api('GET', 'state'); } catch (e) { return; }
  const had = ui.session;
  ui.state = st;
  if (had && (!st.session || st.session.id !== had)) { wiped(); return; }
  ui.session = st.session ? st.session.id : null;
  if (!had && ui.session && (ui.view === 'qr' || ui.view === 'attract')) { home(); return; }
  if (ui.view === 'qr' && st.qr === 'tap-card') { loginCard(true); return; }
  if (ui.view === 'qr' && st.qr && st.qr !== 'pending' && $('#qr-status')) {
    $('#qr-status').textContent = st.qr === 'denied' ? T('qrDenied') : T('qrExpired');
    $('#qr-status').className = 'error';
  }
  countdown();
  chrome();
}

let countdownShown = false;
function countdown() {
  const s = ui.state && ui.state.session, box = $('#countdown');
  if (!s || s.remainingMs > s.warnMs) { box.hidden = true; countdownShown = false; return; }
  box.hidden = false;
  $('#countdown-text').textContent = T('countdown', Math.ceil(s.remainingMs / 1000));
  if (!countdownShown) { countdownShown = true; speak('countdown'); }
}

// wiped leaves the page: the agent has wiped the session; the next page clears the browser's
// cookies and storage of this origin, then opens the home page afresh.
function wiped() {
  ui.session = null;
  ui.holder = '';
  location.replace('/shell/wiped');
}

let lastActivity = 0;
function activity() {
  if (!ui.session || Date.now() - lastActivity < 2000) return;
  lastActivity = Date.now();
  api('POST', 'activity').then((st) => { ui.state = st; countdown(); }).catch(() => {});
}

function init() {
  document.addEventListener('pointerdown', activity, true);
  document.addEventListener('keydown', activity, true);
  $('#lang').addEventListener('click', () => { ui.lang = ui.lang === 'en' ? 'zh-CN' : 'en'; rerender(); });
  $('#care').addEventListener('click', () => { ui.care = !ui.care; rerender(); });
  $('#logout').addEventListener('click', async () => { await api('POST', 'session/end').catch(() => {}); wiped(); });
  $('#stay').addEventListener('click', () => { lastActivity = 0; activity(); });
  $('#speak').addEventListener('click', () => speak(ui.view, true));
  dev.open();
  refresh().then(() => (ui.session ? home() : attract()));
  setInterval(refresh, 1000);
}

function rerender() {
  ({ attract, home, print, scan, cases, guide })[ui.view]?.() ?? chrome();
}

init();
