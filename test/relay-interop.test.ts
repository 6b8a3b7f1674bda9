import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  DerpClient,
  type DerpClientOptions,
  discoPacket,
  generateNodeKeyPair,
  PeerGoneReason,
  RelayHttpServer,
  RelayServer,
} from '@switchyard/relay';
import { relayMetricsForTests } from '../packages/relay/src/test-support.ts';
import {
  type GoDerpPeer,
  type GoDerpPeerOptions,
  type RunningDerper,
  startDerper,
  startGoDerpPeer,
} from './support/derp-peers.ts';

/*
 * Interop with real peers: Tailscale's derper and its Go client (tailscale.com/derp/derphttp),
 * built from their module by scripts/build-go-tools.sh. Our client goes through derper; Go clients
 * go through our relay, over Upgrade: DERP and over WebSocket.
 */

type TestContext = { after(fn: () => unknown): void };

/** From one byte to derp.MaxPacketSize, with sizes that span TCP segments and WebSocket messages. */
const PACKET_SIZES = [1, 1200, 16 << 10, 64 << 10];

interface Peer {
  readonly publicKey: Uint8Array;
  send(to: Uint8Array, packet: Uint8Array): unknown;
  receive(): Promise<{ source: Uint8Array; packet: Uint8Array }>;
}

async function connectOurs(t: TestContext, options: Omit<DerpClientOptions, 'keys'>): Promise<DerpClient> {
  const client = await DerpClient.connect({ keys: generateNodeKeyPair(), ...options });
  t.after(() => client.close());
  return client;
}

async function startGo(t: TestContext, url: string, options?: GoDerpPeerOptions): Promise<GoDerpPeer> {
  const peer = await startGoDerpPeer(url, options);
  t.after(() => peer.kill());
  return peer;
}

/** Every size from `a` to `b` and back, one at a time, checking source and bytes. */
async function exchangeBothWays(a: Peer, b: Peer, sizes: readonly number[] = PACKET_SIZES): Promise<void> {
  for (const size of sizes) {
    for (const [sender, receiver] of [
      [a, b],
      [b, a],
    ] as const) {
      const packet = new Uint8Array(randomBytes(size));
      sender.send(receiver.publicKey, packet);
      const received = await receiver.receive();
      assert.deepEqual(received.source, sender.publicKey, `source of a ${size}-byte packet`);
      assert.deepEqual(received.packet, packet, `${size}-byte packet`);
    }
  }
}

function peerGone(): {
  onPeerGone(key: Uint8Array, reason: number): void;
  next: Promise<[Uint8Array, number]>;
} {
  let resolve!: (gone: [Uint8Array, number]) => void;
  const next = new Promise<[Uint8Array, number]>((done) => {
    resolve = done;
  });
  return { onPeerGone: (key, reason) => resolve([key, reason]), next };
}

/**
 * A Go client floods 2,000 packets of 1,200 bytes through a fresh relay to a Go client that only
 * counts, over `scheme`; the relay's queue holds the whole burst, so every packet must arrive,
 * many frames per write, and the receiver must still answer a ping afterwards.
 */
async function burstToGoClient(t: TestContext, scheme: 'http' | 'ws'): Promise<void> {
  const relay = new RelayServer({ metrics: relayMetricsForTests(), sendQueueLength: 4096 });
  const http = new RelayHttpServer(relay);
  const { port } = await http.listen(0, '127.0.0.1');
  t.after(async () => {
    http.close();
    await relay.close();
  });
  const sender = await startGo(t, `http://127.0.0.1:${port}/derp`);
  const receiver = await startGo(t, `${scheme}://127.0.0.1:${port}/derp`, { recv: 'count' });
  await sender.flood(receiver.publicKey, 2000, 1200);
  assert.deepEqual(await receiver.stats(2000, 10_000), { received: 2000, bytesReceived: 2000 * 1200 });
  assert.ok((await receiver.ping()) > 0);
}

describe("through Tailscale's derper", () => {
  let derper: RunningDerper;
  before(async () => {
    derper = await startDerper();
  });
  after(() => derper?.stop());

  test('our client and a Go derphttp client exchange 1 B to 64 KiB packets both ways over Upgrade: DERP', async (t) => {
    const ours = await connectOurs(t, { url: derper.url, serverKey: derper.publicKey });
    const go = await startGo(t, derper.url);
    assert.deepEqual(go.serverKey, derper.publicKey);
    assert.equal(ours.serverInfo.version, 2);
    await exchangeBothWays(ours, go);
  });

  test('our client over WebSocket and a Go derphttp client exchange 1 B to 64 KiB packets both ways', async (t) => {
    const ours = await connectOurs(t, { url: derper.webSocketUrl, serverKey: derper.publicKey });
    const go = await startGo(t, derper.url);
    await exchangeBothWays(ours, go);
  });

  test('our client logs in with Derp-Fast-Start and exchanges packets with a Go client', async (t) => {
    const ours = await connectOurs(t, { url: derper.url, serverKey: derper.publicKey, fastStart: true });
    const go = await startGo(t, derper.url);
    await exchangeBothWays(ours, go, [1200]);
  });

  test('a fast start pinned to another key fails with SWY_ERR_DERP_SERVER_KEY', async () => {
    await assert.rejects(
      DerpClient.connect({
        url: derper.url,
        serverKey: generateNodeKeyPair().publicKey,
        fastStart: true,
        keys: generateNodeKeyPair(),
      }),
      { code: 'SWY_ERR_DERP_SERVER_KEY' },
    );
  });

  test('our client pings through derper over Upgrade: DERP and over WebSocket', async (t) => {
    for (const url of [derper.url, derper.webSocketUrl]) {
      const ours = await connectOurs(t, { url });
      await ours.ping();
      await ours.ping();
    }
  });

  test('our client hears PeerGone (disconnected) when a Go peer that sent to it leaves', async (t) => {
    const gone = peerGone();
    const ours = await connectOurs(t, { url: derper.url, onPeerGone: gone.onPeerGone });
    const go = await startGo(t, derper.url);
    go.send(ours.publicKey, Uint8Array.of(1, 2, 3));
    await ours.receive();
    assert.equal(await go.close(), 0);
    assert.deepEqual(await gone.next, [go.publicKey, PeerGoneReason.Disconnected]);
  });

  test('our client hears PeerGone (not here) after a disco packet to a key derper does not hold', async (t) => {
    const gone = peerGone();
    const ours = await connectOurs(t, { url: derper.url, onPeerGone: gone.onPeerGone });
    const nobody = generateNodeKeyPair().publicKey;
    ours.send(nobody, discoPacket(100));
    assert.deepEqual(await gone.next, [nobody, PeerGoneReason.NotHere]);
  });
});

/*
 * Tailscale's WebSocket client reads through wsconn, which keeps coder/websocket's limit of 32 KiB
 * per message and drops the connection on a larger one; derper writes a frame per message and so
 * cannot hand it a packet above 32 KiB - 37 bytes. Our relay cuts its writes (batches of frames
 * included) into messages of at most 32 KiB, so Go clients on WebSocket get every size here.
 */
describe('through our relay', () => {
  let relay: RelayServer;
  let http: RelayHttpServer;
  let url: string;
  let webSocketUrl: string;
  before(async () => {
    relay = new RelayServer({ metrics: relayMetricsForTests() });
    http = new RelayHttpServer(relay);
    const { port } = await http.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${port}/derp`;
    webSocketUrl = `ws://127.0.0.1:${port}/derp`;
  });
  after(async () => {
    http?.close();
    await relay?.close();
  });

  test('two Go derphttp clients exchange 1 B to 64 KiB packets both ways over Upgrade: DERP', async (t) => {
    const [alice, bob] = await Promise.all([startGo(t, url), startGo(t, url)]);
    assert.deepEqual(alice.serverKey, relay.publicKey);
    await exchangeBothWays(alice, bob);
  });

  test('two Go derphttp clients exchange 1 B to 64 KiB packets both ways over WebSocket', async (t) => {
    const [alice, bob] = await Promise.all([startGo(t, webSocketUrl), startGo(t, webSocketUrl)]);
    assert.deepEqual(alice.serverKey, relay.publicKey);
    await exchangeBothWays(alice, bob);
  });

  test('a Go client over Upgrade: DERP, a Go client over WebSocket and our client all exchange packets', async (t) => {
    const [overHttp, overWebSocket] = await Promise.all([startGo(t, url), startGo(t, webSocketUrl)]);
    const ours = await connectOurs(t, { url });
    await exchangeBothWays(overHttp, overWebSocket);
    await exchangeBothWays(ours, overHttp);
    await exchangeBothWays(ours, overWebSocket);
  });

  test('a Go client over Upgrade: DERP receives a burst of 2,000 packets of 1,200 bytes, every one', async (t) => {
    await burstToGoClient(t, 'http');
  });

  test('a Go client on WebSocket receives a burst of 2,000 packets of 1,200 bytes, every one', async (t) => {
    await burstToGoClient(t, 'ws');
  });

  test("a Go client's pings through our relay are answered, over Upgrade: DERP and over WebSocket", async (t) => {
    for (const relayUrl of [url, webSocketUrl]) {
      const go = await startGo(t, relayUrl);
      assert.ok((await go.ping()) > 0);
      assert.ok((await go.ping()) > 0);
    }
  });

  test('a Go client hears PeerGone (disconnected) when our client that sent to it leaves', async (t) => {
    const go = await startGo(t, url);
    const ours = await connectOurs(t, { url });
    ours.send(go.publicKey, Uint8Array.of(9));
    await go.receive();
    await ours.close();
    const gone = await go.nextEvent('peerGone');
    assert.deepEqual(gone, {
      event: 'peerGone',
      peer: `nodekey:${Buffer.from(ours.publicKey).toString('hex')}`,
      reason: PeerGoneReason.Disconnected,
    });
  });
});
