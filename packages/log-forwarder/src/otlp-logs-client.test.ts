import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  selfSignedCertificate as makeCertificate,
  OtlpReceiver,
  otlpMessageCodecs,
} from '@switchyard/otlp-proto';
import {
  type ExportOutcome,
  type GrpcStatusName,
  LogForwardOptionsError,
  OtlpLogsClient,
  type OtlpLogsClientOptions,
} from './otlp-logs-client.ts';
import { logBatch, recordBodies } from './otlp-test-support.ts';

const requestCodec = otlpMessageCodecs().exportLogsServiceRequest;
const fastRetry = { initialBackoffMs: 1, maxBackoffMs: 5 };

type AttemptFailure = [code: GrpcStatusName, attempt: number, delayMs: number | undefined];

function clientRecordingFailures(options: OtlpLogsClientOptions): {
  client: OtlpLogsClient;
  failures: AttemptFailure[];
} {
  const failures: AttemptFailure[] = [];
  const client = new OtlpLogsClient({
    ...options,
    onAttemptFailed: (...failure) => {
      failures.push(failure);
      options.onAttemptFailed?.(...failure);
    },
  });
  return { client, failures };
}

/** A port that refuses connections: bound once to learn a free number, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise((resolve) => server.close(resolve));
  return address.port;
}

/** A TCP server that accepts connections and never answers, so a gRPC call hangs. */
async function silentServer(): Promise<{ port: number; connected: Promise<void> } & AsyncDisposable> {
  const sockets = new Set<Socket>();
  const { promise: connected, resolve } = Promise.withResolvers<void>();
  const server = createServer((socket) => {
    sockets.add(socket);
    resolve();
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    connected,
    [Symbol.asyncDispose]: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((closed) => server.close(closed));
    },
  };
}

test('delivers a serialized batch to the collector as the request it encodes', async () => {
  await using receiver = await OtlpReceiver.start();
  using client = new OtlpLogsClient({ endpoint: receiver.url });
  const payload = logBatch('n1', ['upstream slow', 'upstream back']);
  const outcome = await client.export(payload, 2);
  assert.deepEqual(outcome, { kind: 'accepted', accepted: 2, rejected: 0, errorMessage: '', attempts: 1 });
  const { request } = await receiver.nextLogs();
  assert.deepEqual(request, requestCodec.decode(payload));
  assert.deepEqual(recordBodies(request), ['upstream slow', 'upstream back']);
});

test('delivers two concatenated batches as one merged request holding every record', async () => {
  await using receiver = await OtlpReceiver.start();
  using client = new OtlpLogsClient({ endpoint: receiver.url });
  const first = logBatch('n1', ['a1', 'a2']);
  const second = logBatch('n2', ['b1', 'b2', 'b3']);
  const outcome = await client.export(Buffer.concat([first, second]), 5);
  assert.equal(outcome.kind, 'accepted');
  assert.equal(receiver.logs.length, 1);
  const { request } = await receiver.nextLogs();
  assert.deepEqual(request.resourceLogs, [
    ...requestCodec.decode(first).resourceLogs,
    ...requestCodec.decode(second).resourceLogs,
  ]);
  assert.deepEqual(recordBodies(request), ['a1', 'a2', 'b1', 'b2', 'b3']);
});

test('sends the configured headers as gRPC metadata and gzip-compresses the request', async () => {
  await using receiver = await OtlpReceiver.start();
  using client = new OtlpLogsClient({
    endpoint: receiver.url,
    headers: { 'X-Tenant': 'node-7', authorization: 'Bearer t0k3n' },
    compression: 'gzip',
  });
  const payload = logBatch('n1', ['compressed']);
  assert.equal((await client.export(payload, 1)).kind, 'accepted');
  const received = await receiver.nextLogs();
  assert.deepEqual(received.metadata['x-tenant'], ['node-7']);
  assert.deepEqual(received.metadata.authorization, ['Bearer t0k3n']);
  assert.match(String(received.metadata['user-agent']), /^switchyard-log-forwarder /);
  assert.equal(received.requestEncoding, 'gzip');
  assert.deepEqual(received.request, requestCodec.decode(payload));
});

test('sends requests uncompressed unless gzip is asked for', async () => {
  await using receiver = await OtlpReceiver.start();
  using client = new OtlpLogsClient({ endpoint: receiver.url });
  await client.export(logBatch('n1', ['plain']), 1);
  assert.equal((await receiver.nextLogs()).requestEncoding, 'identity');
});

test('retries UNAVAILABLE twice, then reports the batch accepted after 3 attempts', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'error', code: status.UNAVAILABLE }, 2);
  const { client, failures } = clientRecordingFailures({ endpoint: receiver.url, retry: fastRetry });
  using _client = client;
  const outcome = await client.export(logBatch('n1', ['retried']), 1);
  assert.deepEqual(outcome, { kind: 'accepted', accepted: 1, rejected: 0, errorMessage: '', attempts: 3 });
  assert.deepEqual(
    failures.map(([code, attempt]) => [code, attempt]),
    [
      ['UNAVAILABLE', 1],
      ['UNAVAILABLE', 2],
    ],
  );
  for (const [, attempt, delayMs] of failures) {
    assert.ok(delayMs !== undefined && delayMs >= 0 && delayMs <= attempt * 1, `delay ${delayMs}`);
  }
  assert.equal(receiver.logs.length, 3);
});

test('fails at once on RESOURCE_EXHAUSTED that carries no retry info', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'error', code: status.RESOURCE_EXHAUSTED, details: 'quota' });
  const { client, failures } = clientRecordingFailures({ endpoint: receiver.url, retry: fastRetry });
  using _client = client;
  const outcome = await client.export(logBatch('n1', ['x']), 1);
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'RESOURCE_EXHAUSTED');
  assert.equal(outcome.attempts, 1);
  assert.match(outcome.message, /quota/);
  assert.deepEqual(failures, [['RESOURCE_EXHAUSTED', 1, undefined]]);
  assert.equal(receiver.logs.length, 1);
});

test('waits at least the retry delay the server asks for before retrying RESOURCE_EXHAUSTED', async () => {
  await using receiver = await OtlpReceiver.start();
  const arrivalsMs: number[] = [];
  receiver.on('logs', () => arrivalsMs.push(performance.now()));
  receiver.answerNext('logs', { kind: 'error', code: status.RESOURCE_EXHAUSTED, retryDelayMs: 300 });
  const { client, failures } = clientRecordingFailures({ endpoint: receiver.url, retry: fastRetry });
  using _client = client;
  const outcome = await client.export(logBatch('n1', ['throttled']), 1);
  assert.equal(outcome.kind, 'accepted');
  assert.equal(outcome.attempts, 2);
  assert.deepEqual(failures, [['RESOURCE_EXHAUSTED', 1, 300]]);
  const [first = 0, second = 0] = arrivalsMs;
  // libuv timers count whole milliseconds, so allow one below the asked delay.
  assert.ok(second - first >= 299, `retried after ${second - first} ms`);
});

test('fails after one attempt on INVALID_ARGUMENT', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'error', code: status.INVALID_ARGUMENT, details: 'bad batch' });
  const { client, failures } = clientRecordingFailures({ endpoint: receiver.url, retry: fastRetry });
  using _client = client;
  const outcome = await client.export(logBatch('n1', ['x']), 1);
  assert.deepEqual(outcome, {
    kind: 'failed',
    code: 'INVALID_ARGUMENT',
    attempts: 1,
    message: 'bad batch (not retryable)',
  });
  assert.deepEqual(failures, [['INVALID_ARGUMENT', 1, undefined]]);
});

test('reports the records a partial success rejected', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'partial-success', rejected: 3, errorMessage: 'timestamps too old' });
  using client = new OtlpLogsClient({ endpoint: receiver.url });
  const outcome = await client.export(logBatch('n1', ['r'.repeat(10)]), 10);
  assert.deepEqual(outcome, {
    kind: 'accepted',
    accepted: 7,
    rejected: 3,
    errorMessage: 'timestamps too old',
    attempts: 1,
  });
});

/** One export to a port where no collector listens, with `retry`. */
async function exportWithNoCollector(
  retry: OtlpLogsClientOptions['retry'],
): Promise<{ outcome: ExportOutcome; failures: AttemptFailure[]; elapsedMs: number }> {
  const port = await closedPort();
  const { client, failures } = clientRecordingFailures({ endpoint: `http://127.0.0.1:${port}`, retry });
  using _client = client;
  const startedMs = performance.now();
  const outcome = await client.export(logBatch('n1', ['lost']), 1);
  return { outcome, failures, elapsedMs: performance.now() - startedMs };
}

test('retries UNAVAILABLE past the old default of 5 attempts, until maxElapsedMs, when no collector listens', async () => {
  const { outcome, failures, elapsedMs } = await exportWithNoCollector({ ...fastRetry, maxElapsedMs: 300 });
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'UNAVAILABLE');
  assert.match(outcome.message, /next retry would pass maxElapsedMs/);
  assert.ok(outcome.attempts > 5, `${outcome.attempts} attempts`);
  assert.equal(failures.length, outcome.attempts);
  assert.ok(failures.every(([code]) => code === 'UNAVAILABLE'));
  assert.equal(failures.at(-1)?.[2], undefined, 'the last failure says the export gives up');
  assert.ok(elapsedMs < 300 + 1000, `gave up after ${elapsedMs} ms, not at maxElapsedMs`);
});

test('still honors the deprecated maxAttempts: fails UNAVAILABLE after it when no collector listens', async () => {
  const { outcome, failures } = await exportWithNoCollector({ ...fastRetry, maxAttempts: 3 });
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'UNAVAILABLE');
  assert.equal(outcome.attempts, 3);
  assert.match(outcome.message, /gave up after 3 attempts \(retry\.maxAttempts\)/);
  assert.deepEqual(
    failures.map(([code, attempt, delayMs]) => [code, attempt, delayMs === undefined]),
    [
      ['UNAVAILABLE', 1, false],
      ['UNAVAILABLE', 2, false],
      ['UNAVAILABLE', 3, true],
    ],
  );
});

test('stops retrying when the next retry would pass maxElapsedMs', async () => {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'error', code: status.UNAVAILABLE, retryDelayMs: 5000 });
  using client = new OtlpLogsClient({ endpoint: receiver.url, retry: { ...fastRetry, maxElapsedMs: 1000 } });
  const outcome = await client.export(logBatch('n1', ['x']), 1);
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.attempts, 1);
  assert.match(outcome.message, /maxElapsedMs/);
});

/**
 * Exports against a collector that asks for a 20 s retry delay, aborting via `abortOn` once the
 * first attempt failed; returns the outcome and how long after the abort it came.
 */
async function exportAbortedInBackoff(
  abortOn: (abort: () => void) => void,
): Promise<{ outcome: ExportOutcome; afterAbortMs: number; calls: number }> {
  await using receiver = await OtlpReceiver.start();
  receiver.answerNext('logs', { kind: 'error', code: status.UNAVAILABLE, retryDelayMs: 20_000 });
  const shutdown = new AbortController();
  let abortedAtMs = 0;
  using client = new OtlpLogsClient({
    endpoint: receiver.url,
    onAttemptFailed: () =>
      abortOn(() => {
        abortedAtMs = performance.now();
        shutdown.abort(new Error('forwarder shutting down'));
      }),
  });
  const outcome = await client.export(logBatch('n1', ['x']), 1, shutdown.signal);
  return { outcome, afterAbortMs: performance.now() - abortedAtMs, calls: receiver.logs.length };
}

function assertAbortedPromptly(result: Awaited<ReturnType<typeof exportAbortedInBackoff>>): void {
  const { outcome, afterAbortMs, calls } = result;
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'CANCELLED');
  assert.equal(outcome.attempts, 1);
  assert.match(outcome.message, /forwarder shutting down/);
  assert.ok(afterAbortMs < 1000, `resolved ${afterAbortMs} ms after the abort`);
  assert.equal(calls, 1);
}

test('resolves promptly as CANCELLED when aborted during the backoff wait', async () => {
  // The microtask runs once export() has entered the wait.
  assertAbortedPromptly(await exportAbortedInBackoff((abort) => queueMicrotask(abort)));
});

test('skips the backoff wait when onAttemptFailed itself aborts', async () => {
  assertAbortedPromptly(await exportAbortedInBackoff((abort) => abort()));
});

test('cancels the call in flight when aborted', async () => {
  await using server = await silentServer();
  const shutdown = new AbortController();
  const { client, failures } = clientRecordingFailures({ endpoint: `127.0.0.1:${server.port}` });
  using _client = client;
  const exported = client.export(logBatch('n1', ['x']), 1, shutdown.signal);
  await server.connected;
  shutdown.abort();
  const outcome = await exported;
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'CANCELLED');
  assert.equal(outcome.attempts, 1);
  assert.deepEqual(failures, []);
});

test('gives an attempt up with DEADLINE_EXCEEDED after timeoutMs', async () => {
  await using server = await silentServer();
  using client = new OtlpLogsClient({
    endpoint: `127.0.0.1:${server.port}`,
    timeoutMs: 200,
    retry: { maxAttempts: 1 },
  });
  const startedMs = performance.now();
  const outcome = await client.export(logBatch('n1', ['x']), 1);
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'DEADLINE_EXCEEDED');
  assert.ok(performance.now() - startedMs >= 190);
});

test('makes no call when the signal is already aborted', async () => {
  await using receiver = await OtlpReceiver.start();
  using client = new OtlpLogsClient({ endpoint: receiver.url });
  const outcome = await client.export(logBatch('n1', ['x']), 1, AbortSignal.abort());
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.code, 'CANCELLED');
  assert.equal(outcome.attempts, 0);
  assert.equal(receiver.logs.length, 0);
});

test('fails exports after close as CANCELLED without a call', async () => {
  await using receiver = await OtlpReceiver.start();
  const client = new OtlpLogsClient({ endpoint: receiver.url });
  client.close();
  const outcome = await client.export(logBatch('n1', ['x']), 1);
  assert.deepEqual(outcome, { kind: 'failed', code: 'CANCELLED', attempts: 0, message: 'client closed' });
});

function selfSignedCertificate(): { certFile: string; keyFile: string } {
  const certificate = makeCertificate();
  after(() => rmSync(certificate.dir, { recursive: true, force: true }));
  return certificate;
}

test('sends over TLS to a collector whose certificate the CA file vouches for', async () => {
  const { certFile, keyFile } = selfSignedCertificate();
  await using receiver = await OtlpReceiver.start({
    address: 'localhost:0',
    tls: { certChain: readFileSync(certFile), privateKey: readFileSync(keyFile) },
  });
  using client = new OtlpLogsClient({ endpoint: receiver.url, caFile: certFile });
  const outcome = await client.export(logBatch('n1', ['sealed']), 1);
  assert.equal(outcome.kind, 'accepted');
  assert.deepEqual(recordBodies((await receiver.nextLogs()).request), ['sealed']);
});

const invalidOptions: [description: string, field: string, options: Partial<OtlpLogsClientOptions>][] = [
  ['an endpoint with another scheme', 'endpoint', { endpoint: 'ftp://collector:4317' }],
  ['an endpoint with a path', 'endpoint', { endpoint: 'http://collector:4317/v1/logs' }],
  ['a bare endpoint without a port', 'endpoint', { endpoint: 'collector' }],
  ['a bare endpoint with port 0', 'endpoint', { endpoint: 'collector:0' }],
  ['an unknown compression', 'compression', { compression: 'br' as 'gzip' }],
  ['a zero timeout', 'timeoutMs', { timeoutMs: 0 }],
  ['a timeout past the timer range', 'timeoutMs', { timeoutMs: 2 ** 31 }],
  ['zero attempts', 'retry.maxAttempts', { retry: { maxAttempts: 0 } }],
  ['a fractional attempt count', 'retry.maxAttempts', { retry: { maxAttempts: 1.5 } }],
  ['a negative initial backoff', 'retry.initialBackoffMs', { retry: { initialBackoffMs: -1 } }],
  [
    'a backoff cap below the initial backoff',
    'retry.maxBackoffMs',
    { retry: { initialBackoffMs: 200, maxBackoffMs: 100 } },
  ],
  ['a NaN elapsed limit', 'retry.maxElapsedMs', { retry: { maxElapsedMs: Number.NaN } }],
  ['a header name with a space', 'headers.bad key', { headers: { 'bad key': 'v' } }],
  ['a binary header', 'headers.trace-bin', { headers: { 'trace-bin': 'v' } }],
  ['a header value with a newline', 'headers.x-note', { headers: { 'x-note': 'a\nb' } }],
  ['insecure with an https endpoint', 'insecure', { endpoint: 'https://collector:4317', insecure: true }],
  ['a CA file with an http endpoint', 'caFile', { endpoint: 'http://collector:4317', caFile: '/ca.pem' }],
  [
    'a client certificate without its key',
    'certFile',
    { endpoint: 'https://collector:4317', certFile: '/cert.pem' },
  ],
  [
    'a CA file that does not exist',
    'caFile',
    { endpoint: 'https://collector:4317', caFile: '/nonexistent/ca.pem' },
  ],
];

for (const [description, field, options] of invalidOptions) {
  test(`rejects ${description}, naming the field ${field}`, () => {
    assert.throws(
      () => new OtlpLogsClient({ endpoint: 'http://127.0.0.1:4317', ...options }),
      (error: unknown) => {
        assert.ok(error instanceof LogForwardOptionsError);
        assert.equal(error.code, 'SWY_ERR_LOG_FORWARD_OPTIONS');
        assert.equal(error.field, field);
        assert.match(error.message, new RegExp(`: ${field.replace('.', '\\.')} is .*; `));
        return true;
      },
    );
  });
}

test('accepts http, https and bare host:port endpoints, IPv6 included', () => {
  const targets = ['http://[::1]:4317', 'https://collector.local', 'collector:4317', '[::1]:4317'].map(
    (endpoint) => {
      using client = new OtlpLogsClient({ endpoint });
      return client.target;
    },
  );
  assert.deepEqual(targets, ['[::1]:4317', 'collector.local:443', 'collector:4317', '[::1]:4317']);
});

test('reads the logs-specific OTEL variables before the generic ones', () => {
  const options = OtlpLogsClient.optionsFromEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317',
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:4317',
    OTEL_EXPORTER_OTLP_HEADERS: 'x-generic=1',
    OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'x-tenant=node%207, authorization=Bearer%20t',
    OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
    OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: 'gzip',
    OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
  });
  assert.equal(options.endpoint, 'http://logs:4317');
  assert.deepEqual(options.headers, { 'x-tenant': 'node 7', authorization: 'Bearer t' });
  assert.equal(options.compression, 'gzip');
  assert.equal(options.timeoutMs, 2500);
});

test('lets explicit options win over the OTEL variables', () => {
  const options = OtlpLogsClient.optionsFromEnv(
    { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:4317', OTEL_EXPORTER_OTLP_TIMEOUT: '2500' },
    { endpoint: 'http://explicit:4317', timeoutMs: 700, headers: {} },
  );
  assert.equal(options.endpoint, 'http://explicit:4317');
  assert.equal(options.timeoutMs, 700);
  assert.deepEqual(options.headers, {});
});

test('defaults the endpoint to http://localhost:4317 when nothing names one', () => {
  assert.equal(OtlpLogsClient.optionsFromEnv({}).endpoint, 'http://localhost:4317');
});

test('applies OTEL insecure only to an endpoint without a scheme, and TLS files not to http://', () => {
  const env = {
    OTEL_EXPORTER_OTLP_INSECURE: 'true',
    OTEL_EXPORTER_OTLP_CERTIFICATE: '/etc/ca.pem',
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/etc/cert.pem',
    OTEL_EXPORTER_OTLP_CLIENT_KEY: '/etc/key.pem',
  };
  const https = OtlpLogsClient.optionsFromEnv({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4317' });
  assert.equal(https.insecure, undefined);
  assert.deepEqual(
    [https.caFile, https.certFile, https.keyFile],
    ['/etc/ca.pem', '/etc/cert.pem', '/etc/key.pem'],
  );
  const http = OtlpLogsClient.optionsFromEnv({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' });
  assert.deepEqual(
    [http.insecure, http.caFile, http.certFile, http.keyFile],
    [undefined, undefined, undefined, undefined],
  );
  const bare = OtlpLogsClient.optionsFromEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4317',
    OTEL_EXPORTER_OTLP_INSECURE: 'true',
  });
  assert.equal(bare.insecure, true);
});

const invalidEnvironment: [variable: string, value: string][] = [
  ['OTEL_EXPORTER_OTLP_LOGS_HEADERS', 'novalue'],
  ['OTEL_EXPORTER_OTLP_HEADERS', 'x-a=%E0%A4%A'],
  ['OTEL_EXPORTER_OTLP_LOGS_COMPRESSION', 'zstd'],
  ['OTEL_EXPORTER_OTLP_TIMEOUT', '10s'],
  ['OTEL_EXPORTER_OTLP_LOGS_INSECURE', 'yes'],
];

for (const [variable, value] of invalidEnvironment) {
  test(`rejects ${variable}=${value}, naming the variable`, () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4317', [variable]: value };
    assert.throws(() => OtlpLogsClient.optionsFromEnv(env), {
      code: 'SWY_ERR_LOG_FORWARD_OPTIONS',
      field: variable,
    });
  });
}
