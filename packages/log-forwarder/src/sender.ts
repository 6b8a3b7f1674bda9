import { connect, type Socket } from 'node:net';
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrameHeader,
  FRAME_TAG_BATCH,
  FRAME_TAG_ENVELOPE,
  MAX_FRAME_LIMIT,
} from './frame.ts';

/**
 * The sender side of the forwarder's intake socket, the transport a program's logging library uses.
 *
 * Frames (see frame.ts): each batch goes as a tag-2 `Envelope{logs}`, and the drops as a tag-2
 * `Envelope{status: SenderStatus}` (envelope.proto). The forwarder still accepts tag-1 frames (a bare
 * ExportLogsServiceRequest) from senders that predate the envelope; `legacyFrames: true` sends those,
 * to test that path, and then no status can be sent.
 */

export const DEFAULT_MAX_QUEUE_BATCHES = 64;
/** 8 MiB. */
export const DEFAULT_MAX_QUEUE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_RECONNECT_INITIAL_MS = 50;
export const DEFAULT_RECONNECT_MAX_MS = 5000;
export const DEFAULT_STATUS_INTERVAL_MS = 1000;
/** How long `close()` lets the forwarder take the last frames before the socket is destroyed. */
export const CLOSE_TIMEOUT_MS = 2000;
/** Upper bound of every delay option (1 hour). */
const MAX_DELAY_MS = 3_600_000;
/** Linux `sockaddr_un.sun_path` holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;

/** Envelope field tags: (field number << 3) | 2 (length-delimited). */
const TAG_ENVELOPE_LOGS = 0x0a;
const TAG_ENVELOPE_STATUS = 0x12;
/** SenderStatus field tags: (field number << 3) | 0 (varint). */
const TAG_STATUS_DROPPED_CHANNEL_FULL = 0x08;
const TAG_STATUS_DROPPED_BATCH_FULL = 0x10;

export interface LogSenderOptions {
  /** The forwarder's Unix socket. */
  readonly socketPath: string;
  /** Batches held while the socket is slow or down, the one being written included; default 64. */
  readonly maxQueueBatches?: number;
  /** Bytes held in those batches; default 8 MiB. */
  readonly maxQueueBytes?: number;
  /** First reconnect delay, in ms, doubled per failed attempt (then jittered); default 50. */
  readonly reconnectInitialMs?: number;
  /** Cap on the reconnect delay, in ms; default 5000. */
  readonly reconnectMaxMs?: number;
  /** How often drops are reported, in ms; default 1000. */
  readonly statusIntervalMs?: number;
  /** Largest frame payload the forwarder accepts, in bytes; default `DEFAULT_MAX_FRAME_BYTES` (1 MiB). */
  readonly maxFrameBytes?: number;
  /** Send tag-1 frames (bare requests, no status), as senders did before the envelope; default false. */
  readonly legacyFrames?: boolean;
}

export interface LogSenderStats {
  /** Batches not yet written to the socket, the one being written included. */
  readonly queuedBatches: number;
  readonly queuedBytes: number;
  readonly queuedRecords: number;
  /** Batches (and their records) the kernel has taken from the sender. */
  readonly sentBatches: number;
  readonly sentRecords: number;
  /** Records dropped because the queue was full (or the sender closed with them queued). */
  readonly droppedChannelFull: number;
  /** Records dropped in batches larger than a frame or than the whole queue. */
  readonly droppedBatchFull: number;
  readonly connected: boolean;
  /** Connections made by the reconnect timer, after a connection was lost or could not be made. */
  readonly reconnects: number;
}

/** A LogSender option is out of range. */
export class LogSenderOptionError extends Error {
  readonly code = 'SWY_ERR_LOG_SENDER_OPTION';
  readonly option: string;

  constructor(option: string, message: string) {
    super(`LogSender: ${option} ${message}`);
    this.name = 'LogSenderOptionError';
    this.option = option;
  }
}

/** `flush()` ran out of time with batches still queued (the forwarder is down, or not reading). */
export class LogSenderFlushTimeoutError extends Error {
  readonly code = 'SWY_ERR_LOG_SENDER_FLUSH_TIMEOUT';
  readonly unsentBatches: number;
  readonly unsentRecords: number;

  constructor(timeoutMs: number, unsentBatches: number, unsentRecords: number) {
    super(
      `LogSender: flush timed out after ${timeoutMs} ms with ${unsentBatches} batches (${unsentRecords} records) unsent; is the log forwarder running and reading its socket?`,
    );
    this.name = 'LogSenderFlushTimeoutError';
    this.unsentBatches = unsentBatches;
    this.unsentRecords = unsentRecords;
  }
}

/** `close()` was called while a `flush()` waited. */
export class LogSenderClosedError extends Error {
  readonly code = 'SWY_ERR_LOG_SENDER_CLOSED';

  constructor() {
    super('LogSender: closed before the queued batches were written');
    this.name = 'LogSenderClosedError';
  }
}

interface QueuedBatch {
  readonly batch: Uint8Array;
  readonly records: number;
}

/** The frame handed to the socket and not yet confirmed written. */
type InFlight =
  | { readonly kind: 'batch'; readonly entry: QueuedBatch }
  | { readonly kind: 'status'; readonly channelFull: number; readonly batchFull: number };

interface FlushWaiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

function varintBytes(value: number): number {
  let bytes = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes++;
  return bytes;
}

/** Writes a varint of a non-negative safe integer (counts can pass 2^32); returns the offset after it. */
function writeVarint(out: Buffer, start: number, value: number): number {
  let offset = start;
  let rest = value;
  while (rest >= 0x80) {
    out[offset++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[offset++] = rest;
  return offset;
}

function envelopePayloadBytes(batchBytes: number): number {
  return 1 + varintBytes(batchBytes) + batchBytes;
}

/** Frame header and the envelope's `logs` tag and length: everything before the batch's own bytes. */
function envelopePrefix(batchBytes: number): Buffer {
  const header = encodeFrameHeader(FRAME_TAG_ENVELOPE, envelopePayloadBytes(batchBytes));
  const prefix = Buffer.allocUnsafe(header.length + 1 + varintBytes(batchBytes));
  header.copy(prefix, 0);
  prefix[header.length] = TAG_ENVELOPE_LOGS;
  writeVarint(prefix, header.length + 1, batchBytes);
  return prefix;
}

/** A whole tag-2 frame holding `Envelope{status: SenderStatus{...}}`; zero counts are left out. */
function statusFrame(channelFull: number, batchFull: number): Buffer {
  const status = Buffer.allocUnsafe(22);
  let end = 0;
  if (channelFull > 0) {
    status[end++] = TAG_STATUS_DROPPED_CHANNEL_FULL;
    end = writeVarint(status, end, channelFull);
  }
  if (batchFull > 0) {
    status[end++] = TAG_STATUS_DROPPED_BATCH_FULL;
    end = writeVarint(status, end, batchFull);
  }
  const payloadBytes = 1 + varintBytes(end) + end;
  const header = encodeFrameHeader(FRAME_TAG_ENVELOPE, payloadBytes);
  const frame = Buffer.allocUnsafe(header.length + payloadBytes);
  header.copy(frame, 0);
  frame[header.length] = TAG_ENVELOPE_STATUS;
  const offset = writeVarint(frame, header.length + 1, end);
  status.copy(frame, offset, 0, end);
  return frame;
}

function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < min || resolved > max) {
    throw new LogSenderOptionError(name, `must be an integer from ${min} to ${max}, got ${resolved}`);
  }
  return resolved;
}

/**
 * Queues serialized ExportLogsServiceRequest batches and writes them to the forwarder's Unix socket,
 * never making the caller wait: `send` is an array push, or one non-blocking write when the socket is
 * idle.
 *
 * One frame at a time is handed to the socket; the next goes from the previous one's write callback.
 * That is the backpressure (a forwarder that stops reading stalls the callback, the queue fills, and
 * `send` starts dropping and counting) and also the delivery record: a frame whose write fails stays
 * at the queue head and is sent again whole on the next connection (the forwarder discards the
 * truncated frame the lost connection ended with), so nothing is sent twice. Memory is bounded by the
 * queue limits; the socket never holds more than the frame in flight.
 *
 * The socket and timers do not keep the process alive, except while `flush()` or `close()` waits:
 * call `flush()` before exiting to deliver what is queued.
 */
export class LogSender {
  readonly #socketPath: string;
  readonly #maxQueueBatches: number;
  readonly #maxQueueBytes: number;
  readonly #reconnectInitialMs: number;
  readonly #reconnectMaxMs: number;
  readonly #maxFrameBytes: number;
  readonly #legacyFrames: boolean;

  readonly #queue: QueuedBatch[] = [];
  #queuedBytes = 0;
  #queuedRecords = 0;
  #sentBatches = 0;
  #sentRecords = 0;
  #droppedChannelFull = 0;
  #droppedBatchFull = 0;
  /** Drops not yet acknowledged as written in a status frame. */
  #unreportedChannelFull = 0;
  #unreportedBatchFull = 0;
  #statusDue = false;

  /** The connected socket; undefined while connecting or disconnected. */
  #socket: Socket | undefined;
  /** The socket connecting or connected: the one close() ends, and the one ref() applies to. */
  #currentSocket: Socket | undefined;
  #inFlight: InFlight | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #failedAttempts = 0;
  #reconnects = 0;
  #lastError: Error | undefined;
  readonly #statusTimer: NodeJS.Timeout | undefined;
  readonly #flushWaiters = new Set<FlushWaiter>();
  #closing: Promise<void> | undefined;

  constructor(options: LogSenderOptions) {
    const { socketPath } = options;
    if (typeof socketPath !== 'string' || socketPath === '') {
      throw new LogSenderOptionError('socketPath', `must be a non-empty path, got ${socketPath}`);
    }
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new LogSenderOptionError(
        'socketPath',
        `must be at most ${MAX_SOCKET_PATH_BYTES} bytes (the Unix socket address limit), got ${socketPath}`,
      );
    }
    this.#socketPath = socketPath;
    this.#maxQueueBatches = integerOption(
      'maxQueueBatches',
      options.maxQueueBatches,
      DEFAULT_MAX_QUEUE_BATCHES,
      1,
      2 ** 20,
    );
    this.#maxQueueBytes = integerOption(
      'maxQueueBytes',
      options.maxQueueBytes,
      DEFAULT_MAX_QUEUE_BYTES,
      1,
      2 ** 40,
    );
    this.#reconnectInitialMs = integerOption(
      'reconnectInitialMs',
      options.reconnectInitialMs,
      DEFAULT_RECONNECT_INITIAL_MS,
      1,
      MAX_DELAY_MS,
    );
    this.#reconnectMaxMs = integerOption(
      'reconnectMaxMs',
      options.reconnectMaxMs,
      Math.max(DEFAULT_RECONNECT_MAX_MS, this.#reconnectInitialMs),
      this.#reconnectInitialMs,
      MAX_DELAY_MS,
    );
    const statusIntervalMs = integerOption(
      'statusIntervalMs',
      options.statusIntervalMs,
      DEFAULT_STATUS_INTERVAL_MS,
      1,
      MAX_DELAY_MS,
    );
    this.#maxFrameBytes = integerOption(
      'maxFrameBytes',
      options.maxFrameBytes,
      DEFAULT_MAX_FRAME_BYTES,
      1,
      MAX_FRAME_LIMIT,
    );
    this.#legacyFrames = options.legacyFrames ?? false;
    if (!this.#legacyFrames) {
      this.#statusTimer = setInterval(() => this.reportStatus(), statusIntervalMs).unref();
    }
    this.#connect(false);
  }

  /**
   * Queues one serialized ExportLogsServiceRequest holding `records` log records; never blocks. The
   * sender keeps `batch` until it is written: do not change it afterwards. Returns false, counting
   * the records as dropped_channel_full, when the queue is full (as it fills while the forwarder is
   * down or slow) or the sender is closed; a batch that can never be sent, larger than a frame
   * (`maxFrameBytes`) or than the whole queue (`maxQueueBytes`), counts as dropped_batch_full.
   */
  send(batch: Uint8Array, records: number): boolean {
    if (!Number.isSafeInteger(records) || records < 0) {
      throw new RangeError(`LogSender.send: records must be a non-negative integer, got ${records}`);
    }
    const payloadBytes = this.#legacyFrames ? batch.length : envelopePayloadBytes(batch.length);
    if (payloadBytes > this.#maxFrameBytes || batch.length > this.#maxQueueBytes) {
      this.#droppedBatchFull += records;
      this.#unreportedBatchFull += records;
      return false;
    }
    if (
      this.#closing !== undefined ||
      this.#queue.length >= this.#maxQueueBatches ||
      this.#queuedBytes + batch.length > this.#maxQueueBytes
    ) {
      this.#droppedChannelFull += records;
      this.#unreportedChannelFull += records;
      return false;
    }
    this.#queue.push({ batch, records });
    this.#queuedBytes += batch.length;
    this.#queuedRecords += records;
    this.#pump();
    return true;
  }

  /**
   * Sends (tag 2) a SenderStatus with the drops since the previous status, if there were any; at once
   * when the socket is idle, else before the next queued batch, else after the next connect. Also
   * runs every `statusIntervalMs` and right after each connect. A no-op with `legacyFrames`.
   */
  reportStatus(): void {
    if (this.#legacyFrames || this.#closing !== undefined) return;
    if (this.#unreportedChannelFull === 0 && this.#unreportedBatchFull === 0) return;
    this.#statusDue = true;
    this.#pump();
  }

  get stats(): LogSenderStats {
    return {
      queuedBatches: this.#queue.length,
      queuedBytes: this.#queuedBytes,
      queuedRecords: this.#queuedRecords,
      sentBatches: this.#sentBatches,
      sentRecords: this.#sentRecords,
      droppedChannelFull: this.#droppedChannelFull,
      droppedBatchFull: this.#droppedBatchFull,
      connected: this.#socket !== undefined,
      reconnects: this.#reconnects,
    };
  }

  /** The last socket error (ENOENT: no forwarder listening, EPIPE: it went away, ...), for diagnostics. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /**
   * Resolves once every queued batch has been written to the socket. Rejects with a
   * LogSenderFlushTimeoutError after `timeoutMs` (default: no limit), or a LogSenderClosedError
   * when `close()` comes first. Keeps the process alive while it waits.
   */
  flush(timeoutMs?: number): Promise<void> {
    if (this.#queue.length === 0) return Promise.resolve();
    if (this.#closing !== undefined) return Promise.reject(new LogSenderClosedError());
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
      throw new RangeError(`LogSender.flush: timeoutMs must be a finite number >= 0, got ${timeoutMs}`);
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: FlushWaiter = {
        resolve,
        reject,
        timer:
          timeoutMs === undefined
            ? undefined
            : setTimeout(() => {
                this.#flushWaiters.delete(waiter);
                this.#applyRef();
                reject(new LogSenderFlushTimeoutError(timeoutMs, this.#queue.length, this.#queuedRecords));
              }, timeoutMs),
      };
      this.#flushWaiters.add(waiter);
      this.#applyRef();
    });
  }

  /**
   * Stops the sender: the batches still queued are discarded and counted as dropped_channel_full
   * (call `flush()` first to deliver them), the drops not yet reported go in a last status frame
   * when connected, and the connection is ended. Resolves when the socket has closed, at most
   * `CLOSE_TIMEOUT_MS` later; no timer or socket is left behind.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#statusTimer);
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    for (const waiter of this.#flushWaiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new LogSenderClosedError());
    }
    this.#flushWaiters.clear();
    this.#discardQueued(this.#inFlight?.kind === 'batch' ? 1 : 0);
    const socket = this.#currentSocket;
    if (socket !== undefined) await this.#endSocket(socket);
    this.#discardQueued(0);
  }

  /**
   * Lets the frame in flight and a last status go out, then ends the connection; a socket still
   * connecting is destroyed.
   */
  async #endSocket(socket: Socket): Promise<void> {
    socket.ref();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    if (this.#socket === undefined) {
      socket.destroy();
      return closed;
    }
    // A status frame in flight already carries part of the unreported counts.
    const inFlight = this.#inFlight?.kind === 'status' ? this.#inFlight : { channelFull: 0, batchFull: 0 };
    const channelFull = this.#unreportedChannelFull - inFlight.channelFull;
    const batchFull = this.#unreportedBatchFull - inFlight.batchFull;
    if (!this.#legacyFrames && (channelFull > 0 || batchFull > 0)) {
      socket.write(statusFrame(channelFull, batchFull), (error) => {
        if (error) return;
        this.#unreportedChannelFull -= channelFull;
        this.#unreportedBatchFull -= batchFull;
      });
    }
    const timer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS);
    socket.end();
    await closed;
    clearTimeout(timer);
  }

  /** Drops the queued batches after the first `keep`, counting their records as dropped_channel_full. */
  #discardQueued(keep: number): void {
    for (const entry of this.#queue.splice(keep)) {
      this.#queuedBytes -= entry.batch.length;
      this.#queuedRecords -= entry.records;
      this.#droppedChannelFull += entry.records;
      this.#unreportedChannelFull += entry.records;
    }
  }

  #connect(retry: boolean): void {
    const socket = connect({ path: this.#socketPath });
    this.#currentSocket = socket;
    this.#applyRef();
    socket.on('connect', () => {
      this.#socket = socket;
      this.#failedAttempts = 0;
      if (retry) this.#reconnects++;
      this.#statusDue = true;
      this.#applyRef();
      this.#pump();
    });
    socket.on('error', (error) => {
      this.#lastError = error;
    });
    socket.on('close', () => this.#disconnected(socket));
  }

  #disconnected(socket: Socket): void {
    if (this.#currentSocket !== socket) return;
    this.#currentSocket = undefined;
    this.#socket = undefined;
    // The frame in flight, if its callback has not confirmed it, stays queued and goes again whole.
    this.#inFlight = undefined;
    if (this.#closing !== undefined) return;
    const ceilingMs = Math.min(
      this.#reconnectMaxMs,
      this.#reconnectInitialMs * 2 ** Math.min(this.#failedAttempts, 30),
    );
    this.#failedAttempts++;
    // Equal jitter: senders that lost the same forwarder do not all come back at the same instant.
    const delayMs = ceilingMs / 2 + Math.random() * (ceilingMs / 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect(true);
    }, delayMs);
    this.#applyRef();
  }

  /** Hands the next frame to the socket when it is connected and idle: the status first, then a batch. */
  #pump(): void {
    const socket = this.#socket;
    if (socket === undefined || this.#inFlight !== undefined || this.#closing !== undefined) return;
    if (this.#statusDue) {
      this.#statusDue = false;
      if (!this.#legacyFrames && (this.#unreportedChannelFull > 0 || this.#unreportedBatchFull > 0)) {
        const inFlight: InFlight = {
          kind: 'status',
          channelFull: this.#unreportedChannelFull,
          batchFull: this.#unreportedBatchFull,
        };
        this.#write(socket, inFlight, [statusFrame(inFlight.channelFull, inFlight.batchFull)]);
        return;
      }
    }
    const entry = this.#queue[0];
    if (entry === undefined) return;
    const prefix = this.#legacyFrames
      ? encodeFrameHeader(FRAME_TAG_BATCH, entry.batch.length)
      : envelopePrefix(entry.batch.length);
    this.#write(socket, { kind: 'batch', entry }, [prefix, entry.batch]);
  }

  #write(socket: Socket, inFlight: InFlight, chunks: readonly Uint8Array[]): void {
    this.#inFlight = inFlight;
    socket.cork();
    for (let i = 0; i < chunks.length - 1; i++) socket.write(chunks[i]!);
    socket.write(chunks[chunks.length - 1]!, (error) => this.#written(inFlight, error));
    socket.uncork();
  }

  #written(inFlight: InFlight, error: Error | null | undefined): void {
    if (error) {
      // The connection is going; 'close' re-queues by forgetting the frame in flight.
      return;
    }
    if (inFlight.kind === 'status') {
      this.#unreportedChannelFull -= inFlight.channelFull;
      this.#unreportedBatchFull -= inFlight.batchFull;
    } else if (this.#queue[0] === inFlight.entry) {
      this.#queue.shift();
      this.#queuedBytes -= inFlight.entry.batch.length;
      this.#queuedRecords -= inFlight.entry.records;
      this.#sentBatches++;
      this.#sentRecords += inFlight.entry.records;
      if (this.#queue.length === 0) this.#resolveFlushWaiters();
    }
    if (this.#inFlight === inFlight) this.#inFlight = undefined;
    this.#pump();
  }

  #resolveFlushWaiters(): void {
    for (const waiter of this.#flushWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.#flushWaiters.clear();
    this.#applyRef();
  }

  /** The socket and the reconnect timer hold the process only while someone waits on a flush. */
  #applyRef(): void {
    const hold = this.#flushWaiters.size > 0;
    const socket = this.#currentSocket;
    if (socket !== undefined) {
      if (hold) socket.ref();
      else socket.unref();
    }
    if (this.#reconnectTimer !== undefined) {
      if (hold) this.#reconnectTimer.ref();
      else this.#reconnectTimer.unref();
    }
  }
}
