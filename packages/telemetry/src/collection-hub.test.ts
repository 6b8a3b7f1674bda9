import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { defineCatalog } from './catalog.ts';
import { CollectionHub, CollectTimeoutError } from './collection-hub.ts';
import { MetricsWriter, type WriterMessage } from './metrics-writer.ts';
import { registerCatalog } from './recorder.ts';
import { histogramOffsets } from './series-layout.ts';
import { SeriesRegistry } from './series-registry.ts';
import { SLOTS_PER_CHUNK } from './slot-store.ts';

const catalog = defineCatalog({
  namespace: 'switchyard.sample',
  instruments: {
    requests: { kind: 'counter', unit: '{request}', description: 'Requests.' },
    responses: { kind: 'counter', unit: '{response}', description: 'Responses.' },
    wait: { kind: 'histogram', unit: 's', description: 'Wait.', buckets: [0.1, 1] },
  },
});

/**
 * Runs `body` in a worker thread with a MetricsWriter serving `port` and the catalog above
 * registered as `metrics`. The writer's port does not keep a thread alive (a data thread has its
 * servers for that); here a timer does, until the test terminates the thread.
 */
function writerThread(port: MessagePort, body: string): Worker {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { MetricsWriter } = await import(workerData.writer);
      const { registerCatalog } = await import(workerData.recorder);
      const { defineCatalog } = await import(workerData.catalog);
      const writer = new MetricsWriter();
      const metrics = registerCatalog(writer, defineCatalog(workerData.declaration));
      writer.serve(workerData.port);
      setInterval(() => {}, 60_000);
      ${body}
    })();
  `;
  return new Worker(source, {
    eval: true,
    workerData: {
      writer: new URL('./metrics-writer.ts', import.meta.url).href,
      recorder: new URL('./recorder.ts', import.meta.url).href,
      catalog: new URL('./catalog.ts', import.meta.url).href,
      declaration: catalog.declaration,
      port,
    },
    transferList: [port],
  });
}

function hubWithLocalWriter(timeoutMs = 5_000) {
  const local = new MetricsWriter();
  const metrics = registerCatalog(local, catalog);
  const hub = new CollectionHub(new SeriesRegistry(catalog.instruments), local, timeoutMs);
  const value = (values: Float64Array, instrument: string) => {
    const series = hub.registry.instruments.find((one) => one.instrument.key === instrument)?.series[0];
    assert.ok(series !== undefined, `no series of ${instrument}`);
    return { at: series.offset, value: values[series.offset] as number };
  };
  return { hub, metrics, value };
}

test('a collection sums the slots of one series across two writer threads exactly', async () => {
  const { hub, metrics, value } = hubWithLocalWriter();
  const channel = new MessageChannel();
  hub.addWriter(channel.port1);
  const worker = writerThread(
    channel.port2,
    `
      const requests = metrics.requests.cell();
      const wait = metrics.wait.series();
      for (let i = 0; i < 100000; i++) requests.add(1);
      wait.record(0.05); wait.record(7);
      parentPort.postMessage('done');
    `,
  );
  try {
    const requests = metrics.requests.cell();
    for (let i = 0; i < 25_000; i++) requests.add(3);
    metrics.wait.series().record(0.5);
    await once(worker, 'message');
    const { values } = await hub.collect();
    assert.equal(value(values, 'requests').value, 100_000 + 75_000);
    const wait = value(values, 'wait');
    const offsets = histogramOffsets([0.1, 1]);
    assert.deepEqual([...values.subarray(wait.at, wait.at + 3)], [1, 1, 1], 'one per bucket');
    assert.equal(values[wait.at + offsets.count], 3);
    assert.equal(values[wait.at + offsets.sum], 7.55);
    assert.equal(values[wait.at + offsets.min], 0.05);
    assert.equal(values[wait.at + offsets.max], 7);
  } finally {
    await worker.terminate();
    hub.close();
  }
});

// Each event of the writer thread adds one request, spins, then adds one response: between two
// events the counts are equal, in the middle of one they differ.
const HALF_EVENTS = `
  const requests = metrics.requests.cell();
  const responses = metrics.responses.cell();
  parentPort.postMessage({ live: writer.store.chunks[0].buffer });
  const event = () => {
    requests.add(1);
    const until = performance.now() + 0.05;
    while (performance.now() < until);
    responses.add(1);
    setImmediate(event);
  };
  event();
`;

test('no collection sees half an event of a writer thread that records without pause', async () => {
  const { hub, value } = hubWithLocalWriter();
  const channel = new MessageChannel();
  hub.addWriter(channel.port1);
  const worker = writerThread(channel.port2, HALF_EVENTS);
  try {
    const [{ live }] = (await once(worker, 'message')) as [{ live: SharedArrayBuffer }];
    let liveTorn = 0;
    let counted = 0;
    for (let round = 0; round < 200; round++) {
      const { values } = await hub.collect();
      const requests = value(values, 'requests');
      const responses = value(values, 'responses');
      assert.equal(requests.value, responses.value, `collection ${round} saw half an event`);
      assert.ok(requests.value >= counted, 'counts only grow');
      counted = requests.value;
      // The control: the same slots read live, as a reader without snapshots would, do tear.
      const slots = new Float64Array(live, 0, SLOTS_PER_CHUNK);
      if (slots[0] !== slots[1]) liveTorn += 1;
    }
    assert.ok(counted > 0, 'the collections saw the writer thread record');
    assert.ok(liveTorn > 0, 'reading live slots never caught an event half done: the test could not fail');
  } finally {
    await worker.terminate();
    hub.close();
  }
});

test('a writer that does not answer in time fails the collection, and its late report still counts', async () => {
  const { hub, value } = hubWithLocalWriter(100);
  const channel = new MessageChannel();
  hub.addWriter(channel.port1);
  const silent = new MetricsWriter();
  registerCatalog(silent, catalog).requests.cell().add(42);
  const requests: number[] = [];
  channel.port2.on('message', (request: { id: number }) => requests.push(request.id));
  channel.port2.postMessage({ type: 'hello', published: silent.published.buffer } satisfies WriterMessage);
  const batch = silent.takeSeries();
  assert.ok(batch !== undefined);
  channel.port2.postMessage({ type: 'series', batch } satisfies WriterMessage);
  try {
    await assert.rejects(hub.collect(), CollectTimeoutError);
    assert.equal(requests.length, 1);
    const next = hub.collect();
    channel.port2.postMessage({
      type: 'snapshot',
      id: requests[0] as number,
      report: silent.snapshot(),
    } satisfies WriterMessage);
    const { values } = await next;
    assert.equal(requests.length, 1, 'a writer is not asked again before it has answered');
    assert.equal(value(values, 'requests').value, 42);
  } finally {
    channel.port2.close();
    hub.close();
  }
});
