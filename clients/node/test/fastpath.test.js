// The Node client's fast path against the real sidecar: a closed breaker is
// called on the state file's word, and anything untrustworthy means asking the socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, unlinkSync, rmSync, openSync, writeSync, closeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fusebox, BreakerOpen } from '../index.js';
import { sidecarConfig, startSidecar } from './sidecar.js';

const config = sidecarConfig({ open: '60s', breakers: '{ openai: {}, capped: { max_in_flight: 2 } }' });
const clientDirectory = join(dirname(fileURLToPath(import.meta.url)), '..');

async function stateFile(sidecar) {
  const path = `${sidecar.socket}.state`;
  for (let i = 0; i < 500; i++) {
    try { readFileSync(path); return path; } catch { await new Promise((r) => setTimeout(r, 20)); }  // poll
  }
  assert.fail('the sidecar never posted its state file');
}

/** Runs `body` (with `fb` a client of `socket`) in another Node process; resolves with what it printed. */
function otherProcess(socket, body) {
  const program = `import { Fusebox } from ${JSON.stringify(join(clientDirectory, 'index.js'))};
    const fb = new Fusebox({ socketPath: ${JSON.stringify(socket)} });
    ${body}
    fb.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exited ${code}`))));
  });
}

test('a closed breaker is called without asking; a breaker opened by another process is refused by the socket', async () => {
  const sidecar = await startSidecar(config);
  try {
    await stateFile(sidecar);
    const fb = new Fusebox({ socketPath: sidecar.socket });
    const permit = await fb.acquire('openai');
    assert.equal(permit.id, null);
    assert.equal(permit.generation, 0);
    await fb.report(permit, { outcome: 'success' });
    assert.equal((await fb.acquire('capped')).generation, undefined, 'a budget is asked about');
    const printed = await otherProcess(sidecar.socket, `
      for (let i = 0; i < 3; i++) {
        await fb.guard('openai', async () => { throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' }); }).catch(() => {});
      }
      console.log(fb.stats().fastPath, (await fb.status('openai'))[0].state);`);
    assert.equal(printed, '3 open', 'the other process took the fast path and tripped the breaker');
    await assert.rejects(fb.guard('openai', () => 1), (error) => error instanceof BreakerOpen && error.state === 'open');
    assert.equal(fb.stats().fastPath, 1);
    fb.close();
  } finally {
    await sidecar.stop();
    rmSync(sidecar.folder, { recursive: true, force: true });
  }
});

test('a stale or corrupt state file, or a restarted sidecar, is noticed', async () => {
  const sidecar = await startSidecar(config);
  try {
    const path = await stateFile(sidecar);
    const real = readFileSync(path);
    unlinkSync(path);
    const stale = Buffer.from(real);
    stale.writeBigUInt64LE(BigInt(Date.now() - 60_000), 32);
    const future = Buffer.from(real);
    future.writeUInt32LE(2, 8);  // a version this client does not know
    future.writeBigUInt64LE(BigInt(Date.now() + 60_000), 32);
    for (const [what, bytes] of [['stale heartbeat', stale], ['unknown version', future], ['truncated', real.subarray(0, 40)]]) {
      writeFileSync(path, bytes);
      const fb = new Fusebox({ socketPath: sidecar.socket });
      const permit = await fb.acquire('openai');
      assert.ok(permit.id !== null && permit.generation === undefined, `${what}: asked the socket`);
      await fb.report(permit, { outcome: 'success' });
      assert.equal(fb.stats().fastPath, 0, what);
      fb.close();
      unlinkSync(path);
    }
    // A restart: the first sidecar stops, a second starts in the same folder with a new boot id.
    const fb = new Fusebox({ socketPath: sidecar.socket, reconnectIntervalMs: 50 });
    await sidecar.stop();
    const second = await startSidecar(config, sidecar.folder);
    try {
      await stateFile(second);
      const permit = await fb.acquire('openai');
      assert.equal(permit.generation, 0, 'the new file is used');
      assert.equal(await fb.report(permit, { status: 503 }), 'closed');
      assert.equal((await fb.status('openai'))[0].consecutive_failures, 1, 'the record reached the new sidecar');
      const again = await fb.acquire('openai');
      const first = fb.board.bootId;
      await second.stop();
      const third = await startSidecar(config, sidecar.folder);
      try {
        await stateFile(third);
        await new Promise((r) => setTimeout(r, 600));  // pacing: past the client's pause between looks for the file
        await fb.report(again, { outcome: 'success' });
        assert.ok((await fb.acquire('openai')).generation === 0);
        assert.notEqual(fb.board.bootId, first);
        assert.equal(fb.board.restarts, 1);
      } finally { await third.stop(); }
    } finally {
      fb.close();
      await second.stop();
    }
  } finally {
    rmSync(sidecar.folder, { recursive: true, force: true });
  }
});

test('a FIFO at the state file\'s path never hangs the client', async () => {
  const sidecar = await startSidecar(config);
  try {
    const path = await stateFile(sidecar);
    unlinkSync(path);
    execFileSync('mkfifo', [path]);
    const printed = await otherProcess(sidecar.socket, `
      await fb.guard('openai', () => 1);
      console.log(fb.stats().fastPath);`);
    assert.equal(printed, '0', 'the client asked the socket instead of waiting on the FIFO');
  } finally {
    await sidecar.stop();
    rmSync(sidecar.folder, { recursive: true, force: true });
  }
});

test('a forged state file is not believed when the sidecar\'s hello names none', async () => {
  // The form comes from a real sidecar's file; then one without a fast path serves the same socket.
  const first = await startSidecar(config);
  const template = Buffer.from(readFileSync(await stateFile(first)));
  await first.stop();
  const sidecar = await startSidecar(`${config}fast_path: false\n`, first.folder);
  const path = `${sidecar.socket}.state`;
  writeFileSync(path, template);  // openai's slot says closed, admits locally
  const beat = setInterval(() => {
    const heartbeat = Buffer.alloc(8);
    heartbeat.writeBigUInt64LE(BigInt(Date.now()), 0);
    const fd = openSync(path, 'r+');
    writeSync(fd, heartbeat, 0, 8, 32);
    closeSync(fd);
  }, 50);
  try {
    const fb = new Fusebox({ socketPath: sidecar.socket });
    for (let i = 0; i < 3; i++) await fb.report(await fb.acquire('openai'), { status: 503 });
    assert.equal((await fb.status('openai'))[0].state, 'open');
    await assert.rejects(fb.guard('openai', () => 1), (error) => error instanceof BreakerOpen);
    assert.equal(fb.stats().fastPath, 0, 'the forged file named no sidecar\'s hello');
    fb.close();
  } finally {
    clearInterval(beat);
    await sidecar.stop();
    rmSync(sidecar.folder, { recursive: true, force: true });
  }
});

test('an ordered chain routes to its first member without asking, until a route would skip it', async () => {
  const sidecar = await startSidecar(sidecarConfig({
    open: '60s', breakers: '{ openai: {}, anthropic: {} }',
    chains: '{ llm: [openai, anthropic], quick: { breakers: [openai, anthropic], strategy: fastest } }',
  }));
  try {
    await stateFile(sidecar);
    const fb = new Fusebox({ socketPath: sidecar.socket });
    await fb.status();  // the hello tells the client each chain's members and strategy
    const permit = await fb.route('llm');
    assert.deepEqual([permit.id, permit.breaker, permit.strategy, permit.why], [null, 'openai', 'ordered', 'order']);
    await fb.report(permit, { outcome: 'success' });
    assert.notEqual((await fb.route('quick')).id, null, 'a fastest chain asks');
    assert.notEqual((await fb.route('llm', ['openai'])).id, null, 'a route that skips a member asks');
    for (let i = 0; i < 3; i++) await fb.report(await fb.acquire('openai'), { status: 503 });
    const routed = await fb.route('llm');
    assert.deepEqual([routed.id !== null, routed.breaker], [true, 'anthropic']);
    assert.equal(fb.stats().fastPath, 4);
    fb.close();
  } finally {
    await sidecar.stop();
    rmSync(sidecar.folder, { recursive: true, force: true });
  }
});
