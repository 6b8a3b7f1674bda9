import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.ts';
import { answersOk, findOnPath, serverError, spawnServer, waitUntilReady } from './server-process.ts';

export interface ScrapeTarget {
  /** Becomes the `job` label of every series scraped from this target. */
  job: string;
  /** `host:port`, e.g. `127.0.0.1:9464`. */
  address: string;
  /** Sent as `Authorization: Bearer <token>` on every scrape when set. */
  bearerToken?: string;
  /** Defaults to `/metrics`. */
  metricsPath?: string;
  /** Keep the `job` and `instance` labels the target serves (a ServiceMonitor's `honorLabels`). */
  honorLabels?: boolean;
}

export interface PrometheusOptions {
  targets: ScrapeTarget[];
  /** Scrape interval (and timeout) in whole seconds. Defaults to 1. */
  scrapeIntervalSeconds?: number;
  /** How long to wait for `/-/ready` before giving up. Defaults to 20000. */
  readyTimeoutMs?: number;
  /** The `prometheus` binary to run. Defaults to the one on PATH (Debian's package). */
  binary?: string;
}

/** One element of an instant vector, with the sample value parsed (`+Inf`, `-Inf`, `NaN` included). */
export interface VectorSample {
  labels: Record<string, string>;
  value: number;
  timestampSeconds: number;
}

/** One entry of `/api/v1/targets/metadata`. */
export interface TargetMetadata {
  target: Record<string, string>;
  type: string;
  help: string;
  unit: string;
}

/** One entry of `/api/v1/targets` `activeTargets`, the fields tests look at. */
export interface ActiveTarget {
  scrapePool: string;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  labels: Record<string, string>;
}

export interface RunningPrometheus {
  /** Base URL of the server, e.g. `http://127.0.0.1:40123`. */
  url: string;
  /** Runs an instant query (`/api/v1/query`); a scalar result comes back as one unlabelled sample. */
  query(promql: string): Promise<VectorSample[]>;
  /** Re-runs `promql` until `predicate` accepts its result; rejects after `timeoutMs` (default 20000). */
  waitFor(
    promql: string,
    predicate: (samples: VectorSample[]) => boolean,
    timeoutMs?: number,
  ): Promise<VectorSample[]>;
  targets(): Promise<ActiveTarget[]>;
  /** The label sets of every series matching the selector (`/api/v1/series`), over the stored data. */
  series(match: string): Promise<Array<Record<string, string>>>;
  /**
   * The metadata Prometheus took from the targets' expositions for one metric family
   * (`/api/v1/targets/metadata`): type, help and unit per target. Only OpenMetrics carries a unit.
   */
  targetMetadata(metric: string): Promise<TargetMetadata[]>;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 10 s) and removes the temporary directory. */
  stop(): Promise<void>;
}

const queryPollIntervalMs = 200;
const requestTimeoutMs = 5_000;
const startAttempts = 3;

/**
 * Starts a real `prometheus` server on 127.0.0.1 that scrapes `targets`, and resolves once it
 * reports ready. Runs `options.binary`, else `prometheus` from PATH (scripts/ensure-test-deps.sh
 * installs it).
 *
 * The first scrape comes about 5 s after ready, whatever the interval: Prometheus hands new
 * target sets to its scrape manager on a fixed 5 s tick. Wait with `waitFor`, not a fixed sleep.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const scrapeIntervalSeconds = options.scrapeIntervalSeconds ?? 1;
  if (!Number.isInteger(scrapeIntervalSeconds) || scrapeIntervalSeconds < 1) {
    throw new Error(`scrapeIntervalSeconds must be a whole number >= 1, got ${scrapeIntervalSeconds}`);
  }
  const prometheusPath = options.binary ?? findOnPath('prometheus');
  if (prometheusPath === undefined) {
    throw new Error(
      "prometheus is not on PATH: run scripts/ensure-test-deps.sh (it installs Debian's prometheus package)",
    );
  }
  const config = renderConfig(options.targets, scrapeIntervalSeconds);
  const tempDir = await mkdtemp(join(tmpdir(), 'switchyard-prometheus-'));
  const configFile = join(tempDir, 'prometheus.yml');
  await writeFile(configFile, config);
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(prometheusPath, tempDir, configFile, options.readyTimeoutMs ?? 20_000);
    } catch (error) {
      // The port from freePort() can be taken by someone else before prometheus binds it.
      const portRace = error instanceof Error && error.message.includes('address already in use');
      if (!portRace || attempt === startAttempts) {
        await rm(tempDir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

// JSON is valid YAML, and JSON.stringify quotes tokens and paths safely. Targets of one job (the
// pods behind one ServiceMonitor) share one scrape config, as Prometheus allows a job name once.
function renderConfig(targets: ScrapeTarget[], scrapeIntervalSeconds: number): string {
  const interval = `${scrapeIntervalSeconds}s`;
  const jobs = new Map<string, { scrapeConfig: Record<string, unknown>; addresses: string[] }>();
  for (const target of targets) {
    const scrapeConfig = {
      job_name: target.job,
      metrics_path: target.metricsPath ?? '/metrics',
      scheme: 'http',
      ...(target.honorLabels === true ? { honor_labels: true } : {}),
      ...(target.bearerToken === undefined
        ? {}
        : { authorization: { type: 'Bearer', credentials: target.bearerToken } }),
    };
    const job = jobs.get(target.job);
    if (job === undefined) {
      jobs.set(target.job, { scrapeConfig, addresses: [target.address] });
    } else if (JSON.stringify(job.scrapeConfig) !== JSON.stringify(scrapeConfig)) {
      throw new Error(`the targets of job ${target.job} are scraped differently; give them one job each`);
    } else {
      job.addresses.push(target.address);
    }
  }
  return JSON.stringify({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: [...jobs.values()].map(({ scrapeConfig, addresses }) => ({
      ...scrapeConfig,
      static_configs: [{ targets: addresses }],
    })),
  });
}

async function launch(
  prometheusPath: string,
  tempDir: string,
  configFile: string,
  readyTimeoutMs: number,
): Promise<RunningPrometheus> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(tempDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=info',
  ];
  const server = spawnServer(prometheusPath, args, { scratchDir: tempDir });
  const describe = (what: string): Error => serverError(server, 'prometheus', what);
  await waitUntilReady(server, 'prometheus', () => answersOk(`${url}/-/ready`), readyTimeoutMs);

  let stopped: Promise<void> | undefined;
  const running: RunningPrometheus = {
    url,
    query: async (promql) => {
      try {
        return await instantQuery(url, promql);
      } catch (error) {
        throw describe(`query ${promql} failed: ${(error as Error).message}`);
      }
    },
    waitFor: async (promql, predicate, timeoutMs = 20_000) => {
      const waitDeadline = Date.now() + timeoutMs;
      for (;;) {
        const samples = await running.query(promql);
        if (predicate(samples)) {
          return samples;
        }
        if (Date.now() > waitDeadline) {
          const targets = await running.targets().catch(() => []);
          throw describe(
            `${promql} did not satisfy the predicate within ${timeoutMs} ms; last result ${JSON.stringify(samples)}; ` +
              `targets ${JSON.stringify(targets.map(({ scrapePool, health, lastError }) => ({ scrapePool, health, lastError })))}`,
          );
        }
        await sleep(queryPollIntervalMs);
      }
    },
    targets: async () => {
      const data = await apiGet<{ activeTargets: ActiveTarget[] }>(`${url}/api/v1/targets`);
      return data.activeTargets.map(({ scrapePool, scrapeUrl, health, lastError, labels }) => ({
        scrapePool,
        scrapeUrl,
        health,
        lastError,
        labels,
      }));
    },
    series: async (match) =>
      apiGet<Array<Record<string, string>>>(
        `${url}/api/v1/series?${new URLSearchParams({ 'match[]': match })}`,
      ),
    targetMetadata: async (metric) =>
      apiGet<TargetMetadata[]>(`${url}/api/v1/targets/metadata?${new URLSearchParams({ metric })}`),
    stop: () => {
      stopped ??= (async () => {
        await server.stop();
        await rm(tempDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  return running;
}

interface ApiVectorElement {
  metric: Record<string, string>;
  value: [number, string];
}

type QueryData =
  | { resultType: 'vector'; result: ApiVectorElement[] }
  | { resultType: 'scalar'; result: [number, string] }
  | { resultType: 'matrix' | 'string'; result: unknown };

async function instantQuery(url: string, promql: string): Promise<VectorSample[]> {
  const data = await apiGet<QueryData>(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
  switch (data.resultType) {
    case 'vector':
      return data.result.map(({ metric, value }) => ({
        labels: metric,
        value: parseSampleValue(value[1]),
        timestampSeconds: value[0],
      }));
    case 'scalar':
      return [{ labels: {}, value: parseSampleValue(data.result[1]), timestampSeconds: data.result[0] }];
    default:
      throw new Error(`expected an instant vector or scalar, got a ${data.resultType}`);
  }
}

function parseSampleValue(text: string): number {
  if (text === '+Inf') {
    return Number.POSITIVE_INFINITY;
  }
  if (text === '-Inf') {
    return Number.NEGATIVE_INFINITY;
  }
  return Number(text);
}

async function apiGet<T>(requestUrl: string): Promise<T> {
  const response = await fetch(requestUrl, { signal: AbortSignal.timeout(requestTimeoutMs) });
  const body = (await response.json()) as { status: string; data?: T; error?: string; errorType?: string };
  if (body.status !== 'success' || body.data === undefined) {
    throw new Error(`${requestUrl} answered HTTP ${response.status}: ${body.errorType}: ${body.error}`);
  }
  return body.data;
}
