import type { Socket } from 'node:net';
import type { CountCell, HistogramSeries } from '@switchyard/telemetry';
import type { Pump } from './pump.ts';

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
 * Each direction is a {@link Pump}: the reading socket reads into the pump's own buffer, which is
 * written to the other socket, and reading stops while that socket still holds data: the kernel's
 * flow control and this backpressure keep at most one read per direction in memory however slow a
 * side reads. Both sockets are created with `allowHalfOpen`, so a FIN from one side is passed on as
 * a FIN to the other while the opposite direction keeps flowing (half-close). An error on either side destroys both. Bytes are
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
    client: Pump,
    upstream: Pump,
    cells: ConnectionCells,
    idleTimeoutMs: number,
    onClosed: (connection: ProxiedConnection) => void,
  ) {
    this.client = client.source;
    this.upstream = upstream.source;
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
    this.client.on('error', fail);
    this.upstream.on('error', fail);
    this.client.on('close', sideClosed);
    this.upstream.on('close', sideClosed);
    client.pipeTo(this.upstream);
    upstream.pipeTo(this.client);
    // A client that left while its upstream was being dialled has closed already: its 'close' will
    // not come again, and the upstream has nobody to talk to.
    if (this.client.closed) {
      sideClosed();
      this.upstream.destroy();
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
