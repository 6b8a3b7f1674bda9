import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { encodeFrame, FrameType } from './codec.ts';
import { DerpClient } from './derp-client.ts';
import { generateNodeKeyPair } from './keys.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests } from './test-support.ts';

const HOST = '127.0.0.1';

async function listenRaw(t: { after(fn: () => unknown): void }, server: Server): Promise<number> {
  server.listen(0, HOST);
  await once(server, 'listening');
  t.after(() => server.close());
  return (server.address() as AddressInfo).port;
}

test('yields received packets from the async iterator', async (t) => {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());
  const alice = await DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair() });
  const bob = await DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair() });
  t.after(() => alice.close());
  for (let index = 0; index < 3; index++) alice.send(bob.publicKey, Uint8Array.of(index));

  const seen: number[] = [];
  for await (const { source, packet } of bob) {
    assert.deepEqual(source, alice.publicKey);
    seen.push(packet[0]!);
    if (seen.length === 3) await bob.close();
  }
  assert.deepEqual(seen, [0, 1, 2]);
});

test('close rejects a pending receive and ping with SWY_ERR_DERP_CLOSED', async (t) => {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());
  const client = await DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair() });
  const pending = client.receive();
  await client.close();
  await assert.rejects(pending, { code: 'SWY_ERR_DERP_CLOSED' });
  await assert.rejects(client.ping(), { code: 'SWY_ERR_DERP_CLOSED' });
  assert.throws(() => client.send(generateNodeKeyPair().publicKey, Uint8Array.of(1)), {
    code: 'SWY_ERR_DERP_CLOSED',
  });
});

test('login times out against a server that never speaks', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => sockets.add(socket));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const port = await listenRaw(t, silent);
  await assert.rejects(
    DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair(), handshakeTimeoutMs: 50 }),
    { code: 'SWY_ERR_DERP_TIMEOUT' },
  );
});

test('login fails when the first frame is not a server key', async (t) => {
  const port = await listenRaw(
    t,
    createServer((socket) => socket.end(encodeFrame(FrameType.KeepAlive, new Uint8Array(0)))),
  );
  await assert.rejects(DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair() }), {
    code: 'SWY_ERR_DERP_PROTOCOL',
  });
});
