import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRouteClassifier, httpServerCatalog } from './http-metrics.ts';

const classify = createRouteClassifier([
  '/metrics',
  '/healthz',
  '/derp',
  '/derp/probe',
  '/users/:id',
  '/static/*',
]);

test('exact routes classify as themselves, ignoring the query string', () => {
  assert.equal(classify('/metrics'), '/metrics');
  assert.equal(classify('/metrics?name[]=x'), '/metrics');
  assert.equal(classify('/derp/probe'), '/derp/probe');
});

test('parameter and wildcard routes classify as their template', () => {
  assert.equal(classify('/users/42'), '/users/:id');
  assert.equal(classify('/static/css/site.css'), '/static/*');
  assert.equal(classify('/users/42/extra'), 'other');
  assert.equal(classify('/users/'), 'other');
});

test('unknown paths are other', () => {
  assert.equal(classify('/'), 'other');
  assert.equal(classify('/wp-admin.php'), 'other');
  assert.equal(classify('/metricsX'), 'other');
});

test('1,000 distinct ids in a path give one route value', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[A-Za-z0-9._~-]{1,40}$/), { minLength: 1000, maxLength: 1000 }),
      (ids) => {
        const routes = new Set(ids.map((id) => classify(`/users/${id}`)));
        assert.deepEqual([...routes], ['/users/:id']);
      },
    ),
    { numRuns: 10 },
  );
});

test('any path classifies into the declared set or other', () => {
  const allowed = new Set([
    '/metrics',
    '/healthz',
    '/derp',
    '/derp/probe',
    '/users/:id',
    '/static/*',
    'other',
  ]);
  fc.assert(fc.property(fc.string(), (path) => allowed.has(classify(path))));
});

test('the HTTP catalog uses the semantic-convention names and Prometheus names', () => {
  const catalog = httpServerCatalog(['/metrics', '/healthz', '/readyz']);
  const names = catalog.instruments.map((instrument) => [instrument.otelName, instrument.prometheusName]);
  assert.deepEqual(names, [
    ['http.server.request.duration', 'http_server_request_duration_seconds'],
    ['http.server.active_requests', 'http_server_active_requests'],
  ]);
});
