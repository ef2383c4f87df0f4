// index.d.ts is written by hand: every runtime export is declared, nothing more,
// and every method the declared Fusebox class has exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as client from '../index.js';

const here = dirname(fileURLToPath(import.meta.url));
const declarations = readFileSync(resolve(here, '../index.d.ts'), 'utf8');
const packageJson = JSON.parse(readFileSync(resolve(here, '../package.json'), 'utf8'));

test('the declarations name exactly the runtime exports', () => {
  const declared = [...declarations.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(client).sort());
});

test('every method the declared Fusebox has is there at run time', () => {
  const body = declarations.slice(declarations.indexOf('export declare class Fusebox'));
  const methods = [...body.matchAll(/^  (\w+)(?:<\w+>)?\(/gm)].map((m) => m[1]).filter((m) => m !== 'constructor');
  assert.ok(methods.length >= 12, methods.join(', '));
  for (const method of methods) assert.equal(typeof client.Fusebox.prototype[method], 'function', method);
});

test('the package points at the declarations and ships only what it needs', () => {
  assert.equal(packageJson.types, 'index.d.ts');
  // types first (TypeScript reads the first match); require loads the ES module (Node 20.19+).
  assert.deepEqual(packageJson.exports['.'], { types: './index.d.ts', import: './index.js', require: './index.js', default: './index.js' });
  assert.deepEqual(packageJson.files, ['index.js', 'statefile.js', 'index.d.ts', 'README.md']);
  assert.equal(client.VERSION, packageJson.version);
});
