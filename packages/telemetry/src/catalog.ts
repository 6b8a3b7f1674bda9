import { CatalogRuleError } from './errors.ts';
import { type PrometheusMetricShape, prometheusLabelName, prometheusMetricName } from './naming.ts';

/**
 * A worker declares every instrument it records in one catalog. `defineCatalog` checks each entry
 * against the naming rules of docs/naming.md (rule ids N1..N11 appear in error messages) and
 * resolves the names a user sees, so that a bad entry fails at startup, not on a dashboard.
 */

/** How an instrument is recorded, and so how it is exported. */
export type InstrumentKind =
  /** Monotonic count, read from plain fields at collection time. Prometheus `counter`, `_total`. */
  | 'counter'
  /** A count that goes up and down (open connections). Prometheus `gauge`. */
  | 'updown_counter'
  /** A value set from time to time (a 0/1 state, a size). Prometheus `gauge`. */
  | 'gauge'
  /** A distribution (durations, sizes). Prometheus `histogram`. */
  | 'histogram';

export interface AttributeDeclaration {
  readonly description: string;
  /**
   * The closed set of values. A value outside it is recorded as `other`; list `other` here too
   * when its series should exist from the start.
   */
  readonly values?: readonly string[];
  /**
   * The values are names from the worker's config (pool, upstream, listener names), registered
   * at run time with `family.register(...)`; bounded by the catalog's `configuredLimit`. Never
   * addresses or keys.
   */
  readonly configured?: true;
}

export interface InstrumentDeclaration {
  readonly kind: InstrumentKind;
  /** UCUM: `s`, `By`, `1`, or an annotation such as `{connection}` (rule N4). */
  readonly unit: string;
  readonly description: string;
  readonly attributes?: Readonly<Record<string, AttributeDeclaration>>;
  /** Histogram bucket boundaries in the instrument's unit. Default: a ladder that fits the unit. */
  readonly buckets?: readonly number[];
}

export interface CatalogDeclaration {
  /**
   * The OpenTelemetry namespace of every instrument, `switchyard.<component>` (rule N1).
   * `semanticConventions: true` catalogs (HTTP server, process and runtime metrics) use the
   * OpenTelemetry semantic convention names instead: they skip N1, and N6's name rule for gauges of
   * unit `1` (`process.cpu.utilization` is named by the spec).
   */
  readonly namespace: string;
  readonly semanticConventions?: boolean;
  /**
   * Most combinations of configured attribute values (e.g. pool x upstream pairs) one instrument
   * may register (rule N11). Default 256, at most 100,000. The worker's config validation keeps
   * within it.
   */
  readonly configuredLimit?: number;
  readonly instruments: Readonly<Record<string, InstrumentDeclaration>>;
}

export interface ResolvedAttribute {
  readonly key: string;
  readonly labelName: string;
  readonly description: string;
  /** Declared values (empty when configured); `other` is the implicit bucket for anything else. */
  readonly values: readonly string[];
  /** Values are configured names registered at run time. */
  readonly configured: boolean;
}

export interface ResolvedInstrument {
  /** The key in the catalog declaration (`connection.duration`). */
  readonly key: string;
  readonly otelName: string;
  readonly kind: InstrumentKind;
  readonly unit: string;
  readonly description: string;
  readonly attributes: readonly ResolvedAttribute[];
  readonly buckets: readonly number[] | undefined;
  /** Prometheus family name on both the pull and the push path. */
  readonly prometheusName: string;
  readonly prometheusType: 'counter' | 'gauge' | 'histogram';
  /** Most series this instrument can have: product of (declared values + `other`), times the configured limit. */
  readonly maxSeries: number;
  /** Series per configured combination (or in all, without configured attributes): product of (declared values + `other`). */
  readonly seriesPerCombination: number;
  /** Most registered combinations of configured values (0 without configured attributes). */
  readonly configuredLimit: number;
}

export interface Catalog<D extends CatalogDeclaration = CatalogDeclaration> {
  readonly declaration: D;
  readonly namespace: string;
  readonly instruments: readonly ResolvedInstrument[];
}

export const OTHER_VALUE = 'other';
export const DEFAULT_CONFIGURED_LIMIT = 256;

const SEGMENT = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const ATTRIBUTE_KEY = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;
const ANNOTATION_UNIT = /^\{[a-z][a-z_]*\}$/;
const PLAIN_UNITS = new Set(['s', 'By', '1']);
const TIME_WORDS = new Set([
  's',
  'sec',
  'secs',
  'second',
  'seconds',
  'ms',
  'msec',
  'millis',
  'millisecond',
  'milliseconds',
  'us',
  'micros',
  'microseconds',
  'ns',
  'nanos',
  'nanoseconds',
  'minute',
  'minutes',
  'hour',
  'hours',
]);
const BYTE_WORDS_NEVER = new Set([
  'kb',
  'mb',
  'gb',
  'kib',
  'mib',
  'gib',
  'kilobytes',
  'megabytes',
  'gigabytes',
  'kibibytes',
  'mebibytes',
  'gibibytes',
]);
const RESERVED_LAST_TOKENS = new Set(['count', 'sum', 'bucket', 'info', 'created']);
const RESERVED_LABELS = new Set(['le', 'quantile', 'job', 'instance', 'otel_metric_overflow']);
const MAX_VALUES_PER_ATTRIBUTE = 64;
const MAX_VALUE_LENGTH = 64;
/**
 * Rule N11: past this many series per configured combination (or in all, for an instrument without
 * configured attributes), the declared value sets are too many to pre-initialise and to chart.
 */
export const MAX_SERIES_PER_INSTRUMENT = 2000;
/**
 * Rule N11: most configured combinations a catalog may admit. Configured names come from the
 * operator's config (10,000 upstreams is a big proxy), never from traffic; the bound keeps a typo in
 * a generated config from turning into millions of series.
 */
export const MAX_CONFIGURED_LIMIT = 100_000;

/** Boundaries in seconds, from 0.5 ms to an hour: proxied connections can last that long. */
export const SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
]);
/** Boundaries in bytes, powers of four from 64 B to 16 MiB. */
export const BYTES_BUCKETS: readonly number[] = Object.freeze([
  64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
]);
/** Boundaries for counts of things (batch sizes, queue depths). */
export const COUNT_BUCKETS: readonly number[] = Object.freeze([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);

function defaultBuckets(unit: string): readonly number[] {
  if (unit === 's') return SECONDS_BUCKETS;
  if (unit === 'By') return BYTES_BUCKETS;
  return COUNT_BUCKETS;
}

function shapeOf(kind: InstrumentKind): PrometheusMetricShape {
  switch (kind) {
    case 'counter':
      return 'monotonic_counter';
    case 'updown_counter':
      return 'non_monotonic_counter';
    case 'gauge':
      return 'gauge';
    case 'histogram':
      return 'histogram';
  }
}

function prometheusTypeOf(kind: InstrumentKind): ResolvedInstrument['prometheusType'] {
  if (kind === 'counter') return 'counter';
  if (kind === 'histogram') return 'histogram';
  return 'gauge';
}

function checkNamespace(declaration: CatalogDeclaration): void {
  if (declaration.semanticConventions) return;
  const parts = declaration.namespace.split('.');
  if (parts.length !== 2 || parts[0] !== 'switchyard' || !SEGMENT.test(parts[1] ?? '')) {
    throw new CatalogRuleError(
      declaration.namespace,
      'N1 (one namespace)',
      `the catalog namespace must be "switchyard.<component>" with a snake_case component, e.g. "switchyard.proxy"`,
    );
  }
}

function checkName(otelName: string, declared: InstrumentDeclaration): void {
  for (const segment of otelName.split('.')) {
    if (!SEGMENT.test(segment)) {
      throw new CatalogRuleError(
        otelName,
        'N2 (snake_case segments)',
        `segment "${segment}" must be lower snake_case ([a-z][a-z0-9]*, words joined by single "_"), segments joined by "."`,
      );
    }
  }
  const words = otelName.split(/[._]/);
  if (words.includes('total')) {
    throw new CatalogRuleError(
      otelName,
      'N3 (no total)',
      'drop "total" from the name: Prometheus names of counters get "_total" from the type, never from the name',
    );
  }
  const last = words.at(-1) ?? '';
  if (RESERVED_LAST_TOKENS.has(last)) {
    throw new CatalogRuleError(
      otelName,
      'N3 (no reserved suffix)',
      `a name must not end in "${last}": Prometheus uses _count, _sum, _bucket, _info and _created for series of their own`,
    );
  }
  for (const word of words) {
    if (TIME_WORDS.has(word)) {
      throw new CatalogRuleError(
        otelName,
        'N5 (no unit in the name)',
        `"${word}" is a unit: name the quantity (duration, wait, age) and put the unit in "unit" ("s")`,
      );
    }
    if (BYTE_WORDS_NEVER.has(word) || (word === 'bytes' && declared.unit !== 'By')) {
      throw new CatalogRuleError(
        otelName,
        'N5 (no unit in the name)',
        `"${word}" names a unit the instrument does not have (unit "${declared.unit}"); count bytes with unit "By"`,
      );
    }
    if (word === 'percent') {
      throw new CatalogRuleError(otelName, 'N5 (no unit in the name)', 'express a share as a ratio 0..1');
    }
  }
  if (words.includes('ratio') && !(declared.kind === 'gauge' && declared.unit === '1' && last === 'ratio')) {
    throw new CatalogRuleError(
      otelName,
      'N6 (ratios)',
      '"ratio" belongs only at the end of a gauge with unit "1"',
    );
  }
}

function checkUnit(otelName: string, declared: InstrumentDeclaration, semanticConventions: boolean): void {
  const { unit, kind } = declared;
  if (!PLAIN_UNITS.has(unit) && !ANNOTATION_UNIT.test(unit)) {
    throw new CatalogRuleError(
      otelName,
      'N4 (UCUM units)',
      `unit "${unit}" is not allowed: use "s" for durations (never ms), "By" for sizes, "1" for ratios, or an annotation such as "{connection}"`,
    );
  }
  // Semantic-convention names (process.cpu.utilization) are fixed by the spec; the Collector names
  // them ..._ratio from the unit, as naming.ts does.
  if (kind === 'gauge' && unit === '1' && !otelName.endsWith('ratio') && !semanticConventions) {
    throw new CatalogRuleError(
      otelName,
      'N6 (ratios)',
      'a gauge with unit "1" is named "..._ratio" by the Collector; a 0/1 state or a count takes an annotation unit such as "{upstream}", a true ratio ends its name in "ratio"',
    );
  }
}

function checkBuckets(otelName: string, declared: InstrumentDeclaration): readonly number[] | undefined {
  if (declared.kind !== 'histogram') {
    if (declared.buckets !== undefined) {
      throw new CatalogRuleError(otelName, 'N7 (buckets fit the unit)', 'only histograms take "buckets"');
    }
    return undefined;
  }
  const buckets = declared.buckets ?? defaultBuckets(declared.unit);
  if (buckets.length === 0) {
    throw new CatalogRuleError(
      otelName,
      'N7 (buckets fit the unit)',
      'a histogram needs at least one boundary',
    );
  }
  for (let i = 0; i < buckets.length; i++) {
    const boundary = buckets[i] as number;
    if (!Number.isFinite(boundary) || boundary <= 0 || (i > 0 && boundary <= (buckets[i - 1] as number))) {
      throw new CatalogRuleError(
        otelName,
        'N7 (buckets fit the unit)',
        `boundaries must be positive, finite and strictly increasing; got [${buckets.join(', ')}]`,
      );
    }
  }
  if (declared.unit === 's' && (buckets[0] as number) >= 1) {
    throw new CatalogRuleError(
      otelName,
      'N7 (buckets fit the unit)',
      `boundaries [${buckets.join(', ')}] look like milliseconds; this histogram records seconds (first boundary must be below 1)`,
    );
  }
  return Object.freeze([...buckets]);
}

function resolveAttributes(otelName: string, declared: InstrumentDeclaration): ResolvedAttribute[] {
  const resolved: ResolvedAttribute[] = [];
  const labelNames = new Set<string>();
  for (const [key, attribute] of Object.entries(declared.attributes ?? {})) {
    const labelName = prometheusLabelName(key);
    if (!ATTRIBUTE_KEY.test(key) || RESERVED_LABELS.has(labelName) || labelName.startsWith('otel_scope_')) {
      throw new CatalogRuleError(
        otelName,
        'N8 (attributes)',
        `attribute key "${key}" must be lower snake_case (dotted semantic-convention keys allowed) and must not be le, quantile, job, instance or otel_*`,
      );
    }
    if (labelNames.has(labelName)) {
      throw new CatalogRuleError(
        otelName,
        'N8 (attributes)',
        `two attribute keys become label "${labelName}"`,
      );
    }
    labelNames.add(labelName);
    if (attribute.configured === true) {
      if (attribute.values !== undefined) {
        throw new CatalogRuleError(
          otelName,
          'N9 (closed value sets)',
          `attribute "${key}" is configured: it takes no "values"`,
        );
      }
      resolved.push(
        Object.freeze({ key, labelName, description: attribute.description, values: [], configured: true }),
      );
      continue;
    }
    const values = attribute.values ?? [];
    const unique = new Set(values);
    const bad = values.find((value) => value === '' || value.length > MAX_VALUE_LENGTH);
    if (values.length === 0 || unique.size !== values.length || bad !== undefined) {
      throw new CatalogRuleError(
        otelName,
        'N9 (closed value sets)',
        `attribute "${key}" needs a non-empty list of distinct, non-empty values of at most ${MAX_VALUE_LENGTH} characters`,
      );
    }
    if (values.length > MAX_VALUES_PER_ATTRIBUTE) {
      throw new CatalogRuleError(
        otelName,
        'N9 (closed value sets)',
        `attribute "${key}" declares ${values.length} values; at most ${MAX_VALUES_PER_ATTRIBUTE} keep a label readable`,
      );
    }
    resolved.push(
      Object.freeze({
        key,
        labelName,
        description: attribute.description,
        values: Object.freeze([...values]),
        configured: false,
      }),
    );
  }
  return resolved;
}

function resolveInstrument(
  namespace: string,
  key: string,
  declared: InstrumentDeclaration,
  configuredLimit: number,
): ResolvedInstrument {
  const otelName = namespace === '' ? key : `${namespace}.${key}`;
  checkName(otelName, declared);
  checkUnit(otelName, declared, namespace === '');
  const buckets = checkBuckets(otelName, declared);
  if (declared.description.trim() === '') {
    throw new CatalogRuleError(otelName, 'N10 (documented)', 'every instrument needs a description');
  }
  const attributes = resolveAttributes(otelName, declared);
  const hasConfigured = attributes.some((attribute) => attribute.configured);
  // Configured combinations are registered as tuples (pool, upstream), plus one all-`other` tuple.
  const seriesPerCombination = attributes.reduce(
    (product, attribute) =>
      attribute.configured
        ? product
        : product * (attribute.values.length + (attribute.values.includes(OTHER_VALUE) ? 0 : 1)),
    1,
  );
  if (seriesPerCombination > MAX_SERIES_PER_INSTRUMENT) {
    throw new CatalogRuleError(
      otelName,
      'N11 (bounded cardinality)',
      `its declared attributes allow ${seriesPerCombination} series (values + "other", multiplied)${hasConfigured ? ' per configured combination' : ''}; at most ${MAX_SERIES_PER_INSTRUMENT}`,
    );
  }
  const maxSeries = seriesPerCombination * (hasConfigured ? configuredLimit + 1 : 1);
  return Object.freeze({
    key,
    otelName,
    kind: declared.kind,
    unit: declared.unit,
    description: declared.description,
    attributes: Object.freeze(attributes),
    buckets,
    prometheusName: prometheusMetricName(otelName, declared.unit, shapeOf(declared.kind)),
    prometheusType: prometheusTypeOf(declared.kind),
    maxSeries,
    seriesPerCombination,
    configuredLimit: hasConfigured ? configuredLimit : 0,
  });
}

/**
 * Validates a catalog declaration against the naming rules and resolves its names.
 * Throws `CatalogRuleError` naming the instrument and the rule it breaks.
 */
export function defineCatalog<const D extends CatalogDeclaration>(declaration: D): Catalog<D> {
  checkNamespace(declaration);
  const namespace = declaration.semanticConventions ? '' : declaration.namespace;
  const configuredLimit = declaration.configuredLimit ?? DEFAULT_CONFIGURED_LIMIT;
  if (!Number.isInteger(configuredLimit) || configuredLimit < 1 || configuredLimit > MAX_CONFIGURED_LIMIT) {
    throw new CatalogRuleError(
      declaration.namespace,
      'N11 (bounded cardinality)',
      `configuredLimit must be an integer from 1 to ${MAX_CONFIGURED_LIMIT}, got ${configuredLimit}`,
    );
  }
  const instruments = Object.entries(declaration.instruments).map(([key, declared]) =>
    resolveInstrument(namespace, key, declared, configuredLimit),
  );
  assertUniqueNames(instruments);
  return Object.freeze({
    declaration,
    namespace: declaration.namespace,
    instruments: Object.freeze(instruments),
  });
}

/**
 * Rule N12: no two instruments in one process share an OpenTelemetry or a Prometheus name
 * (`a.b` and `a_b` are different in OpenTelemetry and the same in Prometheus).
 */
export function assertUniqueNames(instruments: readonly ResolvedInstrument[]): void {
  const otelNames = new Set<string>();
  const prometheusNames = new Map<string, string>();
  for (const instrument of instruments) {
    if (otelNames.has(instrument.otelName)) {
      throw new CatalogRuleError(instrument.otelName, 'N12 (unique names)', 'declared twice');
    }
    otelNames.add(instrument.otelName);
    const clash = prometheusNames.get(instrument.prometheusName);
    if (clash !== undefined) {
      throw new CatalogRuleError(
        instrument.otelName,
        'N12 (unique names)',
        `its Prometheus name "${instrument.prometheusName}" is also the name of "${clash}"`,
      );
    }
    prometheusNames.set(instrument.prometheusName, instrument.otelName);
  }
}
