import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { otlpMessageCodecs } from '@switchyard/otlp-proto';
import { FRAME_TAG_BATCH, FRAME_TAG_ENVELOPE, FrameDecoder } from './frame.ts';
import { LogBatchBuilder } from './log-batch.ts';
import { countLogRecords, decodeEnvelope } from './otlp-wire.ts';
import {
  LogSender,
  LogSenderClosedError,
  LogSenderFlushTimeoutError,
  LogSenderOptionError,
  type LogSenderOptions,
} from './sender.ts';

const tempDir = mkdtempSync(join(tmpdir(), 'log-sender-test-'));
after(() => rmSync(tempDir, { recursive: true, force: true }));
let socketCount = 0;
const nextSocketPath = () => join(tempDir, `intake-${socketCount++}.sock`);

/** How long a wait for an event may take before the test fails; events normally come in milliseconds. */
const EVENT_TIMEOUT_MS = 5000;

interface ReceivedBatch {
  readonly tag: number;
  readonly request: Buffer;
  readonly records: number;
}

interface ReceivedStatus {
  readonly channelFull: number;
  readonly batchFull: number;
}

type Received = ({ kind: 'logs' } & ReceivedBatch) | ({ kind: 'status' } & ReceivedStatus);

/** A stand-in for the forwarder's intake: a Unix socket server decoding frames as they arrive. */
class FrameSink {
  readonly path: string;
  readonly received: Received[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #listeners = new Set<() => void>();
  #paused = false;

  private constructor(path: string) {
    this.path = path;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  static async listen(path = nextSocketPath()): Promise<FrameSink> {
    const sink = new FrameSink(path);
    await new Promise<void>((resolve, reject) => {
      sink.#server.once('error', reject);
      sink.#server.listen({ path }, () => resolve());
    });
    return sink;
  }

  get batches(): ReceivedBatch[] {
    return this.received.filter((item) => item.kind === 'logs');
  }

  get statuses(): ReceivedStatus[] {
    return this.received.flatMap((item) =>
      item.kind === 'status' ? [{ channelFull: item.channelFull, batchFull: item.batchFull }] : [],
    );
  }

  get connections(): number {
    return this.#sockets.size;
  }

  /** Stops reading: bytes pile up in the kernel, then the sender's write stalls. */
  pause(): void {
    this.#paused = true;
    for (const socket of this.#sockets) socket.pause();
  }

  resume(): void {
    this.#paused = false;
    for (const socket of this.#sockets) socket.resume();
  }

  /** Resolves as soon as `condition` holds, checked after every frame and connection change. */
  until(condition: () => boolean, what: string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.#summary())}`));
      }, EVENT_TIMEOUT_MS);
      this.#listeners.add(check);
    });
  }

  /** Closes the listener and every connection, and waits until they are all gone. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all([closed, this.until(() => this.#sockets.size === 0, 'connections to close')]);
  }

  #summary(): unknown {
    return this.received.map((item) =>
      item.kind === 'logs' ? `logs(${item.records})` : `status(${item.channelFull},${item.batchFull})`,
    );
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    if (this.#paused) socket.pause();
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      const error = decoder.push(chunk, (frame) => {
        if (frame.tag === FRAME_TAG_BATCH) {
          const request = Buffer.from(frame.payload);
          this.received.push({ kind: 'logs', tag: frame.tag, request, records: countLogRecords(request) });
          return;
        }
        assert.equal(frame.tag, FRAME_TAG_ENVELOPE);
        const content = decodeEnvelope(frame.payload);
        if (content.kind === 'logs') {
          const request = Buffer.from(content.request);
          this.received.push({ kind: 'logs', tag: frame.tag, request, records: content.records });
        } else {
          const { droppedChannelFull: channelFull, droppedBatchFull: batchFull } = content;
          this.received.push({ kind: 'status', channelFull, batchFull });
        }
      });
      assert.equal(error, undefined);
      this.#notify();
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#notify();
    });
    this.#notify();
  }
}

const codec = otlpMessageCodecs().exportLogsServiceRequest;

/** Async resource types of timers and Unix sockets (async_hooks names). */
const TRACKED_RESOURCES = new Set(['Timeout', 'PIPEWRAP', 'PIPECONNECTWRAP']);

/**
 * Two turns of the event loop: a handle closed earlier is released in the close-callbacks phase that
 * ends a turn, and destroy hooks run after that.
 */
async function settleHandles(): Promise<void> {
  await nextMacrotask();
  await nextMacrotask();
}

function bodiesOf(request: Uint8Array): string[] {
  return codec
    .decode(request)
    .resourceLogs.flatMap((resourceLogs) => resourceLogs.scopeLogs)
    .flatMap((scopeLogs) => scopeLogs.logRecords)
    .map((record) => record.body?.stringValue ?? '');
}

/** A batch whose bodies name it: `<label> #0`, `<label> #1`, ... */
function makeBatch(label: string, records: number, bodyBytes = 20): Buffer {
  const builder = new LogBatchBuilder({
    serviceName: 'sender-test',
    maxRecords: records,
    maxBytes: 16 * 1024 * 1024,
  });
  for (let i = 0; i < records; i++) {
    const name = `${label} #${i}`;
    builder.add({ body: name.padEnd(bodyBytes, '.'), severityNumber: 9, severityText: 'INFO' });
  }
  return builder.finish();
}

function labelOf(request: Uint8Array): string {
  return bodiesOf(request)[0]!.split(' #')[0]!;
}

/** A sender closed after the test, whatever its outcome. */
function openSender(t: { after(fn: () => Promise<void>): void }, options: LogSenderOptions): LogSender {
  const sender = new LogSender({ statusIntervalMs: 3_600_000, ...options });
  t.after(() => sender.close());
  return sender;
}

function openSink(t: { after(fn: () => Promise<void>): void }, sink: FrameSink): FrameSink {
  t.after(() => sink.close());
  return sink;
}

describe('LogSender', () => {
  test('delivers batches in order and byte for byte, as tag-2 envelopes', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    const sender = openSender(t, { socketPath: sink.path });
    const sent = Array.from({ length: 30 }, (_, i) =>
      makeBatch(`batch ${i}`, 1 + ((i * 7) % 50), 10 + i * 40),
    );
    for (const batch of sent) assert.equal(sender.send(batch, countLogRecords(batch)), true);
    await sender.flush(EVENT_TIMEOUT_MS);
    await sink.until(() => sink.batches.length === sent.length, 'all batches');
    sink.batches.forEach((received, i) => {
      assert.equal(received.tag, FRAME_TAG_ENVELOPE);
      assert.ok(received.request.equals(sent[i]!), `batch ${i} arrives intact`);
      assert.equal(received.records, countLogRecords(sent[i]!));
    });
    const totalRecords = sent.reduce((sum, batch) => sum + countLogRecords(batch), 0);
    assert.deepEqual(sender.stats, {
      queuedBatches: 0,
      queuedBytes: 0,
      queuedRecords: 0,
      sentBatches: 30,
      sentRecords: totalRecords,
      droppedChannelFull: 0,
      droppedBatchFull: 0,
      connected: true,
      reconnects: 0,
    });
    assert.equal(sink.statuses.length, 0, 'no status without drops');
  });

  test('queues while no forwarder listens, drops past the queue limit, and reports the drops first on connect', async (t) => {
    const path = nextSocketPath();
    const sender = openSender(t, {
      socketPath: path,
      maxQueueBatches: 3,
      reconnectInitialMs: 5,
      reconnectMaxMs: 20,
    });
    const results = [0, 1, 2, 3, 4].map((i) => sender.send(makeBatch(`early ${i}`, 10), 10));
    assert.deepEqual(results, [true, true, true, false, false]);
    assert.equal(sender.stats.droppedChannelFull, 20);
    assert.equal(sender.stats.queuedBatches, 3);
    assert.equal(sender.stats.connected, false);

    const sink = openSink(t, await FrameSink.listen(path));
    await sink.until(() => sink.received.length === 4, 'a status and three batches');
    assert.deepEqual(sink.received[0], { kind: 'status', channelFull: 20, batchFull: 0 });
    assert.deepEqual(
      sink.batches.map((batch) => labelOf(batch.request)),
      ['early 0', 'early 1', 'early 2'],
    );
    await sender.flush(EVENT_TIMEOUT_MS);
    assert.equal(sender.stats.connected, true);
    assert.ok(sender.stats.reconnects >= 1);
    assert.equal(sender.stats.sentRecords, 30);
  });

  test('counts a batch larger than a frame as dropped_batch_full, and each status carries only new drops', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    const sender = openSender(t, { socketPath: sink.path, maxFrameBytes: 2000 });
    await sink.until(() => sink.connections === 1, 'the sender to connect');
    assert.equal(sender.send(makeBatch('huge', 7, 400), 7), false);
    sender.reportStatus();
    await sink.until(() => sink.statuses.length === 1, 'the first status');
    assert.equal(sender.send(makeBatch('huge again', 3, 1000), 3), false);
    sender.reportStatus();
    await sink.until(() => sink.statuses.length === 2, 'the second status');
    sender.reportStatus();
    assert.equal(sender.send(makeBatch('small', 2), 2), true);
    await sink.until(() => sink.batches.length === 1, 'the small batch');
    assert.deepEqual(sink.received, [
      { kind: 'status', channelFull: 0, batchFull: 7 },
      { kind: 'status', channelFull: 0, batchFull: 3 },
      { kind: 'logs', tag: FRAME_TAG_ENVELOPE, request: sink.batches[0]!.request, records: 2 },
    ]);
    assert.equal(sender.stats.droppedBatchFull, 10);
  });

  test('sends the status by itself every statusIntervalMs', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    const sender = openSender(t, { socketPath: sink.path, maxFrameBytes: 100, statusIntervalMs: 10 });
    assert.equal(sender.send(makeBatch('too big', 5, 100), 5), false);
    await sink.until(() => sink.statuses.length === 1, 'a status from the timer');
    assert.deepEqual(sink.statuses, [{ channelFull: 0, batchFull: 5 }]);
  });

  test('a forwarder that stops reading fills the queue; send never waits, drops are exact and reported once it reads again', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    const sender = openSender(t, { socketPath: sink.path, maxQueueBatches: 4 });
    await sink.until(() => sink.connections === 1, 'the sender to connect');
    sink.pause();
    const recordsPerBatch = 64;
    const accepted: string[] = [];
    let droppedRecords = 0;
    let slowestSendMs = 0;
    const timedSend = (label: string): boolean => {
      const batch = makeBatch(label, recordsPerBatch, 1000);
      const start = performance.now();
      const queued = sender.send(batch, recordsPerBatch);
      slowestSendMs = Math.max(slowestSendMs, performance.now() - start);
      if (queued) accepted.push(label);
      else droppedRecords += recordsPerBatch;
      return queued;
    };
    // Let the writes run between sends until the kernel buffers are full and the queue backs up.
    let sends = 0;
    while (timedSend(`fill ${sends++}`)) {
      assert.ok(sends < 1000, 'the queue never filled: is the sink reading?');
      await nextMacrotask();
    }
    for (let i = 0; i < 20; i++) assert.equal(timedSend(`over ${i}`), false);
    assert.equal(sender.stats.queuedBatches, 4);
    assert.equal(sender.stats.droppedChannelFull, droppedRecords);
    assert.ok(slowestSendMs < 50, `send took ${slowestSendMs} ms`);

    sink.resume();
    sender.reportStatus();
    await sink.until(
      () => sink.batches.length === accepted.length && sink.statuses.length > 0,
      'every accepted batch and the status',
    );
    assert.deepEqual(
      sink.batches.map((batch) => labelOf(batch.request)),
      accepted,
    );
    const reported = sink.statuses.reduce((sum, status) => sum + status.channelFull, 0);
    assert.equal(reported, droppedRecords);
    assert.equal(
      sink.statuses.reduce((sum, status) => sum + status.batchFull, 0),
      0,
    );
    assert.equal(
      sender.stats.sentRecords + sender.stats.droppedChannelFull,
      sends * recordsPerBatch + 20 * recordsPerBatch,
    );
  });

  test('reconnects after the forwarder restarts and delivers what was queued meanwhile', async (t) => {
    const first = await FrameSink.listen();
    const sender = openSender(t, { socketPath: first.path, reconnectInitialMs: 5, reconnectMaxMs: 40 });
    for (let i = 0; i < 3; i++) sender.send(makeBatch(`before ${i}`, 4), 4);
    await first.until(() => first.batches.length === 3, 'the first three batches');
    await first.close();
    for (let i = 0; i < 3; i++) assert.equal(sender.send(makeBatch(`during ${i}`, 4), 4), true);
    const second = openSink(t, await FrameSink.listen(first.path));
    for (let i = 0; i < 2; i++) sender.send(makeBatch(`after ${i}`, 4), 4);
    await second.until(() => second.batches.length === 5, 'the batches sent during and after the restart');
    assert.deepEqual(
      first.batches.map((batch) => labelOf(batch.request)),
      ['before 0', 'before 1', 'before 2'],
    );
    assert.deepEqual(
      second.batches.map((batch) => labelOf(batch.request)),
      ['during 0', 'during 1', 'during 2', 'after 0', 'after 1'],
    );
    assert.ok(sender.stats.reconnects >= 1);
    assert.equal(sender.stats.sentBatches, 8);
    assert.equal(sender.stats.droppedChannelFull, 0);
  });

  test('flush resolves once everything is written, and rejects with the unsent counts after timeoutMs', async (t) => {
    const sender = openSender(t, { socketPath: nextSocketPath(), reconnectInitialMs: 5, reconnectMaxMs: 20 });
    await sender.flush(0);
    sender.send(makeBatch('stuck', 6), 6);
    await assert.rejects(sender.flush(30), (error: unknown) => {
      assert.ok(error instanceof LogSenderFlushTimeoutError);
      assert.equal(error.code, 'SWY_ERR_LOG_SENDER_FLUSH_TIMEOUT');
      assert.equal(error.unsentBatches, 1);
      assert.equal(error.unsentRecords, 6);
      return true;
    });
    const flushOutcome = assert.rejects(sender.flush(), LogSenderClosedError);
    await sender.close();
    await flushOutcome;
  });

  test('legacyFrames sends bare tag-1 requests and no status', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    const sender = openSender(t, { socketPath: sink.path, legacyFrames: true, maxQueueBatches: 2 });
    const batches = [0, 1, 2, 3].map((i) => makeBatch(`legacy ${i}`, 3));
    const results = batches.map((batch) => sender.send(batch, 3));
    assert.deepEqual(results, [true, true, false, false]);
    sender.reportStatus();
    await sender.flush(EVENT_TIMEOUT_MS);
    await sender.close();
    await sink.until(() => sink.connections === 0, 'the sender to disconnect');
    assert.deepEqual(
      sink.received.map((item) => (item.kind === 'logs' ? [item.tag, labelOf(item.request)] : item.kind)),
      [
        [FRAME_TAG_BATCH, 'legacy 0'],
        [FRAME_TAG_BATCH, 'legacy 1'],
      ],
    );
    assert.ok(sink.batches[0]!.request.equals(batches[0]!));
  });

  test('close reports the queued batches as dropped in a last status and leaves no socket or timer behind', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    await settleHandles();
    const resourcesBefore = process.getActiveResourcesInfo().sort();
    const live = new Map<number, string>();
    const hook = createHook({
      init: (asyncId, type) => {
        if (TRACKED_RESOURCES.has(type)) live.set(asyncId, type);
      },
      destroy: (asyncId) => live.delete(asyncId),
    }).enable();
    t.after(() => hook.disable());

    const sender = new LogSender({ socketPath: sink.path, statusIntervalMs: 50, maxFrameBytes: 1000 });
    sender.send(makeBatch('first', 1), 1);
    await sender.flush(EVENT_TIMEOUT_MS);
    sink.pause();
    sender.send(makeBatch('too big', 2, 1000), 2);
    for (let i = 0; i < 5; i++) sender.send(makeBatch(`queued ${i}`, 3), 3);
    const flushOutcome = assert.rejects(sender.flush(60_000), LogSenderClosedError);
    const closed = sender.close();
    sink.resume();
    await closed;
    await flushOutcome;
    await sink.until(() => sink.connections === 0, 'the sender to disconnect');

    const sentRecords = sink.batches.reduce((sum, batch) => sum + batch.records, 0);
    const reported = sink.statuses.reduce((sum, status) => sum + status.channelFull, 0);
    assert.equal(sentRecords + reported, 16, 'every queued record is delivered or reported');
    assert.equal(
      sink.statuses.reduce((sum, status) => sum + status.batchFull, 0),
      2,
    );
    assert.deepEqual(sender.stats.queuedBatches, 0);
    assert.equal(sender.send(makeBatch('late', 1), 1), false);

    await settleHandles();
    hook.disable();
    assert.deepEqual([...live.values()], [], 'every timer and socket made since the sender started is gone');
    assert.deepEqual(process.getActiveResourcesInfo().sort(), resourcesBefore);
  });

  test('rejects bad options at construction, naming the option', () => {
    const cases: Array<[Partial<LogSenderOptions>, string]> = [
      [{ socketPath: '' }, 'socketPath'],
      [{ socketPath: `/tmp/${'x'.repeat(120)}` }, 'socketPath'],
      [{ maxQueueBatches: 0 }, 'maxQueueBatches'],
      [{ maxQueueBytes: 1.5 }, 'maxQueueBytes'],
      [{ reconnectInitialMs: 100, reconnectMaxMs: 50 }, 'reconnectMaxMs'],
      [{ statusIntervalMs: 0 }, 'statusIntervalMs'],
      [{ maxFrameBytes: 2 ** 24 }, 'maxFrameBytes'],
    ];
    for (const [options, option] of cases) {
      assert.throws(
        () => new LogSender({ socketPath: nextSocketPath(), ...options }),
        (error: unknown) => error instanceof LogSenderOptionError && error.option === option,
        option,
      );
    }
  });

  test('throughput into a reading forwarder (reported, not asserted)', async (t) => {
    const sink = openSink(t, await FrameSink.listen());
    const sender = openSender(t, { socketPath: sink.path });
    const records = 100;
    const batch = makeBatch('throughput', records, 200);
    const budgetMs = 400;
    let batches = 0;
    const start = performance.now();
    while (performance.now() - start < budgetMs) {
      for (let i = 0; i < 64; i++) assert.equal(sender.send(batch, records), true);
      batches += 64;
      await sender.flush(EVENT_TIMEOUT_MS);
    }
    await sink.until(() => sink.batches.length === batches, 'every batch');
    const seconds = (performance.now() - start) / 1000;
    t.diagnostic(
      `LogSender: ${(batches / seconds).toFixed(0)} batches/s, ${((batches * records) / seconds / 1e6).toFixed(2)} M records/s, ${((batches * batch.length) / seconds / 1e6).toFixed(0)} MB/s (${batch.length}-byte batches of ${records} records, the sink decoding every frame)`,
    );
    assert.equal(sender.stats.sentBatches, batches);
  });
});
