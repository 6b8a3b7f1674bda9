import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DerpClient,
  DROP_REASONS,
  type DropReason,
  discoPacket,
  generateNodeKeyPair,
  PeerGoneReason,
} from '@switchyard/relay';
import { sampleValue } from './exposition.ts';
import { freePort } from './free-port.ts';
import {
  type MetricsPath,
  type PipelineContext,
  type PipelineWorker,
  type PipelineWorkerKind,
  pipelineWorker,
  startPod,
} from './pipeline-workers.ts';

export interface RelayPipelineWorker extends PipelineWorker {
  /** Its DERP URL, `http://127.0.0.1:<port>/derp`. */
  readonly derpUrl: string;
  readonly otherReplicas: readonly RelayPipelineWorker[];
}

interface MeshPeer {
  name: string;
  url: string;
}

interface RelayConfig {
  listen: string;
  keyFile: string;
  mesh: { keyFile: string; peers: MeshPeer[] };
}

const waitMs = 20_000;

/**
 * The relay as its StatefulSet runs it: one process per replica, meshed with each other. The
 * deployed config lists every replica as a mesh peer, itself included (relay-configmap.yaml says
 * why), and so does each process here: replica i listens on the loopback port standing for
 * `mesh.peers[i]`, and every peer URL keeps its scheme and path with 127.0.0.1 and that port for
 * its host. Each replica's key file is in a temporary directory, and the mesh key (a Secret
 * mounted at /etc/switchyard-mesh in a pod) is a random one written there. `start` resolves once
 * every replica's link to every other is up and its link to itself has stopped.
 */
export const relayKind: PipelineWorkerKind<RelayPipelineWorker> = {
  worker: 'relay',
  job: 'switchyard-relay',
  async start(path, context) {
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-pipeline-relay-'));
    const meshKeyFile = join(dir, 'mesh-key');
    await writeFile(meshKeyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const ports = new Map<string, number>();
    let peers: readonly MeshPeer[] = [];
    const adaptFor =
      (ordinal: number) =>
      async (raw: Record<string, unknown>): Promise<Record<string, unknown>> => {
        const config = raw as unknown as RelayConfig;
        if (peers.length === 0) {
          peers = config.mesh.peers;
          for (const peer of peers) ports.set(peer.name, await freePort());
        }
        config.listen = `127.0.0.1:${ports.get(peers[ordinal]!.name)}`;
        config.keyFile = join(dir, `relay-${ordinal}-key.json`);
        config.mesh.keyFile = meshKeyFile;
        config.mesh.peers = peers.map((peer) => ({
          ...peer,
          url: onLoopback(peer.url, ports.get(peer.name)!),
        }));
        return raw;
      };
    const startReplica = (ordinal: number) =>
      startRelayReplica(path, context, dir, ordinal, adaptFor(ordinal));
    // Replica 0 reads how many replicas the config lists; the others then start together.
    const first = await startReplica(0);
    const others = await Promise.all(peers.slice(1).map((_, index) => startReplica(index + 1)));
    const replicas = [first, ...others];
    await Promise.all(replicas.map((replica, ordinal) => meshSettled(replica, peers, ordinal)));

    const cleanup = async (): Promise<void> => {
      for (const other of others) await other.worker.stop();
      await rm(dir, { recursive: true, force: true });
    };
    const otherWorkers = others.map(({ worker }) => worker);
    return {
      ...pipelineWorker(path, first.started, cleanup),
      derpUrl: first.derpUrl,
      otherReplicas: otherWorkers,
    };
  },
};

interface StartedReplica {
  readonly started: Awaited<ReturnType<typeof startPod>>;
  readonly derpUrl: string;
  readonly worker: RelayPipelineWorker;
}

async function startRelayReplica(
  path: MetricsPath,
  context: PipelineContext,
  dir: string,
  ordinal: number,
  adapt: (config: Record<string, unknown>) => Promise<Record<string, unknown>>,
): Promise<StartedReplica> {
  const started = await startPod({
    worker: 'relay',
    path,
    context,
    adapt,
    readyLine: 'relay serving',
    dir,
    podName: `switchyard-relay-${path}-${ordinal}`,
  });
  const listening = await started.process.waitForLog((line) => line.msg === 'relay listening');
  const derpUrl = String(listening.url);
  const worker = { ...pipelineWorker(path, started, async () => {}), derpUrl, otherReplicas: [] };
  return { started, derpUrl, worker };
}

function onLoopback(deployedUrl: string, port: number): string {
  const url = new URL(deployedUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.href;
}

/** Waits for replica `ordinal`'s links: up to every other peer, stopped for good to itself. */
async function meshSettled(
  replica: StartedReplica,
  peers: readonly MeshPeer[],
  ordinal: number,
): Promise<void> {
  const { process } = replica.started;
  await Promise.all(
    peers.map((peer, index) =>
      process.waitForLog(
        (line) =>
          line.peer === peer.name &&
          line.msg === (index === ordinal ? 'mesh peer is this relay; no link to it' : 'mesh link up'),
        waitMs,
      ),
    ),
  );
}

/** Packets one client sends to one destination, in order. */
export interface RelaySend {
  readonly from: string;
  /** A client of the plan, or a name no client has: a key connected nowhere. */
  readonly to: string;
  /** One packet per size, in bytes. */
  readonly sizes: readonly number[];
  /** Tailscale disco messages (the magic, then zeros); at least 62 bytes each. */
  readonly disco?: boolean;
}

export interface RelayTrafficPlan {
  /** Each client's home: the ordinal of the replica it connects to. */
  readonly homes: Readonly<Record<string, number>>;
  readonly sends: readonly RelaySend[];
}

/** What one replica counts for a plan, derived from the routing rules (packages/relay/README.md). */
export interface RelayCounts {
  readonly packetsReceived: { disco: number; other: number };
  readonly bytesReceived: number;
  readonly packetsSent: number;
  readonly bytesSent: number;
  readonly packetsForwardedIn: number;
  readonly packetsForwardedOut: number;
  readonly packetsDropped: Record<DropReason, number>;
  readonly peerGoneNotHere: number;
  /** Clients of the plan homed on other replicas, reachable through the mesh. */
  readonly clientsRemote: number;
}

/** derper's budget of PeerGone(NotHere) replies per sender before it refills at 1 per second. */
const notHereBudget = 3;

/**
 * What each replica must count once `plan` has run: a packet counts as received where its sender
 * is homed; for a client on the same replica it is sent there, for one on another replica it is
 * forwarded out here and forwarded in and sent there, and for a key connected nowhere it is
 * dropped here, as `gone_not_here` (disco, with a PeerGone(NotHere) back) or `unknown_dest`.
 */
export function expectedRelayCounts(replicas: number, plan: RelayTrafficPlan): RelayCounts[] {
  const counts = Array.from({ length: replicas }, (_, ordinal) => ({
    packetsReceived: { disco: 0, other: 0 },
    bytesReceived: 0,
    packetsSent: 0,
    bytesSent: 0,
    packetsForwardedIn: 0,
    packetsForwardedOut: 0,
    packetsDropped: Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<
      DropReason,
      number
    >,
    peerGoneNotHere: 0,
    clientsRemote: Object.values(plan.homes).filter((home) => home !== ordinal).length,
  }));
  const notHereBySender = new Map<string, number>();
  for (const send of plan.sends) {
    const source = counts[homeOf(plan, send.from)]!;
    const packets = send.sizes.length;
    const bytes = send.sizes.reduce((sum, size) => sum + size, 0);
    source.packetsReceived[send.disco === true ? 'disco' : 'other'] += packets;
    source.bytesReceived += bytes;
    const home = plan.homes[send.to];
    if (home === undefined && send.disco === true) {
      const replies = (notHereBySender.get(send.from) ?? 0) + packets;
      if (replies > notHereBudget)
        throw new Error(`${send.from} sends over ${notHereBudget} disco packets nowhere`);
      notHereBySender.set(send.from, replies);
      source.packetsDropped.gone_not_here += packets;
      source.peerGoneNotHere += packets;
      continue;
    }
    if (home === undefined) {
      source.packetsDropped.unknown_dest += packets;
      continue;
    }
    const destination = counts[home]!;
    if (destination !== source) {
      source.packetsForwardedOut += packets;
      destination.packetsForwardedIn += packets;
    }
    destination.packetsSent += packets;
    destination.bytesSent += bytes;
  }
  return counts;
}

function homeOf(plan: RelayTrafficPlan, client: string): number {
  const home = plan.homes[client];
  if (home === undefined) throw new Error(`${client} sends but has no home replica in the plan`);
  return home;
}

export interface RelayTraffic {
  /** The plan's clients, still connected (their leaving would send PeerGone frames). */
  close(): Promise<void>;
}

/**
 * Runs `plan` against the replicas with real DERP clients: connects every client to its home,
 * waits until every replica has learned over the mesh the clients homed elsewhere, sends every
 * packet, and resolves once every client has received exactly the packets addressed to it, in
 * order per sender, and every PeerGone(NotHere) its disco packets to nowhere earned.
 */
export async function driveRelayTraffic(
  replicas: readonly RelayPipelineWorker[],
  plan: RelayTrafficPlan,
): Promise<RelayTraffic> {
  const expected = expectedRelayCounts(replicas.length, plan);
  const clients = new Map<string, Inbox>();
  const close = async (): Promise<void> => {
    await Promise.all([...clients.values()].map((inbox) => inbox.client.close()));
  };
  try {
    for (const [name, home] of Object.entries(plan.homes)) {
      const replica = replicas[home];
      if (replica === undefined) throw new Error(`${name}'s home ${home} is not a replica`);
      clients.set(name, await Inbox.connect(name, replica.derpUrl));
    }
    await Promise.all(
      replicas.map((replica, ordinal) => remoteClientsKnown(replica, expected[ordinal]!.clientsRemote)),
    );
    const nowhere = new Map<string, Uint8Array>();
    const keyOf = (name: string): Uint8Array => {
      const client = clients.get(name)?.client;
      if (client !== undefined) return client.publicKey;
      if (!nowhere.has(name)) nowhere.set(name, generateNodeKeyPair().publicKey);
      return nowhere.get(name)!;
    };
    for (const [index, send] of plan.sends.entries()) {
      const sender = clients.get(send.from)!;
      const destination = clients.get(send.to);
      for (const size of send.sizes) {
        const packet = send.disco === true ? discoPacket(size) : new Uint8Array(size).fill(index + 1);
        if (send.disco === true && packet.length !== size) throw new Error(`disco packet of ${size} bytes`);
        sender.client.send(keyOf(send.to), packet);
        destination?.expectPacket(sender.client.publicKey, packet);
      }
      if (destination === undefined && send.disco === true) sender.expectNotHere(send.sizes.length);
    }
    await Promise.all([...clients.values()].map((inbox) => inbox.complete()));
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
}

/** Polls the replica's /metrics until it knows `count` clients through the mesh. */
async function remoteClientsKnown(replica: RelayPipelineWorker, count: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const known = sampleValue(await replica.metrics(), 'switchyard_relay_clients_remote');
    if (known === count) return;
    if (Date.now() > deadline) {
      throw new Error(`${replica.pod.name} knows ${known} remote clients after ${waitMs} ms, not ${count}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One DERP client of the plan and what it must receive: packets by sender, PeerGone(NotHere) frames. */
class Inbox {
  readonly name: string;
  readonly client: DerpClient;
  readonly #expected = new Map<string, Uint8Array[]>();
  readonly #received = new Map<string, Uint8Array[]>();
  #notHereExpected = 0;
  #notHere = 0;
  #settle: (() => void) | undefined;

  private constructor(name: string, client: DerpClient) {
    this.name = name;
    this.client = client;
  }

  static async connect(name: string, url: string): Promise<Inbox> {
    let inbox: Inbox | undefined;
    const client = await DerpClient.connect({
      url,
      keys: generateNodeKeyPair(),
      // No PeerGone comes before the login completes, and so before `inbox` is set.
      onPeerGone: (_key, reason) => {
        if (inbox !== undefined) inbox.#onPeerGone(reason);
      },
    });
    inbox = new Inbox(name, client);
    // The iteration ends when the client closes.
    void inbox.#collect();
    return inbox;
  }

  expectPacket(source: Uint8Array, packet: Uint8Array): void {
    const id = Buffer.from(source).toString('hex');
    this.#expected.set(id, [...(this.#expected.get(id) ?? []), packet]);
  }

  expectNotHere(frames: number): void {
    this.#notHereExpected += frames;
  }

  /** Resolves once everything expected has arrived and checks it; rejects after a timeout. */
  async complete(): Promise<void> {
    if (!this.#done()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#settle = resolve;
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${this.name}: ${this.#state()}`)), waitMs);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    for (const source of new Set([...this.#expected.keys(), ...this.#received.keys()])) {
      const sent = this.#expected.get(source) ?? [];
      const received = this.#received.get(source) ?? [];
      const same =
        sent.length === received.length &&
        sent.every((packet, index) => Buffer.compare(packet, received[index]!) === 0);
      if (!same) {
        throw new Error(
          `${this.name} received ${received.length} packets from ${source.slice(0, 8)}, not the ${sent.length} sent to it`,
        );
      }
    }
  }

  async #collect(): Promise<void> {
    for await (const { source, packet } of this.client) {
      const id = Buffer.from(source).toString('hex');
      this.#received.set(id, [...(this.#received.get(id) ?? []), packet]);
      this.#check();
    }
  }

  #onPeerGone(reason: number): void {
    // Disconnected frames come only when a client leaves, after a plan has run.
    if (reason === PeerGoneReason.NotHere) this.#notHere++;
    this.#check();
  }

  #check(): void {
    if (this.#done()) this.#settle?.();
  }

  #done(): boolean {
    return (
      packetCount(this.#received) >= packetCount(this.#expected) && this.#notHere >= this.#notHereExpected
    );
  }

  #state(): string {
    return (
      `received ${packetCount(this.#received)} of ${packetCount(this.#expected)} packets and ` +
      `${this.#notHere} of ${this.#notHereExpected} PeerGone(NotHere) within ${waitMs} ms`
    );
  }
}

function packetCount(bySource: Map<string, Uint8Array[]>): number {
  let count = 0;
  for (const packets of bySource.values()) count += packets.length;
  return count;
}
