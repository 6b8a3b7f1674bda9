import assert from 'node:assert/strict';
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  type ProxiedAddresses,
  ProxyAddressError,
  type ProxyHeader,
  ProxyProtocolError,
} from './proxy-protocol.ts';

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const CODE = 'SWY_ERR_PROXY_PROTOCOL_HEADER';

function bytes(...parts: (number[] | string)[]): Buffer {
  return Buffer.concat(
    parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part))),
  );
}

function addresses(
  source: string,
  sourcePort: number,
  destination: string,
  destinationPort: number,
): ProxiedAddresses {
  return { sourceAddress: source, sourcePort, destinationAddress: destination, destinationPort };
}

function assertRejected(buffer: Buffer, message?: RegExp): void {
  assert.throws(
    () => decodeProxyHeader(buffer),
    (error: unknown) => {
      assert.ok(error instanceof ProxyProtocolError, `expected ProxyProtocolError, got ${String(error)}`);
      assert.equal(error.code, CODE);
      if (message) assert.match(error.message, message);
      return true;
    },
    JSON.stringify(buffer.toString('latin1')),
  );
}

const spec = addresses('192.168.0.1', 56324, '192.168.0.11', 443);

test('v1 writes the spec’s example line for TCP over IPv4', () => {
  assert.equal(encodeProxyV1(spec).toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
});

test('v1 writes TCP over IPv6 in RFC 5952 form', () => {
  const line = encodeProxyV1(addresses('2001:0DB8:0:0:0:0:0:1', 1234, '2001:db8::2', 443));
  assert.equal(line.toString('latin1'), 'PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n');
});

test('v1 compresses the longest run of zero groups and never a single zero group', () => {
  const cases = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['::1.2.3.4', '::102:304'],
  ];
  for (const [address, written] of cases) {
    const line = encodeProxyV1(addresses(address!, 1, '2001:db8::2', 2)).toString('latin1');
    assert.equal(line, `PROXY TCP6 ${written} 2001:db8::2 1 2\r\n`);
  }
});

test('v1 writes IPv4-mapped addresses as TCP4', () => {
  const line = encodeProxyV1(addresses('::ffff:192.0.2.1', 50000, '::FFFF:c000:202', 8080));
  assert.equal(line.toString('latin1'), 'PROXY TCP4 192.0.2.1 192.0.2.2 50000 8080\r\n');
});

test('v1 writes mixed families as TCP6 with the IPv4 address mapped', () => {
  assert.equal(
    encodeProxyV1(addresses('192.0.2.1', 1, '2001:db8::2', 2)).toString('latin1'),
    'PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 2\r\n',
  );
  assert.equal(
    encodeProxyV1(addresses('2001:db8::1', 1, '::ffff:192.0.2.2', 2)).toString('latin1'),
    'PROXY TCP6 2001:db8::1 ::ffff:192.0.2.2 1 2\r\n',
  );
});

test('v1 drops IPv6 zone ids, which the protocol cannot carry', () => {
  assert.equal(
    encodeProxyV1(addresses('fe80::1%eth0', 1, 'fe80::2%2', 2)).toString('latin1'),
    'PROXY TCP6 fe80::1 fe80::2 1 2\r\n',
  );
});

test('v1 writes UNKNOWN when there are no addresses', () => {
  assert.equal(encodeProxyV1(undefined).toString('latin1'), 'PROXY UNKNOWN\r\n');
});

test('v1 lines are at most the spec’s 104 bytes for TCP6', () => {
  const longest = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  assert.equal(encodeProxyV1(addresses(longest, 65535, longest, 65535)).length, 104);
});

test('v2 writes TCP over IPv4 byte for byte', () => {
  assert.deepEqual(
    encodeProxyV2(spec),
    bytes(
      SIGNATURE,
      [0x21, 0x11, 0x00, 0x0c],
      [192, 168, 0, 1],
      [192, 168, 0, 11],
      [0xdc, 0x04],
      [0x01, 0xbb],
    ),
  );
});

test('v2 writes TCP over IPv6 byte for byte', () => {
  const source = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
  const destination = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];
  assert.deepEqual(
    encodeProxyV2(addresses('2001:db8::1', 1234, '2001:db8::2', 443)),
    bytes(SIGNATURE, [0x21, 0x21, 0x00, 0x24], source, destination, [0x04, 0xd2], [0x01, 0xbb]),
  );
});

test('v2 writes IPv4-mapped addresses as IPv4 and mixed families as IPv6', () => {
  assert.deepEqual(
    encodeProxyV2(addresses('::ffff:192.0.2.1', 1, '192.0.2.2', 2)),
    bytes(SIGNATURE, [0x21, 0x11, 0x00, 0x0c], [192, 0, 2, 1], [192, 0, 2, 2], [0, 1], [0, 2]),
  );
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1];
  const ipv6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];
  assert.deepEqual(
    encodeProxyV2(addresses('192.0.2.1', 1, '2001:db8::2', 2)),
    bytes(SIGNATURE, [0x21, 0x21, 0x00, 0x24], mapped, ipv6, [0, 1], [0, 2]),
  );
});

test('v2 writes a LOCAL header with no address block when there are no addresses', () => {
  assert.deepEqual(encodeProxyV2(undefined), bytes(SIGNATURE, [0x20, 0x00, 0x00, 0x00]));
});

test('the encoders reject what is not an IP address or a port, naming the field', () => {
  const invalid: [Partial<ProxiedAddresses>, string][] = [
    [{ sourceAddress: 'example.com' }, 'sourceAddress'],
    [{ destinationAddress: '' }, 'destinationAddress'],
    [{ sourceAddress: '01.2.3.4' }, 'sourceAddress'],
    [{ sourceAddress: '192.0.2.1%eth0' }, 'sourceAddress'],
    [{ sourcePort: 65536 }, 'sourcePort'],
    [{ destinationPort: -1 }, 'destinationPort'],
    [{ sourcePort: 1.5 }, 'sourcePort'],
    [{ destinationPort: Number.NaN }, 'destinationPort'],
  ];
  for (const [override, field] of invalid) {
    for (const encode of [encodeProxyV1, encodeProxyV2]) {
      assert.throws(
        () => encode({ ...spec, ...override }),
        (error: unknown) => {
          assert.ok(error instanceof ProxyAddressError);
          assert.equal(error.code, 'SWY_ERR_PROXY_PROTOCOL_ADDRESS');
          assert.equal(error.field, field);
          assert.match(error.message, new RegExp(`${field} .* is not an`));
          return true;
        },
      );
    }
  }
});

test('decodes a v1 TCP4 line and reports its length, leaving the data after it', () => {
  const header = decodeProxyHeader(
    bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n'),
  );
  assert.deepEqual(header, { version: 1, command: 'proxy', addresses: spec, length: 47 });
});

test('decodes a v1 TCP6 line into RFC 5952 addresses', () => {
  const header = decodeProxyHeader(bytes('PROXY TCP6 2001:DB8:0::1 ::FFFF:192.0.2.1 0 65535\r\n'));
  assert.deepEqual(header?.addresses, addresses('2001:db8::1', 0, '::ffff:192.0.2.1', 65535));
});

test('decodes v1 UNKNOWN without addresses, ignoring the rest of the line', () => {
  assert.deepEqual(decodeProxyHeader(bytes('PROXY UNKNOWN\r\n')), {
    version: 1,
    command: 'proxy',
    addresses: undefined,
    length: 15,
  });
  const line = `PROXY UNKNOWN ${'x'.repeat(91)}\r\n`;
  assert.equal(line.length, 107);
  assert.equal(decodeProxyHeader(bytes(line))?.length, 107);
});

test('decodes a v2 IPv4 header and skips its TLVs', () => {
  const alpn = [0x01, 0x00, 0x02, 0x68, 0x32];
  const noop = [0x04, 0x00, 0x00];
  const buffer = bytes(
    SIGNATURE,
    [0x21, 0x11, 0x00, 0x14],
    [192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb],
    alpn,
    noop,
    'data',
  );
  assert.deepEqual(decodeProxyHeader(buffer), { version: 2, command: 'proxy', addresses: spec, length: 36 });
});

test('decodes a v2 LOCAL header without addresses, skipping whatever block it carries', () => {
  const buffer = bytes(SIGNATURE, [0x20, 0x11, 0x00, 0x03], [0xff, 0xff, 0xff]);
  assert.deepEqual(decodeProxyHeader(buffer), {
    version: 2,
    command: 'local',
    addresses: undefined,
    length: 19,
  });
});

test('decodes v2 UDP, UNIX and UNSPEC headers without addresses', () => {
  const udp = bytes(SIGNATURE, [0x21, 0x12, 0x00, 0x0c], new Array(12).fill(1));
  assert.deepEqual(decodeProxyHeader(udp), {
    version: 2,
    command: 'proxy',
    addresses: undefined,
    length: 28,
  });
  const unix = bytes(SIGNATURE, [0x21, 0x31, 0x00, 0xd8], new Array(216).fill(0x61));
  assert.deepEqual(decodeProxyHeader(unix), {
    version: 2,
    command: 'proxy',
    addresses: undefined,
    length: 232,
  });
  const unspec = bytes(SIGNATURE, [0x21, 0x00, 0x00, 0x02], [9, 9]);
  assert.deepEqual(decodeProxyHeader(unspec), {
    version: 2,
    command: 'proxy',
    addresses: undefined,
    length: 18,
  });
});

test('rejects malformed v1 lines', () => {
  const lines = [
    'GET / HTTP/1.1\r\n',
    'proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n',
    'PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n',
    'PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n',
    'PROXY TCP4 192.00.2.1 192.0.2.2 1 2\r\n',
    'PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n',
    'PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n',
    'PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n',
    'PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n',
    'PROXY TCP6 1::2::3 2001:db8::2 1 2\r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1 -2\r\n',
    'PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n',
    'PROXY UNKNOWNX\r\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n',
    'PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX',
    'PROXY TCP4 192.0.2.1\r\n192.0.2.2 1 2\r\n',
    `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`,
  ];
  for (const line of lines) assertRejected(bytes(line));
});

test('rejects malformed v2 headers', () => {
  const ipv4Block = [192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2];
  assertRejected(bytes(SIGNATURE.slice(0, 11), [0x0b, 0x21, 0x11, 0x00, 0x0c], ipv4Block), /signature/);
  assertRejected(bytes(SIGNATURE, [0x11, 0x11, 0x00, 0x0c], ipv4Block), /0x11 is not 0x20/);
  assertRejected(bytes(SIGNATURE, [0x22, 0x11, 0x00, 0x0c], ipv4Block), /0x22 is not 0x20/);
  assertRejected(bytes(SIGNATURE, [0x21, 0x41, 0x00, 0x0c], ipv4Block), /0x41 is unassigned/);
  assertRejected(bytes(SIGNATURE, [0x21, 0x13, 0x00, 0x0c], ipv4Block), /0x13 is unassigned/);
  assertRejected(
    bytes(SIGNATURE, [0x21, 0x11, 0x00, 0x0b], ipv4Block),
    /length 11 is less than the 12 address bytes/,
  );
  assertRejected(bytes(SIGNATURE, [0x21, 0x21, 0x00, 0x0c], ipv4Block), /length 12 is less than the 36/);
  assertRejected(
    bytes(SIGNATURE, [0x21, 0x11, 0x00, 0x11], ipv4Block, [0x04, 0x00, 0x03, 0, 0]),
    /runs past/,
  );
  assertRejected(
    bytes(SIGNATURE, [0x21, 0x11, 0x00, 0x0e], ipv4Block, [0x04, 0x00]),
    /2 bytes too short for a TLV/,
  );
});

test('rejects a broken header as soon as its first bytes show it, without waiting for the rest', () => {
  assertRejected(bytes([0x0d, 0x0a, 0x0d, 0x0b]));
  assertRejected(bytes(SIGNATURE, [0x31]));
  assertRejected(bytes(SIGNATURE, [0x21, 0x51]));
  assertRejected(bytes(SIGNATURE, [0x21, 0x21, 0x00, 0x10]));
  assertRejected(bytes(SIGNATURE, [0x21, 0x11, 0x01, 0x00], new Array(12).fill(0), [0x04, 0x01]));
  assertRejected(bytes('PROXY TCP5'));
  assertRejected(bytes('PROXY TCP4 1.2.3.04'));
  assertRejected(bytes('PROXY TCP4 1.2.3.4 '.padEnd(106, '5')));
  assertRejected(bytes(`PROXY UNKNOWN ${'x'.repeat(92)}`));
  const longest = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255';
  assertRejected(bytes(`PROXY TCP6 ${longest} ${longest}`), /cannot end within 107 bytes/);
});

const port = fc.integer({ min: 0, max: 65535 });
const ipAddress = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4().map((ipv4) => `::ffff:${ipv4}`),
);
const proxiedAddresses = fc.record({
  sourceAddress: ipAddress,
  sourcePort: port,
  destinationAddress: ipAddress,
  destinationPort: port,
});

/** Canonical text from the system's inet_ntop, independent of the code under test. */
function canonical(address: string): string {
  return isIPv4(address) ? address : new SocketAddress({ address, family: 'ipv6' }).address;
}

function unmapped(address: string): string {
  const text = canonical(address);
  return text.startsWith('::ffff:') && isIPv4(text.slice(7)) ? text.slice(7) : text;
}

/** What a receiver should learn: IPv4 when both are IPv4 or mapped, otherwise both IPv6. */
function expectedAddresses(sent: ProxiedAddresses): ProxiedAddresses {
  const source = unmapped(sent.sourceAddress);
  const destination = unmapped(sent.destinationAddress);
  const bothIPv4 = isIPv4(source) && isIPv4(destination);
  const written = (address: string) => (bothIPv4 || !isIPv4(address) ? address : `::ffff:${address}`);
  return { ...sent, sourceAddress: written(source), destinationAddress: written(destination) };
}

function canonicalAddresses(received: ProxiedAddresses | undefined): ProxiedAddresses | undefined {
  if (received === undefined) return undefined;
  return {
    ...received,
    sourceAddress: canonical(received.sourceAddress),
    destinationAddress: canonical(received.destinationAddress),
  };
}

test('v1 and v2 headers decode to the addresses and ports they were encoded from', () => {
  fc.assert(
    fc.property(proxiedAddresses, fc.uint8Array({ maxLength: 32 }), (sent, payload) => {
      for (const [version, encode] of [
        [1, encodeProxyV1],
        [2, encodeProxyV2],
      ] as const) {
        const header = encode(sent);
        const decoded = decodeProxyHeader(Buffer.concat([header, payload]));
        assert.equal(decoded?.version, version);
        assert.equal(decoded.command, 'proxy');
        assert.equal(decoded.length, header.length);
        assert.deepEqual(canonicalAddresses(decoded.addresses), canonicalAddresses(expectedAddresses(sent)));
      }
    }),
    { numRuns: 2000 },
  );
});

const tlv = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 }))
  .map(([type, value]) => bytes([type, value.length >> 8, value.length & 0xff], [...value]));

/** Valid headers of every kind the decoder accepts, including TLVs a sender may add. */
const validHeader: fc.Arbitrary<Buffer> = fc.oneof(
  proxiedAddresses.map(encodeProxyV1),
  proxiedAddresses.map(encodeProxyV2),
  fc.constant(encodeProxyV1(undefined)),
  fc.constant(encodeProxyV2(undefined)),
  fc.string({ maxLength: 92 }).map((rest) => bytes(`PROXY UNKNOWN ${rest.replace(/[^ -~]/g, '')}\r\n`)),
  fc.tuple(proxiedAddresses.map(encodeProxyV2), fc.array(tlv, { maxLength: 4 })).map(([header, tlvs]) => {
    const withTlvs = Buffer.concat([header, ...tlvs]);
    withTlvs.writeUInt16BE(withTlvs.length - 16, 14);
    return withTlvs;
  }),
);

test('every strict prefix of a valid header asks for more bytes', () => {
  fc.assert(
    fc.property(validHeader, (header) => {
      assert.equal(decodeProxyHeader(header)?.length, header.length);
      for (let length = 0; length < header.length; length++) {
        assert.equal(decodeProxyHeader(header.subarray(0, length)), undefined, `prefix of ${length} bytes`);
      }
    }),
    { numRuns: 500 },
  );
});

const V1_SHORTEST_LINES = [
  'PROXY UNKNOWN\r\n',
  'PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n',
  'PROXY TCP6 :: :: 0 0\r\n',
];
const V1_SHORTEST_FIELDS = { TCP4: ['0.0.0.0', '0.0.0.0', '0', '0'], TCP6: ['::', '::', '0', '0'] };

/** Every string over "0:." up to 7 characters, shortest first: enough to end any partial address. */
const ADDRESS_ENDINGS = (() => {
  const endings = [''];
  for (let start = 0; endings.length < 3280; start++) {
    for (const character of '0:.') endings.push(endings[start] + character);
  }
  return endings;
})();

function isValidField(kind: 'ipv4' | 'ipv6' | 'port', field: string): boolean {
  if (kind === 'ipv4') return isIPv4(field);
  if (kind === 'ipv6') return isIPv6(field) && !field.includes('%');
  return /^(0|[1-9][0-9]{0,4})$/.test(field) && Number(field) <= 65535;
}

/**
 * The shortest valid v1 line starting with `partial`, found by brute force over field endings and
 * judged by node:net, not by the decoder; undefined if none is found.
 */
function completeV1(partial: string): string | undefined {
  if (partial.includes('\n')) return undefined;
  if (partial.endsWith('\r')) return `${partial}\n`;
  const shortest = V1_SHORTEST_LINES.find((line) => line.startsWith(partial));
  if (shortest !== undefined) return shortest;
  if (!partial.startsWith('PROXY ')) return undefined;
  const fields = partial.slice(6).split(' ');
  if (fields[0] === 'UNKNOWN') return `${partial}\r\n`;
  if (fields[0] !== 'TCP4' && fields[0] !== 'TCP6') return undefined;
  const last = fields.length - 1;
  if (last < 1 || last > 4) return undefined;
  const kind = last > 2 ? 'port' : fields[0] === 'TCP4' ? 'ipv4' : 'ipv6';
  const rest = V1_SHORTEST_FIELDS[fields[0]].slice(last).join(' ');
  for (const ending of kind === 'port' ? ['', '0'] : ADDRESS_ENDINGS) {
    if (!isValidField(kind, fields[last] + ending)) continue;
    const line = `${partial}${ending}${rest === '' ? '' : ` ${rest}`}\r\n`;
    return line.length <= 107 ? line : undefined;
  }
  return undefined;
}

const V2_ADDRESS_BYTES: Record<number, number> = { 17: 12, 18: 12, 33: 36, 34: 36, 49: 216, 50: 216 };

/** A valid v2 header starting with `prefix`: missing fixed bytes as for TCP4, TLVs padded out. */
function completeV2(prefix: Buffer): Buffer | undefined {
  const fixed = bytes(SIGNATURE, [0x21, 0x11, 0x00, 0x00]);
  prefix.copy(fixed, 0, 0, Math.min(prefix.length, 16));
  const addressBytes = fixed[12] === 0x21 ? (V2_ADDRESS_BYTES[fixed[13]!] ?? 0) : 0;
  if (prefix.length < 16) fixed[15] = fixed[14]! > 0 ? 0 : addressBytes;
  if (prefix.length < 15) fixed[14] = 0;
  const end = 16 + fixed.readUInt16BE(14);
  if (prefix.length > end) return undefined;
  const header = Buffer.alloc(end);
  fixed.copy(header);
  prefix.copy(header, 0);
  if (addressBytes === 0) return header;
  let position = 16 + addressBytes;
  while (position < end) {
    if (position + 3 <= prefix.length) {
      position += 3 + header.readUInt16BE(position + 1);
      continue;
    }
    const remaining = end - position;
    if (remaining < 3) return undefined;
    if (position + 2 > prefix.length) {
      header.writeUInt16BE(remaining - 3, position + 1);
      return header;
    }
    const taken = 3 + 256 * header[position + 1]!;
    const low = Array.from({ length: 256 }, (_, byte) => byte).find(
      (byte) => remaining - taken - byte === 0 || remaining - taken - byte >= 3,
    );
    if (low === undefined) return undefined;
    header[position + 2] = low;
    position += taken + low;
  }
  return header;
}

function completeHeader(prefix: Buffer): Buffer | undefined {
  if (prefix[0] === 0x0d) return completeV2(prefix);
  const line = completeV1(prefix.toString('latin1'));
  return line === undefined ? undefined : bytes(line);
}

/** Whether `completion` proves that `prefix` starts a valid header. */
function provesPrefix(prefix: Buffer, completion: Buffer | undefined): boolean {
  if (completion === undefined || completion.length < prefix.length) return false;
  if (!completion.subarray(0, prefix.length).equals(prefix)) return false;
  try {
    return decodeProxyHeader(completion)?.length === completion.length;
  } catch {
    return false;
  }
}

/**
 * The decoder's contract on hostile input: a header, `undefined` exactly when the bytes are a strict
 * prefix of a valid header, or a ProxyProtocolError and nothing else.
 */
function checkDecoderContract(input: Buffer): void {
  let decoded: ProxyHeader | undefined;
  try {
    decoded = decodeProxyHeader(input);
  } catch (error) {
    assert.ok(error instanceof ProxyProtocolError, `threw ${String(error)}`);
    assert.equal(error.code, CODE);
    assert.ok(!provesPrefix(input, completeHeader(input)), 'rejected the prefix of a valid header');
    return;
  }
  if (decoded === undefined) {
    assert.ok(
      provesPrefix(input, completeHeader(input)),
      'asked for more bytes that cannot make a valid header',
    );
    return;
  }
  assert.ok(decoded.length > 0 && decoded.length <= input.length);
  assert.deepEqual(decodeProxyHeader(input.subarray(0, decoded.length)), decoded);
}

test('decoding random bytes returns a header, asks for more only for true prefixes, or throws ProxyProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (input) => checkDecoderContract(Buffer.from(input))),
    {
      numRuns: 5000,
    },
  );
});

test('decoding random v1-like text keeps the decoder contract', () => {
  const start = fc.constantFrom(
    'P',
    'PROXY',
    'PROXY ',
    'PROXY TCP4 ',
    'PROXY TCP6 ',
    'PROXY UNKNOWN',
    'PROXY TCP4 1.2.3.4 ',
  );
  const character = fc.constantFrom(...'0123456789abcdefABCDEF:. \r\nx');
  fc.assert(
    fc.property(start, fc.string({ unit: character, maxLength: 110 }), (head, tail) => {
      checkDecoderContract(bytes(head + tail));
    }),
    { numRuns: 5000 },
  );
});

test('decoding corrupted and truncated valid headers keeps the decoder contract', () => {
  fc.assert(
    fc.property(
      validHeader,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
      fc.nat(),
      (header, corruptions, cut) => {
        const input = Buffer.from(header);
        for (const [index, value] of corruptions) input[index % input.length] = value;
        checkDecoderContract(input.subarray(0, cut % (input.length + 1)));
      },
    ),
    { numRuns: 5000 },
  );
});

test('decoding a megabyte of bytes after a v2 signature returns promptly', () => {
  const input = Buffer.concat([bytes(SIGNATURE, [0x21, 0x11, 0xff, 0xff]), Buffer.alloc(1 << 20, 0x04)]);
  const started = performance.now();
  checkDecoderContract(input);
  assert.ok(performance.now() - started < 1000);
});

function decodes(line: Buffer): boolean {
  try {
    return decodeProxyHeader(line)?.length === line.length;
  } catch {
    return false;
  }
}

/** IPv6 text near the valid forms: fc.ipV6() with a few characters inserted or deleted. */
const ipv6Like = fc
  .tuple(
    fc.ipV6(),
    fc.array(
      fc.tuple(fc.nat(), fc.constantFrom('', '0', 'f', ':', '::', '.', '1.2', ':0', '0:0:0'), fc.nat(2)),
      {
        maxLength: 3,
      },
    ),
  )
  .map(([address, edits]) =>
    edits.reduce((text, [at, insert, remove]) => {
      const position = at % (text.length + 1);
      return text.slice(0, position) + insert + text.slice(position + remove);
    }, address),
  );

test('v1 accepts exactly the IPv6 text forms of node:net, without zone ids', () => {
  const character = fc.constantFrom(...'0123456789abcdefABCDEF:.');
  const text = fc.oneof(fc.string({ unit: character, maxLength: 45 }), ipv6Like);
  fc.assert(
    fc.property(text, (address) => {
      const line = `PROXY TCP6 ${address} ::1 1 2\r\n`;
      assert.equal(decodes(bytes(line)), isIPv6(address) && line.length <= 107, JSON.stringify(address));
    }),
    { numRuns: 5000 },
  );
});

test('v1 waits on a partial IPv6 address exactly when node:net accepts some ending of it', () => {
  fc.assert(
    fc.property(ipv6Like, (partial) => {
      let waits = false;
      try {
        waits = decodeProxyHeader(bytes(`PROXY TCP6 ${partial}`)) === undefined;
      } catch {
        waits = false;
      }
      const completable = ADDRESS_ENDINGS.some((ending) => isIPv6(partial + ending));
      assert.equal(waits, completable, JSON.stringify(partial));
    }),
    { numRuns: 1000 },
  );
});

test('v1 accepts exactly the IPv4 text forms of node:net', () => {
  const character = fc.constantFrom(...'0123456789.');
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: character, maxLength: 16 }), fc.ipV4()), (address) => {
      const line = bytes(`PROXY TCP4 ${address} 192.0.2.2 1 2\r\n`);
      assert.equal(decodes(line), isIPv4(address), JSON.stringify(address));
    }),
    { numRuns: 3000 },
  );
});
