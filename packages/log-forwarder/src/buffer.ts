/** One intake batch as it waits: the serialized request and what accounting needs of it. */
export interface BufferedBatch {
  readonly payload: Buffer;
  readonly records: number;
}

export interface BatchBufferLimits {
  readonly maxBatches: number;
  readonly maxBytes: number;
}

/**
 * The bounded FIFO between intake and forwarding. `offer` never waits: a batch that does not fit
 * (by count or by bytes) is refused, and the caller counts it as dropped (buffer_full). Counts of
 * batches, bytes and records are kept as fields for the gauges.
 */
export class BatchBuffer {
  readonly limits: BatchBufferLimits;
  #queue: BufferedBatch[] = [];
  #head = 0;
  #bytes = 0;
  #records = 0;

  constructor(limits: BatchBufferLimits) {
    this.limits = limits;
  }

  get batches(): number {
    return this.#queue.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get records(): number {
    return this.#records;
  }

  /** Appends the batch if it fits; false (nothing changed) when the buffer is full. */
  offer(batch: BufferedBatch): boolean {
    if (this.batches >= this.limits.maxBatches || this.#bytes + batch.payload.length > this.limits.maxBytes) {
      return false;
    }
    this.#queue.push(batch);
    this.#bytes += batch.payload.length;
    this.#records += batch.records;
    return true;
  }

  /**
   * Takes batches from the front, in order, up to `maxBatches` and `maxBytes` (always at least one
   * when the buffer is not empty, even if it alone exceeds `maxBytes`).
   */
  take(maxBatches: number, maxBytes: number): BufferedBatch[] {
    const taken: BufferedBatch[] = [];
    let bytes = 0;
    while (this.#head < this.#queue.length && taken.length < maxBatches) {
      const next = this.#queue[this.#head] as BufferedBatch;
      if (taken.length > 0 && bytes + next.payload.length > maxBytes) break;
      taken.push(next);
      bytes += next.payload.length;
      this.#head += 1;
      this.#bytes -= next.payload.length;
      this.#records -= next.records;
    }
    // Compact once the consumed prefix dominates: amortised O(1) per batch, no shift() per take.
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return taken;
  }

  /** Empties the buffer, returning what it held (shutdown accounting). */
  drain(): BufferedBatch[] {
    return this.take(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }
}
