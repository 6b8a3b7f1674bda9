import { isIPv4 } from 'node:net';
import { DerpEncodeError, DerpPayloadError } from './errors.ts';

/** Frame type bytes, as in Tailscale's derp/derp.go. */
export const FrameType = Object.freeze({
  ServerKey: 0x01,
  ClientInfo: 0x02,
  ServerInfo: 0x03,
  SendPacket: 0x04,
  RecvPacket: 0x05,
  KeepAlive: 0x06,
  NotePreferred: 0x07,
  PeerGone: 0x08,
  PeerPresent: 0x09,
  ForwardPacket: 0x0a,
  WatchConns: 0x10,
  ClosePeer: 0x11,
  Ping: 0x12,
  Pong: 0x13,
  Health: 0x14,
  Restarting: 0x15,
} as const);

export type FrameTypeName = keyof typeof FrameType;

const FRAME_NAMES = new Map<number, FrameTypeName>(
  Object.entries(FrameType).map(([name, value]) => [value, name as FrameTypeName]),
);

/** The name of a frame type byte, or `'Unknown'`: a closed set, safe as a metric label. */
export function frameTypeName(frameType: number): FrameTypeName | 'Unknown' {
  return FRAME_NAMES.get(frameType) ?? 'Unknown';
}

/** `DERP🔑`, the 8 bytes that open a server key frame. */
export const MAGIC: Uint8Array = new TextEncoder().encode('DERP🔑');
export const PROTOCOL_VERSION = 2;
export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 24;
/** 1 type byte + 4-byte big-endian payload length. */
export const FRAME_HEADER_LENGTH = 5;
/** Largest packet carried in a send, forward or receive frame: 64 KiB (derp.MaxPacketSize). */
export const MAX_PACKET_SIZE = 64 << 10;
/**
 * Largest frame payload a reader accepts by default: 1 MiB, the limit Tailscale's DERP client
 * applies in Recv. derper itself bounds each frame type separately (64 KiB + keys for packets,
 * 256 KiB for client info, 1000 bytes for ping), which the payload decoders enforce.
 */
export const MAX_FRAME_SIZE = 1 << 20;
/** derper rejects ping payloads above this; the first 8 bytes are the ping data. */
export const MAX_PING_PAYLOAD = 1000;
export const PING_DATA_LENGTH = 8;

/** Peer gone reason byte (derp.PeerGoneReasonType). */
export const PeerGoneReason = Object.freeze({ Disconnected: 0x00, NotHere: 0x01 } as const);

/** Peer present flag bits (derp.PeerPresentFlags). */
export const PeerPresentFlags = Object.freeze({
  IsRegular: 1 << 0,
  IsMeshPeer: 1 << 1,
  IsProber: 1 << 2,
  NotIdeal: 1 << 3,
} as const);

const IP_LENGTH = 16;
const PEER_PRESENT_ADDRESS_LENGTH = KEY_LENGTH + IP_LENGTH + 2;
const EMPTY = new Uint8Array(0);

export interface SendPacket {
  readonly dstKey: Uint8Array;
  readonly packet: Uint8Array;
}
export interface RecvPacket {
  readonly srcKey: Uint8Array;
  readonly packet: Uint8Array;
}
export interface ForwardPacket {
  readonly srcKey: Uint8Array;
  readonly dstKey: Uint8Array;
  readonly packet: Uint8Array;
}
export interface PeerGone {
  readonly peerKey: Uint8Array;
  /** A `PeerGoneReason` value; frames from servers that predate the reason byte decode as Disconnected. */
  readonly reason: number;
}
export interface PeerPresent {
  readonly peerKey: Uint8Array;
  /** The peer's address; absent when an older server sent only the key. */
  readonly ip?: string;
  readonly port?: number;
  /** `PeerPresentFlags` bits; absent when the server did not send the flags byte. */
  readonly flags?: number;
}
export interface Restarting {
  readonly reconnectInMs: number;
  readonly tryForMs: number;
}

/** Builds a whole frame: header then a copy of `payload`. */
export function encodeFrame(frameType: number, payload: Uint8Array): Uint8Array {
  const frame = allocateFrame(frameType, payload.length);
  frame.set(payload, FRAME_HEADER_LENGTH);
  return frame;
}

function allocateFrame(frameType: number, payloadLength: number): Uint8Array {
  if (!Number.isInteger(frameType) || frameType < 0 || frameType > 0xff) {
    throw new DerpEncodeError('frameType', `${frameType} is not a byte (0..255)`);
  }
  const frame = new Uint8Array(FRAME_HEADER_LENGTH + payloadLength);
  frame[0] = frameType;
  new DataView(frame.buffer).setUint32(1, payloadLength);
  return frame;
}

function checkKey(field: string, key: Uint8Array): void {
  if (key.length !== KEY_LENGTH) {
    throw new DerpEncodeError(field, `is ${key.length} bytes; a node key is ${KEY_LENGTH}`);
  }
}

function checkPacket(packet: Uint8Array): void {
  if (packet.length > MAX_PACKET_SIZE) {
    throw new DerpEncodeError(
      'packet',
      `is ${packet.length} bytes; at most ${MAX_PACKET_SIZE} fit in a frame`,
    );
  }
}

function checkUint32(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new DerpEncodeError(field, `${value} is not a uint32 (0..4294967295)`);
  }
}

function frameWithKeys(frameType: number, keys: readonly Uint8Array[], tail: Uint8Array): Uint8Array {
  const frame = allocateFrame(frameType, keys.length * KEY_LENGTH + tail.length);
  let offset = FRAME_HEADER_LENGTH;
  for (const key of keys) {
    frame.set(key, offset);
    offset += KEY_LENGTH;
  }
  frame.set(tail, offset);
  return frame;
}

/** Client to server: deliver `packet` to the node `dstKey`. Returns the whole frame. */
export function encodeSendPacket(dstKey: Uint8Array, packet: Uint8Array): Uint8Array {
  checkKey('dstKey', dstKey);
  checkPacket(packet);
  return frameWithKeys(FrameType.SendPacket, [dstKey], packet);
}

/** Server to client: `packet` arrived from `srcKey` (protocol v2 layout). Returns the whole frame. */
export function encodeRecvPacket(srcKey: Uint8Array, packet: Uint8Array): Uint8Array {
  checkKey('srcKey', srcKey);
  checkPacket(packet);
  return frameWithKeys(FrameType.RecvPacket, [srcKey], packet);
}

/** Mesh peer to mesh peer: forward `packet` from `srcKey` to `dstKey`. Returns the whole frame. */
export function encodeForwardPacket(srcKey: Uint8Array, dstKey: Uint8Array, packet: Uint8Array): Uint8Array {
  checkKey('srcKey', srcKey);
  checkKey('dstKey', dstKey);
  checkPacket(packet);
  return frameWithKeys(FrameType.ForwardPacket, [srcKey, dstKey], packet);
}

export function encodeKeepAlive(): Uint8Array {
  return allocateFrame(FrameType.KeepAlive, 0);
}

export function encodeWatchConns(): Uint8Array {
  return allocateFrame(FrameType.WatchConns, 0);
}

export function encodeNotePreferred(preferred: boolean): Uint8Array {
  const frame = allocateFrame(FrameType.NotePreferred, 1);
  frame[FRAME_HEADER_LENGTH] = preferred ? 1 : 0;
  return frame;
}

export function encodePeerGone(
  peerKey: Uint8Array,
  reason: number = PeerGoneReason.Disconnected,
): Uint8Array {
  checkKey('peerKey', peerKey);
  if (!Number.isInteger(reason) || reason < 0 || reason > 0xff) {
    throw new DerpEncodeError('reason', `${reason} is not a byte (0..255)`);
  }
  return frameWithKeys(FrameType.PeerGone, [peerKey], Uint8Array.of(reason));
}

/** The 51-byte form current derper sends (derp.go's comment says 41; derpserver writes 32+16+2+1): key, 16-byte IP (v4 as v4-mapped v6), big-endian port, flags. */
export function encodePeerPresent(peerKey: Uint8Array, ip: string, port: number, flags: number): Uint8Array {
  checkKey('peerKey', peerKey);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new DerpEncodeError('port', `${port} is not a port (0..65535)`);
  }
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) {
    throw new DerpEncodeError('flags', `${flags} is not a byte (0..255)`);
  }
  const tail = new Uint8Array(IP_LENGTH + 3);
  tail.set(ipToBytes(ip), 0);
  tail[IP_LENGTH] = port >> 8;
  tail[IP_LENGTH + 1] = port & 0xff;
  tail[IP_LENGTH + 2] = flags;
  return frameWithKeys(FrameType.PeerPresent, [peerKey], tail);
}

export function encodeClosePeer(peerKey: Uint8Array): Uint8Array {
  checkKey('peerKey', peerKey);
  return frameWithKeys(FrameType.ClosePeer, [peerKey], EMPTY);
}

export function encodePing(data: Uint8Array): Uint8Array {
  return encodePingOrPong(FrameType.Ping, data);
}

export function encodePong(data: Uint8Array): Uint8Array {
  return encodePingOrPong(FrameType.Pong, data);
}

function encodePingOrPong(frameType: number, data: Uint8Array): Uint8Array {
  if (data.length !== PING_DATA_LENGTH) {
    throw new DerpEncodeError(
      'data',
      `is ${data.length} bytes; ping and pong carry exactly ${PING_DATA_LENGTH}`,
    );
  }
  return encodeFrame(frameType, data);
}

/** An empty `problem` tells the client the connection is healthy again. */
export function encodeHealth(problem: string): Uint8Array {
  return encodeFrame(FrameType.Health, new TextEncoder().encode(problem));
}

export function encodeRestarting(reconnectInMs: number, tryForMs: number): Uint8Array {
  checkUint32('reconnectInMs', reconnectInMs);
  checkUint32('tryForMs', tryForMs);
  const frame = allocateFrame(FrameType.Restarting, 8);
  const view = new DataView(frame.buffer);
  view.setUint32(FRAME_HEADER_LENGTH, reconnectInMs);
  view.setUint32(FRAME_HEADER_LENGTH + 4, tryForMs);
  return frame;
}

function payloadError(frameType: number, payload: Uint8Array, problem: string): DerpPayloadError {
  return new DerpPayloadError(frameType, frameTypeName(frameType), payload.length, problem);
}

function needAtLeast(frameType: number, payload: Uint8Array, length: number, what: string): void {
  if (payload.length < length) {
    throw payloadError(frameType, payload, `needs at least ${length} bytes (${what})`);
  }
}

function needExactly(frameType: number, payload: Uint8Array, length: number): void {
  if (payload.length !== length) {
    throw payloadError(frameType, payload, `must be exactly ${length} bytes`);
  }
}

function checkPacketLength(frameType: number, payload: Uint8Array, packetLength: number): void {
  if (packetLength > MAX_PACKET_SIZE) {
    throw payloadError(
      frameType,
      payload,
      `carries a ${packetLength}-byte packet; at most ${MAX_PACKET_SIZE}`,
    );
  }
}

// Decoders return subarrays of `payload`: zero-copy, valid as long as the payload bytes are.

export function decodeSendPacket(payload: Uint8Array): SendPacket {
  needAtLeast(FrameType.SendPacket, payload, KEY_LENGTH, 'destination key');
  checkPacketLength(FrameType.SendPacket, payload, payload.length - KEY_LENGTH);
  return { dstKey: payload.subarray(0, KEY_LENGTH), packet: payload.subarray(KEY_LENGTH) };
}

export function decodeRecvPacket(payload: Uint8Array): RecvPacket {
  needAtLeast(FrameType.RecvPacket, payload, KEY_LENGTH, 'source key');
  return { srcKey: payload.subarray(0, KEY_LENGTH), packet: payload.subarray(KEY_LENGTH) };
}

export function decodeForwardPacket(payload: Uint8Array): ForwardPacket {
  needAtLeast(FrameType.ForwardPacket, payload, 2 * KEY_LENGTH, 'source and destination keys');
  checkPacketLength(FrameType.ForwardPacket, payload, payload.length - 2 * KEY_LENGTH);
  return {
    srcKey: payload.subarray(0, KEY_LENGTH),
    dstKey: payload.subarray(KEY_LENGTH, 2 * KEY_LENGTH),
    packet: payload.subarray(2 * KEY_LENGTH),
  };
}

export function decodeWatchConns(payload: Uint8Array): void {
  needExactly(FrameType.WatchConns, payload, 0);
}

/** Any non-zero byte means "this is my home relay", as derper reads it. */
export function decodeNotePreferred(payload: Uint8Array): boolean {
  needExactly(FrameType.NotePreferred, payload, 1);
  return payload[0] !== 0;
}

export function decodePeerGone(payload: Uint8Array): PeerGone {
  needAtLeast(FrameType.PeerGone, payload, KEY_LENGTH, 'peer key');
  const reason = payload.length > KEY_LENGTH ? payload[KEY_LENGTH]! : PeerGoneReason.Disconnected;
  return { peerKey: payload.subarray(0, KEY_LENGTH), reason };
}

/** Accepts the 32-, 50- and 51-byte forms (and longer, ignoring the rest), as Tailscale's client does. */
export function decodePeerPresent(payload: Uint8Array): PeerPresent {
  needAtLeast(FrameType.PeerPresent, payload, KEY_LENGTH, 'peer key');
  const peerKey = payload.subarray(0, KEY_LENGTH);
  if (payload.length < PEER_PRESENT_ADDRESS_LENGTH) return { peerKey };
  const ip = bytesToIp(payload.subarray(KEY_LENGTH, KEY_LENGTH + IP_LENGTH));
  const port = (payload[KEY_LENGTH + IP_LENGTH]! << 8) | payload[KEY_LENGTH + IP_LENGTH + 1]!;
  if (payload.length === PEER_PRESENT_ADDRESS_LENGTH) return { peerKey, ip, port };
  return { peerKey, ip, port, flags: payload[PEER_PRESENT_ADDRESS_LENGTH]! };
}

export function decodeClosePeer(payload: Uint8Array): Uint8Array {
  needExactly(FrameType.ClosePeer, payload, KEY_LENGTH);
  return payload;
}

/** The 8 ping bytes; derper tolerates up to 1000 bytes of payload and ignores the extra. */
export function decodePing(payload: Uint8Array): Uint8Array {
  return decodePingOrPong(FrameType.Ping, payload);
}

export function decodePong(payload: Uint8Array): Uint8Array {
  return decodePingOrPong(FrameType.Pong, payload);
}

function decodePingOrPong(frameType: number, payload: Uint8Array): Uint8Array {
  needAtLeast(frameType, payload, PING_DATA_LENGTH, 'ping data');
  if (payload.length > MAX_PING_PAYLOAD) {
    throw payloadError(frameType, payload, `is over the ${MAX_PING_PAYLOAD}-byte limit`);
  }
  return payload.subarray(0, PING_DATA_LENGTH);
}

/** Invalid UTF-8 becomes U+FFFD rather than an error: Go's client takes the bytes as they are. */
export function decodeHealth(payload: Uint8Array): string {
  return new TextDecoder().decode(payload);
}

export function decodeRestarting(payload: Uint8Array): Restarting {
  needAtLeast(FrameType.Restarting, payload, 8, 'two uint32 durations');
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return { reconnectInMs: view.getUint32(0), tryForMs: view.getUint32(4) };
}

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** IPv4 or IPv6 text to the 16-byte form derper writes (IPv4 as v4-mapped IPv6, like netip.Addr.As16). */
export function ipToBytes(ip: string): Uint8Array {
  const bytes = new Uint8Array(IP_LENGTH);
  if (isIPv4(ip)) {
    bytes.set(V4_MAPPED_PREFIX, 0);
    bytes.set(ip.split('.').map(Number), 12);
    return bytes;
  }
  const groups = ipv6Groups(ip);
  groups.forEach((group, index) => {
    bytes[index * 2] = group >> 8;
    bytes[index * 2 + 1] = group & 0xff;
  });
  return bytes;
}

function ipv6Groups(ip: string): number[] {
  let normalised: string;
  try {
    // WHATWG URL parsing validates IPv6 and serialises it in hex groups, with no embedded IPv4 and no zone.
    normalised = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    throw new DerpEncodeError('ip', `"${ip}" is not an IPv4 or IPv6 address`);
  }
  const [head = '', tail] = normalised.split('::');
  const parse = (part: string) =>
    part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16));
  const headGroups = parse(head);
  if (tail === undefined) return headGroups;
  const tailGroups = parse(tail);
  return [...headGroups, ...new Array(8 - headGroups.length - tailGroups.length).fill(0), ...tailGroups];
}

/** The 16-byte form back to text; v4-mapped addresses are unmapped to IPv4, as Tailscale's client does. */
export function bytesToIp(bytes: Uint8Array): string {
  if (V4_MAPPED_PREFIX.every((value, index) => bytes[index] === value)) {
    return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  const groups: string[] = [];
  for (let index = 0; index < IP_LENGTH; index += 2) {
    groups.push(((bytes[index]! << 8) | bytes[index + 1]!).toString(16));
  }
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
