import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { type Logger, SwitchyardError } from '@switchyard/telemetry';
import type { BatchBuffer } from './buffer.ts';
import { FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE, type Frame, FrameDecoder } from './frame.ts';
import type { FrameErrorReason, LogForwarderMetrics } from './metrics.ts';
import { countLogRecords, decodeEnvelope, PayloadDecodeError } from './otlp-wire.ts';

/** Another forwarder already serves the socket path. */
export class SocketInUseError extends SwitchyardError {
  constructor(path: string) {
    super(
      'SWY_ERR_LOG_SOCKET_IN_USE',
      `log intake: another process is listening on ${path}; stop it or configure another socket.path`,
    );
  }
}

export interface IntakeOptions {
  readonly path: string;
  /** Octal file mode, e.g. "660". */
  readonly mode: string;
  readonly maxFrameBytes: number;
  readonly buffer: BatchBuffer;
  readonly metrics: LogForwarderMetrics;
  readonly logger: Logger;
  /** Called after a batch entered the buffer (the forwarder wakes up). */
  readonly onBatch: () => void;
}

/** Resolves true when something accepts connections on `path`. */
function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * The Unix-socket intake: many senders at once, each a stream of frames. Reading never waits on
 * the upstream: a batch that does not fit the buffer is dropped and counted (buffer_full). An
 * unknown tag, an oversize frame or a truncated stream closes only that sender's connection; a
 * payload that fails to decode is counted and skipped.
 */
export class Intake {
  readonly #options: IntakeOptions;
  readonly #server: Server;
  readonly #connections = new Set<Socket>();
  readonly #cells;

  constructor(options: IntakeOptions) {
    this.#options = options;
    const m = options.metrics;
    const frameError = (reason: FrameErrorReason) => m.frame_errors.cell({ reason });
    const batchDrop = (reason: FrameErrorReason) => m.batches_dropped.cell({ reason });
    this.#cells = {
      connections: m.connections.cell(),
      active: m.active_connections.cell(),
      batchesReceived: m.batches_received.cell(),
      recordsReceived: m.records_received.cell(),
      batchesDroppedFull: m.batches_dropped.cell({ reason: 'buffer_full' }),
      recordsDroppedFull: m.records_dropped.cell({ reason: 'buffer_full' }),
      senderChannelFull: m.records_dropped.cell({ reason: 'sender_channel_full' }),
      senderBatchFull: m.records_dropped.cell({ reason: 'sender_batch_full' }),
      frameErrors: {
        unsupported_tag: frameError('unsupported_tag'),
        too_large: frameError('too_large'),
        truncated: frameError('truncated'),
        decode_error: frameError('decode_error'),
      },
      framesDropped: {
        unsupported_tag: batchDrop('unsupported_tag'),
        too_large: batchDrop('too_large'),
        truncated: batchDrop('truncated'),
        decode_error: batchDrop('decode_error'),
      },
    };
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /**
   * Binds the socket: a stale socket file (nothing listening) is removed first; a live one means
   * another instance runs, and starting is refused.
   */
  async start(): Promise<void> {
    const { path } = this.#options;
    await mkdir(dirname(path), { recursive: true });
    if (await listening(path)) throw new SocketInUseError(path);
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ path, backlog: 1024 }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, Number.parseInt(this.#options.mode, 8));
  }

  get openConnections(): number {
    return this.#connections.size;
  }

  /** Stops accepting and reading: open sender connections are ended; the socket file is removed. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#connections) socket.destroy();
    await closed;
    await unlink(this.#options.path).catch(() => {});
  }

  #accept(socket: Socket): void {
    const cells = this.#cells;
    cells.connections.add();
    cells.active.add(1);
    this.#connections.add(socket);
    const decoder = new FrameDecoder({
      maxFrameBytes: this.#options.maxFrameBytes,
      acceptedTags: [FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE],
      // #frame copies what it keeps (BatchBuffer.offerCopy).
      transientPayloads: true,
    });
    const onFrame = (frame: Frame) => this.#frame(frame);
    const refuse = (reason: 'unsupported_tag' | 'too_large' | 'truncated') => {
      cells.frameErrors[reason].add();
      cells.framesDropped[reason].add();
      this.#options.logger.warn('closing a sender connection after a bad frame', { reason });
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      const error = decoder.push(chunk, onFrame);
      if (error !== undefined) refuse(error);
    });
    socket.on('end', () => {
      const error = decoder.end();
      if (error !== undefined) refuse(error);
      socket.end();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      cells.active.add(-1);
      this.#connections.delete(socket);
    });
  }

  #frame(frame: Frame): void {
    let request: Uint8Array;
    let records: number;
    try {
      if (frame.tag === FRAME_TAG_BATCH) {
        request = frame.payload;
        records = countLogRecords(request);
      } else {
        const content = decodeEnvelope(frame.payload);
        if (content.kind === 'status') {
          this.#cells.senderChannelFull.add(content.droppedChannelFull);
          this.#cells.senderBatchFull.add(content.droppedBatchFull);
          return;
        }
        request = content.request;
        records = content.records;
      }
    } catch (error) {
      if (!(error instanceof PayloadDecodeError)) throw error;
      this.#cells.frameErrors.decode_error.add();
      this.#cells.framesDropped.decode_error.add();
      this.#options.logger.debug('skipping a frame whose payload does not decode', { error: error.message });
      return;
    }
    const cells = this.#cells;
    cells.batchesReceived.add();
    cells.recordsReceived.add(records);
    // A copy, so that the buffer does not pin the socket's 64 KiB read chunks; refused batches are not copied.
    if (this.#options.buffer.offerCopy(request, records)) {
      this.#options.onBatch();
    } else {
      cells.batchesDroppedFull.add();
      cells.recordsDroppedFull.add(records);
    }
  }
}
