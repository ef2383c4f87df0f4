// The package as npm installs it: packed, installed into an empty app, then loaded with
// `require` (CommonJS) and with `import` (ES modules). A wrong `exports` map fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

test('the packed package loads with require and with import', () => {
  const work = mkdtempSync(join(tmpdir(), 'fusebox-pack-'));
  try {
    execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: packageDir });
    const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack made a tarball');
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--silent', '--offline', '--no-audit', '--no-fund', join(work, tarball)], { cwd: app });
    const run = (args) => execFileSync(process.execPath, args, { cwd: app, encoding: 'utf8' }).trim();
    assert.equal(run(['-e', "const m = require('fusebox-client'); console.log(typeof m.Fusebox, typeof m.BreakerOpen)"]),
      'function function');
    assert.equal(run(['--input-type=module', '-e',
      "import { Fusebox, BreakerOpen } from 'fusebox-client'; console.log(typeof Fusebox, typeof BreakerOpen)"]),
      'function function');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
