import {
  type CatalogHandles,
  type CountCell,
  defineCatalog,
  type HistogramSeries,
} from '@switchyard/telemetry';

/**
 * Why a packet was not delivered; a closed set, safe as a metric label. derper's dropReason* plus
 * `gone_not_here`, which splits derper's unknown_dest in two by what the sender was told.
 */
export const DROP_REASONS = [
  /** No local client or mesh route holds the destination key; the sender was not told. */
  'unknown_dest',
  /** Like unknown_dest, and the sender was sent PeerGone(NotHere) (disco packets, rate limited as derper does). */
  'gone_not_here',
  /** A packet forwarded in by a mesh peer for a key that is not connected here. */
  'unknown_dest_on_forward',
  /** The destination disconnected while the packet waited in its send queue. */
  'gone_disconnected',
  /** The destination's queue was full; its oldest packet was dropped to make room. */
  'queue_head',
  /** The destination was closing when the packet arrived. */
  'queue_tail',
  /** The destination's connection failed (socket error or write deadline) with the packet queued. */
  'write_error',
  /** The key is connected more than once and no connection of it is active (derper's dup_client). */
  'duplicate_client',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Kind of a received packet, as derper's packets_received_kind. */
export const PACKET_KINDS = ['disco', 'other'] as const;
export type PacketKind = (typeof PACKET_KINDS)[number];

/** Reason byte of PeerGone frames the relay sent, as a label. */
export const PEER_GONE_REASONS = ['disconnected', 'not_here'] as const;
export type PeerGoneLabel = (typeof PEER_GONE_REASONS)[number];

/** Why a connection ended; a closed set, safe as a metric label. */
export const CLOSE_CAUSES = [
  /** The peer closed or reset the connection. */
  'disconnected',
  /** No valid client info frame within the login deadline, or a box that does not open. */
  'handshake',
  /** The key is not on the admission allow-list. */
  'refused',
  /** A frame broke the wire format or was not allowed for this client. */
  'malformed',
  /** The socket failed while writing. */
  'write_error',
  /** The client did not read for longer than the write deadline. */
  'write_timeout',
  /** A mesh peer asked to close this client (ClosePeer). */
  'close_peer',
  /** The relay is shutting down. */
  'server_close',
] as const;
export type CloseCause = (typeof CLOSE_CAUSES)[number];

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

/**
 * The relay's series, resolved once from the catalog handles: the data path updates these cells
 * inline (`add`, `record`) and never looks a series up per event. Packet byte counts are packet
 * contents, without frame headers or keys, as derper counts them. `clients` is not here: the
 * RelayServer sets it from clientsLocal and clientsRemote when a reader collects.
 */
export interface RelayCells {
  readonly accepts: CountCell;
  readonly connections: CountCell;
  readonly homeConnections: CountCell;
  readonly websocketConnections: CountCell;
  readonly watchers: CountCell;
  readonly clientsLocal: CountCell;
  readonly clientsRemote: CountCell;
  readonly duplicateClientKeys: CountCell;
  readonly duplicateClientConnections: CountCell;
  readonly duplicateClientReplacements: CountCell;
  readonly homeMovesIn: CountCell;
  readonly homeMovesOut: CountCell;
  readonly admissionRefusals: CountCell;
  readonly packetsReceived: Readonly<Record<PacketKind, CountCell>>;
  readonly bytesReceived: CountCell;
  readonly packetsSent: CountCell;
  readonly bytesSent: CountCell;
  readonly packetsForwardedIn: CountCell;
  readonly packetsForwardedOut: CountCell;
  readonly unknownFrames: CountCell;
  readonly packetsDropped: Readonly<Record<DropReason, CountCell>>;
  readonly peerGoneFramesSent: Readonly<Record<PeerGoneLabel, CountCell>>;
  readonly disconnects: Readonly<Record<CloseCause, CountCell>>;
  /** Queue wait of packets delivered to clients, in seconds. */
  readonly queueWait: HistogramSeries;
  /** RTT of relay-initiated pings, in seconds. */
  readonly pingRtt: HistogramSeries;
}

export function resolveRelayCells(metrics: RelayMetrics): RelayCells {
  const { packets_received, packets_dropped, peer_gone_frames_sent, disconnects } = metrics;
  return Object.freeze({
    accepts: metrics.accepts.cell(),
    connections: metrics.connections.cell(),
    homeConnections: metrics.home_connections.cell(),
    websocketConnections: metrics.websocket_active_connections.cell(),
    watchers: metrics.watchers.cell(),
    clientsLocal: metrics.clients_local.cell(),
    clientsRemote: metrics.clients_remote.cell(),
    duplicateClientKeys: metrics.duplicate_client_keys.cell(),
    duplicateClientConnections: metrics.duplicate_client_connections.cell(),
    duplicateClientReplacements: metrics.duplicate_client_replacements.cell(),
    homeMovesIn: metrics.home_moves_in.cell(),
    homeMovesOut: metrics.home_moves_out.cell(),
    admissionRefusals: metrics.admission_refusals.cell(),
    packetsReceived: cellPerValue(PACKET_KINDS, (kind) => packets_received.cell({ kind })),
    bytesReceived: metrics.bytes_received.cell(),
    packetsSent: metrics.packets_sent.cell(),
    bytesSent: metrics.bytes_sent.cell(),
    packetsForwardedIn: metrics.packets_forwarded_in.cell(),
    packetsForwardedOut: metrics.packets_forwarded_out.cell(),
    unknownFrames: metrics.unknown_frames.cell(),
    packetsDropped: cellPerValue(DROP_REASONS, (reason) => packets_dropped.cell({ reason })),
    peerGoneFramesSent: cellPerValue(PEER_GONE_REASONS, (reason) => peer_gone_frames_sent.cell({ reason })),
    disconnects: cellPerValue(CLOSE_CAUSES, (cause) => disconnects.cell({ cause })),
    queueWait: metrics['queue.duration'].series(),
    pingRtt: metrics['ping.rtt'].series(),
  });
}

function cellPerValue<K extends string>(
  values: readonly K[],
  cellFor: (value: K) => CountCell,
): Readonly<Record<K, CountCell>> {
  const cells = {} as Record<K, CountCell>;
  for (const value of values) cells[value] = cellFor(value);
  return Object.freeze(cells);
}
