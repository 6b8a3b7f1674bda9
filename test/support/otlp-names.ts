import { fileURLToPath } from 'node:url';
import type { PrometheusMetricShape } from '@switchyard/telemetry';
import { runTool } from './run-tool.ts';

/** The OTLP instrument kinds as otlptranslator tells them apart (a sum is a counter, monotonic or not). */
export type OtlpMetricType = PrometheusMetricShape;

export interface OtlpMetricDescription {
  /** OpenTelemetry instrument name, e.g. `http.server.request.duration`. */
  name: string;
  /** UCUM unit as given to the instrument, e.g. `s`, `By`, `{request}`, `1`. */
  unit: string;
  type: OtlpMetricType;
  /** Attribute keys, e.g. `http.request.method`. */
  labels?: string[];
}

export interface PrometheusNames {
  metric: string;
  /** Label names in the order of the input attribute keys. */
  labels: string[];
}

interface ToolOutputLine {
  metric?: string;
  labels?: string[];
  error?: string;
}

/** Built by scripts/build-go-tools.sh from test/tools/otlpnames. */
export const otlpNamesBinary = fileURLToPath(new URL('../../.cache/go-tools/otlpnames', import.meta.url));

/**
 * Translates OpenTelemetry names into the Prometheus names the OpenTelemetry Collector's Prometheus
 * exporter would expose by default (otlptranslator, UnderscoreEscapingWithSuffixes), by running
 * the Go tool once for all `items`. Results are in input order.
 */
export async function translateWithOtlpTranslator(
  items: readonly OtlpMetricDescription[],
): Promise<PrometheusNames[]> {
  const input = items.map((item) => `${JSON.stringify({ ...item, labels: item.labels ?? [] })}\n`).join('');
  const stdout = await runOtlpNames(input);
  const lines = stdout.split('\n').filter((line) => line.length > 0);
  if (lines.length !== items.length) {
    throw new Error(
      `${otlpNamesBinary} answered ${lines.length} lines for ${items.length} items:\n${stdout}`,
    );
  }
  return lines.map((line, index) => {
    const parsed = JSON.parse(line) as ToolOutputLine;
    if (parsed.error !== undefined || parsed.metric === undefined) {
      throw new Error(
        `otlptranslator could not translate item ${index} (${JSON.stringify(items[index])}): ${parsed.error}`,
      );
    }
    return { metric: parsed.metric, labels: parsed.labels ?? [] };
  });
}

async function runOtlpNames(input: string): Promise<string> {
  const run = await runTool(otlpNamesBinary, [], input, 'run scripts/build-go-tools.sh');
  if (run.exitCode !== 0) {
    throw new Error(`${otlpNamesBinary} failed (exit code ${run.exitCode}): ${run.stderr.trim()}`);
  }
  return run.stdout;
}
