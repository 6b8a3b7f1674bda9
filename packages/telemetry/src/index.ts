export { ADMIN_ROUTES, AdminServer, type AdminServerOptions } from './admin-server.ts';
export {
  BYTES_BUCKETS,
  type Catalog,
  type CatalogDeclaration,
  COUNT_BUCKETS,
  defineCatalog,
  type InstrumentDeclaration,
  type InstrumentKind,
  MAX_CONFIGURED_LIMIT,
  MAX_SERIES_PER_INSTRUMENT,
  OTHER_VALUE,
  type ResolvedAttribute,
  type ResolvedInstrument,
  SECONDS_BUCKETS,
} from './catalog.ts';
export {
  byteSize,
  durationMs,
  hostPort,
  type LoadConfigOptions,
  loadConfig,
  port,
  splitHostPort,
  workerConfigSource,
} from './config.ts';
export { CatalogRuleError, ConfigError, ListenError, SwitchyardError } from './errors.ts';
export { CONTENT_TYPES, type ExpositionFormat, SDK_DISABLED_EXPOSITION } from './exposition-format.ts';
export {
  createRouteClassifier,
  HTTP_METHODS,
  HTTP_STATUS_CODES,
  type HttpServerHandles,
  httpServerCatalog,
  instrumentHttpServer,
  type RouteClassifier,
  recordHttpRequest,
} from './http-metrics.ts';
export { type Drainable, handleShutdownSignals, runWorkerMain, type ShutdownOptions } from './lifecycle.ts';
export { createLogger, type Logger, type LoggerOptions, type LogLevel } from './logger.ts';
export { type ReferenceSection, renderMetricsReference } from './metrics-reference.ts';
export { type CollectHook, MetricsWriter } from './metrics-writer.ts';
export { type PrometheusMetricShape, prometheusLabelName, prometheusMetricName } from './naming.ts';
export type { OtlpPushConfig } from './otlp-push.ts';
export {
  PROCESS_METRICS,
  type ProcessMetricDescription,
  processCatalog,
  runtimeCatalog,
} from './process-metrics.ts';
export { serializePrometheus } from './prometheus-serializer.ts';
export {
  type CatalogHandles,
  type CountCell,
  type CountFamily,
  type GaugeCell,
  type GaugeFamily,
  type HistogramFamily,
  type HistogramSeries,
  registerCatalog,
} from './recorder.ts';
export { DOWNWARD_API_ENV } from './resource.ts';
export { telemetrySettingsSchema } from './settings.ts';
export { type StandaloneMetrics, standaloneMetrics } from './standalone-metrics.ts';
export {
  type AdminControl,
  startTelemetry,
  type Telemetry,
  type TelemetryOptions,
  type TelemetrySettings,
} from './telemetry.ts';
export { telemetryCatalog } from './telemetry-catalog.ts';
