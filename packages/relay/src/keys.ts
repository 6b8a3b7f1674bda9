import nacl from 'tweetnacl';
import { KEY_LENGTH } from './codec.ts';
import { DerpKeyError } from './errors.ts';

/** Text prefixes from Tailscale's types/key/node.go (nodePrivateHexPrefix, nodePublicHexPrefix). */
export const PRIVATE_KEY_PREFIX = 'privkey:';
export const PUBLIC_KEY_PREFIX = 'nodekey:';

/** A Curve25519 node key pair: the DERP identity of a client or server. */
export interface NodeKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** A fresh key pair; the secret is clamped, as Tailscale's key.NewNode does, so its text form matches. */
export function generateNodeKeyPair(): NodeKeyPair {
  const secretKey = nacl.randomBytes(KEY_LENGTH);
  secretKey[0]! &= 248;
  secretKey[31] = (secretKey[31]! & 127) | 64;
  return nodeKeyPairFromSecret(secretKey);
}

export function nodeKeyPairFromSecret(secretKey: Uint8Array): NodeKeyPair {
  checkRawKey('secret key', secretKey);
  if (isZeroKey(secretKey)) throw new DerpKeyError('secret key is all zeros; generate a real key');
  const pair = nacl.box.keyPair.fromSecretKey(secretKey);
  return { publicKey: pair.publicKey, secretKey: pair.secretKey };
}

export function isZeroKey(key: Uint8Array): boolean {
  return key.every((byte) => byte === 0);
}

function checkRawKey(what: string, key: Uint8Array): void {
  if (key.length !== KEY_LENGTH) {
    throw new DerpKeyError(`${what} is ${key.length} bytes; a node key is ${KEY_LENGTH}`);
  }
}

/** `privkey:` + 64 lower-case hex digits, as Tailscale writes NodePrivate. */
export function formatPrivateKey(secretKey: Uint8Array): string {
  checkRawKey('secret key', secretKey);
  return PRIVATE_KEY_PREFIX + Buffer.from(secretKey).toString('hex');
}

/** `nodekey:` + 64 lower-case hex digits, as Tailscale writes NodePublic. */
export function formatPublicKey(publicKey: Uint8Array): string {
  checkRawKey('public key', publicKey);
  return PUBLIC_KEY_PREFIX + Buffer.from(publicKey).toString('hex');
}

export function parsePrivateKey(text: string): Uint8Array {
  return parseKeyText(text, PRIVATE_KEY_PREFIX, 'private');
}

export function parsePublicKey(text: string): Uint8Array {
  return parseKeyText(text, PUBLIC_KEY_PREFIX, 'public');
}

const HEX_DIGITS = /^[0-9a-fA-F]*$/;

// Messages never echo the text: it may be (part of) a private key, as Tailscale's parseHex notes.
function parseKeyText(text: string, prefix: string, kind: string): Uint8Array {
  if (!text.startsWith(prefix)) {
    throw new DerpKeyError(`${kind} key text must start with "${prefix}"`);
  }
  const digits = text.slice(prefix.length);
  if (digits.length !== KEY_LENGTH * 2) {
    throw new DerpKeyError(
      `${kind} key text has ${digits.length} hex digits after "${prefix}"; want ${KEY_LENGTH * 2}`,
    );
  }
  if (!HEX_DIGITS.test(digits)) {
    throw new DerpKeyError(`${kind} key text has a character that is not a hex digit`);
  }
  return Uint8Array.from(Buffer.from(digits, 'hex'));
}

/**
 * Tailscale's ShortString for logs: the first five base64 characters in brackets, `""` for the
 * zero key. For log lines only; a key is never a metric label.
 */
export function shortKey(publicKey: Uint8Array): string {
  if (isZeroKey(publicKey)) return '';
  return `[${Buffer.from(publicKey.subarray(0, 4)).toString('base64').slice(0, 5)}]`;
}
