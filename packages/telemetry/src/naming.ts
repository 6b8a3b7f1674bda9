/**
 * OpenTelemetry -> Prometheus name translation, as the OpenTelemetry specification's Prometheus
 * compatibility rules define it and prometheus/otlptranslator implements it with the strategy an
 * OpenTelemetry Collector's Prometheus exporter uses by default (UnderscoreEscapingWithSuffixes).
 *
 * The pull path (our /metrics serializer) names every metric with these functions, so a metric
 * scraped from a worker and the same metric pushed over OTLP into a Collector and exposed by its
 * Prometheus exporter carry the same name and label keys. `test/naming-interop.test.ts` checks
 * these functions against the real Go otlptranslator.
 */

/** The metric shapes that decide suffixes (otlptranslator's MetricType). */
export type PrometheusMetricShape =
  | 'monotonic_counter'
  | 'non_monotonic_counter'
  | 'gauge'
  | 'histogram'
  | 'exponential_histogram'
  | 'summary';

const MAIN_UNIT_WORDS: Readonly<Record<string, string>> = {
  d: 'days',
  h: 'hours',
  min: 'minutes',
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  ns: 'nanoseconds',
  By: 'bytes',
  KiBy: 'kibibytes',
  MiBy: 'mebibytes',
  GiBy: 'gibibytes',
  TiBy: 'tebibytes',
  KBy: 'kilobytes',
  MBy: 'megabytes',
  GBy: 'gigabytes',
  TBy: 'terabytes',
  m: 'meters',
  V: 'volts',
  A: 'amperes',
  J: 'joules',
  W: 'watts',
  g: 'grams',
  Cel: 'celsius',
  Hz: 'hertz',
  '1': '',
  '%': 'percent',
};

const PER_UNIT_WORDS: Readonly<Record<string, string>> = {
  s: 'second',
  m: 'minute',
  h: 'hour',
  d: 'day',
  w: 'week',
  mo: 'month',
  y: 'year',
};

const INVALID_METRIC_CHAR = /[^a-zA-Z0-9:]/;
const INVALID_LABEL_CHAR = /[^a-zA-Z0-9_]/g;

function isDigit(char: string | undefined): boolean {
  return char !== undefined && char >= '0' && char <= '9';
}

/** Splits on every character that is not [a-zA-Z0-9:], dropping empty tokens (so `__` collapses). */
function tokens(text: string): string[] {
  return text.split(INVALID_METRIC_CHAR).filter((token) => token !== '');
}

/** Invalid characters become `_`, runs of `_` collapse, one leading `_` goes (as otlptranslator). */
function cleanUpUnit(unit: string): string {
  return unit
    .replace(/[^a-zA-Z0-9:]/g, '_')
    .replace(/__+/g, '_')
    .replace(/^_/, '');
}

function unitSuffixes(unit: string): { main: string; per: string } {
  const [mainPart = '', perPart] = unit.split(/\/(.*)/s, 2);
  let main = '';
  const mainUnit = mainPart.trim();
  if (mainUnit !== '' && !/[{}]/.test(mainUnit)) main = MAIN_UNIT_WORDS[mainUnit] ?? mainUnit;
  let per = '';
  if (perPart !== undefined && perPart !== '') {
    const perUnit = perPart.trim();
    if (perUnit !== '' && !/[{}]/.test(perUnit)) per = PER_UNIT_WORDS[perUnit] ?? perUnit;
    if (per !== '') per = `per_${per}`;
  }
  return { main: cleanUpUnit(main), per: cleanUpUnit(per) };
}

/**
 * The Prometheus metric family name for an OpenTelemetry metric: invalid characters split the name
 * into tokens, the unit's word is appended unless already a token, `_total` is appended to
 * monotonic counters (any `total` token moves to the end), `_ratio` to gauges of unit `1`, and
 * units written as `{annotation}` add nothing.
 */
export function prometheusMetricName(otelName: string, unit: string, shape: PrometheusMetricShape): string {
  let nameTokens = tokens(otelName);
  let { main, per } = unitSuffixes(unit);
  if (nameTokens.includes(main)) main = '';
  if (per === 'per_') per = '';
  else {
    per = per.replace(/_$/, '');
    if (nameTokens.includes(per)) per = '';
  }
  if (per !== '') main = main.replace(/_$/, '');
  if (main !== '') nameTokens.push(main);
  if (per !== '') nameTokens.push(per);
  if (shape === 'monotonic_counter') {
    nameTokens = nameTokens.filter((token) => token !== 'total');
    nameTokens.push('total');
  }
  if (unit === '1' && shape === 'gauge') {
    nameTokens = nameTokens.filter((token) => token !== 'ratio');
    nameTokens.push('ratio');
  }
  const name = nameTokens.join('_');
  return isDigit(name[0]) ? `_${name}` : name;
}

/**
 * The Prometheus label name for an OpenTelemetry attribute key: invalid characters become `_`, a
 * leading digit gets `key_`, a single leading underscore gets `key` (`__` names are reserved and
 * kept).
 */
export function prometheusLabelName(attributeKey: string): string {
  if (attributeKey === '') return attributeKey;
  const sanitized = attributeKey.replace(INVALID_LABEL_CHAR, '_');
  if (isDigit(sanitized[0])) return `key_${sanitized}`;
  if (sanitized.startsWith('_') && !sanitized.startsWith('__')) return `key${sanitized}`;
  return sanitized;
}

/** The Prometheus word a unit adds to a name ('' for `1`, annotations and unknown-empty units). */
export function prometheusUnitWord(unit: string): string {
  return unitSuffixes(unit).main;
}
