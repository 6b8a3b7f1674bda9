import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OtlpReceiver } from '@switchyard/otlp-proto';
import { SDK_DISABLED_EXPOSITION } from '@switchyard/telemetry';
import { echoOnce } from './support/echo-client.ts';
import { checkMetrics } from './support/promtool.ts';
import { startSampleWorker } from './support/worker-process.ts';

test('with OTEL_SDK_DISABLED=true the worker serves, /metrics says why it is empty, and nothing is pushed', async () => {
  const receiver = await OtlpReceiver.start();
  const worker = await startSampleWorker({
    OTEL_SDK_DISABLED: 'true',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url,
    SWITCHYARD_DEMO_TRAFFIC: '0',
  });
  try {
    assert.ok(
      worker.logs.some((line) => line.level === 'warn' && line.msg.startsWith('OTEL_SDK_DISABLED=true')),
    );
    assert.ok(!worker.logs.some((line) => line.msg === 'pushing metrics over OTLP gRPC'));
    assert.deepEqual(await echoOnce(worker.echoPort, Buffer.from('ping')), Buffer.from('ping'));
    const response = await fetch(`${worker.adminUrl}/metrics`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.equal(text, SDK_DISABLED_EXPOSITION);
    assert.ok((await checkMetrics(text)).ok);
    assert.equal((await fetch(`${worker.adminUrl}/readyz`)).status, 200);
    // Shutdown would flush a last export if a push reader existed: none arrives.
    assert.deepEqual(await worker.stop(), { code: 0, signal: null });
    assert.equal(receiver.metrics.length, 0);
  } finally {
    await worker.stop();
    await receiver.close();
  }
});
