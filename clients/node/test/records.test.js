// Fast-path successes are batched (within 1 ms, at 64, ahead of any request); failures are not,
// nothing is reordered, and nothing is lost when the process ends because its event loop emptied.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fusebox } from '../index.js';
import { sidecarConfig, startSidecar } from './sidecar.js';

const here = dirname(fileURLToPath(import.meta.url));
// A count window, so status shows every call the sidecar heard of.
const COUNTED = '{ trip: { consecutive_failures: 2, window: { kind: count, size: 1000 }, minimum_calls: 1000 } }';
const CONFIG = sidecarConfig({ open: '30s', breakers: `{ openai: ${COUNTED}, anthropic: ${COUNTED} }` });
let sidecar;

before(async () => { sidecar = await startSidecar(CONFIG); });
after(async () => {
  await sidecar.stop();
  rmSync(sidecar.folder, { recursive: true, force: true });
});

async function heard(observer, breaker = 'openai') {
  return (await observer.status(breaker))[0].calls_in_window;
}

async function waitUntilHeard(observer, count, breaker = 'openai') {
  const deadline = Date.now() + 5000;  // a generous bound on a 1 ms flush: a stuck batch fails here
  while (await heard(observer, breaker) < count) assert.ok(Date.now() < deadline, `heard ${await heard(observer, breaker)} of ${count}`);
}

test('a batched success reaches the sidecar, and a failure is counted in order before the next guard', async () => {
  const fb = new Fusebox({ socketPath: sidecar.socket });
  const observer = new Fusebox({ socketPath: sidecar.socket, fastPath: false });
  await fb.guard('openai', async () => 1);
  assert.equal(fb.stats().fastPath, 1);
  await waitUntilHeard(observer, 1);
  const call = (fail) => fb.guard('openai', async () => { if (fail) throw Object.assign(new Error('503'), { status: 503 }); }).catch(() => {});
  // Success, failure, success, failure: one failure in a row, unless a success overtook its failure.
  for (const fail of [false, true, false, true]) await call(fail);
  assert.equal((await observer.status('openai'))[0].consecutive_failures, 1);
  await call(true);
  assert.equal((await observer.status('openai'))[0].state, 'open', 'the second failure in a row was counted before the guard returned');
  fb.close();
  observer.close();
});

test('no success is lost when the process ends on its own', async () => {
  const script = `
    import { Fusebox } from ${JSON.stringify(resolve(here, '../index.js'))};
    const fb = new Fusebox({ socketPath: ${JSON.stringify(sidecar.socket)} });
    for (let i = 0; i < 50; i++) await fb.guard('anthropic', async () => 1);
    if (fb.stats().fastPath !== 50) process.exitCode = 3;
  `;
  const observer = new Fusebox({ socketPath: sidecar.socket, fastPath: false });
  const before = await heard(observer, 'anthropic');
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  await waitUntilHeard(observer, before + 50, 'anthropic');
  assert.equal(await heard(observer, 'anthropic'), before + 50);
  observer.close();
});
