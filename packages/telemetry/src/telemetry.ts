import type { AddressInfo } from 'node:net';
import { createNoopMeter, type Meter, metrics as metricsApi } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  type IMetricReader,
  MeterProvider,
  type ViewOptions,
} from '@opentelemetry/sdk-metrics';
import { ADMIN_ROUTES, AdminServer } from './admin-server.ts';
import {
  assertUniqueNames,
  type Catalog,
  type CatalogDeclaration,
  type ResolvedInstrument,
} from './catalog.ts';
import { SwitchyardError } from './errors.ts';
import { FieldHistogramRegistry } from './field-histograms.ts';
import type { HttpServerHandles } from './http-metrics.ts';
import { httpServerCatalog, type RouteClassifier, registerHttpServerMetrics } from './http-metrics.ts';
import type { Logger } from './logger.ts';
import { readOtelEnvironment } from './otel-env.ts';
import { createOtlpReader, type OtlpPushConfig, otlpEndpoint, type TelemetryHandles } from './otlp-push.ts';
import { type ProcessMetrics, startProcessMetrics } from './process-metrics.ts';
import { serializePrometheus } from './prometheus-serializer.ts';
import { type CatalogHandles, registerCatalog } from './recorder.ts';
import { buildResource } from './resource.ts';
import { telemetryCatalog } from './telemetry-catalog.ts';

/** What `/metrics` serves when `OTEL_SDK_DISABLED=true`: a valid, empty exposition that says why. */
export const SDK_DISABLED_EXPOSITION =
  '# OpenTelemetry SDK disabled by OTEL_SDK_DISABLED=true: no metrics are recorded.\n';

/** The telemetry part of every worker's config (see `telemetrySettingsSchema`). */
export interface TelemetrySettings {
  readonly admin: {
    readonly host: string;
    readonly port: number;
    readonly bearerToken?: string | undefined;
  };
  readonly otlp: OtlpPushConfig;
  /** CPU, memory, event loop and GC metrics of the Node process (default on). */
  readonly processMetrics: boolean;
}

export interface TelemetryOptions<D extends CatalogDeclaration> {
  /** `service.name` unless OTEL_SERVICE_NAME overrides it, e.g. `switchyard-proxy`. */
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** The worker's catalog; its instruments go on the worker's one meter. */
  readonly catalog: Catalog<D>;
  readonly settings: TelemetrySettings;
  readonly logger: Logger;
  /** Route templates of the worker's own HTTP surfaces (the admin server's are added). */
  readonly httpRoutes?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

export interface Telemetry<D extends CatalogDeclaration> {
  /** One handle per catalog key: cells and series of the hot-path pattern. */
  readonly metrics: CatalogHandles<D>;
  /** HTTP server metrics for the worker's own HTTP surfaces (`instrumentHttpServer`). */
  readonly http: { readonly handles: HttpServerHandles; readonly classify: RouteClassifier };
  readonly resource: Resource | undefined;
  readonly admin: AdminServer;
  /** Where the admin server listens. */
  readonly adminAddress: AddressInfo;
  /** The OTLP endpoint pushed to, when push is on. */
  readonly otlpEndpoint: string | undefined;
  /** The Prometheus exposition, as /metrics serves it. */
  scrape(): Promise<string>;
  /** Pushes what has been recorded now (OTLP), without waiting for the interval. */
  forceFlush(): Promise<void>;
  /** Flushes the last OTLP export, shuts the provider down and closes the admin server. */
  shutdown(): Promise<void>;
}

export function cardinalityViews(instruments: readonly ResolvedInstrument[]): ViewOptions[] {
  // A backstop behind the `other` bucketing: one more than the declared bound, so that only a bug
  // can reach the SDK's overflow series (otel_metric_overflow="true", docs/telemetry.md).
  return instruments.map((instrument) => ({
    instrumentName: instrument.otelName,
    aggregationCardinalityLimit: instrument.maxSeries + 1,
  }));
}

/**
 * Builds the process's one MeterProvider from the settings plus the standard OTEL_* environment,
 * registers the worker's catalog, starts the admin server and, when an endpoint is configured, the
 * OTLP push. Both readers see the same instruments.
 */
export async function startTelemetry<D extends CatalogDeclaration>(
  options: TelemetryOptions<D>,
): Promise<Telemetry<D>> {
  if (liveTelemetry) {
    throw new SwitchyardError(
      'SWY_ERR_TELEMETRY_RUNNING',
      'startTelemetry was called twice: a process has one MeterProvider; share the first Telemetry object (or shut it down first)',
    );
  }
  liveTelemetry = true;
  try {
    return await buildTelemetry(options);
  } catch (error) {
    liveTelemetry = false;
    throw error;
  }
}

/** Whether a Telemetry is running in this process: one MeterProvider per process. */
let liveTelemetry = false;

async function buildTelemetry<D extends CatalogDeclaration>(
  options: TelemetryOptions<D>,
): Promise<Telemetry<D>> {
  const env = options.env ?? process.env;
  const otelEnv = readOtelEnvironment(env);
  const { settings, logger } = options;
  const routes = [...ADMIN_ROUTES, ...(options.httpRoutes ?? [])];
  const httpCatalog = httpServerCatalog(routes);
  const instruments = [
    ...options.catalog.instruments,
    ...telemetryCatalog.instruments,
    ...httpCatalog.instruments,
  ];
  assertUniqueNames(instruments);

  let meter: Meter = createNoopMeter();
  let provider: MeterProvider | undefined;
  let prometheusReader: PrometheusExporter | undefined;
  let processMetrics: ProcessMetrics | undefined;
  let resource: Resource | undefined;
  let pushEndpoint: string | undefined;
  // The push exporter counts its own failures into instruments of the provider it belongs to:
  // the handles exist only once the provider does, and no export can run before that.
  let telemetryHandles: TelemetryHandles | undefined;
  const meterName = `@switchyard/${options.serviceName}`;
  const histograms = new FieldHistogramRegistry({ name: meterName, version: options.serviceVersion });

  if (otelEnv.sdkDisabled) {
    logger.warn('OTEL_SDK_DISABLED=true: metrics are not recorded; /metrics serves an empty exposition');
  } else {
    resource = buildResource({
      serviceName: options.serviceName,
      serviceVersion: options.serviceVersion,
      otelEnv,
      env,
    });
    prometheusReader = new PrometheusExporter({
      preventServerStart: true,
      metricProducers: [histograms.producer(AggregationTemporality.CUMULATIVE)],
    });
    const readers: IMetricReader[] = [prometheusReader];
    const otlpReader = createOtlpReader({
      histograms,
      config: settings.otlp,
      otelEnv,
      handles: () => telemetryHandles as TelemetryHandles,
      logger,
    });
    if (otlpReader !== undefined) {
      readers.push(otlpReader);
      pushEndpoint = otlpEndpoint(settings.otlp, otelEnv);
      logger.info('pushing metrics over OTLP gRPC', { endpoint: pushEndpoint });
    }
    provider = new MeterProvider({ resource, views: cardinalityViews(instruments), readers });
    meter = provider.getMeter(meterName, options.serviceVersion);
    // Libraries instrumented with @opentelemetry/api record into the same provider.
    metricsApi.setGlobalMeterProvider(provider);
    if (settings.processMetrics) processMetrics = startProcessMetrics(provider);
  }
  telemetryHandles = registerCatalog(meter, telemetryCatalog, { histograms });
  const metrics = registerCatalog(meter, options.catalog, { histograms });
  const http = registerHttpServerMetrics(meter, httpCatalog, routes, histograms);

  const scrape = async (): Promise<string> => {
    if (prometheusReader === undefined) return SDK_DISABLED_EXPOSITION;
    const { resourceMetrics, errors } = await prometheusReader.collect();
    for (const error of errors) logger.warn('a metric callback failed during collection', { error });
    return serializePrometheus(resourceMetrics).text;
  };
  const admin = new AdminServer({
    host: settings.admin.host,
    port: settings.admin.port,
    bearerToken: settings.admin.bearerToken,
    scrape,
    http,
    logger,
  });
  const adminAddress = await admin.listen();
  logger.info('admin server listening', { address: adminAddress.address, port: adminAddress.port });

  return {
    metrics,
    http,
    resource,
    admin,
    adminAddress,
    otlpEndpoint: pushEndpoint,
    scrape,
    forceFlush: async () => {
      await provider?.forceFlush();
    },
    shutdown: async () => {
      admin.markStopping();
      processMetrics?.stop();
      try {
        // MeterProvider.shutdown() flushes the periodic reader: the last OTLP export goes out here.
        await provider?.shutdown();
      } catch (error) {
        logger.warn('metrics provider shutdown failed', { error });
      }
      await admin.close();
      if (provider !== undefined) metricsApi.disable();
      liveTelemetry = false;
    },
  };
}
