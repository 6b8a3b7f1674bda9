import type { Attributes, Histogram, Meter, ObservableResult } from '@opentelemetry/api';
import type { Catalog, CatalogDeclaration, InstrumentDeclaration, ResolvedInstrument } from './catalog.ts';
import { OTHER_VALUE } from './catalog.ts';

/**
 * The recording side of a catalog: the hot-path pattern of docs/telemetry.md.
 *
 * Counters, up-down counters and gauges are plain numeric fields (`cell.value`) that the data path
 * updates inline; observable instruments read them when a reader collects, as Go servers publish
 * expvars. No SDK call, attribute hashing or allocation happens per event. Histograms cannot be
 * read from fields, so a series is resolved once (attributes bucketed and frozen) and recorded
 * through the SDK.
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

export interface CountFamily<K extends string> {
  /** The series for an attribute set; resolve it once and keep it on the hot path. */
  cell(...attributes: AttributeArgument<K>): CountCell;
  /** Adds a hook run before this instrument's cells are read at each collection. */
  onCollect(hook: CollectHook): void;
}

export interface GaugeFamily<K extends string> {
  cell(...attributes: AttributeArgument<K>): GaugeCell;
  /** Adds a hook run before this instrument's cells are read at each collection. */
  onCollect(hook: CollectHook): void;
}

export interface HistogramFamily<K extends string> {
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

/** Maps raw attribute values onto the declared sets, and each distinct set onto one series. */
class SeriesTable<S> {
  readonly #instrument: ResolvedInstrument;
  readonly #allowed: ReadonlyArray<ReadonlySet<string>>;
  readonly #series = new Map<string, { attributes: Readonly<Attributes>; series: S }>();
  readonly #create: (attributes: Readonly<Attributes>) => S;

  constructor(instrument: ResolvedInstrument, create: (attributes: Readonly<Attributes>) => S) {
    this.#instrument = instrument;
    this.#allowed = instrument.attributes.map((attribute) => new Set(attribute.values));
    this.#create = create;
  }

  /** Creates the series of every combination of declared values, so that all start at zero. */
  preinitialise(): void {
    let combinations: string[][] = [[]];
    for (const attribute of this.#instrument.attributes) {
      combinations = combinations.flatMap((prefix) => attribute.values.map((value) => [...prefix, value]));
    }
    for (const values of combinations) this.#resolve(values);
  }

  get(raw: Readonly<Record<string, string>> | undefined): S {
    const attributes = this.#instrument.attributes;
    const values = new Array<string>(attributes.length);
    for (let i = 0; i < attributes.length; i++) {
      const value = raw?.[(attributes[i] as { key: string }).key];
      values[i] =
        value !== undefined && (this.#allowed[i] as ReadonlySet<string>).has(value) ? value : OTHER_VALUE;
    }
    return this.#resolve(values);
  }

  entries(): IterableIterator<{ attributes: Readonly<Attributes>; series: S }> {
    return this.#series.values();
  }

  #resolve(values: readonly string[]): S {
    const id = values.join('\u001f');
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
  };
}

function registerInstrument(meter: Meter, instrument: ResolvedInstrument): unknown {
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
      const histogram: Histogram = meter.createHistogram(instrument.otelName, {
        ...options,
        advice: { explicitBucketBoundaries: [...(instrument.buckets ?? [])] },
      });
      const table = new SeriesTable<HistogramSeries>(instrument, (attributes) => ({
        attributes,
        record: (value: number) => histogram.record(value, attributes),
      }));
      return { series: (attributes?: Readonly<Record<string, string>>) => table.get(attributes) };
    }
  }
}

/** Creates the catalog's instruments on `meter` and returns one typed handle per catalog key. */
export function registerCatalog<D extends CatalogDeclaration>(
  meter: Meter,
  catalog: Catalog<D>,
): CatalogHandles<D> {
  const handles: Record<string, unknown> = {};
  for (const instrument of catalog.instruments)
    handles[instrument.key] = registerInstrument(meter, instrument);
  return Object.freeze(handles) as CatalogHandles<D>;
}
