import type { AnyValue, ExportMetricsServiceRequest, KeyValue, Metric } from '@switchyard/otlp-proto';
import type { OtlpMetricDescription } from './otlp-names.ts';

/** One pushed metric, flattened from an OTLP request as a Collector's Prometheus exporter sees it. */
export interface PushedMetric {
  readonly name: string;
  readonly unit: string;
  readonly type: OtlpMetricDescription['type'];
  /** The Prometheus type the Collector gives it. */
  readonly prometheusType: 'counter' | 'gauge' | 'histogram' | 'summary';
  readonly attributeKeys: readonly string[];
  /** Number points by their attributes (JSON of sorted key/values); histogram points by count. */
  readonly values: ReadonlyMap<string, number>;
  readonly temporality: string | undefined;
}

function scalar(value: AnyValue | null): string {
  if (value === null || value.value === undefined) return '';
  const raw = value[value.value];
  return typeof raw === 'object' ? JSON.stringify(raw) : String(raw);
}

export function attributesKey(attributes: readonly KeyValue[]): string {
  const entries = attributes
    .map((pair) => [pair.key, scalar(pair.value)] as const)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify(Object.fromEntries(entries));
}

function describe(metric: Metric): PushedMetric {
  let type: PushedMetric['type'];
  let prometheusType: PushedMetric['prometheusType'];
  let points: Array<{ attributes: KeyValue[]; value: number }>;
  let temporality: string | undefined;
  switch (metric.data) {
    case 'sum':
      type = metric.sum?.isMonotonic ? 'monotonic_counter' : 'non_monotonic_counter';
      prometheusType = metric.sum?.isMonotonic ? 'counter' : 'gauge';
      temporality = String(metric.sum?.aggregationTemporality);
      points = (metric.sum?.dataPoints ?? []).map((p) => ({
        attributes: p.attributes,
        value: Number(p.asDouble ?? p.asInt),
      }));
      break;
    case 'gauge':
      type = 'gauge';
      prometheusType = 'gauge';
      points = (metric.gauge?.dataPoints ?? []).map((p) => ({
        attributes: p.attributes,
        value: Number(p.asDouble ?? p.asInt),
      }));
      break;
    case 'histogram':
      type = 'histogram';
      prometheusType = 'histogram';
      temporality = String(metric.histogram?.aggregationTemporality);
      points = (metric.histogram?.dataPoints ?? []).map((p) => ({
        attributes: p.attributes,
        value: Number(p.count),
      }));
      break;
    default:
      throw new Error(`metric ${metric.name} has data ${metric.data}, which Switchyard never pushes`);
  }
  const keys = new Set(points.flatMap((point) => point.attributes.map((pair) => pair.key)));
  return {
    name: metric.name,
    unit: metric.unit,
    type,
    prometheusType,
    attributeKeys: [...keys].sort(),
    values: new Map(points.map((point) => [attributesKey(point.attributes), point.value])),
    temporality,
  };
}

/** Every metric of an export request, by OpenTelemetry name. */
export function pushedMetrics(request: ExportMetricsServiceRequest): Map<string, PushedMetric> {
  const metrics = new Map<string, PushedMetric>();
  for (const resourceMetrics of request.resourceMetrics) {
    for (const scopeMetrics of resourceMetrics.scopeMetrics) {
      for (const metric of scopeMetrics.metrics) metrics.set(metric.name, describe(metric));
    }
  }
  return metrics;
}
