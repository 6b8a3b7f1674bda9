import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { acceptsGzip, negotiateFormat } from './negotiation.ts';

const PROMETHEUS_3 =
  'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1';
const PROMETHEUS_2 =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

test('Prometheus 2 and 3 get OpenMetrics 1.0, as they ask first', () => {
  assert.equal(negotiateFormat(PROMETHEUS_3), 'openmetrics');
  assert.equal(negotiateFormat(PROMETHEUS_2), 'openmetrics');
  assert.equal(negotiateFormat('application/openmetrics-text'), 'openmetrics');
});

test('a wildcard, plain text, nothing, or only formats we do not speak get text 0.0.4', () => {
  for (const accept of [
    undefined,
    '',
    '*/*',
    'text/*',
    'text/plain',
    'text/plain;version=0.0.4',
    'application/json',
  ]) {
    assert.equal(negotiateFormat(accept), 'text', String(accept));
  }
  assert.equal(
    negotiateFormat('application/openmetrics-text;version=0.0.1'),
    'text',
    'OpenMetrics 0.0.1 only',
  );
  assert.equal(negotiateFormat('application/openmetrics-text;q=0,*/*'), 'text', 'OpenMetrics refused');
});

test('the higher quality wins between OpenMetrics and text', () => {
  assert.equal(negotiateFormat('text/plain;q=0.9,application/openmetrics-text;q=0.5'), 'text');
  assert.equal(negotiateFormat('text/plain;q=0.5,application/openmetrics-text;q=0.9'), 'openmetrics');
  assert.equal(
    negotiateFormat('TEXT/PLAIN;Q=0.5, Application/OpenMetrics-Text; Version="1.0.0"'),
    'openmetrics',
  );
});

test('gzip is used when gzip or any coding is acceptable, never when refused', () => {
  assert.equal(acceptsGzip('gzip'), true);
  assert.equal(acceptsGzip('br, gzip;q=0.5'), true);
  assert.equal(acceptsGzip('*'), true);
  assert.equal(acceptsGzip('gzip;q=0'), false);
  assert.equal(acceptsGzip('gzip;q=0, *'), false, 'an explicit refusal beats the wildcard');
  assert.equal(acceptsGzip('identity'), false);
  assert.equal(acceptsGzip(undefined), false);
});

test('any header value is classified without throwing', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.string({ maxLength: 100 }), (accept, encoding) => {
      assert.ok(['text', 'openmetrics'].includes(negotiateFormat(accept)));
      assert.equal(typeof acceptsGzip(encoding), 'boolean');
    }),
    { numRuns: 2000 },
  );
});
