/** One intake batch as it waits: the serialized request and what accounting needs of it. */
export interface BufferedBatch {
  readonly payload: Buffer;
  readonly records: number;
}

export interface BatchBufferLimits {
  readonly maxBatches: number;
  readonly maxBytes: number;
}

const SLAB_BYTES = 1024 * 1024;
/** Larger payloads get an allocation of their own, so that at most a quarter of a slab goes unused at its end. */
const MAX_SLAB_PAYLOAD_BYTES = SLAB_BYTES / 4;
/** Emptied slabs kept for reuse, at most: what one export of the default 4 MiB frees. */
const MAX_FREE_SLABS = 4;

interface Slab {
  readonly bytes: Buffer;
  /** Bytes handed out from the start of the slab. */
  used: number;
  /** Payloads handed out and not released yet. */
  live: number;
}

/**
 * Copies of payloads, cut from 1 MiB slabs that are reused once every payload cut from them has
 * been released. Every Buffer allocation is external memory to V8, whose growth triggers full
 * collections whatever the heap size: with an allocation per intake batch and one per export, the
 * forwarder ran ~16 full collections a second at 500k records/s, a third of its main thread; with
 * the slabs and the forwarder's reused export buffer, it forwards ~1.8x the records per collection
 * (bench/log-forwarder.bench.ts). A payload never released (a shutdown drain) only keeps its slab
 * from being reused.
 */
class PayloadSlabs {
  readonly #slabs = new Map<ArrayBufferLike, Slab>();
  readonly #free: Slab[] = [];
  #current: Slab | undefined;

  copy(source: Uint8Array): Buffer {
    const length = source.length;
    if (length > MAX_SLAB_PAYLOAD_BYTES) return Buffer.from(source);
    let slab = this.#current;
    // A current slab whose payloads are all released starts over, and stays warm in the cache.
    if (slab !== undefined && slab.live === 0) slab.used = 0;
    if (slab === undefined || slab.used + length > SLAB_BYTES) slab = this.#nextSlab();
    const start = slab.used;
    slab.bytes.set(source, start);
    slab.used = start + length;
    slab.live += 1;
    return slab.bytes.subarray(start, start + length);
  }

  /** Gives a payload's space back; a payload from elsewhere is ignored. Call once per payload. */
  release(payload: Buffer): void {
    const slab = this.#slabs.get(payload.buffer);
    if (slab === undefined) return;
    slab.live -= 1;
    if (slab.live === 0 && slab !== this.#current) this.#retire(slab);
  }

  #nextSlab(): Slab {
    const slab = this.#free.pop() ?? this.#allocate();
    slab.used = 0;
    this.#current = slab;
    return slab;
  }

  #allocate(): Slab {
    const slab: Slab = { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), used: 0, live: 0 };
    this.#slabs.set(slab.bytes.buffer, slab);
    return slab;
  }

  #retire(slab: Slab): void {
    if (this.#free.length < MAX_FREE_SLABS) this.#free.push(slab);
    else this.#slabs.delete(slab.bytes.buffer);
  }
}

/**
 * The bounded FIFO between intake and forwarding. `offer` never waits: a batch that does not fit
 * (by count or by bytes) is refused, and the caller counts it as dropped (buffer_full). Counts of
 * batches, bytes and records are kept as fields for the gauges. `offerCopy` keeps a copy of the
 * payload in reused memory, which `release` gives back once the taker is done with the batch.
 */
export class BatchBuffer {
  readonly limits: BatchBufferLimits;
  #queue: BufferedBatch[] = [];
  #head = 0;
  #bytes = 0;
  #records = 0;
  readonly #slabs = new PayloadSlabs();

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
    if (!this.#fits(batch.payload.length)) return false;
    this.#push(batch);
    return true;
  }

  /**
   * Appends a copy of `payload` if it fits, so that the caller may reuse the memory it points into
   * (a socket's read chunk); false (nothing copied) when the buffer is full.
   */
  offerCopy(payload: Uint8Array, records: number): boolean {
    if (!this.#fits(payload.length)) return false;
    this.#push({ payload: this.#slabs.copy(payload), records });
    return true;
  }

  /** Gives back the memory of taken batches once their payloads are no longer needed; once per batch. */
  release(batches: readonly BufferedBatch[]): void {
    for (const batch of batches) this.#slabs.release(batch.payload);
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

  #fits(bytes: number): boolean {
    return this.batches < this.limits.maxBatches && this.#bytes + bytes <= this.limits.maxBytes;
  }

  #push(batch: BufferedBatch): void {
    this.#queue.push(batch);
    this.#bytes += batch.payload.length;
    this.#records += batch.records;
  }

  /** Empties the buffer, returning what it held (shutdown accounting). */
  drain(): BufferedBatch[] {
    return this.take(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }
}
