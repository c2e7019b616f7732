// @ts-check
/**
 * The privicore web console. Everything goes through the public API (docs/api/) with the
 * profile token, as `privicore-client` does; payloads are encrypted and decrypted here,
 * with a key that never leaves this browser.
 */
import { Api, ApiError } from './api.js';
import { Channel } from './events.js';
import * as layer1 from './layer1.js';
import { badge, button, byId, bytes, el, fillTable, input, saveFile, status, when } from './views.js';

const SESSION = 'privicore.console.session';
const KEY_PREFIX = 'privicore.console.key.';
/** Tokens fetched for the browser-side size and date filters (20 pages of 100). */
const TOKEN_PAGES = 20;

/** @type {{token: string, profileId: string, username: string} | null} */
let session = null;
let api = new Api(null);
/** @type {Channel | null} */
let channel = null;
/** @type {CryptoKey | null} */
let dataKey = null;

// ---- signing in -------------------------------------------------------------------

async function signIn(/** @type {SubmitEvent} */ ev) {
  ev.preventDefault();
  status('login-status', 'Signing in…');
  const username = input('username').value;
  try {
    const auth = await new Api(null).post('/profile/authenticate', {
      username,
      password: input('password').value,
    });
    input('password').value = '';
    session = { token: auth.authorizationToken, profileId: auth.profileId, username };
    sessionStorage.setItem(SESSION, JSON.stringify(session));
    await enter(auth.publicKeyRegistered);
  } catch (e) {
    status('login-status', message(e), 'error');
  }
}

/** @param {boolean} keyRegistered */
async function enter(keyRegistered) {
  if (!session) return;
  api = new Api(session.token, tokenEnded);
  byId('login').hidden = true;
  byId('app').hidden = false;
  byId('whoami').hidden = false;
  byId('signed-in').textContent = `${session.username} · ${session.profileId}`;
  channel = new Channel(session.token, showChannelState, logFrame);
  await loadKey();
  if (!keyRegistered) {
    status('tokens-summary',
      'This profile has no public key yet; register one (privicore profile) before storing data.', 'error');
  }
  await refreshTokens();
}

/** The profile token expired or was revoked: back to the sign-in form. @param {string} code */
function tokenEnded(code) {
  channel?.close();
  channel = null;
  session = null;
  sessionStorage.removeItem(SESSION);
  byId('app').hidden = true;
  byId('whoami').hidden = true;
  byId('login').hidden = false;
  status('login-status', `The session ended (${code}): sign in again.`, 'error');
}

async function signOut() {
  if (session) {
    // Ends the token on the server too; a failure (already expired) changes nothing here.
    await api.post('/profile/revoke-authorization-token', {}).catch(() => undefined);
  }
  sessionStorage.removeItem(SESSION);
  location.reload();
}

/** @param {'joined' | 'connecting' | 'offline'} state */
function showChannelState(state) {
  const node = byId('ws-state');
  node.textContent = `events: ${state}`;
  node.className = `badge ${state === 'joined' ? 'on' : state === 'offline' ? 'off' : ''}`;
}

// ---- the data key -------------------------------------------------------------------

async function loadKey() {
  if (!session) return;
  const stored = localStorage.getItem(KEY_PREFIX + session.profileId);
  dataKey = stored ? await layer1.importKey(layer1.fromHex(stored)) : null;
  await showKey();
}

/** @param {Uint8Array} raw */
async function keepKey(raw) {
  if (!session) return;
  localStorage.setItem(KEY_PREFIX + session.profileId, layer1.toHex(raw));
  dataKey = await layer1.importKey(raw);
  await showKey();
}

async function showKey() {
  if (!dataKey) {
    byId('key-fingerprint').textContent = 'none yet (one is made on the first upload)';
    return;
  }
  const raw = await layer1.exportKey(dataKey);
  byId('key-fingerprint').textContent = (await layer1.sha256Hex(raw)).slice(0, 16);
}

/** The key, made on first use. */
async function ensureKey() {
  if (!dataKey) {
    await keepKey(await layer1.exportKey(await layer1.generateKey()));
    status('key-status', 'A new data key was made in this browser. Export it to keep a copy.', 'ok');
  }
  return /** @type {CryptoKey} */ (dataKey);
}

async function exportKeyFile() {
  if (!session || !dataKey) {
    status('key-status', 'There is no key to export yet.', 'error');
    return;
  }
  // `dataKey` is hex, as in the CLI's profile file.
  const file = {
    kind: 'privicore-data-key',
    profileId: session.profileId,
    username: session.username,
    dataKey: layer1.toHex(await layer1.exportKey(dataKey)),
  };
  saveFile(new TextEncoder().encode(JSON.stringify(file, null, 2)), `privicore-key-${session.profileId}.json`, 'application/json');
}

async function importKeyFile() {
  const file = input('key-import').files?.[0];
  if (!file) return;
  try {
    const text = (await file.text()).trim();
    const hex = text.startsWith('{') ? JSON.parse(text).dataKey : text;
    if (typeof hex !== 'string') throw new Error('the file has no dataKey');
    await keepKey(layer1.fromHex(hex));
    status('key-status', 'Key imported.', 'ok');
  } catch (e) {
    status('key-status', `Not a key file: ${message(e)}`, 'error');
  }
  input('key-import').value = '';
}

async function newKey() {
  if (dataKey && !confirm('Replace the key? Tokens stored with the old key can only be read with it: export it first.')) return;
  await keepKey(await layer1.exportKey(await layer1.generateKey()));
  status('key-status', 'New key made. Export it to keep a copy.', 'ok');
}

// ---- upload (flow 2, inline) --------------------------------------------------------

async function upload() {
  const file = input('upload-file').files?.[0];
  if (!file || !channel) {
    status('upload-status', 'Choose a file first.', 'error');
    return;
  }
  if (file.size > layer1.INLINE_PLAINTEXT_MAX) {
    status('upload-status',
      `${file.name} is ${bytes(file.size)}: the console sends payloads inline, up to ${bytes(layer1.INLINE_PLAINTEXT_MAX)}. Use privicore store for larger files.`,
      'error');
    return;
  }
  const button = /** @type {HTMLButtonElement} */ (byId('upload-submit'));
  button.disabled = true;
  try {
    const key = await ensureKey();
    const context = input('upload-context').value || '/console';
    status('upload-status', 'Encrypting…');
    const plaintext = new Uint8Array(await file.arrayBuffer());
    const payload = await layer1.encrypt(key, plaintext);
    await joined();
    status('upload-status', 'Reserving a token…');
    const reserved = await api.post('/data-token/reserve-token-space', { context });
    const reservation = await channel.outcome(reserved.commandId);
    const token = reservation.token;
    await api.get(`/data-token/retrieve-temporary-data-token/${encodeURIComponent(reserved.commandId)}`);
    status('upload-status', `Sending ${bytes(payload.length)} of ciphertext…`);
    const exchanged = await api.post('/data-token/exchange-data-for-token',
      { temporaryTokenSpace: token, data: layer1.toBase64(payload) });
    await channel.outcome(exchanged.commandId, (body) => {
      if (body?.state === 'awaiting_vote') status('upload-status', 'Held for a vote…');
    });
    const dot = file.name.lastIndexOf('.');
    /** @type {Record<string, unknown>} */
    const meta = { token, fileName: file.name || 'upload', size: plaintext.length };
    if (dot > 0 && dot < file.name.length - 1) meta.extension = file.name.slice(dot + 1);
    await api.post('/data-token/configure-file-meta', meta);
    status('upload-status', `Stored ${file.name} as ${token}`, 'ok');
    input('upload-file').value = '';
    await refreshTokens();
  } catch (e) {
    status('upload-status', message(e), 'error');
  } finally {
    button.disabled = false;
  }
}

/** Commands are sent once the channel is joined, so their events reach this page. */
async function joined() {
  if (!channel) throw new Error('not signed in');
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('the event channel did not join')), 15_000));
  await Promise.race([channel.joined, timeout]);
}

// ---- the token list -----------------------------------------------------------------

/** @type {any[]} */
let tokens = [];

async function refreshTokens(/** @type {Event} */ ev) {
  ev?.preventDefault();
  const params = new URLSearchParams();
  const context = input('filter-context').value.trim();
  const name = input('filter-name').value.trim();
  if (context) params.set('filters[context]', context);
  if (name) params.set('filters[meta.file.fileName]', name);
  params.set('filters[status]', /** @type {HTMLSelectElement} */ (byId('filter-status')).value);
  try {
    const { items, total } = await api.all('/data-token/list-data-tokens', params, TOKEN_PAGES);
    tokens = items.filter(localFilter());
    status('tokens-summary',
      `${tokens.length} shown · ${total} matching in the engine${items.length < total ? ` (first ${items.length} searched)` : ''}`);
    fillTable('tokens-table', tokens.map(tokenRow), 9, 'No data tokens match.');
  } catch (e) {
    status('tokens-summary', message(e), 'error');
  }
}

/** The size and date filters, applied to what the engine returned. */
function localFilter() {
  const min = input('filter-min-size').valueAsNumber;
  const max = input('filter-max-size').valueAsNumber;
  const from = input('filter-from').valueAsDate;
  const to = input('filter-to').valueAsDate;
  const end = to ? to.getTime() + 24 * 3600 * 1000 : null;
  return (/** @type {any} */ t) => {
    const size = sizeOf(t);
    const created = Date.parse(t.createdAt);
    if (!Number.isNaN(min) && (size === null || size < min)) return false;
    if (!Number.isNaN(max) && (size === null || size > max)) return false;
    if (from && created < from.getTime()) return false;
    if (end !== null && created >= end) return false;
    return true;
  };
}

/** The file size the uploader declared, else the plaintext size the payload implies. */
function sizeOf(/** @type {any} */ t) {
  const declared = t.meta?.file?.size;
  if (typeof declared === 'number') return declared;
  return typeof t.storedSize === 'number' ? Math.max(0, t.storedSize - layer1.OVERHEAD) : null;
}

function tokenRow(/** @type {any} */ t) {
  const file = t.meta?.file;
  const replicas = t.replicas ? `${t.replicas.confirmed} confirmed, ${t.replicas.pending} pending` : '—';
  const fetchButton = t.status === 'active'
    ? button('Download', () => void download(t), { class: 'download', 'data-token': t.token })
    : null;
  return el('tr', { 'data-token': t.token },
    el('td', {}, file?.fileName ?? '—'),
    el('td', {}, el('code', {}, t.context)),
    el('td', {}, bytes(sizeOf(t))),
    el('td', {}, t.version === null ? '—' : String(t.version)),
    el('td', {}, t.status),
    el('td', {}, when(t.createdAt)),
    el('td', {}, replicas),
    el('td', {}, el('code', {}, t.token)),
    el('td', {}, fetchButton));
}

// ---- download (flow 4a) -------------------------------------------------------------

async function download(/** @type {any} */ t) {
  if (!channel) return;
  const name = t.meta?.file?.fileName ?? `${t.token}.bin`;
  const node = byId('download-status');
  delete node.dataset.sha256;
  try {
    if (!dataKey) throw new Error('this browser has no data key: import the key file first');
    await joined();
    status('download-status', `Requesting ${name}…`);
    const request = await api.post('/data-token/request-data', { token: t.token });
    const delivery = await channel.waitFor(request.requestId,
      (e) => (e.type === 'X-DPT-CAB-REQUEST-ID' ? e : undefined));
    let payload;
    if (delivery.output_type === 0) {
      payload = layer1.fromBase64(delivery.body);
    } else {
      // Above the inline delivery limit: the single-use URL of the download listener,
      // fetched once it is ready (STREAM-READY).
      await channel.waitFor(request.requestId, (e) => (e.type === 'STREAM-READY' ? e : undefined));
      const res = await fetch(delivery.body, { cache: 'no-store', credentials: 'omit' });
      if (!res.ok) throw new Error(`the download listener answered ${res.status}`);
      payload = new Uint8Array(await res.arrayBuffer());
    }
    await channel.outcome(request.commandId);
    const plaintext = await layer1.decrypt(dataKey, payload);
    const digest = await layer1.sha256Hex(plaintext);
    saveFile(plaintext, name, 'application/octet-stream');
    status('download-status', `Decrypted ${name}: ${plaintext.length} bytes, SHA-256 ${digest}`, 'ok');
    node.dataset.sha256 = digest;
  } catch (e) {
    const hint = e instanceof TypeError
      ? ' (a payload above 64 KiB comes from the download listener: add this page\'s origin to api.cors_origins)'
      : '';
    status('download-status', `${name}: ${message(e)}${hint}`, 'error');
  }
}

// ---- storage devices ----------------------------------------------------------------

async function refreshDevices() {
  try {
    const { items } = await api.all('/storage/list-storage-devices', new URLSearchParams(), 5);
    fillTable('devices-table', items.map(deviceRow), 8, 'No storage devices.');
  } catch (e) {
    status('devices-status', message(e), 'error');
  }
}

function deviceRow(/** @type {any} */ d) {
  const r = d.replicas ?? {};
  const c = d.capacity;
  const sync = d.lastSync ? `${d.lastSync.status} ${when(d.lastSync.finishedAt ?? d.lastSync.startedAt)}` : 'never';
  return el('tr', { 'data-device': d.deviceIdentifier },
    el('td', {}, d.name ?? '—', el('br'), el('code', { class: 'muted' }, d.deviceIdentifier)),
    el('td', {}, d.status),
    el('td', {}, badge(Boolean(d.online), 'online', 'offline')),
    el('td', {}, when(d.lastSeenAt)),
    el('td', {}, `${r.confirmed ?? 0} / ${r.pending ?? 0} / ${r.missing ?? 0}`),
    el('td', {}, c ? `${bytes(c.bytesUsed)} used, ${bytes(c.bytesFree)} free` : '—'),
    el('td', {}, sync),
    el('td', {}, button('Sync', () => void syncDevice(d), { class: 'sync' })));
}

async function syncDevice(/** @type {any} */ d) {
  if (!channel) return;
  try {
    await joined();
    const accepted = await api.post('/storage/sync-device', { deviceIdentifier: d.deviceIdentifier });
    status('devices-status', `Synchronizing ${d.name}…`);
    const result = await channel.outcome(accepted.commandId, (body) => {
      if (body?.state === 'syncing') {
        status('devices-status', `Synchronizing ${d.name}: ${body.phase} ${body.objectsDone ?? 0}/${body.objectsTotal ?? '?'}`);
      } else if (body?.state === 'awaiting_vote') {
        status('devices-status', `Synchronizing ${d.name}: held for a vote`);
      }
    });
    status('devices-status',
      `${d.name} synchronized: ${result.objectsChecked} checked, ${result.objectsPushed} pushed, ${result.objectsRepaired} repaired, ${result.objectsUnavailable} unavailable`,
      'ok');
  } catch (e) {
    status('devices-status', `${d.name}: ${message(e)}`, 'error');
  }
  await refreshDevices();
}

// ---- votes and policies -------------------------------------------------------------

async function refreshGovernance() {
  try {
    const [policies, authenticators] = await Promise.all([
      api.all('/policy/list-registered-policies', new URLSearchParams(), 5),
      api.all('/verified-authenticator/list-verified-authenticators', new URLSearchParams(), 5),
    ]);
    fillTable('policies-table', policies.items.map((p) => el('tr', {},
      el('td', {}, p.name),
      el('td', {}, p.templateName ?? p.policyTemplateId ?? '—'),
      el('td', {}, (p.applyingEventIds ?? []).join(', ')),
      el('td', {}, p.votingConfigurationName ?? 'profile defaults'),
      el('td', {}, badge(p.status === 'active', 'active', p.status)),
      el('td', {}, when(p.updatedAt)))), 6, 'No policies.');
    fillTable('authenticators-table', authenticators.items.map((a) => el('tr', {},
      el('td', {}, a.name ?? a.deviceIdentifier),
      el('td', {}, badge(Boolean(a.online), 'online', 'offline')),
      el('td', {}, String(a.openBallots ?? 0)),
      el('td', {}, when(a.lastVoteAt)))), 4, 'No verified authenticators.');
    await showPools();
    status('governance-status', '');
  } catch (e) {
    status('governance-status', message(e), 'error');
  }
}

/** Pools of commands held for a vote, from their `awaiting_vote` events, checked again. */
async function showPools() {
  if (!channel) return;
  /** @type {Map<string, any>} */
  const pools = new Map();
  for (const e of channel.ofType('X-DPT-CAB-ID')) {
    if (e.command_status === 1 && e.body?.state === 'awaiting_vote') {
      for (const p of e.body.pools ?? []) pools.set(p.poolId, { ...p, commandId: e.id });
    }
  }
  const items = [];
  for (const p of pools.values()) {
    const now = await api.get(`/voting/check-pool-status/${encodeURIComponent(p.poolId)}`).catch(() => null);
    const current = now?.attempts?.[now.attempts.length - 1];
    const state = now?.status ?? p.status;
    if (state !== 'open') continue;
    items.push(el('li', {},
      el('strong', {}, now?.title ?? p.policyName ?? 'vote'), ' — ',
      `${current?.yes ?? p.yes} yes, ${current?.no ?? p.no} no, ${current?.outstanding ?? p.outstanding} outstanding; `,
      `deadline ${when(current?.deadline ?? p.deadline)}; command `, el('code', {}, p.commandId)));
  }
  const list = byId('pools-list');
  list.replaceChildren(...items);
  if (items.length === 0) list.append(el('li', { class: 'muted' }, 'No command seen in this session is waiting for a vote.'));
}

// ---- live events --------------------------------------------------------------------

function logFrame(/** @type {any} */ frame) {
  const log = byId('events-log');
  // Inline payloads are long base64 strings: shown by their length only.
  const text = JSON.stringify(frame, (_, v) =>
    typeof v === 'string' && v.length > 160 ? `${v.slice(0, 48)}… (${v.length} characters)` : v);
  const line = el('li', {}, `${new Date().toLocaleTimeString()}  ${text}`);
  log.prepend(line);
  while (log.children.length > 300) log.lastElementChild?.remove();
}

// ---- wiring -------------------------------------------------------------------------

/** @param {unknown} e */
function message(e) {
  if (e instanceof ApiError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

function showTab(/** @type {string} */ name) {
  for (const b of document.querySelectorAll('#tabs button')) {
    b.classList.toggle('active', /** @type {HTMLElement} */ (b).dataset.tab === name);
  }
  for (const s of document.querySelectorAll('.tab')) {
    /** @type {HTMLElement} */ (s).hidden = s.id !== `tab-${name}`;
  }
  if (name === 'tokens') void refreshTokens();
  if (name === 'devices') void refreshDevices();
  if (name === 'governance') void refreshGovernance();
}

function start() {
  // A fault the page did not foresee is shown, not only logged to the console.
  window.addEventListener('error', (e) => status('page-status', String(e.message), 'error'));
  window.addEventListener('unhandledrejection', (e) => status('page-status', message(e.reason), 'error'));
  byId('login-form').addEventListener('submit', (e) => void signIn(/** @type {SubmitEvent} */ (e)));
  byId('signout').addEventListener('click', () => void signOut());
  byId('upload-submit').addEventListener('click', () => void upload());
  byId('filters').addEventListener('submit', (e) => void refreshTokens(e));
  byId('key-export').addEventListener('click', () => void exportKeyFile());
  byId('key-import').addEventListener('change', () => void importKeyFile());
  byId('key-generate').addEventListener('click', () => void newKey());
  byId('devices-refresh').addEventListener('click', () => void refreshDevices());
  byId('governance-refresh').addEventListener('click', () => void refreshGovernance());
  byId('events-clear').addEventListener('click', () => byId('events-log').replaceChildren());
  for (const b of document.querySelectorAll('#tabs button')) {
    b.addEventListener('click', () => showTab(/** @type {HTMLElement} */ (b).dataset.tab ?? 'tokens'));
  }
  const saved = sessionStorage.getItem(SESSION);
  if (saved) {
    session = JSON.parse(saved);
    void enter(true);
  }
}

start();
