import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AllowList } from './admission.ts';
import { DerpClient } from './derp-client.ts';
import { formatPublicKey, generateNodeKeyPair } from './keys.ts';
import { RelayServer } from './relay-server.ts';

const HOST = '127.0.0.1';

function tempFile(t: { after(fn: () => unknown): void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'relay-allow-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'allow.txt');
  writeFileSync(path, text);
  return path;
}

test('only keys on the allow-list log in; refusals are counted', async (t) => {
  const allowed = generateNodeKeyPair();
  const stranger = generateNodeKeyPair();
  const path = tempFile(t, `# region keys\n${formatPublicKey(allowed.publicKey)}  # laptop\n\n`);
  const relay = new RelayServer({ admission: new AllowList(path) });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());

  const client = await DerpClient.connect({ host: HOST, port, keys: allowed });
  t.after(() => client.close());
  await assert.rejects(DerpClient.connect({ host: HOST, port, keys: stranger }));
  assert.equal(relay.stats.admissionRefusals, 1);
  assert.equal(relay.stats.disconnects.refused, 1);
  assert.equal(relay.stats.connections, 1);
});

test('a changed file is picked up by the watcher, and a broken one keeps the previous list', async (t) => {
  const first = generateNodeKeyPair();
  const second = generateNodeKeyPair();
  const path = tempFile(t, `${formatPublicKey(first.publicKey)}\n`);
  const list = new AllowList(path);
  t.after(() => list.close());
  const reloads: Array<{ keys: number } | { error: Error }> = [];
  let notify: (() => void) | undefined;
  list.watch(20, {
    onReload: (result) => {
      reloads.push(result);
      notify?.();
    },
  });
  const nextReload = () =>
    new Promise<void>((resolve) => {
      notify = resolve;
    });

  let reloaded = nextReload();
  writeFileSync(path, `${formatPublicKey(first.publicKey)}\n${formatPublicKey(second.publicKey)}\n`);
  await reloaded;
  assert.deepEqual(reloads.at(-1), { keys: 2 });
  assert.ok(list.allows(second.publicKey));

  reloaded = nextReload();
  writeFileSync(path, 'nodekey:not-hex\n');
  await reloaded;
  const failure = reloads.at(-1) as { error: Error & { code: string } };
  assert.equal(failure.error.code, 'SWY_ERR_CONFIG');
  assert.match(failure.error.message, /line 1 is not a node key/);
  assert.ok(list.allows(first.publicKey) && list.allows(second.publicKey));
});

test('an unreadable or malformed allow-list fails at startup with the line at fault', (t) => {
  assert.throws(() => new AllowList('/nonexistent/allow.txt'), /cannot be read/);
  const path = tempFile(t, `${formatPublicKey(generateNodeKeyPair().publicKey)}\nprivkey:00\n`);
  assert.throws(() => new AllowList(path), /line 2 is not a node key/);
});
