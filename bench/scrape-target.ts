import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { createLogger, defineCatalog, startTelemetry } from '@switchyard/telemetry';
import client from 'prom-client';

/**
 * One /metrics contender of bench/scrape.bench.ts, in a process of its own, holding the same
 * proxy-shaped series as the others, with a timer-lag probe on its main (data) thread.
 *
 * Run: `node scrape-target.ts --impl ours|prom-client|otel-stock --upstreams N --port P`. It
 * answers the parent over IPC: `{ cmd: 'probe' }` starts a probe window, `{ cmd: 'report' }` ends
 * it and replies with the event-loop delay percentiles and the main thread's CPU time.
 *
 * Per upstream: connections 1, bytes 2, dial_failures 5, upstream_healthy 1, active_connections 1
 * (10 series); per pool of 100 upstreams one connection-duration histogram (15 buckets + +Inf + sum
 * + count = 18 series).
 */

type Impl = 'ours' | 'prom-client' | 'otel-stock';

function argument(name: string): string {
  const index = process.argv.indexOf(`--${name}`);
  const value = index < 0 ? undefined : process.argv[index + 1];
  if (value === undefined) throw new Error(`scrape-target: --${name} is required`);
  return value;
}

const impl = argument('impl') as Impl;
const upstreams = Number(argument('upstreams'));
const port = Number(argument('port'));
const UPSTREAMS_PER_POOL = 100;
const REASONS = ['timeout', 'refused', 'reset', 'unreachable', 'other'] as const;
const DIRECTIONS = ['client_to_upstream', 'upstream_to_client'] as const;
const BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** One upstream's names and values, the same in every contender (deterministic, non-trivial). */
interface Upstream {
  readonly pool: string;
  readonly upstream: string;
  readonly connections: number;
  readonly bytesToUpstream: number;
  readonly bytesToClient: number;
  /** Dial failures, all with reason `refused` (the other reasons stay at zero). */
  readonly refused: number;
  readonly healthy: number;
  readonly active: number;
}

function* upstreamsOf(): Generator<Upstream> {
  for (let i = 0; i < upstreams; i++) {
    yield {
      pool: `pool-${Math.floor(i / UPSTREAMS_PER_POOL)}`,
      upstream: `upstream-${i}`,
      connections: i * 7,
      bytesToUpstream: i * 1_048_573,
      bytesToClient: i * 3_145_739,
      refused: i % 13,
      healthy: i % 7 === 0 ? 0 : 1,
      active: i % 50,
    };
  }
}

/** What each pool's duration histogram observes. */
const DURATIONS = Array.from({ length: 50 }, (_, i) => (i + 1) * 0.037);

const pools = Math.ceil(upstreams / UPSTREAMS_PER_POOL);

const configured = { description: 'Configured name.', configured: true } as const;
const catalog = defineCatalog({
  namespace: 'switchyard.bench',
  configuredLimit: 100_000,
  instruments: {
    connections: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Connections proxied.',
      attributes: { pool: configured, upstream: configured },
    },
    bytes: {
      kind: 'counter',
      unit: 'By',
      description: 'Bytes proxied.',
      attributes: {
        pool: configured,
        upstream: configured,
        direction: { description: 'Direction.', values: DIRECTIONS },
      },
    },
    dial_failures: {
      kind: 'counter',
      unit: '{dial}',
      description: 'Dial failures.',
      attributes: {
        pool: configured,
        upstream: configured,
        reason: { description: 'Why.', values: REASONS },
      },
    },
    upstream_healthy: {
      kind: 'gauge',
      unit: '{upstream}',
      description: '1 when healthy.',
      attributes: { pool: configured, upstream: configured },
    },
    active_connections: {
      kind: 'updown_counter',
      unit: '{connection}',
      description: 'Open now.',
      attributes: { pool: configured, upstream: configured },
    },
    'connection.duration': {
      kind: 'histogram',
      unit: 's',
      description: 'Connection duration.',
      buckets: BUCKETS,
      attributes: { pool: configured },
    },
  },
});

async function startOurs(): Promise<void> {
  const telemetry = await startTelemetry({
    serviceName: 'scrape-bench',
    serviceVersion: '0',
    catalog,
    settings: { admin: { host: '127.0.0.1', port }, otlp: {}, processMetrics: false },
    logger: createLogger({ name: 'scrape-bench', stream: new Writable({ write: (_c, _e, done) => done() }) }),
    env: {},
  });
  const m = telemetry.metrics;
  for (const one of upstreamsOf()) {
    const names = { pool: one.pool, upstream: one.upstream };
    for (const family of [
      m.connections,
      m.bytes,
      m.dial_failures,
      m.upstream_healthy,
      m.active_connections,
    ]) {
      family.register(names);
    }
    m.connections.cell(names).add(one.connections);
    m.bytes.cell({ ...names, direction: 'client_to_upstream' }).add(one.bytesToUpstream);
    m.bytes.cell({ ...names, direction: 'upstream_to_client' }).add(one.bytesToClient);
    m.dial_failures.cell({ ...names, reason: 'refused' }).add(one.refused);
    m.upstream_healthy.cell(names).set(one.healthy);
    m.active_connections.cell(names).add(one.active);
  }
  for (let p = 0; p < pools; p++) {
    m['connection.duration'].register({ pool: `pool-${p}` });
    const series = m['connection.duration'].series({ pool: `pool-${p}` });
    for (const seconds of DURATIONS) series.record(seconds);
  }
}

function startPromClient(): void {
  const registry = new client.Registry();
  const connections = new client.Counter({
    name: 'switchyard_bench_connections_total',
    help: 'Connections proxied.',
    labelNames: ['pool', 'upstream'],
    registers: [registry],
  });
  const bytes = new client.Counter({
    name: 'switchyard_bench_bytes_total',
    help: 'Bytes proxied.',
    labelNames: ['pool', 'upstream', 'direction'],
    registers: [registry],
  });
  const dialFailures = new client.Counter({
    name: 'switchyard_bench_dial_failures_total',
    help: 'Dial failures.',
    labelNames: ['pool', 'upstream', 'reason'],
    registers: [registry],
  });
  const healthy = new client.Gauge({
    name: 'switchyard_bench_upstream_healthy',
    help: '1 when healthy.',
    labelNames: ['pool', 'upstream'],
    registers: [registry],
  });
  const active = new client.Gauge({
    name: 'switchyard_bench_active_connections',
    help: 'Open now.',
    labelNames: ['pool', 'upstream'],
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'switchyard_bench_connection_duration_seconds',
    help: 'Connection duration.',
    labelNames: ['pool'],
    buckets: BUCKETS,
    registers: [registry],
  });
  for (const { pool, upstream, ...one } of upstreamsOf()) {
    connections.inc({ pool, upstream }, one.connections);
    bytes.inc({ pool, upstream, direction: 'client_to_upstream' }, one.bytesToUpstream);
    bytes.inc({ pool, upstream, direction: 'upstream_to_client' }, one.bytesToClient);
    for (const reason of REASONS)
      dialFailures.inc({ pool, upstream, reason }, reason === 'refused' ? one.refused : 0);
    healthy.set({ pool, upstream }, one.healthy);
    active.set({ pool, upstream }, one.active);
  }
  for (let p = 0; p < pools; p++) {
    for (const seconds of DURATIONS) duration.observe({ pool: `pool-${p}` }, seconds);
  }
  createServer((_request, response) => {
    registry.metrics().then((text) => {
      response.writeHead(200, { 'content-type': registry.contentType });
      response.end(text);
    });
  }).listen(port, '127.0.0.1');
}

function startOtelStock(): void {
  const exporter = new PrometheusExporter({ host: '127.0.0.1', port });
  // The SDK folds series past 2,000 per instrument into one overflow series by default: lift the
  // limit so that it serves every series the others do.
  const views = [{ instrumentName: '*', aggregationCardinalityLimit: 1_000_000 }];
  const meter = new MeterProvider({ readers: [exporter], views }).getMeter('scrape-bench');
  const connections = meter.createCounter('switchyard.bench.connections', { unit: '{connection}' });
  const bytes = meter.createCounter('switchyard.bench.bytes', { unit: 'By' });
  const dialFailures = meter.createCounter('switchyard.bench.dial_failures', { unit: '{dial}' });
  const healthy = meter.createGauge('switchyard.bench.upstream_healthy', { unit: '{upstream}' });
  const active = meter.createUpDownCounter('switchyard.bench.active_connections', { unit: '{connection}' });
  const duration = meter.createHistogram('switchyard.bench.connection.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: BUCKETS },
  });
  for (const { pool, upstream, ...one } of upstreamsOf()) {
    connections.add(one.connections, { pool, upstream });
    bytes.add(one.bytesToUpstream, { pool, upstream, direction: 'client_to_upstream' });
    bytes.add(one.bytesToClient, { pool, upstream, direction: 'upstream_to_client' });
    for (const reason of REASONS)
      dialFailures.add(reason === 'refused' ? one.refused : 0, { pool, upstream, reason });
    healthy.record(one.healthy, { pool, upstream });
    active.add(one.active, { pool, upstream });
  }
  for (let p = 0; p < pools; p++) {
    for (const seconds of DURATIONS) duration.record(seconds, { pool: `pool-${p}` });
  }
}

/**
 * The probe: libuv's own timer-lag histogram on this thread (perf_hooks), sampling every
 * millisecond. A reading is the time between two ticks of a 1 ms timer; the lag is that minus 1 ms.
 */
const delay = monitorEventLoopDelay({ resolution: 1 });
let cpuAtStart = process.threadCpuUsage();

process.on('message', (message: { cmd: 'probe' | 'report' }) => {
  if (message.cmd === 'probe') {
    delay.reset();
    delay.enable();
    cpuAtStart = process.threadCpuUsage();
    process.send?.({ cmd: 'probing' });
    return;
  }
  delay.disable();
  const cpu = process.threadCpuUsage(cpuAtStart);
  const lagMs = (ns: number) => Math.max(0, ns / 1e6 - 1);
  process.send?.({
    cmd: 'report',
    p50: lagMs(delay.percentile(50)),
    p99: lagMs(delay.percentile(99)),
    max: lagMs(delay.max),
    samples: delay.count,
    mainThreadCpuMs: (cpu.user + cpu.system) / 1000,
  });
});

if (impl === 'ours') await startOurs();
else if (impl === 'prom-client') startPromClient();
else if (impl === 'otel-stock') startOtelStock();
else throw new Error(`scrape-target: --impl must be ours, prom-client or otel-stock, not ${impl}`);
process.send?.({ cmd: 'ready' });
process.on('SIGTERM', () => process.exit(0));
