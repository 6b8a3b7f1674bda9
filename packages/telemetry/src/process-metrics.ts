import os from 'node:os';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import { type Catalog, type CatalogDeclaration, defineCatalog, OTHER_VALUE } from './catalog.ts';
import type { MetricsWriter } from './metrics-writer.ts';
import { type CatalogHandles, type GaugeCell, registerCatalog } from './recorder.ts';

/**
 * Process and runtime metrics under their OpenTelemetry semantic-convention names (`process.*`,
 * `nodejs.eventloop.*`, `v8js.*`), outside Switchyard's namespace, recorded into cells like every
 * catalog:
 *
 * - `runtimeCatalog`, sampled on the data thread, because it describes that thread: event-loop
 *   delay, utilization and time, its V8 heap spaces, its GC pauses, its active libuv resources.
 *   A telemetry thread that measured its own loop would report a loop that carries no traffic.
 * - `processCatalog`, sampled on the telemetry thread, because it is process-wide: CPU time and
 *   utilization, resident memory.
 *
 * They follow what `@opentelemetry/instrumentation-runtime-node` 0.37 and
 * `@opentelemetry/host-metrics` 0.39 (process groups) recorded before the telemetry thread existed,
 * with the semantic conventions' units where host-metrics gave none (`process.cpu.utilization` is
 * `1`, `process.memory.usage` is `By`). The gauges that cover "since the previous collection" (CPU
 * utilization, event-loop utilization and delay) cover the time since the previous collection by
 * any reader: with pull and push both on, each sees part of the window.
 */

const cpuState = { description: 'user or system CPU time.', values: ['user', 'system'] } as const;

export const processCatalog = defineCatalog({
  namespace: 'process',
  semanticConventions: true,
  instruments: {
    'process.cpu.time': {
      kind: 'counter',
      unit: 's',
      description: 'CPU time used by the process, by state (user, system).',
      attributes: { 'process.cpu.state': cpuState },
    },
    'process.cpu.utilization': {
      kind: 'gauge',
      unit: '1',
      description:
        'Share of all the machine’s CPUs the process used since the previous collection, by state (1 = every CPU busy).',
      attributes: { 'process.cpu.state': cpuState },
    },
    'process.memory.usage': {
      kind: 'gauge',
      unit: 'By',
      description: 'Resident set size of the process.',
    },
  },
});

/** V8's heap spaces (Node 24); a space a later V8 adds is `other` until listed here. */
const HEAP_SPACES = [
  'read_only_space',
  'new_space',
  'old_space',
  'code_space',
  'shared_space',
  'trusted_space',
  'shared_trusted_space',
  'new_large_object_space',
  'large_object_space',
  'code_large_object_space',
  'shared_large_object_space',
  'shared_trusted_large_object_space',
  'trusted_large_object_space',
] as const;

/** Resource types `process.getActiveResourcesInfo()` names in a Switchyard worker, and `other`. */
const RESOURCE_TYPES = [
  'TCPWrap',
  'TCPServerWrap',
  'TCPConnectWrap',
  'PipeWrap',
  'PipeServerWrap',
  'PipeConnectWrap',
  'TTYWrap',
  'UDPWrap',
  'TLSWrap',
  'Timeout',
  'Immediate',
  'FSReqCallback',
  'FSReqPromise',
  'FileHandle',
  'FSEventWrap',
  'StatWatcher',
  'GetAddrInfoReqWrap',
  'GetNameInfoReqWrap',
  'QueryReqWrap',
  'ShutdownWrap',
  'WriteWrap',
  'ProcessWrap',
  'SignalWrap',
  'MessagePort',
  'Worker',
  'ZlibWrap',
  'Http2Session',
  OTHER_VALUE,
] as const;

const heapSpace = {
  'v8js.heap.space.name': {
    description: 'V8 heap space; spaces this list lacks are other.',
    values: HEAP_SPACES,
  },
} as const;

const delayGauge = (statistic: string) =>
  ({
    kind: 'gauge',
    unit: 's',
    description: `Event-loop delay ${statistic} since the previous collection (an idle loop reads about 0.010 s: the sampling timer).`,
  }) as const;

/** Semantic conventions' recommended boundaries for v8js.gc.duration, as runtime-node used them. */
const GC_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export const runtimeCatalog = defineCatalog({
  namespace: 'runtime',
  semanticConventions: true,
  instruments: {
    'nodejs.eventloop.utilization': {
      kind: 'gauge',
      unit: '1',
      description: 'Event-loop utilization of the data thread since the previous collection.',
    },
    'nodejs.eventloop.time': {
      kind: 'counter',
      unit: 's',
      description: 'Time the data thread’s event loop spent active and idle.',
      attributes: {
        'nodejs.eventloop.state': { description: 'active or idle.', values: ['active', 'idle'] },
      },
    },
    'nodejs.eventloop.delay.min': delayGauge('min'),
    'nodejs.eventloop.delay.max': delayGauge('max'),
    'nodejs.eventloop.delay.mean': delayGauge('mean'),
    'nodejs.eventloop.delay.stddev': delayGauge('stddev'),
    'nodejs.eventloop.delay.p50': delayGauge('p50'),
    'nodejs.eventloop.delay.p90': delayGauge('p90'),
    'nodejs.eventloop.delay.p99': delayGauge('p99'),
    'v8js.gc.duration': {
      kind: 'histogram',
      unit: 's',
      description:
        'Garbage-collection pauses of the data thread, by kind (major, minor, incremental, weakcb).',
      buckets: GC_DURATION_BUCKETS,
      attributes: {
        'v8js.gc.type': {
          description: 'Kind of collection.',
          values: ['major', 'minor', 'incremental', 'weakcb'],
        },
      },
    },
    'v8js.memory.heap.space.size': {
      kind: 'updown_counter',
      unit: 'By',
      description: 'Size of each V8 heap space of the data thread.',
      attributes: heapSpace,
    },
    'v8js.memory.heap.used': {
      kind: 'gauge',
      unit: 'By',
      description: 'Bytes used in each V8 heap space of the data thread.',
      attributes: heapSpace,
    },
    'v8js.memory.heap.space.available_size': {
      kind: 'gauge',
      unit: 'By',
      description: 'Bytes still available in each V8 heap space of the data thread.',
      attributes: heapSpace,
    },
    'v8js.memory.heap.space.physical_size': {
      kind: 'gauge',
      unit: 'By',
      description: 'Physical memory committed to each V8 heap space of the data thread.',
      attributes: heapSpace,
    },
    'v8js.resource.active': {
      kind: 'gauge',
      unit: '{resource}',
      description: 'Active libuv resources of the data thread (timers, sockets, servers) by type.',
      attributes: {
        'v8js.resource.type': {
          description:
            'Resource type as process.getActiveResourcesInfo() names it; unlisted types are other.',
          values: RESOURCE_TYPES,
        },
      },
    },
  },
});

/** What docs/metrics.md and the naming tests list of the process and runtime metrics. */
export interface ProcessMetricDescription {
  readonly name: string;
  readonly unit: string;
  readonly kind: 'counter' | 'up-down counter' | 'gauge' | 'histogram';
  readonly attributeKeys: readonly string[];
  readonly description: string;
}

function describe(catalog: Catalog<CatalogDeclaration>): ProcessMetricDescription[] {
  return catalog.instruments.map((instrument) => ({
    name: instrument.otelName,
    unit: instrument.unit,
    kind: instrument.kind === 'updown_counter' ? 'up-down counter' : instrument.kind,
    attributeKeys: instrument.attributes.map((attribute) => attribute.key),
    description: instrument.description,
  }));
}

export const PROCESS_METRICS: readonly ProcessMetricDescription[] = Object.freeze([
  ...describe(processCatalog),
  ...describe(runtimeCatalog),
]);

/**
 * Sampling interval of the event-loop delay histogram (`perf_hooks.monitorEventLoopDelay`). A
 * 10 ms timer costs 100 wake-ups a second, nothing next to a busy worker, and still sees the
 * stalls that matter to network latency. The histogram records the time between timer ticks, so
 * an idle loop reports delays of about 0.010 s; a stall is the excess over that. The delay gauges
 * keep their previous values until the histogram holds 5 samples.
 */
const EVENT_LOOP_DELAY_RESOLUTION_MS = 10;

const GC_KINDS: Readonly<Record<number, string>> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

export interface Sampler {
  /** Stops sampling (timers, observers, collect hooks); the cells keep their last values. Idempotent. */
  stop(): void;
}

type RuntimeHandles = CatalogHandles<(typeof runtimeCatalog)['declaration']>;

/** Cells of a family with one attribute, resolved the first time each value is seen. */
function cellsByValue<K extends string>(
  family: { cell(attributes: Readonly<Record<K, string>>): GaugeCell | { value: number } },
  key: K,
): (value: string) => { value: number } {
  const cells = new Map<string, { value: number }>();
  return (value) => {
    let cell = cells.get(value);
    if (cell === undefined) {
      cell = family.cell({ [key]: value } as Record<K, string>);
      cells.set(value, cell);
    }
    return cell;
  };
}

function sampleEventLoop(handles: RuntimeHandles, running: () => boolean): Sampler {
  const utilization = handles['nodejs.eventloop.utilization'].cell();
  const active = handles['nodejs.eventloop.time'].cell({ 'nodejs.eventloop.state': 'active' });
  const idle = handles['nodejs.eventloop.time'].cell({ 'nodejs.eventloop.state': 'idle' });
  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_DELAY_RESOLUTION_MS });
  delay.enable();
  const gauges = {
    min: handles['nodejs.eventloop.delay.min'].cell(),
    max: handles['nodejs.eventloop.delay.max'].cell(),
    mean: handles['nodejs.eventloop.delay.mean'].cell(),
    stddev: handles['nodejs.eventloop.delay.stddev'].cell(),
    p50: handles['nodejs.eventloop.delay.p50'].cell(),
    p90: handles['nodejs.eventloop.delay.p90'].cell(),
    p99: handles['nodejs.eventloop.delay.p99'].cell(),
  };
  const seconds = (ns: number) => (Number.isNaN(ns) ? 0 : ns / 1e9);
  let last = performance.eventLoopUtilization();
  handles['nodejs.eventloop.utilization'].onCollect(() => {
    if (!running()) return;
    const now = performance.eventLoopUtilization();
    utilization.set(performance.eventLoopUtilization(now, last).utilization);
    last = now;
    active.value = now.active / 1000;
    idle.value = now.idle / 1000;
    if (delay.count < 5) return;
    gauges.min.set(seconds(delay.min));
    gauges.max.set(seconds(delay.max));
    gauges.mean.set(seconds(delay.mean));
    gauges.stddev.set(seconds(delay.stddev));
    gauges.p50.set(seconds(delay.percentile(50)));
    gauges.p90.set(seconds(delay.percentile(90)));
    gauges.p99.set(seconds(delay.percentile(99)));
    delay.reset();
  });
  return { stop: () => delay.disable() };
}

function sampleGc(handles: RuntimeHandles): Sampler {
  const family = handles['v8js.gc.duration'];
  const series = new Map(
    Object.entries(GC_KINDS).map(([kind, name]) => [Number(kind), family.series({ 'v8js.gc.type': name })]),
  );
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      series.get(kind ?? -1)?.record(entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { stop: () => observer.disconnect() };
}

function sampleHeapAndResources(handles: RuntimeHandles, running: () => boolean): void {
  const name = 'v8js.heap.space.name';
  const size = cellsByValue(handles['v8js.memory.heap.space.size'], name);
  const used = cellsByValue(handles['v8js.memory.heap.used'], name);
  const available = cellsByValue(handles['v8js.memory.heap.space.available_size'], name);
  const physical = cellsByValue(handles['v8js.memory.heap.space.physical_size'], name);
  const resources = cellsByValue(handles['v8js.resource.active'], 'v8js.resource.type');
  const resourceCells = new Set<{ value: number }>();
  handles['v8js.memory.heap.used'].onCollect(() => {
    if (!running()) return;
    for (const space of v8.getHeapSpaceStatistics()) {
      size(space.space_name).value = space.space_size;
      used(space.space_name).value = space.space_used_size;
      available(space.space_name).value = space.space_available_size;
      physical(space.space_name).value = space.physical_space_size;
    }
    // Count afresh; unlisted types all count into `other`.
    for (const cell of resourceCells) cell.value = 0;
    for (const type of process.getActiveResourcesInfo()) {
      const cell = resources(type);
      resourceCells.add(cell);
      cell.value += 1;
    }
  });
}

/** Starts the data thread's runtime metrics in `writer`: sampled at each snapshot, GC as it happens. */
export function startRuntimeMetrics(writer: MetricsWriter): Sampler {
  const handles = registerCatalog(writer, runtimeCatalog);
  let stopped = false;
  const running = () => !stopped;
  const eventLoop = sampleEventLoop(handles, running);
  const gc = sampleGc(handles);
  sampleHeapAndResources(handles, running);
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      eventLoop.stop();
      gc.stop();
    },
  };
}

/** Starts the process-wide metrics in `writer` (the telemetry thread's), sampled at each snapshot. */
export function startProcessMetrics(writer: MetricsWriter): Sampler {
  const handles = registerCatalog(writer, processCatalog);
  const time = handles['process.cpu.time'];
  const share = handles['process.cpu.utilization'];
  const cells = {
    user: time.cell({ 'process.cpu.state': 'user' }),
    system: time.cell({ 'process.cpu.state': 'system' }),
    userShare: share.cell({ 'process.cpu.state': 'user' }),
    systemShare: share.cell({ 'process.cpu.state': 'system' }),
    rss: handles['process.memory.usage'].cell(),
  };
  const cpus = Math.max(1, os.availableParallelism());
  let last = { atMs: performance.now(), usage: process.cpuUsage() };
  let stopped = false;
  time.onCollect(() => {
    if (stopped) return;
    const now = { atMs: performance.now(), usage: process.cpuUsage() };
    const elapsedMicros = (now.atMs - last.atMs) * 1000 * cpus;
    cells.user.value = now.usage.user / 1e6;
    cells.system.value = now.usage.system / 1e6;
    if (elapsedMicros > 0) {
      cells.userShare.set((now.usage.user - last.usage.user) / elapsedMicros);
      cells.systemShare.set((now.usage.system - last.usage.system) / elapsedMicros);
    }
    last = now;
    cells.rss.set(process.memoryUsage.rss());
  });
  return {
    stop: () => {
      stopped = true;
    },
  };
}
