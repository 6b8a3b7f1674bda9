import type { Attributes } from '@opentelemetry/api';
import type { ResolvedInstrument } from './catalog.ts';
import { braces, type ExpositionFormat, familyHeader, formatLe, labelPairs } from './exposition-format.ts';
import type { SnapshotReport } from './metrics-writer.ts';
import { histogramOffsets, seriesWidth } from './series-layout.ts';
import { SLOTS_PER_CHUNK } from './slot-store.ts';

/**
 * The telemetry thread's view of every series of every writer: which instrument and label values,
 * where each writer keeps its slots, and the text that names it on /metrics, built once.
 *
 * `merge()` reads every writer's latest snapshot into one array of values, summed across writers
 * (a histogram's min and max are the least and greatest). The exposition and the OTLP producer
 * then work from that array, so a slow HTTP client or a push never holds a snapshot open.
 */

/** One writer thread as the registry reads it: the snapshot halves of its chunks. */
export class WriterView {
  readonly #published: Int32Array;
  readonly snapshots: Float64Array[] = [];

  constructor(published: SharedArrayBuffer) {
    this.#published = new Int32Array(published);
  }

  /** Takes the chunks a report announces; checks that its snapshot is the one published. */
  accept(report: SnapshotReport): void {
    // Atomics.load pairs with the writer's Atomics.store: every slot copied before the store is
    // visible to the plain reads that follow.
    const published = Atomics.load(this.#published, 0);
    if (published !== report.sequence) {
      throw new Error(`snapshot ${report.sequence} read while ${published} is published`);
    }
    for (const buffer of report.chunks) {
      this.snapshots.push(new Float64Array(buffer, SLOTS_PER_CHUNK * 8, SLOTS_PER_CHUNK));
    }
  }
}

interface SlotSource {
  readonly slots: Float64Array;
  readonly index: number;
}

/** One series across writers, with its place in the merged values. */
export class RegisteredSeries {
  readonly values: readonly string[];
  readonly offset: number;
  readonly sources: SlotSource[] = [];
  /** Sample-line prefixes per format: one for a scalar, buckets + `_sum` + `_count` for a histogram. */
  readonly prefixes: { text?: readonly string[]; openmetrics?: readonly string[] } = {};
  #attributes: Attributes | undefined;
  readonly #instrument: ResolvedInstrument;

  constructor(instrument: ResolvedInstrument, values: readonly string[], offset: number) {
    this.#instrument = instrument;
    this.values = values;
    this.offset = offset;
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

  constructor(instrument: ResolvedInstrument) {
    this.instrument = instrument;
    this.width = seriesWidth(instrument.kind, instrument.buckets);
    this.#labelOrder = instrument.attributes
      .map((attribute, index) => ({ name: attribute.labelName, index }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map(({ index }) => index);
  }

  header(format: ExpositionFormat): string {
    const cached = this.#headers[format];
    if (cached !== undefined) return cached;
    const { prometheusName, prometheusType, description, unit } = this.instrument;
    const header = familyHeader(prometheusName, prometheusType, description, unit, format);
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
    series.prefixes[format] = built;
    return built;
  }
}

/** Every series of every writer, for one process's catalogs. */
export class SeriesRegistry {
  readonly #instruments = new Map<string, RegisteredInstrument>();
  /** Sorted by Prometheus name: the order families appear on /metrics. */
  readonly instruments: readonly RegisteredInstrument[];
  readonly #all: RegisteredSeries[] = [];
  readonly #widths: number[] = [];
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
    return this.#all.length;
  }

  /**
   * Learns what `report` announces: the writer's new chunks, then its new series (a series another
   * writer already has gains one more source). Call it as the report arrives, before any other
   * snapshot of the same writer can be taken.
   */
  apply(writer: WriterView, report: SnapshotReport): void {
    writer.accept(report);
    for (const announced of report.series) {
      const registered = this.#instruments.get(announced.instrument);
      const slots = writer.snapshots[announced.chunk];
      if (registered === undefined || slots === undefined) {
        throw new Error(`a writer announced a series of unknown instrument ${announced.instrument}`);
      }
      const key = announced.values.join('\u001f');
      let series = registered.byValues.get(key);
      if (series === undefined) {
        series = new RegisteredSeries(registered.instrument, announced.values, this.#size);
        this.#size += registered.width;
        registered.byValues.set(key, series);
        registered.series.push(series);
        this.#all.push(series);
        this.#widths.push(registered.width);
      }
      series.sources.push({ slots, index: announced.slot });
    }
  }

  /**
   * Sums every series' slots across writers into a new array, indexed by `series.offset`. Read
   * only right after `apply` has taken the latest report of every writer.
   */
  merge(): Float64Array {
    const merged = new Float64Array(this.#size);
    const all = this.#all;
    for (let s = 0; s < all.length; s++) {
      const series = all[s] as RegisteredSeries;
      const width = this.#widths[s] as number;
      const sources = series.sources;
      if (width === 1) {
        let value = 0;
        for (const source of sources) value += source.slots[source.index] as number;
        merged[series.offset] = value;
        continue;
      }
      mergeHistogram(merged, series.offset, width, sources);
    }
    return merged;
  }
}

function mergeHistogram(merged: Float64Array, offset: number, width: number, sources: SlotSource[]): void {
  const first = sources[0] as SlotSource;
  merged.set(first.slots.subarray(first.index, first.index + width), offset);
  if (sources.length === 1) return;
  const { min, max } = histogramOffsets(new Array(width - 5));
  for (let k = 1; k < sources.length; k++) {
    const { slots, index } = sources[k] as SlotSource;
    for (let i = 0; i < width; i++) {
      const value = slots[index + i] as number;
      const at = offset + i;
      if (i === min) merged[at] = Math.min(merged[at] as number, value);
      else if (i === max) merged[at] = Math.max(merged[at] as number, value);
      else merged[at] = (merged[at] as number) + value;
    }
  }
}
