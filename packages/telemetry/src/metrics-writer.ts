import type { MessagePort } from 'node:worker_threads';
import { type SlotAddress, SlotStore } from './slot-store.ts';

/**
 * The recording side of one thread: its slots (slot-store.ts), the series it has created, and the
 * hooks that bring cells up to date before a snapshot. A data thread has one writer; the telemetry
 * thread has its own for the pipeline's instruments. Collection sums the slots of a series across
 * every writer that has it, so several data threads can record the same catalog.
 *
 * A snapshot is taken between two events of the writer's thread: in a message handler (`serve`),
 * or inline on the telemetry thread. The hooks run first, then every used live slot is copied at
 * once, so each snapshot holds every accounting identity of this thread exactly, as if the thread
 * had stopped.
 *
 * New series are announced apart from snapshots, in the macrotask after they were created (a
 * config load or reload creates thousands at once), as one string and one Int32Array: structured
 * cloning 100,000 announcement objects cost the data thread 120 ms in one go; this costs it a join.
 */

/**
 * Runs on the writer's thread just before a snapshot: the place to bring cells up to date from
 * state the data path keeps anyway (a socket's byte count, a queue's length), so that the data
 * path itself does nothing per event.
 */
export type CollectHook = () => void;

/** Separates a series' instrument name and attribute values (none of them can hold it). */
export const FIELD_SEPARATOR = '\u001f';
/** Separates the series of a batch. */
export const RECORD_SEPARATOR = '\u001e';

/**
 * Series new since the previous batch: `records[i]` is `instrument` then the attribute values (in
 * declaration order), joined by FIELD_SEPARATOR; records joined by RECORD_SEPARATOR. `addresses`
 * holds chunk and first slot of each, in the same order.
 */
export interface SeriesBatch {
  /** Chunks created since the previous batch, in chunk order. */
  readonly chunks: readonly SharedArrayBuffer[];
  readonly records: string;
  readonly addresses: Int32Array;
}

export interface SnapshotReport {
  /** Counts the writer's snapshots from 1; published with `Atomics.store` after the copy. */
  readonly sequence: number;
  /** Messages of collect hooks that threw (the snapshot is taken anyway). */
  readonly hookErrors: readonly string[];
}

/** Messages between a writer thread and the telemetry thread. */
export type WriterRequest = { readonly type: 'collect'; readonly id: number };
export type WriterMessage =
  | { readonly type: 'hello'; readonly published: SharedArrayBuffer }
  | { readonly type: 'series'; readonly batch: SeriesBatch }
  | { readonly type: 'snapshot'; readonly id: number; readonly report: SnapshotReport };

export class MetricsWriter {
  readonly store = new SlotStore();
  /** Element 0 holds the sequence of the latest complete snapshot. */
  readonly published = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  #pendingRecords: string[] = [];
  #pendingAddresses: number[] = [];
  #chunksAnnounced = 0;
  #sequence = 0;
  readonly #hooks: CollectHook[] = [];
  /** Where announcements go as soon as they are due; unset until `serve`. */
  #port: MessagePort | undefined;
  #flushScheduled = false;

  /** Reserves the slots of a new series of `instrument`; the next batch announces it. */
  addSeries(instrument: string, values: readonly string[], width: number): SlotAddress {
    const address = this.store.allocate(width);
    this.#pendingRecords.push(
      values.length === 0 ? instrument : `${instrument}${FIELD_SEPARATOR}${values.join(FIELD_SEPARATOR)}`,
    );
    this.#pendingAddresses.push(address.chunk, address.slot);
    this.#scheduleFlush();
    return address;
  }

  /** The live slots of chunk `chunk`, where its cells write. */
  liveSlots(chunk: number): Float64Array {
    return (this.store.chunks[chunk] as { live: Float64Array }).live;
  }

  onCollect(hook: CollectHook): void {
    this.#hooks.push(hook);
  }

  /** The series created since the previous batch, or undefined when there are none. */
  takeSeries(): SeriesBatch | undefined {
    if (this.#pendingRecords.length === 0) return undefined;
    const batch: SeriesBatch = {
      chunks: this.store.chunks.slice(this.#chunksAnnounced).map((chunk) => chunk.buffer),
      records: this.#pendingRecords.join(RECORD_SEPARATOR),
      addresses: Int32Array.from(this.#pendingAddresses),
    };
    this.#chunksAnnounced = this.store.chunks.length;
    this.#pendingRecords = [];
    this.#pendingAddresses = [];
    return batch;
  }

  /**
   * Runs the collect hooks, copies every live slot to its snapshot and publishes the snapshot's
   * sequence. Synchronous: nothing of this thread runs between the first hook and the publication.
   * Take the series batch first: a snapshot can only be read for series already announced.
   */
  snapshot(): SnapshotReport {
    const hookErrors: string[] = [];
    for (const hook of this.#hooks) {
      try {
        hook();
      } catch (error) {
        hookErrors.push(error instanceof Error ? error.message : String(error));
      }
    }
    this.store.takeSnapshot();
    this.#sequence += 1;
    Atomics.store(this.published, 0, this.#sequence);
    return { sequence: this.#sequence, hookErrors };
  }

  /**
   * Answers the telemetry thread's collect requests on `port`, each between two events of this
   * thread, and announces new series there. The port does not keep the thread alive.
   */
  serve(port: MessagePort): void {
    this.#port = port;
    port.on('message', (request: WriterRequest) => {
      if (request.type !== 'collect') return;
      // A hook can create series (an `other` cell on first use): announce after the hooks ran.
      const report = this.snapshot();
      this.#flush();
      port.postMessage({ type: 'snapshot', id: request.id, report } satisfies WriterMessage);
    });
    port.postMessage({ type: 'hello', published: this.published.buffer } satisfies WriterMessage);
    this.#flush();
    port.unref();
  }

  #scheduleFlush(): void {
    if (this.#port === undefined || this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush()).unref();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#port === undefined ? undefined : this.takeSeries();
    if (batch === undefined) return;
    this.#port?.postMessage({ type: 'series', batch } satisfies WriterMessage, [
      batch.addresses.buffer as ArrayBuffer,
    ]);
  }
}
