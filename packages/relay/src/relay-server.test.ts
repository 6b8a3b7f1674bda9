import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import {
  decodeRestarting,
  encodeFrame,
  encodeKeepAlive,
  encodeNotePreferred,
  encodeSendPacket,
  FrameType,
  PeerGoneReason,
} from './codec.ts';
import { DerpClient } from './derp-client.ts';
import { discoPacket, looksLikeDisco } from './disco.ts';
import { FrameReader } from './frame-reader.ts';
import { generateNodeKeyPair } from './keys.ts';
import { rawLogin } from './raw-login.ts';
import { RelayServer, type RelayServerOptions } from './relay-server.ts';
import { relayMetricsForTests, waitFor } from './test-support.ts';

const HOST = '127.0.0.1';

async function startRelay(
  t: { after(fn: () => unknown): void },
  options: Omit<RelayServerOptions, 'metrics'> = {},
): Promise<{ relay: RelayServer; port: number }> {
  const relay = new RelayServer({ metrics: relayMetricsForTests(), ...options });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());
  return { relay, port };
}

async function connectClient(
  t: { after(fn: () => unknown): void },
  port: number,
  extra: Partial<Parameters<typeof DerpClient.connect>[0]> = {},
): Promise<DerpClient> {
  const client = await DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair(), ...extra });
  t.after(() => client.close());
  return client;
}

const bytes = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, index) => (index * 31 + seed) & 0xff);

test('two clients exchange packets both ways with bytes intact', async (t) => {
  const { relay, port } = await startRelay(t);
  const alice = await connectClient(t, port);
  const bob = await connectClient(t, port);
  await waitFor('both registered', () => relay.cells.connections.value === 2);

  const toBob = bytes(1200, 1);
  const toAlice = bytes(65_536, 2);
  alice.send(bob.publicKey, toBob);
  bob.send(alice.publicKey, toAlice);

  const atBob = await bob.receive();
  const atAlice = await alice.receive();
  assert.deepEqual(atBob, { source: alice.publicKey, packet: toBob });
  assert.deepEqual(atAlice, { source: bob.publicKey, packet: toAlice });
  assert.equal(relay.cells.packetsReceived.other.value, 2);
  assert.equal(relay.cells.packetsSent.value, 2);
  assert.equal(relay.cells.bytesReceived.value, 1200 + 65_536);
  assert.equal(relay.cells.bytesSent.value, 1200 + 65_536);
});

test('the client presents the server key and pinning accepts it', async (t) => {
  const { relay, port } = await startRelay(t);
  const client = await connectClient(t, port, { serverKey: relay.publicKey });
  assert.deepEqual(client.serverKey, relay.publicKey);
  assert.equal(client.serverInfo.version, 2);
});

test('a pinned server key that does not match fails the login', async (t) => {
  const { port } = await startRelay(t);
  await assert.rejects(
    DerpClient.connect({
      host: HOST,
      port,
      keys: generateNodeKeyPair(),
      serverKey: generateNodeKeyPair().publicKey,
    }),
    { code: 'SWY_ERR_DERP_SERVER_KEY' },
  );
});

test('drops and counts a packet for an unknown key', async (t) => {
  const { relay, port } = await startRelay(t);
  const alice = await connectClient(t, port);
  alice.send(generateNodeKeyPair().publicKey, bytes(10, 3));
  await alice.ping();
  assert.equal(relay.cells.packetsDropped.unknown_dest.value, 1);
  assert.equal(relay.cells.packetsSent.value, 0);
});

test('ping resolves on the matching pong', async (t) => {
  const { port } = await startRelay(t);
  const alice = await connectClient(t, port);
  await Promise.all([alice.ping(), alice.ping(), alice.ping()]);
});

test('a client that never reads loses its oldest packets while the sender is unaffected', async (t) => {
  const { relay, port } = await startRelay(t, { sendQueueLength: 4 });
  const sender = await connectClient(t, port);
  const other = await connectClient(t, port);
  const stalledKeys = generateNodeKeyPair();
  const stalled = await rawLogin(port, stalledKeys);
  t.after(() => stalled.destroy());
  stalled.pause();
  await waitFor('three registered', () => relay.cells.connections.value === 3);

  // 400 x 60 KB outgrows the loopback socket buffers on both ends, then the 4-packet queue.
  const packet = bytes(60_000, 4);
  for (let index = 0; index < 400; index++) sender.send(stalledKeys.publicKey, packet);
  await sender.ping();
  await waitFor('queue drops', () => relay.cells.packetsDropped.queue_head.value > 0);
  assert.ok(relay.client(stalledKeys.publicKey)!.queuedPackets <= 4);
  assert.equal(relay.cells.packetsReceived.other.value, 400);
  assert.equal(
    relay.cells.packetsSent.value +
      relay.cells.packetsDropped.queue_head.value +
      relay.client(stalledKeys.publicKey)!.queuedPackets,
    400,
  );

  sender.send(other.publicKey, bytes(100, 5));
  const atOther = await other.receive();
  assert.deepEqual(atOther, { source: sender.publicKey, packet: bytes(100, 5) });
  await sender.ping();

  stalled.destroy();
  await waitFor('stalled client removed', () => relay.cells.connections.value === 2);
  assert.ok(relay.cells.packetsDropped.write_error.value <= 4);
});

test('a burst larger than the send queue, to a client that reads, arrives whole', async (t) => {
  const { relay, port } = await startRelay(t, { sendQueueLength: 4 });
  const bob = await connectClient(t, port);
  const raw = await rawLogin(port);
  t.after(() => raw.destroy());
  // 100 frames in one write: the relay reads them in one chunk, 25 times its queue length.
  raw.write(
    Buffer.concat(
      Array.from({ length: 100 }, (_, index) => encodeSendPacket(bob.publicKey, bytes(200, index))),
    ),
  );
  for (let index = 0; index < 100; index++) assert.deepEqual((await bob.receive()).packet, bytes(200, index));
  assert.equal(relay.cells.packetsDropped.queue_head.value, 0);
});

test('packets reach a stop-and-go reader intact, byte for byte', async (t) => {
  const { relay, port } = await startRelay(t, { sendQueueLength: 64 });
  const sender = await connectClient(t, port);
  const slowKeys = generateNodeKeyPair();
  const slow = await rawLogin(port, slowKeys);
  t.after(() => slow.destroy());
  // Each packet carries its sequence number and a fill byte derived from it, so any byte from
  // another packet (a buffer overwritten while the kernel still held part of it) shows.
  const packetFor = (sequence: number) => {
    const packet = new Uint8Array(4000).fill((sequence * 7 + 1) & 0xff);
    new DataView(packet.buffer).setUint32(0, sequence);
    return packet;
  };
  const reader = new FrameReader();
  let checked = 0;
  slow.on('data', (chunk: Buffer) => {
    reader.push(chunk, (frameType, payload) => {
      if (frameType !== FrameType.RecvPacket) return;
      const packet = payload.subarray(32);
      const sequence = new DataView(packet.buffer, packet.byteOffset).getUint32(0);
      assert.deepEqual(Uint8Array.from(packet), packetFor(sequence), `packet ${sequence} arrived intact`);
      checked++;
    });
    // Read in fits and starts, so that the relay's writes are often only partly taken.
    slow.pause();
    setTimeout(() => slow.resume(), 5);
  });
  const total = 6_000;
  for (let sequence = 0; sequence < total; sequence++) {
    sender.send(slowKeys.publicKey, packetFor(sequence));
    if (sequence % 100 === 99) await sender.ping();
  }
  const { packetsSent, packetsDropped } = relay.cells;
  await waitFor(
    'every packet delivered or dropped',
    () => packetsSent.value + packetsDropped.queue_head.value === total,
    20_000,
  );
  await waitFor('every delivered packet checked', () => checked === packetsSent.value, 20_000);
  assert.ok(checked > 0);
});

test('disco packets have their own queue: a data flood to a backed-up client does not push them out', async (t) => {
  const { relay, port } = await startRelay(t, { sendQueueLength: 4, writeTimeoutMs: 60_000 });
  const sender = await connectClient(t, port);
  const stalledKeys = generateNodeKeyPair();
  const stalled = await rawLogin(port, stalledKeys);
  t.after(() => stalled.destroy());
  stalled.pause();
  const data = bytes(60_000, 4);
  while (relay.cells.packetsDropped.queue_head.value === 0) {
    for (let index = 0; index < 20; index++) sender.send(stalledKeys.publicKey, data);
    await sender.ping();
  }
  sender.send(stalledKeys.publicKey, discoPacket(100));
  sender.send(stalledKeys.publicKey, discoPacket(101));
  for (let index = 0; index < 50; index++) sender.send(stalledKeys.publicKey, data);
  await sender.ping();

  const discoSizes: number[] = [];
  const reader = new FrameReader();
  stalled.on('data', (chunk: Buffer) =>
    reader.push(chunk, (frameType, payload) => {
      if (frameType === FrameType.RecvPacket && looksLikeDisco(payload.subarray(32)))
        discoSizes.push(payload.length - 32);
    }),
  );
  stalled.resume();
  await waitFor('both disco packets delivered', () => discoSizes.length === 2, 10_000);
  assert.deepEqual(discoSizes, [100, 101]);
});

test('a client that never reads is disconnected after the write deadline, and every packet is accounted for', async (t) => {
  const { relay, port } = await startRelay(t, { sendQueueLength: 4, writeTimeoutMs: 200 });
  const sender = await connectClient(t, port);
  const stalledKeys = generateNodeKeyPair();
  const stalled = await rawLogin(port, stalledKeys);
  t.after(() => stalled.destroy());
  stalled.on('error', () => {});
  stalled.pause();
  await waitFor('two registered', () => relay.cells.connections.value === 2);

  // Keep sending until the loopback buffers are full and the relay gives up on the reader.
  const packet = bytes(60_000, 4);
  let sent = 0;
  while (relay.cells.disconnects.write_timeout.value === 0 && sent < 20_000) {
    for (let index = 0; index < 20; index++) sender.send(stalledKeys.publicKey, packet);
    sent += 20;
    await sender.ping();
  }
  assert.equal(relay.cells.disconnects.write_timeout.value, 1);
  const drops = relay.cells.packetsDropped;
  assert.equal(relay.cells.packetsReceived.other.value, sent);
  assert.ok(drops.queue_head.value > 0, 'the full queue dropped its oldest packets');
  const writeErrors = drops.write_error.value;
  assert.ok(writeErrors > 0 && writeErrors <= 4, 'the queued packets died with the connection');
  assert.equal(
    relay.cells.packetsSent.value +
      drops.queue_head.value +
      drops.queue_tail.value +
      writeErrors +
      drops.unknown_dest.value,
    sent,
  );
  assert.equal(relay.cells.connections.value, 1);
});

test('a second login for the same key keeps both and delivers to the newest, then to the last writer', async (t) => {
  const { relay, port } = await startRelay(t);
  const keys = generateNodeKeyPair();
  const first = await connectClient(t, port, { keys });
  const second = await connectClient(t, port, { keys });
  const sender = await connectClient(t, port);
  await waitFor('three connections', () => relay.cells.connections.value === 3);
  assert.equal(relay.cells.clientsLocal.value, 2);
  assert.equal(relay.cells.duplicateClientKeys.value, 1);
  assert.equal(relay.cells.duplicateClientConnections.value, 2);
  assert.equal(relay.cells.duplicateClientReplacements.value, 1);

  sender.send(keys.publicKey, bytes(50, 6));
  assert.deepEqual((await second.receive()).packet, bytes(50, 6));

  // Any frame makes its sender the active connection (derper's lastWriterIsActive).
  await first.ping();
  sender.send(keys.publicKey, bytes(51, 6));
  assert.deepEqual((await first.receive()).packet, bytes(51, 6));

  await first.close();
  await waitFor('duplicate set shrunk', () => relay.cells.duplicateClientKeys.value === 0);
  assert.equal(relay.cells.duplicateClientConnections.value, 0);
  sender.send(keys.publicKey, bytes(52, 6));
  assert.deepEqual((await second.receive()).packet, bytes(52, 6));
});

test('packets for a duplicated key whose active connection left are dropped as duplicate_client', async (t) => {
  const { relay, port } = await startRelay(t);
  const keys = generateNodeKeyPair();
  await connectClient(t, port, { keys });
  await connectClient(t, port, { keys });
  const newest = await connectClient(t, port, { keys });
  const sender = await connectClient(t, port);
  await waitFor('four connections', () => relay.cells.connections.value === 4);
  await newest.close();
  await waitFor('newest gone', () => relay.cells.connections.value === 3);
  sender.send(keys.publicKey, bytes(10, 1));
  await sender.ping();
  assert.equal(relay.cells.packetsDropped.duplicate_client.value, 1);
  assert.equal(relay.cells.packetsSent.value, 0);
});

test('an unknown frame type is counted and skipped', async (t) => {
  const { relay, port } = await startRelay(t);
  const bob = await connectClient(t, port);
  const raw = await rawLogin(port);
  t.after(() => raw.destroy());
  raw.write(encodeFrame(0x7f, bytes(20, 7)));
  raw.write(encodeSendPacket(bob.publicKey, bytes(30, 8)));
  const received = await bob.receive();
  assert.deepEqual(received.packet, bytes(30, 8));
  assert.equal(relay.cells.unknownFrames.value, 1);
});

test('a malformed frame closes only that client', async (t) => {
  const { relay, port } = await startRelay(t);
  const alice = await connectClient(t, port);
  const bob = await connectClient(t, port);
  const raw = await rawLogin(port);
  raw.on('error', () => {});
  raw.write(encodeFrame(FrameType.SendPacket, bytes(10, 9)));
  await once(raw, 'close');
  await waitFor('raw client counted', () => relay.cells.disconnects.malformed.value === 1);

  alice.send(bob.publicKey, bytes(40, 10));
  assert.deepEqual((await bob.receive()).packet, bytes(40, 10));
  await waitFor('raw client removed', () => relay.cells.connections.value === 2);
});

test('PeerGone reaches a client that received packets from a peer when that peer disconnects', async (t) => {
  const { relay, port } = await startRelay(t);
  const gone: Array<{ peerKey: Uint8Array; reason: number }> = [];
  const alice = await connectClient(t, port);
  const bob = await connectClient(t, port, {
    onPeerGone: (peerKey, reason) => gone.push({ peerKey, reason }),
  });
  alice.send(bob.publicKey, bytes(10, 11));
  await bob.receive();
  await alice.close();
  await waitFor('peer gone', () => gone.length === 1);
  assert.deepEqual(gone[0], { peerKey: alice.publicKey, reason: PeerGoneReason.Disconnected });
  assert.equal(relay.cells.peerGoneFramesSent.disconnected.value, 1);
});

test('a disco packet for an unknown key is answered with PeerGone(NotHere), three at once then one a second', async (t) => {
  const { relay, port } = await startRelay(t);
  const gone: Array<{ peerKey: Uint8Array; reason: number }> = [];
  const alice = await connectClient(t, port, {
    onPeerGone: (peerKey, reason) => gone.push({ peerKey, reason }),
  });
  const nowhere = generateNodeKeyPair().publicKey;
  for (let index = 0; index < 5; index++) alice.send(nowhere, discoPacket(80));
  alice.send(nowhere, bytes(80, 1));
  await alice.ping();
  assert.deepEqual(
    gone,
    Array.from({ length: 3 }, () => ({ peerKey: nowhere, reason: PeerGoneReason.NotHere })),
  );
  assert.equal(relay.cells.packetsDropped.gone_not_here.value, 3);
  assert.equal(relay.cells.packetsDropped.unknown_dest.value, 3);
  assert.equal(relay.cells.peerGoneFramesSent.not_here.value, 3);
  assert.equal(relay.cells.packetsReceived.disco.value, 5);
  assert.equal(relay.cells.packetsReceived.other.value, 1);
});

test('closes a socket that sends no client info before the deadline', async (t) => {
  const { relay, port } = await startRelay(t, { handshakeTimeoutMs: 50 });
  const silent = connect({ host: HOST, port });
  silent.on('error', () => {});
  silent.resume();
  await once(silent, 'close');
  await waitFor('handshake failure counted', () => relay.cells.disconnects.handshake.value === 1);
  assert.equal(relay.cells.connections.value, 0);
});

test('closes a socket whose first frame is not client info', async (t) => {
  const { relay, port } = await startRelay(t);
  const wrong = connect({ host: HOST, port });
  wrong.on('error', () => {});
  wrong.resume();
  wrong.write(encodeFrame(FrameType.KeepAlive, new Uint8Array(0)));
  await once(wrong, 'close');
  await waitFor('handshake failure counted', () => relay.cells.disconnects.handshake.value === 1);
});

test('rejects options that are not positive integers', () => {
  const metrics = relayMetricsForTests();
  assert.throws(() => new RelayServer({ metrics, sendQueueLength: 0 }), { code: 'SWY_ERR_CONFIG' });
  assert.throws(() => new RelayServer({ metrics, handshakeTimeoutMs: 1.5 }), { code: 'SWY_ERR_CONFIG' });
});

test('accepts keep-alive and records NotePreferred', async (t) => {
  const { relay, port } = await startRelay(t);
  const keys = generateNodeKeyPair();
  const raw = await rawLogin(port, keys);
  t.after(() => raw.destroy());
  raw.write(encodeKeepAlive());
  raw.write(encodeNotePreferred(true));
  await waitFor('preferred noted', () => relay.client(keys.publicKey)?.preferred === true);
  assert.equal(relay.cells.unknownFrames.value, 0);
  assert.equal(relay.cells.homeConnections.value, 1);
  assert.equal(relay.cells.disconnects.malformed.value, 0);
});

test('closing the relay tells logged-in clients it is restarting, then ends their streams', async () => {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const { port } = await relay.listen(0, HOST);
  const raw = await rawLogin(port);
  const reader = new FrameReader();
  const frames: Array<{ frameType: number; payload: Uint8Array }> = [];
  raw.on('data', (chunk: Buffer) =>
    reader.push(chunk, (frameType, payload) => frames.push({ frameType, payload: Uint8Array.from(payload) })),
  );
  const ended = once(raw, 'end');
  await relay.close(250, 10_000);
  await ended;
  const restarting = frames.find((frame) => frame.frameType === FrameType.Restarting);
  assert.ok(restarting, 'a Restarting frame arrived before the end of the stream');
  assert.deepEqual(decodeRestarting(restarting.payload), { reconnectInMs: 250, tryForMs: 10_000 });
  assert.equal(relay.cells.disconnects.server_close.value, 1);
  raw.destroy();
});
