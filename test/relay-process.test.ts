import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DerpClient, DROP_REASONS, discoPacket, generateNodeKeyPair } from '@switchyard/relay';
import { parseExposition, sampleValue } from './support/exposition.ts';
import { freePort } from './support/free-port.ts';
import { checkMetrics } from './support/promtool.ts';
import { spawnWorker, type WorkerProcess } from './support/worker-process.ts';

const relayMain = fileURLToPath(new URL('../packages/relay/src/main.ts', import.meta.url));

interface RunningRelay {
  readonly process: WorkerProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly publicKey: string;
}

async function startRelay(file: string): Promise<RunningRelay> {
  const process = spawnWorker(relayMain, { SWITCHYARD_DEMO_TRAFFIC: '0' }, ['--config', file]);
  const admin = await process.waitForLog((line) => line.msg === 'admin server listening');
  const listening = await process.waitForLog((line) => line.msg === 'relay listening');
  await process.waitForLog((line) => line.msg === 'relay serving');
  return {
    process,
    url: listening.url as string,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    publicKey: listening.publicKey as string,
  };
}

const filled = (length: number, value: number) => new Uint8Array(length).fill(value);

describe('the relay as a process', () => {
  let dir: string;
  let file: string;
  let relay: RunningRelay;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-relay-'));
    file = join(dir, 'relay.json');
    writeFileSync(
      file,
      JSON.stringify({
        telemetry: { admin: { port: 0 } },
        listen: '127.0.0.1:0',
        keyFile: join(dir, 'relay-key.json'),
        pingIntervalMs: '100ms',
      }),
    );
    relay = await startRelay(file);
  });
  after(async () => {
    await relay.process.stop('SIGKILL');
  });

  const scrapeText = async () => (await fetch(`${relay.adminUrl}/metrics`)).text();
  const scrape = async () => parseExposition(await scrapeText());
  const value = (families: ReturnType<typeof parseExposition>, name: string, labels = {}) =>
    sampleValue(families, `switchyard_relay_${name}`, labels);

  test('/metrics passes promtool and every drop reason starts at zero', async () => {
    const text = await scrapeText();
    const verdict = await checkMetrics(text);
    assert.deepEqual(verdict.problems, [], verdict.output);
    const families = parseExposition(text);
    for (const reason of DROP_REASONS) {
      assert.equal(value(families, 'packets_dropped_total', { reason }), 0, reason);
    }
    assert.equal(families.get('switchyard_relay_connections')?.type, 'gauge');
    assert.equal(families.get('switchyard_relay_packets_sent_total')?.type, 'counter');
  });

  test('scraped values equal the traffic exactly: packets and bytes in and out, drops by reason', async (t) => {
    const before = await scrape();
    const alice = await DerpClient.connect({ url: relay.url, keys: generateNodeKeyPair() });
    const bob = await DerpClient.connect({ url: relay.url, keys: generateNodeKeyPair() });
    t.after(() => Promise.all([alice.close(), bob.close()]));
    for (let index = 0; index < 10; index++) alice.send(bob.publicKey, filled(1000, index));
    for (let index = 0; index < 5; index++) bob.send(alice.publicKey, filled(65_536, index));
    const nowhere = generateNodeKeyPair().publicKey;
    for (let index = 0; index < 3; index++) alice.send(nowhere, filled(100, 1));
    for (let index = 0; index < 2; index++) alice.send(nowhere, discoPacket(100));
    for (let index = 0; index < 10; index++) await bob.receive();
    for (let index = 0; index < 5; index++) await alice.receive();
    await alice.ping();

    const after = await scrape();
    assert.equal(after.get('switchyard_relay_queue_duration_seconds')?.type, 'histogram');
    const delta = (name: string, labels = {}) =>
      (value(after, name, labels) ?? 0) - (value(before, name, labels) ?? 0);
    assert.equal(delta('accepts_total'), 2);
    assert.equal(value(after, 'connections'), 2);
    assert.equal(value(after, 'clients_local'), 2);
    assert.equal(value(after, 'clients'), 2);
    assert.equal(delta('packets_received_total', { kind: 'other' }), 18);
    assert.equal(delta('packets_received_total', { kind: 'disco' }), 2);
    assert.equal(delta('bytes_received_total'), 10 * 1000 + 5 * 65_536 + 5 * 100);
    assert.equal(delta('packets_sent_total'), 15);
    assert.equal(delta('bytes_sent_total'), 10 * 1000 + 5 * 65_536);
    assert.equal(delta('packets_dropped_total', { reason: 'unknown_dest' }), 3);
    assert.equal(delta('packets_dropped_total', { reason: 'gone_not_here' }), 2);
    assert.equal(delta('peer_gone_frames_sent_total', { reason: 'not_here' }), 2);
    assert.equal(delta('queue_duration_seconds_count'), 15);
    assert.equal(
      sampleValue(after, 'http_server_request_duration_seconds_count', {
        http_route: '/derp',
        http_response_status_code: '101',
      }),
      2,
    );
  });

  test('a second connection for one key shows in the duplicate gauges and the replacement counter', async (t) => {
    const keys = generateNodeKeyPair();
    const first = await DerpClient.connect({ url: relay.url, keys });
    const second = await DerpClient.connect({ url: relay.url, keys });
    t.after(() => Promise.all([first.close(), second.close()]));
    const families = await scrape();
    assert.equal(value(families, 'duplicate_client_keys'), 1);
    assert.equal(value(families, 'duplicate_client_connections'), 2);
    assert.equal(value(families, 'duplicate_client_replacements_total'), 1);
  });

  test('WebSocket clients count in websocket_active_connections and exchange packets', async (t) => {
    const wsUrl = relay.url.replace(/^http/, 'ws');
    const alice = await DerpClient.connect({ url: wsUrl, keys: generateNodeKeyPair() });
    const bob = await DerpClient.connect({ url: relay.url, keys: generateNodeKeyPair() });
    t.after(() => Promise.all([alice.close(), bob.close()]));
    alice.send(bob.publicKey, filled(1024, 9));
    assert.deepEqual((await bob.receive()).packet, filled(1024, 9));
    assert.equal(value(await scrape(), 'websocket_active_connections'), 1);
  });

  test('relay-initiated pings are answered and measured in ping_rtt_seconds', async (t) => {
    const client = await DerpClient.connect({ url: relay.url, keys: generateNodeKeyPair() });
    t.after(() => client.close());
    let families = await scrape();
    const deadline = performance.now() + 5_000;
    // Pings go out every 100 ms (config); wait on the histogram itself.
    while ((value(families, 'ping_rtt_seconds_count') ?? 0) === 0) {
      assert.ok(performance.now() < deadline, 'no ping answered within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
      families = await scrape();
    }
    assert.ok((value(families, 'ping_rtt_seconds_sum') ?? 0) > 0);
  });

  test('the relay key persists in the key file across restarts, and SIGTERM exits cleanly', async () => {
    const firstKey = relay.publicKey;
    const stopped = await relay.process.stop('SIGTERM');
    assert.deepEqual(stopped, { code: 0, signal: null });
    relay = await startRelay(file);
    assert.equal(relay.publicKey, firstKey);
  });
});

describe('two relay processes meshed', () => {
  let relays: RunningRelay[] = [];

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-relay-mesh-'));
    const meshKeyFile = join(dir, 'mesh-psk');
    writeFileSync(meshKeyFile, `${randomBytes(32).toString('hex')}\n`);
    const ports = [await freePort(), await freePort()];
    relays = await Promise.all(
      ports.map((port, index) => {
        const file = join(dir, `relay-${index}.json`);
        const peer = ports[1 - index];
        writeFileSync(
          file,
          JSON.stringify({
            telemetry: { admin: { port: 0 } },
            listen: `127.0.0.1:${port}`,
            keyFile: join(dir, `relay-${index}-key.json`),
            mesh: {
              keyFile: meshKeyFile,
              peers: [{ name: `relay-${1 - index}`, url: `http://127.0.0.1:${peer}/derp` }],
            },
          }),
        );
        return startRelay(file);
      }),
    );
    await Promise.all(relays.map((relay) => relay.process.waitForLog((line) => line.msg === 'mesh link up')));
  });
  after(async () => {
    await Promise.all(relays.map((relay) => relay.process.stop('SIGKILL')));
  });

  test('clients on different relays exchange packets through the mesh, and both sides count them', async (t) => {
    const [a, b] = relays as [RunningRelay, RunningRelay];
    const alice = await DerpClient.connect({ url: a.url, keys: generateNodeKeyPair() });
    const bob = await DerpClient.connect({ url: b.url, keys: generateNodeKeyPair() });
    t.after(() => Promise.all([alice.close(), bob.close()]));
    // Bob is reachable from a once b's PeerPresent for him has arrived over a's watch link.
    let families = parseExposition(await (await fetch(`${a.adminUrl}/metrics`)).text());
    while (sampleValue(families, 'switchyard_relay_clients_remote') === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      families = parseExposition(await (await fetch(`${a.adminUrl}/metrics`)).text());
    }
    for (let index = 0; index < 5; index++) alice.send(bob.publicKey, filled(1024, index));
    for (let index = 0; index < 5; index++)
      assert.deepEqual((await bob.receive()).packet, filled(1024, index));
    const atA = parseExposition(await (await fetch(`${a.adminUrl}/metrics`)).text());
    const atB = parseExposition(await (await fetch(`${b.adminUrl}/metrics`)).text());
    assert.equal(sampleValue(atA, 'switchyard_relay_packets_forwarded_out_total'), 5);
    assert.equal(sampleValue(atB, 'switchyard_relay_packets_forwarded_in_total'), 5);
    assert.equal(sampleValue(atB, 'switchyard_relay_packets_sent_total'), 5);
    assert.equal(sampleValue(atA, 'switchyard_relay_mesh_links', { state: 'up' }), 1);
    assert.equal(sampleValue(atB, 'switchyard_relay_watchers'), 1);
  });
});
