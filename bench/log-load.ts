import { fork } from 'node:child_process';
import { LogBatchBuilder, LogSender } from '@switchyard/log-forwarder';
import { stopChild } from './child-process.ts';

/**
 * The sender side of the log-forwarder benchmark, in a process of its own (so that it never shares
 * an event loop with the forwarder or the sink), driven by the bench over the IPC channel of `fork`.
 *
 * A run connects a LogSender with its default options to the forwarder's socket, then, for
 * `durationMs`, sends pre-built batches of `batchRecords` records as fast as the sender accepts
 * them: while its queue is full the loop awaits `flush()` (the queue drained into the socket, so
 * the producer never spins), else it calls `send()`, counting a `false` as dropped records. It
 * then flushes, closes, and reports what was sent and how long `send()` and waits for room took.
 * Batches are built before the clock starts (once per batch size, then reused) with
 * LogBatchBuilder: ~200-byte ASCII bodies, a timestamp and a severity, as an access log would.
 *
 * Run: `node log-load.ts` forked with IPC.
 */

/** LogSender's default queue, in batches (DEFAULT_MAX_QUEUE_BATCHES, not exported by the package). */
const SENDER_QUEUE_BATCHES = 64;
const BODY_BYTES = 200;
/** Distinct batches per size: at least this many records, and more batches than the queue holds. */
const POOL_RECORDS = 20_000;
const POOL_MIN_BATCHES = 4 * SENDER_QUEUE_BATCHES;
/** A `send()` call this long counts as slow: it is an array push, or one non-blocking write. */
const SLOW_SEND_MS = 1;
const CONNECT_TIMEOUT_MS = 5_000;
const FLUSH_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 3_000;

export interface LoadRunOptions {
  readonly socketPath: string;
  readonly batchRecords: number;
  readonly durationMs: number;
}

export interface LoadRunResult {
  /** Records (and batches) the sender wrote to the socket. */
  readonly sentRecords: number;
  readonly sentBatches: number;
  /** Records `send()` refused (returned false), and the sender's own drop counters. */
  readonly refusedRecords: number;
  readonly droppedChannelFull: number;
  readonly droppedBatchFull: number;
  /** process.hrtime.bigint() at the first send, after the last accepted send, after the flush; decimal strings. */
  readonly startNs: string;
  readonly sendEndNs: string;
  readonly flushedNs: string;
  /** `send()` calls, the longest one in microseconds, and how many took 1 ms or more. */
  readonly sends: number;
  readonly maxSendUs: number;
  readonly slowSends: number;
  /** Times the queue was full, and the longest wait for it to drain, in milliseconds. */
  readonly fullWaits: number;
  readonly maxFullWaitMs: number;
  /** CPU time of this process from the first send to the flush, in milliseconds. */
  readonly cpuMs: number;
}

interface PooledBatch {
  readonly bytes: Buffer;
  readonly records: number;
}

type LoadRequest = { readonly id: number } & LoadRunOptions;
type LoadReply =
  | { readonly id: number; readonly result: LoadRunResult }
  | { readonly id: number; readonly error: string };

export interface RunningLoad {
  readonly pid: number;
  run(options: LoadRunOptions): Promise<LoadRunResult>;
  stop(): Promise<void>;
}

/** Starts the load process; it builds batches lazily, on the first run of each batch size. */
export function spawnLoad(): RunningLoad {
  const child = fork(import.meta.filename, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map<number, { resolve: (r: LoadRunResult) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  child.on('message', (reply: LoadReply) => {
    const waiter = pending.get(reply.id);
    pending.delete(reply.id);
    if ('error' in reply) waiter?.reject(new Error(`log load: ${reply.error}`));
    else waiter?.resolve(reply.result);
  });
  child.once('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`log load exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    pid: child.pid as number,
    run: (options) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        child.send({ ...options, id } satisfies LoadRequest);
      }),
    stop: () => stopChild(child, STOP_TIMEOUT_MS),
  };
}

const BODY_FILLER =
  'method=GET path=/api/v1/orders/ status=200 bytes=5123 duration_ms=12.7 user_agent="Mozilla/5.0 (X11; Linux x86_64)" '.repeat(
    3,
  );

function bodyOf(index: number): string {
  return `req-${index} ${BODY_FILLER}`.slice(0, BODY_BYTES);
}

const pools = new Map<number, PooledBatch[]>();

function poolOf(batchRecords: number): PooledBatch[] {
  const cached = pools.get(batchRecords);
  if (cached !== undefined) return cached;
  const batches = Math.max(POOL_MIN_BATCHES, Math.ceil(POOL_RECORDS / batchRecords));
  const builder = new LogBatchBuilder({ serviceName: 'bench-app', maxRecords: batchRecords });
  const timeUnixNano = BigInt(Date.now()) * 1_000_000n;
  const pool: PooledBatch[] = [];
  let index = 0;
  for (let batch = 0; batch < batches; batch++) {
    for (let record = 0; record < batchRecords; record++) {
      builder.add({ body: bodyOf(index++), timeUnixNano, severityNumber: 9, severityText: 'INFO' });
    }
    const records = builder.records;
    pool.push({ bytes: builder.finish(), records });
  }
  pools.set(batchRecords, pool);
  return pool;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function connected(sender: LogSender, socketPath: string): Promise<void> {
  const deadline = performance.now() + CONNECT_TIMEOUT_MS;
  while (!sender.stats.connected) {
    if (performance.now() > deadline) {
      throw new Error(`no connection to ${socketPath} within ${CONNECT_TIMEOUT_MS} ms: ${sender.lastError}`);
    }
    await delay(2);
  }
}

export async function runLoad(options: LoadRunOptions): Promise<LoadRunResult> {
  const pool = poolOf(options.batchRecords);
  const sender = new LogSender({ socketPath: options.socketPath });
  try {
    await connected(sender, options.socketPath);
    let refusedRecords = 0;
    let sends = 0;
    let maxSendMs = 0;
    let slowSends = 0;
    let fullWaits = 0;
    let maxFullWaitMs = 0;
    let next = 0;
    const cpuStart = process.cpuUsage();
    const startNs = process.hrtime.bigint();
    const deadline = performance.now() + options.durationMs;
    for (let now = performance.now(); now < deadline; now = performance.now()) {
      if (sender.stats.queuedBatches >= SENDER_QUEUE_BATCHES) {
        await sender.flush(FLUSH_TIMEOUT_MS);
        const waitedMs = performance.now() - now;
        fullWaits++;
        if (waitedMs > maxFullWaitMs) maxFullWaitMs = waitedMs;
        continue;
      }
      const batch = pool[next]!;
      next = next + 1 === pool.length ? 0 : next + 1;
      const before = performance.now();
      const accepted = sender.send(batch.bytes, batch.records);
      const sendMs = performance.now() - before;
      sends++;
      if (sendMs > maxSendMs) maxSendMs = sendMs;
      if (sendMs >= SLOW_SEND_MS) slowSends++;
      if (!accepted) refusedRecords += batch.records;
    }
    const sendEndNs = process.hrtime.bigint();
    await sender.flush(FLUSH_TIMEOUT_MS);
    const flushedNs = process.hrtime.bigint();
    const cpu = process.cpuUsage(cpuStart);
    const stats = sender.stats;
    return {
      sentRecords: stats.sentRecords,
      sentBatches: stats.sentBatches,
      refusedRecords,
      droppedChannelFull: stats.droppedChannelFull,
      droppedBatchFull: stats.droppedBatchFull,
      startNs: `${startNs}`,
      sendEndNs: `${sendEndNs}`,
      flushedNs: `${flushedNs}`,
      sends,
      maxSendUs: maxSendMs * 1000,
      slowSends,
      fullWaits,
      maxFullWaitMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
    };
  } finally {
    await sender.close();
  }
}

if (import.meta.main) {
  process.on('message', (request: LoadRequest) => {
    runLoad(request).then(
      (result) => process.send?.({ id: request.id, result } satisfies LoadReply),
      (error: unknown) =>
        process.send?.({
          id: request.id,
          error: error instanceof Error ? error.message : String(error),
        } satisfies LoadReply),
    );
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
