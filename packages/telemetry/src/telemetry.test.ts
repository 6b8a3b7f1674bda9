import assert from 'node:assert/strict';
import { get } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type Catalog, type CatalogDeclaration, defineCatalog } from './catalog.ts';
import { CatalogRuleError, SwitchyardError } from './errors.ts';
import { createLogger } from './logger.ts';
import { startTelemetry } from './telemetry.ts';

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
function startDemo<D extends CatalogDeclaration = (typeof catalog)['declaration']>(
  demoCatalog: Catalog<D> = catalog as unknown as Catalog<D>,
) {
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

/** What Prometheus 3.x sends by default (scrape_protocols: OpenMetrics first, then text). */
const PROMETHEUS_3_ACCEPT =
  'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1';

test('what the data thread records is on /metrics, served by the telemetry thread', async () => {
  const telemetry = await startDemo();
  try {
    telemetry.metrics.requests.cell({ result: 'ok' }).add(41);
    telemetry.metrics.requests.cell({ result: 'ok' }).add();
    const text = await (await fetch(`http://127.0.0.1:${telemetry.adminAddress.port}/metrics`)).text();
    assert.match(text, /^switchyard_demo_requests_total\{result="ok"\} 42$/m);
    assert.match(text, /^switchyard_demo_requests_total\{result="error"\} 0$/m);
    assert.match(text, /^target_info\{.*service_name="demo".*\} 1$/m);
    assert.match(await telemetry.scrape(), /^switchyard_demo_requests_total\{result="ok"\} 42$/m);
    assert.ok((await telemetry.scrape('openmetrics')).endsWith('# EOF\n'));
  } finally {
    await telemetry.shutdown();
  }
});

test('/metrics answers Prometheus 3 in OpenMetrics, a plain client in text 0.0.4, gzip when asked', async () => {
  const telemetry = await startDemo();
  const url = `http://127.0.0.1:${telemetry.adminAddress.port}/metrics`;
  try {
    const openMetrics = await fetch(url, {
      headers: { accept: PROMETHEUS_3_ACCEPT, 'accept-encoding': 'identity' },
    });
    assert.equal(
      openMetrics.headers.get('content-type'),
      'application/openmetrics-text; version=1.0.0; charset=utf-8',
    );
    const omText = await openMetrics.text();
    assert.match(omText, /^# TYPE switchyard_demo_requests counter$/m);
    assert.ok(omText.endsWith('# EOF\n'));
    const plain = await fetch(url, { headers: { accept: '*/*', 'accept-encoding': 'identity' } });
    assert.equal(plain.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(await plain.text(), /^# TYPE switchyard_demo_requests_total counter$/m);
    // Raw bytes: fetch would decompress silently, hiding whether the server compressed.
    const gzipped = await new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      get(url, { headers: { 'accept-encoding': 'gzip' } }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ encoding: response.headers['content-encoding'], body: Buffer.concat(chunks) }),
        );
      }).on('error', reject);
    });
    assert.equal(gzipped.encoding, 'gzip');
    assert.match(gunzipSync(gzipped.body).toString(), /^switchyard_demo_requests_total\{result="ok"\} 0$/m);
  } finally {
    await telemetry.shutdown();
  }
});

test('an admin port in use fails startup with the listen error, and the thread is gone', async () => {
  const first = await startDemo();
  try {
    await first.shutdown();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    await assert.rejects(
      startTelemetry({
        serviceName: 'demo',
        serviceVersion: '0',
        catalog,
        settings: { ...settings, admin: { host: '127.0.0.1', port } },
        logger: quiet,
        env: {},
      }),
      (error: unknown) => error instanceof SwitchyardError && error.code === 'SWY_ERR_LISTEN',
    );
    blocker.close();
    const again = await startDemo();
    await again.shutdown();
  } finally {
    await first.shutdown();
  }
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
