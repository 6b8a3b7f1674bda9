import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  decodeClosePeer,
  decodeForwardPacket,
  decodeNotePreferred,
  decodePing,
  decodePong,
  decodeSendPacket,
  decodeWatchConns,
  encodeKeepAlive,
  encodePing,
  encodePong,
  FrameType,
  PING_DATA_LENGTH,
} from './codec.ts';
import { FrameReader } from './frame-reader.ts';
import { FrameWriter } from './frame-writer.ts';
import { type ClientInfo, openClientInfo, sealServerInfo, serverKeyFrame } from './handshake.ts';
import type { NodeKeyPair } from './keys.ts';
import type { CloseCause, RelayCells } from './metrics.ts';

/** What a connection needs from the relay that owns it: the registry, routing and its cells. */
export interface ConnectionRouter {
  readonly cells: RelayCells;
  readonly serverKeys: NodeKeyPair;
  /** Whether the client may log in; `mesh` when it presented the mesh key. */
  admit(clientPublic: Uint8Array, info: ClientInfo): 'client' | 'mesh' | 'refused';
  /** The handshake succeeded. */
  register(connection: ClientConnection): void;
  /** A frame arrived from a logged-in connection whose key is connected more than once. */
  noteActivity(connection: ClientConnection): void;
  route(source: ClientConnection, dstKey: Uint8Array, packet: Uint8Array): void;
  forwardIn(source: ClientConnection, srcKey: Uint8Array, dstKey: Uint8Array, packet: Uint8Array): void;
  addWatcher(connection: ClientConnection): void;
  closePeer(peerKey: Uint8Array): void;
  /** Called once, when the stream is gone, whether or not the connection logged in. */
  unregister(connection: ClientConnection): void;
}

export interface ClientConnectionOptions {
  readonly sendQueueLength: number;
  readonly handshakeTimeoutMs: number;
  readonly keepAliveIntervalMs: number;
  /** Interval of relay-initiated pings (the RTT histogram); 0 disables them. */
  readonly pingIntervalMs: number;
  readonly writeTimeoutMs: number;
  /** Mesh peers get longer (derper's privilegedWriteTimeout). */
  readonly meshWriteTimeoutMs: number;
  /** NotePreferred changes within this long of login are not home moves (derper: 5 s). */
  readonly homeMoveGraceMs: number;
}

/** Where the stream came from; never used as a metric label. */
export interface ConnectionOrigin {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly websocket: boolean;
}

/** Key id of a node public key: its 32 bytes as a latin1 string, cheap to make and to hash. */
export function keyId(publicKey: Uint8Array): string {
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1');
}

/** The derper protocol version this relay announces in ServerInfo. */
const SERVER_PROTOCOL_VERSION = 2;
/** A ping is not answered while this many control frames already wait for a client's writer. */
const MAX_CONTROL_BACKLOG_FOR_PONG = 8;

/** How long a closing stream may take to deliver its last frames at shutdown. */
const SHUTDOWN_LINGER_MS = 1_000;

/** PeerGone(NotHere) replies per client: a burst of 3, then one per second (derper's peerGoneLim). */
const NOT_HERE_BURST = 3;
const NOT_HERE_INTERVAL_MS = 1000;

/** The relay side of one DERP stream: login, the read loop and one FrameWriter. */
export class ClientConnection {
  readonly stream: Duplex;
  readonly origin: ConnectionOrigin;
  /** Key ids of clients whose packets this client received; it hears when they leave the region. */
  readonly sawSources = new Set<string>();
  /** Set by the registry while the key is connected more than once. */
  isDuplicate = false;
  readonly #router: ConnectionRouter;
  readonly #options: ClientConnectionOptions;
  readonly #cells: RelayCells;
  readonly #reader = new FrameReader();
  readonly #writer: FrameWriter;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #publicKey: Uint8Array | undefined;
  #id = '';
  #clientInfo: ClientInfo | undefined;
  #canMesh = false;
  #preferred = false;
  #loggedInAt = 0;
  #closeCause: CloseCause | undefined;
  #outstandingPing: Uint8Array | undefined;
  #pingSentAt = 0;
  readonly #lastDestination = Buffer.alloc(32);
  #lastDestinationId = keyId(new Uint8Array(32));
  #readAtMs = 0;
  #notHereTokens = NOT_HERE_BURST;
  #notHereRefilledAt = 0;

  constructor(
    stream: Duplex,
    origin: ConnectionOrigin,
    router: ConnectionRouter,
    options: ClientConnectionOptions,
  ) {
    this.stream = stream;
    this.origin = origin;
    this.#router = router;
    this.#options = options;
    const cells = router.cells;
    this.#cells = cells;
    this.#writer = new FrameWriter(stream, {
      queueLength: options.sendQueueLength,
      writeTimeoutMs: options.writeTimeoutMs,
      queueWait: cells.queueWait,
      onPacketsWritten: (packets, bytes) => {
        cells.packetsSent.add(packets);
        cells.bytesSent.add(bytes);
      },
      onWriteTimeout: () => this.close('write_timeout'),
    });
  }

  start(): void {
    this.stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.stream.on('error', () => this.close(this.registered ? 'write_error' : 'disconnected'));
    this.stream.on('close', () => this.close('disconnected'));
    this.stream.on('end', () => this.close('disconnected'));
    this.#handshakeTimer = setTimeout(() => this.close('handshake'), this.#options.handshakeTimeoutMs);
    this.#handshakeTimer.unref();
    // Written at once, not queued: a fast-start client's login may already be in flight, and if
    // it fails the client should still see which key it met (derper sends it first, too).
    this.stream.write(serverKeyFrame(this.#router.serverKeys.publicKey));
  }

  /** True once the client info frame has been opened and admitted. */
  get registered(): boolean {
    return this.#publicKey !== undefined;
  }

  /** The client's node key; undefined until login. */
  get publicKey(): Uint8Array | undefined {
    return this.#publicKey;
  }

  /** `keyId(publicKey)`; empty until login. */
  get id(): string {
    return this.#id;
  }

  get clientInfo(): ClientInfo | undefined {
    return this.#clientInfo;
  }

  /** Whether the client presented the mesh key. */
  get canMesh(): boolean {
    return this.#canMesh;
  }

  /** The client's last NotePreferred: whether this relay is its home. */
  get preferred(): boolean {
    return this.#preferred;
  }

  /** Why the connection ended; undefined while it is open. */
  get closeCause(): CloseCause | undefined {
    return this.#closeCause;
  }

  /**
   * When the frames being handled were read (performance.now(), ms): taken once per chunk, and
   * used as the enqueue time of every packet in it.
   */
  get readAtMs(): number {
    return this.#readAtMs;
  }

  get queuedPackets(): number {
    return this.#writer.queuedPackets;
  }

  /** Queues a packet from `srcKey` for this client; counts a head drop. */
  enqueuePacket(srcKey: Uint8Array, packet: Uint8Array, nowMs: number, disco: boolean): void {
    const dropped = this.#cells.packetsDropped;
    if (this.#closeCause !== undefined) {
      dropped.queue_tail.add();
      return;
    }
    if (this.#writer.enqueuePacket(FrameType.RecvPacket, srcKey, undefined, packet, nowMs, disco)) {
      dropped.queue_head.add();
    }
  }

  /**
   * `keyId(dstKey)`, remembered for the last destination: a client usually sends runs of packets
   * to one peer, and comparing 32 bytes is cheaper than making the id string (measured: -12% CPU
   * per packet at 100 clients).
   */
  destinationId(dstKey: Uint8Array): string {
    const last = this.#lastDestination;
    if (Buffer.compare(last, dstKey) !== 0) {
      last.set(dstKey);
      this.#lastDestinationId = keyId(dstKey);
    }
    return this.#lastDestinationId;
  }

  /**
   * Stops reading, after the frame being handled, until the returned function is called: the
   * packets this client sends cannot go anywhere yet. Frames already read wait, unparsed.
   */
  pauseReading(): () => void {
    this.stream.pause();
    this.#reader.pause();
    return () => {
      if (this.#closeCause !== undefined || !this.#reader.paused) return;
      this.stream.resume();
      this.#feed(() => this.#reader.resume(this.#onFrame));
    };
  }

  /** Whether the relay may answer one more undeliverable disco packet with PeerGone(NotHere). */
  takeNotHereToken(nowMs: number): boolean {
    const refill = Math.floor((nowMs - this.#notHereRefilledAt) / NOT_HERE_INTERVAL_MS);
    if (refill > 0) {
      this.#notHereTokens = Math.min(NOT_HERE_BURST, this.#notHereTokens + refill);
      this.#notHereRefilledAt = nowMs;
    }
    if (this.#notHereTokens === 0) return false;
    this.#notHereTokens--;
    return true;
  }

  enqueueControl(frame: Uint8Array): void {
    if (this.#closeCause === undefined) this.#writer.enqueueControl(frame);
  }

  close(cause: CloseCause): void {
    if (this.#closeCause !== undefined) return;
    this.#closeCause = cause;
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#keepAliveTimer);
    clearInterval(this.#pingTimer);
    const lost = this.#writer.close();
    const reason = cause === 'write_error' || cause === 'write_timeout' ? 'write_error' : 'gone_disconnected';
    this.#cells.packetsDropped[reason].add(lost);
    this.#cells.disconnects[cause].add();
    if (cause === 'server_close') {
      // Let what was written (a Restarting frame) reach the client; cut it off if it stalls.
      this.stream.end();
      setTimeout(() => this.stream.destroy(), SHUTDOWN_LINGER_MS).unref();
    } else {
      this.stream.destroy();
    }
    this.#router.unregister(this);
  }

  /**
   * Closes for shutdown: a logged-in client first gets `restartingFrame` (derp's Restarting: when
   * to reconnect and for how long to keep trying), written in the writer's next flush.
   */
  shutdown(restartingFrame: Uint8Array): void {
    if (this.#closeCause !== undefined) return;
    if (this.registered && !this.#canMesh) this.#writer.enqueueControl(restartingFrame);
    // The writer's flush was scheduled first; this runs after it.
    setImmediate(() => this.close('server_close'));
  }

  #onData(chunk: Buffer): void {
    this.#feed(() => this.#reader.push(chunk, this.#onFrame));
  }

  #feed(read: () => Error | undefined): void {
    if (this.#closeCause !== undefined) return;
    this.#readAtMs = performance.now();
    try {
      if (read() !== undefined) this.#closeMalformed();
    } catch {
      this.#closeMalformed();
    }
  }

  #closeMalformed(): void {
    this.close(this.registered ? 'malformed' : 'handshake');
  }

  readonly #onFrame = (frameType: number, payload: Uint8Array): void => {
    if (this.#closeCause !== undefined) return;
    if (!this.registered) {
      this.#login(frameType, payload);
      return;
    }
    if (this.isDuplicate) this.#router.noteActivity(this);
    this.#handleFrame(frameType, payload);
  };

  #login(frameType: number, payload: Uint8Array): void {
    if (frameType !== FrameType.ClientInfo) {
      this.close('handshake');
      return;
    }
    let opened: ReturnType<typeof openClientInfo>;
    try {
      opened = openClientInfo(this.#router.serverKeys, payload);
    } catch {
      this.close('handshake');
      return;
    }
    clearTimeout(this.#handshakeTimer);
    const admission = this.#router.admit(opened.clientPublic, opened.info);
    if (admission === 'refused') {
      this.#cells.admissionRefusals.add();
      this.close('refused');
      return;
    }
    this.#canMesh = admission === 'mesh';
    this.#publicKey = opened.clientPublic;
    this.#id = keyId(opened.clientPublic);
    this.#clientInfo = opened.info;
    this.#loggedInAt = performance.now();
    this.#writer.enqueueControl(
      sealServerInfo(this.#router.serverKeys, opened.clientPublic, {
        version: SERVER_PROTOCOL_VERSION,
        tokenBucketBytesPerSecond: 0,
        tokenBucketBytesBurst: 0,
      }),
    );
    this.#keepAliveTimer = setInterval(
      () => this.enqueueControl(encodeKeepAlive()),
      this.#options.keepAliveIntervalMs,
    );
    this.#keepAliveTimer.unref();
    if (this.#options.pingIntervalMs > 0 && opened.info.canAckPings !== false) {
      this.#pingTimer = setInterval(() => this.#sendPing(), this.#options.pingIntervalMs);
      this.#pingTimer.unref();
    }
    this.#router.register(this);
  }

  #handleFrame(frameType: number, payload: Uint8Array): void {
    switch (frameType) {
      case FrameType.SendPacket: {
        const { dstKey, packet } = decodeSendPacket(payload);
        this.#router.route(this, dstKey, packet);
        return;
      }
      case FrameType.Ping:
        this.#answerPing(decodePing(payload));
        return;
      case FrameType.Pong:
        this.#notePong(decodePong(payload));
        return;
      case FrameType.NotePreferred:
        this.#setPreferred(decodeNotePreferred(payload));
        return;
      case FrameType.ForwardPacket:
      case FrameType.WatchConns:
      case FrameType.ClosePeer:
        this.#handleMeshFrame(frameType, payload);
        return;
      case FrameType.KeepAlive:
        return;
      default:
        this.#cells.unknownFrames.add();
    }
  }

  /** Frames only mesh peers may send; from anyone else they close the connection, as in derper. */
  #handleMeshFrame(frameType: number, payload: Uint8Array): void {
    if (!this.#canMesh) {
      this.close('malformed');
      return;
    }
    if (frameType === FrameType.ForwardPacket) {
      const { srcKey, dstKey, packet } = decodeForwardPacket(payload);
      this.#router.forwardIn(this, srcKey, dstKey, packet);
    } else if (frameType === FrameType.WatchConns) {
      decodeWatchConns(payload);
      this.#router.addWatcher(this);
    } else {
      this.#router.closePeer(decodeClosePeer(payload));
    }
  }

  /** derper keeps one pong slot; a client that pings faster than it reads loses the extra pongs. */
  #answerPing(data: Uint8Array): void {
    if (this.#writer.queuedControlFrames >= MAX_CONTROL_BACKLOG_FOR_PONG) return;
    this.enqueueControl(encodePong(data));
  }

  #sendPing(): void {
    if (this.#outstandingPing !== undefined) return;
    const data = new Uint8Array(PING_DATA_LENGTH);
    randomFillSync(data);
    this.#outstandingPing = data;
    this.#pingSentAt = performance.now();
    this.enqueueControl(encodePing(data));
  }

  #notePong(data: Uint8Array): void {
    const expected = this.#outstandingPing;
    if (expected === undefined || !Buffer.from(data).equals(Buffer.from(expected))) return;
    this.#outstandingPing = undefined;
    this.#cells.pingRtt.record((performance.now() - this.#pingSentAt) / 1000);
  }

  #setPreferred(preferred: boolean): void {
    if (preferred === this.#preferred) return;
    this.#preferred = preferred;
    const cells = this.#cells;
    cells.homeConnections.add(preferred ? 1 : -1);
    if (performance.now() - this.#loggedInAt < this.#options.homeMoveGraceMs) return;
    if (preferred) cells.homeMovesIn.add();
    else cells.homeMovesOut.add();
  }
}
