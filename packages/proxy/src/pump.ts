import type { OnReadOpts, Socket } from 'node:net';

/**
 * Reads of quiet connections land in this one buffer, shared by every pump of the process, and are
 * copied out before they are written: it is never held by a pending write, so the next read, of any
 * connection, may reuse it. A connection whose read fills it gets a buffer of its own.
 */
const SHARED_READ_BYTES = 16 * 1024;
const sharedReadBuffer = Buffer.allocUnsafeSlow(SHARED_READ_BYTES);
/** A connection's own read buffer doubles, from twice the shared size, while reads fill it. */
const MAX_READ_BYTES = 256 * 1024;

/**
 * One direction of a proxied connection: what `source` reads is written to a sink, with
 * backpressure, and the source's FIN is passed on as the sink's `end()`.
 *
 * The source socket reads through `onread` into a buffer the pump chooses, instead of Node's
 * default of a fresh 64 KiB allocation per read, which costs about as much CPU again as the system
 * calls of a bulk stream (docs/benchmarks.md). Small reads land in one shared buffer and are copied
 * out; a connection whose reads fill it gets a buffer of its own, doubling while reads fill it, and
 * that buffer is handed to `sink.write()` as it is. Node writes it straight to the kernel and keeps
 * a reference only when the kernel took part of it (the rest waits in libuv) or earlier writes are
 * still queued. Either way `sink.writableLength` is then non-zero, and the source stops reading
 * until the write callback finds the sink empty: at most one read per direction is held in memory
 * however slow the sink, and a held buffer is never read into again.
 *
 * A socket made without the pump's `onread` (see {@link Pump.adopt}) is relayed from its 'data'
 * events with the same rules.
 */
export class Pump {
  readonly source: Socket;
  #sink: Socket | undefined;
  #buffer: Buffer | undefined;
  #waitingForSink = false;

  /** Creates the source through `open`, which must pass the given `onread` to the socket it makes. */
  constructor(open: (onread: OnReadOpts) => Socket) {
    this.#buffer = sharedReadBuffer;
    this.source = open({
      buffer: () => this.#buffer as Buffer,
      callback: (bytesRead, buffer) => this.#onRead(bytesRead, buffer as Buffer),
    });
  }

  /** A pump for a socket that reads the default way (Node allocates each chunk). */
  static adopt(socket: Socket): Pump {
    const pump = new Pump(() => socket);
    pump.#buffer = undefined;
    return pump;
  }

  /** Starts moving bytes to `sink`, and ends `sink` when the source ends. */
  pipeTo(sink: Socket): void {
    this.#sink = sink;
    const source = this.source;
    if (this.#buffer === undefined) {
      source.on('data', (chunk: Buffer) => {
        if (!this.#write(chunk)) source.pause();
      });
    }
    source.on('end', () => sink.end());
    source.resume();
  }

  /** The socket read `bytes` into `buffer`; returns false to stop reading until the sink drains. */
  #onRead(bytes: number, buffer: Buffer): boolean {
    if (buffer === sharedReadBuffer) {
      const chunk = Buffer.allocUnsafe(bytes);
      buffer.copy(chunk, 0, 0, bytes);
      if (bytes === buffer.length) this.#buffer = Buffer.allocUnsafeSlow(2 * SHARED_READ_BYTES);
      return this.#write(chunk);
    }
    const keepReading = this.#write(bytes === buffer.length ? buffer : buffer.subarray(0, bytes));
    this.#buffer = nextOwnBuffer(buffer, bytes, !keepReading);
    return keepReading;
  }

  /** Writes `chunk` to the sink; false when the sink holds data and the source must wait. */
  #write(chunk: Buffer): boolean {
    const sink = this.#sink as Socket;
    sink.write(chunk, this.#written);
    if (sink.writableLength === 0) return true;
    this.#waitingForSink = true;
    return false;
  }

  readonly #written = (): void => {
    if (this.#waitingForSink && (this.#sink as Socket).writableLength === 0) {
      this.#waitingForSink = false;
      this.source.resume();
    }
  };
}

/**
 * The buffer for the read after one of `bytesRead` into a pump's own `buffer`: twice as large when
 * it was filled, half as large (or the shared one) when less than a quarter was used. A buffer the
 * sink still holds is replaced too: the source stops reading until the sink is empty anyway, and a
 * fresh buffer keeps the held bytes intact even if something restarted the reads early.
 */
function nextOwnBuffer(buffer: Buffer, bytesRead: number, held: boolean): Buffer {
  const size = buffer.length;
  if (bytesRead === size && size < MAX_READ_BYTES) return Buffer.allocUnsafeSlow(size * 2);
  if (bytesRead < size / 4) {
    return size / 2 > SHARED_READ_BYTES ? Buffer.allocUnsafeSlow(size / 2) : sharedReadBuffer;
  }
  return held ? Buffer.allocUnsafeSlow(size) : buffer;
}
