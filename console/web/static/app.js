// Live updates for the fleet console. The page's live part (#live) is replaced by what the
// console sends as {"html": ...}: over a WebSocket to /live, on which the console pushes an update
// as soon as the hub says a kiosk changed; without one (blocked, or lost), by fetching data-live
// (the page with ?live=1) every data-refresh milliseconds, while trying the WebSocket again.
// Forms stay outside #live, so typing is never interrupted. An update waits while a finger or
// button is down: replacing the link under it between press and release would lose the tap.
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live || !window.fetch) return;
  var body = document.body, status = document.getElementById('live-status');
  var every = parseInt(body.dataset.refresh, 10) || 5000, busy = false, pressed = 0, pending = null;
  var socket = null, retry = 1000;
  function held() { return pressed && Date.now() - pressed < 10000; } // a lost pointerup ends it
  document.addEventListener('pointerdown', function () { pressed = Date.now(); }, true);
  function release() {
    setTimeout(function () { // after the click it makes
      pressed = 0;
      if (pending) { var j = pending; pending = null; show(j); }
    }, 0);
  }
  document.addEventListener('pointerup', release, true);
  document.addEventListener('pointercancel', release, true);
  function lost(msg) {
    live.classList.add('stale');
    status.className = 'lost';
    status.textContent = body.dataset.lost + ' ' + (msg || '');
  }
  function show(j) {
    if (j.error && !j.html) { lost(j.error); return; }
    if (held()) { pending = j; return; }
    live.innerHTML = j.html;
    live.classList.remove('stale');
    status.className = socket ? 'ws' : '';
    status.textContent = body.dataset.updated + ' ' + new Date().toLocaleTimeString();
    if (j.error) { status.className = 'lost'; status.textContent += ' · ' + j.error; }
  }
  function tick() {
    if (socket || busy || document.hidden || held()) return;
    busy = true;
    fetch(body.dataset.live, {headers: {Accept: 'application/json'}, credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok && !j.html) throw new Error(j.error || r.status);
          show(j);
        });
      })
      .catch(function (e) { lost(e && e.message); })
      .then(function () { busy = false; });
  }
  function connect() {
    if (!window.WebSocket || socket) return;
    var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
      '/live?page=' + encodeURIComponent(body.dataset.live));
    ws.onopen = function () { socket = ws; retry = 1000; };
    ws.onmessage = function (m) { try { show(JSON.parse(m.data)); } catch (e) { lost(e.message); } };
    ws.onclose = function (e) {
      if (socket === ws) socket = null;
      if (e.code === 1008) return; // logged out: the message said so; polling shows the login
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 60000);
    };
  }
  connect();
  setInterval(tick, every);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) tick(); });
})();
