import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { FRAME_HEADER_LENGTH, FrameType } from './codec.ts';
import { DerpEncodeError, DerpHandshakeError } from './errors.ts';
import { FrameReader } from './frame-reader.ts';
import {
  type ClientInfo,
  openClientInfo,
  openServerInfo,
  parseServerKey,
  type ServerInfo,
  sealClientInfo,
  sealServerInfo,
  serverKeyFrame,
} from './handshake.ts';
import { generateNodeKeyPair, nodeKeyPairFromSecret } from './keys.ts';

const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
const payloadOf = (frame: Uint8Array) => frame.subarray(FRAME_HEADER_LENGTH);

const clientInfo: ClientInfo = { version: 2, meshKey: '', canAckPings: true, isProber: false };
const serverInfo: ServerInfo = { version: 2, tokenBucketBytesPerSecond: 1000, tokenBucketBytesBurst: 2000 };

// Produced by Go: golang.org/x/crypto/nacl/box.Seal (nonce prepended, as NodePrivate.SealTo does)
// over json.Marshal of structs carrying derp.ClientInfo's and derp.ServerInfo's json tags.
const goVector = {
  clientKeys: nodeKeyPairFromSecret(Uint8Array.from({ length: 32 }, (_, index) => index + 1)),
  serverKeys: nodeKeyPairFromSecret(Uint8Array.from({ length: 32 }, (_, index) => 0x40 + index)),
  nonce: Uint8Array.from({ length: 24 }, (_, index) => 0x10 + index),
  clientPublic: '07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c',
  serverPublic: '79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a',
  clientBox:
    '101112131415161718191a1b1c1d1e1f202122232425262798276369c61d0e976e76f75a18ced69a20ec0df4710708d8' +
    '3ece5b334d438a55d6de62da01c4e057c6111f13e3512ced',
  serverBox:
    '101112131415161718191a1b1c1d1e1f2021222324252627870b794aeb33b30200e316f5c5cea6c320ec0df4710708d8' +
    '3ece5b334d439d5bd3fa6ff324cee555c1715c13f45719f52230062d9954de795d60da1ae30f3c34373c5969cff98d6d' +
    '148f3c16656e5aea2b591699009f92ad5b442e',
};

test('the server key frame is the magic followed by the server public key', () => {
  const serverPublic = new Uint8Array(32).fill(9);
  const frame = serverKeyFrame(serverPublic);
  assert.deepEqual(
    [...frame.subarray(0, 13)],
    [0x01, 0, 0, 0, 40, 0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91],
  );
  assert.deepEqual(parseServerKey(payloadOf(frame)), serverPublic);
});

test('a server key payload with trailing bytes is accepted for forward compatibility', () => {
  const payload = new Uint8Array([...payloadOf(serverKeyFrame(new Uint8Array(32).fill(3))), 1, 2, 3]);
  assert.deepEqual(parseServerKey(payload), new Uint8Array(32).fill(3));
});

test('a server key payload that is short, oversized or lacks the magic is rejected', () => {
  const valid = payloadOf(serverKeyFrame(new Uint8Array(32).fill(3)));
  assert.throws(() => parseServerKey(valid.subarray(0, 39)), { reason: 'short' });
  assert.throws(() => parseServerKey(new Uint8Array(1025)), { reason: 'long' });
  const badMagic = valid.slice();
  badMagic[7] = 0;
  assert.throws(() => parseServerKey(badMagic), { code: 'SWY_ERR_DERP_HANDSHAKE', reason: 'bad_magic' });
});

test('client info sealed here matches the bytes Go produces for the same keys and nonce', () => {
  const { clientKeys, serverKeys, nonce } = goVector;
  assert.equal(Buffer.from(clientKeys.publicKey).toString('hex'), goVector.clientPublic);
  const frame = sealClientInfo(clientKeys, serverKeys.publicKey, clientInfo, nonce);
  assert.equal(frame[0], FrameType.ClientInfo);
  assert.deepEqual(payloadOf(frame), hex(goVector.clientPublic + goVector.clientBox));
});

test('server info sealed here matches the bytes Go produces for the same keys and nonce', () => {
  const { clientKeys, serverKeys, nonce } = goVector;
  assert.equal(Buffer.from(serverKeys.publicKey).toString('hex'), goVector.serverPublic);
  const frame = sealServerInfo(serverKeys, clientKeys.publicKey, serverInfo, nonce);
  assert.equal(frame[0], FrameType.ServerInfo);
  assert.deepEqual(payloadOf(frame), hex(goVector.serverBox));
});

test('the whole login round-trips from server key to server info', () => {
  const serverKeys = generateNodeKeyPair();
  const clientKeys = generateNodeKeyPair();
  const frames: Uint8Array[] = [];
  const reader = new FrameReader();
  const collect = (bytes: Uint8Array) => reader.push(bytes, (_, payload) => frames.push(payload.slice()));

  collect(serverKeyFrame(serverKeys.publicKey));
  const serverPublic = parseServerKey(frames[0]!);
  const info: ClientInfo = { version: 2, meshKey: 'f'.repeat(64), canAckPings: true, isProber: true };
  collect(sealClientInfo(clientKeys, serverPublic, info));
  const opened = openClientInfo(serverKeys, frames[1]!);
  assert.deepEqual(opened, { clientPublic: clientKeys.publicKey, info });

  collect(sealServerInfo(serverKeys, opened.clientPublic, serverInfo));
  assert.deepEqual(openServerInfo(clientKeys, serverPublic, frames[2]!), serverInfo);
});

test('a tampered client or server info box is rejected', () => {
  const serverKeys = generateNodeKeyPair();
  const clientKeys = generateNodeKeyPair();
  const clientPayload = payloadOf(sealClientInfo(clientKeys, serverKeys.publicKey, clientInfo)).slice();
  clientPayload[clientPayload.length - 1]! ^= 1;
  assert.throws(() => openClientInfo(serverKeys, clientPayload), { reason: 'box_open' });

  const serverPayload = payloadOf(sealServerInfo(serverKeys, clientKeys.publicKey, serverInfo)).slice();
  serverPayload[3]! ^= 0x80;
  assert.throws(() => openServerInfo(clientKeys, serverKeys.publicKey, serverPayload), {
    reason: 'box_open',
  });
});

test('a box sealed for another key is rejected', () => {
  const serverKeys = generateNodeKeyPair();
  const otherServer = generateNodeKeyPair();
  const clientKeys = generateNodeKeyPair();
  const clientPayload = payloadOf(sealClientInfo(clientKeys, otherServer.publicKey, clientInfo));
  assert.throws(() => openClientInfo(serverKeys, clientPayload), DerpHandshakeError);

  const serverPayload = payloadOf(sealServerInfo(otherServer, clientKeys.publicKey, serverInfo));
  assert.throws(() => openServerInfo(clientKeys, serverKeys.publicKey, serverPayload), {
    reason: 'box_open',
  });
});

test('a client claiming another public key than the one it sealed with is rejected', () => {
  const serverKeys = generateNodeKeyPair();
  const payload = payloadOf(sealClientInfo(generateNodeKeyPair(), serverKeys.publicKey, clientInfo)).slice();
  payload.set(generateNodeKeyPair().publicKey, 0);
  assert.throws(() => openClientInfo(serverKeys, payload), { reason: 'box_open' });
});

test('client info JSON is read like Go reads it: case-insensitive keys, unknown keys ignored', () => {
  const serverKeys = generateNodeKeyPair();
  const clientKeys = generateNodeKeyPair();
  const json = '{"Version":2,"canackpings":true,"AppName":"x","meshkey":null}';
  const payload = sealRawClientInfo(clientKeys, serverKeys.publicKey, json);
  assert.deepEqual(openClientInfo(serverKeys, payload).info, {
    version: 2,
    meshKey: '',
    canAckPings: true,
    isProber: false,
  });
});

test('client info that is not a JSON object with the right field types is rejected', () => {
  const serverKeys = generateNodeKeyPair();
  const clientKeys = generateNodeKeyPair();
  for (const json of [
    'not json',
    '[1]',
    '"text"',
    '{"version":"2"}',
    '{"version":2.5}',
    '{"CanAckPings":1}',
  ]) {
    const payload = sealRawClientInfo(clientKeys, serverKeys.publicKey, json);
    assert.throws(() => openClientInfo(serverKeys, payload), { reason: 'bad_json' }, json);
  }
});

test('client info payloads that are short, oversized or from the zero key are rejected before opening', () => {
  const serverKeys = generateNodeKeyPair();
  assert.throws(() => openClientInfo(serverKeys, new Uint8Array(55)), { reason: 'short' });
  assert.throws(() => openClientInfo(serverKeys, new Uint8Array((256 << 10) + 1)), { reason: 'long' });
  assert.throws(() => openClientInfo(serverKeys, new Uint8Array(100)), { reason: 'zero_key' });
  assert.throws(() => openServerInfo(serverKeys, generateNodeKeyPair().publicKey, new Uint8Array(23)), {
    reason: 'short',
  });
});

test('sealing to a zero or wrongly sized key is refused', () => {
  const keys = generateNodeKeyPair();
  assert.throws(() => sealClientInfo(keys, new Uint8Array(32), clientInfo), DerpEncodeError);
  assert.throws(() => sealServerInfo(keys, new Uint8Array(31), serverInfo), DerpEncodeError);
  assert.throws(() => sealClientInfo(keys, keys.publicKey, clientInfo, new Uint8Array(23)), DerpEncodeError);
});

test('handshake parsers throw only handshake errors on random and mutated input', { timeout: 30_000 }, () => {
  const serverKeys = generateNodeKeyPair();
  const clientKeys = generateNodeKeyPair();
  const valid = [
    payloadOf(serverKeyFrame(serverKeys.publicKey)),
    payloadOf(sealClientInfo(clientKeys, serverKeys.publicKey, clientInfo)),
    payloadOf(sealServerInfo(serverKeys, clientKeys.publicKey, serverInfo)),
  ];
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc
      .tuple(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      )
      .map(([bytes, edits]) => {
        const mutated = bytes.slice();
        for (const [position, value] of edits) mutated[position % mutated.length] = value;
        return mutated;
      }),
  );
  fc.assert(
    fc.property(input, (payload) => {
      for (const parse of [
        () => parseServerKey(payload),
        () => openClientInfo(serverKeys, payload),
        () => openServerInfo(clientKeys, serverKeys.publicKey, payload),
      ]) {
        try {
          parse();
        } catch (error) {
          assert.ok(error instanceof DerpHandshakeError, `unexpected ${String(error)}`);
        }
      }
    }),
    { numRuns: 500 },
  );
});

function sealRawClientInfo(
  clientKeys: ReturnType<typeof generateNodeKeyPair>,
  serverPublic: Uint8Array,
  json: string,
): Uint8Array {
  const nonce = new Uint8Array(24).fill(1);
  const box = nacl.box(new TextEncoder().encode(json), nonce, serverPublic, clientKeys.secretKey);
  return new Uint8Array([...clientKeys.publicKey, ...nonce, ...box]);
}
