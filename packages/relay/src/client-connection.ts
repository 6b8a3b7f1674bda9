import type { Socket } from 'node:net';
import {
  decodeNotePreferred,
  decodePing,
  decodeSendPacket,
  encodeKeepAlive,
  encodePong,
  encodeRecvPacket,
  FRAME_HEADER_LENGTH,
  FrameReader,
  FrameType,
  KEY_LENGTH,
} from './codec.ts';
import { type ClientInfo, openClientInfo, sealServerInfo, serverKeyFrame } from './handshake.ts';
import type { NodeKeyPair } from './keys.ts';
import type { RelayStats } from './relay-server.ts';

/** What a connection needs from the server that owns it: the registry and the counters. */
export interface ConnectionRouter {
  readonly stats: RelayStats;
  readonly serverKeys: NodeKeyPair;
  /** The handshake succeeded; the router may replace an older connection for the same key. */
  register(connection: ClientConnection): void;
  route(source: ClientConnection, dstKey: Uint8Array, packet: Uint8Array): void;
  /** Called once, when the socket is gone, whether or not the connection was registered. */
  unregister(connection: ClientConnection): void;
}

export interface ClientConnectionOptions {
  readonly sendQueueLength: number;
  readonly handshakeTimeoutMs: number;
  readonly keepAliveIntervalMs: number;
}

/** Why a connection ended; a closed set. */
export type CloseCause =
  | 'disconnected'
  | 'replaced'
  | 'malformed'
  | 'handshake'
  | 'write_error'
  | 'server_close';

/** Map key for a node public key. */
export function keyId(publicKey: Uint8Array): string {
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex');
}

/** The derper protocol version this server announces in ServerInfo. */
const SERVER_PROTOCOL_VERSION = 2;

/**
 * The server side of one client: login, the read loop, and one writer draining a bounded send
 * queue. Control frames (pong, keep-alive, peer gone) go ahead of packets, as derper's sendLoop
 * prefers them; packets beyond `sendQueueLength` push out the oldest.
 */
export class ClientConnection {
  readonly socket: Socket;
  /** Key ids of clients that sent packets here; they hear PeerGone when this client leaves. */
  readonly recentSenders = new Set<string>();

  readonly #router: ConnectionRouter;
  readonly #options: ClientConnectionOptions;
  readonly #reader = new FrameReader();
  readonly #packetQueue: Uint8Array[] = [];
  readonly #controlQueue: Uint8Array[] = [];
  #waitingForDrain = false;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  #publicKey: Uint8Array | undefined;
  #id = '';
  #clientInfo: ClientInfo | undefined;
  #preferred = false;
  #closeCause: CloseCause | undefined;

  constructor(socket: Socket, router: ConnectionRouter, options: ClientConnectionOptions) {
    this.socket = socket;
    this.#router = router;
    this.#options = options;
  }

  start(): void {
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.socket.on('error', () => this.close('write_error'));
    this.socket.on('close', () => this.close('disconnected'));
    this.#handshakeTimer = setTimeout(() => this.#failLogin(), this.#options.handshakeTimeoutMs);
    this.#handshakeTimer.unref();
    this.socket.write(serverKeyFrame(this.#router.serverKeys.publicKey));
  }

  /** True once the client info frame has been opened. */
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

  /** The client's last NotePreferred: whether this relay is its home. */
  get preferred(): boolean {
    return this.#preferred;
  }

  /** Why the connection ended; undefined while it is open. */
  get closeCause(): CloseCause | undefined {
    return this.#closeCause;
  }

  /** Packets waiting for the writer. */
  get queuedPackets(): number {
    return this.#packetQueue.length;
  }

  enqueuePacket(srcKey: Uint8Array, packet: Uint8Array): void {
    const drops = this.#router.stats.packetsDropped;
    if (this.#closeCause !== undefined) {
      drops.queue_tail++;
      return;
    }
    if (this.#packetQueue.length >= this.#options.sendQueueLength) {
      this.#packetQueue.shift();
      drops.queue_head++;
    }
    this.#packetQueue.push(encodeRecvPacket(srcKey, packet));
    this.#flush();
  }

  /**
   * Control frames are few per client; a client that pings without reading loses the extra
   * pongs, as derper's one-slot pong channel drops them.
   */
  enqueueControl(frame: Uint8Array): void {
    if (this.#closeCause !== undefined) return;
    if (this.#controlQueue.length >= this.#options.sendQueueLength) return;
    this.#controlQueue.push(frame);
    this.#flush();
  }

  close(cause: CloseCause): void {
    if (this.#closeCause !== undefined) return;
    this.#closeCause = cause;
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#keepAliveTimer);
    const lost = this.#packetQueue.length;
    this.#packetQueue.length = 0;
    this.#controlQueue.length = 0;
    this.#router.stats.packetsDropped[cause === 'replaced' ? 'duplicate_client' : 'write_error'] += lost;
    this.socket.destroy();
    this.#router.unregister(this);
  }

  #flush(): void {
    while (!this.#waitingForDrain && this.#closeCause === undefined) {
      const control = this.#controlQueue.shift();
      const frame = control ?? this.#packetQueue.shift();
      if (frame === undefined) return;
      if (control === undefined) {
        this.#router.stats.packetsSent++;
        this.#router.stats.bytesSent += frame.length - FRAME_HEADER_LENGTH - KEY_LENGTH;
      }
      if (!this.socket.write(frame)) {
        this.#waitingForDrain = true;
        this.socket.once('drain', this.#onDrain);
      }
    }
  }

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#flush();
  };

  #onData(chunk: Buffer): void {
    if (this.#closeCause !== undefined) return;
    try {
      const failure = this.#reader.push(chunk, this.#onFrame);
      if (failure !== undefined) this.#closeMalformed();
    } catch {
      this.#closeMalformed();
    }
  }

  #closeMalformed(): void {
    if (!this.registered) {
      this.#failLogin();
      return;
    }
    this.#router.stats.malformedFrames++;
    this.close('malformed');
  }

  readonly #onFrame = (frameType: number, payload: Uint8Array): void => {
    if (this.#closeCause !== undefined) return;
    if (!this.registered) {
      this.#login(frameType, payload);
      return;
    }
    this.#handleFrame(frameType, payload);
  };

  #login(frameType: number, payload: Uint8Array): void {
    if (frameType !== FrameType.ClientInfo) {
      this.#failLogin();
      return;
    }
    let opened: ReturnType<typeof openClientInfo>;
    try {
      opened = openClientInfo(this.#router.serverKeys, payload);
    } catch {
      this.#failLogin();
      return;
    }
    clearTimeout(this.#handshakeTimer);
    this.#publicKey = opened.clientPublic;
    this.#id = keyId(opened.clientPublic);
    this.#clientInfo = opened.info;
    this.enqueueControl(
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
    this.#router.register(this);
  }

  /** A missing, late, or unopenable client info frame. */
  #failLogin(): void {
    this.#router.stats.handshakeFailures++;
    this.close('handshake');
  }

  #handleFrame(frameType: number, payload: Uint8Array): void {
    const stats = this.#router.stats;
    switch (frameType) {
      case FrameType.SendPacket: {
        const { dstKey, packet } = decodeSendPacket(payload);
        stats.packetsReceived++;
        stats.bytesReceived += packet.length;
        this.#router.route(this, dstKey, packet);
        return;
      }
      case FrameType.Ping:
        this.enqueueControl(encodePong(decodePing(payload)));
        return;
      case FrameType.KeepAlive:
        return;
      case FrameType.NotePreferred:
        this.#preferred = decodeNotePreferred(payload);
        return;
      default:
        // Mesh frames (ForwardPacket, WatchConns, ClosePeer) land here too until meshing exists.
        stats.unknownFrames++;
    }
  }
}
