import type { Attributes, AttributeValue } from '@opentelemetry/api';
import {
  DataPointType,
  type Histogram,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  braces,
  type ExpositionFormat,
  type FamilyType,
  familyHeader,
  formatLe,
  formatSampleValue,
  labelPairs,
  OPENMETRICS_EOF,
  targetInfo,
} from './exposition-format.ts';
import { type PrometheusMetricShape, prometheusLabelName, prometheusMetricName } from './naming.ts';

/**
 * Prometheus text (0.0.4 or OpenMetrics 1.0) of metrics collected by the OpenTelemetry SDK, named
 * by the same rules as the catalogs (naming.ts) and the Collector's Prometheus exporter.
 *
 * The catalogs never pass through here: exposition.ts writes them from shared-memory snapshots with
 * line prefixes built once. This serializer covers what the SDK itself collects on the telemetry
 * thread (instruments created through `@opentelemetry/api` by libraries), so that nothing recorded
 * into the process's MeterProvider is left off /metrics.
 *
 * Deliberately left out: the `otel_scope_name`/`otel_scope_version` labels on every line
 * (docs/telemetry.md).
 */

interface Family {
  readonly name: string;
  readonly type: FamilyType;
  readonly help: string;
  readonly unit: string;
  readonly lines: string[];
}

/** Why a metric was left out of the exposition; a closed set, counted by the telemetry catalog. */
export type SkipReason = 'exponential_histogram' | 'name_clash';

export interface SkippedMetric {
  readonly name: string;
  readonly reason: SkipReason;
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

function attributeText(value: AttributeValue | undefined): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return JSON.stringify(value);
  return String(value);
}

/** Label pairs of an attribute set, sorted by label name, escaped, without braces. */
export function attributePairs(attributes: Attributes): string {
  const pairs: Array<[string, string]> = [];
  for (const key of Object.keys(attributes)) {
    const value = attributes[key];
    if (value !== undefined) pairs.push([prometheusLabelName(key), attributeText(value)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return labelPairs(pairs);
}

function histogramLines(
  name: string,
  pairs: string,
  histogram: Histogram,
  format: ExpositionFormat,
  lines: string[],
): void {
  const { boundaries, counts } = histogram.buckets;
  let cumulative = 0;
  for (let i = 0; i < boundaries.length; i++) {
    cumulative += counts[i] ?? 0;
    lines.push(
      `${name}_bucket${braces(pairs, `le="${formatLe(boundaries[i] as number, format)}"`)} ${cumulative}`,
    );
  }
  lines.push(`${name}_bucket${braces(pairs, 'le="+Inf"')} ${histogram.count}`);
  lines.push(`${name}_sum${braces(pairs)} ${formatSampleValue(histogram.sum ?? 0)}`);
  lines.push(`${name}_count${braces(pairs)} ${histogram.count}`);
}

function appendMetric(
  families: Map<string, Family>,
  metric: MetricData,
  format: ExpositionFormat,
  taken: ReadonlySet<string>,
  skipped: SkippedMetric[],
): void {
  const shape = shapeOf(metric);
  if (shape === 'exponential_histogram') {
    // Text formats without native histograms cannot express them; Switchyard never creates one.
    skipped.push({ name: metric.descriptor.name, reason: 'exponential_histogram' });
    return;
  }
  const name = prometheusMetricName(metric.descriptor.name, metric.descriptor.unit, shape);
  const type = shape === 'monotonic_counter' ? 'counter' : shape === 'histogram' ? 'histogram' : 'gauge';
  let family = families.get(name);
  if (taken.has(name) || (family !== undefined && family.type !== type)) {
    skipped.push({ name: metric.descriptor.name, reason: 'name_clash' });
    return;
  }
  if (family === undefined) {
    family = { name, type, help: metric.descriptor.description, unit: metric.descriptor.unit, lines: [] };
    families.set(name, family);
  }
  if (metric.dataPointType === DataPointType.HISTOGRAM) {
    for (const point of metric.dataPoints) {
      histogramLines(name, attributePairs(point.attributes), point.value, format, family.lines);
    }
    return;
  }
  if (metric.dataPointType === DataPointType.EXPONENTIAL_HISTOGRAM) return;
  for (const point of metric.dataPoints) {
    family.lines.push(`${name}${braces(attributePairs(point.attributes))} ${formatSampleValue(point.value)}`);
  }
}

export interface SerializeOptions {
  readonly format?: ExpositionFormat;
  /** Write `target_info` from the resource (default true). */
  readonly targetInfo?: boolean;
  /** End with `# EOF` in OpenMetrics (default true; false when more families follow). */
  readonly terminate?: boolean;
  /** Prometheus family names already written elsewhere: a metric that would repeat one is skipped. */
  readonly taken?: ReadonlySet<string>;
}

export interface SerializedMetrics {
  readonly text: string;
  /** Metrics that could not be written, and why. */
  readonly skipped: readonly SkippedMetric[];
}

/** Writes every metric of `resourceMetrics`, families sorted by name, plus `target_info`. */
export function serializePrometheus(
  resourceMetrics: ResourceMetrics,
  options: SerializeOptions = {},
): SerializedMetrics {
  const format = options.format ?? 'text';
  const families = new Map<string, Family>();
  const skipped: SkippedMetric[] = [];
  const taken = options.taken ?? new Set<string>();
  for (const scopeMetrics of resourceMetrics.scopeMetrics) {
    for (const metric of scopeMetrics.metrics) {
      if (metric.dataPoints.length > 0) appendMetric(families, metric, format, taken, skipped);
    }
  }
  let text = '';
  const resourceAttributes = resourceMetrics.resource.attributes;
  if (options.targetInfo !== false && Object.keys(resourceAttributes).length > 0) {
    text += targetInfo(attributePairs(resourceAttributes), format);
  }
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    text += familyHeader(family.name, family.type, family.help, family.unit, format);
    text += `${family.lines.join('\n')}\n`;
  }
  if (format === 'openmetrics' && options.terminate !== false) text += OPENMETRICS_EOF;
  return { text, skipped };
}
