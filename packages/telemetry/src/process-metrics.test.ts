import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AggregationTemporality,
  DataPointType,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { catalogProducer } from './catalog-producer.ts';
import { CollectionHub } from './collection-hub.ts';
import { MetricsWriter } from './metrics-writer.ts';
import {
  PROCESS_METRICS,
  type ProcessMetricDescription,
  processCatalog,
  runtimeCatalog,
  type Sampler,
  startProcessMetrics,
  startRuntimeMetrics,
} from './process-metrics.ts';
import { SeriesRegistry } from './series-registry.ts';

interface CollectedMetric {
  readonly metric: MetricData;
}

interface Harness {
  readonly samplers: readonly Sampler[];
  collect(): Promise<Map<string, CollectedMetric>>;
  /**
   * Collects until the event-loop delay gauges report: they stay at zero until the 10 ms histogram
   * holds 5 samples, which takes far longer than 50 ms on a loaded machine.
   */
  collectOnceDelaySampled(): Promise<Map<string, CollectedMetric>>;
}

const DELAY_SAMPLING_DEADLINE_MS = 10_000;
/** Long enough for the delay timer, GC entries and CPU time to move if anything still collected them. */
const QUIET_AFTER_STOP_MS = 100;

/** Both samplers in one writer, read through the same hub and producer as the OTLP push. */
function startHarness(t: TestContext, temporality = AggregationTemporality.CUMULATIVE): Harness {
  const writer = new MetricsWriter();
  const samplers = [startRuntimeMetrics(writer), startProcessMetrics(writer)];
  const hub = new CollectionHub(
    new SeriesRegistry([...processCatalog.instruments, ...runtimeCatalog.instruments]),
    writer,
    5_000,
  );
  const producer = catalogProducer({ hub, scope: { name: 'test' }, temporality: () => temporality });
  // A timer, so that v8js.resource.active has a Timeout to count.
  const keepAlive = setInterval(() => {}, 60_000);
  t.after(() => {
    clearInterval(keepAlive);
    for (const sampler of samplers) sampler.stop();
  });
  const collect = async (): Promise<Map<string, CollectedMetric>> => {
    const { resourceMetrics, errors } = await producer.collect();
    assert.deepEqual(errors, []);
    const collected = new Map<string, CollectedMetric>();
    for (const { metrics } of resourceMetrics.scopeMetrics) {
      for (const metric of metrics) collected.set(metric.descriptor.name, { metric });
    }
    return collected;
  };
  return {
    samplers,
    collect,
    async collectOnceDelaySampled() {
      const deadline = performance.now() + DELAY_SAMPLING_DEADLINE_MS;
      for (;;) {
        const collected = await collect();
        const max = collected.get('nodejs.eventloop.delay.max')?.metric.dataPoints[0]?.value;
        if ((max as number) > 0 || performance.now() > deadline) return collected;
        await sleep(20);
      }
    },
  };
}

function metricNamed(collected: Map<string, CollectedMetric>, name: string): MetricData {
  const found = collected.get(name);
  assert.ok(found, `${name} was not collected; got ${[...collected.keys()].join(', ')}`);
  return found.metric;
}

function attributeValues(metric: MetricData, key: string): string[] {
  return metric.dataPoints.map((point) => String(point.attributes[key])).sort();
}

function numberValues(metric: MetricData): number[] {
  return metric.dataPoints.map((point) => point.value as number);
}

function gcCount(collected: Map<string, CollectedMetric>): number {
  const durations = collected.get('v8js.gc.duration')?.metric.dataPoints ?? [];
  return durations.reduce((total, point) => total + (point.value as Histogram).count, 0);
}

/** Allocates far more short-lived objects than V8's new space holds, so scavenges must run. */
function churnYoungGeneration(): number {
  let retained = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const record = { index: i, label: `record-${i}`, tags: [i, i + 1] };
    retained += record.tags.length;
  }
  return retained;
}

function burnCpu(durationMs: number): void {
  const until = performance.now() + durationMs;
  while (performance.now() < until);
}

type PointKind = ProcessMetricDescription['kind'] | 'exponential histogram';

interface ExpectedMetric {
  readonly name: string;
  readonly unit: string;
  readonly kind: PointKind;
  readonly attributeKeys: readonly string[];
}

const EXPECTED_METRICS: readonly ExpectedMetric[] = PROCESS_METRICS.map(
  ({ description: _, ...metric }) => metric,
);

function pointKind(metric: MetricData): PointKind {
  switch (metric.dataPointType) {
    case DataPointType.SUM:
      return metric.isMonotonic ? 'counter' : 'up-down counter';
    case DataPointType.GAUGE:
      return 'gauge';
    case DataPointType.HISTOGRAM:
      return 'histogram';
    case DataPointType.EXPONENTIAL_HISTOGRAM:
      return 'exponential histogram';
  }
}

function descriptionOf({ metric }: CollectedMetric): ExpectedMetric {
  const keys = new Set(metric.dataPoints.flatMap((point) => Object.keys(point.attributes)));
  return {
    name: metric.descriptor.name,
    unit: metric.descriptor.unit,
    kind: pointKind(metric),
    attributeKeys: [...keys].sort(),
  };
}

const byName = (a: ExpectedMetric, b: ExpectedMetric): number => a.name.localeCompare(b.name);

test('produces exactly the listed process metrics with their units, point kinds and attribute keys', async (t) => {
  const harness = startHarness(t);
  churnYoungGeneration();

  const collected = await harness.collectOnceDelaySampled();

  assert.deepEqual(
    [...collected.values()].map(descriptionOf).sort(byName),
    [...EXPECTED_METRICS].sort(byName),
  );
});

test('produces no system or network metrics', async (t) => {
  const harness = startHarness(t);

  const names = [...(await harness.collectOnceDelaySampled()).keys()];

  assert.ok(names.length > 0);
  assert.deepEqual(
    names.filter((name) => !/^(process|nodejs|v8js)\./.test(name)),
    [],
  );
});

test('reports process CPU time by user and system state and a non-zero resident memory', async (t) => {
  const harness = startHarness(t);
  burnCpu(20);

  const collected = await harness.collect();

  const cpuTime = metricNamed(collected, 'process.cpu.time');
  assert.deepEqual(attributeValues(cpuTime, 'process.cpu.state'), ['system', 'user']);
  assert.ok(numberValues(cpuTime).every((seconds) => seconds >= 0));
  const userSeconds = cpuTime.dataPoints.find((point) => point.attributes['process.cpu.state'] === 'user');
  assert.ok((userSeconds?.value as number) > 0.02);
  const utilization = metricNamed(collected, 'process.cpu.utilization');
  assert.deepEqual(attributeValues(utilization, 'process.cpu.state'), ['system', 'user']);
  const [rssBytes] = numberValues(metricNamed(collected, 'process.memory.usage'));
  assert.ok((rssBytes ?? 0) > 1024 * 1024);
});

test('reports event-loop delay in seconds once the histogram has enough samples', async (t) => {
  const harness = startHarness(t);

  const collected = await harness.collectOnceDelaySampled();

  const delay = (suffix: string): number =>
    numberValues(metricNamed(collected, `nodejs.eventloop.delay.${suffix}`))[0] ?? NaN;
  assert.ok(delay('min') > 0);
  assert.ok(delay('min') <= delay('p50'));
  assert.ok(delay('p50') <= delay('p90'));
  assert.ok(delay('p90') <= delay('p99'));
  assert.ok(delay('p99') <= delay('max'));
  // The loop was idle: delays are the 10 ms sampling interval, not a stall of a second or more.
  assert.ok(delay('max') < 1);
});

test('reports event-loop utilization as a ratio and event-loop time by active and idle state', async (t) => {
  const harness = startHarness(t);
  await sleep(20);
  burnCpu(20);

  const collected = await harness.collect();

  const [utilization] = numberValues(metricNamed(collected, 'nodejs.eventloop.utilization'));
  assert.ok(utilization !== undefined && utilization > 0 && utilization <= 1);
  const loopTime = metricNamed(collected, 'nodejs.eventloop.time');
  assert.deepEqual(attributeValues(loopTime, 'nodejs.eventloop.state'), ['active', 'idle']);
  assert.ok(numberValues(loopTime).every((seconds) => seconds > 0));
});

test('reports V8 heap spaces by space name and the active timer as a resource', async (t) => {
  const harness = startHarness(t);

  const collected = await harness.collect();

  const used = metricNamed(collected, 'v8js.memory.heap.used');
  const spaces = attributeValues(used, 'v8js.heap.space.name');
  assert.ok(spaces.includes('new_space') && spaces.includes('old_space'), spaces.join(', '));
  const sizes = metricNamed(collected, 'v8js.memory.heap.space.size');
  assert.deepEqual(attributeValues(sizes, 'v8js.heap.space.name'), spaces);
  const resources = metricNamed(collected, 'v8js.resource.active');
  const timers = resources.dataPoints.find((point) => point.attributes['v8js.resource.type'] === 'Timeout');
  assert.ok((timers?.value as number) >= 1);
});

test('records garbage collections by kind in the GC duration histogram', async (t) => {
  const harness = startHarness(t);
  churnYoungGeneration();
  // PerformanceObserver delivers GC entries in a later task.
  await sleep(20);

  const collected = await harness.collect();

  const gc = metricNamed(collected, 'v8js.gc.duration');
  const kinds = attributeValues(gc, 'v8js.gc.type');
  assert.ok(kinds.includes('minor'), kinds.join(', '));
  assert.ok(kinds.every((kind) => ['major', 'minor', 'incremental', 'weakcb'].includes(kind)));
  assert.ok(gcCount(collected) > 0);
});

test('reads nothing from the process after stop', async (t) => {
  const harness = startHarness(t);
  await harness.collect();
  const cpuUsage = t.mock.method(process, 'cpuUsage');
  const rss = t.mock.method(process.memoryUsage, 'rss');
  const activeResources = t.mock.method(process, 'getActiveResourcesInfo');
  await harness.collect();
  assert.ok(
    cpuUsage.mock.callCount() > 0 && rss.mock.callCount() > 0 && activeResources.mock.callCount() > 0,
  );
  cpuUsage.mock.resetCalls();
  rss.mock.resetCalls();
  activeResources.mock.resetCalls();

  for (const sampler of harness.samplers) sampler.stop();
  await harness.collect();

  assert.equal(cpuUsage.mock.callCount(), 0);
  assert.equal(rss.mock.callCount(), 0);
  assert.equal(activeResources.mock.callCount(), 0);
});

test('keeps cumulative values frozen after stop despite CPU work and garbage collections', async (t) => {
  const harness = startHarness(t);
  churnYoungGeneration();
  const before = await harness.collectOnceDelaySampled();

  for (const sampler of harness.samplers) sampler.stop();
  burnCpu(20);
  churnYoungGeneration();
  await sleep(QUIET_AFTER_STOP_MS);
  const after = await harness.collect();

  for (const name of ['process.cpu.time', 'nodejs.eventloop.time', 'nodejs.eventloop.delay.max']) {
    assert.deepEqual(numberValues(metricNamed(after, name)), numberValues(metricNamed(before, name)), name);
  }
  assert.equal(gcCount(after), gcCount(before));
});

test('gives a delta reader zero counts and no GC points after stop', async (t) => {
  const harness = startHarness(t, AggregationTemporality.DELTA);
  assert.ok((await harness.collect()).size > 0);

  for (const sampler of harness.samplers) sampler.stop();
  burnCpu(20);
  churnYoungGeneration();
  await sleep(QUIET_AFTER_STOP_MS);

  const after = await harness.collect();
  assert.equal(after.has('v8js.gc.duration'), false);
  for (const name of ['process.cpu.time', 'nodejs.eventloop.time']) {
    assert.deepEqual(new Set(numberValues(metricNamed(after, name))), new Set([0]), name);
  }
});

test('can be stopped twice', (t) => {
  const harness = startHarness(t);

  for (const sampler of harness.samplers) sampler.stop();

  assert.doesNotThrow(() => {
    for (const sampler of harness.samplers) sampler.stop();
  });
});
