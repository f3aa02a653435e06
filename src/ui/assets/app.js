// DECNET webhooks page: a plain client of the public admin API.
//
// Every value that came from the API reaches the DOM through textContent or an
// attribute, never through HTML parsing; the Content-Security-Policy forbids inline
// code as a second line of defence.
'use strict';

const API = '/api/v1';
const SESSION_KEY = 'decnet.session';
const REFRESH_MS = 5000;

// The API expands these; the page only needs them to show which presets
// an existing pattern list contains.
const PRESETS = {
  AttackerDetail: ['attacker.>'],
  DeckyStatus: ['decky.*.state', 'decky.*.traffic'],
  SystemStatus: ['system.>'],
};

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
  $('session').hidden = true;
  $('login-view').hidden = false;
  const msg = $('login-message');
  msg.textContent = message || '';
  msg.className = `message ${tone || ''}`;
  msg.hidden = !message;
  $('login-password').value = '';
  $('login-username').focus();
}

function showWebhooks() {
  $('login-view').hidden = true;
  $('webhooks-view').hidden = false;
  $('session').hidden = false;
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
    list = await api('GET', '/webhooks/');
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
    el('th', { scope: 'row', class: 'name', 'data-testid': 'row-name' }, w.name),
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
    tbody.replaceChildren(el('tr', { 'data-testid': 'empty' },
      el('td', { colspan: 6, class: 'empty' },
        admin ? 'No webhooks yet. Create one to forward DECNET events to a SIEM, SOAR or chat hook.'
              : 'No webhooks configured.')));
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

// Delivery options: what a subscription has when none is given.
const OPTION_DEFAULTS = {
  ordered: false, batch_max: null, batch_linger_ms: null, rate_limit_per_sec: null, shape: 'raw', template: null,
  destination: null,
};
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
  $('editor-shape').value = o.shape || 'raw';
  $('editor-template').value = o.template ?? '';
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

function openEditor(w) {
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
