import { OTHER_VALUE, type ResolvedInstrument } from './catalog.ts';

/** One part of docs/metrics.md: a catalog's instruments under a heading. */
export interface ReferenceSection {
  readonly title: string;
  readonly intro: string;
  readonly instruments: readonly ResolvedInstrument[];
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function labelsOf(instrument: ResolvedInstrument): string {
  if (instrument.attributes.length === 0) return '—';
  return instrument.attributes
    .map((attribute) => {
      if (attribute.configured) {
        return `\`${attribute.labelName}\`: configured names (at most ${instrument.configuredLimit} combinations, + \`${OTHER_VALUE}\`)`;
      }
      const values = attribute.values.map((value) => `\`${value}\``).join(', ');
      const other = attribute.values.includes(OTHER_VALUE) ? '' : ` (+ \`${OTHER_VALUE}\`)`;
      return `\`${attribute.labelName}\`: ${values}${other}`;
    })
    .join('<br>');
}

/** The instruments of a catalog that carry the same configured attributes, and what one name of them adds. */
interface SeriesGroup {
  /** Label names of the configured attributes (`pool`, `upstream`); empty for the fixed part. */
  readonly configured: readonly string[];
  /** Series that exist from the start, per instrument key. */
  readonly fromStart: Array<[key: string, series: number]>;
  /** Histogram series, which appear with their first observation, per instrument key. */
  readonly histograms: Array<[key: string, series: number, buckets: number]>;
  /** Most series, with `other` recorded for every declared attribute. */
  most: number;
}

/** Prometheus series per observed attribute set: one per boundary, `+Inf`, `_sum` and `_count`. */
function seriesPerObservation(instrument: ResolvedInstrument): number {
  return instrument.kind === 'histogram' ? (instrument.buckets?.length ?? 0) + 3 : 1;
}

/**
 * What each configured name adds, from `seriesPerCombination`: instruments grouped by the configured
 * attributes they carry. Counters and gauges start every declared value at zero; the implicit
 * `other` appears only when a value outside the set is recorded.
 */
function seriesGroups(instruments: readonly ResolvedInstrument[]): SeriesGroup[] {
  const groups = new Map<string, SeriesGroup>();
  for (const instrument of instruments) {
    const configured = instrument.attributes
      .filter((attribute) => attribute.configured)
      .map((attribute) => attribute.labelName);
    const id = configured.join(',');
    let group = groups.get(id);
    if (group === undefined) {
      group = { configured, fromStart: [], histograms: [], most: 0 };
      groups.set(id, group);
    }
    const declared = instrument.attributes.reduce(
      (product, attribute) => (attribute.configured ? product : product * attribute.values.length),
      1,
    );
    const perObservation = seriesPerObservation(instrument);
    if (instrument.kind === 'histogram') {
      group.histograms.push([instrument.key, declared * perObservation, instrument.buckets?.length ?? 0]);
    } else {
      group.fromStart.push([instrument.key, declared]);
    }
    group.most += instrument.seriesPerCombination * perObservation;
  }
  // Most specific first (upstream before pool), the fixed part last.
  return [...groups.values()].sort((a, b) => (b.configured.length || -1) - (a.configured.length || -1));
}

function total(parts: ReadonlyArray<readonly [string, number, ...unknown[]]>): number {
  return parts.reduce((sum, [, series]) => sum + series, 0);
}

function sizingRow(group: SeriesGroup): string {
  const noun = group.configured.at(-1);
  const each =
    noun === undefined
      ? 'the process (no configured label)'
      : `${noun} (${group.configured.map((label) => `\`${label}\``).join(', ')})`;
  const series: string[] = [];
  const parts: string[] = [];
  if (group.fromStart.length > 0) {
    series.push(`${total(group.fromStart)} from the start`);
    parts.push(...group.fromStart.map(([key, count]) => `${key} ${count}`));
  }
  if (group.histograms.length > 0) {
    series.push(`${total(group.histograms)} from the first observation`);
    parts.push(
      ...group.histograms.map(
        ([key, count, buckets]) =>
          `${key} ${count} (histogram: ${buckets} buckets, \`+Inf\`, \`_sum\`, \`_count\`)`,
      ),
    );
  }
  return `| ${each} | ${series.join(' + ')} | ${parts.join(', ')} | ${group.most} |`;
}

/** The sizing table of a catalog with configured attributes; nothing for one without. */
function sizing(instruments: readonly ResolvedInstrument[]): string[] {
  const groups = seriesGroups(instruments);
  if (!groups.some((group) => group.configured.length > 0)) return [];
  const terms = groups.map((group) => {
    const series = total(group.fromStart) + total(group.histograms);
    const noun = group.configured.at(-1);
    return noun === undefined ? `${series}` : `${series} per ${noun}`;
  });
  return [
    'Series each configured name adds, to size Prometheus by. Counters and gauges start at zero when the name is configured; histogram series appear with their first observation, so a name that has seen none has none yet. A name removed by a reload keeps its series until the process restarts.',
    '',
    '| Each | Series | Of them | At most, with `other` |',
    '|---|---|---|---|',
    ...groups.map(sizingRow),
    '',
    `In all: ${terms.join(' + ')}, once every histogram has observations.`,
    '',
  ];
}

function section(part: ReferenceSection): string[] {
  const lines = [`## ${part.title}`, '', part.intro, ''];
  lines.push('| Prometheus name | OpenTelemetry name | Type | Unit | Labels and values | Description |');
  lines.push('|---|---|---|---|---|---|');
  for (const instrument of part.instruments) {
    lines.push(
      `| \`${instrument.prometheusName}\` | \`${instrument.otelName}\` | ${instrument.prometheusType} | \`${instrument.unit}\` | ${labelsOf(instrument)} | ${cell(instrument.description)} |`,
    );
  }
  lines.push('', ...sizing(part.instruments));
  const attributeNotes = part.instruments.flatMap((instrument) =>
    instrument.attributes.map(
      (attribute) =>
        `- \`${instrument.prometheusName}\` \`${attribute.labelName}\`: ${cell(attribute.description)}`,
    ),
  );
  if (attributeNotes.length > 0) lines.push('Label meanings:', '', ...attributeNotes, '');
  return lines;
}

/**
 * Renders docs/metrics.md: every instrument of every catalog with its Prometheus and OpenTelemetry
 * names, type, unit, labels with their closed value sets, and description; then the process metrics
 * recorded by upstream packages. Deterministic, so a test can compare it with the committed file.
 */
export function renderMetricsReference(sections: readonly ReferenceSection[]): string {
  const lines = [
    '# Metrics reference',
    '',
    '<!-- Generated by `npm run docs:metrics` from the catalogs. Do not edit by hand: a test fails when it is stale. -->',
    '',
    "Every name below reads the same on both paths: scraped from a worker's `/metrics`, or pushed over",
    'OTLP into an OpenTelemetry Collector whose Prometheus exporter runs with default settings',
    '(docs/naming.md). Counters are exported from the start at zero for every value of their labels;',
    'histograms appear with their first observation. A label value outside its set is recorded as',
    '`other`. Every worker also exposes `target_info` with its resource attributes.',
    '',
  ];
  for (const part of sections) lines.push(...section(part));
  lines.push('');
  return lines.join('\n');
}
