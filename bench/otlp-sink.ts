import { fork } from 'node:child_process';
import http2 from 'node:http2';
import {
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { countLogRecords } from '@switchyard/log-forwarder';
import { stopChild } from './child-process.ts';

/**
 * The OTLP logs receiver of the log-forwarder benchmark, in a process of its own: a grpc-js server
 * implementing `LogsService/Export` whose request deserializer only walks the wire format to count
 * the log records (`countLogRecords`, no objects decoded) and whose answer is an empty
 * ExportLogsServiceResponse (full success). It is as cheap as a gRPC receiver in Node gets, so that
 * the forwarder, not the sink, limits the measured rate; its CPU time is reported next to it. Its
 * HTTP/2 flow-control windows are as large as a Collector's grow to (FLOW_CONTROL_WINDOW_BYTES).
 *
 * The bench drives it over the IPC channel of `fork`: `wait` resolves when the records counted since
 * start reach a target, when no export came for `quietMs` (then the bench asks the forwarder whether
 * more is coming), or at a deadline,
 * with the monotonic time (process.hrtime, the same clock in every process) of the last export.
 *
 * Run: `node otlp-sink.ts` forked with IPC; it reports `{ type: 'listening', port }` once bound.
 */

const HOST = '127.0.0.1';
const EXPORT_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
const EMPTY_RESPONSE = Buffer.alloc(0);
/**
 * The Collector's gRPC server (grpc-go) grows its HTTP/2 windows by BDP estimation up to 16 MiB
 * (bdpLimit in internal/transport/bdp_estimator.go); grpc-js stays at HTTP/2's 64 KiB, where a
 * merged export of a few MiB waits out dozens of WINDOW_UPDATE round trips through the sink's event
 * loop, and the sink, not the forwarder, would set the rate (measured ~110k against ~600k
 * records/s with batches of 100).
 */
const FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;

/** The sink's totals since it started. */
export interface SinkCounts {
  readonly records: number;
  readonly exports: number;
  /** process.hrtime.bigint() of the last export, as a decimal string (0 before the first). */
  readonly lastExportNs: string;
}

export interface SinkWaitResult extends SinkCounts {
  readonly outcome: 'reached' | 'quiet' | 'deadline';
}

type SinkQuestion =
  | { readonly type: 'counts' }
  | {
      readonly type: 'wait';
      readonly records: number;
      readonly quietMs: number;
      readonly deadlineMs: number;
    };
type SinkRequest = SinkQuestion & { readonly id: number };

type SinkReply = {
  readonly type: 'reply';
  readonly id: number;
  readonly result: SinkCounts | SinkWaitResult;
};

export interface RunningSink {
  readonly port: number;
  readonly pid: number;
  counts(): Promise<SinkCounts>;
  /** Resolves once `records` (a total since start) are counted, after `quietMs` without exports, or after `deadlineMs`. */
  waitFor(records: number, quietMs: number, deadlineMs: number): Promise<SinkWaitResult>;
  stop(): Promise<void>;
}

/** Starts the sink in a child process and resolves once it accepts gRPC connections. */
export function spawnSink(): Promise<RunningSink> {
  const child = fork(import.meta.filename, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map<number, (result: SinkCounts | SinkWaitResult) => void>();
  let nextId = 0;
  const ask = <Result>(request: SinkQuestion): Promise<Result> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, resolve as (result: SinkCounts | SinkWaitResult) => void);
      child.send({ ...request, id }, (error) => {
        if (error) reject(new Error(`OTLP sink: ${error.message}`));
      });
    });
  child.on('message', (message: SinkReply | { type: 'listening'; port: number }) => {
    if (message.type !== 'reply') return;
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`not listening within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const fail = (reason: string): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`OTLP sink did not start: ${reason}`));
    };
    child.once('error', (error) => fail(error.message));
    child.once('exit', (code, signal) => fail(`it exited (${code ?? signal})`));
    child.on('message', (message: SinkReply | { type: 'listening'; port: number }) => {
      if (message.type !== 'listening') return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        port: message.port,
        pid: child.pid as number,
        counts: () => ask<SinkCounts>({ type: 'counts' }),
        waitFor: (records, quietMs, deadlineMs) =>
          ask<SinkWaitResult>({ type: 'wait', records, quietMs, deadlineMs }),
        stop: () => stopChild(child, STOP_TIMEOUT_MS),
      });
    });
  });
}

interface Waiter {
  readonly id: number;
  readonly records: number;
  readonly quietNs: bigint;
  readonly deadlineNs: bigint;
}

/** Counts records per export and answers the bench's questions about them. */
class RecordCounter {
  records = 0;
  exports = 0;
  lastExportNs = 0n;
  #waiter: Waiter | undefined;
  #timer: NodeJS.Timeout | undefined;

  counts(): SinkCounts {
    return { records: this.records, exports: this.exports, lastExportNs: `${this.lastExportNs}` };
  }

  add(records: number): void {
    this.records += records;
    this.exports += 1;
    this.lastExportNs = process.hrtime.bigint();
    const waiter = this.#waiter;
    if (waiter !== undefined && this.records >= waiter.records) this.#settle('reached');
  }

  wait(id: number, records: number, quietMs: number, deadlineMs: number): void {
    if (this.#waiter !== undefined) this.#settle('deadline');
    const now = process.hrtime.bigint();
    this.#waiter = {
      id,
      records,
      quietNs: BigInt(Math.round(quietMs * 1e6)),
      deadlineNs: now + BigInt(Math.round(deadlineMs * 1e6)),
    };
    if (this.records >= records) {
      this.#settle('reached');
      return;
    }
    // Polled rather than rearmed per export: a timer per export would cost the sink more than the count.
    this.#timer = setInterval(() => this.#check(now), Math.max(5, Math.min(50, quietMs / 4)));
  }

  #check(waitStartNs: bigint): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    const now = process.hrtime.bigint();
    const lastActivityNs = this.lastExportNs > waitStartNs ? this.lastExportNs : waitStartNs;
    if (now - lastActivityNs >= waiter.quietNs) this.#settle('quiet');
    else if (now >= waiter.deadlineNs) this.#settle('deadline');
  }

  #settle(outcome: SinkWaitResult['outcome']): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    clearInterval(this.#timer);
    this.#waiter = undefined;
    const reply: SinkReply = { type: 'reply', id: waiter.id, result: { ...this.counts(), outcome } };
    process.send?.(reply);
  }
}

/**
 * Makes every HTTP/2 server of this process advertise `windowBytes` flow-control windows, per stream
 * (SETTINGS_INITIAL_WINDOW_SIZE) and per connection (WINDOW_UPDATE at session start). grpc-js has no
 * server option for it, and it creates its server with `http2.createServer`, which is patched here,
 * in the sink's own process only.
 */
function widenFlowControl(windowBytes: number): void {
  const createServer = http2.createServer;
  (http2 as { createServer: unknown }).createServer = (options: http2.ServerOptions) => {
    const settings = { ...options.settings, initialWindowSize: windowBytes };
    const server = createServer({ ...options, settings });
    server.on('session', (session) => session.setLocalWindowSize(windowBytes));
    return server;
  };
}

function serve(): void {
  widenFlowControl(FLOW_CONTROL_WINDOW_BYTES);
  const counter = new RecordCounter();
  const logsService: ServiceDefinition = {
    Export: {
      path: EXPORT_PATH,
      requestStream: false,
      responseStream: false,
      // The request reaches the handler as its record count: the payload is never decoded.
      requestDeserialize: (bytes: Buffer) => countLogRecords(bytes),
      requestSerialize: () => EMPTY_RESPONSE,
      responseSerialize: () => EMPTY_RESPONSE,
      responseDeserialize: () => undefined,
    },
  };
  const exportHandler: handleUnaryCall<number, undefined> = (
    call: ServerUnaryCall<number, undefined>,
    callback: sendUnaryData<undefined>,
  ) => {
    counter.add(call.request);
    callback(null, undefined);
  };
  // A merged export may reach the forwarder's maxExportBytes; the Collector's own default is 4 MiB.
  const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(logsService, { Export: exportHandler });
  server.bindAsync(`${HOST}:0`, ServerCredentials.createInsecure(), (error, port) => {
    if (error) {
      process.stderr.write(`OTLP sink: ${error.message}\n`);
      process.exit(1);
    }
    process.send?.({ type: 'listening', port });
  });
  process.on('message', (request: SinkRequest) => {
    if (request.type === 'counts') {
      process.send?.({ type: 'reply', id: request.id, result: counter.counts() } satisfies SinkReply);
    } else {
      counter.wait(request.id, request.records, request.quietMs, request.deadlineMs);
    }
  });
  process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
  process.on('disconnect', () => process.exit(0));
}

if (import.meta.main) serve();
