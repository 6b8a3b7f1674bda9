import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { Agent, get } from 'node:http';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSecondsOf, runBench, stopChild } from './child-process.ts';
import { markdownTable, positiveIntegerFromEnv } from './harness.ts';
import { freePort } from './proxies.ts';

/**
 * /metrics at scale: our telemetry thread against prom-client and the stock
 * @opentelemetry/exporter-prometheus, each serving the same proxy-shaped series (1k, 10k, 100k)
 * from a process of its own (bench/scrape-target.ts).
 *
 * - CPU ms per scrape: the target process's CPU time (/proc/<pid>/stat, every thread) over back-to-
 *   back scrapes, divided by the scrapes; "data thread" is the main thread's share
 *   (process.threadCpuUsage in the target), the rest is our telemetry thread (or nothing, for the
 *   others, which serialize on their only thread).
 * - Response bytes, identity and gzip (the others do not compress).
 * - Data-path stall: the lag of a 1 ms timer on the target's main thread (perf_hooks'
 *   monitorEventLoopDelay), p50/p99/max, idle and while scraped once a second, as Prometheus would.
 *
 * Ours is scraped twice over: as Prometheus 3 asks (OpenMetrics, gzip) and as text 0.0.4 without
 * compression, the only thing the others serve. Contenders run one after another, in the same
 * order at each size; the machine has 2 cores, so read ratios and the stall columns side by side.
 *
 * Run: `node scrape.bench.ts` from bench/. BENCH_QUICK=1 for a smoke run (1k and 10k, short windows);
 * BENCH_SCRAPE_SIZES=10000,100000 picks the sizes, BENCH_SCRAPE_CONTENDERS=ours,prom-client the
 * implementations (ours, prom-client, otel-stock), BENCH_SCRAPE_SECONDS the scraped window (10).
 */

const PROMETHEUS_3_ACCEPT =
  'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1';
const TEXT_ACCEPT = 'text/plain;version=0.0.4';
/** Series per upstream (10) plus a pool's histogram (18) shared by 100 upstreams. */
const SERIES_PER_UPSTREAM = 10 + 18 / 100;

interface Contender {
  readonly name: string;
  readonly impl: 'ours' | 'prom-client' | 'otel-stock';
  readonly accept: string;
  readonly gzip: boolean;
}

const CONTENDERS: readonly Contender[] = [
  { name: 'ours, OpenMetrics + gzip (Prometheus 3)', impl: 'ours', accept: PROMETHEUS_3_ACCEPT, gzip: true },
  { name: 'ours, text 0.0.4', impl: 'ours', accept: TEXT_ACCEPT, gzip: false },
  { name: 'prom-client 15.1.3', impl: 'prom-client', accept: TEXT_ACCEPT, gzip: false },
  { name: 'exporter-prometheus 0.301.0', impl: 'otel-stock', accept: TEXT_ACCEPT, gzip: false },
];

interface Settings {
  readonly sizes: readonly number[];
  readonly contenders: readonly Contender[];
  readonly idleMs: number;
  readonly scrapedSeconds: number;
  /** Wall time the back-to-back CPU measurement aims at. */
  readonly cpuWindowMs: number;
  readonly quick: boolean;
}

function readSettings(): Settings {
  const quick = process.env.BENCH_QUICK === '1';
  const sizes = process.env.BENCH_SCRAPE_SIZES?.split(',').map(Number) ?? [
    1_000,
    10_000,
    ...(quick ? [] : [100_000]),
  ];
  if (sizes.some((size) => !Number.isInteger(size) || size < 100)) {
    throw new RangeError(
      `BENCH_SCRAPE_SIZES="${process.env.BENCH_SCRAPE_SIZES}": give series counts of at least 100, e.g. 10000,100000`,
    );
  }
  const impls = process.env.BENCH_SCRAPE_CONTENDERS?.split(',');
  const contenders = CONTENDERS.filter((contender) => impls === undefined || impls.includes(contender.impl));
  if (contenders.length === 0) {
    throw new RangeError(
      `BENCH_SCRAPE_CONTENDERS="${process.env.BENCH_SCRAPE_CONTENDERS}" names none of ours, prom-client, otel-stock`,
    );
  }
  return {
    sizes,
    contenders,
    idleMs: quick ? 1_000 : 5_000,
    scrapedSeconds: positiveIntegerFromEnv('BENCH_SCRAPE_SECONDS', quick ? 3 : 10),
    cpuWindowMs: quick ? 500 : 2_000,
    quick,
  };
}

interface ProbeReport {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
  readonly mainThreadCpuMs: number;
}

interface Row {
  readonly contender: Contender;
  readonly samples: number;
  readonly cpuMsPerScrape: number;
  readonly dataThreadMsPerScrape: number;
  readonly bytes: number;
  readonly idle: ProbeReport;
  readonly scraped: ProbeReport;
}

const children = new Set<ChildProcess>();

class Target {
  readonly child: ChildProcess;
  readonly port: number;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
  }

  static async start(impl: Contender['impl'], upstreams: number): Promise<Target> {
    const port = await freePort();
    const child = fork(
      new URL('./scrape-target.ts', import.meta.url),
      ['--impl', impl, '--upstreams', String(upstreams), '--port', String(port)],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    children.add(child);
    child.once('exit', () => children.delete(child));
    const [ready] = (await once(child, 'message')) as [{ cmd: string }];
    if (ready.cmd !== 'ready') throw new Error(`scrape-target ${impl} said ${ready.cmd}`);
    // The stock exporter starts its server asynchronously: wait for /metrics to answer.
    for (let attempt = 0; ; attempt++) {
      try {
        await new Target(child, port).scrape(TEXT_ACCEPT, false);
        break;
      } catch (error) {
        if (attempt > 100) throw error;
        await sleep(50);
      }
    }
    return new Target(child, port);
  }

  /** One scrape; resolves with the body's size in bytes as sent (compressed when gzip). */
  scrape(accept: string, gzip: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      get(
        {
          host: '127.0.0.1',
          port: this.port,
          path: '/metrics',
          agent: this.#agent,
          headers: { accept, 'accept-encoding': gzip ? 'gzip' : 'identity' },
        },
        (response) => {
          let bytes = 0;
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
          });
          response.on('end', () =>
            response.statusCode === 200 ? resolve(bytes) : reject(new Error(`HTTP ${response.statusCode}`)),
          );
        },
      ).on('error', reject);
    });
  }

  async probe<T>(during: () => Promise<T>): Promise<{ report: ProbeReport; result: T }> {
    this.child.send({ cmd: 'probe' });
    await once(this.child, 'message');
    const result = await during();
    this.child.send({ cmd: 'report' });
    const [report] = (await once(this.child, 'message')) as [ProbeReport];
    return { report, result };
  }

  async stop(): Promise<void> {
    this.#agent.destroy();
    await stopChild(this.child, 5_000);
  }
}

/** The samples in one exposition: its non-comment lines. */
async function sampleCount(target: Target, contender: Contender): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    get(
      { host: '127.0.0.1', port: target.port, path: '/metrics', headers: { accept: contender.accept } },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () => resolve(body));
      },
    ).on('error', reject);
  });
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
}

async function measure(contender: Contender, upstreams: number, settings: Settings): Promise<Row> {
  const target = await Target.start(contender.impl, upstreams);
  try {
    const samples = await sampleCount(target, contender);
    // Warm-up, and the wall time of one scrape for sizing the CPU window.
    let wallMs = 0;
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await target.scrape(contender.accept, contender.gzip);
      wallMs = performance.now() - started;
    }
    const scrapes = Math.min(2_000, Math.max(5, Math.ceil(settings.cpuWindowMs / Math.max(wallMs, 0.05))));
    const pid = target.child.pid as number;
    const cpuBefore = cpuSecondsOf(contender.name, pid);
    const busyStarted = performance.now();
    const { report: busy, result: bytes } = await target.probe(async () => {
      let last = 0;
      for (let i = 0; i < scrapes; i++) last = await target.scrape(contender.accept, contender.gzip);
      return last;
    });
    const busyMs = performance.now() - busyStarted;
    const cpuMsPerScrape = ((cpuSecondsOf(contender.name, pid) - cpuBefore) * 1000) / scrapes;
    const { report: idle } = await target.probe(() => sleep(settings.idleMs));
    // The probe's own 1 ms timer costs the main thread CPU too: count only what scrapes added.
    const idleCpuMsPerMs = idle.mainThreadCpuMs / settings.idleMs;
    const dataThreadMsPerScrape = Math.max(0, busy.mainThreadCpuMs - idleCpuMsPerMs * busyMs) / scrapes;
    const { report: scraped } = await target.probe(async () => {
      for (let second = 0; second < settings.scrapedSeconds; second++) {
        const tick = sleep(1_000);
        await target.scrape(contender.accept, contender.gzip);
        await tick;
      }
    });
    return { contender, samples, cpuMsPerScrape, dataThreadMsPerScrape, bytes, idle, scraped };
  } finally {
    await target.stop();
  }
}

const ms = (value: number) => (value < 10 ? value.toFixed(2) : value.toFixed(1));
const stall = (report: ProbeReport) => `${ms(report.p50)} / ${ms(report.p99)} / ${ms(report.max)}`;

function table(rows: readonly Row[]): string {
  const baseline = rows.find((row) => row.contender.impl === 'prom-client')?.cpuMsPerScrape ?? Number.NaN;
  return markdownTable(
    [
      'contender',
      'samples',
      'CPU ms/scrape',
      'vs prom-client',
      'data thread ms/scrape',
      'response KiB',
      'stall ms idle p50/p99/max',
      'stall ms scraped 1/s p50/p99/max',
    ],
    rows.map((row) => [
      row.contender.name,
      row.samples.toLocaleString('en-US'),
      ms(row.cpuMsPerScrape),
      `${(row.cpuMsPerScrape / baseline).toFixed(2)}×`,
      ms(row.dataThreadMsPerScrape),
      (row.bytes / 1024).toFixed(0),
      stall(row.idle),
      stall(row.scraped),
    ]),
    'lrrrrrrr',
  );
}

async function main(): Promise<void> {
  const settings = readSettings();
  // Prometheus scrapes from another machine; here the scraping client shares the 2 cores with the
  // target, so it yields to it (nice 19) rather than stall the target's data thread itself.
  os.setPriority(19);
  const started = performance.now();
  const cpus = os.cpus();
  const sections: string[] = [];
  for (const size of settings.sizes) {
    const upstreams = Math.round(size / SERIES_PER_UPSTREAM);
    const rows: Row[] = [];
    for (const contender of settings.contenders) rows.push(await measure(contender, upstreams, settings));
    sections.push(
      `### ${size.toLocaleString('en-US')} series (${upstreams.toLocaleString('en-US')} upstreams)`,
      '',
      table(rows),
      '',
    );
  }
  console.log(
    [
      `# /metrics at scale${settings.quick ? ' (BENCH_QUICK=1: smoke run, figures are rough)' : ''}`,
      '',
      `node ${process.version} · ${cpus[0]?.model.trim() ?? 'unknown CPU'} · ${cpus.length} logical CPUs · load average ${os.loadavg()[0]?.toFixed(2)} at the end`,
      '',
      'How to read: CPU ms/scrape is the serving process (every thread) per scrape, back to back; data thread is its main',
      'thread, the one that carries traffic in a worker. Stall is how late a 1 ms timer on that thread fired (lag beyond',
      '1 ms): idle, then while scraped once a second. Samples are the exposition lines (ours adds its ~40 pipeline series).',
      '',
      ...sections,
      `${((performance.now() - started) / 1000).toFixed(0)} s`,
    ].join('\n'),
  );
}

runBench('scrape.bench', main, async () => {
  await Promise.all([...children].map((child) => stopChild(child, 2_000)));
});
