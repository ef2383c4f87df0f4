// Calls longer than permit_ttl: guard and fetch renew their permits while the call runs, so a
// healthy five-second call under a two-second permit_ttl is one success, not a timeout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { Fusebox } from '../index.js';
import { sidecarConfig, startSidecar } from './sidecar.js';

// max_in_flight puts every call on the socket path (the fast path holds no permit to expire).
const CONFIG = sidecarConfig({ open: '30s', failures: 2, extra: 'permit_ttl: 2s', breakers: '{ slow: { max_in_flight: 8 } }' });
const CALL_MS = 5000;
let sidecar;
let fb;

before(async () => {
  sidecar = await startSidecar(CONFIG);
  fb = new Fusebox({ socketPath: sidecar.socket });
});

after(async () => {
  fb.close();
  await sidecar.stop();
  rmSync(sidecar.folder, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));  // pacing: the calls' own length

async function settled() {
  const [state] = await fb.status('slow');
  return state;
}

test('four healthy five-second calls through guard leave the breaker closed', async () => {
  const ttls = await Promise.all([0, 1, 2, 3].map(() => fb.guard('slow', async (permit) => {
    await sleep(CALL_MS);  // pacing: a five-second call
    return permit.ttlMs;
  })));
  assert.deepEqual(ttls, [2000, 2000, 2000, 2000]);
  const state = await settled();
  assert.equal(state.state, 'closed');
  assert.equal(state.consecutive_failures, 0);
  assert.equal(state.permits_in_flight, 0);
});

test('a five-second stream through fetch is one successful call', async () => {
  const server = http.createServer(async (request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < CALL_MS / 1000; i++) {
      response.write('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n');
      await sleep(1000);  // pacing: a slow stream, a chunk a second
    }
    response.end('data: [DONE]\n\n');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const started = performance.now();
    const response = await fb.fetch('slow', `http://127.0.0.1:${server.address().port}/v1/chat/completions`, { method: 'POST' });
    const text = await response.text();
    assert.ok(performance.now() - started >= CALL_MS - 500);
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    // The success is reported as the body ends, without being waited for: wait for the permit to go.
    let state = await settled();
    for (let i = 0; i < 100 && state.permits_in_flight > 0; i++) state = await settled();
    assert.equal(state.state, 'closed');
    assert.equal(state.consecutive_failures, 0);
    assert.equal(state.permits_in_flight, 0);
  } finally {
    server.close();
  }
});
