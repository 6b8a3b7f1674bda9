import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { type Catalog, type CatalogDeclaration, defineCatalog } from './catalog.ts';
import { CatalogRuleError } from './errors.ts';
import { createLogger } from './logger.ts';
import { cardinalityViews, startTelemetry } from './telemetry.ts';

const quiet = createLogger({
  name: 'test',
  stream: new Writable({ write: (_chunk, _encoding, done) => done() }),
});

const catalog = defineCatalog({
  namespace: 'switchyard.demo',
  instruments: {
    requests: {
      kind: 'counter',
      unit: '{request}',
      description: 'Requests.',
      attributes: { result: { description: 'Outcome.', values: ['ok', 'error'] } },
    },
  },
});

/** A Telemetry for the catalog above (or another), admin server on a free port, no OTEL_* env. */
function startDemo(demoCatalog: Catalog<CatalogDeclaration> = catalog) {
  return startTelemetry({
    serviceName: 'demo',
    serviceVersion: '0',
    catalog: demoCatalog,
    settings,
    logger: quiet,
    env: {},
  });
}

const settings = {
  admin: { host: '127.0.0.1', port: 0 },
  otlp: {},
  processMetrics: false,
};

test('the SDK cardinality limit folds series beyond the declared bound into otel_metric_overflow', async () => {
  // Only a bug bypassing the recorder's `other` bucketing can reach this backstop: simulate one
  // with a raw SDK counter of the same name.
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [reader], views: cardinalityViews(catalog.instruments) });
  const counter = provider.getMeter('bug').createCounter('switchyard.demo.requests');
  for (let i = 0; i < 100; i++) counter.add(1, { result: `raw-${i}` });
  const { resourceMetrics } = await reader.collect();
  const points = resourceMetrics.scopeMetrics[0]?.metrics[0]?.dataPoints ?? [];
  // Declared bound: ok, error, other = 3 series; the limit is one more, the last being overflow.
  assert.equal(points.length, 4);
  const overflow = points.filter((point) => point.attributes['otel.metric.overflow'] === true);
  assert.equal(overflow.length, 1);
  assert.equal(
    points.reduce((sum, point) => sum + (point.value as number), 0),
    100,
    'nothing is lost',
  );
});

test('/readyz is 503 until the worker says it serves, and 503 again once shutdown starts', async () => {
  const telemetry = await startDemo();
  const readyz = async () => (await fetch(`http://127.0.0.1:${telemetry.adminAddress.port}/readyz`)).status;
  try {
    assert.equal(await readyz(), 503);
    telemetry.admin.setReady(true);
    assert.equal(await readyz(), 200);
    telemetry.admin.markStopping();
    assert.equal(await readyz(), 503);
    telemetry.admin.setReady(true);
    assert.equal(await readyz(), 503, 'a stopping worker never turns ready again');
  } finally {
    await telemetry.shutdown();
  }
});

test('the admin server answers 404 with the routes it has, and 405 to other methods', async () => {
  const telemetry = await startDemo();
  const base = `http://127.0.0.1:${telemetry.adminAddress.port}`;
  try {
    const missing = await fetch(`${base}/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /\/metrics, \/healthz or \/readyz/);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  } finally {
    await telemetry.shutdown();
  }
});

test('a worker catalog clashing with the pipeline’s own instruments is refused at startup', async () => {
  const clash = defineCatalog({
    namespace: 'switchyard.telemetry',
    instruments: { 'otlp.exports': { kind: 'counter', unit: '{export}', description: 'Clash.' } },
  });
  await assert.rejects(
    startDemo(clash),
    (error: unknown) => error instanceof CatalogRuleError && error.rule.startsWith('N12'),
  );
});

test('a second startTelemetry while one runs is refused: one MeterProvider per process', async () => {
  const first = await startDemo();
  try {
    await assert.rejects(startDemo(), /called twice: a process has one MeterProvider/);
  } finally {
    await first.shutdown();
  }
  const again = await startDemo();
  await again.shutdown();
});
