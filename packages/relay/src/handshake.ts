import nacl from 'tweetnacl';
import { encodeFrame, FrameType, KEY_LENGTH, MAGIC, NONCE_LENGTH } from './codec.ts';
import { DerpEncodeError, DerpHandshakeError } from './errors.ts';
import { isZeroKey, type NodeKeyPair } from './keys.ts';

/*
 * Login, per derp.go: the server sends ServerKey (magic + its public key); the client sends
 * ClientInfo (its public key + nonce + NaCl box of JSON, sealed to the server key); the server
 * answers ServerInfo (nonce + NaCl box of JSON, sealed to the client key).
 */

/** The client reads the server key frame with a 1 KiB limit (derp_client.go recvServerKey). */
export const MAX_SERVER_KEY_PAYLOAD = 1 << 10;
/** derper refuses client info frames above 256 KiB before opening the box (recvClientKey). */
export const MAX_CLIENT_INFO_PAYLOAD = 256 << 10;
/** The client refuses server info above nonce + 1 MiB (parseServerInfo, maxInfoLen). */
export const MAX_SERVER_INFO_PAYLOAD = NONCE_LENGTH + (1 << 20);

/**
 * What a client declares at login (derp.ClientInfo). On the wire the JSON keys are Go's:
 * `meshKey`, `version`, `CanAckPings`, `IsProber`.
 */
export interface ClientInfo {
  /** DERP protocol version the client speaks; 2 today. */
  readonly version: number;
  /** Pre-shared mesh key that makes the client a trusted mesh peer; empty for regular clients. */
  readonly meshKey: string;
  readonly canAckPings: boolean;
  readonly isProber: boolean;
}

/**
 * What the server declares at login (derp.ServerInfo). On the wire the JSON keys are Go's:
 * `version`, `TokenBucketBytesPerSecond`, `TokenBucketBytesBurst`; zero means unlimited.
 */
export interface ServerInfo {
  readonly version: number;
  readonly tokenBucketBytesPerSecond: number;
  readonly tokenBucketBytesBurst: number;
}

export interface OpenedClientInfo {
  readonly clientPublic: Uint8Array;
  readonly info: ClientInfo;
}

/** The first frame a server sends: magic then its public key. Returns the whole frame. */
export function serverKeyFrame(serverPublic: Uint8Array): Uint8Array {
  checkKey('serverPublic', serverPublic);
  const payload = new Uint8Array(MAGIC.length + KEY_LENGTH);
  payload.set(MAGIC, 0);
  payload.set(serverPublic, MAGIC.length);
  return encodeFrame(FrameType.ServerKey, payload);
}

/** The server's public key from a server key payload; extra trailing bytes are allowed for future use. */
export function parseServerKey(payload: Uint8Array): Uint8Array {
  if (payload.length < MAGIC.length + KEY_LENGTH) {
    throw new DerpHandshakeError('short', `server key payload is ${payload.length} bytes; want at least 40`);
  }
  if (payload.length > MAX_SERVER_KEY_PAYLOAD) {
    throw new DerpHandshakeError('long', `server key payload is ${payload.length} bytes; at most 1024`);
  }
  if (!MAGIC.every((byte, index) => payload[index] === byte)) {
    throw new DerpHandshakeError(
      'bad_magic',
      'server key payload does not start with the DERP magic; not a DERP server',
    );
  }
  const serverPublic = payload.slice(MAGIC.length, MAGIC.length + KEY_LENGTH);
  if (isZeroKey(serverPublic)) throw new DerpHandshakeError('zero_key', 'server public key is all zeros');
  return serverPublic;
}

/** The client's login frame: its public key, then nonce + box of the ClientInfo JSON. Returns the whole frame. */
export function sealClientInfo(
  clientKeys: NodeKeyPair,
  serverPublic: Uint8Array,
  info: ClientInfo,
  nonce: Uint8Array = nacl.randomBytes(NONCE_LENGTH),
): Uint8Array {
  checkKey('serverPublic', serverPublic);
  const sealed = seal(clientInfoJson(info), nonce, serverPublic, clientKeys.secretKey);
  const payload = new Uint8Array(KEY_LENGTH + sealed.length);
  payload.set(clientKeys.publicKey, 0);
  payload.set(sealed, KEY_LENGTH);
  return encodeFrame(FrameType.ClientInfo, payload);
}

/** Server side: authenticates and decrypts a client info payload. */
export function openClientInfo(serverKeys: NodeKeyPair, payload: Uint8Array): OpenedClientInfo {
  if (payload.length < KEY_LENGTH + NONCE_LENGTH) {
    throw new DerpHandshakeError('short', `client info payload is ${payload.length} bytes; want at least 56`);
  }
  if (payload.length > MAX_CLIENT_INFO_PAYLOAD) {
    throw new DerpHandshakeError(
      'long',
      `client info payload is ${payload.length} bytes; at most ${MAX_CLIENT_INFO_PAYLOAD}`,
    );
  }
  const clientPublic = payload.slice(0, KEY_LENGTH);
  if (isZeroKey(clientPublic)) throw new DerpHandshakeError('zero_key', 'client public key is all zeros');
  const json = open(payload.subarray(KEY_LENGTH), clientPublic, serverKeys.secretKey, 'client info');
  return { clientPublic, info: parseClientInfo(json) };
}

/** The server's reply: nonce + box of the ServerInfo JSON, sealed to the client. Returns the whole frame. */
export function sealServerInfo(
  serverKeys: NodeKeyPair,
  clientPublic: Uint8Array,
  info: ServerInfo,
  nonce: Uint8Array = nacl.randomBytes(NONCE_LENGTH),
): Uint8Array {
  checkKey('clientPublic', clientPublic);
  return encodeFrame(
    FrameType.ServerInfo,
    seal(serverInfoJson(info), nonce, clientPublic, serverKeys.secretKey),
  );
}

/** Client side: authenticates and decrypts a server info payload from the server it logged in to. */
export function openServerInfo(
  clientKeys: NodeKeyPair,
  serverPublic: Uint8Array,
  payload: Uint8Array,
): ServerInfo {
  checkKey('serverPublic', serverPublic);
  if (payload.length < NONCE_LENGTH) {
    throw new DerpHandshakeError('short', `server info payload is ${payload.length} bytes; want at least 24`);
  }
  if (payload.length > MAX_SERVER_INFO_PAYLOAD) {
    throw new DerpHandshakeError(
      'long',
      `server info payload is ${payload.length} bytes; at most ${MAX_SERVER_INFO_PAYLOAD}`,
    );
  }
  return parseServerInfo(open(payload, serverPublic, clientKeys.secretKey, 'server info'));
}

function checkKey(field: string, key: Uint8Array): void {
  if (key.length !== KEY_LENGTH) throw new DerpEncodeError(field, `is ${key.length} bytes; a node key is 32`);
  if (isZeroKey(key)) throw new DerpEncodeError(field, 'is all zeros; NaCl box needs a real key');
}

/** nonce || box, the layout of Tailscale's NodePrivate.SealTo. */
function seal(json: string, nonce: Uint8Array, theirPublic: Uint8Array, mySecret: Uint8Array): Uint8Array {
  if (nonce.length !== NONCE_LENGTH) throw new DerpEncodeError('nonce', `is ${nonce.length} bytes; want 24`);
  const box = nacl.box(new TextEncoder().encode(json), nonce, theirPublic, mySecret);
  const sealed = new Uint8Array(NONCE_LENGTH + box.length);
  sealed.set(nonce, 0);
  sealed.set(box, NONCE_LENGTH);
  return sealed;
}

function open(sealed: Uint8Array, theirPublic: Uint8Array, mySecret: Uint8Array, what: string): unknown {
  const nonce = sealed.subarray(0, NONCE_LENGTH);
  const plain = nacl.box.open(sealed.subarray(NONCE_LENGTH), nonce, theirPublic, mySecret);
  if (plain === null) {
    throw new DerpHandshakeError(
      'box_open',
      `${what} box does not open with the peer's key; wrong key or tampered`,
    );
  }
  try {
    return JSON.parse(new TextDecoder().decode(plain));
  } catch {
    throw new DerpHandshakeError('bad_json', `${what} is not valid JSON`);
  }
}

// Field order and omission follow Go's json.Marshal of the tagged structs, so bytes match derper's.
function clientInfoJson(info: ClientInfo): string {
  const wire: Record<string, unknown> = {};
  if (info.meshKey !== '') wire.meshKey = info.meshKey;
  if (info.version !== 0) wire.version = info.version;
  wire.CanAckPings = info.canAckPings;
  if (info.isProber) wire.IsProber = true;
  return JSON.stringify(wire);
}

function serverInfoJson(info: ServerInfo): string {
  const wire: Record<string, unknown> = {};
  if (info.version !== 0) wire.version = info.version;
  if (info.tokenBucketBytesPerSecond !== 0) wire.TokenBucketBytesPerSecond = info.tokenBucketBytesPerSecond;
  if (info.tokenBucketBytesBurst !== 0) wire.TokenBucketBytesBurst = info.tokenBucketBytesBurst;
  return JSON.stringify(wire);
}

function parseClientInfo(json: unknown): ClientInfo {
  const fields = jsonObject(json, 'client info');
  return {
    version: integerField(fields, 'version', 'client info'),
    meshKey: stringField(fields, 'meshKey', 'client info'),
    canAckPings: booleanField(fields, 'CanAckPings', 'client info'),
    isProber: booleanField(fields, 'IsProber', 'client info'),
  };
}

function parseServerInfo(json: unknown): ServerInfo {
  const fields = jsonObject(json, 'server info');
  return {
    version: integerField(fields, 'version', 'server info'),
    tokenBucketBytesPerSecond: integerField(fields, 'TokenBucketBytesPerSecond', 'server info'),
    tokenBucketBytesBurst: integerField(fields, 'TokenBucketBytesBurst', 'server info'),
  };
}

// Go's encoding/json decodes `null` as the zero struct, ignores unknown keys and matches keys
// case-insensitively; these helpers do the same so any client derper accepts is accepted here.
function jsonObject(json: unknown, what: string): Record<string, unknown> {
  if (json === null) return {};
  if (typeof json !== 'object' || Array.isArray(json)) {
    throw new DerpHandshakeError('bad_json', `${what} JSON is not an object`);
  }
  return json as Record<string, unknown>;
}

function field(fields: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(fields, name)) return fields[name];
  const lower = name.toLowerCase();
  const match = Object.keys(fields).find((key) => key.toLowerCase() === lower);
  return match === undefined ? undefined : fields[match];
}

function integerField(fields: Record<string, unknown>, name: string, what: string): number {
  const value = field(fields, name);
  if (value === undefined || value === null) return 0;
  if (!Number.isSafeInteger(value))
    throw new DerpHandshakeError('bad_json', `${what} "${name}" is not an integer`);
  return value as number;
}

function stringField(fields: Record<string, unknown>, name: string, what: string): string {
  const value = field(fields, name);
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string')
    throw new DerpHandshakeError('bad_json', `${what} "${name}" is not a string`);
  return value;
}

function booleanField(fields: Record<string, unknown>, name: string, what: string): boolean {
  const value = field(fields, name);
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean')
    throw new DerpHandshakeError('bad_json', `${what} "${name}" is not a boolean`);
  return value;
}
