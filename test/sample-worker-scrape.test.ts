import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { echoOnce } from './support/echo-client.ts';
import { parseExposition, sampleValue } from './support/exposition.ts';
import { startPrometheus } from './support/prometheus.ts';
import { checkMetrics } from './support/promtool.ts';
import { type RunningSampleWorker, startSampleWorker } from './support/worker-process.ts';

async function scrape(worker: RunningSampleWorker, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${worker.adminUrl}/metrics`, { headers });
}

async function scrapeUntil(
  worker: RunningSampleWorker,
  done: (families: ReturnType<typeof parseExposition>) => boolean,
  timeoutMs = 10_000,
): Promise<ReturnType<typeof parseExposition>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const families = parseExposition(await (await scrape(worker)).text());
    if (done(families)) return families;
    if (performance.now() > deadline) throw new Error(`condition not met on /metrics within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the sample worker with demo traffic', () => {
  let worker: RunningSampleWorker;
  before(async () => {
    worker = await startSampleWorker({ SWITCHYARD_SAMPLE_TRAFFIC__CONNECTIONS_PER_SECOND: '50' });
  });
  after(() => worker.stop());

  test('/metrics passes promtool check metrics with no complaints', async () => {
    const text = await (await scrape(worker)).text();
    const verdict = await checkMetrics(text);
    assert.deepEqual(verdict.problems, [], verdict.output);
    assert.ok(verdict.ok);
    assert.match(text, /^switchyard_sample_connections_total \d+$/m);
  });

  test('a real Prometheus server scrapes it with up == 1 and sees the traffic', async () => {
    const address = new URL(worker.adminUrl).host;
    const prometheus = await startPrometheus({ targets: [{ job: 'sample', address }] });
    try {
      await prometheus.waitFor('up{job="sample"}', (samples) => samples[0]?.value === 1);
      const connections = await prometheus.waitFor(
        'switchyard_sample_connections_total{job="sample"}',
        (samples) => (samples[0]?.value ?? 0) > 0,
      );
      assert.ok((connections[0]?.value ?? 0) > 0);
      const types = await prometheus.query(
        'count by (__name__) ({job="sample", __name__=~"switchyard_sample_.*"})',
      );
      assert.ok(types.length >= 6, `series families seen by Prometheus: ${types.length}`);
    } finally {
      await prometheus.stop();
    }
  });

  test('/healthz and /readyz answer 200 while it serves', async () => {
    assert.equal((await fetch(`${worker.adminUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${worker.adminUrl}/readyz`)).status, 200);
  });
});

describe('the sample worker without demo traffic', () => {
  let worker: RunningSampleWorker;
  before(async () => {
    worker = await startSampleWorker({ SWITCHYARD_DEMO_TRAFFIC: '0' });
  });
  after(() => worker.stop());

  test('counts on /metrics are exactly the traffic one sends oneself', async () => {
    const before = parseExposition(await (await scrape(worker)).text());
    assert.equal(sampleValue(before, 'switchyard_sample_connections_total'), 0);
    assert.equal(sampleValue(before, 'switchyard_sample_bytes_total', { direction: 'received' }), 0);
    const payloads = [Buffer.alloc(1000, 1), Buffer.alloc(70_000, 2), Buffer.from('hello')];
    for (const payload of payloads) assert.deepEqual(await echoOnce(worker.echoPort, payload), payload);
    const bytes = payloads.reduce((sum, payload) => sum + payload.length, 0);
    // The client sees its socket close before the server's 'close' handler has run: scrape until
    // the server has accounted for the third connection's end, then check every count exactly.
    const families = await scrapeUntil(
      worker,
      (parsed) => sampleValue(parsed, 'switchyard_sample_connection_duration_seconds_count') === 3,
    );
    assert.equal(sampleValue(families, 'switchyard_sample_connections_total'), 3);
    assert.equal(sampleValue(families, 'switchyard_sample_bytes_total', { direction: 'received' }), bytes);
    assert.equal(sampleValue(families, 'switchyard_sample_bytes_total', { direction: 'sent' }), bytes);
    assert.equal(sampleValue(families, 'switchyard_sample_connection_duration_seconds_count'), 3);
    assert.equal(sampleValue(families, 'switchyard_sample_active_connections'), 0);
  });

  test('every series of a closed label set is there at zero from the start', async () => {
    const families = parseExposition(await (await scrape(worker)).text());
    for (const reason of ['reset', 'timeout', 'other']) {
      assert.equal(sampleValue(families, 'switchyard_sample_connection_errors_total', { reason }), 0, reason);
    }
    for (const reason of ['timeout', 'unavailable', 'unauthenticated', 'rejected', 'other']) {
      assert.equal(
        sampleValue(families, 'switchyard_telemetry_otlp_export_failures_total', { reason }),
        0,
        reason,
      );
    }
  });

  test('admin requests are counted by method, status and a bounded route', async () => {
    for (let i = 0; i < 20; i++) await (await fetch(`${worker.adminUrl}/users/${i}?q=${i}`)).text();
    await (await fetch(`${worker.adminUrl}/metrics`, { method: 'POST' })).text();
    const families = parseExposition(await (await scrape(worker)).text());
    const duration = families.get('http_server_request_duration_seconds');
    assert.ok(duration !== undefined);
    const routes = new Set(duration.samples.map((sample) => sample.labels.http_route));
    assert.ok(
      [...routes].every((route) => ['/metrics', '/healthz', '/readyz', 'other'].includes(route ?? '')),
      [...routes].join(),
    );
    const notFound = sampleValue(families, 'http_server_request_duration_seconds_count', {
      http_route: 'other',
      http_response_status_code: '404',
      http_request_method: 'GET',
    });
    assert.equal(notFound, 20);
    const postMetrics = sampleValue(families, 'http_server_request_duration_seconds_count', {
      http_route: '/metrics',
      http_response_status_code: '405',
      http_request_method: 'POST',
    });
    assert.equal(postMetrics, 1);
  });
});

describe('the sample worker with a bearer token on /metrics', () => {
  const token = 'a-scrape-token-of-enough-length';
  let worker: RunningSampleWorker;
  before(async () => {
    worker = await startSampleWorker({ SWITCHYARD_SAMPLE_TELEMETRY__ADMIN__BEARER_TOKEN: token });
  });
  after(() => worker.stop());

  test('refuses /metrics without the token or with a wrong one', async () => {
    const missing = await scrape(worker);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal((await scrape(worker, { authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
    assert.equal((await scrape(worker, { authorization: `Basic ${token}` })).status, 401);
  });

  test('serves /metrics with the token, and leaves /healthz and /readyz open', async () => {
    const response = await scrape(worker, { authorization: `Bearer ${token}` });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /switchyard_sample_connections_total/);
    assert.equal((await fetch(`${worker.adminUrl}/readyz`)).status, 200);
  });

  test('a Prometheus scrape with the token is up, one without is down', async () => {
    const address = new URL(worker.adminUrl).host;
    const prometheus = await startPrometheus({
      targets: [
        { job: 'with_token', address, bearerToken: token },
        { job: 'without_token', address },
      ],
    });
    try {
      await prometheus.waitFor('up{job="with_token"}', (samples) => samples[0]?.value === 1);
      await prometheus.waitFor('up{job="without_token"}', (samples) => samples[0]?.value === 0);
    } finally {
      await prometheus.stop();
    }
  });
});
