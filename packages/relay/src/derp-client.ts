import type { Duplex } from 'node:stream';
import { ConfigError, SwitchyardError } from '@switchyard/telemetry';
import nacl from 'tweetnacl';
import {
  decodeHealth,
  decodePeerGone,
  decodePing,
  decodePong,
  decodeRecvPacket,
  encodePing,
  encodePong,
  encodeSendPacket,
  FrameType,
  PING_DATA_LENGTH,
} from './codec.ts';
import { type DerpTlsOptions, derpTarget, describeTarget, openDerpStream } from './derp-transport.ts';
import { FrameReader } from './frame-reader.ts';
import {
  type ClientInfo,
  openServerInfo,
  parseServerKey,
  type ServerInfo,
  sealClientInfo,
} from './handshake.ts';
import type { NodeKeyPair } from './keys.ts';

export interface DerpClientOptions {
  /**
   * The relay's URL: `http://host:port/derp` or `https://...` upgrades with `Upgrade: DERP` as
   * derphttp does; `ws://host:port/derp` or `wss://...` speaks DERP in binary WebSocket messages
   * (subprotocol `derp`). Give either this or `host` and `port`.
   */
  readonly url?: string;
  /** Raw TCP, DERP from the first byte (`RelayServer.listen`): the relay's host. */
  readonly host?: string;
  /** Raw TCP: the relay's port. */
  readonly port?: number;
  /**
   * http(s) URLs only, and only with `serverKey` pinned: send `Derp-Fast-Start: 1` and the login
   * behind the request, without waiting for a 101 (derper then sends no HTTP reply). Default false.
   */
  readonly fastStart?: boolean;
  /** Certificate checks for https:// and wss:// URLs. */
  readonly tls?: DerpTlsOptions;
  /** This node's key pair; the relay routes packets addressed to its public key here. */
  readonly keys: NodeKeyPair;
  /** Pins the relay's public key: login fails if the server presents another. Default: trust any. */
  readonly serverKey?: Uint8Array;
  /** Time allowed for connecting, any HTTP or WebSocket upgrade, and login, in ms. Default 10 000. */
  readonly handshakeTimeoutMs?: number;
  /** Received packets buffered while nobody iterates; beyond this the oldest is dropped. Default 1024. */
  readonly receiveQueueLength?: number;
  /** Called when the relay reports that a peer this client sent to has left. */
  readonly onPeerGone?: (peerKey: Uint8Array, reason: number) => void;
  /** Called with the relay's health problem text; `''` means healthy again. */
  readonly onHealth?: (problem: string) => void;
}

export interface ReceivedPacket {
  readonly source: Uint8Array;
  readonly packet: Uint8Array;
}

const CLIENT_INFO: ClientInfo = { version: 2, meshKey: '', canAckPings: true, isProber: false };

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

function closedError(): SwitchyardError {
  return new SwitchyardError('SWY_ERR_DERP_CLOSED', 'DERP client connection is closed; connect again');
}

function checkReceiveQueueLength(length: number): number {
  if (!Number.isSafeInteger(length) || length < 1) {
    throw new ConfigError(
      'receiveQueueLength',
      `DERP client receiveQueueLength is ${length}; it must be a positive integer`,
    );
  }
  return length;
}

/**
 * A DERP client speaking the login of Tailscale's derp_client.go over raw TCP, HTTP upgrade or
 * WebSocket (see `url`). Received packets come out of `receive()` or
 * `for await (const { source, packet } of client)`.
 */
export class DerpClient {
  readonly publicKey: Uint8Array;
  /** Packets dropped because the receive buffer was full. */
  packetsDropped = 0;

  readonly #socket: Duplex;
  readonly #options: DerpClientOptions;
  readonly #receiveQueueLength: number;
  readonly #reader = new FrameReader();
  readonly #received: ReceivedPacket[] = [];
  readonly #receivers: Pending<ReceivedPacket>[] = [];
  readonly #pings = new Map<string, Pending<void>>();
  readonly #closed: Promise<void>;
  #login: Pending<void> | undefined;
  #serverKey: Uint8Array | undefined;
  #serverInfo: ServerInfo | undefined;
  /** True once the client info frame went out (fast start sends it before the server key arrives). */
  #clientInfoSent: boolean;
  #isClosed = false;

  private constructor(
    socket: Duplex,
    options: DerpClientOptions,
    login: Pending<void>,
    clientInfoSent: boolean,
  ) {
    this.#socket = socket;
    this.#options = options;
    this.#login = login;
    this.#clientInfoSent = clientInfoSent;
    this.publicKey = options.keys.publicKey;
    this.#receiveQueueLength = checkReceiveQueueLength(options.receiveQueueLength ?? 1024);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    // The fast-start transport paused the socket after peeking at its first chunk.
    socket.resume();
    socket.on('error', (error) => this.#fail(error));
    // A WebSocket stream ends without closing when the server closes; end it here too.
    socket.once('end', () => socket.destroy());
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.#fail(closedError()));
  }

  /**
   * Connects (TCP, HTTP upgrade or WebSocket, after `url`) and logs in; rejects on a refused
   * upgrade (`DerpUpgradeError`), a handshake failure, a pinned-key mismatch, or the timeout.
   */
  static async connect(options: DerpClientOptions): Promise<DerpClient> {
    const target = derpTarget(options);
    checkReceiveQueueLength(options.receiveQueueLength ?? 1024);
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(
        new SwitchyardError(
          'SWY_ERR_DERP_TIMEOUT',
          `DERP connect and login to ${describeTarget(target)} took over ${timeoutMs} ms; check the address`,
        ),
      );
    }, timeoutMs);
    try {
      const fastStart = target.kind === 'http' && target.fastStart;
      const preamble = fastStart ? sealClientInfo(options.keys, options.serverKey!, CLIENT_INFO) : undefined;
      const socket = await openDerpStream(target, { signal: deadline.signal, tls: options.tls, preamble });
      let client: DerpClient | undefined;
      const login = new Promise<void>((resolve, reject) => {
        client = new DerpClient(socket, options, { resolve, reject }, fastStart);
      });
      deadline.signal.addEventListener('abort', () => socket.destroy(deadline.signal.reason as Error));
      await login;
      return client!;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The relay's public key, as presented at login. */
  get serverKey(): Uint8Array {
    return this.#serverKey!;
  }

  get serverInfo(): ServerInfo {
    return this.#serverInfo!;
  }

  /** Resolves once the socket has closed, for whatever reason. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** Queues `packet` for `dstKey`; returns false when the socket is backed up (wait for drain). */
  send(dstKey: Uint8Array, packet: Uint8Array): boolean {
    if (this.#isClosed) throw closedError();
    return this.#socket.write(encodeSendPacket(dstKey, packet));
  }

  /** Sends a ping with random data; resolves when the matching pong arrives. */
  ping(): Promise<void> {
    if (this.#isClosed) return Promise.reject(closedError());
    const data = nacl.randomBytes(PING_DATA_LENGTH);
    const key = Buffer.from(data).toString('hex');
    return new Promise((resolve, reject) => {
      this.#pings.set(key, { resolve, reject });
      this.#socket.write(encodePing(data));
    });
  }

  /** The next received packet; rejects once the connection is closed and the buffer is empty. */
  receive(): Promise<ReceivedPacket> {
    const next = this.#received.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.#isClosed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => this.#receivers.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ReceivedPacket> {
    while (this.#received.length > 0 || !this.#isClosed) {
      try {
        yield await this.receive();
      } catch (error) {
        if (this.#isClosed) return;
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    this.#socket.destroy();
    await this.#closed;
  }

  #onData(chunk: Buffer): void {
    try {
      const failure = this.#reader.push(chunk, this.#onFrame);
      if (failure !== undefined) this.#socket.destroy(failure);
    } catch (error) {
      this.#socket.destroy(error as Error);
    }
  }

  readonly #onFrame = (frameType: number, payload: Uint8Array): void => {
    if (this.#login !== undefined) {
      this.#handleLogin(frameType, payload);
      return;
    }
    switch (frameType) {
      case FrameType.RecvPacket: {
        const { srcKey, packet } = decodeRecvPacket(payload);
        // Copies as plain Uint8Arrays: the payload aliases the socket chunk, a Buffer.
        this.#deliver({ source: new Uint8Array(srcKey), packet: new Uint8Array(packet) });
        return;
      }
      case FrameType.Pong: {
        const key = Buffer.from(decodePong(payload)).toString('hex');
        this.#pings.get(key)?.resolve();
        this.#pings.delete(key);
        return;
      }
      case FrameType.Ping:
        // The client declares CanAckPings, so it answers the relay's pings, as Tailscale's does.
        this.#socket.write(encodePong(decodePing(payload)));
        return;
      case FrameType.PeerGone: {
        const { peerKey, reason } = decodePeerGone(payload);
        this.#options.onPeerGone?.(new Uint8Array(peerKey), reason);
        return;
      }
      case FrameType.Health:
        this.#options.onHealth?.(decodeHealth(payload));
        return;
      default:
      // Keep-alives and frame types this client does not use are ignored, as derp_client.go does.
    }
  };

  #handleLogin(frameType: number, payload: Uint8Array): void {
    if (this.#serverKey === undefined) {
      if (frameType !== FrameType.ServerKey) throw this.#unexpected(frameType, 'ServerKey');
      const serverKey = parseServerKey(payload);
      const pinned = this.#options.serverKey;
      if (pinned !== undefined && Buffer.compare(pinned, serverKey) !== 0) {
        throw new SwitchyardError(
          'SWY_ERR_DERP_SERVER_KEY',
          'DERP server presented a public key other than the pinned serverKey; check the relay address or the pin',
        );
      }
      this.#serverKey = new Uint8Array(serverKey);
      if (!this.#clientInfoSent)
        this.#socket.write(sealClientInfo(this.#options.keys, serverKey, CLIENT_INFO));
      this.#clientInfoSent = true;
      return;
    }
    if (frameType !== FrameType.ServerInfo) throw this.#unexpected(frameType, 'ServerInfo');
    this.#serverInfo = openServerInfo(this.#options.keys, this.#serverKey, payload);
    const login = this.#login!;
    this.#login = undefined;
    login.resolve();
  }

  #unexpected(frameType: number, wanted: string): SwitchyardError {
    return new SwitchyardError(
      'SWY_ERR_DERP_PROTOCOL',
      `DERP login expected a ${wanted} frame, got type 0x${frameType.toString(16)}; is this a DERP server?`,
    );
  }

  #deliver(received: ReceivedPacket): void {
    const receiver = this.#receivers.shift();
    if (receiver !== undefined) {
      receiver.resolve(received);
      return;
    }
    if (this.#received.length >= this.#receiveQueueLength) {
      this.#received.shift();
      this.packetsDropped++;
    }
    this.#received.push(received);
  }

  #fail(error: Error): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#login?.reject(error);
    this.#login = undefined;
    for (const pending of this.#receivers.splice(0)) pending.reject(closedError());
    for (const pending of this.#pings.values()) pending.reject(closedError());
    this.#pings.clear();
  }
}
