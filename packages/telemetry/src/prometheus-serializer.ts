import type { Attributes, AttributeValue } from '@opentelemetry/api';
import {
  DataPointType,
  type Histogram,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { type PrometheusMetricShape, prometheusLabelName, prometheusMetricName } from './naming.ts';

/**
 * Prometheus text exposition (format 0.0.4) of collected OpenTelemetry metrics, named by the same
 * rules the OpenTelemetry Collector's Prometheus exporter applies (naming.ts), so that a metric
 * reads the same whether it was scraped from a worker or pushed through a Collector.
 *
 * `@opentelemetry/exporter-prometheus` appends `_total` but no unit suffix and offers no hook to
 * change that, so we use it only as the reader and serialize its collected data here.
 *
 * Deliberately left out: the `otel_scope_name`/`otel_scope_version` labels on every line. Each
 * Switchyard worker records through one meter whose instrument names already carry the worker's
 * namespace, and the process metrics have unique semantic-convention names, so the scope adds bytes
 * to every sample and no information (docs/telemetry.md).
 */

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly help: string;
  readonly lines: string[];
}

function shapeOf(metric: MetricData): PrometheusMetricShape {
  switch (metric.dataPointType) {
    case DataPointType.SUM:
      return metric.isMonotonic ? 'monotonic_counter' : 'non_monotonic_counter';
    case DataPointType.GAUGE:
      return 'gauge';
    case DataPointType.HISTOGRAM:
      return 'histogram';
    case DataPointType.EXPONENTIAL_HISTOGRAM:
      return 'exponential_histogram';
  }
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function attributeText(value: AttributeValue | undefined): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return JSON.stringify(value);
  return String(value);
}

export function formatSampleValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function labelText(attributes: Attributes, extra?: string): string {
  const pairs: string[] = [];
  for (const key of Object.keys(attributes).sort()) {
    const value = attributes[key];
    if (value === undefined) continue;
    pairs.push(`${prometheusLabelName(key)}="${escapeLabelValue(attributeText(value))}"`);
  }
  if (extra !== undefined) pairs.push(extra);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function histogramLines(name: string, attributes: Attributes, histogram: Histogram, lines: string[]): void {
  const { boundaries, counts } = histogram.buckets;
  let cumulative = 0;
  for (let i = 0; i < boundaries.length; i++) {
    cumulative += counts[i] ?? 0;
    lines.push(
      `${name}_bucket${labelText(attributes, `le="${formatSampleValue(boundaries[i] as number)}"`)} ${cumulative}`,
    );
  }
  lines.push(`${name}_bucket${labelText(attributes, 'le="+Inf"')} ${histogram.count}`);
  lines.push(`${name}_sum${labelText(attributes)} ${formatSampleValue(histogram.sum ?? 0)}`);
  lines.push(`${name}_count${labelText(attributes)} ${histogram.count}`);
}

function appendMetric(families: Map<string, Family>, metric: MetricData, skipped: string[]): void {
  const shape = shapeOf(metric);
  if (shape === 'exponential_histogram') {
    // The 0.0.4 text format has no native histograms; Switchyard never creates exponential ones.
    skipped.push(metric.descriptor.name);
    return;
  }
  const name = prometheusMetricName(metric.descriptor.name, metric.descriptor.unit, shape);
  const type = shape === 'monotonic_counter' ? 'counter' : shape === 'histogram' ? 'histogram' : 'gauge';
  let family = families.get(name);
  if (family === undefined) {
    family = { name, type, help: metric.descriptor.description, lines: [] };
    families.set(name, family);
  } else if (family.type !== type) {
    skipped.push(metric.descriptor.name);
    return;
  }
  if (metric.dataPointType === DataPointType.HISTOGRAM) {
    for (const point of metric.dataPoints) histogramLines(name, point.attributes, point.value, family.lines);
    return;
  }
  if (metric.dataPointType === DataPointType.EXPONENTIAL_HISTOGRAM) return;
  for (const point of metric.dataPoints) {
    family.lines.push(`${name}${labelText(point.attributes)} ${formatSampleValue(point.value)}`);
  }
}

export interface SerializedMetrics {
  readonly text: string;
  /** OpenTelemetry names that could not be written (exponential histograms, type clashes). */
  readonly skipped: readonly string[];
}

/**
 * Writes every metric of `resourceMetrics` as Prometheus text, plus `target_info` carrying the
 * resource attributes (as the Collector's exporter does) for joins on service and pod.
 */
export function serializePrometheus(resourceMetrics: ResourceMetrics): SerializedMetrics {
  const families = new Map<string, Family>();
  const skipped: string[] = [];
  for (const scopeMetrics of resourceMetrics.scopeMetrics) {
    for (const metric of scopeMetrics.metrics) {
      if (metric.dataPoints.length > 0) appendMetric(families, metric, skipped);
    }
  }
  const out: string[] = [];
  const resourceAttributes = resourceMetrics.resource.attributes;
  if (Object.keys(resourceAttributes).length > 0) {
    out.push(
      '# HELP target_info Target metadata',
      '# TYPE target_info gauge',
      `target_info${labelText(resourceAttributes)} 1`,
    );
  }
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    out.push(
      `# HELP ${family.name} ${escapeHelp(family.help)}`,
      `# TYPE ${family.name} ${family.type}`,
      ...family.lines,
    );
  }
  return { text: out.length === 0 ? '' : `${out.join('\n')}\n`, skipped };
}
