import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ExportLogsServiceRequest, type LogRecord, otlpMessageCodecs } from '@switchyard/otlp-proto';
import fc from 'fast-check';
import { LOG_BATCH_SCOPE_NAME, LogBatchBuilder, type LogRecordInput } from './log-batch.ts';

const codec = otlpMessageCodecs().exportLogsServiceRequest;

const SEVERITY_NAMES = [
  'SEVERITY_NUMBER_UNSPECIFIED',
  ...['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'].flatMap((level) =>
    ['', '2', '3', '4'].map((suffix) => `SEVERITY_NUMBER_${level}${suffix}`),
  ),
];

function decode(bytes: Uint8Array): { request: ExportLogsServiceRequest; records: LogRecord[] } {
  const request = codec.decode(bytes);
  assert.equal(request.resourceLogs.length, 1);
  const scopeLogs = request.resourceLogs[0]!.scopeLogs;
  assert.equal(scopeLogs.length, 1);
  return { request, records: scopeLogs[0]!.logRecords };
}

function assertRecord(decoded: LogRecord, input: LogRecordInput, observedRangeMs: [number, number]): void {
  assert.deepEqual(decoded.body, { value: 'stringValue', stringValue: input.body.toWellFormed() });
  assert.equal(decoded.timeUnixNano, String(input.timeUnixNano ?? 0n));
  assert.equal(decoded.severityNumber, SEVERITY_NAMES[input.severityNumber ?? 0]);
  assert.equal(decoded.severityText, (input.severityText ?? '').toWellFormed());
  const expectedAttributes = Object.entries(input.attributes ?? {}).map(([key, value]) => [
    key.toWellFormed(),
    value.toWellFormed(),
  ]);
  assert.deepEqual(
    decoded.attributes.map((attribute) => [attribute.key, attribute.value?.stringValue]),
    expectedAttributes,
  );
  const observedMs = Number(BigInt(decoded.observedTimeUnixNano) / 1_000_000n);
  assert.ok(observedMs >= observedRangeMs[0] && observedMs <= observedRangeMs[1], `observed ${observedMs}`);
}

const anyText = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  // UTF-16 code units, lone surrogates included: they must come out as U+FFFD.
  fc.string({
    unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
    maxLength: 80,
  }),
  fc.string({ unit: 'binary-ascii', minLength: 100, maxLength: 300 }),
);

const recordArbitrary: fc.Arbitrary<LogRecordInput> = fc.record(
  {
    body: anyText,
    timeUnixNano: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    severityNumber: fc.integer({ min: 0, max: 24 }),
    severityText: anyText,
    attributes: fc.dictionary(anyText, anyText, { maxKeys: 5 }),
  },
  { requiredKeys: ['body'] },
);

describe('LogBatchBuilder', () => {
  test('random records decode field by field to what was added, with the resource and scope', () => {
    fc.assert(
      fc.property(fc.array(recordArbitrary, { minLength: 1, maxLength: 20 }), (inputs) => {
        const builder = new LogBatchBuilder({ serviceName: 'checkout', maxRecords: 1000 });
        const startMs = Date.now();
        for (const input of inputs) assert.equal(builder.add(input), true);
        const endMs = Date.now();
        assert.equal(builder.records, inputs.length);
        const expectedBytes = builder.bytes;
        const bytes = builder.finish();
        assert.equal(bytes.length, expectedBytes);
        const { request, records } = decode(bytes);
        const resourceLogs = request.resourceLogs[0]!;
        assert.deepEqual(
          resourceLogs.resource?.attributes.map((attribute) => [attribute.key, attribute.value?.stringValue]),
          [['service.name', 'checkout']],
        );
        assert.equal(resourceLogs.scopeLogs[0]!.scope?.name, LOG_BATCH_SCOPE_NAME);
        assert.equal(records.length, inputs.length);
        inputs.forEach((input, i) => {
          assertRecord(records[i]!, input, [startMs, endMs]);
        });
      }),
      { numRuns: 200 },
    );
  });

  test('length prefixes stay right when multi-byte text pushes a length past a varint boundary', () => {
    const builder = new LogBatchBuilder({ serviceName: 'svc', maxBytes: 1024 * 1024 });
    // 127 / 8_191 / 8_192 code units that need 254 / 16_382 / 16_384 bytes: each crosses to a longer varint.
    const inputs: LogRecordInput[] = [127, 8191, 8192, 100_000].map((chars) => ({
      body: 'é'.repeat(chars),
      severityText: '€'.repeat(chars % 200),
      attributes: { ['ключ'.repeat(chars % 50)]: '😀'.repeat(chars % 70) },
    }));
    for (const input of inputs) assert.equal(builder.add(input), true);
    const expectedBytes = builder.bytes;
    const bytes = builder.finish();
    assert.equal(bytes.length, expectedBytes);
    const { records } = decode(bytes);
    inputs.forEach((input, i) => {
      assertRecord(records[i]!, input, [0, Date.now()]);
    });
  });

  test('add returns false once the batch holds maxRecords records', () => {
    const builder = new LogBatchBuilder({ serviceName: 'svc', maxRecords: 3 });
    for (let i = 0; i < 3; i++) assert.equal(builder.add({ body: `line ${i}` }), true);
    assert.equal(builder.add({ body: 'one too many' }), false);
    assert.equal(builder.records, 3);
    assert.deepEqual(
      decode(builder.finish()).records.map((record) => record.body?.stringValue),
      ['line 0', 'line 1', 'line 2'],
    );
  });

  test('add refuses a record that would pass maxBytes, leaving the batch as it was', () => {
    const builder = new LogBatchBuilder({ serviceName: 'svc', maxBytes: 1000 });
    assert.equal(builder.add({ body: 'a'.repeat(400) }), true);
    assert.equal(builder.add({ body: 'b'.repeat(400) }), true);
    const bytesBefore = builder.bytes;
    assert.ok(bytesBefore <= 1000);
    assert.equal(builder.add({ body: 'c'.repeat(400) }), false);
    assert.equal(builder.bytes, bytesBefore);
    assert.equal(builder.records, 2);
    const batch = builder.finish();
    assert.equal(batch.length, bytesBefore);
    assert.deepEqual(
      decode(batch).records.map((record) => record.body?.stringValue?.length),
      [400, 400],
    );
  });

  test('an empty batch takes one record larger than maxBytes, so add-finish-add always progresses', () => {
    const builder = new LogBatchBuilder({ serviceName: 'svc', maxBytes: 100 });
    assert.equal(builder.add({ body: 'x'.repeat(500) }), true);
    assert.equal(builder.add({ body: 'y' }), false);
    assert.equal(decode(builder.finish()).records[0]!.body?.stringValue, 'x'.repeat(500));
  });

  test('finish empties the builder, and the next batch holds only the new records', () => {
    const builder = new LogBatchBuilder({ serviceName: 'svc' });
    builder.add({ body: 'first' });
    const first = builder.finish();
    assert.equal(builder.records, 0);
    builder.add({ body: 'second' });
    const second = builder.finish();
    assert.deepEqual(
      decode(first).records.map((record) => record.body?.stringValue),
      ['first'],
    );
    assert.deepEqual(
      decode(second).records.map((record) => record.body?.stringValue),
      ['second'],
    );
    assert.equal(decode(builder.finish()).records.length, 0);
  });

  test('rejects out-of-range severity numbers, timestamps and options', () => {
    const builder = new LogBatchBuilder({ serviceName: 'svc' });
    assert.throws(() => builder.add({ body: 'x', severityNumber: 25 }), RangeError);
    assert.throws(() => builder.add({ body: 'x', severityNumber: 1.5 }), RangeError);
    assert.throws(() => builder.add({ body: 'x', timeUnixNano: -1n }), RangeError);
    assert.throws(() => builder.add({ body: 'x', timeUnixNano: 2n ** 64n }), RangeError);
    assert.equal(builder.records, 0);
    assert.throws(() => new LogBatchBuilder({ serviceName: '' }), TypeError);
    assert.throws(() => new LogBatchBuilder({ serviceName: 'svc', maxRecords: 0 }), RangeError);
    assert.throws(() => new LogBatchBuilder({ serviceName: 'svc', maxBytes: 2 ** 28 }), RangeError);
  });

  test('throughput for 200-byte bodies (reported, not asserted)', (t) => {
    const builder = new LogBatchBuilder({ serviceName: 'bench' });
    const record: LogRecordInput = {
      body: `${'x'.repeat(182)} request_id=abcdef`,
      severityNumber: 9,
      severityText: 'INFO',
    };
    assert.equal(Buffer.byteLength(record.body), 200);
    const run = (budgetMs: number) => {
      let records = 0;
      let bytes = 0;
      const start = performance.now();
      while (performance.now() - start < budgetMs) {
        for (let i = 0; i < 10_000; i++) {
          if (!builder.add(record)) {
            bytes += builder.finish().length;
            builder.add(record);
          }
        }
        records += 10_000;
      }
      bytes += builder.finish().length;
      return { records, bytes, seconds: (performance.now() - start) / 1000 };
    };
    run(150);
    const { records, bytes, seconds } = run(300);
    t.diagnostic(
      `LogBatchBuilder: ${(records / seconds / 1e6).toFixed(2)} M records/s, ${(bytes / seconds / 1e6).toFixed(0)} MB/s of batches (200-byte bodies, 100 records per batch)`,
    );
  });
});
