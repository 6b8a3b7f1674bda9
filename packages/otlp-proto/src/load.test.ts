import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ProtoDefinitionError } from './errors.ts';
import {
  loadMessageCodec,
  loadOtlpLogsService,
  loadOtlpMetricsService,
  otlpMessageCodecs,
  protoDir,
} from './load.ts';

test('protoDir is an absolute path holding the OTLP metrics service proto', () => {
  assert.ok(existsSync(join(protoDir, 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto')));
});

test('serves metrics Export at the gRPC path OTLP exporters call', () => {
  assert.equal(
    loadOtlpMetricsService().Export.path,
    '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  );
});

test('serves logs Export at the gRPC path OTLP exporters call', () => {
  assert.equal(
    loadOtlpLogsService().Export.path,
    '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
  );
});

test('keeps a uint64 histogram count above 2^53 exact through encode and decode', () => {
  const codec = otlpMessageCodecs().metricsData;
  const count = '18446744073709551615';
  const bytes = codec.encode({
    resourceMetrics: [
      {
        scopeMetrics: [
          { metrics: [{ name: 'big', histogram: { dataPoints: [{ count, bucketCounts: [count] }] } }] },
        ],
      },
    ],
  });
  const point = codec.decode(bytes).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.histogram?.dataPoints[0];
  assert.equal(point?.count, count);
  assert.deepEqual(point?.bucketCounts, [count]);
});

test('decodes an int gauge point with the as_int oneof member named', () => {
  const codec = otlpMessageCodecs().exportMetricsServiceRequest;
  const bytes = codec.encode({
    resourceMetrics: [
      { scopeMetrics: [{ metrics: [{ name: 'g', gauge: { dataPoints: [{ asInt: '-5' }] } }] }] },
    ],
  });
  const metric = codec.decode(bytes).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0];
  assert.equal(metric?.data, 'gauge');
  assert.equal(metric?.gauge?.dataPoints[0]?.value, 'asInt');
  assert.equal(metric?.gauge?.dataPoints[0]?.asInt, '-5');
});

test('throws ProtoDefinitionError for a message name the protos do not define', () => {
  assert.throws(() => loadMessageCodec('opentelemetry.proto.trace.v1.Span'), ProtoDefinitionError);
});
