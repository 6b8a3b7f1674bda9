import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { AggregationTemporalityPreference } from '@opentelemetry/exporter-metrics-otlp-http';
import {
  type AggregationOption,
  type AggregationTemporality,
  type InstrumentType,
  type MetricProducer,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { TemporalitySelector } from './catalog-producer.ts';
import type { Logger } from './logger.ts';
import type { OtelEnvironment } from './otel-env.ts';
import type { CatalogHandles } from './recorder.ts';
import type { telemetryCatalog } from './telemetry-catalog.ts';

/** OTLP push settings from a worker's config file; each one given here wins over `OTEL_*`. */
export interface OtlpPushConfig {
  /** `http://host:4317` (insecure) or `https://host:4317`. Push is off unless this or the env names one. */
  readonly endpoint?: string | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly compression?: 'gzip' | 'none' | undefined;
  readonly timeoutMs?: number | undefined;
  readonly intervalMs?: number | undefined;
  readonly insecure?: boolean | undefined;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly temporality?: 'cumulative' | 'delta' | 'lowmemory' | undefined;
}

export type TelemetryHandles = CatalogHandles<(typeof telemetryCatalog)['declaration']>;
type FailureReason = 'timeout' | 'unavailable' | 'unauthenticated' | 'rejected' | 'other';

/** Default push interval when neither config nor OTEL_METRIC_EXPORT_INTERVAL sets one (spec: 60 s). */
export const DEFAULT_EXPORT_INTERVAL_MS = 60_000;
export const DEFAULT_EXPORT_TIMEOUT_MS = 30_000;

const GRPC_REASONS: Readonly<Record<number, FailureReason>> = {
  1: 'other', // CANCELLED
  3: 'rejected', // INVALID_ARGUMENT
  4: 'timeout', // DEADLINE_EXCEEDED
  7: 'unauthenticated', // PERMISSION_DENIED
  8: 'unavailable', // RESOURCE_EXHAUSTED
  9: 'rejected', // FAILED_PRECONDITION
  12: 'rejected', // UNIMPLEMENTED
  14: 'unavailable', // UNAVAILABLE
  16: 'unauthenticated', // UNAUTHENTICATED
};

/** Maps an export error onto the closed `reason` set of `switchyard.telemetry.otlp.export.failures`. */
export function exportFailureReason(error: unknown): FailureReason {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') return GRPC_REASONS[code] ?? 'other';
  const name = (error as { name?: unknown } | undefined)?.name;
  if (name === 'TimeoutError' || /timeout|deadline/i.test(String((error as Error | undefined)?.message))) {
    return 'timeout';
  }
  return 'other';
}

/**
 * Wraps the OTLP exporter so that every export is counted by result, failures by reason, and a
 * failure streak is logged once when it starts and once when it ends. Nothing is thrown into the
 * worker: the periodic reader simply tries again at the next interval.
 */
export class CountingMetricExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #handles: () => TelemetryHandles;
  readonly #logger: Logger;
  readonly #endpoint: string;
  #failureStreak = 0;

  constructor(inner: PushMetricExporter, handles: () => TelemetryHandles, logger: Logger, endpoint: string) {
    this.#inner = inner;
    this.#handles = handles;
    this.#logger = logger;
    this.#endpoint = endpoint;
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const started = performance.now();
    this.#inner.export(metrics, (result) => {
      this.#handles()
        ['otlp.export.duration'].series()
        .record((performance.now() - started) / 1000);
      if (result.code === ExportResultCode.SUCCESS) this.#succeeded();
      else this.#failed(result.error);
      resultCallback(result);
    });
  }

  #succeeded(): void {
    this.#handles()['otlp.exports'].cell({ result: 'success' }).add();
    if (this.#failureStreak > 0) {
      this.#logger.info('OTLP metric export recovered', {
        endpoint: this.#endpoint,
        failedExports: this.#failureStreak,
      });
      this.#failureStreak = 0;
    }
  }

  #failed(error: Error | undefined): void {
    const reason = exportFailureReason(error);
    this.#handles()['otlp.exports'].cell({ result: 'failure' }).add();
    this.#handles()['otlp.export.failures'].cell({ reason }).add();
    if (this.#failureStreak === 0) {
      this.#logger.warn('OTLP metric export failed; retrying every interval, logging again on recovery', {
        endpoint: this.#endpoint,
        reason,
        error: error?.message,
      });
    }
    this.#failureStreak += 1;
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  selectAggregationTemporality(instrumentType: InstrumentType): AggregationTemporality {
    return this.#inner.selectAggregationTemporality?.(instrumentType) as AggregationTemporality;
  }

  selectAggregation(instrumentType: InstrumentType): AggregationOption {
    return this.#inner.selectAggregation?.(instrumentType) as AggregationOption;
  }
}

const TEMPORALITY: Readonly<
  Record<NonNullable<OtlpPushConfig['temporality']>, AggregationTemporalityPreference>
> = {
  cumulative: AggregationTemporalityPreference.CUMULATIVE,
  delta: AggregationTemporalityPreference.DELTA,
  lowmemory: AggregationTemporalityPreference.LOWMEMORY,
};

function channelCredentials(config: OtlpPushConfig, endpoint: string): ChannelCredentials | undefined {
  const tlsFiles = config.caFile ?? config.certFile ?? config.keyFile;
  if (config.insecure === true) return grpcCredentials.createInsecure();
  if (tlsFiles !== undefined) {
    const read = (file: string | undefined) => (file === undefined ? null : readFileSync(file));
    return grpcCredentials.createSsl(read(config.caFile), read(config.keyFile), read(config.certFile));
  }
  // Left to the exporter: http:// is insecure, https:// uses system roots, OTEL_EXPORTER_OTLP_* files apply.
  return endpoint.startsWith('http://') ? grpcCredentials.createInsecure() : undefined;
}

function grpcMetadata(headers: Readonly<Record<string, string>>): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return metadata;
}

export interface OtlpReaderOptions {
  readonly config: OtlpPushConfig;
  readonly otelEnv: OtelEnvironment;
  readonly handles: () => TelemetryHandles;
  readonly logger: Logger;
  /** The catalogs' series, with the temporality the exporter asks for per instrument type. */
  readonly producer: (temporality: TemporalitySelector) => MetricProducer;
}

/** The push endpoint in force, or undefined when push is off. */
export function otlpEndpoint(config: OtlpPushConfig, otelEnv: OtelEnvironment): string | undefined {
  if (config.endpoint !== undefined) return config.endpoint;
  const exporters = otelEnv.metricsExporters;
  if (exporters !== undefined && !exporters.includes('otlp')) return undefined;
  return otelEnv.otlpEndpoint;
}

/** A periodic reader pushing to the Collector, or undefined when no endpoint is configured. */
export function createOtlpReader(options: OtlpReaderOptions): PeriodicExportingMetricReader | undefined {
  const { config, otelEnv } = options;
  const endpoint = otlpEndpoint(config, otelEnv);
  if (endpoint === undefined) return undefined;
  const intervalMs = config.intervalMs ?? otelEnv.exportIntervalMs ?? DEFAULT_EXPORT_INTERVAL_MS;
  const timeoutMs = Math.min(
    config.timeoutMs ?? otelEnv.exportTimeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS,
    intervalMs,
  );
  const credentials = channelCredentials(config, endpoint);
  const exporter = new OTLPMetricExporter({
    url: endpoint,
    timeoutMillis: timeoutMs,
    ...(config.headers !== undefined && { metadata: grpcMetadata(config.headers) }),
    ...(config.compression !== undefined && { compression: config.compression as never }),
    ...(credentials !== undefined && { credentials }),
    ...(config.temporality !== undefined && { temporalityPreference: TEMPORALITY[config.temporality] }),
  });
  return new PeriodicExportingMetricReader({
    exporter: new CountingMetricExporter(exporter, options.handles, options.logger, endpoint),
    exportIntervalMillis: intervalMs,
    exportTimeoutMillis: timeoutMs,
    // The catalogs' cells, with the temporality this exporter asks for.
    metricProducers: [options.producer((type) => exporter.selectAggregationTemporality(type))],
  });
}
