import { prometheusUnitWord } from './naming.ts';

/**
 * The two text formats /metrics speaks, and the pieces both serializers (exposition.ts for the
 * catalogs, prometheus-serializer.ts for SDK data) write them with.
 *
 * - Prometheus text 0.0.4: what every scraper understands, and what `promtool check metrics` lints.
 * - OpenMetrics 1.0: what Prometheus 3 asks for first. It differs in the family lines: a counter's
 *   family drops `_total` (its sample keeps it), `# UNIT` names the unit when the family name ends
 *   in it, `target_info` is an `info` family, HELP escapes `"` too, `le` values are canonical floats
 *   (`1.0`), and the exposition ends with `# EOF`.
 */
export type ExpositionFormat = 'text' | 'openmetrics';

export const CONTENT_TYPES: Readonly<Record<ExpositionFormat, string>> = {
  text: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

export type FamilyType = 'counter' | 'gauge' | 'histogram';

export const OPENMETRICS_EOF = '# EOF\n';

/** What /metrics serves when `OTEL_SDK_DISABLED=true`: a valid, empty exposition that says why. */
export const SDK_DISABLED_EXPOSITION =
  '# OpenTelemetry SDK disabled by OTEL_SDK_DISABLED=true: no metrics are recorded.\n';

export function escapeLabelValue(value: string): string {
  if (!/[\\\n"]/.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string, format: ExpositionFormat): string {
  const escaped = text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return format === 'openmetrics' ? escaped.replace(/"/g, '\\"') : escaped;
}

export function formatSampleValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** A bucket boundary as the `le` label value: `1` in text 0.0.4, the canonical `1.0` in OpenMetrics. */
export function formatLe(boundary: number, format: ExpositionFormat): string {
  const text = formatSampleValue(boundary);
  return format === 'openmetrics' && /^-?\d+$/.test(text) ? `${text}.0` : text;
}

/** `name="value",...` for label pairs already in their final order, without braces. */
export function labelPairs(pairs: ReadonlyArray<readonly [string, string]>): string {
  let text = '';
  for (const [name, value] of pairs) {
    text += `${text === '' ? '' : ','}${name}="${escapeLabelValue(value)}"`;
  }
  return text;
}

/** `{pairs}` or nothing, with `extra` (e.g. `le="1"`) last. */
export function braces(pairs: string, extra?: string): string {
  const all = extra === undefined ? pairs : pairs === '' ? extra : `${pairs},${extra}`;
  return all === '' ? '' : `{${all}}`;
}

/**
 * The family lines (HELP, TYPE and, in OpenMetrics, UNIT) of a metric whose samples are named
 * `sampleName` (`x_total` for a counter, `x` otherwise; histograms add `_bucket` etc. themselves).
 */
export function familyHeader(
  sampleName: string,
  type: FamilyType,
  help: string,
  unit: string,
  format: ExpositionFormat,
): string {
  if (format === 'text') {
    return `# HELP ${sampleName} ${escapeHelp(help, format)}\n# TYPE ${sampleName} ${type}\n`;
  }
  const family = type === 'counter' ? sampleName.replace(/_total$/, '') : sampleName;
  const word = prometheusUnitWord(unit);
  const unitLine = word !== '' && family.endsWith(`_${word}`) ? `# UNIT ${family} ${word}\n` : '';
  return `# HELP ${family} ${escapeHelp(help, format)}\n# TYPE ${family} ${type}\n${unitLine}`;
}

/** `target_info`, carrying the resource attributes (as the Collector's exporter writes it). */
export function targetInfo(pairs: string, format: ExpositionFormat): string {
  const header =
    format === 'text'
      ? '# HELP target_info Target metadata\n# TYPE target_info gauge\n'
      : '# HELP target Target metadata\n# TYPE target info\n';
  return `${header}target_info${braces(pairs)} 1\n`;
}
