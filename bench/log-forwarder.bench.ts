import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuSecondsOf, runBench } from './child-process.ts';
import { positiveIntegerFromEnv } from './harness.ts';
import {
  type MetricSamples,
  type RunningForwarder,
  sample,
  startForwarder,
} from './log-forwarder-process.ts';
import {
  type Accounting,
  type DownSample,
  type E2eSample,
  type ReportContext,
  renderReport,
} from './log-forwarder-report.ts';
import { type LoadRunResult, type RunningLoad, spawnLoad } from './log-load.ts';
import { type RunningSink, type SinkWaitResult, spawnSink } from './otlp-sink.ts';
import { freePort } from './proxies.ts';

/**
 * Log forwarder benchmark, three processes under load: the sender (bench/log-load.ts: LogSender
 * and pre-built LogBatchBuilder batches), the forwarder (packages/log-forwarder/src/main.ts with
 * metrics on) and an OTLP gRPC sink that only counts records (bench/otlp-sink.ts).
 *
 * - End to end: records per second from the first `send()` to the last export the sink counted,
 *   for batches of 1, 10 and 100 records, checked against the forwarder's /metrics accounting.
 * - Collector down: a second forwarder whose endpoint is a closed port; how fast it still takes
 *   records in (and drops them, buffer_full), and whether its sender ever waits or drops.
 * - The forwarder's CPU time per million records, from /proc/<pid>/stat.
 *
 * Rounds are interleaved (every case once per round, the starting case rotated) so that drift on
 * this noisy machine lands on every case alike; tables show medians over rounds.
 *
 * Run: `node log-forwarder.bench.ts` from bench/. BENCH_QUICK=1 for a smoke run; BENCH_LOG_ROUNDS
 * sets the rounds (default 5; 2 when quick); BENCH_LOG_PROFILE_DIR=<dir> runs the forwarder under
 * test with `--cpu-prof`, writing its profile there when the bench stops it.
 */

const E2E_BATCH_SIZES = [1, 10, 100] as const;
const DOWN_BATCH_SIZES = [1, 100] as const;
/** After this long without an export, the forwarder's /metrics tell whether anything is still to come. */
const QUIET_MS = 300;
const DELIVERY_DEADLINE_MS = 30_000;
const SETTLE_TIMEOUT_MS = 10_000;
const SETTLE_POLL_MS = 10;

interface Settings {
  readonly rounds: number;
  /** Where the forwarder under test writes a CPU profile; undefined: not profiled. */
  readonly profileDir: string | undefined;
  /** How long the sender sends in one measurement, in ms. */
  readonly sendMs: number;
  readonly quick: boolean;
}

interface Case {
  readonly name: string;
  measure(sendMs: number): Promise<void>;
}

function readSettings(): Settings {
  const quick = process.env.BENCH_QUICK === '1';
  const profileDir = process.env.BENCH_LOG_PROFILE_DIR || undefined;
  return {
    rounds: positiveIntegerFromEnv('BENCH_LOG_ROUNDS', quick ? 2 : 5),
    profileDir: profileDir === undefined ? undefined : path.resolve(profileDir),
    sendMs: quick ? 400 : 1_500,
    quick,
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function secondsBetween(startNs: string, endNs: string): number {
  return Number(BigInt(endNs) - BigInt(startNs)) / 1e9;
}

function accountingBetween(before: MetricSamples, after: MetricSamples): Accounting {
  const delta = (key: string) => sample(after, key) - sample(before, key);
  const dropped = (reason: string) => delta(`records_dropped_total{reason="${reason}"}`);
  return {
    received: delta('records_received_total'),
    forwarded: delta('records_forwarded_total'),
    bufferFull: dropped('buffer_full'),
    forwardFailed: dropped('forward_failed'),
    rejected: dropped('rejected'),
    shutdown: dropped('shutdown'),
    senderReported: dropped('sender_channel_full') + dropped('sender_batch_full'),
    buffered: sample(after, 'buffer_records'),
    inFlight: sample(after, 'in_flight_records'),
  };
}

/** Scrapes until the forwarder has counted `records` received and, with `drained`, holds none. */
async function scrapeWhen(
  forwarder: RunningForwarder,
  before: MetricSamples,
  records: number,
  drained: boolean,
): Promise<{ samples: MetricSamples; atNs: bigint }> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const samples = await forwarder.scrape();
    const atNs = process.hrtime.bigint();
    const accounting = accountingBetween(before, samples);
    const settled =
      accounting.received >= records && (!drained || accounting.buffered + accounting.inFlight === 0);
    if (settled || performance.now() > deadline) return { samples, atNs };
    await delay(SETTLE_POLL_MS);
  }
}

function checkAccounting(load: LoadRunResult, delivered: number, accounting: Accounting): string[] {
  const problems: string[] = [];
  const senderDrops = load.droppedChannelFull + load.droppedBatchFull;
  if (accounting.received !== load.sentRecords) {
    problems.push(`records_received ${accounting.received} != ${load.sentRecords} sent`);
  }
  if (accounting.forwarded !== delivered) {
    problems.push(`records_forwarded ${accounting.forwarded} != ${delivered} counted by the sink`);
  }
  const droppedAfterReceipt =
    accounting.bufferFull + accounting.forwardFailed + accounting.rejected + accounting.shutdown;
  const held = accounting.buffered + accounting.inFlight;
  if (accounting.received !== accounting.forwarded + droppedAfterReceipt + held) {
    problems.push(
      `records_received ${accounting.received} != forwarded ${accounting.forwarded} + dropped ${droppedAfterReceipt} + held ${held}`,
    );
  }
  if (held > 0)
    problems.push(
      `${held} records still buffered or in flight ${SETTLE_TIMEOUT_MS} ms after the sink went quiet`,
    );
  if (accounting.senderReported !== senderDrops) {
    problems.push(`sender-reported drops ${accounting.senderReported} != the sender's ${senderDrops}`);
  }
  return problems;
}

/** Whether the forwarder has not yet received `sent` records or still buffers some or has some in flight. */
async function holdsRecords(
  forwarder: RunningForwarder,
  before: MetricSamples,
  sent: number,
): Promise<boolean> {
  const accounting = accountingBetween(before, await forwarder.scrape());
  return accounting.received < sent || accounting.buffered + accounting.inFlight > 0;
}

/**
 * Waits until the sink has counted `records` in all or, when the forwarder dropped some, until
 * exports stopped and the forwarder holds nothing more; or until the deadline.
 */
async function waitForDelivery(
  sink: RunningSink,
  records: number,
  forwarderBusy: () => Promise<boolean>,
): Promise<SinkWaitResult> {
  const deadline = performance.now() + DELIVERY_DEADLINE_MS;
  for (;;) {
    const remainingMs = Math.max(0, deadline - performance.now());
    const reached = await sink.waitFor(records, QUIET_MS, remainingMs);
    if (reached.outcome !== 'quiet' || !(await forwarderBusy())) return reached;
  }
}

async function measureEndToEnd(
  batchRecords: number,
  sendMs: number,
  deps: { load: RunningLoad; forwarder: RunningForwarder; sink: RunningSink },
): Promise<E2eSample> {
  const { load, forwarder, sink } = deps;
  const before = await forwarder.scrape();
  const sinkBefore = await sink.counts();
  const cpuBefore = { forwarder: forwarder.cpuSeconds(), sink: cpuSecondsOf('OTLP sink', sink.pid) };
  const result = await load.run({ socketPath: forwarder.socketPath, batchRecords, durationMs: sendMs });
  const reached = await waitForDelivery(sink, sinkBefore.records + result.sentRecords, () =>
    holdsRecords(forwarder, before, result.sentRecords),
  );
  const forwarderCpuSeconds = forwarder.cpuSeconds() - cpuBefore.forwarder;
  const sinkCpuSeconds = cpuSecondsOf('OTLP sink', sink.pid) - cpuBefore.sink;
  const { samples } = await scrapeWhen(forwarder, before, result.sentRecords, true);
  const accounting = accountingBetween(before, samples);
  const delivered = reached.records - sinkBefore.records;
  const seconds = delivered === 0 ? Number.NaN : secondsBetween(result.startNs, reached.lastExportNs);
  return {
    load: result,
    delivered,
    seconds,
    recordsPerSecond: delivered === 0 ? 0 : delivered / seconds,
    forwarderCpuSeconds,
    sinkCpuSeconds,
    accounting,
    problems: checkAccounting(result, delivered, accounting),
  };
}

async function measureCollectorDown(
  batchRecords: number,
  sendMs: number,
  deps: { load: RunningLoad; forwarder: RunningForwarder },
): Promise<DownSample> {
  const { load, forwarder } = deps;
  const before = await forwarder.scrape();
  const cpuBefore = forwarder.cpuSeconds();
  const result = await load.run({ socketPath: forwarder.socketPath, batchRecords, durationMs: sendMs });
  const { samples, atNs } = await scrapeWhen(forwarder, before, result.sentRecords, false);
  return {
    load: result,
    sendSeconds: secondsBetween(result.startNs, result.sendEndNs),
    intakeSeconds: secondsBetween(result.startNs, `${atNs}`),
    forwarderCpuSeconds: forwarder.cpuSeconds() - cpuBefore,
    accounting: accountingBetween(before, samples),
  };
}

async function runRounds(settings: Settings, cases: readonly Case[]): Promise<void> {
  for (let round = 0; round < settings.rounds; round++) {
    for (let offset = 0; offset < cases.length; offset++) {
      await (cases[(round + offset) % cases.length] as Case).measure(settings.sendMs);
    }
    process.stderr.write(`log forwarder bench: round ${round + 1}/${settings.rounds} done\n`);
  }
}

/** What to stop or remove on the way out, including after Ctrl-C: child processes, the work dir. */
const teardown: { stop(): Promise<void> }[] = [];

async function stopAll(): Promise<void> {
  await Promise.all(teardown.splice(0).map((item) => item.stop()));
}

async function main(): Promise<void> {
  const settings = readSettings();
  const loadAverage = os.loadavg()[0] as number;
  // Short: a Unix socket path is at most 107 bytes.
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'swy-lf-bench-'));
  teardown.push({ stop: async () => rmSync(workDir, { recursive: true, force: true }) });
  const sink = await spawnSink();
  teardown.push(sink);
  const up = await startForwarder({
    name: 'forwarder',
    workDir,
    collectorEndpoint: `http://127.0.0.1:${sink.port}`,
    ...(settings.profileDir !== undefined && {
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`],
    }),
  });
  teardown.push(up);
  const downForwarder = await startForwarder({
    name: 'forwarder-down',
    workDir,
    collectorEndpoint: `http://127.0.0.1:${await freePort()}`,
  });
  teardown.push(downForwarder);
  const initial = await up.scrape();
  const context: ReportContext = {
    rounds: settings.rounds,
    sendMs: settings.sendMs,
    quick: settings.quick,
    loadAverage,
    bufferBatches: sample(initial, 'buffer_capacity_batches'),
    bufferBytes: sample(initial, 'buffer_capacity_bytes'),
  };
  const load = spawnLoad();
  teardown.push(load);

  const e2e = new Map<number, E2eSample[]>(E2E_BATCH_SIZES.map((batch) => [batch, []]));
  const down = new Map<number, DownSample[]>(DOWN_BATCH_SIZES.map((batch) => [batch, []]));
  let warm = false;
  const cases: Case[] = [
    ...E2E_BATCH_SIZES.map((batch) => ({
      name: `end to end, batch ${batch}`,
      measure: async (sendMs: number) => {
        const measured = await measureEndToEnd(batch, sendMs, { load, forwarder: up, sink });
        if (warm) e2e.get(batch)?.push(measured);
      },
    })),
    ...DOWN_BATCH_SIZES.map((batch) => ({
      name: `collector down, batch ${batch}`,
      measure: async (sendMs: number) => {
        const measured = await measureCollectorDown(batch, sendMs, { load, forwarder: downForwarder });
        if (warm) down.get(batch)?.push(measured);
      },
    })),
  ];
  const startedAt = performance.now();
  const warmThenRun = async (): Promise<void> => {
    for (const benchCase of cases) await benchCase.measure(Math.ceil(settings.sendMs / 3));
    warm = true;
    process.stderr.write('log forwarder bench: warm-up done\n');
    await runRounds(settings, cases);
  };
  try {
    await warmThenRun();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${reason}\n  forwarder output:\n${up.outputTail()}\n  collector-down forwarder output:\n${downForwarder.outputTail()}`,
    );
  }
  await stopAll();
  process.stdout.write(renderReport(e2e, down, context));
  process.stderr.write(
    `log forwarder bench: measured in ${((performance.now() - startedAt) / 1000).toFixed(0)} s\n`,
  );
  if ([...e2e.values()].flat().some((s) => s.problems.length > 0)) process.exitCode = 1;
}

runBench('log forwarder bench', main, stopAll);
