import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { GO_TOOLS_DIR, type RelaySetup, type ServerProcess } from './relay-servers.ts';

/**
 * One measurement: test/tools/derpload (Tailscale's derphttp clients in a ring, built into
 * .cache/go-tools by scripts/build-go-tools.sh) against a started relay setup. The servers' CPU
 * time is read from /proc when derpload opens and closes its measured window (its -events lines);
 * servers with metrics on are scraped every `scrapeEveryMs` while derpload runs, as Prometheus
 * would, and their drop counters are read before and after.
 */

export const DERPLOAD = path.join(GO_TOOLS_DIR, 'derpload');
const DROPPED_PREFIX = 'switchyard_relay_packets_dropped_total';

export interface LoadOptions {
  readonly clients: number;
  readonly sizeBytes: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly scrapeEveryMs: number;
}

/** derpload's result line. */
interface DerploadResult {
  readonly sent: number;
  readonly received: number;
  readonly lost: number;
  readonly packetsPerSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly stalls: number;
  readonly window: number;
  readonly cpuSeconds: number;
  readonly durationSeconds: number;
}

export interface LoadSample extends DerploadResult {
  /** User+system CPU seconds of every server of the setup during the measured window. */
  readonly serverCpuSeconds: number;
  /** Scrapes that succeeded and failed during the run (servers with metrics on). */
  readonly scrapes: number;
  readonly scrapeFailures: number;
  /** packets_dropped_total over every reason and server, after minus before; undefined when metrics are off. */
  readonly relayDrops: number | undefined;
}

async function droppedPackets(servers: readonly ServerProcess[]): Promise<number | undefined> {
  const scraped = servers.filter((server) => server.metricsUrl !== undefined);
  if (scraped.length === 0) return undefined;
  let total = 0;
  for (const server of scraped) {
    const text = await (await fetch(server.metricsUrl as string)).text();
    for (const line of text.split('\n')) {
      if (line.startsWith(DROPPED_PREFIX)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/** Scrapes every server with metrics on every `everyMs` until stopped. */
function startScraping(
  servers: readonly ServerProcess[],
  everyMs: number,
): () => { ok: number; failed: number } {
  const counts = { ok: 0, failed: 0 };
  const urls = servers.flatMap((server) => (server.metricsUrl === undefined ? [] : [server.metricsUrl]));
  const timer = setInterval(() => {
    for (const url of urls) {
      fetch(url)
        .then((response) => response.text())
        .then(
          () => counts.ok++,
          () => counts.failed++,
        );
    }
  }, everyMs);
  return () => {
    clearInterval(timer);
    return counts;
  };
}

function serverCpu(servers: readonly ServerProcess[]): number {
  return servers.reduce((sum, server) => sum + server.cpuSeconds(), 0);
}

function runDerpload(
  setup: RelaySetup,
  options: LoadOptions,
): Promise<{ result: DerploadResult; serverCpuSeconds: number }> {
  const args = [
    '-url',
    setup.url,
    '-recv-url',
    setup.recvUrl,
    '-clients',
    `${options.clients}`,
    '-size',
    `${options.sizeBytes}`,
    '-duration',
    `${options.durationMs}ms`,
    '-warmup',
    `${options.warmupMs}ms`,
    '-events',
  ];
  const child = spawn(DERPLOAD, args, {
    env: { ...process.env, ...setup.loadEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  let cpuAtStart: number | undefined;
  let cpuAtEnd: number | undefined;
  let result: DerploadResult | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    const parsed = JSON.parse(line) as { event?: string } & DerploadResult;
    if (parsed.event === 'measuring') cpuAtStart = serverCpu(setup.servers);
    else if (parsed.event === 'measured') cpuAtEnd = serverCpu(setup.servers);
    else result = parsed;
  });
  return new Promise((resolve, reject) => {
    child.once('error', (error) =>
      reject(new Error(`derpload could not start (${DERPLOAD}): ${error.message}`)),
    );
    child.once('close', (code, signal) => {
      if (code !== 0 || result === undefined || cpuAtStart === undefined || cpuAtEnd === undefined) {
        reject(
          new Error(
            `derpload against ${setup.name} with ${options.clients} clients failed (${code ?? signal}):\n` +
              `  ${DERPLOAD} ${args.join(' ')}\n${stderr.slice(-20).join('\n')}`,
          ),
        );
        return;
      }
      resolve({ result, serverCpuSeconds: cpuAtEnd - cpuAtStart });
    });
  });
}

export async function measureLoad(setup: RelaySetup, options: LoadOptions): Promise<LoadSample> {
  const dropsBefore = await droppedPackets(setup.servers);
  const stopScraping = startScraping(setup.servers, options.scrapeEveryMs);
  let scrapes = { ok: 0, failed: 0 };
  let run: Awaited<ReturnType<typeof runDerpload>>;
  try {
    run = await runDerpload(setup, options);
  } finally {
    scrapes = stopScraping();
  }
  const dropsAfter = await droppedPackets(setup.servers);
  return {
    ...run.result,
    serverCpuSeconds: run.serverCpuSeconds,
    scrapes: scrapes.ok,
    scrapeFailures: scrapes.failed,
    relayDrops: dropsBefore === undefined || dropsAfter === undefined ? undefined : dropsAfter - dropsBefore,
  };
}
