import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type LogRecord, otlpMessageCodecs } from '@switchyard/otlp-proto';
import { CliUsageError, DEFAULT_CLI_SOCKET_PATH, inferSeverity, parseCommandLine } from './cli.ts';
import { DEFAULT_SOCKET_PATH } from './config.ts';
import { FRAME_TAG_ENVELOPE, FrameDecoder } from './frame.ts';
import { decodeEnvelope } from './otlp-wire.ts';

const cliPath = fileURLToPath(new URL('./cli.ts', import.meta.url));
const tempDir = mkdtempSync(join(tmpdir(), 'log-cli-test-'));
after(() => rmSync(tempDir, { recursive: true, force: true }));
let socketCount = 0;
const nextSocketPath = () => join(tempDir, `intake-${socketCount++}.sock`);
const codec = otlpMessageCodecs().exportLogsServiceRequest;

interface ReceivedBatch {
  readonly serviceName: string | undefined;
  readonly records: LogRecord[];
}

/** Decodes the tag-2 frames of every connection as they come; `onBatch` fires after each batch. */
class RecordSink {
  readonly path = nextSocketPath();
  readonly batches: ReceivedBatch[] = [];
  readonly statuses: Array<{ channelFull: number; batchFull: number }> = [];
  onBatch: () => void = () => {};
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor() {
    this.#server = createServer((socket) => this.#accept(socket));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ path: this.path }, () => resolve());
    });
  }

  get records(): LogRecord[] {
    return this.batches.flatMap((batch) => batch.records);
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      const error = decoder.push(chunk, (frame) => {
        assert.equal(frame.tag, FRAME_TAG_ENVELOPE);
        const content = decodeEnvelope(frame.payload);
        if (content.kind === 'status') {
          this.statuses.push({
            channelFull: content.droppedChannelFull,
            batchFull: content.droppedBatchFull,
          });
          return;
        }
        const resourceLogs = codec.decode(content.request).resourceLogs[0]!;
        this.batches.push({
          serviceName: resourceLogs.resource?.attributes.find((attribute) => attribute.key === 'service.name')
            ?.value?.stringValue,
          records: resourceLogs.scopeLogs[0]!.logRecords,
        });
        this.onBatch();
      });
      assert.equal(error, undefined);
    });
    socket.on('end', () => socket.end());
  }
}

async function openSink(t: { after(fn: () => Promise<void>): void }): Promise<RecordSink> {
  const sink = new RecordSink();
  await sink.listen();
  t.after(() => sink.close());
  return sink;
}

interface CliRun {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function startCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, exited };
}

function runCli(args: readonly string[], input: string, env: NodeJS.ProcessEnv = {}) {
  const run = startCli(args, env);
  run.child.stdin.end(input);
  return run.exited;
}

describe('switchyard-log send', () => {
  test('sends each stdin line as a record with the severity of its level word, then prints a summary and exits 0', async (t) => {
    const sink = await openSink(t);
    const lines = [
      'ERROR payment failed for order 17',
      'WARN retrying in 200 ms',
      'info: listening on :8080',
      '[DEBUG] cache miss key=user:42',
      'plain line without a level',
      '',
      'Warning: disk 91% full',
      'FATAL out of memory',
      'trace enter handler',
      'ünïcödé ✓ 日本語 😀',
      'INFORMATIONAL is not a level word',
    ];
    const { code, stderr } = await runCli(
      ['send', '--socket', sink.path, '--service', 'checkout'],
      `${lines.join('\n')}\n`,
    );
    assert.equal(code, 0, stderr);
    const expected = lines
      .filter((line) => line !== '')
      .map((line) => [
        line,
        inferSeverity(line)?.severityNumber ?? 0,
        inferSeverity(line)?.severityText ?? '',
      ]);
    assert.deepEqual(
      sink.records.map((record) => [record.body?.stringValue, record.severityNumber, record.severityText]),
      expected.map(([body, number, text]) => [body, SEVERITY_NAMES[number as number], text]),
    );
    assert.ok(sink.batches.every((batch) => batch.serviceName === 'checkout'));
    assert.match(
      stderr,
      /^switchyard-log: sent 10 records in 1 batches; dropped 0 \(channel_full 0, batch_full 0\); unsent 0\n$/,
    );
  });

  test('cuts batches at --batch-records and reads CRLF input', async (t) => {
    const sink = await openSink(t);
    const input = ['one', 'two', 'three', 'four', 'five'].join('\r\n');
    const { code, stderr } = await runCli(
      ['send', '--socket', sink.path, '--batch-records', '2', '--flush-ms', '3600000'],
      input,
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      sink.batches.map((batch) => batch.records.map((record) => record.body?.stringValue)),
      [['one', 'two'], ['three', 'four'], ['five']],
    );
    assert.match(stderr, /sent 5 records in 3 batches/);
  });

  test('sends a partial batch after --flush-ms while stdin stays open', async (t) => {
    const sink = await openSink(t);
    const run = startCli(['send', '--socket', sink.path, '--flush-ms', '20'], {
      OTEL_SERVICE_NAME: 'from-env',
    });
    const firstBatch = new Promise<void>((resolve) => {
      sink.onBatch = resolve;
    });
    run.child.stdin.write('INFO first\n');
    await firstBatch;
    assert.deepEqual(
      sink.records.map((record) => record.body?.stringValue),
      ['INFO first'],
    );
    assert.equal(sink.batches[0]!.serviceName, 'from-env');
    run.child.stdin.end('INFO second\n');
    const { code, stderr } = await run.exited;
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      sink.records.map((record) => record.body?.stringValue),
      ['INFO first', 'INFO second'],
    );
  });

  test('takes the socket from SWITCHYARD_LOG_SOCKET when --socket is absent', async (t) => {
    const sink = await openSink(t);
    const { code, stderr } = await runCli(['send'], 'hello\n', { SWITCHYARD_LOG_SOCKET: sink.path });
    assert.equal(code, 0, stderr);
    assert.equal(sink.records[0]?.body?.stringValue, 'hello');
  });

  test('exits 1 naming the unreachable socket when no forwarder takes the records in --flush-timeout-ms', async () => {
    const path = nextSocketPath();
    const { code, stderr } = await runCli(['send', '--socket', path, '--flush-timeout-ms', '50'], 'a\nb\n');
    assert.equal(code, 1);
    assert.match(
      stderr,
      /sent 0 records in 0 batches; .*unsent 2; log forwarder unreachable at .*intake-\d+\.sock \(ENOENT\)/,
    );
  });

  test('exits 2 with the usage for bad arguments', async () => {
    const cases = [[], ['receive'], ['send', '--batch-records', '0'], ['send', '--bogus'], ['send', 'extra']];
    const runs = await Promise.all(cases.map((args) => runCli(args, '')));
    runs.forEach(({ code, stderr }, i) => {
      assert.equal(code, 2, `${cases[i]!.join(' ')}: ${stderr}`);
      assert.match(stderr, /^switchyard-log: .+\n\nusage: switchyard-log send/);
    });
  });
});

const SEVERITY_NAMES: Record<number, string> = {
  0: 'SEVERITY_NUMBER_UNSPECIFIED',
  1: 'SEVERITY_NUMBER_TRACE',
  5: 'SEVERITY_NUMBER_DEBUG',
  9: 'SEVERITY_NUMBER_INFO',
  13: 'SEVERITY_NUMBER_WARN',
  17: 'SEVERITY_NUMBER_ERROR',
  21: 'SEVERITY_NUMBER_FATAL',
};

describe('switchyard-log arguments', () => {
  test('defaults: the forwarder default socket, OTEL_SERVICE_NAME, 100 records, 200 ms', () => {
    assert.equal(DEFAULT_CLI_SOCKET_PATH, DEFAULT_SOCKET_PATH);
    assert.deepEqual(parseCommandLine(['send'], {}), {
      help: false,
      command: {
        socketPath: DEFAULT_SOCKET_PATH,
        serviceName: 'unknown_service',
        batchRecords: 100,
        flushMs: 200,
        flushTimeoutMs: 5000,
      },
    });
    assert.equal(parseCommandLine(['send'], { OTEL_SERVICE_NAME: 'svc' }).help, false);
    assert.deepEqual(parseCommandLine(['--help'], {}), { help: true });
  });

  test('rejects values out of range with a message naming the option', () => {
    assert.throws(() => parseCommandLine(['send', '--flush-ms', '1.5'], {}), /--flush-ms must be an integer/);
    assert.throws(() => parseCommandLine(['send', '--batch-records', '-3'], {}), CliUsageError);
    assert.throws(() => parseCommandLine(['send', '--service', ''], {}), /--service must not be empty/);
    assert.throws(() => parseCommandLine(['send', '--socket'], {}), CliUsageError);
  });

  test('a level word counts only at the start of the line, in any case, optionally bracketed', () => {
    assert.deepEqual(inferSeverity('  [Error] x'), { severityNumber: 17, severityText: 'Error' });
    assert.deepEqual(inferSeverity('warning: x'), { severityNumber: 13, severityText: 'warning' });
    assert.equal(inferSeverity('request ERROR'), undefined);
    assert.equal(inferSeverity('ERRORS: 3'), undefined);
    assert.equal(inferSeverity(''), undefined);
  });
});
