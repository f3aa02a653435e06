// DECNET webhooks page: a plain client of the public admin API.
//
// Every value that came from the API reaches the DOM through textContent or an
// attribute, never through HTML parsing; the Content-Security-Policy forbids inline
// code as a second line of defence.
'use strict';

const API = '/api/v1';
const SESSION_KEY = 'decnet.session';
const REFRESH_MS = 5000;

// Preset name -> its patterns, from GET /webhooks/presets (loadPresets): the API
// expands them; the page needs them to show which presets a pattern list contains.
let PRESETS = {};

const $ = (id) => document.getElementById(id);

const state = {
  session: null, // {token, username, role, exp}
  webhooks: null, // last list from the API, null before the first load
  forbidden: null, // the API's detail when it refused the list (403)
  fire: new Map(), // uuid -> {pending} | {delivered, status_code, error}
  rows: new Map(), // uuid -> {sig, tr}: rows are rebuilt only when they change
  timer: null,
  inflight: null, // the running load, if any
  again: false,
  editing: null, // the webhook being edited, null when creating
  deleting: null,
  presets: null, // GET /webhooks/presets, once per session (admins)
  recent: null, // all subscriptions' stats of the last minutes, for the header
  detail: null, // the subscription page: {uuid, webhook, logOffset, logOutcome, deadOffset, open, hex, replaying}
};

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

// ---------------------------------------------------------------- API access

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const session = state.session;
  if (session) headers.Authorization = `Bearer ${session.token}`;
  let resp;
  try {
    resp = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (_) {
    showBanner(`Cannot reach the DECNET API at ${location.origin}. Retrying every ${REFRESH_MS / 1000} s…`);
    throw new ApiError(0, 'The DECNET API is unreachable.');
  }
  hideBanner();
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  // A 401 on an authenticated call means the token expired or the key changed;
  // the login call itself answers 401 for bad credentials and is handled there.
  if (resp.status === 401 && session) {
    if (state.session === session) endSession('Your session has expired. Sign in again.');
    throw new ApiError(401, 'Session expired');
  }
  if (!resp.ok) {
    const detail = data && typeof data.detail === 'string' ? data.detail : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, detail);
  }
  return data;
}

// ---------------------------------------------------------------- session

// The role is read from the token for display only; the API decides what is allowed.
function decodeClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : {};
  } catch (_) {
    return {};
  }
}

function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (saved && typeof saved.token === 'string') return saved;
  } catch (_) {
    // A damaged entry is treated as no session.
  }
  return null;
}

function startSession(token, username) {
  const claims = decodeClaims(token);
  const session = {
    token,
    username,
    role: typeof claims.role === 'string' ? claims.role : 'unknown',
    exp: typeof claims.exp === 'number' ? claims.exp : null,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

function endSession(message) {
  sessionStorage.removeItem(SESSION_KEY);
  state.session = null;
  state.webhooks = null;
  state.forbidden = null;
  state.fire.clear();
  state.rows.clear();
  state.presets = null;
  state.recent = null;
  state.detail = null;
  clearTimeout(state.timer);
  for (const id of ['editor', 'secret-dialog', 'confirm-dialog']) closeDialog($(id));
  $('secret-value').value = '';
  $('refreshed').textContent = '';
  showLogin(message, 'info');
}

// The API revokes the token (and every other session of this user) before the page
// forgets it; if the API cannot be reached the page signs out all the same.
async function signOut() {
  const button = $('sign-out');
  button.disabled = true;
  clearTimeout(state.timer);
  try {
    if (state.session) await api('POST', '/auth/logout');
  } catch (_) {
    // Nothing more to do: the session ends below either way.
  } finally {
    button.disabled = false;
  }
  endSession('Signed out.');
}

function isAdmin() {
  return state.session !== null && state.session.role === 'admin' && !state.forbidden;
}

// ---------------------------------------------------------------- views

function showBanner(text) {
  const banner = $('banner');
  banner.textContent = text;
  banner.hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

function showLogin(message, tone) {
  $('webhooks-view').hidden = true;
  $('detail-view').hidden = true;
  $('session').hidden = true;
  $('login-view').hidden = false;
  const msg = $('login-message');
  msg.textContent = message || '';
  msg.className = `message ${tone || ''}`;
  msg.hidden = !message;
  $('login-password').value = '';
  $('login-username').focus();
  checkFirstRun();
}

function showWebhooks() {
  $('login-view').hidden = true;
  $('session').hidden = false;
  route();
  $('session-user').textContent = state.session.username || '';
  $('session-role').textContent = state.session.role.toUpperCase();
  $('session-role').className = `role-badge ${state.session.role === 'admin' ? 'admin' : 'viewer'}`;
  render();
  refresh();
}

// ---------------------------------------------------------------- refresh loop

// One load at a time; a refresh asked for during a load runs right after it, so a
// change the user just made is never overwritten by an older answer.
async function refresh() {
  if (!state.session) return;
  if (state.inflight) {
    state.again = true;
    await state.inflight;
    return;
  }
  clearTimeout(state.timer);
  state.inflight = loadOnce();
  await state.inflight;
  state.inflight = null;
  if (state.again) {
    state.again = false;
    await refresh();
  } else if (state.session) {
    state.timer = setTimeout(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
  }
}

async function loadOnce() {
  const session = state.session;
  let list = null;
  let forbidden = null;
  try {
    // The console routes answer viewers too (read-only); admins see the same data.
    list = await api('GET', '/console/webhooks');
  } catch (err) {
    if (err.status === 403) forbidden = err.detail;
    else if (err.status === 0 || err.status === 401) return; // banner or login already shown
    else {
      showBanner(`Could not load webhooks: ${err.detail}`);
      return;
    }
  }
  // An answer for a session that has since ended is dropped.
  if (state.session !== session) return;
  state.webhooks = list;
  state.forbidden = forbidden;
  $('refreshed').textContent = list ? `Updated ${utcTime(new Date())} UTC` : '';
  render();
  await loadRecent(session);
  if (state.detail && state.session === session) await loadDetail();
}

// A hidden tab skips its refreshes and catches up as soon as it is shown again.
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.session) refresh();
});

// ---------------------------------------------------------------- rendering

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// `YYYY-MM-DD HH:MM` in UTC, the form operators compare with logs.
function utcMinute(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

function utcTime(d) {
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

const isTripped = (w) => !w.enabled && Boolean(w.auto_disabled_at);
const isInsecure = (w) => /^http:\/\//i.test(w.url);

function renderCounts() {
  const counts = $('counts');
  const list = state.webhooks;
  if (!list) {
    counts.replaceChildren();
    return;
  }
  const parts = [
    ['configured', list.length],
    ['enabled', list.filter((w) => w.enabled).length],
    ['tripped', list.filter(isTripped).length],
    ['failing', list.filter((w) => w.consecutive_failures > 0).length],
    ['insecure', list.filter(isInsecure).length],
  ];
  const nodes = [];
  parts.forEach(([name, n], i) => {
    if (i > 0) nodes.push(' · ');
    const alarming = n > 0 && name !== 'configured' && name !== 'enabled';
    nodes.push(el('span', { class: `count ${alarming ? `count-${name}` : ''}`, 'data-testid': `count-${name}`,
      text: `${n} ${name.toUpperCase()}` }));
  });
  counts.replaceChildren(...nodes);
}

function chip(kind, text, title, testid) {
  return el('span', { class: `chip ${kind}`, title, 'data-testid': testid, text });
}

function statusChips(w) {
  const chips = [
    w.enabled
      ? chip('ok', 'ENABLED', 'Delivering events', 'chip-enabled')
      : chip('muted', 'DISABLED', isTripped(w) ? 'Disabled by the circuit breaker' : 'Paused by an admin', 'chip-disabled'),
  ];
  if (isTripped(w)) {
    const ts = utcMinute(w.auto_disabled_at);
    chips.push(chip('alert', `TRIPPED · ${ts}`, `Circuit tripped at ${ts}. Re-enable via Edit to reset.`, 'chip-tripped'));
  }
  if (w.consecutive_failures > 0) {
    chips.push(chip('fail', `FAIL · ${w.consecutive_failures}`, w.last_error || 'No error recorded', 'chip-fail'));
  }
  if (isInsecure(w)) {
    chips.push(chip('warn', 'HTTP', 'URL uses http://: deliveries are not encrypted in transit', 'chip-http'));
  }
  chips.push(...optionChips(w));
  return el('div', { class: 'chips' }, ...chips);
}

// The delivery options that differ from the defaults, so they show without opening Edit.
function optionChips(w) {
  const chips = [];
  if (w.ordered) {
    chips.push(chip('muted', 'ORDERED', 'Publish order, one delivery in flight', 'chip-ordered'));
  }
  if (w.batch_max && w.batch_max > 1) {
    const linger = w.batch_linger_ms || 1000;
    chips.push(chip('muted', `BATCH ≤ ${w.batch_max}`, `Up to ${w.batch_max} events per request, waiting at most ${linger} ms`, 'chip-batch'));
  }
  if (w.rate_limit_per_sec) {
    chips.push(chip('muted', `≤ ${w.rate_limit_per_sec}/s`, `At most ${w.rate_limit_per_sec} requests per second`, 'chip-rate'));
  }
  if (w.shape && w.shape !== 'raw') {
    chips.push(chip('muted', w.shape.toUpperCase(), `Body shape: ${w.shape}`, 'chip-shape'));
  }
  if (w.previous_secret_expires_at) {
    const until = utcMinute(w.previous_secret_expires_at);
    chips.push(chip('warn', 'ROTATING', `The previous secret still signs until ${until} UTC`, 'chip-rotating'));
  }
  return chips;
}

function lastDelivery(w) {
  const lines = [];
  if (w.last_success_at) lines.push(el('div', { class: 'ok-text', 'data-testid': 'last-success' }, `OK ${utcMinute(w.last_success_at)}`));
  if (w.last_failure_at) lines.push(el('div', { class: 'fail-text', 'data-testid': 'last-failure' }, `ERR ${utcMinute(w.last_failure_at)}`));
  if (lines.length === 0) lines.push(el('span', { class: 'muted' }, 'never'));
  return lines;
}

function fireResult(w) {
  const r = state.fire.get(w.uuid);
  if (!r) return null;
  let text;
  let tone;
  if (r.pending) {
    text = 'FIRING…';
    tone = 'muted';
  } else if (r.failed) {
    text = `NOT SENT · ${r.failed}`;
    tone = 'fail';
  } else {
    const parts = [r.delivered ? 'DELIVERED' : 'FAILED'];
    if (r.status_code !== null && r.status_code !== undefined) parts.push(String(r.status_code));
    if (r.error) parts.push(r.error);
    text = parts.join(' · ');
    tone = r.delivered ? 'ok' : 'fail';
  }
  return el('div', { class: `fire-result ${tone}`, 'data-testid': 'fire-result', role: 'status', title: text }, text);
}

function buildRow(w, admin) {
  const patterns = el('ul', { class: 'patterns', 'data-testid': 'row-patterns' },
    ...w.topic_patterns.map((p) => el('li', {}, el('code', {}, p))));
  // A viewer gets no action buttons at all, not disabled ones.
  const actions = admin
    ? el('div', { class: 'row-actions' },
        el('button', { type: 'button', class: 'btn small fire', 'data-testid': 'fire-button',
          'aria-label': `Fire a test event at ${w.name}`, on: { click: () => fire(w) } }, 'FIRE'),
        el('button', { type: 'button', class: 'btn small', 'data-testid': 'edit-button',
          'aria-label': `Edit ${w.name}`, on: { click: () => openEditor(w) } }, 'Edit'),
        el('button', { type: 'button', class: 'btn small danger-outline', 'data-testid': 'delete-button',
          'aria-label': `Delete ${w.name}`, on: { click: () => openDelete(w) } }, 'Delete'))
    : null;
  return el('tr', { 'data-testid': 'webhook-row', 'data-uuid': w.uuid, 'data-name': w.name,
    class: isTripped(w) ? 'tripped' : (w.enabled ? '' : 'disabled') },
    el('th', { scope: 'row', class: 'name', 'data-testid': 'row-name' },
      el('a', { href: detailHref(w.uuid), 'data-testid': 'row-open', title: `Deliveries, dead letters and health of ${w.name}` }, w.name)),
    el('td', { class: 'url', 'data-testid': 'row-url', title: w.url }, w.url),
    el('td', {}, patterns),
    el('td', {}, statusChips(w)),
    el('td', { class: 'last' }, ...lastDelivery(w)),
    admin ? el('td', { class: 'col-actions' }, actions, fireResult(w)) : null);
}

function render() {
  const admin = isAdmin();
  const list = state.webhooks;
  renderCounts();
  $('create-button').hidden = !admin;
  $('actions-head').hidden = !admin;
  const forbidden = $('forbidden');
  if (state.forbidden) {
    $('forbidden-text').textContent =
      `The API answered “${state.forbidden}”. Signed in as ${state.session.username || 'this user'} ` +
      `(role: ${state.session.role}); webhook subscriptions are managed by admins only. ` +
      'Ask an admin if you need access.';
  }
  forbidden.hidden = !state.forbidden;
  $('table-wrap').hidden = Boolean(state.forbidden);
  $('readonly-note').hidden = admin || Boolean(state.forbidden) || !list;

  const tbody = $('rows');
  if (!list) {
    if (!state.forbidden) tbody.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'Loading…')));
    state.rows.clear();
    return;
  }
  if (list.length === 0) {
    tbody.replaceChildren(el('tr', { 'data-testid': 'empty' }, el('td', { colspan: 6, class: 'empty' }, ...emptyState(admin))));
    state.rows.clear();
    return;
  }
  // Rows whose data did not change keep their DOM nodes, so a refresh never steals
  // focus or a half-finished hover.
  const next = new Map();
  const trs = list.map((w) => {
    const sig = JSON.stringify([w, state.fire.get(w.uuid) || null, admin]);
    const prev = state.rows.get(w.uuid);
    const tr = prev && prev.sig === sig ? prev.tr : buildRow(w, admin);
    next.set(w.uuid, { sig, tr });
    return tr;
  });
  state.rows = next;
  const current = Array.from(tbody.children);
  if (current.length !== trs.length || current.some((tr, i) => tr !== trs[i])) tbody.replaceChildren(...trs);
}

// ---------------------------------------------------------------- dialogs

function openDialog(dialog) {
  if (!dialog.open) dialog.showModal();
}

function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

function setError(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

function splitPatterns(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

// Which presets a stored list contains whole, and the patterns left over.
function derivePresets(patterns) {
  const rest = new Set(patterns);
  const presets = [];
  for (const [name, expansion] of Object.entries(PRESETS)) {
    if (expansion.every((p) => rest.has(p))) {
      presets.push(name);
      expansion.forEach((p) => rest.delete(p));
    }
  }
  return { presets, raw: patterns.filter((p) => rest.has(p)) };
}

// The list the API will store: preset expansions first, then raw patterns, deduplicated.
function effectivePatterns(presets, raw) {
  const out = [];
  for (const p of [...presets.flatMap((name) => PRESETS[name]), ...raw]) if (!out.includes(p)) out.push(p);
  return out;
}

function presetBoxes() {
  return Array.from(document.querySelectorAll('#editor-form input[name="preset"]'));
}

// Delivery options: what a subscription has when none is given (from the API, loadPresets).
let OPTION_DEFAULTS = {};
const OPTION_NUMBERS = [
  ['editor-batch-max', 'Batch size'], ['editor-batch-linger', 'Batch linger'], ['editor-rate-limit', 'Rate limit'],
];

function syncTemplateField() {
  const shape = $('editor-shape').value;
  $('editor-template-field').hidden = shape !== 'template';
  // A destination shape's own settings (docs/destinations.md): only its fields show.
  let any = false;
  document.querySelectorAll('#editor-destination [data-shapes]').forEach((node) => {
    node.hidden = !node.dataset.shapes.split(' ').includes(shape);
    any ||= !node.hidden;
  });
  $('editor-destination').hidden = !any;
}

function destinationFields() {
  return Array.from(document.querySelectorAll('#editor-destination [data-field]'));
}

function fillDestination(w) {
  const d = w?.destination || {};
  for (const node of destinationFields()) {
    if (node.type === 'checkbox') node.checked = Boolean(d[node.dataset.field]);
    else node.value = d[node.dataset.field] ?? '';
  }
  $('editor-dest-routing-key').value = '';
  $('editor-dest-routing-key').placeholder = w?.routing_key_set ? 'stored; blank keeps it' : '';
}

// The settings the chosen shape takes, or null when none is set.
function readDestination(shape) {
  const d = {};
  for (const node of destinationFields()) {
    if (!node.closest('[data-shapes]').dataset.shapes.split(' ').includes(shape)) continue;
    if (node.type === 'checkbox') { if (node.checked) d[node.dataset.field] = true; }
    else if (node.value.trim() !== '') d[node.dataset.field] = node.value.trim();
  }
  return Object.keys(d).length ? d : null;
}

function fillOptions(w) {
  const o = w || OPTION_DEFAULTS;
  $('editor-ordered').checked = Boolean(o.ordered);
  $('editor-batch-max').value = o.batch_max ?? '';
  $('editor-batch-linger').value = o.batch_linger_ms ?? '';
  $('editor-rate-limit').value = o.rate_limit_per_sec ?? '';
  $('editor-shape').value = o.shape || OPTION_DEFAULTS.shape;
  $('editor-template').value = o.template ?? '';
  $('editor-filter').value = o.filter ?? '';
  $('editor-filter-result').textContent = '';
  fillDestination(w);
  syncTemplateField();
}

function numberValue(id) {
  const text = $(id).value.trim();
  return text === '' ? null : Number(text);
}

// The options as the form has them; the API checks the ranges and says which is wrong.
function readOptions() {
  const shape = $('editor-shape').value;
  return {
    ordered: $('editor-ordered').checked,
    batch_max: numberValue('editor-batch-max'),
    batch_linger_ms: numberValue('editor-batch-linger'),
    rate_limit_per_sec: numberValue('editor-rate-limit'),
    shape,
    template: shape === 'template' ? $('editor-template').value : null,
    filter: $('editor-filter').value.trim() || null,
    destination: readDestination(shape),
  };
}

// PagerDuty's routing key when one is typed (blank keeps the stored one).
function readRoutingKey(shape) {
  const key = $('editor-dest-routing-key').value.trim();
  return shape === 'pagerduty' && key ? { routing_key: key } : {};
}

// Receiver authentication. Secret parts are write-only: the API never returns them, so
// the form shows what is stored (names, types, public fields) and a blank secret keeps it.
const AUTH_FIELDS = {
  bearer: { token: 'editor-auth-token' },
  basic: { username: 'editor-auth-username', password: 'editor-auth-password' },
  oauth2_client_credentials: {
    token_url: 'editor-auth-token-url', client_id: 'editor-auth-client-id', client_secret: 'editor-auth-client-secret',
    scope: 'editor-auth-scope', audience: 'editor-auth-audience',
  },
};
const AUTH_SECRETS = ['token', 'password', 'client_secret'];

function syncAuthFields() {
  const type = $('editor-auth-type').value;
  document.querySelectorAll('#editor-access [data-auth]').forEach((node) => { node.hidden = node.dataset.auth !== type; });
}

function headerLines(w) {
  return (w?.headers || []).map((name) => `${name}:`).join('\n');
}

function fillAccess(w) {
  const auth = w?.auth || null;
  $('editor-auth-type').value = auth ? auth.type : '';
  for (const fields of Object.values(AUTH_FIELDS)) {
    for (const [key, id] of Object.entries(fields)) {
      $(id).value = auth && !AUTH_SECRETS.includes(key) ? (auth[key] ?? '') : '';
      $(id).placeholder = auth && AUTH_SECRETS.includes(key) ? 'stored; blank keeps it' : '';
    }
  }
  $('editor-headers').value = headerLines(w);
  $('editor-tls-ca').value = w?.tls?.ca_pem ?? '';
  $('editor-tls-cert').value = w?.tls?.client_cert_pem ?? '';
  $('editor-tls-key').value = '';
  $('editor-tls-key-note').textContent = w?.tls?.client_key_stored ? '(PEM; stored, blank keeps it)' : '(PEM)';
  syncAuthFields();
}

// `Name: value` lines as the API's object; a name alone (`Name` or `Name:`) is null, which
// keeps the stored value.
function readHeaders() {
  const headers = {};
  for (const line of $('editor-headers').value.split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf(':');
    const name = (at < 0 ? line : line.slice(0, at)).trim();
    const value = at < 0 ? '' : line.slice(at + 1).trim();
    headers[name] = value === '' ? null : value;
  }
  return headers;
}

// What the access part of the form says, as create/PATCH fields; on edit only what changed.
function readAccess(w) {
  const body = {};
  const type = $('editor-auth-type').value;
  if (!type) {
    if (w?.auth) body.auth = null;
  } else {
    const auth = { type };
    for (const [key, id] of Object.entries(AUTH_FIELDS[type])) {
      const value = $(id).value.trim();
      if (value !== '') auth[key] = value;
    }
    const stored = w?.auth || {};
    const same = stored.type === type && Object.keys(AUTH_FIELDS[type]).every((key) =>
      AUTH_SECRETS.includes(key) ? auth[key] === undefined : (auth[key] ?? null) === (stored[key] ?? null));
    if (!same) body.auth = auth;
  }
  const headersText = $('editor-headers').value.trim();
  if (headersText !== headerLines(w).trim()) {
    body.headers = headersText === '' ? (w?.headers?.length ? null : undefined) : readHeaders();
    if (body.headers === undefined) delete body.headers;
  }
  const tls = {
    ca_pem: $('editor-tls-ca').value.trim() || null,
    client_cert_pem: $('editor-tls-cert').value.trim() || null,
  };
  const key = $('editor-tls-key').value.trim();
  if (key) tls.client_key_pem = key;
  const storedTls = w?.tls || null;
  const empty = !tls.ca_pem && !tls.client_cert_pem && !key;
  const unchanged = !key && (tls.ca_pem ?? null) === ((storedTls?.ca_pem ?? '').trim() || null) &&
    (tls.client_cert_pem ?? null) === ((storedTls?.client_cert_pem ?? '').trim() || null);
  if (empty) {
    if (storedTls) body.tls = null;
  } else if (!unchanged) {
    body.tls = tls;
  }
  return body;
}

// Try the filter on the sample event (POST /webhooks/filter-check) before saving.
async function testFilter() {
  const out = $('editor-filter-result');
  let event;
  try {
    event = JSON.parse($('editor-filter-event').value || '{}');
  } catch (_) {
    out.textContent = 'The sample event is not JSON.';
    return;
  }
  try {
    const v = await api('POST', '/webhooks/filter-check', { filter: $('editor-filter').value, event });
    const where = v.position ? ` (line ${v.position.line}, column ${v.position.column})` : '';
    out.textContent = v.result === 'match' ? 'Match: this event would be delivered.'
      : v.result === 'no_match' ? 'No match: this event would be filtered out.'
      : `${v.stage === 'compile' ? 'Invalid filter' : 'Error on this event (counted as filtered)'}: ${v.error}${where}`;
  } catch (err) {
    if (err.status !== 401) out.textContent = err.detail;
  }
}

async function openEditor(w) {
  if (!(await ensurePresets())) return;
  state.editing = w || null;
  const form = $('editor-form');
  form.reset();
  setError($('editor-error'), '');
  $('editor-title').textContent = w ? `Edit ${w.name}` : 'New webhook';
  $('editor-submit').textContent = w ? 'Save' : 'Create';
  $('editor-secret-field').hidden = Boolean(w);
  $('editor-rotate-field').hidden = !w;
  $('editor-rotate-confirm').hidden = true;
  $('editor-rotation').textContent = w ? rotationText(w) : '';
  const note = $('editor-trip-note');
  if (w && isTripped(w)) {
    const failures = w.consecutive_failures > 0 ? ` after ${w.consecutive_failures} consecutive failures` : '';
    const last = w.last_error ? ` Last error: ${w.last_error}` : '';
    note.textContent = `The circuit breaker disabled this webhook at ${utcMinute(w.auto_disabled_at)} UTC${failures}. ` +
      `Switch it to Enabled and save to reset the circuit.${last}`;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
  if (w) {
    const { presets, raw } = derivePresets(w.topic_patterns);
    $('editor-name').value = w.name;
    $('editor-url').value = w.url;
    presetBoxes().forEach((box) => { box.checked = presets.includes(box.value); });
    $('editor-patterns').value = raw.join('\n');
    $('editor-enabled').checked = w.enabled;
  } else {
    $('editor-enabled').checked = true;
  }
  fillOptions(w);
  fillAccess(w);
  openDialog($('editor'));
  $('editor-name').focus();
}

async function submitEditor(event) {
  event.preventDefault();
  const name = $('editor-name').value.trim();
  const url = $('editor-url').value.trim();
  const presets = presetBoxes().filter((b) => b.checked).map((b) => b.value);
  const raw = splitPatterns($('editor-patterns').value);
  const enabled = $('editor-enabled').checked;
  if (!name || !url) {
    setError($('editor-error'), 'Name and receiver URL are required.');
    return;
  }
  const unreadable = OPTION_NUMBERS.find(([id]) => $(id).validity.badInput);
  if (unreadable) {
    setError($('editor-error'), `${unreadable[1]} must be a number.`);
    return;
  }
  const options = readOptions();
  const submit = $('editor-submit');
  submit.disabled = true;
  setError($('editor-error'), '');
  try {
    const w = state.editing;
    if (w) {
      // Send only what changed: the API publishes a reload only for real changes.
      const body = {};
      if (name !== w.name) body.name = name;
      if (url !== w.url) body.url = url;
      if (enabled !== w.enabled) body.enabled = enabled;
      const patterns = effectivePatterns(presets, raw);
      if (JSON.stringify(patterns) !== JSON.stringify(w.topic_patterns)) {
        body.simple_events = presets;
        body.topic_patterns = raw;
      }
      for (const [key, value] of Object.entries(options)) {
        if (JSON.stringify(value) !== JSON.stringify(w[key] ?? OPTION_DEFAULTS[key])) body[key] = value;
      }
      Object.assign(body, readRoutingKey(options.shape));
      Object.assign(body, readAccess(w));
      if (Object.keys(body).length > 0) await api('PATCH', `/webhooks/${encodeURIComponent(w.uuid)}`, body);
      closeDialog($('editor'));
    } else {
      const body = { name, url, simple_events: presets, topic_patterns: raw, enabled };
      for (const [key, value] of Object.entries(options)) {
        if (value !== OPTION_DEFAULTS[key]) body[key] = value;
      }
      Object.assign(body, readRoutingKey(options.shape));
      Object.assign(body, readAccess(null));
      const secret = $('editor-secret').value;
      if (secret) body.secret = secret;
      const created = await api('POST', '/webhooks/', body);
      closeDialog($('editor'));
      showSecret(created);
    }
    await refresh();
  } catch (err) {
    if (err.status !== 401) setError($('editor-error'), err.detail);
  } finally {
    submit.disabled = false;
  }
}

// What the Edit dialog says of the last rotation.
function rotationText(w) {
  if (w.previous_secret_expires_at) {
    return `(rotated ${utcMinute(w.secret_rotated_at)} UTC; the old secret also signs until ${utcMinute(w.previous_secret_expires_at)} UTC)`;
  }
  return w.secret_rotated_at ? `(last rotated ${utcMinute(w.secret_rotated_at)} UTC)` : '';
}

async function rotateSecret() {
  const w = state.editing;
  if (!w) return;
  const button = $('editor-rotate-confirm-button');
  button.disabled = true;
  setError($('editor-error'), '');
  try {
    const rotated = await api('POST', `/webhooks/${encodeURIComponent(w.uuid)}/rotate-secret`, {});
    closeDialog($('editor'));
    showSecret(rotated, 'Secret rotated');
    await refresh();
  } catch (err) {
    if (err.status !== 401) setError($('editor-error'), err.detail);
  } finally {
    button.disabled = false;
  }
}

function showSecret(created, title) {
  $('secret-title').textContent = title || 'Webhook created';
  const note = $('secret-note');
  note.textContent = created.previous_secret_expires_at
    ? `The old secret keeps signing beside this one until ${utcMinute(created.previous_secret_expires_at)} UTC.`
    : '';
  note.hidden = !created.previous_secret_expires_at;
  $('secret-name').textContent = created.name;
  $('secret-value').value = created.secret;
  $('secret-copied').textContent = '';
  openDialog($('secret-dialog'));
  $('secret-value').select();
}

async function copySecret() {
  const input = $('secret-value');
  try {
    await navigator.clipboard.writeText(input.value);
    $('secret-copied').textContent = 'Copied to the clipboard.';
  } catch (_) {
    // The clipboard API needs a secure context; selecting lets Ctrl+C do it.
    input.focus();
    input.select();
    $('secret-copied').textContent = 'Press Ctrl+C to copy the selected secret.';
  }
}

function closeSecret() {
  // The secret leaves the page with the dialog: it is never kept anywhere.
  $('secret-value').value = '';
  closeDialog($('secret-dialog'));
}

function openDelete(w) {
  state.deleting = w;
  $('confirm-text').textContent =
    `Delete “${w.name}”? Deliveries to ${w.url} stop at once, and this cannot be undone.`;
  setError($('confirm-error'), '');
  openDialog($('confirm-dialog'));
  $('confirm-cancel').focus();
}

async function confirmDelete() {
  const w = state.deleting;
  if (!w) return;
  const button = $('confirm-delete');
  button.disabled = true;
  try {
    await api('DELETE', `/webhooks/${encodeURIComponent(w.uuid)}`);
    state.fire.delete(w.uuid);
    closeDialog($('confirm-dialog'));
    state.deleting = null;
    await refresh();
  } catch (err) {
    if (err.status === 404) {
      closeDialog($('confirm-dialog'));
      await refresh();
    } else if (err.status !== 401) {
      setError($('confirm-error'), err.detail);
    }
  } finally {
    button.disabled = false;
  }
}

async function fire(w) {
  state.fire.set(w.uuid, { pending: true });
  render();
  try {
    const r = await api('POST', `/webhooks/${encodeURIComponent(w.uuid)}/test`);
    state.fire.set(w.uuid, { delivered: Boolean(r.delivered), status_code: r.status_code, error: r.error || null });
  } catch (err) {
    if (err.status === 401) return;
    state.fire.set(w.uuid, { failed: err.detail });
  }
  render();
}

// ---------------------------------------------------------------- first run, presets, header

// While no user exists the login form cannot be passed: say how to make the first
// admin. The API tells only that (GET /auth/first-run needs no token).
async function checkFirstRun() {
  let noUsers = false;
  try {
    const r = await api('GET', '/auth/first-run');
    noUsers = Boolean(r && r.no_users);
  } catch (_) {
    noUsers = false;
  }
  $('first-run').hidden = !noUsers || Boolean(state.session);
}

// What the empty Webhooks page says: the first steps, or that there is nothing yet.
function emptyState(admin) {
  if (!admin) return ['No webhooks configured yet.'];
  return [
    el('p', { class: 'empty-title' }, 'No webhooks yet. Forward DECNET events to a SIEM, SOAR or chat hook in two steps:'),
    el('ol', { class: 'first-steps', 'data-testid': 'first-steps' },
      el('li', {}, el('strong', {}, '+ New webhook'), ': a name, the receiver URL and the events it wants (a preset or NATS patterns). Store the signing secret it shows once.'),
      el('li', {}, el('strong', {}, 'FIRE'), ' on its row sends a signed test event, so you see at once whether the receiver accepts it.'),
      el('li', {}, 'Open it by its name for its delivery log, dead letters, replay and health.')),
  ];
}

// The presets and option defaults the create form starts from, once per session.
async function ensurePresets() {
  if (state.presets) return true;
  try {
    applyPresets(await api('GET', '/webhooks/presets'));
    return true;
  } catch (err) {
    if (err.status !== 401) showBanner(`Could not load the presets: ${err.detail}`);
    return false;
  }
}

function applyPresets(p) {
  state.presets = p;
  PRESETS = Object.fromEntries(p.simple_events.map((e) => [e.name, e.patterns]));
  OPTION_DEFAULTS = { ...p.option_defaults };
  $('preset-boxes').replaceChildren(...p.simple_events.map((e) =>
    el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'preset', value: e.name, 'data-testid': `preset-${e.name}` }),
      el('span', {}, el('strong', {}, e.label), ' ', ...e.patterns.flatMap((pat) => [el('code', {}, pat), ' '])))));
  $('editor-shape').replaceChildren(...p.shapes.map((shape) => el('option', { value: shape.name }, shape.label)));
}

// All subscriptions' deliveries of the last five minutes, for the header.
async function loadRecent(session) {
  try {
    const recent = await api('GET', '/console/stats?window=5m&step=1m');
    if (state.session !== session) return;
    state.recent = recent;
  } catch (_) {
    state.recent = null;
  }
  renderRecent();
}

function renderRecent() {
  const node = $('delivery-rate');
  const r = state.recent;
  if (!r) {
    node.textContent = '';
    return;
  }
  const seconds = Math.max(1, (Date.now() - new Date(r.from).getTime()) / 1000);
  const rate = r.totals.delivered / seconds;
  const failing = (state.webhooks || []).filter((w) => w.consecutive_failures > 0).length;
  const parts = [`${formatRate(rate)} deliveries/s over the last 5 min`];
  if (r.totals.failed > 0) parts.push(`${r.totals.failed} failed attempt${r.totals.failed === 1 ? '' : 's'}`);
  parts.push(`${failing} subscription${failing === 1 ? '' : 's'} failing`);
  node.textContent = parts.join(' · ');
  node.className = `rate ${failing > 0 || r.totals.failed > 0 ? 'rate-alarm' : 'muted'}`;
}

function formatRate(rate) {
  if (rate === 0) return '0';
  if (rate < 10) return rate.toFixed(2);
  return rate.toFixed(0);
}

// ---------------------------------------------------------------- the subscription page

const DETAIL_PAGE = 20; // log entries and dead letters per page
const REPLAY_PAGE = 25; // dead letters per replay request, so progress shows
const HEX_LIMIT = 4096; // bytes of a body shown as hex
const DAY_REFRESH_MS = 60000;

function detailHref(uuid) {
  return `#/webhooks/${encodeURIComponent(uuid)}`;
}

// `#/webhooks/<uuid>` opens a subscription's page; anything else the list.
function route() {
  if (!state.session) return;
  const m = /^#\/webhooks\/([0-9a-fA-F-]{36})$/.exec(location.hash);
  if (m) {
    if (!state.detail || state.detail.uuid !== m[1]) {
      state.detail = {
        uuid: m[1], webhook: null, missing: false, logOffset: 0, logOutcome: '', deadOffset: 0, day: null, dayAt: 0,
        open: new Set(), hex: new Set(), replaying: false, sig: {},
      };
      $('log-filter').value = '';
      setReplayStatus('', '');
      for (const id of ['detail-name', 'detail-url', 'log-total', 'dead-total', 'detail-refreshed']) $(id).textContent = '';
      for (const id of ['detail-chips', 'log-rows', 'dead-rows', 'chart-hour-body', 'chart-day-body']) $(id).replaceChildren();
    }
    $('webhooks-view').hidden = true;
    $('detail-view').hidden = false;
    renderLedger(null);
  } else {
    state.detail = null;
    $('detail-view').hidden = true;
    $('webhooks-view').hidden = false;
  }
}

window.addEventListener('hashchange', () => {
  if (!state.session) return;
  route();
  refresh();
});

async function loadDetail() {
  const d = state.detail;
  const base = `/console/webhooks/${encodeURIComponent(d.uuid)}`;
  const outcome = d.logOutcome ? `&outcome=${d.logOutcome}` : '';
  // The day's chart moves by one 30-minute bar at a time and costs the database the
  // most: it is read again at most once a minute.
  const dayDue = !d.day || Date.now() - d.dayAt > DAY_REFRESH_MS;
  let answers;
  try {
    answers = await Promise.all([
      api('GET', base),
      api('GET', `${base}/stats?window=1h&step=1m`),
      dayDue ? api('GET', `${base}/stats?window=1d&step=30m`) : Promise.resolve(d.day),
      api('GET', `${base}/deliveries?limit=${DETAIL_PAGE}&offset=${d.logOffset}${outcome}`),
      api('GET', `${base}/dead-letters?limit=${DETAIL_PAGE}&offset=${d.deadOffset}`),
      api('GET', `${base}/ledger`),
    ]);
  } catch (err) {
    if (state.detail !== d) return;
    if (err.status === 404) {
      d.missing = true;
      renderDetail();
    } else if (err.status !== 0 && err.status !== 401) {
      showBanner(`Could not load the webhook: ${err.detail}`);
    }
    return;
  }
  if (state.detail !== d) return;
  const [webhook, hour, day, log, dead, ledger] = answers;
  if (dayDue) d.dayAt = Date.now();
  Object.assign(d, { webhook, hour, day, log, dead, ledger, missing: false });
  $('detail-refreshed').textContent = `Updated ${utcTime(new Date())} UTC`;
  renderDetail();
}

// Rebuild a part only when its data changed, so an open body or a selection survives a refresh.
function changed(d, part, data) {
  const sig = JSON.stringify(data);
  if (d.sig[part] === sig) return false;
  d.sig[part] = sig;
  return true;
}

function renderDetail() {
  const d = state.detail;
  $('detail-missing').hidden = !d.missing;
  for (const id of ['health', 'delivery-log', 'dead-letters', 'ledger']) $(id).hidden = d.missing;
  if (d.missing || !d.webhook) return;
  const w = d.webhook;
  $('detail-name').textContent = w.name;
  $('detail-url').textContent = w.url;
  if (changed(d, 'chips', w)) $('detail-chips').replaceChildren(statusChips(w));
  if (changed(d, 'hour', d.hour.buckets)) drawChart('chart-hour', d.hour, (t) => utcTime(t).slice(0, 5));
  if (changed(d, 'day', d.day.buckets)) drawChart('chart-day', d.day, (t) => utcTime(t).slice(0, 5));
  if (changed(d, 'ledger', d.ledger)) renderLedger(d.ledger);
  renderLog(d);
  renderDead(d);
  $('replay-controls').hidden = !isAdmin();
}

// What became of every event the subscription received, summed over every worker:
// received = filtered + delivered + dead-lettered + released + queued + in flight.
const LEDGER_TERMS = [
  ['filtered', 'filtered'], ['delivered', 'delivered'], ['dead_lettered', 'dead-lettered'],
  ['released', 'released'], ['queued', 'queued'], ['in_flight', 'in flight'],
];

function renderLedger(ledger) {
  const node = $('ledger');
  node.hidden = !ledger;
  if (!ledger) return;
  const head = el('div', { class: 'panel-head' }, el('h2', {}, 'Ledger ',
    el('span', { class: 'muted' }, `· ${ledger.workers.length} worker${ledger.workers.length === 1 ? '' : 's'} reporting`)));
  const row = (label, counts) => el('tr', {},
    el('td', {}, label),
    el('td', { class: 'num' }, String(counts.received)),
    ...LEDGER_TERMS.map(([key]) => el('td', { class: 'num' }, String(counts[key]))));
  const table = el('table', { 'data-testid': 'ledger-table' },
    el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, 'received'),
      ...LEDGER_TERMS.map(([, label]) => el('th', {}, label)))),
    el('tbody', {}, row('all workers', ledger),
      ...ledger.workers.map((w) => row(`${w.worker_id.slice(0, 8)} · ${utcTime(new Date(w.reported_at))} UTC`, w))));
  const reasons = Object.entries(ledger.dead_lettered_by_reason || {}).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  const notes = [];
  if (ledger.filter_errors > 0) notes.push(`${ledger.filter_errors} of the filtered failed the filter's evaluation`);
  if (reasons.length) notes.push(`dead-lettered by reason: ${reasons.join(', ')}`);
  node.replaceChildren(head, table, ...(notes.length ? [el('p', { class: 'muted' }, notes.join(' · '))] : []));
}

// ---------------------------------------------------------------- charts (inline SVG)

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10000 ? 0 : 1)} s` : `${ms} ms`;
}

// Stacked bars of delivered, failed and dead-lettered per interval, and below them
// the p50 and p99 latency on a log scale; every bar says its figures in a tooltip.
function drawChart(id, stats, label) {
  const W = 600;
  const H = 110;
  const LH = 56;
  const buckets = stats.buckets;
  const n = buckets.length;
  const bw = W / n;
  const peak = Math.max(1, ...buckets.map((b) => b.delivered + b.failed + b.dead_lettered));
  const y = (v) => (v / peak) * (H - 14);
  const bars = svg('g', { class: 'bars' });
  buckets.forEach((b, i) => {
    const x = i * bw;
    const g = svg('g', { 'data-testid': 'chart-bar', 'data-delivered': b.delivered, 'data-failed': b.failed, 'data-dead': b.dead_lettered });
    let top = H;
    for (const [value, cls] of [[b.delivered, 'bar-delivered'], [b.failed, 'bar-failed'], [b.dead_lettered, 'bar-dead']]) {
      if (value <= 0) continue;
      const h = Math.max(1.5, y(value));
      top -= h;
      g.append(svg('rect', { class: cls, x: (x + 0.5).toFixed(2), y: top.toFixed(2), width: Math.max(1, bw - 1).toFixed(2), height: h.toFixed(2) }));
    }
    // An invisible full-height target, so thin bars still have a tooltip.
    g.append(svg('rect', { class: 'bar-hit', x: x.toFixed(2), y: 0, width: bw.toFixed(2), height: H }));
    const t = new Date(b.start);
    g.append(svg('title', {}, document.createTextNode(
      `${utcMinute(t.toISOString())} UTC · ${b.delivered} delivered · ${b.failed} failed · ${b.dead_lettered} dead-lettered` +
      ` · p50 ${formatMs(b.p50_ms)} · p99 ${formatMs(b.p99_ms)}`)));
    bars.append(g);
  });
  const counts = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-counts', role: 'img', preserveAspectRatio: 'none',
    'aria-label': `Deliveries per interval, ${stats.window}`, 'data-testid': 'chart-counts' },
    svg('line', { class: 'axis', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }), bars);

  // Latency: log10 scale from 1 ms to the greatest p99 (at least 10 ms).
  const maxMs = Math.max(10, ...buckets.map((b) => b.p99_ms || 0));
  const ly = (ms) => LH - 4 - (Math.log10(Math.max(1, ms)) / Math.log10(maxMs)) * (LH - 10);
  const path = (key) => {
    let d = '';
    let pen = false;
    buckets.forEach((b, i) => {
      const v = b[key];
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      const x = (i + 0.5) * bw;
      d += `${pen ? 'L' : 'M'}${x.toFixed(2)},${ly(v).toFixed(2)} `;
      // A lone point still shows: a short tick.
      if (!pen) d += `L${(x + 0.01).toFixed(2)},${ly(v).toFixed(2)} `;
      pen = true;
    });
    return d.trim();
  };
  const latency = svg('svg', { viewBox: `0 0 ${W} ${LH}`, class: 'chart-latency', role: 'img', preserveAspectRatio: 'none',
    'aria-label': `p50 and p99 latency per interval, ${stats.window}`, 'data-testid': 'chart-latency' },
    svg('line', { class: 'axis', x1: 0, y1: LH - 0.5, x2: W, y2: LH - 0.5 }),
    svg('path', { class: 'line-p99', d: path('p99_ms') || 'M0,0', 'data-testid': 'line-p99' }),
    svg('path', { class: 'line-p50', d: path('p50_ms') || 'M0,0', 'data-testid': 'line-p50' }));

  const first = new Date(buckets[0].start);
  const body = $(`${id}-body`);
  body.replaceChildren(
    el('div', { class: 'chart-scale' }, el('span', {}, `${peak}`), el('span', {}, '0')),
    el('div', { class: 'chart-plots' }, counts, latency,
      el('div', { class: 'chart-times' }, el('span', {}, `${label(first)} UTC`), el('span', {}, 'now'))),
    el('div', { class: 'chart-scale' }, el('span', {}, formatMs(Math.round(maxMs))), el('span', {}, '1 ms')));
  const t = stats.totals;
  $(`${id}-totals`).textContent = `${t.delivered} delivered · ${t.failed} failed · ${t.dead_lettered} dead-lettered` +
    ` · p50 ${formatMs(t.p50_ms)} · p99 ${formatMs(t.p99_ms)}`;
}

// ---------------------------------------------------------------- delivery log and dead letters

function pageText(page) {
  if (page.total === 0) return 'none';
  const last = Math.min(page.offset + page.items.length, page.total);
  return `${page.offset + 1}–${last} of ${page.total}`;
}

function renderLog(d) {
  const page = d.log;
  $('log-total').textContent = `(${page.total})`;
  $('log-page').textContent = pageText(page);
  $('log-newer').disabled = page.offset === 0;
  $('log-older').disabled = page.offset + page.items.length >= page.total;
  if (!changed(d, 'log', page)) return;
  if (page.items.length === 0) {
    $('log-rows').replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'empty' },
      d.logOutcome ? 'No attempts with this outcome.' : 'No delivery attempts yet.')));
    return;
  }
  $('log-rows').replaceChildren(...page.items.map((a) => el('tr', { 'data-testid': 'log-entry', class: a.ok ? '' : 'failed' },
    el('td', { class: 'mono' }, `${utcMinute(a.attempted_at)}:${pad(new Date(a.attempted_at).getUTCSeconds())}`),
    el('td', { class: 'mono ellipsis', title: a.event_id }, a.event_id),
    el('td', { class: 'mono' }, String(a.attempt)),
    el('td', { class: `mono ${a.ok ? 'ok-text' : 'fail-text'}`, 'data-testid': 'log-status' },
      a.status_code === null || a.status_code === undefined ? '—' : String(a.status_code)),
    el('td', { class: 'mono' }, `${a.latency_ms} ms`),
    el('td', { class: 'error-text', 'data-testid': 'log-error' }, a.error || ''))));
}

function renderDead(d) {
  const page = d.dead;
  $('dead-total').textContent = `(${page.total})`;
  $('dead-page').textContent = pageText(page);
  $('dead-newer').disabled = page.offset === 0;
  $('dead-older').disabled = page.offset + page.items.length >= page.total;
  if (!changed(d, 'dead', [page, [...d.open], [...d.hex], d.replaying, isAdmin()])) return;
  if (page.items.length === 0) {
    $('dead-rows').replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No dead letters: nothing is waiting for a replay.')));
    return;
  }
  const rows = [];
  for (const x of page.items) {
    const open = d.open.has(x.uuid);
    const actions = el('div', { class: 'row-actions' },
      el('button', { type: 'button', class: 'btn small', 'data-testid': 'dead-body-toggle', 'aria-expanded': String(open),
        on: { click: () => { toggle(d.open, x.uuid); renderDead(d); } } }, open ? 'Hide body' : 'Body'),
      isAdmin() && x.reason !== 'undecodable'
        ? el('button', { type: 'button', class: 'btn small', 'data-testid': 'dead-replay', disabled: d.replaying,
          on: { click: () => replay({ id: x.uuid, label: x.event_id }) } }, 'Replay')
        : null);
    rows.push(el('tr', { 'data-testid': 'dead-letter', 'data-event-id': x.event_id },
      el('td', { class: 'mono' }, `${utcMinute(x.created_at)}:${pad(new Date(x.created_at).getUTCSeconds())}`),
      el('td', {}, chip(x.reason === 'undecodable' ? 'warn' : 'fail', x.reason, reasonText(x.reason), 'dead-reason')),
      el('td', { class: 'mono' }, String(x.attempts)),
      el('td', { class: 'mono' }, x.status_code === null || x.status_code === undefined ? '—' : String(x.status_code)),
      el('td', { class: 'error-text' }, x.error || ''),
      el('td', { class: 'mono ellipsis', title: `${x.topic} · ${x.event_id}` }, x.event_id),
      el('td', { class: 'col-actions' }, actions)));
    if (open) rows.push(el('tr', { class: 'body-row' }, el('td', { colspan: 7 }, bodyView(d, x))));
  }
  $('dead-rows').replaceChildren(...rows);
}

function toggle(set, key) {
  if (set.has(key)) set.delete(key);
  else set.add(key);
}

function reasonText(reason) {
  return {
    retries_exhausted: 'Every attempt of the retry schedule failed',
    non_retryable: 'The receiver answered a status that is not retried',
    queue_overflow: "The subscription's queue was full",
    circuit_tripped: 'Queued when the circuit breaker tripped',
    undecodable: 'Bus input that is not JSON: kept as received, never replayed',
    shutdown: 'Queued when the worker stopped',
    render_failed: "The subscription's shape could not render the event",
    local_failure: 'The last attempt failed for lack of a local resource',
    crashed: 'Held by the subscription when it stopped unexpectedly',
  }[reason] || reason;
}

// The stored body's bytes: the text as UTF-8, or the base64 the API sends for others.
function bodyBytes(x) {
  if (typeof x.body === 'string') return new TextEncoder().encode(x.body);
  const raw = atob(x.body_base64 || '');
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function hexDump(bytes) {
  const lines = [];
  const shown = bytes.subarray(0, HEX_LIMIT);
  for (let i = 0; i < shown.length; i += 16) {
    const row = shown.subarray(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > HEX_LIMIT) lines.push(`… ${bytes.length - HEX_LIMIT} more bytes`);
  return lines.join('\n');
}

function bodyView(d, x) {
  const isText = typeof x.body === 'string';
  const hex = d.hex.has(x.uuid) || !isText;
  const bytes = bodyBytes(x);
  const switcher = el('div', { class: 'body-switch' },
    el('span', { class: 'muted' }, `${bytes.length} bytes · ${x.topic} · event ${x.event_id}`),
    isText ? el('button', { type: 'button', class: 'btn small', 'data-testid': 'dead-body-mode',
      on: { click: () => { toggle(d.hex, x.uuid); renderDead(d); } } }, hex ? 'Show as text' : 'Show as hex') : null);
  // The exact bytes stored: what was, or would have been, sent.
  const text = hex ? hexDump(bytes) : x.body;
  return el('div', { class: 'body-view' }, switcher,
    el('pre', { class: 'body', 'data-testid': hex ? 'dead-body-hex' : 'dead-body-text' }, text));
}

// ---------------------------------------------------------------- replay

function setReplayStatus(text, tone) {
  const node = $('replay-status');
  node.textContent = text;
  node.className = `replay-status ${tone || ''}`;
  node.hidden = !text;
}

// Replay a page of dead letters at a time (oldest first) until none is left or one
// fails, saying after each how far it got. `what`: {} all, {since}, or {id, label}.
async function replay(what) {
  const d = state.detail;
  if (!d || d.replaying) return;
  d.replaying = true;
  renderDead(d);
  for (const id of ['replay-all', 'replay-since-button']) $(id).disabled = true;
  const path = `/webhooks/${encodeURIComponent(d.uuid)}/replay`;
  let query = `?limit=${REPLAY_PAGE}`;
  if (what.id) query = `?id=${encodeURIComponent(what.id)}`;
  else if (what.since) query += `&since=${encodeURIComponent(what.since)}`;
  const scope = what.id ? `event ${what.label}` : (what.since ? `dead letters since ${what.since}` : 'all dead letters');
  let replayed = 0;
  setReplayStatus(`Replaying ${scope}…`, 'muted');
  try {
    for (;;) {
      const r = await api('POST', path + query);
      replayed += r.replayed;
      if (state.detail !== d) return;
      if (r.failed) {
        const status = r.failed.status_code ? ` (HTTP ${r.failed.status_code})` : '';
        setReplayStatus(`Replay stopped: ${replayed} delivered; event ${r.failed.event_id} failed${status}: ${r.failed.error}. ` +
          `${r.remaining} still stored.`, 'fail');
        break;
      }
      if (what.id || r.remaining === 0 || r.replayed === 0) {
        const skipped = r.skipped ? ` ${r.skipped} undecodable left in place (never replayed).` : '';
        const left = what.id ? '' : (r.remaining ? ` ${r.remaining} left.` : ' None left.');
        setReplayStatus(`Replay done: ${replayed} delivered.${left}${skipped}`, 'ok');
        break;
      }
      setReplayStatus(`Replaying ${scope}… ${replayed} delivered, ${r.remaining} to go`, 'muted');
    }
  } catch (err) {
    if (err.status !== 401 && state.detail === d) {
      setReplayStatus(`Replay failed after ${replayed} delivered: ${err.detail}`, 'fail');
    }
  } finally {
    d.replaying = false;
    for (const id of ['replay-all', 'replay-since-button']) $(id).disabled = false;
    if (state.detail === d) await refresh();
  }
}

function replaySince() {
  const raw = $('replay-since').value;
  if (!raw) {
    setReplayStatus('Choose the time (UTC) from which to replay.', 'fail');
    return;
  }
  // The field has no zone: the page reads every time in UTC.
  replay({ since: `${raw.length === 16 ? `${raw}:00` : raw}Z` });
}

function initDetail() {
  $('log-filter').addEventListener('change', () => {
    const d = state.detail;
    if (!d) return;
    d.logOutcome = $('log-filter').value;
    d.logOffset = 0;
    refresh();
  });
  const pager = (id, key, delta) => $(id).addEventListener('click', () => {
    const d = state.detail;
    if (!d) return;
    d[key] = Math.max(0, d[key] + delta);
    refresh();
  });
  pager('log-newer', 'logOffset', -DETAIL_PAGE);
  pager('log-older', 'logOffset', DETAIL_PAGE);
  pager('dead-newer', 'deadOffset', -DETAIL_PAGE);
  pager('dead-older', 'deadOffset', DETAIL_PAGE);
  $('replay-all').addEventListener('click', () => replay({}));
  $('replay-since-button').addEventListener('click', replaySince);
}

// ---------------------------------------------------------------- login

async function submitLogin(event) {
  event.preventDefault();
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  const msg = $('login-message');
  if (!username || !password) {
    msg.textContent = 'Enter a username and a password.';
    msg.className = 'message error';
    msg.hidden = false;
    return;
  }
  const submit = $('login-submit');
  submit.disabled = true;
  try {
    state.session = null;
    const data = await api('POST', '/auth/login', { username, password });
    state.session = startSession(data.access_token, username);
    $('login-password').value = '';
    showWebhooks();
  } catch (err) {
    msg.textContent = err.status === 401 ? 'Wrong username or password.' : err.detail;
    msg.className = 'message error';
    msg.hidden = false;
  } finally {
    submit.disabled = false;
  }
}

// ---------------------------------------------------------------- start

function init() {
  $('login-form').addEventListener('submit', submitLogin);
  $('sign-out').addEventListener('click', signOut);
  $('create-button').addEventListener('click', () => openEditor(null));
  $('editor-form').addEventListener('submit', submitEditor);
  $('editor-cancel').addEventListener('click', () => closeDialog($('editor')));
  $('editor-shape').addEventListener('change', syncTemplateField);
  $('editor-auth-type').addEventListener('change', syncAuthFields);
  $('editor-filter-test').addEventListener('click', testFilter);
  $('secret-copy').addEventListener('click', copySecret);
  $('editor-rotate').addEventListener('click', () => {
    $('editor-rotate-confirm').hidden = false;
    $('editor-rotate-cancel').focus();
  });
  $('editor-rotate-cancel').addEventListener('click', () => { $('editor-rotate-confirm').hidden = true; });
  $('editor-rotate-confirm-button').addEventListener('click', rotateSecret);
  $('secret-done').addEventListener('click', closeSecret);
  // Escape closes dialogs; the secret dialog must still forget its secret.
  $('secret-dialog').addEventListener('close', () => { $('secret-value').value = ''; });
  $('confirm-cancel').addEventListener('click', () => closeDialog($('confirm-dialog')));
  $('confirm-delete').addEventListener('click', confirmDelete);
  initDetail();

  const saved = loadSession();
  if (saved && (saved.exp === null || saved.exp * 1000 > Date.now())) {
    state.session = saved;
    showWebhooks();
  } else {
    if (saved) sessionStorage.removeItem(SESSION_KEY);
    showLogin(saved ? 'Your session has expired. Sign in again.' : '', 'info');
  }
}

init();
