// Live updates for the fleet console: every data-refresh milliseconds, fetch this page's data as
// JSON ({"html": ...}) from data-live (the page with ?live=1) and put it in #live. Forms stay
// outside #live, so typing is never interrupted. Paused while the tab is hidden, and while a
// finger or button is down: replacing the link under it between press and release would lose
// the tap (the click would go to #live, not the link).
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live || !window.fetch) return;
  var body = document.body, status = document.getElementById('live-status');
  var every = parseInt(body.dataset.refresh, 10) || 5000, busy = false, pressed = 0;
  function held() { return pressed && Date.now() - pressed < 10000; } // a lost pointerup ends it
  document.addEventListener('pointerdown', function () { pressed = Date.now(); }, true);
  function release() { setTimeout(function () { pressed = 0; }, 0); } // after the click it makes
  document.addEventListener('pointerup', release, true);
  document.addEventListener('pointercancel', release, true);
  function tick() {
    if (busy || document.hidden || held()) return;
    busy = true;
    fetch(body.dataset.live, {headers: {Accept: 'application/json'}, credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) throw new Error(j.error || r.status);
          if (held()) return; // the next tick brings it
          live.innerHTML = j.html;
          live.classList.remove('stale');
          status.className = '';
          status.textContent = body.dataset.updated + ' ' + new Date().toLocaleTimeString();
        });
      })
      .catch(function (e) {
        live.classList.add('stale');
        status.className = 'lost';
        status.textContent = body.dataset.lost + ' ' + (e && e.message ? e.message : '');
      })
      .then(function () { busy = false; });
  }
  setInterval(tick, every);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) tick(); });
})();
