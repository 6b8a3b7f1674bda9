import { fileURLToPath } from 'node:url';
import { runTool } from './run-tool.ts';

/** `openmetrics` is OpenMetrics 1.0, `text` the Prometheus text format 0.0.4. */
export type ExpositionFormat = 'openmetrics' | 'text';

/** Metric types as Prometheus names them; a 0.0.4 `untyped` family reads as `unknown`. */
export type ParsedMetricType =
  | 'counter'
  | 'gauge'
  | 'histogram'
  | 'gaugehistogram'
  | 'summary'
  | 'info'
  | 'stateset'
  | 'unknown';

/** One sample as Prometheus would ingest it (`le` and `quantile` values normalised). */
export interface ParsedSample {
  /** Sample name, e.g. `x_total` for the OpenMetrics counter family `x`. */
  name: string;
  /** Labels other than the metric name. */
  labels: Record<string, string>;
  /** `Infinity`, `-Infinity` and `NaN` included. */
  value: number;
}

/** One metric family from its `# TYPE`, `# HELP` and `# UNIT` lines. */
export interface ParsedFamily {
  /** Family name: `x` for an OpenMetrics counter with samples `x_total`, `x_total` in text 0.0.4. */
  name: string;
  type: ParsedMetricType;
  help: string;
  /** Empty when the family has no `# UNIT` (always, in text 0.0.4). */
  unit: string;
}

/** The verdict: `ok` when Prometheus' parser accepted every line and every check passed. */
export interface ExpositionCheck {
  ok: boolean;
  /** One problem a line, each naming its input line; empty when `ok`. */
  problems: string[];
  /** Every sample in exposition order; empty unless `ok`. */
  samples: ParsedSample[];
  /** Every family in exposition order; empty unless `ok`. */
  families: ParsedFamily[];
}

interface ToolFamilyLine {
  family: string;
  type: ParsedMetricType;
  help: string;
  unit: string;
}

interface ToolSampleLine {
  name: string;
  labels: Record<string, string>;
  value: number | '+Inf' | '-Inf' | 'NaN';
}

/** Built by scripts/build-go-tools.sh from test/tools/omcheck. */
export const omcheckBinary = fileURLToPath(new URL('../../.cache/go-tools/omcheck', import.meta.url));

const specialValues = { '+Inf': Number.POSITIVE_INFINITY, '-Inf': Number.NEGATIVE_INFINITY, NaN: Number.NaN };

/**
 * Parses an exposition with the parser Prometheus 3.16 scrapes that format with (OpenMetrics 1.0 or
 * text 0.0.4, from github.com/prometheus/prometheus/model/textparse), and adds checks that a scrape
 * does not fail on: every sample belongs to a family with `# TYPE` and `# HELP`, and no series
 * appears twice (a scrape only counts duplicates). test/tools/omcheck/main.go lists every check.
 */
export async function checkExposition(
  exposition: string,
  format: ExpositionFormat,
): Promise<ExpositionCheck> {
  const run = await runTool(omcheckBinary, ['-format', format], exposition, 'run scripts/build-go-tools.sh');
  if (run.exitCode === 1) {
    return { ok: false, problems: nonEmptyLines(run.stderr), samples: [], families: [] };
  }
  if (run.exitCode !== 0) {
    throw new Error(
      `${omcheckBinary} -format ${format} failed (exit code ${run.exitCode}): ${run.stderr.trim()}`,
    );
  }
  const samples: ParsedSample[] = [];
  const families: ParsedFamily[] = [];
  for (const line of nonEmptyLines(run.stdout)) {
    const parsed = JSON.parse(line) as ToolFamilyLine | ToolSampleLine;
    if ('family' in parsed) {
      families.push({ name: parsed.family, type: parsed.type, help: parsed.help, unit: parsed.unit });
    } else {
      const value = typeof parsed.value === 'number' ? parsed.value : specialValues[parsed.value];
      samples.push({ name: parsed.name, labels: parsed.labels, value });
    }
  }
  return { ok: true, problems: [], samples, families };
}

function nonEmptyLines(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 0);
}
