import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { ExpositionFormat } from './exposition-format.ts';
import { serializePrometheus } from './prometheus-serializer.ts';

async function exposition(
  record: (meterProvider: MeterProvider) => void,
  format: ExpositionFormat = 'text',
): Promise<string> {
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({
    readers: [reader],
    resource: resourceFromAttributes({ 'service.name': 'switchyard-test', 'k8s.pod.name': 'pod-"a"' }),
  });
  record(provider);
  const { resourceMetrics } = await reader.collect();
  return serializePrometheus(resourceMetrics, { format }).text;
}

test('writes counters with unit and _total suffixes, gauges without', async () => {
  const text = await exposition((provider) => {
    const meter = provider.getMeter('t');
    meter
      .createCounter('switchyard.proxy.bytes', { unit: 'By', description: 'Bytes.' })
      .add(42, { direction: 'in' });
    meter.createUpDownCounter('switchyard.proxy.active_connections', { unit: '{connection}' }).add(3);
  });
  assert.match(text, /^# TYPE switchyard_proxy_bytes_total counter$/m);
  assert.match(text, /^switchyard_proxy_bytes_total\{direction="in"\} 42$/m);
  assert.match(text, /^# TYPE switchyard_proxy_active_connections gauge$/m);
  assert.match(text, /^switchyard_proxy_active_connections 3$/m);
  assert.doesNotMatch(text, /otel_scope_name/);
});

function recordDurations(provider: MeterProvider): void {
  const histogram = provider.getMeter('t').createHistogram('switchyard.proxy.connection.duration', {
    unit: 's',
    description: 'D.',
    advice: { explicitBucketBoundaries: [0.1, 1] },
  });
  for (const value of [0.05, 0.5, 0.7, 5]) histogram.record(value);
}

test('writes histograms as cumulative buckets with +Inf, _sum and _count, named with seconds', async () => {
  const text = await exposition(recordDurations);
  const name = 'switchyard_proxy_connection_duration_seconds';
  assert.match(text, new RegExp(`^# TYPE ${name} histogram$`, 'm'));
  assert.match(text, new RegExp(`^${name}_bucket\\{le="0.1"\\} 1$`, 'm'));
  assert.match(text, new RegExp(`^${name}_bucket\\{le="1"\\} 3$`, 'm'));
  assert.match(text, new RegExp(`^${name}_bucket\\{le="\\+Inf"\\} 4$`, 'm'));
  assert.match(text, new RegExp(`^${name}_sum 6.25$`, 'm'));
  assert.match(text, new RegExp(`^${name}_count 4$`, 'm'));
});

test('escapes label values and help text', async () => {
  const text = await exposition((provider) => {
    provider
      .getMeter('t')
      .createCounter('odd', { description: 'line one\nback\\slash' })
      .add(1, { 'weird.key': 'quote " backslash \\ newline \n' });
  });
  assert.match(text, /^# HELP odd_total line one\\nback\\\\slash$/m);
  assert.match(text, /^odd_total\{weird_key="quote \\" backslash \\\\ newline \\n"\} 1$/m);
});

test('writes target_info from the resource attributes', async () => {
  const text = await exposition(() => {});
  assert.match(text, /^# TYPE target_info gauge$/m);
  assert.match(text, /^target_info\{.*k8s_pod_name="pod-\\"a\\"".*service_name="switchyard-test".*\} 1$/m);
});

test('OpenMetrics: counter families drop _total, units are declared, le is canonical and # EOF ends it', async () => {
  const text = await exposition((provider) => {
    provider
      .getMeter('t')
      .createCounter('switchyard.proxy.bytes', { unit: 'By', description: 'Say "hi".' })
      .add(7);
    recordDurations(provider);
  }, 'openmetrics');
  assert.match(text, /^# HELP switchyard_proxy_bytes Say \\"hi\\".$/m);
  assert.match(text, /^# TYPE switchyard_proxy_bytes counter$/m);
  assert.match(text, /^# UNIT switchyard_proxy_bytes bytes$/m);
  assert.match(text, /^switchyard_proxy_bytes_total 7$/m);
  assert.match(text, /^switchyard_proxy_connection_duration_seconds_bucket\{le="1.0"\} 3$/m);
  assert.match(text, /^# TYPE target info$/m);
  assert.ok(text.endsWith('# EOF\n'), 'ends with # EOF');
});

test('a metric whose Prometheus name is taken elsewhere is skipped and reported', async () => {
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter('t').createCounter('switchyard.proxy.bytes', { unit: 'By' }).add(1);
  const { resourceMetrics } = await reader.collect();
  const result = serializePrometheus(resourceMetrics, { taken: new Set(['switchyard_proxy_bytes_total']) });
  assert.deepEqual(result.skipped, [{ name: 'switchyard.proxy.bytes', reason: 'name_clash' }]);
  assert.doesNotMatch(result.text, /switchyard_proxy_bytes/);
});
