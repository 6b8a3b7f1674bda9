import { FRAME_HEADER_LENGTH, MAX_FRAME_SIZE } from './codec.ts';
import { DerpEncodeError, DerpFrameTooLargeError } from './errors.ts';

/** Called once per complete frame; `payload` aliases the pushed chunk when the frame fit in it. */
export type FrameHandler = (frameType: number, payload: Uint8Array) => void;

export interface FrameReaderOptions {
  /** Largest payload accepted, in bytes. Default `MAX_FRAME_SIZE` (1 MiB); at most 0xffffffff. */
  readonly maxFrameLength?: number;
}

/**
 * Splits a byte stream into DERP frames. Frames wholly inside one chunk are delivered as
 * subarrays of it; a frame split across chunks is copied into one buffer sized from its header,
 * so at most `maxFrameLength + FRAME_HEADER_LENGTH` bytes are ever held.
 */
export class FrameReader {
  readonly maxFrameLength: number;
  readonly #header = new Uint8Array(FRAME_HEADER_LENGTH);
  #headerFilled = 0;
  #pending: Uint8Array | undefined;
  #pendingType = 0;
  #pendingFilled = 0;
  #failure: DerpFrameTooLargeError | undefined;
  #paused = false;
  #held: Uint8Array | undefined;

  constructor(options: FrameReaderOptions = {}) {
    const maxFrameLength = options.maxFrameLength ?? MAX_FRAME_SIZE;
    if (!Number.isInteger(maxFrameLength) || maxFrameLength < 0 || maxFrameLength > 0xffffffff) {
      throw new DerpEncodeError('maxFrameLength', `${maxFrameLength} is not a frame length (0..4294967295)`);
    }
    this.maxFrameLength = maxFrameLength;
  }

  /** Bytes held: an incomplete frame's header and reserved payload buffer, plus bytes held while paused. */
  get bytesBuffered(): number {
    return this.#headerFilled + (this.#pending?.length ?? 0) + (this.#held?.length ?? 0);
  }

  /**
   * Feeds `chunk`, calling `onFrame` for each frame it completes. Returns the error once a header
   * announces an oversized frame, and on every later call: the stream cannot be resynchronised.
   * An exception from `onFrame` propagates and drops the rest of the chunk; close the connection.
   */
  push(chunk: Uint8Array, onFrame: FrameHandler): DerpFrameTooLargeError | undefined {
    if (this.#failure !== undefined) return this.#failure;
    if (this.#paused) {
      this.#hold(chunk);
      return undefined;
    }
    let offset = this.#completeCarriedFrame(chunk, onFrame);
    if (offset < 0) return this.#failure;
    while (chunk.length - offset >= FRAME_HEADER_LENGTH) {
      if (this.#paused) {
        this.#hold(chunk.subarray(offset));
        return undefined;
      }
      const frameType = chunk[offset]!;
      const length = readUint32(chunk, offset + 1);
      offset += FRAME_HEADER_LENGTH;
      if (length > this.maxFrameLength) return this.#fail(frameType, length);
      if (chunk.length - offset < length) {
        this.#carry(frameType, length, chunk.subarray(offset));
        return undefined;
      }
      onFrame(frameType, chunk.subarray(offset, offset + length));
      offset += length;
    }
    if (this.#paused && offset < chunk.length) {
      this.#hold(chunk.subarray(offset));
      return undefined;
    }
    if (offset < chunk.length) {
      this.#header.set(chunk.subarray(offset), 0);
      this.#headerFilled = chunk.length - offset;
    }
    return undefined;
  }

  /**
   * Stops delivering frames after the one being delivered: the rest of the current chunk, and of
   * any chunk pushed meanwhile, is held (unparsed) until `resume`. For back-pressure: a sender
   * whose packets cannot go anywhere yet.
   */
  pause(): void {
    this.#paused = true;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Delivers what was held while paused (and may pause again); returns as `push` does. */
  resume(onFrame: FrameHandler): DerpFrameTooLargeError | undefined {
    this.#paused = false;
    const held = this.#held;
    this.#held = undefined;
    return held === undefined ? undefined : this.push(held, onFrame);
  }

  #hold(bytes: Uint8Array): void {
    this.#held = this.#held === undefined ? bytes : Buffer.concat([this.#held, bytes]);
  }

  /** Finishes a header or payload carried over from earlier chunks; returns the chunk offset after it, or -1 on failure. */
  #completeCarriedFrame(chunk: Uint8Array, onFrame: FrameHandler): number {
    if (this.#pending !== undefined) return this.#fillPending(chunk, 0, onFrame);
    if (this.#headerFilled === 0) return 0;
    const headerBytes = Math.min(FRAME_HEADER_LENGTH - this.#headerFilled, chunk.length);
    this.#header.set(chunk.subarray(0, headerBytes), this.#headerFilled);
    this.#headerFilled += headerBytes;
    if (this.#headerFilled < FRAME_HEADER_LENGTH) return chunk.length;
    this.#headerFilled = 0;
    const frameType = this.#header[0]!;
    const length = readUint32(this.#header, 1);
    if (length > this.maxFrameLength) {
      this.#fail(frameType, length);
      return -1;
    }
    if (chunk.length - headerBytes >= length) {
      onFrame(frameType, chunk.subarray(headerBytes, headerBytes + length));
      return headerBytes + length;
    }
    this.#carry(frameType, length, chunk.subarray(headerBytes));
    return chunk.length;
  }

  #carry(frameType: number, length: number, partialPayload: Uint8Array): void {
    this.#pending = new Uint8Array(length);
    this.#pending.set(partialPayload, 0);
    this.#pendingType = frameType;
    this.#pendingFilled = partialPayload.length;
  }

  #fillPending(chunk: Uint8Array, offset: number, onFrame: FrameHandler): number {
    const pending = this.#pending!;
    const take = Math.min(pending.length - this.#pendingFilled, chunk.length - offset);
    pending.set(chunk.subarray(offset, offset + take), this.#pendingFilled);
    this.#pendingFilled += take;
    if (this.#pendingFilled < pending.length) return chunk.length;
    this.#pending = undefined;
    this.#pendingFilled = 0;
    onFrame(this.#pendingType, pending);
    return offset + take;
  }

  #fail(frameType: number, length: number): DerpFrameTooLargeError {
    this.#failure = new DerpFrameTooLargeError(frameType, length, this.maxFrameLength);
    this.#pending = undefined;
    this.#pendingFilled = 0;
    this.#headerFilled = 0;
    return this.#failure;
  }
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>>
    0
  );
}
