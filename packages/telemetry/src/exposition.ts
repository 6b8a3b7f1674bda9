import {
  type ExpositionFormat,
  OPENMETRICS_EOF,
  targetInfo as targetInfoFamily,
} from './exposition-format.ts';
import { histogramOffsets } from './series-layout.ts';
import { isAscii, type SeriesRegistry, type ValueTexts } from './series-registry.ts';

/**
 * Writes the catalogs' series as Prometheus text 0.0.4 or OpenMetrics 1.0, from merged values.
 *
 * Every family header and every series' line prefix (name and escaped, sorted labels) is built
 * once, when first written (series-registry.ts); a scrape only formats numbers and concatenates.
 * The text comes out in chunks of about `chunkChars` characters, so that the admin server can
 * stream a 100,000-series response instead of building it whole.
 *
 * Histogram series appear with their first observation (as the SDK's histograms did); every
 * counter, up-down counter and gauge series is written from its creation on, zeros included.
 */

export interface ExpositionInput {
  readonly registry: SeriesRegistry;
  /** From `registry.merge()`. */
  readonly values: Float64Array;
  readonly format: ExpositionFormat;
  /** Label pairs of `target_info` (the resource), already escaped; none when empty. */
  readonly targetInfo?: string | undefined;
  /** Families from elsewhere (the SDK's own instruments), already in `format`, written last. */
  readonly extraFamilies?: string | undefined;
  /** Bytes per chunk, about. */
  readonly chunkBytes?: number;
  /**
   * The consumer is done with each chunk before it asks for the next (it compresses it at once):
   * the same Buffer is refilled instead of a new one per chunk, which at 100,000 series saved the
   * telemetry thread half its GC time.
   */
  readonly reuseChunks?: boolean;
}

export interface ExpositionCounts {
  /** Sample lines written (each histogram bucket, sum and count is one). */
  samples: number;
}

const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** Room past a full chunk for the line that crosses the mark, so that a chunk rarely grows. */
const CHUNK_SLACK_BYTES = 16 * 1024;

/**
 * Writes the pieces of one chunk straight into a Buffer: no rope for an encoder to walk, no joined
 * string, and ASCII (nearly all of it) copied as latin1, which for ASCII is the same bytes as UTF-8
 * at a fraction of the cost. The telemetry thread's garbage per scrape is what drives V8's parallel
 * GC helpers, which share the cores with the data thread: it is kept to the chunk Buffers.
 */
class ChunkBuilder {
  readonly #capacity: number;
  readonly #reuse: boolean;
  #buffer: Buffer;
  #position = 0;

  constructor(chunkBytes: number, reuse: boolean) {
    this.#capacity = chunkBytes + CHUNK_SLACK_BYTES;
    this.#reuse = reuse;
    this.#buffer = Buffer.allocUnsafe(this.#capacity);
  }

  get length(): number {
    return this.#position;
  }

  add(text: string, ascii: boolean): void {
    const bytes = ascii ? text.length : Buffer.byteLength(text, 'utf8');
    this.#reserve(bytes);
    this.#position += this.#buffer.write(text, this.#position, ascii ? 'latin1' : 'utf8');
  }

  /** A value (ASCII) and the newline that ends its line. */
  value(text: string): void {
    this.#reserve(text.length + 1);
    this.#position += this.#buffer.write(text, this.#position, 'latin1');
    this.#buffer[this.#position++] = 0x0a;
  }

  take(): Buffer {
    const bytes = this.#buffer.subarray(0, this.#position);
    // A socket keeps the Buffer it is given until written: unless the consumer is done with each
    // chunk at once, the next chunk takes a new one.
    if (!this.#reuse) this.#buffer = Buffer.allocUnsafe(this.#capacity);
    this.#position = 0;
    return bytes;
  }

  #reserve(bytes: number): void {
    if (this.#position + bytes <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.#buffer.length, this.#position + bytes));
    this.#buffer.copy(grown, 0, 0, this.#position);
    this.#buffer = grown;
  }
}

/** Yields the exposition in chunks; `counts.samples` is complete once the generator is done. */
export function* expositionChunks(input: ExpositionInput, counts: ExpositionCounts): Generator<Buffer> {
  const { registry, values, format } = input;
  const chunkBytes = input.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const chunk = new ChunkBuilder(chunkBytes, input.reuseChunks === true);
  const texts = registry.valueTexts;
  let samples = 0;
  if (input.targetInfo !== undefined) {
    chunk.add(targetInfoFamily(input.targetInfo, format), isAscii(input.targetInfo));
    samples += 1;
  }
  for (const registered of registry.instruments) {
    const { kind, buckets } = registered.instrument;
    const countOffset = kind === 'histogram' ? histogramOffsets(buckets ?? []).count : -1;
    let headerWritten = false;
    for (const series of registered.series) {
      const offset = series.offset;
      // Announced after this collection merged: no value yet.
      if (offset >= values.length) continue;
      if (countOffset >= 0 && values[offset + countOffset] === 0) continue;
      if (!headerWritten) {
        chunk.add(registered.header(format), registered.headerAscii);
        headerWritten = true;
      }
      const prefixes = registered.prefixes(series, format);
      if (countOffset < 0) {
        chunk.add(prefixes[0] as string, series.ascii);
        chunk.value(texts.text(offset, values[offset] as number));
        samples += 1;
      } else {
        histogramLines(chunk, texts, prefixes, series.ascii, values, offset, countOffset);
        samples += prefixes.length;
      }
      if (chunk.length >= chunkBytes) yield chunk.take();
    }
  }
  if (input.extraFamilies !== undefined) chunk.add(input.extraFamilies, isAscii(input.extraFamilies));
  if (format === 'openmetrics') chunk.add(OPENMETRICS_EOF, true);
  counts.samples = samples;
  yield chunk.take();
}

/**
 * Buckets (cumulative), then sum and count. The slots hold B + 1 bucket counts, sum, count (at
 * `countOffset` = B + 2); `prefixes` has B finite buckets, `+Inf`, `_sum` and `_count`.
 */
function histogramLines(
  chunk: ChunkBuilder,
  texts: ValueTexts,
  prefixes: readonly string[],
  ascii: boolean,
  values: Float64Array,
  offset: number,
  countOffset: number,
): void {
  let cumulative = 0;
  const finite = countOffset - 2;
  for (let i = 0; i < finite; i++) {
    cumulative += values[offset + i] as number;
    chunk.add(prefixes[i] as string, ascii);
    chunk.value(texts.text(offset + i, cumulative));
  }
  const count = values[offset + countOffset] as number;
  chunk.add(prefixes[finite] as string, ascii);
  chunk.value(texts.text(offset + finite, count));
  chunk.add(prefixes[finite + 1] as string, ascii);
  chunk.value(texts.text(offset + finite + 1, values[offset + finite + 1] as number));
  chunk.add(prefixes[finite + 2] as string, ascii);
  chunk.value(texts.text(offset + countOffset, count));
}

/** The whole exposition as one string (tests, `Telemetry.scrape()`). */
export function expositionText(input: ExpositionInput, counts: ExpositionCounts = { samples: 0 }): string {
  return Buffer.concat([...expositionChunks(input, counts)]).toString('utf8');
}
