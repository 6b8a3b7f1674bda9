import type { Socket } from 'node:net';
import type { CountCell, HistogramSeries } from '@switchyard/telemetry';

/** The metric cells of one (pool, upstream) pair that a proxied connection updates. */
export interface ConnectionCells {
  readonly active: CountCell;
  readonly bytesClientToUpstream: CountCell;
  readonly bytesUpstreamToClient: CountCell;
  readonly duration: HistogramSeries;
}

/**
 * One client connection spliced to one upstream connection.
 *
 * Each direction forwards a socket's 'data' chunks to the other socket and pauses the reader while
 * the writer is over its high-water mark, resuming on 'drain' (what `pipe()` does, without its
 * per-connection bookkeeping): the kernel's flow control and this backpressure keep at most a
 * high-water mark of data per direction in memory however slow a side reads. Both sockets are
 * created with `allowHalfOpen`, so a FIN from one side is passed on as a FIN to the other while the
 * opposite direction keeps flowing (half-close). An error on either side destroys both. Bytes are
 * read from the sockets' own counters when metrics are collected (`flushBytes`) and when the
 * connection ends, and idleness is judged by a sweep over those counters.
 */
export class ProxiedConnection {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Idle timeout of the pool the connection belongs to, for the owner's sweep. */
  readonly idleTimeoutMs: number;
  readonly #cells: ConnectionCells;
  readonly #opened: number;
  readonly #onClosed: (connection: ProxiedConnection) => void;
  #countedClientToUpstream = 0;
  #countedUpstreamToClient = 0;
  #closedSides = 0;
  #finished = false;
  /** Sum of both sockets' bytesRead at the last idle sweep, and when it last changed. */
  #lastSeenBytes = -1;
  #lastActiveAt: number;

  constructor(
    client: Socket,
    upstream: Socket,
    cells: ConnectionCells,
    idleTimeoutMs: number,
    onClosed: (connection: ProxiedConnection) => void,
  ) {
    this.client = client;
    this.upstream = upstream;
    this.idleTimeoutMs = idleTimeoutMs;
    this.#cells = cells;
    this.#onClosed = onClosed;
    this.#opened = performance.now();
    this.#lastActiveAt = this.#opened;
    cells.active.add(1);
    const fail = () => this.destroy();
    const sideClosed = () => {
      this.#closedSides += 1;
      if (this.#closedSides === 2) this.#finish();
    };
    client.on('error', fail);
    upstream.on('error', fail);
    client.on('close', sideClosed);
    upstream.on('close', sideClosed);
    forward(client, upstream);
    forward(upstream, client);
    // A client that left while its upstream was being dialled has closed already: its 'close' will
    // not come again, and the upstream has nobody to talk to.
    if (client.closed) {
      sideClosed();
      upstream.destroy();
    }
  }
  /** Adds the bytes read since the last flush to the byte counters (collection time and at the end). */
  flushBytes(): void {
    const up = this.client.bytesRead;
    const down = this.upstream.bytesRead;
    this.#cells.bytesClientToUpstream.add(up - this.#countedClientToUpstream);
    this.#cells.bytesUpstreamToClient.add(down - this.#countedUpstreamToClient);
    this.#countedClientToUpstream = up;
    this.#countedUpstreamToClient = down;
  }

  /** True when no byte moved either way for `idleTimeoutMs` (checked by the owner's periodic sweep). */
  idleFor(now: number, idleTimeoutMs: number): boolean {
    const seen = this.client.bytesRead + this.upstream.bytesRead;
    if (seen !== this.#lastSeenBytes) {
      this.#lastSeenBytes = seen;
      this.#lastActiveAt = now;
      return false;
    }
    return now - this.#lastActiveAt >= idleTimeoutMs;
  }

  /** Bytes queued in memory toward either side (bounded by the sockets' high-water marks). */
  get bufferedBytes(): number {
    return this.client.writableLength + this.upstream.writableLength;
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.flushBytes();
    this.#cells.active.add(-1);
    this.#cells.duration.record((performance.now() - this.#opened) / 1000);
    this.#onClosed(this);
  }
}

/** Sends what `from` reads to `to`, with backpressure, and passes `from`'s FIN on to `to`. */
function forward(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
}
