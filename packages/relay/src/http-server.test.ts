import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { selfSignedCertificate } from '@switchyard/otlp-proto';
import { createWebSocketStream, WebSocket } from 'ws';
import { decodeRecvPacket, encodeSendPacket, FrameType } from './codec.ts';
import { DerpClient } from './derp-client.ts';
import { FrameReader } from './frame-reader.ts';
import { parseServerKey, sealClientInfo } from './handshake.ts';
import { RelayHttpServer } from './http-server.ts';
import { generateNodeKeyPair, type NodeKeyPair } from './keys.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests } from './test-support.ts';

const HOST = '127.0.0.1';

async function startRelayHttp(t: { after(fn: () => unknown): void }) {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const http = new RelayHttpServer(relay);
  const { port } = await http.listen(0, HOST);
  t.after(async () => {
    http.close();
    await relay.close();
  });
  return { relay, port, base: `http://${HOST}:${port}` };
}

/** Reads the HTTP response head off a raw socket; returns it and any bytes after it. */
function readResponseHead(socket: Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve({ head: buffered.subarray(0, end).toString('latin1'), rest: buffered.subarray(end + 4) });
    };
    const onClose = () => reject(new Error('connection closed before the response head'));
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

/**
 * Logs `keys` in over any DERP byte stream and collects received packets; `first` is data that
 * arrived with the HTTP response head.
 */
function derpSession(stream: Duplex, keys: NodeKeyPair, first: Buffer = Buffer.alloc(0)) {
  const reader = new FrameReader();
  const received: Array<{ source: Uint8Array; packet: Uint8Array }> = [];
  let onPacket: (() => void) | undefined;
  let loggedIn!: () => void;
  const ready = new Promise<void>((resolve) => {
    loggedIn = resolve;
  });
  const onData = (chunk: Buffer) =>
    reader.push(chunk, (frameType, payload) => {
      if (frameType === FrameType.ServerKey) {
        stream.write(
          sealClientInfo(keys, parseServerKey(payload), {
            version: 2,
            meshKey: '',
            canAckPings: true,
            isProber: false,
          }),
        );
      } else if (frameType === FrameType.ServerInfo) {
        loggedIn();
      } else if (frameType === FrameType.RecvPacket) {
        const { srcKey, packet } = decodeRecvPacket(payload);
        received.push({ source: Uint8Array.from(srcKey), packet: Uint8Array.from(packet) });
        onPacket?.();
      }
    });
  stream.on('data', onData);
  if (first.length > 0) onData(first);
  stream.resume();
  return {
    ready,
    received,
    send: (dst: Uint8Array, packet: Uint8Array) => stream.write(encodeSendPacket(dst, packet)),
    nextPacket: () =>
      new Promise<void>((resolve) => {
        onPacket = resolve;
      }),
  };
}

async function upgradeDerp(port: number, extraHeaders = '') {
  const socket = connect({ host: HOST, port });
  socket.write(
    `GET /derp HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n${extraHeaders}\r\n`,
  );
  return socket;
}

test('Upgrade: DERP answers 101 with the relay key and then speaks DERP', async (t) => {
  const { relay, port } = await startRelayHttp(t);
  const socket = await upgradeDerp(port);
  t.after(() => socket.destroy());
  const { head, rest } = await readResponseHead(socket);
  assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(head, /\r\nUpgrade: DERP/);
  assert.match(head, /\r\nDerp-Version: 2/);
  assert.ok(head.includes(`Derp-Public-Key: ${Buffer.from(relay.publicKey).toString('hex')}`));
  const keys = generateNodeKeyPair();
  const session = derpSession(socket, keys, rest);
  await session.ready;
  assert.equal(relay.cells.connections.value, 1);
});

test('Derp-Fast-Start skips the 101 response: the first bytes are the server key frame', async (t) => {
  const { relay, port } = await startRelayHttp(t);
  const socket = await upgradeDerp(port, 'Derp-Fast-Start: 1\r\n');
  t.after(() => socket.destroy());
  const [first] = (await once(socket, 'data')) as [Buffer];
  assert.equal(first[0], FrameType.ServerKey);
  const session = derpSession(socket, generateNodeKeyPair(), first);
  await session.ready;
  assert.equal(relay.cells.connections.value, 1);
});

test('a WebSocket client (subprotocol derp) and an Upgrade: DERP client exchange packets', async (t) => {
  const { relay, port } = await startRelayHttp(t);
  const webSocket = new WebSocket(`ws://${HOST}:${port}/derp`, 'derp');
  t.after(() => webSocket.terminate());
  // The relay speaks first; its server key can arrive with the handshake, so listen before 'open'.
  const wsKeys = generateNodeKeyPair();
  const wsSession = derpSession(createWebSocketStream(webSocket), wsKeys);
  await once(webSocket, 'open');
  assert.equal(webSocket.protocol, 'derp');

  const socket = await upgradeDerp(port);
  t.after(() => socket.destroy());
  const { rest } = await readResponseHead(socket);
  const tcpKeys = generateNodeKeyPair();
  const tcpSession = derpSession(socket, tcpKeys, rest);
  await Promise.all([wsSession.ready, tcpSession.ready]);
  assert.equal(relay.cells.websocketConnections.value, 1);

  const toWs = Uint8Array.from({ length: 1024 }, (_, index) => index & 0xff);
  const atWs = wsSession.nextPacket();
  tcpSession.send(wsKeys.publicKey, toWs);
  await atWs;
  assert.deepEqual(wsSession.received, [{ source: tcpKeys.publicKey, packet: toWs }]);

  const toTcp = new Uint8Array(65_536).fill(7);
  const atTcp = tcpSession.nextPacket();
  wsSession.send(tcpKeys.publicKey, toTcp);
  await atTcp;
  assert.deepEqual(tcpSession.received, [{ source: wsKeys.publicKey, packet: toTcp }]);

  webSocket.close();
  await once(webSocket, 'close');
  await new Promise<void>((resolve) => {
    const check = () => (relay.cells.websocketConnections.value === 0 ? resolve() : setImmediate(check));
    check();
  });
});

test('GET /derp without an upgrade is 426', async (t) => {
  const { base } = await startRelayHttp(t);
  const response = await fetch(`${base}/derp`);
  assert.equal(response.status, 426);
  assert.equal(await response.text(), 'DERP requires connection upgrade\n');
});

test('an upgrade to a path other than /derp is 404 and serves nothing', async (t) => {
  const { relay, port } = await startRelayHttp(t);
  const socket = connect({ host: HOST, port });
  socket.write(`GET /other HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n`);
  const { head } = await readResponseHead(socket);
  socket.destroy();
  assert.match(head, /^HTTP\/1\.1 404 /);
  assert.equal(relay.cells.accepts.value, 0);
});

test('/derp/probe and /derp/latency-check answer GET and HEAD with CORS, and refuse POST', async (t) => {
  const { base } = await startRelayHttp(t);
  for (const path of ['/derp/probe', '/derp/latency-check']) {
    for (const method of ['GET', 'HEAD']) {
      const response = await fetch(`${base}${path}`, { method });
      assert.equal(response.status, 200, `${method} ${path}`);
      assert.equal(response.headers.get('access-control-allow-origin'), '*');
    }
    assert.equal((await fetch(`${base}${path}`, { method: 'POST' })).status, 405);
  }
});

test('/generate_204 echoes a valid challenge and ignores an invalid one', async (t) => {
  const { base } = await startRelayHttp(t);
  const valid = await fetch(`${base}/generate_204`, { headers: { 'X-Tailscale-Challenge': 'abc.DEF-1_2' } });
  assert.equal(valid.status, 204);
  assert.equal(valid.headers.get('x-tailscale-response'), 'response abc.DEF-1_2');
  const invalid = await fetch(`${base}/generate_204`, { headers: { 'X-Tailscale-Challenge': 'no spaces!' } });
  assert.equal(invalid.status, 204);
  assert.equal(invalid.headers.get('x-tailscale-response'), null);
});

test('with certificate files the relay serves DERP over HTTPS', async (t) => {
  const certificate = selfSignedCertificate();
  t.after(() => rmSync(certificate.dir, { recursive: true, force: true }));
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const https = new RelayHttpServer(relay, {
    tls: { certFile: certificate.certFile, keyFile: certificate.keyFile },
  });
  const { port } = await https.listen(0, HOST);
  t.after(async () => {
    https.close();
    await relay.close();
  });
  const url = `https://localhost:${port}/derp`;
  const tls = { ca: certificate.certChain };
  const alice = await DerpClient.connect({ url, tls, keys: generateNodeKeyPair() });
  const bob = await DerpClient.connect({ url, tls, keys: generateNodeKeyPair() });
  t.after(() => Promise.all([alice.close(), bob.close()]));
  alice.send(bob.publicKey, Uint8Array.of(1, 2, 3));
  assert.deepEqual((await bob.receive()).packet, Uint8Array.of(1, 2, 3));
  await assert.rejects(
    DerpClient.connect({ url, keys: generateNodeKeyPair() }),
    'an untrusted certificate is refused',
  );
});

test('a fast-start login sealed to the wrong key fails on the key the relay sends first', async (t) => {
  const { port } = await startRelayHttp(t);
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
