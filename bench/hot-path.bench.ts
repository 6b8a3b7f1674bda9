import os from 'node:os';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BYTES_BUCKETS,
  defineCatalog,
  MetricsWriter,
  registerCatalog,
  SECONDS_BUCKETS,
} from '@switchyard/telemetry';
import {
  type BenchCase,
  type CaseResult,
  markdownTable,
  positiveIntegerFromEnv,
  runCases,
} from './harness.ts';

/**
 * What one recorded event costs on the data path, for each way of recording it: a bare field
 * increment (the floor), the catalog's cells (a slot in shared memory, slot-store.ts), a careless
 * per-call cell lookup, and the SDK's synchronous instruments called as people usually write them.
 * The SDK instruments live on an sdk-metrics MeterProvider with a reader attached, so SDK calls do
 * their real work. The collection cases show what a scrape costs the data thread: one snapshot of
 * its cells (ours) against one SDK reader.collect() of the same catalog.
 *
 * Run: `node hot-path.bench.ts` from bench/. BENCH_RUNS sets the samples per case (default 7).
 */

/** A pull reader that only exposes `collect()`, as the Prometheus exporter does. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const DIRECTIONS = ['inbound', 'outbound'] as const;
const FRAME_TYPES = ['data', 'ping', 'close'] as const;
const RESULTS = ['ok', 'dropped'] as const;
const LISTENERS = ['public', 'admin'] as const;
const UPSTREAMS = ['alpha', 'beta', 'gamma'] as const;
const ERROR_REASONS = ['refused', 'timeout', 'reset', 'other'] as const;

const frameAttributes = {
  direction: { description: 'Towards or away from the client.', values: DIRECTIONS },
  frame_type: { description: 'Frame type from the header.', values: FRAME_TYPES },
  result: { description: 'Whether the frame was forwarded.', values: RESULTS },
} as const;

/** A relay-sized catalog: 48 series once every histogram series has a value. */
const catalog = defineCatalog({
  namespace: 'switchyard.bench',
  instruments: {
    'frames.decoded': { kind: 'counter', unit: '{frame}', description: 'Frames decoded.' },
    'frames.routed': {
      kind: 'counter',
      unit: '{frame}',
      description: 'Frames routed, by direction, type and result.',
      attributes: frameAttributes,
    },
    'bytes.forwarded': {
      kind: 'counter',
      unit: 'By',
      description: 'Payload bytes forwarded.',
      attributes: {
        direction: frameAttributes.direction,
        listener: { description: 'Listener that accepted the connection.', values: LISTENERS },
      },
    },
    'upstream.errors': {
      kind: 'counter',
      unit: '{error}',
      description: 'Upstream connection failures.',
      attributes: {
        reason: { description: 'Why the connection failed.', values: ERROR_REASONS },
        upstream: { description: 'Upstream name.', values: UPSTREAMS },
      },
    },
    'connections.open': {
      kind: 'updown_counter',
      unit: '{connection}',
      description: 'Client connections open.',
      attributes: { listener: { description: 'Listener.', values: LISTENERS } },
    },
    'upstreams.healthy': {
      kind: 'gauge',
      unit: '{upstream}',
      description: '1 while the upstream passes health checks.',
      attributes: { upstream: { description: 'Upstream name.', values: UPSTREAMS } },
    },
    'frame.size': {
      kind: 'histogram',
      unit: 'By',
      description: 'Frame payload size.',
      attributes: { direction: frameAttributes.direction },
    },
    'frame.queue_wait': {
      kind: 'histogram',
      unit: 's',
      description: 'Time a frame waited in the send queue.',
      attributes: frameAttributes,
    },
  },
});

const INBOUND_DATA_OK = { direction: 'inbound', frame_type: 'data', result: 'ok' } as const;

function hotPathCases(): BenchCase[] {
  const reader = new PullReader();
  const meter = new MeterProvider({ readers: [reader] }).getMeter('switchyard.bench.hot_path');
  const handles = registerCatalog(new MetricsWriter(), catalog);

  const decoded = handles['frames.decoded'].cell();
  const routedInboundDataOk = handles['frames.routed'].cell(INBOUND_DATA_OK);
  const bytesInbound = handles['bytes.forwarded'].cell({ direction: 'inbound', listener: 'public' });
  const routed = handles['frames.routed'];
  const sizeInbound = handles['frame.size'].series({ direction: 'inbound' });
  const waitInboundDataOk = handles['frame.queue_wait'].series(INBOUND_DATA_OK);
  // Many connections each holding their own cell, as a data path does: 64 cells taken in turn.
  const spreadCells = UPSTREAMS.flatMap((upstream) =>
    ERROR_REASONS.map((reason) => handles['upstream.errors'].cell({ reason, upstream })),
  );
  const spreadFields = spreadCells.map(() => ({ x: 0 }));

  const naiveFrames = meter.createCounter('bench.naive.frames', { unit: '{frame}' });
  const naiveSize = meter.createHistogram('bench.naive.frame.size', {
    unit: 'By',
    advice: { explicitBucketBoundaries: [...BYTES_BUCKETS] },
  });
  const naiveWait = meter.createHistogram('bench.naive.frame.queue_wait', {
    unit: 's',
    advice: { explicitBucketBoundaries: [...SECONDS_BUCKETS] },
  });

  const plain = { x: 0 };
  const plainBytes = { x: 0 };

  return [
    {
      name: 'plain field: `x++`',
      run(iterations) {
        for (let i = 0; i < iterations; i++) plain.x++;
        return plain.x;
      },
    },
    {
      name: 'plain field: `x += n`',
      run(iterations) {
        for (let i = 0; i < iterations; i++) plainBytes.x += i & 1023;
        return plainBytes.x;
      },
    },
    {
      name: 'cell.add(1), no attributes',
      run(iterations) {
        for (let i = 0; i < iterations; i++) decoded.add(1);
        return decoded.value;
      },
    },
    {
      name: 'cell.add(1), 3 attributes (cell resolved once)',
      run(iterations) {
        for (let i = 0; i < iterations; i++) routedInboundDataOk.add(1);
        return routedInboundDataOk.value;
      },
    },
    {
      name: 'cell.value += n',
      run(iterations) {
        for (let i = 0; i < iterations; i++) bytesInbound.value += i & 1023;
        return bytesInbound.value;
      },
    },
    {
      name: `plain fields, ${spreadFields.length} taken in turn: \`fields[i].x++\``,
      run(iterations) {
        const count = spreadFields.length;
        for (let i = 0; i < iterations; i++) (spreadFields[i % count] as { x: number }).x++;
        return (spreadFields[0] as { x: number }).x;
      },
    },
    {
      name: `cells, ${spreadCells.length} taken in turn: \`cells[i].add(1)\``,
      run(iterations) {
        const count = spreadCells.length;
        for (let i = 0; i < iterations; i++) (spreadCells[i % count] as { add(): void }).add();
        return (spreadCells[0] as { value: number }).value;
      },
    },
    {
      name: 'family.cell({3 attributes}).add(1) on every call',
      run(iterations) {
        for (let i = 0; i < iterations; i++) {
          routed.cell({ direction: 'inbound', frame_type: 'data', result: 'ok' }).add(1);
        }
        return routedInboundDataOk.value;
      },
    },
    {
      name: 'SDK counter.add(1)',
      run(iterations) {
        for (let i = 0; i < iterations; i++) naiveFrames.add(1);
        return iterations;
      },
    },
    {
      name: 'SDK counter.add(1, {1 attribute})',
      run(iterations) {
        for (let i = 0; i < iterations; i++) naiveFrames.add(1, { direction: 'inbound' });
        return iterations;
      },
    },
    {
      name: 'SDK counter.add(1, {3 attributes})',
      run(iterations) {
        for (let i = 0; i < iterations; i++) {
          naiveFrames.add(1, { direction: 'inbound', frame_type: 'data', result: 'ok' });
        }
        return iterations;
      },
    },
    {
      name: 'histogram series.record(v), 1 attribute (series resolved once)',
      run(iterations) {
        for (let i = 0; i < iterations; i++) sizeInbound.record((i & 1023) * 64);
        return iterations;
      },
    },
    {
      name: 'histogram series.record(v), 3 attributes (series resolved once)',
      run(iterations) {
        for (let i = 0; i < iterations; i++) waitInboundDataOk.record((i & 1023) * 1e-5);
        return iterations;
      },
    },
    {
      name: 'SDK histogram.record(v, {1 attribute})',
      run(iterations) {
        for (let i = 0; i < iterations; i++) naiveSize.record((i & 1023) * 64, { direction: 'inbound' });
        return iterations;
      },
    },
    {
      name: 'SDK histogram.record(v, {3 attributes})',
      run(iterations) {
        for (let i = 0; i < iterations; i++) {
          naiveWait.record((i & 1023) * 1e-5, { direction: 'inbound', frame_type: 'data', result: 'ok' });
        }
        return iterations;
      },
    },
  ];
}

/** Calls `record` for every series of the catalog that the cases record into, with a value. */
function everySeries(record: {
  counter(name: string, attributes: Record<string, string>, value: number): void;
  histogram(name: string, attributes: Record<string, string>, value: number): void;
}): void {
  for (const direction of DIRECTIONS) {
    record.histogram('frame.size', { direction }, 1500);
    for (const frame_type of FRAME_TYPES) {
      for (const result of RESULTS) {
        record.counter('frames.routed', { direction, frame_type, result }, 3);
        record.histogram('frame.queue_wait', { direction, frame_type, result }, 0.002);
      }
    }
  }
  for (const reason of ERROR_REASONS) {
    for (const upstream of UPSTREAMS) record.counter('upstream.errors', { reason, upstream }, 1);
  }
  record.counter('frames.decoded', {}, 24);
}

/**
 * What a scrape costs the data thread: our snapshot of its cells (the telemetry thread does the
 * rest), against an SDK reader.collect() of the same series (which used to run on the data thread,
 * before serialization).
 */
async function collectionCases(): Promise<{ cases: BenchCase[]; series: number }> {
  const writer = new MetricsWriter();
  const handles = registerCatalog(writer, catalog) as unknown as Record<
    string,
    {
      cell(attributes: Record<string, string>): { add(delta: number): void };
      series(attributes: Record<string, string>): { record(value: number): void };
    }
  >;
  everySeries({
    counter: (name, attributes, value) => handles[name]?.cell(attributes).add(value),
    histogram: (name, attributes, value) => handles[name]?.series(attributes).record(value),
  });
  const reader = new PullReader();
  const meter = new MeterProvider({ readers: [reader] }).getMeter('switchyard.bench.collection');
  const counters = new Map<string, ReturnType<typeof meter.createCounter>>();
  const histograms = new Map<string, ReturnType<typeof meter.createHistogram>>();
  everySeries({
    counter: (name, attributes, value) => {
      if (!counters.has(name)) counters.set(name, meter.createCounter(`switchyard.bench.${name}`));
      counters.get(name)?.add(value, attributes);
    },
    histogram: (name, attributes, value) => {
      if (!histograms.has(name)) histograms.set(name, meter.createHistogram(`switchyard.bench.${name}`));
      histograms.get(name)?.record(value, attributes);
    },
  });
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length > 0)
    throw new AggregateError(errors, 'the collection benchmark catalog failed to collect');
  const series = resourceMetrics.scopeMetrics
    .flatMap((scope) => scope.metrics)
    .reduce((total, metric) => total + metric.dataPoints.length, 0);
  const cases: BenchCase[] = [
    {
      name: `ours: writer.snapshot() on the data thread, ${series} series`,
      run(iterations) {
        let sequence = 0;
        for (let i = 0; i < iterations; i++) sequence = writer.snapshot().sequence;
        return sequence;
      },
    },
    {
      name: `SDK: reader.collect() of the same ${series} series`,
      async run(iterations) {
        let points = 0;
        for (let i = 0; i < iterations; i++) {
          const collected = await reader.collect();
          points += collected.resourceMetrics.scopeMetrics.length;
        }
        return points;
      },
    },
  ];
  return { cases, series };
}

function formatNs(ns: number): string {
  if (ns < 10) return ns.toFixed(2);
  if (ns < 1000) return ns.toFixed(1);
  return ns.toFixed(0);
}

function formatRatio(ratio: number): string {
  return ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(0);
}

function sampleMs(result: CaseResult): string {
  return ((result.iterations * result.medianNs) / 1e6).toFixed(0);
}

function hotPathTable(results: readonly CaseResult[]): string {
  const floorNs = (results[0] as CaseResult).medianNs;
  const rows = results.map((result, index) => [
    String(index + 1),
    result.name,
    formatNs(result.medianNs),
    formatNs(result.minNs),
    formatRatio(result.medianNs / floorNs),
    result.iterations.toLocaleString('en-US'),
    sampleMs(result),
  ]);
  return markdownTable(
    ['#', 'pattern', 'median ns/op', 'min ns/op', 'x plain', 'ops/sample', 'ms/sample'],
    rows,
    'rlrrrrr',
  );
}

function collectionTable(results: readonly CaseResult[]): string {
  const rows = results.map((result) => [
    result.name,
    (result.medianNs / 1000).toFixed(1),
    (result.minNs / 1000).toFixed(1),
    result.iterations.toLocaleString('en-US'),
    sampleMs(result),
  ]);
  return markdownTable(
    ['pattern', 'median µs/collect', 'min µs', 'collects/sample', 'ms/sample'],
    rows,
    'lrrrr',
  );
}

async function main(): Promise<void> {
  const started = process.hrtime.bigint();
  const runs = positiveIntegerFromEnv('BENCH_RUNS', 7);
  const hot = hotPathCases();
  const collection = await collectionCases();
  const { results, checksum } = await runCases([...hot, ...collection.cases], { runs });

  const cpus = os.cpus();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    [
      '# Switchyard hot-path recording patterns',
      '',
      `node ${process.version} · ${cpus[0]?.model.trim() ?? 'unknown CPU'} · ${cpus.length} logical CPUs · ${process.platform}/${process.arch}`,
      `cells in SharedArrayBuffer slots; SDK cases on an sdk-metrics MeterProvider with a pull reader · ${runs} samples per case of ~75 ms, taken round-robin after warm-up`,
      '',
      'How to read: the median sample is the figure, min the least disturbed one; "x plain" = median / median of case 1',
      '(a bare field increment), so 1.00 costs nothing beyond the increment itself. Lower is better.',
      '',
      '## Hot path: one recorded event',
      '',
      hotPathTable(results.slice(0, hot.length)),
      '',
      '## Collection: what one scrape costs the data thread',
      '',
      collectionTable(results.slice(hot.length)),
      '',
      `checksum ${checksum} · ${seconds.toFixed(1)} s`,
    ].join('\n'),
  );
}

await main();
