import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
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
