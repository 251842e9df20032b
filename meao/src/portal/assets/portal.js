// The mecplane operator portal. Plain script, no build step: it calls the MEAO's REST APIs
// (app_pkgm/v1, app_lcm/v1, inventory/v1) with the session cookie and, on every mutating call,
// the session's CSRF token. Pages reload what they show when the MEAO reports a change
// (server-sent events from /portal/events, fed by the event outbox of every replica), and an
// activity feed lists the recent changes.
'use strict';

const PKGM = '/app_pkgm/v1';
const LCM = '/app_lcm/v1';
const INVENTORY = '/inventory/v1';

const portal = {
  session: null, page: null, refresh: null, pending: null,
  // the live update stream, what waits for a resource's next change, the activity feed
  source: null, waiters: [], feed: [], feedEl: null, names: {}, timer: null,
};

// ---------- DOM ----------

/** Builds an element: attrs are properties/attributes (on* are listeners), children nodes or text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

const BADGES = {
  ok: ['ONBOARDED', 'ENABLED', 'COMPLETED', 'INSTANTIATED', 'STARTED', 'READY', 'IN_USE', 'healthy', 'in service', 'verified',
    'connected', 'INSTALLED', 'acknowledged'],
  info: ['CREATED', 'UPLOADING', 'PROCESSING', 'STARTING', 'ROLLING_BACK', 'INSTANTIATING', 'pending'],
  warn: ['FAILED_TEMP', 'DISABLED', 'STOPPED', 'disconnected', 'ROLLED_BACK', 'out of service', 'unsigned'],
  bad: ['ERROR', 'FAILED', 'unhealthy', 'onboarding failed', 'refused'],
};

function badge(text) {
  const kind = Object.keys(BADGES).find((k) => BADGES[k].includes(text)) || '';
  return h('span', { class: `badge ${kind}`, text: text || '-' });
}

function toast(message, bad) {
  const t = h('div', { class: bad ? 'bad' : '', text: message });
  document.getElementById('toast').append(t);
  setTimeout(() => t.remove(), 5000);
}

function field(label, input) {
  if (!input.id) input.id = `f-${Math.random().toString(36).slice(2)}`;
  return h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input);
}

function table(headers, rows, empty) {
  if (!rows.length) return h('div', { class: 'empty', text: empty });
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', text: x })))),
    h('tbody', {}, rows));
}

function when(t) {
  if (!t) return '-';
  const ms = typeof t === 'number' ? t : t.seconds * 1000 + Math.floor((t.nanoSeconds || 0) / 1e6);
  return new Date(ms).toLocaleString();
}

// ---------- API ----------

class ApiFailure extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Every problem of a ProblemDetails: a list when the API gives one, else its detail's parts. */
function problems(p) {
  if (!p) return [];
  for (const key of ['problems', 'invalidParams', 'errors']) {
    if (Array.isArray(p[key])) {
      return p[key].map((x) => (typeof x === 'string' ? x
        : [x.path || x.name || x.pointer, x.detail || x.reason || x.message].filter(Boolean).join(': ')));
    }
  }
  const d = p.detail || p.title || '';
  return d.startsWith('package rejected: ') ? d.slice(18).split('; ') : [d];
}

function errorBox(e, what) {
  const list = e instanceof ApiFailure ? problems(e.problem) : [String(e.message || e)];
  return h('div', { class: 'error', role: 'alert' },
    what ? h('strong', { text: what }) : null,
    list.length > 1 ? h('ul', {}, list.map((x) => h('li', { text: x })))
      : h('span', { text: `${what ? ': ' : ''}${list[0] || ''}` }));
}

async function api(method, path, body, headers) {
  const opts = { method, headers: { accept: 'application/json', ...(headers || {}) }, credentials: 'same-origin' };
  if (method !== 'GET' && portal.session) opts.headers['x-csrf-token'] = portal.session.csrfToken;
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (r.status === 401 && path !== '/portal/session') {
    signedOut('Your session ended: sign in again.');
    throw new ApiFailure(401, json);
  }
  if (!r.ok) throw new ApiFailure(r.status, json);
  return { json, location: r.headers.get('location') };
}

/** PUT of a file with upload progress (fetch has none). */
function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', path);
    x.setRequestHeader('content-type', 'application/zip');
    x.setRequestHeader('x-csrf-token', portal.session.csrfToken);
    x.upload.addEventListener('progress', (e) => e.lengthComputable && onProgress(e.loaded / e.total));
    x.addEventListener('load', () => {
      let json = null;
      try { json = x.responseText ? JSON.parse(x.responseText) : null; } catch (_) { json = null; }
      if (x.status >= 200 && x.status < 300) resolve(json);
      else reject(new ApiFailure(x.status, json));
    });
    x.addEventListener('error', () => reject(new Error('the upload was interrupted')));
    x.send(file);
  });
}

// ---------- session ----------

function mayOperate() { return portal.session && portal.session.mayOperate; }

function signedOut(message) {
  portal.session = null;
  stopRefreshing();
  disconnect();
  document.getElementById('top').hidden = true;
  showSignIn(message);
}

function showSignIn(message) {
  const user = h('input', { name: 'user', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div', {});
  if (message) clear(status, h('div', { class: 'error', role: 'alert', text: message }));
  const form = h('form', { class: 'card signin', 'aria-label': 'Sign in' },
    h('h1', { text: 'Sign in to mecplane' }),
    field('User name', user), field('Password', password), status,
    h('button', { type: 'submit', text: 'Sign in' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const { json } = await api('POST', '/portal/session', { user: user.value, password: password.value });
      signedIn(json);
    } catch (e) {
      clear(status, errorBox(e, 'Sign-in failed'));
      password.value = '';
      password.focus();
    }
  });
  clear(document.getElementById('main'), form);
  user.focus();
}

function signedIn(session) {
  portal.session = session;
  document.getElementById('top').hidden = false;
  document.getElementById('who-name').textContent = session.user;
  document.getElementById('who-role').textContent = session.role;
  connect();
  route();
}

async function signOut() {
  try { await api('DELETE', '/portal/session'); } catch (_) { /* the session is gone either way */ }
  signedOut('You signed out.');
}

// ---------- live updates ----------

/** Opens the session's live update stream; reconnects (and reloads the page) when it ends. */
function connect() {
  disconnect();
  const source = new EventSource('/portal/events');
  portal.source = source;
  source.addEventListener('open', () => {
    document.body.dataset.live = 'connected';
    // whatever changed while not connected
    refreshSoon();
    loadActivity();
  });
  source.addEventListener('change', (ev) => {
    let change;
    try { change = JSON.parse(ev.data); } catch (_) { return; }
    changed(change);
  });
  source.addEventListener('ended', (ev) => {
    source.close();
    document.body.dataset.live = 'reconnecting';
    if (ev.data === 'signed-out') {
      api('GET', '/portal/session').catch(() => {});
      return;
    }
    // dropped for falling behind, or the MEAO stops: connect again (maybe to another replica)
    setTimeout(() => portal.source === source && portal.session && connect(), ev.data === 'lagged' ? 100 : 1000);
  });
  source.addEventListener('error', () => {
    document.body.dataset.live = 'reconnecting';
    if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    // refused (the session ended, or too many streams): see whether still signed in, retry
    api('GET', '/portal/session').then(() => {
      setTimeout(() => portal.source === source && portal.session && connect(), 5000);
    }, () => {});
  });
}

function disconnect() {
  if (portal.source) portal.source.close();
  portal.source = null;
}

/** A change the MEAO reported: the page reloads, waiters wake, the feed shows it. */
function changed(change) {
  refreshSoon();
  for (const w of portal.waiters.filter((x) => x.kind === change.kind && x.id === change.resourceId)) w.wake();
  if (portal.feed.some((c) => c.id === change.id)) return;
  portal.feed.unshift(change);
  portal.feed.length = Math.min(portal.feed.length, FEED_SIZE);
  renderActivity();
}

/** Resolves at the next change of a resource, or after `ms` at the latest. */
function nextChange(kind, id, ms) {
  return new Promise((resolve) => {
    const w = { kind, id };
    const timer = setTimeout(() => w.wake(), ms);
    w.wake = () => {
      clearTimeout(timer);
      portal.waiters = portal.waiters.filter((x) => x !== w);
      resolve();
    };
    portal.waiters.push(w);
  });
}

/** Reloads the page's data once for a burst of changes (while the page is visible). */
function refreshSoon() {
  if (portal.pending) return;
  portal.pending = setTimeout(async () => {
    portal.pending = null;
    const refresh = portal.refresh;
    if (!refresh || document.hidden) return;
    try { await refresh(); } catch (e) { if (!(e instanceof ApiFailure && e.status === 401)) console.warn(e); }
    renderActivity(); // with the names the page now knows
  }, 150);
}

document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshSoon(); });

// ---------- activity feed ----------

const FEED_SIZE = 15;

async function loadActivity() {
  try {
    const { json } = await api('GET', `/portal/activity?limit=${FEED_SIZE}`);
    const known = new Set((json || []).map((c) => c.id));
    portal.feed = [...portal.feed.filter((c) => !known.has(c.id)), ...(json || [])]
      .sort((a, b) => b.time - a.time).slice(0, FEED_SIZE);
    renderActivity();
  } catch (e) { if (!(e instanceof ApiFailure && e.status === 401)) console.warn(e); }
}

function who(actor) {
  if (!actor) return 'MEAO';
  return actor.startsWith('portal:') ? actor.slice(7) : `${actor} (API)`;
}

/** What a change did, in words. */
function describe(c) {
  const d = c.data || {};
  const name = portal.names[c.resourceId] || c.resourceId.slice(0, 8);
  const gone = c.change === 'deleted';
  switch (c.kind) {
    case 'app_package':
      return [`Package ${name}`, gone ? 'deleted' : [d.onboardingState, d.operationalState].filter(Boolean).join(' · ')];
    case 'app_instance':
      return [`Instance ${name}`, gone ? 'deleted' : [d.instantiationState, d.operationalState, d.mecHostId ? `on ${d.mecHostId}` : null].filter(Boolean).join(' · ')];
    case 'lcm_op_occ': {
      const inst = d.appInstanceId ? portal.names[d.appInstanceId] || d.appInstanceId.slice(0, 8) : '';
      return [`${d.lcmOperation || 'Operation'} of ${inst}`, gone ? 'deleted' : d.operationState || ''];
    }
    case 'site':
      return [`Site ${c.resourceId}`, gone ? 'deleted' : d.healthy ? 'healthy' : 'unhealthy'];
    default:
      return [`${c.kind} ${name}`, c.change];
  }
}

function renderActivity() {
  const el = portal.feedEl;
  if (!el || !el.isConnected) return;
  clear(el, portal.feed.length ? h('ol', { class: 'activity' }, portal.feed.map((c) => {
    const [what, state] = describe(c);
    return h('li', { 'data-activity': c.kind, 'data-resource': c.resourceId },
      h('time', { class: 'muted', datetime: new Date(c.time).toISOString(), text: new Date(c.time).toLocaleTimeString() }),
      h('span', { class: 'who', text: who(c.actor) }),
      h('span', {}, h('strong', { text: what }), state ? ' ' : null, state ? state.split(' · ').map((x, i) => [i ? ' ' : null, badge(x)]) : null));
  })) : h('div', { class: 'empty', text: 'No change yet.' }));
}

/** The activity card every page ends with. */
function activityCard() {
  portal.feedEl = h('div', {});
  renderActivity();
  return h('section', { class: 'card', 'aria-label': 'Activity' }, h('h2', { text: 'Recent activity' }), portal.feedEl);
}

// ---------- pages ----------

function stopRefreshing() {
  clearTimeout(portal.pending);
  clearInterval(portal.timer);
  portal.pending = null;
  portal.timer = null;
  portal.refresh = null;
}

/**
 * Shows the page's data now and again whenever the MEAO reports a change; also every
 * `everyMs` for what the page shows that is no recorded change (a MEP link's state).
 */
function live(refresh, everyMs) {
  stopRefreshing();
  portal.refresh = refresh;
  refresh().then(renderActivity, (e) => { if (!(e instanceof ApiFailure && e.status === 401)) console.warn(e); });
  if (everyMs) portal.timer = setInterval(refreshSoon, everyMs);
}

/** Re-renders `el` from `data` only when the data changed (keeps focus and selection). */
function renderIfChanged(el, data, render) {
  const key = JSON.stringify(data);
  if (el.dataset.rendered === key) return;
  el.dataset.rendered = key;
  clear(el, render(data));
}

function readOnlyNote() {
  return h('p', { class: 'muted', text: `Signed in as ${portal.session.role}: you can see everything and change nothing.` });
}

// Packages

/**
 * What an X.509 certificate (PEM) names: subject and issuer (their CN, else O) and the end of
 * its validity, read from its DER; null for what is not one.
 */
function certificateNames(pem) {
  try {
    const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    const der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    // one TLV at `at`: [tag, start of its content, end]
    const tlv = (at) => {
      let len = der[at + 1];
      let start = at + 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        len = 0;
        for (let i = 0; i < n; i += 1) len = len * 256 + der[start + i];
        start += n;
      }
      return [der[at], start, start + len];
    };
    const children = (at) => {
      const [, start, end] = tlv(at);
      const out = [];
      for (let p = start; p < end; p = tlv(p)[2]) out.push(p);
      return out;
    };
    const text = (at) => { const [, s, e] = tlv(at); return new TextDecoder().decode(der.slice(s, e)); };
    const oid = (at) => { const [, s, e] = tlv(at); return Array.from(der.slice(s, e)).join('.'); };
    // Name: SET of SEQUENCE { OID, value }; CN is 2.5.4.3 (85.4.3), O 2.5.4.10 (85.4.10)
    const name = (at) => {
      const attrs = {};
      for (const set of children(at)) {
        for (const pair of children(set)) {
          const [type, value] = children(pair);
          attrs[oid(type)] = text(value);
        }
      }
      return attrs['85.4.3'] || attrs['85.4.10'] || '?';
    };
    let fields = children(children(0)[0]); // TBSCertificate
    if (der[fields[0]] === 0xa0) fields = fields.slice(1); // explicit version
    const [, , issuer, validity, subject] = fields;
    const notAfter = text(children(validity)[1]);
    const year = notAfter.length === 13 ? `20${notAfter.slice(0, 2)}` : notAfter.slice(0, 4);
    const rest = notAfter.slice(notAfter.length === 13 ? 2 : 4);
    return { subject: name(subject), issuer: name(issuer), until: `${year}-${rest.slice(0, 2)}-${rest.slice(2, 4)}` };
  } catch (_) { return null; }
}

/** A package's signature as the package API reports it: its signing certificate, or none. */
function signatureView(p) {
  if (!p.signingCertificate) {
    return h('dd', { 'data-signature': 'unsigned' }, badge('unsigned'), h('span', { class: 'muted', text: ' the package carries no signature' }));
  }
  const c = certificateNames(p.signingCertificate);
  return h('dd', { 'data-signature': 'verified' }, badge('verified'),
    c ? [' signed by ', h('strong', { text: c.subject }), `, issued by ${c.issuer}, valid until ${c.until}`]
      : ' signed; its certificate is not readable here');
}

function packagesPage(main) {
  const listError = h('div', {});
  const list = h('div', {});
  const details = h('div', {});
  const text = h('input', { type: 'search', placeholder: 'name or provider' });
  const stateFilter = h('select', {}, ['', 'CREATED', 'UPLOADING', 'PROCESSING', 'ONBOARDED']
    .map((s) => h('option', { value: s, text: s || 'any state' })));
  let selected = null;
  let packages = [];

  const act = async (what, p, call) => {
    clear(listError);
    try { await call(); toast(`${what} ${p.appName}: done`); await refresh(); } catch (e) { clear(listError, errorBox(e, `${what} ${p.appName}`)); }
  };

  function row(p) {
    const failed = !!p.onboardingFailureDetails;
    const enabled = p.operationalState === 'ENABLED';
    return h('tr', { class: p.id === selected ? 'selected' : '', 'data-package': p.appName },
      h('td', {}, h('strong', { text: p.appName }), h('div', { class: 'muted mono', text: p.id })),
      h('td', { text: p.appSoftwareVersion || '-' }),
      h('td', { text: p.appProvider || '-' }),
      h('td', {}, badge(p.onboardingState), failed ? [' ', badge('onboarding failed')] : null),
      h('td', {}, badge(p.operationalState)),
      h('td', {}, badge(p.usageState)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', text: 'Details', onclick: () => { selected = p.id; showDetails(); } }),
        mayOperate() && p.onboardingState === 'ONBOARDED'
          ? h('button', { type: 'button', class: 'secondary', text: enabled ? 'Disable' : 'Enable',
            onclick: () => act(enabled ? 'Disable' : 'Enable', p,
              () => api('PATCH', `${PKGM}/app_packages/${p.id}`, { operationalState: enabled ? 'DISABLED' : 'ENABLED' })) })
          : null,
        mayOperate() ? h('button', { type: 'button', class: 'danger', text: 'Delete',
          onclick: () => confirm(`Delete package ${p.appName}?`) && act('Delete', p, async () => {
            await api('DELETE', `${PKGM}/app_packages/${p.id}`);
            if (selected === p.id) { selected = null; clear(details); }
          }) }) : null));
  }

  function render() {
    const q = text.value.trim().toLowerCase();
    const shown = packages.filter((p) => (!stateFilter.value || p.onboardingState === stateFilter.value)
      && (!q || `${p.appName} ${p.appProvider || ''}`.toLowerCase().includes(q)));
    renderIfChanged(list, { shown, selected, q }, () => table(
      ['Package', 'Version', 'Provider', 'Onboarding', 'Operational', 'Usage', ''],
      shown.map(row), packages.length ? 'No package matches the filter.' : 'No package yet: onboard one above.'));
  }

  async function showDetails() {
    render();
    const p = packages.find((x) => x.id === selected);
    if (!p) { clear(details); return; }
    const parts = [h('h2', { text: `${p.appName} ${p.appSoftwareVersion || ''}` }),
      h('dl', { class: 'kv' },
        h('dt', { text: 'Package id' }), h('dd', { class: 'mono', text: p.id }),
        h('dt', { text: 'AppD id' }), h('dd', { class: 'mono', text: p.appDId || '-' }),
        h('dt', { text: 'Onboarding' }), h('dd', {}, badge(p.onboardingState)),
        h('dt', { text: 'Checksum' }), h('dd', { class: 'mono', text: (p.checksum && p.checksum.hash) || '-' }),
        p.onboardingState === 'ONBOARDED' ? [h('dt', { text: 'Signature' }), signatureView(p)] : null,
        h('dt', { text: 'Images' }), h('dd', { text: (p.softwareImages || []).map((i) => i.imagePath || i.name).join(', ') || '-' }))];
    if (p.onboardingFailureDetails) {
      parts.push(h('h3', { text: 'Onboarding problems' }),
        h('ul', { class: 'problems error', 'data-problems': p.appName }, problems(p.onboardingFailureDetails).map((x) => h('li', { class: 'mono', text: x }))));
    }
    if (p.onboardingState === 'ONBOARDED') {
      try {
        const { json: d } = await api('GET', `${PKGM}/app_packages/${p.id}/appd`);
        const section = (title, items, fmt) => [h('h3', { text: title }),
          items && items.length ? h('ul', {}, items.map((i) => h('li', { class: 'mono', text: fmt(i) }))) : h('p', { class: 'muted', text: 'none' })];
        parts.push(h('h2', { text: 'Application descriptor' }),
          h('dl', { class: 'kv' },
            h('dt', { text: 'Description' }), h('dd', { text: d.appDescription || '-' }),
            h('dt', { text: 'Max latency' }), h('dd', { text: d.appLatency ? `${d.appLatency.maxLatency} ms` : '-' }),
            h('dt', { text: 'Compute' }), h('dd', { class: 'mono', text: JSON.stringify(d.virtualComputeDescriptor || {}) })),
          section('Services produced', d.appServiceProduced, (s) => `${s.serName} ${s.version || ''}`),
          section('Services required', d.appServiceRequired, (s) => `${s.serName} ${s.version || ''}`),
          section('Traffic rules', d.appTrafficRule, (r) => `${r.trafficRuleId}: ${r.action} (priority ${r.priority})`),
          section('DNS rules', d.appDNSRule, (r) => `${r.domainName} → ${r.ipAddress} (ttl ${r.ttl})`));
      } catch (e) { parts.push(errorBox(e, 'AppD')); }
    }
    clear(details, h('section', { class: 'card', 'aria-label': 'Package details' }, parts));
  }

  async function refresh() {
    const { json } = await api('GET', `${PKGM}/app_packages`);
    packages = json || [];
    for (const p of packages) portal.names[p.id] = p.appName;
    render();
  }

  text.addEventListener('input', render);
  stateFilter.addEventListener('change', render);
  clear(main, h('h1', { text: 'Packages' }),
    mayOperate() ? uploadCard(refresh) : readOnlyNote(),
    h('section', { class: 'card', 'aria-label': 'Packages' },
      h('div', { class: 'toolbar' }, field('Filter', text), field('State', stateFilter)),
      listError, list),
    details);
  live(refresh);
}

function uploadCard(refresh) {
  const file = h('input', { type: 'file', accept: '.zip,.csar,application/zip', name: 'package' });
  const name = h('input', { name: 'appPkgName', required: true });
  const version = h('input', { name: 'appPkgVersion', value: '1.0', required: true });
  const progress = h('progress', { max: 1, value: 0, hidden: true });
  const status = h('div', { 'aria-live': 'polite' });
  const drop = h('div', { class: 'drop' }, 'Drop a package (zip or CSAR) here, or choose it: ', file);
  const pick = () => {
    const f = file.files[0];
    if (f && !name.value) name.value = f.name.replace(/\.(zip|csar)$/i, '');
  };
  file.addEventListener('change', pick);
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) { file.files = e.dataTransfer.files; pick(); }
  });
  const form = h('form', { class: 'card', 'aria-label': 'Onboard a package' },
    h('h2', { text: 'Onboard a package' }), drop,
    h('div', { class: 'row' }, field('Package name', name), field('Version', version),
      h('div', { class: 'field' }, h('button', { type: 'submit', text: 'Upload' }))),
    progress, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) { clear(status, h('div', { class: 'error', role: 'alert', text: 'Choose a package file first.' })); return; }
    let pkg;
    try {
      ({ json: pkg } = await api('POST', `${PKGM}/app_packages`, { appPkgName: name.value, appPkgVersion: version.value }));
      progress.hidden = false;
      progress.value = 0;
      clear(status, 'Uploading ', badge('UPLOADING'));
      await upload(`${PKGM}/app_packages/${pkg.id}/package_content`, f, (x) => { progress.value = x; });
      progress.value = 1;
    } catch (e) {
      clear(status, errorBox(e, `Onboarding ${name.value} failed`));
      if (pkg) await refresh();
      return;
    }
    await refresh();
    // follow the onboarding to its end
    for (;;) {
      const { json: p } = await api('GET', `${PKGM}/app_packages/${pkg.id}`);
      if (p.onboardingFailureDetails) {
        clear(status, errorBox(new ApiFailure(400, p.onboardingFailureDetails), `Onboarding ${p.appName} failed`));
        break;
      }
      clear(status, `${p.appName}: `, badge(p.onboardingState));
      if (p.onboardingState === 'ONBOARDED') break;
      await nextChange('app_package', pkg.id, 5000);
    }
    form.reset();
    progress.hidden = true;
    await refresh();
  });
  return form;
}

// Applications

/** The site an instance runs on: the latest completed instantiation's choice. */
function siteOf(instanceId, ops) {
  const op = ops.filter((o) => o.lcmOperation === 'INSTANTIATE' && o.operationState === 'COMPLETED'
    && o._links && o._links.appInstance && o._links.appInstance.href.endsWith(`/${instanceId}`))
    .sort((a, b) => (b.startTime.seconds - a.startTime.seconds))[0];
  return op && op.placement ? op.placement.chosen : null;
}

function instanceOf(op) {
  const href = op._links && op._links.appInstance && op._links.appInstance.href;
  return href ? href.slice(href.lastIndexOf('/') + 1) : '';
}

function placementView(decision) {
  const rejected = Object.entries(decision.rejected || {});
  return h('div', { class: 'placement', 'aria-label': 'Placement preview' },
    h('p', {}, 'Placement: ', h('strong', { text: decision.chosen || 'no site can take it' })),
    table(['Rank', 'Site', 'Score', 'Latency'], (decision.ranked || []).map((c, i) => h('tr', {},
      h('td', { text: String(i + 1) }), h('td', { text: c.siteId }),
      h('td', { text: c.score.toFixed(3) }), h('td', { text: c.latencyMs === null || c.latencyMs === undefined ? '-' : `${c.latencyMs.toFixed(1)} ms` }))),
    'No site can take it.'),
    rejected.length ? [h('h3', { text: 'Rejected sites' }),
      h('ul', {}, rejected.map(([reason, sites]) => h('li', {}, h('strong', { text: sites.join(', ') }), `: ${reason}`)))] : null);
}

/** The saga's steps of an operation, each with how far it got and its error. */
function stepsView(steps) {
  return [h('h3', { text: 'Steps' }),
    h('ol', { class: 'steps', 'aria-label': 'Steps' }, steps.map((s) => h('li', { 'data-step': s.name },
      badge(s.state), ' ', h('span', { class: 'mono', text: s.name }),
      s.error ? h('div', { class: 'error', text: s.error }) : null)))];
}

function opView(op, actions) {
  return h('div', { 'data-op': op.id },
    h('p', {}, `${op.lcmOperation} `, badge(op.operationState), h('span', { class: 'muted mono', text: ` ${op.id}` }),
      actions ? h('span', { class: 'actions' }, actions) : null),
    op.error ? errorBox(new ApiFailure(op.error.status, op.error), 'Error') : null,
    op.steps ? stepsView(op.steps) : null,
    op.placement ? placementView(op.placement) : null);
}

const ENDED = ['COMPLETED', 'FAILED', 'ROLLED_BACK', 'FAILED_TEMP'];

async function follow(location, into) {
  for (;;) {
    const { json: op } = await api('GET', location);
    clear(into, opView(op));
    if (ENDED.includes(op.operationState)) return op;
    await nextChange('lcm_op_occ', op.id, 5000);
  }
}

function applicationsPage(main) {
  const deployArea = h('div', {});
  const instancesError = h('div', {});
  const instances = h('div', {});
  const opsError = h('div', {});
  const opsList = h('div', {});
  const following = h('div', { 'aria-live': 'polite' });
  const opDetails = h('div', {});
  let selectedOp = null;
  let data = { instances: [], ops: [], packages: [], sites: [] };

  const act = async (what, into, call) => {
    clear(into);
    try {
      const r = await call();
      if (r && r.location) {
        const into = h('div', {});
        clear(following, h('section', { class: 'card', 'aria-label': 'Operation' }, h('h2', { text: what }), into));
        const op = await follow(r.location, into);
        toast(`${what}: ${op.operationState}`, op.operationState !== 'COMPLETED');
      } else {
        toast(`${what}: done`);
      }
      await refresh();
    } catch (e) { clear(into, errorBox(e, what)); }
  };

  function instanceRow(i) {
    const name = i.appInstanceName || i.id;
    const op = i.instantiatedAppState ? i.instantiatedAppState.operationalState : null;
    const path = `${LCM}/app_instances/${i.id}`;
    const graceful = h('input', { type: 'number', min: 0, value: 10, class: 'short', 'aria-label': `Graceful timeout of ${name} (s)` });
    return h('tr', { 'data-instance': name, 'data-instance-id': i.id },
      h('td', {}, h('strong', { text: name }), h('div', { class: 'muted mono', text: i.id })),
      h('td', { text: `${i.appName} ${i.appSoftVersion || ''}` }),
      h('td', {}, badge(i.instantiationState)),
      h('td', {}, op ? badge(op) : '-'),
      h('td', { text: siteOf(i.id, data.ops) || '-' }),
      h('td', { class: 'actions' }, mayOperate() ? [
        op === 'STARTED' ? h('button', { type: 'button', class: 'secondary', text: 'Stop',
          onclick: () => act(`Stop ${name}`, instancesError, () => api('POST', `${path}/operate`, { changeStateTo: 'STOPPED', stopType: 'FORCEFUL' })) }) : null,
        op === 'STOPPED' ? h('button', { type: 'button', class: 'secondary', text: 'Start',
          onclick: () => act(`Start ${name}`, instancesError, () => api('POST', `${path}/operate`, { changeStateTo: 'STARTED' })) }) : null,
        i.instantiationState === 'INSTANTIATED' ? [graceful,
          h('button', { type: 'button', class: 'danger', text: 'Terminate',
            onclick: () => act(`Terminate ${name}`, instancesError, () => api('POST', `${path}/terminate`, { terminationType: 'GRACEFUL', gracefulTerminationTimeout: Number(graceful.value) || 0 })) }),
          h('button', { type: 'button', class: 'danger', text: 'Force',
            title: 'Terminate at once', onclick: () => act(`Terminate ${name} forcefully`, instancesError, () => api('POST', `${path}/terminate`, { terminationType: 'FORCEFUL' })) })] : null,
        i.instantiationState === 'NOT_INSTANTIATED' ? h('button', { type: 'button', class: 'danger', text: 'Delete',
          onclick: () => confirm(`Delete instance ${name}?`) && act(`Delete ${name}`, instancesError, () => api('DELETE', path)) }) : null] : null));
  }

  /** Retry / fail in FAILED_TEMP, cancel while under way; a retry or cancel is followed. */
  function opActions(o) {
    if (!mayOperate()) return null;
    const path = `${LCM}/app_lcm_op_occs/${o.id}`;
    const followed = (call) => async () => { await call(); return { location: path }; };
    return [
      o.operationState === 'FAILED_TEMP' ? [
        h('button', { type: 'button', class: 'secondary', text: 'Retry', onclick: () => act(`Retry ${o.lcmOperation}`, opsError, followed(() => api('POST', `${path}/retry`))) }),
        h('button', { type: 'button', class: 'danger', text: 'Fail', onclick: () => act(`Fail ${o.lcmOperation}`, opsError, () => api('POST', `${path}/fail`)) })] : null,
      ['PROCESSING', 'STARTING'].includes(o.operationState)
        ? h('button', { type: 'button', class: 'danger', text: 'Cancel', onclick: () => act(`Cancel ${o.lcmOperation}`, opsError, followed(() => api('POST', `${path}/cancel`, { cancelMode: 'GRACEFUL' }))) }) : null];
  }

  function opRow(o) {
    const inst = data.instances.find((i) => i.id === instanceOf(o));
    return h('tr', { 'data-op-row': o.id, class: o.id === selectedOp ? 'selected' : '' },
      h('td', { text: o.lcmOperation }),
      h('td', { text: inst ? (inst.appInstanceName || inst.id) : portal.names[instanceOf(o)] || instanceOf(o) }),
      h('td', {}, badge(o.operationState)),
      h('td', { text: when(o.startTime) }),
      h('td', { text: o.placement ? (o.placement.chosen || 'none') : '-' }),
      h('td', {}, o.error ? problems(o.error).join('; ') : ''),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', text: 'Details', onclick: () => { selectedOp = o.id; refresh(); } }),
        opActions(o)));
  }

  /** The selected operation with its steps (only the occurrence itself lists them). */
  async function showOp() {
    if (!selectedOp) { clear(opDetails); return; }
    let op;
    try { ({ json: op } = await api('GET', `${LCM}/app_lcm_op_occs/${selectedOp}`)); } catch (e) {
      if (e instanceof ApiFailure && e.status === 404) { selectedOp = null; clear(opDetails); return; }
      throw e;
    }
    const inst = data.instances.find((i) => i.id === instanceOf(op));
    renderIfChanged(opDetails, op, () => h('section', { class: 'card', 'aria-label': 'Operation details' },
      h('h2', { text: `${op.lcmOperation} of ${inst ? inst.appInstanceName || inst.id : instanceOf(op)}` }),
      h('dl', { class: 'kv' },
        h('dt', { text: 'Started' }), h('dd', { text: when(op.startTime) }),
        h('dt', { text: 'State entered' }), h('dd', { text: when(op.stateEnteredTime) })),
      opView(op, opActions(op))));
  }

  async function refresh() {
    const [i, o, p, s] = await Promise.all([
      api('GET', `${LCM}/app_instances`), api('GET', `${LCM}/app_lcm_op_occs`),
      api('GET', `${PKGM}/app_packages`), api('GET', `${INVENTORY}/sites`)]);
    for (const x of i.json || []) portal.names[x.id] = x.appInstanceName || x.id.slice(0, 8);
    for (const x of p.json || []) portal.names[x.id] = x.appName;
    data = { instances: i.json || [], ops: (o.json || []).sort((a, b) => b.startTime.seconds - a.startTime.seconds), packages: p.json || [], sites: s.json || [] };
    renderIfChanged(instances, { i: data.instances, o: data.ops }, () => table(
      ['Instance', 'Package', 'Instantiation', 'Operational', 'Site', ''], data.instances.map(instanceRow),
      'No application instance yet.'));
    renderIfChanged(opsList, { ops: data.ops.slice(0, 20), selectedOp }, ({ ops }) => table(
      ['Operation', 'Instance', 'State', 'Started', 'Site', 'Error', ''], ops.map(opRow), 'No operation yet.'));
    await showOp();
    if (mayOperate()) renderIfChanged(deployArea, { p: data.packages.map((x) => [x.appDId, x.operationalState]), s: data.sites.map((x) => x.id) }, deployForm);
  }

  function deployForm() {
    const onboarded = data.packages.filter((p) => p.onboardingState === 'ONBOARDED' && p.operationalState === 'ENABLED');
    const pkg = h('select', { name: 'package' }, onboarded.map((p) => h('option', { value: p.appDId, text: `${p.appName} ${p.appSoftwareVersion} (${p.appProvider})` })));
    const name = h('input', { name: 'instanceName', required: true });
    const mode = (value, label, checked) => h('label', { class: 'radio' }, h('input', { type: 'radio', name: 'where', value, checked }), label);
    const lat = h('input', { name: 'latitude', inputmode: 'decimal', placeholder: '48.85' });
    const lon = h('input', { name: 'longitude', inputmode: 'decimal', placeholder: '2.35' });
    const site = h('select', { name: 'site' }, data.sites.map((s) => h('option', { value: s.id, text: `${s.id} (${s.name || s.zone})` })));
    const preview = h('div', { 'aria-live': 'polite' });
    const status = h('div', {});
    const form = h('form', { class: 'card', 'aria-label': 'Deploy an application' },
      h('h2', { text: 'Deploy an application' }),
      onboarded.length ? null : h('p', { class: 'muted', text: 'No enabled onboarded package: onboard one on the Packages page.' }),
      h('div', { class: 'row' }, field('Package', pkg), field('Instance name', name)),
      h('fieldset', {}, h('legend', { text: 'Placement' }),
        mode('any', 'Best site', true), mode('near', 'Near a location'), mode('site', 'On a site'),
        h('div', { class: 'row' }, field('Latitude', lat), field('Longitude', lon), field('Site', site))),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary', text: 'Preview placement', onclick: () => doPreview() }),
        h('button', { type: 'submit', text: 'Deploy', disabled: !onboarded.length })),
      status, preview);
    const where = () => form.querySelector('input[name=where]:checked').value;
    const location = () => {
      const la = Number(lat.value); const lo = Number(lon.value);
      if (lat.value === '' || lon.value === '' || Number.isNaN(la) || Number.isNaN(lo)) throw new Error('give a latitude and a longitude, e.g. 48.85 and 2.35');
      return { latitude: la, longitude: lo };
    };
    const query = () => {
      const q = { appDId: pkg.value };
      if (where() === 'near') q.userLocation = location();
      if (where() === 'site') q.candidateSites = [site.value];
      return q;
    };
    async function doPreview() {
      clear(status);
      try {
        const { json } = await api('POST', `${INVENTORY}/placement`, query());
        clear(preview, h('h3', { text: 'Placement preview' }), placementView(json));
        return json;
      } catch (e) { clear(preview, errorBox(e, 'Placement preview')); return null; }
    }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(status);
      let request;
      try {
        request = {};
        if (where() === 'near') request.locationConstraints = location();
        if (where() === 'site') request.selectedMECHostInfo = [{ hostId: { siteId: site.value } }];
      } catch (e) { clear(status, errorBox(e, 'Placement')); return; }
      const decision = await doPreview();
      if (!decision) return;
      const label = name.value || 'instance';
      await act(`Instantiate ${label}`, status, async () => {
        const { json: inst } = await api('POST', `${LCM}/app_instances`, { appDId: pkg.value, appInstanceName: name.value || undefined });
        return api('POST', `${LCM}/app_instances/${inst.id}/instantiate`, request);
      });
    });
    return form;
  }

  clear(main, h('h1', { text: 'Applications' }),
    mayOperate() ? deployArea : readOnlyNote(), following,
    h('section', { class: 'card', 'aria-label': 'Instances' }, h('h2', { text: 'Instances' }), instancesError, instances),
    h('section', { class: 'card', 'aria-label': 'Operations' }, h('h2', { text: 'Operations' }), opsError, opsList),
    opDetails);
  live(refresh);
}

// Sites

function capacity(free, total, unit, scale) {
  if (total === undefined || total === null) return '-';
  const f = free === undefined || free === null ? null : free / scale;
  const t = total / scale;
  return h('div', {}, `${f === null ? '?' : f.toFixed(1)} / ${t.toFixed(1)} ${unit}`,
    h('meter', { min: 0, max: t || 1, value: f === null ? 0 : f, title: 'free of total' }));
}

/** The description a site's PUT takes, from what its GET shows (the rest is observed). */
const SITE_SPEC_KEYS = ['id', 'name', 'location', 'countryCode', 'civicAddress', 'zone', 'trackingAreas',
  'accessLatencyMs', 'services', 'labels', 'mepUrl', 'inService', 'vim'];
function siteSpec(s) {
  return Object.fromEntries(SITE_SPEC_KEYS.filter((k) => s[k] !== undefined && s[k] !== null).map((k) => [k, s[k]]));
}

const list = (text) => text.split(',').map((x) => x.trim()).filter(Boolean);

/**
 * The form that adds a site or edits `site`: where it is, what it offers and its VIM, a
 * simulated one or a Kubernetes cluster whose kubeconfig is uploaded (sent as its content;
 * when editing, none keeps the current one). `done` runs after a successful PUT.
 */
function siteForm(site, done, cancel) {
  const vim = (site && site.vim) || { kind: 'simulated', cpuMillis: 16000, memoryMib: 65536, architectures: ['x86_64'] };
  const id = h('input', { name: 'siteId', required: true, value: site ? site.id : '', readOnly: !!site, pattern: '[A-Za-z0-9._\\-]+' });
  const name = h('input', { name: 'siteName', value: site ? site.name || '' : '' });
  const zone = h('input', { name: 'zone', required: true, value: site ? site.zone || '' : '' });
  const lat = h('input', { name: 'latitude', required: true, inputmode: 'decimal', value: site && site.location ? site.location.latitude : '' });
  const lon = h('input', { name: 'longitude', required: true, inputmode: 'decimal', value: site && site.location ? site.location.longitude : '' });
  const latency = h('input', { name: 'accessLatencyMs', inputmode: 'decimal', value: site ? site.accessLatencyMs : 2 });
  const services = h('input', { name: 'services', placeholder: 'RNIS, LocationService', value: site ? (site.services || []).join(', ') : '' });
  const mepUrl = h('input', { name: 'mepUrl', placeholder: 'https://mep.site.example', value: site ? site.mepUrl || '' : '' });
  const inService = h('input', { type: 'checkbox', name: 'inService', checked: !site || site.inService !== false });
  const kind = h('select', { name: 'vimKind' },
    h('option', { value: 'simulated', text: 'Simulated', selected: vim.kind === 'simulated' }),
    h('option', { value: 'kubernetes', text: 'Kubernetes, K3s or KubeEdge', selected: vim.kind === 'kubernetes' }));
  const sim = vim.kind === 'simulated' ? vim : {};
  const cpu = h('input', { name: 'cpuMillis', inputmode: 'numeric', value: sim.cpuMillis || 16000 });
  const memory = h('input', { name: 'memoryMib', inputmode: 'numeric', value: sim.memoryMib || 65536 });
  const gpus = h('input', { name: 'gpus', inputmode: 'numeric', value: sim.gpus || 0 });
  const arches = h('input', { name: 'architectures', value: (sim.architectures || ['x86_64']).join(', ') });
  const kube = vim.kind === 'kubernetes' ? vim : {};
  const kubeconfig = h('input', { type: 'file', name: 'kubeconfig', accept: '.yaml,.yml,.conf,text/plain,application/yaml' });
  const context = h('input', { name: 'context', value: kube.context || '' });
  const namespace = h('input', { name: 'namespace', value: kube.namespace || 'mec-apps' });
  const flavour = h('select', { name: 'flavour' }, [['', 'detect'], ['kubernetes', 'Kubernetes'], ['k3s', 'K3s'], ['kubeEdge', 'KubeEdge']]
    .map(([v, t]) => h('option', { value: v, text: t, selected: (kube.flavour || '') === v })));
  const simFields = h('div', { class: 'row' }, field('CPU (millicores)', cpu), field('Memory (MiB)', memory), field('GPUs', gpus), field('Architectures', arches));
  const kubeFields = h('div', {},
    h('div', { class: 'row' }, field(site && vim.kind === 'kubernetes' ? 'Kubeconfig (empty keeps the current one)' : 'Kubeconfig', kubeconfig),
      field('Context', context), field('Namespace', namespace), field('Flavour', flavour)));
  const showVim = () => { simFields.hidden = kind.value !== 'simulated'; kubeFields.hidden = kind.value !== 'kubernetes'; };
  kind.addEventListener('change', showVim);
  showVim();
  const status = h('div', {});
  const form = h('form', { class: 'card', 'aria-label': site ? `Edit site ${site.id}` : 'Add a site' },
    h('h2', { text: site ? `Edit site ${site.id}` : 'Add a site' }),
    h('div', { class: 'row' }, field('Site id', id), field('Name', name), field('Zone', zone)),
    h('div', { class: 'row' }, field('Latitude', lat), field('Longitude', lon), field('Access latency (ms)', latency)),
    h('div', { class: 'row' }, field('Services', services), field('MEP URL', mepUrl)),
    h('label', { class: 'radio' }, inService, 'In service (placement may choose it)'),
    h('fieldset', {}, h('legend', { text: 'VIM' }), field('VIM kind', kind), simFields, kubeFields),
    status,
    h('div', { class: 'row' }, h('button', { type: 'submit', text: site ? 'Save site' : 'Add site' }),
      h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: cancel })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    const number = (input, what) => {
      const n = Number(input.value);
      if (input.value === '' || Number.isNaN(n)) throw new Error(`${what} must be a number`);
      return n;
    };
    let spec;
    try {
      let vimSpec;
      if (kind.value === 'simulated') {
        vimSpec = { kind: 'simulated', cpuMillis: number(cpu, 'CPU'), memoryMib: number(memory, 'Memory'), gpus: number(gpus, 'GPUs'), architectures: list(arches.value) };
        if (sim.startupMs) vimSpec.startupMs = sim.startupMs;
      } else {
        vimSpec = { kind: 'kubernetes', namespace: namespace.value || 'mec-apps' };
        if (context.value) vimSpec.context = context.value;
        if (flavour.value) vimSpec.flavour = flavour.value;
        const f = kubeconfig.files[0];
        if (f) vimSpec.kubeconfigContent = await f.text();
        else if (!(site && vim.kind === 'kubernetes')) throw new Error('choose the cluster\'s kubeconfig file');
      }
      spec = { ...(site ? siteSpec(site) : {}), id: id.value.trim(), name: name.value, zone: zone.value,
        location: { latitude: number(lat, 'Latitude'), longitude: number(lon, 'Longitude') },
        accessLatencyMs: number(latency, 'Access latency'), services: list(services.value), inService: inService.checked, vim: vimSpec };
      if (mepUrl.value) spec.mepUrl = mepUrl.value; else delete spec.mepUrl;
    } catch (e) { clear(status, errorBox(e, 'Site')); return; }
    try {
      await api('PUT', `${INVENTORY}/sites/${encodeURIComponent(spec.id)}`, spec);
      toast(`Site ${spec.id} saved`);
      done(spec.id);
    } catch (e) { clear(status, errorBox(e, `Saving site ${spec.id}`)); }
  });
  return form;
}

function sitesPage(main) {
  const listEl = h('div', {});
  const listError = h('div', {});
  const details = h('div', {});
  const editing = h('div', {});
  let selected = null;
  let sites = [];
  let meps = {};
  let running = {};
  const mayAdminister = () => portal.session && portal.session.mayAdminister;

  /** A site's MEP link: none for a site without a MEP (no URL, never connected, nothing there). */
  const linked = (s) => {
    const m = meps[s.id];
    return m && (m.connected || s.mepUrl || m.appInstances.length) ? m : null;
  };

  function mepState(s) {
    const m = linked(s);
    if (!m) return h('span', { class: 'muted', text: 'none' });
    const apps = m.appInstances.filter((i) => !i.removal).length;
    return h('span', {}, badge(m.connected ? 'connected' : 'disconnected'), ` ${apps} instance${apps === 1 ? '' : 's'}`);
  }

  const edit = (s) => {
    clear(editing, siteForm(s, async (id) => { clear(editing); selected = id; await refresh(); }, () => clear(editing)));
    editing.querySelector('input:not([readonly])').focus();
  };

  async function act(what, call) {
    clear(listError);
    try { await call(); toast(`${what}: done`); await refresh(); } catch (e) { clear(listError, errorBox(e, what)); }
  }

  function row(s) {
    const free = s.freeCapacity || {};
    const vim = s.vim || {};
    const out = s.inService === false;
    return h('tr', { class: s.id === selected ? 'selected' : '', 'data-site': s.id },
      h('td', {}, h('strong', { text: s.id }), h('div', { class: 'muted', text: s.name || '' })),
      h('td', { text: s.zone || '-' }),
      h('td', {}, badge(s.healthy ? 'healthy' : 'unhealthy'), out ? [' ', badge('out of service')] : null,
        s.lastError ? h('div', { class: 'muted', text: s.lastError }) : null),
      h('td', {}, capacity(free.cpuMillis, vim.cpuMillis, 'CPU', 1000)),
      h('td', {}, capacity(free.memoryMib, vim.memoryMib, 'GiB', 1024)),
      h('td', { text: vim.gpus === undefined ? '-' : `${free.gpus === undefined ? '?' : free.gpus} / ${vim.gpus}` }),
      h('td', { text: (free.architectures || vim.architectures || []).join(', ') || '-' }),
      h('td', { text: [vim.kind, vim.flavour || vim.flavor].filter(Boolean).join(' · ') || '-' }),
      h('td', {}, mepState(s)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', text: 'Details', onclick: () => { selected = s.id; render(); } })));
  }

  /** What an admin may do to a site: edit it, take it out of service and back, delete it. */
  function siteActions(s) {
    if (!mayAdminister()) return null;
    const out = s.inService === false;
    return h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', text: 'Edit', onclick: () => edit(s) }),
      h('button', { type: 'button', class: out ? 'secondary' : 'danger', text: out ? 'Put in service' : 'Take out of service',
        onclick: () => act(`${out ? 'Put' : 'Take'} ${s.id} ${out ? 'in' : 'out of'} service`,
          () => api('PUT', `${INVENTORY}/sites/${encodeURIComponent(s.id)}`, { ...siteSpec(s), inService: out })) }),
      h('button', { type: 'button', class: 'danger', text: 'Delete',
        onclick: () => confirm(`Delete site ${s.id}?`) && act(`Delete ${s.id}`, async () => {
          await api('DELETE', `${INVENTORY}/sites/${encodeURIComponent(s.id)}`);
          if (selected === s.id) selected = null;
        }) }));
  }

  function detailView(s) {
    const m = linked(s);
    const mepRows = m ? m.appInstances.map((i) => {
      const st = i.status || {};
      return h('tr', { 'data-mep-instance': i.appInstanceId },
        h('td', {}, h('strong', { text: portal.names[i.appInstanceId] || '' }), h('div', { class: 'mono', text: i.appInstanceId })),
        h('td', { text: `${i.version}${i.removal ? ' (removal)' : ''}` }),
        h('td', {}, `${i.ackedVersion} `, i.ackedVersion >= i.version ? badge('acknowledged') : badge('pending'),
          i.refused ? h('div', { class: 'error', text: `refused: ${i.refused.reason || JSON.stringify(i.refused)}` }) : null),
        h('td', {}, st.readiness ? badge(st.readiness) : '-'),
        h('td', { text: (st.services || []).join(', ') || '-' }),
        h('td', { text: st.trafficRules === undefined ? '-' : `${st.activeTrafficRules}/${st.trafficRules} traffic, ${st.activeDnsRules}/${st.dnsRules} DNS` }),
        h('td', {}, st.steering ? badge(st.steering.startsWith('INSTALLED') ? 'INSTALLED' : 'FAILED') : '-', st.steering && !st.steering.startsWith('INSTALLED') ? h('div', { text: st.steering }) : null));
    }) : [];
    const here = running[s.id] || [];
    return h('section', { class: 'card', 'aria-label': `Site ${s.id}` },
      h('h2', { text: `${s.id} ${s.name ? `— ${s.name}` : ''}` }),
      h('dl', { class: 'kv' },
        h('dt', { text: 'Location' }), h('dd', { text: s.location ? `${s.location.latitude}, ${s.location.longitude}` : '-' }),
        h('dt', { text: 'Service' }), h('dd', {}, badge(s.inService === false ? 'out of service' : 'in service')),
        h('dt', { text: 'Services' }), h('dd', { text: (s.services || []).join(', ') || '-' }),
        h('dt', { text: 'Access latency' }), h('dd', { text: s.accessLatencyMs === undefined ? '-' : `${s.accessLatencyMs} ms` }),
        h('dt', { text: 'MEP' }), h('dd', { text: s.mepUrl || 'none' }),
        h('dt', { text: 'Refreshed' }), h('dd', { text: when(s.refreshedAt) })),
      siteActions(s),
      h('h3', { text: 'Instances running here' }),
      table(['Instance', 'Package', 'Operational'], here.map((i) => h('tr', { 'data-site-instance': i.appInstanceName || i.id },
        h('td', {}, h('strong', { text: i.appInstanceName || i.id }), h('div', { class: 'muted mono', text: i.id })),
        h('td', { text: `${i.appName} ${i.appSoftVersion || ''}` }),
        h('td', {}, badge(i.instantiatedAppState ? i.instantiatedAppState.operationalState : i.instantiationState)))),
      'No application instance runs here.'),
      h('h3', { text: 'Application instances at its MEP' }),
      table(['Instance', 'Desired', 'Acknowledged', 'Readiness', 'Services', 'Rules', 'Steering'], mepRows,
        m ? 'The MEP holds no application instance.' : 'No MEP is linked to this site.'));
  }

  function render() {
    renderIfChanged(listEl, { sites, meps, selected, admin: mayAdminister() }, () => table(
      ['Site', 'Zone', 'Health', 'Free CPU', 'Free memory', 'GPUs', 'Architectures', 'VIM', 'MEP link', ''],
      sites.map(row), 'No site in the inventory.'));
    const s = sites.find((x) => x.id === selected);
    renderIfChanged(details, { s, m: s && meps[s.id], r: s && running[s.id], admin: mayAdminister() }, () => (s ? detailView(s) : []));
  }

  async function refresh() {
    const [siteList, instances, ops] = await Promise.all([api('GET', `${INVENTORY}/sites`),
      api('GET', `${LCM}/app_instances`), api('GET', `${LCM}/app_lcm_op_occs`)]);
    sites = siteList.json || [];
    running = {};
    for (const i of instances.json || []) portal.names[i.id] = i.appInstanceName || i.id.slice(0, 8);
    for (const i of (instances.json || []).filter((x) => x.instantiationState === 'INSTANTIATED')) {
      const at = siteOf(i.id, ops.json || []);
      if (at) (running[at] = running[at] || []).push(i);
    }
    const found = await Promise.all(sites.map((s) => api('GET', `${INVENTORY}/sites/${s.id}/mep`)
      .then((r) => [s.id, r.json]).catch((e) => {
        if (e instanceof ApiFailure && e.status === 404) return [s.id, null];
        throw e;
      })));
    meps = Object.fromEntries(found.filter(([, m]) => m));
    render();
  }

  clear(main, h('h1', { text: 'Sites' }),
    mayAdminister() ? h('div', { class: 'toolbar' }, h('button', { type: 'button', text: 'Add a site', onclick: () => edit(null) })) : null,
    editing,
    h('section', { class: 'card', 'aria-label': 'Sites' }, listError, listEl), details);
  // the MEP links' state is not in the event outbox: read again now and then
  live(refresh, 10000);
}

// ---------- routing ----------

const PAGES = { packages: packagesPage, applications: applicationsPage, sites: sitesPage };

function route() {
  if (!portal.session) return;
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  const page = PAGES[name] ? name : 'packages';
  if (!PAGES[name]) { history.replaceState(null, '', '#/packages'); }
  portal.page = page;
  for (const a of document.querySelectorAll('.top nav a')) {
    a.classList.toggle('current', a.dataset.page === page);
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  stopRefreshing();
  PAGES[page](document.getElementById('main'));
  document.getElementById('main').append(activityCard());
}

document.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  try {
    const { json } = await api('GET', '/portal/session');
    signedIn(json);
  } catch (_) {
    showSignIn();
  }
});
