// Starts the real `fusebox serve` binary for the tests, in a folder of its own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const binary = process.env.FUSEBOX_BINARY ?? resolve(here, '../../../.build/debug/fusebox');

/**
 * A test configuration: no HTTP, no store, trips at `failures` (3) in a row, opens for `open` without
 * backoff; `extra` adds default keys (`permit_ttl: 2s`).
 */
export function sidecarConfig({ open, breakers, chains = '{}', failures = 3, extra = '' }) {
  return `
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
defaults:
  trip: { consecutive_failures: ${failures}, window: off }
  open: { duration: ${open}, jitter: 0, backoff: off }
  ${extra}
breakers: ${breakers}
chains: ${chains}
`;
}

export async function startSidecar(config, folder = mkdtempSync(join(tmpdir(), 'fusebox-node-'))) {
  writeFileSync(join(folder, 'fusebox.yaml'), config);
  const child = spawn(binary, ['serve', '--config', 'fusebox.yaml'], { cwd: folder, stdio: 'ignore' });
  const socket = join(folder, 'fusebox.sock');
  const adminSocket = join(folder, 'fusebox-admin.sock');
  // Both sockets: the admin one is bound just after the main one.
  for (let i = 0; i < 500 && !(existsSync(socket) && existsSync(adminSocket)); i++) await new Promise((r) => setTimeout(r, 20));  // poll
  assert.ok(existsSync(socket), 'the sidecar did not start');
  return {
    folder, socket, adminSocket, pid: child.pid, child,
    stop: () => new Promise((r) => { if (child.exitCode !== null) r(); else { child.once('exit', r); child.kill('SIGTERM'); } }),
  };
}

/** Waits until `condition()` (sync or async) holds, looking every 10 ms; fails after `seconds`. */
export async function until(what, condition, seconds = 10) {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));  // poll
  }
}
