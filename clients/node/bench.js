// What the Node client's guard costs, per call (p50 and p99), in one run:
// on the fast path (the sidecar's state file, a closed breaker), asking the
// socket (fastPath: false), and a raw socket acquire+report as the floor of
// the socket path. Needs a running sidecar whose breaker `openai` has no
// budget: node bench.js SOCKET [N].
import net from 'node:net';
import { Fusebox } from './index.js';

const [socketPath, count = '20000'] = process.argv.slice(2);
const n = Number(count);

/** Per-call times in µs, sorted, after a warm-up of n/10 calls. */
async function timed(call) {
  for (let k = 0; k < n / 10; k++) await call();
  const times = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const started = process.hrtime.bigint();
    await call();
    times[k] = Number(process.hrtime.bigint() - started) / 1000;
  }
  return times.sort();
}

async function rawRoundTrip() {
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
  return [socket, async () => {
    const { permit } = JSON.parse(await ask('{"op":"acquire","breaker":"openai"}'));
    await ask(`{"op":"report","permit":"${permit}","outcome":"success"}`);
  }];
}

const fast = new Fusebox({ socketPath });
await fast.guard('openai', () => undefined);
if (fast.stats().fastPath !== 1) {
  console.error(`no fast path: is ${socketPath}.state there, and does 'openai' have no budget?`);
  process.exit(1);
}
const asking = new Fusebox({ socketPath, fastPath: false });
const [socket, raw] = await rawRoundTrip();
const results = {
  'fb.guard, fast path': await timed(() => fast.guard('openai', () => undefined)),
  'fb.guard, asking the socket': await timed(() => asking.guard('openai', () => undefined)),
  'raw socket acquire+report': await timed(raw),
};
socket.destroy();
fast.close();
asking.close();
const socketP50 = results['fb.guard, asking the socket'][n >> 1];
console.log(`${n} calls each, Node ${process.version}`);
for (const [label, times] of Object.entries(results)) {
  const p50 = times[n >> 1];
  const p99 = times[Math.floor(n * 0.99)];
  console.log(`${label.padEnd(32)} p50 ${p50.toFixed(1).padStart(7)} µs   p99 ${p99.toFixed(1).padStart(7)} µs  ×${(p50 / socketP50).toFixed(3)} of the socket path`);
}
