import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type LogRecord as ApiLogRecord,
  ROOT_CONTEXT,
  SeverityNumber,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { otlpMessageCodecs } from './load.ts';
import type { ExportLogsServiceRequest, LogRecord } from './messages.ts';

/**
 * Wire compatibility: opentelemetry-js serializes with its own hand-written protobuf writer, so
 * decoding its bytes with our .proto files checks our field numbers and types against it.
 */

async function exportThroughSdk(records: ApiLogRecord[]): Promise<ExportLogsServiceRequest> {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'log-forwarder' }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = provider.getLogger('switchyard.forwarder', '0.4.0');
  for (const record of records) logger.emit(record);
  await provider.forceFlush();
  const bytes = ProtobufLogsSerializer.serializeRequest(exporter.getFinishedLogRecords());
  await provider.shutdown();
  assert.ok(bytes);
  return otlpMessageCodecs().exportLogsServiceRequest.decode(bytes);
}

function onlyLogRecord(request: ExportLogsServiceRequest): LogRecord {
  const records = request.resourceLogs[0]?.scopeLogs[0]?.logRecords;
  assert.equal(records?.length, 1);
  return records[0]!;
}

test('decodes the severity, text body, attributes and event name of an SDK log record', async () => {
  const request = await exportThroughSdk([
    {
      severityNumber: SeverityNumber.WARN2,
      severityText: 'WARN',
      body: 'upstream slow',
      attributes: { 'upstream.id': 'a', attempts: 3, retried: true, ratio: 0.5 },
      eventName: 'swy.upstream.slow',
    },
  ]);
  const record = onlyLogRecord(request);
  assert.equal(record.severityNumber, 'SEVERITY_NUMBER_WARN2');
  assert.equal(record.severityText, 'WARN');
  assert.deepEqual(record.body, { value: 'stringValue', stringValue: 'upstream slow' });
  assert.equal(record.eventName, 'swy.upstream.slow');
  assert.deepEqual(
    record.attributes.map(({ key, value }) => [key, value?.value]),
    [
      ['upstream.id', 'stringValue'],
      ['attempts', 'intValue'],
      ['retried', 'boolValue'],
      ['ratio', 'doubleValue'],
    ],
  );
  assert.equal(record.attributes[1]?.value?.intValue, '3');
});

test('decodes a structured body as a key-value list holding an array', async () => {
  const request = await exportThroughSdk([{ body: { peer: 'n1', ports: [80, 443] } }]);
  const body = onlyLogRecord(request).body;
  assert.equal(body?.value, 'kvlistValue');
  const [peer, ports] = body?.kvlistValue?.values ?? [];
  assert.equal(peer?.value?.stringValue, 'n1');
  assert.deepEqual(
    ports?.value?.arrayValue?.values.map((value) => value.intValue),
    ['80', '443'],
  );
});

test('decodes the trace id, span id and trace flags of a record emitted inside a span context', async () => {
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const spanId = 'b7ad6b7169203331';
  const context = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED });
  const record = onlyLogRecord(await exportThroughSdk([{ body: 'in span', context }]));
  assert.equal(record.traceId.toString('hex'), traceId);
  assert.equal(record.spanId.toString('hex'), spanId);
  assert.equal(record.flags & 0xff, TraceFlags.SAMPLED);
});

test('decodes event and observed timestamps as exact nanosecond strings', async () => {
  const record = onlyLogRecord(
    await exportThroughSdk([
      { timestamp: [1_700_000_000, 123_456_789], observedTimestamp: [1_700_000_001, 7] },
    ]),
  );
  assert.equal(record.timeUnixNano, '1700000000123456789');
  assert.equal(record.observedTimeUnixNano, '1700000001000000007');
});

test('decodes the resource and the instrumentation scope of the logger', async () => {
  const request = await exportThroughSdk([{ body: 'x' }]);
  const resourceLogs = request.resourceLogs[0];
  assert.equal(resourceLogs?.resource?.attributes[0]?.key, 'service.name');
  assert.equal(resourceLogs?.resource?.attributes[0]?.value?.stringValue, 'log-forwarder');
  assert.equal(resourceLogs?.scopeLogs[0]?.scope?.name, 'switchyard.forwarder');
  assert.equal(resourceLogs?.scopeLogs[0]?.scope?.version, '0.4.0');
});
