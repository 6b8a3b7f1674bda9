import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { OtlpReceiver } from './receiver.ts';

class ManualReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/**
 * A throwaway self-signed certificate for localhost, made per run so no key sits in the repo. A DNS
 * name rather than 127.0.0.1, because Node deprecates TLS server names that are IP addresses.
 */
function selfSignedCertificate(): { certChain: Buffer; privateKey: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'otlp-receiver-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      ...[
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
      ],
      ...['-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
      ...['-keyout', keyPath, '-out', certPath],
    ],
    { stdio: 'pipe' },
  );
  return { certChain: readFileSync(certPath), privateKey: readFileSync(keyPath) };
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
