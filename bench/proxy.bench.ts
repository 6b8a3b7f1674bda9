import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type RunningBackend, spawnBackend } from './backend.ts';
import { cpuSecondsOf, runBench } from './child-process.ts';
import { markdownTable, median, positiveIntegerFromEnv } from './harness.ts';
import { type BulkResult, type ShortResult, spawnBulk, spawnShort } from './load.ts';
import { CONTENDERS, type Contender, haproxyVersion, type RunningContender } from './proxies.ts';

/**
 * Layer-4 TCP proxy benchmark: our proxy against no proxy at all (`direct`), HAProxy, a bare
 * Node `pipe()` proxy and our data path alone (`data-path-only`), in one run. Backend, load generator and each proxy are separate processes.
 * Rounds are interleaved (every contender once per round, starting contender rotated) so that drift
 * on this noisy machine lands on all contenders alike; the tables show medians over rounds.
 *
 * Run: `node proxy.bench.ts` from bench/. BENCH_QUICK=1 for a smoke run, BENCH_PROXY_ROUNDS sets the
 * rounds (default 5; 2 when quick), BENCH_PROXY_CONTENDERS=direct,haproxy picks contenders.
 */

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

interface Settings {
  readonly rounds: number;
  readonly bulkBytes: number;
  readonly bulkConnections: number;
  readonly shortDurationMs: number;
  readonly shortConcurrency: number;
  readonly requestBytes: number;
}

interface Sample<Result> {
  readonly result: Result;
  /** CPU seconds used while the load ran, by the proxy (undefined for `direct`) and the backend. */
  readonly proxyCpuSeconds: number | undefined;
  readonly backendCpuSeconds: number;
}

interface ContenderSamples {
  readonly running: RunningContender;
  readonly bulk: Sample<BulkResult>[];
  readonly short: Sample<ShortResult>[];
}

function readSettings(): Settings {
  const quick = process.env.BENCH_QUICK === '1';
  return {
    rounds: positiveIntegerFromEnv('BENCH_PROXY_ROUNDS', quick ? 2 : 5),
    bulkBytes: (quick ? 64 : 512) * MIB,
    bulkConnections: 4,
    shortDurationMs: quick ? 500 : 2500,
    shortConcurrency: 50,
    requestBytes: 64,
  };
}

function selectContenders(): Contender[] {
  const raw = process.env.BENCH_PROXY_CONTENDERS;
  if (raw === undefined || raw === '') return [...CONTENDERS];
  const names = raw.split(',').map((name) => name.trim());
  const known = CONTENDERS.map((contender) => contender.name);
  const unknown = names.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new RangeError(
      `BENCH_PROXY_CONTENDERS names ${unknown.join(', ')}: allowed are ${known.join(', ')} (comma-separated)`,
    );
  }
  return CONTENDERS.filter((contender) => names.includes(contender.name));
}

function ensureBenchDeps(): void {
  const script = path.resolve(import.meta.dirname, '../scripts/ensure-bench-deps.sh');
  const outcome = spawnSync('bash', [script], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (outcome.status !== 0) {
    throw new Error(
      `scripts/ensure-bench-deps.sh failed (exit ${outcome.status ?? outcome.signal}); see above`,
    );
  }
}

async function measureOnce<Result>(
  running: RunningContender,
  backend: RunningBackend,
  load: () => Promise<Result>,
): Promise<Sample<Result>> {
  const proxyCpu = (): number | undefined =>
    running.pid === undefined ? undefined : cpuSecondsOf(running.name, running.pid);
  const backendCpu = (): number => cpuSecondsOf('backend', backend.pid);
  const proxyBefore = proxyCpu();
  const backendBefore = backendCpu();
  const result = await load();
  return {
    result,
    proxyCpuSeconds: proxyBefore === undefined ? undefined : (proxyCpu() as number) - proxyBefore,
    backendCpuSeconds: backendCpu() - backendBefore,
  };
}

/** Runs `load` against `running`, reading CPU time around it; a failure carries the proxy's output. */
async function measure<Result>(
  running: RunningContender,
  backend: RunningBackend,
  load: () => Promise<Result>,
): Promise<Sample<Result>> {
  try {
    return await measureOnce(running, backend, load);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const tail = running.outputTail();
    throw new Error(
      `measuring ${running.name} failed: ${reason}${tail === '' ? '' : `\n  its output:\n${tail}`}`,
    );
  }
}

function bulkLoad(settings: Settings, port: number, bytes = settings.bulkBytes): () => Promise<BulkResult> {
  return () => spawnBulk({ port, connections: settings.bulkConnections, bytes });
}

function shortLoad(settings: Settings, port: number, durationMs = settings.shortDurationMs) {
  return (): Promise<ShortResult> =>
    spawnShort({
      port,
      concurrency: settings.shortConcurrency,
      durationMs,
      requestBytes: settings.requestBytes,
    });
}

/** Every contender once per round for bulk, then once per round for short connections. */
async function runRounds(settings: Settings, backend: RunningBackend, samples: ContenderSamples[]) {
  for (const entry of samples) {
    const port = entry.running.port;
    await measure(
      entry.running,
      backend,
      bulkLoad(settings, port, Math.max(16 * MIB, settings.bulkBytes / 8)),
    );
    await measure(entry.running, backend, shortLoad(settings, port, Math.ceil(settings.shortDurationMs / 4)));
  }
  process.stderr.write('proxy bench: warm-up done\n');
  for (let round = 0; round < settings.rounds; round++) {
    for (let offset = 0; offset < samples.length; offset++) {
      const entry = samples[(round + offset) % samples.length] as ContenderSamples;
      entry.bulk.push(await measure(entry.running, backend, bulkLoad(settings, entry.running.port)));
    }
    for (let offset = 0; offset < samples.length; offset++) {
      const entry = samples[(round + offset) % samples.length] as ContenderSamples;
      entry.short.push(await measure(entry.running, backend, shortLoad(settings, entry.running.port)));
    }
    process.stderr.write(`proxy bench: round ${round + 1}/${settings.rounds} done\n`);
  }
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}

function ratio(value: number, reference: number | undefined): string {
  return reference === undefined ? '–' : `${(value / reference).toFixed(2)}×`;
}

function medianOf<Result>(
  list: readonly Sample<Result>[],
  pick: (sample: Sample<Result>) => number | undefined,
) {
  const values = list.map(pick).filter((value): value is number => value !== undefined);
  return values.length === 0 ? undefined : median(values);
}

/** Median CPU use of proxy, backend and load generator, in percent of one core. */
function cpuShares<Result extends { readonly seconds: number; readonly loadCpuMs: number }>(
  list: readonly Sample<Result>[],
): string {
  const percent = (pick: (sample: Sample<Result>) => number | undefined) =>
    medianOf(list, (sample) => {
      const seconds = pick(sample);
      return seconds === undefined ? undefined : (seconds / sample.result.seconds) * 100;
    });
  const proxy = percent((sample) => sample.proxyCpuSeconds);
  const backend = percent((sample) => sample.backendCpuSeconds);
  const load = percent((sample) => sample.result.loadCpuMs / 1000);
  return `${fixed(proxy, 0)} / ${fixed(backend, 0)} / ${fixed(load, 0)}`;
}

function bulkTable(samples: readonly ContenderSamples[]): string {
  const gbit = (entry: ContenderSamples) => median(entry.bulk.map((sample) => sample.result.gbitPerSecond));
  const byName = (name: string) => samples.find((entry) => entry.running.name === name);
  const direct = byName('direct');
  const haproxy = byName('haproxy');
  const rows = samples.map((entry) => [
    entry.running.name,
    fixed(gbit(entry), 2),
    entry.bulk.map((sample) => sample.result.gbitPerSecond.toFixed(2)).join(' '),
    ratio(gbit(entry), direct && gbit(direct)),
    ratio(gbit(entry), haproxy && gbit(haproxy)),
    fixed(
      medianOf(entry.bulk, (sample) =>
        sample.proxyCpuSeconds === undefined
          ? undefined
          : sample.proxyCpuSeconds / (sample.result.bytes / GIB),
      ),
      3,
    ),
    cpuShares(entry.bulk),
  ]);
  const header = ['contender', 'Gbit/s', 'per round', 'vs direct', 'vs HAProxy', 'proxy CPU s/GiB'];
  return markdownTable([...header, 'CPU % proxy / backend / load'], rows, 'lrlrrrr');
}

function shortTable(samples: readonly ContenderSamples[]): string {
  const rate = (entry: ContenderSamples) =>
    median(entry.short.map((sample) => sample.result.connectionsPerSecond));
  const byName = (name: string) => samples.find((entry) => entry.running.name === name);
  const direct = byName('direct');
  const haproxy = byName('haproxy');
  const rows = samples.map((entry) => [
    entry.running.name,
    fixed(rate(entry), 0),
    entry.short.map((sample) => sample.result.connectionsPerSecond.toFixed(0)).join(' '),
    fixed(
      medianOf(entry.short, (sample) => sample.result.p50Ms),
      2,
    ),
    fixed(
      medianOf(entry.short, (sample) => sample.result.p99Ms),
      2,
    ),
    ratio(rate(entry), direct && rate(direct)),
    ratio(rate(entry), haproxy && rate(haproxy)),
    fixed(
      medianOf(entry.short, (sample) =>
        sample.proxyCpuSeconds === undefined
          ? undefined
          : (sample.proxyCpuSeconds * 1000) / (sample.result.connections / 1000),
      ),
      1,
    ),
    cpuShares(entry.short),
    `${entry.short.reduce((sum, sample) => sum + sample.result.errors, 0)}`,
  ]);
  const header = ['contender', 'conn/s', 'per round', 'p50 ms', 'p99 ms', 'vs direct', 'vs HAProxy'];
  const cpuHeader = ['proxy CPU ms/1k conn', 'CPU % proxy / backend / load', 'errors'];
  return markdownTable([...header, ...cpuHeader], rows, 'lrlrrrrrrr');
}

function cpuModel(): string {
  return os.cpus()[0]?.model.trim() ?? 'unknown CPU';
}

function report(
  settings: Settings,
  samples: readonly ContenderSamples[],
  skipped: readonly string[],
): string {
  const quick = process.env.BENCH_QUICK === '1' ? ' (BENCH_QUICK=1: smoke run, figures are rough)' : '';
  const lines = [
    `## Layer-4 TCP proxy benchmark${quick}`,
    '',
    `node ${process.version} · ${haproxyVersion()} · ${os.type()} ${os.release()} ${os.arch()} · ` +
      `${os.availableParallelism()} CPUs (${cpuModel()})`,
    'Load generator, backend and proxy are separate processes sharing these cores; nothing is pinned. ' +
      `${settings.rounds} round${settings.rounds === 1 ? '' : 's'}, contenders round-robin with the starting one rotated; figures are medians ` +
      'over rounds, "per round" lists every round in order.',
    '',
    `### Bulk: ${settings.bulkConnections} connections streaming ${settings.bulkBytes / MIB} MiB in 64 KiB writes ` +
      'to a discard sink',
    '',
    'How to read: Gbit/s counts payload bytes the backend acked, higher is better; "vs" columns divide a ' +
      "contender's median by direct's or HAProxy's; proxy CPU s/GiB is the proxy process's user+system time per GiB forwarded, lower is better; " +
      'CPU % is per one core (100 = one core busy).',
    '',
    bulkTable(samples),
    '',
    `### Short connections: ${settings.shortConcurrency} concurrent, each connect, ${settings.requestBytes}-byte ` +
      `request, echoed reply, close; ${settings.shortDurationMs} ms per round`,
    '',
    'How to read: conn/s completed connections per second, higher is better; latency from connect() to the ' +
      "last reply byte; proxy CPU ms/1k conn is the proxy process's CPU time per 1,000 connections, lower is " +
      'better; errors counts failed connections over all rounds.',
    '',
    shortTable(samples),
  ];
  if (skipped.length > 0) lines.push('', `Skipped: ${skipped.join('; ')}.`);
  return `${lines.join('\n')}\n`;
}

/** What to stop or remove on the way out, including after Ctrl-C: child processes, the work dir. */
const teardown: { stop(): Promise<void> }[] = [];

async function stopAll(): Promise<void> {
  await Promise.all(teardown.splice(0).map((item) => item.stop()));
}

async function main(): Promise<void> {
  const settings = readSettings();
  const contenders = selectContenders();
  ensureBenchDeps();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-proxy-bench-'));
  teardown.push({ stop: async () => rmSync(workDir, { recursive: true, force: true }) });
  const backend = await spawnBackend();
  teardown.push(backend);
  const samples: ContenderSamples[] = [];
  const skipped: string[] = [];
  for (const contender of contenders) {
    const skipReason = contender.skipReason();
    if (skipReason !== undefined) {
      skipped.push(`${contender.name}: ${skipReason}`);
      process.stderr.write(`proxy bench: skipping ${contender.name}: ${skipReason}\n`);
      continue;
    }
    const running = await contender.start(backend.port, workDir);
    teardown.push(running);
    samples.push({ running, bulk: [], short: [] });
  }
  const startedAt = performance.now();
  await runRounds(settings, backend, samples);
  await stopAll();
  process.stdout.write(report(settings, samples, skipped));
  process.stderr.write(`proxy bench: measured in ${((performance.now() - startedAt) / 1000).toFixed(0)} s\n`);
  const failing = samples.filter((entry) => entry.short.some((sample) => sample.result.errors > 0));
  for (const entry of failing) {
    const first = entry.short.find((sample) => sample.result.firstError !== undefined)?.result.firstError;
    process.stderr.write(`proxy bench: ${entry.running.name} failed connections, first: ${first}\n`);
  }
  if (failing.length > 0) process.exitCode = 1;
}

runBench('proxy bench', main, stopAll);
