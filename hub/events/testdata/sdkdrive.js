// Drives the hub's JavaScript SDK (loaded from the hub itself) against a live hub whose test
// handler injects faults on request (/_control/...). Prints a JSON summary for sdk_test.go.
"use strict";
const vm = require("vm");
const hub = process.env.HUB;

function storage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}
const control = (what) => fetch(hub + "/_control/" + what).then((r) => r.text());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function drained(kf, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (kf.queue().length === 0 && !kf.sending) return true;
    await sleep(10);
  }
  return false;
}

(async () => {
  const src = await (await fetch(hub + "/sdk/kf-events.js")).text();
  vm.runInThisContext(src);
  const out = { posts: 0, rejectedFields: [] };
  // The longest run of digits in the IDs the SDK made up (events, session, install).
  out.maxDigitRun = 0;
  const runs = (s) => { for (const m of String(s).match(/[0-9]+/g) || []) out.maxDigitRun = Math.max(out.maxDigitRun, m.length); };
  const counting = (url, req) => {
    out.posts++;
    for (const e of JSON.parse(req.body).events) { runs(e.id); runs(e.session); runs(e.anonymousId); }
    return null;
  };
  const store = storage();
  const make = () => {
    const kf = new KFEvents({
      endpoint: hub + "/api/v1/events", clientId: "mini-program", storage: store, batchSize: 50,
      flushInterval: 10, baseBackoff: 20, maxBackoff: 200, defaults: { region: "440305" },
      onReject: (e, fields) => out.rejectedFields.push(...fields),
    });
    const send = kf.transport;
    kf.transport = (url, req) => { counting(url, req); return send(url, req); };
    return kf;
  };
  let kf = make();

  // 1. Batching: 120 events go in three posts.
  for (let i = 0; i < 120; i++) kf.track("view", { service: "hukou.transfer", props: { n: i } });
  if (!(await drained(kf, 10000))) throw new Error("batching: not drained");
  out.batchPosts = out.posts;

  // 2. 429 twice, with Retry-After: the SDK waits and delivers.
  await control("429?n=2");
  for (let i = 0; i < 10; i++) kf.track("start", { service: "hukou.transfer" });
  const t0 = Date.now();
  if (!(await drained(kf, 15000))) throw new Error("429: not drained");
  out.waited429 = Date.now() - t0;

  // 3. The answer is lost after the commit: the SDK resends, the hub counts duplicates.
  await control("drop?n=1");
  for (let i = 0; i < 5; i++) kf.track("submit", { service: "hukou.transfer" });
  if (!(await drained(kf, 10000))) throw new Error("drop: not drained");

  // 4. Offline: nothing reaches the hub; the events wait in storage; the page reloads (a new
  // SDK on the same storage) when the hub is back, and they go.
  await control("down?on=1");
  for (let i = 0; i < 7; i++) kf.track("complete", { service: "hukou.transfer" });
  await kf.flush();
  await sleep(100);
  out.queuedOffline = kf.queue().length;
  out.storedOffline = JSON.parse(store.getItem("kf-events:queue")).length;
  // The old page is gone: its timers with it.
  if (kf.timer !== null) kf.clearTimeout(kf.timer);
  kf.schedule = () => {};
  const before = kf.stats;
  await control("down?on=0");
  kf = make();
  if (!(await drained(kf, 10000))) throw new Error("reload: not drained");

  // 5. An ID number in a property: refused, dropped, reported.
  kf.track("search", { props: { query: "11010519491231002X", results: "0" } });
  kf.track("search", { props: { query: "dog licence", results: "0" } });
  if (!(await drained(kf, 10000))) throw new Error("canary: not drained");

  out.stats = {};
  for (const k of Object.keys(kf.stats)) out.stats[k] = kf.stats[k] + before[k];
  out.anonymousId = kf.anonymousId;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e.stack || e); process.exit(1); });
