// What the Node client's guard costs, against a raw socket round trip to the
// same sidecar in the same run. Needs a running sidecar: node bench.js SOCKET [N].
import net from 'node:net';
import { Fusebox } from './index.js';

const [socketPath, count = '20000'] = process.argv.slice(2);
const n = Number(count);

async function raw() {
  const socket = net.createConnection(socketPath);
  await new Promise((r) => socket.once('connect', r));
  socket.setEncoding('utf8');
  let buffer = '';
  const waiting = [];
  socket.on('data', (d) => {
    buffer += d;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) { const line = buffer.slice(0, i); buffer = buffer.slice(i + 1); waiting.shift()(line); }
  });
  const ask = (line) => new Promise((r) => { waiting.push(r); socket.write(line + '\n'); });
  const start = performance.now();
  for (let k = 0; k < n; k++) {
    const { permit } = JSON.parse(await ask('{"op":"acquire","breaker":"openai"}'));
    await ask(`{"op":"report","permit":"${permit}","outcome":"success"}`);
  }
  socket.destroy();
  return (performance.now() - start) / n;
}

const baseline = await raw();
const fb = new Fusebox({ socketPath });
let start = performance.now();
for (let k = 0; k < n; k++) await fb.guard('openai', () => undefined);
const guard = (performance.now() - start) / n;
start = performance.now();
await Promise.all(Array.from({ length: 8 }, async () => { for (let k = 0; k < n / 8; k++) await fb.guard('openai', () => undefined); }));
const concurrent = (performance.now() - start) / n;
fb.close();
console.log(`raw socket acquire+report:              ${(baseline * 1000).toFixed(1)} µs per call (baseline)`);
console.log(`fb.guard around a no-op, sequential:    ${(guard * 1000).toFixed(1)} µs per call (×${(guard / baseline).toFixed(2)} baseline)`);
console.log(`fb.guard, 8 concurrent (wall per call): ${(concurrent * 1000).toFixed(1)} µs per call (×${(concurrent / baseline).toFixed(2)} baseline)`);
