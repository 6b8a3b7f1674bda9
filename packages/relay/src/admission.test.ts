import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AllowList } from './admission.ts';
import { DerpClient } from './derp-client.ts';
import { formatPublicKey, generateNodeKeyPair } from './keys.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests } from './test-support.ts';

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
  const metrics = relayMetricsForTests();
  const relay = new RelayServer({ metrics, admission: new AllowList(path, metrics) });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());

  const client = await DerpClient.connect({ host: HOST, port, keys: allowed });
  t.after(() => client.close());
  await assert.rejects(DerpClient.connect({ host: HOST, port, keys: stranger }));
  assert.equal(relay.cells.admissionRefusals.value, 1);
  assert.equal(relay.cells.disconnects.refused.value, 1);
  assert.equal(relay.cells.connections.value, 1);
});

test('a changed file is picked up by the watcher, and a broken one keeps the previous list', async (t) => {
  const first = generateNodeKeyPair();
  const second = generateNodeKeyPair();
  const path = tempFile(t, `${formatPublicKey(first.publicKey)}\n`);
  const metrics = relayMetricsForTests();
  const listed = metrics.admission_list_keys.cell();
  const reloaded = (result: 'success' | 'failure') => metrics.admission_list_reloads.cell({ result }).value;
  const list = new AllowList(path, metrics);
  assert.equal(listed.value, 1);
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

  let reload = nextReload();
  writeFileSync(path, `${formatPublicKey(first.publicKey)}\n${formatPublicKey(second.publicKey)}\n`);
  await reload;
  assert.deepEqual(reloads.at(-1), { keys: 2 });
  assert.ok(list.allows(second.publicKey));
  assert.equal(listed.value, 2);
  assert.equal(reloaded('success'), 1);

  reload = nextReload();
  writeFileSync(path, 'nodekey:not-hex\n');
  await reload;
  const failure = reloads.at(-1) as { error: Error & { code: string } };
  assert.equal(failure.error.code, 'SWY_ERR_CONFIG');
  assert.match(failure.error.message, /line 1 is not a node key/);
  assert.ok(list.allows(first.publicKey) && list.allows(second.publicKey));
  assert.equal(listed.value, 2, 'the previous list stays in force, and so does its size');
  assert.equal(reloaded('failure'), 1);
});

test('an unreadable or malformed allow-list fails at startup with the line at fault', (t) => {
  const metrics = relayMetricsForTests();
  assert.throws(() => new AllowList('/nonexistent/allow.txt', metrics), /cannot be read/);
  const path = tempFile(t, `${formatPublicKey(generateNodeKeyPair().publicKey)}\nprivkey:00\n`);
  assert.throws(() => new AllowList(path, metrics), /line 2 is not a node key/);
});
