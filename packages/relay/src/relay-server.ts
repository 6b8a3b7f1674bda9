import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { ConfigError } from '@switchyard/telemetry';
import { ClientConnection, type ConnectionRouter, keyId } from './client-connection.ts';
import { encodePeerGone, PeerGoneReason } from './codec.ts';
import { generateNodeKeyPair, type NodeKeyPair } from './keys.ts';

/** Why a packet was not delivered; a closed set, safe as a metric label (derper's dropReason*). */
export type DropReason = 'unknown_dest' | 'queue_head' | 'queue_tail' | 'write_error' | 'duplicate_client';

export const DROP_REASONS: readonly DropReason[] = Object.freeze([
  'unknown_dest',
  'queue_head',
  'queue_tail',
  'write_error',
  'duplicate_client',
]);

/**
 * The relay's counters as plain fields, every one zero-initialised; the hot path only increments.
 * Packet byte counts are packet contents, without frame headers or keys, as derper counts them.
 *
 * Drop reasons: `unknown_dest` no client holds the destination key; `queue_head` the destination's
 * send queue was full and its oldest packet was dropped; `queue_tail` the destination was closing
 * when the packet arrived; `write_error` the packet was still queued when its connection ended
 * (socket error or disconnect); `duplicate_client` it was queued on a connection that a newer one
 * for the same key replaced.
 */
export class RelayStats {
  /** Sockets handed to the server, before login. */
  accepts = 0;
  /** Logged-in clients now registered. */
  currentClients = 0;
  /** Logins for a key that already had a connection (the older one is closed). */
  duplicateClients = 0;
  /** Sockets closed before login: no client info in time, wrong first frame, or a box that does not open. */
  handshakeFailures = 0;
  packetsReceived = 0;
  bytesReceived = 0;
  packetsSent = 0;
  bytesSent = 0;
  /** Frames of a type this server does not handle from clients, skipped. */
  unknownFrames = 0;
  /** Frames that broke the wire format; each closed its connection. */
  malformedFrames = 0;
  readonly packetsDropped: Record<DropReason, number> = {
    unknown_dest: 0,
    queue_head: 0,
    queue_tail: 0,
    write_error: 0,
    duplicate_client: 0,
  };
}

export interface RelayServerOptions {
  /** The server's node key. Default: a fresh key pair. */
  readonly keys?: NodeKeyPair;
  /** Packets held per client while its socket is backed up. Default 32 (derper's perClientSendQueueDepth). */
  readonly sendQueueLength?: number;
  /** Time a new socket has to send its client info frame, in ms. Default 10 000. */
  readonly handshakeTimeoutMs?: number;
  /** Interval between keep-alive frames to each client, in ms. Default 60 000 (derper's keepAlive). */
  readonly keepAliveIntervalMs?: number;
}

function positiveInteger(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(field, `relay option ${field} is ${value}; it must be a positive integer`);
  }
  return value;
}

/**
 * A DERP relay over raw byte streams: `handle` takes a socket positioned after any HTTP upgrade;
 * `listen` accepts plain TCP for tests. A newer login for a key replaces the older connection.
 */
export class RelayServer implements ConnectionRouter {
  readonly stats = new RelayStats();
  readonly serverKeys: NodeKeyPair;
  readonly #clients = new Map<string, ClientConnection>();
  readonly #connections = new Set<ClientConnection>();
  readonly #connectionOptions: {
    sendQueueLength: number;
    handshakeTimeoutMs: number;
    keepAliveIntervalMs: number;
  };
  #listener: Server | undefined;

  constructor(options: RelayServerOptions = {}) {
    this.serverKeys = options.keys ?? generateNodeKeyPair();
    this.#connectionOptions = Object.freeze({
      sendQueueLength: positiveInteger('sendQueueLength', options.sendQueueLength ?? 32),
      handshakeTimeoutMs: positiveInteger('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 10_000),
      keepAliveIntervalMs: positiveInteger('keepAliveIntervalMs', options.keepAliveIntervalMs ?? 60_000),
    });
  }

  get publicKey(): Uint8Array {
    return this.serverKeys.publicKey;
  }

  /** The live connection for a public key, if that client is logged in. */
  client(publicKey: Uint8Array): ClientConnection | undefined {
    return this.#clients.get(keyId(publicKey));
  }

  handle(socket: Socket): void {
    this.stats.accepts++;
    socket.setNoDelay(true);
    const connection = new ClientConnection(socket, this, this.#connectionOptions);
    this.#connections.add(connection);
    connection.start();
  }

  /** Accepts plain TCP; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<AddressInfo> {
    const listener = createServer((socket) => this.handle(socket));
    this.#listener = listener;
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => {
        listener.off('error', reject);
        resolve(listener.address() as AddressInfo);
      });
    });
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const connection of this.#connections) connection.close('server_close');
    const listener = this.#listener;
    if (listener === undefined) return;
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }

  register(connection: ClientConnection): void {
    const older = this.#clients.get(connection.id);
    this.#clients.set(connection.id, connection);
    if (older === undefined) {
      this.stats.currentClients++;
      return;
    }
    this.stats.duplicateClients++;
    older.close('replaced');
  }

  route(source: ClientConnection, dstKey: Uint8Array, packet: Uint8Array): void {
    const destination = this.#clients.get(keyId(dstKey));
    if (destination === undefined) {
      this.stats.packetsDropped.unknown_dest++;
      return;
    }
    destination.recentSenders.add(source.id);
    destination.enqueuePacket(source.publicKey!, packet);
  }

  unregister(connection: ClientConnection): void {
    this.#connections.delete(connection);
    if (!connection.registered || this.#clients.get(connection.id) !== connection) return;
    this.#clients.delete(connection.id);
    this.stats.currentClients--;
    if (connection.closeCause === 'server_close') return;
    const gone = encodePeerGone(connection.publicKey!, PeerGoneReason.Disconnected);
    for (const senderId of connection.recentSenders) this.#clients.get(senderId)?.enqueueControl(gone);
  }
}
