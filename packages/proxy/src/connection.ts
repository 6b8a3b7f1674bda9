import type { CountCell, HistogramSeries } from '@switchyard/telemetry';
import {
  type LibuvTcp,
  type ShutdownRequest,
  type TcpHandle,
  UV_EOF,
  type WriteRequest,
} from './libuv-tcp.ts';

/** The metric cells a proxied connection updates: its upstream's counters, its pool's histogram. */
export interface ConnectionCells {
  readonly active: CountCell;
  readonly bytesClientToUpstream: CountCell;
  readonly bytesUpstreamToClient: CountCell;
  /** The pool's series, shared by all of its upstreams (resolved once per pool). */
  readonly duration: HistogramSeries;
}

/**
 * Reads of quiet connections land in this one buffer, shared by every socket of the process, and
 * are copied out before they are written: a pending write never points into it, so the next read,
 * of any socket, may reuse it. A socket whose read fills it gets a buffer of its own.
 */
const SHARED_READ_BYTES = 16 * 1024;
const sharedReadBuffer = Buffer.allocUnsafeSlow(SHARED_READ_BYTES);
/** A socket's own read buffer doubles, from twice the shared size, while reads fill it. */
const MAX_READ_BYTES = 256 * 1024;

/** libuv's status for a shutdown of a socket the peer already reset: nothing left to shut. */
const UV_ENOTCONN = -107;

// The libuv callbacks are plain functions with `this` the handle or request; `owner` leads back to
// the side. One function each for the whole process, rather than closures per connection.
function onSideRead(this: TcpHandle): Buffer {
  const side = this.owner as Side;
  return side.read(side.connection.tcp.readResult());
}

function onWriteComplete(this: WriteRequest, status: number): void {
  (this.owner as Side).written(status);
}

function onShutdownComplete(this: ShutdownRequest, status: number): void {
  (this.owner as Side).shutDown(status);
}

/**
 * One socket of a proxied connection: what it reads is written to its peer's socket. Reading stops
 * while the peer holds unwritten data (libuv queued part of a write) and resumes when the peer has
 * written everything, so at most one read per direction is held in memory however slow the reader
 * at the other end.
 */
class Side {
  readonly connection: ProxiedConnection;
  readonly handle: TcpHandle;
  peer: Side = this;
  /** Bytes read from this socket; the byte counters are flushed from here. */
  bytesRead = 0;
  /** Writes to this socket that libuv still holds. */
  pendingWrites = 0;
  /** Reading stopped until the peer has written what this side read. */
  stalled = false;
  /** This socket's peer sent FIN. */
  ended = false;
  #buffer: Buffer = sharedReadBuffer;
  #shutdownSent = false;

  constructor(connection: ProxiedConnection, handle: TcpHandle) {
    this.connection = connection;
    this.handle = handle;
    handle.owner = this;
    handle.onread = onSideRead;
    handle.useUserBuffer(sharedReadBuffer);
    handle.setNoDelay(true);
  }

  startReading(): void {
    if (this.handle.readStart() !== 0) this.connection.destroy();
  }

  /**
   * libuv read `result` bytes into this side's buffer, or reports EOF or an error. Returns the
   * buffer for the next read: Node's user-buffer listener takes the onread return value as that.
   */
  read(result: number): Buffer {
    if (result > 0) {
      this.bytesRead += result;
      this.peer.write(this.#takeChunk(result), this);
    } else if (result === UV_EOF) {
      this.ended = true;
      this.connection.ended(this);
    } else if (result < 0) {
      this.connection.destroy();
    }
    return this.#buffer;
  }

  /**
   * The `bytes` just read as a chunk to write. Out of the shared buffer they are copied; an own
   * buffer is handed over as it is (the side stops reading while a write holds it). A read that
   * filled its buffer moves the side to one twice as large; one that used under a quarter, to one
   * half as large or back to the shared one.
   */
  #takeChunk(bytes: number): Buffer {
    const buffer = this.#buffer;
    const size = buffer.length;
    if (buffer === sharedReadBuffer) {
      const chunk = Buffer.allocUnsafe(bytes);
      buffer.copy(chunk, 0, 0, bytes);
      if (bytes === size) this.#buffer = Buffer.allocUnsafeSlow(2 * size);
      return chunk;
    }
    const chunk = bytes === size ? buffer : buffer.subarray(0, bytes);
    if (bytes === size && size < MAX_READ_BYTES) this.#buffer = Buffer.allocUnsafeSlow(2 * size);
    else if (bytes < size / 4) {
      this.#buffer = size / 2 > SHARED_READ_BYTES ? Buffer.allocUnsafeSlow(size / 2) : sharedReadBuffer;
    }
    return chunk;
  }

  /** Writes `chunk` to this socket; when libuv has to hold some of it, `source` stops reading. */
  write(chunk: Buffer, source: Side | undefined): void {
    const tcp = this.connection.tcp;
    const request = tcp.newWriteRequest();
    request.handle = this.handle;
    request.oncomplete = onWriteComplete;
    request.async = false;
    request.buffer = null;
    request.owner = this;
    if (this.handle.writeBuffer(request, chunk) !== 0) {
      this.connection.destroy();
      return;
    }
    if (!tcp.lastWriteWasAsync()) return;
    request.async = true;
    request.buffer = chunk;
    this.pendingWrites += 1;
    if (source !== undefined && !source.stalled) {
      source.stalled = true;
      source.handle.readStop();
    }
  }

  /** A write libuv held has finished (or was cancelled by closing). */
  written(status: number): void {
    this.pendingWrites -= 1;
    const connection = this.connection;
    if (connection.closed) return;
    if (status < 0) {
      connection.destroy();
      return;
    }
    if (this.pendingWrites > 0) return;
    const source = this.peer;
    if (source.stalled) {
      source.stalled = false;
      source.startReading();
    }
    connection.closeIfDone();
  }

  /** Sends FIN once what is queued has been written (libuv orders the shutdown after the writes). */
  shutdown(): void {
    if (this.#shutdownSent) return;
    this.#shutdownSent = true;
    const request = this.connection.tcp.newShutdownRequest();
    request.handle = this.handle;
    request.oncomplete = onShutdownComplete;
    request.owner = this;
    const status = this.handle.shutdown(request);
    if (status < 0 && status !== UV_ENOTCONN) this.connection.destroy();
  }

  shutDown(status: number): void {
    if (status < 0 && status !== UV_ENOTCONN && !this.connection.closed) this.connection.destroy();
  }
}

/**
 * One client connection spliced to one upstream connection, on bare libuv handles (see
 * libuv-tcp.ts for why not `net.Socket`).
 *
 * Each socket reads into a buffer of the proxy's choosing and the bytes are written to the other
 * socket; reading stops while that socket holds unwritten data, so the kernel's flow control and
 * this backpressure keep at most one read per direction in memory. A FIN from either side is
 * passed on as a shutdown of the other while the opposite direction keeps flowing (half-close);
 * once both sides have sent FIN and everything is written, both sockets are closed, which sends the
 * last FIN without a shutdown of its own. A read or write error closes both. Bytes are counted in
 * plain fields and added to the byte counters when metrics are collected (`flushBytes`) and when
 * the connection ends; idleness is judged by a sweep over the same fields.
 */
export class ProxiedConnection {
  readonly tcp: LibuvTcp;
  /** Idle timeout of the pool the connection belongs to, for the owner's sweep. */
  readonly idleTimeoutMs: number;
  closed = false;
  readonly #client: Side;
  readonly #upstream: Side;
  readonly #cells: ConnectionCells;
  readonly #opened: number;
  readonly #onClosed: (connection: ProxiedConnection) => void;
  #countedClientToUpstream = 0;
  #countedUpstreamToClient = 0;
  /** Bytes read both ways at the last idle sweep, and when they last changed. */
  #lastSeenBytes = -1;
  #lastActiveAt: number;

  /**
   * Splices the accepted `client` to the connected `upstream` (neither reading yet), after writing
   * `header` (a PROXY protocol header) to the upstream when given.
   */
  constructor(
    tcp: LibuvTcp,
    client: TcpHandle,
    upstream: TcpHandle,
    options: {
      readonly cells: ConnectionCells;
      readonly idleTimeoutMs: number;
      readonly header: Buffer | undefined;
      readonly onClosed: (connection: ProxiedConnection) => void;
    },
  ) {
    this.tcp = tcp;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.#cells = options.cells;
    this.#onClosed = options.onClosed;
    this.#opened = performance.now();
    this.#lastActiveAt = this.#opened;
    this.#cells.active.add(1);
    this.#client = new Side(this, client);
    this.#upstream = new Side(this, upstream);
    this.#client.peer = this.#upstream;
    this.#upstream.peer = this.#client;
    if (options.header !== undefined) this.#upstream.write(options.header, undefined);
    this.#client.startReading();
    if (!this.closed) this.#upstream.startReading();
  }

  /** Adds the bytes read since the last flush to the byte counters (collection time and at the end). */
  flushBytes(): void {
    const up = this.#client.bytesRead;
    const down = this.#upstream.bytesRead;
    this.#cells.bytesClientToUpstream.add(up - this.#countedClientToUpstream);
    this.#cells.bytesUpstreamToClient.add(down - this.#countedUpstreamToClient);
    this.#countedClientToUpstream = up;
    this.#countedUpstreamToClient = down;
  }

  /** True when no byte moved either way for `idleTimeoutMs` (checked by the owner's periodic sweep). */
  idleFor(now: number, idleTimeoutMs: number): boolean {
    const seen = this.#client.bytesRead + this.#upstream.bytesRead;
    if (seen !== this.#lastSeenBytes) {
      this.#lastSeenBytes = seen;
      this.#lastActiveAt = now;
      return false;
    }
    return now - this.#lastActiveAt >= idleTimeoutMs;
  }

  /** Bytes libuv holds unwritten toward either side (at most one read per direction). */
  get bufferedBytes(): number {
    if (this.closed) return 0;
    return this.#client.handle.writeQueueSize + this.#upstream.handle.writeQueueSize;
  }

  /** `side`'s peer sent FIN: pass it on, or close if the other direction has ended too. */
  ended(side: Side): void {
    if (!this.closeIfDone()) side.peer.shutdown();
  }

  /** Closes both sockets when both sent FIN and everything read has been written. */
  closeIfDone(): boolean {
    const client = this.#client;
    const upstream = this.#upstream;
    if (!client.ended || !upstream.ended || client.pendingWrites > 0 || upstream.pendingWrites > 0) {
      return false;
    }
    this.destroy();
    return true;
  }

  /** Closes both sockets now (an error, the idle timeout, a forced shutdown, or the natural end). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.#client.handle.close();
    this.#upstream.handle.close();
    this.flushBytes();
    this.#cells.active.add(-1);
    this.#cells.duration.record((performance.now() - this.#opened) / 1000);
    this.#onClosed(this);
  }
}
