import { type CatalogHandles, defineCatalog } from '@switchyard/telemetry';
import { CLOSE_CAUSES, DROP_REASONS, PACKET_KINDS, PEER_GONE_REASONS, type RelayStats } from './stats.ts';

const counter = (unit: string, description: string) => ({ kind: 'counter', unit, description }) as const;
const upDown = (unit: string, description: string) =>
  ({ kind: 'updown_counter', unit, description }) as const;

/**
 * Every instrument the relay records (docs/metrics.md is generated from this): derper's metric set,
 * typed (counters as counters, current values as up-down counters, which Prometheus shows as
 * gauges), plus histograms where derper keeps an average. No label takes a key or an address.
 *
 * Packet accounting, true at every scrape:
 *   packets_received + packets_forwarded_in
 *     = packets_sent + packets_forwarded_out + packets_dropped (all reasons) + packets still queued
 */
export const relayCatalog = defineCatalog({
  namespace: 'switchyard.relay',
  instruments: {
    accepts: counter(
      '{connection}',
      'Connections handed to the relay (DERP upgrade or WebSocket), before login.',
    ),
    connections: upDown(
      '{connection}',
      'Logged-in connections now, every connection of a duplicated key included (derper: gauge_current_connections).',
    ),
    home_connections: upDown(
      '{connection}',
      'Logged-in connections whose client says this relay is its home (NotePreferred).',
    ),
    clients_local: upDown('{client}', 'Distinct client keys connected to this relay.'),
    clients_remote: upDown(
      '{client}',
      'Distinct client keys reachable through a mesh peer and not connected here.',
    ),
    clients: upDown('{client}', 'Distinct client keys in the region: clients_local + clients_remote.'),
    bytes_received: counter('By', 'Packet bytes received from clients in SendPacket frames (contents only).'),
    bytes_sent: counter('By', 'Packet bytes written to clients in RecvPacket frames (contents only).'),
    packets_received: {
      kind: 'counter',
      unit: '{packet}',
      description: 'Packets received from clients in SendPacket frames, by kind.',
      attributes: {
        kind: {
          description:
            'disco: a Tailscale disco (NAT traversal) message, by its magic; other: anything else.',
          values: PACKET_KINDS,
        },
      },
    },
    packets_sent: counter('{packet}', 'Packets written to clients in RecvPacket frames.'),
    packets_forwarded_in: counter(
      '{packet}',
      'Packets that arrived from mesh peers in ForwardPacket frames.',
    ),
    packets_forwarded_out: counter(
      '{packet}',
      'Packets written to a mesh peer because their destination is connected there.',
    ),
    packets_dropped: {
      kind: 'counter',
      unit: '{packet}',
      description:
        'Packets not delivered, by reason. Every packet received or forwarded in ends here, sent, or forwarded out.',
      attributes: {
        reason: {
          description:
            'unknown_dest: no client or mesh route for the destination; gone_not_here: the same, and the sender was told with PeerGone(NotHere) (disco packets, rate limited); unknown_dest_on_forward: a forwarded-in packet for a key not connected here; gone_disconnected: the destination (client or mesh link) closed while the packet was queued; queue_head: the destination queue was full and dropped its oldest packet; queue_tail: the destination was closing when the packet arrived; write_error: the destination connection failed or missed its write deadline with the packet queued; duplicate_client: the key is connected more than once and no connection of it is active.',
          values: DROP_REASONS,
        },
      },
    },
    unknown_frames: counter('{frame}', 'Frames of a type the relay does not handle, skipped.'),
    admission_refusals: counter(
      '{connection}',
      'Logins refused because the client key is not on the allow-list.',
    ),
    'queue.duration': {
      kind: 'histogram',
      unit: 's',
      description:
        'How long a delivered packet waited in its destination client queue (derper keeps only an average).',
      buckets: [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
      ],
    },
    duplicate_client_keys: upDown(
      '{key}',
      'Client keys connected more than once now (derper: current_dup_client_keys).',
    ),
    duplicate_client_connections: upDown(
      '{connection}',
      'Connections of client keys connected more than once now (derper: current_dup_client_conns).',
    ),
    duplicate_client_replacements: counter(
      '{connection}',
      'Logins for a key that already had a connection; the newer becomes active (derper: total_dup_client_conns).',
    ),
    peer_gone_frames_sent: {
      kind: 'counter',
      unit: '{frame}',
      description: 'PeerGone frames sent to clients and mesh watchers, by reason.',
      attributes: {
        reason: {
          description:
            'disconnected: a peer the client received packets from left the region (or a watched client left); not_here: the client sent a disco packet to a key the relay does not know.',
          values: PEER_GONE_REASONS,
        },
      },
    },
    home_moves_in: counter(
      '{move}',
      'Clients that made this relay their home after their first seconds (NotePreferred true).',
    ),
    home_moves_out: counter(
      '{move}',
      'Clients that stopped calling this relay their home after their first seconds.',
    ),
    watchers: upDown('{watcher}', 'Mesh peers watching this relay’s connections (WatchConns).'),
    websocket_active_connections: upDown('{connection}', 'Connections open over WebSocket now.'),
    'ping.rtt': {
      kind: 'histogram',
      unit: 's',
      description:
        'Round-trip time of relay-initiated pings to clients, from Ping written to matching Pong read.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    },
    disconnects: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Connections that ended, by cause (logged in or not).',
      attributes: {
        cause: {
          description:
            'disconnected: the peer closed; handshake: no valid login in time; refused: not on the allow-list; malformed: a frame broke the protocol or was not allowed; write_error: a write failed; write_timeout: the client did not read within the write deadline; close_peer: a mesh peer asked; server_close: the relay shut down.',
          values: CLOSE_CAUSES,
        },
      },
    },
    mesh_links: {
      kind: 'updown_counter',
      unit: '{link}',
      description: 'Outbound mesh links to the configured peers, by state.',
      attributes: {
        state: {
          description: 'up: logged in and watching; down: connecting or waiting to retry.',
          values: ['up', 'down'],
        },
      },
    },
    mesh_link_failures: counter(
      '{failure}',
      'Outbound mesh link attempts that failed or links that dropped.',
    ),
    admission_list_keys: {
      kind: 'gauge',
      unit: '{key}',
      description: 'Keys on the admission allow-list as last loaded; 0 when no allow-list is configured.',
    },
    admission_list_reloads: {
      kind: 'counter',
      unit: '{reload}',
      description: 'Reloads of the allow-list file, by result; a failed reload keeps the previous list.',
      attributes: { result: { description: 'success or failure.', values: ['success', 'failure'] } },
    },
  },
});

export type RelayMetrics = CatalogHandles<(typeof relayCatalog)['declaration']>;

interface CollectedFamily {
  onCollect(hook: () => void): void;
}

/** Reads a family's only series from `read` whenever a reader collects it. */
function mirror(family: CollectedFamily & { cell(): { value: number } }, read: () => number): void {
  const cell = family.cell();
  family.onCollect(() => {
    cell.value = read();
  });
}

/** Reads one series per label value of a family from the matching RelayStats record. */
function mirrorRecord<K extends string>(
  family: CollectedFamily,
  values: readonly K[],
  cellFor: (value: K) => { value: number },
  record: Readonly<Record<K, number>>,
): void {
  const cells = values.map((value) => [value, cellFor(value)] as const);
  family.onCollect(() => {
    for (const [value, cell] of cells) cell.value = record[value];
  });
}

/**
 * Copies the relay's plain-field counters into the catalog's cells when a reader collects: the
 * data path pays nothing per packet beyond its own field increments. Each instrument refreshes
 * only its own series; the SDK runs every instrument's callback of one collection in a row,
 * with no I/O in between, so the values of one scrape still come from one instant and the packet
 * accounting holds within it.
 */
export function bindRelayStats(metrics: RelayMetrics, stats: RelayStats): void {
  mirror(metrics.accepts, () => stats.accepts);
  mirror(metrics.connections, () => stats.connections);
  mirror(metrics.home_connections, () => stats.homeConnections);
  mirror(metrics.clients_local, () => stats.clientsLocal);
  mirror(metrics.clients_remote, () => stats.clientsRemote);
  mirror(metrics.clients, () => stats.clientsLocal + stats.clientsRemote);
  mirror(metrics.bytes_received, () => stats.bytesReceived);
  mirror(metrics.bytes_sent, () => stats.bytesSent);
  mirror(metrics.packets_sent, () => stats.packetsSent);
  mirror(metrics.packets_forwarded_in, () => stats.packetsForwardedIn);
  mirror(metrics.packets_forwarded_out, () => stats.packetsForwardedOut);
  mirror(metrics.unknown_frames, () => stats.unknownFrames);
  mirror(metrics.admission_refusals, () => stats.admissionRefusals);
  mirror(metrics.duplicate_client_keys, () => stats.duplicateClientKeys);
  mirror(metrics.duplicate_client_connections, () => stats.duplicateClientConnections);
  mirror(metrics.duplicate_client_replacements, () => stats.duplicateClientReplacements);
  mirror(metrics.home_moves_in, () => stats.homeMovesIn);
  mirror(metrics.home_moves_out, () => stats.homeMovesOut);
  mirror(metrics.watchers, () => stats.watchers);
  mirror(metrics.websocket_active_connections, () => stats.websocketConnections);
  const { packets_received, packets_dropped, peer_gone_frames_sent, disconnects } = metrics;
  mirrorRecord(
    packets_received,
    PACKET_KINDS,
    (kind) => packets_received.cell({ kind }),
    stats.packetsReceived,
  );
  mirrorRecord(
    packets_dropped,
    DROP_REASONS,
    (reason) => packets_dropped.cell({ reason }),
    stats.packetsDropped,
  );
  mirrorRecord(
    peer_gone_frames_sent,
    PEER_GONE_REASONS,
    (reason) => peer_gone_frames_sent.cell({ reason }),
    stats.peerGoneFramesSent,
  );
  mirrorRecord(disconnects, CLOSE_CAUSES, (cause) => disconnects.cell({ cause }), stats.disconnects);
}
