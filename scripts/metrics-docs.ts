// Assembles docs/metrics.md from every catalog in the repository. `npm run docs:metrics` writes it;
// test/metrics-docs.test.ts fails when the committed file differs.
import { logForwarderCatalog } from '@switchyard/log-forwarder';
import { proxyCatalog } from '@switchyard/proxy';
import { RELAY_HTTP_ROUTES, relayCatalog } from '@switchyard/relay';
import { sampleCatalog } from '@switchyard/sample-worker';
import {
  ADMIN_ROUTES,
  httpServerCatalog,
  processCatalog,
  renderMetricsReference,
  runtimeCatalog,
  telemetryCatalog,
} from '@switchyard/telemetry';

export function renderRepositoryMetricsReference(): string {
  return renderMetricsReference([
    {
      title: 'Proxy (`switchyard_proxy_`)',
      intro:
        'The layer-4 TCP proxy. Pool, upstream and listener labels are the names in the proxy config, never addresses; a name removed by a reload keeps its series at their final values until the process restarts. Each upstream has counters and gauges only; connection durations are a histogram per pool. Bytes are read from the sockets when metrics are collected, so open connections count too.',
      instruments: proxyCatalog.instruments,
    },
    {
      title: 'Relay (`switchyard_relay_`)',
      intro:
        "The DERP relay: derper's metric set, typed, with histograms where derper keeps an average. No label ever holds a key or an address. Packet accounting, true at every scrape: `packets_received_total` + `packets_forwarded_in_total` = `packets_sent_total` + `packets_forwarded_out_total` + `packets_dropped_total` (all reasons) + packets still queued (at most `sendQueueLength` per connection). Current values are up-down counters, which Prometheus shows as gauges.",
      instruments: relayCatalog.instruments,
    },
    {
      title: 'Log forwarder (`switchyard_log_forwarder_`)',
      intro:
        'Accounting invariant, true at every scrape: `records_received_total` = `records_forwarded_total` + `records_dropped_total{reason=~"buffer_full|forward_failed|rejected|shutdown"}` + `buffer_records` + `in_flight_records`. Sender-reported drops (`sender_channel_full`, `sender_batch_full`) never reached the forwarder and stand outside it; refused frames count in `frame_errors_total` and `batches_dropped_total` only.',
      instruments: logForwarderCatalog.instruments,
    },
    {
      title: 'Sample worker (`switchyard_sample_`)',
      intro:
        "The instrumented TCP echo worker: the telemetry pipeline's reference in the cross-process tests.",
      instruments: sampleCatalog.instruments,
    },
    {
      title: 'Telemetry pipeline (`switchyard_telemetry_`), every worker',
      intro:
        "The pipeline's own instruments, recorded on the telemetry thread: OTLP exports (all zero while push is off) and the /metrics scrapes it answered.",
      instruments: telemetryCatalog.instruments,
    },
    {
      title: 'HTTP server (semantic conventions), every worker',
      intro: `Every HTTP surface a worker serves: the admin server's routes (${ADMIN_ROUTES.join(', ')}) and, in the relay, its DERP listener's (${RELAY_HTTP_ROUTES.join(', ')}). Upgrades to DERP and WebSocket count with status 101.`,
      instruments: httpServerCatalog([...ADMIN_ROUTES, ...RELAY_HTTP_ROUTES]).instruments,
    },
    {
      title: 'Process (semantic conventions), every worker',
      intro:
        'Process-wide, sampled on the telemetry thread at each collection. Utilization covers the time since the previous collection by any reader (pull or push).',
      instruments: processCatalog.instruments,
    },
    {
      title: 'Runtime of the data thread (semantic conventions), every worker',
      intro:
        'The thread that carries traffic: its event loop, V8 heap, garbage collections and libuv resources, sampled on that thread at each collection (GC pauses as they happen). The delay gauges read 0 until 5 samples of the 10 ms timer, and an idle loop reads about 0.010 s; they and utilization cover the time since the previous collection by any reader.',
      instruments: runtimeCatalog.instruments,
    },
  ]);
}
