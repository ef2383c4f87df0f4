// Client for the Fusebox circuit-breaker sidecar, on node:net with no dependencies.
// One connection, pipelined: the sidecar answers in request order, so each
// request simply waits for the next line.
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { StateBoard } from './statefile.js';

/** The package's version (VERSION at the repository's root; a test keeps them equal). */
export const VERSION = '0.1.0';

/**
 * The breaker refused the call; `retryInMs` says when it may admit again (null if unknown),
 * `reason` which limit refused: `open`, or a budget (`concurrency`, `rate`, `tokens`).
 */
export class BreakerOpen extends Error {
  /** @param {string} breaker @param {string} state @param {number|null} retryInMs @param {object[]} [skipped] @param {string|null} [reason] */
  constructor(breaker, state, retryInMs, skipped = [], reason = null) {
    const why = reason && reason !== 'open' ? ` (${reason})` : '';
    super(`breaker ${JSON.stringify(breaker)} is ${state}${why}` + (retryInMs != null ? `; retry in ${retryInMs} ms` : ''));
    this.name = 'BreakerOpen';
    this.breaker = breaker;
    this.state = state;
    this.retryInMs = retryInMs ?? null;
    this.skipped = skipped;
    this.reason = reason;
  }
}

/** No breaker of a chain could take the call. */
export class ChainExhausted extends BreakerOpen {
  /** @param {string} chain @param {object[]} skipped */
  constructor(chain, skipped) {
    const retries = skipped.map((s) => s.retry_in_ms).filter((r) => r != null);
    super(chain, 'exhausted', retries.length ? Math.min(...retries) : null, skipped);
    this.name = 'ChainExhausted';
    this.chain = chain;
  }
}

/** The sidecar could not be reached (with `onUnavailable: 'raise'`). */
/** A `fetcher({ strict: true })` refused a request whose host maps to no breaker. */
export class UnroutedRequest extends Error {
  constructor(host) {
    super(`no breaker for ${host}: add it to routes or set defaultBreaker (strict fetchers refuse unrouted requests)`);
    this.name = 'UnroutedRequest';
    this.host = host;
  }
}

export class SidecarUnavailable extends Error {
  constructor(message) { super(message); this.name = 'SidecarUnavailable'; }
}

/** The sidecar answered with an error. */
export class ProtocolError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) { super(`${code}: ${message}`); this.name = 'ProtocolError'; this.code = code; }
}

/**
 * What a report says about an error, found by shape: OpenAI/Anthropic SDK errors
 * (`status`, `headers`), fetch/axios-style `response.status`, Node's ETIMEDOUT/ECONNREFUSED.
 * @param {any} error
 * @returns {Record<string, any>}
 */
export function classifyError(error) {
  const fields = { error: String(error?.message ?? error).slice(0, 1000) };
  const status = [error?.status, error?.statusCode, error?.response?.status].find((s) => Number.isInteger(s) && s >= 100 && s <= 599);
  if (status != null) {
    fields.status = status;
    const headers = error?.headers ?? error?.response?.headers;
    const get = (name) => (typeof headers?.get === 'function' ? headers.get(name) : headers?.[name]);
    const retry = retryAfterMs({ get: (name) => get(name) ?? null });
    if (retry != null) fields.retry_after_ms = retry;
    return fields;
  }
  const code = error?.code ?? '';
  const name = error?.name ?? '';
  // An abort is the app giving up (its signal fired): cancelled, counted against nobody.
  if (name === 'AbortError' || code === 'ABORT_ERR') return { outcome: 'cancelled' };
  if (code === 'ETIMEDOUT' || /timeout/i.test(name)) {
    return { ...fields, outcome: 'timeout', error_kind: 'timeout' };
  }
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) {
    return { ...fields, error_kind: 'connection' };
  }
  return { ...fields, outcome: 'failure' };
}

/**
 * Milliseconds from `retry-after-ms`, or `Retry-After` as delay-seconds or an HTTP-date; null when absent.
 * @param {{get(name: string): string|null}} headers
 */
export function retryAfterMs(headers) {
  const ms = headers.get('retry-after-ms');
  if (ms != null && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers.get('retry-after');
  if (value == null) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Number(value) * 1000;
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, when - Date.now());
}

/** Throws the signal's reason (an AbortError) if it has fired. */
function checkAborted(signal) {
  if (signal?.aborted) throw signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/**
 * A client for one sidecar. It is an EventEmitter: `failOpen` ({ name, reason }) whenever a call is
 * let through without a breaker, and, after `watch()`, `transition` (every transition event) and
 * `open`, `halfOpen`, `close` for the state entered.
 */
export class Fusebox extends EventEmitter {
  /**
   * @param {object} [options]
   * @param {string} [options.socketPath] default $FUSEBOX_SOCKET or ./fusebox.sock
   * @param {number} [options.timeoutMs] per request, default 2000
   * @param {'allow'|'deny'|'raise'} [options.onUnavailable] when the sidecar is unreachable, default 'allow'
   * @param {number} [options.reconnectIntervalMs] default 1000
   * @param {(error: any) => Record<string, any>|null} [options.classify] your own error mapping, tried first
   * @param {{warn: (message: string) => void}} [options.logger] where warnings go, default console
   * @param {boolean} [options.fastPath] call a closed breaker without budgets on the sidecar's posted
   *   state, without asking (docs/protocol.md, "The fast path"); default true
   */
  constructor(options = {}) {
    super();
    this.logger = options.logger ?? console;
    this.watcher = null;
    this.socketPath = options.socketPath ?? process.env.FUSEBOX_SOCKET ?? './fusebox.sock';
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.onUnavailable = options.onUnavailable ?? 'allow';
    if (!['allow', 'deny', 'raise'].includes(this.onUnavailable)) {
      throw new TypeError(`onUnavailable must be allow, deny or raise; got ${this.onUnavailable}`);
    }
    this.reconnectIntervalMs = options.reconnectIntervalMs ?? 1000;
    this.customClassify = options.classify;
    /** @type {net.Socket|null} */ this.socket = null;
    /** @type {Promise<net.Socket>|null} */ this.connecting = null;
    /** @type {{resolve: Function, reject: Function, timer: any}[]} */ this.pending = [];
    this.buffer = '';
    this.downSince = null;
    this.nextAttempt = 0;
    /** Chains as the sidecar last described them (hello), for fail-open routing. */
    this.chains = options.chains ?? {};
    /** Each chain's strategy (hello): only an ordered chain's route may take the fast path. */
    this.strategies = {};
    /** The breaker names the last hello told, and when (for per-model routing). */
    this.breakerList = null;
    this.counts = { failOpen: 0, timeouts: 0, unreachable: 0, fastPath: 0 };
    this.board = options.fastPath === false ? null : new StateBoard(this.socketPath);
    this.unreportedFailOpen = 0;
    /** Fast-path successes not yet written, their timer, and each breaker's name as JSON (see #queueRecord). */
    this.waitingRecords = [];
    this.recordTimer = null;
    this.recordNames = new Map();
    this.failOpenLog = { at: 0, since: 0 };
  }

  /**
   * Counters since this client was made: `failOpen` (calls let through without a breaker because the
   * sidecar was late or unreachable), `timeouts` (requests not answered in time), `unreachable`,
   * `fastPath` (calls let through on the sidecar's posted state, without asking).
   */
  stats() { return { ...this.counts }; }

  /**
   * Sends one request; resolves with the answer (`ok: true`). A request not answered within
   * `timeoutMs` rejects with SidecarUnavailable on its own: the others pending on the connection
   * go on, and its late answer is read and set aside (a late permit is handed back as cancelled).
   * @param {object} message @param {{timeoutMs?: number}} [options]
   */
  async request(message, { timeoutMs = this.timeoutMs, signal } = {}) {
    checkAborted(signal);
    const socket = await this.#connect();
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, timer: null, abandoned: false, watchdog: null };
      // An abort settles this request at once, as a timeout would: its answer is set aside when it comes.
      const onAbort = () => {
        if (entry.abandoned) return;
        entry.abandoned = true;
        clearTimeout(entry.timer);
        reject(signal.reason ?? new DOMException('This operation was aborted', 'AbortError'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      entry.cleanup = () => signal?.removeEventListener('abort', onAbort);
      entry.timer = setTimeout(() => {
        entry.abandoned = true;
        this.counts.timeouts += 1;
        reject(new SidecarUnavailable(`fusebox sidecar at ${this.socketPath}: no answer in ${timeoutMs} ms`));
        // Silent for much longer still: the connection is dead, not slow.
        entry.watchdog = setTimeout(() => {
          if (this.socket === socket) this.#fail(new SidecarUnavailable(`fusebox sidecar at ${this.socketPath}: not answering`));
        }, Math.max(2 * timeoutMs, 5000));
        entry.watchdog.unref?.();
      }, timeoutMs);
      this.pending.push(entry);
      if (this.waitingRecords.length > 0 && socket === this.socket) this.#flushRecords();  // the calls that ended before this one first
      socket.write(JSON.stringify(message) + '\n');
    }).then((answer) => {
      if (!answer.ok) throw new ProtocolError(answer.error?.code ?? 'unknown', answer.error?.message ?? '');
      return answer;
    });
  }

  /**
   * `cost`: the call's estimated tokens, for a breaker with a token budget. This client pipelines
   * on one connection, so an acquire waiting in a breaker's queue delays the requests sent after it.
   * @param {string} breaker @param {{cost?: number}} [options]
   * @returns {Promise<{id: string|null, breaker: string, probe: boolean, degraded: boolean}>}
   */
  async acquire(breaker, { cost, timeoutMs = this.timeoutMs, signal } = {}) {
    const fast = this.#fastPermit(breaker, signal) ?? (await this.#confirmStateFile() ? this.#fastPermit(breaker, signal) : null);
    if (fast) return fast;
    let answer;
    // timeout_ms: the sidecar refuses a queued acquire before this client would give up on it.
    const message = { op: 'acquire', breaker, timeout_ms: Math.floor(timeoutMs) };
    if (cost != null) message.cost = cost;
    try {
      answer = await this.request(message, { timeoutMs, signal });
    } catch (error) {
      if (error instanceof SidecarUnavailable) return this.#unavailable(breaker);
      throw error;
    }
    if (!answer.allowed) throw new BreakerOpen(breaker, answer.state, answer.retry_in_ms, [], answer.reason ?? null);
    return { id: answer.permit, breaker, probe: Boolean(answer.probe), degraded: false, ttlMs: answer.ttl_ms ?? null };
  }

  /**
   * A permit from `chain`: the member its strategy picks, or the next that admits. `requires` names
   * capabilities the call needs (members without them are passed over). The permit says which
   * `strategy` chose it, `why`, and the `figure` used (milliseconds, cost or weight) when there was one.
   * @param {string} chain @param {string[]} [exclude] @param {{cost?: number, requires?: string[], signal?: AbortSignal}} [options]
   */
  async route(chain, exclude = [], { cost, requires, signal } = {}) {
    // The fast path: an ordered chain whose first member admits locally, nothing excluded or required.
    const first = this.chains[chain]?.[0];
    if (!exclude.length && !requires?.length && this.strategies[chain] === 'ordered' && first !== undefined) {
      const fast = this.#fastPermit(first, signal) ?? (await this.#confirmStateFile() ? this.#fastPermit(first, signal) : null);
      if (fast) return { ...fast, strategy: 'ordered', why: 'order', figure: null };
    }
    const message = { op: 'route', chain, exclude };
    if (cost != null) message.cost = cost;
    if (requires?.length) message.requires = requires;
    let answer;
    try {
      answer = await this.request(message, { signal });
    } catch (error) {
      if (error instanceof SidecarUnavailable) return this.#unavailable(chain, exclude);
      throw error;
    }
    if (!answer.allowed) throw new ChainExhausted(chain, answer.skipped ?? []);
    const figure = answer.latency_ms ?? answer.cost ?? answer.weight ?? null;
    return {
      id: answer.permit, breaker: answer.breaker, probe: Boolean(answer.probe), degraded: false,
      strategy: answer.strategy ?? null, why: answer.why ?? null, figure, ttlMs: answer.ttl_ms ?? null,
    };
  }

  /** Reports how a permitted call went; resolves with the breaker's state (or null). */
  async report(permit, fields = {}) {
    const fast = permit.generation != null;
    if (fast && fields.outcome === 'success' && Object.keys(fields).every((key) => key === 'outcome' || key === 'latency_ms')) {
      this.#queueSuccess(permit.breaker, Number(permit.generation), fields.latency_ms);  // the common case, without JSON.stringify
      return null;
    }
    if (!fast && (permit.degraded || permit.id == null)) return null;
    const head = fast
      ? { op: 'record', breaker: permit.breaker, generation: Number(permit.generation) }
      : { op: 'report', permit: permit.id };
    const message = { ...head, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v != null)) };
    if (!('outcome' in message) && !('status' in message) && !('error_kind' in message)) message.outcome = 'success';
    if (fast && cannotHaveFailed(message)) {
      // Not waited for: a success cannot trip anything. A failure waits, so the breaker has counted it before the next call looks.
      message.reply = false;
      this.#queueRecord(JSON.stringify(message) + '\n');
      return null;
    }
    try {
      return (await this.request(message)).state ?? null;
    } catch (error) {
      if (error instanceof SidecarUnavailable) return null;
      if (error instanceof ProtocolError && ['unknown_permit', 'unknown_breaker'].includes(error.code)) return null;
      throw error;
    }
  }

  /**
   * Keeps a running call's permit alive: its deadline moves to the breaker's `permit_ttl` from now
   * (`permit.ttlMs`). `guard`, `chain` and `fetch` renew their calls' permits themselves; call this
   * for a permit from `acquire` whose call may outlive `permit.ttlMs`. Resolves false once the
   * sidecar no longer has the permit (reported, expired, or restarted).
   */
  async renew(permit) {
    if (permit.id == null || permit.degraded || permit.generation != null) return true;
    try {
      await this.request({ op: 'renew', permit: permit.id });
      return true;
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'unknown_permit') return false;
      throw error;
    }
  }

  /**
   * Renews `permit` every third of its ttl until the returned function is called, so `permit_ttl`
   * bounds a silent (dead or frozen) process, not a long call. Nothing for permits without a ttl.
   */
  #hold(permit) {
    if (permit.id == null || permit.degraded || permit.generation != null || !permit.ttlMs) return () => {};
    const timer = setInterval(() => {
      this.renew(permit).then((held) => { if (!held) clearInterval(timer); }, () => {});  // unreachable: tried again next time
    }, Math.max(permit.ttlMs / 3, 10));
    timer.unref?.();
    return () => clearInterval(timer);
  }

  async status(breaker, { signal } = {}) {
    return (await this.request(breaker ? { op: 'status', breaker } : { op: 'status' }, { signal })).breakers;
  }

  /**
   * Runs `fn` under a permit of `breaker` and reports how it went; rethrows its error.
   * Throws BreakerOpen without calling `fn` when the breaker refuses.
   * `signal` aborts the wait for a permit, and is handed to `fn` (`fn(permit, signal)`); a call
   * that ends in an AbortError is reported `cancelled`.
   * @template T @param {string} breaker @param {(permit: object, signal?: AbortSignal) => Promise<T>|T} fn
   * @param {{cost?: number, signal?: AbortSignal}} [options] @returns {Promise<T>}
   */
  async guard(breaker, fn, { cost, signal } = {}) {
    const permit = await this.acquire(breaker, { cost, signal });
    return this.#run(permit, (p) => fn(p, signal), false);
  }

  /**
   * Walks a fallback chain: `fn(breaker)` is tried on each breaker the sidecar grants,
   * each failure reported, until one succeeds; the last error is thrown when none is left.
   * An abort (`signal`) ends the walk: it is reported `cancelled` and thrown, not tried elsewhere.
   * @template T @param {string} chain @param {(breaker: string, permit: object, signal?: AbortSignal) => Promise<T>|T} fn
   * @param {{cost?: number, requires?: string[], signal?: AbortSignal}} [options] @returns {Promise<T>}
   */
  async chain(chain, fn, { cost, requires, signal } = {}) {
    const tried = [];
    let lastError = null;
    for (;;) {
      let permit;
      try {
        permit = await this.route(chain, tried, { cost, requires, signal });
      } catch (error) {
        if (error instanceof ChainExhausted && lastError) throw lastError;
        throw error;
      }
      const result = await this.#run(permit, (p) => fn(permit.breaker, p, signal), true);
      if (!result.failed) return result.value;
      if (signal?.aborted) throw result.error;
      tried.push(permit.breaker);
      lastError = result.error;
    }
  }

  /**
   * The global `fetch` under `breaker`: acquired first (BreakerOpen when refused, and nothing is
   * sent), reported from the response's status and Retry-After (seconds or an HTTP-date): an error
   * status at once, a success once its body has been read to the end; a body that fails midway is a
   * failure, one cancelled (or an aborted fetch) is `cancelled`. The permit is renewed until the body
   * ends, so a long stream is one call; a response whose body is never read stops being renewed once
   * it is garbage-collected, and its permit then expires. `init.signal` works as for `fetch`.
   * @param {string} breaker @param {string|URL|Request} url @param {RequestInit} [init] @returns {Promise<Response>}
   */
  async fetch(breaker, url, init = {}) {
    const permit = await this.acquire(breaker, { signal: init.signal });
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const letGo = this.#hold(permit);
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      letGo();
      await this.report(permit, { latency_ms: elapsed(), ...this.classify(error) });
      throw error;
    }
    const fields = { status: response.status };
    const retry = retryAfterMs(response.headers);
    if (retry != null && response.status >= 400) fields.retry_after_ms = retry;
    // An error status says all there is to say: reported at once. A success is reported when its body ends.
    if (!response.body || response.status >= 400) {
      letGo();
      await this.report(permit, { ...fields, latency_ms: elapsed() });
      return response;
    }
    let reported = false;
    let firstByteMs = null;
    // An event stream whose last event says it is complete (OpenAI's [DONE], Anthropic's message_stop) is a
    // success even when the reader stops there and cancels, as SSE readers do, before the body's own end.
    const eventStream = (response.headers.get('content-type') ?? '').includes('text/event-stream');
    let tail = '';
    const decoder = new TextDecoder();
    const report = (extra) => {
      if (reported) return;
      reported = true;
      letGo();
      const ttfb = firstByteMs != null ? { ttfb_ms: firstByteMs } : {};
      this.report(permit, { latency_ms: elapsed(), ...ttfb, ...extra }).catch(() => {});
    };
    const reader = response.body.getReader();
    const body = new ReadableStream({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) { report(fields); controller.close(); return; }
          firstByteMs ??= elapsed();
          if (eventStream) tail = (tail + decoder.decode(value, { stream: true })).slice(-256);
          controller.enqueue(value);
        } catch (error) {
          report(error?.name === 'AbortError' ? { outcome: 'cancelled' } : { error_kind: 'connection', error: String(error?.message ?? error).slice(0, 1000) });
          controller.error(error);
        }
      },
      cancel(reason) {
        const complete = eventStream && (tail.includes('data: [DONE]') || tail.includes('message_stop'));
        report(complete ? fields : { outcome: 'cancelled' });
        return reader.cancel(reason);
      },
    });
    unreadBodies.register(body, letGo);
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  /**
   * A `fetch` for SDKs and apps that call providers by URL (the OpenAI Node SDK takes `{ fetch }`):
   * each request goes under the breaker its host (or host and path prefix) maps to in `routes`,
   * added to DEFAULT_ROUTES (`replaceRoutes` instead of them), as `fb.fetch(breaker, …)` does.
   * A sidecar breaker `<breaker>/<model>` guards the requests whose JSON body names that model.
   * A host in no route goes under `defaultBreaker` when given; else it is refused with
   * UnroutedRequest (`strict`) or passed through with one warning per host.
   * @param {{routes?: Record<string,string>, replaceRoutes?: Record<string,string>, defaultBreaker?: string, strict?: boolean}} [options]
   * @returns {(input: string|URL|Request, init?: RequestInit) => Promise<Response>}
   */
  fetcher({ routes, replaceRoutes, defaultBreaker, strict = false } = {}) {
    if (routes && replaceRoutes) throw new TypeError('give routes (added to DEFAULT_ROUTES) or replaceRoutes (instead of them), not both');
    const table = replaceRoutes ? { ...replaceRoutes } : { ...DEFAULT_ROUTES, ...(routes ?? {}) };
    const warned = new Set();
    return async (input, init = {}) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      let breaker = breakerFor(table, url) ?? defaultBreaker ?? null;
      if (breaker == null) {
        if (strict) throw new UnroutedRequest(url.host);
        if (!warned.has(url.host) && warned.size < 1000) {
          warned.add(url.host);
          this.logger.warn(`fusebox: requests to ${url.host} map to no breaker and pass through unguarded: add the host to routes or set defaultBreaker (strict refuses them)`);
        }
        return fetch(input, init);
      }
      const names = await this.breakerNames();
      if ([...names].some((name) => name.startsWith(`${breaker}/`))) {
        const model = modelOf(init);
        if (model != null && names.has(`${breaker}/${model}`)) breaker = `${breaker}/${model}`;
      }
      return this.fetch(breaker, input, init);
    };
  }

  /** The sidecar's breakers as a hello told them (asked again after 30 s); empty when unreachable. */
  async breakerNames() {
    if (this.breakerList && performance.now() - this.breakerList.at < 30_000) return this.breakerList.names;
    try {
      this.#learnBreakers(await this.request({ op: 'hello', protocol: 1, client: `fusebox-node/${VERSION}` }));
    } catch {
      return new Set();
    }
    return this.breakerList?.names ?? new Set();
  }

  #learnBreakers(hello) {
    if (Array.isArray(hello?.breakers)) this.breakerList = { names: new Set(hello.breakers), at: performance.now() };
  }

  /**
   * Subscribes (on a connection of its own) and emits `transition` for every transition, then
   * `open`, `halfOpen` or `close` for the state entered (forced states emit `transition` only).
   * `watching` is emitted each time the sidecar confirms the subscription: no later transition is missed.
   * Reconnects every `reconnectIntervalMs` while the sidecar is away; `unwatch()` stops.
   */
  watch() {
    if (this.watcher) return this;
    const names = { open: 'open', half_open: 'halfOpen', closed: 'close' };
    const connect = () => {
      const socket = net.createConnection(this.socketPath, () => socket.write('{"op":"subscribe","events":["transition"]}\n'));
      socket.setEncoding('utf8');
      socket.unref();
      let buffer = '';
      socket.on('data', (chunk) => {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          let event;
          try { event = JSON.parse(line); } catch { continue; }
          if (event.ok === true && event.event === undefined) this.emit('watching');  // the subscribe's answer
          if (event.event !== 'transition') continue;
          this.emit('transition', event);
          if (names[event.new_state]) this.emit(names[event.new_state], event);
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        if (this.watcher?.socket !== socket) return;
        this.watcher.retry = setTimeout(() => { if (this.watcher) this.watcher.socket = connect(); }, this.reconnectIntervalMs);
        this.watcher.retry.unref?.();
      });
      return socket;
    };
    this.watcher = { socket: null, retry: null };
    this.watcher.socket = connect();
    return this;
  }

  /** Stops `watch()`. */
  unwatch() {
    const watcher = this.watcher;
    this.watcher = null;
    if (watcher) { clearTimeout(watcher.retry); watcher.socket?.destroy(); }
  }

  /** Closes the connection (outstanding permits are released by the sidecar) and stops `watch()`. */
  close() {
    this.#flushRecords();
    this.unwatch();
    this.socket?.destroy();
    this.socket = null;
    this.board?.close();
  }

  classify(error) {
    return (this.customClassify && this.customClassify(error)) || classifyError(error);
  }

  async #run(permit, fn, forChain) {
    const started = performance.now();
    const letGo = this.#hold(permit);
    try {
      const value = await fn(permit);
      letGo();
      await this.report(permit, { outcome: 'success', latency_ms: performance.now() - started });
      return forChain ? { failed: false, value } : value;
    } catch (error) {
      letGo();
      await this.report(permit, { latency_ms: performance.now() - started, ...this.classify(error) });
      if (forChain) return { failed: true, error };
      throw error;
    }
  }

  async #connect() {
    if (this.socket && !this.socket.destroyed) return this.socket;
    if (this.connecting) return this.connecting;
    if (this.downSince != null && Date.now() < this.nextAttempt) {
      throw new SidecarUnavailable(`fusebox sidecar at ${this.socketPath} is unreachable (retrying)`);
    }
    this.connecting = new Promise((resolve, reject) => {
      const socket = net.createConnection(this.socketPath);
      socket.setEncoding('utf8');
      socket.unref();  // an idle client never keeps the process alive
      const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), this.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        if (this.downSince != null) this.logger.warn(`fusebox: sidecar at ${this.socketPath} reachable again`);
        this.downSince = null;
        this.socket = socket;
        resolve(socket);
        // Learn the chains, so a later outage of the sidecar can still walk them in order,
        // and tell the sidecar how many calls went out unprotected since the last hello.
        const hello = { op: 'hello', protocol: 1, client: `fusebox-node/${VERSION}` };
        if (this.unreportedFailOpen > 0) hello.fail_open = this.unreportedFailOpen;
        this.request(hello)
          .then((answer) => {
            this.chains = answer.chains ?? this.chains;
            this.strategies = answer.strategies ?? this.strategies;
            this.#learnBreakers(answer);
            this.board?.trust(answer.state_file);
            this.unreportedFailOpen -= hello.fail_open ?? 0;
          })
          .catch(() => {});
      });
      socket.on('data', (chunk) => this.#receive(chunk));
      socket.on('error', (error) => {
        clearTimeout(timer);
        this.counts.unreachable += 1;
        this.#markDown(error);
        reject(new SidecarUnavailable(`fusebox sidecar at ${this.socketPath}: ${error.message}`));
        this.#fail(new SidecarUnavailable(`fusebox sidecar at ${this.socketPath}: ${error.message}`));
      });
      socket.on('close', () => {
        if (this.socket === socket) this.socket = null;
        this.#fail(new SidecarUnavailable(`fusebox sidecar at ${this.socketPath}: connection closed`));
      });
    }).finally(() => { this.connecting = null; });
    return this.connecting;
  }

  /**
   * The state file names a sidecar no hello has named (a first look, or a restart): one hello says
   * whether it is this one. True if it asked.
   */
  async #confirmStateFile() {
    if (!this.board?.unconfirmed || (this.downSince != null && Date.now() < this.nextAttempt)) return false;
    this.board.unconfirmed = null;
    try {
      const answer = await this.request({ op: 'hello', protocol: 1, client: `fusebox-node/${VERSION}` });
      this.board.trust(answer.state_file);
      this.#learnBreakers(answer);
    } catch {
      // Unreachable or refused: the socket path below says what to do.
    }
    return true;
  }

  /** A permit without asking when the state file says `breaker` admits every call, else null. */
  #fastPermit(breaker, signal) {
    const seen = this.board?.read(breaker);
    if (!seen?.admitsLocally) return null;
    checkAborted(signal);
    this.counts.fastPath += 1;
    return { id: null, breaker, probe: false, degraded: false, generation: seen.generation };
  }

  /**
   * Fast-path successes wait here (a success cannot trip anything), and go out together: within
   * 1 ms of the first, at once when 64 wait, and ahead of any request written meanwhile, on the one
   * connection, so the sidecar hears the calls in the order they ended. A process.exit() or a
   * SIGKILL loses what still waits; an exit when the event loop empties does not (the timer holds it).
   */
  #queueRecord(line) {
    this.waitingRecords.push(line);
    if (this.waitingRecords.length >= 64) {
      this.#flushRecords();
    } else if (this.waitingRecords.length === 1) {
      this.recordTimer = setTimeout(() => this.#flushRecords(), 1);
    }
  }

  #queueSuccess(breaker, generation, latencyMs) {
    let name = this.recordNames.get(breaker);
    if (name === undefined) {
      name = JSON.stringify(breaker);
      if (this.recordNames.size < 10_000) this.recordNames.set(breaker, name);
    }
    const latency = typeof latencyMs === 'number' && Number.isFinite(latencyMs) ? `,"latency_ms":${latencyMs.toFixed(3)}` : '';
    this.#queueRecord(`{"op":"record","breaker":${name},"generation":${generation},"outcome":"success"${latency},"reply":false}\n`);
  }

  /** Writes the waiting records; lost if the sidecar is gone. */
  #flushRecords() {
    clearTimeout(this.recordTimer);
    if (this.waitingRecords.length === 0) return;
    const lines = this.waitingRecords.join('');
    this.waitingRecords = [];
    if (this.socket && !this.socket.destroyed) {
      this.socket.write(lines);
    } else {
      this.#connect().then((socket) => socket.write(lines), () => {});
    }
  }

  #receive(chunk) {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      const entry = this.pending.shift();
      if (!entry) continue;
      clearTimeout(entry.timer);
      clearTimeout(entry.watchdog);
      entry.cleanup?.();
      let answer;
      try { answer = JSON.parse(line); } catch (error) { entry.reject(error); continue; }
      if (!entry.abandoned) { entry.resolve(answer); continue; }
      // The caller gave up on it: a permit granted after all goes back at once.
      if (answer.permit) this.request({ op: 'report', permit: answer.permit, outcome: 'cancelled' }).catch(() => {});
    }
  }

  #fail(error) {
    const waiting = this.pending;
    this.pending = [];
    this.buffer = '';
    for (const entry of waiting) {
      clearTimeout(entry.timer);
      clearTimeout(entry.watchdog);
      entry.cleanup?.();
      if (!entry.abandoned) entry.reject(error);
    }
    if (waiting.length && this.socket) { this.socket.destroy(); this.socket = null; }
  }

  /** Counts a call let through without a breaker; says so at most every 10 s. */
  #failedOpen(name) {
    this.counts.failOpen += 1;
    this.unreportedFailOpen += 1;
    this.failOpenLog.since += 1;
    this.emit('failOpen', { name, reason: this.downSince != null ? 'unreachable' : 'timeout' });
    const now = Date.now();
    if (now - this.failOpenLog.at < 10_000) return;
    this.logger.warn(`fusebox: fail-open: ${this.failOpenLog.since} call(s) let through without a breaker (last: ${name}); ` +
      `the sidecar at ${this.socketPath} was late or unreachable`);
    this.failOpenLog = { at: now, since: 0 };
  }

  #markDown(error) {
    if (this.downSince == null) {
      this.downSince = Date.now();
      this.logger.warn(`fusebox: sidecar at ${this.socketPath} unreachable (${error.message}); policy ${this.onUnavailable} until it is back`);
    }
    this.nextAttempt = Date.now() + this.reconnectIntervalMs;
  }

  #unavailable(name, tried = []) {
    if (this.onUnavailable === 'allow') {
      // A chain walks its known members in order, without breakers; a breaker is just allowed.
      const members = this.chains[name];
      const next = members ? members.find((m) => !tried.includes(m)) : name;
      if (next === undefined) throw new ChainExhausted(name, []);
      this.#failedOpen(next);
      return { id: null, breaker: next, probe: false, degraded: true };
    }
    if (this.onUnavailable === 'deny') throw new BreakerOpen(name, 'unavailable', null);
    throw new SidecarUnavailable(`fusebox sidecar at ${this.socketPath} is unreachable`);
  }
}

/** Success or a non-call by what the client sent: no breaker counts it toward a trip. */
/** The providers' public API hosts, and Ollama's default local port (as the Python transports). */
export const DEFAULT_ROUTES = Object.freeze({
  'api.openai.com': 'openai',
  'api.anthropic.com': 'anthropic',
  'localhost:11434': 'ollama',
  '127.0.0.1:11434': 'ollama',
});

/** The breaker for `url`: the longest matching `host[:port][/path-prefix]` key of `routes`, or null. */
export function breakerFor(routes, url) {
  let best = null;
  for (const [key, breaker] of Object.entries(routes)) {
    const slash = key.indexOf('/');
    const host = slash < 0 ? key : key.slice(0, slash);
    const prefix = slash < 0 ? '' : key.slice(slash + 1);
    if (host !== url.host && host !== url.hostname) continue;
    if (prefix && !url.pathname.replace(/^\/+/, '').startsWith(prefix)) continue;
    if (!best || key.length > best.length) best = { length: key.length, breaker };
  }
  return best?.breaker ?? null;
}

/** The `model` a JSON request body names (OpenAI, Anthropic and Ollama all put it at the top level). */
function modelOf(init) {
  if (typeof init?.body !== 'string' || init.body.length > (1 << 20)) return null;
  try {
    const model = JSON.parse(init.body)?.model;
    return typeof model === 'string' && model.length > 0 && model.length <= 64 ? model : null;
  } catch {
    return null;
  }
}

/** Bodies of `fetch` responses dropped unread: their permits stop being renewed (and expire). */
const unreadBodies = new FinalizationRegistry((letGo) => letGo());

function cannotHaveFailed(message) {
  if ('error_kind' in message) return false;
  if ('status' in message) return Number.isInteger(message.status) && message.status < 400;
  return ['success', 'cancelled', 'ignored'].includes(message.outcome);
}
