// @ts-check
/**
 * The profile's event channel: the client WebSocket at `/ws` on the API listener,
 * joined with the profile token (docs/api/README.md §8). Every event is kept by its `id`
 * so a command's outcome that arrives before anyone waits for it is not lost.
 */

/** @typedef {{type: string, id: string, command_status?: number, body?: any, [k: string]: any}} Event */

const FINAL_WAIT_MS = 60_000;

export class Channel {
  /**
   * @param {string} token
   * @param {(state: 'joined' | 'connecting' | 'offline') => void} onState
   * @param {(raw: any) => void} onMessage every frame, for the live log
   */
  constructor(token, onState, onMessage) {
    this.token = token;
    this.onState = onState;
    this.onMessage = onMessage;
    /** @type {Map<string, Event[]>} */
    this.seen = new Map();
    /** @type {Set<() => void>} */
    this.waiters = new Set();
    /** @type {WebSocket | null} */
    this.socket = null;
    this.closed = false;
    this.retry = 500;
    /** @type {Promise<void>} */
    this.joined = new Promise((resolve) => {
      this.markJoined = resolve;
    });
    this.connect();
  }

  connect() {
    if (this.closed) return;
    this.onState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({
        action: 'joinChannel',
        data: { authorizationToken: this.token, correlationId: 'console-join' },
      }));
    };
    socket.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(String(msg.data));
      } catch {
        return;
      }
      this.onMessage(frame);
      if (frame.correlationId === 'console-join') {
        if (frame.status === 200) {
          this.retry = 500;
          this.onState('joined');
          this.markJoined?.();
        } else {
          this.onState('offline');
        }
        return;
      }
      if (frame.status === 401) {
        // The token ended (§8.7): nothing more will arrive on this channel.
        this.onState('offline');
        return;
      }
      const event = frame.data;
      if (event && typeof event.id === 'string' && typeof event.type === 'string') {
        const list = this.seen.get(event.id) ?? [];
        list.push(event);
        this.seen.set(event.id, list);
        this.waiters.forEach((wake) => wake());
      }
    };
    socket.onclose = () => {
      if (this.closed) return;
      this.onState('offline');
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 15_000);
    };
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }

  /**
   * The first event of `id` that `pick` accepts, waiting up to `ms`.
   * @template T
   * @param {string} id
   * @param {(e: Event) => T | undefined} pick
   * @param {number} [ms]
   * @returns {Promise<T>}
   */
  waitFor(id, pick, ms = FINAL_WAIT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (const e of this.seen.get(id) ?? []) {
          const found = pick(e);
          if (found !== undefined) {
            done();
            resolve(found);
            return true;
          }
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no answer for ${id} within ${ms / 1000} s`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      };
      const wake = () => void check();
      if (!check()) this.waiters.add(wake);
    });
  }

  /**
   * A command's result once it succeeded; throws with its error key when it failed.
   * `onProgress` sees each `command_status: 1` body (a vote, a sync's progress).
   * @param {string} commandId
   * @param {(body: any) => void} [onProgress]
   */
  async outcome(commandId, onProgress) {
    let progressed = 0;
    const final = await this.waitFor(commandId, (e) => {
      if (e.type !== 'X-DPT-CAB-ID') return undefined;
      if (e.command_status === 1) {
        const all = (this.seen.get(commandId) ?? []).filter((x) => x.command_status === 1);
        if (all.length > progressed) {
          all.slice(progressed).forEach((x) => onProgress?.(x.body));
          progressed = all.length;
        }
        return undefined;
      }
      return e;
    }, 10 * 60_000);
    if (final.command_status === 3) throw new Error(`the command failed: ${final.body}`);
    return final.body;
  }

  /** Every event seen so far of one type. @param {string} type */
  ofType(type) {
    const out = [];
    for (const list of this.seen.values()) out.push(...list.filter((e) => e.type === type));
    return out;
  }
}
