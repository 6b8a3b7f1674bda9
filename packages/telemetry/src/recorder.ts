import type { Catalog, CatalogDeclaration, InstrumentDeclaration, ResolvedInstrument } from './catalog.ts';
import { OTHER_VALUE, type ResolvedAttribute } from './catalog.ts';
import { SwitchyardError } from './errors.ts';
import type { CollectHook, MetricsWriter } from './metrics-writer.ts';
import { histogramOffsets, seriesWidth } from './series-layout.ts';

/**
 * The recording side of a catalog: the hot-path idiom of packages/telemetry/README.md.
 *
 * Every series is a run of slots in its thread's shared memory (slot-store.ts). A component
 * resolves the cells it records into once (`family.cell({ reason: 'timeout' })`, at connection or
 * pool set-up) and then updates them inline: `cell.add(n)` is one typed-array store, with no SDK
 * call, attribute hashing or allocation. Nothing else happens on the data thread until a collection
 * asks for a snapshot; the telemetry thread turns snapshots into /metrics and OTLP.
 *
 * Every series of a declared attribute set exists from the start at zero; a value outside its
 * declared set is recorded as `other`.
 */

/** A counter or up-down counter series: `add` to it, or read and write `value`. */
export interface CountCell {
  value: number;
  add(delta?: number): void;
}

/** A gauge series: the value last set. */
export interface GaugeCell {
  value: number;
  set(value: number): void;
}

/** A histogram series with its attribute set resolved once. */
export interface HistogramSeries {
  record(value: number): void;
}

type AttributeKeys<I extends InstrumentDeclaration> =
  I['attributes'] extends Readonly<Record<string, unknown>> ? Extract<keyof I['attributes'], string> : never;

type AttributeArgument<K extends string> = [K] extends [never]
  ? []
  : [attributes: Readonly<Record<K, string>>];

/**
 * Registration of configured names (catalog attributes declared `configured: true`).
 *
 * There is no unregistering: a name removed from the config keeps its series, frozen at their last
 * values, and a name that comes back continues its counters, so that counters never go back while
 * the process lives.
 */
export interface ConfiguredNames {
  /**
   * Admits one combination of configured values, e.g. `{ pool: 'web', upstream: 'web-1' }`, and
   * creates its series at zero (histograms: at first observation). Registering again is a no-op.
   */
  register(attributes: Readonly<Record<string, string>>): void;
}

export interface CountFamily<K extends string> extends ConfiguredNames {
  /** The series for an attribute set; resolve it once and keep it on the hot path. */
  cell(...attributes: AttributeArgument<K>): CountCell;
  /** Adds a hook run on this thread before each snapshot (every hook of the thread runs). */
  onCollect(hook: CollectHook): void;
}

export interface GaugeFamily<K extends string> extends ConfiguredNames {
  cell(...attributes: AttributeArgument<K>): GaugeCell;
  /** Adds a hook run on this thread before each snapshot (every hook of the thread runs). */
  onCollect(hook: CollectHook): void;
}

export interface HistogramFamily<K extends string> extends ConfiguredNames {
  series(...attributes: AttributeArgument<K>): HistogramSeries;
}

export type InstrumentHandle<I extends InstrumentDeclaration> = I['kind'] extends 'histogram'
  ? HistogramFamily<AttributeKeys<I>>
  : I['kind'] extends 'gauge'
    ? GaugeFamily<AttributeKeys<I>>
    : CountFamily<AttributeKeys<I>>;

export type CatalogHandles<D extends CatalogDeclaration> = {
  readonly [K in keyof D['instruments']]: InstrumentHandle<D['instruments'][K]>;
};

/** One slot: a counter's `add` and a gauge's `set` (each family hands out the interface it means). */
class SlotCell implements CountCell, GaugeCell {
  readonly #slots: Float64Array;
  readonly #index: number;

  constructor(slots: Float64Array, index: number) {
    this.#slots = slots;
    this.#index = index;
  }

  add(delta = 1): void {
    this.#slots[this.#index] = (this.#slots[this.#index] as number) + delta;
  }

  set(value: number): void {
    this.#slots[this.#index] = value;
  }

  get value(): number {
    return this.#slots[this.#index] as number;
  }

  set value(value: number) {
    this.#slots[this.#index] = value;
  }
}

class SlotHistogram implements HistogramSeries {
  readonly #slots: Float64Array;
  readonly #boundaries: Float64Array;
  readonly #base: number;
  readonly #sum: number;
  readonly #count: number;
  readonly #min: number;
  readonly #max: number;

  constructor(slots: Float64Array, base: number, boundaries: Float64Array) {
    const offsets = histogramOffsets(boundaries);
    this.#slots = slots;
    this.#boundaries = boundaries;
    this.#base = base;
    this.#sum = base + offsets.sum;
    this.#count = base + offsets.count;
    this.#min = base + offsets.min;
    this.#max = base + offsets.max;
    slots[this.#min] = Number.POSITIVE_INFINITY;
    slots[this.#max] = Number.NEGATIVE_INFINITY;
  }

  record(value: number): void {
    const boundaries = this.#boundaries;
    const slots = this.#slots;
    let i = 0;
    // A linear scan beats a binary search for the ~10-20 boundaries a catalog declares.
    while (i < boundaries.length && value > (boundaries[i] as number)) i++;
    const bucket = this.#base + i;
    slots[bucket] = (slots[bucket] as number) + 1;
    slots[this.#sum] = (slots[this.#sum] as number) + value;
    slots[this.#count] = (slots[this.#count] as number) + 1;
    if (value < (slots[this.#min] as number)) slots[this.#min] = value;
    if (value > (slots[this.#max] as number)) slots[this.#max] = value;
  }
}

const SEPARATOR = '\u001f';
/** A configured name must not hold C0 controls or DEL (they also separate series announcements). */
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * Maps raw attribute values onto the declared sets, and each distinct set onto one series.
 * Configured attributes (names from the worker's config) accept only combinations registered with
 * `register`; any other combination records as `other` in every configured attribute.
 */
class SeriesTable<S> {
  readonly #instrument: ResolvedInstrument;
  readonly #allowed: ReadonlyArray<ReadonlySet<string> | undefined>;
  readonly #configuredIndexes: readonly number[];
  readonly #registered = new Set<string>();
  readonly #series = new Map<string, S>();
  readonly #create: (values: readonly string[]) => S;

  constructor(instrument: ResolvedInstrument, create: (values: readonly string[]) => S) {
    this.#instrument = instrument;
    this.#allowed = instrument.attributes.map((attribute) =>
      attribute.configured ? undefined : new Set(attribute.values),
    );
    this.#configuredIndexes = instrument.attributes.flatMap((attribute, i) =>
      attribute.configured ? [i] : [],
    );
    this.#create = create;
  }

  /**
   * Creates the series of every combination of declared values, so that all start at zero. With
   * configured attributes this happens per registered combination instead.
   */
  preinitialise(): void {
    if (this.#configuredIndexes.length === 0) this.#createCombinations(new Map());
  }

  /** Accepts one combination of configured values (and pre-initialises its series). */
  register(raw: Readonly<Record<string, string>>, preinitialise: boolean): void {
    const configured = this.#configuredValues(raw);
    const id = [...configured.values()].join(SEPARATOR);
    if (this.#registered.has(id)) return;
    if (this.#registered.size >= this.#instrument.configuredLimit) {
      throw new SwitchyardError(
        'SWY_ERR_CONFIGURED_LIMIT',
        `${this.#instrument.otelName}: more than ${this.#instrument.configuredLimit} configured combinations registered; the config must stay within the catalog's configuredLimit`,
      );
    }
    this.#registered.add(id);
    if (preinitialise) this.#createCombinations(configured);
  }

  get(raw: Readonly<Record<string, string>> | undefined): S {
    const attributes = this.#instrument.attributes;
    const values = new Array<string>(attributes.length);
    for (let i = 0; i < attributes.length; i++) {
      const value = raw?.[(attributes[i] as ResolvedAttribute).key];
      const allowed = this.#allowed[i];
      values[i] = value !== undefined && (allowed === undefined || allowed.has(value)) ? value : OTHER_VALUE;
    }
    if (this.#configuredIndexes.length > 0) {
      const id = this.#configuredIndexes.map((i) => values[i]).join(SEPARATOR);
      if (!this.#registered.has(id)) for (const i of this.#configuredIndexes) values[i] = OTHER_VALUE;
    }
    return this.#resolve(values);
  }

  #configuredValues(raw: Readonly<Record<string, string>>): Map<number, string> {
    const values = new Map<number, string>();
    for (const i of this.#configuredIndexes) {
      const key = (this.#instrument.attributes[i] as ResolvedAttribute).key;
      const value = raw[key];
      if (
        value === undefined ||
        value === '' ||
        value.length > 64 ||
        value === OTHER_VALUE ||
        hasControlCharacter(value)
      ) {
        throw new SwitchyardError(
          'SWY_ERR_CONFIGURED_VALUE',
          `${this.#instrument.otelName}: configured attribute "${key}" needs a name of 1 to 64 characters other than "other", without control characters, got ${JSON.stringify(value)}`,
        );
      }
      values.set(i, value);
    }
    return values;
  }

  #createCombinations(fixed: ReadonlyMap<number, string>): void {
    let combinations: string[][] = [[]];
    this.#instrument.attributes.forEach((attribute, i) => {
      const choices = fixed.has(i) ? [fixed.get(i) as string] : attribute.values;
      combinations = combinations.flatMap((prefix) => choices.map((value) => [...prefix, value]));
    });
    for (const values of combinations) this.#resolve(values);
  }

  #resolve(values: readonly string[]): S {
    const id = values.join(SEPARATOR);
    let series = this.#series.get(id);
    if (series === undefined) {
      series = this.#create(Object.freeze([...values]));
      this.#series.set(id, series);
    }
    return series;
  }
}

function cellFamily(writer: MetricsWriter, instrument: ResolvedInstrument) {
  const table = new SeriesTable<SlotCell>(instrument, (values) => {
    const { chunk, slot } = writer.addSeries(instrument.otelName, values, 1);
    return new SlotCell(writer.liveSlots(chunk), slot);
  });
  table.preinitialise();
  return {
    cell: (attributes?: Readonly<Record<string, string>>) => table.get(attributes),
    onCollect: (hook: CollectHook) => writer.onCollect(hook),
    register: (attributes: Readonly<Record<string, string>>) => table.register(attributes, true),
  };
}

function histogramFamily(writer: MetricsWriter, instrument: ResolvedInstrument) {
  // Typed, shared by the instrument's series: scanning the catalog's frozen array took a record()
  // from 10 to 30 ns (bench/hot-path.bench.ts).
  const boundaries = Float64Array.from(instrument.buckets ?? []);
  const table = new SeriesTable<HistogramSeries>(instrument, (values) => {
    const { chunk, slot } = writer.addSeries(
      instrument.otelName,
      values,
      seriesWidth(instrument.kind, boundaries),
    );
    return new SlotHistogram(writer.liveSlots(chunk), slot, boundaries);
  });
  return {
    series: (attributes?: Readonly<Record<string, string>>) => table.get(attributes),
    // Histogram series appear with their first use: registering only admits the names.
    register: (attributes: Readonly<Record<string, string>>) => table.register(attributes, false),
  };
}

/**
 * Creates the cells of `catalog`'s instruments in `writer` (counters, up-down counters and gauges of
 * every declared combination at once, at zero) and returns one typed handle per catalog key.
 */
export function registerCatalog<D extends CatalogDeclaration>(
  writer: MetricsWriter,
  catalog: Catalog<D>,
): CatalogHandles<D> {
  const handles: Record<string, unknown> = {};
  for (const instrument of catalog.instruments) {
    handles[instrument.key] =
      instrument.kind === 'histogram' ? histogramFamily(writer, instrument) : cellFamily(writer, instrument);
  }
  return Object.freeze(handles) as CatalogHandles<D>;
}
