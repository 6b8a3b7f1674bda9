import type { Attributes, Histogram, Meter, ObservableResult } from '@opentelemetry/api';
import type { Catalog, CatalogDeclaration, InstrumentDeclaration, ResolvedInstrument } from './catalog.ts';
import { OTHER_VALUE, type ResolvedAttribute } from './catalog.ts';
import { SwitchyardError } from './errors.ts';
import type { FieldHistogramRegistry } from './field-histograms.ts';

/**
 * The recording side of a catalog: the hot-path pattern of docs/telemetry.md.
 *
 * Counters, up-down counters and gauges are plain numeric fields (`cell.value`) that the data path
 * updates inline; observable instruments read them when a reader collects, as Go servers publish
 * expvars. No SDK call, attribute hashing or allocation happens per event. Histogram series are
 * resolved once (attributes bucketed and frozen); with a FieldHistogramRegistry (as startTelemetry
 * sets up) they too are plain fields, exported through the readers' metric producers, else they
 * record through the SDK.
 *
 * Every series of a declared attribute set exists from the start at zero; a value outside its
 * declared set is recorded as `other`.
 */

/** A counter or up-down counter series: add to `value` inline, or call `add`. */
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
  readonly attributes: Readonly<Attributes>;
  record(value: number): void;
}

type AttributeKeys<I extends InstrumentDeclaration> =
  I['attributes'] extends Readonly<Record<string, unknown>> ? Extract<keyof I['attributes'], string> : never;

type AttributeArgument<K extends string> = [K] extends [never]
  ? []
  : [attributes: Readonly<Record<K, string>>];

/**
 * Runs when a reader collects, just before the cells are read: the place to bring cells up to date
 * from state the data path keeps anyway (a socket's `bytesRead`, a queue's length), so that the
 * data path itself does nothing per event.
 */
export type CollectHook = () => void;

/**
 * Registration of configured names (catalog attributes declared `configured: true`).
 *
 * There is no unregistering: the SDK's cumulative aggregation keeps reporting every attribute set
 * it has seen until the process restarts, so a name removed from the config keeps its series,
 * frozen at their last values, and a name that comes back continues its counters.
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
  /** Adds a hook run before this instrument's cells are read at each collection. */
  onCollect(hook: CollectHook): void;
}

export interface GaugeFamily<K extends string> extends ConfiguredNames {
  cell(...attributes: AttributeArgument<K>): GaugeCell;
  /** Adds a hook run before this instrument's cells are read at each collection. */
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

class Count implements CountCell {
  value = 0;
  add(delta = 1): void {
    this.value += delta;
  }
}

class Gauge implements GaugeCell {
  value = 0;
  set(value: number): void {
    this.value = value;
  }
}

interface SeriesEntry<S> {
  readonly attributes: Readonly<Attributes>;
  readonly series: S;
}

const SEPARATOR = '\u001f';

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
  readonly #series = new Map<string, SeriesEntry<S>>();
  readonly #create: (attributes: Readonly<Attributes>) => S;

  constructor(instrument: ResolvedInstrument, create: (attributes: Readonly<Attributes>) => S) {
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

  entries(): IterableIterator<SeriesEntry<S>> {
    return this.#series.values();
  }

  #configuredValues(raw: Readonly<Record<string, string>>): Map<number, string> {
    const values = new Map<number, string>();
    for (const i of this.#configuredIndexes) {
      const key = (this.#instrument.attributes[i] as ResolvedAttribute).key;
      const value = raw[key];
      if (value === undefined || value === '' || value.length > 64 || value === OTHER_VALUE) {
        throw new SwitchyardError(
          'SWY_ERR_CONFIGURED_VALUE',
          `${this.#instrument.otelName}: configured attribute "${key}" needs a name of 1 to 64 characters other than "other", got ${JSON.stringify(value)}`,
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
    let entry = this.#series.get(id);
    if (entry === undefined) {
      const attributes: Attributes = {};
      this.#instrument.attributes.forEach((attribute, i) => {
        attributes[attribute.key] = values[i];
      });
      Object.freeze(attributes);
      entry = { attributes, series: this.#create(attributes) };
      this.#series.set(id, entry);
    }
    return entry.series;
  }
}

function observeTable(table: SeriesTable<{ value: number }>, hooks: readonly CollectHook[]) {
  return (result: ObservableResult) => {
    for (const hook of hooks) hook();
    for (const { attributes, series } of table.entries()) result.observe(series.value, attributes);
  };
}

function cellFamily<C>(table: SeriesTable<C>, hooks: CollectHook[]) {
  return {
    cell: (attributes?: Readonly<Record<string, string>>) => table.get(attributes),
    onCollect: (hook: CollectHook) => {
      hooks.push(hook);
    },
    register: (attributes: Readonly<Record<string, string>>) => table.register(attributes, true),
  };
}

/** A histogram series recorded through the SDK (attributes hashed on every record). */
function sdkHistogram(
  meter: Meter,
  instrument: ResolvedInstrument,
): (attributes: Readonly<Attributes>) => HistogramSeries {
  const histogram: Histogram = meter.createHistogram(instrument.otelName, {
    description: instrument.description,
    unit: instrument.unit,
    advice: { explicitBucketBoundaries: [...(instrument.buckets ?? [])] },
  });
  return (attributes) => ({ attributes, record: (value: number) => histogram.record(value, attributes) });
}

function registerInstrument(
  meter: Meter,
  instrument: ResolvedInstrument,
  histograms: FieldHistogramRegistry | undefined,
): unknown {
  const options = { description: instrument.description, unit: instrument.unit };
  switch (instrument.kind) {
    case 'counter':
    case 'updown_counter': {
      const table = new SeriesTable<CountCell>(instrument, () => new Count());
      table.preinitialise();
      const observable =
        instrument.kind === 'counter'
          ? meter.createObservableCounter(instrument.otelName, options)
          : meter.createObservableUpDownCounter(instrument.otelName, options);
      const hooks: CollectHook[] = [];
      observable.addCallback(observeTable(table, hooks));
      return cellFamily(table, hooks);
    }
    case 'gauge': {
      const table = new SeriesTable<GaugeCell>(instrument, () => new Gauge());
      table.preinitialise();
      const hooks: CollectHook[] = [];
      meter.createObservableGauge(instrument.otelName, options).addCallback(observeTable(table, hooks));
      return cellFamily(table, hooks);
    }
    case 'histogram': {
      const table = new SeriesTable<HistogramSeries>(
        instrument,
        histograms?.add(instrument) ?? sdkHistogram(meter, instrument),
      );
      return {
        series: (attributes?: Readonly<Record<string, string>>) => table.get(attributes),
        // Histogram series appear with their first observation: registering only admits the names.
        register: (attributes: Readonly<Record<string, string>>) => table.register(attributes, false),
      };
    }
  }
}

export interface RegisterOptions {
  /**
   * Keeps histograms in fields exported by this registry's producers (startTelemetry passes one);
   * without it, histograms are SDK instruments on `meter`.
   */
  readonly histograms?: FieldHistogramRegistry;
}

/** Creates the catalog's instruments on `meter` and returns one typed handle per catalog key. */
export function registerCatalog<D extends CatalogDeclaration>(
  meter: Meter,
  catalog: Catalog<D>,
  options: RegisterOptions = {},
): CatalogHandles<D> {
  const handles: Record<string, unknown> = {};
  for (const instrument of catalog.instruments) {
    handles[instrument.key] = registerInstrument(meter, instrument, options.histograms);
  }
  return Object.freeze(handles) as CatalogHandles<D>;
}
