/**
 * The memory behind every metric cell of one writer thread: chunks of `SharedArrayBuffer`, each
 * holding SLOTS_PER_CHUNK live slots followed by as many snapshot slots.
 *
 * The writer thread alone writes both halves: the data path stores into live slots (a plain
 * typed-array store, no atomics: one writer per slot), and a collection copies the used live slots
 * over the snapshot half in one `copyWithin` between two events. The telemetry thread only ever
 * reads snapshot halves, and only after the writer has published the snapshot's number with
 * `Atomics.store` and the reader has seen it with `Atomics.load` (which orders the copy before the
 * reads, metrics-writer.ts), so a reader never sees a slot half-updated or an event half-counted.
 *
 * Chunks are fixed in size and never move, so a cell keeps its typed array and index for life;
 * a growable SharedArrayBuffer would avoid the chunk list, but V8 runs typed-array stores on it
 * some 20x slower (bench/hot-path.bench.ts).
 */

/** Slots per chunk: 128 KiB live + 128 KiB snapshot; a 100,000-series worker needs a handful. */
export const SLOTS_PER_CHUNK = 16_384;

/** One chunk: `live` is what cells write, `snapshot` what the telemetry thread reads. */
export class SlotChunk {
  readonly buffer: SharedArrayBuffer;
  readonly live: Float64Array;
  readonly snapshot: Float64Array;
  readonly #all: Float64Array;
  /** Slots handed out so far; only these are copied. */
  used = 0;

  constructor(buffer = new SharedArrayBuffer(2 * SLOTS_PER_CHUNK * Float64Array.BYTES_PER_ELEMENT)) {
    this.buffer = buffer;
    this.#all = new Float64Array(buffer);
    this.live = this.#all.subarray(0, SLOTS_PER_CHUNK);
    this.snapshot = this.#all.subarray(SLOTS_PER_CHUNK);
  }

  /** Copies the used live slots over the snapshot half (a memmove, O(used)). */
  takeSnapshot(): void {
    this.#all.copyWithin(SLOTS_PER_CHUNK, 0, this.used);
  }
}

/** Where a series' slots are: chunk number in its writer and the first slot's index. */
export interface SlotAddress {
  readonly chunk: number;
  readonly slot: number;
}

/** The chunks of one writer, handed out in contiguous runs of slots. */
export class SlotStore {
  readonly chunks: SlotChunk[] = [];

  /**
   * Reserves `width` contiguous slots, initialised to `initial`. A run never spans two chunks: a
   * run that does not fit in the current chunk starts a new one (the tail of the old one stays
   * unused).
   */
  allocate(width: number, initial = 0): SlotAddress {
    if (!Number.isInteger(width) || width < 1 || width > SLOTS_PER_CHUNK) {
      throw new RangeError(`a series takes 1 to ${SLOTS_PER_CHUNK} slots, not ${width}`);
    }
    let chunk = this.chunks.at(-1);
    if (chunk === undefined || chunk.used + width > SLOTS_PER_CHUNK) {
      chunk = new SlotChunk();
      this.chunks.push(chunk);
    }
    const slot = chunk.used;
    chunk.used += width;
    if (initial !== 0) chunk.live.fill(initial, slot, slot + width);
    return { chunk: this.chunks.length - 1, slot };
  }

  takeSnapshot(): void {
    for (const chunk of this.chunks) chunk.takeSnapshot();
  }
}
