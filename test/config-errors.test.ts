import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnWorker } from './support/worker-process.ts';

const sampleMain = fileURLToPath(new URL('../packages/sample-worker/src/main.ts', import.meta.url));

test('a bad config file exits 2 with one line naming the file, the field, the value and what is allowed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-config-'));
  const file = join(dir, 'sample.yaml');
  writeFileSync(file, 'echo:\n  listen: "127.0.0.1:99999"\n');
  const worker = spawnWorker(sampleMain, { SWITCHYARD_SAMPLE_CONFIG: file });
  const exit = await worker.exited;
  assert.deepEqual(exit, { code: 2, signal: null });
  const errors = worker.logs.filter((line) => line.level === 'error');
  assert.equal(errors.length, 1);
  const message = errors[0]?.msg ?? '';
  assert.match(message, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.match(message, /echo\.listen/);
  assert.match(message, /127\.0\.0\.1:99999/);
  assert.match(message, /port between 0 and 65535/);
  assert.equal(errors[0]?.code, 'SWY_ERR_CONFIG');
});

test('a misspelt key is rejected, not ignored', async () => {
  const worker = spawnWorker(sampleMain, { SWITCHYARD_SAMPLE_TELEMETRY__ADMIN__PROT: '9500' });
  assert.deepEqual(await worker.exited, { code: 2, signal: null });
  const message = worker.logs.find((line) => line.level === 'error')?.msg ?? '';
  assert.match(message, /telemetry\.admin\.prot/);
  assert.match(message, /SWITCHYARD_SAMPLE_TELEMETRY__ADMIN__PROT/);
  assert.match(message, /host, port, bearerToken/);
});

test('a bad OTEL_* variable is rejected with a message naming it', async () => {
  const worker = spawnWorker(sampleMain, {
    OTEL_METRIC_EXPORT_INTERVAL: 'soon',
    SWITCHYARD_SAMPLE_TELEMETRY__ADMIN__PORT: '0',
  });
  assert.deepEqual(await worker.exited, { code: 2, signal: null });
  const message = worker.logs.find((line) => line.level === 'error')?.msg ?? '';
  assert.match(message, /OTEL_METRIC_EXPORT_INTERVAL="soon"/);
  assert.match(message, /positive integer number of milliseconds/);
});

test('an admin port already in use exits 2 naming the address', async () => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const { port } = blocker.address() as { port: number };
  try {
    const worker = spawnWorker(sampleMain, { SWITCHYARD_SAMPLE_TELEMETRY__ADMIN__PORT: String(port) });
    assert.deepEqual(await worker.exited, { code: 2, signal: null });
    const message = worker.logs.find((line) => line.level === 'error')?.msg ?? '';
    assert.match(message, new RegExp(`admin server cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
  } finally {
    blocker.close();
  }
});
