import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { ExportMetricsServiceRequest } from '@switchyard/otlp-proto';
import { OtlpReceiver, type ReceivedExport } from '@switchyard/otlp-proto';
import { echoOnce } from './support/echo-client.ts';
import { type Family, parseExposition, sampleValue } from './support/exposition.ts';
import { freePort } from './support/free-port.ts';
import { pushedMetrics } from './support/otlp-metrics.ts';
import { translateWithOtlpTranslator } from './support/otlp-names.ts';
import { type RunningSampleWorker, startSampleWorker } from './support/worker-process.ts';

type Export = ReceivedExport<ExportMetricsServiceRequest>;

async function scrapeText(worker: RunningSampleWorker): Promise<string> {
  return (await fetch(`${worker.adminUrl}/metrics`)).text();
}

function nextExport(receiver: OtlpReceiver): Promise<Export> {
  return once(receiver, 'metrics').then(([received]) => received as Export);
}

function labelKeys(family: Family): string[] {
  const keys = new Set(
    family.samples.flatMap((sample) => Object.keys(sample.labels)).filter((key) => key !== 'le'),
  );
  return [...keys].sort();
}

describe('OTLP push from the sample worker to a real gRPC receiver', () => {
  let receiver: OtlpReceiver;
  let worker: RunningSampleWorker;

  before(async () => {
    receiver = await OtlpReceiver.start({ waitTimeoutMs: 15_000 });
    worker = await startSampleWorker({
      SWITCHYARD_DEMO_TRAFFIC: '0',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url,
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
    });
  });
  after(async () => {
    await worker.stop();
    await receiver.close();
  });

  test('pushes the same instruments with the same values as /metrics serves', async () => {
    const payloads = [Buffer.alloc(2048, 7), Buffer.alloc(10, 8)];
    for (const payload of payloads) await echoOnce(worker.echoPort, payload);
    // Wait until the server has accounted for both connections' ends, then take the next push.
    let scraped = parseExposition(await scrapeText(worker));
    while (sampleValue(scraped, 'switchyard_sample_connection_duration_seconds_count') !== 2) {
      scraped = parseExposition(await scrapeText(worker));
    }
    const pushed = pushedMetrics((await nextExport(receiver)).request);

    const connections = pushed.get('switchyard.sample.connections');
    assert.equal(connections?.type, 'monotonic_counter');
    assert.equal(connections?.values.get('{}'), 2);
    const bytes = pushed.get('switchyard.sample.bytes');
    assert.equal(bytes?.values.get('{"direction":"received"}'), 2058);
    assert.equal(bytes?.values.get('{"direction":"sent"}'), 2058);
    assert.equal(pushed.get('switchyard.sample.connection.duration')?.values.get('{}'), 2);
    assert.equal(pushed.get('switchyard.sample.ready')?.values.get('{}'), 1);
    // Every switchyard_sample_* value pushed equals the value scraped (traffic has stopped).
    for (const [name, metric] of pushed) {
      if (!name.startsWith('switchyard.sample.')) continue;
      for (const [attributes, value] of metric.values) {
        const labels = JSON.parse(attributes) as Record<string, string>;
        const [{ metric: prometheusName = '' } = { metric: '' }] = await translateWithOtlpTranslator([
          { name, unit: metric.unit, type: metric.type },
        ]);
        const sampleName = metric.prometheusType === 'histogram' ? `${prometheusName}_count` : prometheusName;
        assert.equal(sampleValue(scraped, sampleName, labels), value, `${sampleName}${attributes}`);
      }
    }
  });

  test('every pushed metric, named by the Collector rules, has the name, type and label keys of /metrics', async () => {
    const firstScrape = parseExposition(await scrapeText(worker));
    const pushed = pushedMetrics((await nextExport(receiver)).request);
    const secondScrape = parseExposition(await scrapeText(worker));

    const metrics = [...pushed.values()];
    const translated = await translateWithOtlpTranslator(
      metrics.map((metric) => ({
        name: metric.name,
        unit: metric.unit,
        type: metric.type,
        labels: [...metric.attributeKeys],
      })),
    );
    const pushedNames = new Set<string>();
    metrics.forEach((metric, i) => {
      const expected = translated[i];
      assert.ok(expected !== undefined);
      pushedNames.add(expected.metric);
      const family = secondScrape.get(expected.metric);
      assert.ok(
        family !== undefined,
        `${metric.name} is pushed as ${expected.metric}, which /metrics does not serve`,
      );
      assert.equal(family.type, metric.prometheusType, `type of ${expected.metric}`);
      assert.deepEqual(labelKeys(family), [...expected.labels].sort(), `label keys of ${expected.metric}`);
    });
    // And nothing served on /metrics is missing from the push (target_info is the resource).
    for (const name of firstScrape.keys()) {
      if (name !== 'target_info')
        assert.ok(pushedNames.has(name), `/metrics serves ${name}, which was not pushed`);
    }
    assert.ok(pushedNames.has('switchyard_sample_connections_total'));
    assert.ok(pushedNames.has('process_cpu_time_seconds_total'));
    assert.ok(pushedNames.has('http_server_request_duration_seconds'));
  });

  test('the pushed resource carries service and OTEL_RESOURCE_ATTRIBUTES attributes, as target_info does', async () => {
    const { request } = await nextExport(receiver);
    const attributes = new Map(
      (request.resourceMetrics[0]?.resource?.attributes ?? []).map((pair) => [
        pair.key,
        pair.value?.stringValue,
      ]),
    );
    assert.equal(attributes.get('service.name'), 'switchyard-sample-worker');
    assert.equal(attributes.get('deployment.environment.name'), 'test');
    assert.ok(attributes.get('service.instance.id'));
    const targetInfo = parseExposition(await scrapeText(worker)).get('target_info');
    assert.equal(targetInfo?.samples[0]?.labels.service_instance_id, attributes.get('service.instance.id'));
    assert.equal(targetInfo?.samples[0]?.labels.deployment_environment_name, 'test');
  });

  test('successful exports are counted', async () => {
    await nextExport(receiver);
    const scraped = parseExposition(await scrapeText(worker));
    assert.ok(
      (sampleValue(scraped, 'switchyard_telemetry_otlp_exports_total', { result: 'success' }) ?? 0) >= 1,
    );
  });
});

describe('OTLP push to a Collector that is down', () => {
  test('the worker keeps serving, counts each failure with its reason and logs once per streak', async () => {
    const deadPort = await freePort();
    const worker = await startSampleWorker({
      SWITCHYARD_DEMO_TRAFFIC: '0',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://127.0.0.1:${deadPort}`,
      OTEL_METRIC_EXPORT_INTERVAL: '200',
      OTEL_METRIC_EXPORT_TIMEOUT: '150',
    });
    try {
      await worker.waitForLog((line) => line.msg.startsWith('OTLP metric export failed'));
      let scraped = parseExposition(await scrapeText(worker));
      while (
        (sampleValue(scraped, 'switchyard_telemetry_otlp_exports_total', { result: 'failure' }) ?? 0) < 3
      ) {
        scraped = parseExposition(await scrapeText(worker));
      }
      const failures = ['timeout', 'unavailable', 'unauthenticated', 'rejected', 'other'].map(
        (reason) => sampleValue(scraped, 'switchyard_telemetry_otlp_export_failures_total', { reason }) ?? 0,
      );
      const total = failures.reduce((sum, count) => sum + count, 0);
      assert.equal(
        total,
        sampleValue(scraped, 'switchyard_telemetry_otlp_exports_total', { result: 'failure' }),
      );
      assert.ok((failures[0] ?? 0) + (failures[1] ?? 0) === total, `failures by reason: ${failures}`);
      const warnings = worker.logs.filter((line) => line.msg.startsWith('OTLP metric export failed'));
      assert.equal(warnings.length, 1, 'one log line for the whole streak');
      assert.deepEqual(
        await echoOnce(worker.echoPort, Buffer.from('still serving')),
        Buffer.from('still serving'),
      );
      assert.equal((await fetch(`${worker.adminUrl}/readyz`)).status, 200);
    } finally {
      await worker.stop();
    }
  });
});

describe('OTLP push when the Collector answers UNAVAILABLE and then recovers', () => {
  test('counts the failures as unavailable and logs the recovery once', async () => {
    const receiver = await OtlpReceiver.start({ waitTimeoutMs: 15_000 });
    receiver.answerNext('metrics', { kind: 'error', code: 14, details: 'collector overloaded' }, 2);
    const worker = await startSampleWorker({
      SWITCHYARD_DEMO_TRAFFIC: '0',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url,
      OTEL_METRIC_EXPORT_INTERVAL: '200',
    });
    try {
      await worker.waitForLog((line) => line.msg === 'OTLP metric export recovered');
      const scraped = parseExposition(await scrapeText(worker));
      assert.equal(
        sampleValue(scraped, 'switchyard_telemetry_otlp_export_failures_total', { reason: 'unavailable' }),
        2,
      );
      assert.equal(worker.logs.filter((line) => line.msg.startsWith('OTLP metric export failed')).length, 1);
    } finally {
      await worker.stop();
      await receiver.close();
    }
  });
});

describe('OTLP push honours the standard exporter knobs', () => {
  test('OTEL_EXPORTER_OTLP_* headers, compression and delta temporality reach the Collector', async () => {
    const receiver = await OtlpReceiver.start({ waitTimeoutMs: 15_000 });
    const worker = await startSampleWorker({
      SWITCHYARD_DEMO_TRAFFIC: '0',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url,
      OTEL_METRIC_EXPORT_INTERVAL: '200',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-scope-orgid=tenant-a,authorization=Bearer%20t0ken',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
    });
    try {
      const first = await nextExport(receiver);
      assert.deepEqual(first.metadata['x-scope-orgid'], ['tenant-a']);
      assert.deepEqual(first.metadata.authorization, ['Bearer t0ken']);
      assert.equal(first.requestEncoding, 'gzip');
      await echoOnce(worker.echoPort, Buffer.alloc(300, 1));
      // With delta temporality each export carries only what happened since the previous one:
      // the 300 bytes appear in exactly one export, and the sum over exports is exact.
      let received = 0;
      while (received < 300) {
        const pushed = pushedMetrics((await nextExport(receiver)).request).get('switchyard.sample.bytes');
        assert.equal(pushed?.temporality, 'AGGREGATION_TEMPORALITY_DELTA');
        received += pushed?.values.get('{"direction":"received"}') ?? 0;
      }
      assert.equal(received, 300);
      const later = pushedMetrics((await nextExport(receiver)).request).get('switchyard.sample.bytes');
      assert.equal(later?.values.get('{"direction":"received"}') ?? 0, 0);
    } finally {
      await worker.stop();
      await receiver.close();
    }
  });

  test('the config file’s otlp section wins over the environment', async () => {
    const receiver = await OtlpReceiver.start({ waitTimeoutMs: 15_000 });
    const worker = await startSampleWorker({
      SWITCHYARD_DEMO_TRAFFIC: '0',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
      SWITCHYARD_SAMPLE_TELEMETRY__OTLP__ENDPOINT: receiver.url,
      SWITCHYARD_SAMPLE_TELEMETRY__OTLP__INTERVAL_MS: '200ms',
      SWITCHYARD_SAMPLE_TELEMETRY__OTLP__HEADERS: '{"x-from-config":"yes"}',
      SWITCHYARD_SAMPLE_TELEMETRY__OTLP__TEMPORALITY: 'cumulative',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
    });
    try {
      const received = await nextExport(receiver);
      assert.deepEqual(received.metadata['x-from-config'], ['yes']);
      const bytes = pushedMetrics(received.request).get('switchyard.sample.bytes');
      assert.equal(bytes?.temporality, 'AGGREGATION_TEMPORALITY_CUMULATIVE');
    } finally {
      await worker.stop();
      await receiver.close();
    }
  });
});
