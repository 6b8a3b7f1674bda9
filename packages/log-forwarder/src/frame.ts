/** Tag 1: the payload is a bare `ExportLogsServiceRequest` (first version of the format, still accepted). */
export const FRAME_TAG_BATCH = 1;
/** Tag 2: the payload is a `switchyard.log_forwarder.v1.Envelope`. */
export const FRAME_TAG_ENVELOPE = 2;
export const FRAME_HEADER_BYTES = 4;
/** Default cap on a frame's payload length, in bytes (1 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** The largest payload length the 24-bit length field can carry (16 MiB - 1). */
export const MAX_FRAME_LIMIT = 0xffffff;

const MAX_TAG = 0xff;
const DEFAULT_ACCEPTED_TAGS: readonly number[] = [FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE];

export type FrameError = 'unsupported_tag' | 'too_large' | 'truncated';

export interface Frame {
  readonly tag: number;
  readonly payload: Buffer;
}

export interface FrameDecoderOptions {
  /** Largest accepted payload length in bytes, header excluded. Default 1 MiB, at most `MAX_FRAME_LIMIT`. */
  readonly maxFrameBytes?: number;
  /** Tags accepted on this connection; any other closes it. Default `[FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE]`. */
  readonly acceptedTags?: readonly number[];
  /**
   * Payloads are valid only until `onFrame` returns, for a consumer that copies what it keeps: a
   * frame that straddles chunks is then reassembled in a buffer shared by every such decoder rather
   * than in an allocation of its own. Default false.
   */
  readonly transientPayloads?: boolean;
}

/** Frames up to this size are reassembled in the shared buffer; larger ones get an allocation of their own. */
const MAX_SHARED_REASSEMBLY_BYTES = 256 * 1024;
let sharedReassembly: Buffer | undefined;

/**
 * Where a straddling frame of a transient-payload decoder is reassembled. Sharing one buffer is
 * safe because decoding is synchronous: the payload is done with before any other frame is read.
 * It spares the forwarder's intake an external-memory allocation per such frame, and with it a
 * share of V8's full collections.
 */
function reassemblyBuffer(length: number): Buffer {
  if (length > MAX_SHARED_REASSEMBLY_BYTES) return Buffer.allocUnsafe(length);
  sharedReassembly ??= Buffer.allocUnsafeSlow(MAX_SHARED_REASSEMBLY_BYTES);
  return sharedReassembly.subarray(0, length);
}

function checkTag(tag: number): void {
  if (!Number.isInteger(tag) || tag < 0 || tag > MAX_TAG) {
    throw new RangeError(`frame tag must be an integer from 0 to ${MAX_TAG}, got ${tag}`);
  }
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_LIMIT) {
    throw new RangeError(
      `frame payload length must be an integer from 0 to ${MAX_FRAME_LIMIT} bytes, got ${length}`,
    );
  }
}

/** The 4-byte header alone, for `writev` of a large payload without copying it. */
export function encodeFrameHeader(tag: number, length: number): Buffer {
  checkTag(tag);
  checkLength(length);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(tag * 0x1000000 + length, 0);
  return header;
}

/** Header and payload in one allocation. */
export function encodeFrame(tag: number, payload: Uint8Array): Buffer {
  checkTag(tag);
  checkLength(payload.length);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(tag * 0x1000000 + payload.length, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Incremental decoder for one connection's byte stream.
 *
 * Received chunks are kept as a list and only a frame that straddles chunks is copied, so the cost is
 * linear in the bytes received whatever the chunking. A frame lying inside one chunk is delivered as a
 * zero-copy subarray of it (which keeps that chunk alive as long as the payload is referenced).
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  readonly #acceptedTags = new Uint8Array(MAX_TAG + 1);
  readonly #transientPayloads: boolean;
  #chunks: Buffer[] = [];
  /** Bytes of `#chunks[0]` already consumed. */
  #offset = 0;
  /** Unconsumed bytes across `#chunks`. */
  #buffered = 0;
  /** The current frame's header once read; -1 while waiting for a header. */
  #tag = -1;
  #length = -1;
  #error: FrameError | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > MAX_FRAME_LIMIT) {
      throw new RangeError(
        `maxFrameBytes must be an integer from 1 to ${MAX_FRAME_LIMIT} (the 24-bit length field), got ${maxFrameBytes}`,
      );
    }
    this.#maxFrameBytes = maxFrameBytes;
    this.#transientPayloads = options.transientPayloads ?? false;
    for (const tag of options.acceptedTags ?? DEFAULT_ACCEPTED_TAGS) {
      checkTag(tag);
      this.#acceptedTags[tag] = 1;
    }
  }

  /** Bytes received and not yet delivered in a frame, a pending header included. */
  get bufferedBytes(): number {
    return this.#length < 0 ? this.#buffered : this.#buffered + FRAME_HEADER_BYTES;
  }

  /**
   * Feeds bytes; calls `onFrame` for every complete frame in order. Returns a `FrameError` when the
   * stream is bad, judged from the header alone (a too-large payload is never buffered); the decoder is
   * then dead, drops what it held, and returns the same error from every later `push`.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): FrameError | undefined {
    if (this.#error !== undefined) return this.#error;
    if (chunk.length === 0) return undefined;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#length < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) return undefined;
        const header = this.#readHeader();
        const tag = header >>> 24;
        const length = header & MAX_FRAME_LIMIT;
        if (this.#acceptedTags[tag] === 0) return this.#fail('unsupported_tag');
        if (length > this.#maxFrameBytes) return this.#fail('too_large');
        this.#tag = tag;
        this.#length = length;
      }
      if (this.#buffered < this.#length) return undefined;
      const frame: Frame = { tag: this.#tag, payload: this.#take(this.#length) };
      this.#tag = -1;
      this.#length = -1;
      onFrame(frame);
    }
  }

  /** At end of stream: 'truncated' if a partial frame is pending, else undefined (also after an error). */
  end(): FrameError | undefined {
    if (this.#error !== undefined) return undefined;
    return this.bufferedBytes > 0 ? this.#fail('truncated') : undefined;
  }

  #fail(error: FrameError): FrameError {
    this.#error = error;
    this.#chunks = [];
    this.#offset = 0;
    this.#buffered = 0;
    this.#tag = -1;
    this.#length = -1;
    return error;
  }

  /** Consumes 4 bytes; the caller checked that they are buffered. */
  #readHeader(): number {
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= FRAME_HEADER_BYTES) {
      const header = first.readUInt32BE(this.#offset);
      this.#advance(first, FRAME_HEADER_BYTES);
      return header;
    }
    let header = 0;
    for (let i = 0; i < FRAME_HEADER_BYTES; i++) {
      const chunk = this.#chunks[0]!;
      header = header * 256 + chunk[this.#offset]!;
      this.#advance(chunk, 1);
    }
    return header;
  }

  #advance(first: Buffer, bytes: number): void {
    this.#offset += bytes;
    this.#buffered -= bytes;
    if (this.#offset === first.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  /** Consumes `length` bytes; the caller checked that they are buffered. */
  #take(length: number): Buffer {
    if (length === 0) return Buffer.alloc(0);
    const first = this.#chunks[0]!;
    const start = this.#offset;
    if (first.length - start >= length) {
      this.#advance(first, length);
      return first.subarray(start, start + length);
    }
    const payload = this.#transientPayloads ? reassemblyBuffer(length) : Buffer.allocUnsafe(length);
    let written = 0;
    let used = 0;
    let offset = start;
    while (written < length) {
      const chunk = this.#chunks[used]!;
      const n = Math.min(chunk.length - offset, length - written);
      chunk.copy(payload, written, offset, offset + n);
      written += n;
      offset += n;
      if (offset === chunk.length) {
        used++;
        offset = 0;
      }
    }
    // One splice for all the chunks this frame used up keeps a frame of many tiny chunks linear.
    this.#chunks.splice(0, used);
    this.#offset = offset;
    this.#buffered -= length;
    return payload;
  }
}
