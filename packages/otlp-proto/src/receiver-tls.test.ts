import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { OtlpReceiver } from './receiver.ts';
import { selfSignedCertificate as makeCertificate } from './self-signed-certificate.ts';

class ManualReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

function selfSignedCertificate(): { certChain: Buffer; privateKey: Buffer } {
  const certificate = makeCertificate();
  after(() => rmSync(certificate.dir, { recursive: true, force: true }));
  return certificate;
}

test('serves TLS to an exporter that trusts its certificate', async () => {
  const tls = selfSignedCertificate();
  await using receiver = await OtlpReceiver.start({ address: 'localhost:0', tls });
  assert.match(receiver.url, /^https:\/\/localhost:\d+$/);
  const reader = new ManualReader();
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter('switchyard.tls-test').createCounter('swy.tls.exports').add(1);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  const exporter = new OTLPMetricExporter({
    url: receiver.url,
    credentials: credentials.createSsl(tls.certChain),
  });
  const result = await new Promise<ExportResult>((resolve) => exporter.export(resourceMetrics, resolve));
  await exporter.shutdown();
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  const { request } = await receiver.nextMetrics();
  assert.equal(request.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.name, 'swy.tls.exports');
});
