// The Node client against the real sidecar binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { Fusebox, BreakerOpen, ChainExhausted, SidecarUnavailable, classifyError } from '../index.js';
import { binary, sidecarConfig, startSidecar as startSidecarWith, until } from './sidecar.js';

const config = sidecarConfig({
  open: '500ms',
  breakers: '{ openai: {}, anthropic: { capabilities: [vision] }, ollama: {}, metered: { tokens: { budget: 1000, per: 1m } } }',
  chains: '{ llm: [openai, anthropic, ollama] }',
});

const startSidecar = () => startSidecarWith(config);

function admin(sidecar, line) {
  return new Promise((resolveLine, reject) => {
    const s = net.createConnection(sidecar.adminSocket, () => s.write(line + '\n'));
    s.setEncoding('utf8');
    s.once('data', (d) => { s.destroy(); resolveLine(d); });
    s.once('error', reject);
  });
}

/** SIGSTOP, and wait until every thread has stopped (a thread running on another core finishes its slice first). */
async function stop(pid) {
  process.kill(pid, 'SIGSTOP');
  const tasks = () => readdirSync(`/proc/${pid}/task`).map((t) => readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'));
  for (let i = 0; i < 200 && !tasks().every((stat) => / T /.test(stat.slice(stat.lastIndexOf(')')))); i++) {
    await new Promise((r) => setTimeout(r, 5));  // poll
  }
}

class ApiError extends Error {
  constructor(status, headers = {}) { super(`HTTP ${status}`); this.status = status; this.headers = headers; }
}

let sidecar;
before(async () => { sidecar = await startSidecar(); });
after(async () => { await sidecar.stop(); rmSync(sidecar.folder, { recursive: true, force: true }); });

test('guard reports success and classified failures', async () => {
  const fb = new Fusebox({ socketPath: sidecar.socket });
  assert.equal(await fb.guard('openai', async () => 42), 42);
  for (const error of [new ApiError(404), new ApiError(503), Object.assign(new Error('slow'), { code: 'ETIMEDOUT' })]) {
    await assert.rejects(fb.guard('openai', async () => { throw error; }), error);
  }
  const [openai] = await fb.status('openai');
  assert.equal(openai.consecutive_failures, 2);
  await assert.rejects(fb.guard('openai', async () => { throw new ApiError(500); }));
  await assert.rejects(fb.guard('openai', async () => assert.fail('must not run')), (e) => e instanceof BreakerOpen && e.retryInMs > 0);
  fb.close();
});

test('chain falls back in order and reports each try', async () => {
  const fb = new Fusebox({ socketPath: sidecar.socket });
  const tried = [];
  const answer = await fb.chain('llm', async (breaker) => {
    tried.push(breaker);
    if (breaker !== 'ollama') throw new ApiError(502);
    return `from ${breaker}`;
  });
  assert.equal(answer, 'from ollama');
  assert.deepEqual(tried.slice(-2), ['anthropic', 'ollama']);
  for (const name of ['openai', 'anthropic', 'ollama']) await admin(sidecar, `{"op":"force","breaker":"${name}","state":"open"}`);
  await assert.rejects(fb.chain('llm', async () => 'never'), (e) => e instanceof ChainExhausted && e.skipped.length === 3);
  for (const name of ['openai', 'anthropic', 'ollama']) await admin(sidecar, `{"op":"reset","breaker":"${name}"}`);
  fb.close();
});

test('requires passes over members without the capability; the permit says why it was chosen', async () => {
  const fb = new Fusebox({ socketPath: sidecar.socket });
  const permit = await fb.route('llm', [], { requires: ['vision'] });
  assert.equal(permit.breaker, 'anthropic');
  assert.equal(permit.strategy, 'ordered');
  assert.equal(permit.why, 'order');
  await fb.report(permit, { status: 200 });
  const tried = [];
  await fb.chain('llm', async (breaker) => { tried.push(breaker); }, { requires: ['vision'] });
  assert.deepEqual(tried, ['anthropic']);
  await assert.rejects(fb.route('llm', [], { requires: ['audio'] }),
    (e) => e instanceof ChainExhausted && e.skipped.every((s) => s.reason === 'capability'));
  fb.close();
});

test('a token budget refuses what does not fit, with its reason, and reports settle it', async () => {
  const fb = new Fusebox({ socketPath: sidecar.socket });
  const permit = await fb.acquire('metered', { cost: 800 });
  await assert.rejects(fb.acquire('metered', { cost: 800 }),
    (e) => e instanceof BreakerOpen && e.reason === 'tokens' && e.state === 'closed' && e.retryInMs > 0);
  await fb.report(permit, { outcome: 'success', tokens_used: 100 });  // 700 back
  const second = await fb.acquire('metered', { cost: 800 });
  await fb.report(second, { outcome: 'success' });
  fb.close();
});

test('fifty concurrent calls share one pipelined connection', async () => {
  const fb = new Fusebox({ socketPath: sidecar.socket });
  await Promise.all(Array.from({ length: 50 }, () => fb.guard('anthropic', async () => { await new Promise((r) => setImmediate(r)); })));
  const [anthropic] = await fb.status('anthropic');
  assert.equal(anthropic.permits_in_flight, 0);
  fb.close();
});

test('sidecar absent: allow, deny or raise', async () => {
  const missing = join(tmpdir(), `fusebox-none-${process.pid}.sock`);
  const allow = new Fusebox({ socketPath: missing, chains: { llm: ['openai', 'anthropic'] } });
  assert.equal(await allow.guard('openai', async (permit) => permit.degraded), true);
  const order = [];
  assert.equal(await allow.chain('llm', async (b) => { order.push(b); if (b === 'openai') throw new ApiError(503); return b; }), 'anthropic');
  assert.deepEqual(order, ['openai', 'anthropic']);
  await assert.rejects(new Fusebox({ socketPath: missing, onUnavailable: 'deny' }).acquire('openai'), BreakerOpen);
  await assert.rejects(new Fusebox({ socketPath: missing, onUnavailable: 'raise' }).acquire('openai'), SidecarUnavailable);
});

test('a sidecar restart is survived', async () => {
  const own = await startSidecar();
  const fb = new Fusebox({ socketPath: own.socket, reconnectIntervalMs: 50 });
  await fb.guard('openai', async () => 1);
  await own.stop();
  assert.equal(await fb.guard('openai', async (p) => p.degraded), true);
  const child = spawn(binary, ['serve', '--config', 'fusebox.yaml'], { cwd: own.folder, stdio: 'ignore' });
  try {
    let degraded = true;
    for (let i = 0; i < 100 && degraded; i++) {
      await new Promise((r) => setTimeout(r, 50));  // poll
      degraded = await fb.guard('openai', async (p) => p.degraded);
    }
    assert.equal(degraded, false, 'the client never reconnected');
  } finally {
    fb.close();
    await new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); });
    rmSync(own.folder, { recursive: true, force: true });
  }
});

test('errors are classified by shape', () => {
  assert.deepEqual(classifyError(new ApiError(429, { 'retry-after': '3' })).retry_after_ms, 3000);
  assert.equal(classifyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })).error_kind, 'connection');
  assert.equal(classifyError(Object.assign(new Error('x'), { name: 'AbortError' })).outcome, 'cancelled');  // the app gave up: not the provider's fault
});

test('one request timing out leaves the ten pending behind it on the same connection alone', async () => {
  // The socket path is what is tested: a stalled sidecar's state file still looks fresh for a moment.
  const fb = new Fusebox({ socketPath: sidecar.socket, timeoutMs: 5000, fastPath: false });
  await fb.status();  // connected, hello answered
  await stop(sidecar.pid);  // the sidecar stalls: nothing is answered for 600 ms
  let late;
  let others;
  try {
    late = fb.acquire('openai', { timeoutMs: 200 });
    others = Array.from({ length: 10 }, () => fb.acquire('anthropic'));
    const failedOpen = await late;  // policy allow: this one call goes out without a breaker
    assert.equal(failedOpen.degraded, true);
    await new Promise((r) => setTimeout(r, 400));  // pacing: the stall goes on past the late acquire's 200 ms
  } finally {
    process.kill(sidecar.pid, 'SIGCONT');
  }
  const permits = await Promise.all(others);
  assert.equal(permits.length, 10);
  for (const permit of permits) assert.ok(permit.id && !permit.degraded, `a real permit: ${JSON.stringify(permit)}`);
  await Promise.all(permits.map((p) => fb.report(p, { outcome: 'success' })));
  assert.deepEqual(fb.stats(), { failOpen: 1, timeouts: 1, unreachable: 0, fastPath: 0 });
  // The late permit was handed back as cancelled; nothing is left in flight.
  await until('the late permit is handed back', async () => (await fb.status('openai'))[0].permits_in_flight === 0);
  fb.close();
});

test('a new connection tells the sidecar how many calls failed open', async () => {
  const fb = new Fusebox({ socketPath: join(sidecar.folder, 'absent.sock') });
  await fb.acquire('openai');
  await fb.acquire('openai');
  assert.equal(fb.stats().failOpen, 2);
  fb.socketPath = sidecar.socket;
  fb.downSince = null;
  fb.nextAttempt = 0;
  await fb.status();
  await until('the hello carried them', () => fb.unreportedFailOpen === 0);
  fb.close();
});

test('an abort is the app giving up: reported cancelled, never a timeout against the provider', async () => {
  assert.deepEqual(classifyError(new DOMException('gone', 'AbortError')), { outcome: 'cancelled' });
  const fb = new Fusebox({ socketPath: sidecar.socket });
  const controller = new AbortController();
  let running;
  const started = new Promise((r) => { running = r; });
  const call = fb.guard('ollama', (permit, signal) => new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason));
    running();
  }), { signal: controller.signal });
  await started;  // the permit is held and the call is under way
  controller.abort();
  await assert.rejects(call, { name: 'AbortError' });
  const [ollama] = await fb.status('ollama');
  assert.equal(ollama.consecutive_failures, 0);
  assert.equal(ollama.permits_in_flight, 0);
  // Aborted before asking: no request is sent at all.
  await assert.rejects(fb.acquire('ollama', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  fb.close();
});

test('watch() emits transitions, and failOpen goes to listeners and the logger', async () => {
  const warnings = [];
  const fb = new Fusebox({ socketPath: sidecar.socket, logger: { warn: (m) => warnings.push(m) } });
  const seen = [];
  const watching = once(fb, 'watching');
  fb.watch();
  fb.on('open', (event) => seen.push(['open', event.breaker, event.reason]));
  fb.on('close', (event) => seen.push(['close', event.breaker, event.reason]));
  await watching;
  for (let i = 0; i < 3; i++) await fb.request({ op: 'record', breaker: 'anthropic', status: 500 });
  await admin(sidecar, '{"op":"reset","breaker":"anthropic"}');
  for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));  // poll
  assert.deepEqual(seen, [['open', 'anthropic', 'consecutive_failures'], ['close', 'anthropic', 'reset']]);
  fb.close();

  const away = new Fusebox({ socketPath: join(sidecar.folder, 'nowhere.sock'), logger: { warn: (m) => warnings.push(m) } });
  const failOpens = [];
  away.on('failOpen', (info) => failOpens.push(info));
  assert.equal((await away.acquire('openai')).degraded, true);
  assert.deepEqual(failOpens, [{ name: 'openai', reason: 'unreachable' }]);
  assert.ok(warnings.some((m) => m.includes('fail-open')), warnings.join('\n'));
});

test('fetch is guarded: reported when the body ends, an aborted one is cancelled and not counted', async () => {
  const { createServer } = await import('node:http');
  const server = createServer((request, response) => {
    if (request.url === '/ok') { response.end('hello'); return; }
    if (request.url === '/busy') {
      response.writeHead(503, { 'Retry-After': new Date(Date.now() + 600_000).toUTCString() });
      response.end('busy');
      return;
    }
    response.writeHead(200);  // /slow: a chunk now, the rest much later
    response.write('first');
    setTimeout(() => response.end('rest'), 5000).unref();  // pacing: a slow body
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const fb = new Fusebox({ socketPath: sidecar.socket });
  try {
    assert.equal(await (await fb.fetch('ollama', `${base}/ok`)).text(), 'hello');
    let [ollama] = await fb.status('ollama');
    assert.equal(ollama.permits_in_flight, 0);

    const controller = new AbortController();
    const slow = await fb.fetch('ollama', `${base}/slow`, { signal: controller.signal });
    const reader = slow.body.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), 'first');
    controller.abort();
    await assert.rejects(reader.read(), { name: 'AbortError' });
    await until('the aborted fetch is reported', async () => (await fb.status('ollama'))[0].permits_in_flight === 0);
    [ollama] = await fb.status('ollama');
    assert.equal(ollama.consecutive_failures, 0, 'and not counted against the provider');

    // A 503 with Retry-After as an HTTP-date: reported with it, so the breaker opens at once.
    assert.equal((await fb.fetch('anthropic', `${base}/busy`)).status, 503);
    const [anthropic] = await fb.status('anthropic');
    assert.equal(anthropic.state, 'open');
    assert.equal(anthropic.last_status, 503);
  } finally {
    fb.close();
    server.close();
  }
});

test('Retry-After is read in both forms', async () => {
  const { retryAfterMs } = await import('../index.js');
  const headers = (values) => ({ get: (name) => values[name] ?? null });
  assert.equal(retryAfterMs(headers({ 'retry-after': '3' })), 3000);
  assert.equal(retryAfterMs(headers({ 'retry-after-ms': '250' })), 250);
  const later = retryAfterMs(headers({ 'retry-after': new Date(Date.now() + 120_000).toUTCString() }));
  assert.ok(later > 118_000 && later <= 120_000, String(later));
  assert.equal(retryAfterMs(headers({ 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' })), 0);
  assert.equal(retryAfterMs(headers({})), null);
});
