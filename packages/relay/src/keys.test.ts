import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DerpKeyError } from './errors.ts';
import {
  formatPrivateKey,
  formatPublicKey,
  generateNodeKeyPair,
  nodeKeyPairFromSecret,
  parsePrivateKey,
  parsePublicKey,
  shortKey,
} from './keys.ts';

const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));

test('a key pair from a secret derives the X25519 public key of RFC 7748 section 6.1', () => {
  const pair = nodeKeyPairFromSecret(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
  assert.equal(
    Buffer.from(pair.publicKey).toString('hex'),
    '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  );
});

test('generated secrets are clamped as Tailscale clamps node keys', () => {
  const { secretKey } = generateNodeKeyPair();
  assert.equal(secretKey[0]! & 7, 0);
  assert.equal(secretKey[31]! & 0xc0, 0x40);
});

test('keys are written as privkey: and nodekey: followed by 64 lower-case hex digits', () => {
  const key = Uint8Array.from({ length: 32 }, (_, index) => index * 7);
  assert.equal(formatPrivateKey(key), `privkey:${Buffer.from(key).toString('hex')}`);
  assert.equal(formatPublicKey(key), `nodekey:${Buffer.from(key).toString('hex')}`);
});

test('key text round-trips for any 32 bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
      assert.deepEqual(parsePublicKey(formatPublicKey(key)), key);
      assert.deepEqual(parsePrivateKey(formatPrivateKey(key)), key);
    }),
  );
});

test('upper-case hex digits are accepted, as Go parses them', () => {
  assert.deepEqual(parsePublicKey(`nodekey:${'AB'.repeat(32)}`), new Uint8Array(32).fill(0xab));
});

test('key text with the wrong prefix, length or digits is rejected without echoing it', () => {
  const secretDigits = 'c0ffee'.repeat(10).padEnd(64, '0');
  for (const text of [
    `nodekey:${secretDigits}`,
    `privkey:${secretDigits.slice(2)}`,
    `privkey:${secretDigits}00`,
    `privkey:${secretDigits.slice(1)}g`,
    secretDigits,
    '',
  ]) {
    assert.throws(
      () => parsePrivateKey(text),
      (error) =>
        error instanceof DerpKeyError &&
        error.code === 'SWY_ERR_DERP_KEY' &&
        !error.message.includes('c0ffee'),
    );
  }
  assert.throws(() => parsePublicKey(`privkey:${'00'.repeat(32)}`), /must start with "nodekey:"/);
});

test('raw keys of the wrong size and the zero secret are rejected', () => {
  assert.throws(() => nodeKeyPairFromSecret(new Uint8Array(31)), DerpKeyError);
  assert.throws(() => nodeKeyPairFromSecret(new Uint8Array(32)), DerpKeyError);
  assert.throws(() => formatPublicKey(new Uint8Array(33)), DerpKeyError);
});

test('the short form is the first five base64 characters in brackets, empty for the zero key', () => {
  const key = new Uint8Array(32).fill(0xff);
  assert.equal(shortKey(key), '[/////]');
  assert.equal(shortKey(Uint8Array.from({ length: 32 }, (_, index) => index)), '[AAECA]');
  assert.equal(shortKey(new Uint8Array(32)), '');
});
