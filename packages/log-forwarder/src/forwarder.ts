import type { Logger } from '@switchyard/telemetry';
import type { BatchBuffer, BufferedBatch } from './buffer.ts';
import type { LogForwarderMetrics } from './metrics.ts';
import type { ExportOutcome } from './otlp-logs-client.ts';

/** What the forwarder needs of the OTLP logs client. */
export interface LogsExporter {
  export(payload: Buffer, records: number, signal?: AbortSignal): Promise<ExportOutcome>;
}

export interface ForwarderOptions {
  readonly buffer: BatchBuffer;
  readonly exporter: LogsExporter;
  readonly metrics: LogForwarderMetrics;
  readonly logger: Logger;
  readonly maxExportBatches: number;
  readonly maxExportBytes: number;
}

/**
 * Drains the buffer in order, one export at a time, merging up to `maxExportBatches` intake batches
 * into one request by concatenating their bytes (serialized protobuf messages of one type
 * concatenate into their merge, so nothing is decoded or re-encoded). Every record that leaves the
 * buffer ends as forwarded, rejected (partial success), forward_failed or, at shutdown, shutdown.
 */
export class Forwarder {
  readonly #options: ForwarderOptions;
  readonly #cells;
  #inFlightRecords = 0;
  #running: Promise<void> | undefined;
  #abort = new AbortController();
  #stopping = false;
  #failureStreak = 0;
  #idleWaiters: Array<() => void> = [];
  #exportBuffer = Buffer.alloc(0);

  constructor(options: ForwarderOptions) {
    this.#options = options;
    const m = options.metrics;
    this.#cells = {
      batchesForwarded: m.batches_forwarded.cell(),
      recordsForwarded: m.records_forwarded.cell(),
      batchesFailed: m.batches_dropped.cell({ reason: 'forward_failed' }),
      recordsFailed: m.records_dropped.cell({ reason: 'forward_failed' }),
      recordsRejected: m.records_dropped.cell({ reason: 'rejected' }),
      batchesShutdown: m.batches_dropped.cell({ reason: 'shutdown' }),
      recordsShutdown: m.records_dropped.cell({ reason: 'shutdown' }),
      duration: m['forward.duration'].series(),
    };
    // Gauges are read from the buffer and this object when a reader collects.
    const buffer = options.buffer;
    const gauges = {
      batches: m.buffer_batches.cell(),
      bytes: m.buffer_bytes.cell(),
      records: m.buffer_records.cell(),
      inFlight: m.in_flight_records.cell(),
    };
    m.buffer_capacity_batches.cell().set(buffer.limits.maxBatches);
    m.buffer_capacity_bytes.cell().set(buffer.limits.maxBytes);
    m.buffer_batches.onCollect(() => gauges.batches.set(buffer.batches));
    m.buffer_bytes.onCollect(() => gauges.bytes.set(buffer.bytes));
    m.buffer_records.onCollect(() => gauges.records.set(buffer.records));
    m.in_flight_records.onCollect(() => gauges.inFlight.set(this.#inFlightRecords));
  }

  /** Records in the export being sent now. */
  get inFlightRecords(): number {
    return this.#inFlightRecords;
  }

  /** A batch arrived: start draining unless already at it. */
  wake(): void {
    if (this.#running !== undefined || this.#stopping) return;
    const running = this.#drain();
    this.#running = running;
    void running.then(() => {
      if (this.#running === running) this.#running = undefined;
      if (this.#options.buffer.batches > 0 && !this.#stopping) {
        this.wake();
        return;
      }
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    });
  }

  /** Resolves once the buffer is empty and no export is in flight. */
  idle(): Promise<void> {
    if (this.#running === undefined && this.#options.buffer.batches === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Shutdown, grace period over: cancels the export in flight and counts it and everything still
   * buffered as dropped (shutdown).
   */
  async abort(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    await this.#running;
    this.#countShutdown(this.#options.buffer.drain());
  }

  async #drain(): Promise<void> {
    const { buffer } = this.#options;
    while (buffer.batches > 0 && !this.#stopping) {
      const batches = buffer.take(this.#options.maxExportBatches, this.#options.maxExportBytes);
      await this.#export(batches);
    }
  }

  async #export(batches: BufferedBatch[]): Promise<void> {
    let records = 0;
    for (const batch of batches) records += batch.records;
    const payload = this.#joinPayloads(batches);
    this.#options.buffer.release(batches);
    this.#inFlightRecords = records;
    const started = performance.now();
    let outcome: ExportOutcome;
    try {
      outcome = await this.#options.exporter.export(payload, records, this.#abort.signal);
    } catch (error) {
      outcome = { kind: 'failed', code: 'UNKNOWN', attempts: 1, message: String(error) };
    }
    this.#cells.duration.record((performance.now() - started) / 1000);
    this.#inFlightRecords = 0;
    const cells = this.#cells;
    if (outcome.kind === 'accepted') {
      cells.batchesForwarded.add(batches.length);
      cells.recordsForwarded.add(outcome.accepted);
      cells.recordsRejected.add(outcome.rejected);
      if (outcome.rejected > 0) {
        this.#options.logger.warn('the Collector rejected part of an export', {
          rejected: outcome.rejected,
          message: outcome.errorMessage,
        });
      }
      if (this.#failureStreak > 0) {
        this.#options.logger.info('forwarding recovered', { failedExports: this.#failureStreak });
        this.#failureStreak = 0;
      }
      return;
    }
    if (this.#stopping) {
      this.#countShutdown(batches);
      return;
    }
    cells.batchesFailed.add(batches.length);
    cells.recordsFailed.add(records);
    if (this.#failureStreak === 0) {
      this.#options.logger.warn('forwarding failed; records dropped, logging again on recovery', {
        code: outcome.code,
        attempts: outcome.attempts,
        records,
        message: outcome.message,
      });
    }
    this.#failureStreak += 1;
  }

  /**
   * The batches' payloads, concatenated into the export buffer, which is reused: one export runs at
   * a time, and the exporter is done with the payload when it resolves (gRPC frames a copy of it).
   * A fresh allocation per export was, with the intake's copies, what kept V8 in full collections
   * (see PayloadSlabs in buffer.ts).
   */
  #joinPayloads(batches: readonly BufferedBatch[]): Buffer {
    let bytes = 0;
    for (const batch of batches) bytes += batch.payload.length;
    if (this.#exportBuffer.length < bytes) {
      const grown = Math.min(this.#options.maxExportBytes, 2 * this.#exportBuffer.length);
      this.#exportBuffer = Buffer.allocUnsafeSlow(Math.max(bytes, grown));
    }
    let offset = 0;
    for (const batch of batches) offset += batch.payload.copy(this.#exportBuffer, offset);
    return this.#exportBuffer.subarray(0, bytes);
  }

  #countShutdown(batches: readonly BufferedBatch[]): void {
    let records = 0;
    for (const batch of batches) records += batch.records;
    this.#cells.batchesShutdown.add(batches.length);
    this.#cells.recordsShutdown.add(records);
  }
}
