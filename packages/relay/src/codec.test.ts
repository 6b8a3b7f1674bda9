import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeClosePeer,
  decodeForwardPacket,
  decodeHealth,
  decodeNotePreferred,
  decodePeerGone,
  decodePeerPresent,
  decodePing,
  decodePong,
  decodeRecvPacket,
  decodeRestarting,
  decodeSendPacket,
  decodeWatchConns,
  encodeClosePeer,
  encodeForwardPacket,
  encodeFrame,
  encodeHealth,
  encodeKeepAlive,
  encodeNotePreferred,
  encodePeerGone,
  encodePeerPresent,
  encodePing,
  encodePong,
  encodeRecvPacket,
  encodeRestarting,
  encodeSendPacket,
  encodeWatchConns,
  FRAME_HEADER_LENGTH,
  FrameType,
  frameTypeName,
  MAGIC,
  MAX_FRAME_SIZE,
  MAX_PACKET_SIZE,
  PeerGoneReason,
  PeerPresentFlags,
} from './codec.ts';
import { DerpEncodeError, DerpFrameTooLargeError, DerpPayloadError } from './errors.ts';
import { FrameReader } from './frame-reader.ts';

const keyA = new Uint8Array(32).fill(0xaa);
const keyB = new Uint8Array(32).map((_, index) => index);

interface Frame {
  frameType: number;
  payload: Uint8Array;
}

/** Reads exactly one frame out of `bytes` and copies its payload. */
function readOne(bytes: Uint8Array): Frame {
  const frames = readAll(new FrameReader(), [bytes]);
  assert.equal(frames.length, 1);
  return frames[0]!;
}

function readAll(reader: FrameReader, chunks: Uint8Array[]): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    const error = reader.push(chunk, (frameType, payload) =>
      frames.push({ frameType, payload: payload.slice() }),
    );
    assert.equal(error, undefined);
  }
  return frames;
}

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}

test('frame type bytes match the values in derp.go', () => {
  assert.deepEqual(
    { ...FrameType },
    {
      ServerKey: 0x01,
      ClientInfo: 0x02,
      ServerInfo: 0x03,
      SendPacket: 0x04,
      RecvPacket: 0x05,
      KeepAlive: 0x06,
      NotePreferred: 0x07,
      PeerGone: 0x08,
      PeerPresent: 0x09,
      ForwardPacket: 0x0a,
      WatchConns: 0x10,
      ClosePeer: 0x11,
      Ping: 0x12,
      Pong: 0x13,
      Health: 0x14,
      Restarting: 0x15,
    },
  );
  assert.equal(frameTypeName(0x0a), 'ForwardPacket');
  assert.equal(frameTypeName(0x99), 'Unknown');
});

test('the magic is the 8 bytes of DERP🔑 and the size limits match derp.go', () => {
  assert.deepEqual([...MAGIC], [0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]);
  assert.equal(MAX_PACKET_SIZE, 65536);
  assert.equal(MAX_FRAME_SIZE, 1048576);
});

test('a frame header is the type byte then the payload length as big-endian uint32', () => {
  const payload = new Uint8Array(0x0102);
  const frame = encodeFrame(FrameType.Health, payload);
  assert.deepEqual([...frame.subarray(0, FRAME_HEADER_LENGTH)], [0x14, 0x00, 0x00, 0x01, 0x02]);
  assert.equal(frame.length, FRAME_HEADER_LENGTH + 0x0102);
});

test('a send packet frame is the destination key followed by the packet bytes', () => {
  const frame = encodeSendPacket(keyB, Uint8Array.of(0xde, 0xad));
  const expected = hex(`04 00000022
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    dead`);
  assert.deepEqual(frame, expected);
});

test('a peer gone frame is the peer key followed by one reason byte', () => {
  const frame = encodePeerGone(keyB, PeerGoneReason.NotHere);
  const expected = hex(`08 00000021
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    01`);
  assert.deepEqual(frame, expected);
});

test('a peer present frame carries key, v4-mapped IP, big-endian port and flags in 51 bytes', () => {
  const frame = encodePeerPresent(keyB, '10.1.2.3', 0x1f90, PeerPresentFlags.IsRegular);
  const expected = hex(`09 00000033
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    00000000000000000000ffff0a010203 1f90 01`);
  assert.deepEqual(frame, expected);
});

test('a restarting frame is two big-endian uint32 millisecond durations', () => {
  assert.deepEqual(encodeRestarting(1000, 0x01020304), hex('15 00000008 000003e8 01020304'));
});

test('send, receive and forward packet frames round-trip', () => {
  const packet = Uint8Array.of(1, 2, 3);
  const send = readOne(encodeSendPacket(keyA, packet));
  assert.equal(send.frameType, FrameType.SendPacket);
  assert.deepEqual(decodeSendPacket(send.payload), { dstKey: keyA, packet });

  const recv = readOne(encodeRecvPacket(keyB, packet));
  assert.equal(recv.frameType, FrameType.RecvPacket);
  assert.deepEqual(decodeRecvPacket(recv.payload), { srcKey: keyB, packet });

  const forward = readOne(encodeForwardPacket(keyA, keyB, packet));
  assert.equal(forward.frameType, FrameType.ForwardPacket);
  assert.deepEqual(decodeForwardPacket(forward.payload), { srcKey: keyA, dstKey: keyB, packet });
});

test('control frames round-trip', () => {
  assert.deepEqual(readOne(encodeKeepAlive()), {
    frameType: FrameType.KeepAlive,
    payload: new Uint8Array(0),
  });
  const watch = readOne(encodeWatchConns());
  assert.equal(watch.frameType, FrameType.WatchConns);
  decodeWatchConns(watch.payload);

  for (const preferred of [true, false]) {
    const frame = readOne(encodeNotePreferred(preferred));
    assert.equal(frame.frameType, FrameType.NotePreferred);
    assert.equal(decodeNotePreferred(frame.payload), preferred);
  }

  const gone = readOne(encodePeerGone(keyA));
  assert.equal(gone.frameType, FrameType.PeerGone);
  assert.deepEqual(decodePeerGone(gone.payload), { peerKey: keyA, reason: PeerGoneReason.Disconnected });

  const close = readOne(encodeClosePeer(keyB));
  assert.equal(close.frameType, FrameType.ClosePeer);
  assert.deepEqual(decodeClosePeer(close.payload), keyB);

  const data = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const ping = readOne(encodePing(data));
  assert.equal(ping.frameType, FrameType.Ping);
  assert.deepEqual(decodePing(ping.payload), data);
  const pong = readOne(encodePong(data));
  assert.equal(pong.frameType, FrameType.Pong);
  assert.deepEqual(decodePong(pong.payload), data);

  const health = readOne(encodeHealth('duplicate connection: ключ'));
  assert.equal(health.frameType, FrameType.Health);
  assert.equal(decodeHealth(health.payload), 'duplicate connection: ключ');

  const restarting = readOne(encodeRestarting(500, 0xffffffff));
  assert.equal(restarting.frameType, FrameType.Restarting);
  assert.deepEqual(decodeRestarting(restarting.payload), { reconnectInMs: 500, tryForMs: 0xffffffff });
});

test('peer present round-trips IPv4 and IPv6 addresses', () => {
  for (const ip of ['192.0.2.7', '2001:db8::1', '::', 'fe80::1:2:3:4']) {
    const frame = readOne(
      encodePeerPresent(keyA, ip, 41641, PeerPresentFlags.IsMeshPeer | PeerPresentFlags.NotIdeal),
    );
    assert.deepEqual(decodePeerPresent(frame.payload), { peerKey: keyA, ip, port: 41641, flags: 0b1010 });
  }
});

test('peer present from older servers decodes without address or flags', () => {
  assert.deepEqual(decodePeerPresent(keyA), { peerKey: keyA });
  const withAddress = encodePeerPresent(keyA, '192.0.2.7', 443, 1).subarray(FRAME_HEADER_LENGTH, -1);
  assert.deepEqual(decodePeerPresent(withAddress), { peerKey: keyA, ip: '192.0.2.7', port: 443 });
});

test('peer gone without a reason byte decodes as disconnected', () => {
  assert.deepEqual(decodePeerGone(keyA), { peerKey: keyA, reason: PeerGoneReason.Disconnected });
});

test('payloads shorter or longer than their frame type allows are rejected with a payload error', () => {
  assert.throws(() => decodeSendPacket(new Uint8Array(31)), DerpPayloadError);
  assert.throws(() => decodeSendPacket(new Uint8Array(32 + MAX_PACKET_SIZE + 1)), DerpPayloadError);
  assert.throws(() => decodeForwardPacket(new Uint8Array(63)), DerpPayloadError);
  assert.throws(() => decodeForwardPacket(new Uint8Array(64 + MAX_PACKET_SIZE + 1)), DerpPayloadError);
  assert.throws(() => decodeRecvPacket(new Uint8Array(5)), DerpPayloadError);
  assert.throws(() => decodeNotePreferred(new Uint8Array(2)), DerpPayloadError);
  assert.throws(() => decodeWatchConns(new Uint8Array(1)), DerpPayloadError);
  assert.throws(() => decodeClosePeer(new Uint8Array(33)), DerpPayloadError);
  assert.throws(() => decodePing(new Uint8Array(7)), DerpPayloadError);
  assert.throws(() => decodePing(new Uint8Array(1001)), DerpPayloadError);
  assert.throws(() => decodeRestarting(new Uint8Array(7)), {
    code: 'SWY_ERR_DERP_PAYLOAD',
    message: /Restarting frame with 7 payload bytes: needs at least 8 bytes/,
  });
});

test('encoders reject values the wire format cannot carry', () => {
  assert.throws(() => encodeSendPacket(new Uint8Array(31), new Uint8Array(0)), DerpEncodeError);
  assert.throws(() => encodeSendPacket(keyA, new Uint8Array(MAX_PACKET_SIZE + 1)), DerpEncodeError);
  assert.throws(() => encodePing(new Uint8Array(9)), DerpEncodeError);
  assert.throws(() => encodeRestarting(-1, 0), DerpEncodeError);
  assert.throws(() => encodePeerPresent(keyA, 'not-an-ip', 1, 1), { code: 'SWY_ERR_DERP_ENCODE' });
  assert.throws(() => encodePeerPresent(keyA, '10.0.0.1', 70000, 1), DerpEncodeError);
  assert.throws(() => encodeFrame(256, new Uint8Array(0)), DerpEncodeError);
});

test('frames inside one chunk are delivered as zero-copy subarrays of it', () => {
  const chunk = new Uint8Array([...encodePing(new Uint8Array(8).fill(1)), ...encodeKeepAlive()]);
  const payloads: Uint8Array[] = [];
  new FrameReader().push(chunk, (_, payload) => payloads.push(payload));
  assert.equal(payloads.length, 2);
  assert.equal(payloads[0]!.buffer, chunk.buffer);
  assert.equal(payloads[0]!.byteOffset, FRAME_HEADER_LENGTH);
});

test('a header announcing more than the maximum is rejected before any payload is buffered', () => {
  const reader = new FrameReader({ maxFrameLength: 100 });
  const error = reader.push(hex('04 00000065'), () => assert.fail('no frame expected'));
  assert.ok(error instanceof DerpFrameTooLargeError);
  assert.equal(error.code, 'SWY_ERR_DERP_FRAME_TOO_LARGE');
  assert.equal(error.frameLength, 101);
  assert.equal(reader.bytesBuffered, 0);
  assert.equal(
    reader.push(encodeKeepAlive(), () => assert.fail('no frame expected')),
    error,
  );
});

test('a header split across chunks is judged against the maximum once complete', () => {
  const reader = new FrameReader();
  assert.equal(
    reader.push(hex('04 ff'), () => {}),
    undefined,
  );
  assert.ok(reader.push(hex('ffff ff'), () => {}) instanceof DerpFrameTooLargeError);
});

const frameArbitrary = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }))
  .map(([frameType, payload]) => encodeFrame(frameType, payload));

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

test('reading a stream in random chunks yields the same frames as reading it whole', () => {
  fc.assert(
    fc.property(
      fc.array(frameArbitrary, { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (frames, cuts) => {
        const stream = concat(frames);
        const whole = readAll(new FrameReader(), [stream]);
        const chunked = readAll(new FrameReader(), splitAt(stream, cuts));
        assert.deepEqual(chunked, whole);
        assert.equal(whole.length, frames.length);
      },
    ),
    { numRuns: 300 },
  );
});

test('a chunk pushed while paused is held, not parsed, until resume', () => {
  const reader = new FrameReader();
  const seen: number[] = [];
  reader.pause();
  assert.equal(
    reader.push(Uint8Array.of(FrameType.KeepAlive, 0, 0, 0, 0), (frameType) => seen.push(frameType)),
    undefined,
  );
  assert.equal(seen.length, 0);
  assert.equal(reader.bytesBuffered, FRAME_HEADER_LENGTH);
  reader.resume((frameType) => seen.push(frameType));
  assert.deepEqual(seen, [FrameType.KeepAlive]);
  assert.equal(reader.bytesBuffered, 0);
});

test('pausing after any frames and resuming later yields the same frames in order', () => {
  fc.assert(
    fc.property(
      fc.array(frameArbitrary, { minLength: 1, maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.array(fc.nat({ max: 25 }), { maxLength: 5 }),
      (frames, cuts, pauseAfter) => {
        const stream = concat(frames);
        const whole = readAll(new FrameReader(), [stream]);
        const reader = new FrameReader();
        const seen: Frame[] = [];
        const pauses = new Set(pauseAfter);
        const onFrame = (frameType: number, payload: Uint8Array) => {
          seen.push({ frameType, payload: payload.slice() });
          if (pauses.has(seen.length)) reader.pause();
        };
        for (const chunk of splitAt(stream, cuts)) {
          assert.equal(reader.push(chunk, onFrame), undefined);
          // Each pause point fires once, so resuming ends.
          while (reader.paused) assert.equal(reader.resume(onFrame), undefined);
        }
        assert.deepEqual(seen, whole);
      },
    ),
    { numRuns: 300 },
  );
});

function assertOnlyDerpErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    assert.ok(
      error instanceof DerpPayloadError || error instanceof DerpEncodeError,
      `unexpected ${String(error)}`,
    );
  }
}

const decoders: ((payload: Uint8Array) => unknown)[] = [
  decodeSendPacket,
  decodeRecvPacket,
  decodeForwardPacket,
  decodeWatchConns,
  decodeNotePreferred,
  decodePeerGone,
  decodePeerPresent,
  decodeClosePeer,
  decodePing,
  decodePong,
  decodeHealth,
  decodeRestarting,
];

function mutate(bytes: Uint8Array, edits: [number, number][]): Uint8Array {
  const mutated = bytes.slice();
  for (const [position, value] of edits) {
    if (mutated.length > 0) mutated[position % mutated.length] = value;
  }
  return mutated;
}

const fuzzInput = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }),
  fc
    .tuple(
      fc.array(frameArbitrary, { minLength: 1, maxLength: 5 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    )
    .map(([frames, edits]) => mutate(concat(frames), edits)),
);

test('random and mutated bytes never make the reader throw or hold more than one maximal frame', {
  timeout: 30_000,
}, () => {
  fc.assert(
    fc.property(
      fuzzInput,
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.integer({ min: 0, max: 512 }),
      (bytes, cuts, max) => {
        const reader = new FrameReader({ maxFrameLength: max });
        for (const chunk of splitAt(bytes, cuts)) {
          const error = reader.push(chunk, (_, payload) => {
            assert.ok(payload.length <= max);
            for (const decode of decoders) assertOnlyDerpErrors(() => decode(payload));
          });
          assert.ok(error === undefined || error instanceof DerpFrameTooLargeError);
          assert.ok(reader.bytesBuffered <= max + FRAME_HEADER_LENGTH);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('payload decoders throw only payload errors on arbitrary bytes', { timeout: 30_000 }, () => {
  fc.assert(
    fc.property(fuzzInput, (payload) => {
      for (const decode of decoders) assertOnlyDerpErrors(() => decode(payload));
    }),
    { numRuns: 500 },
  );
});
