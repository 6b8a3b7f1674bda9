export { AllowList, type AllowListEvents } from './admission.ts';
export {
  ClientConnection,
  type ClientConnectionOptions,
  type ConnectionOrigin,
  type ConnectionRouter,
} from './client-connection.ts';
export {
  bytesToIp,
  decodeClosePeer,
  decodeForwardPacket,
  decodeHealth,
  decodeNotePreferred,
  decodePeerGone,
  decodePeerPresent,
  decodePing,
  decodePong,
  decodeRecvPacket,
  decodeRestarting,
  decodeSendPacket,
  decodeWatchConns,
  encodeClosePeer,
  encodeForwardPacket,
  encodeFrame,
  encodeHealth,
  encodeKeepAlive,
  encodeNotePreferred,
  encodePeerGone,
  encodePeerPresent,
  encodePing,
  encodePong,
  encodeRecvPacket,
  encodeRestarting,
  encodeSendPacket,
  encodeWatchConns,
  type ForwardPacket,
  FRAME_HEADER_LENGTH,
  FrameType,
  type FrameTypeName,
  frameTypeName,
  ipToBytes,
  KEY_LENGTH,
  MAGIC,
  MAX_FRAME_SIZE,
  MAX_PACKET_SIZE,
  MAX_PING_PAYLOAD,
  NONCE_LENGTH,
  type PeerGone,
  PeerGoneReason,
  type PeerPresent,
  PeerPresentFlags,
  PING_DATA_LENGTH,
  PROTOCOL_VERSION,
  type RecvPacket,
  type Restarting,
  type SendPacket,
} from './codec.ts';
export {
  DEFAULT_LISTEN,
  RELAY_ADMIN_PORT,
  type RelayConfig,
  readRelayConfig,
  relayConfigSchema,
} from './config.ts';
export { DerpClient, type DerpClientOptions, type ReceivedPacket } from './derp-client.ts';
export type { DerpTlsOptions } from './derp-transport.ts';
export { discoPacket, looksLikeDisco } from './disco.ts';
export {
  DerpEncodeError,
  DerpFrameTooLargeError,
  DerpHandshakeError,
  DerpKeyError,
  DerpPayloadError,
  DerpUpgradeError,
  type HandshakeFailure,
} from './errors.ts';
export { type FrameHandler, FrameReader, type FrameReaderOptions } from './frame-reader.ts';
export {
  type ClientInfo,
  MAX_CLIENT_INFO_PAYLOAD,
  MAX_SERVER_INFO_PAYLOAD,
  MAX_SERVER_KEY_PAYLOAD,
  type OpenedClientInfo,
  openClientInfo,
  openServerInfo,
  parseServerKey,
  type ServerInfo,
  sealClientInfo,
  sealServerInfo,
  serverKeyFrame,
} from './handshake.ts';
export { RELAY_HTTP_ROUTES, RelayHttpServer, type RelayHttpServerOptions } from './http-server.ts';
export { loadOrCreateKeyFile } from './key-file.ts';
export {
  formatPrivateKey,
  formatPublicKey,
  generateNodeKeyPair,
  isZeroKey,
  type NodeKeyPair,
  nodeKeyPairFromSecret,
  PRIVATE_KEY_PREFIX,
  PUBLIC_KEY_PREFIX,
  parsePrivateKey,
  parsePublicKey,
  shortKey,
} from './keys.ts';
export { MeshLink, type MeshLinkOptions } from './mesh-link.ts';
export {
  CLOSE_CAUSES,
  type CloseCause,
  DROP_REASONS,
  type DropReason,
  PACKET_KINDS,
  type PacketKind,
  PEER_GONE_REASONS,
  type PeerGoneLabel,
  type RelayCells,
  type RelayMetrics,
  relayCatalog,
} from './metrics.ts';
export {
  type ClientAdmission,
  type PacketForwarder,
  RelayServer,
  type RelayServerOptions,
} from './relay-server.ts';
export { MAX_WEBSOCKET_MESSAGE, webSocketByteStream } from './websocket-stream.ts';
