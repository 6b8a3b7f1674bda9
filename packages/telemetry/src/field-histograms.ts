import { type Attributes, type HrTime, ValueType } from '@opentelemetry/api';
import { type InstrumentationScope, millisToHrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type HistogramMetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { ResolvedInstrument } from './catalog.ts';

/**
 * Histograms kept in plain fields and exported through the readers' `metricProducers`.
 *
 * sdk-metrics 3.1 hashes a histogram's attributes (sort + stringify) on every `record()`, a few
 * hundred nanoseconds per call whether or not the attribute object was resolved in advance. Here a
 * series is resolved once and `record()` is a bucket search and three increments; the cost moves
 * to collection time, where each reader's producer turns the fields into the SDK's histogram data,
 * cumulative or delta as that reader asks.
 */
export class FieldHistogram {
  readonly attributes: Readonly<Attributes>;
  readonly boundaries: readonly number[];
  /** counts[i] holds values <= boundaries[i] (and > the previous one); the last slot, the rest. */
  readonly counts: number[];
  readonly startTime: HrTime;
  sum = 0;
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  constructor(attributes: Readonly<Attributes>, boundaries: readonly number[]) {
    this.attributes = attributes;
    this.boundaries = boundaries;
    this.counts = new Array<number>(boundaries.length + 1).fill(0);
    this.startTime = millisToHrTime(Date.now());
  }

  record(value: number): void {
    const boundaries = this.boundaries;
    let i = 0;
    // A linear scan beats a binary search for the ~10-20 boundaries a catalog declares.
    while (i < boundaries.length && value > (boundaries[i] as number)) i++;
    (this.counts as number[])[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count += 1;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }
}

interface FieldHistogramInstrument {
  readonly instrument: ResolvedInstrument;
  readonly series: FieldHistogram[];
}

interface DeltaState {
  counts: number[];
  sum: number;
  count: number;
  time: HrTime;
}

/** Every field-backed histogram of one MeterProvider, and the producers that export them. */
export class FieldHistogramRegistry {
  readonly #scope: InstrumentationScope;
  readonly #instruments: FieldHistogramInstrument[] = [];

  constructor(scope: InstrumentationScope) {
    this.#scope = scope;
  }

  /** Declares a histogram instrument; returns the factory of its series. */
  add(instrument: ResolvedInstrument): (attributes: Readonly<Attributes>) => FieldHistogram {
    const entry: FieldHistogramInstrument = { instrument, series: [] };
    this.#instruments.push(entry);
    const boundaries = Object.freeze([...(instrument.buckets ?? [])]);
    return (attributes) => {
      const series = new FieldHistogram(attributes, boundaries);
      entry.series.push(series);
      return series;
    };
  }

  /** A producer for one reader, exporting with that reader's temporality. */
  producer(temporality: AggregationTemporality): MetricProducer {
    const deltas = new Map<FieldHistogram, DeltaState>();
    return {
      collect: async (): Promise<CollectionResult> => {
        const now = millisToHrTime(Date.now());
        const metrics: HistogramMetricData[] = [];
        for (const { instrument, series } of this.#instruments) {
          const dataPoints =
            temporality === AggregationTemporality.DELTA
              ? series.flatMap((one) => deltaPoint(one, deltas, now))
              : series.filter((one) => one.count > 0).map((one) => cumulativePoint(one, now));
          if (dataPoints.length === 0) continue;
          metrics.push({
            descriptor: {
              name: instrument.otelName,
              description: instrument.description,
              unit: instrument.unit,
              valueType: ValueType.DOUBLE,
            },
            aggregationTemporality: temporality,
            dataPointType: DataPointType.HISTOGRAM,
            dataPoints,
          });
        }
        return {
          // The readers replace the resource with the provider's own.
          resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: this.#scope, metrics }] },
          errors: [],
        };
      },
    };
  }
}

function cumulativePoint(series: FieldHistogram, now: HrTime): HistogramMetricData['dataPoints'][number] {
  return {
    startTime: series.startTime,
    endTime: now,
    attributes: series.attributes,
    value: {
      buckets: { boundaries: [...series.boundaries], counts: [...series.counts] },
      sum: series.sum,
      count: series.count,
      min: series.min,
      max: series.max,
    },
  };
}

/** What was recorded since this producer's previous collection; nothing when nothing was. */
function deltaPoint(
  series: FieldHistogram,
  deltas: Map<FieldHistogram, DeltaState>,
  now: HrTime,
): HistogramMetricData['dataPoints'] {
  const previous = deltas.get(series) ?? {
    counts: new Array<number>(series.counts.length).fill(0),
    sum: 0,
    count: 0,
    time: series.startTime,
  };
  deltas.set(series, { counts: [...series.counts], sum: series.sum, count: series.count, time: now });
  const count = series.count - previous.count;
  if (count === 0) return [];
  return [
    {
      startTime: previous.time,
      endTime: now,
      attributes: series.attributes,
      value: {
        buckets: {
          boundaries: [...series.boundaries],
          counts: series.counts.map((total, i) => total - (previous.counts[i] as number)),
        },
        sum: series.sum - previous.sum,
        count,
      },
    },
  ];
}
