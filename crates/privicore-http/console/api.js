// @ts-check
/** The public HTTP API, called exactly as any client calls it (docs/api/README.md). */

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(`${message} (${code})`);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /**
   * @param {string | null} token a profile token `T-…`, or null before signing in
   * @param {(code: string) => void} [onTokenEnded] called when the API says the token
   *   expired or was revoked
   */
  constructor(token, onTokenEnded) {
    this.token = token;
    this.onTokenEnded = onTokenEnded;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body] sent as JSON (or as is, when already a string)
   * @returns {Promise<any>} the JSON answer of a 2xx
   */
  async call(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (this.token) headers['X-DPT-AUTHORIZATION'] = this.token;
    /** @type {RequestInit} */
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let json = null;
    try {
      json = await res.json();
    } catch {
      json = null;
    }
    if (!res.ok) {
      const e = json && json.error;
      if (res.status === 401 && this.token && /^auth\.token_(expired|revoked)$/.test(e?.code ?? '')) {
        this.onTokenEnded?.(e.code);
      }
      throw new ApiError(res.status, e?.code ?? `http.${res.status}`, e?.message ?? res.statusText);
    }
    return json;
  }

  /** @param {string} path */
  get(path) {
    return this.call('GET', path);
  }

  /** @param {string} path @param {unknown} body */
  post(path, body) {
    return this.call('POST', path, body);
  }

  /**
   * Every item of a paginated listing (README §9), `perPage` 100, at most `maxPages`.
   * @param {string} path
   * @param {URLSearchParams} params
   * @param {number} maxPages
   * @returns {Promise<{items: any[], total: number}>}
   */
  async all(path, params, maxPages) {
    const items = [];
    let total = 0;
    for (let page = 1; page <= maxPages; page++) {
      params.set('page', String(page));
      params.set('perPage', '100');
      const res = await this.get(`${path}?${params}`);
      items.push(...res.items);
      total = res.meta.total;
      if (items.length >= total || res.items.length === 0) break;
    }
    return { items, total };
  }
}
