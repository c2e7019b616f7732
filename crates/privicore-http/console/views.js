// @ts-check
/** DOM helpers. Everything from the server is inserted as text, never as markup. */

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

/** @param {string} id */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node;
}

/** @param {string} id */
export function input(id) {
  return /** @type {HTMLInputElement} */ (byId(id));
}

/**
 * Sets a status line. @param {string} id @param {string} text
 * @param {'ok' | 'error' | ''} [kind]
 */
export function status(id, text, kind = '') {
  const node = byId(id);
  node.textContent = text;
  node.className = `status ${kind}`;
}

/** @param {string} tableId @param {HTMLElement[]} rows @param {number} columns @param {string} empty */
export function fillTable(tableId, rows, columns, empty) {
  const body = byId(tableId).querySelector('tbody');
  if (!body) return;
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    body.append(el('tr', {}, el('td', { colspan: String(columns), class: 'muted' }, empty)));
  }
}

/** @param {number | null | undefined} n */
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** @param {string | null | undefined} iso */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** @param {boolean} on @param {string} yes @param {string} no */
export function badge(on, yes, no) {
  return el('span', { class: `badge ${on ? 'on' : 'off'}` }, on ? yes : no);
}

/** @param {string} label @param {() => void} onClick @param {Record<string, string>} [attrs] */
export function button(label, onClick, attrs = {}) {
  const b = /** @type {HTMLButtonElement} */ (el('button', { type: 'button', ...attrs }, label));
  b.addEventListener('click', onClick);
  return b;
}

/** Saves bytes as a file through a download link. @param {Uint8Array} data @param {string} name @param {string} type */
export function saveFile(data, name, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
