import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prometheusLabelName, prometheusMetricName } from './naming.ts';

// Examples from the OpenTelemetry specification's Prometheus compatibility section and from
// prometheus/otlptranslator's own tests of the UnderscoreEscapingWithSuffixes strategy.

test('a histogram in seconds gets the unit word', () => {
  assert.equal(
    prometheusMetricName('http.server.request.duration', 's', 'histogram'),
    'http_server_request_duration_seconds',
  );
});

test('a monotonic sum gets the unit word and then _total', () => {
  assert.equal(
    prometheusMetricName('system.network.io', 'By', 'monotonic_counter'),
    'system_network_io_bytes_total',
  );
});

test('a non-monotonic sum gets no _total', () => {
  assert.equal(
    prometheusMetricName('process.memory.usage', 'By', 'non_monotonic_counter'),
    'process_memory_usage_bytes',
  );
});

test('a gauge of unit 1 gets _ratio, a counter of unit 1 does not', () => {
  assert.equal(prometheusMetricName('system.cpu.utilization', '1', 'gauge'), 'system_cpu_utilization_ratio');
  assert.equal(prometheusMetricName('requests', '1', 'monotonic_counter'), 'requests_total');
});

test('annotation units add nothing', () => {
  assert.equal(
    prometheusMetricName('switchyard.proxy.connections', '{connection}', 'monotonic_counter'),
    'switchyard_proxy_connections_total',
  );
  assert.equal(prometheusMetricName('queue.depth', '{packet}', 'gauge'), 'queue_depth');
});

test('a unit word already in the name is not appended twice', () => {
  assert.equal(
    prometheusMetricName('switchyard.proxy.bytes', 'By', 'monotonic_counter'),
    'switchyard_proxy_bytes_total',
  );
  assert.equal(
    prometheusMetricName('request_duration_seconds', 's', 'histogram'),
    'request_duration_seconds',
  );
});

test('a total token anywhere moves to the end of a counter name', () => {
  assert.equal(prometheusMetricName('total.requests', '', 'monotonic_counter'), 'requests_total');
  assert.equal(prometheusMetricName('requests_total', '', 'monotonic_counter'), 'requests_total');
});

test('per-units become per_<unit>', () => {
  assert.equal(prometheusMetricName('throughput', 'By/s', 'gauge'), 'throughput_bytes_per_second');
  assert.equal(prometheusMetricName('rate', '1/s', 'gauge'), 'rate_per_second');
});

test('unknown units are kept, cleaned of invalid characters', () => {
  assert.equal(prometheusMetricName('temperature', 'Cel', 'gauge'), 'temperature_celsius');
  assert.equal(prometheusMetricName('distance', 'furlong', 'gauge'), 'distance_furlong');
});

test('invalid characters split tokens and repeated underscores collapse', () => {
  assert.equal(prometheusMetricName('foo--bar__baz', '', 'gauge'), 'foo_bar_baz');
  assert.equal(prometheusMetricName('2xx.responses', '', 'gauge'), '_2xx_responses');
});

test('label names are sanitised as the Collector does', () => {
  assert.equal(prometheusLabelName('http.request.method'), 'http_request_method');
  assert.equal(prometheusLabelName('2xx'), 'key_2xx');
  assert.equal(prometheusLabelName('_private'), 'key_private');
  assert.equal(prometheusLabelName('__reserved__'), '__reserved__');
  assert.equal(prometheusLabelName('otel.metric.overflow'), 'otel_metric_overflow');
});
