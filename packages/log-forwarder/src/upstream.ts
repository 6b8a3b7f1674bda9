import type { Logger } from '@switchyard/telemetry';
import type { LogForwarderConfig } from './config.ts';
import type { LogForwarderMetrics } from './metrics.ts';
import { GRPC_STATUS_NAMES, OtlpLogsClient } from './otlp-logs-client.ts';

/**
 * The OTLP logs client for the configured Collector: config values first, then the standard
 * `OTEL_EXPORTER_OTLP_LOGS_*` / `OTEL_EXPORTER_OTLP_*` variables, then the OTLP default
 * (http://localhost:4317). The demo's local sink wins when it runs. Failed attempts count into
 * forward_errors{code} and, when retried, forward_retries. A deprecated setting is honored, with a
 * warning.
 */
export function createLogsClient(
  collector: LogForwarderConfig['collector'],
  demoEndpoint: string | undefined,
  env: NodeJS.ProcessEnv,
  metrics: LogForwarderMetrics,
  logger: Logger,
): OtlpLogsClient & { readonly endpoint: string } {
  const { maxAttempts } = collector.retry;
  if (maxAttempts !== undefined) {
    logger.warn('collector.retry.maxAttempts is deprecated; remove it and bound retries with maxElapsedMs', {
      maxAttempts,
      maxElapsedMs: collector.retry.maxElapsedMs,
    });
  }
  const errors = new Map(GRPC_STATUS_NAMES.map((code) => [code, metrics.forward_errors.cell({ code })]));
  const retries = metrics.forward_retries.cell();
  const { maxExportBatches: _batches, maxExportBytes: _bytes, endpoint, ...explicit } = collector;
  const options = OtlpLogsClient.optionsFromEnv(env, {
    ...explicit,
    ...((demoEndpoint ?? endpoint) !== undefined && { endpoint: demoEndpoint ?? endpoint }),
    onAttemptFailed: (code, _attempt, delayMs) => {
      errors.get(code)?.add();
      if (delayMs !== undefined) retries.add();
    },
  });
  return Object.assign(new OtlpLogsClient(options), { endpoint: options.endpoint });
}
