import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { encodeFrame, LogBatchBuilder, LogSender } from '@switchyard/log-forwarder';
import { type ExportLogsServiceRequest, loadOtlpLogsService, OtlpReceiver } from '@switchyard/otlp-proto';
import { parseExposition, sampleValue } from './support/exposition.ts';
import { freePort } from './support/free-port.ts';
import { checkMetrics } from './support/promtool.ts';
import { spawnWorker, type WorkerProcess } from './support/worker-process.ts';

const forwarderMain = fileURLToPath(new URL('../packages/log-forwarder/src/main.ts', import.meta.url));
const P = 'switchyard_log_forwarder_';

interface RunningForwarder {
  readonly process: WorkerProcess;
  readonly socketPath: string;
  readonly adminUrl: string;
  metrics(): Promise<ReturnType<typeof parseExposition>>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: RunningForwarder[] = [];
const receivers: OtlpReceiver[] = [];
after(async () => {
  for (const forwarder of running) await forwarder.process.stop('SIGKILL');
  for (const receiver of receivers) await receiver.close();
});

async function startReceiver(): Promise<OtlpReceiver> {
  const receiver = await OtlpReceiver.start({ waitTimeoutMs: 15_000 });
  receivers.push(receiver);
  return receiver;
}

async function startForwarder(
  collector: string,
  extra: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = {},
): Promise<RunningForwarder> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-lf-'));
  const socketPath = join(dir, 'intake.sock');
  const file = join(dir, 'forwarder.json');
  const {
    socket = {},
    collector: collectorExtra = {},
    ...rest
  } = extra as {
    socket?: Record<string, unknown>;
    collector?: Record<string, unknown>;
  };
  const config = {
    telemetry: { admin: { port: 0 } },
    socket: { path: socketPath, mode: '600', ...socket },
    collector: {
      endpoint: collector,
      retry: { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 50 },
      ...collectorExtra,
    },
    shutdownGraceMs: '10s',
    ...rest,
  };
  writeFileSync(file, JSON.stringify(config));
  const process = spawnWorker(forwarderMain, env, ['--config', file]);
  const admin = await process.waitForLog((line) => line.msg === 'admin server listening');
  await process.waitForLog((line) => line.msg === 'log forwarder serving');
  const adminUrl = `http://127.0.0.1:${admin.port}`;
  const forwarder: RunningForwarder = {
    process,
    socketPath: config.socket.path as string,
    adminUrl,
    metrics: async () => parseExposition(await (await fetch(`${adminUrl}/metrics`)).text()),
    stop: () => process.stop('SIGTERM'),
  };
  running.push(forwarder);
  return forwarder;
}

function value(
  families: ReturnType<typeof parseExposition>,
  name: string,
  labels: Record<string, string> = {},
): number {
  return sampleValue(families, `${P}${name}`, labels) ?? Number.NaN;
}

/** received = forwarded + dropped after receipt + buffered + in flight, on one scrape. */
function assertInvariant(families: ReturnType<typeof parseExposition>): void {
  const received = value(families, 'records_received_total');
  const parts = {
    forwarded: value(families, 'records_forwarded_total'),
    buffer_full: value(families, 'records_dropped_total', { reason: 'buffer_full' }),
    forward_failed: value(families, 'records_dropped_total', { reason: 'forward_failed' }),
    rejected: value(families, 'records_dropped_total', { reason: 'rejected' }),
    shutdown: value(families, 'records_dropped_total', { reason: 'shutdown' }),
    buffered: value(families, 'buffer_records'),
    inFlight: value(families, 'in_flight_records'),
  };
  const sum = Object.values(parts).reduce((total, part) => total + part, 0);
  assert.equal(sum, received, `records_received ${received} != ${JSON.stringify(parts)}`);
}

/** Scrapes until `done` holds (the forwarder works asynchronously), then returns that scrape. */
async function metricsWhen(
  forwarder: RunningForwarder,
  done: (families: ReturnType<typeof parseExposition>) => boolean,
  timeoutMs = 15_000,
): Promise<ReturnType<typeof parseExposition>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const families = await forwarder.metrics();
    assertInvariant(families);
    if (done(families)) return families;
    if (performance.now() > deadline) throw new Error('the forwarder never reached the expected state');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function batchOf(first: number, count: number): { bytes: Buffer; records: number } {
  const builder = new LogBatchBuilder({ serviceName: 'test-app', maxRecords: count });
  for (let i = first; i < first + count; i++) builder.add({ body: `record ${i}` });
  const records = builder.records;
  return { bytes: builder.finish(), records };
}

/** A collector that answers every export after `delayMs`, recording the bodies it got. */
async function startSlowCollector(
  delayMs: number,
): Promise<{ endpoint: string; bodies(): string[]; stop(): Promise<void> }> {
  const server = new GrpcServer();
  const requests: ExportLogsServiceRequest[] = [];
  server.addService(loadOtlpLogsService(), {
    Export: (
      call: { request: ExportLogsServiceRequest },
      callback: (error: null, response: object) => void,
    ) => {
      requests.push(call.request);
      setTimeout(() => callback(null, {}), delayMs);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bodies: () =>
      requests.flatMap((request) =>
        request.resourceLogs.flatMap((resource) =>
          resource.scopeLogs.flatMap((scope) =>
            scope.logRecords.map((record) => record.body?.stringValue ?? ''),
          ),
        ),
      ),
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

function bodiesOf(receiver: OtlpReceiver): string[] {
  return receiver.logs.flatMap(({ request }) =>
    request.resourceLogs.flatMap((resource) =>
      resource.scopeLogs.flatMap((scope) => scope.logRecords.map((record) => record.body?.stringValue ?? '')),
    ),
  );
}

async function sendAll(
  socketPath: string,
  batches: Array<{ bytes: Buffer; records: number }>,
): Promise<LogSender> {
  const sender = new LogSender({ socketPath });
  for (const batch of batches) assert.ok(sender.send(batch.bytes, batch.records));
  await sender.flush(10_000);
  return sender;
}

describe('log forwarding to a real OTLP gRPC receiver', () => {
  test('records arrive intact and in order, and the accounting adds up', async () => {
    const receiver = await startReceiver();
    const forwarder = await startForwarder(receiver.url);
    const sender = await sendAll(forwarder.socketPath, [batchOf(0, 10), batchOf(10, 10), batchOf(20, 5)]);
    const families = await metricsWhen(forwarder, (f) => value(f, 'records_forwarded_total') === 25);
    assert.deepEqual(
      bodiesOf(receiver),
      Array.from({ length: 25 }, (_, i) => `record ${i}`),
    );
    assert.equal(value(families, 'batches_received_total'), 3);
    assert.equal(value(families, 'batches_forwarded_total'), 3);
    assert.equal(value(families, 'connections_total'), 1);
    const text = await (await fetch(`${forwarder.adminUrl}/metrics`)).text();
    assert.deepEqual((await checkMetrics(text)).problems, []);
    await sender.close();
  });

  test('the old bare-batch tag is still accepted', async () => {
    const receiver = await startReceiver();
    const forwarder = await startForwarder(receiver.url);
    const sender = new LogSender({ socketPath: forwarder.socketPath, legacyFrames: true });
    const { bytes, records } = batchOf(0, 7);
    sender.send(bytes, records);
    await sender.flush(10_000);
    await metricsWhen(forwarder, (f) => value(f, 'records_forwarded_total') === 7);
    assert.equal(bodiesOf(receiver).length, 7);
    await sender.close();
  });

  test('UNAVAILABLE is retried, RESOURCE_EXHAUSTED without retry info drops, partial success counts rejects', async () => {
    const receiver = await startReceiver();
    const forwarder = await startForwarder(receiver.url);
    receiver.answerNext('logs', { kind: 'error', code: 14 }, 2);
    let sender = await sendAll(forwarder.socketPath, [batchOf(0, 4)]);
    let families = await metricsWhen(forwarder, (f) => value(f, 'records_forwarded_total') === 4);
    assert.equal(value(families, 'forward_errors_total', { code: 'UNAVAILABLE' }), 2);
    assert.equal(value(families, 'forward_retries_total'), 2);
    await sender.close();

    receiver.answerNext('logs', { kind: 'error', code: 8 });
    sender = await sendAll(forwarder.socketPath, [batchOf(4, 6)]);
    families = await metricsWhen(
      forwarder,
      (f) => value(f, 'records_dropped_total', { reason: 'forward_failed' }) === 6,
    );
    assert.equal(value(families, 'batches_dropped_total', { reason: 'forward_failed' }), 1);
    assert.equal(value(families, 'forward_errors_total', { code: 'RESOURCE_EXHAUSTED' }), 1);
    await sender.close();

    receiver.answerNext('logs', { kind: 'partial-success', rejected: 3, errorMessage: 'too old' });
    sender = await sendAll(forwarder.socketPath, [batchOf(10, 8)]);
    families = await metricsWhen(
      forwarder,
      (f) => value(f, 'records_dropped_total', { reason: 'rejected' }) === 3,
    );
    assert.equal(value(families, 'records_forwarded_total'), 4 + 5);
    await sender.close();
  });

  test('a slow collector holds batches in the buffer, in order, and all arrive', async () => {
    const slow = await startSlowCollector(150);
    const forwarder = await startForwarder(slow.endpoint, { collector: { maxExportBatches: 2 } });
    const sender = await sendAll(
      forwarder.socketPath,
      Array.from({ length: 12 }, (_, i) => batchOf(i * 5, 5)),
    );
    // While exports crawl, batches wait in the buffer: seen on a scrape, with the invariant intact.
    await metricsWhen(forwarder, (f) => value(f, 'buffer_batches') > 0);
    await metricsWhen(forwarder, (f) => value(f, 'records_forwarded_total') === 60);
    assert.deepEqual(
      slow.bodies(),
      Array.from({ length: 60 }, (_, i) => `record ${i}`),
    );
    await sender.close();
    await slow.stop();
  });

  test('with the collector down, intake never stalls: a burst fills the buffer and the excess is counted', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const forwarder = await startForwarder(dead, {
      buffer: { maxBatches: 5, maxBytes: '1MiB' },
      collector: { maxExportBatches: 1, retry: { maxAttempts: 2, initialBackoffMs: 400, maxBackoffMs: 400 } },
    });
    const sender = new LogSender({ socketPath: forwarder.socketPath, maxQueueBatches: 1000 });
    const started = performance.now();
    for (let i = 0; i < 50; i++) {
      const { bytes, records } = batchOf(i * 10, 10);
      assert.ok(sender.send(bytes, records));
    }
    await sender.flush(10_000);
    const flushedMs = performance.now() - started;
    assert.ok(flushedMs < 5_000, `the sender waited ${flushedMs} ms on a forwarder whose collector is down`);
    const families = await metricsWhen(
      forwarder,
      (f) =>
        value(f, 'batches_received_total') === 50 &&
        value(f, 'buffer_records') === 0 &&
        value(f, 'in_flight_records') === 0,
    );
    const full = value(families, 'records_dropped_total', { reason: 'buffer_full' });
    const failed = value(families, 'records_dropped_total', { reason: 'forward_failed' });
    assert.ok(full >= 10, `buffer_full drops: ${full}`);
    assert.equal(full + failed, 500);
    assert.equal(value(families, 'batches_dropped_total', { reason: 'buffer_full' }) * 10, full);
    assert.equal(value(families, 'forward_errors_total', { code: 'UNAVAILABLE' }) > 0, true);
    await sender.close();
  });

  test('an oversize frame and an unknown tag close only their own connection while another sender keeps going', async () => {
    const receiver = await startReceiver();
    const forwarder = await startForwarder(receiver.url, { socket: { maxFrameBytes: '64KiB' } });
    const good = new LogSender({ socketPath: forwarder.socketPath });
    good.send(batchOf(0, 5).bytes, 5);
    await good.flush(10_000);

    for (const frame of [
      Buffer.concat([Buffer.from([0x07, 0, 0, 1]), Buffer.from([0])]), // tag 7
      Buffer.from([0x01, 0xff, 0xff, 0xff]), // tag 1, 16 MiB - 1: beyond the maximum
    ]) {
      const bad = connect({ path: forwarder.socketPath });
      bad.on('error', () => {});
      await once(bad, 'connect');
      bad.write(frame);
      await once(bad, 'close');
    }
    const garbage = connect({ path: forwarder.socketPath });
    await once(garbage, 'connect');
    garbage.write(encodeFrame(1, Buffer.from([0x0a, 0x7f, 0x01]))); // length past the end: decode_error
    garbage.end();
    await once(garbage, 'close');

    good.send(batchOf(5, 5).bytes, 5);
    await good.flush(10_000);
    const families = await metricsWhen(forwarder, (f) => value(f, 'records_forwarded_total') === 10);
    assert.equal(value(families, 'frame_errors_total', { reason: 'unsupported_tag' }), 1);
    assert.equal(value(families, 'frame_errors_total', { reason: 'too_large' }), 1);
    assert.equal(value(families, 'frame_errors_total', { reason: 'decode_error' }), 1);
    assert.equal(value(families, 'batches_dropped_total', { reason: 'decode_error' }), 1);
    assert.equal(value(families, 'batches_received_total'), 2, 'refused frames are not received batches');
    assert.deepEqual(
      bodiesOf(receiver),
      Array.from({ length: 10 }, (_, i) => `record ${i}`),
    );
    await good.close();
  });

  test('drops reported by a sender are recorded under their own reasons', async () => {
    const receiver = await startReceiver();
    const forwarder = await startForwarder(receiver.url);
    const status = Buffer.from([0x12, 0x04, 0x08, 0x07, 0x10, 0x02]); // Envelope{status{channel_full 7, batch_full 2}}
    const socket = connect({ path: forwarder.socketPath });
    await once(socket, 'connect');
    socket.end(encodeFrame(2, status));
    await once(socket, 'close');
    const families = await metricsWhen(
      forwarder,
      (f) => value(f, 'records_dropped_total', { reason: 'sender_channel_full' }) === 7,
    );
    assert.equal(value(families, 'records_dropped_total', { reason: 'sender_batch_full' }), 2);
    assert.equal(value(families, 'records_received_total'), 0, 'outside the invariant');
  });

  test('SIGTERM stops intake, flushes the buffer to the collector and exits 0', async () => {
    const receiver = await startReceiver();
    const forwarder = await startForwarder(receiver.url);
    const sender = await sendAll(forwarder.socketPath, [batchOf(0, 20), batchOf(20, 20)]);
    await sender.close();
    assert.deepEqual(await forwarder.stop(), { code: 0, signal: null });
    assert.equal(bodiesOf(receiver).length, 40);
    assert.throws(() => statSync(forwarder.socketPath), /ENOENT/, 'the socket file is removed');
  });

  test('at the end of the grace period whatever could not be sent is counted as shutdown', async () => {
    const receiver = await startReceiver();
    // The collector throttles: retry in 5 s, far beyond the 300 ms grace period.
    receiver.answerNext('logs', { kind: 'error', code: 14, retryDelayMs: 5_000 }, 100);
    const forwarder = await startForwarder(
      receiver.url,
      {
        shutdownGraceMs: '300ms',
        collector: {
          retry: { maxAttempts: 5, initialBackoffMs: 10_000, maxBackoffMs: 10_000, maxElapsedMs: 60_000 },
        },
      },
      // The forwarder pushes its own metrics to the same receiver: the shutdown flush carries the final counts.
      { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url, OTEL_METRIC_EXPORT_INTERVAL: '3600000' },
    );
    const sender = await sendAll(forwarder.socketPath, [batchOf(0, 3)]);
    await sender.close();
    await metricsWhen(forwarder, (f) => value(f, 'in_flight_records') === 3);
    forwarder.process.child.kill('SIGTERM');
    assert.deepEqual(await forwarder.process.exited, { code: 0, signal: null });
    assert.equal(forwarder.process.logs.find((line) => line.msg === 'shutdown complete')?.outcome, 'timeout');
    const lastPush = receiver.metrics.at(-1)?.request;
    const dropped = lastPush?.resourceMetrics
      .flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics))
      .find((metric) => metric.name === 'switchyard.log_forwarder.records_dropped');
    const shutdownPoint = dropped?.sum?.dataPoints.find((point) =>
      point.attributes.some((pair) => pair.key === 'reason' && pair.value?.stringValue === 'shutdown'),
    );
    assert.equal(Number(shutdownPoint?.asDouble ?? shutdownPoint?.asInt), 3);
  });
});

describe('the intake socket', () => {
  test('a stale socket file is replaced; a live one makes a second forwarder refuse to start', async () => {
    const receiver = await startReceiver();
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-lf-stale-'));
    const path = join(dir, 'intake.sock');
    // A socket file nobody listens on: a process that bound it was killed before it could unlink it.
    const holder = spawnWorker(fileURLToPath(new URL('./support/hold-unix-socket.ts', import.meta.url)), {}, [
      path,
    ]);
    await holder.waitForLog((line) => line.msg === 'listening');
    holder.child.kill('SIGKILL');
    await holder.exited;
    assert.ok(statSync(path).isSocket(), 'the stale socket file is there');
    const first = await startForwarder(receiver.url, { socket: { path, mode: '600' } });
    assert.equal((statSync(path).mode & 0o777).toString(8), '600');
    const refused = spawnWorker(forwarderMain, {
      SWITCHYARD_LOG_FORWARDER_SOCKET__PATH: path,
      SWITCHYARD_LOG_FORWARDER_TELEMETRY__ADMIN__PORT: '0',
      SWITCHYARD_DEMO_TRAFFIC: '0',
    });
    assert.deepEqual(await refused.exited, { code: 2, signal: null });
    assert.match(
      refused.logs.find((line) => line.level === 'error')?.msg ?? '',
      /another process is listening on/,
    );
    await first.stop();
  });
});
