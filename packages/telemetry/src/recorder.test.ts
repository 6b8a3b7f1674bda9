import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { defineCatalog } from './catalog.ts';
import { standaloneMetrics } from './standalone-metrics.ts';

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

/** `name{labels}` -> value of every sample line of a text exposition. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    map.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return map;
}

function setup() {
  const recorded = standaloneMetrics(catalog);
  /** The samples of one Prometheus family (`name` and `name{...}` lines), sorted. */
  const collect = (name: string): Array<[string, number]> =>
    [...samples(recorded.scrape())].filter(([key]) => key === name || key.startsWith(`${name}{`)).sort();
  return { handles: recorded.metrics, collect };
}

test('every series of a declared attribute set is exported at zero before anything is recorded', () => {
  const { collect } = setup();
  assert.deepEqual(collect('switchyard_sample_connections_total'), [
    ['switchyard_sample_connections_total{listener="internal",result="ok"}', 0],
    ['switchyard_sample_connections_total{listener="internal",result="refused"}', 0],
    ['switchyard_sample_connections_total{listener="public",result="ok"}', 0],
    ['switchyard_sample_connections_total{listener="public",result="refused"}', 0],
  ]);
  assert.deepEqual(collect('switchyard_sample_active_connections'), [
    ['switchyard_sample_active_connections', 0],
  ]);
});

test('cells count exactly what the hot path adds, read at collection time', () => {
  const { handles, collect } = setup();
  const publicOk = handles.connections.cell({ listener: 'public', result: 'ok' });
  for (let i = 0; i < 1000; i++) publicOk.add();
  publicOk.value += 5;
  const active = handles.active_connections.cell();
  active.add(3);
  active.add(-1);
  handles.healthy.cell().set(1);
  const connections = new Map(collect('switchyard_sample_connections_total'));
  assert.equal(connections.get('switchyard_sample_connections_total{listener="public",result="ok"}'), 1005);
  assert.deepEqual(collect('switchyard_sample_active_connections'), [
    ['switchyard_sample_active_connections', 2],
  ]);
  assert.deepEqual(collect('switchyard_sample_healthy'), [['switchyard_sample_healthy', 1]]);
});

test('a cell reads back what it holds, and keeps counting beyond 2^32', () => {
  const { handles } = setup();
  const bytes = handles.connections.cell({ listener: 'internal', result: 'ok' });
  bytes.add(2 ** 32);
  bytes.add(7);
  assert.equal(bytes.value, 2 ** 32 + 7);
});

test('the same attribute set resolves to the same cell', () => {
  const { handles } = setup();
  assert.equal(
    handles.connections.cell({ listener: 'public', result: 'ok' }),
    handles.connections.cell({ result: 'ok', listener: 'public' }),
  );
});

test('a value outside its declared set is recorded as other', () => {
  const { handles, collect } = setup();
  handles.connections.cell({ listener: '10.1.2.3:443', result: 'ok' }).add();
  const connections = new Map(collect('switchyard_sample_connections_total'));
  assert.equal(connections.get('switchyard_sample_connections_total{listener="other",result="ok"}'), 1);
  assert.ok(![...connections.keys()].some((key) => key.includes('10.1.2.3')));
});

test('histogram series carry their bucketed attributes and appear with the first observation', () => {
  const { handles, collect } = setup();
  const name = 'switchyard_sample_connection_duration_seconds';
  const publicSeries = handles['connection.duration'].series({ listener: 'public' });
  assert.deepEqual(collect(`${name}_count`), [], 'no observation, no series');
  publicSeries.record(0.2);
  handles['connection.duration'].series({ listener: 'somewhere else' }).record(3);
  const histogram = new Map([
    ...collect(`${name}_count`),
    ...collect(`${name}_sum`),
    ...collect(`${name}_bucket`),
  ]);
  assert.equal(histogram.get(`${name}_count{listener="public"}`), 1);
  assert.equal(histogram.get(`${name}_sum{listener="other"}`), 3);
  assert.equal(
    histogram.get(`${name}_bucket{listener="public",le="0.0005"}`),
    0,
    'seconds buckets from the catalog',
  );
  assert.equal(histogram.get(`${name}_bucket{listener="public",le="0.25"}`), 1);
  assert.equal(histogram.get(`${name}_bucket{listener="public",le="+Inf"}`), 1);
  assert.equal(histogram.has(`${name}_count{listener="internal"}`), false);
});

test('thousands of distinct raw values keep the series count within the declared bound', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.string(), { minLength: 1000, maxLength: 3000 }), (rawValues) => {
      const { handles, collect } = setup();
      for (const raw of rawValues) {
        handles.connections.cell({ listener: raw, result: raw }).add();
        handles['connection.duration'].series({ listener: raw }).record(0.01);
      }
      const counter = collect('switchyard_sample_connections_total');
      const histogram = collect('switchyard_sample_connection_duration_seconds_count');
      // (2 declared + other) x (2 declared + other) and 2 + other.
      assert.ok(counter.length <= 9, `counter series ${counter.length}`);
      assert.ok(histogram.length <= 3, `histogram series ${histogram.length}`);
      const total = counter.reduce((sum, [, value]) => sum + value, 0);
      assert.equal(total, rawValues.length, 'nothing is lost while bucketing');
    }),
    { numRuns: 5 },
  );
});

test('collect hooks run before the cells are read, at every collection', () => {
  const { handles, collect } = setup();
  let socketBytes = 0;
  let counted = 0;
  const cell = handles.connections.cell({ listener: 'public', result: 'ok' });
  handles.connections.onCollect(() => {
    cell.add(socketBytes - counted);
    counted = socketBytes;
  });
  const key = 'switchyard_sample_connections_total{listener="public",result="ok"}';
  socketBytes = 1234;
  assert.equal(new Map(collect('switchyard_sample_connections_total')).get(key), 1234);
  socketBytes = 2000;
  assert.equal(new Map(collect('switchyard_sample_connections_total')).get(key), 2000);
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
  const recorded = standaloneMetrics(upstreamCatalog);
  const collect = () => [...samples(recorded.scrape())].sort();
  return { handles: recorded.metrics, collect };
}

const failures = (labels: string) => `switchyard_sample_dial_failures_total{${labels}}`;

test('configured names get their series at zero when registered, and only registered pairs exist', () => {
  const { handles, collect } = setupUpstreams();
  assert.deepEqual(collect(), []);
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  handles.dial_failures.register({ pool: 'db', upstream: 'db-1' });
  assert.deepEqual(collect(), [
    [failures('pool="db",reason="refused",upstream="db-1"'), 0],
    [failures('pool="db",reason="timeout",upstream="db-1"'), 0],
    [failures('pool="web",reason="refused",upstream="web-1"'), 0],
    [failures('pool="web",reason="timeout",upstream="web-1"'), 0],
  ]);
});

test('an unregistered pair of configured names records as other, never as itself', () => {
  const { handles, collect } = setupUpstreams();
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  handles.dial_failures.cell({ pool: 'web', upstream: '10.0.0.7:80', reason: 'refused' }).add();
  handles.dial_failures.cell({ pool: 'db', upstream: 'web-1', reason: 'refused' }).add();
  const series = new Map(collect());
  assert.equal(series.get(failures('pool="other",reason="refused",upstream="other"')), 2);
});

test('registering a pair again keeps its series and counts', () => {
  const { handles, collect } = setupUpstreams();
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  handles.dial_failures.cell({ pool: 'web', upstream: 'web-1', reason: 'timeout' }).add(5);
  handles.dial_failures.register({ pool: 'web', upstream: 'web-1' });
  const series = new Map(collect());
  assert.equal(
    series.get(failures('pool="web",reason="timeout",upstream="web-1"')),
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
