/*
 * kf-events.js: the kioskfleet event SDK for web pages and mini-programs (no dependencies).
 *
 *   var kf = new KFEvents({endpoint: "https://hub.example.org/api/v1/events",
 *                          token: function () { return accessToken; },   // a citizen's, if logged in
 *                          clientId: "mini-program"});                    // public client, else
 *   kf.track("view", {service: "hukou.transfer", props: {page: "guide"}});
 *
 * Events are kept in an offline queue (localStorage, or the storage given) until the hub has
 * them durably: sent in batches (batchSize, or every flushInterval ms), resent with exponential
 * backoff and jitter (or the hub's Retry-After) after a 429, a 5xx or a network error, and
 * dropped only when the hub accepted them, counted them as duplicates (a resend: event IDs
 * never change) or refused them (onReject is told why). A page reload resends what is queued.
 * Mini-programs pass storage {getItem, setItem} over wx.getStorageSync/setStorageSync and a
 * transport over wx.request (see transport below).
 */
(function (root) {
  "use strict";

  var VERSION = 1;
  var TYPES = ["view", "search", "start", "submit", "complete", "print", "scan", "rate", "error", "login", "logout", "click"];

  // randomHex returns n random bytes in hex, a dot after every four: no run of more than eight
  // digits, so an ID never looks like a resident ID number (18 characters), which the hub refuses.
  function randomHex(n) {
    var b = new Uint8Array(n), s = "", i;
    var c = root.crypto || (typeof wx !== "undefined" && wx.getRandomValues && wx);
    if (c && c.getRandomValues) {
      c.getRandomValues(b);
    } else {
      for (i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
    }
    for (i = 0; i < n; i++) s += (i > 0 && i % 4 === 0 ? "." : "") + (b[i] < 16 ? "0" : "") + b[i].toString(16);
    return s;
  }

  function memoryStorage() {
    var m = {};
    return {
      getItem: function (k) { return Object.prototype.hasOwnProperty.call(m, k) ? m[k] : null; },
      setItem: function (k, v) { m[k] = String(v); }
    };
  }

  // fetchTransport posts with fetch; a transport resolves {status, retryAfter, body} or rejects
  // on a network error.
  function fetchTransport(url, req) {
    return root.fetch(url, {method: "POST", headers: req.headers, body: req.body}).then(function (res) {
      return res.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
        return {status: res.status, retryAfter: res.headers.get("Retry-After"), body: body};
      });
    });
  }

  function KFEvents(opts) {
    opts = opts || {};
    this.endpoint = opts.endpoint || "/api/v1/events";
    if (opts.channel) this.endpoint += (this.endpoint.indexOf("?") < 0 ? "?" : "&") + "channel=" + encodeURIComponent(opts.channel);
    this.token = opts.token || function () { return null; };
    this.clientId = opts.clientId || "";
    this.clientSecret = opts.clientSecret || ""; // only for a confidential client's server
    this.storage = opts.storage || (root.localStorage ? root.localStorage : memoryStorage());
    this.transport = opts.transport || fetchTransport;
    this.key = opts.storageKey || "kf-events";
    this.batchSize = opts.batchSize || 50;
    this.maxQueue = opts.maxQueue || 1000;
    this.flushInterval = opts.flushInterval || 5000;
    this.baseBackoff = opts.baseBackoff || 1000;
    this.maxBackoff = opts.maxBackoff || 60000;
    this.now = opts.now || function () { return Date.now(); };
    this.setTimeout = opts.setTimeout || function (f, ms) { return root.setTimeout(f, ms); };
    this.clearTimeout = opts.clearTimeout || function (t) { root.clearTimeout(t); };
    this.onReject = opts.onReject || function () {};
    this.defaults = opts.defaults || {}; // service, region for every event
    this.session = opts.session || "s-" + randomHex(8);
    this.anonymousId = this.storage.getItem(this.key + ":anon");
    if (!this.anonymousId) {
      this.anonymousId = "a-" + randomHex(12);
      this.storage.setItem(this.key + ":anon", this.anonymousId);
    }
    this.failures = 0;
    this.sending = null;
    this.timer = null;
    this.stats = {sent: 0, accepted: 0, duplicates: 0, rejected: 0, retries: 0};
    var self = this;
    if (root.addEventListener) {
      root.addEventListener("online", function () { self.flush(); });
    }
    if (this.queue().length > 0) this.schedule(0);
  }

  KFEvents.prototype.queue = function () {
    try {
      var q = JSON.parse(this.storage.getItem(this.key + ":queue") || "[]");
      return Array.isArray(q) ? q : [];
    } catch (e) {
      return [];
    }
  };

  KFEvents.prototype.save = function (q) {
    this.storage.setItem(this.key + ":queue", JSON.stringify(q));
  };

  // track queues an event: type is one of TYPES; fields may hold service, region and props (a
  // flat object of strings). It returns the event's ID.
  KFEvents.prototype.track = function (type, fields) {
    if (TYPES.indexOf(type) < 0) throw new Error("kf-events: unknown event type " + type);
    fields = fields || {};
    var e = {v: VERSION, id: "e-" + randomHex(16), type: type, ts: this.now(), session: this.session};
    var service = fields.service || this.defaults.service, region = fields.region || this.defaults.region;
    if (service) e.service = service;
    if (region) e.region = region;
    if (!this.token()) e.anonymousId = this.anonymousId;
    if (fields.props) {
      e.props = {};
      for (var k in fields.props) if (Object.prototype.hasOwnProperty.call(fields.props, k)) e.props[k] = String(fields.props[k]);
    }
    var q = this.queue();
    q.push(e);
    if (q.length > this.maxQueue) q.splice(0, q.length - this.maxQueue); // the oldest go first
    this.save(q);
    this.schedule(q.length >= this.batchSize ? 0 : this.flushInterval);
    return e.id;
  };

  KFEvents.prototype.schedule = function (ms) {
    if (this.timer !== null || this.sending) return;
    var self = this;
    this.timer = this.setTimeout(function () { self.timer = null; self.flush(); }, ms);
  };

  KFEvents.prototype.headers = function () {
    var h = {"Content-Type": "application/json"}, tok = this.token();
    if (tok) {
      h.Authorization = "Bearer " + tok;
    } else {
      h.Authorization = "Basic " + base64(this.clientId + ":" + this.clientSecret);
    }
    return h;
  };

  // flush sends one batch now (unless one is on its way) and resolves when it is answered; the
  // rest follows at once, failures after a backoff.
  KFEvents.prototype.flush = function () {
    if (this.sending) return this.sending;
    if (this.timer !== null) { this.clearTimeout(this.timer); this.timer = null; }
    var batch = this.queue().slice(0, this.batchSize);
    if (batch.length === 0) return Promise.resolve();
    var self = this;
    this.stats.sent += batch.length;
    var sending = this.transport(this.endpoint, {headers: this.headers(), body: JSON.stringify({events: batch})})
      .then(function (res) { self.sending = null; self.answered(batch, res); },
        function () { self.sending = null; self.retry(null); });
    this.sending = sending;
    return sending;
  };

  KFEvents.prototype.answered = function (batch, res) {
    var b = res.body || {};
    if (res.status === 200 || (res.status === 400 && b.error && b.error.fields)) {
      if (res.status === 200) {
        this.stats.accepted += b.accepted || 0;
        this.stats.duplicates += b.duplicates || 0;
        var rej = b.rejected || [];
        for (var i = 0; i < rej.length; i++) this.refused(batch[rej[i].index], rej[i].fields);
      } else {
        for (var j = 0; j < batch.length; j++) this.refused(batch[j], b.error.fields);
      }
      this.drop(batch);
      this.failures = 0;
      if (this.queue().length > 0) this.schedule(0);
      return;
    }
    if (res.status === 400 || res.status === 413) { // the batch itself is at fault: never resend it
      for (var k = 0; k < batch.length; k++) this.refused(batch[k], [b.error ? b.error.message : "status " + res.status]);
      this.drop(batch);
      return;
    }
    return this.retry(res.retryAfter); // 401/403 (a token to refresh), 429, 5xx
  };

  KFEvents.prototype.refused = function (e, fields) {
    this.stats.rejected++;
    try { this.onReject(e, fields); } catch (x) { /* the page's handler failed */ }
  };

  // drop removes the batch's events from the queue (events queued meanwhile stay).
  KFEvents.prototype.drop = function (batch) {
    var ids = {};
    for (var i = 0; i < batch.length; i++) if (batch[i]) ids[batch[i].id] = true;
    this.save(this.queue().filter(function (e) { return !ids[e.id]; }));
  };

  KFEvents.prototype.retry = function (retryAfter) {
    this.failures++;
    this.stats.retries++;
    var wait = Math.min(this.maxBackoff, this.baseBackoff * Math.pow(2, this.failures - 1));
    wait = wait / 2 + Math.random() * wait / 2; // jitter: a fleet of pages does not retry in step
    var ra = parseInt(retryAfter, 10);
    if (ra > 0) wait = Math.max(wait, ra * 1000);
    this.schedule(wait);
  };

  function base64(s) {
    var bytes = unescape(encodeURIComponent(s)), chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", out = "";
    for (var i = 0; i < bytes.length; i += 3) {
      var a = bytes.charCodeAt(i), b = bytes.charCodeAt(i + 1), c = bytes.charCodeAt(i + 2);
      out += chars[a >> 2] + chars[((a & 3) << 4) | (isNaN(b) ? 0 : b >> 4)] +
        (isNaN(b) ? "=" : chars[((b & 15) << 2) | (isNaN(c) ? 0 : c >> 6)]) + (isNaN(c) ? "=" : chars[c & 63]);
    }
    return out;
  }

  KFEvents.TYPES = TYPES;
  root.KFEvents = KFEvents;
  if (typeof module !== "undefined" && module.exports) module.exports = KFEvents;
})(typeof globalThis !== "undefined" ? globalThis : this);
