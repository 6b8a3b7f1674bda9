import os from 'node:os';
import { markdownTable, median } from './harness.ts';
import type { LoadRunResult } from './log-load.ts';

/**
 * The log-forwarder benchmark's report: what one measurement yields, and the Markdown tables of
 * medians over rounds that log-forwarder.bench.ts prints.
 */

export const TARGET_RECORDS_PER_SECOND = 500_000;
export const TARGET_BATCH_RECORDS = 100;

/** Counters of the forwarder's /metrics, as deltas over one measurement. */
export interface Accounting {
  readonly received: number;
  readonly forwarded: number;
  readonly bufferFull: number;
  readonly forwardFailed: number;
  readonly rejected: number;
  readonly shutdown: number;
  readonly senderReported: number;
  readonly buffered: number;
  readonly inFlight: number;
}

export interface E2eSample {
  readonly load: LoadRunResult;
  readonly delivered: number;
  readonly seconds: number;
  readonly recordsPerSecond: number;
  readonly forwarderCpuSeconds: number;
  readonly sinkCpuSeconds: number;
  readonly accounting: Accounting;
  /** Problems with the accounting; empty when sent, received, forwarded and counted all agree. */
  readonly problems: readonly string[];
}

export interface DownSample {
  readonly load: LoadRunResult;
  readonly sendSeconds: number;
  readonly intakeSeconds: number;
  readonly forwarderCpuSeconds: number;
  readonly accounting: Accounting;
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}

function thousands(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
}

function medianOf<Item>(items: readonly Item[], pick: (item: Item) => number): number {
  return median(items.map(pick));
}

function sumOf<Item>(items: readonly Item[], pick: (item: Item) => number): number {
  return items.reduce((total, item) => total + pick(item), 0);
}

function maxOf<Item>(items: readonly Item[], pick: (item: Item) => number): number {
  return Math.max(...items.map(pick));
}

/** `send()` calls of 1 ms or more over all rounds, of all calls. */
function slowSends(samples: readonly { readonly load: LoadRunResult }[]): string {
  return `${thousands(sumOf(samples, (s) => s.load.slowSends))} of ${thousands(sumOf(samples, (s) => s.load.sends))}`;
}

/** Records `send()` refused, in a measurement. */
function senderDrops(measured: { readonly load: LoadRunResult }): number {
  return measured.load.refusedRecords;
}

function endToEndTable(results: ReadonlyMap<number, readonly E2eSample[]>): string {
  const rows = [...results].map(([batch, samples]) => {
    const cpuPercent = (seconds: (s: E2eSample) => number) =>
      fixed(
        medianOf(samples, (s) => (seconds(s) / s.seconds) * 100),
        0,
      );
    return [
      `${batch}`,
      thousands(medianOf(samples, (s) => s.recordsPerSecond)),
      samples.map((s) => `${Math.round(s.recordsPerSecond / 1000)}k`).join(' '),
      fixed(
        medianOf(samples, (s) => (s.forwarderCpuSeconds / s.delivered) * 1e6),
        2,
      ),
      `${cpuPercent((s) => s.forwarderCpuSeconds)} / ${cpuPercent((s) => s.sinkCpuSeconds)} / ${cpuPercent((s) => s.load.cpuMs / 1000)}`,
      fixed(
        maxOf(samples, (s) => s.load.maxSendUs),
        0,
      ),
      slowSends(samples),
      fixed(
        medianOf(samples, (s) => s.load.maxFullWaitMs),
        1,
      ),
      thousands(sumOf(samples, senderDrops)),
      thousands(sumOf(samples, (s) => s.load.sentRecords - s.delivered)),
      samples.every((s) => s.problems.length === 0) ? 'ok' : 'MISMATCH (below)',
    ];
  });
  const header = ['batch', 'records/s', 'per round', 'fwd CPU s/1M rec', 'CPU % fwd / sink / load'];
  const more = ['max send() µs', 'send() ≥ 1 ms', 'full-queue wait ms', 'sender drops', 'shortfall'];
  return markdownTable([...header, ...more, '/metrics check'], rows, 'rrlrrrrrrrl');
}

function collectorDownTable(results: ReadonlyMap<number, readonly DownSample[]>): string {
  const rows = [...results].map(([batch, samples]) => [
    `${batch}`,
    thousands(medianOf(samples, (s) => s.accounting.received / s.intakeSeconds)),
    samples.map((s) => `${Math.round(s.accounting.received / s.intakeSeconds / 1000)}k`).join(' '),
    fixed(
      medianOf(samples, (s) => (s.accounting.bufferFull / s.accounting.received) * 100),
      1,
    ),
    thousands(medianOf(samples, (s) => s.load.sentRecords / s.sendSeconds)),
    fixed(
      maxOf(samples, (s) => s.load.maxSendUs),
      0,
    ),
    slowSends(samples),
    fixed(
      maxOf(samples, (s) => s.load.maxFullWaitMs),
      1,
    ),
    thousands(sumOf(samples, senderDrops)),
    fixed(
      medianOf(samples, (s) => (s.forwarderCpuSeconds / s.accounting.received) * 1e6),
      2,
    ),
  ]);
  const header = ['batch', 'intake records/s', 'per round', 'buffer_full %', 'sender records/s'];
  const more = [
    'max send() µs',
    'send() ≥ 1 ms',
    'max full-queue wait ms',
    'sender drops',
    'fwd CPU s/1M rec',
  ];
  return markdownTable([...header, ...more], rows, 'rrlrrrrrrr');
}

function accountingTable(
  e2e: ReadonlyMap<number, readonly E2eSample[]>,
  down: ReadonlyMap<number, readonly DownSample[]>,
): string {
  const row = (
    name: string,
    samples: readonly { load: LoadRunResult; accounting: Accounting }[],
    delivered: string,
  ) => [
    name,
    thousands(sumOf(samples, (s) => s.load.sentRecords)),
    thousands(sumOf(samples, (s) => s.accounting.received)),
    thousands(sumOf(samples, (s) => s.accounting.forwarded)),
    delivered,
    thousands(sumOf(samples, (s) => s.accounting.bufferFull)),
    thousands(sumOf(samples, (s) => s.accounting.forwardFailed)),
    thousands(sumOf(samples, (s) => s.accounting.rejected)),
    thousands(sumOf(samples, (s) => s.accounting.senderReported)),
  ];
  const rows = [
    ...[...e2e].map(([batch, samples]) =>
      row(`end to end, batch ${batch}`, samples, thousands(sumOf(samples, (s) => s.delivered))),
    ),
    ...[...down].map(([batch, samples]) => row(`collector down, batch ${batch}`, samples, '–')),
  ];
  const header = ['case (all rounds)', 'sent', 'received', 'forwarded', 'counted by sink', 'buffer_full'];
  return markdownTable([...header, 'forward_failed', 'rejected', 'sender-reported'], rows, 'lrrrrrrrr');
}

/** What the report says about the run, the machine and the forwarder's configuration. */
export interface ReportContext {
  readonly rounds: number;
  readonly sendMs: number;
  readonly quick: boolean;
  readonly loadAverage: number;
  readonly bufferBatches: number;
  readonly bufferBytes: number;
}

/** The Markdown report: title, setting, how to read, and the three tables. */
export function renderReport(
  e2e: ReadonlyMap<number, readonly E2eSample[]>,
  down: ReadonlyMap<number, readonly DownSample[]>,
  context: ReportContext,
): string {
  const quick = context.quick ? ' (BENCH_QUICK=1: smoke run, figures are rough)' : '';
  const target = medianOf(e2e.get(TARGET_BATCH_RECORDS) ?? [], (s) => s.recordsPerSecond);
  const downSamples = [...down.values()].flat();
  const maxSendUs = maxOf(downSamples, (s) => s.load.maxSendUs);
  const maxWaitMs = maxOf(downSamples, (s) => s.load.maxFullWaitMs);
  const downDrops = sumOf(downSamples, senderDrops);
  const downSlow = slowSends(downSamples);
  const problems = [...e2e].flatMap(([batch, samples]) =>
    samples.flatMap((s, round) =>
      s.problems.map((problem) => `batch ${batch}, round ${round + 1}: ${problem}`),
    ),
  );
  const lines = [
    `## Log forwarder benchmark${quick}`,
    '',
    `node ${process.version} · ${os.type()} ${os.release()} ${os.arch()} · ${os.availableParallelism()} CPUs ` +
      `(${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}) · load average ${context.loadAverage.toFixed(2)} at start`,
    'Sharing these cores, nothing pinned: the sender process, the forwarder under test, the OTLP sink, a second ' +
      'forwarder (collector down; idle but for its retries when not measured) and this orchestrator (idle while ' +
      `measuring), plus whatever else runs on the machine. ${context.rounds} rounds, cases round-robin with the ` +
      `starting case rotated, each sending for ${context.sendMs} ms; figures are medians over rounds, "per round" ` +
      'lists every round in order. Forwarder and LogSender defaults throughout (metrics on; forwarder buffer ' +
      `${thousands(context.bufferBatches)} batches / ${context.bufferBytes / 1024 / 1024} MiB, one export in flight; ` +
      'sender queue 64 batches, one frame in flight); records carry a 200-byte body, a timestamp and a severity.',
    '',
    '### End to end: LogSender → Unix socket → forwarder → OTLP gRPC sink',
    '',
    'How to read: records/s counts records the sink received, from the first send() to the last export, higher ' +
      "is better; fwd CPU s/1M rec is the forwarder process's user+system CPU seconds per million records delivered, " +
      'lower is better; CPU % is per one core (100 = one core busy); max send() is the slowest single call over ' +
      'all rounds, "send() ≥ 1 ms" counts the slow calls of all; full-queue wait is how long the sender waited, at ' +
      'most in a round, for its full queue to drain into the socket (median over rounds); sender drops are records ' +
      'send() refused; shortfall is records sent but never counted by the sink: the sender outpaces the export, ' +
      'and the intake, which never makes a sender wait, drops the excess as buffer_full (accounting below); the ' +
      '/metrics check compares sent, records_received, records_forwarded and the drops by reason.',
    '',
    endToEndTable(e2e),
    '',
    `Target (issue): ≥ ${thousands(TARGET_RECORDS_PER_SECOND)} records/s end to end with batches of ` +
      `${TARGET_BATCH_RECORDS}: ${target >= TARGET_RECORDS_PER_SECOND ? 'met' : 'NOT met'} (median ${thousands(target)}).`,
    '',
    "### Collector down: the forwarder's endpoint is a closed port",
    '',
    "How to read: intake records/s is the forwarder's records_received over the time from the first send() " +
      'until /metrics showed them all, higher is better; buffer_full % is the share of those dropped at once as ' +
      'the buffer was full (the rest waits out retries and ends as forward_failed); sender records/s is what the ' +
      'sender wrote to the socket while sending; a forwarder that stalled its senders would show long send() ' +
      'calls, long full-queue waits and sender drops (a full queue drains in milliseconds when the forwarder ' +
      'reads; a millisecond send() is this process descheduled or collecting garbage).',
    '',
    collectorDownTable(down),
    '',
    'Target (issue): an intake that never stalls a sender while the collector is down. Over all rounds: sender ' +
      `drops ${thousands(downDrops)}, max send() ${fixed(maxSendUs, 0)} µs (${downSlow} calls took 1 ms or more), ` +
      `max full-queue wait ${fixed(maxWaitMs, 1)} ms.`,
    '',
    "### Accounting: the sender's counts against the forwarder's /metrics (deltas summed over all rounds)",
    '',
    accountingTable(e2e, down),
  ];
  if (problems.length > 0)
    lines.push('', 'Accounting mismatches:', ...problems.map((problem) => `- ${problem}`));
  return `${lines.join('\n')}\n`;
}
