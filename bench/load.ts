import { execFile } from 'node:child_process';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { BULK_HEADER_BYTES, MODE_ECHO, MODE_SINK } from './backend.ts';

/**
 * The load generator, run as a process of its own so that it never shares an event loop with the
 * proxy under test or the backend. Two modes, one JSON result line on stdout:
 *
 * - `bulk`: `--connections` connections (default 4) each stream their share of `--bytes` (default
 *   256 MiB) in 64 KiB writes to the backend's discard sink; the clock stops when the sink has acked
 *   the last byte of every connection.
 * - `short`: `--concurrency` workers (default 50) each open a connection, send a `--request-bytes`
 *   request (default 64), read the echoed reply, close, and start over, for `--duration-ms`
 *   (default 3000). Latency runs from `connect()` to the last reply byte.
 *
 * Run: `node load.ts --mode bulk --port N` or `node load.ts --mode short --port N`.
 */

const HOST = '127.0.0.1';
const CHUNK_BYTES = 64 * 1024;
const TIMEOUT_MS = 120_000;
const REPLY_TIMEOUT_MS = 10_000;

export interface BulkOptions {
  readonly port: number;
  readonly connections: number;
  readonly bytes: number;
}

export interface ShortOptions {
  readonly port: number;
  readonly concurrency: number;
  readonly durationMs: number;
  readonly requestBytes: number;
}

export interface BulkResult {
  readonly mode: 'bulk';
  /** Payload bytes the backend acknowledged. */
  readonly bytes: number;
  readonly seconds: number;
  readonly gbitPerSecond: number;
  /** CPU time the load generator used while measuring, in milliseconds. */
  readonly loadCpuMs: number;
}

export interface ShortResult {
  readonly mode: 'short';
  /** Connections that completed a request and reply and closed cleanly. */
  readonly connections: number;
  readonly errors: number;
  /** Message of the first failed connection, when one failed. */
  readonly firstError?: string;
  readonly seconds: number;
  readonly connectionsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly loadCpuMs: number;
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function streamToSink(port: number, payloadBytes: number, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const header = Buffer.alloc(BULK_HEADER_BYTES);
    header[0] = MODE_SINK;
    header.writeBigUInt64BE(BigInt(payloadBytes), 1);
    let remaining = payloadBytes;
    let acked = false;
    const socket = net.connect({ host: HOST, port });
    const pump = (): void => {
      while (remaining > 0) {
        const piece = remaining >= chunk.length ? chunk : chunk.subarray(0, remaining);
        remaining -= piece.length;
        if (!socket.write(piece)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    socket.once('connect', () => {
      socket.write(header);
      pump();
    });
    socket.once('data', () => {
      acked = true;
      socket.end();
      resolve();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      if (!acked) reject(new Error(`connection closed before the sink acked ${payloadBytes} bytes`));
    });
  });
}

export async function runBulk(options: BulkOptions): Promise<BulkResult> {
  const chunk = Buffer.alloc(CHUNK_BYTES, 0x61);
  const perConnection = Math.floor(options.bytes / options.connections);
  const shares = Array.from({ length: options.connections }, (_, index) =>
    index === 0 ? options.bytes - perConnection * (options.connections - 1) : perConnection,
  );
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  await Promise.all(shares.map((share) => streamToSink(options.port, share, chunk)));
  const seconds = (performance.now() - start) / 1000;
  return {
    mode: 'bulk',
    bytes: options.bytes,
    seconds,
    gbitPerSecond: (options.bytes * 8) / seconds / 1e9,
    loadCpuMs: cpuMsSince(cpuStart),
  };
}

/** Resolves with the latency in milliseconds once the reply arrived and both sides closed. */
function requestReply(port: number, request: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let latencyMs = -1;
    let bytesReceived = 0;
    const socket = net.connect({ host: HOST, port, noDelay: true });
    socket.setTimeout(REPLY_TIMEOUT_MS, () =>
      socket.destroy(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms`)),
    );
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      bytesReceived += chunk.length;
      if (latencyMs < 0 && bytesReceived >= request.length) {
        latencyMs = performance.now() - start;
        socket.end();
      }
    });
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (hadError) return;
      if (latencyMs >= 0) resolve(latencyMs);
      else reject(new Error(`connection closed after ${bytesReceived} of ${request.length} reply bytes`));
    });
  });
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return sorted[rank - 1] as number;
}

export async function runShort(options: ShortOptions): Promise<ShortResult> {
  const request = Buffer.alloc(options.requestBytes, 0x61);
  request[0] = MODE_ECHO;
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + options.durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      try {
        latenciesMs.push(await requestReply(options.port, request));
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(latenciesMs).sort();
  return {
    mode: 'short',
    connections: latenciesMs.length,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    seconds,
    connectionsPerSecond: latenciesMs.length / seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    loadCpuMs: cpuMsSince(cpuStart),
  };
}

const LOAD_SCRIPT = import.meta.filename;

function runLoadProcess(args: readonly string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [LOAD_SCRIPT, ...args],
      { timeout: TIMEOUT_MS + 10_000 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`load generator (${args.join(' ')}) failed: ${stderr.trim() || error.message}`));
          return;
        }
        resolve(JSON.parse(stdout));
      },
    );
  });
}

/** Runs a bulk measurement in a child process. */
export async function spawnBulk(options: BulkOptions): Promise<BulkResult> {
  const args = ['--mode', 'bulk', '--port', `${options.port}`];
  args.push('--connections', `${options.connections}`, '--bytes', `${options.bytes}`);
  return (await runLoadProcess(args)) as BulkResult;
}

/** Runs a short-connection measurement in a child process. */
export async function spawnShort(options: ShortOptions): Promise<ShortResult> {
  const args = ['--mode', 'short', '--port', `${options.port}`, '--concurrency', `${options.concurrency}`];
  args.push('--duration-ms', `${options.durationMs}`, '--request-bytes', `${options.requestBytes}`);
  return (await runLoadProcess(args)) as ShortResult;
}

function positiveInteger(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`--${name} ${raw} is not allowed: give a positive integer`);
  }
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string' },
      port: { type: 'string' },
      connections: { type: 'string' },
      bytes: { type: 'string' },
      concurrency: { type: 'string' },
      'duration-ms': { type: 'string' },
      'request-bytes': { type: 'string' },
    },
  });
  const port = positiveInteger('port', values.port, 0);
  if (port === 0 || port > 65535) throw new RangeError('--port is required: the TCP port to load');
  const timer = setTimeout(() => {
    process.stderr.write(`load generator gave up after ${TIMEOUT_MS} ms: the proxy stalled\n`);
    process.exit(1);
  }, TIMEOUT_MS);
  timer.unref();
  let result: BulkResult | ShortResult;
  if (values.mode === 'bulk') {
    result = await runBulk({
      port,
      connections: positiveInteger('connections', values.connections, 4),
      bytes: positiveInteger('bytes', values.bytes, 256 * 1024 * 1024),
    });
  } else if (values.mode === 'short') {
    result = await runShort({
      port,
      concurrency: positiveInteger('concurrency', values.concurrency, 50),
      durationMs: positiveInteger('duration-ms', values['duration-ms'], 3000),
      requestBytes: positiveInteger('request-bytes', values['request-bytes'], 64),
    });
  } else {
    throw new RangeError(`--mode ${values.mode} is not allowed: use --mode bulk or --mode short`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
