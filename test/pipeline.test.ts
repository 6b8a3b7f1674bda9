// The whole pipeline end to end, with the real parts a cluster has: the workers as separate
// processes on loopback with their pods' configs (deploy/kubernetes), the OpenTelemetry Collector
// built by scripts/build-collector.sh with the deployed Collector config, and Prometheus 3.x built
// by scripts/build-prometheus3.sh scraping as the ServiceMonitors do. Every worker kind runs twice:
// once on the pull path (scraped) and once on the push path (OTLP to the Collector, whose Prometheus
// exporter is scraped), so that the two paths can be compared series by series.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { LogBatchBuilder, LogSender, logForwarderConfigSchema } from '@switchyard/log-forwarder';
import { cachedBinary } from './support/cached-binary.ts';
import { type RunningCollector, startCollector } from './support/collector.ts';
import { echoOnce } from './support/echo-client.ts';
import { type Family, sampleValue } from './support/exposition.ts';
import {
  driveRelayTraffic,
  expectedRelayCounts,
  type RelayPipelineWorker,
  type RelayTrafficPlan,
  relayKind,
} from './support/pipeline-relay.ts';
import {
  type LogForwarderPipelineWorker,
  logForwarderKind,
  type MetricsPath,
  type PipelineWorker,
  type PipelineWorkerKind,
  type ProxyPipelineWorker,
  podsOf,
  proxyKind,
} from './support/pipeline-workers.ts';
import { configMapFile } from './support/pod-spec.ts';
import { type RunningPrometheus, startPrometheus } from './support/prometheus.ts';

const scrapeIntervalSeconds = 1;
/** How long the log forwarder retries an export: the deploy/ config leaves it at its default. */
const retryElapsedMs = logForwarderConfigSchema.parse({}).collector.retry.maxElapsedMs;
const collectorJob = 'switchyard-otel-collector';

/** Every worker kind in the pipeline. */
const kinds: readonly PipelineWorkerKind[] = [proxyKind, logForwarderKind, relayKind];

/**
 * Series left out of the push/pull comparison, by path, and why:
 * - pull: the series Prometheus writes for every target itself (`up`, `scrape_*`): they describe
 *   the scrape, not the worker;
 * - push: the OTLP export duration histogram: only a worker that pushes records it, and a histogram
 *   series appears at its first observation (packages/telemetry/src/recorder.ts), while the export
 *   counters exist at zero on both paths.
 */
const pathOnlySeries = {
  pull: /^(up|scrape_(duration_seconds|samples_scraped|samples_post_metric_relabeling|series_added))$/,
  push: /^switchyard_telemetry_otlp_export_duration_seconds_(bucket|sum|count)$/,
} as const;

/**
 * Series compared only when both paths have them: the GC histogram's series appear with the first
 * garbage collection of each kind on the worker's data thread, and an idle worker (whose scrapes
 * no longer allocate on that thread) may not have had one yet on one of the two paths.
 */
const afterFirstEvent = /^v8js_gc_duration_seconds_(bucket|sum|count)$/;

/** Drops the `afterFirstEvent` names that only one of the two maps has. */
function withoutOneSidedEvents(
  a: Map<string, string[]>,
  b: Map<string, string[]>,
): [Map<string, string[]>, Map<string, string[]>] {
  const keep = (name: string) => !afterFirstEvent.test(name) || (a.has(name) && b.has(name));
  return [new Map([...a].filter(([name]) => keep(name))), new Map([...b].filter(([name]) => keep(name)))];
}

/**
 * Label keys left out of the push/pull comparison, and why:
 * - `job`, `instance`: on the pull path they name the scrape target (the Service, the pod's
 *   address); on the push path the Collector's exporter derives them from service.name and
 *   service.instance.id (kept by honor_labels, as the Collector's ServiceMonitor does). Both paths
 *   have both keys; only their values differ.
 * - `otel_scope_*`: the exporter labels every series with the instrumentation scope; the workers'
 *   /metrics leaves the scope out on purpose (packages/telemetry/src/prometheus-serializer.ts).
 * - On `target_info` only, the resource attributes: /metrics writes all of them, the exporter moves
 *   service.name, service.namespace and service.instance.id into job and instance.
 */
function comparedKeys(name: string, labels: Record<string, string>): string[] {
  const resourceKeysMovedToJobAndInstance = ['service_name', 'service_namespace', 'service_instance_id'];
  return Object.keys(labels)
    .filter(
      (key) => key !== '__name__' && key !== 'job' && key !== 'instance' && !key.startsWith('otel_scope_'),
    )
    .filter((key) => name !== 'target_info' || !resourceKeysMovedToJobAndInstance.includes(key))
    .sort();
}

/** The Prometheus selector of one worker's own series on its path. */
function selectorOf(kind: PipelineWorkerKind, worker: PipelineWorker): string {
  const instance = worker.path === 'pull' ? worker.adminAddress : worker.pod.uid;
  return `job="${kind.job}",instance="${instance}"`;
}

describe('the pipeline: workers, a real OpenTelemetry Collector and a real Prometheus 3', () => {
  let collector: RunningCollector;
  let prometheus: RunningPrometheus;
  const workers = new Map<PipelineWorkerKind, { pull: PipelineWorker; push: PipelineWorker }>();
  const started: PipelineWorker[] = [];

  const pair = <W extends PipelineWorker>(kind: PipelineWorkerKind<W>): { pull: W; push: W } => {
    const started = workers.get(kind as PipelineWorkerKind);
    assert.ok(started, `${kind.worker} was not started`);
    return started as unknown as { pull: W; push: W };
  };
  const value = async (promql: string): Promise<number> => {
    const samples = await prometheus.query(promql);
    assert.equal(samples.length, 1, `${promql} returned ${JSON.stringify(samples)}`);
    return samples[0]!.value;
  };
  /** Waits until `promql` (one sample) equals `expected`, then returns it. */
  const settled = async (promql: string, expected: number): Promise<number> => {
    const [sample] = await prometheus.waitFor(promql, (s) => s.length === 1 && s[0]!.value === expected);
    return sample!.value;
  };

  before(async () => {
    collector = await startCollector(
      configMapFile('otlp-push', 'switchyard-otel-collector', 'collector.yaml'),
    );
    const context = { collector, scrapeIntervalSeconds };
    const start = async (kind: PipelineWorkerKind, path: MetricsPath): Promise<PipelineWorker> => {
      const worker = await kind.start(path, context);
      started.push(worker);
      return worker;
    };
    for (const kind of kinds) {
      workers.set(kind, { pull: await start(kind, 'pull'), push: await start(kind, 'push') });
    }
    prometheus = await startPrometheus({
      binary: cachedBinary('build-prometheus3.sh'),
      scrapeIntervalSeconds,
      targets: [
        ...[...workers].flatMap(([kind, { pull }]) =>
          podsOf(pull).map((pod) => ({ job: kind.job, address: pod.adminAddress })),
        ),
        { job: collectorJob, address: collector.prometheusExporterAddress, honorLabels: true },
      ],
    });
  });

  after(async () => {
    await Promise.all(started.map((worker) => worker.stop()));
    await prometheus?.stop();
    await collector?.close();
  });

  test('proxy: connections and bytes through it equal the traffic exactly, on both paths', async () => {
    const { pull, push } = pair<ProxyPipelineWorker>(proxyKind);
    const sizes = [1, 7, 100, 1_000, 4_096, 10_000, 65_536, 200_000, 3, 12_345];
    const totalBytes = sizes.reduce((sum, size) => sum + size, 0);
    for (const proxy of [pull, push]) {
      const port = proxy.listenPorts.get('public');
      assert.ok(port !== undefined, 'the example overlay has a listener named public');
      for (const [i, size] of sizes.entries()) {
        const payload = Buffer.alloc(size, i);
        assert.deepEqual(await echoOnce(port, payload), payload);
      }
    }
    for (const proxy of [pull, push]) {
      const at = selectorOf(proxyKind, proxy);
      // A connection is counted in the duration histogram once both of its sides have closed.
      await settled(`sum(switchyard_proxy_connection_duration_seconds_count{${at}})`, sizes.length);
      for (const [upstream, backend] of proxy.backends) {
        assert.equal(
          await value(`sum(switchyard_proxy_connections_total{${at},pool="api",upstream="${upstream}"})`),
          backend.dataConnections(),
          `${proxy.path}: connections to ${upstream}`,
        );
        assert.equal(await value(`switchyard_proxy_upstream_healthy{${at},upstream="${upstream}"}`), 1);
      }
      assert.equal(await value(`sum(switchyard_proxy_connections_total{${at}})`), sizes.length);
      assert.equal(
        await value(`switchyard_proxy_accepted_connections_total{${at},listener="public"}`),
        sizes.length,
      );
      for (const direction of ['client_to_upstream', 'upstream_to_client']) {
        assert.equal(
          await value(`sum(switchyard_proxy_bytes_total{${at},direction="${direction}"})`),
          totalBytes,
          `${proxy.path}: bytes ${direction}`,
        );
      }
      assert.equal(await value(`sum(switchyard_proxy_rejected_connections_total{${at}})`), 0);
      assert.equal(await value(`sum(switchyard_proxy_dial_failures_total{${at}})`), 0);
      assert.equal(await value(`sum(switchyard_proxy_active_connections{${at}})`), 0);
      assert.equal(await value(`sum(switchyard_proxy_listener_active_connections{${at}})`), 0);
    }
  });

  test('log forwarder: across a Collector outage every record arrives exactly once or is counted as dropped', async () => {
    const { pull, push } = pair<LogForwarderPipelineWorker>(logForwarderKind);
    const forwarders = [pull, push];
    const sent = new Map<LogForwarderPipelineWorker, string[]>(forwarders.map((f) => [f, []]));
    const send = async (forwarder: LogForwarderPipelineWorker, records: number): Promise<void> => {
      const bodies = sent.get(forwarder)!;
      const batch = Array.from(
        { length: records },
        (_, i) => `${forwarder.pod.name} record ${bodies.length + i}`,
      );
      const builder = new LogBatchBuilder({ serviceName: 'pipeline-app', maxRecords: records });
      for (const body of batch) builder.add({ body });
      const sender = new LogSender({ socketPath: forwarder.socketPath });
      assert.ok(sender.send(builder.finish(), records));
      await sender.flush(10_000);
      await sender.close();
      bodies.push(...batch);
    };

    // Collector up: everything is forwarded.
    for (const forwarder of forwarders) {
      await send(forwarder, 10);
      await send(forwarder, 15);
      await scrapeUntil(forwarder, (f) => counter(f, 'records_forwarded_total') === 25);
    }

    // Collector down: the forwarders retry for collector.retry.maxElapsedMs (30 s by default), give
    // up and count the records as dropped (forward_failed).
    await collector.stop();
    for (const forwarder of forwarders) await send(forwarder, 20);
    for (const forwarder of forwarders) {
      const families = await scrapeUntil(
        forwarder,
        (f) => counter(f, 'records_dropped_total', { reason: 'forward_failed' }) === 20,
        retryElapsedMs + 10_000,
      );
      assert.ok(counter(families, 'forward_errors_total', { code: 'UNAVAILABLE' }) > 0);
    }
    const pushFailures = await push.metrics();
    assert.ok(
      (sampleValue(pushFailures, 'switchyard_telemetry_otlp_export_failures_total', {
        reason: 'unavailable',
      }) ?? 0) > 0,
      'the push-path worker counts its failed metric exports',
    );

    // Collector back: the first batch after the restart is forwarded, although the forwarders'
    // channels are still in reconnect backoff (up to maxBackoffMs, 5 s) and fail attempts at once
    // until they reconnect: retries last maxElapsedMs, not a count of attempts.
    await collector.restart();
    const forwardedBefore = new Map<LogForwarderPipelineWorker, number>();
    for (const forwarder of forwarders) {
      forwardedBefore.set(forwarder, counter(await forwarder.metrics(), 'records_forwarded_total'));
      await send(forwarder, 12);
    }
    for (const forwarder of forwarders) {
      const families = await scrapeUntil(
        forwarder,
        (f) => settledAccounting(f) === sent.get(forwarder)!.length,
      );
      assert.equal(
        counter(families, 'records_forwarded_total'),
        forwardedBefore.get(forwarder)! + 12,
        `${forwarder.pod.name}: the first batch after the Collector restarted was forwarded`,
      );
      assert.equal(counter(families, 'records_dropped_total', { reason: 'forward_failed' }), 20);
    }

    // The file exporter flushes every second: wait until it holds what the forwarders forwarded.
    let forwardedTotal = 0;
    for (const forwarder of forwarders)
      forwardedTotal += counter(await forwarder.metrics(), 'records_forwarded_total');
    const records = await pollUntil(
      () => collector.logRecords(),
      (all) => all.length >= forwardedTotal,
      'the Collector file output to hold every forwarded record',
    );
    assert.ok((await collector.exportLines()) >= 2, 'one line per export, in each Collector run');
    assert.equal(records.length, forwardedTotal, 'records in the Collector output = records forwarded');
    assert.ok(
      records.every((r) => r.serviceName === 'pipeline-app'),
      'every record carries its sender service.name',
    );

    for (const forwarder of forwarders) {
      const at = selectorOf(logForwarderKind, forwarder);
      const bodies = sent.get(forwarder)!;
      const arrived = records.filter((r) => r.body.startsWith(`${forwarder.pod.name} `)).map((r) => r.body);
      assert.equal(new Set(arrived).size, arrived.length, `${forwarder.pod.name}: no record arrived twice`);
      assert.ok(arrived.every((body) => bodies.includes(body)));
      const lf = (name: string, labels = ''): string =>
        `sum(switchyard_log_forwarder_${name}{${at}${labels}})`;
      // Through Prometheus, on this forwarder's path (the push path catches up within an export).
      await settled(lf('records_received_total'), bodies.length);
      await settled(lf('records_forwarded_total'), arrived.length);
      const dropped = await value(lf('records_dropped_total', ',reason="forward_failed"'));
      assert.ok(dropped >= 20, `${forwarder.path}: forward_failed ${dropped}`);
      assert.equal(arrived.length + dropped, bodies.length, `${forwarder.path}: arrived + dropped = sent`);
      assert.equal(await value(lf('records_dropped_total', ',reason!="forward_failed"')), 0);
      assert.equal(await value(lf('buffer_records')), 0);
      assert.equal(await value(lf('in_flight_records')), 0);
    }
  });

  test('relay: packets relayed, across the mesh and dropped equal the traffic exactly, on both paths', async (t) => {
    const { pull, push } = pair<RelayPipelineWorker>(relayKind);
    // Clients homed on the StatefulSet's two replicas, meshed; `nobody` is a key connected nowhere.
    const plan: RelayTrafficPlan = {
      homes: { alice: 0, bob: 0, carol: 1 },
      sends: [
        { from: 'alice', to: 'bob', sizes: [1, 100, 1_000, 65_536] },
        { from: 'bob', to: 'alice', sizes: [1_200, 1_200, 1_200] },
        { from: 'alice', to: 'carol', sizes: [2_000, 5, 40_000, 7, 512] },
        { from: 'carol', to: 'bob', sizes: [300, 62], disco: true },
        { from: 'alice', to: 'nobody', sizes: [100, 100, 100] },
        { from: 'bob', to: 'nobody', sizes: [80], disco: true },
        { from: 'carol', to: 'nobody', sizes: [90, 90], disco: true },
      ],
    };
    for (const relays of [pull, push]) {
      const traffic = await driveRelayTraffic(podsOf(relays), plan);
      t.after(() => traffic.close());
    }
    for (const relays of [pull, push]) {
      const replicas = podsOf(relays);
      const expected = expectedRelayCounts(replicas.length, plan);
      for (const [ordinal, relay] of replicas.entries()) {
        const counts = expected[ordinal]!;
        const at = selectorOf(relayKind, relay);
        // Waits for the value (the push path catches up within an export); a failure shows the last one.
        const equal = async (name: string, labels: string, count: number): Promise<void> => {
          const promql = `sum(switchyard_relay_${name}{${at}${labels}})`;
          const seen = await settled(promql, count).catch(() => value(promql));
          assert.equal(seen, count, `${relay.pod.name}: ${promql}`);
        };
        await equal('packets_received_total', ',kind="disco"', counts.packetsReceived.disco);
        await equal('packets_received_total', ',kind="other"', counts.packetsReceived.other);
        await equal('bytes_received_total', '', counts.bytesReceived);
        await equal('packets_sent_total', '', counts.packetsSent);
        await equal('bytes_sent_total', '', counts.bytesSent);
        await equal('queue_duration_seconds_count', '', counts.packetsSent);
        await equal('packets_forwarded_out_total', '', counts.packetsForwardedOut);
        await equal('packets_forwarded_in_total', '', counts.packetsForwardedIn);
        for (const [reason, count] of Object.entries(counts.packetsDropped)) {
          await equal('packets_dropped_total', `,reason="${reason}"`, count);
        }
        await equal('peer_gone_frames_sent_total', ',reason="not_here"', counts.peerGoneNotHere);
        await equal('clients_remote', '', counts.clientsRemote);
        await equal('mesh_links', ',state="up"', replicas.length - 1);
        await equal('mesh_links', ',state="down"', 0);
        await equal('watchers', '', replicas.length - 1);
      }
    }
  });

  test('every target is up, and no scrape was refused or lost samples', async () => {
    const pullPods = [...workers.values()].flatMap(({ pull }) => podsOf(pull));
    const targets = await pollUntil(
      () => prometheus.targets(),
      (all) =>
        all.length === pullPods.length + 1 && all.every((t) => t.health === 'up' && t.lastError === ''),
      'every target up with no last error',
    );
    for (const target of targets) {
      const instance = `job="${target.labels.job}",instance="${target.labels.instance}"`;
      assert.equal(await value(`up{${instance}}`), 1);
      // The restarted Collector's exporter is empty until the push workers' next export.
      const [latest] = await prometheus.waitFor(
        `scrape_samples_scraped{${instance}}`,
        (s) => (s[0]?.value ?? 0) > 0,
      );
      const scraped = latest!.value;
      assert.equal(await value(`scrape_samples_post_metric_relabeling{${instance}}`), scraped);
    }
    // Each pull target's scrape took in every sample its /metrics serves.
    for (const pull of pullPods) {
      const instance = `instance="${pull.adminAddress}"`;
      await pollUntil(
        async () => ({
          served: sampleCount(await pull.metrics()),
          stored: await value(`scrape_samples_scraped{${instance}}`),
        }),
        ({ served, stored }) => served === stored,
        `scrape_samples_scraped{${instance}} to equal the samples its /metrics serves`,
      );
    }
    // Prometheus counts samples it refused (duplicates, out of order, over a limit) in its own metrics.
    const own = await (await fetch(`${prometheus.url}/metrics`)).text();
    for (const counterName of [
      'prometheus_target_scrapes_sample_duplicate_timestamp_total',
      'prometheus_target_scrapes_sample_out_of_order_total',
      'prometheus_target_scrapes_sample_out_of_bounds_total',
      'prometheus_target_scrapes_exceeded_sample_limit_total',
      'prometheus_target_scrape_pool_exceeded_label_limits_total',
    ]) {
      const line = own.split('\n').find((l) => l.startsWith(`${counterName} `));
      assert.ok(line !== undefined, `Prometheus exposes ${counterName}`);
      assert.equal(Number(line.split(' ')[1]), 0, line);
    }
  });

  test('Prometheus 3 scraped the workers in OpenMetrics, asking as it does by default', async () => {
    // Only OpenMetrics names a counter's family without `_total` and carries `# UNIT`: metadata
    // under those family names, with units, shows the negotiation chose it for every pull pod.
    const families = [
      { kind: proxyKind, metric: 'switchyard_proxy_bytes', type: 'counter', unit: 'bytes' },
      { kind: relayKind, metric: 'switchyard_relay_bytes_sent', type: 'counter', unit: '' },
      {
        kind: logForwarderKind,
        metric: 'switchyard_log_forwarder_buffer_bytes',
        type: 'gauge',
        unit: 'bytes',
      },
    ] as const;
    for (const { kind, metric, type, unit } of families) {
      const pods = podsOf(pair(kind as PipelineWorkerKind).pull);
      const instances = new Set(pods.map((pod) => pod.adminAddress));
      const metadata = await pollUntil(
        () => prometheus.targetMetadata(metric),
        (entries) =>
          entries.filter((entry) => instances.has(entry.target.instance ?? '')).length === pods.length,
        `metadata of ${metric} from every ${kind.worker} pull pod`,
      );
      for (const entry of metadata.filter((one) => instances.has(one.target.instance ?? ''))) {
        assert.deepEqual(
          { type: entry.type, unit: entry.unit },
          { type, unit },
          `${metric} ${JSON.stringify(entry.target)}`,
        );
      }
    }
  });

  test('every series name and label key on the push path is the same as on the pull path', async () => {
    for (const [kind, { pull, push }] of workers) {
      // Prometheus requests /metrics of a pull worker, which records HTTP server metrics; give the
      // push worker the same request, so that both have the same series to compare.
      await push.metrics();
      const shapes = async (): Promise<[Map<string, string[]>, Map<string, string[]>]> =>
        withoutOneSidedEvents(
          ...(await Promise.all([
            seriesShapes(prometheus, selectorOf(kind, pull), pathOnlySeries.pull),
            seriesShapes(prometheus, selectorOf(kind, push), pathOnlySeries.push),
          ])),
        );
      // The push path shows the request from the next export on.
      const [pulled, pushed] = await pollUntil(
        shapes,
        ([a, b]) => isDeepStrictEqual(a, b),
        'the paths to agree',
      ).catch(() => shapes());
      assert.ok(pulled.size > 20, `${kind.worker}: ${pulled.size} series names on the pull path`);
      assert.deepEqual(pushed, pulled, `${kind.worker}: series names and label keys, push vs pull`);
    }
  });

  test('every worker drains and exits 0 on SIGTERM', async () => {
    for (const [kind, { pull, push }] of workers) {
      for (const worker of [...podsOf(pull), ...podsOf(push)]) {
        assert.deepEqual(await worker.stop(), { code: 0, signal: null }, `${kind.worker} ${worker.pod.name}`);
      }
    }
  });
});

/** The name and label keys of every series matching `selector`: name -> sorted distinct key lists. */
async function seriesShapes(
  prometheus: RunningPrometheus,
  selector: string,
  leaveOut: RegExp,
): Promise<Map<string, string[]>> {
  const shapes = new Map<string, Set<string>>();
  for (const labels of await prometheus.series(`{${selector}}`)) {
    const name = labels.__name__ ?? '';
    if (leaveOut.test(name)) continue;
    const keys = shapes.get(name) ?? new Set<string>();
    keys.add(comparedKeys(name, labels).join(','));
    shapes.set(name, keys);
  }
  return new Map(
    [...shapes].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, keys]) => [name, [...keys].sort()]),
  );
}

function counter(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  return sampleValue(families, `switchyard_log_forwarder_${name}`, labels) ?? Number.NaN;
}

/** Records received that are no longer buffered or in flight: forwarded or dropped for a reason. */
function settledAccounting(families: Map<string, Family>): number {
  const pending = counter(families, 'buffer_records') + counter(families, 'in_flight_records');
  return pending === 0 ? counter(families, 'records_received_total') : Number.NaN;
}

function sampleCount(families: Map<string, Family>): number {
  let count = 0;
  for (const family of families.values()) count += family.samples.length;
  return count;
}

function scrapeUntil(
  worker: PipelineWorker,
  done: (families: Map<string, Family>) => boolean,
  timeoutMs?: number,
): Promise<Map<string, Family>> {
  const what = `${worker.pod.name} /metrics to reach the expected state`;
  return pollUntil(() => worker.metrics(), done, what, timeoutMs);
}

/** Re-reads real state every 50 ms until `done` accepts it; fails after `timeoutMs` with the last state. */
async function pollUntil<T>(
  read: () => Promise<T>,
  done: (state: T) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await read();
    if (done(state)) return state;
    if (Date.now() > deadline) {
      const shown = state instanceof Map ? '(a scrape)' : JSON.stringify(state).slice(0, 2_000);
      throw new Error(`timed out waiting for ${what}; last state ${shown}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
