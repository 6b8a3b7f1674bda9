import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_BYTES,
  FRAME_TAG_BATCH,
  FRAME_TAG_ENVELOPE,
  type Frame,
  FrameDecoder,
  type FrameError,
  MAX_FRAME_LIMIT,
} from './frame.ts';

interface Decoded {
  frames: { tag: number; payload: number[] }[];
  error: FrameError | undefined;
}

/** Feeds `chunks` to a fresh decoder, then ends the stream. */
function decode(chunks: Buffer[], options?: ConstructorParameters<typeof FrameDecoder>[0]): Decoded {
  const decoder = new FrameDecoder(options);
  const frames: Decoded['frames'] = [];
  const onFrame = (frame: Frame) => frames.push({ tag: frame.tag, payload: [...frame.payload] });
  for (const chunk of chunks) {
    const error = decoder.push(chunk, onFrame);
    if (error !== undefined) return { frames, error };
  }
  return { frames, error: decoder.end() };
}

/** The format read in one pass over the whole stream: what the incremental decoder must agree with. */
function referenceDecode(stream: Buffer, maxFrameBytes: number, acceptedTags: readonly number[]): Decoded {
  const frames: Decoded['frames'] = [];
  let offset = 0;
  while (offset < stream.length) {
    if (stream.length - offset < FRAME_HEADER_BYTES) return { frames, error: 'truncated' };
    const tag = stream[offset]!;
    const length = stream.readUIntBE(offset + 1, 3);
    if (!acceptedTags.includes(tag)) return { frames, error: 'unsupported_tag' };
    if (length > maxFrameBytes) return { frames, error: 'too_large' };
    if (stream.length - offset - FRAME_HEADER_BYTES < length) return { frames, error: 'truncated' };
    frames.push({ tag, payload: [...stream.subarray(offset + 4, offset + 4 + length)] });
    offset += FRAME_HEADER_BYTES + length;
  }
  return { frames, error: undefined };
}

/** Cuts `bytes` at the given offsets (taken modulo its length, sorted, duplicates giving empty chunks). */
function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((cut) => (bytes.length === 0 ? 0 : cut % (bytes.length + 1))).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

const frameArbitrary = fc.record({
  tag: fc.constantFrom(FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE),
  payload: fc.uint8Array({ maxLength: 300 }),
});

test('frames of both tags round trip through encodeFrame and the decoder', () => {
  const payloads = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(70_000, 7)];
  const stream = Buffer.concat(
    payloads.flatMap((payload) => [encodeFrame(1, payload), encodeFrame(2, payload)]),
  );
  const { frames, error } = decode([stream]);
  assert.equal(error, undefined);
  assert.deepEqual(
    frames.map((frame) => [frame.tag, frame.payload.length]),
    [
      [1, 0],
      [2, 0],
      [1, 1],
      [2, 1],
      [1, 70_000],
      [2, 70_000],
    ],
  );
  assert.deepEqual(frames[4]?.payload, [...payloads[2]!]);
});

test('encodeFrame writes the tag in the high byte and the length in the low 24 bits, big-endian', () => {
  assert.deepEqual([...encodeFrame(2, Uint8Array.of(9, 8))], [2, 0, 0, 2, 9, 8]);
  assert.deepEqual([...encodeFrameHeader(1, 0x0a0b0c)], [1, 0x0a, 0x0b, 0x0c]);
});

test('a header from encodeFrameHeader followed by its payload decodes as encodeFrame does', () => {
  fc.assert(
    fc.property(frameArbitrary, ({ tag, payload }) => {
      const written = [encodeFrameHeader(tag, payload.length), Buffer.from(payload)];
      assert.deepEqual(decode(written), decode([encodeFrame(tag, payload)]));
    }),
  );
});

test('the encoders refuse a tag outside a byte and a payload beyond the 24-bit length field', () => {
  assert.throws(() => encodeFrame(256, new Uint8Array(0)), RangeError);
  assert.throws(() => encodeFrame(-1, new Uint8Array(0)), RangeError);
  assert.throws(() => encodeFrameHeader(1, MAX_FRAME_LIMIT + 1), RangeError);
  assert.throws(() => encodeFrameHeader(1, 1.5), RangeError);
  assert.deepEqual([...encodeFrameHeader(1, MAX_FRAME_LIMIT)], [1, 0xff, 0xff, 0xff]);
});

test('frames split at arbitrary chunk boundaries decode identically', () => {
  fc.assert(
    fc.property(
      fc.array(frameArbitrary, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (sent, cuts) => {
        const stream = Buffer.concat(sent.map(({ tag, payload }) => encodeFrame(tag, payload)));
        const { frames, error } = decode(splitAt(stream, cuts));
        assert.equal(error, undefined);
        assert.deepEqual(
          frames,
          sent.map(({ tag, payload }) => ({ tag, payload: [...payload] })),
        );
      },
    ),
  );
});

test('a frame inside one chunk is delivered as a zero-copy view of that chunk', () => {
  const chunk = Buffer.concat([encodeFrame(1, Buffer.from('first')), encodeFrame(2, Buffer.from('second'))]);
  const payloads: Buffer[] = [];
  new FrameDecoder().push(chunk, (frame) => payloads.push(frame.payload));
  assert.deepEqual(
    payloads.map((payload) => [payload.buffer === chunk.buffer, payload.byteOffset - chunk.byteOffset]),
    [
      [true, 4],
      [true, 13],
    ],
  );
});

test('a 1 MiB frame arriving one byte at a time decodes without quadratic copying', {
  timeout: 20_000,
}, () => {
  const payload = Buffer.alloc(DEFAULT_MAX_FRAME_BYTES, 0x5a);
  const stream = encodeFrame(FRAME_TAG_BATCH, payload);
  const decoder = new FrameDecoder();
  const received: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) {
    assert.equal(
      decoder.push(stream.subarray(i, i + 1), (frame) => received.push(frame.payload)),
      undefined,
    );
  }
  assert.equal(received.length, 1);
  assert.ok(received[0]?.equals(payload));
  assert.equal(decoder.bufferedBytes, 0);
});

test('an oversize frame is rejected from its header alone, before any payload arrives', () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 1000 });
  const onFrame = () => assert.fail('no frame expected');
  assert.equal(decoder.push(encodeFrameHeader(FRAME_TAG_BATCH, 1001), onFrame), 'too_large');
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decode([encodeFrameHeader(FRAME_TAG_BATCH, DEFAULT_MAX_FRAME_BYTES + 1)]).error, 'too_large');
});

test('a frame of exactly maxFrameBytes is accepted', () => {
  const { frames, error } = decode([encodeFrame(FRAME_TAG_ENVELOPE, Buffer.alloc(1000))], {
    maxFrameBytes: 1000,
  });
  assert.equal(error, undefined);
  assert.equal(frames[0]?.payload.length, 1000);
});

test('an unknown tag is rejected from its header, after the frames before it', () => {
  const stream = Buffer.concat([encodeFrame(1, Buffer.from('ok')), encodeFrameHeader(3, 2)]);
  const { frames, error } = decode([stream]);
  assert.equal(error, 'unsupported_tag');
  assert.equal(frames.length, 1);
  assert.equal(decode([encodeFrameHeader(0, 0)]).error, 'unsupported_tag');
});

test('acceptedTags narrows the tags a connection may use', () => {
  const stream = encodeFrame(FRAME_TAG_BATCH, Buffer.from('v1'));
  assert.equal(decode([stream], { acceptedTags: [FRAME_TAG_ENVELOPE] }).error, 'unsupported_tag');
  assert.equal(decode([stream], { acceptedTags: [FRAME_TAG_BATCH] }).error, undefined);
});

test('a decoder that failed stays dead: the same error, no more frames, nothing buffered', () => {
  const decoder = new FrameDecoder();
  const onFrame = () => assert.fail('no frame expected');
  assert.equal(
    decoder.push(Buffer.concat([encodeFrameHeader(9, 0), Buffer.alloc(10)]), onFrame),
    'unsupported_tag',
  );
  assert.equal(decoder.push(encodeFrame(FRAME_TAG_BATCH, Buffer.from('late')), onFrame), 'unsupported_tag');
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.end(), undefined, 'the error was already reported');
});

test('end reports truncated while a header or a payload is incomplete', () => {
  const frame = encodeFrame(FRAME_TAG_BATCH, Buffer.from('payload'));
  for (let cut = 1; cut < frame.length; cut++) {
    const decoder = new FrameDecoder();
    assert.equal(
      decoder.push(frame.subarray(0, cut), () => assert.fail('no frame expected')),
      undefined,
    );
    assert.equal(decoder.bufferedBytes, cut, `bufferedBytes after ${cut} bytes`);
    assert.equal(decoder.end(), 'truncated', `cut after ${cut} bytes`);
  }
});

test('end after whole frames reports nothing', () => {
  const decoder = new FrameDecoder();
  decoder.push(encodeFrame(FRAME_TAG_BATCH, Buffer.from('x')), () => {});
  assert.equal(decoder.end(), undefined);
  assert.equal(new FrameDecoder().end(), undefined);
});

test('the constructor refuses a maxFrameBytes or a tag the header cannot carry', () => {
  for (const maxFrameBytes of [0, -1, 1.5, MAX_FRAME_LIMIT + 1, Number.NaN]) {
    assert.throws(() => new FrameDecoder({ maxFrameBytes }), RangeError, String(maxFrameBytes));
  }
  assert.throws(() => new FrameDecoder({ acceptedTags: [256] }), RangeError);
  assert.doesNotThrow(() => new FrameDecoder({ maxFrameBytes: MAX_FRAME_LIMIT }));
});

const streamPiece = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc
    .record({ tag: fc.integer({ min: 0, max: 3 }), payload: fc.uint8Array({ maxLength: 80 }) })
    .map(({ tag, payload }) => encodeFrame(tag, payload)),
  fc
    .record({ tag: fc.constantFrom(1, 2), length: fc.integer({ min: 0, max: MAX_FRAME_LIMIT }) })
    .map(({ tag, length }) => encodeFrameHeader(tag, length)),
);

test('fuzz: any byte stream in any chunking decodes as the one-pass reference, never throwing', () => {
  fc.assert(
    fc.property(
      fc.array(streamPiece, { maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.integer({ min: 1, max: 100 }),
      (pieces, cuts, maxFrameBytes) => {
        const stream = Buffer.concat(pieces);
        const expected = referenceDecode(stream, maxFrameBytes, [FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE]);
        assert.deepEqual(decode(splitAt(stream, cuts), { maxFrameBytes }), expected);
      },
    ),
    { numRuns: 500 },
  );
});
