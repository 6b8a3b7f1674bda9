import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { cpuSecondsOf, stopChild } from './child-process.ts';

/**
 * One log forwarder under test, as the operator runs it: `node packages/log-forwarder/src/main.ts
 * --config <file>` with its intake socket in the bench's temp dir, the admin server on a free port
 * (read from its "admin server listening" log line) and metrics on (no OTEL_* or SWITCHYARD_*
 * variable of the caller reaches it, so OTEL_SDK_DISABLED is unset). Its /metrics counters are
 * read by scraping, its CPU time from /proc.
 */

const REPO_ROOT = path.resolve(import.meta.dirname, '..');
const FORWARDER_MAIN = path.join(REPO_ROOT, 'packages/log-forwarder/src/main.ts');
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_TAIL_LINES = 40;
const METRIC_PREFIX = 'switchyard_log_forwarder_';

/** `name` or `name{label="value"}` without the common prefix, e.g. `records_dropped_total{reason="buffer_full"}`. */
export type MetricSamples = ReadonlyMap<string, number>;

export interface RunningForwarder {
  readonly name: string;
  readonly pid: number;
  readonly socketPath: string;
  readonly metricsUrl: string;
  scrape(): Promise<MetricSamples>;
  /** User plus system CPU seconds of the process so far. */
  cpuSeconds(): number;
  outputTail(): string;
  stop(): Promise<void>;
}

export interface ForwarderLaunch {
  readonly name: string;
  readonly workDir: string;
  /** The Collector endpoint, `http://127.0.0.1:<port>`. */
  readonly collectorEndpoint: string;
  /** Node flags before main.ts, e.g. `--cpu-prof`. */
  readonly nodeFlags?: readonly string[];
}

/** Parses the samples of our own metrics from a Prometheus text exposition. */
export function parseSamples(text: string): MetricSamples {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(METRIC_PREFIX)) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(METRIC_PREFIX.length, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** A sample's value; throws when the forwarder does not export it (a renamed metric breaks the bench loudly). */
export function sample(samples: MetricSamples, key: string): number {
  const value = samples.get(key);
  if (value === undefined) throw new Error(`the forwarder's /metrics has no ${METRIC_PREFIX}${key}`);
  return value;
}

function forwarderEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('OTEL_') && !key.startsWith('SWITCHYARD_')) env[key] = value;
  }
  return env;
}

/**
 * Writes the forwarder's config (socket and collector; every other setting at its default), starts
 * it and resolves once it logged "log forwarder serving".
 */
export async function startForwarder(launch: ForwarderLaunch): Promise<RunningForwarder> {
  const socketPath = path.join(launch.workDir, `${launch.name}.sock`);
  const configFile = path.join(launch.workDir, `${launch.name}.json`);
  const config = {
    telemetry: { admin: { port: 0 } },
    socket: { path: socketPath, mode: '600' },
    collector: { endpoint: launch.collectorEndpoint },
  };
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const child = spawn(
    process.execPath,
    [...(launch.nodeFlags ?? []), FORWARDER_MAIN, '--config', configFile],
    {
      cwd: REPO_ROOT,
      env: forwarderEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
  };
  createInterface({ input: child.stderr }).on('line', keep);
  const lines = createInterface({ input: child.stdout });
  const outputTail = (): string => tail.map((line) => `    ${line}`).join('\n');
  const adminPort = await new Promise<number>((resolve, reject) => {
    let port: number | undefined;
    const timer = setTimeout(() => fail(`not serving within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const fail = (reason: string): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`log forwarder ${launch.name} did not start: ${reason}\n${outputTail()}`));
    };
    child.once('error', (error) => fail(error.message));
    child.once('exit', (code, signal) => fail(`it exited (${code ?? signal})`));
    lines.on('line', (line) => {
      keep(line);
      const entry = parseLogLine(line);
      if (entry?.msg === 'admin server listening' && typeof entry.port === 'number') port = entry.port;
      if (entry?.msg !== 'log forwarder serving' || port === undefined) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve(port);
    });
  });
  const metricsUrl = `http://127.0.0.1:${adminPort}/metrics`;
  return {
    name: launch.name,
    pid: child.pid as number,
    socketPath,
    metricsUrl,
    scrape: async () => parseSamples(await (await fetch(metricsUrl)).text()),
    cpuSeconds: () => cpuSecondsOf(`log forwarder ${launch.name}`, child.pid as number),
    outputTail,
    stop: () => stopChild(child, STOP_TIMEOUT_MS),
  };
}

function parseLogLine(line: string): { msg?: unknown; port?: unknown } | undefined {
  try {
    return JSON.parse(line) as { msg?: unknown; port?: unknown };
  } catch {
    return undefined;
  }
}
