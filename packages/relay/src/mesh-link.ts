import type { Duplex } from 'node:stream';
import type { CountCell, Logger } from '@switchyard/telemetry';
import {
  decodePeerGone,
  decodePeerPresent,
  decodePing,
  encodePong,
  encodeWatchConns,
  FrameType,
} from './codec.ts';
import { derpTarget, openDerpStream } from './derp-transport.ts';
import { FrameReader } from './frame-reader.ts';
import { FrameWriter } from './frame-writer.ts';
import { openServerInfo, parseServerKey, sealClientInfo } from './handshake.ts';
import type { RelayMetrics } from './metrics.ts';
import type { PacketForwarder, RelayServer } from './relay-server.ts';

export interface MeshLinkOptions {
  /** The peer's name from the config, for logs. */
  readonly name: string;
  /** The peer relay's DERP URL. */
  readonly url: string;
  /** The region's mesh pre-shared key (64 hex digits). */
  readonly meshKey: string;
  readonly relay: RelayServer;
  /** Where the link counts its state (`mesh_links`) and failures; packets count in the relay's cells. */
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  /** First wait before redialling after a failure, in ms; doubles up to 30 s. */
  readonly retryDelayMs: number;
  /** Forwarded packets held while the link is backed up. */
  readonly queueLength: number;
  readonly writeTimeoutMs: number;
  /** Login must finish within this, in ms. */
  readonly handshakeTimeoutMs: number;
}

interface MeshLinkCells {
  readonly up: CountCell;
  readonly down: CountCell;
  readonly failures: CountCell;
  readonly forwardedOut: CountCell;
  readonly droppedGone: CountCell;
  readonly droppedQueueHead: CountCell;
}

const MAX_RETRY_DELAY_MS = 30_000;

/**
 * This relay's outbound connection to one mesh peer, as derper's runMeshClient: it logs in with
 * the relay's own key and the mesh key, sends WatchConns, and from the PeerPresent/PeerGone frames
 * that follow learns which clients the peer holds; it registers itself as their forwarder, and
 * carries packets for them in ForwardPacket frames. When it drops, every key it learned is
 * forgotten and it redials with backoff. From `start` on it counts in `mesh_links` as down or up;
 * a link to this relay itself leaves the count.
 */
export class MeshLink implements PacketForwarder {
  readonly name: string;
  readonly #options: MeshLinkOptions;
  readonly #cells: MeshLinkCells;
  readonly #learned = new Map<string, Uint8Array>();
  #stream: Duplex | undefined;
  #writer: FrameWriter | undefined;
  #abort = new AbortController();
  #retryDelayMs: number;
  #retryTimer: NodeJS.Timeout | undefined;
  #up = false;
  #closed = false;
  #failuresInARow = 0;
  #isSelf = false;

  constructor(options: MeshLinkOptions) {
    this.name = options.name;
    this.#options = options;
    this.#retryDelayMs = options.retryDelayMs;
    const { mesh_links, mesh_link_failures } = options.metrics;
    // Forwarded packets are part of the relay's packet accounting: they count in its own cells.
    const relayCells = options.relay.cells;
    this.#cells = {
      up: mesh_links.cell({ state: 'up' }),
      down: mesh_links.cell({ state: 'down' }),
      failures: mesh_link_failures.cell(),
      forwardedOut: relayCells.packetsForwardedOut,
      droppedGone: relayCells.packetsDropped.gone_disconnected,
      droppedQueueHead: relayCells.packetsDropped.queue_head,
    };
  }

  /** Logged in and watching. */
  get up(): boolean {
    return this.#up;
  }

  /** The configured peer turned out to be this relay; the link stopped. */
  get isSelf(): boolean {
    return this.#isSelf;
  }

  start(): void {
    this.#cells.down.add();
    void this.#dial();
  }

  forward(srcKey: Uint8Array, dstKey: Uint8Array, packet: Uint8Array, nowMs: number): boolean {
    const writer = this.#writer;
    if (writer === undefined || !this.#up) {
      this.#cells.droppedGone.add();
      return true;
    }
    if (writer.enqueuePacket(FrameType.ForwardPacket, srcKey, dstKey, packet, nowMs)) {
      this.#cells.droppedQueueHead.add();
    }
    return !writer.backedUp;
  }

  onceWritable(callback: () => void): void {
    const writer = this.#writer;
    if (writer === undefined) callback();
    else writer.onceWritable(callback);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#abort.abort(new Error('mesh link closed'));
    this.#teardown();
  }

  async #dial(): Promise<void> {
    if (this.#closed) return;
    const { relay, url, meshKey, logger } = this.#options;
    const abort = new AbortController();
    this.#abort = abort;
    const timer = setTimeout(() => {
      const error = new Error(`no login within ${this.#options.handshakeTimeoutMs} ms`);
      abort.abort(error);
      if (stream !== undefined && this.#stream === stream) stream.destroy(error);
    }, this.#options.handshakeTimeoutMs);
    timer.unref();
    let stream: Duplex | undefined;
    try {
      stream = await openDerpStream(derpTarget({ url }), { signal: abort.signal });
    } catch (error) {
      clearTimeout(timer);
      this.#fail(`cannot connect: ${(error as Error).message}`);
      return;
    }
    if (this.#closed) {
      clearTimeout(timer);
      stream.destroy();
      return;
    }
    const opened = stream;
    this.#stream = opened;
    const reader = new FrameReader();
    let serverKey: Uint8Array | undefined;
    const forwardedOut = this.#cells.forwardedOut;
    // No queueWait: queue.duration is the wait of packets for clients, not for mesh peers.
    const writer = new FrameWriter(opened, {
      queueLength: this.#options.queueLength,
      writeTimeoutMs: this.#options.writeTimeoutMs,
      onPacketsWritten: (packets) => forwardedOut.add(packets),
      onWriteTimeout: () => opened.destroy(new Error('peer stopped reading (write deadline)')),
    });
    this.#writer = writer;
    const onFrame = (frameType: number, payload: Uint8Array): void => {
      switch (frameType) {
        case FrameType.ServerKey:
          serverKey = parseServerKey(payload);
          if (Buffer.compare(serverKey, relay.publicKey) === 0) {
            this.#stopAsSelf();
            return;
          }
          writer.enqueueControl(
            sealClientInfo(relay.serverKeys, serverKey, {
              version: 2,
              meshKey,
              canAckPings: true,
              isProber: false,
            }),
          );
          return;
        case FrameType.ServerInfo:
          if (serverKey === undefined) throw new Error('server info before server key');
          openServerInfo(relay.serverKeys, serverKey, payload);
          clearTimeout(timer);
          writer.enqueueControl(encodeWatchConns());
          this.#setUp(true);
          logger.info('mesh link up', { peer: this.name, url });
          return;
        case FrameType.PeerPresent:
          this.#learn(decodePeerPresent(payload).peerKey);
          return;
        case FrameType.PeerGone:
          this.#forget(decodePeerGone(payload).peerKey);
          return;
        case FrameType.Ping:
          writer.enqueueControl(encodePong(decodePing(payload)));
          return;
        default:
      }
    };
    opened.on('data', (chunk: Buffer) => {
      try {
        const failure = reader.push(chunk, onFrame);
        if (failure !== undefined) opened.destroy(failure);
      } catch (error) {
        opened.destroy(error as Error);
      }
    });
    const ended = (problem: string) => {
      clearTimeout(timer);
      if (this.#stream === opened) this.#fail(problem);
    };
    opened.on('error', (error: Error) => ended(error.message));
    opened.on('close', () => ended('connection closed'));
  }

  /**
   * The peer is this relay (every replica lists every replica, itself included): derper drops
   * such a link, and so do we, for good.
   */
  #stopAsSelf(): void {
    this.#closed = true;
    this.#isSelf = true;
    clearTimeout(this.#retryTimer);
    this.#teardown();
    this.#options.logger.info('mesh peer is this relay; no link to it', {
      peer: this.name,
      url: this.#options.url,
    });
    this.#cells.down.add(-1);
  }

  #learn(peerKey: Uint8Array): void {
    const key = Uint8Array.from(peerKey);
    const id = Buffer.from(key).toString('latin1');
    if (this.#learned.has(id)) return;
    this.#learned.set(id, key);
    this.#options.relay.addForwarder(key, this);
  }

  #forget(peerKey: Uint8Array): void {
    const id = Buffer.from(peerKey).toString('latin1');
    const key = this.#learned.get(id);
    if (key === undefined) return;
    this.#learned.delete(id);
    this.#options.relay.removeForwarder(key, this);
  }

  #setUp(up: boolean): void {
    if (up === this.#up) return;
    this.#up = up;
    if (up) {
      this.#failuresInARow = 0;
      this.#retryDelayMs = this.#options.retryDelayMs;
    }
    this.#cells.up.add(up ? 1 : -1);
    this.#cells.down.add(up ? -1 : 1);
  }

  #teardown(): void {
    const lost = this.#writer?.close() ?? 0;
    this.#cells.droppedGone.add(lost);
    this.#writer = undefined;
    this.#stream?.destroy();
    this.#stream = undefined;
    for (const key of this.#learned.values()) this.#options.relay.removeForwarder(key, this);
    this.#learned.clear();
    this.#setUp(false);
  }

  /** Ends this attempt (once), logs one line per streak of failures, and schedules the redial. */
  #fail(problem: string): void {
    const wasUp = this.#up;
    this.#teardown();
    if (this.#closed) return;
    this.#cells.failures.add();
    if (wasUp || this.#failuresInARow === 0) {
      this.#options.logger.warn('mesh link down; redialling', {
        peer: this.name,
        url: this.#options.url,
        problem,
        retryInMs: this.#retryDelayMs,
      });
    }
    this.#failuresInARow++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#dial();
    }, this.#retryDelayMs);
    this.#retryTimer.unref();
    this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, MAX_RETRY_DELAY_MS);
  }
}
