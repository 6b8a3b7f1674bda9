import type { Attributes } from '@opentelemetry/api';
import type { ResolvedInstrument } from './catalog.ts';
import {
  braces,
  type ExpositionFormat,
  familyHeader,
  formatLe,
  formatSampleValue,
  labelPairs,
} from './exposition-format.ts';
import {
  FIELD_SEPARATOR,
  type MetricsWriter,
  RECORD_SEPARATOR,
  type SeriesBatch,
  type SnapshotReport,
} from './metrics-writer.ts';
import { histogramOffsets, seriesWidth } from './series-layout.ts';
import { SLOTS_PER_CHUNK } from './slot-store.ts';

/**
 * The telemetry thread's view of every series of every writer: which instrument and label values,
 * where each writer keeps its slots, and the text that names it on /metrics, built once.
 *
 * `merge()` reads every writer's latest snapshot into one array of values, summed across writers
 * (a histogram's min and max are the least and greatest). The exposition and the OTLP producer
 * then work from that array, so a slow HTTP client or a push never holds a snapshot open.
 *
 * A writer hands out slots in order and the registry gives series offsets in the order they are
 * announced, so a writer's series mostly sit in the merged array as they sit in its chunks: the
 * merge copies such runs whole (a memcpy per run, a few per chunk) and only adds slot by slot for
 * the series that a second writer also records.
 */

/** One writer thread as the registry reads it: the snapshot halves of its chunks. */
export class WriterView {
  readonly #published: Int32Array;
  readonly snapshots: Float64Array[] = [];

  constructor(published: SharedArrayBuffer) {
    this.#published = new Int32Array(published);
  }

  /** Takes the chunks a series batch announces. */
  addChunks(buffers: readonly SharedArrayBuffer[]): void {
    for (const buffer of buffers) {
      this.snapshots.push(new Float64Array(buffer, SLOTS_PER_CHUNK * 8, SLOTS_PER_CHUNK));
    }
  }

  /** Checks that snapshot `sequence` is the one published, before its slots are read. */
  accept(sequence: number): void {
    // Atomics.load pairs with the writer's Atomics.store: every slot copied before the store is
    // visible to the plain reads that follow.
    const published = Atomics.load(this.#published, 0);
    if (published !== sequence) throw new Error(`snapshot ${sequence} read while ${published} is published`);
  }
}

export function isAscii(text: string): boolean {
  return !/[\u0080-\uffff]/.test(text);
}

/**
 * The same text as one sequential string. Concatenation gives V8 ropes, and a rope costs a walk
 * every time it is copied; built once and written at every scrape, a prefix is worth flattening.
 */
function flat(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

interface SlotSource {
  readonly slots: Float64Array;
  readonly index: number;
}

/** One series across writers, with its place in the merged values. */
export class RegisteredSeries {
  readonly values: readonly string[];
  readonly offset: number;
  /** Whether every label value is ASCII (then its lines can be written as latin1, byte for char). */
  readonly ascii: boolean;
  /** Sample-line prefixes per format: one for a scalar, buckets + `_sum` + `_count` for a histogram. */
  readonly prefixes: { text?: readonly string[]; openmetrics?: readonly string[] } = {};
  #attributes: Attributes | undefined;
  readonly #instrument: ResolvedInstrument;

  constructor(instrument: ResolvedInstrument, values: readonly string[], offset: number) {
    this.#instrument = instrument;
    this.values = values;
    this.offset = offset;
    this.ascii = values.every(isAscii);
  }

  /** The OpenTelemetry attributes, built on first use (OTLP push) and frozen. */
  get attributes(): Readonly<Attributes> {
    if (this.#attributes === undefined) {
      const attributes: Attributes = {};
      this.#instrument.attributes.forEach((attribute, i) => {
        attributes[attribute.key] = this.values[i];
      });
      this.#attributes = Object.freeze(attributes);
    }
    return this.#attributes;
  }
}

/** One instrument with its series, and the text that names them on /metrics. */
export class RegisteredInstrument {
  readonly instrument: ResolvedInstrument;
  readonly width: number;
  readonly series: RegisteredSeries[] = [];
  readonly byValues = new Map<string, RegisteredSeries>();
  /** Indexes of the attributes in label-name order, as the exposition writes them. */
  readonly #labelOrder: readonly number[];
  readonly #headers: { text?: string; openmetrics?: string } = {};
  /** Whether the family lines (HELP may hold any text) are ASCII. */
  readonly headerAscii: boolean;

  constructor(instrument: ResolvedInstrument) {
    this.instrument = instrument;
    this.width = seriesWidth(instrument.kind, instrument.buckets);
    this.headerAscii = isAscii(instrument.description);
    this.#labelOrder = instrument.attributes
      .map((attribute, index) => ({ name: attribute.labelName, index }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map(({ index }) => index);
  }

  header(format: ExpositionFormat): string {
    const cached = this.#headers[format];
    if (cached !== undefined) return cached;
    const { prometheusName, prometheusType, description, unit } = this.instrument;
    const header = flat(familyHeader(prometheusName, prometheusType, description, unit, format));
    this.#headers[format] = header;
    return header;
  }

  /** The sample-line prefixes of `series` in `format` (built once per series and format). */
  prefixes(series: RegisteredSeries, format: ExpositionFormat): readonly string[] {
    const cached = series.prefixes[format];
    if (cached !== undefined) return cached;
    const { attributes, prometheusName, buckets } = this.instrument;
    const pairs = labelPairs(
      this.#labelOrder.map((i) => [
        (attributes[i] as { labelName: string }).labelName,
        series.values[i] as string,
      ]),
    );
    let built: string[];
    if (this.instrument.kind !== 'histogram') {
      built = [`${prometheusName}${braces(pairs)} `];
    } else {
      built = (buckets ?? []).map(
        (boundary) => `${prometheusName}_bucket${braces(pairs, `le="${formatLe(boundary, format)}"`)} `,
      );
      built.push(
        `${prometheusName}_bucket${braces(pairs, 'le="+Inf"')} `,
        `${prometheusName}_sum${braces(pairs)} `,
        `${prometheusName}_count${braces(pairs)} `,
      );
    }
    const flattened = built.map(flat);
    series.prefixes[format] = flattened;
    return flattened;
  }
}

/**
 * The text of each line's last value, by its index in the merged values: most series of a big
 * worker have not moved since the previous scrape, and a number's text is the largest garbage a
 * scrape would otherwise make on the telemetry thread.
 */
export class ValueTexts {
  readonly #values: number[] = [];
  readonly #texts: string[] = [];

  text(index: number, value: number): string {
    if (this.#values[index] === value) return this.#texts[index] as string;
    const text = formatSampleValue(value);
    while (this.#values.length <= index) {
      this.#values.push(Number.NaN);
      this.#texts.push('');
    }
    this.#values[index] = value;
    this.#texts[index] = text;
    return text;
  }
}

/** Slots copied as one block: `length` slots of `slots` from `from` to the merged array at `to`. */
interface CopyRun {
  readonly slots: Float64Array;
  readonly from: number;
  readonly to: number;
  length: number;
}

/** A series a further writer records too: its slots there are added to the merged values. */
interface ExtraSource extends SlotSource {
  readonly offset: number;
  readonly width: number;
}

/** Every series of every writer, for one process's catalogs. */
export class SeriesRegistry {
  readonly #instruments = new Map<string, RegisteredInstrument>();
  readonly valueTexts = new ValueTexts();
  /** Sorted by Prometheus name: the order families appear on /metrics. */
  readonly instruments: readonly RegisteredInstrument[];
  readonly #runs: CopyRun[] = [];
  readonly #extra: ExtraSource[] = [];
  #seriesCount = 0;
  #size = 0;

  constructor(instruments: readonly ResolvedInstrument[]) {
    for (const instrument of instruments) {
      this.#instruments.set(instrument.otelName, new RegisteredInstrument(instrument));
    }
    this.instruments = [...this.#instruments.values()].sort((a, b) =>
      a.instrument.prometheusName < b.instrument.prometheusName ? -1 : 1,
    );
  }

  /** Series known, across writers. */
  get seriesCount(): number {
    return this.#seriesCount;
  }

  /**
   * Learns the series a writer announces (a series another writer already has gains one more
   * source). Apply batches in the order the writer sent them, before its next snapshot is read.
   */
  applySeries(writer: WriterView, batch: SeriesBatch): void {
    writer.addChunks(batch.chunks);
    const records = batch.records.split(RECORD_SEPARATOR);
    records.forEach((record, i) => {
      const [instrument = '', ...values] = record.split(FIELD_SEPARATOR);
      const registered = this.#instruments.get(instrument);
      const slots = writer.snapshots[batch.addresses[2 * i] as number];
      if (registered === undefined || slots === undefined) {
        throw new Error(`a writer announced a series of unknown instrument ${instrument}`);
      }
      this.#add(registered, values, slots, batch.addresses[2 * i + 1] as number);
    });
  }

  /**
   * Snapshots a writer of this thread and learns its new series: what a remote writer's messages
   * do, in one call. Merge right after, before anything else can record.
   */
  snapshotLocal(writer: MetricsWriter, view: WriterView): SnapshotReport {
    // A collect hook may create a series: take the batch after the snapshot.
    const report = writer.snapshot();
    const batch = writer.takeSeries();
    if (batch !== undefined) this.applySeries(view, batch);
    view.accept(report.sequence);
    return report;
  }

  #add(registered: RegisteredInstrument, values: string[], slots: Float64Array, slot: number): void {
    const key = values.join(FIELD_SEPARATOR);
    const width = registered.width;
    const existing = registered.byValues.get(key);
    if (existing !== undefined) {
      this.#extra.push({ slots, index: slot, offset: existing.offset, width });
      return;
    }
    const series = new RegisteredSeries(registered.instrument, Object.freeze(values), this.#size);
    registered.byValues.set(key, series);
    registered.series.push(series);
    this.#seriesCount += 1;
    this.#addToRuns(slots, slot, this.#size, width);
    this.#size += width;
  }

  #addToRuns(slots: Float64Array, from: number, to: number, length: number): void {
    const last = this.#runs.at(-1);
    if (
      last !== undefined &&
      last.slots === slots &&
      last.from + last.length === from &&
      last.to + last.length === to
    ) {
      last.length += length;
      return;
    }
    this.#runs.push({ slots, from, to, length });
  }

  /**
   * Sums every series' slots across writers into a new array, indexed by `series.offset`. Call it
   * right after every writer's latest snapshot was accepted. Series announced later have offsets
   * past the array's end: readers of this array skip them.
   */
  merge(): Float64Array {
    const merged = new Float64Array(this.#size);
    for (const run of this.#runs) merged.set(run.slots.subarray(run.from, run.from + run.length), run.to);
    for (const extra of this.#extra) {
      if (extra.width === 1)
        merged[extra.offset] = (merged[extra.offset] as number) + (extra.slots[extra.index] as number);
      else addHistogram(merged, extra);
    }
    return merged;
  }
}

/** Adds a further writer's histogram slots: counts and sum add up, min and max are compared. */
function addHistogram(merged: Float64Array, { slots, index, offset, width }: ExtraSource): void {
  const { min, max } = histogramOffsets(new Array(width - 5));
  for (let i = 0; i < width; i++) {
    const value = slots[index + i] as number;
    const at = offset + i;
    if (i === min) merged[at] = Math.min(merged[at] as number, value);
    else if (i === max) merged[at] = Math.max(merged[at] as number, value);
    else merged[at] = (merged[at] as number) + value;
  }
}
