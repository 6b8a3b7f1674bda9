import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSync, type MessageTypeDefinition } from '@grpc/proto-loader';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  InMemoryLogRecordExporter,
  LoggerProvider,
  type ReadableLogRecord,
  SimpleLogRecordProcessor,
} from '@opentelemetry/sdk-logs';
import {
  type ExportLogsServiceRequest,
  type OtlpInput,
  otlpLoaderOptions,
  otlpMessageCodecs,
  protoDir,
} from '@switchyard/otlp-proto';
import fc from 'fast-check';
import { countLogRecords, decodeEnvelope, PayloadDecodeError, rejectedLogRecords } from './otlp-wire.ts';

type RequestInput = OtlpInput<ExportLogsServiceRequest>;

const codecs = otlpMessageCodecs();

const envelopeDefinitions = loadSync('switchyard/log_forwarder/v1/envelope.proto', {
  ...otlpLoaderOptions,
  includeDirs: [fileURLToPath(new URL('../proto/', import.meta.url)), protoDir],
});
const envelopeType = envelopeDefinitions['switchyard.log_forwarder.v1.Envelope'] as MessageTypeDefinition<
  object,
  { msg?: 'logs' | 'status'; logs?: ExportLogsServiceRequest; status?: Record<string, string> }
>;

function varint(value: bigint): number[] {
  const bytes: number[] = [];
  let rest = BigInt.asUintN(64, value);
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return bytes;
}

const key = (field: number, wireType: number): number[] => varint(BigInt(field * 8 + wireType));
const lenField = (field: number, value: ArrayLike<number>): number[] => [
  ...key(field, 2),
  ...varint(BigInt(value.length)),
  ...Array.from(value),
];
const varintField = (field: number, value: bigint): number[] => [...key(field, 0), ...varint(value)];
const bytes = (...parts: number[][]): Uint8Array => Uint8Array.from(parts.flat());

const recordsIn = (request: RequestInput): number =>
  (request.resourceLogs ?? []).reduce(
    (sum, resource) =>
      sum + (resource.scopeLogs ?? []).reduce((inner, scope) => inner + (scope.logRecords?.length ?? 0), 0),
    0,
  );

const anyValue = fc.oneof(
  fc.record({ stringValue: fc.string({ maxLength: 20 }) }),
  fc.record({ intValue: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String) }),
  fc.record({ boolValue: fc.boolean() }),
  fc.record({ doubleValue: fc.double({ noNaN: true }) }),
  fc.record({ bytesValue: fc.uint8Array({ maxLength: 8 }) }),
);
const keyValue = fc.record({ key: fc.string({ maxLength: 10 }), value: anyValue });
const logRecord = fc.record(
  {
    timeUnixNano: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
    severityNumber: fc.integer({ min: 0, max: 24 }),
    severityText: fc.string({ maxLength: 8 }),
    body: anyValue,
    attributes: fc.array(keyValue, { maxLength: 3 }),
    flags: fc.nat(255),
    traceId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    eventName: fc.string({ maxLength: 10 }),
  },
  { requiredKeys: [] },
);
const requestArbitrary: fc.Arbitrary<RequestInput> = fc.record({
  resourceLogs: fc.array(
    fc.record(
      {
        resource: fc.record({ attributes: fc.array(keyValue, { maxLength: 3 }) }),
        scopeLogs: fc.array(
          fc.record(
            {
              scope: fc.record({ name: fc.string({ maxLength: 10 }), version: fc.string({ maxLength: 5 }) }),
              logRecords: fc.array(logRecord, { maxLength: 6 }),
              schemaUrl: fc.string({ maxLength: 10 }),
            },
            { requiredKeys: ['logRecords'] },
          ),
          { maxLength: 4 },
        ),
        schemaUrl: fc.string({ maxLength: 10 }),
      },
      { requiredKeys: ['scopeLogs'] },
    ),
    { maxLength: 4 },
  ),
});

/** `recordsPerScope[r][s]` records under resource r and scope s, serialized by opentelemetry-js. */
async function sdkRequest(recordsPerScope: number[][]): Promise<Uint8Array> {
  const finished: ReadableLogRecord[] = [];
  for (const [r, scopes] of recordsPerScope.entries()) {
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ 'service.name': `service-${r}` }),
      processors: [new SimpleLogRecordProcessor({ exporter })],
    });
    for (const [s, records] of scopes.entries()) {
      const logger = provider.getLogger(`scope-${s}`, '1.0.0');
      for (let i = 0; i < records; i++) logger.emit({ body: `record ${i}`, attributes: { i, peer: 'n1' } });
    }
    await provider.forceFlush();
    finished.push(...exporter.getFinishedLogRecords());
    await provider.shutdown();
  }
  const request = ProtobufLogsSerializer.serializeRequest(finished);
  assert.ok(request);
  return request;
}

function assertOnlyPayloadErrors(decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    if (!(error instanceof PayloadDecodeError)) throw error;
    assert.equal(error.code, 'SWY_ERR_LOG_PAYLOAD');
  }
}

function succeeds<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch {
    return undefined;
  }
}

test('counts exactly the records opentelemetry-js serializes, over random resources and scopes', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 4 }), { maxLength: 4 }),
      async (recordsPerScope) => {
        const request = await sdkRequest(recordsPerScope);
        assert.equal(
          countLogRecords(request),
          recordsPerScope.flat().reduce((sum, n) => sum + n, 0),
        );
      },
    ),
    { numRuns: 30 },
  );
});

test('counts exactly the records of requests encoded by the otlp-proto codec', () => {
  fc.assert(
    fc.property(requestArbitrary, (request) => {
      assert.equal(countLogRecords(codecs.exportLogsServiceRequest.encode(request)), recordsIn(request));
    }),
  );
});

test('two concatenated requests count as the sum of their records, as their protobuf merge holds', () => {
  fc.assert(
    fc.property(requestArbitrary, requestArbitrary, (first, second) => {
      const merged = Buffer.concat([
        codecs.exportLogsServiceRequest.encode(first),
        codecs.exportLogsServiceRequest.encode(second),
      ]);
      assert.equal(countLogRecords(merged), recordsIn(first) + recordsIn(second));
      assert.equal(
        codecs.exportLogsServiceRequest.decode(merged).resourceLogs.length,
        (first.resourceLogs?.length ?? 0) + (second.resourceLogs?.length ?? 0),
      );
    }),
  );
});

test('an empty request holds no records', () => {
  assert.equal(countLogRecords(new Uint8Array(0)), 0);
});

test('unknown fields of every wire type are skipped at every level', () => {
  const unknown = [
    ...varintField(15, 300n),
    ...key(16, 1),
    ...[1, 2, 3, 4, 5, 6, 7, 8],
    ...lenField(17, [0x41]),
    ...key(18, 5),
    ...[1, 2, 3, 4],
    ...varintField(0x1fffffff, 1n),
  ];
  const record = lenField(5, lenField(1, [0x68, 0x69]));
  const scopeLogs = [
    ...lenField(1, []),
    ...lenField(2, record),
    ...unknown,
    ...lenField(2, []),
    ...lenField(3, []),
  ];
  const resourceLogs = [...unknown, ...lenField(1, []), ...lenField(2, scopeLogs), ...lenField(3, [0x75])];
  const request = bytes(lenField(1, resourceLogs), unknown, lenField(1, resourceLogs));
  assert.equal(countLogRecords(request), 4);
  assert.equal(
    codecs.exportLogsServiceRequest
      .decode(request)
      .resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords)).length,
    4,
  );
});

const malformed: [name: string, payload: number[], offset: number, problem: RegExp][] = [
  ['a length past the end', [0x0a, 0x05, 0x00], 1, /length 5 runs past the end/],
  [
    'a length past the end of its parent message',
    [0x0a, 0x02, 0x12, 0x05, 0, 0, 0, 0, 0],
    3,
    /length 5 runs past/,
  ],
  [
    'resource_logs as a varint',
    [0x08, 0x01],
    0,
    /ExportLogsServiceRequest\.resource_logs \(field 1\) has wire type 0/,
  ],
  [
    'scope_logs as a varint',
    [0x0a, 0x02, 0x10, 0x01],
    2,
    /ResourceLogs\.scope_logs \(field 2\) has wire type 0/,
  ],
  [
    'log_records as a fixed32',
    [0x0a, 0x07, 0x12, 0x05, 0x15, 0, 0, 0, 0],
    4,
    /ScopeLogs\.log_records .* wire type 5/,
  ],
  ['wire type 6', [0x7e], 0, /invalid wire type 6/],
  ['wire type 7', [0x7f, 0x00], 0, /invalid wire type 7/],
  ['a start group', [0x7b, 0x7c], 0, /group \(wire type 3\)/],
  ['an end group', [0x7c], 0, /group \(wire type 4\)/],
  ['field number 0', [0x02, 0x00], 0, /field number 0 is outside/],
  [
    'a field number above 2^29-1',
    [0xf8, 0xff, 0xff, 0xff, 0x7f, 0x00],
    0,
    /field number 4294967295 is outside/,
  ],
  ['a varint cut by the end', [0x0a, 0x80], 1, /varint runs past the end/],
  ['a varint of 11 bytes', [0x78, ...Array(10).fill(0xff), 0x01], 1, /varint longer than 10 bytes/],
  ['a varint over 64 bits', [0x78, ...Array(9).fill(0xff), 0x02], 1, /varint overflows 64 bits/],
  ['a fixed64 cut by the end', [0x79, 1, 2, 3], 0, /8-byte fixed-width value runs past/],
];

for (const [name, payload, offset, problem] of malformed) {
  test(`rejects ${name}, naming the problem and its byte offset`, () => {
    assert.throws(
      () => countLogRecords(Uint8Array.from(payload)),
      (error: unknown) =>
        error instanceof PayloadDecodeError &&
        error.offset === offset &&
        problem.test(error.message) &&
        error.message.endsWith(`at byte ${offset}`),
    );
  });
}

test('an envelope with status decodes both counts, up to Number.MAX_SAFE_INTEGER', () => {
  const envelope = envelopeType.serialize({
    status: { droppedChannelFull: '7', droppedBatchFull: '9007199254740991' },
  });
  assert.deepEqual(decodeEnvelope(envelope), {
    kind: 'status',
    droppedChannelFull: 7,
    droppedBatchFull: Number.MAX_SAFE_INTEGER,
  });
  assert.deepEqual(decodeEnvelope(envelopeType.serialize({ status: {} })), {
    kind: 'status',
    droppedChannelFull: 0,
    droppedBatchFull: 0,
  });
});

test('an envelope with a status count above Number.MAX_SAFE_INTEGER is rejected', () => {
  for (const count of ['9007199254740992', '18446744073709551615']) {
    assert.throws(
      () => decodeEnvelope(envelopeType.serialize({ status: { droppedBatchFull: count } })),
      /dropped_batch_full .* above Number\.MAX_SAFE_INTEGER/,
    );
  }
});

test('an envelope with logs returns the exact request bytes as a view of the payload, and its count', () => {
  fc.assert(
    fc.property(requestArbitrary, (request) => {
      const envelope = envelopeType.serialize({ logs: request });
      const content = decodeEnvelope(envelope);
      assert.equal(content.kind, 'logs');
      if (content.kind !== 'logs') return;
      assert.deepEqual(
        Buffer.from(content.request),
        Buffer.from(codecs.exportLogsServiceRequest.encode(request)),
      );
      assert.equal(content.request.buffer, envelope.buffer);
      assert.equal(
        content.request.byteOffset + content.request.length,
        envelope.byteOffset + envelope.length,
      );
      assert.equal(content.records, recordsIn(request));
    }),
  );
});

test('an envelope with no member set is rejected', () => {
  assert.throws(() => decodeEnvelope(new Uint8Array(0)), /neither logs nor status/);
  assert.throws(() => decodeEnvelope(bytes(varintField(9, 1n))), PayloadDecodeError);
});

type EnvelopeMember =
  | { kind: 'logs'; request: RequestInput }
  | { kind: 'status'; channel?: bigint | undefined; batch?: bigint | undefined };

const safeCount = fc.bigInt({ min: 0n, max: 2n ** 53n - 1n });
const envelopeMember: fc.Arbitrary<EnvelopeMember> = fc.oneof(
  requestArbitrary.map((request) => ({ kind: 'logs' as const, request })),
  fc.record(
    { kind: fc.constant('status' as const), channel: safeCount, batch: safeCount },
    { requiredKeys: ['kind'] },
  ),
);

function encodeMember(member: EnvelopeMember): number[] {
  if (member.kind === 'logs') return lenField(1, codecs.exportLogsServiceRequest.encode(member.request));
  return lenField(2, [
    ...(member.channel === undefined ? [] : varintField(1, member.channel)),
    ...(member.batch === undefined ? [] : varintField(2, member.batch)),
  ]);
}

test('a oneof member repeated on the wire resolves as protobuf does: the last member wins, repeats merge', () => {
  fc.assert(
    fc.property(fc.array(envelopeMember, { minLength: 1, maxLength: 5 }), (members) => {
      const envelope = bytes(...members.map(encodeMember));
      const content = decodeEnvelope(envelope);
      const last = members.at(-1)!;
      assert.equal(content.kind, last.kind);
      // The protobuf spec: a oneof keeps the last member seen; a non-repeated message field seen again
      // is merged into the one before (MergeFrom), a scalar seen again replaces it. protobufjs does
      // neither (it keeps every member it saw, and replaces messages), so the expected result is
      // computed here: repeated fields concatenate, present scalars override.
      const run = members.slice(members.findLastIndex((member) => member.kind !== last.kind) + 1);
      if (content.kind === 'status') {
        const counts = { channel: 0n, batch: 0n };
        for (const member of run) if (member.kind === 'status') Object.assign(counts, member);
        assert.deepEqual(
          [content.droppedChannelFull, content.droppedBatchFull],
          [Number(counts.channel), Number(counts.batch)],
        );
      } else {
        const requests = run.flatMap((member) => (member.kind === 'logs' ? [member.request] : []));
        assert.deepEqual(
          codecs.exportLogsServiceRequest.decode(content.request).resourceLogs,
          requests.flatMap(
            (request) =>
              codecs.exportLogsServiceRequest.decode(codecs.exportLogsServiceRequest.encode(request))
                .resourceLogs,
          ),
        );
        assert.equal(
          content.records,
          requests.reduce((sum, request) => sum + recordsIn(request), 0),
        );
      }
    }),
  );
});

test('reads rejected_log_records and error_message from a partial success', () => {
  const encode = codecs.exportLogsServiceResponse.encode;
  assert.deepEqual(
    rejectedLogRecords(encode({ partialSuccess: { rejectedLogRecords: '12', errorMessage: 'too old' } })),
    {
      rejected: 12,
      errorMessage: 'too old',
    },
  );
  assert.deepEqual(rejectedLogRecords(encode({})), { rejected: 0, errorMessage: '' });
  assert.deepEqual(rejectedLogRecords(encode({ partialSuccess: {} })), { rejected: 0, errorMessage: '' });
});

test('merges repeated partial_success fields as the protobuf encoding spec says', () => {
  const response = bytes(
    lenField(1, [...varintField(1, 5n), ...lenField(2, [0x61])]),
    lenField(1, lenField(2, [0x62])),
  );
  assert.deepEqual(rejectedLogRecords(response), { rejected: 5, errorMessage: 'b' });
});

test('rejects a negative or unsafe rejected_log_records', () => {
  const encode = codecs.exportLogsServiceResponse.encode;
  assert.throws(
    () => rejectedLogRecords(encode({ partialSuccess: { rejectedLogRecords: '-3' } })),
    /negative/,
  );
  assert.throws(
    () => rejectedLogRecords(encode({ partialSuccess: { rejectedLogRecords: '9007199254740992' } })),
    /above Number\.MAX_SAFE_INTEGER/,
  );
});

test('fuzz: random bytes make the walkers return or throw PayloadDecodeError, nothing else', {
  timeout: 60_000,
}, () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (payload) => {
      assertOnlyPayloadErrors(() => countLogRecords(payload));
      assertOnlyPayloadErrors(() => decodeEnvelope(payload));
      assertOnlyPayloadErrors(() => rejectedLogRecords(payload));
    }),
    { numRuns: 5000 },
  );
});

const mutation = fc.oneof(
  fc.record({ at: fc.nat(), byte: fc.nat(255) }).map(({ at, byte }) => (input: Uint8Array) => {
    const output = Uint8Array.from(input);
    if (output.length > 0) output[at % output.length] = byte;
    return output;
  }),
  fc.nat().map((at) => (input: Uint8Array) => input.subarray(0, at % (input.length + 1))),
  fc
    .record({ at: fc.nat(), inserted: fc.uint8Array({ minLength: 1, maxLength: 4 }) })
    .map(({ at, inserted }) => (input: Uint8Array) => {
      const cut = at % (input.length + 1);
      return Uint8Array.from([...input.subarray(0, cut), ...inserted, ...input.subarray(cut)]);
    }),
);

test('fuzz: mutated requests throw only PayloadDecodeError, and agree with protobufjs when both decode', {
  timeout: 60_000,
}, () => {
  fc.assert(
    fc.property(
      requestArbitrary,
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (request, mutations) => {
        const payload = mutations.reduce(
          (bytesSoFar, mutate) => mutate(bytesSoFar),
          codecs.exportLogsServiceRequest.encode(request),
        );
        assertOnlyPayloadErrors(() => countLogRecords(payload));
        assertOnlyPayloadErrors(() => decodeEnvelope(bytes(lenField(1, payload))));
        const counted = succeeds(() => countLogRecords(payload));
        const decoded = succeeds(() => codecs.exportLogsServiceRequest.decode(payload));
        if (counted !== undefined && decoded !== undefined) {
          assert.equal(
            counted,
            decoded.resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords)).length,
          );
        }
      },
    ),
    { numRuns: 2000 },
  );
});
