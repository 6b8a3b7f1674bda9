import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Meter, ValueType } from '@opentelemetry/api';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  MeterProvider,
  MetricReader,
  type MetricReaderOptions,
  type ViewOptions,
} from '@opentelemetry/sdk-metrics';
import { otlpMessageCodecs } from './load.ts';
import type { ExportMetricsServiceRequest, Metric } from './messages.ts';

/**
 * Wire compatibility: opentelemetry-js serializes with its own hand-written protobuf writer, so
 * decoding its bytes with our .proto files checks our field numbers and types against it.
 */

class ManualReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

async function exportThroughSdk(
  record: (meter: Meter) => void,
  options: { reader?: MetricReaderOptions; views?: ViewOptions[] } = {},
): Promise<ExportMetricsServiceRequest> {
  const reader = new ManualReader(options.reader);
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'wire-test', 'service.instance.id': 'i-1' }),
    readers: [reader],
    views: options.views ?? [],
  });
  record(provider.getMeter('switchyard.wire', '1.2.3'));
  const { resourceMetrics, errors } = await reader.collect();
  await provider.shutdown();
  assert.deepEqual(errors, []);
  const bytes = ProtobufMetricsSerializer.serializeRequest(resourceMetrics);
  assert.ok(bytes);
  return otlpMessageCodecs().exportMetricsServiceRequest.decode(bytes);
}

function onlyMetric(request: ExportMetricsServiceRequest): Metric {
  const metrics = request.resourceMetrics[0]?.scopeMetrics[0]?.metrics;
  assert.equal(metrics?.length, 1);
  return metrics[0]!;
}

test('decodes an int counter with its name, unit, value, attributes, monotonic flag and cumulative temporality', async () => {
  const request = await exportThroughSdk((meter) => {
    const frames = meter.createCounter('swy.relay.frames', { unit: '{frame}', valueType: ValueType.INT });
    frames.add(3, { direction: 'in' });
    frames.add(4, { direction: 'in' });
  });
  const metric = onlyMetric(request);
  assert.equal(metric.name, 'swy.relay.frames');
  assert.equal(metric.unit, '{frame}');
  assert.equal(metric.data, 'sum');
  assert.equal(metric.sum?.isMonotonic, true);
  assert.equal(metric.sum?.aggregationTemporality, 'AGGREGATION_TEMPORALITY_CUMULATIVE');
  const point = metric.sum?.dataPoints[0];
  assert.equal(point?.value, 'asInt');
  assert.equal(point?.asInt, '7');
  assert.deepEqual(point?.attributes, [
    { key: 'direction', value: { value: 'stringValue', stringValue: 'in' }, keyStrindex: 0 },
  ]);
});

test('decodes an up-down counter as a non-monotonic double sum', async () => {
  const request = await exportThroughSdk((meter) => {
    meter.createUpDownCounter('swy.proxy.connections.active').add(-1.5);
  });
  const metric = onlyMetric(request);
  assert.equal(metric.sum?.isMonotonic, false);
  assert.equal(metric.sum?.dataPoints[0]?.asDouble, -1.5);
});

test('decodes delta temporality when the reader selects it', async () => {
  const request = await exportThroughSdk((meter) => meter.createCounter('swy.requests').add(1), {
    reader: { aggregationTemporalitySelector: () => AggregationTemporality.DELTA },
  });
  assert.equal(onlyMetric(request).sum?.aggregationTemporality, 'AGGREGATION_TEMPORALITY_DELTA');
});

test('decodes a gauge value recorded as a double', async () => {
  const request = await exportThroughSdk((meter) =>
    meter.createGauge('swy.queue.fill', { unit: '1' }).record(0.25),
  );
  const metric = onlyMetric(request);
  assert.equal(metric.data, 'gauge');
  assert.equal(metric.gauge?.dataPoints[0]?.value, 'asDouble');
  assert.equal(metric.gauge?.dataPoints[0]?.asDouble, 0.25);
});

test('decodes explicit-bucket histogram bounds, bucket counts, count, sum, min and max', async () => {
  const request = await exportThroughSdk((meter) => {
    const latency = meter.createHistogram('swy.upstream.latency', {
      unit: 'ms',
      advice: { explicitBucketBoundaries: [10, 100] },
    });
    for (const ms of [5, 7, 50, 500]) latency.record(ms, { upstream: 'a' });
  });
  const metric = onlyMetric(request);
  assert.equal(metric.histogram?.aggregationTemporality, 'AGGREGATION_TEMPORALITY_CUMULATIVE');
  const point = metric.histogram?.dataPoints[0];
  assert.deepEqual(point?.explicitBounds, [10, 100]);
  assert.deepEqual(point?.bucketCounts, ['2', '1', '1']);
  assert.equal(point?.count, '4');
  assert.equal(point?.sum, 562);
  assert.equal(point?.min, 5);
  assert.equal(point?.max, 500);
  assert.equal(point?.attributes[0]?.key, 'upstream');
});

test('decodes an exponential histogram with its scale, zero count and positive buckets', async () => {
  const request = await exportThroughSdk(
    (meter) => {
      const sizes = meter.createHistogram('swy.frame.size', { unit: 'By' });
      for (const bytes of [0, 1, 2, 4, 1024]) sizes.record(bytes);
    },
    {
      views: [
        { instrumentName: 'swy.frame.size', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } },
      ],
    },
  );
  const metric = onlyMetric(request);
  assert.equal(metric.data, 'exponentialHistogram');
  const point = metric.exponentialHistogram?.dataPoints[0];
  assert.equal(point?.count, '5');
  assert.equal(point?.zeroCount, '1');
  assert.equal(point?.sum, 1031);
  assert.equal(typeof point?.scale, 'number');
  const positiveTotal = point?.positive?.bucketCounts.reduce((total, count) => total + Number(count), 0);
  assert.equal(positiveTotal, 4);
});

test('decodes resource attributes and the instrumentation scope name and version', async () => {
  const request = await exportThroughSdk((meter) => meter.createCounter('swy.requests').add(1));
  const resourceMetrics = request.resourceMetrics[0];
  const serviceName = resourceMetrics?.resource?.attributes.find(
    (attribute) => attribute.key === 'service.name',
  );
  assert.equal(serviceName?.value?.stringValue, 'wire-test');
  assert.equal(resourceMetrics?.scopeMetrics[0]?.scope?.name, 'switchyard.wire');
  assert.equal(resourceMetrics?.scopeMetrics[0]?.scope?.version, '1.2.3');
});

test('decodes nanosecond timestamps as exact decimal strings', async () => {
  const before = BigInt(Date.now()) * 1_000_000n;
  const request = await exportThroughSdk((meter) => meter.createCounter('swy.requests').add(1));
  const point = onlyMetric(request).sum?.dataPoints[0];
  assert.match(point?.timeUnixNano ?? '', /^\d{19}$/);
  assert.ok(BigInt(point?.timeUnixNano ?? 0) >= before);
  assert.ok(BigInt(point?.startTimeUnixNano ?? 0) <= BigInt(point?.timeUnixNano ?? 0));
});
