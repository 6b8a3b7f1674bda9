import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CatalogDeclaration, defineCatalog, type InstrumentDeclaration } from './catalog.ts';
import { CatalogRuleError } from './errors.ts';

const counter: InstrumentDeclaration = { kind: 'counter', unit: '{connection}', description: 'Connections.' };

function single(
  key: string,
  instrument: InstrumentDeclaration,
  namespace = 'switchyard.proxy',
): CatalogDeclaration {
  return { namespace, instruments: { [key]: instrument } };
}

function assertRule(declaration: CatalogDeclaration, instrument: string, rule: string): void {
  assert.throws(
    () => defineCatalog(declaration),
    (error: unknown) => {
      assert.ok(error instanceof CatalogRuleError, `expected CatalogRuleError, got ${error}`);
      assert.equal(error.code, 'SWY_ERR_CATALOG_RULE');
      assert.equal(error.instrument, instrument);
      assert.match(error.rule, new RegExp(`^${rule} `));
      assert.match(error.message, new RegExp(`"${instrument.replace(/\./g, '\\.')}".*${rule}`));
      return true;
    },
  );
}

test('resolves Prometheus names the way the issue writes them', () => {
  const catalog = defineCatalog({
    namespace: 'switchyard.proxy',
    instruments: {
      connections: counter,
      'connection.duration': { kind: 'histogram', unit: 's', description: 'How long connections lasted.' },
      bytes: {
        kind: 'counter',
        unit: 'By',
        description: 'Bytes proxied.',
        attributes: { direction: { description: 'd', values: ['client_to_upstream', 'upstream_to_client'] } },
      },
      upstream_healthy: { kind: 'gauge', unit: '{upstream}', description: '1 when healthy.' },
    },
  });
  const names = Object.fromEntries(
    catalog.instruments.map((i) => [i.key, [i.prometheusName, i.prometheusType]]),
  );
  assert.deepEqual(names, {
    connections: ['switchyard_proxy_connections_total', 'counter'],
    'connection.duration': ['switchyard_proxy_connection_duration_seconds', 'histogram'],
    bytes: ['switchyard_proxy_bytes_total', 'counter'],
    upstream_healthy: ['switchyard_proxy_upstream_healthy', 'gauge'],
  });
});

test('rejects a namespace outside switchyard.<component>', () => {
  assertRule(single('connections', counter, 'proxy'), 'proxy', 'N1');
  assertRule(single('connections', counter, 'switchyard.Proxy'), 'switchyard.Proxy', 'N1');
});

test('rejects segments that are not snake_case', () => {
  assertRule(single('activeConnections', counter), 'switchyard.proxy.activeConnections', 'N2');
  assertRule(single('active__connections', counter), 'switchyard.proxy.active__connections', 'N2');
});

test('rejects total and reserved suffixes in the name', () => {
  assertRule(single('connections_total', counter), 'switchyard.proxy.connections_total', 'N3');
  assertRule(single('requests.count', counter), 'switchyard.proxy.requests.count', 'N3');
});

test('rejects units that are not UCUM s, By, 1 or an annotation', () => {
  assertRule(
    single('wait', { kind: 'histogram', unit: 'ms', description: 'x' }),
    'switchyard.proxy.wait',
    'N4',
  );
  assertRule(
    single('size', { kind: 'gauge', unit: 'bytes', description: 'x' }),
    'switchyard.proxy.size',
    'N4',
  );
  assertRule(
    single('things', { kind: 'counter', unit: '{Things}', description: 'x' }),
    'switchyard.proxy.things',
    'N4',
  );
});

test('rejects a unit word in the name', () => {
  assertRule(
    single('connection.duration_seconds', { kind: 'histogram', unit: 's', description: 'x' }),
    'switchyard.proxy.connection.duration_seconds',
    'N5',
  );
  assertRule(
    single('latency_ms', { kind: 'histogram', unit: 's', description: 'x' }),
    'switchyard.proxy.latency_ms',
    'N5',
  );
  assertRule(
    single('buffer_bytes', { kind: 'gauge', unit: '{batch}', description: 'x' }),
    'switchyard.proxy.buffer_bytes',
    'N5',
  );
});

test('allows a unit word that is what is counted', () => {
  const catalog = defineCatalog(
    single('bytes_received', { kind: 'counter', unit: 'By', description: 'x' }, 'switchyard.relay'),
  );
  assert.equal(catalog.instruments[0]?.prometheusName, 'switchyard_relay_bytes_received_total');
});

test('rejects a 0/1 state gauge of unit 1, which the Collector would name _ratio', () => {
  assertRule(
    single('upstream_healthy', { kind: 'gauge', unit: '1', description: '1 healthy, 0 not' }),
    'switchyard.proxy.upstream_healthy',
    'N6',
  );
  const ratio = defineCatalog(
    single('buffer.fill_ratio', { kind: 'gauge', unit: '1', description: 'Share used.' }),
  );
  assert.equal(ratio.instruments[0]?.prometheusName, 'switchyard_proxy_buffer_fill_ratio');
});

test('rejects millisecond-sized buckets on a seconds histogram and buckets on non-histograms', () => {
  assertRule(
    single('wait', { kind: 'histogram', unit: 's', description: 'x', buckets: [5, 10, 25, 50, 100] }),
    'switchyard.proxy.wait',
    'N7',
  );
  assertRule(
    single('wait', { kind: 'histogram', unit: 's', description: 'x', buckets: [0.1, 0.05] }),
    'switchyard.proxy.wait',
    'N7',
  );
  assertRule(single('connections', { ...counter, buckets: [1, 2] }), 'switchyard.proxy.connections', 'N7');
});

test('gives seconds histograms second-sized default buckets', () => {
  const catalog = defineCatalog(single('wait', { kind: 'histogram', unit: 's', description: 'x' }));
  const buckets = catalog.instruments[0]?.buckets ?? [];
  assert.ok((buckets[0] as number) < 0.01 && (buckets.at(-1) as number) >= 60, `buckets ${buckets}`);
});

test('rejects reserved or badly formed attribute keys', () => {
  for (const key of ['le', 'job', 'Reason', 'otel.scope.name']) {
    assertRule(
      single('connections', { ...counter, attributes: { [key]: { description: 'x', values: ['a'] } } }),
      'switchyard.proxy.connections',
      'N8',
    );
  }
});

test('rejects open or empty value sets', () => {
  assertRule(
    single('connections', { ...counter, attributes: { reason: { description: 'x', values: [] } } }),
    'switchyard.proxy.connections',
    'N9',
  );
  assertRule(
    single('connections', { ...counter, attributes: { reason: { description: 'x', values: ['a', 'a'] } } }),
    'switchyard.proxy.connections',
    'N9',
  );
});

test('rejects an instrument without a description', () => {
  assertRule(single('connections', { ...counter, description: ' ' }), 'switchyard.proxy.connections', 'N10');
});

test('rejects attribute sets whose product is too large', () => {
  const many = Array.from({ length: 60 }, (_, i) => `v${i}`);
  assertRule(
    single('connections', {
      ...counter,
      attributes: { a: { description: 'x', values: many }, b: { description: 'x', values: many } },
    }),
    'switchyard.proxy.connections',
    'N11',
  );
});

test('rejects two instruments that become one Prometheus name', () => {
  assertRule(
    { namespace: 'switchyard.proxy', instruments: { 'dial.failures': counter, dial_failures: counter } },
    'switchyard.proxy.dial_failures',
    'N12',
  );
});

/** A dial-failure counter by configured pool and declared reasons, in a catalog of `configuredLimit`. */
function dialFailures(configuredLimit: number, reasons: readonly string[]) {
  return defineCatalog({
    namespace: 'switchyard.proxy',
    configuredLimit,
    instruments: {
      dial_failures: {
        kind: 'counter',
        unit: '{dial}',
        description: 'x',
        attributes: {
          pool: { description: 'x', configured: true },
          reason: { description: 'x', values: reasons },
        },
      },
    },
  });
}

test('configured attributes take no values and are bounded by the catalog configuredLimit', () => {
  const catalog = dialFailures(100, ['timeout', 'refused']);
  assert.equal(catalog.instruments[0]?.maxSeries, 101 * 3);
  assert.equal(catalog.instruments[0]?.configuredLimit, 100);
  assertRule(
    single('connections', {
      ...counter,
      attributes: { pool: { description: 'x', configured: true, values: ['a'] } },
    }),
    'switchyard.proxy.connections',
    'N9',
  );
  assert.throws(
    () =>
      defineCatalog({
        namespace: 'switchyard.proxy',
        configuredLimit: 100_001,
        instruments: { connections: counter },
      }),
    (error: unknown) =>
      error instanceof CatalogRuleError && /N11/.test(error.message) && /100001/.test(error.message),
  );
});

test('a large configured limit is allowed: the declared values bound the series per combination', () => {
  const catalog = dialFailures(10_000, ['timeout', 'refused', 'reset', 'unreachable', 'other']);
  assert.equal(catalog.instruments[0]?.seriesPerCombination, 5);
  assert.equal(catalog.instruments[0]?.maxSeries, 5 * 10_001);
});
