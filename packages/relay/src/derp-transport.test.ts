import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { ConfigError } from '@switchyard/telemetry';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { DerpClient } from './derp-client.ts';
import { DerpUpgradeError } from './errors.ts';
import { serverKeyFrame } from './handshake.ts';
import { RelayHttpServer } from './http-server.ts';
import { generateNodeKeyPair } from './keys.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests } from './test-support.ts';
import { MAX_WEBSOCKET_MESSAGE } from './websocket-stream.ts';

const HOST = '127.0.0.1';
type TestContext = { after(fn: () => unknown): void };

async function startRelay(t: TestContext): Promise<{ relay: RelayServer; origin: string }> {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const http = new RelayHttpServer(relay);
  const { port } = await http.listen(0, HOST);
  t.after(async () => {
    http.close();
    await relay.close();
  });
  return { relay, origin: `${HOST}:${port}` };
}

async function connect(
  t: TestContext,
  options: Parameters<typeof DerpClient.connect>[0],
): Promise<DerpClient> {
  const client = await DerpClient.connect(options);
  t.after(() => client.close());
  return client;
}

async function exchange(sender: DerpClient, receiver: DerpClient, size: number): Promise<void> {
  const packet = Uint8Array.from({ length: size }, (_, index) => index % 251);
  sender.send(receiver.publicKey, packet);
  assert.deepEqual(await receiver.receive(), { source: sender.publicKey, packet });
}

test('an http:// URL logs in through Upgrade: DERP and exchanges packets', async (t) => {
  const { relay, origin } = await startRelay(t);
  const alice = await connect(t, { url: `http://${origin}/derp`, keys: generateNodeKeyPair() });
  const bob = await connect(t, { url: `http://${origin}/derp`, keys: generateNodeKeyPair() });
  assert.deepEqual(alice.serverKey, relay.publicKey);
  await exchange(alice, bob, 1200);
  await exchange(bob, alice, 65_536);
});

test('fast start logs in with the pinned key and exchanges packets', async (t) => {
  const { relay, origin } = await startRelay(t);
  const url = `http://${origin}/derp`;
  const fast = await connect(t, {
    url,
    fastStart: true,
    serverKey: relay.publicKey,
    keys: generateNodeKeyPair(),
  });
  const plain = await connect(t, { url, keys: generateNodeKeyPair() });
  assert.equal(fast.serverInfo.version, 2);
  await exchange(fast, plain, 100);
  await exchange(plain, fast, 100);
});

test('fast start fails with SWY_ERR_DERP_SERVER_KEY when the server presents another key', async (t) => {
  const impostor = createServer((socket) => socket.end(serverKeyFrame(generateNodeKeyPair().publicKey)));
  impostor.listen(0, HOST);
  await once(impostor, 'listening');
  t.after(() => impostor.close());
  const { port } = impostor.address() as AddressInfo;
  await assert.rejects(
    DerpClient.connect({
      url: `http://${HOST}:${port}/derp`,
      fastStart: true,
      serverKey: generateNodeKeyPair().publicKey,
      keys: generateNodeKeyPair(),
    }),
    { code: 'SWY_ERR_DERP_SERVER_KEY' },
  );
});

test('a ws:// URL logs in over WebSocket and exchanges a 64 KiB packet with an http:// client', async (t) => {
  const { origin } = await startRelay(t);
  const overWebSocket = await connect(t, { url: `ws://${origin}/derp`, keys: generateNodeKeyPair() });
  const overHttp = await connect(t, { url: `http://${origin}/derp`, keys: generateNodeKeyPair() });
  await exchange(overWebSocket, overHttp, 65_536);
  await exchange(overHttp, overWebSocket, 65_536);
});

test('WebSocket writes are cut into messages of at most 32 KiB', async (t) => {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const sockets = new WebSocketServer({ host: HOST, port: 0, handleProtocols: () => 'derp' });
  await once(sockets, 'listening');
  t.after(async () => {
    await relay.close();
    sockets.close();
  });
  const messageSizes: number[] = [];
  sockets.on('connection', (socket, request) => {
    socket.on('message', (message: Buffer) => messageSizes.push(message.length));
    const remote = request.socket;
    relay.handle(createWebSocketStream(socket), {
      remoteAddress: remote.remoteAddress ?? '',
      remotePort: remote.remotePort ?? 0,
      websocket: true,
    });
  });
  const url = `ws://${HOST}:${(sockets.address() as AddressInfo).port}/derp`;
  const sender = await connect(t, { url, keys: generateNodeKeyPair() });
  const receiver = await connect(t, { url, keys: generateNodeKeyPair() });
  messageSizes.length = 0;
  await exchange(sender, receiver, 65_536);
  // One send frame: 5 header bytes + 32 key bytes + 64 KiB, in three messages.
  assert.deepEqual(messageSizes, [MAX_WEBSOCKET_MESSAGE, MAX_WEBSOCKET_MESSAGE, 37]);
});

test('an upgrade answered with a status other than 101 rejects with DerpUpgradeError', async (t) => {
  const { origin } = await startRelay(t);
  for (const url of [`http://${origin}/elsewhere`, `ws://${origin}/elsewhere`]) {
    const error = await DerpClient.connect({ url, keys: generateNodeKeyPair() }).then(
      () => assert.fail(`${url} should be refused`),
      (rejection: unknown) => rejection,
    );
    assert.ok(error instanceof DerpUpgradeError, `${url}: ${error}`);
    assert.equal(error.code, 'SWY_ERR_DERP_UPGRADE_REFUSED');
    assert.equal(error.status, 404);
    assert.equal(error.url, url);
  }
});

test('a fast start answered with HTTP instead of DERP frames rejects with DerpUpgradeError', async (t) => {
  const { relay, origin } = await startRelay(t);
  await assert.rejects(
    DerpClient.connect({
      url: `http://${origin}/elsewhere`,
      fastStart: true,
      serverKey: relay.publicKey,
      keys: generateNodeKeyPair(),
    }),
    (error: unknown) => error instanceof DerpUpgradeError && error.status === 404,
  );
});

test('a WebSocket server that does not choose the derp subprotocol is refused with status 101', async (t) => {
  const sockets = new WebSocketServer({ host: HOST, port: 0, handleProtocols: () => false });
  await once(sockets, 'listening');
  t.after(() => sockets.close());
  const url = `ws://${HOST}:${(sockets.address() as AddressInfo).port}/derp`;
  await assert.rejects(
    DerpClient.connect({ url, keys: generateNodeKeyPair() }),
    (error: unknown) =>
      error instanceof DerpUpgradeError && error.status === 101 && /subprotocol/.test(error.message),
  );
});

test('an HTTP server that never answers the upgrade times out with SWY_ERR_DERP_TIMEOUT', async (t) => {
  const held = new Set<Socket>();
  const silent = createServer((socket) => held.add(socket));
  silent.listen(0, HOST);
  await once(silent, 'listening');
  t.after(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as AddressInfo;
  for (const url of [`http://${HOST}:${port}/derp`, `ws://${HOST}:${port}/derp`]) {
    await assert.rejects(DerpClient.connect({ url, keys: generateNodeKeyPair(), handshakeTimeoutMs: 50 }), {
      code: 'SWY_ERR_DERP_TIMEOUT',
    });
  }
});

test('connection options are checked before dialing', async () => {
  const keys = generateNodeKeyPair();
  const refused: Array<[Parameters<typeof DerpClient.connect>[0], string]> = [
    [{ keys }, 'url'],
    [{ url: 'http://127.0.0.1:1/derp', host: HOST, port: 1, keys }, 'url'],
    [{ url: 'not a url', keys }, 'url'],
    [{ url: 'ftp://127.0.0.1/derp', keys }, 'url'],
    [{ url: 'http://127.0.0.1:1/derp', fastStart: true, keys }, 'fastStart'],
    [{ url: 'ws://127.0.0.1:1/derp', fastStart: true, serverKey: keys.publicKey, keys }, 'fastStart'],
    [{ host: HOST, port: 1, fastStart: true, serverKey: keys.publicKey, keys }, 'fastStart'],
  ];
  for (const [options, field] of refused) {
    await assert.rejects(
      DerpClient.connect(options),
      (error: unknown) => error instanceof ConfigError && error.field === field,
      JSON.stringify({ ...options, keys: undefined }),
    );
  }
});
