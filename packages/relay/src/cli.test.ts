import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RelayHttpServer } from './http-server.ts';
import { formatPublicKey } from './keys.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests } from './test-support.ts';

const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));

async function startRelay(t: {
  after(fn: () => unknown): void;
}): Promise<{ relay: RelayServer; url: string }> {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const http = new RelayHttpServer(relay);
  const { port } = await http.listen(0, '127.0.0.1');
  t.after(async () => {
    http.close();
    await relay.close();
  });
  return { relay, url: `http://127.0.0.1:${port}/derp` };
}

/** Runs the CLI; `lines` yields its stdout JSON objects as they come. */
function runCli(args: readonly string[]) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = once(child, 'exit').then(([code]) => ({ code: code as number, stderr }));
  return {
    next: async () => JSON.parse(((await lines.next()).value as string) ?? 'null') as Record<string, unknown>,
    exited,
  };
}

test('recv prints the packets send delivers, by key file identity', async (t) => {
  const { url } = await startRelay(t);
  const dir = mkdtempSync(join(tmpdir(), 'derp-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const receiver = runCli(['recv', '--url', url, '--key-file', join(dir, 'receiver.json'), '--count', '2']);
  const listening = await receiver.next();
  assert.equal(listening.event, 'listening');
  const key = listening.key as string;

  const sender = runCli(['send', '--url', url, '--to', key, '--text', 'hi', '--count', '2']);
  assert.deepEqual(await sender.next(), { event: 'sent', to: key, packets: 2, bytes: 2 });
  assert.equal((await sender.exited).code, 0);
  const first = await receiver.next();
  assert.equal(first.event, 'packet');
  assert.equal(first.hex, Buffer.from('hi').toString('hex'));
  assert.equal((await receiver.next()).bytes, 2);
  assert.equal((await receiver.exited).code, 0);
});

test('connect prints both keys and ping prints round trips', async (t) => {
  const { relay, url } = await startRelay(t);
  const connect = runCli(['connect', '--url', url]);
  const connected = await connect.next();
  assert.equal(connected.serverKey, formatPublicKey(relay.publicKey));
  assert.equal(connected.serverVersion, 2);
  const ping = runCli(['ping', '--url', url, '--count', '2']);
  for (let index = 0; index < 2; index++) {
    const pong = await ping.next();
    assert.equal(pong.event, 'pong');
    assert.ok((pong.rttMs as number) >= 0);
  }
  assert.equal((await ping.exited).code, 0);
});

test('a usage mistake exits 2 with the problem and the usage; an unreachable relay exits 1', async () => {
  const missingUrl = await runCli(['send', '--to', 'nodekey:00']).exited;
  assert.equal(missingUrl.code, 2);
  assert.match(missingUrl.stderr, /--url is required/);
  assert.match(missingUrl.stderr, /usage: switchyard-derp/);
  const unreachable = await runCli(['connect', '--url', 'http://127.0.0.1:9/derp', '--timeout', '2000'])
    .exited;
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /^switchyard-derp: /);
});
