import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadOrCreateKeyFile } from './key-file.ts';
import { formatPrivateKey, generateNodeKeyPair } from './keys.ts';

function tempDir(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'relay-key-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('creates the key file on first start, owner-only, and reads the same key back', (t) => {
  const path = join(tempDir(t), 'nested', 'relay-key.json');
  const first = loadOrCreateKeyFile(path);
  assert.equal(first.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.match(readFileSync(path, 'utf8'), /^\{\n {2}"PrivateKey": "privkey:[0-9a-f]{64}"\n\}\n$/);
  const second = loadOrCreateKeyFile(path);
  assert.equal(second.created, false);
  assert.deepEqual(second.keys.publicKey, first.keys.publicKey);
});

test('reads a derper key file', (t) => {
  const keys = generateNodeKeyPair();
  const path = join(tempDir(t), 'derper.json');
  writeFileSync(path, JSON.stringify({ PrivateKey: formatPrivateKey(keys.secretKey) }));
  assert.deepEqual(loadOrCreateKeyFile(path).keys.publicKey, keys.publicKey);
});

test('a malformed key file is a config error that says the expected format', (t) => {
  const dir = tempDir(t);
  for (const [name, text] of [
    ['not-json', 'privkey:00'],
    ['no-field', '{"Key": "x"}'],
    ['bad-key', '{"PrivateKey": "privkey:zz"}'],
  ] as const) {
    const path = join(dir, name);
    writeFileSync(path, text);
    assert.throws(() => loadOrCreateKeyFile(path), { code: 'SWY_ERR_CONFIG' }, name);
  }
});
