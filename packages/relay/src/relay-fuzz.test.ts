import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeFrame, FrameType } from './codec.ts';
import { DerpClient } from './derp-client.ts';
import { generateNodeKeyPair } from './keys.ts';
import { rawLogin } from './raw-login.ts';
import { RelayServer } from './relay-server.ts';
import { relayMetricsForTests } from './test-support.ts';

const HOST = '127.0.0.1';

/** Frame types a client may send, plus a few it may not. */
const frameType = fc.constantFrom(...Object.values(FrameType), 0x7f, 0xff);
const frames = fc.array(
  fc.tuple(frameType, fc.uint8Array({ maxLength: 300 })).map(([type, payload]) => encodeFrame(type, payload)),
  { minLength: 1, maxLength: 6 },
);
const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 });
const hostileBytes = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 2_000 }),
  fc.tuple(frames, edits).map(([list, changes]) => {
    const bytes = Buffer.concat(list);
    for (const [position, value] of changes) bytes[position % bytes.length] = value;
    return new Uint8Array(bytes);
  }),
);

test('random and mutated frames from one client never break the relay for the others', {
  timeout: 120_000,
}, async (t) => {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());
  const alice = await DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair() });
  const bob = await DerpClient.connect({ host: HOST, port, keys: generateNodeKeyPair() });
  t.after(() => Promise.all([alice.close(), bob.close()]));
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));

  let round = 0;
  await fc.assert(
    fc.asyncProperty(hostileBytes, async (bytes) => {
      const hostile = await rawLogin(port);
      hostile.resume();
      hostile.write(bytes);
      // Alice's packet to Bob travels after the hostile bytes were handed to the relay.
      round++;
      const marker = Uint8Array.of(round & 0xff, round >> 8);
      alice.send(bob.publicKey, marker);
      assert.deepEqual((await bob.receive()).packet, marker);
      const closed = once(hostile, 'close');
      hostile.destroy();
      await closed;
    }),
    { numRuns: 150 },
  );
  assert.deepEqual(uncaught, []);
  alice.send(bob.publicKey, Uint8Array.of(42));
  assert.deepEqual((await bob.receive()).packet, Uint8Array.of(42));
});

// The reader's memory bound (never more than one maximal frame held) is fuzzed in codec.test.ts.
test('a header announcing an oversized frame closes that client before any payload is buffered', async (t) => {
  const relay = new RelayServer({ metrics: relayMetricsForTests() });
  const { port } = await relay.listen(0, HOST);
  t.after(() => relay.close());
  const hostile = await rawLogin(port);
  const header = Buffer.alloc(5);
  header[0] = FrameType.SendPacket;
  header.writeUInt32BE(0xffffffff, 1);
  const closed = once(hostile, 'close');
  hostile.write(header);
  await closed;
  assert.equal(relay.cells.disconnects.malformed.value, 1);
});
