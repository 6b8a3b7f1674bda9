/**
 * The shapes of decoded OTLP messages, exactly as the loader options in load.ts produce them:
 * camelCase field names, 64-bit integers as decimal strings, enums as their names, every
 * non-oneof field present (proto3 defaults filled in, absent sub-messages as `null`), and each
 * oneof named by a virtual field (`value: 'asInt'`, `data: 'sum'`).
 */

/**
 * A 64-bit integer (fixed64, sfixed64, int64, uint64) as a decimal string. A JS number silently
 * rounds above 2^53, which would corrupt nanosecond timestamps and uint64 counts.
 */
export type Int64 = string;

/**
 * An enum the sender set to a number this proto does not name decodes as that number, so every
 * enum field is typed as its names or a number.
 */
type OpenEnum<Name extends string> = Name | number;

export type AnyValueKind =
  | 'stringValue'
  | 'boolValue'
  | 'intValue'
  | 'doubleValue'
  | 'arrayValue'
  | 'kvlistValue'
  | 'bytesValue'
  | 'stringValueStrindex';

export interface AnyValue {
  /** The member of the `value` oneof that is set; absent for an empty AnyValue. */
  value?: AnyValueKind;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Int64;
  doubleValue?: number;
  arrayValue?: ArrayValue;
  kvlistValue?: KeyValueList;
  bytesValue?: Buffer;
  stringValueStrindex?: number;
}

export interface ArrayValue {
  values: AnyValue[];
}

export interface KeyValueList {
  values: KeyValue[];
}

export interface KeyValue {
  key: string;
  value: AnyValue | null;
  keyStrindex: number;
}

export interface InstrumentationScope {
  name: string;
  version: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
}

export interface EntityRef {
  schemaUrl: string;
  type: string;
  idKeys: string[];
  descriptionKeys: string[];
}

export interface Resource {
  attributes: KeyValue[];
  droppedAttributesCount: number;
  entityRefs: EntityRef[];
}

export type AggregationTemporality = OpenEnum<
  | 'AGGREGATION_TEMPORALITY_UNSPECIFIED'
  | 'AGGREGATION_TEMPORALITY_DELTA'
  | 'AGGREGATION_TEMPORALITY_CUMULATIVE'
>;

export interface Exemplar {
  filteredAttributes: KeyValue[];
  timeUnixNano: Int64;
  value?: 'asDouble' | 'asInt';
  asDouble?: number;
  asInt?: Int64;
  spanId: Buffer;
  traceId: Buffer;
}

export interface NumberDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: Int64;
  timeUnixNano: Int64;
  value?: 'asDouble' | 'asInt';
  asDouble?: number;
  asInt?: Int64;
  exemplars: Exemplar[];
  flags: number;
}

/**
 * `sum`, `min` and `max` are proto3 `optional`: absent unless the sender set them. The decoder
 * also adds `_sum` / `_min` / `_max` naming the set field; they carry nothing new.
 */
export interface HistogramDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: Int64;
  timeUnixNano: Int64;
  count: Int64;
  sum?: number;
  bucketCounts: Int64[];
  explicitBounds: number[];
  exemplars: Exemplar[];
  flags: number;
  min?: number;
  max?: number;
}

export interface ExponentialHistogramBuckets {
  offset: number;
  bucketCounts: Int64[];
}

export interface ExponentialHistogramDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: Int64;
  timeUnixNano: Int64;
  count: Int64;
  sum?: number;
  scale: number;
  zeroCount: Int64;
  positive: ExponentialHistogramBuckets | null;
  negative: ExponentialHistogramBuckets | null;
  flags: number;
  exemplars: Exemplar[];
  min?: number;
  max?: number;
  zeroThreshold: number;
}

export interface ValueAtQuantile {
  quantile: number;
  value: number;
}

export interface SummaryDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: Int64;
  timeUnixNano: Int64;
  count: Int64;
  sum: number;
  quantileValues: ValueAtQuantile[];
  flags: number;
}

export interface Gauge {
  dataPoints: NumberDataPoint[];
}

export interface Sum {
  dataPoints: NumberDataPoint[];
  aggregationTemporality: AggregationTemporality;
  isMonotonic: boolean;
}

export interface Histogram {
  dataPoints: HistogramDataPoint[];
  aggregationTemporality: AggregationTemporality;
}

export interface ExponentialHistogram {
  dataPoints: ExponentialHistogramDataPoint[];
  aggregationTemporality: AggregationTemporality;
}

export interface Summary {
  dataPoints: SummaryDataPoint[];
}

export interface Metric {
  name: string;
  description: string;
  unit: string;
  /** The member of the `data` oneof that is set. */
  data?: 'gauge' | 'sum' | 'histogram' | 'exponentialHistogram' | 'summary';
  gauge?: Gauge;
  sum?: Sum;
  histogram?: Histogram;
  exponentialHistogram?: ExponentialHistogram;
  summary?: Summary;
  metadata: KeyValue[];
}

export interface ScopeMetrics {
  scope: InstrumentationScope | null;
  metrics: Metric[];
  schemaUrl: string;
}

export interface ResourceMetrics {
  resource: Resource | null;
  scopeMetrics: ScopeMetrics[];
  schemaUrl: string;
}

export interface MetricsData {
  resourceMetrics: ResourceMetrics[];
}

export interface ExportMetricsServiceRequest {
  resourceMetrics: ResourceMetrics[];
}

export interface ExportMetricsPartialSuccess {
  rejectedDataPoints: Int64;
  errorMessage: string;
}

export interface ExportMetricsServiceResponse {
  partialSuccess: ExportMetricsPartialSuccess | null;
}

export type SeverityNumber = OpenEnum<
  | 'SEVERITY_NUMBER_UNSPECIFIED'
  | `SEVERITY_NUMBER_${'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL'}${'' | '2' | '3' | '4'}`
>;

export interface LogRecord {
  timeUnixNano: Int64;
  observedTimeUnixNano: Int64;
  severityNumber: SeverityNumber;
  severityText: string;
  body: AnyValue | null;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  /** The low byte holds the W3C trace flags. */
  flags: number;
  traceId: Buffer;
  spanId: Buffer;
  eventName: string;
}

export interface ScopeLogs {
  scope: InstrumentationScope | null;
  logRecords: LogRecord[];
  schemaUrl: string;
}

export interface ResourceLogs {
  resource: Resource | null;
  scopeLogs: ScopeLogs[];
  schemaUrl: string;
}

export interface LogsData {
  resourceLogs: ResourceLogs[];
}

export interface ExportLogsServiceRequest {
  resourceLogs: ResourceLogs[];
}

export interface ExportLogsPartialSuccess {
  rejectedLogRecords: Int64;
  errorMessage: string;
}

export interface ExportLogsServiceResponse {
  partialSuccess: ExportLogsPartialSuccess | null;
}

/**
 * What an encoder accepts for a message of shape T: every field optional, bytes as any
 * Uint8Array, and 64-bit integers and enums also as numbers.
 */
export type OtlpInput<T> = T extends Uint8Array
  ? Uint8Array
  : T extends readonly (infer Element)[]
    ? readonly OtlpInput<Element>[]
    : T extends object
      ? { readonly [K in keyof T]?: OtlpInput<T[K]> }
      : T extends string
        ? T | number
        : T;
