import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineCatalog } from './catalog.ts';
import { expositionText } from './exposition.ts';
import { MetricsWriter } from './metrics-writer.ts';
import { registerCatalog } from './recorder.ts';
import { SeriesRegistry, WriterView } from './series-registry.ts';

const catalog = defineCatalog({
  namespace: 'switchyard.sample',
  configuredLimit: 10,
  instruments: {
    bytes: {
      kind: 'counter',
      unit: 'By',
      description: 'Bytes, the café’s.',
      attributes: { upstream: { description: 'Configured upstream.', configured: true } },
    },
    bytes_sent: { kind: 'counter', unit: 'By', description: 'Bytes sent.' },
    queue_bytes: { kind: 'gauge', unit: 'By', description: 'Bytes queued.' },
    wait: { kind: 'histogram', unit: 's', description: 'Wait.', buckets: [0.5, 1, 2] },
  },
});

function setup() {
  const writer = new MetricsWriter();
  const metrics = registerCatalog(writer, catalog);
  const registry = new SeriesRegistry(catalog.instruments);
  const view = new WriterView(writer.published.buffer);
  const collect = () => {
    registry.snapshotLocal(writer, view);
    return registry.merge();
  };
  return { writer, metrics, registry, view, collect };
}

test('OpenMetrics families: counters without _total, UNIT only where the name ends in it, canonical le, # EOF', () => {
  const { metrics, registry, collect } = setup();
  metrics.bytes_sent.cell().add(10);
  metrics.wait.series().record(1);
  const text = expositionText({ registry, values: collect(), format: 'openmetrics' });
  assert.match(text, /^# TYPE switchyard_sample_bytes_sent counter$/m);
  assert.doesNotMatch(text, /^# UNIT switchyard_sample_bytes_sent /m, 'bytes_sent does not end in _bytes');
  assert.match(text, /^switchyard_sample_bytes_sent_total 10$/m);
  assert.match(text, /^# UNIT switchyard_sample_queue_bytes bytes$/m);
  assert.match(text, /^switchyard_sample_wait_seconds_bucket\{le="1.0"\} 1$/m);
  assert.match(text, /^switchyard_sample_wait_seconds_bucket\{le="0.5"\} 0$/m);
  assert.ok(text.endsWith('# EOF\n'));
  const plain = expositionText({ registry, values: collect(), format: 'text' });
  assert.match(plain, /^switchyard_sample_wait_seconds_bucket\{le="1"\} 1$/m);
  assert.doesNotMatch(plain, /# EOF|# UNIT/);
});

test('help text and label values outside ASCII come out as UTF-8', () => {
  const { metrics, registry, collect } = setup();
  metrics.bytes.register({ upstream: 'café-1' });
  metrics.bytes.cell({ upstream: 'café-1' }).add(3);
  const text = expositionText({ registry, values: collect(), format: 'text' });
  assert.match(text, /^# HELP switchyard_sample_bytes_total Bytes, the café’s\.$/m);
  assert.match(text, /^switchyard_sample_bytes_total\{upstream="café-1"\} 3$/m);
});

test('a series announced after the values were merged is left out, not written as NaN', () => {
  const { writer, metrics, registry, view, collect } = setup();
  const values = collect();
  metrics.bytes.register({ upstream: 'late' });
  const batch = writer.takeSeries();
  assert.ok(batch !== undefined);
  registry.applySeries(view, batch);
  const text = expositionText({ registry, values, format: 'text' });
  assert.doesNotMatch(text, /late|NaN/);
  assert.match(expositionText({ registry, values: collect(), format: 'text' }), /upstream="late"\} 0$/m);
});
