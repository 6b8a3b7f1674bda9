import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import { OtlpReceiver } from '@switchyard/otlp-proto';
import { echoOnce } from './support/echo-client.ts';
import { pushedMetrics } from './support/otlp-metrics.ts';
import { startSampleWorker } from './support/worker-process.ts';

test('SIGTERM flushes the last OTLP export with the final counts and exits 0', async () => {
  const receiver = await OtlpReceiver.start({ waitTimeoutMs: 15_000 });
  // An interval far beyond the test: the only export that can arrive is the one shutdown flushes.
  const worker = await startSampleWorker({
    SWITCHYARD_DEMO_TRAFFIC: '0',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url,
    OTEL_METRIC_EXPORT_INTERVAL: '3600000',
  });
  try {
    for (let i = 0; i < 5; i++) await echoOnce(worker.echoPort, Buffer.alloc(100, i));
    const exit = await worker.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(receiver.metrics.length, 1, 'exactly one export: the shutdown flush');
    const pushed = pushedMetrics((await receiver.nextMetrics()).request);
    assert.equal(pushed.get('switchyard.sample.connections')?.values.get('{}'), 5);
    assert.equal(pushed.get('switchyard.sample.bytes')?.values.get('{"direction":"received"}'), 500);
    assert.equal(
      pushed.get('switchyard.sample.ready')?.values.get('{}'),
      0,
      'the flush happens after readiness flipped',
    );
    assert.ok(worker.logs.some((line) => line.msg === 'shutdown complete'));
  } finally {
    await worker.stop();
    await receiver.close();
  }
});

test('shutdown turns /readyz to 503, stops accepting, lets an open connection finish, then exits 0', async () => {
  const worker = await startSampleWorker({
    SWITCHYARD_DEMO_TRAFFIC: '0',
    SWITCHYARD_SAMPLE_SHUTDOWN_GRACE_MS: '20s',
  });
  try {
    const open = connect({ host: '127.0.0.1', port: worker.echoPort });
    await once(open, 'connect');
    open.write('before');
    await once(open, 'data');
    worker.child.kill('SIGTERM');
    await worker.waitForLog((line) => line.msg === 'shutting down');
    const readiness = await fetch(`${worker.adminUrl}/readyz`);
    assert.equal(readiness.status, 503);
    assert.equal(await readiness.text(), 'shutting down\n');
    const refused = connect({ host: '127.0.0.1', port: worker.echoPort });
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED', 'no new connections during shutdown');
    // The connection opened before shutdown still echoes.
    open.write('during');
    const [echoed] = (await once(open, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'during');
    open.end();
    const exit = await worker.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    const complete = worker.logs.find((line) => line.msg === 'shutdown complete');
    assert.equal(complete?.outcome, 'drained');
  } finally {
    await worker.stop();
  }
});

test('a connection still open at the end of the grace period is closed and the worker exits 0', async () => {
  const worker = await startSampleWorker({
    SWITCHYARD_DEMO_TRAFFIC: '0',
    SWITCHYARD_SAMPLE_SHUTDOWN_GRACE_MS: '300ms',
  });
  try {
    const open = connect({ host: '127.0.0.1', port: worker.echoPort });
    await once(open, 'connect');
    const closed = once(open, 'close');
    open.on('error', () => {});
    worker.child.kill('SIGTERM');
    await closed;
    const exit = await worker.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(worker.logs.find((line) => line.msg === 'shutdown complete')?.outcome, 'timeout');
  } finally {
    await worker.stop();
  }
});
