import { timingSafeEqual } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConfigError } from '@switchyard/telemetry';
import {
  ClientConnection,
  type ClientConnectionOptions,
  type ConnectionOrigin,
  type ConnectionRouter,
  keyId,
} from './client-connection.ts';
import { ClientSet } from './client-set.ts';
import {
  encodePeerGone,
  encodePeerPresent,
  encodeRestarting,
  PeerGoneReason,
  PeerPresentFlags,
} from './codec.ts';
import { looksLikeDisco } from './disco.ts';
import type { ClientInfo } from './handshake.ts';
import { generateNodeKeyPair, type NodeKeyPair } from './keys.ts';
import { type RelayCells, type RelayMetrics, resolveRelayCells } from './metrics.ts';

/** Something that carries packets to the mesh peer holding a key (an outbound mesh link). */
export interface PacketForwarder {
  /**
   * Queues the packet; the forwarder counts it forwarded out when written, or dropped. Returns
   * false when the link is backed up: the sender should stop until `onceWritable` calls back, as
   * derper's forwarding write blocks the sender's read loop.
   */
  forward(srcKey: Uint8Array, dstKey: Uint8Array, packet: Uint8Array, nowMs: number): boolean;
  /** Calls `callback` once the link takes packets again (or is gone). */
  onceWritable(callback: () => void): void;
}

/** Decides which client keys may log in (the allow-list); mesh peers are not asked. */
export interface ClientAdmission {
  allows(clientPublic: Uint8Array): boolean;
}

export interface RelayServerOptions {
  /** The catalog handles the relay records into (startTelemetry's `metrics`). */
  readonly metrics: RelayMetrics;
  /** The relay's node key. Default: a fresh key pair. */
  readonly keys?: NodeKeyPair;
  /** Packets held per client while its stream is backed up. Default 32 (derper's perClientSendQueueDepth). */
  readonly sendQueueLength?: number;
  /** Time a new stream has to send its client info frame, in ms. Default 10 000 (derper). */
  readonly handshakeTimeoutMs?: number;
  /** Interval between keep-alive frames to each client, in ms. Default 60 000 (derper's KeepAlive). */
  readonly keepAliveIntervalMs?: number;
  /** Interval of relay-initiated pings measuring RTT, in ms; 0 disables. Default 60 000. */
  readonly pingIntervalMs?: number;
  /** How long a client may leave its stream backed up before it is disconnected, in ms. Default 2 000 (derper). */
  readonly writeTimeoutMs?: number;
  /** The same for mesh peers. Default 30 000 (derper's privilegedWriteTimeout). */
  readonly meshWriteTimeoutMs?: number;
  /** NotePreferred changes this soon after login are not counted as home moves, in ms. Default 5 000 (derper). */
  readonly homeMoveGraceMs?: number;
  /** The mesh pre-shared key (64 hex digits, as derper's -mesh-psk-file); unset: no client can mesh. */
  readonly meshKey?: string;
  /** Allow-list of client keys; unset: every key may log in. */
  readonly admission?: ClientAdmission;
}

const MESH_KEY = /^[0-9a-f]{64}$/;

function nonNegativeInteger(field: string, value: number, allowZero = false): number {
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new ConfigError(
      field,
      `relay option ${field} is ${value}; it must be a ${allowZero ? 'non-negative' : 'positive'} integer`,
    );
  }
  return value;
}

/**
 * A DERP relay: the registry of logged-in clients, routing between them, the mesh (watchers and
 * forwarders) and its cells, resolved once and handed to its connections. Streams arrive through
 * `handle` (after an HTTP upgrade or a WebSocket handshake) or, for tests, through `listen` on
 * plain TCP.
 *
 * Duplicate keys follow derper's default policy (last writer is active), in ClientSet.
 */
export class RelayServer implements ConnectionRouter {
  readonly cells: RelayCells;
  readonly serverKeys: NodeKeyPair;
  readonly #serverId: string;
  readonly #clients = new Map<string, ClientSet>();
  readonly #connections = new Set<ClientConnection>();
  readonly #watchers = new Set<ClientConnection>();
  readonly #forwarders = new Map<string, PacketForwarder[]>();
  /** Key id of a source -> local clients that received its packets and hear when it leaves. */
  readonly #peerGoneWatchers = new Map<string, Set<ClientConnection>>();
  readonly #connectionOptions: ClientConnectionOptions;
  readonly #meshKey: Buffer | undefined;
  readonly #admission: ClientAdmission | undefined;
  #listener: Server | undefined;

  constructor(options: RelayServerOptions) {
    this.serverKeys = options.keys ?? generateNodeKeyPair();
    this.#serverId = keyId(this.serverKeys.publicKey);
    this.#admission = options.admission;
    if (options.meshKey !== undefined && !MESH_KEY.test(options.meshKey)) {
      throw new ConfigError(
        'meshKey',
        'the relay mesh key must be 64 lowercase hex digits (openssl rand -hex 32)',
      );
    }
    this.#meshKey = options.meshKey === undefined ? undefined : Buffer.from(options.meshKey);
    this.#connectionOptions = Object.freeze({
      sendQueueLength: nonNegativeInteger('sendQueueLength', options.sendQueueLength ?? 32),
      handshakeTimeoutMs: nonNegativeInteger('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 10_000),
      keepAliveIntervalMs: nonNegativeInteger('keepAliveIntervalMs', options.keepAliveIntervalMs ?? 60_000),
      pingIntervalMs: nonNegativeInteger('pingIntervalMs', options.pingIntervalMs ?? 60_000, true),
      writeTimeoutMs: nonNegativeInteger('writeTimeoutMs', options.writeTimeoutMs ?? 2_000),
      meshWriteTimeoutMs: nonNegativeInteger('meshWriteTimeoutMs', options.meshWriteTimeoutMs ?? 30_000),
      homeMoveGraceMs: nonNegativeInteger('homeMoveGraceMs', options.homeMoveGraceMs ?? 5_000, true),
    });
    const cells = resolveRelayCells(options.metrics);
    this.cells = cells;
    // clients is set at collection, not kept in step on the data path: the sum then has one
    // definition that cannot drift from its parts, and the places that move a key between local
    // and remote stay about those two cells.
    const clients = options.metrics.clients.cell();
    options.metrics.clients.onCollect(() => {
      clients.value = cells.clientsLocal.value + cells.clientsRemote.value;
    });
  }

  get publicKey(): Uint8Array {
    return this.serverKeys.publicKey;
  }

  /** The connection packets for `publicKey` go to now, if that key is logged in here. */
  client(publicKey: Uint8Array): ClientConnection | undefined {
    return this.#clients.get(keyId(publicKey))?.active;
  }

  /** Serves one DERP stream, positioned after any HTTP upgrade. */
  handle(stream: Duplex, origin: ConnectionOrigin): void {
    this.cells.accepts.add();
    const connection = new ClientConnection(stream, origin, this, this.#connectionOptions);
    this.#connections.add(connection);
    connection.start();
  }

  /** Accepts plain TCP (no HTTP); resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<AddressInfo> {
    const listener = createServer({ noDelay: true }, (socket: Socket) =>
      this.handle(socket, {
        remoteAddress: socket.remoteAddress ?? '',
        remotePort: socket.remotePort ?? 0,
        websocket: false,
      }),
    );
    this.#listener = listener;
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => {
        listener.off('error', reject);
        resolve(listener.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops the plain-TCP listener, if any, and closes every connection; clients are first told
   * that the relay is restarting (reconnect in `reconnectInMs`, keep trying for `tryForMs`).
   */
  async close(reconnectInMs = 500, tryForMs = 30_000): Promise<void> {
    const restarting = encodeRestarting(reconnectInMs, tryForMs);
    for (const connection of this.#connections) connection.shutdown(restarting);
    await new Promise((resolve) => setImmediate(resolve));
    const listener = this.#listener;
    if (listener === undefined) return;
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }

  admit(clientPublic: Uint8Array, info: ClientInfo): 'client' | 'mesh' | 'refused' {
    if (this.#isMeshKey(info.meshKey)) return 'mesh';
    if (this.#admission !== undefined && !this.#admission.allows(clientPublic)) return 'refused';
    return 'client';
  }

  #isMeshKey(presented: string): boolean {
    const meshKey = this.#meshKey;
    if (meshKey === undefined || presented.length !== meshKey.length) return false;
    return timingSafeEqual(Buffer.from(presented), meshKey);
  }

  register(connection: ClientConnection): void {
    const cells = this.cells;
    cells.connections.add();
    const existing = this.#clients.get(connection.id);
    if (existing === undefined) {
      this.#clients.set(connection.id, new ClientSet(connection, cells));
      cells.clientsLocal.add();
      if (this.#forwarders.has(connection.id)) cells.clientsRemote.add(-1);
    } else {
      existing.add(connection);
    }
    this.#broadcastPresent(connection);
  }

  noteActivity(connection: ClientConnection): void {
    this.#clients.get(connection.id)?.noteActivity(connection);
  }

  unregister(connection: ClientConnection): void {
    this.#connections.delete(connection);
    const cells = this.cells;
    if (this.#watchers.delete(connection)) cells.watchers.add(-1);
    if (!connection.registered) return;
    cells.connections.add(-1);
    if (connection.preferred) cells.homeConnections.add(-1);
    for (const sourceId of connection.sawSources) this.#peerGoneWatchers.get(sourceId)?.delete(connection);
    const set = this.#clients.get(connection.id);
    if (set === undefined || !set.remove(connection) || set.members.length > 0) return;
    this.#clients.delete(connection.id);
    cells.clientsLocal.add(-1);
    if (this.#forwarders.has(connection.id)) cells.clientsRemote.add();
    else if (connection.closeCause !== 'server_close') this.#notePeerGoneFromRegion(connection.id);
    this.#broadcastGone(connection.publicKey!);
  }

  route(source: ClientConnection, dstKey: Uint8Array, packet: Uint8Array): void {
    const cells = this.cells;
    const disco = looksLikeDisco(packet);
    if (disco) cells.packetsReceived.disco.add();
    else cells.packetsReceived.other.add();
    cells.bytesReceived.add(packet.length);
    const dstId = source.destinationId(dstKey);
    const set = this.#clients.get(dstId);
    const nowMs = source.readAtMs;
    if (set !== undefined) {
      if (set.active === undefined) cells.packetsDropped.duplicate_client.add();
      else this.#deliver(set.active, source.publicKey!, source.id, packet, nowMs, disco);
      return;
    }
    const forwarders = this.#forwarders.get(dstId);
    if (forwarders !== undefined) {
      const forwarder = forwarders[0]!;
      if (!forwarder.forward(source.publicKey!, dstKey, packet, nowMs))
        forwarder.onceWritable(source.pauseReading());
      return;
    }
    if (disco && source.takeNotHereToken(nowMs)) {
      cells.packetsDropped.gone_not_here.add();
      cells.peerGoneFramesSent.not_here.add();
      source.enqueueControl(encodePeerGone(dstKey, PeerGoneReason.NotHere));
      return;
    }
    cells.packetsDropped.unknown_dest.add();
  }

  forwardIn(source: ClientConnection, srcKey: Uint8Array, dstKey: Uint8Array, packet: Uint8Array): void {
    const cells = this.cells;
    cells.packetsForwardedIn.add();
    const set = this.#clients.get(keyId(dstKey));
    if (set === undefined) {
      cells.packetsDropped.unknown_dest_on_forward.add();
      return;
    }
    if (set.active === undefined) {
      cells.packetsDropped.duplicate_client.add();
      return;
    }
    this.#deliver(set.active, srcKey, keyId(srcKey), packet, source.readAtMs, looksLikeDisco(packet));
  }

  #deliver(
    destination: ClientConnection,
    srcKey: Uint8Array,
    srcId: string,
    packet: Uint8Array,
    nowMs: number,
    disco: boolean,
  ): void {
    if (!destination.sawSources.has(srcId)) {
      destination.sawSources.add(srcId);
      let watchers = this.#peerGoneWatchers.get(srcId);
      if (watchers === undefined) {
        watchers = new Set();
        this.#peerGoneWatchers.set(srcId, watchers);
      }
      watchers.add(destination);
    }
    destination.enqueuePacket(srcKey, packet, nowMs, disco);
  }

  addWatcher(connection: ClientConnection): void {
    if (connection.id === this.#serverId || this.#watchers.has(connection)) return;
    this.#watchers.add(connection);
    this.cells.watchers.add();
    for (const set of this.#clients.values()) {
      if (set.active !== undefined) connection.enqueueControl(presentFrame(set.active));
    }
  }

  closePeer(peerKey: Uint8Array): void {
    const set = this.#clients.get(keyId(peerKey));
    if (set === undefined) return;
    for (const member of [...set.members]) member.close('close_peer');
  }

  /** An outbound mesh link learned that `key` is connected to its peer. */
  addForwarder(key: Uint8Array, forwarder: PacketForwarder): void {
    const id = keyId(key);
    if (id === this.#serverId) return;
    const list = this.#forwarders.get(id);
    if (list === undefined) {
      this.#forwarders.set(id, [forwarder]);
      if (!this.#clients.has(id)) this.cells.clientsRemote.add();
      return;
    }
    if (!list.includes(forwarder)) list.push(forwarder);
  }

  /** An outbound mesh link learned that `key` left its peer, or the link went down. */
  removeForwarder(key: Uint8Array, forwarder: PacketForwarder): void {
    const id = keyId(key);
    const list = this.#forwarders.get(id);
    if (list === undefined) return;
    const index = list.indexOf(forwarder);
    if (index < 0) return;
    list.splice(index, 1);
    if (list.length > 0) return;
    this.#forwarders.delete(id);
    if (this.#clients.has(id)) return;
    this.cells.clientsRemote.add(-1);
    this.#notePeerGoneFromRegion(id);
  }

  /** Tells local clients that received packets from `id` that it has left the region. */
  #notePeerGoneFromRegion(id: string): void {
    const watchers = this.#peerGoneWatchers.get(id);
    if (watchers === undefined) return;
    this.#peerGoneWatchers.delete(id);
    const frame = encodePeerGone(Buffer.from(id, 'latin1'), PeerGoneReason.Disconnected);
    const sent = this.cells.peerGoneFramesSent.disconnected;
    for (const watcher of watchers) {
      watcher.sawSources.delete(id);
      sent.add();
      watcher.enqueueControl(frame);
    }
  }

  #broadcastPresent(connection: ClientConnection): void {
    if (this.#watchers.size === 0) return;
    const frame = presentFrame(connection);
    for (const watcher of this.#watchers) watcher.enqueueControl(frame);
  }

  #broadcastGone(publicKey: Uint8Array): void {
    if (this.#watchers.size === 0) return;
    const frame = encodePeerGone(publicKey, PeerGoneReason.Disconnected);
    const sent = this.cells.peerGoneFramesSent.disconnected;
    for (const watcher of this.#watchers) {
      sent.add();
      watcher.enqueueControl(frame);
    }
  }
}

function presentFrame(connection: ClientConnection): Uint8Array {
  let flags = 0;
  if (connection.clientInfo?.isProber === true) flags |= PeerPresentFlags.IsProber;
  if (connection.canMesh) flags |= PeerPresentFlags.IsMeshPeer;
  if (flags === 0) flags = PeerPresentFlags.IsRegular;
  const { remoteAddress, remotePort } = connection.origin;
  return encodePeerPresent(
    connection.publicKey!,
    remoteAddress === '' ? '::' : remoteAddress,
    remotePort,
    flags,
  );
}
