// Assembles docs/metrics.md from every catalog in the repository. `npm run docs:metrics` writes it;
// test/metrics-docs.test.ts fails when the committed file differs.
import { logForwarderCatalog } from '@switchyard/log-forwarder';
import { proxyCatalog } from '@switchyard/proxy';
import { sampleCatalog } from '@switchyard/sample-worker';
import {
  ADMIN_ROUTES,
  type ExternalMetric,
  httpServerCatalog,
  PROCESS_METRICS,
  type PrometheusMetricShape,
  prometheusLabelName,
  prometheusMetricName,
  renderMetricsReference,
  telemetryCatalog,
} from '@switchyard/telemetry';

const SHAPES = {
  counter: 'monotonic_counter',
  'up-down counter': 'non_monotonic_counter',
  gauge: 'gauge',
  histogram: 'histogram',
} as const satisfies Record<string, PrometheusMetricShape>;

function processMetrics(): ExternalMetric[] {
  return PROCESS_METRICS.map((metric) => ({
    otelName: metric.name,
    prometheusName: prometheusMetricName(metric.name, metric.unit, SHAPES[metric.kind]),
    prometheusType:
      metric.kind === 'counter' ? 'counter' : metric.kind === 'histogram' ? 'histogram' : 'gauge',
    unit: metric.unit,
    labels: metric.attributeKeys.map(prometheusLabelName),
    description: metric.description,
  }));
}

export function renderRepositoryMetricsReference(): string {
  return renderMetricsReference(
    [
      {
        title: 'Proxy (`switchyard_proxy_`)',
        intro:
          'The layer-4 TCP proxy. Pool, upstream and listener labels are the names in the proxy config, never addresses; a name removed by a reload keeps its series at their final values until the process restarts. Bytes are read from the sockets when metrics are collected, so open connections count too.',
        instruments: proxyCatalog.instruments,
      },
      {
        title: 'Log forwarder (`switchyard_log_forwarder_`)',
        intro:
          'Accounting invariant, true at every scrape: `records_received_total` = `records_forwarded_total` + `records_dropped_total{reason=~"buffer_full|forward_failed|rejected|shutdown"}` + `buffer_records` + `in_flight_records`. Sender-reported drops (`sender_channel_full`, `sender_batch_full`) never reached the forwarder and stand outside it; refused frames count in `frame_errors_total` and `batches_dropped_total` only.',
        instruments: logForwarderCatalog.instruments,
      },
      {
        title: 'Sample worker (`switchyard_sample_`)',
        intro: 'The instrumented TCP echo worker that `npm start` runs until the real workers land.',
        instruments: sampleCatalog.instruments,
      },
      {
        title: 'Telemetry pipeline (`switchyard_telemetry_`), every worker',
        intro: 'The OTLP push path counting its own exports. All zero while push is off.',
        instruments: telemetryCatalog.instruments,
      },
      {
        title: 'HTTP server (semantic conventions), every worker',
        intro: `Every HTTP surface a worker serves. Routes listed are the admin server's (${ADMIN_ROUTES.join(', ')}); a worker with an HTTP data plane adds its own.`,
        instruments: httpServerCatalog([...ADMIN_ROUTES]).instruments,
      },
    ],
    processMetrics(),
  );
}
