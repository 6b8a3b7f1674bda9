import os from 'node:os';
import { markdownTable, median } from './harness.ts';
import type { LoadSample } from './relay-load.ts';

/**
 * The relay benchmark's report: Markdown tables of medians over rounds, the ratios against derper
 * and metrics on against off, and the targets.
 */

export const TARGET_PACKETS_PER_SECOND = 200_000;
/** Metrics may cost at most this share of throughput (and of CPU per packet). */
export const TARGET_METRICS_COST_PERCENT = 3;

export const OURS = 'ours';
export const OURS_OFF = 'ours-metrics-off';
export const DERPER = 'derper';
export const OURS_MESH = 'ours-mesh';
export const DERPER_MESH = 'derper-mesh';

/** Samples of one case over the rounds: a contender at one client count. */
export interface CaseSamples {
  readonly contender: string;
  readonly clients: number;
  readonly samples: LoadSample[];
}

export interface ReportContext {
  readonly rounds: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly scrapeEveryMs: number;
  readonly sizeBytes: number;
  readonly loadAverage: number;
  readonly derperVersion: string;
  readonly quick: boolean;
}

/** The medians a table row and the summary need. */
interface CaseFigures {
  readonly packetsPerSecond: number;
  readonly cpuPerMillion: number;
}

function pick(samples: readonly LoadSample[], value: (sample: LoadSample) => number): number {
  return median(samples.map(value));
}

function figures(entry: CaseSamples): CaseFigures {
  return {
    packetsPerSecond: pick(entry.samples, (s) => s.packetsPerSecond),
    cpuPerMillion: pick(entry.samples, (s) => (s.serverCpuSeconds / s.received) * 1e6),
  };
}

function grouped(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
}

function ratio(numerator: number, denominator: number): string {
  return denominator > 0 ? `${(numerator / denominator).toFixed(2)}×` : '–';
}

function percentChange(value: number, base: number): number {
  return ((value - base) / base) * 100;
}

function signed(percent: number): string {
  return `${percent >= 0 ? '+' : ''}${percent.toFixed(1)}%`;
}

function find(cases: readonly CaseSamples[], contender: string, clients: number): CaseSamples | undefined {
  return cases.find(
    (entry) => entry.contender === contender && entry.clients === clients && entry.samples.length > 0,
  );
}

function caseRow(entry: CaseSamples, derper: CaseSamples | undefined): string[] {
  const { samples } = entry;
  const own = figures(entry);
  const lost = samples.reduce((sum, s) => sum + s.lost, 0);
  const drops = samples.every((s) => s.relayDrops === undefined)
    ? '–'
    : grouped(samples.reduce((sum, s) => sum + (s.relayDrops ?? 0), 0));
  const sent = samples.reduce((sum, s) => sum + s.sent, 0);
  const relayCpu = pick(samples, (s) => (s.serverCpuSeconds / s.durationSeconds) * 100);
  const loadCpu = pick(samples, (s) => (s.cpuSeconds / s.durationSeconds) * 100);
  return [
    `${entry.clients}`,
    entry.contender,
    grouped(own.packetsPerSecond),
    samples.map((s) => `${Math.round(s.packetsPerSecond / 1000)}k`).join(' '),
    (pick(samples, (s) => s.p50Us) / 1000).toFixed(2),
    (pick(samples, (s) => s.p99Us) / 1000).toFixed(2),
    `${grouped(lost)} of ${grouped(sent)}`,
    drops,
    own.cpuPerMillion.toFixed(2),
    `${relayCpu.toFixed(0)} / ${loadCpu.toFixed(0)}`,
    derper === undefined || derper === entry
      ? '–'
      : ratio(own.packetsPerSecond, figures(derper).packetsPerSecond),
  ];
}

const HEADER = [
  'clients',
  'server',
  'packets/s',
  'per round',
  'p50 ms',
  'p99 ms',
  'lost (all rounds)',
  'relay drops',
  'relay CPU s/1M pkt',
  'CPU % relay / load',
  'vs derper',
];
const ALIGN = 'rlrlrrrrrrr';

function table(cases: readonly CaseSamples[], contenders: readonly string[], derperName: string): string {
  const clientCounts = [...new Set(cases.map((entry) => entry.clients))].sort((a, b) => a - b);
  const rows: string[][] = [];
  for (const clients of clientCounts) {
    const derper = find(cases, derperName, clients);
    for (const contender of contenders) {
      const entry = find(cases, contender, clients);
      if (entry !== undefined) rows.push(caseRow(entry, derper));
    }
  }
  return markdownTable(HEADER, rows, ALIGN);
}

function metricsCostLines(cases: readonly CaseSamples[]): string[] {
  const lines: string[] = [];
  for (const on of cases.filter((entry) => entry.contender === OURS && entry.samples.length > 0)) {
    const off = find(cases, OURS_OFF, on.clients);
    if (off === undefined) continue;
    const a = figures(on);
    const b = figures(off);
    const throughputCost = -percentChange(a.packetsPerSecond, b.packetsPerSecond);
    const cpuCost = percentChange(a.cpuPerMillion, b.cpuPerMillion);
    lines.push(
      `- ${on.clients} clients: packets/s on ${grouped(a.packetsPerSecond)} vs off ${grouped(b.packetsPerSecond)} ` +
        `(cost ${signed(throughputCost)}); relay CPU per 1M packets on ${a.cpuPerMillion.toFixed(2)} s vs off ` +
        `${b.cpuPerMillion.toFixed(2)} s (cost ${signed(cpuCost)})`,
    );
  }
  return lines;
}

function targetLines(cases: readonly CaseSamples[]): string[] {
  const lines: string[] = [];
  for (const ours of cases.filter((entry) => entry.contender === OURS && entry.samples.length > 0)) {
    const own = figures(ours);
    const derper = find(cases, DERPER, ours.clients);
    const derperRate = derper === undefined ? undefined : figures(derper).packetsPerSecond;
    const meets = own.packetsPerSecond >= TARGET_PACKETS_PER_SECOND ? 'met' : 'not met';
    const vsDerper =
      derperRate === undefined
        ? ''
        : `; ≥ derper (${grouped(derperRate)}): ${own.packetsPerSecond >= derperRate ? 'met' : 'not met'}`;
    lines.push(
      `- ${ours.clients} clients: ${grouped(own.packetsPerSecond)} packets/s, ≥ ${grouped(TARGET_PACKETS_PER_SECOND)}: ${meets}${vsDerper}`,
    );
  }
  return lines;
}

export function renderReport(cases: readonly CaseSamples[], context: ReportContext): string {
  const cpus = os.cpus();
  const single = cases.filter((entry) => entry.contender !== OURS_MESH && entry.contender !== DERPER_MESH);
  const mesh = cases.filter((entry) => entry.contender === OURS_MESH || entry.contender === DERPER_MESH);
  const scrapes = cases.flatMap((entry) => entry.samples).reduce((sum, s) => sum + s.scrapes, 0);
  const scrapeFailures = cases
    .flatMap((entry) => entry.samples)
    .reduce((sum, s) => sum + s.scrapeFailures, 0);
  return [
    `## Relay (${new Date().toISOString().slice(0, 10)})${context.quick ? ' — BENCH_QUICK smoke run, not for quoting' : ''}`,
    '',
    `node ${process.version} · ${context.derperVersion} · ${os.type()} ${os.release()} ${os.arch()} · ${cpus.length} CPUs ` +
      `(${cpus[0]?.model ?? 'unknown'}) · load average ${context.loadAverage.toFixed(2)} at start`,
    `The load generator (test/tools/derpload: Tailscale's derphttp clients, Upgrade: DERP, one Go process) shares ` +
      `the cores with the relay under test, the idle servers of the other cases and this orchestrator. ` +
      `${context.rounds} rounds, cases round-robin with the starting case rotated; each run connects the clients, ` +
      `sends for ${context.warmupMs} ms of warm-up, then measures ${context.durationMs} ms. Packets of ` +
      `${context.sizeBytes} bytes go around a ring (client i sends to client i+1), every sender keeping at most ` +
      `min(32, 4096 / clients) packets in flight; figures are medians over rounds. Ours with metrics on is ` +
      `scraped every ${context.scrapeEveryMs} ms (${scrapes} scrapes, ${scrapeFailures} failed); metrics off is ` +
      `OTEL_SDK_DISABLED=true.`,
    '',
    'How to read: packets/s counts packets received that were sent in the measured window; latency runs from ' +
      'send to receipt (same process clock), at saturation, so it mostly shows queueing; lost is sent minus received ' +
      'after a 2 s drain; relay drops is packets_dropped_total over all reasons from /metrics (ours, metrics on); ' +
      'relay CPU s/1M pkt is the relay process(es) user+system CPU over the window per million packets received, ' +
      'lower is better; CPU % is per one core.',
    '',
    `### One relay, plain HTTP, ${context.sizeBytes}-byte packets`,
    '',
    table(single, [OURS, OURS_OFF, DERPER], DERPER),
    '',
    '### Across two meshed relays (TLS, as derper meshes only over https; even clients on one relay, odd on the other)',
    '',
    mesh.length === 0 ? '(not run)' : table(mesh, [OURS_MESH, DERPER_MESH], DERPER_MESH),
    '',
    '### Metrics on vs off (ours, one relay)',
    '',
    ...metricsCostLines(cases),
    '',
    `### Targets: ≥ ${grouped(TARGET_PACKETS_PER_SECOND)} packets/s through one relay, ≥ derper, metrics < ${TARGET_METRICS_COST_PERCENT}%`,
    '',
    ...targetLines(cases),
    '',
  ].join('\n');
}
