import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { acceptIntoPumps } from './listener.ts';
import { Pump } from './pump.ts';
import { startBackend, startProxy } from './test-support.ts';

const PAYLOAD_BYTES = 24 * 1024 * 1024;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Reads `socket` to its end slowly (a pause of a millisecond after every chunk, so that the writer
 * keeps running into full buffers) and resolves with the SHA-256 of what arrived and its length.
 */
function slowlyHash(socket: Socket): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      socket.pause();
      setTimeout(() => socket.resume(), 1);
    });
    socket.on('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
    socket.on('error', reject);
  });
}

async function listening(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.close();
  });
  return (server.address() as { port: number }).port;
}

test('large random payloads cross the proxy intact both ways at once, through slow readers on both ends', async () => {
  const toUpstream = randomBytes(PAYLOAD_BYTES);
  const toClient = randomBytes(PAYLOAD_BYTES);
  const { promise: atUpstream, resolve: upstreamDone } = Promise.withResolvers<{
    sha256: string;
    bytes: number;
  }>();
  const backend = await startBackend('slow', {
    onSocket: (socket) => {
      void slowlyHash(socket).then(upstreamDone);
      socket.end(toClient);
    },
  });
  cleanups.push(() => backend.close());
  const running = await startProxy({
    listeners: [{ name: 'l0', listen: '127.0.0.1:0', pool: 'p' }],
    pools: [
      {
        name: 'p',
        upstreams: [{ name: 'slow', address: `127.0.0.1:${backend.port}` }],
        // Only the test's connection reaches the backend, which answers every socket with the payload.
        healthCheck: { enabled: false },
      },
    ],
  });
  cleanups.push(() => running.stop());

  const client = connect({ host: '127.0.0.1', port: running.ports.get('l0')!, allowHalfOpen: true });
  const clientReceived = slowlyHash(client);
  client.end(toUpstream);
  let heldMost = 0;
  const sampler = setInterval(() => {
    heldMost = Math.max(heldMost, running.proxy.bufferedBytes);
  }, 1);
  const received = await Promise.all([clientReceived, atUpstream]);
  clearInterval(sampler);
  assert.deepEqual(received, [
    { sha256: sha256(toClient), bytes: PAYLOAD_BYTES },
    { sha256: sha256(toUpstream), bytes: PAYLOAD_BYTES },
  ]);
  // The slow readers made the proxy hold written data (the path where a read buffer is still
  // referenced by a pending write), and never more than a read per direction.
  assert.ok(heldMost > 0, 'the proxy never held data: the slow readers did not slow it down');
  assert.ok(heldMost <= 1024 * 1024, `the proxy held ${heldMost} bytes`);
});

test('a pump over a socket that reads the default way (Pump.adopt) relays intact with backpressure', async () => {
  const payload = randomBytes(PAYLOAD_BYTES);
  const sink = createServer({ allowHalfOpen: true }, (socket) => {
    void slowlyHash(socket).then((result) => socket.end(JSON.stringify(result)));
  });
  const sinkPort = await listening(sink);
  const relay = createServer({ allowHalfOpen: true }, (accepted) => {
    const upstream = connect({ host: '127.0.0.1', port: sinkPort, allowHalfOpen: true });
    Pump.adopt(accepted).pipeTo(upstream);
    Pump.adopt(upstream).pipeTo(accepted);
  });
  const relayPort = await listening(relay);
  const client = connect({ host: '127.0.0.1', port: relayPort, allowHalfOpen: true });
  client.setEncoding('utf8');
  let reply = '';
  client.on('data', (text: string) => {
    reply += text;
  });
  client.end(payload);
  await once(client, 'end');
  assert.deepEqual(JSON.parse(reply), { sha256: sha256(payload), bytes: PAYLOAD_BYTES });
});

test("on this Node, a listener's accepted sockets read into pump buffers (acceptIntoPumps takes over)", async () => {
  const server = createServer();
  await listening(server);
  const { promise: accepted, resolve: accept } = Promise.withResolvers<Pump>();
  assert.equal(acceptIntoPumps(server, accept), true);
  const port = (server.address() as { port: number }).port;
  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const pump = await accepted;
  // An echo: the accepted socket's reads go back into the same socket.
  pump.pipeTo(pump.source);
  const payload = randomBytes(1024 * 1024);
  const received = slowlyHash(client);
  client.end(payload);
  assert.deepEqual(await received, { sha256: sha256(payload), bytes: payload.length });
  client.destroy();
  pump.source.destroy();
});
