import type {
  BatchObservableCallback,
  Counter,
  Gauge,
  Histogram,
  Meter,
  MeterOptions,
  MeterProvider,
  MetricOptions,
  Observable,
  ObservableCounter,
  ObservableGauge,
  ObservableUpDownCounter,
  UpDownCounter,
} from '@opentelemetry/api';
import { HostMetrics } from '@opentelemetry/host-metrics';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';

/**
 * Process metrics of the Node process, under their OpenTelemetry semantic-convention names
 * (`process.*`, `nodejs.eventloop.*`, `v8js.*`), outside Switchyard's namespace:
 *
 * - `@opentelemetry/host-metrics`, limited to its `process.cpu` and `process.memory` groups: CPU time
 *   and utilization, resident memory. Its system CPU, system memory and network groups stay off.
 * - `@opentelemetry/instrumentation-runtime-node`: event-loop delay, utilization and time, V8 heap
 *   spaces, GC durations, active libuv resources.
 */

const HOST_METRICS_SCOPE = '@opentelemetry/host-metrics';
const RUNTIME_NODE_SCOPE = '@opentelemetry/instrumentation-runtime-node';

/** The instrumentation scope (meter) names the process metrics are recorded under. */
export const PROCESS_METRICS_SCOPES: readonly string[] = Object.freeze([
  HOST_METRICS_SCOPE,
  RUNTIME_NODE_SCOPE,
]);

/** What the pinned upstream packages record, for docs/metrics.md; a test checks it against a real collection. */
export interface ProcessMetricDescription {
  readonly scope: string;
  readonly name: string;
  readonly unit: string;
  readonly kind: 'counter' | 'up-down counter' | 'gauge' | 'histogram';
  readonly attributeKeys: readonly string[];
  readonly description: string;
}

const delayGauge = (statistic: string): ProcessMetricDescription => ({
  scope: RUNTIME_NODE_SCOPE,
  name: `nodejs.eventloop.delay.${statistic}`,
  unit: 's',
  kind: 'gauge',
  attributeKeys: [],
  description: `Event-loop delay ${statistic} since the previous collection (an idle loop reads about 0.010 s: the sampling timer).`,
});

const heapSpaceMetric = (
  name: string,
  kind: ProcessMetricDescription['kind'],
  description: string,
): ProcessMetricDescription => ({
  scope: RUNTIME_NODE_SCOPE,
  name,
  unit: 'By',
  kind,
  attributeKeys: ['v8js.heap.space.name'],
  description,
});

// host-metrics 0.39.0 gives process.cpu.utilization and process.memory.usage no unit (semantic
// conventions say `1` and `By`), so neither gets a unit suffix on either path.
export const PROCESS_METRICS: readonly ProcessMetricDescription[] = Object.freeze([
  {
    scope: HOST_METRICS_SCOPE,
    name: 'process.cpu.time',
    unit: 's',
    kind: 'counter',
    attributeKeys: ['process.cpu.state'],
    description: 'CPU time used by the process, by state (user, system).',
  },
  {
    scope: HOST_METRICS_SCOPE,
    name: 'process.cpu.utilization',
    unit: '',
    kind: 'gauge',
    attributeKeys: ['process.cpu.state'],
    description: 'Share of one CPU used since the previous collection, by state.',
  },
  {
    scope: HOST_METRICS_SCOPE,
    name: 'process.memory.usage',
    unit: '',
    kind: 'gauge',
    attributeKeys: [],
    description: 'Resident set size of the process, in bytes.',
  },
  {
    scope: RUNTIME_NODE_SCOPE,
    name: 'nodejs.eventloop.utilization',
    unit: '1',
    kind: 'gauge',
    attributeKeys: [],
    description: 'Event-loop utilization since the previous collection.',
  },
  {
    scope: RUNTIME_NODE_SCOPE,
    name: 'nodejs.eventloop.time',
    unit: 's',
    kind: 'counter',
    attributeKeys: ['nodejs.eventloop.state'],
    description: 'Time the event loop spent active and idle.',
  },
  delayGauge('min'),
  delayGauge('max'),
  delayGauge('mean'),
  delayGauge('stddev'),
  delayGauge('p50'),
  delayGauge('p90'),
  delayGauge('p99'),
  {
    scope: RUNTIME_NODE_SCOPE,
    name: 'v8js.gc.duration',
    unit: 's',
    kind: 'histogram',
    attributeKeys: ['v8js.gc.type'],
    description: 'Garbage-collection pauses, by kind (minor, major, incremental, weakcb).',
  },
  heapSpaceMetric('v8js.memory.heap.space.size', 'up-down counter', 'Size of each V8 heap space.'),
  heapSpaceMetric('v8js.memory.heap.used', 'gauge', 'Bytes used in each V8 heap space.'),
  heapSpaceMetric(
    'v8js.memory.heap.space.available_size',
    'gauge',
    'Bytes still available in each V8 heap space.',
  ),
  heapSpaceMetric(
    'v8js.memory.heap.space.physical_size',
    'gauge',
    'Physical memory committed to each V8 heap space.',
  ),
  {
    scope: RUNTIME_NODE_SCOPE,
    name: 'v8js.resource.active',
    unit: '{resource}',
    kind: 'gauge',
    attributeKeys: ['v8js.resource.type'],
    description: 'Active libuv resources (timers, sockets, servers) by type.',
  },
]);

const HOST_METRIC_GROUPS = ['process.cpu', 'process.memory'];

/**
 * Sampling interval of the event-loop delay histogram (`perf_hooks.monitorEventLoopDelay`). A
 * 10 ms timer costs 100 wake-ups a second, nothing next to a busy worker, and still sees the
 * stalls that matter to network latency. The histogram records the time between timer ticks, so
 * an idle loop reports delays of about 0.010 s; a stall is the excess over that. The delay gauges
 * stay empty until the histogram holds 5 samples, at least 50 ms after start.
 */
const EVENT_LOOP_DELAY_RESOLUTION_MS = 10;

export interface ProcessMetrics {
  /** Stops every collector; later collections observe nothing new from this process. Idempotent. */
  stop(): void;
}

/**
 * Starts collecting process metrics into `meterProvider` until `stop()`.
 *
 * `process.cpu.utilization`, `nodejs.eventloop.utilization` and the `nodejs.eventloop.delay.*`
 * gauges cover the window since the previous collection by any reader: with two readers (a
 * Prometheus pull and an OTLP push), each sees only the part since the other's last read. For
 * `process.cpu.utilization` that window is shared by every provider in the process.
 */
export function startProcessMetrics(meterProvider: MeterProvider): ProcessMetrics {
  const hostMeterProvider = new RevocableMeterProvider(meterProvider);
  new HostMetrics({
    meterProvider: hostMeterProvider,
    name: HOST_METRICS_SCOPE,
    metricGroups: HOST_METRIC_GROUPS,
  }).start();

  // Created disabled so that its collectors (delay timer, GC observer) start only once their
  // instruments exist on this provider.
  const runtime = new RuntimeNodeInstrumentation({
    enabled: false,
    monitoringPrecision: EVENT_LOOP_DELAY_RESOLUTION_MS,
  });
  runtime.setMeterProvider(meterProvider);
  runtime.enable();

  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      hostMeterProvider.revoke();
      // Its observable callbacks stay registered but return before reading anything; disable()
      // also stops the delay histogram timer and the GC observer.
      runtime.disable();
    },
  };
}

/**
 * HostMetrics has no stop: its one batch callback stays on the meter for the provider's lifetime.
 * Handing it this provider lets us remove that callback.
 */
class RevocableMeterProvider implements MeterProvider {
  readonly #meterProvider: MeterProvider;
  readonly #meters: RevocableMeter[] = [];

  constructor(meterProvider: MeterProvider) {
    this.#meterProvider = meterProvider;
  }

  getMeter(name: string, version?: string, options?: MeterOptions): Meter {
    const meter = new RevocableMeter(this.#meterProvider.getMeter(name, version, options));
    this.#meters.push(meter);
    return meter;
  }

  revoke(): void {
    for (const meter of this.#meters) meter.revoke();
  }
}

class RevocableMeter implements Meter {
  readonly #meter: Meter;
  readonly #batchCallbacks = new Map<BatchObservableCallback, Observable[]>();

  constructor(meter: Meter) {
    this.#meter = meter;
  }

  revoke(): void {
    for (const [callback, observables] of this.#batchCallbacks) {
      this.#meter.removeBatchObservableCallback(callback, observables);
    }
    this.#batchCallbacks.clear();
  }

  addBatchObservableCallback(callback: BatchObservableCallback, observables: Observable[]): void {
    this.#batchCallbacks.set(callback, observables);
    this.#meter.addBatchObservableCallback(callback, observables);
  }

  removeBatchObservableCallback(callback: BatchObservableCallback, observables: Observable[]): void {
    this.#batchCallbacks.delete(callback);
    this.#meter.removeBatchObservableCallback(callback, observables);
  }

  createGauge(name: string, options?: MetricOptions): Gauge {
    return this.#meter.createGauge(name, options);
  }

  createHistogram(name: string, options?: MetricOptions): Histogram {
    return this.#meter.createHistogram(name, options);
  }

  createCounter(name: string, options?: MetricOptions): Counter {
    return this.#meter.createCounter(name, options);
  }

  createUpDownCounter(name: string, options?: MetricOptions): UpDownCounter {
    return this.#meter.createUpDownCounter(name, options);
  }

  createObservableGauge(name: string, options?: MetricOptions): ObservableGauge {
    return this.#meter.createObservableGauge(name, options);
  }

  createObservableCounter(name: string, options?: MetricOptions): ObservableCounter {
    return this.#meter.createObservableCounter(name, options);
  }

  createObservableUpDownCounter(name: string, options?: MetricOptions): ObservableUpDownCounter {
    return this.#meter.createObservableUpDownCounter(name, options);
  }
}
