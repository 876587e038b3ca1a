// Passkeys on the identity provider's pages (Web Authentication Level 3): logging in (the login
// page's #passkey block) and adding one (the account page's #passkey-add block). The server
// makes the options and checks the answers; this only carries them to and from the
// authenticator, with base64url for binary fields. No framework, no third-party code.
(function () {
  'use strict';

  function enc(buf) {
    let s = '';
    for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function dec(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  async function post(url, body, json) {
    const r = await fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': json ? 'application/json' : 'application/x-www-form-urlencoded'},
      body: json ? JSON.stringify(body) : new URLSearchParams(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
    return data;
  }

  function say(box, msg) {
    const el = box.querySelector('[role=status]');
    if (el) el.textContent = msg;
  }

  function fail(box, e) {
    say(box, e && (e.name === 'NotAllowedError' || e.name === 'AbortError') ? box.dataset.cancelled : String(e && e.message || e));
  }

  async function login(box) {
    const lang = encodeURIComponent(box.dataset.lang || 'zh');
    say(box, box.dataset.waiting);
    const begin = await post(box.dataset.begin + '?lang=' + lang,
      {id: box.dataset.id, next: box.dataset.next, csrf: box.dataset.csrf});
    const pk = begin.publicKey;
    pk.challenge = dec(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = dec(c.id); });
    const cred = await navigator.credentials.get({publicKey: pk});
    const r = cred.response;
    const done = await post(box.dataset.finish + '?ceremony=' + encodeURIComponent(begin.ceremony) + '&lang=' + lang, {
      id: cred.id, rawId: enc(cred.rawId), type: cred.type,
      response: {
        authenticatorData: enc(r.authenticatorData), clientDataJSON: enc(r.clientDataJSON),
        signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : undefined,
      },
    }, true);
    location.assign(done.next);
  }

  async function register(box) {
    const lang = encodeURIComponent(box.dataset.lang || 'zh');
    const name = document.getElementById('passkey-name');
    say(box, box.dataset.waiting);
    const begin = await post(box.dataset.begin + '?lang=' + lang, {csrf: box.dataset.csrf, name: name ? name.value : ''});
    const pk = begin.publicKey;
    pk.challenge = dec(pk.challenge);
    pk.user.id = dec(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = dec(c.id); });
    const cred = await navigator.credentials.create({publicKey: pk});
    const r = cred.response;
    await post(box.dataset.finish + '?ceremony=' + encodeURIComponent(begin.ceremony) + '&lang=' + lang, {
      id: cred.id, rawId: enc(cred.rawId), type: cred.type,
      response: {
        attestationObject: enc(r.attestationObject), clientDataJSON: enc(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : undefined,
      },
    }, true);
    location.reload();
  }

  function wire(boxID, buttonID, run) {
    const box = document.getElementById(boxID);
    const button = document.getElementById(buttonID);
    if (!box || !button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      say(box, box.dataset.unsupported);
      return;
    }
    button.addEventListener('click', async () => {
      button.disabled = true;
      try { await run(box); } catch (e) { fail(box, e); } finally { button.disabled = false; }
    });
  }

  wire('passkey', 'passkey-login', login);
  wire('passkey-add', 'passkey-register', register);
})();
