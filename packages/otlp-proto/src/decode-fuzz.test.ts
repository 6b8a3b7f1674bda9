import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type OtlpMessageCodec, otlpMessageCodecs } from './load.ts';
import type { AnyValue, KeyValue, LogRecord } from './messages.ts';

/** Decoding hostile bytes may fail, but only by throwing an Error: never a hang, never a crash. */
function decodesOrThrowsError(codec: OtlpMessageCodec<unknown>, bytes: Uint8Array): void {
  try {
    codec.decode(bytes);
  } catch (error) {
    assert.ok(error instanceof Error, `threw a non-Error: ${String(error)}`);
  }
}

const codecs = otlpMessageCodecs();

test('decoding arbitrary bytes as an ExportMetricsServiceRequest returns a message or throws an Error', {
  timeout: 30_000,
}, () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      decodesOrThrowsError(codecs.exportMetricsServiceRequest, bytes);
    }),
    { numRuns: 3000 },
  );
});

test('decoding arbitrary bytes as an ExportLogsServiceRequest returns a message or throws an Error', {
  timeout: 30_000,
}, () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      decodesOrThrowsError(codecs.exportLogsServiceRequest, bytes);
    }),
    { numRuns: 3000 },
  );
});

/** Random bytes rarely get past the first tag; corrupting a valid request reaches nested fields. */
test('decoding a corrupted valid metrics request returns a message or throws an Error', {
  timeout: 30_000,
}, () => {
  const valid = codecs.exportMetricsServiceRequest.encode({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'relay' } }] },
        scopeMetrics: [
          {
            scope: { name: 'switchyard' },
            metrics: [
              { name: 'c', sum: { dataPoints: [{ asInt: '5', timeUnixNano: '1' }], isMonotonic: true } },
              {
                name: 'h',
                histogram: { dataPoints: [{ count: '3', bucketCounts: ['1', '2'], explicitBounds: [1] }] },
              },
              {
                name: 'e',
                exponentialHistogram: {
                  dataPoints: [{ scale: 2, positive: { offset: -1, bucketCounts: ['4'] } }],
                },
              },
              { name: 's', summary: { dataPoints: [{ quantileValues: [{ quantile: 0.5, value: 1 }] }] } },
            ],
          },
        ],
      },
    ],
  });
  const corruption = fc.array(
    fc.record({ at: fc.nat({ max: valid.length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }),
    {
      minLength: 1,
      maxLength: 8,
    },
  );
  fc.assert(
    fc.property(corruption, (edits) => {
      const bytes = Uint8Array.from(valid);
      for (const { at, byte } of edits) bytes[at] = byte;
      decodesOrThrowsError(codecs.exportMetricsServiceRequest, bytes);
    }),
    { numRuns: 3000 },
  );
});

/** Decoded messages are plain objects, so generated ones must not have a null prototype. */
const plainObjects = { noNullPrototype: true };
const text = fc.string({ unit: 'grapheme', maxLength: 16 });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String);
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
const bytesOf = (length: number) =>
  fc.uint8Array({ minLength: length, maxLength: length }).map((bytes) => Buffer.from(bytes));

/** AnyValue trees in decoded shape: one oneof member set and named, or empty. */
const { anyValue, keyValue } = fc.letrec<{ anyValue: AnyValue; keyValue: KeyValue }>((tie) => ({
  anyValue: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant({}),
    text.map((stringValue) => ({ value: 'stringValue' as const, stringValue })),
    fc.boolean().map((boolValue) => ({ value: 'boolValue' as const, boolValue })),
    int64.map((intValue) => ({ value: 'intValue' as const, intValue })),
    fc.double().map((doubleValue) => ({ value: 'doubleValue' as const, doubleValue })),
    fc
      .uint8Array({ maxLength: 8 })
      .map((bytes) => ({ value: 'bytesValue' as const, bytesValue: Buffer.from(bytes) })),
    fc
      .array(tie('anyValue'), { maxLength: 3 })
      .map((values) => ({ value: 'arrayValue' as const, arrayValue: { values } })),
    fc
      .array(tie('keyValue'), { maxLength: 3 })
      .map((values) => ({ value: 'kvlistValue' as const, kvlistValue: { values } })),
  ),
  keyValue: fc.record(
    { key: text, value: fc.option(tie('anyValue'), { nil: null }), keyStrindex: fc.constant(0) },
    plainObjects,
  ),
}));

const severityName = fc.constantFrom(
  'SEVERITY_NUMBER_UNSPECIFIED',
  'SEVERITY_NUMBER_TRACE',
  'SEVERITY_NUMBER_DEBUG3',
  'SEVERITY_NUMBER_INFO',
  'SEVERITY_NUMBER_WARN4',
  'SEVERITY_NUMBER_ERROR',
  'SEVERITY_NUMBER_FATAL2',
);

const logRecord: fc.Arbitrary<LogRecord> = fc.record(
  {
    timeUnixNano: uint64,
    observedTimeUnixNano: uint64,
    // A number this proto does not name must come back as that number.
    severityNumber: fc.oneof(severityName, fc.integer({ min: 25, max: 10_000 })),
    severityText: text,
    body: fc.option(anyValue, { nil: null }),
    attributes: fc.array(keyValue, { maxLength: 4 }),
    droppedAttributesCount: fc.nat({ max: 2 ** 32 - 1 }),
    flags: fc.nat({ max: 2 ** 32 - 1 }),
    traceId: bytesOf(16),
    spanId: bytesOf(8),
    eventName: text,
  },
  plainObjects,
);

test('any LogRecord survives an encode/decode round trip inside LogsData', { timeout: 30_000 }, () => {
  fc.assert(
    fc.property(fc.array(logRecord, { minLength: 1, maxLength: 3 }), (logRecords) => {
      const bytes = codecs.logsData.encode({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] });
      const decoded = codecs.logsData.decode(bytes).resourceLogs[0]?.scopeLogs[0]?.logRecords;
      assert.deepStrictEqual(decoded, logRecords);
    }),
    { numRuns: 500 },
  );
});
