import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from './errors.ts';
import { parseResourceAttributes, readOtelEnvironment } from './otel-env.ts';
import { exportFailureReason, otlpEndpoint } from './otlp-push.ts';
import { buildResource } from './resource.ts';

test('OTEL_RESOURCE_ATTRIBUTES is parsed as key=value pairs with percent-decoding', () => {
  assert.deepEqual(parseResourceAttributes('a=1, b = two%2Cthree ,c=%F0%9F%9A%80,'), {
    a: '1',
    b: 'two,three',
    c: '🚀',
  });
  assert.deepEqual(parseResourceAttributes(undefined), {});
  assert.throws(() => parseResourceAttributes('=x'), ConfigError);
  assert.throws(() => parseResourceAttributes('a=%E0%A4%A'), /bad percent-encoding/);
});

test('the signal-specific OTLP endpoint wins over the generic one, and blank values count as unset', () => {
  assert.equal(
    readOtelEnvironment({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://metrics:4317',
    }).otlpEndpoint,
    'http://metrics:4317',
  );
  assert.equal(
    readOtelEnvironment({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4317',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: ' ',
    }).otlpEndpoint,
    'http://generic:4317',
  );
  assert.equal(readOtelEnvironment({}).otlpEndpoint, undefined);
});

test('OTEL_SDK_DISABLED accepts true/false in any case and rejects anything else', () => {
  assert.equal(readOtelEnvironment({ OTEL_SDK_DISABLED: 'TRUE' }).sdkDisabled, true);
  assert.equal(readOtelEnvironment({ OTEL_SDK_DISABLED: 'false' }).sdkDisabled, false);
  assert.equal(readOtelEnvironment({}).sdkDisabled, false);
  assert.throws(
    () => readOtelEnvironment({ OTEL_SDK_DISABLED: 'yes' }),
    /OTEL_SDK_DISABLED="yes" is not allowed: expected true or false/,
  );
});

test('export interval and timeout must be positive integers of milliseconds', () => {
  const env = readOtelEnvironment({
    OTEL_METRIC_EXPORT_INTERVAL: '15000',
    OTEL_METRIC_EXPORT_TIMEOUT: '5000',
  });
  assert.equal(env.exportIntervalMs, 15000);
  assert.equal(env.exportTimeoutMs, 5000);
  assert.throws(
    () => readOtelEnvironment({ OTEL_METRIC_EXPORT_INTERVAL: '0' }),
    /positive integer number of milliseconds/,
  );
  assert.throws(
    () => readOtelEnvironment({ OTEL_METRIC_EXPORT_TIMEOUT: '1.5' }),
    /OTEL_METRIC_EXPORT_TIMEOUT/,
  );
});

test('push is on when the config or the environment names an endpoint, unless OTEL_METRICS_EXPORTER excludes otlp', () => {
  const env = readOtelEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4317' });
  assert.equal(otlpEndpoint({}, env), 'http://env:4317');
  assert.equal(otlpEndpoint({ endpoint: 'http://config:4317' }, env), 'http://config:4317');
  const off = readOtelEnvironment({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4317',
    OTEL_METRICS_EXPORTER: 'none',
  });
  assert.equal(otlpEndpoint({}, off), undefined);
  assert.equal(
    otlpEndpoint({ endpoint: 'http://config:4317' }, off),
    'http://config:4317',
    'the config file is explicit',
  );
  const both = readOtelEnvironment({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4317',
    OTEL_METRICS_EXPORTER: 'prometheus,otlp',
  });
  assert.equal(otlpEndpoint({}, both), 'http://env:4317');
});

test('export errors map onto the closed reason set by gRPC status', () => {
  assert.equal(exportFailureReason({ code: 4 }), 'timeout');
  assert.equal(exportFailureReason({ code: 14 }), 'unavailable');
  assert.equal(exportFailureReason({ code: 16 }), 'unauthenticated');
  assert.equal(exportFailureReason({ code: 7 }), 'unauthenticated');
  assert.equal(exportFailureReason({ code: 3 }), 'rejected');
  assert.equal(exportFailureReason({ code: 2 }), 'other');
  assert.equal(exportFailureReason(Object.assign(new Error('x'), { name: 'TimeoutError' })), 'timeout');
  assert.equal(exportFailureReason(new Error('Request timeout')), 'timeout');
  assert.equal(exportFailureReason(undefined), 'other');
});

test('the resource takes the downward-API pod attributes, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME', () => {
  const env = {
    K8S_POD_NAME: 'proxy-7f9c',
    K8S_POD_UID: '0b6f3a9e-uid',
    K8S_NAMESPACE_NAME: 'edge',
    K8S_NODE_NAME: 'node-1',
    OTEL_RESOURCE_ATTRIBUTES:
      'k8s.namespace.name=override,deployment.environment.name=prod,service.name=from-attrs',
    OTEL_SERVICE_NAME: 'from-service-name',
  };
  const resource = buildResource({
    serviceName: 'switchyard-proxy',
    serviceVersion: '1.2.3',
    otelEnv: readOtelEnvironment(env),
    env,
  });
  const attributes = resource.attributes;
  assert.equal(attributes['service.name'], 'from-service-name');
  assert.equal(attributes['service.version'], '1.2.3');
  assert.equal(attributes['service.instance.id'], '0b6f3a9e-uid');
  assert.equal(attributes['k8s.pod.name'], 'proxy-7f9c');
  assert.equal(attributes['k8s.node.name'], 'node-1');
  assert.equal(attributes['k8s.namespace.name'], 'override');
  assert.equal(attributes['deployment.environment.name'], 'prod');
  assert.equal(attributes['telemetry.sdk.language'], 'nodejs');
});

test('without a pod UID every process gets its own service.instance.id', () => {
  const make = () =>
    buildResource({ serviceName: 's', serviceVersion: '1', otelEnv: readOtelEnvironment({}), env: {} })
      .attributes['service.instance.id'];
  assert.notEqual(make(), make());
});
