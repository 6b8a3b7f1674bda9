import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import {
  AggregationTemporality,
  DataPointType,
  type HistogramMetricData,
  MeterProvider,
} from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { defineCatalog } from './catalog.ts';
import { FieldHistogramRegistry } from './field-histograms.ts';
import { serializePrometheus } from './prometheus-serializer.ts';
import { registerCatalog } from './recorder.ts';

const catalog = defineCatalog({
  namespace: 'switchyard.sample',
  instruments: {
    wait: {
      kind: 'histogram',
      unit: 's',
      description: 'Wait.',
      buckets: [0.01, 0.1, 1],
      attributes: { queue: { description: 'Queue.', values: ['a', 'b'] } },
    },
  },
});

function setup() {
  const histograms = new FieldHistogramRegistry({ name: 'test' });
  const reader = new PrometheusExporter({
    preventServerStart: true,
    metricProducers: [histograms.producer(AggregationTemporality.CUMULATIVE)],
  });
  const provider = new MeterProvider({ readers: [reader] });
  const handles = registerCatalog(provider.getMeter('test'), catalog, { histograms });
  const delta = histograms.producer(AggregationTemporality.DELTA);
  const collectDelta = async () =>
    (await delta.collect()).resourceMetrics.scopeMetrics.flatMap(
      (scope) => scope.metrics,
    ) as HistogramMetricData[];
  return { handles, reader, collectDelta };
}

test('buckets take values up to and including their upper bound, as the SDK does', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.double({ min: 0, max: 5, noNaN: true }), { minLength: 1, maxLength: 200 }),
      async (values) => {
        const { handles, reader } = setup();
        const sdkReader = new PrometheusExporter({ preventServerStart: true });
        const sdk = registerCatalog(new MeterProvider({ readers: [sdkReader] }).getMeter('sdk'), catalog);
        for (const value of values) {
          handles.wait.series({ queue: 'a' }).record(value);
          sdk.wait.series({ queue: 'a' }).record(value);
        }
        const ours = (await reader.collect()).resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
        const theirs = (await sdkReader.collect()).resourceMetrics.scopeMetrics.flatMap(
          (scope) => scope.metrics,
        );
        const point = (metrics: typeof ours) => {
          const metric = metrics.find(
            (m) => m.dataPointType === DataPointType.HISTOGRAM,
          ) as HistogramMetricData;
          return metric.dataPoints[0]?.value;
        };
        const a = point(ours);
        const b = point(theirs);
        assert.deepEqual(a?.buckets, b?.buckets);
        assert.equal(a?.count, b?.count);
        assert.equal(a?.min, b?.min);
        assert.equal(a?.max, b?.max);
        assert.ok(Math.abs((a?.sum ?? 0) - (b?.sum ?? 0)) < 1e-9);
      },
    ),
    { numRuns: 50 },
  );
});

test('a series appears with its first observation and is written as a Prometheus histogram', async () => {
  const { handles, reader } = setup();
  const series = handles.wait.series({ queue: 'b' });
  let text = serializePrometheus((await reader.collect()).resourceMetrics).text;
  assert.doesNotMatch(text, /switchyard_sample_wait_seconds/);
  for (const value of [0.005, 0.01, 0.5, 3]) series.record(value);
  text = serializePrometheus((await reader.collect()).resourceMetrics).text;
  assert.match(text, /^switchyard_sample_wait_seconds_bucket\{queue="b",le="0.01"\} 2$/m);
  assert.match(text, /^switchyard_sample_wait_seconds_bucket\{queue="b",le="1"\} 3$/m);
  assert.match(text, /^switchyard_sample_wait_seconds_bucket\{queue="b",le="\+Inf"\} 4$/m);
  assert.match(text, /^switchyard_sample_wait_seconds_count\{queue="b"\} 4$/m);
});

test('a delta producer reports what was recorded since its previous collection, and nothing when nothing was', async () => {
  const { handles, collectDelta } = setup();
  const series = handles.wait.series({ queue: 'a' });
  series.record(0.05);
  series.record(2);
  let [metric] = await collectDelta();
  assert.equal(metric?.aggregationTemporality, AggregationTemporality.DELTA);
  assert.deepEqual(metric?.dataPoints[0]?.value.buckets.counts, [0, 1, 0, 1]);
  assert.equal(metric?.dataPoints[0]?.value.count, 2);
  series.record(0.5);
  [metric] = await collectDelta();
  assert.deepEqual(metric?.dataPoints[0]?.value.buckets.counts, [0, 0, 1, 0]);
  assert.equal(metric?.dataPoints[0]?.value.sum, 0.5);
  assert.deepEqual(await collectDelta(), []);
});
