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
 */

/**
 * Runs on the writer's thread just before a snapshot: the place to bring cells up to date from
 * state the data path keeps anyway (a socket's byte count, a queue's length), so that the data
 * path itself does nothing per event.
 */
export type CollectHook = () => void;

/** A series the reader has not seen yet: which instrument, which label values, where its slots are. */
export interface SeriesAnnouncement extends SlotAddress {
  /** OpenTelemetry name of the instrument (unique in a process, rule N12). */
  readonly instrument: string;
  /** Attribute values in the order of the instrument's declared attributes. */
  readonly values: readonly string[];
}

/** What a writer reports with each snapshot: everything new since its previous report. */
export interface SnapshotReport {
  /** Counts the writer's snapshots from 1; published with `Atomics.store` after the copy. */
  readonly sequence: number;
  readonly series: readonly SeriesAnnouncement[];
  /** Chunks created since the previous report, in chunk order. */
  readonly chunks: readonly SharedArrayBuffer[];
  /** Messages of collect hooks that threw (the snapshot is taken anyway). */
  readonly hookErrors: readonly string[];
}

/** Messages between a writer thread and the telemetry thread. */
export type WriterRequest = { readonly type: 'collect'; readonly id: number };
export type WriterMessage =
  | { readonly type: 'hello'; readonly published: SharedArrayBuffer }
  | { readonly type: 'snapshot'; readonly id: number; readonly report: SnapshotReport };

export class MetricsWriter {
  readonly store = new SlotStore();
  /** Element 0 holds the sequence of the latest complete snapshot. */
  readonly published = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  #pendingSeries: SeriesAnnouncement[] = [];
  #chunksReported = 0;
  #sequence = 0;
  readonly #hooks: CollectHook[] = [];

  /** Reserves the slots of a new series of `instrument`; the next report announces it. */
  addSeries(instrument: string, values: readonly string[], width: number): SlotAddress {
    const address = this.store.allocate(width);
    this.#pendingSeries.push({ instrument, values, chunk: address.chunk, slot: address.slot });
    return address;
  }

  /** The live slots of chunk `chunk`, where its cells write. */
  liveSlots(chunk: number): Float64Array {
    return (this.store.chunks[chunk] as { live: Float64Array }).live;
  }

  onCollect(hook: CollectHook): void {
    this.#hooks.push(hook);
  }

  /**
   * Runs the collect hooks, copies every live slot to its snapshot, publishes the snapshot's
   * sequence and returns what is new since the previous report. Synchronous: nothing of this thread
   * runs between the first hook and the publication.
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
    const series = this.#pendingSeries;
    this.#pendingSeries = [];
    const chunks = this.store.chunks.slice(this.#chunksReported).map((chunk) => chunk.buffer);
    this.#chunksReported = this.store.chunks.length;
    return { sequence: this.#sequence, series, chunks, hookErrors };
  }

  /**
   * Answers the telemetry thread's collect requests on `port`, each between two events of this
   * thread. The port does not keep the thread alive.
   */
  serve(port: MessagePort): void {
    port.on('message', (request: WriterRequest) => {
      if (request.type !== 'collect') return;
      const message: WriterMessage = { type: 'snapshot', id: request.id, report: this.snapshot() };
      port.postMessage(message);
    });
    port.postMessage({ type: 'hello', published: this.published.buffer } satisfies WriterMessage);
    port.unref();
  }
}
