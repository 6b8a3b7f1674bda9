import { ConfigError } from './errors.ts';

/**
 * The standard `OTEL_*` variables that SDK 3.x leaves to its caller. The OTLP exporter reads its
 * own `OTEL_EXPORTER_OTLP_*` knobs (headers, compression, certificates, timeout, temporality);
 * we read only what decides whether to push at all, and what the SDK ignores.
 */
export interface OtelEnvironment {
  /** `OTEL_SDK_DISABLED=true`: no MeterProvider; /metrics then serves an empty exposition. */
  readonly sdkDisabled: boolean;
  readonly serviceName: string | undefined;
  /** Parsed `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** `OTEL_METRIC_EXPORT_INTERVAL`, ms. */
  readonly exportIntervalMs: number | undefined;
  /** `OTEL_METRIC_EXPORT_TIMEOUT`, ms. */
  readonly exportTimeoutMs: number | undefined;
  /** `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`: push is on when set. */
  readonly otlpEndpoint: string | undefined;
  /** `OTEL_METRICS_EXPORTER`: a list; `none` alone turns push off even when an endpoint is set. */
  readonly metricsExporters: readonly string[] | undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

function milliseconds(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new ConfigError(
      name,
      `environment ${name}=${JSON.stringify(raw)} is not allowed: expected a positive integer number of milliseconds`,
    );
  }
  return value;
}

function booleanFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = nonEmpty(env[name])?.toLowerCase();
  if (raw === undefined || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new ConfigError(
    name,
    `environment ${name}=${JSON.stringify(env[name])} is not allowed: expected true or false`,
  );
}

/** Parses `OTEL_RESOURCE_ATTRIBUTES` as the specification's W3C-baggage-like list. */
export function parseResourceAttributes(raw: string | undefined): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const pair of (raw ?? '').split(',')) {
    if (pair.trim() === '') continue;
    const separator = pair.indexOf('=');
    const key = separator > 0 ? pair.slice(0, separator).trim() : '';
    if (key === '') {
      throw new ConfigError(
        'OTEL_RESOURCE_ATTRIBUTES',
        `environment OTEL_RESOURCE_ATTRIBUTES holds ${JSON.stringify(pair)}: expected comma-separated key=value pairs`,
      );
    }
    try {
      attributes[key] = decodeURIComponent(pair.slice(separator + 1).trim());
    } catch (cause) {
      throw new ConfigError(
        'OTEL_RESOURCE_ATTRIBUTES',
        `OTEL_RESOURCE_ATTRIBUTES: bad percent-encoding in ${JSON.stringify(pair)}`,
        { cause },
      );
    }
  }
  return attributes;
}

export function readOtelEnvironment(env: NodeJS.ProcessEnv): OtelEnvironment {
  const exporters = nonEmpty(env.OTEL_METRICS_EXPORTER)
    ?.split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  return Object.freeze({
    sdkDisabled: booleanFlag(env, 'OTEL_SDK_DISABLED'),
    serviceName: nonEmpty(env.OTEL_SERVICE_NAME),
    resourceAttributes: Object.freeze(parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES)),
    exportIntervalMs: milliseconds(env, 'OTEL_METRIC_EXPORT_INTERVAL'),
    exportTimeoutMs: milliseconds(env, 'OTEL_METRIC_EXPORT_TIMEOUT'),
    otlpEndpoint:
      nonEmpty(env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT),
    metricsExporters: exporters,
  });
}
