import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '@switchyard/telemetry';
import { DerpClient } from './derp-client.ts';
import { RelayHttpServer } from './http-server.ts';
import { generateNodeKeyPair } from './keys.ts';
import { MeshLink } from './mesh-link.ts';
import type { RelayMetrics } from './metrics.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests, waitFor } from './test-support.ts';

const HOST = '127.0.0.1';
const logger = createLogger({ name: 'mesh-test', level: 'error' });

interface MeshedRelay {
  readonly relay: RelayServer;
  readonly metrics: RelayMetrics;
  readonly url: string;
  readonly links: MeshLink[];
}

async function startRelay(t: { after(fn: () => unknown): void }, meshKey: string): Promise<MeshedRelay> {
  const metrics = relayMetricsForTests();
  const relay = new RelayServer({ metrics, meshKey });
  const http = new RelayHttpServer(relay);
  const { port } = await http.listen(0, HOST);
  const links: MeshLink[] = [];
  t.after(async () => {
    for (const link of links) link.close();
    http.close();
    await relay.close();
  });
  return { relay, metrics, url: `http://${HOST}:${port}/derp`, links };
}

/** Each relay keeps a watch link to every other, as a region's derpers do. */
async function startRegion(
  t: { after(fn: () => unknown): void },
  size: number,
  queueLength = 1024,
): Promise<MeshedRelay[]> {
  const meshKey = randomBytes(32).toString('hex');
  const relays = await Promise.all(Array.from({ length: size }, () => startRelay(t, meshKey)));
  for (const [index, self] of relays.entries()) {
    for (const [peerIndex, peer] of relays.entries()) {
      if (peerIndex === index) continue;
      const link = new MeshLink({
        name: `relay-${peerIndex}`,
        url: peer.url,
        meshKey,
        relay: self.relay,
        metrics: self.metrics,
        logger,
        retryDelayMs: 50,
        queueLength,
        writeTimeoutMs: 30_000,
        handshakeTimeoutMs: 5_000,
      });
      self.links.push(link);
      link.start();
    }
  }
  await waitFor('every link up and watching', () =>
    relays.every(
      ({ relay, links }) => links.every((link) => link.up) && relay.cells.watchers.value === size - 1,
    ),
  );
  for (const { metrics } of relays) {
    assert.equal(metrics.mesh_links.cell({ state: 'up' }).value, size - 1);
    assert.equal(metrics.mesh_links.cell({ state: 'down' }).value, 0);
  }
  return relays;
}

async function connect(t: { after(fn: () => unknown): void }, url: string, keys = generateNodeKeyPair()) {
  const client = await DerpClient.connect({ url, keys });
  t.after(() => client.close());
  return client;
}

test('meshed relays forward a packet one hop to the relay that holds the destination', async (t) => {
  const [a, b] = await startRegion(t, 2);
  const alice = await connect(t, a!.url);
  const bob = await connect(t, b!.url);
  await waitFor('bob known on a', () => a!.relay.cells.clientsRemote.value === 1);
  assert.equal(b!.relay.cells.clientsRemote.value, 1);

  const packet = randomBytes(1024);
  alice.send(bob.publicKey, packet);
  const received = await bob.receive();
  assert.deepEqual(received, { source: alice.publicKey, packet: Uint8Array.from(packet) });
  assert.equal(a!.relay.cells.packetsForwardedOut.value, 1);
  assert.equal(b!.relay.cells.packetsForwardedIn.value, 1);
  assert.equal(b!.relay.cells.packetsSent.value, 1);

  bob.send(alice.publicKey, packet.subarray(0, 10));
  assert.deepEqual((await alice.receive()).packet, Uint8Array.from(packet.subarray(0, 10)));
});

test('a client that moves from one meshed relay to another keeps receiving', async (t) => {
  const [a, b] = await startRegion(t, 2);
  const sender = await connect(t, a!.url);
  const movingKeys = generateNodeKeyPair();
  const onB = await connect(t, b!.url, movingKeys);
  await waitFor('mover known on a', () => a!.relay.cells.clientsRemote.value === 1);
  sender.send(movingKeys.publicKey, Uint8Array.of(1));
  assert.deepEqual((await onB.receive()).packet, Uint8Array.of(1));

  await onB.close();
  await waitFor('mover gone from the region', () => a!.relay.cells.clientsRemote.value === 0);
  const onA = await connect(t, a!.url, movingKeys);
  sender.send(movingKeys.publicKey, Uint8Array.of(2));
  assert.deepEqual((await onA.receive()).packet, Uint8Array.of(2));

  await onA.close();
  const backOnB = await connect(t, b!.url, movingKeys);
  await waitFor('mover known on a again', () => a!.relay.cells.clientsRemote.value === 1);
  sender.send(movingKeys.publicKey, Uint8Array.of(3));
  assert.deepEqual((await backOnB.receive()).packet, Uint8Array.of(3));
  assert.equal(a!.relay.cells.packetsForwardedOut.value, 2);
  assert.equal(a!.relay.cells.packetsSent.value, 1);
});

test('a packet forwarded in for a key not connected here is dropped as unknown_dest_on_forward', async (t) => {
  const meshKey = randomBytes(32).toString('hex');
  const b = await startRelay(t, meshKey);
  // A second relay's link into b, driven directly: it forwards to a key b has never seen.
  const metrics = relayMetricsForTests();
  const a = new RelayServer({ metrics, meshKey });
  const link = new MeshLink({
    name: 'b',
    url: b.url,
    meshKey,
    relay: a,
    metrics,
    logger,
    retryDelayMs: 50,
    queueLength: 16,
    writeTimeoutMs: 5_000,
    handshakeTimeoutMs: 5_000,
  });
  t.after(() => link.close());
  link.start();
  await waitFor('link up and watching', () => link.up && b.relay.cells.watchers.value === 1);
  const bob = await connect(t, b.url);
  link.forward(generateNodeKeyPair().publicKey, generateNodeKeyPair().publicKey, Uint8Array.of(1, 2, 3), 0);
  link.forward(generateNodeKeyPair().publicKey, bob.publicKey, Uint8Array.of(4), 0);
  assert.deepEqual((await bob.receive()).packet, Uint8Array.of(4));
  assert.equal(a.cells.packetsForwardedOut.value, 2);
  assert.equal(b.relay.cells.packetsForwardedIn.value, 2);
  assert.equal(b.relay.cells.packetsDropped.unknown_dest_on_forward.value, 1);
  assert.equal(b.relay.cells.packetsSent.value, 1);
});

test('packets for a peer whose link is down are dropped as gone_disconnected', async (t) => {
  const metrics = relayMetricsForTests();
  const relay = new RelayServer({ metrics, meshKey: randomBytes(32).toString('hex') });
  const link = new MeshLink({
    name: 'nowhere',
    url: 'http://127.0.0.1:9/derp',
    meshKey: randomBytes(32).toString('hex'),
    relay,
    metrics,
    logger,
    retryDelayMs: 60_000,
    queueLength: 16,
    writeTimeoutMs: 5_000,
    handshakeTimeoutMs: 5_000,
  });
  t.after(() => link.close());
  link.forward(generateNodeKeyPair().publicKey, generateNodeKeyPair().publicKey, Uint8Array.of(1), 0);
  assert.equal(relay.cells.packetsDropped.gone_disconnected.value, 1);
  assert.equal(relay.cells.packetsForwardedOut.value, 0);
});

test('a client without the mesh key may not watch connections', async (t) => {
  const [a] = await startRegion(t, 1);
  const metrics = relayMetricsForTests();
  const intruder = new RelayServer({ metrics, meshKey: randomBytes(32).toString('hex') });
  const link = new MeshLink({
    name: 'intruder',
    url: a!.url,
    meshKey: randomBytes(32).toString('hex'),
    relay: intruder,
    metrics,
    logger,
    retryDelayMs: 10_000,
    queueLength: 16,
    writeTimeoutMs: 1_000,
    handshakeTimeoutMs: 5_000,
  });
  t.after(() => link.close());
  link.start();
  // The relay cuts it off after its WatchConns; the link notices when the close reaches it.
  await waitFor(
    'the intruder was disconnected',
    () => a!.relay.cells.disconnects.malformed.value === 1 && !link.up,
  );
  assert.equal(a!.relay.cells.watchers.value, 0);
  assert.equal(metrics.mesh_link_failures.cell().value, 1);
  assert.equal(metrics.mesh_links.cell({ state: 'down' }).value, 1);
  assert.equal(metrics.mesh_links.cell({ state: 'up' }).value, 0);
});

test('a mesh peer that is this relay itself is dropped, as derper does', async (t) => {
  const meshKey = randomBytes(32).toString('hex');
  const self = await startRelay(t, meshKey);
  const link = new MeshLink({
    name: 'me',
    url: self.url,
    meshKey,
    relay: self.relay,
    metrics: self.metrics,
    logger,
    retryDelayMs: 50,
    queueLength: 16,
    writeTimeoutMs: 5_000,
    handshakeTimeoutMs: 5_000,
  });
  t.after(() => link.close());
  link.start();
  assert.equal(self.metrics.mesh_links.cell({ state: 'down' }).value, 1);
  await waitFor('the link noticed it reached itself', () => link.isSelf);
  assert.equal(link.up, false);
  // A link to itself is no link: it leaves the gauge rather than staying down.
  assert.equal(self.metrics.mesh_links.cell({ state: 'down' }).value, 0);
  assert.equal(self.metrics.mesh_links.cell({ state: 'up' }).value, 0);
  assert.equal(self.metrics.mesh_link_failures.cell().value, 0);
  await waitFor(
    'the probe connection is gone',
    () => self.relay.cells.connections.value === 0 && self.relay.cells.accepts.value === 1,
  );
  assert.equal(self.relay.cells.watchers.value, 0);
});

test('a backed-up mesh link holds the sender back instead of dropping, as derper does', async (t) => {
  // A small link queue: without back-pressure a fast sender would overflow it at once.
  const [a, b] = await startRegion(t, 2, 16);
  const link = a!.links[0]!;
  const sender = await connect(t, a!.url);
  const receiver = await connect(t, b!.url);
  await waitFor('receiver known on a', () => a!.relay.cells.clientsRemote.value === 1);
  const total = 20_000;
  const packet = new Uint8Array(1024).fill(1);
  for (let index = 0; index < total; index++) sender.send(receiver.publicKey, packet);
  const { packetsForwardedOut, packetsDropped } = a!.relay.cells;
  await waitFor(
    'a accounted for every packet',
    () => packetsForwardedOut.value + packetsDropped.queue_head.value === total,
    20_000,
  );
  assert.equal(packetsDropped.queue_head.value, 0);
  assert.equal(packetsForwardedOut.value, total);
  // Every packet the link wrote arrived at b: nothing was lost between the relays. (What b then
  // delivers depends on how fast the receiving client reads, which is not what this test is about.)
  await waitFor(
    'b took in every forwarded packet',
    () => b!.relay.cells.packetsForwardedIn.value === total,
    20_000,
  );
  assert.equal(link.up, true);
});
