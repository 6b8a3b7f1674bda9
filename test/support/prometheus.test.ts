import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { startPrometheus } from './prometheus.ts';

const exposition = [
  '# HELP demo_requests_total Requests handled.',
  '# TYPE demo_requests_total counter',
  'demo_requests_total{outcome="ok"} 42',
  '',
].join('\n');

async function serveExposition(
  t: TestContext,
  authorized: (request: IncomingMessage) => boolean = () => true,
): Promise<string> {
  const server: Server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    if (!authorized(request)) {
      response.writeHead(401).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(exposition);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('prometheus scrapes a target and stores the counter value it served', async (t) => {
  const address = await serveExposition(t);
  const prometheus = await startPrometheus({ targets: [{ job: 'demo', address }] });
  t.after(() => prometheus.stop());

  const up = await prometheus.waitFor('up{job="demo"}', (samples) => samples.length === 1);
  assert.equal(up[0]?.value, 1);
  const requests = await prometheus.waitFor('demo_requests_total', (samples) => samples.length === 1);
  assert.equal(requests[0]?.value, 42);
  assert.deepEqual(requests[0]?.labels, {
    __name__: 'demo_requests_total',
    instance: address,
    job: 'demo',
    outcome: 'ok',
  });
  const [target] = await prometheus.targets();
  assert.equal(target?.health, 'up');
  assert.equal(target?.scrapeUrl, `http://${address}/metrics`);
});

test('a scrape with the right bearer token is up and one with a wrong token is down', async (t) => {
  const address = await serveExposition(t, (request) => request.headers.authorization === 'Bearer s3cret');
  const prometheus = await startPrometheus({
    targets: [
      { job: 'right-token', address, bearerToken: 's3cret' },
      { job: 'wrong-token', address, bearerToken: 'guess' },
    ],
  });
  t.after(() => prometheus.stop());

  const up = await prometheus.waitFor('up', (samples) => samples.length === 2);
  const upByJob = Object.fromEntries(up.map((sample) => [sample.labels.job, sample.value]));
  assert.deepEqual(upByJob, { 'right-token': 1, 'wrong-token': 0 });
});

test('targets of one job are scraped as instances of that job, as a ServiceMonitor scrapes its pods', async (t) => {
  const addresses = [await serveExposition(t), await serveExposition(t)];
  const prometheus = await startPrometheus({
    targets: addresses.map((address) => ({ job: 'pods', address })),
  });
  t.after(() => prometheus.stop());

  const up = await prometheus.waitFor('up{job="pods"}', (samples) => samples.length === 2);
  assert.deepEqual(up.map((sample) => sample.labels.instance).sort(), [...addresses].sort());
  assert.ok(up.every((sample) => sample.value === 1));
  await assert.rejects(
    startPrometheus({
      targets: addresses.map((address, i) => ({ job: 'pods', address, honorLabels: i === 0 })),
    }),
    /the targets of job pods are scraped differently/,
  );
});

test('stop ends the server and frees its port', async () => {
  const prometheus = await startPrometheus({ targets: [] });
  await prometheus.stop();
  await assert.rejects(fetch(`${prometheus.url}/-/ready`));
});
