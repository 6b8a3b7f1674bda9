import { connect as connectTcp, type Socket } from 'node:net';
import { ConfigError, SwitchyardError } from '@switchyard/telemetry';
import nacl from 'tweetnacl';
import {
  decodeHealth,
  decodePeerGone,
  decodePong,
  decodeRecvPacket,
  encodePing,
  encodeSendPacket,
  FrameReader,
  FrameType,
  PING_DATA_LENGTH,
} from './codec.ts';
import {
  type ClientInfo,
  openServerInfo,
  parseServerKey,
  type ServerInfo,
  sealClientInfo,
} from './handshake.ts';
import type { NodeKeyPair } from './keys.ts';

export interface DerpClientOptions {
  readonly host: string;
  readonly port: number;
  /** This node's key pair; the relay routes packets addressed to its public key here. */
  readonly keys: NodeKeyPair;
  /** Pins the relay's public key: login fails if the server presents another. Default: trust any. */
  readonly serverKey?: Uint8Array;
  /** Time allowed for TCP connect plus login, in ms. Default 10 000. */
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

/**
 * A DERP client over TCP, speaking the login of Tailscale's derp_client.go. Received packets
 * come out of `receive()` or `for await (const { source, packet } of client)`.
 */
export class DerpClient {
  readonly publicKey: Uint8Array;
  /** Packets dropped because the receive buffer was full. */
  packetsDropped = 0;

  readonly #socket: Socket;
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
  #isClosed = false;

  private constructor(socket: Socket, options: DerpClientOptions, login: Pending<void>) {
    this.#socket = socket;
    this.#options = options;
    this.#login = login;
    this.publicKey = options.keys.publicKey;
    this.#receiveQueueLength = options.receiveQueueLength ?? 1024;
    if (!Number.isSafeInteger(this.#receiveQueueLength) || this.#receiveQueueLength < 1) {
      throw new ConfigError(
        'receiveQueueLength',
        `DERP client receiveQueueLength is ${this.#receiveQueueLength}; it must be a positive integer`,
      );
    }
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => this.#fail(error));
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.#fail(closedError()));
  }

  /** Connects and logs in; rejects on a handshake failure, a pinned-key mismatch, or the timeout. */
  static async connect(options: DerpClientOptions): Promise<DerpClient> {
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
    const socket = connectTcp({ host: options.host, port: options.port });
    let client: DerpClient | undefined;
    const login = new Promise<void>((resolve, reject) => {
      client = new DerpClient(socket, options, { resolve, reject });
    });
    const timer = setTimeout(() => {
      socket.destroy(
        new SwitchyardError(
          'SWY_ERR_DERP_TIMEOUT',
          `DERP login to ${options.host}:${options.port} took over ${timeoutMs} ms; check the address`,
        ),
      );
    }, timeoutMs);
    try {
      await login;
    } finally {
      clearTimeout(timer);
    }
    return client!;
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
      this.#socket.write(sealClientInfo(this.#options.keys, serverKey, CLIENT_INFO));
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
