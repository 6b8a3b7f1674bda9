/**
 * The relay's counters and gauges as plain fields, every one zero-initialised: the data path only
 * increments them, and the metric catalog (metrics.ts) reads them when a reader collects. Packet
 * byte counts are packet contents, without frame headers or keys, as derper counts them.
 */

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

export class RelayStats {
  /** Connections handed to the relay (TCP upgrade or WebSocket), before login. */
  accepts = 0;
  /** Logged-in connections now (including every connection of a duplicated key). */
  connections = 0;
  /** Logged-in connections whose last NotePreferred said this relay is their home. */
  homeConnections = 0;
  /** Connections now open over WebSocket (logged in or not). */
  websocketConnections = 0;
  /** Mesh peers now watching this relay's connections. */
  watchers = 0;
  /** Distinct keys connected here. */
  clientsLocal = 0;
  /** Distinct keys reachable through a mesh peer and not connected here. */
  clientsRemote = 0;
  /** Keys connected more than once now, and their connections (derper's current_dup_client_keys/conns). */
  duplicateClientKeys = 0;
  duplicateClientConnections = 0;
  /** Logins for a key that already had a connection (derper's total_dup_client_conns). */
  duplicateClientReplacements = 0;
  homeMovesIn = 0;
  homeMovesOut = 0;
  /** Logins refused because the key is not on the allow-list. */
  admissionRefusals = 0;
  readonly packetsReceived: Record<PacketKind, number> = { disco: 0, other: 0 };
  bytesReceived = 0;
  packetsSent = 0;
  bytesSent = 0;
  /** Packets that arrived in ForwardPacket frames from mesh peers. */
  packetsForwardedIn = 0;
  /** Packets handed to a mesh peer because the destination is connected there. */
  packetsForwardedOut = 0;
  /** Frames of a type this relay does not handle, skipped. */
  unknownFrames = 0;
  readonly packetsDropped: Record<DropReason, number> = zeroed(DROP_REASONS);
  readonly peerGoneFramesSent: Record<PeerGoneLabel, number> = zeroed(PEER_GONE_REASONS);
  readonly disconnects: Record<CloseCause, number> = zeroed(CLOSE_CAUSES);
}

function zeroed<K extends string>(keys: readonly K[]): Record<K, number> {
  const record = {} as Record<K, number>;
  for (const key of keys) record[key] = 0;
  return record;
}

/** Where the relay records durations; the telemetry package's HistogramSeries fits. */
export interface DurationRecorder {
  record(seconds: number): void;
}

export const DISCARD_DURATIONS: DurationRecorder = Object.freeze({ record: () => {} });
