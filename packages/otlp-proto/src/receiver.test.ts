import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import {
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { ReceiverClosedError, ReceiverOptionError, ReceiverTimeoutError } from './errors.ts';
import { loadOtlpLogsService, loadOtlpMetricsService } from './load.ts';
import type { ExportLogsServiceResponse, ExportMetricsServiceResponse } from './messages.ts';
import { OtlpReceiver } from './receiver.ts';
import { decodeRetryDelayMs, statusDetailsTrailer } from './status-details.ts';

class ManualReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

async function collectOnce(): Promise<ResourceMetrics> {
  const reader = new ManualReader();
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter('switchyard.receiver-test').createCounter('swy.exports.sent').add(2);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

async function exportWith(
  receiver: OtlpReceiver,
  config: ConstructorParameters<typeof OTLPMetricExporter>[0] = {},
): Promise<ExportResult> {
  const exporter = new OTLPMetricExporter({ url: receiver.url, ...config });
  try {
    const resourceMetrics = await collectOnce();
    return await new Promise((resolve) => exporter.export(resourceMetrics, resolve));
  } finally {
    await exporter.shutdown();
  }
}

type UnaryCallback<Response> = (error: ServiceError | null, response?: Response) => void;

interface RawExportClient<Response> {
  Export(request: object, callback: UnaryCallback<Response>): void;
  close(): void;
}

/** A plain grpc-js client on our own service definitions, to see raw responses and trailers. */
async function callExport<Response>(
  receiver: OtlpReceiver,
  signal: 'metrics' | 'logs',
  request: object,
): Promise<{ error: ServiceError | null; response: Response | undefined }> {
  const service = signal === 'metrics' ? loadOtlpMetricsService() : loadOtlpLogsService();
  const Client = makeGenericClientConstructor(service, `${signal}-client`);
  const client = new Client(
    receiver.address,
    credentials.createInsecure(),
  ) as unknown as RawExportClient<Response>;
  try {
    return await new Promise((resolve) =>
      client.Export(request, (error, response) => resolve({ error, response })),
    );
  } finally {
    client.close();
  }
}

test('records a metrics export sent by the official OTLP gRPC exporter', async () => {
  await using receiver = await OtlpReceiver.start();
  const result = await exportWith(receiver);
  assert.equal(result.code, ExportResultCode.SUCCESS);
  const { request, answer } = await receiver.nextMetrics();
  const metric = request.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0];
  assert.equal(metric?.name, 'swy.exports.sent');
  assert.equal(metric?.sum?.dataPoints[0]?.asDouble, 2);
  assert.equal(answer.kind, 'success');
});

test('makes the official exporter fail while it answers UNAVAILABLE', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('metrics', { kind: 'error', code: status.UNAVAILABLE });
  const result = await exportWith(receiver);
  assert.equal(result.code, ExportResultCode.FAILED);
  assert.equal((result.error as ServiceError | undefined)?.code, status.UNAVAILABLE);
  assert.equal(receiver.metrics[0]?.answer.kind, 'error');
});

test('answers success again once the scripted answers are used up', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('metrics', { kind: 'error', code: status.RESOURCE_EXHAUSTED }, 2);
  const codes = [];
  for (let attempt = 0; attempt < 3; attempt += 1) codes.push((await exportWith(receiver)).code);
  assert.deepEqual(codes, [ExportResultCode.FAILED, ExportResultCode.FAILED, ExportResultCode.SUCCESS]);
});

test('records the custom metadata and user agent the exporter sends', async () => {
  await using receiver = await OtlpReceiver.start();
  const metadata = new Metadata();
  metadata.set('x-switchyard-tenant', 'blue');
  await exportWith(receiver, { metadata });
  const received = await receiver.nextMetrics();
  assert.deepEqual(received.metadata['x-switchyard-tenant'], ['blue']);
  assert.match(String(received.metadata['user-agent']?.[0]), /OTel-OTLP-Exporter-JavaScript/);
});

test('reports gzip as the request encoding when the exporter compresses', async () => {
  await using receiver = await OtlpReceiver.start();
  await exportWith(receiver, { compression: CompressionAlgorithm.GZIP });
  assert.equal((await receiver.nextMetrics()).requestEncoding, 'gzip');
});

test('reports identity as the request encoding when the exporter does not compress', async () => {
  await using receiver = await OtlpReceiver.start();
  await exportWith(receiver, { compression: CompressionAlgorithm.NONE });
  assert.equal((await receiver.nextMetrics()).requestEncoding, 'identity');
});

test('sends the scripted retry delay as RetryInfo in the status details trailer', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('metrics', { kind: 'error', code: status.UNAVAILABLE, retryDelayMs: 1500 });
  const { error } = await callExport(receiver, 'metrics', {});
  assert.equal(error?.code, status.UNAVAILABLE);
  const [details] = error?.metadata.get(statusDetailsTrailer) ?? [];
  assert.ok(Buffer.isBuffer(details));
  assert.equal(decodeRetryDelayMs(details), 1500);
});

test('answers a scripted metrics partial success with the rejected data point count', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('metrics', { kind: 'partial-success', rejected: 3, errorMessage: 'too many series' });
  const { response } = await callExport<ExportMetricsServiceResponse>(receiver, 'metrics', {});
  assert.deepEqual(response?.partialSuccess, { rejectedDataPoints: '3', errorMessage: 'too many series' });
});

test('records a logs export and answers a scripted partial success with rejected log records', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'partial-success', rejected: 1 });
  const request = {
    resourceLogs: [
      {
        scopeLogs: [
          { logRecords: [{ severityNumber: 'SEVERITY_NUMBER_INFO', body: { stringValue: 'hi' } }] },
        ],
      },
    ],
  };
  const { response } = await callExport<ExportLogsServiceResponse>(receiver, 'logs', request);
  assert.deepEqual(response?.partialSuccess, { rejectedLogRecords: '1', errorMessage: '' });
  const received = await receiver.nextLogs();
  const record = received.request.resourceLogs[0]?.scopeLogs[0]?.logRecords[0];
  assert.equal(record?.body?.stringValue, 'hi');
  assert.equal(record?.severityNumber, 'SEVERITY_NUMBER_INFO');
});

test('emits a metrics event for each export it records', async () => {
  await using receiver = await OtlpReceiver.start();
  const event = once(receiver, 'metrics');
  await exportWith(receiver);
  const [received] = await event;
  assert.equal(received, receiver.metrics[0]);
});

test('returns exports from nextMetrics in arrival order, including ones that arrived before the wait', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('metrics', { kind: 'error', code: status.UNAVAILABLE });
  await exportWith(receiver);
  await exportWith(receiver);
  assert.equal((await receiver.nextMetrics()).answer.kind, 'error');
  assert.equal((await receiver.nextMetrics()).answer.kind, 'success');
});

test('resolves a wait that started before the export arrived', async () => {
  await using receiver = await OtlpReceiver.start();
  const next = receiver.nextMetrics();
  await exportWith(receiver);
  assert.equal((await next).request.resourceMetrics.length, 1);
});

test('rejects nextLogs with a timeout error naming the signal when no export arrives', async () => {
  await using receiver = await OtlpReceiver.start();
  await assert.rejects(receiver.nextLogs(20), (error: unknown) => {
    assert.ok(error instanceof ReceiverTimeoutError);
    assert.equal(error.code, 'SWY_ERR_OTLP_RECEIVER_TIMEOUT');
    assert.match(error.message, /no new logs export within 20 ms/);
    return true;
  });
});

test('rejects a pending wait when the receiver closes', async () => {
  const receiver = await OtlpReceiver.start();
  const wait = receiver.nextMetrics();
  await receiver.close();
  await assert.rejects(wait, ReceiverClosedError);
});

test('rejects an address without a port before binding', async () => {
  await assert.rejects(OtlpReceiver.start({ address: 'localhost' }), (error: unknown) => {
    assert.ok(error instanceof ReceiverOptionError);
    assert.equal(error.option, 'address');
    return true;
  });
});

test('refuses to script an OK status code as an error answer', async () => {
  await using receiver = await OtlpReceiver.start();
  assert.throws(
    () => receiver.answerNext('metrics', { kind: 'error', code: status.OK }),
    ReceiverOptionError,
  );
});
