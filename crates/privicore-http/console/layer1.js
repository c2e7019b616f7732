// @ts-check
/**
 * Encryption layer 1, the client's own (docs/api/data-tokens.md §1.4), with WebCrypto:
 * AES-256-GCM without associated data, laid out as `[12-byte IV][ciphertext][16-byte tag]`,
 * byte for byte what `privicore store` sends. WebCrypto appends the tag to the ciphertext.
 */

export const IV_LEN = 12;
export const TAG_LEN = 16;
export const OVERHEAD = IV_LEN + TAG_LEN;
/** The largest payload the inline exchange takes (data-tokens.md §1.5). */
export const INLINE_MAX = 1024 * 1024;
export const INLINE_PLAINTEXT_MAX = INLINE_MAX - OVERHEAD;

/** A fresh extractable AES-256-GCM key (extractable so it can be exported to a file). */
export function generateKey() {
  return crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
}

/** @param {Uint8Array} raw 32 bytes */
export function importKey(raw) {
  if (raw.length !== 32) throw new Error('a data key is 32 bytes');
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, true, ['encrypt', 'decrypt']);
}

/** @param {CryptoKey} key @returns {Promise<Uint8Array>} */
export async function exportKey(key) {
  return new Uint8Array(await crypto.subtle.exportKey('raw', key));
}

/** @param {CryptoKey} key @param {Uint8Array} plaintext @returns {Promise<Uint8Array>} */
export async function encrypt(key, plaintext) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_LEN));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, plaintext));
  const out = new Uint8Array(IV_LEN + sealed.length);
  out.set(iv, 0);
  out.set(sealed, IV_LEN);
  return out;
}

/** @param {CryptoKey} key @param {Uint8Array} payload @returns {Promise<Uint8Array>} */
export async function decrypt(key, payload) {
  if (payload.length < OVERHEAD) {
    throw new Error(`the payload is shorter than its IV and tag (${payload.length} bytes): it is truncated`);
  }
  try {
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: payload.subarray(0, IV_LEN) }, key, payload.subarray(IV_LEN));
    return new Uint8Array(plain);
  } catch {
    throw new Error('the payload does not authenticate with this key: it is damaged or was encrypted with another key');
  }
}

/** @param {Uint8Array} bytes */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** @param {string} hex */
export function fromHex(hex) {
  const clean = hex.trim();
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error('not hexadecimal');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Standard base64 with padding, as the inline exchange expects. @param {Uint8Array} bytes */
export function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** @param {string} text standard base64 (the engine always answers padded standard base64) */
export function fromBase64(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** @param {Uint8Array} bytes */
export async function sha256Hex(bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}
