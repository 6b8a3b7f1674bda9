import assert from 'node:assert/strict';
import { test } from 'node:test';
import { translateWithOtlpTranslator } from './otlp-names.ts';

test('a histogram in seconds gets the _seconds unit suffix', async () => {
  const [names] = await translateWithOtlpTranslator([
    { name: 'http.server.request.duration', unit: 's', type: 'histogram' },
  ]);
  assert.equal(names?.metric, 'http_server_request_duration_seconds');
});

test('a monotonic sum in bytes gets _bytes and then _total', async () => {
  const [names] = await translateWithOtlpTranslator([
    { name: 'system.network.io', unit: 'By', type: 'monotonic_counter' },
  ]);
  assert.equal(names?.metric, 'system_network_io_bytes_total');
});

test('a non-monotonic sum gets its unit suffix but no _total', async () => {
  const [names] = await translateWithOtlpTranslator([
    { name: 'system.memory.usage', unit: 'By', type: 'non_monotonic_counter' },
  ]);
  assert.equal(names?.metric, 'system_memory_usage_bytes');
});

test('a gauge with the dimensionless unit 1 gets the _ratio suffix', async () => {
  const [names] = await translateWithOtlpTranslator([
    { name: 'system.cpu.utilization', unit: '1', type: 'gauge' },
  ]);
  assert.equal(names?.metric, 'system_cpu_utilization_ratio');
});

test('curly-brace annotation units add no suffix', async () => {
  const results = await translateWithOtlpTranslator([
    { name: 'http.server.active_requests', unit: '{request}', type: 'non_monotonic_counter' },
    { name: 'switchyard.proxy.connections', unit: '{connection}', type: 'monotonic_counter' },
  ]);
  assert.deepEqual(
    results.map((names) => names.metric),
    ['http_server_active_requests', 'switchyard_proxy_connections_total'],
  );
});

test('a counter whose name already ends in total gets no second _total', async () => {
  const [names] = await translateWithOtlpTranslator([
    { name: 'switchyard.requests.total', unit: '', type: 'monotonic_counter' },
  ]);
  assert.equal(names?.metric, 'switchyard_requests_total');
});

test('a per-unit is spelled out as _per_', async () => {
  const [names] = await translateWithOtlpTranslator([
    { name: 'switchyard.relay.rate', unit: 'By/s', type: 'gauge' },
  ]);
  assert.equal(names?.metric, 'switchyard_relay_rate_bytes_per_second');
});

test('dots in attribute keys become underscores and a leading digit gets a key_ prefix', async () => {
  const [names] = await translateWithOtlpTranslator([
    {
      name: 'http.server.request.duration',
      unit: 's',
      type: 'histogram',
      labels: ['http.request.method', '2xx.ratio'],
    },
  ]);
  assert.deepEqual(names?.labels, ['http_request_method', 'key_2xx_ratio']);
});

test('results come back in input order, one per item', async () => {
  const results = await translateWithOtlpTranslator([
    { name: 'a.b', unit: 'ms', type: 'histogram' },
    { name: 'c.d', unit: 's', type: 'summary' },
    { name: 'e.f', unit: 's', type: 'exponential_histogram' },
  ]);
  assert.deepEqual(
    results.map((names) => names.metric),
    ['a_b_milliseconds', 'c_d_seconds', 'e_f_seconds'],
  );
});

test('an empty batch needs no round trip through the tool', async () => {
  assert.deepEqual(await translateWithOtlpTranslator([]), []);
});
