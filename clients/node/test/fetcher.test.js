// fb.fetcher(): the Node twin of the Python transports. Routes added to the defaults, hosts in
// no route (warned once, refused when strict, or under a default breaker), per-model breakers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { Fusebox, BreakerOpen, UnroutedRequest, DEFAULT_ROUTES, breakerFor } from '../index.js';
import { sidecarConfig, startSidecar } from './sidecar.js';

const CONFIG = sidecarConfig({ open: '30s', failures: 2, breakers: '{ openai: { models: [gpt-a, gpt-b] }, anthropic: {} }' });
let sidecar;
let provider;
let host;
let calls = 0;
const failingModels = new Set();

before(async () => {
  sidecar = await startSidecar(CONFIG);
  // A provider that fails the models in failingModels with 503 and answers the others.
  provider = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      calls += 1;
      const failing = failingModels.has(JSON.parse(body || '{}').model);
      response.writeHead(failing ? 503 : 200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(failing ? { error: { message: 'overloaded' } } : { ok: true }));
    });
  });
  await new Promise((r) => provider.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${provider.address().port}`;
});

after(async () => {
  provider.close();
  await sidecar.stop();
  rmSync(sidecar.folder, { recursive: true, force: true });
});

function client(warnings = []) {
  return new Fusebox({ socketPath: sidecar.socket, logger: { warn: (message) => warnings.push(message) } });
}

const post = (fetchFn, model) => fetchFn(`http://${host}/v1/chat/completions`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [] }),
});

test('routes are the longest match, added to the defaults', () => {
  const url = new URL('https://api.openai.com/v1/chat/completions');
  assert.equal(breakerFor({ ...DEFAULT_ROUTES, 'api.openai.com/v1/chat': 'chat' }, url), 'chat');
  assert.equal(breakerFor(DEFAULT_ROUTES, url), 'openai');
  assert.equal(breakerFor(DEFAULT_ROUTES, new URL('http://example.com/')), null);
});

test('a host in no route passes through with one warning; strict refuses it before sending', async () => {
  const warnings = [];
  const fb = client(warnings);
  const before = calls;
  const unrouted = fb.fetcher();
  for (let i = 0; i < 3; i++) assert.equal((await post(unrouted, 'm')).status, 200);
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0].includes(host));
  await assert.rejects(post(fb.fetcher({ strict: true }), 'm'), (error) => error instanceof UnroutedRequest && error.host === host);
  assert.equal(calls, before + 3);
  fb.close();
});

test('one failing model opens only its own breaker; a default breaker guards other hosts', async () => {
  const fb = client();
  const routed = fb.fetcher({ routes: { [host]: 'openai' } });
  failingModels.add('gpt-a');
  for (let i = 0; i < 2; i++) await (await post(routed, 'gpt-a')).text();
  await assert.rejects(post(routed, 'gpt-a'), (error) => error instanceof BreakerOpen && error.breaker === 'openai/gpt-a');
  assert.equal((await post(routed, 'gpt-b')).status, 200);
  const states = Object.fromEntries(await Promise.all(['openai/gpt-a', 'openai/gpt-b', 'openai'].map(async (name) => [name, (await fb.status(name))[0].state])));
  assert.deepEqual(states, { 'openai/gpt-a': 'open', 'openai/gpt-b': 'closed', openai: 'closed' });
  const guarded = fb.fetcher({ defaultBreaker: 'anthropic' });
  failingModels.add('m');
  for (let i = 0; i < 2; i++) await (await post(guarded, 'm')).text();
  await assert.rejects(post(guarded, 'm'), BreakerOpen);
  fb.close();
});
