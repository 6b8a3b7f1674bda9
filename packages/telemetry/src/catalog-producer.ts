import { type HrTime, ValueType } from '@opentelemetry/api';
import { type InstrumentationScope, millisToHrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  type CollectionResult,
  type DataPoint,
  DataPointType,
  type Histogram,
  InstrumentType,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { InstrumentKind } from './catalog.ts';
import type { CollectionHub } from './collection-hub.ts';
import { histogramOffsets } from './series-layout.ts';
import type { RegisteredInstrument, RegisteredSeries } from './series-registry.ts';

/**
 * The catalogs' series as OpenTelemetry metric data, for an SDK reader's `metricProducers` (the
 * OTLP push reader): each collection takes a fresh snapshot of every writer (collection-hub.ts).
 *
 * Kinds map onto the instrument types they stood for when they were SDK observables, so that an
 * exporter's temporality preference applies as before: counter -> observable counter, up-down
 * counter -> observable up-down counter, gauge -> observable gauge, histogram -> histogram. With
 * delta temporality a point covers the time since this producer's previous collection.
 */

const INSTRUMENT_TYPES: Readonly<Record<InstrumentKind, InstrumentType>> = {
  counter: InstrumentType.OBSERVABLE_COUNTER,
  updown_counter: InstrumentType.OBSERVABLE_UP_DOWN_COUNTER,
  gauge: InstrumentType.OBSERVABLE_GAUGE,
  histogram: InstrumentType.HISTOGRAM,
};

export type TemporalitySelector = (instrumentType: InstrumentType) => AggregationTemporality;

export interface CatalogProducerOptions {
  readonly hub: CollectionHub;
  readonly scope: InstrumentationScope;
  readonly temporality: TemporalitySelector;
  /** Cumulative points start here (the pipeline's start). */
  readonly startTime?: HrTime;
}

export function catalogProducer(options: CatalogProducerOptions): MetricProducer {
  const { hub, scope } = options;
  const startTime = options.startTime ?? millisToHrTime(Date.now());
  /** The values of the previous collection, for delta points. */
  let previous: { values: Float64Array; time: HrTime } | undefined;
  return {
    collect: async (): Promise<CollectionResult> => {
      const { values, hookErrors } = await hub.collect();
      const now = millisToHrTime(Date.now());
      const before = previous ?? { values: new Float64Array(0), time: startTime };
      const metrics: MetricData[] = [];
      for (const registered of hub.registry.instruments) {
        const temporality = options.temporality(INSTRUMENT_TYPES[registered.instrument.kind]);
        const delta = temporality === AggregationTemporality.DELTA && registered.instrument.kind !== 'gauge';
        const window = delta
          ? { start: before.time, base: before.values }
          : { start: startTime, base: undefined };
        const metric = metricOf(registered, values, temporality, window, now);
        if (metric !== undefined) metrics.push(metric);
      }
      previous = { values, time: now };
      return {
        // The reader replaces the resource with the provider's own.
        resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope, metrics }] },
        errors: hookErrors.map((message) => new Error(`a collect hook failed: ${message}`)),
      };
    },
  };
}

interface Window {
  readonly start: HrTime;
  /** Values to subtract (delta), by offset; a series newer than them starts from zero. */
  readonly base: Float64Array | undefined;
}

function metricOf(
  registered: RegisteredInstrument,
  values: Float64Array,
  temporality: AggregationTemporality,
  window: Window,
  now: HrTime,
): MetricData | undefined {
  const { instrument } = registered;
  // Series announced after this collection merged have no value in it yet.
  const series = registered.series.filter((one) => one.offset < values.length);
  if (series.length === 0) return undefined;
  const descriptor = {
    name: instrument.otelName,
    description: instrument.description,
    unit: instrument.unit,
    valueType: ValueType.DOUBLE,
  };
  if (instrument.kind === 'histogram') {
    const dataPoints = series.flatMap((one) =>
      histogramPoint(one, instrument.buckets ?? [], values, window, now),
    );
    if (dataPoints.length === 0) return undefined;
    return {
      descriptor,
      aggregationTemporality: temporality,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints,
    };
  }
  const dataPoints = series.map(
    (one): DataPoint<number> => ({
      startTime: window.start,
      endTime: now,
      attributes: one.attributes,
      value: (values[one.offset] as number) - baseValue(window, one.offset),
    }),
  );
  if (instrument.kind === 'gauge') {
    return {
      descriptor,
      aggregationTemporality: temporality,
      dataPointType: DataPointType.GAUGE,
      dataPoints,
    };
  }
  return {
    descriptor,
    aggregationTemporality: temporality,
    dataPointType: DataPointType.SUM,
    isMonotonic: instrument.kind === 'counter',
    dataPoints,
  };
}

function baseValue(window: Window, offset: number): number {
  return window.base !== undefined && offset < window.base.length ? (window.base[offset] as number) : 0;
}

/** One histogram point; none when nothing was observed (in the window, for delta). */
function histogramPoint(
  series: RegisteredSeries,
  boundaries: readonly number[],
  values: Float64Array,
  window: Window,
  now: HrTime,
): DataPoint<Histogram>[] {
  const at = series.offset;
  const offsets = histogramOffsets(boundaries);
  const count = (values[at + offsets.count] as number) - baseValue(window, at + offsets.count);
  if (count === 0) return [];
  const counts: number[] = [];
  for (let i = 0; i <= boundaries.length; i++) {
    counts.push((values[at + i] as number) - baseValue(window, at + i));
  }
  const value: Histogram = {
    buckets: { boundaries: [...boundaries], counts },
    sum: (values[at + offsets.sum] as number) - baseValue(window, at + offsets.sum),
    count,
    // Min and max are kept since the start: a delta window cannot know its own.
    ...(window.base === undefined && {
      min: values[at + offsets.min] as number,
      max: values[at + offsets.max] as number,
    }),
  };
  return [{ startTime: window.start, endTime: now, attributes: series.attributes, value }];
}
