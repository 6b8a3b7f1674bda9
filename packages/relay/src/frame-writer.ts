import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HistogramSeries } from '@switchyard/telemetry';
import { SendQueue } from './send-queue.ts';

/** The smallest kept batch buffer: a few packets' worth, so small flushes share it too. */
const MIN_REUSABLE_BATCH = 16 * 1024;

export interface FrameWriterOptions {
  /** Packets held while the stream is backed up; beyond this the oldest is dropped. */
  readonly queueLength: number;
  /** How long the stream may stay backed up (no 'drain') before `onWriteTimeout`, in ms. */
  readonly writeTimeoutMs: number;
  /** Where each written packet's wait in the queue is recorded, in seconds; unset: not recorded. */
  readonly queueWait?: HistogramSeries;
  /** Called after each write with the packets and packet bytes it carried. */
  readonly onPacketsWritten: (packets: number, packetBytes: number) => void;
  readonly onWriteTimeout: () => void;
}

/**
 * The one writer of a DERP stream. Control frames (server info, pong, keep-alive, peer gone and
 * present) go ahead of packets, as derper's sendLoop prefers them. Frames queued during one turn
 * of the event loop leave in one write, copied into one buffer after the I/O callbacks of that
 * turn (setImmediate), or as soon as the queue is full: under load a connection makes one syscall
 * per turn or per queue-full, not one per packet. Once the kernel refuses part of a write
 * (`write()` returns false) nothing more is written until 'drain'; packets wait in the bounded
 * queue, the oldest giving way, and a deadline runs, so a peer that stops reading is cut off, not
 * buffered for.
 */
export class FrameWriter {
  readonly #stream: Duplex;
  readonly #options: FrameWriterOptions;
  readonly #packets: SendQueue;
  /** Disco packets, in their own queue as derper's discoSendQueue: bulk data never pushes them out. */
  readonly #discoPackets: SendQueue;
  #control: Uint8Array[] = [];
  #controlBytes = 0;
  #scheduled = false;
  #backedUp = false;
  #deadline: NodeJS.Timeout | undefined;
  #closed = false;
  #writableWaiters: Array<() => void> = [];
  readonly #reuseBatches: boolean;
  #reusable: Buffer | undefined;

  constructor(stream: Duplex, options: FrameWriterOptions) {
    this.#stream = stream;
    this.#options = options;
    this.#packets = new SendQueue(options.queueLength);
    this.#discoPackets = new SendQueue(options.queueLength);
    this.#reuseBatches = stream instanceof Socket;
  }

  /** Packets waiting to be written. */
  get queuedPackets(): number {
    return this.#packets.length + this.#discoPackets.length;
  }

  /** Waiting for 'drain': the kernel refused part of the last write. */
  get backedUp(): boolean {
    return this.#backedUp;
  }

  /** Calls `callback` once the stream drains (or the writer closes); at once if not backed up. */
  onceWritable(callback: () => void): void {
    if (!this.#backedUp || this.#closed) callback();
    else this.#writableWaiters.push(callback);
  }

  /** Control frames waiting to be written. */
  get queuedControlFrames(): number {
    return this.#control.length;
  }

  /** Queues a whole control frame. */
  enqueueControl(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#control.push(frame);
    this.#controlBytes += frame.length;
    this.#schedule();
  }

  /**
   * Queues a packet frame, in the disco queue when `disco`; returns true when the oldest packet of
   * that queue was dropped for it.
   */
  enqueuePacket(
    frameType: number,
    firstKey: Uint8Array,
    secondKey: Uint8Array | undefined,
    packet: Uint8Array,
    nowMs: number,
    disco = false,
  ): boolean {
    const queue = disco ? this.#discoPackets : this.#packets;
    // A full queue whose stream is not backed up is written out now rather than dropped: the
    // bound applies to a reader that is slow, not to a burst that arrived in one read.
    if (queue.length === queue.capacity && !this.#backedUp && !this.#closed) this.#flush();
    const dropped = queue.push(frameType, firstKey, secondKey, packet, nowMs);
    this.#schedule();
    return dropped;
  }

  /** Stops writing; returns the packets that were still queued. */
  close(): number {
    this.#closed = true;
    clearTimeout(this.#deadline);
    this.#wakeWaiters();
    this.#control = [];
    this.#controlBytes = 0;
    return this.#packets.clear() + this.#discoPackets.clear();
  }

  #schedule(): void {
    if (this.#scheduled || this.#backedUp || this.#closed) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#closed || this.#backedUp) return;
    const total = this.#controlBytes + this.#discoPackets.encodedBytes + this.#packets.encodedBytes;
    if (total === 0) return;
    const batch = this.#batchBuffer(total);
    let offset = 0;
    for (const frame of this.#control) {
      batch.set(frame, offset);
      offset += frame.length;
    }
    this.#control = [];
    this.#controlBytes = 0;
    const packets = this.queuedPackets;
    const nowMs = performance.now();
    const discoFrameBytes = this.#discoPackets.encodedBytes;
    const discoBytes = this.#discoPackets.drainInto(batch, offset, nowMs, this.#options.queueWait);
    offset += discoFrameBytes;
    const packetBytes = discoBytes + this.#packets.drainInto(batch, offset, nowMs, this.#options.queueWait);
    const flowing = this.#stream.write(batch);
    // The kernel took it all (the usual case): the buffer is free for the next batch.
    if (this.#reusable !== undefined && this.#stream.writableLength > 0) this.#reusable = undefined;
    if (packets > 0) this.#options.onPacketsWritten(packets, packetBytes);
    if (!flowing) this.#waitForDrain();
  };

  /**
   * A batch buffer: on a TCP socket, one kept across flushes while every write completes at once,
   * so that a busy connection does not allocate (and leave V8 to collect) a new buffer per flush.
   * Other streams (WebSocket) may keep a reference to what they were given: they get a new one.
   */
  #batchBuffer(length: number): Buffer {
    if (!this.#reuseBatches) return Buffer.allocUnsafe(length);
    if (this.#reusable === undefined || this.#reusable.length < length) {
      this.#reusable = Buffer.allocUnsafeSlow(Math.max(length, MIN_REUSABLE_BATCH));
    }
    return this.#reusable.subarray(0, length);
  }

  #waitForDrain(): void {
    this.#backedUp = true;
    this.#stream.once('drain', this.#onDrain);
    this.#deadline = setTimeout(this.#onDeadline, this.#options.writeTimeoutMs);
    this.#deadline.unref();
  }

  readonly #onDrain = (): void => {
    clearTimeout(this.#deadline);
    this.#backedUp = false;
    this.#schedule();
    this.#wakeWaiters();
  };

  #wakeWaiters(): void {
    const waiters = this.#writableWaiters;
    this.#writableWaiters = [];
    for (const waiter of waiters) waiter();
  }

  readonly #onDeadline = (): void => {
    if (this.#closed || !this.#backedUp) return;
    this.#options.onWriteTimeout();
  };
}
