import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { DataPointType, MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { defineCatalog } from './catalog.ts';
import { registerCatalog } from './recorder.ts';

const catalog = defineCatalog({
  namespace: 'switchyard.sample',
  instruments: {
    connections: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Connections accepted.',
      attributes: {
        listener: { description: 'Configured listener name.', values: ['public', 'internal'] },
        result: { description: 'Outcome.', values: ['ok', 'refused'] },
      },
    },
    active_connections: { kind: 'updown_counter', unit: '{connection}', description: 'Open now.' },
    healthy: { kind: 'gauge', unit: '{upstream}', description: '1 healthy.' },
    'connection.duration': {
      kind: 'histogram',
      unit: 's',
      description: 'Duration.',
      attributes: { listener: { description: 'Configured listener name.', values: ['public', 'internal'] } },
    },
  },
});

function setup() {
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [reader] });
  const handles = registerCatalog(provider.getMeter('test'), catalog);
  const collect = async (name: string): Promise<MetricData | undefined> => {
    const { resourceMetrics } = await reader.collect();
    return resourceMetrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .find((m) => m.descriptor.name === name);
  };
  return { handles, collect, provider };
}

function points(metric: MetricData | undefined): Array<[string, number]> {
  assert.ok(metric !== undefined, 'metric missing');
  assert.notEqual(metric.dataPointType, DataPointType.HISTOGRAM);
  return (metric.dataPoints as Array<{ attributes: Record<string, unknown>; value: number }>)
    .map((point): [string, number] => [JSON.stringify(point.attributes), point.value])
    .sort();
}

test('every series of a declared attribute set is exported at zero before anything is recorded', async () => {
  const { collect } = setup();
  assert.deepEqual(points(await collect('switchyard.sample.connections')), [
    ['{"listener":"internal","result":"ok"}', 0],
    ['{"listener":"internal","result":"refused"}', 0],
    ['{"listener":"public","result":"ok"}', 0],
    ['{"listener":"public","result":"refused"}', 0],
  ]);
  assert.deepEqual(points(await collect('switchyard.sample.active_connections')), [['{}', 0]]);
});

test('cells count exactly what the hot path adds, read at collection time', async () => {
  const { handles, collect } = setup();
  const publicOk = handles.connections.cell({ listener: 'public', result: 'ok' });
  for (let i = 0; i < 1000; i++) publicOk.add();
  publicOk.value += 5;
  const active = handles.active_connections.cell();
  active.add(3);
  active.add(-1);
  handles.healthy.cell().set(1);
  const connections = new Map(points(await collect('switchyard.sample.connections')));
  assert.equal(connections.get('{"listener":"public","result":"ok"}'), 1005);
  assert.deepEqual(points(await collect('switchyard.sample.active_connections')), [['{}', 2]]);
  assert.deepEqual(points(await collect('switchyard.sample.healthy')), [['{}', 1]]);
});

test('the same attribute set resolves to the same cell', () => {
  const { handles } = setup();
  assert.equal(
    handles.connections.cell({ listener: 'public', result: 'ok' }),
    handles.connections.cell({ result: 'ok', listener: 'public' }),
  );
});

test('a value outside its declared set is recorded as other', async () => {
  const { handles, collect } = setup();
  handles.connections.cell({ listener: '10.1.2.3:443', result: 'ok' }).add();
  const connections = new Map(points(await collect('switchyard.sample.connections')));
  assert.equal(connections.get('{"listener":"other","result":"ok"}'), 1);
  assert.ok(![...connections.keys()].some((key) => key.includes('10.1.2.3')));
});

test('histogram series carry their bucketed attributes and appear with the first observation', async () => {
  const { handles, collect } = setup();
  assert.equal(await collect('switchyard.sample.connection.duration'), undefined);
  handles['connection.duration'].series({ listener: 'public' }).record(0.2);
  handles['connection.duration'].series({ listener: 'somewhere else' }).record(3);
  const metric = await collect('switchyard.sample.connection.duration');
  assert.equal(metric?.dataPointType, DataPointType.HISTOGRAM);
  const byListener = new Map(metric.dataPoints.map((point) => [point.attributes.listener, point.value]));
  assert.equal(byListener.get('public')?.count, 1);
  assert.equal(byListener.get('other')?.sum, 3);
  assert.equal(byListener.get('public')?.buckets.boundaries[0], 0.0005, 'seconds buckets from the catalog');
});

test('thousands of distinct raw values keep the series count within the declared bound', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(fc.string(), { minLength: 1000, maxLength: 3000 }), async (rawValues) => {
      const { handles, collect } = setup();
      for (const raw of rawValues) {
        handles.connections.cell({ listener: raw, result: raw }).add();
        handles['connection.duration'].series({ listener: raw }).record(0.01);
      }
      const counter = await collect('switchyard.sample.connections');
      const histogram = await collect('switchyard.sample.connection.duration');
      // (2 declared + other) x (2 declared + other) and 2 + other.
      assert.ok((counter?.dataPoints.length ?? 0) <= 9, `counter series ${counter?.dataPoints.length}`);
      assert.ok((histogram?.dataPoints.length ?? 0) <= 3, `histogram series ${histogram?.dataPoints.length}`);
      const total = counter?.dataPoints.reduce((sum, point) => sum + (point.value as number), 0);
      assert.equal(total, rawValues.length, 'nothing is lost while bucketing');
    }),
    { numRuns: 5 },
  );
});

test('collect hooks run before the cells are read, at every collection', async () => {
  const { handles, collect } = setup();
  let socketBytes = 0;
  let counted = 0;
  const cell = handles.connections.cell({ listener: 'public', result: 'ok' });
  handles.connections.onCollect(() => {
    cell.add(socketBytes - counted);
    counted = socketBytes;
  });
  socketBytes = 1234;
  let connections = new Map(points(await collect('switchyard.sample.connections')));
  assert.equal(connections.get('{"listener":"public","result":"ok"}'), 1234);
  socketBytes = 2000;
  connections = new Map(points(await collect('switchyard.sample.connections')));
  assert.equal(connections.get('{"listener":"public","result":"ok"}'), 2000);
});

const upstreamCatalog = defineCatalog({
  namespace: 'switchyard.sample',
  configuredLimit: 3,
  instruments: {
    dial_failures: {
      kind: 'counter',
      unit: '{dial}',
      description: 'Failed dials.',
      attributes: {
        pool: { description: 'Configured pool name.', configured: true },
        upstream: { description: 'Configured upstream name.', configured: true },
        reason: { description: 'Why.', values: ['timeout', 'refused'] },
      },
    },
  },
});

function setupUpstreams() {
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [reader] });
  const handles = registerCatalog(provider.getMeter('test'), upstreamCatalog);
  const collect = async () => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics[0]?.metrics[0];
    return metric === undefined ? [] : points(metric);
  };
  return { handles, collect };
}

test('configured names get their series at zero when registered, and only registered pairs exist', async () => {
  const { handles, collect } = setupUpstreams();
  assert.deepEqual(await collect(), []);
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  handles.dial_failures.register({ pool: 'db', upstream: 'db-1' });
  assert.deepEqual(await collect(), [
    ['{"pool":"db","upstream":"db-1","reason":"refused"}', 0],
    ['{"pool":"db","upstream":"db-1","reason":"timeout"}', 0],
    ['{"pool":"web","upstream":"web-1","reason":"refused"}', 0],
    ['{"pool":"web","upstream":"web-1","reason":"timeout"}', 0],
  ]);
});

test('an unregistered pair of configured names records as other, never as itself', async () => {
  const { handles, collect } = setupUpstreams();
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  handles.dial_failures.cell({ pool: 'web', upstream: '10.0.0.7:80', reason: 'refused' }).add();
  handles.dial_failures.cell({ pool: 'db', upstream: 'web-1', reason: 'refused' }).add();
  const series = new Map(await collect());
  assert.equal(series.get('{"pool":"other","upstream":"other","reason":"refused"}'), 2);
});

test('registering a pair again keeps its series and counts', async () => {
  const { handles, collect } = setupUpstreams();
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  handles.dial_failures.cell({ pool: 'web', upstream: 'web-1', reason: 'timeout' }).add(5);
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  const series = new Map(await collect());
  assert.equal(
    series.get('{"pool":"web","upstream":"web-1","reason":"timeout"}'),
    5,
    'counters never restart',
  );
  assert.equal(series.size, 2);
});

test('registering more combinations than the catalog allows is refused', () => {
  const { handles } = setupUpstreams();
  for (const upstream of ['a', 'b', 'c']) handles.dial_failures.register({ pool: 'p', upstream });
  assert.throws(
    () => handles.dial_failures.register({ pool: 'p', upstream: 'd' }),
    /more than 3 configured combinations/,
  );
  assert.throws(() => handles.dial_failures.register({ pool: 'p', upstream: 'other' }), /other than "other"/);
});
