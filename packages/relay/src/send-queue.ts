import type { HistogramSeries } from '@switchyard/telemetry';
import { FRAME_HEADER_LENGTH, KEY_LENGTH } from './codec.ts';

/**
 * A bounded ring of packets waiting for one connection's writer, each kept as the parts of the
 * frame it becomes (type, one or two keys, the packet bytes) so that nothing is encoded or copied
 * until the writer copies the whole batch into one buffer. When full, the oldest packet gives way
 * (a head drop, derper's preference for fresher packets).
 */
export class SendQueue {
  readonly capacity: number;
  readonly #frameTypes: Uint8Array;
  readonly #firstKeys: (Uint8Array | undefined)[];
  readonly #secondKeys: (Uint8Array | undefined)[];
  readonly #packets: (Uint8Array | undefined)[];
  readonly #enqueuedAt: Float64Array;
  #head = 0;
  #length = 0;
  #encodedBytes = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#frameTypes = new Uint8Array(capacity);
    this.#firstKeys = new Array(capacity).fill(undefined);
    this.#secondKeys = new Array(capacity).fill(undefined);
    this.#packets = new Array(capacity).fill(undefined);
    this.#enqueuedAt = new Float64Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  /** Bytes the queued packets take as frames. */
  get encodedBytes(): number {
    return this.#encodedBytes;
  }

  /**
   * Queues a frame of `frameType` carrying `firstKey`, then `secondKey` when given, then `packet`.
   * Returns true when the oldest queued packet was dropped to make room.
   */
  push(
    frameType: number,
    firstKey: Uint8Array,
    secondKey: Uint8Array | undefined,
    packet: Uint8Array,
    nowMs: number,
  ): boolean {
    let dropped = false;
    if (this.#length === this.capacity) {
      this.#removeHead();
      dropped = true;
    }
    const slot = (this.#head + this.#length) % this.capacity;
    this.#frameTypes[slot] = frameType;
    this.#firstKeys[slot] = firstKey;
    this.#secondKeys[slot] = secondKey;
    this.#packets[slot] = packet;
    this.#enqueuedAt[slot] = nowMs;
    this.#length++;
    this.#encodedBytes += frameLength(secondKey, packet);
    return dropped;
  }

  /**
   * Writes every queued frame into `target` from `offset` (which must have `encodedBytes` of room),
   * empties the queue and records each packet's wait in `queueWait`, when given. Returns the packet
   * bytes written, without headers and keys.
   */
  drainInto(
    target: Uint8Array,
    offset: number,
    nowMs: number,
    queueWait: HistogramSeries | undefined,
  ): number {
    let packetBytes = 0;
    let position = offset;
    while (this.#length > 0) {
      const slot = this.#head;
      const firstKey = this.#firstKeys[slot]!;
      const secondKey = this.#secondKeys[slot];
      const packet = this.#packets[slot]!;
      const payloadLength = frameLength(secondKey, packet) - FRAME_HEADER_LENGTH;
      target[position] = this.#frameTypes[slot]!;
      target[position + 1] = payloadLength >>> 24;
      target[position + 2] = (payloadLength >>> 16) & 0xff;
      target[position + 3] = (payloadLength >>> 8) & 0xff;
      target[position + 4] = payloadLength & 0xff;
      position += FRAME_HEADER_LENGTH;
      target.set(firstKey, position);
      position += KEY_LENGTH;
      if (secondKey !== undefined) {
        target.set(secondKey, position);
        position += KEY_LENGTH;
      }
      target.set(packet, position);
      position += packet.length;
      packetBytes += packet.length;
      queueWait?.record((nowMs - this.#enqueuedAt[slot]!) / 1000);
      this.#removeHead();
    }
    return packetBytes;
  }

  /** Empties the queue; returns how many packets it held. */
  clear(): number {
    const count = this.#length;
    while (this.#length > 0) this.#removeHead();
    return count;
  }

  #removeHead(): void {
    const slot = this.#head;
    this.#encodedBytes -= frameLength(this.#secondKeys[slot], this.#packets[slot]!);
    this.#firstKeys[slot] = undefined;
    this.#secondKeys[slot] = undefined;
    this.#packets[slot] = undefined;
    this.#head = (slot + 1) % this.capacity;
    this.#length--;
  }
}

function frameLength(secondKey: Uint8Array | undefined, packet: Uint8Array): number {
  return FRAME_HEADER_LENGTH + KEY_LENGTH + (secondKey === undefined ? 0 : KEY_LENGTH) + packet.length;
}
