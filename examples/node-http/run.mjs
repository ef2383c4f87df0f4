// The Node example end to end: a real `fusebox serve`, a provider stub, the app, 8 concurrent
// users. Midway the provider dies (503 after 200 ms): the calls reaching it must be at most the
// threshold plus the calls in flight, and every later request is refused at once by the breaker.
// Usage: node examples/node-http/run.mjs   (FUSEBOX_BINARY: the fusebox binary)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.FUSEBOX_BINARY ?? resolve(here, '../../.build/debug/fusebox');
const THRESHOLD = 5, USERS = 8;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const folder = mkdtempSync(join(tmpdir(), 'fusebox-node-http-'));
writeFileSync(join(folder, 'fusebox.yaml'), `
socket: ./fusebox.sock
admin_socket: off
http: off
store: off
defaults:
  trip: { consecutive_failures: ${THRESHOLD}, window: off }
  open: { duration: 60s, jitter: 0 }
breakers: { openai: {} }
`);
const sidecar = spawn(binary, ['serve', '--config', 'fusebox.yaml'], { cwd: folder, stdio: 'ignore' });
for (let i = 0; i < 200 && !existsSync(join(folder, 'fusebox.sock')); i++) await sleep(50);

let dead = false, reachedWhileDead = 0;
const provider = http.createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    const failing = dead;  // decided once, on arrival: a call that found the provider alive is answered
    if (failing) reachedWhileDead += 1;
    setTimeout(() => {
      if (failing) { response.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"down"}}'); return; }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"choices":[{"message":{"content":"hi"}}]}');
    }, failing ? 200 : 20);
  });
});
await new Promise((r) => provider.listen(0, '127.0.0.1', r));

process.env.FUSEBOX_SOCKET = join(folder, 'fusebox.sock');
process.env.PROVIDER_URL = `http://127.0.0.1:${provider.address().port}/v1`;
const { server } = await import('./app.js');
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/ask`;

const counts = { 200: 0, 502: 0, 503: 0 };
let stop = false;
const user = async () => {
  while (!stop) {
    const response = await fetch(url, { method: 'POST' });
    await response.text();
    counts[response.status] = (counts[response.status] ?? 0) + 1;
    await sleep(response.status === 502 ? 200 : 10);  // a user who saw an error backs off a moment
  }
};
const users = Array.from({ length: USERS }, user);
await sleep(3000);
dead = true;
await sleep(3000);
stop = true;
await Promise.all(users);
server.close();
provider.close();
sidecar.kill('SIGTERM');

console.log(`node-http example: ${counts[200]} answers, then the provider died: ${reachedWhileDead} calls reached it ` +
  `(threshold ${THRESHOLD} + ${USERS} in flight), ${counts[502]} failed, ${counts[503]} refused by the breaker`);
const checks = [
  ['answers while the provider was up', counts[200] > 0],
  [`calls reaching the dead provider (${reachedWhileDead}) <= threshold + in flight (${THRESHOLD + USERS})`, reachedWhileDead > 0 && reachedWhileDead <= THRESHOLD + USERS],
  ['the rest were refused by the breaker without reaching it', counts[503] > 0 && counts[502] === reachedWhileDead],
];
for (const [name, ok] of checks) console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}`);
process.exit(checks.every(([, ok]) => ok) ? 0 : 1);
