// The page after a wipe: the response's Clear-Site-Data header has cleared the origin's cookies and
// storage; this clears again what a page can reach, then opens the home page afresh.
(async () => {
  try { localStorage.clear(); } catch (e) {}
  try { sessionStorage.clear(); } catch (e) {}
  try {
    if (indexedDB.databases) {
      for (const db of await indexedDB.databases()) { if (db.name) indexedDB.deleteDatabase(db.name); }
    }
  } catch (e) {}
  try {
    if (window.caches) { for (const k of await caches.keys()) await caches.delete(k); }
  } catch (e) {}
  location.replace(document.body.dataset.home || '/shell/');
})();
